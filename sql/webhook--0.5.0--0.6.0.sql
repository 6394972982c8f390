-- webhook 0.5.0 -> 0.6.0: ordering keys, content filters and scheduled
-- events (issue 14).
--  * webhook.events.ordering_key and delivery_state.ordering_key: an ordered
--    endpoint delivers one key's events in order, keys in parallel.
--  * webhook.endpoints.filter: an SQL/JSON path predicate over the payload,
--    evaluated when the worker reads events; events it cannot judge are
--    counted in webhook.endpoint_state (and webhook.endpoint_health).
--  * webhook.send(..., deliver_at => ...): webhook.events.deliver_at; the
--    deliveries view shows 'scheduled'; webhook.cancel(event_id); the
--    'cancelled' delivery status.
-- send() gains two parameters (deliver_at, ordering_key), so it is a new
-- function: the privileges granted on the old one are granted on the new one.
\echo Use "ALTER EXTENSION webhook UPDATE TO '0.6.0'" to load this file. \quit

-- send() and watch() are replaced (they gain parameters): objects that
-- depend on the old ones (a view, or a function written with BEGIN ATOMIC)
-- would block that.
-- Say which, and what to do, rather than fail on the DROP.
DO $$
DECLARE
    v_users text;
BEGIN
    SELECT pg_catalog.string_agg(pg_catalog.pg_describe_object(d.classid, d.objid, d.objsubid), ', ')
      INTO v_users
      FROM pg_catalog.pg_depend d
     WHERE d.refclassid = 'pg_catalog.pg_proc'::pg_catalog.regclass
       AND d.refobjid = pg_catalog.to_regprocedure('webhook.send(text, jsonb, text)')
       AND d.deptype = 'n';
    IF v_users IS NOT NULL THEN
        RAISE EXCEPTION 'webhook.send(text, jsonb, text) is used by %', v_users
            USING ERRCODE = 'dependent_objects_still_exist',
                  DETAIL = 'The update to 0.6.0 replaces it with webhook.send(text, jsonb, text, timestamptz, text).',
                  HINT = 'Drop these objects, run ALTER EXTENSION webhook UPDATE, then create them again: their calls of send() need no change.';
    END IF;
    SELECT pg_catalog.string_agg(pg_catalog.pg_describe_object(d.classid, d.objid, d.objsubid), ', ')
      INTO v_users
      FROM pg_catalog.pg_depend d
     WHERE d.refclassid = 'pg_catalog.pg_proc'::pg_catalog.regclass
       AND d.refobjid = pg_catalog.to_regprocedure('webhook.watch(regclass, text, text[], text[], text, text[])')
       AND d.deptype = 'n';
    IF v_users IS NOT NULL THEN
        RAISE EXCEPTION 'webhook.watch(regclass, text, text[], text[], text, text[]) is used by %', v_users
            USING ERRCODE = 'dependent_objects_still_exist',
                  DETAIL = 'The update to 0.6.0 replaces it with webhook.watch(regclass, text, text[], text[], text, text[], text[]).',
                  HINT = 'Drop these objects, run ALTER EXTENSION webhook UPDATE, then create them again: their calls of watch() need no change.';
    END IF;
END;
$$;

------------------------------------------------------------------------------
-- Content filters
------------------------------------------------------------------------------

-- Is this SQL/JSON path a predicate (a boolean result for any payload)?
-- The CHECK of webhook.endpoints.filter (src/endpoint_filter.c).
CREATE FUNCTION webhook._is_jsonpath_predicate(filter jsonpath)
RETURNS boolean LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE
AS 'MODULE_PATHNAME', 'webhook_is_jsonpath_predicate';

ALTER TABLE webhook.endpoints ADD COLUMN filter jsonpath
    CONSTRAINT endpoints_filter_check CHECK (webhook._is_jsonpath_predicate(filter));
