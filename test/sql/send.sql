-- webhook.send(): one event, one pending delivery per active subscribed
-- endpoint, the exact body bytes, idempotency, limits and errors; and what
-- deleting an endpoint does to its deliveries.
-- Everything that would give the delivery worker something to deliver runs in
-- a transaction that is rolled back, so the worker never sees it.
\set SHOW_CONTEXT never

--
-- Which patterns take which event types.
--
SELECT patterns, event_type, webhook._subscribed(patterns::text[], event_type) AS subscribed
  FROM (VALUES ('{order.created}', 'order.created'),
               ('{order.created}', 'order.updated'),
               ('{order.created}', 'order.created.v2'),
               ('{order}', 'order.created'),
               ('{order.*}', 'order.created'),
               ('{order.*}', 'order.item.added'),
               ('{order.*}', 'order'),
               ('{order.*}', 'orders.created'),
               ('{order_.*}', 'orderX.created'),
               ('{Order.*}', 'order.created'),
               ('{*}', 'anything.at.all'),
               ('{}', 'order.created'),
               ('{invoice.paid,order.*}', 'order.created')) AS t(patterns, event_type);

--
-- Endpoints with every kind of subscription, and an inactive one.
--
BEGIN;
INSERT INTO webhook.endpoints (name, url, event_types) VALUES
    ('everything', 'https://example.com/everything', '{*}'),
    ('exact', 'https://example.com/exact', '{order.created}'),
    ('prefix', 'https://example.com/prefix', '{order.*}'),
    ('two', 'https://example.com/two', '{invoice.paid,order.created}'),
    ('invoices', 'https://example.com/invoices', '{invoice.*}'),
    ('nothing', 'https://example.com/nothing', '{}');
INSERT INTO webhook.endpoints (name, url, event_types, active)
VALUES ('inactive', 'https://example.com/inactive', '{*}', false);

-- send() returns the new event's id, a uuid.
SELECT pg_typeof(webhook.send('order.created', '{"id": 42, "total": "9.99"}'));
SELECT webhook.send('order.item.added', '{"sku": "A-1", "note": "say \"hi\""}') AS item_added \gset
SELECT webhook.send('order', '[1, 2]') AS bare_order \gset
SELECT webhook.send('invoice.paid', '"paid"') AS invoice_paid \gset
SELECT webhook.send('ping', 'null') AS ping \gset

-- One event each; the deliveries go to the active, subscribed endpoints only.
SELECT ev.event_type, count(d.event_id) AS deliveries,
       string_agg(ep.name, ', ' ORDER BY ep.name) AS endpoints
  FROM webhook.events ev
  LEFT JOIN webhook.deliveries d ON d.event_id = ev.id
  LEFT JOIN webhook.endpoints ep ON ep.id = d.endpoint_id
 GROUP BY ev.id, ev.event_type
 ORDER BY ev.event_type;

-- A new delivery is pending and due at once.
SELECT count(*) AS deliveries, bool_and(status = 'pending') AS pending, bool_and(attempts = 0) AS no_attempts,
       bool_and(next_attempt_at = now()) AS due_now, bool_and(created_at = now()) AS created_now,
       bool_and(claimed_at IS NULL AND last_attempt_at IS NULL AND last_status_code IS NULL
                AND last_error IS NULL AND completed_at IS NULL) AS untouched
  FROM webhook.deliveries;

-- The event row, and the body: the exact bytes every attempt sends and signs.
SELECT event_type, payload, idempotency_key, created_at = now() AS created_now,
       txid = pg_current_xact_id() AS written_by_this_transaction,
       body ~ '^\{"type":"[^"]+","timestamp":"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z","data":.*\}$' AS body_shape,
       body::jsonb ->> 'type' = event_type AS body_type,
       body::jsonb -> 'data' = payload AS body_data,
       (body::jsonb ->> 'timestamp')::timestamptz = date_trunc('milliseconds', created_at) AS body_timestamp,
       regexp_replace(body, '"timestamp":"[^"]*"', '"timestamp":"<created_at>"') AS body
  FROM webhook.events CROSS JOIN LATERAL webhook._event_body(event_type, payload, created_at) AS body
 ORDER BY event_type;
SELECT id = :'item_added' AS id_is_returned_value FROM webhook.events WHERE event_type = 'order.item.added';

--
-- An idempotency key returns the first event's id and enqueues nothing more.
--
SELECT webhook.send('order.created', '{"id": 7}', 'order-7') AS first_send \gset
SELECT count(*) AS events_before FROM webhook.events \gset
SELECT count(*) AS deliveries_before FROM webhook.deliveries \gset
SELECT webhook.send('order.created', '{"id": 7, "again": true}', 'order-7') = :'first_send' AS same_id;
SELECT webhook.send('order.cancelled', '{}', 'order-7') = :'first_send' AS same_id_whatever_the_type;
SELECT count(*) - :events_before AS new_events FROM webhook.events;
SELECT count(*) - :deliveries_before AS new_deliveries FROM webhook.deliveries;
SELECT event_type, payload, idempotency_key FROM webhook.events WHERE idempotency_key = 'order-7';
-- A different key is a different event.
SELECT webhook.send('order.created', '{"id": 7}', 'order-7b') <> :'first_send' AS new_id;

