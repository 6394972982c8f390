/*
 * url_rules.h
 *		Plain-C rules for endpoint URLs (url_rules.c), so that the SQL layer
 *		and the fuzz targets share one implementation.
 */
#ifndef WEBHOOK_URL_RULES_H
#define WEBHOOK_URL_RULES_H

#include <stdbool.h>
#include <stddef.h>

#include "netguard.h"

/*
 * Why a URL cannot be a webhook target, or NULL.  policy is NULL when the
 * configured allowed networks are invalid (policy_error says why).  The
 * answer is a static string or written into buf.
 */
extern const char *webhook_url_check(const char *url, bool require_https,
									 const NetGuardPolicy *policy, const char *policy_error,
									 char *buf, size_t buflen);

/*
 * scheme://host[:port] of a URL, without user info, path, query or
 * fragment: what messages and events may show of it.  Written into buf.
 */
extern void webhook_url_origin(const char *url, char *buf, size_t buflen);

#endif							/* WEBHOOK_URL_RULES_H */
