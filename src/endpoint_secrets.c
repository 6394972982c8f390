/*
 * endpoint_secrets.c
 *		The checks of webhook.endpoints that must see the values that will be
 *		sent, and their sealing.  A BEFORE trigger that fires after the SQL
 *		validation trigger: it opens any value given already sealed, checks
 *		secrets, request headers and the TLS client key in clear, and seals
 *		them again under the master key (src/master_key.c).  Being a trigger,
 *		it cannot be called from SQL: no role gets a function that encrypts
 *		or decrypts on demand.
 *
 * A write checks what it changes; an INSERT, and an UPDATE that re-activates
 * the endpoint, check every column.  So a row that an older rule or a
 * restore let in stays writable for anything else: a 410 or the auto-disable
 * can turn it off.  Sealed values an UPDATE leaves as they were are not
 * opened again: they were checked when written, and a row whose key was lost
 * stays writable too.  Values still in clear are sealed at every write, so a
 * row written before the key was set is sealed at its next write.
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

#include "endpoint_tls.h"
#include "header_rules.h"
#include "request_format.h"
#include "sealing.h"
#include "signature.h"

PG_FUNCTION_INFO_V1(webhook_endpoints_seal);

#define WEBHOOK_HEADERS_MAX 64
#define WEBHOOK_HEADER_VALUE_MAX_BYTES 8192
#define WEBHOOK_HEADERS_MAX_BYTES 16384
#define WEBHOOK_SECRET_MAX_BYTES 256
#define WEBHOOK_AUTH_PASSWORD_MAX_BYTES 1024

/* The row being written, and the one it replaces (NULL on INSERT). */
typedef struct EndpointRow
{
	TupleDesc	desc;
	HeapTuple	new;
	HeapTuple	old;
	bool		check_all;		/* an INSERT, or a re-activation */
	int			ncols;
	int			cols[8];
	Datum		values[8];
	bool		nulls[8];
} EndpointRow;

/* A column's attribute number, by name. */
static int
column(EndpointRow *row, const char *name)
{
	int			attnum = SPI_fnumber(row->desc, name);

	if (attnum <= 0)
		elog(ERROR, "webhook.endpoints has no column \"%s\"", name);
	return attnum;
}

/* A text column of the new row, or NULL. */
static char *
new_text(EndpointRow *row, const char *name)
{
	bool		isnull;
	Datum		d = heap_getattr(row->new, column(row, name), row->desc, &isnull);

	return isnull ? NULL : TextDatumGetCString(d);
}

/* Does the write change this column (always true for an INSERT)? */
static bool
changed(EndpointRow *row, const char *name)
{
	int			attnum = column(row, name);
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
is_activation(EndpointRow *row)
{
	int			attnum = column(row, "active");
	bool		new_null,
				old_null;
	Datum		new_value = heap_getattr(row->new, attnum, row->desc, &new_null);
	Datum		old_value = heap_getattr(row->old, attnum, row->desc, &old_null);

	return !new_null && DatumGetBool(new_value) && (old_null || !DatumGetBool(old_value));
}

/* Must this write check the value of this column? */
static bool
to_check(EndpointRow *row, const char *name)
{
	return row->check_all || changed(row, name);
}

/* Must this write seal the value of this column? */
static bool
to_seal(EndpointRow *row, const char *name, const char *value)
{
	return value != NULL && (!webhook_is_sealed(value) || changed(row, name));
}

/* Queue a replacement value for the returned row. */
static void
replace(EndpointRow *row, const char *name, Datum value)
{
	Assert(row->ncols < lengthof(row->cols));
	row->cols[row->ncols] = column(row, name);
	row->values[row->ncols] = value;
	row->nulls[row->ncols] = false;
	row->ncols++;
}

/*
 * Refuse a header name that breaks the one header rule; what names the
 * column it came from ("header" or "signature header").
 */
static void
require_header_name(const char *name, const char *what)
{
	WebhookHeaderProblem problem = webhook_header_check(name, "");

	if (problem == HEADER_NAME_TOO_LONG)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("%s name is too long", what),
				 errdetail("It has %zu bytes.", strlen(name)),
				 errhint("Header names have at most %d bytes.", WEBHOOK_HEADER_NAME_MAX_BYTES)));
	if (problem == HEADER_BAD_NAME)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid %s name \"%s\"", what, name),
				 errdetail("Header names are HTTP tokens: letters, digits and !#$%%&'*+.^_`|~-."),
				 errhint("Use a name such as X-Api-Key.")));
	if (problem == HEADER_RESERVED)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s \"%s\" is set by the extension or by HTTP itself and cannot be overridden", what, name),
				 errdetail("%s", webhook_reserved_headers_detail),
				 errhint("Use another name, such as X-Signature.")));
}

