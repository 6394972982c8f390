-- webhook 0.4.0 -> 0.5.0: the queue partitioned by generation; retention
-- empties whole generations (issue 13, third step).
--
-- webhook.events, webhook.delivery_state and webhook.delivery_log become
-- tables partitioned by generation (four partitions each), with a gen
-- column; webhook.queue_generations says which generation is current.
-- Retention (webhook._rotate_generations, run by the delivery workers)
-- starts a new generation every half of webhook.retention_succeeded and
-- empties old ones with TRUNCATE, moving what must outlive them into the
-- current one: no DELETE of old rows, and nothing left for vacuum.
--
-- The rows of 0.4.0's tables are copied into generation 0 (the current one)
-- with their ids, and the identity sequences go on from where they were.
-- Pending deliveries stay pending; events the worker had not read yet are
-- read as before (their txids are kept).  The views are rebound to the new
-- tables.  The foreign key from deliveries to events becomes a statement
-- trigger (deleting an event still deletes its deliveries).
--
-- This script copies every row of the queue once: on a large queue,
-- webhook.purge() before ALTER EXTENSION makes it shorter.

\echo Use "ALTER EXTENSION webhook UPDATE TO '0.5.0'" to load this file. \quit

------------------------------------------------------------------------------
-- 0.4.0's tables, set aside under other names (with their indexes and
-- sequences) until their rows are copied
------------------------------------------------------------------------------
ALTER TABLE webhook.delivery_state DROP CONSTRAINT delivery_state_event_id_fkey;
ALTER TABLE webhook.events RENAME TO events_v04;
ALTER TABLE webhook.events_v04 RENAME CONSTRAINT events_pkey TO events_v04_pkey;
ALTER INDEX webhook.events_idempotency_key_idx RENAME TO events_v04_idempotency_key_idx;
ALTER INDEX webhook.events_txid_idx RENAME TO events_v04_txid_idx;
ALTER TABLE webhook.delivery_state RENAME TO delivery_state_v04;
ALTER TABLE webhook.delivery_state_v04 RENAME CONSTRAINT delivery_state_pkey TO delivery_state_v04_pkey;
ALTER TABLE webhook.delivery_state_v04 RENAME CONSTRAINT delivery_state_endpoint_id_fkey TO delivery_state_v04_endpoint_id_fkey;
ALTER INDEX webhook.delivery_state_pending_by_endpoint_idx RENAME TO delivery_state_v04_pending_by_endpoint_idx;
ALTER INDEX webhook.delivery_state_event_idx RENAME TO delivery_state_v04_event_idx;
ALTER INDEX webhook.delivery_state_pending_in_order_idx RENAME TO delivery_state_v04_pending_in_order_idx;
ALTER SEQUENCE webhook.delivery_state_id_seq RENAME TO delivery_state_v04_id_seq;
ALTER TABLE webhook.delivery_log RENAME TO delivery_log_v04;
ALTER TABLE webhook.delivery_log_v04 RENAME CONSTRAINT delivery_log_pkey TO delivery_log_v04_pkey;
ALTER INDEX webhook.delivery_log_delivery_idx RENAME TO delivery_log_v04_delivery_idx;
ALTER INDEX webhook.delivery_log_attempted_at_idx RENAME TO delivery_log_v04_attempted_at_idx;
ALTER SEQUENCE webhook.delivery_log_id_seq RENAME TO delivery_log_v04_id_seq;

------------------------------------------------------------------------------
-- The partitioned tables, as a fresh install makes them
------------------------------------------------------------------------------
-- The queue's tables are partitioned by generation (gen): an application's
-- transaction writes into the current generation, and retention empties a
-- whole old generation with TRUNCATE (webhook._rotate_generations), so that
-- no DELETE of old rows, and no vacuum of them, keeps pace with the queue.
-- A delivery lives in its event's generation and its log rows in the
-- delivery's: one generation's three partitions hold a closed set.
CREATE TABLE webhook.queue_generations (
    gen      smallint PRIMARY KEY
             CONSTRAINT queue_generations_gen_check CHECK (gen BETWEEN 0 AND 3),
    -- When it became the current one; NULL: empty, not used since.
    began_at timestamptz,
    -- When it stopped being the current one; NULL while it is (exactly one
    -- generation has began_at set and ended_at NULL).
    ended_at timestamptz,
    -- The transaction that last moved kept rows out of it: it is truncated
    -- once no snapshot older than that is left.
    moved_xid xid8
);
COMMENT ON TABLE webhook.queue_generations IS 'the queue''s partitions: new events go to the current one (ended_at NULL); retention empties old ones whole';
INSERT INTO webhook.queue_generations (gen, began_at) VALUES (0, pg_catalog.now()), (1, NULL), (2, NULL), (3, NULL);

-- The generation new events go to: the queue tables' default, evaluated
-- as whoever writes a row (a role granted INSERT need not read this table).
CREATE FUNCTION webhook._current_generation()
RETURNS smallint LANGUAGE sql STABLE PARALLEL SAFE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
RETURN coalesce((SELECT g.gen FROM webhook.queue_generations g
                  WHERE g.began_at IS NOT NULL AND g.ended_at IS NULL
                  ORDER BY g.began_at DESC LIMIT 1), 0);

-- The queue.  An application's transaction writes one events row per event
-- and nothing per endpoint: the delivery worker reads committed events by
-- transaction snapshots (webhook.queue_positions, webhook._read_events),
-- matches them to endpoints and creates their delivery_state rows itself.
CREATE TABLE webhook.events (
    id              uuid NOT NULL DEFAULT webhook.uuid_v7(),
    event_type      text NOT NULL,
    payload         jsonb NOT NULL,
    idempotency_key text,
    created_at      timestamptz NOT NULL DEFAULT pg_catalog.now(),
    -- The writing transaction (top level): the worker reads an event once
    -- that transaction is visible in its snapshot.  0: never read (the
    -- event was settled when written, as pings and events from before 0.3.0).
    txid            xid8 NOT NULL DEFAULT pg_catalog.pg_current_xact_id(),
    gen             smallint NOT NULL DEFAULT webhook._current_generation(),
    CONSTRAINT events_pkey PRIMARY KEY (id, gen)
) PARTITION BY LIST (gen);
-- Most events have no idempotency key: index only those that do.  Unique
-- per generation; webhook._enqueue looks in the others first.
CREATE UNIQUE INDEX events_idempotency_key_idx ON webhook.events (idempotency_key, gen)
    WHERE idempotency_key IS NOT NULL;
