/*
 * urlcheck.h
 *		Plain-C checks of endpoint URLs and request headers (urlcheck.c), so
 *		that the SQL layer and the fuzz targets share one implementation.
 */
#ifndef WEBHOOK_URLCHECK_H
#define WEBHOOK_URLCHECK_H

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

/* Longest header name, for extra headers and the signature header. */
#define WEBHOOK_HEADER_NAME_MAX_BYTES 128

/* What is wrong with an extra request header, if anything. */
typedef enum WebhookHeaderProblem
{
	HEADER_OK,
	HEADER_BAD_NAME,			/* not an HTTP token */
	HEADER_NAME_TOO_LONG,		/* above WEBHOOK_HEADER_NAME_MAX_BYTES */
	HEADER_RESERVED,			/* set by the extension itself */
	HEADER_BAD_VALUE			/* line break or NUL in the value */
} WebhookHeaderProblem;

extern WebhookHeaderProblem webhook_header_check(const char *name, const char *value);

#endif							/* WEBHOOK_URLCHECK_H */
