/*
 * signing.c
 *		Secrets and request signatures.
 *
 * standard:    Standard Webhooks v1, v1,<base64 HMAC-SHA256(key, id.ts.body)>,
 *              key = base64 after the whsec_ prefix.
 * ed25519:     Standard Webhooks v1a, v1a,<base64 ed25519 signature of the same
 *              bytes>, secret whsk_<base64 of seed || public key>.
 * hmac-sha256: sha256=<hex HMAC-SHA256(secret, body)>, as GitHub sends it.
 */
#include "postgres.h"

#include <openssl/evp.h>
#include <openssl/crypto.h>
#include <openssl/hmac.h>

#include "common/base64.h"
#include "fmgr.h"
#include "port.h"
#include "utils/builtins.h"

#include "signing.h"

PG_FUNCTION_INFO_V1(webhook_generate_secret);
PG_FUNCTION_INFO_V1(webhook_secret_problem);
PG_FUNCTION_INFO_V1(webhook_sign);
PG_FUNCTION_INFO_V1(webhook_ed25519_public_key);
PG_FUNCTION_INFO_V1(webhook_verify);

#define HMAC_SECRET_BYTES 32
#define ED25519_KEY_BYTES 32

/* Map the signing column's text to the enum used everywhere else. */
WebhookSigning
webhook_signing_from_name(const char *name)
{
	if (strcmp(name, "standard") == 0)
		return SIGNING_STANDARD;
	if (strcmp(name, "ed25519") == 0)
		return SIGNING_ED25519;
	if (strcmp(name, "hmac-sha256") == 0)
		return SIGNING_HMAC_SHA256;
	if (strcmp(name, "none") == 0)
		return SIGNING_NONE;
	return SIGNING_UNKNOWN;
}

/* Decode base64 into a bounded buffer; -1 when it is not valid base64 or too long. */
static int
decode_base64(const char *src, unsigned char *dst, int dstlen)
{
	int			srclen = strlen(src);
	char		tmp[256];
	int			n;

	if (srclen == 0)
		return -1;
	if (pg_b64_dec_len(srclen) > (int) sizeof(tmp))
		return dstlen + 1;		/* valid or not, too long for dst */
	n = pg_b64_decode(src, srclen, tmp, sizeof(tmp));
	if (n < 0 || n > dstlen)
		return -1;
	memcpy(dst, tmp, n);
	explicit_bzero(tmp, sizeof(tmp));
	return n;
}

/* Encode to base64 into dst (NUL terminated); returns the length. */
static int
encode_base64(const unsigned char *src, int len, char *dst, int dstlen)
{
	int			n = pg_b64_encode((const char *) src, len, dst, dstlen - 1);

	if (n < 0)
		n = 0;
	dst[n] = '\0';
	return n;
}

/* The public half of an ed25519 key, from its 32-byte seed. */
static bool
ed25519_public_from_seed(const unsigned char *seed, unsigned char *pub)
{
	EVP_PKEY   *pkey = EVP_PKEY_new_raw_private_key(EVP_PKEY_ED25519, NULL, seed, ED25519_KEY_BYTES);
	size_t		publen = ED25519_KEY_BYTES;
	bool		ok;

	if (pkey == NULL)
		return false;
	ok = EVP_PKEY_get_raw_public_key(pkey, pub, &publen) == 1 && publen == ED25519_KEY_BYTES;
	EVP_PKEY_free(pkey);
	return ok;
}

/*
 * Turn a stored secret into key bytes.  Done once per request rather than
 * at every signature so that a bad secret is reported, not signed with.
 */
