-- Operating from psql: ping(), retry(), replay(), recover(), purge(), the
-- health views, the automatic disabling of failing endpoints, and the
-- endpoint options rate_limit_per_s, ordered and transform.
-- Everything runs in transactions that are rolled back, so the delivery
-- worker never sees a delivery; failed and old rows are made by hand.
\set SHOW_CONTEXT never
-- Four endpoints that several sections below start from (pg_regress gives
-- the test directory in PG_ABS_SRCDIR).
\getenv abs_srcdir PG_ABS_SRCDIR
\set endpoints_fixture :abs_srcdir '/sql/include/operations_endpoints.sql'

SELECT count(*) AS endpoints, (SELECT count(*) FROM webhook.events) AS events FROM webhook.endpoints;

--
-- ping(): a webhook.ping event for one endpoint, whatever it subscribes to.
--
BEGIN;
\i :endpoints_fixture
SELECT pg_typeof(webhook.ping(9302)) AS returns;
SELECT webhook.ping(9301) AS ping_delivery \gset
SELECT d.endpoint_id, d.status, d.attempts, d.next_attempt_at = now() AS due_now,
       ev.event_type, ev.payload,
       regexp_replace(webhook._event_body(ev.event_type, ev.payload, ev.created_at),
                      '"timestamp":"[^"]*"', '"timestamp":"<created_at>"') AS body
  FROM webhook.deliveries d JOIN webhook.events ev ON ev.id = d.event_id
 WHERE d.id = :ping_delivery;
-- One delivery per ping: not to the endpoints subscribed to everything.
SELECT ev.event_type, count(*) AS deliveries, array_agg(d.endpoint_id ORDER BY d.endpoint_id) AS endpoints
  FROM webhook.deliveries d JOIN webhook.events ev ON ev.id = d.event_id
 GROUP BY ev.id, ev.event_type ORDER BY endpoints;
SAVEPOINT refused;
SELECT webhook.ping(9303);
\echo SQLSTATE :SQLSTATE
ROLLBACK TO refused;
SELECT webhook.ping(9399);
\echo SQLSTATE :SQLSTATE
ROLLBACK;

--
-- retry(): a failed delivery is pending again, due now, with its attempts.
--
BEGIN;
INSERT INTO webhook.endpoints (id, name, url, event_types) VALUES
    (9301, 'orders', 'https://example.com/orders', '{order.*}'),
    (9304, 'everything', 'https://example.com/everything', '{*}');
INSERT INTO webhook.events (id, event_type, payload, txid) VALUES
    ('00000000-0000-0000-0000-000000000001', 'order.created', '{"id": 1}', '0');
-- Two deliveries that failed for good an hour ago (as the worker records it).
INSERT INTO webhook.delivery_state (id, event_id, endpoint_id, status, attempts, next_attempt_at, last_attempt_at,
                                last_status_code, last_error, created_at, completed_at)
OVERRIDING SYSTEM VALUE
SELECT id, '00000000-0000-0000-0000-000000000001', endpoint_id, 'failed', 8, now() - interval '1 hour',
       now() - interval '1 hour', 500, 'HTTP 500', now() - interval '1 day', now() - interval '1 hour'
  FROM (VALUES (930001, 9301), (930002, 9304)) AS v(id, endpoint_id);
SELECT webhook.retry(930001);
SELECT id, endpoint_id, status, attempts, next_attempt_at = now() AS due_now, completed_at IS NULL AS open,
       last_status_code, last_error
  FROM webhook.deliveries ORDER BY id;
-- Retrying a pending delivery leaves it pending.
SELECT webhook.retry(930001);
SELECT id, status, attempts FROM webhook.deliveries WHERE id = 930001;
SAVEPOINT refused;
SELECT webhook.retry(-1);
\echo SQLSTATE :SQLSTATE
ROLLBACK TO refused;
-- A delivery of a deleted endpoint cannot be retried.
DELETE FROM webhook.endpoints WHERE id = 9304;
SELECT id, endpoint_id, status FROM webhook.deliveries WHERE id = 930002;
SELECT webhook.retry(930002);
\echo SQLSTATE :SQLSTATE
ROLLBACK TO refused;
ROLLBACK;

