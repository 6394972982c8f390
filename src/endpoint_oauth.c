/*
 * endpoint_oauth.c
 *		OAuth2 client credentials of an endpoint, checked and sealed when
 *		written: oauth_token_url, oauth_client_id and oauth_client_secret go
 *		together, oauth_scope only with them.  The token URL obeys the rules
 *		and the network guard of the endpoint's URL; the client secret is
 *		sealed under webhook.master_key_file like the other secrets.  The
 *		worker's side is oauth.c.
 *
 * As in the other endpoints triggers, a write checks what it changes, and an
 * INSERT or a re-activation checks everything; a sealed secret an UPDATE
 * leaves alone is not opened again.
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "commands/trigger.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "utils/builtins.h"
#include "utils/datum.h"
#include "utils/jsonb.h"
#include "utils/rel.h"

#include "sealing.h"
#include "url_policy.h"
#include "url_rules.h"
#include "webhook.h"

#define OAUTH_URL_MAX_BYTES 2048
#define OAUTH_CLIENT_ID_MAX_BYTES 256
#define OAUTH_CLIENT_SECRET_MAX_BYTES 1024
#define OAUTH_SCOPE_MAX_BYTES 1024

/* The row being written and the one it replaces (NULL on INSERT). */
typedef struct OAuthRow
{
	TupleDesc	desc;
	HeapTuple	new;
	HeapTuple	old;
	bool		check_all;		/* an INSERT, or a re-activation */
} OAuthRow;

/* A text column of the new row, or NULL. */
static char *
new_text(OAuthRow *row, const char *name)
{
	bool		isnull;
	Datum		d = heap_getattr(row->new, SPI_fnumber(row->desc, name), row->desc, &isnull);

	return isnull ? NULL : TextDatumGetCString(d);
}

/* Does the write change this column (always true for an INSERT)? */
static bool
changed(OAuthRow *row, const char *name)
{
	int			attnum = SPI_fnumber(row->desc, name);
	Form_pg_attribute att = TupleDescAttr(row->desc, attnum - 1);
	bool		new_null,
				old_null;
	Datum		new_value,
				old_value;

	if (row->old == NULL)
		return true;
	new_value = heap_getattr(row->new, attnum, row->desc, &new_null);
	old_value = heap_getattr(row->old, attnum, row->desc, &old_null);
	if (new_null || old_null)
		return new_null != old_null;
	return !datumIsEqual(new_value, old_value, att->attbyval, att->attlen);
}

/* Does this UPDATE turn the endpoint on (active from false to true)? */
static bool
is_activation(OAuthRow *row)
{
	int			attnum = SPI_fnumber(row->desc, "active");
	bool		new_null,
				old_null;
	Datum		new_value = heap_getattr(row->new, attnum, row->desc, &new_null);
	Datum		old_value = heap_getattr(row->old, attnum, row->desc, &old_null);

	return !new_null && DatumGetBool(new_value) && (old_null || !DatumGetBool(old_value));
}

/* Refuse a value with a control character, or too long, or empty. */
static void
require_plain_value(const char *column, const char *value, int max_bytes)
{
	size_t		len = strlen(value);

	if (len == 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s must not be empty", column),
				 errhint("Set oauth_token_url, oauth_client_id and oauth_client_secret together, or none of them.")));
	if (len > max_bytes)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("%s is too long", column),
				 errdetail("It has %zu bytes.", len),
				 errhint("%s has at most %d bytes.", column, max_bytes)));
	for (const unsigned char *p = (const unsigned char *) value; *p; p++)
		if (*p < 0x20 || *p == 0x7f)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("%s contains a control character", column),
					 errhint("OAuth2 client credentials and scopes are printable text.")));
}

/*
 * A scope is space-separated tokens of printable ASCII without '"' or '\'
 * (RFC 6749, section 3.3).
 */
static void
require_scope(const char *scope)
{
	require_plain_value("oauth_scope", scope, OAUTH_SCOPE_MAX_BYTES);
	for (const unsigned char *p = (const unsigned char *) scope; *p; p++)
		if (*p > 0x7e || *p == '"' || *p == '\\')
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("invalid oauth_scope"),
					 errdetail("A scope is a list of space-separated tokens of printable ASCII, without '\"' or '\\'."),
					 errhint("For example: 'webhooks:write events:read'.")));
}

/* The token URL: the endpoint URL's length limit, rules and network guard. */
static void
require_token_url(const char *url)
{
	NetGuardPolicy policy;
	char		policy_error[128];
	bool		policy_ok = webhook_current_policy(&policy, policy_error, sizeof(policy_error));
	char		buf[512];
	char		shown[512];
	const char *problem;

	if (strlen(url) > OAUTH_URL_MAX_BYTES)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("oauth_token_url is too long"),
				 errdetail("It has %zu bytes.", strlen(url)),
				 errhint("A URL has at most %d bytes.", OAUTH_URL_MAX_BYTES)));
	problem = webhook_url_check(url, webhook_require_https, policy_ok ? &policy : NULL,
								policy_error, buf, sizeof(buf));
	if (problem == NULL)
		return;
	webhook_url_origin(url, shown, sizeof(shown));
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			 errmsg("invalid oauth_token_url \"%s\"", shown),
			 errdetail("%s", problem),
			 errhint("The token URL obeys the rules of the endpoint's URL.")));
}

