/*
 * queue.c
 *		The delivery worker's SQL: claim due deliveries, record outcomes, find
 *		the next due time.  Each call is one short transaction with saved
 *		plans and works on a whole batch; no transaction is ever open while
 *		requests are in flight.  One row's values or locks fail only that
 *		row's delivery or outcome, never the batch.  The claim also asks
 *		whether the extension is there at the library's version
 *		(version_gate.c), so that no query runs against another schema.
 */
#include "postgres.h"

#include "access/xact.h"
#include "access/xlog.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "replication/syncrep.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/resowner.h"
#include "utils/snapmgr.h"

#include "proxy.h"
#include "queue.h"
#include "reader.h"
#include "request_format.h"
#include "schedule.h"
#include "sealing.h"
#include "shmem.h"
#include "header_rules.h"
#include "spi_util.h"
#include "transform.h"
#include "unseal_cache.h"
#include "webhook.h"

static void commit_without_waiting(void);

/* How long the worker's writes wait for a row another session locked. */
#define WRITE_LOCK_TIMEOUT "1s"

static SPIPlanPtr claim_plan = NULL;
static SPIPlanPtr claim_unordered_plan = NULL;
static SPIPlanPtr record_plan = NULL;
static SPIPlanPtr next_due_plan = NULL;
static SPIPlanPtr next_due_unordered_plan = NULL;

/*
 * Is any active endpoint ordered, as the last read of new events saw (in
 * the snapshot that made its rows)?  The claim and the next-due query leave
 * out their ordered arm when none is.  An endpoint made ordered or active
 * later wakes the worker when its change commits
 * (webhook._endpoints_after_update), and the next claim reads again.
 */
static bool ordered_endpoints = true;

/* Rows made per new event read, a running mean (schedule_rows_per_event). */
static double rows_per_event = 1.0;

static SPIPlanPtr deactivate_plan = NULL;

/* The end of the last claim's commit, not flushed yet (queue_flush_claim). */
static XLogRecPtr unflushed_claim_end = InvalidXLogRecPtr;

/*
 * This worker's number among the database's webhook.workers: it claims,
 * waits for and takes over the deliveries of the endpoints that
 * webhook._worker_of gives it, and no others.
 */
static int	my_worker = 0;
static int	n_workers = 1;

/* Which of the database's workers this one is; before queue_start. */
void
queue_init_worker(int worker, int workers)
{
	my_worker = worker;
	n_workers = workers;
}

/*
 * Claim up to $1 due deliveries.  A claim lapses after the endpoint's lease
 * (webhook._claim_lease); setting claimed_at alone keeps the update HOT.
 * Each endpoint gets at most its free in-flight slots ($2/$3: endpoints with
 * requests in flight and how many; $4: default cap) and, when rate limited,
 * its whole tokens ($5).  An ordered endpoint offers, of each ordering key,
 * only its oldest pending delivery (webhook._ordered_heads), when it is due
 * and not in flight: one request per key at a time, keys in parallel up to
 * the endpoint's slots.  $6 are deliveries whose outcome the worker still
 * holds unrecorded: never claimed again (and their key waits).  A head
 * that was attempted before (retry() or recover() made an earlier delivery
 * pending again) waits while a later one of its key is in flight: a key
 * never has two requests out at once.
 *
 * A row locked by another session is skipped, never waited for; for an
 * ordered endpoint that pauses its key rather than skip ahead.  Sealed
 * values come back sealed: the worker unseals them one by one, so that one
 * that does not decrypt fails only its own delivery.  Of the retry schedule
 * only the delay after this attempt is read (NULL: no retry left); an
 * attempts count below 0, as a row written before its CHECK constraint may
 * hold, counts as 0.
 */
static const char *claim_busy_and_room =
"WITH busy AS ("
"  SELECT b.endpoint_id, b.in_flight, b.tokens"
"    FROM ROWS FROM (pg_catalog.unnest($2::bigint[]), pg_catalog.unnest($3::integer[]),"
"                    pg_catalog.unnest($5::float8[])) AS b(endpoint_id, in_flight, tokens)"
"), room AS ("
"  SELECT ep.id, ep.ordered, webhook._claim_lease(" LEASE_TIMEOUT_MS ") AS lease,"
"         greatest(least(coalesce(ep.max_in_flight, $4) - coalesce(b.in_flight, 0),"
"                        CASE WHEN ep.rate_limit_per_s IS NULL THEN 2147483647"
"                             ELSE pg_catalog.floor(coalesce(b.tokens, greatest(ep.rate_limit_per_s, 1)))::integer END),"
"                  0) AS n"
"    FROM webhook.endpoints ep LEFT JOIN busy b ON b.endpoint_id = ep.id"
"   WHERE ep.active AND webhook._worker_of(ep.id, $7) = $8";

/* The due deliveries of unordered endpoints: the oldest due first. */
static const char *claim_unordered_arm =
"   SELECT d.id, d.next_attempt_at, d.gen FROM room"
"     CROSS JOIN LATERAL ("
"       SELECT d.id, d.next_attempt_at, d.gen FROM webhook.delivery_state d"
"        WHERE d.endpoint_id = room.id AND d.status = 'pending' AND d.next_attempt_at <= pg_catalog.now()"
"          AND (d.claimed_at IS NULL OR d.claimed_at < pg_catalog.now() - room.lease)"
"          AND d.id <> ALL ($6::bigint[])"
"        ORDER BY d.next_attempt_at LIMIT room.n"
"        FOR UPDATE OF d SKIP LOCKED) d"
"    WHERE NOT room.ordered AND room.n > 0";

/*
 * The due heads of ordered endpoints' keys, each only when no later
 * delivery of its key is in flight, nor a first attempt of its key (an
 * endpoint made ordered while the read's first attempts to it are out:
 * those are not delivery_state rows, so no head waits behind them).  The
 * first attempts are read once per statement, as a hashed list; one
 * older than its lease (its worker died) no longer holds its key, as a
 * lapsed claim does not.
 */
static const char *claim_ordered_arm =
"   SELECT d.id, d.next_attempt_at, d.gen FROM room"
"     CROSS JOIN LATERAL ("
"       SELECT o.id, o.gen FROM webhook._ordered_heads(room.id) o"
"        WHERE o.next_attempt_at <= pg_catalog.now()"
"          AND (o.claimed_at IS NULL OR o.claimed_at < pg_catalog.now() - room.lease)"
"          AND o.id <> ALL ($6::bigint[])"
"          AND (room.id, o.ordering_key) NOT IN ("
"                SELECT f.endpoint_id, f.ordering_key FROM webhook.first_attempts f"
"                  JOIN webhook.endpoints ep ON ep.id = f.endpoint_id"
"                 WHERE f.claimed_at >= pg_catalog.now() - webhook._claim_lease(" LEASE_TIMEOUT_MS "))"
"          AND (o.attempts = 0 OR NOT EXISTS (               SELECT 1 FROM webhook.delivery_state x                WHERE x.endpoint_id = room.id AND x.status = 'pending' AND x.ordering_key = o.ordering_key                  AND x.id > o.id AND (x.claimed_at >= pg_catalog.now() - room.lease                                       OR x.id = ANY ($6::bigint[]))))"
"        ORDER BY o.id LIMIT room.n) o"
"     CROSS JOIN LATERAL ("
"       SELECT d.id, d.next_attempt_at, d.gen FROM webhook.delivery_state d"
"        WHERE d.id = o.id AND d.gen = o.gen AND d.status = 'pending' AND d.next_attempt_at <= pg_catalog.now()"
"          AND (d.claimed_at IS NULL OR d.claimed_at < pg_catalog.now() - room.lease)"
"          AND d.id <> ALL ($6::bigint[])"
"        FOR UPDATE OF d SKIP LOCKED) d"
"    WHERE room.ordered AND room.n > 0";

/* The claim itself. */
static const char *claim_update =
"UPDATE webhook.delivery_state d"
"   SET claimed_at = pg_catalog.now()"
"  FROM due, webhook.endpoints ep, webhook.events ev"
" WHERE d.id = due.id AND d.gen = due.gen AND ep.id = d.endpoint_id AND ev.id = d.event_id"
" RETURNING ";

