-- webhook 0.8.0 -> 0.9.0: first attempts in flight get a table of their own.
--  * The worker's read makes the deliveries it sends at once as rows of
--    webhook.first_attempts, not as pending delivery_state rows that the
--    record then updates: the record writes each delivery_state row once,
--    in its new state (two fewer index entries and no update per delivery).
--  * webhook.deliveries shows them as pending and claimed; cancel(), retry(),
--    purge(), deleting an endpoint or an event, retention and a restore
--    know them.
-- Nothing a user writes changes; webhook.deliveries keeps its columns.

-- First attempts in flight: the deliveries the worker's read made already
-- claimed (src/reader.c), one row each while its request is out.  When the
-- outcome is recorded the row goes and the delivery's delivery_state row is
-- written once, in its new state (src/queue.c, record_sql), rather than
-- written pending and then updated: two fewer index entries and no update
-- per delivery.  Until then the delivery is pending and in flight
-- (webhook.deliveries shows it so).  A worker that starts turns its
-- endpoints' rows, left by its predecessor, into pending delivery_state
-- rows (webhook._first_attempts_to_state), as it releases their claims.
-- Its id is the delivery's id for good, from delivery_state's identity.
CREATE TABLE webhook.first_attempts (
    id           bigint PRIMARY KEY,
    event_id     uuid NOT NULL,
    -- Its endpoint is locked against deletion while the read writes it;
    -- deleting the endpoint closes its first attempts first.  (The key also
    -- makes a restore load endpoints before these rows.)
    endpoint_id  bigint NOT NULL REFERENCES webhook.endpoints (id),
    gen          smallint NOT NULL,
    ordering_key text COLLATE "C" NOT NULL DEFAULT '',
    claimed_at   timestamptz NOT NULL DEFAULT pg_catalog.now()
) WITH (autovacuum_vacuum_scale_factor = 0, autovacuum_vacuum_threshold = 20000,
        autovacuum_vacuum_insert_scale_factor = 0, autovacuum_vacuum_insert_threshold = 50000,
        autovacuum_vacuum_cost_delay = 0);
COMMENT ON TABLE webhook.first_attempts IS 'first attempts in flight, made claimed by the delivery worker''s read; each becomes its delivery_state row when its outcome is recorded (read webhook.deliveries)';
DO $$
BEGIN
    EXECUTE pg_catalog.format('ALTER TABLE webhook.first_attempts ALTER COLUMN id SET DEFAULT pg_catalog.nextval(%L::pg_catalog.regclass)',
                              pg_catalog.pg_get_serial_sequence('webhook.delivery_state', 'id'));
END;
$$;

