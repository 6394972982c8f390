/*
 * reader.c
 *		The worker's read of new events (webhook._read_events): the events
 *		committed since the last read, found by transaction snapshots as
 *		PgQ's consumers find theirs, fanned out into delivery_state rows.
 *
 * Applications' transactions only INSERT into webhook.events.  The reader
 * takes the events whose transactions became visible since its last read:
 * those visible in a new snapshot (the window's end) and not in the done
 * one (webhook._window_events).  No event is skipped when a transaction
 * commits late with an older id: its txid stays in the done snapshot's
 * in-progress list until it ends, and then falls into the next window.
 *
 * The statements run here, as saved plans, rather than in PL/pgSQL: the two
 * function layers (with their search_path settings) cost the idle worker
 * more than the statements themselves at every wake-up.
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "utils/array.h"
#include "fmgr.h"
#include "utils/builtins.h"

#include "reader.h"
#include "spi_util.h"

PG_FUNCTION_INFO_V1(webhook_read_events);

/*
 * The position, locked: other workers of the database take turns behind
 * it.  The window's end is taken by the next statement, whose snapshot
 * begins after the lock was granted and so sees what the previous holder
 * committed.
 */
static const char *position_sql =
"SELECT p.done_snapshot, p.window_snapshot, p.after_txid, p.after_id"
"  FROM webhook.queue_positions p WHERE p.worker = 0 FOR UPDATE";

/*
 * The window's end (an open window's, or the current snapshot), whether it
 * differs from the done snapshot, whether restored events wait to be
 * settled, and whether any active endpoint has a filter.
 */
static const char *window_sql =
"SELECT w.cur,"
"       pg_catalog.pg_snapshot_xmin(w.cur) <> pg_catalog.pg_snapshot_xmin($2)"
"         OR pg_catalog.pg_snapshot_xmax(w.cur) <> pg_catalog.pg_snapshot_xmax($2),"
"       EXISTS (SELECT 1 FROM webhook.restored_events),"
"       EXISTS (SELECT 1 FROM webhook.endpoints ep WHERE ep.active AND ep.filter IS NOT NULL)"
"  FROM (SELECT coalesce($1, pg_catalog.pg_current_snapshot()) AS cur) w";

/*
 * Fan one page of a window out into pending delivery_state rows, one per
 * active endpoint subscribed to each event whose filter the payload passes
 * (the active endpoints read once, then matched with each event),
 * in queue order (ordered endpoints deliver by id, per ordering key), due
 * at the event's deliver_at if later.  A filter that cannot judge an event
 * (unknown, or an error it raises) sends it nowhere, and counts in the
 * endpoint's state (webhook.endpoint_health).  With $6 (safe), each filter
 * is evaluated on its own (webhook._filter_verdict), so that one that
 * raises even with silent => true costs only its own event.
 *
 * With $13, deliveries are made already claimed, as the claim statement
 * would claim them, when the claim could take nothing older for their
 * endpoint: as webhook.first_attempts rows, which the record turns into
 * their delivery_state rows once their outcome is known.
 * That is, for the calling worker's ($11 workers, $12 its number)
 * unordered endpoints without a rate limit, with no pending delivery due
 * and unclaimed (or its claim lapsed), rows due now, oldest first, within
 * each endpoint's free slots ($9 the default cap, $7/$8 the endpoints with
 * requests in flight and how many) and $10 in all.  What the claim would
 * have to order against older rows is left to it.
 *
 * Returns (fan_out_result) the rows made claimed, with what the worker
 * needs to send them, so that they cost no claim statement; the number of
 * events in the page and the last one's (txid, id); whether any active
 * endpoint is ordered (seen in the snapshot that made the rows, so that
 * rows made for an ordered endpoint are never claimed as if none were);
 * how many rows of the worker's endpoints it left to the claim, and how
 * many it made in all.  $1 done, $2 the window's end, $3 and $4 the
 * cursor, $5 the page's size.
 */
