/*
 * endpoint_filter.c
 *		Content filters of endpoints (webhook.endpoints.filter): an SQL/JSON
 *		path that must be a predicate without variables, so that
 *		jsonb_path_match() over an event's payload says true, false or
 *		unknown, and never "not a single boolean" at delivery time.  The
 *		queue evaluates filters when it matches events to endpoints
 *		(webhook._read_events), in SQL.
 */
#include "postgres.h"

#include "fmgr.h"
#include "miscadmin.h"
#include "utils/jsonpath.h"

PG_FUNCTION_INFO_V1(webhook_is_jsonpath_predicate);

/*
 * Is this item type a predicate, whose result is true, false or unknown?
 * PostgreSQL gives a predicate at the top of a path a boolean result; any
 * other path returns items, which jsonb_path_match() refuses for every event.
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

/*
 * Does the path, anywhere in it, use a variable ($name)?  A filter is
 * evaluated with no variables, so one would raise for every event.  Walks
 * each item's operands and the items chained after it.
 */
static bool
uses_variable(JsonPathItem *v)
{
	JsonPathItem a,
				b;

	check_stack_depth();
	switch (v->type)
	{
		case jpiVariable:
			return true;
		case jpiAnd:
		case jpiOr:
		case jpiEqual:
		case jpiNotEqual:
		case jpiLess:
		case jpiGreater:
		case jpiLessOrEqual:
		case jpiGreaterOrEqual:
		case jpiAdd:
		case jpiSub:
		case jpiMul:
		case jpiDiv:
		case jpiMod:
		case jpiStartsWith:
			jspGetLeftArg(v, &a);
			jspGetRightArg(v, &b);
			if (uses_variable(&a) || uses_variable(&b))
				return true;
			break;
		case jpiNot:
		case jpiIsUnknown:
		case jpiPlus:
		case jpiMinus:
		case jpiFilter:
		case jpiExists:
			jspGetArg(v, &a);
			if (uses_variable(&a))
				return true;
			break;
		case jpiDatetime:
			if (v->content.arg)
			{
				jspGetArg(v, &a);
				if (uses_variable(&a))
					return true;
			}
			break;
		case jpiIndexArray:
			for (int i = 0; i < v->content.array.nelems; i++)
			{
				bool		range = jspGetArraySubscript(v, &a, &b, i);

				if (uses_variable(&a) || (range && uses_variable(&b)))
					return true;
			}
			break;
		case jpiLikeRegex:
			jspInitByBuffer(&a, v->base, v->content.like_regex.expr);
			if (uses_variable(&a))
				return true;
			break;
		default:
			break;
	}
	return jspGetNext(v, &a) && uses_variable(&a);
}

/*
 * Can the path be an endpoint's filter: a predicate with nothing chained
 * after it (such as "($.a == 1).type()", which returns items), and no
 * variables?  Checked on the parsed path, not by evaluating it, so a
 * strict-mode filter that errors on an empty object is still accepted.
 * Errors that depend on the payload (a strict path's missing key, a date
 * compared with a time zone) remain possible: the worker counts those.
 */
static bool
is_filter(JsonPath *path)
{
	JsonPathItem top;

	jspInit(&top, path);
	return is_predicate(top.type) && !jspHasNext(&top) && !uses_variable(&top);
}

/* SQL: webhook._is_jsonpath_predicate(jsonpath), for the endpoints trigger. */
Datum
webhook_is_jsonpath_predicate(PG_FUNCTION_ARGS)
{
	PG_RETURN_BOOL(is_filter(PG_GETARG_JSONPATH_P(0)));
}