--
-- replay(): the event again, to every active endpoint subscribed today, or
-- to one endpoint; returns the number of new deliveries.
--
BEGIN;
\i :endpoints_fixture
SELECT webhook.send('order.created', '{"id": 2}') AS event_2 \gset
-- What the worker does once this commits: it reads the events into
-- delivery_state rows.
INSERT INTO webhook.delivery_state (event_id, endpoint_id)
SELECT event_id, endpoint_id FROM webhook.deliveries WHERE id IS NULL ORDER BY event_id, endpoint_id;
UPDATE webhook.delivery_state SET status = 'succeeded', attempts = 1, completed_at = now() WHERE event_id = :'event_2';
-- A new subscriber since the event was sent gets it too.
INSERT INTO webhook.endpoints (id, name, url, event_types) VALUES (9305, 'late', 'https://example.com/late', '{order.created}');
SELECT webhook.replay(:'event_2') AS new_deliveries;
SELECT endpoint_id, status, count(*) AS deliveries
  FROM webhook.deliveries WHERE event_id = :'event_2' GROUP BY endpoint_id, status ORDER BY endpoint_id, status;
SELECT webhook.replay(:'event_2', 9302) AS to_one_endpoint;
SELECT endpoint_id, count(*) AS deliveries, bool_and(status = 'pending' AND attempts = 0) AS fresh
  FROM webhook.deliveries WHERE event_id = :'event_2' AND status = 'pending' GROUP BY endpoint_id ORDER BY endpoint_id;
SAVEPOINT refused;
SELECT webhook.replay('00000000-0000-0000-0000-000000000000');
\echo SQLSTATE :SQLSTATE
ROLLBACK TO refused;
SELECT webhook.replay(:'event_2', 9399);
\echo SQLSTATE :SQLSTATE
ROLLBACK TO refused;
ROLLBACK;

--
-- recover(): re-queue an endpoint's failed deliveries created since a time.
--
BEGIN;
INSERT INTO webhook.endpoints (id, name, url, event_types) VALUES
    (9301, 'orders', 'https://example.com/orders', '{order.*}'),
    (9304, 'everything', 'https://example.com/everything', '{*}');
INSERT INTO webhook.events (id, event_type, payload, txid, created_at) VALUES
    ('00000000-0000-0000-0000-000000000011', 'order.created', '{"n": 1}', '0', now() - interval '3 days'),
    ('00000000-0000-0000-0000-000000000012', 'order.created', '{"n": 2}', '0', now() - interval '2 hours'),
    ('00000000-0000-0000-0000-000000000013', 'order.created', '{"n": 3}', '0', now() - interval '1 hour');
INSERT INTO webhook.delivery_state (event_id, endpoint_id, status, attempts, created_at, completed_at, last_error) VALUES
    ('00000000-0000-0000-0000-000000000011', 9301, 'failed', 8, now() - interval '3 days', now() - interval '2 days', 'HTTP 500'),
    ('00000000-0000-0000-0000-000000000012', 9301, 'failed', 8, now() - interval '2 hours', now() - interval '1 hour', 'HTTP 500'),
    ('00000000-0000-0000-0000-000000000013', 9301, 'succeeded', 1, now() - interval '1 hour', now() - interval '1 hour', NULL),
    ('00000000-0000-0000-0000-000000000013', 9301, 'pending', 2, now() - interval '1 hour', NULL, 'timeout'),
    ('00000000-0000-0000-0000-000000000012', 9304, 'failed', 8, now() - interval '2 hours', now() - interval '1 hour', 'HTTP 500');
SELECT webhook.recover(9301, now() - interval '1 day') AS recovered;
SELECT ev.payload ->> 'n' AS n, d.endpoint_id, d.status, d.attempts, d.completed_at IS NULL AS open,
       d.next_attempt_at = now() AS due_now
  FROM webhook.deliveries d JOIN webhook.events ev ON ev.id = d.event_id ORDER BY n, d.endpoint_id, d.status;
SELECT webhook.recover(9301, now() - interval '1 day') AS recovered_again;
SELECT webhook.recover(9301, now() - interval '1 week') AS recovered_older;
SAVEPOINT refused;
SELECT webhook.recover(9399, now());
\echo SQLSTATE :SQLSTATE
ROLLBACK TO refused;
ROLLBACK;

