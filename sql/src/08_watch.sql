------------------------------------------------------------------------------
-- Watching application tables (src/watch*.c)
------------------------------------------------------------------------------

-- One row per watched table, written only by webhook.watch(), webhook.unwatch()
-- and a restore of a watch's triggers, with watch()'s checks (see
-- webhook._watch_ddl_end), as the owner of this table.  Columns are kept by number
-- and the condition parsed, as PostgreSQL keeps a trigger's WHEN clause: the
-- watch's triggers depend on what they name, so DROP refuses or cascades and
-- RENAME keeps working.  Row level security lets a table's owner see the
-- watch of that table and no other.
CREATE TABLE webhook.table_watches (
    table_oid       regclass PRIMARY KEY,
    event_prefix    text NOT NULL,
    operations      text[] NOT NULL,
    columns         int2[],
    condition       pg_node_tree,
    exclude_columns int2[],
    created_at      timestamptz NOT NULL DEFAULT pg_catalog.now(),
    updated_at      timestamptz NOT NULL DEFAULT pg_catalog.now(),
    -- The columns of a row's ordering key (issue 14); NULL: the primary
    -- key; '{}': none.
    ordering_key    int2[]
);
COMMENT ON TABLE webhook.table_watches IS 'options of webhook.watch() per table; read webhook.watches';

-- May the current role manage, and see, the watch of this table?  Its owner
-- and the roles with the owner's privileges may (src/watch_def.c holds the rule,
-- which watch() and unwatch() apply too); nobody may for a dropped table.
CREATE FUNCTION webhook._owns_table(tbl regclass)
RETURNS boolean LANGUAGE C STABLE STRICT PARALLEL SAFE
AS 'MODULE_PATHNAME', 'webhook_owns_table_sql';

ALTER TABLE webhook.table_watches ENABLE ROW LEVEL SECURITY;
CREATE POLICY table_watches_owner ON webhook.table_watches
    USING (webhook._owns_table(table_oid));

-- Only webhook.watch() writes watch rows, even for the extension's owner
-- (and a data-only restore): see src/watch_def.c.
CREATE FUNCTION webhook._watches_guard()
RETURNS trigger LANGUAGE C
AS 'MODULE_PATHNAME', 'webhook_watches_guard';
CREATE TRIGGER table_watches_guard BEFORE INSERT OR UPDATE ON webhook.table_watches
    FOR EACH ROW EXECUTE FUNCTION webhook._watches_guard();

-- The statement-level trigger behind webhook.watch(): selects the changed
-- rows as the table's owner and enqueues them as the extension's owner.
CREATE FUNCTION webhook._watch_trigger()
RETURNS trigger LANGUAGE C
AS 'MODULE_PATHNAME', 'webhook_watch_trigger';

-- Emit <prefix>.created / .updated / .deleted from a table's row changes.
-- Calling it again replaces the watch's options.  The condition is one
-- boolean expression over NEW and OLD, parsed by PostgreSQL's parser.
CREATE FUNCTION webhook.watch(tbl regclass,
                              event_prefix text DEFAULT NULL,
                              operations text[] DEFAULT '{insert,update,delete}',
                              columns text[] DEFAULT NULL,
                              condition text DEFAULT NULL,
                              exclude_columns text[] DEFAULT NULL,
                              ordering_key text[] DEFAULT NULL)
RETURNS void LANGUAGE C VOLATILE
AS 'MODULE_PATHNAME', 'webhook_watch';
COMMENT ON FUNCTION webhook.watch(regclass, text, text[], text[], text, text[], text[]) IS 'emit <prefix>.created/.updated/.deleted events from row changes of a table; ordering_key: the columns of a row''s ordering key (NULL: the primary key, ''{}'': none)';

-- Stop watching a table: true when it had a watch.
CREATE FUNCTION webhook.unwatch(tbl regclass)
RETURNS boolean LANGUAGE C VOLATILE STRICT
AS 'MODULE_PATHNAME', 'webhook_unwatch';

-- The condition of a table's watch as SQL, with today's names.
CREATE FUNCTION webhook._watch_condition(tbl regclass)
RETURNS text LANGUAGE C STABLE STRICT
AS 'MODULE_PATHNAME', 'webhook_watch_condition';

-- The current names of columns kept by number.
CREATE FUNCTION webhook._column_names(tbl regclass, attnums int2[])
RETURNS text[] LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
RETURN CASE WHEN attnums IS NOT NULL THEN
           coalesce((SELECT array_agg(a.attname::text ORDER BY k.i)
                       FROM unnest(attnums) WITH ORDINALITY AS k(attnum, i)
                       JOIN pg_attribute a ON a.attrelid = tbl AND a.attnum = k.attnum),
                    '{}')
       END;

-- A distributed table's watch triggers on every shard and node, dropped
-- through Citus, in the caller's transaction.  Citus drops a trigger on the
-- shards only when the distributed table has it: where the table's went by
-- CASCADE (a dropped column), a stand-in is created here first, on this
-- node only, and dropped at once.  Citus needs citus.enable_unsafe_triggers
-- for triggers on distributed tables: set for this function only.  Nothing
-- for a table Citus does not distribute.
CREATE FUNCTION webhook._drop_shard_watch_triggers(tbl regclass)
RETURNS void LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
SET citus.enable_unsafe_triggers = on
SET citus.enable_ddl_propagation = on
SET client_min_messages = warning
AS $$
DECLARE
    v_name text;
