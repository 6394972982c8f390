/*
 * worker.c
 *		The delivery worker of one database: claim due deliveries, send them
 *		all at once through libcurl, record what happened, sleep until the
 *		next thing to do.
 *
 * Each turn of the loop claims in one short transaction and records in
 * another; requests are in flight only between transactions.  A worker that
 * dies leaves claimed deliveries pending, and its successor takes them over
 * at start, so delivery is at least once.  An outcome that cannot be
 * recorded stays in memory and is tried again later; its delivery is never
 * claimed meanwhile, and other deliveries go on.
 */
#include "postgres.h"

#include "access/xact.h"
#include "common/pg_prng.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "postmaster/interrupt.h"
#include "storage/ipc.h"
#include "storage/proc.h"
#include "tcop/tcopprot.h"
#include "commands/dbcommands.h"
#include "utils/guc.h"
#include "utils/hsearch.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"

#include "delivery.h"
#include "webhook.h"

/* After draining the queue, wait this long before claiming again. */
#define CLAIM_COALESCE_MS 1

/* Retry-After is honoured up to a day. */
#define MAX_RETRY_AFTER_S (24 * 60 * 60)

/* A rate-limited endpoint's next token is waited for at most this long. */
#define MAX_THROTTLE_WAIT_S 3600

/*
 * Something is due but the claim could take none of it (a row locked by
 * another session): look again after this long rather than at once.
 */
#define RECHECK_MS 1000

/* While this many outcomes wait to be recorded, claim nothing more. */
#define MAX_UNRECORDED 1000

/* Endpoints being sent to: in-flight counts and token buckets. */
static HTAB *endpoint_load = NULL;
static WebhookDbStats *my_stats = NULL;

/*
 * Attach to the slot the launcher reserved for this database, before
 * connecting: a second worker for the same database leaves at once, and so
 * does one whose database is held aside for some DDL.
 */
static void
worker_attach(Oid dboid)
{
	if (!webhook_worker_attach(dboid, &my_stats))
	{
		ereport(DEBUG1,
				(errmsg("%s exiting: another worker delivers for this database, or it is held aside",
						MyBgworkerEntry->bgw_name)));
		proc_exit(0);
	}
}

/* Tell the launcher whether to start us again, and go. */
static void
worker_leave(const char *why, bool no_extension)
{
	if (no_extension)
		webhook_worker_no_extension();
	ereport(DEBUG1, (errmsg("%s exiting: %s", MyBgworkerEntry->bgw_name, why)));
	proc_exit(0);
}

/* Has DROP DATABASE or other DDL asked this worker to step aside? */
static bool
stop_requested(void)
{
	return webhook_worker_asked_to_leave();
}

/*
 * A cancel request (pg_cancel_backend) is meant to stop what a process is
 * doing, not the process.  Inside one of the worker's transactions it
 * aborts that transaction, which the worker survives; between transactions
 * there is nothing to cancel, so drop it rather than die of it.
 */
static void
drop_idle_cancel(void)
{
	if (QueryCancelPending && !IsTransactionOrTransactionBlock())
	{
		QueryCancelPending = false;
		ereport(LOG,
				(errcode(ERRCODE_QUERY_CANCELED),
				 errmsg("webhook delivery worker ignored a cancel request between transactions")));
	}
}

/* The delay before the next attempt: schedule, scale, ±20% jitter, Retry-After. */
static TimestampTz
next_attempt_time(Delivery *d, TimestampTz now)
{
	double		seconds = d->retry_delay_s * webhook_retry_delay_scale;

	seconds *= 0.8 + 0.4 * pg_prng_double(&pg_global_prng_state);
	if ((d->status_code == 429 || d->status_code == 503) && d->retry_after_s >= 0)
		seconds = Max(seconds, (double) Min(d->retry_after_s, MAX_RETRY_AFTER_S));
	return now + (TimestampTz) (seconds * USECS_PER_SEC);
}

