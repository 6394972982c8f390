/*
 * header_rules.c
 *		The one rule for request header names and values, in plain C: which
 *		names are HTTP tokens the extension lets users set, and which values
 *		fit on one header line, and which names the request format already
 *		sends.  The endpoints trigger (endpoint_secrets.c)
 *		applies it to the extra headers and to the signature header alike, the
 *		worker again to what it sends, and test/fuzz drives it directly.
 */
#include <string.h>
#include <strings.h>

#include "header_rules.h"

/*
 * Names a user may not set: the extension sets the first ones itself, the
 * rest belong to HTTP's own framing.  webhook-* and proxy-* are reserved as
 * prefixes (see webhook_header_check).  Keep webhook_reserved_headers_detail
 * in step.
 */
static const char *const reserved_headers[] = {
	"content-type", "content-length", "host",
	"transfer-encoding", "connection", "keep-alive", "te", "trailer", "upgrade", "expect"
};

/* The reserved names in words, for the errors that refuse one. */
const char *const webhook_reserved_headers_detail =
"The extension sets webhook-*, Content-Type, Content-Length and Host; Connection, Transfer-Encoding, Keep-Alive, TE, Trailer, Upgrade, Expect and Proxy-* belong to the HTTP connection.";

/*
 * The one rule for the names and values of request headers, used for the
 * extra headers of an endpoint and for its signature header alike: the name
 * is an HTTP token of bounded length that neither the extension nor HTTP's
 * own framing sets, and the value cannot start a new header line.
 */
WebhookHeaderProblem
webhook_header_check(const char *name, const char *value)
{
	size_t		len = strlen(name);

	if (len > WEBHOOK_HEADER_NAME_MAX_BYTES)
		return HEADER_NAME_TOO_LONG;
	if (len == 0 ||
		strspn(name, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789!#$%&'*+.^_`|~-") != len)
		return HEADER_BAD_NAME;
	if (strncasecmp(name, "webhook-", 8) == 0 || strncasecmp(name, "proxy-", 6) == 0)
		return HEADER_RESERVED;
	for (size_t i = 0; i < sizeof(reserved_headers) / sizeof(reserved_headers[0]); i++)
		if (strcasecmp(name, reserved_headers[i]) == 0)
			return HEADER_RESERVED;
	if (strpbrk(value, "\r\n") != NULL)
		return HEADER_BAD_VALUE;
	return HEADER_OK;
}

/* The names binary CloudEvents reserves, in words, for the errors. */
const char *const webhook_cloudevents_headers_detail =
"In format cloudevents (binary mode) every ce-* header is a CloudEvents attribute: the extension sends ce-specversion, ce-id, ce-source, ce-type and ce-time, and Content-Type.";

/*
 * Would a header the user names (an extra header, the event type header or
 * the signature header) be sent twice, beside one the request format sets:
 * the event type header (pass NULL to skip that test), or in CloudEvents
 * binary mode any ce-* attribute?  The endpoints trigger refuses such a
 * name when written, the worker a row written past the trigger.
 */
WebhookHeaderClash
webhook_header_clash(const char *name, const char *event_type_header, bool cloudevents_binary)
{
	if (event_type_header != NULL && strcasecmp(name, event_type_header) == 0)
		return HEADER_CLASH_EVENT_TYPE;
	if (cloudevents_binary && strncasecmp(name, "ce-", 3) == 0)
		return HEADER_CLASH_CLOUDEVENTS;
	return HEADER_CLASH_NONE;
}
