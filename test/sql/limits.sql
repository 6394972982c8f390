-- Limits on what one call or one row may cost, each refused at write time
-- with an SQLSTATE and a hint that names the limit: event types (send(), the
-- catalogue, endpoint patterns) and the endpoint settings the worker acts on.
-- Nothing here commits an event, so the delivery worker has nothing to do.
\set SHOW_CONTEXT never

CREATE ROLE regress_webhook_limits_app NOLOGIN;
GRANT USAGE ON SCHEMA webhook TO regress_webhook_limits_app;
GRANT EXECUTE ON FUNCTION webhook.send(text, jsonb, text, timestamptz, text) TO regress_webhook_limits_app;

--
-- Event types have at most 256 bytes.  The application role's long type is
-- refused before any work is done on it.
--
SET ROLE regress_webhook_limits_app;
SELECT webhook.send(repeat('a.', 20000) || 'a', '{}');
\echo SQLSTATE :SQLSTATE
SELECT webhook.send(repeat('a', 257), '{}');
\echo SQLSTATE :SQLSTATE
SELECT webhook.send(repeat('a.', 200) || 'a', '{}');
\echo SQLSTATE :SQLSTATE
RESET ROLE;
BEGIN;
SELECT webhook.send(repeat('a', 256), '{}') IS NOT NULL AS longest_type_sent;
ROLLBACK;
-- The catalogue.
INSERT INTO webhook.event_types (name) VALUES (repeat('a.', 20000) || 'a');
\echo SQLSTATE :SQLSTATE
INSERT INTO webhook.event_types (name) VALUES (repeat('b', 257));
\echo SQLSTATE :SQLSTATE
BEGIN;
INSERT INTO webhook.event_types (name) VALUES (repeat('b', 256));
UPDATE webhook.event_types SET name = name || 'b' WHERE name = repeat('b', 256);
\echo SQLSTATE :SQLSTATE
ROLLBACK;
-- Endpoint patterns: each at most 256 bytes, at most 1000 of them.
INSERT INTO webhook.endpoints (url, event_types) VALUES ('https://example.com/long', ARRAY[repeat('a.', 200) || '*']);
\echo SQLSTATE :SQLSTATE
INSERT INTO webhook.endpoints (url, event_types)
SELECT 'https://example.com/many', array_agg('type' || g) FROM generate_series(1, 1001) g;
\echo SQLSTATE :SQLSTATE
BEGIN;
INSERT INTO webhook.endpoints (url, event_types)
SELECT 'https://example.com/many', array_agg('type' || g) || ARRAY[repeat('c', 254) || '.*'] FROM generate_series(1, 999) g
RETURNING cardinality(event_types) AS patterns;
ROLLBACK;
-- Matching never works on a longer type.
SELECT webhook._subscribed('{*}', repeat('a.', 20000) || 'a');
\echo SQLSTATE :SQLSTATE
SELECT cardinality(webhook._type_patterns(repeat('a.', 127) || 'a')) AS patterns_of_longest_type;
SELECT webhook._is_event_type_name(repeat('a.', 20000) || 'a') AS long_name,
       webhook._is_event_type_pattern(repeat('a.', 20000) || '*') AS long_pattern;
-- A watch prefix leaves room for ".created".
CREATE TABLE regress_limits_watched (id int);
SELECT webhook.watch('regress_limits_watched', repeat('w', 249));
\echo SQLSTATE :SQLSTATE
SELECT webhook.watch('regress_limits_watched', repeat('w', 248));
BEGIN;
INSERT INTO regress_limits_watched VALUES (1);
SELECT length(event_type) AS watched_type_length FROM webhook.events WHERE event_type LIKE 'www%';
ROLLBACK;
DROP TABLE regress_limits_watched;

--
-- Endpoint settings: each bound refused, each boundary value accepted.
--
-- timeout_ms: 1 .. 300000.
INSERT INTO webhook.endpoints (url, timeout_ms) VALUES ('https://example.com/t', 2147483647);
\echo SQLSTATE :SQLSTATE
INSERT INTO webhook.endpoints (url, timeout_ms) VALUES ('https://example.com/t', 300001);
\echo SQLSTATE :SQLSTATE
-- rate_limit_per_s: NULL, or 0.001 .. 100000.
INSERT INTO webhook.endpoints (url, rate_limit_per_s) VALUES ('https://example.com/r', 1e-300);
\echo SQLSTATE :SQLSTATE
INSERT INTO webhook.endpoints (url, rate_limit_per_s) VALUES ('https://example.com/r', 0.0009);
\echo SQLSTATE :SQLSTATE
INSERT INTO webhook.endpoints (url, rate_limit_per_s) VALUES ('https://example.com/r', 100001);
\echo SQLSTATE :SQLSTATE
INSERT INTO webhook.endpoints (url, rate_limit_per_s) VALUES ('https://example.com/r', 'Infinity');
\echo SQLSTATE :SQLSTATE
-- retry_schedule_s: at most 100 delays of 0 .. 604800 seconds (a week).
INSERT INTO webhook.endpoints (url, retry_schedule_s) VALUES ('https://example.com/s', array_fill(1, ARRAY[1000000]));
\echo SQLSTATE :SQLSTATE
INSERT INTO webhook.endpoints (url, retry_schedule_s) VALUES ('https://example.com/s', array_fill(1, ARRAY[101]));
\echo SQLSTATE :SQLSTATE
INSERT INTO webhook.endpoints (url, retry_schedule_s) VALUES ('https://example.com/s', '{5,604801}');
\echo SQLSTATE :SQLSTATE
INSERT INTO webhook.endpoints (url, retry_schedule_s) VALUES ('https://example.com/s', '{2147483647}');
\echo SQLSTATE :SQLSTATE
-- max_in_flight: NULL, or 1 .. 10000.
INSERT INTO webhook.endpoints (url, max_in_flight) VALUES ('https://example.com/m', 10001);
\echo SQLSTATE :SQLSTATE
-- The boundaries themselves are accepted.
BEGIN;
INSERT INTO webhook.endpoints (url, timeout_ms, rate_limit_per_s, retry_schedule_s, max_in_flight)
VALUES ('https://example.com/low', 1, 0.001, array_fill(0, ARRAY[100]), 1),
       ('https://example.com/high', 300000, 100000, '{604800}', 10000)