/* Decide what an attempt means for the delivery. */
static void
decide_outcome(Delivery *d, TimestampTz now)
{
	bool		permanent = false;

	if (d->error_class == NULL)
	{
		d->status = DELIVERY_SUCCEEDED;
		return;
	}
	if (d->status_code == 410)
	{
		permanent = true;
		d->deactivate_endpoint = true;
	}
	else if (strcmp(d->error_class, "blocked") == 0 ||
			 strcmp(d->error_class, "invalid_url") == 0 ||
			 strcmp(d->error_class, "secret") == 0 ||
			 strcmp(d->error_class, "invalid_header") == 0 ||
			 strcmp(d->error_class, "transform") == 0)
		permanent = true;

	if (permanent || d->retry_delay_s < 0)
		d->status = DELIVERY_FAILED;
	else
	{
		d->status = DELIVERY_PENDING;
		d->next_attempt_at = next_attempt_time(d, now);
	}
}

/* The worker's record of an endpoint, created on first use. */
static EndpointLoad *
endpoint_load_get(Delivery *d)
{
	bool		found;
	EndpointLoad *load = hash_search(endpoint_load, &d->endpoint_id, HASH_ENTER, &found);

	if (!found)
	{
		load->in_flight = 0;
		load->tokens = Max(d->rate_limit_per_s, 1.0);
		load->refilled_at = GetCurrentTimestamp();
	}
	load->max_in_flight = d->max_in_flight;
	load->rate_limit_per_s = d->rate_limit_per_s;
	return load;
}

/*
 * Count a request against its endpoint's cap (delta +1 at start, -1 at the
 * end); starting one also takes a token from a rate-limited endpoint.
 * Entries of idle endpoints are dropped unless they carry a token bucket.
 */
static void
endpoint_load_add(Delivery *d, int delta)
{
	EndpointLoad *load = endpoint_load_get(d);

	load->in_flight += delta;
	if (delta > 0 && load->rate_limit_per_s > 0)
		load->tokens -= 1.0;
	if (load->in_flight <= 0 && load->rate_limit_per_s <= 0)
		hash_search(endpoint_load, &d->endpoint_id, HASH_REMOVE, NULL);
}

/*
 * Refill token buckets, and list the endpoints being sent to for the claim
 * query; also those that can take nothing now, which the next-due query must
 * skip.  *throttle_wake is when the first empty bucket holds a token again,
 * at most MAX_THROTTLE_WAIT_S away whatever the rate.  An idle endpoint with
 * a full bucket is forgotten: a new entry would start the same.
 */
static int
endpoint_load_snapshot(EndpointLoad ***busy, int64 **saturated, int *n_saturated,
					   TimestampTz *throttle_wake)
{
	long		n = hash_get_num_entries(endpoint_load);
	HASH_SEQ_STATUS status;
	EndpointLoad *load;
	TimestampTz now = GetCurrentTimestamp();
	int			i = 0;

	*busy = palloc(sizeof(EndpointLoad *) * Max(n, 1));
	*saturated = palloc(sizeof(int64) * Max(n, 1));
	*n_saturated = 0;
	*throttle_wake = 0;
	hash_seq_init(&status, endpoint_load);
	while ((load = hash_seq_search(&status)) != NULL)
	{
		bool		full = load->in_flight >= load->max_in_flight;

		if (load->rate_limit_per_s > 0)
		{
			double		burst = Max(load->rate_limit_per_s, 1.0);

			load->tokens = Min(burst, load->tokens +
							   (double) (now - load->refilled_at) / USECS_PER_SEC * load->rate_limit_per_s);
			load->refilled_at = now;
			if (load->in_flight <= 0 && load->tokens >= burst)
			{
				hash_search(endpoint_load, &load->endpoint_id, HASH_REMOVE, NULL);
				continue;
			}
			if (load->tokens < 1.0)
			{
				double		wait_s = Min((1.0 - load->tokens) / load->rate_limit_per_s,
										 (double) MAX_THROTTLE_WAIT_S);
				TimestampTz at = now + (TimestampTz) (wait_s * USECS_PER_SEC) + 1000;

				full = true;
				if (*throttle_wake == 0 || at < *throttle_wake)
					*throttle_wake = at;
			}
		}
		(*busy)[i++] = load;
		if (full)
			(*saturated)[(*n_saturated)++] = load->endpoint_id;
	}
	return i;
}

/*
 * Take the current rate limits of the endpoints that could take nothing
 * (rates[i] for ids[i], 0 for none), and forget idle ones that no longer
 * have a limit: deleted, deactivated or unlimited since.
 */
