-- Retention by generation: the queue's tables are partitioned by
-- generation; webhook._rotate_generations() starts a new generation and
-- empties old ones with TRUNCATE, first moving what must outlive them into
-- the current one.  In a transaction that is rolled back, holding the
-- partitions' locks from the start (the delivery worker never sees these
-- rows, and never makes the NOWAIT locks fail).
\set SHOW_CONTEXT never
BEGIN;
SELECT FROM webhook.queue_generations FOR UPDATE;
LOCK TABLE webhook.events, webhook.delivery_state, webhook.delivery_log IN ACCESS EXCLUSIVE MODE;
SELECT webhook._current_generation() AS current;

INSERT INTO webhook.endpoints (id, name, url) VALUES (9501, 'retention', 'https://example.com/retention');
-- Events read long ago (txid 0: settled), in generation 0, each with one
-- delivery in some state, and one log row per attempt.
INSERT INTO webhook.events (id, event_type, payload, txid, created_at)
SELECT ('00000000-0000-7000-8000-00000000000' || n)::uuid, 'retention.test', jsonb_build_object('case', c), '0', now() - interval '40 days'
  FROM (VALUES (1, 'succeeded long ago'), (2, 'failed 2 days ago'), (3, 'failed 40 days ago'),
               (4, 'pending'), (5, 'succeeded lately, on a retry'), (6, 'no delivery')) AS v(n, c);
INSERT INTO webhook.delivery_state (id, event_id, endpoint_id, status, attempts, completed_at)
OVERRIDING SYSTEM VALUE
SELECT 950000 + n, ('00000000-0000-7000-8000-00000000000' || n)::uuid, 9501, s, a, now() - done
  FROM (VALUES (1, 'succeeded', 1, interval '10 days'), (2, 'failed', 3, interval '2 days'),
               (3, 'failed', 2, interval '40 days'), (4, 'pending', 0, NULL),
               (5, 'succeeded', 2, interval '1 hour')) AS v(n, s, a, done);
INSERT INTO webhook.delivery_log (delivery_id, endpoint_id, event_id, attempt, url, attempted_at, duration_ms)
SELECT d.id, d.endpoint_id, d.event_id, k, 'https://example.com/retention',
       coalesce(d.completed_at, now() - interval '40 days') - (d.attempts - k) * interval '1 day', 1
  FROM webhook.delivery_state d CROSS JOIN generate_series(1, d.attempts) AS k
 WHERE d.endpoint_id = 9501;

-- Everything went to generation 0, the current one.
SELECT 'events' AS "table", gen, count(*) FROM webhook.events WHERE event_type = 'retention.test' GROUP BY gen
UNION ALL SELECT 'delivery_state', gen, count(*) FROM webhook.delivery_state WHERE endpoint_id = 9501 GROUP BY gen
UNION ALL SELECT 'delivery_log', gen, count(*) FROM webhook.delivery_log WHERE endpoint_id = 9501 GROUP BY gen
ORDER BY 1, 2;

-- A generation older than the period ends, and the next free one begins;
-- a generation that ended after the cutoff is not emptied.
SELECT webhook._rotate_generations(now() - interval '7 days', now() - interval '30 days', interval '0') AS emptied;
SELECT gen, began_at IS NOT NULL AS began, ended_at IS NULL AS open FROM webhook.queue_generations ORDER BY gen;
SELECT webhook._current_generation() AS current;
-- Not again within the period.
SELECT webhook._rotate_generations(now() - interval '7 days', now() - interval '30 days', interval '1 day') AS emptied;
SELECT webhook._current_generation() AS current;

-- Eight days later, generation 0 ended before the 7-day cutoff, but a
-- delivery in it succeeded an hour ago (the worker lagged): it waits, and
-- nothing moves.
UPDATE webhook.queue_generations SET ended_at = now() - interval '8 days' WHERE gen = 0;
SELECT webhook._rotate_generations(now() - interval '7 days', now() - interval '30 days', interval '1 day') AS emptied;
SELECT webhook._empty_generation(0::smallint, 1::smallint, now() - interval '7 days', now() - interval '30 days') AS why;
SELECT count(*) AS rows_moved FROM webhook.delivery_state WHERE endpoint_id = 9501 AND gen <> 0;
-- Once that success is older than the cutoff too: kept, moved into
-- generation 1, the pending delivery and the one that failed 2 days ago,
-- with their events (now txid 0: read) and log rows.  The rest stays until
-- a later turn truncates it.
UPDATE webhook.delivery_state SET completed_at = now() - interval '8 days' WHERE id = 950005;
SELECT webhook._rotate_generations(now() - interval '7 days', now() - interval '30 days', interval '1 day') AS emptied;
SELECT e.payload ->> 'case' AS "case", e.gen, e.txid, d.id AS delivery, d.gen AS delivery_gen, d.status,
       (SELECT count(*) FROM webhook.delivery_log l WHERE l.delivery_id = d.id AND l.gen = d.gen) AS log_rows
  FROM webhook.events e LEFT JOIN webhook.delivery_state d ON d.event_id = e.id
 WHERE e.event_type = 'retention.test' ORDER BY e.id, d.gen;