--
-- Deleting an endpoint: its pending deliveries fail with 'endpoint deleted',
-- finished ones keep their outcome, and the history stays readable.
--
INSERT INTO webhook.endpoints (name, url, event_types)
VALUES ('doomed', 'https://example.com/doomed', '{shipment.*}') RETURNING id AS doomed_id \gset
SELECT webhook.send('shipment.sent', '{"n": 1}') AS sent \gset
SELECT webhook.send('shipment.delivered', '{"n": 2}') AS delivered \gset
-- What the worker does once this commits: it reads the events into
-- delivery_state rows.
INSERT INTO webhook.delivery_state (event_id, endpoint_id)
SELECT event_id, endpoint_id FROM webhook.deliveries WHERE id IS NULL ORDER BY event_id, endpoint_id;
-- The first was already delivered (as the worker records it).
UPDATE webhook.delivery_state SET status = 'succeeded', attempts = 1, last_attempt_at = now(),
       last_status_code = 200, completed_at = now()
 WHERE event_id = :'sent' AND endpoint_id = :doomed_id;
INSERT INTO webhook.delivery_log (delivery_id, endpoint_id, event_id, attempt, url, attempted_at, duration_ms, status_code)
SELECT id, endpoint_id, event_id, 1, 'https://example.com/doomed', now(), 12.5, 200
  FROM webhook.deliveries WHERE event_id = :'sent' AND endpoint_id = :doomed_id;
DELETE FROM webhook.endpoints WHERE name = 'doomed';
SELECT ev.event_type, ep.name AS endpoint, d.endpoint_id IS NULL AS endpoint_id_null, d.status,
       d.last_error, d.last_status_code, d.completed_at IS NOT NULL AS completed, d.claimed_at
  FROM webhook.deliveries d JOIN webhook.events ev ON ev.id = d.event_id
  LEFT JOIN webhook.endpoints ep ON ep.id = d.endpoint_id
 WHERE ev.event_type LIKE 'shipment.%'
 ORDER BY ev.event_type, ep.name NULLS FIRST;
SELECT endpoint_id = :doomed_id AS log_keeps_endpoint_id, event_id = :'sent' AS log_keeps_event,
       attempt, status_code
  FROM webhook.delivery_log;
ROLLBACK;

--
-- Rolling back leaves nothing: the event exists only if its transaction commits.
--
SELECT count(*) AS events FROM webhook.events;
SELECT count(*) AS deliveries FROM webhook.deliveries;
BEGIN;
INSERT INTO webhook.endpoints (url) VALUES ('https://example.com/rollback');
SELECT webhook.send('rollback.test', '{}') IS NOT NULL AS sent;
SELECT count(*) AS deliveries FROM webhook.deliveries;
ROLLBACK;
SELECT count(*) AS events FROM webhook.events WHERE event_type = 'rollback.test';
SELECT count(*) AS deliveries FROM webhook.deliveries;

--
-- An event nobody subscribes to is still recorded, with no deliveries.
--
SELECT webhook.send('nobody.listens', '{"x": 1}', 'nobody-1') AS unheard \gset
SELECT event_type, payload FROM webhook.events WHERE id = :'unheard';
SELECT count(*) AS deliveries FROM webhook.deliveries WHERE event_id = :'unheard';
-- The idempotency key holds across transactions.
SELECT webhook.send('nobody.listens', '{"x": 2}', 'nobody-1') = :'unheard' AS same_id;
SELECT count(*) AS events FROM webhook.events WHERE event_type = 'nobody.listens';

