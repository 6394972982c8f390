-- What CREATE EXTENSION webhook makes: the queue tables in schema webhook,
-- all WAL-logged, with their keys, constraints, indexes and triggers.
\set SHOW_CONTEXT never

SELECT e.extname, e.extversion, n.nspname AS schema, e.extrelocatable
  FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace
 WHERE e.extname = 'webhook';

-- The tables (and the deliveries view), permanent (relpersistence 'p'), and members of the extension.
SELECT c.relname, c.relkind, c.relpersistence,
       EXISTS (SELECT 1 FROM pg_depend d
                WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid AND d.deptype = 'e'
                  AND d.refobjid = (SELECT oid FROM pg_extension WHERE extname = 'webhook')) AS extension_member
  FROM pg_class c
 WHERE c.relnamespace = 'webhook'::regnamespace
   AND c.relname IN ('endpoints', 'event_types', 'events', 'deliveries', 'delivery_state', 'queue_positions', 'delivery_log')
 ORDER BY c.relname;
-- The queue's tables are partitioned by generation, four partitions each,
-- members of the extension; exactly one generation is the current one.
SELECT i.inhparent::regclass AS "table", i.inhrelid::regclass AS partition,
       pg_get_expr(c.relpartbound, c.oid) AS bound,
       EXISTS (SELECT 1 FROM pg_depend d
                WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid AND d.deptype = 'e') AS extension_member
  FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
 WHERE i.inhparent IN ('webhook.events'::regclass, 'webhook.delivery_state'::regclass, 'webhook.delivery_log'::regclass)
   AND c.relkind = 'r'
 ORDER BY 1, 2;
SELECT gen, began_at IS NOT NULL AS began, ended_at IS NULL AS open FROM webhook.queue_generations ORDER BY gen;
SELECT webhook._current_generation();
-- Nothing in the schema is unlogged or temporary: not the tables, their
-- indexes, their TOAST or their identity sequences.
SELECT count(*) AS not_permanent
  FROM pg_class c
 WHERE c.relpersistence <> 'p'
   AND (c.relnamespace = 'webhook'::regnamespace
        OR c.oid IN (SELECT reltoastrelid FROM pg_class WHERE relnamespace = 'webhook'::regnamespace));

-- Columns, types, NOT NULL and defaults.
SELECT a.attrelid::regclass AS "table", a.attname AS column, format_type(a.atttypid, a.atttypmod) AS type,
       a.attnotnull AS not_null, a.attidentity AS identity, pg_get_expr(d.adbin, d.adrelid) AS "default"
  FROM pg_attribute a
  LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
 WHERE a.attrelid IN ('webhook.endpoints'::regclass, 'webhook.event_types'::regclass, 'webhook.events'::regclass,
                      'webhook.deliveries'::regclass, 'webhook.delivery_state'::regclass,
                   'webhook.queue_positions'::regclass, 'webhook.delivery_log'::regclass)
   AND a.attnum > 0 AND NOT a.attisdropped
 ORDER BY a.attrelid::regclass::text, a.attnum;

-- Primary keys, unique keys, foreign keys and checks.
SELECT conrelid::regclass AS "table", conname, contype, pg_get_constraintdef(oid) AS definition
  FROM pg_constraint
 WHERE conrelid IN ('webhook.endpoints'::regclass, 'webhook.event_types'::regclass, 'webhook.events'::regclass,
                    'webhook.deliveries'::regclass, 'webhook.delivery_state'::regclass,
                   'webhook.queue_positions'::regclass, 'webhook.delivery_log'::regclass)
 ORDER BY conrelid::regclass::text, conname;

-- Indexes, among them the partial ones on pending deliveries that the
-- worker claims from and sleeps on, and the log's.
SELECT tablename, indexname, indexdef
  FROM pg_indexes
 WHERE schemaname = 'webhook'
   AND tablename IN ('endpoints', 'event_types', 'events', 'deliveries', 'delivery_state', 'queue_positions', 'delivery_log')
 ORDER BY tablename, indexname;

-- Triggers that keep endpoints valid and close deliveries of deleted endpoints.
SELECT tgrelid::regclass AS "table", tgname, pg_get_triggerdef(oid) AS definition
  FROM pg_trigger
 WHERE tgrelid IN ('webhook.endpoints'::regclass, 'webhook.event_types'::regclass, 'webhook.events'::regclass,
                   'webhook.deliveries'::regclass, 'webhook.delivery_state'::regclass,
                   'webhook.queue_positions'::regclass, 'webhook.delivery_log'::regclass)
   AND NOT tgisinternal
 ORDER BY tgrelid::regclass::text, tgname;

-- pg_dump keeps user data of these tables (built-in event types excepted),
-- and the values of their identity sequences.
SELECT cfg.tbl AS "table", c.relkind, cfg.cond AS condition
  FROM pg_extension e, unnest(e.extconfig::regclass[], e.extcondition) AS cfg(tbl, cond)
  JOIN pg_class c ON c.oid = cfg.tbl
 WHERE e.extname = 'webhook'
 ORDER BY cfg.tbl::text;

-- The settings used by the SQL API: defaults (the server runs with
-- test/regress.conf, which keeps allow_private_networks off) and who may set them.
SELECT name, setting, boot_val, context, vartype
  FROM pg_settings
 WHERE name IN ('webhook.allow_private_networks', 'webhook.allowed_networks', 'webhook.require_https',
                'webhook.max_payload_bytes', 'webhook.strict_event_types')
 ORDER BY name;