static const char *fan_out_head =
"WITH page AS MATERIALIZED ("
"    SELECT w.txid, w.id, w.event_type, w.gen, w.payload, w.deliver_at, w.ordering_key"
"      FROM webhook._window_events($1, $2, $3, $4, $5) w"
"), active AS MATERIALIZED ("
"    SELECT ep.id, ep.event_types, ep.filter FROM webhook.endpoints ep WHERE ep.active"
"), matched AS ("
"    SELECT p.txid, p.id, p.gen, p.deliver_at, p.ordering_key, ep.id AS endpoint_id,"
"           CASE WHEN ep.filter IS NULL THEN true"
"                WHEN $6 THEN webhook._filter_verdict(ep.filter, p.payload)"
"                ELSE pg_catalog.jsonb_path_match(p.payload, ep.filter, '{}', true) END AS passes"
"      FROM page p JOIN active ep ON webhook._subscribed(ep.event_types, p.event_type)"
"), open_endpoint AS MATERIALIZED ("
"    SELECT ep.id, coalesce(ep.max_in_flight, $9) - coalesce(b.in_flight, 0) AS room"
"      FROM (SELECT DISTINCT m.endpoint_id FROM matched m WHERE $13 AND m.passes) x"
"      JOIN webhook.endpoints ep ON ep.id = x.endpoint_id"
"      LEFT JOIN ROWS FROM (pg_catalog.unnest($7::bigint[]), pg_catalog.unnest($8::integer[]))"
"           AS b(endpoint_id, in_flight) ON b.endpoint_id = ep.id"
"     WHERE NOT ep.ordered AND ep.rate_limit_per_s IS NULL AND webhook._worker_of(ep.id, $11) = $12"
"       AND NOT EXISTS (SELECT 1 FROM webhook.delivery_state d"
"                        WHERE d.endpoint_id = ep.id AND d.status = 'pending' AND d.next_attempt_at <= pg_catalog.now()"
"                          AND (d.claimed_at IS NULL"
"                               OR d.claimed_at < pg_catalog.now() - webhook._claim_lease(" LEASE_TIMEOUT_MS "))"
"                        ORDER BY d.next_attempt_at LIMIT 1)"
"), claimable AS ("
"    SELECT m.*, o.room, o.id IS NOT NULL AND (m.deliver_at IS NULL OR m.deliver_at <= pg_catalog.now()) AS may"
"      FROM matched m LEFT JOIN open_endpoint o ON o.id = m.endpoint_id"
"     WHERE m.passes"
"), ranked AS ("
"    SELECT c.*,"
"           pg_catalog.row_number() OVER (PARTITION BY c.may, c.endpoint_id ORDER BY c.txid, c.id) AS k,"
"           pg_catalog.row_number() OVER (PARTITION BY c.may ORDER BY c.txid, c.id, c.endpoint_id) AS g"
"      FROM claimable c"
"), decided AS ("
"    SELECT r.*, r.may AND r.k <= r.room AND r.g <= $10 AS taken FROM ranked r"
"), made AS ("
"    INSERT INTO webhook.delivery_state (event_id, endpoint_id, gen, next_attempt_at, ordering_key)"
"    SELECT r.id, r.endpoint_id, r.gen, greatest(r.deliver_at, pg_catalog.now()), coalesce(r.ordering_key, '')"
"      FROM decided r WHERE NOT r.taken"
"     ORDER BY r.txid, r.id, r.endpoint_id"
"    RETURNING endpoint_id"
"), sent AS ("
"    INSERT INTO webhook.first_attempts (event_id, endpoint_id, gen, ordering_key)"
"    SELECT r.id, r.endpoint_id, r.gen, coalesce(r.ordering_key, '')"
"      FROM decided r WHERE r.taken"
"     ORDER BY r.txid, r.id, r.endpoint_id"
"    RETURNING id, gen, endpoint_id, event_id, 0 AS attempts"
"), unjudged AS ("
"    INSERT INTO webhook.endpoint_state AS s (endpoint_id, filter_errors, last_filter_error_at, last_filter_error_event)"
"    SELECT m.endpoint_id, count(*), pg_catalog.now(), (pg_catalog.array_agg(m.id ORDER BY m.txid DESC, m.id DESC))[1]"
"      FROM matched m WHERE m.passes IS NULL"
"     GROUP BY m.endpoint_id"
"    ON CONFLICT (endpoint_id) DO UPDATE"
"       SET filter_errors = s.filter_errors + excluded.filter_errors,"
"           last_filter_error_at = excluded.last_filter_error_at,"
"           last_filter_error_event = excluded.last_filter_error_event"
")";

/*
 * fan_out_head's result: the rows made claimed, each with the caller's
 * columns over d (the row), ep (its endpoint) and ev (its event), or one
 * row of NULLs when there are none; and in every row the page's summary.
 */
