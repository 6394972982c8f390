/*
 * signature.c
 *		The signing schemes and their cryptography in plain C: the table of
 *		schemes, decoding keys, signing a request, verifying one.  No palloc
 *		or ereport: used by the delivery worker, by the SQL functions and the
 *		endpoints trigger (signing.c, endpoint_secrets.c) and by the fuzz
 *		targets in test/fuzz.
 *
 * standard:    Standard Webhooks v1, v1,<base64 HMAC-SHA256(key, id.ts.body)>,
 *              key = base64 after the whsec_ prefix.
 * ed25519:     Standard Webhooks v1a, v1a,<base64 ed25519 signature of the same
 *              bytes>, secret whsk_<base64 of seed || public key>.
 * hmac-sha256: sha256=<hex HMAC-SHA256(secret, body)>, as GitHub sends it,
 *              or bare hex, or base64 (the endpoint's signature_encoding).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "signature.h"

static const char b64_alphabet[] =
"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/*
 * The signing schemes, the one list of them: webhook.endpoints' CHECK
 * constraint and trigger, the SQL functions and the worker all read it.
 */
const WebhookSigningScheme webhook_signing_schemes[] = {
	{"standard", SIGNING_STANDARD, true, false, false},
	{"ed25519", SIGNING_ED25519, true, true, false},
	{"hmac-sha256", SIGNING_HMAC_SHA256, true, false, true},
	{"none", SIGNING_NONE, false, false, false},
};

const int	webhook_signing_scheme_count = sizeof(webhook_signing_schemes) / sizeof(webhook_signing_schemes[0]);

/*
 * The value forms of an hmac-sha256 signature header, the one list of them:
 * webhook.endpoints' CHECK constraint and trigger and the worker read it.
 */
const WebhookSignatureEncodingForm webhook_signature_encodings[] = {
	{"sha256=hex", SIGNATURE_SHA256_HEX},
	{"hex", SIGNATURE_HEX},
	{"base64", SIGNATURE_BASE64},
};

const int	webhook_signature_encoding_count = sizeof(webhook_signature_encodings) / sizeof(webhook_signature_encodings[0]);

/* The signature encoding of this name (as in signature_encoding), or NULL. */
const WebhookSignatureEncodingForm *
webhook_signature_encoding(const char *name)
{
	for (int i = 0; i < webhook_signature_encoding_count; i++)
		if (strcmp(name, webhook_signature_encodings[i].name) == 0)
			return &webhook_signature_encodings[i];
	return NULL;
}

/* The scheme of this name (as in the signing column), or NULL. */
const WebhookSigningScheme *
webhook_signing_scheme(const char *name)
{
	for (int i = 0; i < webhook_signing_scheme_count; i++)
		if (strcmp(name, webhook_signing_schemes[i].name) == 0)
			return &webhook_signing_schemes[i];
	return NULL;
}

/* Map the signing column's text to the enum used everywhere else. */
WebhookSigning
webhook_signing_from_name(const char *name)
{
	const WebhookSigningScheme *scheme = webhook_signing_scheme(name);

	return scheme ? scheme->signing : SIGNING_UNKNOWN;
}

/* Standard base64 with padding into dst (NUL terminated); returns the length. */
int
webhook_base64_encode(const unsigned char *src, int len, char *dst, int dstlen)
{
	int			n = 0;

	if (dstlen < ((len + 2) / 3) * 4 + 1)
	{
		if (dstlen > 0)
			dst[0] = '\0';
		return 0;
	}
	for (int i = 0; i < len; i += 3)
	{
		unsigned int v = src[i] << 16;

		if (i + 1 < len)
			v |= src[i + 1] << 8;
		if (i + 2 < len)
			v |= src[i + 2];
		dst[n++] = b64_alphabet[(v >> 18) & 63];
		dst[n++] = b64_alphabet[(v >> 12) & 63];
		dst[n++] = i + 1 < len ? b64_alphabet[(v >> 6) & 63] : '=';
		dst[n++] = i + 2 < len ? b64_alphabet[v & 63] : '=';
	}
	dst[n] = '\0';
	return n;
}

/*
 * Decode standard, padded base64 into at most dstlen bytes.
 * Returns the length, -1 when it is not base64, or dstlen + 1 when it is
 * longer than dst.
 */
int
webhook_base64_decode(const char *src, unsigned char *dst, int dstlen)
{
	size_t		srclen = strlen(src);
	unsigned int acc = 0;
	int			bits = 0;
	int			n = 0;
	size_t		i;

	while (srclen > 0 && src[srclen - 1] == '=')
		srclen--;
	if (srclen == 0 || strlen(src) - srclen > 2 || strlen(src) % 4 != 0)
		return -1;
	for (i = 0; i < srclen; i++)
	{
		const char *p = src[i] ? strchr(b64_alphabet, src[i]) : NULL;

		if (p == NULL)
			return -1;
		acc = (acc << 6) | (unsigned int) (p - b64_alphabet);
		bits += 6;
		if (bits >= 8)
		{
			bits -= 8;
			if (n >= dstlen)
				return dstlen + 1;
			dst[n++] = (acc >> bits) & 0xff;
		}
	}
	return n;
}

