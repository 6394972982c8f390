-- webhook 0.1.0 -> 0.2.0.  Brings either install of 0.1.0 to exactly what
-- CREATE EXTENSION webhook makes in 0.2.0, keeping every row: the release
-- (git 2b8c360) and the later in-place revision of its script (abf15af),
-- which already matches 0.2.0.  Each step checks the catalog, so it does
-- only what a database still lacks.  test/t/025_upgrade.pl updates both and
-- compares the result with a fresh install.
--
-- Unchanged: where secrets live and how they are sealed (src/sealing.c), the
-- events' bodies, the queue's rows.  Run ALTER EXTENSION webhook UPDATE after
-- installing the new package and restarting: until then src/compat.c lets
-- the new library serve the old schema.

\echo Use "ALTER EXTENSION webhook UPDATE TO '0.2.0'" to load this file. \quit

-- 0.1.0 removed a table's watch row when the table was dropped; 0.2.0 does
-- it when a watch trigger goes (webhook._forget_dropped_watches below).
DROP EVENT TRIGGER IF EXISTS webhook_forget_dropped_tables;
DROP FUNCTION IF EXISTS webhook._forget_dropped_tables();

------------------------------------------------------------------------------
-- Functions new in 0.2.0 or changed since the release, as 0.2.0 defines them
------------------------------------------------------------------------------

-- The error classes with their meaning, from the table the worker itself
-- uses (src/schedule.c): the one list there is.
CREATE OR REPLACE FUNCTION webhook.error_classes(OUT error_class text, OUT meaning text)
RETURNS SETOF record LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE ROWS 16
AS 'MODULE_PATHNAME', 'webhook_error_classes';

-- What errors and events show of a URL: scheme://host[:port], never user
-- info, path, query or fragment (src/urlcheck.c holds the rule).
CREATE OR REPLACE FUNCTION webhook._url_origin(url text)
RETURNS text LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE
AS 'MODULE_PATHNAME', 'webhook_url_origin_sql';

-- An event type name: dot-separated segments of [A-Za-z0-9_-], at most
-- 256 bytes (src/validate.c holds the rule).
CREATE OR REPLACE FUNCTION webhook._is_event_type_name(name text)
RETURNS boolean LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE
AS 'MODULE_PATHNAME', 'webhook_is_event_type_name';

-- A subscription pattern: an exact name, "prefix.*" or "*".
CREATE OR REPLACE FUNCTION webhook._is_event_type_pattern(pattern text)
RETURNS boolean LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE
AS 'MODULE_PATHNAME', 'webhook_is_event_type_pattern';

-- Raise the error for an event type (or, with pattern, a subscription
-- pattern) that breaks the rule above: too long, or not a name.
CREATE OR REPLACE FUNCTION webhook._require_event_type(name text, pattern boolean)
RETURNS void LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE
AS 'MODULE_PATHNAME', 'webhook_require_event_type';

-- Refuse the extension's own event types ("webhook" and "webhook.*", in
-- any case) to callers: receivers can trust that such an event is genuine.
CREATE OR REPLACE FUNCTION webhook._require_unreserved_event_type(name text)
RETURNS void LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE
AS 'MODULE_PATHNAME', 'webhook_require_unreserved_event_type';

-- A bad name gets the same error as in webhook.send(), not the CHECK's.
CREATE OR REPLACE FUNCTION webhook._event_types_before_write()
RETURNS trigger LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    PERFORM webhook._require_event_type(NEW.name, false);
    RETURN NEW;
END;
$$;

-- How long a delivery worker's claim lasts: the endpoint's timeout plus a
-- margin.  Claims and the worker's next-due query share this one rule; in
-- floating point, so that no timeout_ms a row may hold can overflow it.
CREATE OR REPLACE FUNCTION webhook._claim_lease(timeout_ms integer)
RETURNS interval LANGUAGE sql IMMUTABLE PARALLEL SAFE
RETURN pg_catalog.make_interval(secs => (pg_catalog.float8(timeout_ms) + 30000) / 1000);

-- Check a row of webhook.endpoints before it is written, fill in a secret
-- and keep updated_at current, so that nothing half-valid reaches the worker.
CREATE OR REPLACE FUNCTION webhook._endpoints_before_write()
RETURNS trigger LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_check text[];
BEGIN
    -- Before the NOT NULL constraint, whose error would print the row and its secret.
    IF NEW.url IS NULL THEN
        RAISE EXCEPTION 'url must not be null'
            USING ERRCODE = 'not_null_violation',
                  HINT = 'Give the receiver''s absolute http:// or https:// URL, such as https://example.com/webhooks.';
    END IF;
    -- The columns to check: those the write changes, or all of them when it
    -- inserts or re-activates the endpoint (webhook._endpoints_seal follows
    -- the same rule).  A row that an older rule, a newer policy or a restore
    -- let in stays writable for anything else: a 410 or the auto-disable must
    -- turn it off whatever its other columns hold.
    v_check := ARRAY(SELECT c.key FROM jsonb_each(to_jsonb(NEW)) AS c
                      WHERE c.value IS DISTINCT FROM
                            CASE WHEN TG_OP = 'UPDATE' AND (OLD.active OR NOT NEW.active)
                                 THEN to_jsonb(OLD) -> c.key END);
    -- The URL is checked too at any write that leaves the endpoint on, and
    -- never when the write turns it off.
    IF 'url' = ANY (v_check) OR NEW.active THEN
        PERFORM webhook._check_endpoint_url(NEW.url);
    END IF;
    IF 'event_types' = ANY (v_check) THEN
        PERFORM webhook._check_endpoint_event_types(NEW.event_types);
    END IF;
    IF 'signing' = ANY (v_check) THEN
        PERFORM webhook._check_endpoint_signing(NEW.signing);
    END IF;
    -- Header names and values, the signature header and secrets are checked
    -- in clear by webhook._endpoints_seal(), the trigger that fires next.
    PERFORM webhook._check_endpoint_limits(v_check, NEW.timeout_ms, NEW.max_in_flight, NEW.rate_limit_per_s);
    NEW.transform_role := webhook._endpoint_transform_role(TG_OP = 'INSERT', NEW.transform, NEW.transform_role,
                                                           OLD.id, OLD.transform, OLD.transform_role);
    IF 'retry_schedule_s' = ANY (v_check) THEN
        PERFORM webhook._check_endpoint_retry_schedule(NEW.retry_schedule_s);
    END IF;
    PERFORM webhook._check_endpoint_auth(v_check, NEW.auth_username, NEW.auth_password);

    -- A secret is generated when missing, and again when the scheme changes
    -- to or from ed25519 without a new secret (the key kinds differ).
    IF NEW.secret IS NULL AND NEW.signing <> 'none'
       OR TG_OP = 'UPDATE' AND NEW.secret IS NOT DISTINCT FROM OLD.secret
          AND (NEW.signing = 'ed25519') <> (OLD.signing = 'ed25519') AND NEW.signing <> 'none' THEN
        NEW.secret := webhook.generate_secret(NEW.signing);
    END IF;
    IF TG_OP = 'UPDATE' THEN
        NEW.updated_at := now();
        -- Re-activating an endpoint clears why it was disabled.
        IF NEW.active AND NOT OLD.active THEN
            NEW.disabled_at := NULL;
            NEW.disabled_reason := NULL;
        END IF;
    END IF;

    PERFORM webhook._check_endpoint_not_null(to_jsonb(NEW), TG_RELID);
    RETURN NEW;
END;
$$;

-- Then check, in clear, what the row sends (secrets, header names and
-- values, the signature header) and seal it under webhook.master_key_file.
-- Triggers fire in name order: this one after endpoints_before_write.
CREATE OR REPLACE FUNCTION webhook._endpoints_seal()
RETURNS trigger LANGUAGE C
AS 'MODULE_PATHNAME', 'webhook_endpoints_seal';

-- A transform runs through a wrapper function per endpoint,
-- webhook._transform_<id>, whose body calls the endpoint's transform and
-- which is owned by transform_role.  PostgreSQL then records what the
-- endpoint relies on: DROP FUNCTION of the transform and DROP ROLE of its
-- role are refused without CASCADE, and RENAME or SET SCHEMA keep working.
-- The wrapper also depends on the extension, so that DROP EXTENSION takes it.
CREATE OR REPLACE FUNCTION webhook._attach_transform_wrapper(wrapper regprocedure)
RETURNS void LANGUAGE c STRICT
AS 'MODULE_PATHNAME', 'webhook_attach_transform_wrapper';

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
    FOR wrapper IN SELECT p.oid FROM pg_proc p
                    WHERE p.pronamespace = 'webhook'::regnamespace AND p.proname ~ '^_transform_[0-9]+$' LOOP
        EXECUTE format('DROP FUNCTION %s', wrapper);
    END LOOP;
    RETURN NULL;
END;
$$;

-- A wrapper dropped by CASCADE (of its function, its role's DROP OWNED, or
-- its schema) pauses its endpoint and clears the transform: sending the
-- untransformed payload could expose what the transform left out, or break
-- a receiver that expects its shape.  Pending deliveries wait for an
-- operator to set another transform (or none) and reactivate the endpoint.
-- The endpoints triggers are bypassed for this update: a DROP must not fail
-- because some other column of the row no longer passes today's checks.
CREATE OR REPLACE FUNCTION webhook._forget_dropped_transforms()
RETURNS event_trigger LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    ids bigint[];
    replication_role text := current_setting('session_replication_role');
    ep record;
