/*
 * validate.c
 *		SQL access to the endpoint checks of urlcheck.c, under the current
 *		network settings.
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "fmgr.h"
#include "utils/array.h"
#include "utils/builtins.h"

#include "netguard.h"
#include "urlcheck.h"
#include "validate.h"
#include "webhook.h"

PG_FUNCTION_INFO_V1(webhook_url_problem);
PG_FUNCTION_INFO_V1(webhook_header_problem);

/*
 * The network policy from the current settings.  Returns false, with the
 * reason in errbuf, when webhook.allowed_networks cannot be parsed.
 */
bool
webhook_current_policy(NetGuardPolicy *policy, char *errbuf, size_t errlen)
{
	memset(policy, 0, sizeof(*policy));
	if (!netguard_parse_allowlist(webhook_allowed_networks ? webhook_allowed_networks : "",
								  policy, errbuf, errlen))
		return false;
	policy->allow_private = webhook_allow_private_networks;
	return true;
}

/*
 * Why a URL cannot be a webhook target under the current settings, or NULL.
 * The reasons are full sentences, shown as the DETAIL of the endpoint
 * trigger's error.
 */
static const char *
webhook_url_problem_text(const char *url)
{
	NetGuardPolicy policy;
	char		policy_error[128];
	bool		policy_ok = webhook_current_policy(&policy, policy_error, sizeof(policy_error));
	char	   *buf = palloc(512);

	return webhook_url_check(url, webhook_require_https, policy_ok ? &policy : NULL,
							 policy_error, buf, 512);
}

/* SQL: webhook._url_problem(url), used by the endpoints trigger. */
Datum
webhook_url_problem(PG_FUNCTION_ARGS)
{
	const char *problem = webhook_url_problem_text(text_to_cstring(PG_GETARG_TEXT_PP(0)));

	if (problem == NULL)
		PG_RETURN_NULL();
	PG_RETURN_TEXT_P(cstring_to_text(problem));
}

/*
 * SQL: webhook._header_problem(name, value): NULL, or 'name', 'reserved' or
 * 'value', which the endpoints trigger turns into its error.
 */
Datum
webhook_header_problem(PG_FUNCTION_ARGS)
{
	static const char *answers[] = {NULL, "name", "reserved", "value"};
	WebhookHeaderProblem problem = webhook_header_check(text_to_cstring(PG_GETARG_TEXT_PP(0)),
														text_to_cstring(PG_GETARG_TEXT_PP(1)));

	if (problem == HEADER_OK)
		PG_RETURN_NULL();
	PG_RETURN_TEXT_P(cstring_to_text(answers[problem]));
}

PG_FUNCTION_INFO_V1(webhook_type_patterns);

/*
 * SQL: webhook._type_patterns('order.item.added') = {order.item.added, *,
 * order.*, order.item.*}: every subscription pattern that takes this event
 * type, so that matching an endpoint is one array overlap (&&) that the
 * planner can inline, instead of a subquery per endpoint.
 */
Datum
webhook_type_patterns(PG_FUNCTION_ARGS)
{
	text	   *type = PG_GETARG_TEXT_PP(0);
	char	   *name = text_to_cstring(type);
	int			len = strlen(name);
	ArrayBuildState *astate = initArrayResult(TEXTOID, CurrentMemoryContext, false);

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