static const char *fan_out_result =
"SELECT %s, s.n_read, s.last_txid, s.last_id, s.any_ordered, s.n_left, s.n_made"
"  FROM (SELECT (SELECT count(*) FROM page)::integer AS n_read, l.txid AS last_txid, l.id AS last_id,"
"               EXISTS (SELECT 1 FROM webhook.endpoints ep WHERE ep.active AND ep.ordered) AS any_ordered,"
"               (SELECT count(*) FROM made x WHERE webhook._worker_of(x.endpoint_id, $11) = $12)::integer AS n_left,"
"               ((SELECT count(*) FROM made x) + (SELECT count(*) FROM sent x))::integer AS n_made"
"          FROM (SELECT 1) one"
"          LEFT JOIN (SELECT p.txid, p.id FROM page p ORDER BY p.txid DESC, p.id DESC LIMIT 1) l ON true) s"
"  LEFT JOIN (sent d JOIN webhook.endpoints ep ON ep.id = d.endpoint_id"
"                    JOIN webhook.events ev ON ev.id = d.event_id AND ev.gen = d.gen)"
"         ON true"
" ORDER BY d.id";

/* A full page keeps the window open, with the cursor at its last event. */
static const char *keep_open_sql =
"UPDATE webhook.queue_positions p"
"   SET window_snapshot = $1, after_txid = $2, after_id = $3, updated_at = pg_catalog.now()"
" WHERE p.worker = 0";

/* A short page closes the window: every event visible in its end is read. */
static const char *close_sql =
"UPDATE webhook.queue_positions p"
"   SET done_snapshot = $1, window_snapshot = NULL, after_txid = '0',"
"       after_id = '00000000-0000-0000-0000-000000000000', updated_at = pg_catalog.now()"
" WHERE p.worker = 0";

static SPIPlanPtr position_plan = NULL;
static SPIPlanPtr window_plan = NULL;
static SPIPlanPtr fan_out_plan = NULL;
static SPIPlanPtr fan_out_claim_plan = NULL;
static SPIPlanPtr keep_open_plan = NULL;
static SPIPlanPtr close_plan = NULL;

/* Where reading stands, and one page's work (fan_out_page's arguments). */
typedef struct ReadState
{
	Datum		done;			/* pg_snapshot: every event visible in it is
								 * read */
	Datum		cur;			/* pg_snapshot: the window's end */
	Datum		after_txid;		/* xid8: the cursor inside an open window */
	Datum		after_id;		/* uuid */
	bool		window_open;	/* the position had a window_snapshot */
	int			page;			/* at most this many events */
	bool		safe;			/* evaluate each filter on its own */
	int			n;				/* returned: events in the page */
	Datum		last_txid;		/* returned: the page's last event */
	Datum		last_id;
	bool		ordered;		/* returned: some active endpoint is ordered */
	ReaderClaim *claim;			/* rows made claimed, and what was left */
	SPITupleTable *claimed;		/* returned: those rows (NULL: none) */
} ReadState;

/* A column's value, copied out of SPI's memory so that it outlives it. */
static Datum
keep_datum(HeapTuple tuple, TupleDesc desc, int column, bool *isnull)
{
	Form_pg_attribute attr = TupleDescAttr(desc, column - 1);
	Datum		value = SPI_getbinval(tuple, desc, column, isnull);

	return *isnull ? (Datum) 0 : SPI_datumTransfer(value, attr->attbyval, attr->attlen);
}

/*
 * Lock the position row and read it; its absence is an error a DBA can
 * fix (it names the INSERT that starts reading from now).
 */
static void
read_position(ReadState *r)
{
	HeapTuple	tuple;
	TupleDesc	desc;
	bool		isnull;
	int			ret;

	ret = SPI_execute_plan(webhook_prepare_once(&position_plan, position_sql, 0, NULL), NULL, NULL, false, 1);
	if (ret != SPI_OK_SELECT)
		elog(ERROR, "could not read the queue's position: %s", SPI_result_code_string(ret));
	if (SPI_processed != 1)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("webhook.queue_positions has no row for worker 0"),
				 errhint("Do not delete rows of webhook.queue_positions; INSERT INTO webhook.queue_positions (worker, done_snapshot) VALUES (0, pg_current_snapshot()) starts reading from now.")));
	tuple = SPI_tuptable->vals[0];
	desc = SPI_tuptable->tupdesc;
	r->done = keep_datum(tuple, desc, 1, &isnull);
	r->cur = keep_datum(tuple, desc, 2, &isnull);
	r->window_open = !isnull;
	r->after_txid = keep_datum(tuple, desc, 3, &isnull);
	r->after_id = keep_datum(tuple, desc, 4, &isnull);
}

