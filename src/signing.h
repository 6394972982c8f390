/*
 * signing.h
 *		Request signatures and secrets (Standard Webhooks v1 / v1a, GitHub-style hex HMAC).
 */
#ifndef WEBHOOK_SIGNING_H
#define WEBHOOK_SIGNING_H

typedef enum WebhookSigning
{
	SIGNING_STANDARD,
	SIGNING_ED25519,
	SIGNING_HMAC_SHA256,
	SIGNING_NONE,
	SIGNING_UNKNOWN
} WebhookSigning;

/* A decoded signing key, ready for repeated use. */
typedef struct WebhookKey
{
	WebhookSigning signing;
	int			len;
	unsigned char bytes[128];
} WebhookKey;

extern WebhookSigning webhook_signing_from_name(const char *name);

/* NULL when secret is usable with the scheme (and key filled in), else a reason. */
extern const char *webhook_decode_key(WebhookSigning signing, const char *secret, WebhookKey *key);

/*
 * The signature header value for one request, written into out (at least
 * WEBHOOK_SIGNATURE_MAX bytes).  Returns false if signing failed.
 */
#define WEBHOOK_SIGNATURE_MAX 160
extern bool webhook_compute_signature(const WebhookKey *key, const char *msg_id,
									  long long timestamp, const char *body, size_t body_len,
									  char *out);

#endif							/* WEBHOOK_SIGNING_H */
