-- webhook 0.2.0 -> 0.3.0: the queue reshaped (issue 13, first step).
--
-- The application's transaction now writes one webhook.events row per event
-- and nothing per endpoint.  The delivery worker reads committed events by
-- transaction snapshots (webhook.queue_positions) and creates their delivery
-- rows itself, in webhook.delivery_state (the table webhook.deliveries was,
-- renamed).  webhook.deliveries becomes a view over it that also shows the
-- deliveries of events not read yet.
--
-- Nothing is lost:
--  * Every delivery keeps its row, id, attempts and state; pending ones are
--    delivered after the update as before.
--  * Events written before the update get txid 0: the worker never reads
--    them as new (their deliveries exist already).  ALTER TABLE waits for
--    the transactions that are writing events the 0.2.0 way, so all of them
--    are in before the reading position is taken.
--  * The position is this transaction's snapshot: every event committed
--    after it, and every event of a transaction still running now, is read.
--  * events.body goes: it was always webhook._event_body(event_type, payload,
--    created_at), which the worker now computes when it sends.
\echo Use "ALTER EXTENSION webhook UPDATE TO '0.3.0'" to load this file. \quit

------------------------------------------------------------------------------
-- events: one row per event, body computed, read by transaction
------------------------------------------------------------------------------
ALTER TABLE webhook.events ADD COLUMN txid xid8 NOT NULL DEFAULT '0';
ALTER TABLE webhook.events ALTER COLUMN txid SET DEFAULT pg_catalog.pg_current_xact_id();
ALTER TABLE webhook.events DROP CONSTRAINT events_event_type_check, DROP COLUMN body;
DROP INDEX webhook.events_created_at_idx;
CREATE INDEX events_txid_idx ON webhook.events (txid, id);
COMMENT ON TABLE webhook.events IS 'one row per event; id is the webhook-id header; the body sent is webhook._event_body(event_type, payload, created_at)';
COMMENT ON COLUMN webhook.events.txid IS 'the transaction that wrote the event; the delivery worker reads it once that transaction is visible';

------------------------------------------------------------------------------
-- The worker's position in the queue, from this transaction's snapshot
------------------------------------------------------------------------------
CREATE TABLE webhook.queue_positions (
    worker          integer PRIMARY KEY,
    done_snapshot   pg_snapshot NOT NULL,
    window_snapshot pg_snapshot,
    after_txid      xid8 NOT NULL DEFAULT '0',
    after_id        uuid NOT NULL DEFAULT '00000000-0000-0000-0000-000000000000',
    updated_at      timestamptz NOT NULL DEFAULT pg_catalog.now()
);
COMMENT ON TABLE webhook.queue_positions IS 'the delivery worker''s place in webhook.events, as transaction snapshots';
INSERT INTO webhook.queue_positions (worker, done_snapshot) VALUES (0, pg_catalog.pg_current_snapshot());

------------------------------------------------------------------------------
-- deliveries -> delivery_state, with its constraints, indexes and sequence
------------------------------------------------------------------------------
ALTER TABLE webhook.deliveries RENAME TO delivery_state;
ALTER TABLE webhook.delivery_state RENAME CONSTRAINT deliveries_pkey TO delivery_state_pkey;
ALTER TABLE webhook.delivery_state RENAME CONSTRAINT deliveries_status_check TO delivery_state_status_check;
ALTER TABLE webhook.delivery_state RENAME CONSTRAINT deliveries_attempts_check TO delivery_state_attempts_check;
ALTER TABLE webhook.delivery_state RENAME CONSTRAINT deliveries_event_id_fkey TO delivery_state_event_id_fkey;
ALTER TABLE webhook.delivery_state RENAME CONSTRAINT deliveries_endpoint_id_fkey TO delivery_state_endpoint_id_fkey;
ALTER INDEX webhook.deliveries_pending_by_endpoint_idx RENAME TO delivery_state_pending_by_endpoint_idx;
ALTER INDEX webhook.deliveries_event_idx RENAME TO delivery_state_event_idx;
ALTER INDEX webhook.deliveries_pending_in_order_idx RENAME TO delivery_state_pending_in_order_idx;
ALTER SEQUENCE webhook.deliveries_id_seq RENAME TO delivery_state_id_seq;
COMMENT ON TABLE webhook.delivery_state IS 'one row per (event, endpoint) the worker has read: the state of delivering that event there (read webhook.deliveries)';
COMMENT ON COLUMN webhook.delivery_state.claimed_at IS 'set while a delivery worker has the request in flight; the claim lapses after the endpoint''s timeout plus 30 s';

