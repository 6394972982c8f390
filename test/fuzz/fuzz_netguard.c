/*
 * fuzz_netguard.c
 *		libFuzzer target: the network guard's parsers (src/netguard.c).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "netguard.h"

int			LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* The input is tried as an allowlist and as a literal host. */
int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char	   *copy = malloc(size + 1);
	NetGuardPolicy policy;
	char		err[128];
	const char *klass;

	memcpy(copy, data, size);
	copy[size] = '\0';
	(void) netguard_parse_allowlist(copy, &policy, err, sizeof(err));
	(void) netguard_classify_literal(copy, &klass);
	free(copy);
	return 0;
}
