/*
 * request_format.c
 *		The endpoint formats: their names (webhook.endpoints.format, its CHECK
 *		and trigger), and what the worker sends for each, after transforms and
 *		before signing, so that the signature covers the bytes actually sent.
 *
 * standard:                today's request: the event's body (or the
 *                          transform's result), Content-Type application/json.
 * cloudevents:             CloudEvents 1.0, HTTP binding, binary content mode:
 *                          ce-specversion, ce-id, ce-source, ce-type, ce-time
 *                          headers, Content-Type application/json (the
 *                          datacontenttype), body = the event's data.
 * cloudevents-structured:  structured content mode: one
 *                          application/cloudevents+json document with
 *                          specversion, id, source, type, time,
 *                          datacontenttype and data.
 *
 * The data is the event's payload, or the transform's result when the
 * endpoint has one.  ce-source is the endpoint's cloudevents_source, or
 * "/webhook/<database name, percent-encoded>".  Every format keeps the
 * webhook-id and webhook-timestamp headers, the endpoint's signature and
 * the event type header.
 */
#include "postgres.h"

#include "commands/dbcommands.h"
#include "common/jsonapi.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "lib/stringinfo.h"
#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/json.h"
#include "utils/memutils.h"

#include "delivery.h"
#include "header_rules.h"
#include "request_format.h"

PG_FUNCTION_INFO_V1(webhook_is_request_format);
PG_FUNCTION_INFO_V1(webhook_require_request_format);

/* The formats, the one list of them: the CHECK, the trigger and the worker. */
static const struct
{
	const char *name;
	WebhookRequestFormat format;
}			request_formats[] = {
	{"standard", FORMAT_STANDARD},
	{"cloudevents", FORMAT_CLOUDEVENTS},
	{"cloudevents-structured", FORMAT_CLOUDEVENTS_STRUCTURED},
};

/* The format of this name (as in the format column), or FORMAT_UNKNOWN. */
WebhookRequestFormat
request_format_from_name(const char *name)
{
	for (int i = 0; i < lengthof(request_formats); i++)
		if (strcmp(name, request_formats[i].name) == 0)
			return request_formats[i].format;
	return FORMAT_UNKNOWN;
}

/* SQL: webhook._is_request_format(format), the CHECK of webhook.endpoints. */
Datum
webhook_is_request_format(PG_FUNCTION_ARGS)
{
	PG_RETURN_BOOL(request_format_from_name(text_to_cstring(PG_GETARG_TEXT_PP(0))) != FORMAT_UNKNOWN);
}

/*
 * SQL: webhook._check_endpoint_format(format), the error of the endpoints
 * trigger for an unknown or NULL format, naming every one there is.
 */
Datum
webhook_require_request_format(PG_FUNCTION_ARGS)
{
	const char *name = PG_ARGISNULL(0) ? NULL : text_to_cstring(PG_GETARG_TEXT_PP(0));
	StringInfoData names;

	if (name != NULL && request_format_from_name(name) != FORMAT_UNKNOWN)
		PG_RETURN_VOID();
	initStringInfo(&names);
	for (int i = 0; i < lengthof(request_formats); i++)
		appendStringInfo(&names, "%s%s",
						 i == 0 ? "" : i == lengthof(request_formats) - 1 ? " or " : ", ",
						 request_formats[i].name);
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			 errmsg("unknown endpoint format \"%s\"", name ? name : "NULL"),
			 errhint("Use one of %s.", names.data)));
	PG_RETURN_VOID();
}

/*
 * Append src percent-encoded: every byte but those keep lets pass becomes
 * %XY, upper-case, as RFC 3986 and the CloudEvents HTTP binding write it.
 */
static void
append_percent_encoded(StringInfo buf, const char *src, bool (*keep) (unsigned char))
{
	for (const unsigned char *p = (const unsigned char *) src; *p; p++)
	{
		if (keep(*p))
			appendStringInfoChar(buf, (char) *p);
		else
			appendStringInfo(buf, "%%%02X", *p);
	}
}

/* RFC 3986 unreserved: what a path segment holds without encoding. */
static bool
is_unreserved(unsigned char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
		c == '-' || c == '.' || c == '_' || c == '~';
}

/*
 * What a ce-* header value holds unencoded (HTTP binding 3.1.3.2): printable
 * ASCII but space, double quote and percent.
 */
static bool
is_header_safe(unsigned char c)
{
	return c >= 0x21 && c <= 0x7E && c != '"' && c != '%';
}