static void
endpoint_load_refresh(int64 *ids, double *rates, int n)
{
	for (int i = 0; i < n; i++)
	{
		EndpointLoad *load = hash_search(endpoint_load, &ids[i], HASH_FIND, NULL);

		if (load == NULL)
			continue;
		load->rate_limit_per_s = rates[i];
		if (load->in_flight <= 0 && load->rate_limit_per_s <= 0)
			hash_search(endpoint_load, &ids[i], HASH_REMOVE, NULL);
	}
}

/* Start every claimed delivery, or settle at once those that cannot be sent. */
static void
start_claimed(dlist_head *claimed, Delivery ***unsent, int *n_unsent)
{
	dlist_mutable_iter iter;

	transform_apply(claimed);
	dlist_foreach_modify(iter, claimed)
	{
		Delivery   *d = dlist_container(Delivery, node, iter.cur);

		dlist_delete(&d->node);
		if (d->key_problem || d->header_problem || d->transform_error)
		{
			MemoryContext old = MemoryContextSwitchTo(d->cxt);

			d->attempted_at = GetCurrentTimestamp();
			d->error_class = d->key_problem ? "secret" :
				d->header_problem ? "invalid_header" : "transform";
			d->error = pstrdup(d->key_problem ? d->key_problem :
							   d->header_problem ? d->header_problem : d->transform_error);
			MemoryContextSwitchTo(old);
			(*unsent)[(*n_unsent)++] = d;
			continue;
		}
		endpoint_load_add(d, 1);
		http_start(d);
	}
}

/* Decide each finished delivery's outcome once, and count it. */
static bool
settle_finished(Delivery **finished, int n)
{
	TimestampTz now = GetCurrentTimestamp();
	bool		had_failures = false;

	for (int i = 0; i < n; i++)
	{
		Delivery   *d = finished[i];

		decide_outcome(d, now);
		had_failures |= d->error_class != NULL;
		if (my_stats)
		{
			my_stats->attempts++;
			my_stats->retries += d->attempt > 1;
			my_stats->succeeded += d->error_class == NULL;
			my_stats->failed += d->error_class != NULL;
			my_stats->bytes_sent += d->bytes_sent;
		}
	}
	return had_failures;
}

/*
 * Run one of the worker's transactions; on error, report it, roll back and
 * return false instead of dying, so that outcomes already in memory are not
 * lost and the worker retries on its own.
 */
static bool
run_guarded(void (*fn) (void *), void *arg)
{
	MemoryContext cxt = CurrentMemoryContext;
	volatile bool ok = true;

	PG_TRY();
	{
		fn(arg);
	}
	PG_CATCH();
	{
		MemoryContextSwitchTo(cxt);
		EmitErrorReport();
		FlushErrorState();
		AbortCurrentTransaction();
		pgstat_report_activity(STATE_IDLE, NULL);
		ok = false;
	}
	PG_END_TRY();
	return ok;
}

typedef struct RecordBatch
{
	Delivery  **done;
	int			n;
	bool	   *recorded;
} RecordBatch;

static void
record_batch(void *arg)
{
	RecordBatch *batch = (RecordBatch *) arg;

	(void) queue_record(batch->done, batch->n, batch->recorded);
}

/*
 * Record outcomes batch by batch and free what was recorded.  Returns how
 * many are left unrecorded (they move to the front, in order).
 */
static int
record_finished(Delivery **finished, int n)
{
	bool	   *recorded = palloc0(sizeof(bool) * Max(n, 1));
	int			kept = 0;

	for (int start = 0; start < n; start += webhook_batch_size)
	{
		RecordBatch batch = {finished + start, Min(webhook_batch_size, n - start), recorded + start};

		if (!run_guarded(record_batch, &batch))
			memset(batch.recorded, 0, sizeof(bool) * batch.n);
	}
	for (int i = 0; i < n; i++)
	{
		if (recorded[i])
			MemoryContextDelete(finished[i]->cxt);
		else
			finished[kept++] = finished[i];
	}
	pfree(recorded);
	return kept;
}

static void
housekeeping(void *arg)
{
	queue_housekeeping(*(bool *) arg);
}

typedef struct ClaimArgs
{
	int			room;
	dlist_head *batch;
	int			n_busy;
	EndpointLoad **busy;
	int			n_held;
	Delivery  **held;
	int			claimed;
} ClaimArgs;

static void
claim_batch(void *arg)
{
	ClaimArgs  *c = (ClaimArgs *) arg;

	c->claimed = queue_claim(c->room, c->batch, c->n_busy, c->busy, c->n_held, c->held);
}

