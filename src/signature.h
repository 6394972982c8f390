/*
 * signature.h
 *		Signing schemes, request signatures and secrets (Standard Webhooks
 *		v1 / v1a, GitHub-style hex HMAC).  The functions here are plain C
 *		(signature.c): no palloc, no ereport, so they can be fuzzed and called
 *		from anywhere.
 */
#ifndef WEBHOOK_SIGNATURE_H
#define WEBHOOK_SIGNATURE_H

#include <stdbool.h>
#include <stddef.h>

typedef enum WebhookSigning
{
	SIGNING_STANDARD,
	SIGNING_ED25519,
	SIGNING_HMAC_SHA256,
	SIGNING_NONE,
	SIGNING_UNKNOWN
} WebhookSigning;

/* A signing scheme: its name in webhook.endpoints.signing, and its kind. */
typedef struct WebhookSigningScheme
{
	const char *name;
	WebhookSigning signing;
	bool		signs;			/* sends a signature, so has a secret */
	bool		public_key;		/* receivers verify with a public key */
	bool		in_signature_header;	/* sent in the endpoint's
										 * signature_header, not in
										 * webhook-signature */
} WebhookSigningScheme;

extern const WebhookSigningScheme webhook_signing_schemes[];
extern const int webhook_signing_scheme_count;

/*
 * How an hmac-sha256 signature is written in its header (the endpoint's
 * signature_encoding): "sha256=<hex>" as GitHub sends it, bare hex, or
 * base64.  The first is the default and enum value 0.
 */
typedef enum WebhookSignatureEncoding
{
	SIGNATURE_SHA256_HEX = 0,
	SIGNATURE_HEX,
	SIGNATURE_BASE64
} WebhookSignatureEncoding;

/* A signature encoding: its name in webhook.endpoints.signature_encoding. */
typedef struct WebhookSignatureEncodingForm
{
	const char *name;
	WebhookSignatureEncoding encoding;
} WebhookSignatureEncodingForm;

extern const WebhookSignatureEncodingForm webhook_signature_encodings[];
extern const int webhook_signature_encoding_count;

/* A decoded signing key, ready for repeated use. */
typedef struct WebhookKey
{
	WebhookSigning signing;
	WebhookSignatureEncoding encoding;	/* hmac-sha256 only; set after
										 * decoding, which leaves the default */
	int			len;
	unsigned char bytes[128];
} WebhookKey;

#define ED25519_KEY_BYTES 32
#define WEBHOOK_SIGNATURE_MAX 160

/* What webhook_verify_request concluded. */
typedef enum WebhookVerifyResult
{
	VERIFY_OK,
	VERIFY_BAD_SIGNATURE,		/* no signature matches, or none given */
	VERIFY_BAD_TIMESTAMP,		/* not a number, or outside the tolerance */
	VERIFY_BAD_SECRET			/* the secret or key cannot be used */
} WebhookVerifyResult;

extern const WebhookSigningScheme *webhook_signing_scheme(const char *name);
extern WebhookSigning webhook_signing_from_name(const char *name);
extern const WebhookSignatureEncodingForm *webhook_signature_encoding(const char *name);
extern const char *webhook_decode_key(WebhookSigning signing, const char *secret, WebhookKey *key);
extern bool webhook_compute_signature(const WebhookKey *key, const char *msg_id,
									  long long timestamp, const char *body, size_t body_len,
									  char *out);
extern WebhookVerifyResult webhook_verify_request(const char *secret, const char *msg_id,
												  const char *timestamp, const char *signatures,
												  const char *body, size_t body_len,
												  long long now, double tolerance_s,
												  const char **problem);
extern bool webhook_ed25519_public_from_seed(const unsigned char *seed, unsigned char *pub);
extern int	webhook_base64_encode(const unsigned char *src, int len, char *dst, int dstlen);
extern int	webhook_base64_decode(const char *src, unsigned char *dst, int dstlen);

#endif							/* WEBHOOK_SIGNATURE_H */