/*
 * What the worker needs to send each claimed delivery (d the row, ep its
 * endpoint, ev its event), read by delivery_from_tuple.  The claim
 * statement returns it, and so does the read for the rows it makes
 * claimed (reader.c).
 */
static const char *claimed_columns =
"           d.id, d.attempts, ev.id::text, ev.event_type, webhook._event_body(ev.event_type, ev.payload, ev.created_at), ep.id, ep.url, ep.signing,"
"           CASE WHEN ep.signing <> 'none' THEN ep.secret END, ep.signature_header,"
"           ARRAY(SELECT ARRAY[h.key, h.value] FROM pg_catalog.jsonb_each_text("
"                   CASE WHEN pg_catalog.jsonb_typeof(ep.headers) = 'object' THEN ep.headers END) AS h),"
"           ep.timeout_ms,"
"           CASE WHEN greatest(d.attempts, 0) < coalesce(pg_catalog.array_length(ep.retry_schedule_s, 1), 0)"
"                THEN greatest(coalesce(ep.retry_schedule_s[pg_catalog.array_lower(ep.retry_schedule_s, 1)"
"                                                           + greatest(d.attempts, 0)], 0), 0) END,"
"           ep.max_in_flight,"
"           CASE WHEN ep.previous_secret_expires_at > pg_catalog.now() AND ep.signing <> 'none' THEN ep.previous_secret END,"
"           ep.auth_username, ep.auth_password,"
"           coalesce(ep.rate_limit_per_s, 0), ep.transform::oid, ep.transform_role::oid,"
"           ev.created_at, ev.payload, ep.xmin,"
"           ep.proxy AS proxy,"
/*
 * The endpoint's request format (request_format.c), decoded by name: the
 * format, its event type header and signature encoding and, for the
 * CloudEvents formats, the source, the event's data and its time, written
 * as webhook._event_body writes the body's timestamp.
 */
"           ep.format AS format, ep.event_type_header AS event_type_header,"
"           ep.signature_encoding AS signature_encoding,"
"           CASE WHEN ep.format <> 'standard' THEN ep.cloudevents_source END AS cloudevents_source,"
"           CASE WHEN ep.format <> 'standard' THEN ev.payload::text END AS format_data,"
"           CASE WHEN ep.format <> 'standard'"
"                THEN pg_catalog.to_char(ev.created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"') END"
"             AS format_time,"
/* TLS: decoded by name (tls_from_tuple) */
"           ep.ca_cert AS tls_ca_cert, ep.client_cert AS tls_client_cert, ep.client_key AS tls_client_key,"
/* OAuth2 client credentials: decoded by name (oauth_from_tuple) */
"           ep.oauth_token_url AS oauth_token_url, ep.oauth_client_id AS oauth_client_id,"
"           ep.oauth_client_secret AS oauth_client_secret, ep.oauth_scope AS oauth_scope,"
/* The row's generation, half of its key: the record finds the row by it. */
"           d.gen AS gen,"
/* Ordered: its outcome may let the next delivery of its key go (worker.c). */
"           ep.ordered AS ordered";

/*
 * The claim statement, with the ordered endpoints' arm or without it (no
 * active endpoint is ordered: its plan then starts a good part faster,
 * which an idle worker pays at every claim).  Built once per process.
 */
static const char *
claim_sql(bool ordered)
{
	static char *with_ordered = NULL;
	static char *unordered_only = NULL;
	char	  **sql = ordered ? &with_ordered : &unordered_only;

	if (*sql == NULL)
		*sql = MemoryContextStrdup(TopMemoryContext,
								   psprintf("%s), due AS ((%s%s%s) ORDER BY 2 LIMIT $1)%s%s",
											claim_busy_and_room, claim_unordered_arm,
											ordered ? " UNION ALL " : "",
											ordered ? claim_ordered_arm : "", claim_update,
											claimed_columns));
	return *sql;
}

/*
 * Record a batch of attempts: the delivery's new state, one log row each,
 * and each endpoint's failure streak.  A first attempt the read made
 * (webhook.first_attempts, $15) leaves that table and gets its
 * delivery_state row here, written once in its new state; its endpoint is
 * NULL if deleted since.  Any other delivery's row is updated.  A
 * delivery that is no longer pending (closed while in flight: a first
 * attempt is then already a delivery_state row) keeps its state, but the
 * attempt is still logged.  The streak stops growing at the integer limit,
 * so that no value a row holds fails the statement, and skips endpoints
 * deleted meanwhile; it is counted in one pass over the batch, not one
 * scan of the batch per endpoint (a send() to 1,000 endpoints made that
 * 500 by 500).  The worker passes each delivery's endpoint and event
 * as it claimed them.  A row is found by its id alone: retention may have
 * moved it to another generation while its request was out (the claim's
 * generation is only the log row's when the row is gone).  Each outcome
 * finds its row by primary-key probes (webhook_execute_by_probes makes that
 * the plan whatever the statistics say; a plan on estimates once compared
 * every outcome with every row, 500 by 500, and a join on id alone scanned
 * whole partitions), and the update probes the one generation it is in.
 * The pending test is written "status || ''" so that the pending index is
 * never read instead (phase 7 fell to 700/s that way).
 */