-- The worker reads events in (txid, id) order, a window of transactions at a time.
CREATE INDEX events_txid_idx ON webhook.events (txid, id);
CREATE TABLE webhook.events_0 PARTITION OF webhook.events FOR VALUES IN (0);
CREATE TABLE webhook.events_1 PARTITION OF webhook.events FOR VALUES IN (1);
CREATE TABLE webhook.events_2 PARTITION OF webhook.events FOR VALUES IN (2);
CREATE TABLE webhook.events_3 PARTITION OF webhook.events FOR VALUES IN (3);
COMMENT ON TABLE webhook.events IS 'one row per event; id is the webhook-id header; the body sent is webhook._event_body(event_type, payload, created_at)';
COMMENT ON COLUMN webhook.events.txid IS 'the transaction that wrote the event; the delivery worker reads it once that transaction is visible';
COMMENT ON COLUMN webhook.events.gen IS 'the queue generation (partition) the event and its deliveries are in: webhook.queue_generations';

CREATE TABLE webhook.delivery_state (
    id               bigint GENERATED ALWAYS AS IDENTITY,
    event_id         uuid NOT NULL,
    endpoint_id      bigint REFERENCES webhook.endpoints (id) ON DELETE SET NULL,
    status           text NOT NULL DEFAULT 'pending'
                     CONSTRAINT delivery_state_status_check
                     CHECK (status IN ('pending', 'succeeded', 'failed')),
    -- The worker counts on from here: bounded so that the count never
    -- overflows (src/delivery.h, WEBHOOK_MAX_ATTEMPTS).
    attempts         integer NOT NULL DEFAULT 0
                     CONSTRAINT delivery_state_attempts_check CHECK (attempts BETWEEN 0 AND 1000000),
    next_attempt_at  timestamptz NOT NULL DEFAULT pg_catalog.now(),
    claimed_at       timestamptz,
    last_attempt_at  timestamptz,
    last_status_code integer,
    last_error       text,
    created_at       timestamptz NOT NULL DEFAULT pg_catalog.now(),
    completed_at     timestamptz,
    -- Its event's generation (the current one, for rows written by hand).
    gen              smallint NOT NULL DEFAULT webhook._current_generation(),
    CONSTRAINT delivery_state_pkey PRIMARY KEY (id, gen)
) PARTITION BY LIST (gen);
COMMENT ON TABLE webhook.delivery_state IS 'one row per (event, endpoint) the worker has read: the state of delivering that event there (read webhook.deliveries)';
COMMENT ON COLUMN webhook.delivery_state.claimed_at IS 'set while a delivery worker has the request in flight; the claim lapses after the endpoint''s timeout plus 30 s';

CREATE INDEX delivery_state_pending_by_endpoint_idx ON webhook.delivery_state (endpoint_id, next_attempt_at)
    WHERE status = 'pending';
CREATE INDEX delivery_state_event_idx ON webhook.delivery_state (event_id);
-- Ordered endpoints take their oldest pending delivery first.
CREATE INDEX delivery_state_pending_in_order_idx ON webhook.delivery_state (endpoint_id, id)
    WHERE status = 'pending';
-- Retention keeps failed deliveries longer than succeeded ones: it finds
-- them in an old generation by this (failures are few).
CREATE INDEX delivery_state_failed_idx ON webhook.delivery_state (completed_at)
    WHERE status = 'failed';
-- The worker claims due deliveries per endpoint, and sleeps until the earliest
-- one.  Claiming changes no indexed column, so it is a HOT update: leave room.
-- Dead index entries of finished deliveries slow every claim until vacuumed:
-- vacuum these queue tables after a fixed number of changes, not a fraction.
CREATE TABLE webhook.delivery_state_0 PARTITION OF webhook.delivery_state FOR VALUES IN (0)
    WITH (fillfactor = 80, autovacuum_vacuum_scale_factor = 0, autovacuum_vacuum_threshold = 20000,
          autovacuum_vacuum_insert_scale_factor = 0, autovacuum_vacuum_insert_threshold = 50000,
          autovacuum_vacuum_cost_delay = 0);
CREATE TABLE webhook.delivery_state_1 PARTITION OF webhook.delivery_state FOR VALUES IN (1)
    WITH (fillfactor = 80, autovacuum_vacuum_scale_factor = 0, autovacuum_vacuum_threshold = 20000,
          autovacuum_vacuum_insert_scale_factor = 0, autovacuum_vacuum_insert_threshold = 50000,
          autovacuum_vacuum_cost_delay = 0);
CREATE TABLE webhook.delivery_state_2 PARTITION OF webhook.delivery_state FOR VALUES IN (2)
    WITH (fillfactor = 80, autovacuum_vacuum_scale_factor = 0, autovacuum_vacuum_threshold = 20000,
          autovacuum_vacuum_insert_scale_factor = 0, autovacuum_vacuum_insert_threshold = 50000,
          autovacuum_vacuum_cost_delay = 0);
CREATE TABLE webhook.delivery_state_3 PARTITION OF webhook.delivery_state FOR VALUES IN (3)
    WITH (fillfactor = 80, autovacuum_vacuum_scale_factor = 0, autovacuum_vacuum_threshold = 20000,
          autovacuum_vacuum_insert_scale_factor = 0, autovacuum_vacuum_insert_threshold = 50000,
          autovacuum_vacuum_cost_delay = 0);