/*
 * The default ce-source, "/webhook/<database name>", with the name
 * percent-encoded so that any name makes a URI-reference.  Computed once,
 * in the claim's transaction, since a worker serves one database.
 */
static const char *
default_source(void)
{
	static char *source = NULL;

	if (source == NULL)
	{
		char	   *dbname = get_database_name(MyDatabaseId);
		StringInfoData buf;
		MemoryContext old = MemoryContextSwitchTo(TopMemoryContext);

		initStringInfo(&buf);
		appendStringInfoString(&buf, "/webhook/");
		append_percent_encoded(&buf, dbname ? dbname : "", is_unreserved);
		MemoryContextSwitchTo(old);
		source = buf.data;
	}
	return source;
}

/* A text column of the claim, by its alias, or NULL. */
static char *
claim_text(HeapTuple tuple, TupleDesc desc, const char *alias)
{
	int			attnum = SPI_fnumber(desc, alias);

	if (attnum <= 0)
		elog(ERROR, "the claim returns no column \"%s\"", alias);
	return SPI_getvalue(tuple, desc, attnum);
}

/*
 * A header the user names that the format sends itself, in a row written
 * past the endpoints trigger (which refuses it): an extra header named like
 * the event type header, or in binary CloudEvents a ce-* extra, event type
 * or signature header.  It fails the delivery (invalid_header) rather than
 * be sent twice.  d->headers holds "Name: value" lines; a name has no colon.
 */
static void
format_clash(Delivery *d)
{
	bool		binary = d->format == FORMAT_CLOUDEVENTS;
	const char *custom_name = NULL;
	const char *problem = NULL;

	/* The default is a webhook-* name, which no extra header may take. */
	if (pg_strcasecmp(d->event_type_header, WEBHOOK_DEFAULT_EVENT_TYPE_HEADER) != 0)
		custom_name = d->event_type_header;

	if (webhook_header_clash(d->event_type_header, NULL, binary) != HEADER_CLASH_NONE ||
		(d->key.signing == SIGNING_HMAC_SHA256 &&
		 webhook_header_clash(d->signature_header, NULL, binary) != HEADER_CLASH_NONE))
		problem = "the endpoint's event_type_header or signature_header is a CloudEvents attribute, which format cloudevents sets itself";
	for (int i = 0; i < d->n_headers && problem == NULL; i++)
	{
		char	   *name = pnstrdup(d->headers[i], strcspn(d->headers[i], ":"));

		switch (webhook_header_clash(name, custom_name, binary))
		{
			case HEADER_CLASH_EVENT_TYPE:
				problem = "the endpoint's headers hold one named like its event_type_header";
				break;
			case HEADER_CLASH_CLOUDEVENTS:
				problem = "the endpoint's headers hold a CloudEvents attribute (ce-*), which format cloudevents sets itself";
				break;
			case HEADER_CLASH_NONE:
				break;
		}
		pfree(name);
	}
	if (problem != NULL && d->header_problem == NULL)
		d->header_problem = problem;
}

/*
 * The format columns of one claimed row, decoded by name (claim_sql in
 * queue.c appends them after ep.xmin), in the delivery's context.  A value
 * the write-time checks would refuse (a row written past the triggers)
 * fails the delivery rather than be sent.
 */
void
request_format_from_claim(Delivery *d, HeapTuple tuple, TupleDesc desc)
{
	char	   *format = claim_text(tuple, desc, "format");
	char	   *encoding = claim_text(tuple, desc, "signature_encoding");
	const WebhookSignatureEncodingForm *form = encoding ? webhook_signature_encoding(encoding) : NULL;

	d->format = format ? request_format_from_name(format) : FORMAT_UNKNOWN;
	d->event_type_header = claim_text(tuple, desc, "event_type_header");
	if (d->event_type_header == NULL)
		d->event_type_header = pstrdup(WEBHOOK_DEFAULT_EVENT_TYPE_HEADER);
	if (d->format == FORMAT_UNKNOWN && d->header_problem == NULL)
		d->header_problem = "the endpoint's format is unknown";
	if (pg_strcasecmp(d->event_type_header, WEBHOOK_DEFAULT_EVENT_TYPE_HEADER) != 0 &&
		webhook_header_check(d->event_type_header, "") != HEADER_OK &&
		d->header_problem == NULL)
		d->header_problem = "the endpoint's event_type_header cannot be sent";
	if (form == NULL && d->key.signing == SIGNING_HMAC_SHA256 && d->header_problem == NULL)
		d->header_problem = "the endpoint's signature_encoding is unknown";
	d->key.encoding = d->previous_key.encoding = form ? form->encoding : SIGNATURE_SHA256_HEX;

	format_clash(d);

	if (d->format == FORMAT_CLOUDEVENTS || d->format == FORMAT_CLOUDEVENTS_STRUCTURED)
	{
		d->cloudevents_source = claim_text(tuple, desc, "cloudevents_source");
		if (d->cloudevents_source == NULL)
			d->cloudevents_source = pstrdup(default_source());
		d->event_data = claim_text(tuple, desc, "format_data");
		d->event_time = claim_text(tuple, desc, "format_time");
	}
}