static const char *record_sql =
"WITH a AS MATERIALIZED ("
"  SELECT a.*"
"    FROM ROWS FROM (pg_catalog.unnest($1::bigint[]), pg_catalog.unnest($2::integer[]),"
"                    pg_catalog.unnest($3::text[]), pg_catalog.unnest($4::timestamptz[]),"
"                    pg_catalog.unnest($5::timestamptz[]), pg_catalog.unnest($6::float8[]),"
"                    pg_catalog.unnest($7::integer[]), pg_catalog.unnest($8::text[]),"
"                    pg_catalog.unnest($9::text[]), pg_catalog.unnest($10::text[]),"
"                    pg_catalog.unnest($11::text[]), pg_catalog.unnest($12::smallint[]),"
"                    pg_catalog.unnest($13::bigint[]), pg_catalog.unnest($14::uuid[]),"
"                    pg_catalog.unnest($15::boolean[]))"
"      AS a(delivery_id, attempt, status, next_attempt_at, attempted_at, duration_ms, status_code,"
"           error_class, error, response_body, url, gen, endpoint_id, event_id, first)"
"), r AS MATERIALIZED ("
"  SELECT a.*, m.made_here,"
"         CASE WHEN NOT m.made_here"
"              THEN (SELECT d.gen FROM webhook.delivery_state d WHERE d.id = a.delivery_id LIMIT 1) END AS row_gen"
"    FROM a, LATERAL (SELECT a.first AND EXISTS (SELECT 1 FROM webhook.first_attempts f"
"                                                 WHERE f.id = a.delivery_id) AS made_here) m"
"), gone AS ("
"  DELETE FROM webhook.first_attempts f USING r"
"   WHERE r.made_here AND f.id = r.delivery_id"
"  RETURNING r.*, f.gen AS made_gen, f.ordering_key AS made_key, f.claimed_at AS made_at"
"), made AS ("
"  INSERT INTO webhook.delivery_state (id, event_id, endpoint_id, status, attempts, next_attempt_at,"
"                                      last_attempt_at, last_status_code, last_error, created_at,"
"                                      completed_at, gen, ordering_key)"
"  OVERRIDING SYSTEM VALUE"
"  SELECT g.delivery_id, g.event_id, (SELECT ep.id FROM webhook.endpoints ep WHERE ep.id = g.endpoint_id),"
"         g.status, g.attempt, coalesce(g.next_attempt_at, g.made_at), g.attempted_at, g.status_code,"
"         CASE WHEN g.error_class IS NULL THEN NULL ELSE g.error_class || ': ' || g.error END, g.made_at,"
"         CASE WHEN g.status = 'pending' THEN NULL ELSE pg_catalog.now() END, g.made_gen, g.made_key"
"    FROM gone g"
"), upd AS ("
"  UPDATE webhook.delivery_state d"
"     SET status = r.status, attempts = r.attempt, claimed_at = NULL,"
"         next_attempt_at = coalesce(r.next_attempt_at, d.next_attempt_at),"
"         last_attempt_at = r.attempted_at, last_status_code = r.status_code,"
"         last_error = CASE WHEN r.error_class IS NULL THEN NULL ELSE r.error_class || ': ' || r.error END,"
"         completed_at = CASE WHEN r.status = 'pending' THEN NULL ELSE pg_catalog.now() END"
"    FROM r WHERE d.id = r.delivery_id AND d.gen = r.row_gen AND d.status OPERATOR(pg_catalog.||) '' = 'pending'"
"), streak AS ("
"  SELECT w.endpoint_id,"
"         max(w.attempted_at) FILTER (WHERE w.error_class IS NULL) AS last_ok,"
"         max(w.attempted_at) FILTER (WHERE w.error_class IS NOT NULL) AS last_bad,"
"         (pg_catalog.array_agg(w.error_class || ': ' || w.error ORDER BY w.attempted_at DESC)"
"            FILTER (WHERE w.error_class IS NOT NULL))[1] AS last_error,"
"         min(w.attempted_at) FILTER (WHERE w.error_class IS NOT NULL AND w.attempted_at > w.ok) AS failing_since,"
"         count(*) FILTER (WHERE w.error_class IS NOT NULL AND w.attempted_at > w.ok) AS failures"
"    FROM (SELECT r.*, coalesce(max(r.attempted_at) FILTER (WHERE r.error_class IS NULL)"
"                                 OVER (PARTITION BY r.endpoint_id), '-infinity') AS ok"
"            FROM r WHERE r.endpoint_id IN (SELECT ep.id FROM webhook.endpoints ep)) w"
"   GROUP BY w.endpoint_id"
"), state AS ("
"  INSERT INTO webhook.endpoint_state AS s"
"         (endpoint_id, failing_since, consecutive_failures, last_success_at, last_failure_at, last_error)"
"  SELECT k.endpoint_id, k.failing_since, k.failures, k.last_ok, k.last_bad, k.last_error"
"    FROM streak k"
"  ON CONFLICT (endpoint_id) DO UPDATE"
"     SET last_success_at = coalesce(EXCLUDED.last_success_at, s.last_success_at),"
"         last_failure_at = coalesce(EXCLUDED.last_failure_at, s.last_failure_at),"
"         last_error = coalesce(EXCLUDED.last_error, s.last_error),"
"         failing_since = CASE WHEN EXCLUDED.last_success_at IS NOT NULL THEN EXCLUDED.failing_since"
"                              ELSE coalesce(s.failing_since, EXCLUDED.failing_since) END,"
"         consecutive_failures = CASE WHEN EXCLUDED.last_success_at IS NOT NULL THEN EXCLUDED.consecutive_failures"
"                                     ELSE least(greatest(s.consecutive_failures, 0)::bigint"
"                                                + EXCLUDED.consecutive_failures, 2147483647)::integer END"
")"
"INSERT INTO webhook.delivery_log (delivery_id, endpoint_id, event_id, attempt, url, attempted_at,"
"                                  duration_ms, status_code, error_class, error, response_body, gen)"
"SELECT r.delivery_id, r.endpoint_id, r.event_id, r.attempt, r.url, r.attempted_at,"
"       r.duration_ms, r.status_code, r.error_class, r.error, r.response_body, coalesce(r.row_gen, r.gen)"
"  FROM r";

/*
 * The earliest time something may become claimable, among active endpoints
 * that have free slots ($1: endpoints at their cap or out of tokens, whose
 * completions or refill wake the worker anyway): an unclaimed delivery
 * coming due, or a claim lapsing (its worker died).  For an ordered endpoint
 * only the oldest pending delivery of each ordering key counts.  Also the current rate limit of
 * each endpoint in $1 (0: none, or the endpoint is gone or inactive), so the
 * worker forgets buckets of endpoints that no longer need them.
 */
static const char *next_due_head =
"SELECT (SELECT min(n.due)"
"          FROM webhook.endpoints ep"
"          CROSS JOIN LATERAL ("
"            (SELECT d.next_attempt_at FROM webhook.delivery_state d"
"              WHERE d.endpoint_id = ep.id AND d.status = 'pending' AND d.claimed_at IS NULL AND NOT ep.ordered"
"              ORDER BY d.next_attempt_at LIMIT 1)"
"            UNION ALL"
"            SELECT min(d.claimed_at) + webhook._claim_lease(" LEASE_TIMEOUT_MS ") FROM webhook.delivery_state d"
"             WHERE d.endpoint_id = ep.id AND d.status = 'pending' AND d.next_attempt_at <= pg_catalog.now()"
"               AND d.claimed_at IS NOT NULL AND NOT ep.ordered";

/* An ordered endpoint's next: the first of its keys' heads to come due. */
static const char *next_due_ordered_arm =
"            SELECT min(greatest(h.next_attempt_at, h.claimed_at + webhook._claim_lease(" LEASE_TIMEOUT_MS ")))"
"              FROM webhook._ordered_heads(ep.id) h WHERE ep.ordered";

static const char *next_due_tail =
"          ) n(due)"
"         WHERE ep.active AND ep.id <> ALL ($1::bigint[]) AND webhook._worker_of(ep.id, $2) = $3),"
"       ARRAY(SELECT coalesce((SELECT ep.rate_limit_per_s FROM webhook.endpoints ep"
"                               WHERE ep.id = b.id AND ep.active), 0)"
"               FROM pg_catalog.unnest($1::bigint[]) WITH ORDINALITY AS b(id, i) ORDER BY b.i)";

/* The next-due query, with the ordered endpoints' arm or without it. */
static const char *
next_due_sql(bool ordered)
{
	static char *with_ordered = NULL;
	static char *unordered_only = NULL;
	char	  **sql = ordered ? &with_ordered : &unordered_only;

	if (*sql == NULL)
		*sql = MemoryContextStrdup(TopMemoryContext,
								   psprintf("%s%s%s%s", next_due_head, ordered ? " UNION ALL " : "",
											ordered ? next_due_ordered_arm : "", next_due_tail));
	return *sql;
}

/* A 410 Gone means the receiver asks never to be called again. */
static const char *deactivate_sql =
"UPDATE webhook.endpoints"
"   SET active = false, disabled_at = pg_catalog.now(),"
"       disabled_reason = 'receiver answered 410 Gone'"
" WHERE id = ANY ($1::bigint[]) AND active";

static long retention_turn_ms(void);
static void rotate_generations(void);

/* The caller's memory context, which committing a transaction would leave. */
static MemoryContext work_caller_cxt = NULL;

/* Open a short transaction with SPI and a snapshot. */
static void
begin_work(const char *activity)
{
	work_caller_cxt = CurrentMemoryContext;
	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	SPI_connect();
	PushActiveSnapshot(GetTransactionSnapshot());
	pgstat_report_activity(STATE_RUNNING, activity);
}

/* Close what begin_work opened, committing. */
static void
end_work(void)
{
	SPI_finish();
	PopActiveSnapshot();
	CommitTransactionCommand();
	/* Commit leaves TopMemoryContext current: go back, or the loop leaks. */
	MemoryContextSwitchTo(work_caller_cxt);
	pgstat_report_stat(false);
}

/*
 * For the rest of this transaction, a row another session keeps locked
 * fails the statement (or the row's subtransaction) soon, instead of
 * stopping the worker until that session ends.
 */
static void
wait_briefly_for_locks(void)
{
	(void) set_config_option("lock_timeout", WRITE_LOCK_TIMEOUT, PGC_SUSET, PGC_S_SESSION,
							 GUC_ACTION_LOCAL, true, 0, false);
}

/* A one-dimensional array Datum from C values. */
static Datum
make_array(Datum *values, bool *nulls, int n, Oid elemtype)
{
	int16		typlen;
	bool		typbyval;
	char		typalign;
	int			dims[1] = {n};
	int			lbs[1] = {1};

	get_typlenbyvalalign(elemtype, &typlen, &typbyval, &typalign);
	return PointerGetDatum(construct_md_array(values, nulls, 1, dims, lbs,
											  elemtype, typlen, typbyval, typalign));
}

