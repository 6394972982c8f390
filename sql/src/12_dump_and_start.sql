-- Endpoints, the catalogue and the queue are user data: pg_dump keeps them.
-- (Watches travel in their triggers' arguments: see webhook._watch_ddl_end.)
SELECT pg_catalog.pg_extension_config_dump('webhook.endpoints', '');
SELECT pg_catalog.pg_extension_config_dump('webhook.event_types', $$WHERE name NOT LIKE 'webhook.%'$$);
SELECT pg_catalog.pg_extension_config_dump('webhook.events', '');
SELECT pg_catalog.pg_extension_config_dump('webhook.delivery_state', '');
SELECT pg_catalog.pg_extension_config_dump('webhook.delivery_log', '');
SELECT pg_catalog.pg_extension_config_dump('webhook.endpoint_state', '');
-- The worker's position too: a restore sets it aside, and the worker
-- settles the restored events against it (webhook._settle_restored).
SELECT pg_catalog.pg_extension_config_dump('webhook.queue_positions', '');
-- Their identity sequences too, so that new rows after a restore do not
-- collide with restored ones.
SELECT pg_catalog.pg_extension_config_dump(pg_catalog.pg_get_serial_sequence('webhook.endpoints', 'id')::pg_catalog.regclass, '');
SELECT pg_catalog.pg_extension_config_dump(pg_catalog.pg_get_serial_sequence('webhook.delivery_state', 'id')::pg_catalog.regclass, '');
SELECT pg_catalog.pg_extension_config_dump(pg_catalog.pg_get_serial_sequence('webhook.delivery_log', 'id')::pg_catalog.regclass, '');

-- Start delivering in this database once CREATE EXTENSION commits.
SELECT webhook._start_worker_at_commit();