-- Deleting an event deletes its deliveries, as a foreign key with ON DELETE
-- CASCADE did before the queue was partitioned (a key into a partitioned
-- table would make each generation's TRUNCATE check the others).
CREATE FUNCTION webhook._events_deleted()
RETURNS trigger LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    DELETE FROM webhook.delivery_state d USING gone WHERE d.event_id = gone.id AND d.gen = gone.gen;
    RETURN NULL;
END;
$$;
CREATE TRIGGER events_deleted AFTER DELETE ON webhook.events
    REFERENCING OLD TABLE AS gone FOR EACH STATEMENT EXECUTE FUNCTION webhook._events_deleted();

CREATE TABLE webhook.delivery_log (
    id            bigint GENERATED ALWAYS AS IDENTITY,
    delivery_id   bigint NOT NULL,
    endpoint_id   bigint,
    event_id      uuid NOT NULL,
    attempt       integer NOT NULL,
    url           text NOT NULL,
    attempted_at  timestamptz NOT NULL,
    duration_ms   double precision NOT NULL,
    status_code   integer,
    error_class   text,
    error         text,
    response_body text,
    -- Its delivery's generation (the current one, for rows written by hand).
    gen           smallint NOT NULL DEFAULT webhook._current_generation(),
    CONSTRAINT delivery_log_pkey PRIMARY KEY (id, gen)
) PARTITION BY LIST (gen);
COMMENT ON TABLE webhook.delivery_log IS 'one row per HTTP attempt, written by the delivery worker';
COMMENT ON COLUMN webhook.delivery_log.error_class IS 'why the attempt failed (NULL: it succeeded), a name that stays the same across versions: one of webhook.error_classes()';
COMMENT ON COLUMN webhook.delivery_log.delivery_id IS 'the delivery attempted; a history row, so no foreign key: retention deletes log rows with their delivery';
COMMENT ON COLUMN webhook.delivery_log.endpoint_id IS 'the endpoint at the time; kept after the endpoint is deleted';

CREATE INDEX delivery_log_delivery_idx ON webhook.delivery_log (delivery_id);
CREATE INDEX delivery_log_attempted_at_idx ON webhook.delivery_log (attempted_at);
CREATE TABLE webhook.delivery_log_0 PARTITION OF webhook.delivery_log FOR VALUES IN (0);
CREATE TABLE webhook.delivery_log_1 PARTITION OF webhook.delivery_log FOR VALUES IN (1);
CREATE TABLE webhook.delivery_log_2 PARTITION OF webhook.delivery_log FOR VALUES IN (2);
CREATE TABLE webhook.delivery_log_3 PARTITION OF webhook.delivery_log FOR VALUES IN (3);

------------------------------------------------------------------------------
-- The rows, into generation 0 (before the restore trigger exists: these
-- events keep their txids)
------------------------------------------------------------------------------
INSERT INTO webhook.events (id, event_type, payload, idempotency_key, created_at, txid, gen)
SELECT id, event_type, payload, idempotency_key, created_at, txid, 0 FROM webhook.events_v04;
INSERT INTO webhook.delivery_state (id, event_id, endpoint_id, status, attempts, next_attempt_at, claimed_at,
                                    last_attempt_at, last_status_code, last_error, created_at, completed_at, gen)
OVERRIDING SYSTEM VALUE
SELECT id, event_id, endpoint_id, status, attempts, next_attempt_at, claimed_at,
       last_attempt_at, last_status_code, last_error, created_at, completed_at, 0
  FROM webhook.delivery_state_v04;
INSERT INTO webhook.delivery_log (id, delivery_id, endpoint_id, event_id, attempt, url, attempted_at,
                                  duration_ms, status_code, error_class, error, response_body, gen)
OVERRIDING SYSTEM VALUE
SELECT id, delivery_id, endpoint_id, event_id, attempt, url, attempted_at,
       duration_ms, status_code, error_class, error, response_body, 0
  FROM webhook.delivery_log_v04;
SELECT pg_catalog.setval(pg_catalog.pg_get_serial_sequence('webhook.delivery_state', 'id'), s.last_value, s.is_called)
  FROM webhook.delivery_state_v04_id_seq s;
SELECT pg_catalog.setval(pg_catalog.pg_get_serial_sequence('webhook.delivery_log', 'id'), s.last_value, s.is_called)
  FROM webhook.delivery_log_v04_id_seq s;

------------------------------------------------------------------------------
-- The views, rebound to the new tables (same definitions)
------------------------------------------------------------------------------
------------------------------------------------------------------------------
-- Health, for people in psql
------------------------------------------------------------------------------

-- Every delivery: the worker's delivery_state rows, and the deliveries of
-- events it has not read yet (committed a moment ago, or written by the
-- current transaction), as pending rows with no id yet, to the endpoints
-- that match now.  The worker matches endpoints when it reads the event.
CREATE OR REPLACE VIEW webhook.deliveries AS
SELECT s.id, s.event_id, s.endpoint_id, s.status, s.attempts, s.next_attempt_at, s.claimed_at,
       s.last_attempt_at, s.last_status_code, s.last_error, s.created_at, s.completed_at
  FROM webhook.delivery_state s
UNION ALL
SELECT NULL::bigint, e.id, ep.id, 'pending'::text, 0, e.created_at, NULL::timestamptz,
       NULL::timestamptz, NULL::integer, NULL::text, e.created_at, NULL::timestamptz
  FROM webhook.queue_positions p
  JOIN webhook.events e ON webhook._unread(e.txid, p.done_snapshot)
  JOIN webhook.endpoints ep ON ep.active AND webhook._subscribed(ep.event_types, e.event_type)
 WHERE p.worker = 0
   AND NOT EXISTS (SELECT 1 FROM webhook.delivery_state s
                    WHERE s.event_id = e.id AND s.endpoint_id = ep.id);

CREATE OR REPLACE VIEW webhook.endpoint_health AS
SELECT ep.id, ep.name, ep.url, ep.active,
       (SELECT count(*) FROM webhook.deliveries d WHERE d.endpoint_id = ep.id AND d.status = 'pending') AS pending,
       h.succeeded_1h, h.failed_1h, h.succeeded_24h, h.failed_24h,
       round(100.0 * h.ok_24h / nullif(h.attempts_24h, 0), 1) AS success_rate_24h,
       round(h.p50_ms::numeric, 1) AS p50_ms, round(h.p95_ms::numeric, 1) AS p95_ms,
       s.last_success_at, s.last_failure_at, s.last_error,
       coalesce(s.consecutive_failures, 0) AS consecutive_failures, s.failing_since,
       ep.disabled_at, ep.disabled_reason
  FROM webhook.endpoints ep
  LEFT JOIN webhook.endpoint_state s ON s.endpoint_id = ep.id
  LEFT JOIN LATERAL (
      SELECT count(*) FILTER (WHERE l.error_class IS NULL AND l.attempted_at > now() - interval '1 hour') AS succeeded_1h,
             count(*) FILTER (WHERE l.error_class IS NOT NULL AND l.attempted_at > now() - interval '1 hour') AS failed_1h,
             count(*) FILTER (WHERE l.error_class IS NULL) AS succeeded_24h,
             count(*) FILTER (WHERE l.error_class IS NOT NULL) AS failed_24h,
             count(*) FILTER (WHERE l.error_class IS NULL) AS ok_24h,
             count(*) AS attempts_24h,
             percentile_cont(0.5) WITHIN GROUP (ORDER BY l.duration_ms) AS p50_ms,
             percentile_cont(0.95) WITHIN GROUP (ORDER BY l.duration_ms) AS p95_ms
        FROM webhook.delivery_log l
       WHERE l.endpoint_id = ep.id AND l.attempted_at > now() - interval '24 hours'
  ) h ON true;

CREATE OR REPLACE VIEW webhook.recent_failures AS
SELECT l.attempted_at, l.endpoint_id, ep.name AS endpoint, ev.event_type, l.delivery_id, l.attempt,
       coalesce(l.status_code::text, l.error_class) AS failure, l.error,
       pg_catalog.left(l.response_body, 120) AS response
  FROM webhook.delivery_log l
  LEFT JOIN webhook.endpoints ep ON ep.id = l.endpoint_id
  LEFT JOIN webhook.events ev ON ev.id = l.event_id
 WHERE l.error_class IS NOT NULL
 ORDER BY l.attempted_at DESC, l.id DESC
 LIMIT 100;

------------------------------------------------------------------------------
-- Views for people in psql
------------------------------------------------------------------------------

-- Attempts with what they were about, newest first.
CREATE OR REPLACE VIEW webhook.attempts AS
SELECT l.attempted_at, l.endpoint_id, ep.name AS endpoint, ev.event_type, l.event_id, l.delivery_id,
       l.attempt, l.status_code, l.error_class, round(l.duration_ms::numeric, 1) AS duration_ms,
       l.error, pg_catalog.left(l.response_body, 80) AS response
  FROM webhook.delivery_log l
  LEFT JOIN webhook.endpoints ep ON ep.id = l.endpoint_id
  LEFT JOIN webhook.events ev ON ev.id = l.event_id
 ORDER BY l.attempted_at DESC, l.id DESC;

-- Their privileges, granted again on the new tables at the end.
CREATE TABLE webhook._v04_acl AS
SELECT c.relname::text AS relname, c.relowner, c.relacl FROM pg_catalog.pg_class c
 WHERE c.relnamespace = 'webhook'::regnamespace
   AND c.relname IN ('events_v04', 'delivery_state_v04', 'delivery_log_v04');
-- Out of the extension first, so that pg_dump's list of its tables forgets
-- them (dropping a member table leaves its entry behind).
ALTER EXTENSION webhook DROP TABLE webhook.events_v04;
ALTER EXTENSION webhook DROP TABLE webhook.delivery_state_v04;
ALTER EXTENSION webhook DROP TABLE webhook.delivery_log_v04;
ALTER EXTENSION webhook DROP SEQUENCE webhook.delivery_state_v04_id_seq;
ALTER EXTENSION webhook DROP SEQUENCE webhook.delivery_log_v04_id_seq;
DROP TABLE webhook.delivery_log_v04, webhook.delivery_state_v04, webhook.events_v04;

------------------------------------------------------------------------------
-- Functions that write the queue: the generation goes with each row
------------------------------------------------------------------------------
DROP FUNCTION webhook._window_events(pg_snapshot, pg_snapshot, xid8, uuid, integer);
------------------------------------------------------------------------------
-- Reading the queue: committed events by transaction snapshots
------------------------------------------------------------------------------
-- Applications' transactions only INSERT into webhook.events.  The delivery
-- worker reads the events whose transactions became visible since its last
-- read, as PgQ's consumers do: those visible in a new snapshot (the window's
-- end) and not in the done one.  No event is skipped when a transaction
-- commits late with an older id: its txid stays in the done snapshot's
-- in-progress list until it ends, and then falls into the next window.