/*
 * A worker starts: is the extension here, at our version?  If so, it owns no
 * requests yet: whatever earlier workers of this database had claimed was
 * cut short, so make it due now instead of waiting for the lease to run out
 * (first attempts become pending delivery_state rows, due now).
 * A row another session has locked keeps its claim until the lease lapses,
 * rather than make the worker wait.
 */
ExtensionState
queue_start(void)
{
	ExtensionState state;
	Oid			worker_types[2] = {INT4OID, INT4OID};
	Datum		worker_values[2] = {Int32GetDatum(n_workers), Int32GetDatum(my_worker)};
	uint64		taken;
	bool		isnull;
	int			ret;

	begin_work("releasing claims of an earlier worker");
	state = version_gate_check();
	if (state != EXTENSION_READY)
	{
		end_work();
		return state;
	}
	ret = SPI_execute_with_args("UPDATE webhook.delivery_state SET claimed_at = NULL"
								" WHERE id IN (SELECT id FROM webhook.delivery_state"
								"               WHERE status = 'pending' AND claimed_at IS NOT NULL"
								"                 AND webhook._worker_of(endpoint_id, $1) = $2"
								"               FOR UPDATE SKIP LOCKED)",
								2, worker_types, worker_values, NULL, false, 0);
	if (ret != SPI_OK_UPDATE)
		elog(ERROR, "could not release claims: %s", SPI_result_code_string(ret));
	taken = SPI_processed;
	ret = SPI_execute_with_args("SELECT webhook._first_attempts_to_state(ARRAY("
								"  SELECT f.id FROM webhook.first_attempts f"
								"   WHERE webhook._worker_of(f.endpoint_id, $1) = $2 FOR UPDATE SKIP LOCKED), true)",
								2, worker_types, worker_values, NULL, false, 0);
	if (ret != SPI_OK_SELECT || SPI_processed != 1)
		elog(ERROR, "could not take over first attempts: %s", SPI_result_code_string(ret));
	taken += DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
	if (taken > 0)
		ereport(LOG,
				(errmsg("webhook delivery worker took over %llu deliveries claimed by its predecessor",
						(unsigned long long) taken)));
	end_work();
	return state;
}

typedef struct UnsealArgs
{
	const char *value;
	char	   *plain;
} UnsealArgs;

static void
unseal_one(void *arg)
{
	UnsealArgs *u = (UnsealArgs *) arg;

	u->plain = webhook_unseal_value(u->value);
}

/*
 * The plain form of one of an endpoint's stored values, opened once and
 * then taken from the worker's cache (unseal_cache.c).  One that does not
 * decrypt (a dump restored under another key) fails only its delivery: NULL
 * is returned and, for the first such value, *problem says which it was and
 * why, never what it holds.
 */
static char *
unseal_for_delivery(const char *value, const char *what, const char **problem)
{
	UnsealArgs	u = {value, NULL};
	ErrorData  *edata;
	char	   *plain;

	if (value == NULL)
		return NULL;
	if (!webhook_is_sealed(value))
		return pstrdup(value);
	if ((plain = unseal_cache_get(value)) != NULL)
		return plain;
	edata = webhook_try_in_subtransaction(unseal_one, &u);
	if (edata == NULL)
	{
		unseal_cache_put(value, u.plain);
		return u.plain;
	}
	if (*problem == NULL)
		*problem = psprintf("%s cannot be decrypted: %s", what, edata->message);
	FreeErrorData(edata);
	return NULL;
}

/* Wipe and free a plain secret. */
static void
forget_secret(char *plain)
{
	if (plain == NULL)
		return;
	explicit_bzero(plain, strlen(plain));
	pfree(plain);
}

/*
 * What the delivery log says of a header the one header rule refuses (a row
 * written past the endpoints triggers, e.g. with triggers disabled).
 */
static const char *
header_problem_text(WebhookHeaderProblem problem)
{
	switch (problem)
	{
		case HEADER_BAD_NAME:
			return "a name that is not an HTTP token";
		case HEADER_NAME_TOO_LONG:
			return "a name that is too long";
		case HEADER_RESERVED:
			return "a name the extension sets itself";
		case HEADER_BAD_VALUE:
			return "a line break in a value";
		case HEADER_OK:
			break;
	}
	return "none";
}

/*
 * The endpoint's extra headers as "Name: value" lines, from the claim's
 * array of [name, value] pairs.  A header the write-time checks would refuse
 * (a row restored or written with triggers off) fails the delivery rather
 * than be sent: a line break in it would smuggle headers or requests.
 */
static void
headers_from_datum(Delivery *d, Datum pairs)
{
	ArrayType  *arr = DatumGetArrayTypeP(pairs);
	Datum	   *elems;
	bool	   *nulls;
	int			nelems;

	deconstruct_array(arr, TEXTOID, -1, false, TYPALIGN_INT, &elems, &nulls, &nelems);
	d->n_headers = 0;
	d->headers = palloc(sizeof(char *) * Max(nelems / 2, 1));
	for (int i = 0; i + 1 < nelems; i += 2)
	{
		char	   *name = TextDatumGetCString(elems[i]);
		char	   *what = psprintf("the endpoint's header \"%s\"", name);
		char	   *value = nulls[i + 1] ? pstrdup("") :
		unseal_for_delivery(TextDatumGetCString(elems[i + 1]), what, &d->key_problem);
		WebhookHeaderProblem problem;

		if (value == NULL)
			continue;
		problem = webhook_header_check(name, value);
		if (problem != HEADER_OK)
		{
			if (d->header_problem == NULL)
				d->header_problem = psprintf("the endpoint's headers hold one that cannot be sent: %s",
											 header_problem_text(problem));
			forget_secret(value);
			continue;
		}
		d->headers[d->n_headers++] = psprintf("%s: %s", name, value);
		forget_secret(value);
	}
}

/*
 * The signing keys: the secret and, during a rotation's grace period, the
 * previous one.  A secret that does not decrypt or decode fails the delivery.
 */
static void
keys_from_tuple(Delivery *d, HeapTuple tuple, TupleDesc desc)
{
	WebhookSigning signing = webhook_signing_from_name(SPI_getvalue(tuple, desc, 8));
	char	   *secret = unseal_for_delivery(SPI_getvalue(tuple, desc, 9),
											 "the endpoint's secret", &d->key_problem);
	char	   *previous = unseal_for_delivery(SPI_getvalue(tuple, desc, 15),
											   "the endpoint's previous secret", &d->key_problem);
	const char *problem;

	problem = webhook_decode_key(signing, secret ? secret : "", &d->key);
	if (problem != NULL && d->key_problem == NULL)
		d->key_problem = psprintf("the endpoint's secret cannot be used: %s", problem);
	if (previous != NULL && d->key_problem == NULL)
		d->has_previous_key = webhook_decode_key(signing, previous, &d->previous_key) == NULL;
	forget_secret(secret);
	forget_secret(previous);
}

/*
 * The number of the attempt about to be made, from the attempts a row
 * records: a count out of bounds (a row written before the CHECK constraint)
 * starts again at the first attempt, or stays at the last one allowed.
 */
static int32
attempt_number(int32 attempts)
{
	return Min(Max(attempts, 0), WEBHOOK_MAX_ATTEMPTS - 1) + 1;
}

/*
 * Proxies (proxy.c): the endpoint's proxy column, read by name, unsealed,
 * and with webhook.proxy made the delivery's proxy.  One that does not
 * decrypt fails the delivery.
 */
static void
proxy_from_tuple(Delivery *d, HeapTuple tuple, TupleDesc desc)
{
	int			attnum = SPI_fnumber(desc, "proxy");

	if (attnum <= 0)
		elog(ERROR, "the claim query returns no column \"proxy\"");
	proxy_choose(d, unseal_for_delivery(SPI_getvalue(tuple, desc, attnum),
										"the endpoint's proxy", &d->key_problem));
}

