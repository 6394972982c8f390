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
-- equality scans of events_txid_idx.
CREATE FUNCTION webhook._window_events(done pg_snapshot, cur pg_snapshot, after_txid xid8, after_id uuid, n integer)
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
      WHERE e.txid >= pg_catalog.pg_snapshot_xmax(done) AND e.txid < pg_catalog.pg_snapshot_xmax(cur)
        AND (e.txid, e.id) > (after_txid, after_id)
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
CREATE FUNCTION webhook._read_events(page integer)
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
