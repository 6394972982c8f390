/*
 * header_rules.h
 *		The plain-C rule for request header names and values (header_rules.c).
 */
#ifndef WEBHOOK_HEADER_RULES_H
#define WEBHOOK_HEADER_RULES_H

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

extern const char *const webhook_reserved_headers_detail;
extern WebhookHeaderProblem webhook_header_check(const char *name, const char *value);

#endif							/* WEBHOOK_HEADER_RULES_H */