------------------------------------------------------------------------------
-- Reading the queue, and the functions that wrote webhook.deliveries
------------------------------------------------------------------------------

-- Is an event still unread by the delivery worker (it has no delivery_state
-- rows yet)?  Its transaction is not visible in the worker's done snapshot.
-- The range test lets the planner use events_txid_idx.
CREATE FUNCTION webhook._unread(txid xid8, done pg_snapshot)
RETURNS boolean LANGUAGE sql IMMUTABLE PARALLEL SAFE
RETURN txid >= pg_catalog.pg_snapshot_xmin(done) AND NOT pg_catalog.pg_visible_in_snapshot(txid, done);

-- The smallest event id (webhook.uuid_v7) made at a time: events with a
-- smaller id were made before it, so retention finds old events by their
-- primary key, with no index on created_at for every writer to maintain.
CREATE FUNCTION webhook._uuid_v7_floor(ts timestamptz)
RETURNS uuid LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
RETURN (pg_catalog.lpad(pg_catalog.to_hex(GREATEST(0, pg_catalog.floor(EXTRACT(epoch FROM ts) * 1000))::bigint), 12, '0')
        || '70008000000000000000')::uuid;

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

-- Deliveries still pending for a deleted endpoint can never be made: close
-- them, so the history says why; their rows stay readable with endpoint_id NULL.
-- Runs as the extension's owner: a role allowed to DELETE endpoints need not
-- be allowed to write webhook.delivery_state.
CREATE OR REPLACE FUNCTION webhook._endpoints_before_delete()
RETURNS trigger LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    UPDATE webhook.delivery_state
       SET status = 'failed', last_error = 'endpoint deleted', completed_at = now(), claimed_at = NULL
     WHERE endpoint_id = OLD.id AND status = 'pending';
    RETURN OLD;
END;
$$;

-- Enqueue one checked event inside the caller's transaction: one events
-- row (once per idempotency key), nothing per endpoint: the delivery worker
-- matches the endpoints when it reads the event after the commit.  send()
-- checks what callers give; the extension's own events come here directly.
CREATE OR REPLACE FUNCTION webhook._enqueue(event_type text, payload jsonb, idempotency_key text)
RETURNS uuid LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_column
DECLARE
    v_event_id uuid;
BEGIN
    IF _enqueue.idempotency_key IS NOT NULL THEN
        SELECT e.id INTO v_event_id FROM webhook.events e WHERE e.idempotency_key = _enqueue.idempotency_key;
        IF FOUND THEN
            RETURN v_event_id;
        END IF;
    END IF;

    INSERT INTO webhook.events AS e (event_type, payload, idempotency_key)
    VALUES (_enqueue.event_type, _enqueue.payload, _enqueue.idempotency_key)
    ON CONFLICT (idempotency_key) WHERE idempotency_key IS NOT NULL DO NOTHING
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

-- Enqueue one event per payload, set-based: one statement whatever the
-- number of rows, and nothing per endpoint (the worker matches them).
CREATE OR REPLACE FUNCTION webhook._enqueue_many(event_type text, payloads jsonb[])
RETURNS bigint LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
SET plan_cache_mode = force_generic_plan
AS $$
#variable_conflict use_column
DECLARE
    v_events bigint;
BEGIN
    -- The catalogue may have changed since watch() checked the type.
    PERFORM webhook._check_event_type(_enqueue_many.event_type);
    INSERT INTO webhook.events (event_type, payload)
    SELECT _enqueue_many.event_type,
           CASE WHEN p.payload IS NULL THEN webhook._raise_null_payload()::jsonb
                WHEN webhook._check_payload_size(octet_length(p.payload::text), true) THEN p.payload END
      FROM unnest(_enqueue_many.payloads) AS p(payload);
    GET DIAGNOSTICS v_events = ROW_COUNT;
    IF v_events > 0 THEN
        PERFORM webhook._wake_worker_at_commit();
    END IF;
    RETURN v_events;
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
    RETURNING id INTO v_event_id;
    INSERT INTO webhook.delivery_state (event_id, endpoint_id) VALUES (v_event_id, ping.endpoint_id)
    RETURNING id INTO v_delivery_id;
    PERFORM webhook._wake_worker_at_commit();
    RETURN v_delivery_id;
