/*
 * schedule.c
 *		The delivery worker's rules of time and outcome, in plain C: the
 *		error classes, what an attempt's result means for its delivery, the
 *		delay before a retry, the back-off after a failed transaction, and
 *		the token buckets of rate-limited endpoints.
 *
 * Nothing here calls the backend, so test/unit/schedule_test.c checks it
 * without a server; the worker supplies the clock and the random numbers.
 */
#include "schedule.h"

#include <stddef.h>
#include <string.h>

#define USECS_PER_SEC INT64_C(1000000)

/* Retry-After is honoured up to a day. */
#define MAX_RETRY_AFTER_S (24 * 60 * 60)

/* A rate-limited endpoint's next token is waited for at most this long. */
#define MAX_THROTTLE_WAIT_S 3600

/* The longest sleep the worker computes; it wakes up to look again. */
#define MAX_SLEEP_MS (3600 * 1000L)

/*
 * Every error class an attempt can end with, written once.  The worker
 * records the name; webhook_error_classes() shows the table in SQL.  A
 * permanent class fails the delivery at once: retrying the same request
 * to the same address cannot help.
 */
const WebhookErrorClassInfo webhook_error_class_table[ERROR_CLASS_COUNT] = {
	[ERROR_CLASS_NONE] = {NULL, NULL, false},
	[ERROR_CLASS_HTTP] = {"http", "the receiver answered with a status outside 200-299", false},
	[ERROR_CLASS_TIMEOUT] = {"timeout", "no complete answer within the endpoint's timeout_ms", false},
	[ERROR_CLASS_CONNECT] = {"connect", "the receiver's address refused or did not accept the connection", false},
	[ERROR_CLASS_DNS] = {"dns", "the receiver's host name did not resolve", false},
	[ERROR_CLASS_TLS] = {"tls", "the TLS handshake or the certificate check failed", false},
	[ERROR_CLASS_CONNECTION] = {"connection", "the connection broke while the request or answer was under way", false},
	[ERROR_CLASS_PROTOCOL] = {"protocol", "the receiver's answer was not valid HTTP", false},
	[ERROR_CLASS_BLOCKED] = {"blocked", "the network guard refused the address of the receiver or of the endpoint's proxy", true},
	[ERROR_CLASS_INVALID_URL] = {"invalid_url", "the endpoint's URL cannot be requested", true},
	[ERROR_CLASS_TOO_LARGE] = {"too_large", "the answer's headers or body went beyond the worker's limits", false},
	[ERROR_CLASS_SECRET] = {"secret", "a secret or credential of the endpoint cannot be used", true},
	[ERROR_CLASS_INVALID_HEADER] = {"invalid_header", "a header of the endpoint must not be sent", true},
	[ERROR_CLASS_TRANSFORM] = {"transform", "the endpoint's transform failed", true},
	[ERROR_CLASS_INTERNAL] = {"internal", "the HTTP client failed in a way none of the other classes describes", false},
	[ERROR_CLASS_OAUTH] = {"oauth", "the OAuth2 token request of the endpoint failed, so nothing was sent to the receiver", false},
};

/* The log's name of an error class; NULL for success or a value out of range. */
const char *
webhook_error_class_name(WebhookErrorClass klass)
{
	if ((int) klass <= ERROR_CLASS_NONE || klass >= ERROR_CLASS_COUNT)
		return NULL;
	return webhook_error_class_table[klass].name;
}

/* The class a logged name stands for; ERROR_CLASS_NONE when none does. */
WebhookErrorClass
webhook_error_class_from_name(const char *name)
{
	if (name == NULL)
		return ERROR_CLASS_NONE;
	for (int i = ERROR_CLASS_NONE + 1; i < ERROR_CLASS_COUNT; i++)
		if (strcmp(webhook_error_class_table[i].name, name) == 0)
			return (WebhookErrorClass) i;
	return ERROR_CLASS_NONE;
}

/*
 * What an attempt means for its delivery: success, another try later, or
 * failure for good.  A 410 Gone asks never to be called again, so it also
 * deactivates the endpoint; retry_delay_s < 0 means the endpoint's retry
 * schedule has no attempt left.
 */