/*
 * Refuse a credential, measured in clear, that is longer than its column
 * allows: the worker holds the credentials of every endpoint it sends to.
 */
static void
require_max_bytes(const char *column_name, const char *plain, size_t max_bytes)
{
	size_t		len = strlen(plain);

	if (len > max_bytes)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("%s is too long", column_name),
				 errdetail("It has %zu bytes.", len),
				 errhint("The %s of an endpoint has at most %zu bytes.", column_name, max_bytes)));
}

/*
 * Check one secret in clear against the signing scheme (when check says so)
 * and return it sealed.  The reason never quotes the secret.
 */
static Datum
checked_secret(const char *stored, WebhookSigning signing, const char *signing_name,
			   const char *column_name, bool check)
{
	char	   *plain = webhook_unseal_value(stored);
	WebhookKey	key;
	const char *problem;
	char	   *sealed;

	if (check)
		require_max_bytes(column_name, plain, WEBHOOK_SECRET_MAX_BYTES);
	problem = !check || signing == SIGNING_NONE ? NULL : webhook_decode_key(signing, plain, &key);
	explicit_bzero(&key, sizeof(key));
	if (problem)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid %s for signing scheme \"%s\"", column_name, signing_name),
				 errdetail("%s", problem),
				 errhint("Leave secret NULL to have one generated.")));
	sealed = webhook_seal_value(plain);
	explicit_bzero(plain, strlen(plain));
	return CStringGetTextDatum(sealed);
}

/* The secret, the previous secret and the Basic authentication password. */
static void
seal_credentials(EndpointRow *row)
{
	char	   *signing_name = new_text(row, "signing");
	WebhookSigning signing = signing_name ? webhook_signing_from_name(signing_name) : SIGNING_UNKNOWN;
	char	   *secret = new_text(row, "secret");
	char	   *previous = new_text(row, "previous_secret");
	char	   *password = new_text(row, "auth_password");
	bool		secret_to_seal = to_seal(row, "secret", secret);

	if (signing == SIGNING_UNKNOWN)
		elog(ERROR, "endpoint row reached webhook._endpoints_seal() with an unknown signing scheme");

	/* A new scheme may not take the old secret: check it again. */
	if (secret && (secret_to_seal || changed(row, "signing")))
	{
		Datum		sealed = checked_secret(secret, signing, signing_name, "secret",
											to_check(row, "secret") || to_check(row, "signing"));

		if (secret_to_seal)
			replace(row, "secret", sealed);
	}
	if (to_seal(row, "previous_secret", previous))
		replace(row, "previous_secret", checked_secret(previous, signing, signing_name, "previous_secret",
													   to_check(row, "previous_secret")));
	if (to_seal(row, "auth_password", password))
	{
		char	   *plain = webhook_unseal_value(password);

		if (to_check(row, "auth_password"))
			require_max_bytes("auth_password", plain, WEBHOOK_AUTH_PASSWORD_MAX_BYTES);
		replace(row, "auth_password", CStringGetTextDatum(webhook_seal_value(plain)));
		explicit_bzero(plain, strlen(plain));
	}
}

/*
 * The headers a row sends must not clash: an extra header named like the
 * signature header, or an Authorization header next to Basic authentication,
 * would silently replace one another.  Names are never sealed: checked on
 * every write.
 */
