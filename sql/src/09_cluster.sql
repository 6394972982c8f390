------------------------------------------------------------------------------
-- Citus clusters (issue 16): one configuration on every node
------------------------------------------------------------------------------
-- Endpoints and event types are managed on the coordinator.  A sync worker
-- there (src/cluster_sync.c) pushes them to every worker node when a change
-- commits, and every few seconds, with webhook.sync_cluster(): each node then
-- holds the same rows (same ids, same sealed secrets) and delivers its own
-- queue with them.  Decisions a node takes itself (a 410, the auto-disable)
-- are read back first and written to the coordinator's rows, and so reach
-- every node.  Watches travel with their triggers, which Citus copies to
-- every shard (src/watch_ddl.c).  Without Citus, none of this runs.

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
