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
RETURNS TABLE (txid xid8, id uuid, event_type text, gen smallint, payload jsonb, deliver_at timestamptz,
               ordering_key text)
LANGUAGE sql STABLE
AS $$
SELECT w.txid, w.id, w.event_type, w.gen, w.payload, w.deliver_at, w.ordering_key FROM (
    (SELECT e.txid, e.id, e.event_type, e.gen, e.payload, e.deliver_at, e.ordering_key FROM webhook.events e
      WHERE e.txid = ANY (ARRAY(SELECT pg_catalog.pg_snapshot_xip(done)))
        AND (e.txid, e.id) > (after_txid, after_id)
        AND pg_catalog.pg_visible_in_snapshot(e.txid, cur)
      ORDER BY e.txid, e.id LIMIT n)
    UNION ALL
    (SELECT e.txid, e.id, e.event_type, e.gen, e.payload, e.deliver_at, e.ordering_key FROM webhook.events e
      WHERE after_txid >= pg_catalog.pg_snapshot_xmax(done)
        AND (e.txid, e.id) > (after_txid, after_id) AND e.txid < pg_catalog.pg_snapshot_xmax(cur)
        AND pg_catalog.pg_visible_in_snapshot(e.txid, cur)
      ORDER BY e.txid, e.id LIMIT n)
    UNION ALL
    (SELECT e.txid, e.id, e.event_type, e.gen, e.payload, e.deliver_at, e.ordering_key FROM webhook.events e
      WHERE after_txid < pg_catalog.pg_snapshot_xmax(done)
        AND e.txid >= pg_catalog.pg_snapshot_xmax(done) AND e.txid < pg_catalog.pg_snapshot_xmax(cur)
        AND pg_catalog.pg_visible_in_snapshot(e.txid, cur)
      ORDER BY e.txid, e.id LIMIT n)
) w
ORDER BY w.txid, w.id LIMIT n
$$;

-- A filter's verdict on a payload: true, false, or NULL when it cannot
-- judge it, also when it raises an error that silent => true lets through
-- (a date compared with a time zone, say).  A subtransaction per call: for
-- the page a fast evaluation failed on, replay(), recover() and the view.
CREATE FUNCTION webhook._filter_verdict(filter jsonpath, payload jsonb)
RETURNS boolean LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    RETURN jsonb_path_match(payload, filter, '{}', true);
EXCEPTION WHEN OTHERS THEN
    RETURN NULL;
END;
$$;

-- Read the next page of new events (at most page events) into pending
-- delivery_state rows, one per active endpoint subscribed to each event
-- whose filter the payload passes, and move the position on (src/reader.c,
-- which the delivery worker calls directly).  Run it as the first statement
-- of a transaction: the window's end is then a snapshot in which the
-- transaction is not running yet.  A short page closes the window; a full
-- one keeps it open with a cursor.  Returns the number of events read.
CREATE FUNCTION webhook._read_events(page integer)
RETURNS integer LANGUAGE C VOLATILE STRICT
SET search_path = pg_catalog, pg_temp
AS 'MODULE_PATHNAME', 'webhook_read_events';

-- The head of each ordering key of an endpoint: its oldest pending
-- delivery, which an ordered endpoint sends before any other of that key.
-- A skip scan of delivery_state_pending_in_order_idx: one probe per key with
-- something pending, however long each key's backlog.  The claim, the
-- worker's next-due time and endpoint_health read it.
CREATE FUNCTION webhook._ordered_heads(endpoint_id bigint)
RETURNS TABLE (id bigint, gen smallint, ordering_key text, next_attempt_at timestamptz,
               claimed_at timestamptz, attempts integer, created_at timestamptz)
LANGUAGE sql STABLE
AS $$
WITH RECURSIVE k AS (
    (SELECT d.ordering_key FROM webhook.delivery_state d
      WHERE d.endpoint_id = _ordered_heads.endpoint_id AND d.status = 'pending'
      ORDER BY d.ordering_key LIMIT 1)
    UNION ALL
    SELECT n.ordering_key FROM k CROSS JOIN LATERAL (
        SELECT d.ordering_key FROM webhook.delivery_state d
         WHERE d.endpoint_id = _ordered_heads.endpoint_id AND d.status = 'pending'
           AND d.ordering_key > k.ordering_key
         ORDER BY d.ordering_key LIMIT 1) n
)
SELECT h.id, h.gen, h.ordering_key, h.next_attempt_at, h.claimed_at, h.attempts, h.created_at
  FROM k CROSS JOIN LATERAL (
       SELECT d.id, d.gen, d.ordering_key, d.next_attempt_at, d.claimed_at, d.attempts, d.created_at
         FROM webhook.delivery_state d
        WHERE d.endpoint_id = _ordered_heads.endpoint_id AND d.status = 'pending'
          AND d.ordering_key = k.ordering_key
        ORDER BY d.id LIMIT 1) h
$$;

------------------------------------------------------------------------------
-- Restored queues: pg_dump and restore, into this cluster or another
------------------------------------------------------------------------------
-- A restored event keeps the txid its source database gave it, which means
-- nothing here: read against this database's snapshots it would be skipped
-- (lost, if it was still unread when dumped) or read again (sent twice).
-- So a restore's rows are set aside as they arrive: an event row whose
-- txid is neither 0 nor the inserting transaction's is kept with txid 0 (never
-- read by windows) and its source txid noted in webhook.restored_events;
-- the dumped position, arriving while this database has its own, goes to
-- webhook.restored_positions.  The worker then settles them against that
-- position (webhook._settle_restored): events the source had read keep the
-- delivery_state rows that came with them, events it had not read get theirs
-- now.  Events written by send() and watches come from C and never fire
-- these triggers.
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
        SELECT s.event_id, s.txid, e.event_type, e.gen, e.payload, e.deliver_at, e.ordering_key
          FROM settled s JOIN webhook.events e ON e.id = s.event_id
         WHERE NOT pg_visible_in_snapshot(s.txid, pos.done_snapshot)
           AND NOT (pos.window_snapshot IS NOT NULL AND pg_visible_in_snapshot(s.txid, pos.window_snapshot)
                    AND (s.txid, s.event_id) <= (pos.after_txid, pos.after_id))
    )
    INSERT INTO webhook.delivery_state (event_id, endpoint_id, gen, next_attempt_at, ordering_key)
    SELECT u.event_id, ep.id, u.gen, greatest(u.deliver_at, now()), coalesce(u.ordering_key, '')
      FROM unread u JOIN webhook.endpoints ep
        ON ep.active AND webhook._subscribed(ep.event_types, u.event_type)
       AND webhook._passes_filter(ep.filter, u.payload)
     ORDER BY u.txid, u.event_id, ep.id;
    GET DIAGNOSTICS v_made = ROW_COUNT;
    -- Used up: rows a later restore sets aside come with their own position.
    DELETE FROM webhook.restored_positions r WHERE r.id <= pos.id;
    RETURN v_made;
END;
$$;