BEGIN
    SELECT array_agg(e.id) INTO ids
      FROM webhook.endpoints e, pg_event_trigger_dropped_objects() AS o
     WHERE o.classid = 'pg_proc'::regclass AND o.address_names[1] = 'webhook'
       AND o.address_names[2] = '_transform_' || e.id AND e.transform IS NOT NULL;
    IF ids IS NULL THEN
        RETURN;
    END IF;
    PERFORM set_config('session_replication_role', 'replica', true);
    FOR ep IN
        UPDATE webhook.endpoints e
           SET transform = NULL, transform_role = NULL, active = false, updated_at = now(),
               disabled_at = now(), disabled_reason = 'its transform was dropped'
         WHERE e.id = ANY (ids)
        RETURNING e.id, e.name
    LOOP
        RAISE NOTICE 'endpoint "%" is paused: its transform was dropped', coalesce(ep.name, ep.id::text)
            USING DETAIL = 'Its pending deliveries wait; untransformed payloads are not sent.',
                  HINT = 'Set another transform, or none, then set active = true.';
    END LOOP;
    PERFORM set_config('session_replication_role', replication_role, true);
END;
$$;

-- Refuse an event type that a caller may not send: not a valid name, one of
-- the extension's own ("webhook.*"), or (when strict) not in the catalogue.
-- The extension's own events skip these checks (see webhook._enqueue), so
-- strict mode never refuses them, whatever the catalogue holds.
CREATE OR REPLACE FUNCTION webhook._check_event_type(event_type text)
RETURNS void LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF event_type IS NULL THEN
        RAISE EXCEPTION 'event type must not be null'
            USING ERRCODE = 'null_value_not_allowed', HINT = 'For example: order.created.';
    END IF;
    PERFORM webhook._require_event_type(event_type, false);
    PERFORM webhook._require_unreserved_event_type(event_type);
    IF current_setting('webhook.strict_event_types', true) = 'on'
       AND NOT EXISTS (SELECT 1 FROM webhook.event_types t WHERE t.name = event_type) THEN
        RAISE EXCEPTION 'event type "%" is not in webhook.event_types', event_type
            USING ERRCODE = 'undefined_object',
                  HINT = 'Add it with INSERT INTO webhook.event_types (name, description), or turn webhook.strict_event_types off.';
    END IF;
END;
$$;

-- Enqueue one checked event inside the caller's transaction: the events
-- row (once per idempotency key) and a delivery per subscribed endpoint.
-- send() checks what callers give; the extension's own events come here directly.
CREATE OR REPLACE FUNCTION webhook._enqueue(event_type text, payload jsonb, idempotency_key text)
RETURNS uuid LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_column
DECLARE
    v_event_id uuid;
    v_now timestamptz := now();
    v_deliveries bigint;
BEGIN
    IF _enqueue.idempotency_key IS NOT NULL THEN
        SELECT e.id INTO v_event_id FROM webhook.events e WHERE e.idempotency_key = _enqueue.idempotency_key;
        IF FOUND THEN
            RETURN v_event_id;
        END IF;
    END IF;

    INSERT INTO webhook.events AS e (event_type, payload, body, idempotency_key, created_at)
    VALUES (_enqueue.event_type, _enqueue.payload, webhook._event_body(_enqueue.event_type, _enqueue.payload, v_now),
            _enqueue.idempotency_key, v_now)
    ON CONFLICT (idempotency_key) WHERE idempotency_key IS NOT NULL DO NOTHING
    RETURNING e.id INTO v_event_id;

    IF v_event_id IS NULL THEN
        -- A concurrent transaction committed the same idempotency key first.
        SELECT e.id INTO v_event_id FROM webhook.events e WHERE e.idempotency_key = _enqueue.idempotency_key;
        RETURN v_event_id;
    END IF;

    INSERT INTO webhook.deliveries (event_id, endpoint_id)
    SELECT v_event_id, ep.id
      FROM webhook.endpoints ep
     WHERE ep.active AND webhook._subscribed(ep.event_types, _enqueue.event_type);
    GET DIAGNOSTICS v_deliveries = ROW_COUNT;

    IF v_deliveries > 0 THEN
        PERFORM webhook._wake_worker_at_commit();
    END IF;
    RETURN v_event_id;
END;
$$;

-- Enqueue one event inside the caller's transaction: it exists, and is
-- delivered, only if that transaction commits.
CREATE OR REPLACE FUNCTION webhook.send(event_type text, payload jsonb, idempotency_key text DEFAULT NULL)
RETURNS uuid LANGUAGE plpgsql VOLATILE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    PERFORM webhook._check_event_type(send.event_type);
    IF send.payload IS NULL THEN
        PERFORM webhook._raise_null_payload();
    END IF;
    PERFORM webhook._check_payload_size(pg_catalog.octet_length(send.payload::text), false);
    IF octet_length(send.idempotency_key) > 256 THEN
        RAISE EXCEPTION 'idempotency key is too long'
            USING ERRCODE = 'program_limit_exceeded',
                  DETAIL = format('It has %s bytes.', octet_length(send.idempotency_key)),
                  HINT = 'An idempotency key has at most 256 bytes; send a hash of a longer key.';
    END IF;
    RETURN webhook._enqueue(send.event_type, send.payload, send.idempotency_key);
END;
$$;
COMMENT ON FUNCTION webhook.send(text, jsonb, text) IS 'enqueue an event in the current transaction; returns its id (the webhook-id)';

-- The error of a missing payload, from send() and for each row of a watch.
CREATE OR REPLACE FUNCTION webhook._raise_null_payload()
RETURNS text LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    RAISE EXCEPTION 'payload must not be null'
        USING ERRCODE = 'null_value_not_allowed', HINT = 'Send ''{}'' for an event without data.';
END;
$$;

-- Only webhook.watch() writes watch rows, even for the extension's owner
-- (and a data-only restore): see src/watch.c.
CREATE OR REPLACE FUNCTION webhook._watches_guard()
RETURNS trigger LANGUAGE C
AS 'MODULE_PATHNAME', 'webhook_watches_guard';

-- Enqueue one event per payload, set-based: one statement for the events and
-- one for their deliveries, whatever the number of rows.
CREATE OR REPLACE FUNCTION webhook._enqueue_many(event_type text, payloads jsonb[])
RETURNS bigint LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
SET plan_cache_mode = force_generic_plan
AS $$
#variable_conflict use_column
DECLARE
    v_now timestamptz := now();
    v_deliveries bigint;
    -- Every body of the statement starts alike: build that once.
    v_head text := pg_catalog.left(webhook._event_body(event_type, 'null', now()), -5);
BEGIN
    -- The catalogue may have changed since watch() checked the type.
    PERFORM webhook._check_event_type(_enqueue_many.event_type);
    -- The endpoints are matched once for the whole statement.
    WITH targets AS MATERIALIZED (
        SELECT ep.id FROM webhook.endpoints ep
         WHERE ep.active AND webhook._subscribed(ep.event_types, _enqueue_many.event_type)
    ), ev AS (
        INSERT INTO webhook.events (event_type, payload, body, created_at)
        SELECT _enqueue_many.event_type, p.payload,
               CASE WHEN p.payload IS NULL THEN webhook._raise_null_payload()
                    WHEN webhook._check_payload_size(octet_length(b.body) - octet_length(v_head) - 1, true)
                    THEN b.body END,
               v_now
          FROM unnest(_enqueue_many.payloads) AS p(payload)
         CROSS JOIN LATERAL (SELECT v_head || p.payload::text || '}' AS body) b
        RETURNING id
    )
    INSERT INTO webhook.deliveries (event_id, endpoint_id)
    SELECT ev.id, t.id FROM ev CROSS JOIN targets t;
    GET DIAGNOSTICS v_deliveries = ROW_COUNT;
    IF v_deliveries > 0 THEN
        PERFORM webhook._wake_worker_at_commit();
    END IF;
    RETURN v_deliveries;
END;
$$;

-- Emit <prefix>.created / .updated / .deleted from a table's row changes.
-- Calling it again replaces the watch's options.  The condition is one
-- boolean expression over NEW and OLD, parsed by PostgreSQL's parser.
CREATE OR REPLACE FUNCTION webhook.watch(tbl regclass,
                              event_prefix text DEFAULT NULL,
                              operations text[] DEFAULT '{insert,update,delete}',
                              columns text[] DEFAULT NULL,
                              condition text DEFAULT NULL,
                              exclude_columns text[] DEFAULT NULL)
RETURNS void LANGUAGE C VOLATILE
AS 'MODULE_PATHNAME', 'webhook_watch';
COMMENT ON FUNCTION webhook.watch(regclass, text, text[], text[], text, text[]) IS 'emit <prefix>.created/.updated/.deleted events from row changes of a table';

-- Stop watching a table: true when it had a watch.
CREATE OR REPLACE FUNCTION webhook.unwatch(tbl regclass)
RETURNS boolean LANGUAGE C VOLATILE STRICT
AS 'MODULE_PATHNAME', 'webhook_unwatch';

-- The condition of a table's watch as SQL, with today's names.
CREATE OR REPLACE FUNCTION webhook._watch_condition(tbl regclass)
RETURNS text LANGUAGE C STABLE STRICT
AS 'MODULE_PATHNAME', 'webhook_watch_condition';

-- The current names of columns kept by number.
CREATE OR REPLACE FUNCTION webhook._column_names(tbl regclass, attnums int2[])
RETURNS text[] LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
RETURN CASE WHEN attnums IS NOT NULL THEN
           coalesce((SELECT array_agg(a.attname::text ORDER BY k.i)
                       FROM unnest(attnums) WITH ORDINALITY AS k(attnum, i)
                       JOIN pg_attribute a ON a.attrelid = tbl AND a.attnum = k.attnum),
                    '{}')
       END;

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
    END LOOP;
