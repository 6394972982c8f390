/*
 * header_rules.h
 *		The plain-C rule for request header names and values (header_rules.c).
 */
#ifndef WEBHOOK_HEADER_RULES_H
#define WEBHOOK_HEADER_RULES_H

#include <stdbool.h>

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

/*
 * Why a header the user names would be sent twice, beside one the endpoint's
 * request format sets (webhook_header_clash).
 */
typedef enum WebhookHeaderClash
{
	HEADER_CLASH_NONE,
	HEADER_CLASH_EVENT_TYPE,	/* named like the event type header */
	HEADER_CLASH_CLOUDEVENTS	/* ce-*, in CloudEvents binary mode */
} WebhookHeaderClash;

extern const char *const webhook_reserved_headers_detail;
extern const char *const webhook_cloudevents_headers_detail;
extern WebhookHeaderProblem webhook_header_check(const char *name, const char *value);
extern WebhookHeaderClash webhook_header_clash(const char *name, const char *event_type_header,
											   bool cloudevents_binary);

#endif							/* WEBHOOK_HEADER_RULES_H */