ScheduleOutcome
schedule_outcome(WebhookErrorClass klass, long status_code, int retry_delay_s)
{
	ScheduleOutcome outcome = {DELIVERY_SUCCEEDED, false};
	bool		permanent;

	if (klass == ERROR_CLASS_NONE)
		return outcome;
	if (status_code == 410)
	{
		permanent = true;
		outcome.deactivate_endpoint = true;
	}
	else
		permanent = klass > ERROR_CLASS_NONE && klass < ERROR_CLASS_COUNT &&
			webhook_error_class_table[klass].permanent;
	outcome.status = (permanent || retry_delay_s < 0) ? DELIVERY_FAILED : DELIVERY_PENDING;
	return outcome;
}

/*
 * The wait before the next attempt, in microseconds: the endpoint's
 * schedule times webhook.retry_delay_scale, spread by ±20% (jitter in
 * [0, 1)) so that retries of one outage do not arrive together, and no
 * shorter than a Retry-After the receiver sent with 429 or 503 (up to a
 * day; retry_after_s < 0: none).
 */
int64_t
schedule_retry_delay_us(int retry_delay_s, double scale, double jitter,
						long status_code, int retry_after_s)
{
	double		seconds = retry_delay_s * scale;

	seconds *= 0.8 + 0.4 * jitter;
	if ((status_code == 429 || status_code == 503) && retry_after_s >= 0)
	{
		int			honoured = retry_after_s < MAX_RETRY_AFTER_S ? retry_after_s : MAX_RETRY_AFTER_S;

		if ((double) honoured > seconds)
			seconds = (double) honoured;
	}
	return (int64_t) (seconds * USECS_PER_SEC);
}

/*
 * After the errors-th failed transaction in a row (counting from 0), wait
 * longer each time, up to 30 s: a database that refuses the worker's
 * statements is not hammered, and one that recovers is soon used again.
 */
int
schedule_error_backoff_ms(int errors)
{
	int			shift = errors < 5 ? (errors > 0 ? errors : 0) : 5;
	int			ms = 1000 << shift;

	return ms < 30000 ? ms : 30000;
}

/*
 * Milliseconds from now until when, rounded up and clamped to [0, 1 hour],
 * for a wait: never negative, and never so long that a lost wake-up keeps
 * the worker asleep for good.
 */
long
schedule_ms_until(int64_t now, int64_t when)
{
	int64_t		ms;

	if (when <= now)
		return 0;
	ms = (when - now) / 1000 + 1;
	return ms < MAX_SLEEP_MS ? (long) ms : MAX_SLEEP_MS;
}

/* The earlier of two times, where 0 means "none". */
int64_t
schedule_earliest(int64_t a, int64_t b)
{
	if (a == 0 || (b != 0 && b < a))
		return b;
	return a;
}

/*
 * When to claim next, after a claim that drained the queue, given the
 * earliest due time the next-due query found (0: none).  Something the
 * claim could have taken (due when its transaction began) but did not is a
 * row locked elsewhere: look again after recheck_us, not in a busy loop.
 * Something that came due after the claim began (a scheduled event's time,
 * a retry's) is claimed at once.
 */
int64_t
schedule_next_due(int64_t next_due, int64_t claim_began, int claimed, int64_t now, int64_t recheck_us)
{
	if (claimed == 0 && next_due != 0 && next_due <= claim_began)
		return now + recheck_us;
	return next_due;
}

/*
 * The worker's running mean of new events per drained claim's read, after
 * one more read: an exponentially weighted mean, so that one burst (the
 * events gathered behind a slow turn) hardly moves it, while a steady
 * stream of commits does within a few turns.  A read counts as at most
 * twice the busy level: the last page of a bulk send says nothing about
 * the commits to come.
 */
double
schedule_events_per_read(double mean, int events_read)
{
	double		counted = events_read < 2 * SCHEDULE_BUSY_EVENTS ? events_read : 2 * SCHEDULE_BUSY_EVENTS;

	return mean + (counted - mean) / SCHEDULE_EVENTS_MEAN_WEIGHT;
}