--
-- purge(): finished deliveries completed before the cutoff go, with their
-- log rows, and then events left with no delivery that are older than it.
--
BEGIN;
INSERT INTO webhook.endpoints (id, name, url, event_types) VALUES (9301, 'orders', 'https://example.com/orders', '{order.*}');
INSERT INTO webhook.events (id, event_type, payload, txid, created_at) VALUES
    ('00000000-0000-0000-0000-000000000021', 'order.created', '{"n": "old succeeded"}', '0', now() - interval '3 days'),
    ('00000000-0000-0000-0000-000000000022', 'order.created', '{"n": "old failed"}', '0', now() - interval '3 days'),
    ('00000000-0000-0000-0000-000000000023', 'order.created', '{"n": "old pending"}', '0', now() - interval '3 days'),
    ('00000000-0000-0000-0000-000000000024', 'order.created', '{"n": "old, recently succeeded"}', '0', now() - interval '3 days'),
    ('00000000-0000-0000-0000-000000000025', 'order.created', '{"n": "old orphan"}', '0', now() - interval '3 days'),
    ('00000000-0000-0000-0000-000000000026', 'order.created', '{"n": "recent orphan"}', '0', now() - interval '1 hour'),
    ('00000000-0000-0000-0000-000000000027', 'order.created', '{"n": "old, one delivery left"}', '0', now() - interval '3 days');
INSERT INTO webhook.delivery_state (event_id, endpoint_id, status, attempts, created_at, completed_at) VALUES
    ('00000000-0000-0000-0000-000000000021', 9301, 'succeeded', 1, now() - interval '3 days', now() - interval '3 days'),
    ('00000000-0000-0000-0000-000000000022', 9301, 'failed', 8, now() - interval '3 days', now() - interval '2 days'),
    ('00000000-0000-0000-0000-000000000023', 9301, 'pending', 3, now() - interval '3 days', NULL),
    ('00000000-0000-0000-0000-000000000024', 9301, 'succeeded', 2, now() - interval '3 days', now() - interval '1 hour'),
    ('00000000-0000-0000-0000-000000000027', 9301, 'succeeded', 1, now() - interval '3 days', now() - interval '3 days'),
    ('00000000-0000-0000-0000-000000000027', 9301, 'failed', 8, now() - interval '3 days', now() - interval '2 hours');
-- One log row per attempt.
INSERT INTO webhook.delivery_log (delivery_id, endpoint_id, event_id, attempt, url, attempted_at, duration_ms, status_code, error_class)
SELECT d.id, d.endpoint_id, d.event_id, a, 'https://example.com/orders', d.created_at + a * interval '1 minute', 10,
       CASE WHEN a = d.attempts AND d.status = 'succeeded' THEN 200 ELSE 500 END,
       CASE WHEN a = d.attempts AND d.status = 'succeeded' THEN NULL ELSE 'http' END
  FROM webhook.deliveries d CROSS JOIN generate_series(1, d.attempts) AS a;
SELECT count(*) AS log_rows FROM webhook.delivery_log;
SELECT webhook.purge(interval '1 day') AS purged;
SELECT ev.payload ->> 'n' AS event, d.status, (SELECT count(*) FROM webhook.delivery_log l WHERE l.delivery_id = d.id) AS log_rows
  FROM webhook.events ev LEFT JOIN webhook.deliveries d ON d.event_id = ev.id ORDER BY event, d.status;
SELECT count(*) AS log_rows FROM webhook.delivery_log;
-- Nothing more to purge; a shorter age takes the rest of what is finished.
SELECT webhook.purge(interval '1 day') AS purged_again;
SELECT webhook.purge(interval '0') AS purged_all_finished;
SELECT ev.payload ->> 'n' AS event, d.status FROM webhook.events ev
  LEFT JOIN webhook.deliveries d ON d.event_id = ev.id ORDER BY event;
SAVEPOINT refused;
SELECT webhook.purge(interval '-1 day');
\echo SQLSTATE :SQLSTATE
ROLLBACK TO refused;
SELECT webhook.purge(NULL);
\echo SQLSTATE :SQLSTATE
ROLLBACK TO refused;
ROLLBACK;

