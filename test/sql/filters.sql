-- Content filters (webhook.endpoints.filter): an SQL/JSON path predicate
-- over the event's payload.  Refused at write time when it is not a
-- predicate; evaluated when the worker reads events (webhook._read_events,
-- called here by hand in a transaction that is rolled back); events a filter
-- cannot judge go nowhere and are counted; replay() and recover() apply the
-- filter as it is now.
\set SHOW_CONTEXT never
\set VERBOSITY terse

-- Predicates pass; paths that return items do not.
SELECT f, webhook._is_jsonpath_predicate(f::jsonpath) AS predicate
  FROM (VALUES ('$.amount > 100 && $.currency == "EUR"'), ('exists($.tags ? (@ == "vip"))'),
               ('strict $.amount > 100'), ('!($.test == true)'), ('$.name starts with "a"'),
               ('$.name like_regex "^x"'), ('($.a > 1) is unknown'),
               ('$.amount'), ('$ ? (@.amount > 100)'), ('$.tags[*]'), ('$.amount + 1'),
               -- something chained after the predicate returns items
               ('($.a == 1).type()'), ('($.a == 1) ? (@ == true)'),
               -- variables, which a filter never has
               ('$x == 1'), ('$.a == $y'), ('$.a[$z] == 1'), ('exists($.a ? (@ == $v))'),
               ('$.a like_regex "x" && $.b[0 to $n] == 1')) AS v(f);

-- At write time: not a predicate.
\set VERBOSITY default
INSERT INTO webhook.endpoints (name, url, filter) VALUES ('f-bad', 'https://example.com/f', '$.amount');
\set VERBOSITY terse
INSERT INTO webhook.endpoints (name, url, filter) VALUES ('f-bad', 'https://example.com/f', '$ ? (@.amount > 100)');
-- Not a path at all: jsonpath's own error.
INSERT INTO webhook.endpoints (name, url, filter) VALUES ('f-bad', 'https://example.com/f', '$.amount >');

BEGIN;
ALTER TABLE webhook.events DISABLE TRIGGER events_restored;
INSERT INTO webhook.endpoints (id, name, url, event_types, filter) VALUES
    (9601, 'f-eur', 'https://example.com/eur', '{filter.test}', '$.amount > 100 && $.currency == "EUR"'),
    (9602, 'f-vip', 'https://example.com/vip', '{filter.test}', 'exists($.tags ? (@ == "vip"))'),
    (9603, 'f-strict', 'https://example.com/strict', '{filter.test}', 'strict $.amount > 100'),
    (9604, 'f-all', 'https://example.com/all', '{filter.test}', NULL),
    -- raises on a date without a time zone even with silent => true
    (9605, 'f-date', 'https://example.com/date', '{filter.test}', '$.at.datetime() > "2026-01-01 00:00:00+00".datetime()');
-- A filter is changed like any column, and checked the same way.
SAVEPOINT s;
UPDATE webhook.endpoints SET filter = '$.amount' WHERE id = 9601;
ROLLBACK TO s;
SAVEPOINT s;
UPDATE webhook.endpoints SET filter = '$.currency == "EUR"' WHERE id = 9601 RETURNING id, filter;
ROLLBACK TO s;

-- Six events, in transactions 101..106 (synthetic txids, read as the worker
-- reads: visible now, not in the done snapshot below).
INSERT INTO webhook.events (id, event_type, payload, txid)
SELECT ('00000000-0000-7000-8000-0000000096' || lpad(n::text, 2, '0'))::uuid, 'filter.test', p::jsonb, (100 + n)::text::xid8
  FROM (VALUES (1, '{"n": 1, "amount": 150, "currency": "EUR"}'),
               (2, '{"n": 2, "amount": 150, "currency": "USD", "tags": ["vip"]}'),
               (3, '{"n": 3, "amount": 50, "currency": "EUR", "tags": ["new", "vip"]}'),
               (4, '{"n": 4, "currency": "EUR"}'),
               (5, '{"n": 5, "amount": "many", "currency": "EUR"}'),
               (6, '[1, 2]'),
               (7, '{"n": 7, "at": "2026-05-01"}'),
               (8, '{"n": 8, "at": "2026-05-01 10:00:00+02"}')) AS v(n, p);
UPDATE webhook.queue_positions
   SET done_snapshot = '101:101:', window_snapshot = NULL, after_txid = '0',
       after_id = '00000000-0000-0000-0000-000000000000'
 WHERE worker = 0;
-- Event 7 makes f-date's filter raise: the page is read again with each
-- filter on its own, and only that pair is lost (and counted).
SELECT webhook._read_events(1000) >= 8 AS read;

-- Who got which event.
SELECT ep.name, string_agg(right(e.id::text, 1), ',' ORDER BY e.id) AS events
  FROM webhook.delivery_state d JOIN webhook.endpoints ep ON ep.id = d.endpoint_id
  JOIN webhook.events e ON e.id = d.event_id
 WHERE ep.id BETWEEN 9601 AND 9605 GROUP BY ep.name ORDER BY ep.name;
-- What the filters could not judge: the strict path on events 4 (no
-- amount), 5 (a string is not comparable with 100) and 6 (not an object);
-- the lax path on event 5 only (lax mode finds no amount in 4 and 6: false).
SELECT name, pending, filter_errors, last_filter_error_at IS NOT NULL AS has_time,
       right(last_filter_error_event::text, 2) AS last_event
  FROM webhook.endpoint_health WHERE id BETWEEN 9601 AND 9605 ORDER BY name;

-- replay() applies the filter as it is now: to every endpoint, only those
-- it passes; to one endpoint it does not pass, nothing.
SELECT webhook.replay('00000000-0000-7000-8000-000000009603') AS replayed_3;
SELECT webhook.replay('00000000-0000-7000-8000-000000009603', 9601) AS replayed_3_to_eur;
UPDATE webhook.endpoints SET filter = '$.amount < 100' WHERE id = 9601;
SELECT webhook.replay('00000000-0000-7000-8000-000000009603', 9601) AS replayed_3_to_eur_now;
-- recover() too: of f-all's failed deliveries, only those its filter passes now.
UPDATE webhook.delivery_state SET status = 'failed', completed_at = now() WHERE endpoint_id = 9604;
UPDATE webhook.endpoints SET filter = '$.currency == "EUR"' WHERE id = 9604;
SELECT webhook.recover(9604, now() - interval '1 hour') AS recovered;
SELECT right(e.id::text, 1) AS event, d.status FROM webhook.delivery_state d JOIN webhook.events e ON e.id = d.event_id
 WHERE d.endpoint_id = 9604 ORDER BY e.id;

-- The deliveries view shows an unread event only where the filter passes
-- (as the worker sees it: this transaction still running).
UPDATE webhook.queue_positions SET done_snapshot = (pg_current_xact_id() || ':' || pg_current_xact_id() || ':')::pg_snapshot
 WHERE worker = 0;
SELECT webhook.send('filter.test', '{"amount": 500, "currency": "EUR"}') IS NOT NULL AS sent;
SELECT ep.name FROM webhook.deliveries d JOIN webhook.endpoints ep ON ep.id = d.endpoint_id
 WHERE d.id IS NULL AND ep.id BETWEEN 9601 AND 9604 ORDER BY ep.name;
ROLLBACK;

-- The rule for NULL and errors, by itself.
SELECT webhook._passes_filter(NULL, '{}') AS no_filter, webhook._passes_filter('$.a == 1', '{"a": 1}') AS passes,
       webhook._passes_filter('$.a == 1', '{"a": 2}') AS fails, webhook._passes_filter('strict $.a == 1', '{}') AS error_is_no;