END;
$$;

-- pg_dump keeps a watch in its triggers' arguments (the options of watch(),
-- with today's names), not in webhook.table_watches, whose rows hold column
-- numbers and object ids that a restore changes.  After a command that may
-- rename something a watch names, the arguments are brought up to date; a
-- CREATE TRIGGER of a watch trigger with its arguments (as a restore runs
-- it) makes the watch again, with watch()'s checks.
CREATE OR REPLACE FUNCTION webhook._watch_ddl_end()
RETURNS event_trigger LANGUAGE C
AS 'MODULE_PATHNAME', 'webhook_watch_ddl_end';

-- Deactivate endpoints whose deliveries have all failed for longer than a
-- period, and announce each with a webhook.endpoint.disabled event.  Each in
-- its own subtransaction: one that cannot be updated (a lock, a row a newer
-- check refuses) stays active with a warning, and the others are disabled.
CREATE OR REPLACE FUNCTION webhook._disable_failing_endpoints(failing_for interval)
RETURNS bigint LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    ep record;
    v_count bigint := 0;
BEGIN
    FOR ep IN
        SELECT e.id, e.name, e.url, s.failing_since, s.last_error
          FROM webhook.endpoints e JOIN webhook.endpoint_state s ON s.endpoint_id = e.id
         WHERE e.active AND s.failing_since < now() - failing_for
    LOOP
        BEGIN
            UPDATE webhook.endpoints e
               SET active = false, disabled_at = now(),
                   disabled_reason = format('every delivery failed since %s', ep.failing_since)
             WHERE e.id = ep.id AND e.active;
            IF FOUND THEN
                PERFORM webhook._enqueue('webhook.endpoint.disabled',
                                         jsonb_build_object('endpoint_id', ep.id, 'name', ep.name, 'url_origin', webhook._url_origin(ep.url),
                                                            'failing_since', ep.failing_since, 'last_error', ep.last_error),
                                         NULL);
                v_count := v_count + 1;
            END IF;
        EXCEPTION WHEN OTHERS THEN
            RAISE WARNING 'could not disable webhook endpoint %: %', ep.id, SQLERRM USING ERRCODE = SQLSTATE;
        END;
    END LOOP;
    RETURN v_count;
END;
$$;

-- The bounds of an endpoint's numeric settings, written once: the CHECK
-- constraints of webhook.endpoints (the backstop when triggers are off) and
-- the endpoints trigger's errors (with their hints) both read them here.
CREATE OR REPLACE FUNCTION webhook._endpoint_bound(setting text, high boolean)
RETURNS double precision LANGUAGE sql IMMUTABLE PARALLEL SAFE
RETURN CASE setting
    WHEN 'timeout_ms' THEN CASE WHEN high THEN 300000 ELSE 1 END
    WHEN 'max_in_flight' THEN CASE WHEN high THEN 10000 ELSE 1 END
    WHEN 'rate_limit_per_s' THEN CASE WHEN high THEN 100000 ELSE 0.001 END
END::double precision;


-- Is a value within its setting's bounds?  NULL for NULL, as BETWEEN; NaN
-- compares greater than every number, so the upper bound refuses it.
CREATE OR REPLACE FUNCTION webhook._within_bounds(setting text, value double precision)
RETURNS boolean LANGUAGE sql IMMUTABLE PARALLEL SAFE
RETURN value BETWEEN webhook._endpoint_bound(setting, false) AND webhook._endpoint_bound(setting, true);

-- Added or changed by 0.2.0's layout: the endpoints trigger's named
-- checks, and each rule written once (signing schemes, payload size, table
-- owner, the missing-endpoint error).


-- Is this the name of a signing scheme?  The CHECK of webhook.endpoints.signing
-- (src/signature.c holds the one list of schemes).
CREATE OR REPLACE FUNCTION webhook._is_signing_scheme(signing text)
RETURNS boolean LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE
AS 'MODULE_PATHNAME', 'webhook_is_signing_scheme';

-- The one payload-size rule, for send() and every row of a watch: true, or
-- the error of a payload above webhook.max_payload_bytes (from_watch picks
-- the hint).  src/event_checks.c holds the rule.
CREATE OR REPLACE FUNCTION webhook._check_payload_size(bytes bigint, from_watch boolean)
RETURNS boolean LANGUAGE C STABLE STRICT PARALLEL SAFE
AS 'MODULE_PATHNAME', 'webhook_check_payload_size';

------------------------------------------------------------------------------
-- Endpoint validation and defaults
------------------------------------------------------------------------------

-- The checks of endpoints_before_write, one rule each, in the order the
-- trigger applies them.  Each raises the error a writer sees and returns
-- nothing else; they run as the writing role, like the trigger.

-- The URL is what the worker contacts: a bounded length, then the rules of
-- src/urlcheck.c (scheme, credentials, require_https, private addresses),
-- which depend on settings, hence STABLE.
CREATE OR REPLACE FUNCTION webhook._check_endpoint_url(url text)
RETURNS void LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    problem text;
BEGIN
    IF octet_length(url) > 2048 THEN
        RAISE EXCEPTION 'url is too long'
            USING ERRCODE = 'program_limit_exceeded',
                  DETAIL = format('It has %s bytes.', octet_length(url)),
                  HINT = 'A webhook URL has at most 2048 bytes.';
    END IF;
    problem := webhook._url_problem(url);
    IF problem IS NOT NULL THEN
        RAISE EXCEPTION 'invalid webhook url "%"', webhook._url_origin(url)
            USING ERRCODE = 'invalid_parameter_value', DETAIL = problem,
                  HINT = CASE WHEN problem LIKE '%credentials%'
                              THEN 'Put credentials in the headers column, for example {"Authorization": "Bearer ..."}.'
                              WHEN problem LIKE '%require_https%'
                              THEN 'Use an https:// URL, or ask a superuser to turn webhook.require_https off.'
                              WHEN problem LIKE '%address%'
                              THEN 'A superuser can allow private networks with webhook.allow_private_networks or webhook.allowed_networks.'
                              ELSE 'Use an absolute http:// or https:// URL with a host, such as https://example.com/webhooks.' END;
    END IF;
END;
$$;

-- The subscription: a flat list of at most 1000 patterns, each a valid
-- pattern, so that matching an event stays one cheap array overlap.
CREATE OR REPLACE FUNCTION webhook._check_endpoint_event_types(event_types text[])
RETURNS void LANGUAGE plpgsql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    pattern text;
BEGIN
    IF event_types IS NULL THEN
        RAISE EXCEPTION 'event_types must not be null'
            USING ERRCODE = 'null_value_not_allowed',
                  HINT = 'Use ''{*}'' to subscribe to every event type, or ''{}'' to subscribe to none.';
    END IF;
    IF array_ndims(event_types) > 1
       OR EXISTS (SELECT 1 FROM unnest(event_types) AS p(elem) WHERE p.elem IS NULL) THEN
        RAISE EXCEPTION 'event_types must be a flat list of patterns without nulls'
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'For example: {order.created}, {order.*} or {*}.';
    END IF;
    IF cardinality(event_types) > 1000 THEN
        RAISE EXCEPTION 'too many event type patterns'
            USING ERRCODE = 'program_limit_exceeded',
                  DETAIL = format('The list has %s patterns.', cardinality(event_types)),
                  HINT = 'An endpoint has at most 1000 patterns; subscribe to a prefix such as order.* instead.';
    END IF;
    FOREACH pattern IN ARRAY event_types LOOP
        PERFORM webhook._require_event_type(pattern, true);
    END LOOP;
END;
$$;

-- The signing scheme, named before the CHECK constraint sees it, so that the
-- writer gets the list of schemes rather than the constraint's name
-- (src/signature.c holds the one list, src/signing.c the error).
CREATE OR REPLACE FUNCTION webhook._check_endpoint_signing(signing text)
RETURNS void LANGUAGE C IMMUTABLE PARALLEL SAFE
AS 'MODULE_PATHNAME', 'webhook_require_signing_scheme';

-- Bounds on what the worker computes with (of the columns in checked, those
-- the write must check): each refused here, so that no value can overflow or
-- stall a claim.
CREATE OR REPLACE FUNCTION webhook._check_endpoint_limits(checked text[], timeout_ms integer,
                                               max_in_flight integer, rate_limit_per_s double precision)
RETURNS void LANGUAGE plpgsql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF 'timeout_ms' = ANY (checked) AND NOT coalesce(webhook._within_bounds('timeout_ms', timeout_ms), false) THEN
        RAISE EXCEPTION 'timeout_ms must be between % and %',
                webhook._endpoint_bound('timeout_ms', false), webhook._endpoint_bound('timeout_ms', true)
            USING ERRCODE = 'invalid_parameter_value',
                  DETAIL = format('The value given was %s.', coalesce(timeout_ms::text, 'NULL')),
                  HINT = format('The default is 15000 (15 seconds); the longest allowed is %s (5 minutes).',
                                webhook._endpoint_bound('timeout_ms', true));
    END IF;

    IF 'max_in_flight' = ANY (checked) AND NOT webhook._within_bounds('max_in_flight', max_in_flight) THEN
        RAISE EXCEPTION 'max_in_flight must be between % and %',
                webhook._endpoint_bound('max_in_flight', false), webhook._endpoint_bound('max_in_flight', true)
            USING ERRCODE = 'invalid_parameter_value',
                  DETAIL = format('The value given was %s.', max_in_flight),
                  HINT = 'Leave it NULL to use webhook.max_in_flight_per_endpoint.';
    END IF;

    IF 'rate_limit_per_s' = ANY (checked) AND NOT webhook._within_bounds('rate_limit_per_s', rate_limit_per_s) THEN
        RAISE EXCEPTION 'rate_limit_per_s must be between % and %',
                webhook._endpoint_bound('rate_limit_per_s', false), webhook._endpoint_bound('rate_limit_per_s', true)
            USING ERRCODE = 'invalid_parameter_value',
                  DETAIL = format('The value given was %s.', rate_limit_per_s),
                  HINT = format('Leave it NULL for no limit; %s is one request every %s seconds.',
                                webhook._endpoint_bound('rate_limit_per_s', false),
                                1 / webhook._endpoint_bound('rate_limit_per_s', false));
    END IF;
