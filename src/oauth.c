/*
 * oauth.c
 *		OAuth2 client credentials (RFC 6749, section 4.4) for endpoints that
 *		name a token URL.  The worker asks the token endpoint for an access
 *		token, keeps it per endpoint until shortly before it expires, and
 *		sends it as Authorization: Bearer.  A receiver that answers 401 gets
 *		the request once more with a fresh token before the attempt counts
 *		as failed.
 *
 * A token request is a Delivery with oauth_token_request set, sent through
 * the worker's one multi handle like any request (http.c): it is bounded by
 * the endpoint's timeout_ms and a response size, goes through the network
 * guard's open-socket callback and the endpoint's proxy, and never blocks
 * the worker.  Deliveries of an endpoint whose token is being fetched wait
 * here, in memory and still claimed; other endpoints keep flowing.  A token
 * request that fails fails those deliveries' attempts with class oauth,
 * retried per the endpoint's schedule; the error says what the token
 * endpoint answered, never the client secret (sent only in the Basic
 * authentication header, RFC 6749 section 2.3.1).
 *
 * The cache lives in the worker's memory, keyed by endpoint id.  It also
 * keeps a digest of the credentials it was fetched with, so that a change
 * of the endpoint's oauth columns (or proxy) drops the token.
 */
#include "postgres.h"

#include <curl/curl.h>

#include "common/hashfn.h"
#include "common/jsonapi.h"
#include "lib/stringinfo.h"
#include "mb/pg_wchar.h"
#include "utils/hsearch.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"

#include "http.h"
#include "oauth.h"
#include "schedule.h"
#include "url_policy.h"
#include "url_rules.h"

#define OAUTH_TOKEN_MAX_BYTES 8192
#define OAUTH_DIGEST_BYTES 16	/* two 64-bit hashes of the credentials */
#define OAUTH_REFRESH_MARGIN_MS 30000	/* refresh this long before expiry, at
										 * most */
#define OAUTH_LIFETIME_MAX_S 86400	/* a token is kept at most this long */
#define OAUTH_LIFETIME_DEFAULT_S 3600	/* when the answer has no expires_in */

/* One endpoint's token, and the deliveries waiting for one. */
typedef struct OAuthEndpoint
{
	int64		endpoint_id;	/* hash key */
	uint8		config[OAUTH_DIGEST_BYTES]; /* the credentials last claimed */
	char	   *token;			/* in TopMemoryContext; NULL: none */
	TimestampTz refresh_at;		/* fetch a new one from then on */
	Delivery   *fetch;			/* the token request in flight, or NULL */
	uint8		fetch_config[OAUTH_DIGEST_BYTES];	/* what it asks with */
	dlist_head	parked;			/* deliveries waiting for the token */
} OAuthEndpoint;

static HTAB *endpoints = NULL;
static int	n_waiting = 0;

/* The cache, made on first use. */
static HTAB *
endpoint_table(void)
{
	HASHCTL		ctl;

	if (endpoints != NULL)
		return endpoints;
	ctl.keysize = sizeof(int64);
	ctl.entrysize = sizeof(OAuthEndpoint);
	ctl.hcxt = TopMemoryContext;
	endpoints = hash_create("webhook oauth tokens", 64, &ctl, HASH_ELEM | HASH_BLOBS | HASH_CONTEXT);
	return endpoints;
}

/* Add one value to the credentials' text, NULL told apart from "". */
static void
digest_add(StringInfo buf, const char *value)
{
	appendStringInfoChar(buf, value ? '1' : '0');
	if (value)
		appendBinaryStringInfo(buf, value, strlen(value) + 1);
}

/*
 * A digest of what a token request of this delivery would send where: two
 * seeded 64-bit hashes, so that a change of credentials is noticed without
 * keeping them.  (pg_cryptohash needs a resource owner, which the worker
 * has not between transactions.)
 */
static void
credentials_digest(Delivery *d, uint8 *out)
{
	StringInfoData buf;
	uint64		h[2];

	initStringInfo(&buf);
	digest_add(&buf, d->oauth_token_url);
	digest_add(&buf, d->oauth_client_id);
	digest_add(&buf, d->oauth_client_secret);
	digest_add(&buf, d->oauth_scope);
	digest_add(&buf, d->proxy);
	h[0] = hash_bytes_extended((const unsigned char *) buf.data, buf.len, UINT64CONST(0x6f61757468));
	h[1] = hash_bytes_extended((const unsigned char *) buf.data, buf.len, UINT64CONST(0x746f6b656e));
	memcpy(out, h, OAUTH_DIGEST_BYTES);
	explicit_bzero(buf.data, buf.len);
	pfree(buf.data);
}

