/*
 * signing.c
 *		SQL functions over signing schemes, secrets and signatures:
 *		generate_secret, sign, verify, public keys, and the scheme checks the
 *		install script uses.  The schemes and the cryptography themselves are
 *		in signature.c.
 */
#include "postgres.h"

#include <time.h>

#include "fmgr.h"
#include "lib/stringinfo.h"
#include "port.h"
#include "utils/builtins.h"

#include "compat.h"
#include "signature.h"

PG_FUNCTION_INFO_V1(webhook_generate_secret);
PG_FUNCTION_INFO_V1(webhook_secret_problem);
PG_FUNCTION_INFO_V1(webhook_sign);
PG_FUNCTION_INFO_V1(webhook_ed25519_public_key);
PG_FUNCTION_INFO_V1(webhook_verify);
PG_FUNCTION_INFO_V1(webhook_is_signing_scheme);
PG_FUNCTION_INFO_V1(webhook_require_signing_scheme);
PG_FUNCTION_INFO_V1(webhook_is_signature_encoding);
PG_FUNCTION_INFO_V1(webhook_require_signature_encoding);

#define HMAC_SECRET_BYTES 32

/* The names of every scheme, for errors: "a, b, c or d". */
static char *
scheme_names(void)
{
	StringInfoData buf;

	initStringInfo(&buf);
	for (int i = 0; i < webhook_signing_scheme_count; i++)
		appendStringInfo(&buf, "%s%s",
						 i == 0 ? "" : i == webhook_signing_scheme_count - 1 ? " or " : ", ",
						 webhook_signing_schemes[i].name);
	return buf.data;
}

/*
 * The one check of a signing scheme's name (NULL too), for the SQL
 * functions and the endpoints trigger alike: the scheme, or the error that
 * names them all.
 */
static const WebhookSigningScheme *
require_signing_scheme(const char *name)
{
	const WebhookSigningScheme *scheme = name ? webhook_signing_scheme(name) : NULL;

	if (scheme == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("unknown signing scheme \"%s\"", name ? name : "NULL"),
				 errhint("Use one of %s.", scheme_names())));
	return scheme;
}

/* Parse the signing argument of a SQL function, with a clear error. */
static WebhookSigning
signing_arg(text *name)
{
	return require_signing_scheme(text_to_cstring(name))->signing;
}

/* SQL: webhook._is_signing_scheme(signing), the CHECK of webhook.endpoints. */
Datum
webhook_is_signing_scheme(PG_FUNCTION_ARGS)
{
	PG_RETURN_BOOL(webhook_signing_scheme(text_to_cstring(PG_GETARG_TEXT_PP(0))) != NULL);
}

/*
 * SQL: webhook._check_endpoint_signing(signing), the error of the endpoints
 * trigger for an unknown or NULL scheme.
 */
Datum
webhook_require_signing_scheme(PG_FUNCTION_ARGS)
{
	(void) require_signing_scheme(PG_ARGISNULL(0) ? NULL : text_to_cstring(PG_GETARG_TEXT_PP(0)));
	PG_RETURN_VOID();
}

/*
 * SQL: webhook._is_signature_encoding(signature_encoding), the CHECK of
 * webhook.endpoints (signature.c holds the one list).
 */
Datum
webhook_is_signature_encoding(PG_FUNCTION_ARGS)
{
	PG_RETURN_BOOL(webhook_signature_encoding(text_to_cstring(PG_GETARG_TEXT_PP(0))) != NULL);
}

/*
 * The one check of a signature encoding's name (NULL too), for
 * webhook.sign() and the endpoints trigger alike: the encoding, or the error
 * that names them all.
 */
static const WebhookSignatureEncodingForm *
require_signature_encoding(const char *name)
{
	const WebhookSignatureEncodingForm *form = name ? webhook_signature_encoding(name) : NULL;
	StringInfoData names;

	if (form != NULL)
		return form;
	initStringInfo(&names);
	for (int i = 0; i < webhook_signature_encoding_count; i++)
		appendStringInfo(&names, "%s%s",
						 i == 0 ? "" : i == webhook_signature_encoding_count - 1 ? " or " : ", ",
						 webhook_signature_encodings[i].name);
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			 errmsg("unknown signature encoding \"%s\"", name ? name : "NULL"),
			 errdetail("The signature_encoding says how an hmac-sha256 signature is written in its header."),
			 errhint("Use one of %s.", names.data)));
	return NULL;
}

/*
 * SQL: webhook._check_endpoint_signature_encoding(signature_encoding), the
 * error of the endpoints trigger for an unknown or NULL encoding.
 */
Datum
webhook_require_signature_encoding(PG_FUNCTION_ARGS)
{
	(void) require_signature_encoding(PG_ARGISNULL(0) ? NULL : text_to_cstring(PG_GETARG_TEXT_PP(0)));
	PG_RETURN_VOID();
}

/*
 * SQL: a fresh secret from the operating system's secure random source.
 * Receivers copy it once, so it is printable and self-describing.
 */
Datum
webhook_generate_secret(PG_FUNCTION_ARGS)
{
	const WebhookSigningScheme *scheme = require_signing_scheme(text_to_cstring(PG_GETARG_TEXT_PP(0)));
	unsigned char raw[2 * ED25519_KEY_BYTES];
	char		b64[128];

	if (!scheme->signs)
		PG_RETURN_NULL();

	if (scheme->public_key)
	{
		if (!pg_strong_random(raw, ED25519_KEY_BYTES) ||
			!webhook_ed25519_public_from_seed(raw, raw + ED25519_KEY_BYTES))
			ereport(ERROR,
					(errcode(ERRCODE_INTERNAL_ERROR),
					 errmsg("could not generate an ed25519 key pair")));
		webhook_base64_encode(raw, 2 * ED25519_KEY_BYTES, b64, sizeof(b64));
		explicit_bzero(raw, sizeof(raw));
		PG_RETURN_TEXT_P(cstring_to_text(psprintf("whsk_%s", b64)));
	}

	if (!pg_strong_random(raw, HMAC_SECRET_BYTES))
		ereport(ERROR,
				(errcode(ERRCODE_INTERNAL_ERROR),
				 errmsg("could not generate random bytes for a secret")));
	webhook_base64_encode(raw, HMAC_SECRET_BYTES, b64, sizeof(b64));
	explicit_bzero(raw, sizeof(raw));
	PG_RETURN_TEXT_P(cstring_to_text(psprintf("whsec_%s", b64)));
}

