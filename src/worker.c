/*
 * worker.c
 *		The delivery worker of one database, a loop of four steps: claim due
 *		deliveries and send them all at once through libcurl, sleep until
 *		something needs the worker, record what happened.
 *
 * Each turn of the loop claims in one short transaction and records in
 * another (successes that free nothing gather a few turns' worth first);
 * requests are in flight only between transactions.  A worker that
 * dies leaves claimed deliveries pending, and its successor takes them over
 * at start, so delivery is at least once.  An outcome that cannot be
 * recorded stays in memory and is tried again later; its delivery is never
 * claimed meanwhile, and other deliveries go on.  While the extension is
 * installed at another version than the library's, the worker runs no
 * query on it and waits to be woken (version_gate.c).
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
#include "utils/guc.h"
#include "utils/memutils.h"
#include "utils/timeout.h"
#include "utils/timestamp.h"

#include "cluster_sync.h"
#include "endpoint_load.h"
#include "http.h"
#include "oauth.h"
#include "queue.h"
#include "request_format.h"
#include "schedule.h"
#include "shmem.h"
#include "transform.h"
#include "version_gate.h"
#include "webhook.h"

extern PGDLLEXPORT void webhook_worker_main(Datum main_arg);

/*
 * Something is due but the claim could take none of it (a row locked by
 * another session): look again after this long rather than at once.
 */
#define RECHECK_MS 1000

/* While this many outcomes wait to be recorded, claim nothing more. */
#define MAX_UNRECORDED 1000

/*
 * A gathering of outcomes (record_gather) ends at a batch, and below
 * MAX_UNRECORDED, so that it never keeps the worker from claiming.
 */
#define GATHER_MAX Min(webhook_batch_size, MAX_UNRECORDED / 2)

/* What the worker's loop carries from one turn to the next. */
typedef struct WorkerState
{
	int			worker;			/* its number in the database, from 0 */
	bool		need_claim;		/* something may be claimable: claim when
								 * there is room */
	bool		claim_all;		/* besides new events, something else may be
								 * due (the last claim statement filled its
								 * limit, say): run the claim statement first
								 * (queue_claim) */
	TimestampTz unswept_since;	/* claim turns since then have not looked at
								 * due rows (0: none yet; claim_sweep_due) */
	bool		gated;			/* the extension is at another version: run no
								 * query until woken and it is ours */
	bool		claims_released;	/* an earlier worker's claims were
									 * released */
	bool		held_back;		/* the last drained claim left deliveries
								 * behind a full endpoint or an empty bucket */
	TimestampTz next_due;		/* the next pending delivery comes due (0:
								 * none known) */
	TimestampTz throttle_wake;	/* an empty token bucket holds a token again */
	TimestampTz retry_at;		/* a failed transaction may be tried again */
	TimestampTz claim_after;	/* commits have gathered: claim again */
	TimestampTz quiet_claim_after;	/* the same, after the quiet delay */
	double		events_per_read;	/* running mean, over drained claims
									 * (schedule_events_per_read) */
	TimestampTz record_at;		/* record the outcomes gathered, or try again
								 * those that failed (0: at once) */
	int			errors;			/* claim or housekeeping failures in a row */
	int			record_errors;	/* recording failures in a row */
	Delivery  **finished;		/* finished requests not recorded yet */
	int			n_finished;
	int			finished_cap;	/* room in finished */
	bool		leaving;		/* record what is held at once, and nothing
								 * else: the worker is going */
} WorkerState;

static WebhookDbStats *my_stats = NULL;

/* The worker waits between turns (sleep_until_needed): SIGTERM ends the wait. */
static volatile sig_atomic_t sleeping = false;

/*
 * The worker runs its claim, its record or its next-due query: statements
 * of its own that a cancel ends cleanly (run_guarded rolls back, and the
 * outcomes being recorded stay held).  SIGTERM cancels them (worker_sigterm).
 */
static volatile sig_atomic_t cancellable = false;

/* SIGTERM came: stop after the wait, or after the cancelled transaction. */
static volatile sig_atomic_t stop_requested = false;

/*
 * How long a worker stopping on SIGTERM may take to record what it holds
 * (a lock another session holds on the queue could otherwise keep it for
 * a second per outcome) before it ends as die() ends it.
 */
#define STOP_GRACE_MS 1000