COMMENT ON COLUMN webhook.endpoints.filter IS 'SQL/JSON path predicate over the event''s payload: the endpoint gets an event only when it is true (jsonb_path_match); NULL: every event of its types';
-- Request formats (issue 15: CloudEvents and the seeds' own formats).
-- A content filter must be a predicate: "$.amount > 100", not "$.amount",
-- whose items jsonb_path_match() would refuse for every event.
CREATE FUNCTION webhook._check_endpoint_filter(filter jsonpath)
RETURNS void LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF NOT webhook._is_jsonpath_predicate(filter) THEN
        RAISE EXCEPTION 'filter % is not a predicate', filter
            USING ERRCODE = 'invalid_parameter_value',
                  DETAIL = 'An endpoint''s filter must return true or false for an event''s payload; this path returns items.',
                  HINT = 'Write a comparison or exists(), such as ''$.amount > 100 && $.currency == "EUR"'' or ''exists($.tags ? (@ == "vip"))''.';
    END IF;
END;
$$;
-- Check a row of webhook.endpoints before it is written, fill in a secret
-- and keep updated_at current, so that nothing half-valid reaches the worker.
-- Each check is a helper above; their order is the order a writer sees errors in.
CREATE OR REPLACE FUNCTION webhook._endpoints_before_write()
RETURNS trigger LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_check text[];
BEGIN
    -- Before the NOT NULL constraint, whose error would print the row and its secret.
    IF NEW.url IS NULL THEN
        RAISE EXCEPTION 'url must not be null'
            USING ERRCODE = 'not_null_violation',
                  HINT = 'Give the receiver''s absolute http:// or https:// URL, such as https://example.com/webhooks.';
    END IF;
    -- The columns to check: those the write changes, or all of them when it
    -- inserts or re-activates the endpoint (webhook._endpoints_seal follows
    -- the same rule).  A row that an older rule, a newer policy or a restore
    -- let in stays writable for anything else: a 410 or the auto-disable must
    -- turn it off whatever its other columns hold.
    v_check := ARRAY(SELECT c.key FROM jsonb_each(to_jsonb(NEW)) AS c
                      WHERE c.value IS DISTINCT FROM
                            CASE WHEN TG_OP = 'UPDATE' AND (OLD.active OR NOT NEW.active)
                                 THEN to_jsonb(OLD) -> c.key END);
    -- The URL is checked too at any write that leaves the endpoint on, and
    -- never when the write turns it off.
    IF 'url' = ANY (v_check) OR NEW.active THEN
        PERFORM webhook._check_endpoint_url(NEW.url);
    END IF;
    IF 'event_types' = ANY (v_check) THEN
        PERFORM webhook._check_endpoint_event_types(NEW.event_types);
    END IF;
    IF 'signing' = ANY (v_check) THEN
        PERFORM webhook._check_endpoint_signing(NEW.signing);
    END IF;
    -- Header names and values, the signature header and secrets are checked
    -- in clear by webhook._endpoints_seal(), the trigger that fires next.
    PERFORM webhook._check_endpoint_limits(v_check, NEW.timeout_ms, NEW.max_in_flight, NEW.rate_limit_per_s);
    NEW.transform_role := webhook._endpoint_transform_role(TG_OP = 'INSERT', NEW.transform, NEW.transform_role,
                                                           OLD.id, OLD.transform, OLD.transform_role);
    IF 'retry_schedule_s' = ANY (v_check) THEN
        PERFORM webhook._check_endpoint_retry_schedule(NEW.retry_schedule_s);
    END IF;
    PERFORM webhook._check_endpoint_auth(v_check, NEW.auth_username, NEW.auth_password);
    IF 'filter' = ANY (v_check) THEN
        PERFORM webhook._check_endpoint_filter(NEW.filter);
    END IF;

    -- A secret is generated when missing, and again when the scheme changes
    -- to or from ed25519 without a new secret (the key kinds differ).
    IF NEW.secret IS NULL AND NEW.signing <> 'none'
       OR TG_OP = 'UPDATE' AND NEW.secret IS NOT DISTINCT FROM OLD.secret
          AND (NEW.signing = 'ed25519') <> (OLD.signing = 'ed25519') AND NEW.signing <> 'none' THEN
        NEW.secret := webhook.generate_secret(NEW.signing);
    END IF;
    IF TG_OP = 'UPDATE' THEN
        NEW.updated_at := now();
        -- Re-activating an endpoint clears why it was disabled.
        IF NEW.active AND NOT OLD.active THEN
            NEW.disabled_at := NULL;
            NEW.disabled_reason := NULL;
        END IF;
    END IF;

    PERFORM webhook._check_endpoint_not_null(to_jsonb(NEW), TG_RELID);
    RETURN NEW;
END;
$$;

ALTER TABLE webhook.endpoint_state
    ADD COLUMN filter_errors bigint NOT NULL DEFAULT 0,
    ADD COLUMN last_filter_error_at timestamptz,
    ADD COLUMN last_filter_error_event uuid;
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
-- Does an endpoint's filter pass a payload?  Unknown (or an error the
-- filter raises) is no: the same rule as when the worker reads events.
CREATE FUNCTION webhook._passes_filter(filter jsonpath, payload jsonb)
RETURNS boolean LANGUAGE sql IMMUTABLE PARALLEL SAFE
RETURN filter IS NULL OR coalesce(webhook._filter_verdict(filter, payload), false);

