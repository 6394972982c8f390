/*
 * proxy.c
 *		Egress proxies.  webhook.proxy (a superuser's setting) sends every
 *		request through one proxy; an endpoint's proxy column overrides it
 *		(NULL: the setting, 'direct': no proxy).  A proxy is used only when
 *		configured, never taken from the environment.
 *
 * The network guard with a proxy (README, "Network guard"): the receiver's
 * URL is checked by the URL rules before the request, since curl connects
 * to the proxy and never sees the receiver's address; the connection to the
 * proxy itself is checked like any other connection when the proxy comes
 * from an endpoint row, which any endpoint writer may set, and let through
 * when it comes from webhook.proxy, which only a superuser can set.
 *
 * A proxy URL may hold credentials: the column is sealed at rest like the
 * other secrets, and errors show only the proxy's scheme, host and port.
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "commands/trigger.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "lib/stringinfo.h"
#include "utils/builtins.h"
#include "utils/datum.h"
#include "utils/guc.h"
#include "utils/memutils.h"
#include "utils/rel.h"

#include "proxy.h"
#include "proxy_rules.h"
#include "sealing.h"
#include "url_policy.h"
#include "url_rules.h"

char	   *webhook_proxy = NULL;

/* What the worker last saw of webhook.proxy, to notice a reload's change. */
static char *proxy_seen = NULL;

/* Refuse a webhook.proxy that is not a proxy URL; empty means none. */
static bool
check_proxy(char **newval, void **extra, GucSource source)
{
	char		buf[512];
	const char *problem;

	if (*newval == NULL || (*newval)[0] == '\0')
		return true;
	problem = webhook_proxy_check(*newval, false, NULL, NULL, buf, sizeof(buf));
	if (problem == NULL)
		return true;
	GUC_check_errdetail("%s", problem);
	GUC_check_errhint("Give a URL such as http://proxy.internal:3128, or leave it empty for none.");
	return false;
}

/*
 * The setting: superuser-only, like the other network settings, and hidden
 * from other roles since its URL may carry credentials.
 */
void
WebhookProxyGucInit(void)
{
	DefineCustomStringVariable("webhook.proxy",
							   gettext_noop("HTTP or HTTPS proxy that requests go through, such as http://proxy.internal:3128."),
							   gettext_noop("Empty: requests connect directly. An endpoint's proxy column overrides it."),
							   &webhook_proxy, "",
							   PGC_SUSET, GUC_SUPERUSER_ONLY, check_proxy, NULL, NULL);
}

/* ------------------------------------------------------------------------
 * The endpoints' proxy column
 * ------------------------------------------------------------------------ */

/* Refuse a proxy value, showing only its origin (never credentials). */
static void
refuse_proxy(const char *plain, const char *problem)
{
	char		shown[512];

	webhook_url_origin(plain, shown, sizeof(shown));
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			 errmsg("invalid proxy \"%s\"", shown),
			 errdetail("%s", problem),
			 errhint(strstr(problem, "address") != NULL ?
					 "A superuser can allow the proxy's network with webhook.allowed_networks, or set webhook.proxy, which is trusted." :
					 "Give a URL such as http://user:password@proxy.example.com:3128, 'direct' for no proxy, or NULL to use webhook.proxy.")));
}

/*
 * Trigger webhook._endpoints_proxy(), BEFORE INSERT OR UPDATE FOR EACH ROW on
 * webhook.endpoints, after endpoints_seal (triggers fire in name order).
 * Like that trigger, it checks the value in clear when the write inserts,
 * changes it or re-activates the endpoint, and seals it; a sealed value an
 * UPDATE leaves alone is not opened.  'direct' is no secret and stays as it
 * is.  A proxy from an endpoint row obeys the network guard, whoever wrote
 * it: its host, when an IP address, must be one the policy allows.
 */
PG_FUNCTION_INFO_V1(webhook_endpoints_proxy);

