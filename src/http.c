/*
 * http.c
 *		All requests of a delivery worker go through one libcurl multi handle.
 *		Its sockets, the worker's latch and postmaster death share one
 *		WaitEventSet (waitset.c), so the worker sleeps until one of them needs
 *		it and never waits where it cannot see an interrupt.
 *
 * libcurl callbacks never ereport or palloc: an error there would longjmp
 * through libcurl.  They only copy bytes and set fields, which the worker
 * reads after curl returns.
 */
#include "postgres.h"

#include <sys/resource.h>

#include <curl/curl.h>

#include "miscadmin.h"
#include "storage/latch.h"
#include "utils/memutils.h"
#include "utils/wait_event.h"

#include "http.h"
#include "netguard.h"
#include "oauth.h"
#include "proxy.h"
#include "request_format.h"
#include "schedule.h"
#include "url_policy.h"
#include "waitset.h"
#include "webhook.h"

#define MAX_OCCURRED_EVENTS 512
#define RESPONSE_READ_LIMIT (1024 * 1024)	/* stop reading bodies beyond this */
#define RESPONSE_HEADERS_LIMIT (64 * 1024)	/* refuse responses with more
											 * header bytes */

static CURLM *multi = NULL;
static long max_connections = 1000; /* sockets curl may open at once */
static int	n_in_flight = 0;


static long curl_timeout_ms = -1;	/* what curl's timer callback asked for */
static int	curl_running = 0;	/* transfers curl last said were running */
static instr_time curl_timer_set_at;

/*
 * Easy handles of finished requests, reset and kept for the next ones: a
 * handle made and freed per request was a tenth of the worker's time.
 */
#define EASY_POOL_MAX 256
static CURL *easy_pool[EASY_POOL_MAX];
static int	n_pooled = 0;

static NetGuardPolicy policy;
static bool policy_valid = false;
static bool policy_changed = false; /* pooled connections predate the policy */

/* Remember when curl next wants to be called without socket activity. */
static int
timer_callback(CURLM *m, long timeout_ms, void *userp)
{
	curl_timeout_ms = timeout_ms;
	INSTR_TIME_SET_CURRENT(curl_timer_set_at);
	return 0;
}

/*
 * Refuse to connect to addresses the network policy forbids.  This runs for
 * the address curl resolved and is about to connect to, so a DNS name that
 * points somewhere private (or is rebound to) is caught.  Through a proxy,
 * that address is the proxy's: webhook.proxy, a superuser's choice, is let
 * through; an endpoint's own proxy is checked like a receiver (proxy.c).
 */
static curl_socket_t
open_socket_callback(void *clientp, curlsocktype purpose, struct curl_sockaddr *address)
{
	Delivery   *d = (Delivery *) clientp;
	const char *klass;

	if (d->proxy_trusted)
		return socket(address->family, address->socktype, address->protocol);
	if (!policy_valid)
	{
		d->blocked_class = "invalid webhook.allowed_networks";
		return CURL_SOCKET_BAD;
	}
	klass = netguard_check(&policy, &address->addr);
	if (klass != NULL)
	{
		d->blocked_class = klass;
		return CURL_SOCKET_BAD;
	}
	return socket(address->family, address->socktype, address->protocol);
}

/* Keep the first bytes of the response for the log; drop the rest. */
static size_t
write_callback(char *ptr, size_t size, size_t nmemb, void *userdata)
{
	Delivery   *d = (Delivery *) userdata;
	size_t		n = size * nmemb;

	if (d->response_len < d->response_cap)
	{
		size_t		keep = Min(n, d->response_cap - d->response_len);

		memcpy(d->response + d->response_len, ptr, keep);
		d->response_len += keep;
	}
	d->response_seen += n;
	if (d->response_seen > RESPONSE_READ_LIMIT)
	{
		/* The status is known; a huge body is not worth the bandwidth. */
		d->response_cut = true;
		return CURL_WRITEFUNC_ERROR;
	}
	return n;
}