END;
$$;

-- The role an endpoint's transform runs as (a transform runs as the role
-- that set it, never as the worker), after checking that the function can be
-- a transform and that this role may execute it.  The old_ arguments are
-- NULL on INSERT.  Reads the catalogs and current_user, hence STABLE.
CREATE OR REPLACE FUNCTION webhook._endpoint_transform_role(is_insert boolean, transform regproc, transform_role regrole,
                                                 old_id bigint, old_transform regproc, old_transform_role regrole)
RETURNS regrole LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF transform IS NULL THEN
        RETURN NULL;
    ELSIF NOT is_insert AND transform IS NOT DISTINCT FROM old_transform THEN
        -- Only setting transform sets it, but REASSIGN OWNED may have given
        -- the transform's wrapper (see _endpoints_sync_transform) to another role.
        RETURN coalesce(
            (SELECT p.proowner::regrole FROM pg_proc p
              WHERE p.oid = to_regprocedure(format('webhook.%I(text, timestamptz, jsonb)', '_transform_' || old_id))),
            old_transform_role);
    ELSIF is_insert OR transform IS DISTINCT FROM old_transform THEN
        IF NOT EXISTS (SELECT 1 FROM pg_proc p
                        WHERE p.oid = transform AND p.prokind = 'f' AND p.pronargs = 3
                          AND p.proargtypes[0] = 'text'::regtype AND p.proargtypes[1] = 'timestamptz'::regtype
                          AND p.proargtypes[2] = 'jsonb'::regtype
                          AND p.prorettype IN ('jsonb'::regtype, 'text'::regtype, 'json'::regtype)) THEN
            RAISE EXCEPTION 'function % cannot be a transform', transform
                USING ERRCODE = 'invalid_parameter_value',
                      DETAIL = 'A transform takes (event_type text, created_at timestamptz, payload jsonb) and returns jsonb, json or text.';
        END IF;
        -- A role given on INSERT is kept when the writer could act as it
        -- anyway, so that a restore keeps each transform's role.
        IF NOT is_insert OR transform_role IS NULL
           OR NOT EXISTS (SELECT FROM pg_roles r WHERE r.oid = transform_role)
           OR NOT pg_has_role(current_user, transform_role, 'MEMBER') THEN
            transform_role := current_user::regrole;
        END IF;
        IF NOT has_function_privilege(transform_role, transform, 'EXECUTE') THEN
            RAISE EXCEPTION 'permission denied for function %', transform
                USING ERRCODE = 'insufficient_privilege',
                      DETAIL = format('The transform would run as role %s.', transform_role);
        END IF;
    END IF;
    RETURN transform_role;
END;
$$;

-- The retry schedule: at most 100 delays of at most a week each, so that a
-- due time can neither overflow nor keep a delivery pending for years.
CREATE OR REPLACE FUNCTION webhook._check_endpoint_retry_schedule(retry_schedule_s integer[])
RETURNS void LANGUAGE plpgsql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF cardinality(retry_schedule_s) > 100 THEN
        RAISE EXCEPTION 'retry_schedule_s has too many delays'
            USING ERRCODE = 'program_limit_exceeded',
                  DETAIL = format('The list has %s delays.', cardinality(retry_schedule_s)),
                  HINT = 'A retry schedule has at most 100 delays, each of at most 604800 seconds (a week).';
    END IF;
    IF retry_schedule_s IS NULL OR array_ndims(retry_schedule_s) > 1
       OR EXISTS (SELECT 1 FROM unnest(retry_schedule_s) AS s(delay)
                   WHERE s.delay IS NULL OR s.delay NOT BETWEEN 0 AND 604800) THEN
        RAISE EXCEPTION 'retry_schedule_s must be a list of delays in seconds between 0 and 604800'
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'Use ''{}'' for no retries; the default is {5,300,1800,7200,18000,36000,36000}, and a delay is at most 604800 seconds (a week).';
    END IF;
END;
$$;

-- HTTP Basic credentials (of the columns in checked, those the write must
-- check): a password needs a user name, and the user name must fit in the
-- "user:password" the Authorization header encodes.
CREATE OR REPLACE FUNCTION webhook._check_endpoint_auth(checked text[], auth_username text, auth_password text)
RETURNS void LANGUAGE plpgsql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF checked && '{auth_username,auth_password}' AND auth_password IS NOT NULL AND auth_username IS NULL THEN
        RAISE EXCEPTION 'auth_password is set without auth_username'
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'Set both for HTTP Basic authentication, or neither.';
    END IF;
    IF 'auth_username' = ANY (checked) AND octet_length(auth_username) > 256 THEN
        RAISE EXCEPTION 'auth_username is too long'
            USING ERRCODE = 'program_limit_exceeded',
                  DETAIL = format('It has %s bytes.', octet_length(auth_username)),
                  HINT = 'A Basic authentication user name has at most 256 bytes.';
    END IF;
    IF 'auth_username' = ANY (checked) AND auth_username IS NOT NULL AND (auth_username ~ '[:\r\n]' OR auth_username = '') THEN
        RAISE EXCEPTION 'invalid auth_username'
            USING ERRCODE = 'invalid_parameter_value',
                  DETAIL = 'A Basic authentication user name must not be empty nor contain ":" or a line break.';
    END IF;
END;
$$;

-- Every NOT NULL column of the table, checked on the row as JSON: the
-- constraint's own error would print the row, secrets and headers included.
-- Reads the catalog, hence STABLE.
CREATE OR REPLACE FUNCTION webhook._check_endpoint_not_null(row_json jsonb, tbl regclass)
RETURNS void LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_column name;
BEGIN
    FOR v_column IN SELECT a.attname FROM pg_attribute a
                     WHERE a.attrelid = tbl AND a.attnum > 0 AND a.attnotnull AND NOT a.attisdropped
                     ORDER BY a.attnum LOOP
        IF jsonb_typeof(row_json -> v_column) = 'null' THEN
            RAISE EXCEPTION '% must not be null', v_column
                USING ERRCODE = 'not_null_violation',
                      HINT = format('Use DEFAULT for the default value of %s.', v_column);
        END IF;
    END LOOP;
END;
$$;

-- The one error for an endpoint id that names no endpoint: public_key(),
-- rotate_secret(), ping(), replay() and recover() raise it.
CREATE OR REPLACE FUNCTION webhook._raise_no_endpoint(endpoint_id bigint)
RETURNS void LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    RAISE EXCEPTION 'endpoint % does not exist', endpoint_id
        USING ERRCODE = 'no_data_found', HINT = 'See SELECT id, name, url FROM webhook.endpoints.';
END;
$$;

-- The public key that receivers of an ed25519 endpoint verify with.
CREATE OR REPLACE FUNCTION webhook.public_key(endpoint_id bigint)
RETURNS text LANGUAGE plpgsql STABLE STRICT
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    ep record;
BEGIN
    SELECT e.signing, e.secret INTO ep FROM webhook.endpoints e WHERE e.id = public_key.endpoint_id;
    IF NOT FOUND THEN
        PERFORM webhook._raise_no_endpoint(endpoint_id);
    END IF;
    IF ep.signing <> 'ed25519' THEN
        RAISE EXCEPTION 'endpoint % does not use ed25519 signing', endpoint_id
            USING ERRCODE = 'wrong_object_type',
                  DETAIL = format('Its signing scheme is %s, which has no public key.', ep.signing),
                  HINT = 'UPDATE webhook.endpoints SET signing = ''ed25519'' to switch it to public-key signatures.';
    END IF;
    RETURN webhook._ed25519_public_key(webhook._unseal(ep.secret));
END;
$$;

------------------------------------------------------------------------------
-- Secrets: rotation, reading, verification
------------------------------------------------------------------------------

-- Replace an endpoint's secret.  Until the grace period ends, requests carry
-- signatures with both the new and the old secret, so receivers can switch
-- at their own pace.  Returns the new secret, or for ed25519 the new public key.
CREATE OR REPLACE FUNCTION webhook.rotate_secret(endpoint_id bigint, grace interval DEFAULT '24 hours')
RETURNS text LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    ep record;
    v_secret text;
BEGIN
    SELECT e.signing, e.secret INTO ep FROM webhook.endpoints e WHERE e.id = rotate_secret.endpoint_id FOR UPDATE;
    IF NOT FOUND THEN
        PERFORM webhook._raise_no_endpoint(endpoint_id);
    END IF;
    IF ep.signing = 'none' THEN
        RAISE EXCEPTION 'endpoint % does not sign its requests', endpoint_id
            USING ERRCODE = 'wrong_object_type',
                  HINT = 'Set its signing column first.';
    END IF;
    IF grace IS NULL OR grace < interval '0' THEN
        RAISE EXCEPTION 'grace must be a non-negative interval'
            USING ERRCODE = 'invalid_parameter_value', HINT = 'Use ''0 seconds'' to stop signing with the old secret at once.';
    END IF;
    v_secret := webhook.generate_secret(ep.signing);
    UPDATE webhook.endpoints e
       SET previous_secret = ep.secret, previous_secret_expires_at = now() + grace, secret = v_secret
     WHERE e.id = rotate_secret.endpoint_id;
    IF ep.signing = 'ed25519' THEN
        RETURN webhook._ed25519_public_key(v_secret);
    END IF;
    RETURN v_secret;
