-- webhook 0.3.0 -> 0.4.0: events written from C, several workers per
-- database, restored queues settled (issue 13, second step).
--
-- send() and the watch trigger write webhook.events rows from C
-- (src/enqueue.c), as COPY does: no PL/pgSQL call, no jsonb[] of the
-- statement's payloads, no planned INSERT per statement.  The rows are the
-- same; the functions that only the old SQL path used go.
--
-- The library of this version still writes a 0.3.0 schema's events through
-- that schema's own functions until this script runs (src/compat.c).

\echo Use "ALTER EXTENSION webhook UPDATE TO '0.4.0'" to load this file. \quit

CREATE OR REPLACE FUNCTION webhook._check_event_type(event_type text)
RETURNS void LANGUAGE C STABLE
AS 'MODULE_PATHNAME', 'webhook_check_event_type';

-- SECURITY DEFINER and the grants stay; the SET search_path goes, as in a
-- fresh install (the C function names every object it uses in full).
CREATE OR REPLACE FUNCTION webhook.send(event_type text, payload jsonb, idempotency_key text DEFAULT NULL)
RETURNS uuid LANGUAGE C VOLATILE
SECURITY DEFINER
AS 'MODULE_PATHNAME', 'webhook_send';

DROP FUNCTION webhook._enqueue_many(text, jsonb[]);
DROP FUNCTION webhook._raise_null_payload();
DROP FUNCTION webhook._check_payload_size(bigint, boolean);

-- webhook.workers: which worker delivers an endpoint's events.
CREATE FUNCTION webhook._worker_of(endpoint_id bigint, workers integer)
RETURNS integer LANGUAGE sql IMMUTABLE PARALLEL SAFE
RETURN pg_catalog.abs(endpoint_id % GREATEST(workers, 1))::integer;
REVOKE ALL ON FUNCTION webhook._worker_of(bigint, integer) FROM PUBLIC;

-- Restored queues (see sql/src/06_queue.sql): a restore's events and
-- position are set aside and settled against each other by the worker.
CREATE TABLE webhook.restored_events (
    event_id uuid PRIMARY KEY,
    txid     xid8 NOT NULL
);
COMMENT ON TABLE webhook.restored_events IS 'restored events waiting to be settled against their source''s position (webhook._settle_restored)';
CREATE TABLE webhook.restored_positions (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    done_snapshot   pg_snapshot NOT NULL,
    window_snapshot pg_snapshot,
    after_txid      xid8 NOT NULL,
    after_id        uuid NOT NULL,
    restored_at     timestamptz NOT NULL DEFAULT pg_catalog.now()
);
COMMENT ON TABLE webhook.restored_positions IS 'positions that came with a restore: where the source database''s worker was';

-- A row of another transaction's making (a restore's COPY): note its
-- source txid and keep it out of every window.
CREATE FUNCTION webhook._events_restored()
RETURNS trigger LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    INSERT INTO webhook.restored_events (event_id, txid) VALUES (NEW.id, NEW.txid)
    ON CONFLICT (event_id) DO UPDATE SET txid = EXCLUDED.txid;
    NEW.txid := '0';
    PERFORM webhook._wake_worker_at_commit();
    RETURN NEW;
END;
$$;
CREATE TRIGGER events_restored BEFORE INSERT ON webhook.events
    FOR EACH ROW WHEN (NEW.txid OPERATOR(pg_catalog.<>) '0'::pg_catalog.xid8
                       AND NEW.txid OPERATOR(pg_catalog.<>) pg_catalog.pg_current_xact_id())
    EXECUTE FUNCTION webhook._events_restored();
-- Also under session_replication_role = replica (pg_restore does not set
-- it; --disable-triggers, for data-only restores, turns it off: README).
ALTER TABLE webhook.events ENABLE ALWAYS TRIGGER events_restored;