/*
 * The token goes in the Authorization header: Basic authentication or an
 * extra Authorization header of the same endpoint would clash with it.
 */
static void
require_no_other_authorization(OAuthRow *row)
{
	bool		isnull;
	Datum		datum;
	JsonbIterator *it;
	JsonbValue	v;
	JsonbIteratorToken token;
	Jsonb	   *headers;

	if (new_text(row, "auth_username") != NULL)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("both auth_username and OAuth2 client credentials are set"),
				 errhint("An endpoint authenticates with Basic authentication or with OAuth2 tokens, not both.")));
	datum = heap_getattr(row->new, SPI_fnumber(row->desc, "headers"), row->desc, &isnull);
	if (isnull)
		return;
	headers = DatumGetJsonbP(datum);
	if (!JB_ROOT_IS_OBJECT(headers))
		return;
	it = JsonbIteratorInit(&headers->root);
	while ((token = JsonbIteratorNext(&it, &v, true)) != WJB_DONE)
		if (token == WJB_KEY && v.val.string.len == 13 &&
			pg_strncasecmp(v.val.string.val, "authorization", 13) == 0)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("both an Authorization header and OAuth2 client credentials are set"),
					 errhint("The worker sends the OAuth2 token in the Authorization header: remove that header.")));
}

/*
 * Trigger webhook._endpoints_oauth(), BEFORE INSERT OR UPDATE FOR EACH ROW
 * on webhook.endpoints: see the head of this file.
 */
PG_FUNCTION_INFO_V1(webhook_endpoints_oauth);

Datum
webhook_endpoints_oauth(PG_FUNCTION_ARGS)
{
	TriggerData *trigdata = (TriggerData *) fcinfo->context;
	OAuthRow	row = {0};
	char	   *url;
	char	   *client_id;
	char	   *secret;
	char	   *scope;
	bool		check;
	char	   *plain;
	int			cols[1];
	Datum		values[1];
	bool		nulls[1] = {false};

	if (!CALLED_AS_TRIGGER(fcinfo) || !TRIGGER_FIRED_BEFORE(trigdata->tg_event) ||
		!TRIGGER_FIRED_FOR_ROW(trigdata->tg_event) ||
		!(TRIGGER_FIRED_BY_INSERT(trigdata->tg_event) || TRIGGER_FIRED_BY_UPDATE(trigdata->tg_event)))
		elog(ERROR, "webhook._endpoints_oauth() must be a BEFORE INSERT OR UPDATE row trigger");

	row.desc = RelationGetDescr(trigdata->tg_relation);
	if (TRIGGER_FIRED_BY_UPDATE(trigdata->tg_event))
	{
		row.new = trigdata->tg_newtuple;
		row.old = trigdata->tg_trigtuple;
		row.check_all = is_activation(&row);
	}
	else
	{
		row.new = trigdata->tg_trigtuple;
		row.check_all = true;
	}
	if (SPI_fnumber(row.desc, "oauth_client_secret") <= 0)
		elog(ERROR, "webhook.endpoints has no column \"oauth_client_secret\"");

	url = new_text(&row, "oauth_token_url");
	client_id = new_text(&row, "oauth_client_id");
	secret = new_text(&row, "oauth_client_secret");
	scope = new_text(&row, "oauth_scope");
	check = row.check_all || changed(&row, "oauth_token_url") || changed(&row, "oauth_client_id") ||
		changed(&row, "oauth_client_secret") || changed(&row, "oauth_scope");

	if (url == NULL && client_id == NULL && secret == NULL)
	{
		if (scope != NULL)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("oauth_scope is set without oauth_token_url"),
					 errhint("Set oauth_token_url, oauth_client_id and oauth_client_secret with oauth_scope.")));
		return PointerGetDatum(row.new);
	}
	if (url == NULL || client_id == NULL || secret == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("oauth_token_url, oauth_client_id and oauth_client_secret must be set together"),
				 errdetail("%s is missing.", url == NULL ? "oauth_token_url" :
						   client_id == NULL ? "oauth_client_id" : "oauth_client_secret"),
				 errhint("Set all three (oauth_scope is optional), or none of them.")));

	/* A clash with another Authorization header, whichever column changed. */
	if (check || changed(&row, "auth_username") || changed(&row, "headers"))
		require_no_other_authorization(&row);
	if (check)
	{
		require_token_url(url);
		require_plain_value("oauth_client_id", client_id, OAUTH_CLIENT_ID_MAX_BYTES);
		if (scope != NULL)
			require_scope(scope);
	}

	/* The secret: checked in clear when it must be, and sealed. */
	if (!check && webhook_is_sealed(secret))
		return PointerGetDatum(row.new);
	plain = webhook_unseal_value(secret);
	if (check)
		require_plain_value("oauth_client_secret", plain, OAUTH_CLIENT_SECRET_MAX_BYTES);
	values[0] = CStringGetTextDatum(webhook_seal_value(plain));
	explicit_bzero(plain, strlen(plain));
	if (!changed(&row, "oauth_client_secret") && webhook_is_sealed(secret))
		return PointerGetDatum(row.new);
	cols[0] = SPI_fnumber(row.desc, "oauth_client_secret");
	return PointerGetDatum(heap_modify_tuple_by_cols(row.new, row.desc, 1, cols, values, nulls));
}
