/*
 * schedule.h
 *		When the delivery worker does things, and what an attempt's result
 *		means: retry delays, back-off after errors, token buckets, outcomes,
 *		and the error classes written to webhook.delivery_log.
 *
 * Plain C: no PostgreSQL headers and no backend calls, so that
 * test/unit/schedule_test.c can check every rule here without a server.
 * Times are microseconds, as in PostgreSQL's TimestampTz; 0 means "none".
 */
#ifndef WEBHOOK_SCHEDULE_H
#define WEBHOOK_SCHEDULE_H

#include <stdbool.h>
#include <stdint.h>

/*
 * Why an attempt failed, as webhook.delivery_log.error_class names it.  The
 * names and meanings live in one table (schedule.c); SQL reads it through
 * webhook_error_classes().  ERROR_CLASS_NONE: the attempt succeeded.
 */
typedef enum WebhookErrorClass
{
	ERROR_CLASS_NONE = 0,
	ERROR_CLASS_HTTP,
	ERROR_CLASS_TIMEOUT,
	ERROR_CLASS_CONNECT,
	ERROR_CLASS_DNS,
	ERROR_CLASS_TLS,
	ERROR_CLASS_CONNECTION,
	ERROR_CLASS_PROTOCOL,
	ERROR_CLASS_BLOCKED,
	ERROR_CLASS_INVALID_URL,
	ERROR_CLASS_TOO_LARGE,
	ERROR_CLASS_SECRET,
	ERROR_CLASS_INVALID_HEADER,
	ERROR_CLASS_TRANSFORM,
	ERROR_CLASS_INTERNAL,
	ERROR_CLASS_OAUTH,
	ERROR_CLASS_COUNT			/* not a class: the number of entries */
} WebhookErrorClass;

/* One error class: its name in the log, what it means, whether to retry. */
typedef struct WebhookErrorClassInfo
{
	const char *name;
	const char *meaning;
	bool		permanent;		/* retrying cannot help: fail the delivery */
} WebhookErrorClassInfo;

/* Indexed by WebhookErrorClass; entry 0 (success) has no name. */
extern const WebhookErrorClassInfo webhook_error_class_table[ERROR_CLASS_COUNT];

extern const char *webhook_error_class_name(WebhookErrorClass klass);
extern WebhookErrorClass webhook_error_class_from_name(const char *name);

/* Where a delivery stands after an attempt. */
typedef enum DeliveryStatus
{
	DELIVERY_PENDING,
	DELIVERY_SUCCEEDED,
	DELIVERY_FAILED
} DeliveryStatus;

/* What an attempt means for its delivery (schedule_outcome). */
typedef struct ScheduleOutcome
{
	DeliveryStatus status;
	bool		deactivate_endpoint;	/* the receiver answered 410 Gone */
} ScheduleOutcome;

extern ScheduleOutcome schedule_outcome(WebhookErrorClass klass, long status_code,
										int retry_delay_s);
extern int64_t schedule_retry_delay_us(int retry_delay_s, double scale, double jitter,
									   long status_code, int retry_after_s);
extern int	schedule_error_backoff_ms(int errors);
extern long schedule_ms_until(int64_t now, int64_t when);
extern int64_t schedule_earliest(int64_t a, int64_t b);
extern int64_t schedule_next_due(int64_t next_due, int64_t claim_began, int claimed,
								 int64_t now, int64_t recheck_us);

/*
 * After a claim that drained the queue (schedule_claim_delay_ms): while its
 * reads find this many new events or more on the mean, commits arrive
 * faster than the worker's turns, and the next claim waits the busy delay;
 * otherwise the quiet one.  The mean weighs each read 1/WEIGHT.
 */
#define SCHEDULE_BUSY_EVENTS 3.0
#define SCHEDULE_BUSY_DELAY_MS 5
#define SCHEDULE_QUIET_DELAY_MS 1
#define SCHEDULE_EVENTS_MEAN_WEIGHT 8.0

extern double schedule_events_per_read(double mean, int events_read);
extern int	schedule_claim_delay_ms(double events_per_read);

/*
 * The claim statement runs at least this often while the worker claims
 * (queue_claim): the read may take a busy worker's whole room with rows it
 * makes already claimed, and due rows it did not make must still go.
 */
#define SCHEDULE_CLAIM_SWEEP_MS 100

/*
 * Outcomes that free nothing (successes of unordered endpoints) wait up to
 * this long, by default (webhook.record_delay_ms), to be recorded with the
 * ones after them (worker.c, record_gather): one record statement per
 * gathering rather than one per turn.  Only what the queue's tables show
 * of them waits; no request does.
 */
#define SCHEDULE_RECORD_GATHER_MS 20

/*
 * At most this long, so that a success held is never older than its claim's
 * lease (webhook._claim_lease: the endpoint's timeout plus 30 s), which the
 * next-due query would otherwise take for a worker that died.
 */
#define SCHEDULE_RECORD_GATHER_MAX_MS 30000

extern int64_t schedule_record_at(int64_t record_at, int64_t now, int n_held, int batch, int gather_ms,
								  bool may_free);

extern double schedule_rows_per_event(double mean, int events, int rows);
extern int	schedule_read_page(int limit, double rows_per_event, int batch);

/* A rate-limited endpoint's token bucket (schedule_refill). */
typedef struct TokenBucket
{
	double		rate_per_s;		/* 0: no limit */
	double		tokens;
	int64_t		refilled_at;
} TokenBucket;

extern double schedule_bucket_burst(double rate_per_s);
extern bool schedule_refill(TokenBucket *bucket, int64_t now, int64_t *wake_at);

#endif							/* WEBHOOK_SCHEDULE_H */