/*
 * SIGTERM (a fast or smart shutdown, pg_terminate_backend).  While the
 * worker waits between turns, or runs one of its cancellable transactions,
 * it stops after recording what it holds (worker_stop), so that the next
 * worker sends again only the requests still in flight: the wait ends, or
 * the transaction is cancelled, as a cancel request would end it (a
 * statement waiting for a lock does not hold the stop up).  At any other
 * moment (starting up, a transform, a wait for a synchronous standby,
 * housekeeping) it ends at once, as die() ends any background worker, and
 * the next worker sends what it held again.  Once it is stopping, another
 * SIGTERM changes nothing: the postmaster sends each child two (to the
 * process, then to its process group), and the stop's grace bounds it.
 */
static void
worker_sigterm(SIGNAL_ARGS)
{
	int			save_errno = errno;

	if (cancellable && !stop_requested)
	{
		QueryCancelPending = true;
		InterruptPending = true;
	}
	else if (!sleeping && !stop_requested)
		die(postgres_signal_arg);
	stop_requested = true;
	SetLatch(MyLatch);
	errno = save_errno;
}

/*
 * Attach to the slot the launcher reserved for this database and worker
 * number, before connecting: a second worker for the same database and
 * number leaves at once, and so does one whose database is held aside for
 * some DDL.
 */
static void
worker_attach(Oid dboid, int worker)
{
	if (!webhook_worker_attach(dboid, worker, &my_stats))
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
		if (stop_requested)
			return;
		ereport(LOG,
				(errcode(ERRCODE_QUERY_CANCELED),
				 errmsg("webhook delivery worker ignored a cancel request between transactions")));
	}
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
		/* The cancel that SIGTERM sends is no error (worker_sigterm). */
		if (!stop_requested || geterrcode() != ERRCODE_QUERY_CANCELED)
			EmitErrorReport();
		FlushErrorState();
		AbortCurrentTransaction();
		pgstat_report_activity(STATE_IDLE, NULL);
		ok = false;
	}
	PG_END_TRY();
	return ok;
}

/*
 * run_guarded for a transaction that SIGTERM may cancel (worker_sigterm),
 * and none once the worker is stopping: it then only records, in
 * worker_stop.
 */
static bool
run_cancellable(void (*fn) (void *), void *arg)
{
	bool		ok;

	if (stop_requested)
		return false;
	cancellable = true;
	ok = run_guarded(fn, arg);
	cancellable = false;
	return ok;
}

/* The time of the next attempt after one that may be retried. */
static TimestampTz
next_attempt_time(Delivery *d, TimestampTz now)
{
	return now + schedule_retry_delay_us(d->retry_delay_s, webhook_retry_delay_scale,
										 pg_prng_double(&pg_global_prng_state),
										 d->status_code, d->retry_after_s);
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
		ScheduleOutcome outcome = schedule_outcome(d->error_class, d->status_code,
												   d->retry_delay_s);
		bool		failed = d->error_class != ERROR_CLASS_NONE;

		d->status = outcome.status;
		d->deactivate_endpoint = outcome.deactivate_endpoint;
		if (d->status == DELIVERY_PENDING)
			d->next_attempt_at = next_attempt_time(d, now);
		had_failures |= failed;
		if (my_stats)
		{
			my_stats->attempts++;
			my_stats->retries += d->attempt > 1;
			my_stats->succeeded += !failed;
			my_stats->failed += failed;
			my_stats->bytes_sent += d->bytes_sent;
		}
	}
	return had_failures;
}

/* The next failure's back-off, counting this one. */
static TimestampTz
backoff_after_error(int *errors)
{
	int			ms = schedule_error_backoff_ms(*errors);

	(*errors)++;
	return TimestampTzPlusMilliseconds(GetCurrentTimestamp(), ms);
}

/*
 * The extension is not there at our version.  Dropped: leave, and tell the
 * launcher not to start us again.  Another version: say so once, with what
 * to do, and wait to be woken (ALTER EXTENSION wakes us at commit).
 */
static void
extension_not_ready(WorkerState *s, ExtensionState state)
{
	if (state == EXTENSION_MISSING)
		worker_leave("the extension is not installed in this database", true);
	if (s->gated)
		ereport(DEBUG1,
				(errmsg("webhook delivery worker is still waiting: the extension is installed at version %s",
						version_gate_installed())));
	else
		ereport(LOG,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("webhook delivery worker is waiting: the extension is installed at version %s, the library is version %s",
						version_gate_installed(), WEBHOOK_EXTVERSION),
				 errdetail("Deliveries stay queued until the versions match."),
				 errhint("Run ALTER EXTENSION webhook UPDATE in this database.")));
	s->gated = true;
	s->need_claim = false;
}