------------------------------------------------------------------------------
-- Scheduled events and cancelled deliveries
------------------------------------------------------------------------------

ALTER TABLE webhook.events ADD COLUMN deliver_at timestamptz;
COMMENT ON COLUMN webhook.events.deliver_at IS 'send(..., deliver_at => ...): no delivery of the event is attempted before this time; NULL: at once';

------------------------------------------------------------------------------
-- Ordering keys
------------------------------------------------------------------------------

ALTER TABLE webhook.events ADD COLUMN ordering_key text;
COMMENT ON COLUMN webhook.events.ordering_key IS 'send(..., ordering_key => ...) or a watched row''s key: an ordered endpoint delivers the events of one key strictly in order, different keys in parallel; NULL: the endpoint''s own sequence';
ALTER TABLE webhook.delivery_state ADD COLUMN ordering_key text COLLATE "C" NOT NULL DEFAULT '';
DROP INDEX webhook.delivery_state_pending_in_order_idx;
-- Ordered endpoints take the oldest pending delivery of each ordering key
-- (webhook._ordered_heads: one probe per key).
CREATE INDEX delivery_state_pending_in_order_idx ON webhook.delivery_state (endpoint_id, ordering_key, id)
    WHERE status = 'pending';
COMMENT ON COLUMN webhook.endpoints.ordered IS 'deliver this endpoint''s events strictly in creation order per ordering key (one at a time per key, keys in parallel up to max_in_flight)';
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
ALTER TABLE webhook.table_watches ADD COLUMN ordering_key int2[];
DROP FUNCTION webhook.watch(regclass, text, text[], text[], text, text[]);
-- Emit <prefix>.created / .updated / .deleted from a table's row changes.
-- Calling it again replaces the watch's options.  The condition is one
-- boolean expression over NEW and OLD, parsed by PostgreSQL's parser.
CREATE FUNCTION webhook.watch(tbl regclass,
                              event_prefix text DEFAULT NULL,
                              operations text[] DEFAULT '{insert,update,delete}',
                              columns text[] DEFAULT NULL,
                              condition text DEFAULT NULL,
                              exclude_columns text[] DEFAULT NULL,
                              ordering_key text[] DEFAULT NULL)
RETURNS void LANGUAGE C VOLATILE
AS 'MODULE_PATHNAME', 'webhook_watch';
COMMENT ON FUNCTION webhook.watch(regclass, text, text[], text[], text, text[], text[]) IS 'emit <prefix>.created/.updated/.deleted events from row changes of a table; ordering_key: the columns of a row''s ordering key (NULL: the primary key, ''{}'': none)';
-- Every watched table and its options.
CREATE OR REPLACE VIEW webhook.watches WITH (security_invoker = true) AS
SELECT w.table_oid AS "table", w.event_prefix, w.operations,
       webhook._column_names(w.table_oid, w.columns) AS columns,
       webhook._watch_condition(w.table_oid) AS condition,
       webhook._column_names(w.table_oid, w.exclude_columns) AS exclude_columns,
       w.created_at, w.updated_at,
       webhook._column_names(w.table_oid, w.ordering_key) AS ordering_key
  FROM webhook.table_watches w;

-- Checked on every partition (a scan of the deliveries kept).
ALTER TABLE webhook.delivery_state DROP CONSTRAINT delivery_state_status_check;
ALTER TABLE webhook.delivery_state ADD CONSTRAINT delivery_state_status_check
    CHECK (status IN ('pending', 'succeeded', 'failed', 'cancelled'));