/* Pick Retry-After out of the response headers. */
static size_t
header_callback(char *buffer, size_t size, size_t nitems, void *userdata)
{
	Delivery   *d = (Delivery *) userdata;
	size_t		n = size * nitems;

	d->header_bytes += n;
	if (d->header_bytes > RESPONSE_HEADERS_LIMIT)
	{
		d->headers_too_large = true;
		return 0;				/* abort the transfer */
	}
	if (n > 12 && pg_strncasecmp(buffer, "retry-after:", 12) == 0)
	{
		char		value[64];
		size_t		len = Min(n - 12, sizeof(value) - 1);
		char	   *p = value;
		char	   *end;
		long		seconds;

		memcpy(value, buffer + 12, len);
		value[len] = '\0';
		while (*p == ' ' || *p == '\t')
			p++;
		while (len > 0 && (value[len - 1] == '\r' || value[len - 1] == '\n' || value[len - 1] == ' '))
			value[--len] = '\0';
		seconds = strtol(p, &end, 10);
		if (end != p && *end == '\0' && seconds >= 0)
			d->retry_after_s = (int) Min(seconds, INT_MAX);
		else
		{
			time_t		when = curl_getdate(p, NULL);

			/* In time_t, so that a date decades ahead cannot wrap around. */
			if (when > 0)
				d->retry_after_s = (int) Min(Max(when - time(NULL), 0), INT_MAX);
		}
	}
	return n;
}

/* An easy handle for a new request: a pooled one, or a new one. */
static CURL *
take_easy(void)
{
	return n_pooled > 0 ? easy_pool[--n_pooled] : curl_easy_init();
}

/*
 * Give back the easy handle of a finished request, removed from the multi
 * handle: reset to the default options (its connection stays in the multi
 * handle's pool), or freed when the pool is full.
 */
static void
give_back_easy(CURL *e)
{
	if (n_pooled < EASY_POOL_MAX)
	{
		curl_easy_reset(e);
		easy_pool[n_pooled++] = e;
	}
	else
		curl_easy_cleanup(e);
}

/*
 * A multi handle owns the connection pool; a new one starts with none, and
 * with no easy handle that served under the old one.
 */
static void
recreate_multi(void)
{
	while (n_pooled > 0)
		curl_easy_cleanup(easy_pool[--n_pooled]);
	if (multi)
		curl_multi_cleanup(multi);
	waitset_reset();
	curl_timeout_ms = -1;
	curl_running = 0;
	multi = curl_multi_init();
	if (multi == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_OUT_OF_MEMORY),
				 errmsg("could not create a libcurl multi handle")));
	curl_multi_setopt(multi, CURLMOPT_SOCKETFUNCTION, waitset_socket_callback);
	curl_multi_setopt(multi, CURLMOPT_TIMERFUNCTION, timer_callback);
	curl_multi_setopt(multi, CURLMOPT_PIPELINING, CURLPIPE_MULTIPLEX);
	curl_multi_setopt(multi, CURLMOPT_MAXCONNECTS, (long) webhook_max_in_flight);

	/*
	 * Beyond this many sockets, requests wait in curl's queue rather than
	 * fail.
	 */
	curl_multi_setopt(multi, CURLMOPT_MAX_TOTAL_CONNECTIONS, (long) max_connections);
}

/*
 * Take the network policy from the settings, at start and after each
 * reload.  When it changed, connections already open are not reused.
 */
void
http_reload_policy(void)
{
	NetGuardPolicy fresh;
	char		errbuf[128];
	bool		valid = webhook_current_policy(&fresh, errbuf, sizeof(errbuf));

	if (!valid)
		ereport(WARNING,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid webhook.allowed_networks: %s", errbuf),
				 errhint("Requests to non-public addresses are refused until it is fixed.")));
	if (valid != policy_valid || (valid && memcmp(&fresh, &policy, sizeof(policy)) != 0))
		policy_changed = multi != NULL;
	/* A new webhook.proxy: connections to the old one are not reused either. */
	if (proxy_setting_changed())
		policy_changed = multi != NULL;
	policy = fresh;
	policy_valid = valid;
}

/*
 * Open connections are bounded by the file descriptors the worker may have:
 * raise the soft limit to the hard one, and keep a margin for PostgreSQL.
 */
static void
size_connection_pool(void)
{
	struct rlimit rl;

	max_connections = 1000;
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0)
	{
		if (rl.rlim_cur < rl.rlim_max)
		{
			rl.rlim_cur = rl.rlim_max;
			(void) setrlimit(RLIMIT_NOFILE, &rl);
			(void) getrlimit(RLIMIT_NOFILE, &rl);
		}
		if (rl.rlim_cur != RLIM_INFINITY)
			max_connections = (long) Max(Min((rlim_t) 20000, rl.rlim_cur / 2), 16);
		else
			max_connections = 20000;
	}
}