END;
$$;

-- May the current role manage, and see, the watch of this table?  Its owner
-- and the roles with the owner's privileges may (src/watch.c holds the rule,
-- which watch() and unwatch() apply too); nobody may for a dropped table.
CREATE OR REPLACE FUNCTION webhook._owns_table(tbl regclass)
RETURNS boolean LANGUAGE C STABLE STRICT PARALLEL SAFE
AS 'MODULE_PATHNAME', 'webhook_owns_table_sql';

------------------------------------------------------------------------------
-- Operating: test sends, replay, retention
------------------------------------------------------------------------------

-- Send a webhook.ping event to one endpoint now, whatever it subscribes to,
-- to check that a new receiver is reachable and verifies signatures.
CREATE OR REPLACE FUNCTION webhook.ping(endpoint_id bigint)
RETURNS bigint LANGUAGE plpgsql VOLATILE STRICT
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_active boolean;
    v_payload jsonb;
    v_now timestamptz := now();
    v_event_id uuid;
    v_delivery_id bigint;
BEGIN
    SELECT e.active INTO v_active FROM webhook.endpoints e WHERE e.id = ping.endpoint_id;
    IF NOT FOUND THEN
        PERFORM webhook._raise_no_endpoint(endpoint_id);
    END IF;
    IF NOT v_active THEN
        RAISE EXCEPTION 'endpoint % is not active', endpoint_id
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  HINT = 'UPDATE webhook.endpoints SET active = true first.';
    END IF;
    v_payload := jsonb_build_object('endpoint_id', endpoint_id, 'message', 'ping');
    INSERT INTO webhook.events (event_type, payload, body, created_at)
    VALUES ('webhook.ping', v_payload, webhook._event_body('webhook.ping', v_payload, v_now), v_now)
    RETURNING id INTO v_event_id;
    INSERT INTO webhook.deliveries (event_id, endpoint_id) VALUES (v_event_id, ping.endpoint_id)
    RETURNING id INTO v_delivery_id;
    PERFORM webhook._wake_worker_at_commit();
    RETURN v_delivery_id;
END;
$$;

-- Deliver an event again: to one endpoint, or to every active endpoint
-- subscribed to its type today.  Returns the number of new deliveries.
CREATE OR REPLACE FUNCTION webhook.replay(event_id uuid, endpoint_id bigint DEFAULT NULL)
RETURNS bigint LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_type text;
    v_count bigint;
BEGIN
    IF event_id IS NULL THEN
        RAISE EXCEPTION 'event_id must not be null' USING ERRCODE = 'null_value_not_allowed';
    END IF;
    SELECT e.event_type INTO v_type FROM webhook.events e WHERE e.id = replay.event_id;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'event % does not exist', event_id
            USING ERRCODE = 'no_data_found', HINT = 'Events older than webhook.retention_succeeded may have been purged.';
    END IF;
    IF endpoint_id IS NOT NULL AND NOT EXISTS (SELECT 1 FROM webhook.endpoints e WHERE e.id = replay.endpoint_id) THEN
        PERFORM webhook._raise_no_endpoint(endpoint_id);
    END IF;
    INSERT INTO webhook.deliveries (event_id, endpoint_id)
    SELECT replay.event_id, ep.id FROM webhook.endpoints ep
     WHERE CASE WHEN replay.endpoint_id IS NULL
                THEN ep.active AND webhook._subscribed(ep.event_types, v_type)
                ELSE ep.id = replay.endpoint_id END;
    GET DIAGNOSTICS v_count = ROW_COUNT;
    IF v_count > 0 THEN
        PERFORM webhook._wake_worker_at_commit();
    END IF;
    RETURN v_count;
END;
$$;

-- Re-queue every failed delivery of an endpoint since a time, e.g. after
-- the receiver's outage is fixed.  Returns how many.
CREATE OR REPLACE FUNCTION webhook.recover(endpoint_id bigint, since timestamptz)
RETURNS bigint LANGUAGE plpgsql VOLATILE STRICT
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_count bigint;
BEGIN
    IF NOT EXISTS (SELECT 1 FROM webhook.endpoints e WHERE e.id = recover.endpoint_id) THEN
        PERFORM webhook._raise_no_endpoint(endpoint_id);
    END IF;
    UPDATE webhook.deliveries d
       SET status = 'pending', next_attempt_at = now(), completed_at = NULL
     WHERE d.endpoint_id = recover.endpoint_id AND d.status = 'failed' AND d.created_at >= since;
    GET DIAGNOSTICS v_count = ROW_COUNT;
    IF v_count > 0 THEN
        PERFORM webhook._wake_worker_at_commit();
    END IF;
    RETURN v_count;
END;
$$;

DROP FUNCTION IF EXISTS webhook._raise_too_large(bigint, bigint);

-- Helpers only the release's triggers and watch() called (its C entry
-- points stay in src/compat.c for databases not yet updated).
DROP FUNCTION IF EXISTS webhook._header_problem(text, text);
DROP FUNCTION IF EXISTS webhook._expression_problem(text);
DROP FUNCTION IF EXISTS webhook._check_columns(regclass, text[], text);

------------------------------------------------------------------------------
-- Watches: columns by number and the condition parsed, made by watch() anew
------------------------------------------------------------------------------

-- The release kept a watch's columns by name and its condition as SQL text,
-- and its triggers had no arguments.  Each watch is read, the table's column
-- types changed, and webhook.watch() called with the same options: it checks
-- them by today's rules, stores them as 0.2.0 does, and makes the triggers
-- with their arguments (for pg_dump) and their dependencies.  A watch that
-- today's rules refuse stops the update, naming the table: 0.2.0 cannot keep
-- it, and dropping it silently would lose its events.
DO $$
DECLARE
    v_watches jsonb;
    w jsonb;
    v_table regclass;
    v_trigger record;
    v_detail text;
    v_hint text;
BEGIN
    IF (SELECT a.atttypid FROM pg_catalog.pg_attribute a
         WHERE a.attrelid = 'webhook.table_watches'::regclass AND a.attname = 'columns')
       IS DISTINCT FROM 'text[]'::regtype THEN
        RETURN;
    END IF;

    -- The view reads the columns whose types change: for now, without them.
    CREATE OR REPLACE VIEW webhook.watches WITH (security_invoker = true) AS
    SELECT w.table_oid AS "table", w.event_prefix, w.operations, NULL::text[] AS columns,
           NULL::text AS condition, NULL::text[] AS exclude_columns, w.created_at, w.updated_at
      FROM webhook.table_watches w;

    SELECT jsonb_agg(jsonb_build_object('table', w.table_oid::oid, 'prefix', w.event_prefix,
                                        'operations', w.operations, 'columns', w.columns,
                                        'condition', w.condition, 'exclude_columns', w.exclude_columns,
                                        'created_at', w.created_at, 'updated_at', w.updated_at)
                     ORDER BY w.table_oid::oid)
      INTO v_watches
      FROM webhook.table_watches w;
    DELETE FROM webhook.table_watches;
    ALTER TABLE webhook.table_watches
        ALTER COLUMN columns TYPE int2[] USING NULL,
        ALTER COLUMN condition TYPE pg_node_tree USING NULL,
        ALTER COLUMN exclude_columns TYPE int2[] USING NULL;

    FOR w IN SELECT * FROM jsonb_array_elements(coalesce(v_watches, '[]')) LOOP
        -- A row left behind by a table dropped while the event trigger was off.
        CONTINUE WHEN NOT EXISTS (SELECT FROM pg_catalog.pg_class c WHERE c.oid = (w ->> 'table')::oid);
        v_table := (w ->> 'table')::oid::regclass;
        BEGIN
            PERFORM webhook.watch(v_table, w ->> 'prefix',
                                  ARRAY(SELECT jsonb_array_elements_text(w -> 'operations')),
                                  CASE WHEN jsonb_typeof(w -> 'columns') = 'array'
                                       THEN ARRAY(SELECT jsonb_array_elements_text(w -> 'columns')) END,
                                  w ->> 'condition',
                                  CASE WHEN jsonb_typeof(w -> 'exclude_columns') = 'array'
                                       THEN ARRAY(SELECT jsonb_array_elements_text(w -> 'exclude_columns')) END);
        EXCEPTION WHEN OTHERS THEN
            GET STACKED DIAGNOSTICS v_detail = PG_EXCEPTION_DETAIL, v_hint = PG_EXCEPTION_HINT;
            RAISE EXCEPTION 'the watch of table % cannot be carried over to webhook 0.2.0: %', v_table, SQLERRM
                USING ERRCODE = SQLSTATE,
                      DETAIL = concat_ws(' ', nullif(v_detail, ''), nullif(v_hint, '')),
                      HINT = 'Before ALTER EXTENSION webhook UPDATE, call webhook.watch() for the table with options it accepts today, or webhook.unwatch(); then update again.';
        END;
        -- The watch is the same one: it keeps its times (the guard trigger
        -- that keeps rows to watch() comes below).
        UPDATE webhook.table_watches t
           SET created_at = (w ->> 'created_at')::timestamptz, updated_at = (w ->> 'updated_at')::timestamptz
         WHERE t.table_oid = v_table;
    END LOOP;

    -- The release removed a watch's row when any column of its table was
    -- dropped, and left the triggers, which then made nothing.  0.2.0 would
    -- warn at each write about a trigger without a watch: they go.
    FOR v_trigger IN
        SELECT tg.tgname, tg.tgrelid::regclass AS tbl FROM pg_catalog.pg_trigger tg
         WHERE tg.tgfoid = 'webhook._watch_trigger()'::regprocedure AND tg.tgnargs = 0
           AND NOT EXISTS (SELECT FROM webhook.table_watches w WHERE w.table_oid = tg.tgrelid)
         ORDER BY 2, 1
    LOOP
        EXECUTE format('DROP TRIGGER %I ON %s', v_trigger.tgname, v_trigger.tbl);
        RAISE WARNING 'trigger % on table % had no watch since 0.1.0 lost it: dropped', v_trigger.tgname, v_trigger.tbl
            USING HINT = 'Call webhook.watch() for the table to make its events again.';
    END LOOP;
