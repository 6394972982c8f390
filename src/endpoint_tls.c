/*
 * endpoint_tls.c
 *		The checks of an endpoint's TLS columns, made with OpenSSL when they
 *		are written, so that a bad certificate or key is refused with a clear
 *		error at once rather than failing every delivery later: ca_cert (the
 *		CA bundle the receiver is verified against), client_cert and
 *		client_key (mutual TLS).  The worker hands the same PEM text to
 *		libcurl as blobs (http.c); nothing here touches a file.
 *
 * Errors name the column and what is wrong, never its content: client_key
 * is a secret, and webhook._endpoints_seal() seals it once checked.
 */
#include "postgres.h"

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "endpoint_tls.h"

/* OpenSSL's reason for an error code, or a general word when it has none. */
static const char *
openssl_reason(unsigned long err)
{
	const char *reason = err != 0 ? ERR_reason_error_string(err) : NULL;

	return reason != NULL ? reason : "unknown error";
}

/* Refuse a PEM text longer than its column allows. */
static void
require_pem_size(const char *column_name, const char *pem, size_t max_bytes)
{
	size_t		len = strlen(pem);

	if (len > max_bytes)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("%s is too long", column_name),
				 errdetail("It has %zu bytes.", len),
				 errhint("The %s of an endpoint has at most %zu bytes of PEM.", column_name, max_bytes)));
}

/* A memory BIO over a PEM text, or an out-of-memory error. */
static BIO *
pem_bio(const char *pem)
{
	BIO		   *bio = BIO_new_mem_buf(pem, -1);

	if (bio == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_OUT_OF_MEMORY),
				 errmsg("out of memory reading PEM")));
	return bio;
}

/*
 * Read every PEM block of a text that must hold certificates and nothing
 * else (a private key pasted in with them would be stored in clear): first
 * their names, then each certificate with OpenSSL's certificate reader.
 * Counts them in *count and, when first is given, keeps the first one there
 * (the caller frees it).  Returns NULL, or why the text is refused.
 */
static char *
scan_certificates(const char *pem, const char *column_name, int *count, X509 **first)
{
	BIO		   *bio = pem_bio(pem);
	char	   *problem = NULL;

	*count = 0;
	if (first)
		*first = NULL;
	ERR_clear_error();
	while (problem == NULL)
	{
		char	   *name = NULL;
		char	   *header = NULL;
		unsigned char *data = NULL;
		long		len = 0;

		if (!PEM_read_bio(bio, &name, &header, &data, &len))
		{
			unsigned long err = ERR_peek_last_error();

			/* No further "-----BEGIN" line: the end of the text. */
			if (ERR_GET_LIB(err) != ERR_LIB_PEM || ERR_GET_REASON(err) != PEM_R_NO_START_LINE)
				problem = psprintf("%s is not valid PEM: %s.", column_name, openssl_reason(err));
			break;
		}
		if (strcmp(name, PEM_STRING_X509) != 0)
			problem = psprintf("%s holds a \"%.40s\" PEM block; only CERTIFICATE blocks belong there.",
							   column_name, name);
		(*count)++;
		OPENSSL_free(name);
		OPENSSL_free(header);
		OPENSSL_free(data);
	}
	BIO_free(bio);
	ERR_clear_error();
	if (problem == NULL && *count == 0)
		problem = psprintf("%s holds no PEM certificate.", column_name);

	bio = pem_bio(pem);
	for (int i = 0; problem == NULL && i < *count; i++)
	{
		X509	   *cert = PEM_read_bio_X509(bio, NULL, NULL, NULL);

		if (cert == NULL)
			problem = psprintf("Certificate %d of %s cannot be read: %s.",
							   i + 1, column_name, openssl_reason(ERR_peek_error()));
		else if (first != NULL && i == 0)
			*first = cert;
		else
			X509_free(cert);
	}
	BIO_free(bio);
	ERR_clear_error();
	if (problem != NULL && first != NULL && *first != NULL)
	{
		X509_free(*first);
		*first = NULL;
	}
	return problem;
}