------------------------------------------------------------------------------
-- Reading the queue: filters and delivery times
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
-- Fan one page of a window out into pending delivery_state rows, one per
-- active endpoint subscribed to each event whose filter the payload passes,
-- in queue order (ordered endpoints deliver by id, per ordering key), due
-- at the event's deliver_at if later.  A filter that cannot judge an event
-- (unknown, or an error it raises) sends it nowhere, and counts in the
-- endpoint's state (webhook.endpoint_health).  With safe, each filter is
-- evaluated on its own (webhook._filter_verdict), so that one that raises
-- even with silent => true costs only its own event.  Returns the number of
-- events in the page and the last one's (txid, id).
CREATE FUNCTION webhook._fan_out(done pg_snapshot, cur pg_snapshot, after_txid xid8, after_id uuid,
                                 page integer, safe boolean,
                                 OUT n integer, OUT last_txid xid8, OUT last_id uuid)
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
-- PL/pgSQL, not SQL: the statement's plan is kept for the session (a SQL
-- function is planned again at every call, a millisecond here).
#variable_conflict use_column
BEGIN
WITH page AS MATERIALIZED (
    SELECT w.txid, w.id, w.event_type, w.gen, w.payload, w.deliver_at, w.ordering_key
      FROM webhook._window_events(done, cur, after_txid, after_id, page) w
), matched AS (
    SELECT p.txid, p.id, p.gen, p.deliver_at, p.ordering_key, ep.id AS endpoint_id,
           CASE WHEN ep.filter IS NULL THEN true
                WHEN safe THEN webhook._filter_verdict(ep.filter, p.payload)
                ELSE pg_catalog.jsonb_path_match(p.payload, ep.filter, '{}', true) END AS passes
      FROM page p JOIN webhook.endpoints ep
        ON ep.active AND webhook._subscribed(ep.event_types, p.event_type)
), made AS (
    INSERT INTO webhook.delivery_state (event_id, endpoint_id, gen, next_attempt_at, ordering_key)
    SELECT m.id, m.endpoint_id, m.gen, greatest(m.deliver_at, pg_catalog.now()), coalesce(m.ordering_key, '')
      FROM matched m WHERE m.passes
     ORDER BY m.txid, m.id, m.endpoint_id
), unjudged AS (
    INSERT INTO webhook.endpoint_state AS s (endpoint_id, filter_errors, last_filter_error_at, last_filter_error_event)
    SELECT m.endpoint_id, count(*), pg_catalog.now(), (pg_catalog.array_agg(m.id ORDER BY m.txid DESC, m.id DESC))[1]
      FROM matched m WHERE m.passes IS NULL
     GROUP BY m.endpoint_id
    ON CONFLICT (endpoint_id) DO UPDATE
       SET filter_errors = s.filter_errors + excluded.filter_errors,
           last_filter_error_at = excluded.last_filter_error_at,
           last_filter_error_event = excluded.last_filter_error_event
)
SELECT (SELECT count(*) FROM page)::integer, l.txid, l.id INTO n, last_txid, last_id
  FROM (SELECT 1) one
  LEFT JOIN (SELECT p.txid, p.id FROM page p ORDER BY p.txid DESC, p.id DESC LIMIT 1) l ON true;
END;
$$;
-- Read the next page of new events (at most page events) into pending
-- delivery_state rows (webhook._fan_out), and move the position on.  The
-- delivery worker runs it as the first statement of a transaction: the
-- window's end is then a snapshot in which the worker's own transaction is
-- not running yet, and which sees every transaction committed so far.
-- A short page closes the window (done := its end); a full one keeps it open
-- with a cursor, so the next call reads on from there.  While any active
-- endpoint has a filter, a page on which a filter raises is read again with
-- each filter evaluated on its own: one bad filter or payload never stops
-- the reading.  Returns the number of events read.
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
    v_safe boolean := false;
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

    IF NOT EXISTS (SELECT 1 FROM webhook.endpoints ep WHERE ep.active AND ep.filter IS NOT NULL) THEN
        SELECT f.n, f.last_txid, f.last_id INTO v_read, v_last_txid, v_last_id
          FROM webhook._fan_out(pos.done_snapshot, v_cur, pos.after_txid, pos.after_id, page, false) f;
    ELSE
        LOOP
            BEGIN
                SELECT f.n, f.last_txid, f.last_id INTO v_read, v_last_txid, v_last_id
                  FROM webhook._fan_out(pos.done_snapshot, v_cur, pos.after_txid, pos.after_id, page, v_safe) f;
                EXIT;
            EXCEPTION WHEN OTHERS THEN
                IF v_safe THEN
                    RAISE;
                END IF;
                v_safe := true;
            END;
        END LOOP;
    END IF;

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

