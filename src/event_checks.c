/*
 * event_checks.c
 *		What send() and a watch check of an event before it is queued: the
 *		rule for event type names and subscription patterns, the types the
 *		extension keeps for itself, and the payload size.  Each rule is
 *		written here once; the install script calls these functions from its
 *		CHECK constraints, triggers and send().
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "fmgr.h"
#include "utils/array.h"
#include "utils/builtins.h"

#include "event_checks.h"
#include "webhook.h"

PG_FUNCTION_INFO_V1(webhook_is_event_type_name);
PG_FUNCTION_INFO_V1(webhook_is_event_type_pattern);
PG_FUNCTION_INFO_V1(webhook_require_event_type);
PG_FUNCTION_INFO_V1(webhook_require_unreserved_event_type);
PG_FUNCTION_INFO_V1(webhook_type_patterns);
PG_FUNCTION_INFO_V1(webhook_check_payload_size);

/* What is wrong with an event type or a subscription pattern, if anything. */
typedef enum EventTypeProblem
{
	EVENT_TYPE_OK,
	EVENT_TYPE_TOO_LONG,
	EVENT_TYPE_INVALID
} EventTypeProblem;

/*
 * The one rule for event types: dot-separated, non-empty segments of
 * [A-Za-z0-9_-], at most WEBHOOK_EVENT_TYPE_MAX_BYTES in all.  A pattern is
 * also "*" or a type followed by ".*".  One linear pass: the length is known
 * before any work depends on it, so a long input costs nothing.
 */
static EventTypeProblem
event_type_problem(const char *name, size_t len, bool pattern)
{
	bool		segment_empty = true;

	if (len > WEBHOOK_EVENT_TYPE_MAX_BYTES)
		return EVENT_TYPE_TOO_LONG;
	if (pattern && len == 1 && name[0] == '*')
		return EVENT_TYPE_OK;
	if (pattern && len >= 2 && name[len - 1] == '*' && name[len - 2] == '.')
		len -= 2;
	if (len == 0)
		return EVENT_TYPE_INVALID;
	for (size_t i = 0; i < len; i++)
	{
		char		c = name[i];

		if (c == '.')
		{
			if (segment_empty)
				return EVENT_TYPE_INVALID;
			segment_empty = true;
		}
		else if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
				 (c >= '0' && c <= '9') || c == '_' || c == '-')
			segment_empty = false;
		else
			return EVENT_TYPE_INVALID;
	}
	return segment_empty ? EVENT_TYPE_INVALID : EVENT_TYPE_OK;
}

/* Raise the error for an event type or pattern that breaks the rule. */
void
webhook_require_event_type_name(text *value, bool pattern)
{
	const char *name = VARDATA_ANY(value);
	size_t		len = VARSIZE_ANY_EXHDR(value);
	EventTypeProblem problem = event_type_problem(name, len, pattern);

	if (problem == EVENT_TYPE_TOO_LONG)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg(pattern ? "event type pattern is too long" : "event type is too long"),
				 errdetail("It has %zu bytes.", len),
				 errhint("Event types and patterns have at most %d bytes.", WEBHOOK_EVENT_TYPE_MAX_BYTES)));
	if (problem == EVENT_TYPE_INVALID && pattern)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid event type pattern \"%s\"", text_to_cstring(value)),
				 errdetail("A pattern is an exact event type, a prefix followed by \".*\", or \"*\"; event types are dot-separated segments of letters, digits, \"_\" and \"-\"."),
				 errhint("For example: {order.created}, {order.*} or {*}.")));
	if (problem == EVENT_TYPE_INVALID)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid event type \"%s\"", text_to_cstring(value)),
				 errdetail("Event types are dot-separated segments of letters, digits, \"_\" and \"-\"."),
				 errhint("For example: order.created.")));
}

/*
 * Event types named "webhook" or "webhook.<anything>", in any case, are the
 * extension's own (webhook.ping, webhook.endpoint.disabled): a receiver must
 * be able to trust that such an event came from the extension.  Refuse them
 * to callers; what names the input ("event type" or "event prefix").
 */
void
webhook_require_unreserved(const char *name, const char *what)
{
	if (pg_strcasecmp(name, "webhook") == 0 || pg_strncasecmp(name, "webhook.", 8) == 0)
		ereport(ERROR,
				(errcode(ERRCODE_RESERVED_NAME),
				 errmsg("%s \"%s\" is reserved", what, name),
				 errdetail("Event types starting with \"webhook.\" are sent only by the extension itself."),
				 errhint("Choose another first segment, such as \"app\".")));
}