const char *
webhook_decode_key(WebhookSigning signing, const char *secret, WebhookKey *key)
{
	memset(key, 0, sizeof(*key));
	key->signing = signing;

	switch (signing)
	{
		case SIGNING_NONE:
			return NULL;
		case SIGNING_STANDARD:
			{
				const char *b64 = strncmp(secret, "whsec_", 6) == 0 ? secret + 6 : secret;

				key->len = decode_base64(b64, key->bytes, sizeof(key->bytes));
				if (key->len < 0)
					return "A standard secret is whsec_ followed by base64.";
				if (key->len < 16 || key->len > 64)
				{
					key->len = 0;
					return "A standard secret must hold between 16 and 64 bytes.";
				}
				return NULL;
			}
		case SIGNING_HMAC_SHA256:
			key->len = strlen(secret);
			if (key->len == 0)
				return "The secret must not be empty.";
			if (key->len > (int) sizeof(key->bytes))
				return "The secret must not be longer than 128 bytes.";
			memcpy(key->bytes, secret, key->len);
			return NULL;
		case SIGNING_ED25519:
			{
				unsigned char pub[ED25519_KEY_BYTES];

				if (strncmp(secret, "whsk_", 5) != 0)
					return "An ed25519 secret is whsk_ followed by the base64 of the 32-byte seed, optionally followed by the 32-byte public key.";
				key->len = decode_base64(secret + 5, key->bytes, sizeof(key->bytes));
				if (key->len < 0)
					return "An ed25519 secret is whsk_ followed by base64.";
				if (key->len != ED25519_KEY_BYTES && key->len != 2 * ED25519_KEY_BYTES)
					return "An ed25519 secret must hold 32 or 64 bytes after whsk_.";
				if (!ed25519_public_from_seed(key->bytes, pub))
					return "The ed25519 seed was refused by OpenSSL.";
				if (key->len == 2 * ED25519_KEY_BYTES &&
					memcmp(pub, key->bytes + ED25519_KEY_BYTES, ED25519_KEY_BYTES) != 0)
					return "The public key in the secret does not match its seed.";
				key->len = ED25519_KEY_BYTES;
				return NULL;
			}
		case SIGNING_UNKNOWN:
			break;
	}
	return "The signing scheme is unknown.";
}

/* Lower-case hex of a byte string into dst. */
static void
hex_encode_lower(const unsigned char *src, int len, char *dst)
{
	static const char digits[] = "0123456789abcdef";

	for (int i = 0; i < len; i++)
	{
		dst[2 * i] = digits[src[i] >> 4];
		dst[2 * i + 1] = digits[src[i] & 0xf];
	}
	dst[2 * len] = '\0';
}

/*
 * Sign one request.  Standard schemes sign "<id>.<timestamp>.<body>"; the
 * GitHub-style scheme signs the body alone.
 */
bool
webhook_compute_signature(const WebhookKey *key, const char *msg_id,
						  long long timestamp, const char *body, size_t body_len,
						  char *out)
{
	unsigned char mac[EVP_MAX_MD_SIZE];
	unsigned int maclen = 0;
	char	   *content;
	size_t		content_len;
	char	   *prefix;
	int			prefix_len;
	bool		ok = false;

	out[0] = '\0';
	if (key->signing == SIGNING_NONE)
		return true;

	if (key->signing == SIGNING_HMAC_SHA256)
	{
		if (HMAC(EVP_sha256(), key->bytes, key->len, (const unsigned char *) body, body_len,
				 mac, &maclen) == NULL)
			return false;
		memcpy(out, "sha256=", 7);
		hex_encode_lower(mac, maclen, out + 7);
		return true;
	}

	prefix = psprintf("%s.%lld.", msg_id, timestamp);
	prefix_len = strlen(prefix);
	content_len = prefix_len + body_len;
	content = palloc(content_len);
	memcpy(content, prefix, prefix_len);
	memcpy(content + prefix_len, body, body_len);

	if (key->signing == SIGNING_STANDARD)
	{
		if (HMAC(EVP_sha256(), key->bytes, key->len, (unsigned char *) content, content_len,
				 mac, &maclen) != NULL)
		{
			memcpy(out, "v1,", 3);
			encode_base64(mac, maclen, out + 3, WEBHOOK_SIGNATURE_MAX - 3);
			ok = true;
		}
	}
	else if (key->signing == SIGNING_ED25519)
	{
		EVP_PKEY   *pkey = EVP_PKEY_new_raw_private_key(EVP_PKEY_ED25519, NULL, key->bytes, ED25519_KEY_BYTES);
		EVP_MD_CTX *ctx = EVP_MD_CTX_new();
		unsigned char sig[64];
		size_t		siglen = sizeof(sig);

		if (pkey && ctx &&
			EVP_DigestSignInit(ctx, NULL, NULL, NULL, pkey) == 1 &&
			EVP_DigestSign(ctx, sig, &siglen, (unsigned char *) content, content_len) == 1)
		{
			memcpy(out, "v1a,", 4);
			encode_base64(sig, siglen, out + 4, WEBHOOK_SIGNATURE_MAX - 4);
			ok = true;
		}
		EVP_MD_CTX_free(ctx);
		EVP_PKEY_free(pkey);
	}
	pfree(content);
	return ok;
}

