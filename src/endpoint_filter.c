/*
 * endpoint_filter.c
 *		Content filters of endpoints (webhook.endpoints.filter): an SQL/JSON
 *		path that must be a predicate, so that jsonb_path_match() over an
 *		event's payload says true, false or unknown, and never "not a single
 *		boolean" at delivery time.  The queue evaluates filters when it
 *		matches events to endpoints (webhook._read_events), in SQL.
 */
#include "postgres.h"

#include "fmgr.h"
#include "utils/jsonpath.h"

PG_FUNCTION_INFO_V1(webhook_is_jsonpath_predicate);

/*
 * Is the path's top item a predicate check expression?  PostgreSQL gives a
 * predicate at the top of a path a boolean result (true, false, or null for
 * unknown); any other path returns items, which jsonb_path_match() refuses
 * for every event.  Checked on the parsed path, not by evaluating it, so a
 * strict-mode filter that errors on an empty object is still accepted.
 */
static bool
is_predicate(JsonPathItemType type)
{
	switch (type)
	{
		case jpiAnd:
		case jpiOr:
		case jpiNot:
		case jpiIsUnknown:
		case jpiEqual:
		case jpiNotEqual:
		case jpiLess:
		case jpiGreater:
		case jpiLessOrEqual:
		case jpiGreaterOrEqual:
		case jpiExists:
		case jpiStartsWith:
		case jpiLikeRegex:
			return true;
		default:
			return false;
	}
}

/* SQL: webhook._is_jsonpath_predicate(jsonpath), for the endpoints trigger. */
Datum
webhook_is_jsonpath_predicate(PG_FUNCTION_ARGS)
{
	JsonPath   *path = PG_GETARG_JSONPATH_P(0);
	JsonPathItem item;

	jspInit(&item, path);
	PG_RETURN_BOOL(is_predicate(item.type));
}