------------------------------------------------------------------------------
-- send() with deliver_at and ordering_key
------------------------------------------------------------------------------

-- Who may call send() now, granted again on the new one below.
CREATE TABLE webhook._v05_send_acl AS
SELECT p.proowner, p.proacl FROM pg_catalog.pg_proc p
 WHERE p.oid = 'webhook.send(text, jsonb, text)'::pg_catalog.regprocedure;
DROP FUNCTION webhook.send(text, jsonb, text);
DROP FUNCTION webhook._enqueue(text, jsonb, text);
-- Enqueue one checked event inside the caller's transaction, by SQL: one
-- events row (once per idempotency key), nothing per endpoint: the delivery
-- worker matches the endpoints when it reads the event after the commit.
-- send() comes here for events with an idempotency key or a delivery time
-- (the rest it writes from C); the extension's own events come here directly.
CREATE FUNCTION webhook._enqueue(event_type text, payload jsonb, idempotency_key text,
                                 deliver_at timestamptz DEFAULT NULL, ordering_key text DEFAULT NULL)
RETURNS uuid LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_column
DECLARE
    v_event_id uuid;
BEGIN
    IF NOT isfinite(_enqueue.deliver_at) THEN
        RAISE EXCEPTION 'deliver_at must be a finite time'
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'Give a time such as now() + interval ''1 day''; NULL delivers at once.';
    END IF;
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

    INSERT INTO webhook.events AS e (event_type, payload, idempotency_key, deliver_at, ordering_key)
    VALUES (_enqueue.event_type, _enqueue.payload, _enqueue.idempotency_key, _enqueue.deliver_at, _enqueue.ordering_key)
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
-- Enqueue one event inside the caller's transaction: it exists, and is
-- delivered, only if that transaction commits; with deliver_at, not before
-- that time (the worker sleeps until then); with ordering_key, in order
-- after the key's earlier events on ordered endpoints.  Written in C
-- (src/enqueue.c):
-- the row goes into webhook.events without a planned INSERT, as COPY writes.
-- It names no object by search_path (every name it uses is qualified), so it
-- sets none: SECURITY DEFINER for webhook._enqueue and the catalogue.
CREATE FUNCTION webhook.send(event_type text, payload jsonb, idempotency_key text DEFAULT NULL,
                             deliver_at timestamptz DEFAULT NULL, ordering_key text DEFAULT NULL)
RETURNS uuid LANGUAGE C VOLATILE
SECURITY DEFINER
AS 'MODULE_PATHNAME', 'webhook_send';
COMMENT ON FUNCTION webhook.send(text, jsonb, text, timestamptz, text) IS 'enqueue an event in the current transaction, to be delivered at once or at deliver_at, in order per ordering_key on ordered endpoints; returns its id (the webhook-id)';

------------------------------------------------------------------------------
-- Operations
------------------------------------------------------------------------------

-- Deliver an event again: to one endpoint, or to every active endpoint
-- subscribed to its type today; either way only where the endpoint's filter,
-- as it is now, passes the payload.  Returns the number of new deliveries.
CREATE OR REPLACE FUNCTION webhook.replay(event_id uuid, endpoint_id bigint DEFAULT NULL)
RETURNS bigint LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_type text;
    v_gen smallint;
    v_payload jsonb;
    v_key text;
    v_count bigint;