/* Forget an endpoint's token. */
static void
drop_token(OAuthEndpoint *e)
{
	if (e->token == NULL)
		return;
	explicit_bzero(e->token, strlen(e->token));
	pfree(e->token);
	e->token = NULL;
	e->refresh_at = 0;
}

/*
 * The endpoint's cache entry, made on first use; a token fetched with other
 * credentials than this delivery's is dropped.
 */
static OAuthEndpoint *
endpoint_entry(Delivery *d)
{
	bool		found;
	OAuthEndpoint *e = hash_search(endpoint_table(), &d->endpoint_id, HASH_ENTER, &found);
	uint8		config[OAUTH_DIGEST_BYTES];

	credentials_digest(d, config);
	if (!found)
	{
		e->token = NULL;
		e->refresh_at = 0;
		e->fetch = NULL;
		dlist_init(&e->parked);
		memcpy(e->config, config, sizeof(config));
	}
	else if (memcmp(e->config, config, sizeof(config)) != 0)
	{
		drop_token(e);
		memcpy(e->config, config, sizeof(config));
	}
	return e;
}

/* application/x-www-form-urlencoded (RFC 6749, appendix B). */
static char *
form_encode(const char *value)
{
	StringInfoData out;

	initStringInfo(&out);
	for (const unsigned char *p = (const unsigned char *) value; *p; p++)
	{
		if (isalnum(*p) || *p == '-' || *p == '.' || *p == '_' || *p == '*')
			appendStringInfoChar(&out, (char) *p);
		else if (*p == ' ')
			appendStringInfoChar(&out, '+');
		else
			appendStringInfo(&out, "%%%02X", *p);
	}
	return out.data;
}

/* The headers of a token request (the body is a form, the answer JSON). */
struct curl_slist *
oauth_token_request_headers(void)
{
	struct curl_slist *h = NULL;

	h = curl_slist_append(h, "Content-Type: application/x-www-form-urlencoded");
	h = curl_slist_append(h, "Accept: application/json");
	h = curl_slist_append(h, "Expect:");
	return h;
}

/* Wipe a delivery's copies of its credentials: its outcome is final. */
static void
forget_credentials(Delivery *d)
{
	if (d->oauth_client_secret)
		explicit_bzero(d->oauth_client_secret, strlen(d->oauth_client_secret));
	if (d->oauth_tls_client_key)
		explicit_bzero(d->oauth_tls_client_key, strlen(d->oauth_tls_client_key));
	d->oauth_tls_client_key = NULL;
}

/* Fail one waiting delivery's attempt with class oauth: nothing was sent. */
static void
fail_delivery(Delivery *d, const char *problem, dlist_head *failed)
{
	MemoryContext old = MemoryContextSwitchTo(d->cxt);

	d->attempted_at = GetCurrentTimestamp();
	d->status_code = 0;
	d->duration_ms = 0;
	d->bytes_sent = 0;
	d->error_class = ERROR_CLASS_OAUTH;
	d->error = pstrdup(problem);
	MemoryContextSwitchTo(old);
	forget_credentials(d);
	dlist_push_tail(failed, &d->node);
}

/* Hand every delivery waiting on the endpoint to fail_delivery. */
static void
fail_parked(OAuthEndpoint *e, const char *problem, dlist_head *failed)
{
	dlist_mutable_iter iter;

	dlist_foreach_modify(iter, &e->parked)
	{
		Delivery   *d = dlist_container(Delivery, node, iter.cur);

		dlist_delete(&d->node);
		n_waiting--;
		fail_delivery(d, problem, failed);
	}
}

/*
 * Ask the token endpoint for a token with this delivery's credentials.  The
 * request is sent asynchronously; oauth_transfer_done takes its answer.
 * Through a proxy the worker never sees the token endpoint's address, so
 * its URL is checked here by the rules and guard of endpoint URLs.
 */