/*
 * How long to let commits gather after a claim that drained the queue,
 * before claiming again, as commit_delay lets commits gather for one WAL
 * flush.  A turn (read, claim, record) costs about the same whether it
 * carries one event or twenty.  While reads find several events on the
 * mean, commits are arriving faster than the worker turns: wait a little
 * longer, so that each turn carries more of them.  Otherwise wait only
 * the quiet delay, so that a quiet queue keeps its latency.  The wait is
 * for commits: the worker cuts it to the quiet delay when outcomes it
 * records may free a delivery (an ordered key's next, a retry).
 */
int
schedule_claim_delay_ms(double events_per_read)
{
	return events_per_read >= SCHEDULE_BUSY_EVENTS ? SCHEDULE_BUSY_DELAY_MS : SCHEDULE_QUIET_DELAY_MS;
}

/*
 * When to record the outcomes a worker holds, n_held of them: now (0)
 * when one may free a delivery (an ordered key's next, a retry), they fill
 * a batch, or nothing gathers (gather_ms 0); otherwise when the gathering
 * that began with the first of them ends (record_at, 0 before it began),
 * gather_ms later.  Times are in microseconds.  A turn's few outcomes cost
 * a record statement and a transaction as a batch of them does.
 */
int64_t
schedule_record_at(int64_t record_at, int64_t now, int n_held, int batch, int gather_ms, bool may_free)
{
	int64_t		gather_us = (int64_t) gather_ms * INT64_C(1000);

	if (may_free || n_held >= batch || gather_us <= 0)
		return 0;
	if (record_at == 0)
		record_at = now + gather_us;
	/* A clock set back ends the gathering rather than stretching it. */
	if (now >= record_at || record_at - now > gather_us)
		return 0;
	return record_at;
}

/*
 * A bucket holds at most a second's worth of tokens, and at least one, so
 * that an endpoint limited below one request a second may still send.
 */
double
schedule_bucket_burst(double rate_per_s)
{
	return rate_per_s > 1.0 ? rate_per_s : 1.0;
}

/*
 * Refill a rate-limited endpoint's bucket up to now.  Returns true when it
 * holds no whole token, with *wake_at set to when it will (at most an hour
 * away, whatever the rate, and a millisecond late rather than early).
 */
bool
schedule_refill(TokenBucket *bucket, int64_t now, int64_t *wake_at)
{
	double		burst = schedule_bucket_burst(bucket->rate_per_s);
	double		wait_s;

	*wake_at = 0;
	if (bucket->rate_per_s <= 0)
		return false;
	bucket->tokens += (double) (now - bucket->refilled_at) / USECS_PER_SEC * bucket->rate_per_s;
	if (bucket->tokens > burst)
		bucket->tokens = burst;
	bucket->refilled_at = now;
	if (bucket->tokens >= 1.0)
		return false;
	wait_s = (1.0 - bucket->tokens) / bucket->rate_per_s;
	if (wait_s > MAX_THROTTLE_WAIT_S)
		wait_s = MAX_THROTTLE_WAIT_S;
	*wake_at = now + (int64_t) (wait_s * USECS_PER_SEC) + 1000;
	return true;
}

/*
 * The running mean of delivery rows an event made, after one more read of
 * events events that made rows rows (a read of none says nothing): it
 * follows a change of subscriptions within a few reads.
 */
double
schedule_rows_per_event(double mean, int events, int rows)
{
	if (events <= 0)
		return mean;
	return mean + ((double) rows / events - mean) / 4.0;
}

/*
 * How many new events one worker reads in a turn: about as many as make
 * the rows it has room to send (limit), at rows_per_event rows each, so
 * that at full rate the read makes its rows already claimed instead of
 * leaving rows to the claim statement to update one by one.  Rounded down
 * (a row left over would hold its endpoint's newer rows back from the next
 * read, for the claim statement), but at least one event, and at most
 * batch.  Reading less loses nothing: the window's cursor keeps the rest
 * for the next turn.
 */
int
schedule_read_page(int limit, double rows_per_event, int batch)
{
	double		per_event = rows_per_event > 1.0 ? rows_per_event : 1.0;

	/* The running mean only nears a whole number: allow for that. */
	int			page = (int) (limit / per_event + 0.01);

	if (page > batch)
		return batch;
	return page < 1 ? 1 : page;
}
