-- Privileges: nothing is public; an application role given only USAGE on the
-- schema and EXECUTE on webhook.send can send events and read nothing, no
-- secret in particular; an operator role given the grants README.md shows
-- manages endpoints without being a superuser.
\set SHOW_CONTEXT never

-- The typical grants of README.md ("Privileges").
CREATE ROLE regress_webhook_app NOLOGIN;
GRANT USAGE ON SCHEMA webhook TO regress_webhook_app;
GRANT EXECUTE ON FUNCTION webhook.send(text, jsonb, text, timestamptz, text) TO regress_webhook_app;
CREATE ROLE regress_webhook_ops NOLOGIN;
GRANT USAGE ON SCHEMA webhook TO regress_webhook_ops;
GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA webhook TO regress_webhook_ops;
GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA webhook TO regress_webhook_ops;
-- A role that may only delete endpoints.
CREATE ROLE regress_webhook_janitor NOLOGIN;
GRANT USAGE ON SCHEMA webhook TO regress_webhook_janitor;
GRANT SELECT, DELETE ON webhook.endpoints TO regress_webhook_janitor;

-- No table of the schema grants anything to PUBLIC.
SELECT c.relname,
       EXISTS (SELECT 1 FROM aclexplode(c.relacl) a WHERE a.grantee = 0) AS public_has_access
  FROM pg_class c
 WHERE c.relnamespace = 'webhook'::regnamespace
   AND c.relname IN ('endpoints', 'event_types', 'events', 'deliveries', 'delivery_log')
 ORDER BY c.relname;
-- What the application role may do with the functions of the SQL API.
SELECT f AS function, has_function_privilege('regress_webhook_app', f, 'EXECUTE') AS app_may_execute
  FROM unnest(ARRAY['webhook.send(text, jsonb, text, timestamptz, text)', 'webhook.public_key(bigint)',
                    'webhook.generate_secret(text)', 'webhook.sign(text, text, bigint, text, text, text)',
                    'webhook._check_event_type(text)', 'webhook._wake_worker_at_commit()',
                    'webhook._endpoints_before_write()', 'webhook._endpoints_before_delete()',
                    'webhook._seal(text)', 'webhook._unseal(text)', 'webhook._secret_problem(text, text)',
                    'webhook.endpoint_secret(bigint)', 'webhook._ed25519_public_key(text)']) AS f
 ORDER BY f;
-- Every function of the schema that PUBLIC may execute: the SQL API that
-- needs no secret, and the pure checks that triggers, watch() and verify()
-- run as their caller.  None seals, opens or reads a stored value.
SELECT p.oid::regprocedure AS public_function
  FROM pg_proc p
 WHERE p.pronamespace = 'webhook'::regnamespace
   AND EXISTS (SELECT 1 FROM aclexplode(coalesce(p.proacl, acldefault('f', p.proowner))) a
                WHERE a.grantee = 0 AND a.privilege_type = 'EXECUTE')
 ORDER BY 1::text;

--
-- The application role sends events (in a transaction rolled back, so the
-- delivery worker never sees the delivery).
--
BEGIN;
INSERT INTO webhook.endpoints (name, url) VALUES ('receiver', 'https://example.com/receiver');
SET LOCAL ROLE regress_webhook_app;
SELECT webhook.send('order.created', '{"id": 1}') AS sent_by_app \gset
SELECT current_user;
RESET ROLE;
SELECT ev.event_type, ev.payload, ep.name AS endpoint, d.status
  FROM webhook.events ev JOIN webhook.deliveries d ON d.event_id = ev.id
  JOIN webhook.endpoints ep ON ep.id = d.endpoint_id
 WHERE ev.id = :'sent_by_app';
ROLLBACK;