--
-- The views for people in psql: their columns, and what they compute.
--
SELECT * FROM webhook.endpoint_health LIMIT 0;
SELECT * FROM webhook.recent_failures LIMIT 0;
SELECT * FROM webhook.worker_stats LIMIT 0;
SELECT * FROM webhook.attempts LIMIT 0;
-- The worker's counters have one row per database at most.
SELECT count(*) <= 1 AS at_most_one_row FROM webhook.worker_stats WHERE database = current_database();
BEGIN;
INSERT INTO webhook.endpoints (id, name, url, event_types) VALUES
    (9301, 'orders', 'https://example.com/orders', '{order.*}'),
    (9304, 'everything', 'https://example.com/everything', '{*}'),
    (9306, 'quiet', 'https://example.com/quiet', '{}');
INSERT INTO webhook.events (id, event_type, payload, txid) VALUES
    ('00000000-0000-0000-0000-000000000031', 'order.created', '{}', '0');
INSERT INTO webhook.delivery_state (event_id, endpoint_id, status) VALUES
    ('00000000-0000-0000-0000-000000000031', 9301, 'pending'),
    ('00000000-0000-0000-0000-000000000031', 9304, 'failed');
-- Attempts 10, 20, 30 and 120 minutes ago count in the last day, the first
-- three in the last hour; those 2000 and 3000 minutes ago in neither.
INSERT INTO webhook.delivery_log (delivery_id, endpoint_id, event_id, attempt, url, attempted_at, duration_ms,
                                  status_code, error_class, error, response_body)
SELECT (SELECT d.id FROM webhook.deliveries d WHERE d.endpoint_id = v.endpoint_id),
       v.endpoint_id, '00000000-0000-0000-0000-000000000031', v.attempt, 'https://example.com/x',
       now() - v.minutes_ago * interval '1 minute', v.duration_ms, v.status_code, v.error_class, v.error, v.response
  FROM (VALUES (9301, 1, 10, 10.0, 200, NULL, NULL, 'ok'),
               (9301, 2, 20, 20.0, 200, NULL, NULL, 'ok'),
               (9301, 3, 30, 30.04, 500, 'http', 'HTTP 500', repeat('e', 200)),
               (9301, 4, 120, 40.0, 200, NULL, NULL, 'ok'),
               (9301, 5, 2000, 50.0, NULL, 'timeout', 'timed out after 15000 ms', NULL),
               (9301, 6, 3000, 60.0, 200, NULL, NULL, 'ok'),
               (9304, 1, 5, 100.0, NULL, 'connect', 'connection refused', NULL),
               (9304, 2, 6, 300.0, 503, 'http', 'HTTP 503', 'busy'))
       AS v(endpoint_id, attempt, minutes_ago, duration_ms, status_code, error_class, error, response);
INSERT INTO webhook.endpoint_state (endpoint_id, failing_since, consecutive_failures, last_success_at, last_failure_at, last_error)
VALUES (9304, now() - interval '6 minutes', 2, NULL, now() - interval '5 minutes', 'connection refused');
SELECT id, name, active, pending, succeeded_1h, failed_1h, succeeded_24h, failed_24h, success_rate_24h,
       p50_ms, p95_ms, last_failure_at = now() - interval '5 minutes' AS last_failure_5_min_ago, last_error,
       consecutive_failures, failing_since = now() - interval '6 minutes' AS failing_6_min, disabled_at, disabled_reason
  FROM webhook.endpoint_health WHERE id > 9300 ORDER BY id;
-- Failed attempts only, newest first, with the status code or the error class.
SELECT now() - attempted_at AS ago, endpoint_id, endpoint, event_type, attempt, failure, error, length(response) AS response_length
  FROM webhook.recent_failures WHERE endpoint_id > 9300;
-- Every attempt, newest first.
SELECT now() - attempted_at AS ago, endpoint, event_type, attempt, status_code, error_class, duration_ms, response
  FROM webhook.attempts WHERE endpoint_id > 9300;
ROLLBACK;

--
-- Endpoints failing for longer than a period are deactivated and announced
-- with a webhook.endpoint.disabled event; re-activating clears the reason.
--
BEGIN;
INSERT INTO webhook.endpoints (id, name, url, event_types) VALUES
    (9301, 'orders', 'https://hooks.example.com:8443/services/T0/B0/SECRETPATH?token=SECRETQUERY#SECRETFRAGMENT', '{order.*}'),
    (9304, 'everything', 'https://example.com/everything', '{*}'),
    (9307, 'flaky', 'https://example.com/flaky', '{order.*}'),
    (9308, 'healthy', 'https://example.com/healthy', '{order.*}');
