-- Citus clusters (issue 16), on a server without Citus: the cluster
-- functions refuse what needs a coordinator or a worker node, and the
-- cluster views and functions treat the one server as the whole cluster
-- ('local').  The cluster itself is tested by test/t/036_citus.pl.
\set SHOW_CONTEXT never
\set VERBOSITY terse

SELECT webhook._citus_role();
SELECT webhook._cluster_tick();                       -- the sync worker would leave
SELECT * FROM webhook.sync_cluster();                 -- no coordinator here
SELECT webhook._apply_cluster_config('{}');           -- no worker node either
SELECT webhook._cluster_digest(webhook._cluster_config()) = md5(webhook._cluster_config()::text);

BEGIN;
-- Without Citus the guard lets endpoints be written, as always.
INSERT INTO webhook.endpoints (id, name, url) VALUES (9601, 'cluster', 'https://example.com/c');
UPDATE webhook.endpoints SET description = 'one server' WHERE id = 9601;
-- What a worker node would be sent: the rows as they are, secrets sealed.
SELECT e ->> 'name' AS name, e ->> 'secret' LIKE 'whenc:%' AS sealed
  FROM jsonb_array_elements(webhook._cluster_config() -> 'endpoints') e WHERE (e ->> 'id')::bigint = 9601;
SELECT count(*) > 0 AS has_event_types FROM jsonb_array_elements(webhook._cluster_config() -> 'event_types');

-- The cluster views show this server's rows as node 'local'.
SELECT webhook.send('cluster.test', '{"n": 1}') IS NOT NULL AS sent;
SELECT webhook._read_events(1000) IS NOT NULL AS read;
SELECT node, count(*) FROM webhook.cluster_deliveries WHERE endpoint_id = 9601 GROUP BY node;
SELECT (SELECT count(*) FROM webhook.cluster_deliveries) = (SELECT count(*) FROM webhook.deliveries) AS same_deliveries;
SELECT (SELECT count(*) FROM webhook.cluster_attempts) = (SELECT count(*) FROM webhook.attempts) AS same_attempts;

-- retry, replay and recover act on 'local'; other names are refused.
SELECT webhook.cluster_replay(event_id) FROM webhook.deliveries WHERE endpoint_id = 9601;
SELECT webhook.cluster_recover(9601, now() - interval '1 hour');
SELECT webhook.cluster_retry('local', id) FROM webhook.deliveries WHERE endpoint_id = 9601 ORDER BY id LIMIT 1;
ROLLBACK;
SELECT webhook.cluster_retry('elsewhere:5432', 1);
SELECT webhook.cluster_replay('00000000-0000-0000-0000-000000000000');
SELECT webhook.cluster_retry('local', -1);

-- None of it is for PUBLIC.
SELECT p.oid::regprocedure AS function
  FROM pg_proc p
 WHERE p.pronamespace = 'webhook'::regnamespace
   AND (p.proname LIKE '%cluster%' OR p.proname IN ('_on_nodes', '_citus_role'))
   AND has_function_privilege('public', p.oid, 'EXECUTE')
 ORDER BY 1;
SELECT c.relname FROM pg_class c
 WHERE c.relnamespace = 'webhook'::regnamespace AND c.relname LIKE 'cluster%'
   AND has_table_privilege('public', c.oid, 'SELECT')
 ORDER BY 1;