/* One multi handle for the life of the worker, and the first policy. */
void
http_init(void)
{
	size_connection_pool();
	if (curl_global_init(CURL_GLOBAL_ALL) != CURLE_OK)
		ereport(ERROR,
				(errcode(ERRCODE_INTERNAL_ERROR),
				 errmsg("could not initialize libcurl")));
	/* Two sockets per request covers happy-eyeballs connects. */
	waitset_init(2 * 10000 + 16);
	recreate_multi();
	http_reload_policy();
}

/*
 * The request's headers: content type (and CloudEvents attributes, by the
 * endpoint's format), the Standard Webhooks id, timestamp
 * and signature (both signatures while a rotated-out secret is in its
 * grace period), or the endpoint's own signature header, then the event
 * type and the endpoint's extra headers.  Built in the delivery's context.
 */
static struct curl_slist *
request_headers(Delivery *d)
{
	char		line[256];
	char		signature[WEBHOOK_SIGNATURE_MAX];
	long long	timestamp = (long long) (time(NULL));
	struct curl_slist *h = NULL;

	if (!webhook_compute_signature(&d->key, d->event_id, timestamp, d->body, d->body_len, signature))
		signature[0] = '\0';

	/* The endpoint's format: Content-Type and CloudEvents headers. */
	h = request_format_headers(d, h);
	snprintf(line, sizeof(line), "webhook-id: %s", d->event_id);
	h = curl_slist_append(h, line);
	snprintf(line, sizeof(line), "webhook-timestamp: %lld", timestamp);
	h = curl_slist_append(h, line);
	if (d->key.signing == SIGNING_STANDARD || d->key.signing == SIGNING_ED25519)
	{
		char		previous[WEBHOOK_SIGNATURE_MAX];

		/* Both signatures, space-separated, while a rotation is in grace. */
		if (d->has_previous_key &&
			webhook_compute_signature(&d->previous_key, d->event_id, timestamp, d->body, d->body_len, previous))
			snprintf(line, sizeof(line), "webhook-signature: %s %s", signature, previous);
		else
			snprintf(line, sizeof(line), "webhook-signature: %s", signature);
		h = curl_slist_append(h, line);
	}
	else if (d->key.signing == SIGNING_HMAC_SHA256)
	{
		h = curl_slist_append(h, psprintf("%s: %s", d->signature_header, signature));
	}
	/* The event type, in the endpoint's event_type_header. */
	h = curl_slist_append(h, request_format_event_type_line(d));
	for (int i = 0; i < d->n_headers; i++)
		h = curl_slist_append(h, d->headers[i]);
	/* OAuth2 (oauth.c): the endpoint's access token. */
	if (d->oauth_bearer != NULL)
		h = curl_slist_append(h, psprintf("Authorization: Bearer %s", d->oauth_bearer));
	h = curl_slist_append(h, "Expect:");
	return h;
}

/*
 * The transfer's options: a POST of the body to the endpoint's URL, http
 * or https only, no redirects, the configured proxy or none (proxy.c), the
 * endpoint's timeouts, and our callbacks, which only fill fields of the
 * delivery.
 */
static void
configure_transfer(Delivery *d)
{
	CURL	   *e = d->easy;

	curl_easy_setopt(e, CURLOPT_URL, d->url);
	curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L);

	/* The configured proxy, never one from http_proxy & co. */
	proxy_configure_transfer(d);
	curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(e, CURLOPT_POST, 1L);
	curl_easy_setopt(e, CURLOPT_POSTFIELDS, d->body);
	curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE, (long) d->body_len);
	curl_easy_setopt(e, CURLOPT_HTTPHEADER, d->request_headers);
	curl_easy_setopt(e, CURLOPT_USERAGENT, "webhook-pg/0.1");
	curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, (long) d->timeout_ms);
	curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, (long) Min(webhook_connect_timeout_ms, d->timeout_ms));
	curl_easy_setopt(e, CURLOPT_HTTP_VERSION, (long) CURL_HTTP_VERSION_2TLS);

	/*
	 * Wait to multiplex only where HTTP/2 is possible; on plain http it would
	 * queue requests behind a slow one on the same host.
	 */
	if (pg_strncasecmp(d->url, "https:", 6) == 0)
		curl_easy_setopt(e, CURLOPT_PIPEWAIT, 1L);
	if (policy_changed)
	{
		curl_easy_setopt(e, CURLOPT_FRESH_CONNECT, 1L);
		curl_easy_setopt(e, CURLOPT_FORBID_REUSE, 1L);
	}
	curl_easy_setopt(e, CURLOPT_TCP_NODELAY, 1L);
	curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, write_callback);
	curl_easy_setopt(e, CURLOPT_WRITEDATA, d);
	curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, header_callback);
	curl_easy_setopt(e, CURLOPT_HEADERDATA, d);
	curl_easy_setopt(e, CURLOPT_OPENSOCKETFUNCTION, open_socket_callback);
	curl_easy_setopt(e, CURLOPT_OPENSOCKETDATA, d);
	curl_easy_setopt(e, CURLOPT_CLOSESOCKETFUNCTION, waitset_close_callback);
	curl_easy_setopt(e, CURLOPT_ERRORBUFFER, d->curl_error);
	curl_easy_setopt(e, CURLOPT_PRIVATE, d);
	if (d->auth_username)
	{
		curl_easy_setopt(e, CURLOPT_HTTPAUTH, (long) CURLAUTH_BASIC);
		curl_easy_setopt(e, CURLOPT_USERNAME, d->auth_username);
		curl_easy_setopt(e, CURLOPT_PASSWORD, d->auth_password ? d->auth_password : "");
	}
}