Datum
webhook_endpoints_proxy(PG_FUNCTION_ARGS)
{
	TriggerData *trigdata = (TriggerData *) fcinfo->context;
	TupleDesc	desc;
	HeapTuple	new;
	HeapTuple	old = NULL;
	int			attnum;
	bool		isnull;
	bool		old_null = true;
	Datum		value;
	Datum		old_value = (Datum) 0;
	char	   *stored;
	char	   *plain;
	bool		changed;
	bool		check;
	int			cols[1];
	Datum		values[1];
	bool		nulls[1] = {false};

	if (!CALLED_AS_TRIGGER(fcinfo) || !TRIGGER_FIRED_BEFORE(trigdata->tg_event) ||
		!TRIGGER_FIRED_FOR_ROW(trigdata->tg_event) ||
		!(TRIGGER_FIRED_BY_INSERT(trigdata->tg_event) || TRIGGER_FIRED_BY_UPDATE(trigdata->tg_event)))
		elog(ERROR, "webhook._endpoints_proxy() must be a BEFORE INSERT OR UPDATE row trigger");

	desc = RelationGetDescr(trigdata->tg_relation);
	new = TRIGGER_FIRED_BY_UPDATE(trigdata->tg_event) ? trigdata->tg_newtuple : trigdata->tg_trigtuple;
	if (TRIGGER_FIRED_BY_UPDATE(trigdata->tg_event))
		old = trigdata->tg_trigtuple;
	attnum = SPI_fnumber(desc, "proxy");
	if (attnum <= 0)
		elog(ERROR, "webhook.endpoints has no column \"proxy\"");
	value = heap_getattr(new, attnum, desc, &isnull);
	if (isnull)
		return PointerGetDatum(new);
	if (old != NULL)
		old_value = heap_getattr(old, attnum, desc, &old_null);
	changed = old == NULL || old_null ||
		!datumIsEqual(value, old_value, false, -1);
	check = changed;
	if (old != NULL && !check)
	{
		int			active = SPI_fnumber(desc, "active");
		bool		n1,
					n2;
		bool		now_active = DatumGetBool(heap_getattr(new, active, desc, &n1));
		bool		was_active = DatumGetBool(heap_getattr(old, active, desc, &n2));

		check = !n1 && now_active && (n2 || !was_active);
	}

	stored = TextDatumGetCString(value);
	if (strcmp(stored, WEBHOOK_PROXY_DIRECT) == 0)
		return PointerGetDatum(new);
	if (!check && webhook_is_sealed(stored))
		return PointerGetDatum(new);
	plain = webhook_unseal_value(stored);
	if (check && plain[0] == '\0')
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("proxy must not be empty"),
				 errhint("Use 'direct' for no proxy, or NULL to use webhook.proxy.")));
	if (strcmp(plain, WEBHOOK_PROXY_DIRECT) == 0)
		values[0] = CStringGetTextDatum(plain);
	else
	{
		if (check)
		{
			NetGuardPolicy policy;
			char		policy_error[128];
			bool		policy_ok = webhook_current_policy(&policy, policy_error, sizeof(policy_error));
			char		buf[512];
			const char *problem = webhook_proxy_check(plain, true, policy_ok ? &policy : NULL,
													  policy_error, buf, sizeof(buf));

			if (problem != NULL)
				refuse_proxy(plain, problem);
		}
		values[0] = CStringGetTextDatum(webhook_seal_value(plain));
	}
	explicit_bzero(plain, strlen(plain));
	if (!changed && webhook_is_sealed(stored))
		return PointerGetDatum(new);
	cols[0] = attnum;
	return PointerGetDatum(heap_modify_tuple_by_cols(new, desc, 1, cols, values, nulls));
}

/* ------------------------------------------------------------------------
 * The worker
 * ------------------------------------------------------------------------ */

/*
 * The proxy of a claimed delivery, from its endpoint's proxy column (in
 * clear, or NULL) and webhook.proxy; in the delivery's context.  Through a
 * proxy the worker never connects to the receiver, so its URL is checked
 * here, by the rules an INSERT applies, under the current policy.
 */