/* The public half of an ed25519 key, from its 32-byte seed. */
bool
webhook_ed25519_public_from_seed(const unsigned char *seed, unsigned char *pub)
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
 * Returns NULL, or why the secret cannot be used (a full sentence).
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

				key->len = webhook_base64_decode(b64, key->bytes, sizeof(key->bytes));
				if (key->len < 0)
				{
					key->len = 0;
					return "A standard secret is whsec_ followed by base64.";
				}
				if (key->len < 16 || key->len > 64)
				{
					key->len = 0;
					return "A standard secret must hold between 16 and 64 bytes.";
				}
				return NULL;
			}
		case SIGNING_HMAC_SHA256:
			{
				size_t		len = strlen(secret);

				if (len == 0)
					return "The secret must not be empty.";
				if (len > sizeof(key->bytes))
					return "The secret must not be longer than 128 bytes.";
				key->len = (int) len;
				memcpy(key->bytes, secret, len);
				return NULL;
			}
		case SIGNING_ED25519:
			{
				unsigned char pub[ED25519_KEY_BYTES];

				if (strncmp(secret, "whsk_", 5) != 0)
					return "An ed25519 secret is whsk_ followed by the base64 of the 32-byte seed, optionally followed by the 32-byte public key.";
				key->len = webhook_base64_decode(secret + 5, key->bytes, sizeof(key->bytes));
				if (key->len < 0)
				{
					key->len = 0;
					return "An ed25519 secret is whsk_ followed by base64.";
				}
				if (key->len != ED25519_KEY_BYTES && key->len != 2 * ED25519_KEY_BYTES)
				{
					key->len = 0;
					return "An ed25519 secret must hold 32 or 64 bytes after whsk_.";
				}
				if (!webhook_ed25519_public_from_seed(key->bytes, pub))
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

/* "<id>.<timestamp>.<body>" in a fresh malloc'd buffer, or NULL. */
static unsigned char *
signed_content(const char *msg_id, const char *timestamp, const char *body, size_t body_len,
			   size_t *content_len)
{
	size_t		id_len = strlen(msg_id);
	size_t		ts_len = strlen(timestamp);
	unsigned char *content = malloc(id_len + ts_len + 2 + body_len + 1);

	if (content == NULL)
		return NULL;
	memcpy(content, msg_id, id_len);
	content[id_len] = '.';
	memcpy(content + id_len + 1, timestamp, ts_len);
	content[id_len + 1 + ts_len] = '.';
	memcpy(content + id_len + ts_len + 2, body, body_len);
	*content_len = id_len + ts_len + 2 + body_len;
	return content;
}

/*
 * Sign one request into out (WEBHOOK_SIGNATURE_MAX bytes).  Standard
 * schemes sign "<id>.<timestamp>.<body>"; the GitHub-style scheme signs the
 * body alone, written as the key's encoding says.  Returns false if signing failed.
 */
bool
webhook_compute_signature(const WebhookKey *key, const char *msg_id,
						  long long timestamp, const char *body, size_t body_len,
						  char *out)
{
	unsigned char mac[EVP_MAX_MD_SIZE];
	unsigned int maclen = 0;
	unsigned char *content;
	size_t		content_len = 0;
	char		ts[32];
	bool		ok = false;

	out[0] = '\0';
	if (key->signing == SIGNING_NONE)
		return true;

	if (key->signing == SIGNING_HMAC_SHA256)
	{
		if (HMAC(EVP_sha256(), key->bytes, key->len, (const unsigned char *) body, body_len,
				 mac, &maclen) == NULL)
			return false;
		switch (key->encoding)
		{
			case SIGNATURE_SHA256_HEX:
				memcpy(out, "sha256=", 7);
				hex_encode_lower(mac, maclen, out + 7);
				break;
			case SIGNATURE_HEX:
				hex_encode_lower(mac, maclen, out);
				break;
			case SIGNATURE_BASE64:
				webhook_base64_encode(mac, maclen, out, WEBHOOK_SIGNATURE_MAX);
				break;
		}
		return true;
	}

	snprintf(ts, sizeof(ts), "%lld", timestamp);
	content = signed_content(msg_id, ts, body, body_len, &content_len);
	if (content == NULL)
		return false;

	if (key->signing == SIGNING_STANDARD)
	{
		if (HMAC(EVP_sha256(), key->bytes, key->len, content, content_len, mac, &maclen) != NULL)
		{
			memcpy(out, "v1,", 3);
			webhook_base64_encode(mac, maclen, out + 3, WEBHOOK_SIGNATURE_MAX - 3);
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
			EVP_DigestSign(ctx, sig, &siglen, content, content_len) == 1)
		{
			memcpy(out, "v1a,", 4);
			webhook_base64_encode(sig, (int) siglen, out + 4, WEBHOOK_SIGNATURE_MAX - 4);
			ok = true;
		}
		EVP_MD_CTX_free(ctx);
		EVP_PKEY_free(pkey);
	}
	free(content);
	return ok;
}

/* Does one v1a signature verify with the public key? */
static bool
ed25519_signature_valid(const unsigned char *pub, const char *b64,
						const unsigned char *content, size_t content_len)
{
	unsigned char sig[64];
	EVP_PKEY   *pkey;
	EVP_MD_CTX *ctx;
	bool		ok;

	if (webhook_base64_decode(b64, sig, sizeof(sig)) != (int) sizeof(sig))
		return false;
	pkey = EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, NULL, pub, ED25519_KEY_BYTES);
	ctx = EVP_MD_CTX_new();
	ok = pkey && ctx &&
		EVP_DigestVerifyInit(ctx, NULL, NULL, NULL, pkey) == 1 &&
		EVP_DigestVerify(ctx, sig, sizeof(sig), content, content_len) == 1;
	EVP_MD_CTX_free(ctx);
	EVP_PKEY_free(pkey);
	return ok;
}