/*
 * TLS: the endpoint's CA bundle and client certificate with its key, handed
 * to libcurl as in-memory PEM (copied by libcurl), never as files.  libcurl
 * reuses a connection, and resumes a TLS session, only for a transfer whose
 * CA blob and client certificate blob equal the connection's (its
 * Curl_ssl_config_matches), so endpoints with other TLS settings never share
 * one; the key goes with its certificate, which the endpoints trigger
 * checked.  Our copy of the key is wiped once libcurl has its own.
 */
#if LIBCURL_VERSION_NUM < 0x074D00
#error "libcurl 7.77.0 or later is needed (CURLOPT_CAINFO_BLOB)"
#endif
static void
configure_tls(Delivery *d)
{
	CURL	   *e = d->easy;
	struct curl_blob blob;

	if (d->tls_ca_cert)
	{
		blob.data = d->tls_ca_cert;
		blob.len = strlen(d->tls_ca_cert);
		blob.flags = CURL_BLOB_COPY;
		curl_easy_setopt(e, CURLOPT_CAINFO_BLOB, &blob);
	}
	if (d->tls_client_cert && d->tls_client_key)
	{
		blob.data = d->tls_client_cert;
		blob.len = strlen(d->tls_client_cert);
		blob.flags = CURL_BLOB_COPY;
		curl_easy_setopt(e, CURLOPT_SSLCERT_BLOB, &blob);
		curl_easy_setopt(e, CURLOPT_SSLCERTTYPE, "PEM");
		blob.data = d->tls_client_key;
		blob.len = strlen(d->tls_client_key);
		blob.flags = CURL_BLOB_COPY;
		curl_easy_setopt(e, CURLOPT_SSLKEY_BLOB, &blob);
		curl_easy_setopt(e, CURLOPT_SSLKEYTYPE, "PEM");
	}
	if (d->tls_client_key)
	{
		explicit_bzero(d->tls_client_key, strlen(d->tls_client_key));
		d->tls_client_key = NULL;
	}
}

/* Build a delivery's request and hand it to curl. */
void
http_start(Delivery *d)
{
	MemoryContext old = MemoryContextSwitchTo(d->cxt);

	/* Connections opened under an older policy must not be reused. */
	if (policy_changed && n_in_flight == 0)
	{
		recreate_multi();
		policy_changed = false;
	}

	d->attempted_at = GetCurrentTimestamp();
	INSTR_TIME_SET_CURRENT(d->started);
	d->retry_after_s = -1;
	d->response_cap = (size_t) webhook_response_body_limit_kb * 1024;
	/* OAuth2 (oauth.c): a token request's own answer bound and headers. */
	if (d->oauth_token_request)
		d->response_cap = OAUTH_TOKEN_RESPONSE_MAX;
	d->response = d->response_cap > 0 ? palloc(d->response_cap) : NULL;
	d->request_headers = d->oauth_token_request ? oauth_token_request_headers() : request_headers(d);
	d->easy = take_easy();
	if (d->easy == NULL || d->request_headers == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_OUT_OF_MEMORY),
				 errmsg("could not create a libcurl request")));
	configure_transfer(d);
	configure_tls(d);
	d->curl_error[0] = '\0';

	if (curl_multi_add_handle(multi, d->easy) != CURLM_OK)
		ereport(ERROR,
				(errcode(ERRCODE_INTERNAL_ERROR),
				 errmsg("could not add a request to libcurl")));
	n_in_flight++;
	MemoryContextSwitchTo(old);
}