END;
$$;

------------------------------------------------------------------------------
-- Bounds: rows that the release's CHECKs let in and 0.2.0's refuse
------------------------------------------------------------------------------

-- Such a value is set to the nearest one allowed, with a warning per
-- endpoint, rather than failing the update.  The endpoints triggers are
-- bypassed: this write must not fail because another column of the row no
-- longer passes today's checks (as in webhook._forget_dropped_transforms).
DO $$
DECLARE
    replication_role text := current_setting('session_replication_role');
    ep record;
BEGIN
    PERFORM set_config('session_replication_role', 'replica', true);
    FOR ep IN
        UPDATE webhook.endpoints e
           SET timeout_ms = CASE WHEN NOT webhook._within_bounds('timeout_ms', o.timeout_ms)
                                 THEN least(greatest(o.timeout_ms, webhook._endpoint_bound('timeout_ms', false)),
                                            webhook._endpoint_bound('timeout_ms', true)) ELSE o.timeout_ms END,
               max_in_flight = CASE WHEN NOT webhook._within_bounds('max_in_flight', o.max_in_flight)
                                    THEN least(greatest(o.max_in_flight, webhook._endpoint_bound('max_in_flight', false)),
                                               webhook._endpoint_bound('max_in_flight', true)) ELSE o.max_in_flight END,
               rate_limit_per_s = CASE WHEN NOT webhook._within_bounds('rate_limit_per_s', o.rate_limit_per_s)
                                       THEN least(greatest(o.rate_limit_per_s, webhook._endpoint_bound('rate_limit_per_s', false)),
                                                  webhook._endpoint_bound('rate_limit_per_s', true)) ELSE o.rate_limit_per_s END,
               updated_at = now()
          FROM webhook.endpoints o
         WHERE o.id = e.id
           AND (NOT webhook._within_bounds('timeout_ms', o.timeout_ms)
                OR NOT webhook._within_bounds('max_in_flight', o.max_in_flight)
                OR NOT webhook._within_bounds('rate_limit_per_s', o.rate_limit_per_s))
        RETURNING e.id, e.name, o.timeout_ms AS old_timeout_ms, e.timeout_ms, o.max_in_flight AS old_max_in_flight,
                  e.max_in_flight, o.rate_limit_per_s AS old_rate_limit_per_s, e.rate_limit_per_s
    LOOP
        RAISE WARNING 'endpoint % (%) had a value outside the bounds of webhook 0.2.0: set to the nearest allowed',
            ep.id, coalesce(ep.name, 'no name')
            USING DETAIL = concat_ws(' ',
                      CASE WHEN ep.old_timeout_ms <> ep.timeout_ms
                           THEN format('timeout_ms %s is now %s.', ep.old_timeout_ms, ep.timeout_ms) END,
                      CASE WHEN ep.old_max_in_flight <> ep.max_in_flight
                           THEN format('max_in_flight %s is now %s.', ep.old_max_in_flight, ep.max_in_flight) END,
                      CASE WHEN ep.old_rate_limit_per_s <> ep.rate_limit_per_s
                           THEN format('rate_limit_per_s %s is now %s.', ep.old_rate_limit_per_s, ep.rate_limit_per_s) END),
                  HINT = 'timeout_ms is between 1 and 300000, max_in_flight between 1 and 10000, rate_limit_per_s between 0.001 and 100000.';
    END LOOP;
    PERFORM set_config('session_replication_role', replication_role, true);
END;
$$;

ALTER TABLE webhook.endpoints
    DROP CONSTRAINT endpoints_timeout_ms_check,
    ADD CONSTRAINT endpoints_timeout_ms_check CHECK (webhook._within_bounds('timeout_ms', timeout_ms)),
    DROP CONSTRAINT endpoints_max_in_flight_check,
    ADD CONSTRAINT endpoints_max_in_flight_check CHECK (webhook._within_bounds('max_in_flight', max_in_flight)),
    DROP CONSTRAINT endpoints_rate_limit_check,
    ADD CONSTRAINT endpoints_rate_limit_check CHECK (webhook._within_bounds('rate_limit_per_s', rate_limit_per_s));

-- One list of signing schemes, in C (src/signature.c): the CHECK asks it.
ALTER TABLE webhook.endpoints DROP CONSTRAINT endpoints_signing_check,
    ADD CONSTRAINT endpoints_signing_check CHECK (webhook._is_signing_scheme(signing));

-- One rule for who owns a watched table (src/watch.c), also for the policy.
ALTER POLICY table_watches_owner ON webhook.table_watches
    USING (webhook._owns_table(table_oid));

-- Counters the worker keeps, bounded so that they never overflow.  The
-- queue may be large: read only where the constraint is missing.
DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_catalog.pg_constraint c
                    WHERE c.conrelid = 'webhook.deliveries'::regclass AND c.conname = 'deliveries_attempts_check') THEN
        UPDATE webhook.deliveries d SET attempts = least(greatest(d.attempts, 0), 1000000)
         WHERE d.attempts NOT BETWEEN 0 AND 1000000;
        ALTER TABLE webhook.deliveries
            ADD CONSTRAINT deliveries_attempts_check CHECK (attempts BETWEEN 0 AND 1000000);
    END IF;
    IF NOT EXISTS (SELECT FROM pg_catalog.pg_constraint c
                    WHERE c.conrelid = 'webhook.endpoint_state'::regclass
                      AND c.conname = 'endpoint_state_consecutive_failures_check') THEN
        UPDATE webhook.endpoint_state s SET consecutive_failures = 0
         WHERE s.consecutive_failures < 0;
        ALTER TABLE webhook.endpoint_state
            ADD CONSTRAINT endpoint_state_consecutive_failures_check CHECK (consecutive_failures >= 0);
    END IF;
END;
$$;

------------------------------------------------------------------------------
-- Triggers of the extension's tables
------------------------------------------------------------------------------

CREATE OR REPLACE TRIGGER event_types_before_write
    BEFORE INSERT OR UPDATE ON webhook.event_types
    FOR EACH ROW EXECUTE FUNCTION webhook._event_types_before_write();

CREATE OR REPLACE TRIGGER endpoints_seal
    BEFORE INSERT OR UPDATE ON webhook.endpoints
    FOR EACH ROW EXECUTE FUNCTION webhook._endpoints_seal();

CREATE OR REPLACE TRIGGER endpoints_sync_transform
    AFTER INSERT OR UPDATE OR DELETE ON webhook.endpoints
    FOR EACH ROW EXECUTE FUNCTION webhook._endpoints_sync_transform();

CREATE OR REPLACE TRIGGER endpoints_truncated
    AFTER TRUNCATE ON webhook.endpoints
    FOR EACH STATEMENT EXECUTE FUNCTION webhook._endpoints_truncated();

CREATE OR REPLACE TRIGGER table_watches_guard BEFORE INSERT OR UPDATE ON webhook.table_watches
    FOR EACH ROW EXECUTE FUNCTION webhook._watches_guard();

------------------------------------------------------------------------------
-- Transforms: the wrapper of each endpoint that has one
------------------------------------------------------------------------------

-- What webhook._endpoints_sync_transform() makes when transform is set, for
-- the endpoints whose transform the release set.  Made in this script, a
-- wrapper would be a member of the extension; like one the trigger makes,
-- it only depends on it (DROP EXTENSION takes it along).
--
-- The release recorded no dependency on the transform or its role, so
-- either may be gone.  Such an endpoint is paused and its transform
-- cleared, as 0.2.0 does when a transform is dropped (see
-- webhook._forget_dropped_transforms): its pending deliveries wait.
DO $$
DECLARE
    ep record;
    wrapper text;
    replication_role text := current_setting('session_replication_role');