/*
 * Verify a Standard Webhooks request as a receiver does: the timestamp must
 * be within tolerance_s of now, and any of the space-separated signatures
 * must be valid for the secret (v1 for whsec_ secrets; v1a for whpk_ public
 * or whsk_ private ed25519 keys).  HMACs are compared in constant time.  The
 * timestamp is signed exactly as the header carried it.
 */
WebhookVerifyResult
webhook_verify_request(const char *secret, const char *msg_id, const char *timestamp,
					   const char *signatures, const char *body, size_t body_len,
					   long long now, double tolerance_s, const char **problem)
{
	bool		ed25519 = strncmp(secret, "whpk_", 5) == 0 || strncmp(secret, "whsk_", 5) == 0;
	unsigned char pub[ED25519_KEY_BYTES];
	unsigned char mac[EVP_MAX_MD_SIZE];
	unsigned int maclen = 0;
	WebhookKey	key;
	unsigned char *content;
	size_t		content_len = 0;
	char	   *end;
	long long	ts;
	double		skew;
	bool		ok = false;
	const char *p;

	*problem = NULL;
	errno = 0;
	ts = strtoll(timestamp, &end, 10);
	if (errno != 0 || end == timestamp || *end != '\0')
		return VERIFY_BAD_TIMESTAMP;
	skew = (double) now - (double) ts;
	if (skew > tolerance_s || -skew > tolerance_s)
		return VERIFY_BAD_TIMESTAMP;

	if (ed25519 && secret[2] == 'p')
	{
		if (webhook_base64_decode(secret + 5, pub, sizeof(pub)) != ED25519_KEY_BYTES)
		{
			*problem = "A public key is whpk_ followed by the base64 of 32 bytes.";
			return VERIFY_BAD_SECRET;
		}
	}
	else
	{
		*problem = webhook_decode_key(ed25519 ? SIGNING_ED25519 : SIGNING_STANDARD, secret, &key);
		if (*problem == NULL && ed25519 && !webhook_ed25519_public_from_seed(key.bytes, pub))
			*problem = "The ed25519 seed was refused by OpenSSL.";
		if (*problem)
		{
			OPENSSL_cleanse(&key, sizeof(key));
			return VERIFY_BAD_SECRET;
		}
	}

	content = signed_content(msg_id, timestamp, body, body_len, &content_len);
	if (content == NULL)
		return VERIFY_BAD_SIGNATURE;
	if (!ed25519 &&
		HMAC(EVP_sha256(), key.bytes, key.len, content, content_len, mac, &maclen) == NULL)
		maclen = 0;
	if (!ed25519)
		OPENSSL_cleanse(&key, sizeof(key));

	/* Walk the space-separated list without modifying it. */
	for (p = signatures; *p && !ok;)
	{
		const char *tok_end = strchr(p, ' ');
		size_t		tok_len = tok_end ? (size_t) (tok_end - p) : strlen(p);
		char		tok[256];

		if (tok_len > 0 && tok_len < sizeof(tok))
		{
			memcpy(tok, p, tok_len);
			tok[tok_len] = '\0';
			if (!ed25519 && maclen > 0 && strncmp(tok, "v1,", 3) == 0)
			{
				unsigned char got[128];
				int			n = webhook_base64_decode(tok + 3, got, sizeof(got));

				ok = n == (int) maclen && CRYPTO_memcmp(got, mac, maclen) == 0;
			}
			else if (ed25519 && strncmp(tok, "v1a,", 4) == 0)
				ok = ed25519_signature_valid(pub, tok + 4, content, content_len);
		}
		p += tok_len;
		while (*p == ' ')
			p++;
	}
	free(content);
	return ok ? VERIFY_OK : VERIFY_BAD_SIGNATURE;
}