/*
 * TLS: the endpoint's CA bundle and client certificate, and its client key
 * unsealed like the other credentials.  Found by their aliases in the claim,
 * so that columns appended after them do not move them.
 */
static void
tls_from_tuple(Delivery *d, HeapTuple tuple, TupleDesc desc)
{
	char	   *stored_key = SPI_getvalue(tuple, desc, SPI_fnumber(desc, "tls_client_key"));

	d->tls_ca_cert = SPI_getvalue(tuple, desc, SPI_fnumber(desc, "tls_ca_cert"));
	d->tls_client_cert = SPI_getvalue(tuple, desc, SPI_fnumber(desc, "tls_client_cert"));
	d->tls_client_key = unseal_for_delivery(stored_key, "the endpoint's client_key", &d->key_problem);
	forget_secret(stored_key);
}

/*
 * OAuth2 client credentials (oauth.c): the token URL, client id and scope,
 * and the client secret unsealed like the other credentials.  Found by
 * their aliases in the claim.
 */
static void
oauth_from_tuple(Delivery *d, HeapTuple tuple, TupleDesc desc)
{
	char	   *stored_secret = SPI_getvalue(tuple, desc, SPI_fnumber(desc, "oauth_client_secret"));

	d->oauth_token_url = SPI_getvalue(tuple, desc, SPI_fnumber(desc, "oauth_token_url"));
	d->oauth_client_id = SPI_getvalue(tuple, desc, SPI_fnumber(desc, "oauth_client_id"));
	d->oauth_scope = SPI_getvalue(tuple, desc, SPI_fnumber(desc, "oauth_scope"));
	d->oauth_client_secret = unseal_for_delivery(stored_secret, "the endpoint's oauth_client_secret",
												 &d->key_problem);
	forget_secret(stored_secret);
	if (d->oauth_token_url != NULL && (d->oauth_client_id == NULL || d->oauth_client_secret == NULL) &&
		d->key_problem == NULL)
		d->key_problem = "the endpoint's OAuth2 client credentials are incomplete";
}

/* Copy one claimed row into a Delivery that outlives the transaction. */
static Delivery *
delivery_from_tuple(HeapTuple tuple, TupleDesc desc)
{
	MemoryContext cxt = AllocSetContextCreate(TopMemoryContext, "webhook delivery",
											  ALLOCSET_SMALL_SIZES);
	MemoryContext old = MemoryContextSwitchTo(cxt);
	Delivery   *d = palloc0(sizeof(Delivery));
	bool		isnull;
	Datum		retry_delay;

	d->cxt = cxt;
	d->id = DatumGetInt64(SPI_getbinval(tuple, desc, 1, &isnull));
	d->gen = DatumGetInt16(SPI_getbinval(tuple, desc, SPI_fnumber(desc, "gen"), &isnull));
	d->attempt = attempt_number(DatumGetInt32(SPI_getbinval(tuple, desc, 2, &isnull)));
	d->event_id = TextDatumGetCString(SPI_getbinval(tuple, desc, 3, &isnull));
	d->event_type = TextDatumGetCString(SPI_getbinval(tuple, desc, 4, &isnull));
	d->body = TextDatumGetCString(SPI_getbinval(tuple, desc, 5, &isnull));
	d->body_len = strlen(d->body);
	d->endpoint_id = DatumGetInt64(SPI_getbinval(tuple, desc, 6, &isnull));
	d->url = TextDatumGetCString(SPI_getbinval(tuple, desc, 7, &isnull));
	keys_from_tuple(d, tuple, desc);
	d->signature_header = TextDatumGetCString(SPI_getbinval(tuple, desc, 10, &isnull));
	if (d->key.signing == SIGNING_HMAC_SHA256)
	{
		WebhookHeaderProblem problem = webhook_header_check(d->signature_header, "");

		if (problem != HEADER_OK)
			d->header_problem = psprintf("the endpoint's signature_header cannot be sent: %s",
										 header_problem_text(problem));
	}
	headers_from_datum(d, SPI_getbinval(tuple, desc, 11, &isnull));
	d->timeout_ms = DatumGetInt32(SPI_getbinval(tuple, desc, 12, &isnull));
	retry_delay = SPI_getbinval(tuple, desc, 13, &isnull);
	d->retry_delay_s = isnull ? -1 : DatumGetInt32(retry_delay);
	d->max_in_flight = DatumGetInt32(SPI_getbinval(tuple, desc, 14, &isnull));
	if (isnull)
		d->max_in_flight = webhook_max_in_flight_per_endpoint;
	d->auth_username = SPI_getvalue(tuple, desc, 16);
	d->auth_password = unseal_for_delivery(SPI_getvalue(tuple, desc, 17),
										   "the endpoint's auth_password", &d->key_problem);
	d->rate_limit_per_s = DatumGetFloat8(SPI_getbinval(tuple, desc, 18, &isnull));
	d->ordered = DatumGetBool(SPI_getbinval(tuple, desc, SPI_fnumber(desc, "ordered"), &isnull));
	proxy_from_tuple(d, tuple, desc);
	/* The request format's columns, by name (request_format.c). */
	request_format_from_claim(d, tuple, desc);
	tls_from_tuple(d, tuple, desc);
	oauth_from_tuple(d, tuple, desc);

	MemoryContextSwitchTo(old);
	return d;
}

/*
 * The endpoints the worker is sending to, with how many requests each has
 * in flight, counting the deliveries already claimed in this transaction
 * (out): ids[i], counts[i] and, when tokens is not NULL, its bucket's
 * tokens (NULL: not rate limited).  Returns how many endpoints.
 */
static int
busy_endpoints(const EndpointLoadSnapshot *load, dlist_head *out,
			   Datum **ids, Datum **counts, Datum **tokens, bool **tokens_null)
{
	int			n_out = 0;
	int			n = load->n_busy;
	dlist_iter	iter;

	dlist_foreach(iter, out)
		n_out++;
	*ids = palloc(sizeof(Datum) * Max(n + n_out, 1));
	*counts = palloc(sizeof(Datum) * Max(n + n_out, 1));
	*tokens = palloc(sizeof(Datum) * Max(n + n_out, 1));
	*tokens_null = palloc(sizeof(bool) * Max(n + n_out, 1));
	for (int i = 0; i < n; i++)
	{
		EndpointLoad *busy = load->busy[i];

		(*ids)[i] = Int64GetDatum(busy->endpoint_id);
		(*counts)[i] = Int32GetDatum(busy->in_flight);
		(*tokens)[i] = Float8GetDatum(busy->bucket.tokens);
		(*tokens_null)[i] = busy->bucket.rate_per_s <= 0;
	}
	dlist_foreach(iter, out)
	{
		Delivery   *d = dlist_container(Delivery, node, iter.cur);
		int			i = 0;

		while (i < n && DatumGetInt64((*ids)[i]) != d->endpoint_id)
			i++;
		if (i == n)
		{
			(*ids)[n] = Int64GetDatum(d->endpoint_id);
			(*counts)[n] = Int32GetDatum(0);
			(*tokens)[n] = Float8GetDatum(0);
			(*tokens_null)[n] = true;
			n++;
		}
		(*counts)[i] = Int32GetDatum(DatumGetInt32((*counts)[i]) + 1);
	}
	return n;
}

/*
 * The claim statement's arguments from what the worker holds: the endpoints
 * it is sending to (ids, requests in flight, tokens), counting what this
 * transaction claimed already (out), and the deliveries whose outcome it
 * has not recorded yet.  values[0] (the limit) and values[3] (the default
 * cap) are the caller's.
 */