BEGIN
    IF event_id IS NULL THEN
        RAISE EXCEPTION 'event_id must not be null' USING ERRCODE = 'null_value_not_allowed';
    END IF;
    -- Locked until commit, so that no purge deletes it under its new delivery.
    SELECT e.event_type, e.gen, e.payload, coalesce(e.ordering_key, '') INTO v_type, v_gen, v_payload, v_key
      FROM webhook.events e WHERE e.id = replay.event_id FOR KEY SHARE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'event % does not exist', event_id
            USING ERRCODE = 'no_data_found', HINT = 'Events older than webhook.retention_succeeded may have been purged.';
    END IF;
    IF endpoint_id IS NOT NULL AND NOT EXISTS (SELECT 1 FROM webhook.endpoints e WHERE e.id = replay.endpoint_id) THEN
        PERFORM webhook._raise_no_endpoint(endpoint_id);
    END IF;
    INSERT INTO webhook.delivery_state (event_id, endpoint_id, gen, ordering_key)
    SELECT replay.event_id, ep.id, v_gen, v_key FROM webhook.endpoints ep
     WHERE CASE WHEN replay.endpoint_id IS NULL
                THEN ep.active AND webhook._subscribed(ep.event_types, v_type)
                ELSE ep.id = replay.endpoint_id END
       AND webhook._passes_filter(ep.filter, v_payload);
    GET DIAGNOSTICS v_count = ROW_COUNT;
    IF v_count > 0 THEN
        PERFORM webhook._wake_worker_at_commit();
    END IF;
    RETURN v_count;
END;
$$;
-- Re-queue every failed delivery of an endpoint since a time, e.g. after
-- the receiver's outage is fixed, whose event passes the endpoint's filter
-- as it is now.  Returns how many.
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
      FROM webhook.endpoints ep, webhook.events e
     WHERE d.endpoint_id = recover.endpoint_id AND d.status = 'failed' AND d.created_at >= since
       AND ep.id = d.endpoint_id AND e.id = d.event_id AND e.gen = d.gen
       AND webhook._passes_filter(ep.filter, e.payload);
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
-- Cancel an event that no endpoint has received yet: its pending
-- deliveries become cancelled, and none is attempted.  Returns what it
-- cancelled, one row per delivery.  Refused when a delivery of it was
-- attempted or is in flight (the receiver may have it), and when the worker
-- has not read the event yet: until then there is nothing to cancel by row,
-- and cancelling there would race the worker's reading.  Locks the
-- deliveries, so a worker's claim either comes first (and cancel refuses)
-- or finds them cancelled.
CREATE FUNCTION webhook.cancel(event_id uuid)
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
COMMENT ON FUNCTION webhook.cancel(uuid) IS 'cancel an event (a scheduled one, say) that no endpoint has been sent yet; returns the deliveries cancelled';

------------------------------------------------------------------------------
-- Views
------------------------------------------------------------------------------

------------------------------------------------------------------------------
-- Health, for people in psql
------------------------------------------------------------------------------

-- Every delivery: the worker's delivery_state rows, and the deliveries of
-- events it has not read yet (committed a moment ago, or written by the
-- current transaction), as pending rows with no id yet, to the endpoints
-- that match now.  The worker matches endpoints when it reads the event.
-- A first attempt that waits for its event's deliver_at is 'scheduled'.
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
                    WHERE s.event_id = e.id AND s.endpoint_id = ep.id);
COMMENT ON VIEW webhook.deliveries IS 'one row per (event, endpoint): the state of delivering that event there (pending, scheduled, succeeded, failed or cancelled); id is NULL until the worker has read the event';
CREATE OR REPLACE VIEW webhook.endpoint_health AS
SELECT ep.id, ep.name, ep.url, ep.active,
       (SELECT count(*) FROM webhook.deliveries d WHERE d.endpoint_id = ep.id AND d.status = 'pending') AS pending,
       h.succeeded_1h, h.failed_1h, h.succeeded_24h, h.failed_24h,
       round(100.0 * h.ok_24h / nullif(h.attempts_24h, 0), 1) AS success_rate_24h,
       round(h.p50_ms::numeric, 1) AS p50_ms, round(h.p95_ms::numeric, 1) AS p95_ms,
       s.last_success_at, s.last_failure_at, s.last_error,
       coalesce(s.consecutive_failures, 0) AS consecutive_failures, s.failing_since,
       ep.disabled_at, ep.disabled_reason,
       (SELECT count(*) FROM webhook.deliveries d WHERE d.endpoint_id = ep.id AND d.status = 'scheduled') AS scheduled,
       coalesce(s.filter_errors, 0) AS filter_errors, s.last_filter_error_at, s.last_filter_error_event,
       coalesce(k.blocked_keys, 0) AS blocked_keys, k.oldest_blocked_at
  FROM webhook.endpoints ep
  LEFT JOIN webhook.endpoint_state s ON s.endpoint_id = ep.id
  -- An ordered endpoint's keys whose head is failing and retrying (only
  -- heads are attempted): each holds only its own key's later deliveries.
  LEFT JOIN LATERAL (
      SELECT count(DISTINCT b.ordering_key) AS blocked_keys, min(b.created_at) AS oldest_blocked_at
        FROM webhook.delivery_state b
       WHERE ep.ordered AND b.endpoint_id = ep.id AND b.status = 'pending' AND b.attempts > 0
  ) k ON true
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
COMMENT ON VIEW webhook.endpoint_health IS 'per endpoint: backlog, attempts and success in the last hour and day, latency, failure streak, scheduled deliveries, events its filter could not judge, ordering keys blocked by a failing delivery';