/*
 * Take the window's end.  Returns whether the position must be written
 * even when nothing is read: its end differs from done's.  *filters says
 * whether any active endpoint has a filter; restored events are settled
 * first (webhook._settle_restored).
 */
static bool
open_window(ReadState *r, bool *filters)
{
	Oid			types[2] = {PG_SNAPSHOTOID, PG_SNAPSHOTOID};
	Datum		values[2] = {r->cur, r->done};
	char		nulls[2] = {r->window_open ? ' ' : 'n', ' '};
	HeapTuple	tuple;
	TupleDesc	desc;
	bool		isnull;
	bool		moved;
	int			ret;

	ret = SPI_execute_plan(webhook_prepare_once(&window_plan, window_sql, 2, types), values, nulls, false, 1);
	if (ret != SPI_OK_SELECT || SPI_processed != 1)
		elog(ERROR, "could not take the queue's window: %s", SPI_result_code_string(ret));
	tuple = SPI_tuptable->vals[0];
	desc = SPI_tuptable->tupdesc;
	r->cur = keep_datum(tuple, desc, 1, &isnull);
	moved = DatumGetBool(SPI_getbinval(tuple, desc, 2, &isnull));
	*filters = DatumGetBool(SPI_getbinval(tuple, desc, 4, &isnull));
	if (DatumGetBool(SPI_getbinval(tuple, desc, 3, &isnull)))
	{
		ret = SPI_execute("SELECT webhook._settle_restored()", false, 1);
		if (ret != SPI_OK_SELECT)
			elog(ERROR, "could not settle restored events: %s", SPI_result_code_string(ret));
	}
	return moved;
}

/*
 * The fan-out statement with the given claimed columns, built once per
 * process for each of its two users (the worker's, and d.id alone for
 * webhook._read_events, which makes nothing claimed).
 */
static SPIPlanPtr
fan_out_prepared(const char *columns, int nargs, Oid *types)
{
	SPIPlanPtr *plan = columns ? &fan_out_claim_plan : &fan_out_plan;

	if (*plan == NULL)
	{
		char	   *sql = psprintf("%s%s", fan_out_head, fan_out_result);

		sql = psprintf(sql, columns ? columns : "d.id");
		webhook_prepare_once(plan, sql, nargs, types);
	}
	return *plan;
}

/* Fan one page out (fan_out_head); a callback for a subtransaction. */
static void
fan_out_page(void *arg)
{
	ReadState  *r = (ReadState *) arg;
	ReaderClaim *c = r->claim;
	Oid			types[13] = {PG_SNAPSHOTOID, PG_SNAPSHOTOID, XID8OID, UUIDOID, INT4OID, BOOLOID,
	INT8ARRAYOID, INT4ARRAYOID, INT4OID, INT4OID, INT4OID, INT4OID, BOOLOID};
	Datum		values[13] = {r->done, r->cur, r->after_txid, r->after_id,
		Int32GetDatum(r->page), BoolGetDatum(r->safe),
		c->busy_ids, c->busy_counts, Int32GetDatum(c->default_cap), Int32GetDatum(c->limit),
	Int32GetDatum(c->workers), Int32GetDatum(c->me), BoolGetDatum(c->enabled)};
	HeapTuple	tuple;
	TupleDesc	desc;
	bool		isnull;
	int			ret;

	ret = webhook_execute_by_probes(fan_out_prepared(c->columns, 13, types), values, NULL, false, 0);
	if (ret != SPI_OK_SELECT || SPI_processed < 1)
		elog(ERROR, "could not read new events: %s", SPI_result_code_string(ret));
	tuple = SPI_tuptable->vals[0];
	desc = SPI_tuptable->tupdesc;
	r->n = DatumGetInt32(SPI_getbinval(tuple, desc, SPI_fnumber(desc, "n_read"), &isnull));
	r->last_txid = keep_datum(tuple, desc, SPI_fnumber(desc, "last_txid"), &isnull);
	r->last_id = keep_datum(tuple, desc, SPI_fnumber(desc, "last_id"), &isnull);
	r->ordered = DatumGetBool(SPI_getbinval(tuple, desc, SPI_fnumber(desc, "any_ordered"), &isnull));
	c->left = DatumGetInt32(SPI_getbinval(tuple, desc, SPI_fnumber(desc, "n_left"), &isnull));
	c->made = DatumGetInt32(SPI_getbinval(tuple, desc, SPI_fnumber(desc, "n_made"), &isnull));
	(void) SPI_getbinval(tuple, desc, 1, &isnull);
	r->claimed = isnull ? NULL : SPI_tuptable;
}

