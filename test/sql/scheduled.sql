-- Scheduled events: send(..., deliver_at => ...) writes the event now and
-- its deliveries are due then; webhook.deliveries shows them as scheduled;
-- webhook.cancel(event_id) cancels an event no endpoint has been sent yet.
-- In transactions that are rolled back (the worker's reading is called by
-- hand, as in filters.sql).
\set SHOW_CONTEXT never
\set VERBOSITY terse

-- cancel()'s refusals, with the event's id written as <id>.
CREATE FUNCTION pg_temp.refusal(event_id uuid) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
    v_state text;
    v_message text;
    v_detail text;
BEGIN
    PERFORM webhook.cancel(event_id);
    RETURN 'cancelled';
EXCEPTION WHEN OTHERS THEN
    GET STACKED DIAGNOSTICS v_state = RETURNED_SQLSTATE, v_message = MESSAGE_TEXT, v_detail = PG_EXCEPTION_DETAIL;
    RETURN v_state || ': ' || replace(v_message, event_id::text, '<id>') || ' / ' || v_detail;
END;
$$;

BEGIN;
INSERT INTO webhook.endpoints (id, name, url, event_types) VALUES
    (9701, 's-one', 'https://example.com/one', '{sched.*}'),
    (9702, 's-two', 'https://example.com/two', '{sched.*}');
-- The worker's position: this transaction still running, as another
-- session sees it.
UPDATE webhook.queue_positions
   SET done_snapshot = (pg_current_xact_id() || ':' || pg_current_xact_id() || ':')::pg_snapshot,
       window_snapshot = NULL, after_txid = '0',
       after_id = '00000000-0000-0000-0000-000000000000'
 WHERE worker = 0;
SELECT webhook.send('sched.later', '{"n": 1}', deliver_at => now() + interval '1 hour') AS later \gset
SELECT webhook.send('sched.now', '{"n": 2}') AS now_id \gset
SELECT webhook.send('sched.past', '{"n": 3}', deliver_at => now() - interval '1 hour') AS past \gset
-- With an idempotency key too: once per key, with the first one's time.
SELECT webhook.send('sched.keyed', '{"n": 4}', 'sched-key', now() + interval '2 hours') AS keyed \gset
SELECT webhook.send('sched.keyed', '{"n": 4}', 'sched-key', now() + interval '3 hours') = :'keyed' AS same_event;
-- Never: refused.
SAVEPOINT s;
SELECT webhook.send('sched.never', '{}', deliver_at => 'infinity');
ROLLBACK TO s;
SELECT event_type, deliver_at - created_at AS delay FROM webhook.events
 WHERE event_type LIKE 'sched.%' ORDER BY id;

-- Not read by the worker yet: the view shows them, scheduled or pending.
SELECT ev.event_type, d.id IS NULL AS unread, d.status, d.next_attempt_at - ev.created_at AS due_in
  FROM webhook.deliveries d JOIN webhook.events ev ON ev.id = d.event_id
 WHERE d.endpoint_id = 9701 ORDER BY ev.id;
-- Nothing to cancel by row yet.
SELECT pg_temp.refusal(:'later');

-- Read (as if committed): the deliveries are due at deliver_at (now, for
-- a past one).
SELECT webhook._read_events(100000) >= 4 AS read;
SELECT ev.event_type, d.id IS NOT NULL AS has_id, d.status, d.next_attempt_at - ev.created_at AS due_in
  FROM webhook.deliveries d JOIN webhook.events ev ON ev.id = d.event_id
 WHERE d.endpoint_id = 9701 ORDER BY ev.id;
SELECT name, pending, scheduled FROM webhook.endpoint_health WHERE id IN (9701, 9702) ORDER BY id;

-- cancel() says what it cancelled; the deliveries are cancelled, not
-- pending, and no worker claims them.
SELECT endpoint_id, endpoint, was_due_at - now() AS was_due_in
  FROM webhook.cancel(:'later') ORDER BY endpoint_id;
SELECT d.endpoint_id, d.status, d.completed_at IS NOT NULL AS completed, d.last_error
  FROM webhook.delivery_state d WHERE d.event_id = :'later' ORDER BY d.endpoint_id;
SELECT count(*) AS scheduled_left FROM webhook.deliveries WHERE event_id = :'later' AND status = 'scheduled';
-- Again: nothing more to cancel.
SELECT count(*) AS cancelled_again FROM webhook.cancel(:'later');

-- An event that one endpoint has been sent (an attempt made, or one in
-- flight) cannot be cancelled.
UPDATE webhook.delivery_state SET attempts = 1, last_attempt_at = now(), status = 'succeeded'
 WHERE event_id = :'now_id' AND endpoint_id = 9701;
SELECT regexp_replace(pg_temp.refusal(:'now_id'), 'delivery \d+', 'delivery N') AS refusal;
UPDATE webhook.delivery_state SET claimed_at = now() WHERE event_id = :'past' AND endpoint_id = 9702;
SELECT regexp_replace(pg_temp.refusal(:'past'), 'delivery \d+', 'delivery N') AS refusal;
-- An event that does not exist.
SELECT * FROM webhook.cancel('00000000-0000-7000-8000-000000000000');
ROLLBACK;
-- Only for administrators, like retry() and replay().
SELECT has_function_privilege('public', 'webhook.cancel(uuid)', 'EXECUTE') AS public_may_cancel;