typedef struct NextDueArgs
{
	int			n_saturated;
	int64	   *saturated;
	double	   *rates;
	TimestampTz next_due;
} NextDueArgs;

static void
find_next_due(void *arg)
{
	NextDueArgs *a = (NextDueArgs *) arg;

	a->next_due = queue_next_due(a->n_saturated, a->saturated, a->rates);
}

/* After a failed transaction, wait longer each time, up to 30 s. */
static TimestampTz
backoff_after_error(int *errors)
{
	int			ms = Min(1000 << Min(*errors, 5), 30000);

	(*errors)++;
	return TimestampTzPlusMilliseconds(GetCurrentTimestamp(), ms);
}

/* Milliseconds from now until a time, clamped to [0, 1 hour]. */
static long
ms_until(TimestampTz when)
{
	TimestampTz now = GetCurrentTimestamp();

	if (when <= now)
		return 0;
	return (long) Min((when - now) / 1000 + 1, 3600 * 1000L);
}

/* Background worker entry point.  main_arg is the database OID. */
void
webhook_worker_main(Datum main_arg)
{
	Oid			dboid = DatumGetObjectId(main_arg);
	MemoryContext loop_cxt;
	HASHCTL		hctl;
	bool		need_claim = true;
	TimestampTz next_due = 0;
	TimestampTz throttle_wake = 0;
	TimestampTz retry_at = 0;	/* after a failed transaction */
	TimestampTz claim_after = 0;	/* gather commits before claiming again */
	TimestampTz record_at = 0;	/* after outcomes could not be recorded */
	int			errors = 0;
	int			record_errors = 0;
	Delivery  **finished;		/* finished requests not yet recorded */
	int			n_finished = 0;
	int			finished_cap;

	pqsignal(SIGHUP, SignalHandlerForConfigReload);
	pqsignal(SIGTERM, die);
	BackgroundWorkerUnblockSignals();
	/* A cancel during start-up would end the worker: hold it until the loop. */
	HOLD_CANCEL_INTERRUPTS();
	worker_attach(dboid);
	BackgroundWorkerInitializeConnectionByOid(dboid, InvalidOid, 0);
	pgstat_report_appname("webhook delivery worker");
	/* Nothing the worker runs may resolve to an object a user planted. */
	SetConfigOption("search_path", "pg_catalog, pg_temp", PGC_SUSET, PGC_S_OVERRIDE);

	if (!queue_extension_present())
		worker_leave("the extension is not installed in this database", true);

	ereport(LOG, (errmsg("webhook delivery worker started")));

	memset(&hctl, 0, sizeof(hctl));
	hctl.keysize = sizeof(int64);
	hctl.entrysize = sizeof(EndpointLoad);
	endpoint_load = hash_create("webhook endpoint load", 256, &hctl, HASH_ELEM | HASH_BLOBS);

	http_init();
	queue_release_claims();

	/*
	 * Room for every request in flight plus a claim batch, unrecorded, on top
	 * of the outcomes held back.
	 */
	finished_cap = 2 * 10000 + MAX_UNRECORDED + 1;
	finished = MemoryContextAlloc(TopMemoryContext, sizeof(Delivery *) * finished_cap);
	loop_cxt = AllocSetContextCreate(TopMemoryContext, "webhook worker loop", ALLOCSET_DEFAULT_SIZES);
	RESUME_CANCEL_INTERRUPTS();

	for (;;)
	{
		Delivery   *d;
		long		timeout_ms = -1;
		bool		had_failures;
		bool		can_claim;
		int			n_new;

		MemoryContextReset(loop_cxt);
		MemoryContextSwitchTo(loop_cxt);
		drop_idle_cancel();
		CHECK_FOR_INTERRUPTS();

		if (ConfigReloadPending)
		{
			ConfigReloadPending = false;
			ProcessConfigFile(PGC_SIGHUP);
			http_reload_policy();
		}
		if (stop_requested())
			worker_leave("DDL on its database asked it to step aside", false);

		if (next_due != 0 && GetCurrentTimestamp() >= next_due)
		{
			need_claim = true;
			next_due = 0;
		}
		if (throttle_wake != 0 && GetCurrentTimestamp() >= throttle_wake)
		{
			need_claim = true;
			throttle_wake = 0;
		}
		if (retry_at != 0 && GetCurrentTimestamp() >= retry_at)
		{
			retry_at = 0;
			need_claim = true;
		}

		/*
		 * Claim while there is room; a short batch means the queue is
		 * drained.  Outcomes not recorded yet stay in memory, their
		 * deliveries excluded from claims so that nothing is sent twice;
		 * while too many are waiting, claim nothing more.
		 */
		can_claim = retry_at == 0 && n_finished < MAX_UNRECORDED &&
			http_in_flight() < webhook_max_in_flight;
		if (need_claim && can_claim && GetCurrentTimestamp() >= claim_after)
		{
			dlist_head	batch;
			ClaimArgs	c;
			int64	   *saturated;
			int			n_saturated;

			if (!queue_extension_present())
				worker_leave("the extension was dropped", true);

			dlist_init(&batch);
			c.room = Min(webhook_batch_size, webhook_max_in_flight - http_in_flight());
			c.batch = &batch;
			c.n_busy = endpoint_load_snapshot(&c.busy, &saturated, &n_saturated, &throttle_wake);
			c.n_held = n_finished;
			c.held = finished;
			if (!run_guarded(claim_batch, &c))
				retry_at = backoff_after_error(&errors);
			else
			{
				int			before = n_finished;

				errors = 0;

				start_claimed(&batch, &finished, &n_finished);
				if (n_finished > before)
					(void) settle_finished(finished + before, n_finished - before);
				if (c.claimed < c.room)
				{
					NextDueArgs a;

					/*
					 * The queue is drained: let the next commits gather for a
					 * moment rather than claim once per commit.
					 */
					claim_after = TimestampTzPlusMilliseconds(GetCurrentTimestamp(), CLAIM_COALESCE_MS);
					need_claim = false;
					(void) endpoint_load_snapshot(&c.busy, &a.saturated, &a.n_saturated, &throttle_wake);
					a.rates = palloc(sizeof(double) * Max(a.n_saturated, 1));
					if (!run_guarded(find_next_due, &a))
						retry_at = backoff_after_error(&errors);
					else
					{
						next_due = a.next_due;
						endpoint_load_refresh(a.saturated, a.rates, a.n_saturated);
						if (c.claimed == 0 && next_due != 0 && next_due <= GetCurrentTimestamp())
							next_due = TimestampTzPlusMilliseconds(GetCurrentTimestamp(), RECHECK_MS);
					}
				}
			}
		}

		/* Sleep only when there is nothing to do right now. */
		can_claim = retry_at == 0 && n_finished < MAX_UNRECORDED &&
			http_in_flight() < webhook_max_in_flight;
		if (n_finished > 0 && record_at == 0)
			timeout_ms = 0;
		else if (need_claim && can_claim)
			timeout_ms = GetCurrentTimestamp() >= claim_after ? 0 : CLAIM_COALESCE_MS;
		else
		{
			TimestampTz wake = 0;
			TimestampTz candidates[4] = {next_due, throttle_wake, retry_at, record_at};

			for (int i = 0; i < 4; i++)
				if (candidates[i] != 0 && (wake == 0 || candidates[i] < wake))
					wake = candidates[i];
			if (wake != 0)
				timeout_ms = ms_until(wake);
		}
		if (my_stats)
			my_stats->in_flight = http_in_flight();

		pgstat_report_activity(STATE_IDLE, NULL);
		if (http_wait(timeout_ms))
			need_claim = true;

		/*
		 * Collect what finished, decide each outcome once, then record: new
		 * outcomes at once, old ones that could not be recorded after a
		 * back-off.
		 */
		n_new = 0;
		while (n_finished < finished_cap && (d = http_next_done()) != NULL)
		{
			endpoint_load_add(d, -1);
			finished[n_finished++] = d;
			n_new++;
		}
		had_failures = n_new > 0 && settle_finished(finished + n_finished - n_new, n_new);
		if (n_finished > 0 &&
			(n_new > 0 || record_at == 0 || GetCurrentTimestamp() >= record_at))
		{
			n_finished = record_finished(finished, n_finished);
			need_claim = true;
			if (n_finished > 0)
				record_at = backoff_after_error(&record_errors);
			else
			{
				record_at = 0;
				record_errors = 0;
				if (!run_guarded(housekeeping, &had_failures))
					retry_at = backoff_after_error(&errors);
				else
					errors = 0;
			}
		}
	}
}
