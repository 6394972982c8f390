-- Not part of the extension: the "floor" of the benchmark's enqueue-cost phase
-- (see bench/README.md and ../shared/peers/README.md): the cheapest a table trigger
-- can be that still records every change.  One statement-level AFTER INSERT
-- trigger with a transition table inserts one row per changed row into
-- (id bigserial, type text, payload jsonb), with a Supabase-shaped payload.
-- bench/run.sh runs it after creating the table public.bench_floor.
CREATE TABLE public.bench_floor_events (
    id      bigserial PRIMARY KEY,
    type    text NOT NULL,
    payload jsonb NOT NULL
);

CREATE FUNCTION public.bench_floor_capture() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO public.bench_floor_events (type, payload)
    SELECT TG_TABLE_NAME || '.insert',
           jsonb_build_object('operation', 'INSERT', 'schema', TG_TABLE_SCHEMA, 'table', TG_TABLE_NAME,
                              'record', to_jsonb(n), 'old_record', NULL)
      FROM new_rows AS n;
    RETURN NULL;
END;
$$;

CREATE TRIGGER bench_floor_capture AFTER INSERT ON public.bench_floor
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION public.bench_floor_capture();