BEGIN
    IF NOT EXISTS (SELECT FROM pg_dist_partition p WHERE p.logicalrelid = tbl) THEN
        RETURN;
    END IF;
    FOREACH v_name IN ARRAY ARRAY['webhook_watch_insert', 'webhook_watch_update', 'webhook_watch_delete'] LOOP
        IF NOT EXISTS (SELECT FROM pg_trigger t WHERE t.tgrelid = tbl AND t.tgname = v_name) THEN
            PERFORM set_config('citus.enable_ddl_propagation', 'off', true);
            EXECUTE format('CREATE TRIGGER %I AFTER INSERT ON %s FOR EACH STATEMENT EXECUTE FUNCTION webhook._watch_trigger()',
                           v_name, tbl);
            PERFORM set_config('citus.enable_ddl_propagation', 'on', true);
        END IF;
        EXECUTE format('DROP TRIGGER IF EXISTS %I ON %s', v_name, tbl);
    END LOOP;
END;
$$;

-- A watch goes when one of its triggers goes: with the watched table, or by
-- CASCADE from a column, table or function it relied on.  Its other
-- triggers go with it, and a NOTICE says so.
CREATE FUNCTION webhook._forget_dropped_watches()
RETURNS event_trigger LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    w record;
    t record;
BEGIN
    FOR w IN
        DELETE FROM webhook.table_watches tw
         WHERE EXISTS (SELECT FROM unnest(tw.operations) AS op
                        WHERE NOT EXISTS (SELECT FROM pg_trigger tg
                                           WHERE tg.tgrelid = tw.table_oid
                                             AND tg.tgname = 'webhook_watch_' || op))
        RETURNING tw.table_oid::oid AS relid
    LOOP
        RAISE NOTICE 'watch of table % removed',
            coalesce((SELECT o.object_identity FROM pg_event_trigger_dropped_objects() o
                       WHERE o.classid = 'pg_class'::regclass AND o.objid = w.relid AND o.objsubid = 0
                       LIMIT 1),
                     w.relid::regclass::text)
            USING DETAIL = 'Something the watch relied on was dropped.',
                  HINT = 'Use webhook.watch() to watch the table again.';
        FOR t IN SELECT tg.tgname FROM pg_trigger tg
                  WHERE tg.tgrelid = w.relid AND tg.tgname IN ('webhook_watch_insert', 'webhook_watch_update', 'webhook_watch_delete')
        LOOP
            EXECUTE format('DROP TRIGGER %I ON %s', t.tgname, w.relid::regclass);
        END LOOP;
        -- On a Citus coordinator the shards keep copies of the triggers that
        -- went by CASCADE: drop them through Citus (issue 16), with the
        -- setting Citus asks for triggers on distributed tables.
        IF webhook._citus_role() = 'coordinator' AND EXISTS (SELECT FROM pg_class c WHERE c.oid = w.relid) THEN
            PERFORM webhook._drop_shard_watch_triggers(w.relid);
        END IF;
    END LOOP;
END;
$$;

CREATE EVENT TRIGGER webhook_forget_dropped_watches ON sql_drop
    EXECUTE FUNCTION webhook._forget_dropped_watches();

-- pg_dump keeps a watch in its triggers' arguments (the options of watch(),
-- with today's names), not in webhook.table_watches, whose rows hold column
-- numbers and object ids that a restore changes.  After a command that may
-- rename something a watch names, the arguments are brought up to date; a
-- CREATE TRIGGER of a watch trigger with its arguments (as a restore runs
-- it) makes the watch again, with watch()'s checks.
CREATE FUNCTION webhook._watch_ddl_end()
RETURNS event_trigger LANGUAGE C
AS 'MODULE_PATHNAME', 'webhook_watch_ddl_end';
CREATE EVENT TRIGGER webhook_watch_ddl_end ON ddl_command_end
    WHEN TAG IN ('CREATE TRIGGER', 'ALTER TABLE', 'ALTER SCHEMA', 'ALTER FUNCTION', 'ALTER ROUTINE',
                 'ALTER TYPE', 'ALTER DOMAIN', 'ALTER OPERATOR', 'ALTER COLLATION', 'ALTER SEQUENCE',
                 'ALTER VIEW', 'ALTER EXTENSION')
    EXECUTE FUNCTION webhook._watch_ddl_end();

-- Every watched table and its options.
CREATE VIEW webhook.watches WITH (security_invoker = true) AS
SELECT w.table_oid AS "table", w.event_prefix, w.operations,
       webhook._column_names(w.table_oid, w.columns) AS columns,
       webhook._watch_condition(w.table_oid) AS condition,
       webhook._column_names(w.table_oid, w.exclude_columns) AS exclude_columns,
       w.created_at, w.updated_at,
       webhook._column_names(w.table_oid, w.ordering_key) AS ordering_key
  FROM webhook.table_watches w;
COMMENT ON VIEW webhook.watches IS 'tables watched by webhook.watch() and their options';
