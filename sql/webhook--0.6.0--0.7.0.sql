-- webhook 0.6.0 -> 0.7.0: Citus clusters (issue 16).
--  * Endpoints and event types managed on a Citus coordinator reach every
--    worker node (the sync worker, webhook.sync_cluster()); worker nodes
--    refuse writes to them.
--  * The coordinator's views of every node (webhook.cluster_deliveries,
--    webhook.cluster_attempts) and cluster_retry/replay/recover.
--  * Watches on distributed tables: their triggers go through Citus to every
--    shard (src/watch_ddl.c); a watch dropped by CASCADE takes the shards'
--    copies too (_forget_dropped_watches).  Transform wrappers are the
--    coordinator's on worker nodes.
-- Without Citus nothing here changes what a server does.

-- This database's part in a Citus cluster: 'coordinator' (where the
-- configuration is managed), 'worker' (a node that takes it), or 'none'.
CREATE FUNCTION webhook._citus_role()
RETURNS text LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_extension WHERE extname = 'citus') THEN
        RETURN 'none';
    END IF;
    RETURN CASE WHEN (SELECT groupid FROM pg_dist_local_group) = 0 THEN 'coordinator' ELSE 'worker' END;
END;
$$;

-- What every node must hold, as the coordinator has it.  Secrets stay
-- sealed: every node needs the coordinator's master key (README).
CREATE FUNCTION webhook._cluster_config()
RETURNS jsonb LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
RETURN jsonb_build_object(
    'event_types', (SELECT coalesce(jsonb_agg(to_jsonb(t) ORDER BY t.name), '[]') FROM webhook.event_types t),
    'endpoints', (SELECT coalesce(jsonb_agg(to_jsonb(e) ORDER BY e.id), '[]') FROM webhook.endpoints e));

-- The coordinator's configuration as a digest, to tell whether a node has it.
CREATE FUNCTION webhook._cluster_digest(config jsonb)
RETURNS text LANGUAGE sql IMMUTABLE
RETURN pg_catalog.md5(config::text);

-- On a worker node: the digest of the coordinator's configuration it holds.
-- held is the digest of its own rows as the apply left them: when they
-- differ now (a write that slipped past the guard, a TRUNCATE by a
-- superuser), the next sync applies again.
CREATE TABLE webhook.cluster_config_applied (
    digest     text NOT NULL,
    held       text NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT pg_catalog.now()
);
COMMENT ON TABLE webhook.cluster_config_applied IS 'Citus worker node: the digest of the coordinator''s configuration it holds, and of its own rows then';

-- The digest of this node's own endpoints and event types, as they are.
CREATE FUNCTION webhook._cluster_held()
RETURNS text LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
RETURN pg_catalog.md5(jsonb_build_array(
    (SELECT coalesce(jsonb_agg(to_jsonb(t) ORDER BY t.name), '[]') FROM webhook.event_types t),
    (SELECT coalesce(jsonb_agg(to_jsonb(e) ORDER BY e.id), '[]') FROM webhook.endpoints e))::text);

-- On a worker node: make event types and endpoints what the coordinator
-- sent, unless they are already (the same digest, and the node's rows as
-- that apply left them).  Each endpoint is written on its own, with the
-- endpoints' triggers checking it as at any write: one this node refuses
-- (its network guard, say) is reported and the others are written; the
-- result is then 'partial: ...', and the next sync tries again.  Sealed
-- values are opened with this node's master key, so a node whose key
-- differs refuses each endpoint that has a secret.  A node's own decision
-- to turn an endpoint off, taken after the coordinator's last change to
-- it, is kept: the coordinator reads it back at its next sync.
CREATE FUNCTION webhook._apply_cluster_config(config jsonb)
RETURNS text LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_digest text := webhook._cluster_digest(config);
    v_endpoints jsonb;
    v_columns text[];
    v_upsert text;
    v_failed text[] := '{}';
    v_row jsonb;