static void
require_distinct_header(const char *name, const char *signature_header, bool sig_in_header, bool basic_auth)
{
	if (sig_in_header && pg_strcasecmp(name, signature_header) == 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("header \"%s\" is the signature header of this endpoint", name),
				 errhint("Remove it from headers, or choose another signature_header.")));
	if (basic_auth && pg_strcasecmp(name, "authorization") == 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("both auth_username and an Authorization header are set"),
				 errhint("Use auth_username and auth_password for Basic authentication, or an Authorization header, not both.")));
}

/*
 * Check one extra header's value in clear (when check says so) and return
 * it sealed.
 */
static char *
checked_header_value(const char *name, const char *stored, size_t *bytes, bool check)
{
	char	   *plain = webhook_unseal_value(stored);
	size_t		len = strlen(plain);
	char	   *sealed;

	if (check && webhook_header_check(name, plain) == HEADER_BAD_VALUE)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("value of header \"%s\" contains a line break", name),
				 errhint("A header value is one line.")));
	if (check && len > WEBHOOK_HEADER_VALUE_MAX_BYTES)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("value of header \"%s\" is too long", name),
				 errdetail("It has %zu bytes.", len),
				 errhint("A header value has at most %d bytes.", WEBHOOK_HEADER_VALUE_MAX_BYTES)));
	*bytes += strlen(name) + len;
	sealed = webhook_seal_value(plain);
	explicit_bzero(plain, len);
	return sealed;
}

/* Refuse a headers value that is not a JSON object of strings. */
static void
headers_not_an_object(void)
{
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			 errmsg("headers must be a JSON object of strings"),
			 errhint("For example: {\"Authorization\": \"Bearer abc123\", \"X-Api-Key\": \"k\"}.")));
}

/*
 * The extra headers: names checked when check_names says so; when the write
 * changes them, every value checked in clear, their number and size bounded,
 * and the values sealed.  Otherwise only values still in clear are sealed,
 * and checked on an INSERT or a re-activation.
 */
static void
seal_headers(EndpointRow *row, bool check_names, const char *signature_header, bool sig_in_header,
			 bool basic_auth)
{
	bool		isnull;
	Datum		datum = heap_getattr(row->new, column(row, "headers"), row->desc, &isnull);
	bool		rewrite = !isnull && changed(row, "headers");
	bool		modified = rewrite;
	Jsonb	   *headers;
	JsonbIterator *it;
	JsonbValue	v;
	JsonbIteratorToken token;
	JsonbParseState *state = NULL;
	JsonbValue *result = NULL;
	char	   *name = NULL;
	size_t		bytes = 0;

	if (isnull)
		return;
	headers = DatumGetJsonbP(datum);
	if (!JB_ROOT_IS_OBJECT(headers) && !to_check(row, "headers"))
		return;
	if (!JB_ROOT_IS_OBJECT(headers))
		headers_not_an_object();
	if (rewrite && JB_ROOT_COUNT(headers) > WEBHOOK_HEADERS_MAX)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("too many headers"),
				 errdetail("The object has %d headers.", (int) JB_ROOT_COUNT(headers)),
				 errhint("An endpoint has at most %d extra headers.", WEBHOOK_HEADERS_MAX)));

	it = JsonbIteratorInit(&headers->root);
	while ((token = JsonbIteratorNext(&it, &v, true)) != WJB_DONE)
	{
		if (token == WJB_KEY)
		{
			name = pnstrdup(v.val.string.val, v.val.string.len);
			if (check_names)
			{
				require_header_name(name, "header");
				require_distinct_header(name, signature_header, sig_in_header, basic_auth);
			}
		}
		else if (token == WJB_VALUE && v.type != jbvString)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("value of header \"%s\" must be a JSON string", name),
					 errhint("Quote numbers and booleans: {\"X-Retry\": \"3\"}.")));
		else if (token == WJB_VALUE)
		{
			char	   *stored = pnstrdup(v.val.string.val, v.val.string.len);

			if (rewrite || !webhook_is_sealed(stored))
			{
				v.val.string.val = checked_header_value(name, stored, &bytes, rewrite || row->check_all);
				v.val.string.len = strlen(v.val.string.val);
				modified |= strcmp(stored, v.val.string.val) != 0;
			}
		}
		result = pushJsonbValue(&state, token, token < WJB_BEGIN_ARRAY ? &v : NULL);
	}
	if (!modified)
		return;
	if (rewrite && bytes > WEBHOOK_HEADERS_MAX_BYTES)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("headers are too large"),
				 errdetail("Their names and values have %zu bytes in all.", bytes),
				 errhint("The extra headers of an endpoint have at most %d bytes in all.", WEBHOOK_HEADERS_MAX_BYTES)));
	replace(row, "headers", JsonbPGetDatum(JsonbValueToJsonb(result)));
}

