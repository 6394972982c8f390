/*
 * proxy_rules.h
 *		Plain-C rules for proxy URLs (proxy_rules.c): what webhook.proxy and an
 *		endpoint's proxy column may hold, and what may be shown of them.
 */
#ifndef WEBHOOK_PROXY_RULES_H
#define WEBHOOK_PROXY_RULES_H

#include <stdbool.h>
#include <stddef.h>

#include "netguard.h"

/* The endpoint's proxy column value that means "connect directly". */
#define WEBHOOK_PROXY_DIRECT "direct"

/* The longest proxy URL accepted, like an endpoint's URL. */
#define WEBHOOK_PROXY_MAX_BYTES 2048

/*
 * Why a proxy URL cannot be used, or NULL: http:// or https://, a host, an
 * optional port and user info, nothing after the authority but "/".  When
 * policy_checked is true, a host written as an IP address must also be one
 * the network policy allows (policy NULL: the allowed networks are invalid,
 * policy_error says why).  The answer is a static string or written into buf.
 */
extern const char *webhook_proxy_check(const char *proxy, bool policy_checked,
									   const NetGuardPolicy *policy, const char *policy_error,
									   char *buf, size_t buflen);

#endif							/* WEBHOOK_PROXY_RULES_H */