BEGIN
    IF webhook._citus_role() <> 'worker' THEN
        RAISE EXCEPTION 'webhook configuration is taken from the coordinator only on a Citus worker node'
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  HINT = 'Manage endpoints and event types on the coordinator.';
    END IF;
    IF EXISTS (SELECT FROM webhook.cluster_config_applied a
                WHERE a.digest = v_digest AND a.held = webhook._cluster_held()) THEN
        RETURN v_digest;
    END IF;
    PERFORM set_config('webhook_sync.applying', 'on', true);

    DELETE FROM webhook.event_types t
     WHERE NOT EXISTS (SELECT FROM jsonb_array_elements(config -> 'event_types') x WHERE x ->> 'name' = t.name);
    INSERT INTO webhook.event_types AS t
    SELECT * FROM jsonb_populate_recordset(NULL::webhook.event_types, config -> 'event_types')
        ON CONFLICT (name) DO UPDATE SET description = EXCLUDED.description, created_at = EXCLUDED.created_at;

    v_endpoints := (SELECT coalesce(jsonb_agg(
                        CASE WHEN NOT e.active AND e.disabled_at IS NOT NULL AND (x ->> 'active')::boolean
                                  AND e.disabled_at > (x ->> 'updated_at')::timestamptz
                             THEN x || jsonb_build_object('active', false, 'disabled_at', e.disabled_at,
                                                          'disabled_reason', e.disabled_reason)
                             ELSE x END), '[]')
                      FROM jsonb_array_elements(config -> 'endpoints') x
                      LEFT JOIN webhook.endpoints e ON e.id = (x ->> 'id')::bigint);
    DELETE FROM webhook.endpoints e
     WHERE NOT EXISTS (SELECT FROM jsonb_array_elements(v_endpoints) x WHERE (x ->> 'id')::bigint = e.id);
    -- Names may move between endpoints (two swapped theirs): the unique
    -- name allows that only when the names that change are cleared first.
    UPDATE webhook.endpoints e SET name = NULL
      FROM jsonb_array_elements(v_endpoints) x
     WHERE e.id = (x ->> 'id')::bigint AND e.name IS DISTINCT FROM x ->> 'name';

    SELECT array_agg(format('%I', a.attname) ORDER BY a.attnum) INTO v_columns
      FROM pg_attribute a
     WHERE a.attrelid = 'webhook.endpoints'::regclass AND a.attnum > 0 AND NOT a.attisdropped
       AND a.attname NOT IN ('id', 'updated_at');
    v_upsert := format('INSERT INTO webhook.endpoints AS e OVERRIDING SYSTEM VALUE '
                       'SELECT * FROM jsonb_populate_record(NULL::webhook.endpoints, $1) '
                       'ON CONFLICT (id) DO UPDATE SET (%s) = ROW(%s)',
                       array_to_string(v_columns, ', '),
                       (SELECT string_agg('EXCLUDED.' || c, ', ') FROM unnest(v_columns) c));
    FOR v_row IN SELECT * FROM jsonb_array_elements(v_endpoints) LOOP
        BEGIN
            EXECUTE v_upsert USING v_row;
        EXCEPTION WHEN OTHERS THEN
            v_failed := v_failed || format('endpoint %s: %s', v_row ->> 'id', SQLERRM);
        END;
    END LOOP;

    DELETE FROM webhook.cluster_config_applied;
    IF cardinality(v_failed) > 0 THEN
        RETURN 'partial: ' || array_to_string(v_failed, '; ');
    END IF;
    INSERT INTO webhook.cluster_config_applied (digest, held) VALUES (v_digest, webhook._cluster_held());
    RETURN v_digest;
END;
$$;

-- On a worker node: the endpoints it turned off itself, for the coordinator.
CREATE FUNCTION webhook._cluster_decisions()
RETURNS jsonb LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
RETURN (SELECT coalesce(jsonb_agg(jsonb_build_object('id', e.id, 'disabled_at', e.disabled_at,
                                                     'disabled_reason', e.disabled_reason)), '[]')
          FROM webhook.endpoints e WHERE NOT e.active AND e.disabled_at IS NOT NULL);