-- The events of a window, in (txid, id) order, after a cursor: at most n.
-- Below xmax(done), only done's in-progress txids are unread ("late"); from
-- xmax(done) on, every txid visible in cur is.  Both arms are range or
-- equality scans of events_txid_idx.  The range arm starts at the cursor
-- when it is past xmax(done), else at xmax(done): one bound each, so that
-- the index scan starts there (given both, it started at the cursor, and a
-- closed window's cursor, (0, nil), made every empty read walk all the
-- settled events).  The parameters pick the arm once per call.
CREATE FUNCTION webhook._window_events(done pg_snapshot, cur pg_snapshot, after_txid xid8, after_id uuid, n integer)
RETURNS TABLE (txid xid8, id uuid, event_type text, gen smallint) LANGUAGE sql STABLE
AS $$
SELECT w.txid, w.id, w.event_type, w.gen FROM (
    (SELECT e.txid, e.id, e.event_type, e.gen FROM webhook.events e
      WHERE e.txid = ANY (ARRAY(SELECT pg_catalog.pg_snapshot_xip(done)))
        AND (e.txid, e.id) > (after_txid, after_id)
        AND pg_catalog.pg_visible_in_snapshot(e.txid, cur)
      ORDER BY e.txid, e.id LIMIT n)
    UNION ALL
    (SELECT e.txid, e.id, e.event_type, e.gen FROM webhook.events e
      WHERE after_txid >= pg_catalog.pg_snapshot_xmax(done)
        AND (e.txid, e.id) > (after_txid, after_id) AND e.txid < pg_catalog.pg_snapshot_xmax(cur)
        AND pg_catalog.pg_visible_in_snapshot(e.txid, cur)
      ORDER BY e.txid, e.id LIMIT n)
    UNION ALL
    (SELECT e.txid, e.id, e.event_type, e.gen FROM webhook.events e
      WHERE after_txid < pg_catalog.pg_snapshot_xmax(done)
        AND e.txid >= pg_catalog.pg_snapshot_xmax(done) AND e.txid < pg_catalog.pg_snapshot_xmax(cur)
        AND pg_catalog.pg_visible_in_snapshot(e.txid, cur)
      ORDER BY e.txid, e.id LIMIT n)
) w
ORDER BY w.txid, w.id LIMIT n
$$;

-- Read the next page of new events (at most page events) into pending
-- delivery_state rows, one per active endpoint subscribed to each, in queue
-- order (ordered endpoints deliver by id), and move the position on.  The
-- delivery worker runs it as the first statement of a transaction: the
-- window's end is then a snapshot in which the worker's own transaction is
-- not running yet, and which sees every transaction committed so far.
-- A short page closes the window (done := its end); a full one keeps it open
-- with a cursor, so the next call reads on from there.  Returns the number
-- of events read.
CREATE OR REPLACE FUNCTION webhook._read_events(page integer)
RETURNS integer LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    pos webhook.queue_positions;
    v_cur pg_snapshot;
    v_read integer;
    v_last_txid xid8;
    v_last_id uuid;