--
-- Bad calls: each is refused with its own error, and nothing is written.
--
SELECT count(*) AS events_before FROM webhook.events \gset
SELECT webhook.send(NULL, '{}');
\echo SQLSTATE :SQLSTATE
SELECT webhook.send('', '{}');
\echo SQLSTATE :SQLSTATE
SELECT webhook.send('order.', '{}');
\echo SQLSTATE :SQLSTATE
SELECT webhook.send('.created', '{}');
\echo SQLSTATE :SQLSTATE
SELECT webhook.send('order..created', '{}');
\echo SQLSTATE :SQLSTATE
SELECT webhook.send('order.*', '{}');
\echo SQLSTATE :SQLSTATE
SELECT webhook.send('*', '{}');
\echo SQLSTATE :SQLSTATE
SELECT webhook.send('order created', '{}');
\echo SQLSTATE :SQLSTATE
SELECT webhook.send('order.created', NULL);
\echo SQLSTATE :SQLSTATE
SELECT webhook.send('order.created', '{"broken": }');
\echo SQLSTATE :SQLSTATE
-- webhook.max_payload_bytes bounds the payload (its JSON text).
SET webhook.max_payload_bytes = 16;
SELECT octet_length('{"a": "0123456"}'::jsonb::text) AS payload_bytes;
SELECT webhook.send('size.ok', '{"a": "0123456"}') IS NOT NULL AS at_the_limit;
SELECT webhook.send('size.big', '{"a": "01234567"}');
\echo SQLSTATE :SQLSTATE
SELECT webhook.send('size.big', jsonb_build_object('text', repeat('x', 100)));
\echo SQLSTATE :SQLSTATE
RESET webhook.max_payload_bytes;
SELECT count(*) - :events_before AS new_events, count(*) FILTER (WHERE event_type = 'size.big') AS too_big
  FROM webhook.events;

--
-- send() writes its row from C: what the column defaults would give, ids
-- growing in the order sent, nothing once rolled back.
--
BEGIN;
SELECT webhook.send('order.created', '{"n": 1}') AS first_id \gset
SELECT webhook.send('order.created', '{"n": 2}') AS second_id \gset
SELECT e.txid = pg_current_xact_id() AS own_txid, e.created_at = now() AS created_now,
       e.idempotency_key IS NULL AS no_key, e.payload = '{"n": 1}' AS payload_kept,
       substr(e.id::text, 15, 1) AS uuid_version
  FROM webhook.events e WHERE e.id = :'first_id';
SELECT :'first_id'::uuid < :'second_id'::uuid AS ids_grow;
ROLLBACK;
SELECT count(*) AS rolled_back_rows FROM webhook.events WHERE id IN (:'first_id', :'second_id');
-- A column added to webhook.events with a default or NOT NULL would not get
-- it from send(): refused, not written without it.
BEGIN;
ALTER TABLE webhook.events ADD COLUMN extra integer NOT NULL DEFAULT 0;
SELECT webhook.send('order.created', '{}');
\echo SQLSTATE :SQLSTATE
ROLLBACK;
-- Refused where an INSERT is: in a read-only transaction.
BEGIN READ ONLY;
SELECT webhook.send('order.created', '{}');
\echo SQLSTATE :SQLSTATE
ROLLBACK;

--
-- webhook.strict_event_types: only catalogued event types may be sent.
--
BEGIN;
SET LOCAL webhook.strict_event_types = on;
SAVEPOINT before_unknown;
SELECT webhook.send('order.created', '{}');
\echo SQLSTATE :SQLSTATE
ROLLBACK TO before_unknown;
INSERT INTO webhook.event_types (name, description) VALUES ('order.created', 'an order was placed');
SELECT webhook.send('order.created', '{}') IS NOT NULL AS catalogued;
-- Invalid names are refused before the catalogue is looked at.
SAVEPOINT before_invalid;
SELECT webhook.send('order..created', '{}');
ROLLBACK TO before_invalid;
ROLLBACK;

--
-- The "webhook." prefix belongs to the extension's own events: nobody can
-- send a made-up webhook.endpoint.disabled or webhook.ping, in any case.
--
CREATE ROLE regress_webhook_send_app NOLOGIN;
GRANT USAGE ON SCHEMA webhook TO regress_webhook_send_app;
GRANT EXECUTE ON FUNCTION webhook.send(text, jsonb, text, timestamptz, text) TO regress_webhook_send_app;
SET ROLE regress_webhook_send_app;
SELECT webhook.send('webhook.endpoint.disabled', '{"endpoint_id": 1, "url": "https://evil.example/"}');
\echo SQLSTATE :SQLSTATE
SELECT webhook.send('webhook.ping', '{}');
\echo SQLSTATE :SQLSTATE
SELECT webhook.send('Webhook.Ping', '{}');
\echo SQLSTATE :SQLSTATE
SELECT webhook.send('webhook', '{}');
\echo SQLSTATE :SQLSTATE
RESET ROLE;
-- Not for the extension's owner either, strict or not.
BEGIN;
SET LOCAL webhook.strict_event_types = on;
SELECT webhook.send('webhook.ping', '{}');
\echo SQLSTATE :SQLSTATE
ROLLBACK;
-- Names that merely start alike are the caller's.
BEGIN;
SELECT webhook.send('webhooks.received', '{}') IS NOT NULL AS sent, webhook.send('webhook_audit.x', '{}') IS NOT NULL AS sent_too;
ROLLBACK;
DROP OWNED BY regress_webhook_send_app;
DROP ROLE regress_webhook_send_app;

-- Leave nothing behind.
DELETE FROM webhook.events;