-- On the coordinator: what each worker node was last sent, and how it went.
CREATE TABLE webhook.cluster_nodes (
    nodename  text NOT NULL,
    nodeport  integer NOT NULL,
    digest    text,
    synced_at timestamptz NOT NULL DEFAULT pg_catalog.now(),
    error     text,
    PRIMARY KEY (nodename, nodeport)
);
COMMENT ON TABLE webhook.cluster_nodes IS 'Citus coordinator: the configuration each worker node holds (digest), when it was last synced, and the last error';

-- On the coordinator: read back the endpoints nodes turned off, then send
-- every active worker node the configuration; one row per node.  The sync
-- worker calls it after each change and every few seconds; call it to
-- sync at once.  Each node applies in its own transaction.
CREATE FUNCTION webhook.sync_cluster()
RETURNS TABLE (nodename text, nodeport integer, ok boolean, detail text)
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    r record;
    v_config jsonb;
    v_digest text;
BEGIN
    IF webhook._citus_role() <> 'coordinator' THEN
        RAISE EXCEPTION 'webhook.sync_cluster() runs on a Citus coordinator'
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  HINT = 'Citus is not installed here, or this is a worker node.';
    END IF;
    FOR r IN EXECUTE 'SELECT result FROM pg_catalog.run_command_on_workers($c$SELECT webhook._cluster_decisions()$c$)'
                     ' WHERE success' LOOP
        UPDATE webhook.endpoints e
           SET active = false, disabled_at = d.disabled_at, disabled_reason = d.disabled_reason
          FROM jsonb_to_recordset(r.result::jsonb) AS d(id bigint, disabled_at timestamptz, disabled_reason text)
         WHERE e.id = d.id AND e.active AND e.updated_at < d.disabled_at;
    END LOOP;

    v_config := webhook._cluster_config();
    v_digest := webhook._cluster_digest(v_config);
    FOR r IN EXECUTE 'SELECT nodename::text, nodeport::integer, success, result'
                     '  FROM pg_catalog.run_command_on_workers($1)'
               USING format('SELECT webhook._apply_cluster_config(%L)', v_config) LOOP
        ok := r.success AND r.result = v_digest;
        detail := CASE WHEN ok THEN 'synced' ELSE r.result END;
        -- Said once per error, not at every try.
        IF NOT ok AND NOT EXISTS (SELECT FROM webhook.cluster_nodes n
                                   WHERE n.nodename = r.nodename AND n.nodeport = r.nodeport
                                     AND n.error IS NOT DISTINCT FROM detail) THEN
            RAISE WARNING 'webhook could not sync its configuration to node %:%: %', r.nodename, r.nodeport, detail
                USING HINT = 'The sync worker tries again every minute; webhook.cluster_nodes shows the last error.';
        END IF;
        INSERT INTO webhook.cluster_nodes AS n (nodename, nodeport, digest, synced_at, error)
        VALUES (r.nodename, r.nodeport, CASE WHEN ok THEN v_digest END, now(), CASE WHEN NOT ok THEN detail END)
            ON CONFLICT ON CONSTRAINT cluster_nodes_pkey DO UPDATE
            SET digest = EXCLUDED.digest, synced_at = EXCLUDED.synced_at, error = EXCLUDED.error;
        nodename := r.nodename; nodeport := r.nodeport;
        RETURN NEXT;
    END LOOP;
    DELETE FROM webhook.cluster_nodes n
     WHERE NOT EXISTS (SELECT FROM pg_dist_node d
                        WHERE d.nodename = n.nodename AND d.nodeport = n.nodeport AND d.groupid <> 0);
END;
$$;
COMMENT ON FUNCTION webhook.sync_cluster() IS 'Citus coordinator: send endpoints and event types to every worker node now (the sync worker does it after each change)';