static void
claim_arguments(Datum *values, const EndpointLoadSnapshot *load, dlist_head *out,
				int n_held, Delivery **held)
{
	Datum	   *ids;
	Datum	   *counts;
	Datum	   *tokens;
	bool	   *tokens_null;
	int			n_busy = busy_endpoints(load, out, &ids, &counts, &tokens, &tokens_null);
	Datum	   *held_ids = palloc(sizeof(Datum) * Max(n_held, 1));

	for (int i = 0; i < n_held; i++)
		held_ids[i] = Int64GetDatum(held[i]->id);
	values[1] = make_array(ids, NULL, n_busy, INT8OID);
	values[2] = make_array(counts, NULL, n_busy, INT4OID);
	values[4] = make_array(tokens, tokens_null, n_busy, FLOAT8OID);
	values[5] = make_array(held_ids, NULL, n_held, INT8OID);
}

/*
 * One claimed row as a Delivery, its transform (if the endpoint has one)
 * kept to run after the claim commits.
 */
static Delivery *
claimed_delivery(HeapTuple tuple, TupleDesc desc)
{
	Delivery   *d = delivery_from_tuple(tuple, desc);
	bool		no_transform;
	Datum		func = SPI_getbinval(tuple, desc, 19, &no_transform);

	if (!no_transform)
	{
		bool		isnull;

		transform_defer(d, DatumGetObjectId(func),
						DatumGetTransactionId(SPI_getbinval(tuple, desc, 23, &isnull)),
						DatumGetTimestampTz(SPI_getbinval(tuple, desc, 21, &isnull)),
						SPI_getbinval(tuple, desc, 22, &isnull));
	}
	return d;
}

/* Append the rows a statement claimed (SPI's last result) to out. */
static int
append_claimed(dlist_head *out)
{
	/* Unsealing may run SPI and replace SPI_tuptable: keep this one. */
	SPITupleTable *tuptable = SPI_tuptable;
	int			n = (int) SPI_processed;

	for (int i = 0; i < n; i++)
	{
		Delivery   *d = claimed_delivery(tuptable->vals[i], tuptable->tupdesc);

		dlist_push_tail(out, &d->node);
	}
	return n;
}

/* A first attempt the read made (reader.c): one more delivery to send. */
static void
take_made_claimed(HeapTuple tuple, TupleDesc desc, void *arg)
{
	Delivery   *d = claimed_delivery(tuple, desc);

	d->first_attempt = true;

	dlist_push_tail((dlist_head *) arg, &d->node);
}

/*
 * What the read may claim itself (reader.c, fan_out_head): at most limit
 * rows of this worker's endpoints, within their free slots.
 */
static void
read_claim_arguments(ReaderClaim *rc, int limit, const EndpointLoadSnapshot *load, dlist_head *out)
{
	Datum	   *ids;
	Datum	   *counts;
	Datum	   *tokens;
	bool	   *tokens_null;
	int			n_busy;

	n_busy = busy_endpoints(load, out, &ids, &counts, &tokens, &tokens_null);
	memset(rc, 0, sizeof(*rc));
	rc->enabled = limit > 0;
	rc->limit = limit;
	rc->default_cap = webhook_max_in_flight_per_endpoint;
	rc->workers = n_workers;
	rc->me = my_worker;
	rc->busy_ids = make_array(ids, NULL, n_busy, INT8OID);
	rc->busy_counts = make_array(counts, NULL, n_busy, INT4OID);
	rc->columns = claimed_columns;
	rc->take = take_made_claimed;
	rc->take_arg = out;
}

/* Claim up to limit due deliveries (claim_sql), appending them to out. */
static int
claim_due(int limit, dlist_head *out, const EndpointLoadSnapshot *load, int n_held, Delivery **held)
{
	Oid			argtypes[8] = {INT4OID, INT8ARRAYOID, INT4ARRAYOID, INT4OID, FLOAT8ARRAYOID,
	INT8ARRAYOID, INT4OID, INT4OID};
	Datum		values[8];
	int			ret;

	values[0] = Int32GetDatum(limit);
	values[3] = Int32GetDatum(webhook_max_in_flight_per_endpoint);
	claim_arguments(values, load, out, n_held, held);
	values[6] = Int32GetDatum(n_workers);
	values[7] = Int32GetDatum(my_worker);
	ret = webhook_execute_by_probes(webhook_prepare_once(ordered_endpoints ? &claim_plan : &claim_unordered_plan,
														 claim_sql(ordered_endpoints), 8, argtypes),
									values, NULL, false, 0);
	if (ret != SPI_OK_UPDATE_RETURNING)
		elog(ERROR, "could not claim deliveries: %s", SPI_result_code_string(ret));
	return append_claimed(out);
}

/*
 * How many new events to read (schedule_read_page): with several workers a
 * whole batch, since the rows are for all of them.
 */
static int
read_page_size(int limit)
{
	if (n_workers > 1)
		return webhook_batch_size;
	return schedule_read_page(limit, rows_per_event, webhook_batch_size);
}

/*
 * Read new events (a page of them, read_page_size), making the rows of
 * this worker's endpoints already claimed where the claim statement could
 * take nothing older for their endpoint (reader.c), and append those to
 * out.  Returns how many it claimed; *left, how many rows of this worker's
 * endpoints it left to the claim statement.
 */
static int
read_new_events(int limit, dlist_head *out, const EndpointLoadSnapshot *load,
				QueueClaimTurn *t, int *left)
{
	ReaderClaim rc;

	*left = 0;
	read_claim_arguments(&rc, limit, load, out);
	t->events_read = reader_read_events(read_page_size(limit), &ordered_endpoints, &t->more_events, &rc);
	rows_per_event = schedule_rows_per_event(rows_per_event, t->events_read, rc.made);
	*left = rc.left;
	return rc.n_claimed;
}

/* Is any of the deliveries claimed an ordered endpoint's? */
static bool
claims_ordered(dlist_head *claimed)
{
	dlist_iter	iter;

	dlist_foreach(iter, claimed)
	{
		if (dlist_container(Delivery, node, iter.cur)->ordered)
			return true;
	}
	return false;
}

/*
 * Claim a batch of due deliveries and append them to out.  load holds the
 * endpoints the worker is sending to; held, the deliveries whose outcome it
 * has not recorded yet.  New events are read first (read_new_events); t
 * says how many, whether more may wait, and whether this claim filled its
 * limit.  The rows read may be for other workers' endpoints: they are
 * woken once the rows are committed.
 *
 * The read makes rows already claimed as first attempts, where the claim
 * statement could take nothing older for their endpoint: at full rate that
 * saves the claim's UPDATE of each row, and at one event per turn the claim
 * statement.  The claim statement runs after it when the worker says
 * something besides new events may be due (t->claim_all: a retry's time
 * came, outcomes freed a slot, the worker just started, the last claim
 * statement filled its limit, or neither the claim statement nor the
 * next-due query looked at due rows for SCHEDULE_CLAIM_SWEEP_MS), and then
 * the read takes at most half the room, so that the oldest due rows of
 * other endpoints get the rest however busy the read is; or when the read
 * claimed nothing, left rows of this worker's endpoints to it, or more
 * events may wait.  What a commit of another kind made due (retry(),
 * replay(), an endpoint's update) wakes the worker: its turn reads no new
 * event, so the claim statement runs.
 *
 * Returns how many were claimed, or -1 without touching the queue when the
 * extension is not there at our version (*state says why).
 */
int
queue_claim(int limit, dlist_head *out, const EndpointLoadSnapshot *load,
			int n_held, Delivery **held, ExtensionState *state, QueueClaimTurn *t)
{
	int			n;
	int			left;
	bool		ordered;

	begin_work("claiming due deliveries");
	*state = version_gate_check();
	if (*state != EXTENSION_READY)
	{
		end_work();
		return -1;
	}
	unseal_cache_check_key();

	/*
	 * New events first (reader.c): the transaction's first statement, before
	 * the claim that takes the rows it makes.  Any of the database's workers
	 * may read; the rows may be for other workers' endpoints.
	 */
	n = read_new_events(t->claim_all ? limit / 2 : limit, out, load, t, &left);
	t->claim_again = false;
	t->claimed_due = (t->claim_all || n == 0 || left > 0 || t->more_events) && n < limit;
	if (t->claimed_due)
	{
		int			got = claim_due(limit - n, out, load, n_held, held);

		t->claim_again = got == limit - n;
		n += got;
	}
	ordered = claims_ordered(out);
	if (!ordered)
		commit_without_waiting();
	end_work();
	unflushed_claim_end = XactLastCommitEnd;
	/* The order's guarantee holds whatever synchronous_commit says. */
	if (ordered && unflushed_claim_end != InvalidXLogRecPtr)
		XLogFlush(unflushed_claim_end);
	if (t->events_read > 0 && n_workers > 1)
		(void) webhook_wake_worker(MyDatabaseId);
	return n;
}

