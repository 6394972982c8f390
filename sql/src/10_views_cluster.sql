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