/*
 * Hand the rows made claimed to the caller (claim->take), once the page is
 * fanned out for good.  The caller may run SPI: the table is kept first.
 */
static void
take_claimed(ReadState *r)
{
	SPITupleTable *tuptable = r->claimed;
	ReaderClaim *c = r->claim;

	c->n_claimed = 0;
	if (tuptable == NULL)
		return;
	for (uint64 i = 0; i < tuptable->numvals; i++)
		c->take(tuptable->vals[i], tuptable->tupdesc, c->take_arg);
	c->n_claimed = (int) tuptable->numvals;
}

/*
 * Fan the page out.  While any active endpoint has a filter, a page on
 * which one raises is read again with each filter evaluated on its own:
 * one bad filter or payload never stops the reading.
 */
static void
fan_out(ReadState *r, bool filters)
{
	ErrorData  *edata;

	r->safe = false;
	if (!filters)
	{
		fan_out_page(r);
		return;
	}
	edata = webhook_try_in_subtransaction(fan_out_page, r);
	if (edata == NULL)
		return;
	FreeErrorData(edata);
	r->safe = true;
	fan_out_page(r);
}

/* Move the position on: past the page, or to the window's end. */
static void
move_position(ReadState *r, bool moved)
{
	int			ret;

	if (r->n >= r->page)
	{
		Oid			types[3] = {PG_SNAPSHOTOID, XID8OID, UUIDOID};
		Datum		values[3] = {r->cur, r->last_txid, r->last_id};

		ret = SPI_execute_plan(webhook_prepare_once(&keep_open_plan, keep_open_sql, 3, types),
							   values, NULL, false, 0);
	}
	else if (r->n > 0 || r->window_open || moved)
	{
		Oid			type = PG_SNAPSHOTOID;

		ret = SPI_execute_plan(webhook_prepare_once(&close_plan, close_sql, 1, &type),
							   &r->cur, NULL, false, 0);
	}
	else
		return;
	if (ret != SPI_OK_UPDATE)
		elog(ERROR, "could not move the queue's position: %s", SPI_result_code_string(ret));
}

/*
 * Read the next page of new events (at most page of them) into pending
 * delivery_state rows, and move the position on.  The worker runs it as
 * the first statement of a transaction: the window's end is then a
 * snapshot in which the worker's own transaction is not running yet, and
 * which sees every transaction committed so far.  A short page closes the
 * window (done := its end); a full one keeps it open with a cursor, so the
 * next call reads on from there.  Returns the number of events read, in
 * *ordered whether any active endpoint is ordered, and in *more whether
 * more events may wait already: after a full page, and after closing a
 * window opened by an earlier call.  Transactions that committed after
 * that window's end fall into the next window, and the wake-ups their
 * commits sent may have been spent on the turns between (wake.c): the
 * caller reads again rather than wait for another commit.  claim (NULL:
 * none) says which rows to make already claimed (fan_out_head's rule),
 * takes them, and receives how many rows it made and left to the claim.
 */
int
reader_read_events(int page, bool *ordered, bool *more, ReaderClaim *claim)
{
	ReadState	r;
	ReaderClaim none;
	bool		filters;
	bool		moved;

	memset(&r, 0, sizeof(r));
	r.page = page;
	if (claim == NULL)
	{
		memset(&none, 0, sizeof(none));
		none.busy_ids = PointerGetDatum(construct_empty_array(INT8OID));
		none.busy_counts = PointerGetDatum(construct_empty_array(INT4OID));
		none.workers = 1;
		none.take = NULL;
		claim = &none;
	}
	r.claim = claim;
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "could not connect to SPI");
	read_position(&r);
	moved = open_window(&r, &filters);
	fan_out(&r, filters);
	take_claimed(&r);
	move_position(&r, moved);
	SPI_finish();
	*ordered = r.ordered;
	*more = r.n >= page || r.window_open;
	return r.n;
}

/* webhook._read_events(page): the worker's read, for tests and by hand. */
Datum
webhook_read_events(PG_FUNCTION_ARGS)
{
	bool		ordered;
	bool		more;

	PG_RETURN_INT32(reader_read_events(PG_GETARG_INT32(0), &ordered, &more, NULL));
}