/*
 * SQL: why a secret cannot be used with a scheme, or NULL.  A sealed value is
 * judged as it stands, never opened: whoever may call this learns nothing
 * about a ciphertext's contents.
 */
Datum
webhook_secret_problem(PG_FUNCTION_ARGS)
{
	WebhookSigning signing = signing_arg(PG_GETARG_TEXT_PP(0));
	char	   *secret = text_to_cstring(PG_GETARG_TEXT_PP(1));
	WebhookKey	key;
	const char *problem;

	/* The release's endpoints trigger passes sealed secrets (src/compat.c). */
	if (webhook_compat_sealed_secret_passes(secret))
		PG_RETURN_NULL();
	problem = webhook_decode_key(signing, secret, &key);
	explicit_bzero(&key, sizeof(key));
	explicit_bzero(secret, strlen(secret));
	if (problem == NULL)
		PG_RETURN_NULL();
	PG_RETURN_TEXT_P(cstring_to_text(problem));
}

/*
 * SQL: the signature header value the worker would send for these bytes,
 * an hmac-sha256 one in the given signature_encoding (sha256=hex if none).
 */
Datum
webhook_sign(PG_FUNCTION_ARGS)
{
	char	   *secret = text_to_cstring(PG_GETARG_TEXT_PP(0));
	char	   *msg_id = text_to_cstring(PG_GETARG_TEXT_PP(1));
	int64		timestamp = PG_GETARG_INT64(2);
	text	   *body = PG_GETARG_TEXT_PP(3);
	WebhookSigning signing = signing_arg(PG_GETARG_TEXT_PP(4));
	const WebhookSignatureEncodingForm *form = &webhook_signature_encodings[0];
	WebhookKey	key;
	const char *problem;
	char		out[WEBHOOK_SIGNATURE_MAX];

	/* 0.1.0's sign(), served until the update, has no signature_encoding. */
	if (PG_NARGS() > 5)
		form = require_signature_encoding(text_to_cstring(PG_GETARG_TEXT_PP(5)));
	problem = webhook_decode_key(signing, secret, &key);
	if (problem)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid secret for signing scheme \"%s\"", text_to_cstring(PG_GETARG_TEXT_PP(4))),
				 errdetail("%s", problem)));
	if (signing == SIGNING_NONE)
		PG_RETURN_NULL();
	key.encoding = form->encoding;
	if (!webhook_compute_signature(&key, msg_id, (long long) timestamp,
								   VARDATA_ANY(body), VARSIZE_ANY_EXHDR(body), out))
		ereport(ERROR,
				(errcode(ERRCODE_INTERNAL_ERROR),
				 errmsg("could not compute the signature")));
	explicit_bzero(&key, sizeof(key));
	PG_RETURN_TEXT_P(cstring_to_text(out));
}

/* SQL: whpk_<base64 public key> for a whsk_ secret. */
Datum
webhook_ed25519_public_key(PG_FUNCTION_ARGS)
{
	char	   *secret = text_to_cstring(PG_GETARG_TEXT_PP(0));
	WebhookKey	key;
	const char *problem = webhook_decode_key(SIGNING_ED25519, secret, &key);
	unsigned char pub[ED25519_KEY_BYTES];
	char		b64[64];

	if (problem)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid ed25519 secret"),
				 errdetail("%s", problem)));
	if (!webhook_ed25519_public_from_seed(key.bytes, pub))
		ereport(ERROR,
				(errcode(ERRCODE_INTERNAL_ERROR),
				 errmsg("could not derive the ed25519 public key")));
	explicit_bzero(&key, sizeof(key));
	webhook_base64_encode(pub, ED25519_KEY_BYTES, b64, sizeof(b64));
	PG_RETURN_TEXT_P(cstring_to_text(psprintf("whpk_%s", b64)));
}

/*
 * SQL: webhook._verify(secret, msg_id, timestamp, signatures, body,
 * tolerance_s).  True when the timestamp is within the tolerance and any of
 * the space-separated signatures is valid for the secret; an unusable secret
 * is an error rather than a silent false.
 */
Datum
webhook_verify(PG_FUNCTION_ARGS)
{
	text	   *body = PG_GETARG_TEXT_PP(4);
	const char *problem;
	WebhookVerifyResult result;

	result = webhook_verify_request(text_to_cstring(PG_GETARG_TEXT_PP(0)),
									text_to_cstring(PG_GETARG_TEXT_PP(1)),
									text_to_cstring(PG_GETARG_TEXT_PP(2)),
									text_to_cstring(PG_GETARG_TEXT_PP(3)),
									VARDATA_ANY(body), VARSIZE_ANY_EXHDR(body),
									(long long) time(NULL), PG_GETARG_FLOAT8(5), &problem);
	if (result == VERIFY_BAD_SECRET)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid secret for webhook.verify"),
				 errdetail("%s", problem),
				 errhint("Pass the endpoint's whsec_ secret, or its whpk_ public key for ed25519.")));
	PG_RETURN_BOOL(result == VERIFY_OK);
}
