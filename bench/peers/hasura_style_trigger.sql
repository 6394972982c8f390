-- NOT OUR CODE: a peer's shape, kept for the benchmark's enqueue-cost phase only.
-- Origin: ../shared/peers/hasura_style_trigger.sql (see its README): the shape
-- of a Hasura event trigger -- a per-row PL/pgSQL trigger that builds
-- {op, data: {old, new}, session_variables, trace_context} with row_to_json and
-- inserts one row into an event_log table with a uuid key and Hasura's partial
-- fetch index.  Copied unchanged below this header.  bench/run.sh runs it after
-- creating the table public.hasura_watched; it creates the schema hdb.

-- The shape of a Hasura event trigger on public.hasura_watched, for benchmarks only.
CREATE EXTENSION IF NOT EXISTS pgcrypto;
CREATE SCHEMA hdb;
CREATE TABLE hdb.event_log (
    id            text DEFAULT gen_random_uuid() PRIMARY KEY,
    schema_name   text NOT NULL,
    table_name    text NOT NULL,
    trigger_name  text NOT NULL,
    payload       jsonb NOT NULL,
    delivered     boolean NOT NULL DEFAULT false,
    error         boolean NOT NULL DEFAULT false,
    tries         integer NOT NULL DEFAULT 0,
    created_at    timestamp DEFAULT now(),
    locked        timestamptz,
    next_retry_at timestamp,
    archived      boolean NOT NULL DEFAULT false
);
CREATE INDEX event_log_fetch_events ON hdb.event_log (locked NULLS FIRST, next_retry_at NULLS FIRST, created_at)
    WHERE delivered = false AND error = false AND archived = false;
CREATE INDEX event_log_trigger_name ON hdb.event_log (trigger_name);

CREATE FUNCTION hdb.insert_event_log(schema_name text, table_name text, trigger_name text, op text, row_data json)
RETURNS text LANGUAGE plpgsql AS $$
DECLARE
    id text;
    payload json;
    session_variables json;
    trace_context json;
BEGIN
    id := gen_random_uuid();
    session_variables := current_setting('hasura.user', 't');
    trace_context := current_setting('hasura.tracecontext', 't');
    payload := json_build_object('op', op, 'data', row_data,
                                 'session_variables', session_variables, 'trace_context', trace_context);
    INSERT INTO hdb.event_log (id, schema_name, table_name, trigger_name, payload)
    VALUES (id, schema_name, table_name, trigger_name, payload);
    RETURN id;
END;
$$;

CREATE FUNCTION hdb.notify_hasura_watched() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    _data json;
BEGIN
    IF TG_OP = 'UPDATE' THEN
        _data := json_build_object('old', row_to_json(OLD), 'new', row_to_json(NEW));
    ELSIF TG_OP = 'DELETE' THEN
        _data := json_build_object('old', row_to_json(OLD), 'new', NULL);
    ELSE
        _data := json_build_object('old', NULL, 'new', row_to_json(NEW));
    END IF;
    PERFORM hdb.insert_event_log(CAST(TG_TABLE_SCHEMA AS text), CAST(TG_TABLE_NAME AS text),
                                 CAST('hasura_watched' AS text), TG_OP, _data);
    RETURN NULL;
END;
$$;

CREATE TRIGGER notify_hasura AFTER INSERT OR UPDATE OR DELETE ON public.hasura_watched
    FOR EACH ROW EXECUTE FUNCTION hdb.notify_hasura_watched();