SELECT gen, moved_xid IS NOT NULL AS moved FROM webhook.queue_generations ORDER BY gen;
-- TRUNCATE waits until no snapshot older than the move is in use (here:
-- as if every such snapshot had gone); then the rest goes: the one that
-- succeeded 10 days ago, the one that failed 40 days ago, the event
-- without deliveries.  No snapshot is older than transaction 3.
SELECT webhook._snapshot_older_than('3') AS older_than_3;
UPDATE webhook.queue_generations SET moved_xid = '3' WHERE gen = 0;
SELECT webhook._rotate_generations(now() - interval '7 days', now() - interval '30 days', interval '1 day') AS emptied;
SELECT e.payload ->> 'case' AS "case", e.gen, d.id AS delivery, d.gen AS delivery_gen, d.status
  FROM webhook.events e LEFT JOIN webhook.delivery_state d ON d.event_id = e.id
 WHERE e.event_type = 'retention.test' ORDER BY e.id;
SELECT count(*) AS rows_in_generation_0 FROM (
    SELECT 1 FROM webhook.events_0 UNION ALL SELECT 1 FROM webhook.delivery_state_0
    UNION ALL SELECT 1 FROM webhook.delivery_log_0) r;
-- Generation 0 is free again.
SELECT gen, began_at IS NOT NULL AS began, ended_at IS NULL AS open, moved_xid IS NOT NULL AS moved
  FROM webhook.queue_generations ORDER BY gen;

-- A generation holding an unread event (this transaction's own, which no
-- worker has read) waits.
SELECT webhook.send('retention.unread', '{}') IS NOT NULL AS sent;
SELECT gen FROM webhook.events WHERE event_type = 'retention.unread';
SELECT webhook._rotate_generations(now() - interval '7 days', now() - interval '30 days', interval '0') AS emptied;
UPDATE webhook.queue_generations SET ended_at = now() - interval '8 days' WHERE gen = 1;
SELECT webhook._rotate_generations(now() - interval '7 days', now() - interval '30 days', interval '1 day') AS emptied;
SELECT count(*) AS still_in_generation_1 FROM webhook.events_1;
DELETE FROM webhook.events WHERE event_type = 'retention.unread';
-- A delivery in flight moves on with its claim (its outcome is recorded by id).
UPDATE webhook.delivery_state SET claimed_at = now() WHERE id = 950004;
SELECT webhook._rotate_generations(now() - interval '7 days', now() - interval '30 days', interval '1 day') AS emptied;
UPDATE webhook.queue_generations SET moved_xid = '3' WHERE gen = 1;
SELECT webhook._rotate_generations(now() - interval '7 days', now() - interval '30 days', interval '1 day') AS emptied;
SELECT d.id, d.gen, d.status, d.claimed_at IS NOT NULL AS claimed FROM webhook.delivery_state d WHERE d.endpoint_id = 9501 ORDER BY d.id;
SELECT count(*) AS rows_in_generation_1 FROM webhook.events_1;

-- An idempotency key that a generation and the current one both hold
-- (written by hand): the moved event keeps its row, not the key.
INSERT INTO webhook.events (id, event_type, payload, idempotency_key, txid, gen)
VALUES ('00000000-0000-7000-8000-000000000021', 'retention.dup', '{}', 'dup-key', '0', 3),
       ('00000000-0000-7000-8000-000000000022', 'retention.dup', '{}', 'dup-key', '0', 2);
INSERT INTO webhook.delivery_state (event_id, endpoint_id, gen)
VALUES ('00000000-0000-7000-8000-000000000021', 9501, 3);
UPDATE webhook.queue_generations SET began_at = now() - interval '9 days', ended_at = now() - interval '8 days' WHERE gen = 3;
SELECT webhook._current_generation() AS current;
SELECT webhook._rotate_generations(now() - interval '7 days', now() - interval '30 days', interval '1 day') AS emptied;
SELECT id, gen, idempotency_key FROM webhook.events WHERE event_type = 'retention.dup' ORDER BY id;

-- Deleting an event deletes its deliveries (the foreign key's cascade,
-- before the queue was partitioned).
DELETE FROM webhook.events WHERE id = '00000000-0000-7000-8000-000000000004';
SELECT count(*) AS deliveries_left FROM webhook.delivery_state WHERE event_id = '00000000-0000-7000-8000-000000000004';

-- An idempotency key is one event across generations.
SELECT webhook.send('retention.keyed', '{"n": 1}', 'retention-key') AS first_id \gset
UPDATE webhook.queue_generations SET began_at = now() - interval '1 day' WHERE gen = webhook._current_generation();
SELECT webhook._rotate_generations(now() - interval '7 days', now() - interval '30 days', interval '1 hour') AS emptied;
SELECT webhook._current_generation() <> (SELECT gen FROM webhook.events WHERE id = :'first_id') AS new_generation;
SELECT webhook.send('retention.keyed', '{"n": 2}', 'retention-key') = :'first_id' AS same_event;
SELECT count(*) AS keyed_events FROM webhook.events WHERE idempotency_key = 'retention-key';
ROLLBACK;

-- Without a current generation, retention says what to do.
BEGIN;
UPDATE webhook.queue_generations SET ended_at = now();
SELECT webhook._rotate_generations(now(), now(), interval '0');
ROLLBACK;