/* The transaction of queue_start, run guarded. */
static void
start_queue(void *arg)
{
	*(ExtensionState *) arg = queue_start();
}

/*
 * The extension is there at our version (again): release an earlier
 * worker's claims first, if that is not done yet.  Returns whether the
 * worker may claim now.
 */
static bool
extension_ready(WorkerState *s)
{
	ExtensionState state;

	if (!s->claims_released)
	{
		if (!run_guarded(start_queue, &state))
		{
			s->retry_at = backoff_after_error(&s->errors);
			return false;
		}
		if (state != EXTENSION_READY)
		{
			extension_not_ready(s, state);
			return false;
		}
		s->claims_released = true;
	}
	if (s->gated && s->worker == 0)
		webhook_cluster_sync_start();
	if (s->gated)
		s->claim_all = true;
	s->gated = false;
	return true;
}

/* A claim's arguments and result, for run_guarded. */
typedef struct ClaimArgs
{
	int			room;			/* deliveries to claim at most */
	dlist_head	batch;			/* the deliveries claimed */
	EndpointLoadSnapshot load;	/* endpoints being sent to */
	WorkerState *s;
	ExtensionState state;		/* the extension, as the claim found it */
	int			claimed;		/* how many, or -1: the extension is not ready */
	QueueClaimTurn turn;		/* what the worker knew, what the claim found */
} ClaimArgs;

/* The claim transaction. */
static void
claim_batch(void *arg)
{
	ClaimArgs  *c = (ClaimArgs *) arg;

	c->claimed = queue_claim(c->room, &c->batch, &c->load, c->s->n_finished, c->s->finished,
							 &c->state, &c->turn);
}

/*
 * OAuth2 (oauth.c): deliveries whose token request failed join the finished
 * ones, no longer counted in their endpoint's load.  Returns how many.
 */
static int
take_oauth_failed(WorkerState *s, dlist_head *failed)
{
	dlist_mutable_iter iter;
	int			n = 0;

	dlist_foreach_modify(iter, failed)
	{
		Delivery   *d = dlist_container(Delivery, node, iter.cur);

		dlist_delete(&d->node);
		endpoint_load_add(d, -1);
		s->finished[s->n_finished++] = d;
		n++;
	}
	return n;
}

/*
 * Start every claimed delivery, or settle at once those that cannot be
 * sent: a secret or header unusable, a transform that failed, or a receiver
 * the network guard refuses to reach through a proxy (proxy.c).  Returns
 * how many were started; they leave now, not at the next wait.
 */
static int
send_claimed(WorkerState *s, dlist_head *claimed)
{
	dlist_mutable_iter iter;
	int			before = s->n_finished;
	int			started = 0;
	dlist_head	oauth_failed;

	dlist_init(&oauth_failed);
	transform_apply(claimed);
	dlist_foreach_modify(iter, claimed)
	{
		Delivery   *d = dlist_container(Delivery, node, iter.cur);

		dlist_delete(&d->node);
		/* The body the endpoint's format sends (request_format.c). */
		request_format_shape(d);
		if (d->key_problem || d->header_problem || d->transform_error || d->proxy_problem)
		{
			MemoryContext old = MemoryContextSwitchTo(d->cxt);

			d->attempted_at = GetCurrentTimestamp();
			d->error_class = d->key_problem ? ERROR_CLASS_SECRET :
				d->header_problem ? ERROR_CLASS_INVALID_HEADER :
				d->transform_error ? ERROR_CLASS_TRANSFORM : ERROR_CLASS_BLOCKED;
			d->error = pstrdup(d->key_problem ? d->key_problem :
							   d->header_problem ? d->header_problem :
							   d->transform_error ? d->transform_error : d->proxy_problem);
			MemoryContextSwitchTo(old);
			s->finished[s->n_finished++] = d;
			continue;
		}
		endpoint_load_add(d, 1);
		/* OAuth2 (oauth.c): sent with a token, or waiting for one. */
		if (d->oauth_token_url != NULL)
			oauth_send(d, &oauth_failed);
		else
			http_start(d);
		started++;
	}
	http_send_now();
	take_oauth_failed(s, &oauth_failed);
	if (s->n_finished > before)
		(void) settle_finished(s->finished + before, s->n_finished - before);
	return started;
}