------------------------------------------------------------------------------
-- Privileges
------------------------------------------------------------------------------

REVOKE ALL ON FUNCTION webhook._is_jsonpath_predicate(jsonpath), webhook._check_endpoint_filter(jsonpath),
    webhook._passes_filter(jsonpath, jsonb), webhook._window_events(pg_snapshot, pg_snapshot, xid8, uuid, integer),
    webhook._enqueue(text, jsonb, text, timestamptz, text), webhook.send(text, jsonb, text, timestamptz, text),
    webhook.cancel(uuid), webhook._ordered_heads(bigint), webhook._filter_verdict(jsonpath, jsonb),
    webhook._fan_out(pg_snapshot, pg_snapshot, xid8, uuid, integer, boolean),
    webhook.watch(regclass, text, text[], text[], text, text[], text[])
    FROM PUBLIC;
-- Content filters (issue 14): the check the endpoints trigger and CHECK run.
GRANT EXECUTE ON FUNCTION webhook._is_jsonpath_predicate(jsonpath), webhook._check_endpoint_filter(jsonpath),
    webhook._passes_filter(jsonpath, jsonb), webhook._filter_verdict(jsonpath, jsonb)
    TO PUBLIC;
-- A table's owner may watch it: watch() and unwatch() check ownership and
-- write the watch table themselves; nobody else writes it, and row level
-- security shows each owner their own watches.
GRANT EXECUTE ON FUNCTION webhook.watch(regclass, text, text[], text[], text, text[], text[]),
    webhook.unwatch(regclass), webhook._watch_trigger() TO PUBLIC;

-- What an administrator granted on send() (EXECUTE to the application's
-- role) holds for the new send().
DO $$
DECLARE
    r record;
BEGIN
    FOR r IN
        SELECT a.grantee, a.is_grantable
          FROM webhook._v05_send_acl c CROSS JOIN LATERAL pg_catalog.aclexplode(c.proacl) a
         WHERE a.grantee <> c.proowner AND a.privilege_type = 'EXECUTE'
    LOOP
        EXECUTE pg_catalog.format('GRANT EXECUTE ON FUNCTION webhook.send(text, jsonb, text, timestamptz, text) TO %s%s',
                                  CASE WHEN r.grantee = 0 THEN 'PUBLIC'
                                       ELSE pg_catalog.quote_ident(pg_catalog.pg_get_userbyid(r.grantee)) END,
                                  CASE WHEN r.is_grantable THEN ' WITH GRANT OPTION' ELSE '' END);
    END LOOP;
    -- Granted here, inside the extension's script, they would count as the
    -- extension's own (pg_init_privs), and pg_dump would leave them out:
    -- the extension's own privilege on send() is a fresh install's.
    UPDATE pg_catalog.pg_init_privs i
       SET initprivs = ARRAY[pg_catalog.makeaclitem(p.proowner, p.proowner, 'EXECUTE', false)]
      FROM pg_catalog.pg_proc p
     WHERE i.classoid = 'pg_catalog.pg_proc'::pg_catalog.regclass AND i.objoid = p.oid AND i.objsubid = 0
       AND p.oid = 'webhook.send(text, jsonb, text, timestamptz, text)'::pg_catalog.regprocedure;
END;
$$;
DROP TABLE webhook._v05_send_acl;
