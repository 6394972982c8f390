------------------------------------------------------------------------------
-- Endpoint validation and defaults
------------------------------------------------------------------------------

-- The checks of endpoints_before_write, one rule each, in the order the
-- trigger applies them.  Each raises the error a writer sees and returns
-- nothing else; they run as the writing role, like the trigger.

-- The URL is what the worker contacts: a bounded length, then the rules of
-- src/urlcheck.c (scheme, credentials, require_https, private addresses),
-- which depend on settings, hence STABLE.
CREATE FUNCTION webhook._check_endpoint_url(url text)
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
CREATE FUNCTION webhook._check_endpoint_event_types(event_types text[])
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
CREATE FUNCTION webhook._check_endpoint_signing(signing text)
RETURNS void LANGUAGE C IMMUTABLE PARALLEL SAFE
AS 'MODULE_PATHNAME', 'webhook_require_signing_scheme';

-- Bounds on what the worker computes with (of the columns in checked, those
-- the write must check): each refused here, so that no value can overflow or
-- stall a claim.
CREATE FUNCTION webhook._check_endpoint_limits(checked text[], timeout_ms integer,
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
CREATE FUNCTION webhook._endpoint_transform_role(is_insert boolean, transform regproc, transform_role regrole,
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
CREATE FUNCTION webhook._check_endpoint_retry_schedule(retry_schedule_s integer[])
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
CREATE FUNCTION webhook._check_endpoint_auth(checked text[], auth_username text, auth_password text)
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
CREATE FUNCTION webhook._check_endpoint_not_null(row_json jsonb, tbl regclass)
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

-- Check a row of webhook.endpoints before it is written, fill in a secret
-- and keep updated_at current, so that nothing half-valid reaches the worker.
-- Each check is a helper above; their order is the order a writer sees errors in.
CREATE FUNCTION webhook._endpoints_before_write()
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
    IF 'filter' = ANY (v_check) THEN
        PERFORM webhook._check_endpoint_filter(NEW.filter);
    END IF;

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

CREATE TRIGGER endpoints_before_write
    BEFORE INSERT OR UPDATE ON webhook.endpoints
    FOR EACH ROW EXECUTE FUNCTION webhook._endpoints_before_write();

-- Then check, in clear, what the row sends (secrets, header names and
-- values, the signature header) and seal it under the master key.
-- Triggers fire in name order: this one after endpoints_before_write.
CREATE FUNCTION webhook._endpoints_seal()
RETURNS trigger LANGUAGE C
AS 'MODULE_PATHNAME', 'webhook_endpoints_seal';

CREATE TRIGGER endpoints_seal
    BEFORE INSERT OR UPDATE ON webhook.endpoints
    FOR EACH ROW EXECUTE FUNCTION webhook._endpoints_seal();

-- Proxies: check the proxy column in clear (syntax, and its address by the
-- network guard) and seal it under the master key (src/proxy.c).
-- Triggers fire in name order: this one after endpoints_seal.
CREATE FUNCTION webhook._endpoints_proxy()
RETURNS trigger LANGUAGE C
AS 'MODULE_PATHNAME', 'webhook_endpoints_proxy';

CREATE TRIGGER endpoints_seal_proxy
    BEFORE INSERT OR UPDATE ON webhook.endpoints
    FOR EACH ROW EXECUTE FUNCTION webhook._endpoints_proxy();

-- OAuth2 client credentials: url, client id and secret together, the token
-- URL under the endpoint URL's rules and network guard, the client secret
-- sealed (src/endpoint_oauth.c).
CREATE FUNCTION webhook._endpoints_oauth()
RETURNS trigger LANGUAGE C
AS 'MODULE_PATHNAME', 'webhook_endpoints_oauth';

CREATE TRIGGER endpoints_seal_oauth
    BEFORE INSERT OR UPDATE ON webhook.endpoints
    FOR EACH ROW EXECUTE FUNCTION webhook._endpoints_oauth();

-- Request formats (issue 15: CloudEvents and the seeds' own formats).
-- A content filter must be a predicate: "$.amount > 100", not "$.amount",
-- whose items jsonb_path_match() would refuse for every event.
CREATE FUNCTION webhook._check_endpoint_filter(filter jsonpath)
RETURNS void LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF NOT webhook._is_jsonpath_predicate(filter) THEN
        RAISE EXCEPTION 'filter % is not a predicate', filter
            USING ERRCODE = 'invalid_parameter_value',
                  DETAIL = 'An endpoint''s filter must return true or false for an event''s payload; this path returns items.',
                  HINT = 'Write a comparison or exists(), such as ''$.amount > 100 && $.currency == "EUR"'' or ''exists($.tags ? (@ == "vip"))''.';
    END IF;
END;
$$;

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

-- The worker sleeps until the next due delivery of an active endpoint; a
-- change to endpoints (re-activation, a new cap or rate) may bring one
-- closer, so wake it when the change commits.
CREATE FUNCTION webhook._endpoints_after_update()
RETURNS trigger LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    PERFORM webhook._wake_worker_at_commit();
    RETURN NULL;
END;
$$;

CREATE TRIGGER endpoints_after_update
    AFTER UPDATE ON webhook.endpoints
    FOR EACH STATEMENT EXECUTE FUNCTION webhook._endpoints_after_update();

-- Deliveries still pending for a deleted endpoint can never be made: close
-- them, so the history says why; their rows stay readable with endpoint_id NULL.
-- First attempts in flight become such rows first (their outcome is still
-- logged, and leaves the row closed).
-- Runs as the extension's owner: a role allowed to DELETE endpoints need not
-- be allowed to write webhook.delivery_state.
CREATE FUNCTION webhook._endpoints_before_delete()
RETURNS trigger LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    PERFORM webhook._first_attempts_to_state(
        ARRAY(SELECT f.id FROM webhook.first_attempts f WHERE f.endpoint_id = OLD.id), false);
    UPDATE webhook.delivery_state
       SET status = 'failed', last_error = 'endpoint deleted', completed_at = now(), claimed_at = NULL
     WHERE endpoint_id = OLD.id AND status = 'pending';
    RETURN OLD;
END;
$$;

CREATE TRIGGER endpoints_before_delete
    BEFORE DELETE ON webhook.endpoints
    FOR EACH ROW EXECUTE FUNCTION webhook._endpoints_before_delete();

-- A transform runs through a wrapper function per endpoint,
-- webhook._transform_<id>, whose body calls the endpoint's transform and
-- which is owned by transform_role.  PostgreSQL then records what the
-- endpoint relies on: DROP FUNCTION of the transform and DROP ROLE of its
-- role are refused without CASCADE, and RENAME or SET SCHEMA keep working.
-- The wrapper also depends on the extension, so that DROP EXTENSION takes it.
CREATE FUNCTION webhook._attach_transform_wrapper(wrapper regprocedure)
RETURNS void LANGUAGE c STRICT
AS 'MODULE_PATHNAME', 'webhook_attach_transform_wrapper';

-- Keep an endpoint's wrapper in step with its transform and transform_role.
-- Runs as the extension's owner: only it may create functions in the schema
-- and give them to another role; the row was checked by endpoints_before_write.
CREATE FUNCTION webhook._endpoints_sync_transform()
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

CREATE TRIGGER endpoints_sync_transform
    AFTER INSERT OR UPDATE OR DELETE ON webhook.endpoints
    FOR EACH ROW EXECUTE FUNCTION webhook._endpoints_sync_transform();

-- TRUNCATE fires no row triggers: drop every wrapper.
CREATE FUNCTION webhook._endpoints_truncated()
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

CREATE TRIGGER endpoints_truncated
    AFTER TRUNCATE ON webhook.endpoints
    FOR EACH STATEMENT EXECUTE FUNCTION webhook._endpoints_truncated();

-- A wrapper dropped by CASCADE (of its function, its role's DROP OWNED, or
-- its schema) pauses its endpoint and clears the transform: sending the
-- untransformed payload could expose what the transform left out, or break
-- a receiver that expects its shape.  Pending deliveries wait for an
-- operator to set another transform (or none) and reactivate the endpoint.
-- The endpoints triggers are bypassed for this update: a DROP must not fail
-- because some other column of the row no longer passes today's checks.
CREATE FUNCTION webhook._forget_dropped_transforms()
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

CREATE EVENT TRIGGER webhook_forget_dropped_transforms ON sql_drop
    EXECUTE FUNCTION webhook._forget_dropped_transforms();

-- The one error for an endpoint id that names no endpoint: public_key(),
-- rotate_secret(), ping(), replay() and recover() raise it.
CREATE FUNCTION webhook._raise_no_endpoint(endpoint_id bigint)
RETURNS void LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    RAISE EXCEPTION 'endpoint % does not exist', endpoint_id
        USING ERRCODE = 'no_data_found', HINT = 'See SELECT id, name, url FROM webhook.endpoints.';
END;
$$;