RETURNING url, timeout_ms, rate_limit_per_s, cardinality(retry_schedule_s) AS retries, max_in_flight;
ROLLBACK;

-- Extra headers: names of at most 128 bytes, at most 64 headers, values of
-- at most 8192 bytes, 16384 bytes in all.
INSERT INTO webhook.endpoints (url, headers) VALUES ('https://example.com/h', jsonb_build_object('X-' || repeat('n', 127), 'v'));
\echo SQLSTATE :SQLSTATE
INSERT INTO webhook.endpoints (url, headers)
SELECT 'https://example.com/h', jsonb_object_agg('X-H' || g, 'v') FROM generate_series(1, 65) g;
\echo SQLSTATE :SQLSTATE
INSERT INTO webhook.endpoints (url, headers) VALUES ('https://example.com/h', jsonb_build_object('X-Big', repeat('v', 8193)));
\echo SQLSTATE :SQLSTATE
INSERT INTO webhook.endpoints (url, headers)
SELECT 'https://example.com/h', jsonb_object_agg('X-H' || g, repeat('v', 6000)) FROM generate_series(1, 3) g;
\echo SQLSTATE :SQLSTATE
BEGIN;
INSERT INTO webhook.endpoints (url, headers)
SELECT 'https://example.com/h', jsonb_object_agg('X-H' || g, repeat('v', 250)) FROM generate_series(1, 64) g
RETURNING (SELECT count(*) FROM jsonb_object_keys(headers)) AS headers;
INSERT INTO webhook.endpoints (url, headers)
VALUES ('https://example.com/h', jsonb_build_object('X-' || repeat('n', 126), repeat('v', 8192)))
RETURNING (SELECT max(length(k)) FROM jsonb_object_keys(headers) AS k) AS longest_name,
          length(webhook._unseal(headers ->> ('X-' || repeat('n', 126)))) AS longest_value;
ROLLBACK;

-- What the row sends: url of at most 2048 bytes, auth_username of at most
-- 256, auth_password of at most 1024, secret and previous_secret of at most
-- 256, whatever the signing scheme (measured in clear).
INSERT INTO webhook.endpoints (url) VALUES ('https://example.com/' || repeat('u', 3000000));
\echo SQLSTATE :SQLSTATE
INSERT INTO webhook.endpoints (url) VALUES ('https://example.com/' || repeat('u', 2029));
\echo SQLSTATE :SQLSTATE
INSERT INTO webhook.endpoints (url, auth_username, auth_password) VALUES ('https://example.com/b', 'u', repeat('p', 3000000));
\echo SQLSTATE :SQLSTATE
INSERT INTO webhook.endpoints (url, auth_username, auth_password) VALUES ('https://example.com/b', 'u', repeat('p', 1025));
\echo SQLSTATE :SQLSTATE
INSERT INTO webhook.endpoints (url, auth_username, auth_password) VALUES ('https://example.com/b', repeat('u', 257), 'p');
\echo SQLSTATE :SQLSTATE
INSERT INTO webhook.endpoints (url, signing, secret) VALUES ('https://example.com/s', 'none', repeat('s', 3000000));
\echo SQLSTATE :SQLSTATE
INSERT INTO webhook.endpoints (url, signing, secret) VALUES ('https://example.com/s', 'hmac-sha256', repeat('s', 257));
\echo SQLSTATE :SQLSTATE
INSERT INTO webhook.endpoints (url, signing, previous_secret) VALUES ('https://example.com/s', 'none', repeat('s', 257));
\echo SQLSTATE :SQLSTATE
BEGIN;
INSERT INTO webhook.endpoints (url, auth_username, auth_password, signing, secret, previous_secret)
VALUES ('https://example.com/' || repeat('u', 2028), repeat('u', 256), repeat('p', 1024), 'none', repeat('s', 256), repeat('s', 256))
RETURNING octet_length(url) AS url_bytes, octet_length(auth_username) AS username_bytes;
ROLLBACK;

-- Idempotency keys have at most 256 bytes, like event types.
SET ROLE regress_webhook_limits_app;
SELECT webhook.send('order.created', '{}', repeat('k', 3000000));
\echo SQLSTATE :SQLSTATE
SELECT webhook.send('order.created', '{}', repeat('k', 257));
\echo SQLSTATE :SQLSTATE
RESET ROLE;
BEGIN;
SELECT webhook.send('order.created', '{}', repeat('k', 256)) IS NOT NULL AS longest_key_sent;
ROLLBACK;

SELECT count(*) AS endpoints_left FROM webhook.endpoints;
SELECT count(*) AS custom_event_types FROM webhook.event_types WHERE name NOT LIKE 'webhook.%';
DROP OWNED BY regress_webhook_limits_app;
DROP ROLE regress_webhook_limits_app;