/* Milliseconds until curl's timer fires, -1 for none. */
static long
curl_timer_remaining(void)
{
	instr_time	now;
	long		elapsed;

	if (curl_timeout_ms < 0)
		return -1;
	INSTR_TIME_SET_CURRENT(now);
	INSTR_TIME_SUBTRACT(now, curl_timer_set_at);
	elapsed = (long) INSTR_TIME_GET_MILLISEC(now);
	return Max(curl_timeout_ms - elapsed, 0);
}

/*
 * Let curl act on a socket or its timer, and note how many transfers it
 * still runs: fewer than were started means some finished, to be taken
 * (http_next_done) before the worker sleeps again.
 */
static void
curl_act(curl_socket_t fd, int flags)
{
	/* Failing, curl may not say: then no wait is cut short for it. */
	if (curl_multi_socket_action(multi, fd, flags, &curl_running) != CURLM_OK)
		curl_running = n_in_flight;
}

/* Let curl act on its timer if it has fired (or asked to run at once). */
static void
run_due_timer(void)
{
	if (curl_timeout_ms >= 0 && curl_timer_remaining() == 0)
	{
		curl_timeout_ms = -1;
		curl_act(CURL_SOCKET_TIMEOUT, 0);
	}
}

/*
 * Sleep until the latch is set, a socket is ready, curl's timer fires or
 * timeout_ms passes (-1: no limit), and let curl act on what happened.
 * Returns true when the latch was set.
 */
bool
http_wait(long timeout_ms)
{
	WaitEvent	occurred[MAX_OCCURRED_EVENTS];
	long		curl_ms = curl_timer_remaining();
	long		wait_ms = timeout_ms;
	int			n;
	bool		latch_set;

	if (curl_ms >= 0 && (wait_ms < 0 || curl_ms < wait_ms))
		wait_ms = curl_ms;
	/* Transfers that finished outside a wait (http_send_now) are taken now. */
	if (curl_running < n_in_flight)
		wait_ms = 0;

	n = waitset_wait(wait_ms, occurred, MAX_OCCURRED_EVENTS, &latch_set);
	for (int i = 0; i < n; i++)
	{
		int			flags = 0;

		if (occurred[i].events & WL_SOCKET_READABLE)
			flags |= CURL_CSELECT_IN;
		if (occurred[i].events & WL_SOCKET_WRITEABLE)
			flags |= CURL_CSELECT_OUT;
		curl_act(occurred[i].fd, flags);
	}

	run_due_timer();
	return latch_set;
}

/*
 * Start the requests just added (http_start) now.  libcurl begins a new
 * transfer when its timer fires, at the next wait; the worker may run a
 * transaction before that (the next-due query), and every request would
 * wait for it.  A fast receiver may answer within this call: the next
 * wait then does not sleep (curl_running).
 */
void
http_send_now(void)
{
	run_due_timer();
}

/* The error class of a transfer that libcurl ended with an error. */
static WebhookErrorClass
curl_error_class(CURLcode code)
{
	switch (code)
	{
		case CURLE_OPERATION_TIMEDOUT:
			return ERROR_CLASS_TIMEOUT;
		case CURLE_COULDNT_RESOLVE_HOST:
		case CURLE_COULDNT_RESOLVE_PROXY:
			return ERROR_CLASS_DNS;
		case CURLE_COULDNT_CONNECT:
			return ERROR_CLASS_CONNECT;
		case CURLE_SSL_CONNECT_ERROR:
		case CURLE_PEER_FAILED_VERIFICATION:
		case CURLE_SSL_CERTPROBLEM:
		case CURLE_SSL_CIPHER:
		case CURLE_SSL_CACERT_BADFILE:
		case CURLE_SSL_ISSUER_ERROR:
		case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
		case CURLE_SSL_INVALIDCERTSTATUS:
		case CURLE_SSL_CRL_BADFILE:
		case CURLE_SSL_SHUTDOWN_FAILED:
		case CURLE_SSL_ENGINE_INITFAILED:
			return ERROR_CLASS_TLS;
		case CURLE_GOT_NOTHING:
		case CURLE_RECV_ERROR:
		case CURLE_SEND_ERROR:
		case CURLE_PARTIAL_FILE:
			return ERROR_CLASS_CONNECTION;
		case CURLE_WEIRD_SERVER_REPLY:
		case CURLE_HTTP2:
		case CURLE_HTTP2_STREAM:
		case CURLE_HTTP3:
		case CURLE_UNSUPPORTED_PROTOCOL:
			return ERROR_CLASS_PROTOCOL;
		case CURLE_URL_MALFORMAT:
			return ERROR_CLASS_INVALID_URL;
		case CURLE_FILESIZE_EXCEEDED:
			return ERROR_CLASS_TOO_LARGE;
		default:
			return ERROR_CLASS_INTERNAL;
	}
}