/* The next-due query's arguments and result, for run_guarded. */
typedef struct NextDueArgs
{
	EndpointLoadSnapshot load;	/* its saturated endpoints are skipped */
	double	   *rates;			/* their current rate limits, returned */
	TimestampTz next_due;
} NextDueArgs;

/* The next-due transaction. */
static void
find_next_due(void *arg)
{
	NextDueArgs *a = (NextDueArgs *) arg;

	a->next_due = queue_next_due(a->load.n_saturated, a->load.saturated, a->rates);
}

/*
 * The queue is drained: let the next commits gather for a moment rather
 * than claim once per commit (longer while reads find several events:
 * schedule_claim_delay_ms), and find when the next delivery comes
 * due so as to sleep until then.  claimed is how many the last claim took,
 * events_read how many new events its read found, and claim_began when it
 * began (schedule_next_due).
 */
static void
schedule_next_claim(WorkerState *s, int claimed, int events_read, TimestampTz claim_began)
{
	NextDueArgs a;
	TimestampTz now = GetCurrentTimestamp();

	s->events_per_read = schedule_events_per_read(s->events_per_read, events_read);
	s->claim_after = TimestampTzPlusMilliseconds(now, schedule_claim_delay_ms(s->events_per_read));
	s->quiet_claim_after = TimestampTzPlusMilliseconds(now, SCHEDULE_QUIET_DELAY_MS);
	s->need_claim = false;
	s->held_back = true;
	endpoint_load_snapshot(&a.load);
	s->throttle_wake = a.load.throttle_wake;
	a.rates = palloc(sizeof(double) * Max(a.load.n_saturated, 1));
	if (!run_cancellable(find_next_due, &a))
	{
		s->retry_at = backoff_after_error(&s->errors);
		return;
	}
	endpoint_load_refresh(a.load.saturated, a.rates, a.load.n_saturated);
	/* It found every due row the claim did not take: the sweep's work. */
	s->unswept_since = 0;
	s->held_back = a.load.n_saturated > 0;
	s->next_due = schedule_next_due(a.next_due, claim_began, claimed, GetCurrentTimestamp(),
									RECHECK_MS * INT64CONST(1000));
}

/*
 * Have the claim turns since due rows were last looked at (by the claim
 * statement, or by the next-due query before the worker slept) gone on
 * for SCHEDULE_CLAIM_SWEEP_MS?  Then the claim statement runs this turn
 * (queue_claim), so that the read, which may take a busy worker's whole
 * room with rows it makes claimed, never holds back for long a due row it
 * did not make.  After a sleep the time counts from the first turn: what
 * came due meanwhile woke the worker or was its next due time.  A clock
 * set back counts as due.
 */
static bool
claim_sweep_due(WorkerState *s, TimestampTz now)
{
	if (s->unswept_since == 0)
	{
		s->unswept_since = now;
		return false;
	}
	return now < s->unswept_since ||
		now - s->unswept_since >= SCHEDULE_CLAIM_SWEEP_MS * INT64CONST(1000);
}

/*
 * Forget deliveries taken but not sent: a failed claim transaction's (the
 * read takes its rows before the claim statement runs), whose claims rolled
 * back with it, so that the next claim takes them again; or a stopping
 * worker's, whose claims the next worker takes over.
 */
static void
drop_unsent(dlist_head *batch)
{
	dlist_mutable_iter iter;

	dlist_foreach_modify(iter, batch)
	{
		Delivery   *d = dlist_container(Delivery, node, iter.cur);

		dlist_delete(&d->node);
		MemoryContextDelete(d->cxt);
	}
}

/*
 * Step 1, claim and send: take as many due deliveries as there is room
 * for, in one transaction, and start them.  Outcomes not recorded yet stay
 * in memory, their deliveries excluded from the claim so that nothing is
 * sent twice.  A short batch, with no more new events to read, means the
 * queue is drained.
 */