/*
 * Retention and auto-disable, run by the worker after recording outcomes
 * (never when idle): empty old generations of the queue, and deactivate
 * endpoints that have failed for longer than webhook.disable_after.
 */
void
queue_housekeeping(bool had_failures)
{
	static TimestampTz last_purge = 0;
	TimestampTz now = GetCurrentTimestamp();
	int			ret;

	if (had_failures && webhook_disable_after_s > 0)
	{
		Oid			type = FLOAT8OID;
		Datum		value = Float8GetDatum((double) webhook_disable_after_s);

		begin_work("disabling failing endpoints");
		wait_briefly_for_locks();
		ret = SPI_execute_with_args("SELECT webhook._disable_failing_endpoints(pg_catalog.make_interval(secs => $1))",
									1, &type, &value, NULL, false, 1);
		if (ret != SPI_OK_SELECT)
			elog(ERROR, "could not disable failing endpoints: %s", SPI_result_code_string(ret));
		end_work();
	}

	if (webhook_retention_succeeded_s > 0 &&
		TimestampDifferenceExceeds(last_purge, now, retention_turn_ms()))
	{
		last_purge = now;
		begin_work("emptying old queue generations");
		rotate_generations();
		end_work();
	}
}

/*
 * How often retention takes its turn: a quarter of the succeeded retention,
 * between a second and a minute.  (Generations last half of it: see
 * rotate_generations.)
 */
static long
retention_turn_ms(void)
{
	return Min(Max((long) webhook_retention_succeeded_s * 250L, 1000L), 60 * 1000L);
}

/*
 * Retention's turn (webhook._rotate_generations): empty the old queue
 * generations that ended before the succeeded cutoff, and start a new one
 * every half of the succeeded retention, so that a finished delivery goes
 * between one and one and a half retentions after it finished.  Every
 * worker takes turns (one whose endpoints are idle never gets here); they
 * never wait for each other.  Failed deliveries younger than their own
 * retention (0: kept forever) move on with the current generation.
 */
static void
rotate_generations_sql(void *arg)
{
	Oid			types[3] = {FLOAT8OID, FLOAT8OID, FLOAT8OID};
	Datum		values[3];
	int			ret;

	values[0] = Float8GetDatum((double) webhook_retention_succeeded_s);
	values[1] = Float8GetDatum(webhook_retention_failed_s > 0 ? (double) webhook_retention_failed_s : 1e10);
	values[2] = Float8GetDatum((double) webhook_retention_succeeded_s / 2);
	ret = SPI_execute_with_args("SELECT webhook._rotate_generations("
								"pg_catalog.now() - pg_catalog.make_interval(secs => $1),"
								"pg_catalog.now() - pg_catalog.make_interval(secs => $2),"
								"pg_catalog.make_interval(secs => $3))",
								3, types, values, NULL, false, 1);
	if (ret != SPI_OK_SELECT)
		elog(ERROR, "could not rotate the queue's generations: %s", SPI_result_code_string(ret));
}

/*
 * Take retention's turn in a subtransaction: a turn that fails (a lock held
 * past lock_timeout, a generations table someone changed by hand) is
 * reported and tried again next turn, and never stops the deliveries.
 */
static void
rotate_generations(void)
{
	ErrorData  *edata;

	wait_briefly_for_locks();
	edata = webhook_try_in_subtransaction(rotate_generations_sql, NULL);
	if (edata != NULL)
		ereport(WARNING,
				(errcode(edata->sqlerrcode),
				 errmsg("webhook retention could not empty old queue generations: %s", edata->message),
				 edata->hint ? errhint("%s", edata->hint) : 0));
}

/* A response body as valid text for the log, whatever the receiver sent. */
static Datum
response_text(Delivery *d)
{
	char	   *resp = pnstrdup(d->response, d->response_len);

	for (size_t k = 0; k < d->response_len; k++)
		if (resp[k] == '\0')
			resp[k] = ' ';
	resp[pg_mbcliplen(resp, d->response_len, d->response_len)] = '\0';
	if (pg_verifymbstr(resp, strlen(resp), true))
		return CStringGetTextDatum(resp);
	return CStringGetTextDatum("(response body is not valid text)");
}

typedef struct RecordRows
{
	Delivery  **rows;
	int			n;
} RecordRows;

/* The record statement's arguments, in order: their types and element types. */
#define RECORD_NARGS 15
static const Oid record_argtypes[RECORD_NARGS] = {INT8ARRAYOID, INT4ARRAYOID, TEXTARRAYOID,
	TIMESTAMPTZARRAYOID, TIMESTAMPTZARRAYOID, FLOAT8ARRAYOID, INT4ARRAYOID, TEXTARRAYOID, TEXTARRAYOID,
TEXTARRAYOID, TEXTARRAYOID, INT2ARRAYOID, INT8ARRAYOID, UUIDARRAYOID, BOOLARRAYOID};
static const Oid record_elemtypes[RECORD_NARGS] = {INT8OID, INT4OID, TEXTOID, TIMESTAMPTZOID,
	TIMESTAMPTZOID, FLOAT8OID, INT4OID, TEXTOID, TEXTOID, TEXTOID, TEXTOID, INT2OID, INT8OID,
UUIDOID, BOOLOID};

/* Write some outcomes with the saved record statement. */
static void
record_rows(void *arg)
{
	RecordRows *r = (RecordRows *) arg;
	Datum	   *cols[RECORD_NARGS];
	bool	   *nulls[RECORD_NARGS];
	Datum		values[RECORD_NARGS];
	int			n = r->n;
	int			ret;
	static const char *status_names[] = {"pending", "succeeded", "failed"};

	for (int c = 0; c < RECORD_NARGS; c++)
	{
		cols[c] = palloc(sizeof(Datum) * n);
		nulls[c] = palloc0(sizeof(bool) * n);
	}
	for (int i = 0; i < n; i++)
	{
		Delivery   *d = r->rows[i];

		cols[0][i] = Int64GetDatum(d->id);
		cols[1][i] = Int32GetDatum(d->attempt);
		cols[2][i] = CStringGetTextDatum(status_names[d->status]);
		cols[3][i] = TimestampTzGetDatum(d->next_attempt_at);
		nulls[3][i] = d->status != DELIVERY_PENDING;
		cols[4][i] = TimestampTzGetDatum(d->attempted_at);
		cols[5][i] = Float8GetDatum(d->duration_ms);
		cols[6][i] = Int32GetDatum((int32) d->status_code);
		nulls[6][i] = d->status_code <= 0;
		cols[7][i] = d->error_class != ERROR_CLASS_NONE ?
			CStringGetTextDatum(webhook_error_class_name(d->error_class)) : (Datum) 0;
		nulls[7][i] = d->error_class == ERROR_CLASS_NONE;
		cols[8][i] = d->error ? CStringGetTextDatum(d->error) : (Datum) 0;
		nulls[8][i] = d->error == NULL;
		cols[9][i] = d->response_len > 0 ? response_text(d) : (Datum) 0;
		nulls[9][i] = d->response_len == 0;
		cols[10][i] = CStringGetTextDatum(d->url);
		cols[11][i] = Int16GetDatum(d->gen);
		cols[12][i] = Int64GetDatum(d->endpoint_id);
		cols[13][i] = DirectFunctionCall1(uuid_in, CStringGetDatum(d->event_id));
		cols[14][i] = BoolGetDatum(d->first_attempt);
	}
	for (int c = 0; c < RECORD_NARGS; c++)
		values[c] = make_array(cols[c], nulls[c], n, record_elemtypes[c]);
	ret = webhook_execute_by_probes(webhook_prepare_once(&record_plan, record_sql, RECORD_NARGS,
														 (Oid *) record_argtypes),
									values, NULL, false, 0);
	if (ret != SPI_OK_INSERT)
		elog(ERROR, "could not record delivery outcomes: %s", SPI_result_code_string(ret));
}