-- The sync worker's turn: sync when a node lacks the configuration as it is
-- now, a minute after a try that failed, and every 10 s (to read the
-- nodes' decisions back, and to repair a node whose rows changed).  It runs when a change commits, and every 5 s.  'leave' when this is no Citus coordinator.
CREATE FUNCTION webhook._cluster_tick()
RETURNS text LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_digest text;
BEGIN
    IF webhook._citus_role() <> 'coordinator' THEN
        RETURN 'leave';
    END IF;
    v_digest := webhook._cluster_digest(webhook._cluster_config());
    IF EXISTS (SELECT FROM pg_dist_node d
                 LEFT JOIN webhook.cluster_nodes n ON n.nodename = d.nodename AND n.nodeport = d.nodeport
                WHERE d.isactive AND d.noderole = 'primary' AND d.groupid <> 0
                  AND (n.nodename IS NULL
                       OR n.error IS NULL AND (n.digest IS DISTINCT FROM v_digest
                                               OR n.synced_at < now() - interval '10 seconds')
                       OR n.error IS NOT NULL AND n.synced_at < now() - interval '60 seconds')) THEN
        PERFORM webhook.sync_cluster();
        RETURN 'synced';
    END IF;
    RETURN 'idle';
END;
$$;

-- On a worker node, endpoints and event types are the coordinator's: a
-- write there would be undone by the next sync.  Only the sync itself (a
-- superuser), and the node's own decision to turn an endpoint off, may
-- write them.
CREATE FUNCTION webhook._cluster_guard()
RETURNS trigger LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF webhook._citus_role() <> 'worker'
       OR current_setting('webhook_sync.applying', true) = 'on'
          AND (SELECT r.rolsuper FROM pg_roles r WHERE r.rolname = current_user) THEN
        RETURN CASE WHEN TG_OP = 'DELETE' THEN OLD ELSE NEW END;
    END IF;
    IF TG_TABLE_NAME = 'endpoints' AND TG_OP = 'UPDATE' AND NOT NEW.active
       AND (to_jsonb(NEW) - '{active,disabled_at,disabled_reason,updated_at}'::text[])
           = (to_jsonb(OLD) - '{active,disabled_at,disabled_reason,updated_at}'::text[]) THEN
        RETURN NEW;
    END IF;
    RAISE EXCEPTION 'webhook.% is managed on the Citus coordinator', TG_TABLE_NAME
        USING ERRCODE = 'object_not_in_prerequisite_state',
              HINT = 'Write it on the coordinator: its sync worker sends it to every node.';
END;
$$;
CREATE TRIGGER endpoints_cluster_guard
    BEFORE INSERT OR UPDATE OR DELETE ON webhook.endpoints
    FOR EACH ROW EXECUTE FUNCTION webhook._cluster_guard();
CREATE TRIGGER event_types_cluster_guard
    BEFORE INSERT OR UPDATE OR DELETE ON webhook.event_types
    FOR EACH ROW EXECUTE FUNCTION webhook._cluster_guard();
CREATE TRIGGER endpoints_cluster_guard_truncate
    BEFORE TRUNCATE ON webhook.endpoints
    FOR EACH STATEMENT EXECUTE FUNCTION webhook._cluster_guard();
CREATE TRIGGER event_types_cluster_guard_truncate
    BEFORE TRUNCATE ON webhook.event_types
    FOR EACH STATEMENT EXECUTE FUNCTION webhook._cluster_guard();

-- A change to endpoints or event types wakes the coordinator's sync worker
-- when it commits (src/wake.c); without Citus, nobody is woken.
CREATE FUNCTION webhook._cluster_changed()
RETURNS trigger LANGUAGE C
AS 'MODULE_PATHNAME', 'webhook_cluster_changed';
CREATE TRIGGER endpoints_cluster_changed
    AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON webhook.endpoints
    FOR EACH STATEMENT EXECUTE FUNCTION webhook._cluster_changed();
CREATE TRIGGER event_types_cluster_changed
    AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON webhook.event_types
    FOR EACH STATEMENT EXECUTE FUNCTION webhook._cluster_changed();

------------------------------------------------------------------------------
-- Citus clusters: the whole cluster's deliveries from the coordinator
------------------------------------------------------------------------------

-- On the coordinator: run one statement on every node (the coordinator
-- too), or on the one named 'host:port', each in a transaction of its own
-- on that node; one row per node with its result.  A node that does not
-- answer, or whose statement fails, is reported with ok false.  Without
-- Citus the one server is the cluster, named 'local'.
CREATE FUNCTION webhook._on_nodes(command text, only_node text DEFAULT NULL)
RETURNS TABLE (node text, ok boolean, result text)
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_role text := webhook._citus_role();
BEGIN
    IF v_role = 'worker' THEN
        RAISE EXCEPTION 'webhook''s cluster functions run on the Citus coordinator'
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  HINT = 'This is a worker node: use its own views and functions, or the coordinator''s.';
    END IF;
    IF v_role = 'none' THEN
        IF only_node IS NOT NULL AND only_node <> 'local' THEN
            RAISE EXCEPTION 'no Citus node "%"', only_node
                USING ERRCODE = 'undefined_object', HINT = 'Without Citus the one node is ''local''.';
        END IF;
        node := 'local';
        BEGIN
            EXECUTE command INTO result;
            ok := true;
        EXCEPTION WHEN OTHERS THEN
            ok := false;
            result := 'ERROR:  ' || SQLERRM;
        END;
        RETURN NEXT;
        RETURN;
    END IF;
    RETURN QUERY EXECUTE
        'SELECT coalesce(n.nodename || '':'' || n.nodeport, ''coordinator''), c.success, c.result
           FROM pg_catalog.run_command_on_all_nodes($1) c
           LEFT JOIN pg_catalog.pg_dist_node n ON n.nodeid = c.nodeid
          WHERE $2 IS NULL OR $2 = coalesce(n.nodename || '':'' || n.nodeport, ''coordinator'')
          ORDER BY 1'
        USING command, only_node;
    IF only_node IS NOT NULL AND NOT FOUND THEN
        RAISE EXCEPTION 'no Citus node "%"', only_node
            USING ERRCODE = 'undefined_object',
                  HINT = 'Name a node as host:port, as the node column of webhook.cluster_deliveries shows it.';
    END IF;
END;
$$;

-- The rows of a query on every node, as jsonb, with the node's name.  A
-- node that does not answer is left out with a warning.
CREATE FUNCTION webhook._cluster_rows(query text)
RETURNS TABLE (node text, row_data jsonb)
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    r record;
BEGIN
    FOR r IN SELECT * FROM webhook._on_nodes(format('SELECT coalesce(jsonb_agg(q), ''[]'') FROM (%s) q', query)) LOOP
        IF NOT r.ok THEN
            RAISE WARNING 'node % did not answer: %', r.node, r.result
                USING HINT = 'Its rows are missing from this result.';
            CONTINUE;
        END IF;
        RETURN QUERY SELECT r.node, x FROM jsonb_array_elements(r.result::jsonb) x;
    END LOOP;
END;
$$;

-- The deliveries of every node, newest first (the 10,000 newest of each).
CREATE VIEW webhook.cluster_deliveries AS
SELECT c.node, d.*
  FROM webhook._cluster_rows('SELECT * FROM webhook.deliveries ORDER BY created_at DESC LIMIT 10000') c,
       jsonb_populate_record(NULL::webhook.deliveries, c.row_data) d
 ORDER BY d.created_at DESC;
COMMENT ON VIEW webhook.cluster_deliveries IS 'Citus coordinator: webhook.deliveries of every node (the 10,000 newest of each), with the node (''local'' without Citus)';

-- Every node's attempts, newest first (the 10,000 newest of each).
CREATE VIEW webhook.cluster_attempts AS
SELECT c.node, a.*
  FROM webhook._cluster_rows('SELECT * FROM webhook.attempts LIMIT 10000') c,
       jsonb_populate_record(NULL::webhook.attempts, c.row_data) a
 ORDER BY a.attempted_at DESC;
COMMENT ON VIEW webhook.cluster_attempts IS 'Citus coordinator: webhook.attempts of every node (the 10,000 newest of each), with the node (''local'' without Citus)';

-- retry(), replay() and recover() for the whole cluster, from the
-- coordinator.  Each runs on the nodes at once, in the node's own
-- transaction: a rollback on the coordinator does not undo it.
CREATE FUNCTION webhook.cluster_retry(node text, delivery_id bigint)
RETURNS void LANGUAGE plpgsql VOLATILE STRICT
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    r record;
BEGIN
    SELECT * INTO r FROM webhook._on_nodes(format('SELECT webhook.retry(%s)', delivery_id), node);
    IF NOT r.ok THEN
        RAISE EXCEPTION 'retry on node % failed: %', node, r.result
            USING ERRCODE = 'object_not_in_prerequisite_state';
    END IF;
END;
$$;
COMMENT ON FUNCTION webhook.cluster_retry(text, bigint) IS 'Citus coordinator: webhook.retry() of a delivery on the node named host:port';

-- An event lives on one node: replay it there.  Returns the new deliveries.
CREATE FUNCTION webhook.cluster_replay(event_id uuid, endpoint_id bigint DEFAULT NULL)
RETURNS bigint LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    r record;
    v_total bigint;
    v_found boolean := false;
BEGIN
    IF event_id IS NULL THEN
        RAISE EXCEPTION 'event_id must not be null' USING ERRCODE = 'null_value_not_allowed';
    END IF;
    FOR r IN SELECT * FROM webhook._on_nodes(format(
                 'SELECT CASE WHEN EXISTS (SELECT FROM webhook.events WHERE id = %L) THEN webhook.replay(%L, %s)::text ELSE ''absent'' END',
                 event_id, event_id, coalesce(endpoint_id::text, 'NULL'))) LOOP
        IF NOT r.ok THEN
            RAISE EXCEPTION 'replay on node % failed: %', r.node, r.result
                USING ERRCODE = 'object_not_in_prerequisite_state';
        END IF;
        IF r.result <> 'absent' THEN
            v_total := coalesce(v_total, 0) + r.result::bigint;
            v_found := true;
        END IF;
    END LOOP;
    IF NOT v_found THEN
        RAISE EXCEPTION 'event % is on no node', event_id
            USING ERRCODE = 'no_data_found', HINT = 'Events older than webhook.retention_succeeded may have been purged.';
    END IF;
    RETURN v_total;
END;
$$;
COMMENT ON FUNCTION webhook.cluster_replay(uuid, bigint) IS 'Citus coordinator: webhook.replay() of an event on whichever node holds it';

-- Re-queue an endpoint's failed deliveries since a time on every node.
CREATE FUNCTION webhook.cluster_recover(endpoint_id bigint, since timestamptz)
RETURNS bigint LANGUAGE plpgsql VOLATILE STRICT
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    r record;
    v_total bigint := 0;
BEGIN
    FOR r IN SELECT * FROM webhook._on_nodes(format('SELECT webhook.recover(%s, %L)', endpoint_id, since)) LOOP
        IF NOT r.ok THEN
            RAISE WARNING 'recover on node % failed: %', r.node, r.result;
            CONTINUE;
        END IF;
        v_total := v_total + r.result::bigint;
    END LOOP;
    RETURN v_total;
END;
$$;
COMMENT ON FUNCTION webhook.cluster_recover(bigint, timestamptz) IS 'Citus coordinator: webhook.recover() on every node; returns how many deliveries were re-queued';

------------------------------------------------------------------------------
-- Changed functions
------------------------------------------------------------------------------

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
CREATE OR REPLACE FUNCTION webhook._forget_dropped_watches()
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

-- Keep an endpoint's wrapper in step with its transform and transform_role.
-- Runs as the extension's owner: only it may create functions in the schema
-- and give them to another role; the row was checked by endpoints_before_write.
CREATE OR REPLACE FUNCTION webhook._endpoints_sync_transform()
RETURNS trigger LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
SET client_min_messages = warning
AS $$
DECLARE
    wrapper text;
    fn record;
BEGIN
    -- On a Citus worker node the wrapper is the coordinator's, which Citus
    -- creates on every node (and refuses DDL here) (issue 16).
    IF webhook._citus_role() = 'worker' THEN
        RETURN NULL;
    END IF;
    IF TG_OP = 'UPDATE' AND NEW.transform IS NOT DISTINCT FROM OLD.transform
       AND NEW.transform_role IS NOT DISTINCT FROM OLD.transform_role THEN
        -- A new id renames the wrapper; it keeps its owner (REASSIGN OWNED may have moved it).
        IF NEW.transform IS NOT NULL AND NEW.id <> OLD.id
           AND to_regprocedure(format('webhook.%I(text, timestamptz, jsonb)', '_transform_' || OLD.id)) IS NOT NULL THEN
            EXECUTE format('ALTER FUNCTION webhook.%I(text, timestamptz, jsonb) RENAME TO %I',
                           '_transform_' || OLD.id, '_transform_' || NEW.id);
        END IF;
        RETURN NULL;
    END IF;
    IF TG_OP IN ('UPDATE', 'DELETE') AND OLD.transform IS NOT NULL
       AND (TG_OP = 'DELETE' OR NEW.transform IS NULL OR NEW.id <> OLD.id) THEN
        EXECUTE format('DROP FUNCTION IF EXISTS webhook.%I(text, timestamptz, jsonb)', '_transform_' || OLD.id);
    END IF;
    IF TG_OP IN ('INSERT', 'UPDATE') AND NEW.transform IS NOT NULL THEN
        wrapper := format('webhook.%I(text, timestamptz, jsonb)', '_transform_' || NEW.id);
        SELECT n.nspname, p.proname INTO STRICT fn
          FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
         WHERE p.oid = NEW.transform;
        EXECUTE format('CREATE OR REPLACE FUNCTION %s RETURNS text LANGUAGE sql SECURITY DEFINER '
                       'SET search_path = pg_catalog, pg_temp '
                       'BEGIN ATOMIC SELECT %I.%I($1, $2, $3)::pg_catalog.text; END',
                       wrapper, fn.nspname, fn.proname);
        EXECUTE format('ALTER FUNCTION %s OWNER TO %s', wrapper, NEW.transform_role::text);  -- regrole output is quoted
        EXECUTE format('REVOKE ALL ON FUNCTION %s FROM PUBLIC', wrapper);
        PERFORM webhook._attach_transform_wrapper(wrapper::regprocedure);
    END IF;
    RETURN NULL;
END;
$$;

-- TRUNCATE fires no row triggers: drop every wrapper.
CREATE OR REPLACE FUNCTION webhook._endpoints_truncated()
RETURNS trigger LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    wrapper regprocedure;
BEGIN
    IF webhook._citus_role() = 'worker' THEN
        RETURN NULL;
    END IF;
    FOR wrapper IN SELECT p.oid FROM pg_proc p
                    WHERE p.pronamespace = 'webhook'::regnamespace AND p.proname ~ '^_transform_[0-9]+$' LOOP
        EXECUTE format('DROP FUNCTION %s', wrapper);
    END LOOP;
    RETURN NULL;
END;
$$;

-- Nothing is public (as in the install script's privileges section), but
-- for the role check the endpoints' guard runs as the writer.
REVOKE ALL ON webhook.cluster_nodes, webhook.cluster_config_applied,
    webhook.cluster_deliveries, webhook.cluster_attempts FROM PUBLIC;
REVOKE ALL ON FUNCTION webhook._cluster_config(), webhook._cluster_digest(jsonb), webhook._cluster_held(),
    webhook._apply_cluster_config(jsonb), webhook._cluster_decisions(), webhook.sync_cluster(),
    webhook._cluster_tick(), webhook._cluster_guard(), webhook._on_nodes(text, text),
    webhook._cluster_rows(text), webhook._cluster_changed(), webhook.cluster_retry(text, bigint),
    webhook.cluster_replay(uuid, bigint), webhook.cluster_recover(bigint, timestamptz),
    webhook._drop_shard_watch_triggers(regclass) FROM PUBLIC;
REVOKE ALL ON FUNCTION webhook._citus_role() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION webhook._citus_role() TO PUBLIC;