BEGIN
    PERFORM set_config('session_replication_role', 'replica', true);
    FOR ep IN
        UPDATE webhook.endpoints e
           SET transform = NULL, transform_role = NULL, active = false, updated_at = now(),
               disabled_at = now(), disabled_reason = 'its transform was dropped'
         WHERE e.transform IS NOT NULL
           AND (NOT EXISTS (SELECT FROM pg_catalog.pg_proc p WHERE p.oid = e.transform)
                OR NOT EXISTS (SELECT FROM pg_catalog.pg_roles r WHERE r.oid = e.transform_role))
        RETURNING e.id, e.name
    LOOP
        RAISE WARNING 'endpoint % (%) is paused: its transform or the role it ran as was dropped',
            ep.id, coalesce(ep.name, 'no name')
            USING DETAIL = 'Its pending deliveries wait; untransformed payloads are not sent.',
                  HINT = 'Set another transform, or none, then set active = true.';
    END LOOP;
    PERFORM set_config('session_replication_role', replication_role, true);

    FOR ep IN
        SELECT e.id, e.transform_role, n.nspname, p.proname
          FROM webhook.endpoints e
          JOIN pg_catalog.pg_proc p ON p.oid = e.transform
          JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace
         WHERE to_regprocedure(format('webhook.%I(text, timestamptz, jsonb)', '_transform_' || e.id)) IS NULL
         ORDER BY e.id
    LOOP
        wrapper := format('webhook.%I(text, timestamptz, jsonb)', '_transform_' || ep.id);
        EXECUTE format('CREATE FUNCTION %s RETURNS text LANGUAGE sql SECURITY DEFINER '
                       'SET search_path = pg_catalog, pg_temp '
                       'BEGIN ATOMIC SELECT %I.%I($1, $2, $3)::pg_catalog.text; END',
                       wrapper, ep.nspname, ep.proname);
        EXECUTE format('ALTER FUNCTION %s OWNER TO %s', wrapper, ep.transform_role::text);
        EXECUTE format('REVOKE ALL ON FUNCTION %s FROM PUBLIC', wrapper);
        EXECUTE format('ALTER EXTENSION webhook DROP FUNCTION %s', wrapper);
        PERFORM webhook._attach_transform_wrapper(wrapper::regprocedure);
    END LOOP;
END;
$$;

------------------------------------------------------------------------------
-- Event triggers
------------------------------------------------------------------------------

DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_catalog.pg_event_trigger WHERE evtname = 'webhook_forget_dropped_transforms') THEN
        CREATE EVENT TRIGGER webhook_forget_dropped_transforms ON sql_drop
            EXECUTE FUNCTION webhook._forget_dropped_transforms();
    END IF;
    IF NOT EXISTS (SELECT FROM pg_catalog.pg_event_trigger WHERE evtname = 'webhook_forget_dropped_watches') THEN
        CREATE EVENT TRIGGER webhook_forget_dropped_watches ON sql_drop
            EXECUTE FUNCTION webhook._forget_dropped_watches();
    END IF;
    IF NOT EXISTS (SELECT FROM pg_catalog.pg_event_trigger WHERE evtname = 'webhook_watch_ddl_end') THEN
        CREATE EVENT TRIGGER webhook_watch_ddl_end ON ddl_command_end
            WHEN TAG IN ('CREATE TRIGGER', 'ALTER TABLE', 'ALTER SCHEMA', 'ALTER FUNCTION', 'ALTER ROUTINE',
                         'ALTER TYPE', 'ALTER DOMAIN', 'ALTER OPERATOR', 'ALTER COLLATION', 'ALTER SEQUENCE',
                         'ALTER VIEW', 'ALTER EXTENSION')
            EXECUTE FUNCTION webhook._watch_ddl_end();
    END IF;
END;
$$;

------------------------------------------------------------------------------
-- Views, comments, dump configuration, privileges
------------------------------------------------------------------------------

-- Every watched table and its options.
CREATE OR REPLACE VIEW webhook.watches WITH (security_invoker = true) AS
SELECT w.table_oid AS "table", w.event_prefix, w.operations,
       webhook._column_names(w.table_oid, w.columns) AS columns,
       webhook._watch_condition(w.table_oid) AS condition,
       webhook._column_names(w.table_oid, w.exclude_columns) AS exclude_columns,
       w.created_at, w.updated_at
  FROM webhook.table_watches w;
COMMENT ON VIEW webhook.watches IS 'tables watched by webhook.watch() and their options';

COMMENT ON COLUMN webhook.delivery_log.error_class IS 'why the attempt failed (NULL: it succeeded), a name that stays the same across versions: one of webhook.error_classes()';

-- Proxies (src/proxy.c): the endpoints' proxy column, checked and sealed by
-- its own trigger, which fires after endpoints_seal.
ALTER TABLE webhook.endpoints ADD COLUMN IF NOT EXISTS proxy text;
COMMENT ON COLUMN webhook.endpoints.proxy IS 'http:// or https:// proxy for this endpoint, credentials allowed (sealed); NULL: webhook.proxy; ''direct'': no proxy';
CREATE OR REPLACE FUNCTION webhook._endpoints_proxy()
RETURNS trigger LANGUAGE C
AS 'MODULE_PATHNAME', 'webhook_endpoints_proxy';
CREATE OR REPLACE TRIGGER endpoints_seal_proxy
    BEFORE INSERT OR UPDATE ON webhook.endpoints
    FOR EACH ROW EXECUTE FUNCTION webhook._endpoints_proxy();

-- Watches travel in their triggers' arguments, no longer as rows of
-- webhook.table_watches (see webhook._watch_ddl_end): the only way to take
-- a table out of the dump configuration is to leave the extension and join
-- it again.
DO $$
BEGIN
    IF 'webhook.table_watches'::regclass = ANY ((SELECT e.extconfig FROM pg_catalog.pg_extension e
                                                  WHERE e.extname = 'webhook')::regclass[]) THEN
        ALTER EXTENSION webhook DROP TABLE webhook.table_watches;
        ALTER EXTENSION webhook ADD TABLE webhook.table_watches;
    END IF;
END;
$$;
-- The identity sequences, so that new rows after a restore do not collide
-- with restored ones.
SELECT pg_catalog.pg_extension_config_dump(pg_catalog.pg_get_serial_sequence('webhook.endpoints', 'id')::pg_catalog.regclass, '');
SELECT pg_catalog.pg_extension_config_dump(pg_catalog.pg_get_serial_sequence('webhook.deliveries', 'id')::pg_catalog.regclass, '');
SELECT pg_catalog.pg_extension_config_dump(pg_catalog.pg_get_serial_sequence('webhook.delivery_log', 'id')::pg_catalog.regclass, '');

-- Nothing is public, as in a fresh install; then the same grants.  Only the
-- extension's functions and tables (not sequences, as ON ALL TABLES) are
-- revoked one by one: REVOKE ... ON ALL FUNCTIONS would also reach the
-- transform wrappers, and in an extension script record their privileges as
-- the extension's own.
DO $$
DECLARE
    obj record;
BEGIN
    FOR obj IN
        SELECT CASE WHEN d.classid = 'pg_catalog.pg_proc'::regclass
                    THEN format('FUNCTION %s', d.objid::regprocedure)
                    ELSE format('TABLE %s', d.objid::regclass) END AS name
          FROM pg_catalog.pg_depend d
          JOIN pg_catalog.pg_extension e ON e.oid = d.refobjid
         WHERE d.refclassid = 'pg_catalog.pg_extension'::regclass AND e.extname = 'webhook' AND d.deptype = 'e'
           AND (d.classid = 'pg_catalog.pg_proc'::regclass
                OR d.classid = 'pg_catalog.pg_class'::regclass
                   AND (SELECT c.relkind FROM pg_catalog.pg_class c WHERE c.oid = d.objid) IN ('r', 'p', 'v', 'm', 'f'))
         ORDER BY 1
    LOOP
        EXECUTE format('REVOKE ALL ON %s FROM PUBLIC', obj.name);
    END LOOP;
END;
$$;

-- As in 0.2.0's install script:
GRANT EXECUTE ON FUNCTION webhook.generate_secret(text), webhook.uuid_v7(),
    webhook.sign(text, text, bigint, text, text), webhook.verify(text, jsonb, text, interval),
    webhook._url_problem(text), webhook._url_origin(text), webhook._is_event_type_name(text), webhook._is_event_type_pattern(text),
    webhook._require_event_type(text, boolean), webhook._column_names(regclass, int2[]),
    webhook._watch_condition(regclass),
    webhook._verify(text, text, text, text, text, double precision), webhook._header(jsonb, text),
    webhook._raise_invalid(text, text), webhook._raise_no_endpoint(bigint),
    webhook._is_signing_scheme(text), webhook._owns_table(regclass),
    webhook._endpoint_bound(text, boolean), webhook._within_bounds(text, double precision),
    webhook._check_endpoint_url(text), webhook._check_endpoint_event_types(text[]),
    webhook._check_endpoint_signing(text), webhook._check_endpoint_limits(text[], integer, integer, double precision),
    webhook._endpoint_transform_role(boolean, regproc, regrole, bigint, regproc, regrole),
    webhook._check_endpoint_retry_schedule(integer[]), webhook._check_endpoint_auth(text[], text, text),
    webhook._check_endpoint_not_null(jsonb, regclass)
    TO PUBLIC;
-- A table's owner may watch it: watch() and unwatch() check ownership and
-- write the watch table themselves; nobody else writes it, and row level
-- security shows each owner their own watches.
GRANT EXECUTE ON FUNCTION webhook.watch(regclass, text, text[], text[], text, text[]),
    webhook.unwatch(regclass), webhook._watch_trigger() TO PUBLIC;
GRANT SELECT ON webhook.table_watches TO PUBLIC;
GRANT SELECT ON webhook.watches TO PUBLIC;