/*
 * TLS (src/endpoint_tls.c): ca_cert checked as PEM certificates, and
 * client_cert with client_key as a matching pair, when the write must check
 * them; client_key opened for that, and sealed like the credentials above.
 */
static void
seal_tls(EndpointRow *row)
{
	char	   *ca_cert;
	char	   *client_cert;
	char	   *client_key;
	bool		check_pair;
	bool		key_to_seal;
	char	   *plain;

	/* A schema from before 0.2.0, until ALTER EXTENSION webhook UPDATE. */
	if (SPI_fnumber(row->desc, "client_key") <= 0)
		return;
	ca_cert = new_text(row, "ca_cert");
	client_cert = new_text(row, "client_cert");
	client_key = new_text(row, "client_key");
	check_pair = to_check(row, "client_cert") || to_check(row, "client_key");
	key_to_seal = to_seal(row, "client_key", client_key);
	if (ca_cert != NULL && to_check(row, "ca_cert"))
		webhook_require_tls_ca(ca_cert);
	if (!check_pair && !key_to_seal)
		return;
	plain = client_key ? webhook_unseal_value(client_key) : NULL;
	if (check_pair)
		webhook_require_tls_client(client_cert, plain);
	if (key_to_seal)
		replace(row, "client_key", CStringGetTextDatum(webhook_seal_value(plain)));
	if (plain)
		explicit_bzero(plain, strlen(plain));
}

/*
 * Refuse a header name, of the kind what says, that format cloudevents
 * (binary, when binary is true) sends itself: a ce-* attribute.
 */
static void
require_no_cloudevents_clash(const char *name, const char *what, bool binary)
{
	if (webhook_header_clash(name, NULL, binary) == HEADER_CLASH_CLOUDEVENTS)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s \"%s\" is a CloudEvents attribute, which format cloudevents sets itself", what, name),
				 errdetail("%s", webhook_cloudevents_headers_detail),
				 errhint("Use a name that does not start with ce-, or format cloudevents-structured.")));
}

/*
 * Request formats (issue 15): the headers the format sends must not be sent
 * twice.  The event_type_header obeys the one header rule, unless it is the
 * extension's own default, and must not be the signature header; no extra
 * header may be named like it; and in format cloudevents (binary mode) no
 * header the user names, extra, event type or signature header, may be a
 * ce-* attribute (src/header_rules.c holds the rule).  Checked when the
 * names or the format change.  A 0.1.0 schema, served until ALTER EXTENSION
 * UPDATE, has no such columns: the caller skips this.
 */