static void
claim_and_send(WorkerState *s)
{
	ClaimArgs	c;
	TimestampTz began = GetCurrentTimestamp();

	if (!extension_ready(s))
		return;
	c.room = Min(webhook_batch_size, webhook_max_in_flight - http_in_flight() - oauth_waiting());
	dlist_init(&c.batch);
	endpoint_load_snapshot(&c.load);
	s->throttle_wake = c.load.throttle_wake;
	c.s = s;
	c.turn.claim_all = s->claim_all || claim_sweep_due(s, began);
	if (!run_cancellable(claim_batch, &c))
	{
		drop_unsent(&c.batch);
		s->retry_at = backoff_after_error(&s->errors);
		return;
	}
	if (c.claimed < 0)
	{
		extension_not_ready(s, c.state);
		return;
	}
	s->errors = 0;

	/*
	 * Stopping: what was just claimed is not sent.  Its claims are taken over
	 * by the next worker, which sends it once; sent now, its requests would
	 * be cut off in flight and sent again.
	 */
	if (stop_requested)
	{
		drop_unsent(&c.batch);
		return;
	}
	s->claim_all = c.turn.claim_again;
	if (c.turn.claimed_due)
		s->unswept_since = began;
	queue_flush_claim(send_claimed(s, &c.batch) > 0);
	if (c.claimed < c.room && !c.turn.more_events)
		schedule_next_claim(s, c.claimed, c.turn.events_read, began);
}

/*
 * Is there room to claim: no failed transaction waiting out its back-off,
 * not too many outcomes unrecorded, and requests to spare?
 */
static bool
room_to_claim(WorkerState *s)
{
	return s->retry_at == 0 && s->n_finished < MAX_UNRECORDED &&
		http_in_flight() + oauth_waiting() < webhook_max_in_flight;
}

/*
 * A time the worker set for itself has come: a delivery due, a bucket
 * refilled, a back-off over.  Then it should claim.
 */
static void
note_due_times(WorkerState *s)
{
	TimestampTz now = GetCurrentTimestamp();
	TimestampTz *times[3] = {&s->next_due, &s->throttle_wake, &s->retry_at};

	for (int i = 0; i < 3; i++)
		if (*times[i] != 0 && now >= *times[i])
		{
			*times[i] = 0;
			s->need_claim = true;
			s->claim_all = true;
		}
}

/*
 * Step 2, sleep: until a request finishes, a commit wakes the worker, or
 * the first of the times it set for itself; not at all when there is
 * something to do right now.  While gated, only a wake-up or a request
 * ends the sleep.
 */
static void
sleep_until_needed(WorkerState *s)
{
	long		timeout_ms = -1;

	if (s->gated)
		timeout_ms = -1;
	else if (s->n_finished > 0 && s->record_at == 0)
		timeout_ms = 0;
	else if (s->need_claim && room_to_claim(s))
		timeout_ms = schedule_ms_until(GetCurrentTimestamp(), s->claim_after);
	else
	{
		TimestampTz wake = schedule_earliest(schedule_earliest(s->next_due, s->throttle_wake),
											 schedule_earliest(s->retry_at, s->record_at));

		if (wake != 0)
			timeout_ms = schedule_ms_until(GetCurrentTimestamp(), wake);
	}
	if (my_stats)
		my_stats->in_flight = http_in_flight();

	pgstat_report_activity(STATE_IDLE, NULL);
	sleeping = true;
	if (!stop_requested && http_wait(timeout_ms))
		s->need_claim = true;
	sleeping = false;
}

/* The housekeeping transaction. */
static void
housekeeping(void *arg)
{
	queue_housekeeping(*(bool *) arg);
}

/* A batch of outcomes to record, for run_guarded. */
typedef struct RecordBatch
{
	Delivery  **done;
	int			n;
	bool	   *recorded;		/* which were written, returned */
} RecordBatch;

/* The recording transaction. */
static void
record_batch(void *arg)
{
	RecordBatch *batch = (RecordBatch *) arg;

	(void) queue_record(batch->done, batch->n, batch->recorded);
}

/*
 * Record outcomes batch by batch and free what was recorded.  Returns how
 * many are left unrecorded (they move to the front, in order).  leaving:
 * the worker is stopping, and this recording is not to be cancelled.
 */
