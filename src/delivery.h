/*
 * delivery.h
 *		One delivery attempt as the worker holds it in memory, from claim to
 *		recorded outcome.  The parts that fill it have their own headers:
 *		queue.h (claim, record), transform.h, http.h (request, result).
 */
#ifndef WEBHOOK_DELIVERY_H
#define WEBHOOK_DELIVERY_H

#include "postgres.h"

#include <curl/curl.h>

#include "lib/ilist.h"
#include "portability/instr_time.h"
#include "utils/timestamp.h"

#include "request_format.h"
#include "schedule.h"
#include "signature.h"

/*
 * The most attempts a delivery records, as webhook.deliveries.attempts'
 * CHECK constraint says: far beyond any retry schedule, and short of
 * overflowing the count.
 */
#define WEBHOOK_MAX_ATTEMPTS 1000000

typedef struct Delivery
{
	dlist_node	node;
	MemoryContext cxt;			/* holds this struct and its strings */

	/* from the claim */
	int64		id;
	int16		gen;			/* its generation: (id, gen) is the row's key */
	bool		first_attempt;	/* a webhook.first_attempts row (made by the
								 * read): the record writes its delivery_state
								 * row */
	int32		attempt;		/* 1 for the first attempt */
	char	   *event_id;
	char	   *event_type;
	char	   *body;
	int			body_len;
	int64		endpoint_id;
	char	   *url;
	WebhookKey	key;
	const char *key_problem;	/* a secret or credential unusable: why, to
								 * fail without sending */
	WebhookKey	previous_key;	/* a rotated-out secret still in its grace
								 * period */
	bool		has_previous_key;
	char	   *auth_username;	/* HTTP Basic authentication, or NULL */
	char	   *auth_password;
	char	   *signature_header;
	int			n_headers;
	char	  **headers;		/* "Name: value" lines from endpoints.headers */
	int			timeout_ms;
	int			retry_delay_s;	/* wait after this attempt if it fails, or -1:
								 * no retry left */
	int			max_in_flight;	/* the endpoint's cap on requests in flight */
	bool		ordered;		/* the endpoint delivers in order, per key */
	double		rate_limit_per_s;	/* 0: no limit */
	const char *header_problem; /* a header that must not be sent: why */

	/* TLS: the endpoint's PEM texts, NULL when unset (queue.c, http.c) */
	char	   *tls_ca_cert;	/* verify the receiver against this, not the
								 * system store */
	char	   *tls_client_cert;	/* mutual TLS, with tls_client_key */
	char	   *tls_client_key; /* in clear: wiped once libcurl has it */

	/* the endpoint's transform, run after the claim (transform.c) */
	Oid			transform;		/* the endpoint's function, as claimed */
	TransactionId endpoint_xmin;	/* the version of the endpoint row claimed */
	TimestampTz created_at;		/* the event's, an argument of the transform */
	struct varlena *payload;	/* likewise; NULL once the transform ran */
	char	   *transform_error;	/* why the transform failed */

	/*
	 * the proxy (proxy.c), chosen at the claim from the endpoint's proxy
	 * column and webhook.proxy
	 */
	char	   *proxy;			/* URL, credentials included; NULL: direct */
	bool		proxy_trusted;	/* webhook.proxy, set by a superuser: the
								 * guard lets the connection to it through */
	char	   *proxy_problem;	/* the receiver's URL refused by the guard:
								 * why, to fail without sending */

	/*
	 * The request's format (request_format.c), decoded by name from the
	 * claim; the signature encoding is in key and previous_key.
	 */
	WebhookRequestFormat format;
	char	   *event_type_header;	/* the header naming the event type */
	char	   *cloudevents_source; /* ce-source; NULL for standard */
	char	   *event_data;		/* the event's data as JSON; NULL for standard */
	char	   *event_time;		/* ce-time, RFC 3339; NULL for standard */

	/*
	 * OAuth2 client credentials (oauth.c), decoded by name from the claim;
	 * oauth_token_url NULL: none.  A token request is a Delivery too, with
	 * oauth_token_request set, sent through the same multi handle.
	 */
	char	   *oauth_token_url;
	char	   *oauth_client_id;
	char	   *oauth_client_secret;	/* in clear: wiped when done */
	char	   *oauth_scope;
	char	   *oauth_bearer;	/* the access token this request sends */
	bool		oauth_retried;	/* sent once more after a 401 */
	char	   *oauth_tls_client_key;	/* a copy of tls_client_key for the
										 * request sent once more: wiped at
										 * the end */
	bool		oauth_token_request;	/* not a delivery: a token request */

	/* the request */
	CURL	   *easy;
	struct Delivery *io_next;	/* in the network thread's queues (http_io.c) */
	CURLcode	io_result;		/* how libcurl ended the transfer */
	struct curl_slist *request_headers;
	TimestampTz attempted_at;
	instr_time	started;
	char	   *response;		/* first webhook.response_body_limit_kb */
	size_t		response_len;
	size_t		response_cap;
	size_t		response_seen;
	bool		response_cut;	/* we stopped reading a huge body */
	size_t		header_bytes;
	bool		headers_too_large;
	int			retry_after_s;	/* from a Retry-After header, or -1 */
	const char *blocked_class;	/* address class the network guard refused */
	char		curl_error[CURL_ERROR_SIZE];

	/* the outcome */
	long		status_code;
	double		duration_ms;
	uint64		bytes_sent;
	DeliveryStatus status;
	TimestampTz next_attempt_at;
	WebhookErrorClass error_class;	/* ERROR_CLASS_NONE: it succeeded */
	char	   *error;
	bool		deactivate_endpoint;
} Delivery;

#endif							/* WEBHOOK_DELIVERY_H */