BEGIN
    SELECT * INTO pos FROM webhook.queue_positions p WHERE p.worker = 0 FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'webhook.queue_positions has no row for worker 0'
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  HINT = 'Do not delete rows of webhook.queue_positions; INSERT INTO webhook.queue_positions (worker, done_snapshot) VALUES (0, pg_current_snapshot()) starts reading from now.';
    END IF;
    v_cur := coalesce(pos.window_snapshot, pg_current_snapshot());
    IF EXISTS (SELECT 1 FROM webhook.restored_events) THEN
        PERFORM webhook._settle_restored();
    END IF;

    WITH page AS MATERIALIZED (
        SELECT w.txid, w.id, w.event_type, w.gen
          FROM webhook._window_events(pos.done_snapshot, v_cur, pos.after_txid, pos.after_id, page) w
    ), made AS (
        INSERT INTO webhook.delivery_state (event_id, endpoint_id, gen)
        SELECT p.id, ep.id, p.gen
          FROM page p JOIN webhook.endpoints ep
            ON ep.active AND webhook._subscribed(ep.event_types, p.event_type)
         ORDER BY p.txid, p.id, ep.id
    )
    SELECT (SELECT count(*) FROM page), l.txid, l.id INTO v_read, v_last_txid, v_last_id
      FROM (SELECT 1) one
      LEFT JOIN (SELECT p.txid, p.id FROM page p ORDER BY p.txid DESC, p.id DESC LIMIT 1) l ON true;

    IF v_read >= page THEN
        UPDATE webhook.queue_positions p
           SET window_snapshot = v_cur, after_txid = v_last_txid, after_id = v_last_id, updated_at = now()
         WHERE p.worker = 0;
    ELSIF v_read > 0 OR pos.window_snapshot IS NOT NULL
          OR pg_snapshot_xmin(v_cur) <> pg_snapshot_xmin(pos.done_snapshot)
          OR pg_snapshot_xmax(v_cur) <> pg_snapshot_xmax(pos.done_snapshot) THEN
        UPDATE webhook.queue_positions p
           SET done_snapshot = v_cur, window_snapshot = NULL, after_txid = '0',
               after_id = '00000000-0000-0000-0000-000000000000', updated_at = now()
         WHERE p.worker = 0;
    END IF;
    RETURN v_read;
END;
$$;

-- Settle restored events against the latest restored position: those the
-- source had not read get their delivery_state rows now, in queue order;
-- those it had read already have theirs.  Without a restored position (not
-- restored yet, or a dump from before 0.4.0, which had none) they wait.
-- Run by the worker's read; returns the number of delivery rows made.
CREATE OR REPLACE FUNCTION webhook._settle_restored()
RETURNS integer LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    pos webhook.restored_positions;
    v_made integer;
BEGIN
    SELECT * INTO pos FROM webhook.restored_positions ORDER BY id DESC LIMIT 1;
    IF NOT FOUND THEN
        RETURN 0;
    END IF;
    WITH settled AS (
        DELETE FROM webhook.restored_events r RETURNING r.event_id, r.txid
    ), unread AS (
        SELECT s.event_id, s.txid, e.event_type, e.gen
          FROM settled s JOIN webhook.events e ON e.id = s.event_id
         WHERE NOT pg_visible_in_snapshot(s.txid, pos.done_snapshot)
           AND NOT (pos.window_snapshot IS NOT NULL AND pg_visible_in_snapshot(s.txid, pos.window_snapshot)
                    AND (s.txid, s.event_id) <= (pos.after_txid, pos.after_id))
    )
    INSERT INTO webhook.delivery_state (event_id, endpoint_id, gen)
    SELECT u.event_id, ep.id, u.gen
      FROM unread u JOIN webhook.endpoints ep
        ON ep.active AND webhook._subscribed(ep.event_types, u.event_type)
     ORDER BY u.txid, u.event_id, ep.id;
    GET DIAGNOSTICS v_made = ROW_COUNT;
    -- Used up: rows a later restore sets aside come with their own position.
    DELETE FROM webhook.restored_positions r WHERE r.id <= pos.id;
    RETURN v_made;
END;
$$;

CREATE TRIGGER events_restored BEFORE INSERT ON webhook.events
    FOR EACH ROW WHEN (NEW.txid OPERATOR(pg_catalog.<>) '0'::pg_catalog.xid8
                       AND NEW.txid OPERATOR(pg_catalog.<>) pg_catalog.pg_current_xact_id())
    EXECUTE FUNCTION webhook._events_restored();

ALTER TABLE webhook.events ENABLE ALWAYS TRIGGER events_restored;
-- Enqueue one checked event inside the caller's transaction, by SQL: one
-- events row (once per idempotency key), nothing per endpoint: the delivery
-- worker matches the endpoints when it reads the event after the commit.
-- send() comes here for events with an idempotency key (the rest it writes
-- from C); the extension's own events come here directly.
CREATE OR REPLACE FUNCTION webhook._enqueue(event_type text, payload jsonb, idempotency_key text)
RETURNS uuid LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_column
DECLARE
    v_event_id uuid;
BEGIN
    IF _enqueue.idempotency_key IS NOT NULL THEN
        -- A key is unique within a generation by its index, and across
        -- generations by taking turns here: a concurrent send of the same
        -- key waits until this transaction ends, then finds its event.
        PERFORM pg_advisory_xact_lock(hashtextextended('webhook.idempotency_key:' || _enqueue.idempotency_key, 0));
        SELECT e.id INTO v_event_id FROM webhook.events e WHERE e.idempotency_key = _enqueue.idempotency_key;
        IF FOUND THEN
            RETURN v_event_id;
        END IF;
    END IF;

    INSERT INTO webhook.events AS e (event_type, payload, idempotency_key)
    VALUES (_enqueue.event_type, _enqueue.payload, _enqueue.idempotency_key)
    ON CONFLICT (idempotency_key, gen) WHERE idempotency_key IS NOT NULL DO NOTHING
    RETURNING e.id INTO v_event_id;

    IF v_event_id IS NULL THEN
        -- A concurrent transaction committed the same idempotency key first.
        SELECT e.id INTO v_event_id FROM webhook.events e WHERE e.idempotency_key = _enqueue.idempotency_key;
        RETURN v_event_id;
    END IF;
    PERFORM webhook._wake_worker_at_commit();
    RETURN v_event_id;
END;
$$;

------------------------------------------------------------------------------
-- Operating: test sends, replay, retention
------------------------------------------------------------------------------

-- Send a webhook.ping event to one endpoint now, whatever it subscribes to,
-- to check that a new receiver is reachable and verifies signatures.
CREATE OR REPLACE FUNCTION webhook.ping(endpoint_id bigint)
RETURNS bigint LANGUAGE plpgsql VOLATILE STRICT
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_active boolean;
    v_payload jsonb;
    v_now timestamptz := now();
    v_event_id uuid;
    v_gen smallint;
    v_delivery_id bigint;
BEGIN
    SELECT e.active INTO v_active FROM webhook.endpoints e WHERE e.id = ping.endpoint_id;
    IF NOT FOUND THEN
        PERFORM webhook._raise_no_endpoint(endpoint_id);
    END IF;
    IF NOT v_active THEN
        RAISE EXCEPTION 'endpoint % is not active', endpoint_id
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  HINT = 'UPDATE webhook.endpoints SET active = true first.';
    END IF;
    v_payload := jsonb_build_object('endpoint_id', endpoint_id, 'message', 'ping');
    -- txid 0: the worker never reads the ping as a new event (which would
    -- go to every endpoint subscribed to "*"); its one delivery is made here.
    INSERT INTO webhook.events (event_type, payload, created_at, txid)
    VALUES ('webhook.ping', v_payload, v_now, '0')
    RETURNING id, gen INTO v_event_id, v_gen;
    INSERT INTO webhook.delivery_state (event_id, endpoint_id, gen) VALUES (v_event_id, ping.endpoint_id, v_gen)
    RETURNING id INTO v_delivery_id;
    PERFORM webhook._wake_worker_at_commit();
    RETURN v_delivery_id;