static void
start_fetch(OAuthEndpoint *e, Delivery *d, dlist_head *failed)
{
	MemoryContext cxt = AllocSetContextCreate(TopMemoryContext, "webhook oauth token request",
											  ALLOCSET_SMALL_SIZES);
	MemoryContext old = MemoryContextSwitchTo(cxt);
	Delivery   *t = palloc0(sizeof(Delivery));
	StringInfoData body;

	t->cxt = cxt;
	t->oauth_token_request = true;
	t->endpoint_id = d->endpoint_id;
	t->url = pstrdup(d->oauth_token_url);
	t->timeout_ms = d->timeout_ms;
	t->proxy = d->proxy ? pstrdup(d->proxy) : NULL;
	t->proxy_trusted = d->proxy_trusted;
	/* Client authentication by HTTP Basic, id and secret form-encoded. */
	t->auth_username = form_encode(d->oauth_client_id);
	t->auth_password = form_encode(d->oauth_client_secret);
	initStringInfo(&body);
	appendStringInfoString(&body, "grant_type=client_credentials");
	if (d->oauth_scope != NULL)
		appendStringInfo(&body, "&scope=%s", form_encode(d->oauth_scope));
	t->body = body.data;
	t->body_len = body.len;
	MemoryContextSwitchTo(old);

	if (t->proxy != NULL)
	{
		NetGuardPolicy policy;
		char		policy_error[128];
		bool		policy_ok = webhook_current_policy(&policy, policy_error, sizeof(policy_error));
		char		buf[512];
		const char *problem = webhook_url_check(t->url, false, policy_ok ? &policy : NULL,
												policy_error, buf, sizeof(buf));

		if (problem != NULL)
		{
			fail_parked(e, psprintf("the OAuth2 token URL is refused by the network guard: %s", problem),
						failed);
			explicit_bzero(t->auth_password, strlen(t->auth_password));
			MemoryContextDelete(cxt);
			return;
		}
	}
	e->fetch = t;
	credentials_digest(d, e->fetch_config);
	http_start(t);
}

/*
 * Send a delivery of an endpoint with OAuth2 client credentials: at once
 * with the cached token while it is fresh, or once a token request answers.
 * A delivery that cannot wait (the token URL refused) goes to failed.
 */
void
oauth_send(Delivery *d, dlist_head *failed)
{
	OAuthEndpoint *e = endpoint_entry(d);

	/* http.c wipes the client key once libcurl has it: keep one for a 401. */
	if (d->tls_client_key != NULL && !d->oauth_retried && d->oauth_tls_client_key == NULL)
		d->oauth_tls_client_key = MemoryContextStrdup(d->cxt, d->tls_client_key);

	if (e->token != NULL && GetCurrentTimestamp() < e->refresh_at)
	{
		d->oauth_bearer = MemoryContextStrdup(d->cxt, e->token);
		http_start(d);
		return;
	}
	drop_token(e);
	dlist_push_tail(&e->parked, &d->node);
	n_waiting++;
	if (e->fetch == NULL)
		start_fetch(e, d, failed);
}

/* Deliveries waiting for a token, claimed but not in flight. */
int
oauth_waiting(void)
{
	return n_waiting;
}

/* ------------------------------------------------------------------------
 * Reading the token endpoint's answer
 * ------------------------------------------------------------------------ */

/* The fields of a token response we use, at the top level of the object. */
typedef struct TokenFields
{
	int			depth;
	const char *field;			/* the top-level field being read, or NULL */
	char	   *access_token;
	JsonTokenType access_token_type;
	char	   *token_type;
	char	   *expires_in;
	char	   *error;
	char	   *error_description;
} TokenFields;

static void
token_nest(void *state)
{
	((TokenFields *) state)->depth++;
}

static void
token_unnest(void *state)
{
	((TokenFields *) state)->depth--;
}

static void
token_field(void *state, char *fname, bool isnull)
{
	TokenFields *f = (TokenFields *) state;

	f->field = f->depth == 1 ? fname : NULL;
}

static void
token_scalar(void *state, char *token, JsonTokenType type)
{
	TokenFields *f = (TokenFields *) state;

	if (f->depth != 1 || f->field == NULL)
		return;
	if (strcmp(f->field, "access_token") == 0)
	{
		f->access_token = token;
		f->access_token_type = type;
	}
	else if (strcmp(f->field, "token_type") == 0 && type == JSON_TOKEN_STRING)
		f->token_type = token;
	else if (strcmp(f->field, "expires_in") == 0)
		f->expires_in = token;
	else if (strcmp(f->field, "error") == 0 && type == JSON_TOKEN_STRING)
		f->error = token;
	else if (strcmp(f->field, "error_description") == 0 && type == JSON_TOKEN_STRING)
		f->error_description = token;
}

