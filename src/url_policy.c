/*
 * url_policy.c
 *		The URL rules of url_rules.c under the current settings
 *		(webhook.allowed_networks, allow_private_networks, require_https):
 *		the network policy the worker connects under, and the SQL functions
 *		the endpoints trigger calls.
 */
#include "postgres.h"

#include "fmgr.h"
#include "utils/builtins.h"

#include "netguard.h"
#include "url_policy.h"
#include "url_rules.h"
#include "webhook.h"

PG_FUNCTION_INFO_V1(webhook_url_problem);

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

PG_FUNCTION_INFO_V1(webhook_url_origin_sql);

/*
 * SQL: webhook._url_origin(url), what errors and events show of an
 * endpoint's URL (see webhook_url_origin).
 */
Datum
webhook_url_origin_sql(PG_FUNCTION_ARGS)
{
	char		buf[512];

	webhook_url_origin(text_to_cstring(PG_GETARG_TEXT_PP(0)), buf, sizeof(buf));
	PG_RETURN_TEXT_P(cstring_to_text(buf));
}