/* Parse the signing argument of a SQL function, with a clear error. */
static WebhookSigning
signing_arg(text *name)
{
	char	   *s = text_to_cstring(name);
	WebhookSigning signing = webhook_signing_from_name(s);

	if (signing == SIGNING_UNKNOWN)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("unknown signing scheme \"%s\"", s),
				 errhint("Use one of standard, ed25519, hmac-sha256 or none.")));
	return signing;
}

/*
 * SQL: a fresh secret from the operating system's secure random source.
 * Receivers copy it once, so it is printable and self-describing.
 */
Datum
webhook_generate_secret(PG_FUNCTION_ARGS)
{
	WebhookSigning signing = signing_arg(PG_GETARG_TEXT_PP(0));
	unsigned char raw[2 * ED25519_KEY_BYTES];
	char		b64[128];

	if (signing == SIGNING_NONE)
		PG_RETURN_NULL();

	if (signing == SIGNING_ED25519)
	{
		if (!pg_strong_random(raw, ED25519_KEY_BYTES) ||
			!ed25519_public_from_seed(raw, raw + ED25519_KEY_BYTES))
			ereport(ERROR,
					(errcode(ERRCODE_INTERNAL_ERROR),
					 errmsg("could not generate an ed25519 key pair")));
		encode_base64(raw, 2 * ED25519_KEY_BYTES, b64, sizeof(b64));
		explicit_bzero(raw, sizeof(raw));
		PG_RETURN_TEXT_P(cstring_to_text(psprintf("whsk_%s", b64)));
	}

	if (!pg_strong_random(raw, HMAC_SECRET_BYTES))
		ereport(ERROR,
				(errcode(ERRCODE_INTERNAL_ERROR),
				 errmsg("could not generate random bytes for a secret")));
	encode_base64(raw, HMAC_SECRET_BYTES, b64, sizeof(b64));
	explicit_bzero(raw, sizeof(raw));
	PG_RETURN_TEXT_P(cstring_to_text(psprintf("whsec_%s", b64)));
}

/* SQL: why a secret cannot be used with a scheme, or NULL. */
Datum
webhook_secret_problem(PG_FUNCTION_ARGS)
{
	WebhookSigning signing = signing_arg(PG_GETARG_TEXT_PP(0));
	char	   *secret = text_to_cstring(PG_GETARG_TEXT_PP(1));
	WebhookKey	key;
	const char *problem = webhook_decode_key(signing, secret, &key);

	explicit_bzero(&key, sizeof(key));
	if (problem == NULL)
		PG_RETURN_NULL();
	PG_RETURN_TEXT_P(cstring_to_text(problem));
}

/* SQL: the signature header value the worker would send for these bytes. */
Datum
webhook_sign(PG_FUNCTION_ARGS)
{
	char	   *secret = text_to_cstring(PG_GETARG_TEXT_PP(0));
	char	   *msg_id = text_to_cstring(PG_GETARG_TEXT_PP(1));
	int64		timestamp = PG_GETARG_INT64(2);
	text	   *body = PG_GETARG_TEXT_PP(3);
	WebhookSigning signing = signing_arg(PG_GETARG_TEXT_PP(4));
	WebhookKey	key;
	const char *problem = webhook_decode_key(signing, secret, &key);
	char		out[WEBHOOK_SIGNATURE_MAX];

	if (problem)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid secret for signing scheme \"%s\"", text_to_cstring(PG_GETARG_TEXT_PP(4))),
				 errdetail("%s", problem)));
	if (signing == SIGNING_NONE)
		PG_RETURN_NULL();
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
	if (!ed25519_public_from_seed(key.bytes, pub))
		ereport(ERROR,
				(errcode(ERRCODE_INTERNAL_ERROR),
				 errmsg("could not derive the ed25519 public key")));
	explicit_bzero(&key, sizeof(key));
	encode_base64(pub, ED25519_KEY_BYTES, b64, sizeof(b64));
	PG_RETURN_TEXT_P(cstring_to_text(psprintf("whpk_%s", b64)));
}

/* Constant-time check of one base64 signature against the expected bytes. */
static bool
signature_matches(const char *b64, const unsigned char *expected, int expected_len)
{
	unsigned char got[128];
	int			n = decode_base64(b64, got, sizeof(got));

	return n == expected_len && CRYPTO_memcmp(got, expected, expected_len) == 0;
}