static int
record_finished(Delivery **finished, int n, bool leaving)
{
	bool	   *recorded = palloc0(sizeof(bool) * Max(n, 1));
	int			kept = 0;

	for (int start = 0; start < n; start += webhook_batch_size)
	{
		RecordBatch batch = {finished + start, Min(webhook_batch_size, n - start), recorded + start};

		if (!(leaving ? run_guarded(record_batch, &batch) : run_cancellable(record_batch, &batch)))
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

/*
 * May recording these outcomes make a delivery claimable that the last
 * claim could not take?  Not when the last claim drained the queue with no
 * endpoint full or out of tokens (then next_due already knows when the
 * next retry comes due), and each outcome is a success for an unordered
 * endpoint: a retry, a failure or an ordered endpoint's outcome may let
 * another delivery go.  New events wake the worker anyway.  Skipping the
 * claim then saves a read, a claim and a next-due query per delivery at
 * low rates.
 */
static bool
record_may_free_claims(const WorkerState *s, Delivery **done, int n)
{
	if (s->held_back)
		return true;
	for (int i = 0; i < n; i++)
		if (done[i]->status != DELIVERY_SUCCEEDED || done[i]->ordered)
			return true;
	return false;
}

/*
 * Start, go on with or end the gathering of the outcomes held
 * (schedule_record_at), and say whether they wait.  Not once a recording
 * has failed: its back-off owns record_at then.
 */
static bool
record_gather(WorkerState *s, bool may_free)
{
	if (s->record_errors > 0 || s->leaving)
		return false;
	s->record_at = schedule_record_at(s->record_at, GetCurrentTimestamp(), s->n_finished,
									  GATHER_MAX, webhook_record_delay_ms, may_free);
	return s->record_at != 0;
}

/*
 * Step 3, record: collect what finished and decide each outcome once, then
 * record them: successes that free nothing when their gathering ends
 * (record_gather), others at once, and old ones that could not be
 * recorded after a back-off.  Housekeeping follows a full recording.  While gated, outcomes
 * wait in memory.
 */
static void
record_outcomes(WorkerState *s)
{
	Delivery   *d;
	int			n_new = 0;
	bool		had_failures;
	bool		may_free;

	dlist_head	oauth_failed;

	dlist_init(&oauth_failed);
	while (s->n_finished < s->finished_cap && (d = http_next_done()) != NULL)
	{
		/* OAuth2 (oauth.c): a token request, or a 401 sent once more. */
		if (oauth_transfer_done(d, &oauth_failed))
		{
			n_new += take_oauth_failed(s, &oauth_failed);
			continue;
		}
		endpoint_load_add(d, -1);
		s->finished[s->n_finished++] = d;
		n_new++;
	}
	had_failures = n_new > 0 && settle_finished(s->finished + s->n_finished - n_new, n_new);
	if (s->gated || s->n_finished == 0 ||
		(n_new == 0 && s->record_errors > 0 && !s->leaving && GetCurrentTimestamp() < s->record_at))
		return;

	may_free = record_may_free_claims(s, s->finished, s->n_finished);
	if (record_gather(s, may_free))
		return;
	s->n_finished = record_finished(s->finished, s->n_finished, s->leaving);
	if (may_free || s->n_finished > 0)
		s->need_claim = s->claim_all = true;

	/*
	 * What the outcomes freed (an ordered key's next, a retry) goes at the
	 * quiet delay: the busy one is for gathering commits.
	 */
	if (may_free)
		s->claim_after = Min(s->claim_after, s->quiet_claim_after);
	if (s->n_finished > 0)
	{
		s->record_at = backoff_after_error(&s->record_errors);
		return;
	}
	s->record_at = 0;
	s->record_errors = 0;
	if (s->leaving || stop_requested)
		return;
	if (!run_guarded(housekeeping, &had_failures))
		s->retry_at = backoff_after_error(&s->errors);
	else
		s->errors = 0;
}

/*
 * The worker is going (SIGTERM while it waited, or DDL asked it to step
 * aside): record the outcomes it holds, those that have just come in
 * included, so that the next worker sends again only the requests still
 * in flight.  While gated they stay in memory, and go with it.
 */
static void
record_before_leaving(WorkerState *s)
{
	s->leaving = true;
	/* What it records is then all that was sent: nothing moves after. */
	http_stop();
	(void) http_wait(0);
	record_outcomes(s);
}

/* The stop's grace is over: end the worker as die() would. */
static void
stop_grace_over(void)
{
	ProcDiePending = true;
	InterruptPending = true;
	SetLatch(MyLatch);
}

/*
 * SIGTERM came (worker_sigterm): record what the worker holds, within
 * STOP_GRACE_MS, then end as die() ends any background worker (the same
 * message, and the launcher starts it again unless the server is shutting
 * down).
 */
static void
worker_stop(WorkerState *s)
{
	/* A cancel that came as a transaction ended must not cut this short. */
	drop_idle_cancel();
	enable_timeout_after(RegisterTimeout(USER_TIMEOUT, stop_grace_over), STOP_GRACE_MS);
	record_before_leaving(s);
	die(SIGTERM);
	CHECK_FOR_INTERRUPTS();
	proc_exit(1);
}

/*
 * Before each turn: interrupts, a cancel between transactions, a reload of
 * the settings, and a request from DDL to step aside (record_before_leaving).
 */
static void
begin_turn(WorkerState *s)
{
	drop_idle_cancel();
	CHECK_FOR_INTERRUPTS();
	if (ConfigReloadPending)
	{
		ConfigReloadPending = false;
		ProcessConfigFile(PGC_SIGHUP);
		http_reload_policy();
	}
	if (webhook_worker_asked_to_leave())
	{
		record_before_leaving(s);
		worker_leave("DDL on its database asked it to step aside", false);
	}
}

/*
 * Attach, connect, and look at the extension: gone, the worker leaves;
 * at another version, it starts gated.
 */
static void
worker_start(Oid dboid, WorkerState *s)
{
	ExtensionState state;
	int			worker;

	/* A cancel during start-up would end the worker: hold it until the loop. */
	HOLD_CANCEL_INTERRUPTS();
	memcpy(&worker, MyBgworkerEntry->bgw_extra, sizeof(worker));
	if (worker < 0 || worker >= webhook_workers)
		proc_exit(0);
	worker_attach(dboid, worker);
	queue_init_worker(worker, webhook_workers);
	BackgroundWorkerInitializeConnectionByOid(dboid, InvalidOid, 0);
	pgstat_report_appname(webhook_workers > 1 ? psprintf("webhook delivery worker %d", worker) : "webhook delivery worker");
	/* Nothing the worker runs may resolve to an object a user planted. */
	SetConfigOption("search_path", "pg_catalog, pg_temp", PGC_SUSET, PGC_S_OVERRIDE);

	/*
	 * The worker's statements are short lookups by index.  Over partitions
	 * without statistics the planner's cost estimates can pass
	 * jit_above_cost, and compiling then took 70 ms of a 75 ms record
	 * statement.
	 */
	SetConfigOption("jit", "off", PGC_SUSET, PGC_S_OVERRIDE);

	version_gate_init();
	memset(s, 0, sizeof(WorkerState));
	state = queue_start();
	if (state == EXTENSION_MISSING)
		worker_leave("the extension is not installed in this database", true);

	ereport(LOG, (errmsg("webhook delivery worker started")));
	if (state == EXTENSION_OTHER_VERSION)
		extension_not_ready(s, state);
	else
	{
		s->claims_released = true;
		s->need_claim = s->claim_all = true;
	}
	s->worker = worker;

	endpoint_load_init();
	http_init();

	/*
	 * Room for every request in flight plus a claim batch, unrecorded, on top
	 * of the outcomes held back.
	 */
	s->finished_cap = 2 * 10000 + MAX_UNRECORDED + 1;
	s->finished = MemoryContextAlloc(TopMemoryContext, sizeof(Delivery *) * s->finished_cap);
	/* On a Citus coordinator, worker 0 keeps the nodes' configuration too. */
	if (worker == 0 && !s->gated)
		webhook_cluster_sync_start();
	RESUME_CANCEL_INTERRUPTS();
}

/*
 * Background worker entry point.  main_arg is the database OID, bgw_extra
 * the worker's number in it.  The loop is README's: claim and send, sleep,
 * record.
 */
void
webhook_worker_main(Datum main_arg)
{
	WorkerState s;
	MemoryContext loop_cxt;

	pqsignal(SIGHUP, SignalHandlerForConfigReload);
	pqsignal(SIGTERM, worker_sigterm);
	BackgroundWorkerUnblockSignals();
	worker_start(DatumGetObjectId(main_arg), &s);
	loop_cxt = AllocSetContextCreate(TopMemoryContext, "webhook worker loop", ALLOCSET_DEFAULT_SIZES);

	for (;;)
	{
		MemoryContextReset(loop_cxt);
		MemoryContextSwitchTo(loop_cxt);
		begin_turn(&s);
		note_due_times(&s);
		if (s.need_claim && room_to_claim(&s) && GetCurrentTimestamp() >= s.claim_after && !stop_requested)
			claim_and_send(&s);
		sleep_until_needed(&s);
		if (stop_requested)
			worker_stop(&s);
		record_outcomes(&s);
	}
}