INSERT INTO webhook.endpoints (id, name, url, active) VALUES (9303, 'paused', 'https://example.com/paused', false);
INSERT INTO webhook.endpoint_state (endpoint_id, failing_since, consecutive_failures, last_error) VALUES
    (9301, now() - interval '2 days', 40, 'HTTP 500'),
    (9307, now() - interval '2 hours', 3, 'timeout'),
    (9308, NULL, 0, NULL),
    (9303, now() - interval '5 days', 90, 'HTTP 502');
SELECT webhook._disable_failing_endpoints(interval '1 day') AS disabled;
SELECT id, name, active, disabled_at = now() AS disabled_now,
       disabled_reason = 'every delivery failed since ' || (now() - interval '2 days')::text AS reason_names_the_time,
       disabled_reason IS NOT NULL AS has_reason
  FROM webhook.endpoints WHERE id > 9300 ORDER BY id;
SELECT ev.event_type, ev.payload - 'failing_since' AS payload,
       (ev.payload ->> 'failing_since')::timestamptz = now() - interval '2 days' AS failing_since
  FROM webhook.events ev WHERE ev.event_type = 'webhook.endpoint.disabled';
-- It names the endpoint by id, name and origin: never the URL's path, query
-- or fragment, where chat services keep their tokens.
SELECT ev.payload ->> 'url_origin' AS url_origin, ev.payload::text ~ 'SECRET|/services' AS leaks_url
  FROM webhook.events ev WHERE ev.event_type = 'webhook.endpoint.disabled';
-- The announcement goes to the endpoints subscribed to it, not to the disabled one.
SELECT d.endpoint_id, d.status FROM webhook.deliveries d JOIN webhook.events ev ON ev.id = d.event_id
 WHERE ev.event_type = 'webhook.endpoint.disabled' ORDER BY d.endpoint_id;
-- Once disabled, it is not disabled again.
SELECT webhook._disable_failing_endpoints(interval '1 day') AS disabled_again;
-- A shorter period takes the other failing endpoint.
SELECT webhook._disable_failing_endpoints(interval '1 hour') AS disabled_after_an_hour;
SELECT id, active, disabled_reason IS NOT NULL AS has_reason FROM webhook.endpoints WHERE id IN (9307, 9308) ORDER BY id;
-- Re-activating clears disabled_at and disabled_reason.
UPDATE webhook.endpoints SET active = true WHERE id = 9301;
SELECT id, active, disabled_at, disabled_reason FROM webhook.endpoints WHERE id = 9301;
-- Other changes to a disabled endpoint keep them.
UPDATE webhook.endpoints SET description = 'still off' WHERE id = 9307;
SELECT id, active, disabled_at IS NOT NULL AS disabled, disabled_reason IS NOT NULL AS has_reason
  FROM webhook.endpoints WHERE id = 9307;
ROLLBACK;

-- The extension's own events are never refused by webhook.strict_event_types,
-- even when their rows were deleted from the catalogue.
BEGIN;
SET LOCAL webhook.strict_event_types = on;
DELETE FROM webhook.event_types WHERE name LIKE 'webhook.%';
INSERT INTO webhook.endpoints (id, name, url, event_types) VALUES
    (9311, 'failing', 'https://example.com/failing', '{order.*}'),
    (9312, 'watcher', 'https://example.com/watcher', '{webhook.*}');
INSERT INTO webhook.endpoint_state (endpoint_id, failing_since, consecutive_failures, last_error) VALUES
    (9311, now() - interval '2 days', 40, 'HTTP 500');
SELECT webhook._disable_failing_endpoints(interval '1 day') AS disabled;
SELECT id, active, disabled_reason IS NOT NULL AS has_reason FROM webhook.endpoints WHERE id > 9310 ORDER BY id;
SELECT d.endpoint_id, ev.payload ->> 'endpoint_id' AS disabled_endpoint
  FROM webhook.events ev JOIN webhook.deliveries d ON d.event_id = ev.id
 WHERE ev.event_type = 'webhook.endpoint.disabled';
SELECT webhook.ping(9312) IS NOT NULL AS pinged;
ROLLBACK;