--
-- ... and can read or change nothing.
--
SET ROLE regress_webhook_app;
SELECT secret FROM webhook.endpoints;
\echo SQLSTATE :SQLSTATE
SELECT count(*) FROM webhook.endpoints;
\echo SQLSTATE :SQLSTATE
SELECT count(*) FROM webhook.events;
\echo SQLSTATE :SQLSTATE
SELECT count(*) FROM webhook.deliveries;
\echo SQLSTATE :SQLSTATE
SELECT count(*) FROM webhook.delivery_log;
\echo SQLSTATE :SQLSTATE
SELECT count(*) FROM webhook.event_types;
\echo SQLSTATE :SQLSTATE
INSERT INTO webhook.endpoints (url) VALUES ('https://example.com/app');
\echo SQLSTATE :SQLSTATE
INSERT INTO webhook.events (event_type, payload) VALUES ('order.created', '{}');
\echo SQLSTATE :SQLSTATE
UPDATE webhook.delivery_state SET status = 'succeeded';
\echo SQLSTATE :SQLSTATE
DELETE FROM webhook.delivery_log;
\echo SQLSTATE :SQLSTATE
INSERT INTO webhook.event_types (name) VALUES ('app.defined');
\echo SQLSTATE :SQLSTATE
SELECT webhook.public_key(1);
\echo SQLSTATE :SQLSTATE
SELECT webhook._wake_worker_at_commit();
\echo SQLSTATE :SQLSTATE
-- The network policy and the payload limit are the superuser's to set.
SET webhook.allow_private_networks = on;
\echo SQLSTATE :SQLSTATE
SET webhook.allowed_networks = '10.0.0.0/8';
\echo SQLSTATE :SQLSTATE
SET webhook.require_https = off;
\echo SQLSTATE :SQLSTATE
SET webhook.max_payload_bytes = 100000000;
\echo SQLSTATE :SQLSTATE
-- The payload limit applies to the application role too.
RESET ROLE;
SET webhook.max_payload_bytes = 8;
SET ROLE regress_webhook_app;
SELECT webhook.send('order.created', '{"id": 123456}');
\echo SQLSTATE :SQLSTATE
RESET ROLE;
RESET webhook.max_payload_bytes;
-- An event sent by the application role with no subscriber commits like any other.
SET ROLE regress_webhook_app;
SELECT webhook.send('app.committed', '{}', 'app-1') AS committed_by_app \gset
RESET ROLE;
SELECT event_type, idempotency_key FROM webhook.events WHERE id = :'committed_by_app';
DELETE FROM webhook.events WHERE id = :'committed_by_app';

--
-- The operator manages endpoints through the same checks as a superuser.
--
SET ROLE regress_webhook_ops;
INSERT INTO webhook.endpoints (name, url) VALUES ('ops', 'https://example.com/ops');
SELECT name, signing, webhook.endpoint_secret(id) ~ '^whsec_[A-Za-z0-9+/]{43}=$' AS secret_is_whsec_base64
  FROM webhook.endpoints WHERE name = 'ops';
UPDATE webhook.endpoints SET signing = 'ed25519' WHERE name = 'ops';
SELECT name, signing, webhook.endpoint_secret(id) ~ '^whsk_[A-Za-z0-9+/]{86}==$' AS secret_is_whsk_base64,
       webhook.public_key(id) ~ '^whpk_[A-Za-z0-9+/]{43}=$' AS public_key_is_whpk_base64
  FROM webhook.endpoints WHERE name = 'ops';
INSERT INTO webhook.endpoints (url) VALUES ('http://127.0.0.1/ops');
\echo SQLSTATE :SQLSTATE
-- ... but may not open private networks.
SET webhook.allow_private_networks = on;
\echo SQLSTATE :SQLSTATE
RESET ROLE;

-- Deleting an endpoint with a pending delivery closes the delivery, even when
-- the deleting role may not write webhook.deliveries.
SET ROLE regress_webhook_janitor;
UPDATE webhook.delivery_state SET status = 'failed';
\echo SQLSTATE :SQLSTATE
RESET ROLE;
BEGIN;
SELECT webhook.send('order.created', '{}') AS pending_for_ops \gset
-- What the worker does once this commits: it reads the events into
-- delivery_state rows.
INSERT INTO webhook.delivery_state (event_id, endpoint_id)
SELECT event_id, endpoint_id FROM webhook.deliveries WHERE id IS NULL ORDER BY event_id, endpoint_id;
SET LOCAL ROLE regress_webhook_janitor;
DELETE FROM webhook.endpoints WHERE name = 'ops';
RESET ROLE;
SELECT status, last_error, endpoint_id FROM webhook.deliveries WHERE event_id = :'pending_for_ops';
ROLLBACK;
DELETE FROM webhook.endpoints WHERE name = 'ops';

-- Clean up, so that the suite can run again.
DROP OWNED BY regress_webhook_app, regress_webhook_ops, regress_webhook_janitor;
DROP ROLE regress_webhook_app, regress_webhook_ops, regress_webhook_janitor;
