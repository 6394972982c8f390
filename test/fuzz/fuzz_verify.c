/*
 * fuzz_verify.c
 *		libFuzzer target: webhook.verify()'s core and secret decoding
 *		(src/signature.c) on arbitrary secrets, headers and bodies.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "signature.h"

int			LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Split the input at NULs into secret, id, timestamp, signatures; the rest is the body. */
int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char	   *copy = malloc(size + 5);
	const char *parts[4];
	const char *p;
	const char *body;
	const char *problem;
	WebhookKey	key;
	char		out[WEBHOOK_SIGNATURE_MAX];

	memcpy(copy, data, size);
	memset(copy + size, 0, 5);
	p = copy;
	for (int i = 0; i < 4; i++)
	{
		parts[i] = p;
		p += strlen(p) + 1;
		if (p > copy + size)
			p = copy + size;
	}
	body = p;

	(void) webhook_verify_request(parts[0], parts[1], parts[2], parts[3], body, strlen(body),
								  1614265330LL, 300.0, &problem);
	for (int s = SIGNING_STANDARD; s <= SIGNING_NONE; s++)
		if (webhook_decode_key((WebhookSigning) s, parts[0], &key) == NULL)
			(void) webhook_compute_signature(&key, parts[1], 1614265330LL, body, strlen(body), out);
	free(copy);
	return 0;
}