/* Write one outcome on its own; false if that fails too. */
static bool
record_alone(Delivery *d)
{
	RecordRows	one = {&d, 1};
	ErrorData  *edata = webhook_try_in_subtransaction(record_rows, &one);

	if (edata == NULL)
		return true;
	FreeErrorData(edata);
	return false;
}

typedef struct EndpointIds
{
	int64	   *ids;
	int			n;
} EndpointIds;

/* Deactivate endpoints whose receiver answered 410 Gone. */
static void
deactivate_endpoints(void *arg)
{
	EndpointIds *e = (EndpointIds *) arg;
	Oid			type = INT8ARRAYOID;
	Datum	   *ids = palloc(sizeof(Datum) * e->n);
	Datum		value;
	int			ret;

	for (int i = 0; i < e->n; i++)
		ids[i] = Int64GetDatum(e->ids[i]);
	value = make_array(ids, NULL, e->n, INT8OID);
	ret = SPI_execute_plan(webhook_prepare_once(&deactivate_plan, deactivate_sql, 1, &type), &value, NULL, false, 0);
	if (ret != SPI_OK_UPDATE)
		elog(ERROR, "could not deactivate endpoints: %s", SPI_result_code_string(ret));
}

/*
 * Deactivate the endpoints of recorded 410s; one that cannot be updated
 * stays active, and its next 410 tries again.
 */
static void
deactivate_gone(Delivery **done, int n, const bool *recorded)
{
	EndpointIds all = {palloc(sizeof(int64) * Max(n, 1)), 0};
	ErrorData  *edata;

	for (int i = 0; i < n; i++)
		if (recorded[i] && done[i]->deactivate_endpoint)
			all.ids[all.n++] = done[i]->endpoint_id;
	if (all.n == 0 || (edata = webhook_try_in_subtransaction(deactivate_endpoints, &all)) == NULL)
		return;
	FreeErrorData(edata);
	for (int i = 0; i < all.n; i++)
	{
		EndpointIds one = {&all.ids[i], 1};

		if ((edata = webhook_try_in_subtransaction(deactivate_endpoints, &one)) == NULL)
			continue;
		ereport(WARNING,
				(errcode(edata->sqlerrcode),
				 errmsg("could not deactivate webhook endpoint %lld after its receiver answered 410 Gone: %s",
						(long long) all.ids[i], edata->message)));
		FreeErrorData(edata);
	}
}

/*
 * The current transaction commits without waiting for its WAL to reach
 * disk: the worker goes on at once instead of waiting for an fsync.  The
 * record transaction always does; a claim does unless it took an ordered
 * delivery (queue_claim).  Such a claim is made durable just after its
 * requests leave (queue_flush_claim), which also flushes every outcome
 * recorded before it.  So what a server crash (kill -9 of any process
 * included) can lose is the outcomes of the last moments with no claim
 * flushed after them, and the last claim, whose requests had just left:
 * their deliveries are still claimed and taken over, or due again, or
 * their events are read again, and they are sent again, as requests cut
 * off in flight are.  A worker that ends without a crash (an error,
 * pg_terminate_backend) loses nothing: the WAL writer flushes what it
 * committed.  Order holds: an ordered key's next delivery is claimed only
 * after the outcome before it is recorded, and that claim is flushed
 * before its requests leave, so the outcome is durable first.
 */
static void
commit_without_waiting(void)
{
	(void) set_config_option("synchronous_commit", "off", PGC_USERSET, PGC_S_SESSION,
							 GUC_ACTION_LOCAL, true, 0, false);
}

/*
 * Make the last claim durable once its requests have left, as its commit
 * would have before (commit_without_waiting): flushed, and received by a
 * synchronous standby, unless synchronous_commit (the setting's own value)
 * asks for neither.  The fsync then overlaps the requests' round trip
 * instead of coming before it.  A claim that started nothing is left to
 * the WAL writer.  A claim of an ordered delivery was flushed before its
 * requests left, whatever the setting (queue_claim): this changes nothing.
 */
void
queue_flush_claim(bool sent)
{
	if (sent && unflushed_claim_end != InvalidXLogRecPtr &&
		synchronous_commit > SYNCHRONOUS_COMMIT_OFF)
	{
		XLogFlush(unflushed_claim_end);
		SyncRepWaitForLSN(unflushed_claim_end, true);
	}
	unflushed_claim_end = InvalidXLogRecPtr;
}

/*
 * Write the outcomes of finished requests: a batch in one statement or, when
 * that fails, each on its own, so that one row's failure keeps only that
 * outcome unrecorded.  recorded[i] says which were written; returns how many.
 */
int
queue_record(Delivery **done, int n, bool *recorded)
{
	RecordRows	all = {done, n};
	ErrorData  *edata;
	int			n_recorded = 0;

	begin_work("recording delivery outcomes");
	wait_briefly_for_locks();
	commit_without_waiting();
	edata = webhook_try_in_subtransaction(record_rows, &all);
	if (edata == NULL)
	{
		for (int i = 0; i < n; i++)
			recorded[i] = true;
		n_recorded = n;
	}
	else
	{
		ereport(WARNING,
				(errcode(edata->sqlerrcode),
				 errmsg("could not record %d delivery outcomes: %s", n, edata->message),
				 errdetail("Each outcome is recorded on its own; those that fail are kept and tried again later.")));
		FreeErrorData(edata);
		for (int i = 0; i < n; i++)
		{
			recorded[i] = n > 1 && record_alone(done[i]);
			n_recorded += recorded[i];
		}
	}
	deactivate_gone(done, n, recorded);
	end_work();
	return n_recorded;
}

/*
 * When the next delivery comes due, so that the worker can sleep exactly
 * until then; 0 when nothing is pending.  busy_ids are the endpoints that
 * can take nothing now; rates[i] receives the current rate limit of
 * busy_ids[i] (0: none, or the endpoint is gone or inactive).
 */
TimestampTz
queue_next_due(int n_busy, int64 *busy_ids, double *rates)
{
	Oid			types[3] = {INT8ARRAYOID, INT4OID, INT4OID};
	Datum		values[3];
	Datum	   *ids = palloc(sizeof(Datum) * Max(n_busy, 1));
	TimestampTz result = 0;
	int			ret;

	for (int i = 0; i < n_busy; i++)
		ids[i] = Int64GetDatum(busy_ids[i]);

	begin_work("finding the next due delivery");
	values[0] = make_array(ids, NULL, n_busy, INT8OID);
	values[1] = Int32GetDatum(n_workers);
	values[2] = Int32GetDatum(my_worker);
	ret = webhook_execute_by_probes(webhook_prepare_once(ordered_endpoints ? &next_due_plan : &next_due_unordered_plan,
														 next_due_sql(ordered_endpoints), 3, types),
									values, NULL, true, 1);
	if (ret != SPI_OK_SELECT || SPI_processed != 1)
		elog(ERROR, "could not find the next due delivery: %s", SPI_result_code_string(ret));
	{
		HeapTuple	tuple = SPI_tuptable->vals[0];
		TupleDesc	desc = SPI_tuptable->tupdesc;
		bool		isnull;
		Datum		due = SPI_getbinval(tuple, desc, 1, &isnull);
		Datum	   *elems;
		int			nelems;

		if (!isnull)
			result = DatumGetTimestampTz(due);
		deconstruct_array(DatumGetArrayTypeP(SPI_getbinval(tuple, desc, 2, &isnull)),
						  FLOAT8OID, 8, FLOAT8PASSBYVAL, TYPALIGN_DOUBLE, &elems, NULL, &nelems);
		for (int i = 0; i < n_busy && i < nelems; i++)
			rates[i] = DatumGetFloat8(elems[i]);
	}
	end_work();
	pfree(ids);
	return result;
}