END;
$$;

-- Re-queue one delivery now; it keeps its webhook-id and attempt count.
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

-- Deliver an event again: to one endpoint, or to every active endpoint
-- subscribed to its type today.  Returns the number of new deliveries.
CREATE OR REPLACE FUNCTION webhook.replay(event_id uuid, endpoint_id bigint DEFAULT NULL)
RETURNS bigint LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_type text;
    v_count bigint;
BEGIN
    IF event_id IS NULL THEN
        RAISE EXCEPTION 'event_id must not be null' USING ERRCODE = 'null_value_not_allowed';
    END IF;
    SELECT e.event_type INTO v_type FROM webhook.events e WHERE e.id = replay.event_id;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'event % does not exist', event_id
            USING ERRCODE = 'no_data_found', HINT = 'Events older than webhook.retention_succeeded may have been purged.';
    END IF;
    IF endpoint_id IS NOT NULL AND NOT EXISTS (SELECT 1 FROM webhook.endpoints e WHERE e.id = replay.endpoint_id) THEN
        PERFORM webhook._raise_no_endpoint(endpoint_id);
    END IF;
    INSERT INTO webhook.delivery_state (event_id, endpoint_id)
    SELECT replay.event_id, ep.id FROM webhook.endpoints ep
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

-- Re-queue every failed delivery of an endpoint since a time, e.g. after
-- the receiver's outage is fixed.  Returns how many.
CREATE OR REPLACE FUNCTION webhook.recover(endpoint_id bigint, since timestamptz)
RETURNS bigint LANGUAGE plpgsql VOLATILE STRICT
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_count bigint;
BEGIN
    IF NOT EXISTS (SELECT 1 FROM webhook.endpoints e WHERE e.id = recover.endpoint_id) THEN
        PERFORM webhook._raise_no_endpoint(endpoint_id);
    END IF;
    UPDATE webhook.delivery_state d
       SET status = 'pending', next_attempt_at = now(), completed_at = NULL
     WHERE d.endpoint_id = recover.endpoint_id AND d.status = 'failed' AND d.created_at >= since;
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
         LIMIT batch
         FOR UPDATE SKIP LOCKED
    )
    DELETE FROM webhook.events e USING doomed WHERE e.id = doomed.id;
    GET DIAGNOSTICS v_events = ROW_COUNT;
    RETURN v_deliveries + v_events;
END;
$$;

------------------------------------------------------------------------------
-- webhook.deliveries, now a view; endpoint_health reads it (again by name)
------------------------------------------------------------------------------
CREATE VIEW webhook.deliveries AS
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
COMMENT ON VIEW webhook.deliveries IS 'one row per (event, endpoint): the state of delivering that event there; id is NULL until the worker has read the event';
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

------------------------------------------------------------------------------
-- Privileges: the new functions are not public, except the pure ones the
-- deliveries view calls; whoever could read the deliveries table may read
-- the view.
------------------------------------------------------------------------------
REVOKE ALL ON FUNCTION webhook._unread(xid8, pg_snapshot), webhook._uuid_v7_floor(timestamptz),
    webhook._window_events(pg_snapshot, pg_snapshot, xid8, uuid, integer),
    webhook._read_events(integer) FROM PUBLIC;
REVOKE ALL ON webhook.queue_positions, webhook.deliveries FROM PUBLIC;
GRANT EXECUTE ON FUNCTION webhook._unread(xid8, pg_snapshot), webhook._subscribed(text[], text),
    webhook._type_patterns(text)
    TO PUBLIC;
DO $$
DECLARE
    g record;
BEGIN
    FOR g IN
        SELECT a.grantee::regrole AS grantee, a.is_grantable
          FROM pg_catalog.pg_class c, pg_catalog.aclexplode(c.relacl) a
         WHERE c.oid = 'webhook.delivery_state'::pg_catalog.regclass AND a.privilege_type = 'SELECT'
           AND a.grantee <> c.relowner AND a.grantee <> 0
    LOOP
        EXECUTE pg_catalog.format('GRANT SELECT ON webhook.deliveries TO %s%s', g.grantee,
                                  CASE WHEN g.is_grantable THEN ' WITH GRANT OPTION' ELSE '' END);
    END LOOP;
END;
$$;