------------------------------------------------------------------------------
-- Request formats (issue 15: CloudEvents and the seeds' own formats), as
-- 0.2.0's install script makes them: the name checks, the columns at the
-- end of webhook.endpoints, their trigger, and the same privileges.
------------------------------------------------------------------------------

-- Is this the name of an endpoint format?  The CHECK of webhook.endpoints.format
-- (src/request_format.c holds the one list of formats).
CREATE FUNCTION webhook._is_request_format(format text)
RETURNS boolean LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE
AS 'MODULE_PATHNAME', 'webhook_is_request_format';

-- Is this the name of a signature encoding?  The CHECK of
-- webhook.endpoints.signature_encoding (src/signature.c holds the one list).
CREATE FUNCTION webhook._is_signature_encoding(signature_encoding text)
RETURNS boolean LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE
AS 'MODULE_PATHNAME', 'webhook_is_signature_encoding';

ALTER TABLE webhook.endpoints
    ADD COLUMN format             text NOT NULL DEFAULT 'standard'
                                  CONSTRAINT endpoints_format_check
                                  CHECK (webhook._is_request_format(format)),
    ADD COLUMN event_type_header  text NOT NULL DEFAULT 'webhook-event-type',
    ADD COLUMN signature_encoding text NOT NULL DEFAULT 'sha256=hex'
                                  CONSTRAINT endpoints_signature_encoding_check
                                  CHECK (webhook._is_signature_encoding(signature_encoding)),
    ADD COLUMN cloudevents_source text;
COMMENT ON COLUMN webhook.endpoints.format IS 'standard (the event''s body), cloudevents (CloudEvents 1.0 HTTP binary mode) or cloudevents-structured (one application/cloudevents+json document)';
COMMENT ON COLUMN webhook.endpoints.event_type_header IS 'header that names the event type, default webhook-event-type';
COMMENT ON COLUMN webhook.endpoints.signature_encoding IS 'how an hmac-sha256 signature is written: sha256=hex (default), hex or base64';
COMMENT ON COLUMN webhook.endpoints.cloudevents_source IS 'CloudEvents source attribute (a URI-reference); NULL means /webhook/<database name>';

-- The errors for a format or a signature encoding that does not exist,
-- naming those that do (src/request_format.c, src/signature.c).
CREATE FUNCTION webhook._check_endpoint_format(format text)
RETURNS void LANGUAGE C IMMUTABLE PARALLEL SAFE
AS 'MODULE_PATHNAME', 'webhook_require_request_format';

CREATE FUNCTION webhook._check_endpoint_signature_encoding(signature_encoding text)
RETURNS void LANGUAGE C IMMUTABLE PARALLEL SAFE
AS 'MODULE_PATHNAME', 'webhook_require_signature_encoding';

-- A CloudEvents source is a URI-reference (RFC 3986): its characters, with
-- % only as the start of a %XY escape, at most 1024 bytes.  NULL is the
-- default, /webhook/<database name>.
CREATE FUNCTION webhook._check_endpoint_cloudevents_source(cloudevents_source text)
RETURNS void LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF cloudevents_source IS NULL THEN
        RETURN;
    END IF;
    IF octet_length(cloudevents_source) > 1024 THEN
        RAISE EXCEPTION 'cloudevents_source is too long'
            USING ERRCODE = 'program_limit_exceeded',
                  DETAIL = format('It has %s bytes.', octet_length(cloudevents_source)),
                  HINT = 'A CloudEvents source has at most 1024 bytes.';
    END IF;
    IF cloudevents_source !~ '^([A-Za-z0-9._~:/?#@!$&''()*+,;=\[\]-]|%[0-9A-Fa-f]{2})+$' THEN
        RAISE EXCEPTION 'invalid cloudevents_source "%"', cloudevents_source
            USING ERRCODE = 'invalid_parameter_value',
                  DETAIL = 'A CloudEvents source is a non-empty URI-reference: no spaces, quotes or other characters RFC 3986 leaves out, and % only in %XY escapes.',
                  HINT = 'Use a URI such as https://example.com/billing or a path such as /billing/orders, or NULL for /webhook/<database name>.';
    END IF;
END;
$$;

-- Check the format columns of a row of webhook.endpoints: those the write
-- changes, or all of them when it inserts or re-activates the endpoint, as
-- webhook._endpoints_before_write does.  The event_type_header is a header
-- name, checked by the one header rule in webhook._endpoints_seal().
-- Triggers fire in name order: this one after endpoints_seal.
CREATE FUNCTION webhook._endpoints_check_format()
RETURNS trigger LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_all boolean := TG_OP = 'INSERT' OR (NEW.active AND NOT OLD.active);
BEGIN
    IF v_all OR NEW.format IS DISTINCT FROM OLD.format THEN
        PERFORM webhook._check_endpoint_format(NEW.format);
    END IF;
    IF v_all OR NEW.signature_encoding IS DISTINCT FROM OLD.signature_encoding THEN
        PERFORM webhook._check_endpoint_signature_encoding(NEW.signature_encoding);
    END IF;
    IF v_all OR NEW.cloudevents_source IS DISTINCT FROM OLD.cloudevents_source THEN
        PERFORM webhook._check_endpoint_cloudevents_source(NEW.cloudevents_source);
    END IF;
    RETURN NEW;
END;
$$;

CREATE TRIGGER endpoints_shape
    BEFORE INSERT OR UPDATE ON webhook.endpoints
    FOR EACH ROW EXECUTE FUNCTION webhook._endpoints_check_format();

REVOKE ALL ON FUNCTION webhook._is_request_format(text), webhook._is_signature_encoding(text),
    webhook._check_endpoint_format(text), webhook._check_endpoint_signature_encoding(text),
    webhook._check_endpoint_cloudevents_source(text), webhook._endpoints_check_format()
    FROM PUBLIC;
GRANT EXECUTE ON FUNCTION webhook._is_request_format(text), webhook._is_signature_encoding(text),
    webhook._check_endpoint_format(text), webhook._check_endpoint_signature_encoding(text),
    webhook._check_endpoint_cloudevents_source(text)
    TO PUBLIC;

-- webhook.sign() takes the signature_encoding of an hmac-sha256 signature,
-- as endpoints do: a new signature, so the release's sign() goes (calls
-- with four or five arguments keep working), with the same privileges.
DROP FUNCTION webhook.sign(text, text, bigint, text, text);
-- The signature header value for one request, exactly as the worker sends it
-- (an hmac-sha256 one in the endpoint's signature_encoding).
CREATE FUNCTION webhook.sign(secret text, msg_id text, "timestamp" bigint, body text,
                             signing text DEFAULT 'standard', signature_encoding text DEFAULT 'sha256=hex')
RETURNS text LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE
AS 'MODULE_PATHNAME', 'webhook_sign';
REVOKE ALL ON FUNCTION webhook.sign(text, text, bigint, text, text, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION webhook.sign(text, text, bigint, text, text, text) TO PUBLIC;

-- TLS: the CA bundle the receiver is verified against, and a client
-- certificate with its key for mutual TLS (checked and client_key sealed by
-- webhook._endpoints_seal(), src/endpoint_tls.c).
ALTER TABLE webhook.endpoints
    ADD COLUMN ca_cert text,
    ADD COLUMN client_cert text,
    ADD COLUMN client_key text;
COMMENT ON COLUMN webhook.endpoints.ca_cert IS 'PEM CA certificates to verify the receiver against, instead of the system store; NULL for the system store';
COMMENT ON COLUMN webhook.endpoints.client_cert IS 'PEM client certificate (then any intermediates) for mutual TLS, with client_key';
COMMENT ON COLUMN webhook.endpoints.client_key IS 'PEM private key of client_cert, without a passphrase; sealed at rest like the secrets';

-- OAuth2 client credentials (src/endpoint_oauth.c, src/oauth.c): the worker
-- fetches a token and sends it as Authorization: Bearer.
ALTER TABLE webhook.endpoints
    ADD COLUMN oauth_token_url text,
    ADD COLUMN oauth_client_id text,
    ADD COLUMN oauth_client_secret text,
    ADD COLUMN oauth_scope text;
COMMENT ON COLUMN webhook.endpoints.oauth_token_url IS 'OAuth2 token endpoint (client credentials grant), with oauth_client_id and oauth_client_secret; NULL: no OAuth2';
COMMENT ON COLUMN webhook.endpoints.oauth_client_id IS 'OAuth2 client id, sent with oauth_client_secret by HTTP Basic authentication to oauth_token_url';
COMMENT ON COLUMN webhook.endpoints.oauth_client_secret IS 'OAuth2 client secret; sealed at rest like the secrets';
COMMENT ON COLUMN webhook.endpoints.oauth_scope IS 'OAuth2 scope asked for, space-separated; NULL: none asked';
CREATE FUNCTION webhook._endpoints_oauth()
RETURNS trigger LANGUAGE C
AS 'MODULE_PATHNAME', 'webhook_endpoints_oauth';
CREATE TRIGGER endpoints_seal_oauth
    BEFORE INSERT OR UPDATE ON webhook.endpoints
    FOR EACH ROW EXECUTE FUNCTION webhook._endpoints_oauth();
-- Nothing is public, as in a fresh install.
REVOKE ALL ON FUNCTION webhook._endpoints_oauth() FROM PUBLIC;

-- Secrets encrypted by default (issue 15, src/master_key.c): 0.1.0 stored
-- secrets in clear unless webhook.master_key_file was set.  Writing a row
-- again makes webhook._endpoints_seal() and webhook._endpoints_proxy() seal
-- every value they find in clear (creating the default key file on first
-- use); sealed values are left as they are.
UPDATE webhook.endpoints e SET secret = e.secret
 WHERE (e.secret IS NOT NULL AND e.secret NOT LIKE 'whenc:v1:%')
    OR (e.previous_secret IS NOT NULL AND e.previous_secret NOT LIKE 'whenc:v1:%')
    OR (e.auth_password IS NOT NULL AND e.auth_password NOT LIKE 'whenc:v1:%')
    OR (e.proxy IS NOT NULL AND e.proxy <> 'direct' AND e.proxy NOT LIKE 'whenc:v1:%')
    OR (e.client_key IS NOT NULL AND e.client_key NOT LIKE 'whenc:v1:%')
    OR (jsonb_typeof(e.headers) = 'object'
        AND EXISTS (SELECT FROM jsonb_each_text(e.headers) h WHERE h.value NOT LIKE 'whenc:v1:%'));