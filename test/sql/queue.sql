-- The queue's reader: webhook._window_events() returns exactly the events
-- whose transactions are visible in the window's end snapshot and not in
-- the done one, in (txid, id) order, and paging through a window with any
-- page size returns each of them once.  Synthetic snapshots and txids, in a
-- transaction that is rolled back (the worker never sees these rows).
\set SHOW_CONTEXT never
BEGIN;
-- Synthetic txids are what a restore brings: without its trigger here,
-- which would set them aside (tested below).
ALTER TABLE webhook.events DISABLE TRIGGER events_restored;
-- Two events for each txid from 95 to 114.
INSERT INTO webhook.events (id, event_type, payload, txid)
SELECT ('00000000-0000-7000-8000-' || lpad((t * 10 + k)::text, 12, '0'))::uuid, 'queue.test',
       jsonb_build_object('t', t, 'k', k), t::text::xid8
  FROM generate_series(95, 114) AS t, generate_series(1, 2) AS k;

-- done: everything below 100 and 100, 101, 103, 104 had finished; 102 was
-- running.  cur: everything below 106 has finished, 107 still runs, 106,
-- 108 and 109 finished.  The window is 102, 105, 106, 108 and 109.
SELECT string_agg(DISTINCT w.txid::text, ',') AS window_txids, count(*) AS events
  FROM webhook._window_events('100:105:102', '106:110:107', '0', '00000000-0000-0000-0000-000000000000', 1000) w;

-- The same set as visible(cur) minus visible(done), over every event.
SELECT count(*) AS differences FROM (
    (SELECT id FROM webhook._window_events('100:105:102', '106:110:107', '0', '00000000-0000-0000-0000-000000000000', 1000)
     EXCEPT
     SELECT id FROM webhook.events e WHERE pg_visible_in_snapshot(e.txid, '106:110:107')
                                       AND NOT pg_visible_in_snapshot(e.txid, '100:105:102'))
    UNION ALL
    (SELECT id FROM webhook.events e WHERE pg_visible_in_snapshot(e.txid, '106:110:107')
                                       AND NOT pg_visible_in_snapshot(e.txid, '100:105:102')
     EXCEPT
     SELECT id FROM webhook._window_events('100:105:102', '106:110:107', '0', '00000000-0000-0000-0000-000000000000', 1000))) d;

-- In (txid, id) order.
SELECT array_agg(w.txid::text || '/' || right(w.id::text, 4)) AS in_order
  FROM webhook._window_events('100:105:102', '106:110:107', '0', '00000000-0000-0000-0000-000000000000', 1000) w;

-- Paging with a cursor, for every page size from 1 to 11: each event of the
-- window once, in order.
CREATE FUNCTION pg_temp.paged(n integer) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
    after_txid xid8 := '0';
    after_id uuid := '00000000-0000-0000-0000-000000000000';
    got text[] := '{}';
    r record;
    k integer;
BEGIN
    LOOP
        k := 0;
        FOR r IN SELECT * FROM webhook._window_events('100:105:102', '106:110:107', after_txid, after_id, n) LOOP
            got := got || (r.txid::text || '/' || right(r.id::text, 4));
            after_txid := r.txid;
            after_id := r.id;
            k := k + 1;
        END LOOP;
        EXIT WHEN k < n;
    END LOOP;
    RETURN array_to_string(got, ' ');
END;
$$;
SELECT count(DISTINCT pg_temp.paged(n)) AS one_answer,
       min(pg_temp.paged(n)) = (SELECT string_agg(w.txid::text || '/' || right(w.id::text, 4), ' ')
                                  FROM webhook._window_events('100:105:102', '106:110:107', '0',
                                                              '00000000-0000-0000-0000-000000000000', 1000) w) AS same_as_one_page
  FROM generate_series(1, 11) AS n;

-- An empty window (nothing finished since done) returns nothing.
SELECT count(*) AS events
  FROM webhook._window_events('106:110:107', '106:110:107', '0', '00000000-0000-0000-0000-000000000000', 1000);
-- A transaction that was running at done and still runs is not read; once
-- it finishes, the next window reads it, though its txid is older.
SELECT count(*) AS still_running
  FROM webhook._window_events('106:110:107', '107:112:107', '0', '00000000-0000-0000-0000-000000000000', 1000) w
 WHERE w.txid = '107';
SELECT string_agg(DISTINCT w.txid::text, ',') AS late_commit_read
  FROM webhook._window_events('106:110:107', '112:112:', '0', '00000000-0000-0000-0000-000000000000', 1000) w;
-- Events written with txid 0 (pings, events from before 0.3.0) are never read.
SELECT count(*) AS settled_read
  FROM webhook._window_events('1:1:', '200:200:', '0', '00000000-0000-0000-0000-000000000000', 1000) w
 WHERE w.txid = '0';
ROLLBACK;

-- The deliveries view shows the events of the current transaction as
-- pending deliveries with no id yet, to the endpoints that match now.
BEGIN;
INSERT INTO webhook.endpoints (id, name, url, event_types) VALUES
    (9501, 'queue-a', 'https://example.com/a', '{queue.*}'),
    (9502, 'queue-b', 'https://example.com/b', '{other.*}'),
    (9503, 'queue-c', 'https://example.com/c', '{*}');
SELECT webhook.send('queue.view', '{}') AS queued \gset
SELECT id, endpoint_id, status, attempts, next_attempt_at = now() AS due_now
  FROM webhook.deliveries WHERE event_id = :'queued' ORDER BY endpoint_id;