--
-- Endpoint options.
--
CREATE SCHEMA regress_ops;
BEGIN;
INSERT INTO webhook.endpoints (id, name, url) VALUES (9301, 'orders', 'https://example.com/orders');
SELECT rate_limit_per_s, ordered, transform, transform_role FROM webhook.endpoints WHERE id = 9301;
SAVEPOINT refused;
UPDATE webhook.endpoints SET rate_limit_per_s = 0 WHERE id = 9301;
\echo SQLSTATE :SQLSTATE
ROLLBACK TO refused;
UPDATE webhook.endpoints SET rate_limit_per_s = -2.5 WHERE id = 9301;
\echo SQLSTATE :SQLSTATE
ROLLBACK TO refused;
INSERT INTO webhook.endpoints (url, rate_limit_per_s) VALUES ('https://example.com/zero', 0);
\echo SQLSTATE :SQLSTATE
ROLLBACK TO refused;
-- Not a number is not a positive rate either.
\set VERBOSITY sqlstate
UPDATE webhook.endpoints SET rate_limit_per_s = 'NaN' WHERE id = 9301;
\set VERBOSITY default
ROLLBACK TO refused;
UPDATE webhook.endpoints SET rate_limit_per_s = 2.5, ordered = true WHERE id = 9301;
SELECT rate_limit_per_s, ordered FROM webhook.endpoints WHERE id = 9301;
UPDATE webhook.endpoints SET rate_limit_per_s = NULL WHERE id = 9301;
SELECT rate_limit_per_s FROM webhook.endpoints WHERE id = 9301;
-- transform: (event_type text, created_at timestamptz, payload jsonb) returning jsonb, json or text.
CREATE FUNCTION regress_ops.one_arg(payload jsonb) RETURNS jsonb LANGUAGE sql AS 'SELECT payload';
CREATE FUNCTION regress_ops.wrong_types(event_type text, created_at timestamp, payload jsonb)
    RETURNS jsonb LANGUAGE sql AS 'SELECT payload';
CREATE FUNCTION regress_ops.wrong_result(event_type text, created_at timestamptz, payload jsonb)
    RETURNS integer LANGUAGE sql AS 'SELECT 1';
CREATE FUNCTION regress_ops.slack(event_type text, created_at timestamptz, payload jsonb)
    RETURNS jsonb LANGUAGE sql AS $$SELECT jsonb_build_object('text', event_type || ': ' || payload::text)$$;
CREATE FUNCTION regress_ops.plain(event_type text, created_at timestamptz, payload jsonb)
    RETURNS text LANGUAGE sql AS $$SELECT event_type$$;
SAVEPOINT refused;
UPDATE webhook.endpoints SET transform = 'regress_ops.one_arg'::regproc WHERE id = 9301;
\echo SQLSTATE :SQLSTATE
ROLLBACK TO refused;
UPDATE webhook.endpoints SET transform = 'regress_ops.wrong_types'::regproc WHERE id = 9301;
\echo SQLSTATE :SQLSTATE
ROLLBACK TO refused;
UPDATE webhook.endpoints SET transform = 'regress_ops.wrong_result'::regproc WHERE id = 9301;
\echo SQLSTATE :SQLSTATE
ROLLBACK TO refused;
UPDATE webhook.endpoints SET transform = 'regress_ops.slack'::regproc WHERE id = 9301;
SELECT transform = 'regress_ops.slack'::regproc AS transform_set, transform_role = current_user::regrole AS role_is_current_user
  FROM webhook.endpoints WHERE id = 9301;
UPDATE webhook.endpoints SET transform = 'regress_ops.plain'::regproc WHERE id = 9301;
SELECT transform = 'regress_ops.plain'::regproc AS text_transform_set FROM webhook.endpoints WHERE id = 9301;
-- transform_role cannot be set by hand: it is whoever set transform.
UPDATE webhook.endpoints SET transform = NULL, transform_role = current_user::regrole WHERE id = 9301;
SELECT transform, transform_role FROM webhook.endpoints WHERE id = 9301;
INSERT INTO webhook.endpoints (id, url, transform) VALUES (9309, 'https://example.com/t', 'regress_ops.slack'::regproc);
SELECT transform_role = current_user::regrole AS set_on_insert FROM webhook.endpoints WHERE id = 9309;
ROLLBACK;
-- Another role sets a transform: it becomes the transform_role; without
-- EXECUTE on the function it is refused.
CREATE ROLE regress_webhook_operator NOLOGIN;
CREATE ROLE regress_webhook_bystander NOLOGIN;
GRANT USAGE ON SCHEMA webhook TO regress_webhook_operator;
GRANT SELECT, INSERT, UPDATE, DELETE ON webhook.endpoints TO regress_webhook_operator;
GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA webhook TO regress_webhook_operator;
GRANT USAGE ON SCHEMA regress_ops TO regress_webhook_operator;
CREATE FUNCTION regress_ops.shape(event_type text, created_at timestamptz, payload jsonb)
    RETURNS jsonb LANGUAGE sql AS 'SELECT payload';