/*
 * TLS: a TLS alert from the receiver after the handshake, as TLS 1.3 sends
 * when it refuses the client certificate (or its absence) once the client
 * has finished its part, reaches libcurl as a read or write error; it is a
 * certificate failure all the same.
 */
static bool
is_tls_alert(CURLcode code, const char *message)
{
	return (code == CURLE_RECV_ERROR || code == CURLE_SEND_ERROR) &&
		strstr(message, "SSL routines") != NULL && strstr(message, " alert ") != NULL;
}

/* Classify a finished transfer into the log's error classes (schedule.c). */
static void
classify_result(Delivery *d, CURLcode code)
{
	const char *message = d->curl_error[0] ? d->curl_error : curl_easy_strerror(code);

	if (code == CURLE_OK || (code == CURLE_WRITE_ERROR && d->response_cut && d->status_code > 0))
	{
		d->error_class = (d->status_code >= 200 && d->status_code < 300) ?
			ERROR_CLASS_NONE : ERROR_CLASS_HTTP;
		d->error = d->error_class != ERROR_CLASS_NONE ? psprintf("HTTP %ld", d->status_code) : NULL;
		return;
	}

	d->status_code = 0;
	d->error = pstrdup(message);
	if (d->headers_too_large)
	{
		d->error_class = ERROR_CLASS_TOO_LARGE;
		d->error = psprintf("response headers exceed %d bytes", RESPONSE_HEADERS_LIMIT);
		return;
	}
	if (d->blocked_class)
	{
		d->error_class = ERROR_CLASS_BLOCKED;
		d->error = psprintf("connection %srefused by the network guard: %s address",
							d->proxy ? "to the endpoint's proxy " : "", d->blocked_class);
		return;
	}
	d->error_class = is_tls_alert(code, message) ? ERROR_CLASS_TLS : curl_error_class(code);
}

/* The error of an attempt, saying which proxy it went through, if any. */
static void
describe_result(Delivery *d, CURLcode code)
{
	classify_result(d, code);
	proxy_describe_error(d);
}

/* The next finished request, with status and error filled in; NULL if none. */
Delivery *
http_next_done(void)
{
	CURLMsg    *msg;
	int			queued;

	while ((msg = curl_multi_info_read(multi, &queued)) != NULL)
	{
		Delivery   *d;
		instr_time	now;
		MemoryContext old;

		if (msg->msg != CURLMSG_DONE)
			continue;
		curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **) &d);
		curl_easy_getinfo(msg->easy_handle, CURLINFO_RESPONSE_CODE, &d->status_code);
		{
			curl_off_t	uploaded = 0;
			long		header_bytes = 0;

			curl_easy_getinfo(msg->easy_handle, CURLINFO_SIZE_UPLOAD_T, &uploaded);
			curl_easy_getinfo(msg->easy_handle, CURLINFO_REQUEST_SIZE, &header_bytes);
			d->bytes_sent = (uint64) uploaded + (uint64) header_bytes;
		}
		INSTR_TIME_SET_CURRENT(now);
		INSTR_TIME_SUBTRACT(now, d->started);
		d->duration_ms = INSTR_TIME_GET_MILLISEC(now);

		old = MemoryContextSwitchTo(d->cxt);
		describe_result(d, msg->data.result);
		MemoryContextSwitchTo(old);

		curl_multi_remove_handle(multi, d->easy);
		give_back_easy(d->easy);
		curl_slist_free_all(d->request_headers);
		d->easy = NULL;
		d->request_headers = NULL;
		n_in_flight--;
		return d;
	}
	return NULL;
}

/* Requests handed to curl and not yet finished. */
int
http_in_flight(void)
{
	return n_in_flight;
}
