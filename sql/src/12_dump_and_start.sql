-- Endpoints, the catalogue and the queue are user data: pg_dump keeps them.
-- (Watches travel in their triggers' arguments: see webhook._watch_ddl_end.)
SELECT pg_catalog.pg_extension_config_dump('webhook.endpoints', '');
SELECT pg_catalog.pg_extension_config_dump('webhook.event_types', $$WHERE name NOT LIKE 'webhook.%'$$);
SELECT pg_catalog.pg_extension_config_dump('webhook.events', '');
SELECT pg_catalog.pg_extension_config_dump('webhook.delivery_state', '');
SELECT pg_catalog.pg_extension_config_dump('webhook.delivery_log', '');
SELECT pg_catalog.pg_extension_config_dump('webhook.first_attempts', '');
-- The rows are in the queue's partitions, one per generation: their data
-- is dumped partition by partition.  (The generations table is not dumped:
-- the restoring database keeps its own, and retention empties restored
-- rows of a generation it does not use as old ones.)
DO $$
DECLARE
    t text;
BEGIN
    FOR t IN SELECT p.t || '_' || g FROM pg_catalog.unnest(ARRAY['events', 'delivery_state', 'delivery_log']) AS p(t),
                                         pg_catalog.generate_series(0, 3) AS g
    LOOP
        PERFORM pg_catalog.pg_extension_config_dump(pg_catalog.format('webhook.%I', t)::pg_catalog.regclass, '');
    END LOOP;
END;
$$;
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