-- Does a worker have its position row?  (The restore trigger's test.)
CREATE FUNCTION webhook._has_position(worker integer)
RETURNS boolean LANGUAGE sql STABLE
RETURN EXISTS (SELECT 1 FROM webhook.queue_positions p WHERE p.worker = _has_position.worker);

-- A position for a worker that has one already (a restore's COPY, after
-- CREATE EXTENSION made this database's): set it aside for settling.
CREATE FUNCTION webhook._positions_restored()
RETURNS trigger LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    INSERT INTO webhook.restored_positions (done_snapshot, window_snapshot, after_txid, after_id)
    VALUES (NEW.done_snapshot, NEW.window_snapshot, NEW.after_txid, NEW.after_id);
    PERFORM webhook._wake_worker_at_commit();
    RETURN NULL;
END;
$$;
CREATE TRIGGER positions_restored BEFORE INSERT ON webhook.queue_positions
    FOR EACH ROW WHEN (webhook._has_position(NEW.worker))
    EXECUTE FUNCTION webhook._positions_restored();
ALTER TABLE webhook.queue_positions ENABLE ALWAYS TRIGGER positions_restored;

-- Settle restored events against the latest restored position: those the
-- source had not read get their delivery_state rows now, in queue order;
-- those it had read already have theirs.  Without a restored position (not
-- restored yet, or a dump from before 0.4.0, which had none) they wait.
-- Run by the worker's read; returns the number of delivery rows made.
CREATE FUNCTION webhook._settle_restored()
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
        SELECT s.event_id, s.txid, e.event_type
          FROM settled s JOIN webhook.events e ON e.id = s.event_id
         WHERE NOT pg_visible_in_snapshot(s.txid, pos.done_snapshot)
           AND NOT (pos.window_snapshot IS NOT NULL AND pg_visible_in_snapshot(s.txid, pos.window_snapshot)
                    AND (s.txid, s.event_id) <= (pos.after_txid, pos.after_id))
    )
    INSERT INTO webhook.delivery_state (event_id, endpoint_id)
    SELECT u.event_id, ep.id
      FROM unread u JOIN webhook.endpoints ep
        ON ep.active AND webhook._subscribed(ep.event_types, u.event_type)
     ORDER BY u.txid, u.event_id, ep.id;
    GET DIAGNOSTICS v_made = ROW_COUNT;
    -- Used up: rows a later restore sets aside come with their own position.
    DELETE FROM webhook.restored_positions r WHERE r.id <= pos.id;
    RETURN v_made;
END;
$$;

REVOKE ALL ON webhook.restored_events, webhook.restored_positions FROM PUBLIC;
REVOKE ALL ON FUNCTION webhook._events_restored(), webhook._has_position(integer),
    webhook._positions_restored(), webhook._settle_restored() FROM PUBLIC;

-- The worker's read settles restored events first.
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
        SELECT w.txid, w.id, w.event_type
          FROM webhook._window_events(pos.done_snapshot, v_cur, pos.after_txid, pos.after_id, page) w
    ), made AS (
        INSERT INTO webhook.delivery_state (event_id, endpoint_id)
        SELECT p.id, ep.id
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

-- Retention keeps restored events until they are settled.
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
          JOIN webhook.delivery_state d ON d.event_id = e.id
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
           AND NOT EXISTS (SELECT 1 FROM webhook.delivery_state d WHERE d.event_id = e.id)
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

SELECT pg_catalog.pg_extension_config_dump('webhook.queue_positions', '');

-- The window's range arm starts at xmax(done) or at the cursor, one bound
-- each: an empty read no longer walks the settled events.
CREATE OR REPLACE FUNCTION webhook._window_events(done pg_snapshot, cur pg_snapshot, after_txid xid8, after_id uuid, n integer)
RETURNS TABLE (txid xid8, id uuid, event_type text) LANGUAGE sql STABLE
AS $$
SELECT w.txid, w.id, w.event_type FROM (
    (SELECT e.txid, e.id, e.event_type FROM webhook.events e
      WHERE e.txid = ANY (ARRAY(SELECT pg_catalog.pg_snapshot_xip(done)))
        AND (e.txid, e.id) > (after_txid, after_id)
        AND pg_catalog.pg_visible_in_snapshot(e.txid, cur)
      ORDER BY e.txid, e.id LIMIT n)
    UNION ALL
    (SELECT e.txid, e.id, e.event_type FROM webhook.events e
      WHERE after_txid >= pg_catalog.pg_snapshot_xmax(done)
        AND (e.txid, e.id) > (after_txid, after_id) AND e.txid < pg_catalog.pg_snapshot_xmax(cur)
        AND pg_catalog.pg_visible_in_snapshot(e.txid, cur)
      ORDER BY e.txid, e.id LIMIT n)
    UNION ALL
    (SELECT e.txid, e.id, e.event_type FROM webhook.events e
      WHERE after_txid < pg_catalog.pg_snapshot_xmax(done)
        AND e.txid >= pg_catalog.pg_snapshot_xmax(done) AND e.txid < pg_catalog.pg_snapshot_xmax(cur)
        AND pg_catalog.pg_visible_in_snapshot(e.txid, cur)
      ORDER BY e.txid, e.id LIMIT n)
) w
ORDER BY w.txid, w.id LIMIT n
$$;