END;
$$;

-- Deliver an event again: to one endpoint, or to every active endpoint
-- subscribed to its type today.  Returns the number of new deliveries.
CREATE OR REPLACE FUNCTION webhook.replay(event_id uuid, endpoint_id bigint DEFAULT NULL)
RETURNS bigint LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_type text;
    v_gen smallint;
    v_count bigint;
BEGIN
    IF event_id IS NULL THEN
        RAISE EXCEPTION 'event_id must not be null' USING ERRCODE = 'null_value_not_allowed';
    END IF;
    -- Locked until commit, so that no purge deletes it under its new delivery.
    SELECT e.event_type, e.gen INTO v_type, v_gen FROM webhook.events e WHERE e.id = replay.event_id FOR KEY SHARE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'event % does not exist', event_id
            USING ERRCODE = 'no_data_found', HINT = 'Events older than webhook.retention_succeeded may have been purged.';
    END IF;
    IF endpoint_id IS NOT NULL AND NOT EXISTS (SELECT 1 FROM webhook.endpoints e WHERE e.id = replay.endpoint_id) THEN
        PERFORM webhook._raise_no_endpoint(endpoint_id);
    END IF;
    INSERT INTO webhook.delivery_state (event_id, endpoint_id, gen)
    SELECT replay.event_id, ep.id, v_gen FROM webhook.endpoints ep
     WHERE CASE WHEN replay.endpoint_id IS NULL
                THEN ep.active AND webhook._subscribed(ep.event_types, v_type)
                ELSE ep.id = replay.endpoint_id END;
    GET DIAGNOSTICS v_count = ROW_COUNT;
    IF v_count > 0 THEN
        PERFORM webhook._wake_worker_at_commit();
    END IF;
    RETURN v_count;
END;
$$;

-- One batch of retention: finished deliveries completed before the cutoffs
-- (their log rows go with them), then events left with no delivery.
CREATE OR REPLACE FUNCTION webhook._purge_batch(succeeded_before timestamptz, failed_before timestamptz, batch integer)
RETURNS bigint LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_deliveries bigint;
    v_events bigint;
BEGIN
    -- Event ids grow with time (webhook.uuid_v7), and a delivery finishes
    -- after its event was made: old events lead to the deliveries that may be
    -- old enough.
    WITH doomed AS (
        SELECT d.id FROM webhook.events e
          JOIN webhook.delivery_state d ON d.event_id = e.id AND d.gen = e.gen
         WHERE e.id < webhook._uuid_v7_floor(greatest(succeeded_before, failed_before))
           AND e.created_at < greatest(succeeded_before, failed_before)
           AND d.status <> 'pending'
           AND d.completed_at < CASE WHEN d.status = 'succeeded' THEN succeeded_before ELSE failed_before END
         LIMIT batch
         FOR UPDATE OF d SKIP LOCKED
    ), log AS (
        DELETE FROM webhook.delivery_log l USING doomed WHERE l.delivery_id = doomed.id
    )
    DELETE FROM webhook.delivery_state d USING doomed WHERE d.id = doomed.id;
    GET DIAGNOSTICS v_deliveries = ROW_COUNT;

    WITH doomed AS (
        SELECT e.id FROM webhook.events e
         WHERE e.id < webhook._uuid_v7_floor(least(succeeded_before, failed_before))
           AND e.created_at < least(succeeded_before, failed_before)
           AND NOT EXISTS (SELECT 1 FROM webhook.delivery_state d WHERE d.event_id = e.id AND d.gen = e.gen)
           AND NOT webhook._unread(e.txid, (SELECT p.done_snapshot FROM webhook.queue_positions p WHERE p.worker = 0))
           AND NOT EXISTS (SELECT 1 FROM webhook.restored_events r WHERE r.event_id = e.id)
         LIMIT batch
         FOR UPDATE SKIP LOCKED
    )
    DELETE FROM webhook.events e USING doomed WHERE e.id = doomed.id;
    GET DIAGNOSTICS v_events = ROW_COUNT;
    RETURN v_deliveries + v_events;
END;
$$;

------------------------------------------------------------------------------
-- Retention: whole generations at a time
------------------------------------------------------------------------------
-- The queue's tables are partitioned by generation (webhook.queue_generations).
-- New events, their deliveries and log rows go to the current generation;
-- once it is older than a period the worker starts the next (empty) one.
-- A generation that ended before the succeeded-retention cutoff is emptied
-- with TRUNCATE: what must outlive it (pending deliveries, failed ones
-- younger than the failed-retention cutoff, their events and log rows,
-- restored events not settled yet) is moved into the current generation
-- first.  A generation that still holds an unread event, or a delivery that
-- succeeded since the cutoff (the worker lags), waits for a later turn:
-- what it holds is mostly such deliveries, and they need not move.
-- So no row of the queue is ever deleted one by one, and nothing is left
-- for vacuum.

-- The partitions of one generation, as a list for LOCK and TRUNCATE.
CREATE FUNCTION webhook._generation_tables(gen smallint)
RETURNS text LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
RETURN pg_catalog.format('webhook.%I, webhook.%I, webhook.%I',
                         'events_' || gen, 'delivery_state_' || gen, 'delivery_log_' || gen);