-- endpoint_health counts them as pending.
SELECT id, pending FROM webhook.endpoint_health WHERE id BETWEEN 9501 AND 9503 ORDER BY id;
ROLLBACK;
SELECT count(*) AS after_rollback FROM webhook.deliveries WHERE event_id = :'queued';

-- Retention finds old events by id: the smallest id of a time.
SELECT webhook._uuid_v7_floor(now() - interval '1 second') < webhook.uuid_v7() AS floor_below_newer,
       webhook._uuid_v7_floor(clock_timestamp() + interval '1 second') > webhook.uuid_v7() AS floor_above_older,
       webhook._uuid_v7_floor('1970-01-01 00:00:00+00') AS epoch;
-- One backend's ids only grow, also within a millisecond: a transaction's
-- events are read in the order they were written.
SELECT bool_and(prev < id) AS increasing, count(*) AS ids
  FROM (SELECT id, lag(id) OVER (ORDER BY n) AS prev
          FROM (SELECT n, webhook.uuid_v7() AS id FROM generate_series(1, 5000) AS n) s) t
 WHERE prev IS NOT NULL;

-- An empty read (the window closed, nothing new) costs a few index pages,
-- however many settled events there are: the range arm starts at
-- xmax(done), not at the closed window's cursor (0, nil).  Counted in
-- buffers, not time.
BEGIN;
INSERT INTO webhook.events (event_type, payload, txid)
SELECT 'queue.settled', '{}', '0' FROM generate_series(1, 20000);
ANALYZE webhook.events;
CREATE FUNCTION pg_temp.empty_read_buffers() RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE
    plan json;
BEGIN
    EXECUTE $q$EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON)
        SELECT * FROM webhook._window_events(pg_current_snapshot(), pg_current_snapshot(), '0',
                                             '00000000-0000-0000-0000-000000000000', 500)$q$ INTO plan;
    RETURN (plan -> 0 -> 'Plan' ->> 'Shared Hit Blocks')::bigint + (plan -> 0 -> 'Plan' ->> 'Shared Read Blocks')::bigint;
END;
$$;
SELECT pg_temp.empty_read_buffers() < 20 AS empty_read_is_cheap;
ROLLBACK;

-- webhook.workers: each endpoint belongs to exactly one worker, whatever its
-- id's sign; with one worker, to worker 0.
SELECT w AS workers, array_agg(webhook._worker_of(id, w) ORDER BY id) AS worker_of_ids
  FROM generate_series(1, 3) AS w CROSS JOIN unnest(ARRAY[-7, -1, 0, 1, 2, 3, 4, 9223372036854775807]) AS id
 GROUP BY w ORDER BY w;

-- A restore's event rows (txids another transaction gave them) are set
-- aside with txid 0, and its position, arriving while the database has its
-- own, with them.  Settled against that position, the events the source had
-- not read get their deliveries; those it had read (visible in done, or in
-- the open window up to its cursor) do not.
BEGIN;
INSERT INTO webhook.endpoints (id, name, url, event_types)
VALUES (9601, 'restore-a', 'https://example.com/restore', '{restore.*}');
INSERT INTO webhook.events (id, event_type, payload, txid) VALUES
    ('00000000-0000-7000-8000-000000000901', 'restore.done', '{}', '100'),
    ('00000000-0000-7000-8000-000000000902', 'restore.late', '{}', '102'),
    ('00000000-0000-7000-8000-000000000903', 'restore.unread', '{}', '106'),
    ('00000000-0000-7000-8000-000000000904', 'restore.paged', '{}', '105');
SELECT right(id::text, 3) AS id, txid FROM webhook.events
 WHERE id BETWEEN '00000000-0000-7000-8000-000000000901' AND '00000000-0000-7000-8000-000000000904' ORDER BY id;
SELECT right(event_id::text, 3) AS event_id, txid AS source_txid FROM webhook.restored_events ORDER BY event_id;
INSERT INTO webhook.queue_positions (worker, done_snapshot, window_snapshot, after_txid, after_id)
VALUES (0, '100:105:102', '106:110:107', '105', '00000000-0000-7000-8000-000000000904');
SELECT count(*) AS own_positions FROM webhook.queue_positions;
SELECT done_snapshot, window_snapshot, after_txid FROM webhook.restored_positions;
SELECT webhook._settle_restored() AS deliveries_made;
SELECT e.event_type FROM webhook.delivery_state d JOIN webhook.events e ON e.id = d.event_id
 WHERE d.endpoint_id = 9601 ORDER BY 1;
SELECT count(*) AS left_to_settle FROM webhook.restored_events;
SELECT count(*) AS positions_left FROM webhook.restored_positions;
-- Rows written here with txid 0, or the writing transaction's own, are not a restore's.
INSERT INTO webhook.events (event_type, payload, txid) VALUES ('restore.zero', '{}', '0');
INSERT INTO webhook.events (event_type, payload) VALUES ('restore.own', '{}');
SELECT count(*) AS set_aside FROM webhook.restored_events;
ROLLBACK;
-- The read plans with sequential scans, bitmap scans and merge joins off
-- (webhook_execute_by_probes), for its own statement only: the rest of the
-- caller's transaction plans as the session's settings say.
BEGIN;
SELECT webhook._read_events(100) >= 0 AS read;
SHOW enable_seqscan;
SHOW enable_bitmapscan;
SHOW enable_mergejoin;
ROLLBACK;