void
proxy_choose(Delivery *d, char *column)
{
	NetGuardPolicy policy;
	char		policy_error[128];
	bool		policy_ok;
	char		buf[512];
	const char *problem;

	d->proxy = NULL;
	d->proxy_trusted = false;
	if (column == NULL && webhook_proxy != NULL && webhook_proxy[0] != '\0')
	{
		d->proxy = pstrdup(webhook_proxy);
		d->proxy_trusted = true;
	}
	else if (column != NULL && strcmp(column, WEBHOOK_PROXY_DIRECT) != 0)
		d->proxy = column;
	if (d->proxy == NULL)
		return;

	policy_ok = webhook_current_policy(&policy, policy_error, sizeof(policy_error));
	problem = webhook_url_check(d->url, false, policy_ok ? &policy : NULL, policy_error, buf, sizeof(buf));
	if (problem != NULL)
		d->proxy_problem = psprintf("the receiver's URL is refused by the network guard: %s", problem);
}

/*
 * Did webhook.proxy change since the last call?  Pooled connections to the
 * old proxy must then not be reused, as after a change of network policy.
 */
bool
proxy_setting_changed(void)
{
	const char *now = webhook_proxy ? webhook_proxy : "";
	bool		changed = proxy_seen != NULL && strcmp(proxy_seen, now) != 0;

	if (proxy_seen == NULL || changed)
	{
		if (proxy_seen != NULL)
			pfree(proxy_seen);
		proxy_seen = MemoryContextStrdup(TopMemoryContext, now);
	}
	return changed;
}

/*
 * The transfer's proxy options: the delivery's proxy or none, and never one
 * from http_proxy, https_proxy, all_proxy or no_proxy in the environment
 * (an empty CURLOPT_NOPROXY keeps curl from reading no_proxy).
 */
void
proxy_configure_transfer(Delivery *d)
{
	curl_easy_setopt(d->easy, CURLOPT_PROXY, d->proxy ? d->proxy : "");
	curl_easy_setopt(d->easy, CURLOPT_NOPROXY, "");
}

/* Replace every occurrence of secret in text by "***" (palloc'd). */
static char *
redact(char *text, const char *secret)
{
	StringInfoData out;
	size_t		len = strlen(secret);
	char	   *p = text;
	char	   *hit;

	if (len == 0 || strstr(text, secret) == NULL)
		return text;

	initStringInfo(&out);
	while ((hit = strstr(p, secret)) != NULL)
	{
		appendBinaryStringInfo(&out, p, hit - p);
		appendStringInfoString(&out, "***");
		p = hit + len;
	}
	appendStringInfoString(&out, p);
	return out.data;
}

/*
 * The error of an attempt made through a proxy: which proxy (its origin,
 * never its credentials), and no trace of the password should curl have
 * quoted it.  In the delivery's context.
 */
void
proxy_describe_error(Delivery *d)
{
	CURLU	   *handle;
	char		origin[512];

	if (d->proxy == NULL || d->error == NULL)
		return;
	handle = curl_url();
	if (handle != NULL && curl_url_set(handle, CURLUPART_URL, d->proxy, 0) == CURLUE_OK)
	{
		char	   *raw = NULL;
		char	   *decoded = NULL;

		/* The user name is no secret, like auth_username; the password is. */
		if (curl_url_get(handle, CURLUPART_PASSWORD, &raw, 0) == CURLUE_OK)
			d->error = redact(d->error, raw);
		if (curl_url_get(handle, CURLUPART_PASSWORD, &decoded, CURLU_URLDECODE) == CURLUE_OK)
			d->error = redact(d->error, decoded);
		curl_free(raw);
		curl_free(decoded);
	}
	if (handle != NULL)
		curl_url_cleanup(handle);
	webhook_url_origin(d->proxy, origin, sizeof(origin));
	d->error = psprintf("%s (through proxy %s)", d->error, origin);
}
