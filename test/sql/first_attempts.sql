-- First attempts in flight (webhook.first_attempts): the deliveries the
-- worker's read makes already claimed.  Each is pending and in flight until
-- its outcome is recorded, when it becomes its delivery_state row.  Rows
-- written by hand here stand for the read's, in a transaction rolled back
-- (the endpoints are inactive: the worker never sends them).
\set SHOW_CONTEXT never
BEGIN;
INSERT INTO webhook.endpoints (id, name, url, active) VALUES
    (9601, 'fa-one', 'https://example.com/fa-one', false),
    (9602, 'fa-two', 'https://example.com/fa-two', false);
INSERT INTO webhook.events (id, event_type, payload, txid) VALUES
    ('00000000-0000-7000-8000-000000009601', 'fa.test', '{"n": 1}', '0'),
    ('00000000-0000-7000-8000-000000009602', 'fa.test', '{"n": 2}', '0'),
    ('00000000-0000-7000-8000-000000009603', 'fa.test', '{"n": 3}', '0');
-- Its id comes from delivery_state's identity: the delivery keeps it.
INSERT INTO webhook.first_attempts (event_id, endpoint_id, gen)
SELECT e.id, 9601, e.gen FROM webhook.events e WHERE e.id = '00000000-0000-7000-8000-000000009601'
RETURNING id IS NOT NULL AS has_id, claimed_at = now() AS claimed_now;
SELECT id AS first_id FROM webhook.first_attempts WHERE endpoint_id = 9601 \gset

-- webhook.deliveries shows it pending and claimed, with its id.
SELECT id = :first_id AS same_id, status, attempts, claimed_at IS NOT NULL AS in_flight
  FROM webhook.deliveries WHERE event_id = '00000000-0000-7000-8000-000000009601';
-- The endpoint's backlog counts it.
SELECT pending FROM webhook.endpoint_health WHERE id = 9601;

-- cancel() refuses an event sent already, naming the delivery in flight.
DO $$
DECLARE
    v_detail text;
BEGIN
    PERFORM webhook.cancel('00000000-0000-7000-8000-000000009601');
EXCEPTION WHEN object_not_in_prerequisite_state THEN
    GET STACKED DIAGNOSTICS v_detail = PG_EXCEPTION_DETAIL;
    RAISE NOTICE 'refused: %', regexp_replace(v_detail, 'delivery \d+', 'delivery N');
END;
$$;
-- retry() leaves a delivery in flight alone, as it does a claimed one.
SELECT webhook.retry(:first_id);
SELECT count(*) AS still_in_flight FROM webhook.first_attempts WHERE id = :first_id;

-- Its generation is not empty while it is out, and retention waits.
SELECT webhook._generation_is_empty(3::smallint) AS gen3_empty_before;
INSERT INTO webhook.first_attempts (event_id, endpoint_id, gen)
VALUES ('00000000-0000-7000-8000-000000009603', 9602, 3);
SELECT webhook._generation_is_empty(3::smallint) AS gen3_empty_after;
DELETE FROM webhook.first_attempts WHERE gen = 3;

-- Deleting its endpoint closes it as a delivery_state row (failed, endpoint
-- NULL), under the same id: the attempt's outcome is still logged.
DELETE FROM webhook.endpoints WHERE id = 9601;
SELECT count(*) AS left_in_flight FROM webhook.first_attempts WHERE id = :first_id;
SELECT id = :first_id AS same_id, endpoint_id, status, last_error, claimed_at
  FROM webhook.delivery_state WHERE event_id = '00000000-0000-7000-8000-000000009601';

-- Deleting its event deletes it.
INSERT INTO webhook.first_attempts (event_id, endpoint_id, gen)
SELECT e.id, 9602, e.gen FROM webhook.events e WHERE e.id = '00000000-0000-7000-8000-000000009602';
DELETE FROM webhook.events WHERE id = '00000000-0000-7000-8000-000000009602';
SELECT count(*) AS left_after_event_deleted FROM webhook.first_attempts WHERE endpoint_id = 9602;

-- A worker that starts takes its predecessor's over: pending rows, due now.
INSERT INTO webhook.first_attempts (event_id, endpoint_id, gen)
SELECT e.id, 9602, e.gen FROM webhook.events e WHERE e.id = '00000000-0000-7000-8000-000000009603'
RETURNING id AS third_id \gset
SELECT webhook._first_attempts_to_state(ARRAY[:third_id]::bigint[], true) AS moved;
SELECT id = :third_id AS same_id, endpoint_id, status, attempts, claimed_at, next_attempt_at <= now() AS due
  FROM webhook.delivery_state WHERE event_id = '00000000-0000-7000-8000-000000009603';
SELECT count(*) AS in_flight FROM webhook.first_attempts WHERE endpoint_id = 9602;

-- A first attempt claimed by another transaction (a restore's COPY) has no
-- request out: it becomes a pending delivery_state row, due now.
DELETE FROM webhook.delivery_state WHERE event_id = '00000000-0000-7000-8000-000000009603';
INSERT INTO webhook.first_attempts (id, event_id, endpoint_id, gen, claimed_at)
SELECT 960900009, e.id, 9602, e.gen, now() - interval '1 hour'
  FROM webhook.events e WHERE e.id = '00000000-0000-7000-8000-000000009603';
SELECT count(*) AS restored_in_flight FROM webhook.first_attempts WHERE id = 960900009;
SELECT id, status, attempts, claimed_at, next_attempt_at <= now() AS due
  FROM webhook.delivery_state WHERE id = 960900009;

-- Its endpoint cannot go while the row names it, except by the delete
-- trigger's closing it first (tested above): the key holds.
SAVEPOINT s;
INSERT INTO webhook.first_attempts (event_id, endpoint_id, gen) VALUES ('00000000-0000-7000-8000-000000009603', 9699, 0);
ROLLBACK TO s;
ROLLBACK;