/* Parse a token endpoint's answer; false if it is no JSON object. */
static bool
parse_token_response(Delivery *t, TokenFields *f)
{
	JsonSemAction sem = {0};
	JsonLexContext *lex;

	memset(f, 0, sizeof(*f));
	if (t->response_len == 0 || t->response_seen > t->response_len)
		return false;
	sem.semstate = f;
	sem.object_start = token_nest;
	sem.object_end = token_unnest;
	sem.array_start = token_nest;
	sem.array_end = token_unnest;
	sem.object_field_start = token_field;
	sem.scalar = token_scalar;
	lex = makeJsonLexContextCstringLen(t->response, (int) t->response_len, GetDatabaseEncoding(), true);
	return pg_parse_json(lex, &sem) == JSON_SUCCESS && t->response[0] == '{';
}

/* A short, printable copy of a text the token endpoint sent. */
static char *
shown_text(const char *text)
{
	char	   *out = pnstrdup(text, 200);

	for (char *p = out; *p; p++)
		if ((unsigned char) *p < 0x20 || *p == 0x7f)
			*p = ' ';
	return out;
}

/*
 * The access token of a finished token request, or NULL with *problem
 * saying why there is none (for the failed attempts' error).  *lifetime_s
 * is how long the token is valid.
 */
static char *
read_token(Delivery *t, const char **problem, int *lifetime_s)
{
	char		origin[512];
	TokenFields f;
	bool		parsed;

	webhook_url_origin(t->url, origin, sizeof(origin));
	parsed = t->error_class == ERROR_CLASS_NONE || t->error_class == ERROR_CLASS_HTTP ?
		parse_token_response(t, &f) : false;
	if (t->error_class == ERROR_CLASS_HTTP)
	{
		*problem = psprintf("the OAuth2 token request to %s failed: HTTP %ld%s%s%s%s%s",
							origin, t->status_code,
							parsed && f.error ? " (" : "",
							parsed && f.error ? shown_text(f.error) : "",
							parsed && f.error && f.error_description ? ": " : "",
							parsed && f.error && f.error_description ? shown_text(f.error_description) : "",
							parsed && f.error ? ")" : "");
		return NULL;
	}
	if (t->error_class != ERROR_CLASS_NONE)
	{
		*problem = psprintf("the OAuth2 token request to %s failed (%s): %s", origin,
							webhook_error_class_name(t->error_class), t->error ? t->error : "");
		return NULL;
	}
	if (t->response_seen > t->response_len)
	{
		*problem = psprintf("the OAuth2 token endpoint %s answered with more than %d bytes",
							origin, OAUTH_TOKEN_RESPONSE_MAX);
		return NULL;
	}
	if (!parsed)
	{
		*problem = psprintf("the OAuth2 token endpoint %s did not answer with a JSON object", origin);
		return NULL;
	}
	if (f.access_token == NULL || f.access_token_type != JSON_TOKEN_STRING || f.access_token[0] == '\0')
	{
		*problem = psprintf("the OAuth2 token endpoint %s answered without an access_token", origin);
		return NULL;
	}
	if (strlen(f.access_token) > OAUTH_TOKEN_MAX_BYTES)
	{
		*problem = psprintf("the OAuth2 token endpoint %s answered with an access_token of more than %d bytes",
							origin, OAUTH_TOKEN_MAX_BYTES);
		return NULL;
	}
	for (const unsigned char *p = (const unsigned char *) f.access_token; *p; p++)
		if (*p < 0x21 || *p > 0x7e)
		{
			*problem = psprintf("the OAuth2 token endpoint %s answered with an access_token that cannot be sent in a header",
								origin);
			return NULL;
		}
	if (f.token_type != NULL && pg_strcasecmp(f.token_type, "bearer") != 0)
	{
		*problem = psprintf("the OAuth2 token endpoint %s answered with token_type \"%s\", not Bearer",
							origin, shown_text(f.token_type));
		return NULL;
	}
	*lifetime_s = OAUTH_LIFETIME_DEFAULT_S;
	if (f.expires_in != NULL)
	{
		char	   *end;
		double		seconds = strtod(f.expires_in, &end);

		if (end != f.expires_in && *end == '\0' && seconds >= 0)
			*lifetime_s = (int) Min(seconds, (double) OAUTH_LIFETIME_MAX_S);
	}
	return f.access_token;
}