-- A first attempt claimed by another transaction than the one writing it
-- (a restore's COPY): nobody has its request in flight, so it becomes a
-- pending delivery_state row, due now.  The worker's read writes its rows
-- with claimed_at = now().
CREATE FUNCTION webhook._first_attempts_restored()
RETURNS trigger LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    INSERT INTO webhook.delivery_state (id, event_id, endpoint_id, gen, ordering_key, next_attempt_at, created_at)
    OVERRIDING SYSTEM VALUE
    VALUES (NEW.id, NEW.event_id, NEW.endpoint_id, NEW.gen, NEW.ordering_key, now(), NEW.claimed_at);
    PERFORM webhook._wake_worker_at_commit();
    RETURN NULL;
END;
$$;
CREATE TRIGGER first_attempts_restored BEFORE INSERT ON webhook.first_attempts
    FOR EACH ROW WHEN (NEW.claimed_at OPERATOR(pg_catalog.<>) pg_catalog.now())
    EXECUTE FUNCTION webhook._first_attempts_restored();
ALTER TABLE webhook.first_attempts ENABLE ALWAYS TRIGGER first_attempts_restored;

-- Turn first attempts into pending delivery_state rows, as they were
-- (claimed, or released: claimed_at NULL, due now); rows of a deleted
-- endpoint get endpoint_id NULL.  Returns how many.  The worker does it at
-- its start for its endpoints (a predecessor's requests were cut short).
CREATE FUNCTION webhook._first_attempts_to_state(ids bigint[], release boolean)
RETURNS bigint LANGUAGE sql
SET search_path = pg_catalog, pg_temp
BEGIN ATOMIC
    WITH gone AS (
        DELETE FROM webhook.first_attempts f
         WHERE f.id = ANY (ids)
        RETURNING f.id, f.event_id, f.endpoint_id, f.gen, f.ordering_key, f.claimed_at
    ), made AS (
        INSERT INTO webhook.delivery_state
               (id, event_id, endpoint_id, gen, ordering_key, next_attempt_at, created_at, claimed_at)
        OVERRIDING SYSTEM VALUE
        SELECT g.id, g.event_id, (SELECT ep.id FROM webhook.endpoints ep WHERE ep.id = g.endpoint_id),
               g.gen, g.ordering_key, g.claimed_at, g.claimed_at,
               CASE WHEN NOT release THEN g.claimed_at END
          FROM gone g
          JOIN webhook.events e ON e.id = g.event_id AND e.gen = g.gen
        RETURNING 1
    )
    SELECT count(*) FROM made;
END;

CREATE OR REPLACE FUNCTION webhook._events_deleted()
RETURNS trigger LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    DELETE FROM webhook.delivery_state d USING gone WHERE d.event_id = gone.id AND d.gen = gone.gen;
    DELETE FROM webhook.first_attempts f USING gone WHERE f.event_id = gone.id AND f.gen = gone.gen;
    RETURN NULL;
END;
$$;

CREATE OR REPLACE FUNCTION webhook._endpoints_before_delete()
RETURNS trigger LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    PERFORM webhook._first_attempts_to_state(
        ARRAY(SELECT f.id FROM webhook.first_attempts f WHERE f.endpoint_id = OLD.id), false);
    UPDATE webhook.delivery_state
       SET status = 'failed', last_error = 'endpoint deleted', completed_at = now(), claimed_at = NULL
     WHERE endpoint_id = OLD.id AND status = 'pending';
    RETURN OLD;
END;
$$;

CREATE OR REPLACE FUNCTION webhook._generation_is_empty(g smallint)
RETURNS boolean LANGUAGE sql STABLE
RETURN NOT EXISTS (SELECT 1 FROM webhook.events e WHERE e.gen = g)
   AND NOT EXISTS (SELECT 1 FROM webhook.delivery_state d WHERE d.gen = g)
   AND NOT EXISTS (SELECT 1 FROM webhook.first_attempts f WHERE f.gen = g)
   AND NOT EXISTS (SELECT 1 FROM webhook.delivery_log l WHERE l.gen = g);

CREATE OR REPLACE FUNCTION webhook._empty_generation(g smallint, cur smallint,
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
    -- Its outcome writes the delivery's row into this generation (and no
    -- new one can be made in it: every event in it is read).
    IF EXISTS (SELECT 1 FROM webhook.first_attempts f WHERE f.gen = g) THEN
        RETURN 'a first attempt in it is in flight';
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

CREATE OR REPLACE FUNCTION webhook.cancel(event_id uuid)
RETURNS TABLE (delivery_id bigint, endpoint_id bigint, endpoint text, was_due_at timestamptz)
LANGUAGE plpgsql VOLATILE STRICT
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_column
DECLARE
    v_txid xid8;
    v_busy record;
BEGIN
    SELECT e.txid INTO v_txid FROM webhook.events e WHERE e.id = cancel.event_id FOR KEY SHARE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'event % does not exist', cancel.event_id
            USING ERRCODE = 'no_data_found', HINT = 'Event ids are in webhook.events and webhook.deliveries.';
    END IF;
    -- Read: it has deliveries (all of an event's are made together), or
    -- the worker's done snapshot sees it (it matched no endpoint).
    IF NOT EXISTS (SELECT 1 FROM webhook.delivery_state d WHERE d.event_id = cancel.event_id)
       AND NOT EXISTS (SELECT 1 FROM webhook.first_attempts f WHERE f.event_id = cancel.event_id)
       AND EXISTS (SELECT 1 FROM webhook.queue_positions p WHERE p.worker = 0 AND webhook._unread(v_txid, p.done_snapshot)) THEN
        RAISE EXCEPTION 'event % is not read by the delivery worker yet', cancel.event_id
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  DETAIL = 'Its deliveries are made when the worker reads it, after the transaction that sent it commits.',
                  HINT = 'Cancel it once webhook.deliveries shows its deliveries with an id; in the transaction that sent it, roll back instead.';
    END IF;
    SELECT d.id, d.endpoint_id, d.status, d.attempts, d.claimed_at IS NOT NULL AS in_flight INTO v_busy
      FROM (SELECT d.* FROM webhook.delivery_state d WHERE d.event_id = cancel.event_id ORDER BY d.id FOR UPDATE) d
     WHERE d.attempts > 0 OR d.claimed_at IS NOT NULL OR d.status IN ('succeeded', 'failed')
     LIMIT 1;
    IF NOT FOUND THEN
        SELECT f.id, f.endpoint_id, 'pending' AS status, 0 AS attempts, true AS in_flight INTO v_busy
          FROM webhook.first_attempts f WHERE f.event_id = cancel.event_id ORDER BY f.id LIMIT 1;
    END IF;
    IF FOUND THEN
        RAISE EXCEPTION 'event % has been sent already', cancel.event_id
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  DETAIL = format('Its delivery %s to endpoint %s is %s after %s attempts.', v_busy.id,
                                  coalesce(v_busy.endpoint_id::text, '(deleted)'),
                                  CASE WHEN v_busy.in_flight THEN 'in flight' ELSE v_busy.status END, v_busy.attempts),
                  HINT = 'webhook.cancel() cancels only events that no endpoint has been sent yet.';
    END IF;
    RETURN QUERY
    WITH c AS (
        -- Checked again row by row: a delivery made since (a replay) and
        -- claimed meanwhile is left alone.
        UPDATE webhook.delivery_state d
           SET status = 'cancelled', completed_at = now(), last_error = 'cancelled by webhook.cancel()'
         WHERE d.event_id = cancel.event_id AND d.status = 'pending' AND d.attempts = 0 AND d.claimed_at IS NULL
        RETURNING d.id, d.endpoint_id, d.next_attempt_at
    )
    SELECT c.id, c.endpoint_id, ep.name, c.next_attempt_at
      FROM c LEFT JOIN webhook.endpoints ep ON ep.id = c.endpoint_id
     ORDER BY c.id;
END;
$$;

CREATE OR REPLACE FUNCTION webhook.retry(delivery_id bigint)
RETURNS void LANGUAGE plpgsql VOLATILE STRICT
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_status text;
    v_endpoint bigint;
BEGIN
    SELECT d.status, d.endpoint_id INTO v_status, v_endpoint FROM webhook.delivery_state d
     WHERE d.id = retry.delivery_id FOR UPDATE;
    IF NOT FOUND AND EXISTS (SELECT 1 FROM webhook.first_attempts f WHERE f.id = retry.delivery_id) THEN
        RETURN;  -- in flight, as a claimed row is: nothing to re-queue
    END IF;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'delivery % does not exist', delivery_id
            USING ERRCODE = 'no_data_found', HINT = 'Delivery ids are in webhook.deliveries and webhook.delivery_log.';
    END IF;
    IF v_endpoint IS NULL THEN
        RAISE EXCEPTION 'delivery % belongs to a deleted endpoint', delivery_id
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  HINT = 'Use webhook.replay(event_id, endpoint_id) to send its event to another endpoint.';
    END IF;
    UPDATE webhook.delivery_state d
       SET status = 'pending', next_attempt_at = now(), completed_at = NULL
     WHERE d.id = retry.delivery_id AND d.claimed_at IS NULL;
    PERFORM webhook._wake_worker_at_commit();
END;
$$;

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
           AND d.completed_at < CASE WHEN d.status IN ('succeeded', 'cancelled') THEN succeeded_before ELSE failed_before END
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
           AND NOT EXISTS (SELECT 1 FROM webhook.first_attempts f WHERE f.event_id = e.id)
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

CREATE OR REPLACE VIEW webhook.deliveries AS
SELECT s.id, s.event_id, s.endpoint_id,
       CASE WHEN s.status = 'pending' AND s.attempts = 0 AND s.last_attempt_at IS NULL
                 AND s.next_attempt_at > s.created_at AND s.next_attempt_at > pg_catalog.now()
            THEN 'scheduled' ELSE s.status END AS status,
       s.attempts, s.next_attempt_at, s.claimed_at,
       s.last_attempt_at, s.last_status_code, s.last_error, s.created_at, s.completed_at,
       s.ordering_key
  FROM webhook.delivery_state s
UNION ALL
SELECT f.id, f.event_id, f.endpoint_id, 'pending', 0, f.claimed_at, f.claimed_at,
       NULL::timestamptz, NULL::integer, NULL::text, f.claimed_at, NULL::timestamptz,
       f.ordering_key
  FROM webhook.first_attempts f
UNION ALL
SELECT NULL::bigint, e.id, ep.id,
       CASE WHEN e.deliver_at > pg_catalog.now() THEN 'scheduled' ELSE 'pending' END,
       0, greatest(e.deliver_at, e.created_at), NULL::timestamptz,
       NULL::timestamptz, NULL::integer, NULL::text, e.created_at, NULL::timestamptz,
       coalesce(e.ordering_key, '')
  FROM webhook.queue_positions p
  JOIN webhook.events e ON webhook._unread(e.txid, p.done_snapshot)
  JOIN webhook.endpoints ep ON ep.active AND webhook._subscribed(ep.event_types, e.event_type)
                           AND webhook._passes_filter(ep.filter, e.payload)
 WHERE p.worker = 0
   AND NOT EXISTS (SELECT 1 FROM webhook.delivery_state s
                    WHERE s.event_id = e.id AND s.endpoint_id = ep.id)
   AND NOT EXISTS (SELECT 1 FROM webhook.first_attempts f
                    WHERE f.event_id = e.id AND f.endpoint_id = ep.id);

SELECT pg_catalog.pg_extension_config_dump('webhook.first_attempts', '');
-- As a new install leaves them (11_privileges.sql): nothing for PUBLIC.
REVOKE ALL ON webhook.first_attempts FROM PUBLIC;
REVOKE ALL ON FUNCTION webhook._first_attempts_to_state(bigint[], boolean), webhook._first_attempts_restored() FROM PUBLIC;