/* Is this text one JSON value? */
static bool
is_json(char *text, int len)
{
	JsonLexContext *lex = makeJsonLexContextCstringLen(text, len, GetDatabaseEncoding(), false);

	return pg_parse_json(lex, &nullSemAction) == JSON_SUCCESS;
}

/*
 * The body the format sends, in place of d->body: for cloudevents the
 * event's data, for cloudevents-structured the whole event as one JSON
 * document.  The data is the transform's result when the endpoint has a
 * transform; structured mode needs it to be JSON.  Runs after transforms,
 * before the request is signed, in the delivery's context.
 */
void
request_format_shape(Delivery *d)
{
	MemoryContext old;
	const char *data;
	StringInfoData buf;

	if (d->format == FORMAT_STANDARD || d->format == FORMAT_UNKNOWN ||
		d->key_problem || d->header_problem || d->transform_error)
		return;
	old = MemoryContextSwitchTo(d->cxt);
	data = OidIsValid(d->transform) ? d->body : (d->event_data ? d->event_data : "null");
	if (d->format == FORMAT_CLOUDEVENTS)
	{
		d->body = pstrdup(data);
		d->body_len = strlen(d->body);
		MemoryContextSwitchTo(old);
		return;
	}
	if (OidIsValid(d->transform) && !is_json(d->body, d->body_len))
	{
		d->transform_error = pstrdup("the transform returned text that is not JSON, and format cloudevents-structured sends it as JSON data");
		MemoryContextSwitchTo(old);
		return;
	}
	initStringInfo(&buf);
	appendStringInfoString(&buf, "{\"specversion\":\"1.0\",\"id\":");
	escape_json(&buf, d->event_id);
	appendStringInfoString(&buf, ",\"source\":");
	escape_json(&buf, d->cloudevents_source);
	appendStringInfoString(&buf, ",\"type\":");
	escape_json(&buf, d->event_type);
	appendStringInfoString(&buf, ",\"time\":");
	escape_json(&buf, d->event_time ? d->event_time : "");
	appendStringInfoString(&buf, ",\"datacontenttype\":\"application/json\",\"data\":");
	appendStringInfoString(&buf, data);
	appendStringInfoChar(&buf, '}');
	d->body = buf.data;
	d->body_len = buf.len;
	MemoryContextSwitchTo(old);
}

/* One "ce-<name>: <value>" header, the value percent-encoded as the binding says. */
static struct curl_slist *
append_ce_header(struct curl_slist *h, const char *name, const char *value)
{
	StringInfoData line;

	initStringInfo(&line);
	appendStringInfo(&line, "ce-%s: ", name);
	append_percent_encoded(&line, value ? value : "", is_header_safe);
	h = curl_slist_append(h, line.data);
	pfree(line.data);
	return h;
}

/*
 * The format's own headers: the Content-Type, and in binary mode the
 * CloudEvents attributes (the Content-Type is the datacontenttype, so no
 * ce-datacontenttype).  Built in the delivery's context.
 */
struct curl_slist *
request_format_headers(Delivery *d, struct curl_slist *h)
{
	if (d->format == FORMAT_CLOUDEVENTS_STRUCTURED)
		return curl_slist_append(h, "Content-Type: application/cloudevents+json");
	h = curl_slist_append(h, "Content-Type: application/json");
	if (d->format == FORMAT_CLOUDEVENTS)
	{
		h = append_ce_header(h, "specversion", "1.0");
		h = append_ce_header(h, "id", d->event_id);
		h = append_ce_header(h, "source", d->cloudevents_source);
		h = append_ce_header(h, "type", d->event_type);
		h = append_ce_header(h, "time", d->event_time);
	}
	return h;
}

/* "<event_type_header>: <event type>", the header naming the event type. */
char *
request_format_event_type_line(Delivery *d)
{
	return psprintf("%s: %s", d->event_type_header, d->event_type);
}