/*
 * Check ca_cert: PEM certificates (one CA or a bundle) and nothing else.
 * Raises the error a writer sees.
 */
void
webhook_require_tls_ca(const char *pem)
{
	int			count;
	char	   *problem;

	require_pem_size("ca_cert", pem, WEBHOOK_TLS_CA_CERT_MAX_BYTES);
	problem = scan_certificates(pem, "ca_cert", &count, NULL);
	if (problem)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid ca_cert"),
				 errdetail("%s", problem),
				 errhint("Give the CA certificates the receiver's certificate chains to, in PEM (\"-----BEGIN CERTIFICATE-----\" blocks).")));
}

/*
 * OpenSSL asks for a passphrase when a key is encrypted: refuse, note that
 * it asked, and never read a terminal.
 */
static int
no_passphrase(char *buf, int size, int rwflag, void *userdata)
{
	*(bool *) userdata = true;
	return -1;
}

/*
 * The private key of a PEM text, or NULL with *problem saying why (never
 * what the text holds).
 */
static EVP_PKEY *
read_private_key(const char *pem, char **problem)
{
	BIO		   *bio = pem_bio(pem);
	bool		asked = false;
	EVP_PKEY   *key;

	ERR_clear_error();
	key = PEM_read_bio_PrivateKey(bio, NULL, no_passphrase, &asked);
	if (key == NULL && strstr(pem, "-----BEGIN ") == NULL)
		*problem = pstrdup("client_key holds no PEM block.");
	else if (key == NULL && asked)
		*problem = pstrdup("client_key is encrypted with a passphrase.");
	else if (key == NULL)
		*problem = psprintf("client_key is not a PEM private key: %s.", openssl_reason(ERR_peek_last_error()));
	BIO_free(bio);
	ERR_clear_error();
	return key;
}

/*
 * Check client_cert and client_key together (key_pem in clear): both or
 * neither, the certificate (first of its chain) and the key each readable,
 * and the key the certificate's.  Raises the error a writer sees.
 */
void
webhook_require_tls_client(const char *cert_pem, const char *key_pem)
{
	X509	   *leaf = NULL;
	EVP_PKEY   *key;
	int			count;
	char	   *problem = NULL;
	bool		matches;

	if (cert_pem == NULL && key_pem == NULL)
		return;
	if (cert_pem == NULL || key_pem == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s is set without %s", cert_pem ? "client_cert" : "client_key",
						cert_pem ? "client_key" : "client_cert"),
				 errhint("Mutual TLS needs both: set client_cert and client_key together, or neither.")));
	require_pem_size("client_cert", cert_pem, WEBHOOK_TLS_CLIENT_CERT_MAX_BYTES);
	require_pem_size("client_key", key_pem, WEBHOOK_TLS_CLIENT_KEY_MAX_BYTES);

	problem = scan_certificates(cert_pem, "client_cert", &count, &leaf);
	if (problem)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid client_cert"),
				 errdetail("%s", problem),
				 errhint("Give the client certificate in PEM, followed by any intermediate certificates; its key goes in client_key.")));

	key = read_private_key(key_pem, &problem);
	if (key == NULL)
	{
		X509_free(leaf);
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid client_key"),
				 errdetail("%s", problem),
				 errhint("Give the private key in PEM without a passphrase (\"openssl pkey -in key.pem\" writes one); it is sealed at rest.")));
	}
	matches = X509_check_private_key(leaf, key) == 1;
	EVP_PKEY_free(key);
	X509_free(leaf);
	ERR_clear_error();
	if (!matches)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("client_key does not match client_cert"),
				 errdetail("The key is not the private key of the first certificate in client_cert."),
				 errhint("Give the key the client certificate was issued for.")));
}