CREATE FUNCTION regress_ops.secret_shape(event_type text, created_at timestamptz, payload jsonb)
    RETURNS jsonb LANGUAGE sql AS 'SELECT payload';
REVOKE EXECUTE ON FUNCTION regress_ops.secret_shape(text, timestamptz, jsonb) FROM PUBLIC;
BEGIN;
INSERT INTO webhook.endpoints (id, name, url) VALUES (9301, 'orders', 'https://example.com/orders');
SET LOCAL ROLE regress_webhook_operator;
UPDATE webhook.endpoints SET transform = 'regress_ops.shape'::regproc WHERE id = 9301;
RESET ROLE;
SELECT transform, transform_role FROM webhook.endpoints WHERE id = 9301;
-- Changing something else as another role keeps the transform_role.
UPDATE webhook.endpoints SET description = 'x' WHERE id = 9301;
SELECT transform_role FROM webhook.endpoints WHERE id = 9301;
-- Nor can transform_role be changed by hand, to run the transform as
-- another role (whether the attempt is refused or ignored).
SET LOCAL ROLE regress_webhook_operator;
DO $$
BEGIN
    UPDATE webhook.endpoints SET transform_role = 'regress_webhook_bystander' WHERE id = 9301;
EXCEPTION WHEN OTHERS THEN
    NULL;
END
$$;
RESET ROLE;
SELECT transform, transform_role FROM webhook.endpoints WHERE id = 9301;
-- Attaching a wrapper to the extension, so that DROP EXTENSION takes it
-- along, is the endpoints trigger's business.  An operator who may execute
-- every function of the schema attaches nothing else: not a builtin (that
-- would block DROP EXTENSION), not someone else's function (it would vanish
-- with the extension), not a function that merely looks like a wrapper.
CREATE FUNCTION webhook._transform_9399(t text, at timestamptz, p jsonb) RETURNS text
    LANGUAGE sql AS 'SELECT t';
SET LOCAL ROLE regress_webhook_operator;
SAVEPOINT attach;
SELECT webhook._attach_transform_wrapper('pg_catalog.now()');
\echo SQLSTATE :SQLSTATE
ROLLBACK TO attach;
SELECT webhook._attach_transform_wrapper(0);
\echo SQLSTATE :SQLSTATE
ROLLBACK TO attach;
SELECT webhook._attach_transform_wrapper('regress_ops.shape(text, timestamptz, jsonb)');
\echo SQLSTATE :SQLSTATE
ROLLBACK TO attach;
SELECT webhook._attach_transform_wrapper('webhook._transform_9399(text, timestamptz, jsonb)');
\echo SQLSTATE :SQLSTATE
ROLLBACK TO attach;
-- The endpoint's own wrapper stays attached once, whoever asks again.
SELECT webhook._attach_transform_wrapper('webhook._transform_9301(text, timestamptz, jsonb)');
RESET ROLE;
SELECT d.objid::regprocedure AS attached, count(*)
  FROM pg_depend d
 WHERE d.classid = 'pg_proc'::regclass AND d.refclassid = 'pg_extension'::regclass
   AND d.refobjid = (SELECT oid FROM pg_extension WHERE extname = 'webhook') AND d.deptype = 'a'
 GROUP BY d.objid ORDER BY 1;
SET LOCAL ROLE regress_webhook_operator;
UPDATE webhook.endpoints SET transform = 'regress_ops.secret_shape'::regproc WHERE id = 9301;
\echo SQLSTATE :SQLSTATE
ROLLBACK;

-- Leave nothing behind.
SET client_min_messages = warning;
DROP SCHEMA regress_ops CASCADE;
RESET client_min_messages;
DROP OWNED BY regress_webhook_operator;
DROP ROLE regress_webhook_operator, regress_webhook_bystander;
SELECT count(*) AS endpoints, (SELECT count(*) FROM webhook.events) AS events FROM webhook.endpoints;