/* SQL: webhook._require_unreserved_event_type(name), for send(). */
Datum
webhook_require_unreserved_event_type(PG_FUNCTION_ARGS)
{
	webhook_require_unreserved(text_to_cstring(PG_GETARG_TEXT_PP(0)), "event type");
	PG_RETURN_VOID();
}

/* SQL: webhook._is_event_type_name(name), for CHECK constraints. */
Datum
webhook_is_event_type_name(PG_FUNCTION_ARGS)
{
	text	   *name = PG_GETARG_TEXT_PP(0);

	PG_RETURN_BOOL(event_type_problem(VARDATA_ANY(name), VARSIZE_ANY_EXHDR(name), false) == EVENT_TYPE_OK);
}

/* SQL: webhook._is_event_type_pattern(pattern). */
Datum
webhook_is_event_type_pattern(PG_FUNCTION_ARGS)
{
	text	   *pattern = PG_GETARG_TEXT_PP(0);

	PG_RETURN_BOOL(event_type_problem(VARDATA_ANY(pattern), VARSIZE_ANY_EXHDR(pattern), true) == EVENT_TYPE_OK);
}

/*
 * SQL: webhook._require_event_type(name, pattern): the error users see for a
 * bad event type or pattern, whoever gives it (send(), the catalogue, an
 * endpoint's subscriptions).
 */
Datum
webhook_require_event_type(PG_FUNCTION_ARGS)
{
	webhook_require_event_type_name(PG_GETARG_TEXT_PP(0), PG_GETARG_BOOL(1));
	PG_RETURN_VOID();
}

/*
 * SQL: webhook._type_patterns('order.item.added') = {order.item.added, *,
 * order.*, order.item.*}: every subscription pattern that takes this event
 * type, so that matching an endpoint is one array overlap (&&) that the
 * planner can inline, instead of a subquery per endpoint.  Its size grows
 * with the square of the length: only valid event types are expanded.
 */
Datum
webhook_type_patterns(PG_FUNCTION_ARGS)
{
	text	   *type = PG_GETARG_TEXT_PP(0);
	char	   *name;
	int			len;
	ArrayBuildState *astate = initArrayResult(TEXTOID, CurrentMemoryContext, false);

	webhook_require_event_type_name(type, false);
	name = text_to_cstring(type);
	len = strlen(name);
	astate = accumArrayResult(astate, PointerGetDatum(cstring_to_text(name)), false, TEXTOID, CurrentMemoryContext);
	astate = accumArrayResult(astate, CStringGetTextDatum("*"), false, TEXTOID, CurrentMemoryContext);
	for (int i = 0; i < len; i++)
	{
		if (name[i] == '.')
		{
			char	   *prefix = psprintf("%.*s.*", i, name);

			astate = accumArrayResult(astate, CStringGetTextDatum(prefix), false, TEXTOID, CurrentMemoryContext);
		}
	}
	PG_RETURN_DATUM(makeArrayResult(astate, CurrentMemoryContext));
}

/*
 * The one payload-size rule, for send() and for every row a watch emits: the
 * payload's JSON text has at most webhook.max_payload_bytes bytes.  The hint
 * names what the sender can change.
 */
void
webhook_require_payload_size(int64 bytes, bool from_watch)
{
	if (bytes > webhook_max_payload_bytes)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("payload is too large"),
				 errdetail("The payload has " INT64_FORMAT " bytes; webhook.max_payload_bytes is %d.",
						   bytes, webhook_max_payload_bytes),
				 from_watch ?
				 errhint("Send a reference to the data instead, exclude large columns with exclude_columns, or raise webhook.max_payload_bytes.") :
				 errhint("Send a reference to the data instead, or raise webhook.max_payload_bytes.")));
}

/*
 * SQL: webhook._check_payload_size(bytes, from_watch): true, or the error of
 * a payload that is too large.  Returning true lets a set-based INSERT check
 * each row inside a CASE.
 */
Datum
webhook_check_payload_size(PG_FUNCTION_ARGS)
{
	webhook_require_payload_size(PG_GETARG_INT64(0), PG_GETARG_BOOL(1));
	PG_RETURN_BOOL(true);
}