-- Does a generation hold no rows?  (Each test reads one partition's index.)
CREATE FUNCTION webhook._generation_is_empty(g smallint)
RETURNS boolean LANGUAGE sql STABLE
RETURN NOT EXISTS (SELECT 1 FROM webhook.events e WHERE e.gen = g)
   AND NOT EXISTS (SELECT 1 FROM webhook.delivery_state d WHERE d.gen = g)
   AND NOT EXISTS (SELECT 1 FROM webhook.delivery_log l WHERE l.gen = g);

-- Is a snapshot older than transaction x still in use, in another session?
-- (A backend's xmin at or below x: its snapshot may not see what x did.)
-- Read against this snapshot's xmax, below the next xid: when unsure, yes.
CREATE FUNCTION webhook._snapshot_older_than(x xid8)
RETURNS boolean LANGUAGE sql STABLE
RETURN EXISTS (SELECT 1 FROM pg_catalog.pg_stat_activity a
                WHERE a.pid <> pg_catalog.pg_backend_pid() AND a.backend_xmin IS NOT NULL
                  AND pg_catalog.age(a.backend_xmin)::numeric
                      >= pg_catalog.pg_snapshot_xmax(pg_catalog.pg_current_snapshot())::text::numeric - x::text::numeric);

-- Did a delivery of generation g succeed at or after the cutoff?  Checked
-- twice: before the locks (cheap to wait) and under them (a delivery in
-- flight may have succeeded in between, and must not be truncated).
CREATE FUNCTION webhook._succeeded_since(g smallint, succeeded_before timestamptz)
RETURNS boolean LANGUAGE sql STABLE
RETURN EXISTS (SELECT 1 FROM webhook.delivery_state d
                WHERE d.gen = g AND d.status = 'succeeded' AND d.completed_at >= succeeded_before);

-- Empty one old generation, keeping what must outlive it (moved into
-- generation cur).  Returns NULL once emptied, else why not yet: an event in
-- it not read yet, a delivery in it that succeeded since the cutoff, or rows
-- just moved out of it.  TRUNCATE is not MVCC-safe
-- (a snapshot taken before it sees the partitions empty), so a generation
-- whose rows were moved is truncated in a later turn, once no snapshot older
-- than the move is left: a pg_dump that began before sees the rows where
-- they were.  A lock another session holds raises lock_not_available: it is
-- never waited for.  Moved events get txid 0: they were read (or are
-- restored ones, settled by their own list), and the restore trigger leaves
-- txid 0 alone.
CREATE FUNCTION webhook._empty_generation(g smallint, cur smallint,
                                          succeeded_before timestamptz, failed_before timestamptz)
RETURNS text LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_done pg_snapshot;
    v_moved bigint;
    v_moved_xid xid8;
BEGIN
    -- A lagging worker's generation waits, without taking its locks.
    IF webhook._succeeded_since(g, succeeded_before) THEN
        RETURN 'a delivery in it succeeded since the cutoff';
    END IF;
    -- Readers and writers of this generation wait for this transaction,
    -- which is short.
    EXECUTE 'LOCK TABLE ' || webhook._generation_tables(g) || ' IN ACCESS EXCLUSIVE MODE NOWAIT';
    SELECT p.done_snapshot INTO v_done FROM webhook.queue_positions p WHERE p.worker = 0;
    IF v_done IS NULL THEN
        RETURN 'webhook.queue_positions has no row for worker 0';
    END IF;
    IF EXISTS (SELECT 1 FROM webhook.events e WHERE e.gen = g AND webhook._unread(e.txid, v_done)) THEN
        RETURN 'an event in it is not read yet';
    END IF;
    IF webhook._succeeded_since(g, succeeded_before) THEN
        RETURN 'a delivery in it succeeded since the cutoff';
    END IF;

    -- Kept: pending deliveries (in flight too: the outcome is recorded by
    -- id), failed ones younger than the failed cutoff; their log rows and
    -- events; restored events not settled yet; events of pending deliveries
    -- written by hand into another generation.  A moved event whose idempotency key the current
    -- generation holds too (written by hand) keeps its row, not the key.
    WITH kept AS (
        UPDATE webhook.delivery_state d SET gen = cur
         WHERE d.gen = g
           AND (d.status = 'pending' OR (d.status = 'failed' AND d.completed_at >= failed_before))
        RETURNING d.id, d.event_id
    ), log AS (
        UPDATE webhook.delivery_log l SET gen = cur FROM kept WHERE l.gen = g AND l.delivery_id = kept.id
        RETURNING 1
    ), events AS (
        UPDATE webhook.events e
           SET gen = cur, txid = '0',
               idempotency_key = CASE WHEN EXISTS (SELECT 1 FROM webhook.events c
                                                    WHERE c.gen = cur AND c.idempotency_key = e.idempotency_key)
                                      THEN NULL ELSE e.idempotency_key END
         WHERE e.gen = g
           AND (e.id IN (SELECT kept.event_id FROM kept)
                OR e.id IN (SELECT r.event_id FROM webhook.restored_events r)
                OR e.id IN (SELECT d.event_id FROM webhook.delivery_state d WHERE d.status = 'pending' AND d.gen <> g))
        RETURNING 1
    )
    SELECT (SELECT count(*) FROM kept) + (SELECT count(*) FROM log) + (SELECT count(*) FROM events) INTO v_moved;
    IF v_moved > 0 THEN
        UPDATE webhook.queue_generations q SET moved_xid = pg_current_xact_id() WHERE q.gen = g;
        RETURN format('%s rows moved out of it just now', v_moved);
    END IF;
    SELECT q.moved_xid INTO v_moved_xid FROM webhook.queue_generations q WHERE q.gen = g;
    IF v_moved_xid IS NOT NULL AND webhook._snapshot_older_than(v_moved_xid) THEN
        RETURN 'a snapshot older than the last move out of it is still in use';
    END IF;

    EXECUTE 'TRUNCATE ' || webhook._generation_tables(g);
    UPDATE webhook.queue_generations q SET began_at = NULL, ended_at = NULL, moved_xid = NULL WHERE q.gen = g;
    RETURN NULL;
END;
$$;

-- Retention's turn, run by the delivery workers: empty the generations that
-- ended before the succeeded cutoff, then start a new generation when the
-- current one is older than period and an empty one is free.  Returns the
-- number of generations emptied.  One worker at a time: another that finds
-- the generations locked skips its turn.  A generation that holds rows but
-- says it is unused (a restore brings rows of any generation) counts as old.
CREATE FUNCTION webhook._rotate_generations(succeeded_before timestamptz, failed_before timestamptz, period interval)
RETURNS integer LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_cur smallint;
    v_began timestamptz;
    v_old smallint;
    v_ended timestamptz;
    v_why text;
    v_next smallint;
    v_emptied integer := 0;
BEGIN
    BEGIN
        PERFORM FROM webhook.queue_generations q FOR UPDATE NOWAIT;
    EXCEPTION WHEN lock_not_available THEN
        RETURN 0;
    END;
    SELECT q.gen, q.began_at INTO v_cur, v_began FROM webhook.queue_generations q
     WHERE q.began_at IS NOT NULL AND q.ended_at IS NULL ORDER BY q.began_at DESC LIMIT 1;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'webhook.queue_generations has no current generation'
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  HINT = 'Do not change webhook.queue_generations by hand; UPDATE webhook.queue_generations SET began_at = now(), ended_at = NULL WHERE gen = 0 makes generation 0 current again.';
    END IF;

    -- Old generations with no rows left are free again.
    UPDATE webhook.queue_generations q SET began_at = NULL, ended_at = NULL
     WHERE q.gen <> v_cur AND q.began_at IS NOT NULL AND webhook._generation_is_empty(q.gen);
    FOR v_old, v_ended IN
        SELECT q.gen, q.ended_at FROM webhook.queue_generations q
         WHERE q.gen <> v_cur AND coalesce(q.ended_at, '-infinity') < succeeded_before
           AND NOT webhook._generation_is_empty(q.gen)
         ORDER BY q.ended_at NULLS FIRST
    LOOP
        BEGIN
            v_why := webhook._empty_generation(v_old, v_cur, succeeded_before, failed_before);
        EXCEPTION
            WHEN lock_not_available THEN
                v_why := 'another session is using it';
            WHEN OTHERS THEN
                -- Not a reason to stop: the other generations, and starting
                -- a new one, go on.
                v_why := SQLERRM;
                RAISE WARNING 'webhook retention could not empty queue generation %: %', v_old, SQLERRM
                    USING ERRCODE = SQLSTATE;
        END;
        IF v_why IS NULL THEN
            v_emptied := v_emptied + 1;
        ELSIF coalesce(v_ended, '-infinity') < succeeded_before - 2 * period THEN
            -- A whole retention late: say so (a session that holds a lock
            -- or an old snapshot for that long keeps the queue growing).
            RAISE WARNING 'webhook queue generation % is overdue for emptying: %', v_old, v_why
                USING HINT = 'See pg_stat_activity for sessions open since before it ended; webhook.queue_generations says when it did.';
        END IF;
    END LOOP;

    IF v_began <= now() - period THEN
        SELECT q.gen INTO v_next FROM webhook.queue_generations q
         WHERE q.gen <> v_cur AND q.began_at IS NULL AND webhook._generation_is_empty(q.gen)
         ORDER BY (q.gen - v_cur + 4) % 4 LIMIT 1;
        IF FOUND THEN
            UPDATE webhook.queue_generations q SET ended_at = now() WHERE q.gen = v_cur;
            UPDATE webhook.queue_generations q SET began_at = now(), ended_at = NULL WHERE q.gen = v_next;
        END IF;
    END IF;
    RETURN v_emptied;
END;
$$;

------------------------------------------------------------------------------
-- pg_dump keeps the new tables' rows, and their sequences' values
------------------------------------------------------------------------------
SELECT pg_catalog.pg_extension_config_dump('webhook.events', '');
SELECT pg_catalog.pg_extension_config_dump('webhook.delivery_state', '');
SELECT pg_catalog.pg_extension_config_dump('webhook.delivery_log', '');
-- The rows are in the queue's partitions, one per generation: their data
-- is dumped partition by partition.  (The generations table is not dumped:
-- the restoring database keeps its own, and retention empties restored
-- rows of a generation it does not use as old ones.)
DO $$
DECLARE
    t text;
BEGIN
    FOR t IN SELECT p.t || '_' || g FROM pg_catalog.unnest(ARRAY['events', 'delivery_state', 'delivery_log']) AS p(t),
                                         pg_catalog.generate_series(0, 3) AS g
    LOOP
        PERFORM pg_catalog.pg_extension_config_dump(pg_catalog.format('webhook.%I', t)::pg_catalog.regclass, '');
    END LOOP;
END;
$$;
SELECT pg_catalog.pg_extension_config_dump('webhook.endpoint_state', '');
SELECT pg_catalog.pg_extension_config_dump(pg_catalog.pg_get_serial_sequence('webhook.delivery_state', 'id')::pg_catalog.regclass, '');
SELECT pg_catalog.pg_extension_config_dump(pg_catalog.pg_get_serial_sequence('webhook.delivery_log', 'id')::pg_catalog.regclass, '');

------------------------------------------------------------------------------
-- Privileges: nothing new is public
------------------------------------------------------------------------------
REVOKE ALL ON webhook.queue_generations, webhook.events, webhook.delivery_state, webhook.delivery_log,
    webhook.events_0, webhook.events_1, webhook.events_2, webhook.events_3, webhook.delivery_state_0, webhook.delivery_state_1, webhook.delivery_state_2, webhook.delivery_state_3, webhook.delivery_log_0, webhook.delivery_log_1, webhook.delivery_log_2, webhook.delivery_log_3
    FROM PUBLIC;
REVOKE ALL ON FUNCTION webhook._current_generation(), webhook._events_deleted(), webhook._snapshot_older_than(xid8),
    webhook._succeeded_since(smallint, timestamptz),
    webhook._window_events(pg_snapshot, pg_snapshot, xid8, uuid, integer),
    webhook._generation_tables(smallint), webhook._generation_is_empty(smallint),
    webhook._empty_generation(smallint, smallint, timestamptz, timestamptz),
    webhook._rotate_generations(timestamptz, timestamptz, interval)
    FROM PUBLIC;
-- The queue tables' default for gen, evaluated as whoever writes a row.
GRANT EXECUTE ON FUNCTION webhook._current_generation() TO PUBLIC;

-- What an administrator granted on 0.4.0's queue tables (an operator role
-- that reads the log, say) holds for the new ones.
DO $$
DECLARE
    r record;
BEGIN
    FOR r IN
        SELECT t.new_name, a.grantee, a.privilege_type, a.is_grantable
          FROM (VALUES ('events_v04', 'events'), ('delivery_state_v04', 'delivery_state'),
                       ('delivery_log_v04', 'delivery_log')) AS t(old_name, new_name)
          JOIN webhook._v04_acl c ON c.relname = t.old_name
         CROSS JOIN LATERAL pg_catalog.aclexplode(c.relacl) a
         WHERE a.grantee <> c.relowner
    LOOP
        EXECUTE pg_catalog.format('GRANT %s ON webhook.%I TO %s%s', r.privilege_type, r.new_name,
                                  CASE WHEN r.grantee = 0 THEN 'PUBLIC'
                                       ELSE pg_catalog.quote_ident(pg_catalog.pg_get_userbyid(r.grantee)) END,
                                  CASE WHEN r.is_grantable THEN ' WITH GRANT OPTION' ELSE '' END);
    END LOOP;
    -- Granted here, inside the extension's script, they would count as the
    -- extension's own (pg_init_privs), and pg_dump would leave them out:
    -- the extension's own privileges are a fresh install's.
    UPDATE pg_catalog.pg_init_privs i SET initprivs = pg_catalog.acldefault('r', c.relowner)
      FROM pg_catalog.pg_class c
     WHERE i.classoid = 'pg_catalog.pg_class'::pg_catalog.regclass AND i.objoid = c.oid AND i.objsubid = 0
       AND c.oid IN ('webhook.events'::pg_catalog.regclass, 'webhook.delivery_state'::pg_catalog.regclass,
                     'webhook.delivery_log'::pg_catalog.regclass);
END;
$$;
DROP TABLE webhook._v04_acl;
