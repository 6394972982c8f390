/*
 * http.c
 *		The delivery worker's requests: each is prepared here (headers,
 *		signature, options), moved by the worker's network thread, which owns
 *		the libcurl multi handle (http_io.c), and classified here when it
 *		comes back.  The worker sleeps in one WaitEventSet with its latch,
 *		postmaster death and the thread's signal that requests finished, so
 *		it never waits where it cannot see an interrupt.
 */
#include "postgres.h"

#include <sys/resource.h>

#include <curl/curl.h>

#include "miscadmin.h"
#include "storage/latch.h"
#include "utils/memutils.h"
#include "utils/wait_event.h"

#include "http.h"
#include "http_io.h"
#include "netguard.h"
#include "oauth.h"
#include "proxy.h"
#include "request_format.h"
#include "schedule.h"
#include "url_policy.h"
#include "webhook.h"

static long max_connections = 1000; /* sockets curl may open at once */
static int	n_in_flight = 0;	/* started, not yet taken back */
static WaitEventSet *wait_set = NULL;

/*
 * Easy handles of finished requests, reset and kept for the next ones: a
 * handle made and freed per request was a tenth of the worker's time.
 */
#define EASY_POOL_MAX 256
static CURL *easy_pool[EASY_POOL_MAX];
static int	n_pooled = 0;

static bool policy_changed = false; /* pooled connections predate the policy */
static NetGuardPolicy policy;
static bool policy_valid = false;

/* An easy handle for a new request: a pooled one, or a new one. */
static CURL *
take_easy(void)
{
	return n_pooled > 0 ? easy_pool[--n_pooled] : curl_easy_init();
}

/*
 * Give back the easy handle of a finished request, which the network
 * thread removed from the multi handle: reset to the default options (its
 * connection stays in the multi handle's pool), or freed when the pool is
 * full.
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
 * No connection opened so far is used again: the network thread replaces
 * the multi handle, which owns them, and no easy handle that served under
 * the old one is kept.  Only while nothing is in flight.
 */
static void
fresh_connections(void)
{
	while (n_pooled > 0)
		curl_easy_cleanup(easy_pool[--n_pooled]);
	http_io_fresh_connections();
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
		policy_changed = wait_set != NULL;
	/* A new webhook.proxy: connections to the old one are not reused either. */
	if (proxy_setting_changed())
		policy_changed = wait_set != NULL;
	policy = fresh;
	policy_valid = valid;
	http_io_set_policy(&policy, policy_valid);
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

/*
 * The first policy, the network thread and the worker's wait: its latch,
 * postmaster death, and the thread's signal that requests finished.
 */
void
http_init(void)
{
	size_connection_pool();
	if (curl_global_init(CURL_GLOBAL_ALL) != CURLE_OK)
		ereport(ERROR,
				(errcode(ERRCODE_INTERNAL_ERROR),
				 errmsg("could not initialize libcurl")));
	http_reload_policy();
	http_io_start(max_connections);
	wait_set = CreateWaitEventSet(TopMemoryContext, 3);
	AddWaitEventToSet(wait_set, WL_LATCH_SET, PGINVALID_SOCKET, MyLatch, NULL);
	AddWaitEventToSet(wait_set, WL_EXIT_ON_PM_DEATH, PGINVALID_SOCKET, NULL, NULL);
	AddWaitEventToSet(wait_set, WL_SOCKET_READABLE, http_io_done_fd(), NULL, NULL);
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
	/* A transfer that times out during a lookup does not wait for it. */
#if LIBCURL_VERSION_NUM >= 0x075700
	curl_easy_setopt(e, CURLOPT_QUICK_EXIT, 1L);
#endif
	curl_easy_setopt(e, CURLOPT_ERRORBUFFER, d->curl_error);
	/* The network thread's callbacks, which fill fields of d. */
	http_io_configure(d);
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

/*
 * Build a delivery's request and queue it for the network thread, which
 * starts it when woken (http_send_now, or the worker's next wait).  From
 * then on only the thread touches d, until http_next_done returns it.
 */
void
http_start(Delivery *d)
{
	MemoryContext old = MemoryContextSwitchTo(d->cxt);

	/* Connections opened under an older policy must not be reused. */
	if (policy_changed && n_in_flight == 0)
	{
		fresh_connections();
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
	MemoryContextSwitchTo(old);

	http_io_submit(d);
	n_in_flight++;
}

/*
 * Sleep until the latch is set, requests finish or timeout_ms passes (-1:
 * no limit); not at all while finished requests wait to be taken.  The
 * network thread is woken first for requests queued since the last wake.
 * Returns true when the latch was set.
 */
bool
http_wait(long timeout_ms)
{
	WaitEvent	occurred[3];
	int			n;
	bool		latch_set = false;

	http_io_kick();
	if (http_io_has_done())
		timeout_ms = 0;
	n = WaitEventSetWait(wait_set, timeout_ms, occurred, lengthof(occurred), PG_WAIT_EXTENSION);
	for (int i = 0; i < n; i++)
	{
		if (occurred[i].events & WL_LATCH_SET)
		{
			ResetLatch(MyLatch);
			latch_set = true;
		}
		else if (occurred[i].events & WL_SOCKET_READABLE)
			http_io_clear_done_fd();
	}
	return latch_set;
}

/*
 * Start the requests just queued (http_start) now, rather than at the next
 * wait: the worker may run a transaction before that (the next-due query),
 * and every request would wait for it.
 */
void
http_send_now(void)
{
	http_io_kick();
}

/*
 * Move no request any more: the worker is going, and records what finished
 * (http_next_done) knowing that nothing else was answered since.  Requests
 * still out are the next worker's to send.
 */
void
http_stop(void)
{
	http_io_stop();
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
		d->error = psprintf("response headers exceed %d bytes", HTTP_RESPONSE_HEADERS_LIMIT);
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

/*
 * Say when the network thread could not watch sockets since the last time:
 * their requests wait for their timeout.
 */
static void
warn_of_unwatched_sockets(void)
{
	static uint32 warned = 0;
	uint32		failures = http_io_watch_failures();

	if (failures == warned)
		return;
	ereport(WARNING,
			(errcode(ERRCODE_INSUFFICIENT_RESOURCES),
			 errmsg("the delivery worker could not watch %u sockets", failures - warned),
			 errdetail("Their requests end at their timeout."),
			 errhint("Raise the kernel's fs.epoll.max_user_watches.")));
	warned = failures;
}

/*
 * The next finished request, with status and error filled in; NULL if
 * none.  Its easy handle goes back to the pool.
 */
Delivery *
http_next_done(void)
{
	Delivery   *d = http_io_take_done();
	MemoryContext old;

	if (d == NULL)
		return NULL;
	warn_of_unwatched_sockets();
	old = MemoryContextSwitchTo(d->cxt);
	describe_result(d, d->io_result);
	MemoryContextSwitchTo(old);

	give_back_easy(d->easy);
	curl_slist_free_all(d->request_headers);
	d->easy = NULL;
	d->request_headers = NULL;
	n_in_flight--;
	return d;
}

/* Requests handed to curl and not yet finished. */
int
http_in_flight(void)
{
	return n_in_flight;
}