/*
 * SQL: webhook._verify(secret, msg_id, timestamp, signatures, body,
 * tolerance_s).  True when the timestamp is within the tolerance and any of
 * the space-separated signatures is valid for the secret: v1 for HMAC
 * secrets, v1a for ed25519 keys (whpk_ public or whsk_ private).
 */
Datum
webhook_verify(PG_FUNCTION_ARGS)
{
	char	   *secret = text_to_cstring(PG_GETARG_TEXT_PP(0));
	char	   *msg_id = text_to_cstring(PG_GETARG_TEXT_PP(1));
	char	   *ts_text = text_to_cstring(PG_GETARG_TEXT_PP(2));
	char	   *signatures = text_to_cstring(PG_GETARG_TEXT_PP(3));
	text	   *body = PG_GETARG_TEXT_PP(4);
	double		tolerance_s = PG_GETARG_FLOAT8(5);
	char	   *end;
	long long	ts;
	double		skew;
	bool		ed25519 = strncmp(secret, "whpk_", 5) == 0 || strncmp(secret, "whsk_", 5) == 0;
	unsigned char pub[ED25519_KEY_BYTES];
	WebhookKey	key;
	unsigned char mac[EVP_MAX_MD_SIZE];
	unsigned int maclen = 0;
	char	   *content;
	size_t		content_len;
	bool		ok = false;

	errno = 0;
	ts = strtoll(ts_text, &end, 10);
	if (errno != 0 || end == ts_text || *end != '\0')
		PG_RETURN_BOOL(false);
	skew = (double) time(NULL) - (double) ts;
	if (skew > tolerance_s || -skew > tolerance_s)
		PG_RETURN_BOOL(false);

	/* The signed bytes use the timestamp exactly as the header carried it. */
	{
		char	   *prefix = psprintf("%s.%s.", msg_id, ts_text);
		size_t		prefix_len = strlen(prefix);

		content_len = prefix_len + VARSIZE_ANY_EXHDR(body);
		content = palloc(content_len);
		memcpy(content, prefix, prefix_len);
		memcpy(content + prefix_len, VARDATA_ANY(body), VARSIZE_ANY_EXHDR(body));
	}

	if (ed25519)
	{
		if (secret[2] == 'p')
		{
			if (decode_base64(secret + 5, pub, sizeof(pub)) != ED25519_KEY_BYTES)
				ereport(ERROR,
						(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						 errmsg("invalid ed25519 public key"),
						 errdetail("A public key is whpk_ followed by the base64 of 32 bytes.")));
		}
		else
		{
			const char *problem = webhook_decode_key(SIGNING_ED25519, secret, &key);

			if (problem || !ed25519_public_from_seed(key.bytes, pub))
				ereport(ERROR,
						(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						 errmsg("invalid ed25519 secret"),
						 errdetail("%s", problem ? problem : "The seed was refused.")));
			explicit_bzero(&key, sizeof(key));
		}
	}
	else
	{
		const char *problem = webhook_decode_key(SIGNING_STANDARD, secret, &key);

		if (problem)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("invalid secret for signing scheme \"standard\""),
					 errdetail("%s", problem)));
		if (HMAC(EVP_sha256(), key.bytes, key.len, (unsigned char *) content, content_len, mac, &maclen) == NULL)
			ereport(ERROR, (errcode(ERRCODE_INTERNAL_ERROR), errmsg("could not compute HMAC-SHA256")));
		explicit_bzero(&key, sizeof(key));
	}

	for (char *tok = strtok(signatures, " "); tok != NULL && !ok; tok = strtok(NULL, " "))
	{
		if (!ed25519 && strncmp(tok, "v1,", 3) == 0)
			ok = signature_matches(tok + 3, mac, maclen);
		else if (ed25519 && strncmp(tok, "v1a,", 4) == 0)
		{
			unsigned char sig[64];
			EVP_PKEY   *pkey;
			EVP_MD_CTX *ctx;

			if (decode_base64(tok + 4, sig, sizeof(sig)) != (int) sizeof(sig))
				continue;
			pkey = EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, NULL, pub, ED25519_KEY_BYTES);
			ctx = EVP_MD_CTX_new();
			ok = pkey && ctx &&
				EVP_DigestVerifyInit(ctx, NULL, NULL, NULL, pkey) == 1 &&
				EVP_DigestVerify(ctx, sig, sizeof(sig), (unsigned char *) content, content_len) == 1;
			EVP_MD_CTX_free(ctx);
			EVP_PKEY_free(pkey);
		}
	}
	PG_RETURN_BOOL(ok);
}