static void
require_format_headers(EndpointRow *row, const char *signature_header, bool sig_in_header)
{
	char	   *event_type_header = new_text(row, "event_type_header");
	char	   *format = new_text(row, "format");
	bool		binary = format != NULL && request_format_from_name(format) == FORMAT_CLOUDEVENTS;
	bool		isnull;
	Datum		headers = heap_getattr(row->new, column(row, "headers"), row->desc, &isnull);
	const char *custom_name;

	if (event_type_header == NULL)
		elog(ERROR, "endpoint row reached webhook._endpoints_seal() with a NULL event_type_header");
	/* The default is a webhook-* name, which no extra header may take. */
	custom_name = pg_strcasecmp(event_type_header, WEBHOOK_DEFAULT_EVENT_TYPE_HEADER) != 0 ?
		event_type_header : NULL;
	if (custom_name)
		require_header_name(event_type_header, "event type header");
	if (sig_in_header && pg_strcasecmp(event_type_header, signature_header) == 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("event type header \"%s\" is the signature header of this endpoint", event_type_header),
				 errhint("Choose another event_type_header or signature_header.")));
	require_no_cloudevents_clash(event_type_header, "event type header", binary);
	if (sig_in_header)
		require_no_cloudevents_clash(signature_header, "signature header", binary);

	/* Names are never sealed: read them as written. */
	if (!isnull && JB_ROOT_IS_OBJECT(DatumGetJsonbP(headers)))
	{
		JsonbIterator *it = JsonbIteratorInit(&DatumGetJsonbP(headers)->root);
		JsonbValue	v;
		JsonbIteratorToken token;

		while ((token = JsonbIteratorNext(&it, &v, true)) != WJB_DONE)
		{
			char	   *name;

			if (token != WJB_KEY)
				continue;
			name = pnstrdup(v.val.string.val, v.val.string.len);
			if (webhook_header_clash(name, custom_name, false) == HEADER_CLASH_EVENT_TYPE)
				ereport(ERROR,
						(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						 errmsg("header \"%s\" is the event type header of this endpoint", name),
						 errhint("Remove it from headers, or choose another event_type_header.")));
			require_no_cloudevents_clash(name, "header", binary);
		}
	}
}

/*
 * Trigger webhook._endpoints_seal(), BEFORE INSERT OR UPDATE FOR EACH ROW on
 * webhook.endpoints: see the head of this file.
 */
Datum
webhook_endpoints_seal(PG_FUNCTION_ARGS)
{
	TriggerData *trigdata = (TriggerData *) fcinfo->context;
	EndpointRow row = {0};
	char	   *signature_header;
	char	   *signing;
	const WebhookSigningScheme *scheme;
	bool		sig_in_header;
	bool		basic_auth;
	bool		check_names;

	if (!CALLED_AS_TRIGGER(fcinfo) || !TRIGGER_FIRED_BEFORE(trigdata->tg_event) ||
		!TRIGGER_FIRED_FOR_ROW(trigdata->tg_event) ||
		!(TRIGGER_FIRED_BY_INSERT(trigdata->tg_event) || TRIGGER_FIRED_BY_UPDATE(trigdata->tg_event)))
		elog(ERROR, "webhook._endpoints_seal() must be a BEFORE INSERT OR UPDATE row trigger");

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

	signature_header = new_text(&row, "signature_header");
	signing = new_text(&row, "signing");
	if (signature_header == NULL || signing == NULL)
		elog(ERROR, "endpoint row reached webhook._endpoints_seal() with NULL signing or signature_header");
	scheme = webhook_signing_scheme(signing);
	if (scheme == NULL)
		elog(ERROR, "endpoint row reached webhook._endpoints_seal() with an unknown signing scheme");
	sig_in_header = scheme->in_signature_header;
	basic_auth = new_text(&row, "auth_username") != NULL;
	/* Names, and whether they clash, depend on these columns. */
	check_names = to_check(&row, "headers") || to_check(&row, "signature_header") ||
		to_check(&row, "signing") || to_check(&row, "auth_username");
	if (check_names)
		require_header_name(signature_header, "signature header");
	if (check_names && sig_in_header && basic_auth && pg_strcasecmp(signature_header, "authorization") == 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("signature header \"%s\" would replace the Basic authentication header", signature_header),
				 errhint("Choose another signature_header, such as X-Hub-Signature-256.")));

	/* Request formats (issue 15): see require_format_headers(). */
	if (SPI_fnumber(row.desc, "event_type_header") > 0 &&
		(check_names || to_check(&row, "event_type_header") || to_check(&row, "format")))
		require_format_headers(&row, signature_header, sig_in_header);

	seal_credentials(&row);
	seal_headers(&row, check_names, signature_header, sig_in_header, basic_auth);
	seal_tls(&row);

	if (row.ncols == 0)
		return PointerGetDatum(row.new);
	return PointerGetDatum(heap_modify_tuple_by_cols(row.new, row.desc, row.ncols,
													 row.cols, row.values, row.nulls));
}