/*
 * A token request finished: keep the token and send the deliveries that
 * waited for it, or fail their attempts.  If the endpoint's credentials
 * changed while it was under way, ask again with the new ones instead.
 */
static void
token_done(Delivery *t, dlist_head *failed)
{
	OAuthEndpoint *e = hash_search(endpoint_table(), &t->endpoint_id, HASH_FIND, NULL);
	const char *problem = NULL;
	int			lifetime_s = 0;
	char	   *token = read_token(t, &problem, &lifetime_s);
	bool		current;

	current = e != NULL && e->fetch == t &&
		memcmp(e->fetch_config, e->config, sizeof(e->config)) == 0;
	if (e != NULL && e->fetch == t)
		e->fetch = NULL;
	if (token != NULL)
		token = pstrdup(token);
	explicit_bzero(t->auth_password, strlen(t->auth_password));
	if (t->response)
		explicit_bzero(t->response, t->response_cap);
	MemoryContextDelete(t->cxt);
	if (e == NULL || dlist_is_empty(&e->parked))
		return;
	if (!current)
	{
		start_fetch(e, dlist_container(Delivery, node, dlist_tail_node(&e->parked)), failed);
		return;
	}
	if (token == NULL)
	{
		ereport(DEBUG1, (errmsg("webhook: %s", problem)));
		fail_parked(e, problem, failed);
		return;
	}

	{
		int64		keep_ms = (int64) lifetime_s * 1000;

		keep_ms -= Min(OAUTH_REFRESH_MARGIN_MS, keep_ms / 10);
		drop_token(e);
		e->token = MemoryContextStrdup(TopMemoryContext, token);
		e->refresh_at = TimestampTzPlusMilliseconds(GetCurrentTimestamp(), keep_ms);
	}
	explicit_bzero(token, strlen(token));
	ereport(DEBUG1,
			(errmsg("webhook: OAuth2 token for endpoint " INT64_FORMAT " fetched, valid for %d s",
					e->endpoint_id, lifetime_s)));
	{
		dlist_mutable_iter iter;

		dlist_foreach_modify(iter, &e->parked)
		{
			Delivery   *d = dlist_container(Delivery, node, iter.cur);

			dlist_delete(&d->node);
			n_waiting--;
			d->oauth_bearer = MemoryContextStrdup(d->cxt, e->token);
			http_start(d);
		}
	}
}

/* Clear what a request left in a delivery, to send it once more. */
static void
reset_result(Delivery *d)
{
	d->status_code = 0;
	d->error_class = ERROR_CLASS_NONE;
	d->error = NULL;
	d->response_len = 0;
	d->response_seen = 0;
	d->response_cut = false;
	d->header_bytes = 0;
	d->headers_too_large = false;
	d->retry_after_s = -1;
	d->blocked_class = NULL;
	d->curl_error[0] = '\0';
	d->oauth_bearer = NULL;
}

/*
 * A request finished (http_next_done).  Returns true when this module takes
 * it: a token request, whose waiting deliveries are sent or go to failed,
 * or a delivery the receiver answered 401 with its token, sent once more
 * with a new one (the same attempt).  Otherwise the delivery's outcome
 * stands, and its client secret is wiped.
 */
bool
oauth_transfer_done(Delivery *d, dlist_head *failed)
{
	if (d->oauth_token_request)
	{
		token_done(d, failed);
		return true;
	}
	if (d->oauth_token_url == NULL)
		return false;
	if (d->oauth_bearer != NULL && !d->oauth_retried &&
		d->error_class == ERROR_CLASS_HTTP && d->status_code == 401)
	{
		OAuthEndpoint *e = hash_search(endpoint_table(), &d->endpoint_id, HASH_FIND, NULL);

		/* Drop the token the receiver refused, unless a newer one came. */
		if (e != NULL && e->token != NULL && strcmp(e->token, d->oauth_bearer) == 0)
			drop_token(e);
		ereport(DEBUG1,
				(errmsg("webhook: the receiver of endpoint " INT64_FORMAT " refused its OAuth2 token: fetching a new one",
						d->endpoint_id)));
		reset_result(d);
		d->oauth_retried = true;
		d->tls_client_key = d->oauth_tls_client_key;	/* wiped by http.c */
		d->oauth_tls_client_key = NULL;
		oauth_send(d, failed);
		return true;
	}
	forget_credentials(d);
	return false;
}
