/*
 * fuzz_url.c
 *		libFuzzer target: endpoint URL and header validation (src/url_rules.c, src/header_rules.c)
 *		must never crash, overflow or leak, whatever the input; and what
 *		messages show of a URL never holds user info, path, query or fragment.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "header_rules.h"
#include "url_rules.h"

int			LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Input: url, then NUL, then header name, NUL, header value. */
int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char	   *copy = malloc(size + 3);
	const char *url;
	const char *name;
	const char *value;
	char		buf[512];
	NetGuardPolicy policy;
	char		err[128];

	memcpy(copy, data, size);
	copy[size] = copy[size + 1] = copy[size + 2] = '\0';
	url = copy;
	name = url + strlen(url) + 1;
	value = name + strlen(name) + 1;
	if (value > copy + size)
		value = copy + size;
	if (name > copy + size)
		name = copy + size;

	memset(&policy, 0, sizeof(policy));
	netguard_parse_allowlist("10.0.0.0/8, 127.0.0.1", &policy, err, sizeof(err));
	(void) webhook_url_check(url, false, &policy, NULL, buf, sizeof(buf));
	(void) webhook_url_check(url, true, NULL, "bad list", buf, sizeof(buf));
	(void) webhook_header_check(name, value);
	webhook_url_origin(url, buf, sizeof(buf));
	if (strpbrk(buf, "@?#") != NULL ||
		strchr(strstr(buf, "://") ? strstr(buf, "://") + 3 : buf, '/') != NULL)
		abort();
	free(copy);
	return 0;
}
