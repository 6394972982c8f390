-- webhook 0.1.0: transactional outgoing webhooks, delivered by a background worker.
-- Every object is schema-qualified; nothing here depends on the caller's search_path.

\echo Use "CREATE EXTENSION webhook" to load this file. \quit

------------------------------------------------------------------------------
-- C helpers (src/)
------------------------------------------------------------------------------

-- A new signing secret: whsec_<base64 of 32 random bytes> for HMAC schemes,
-- whsk_<base64 of seed || public key> for ed25519.
CREATE FUNCTION webhook.generate_secret(signing text DEFAULT 'standard')
RETURNS text LANGUAGE C VOLATILE STRICT PARALLEL SAFE
AS 'MODULE_PATHNAME', 'webhook_generate_secret';

-- NULL when the URL is acceptable as a webhook target, else the reason.
CREATE FUNCTION webhook._url_problem(url text)
RETURNS text LANGUAGE C STABLE STRICT PARALLEL SAFE
AS 'MODULE_PATHNAME', 'webhook_url_problem';

-- NULL when an extra request header is acceptable, else name, reserved or value.
CREATE FUNCTION webhook._header_problem(name text, value text)
RETURNS text LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE
AS 'MODULE_PATHNAME', 'webhook_header_problem';

-- NULL when the secret (sealed or not) can be used with the signing scheme,
-- else the reason.  Reveals nothing of the secret itself.
CREATE FUNCTION webhook._secret_problem(signing text, secret text)
RETURNS text LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE
AS 'MODULE_PATHNAME', 'webhook_secret_problem';

-- NULL when text is one SQL expression that cannot escape the parentheses
-- it is put in, else the reason.
CREATE FUNCTION webhook._expression_problem(expression text)
RETURNS text LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE
AS 'MODULE_PATHNAME', 'webhook_expression_problem';

-- Ask for the delivery worker's latch to be set when this transaction commits.
CREATE FUNCTION webhook._wake_worker_at_commit()
RETURNS void LANGUAGE C VOLATILE PARALLEL UNSAFE
AS 'MODULE_PATHNAME', 'webhook_wake_worker_at_commit';

-- Tell the launcher that this database now has the extension.
CREATE FUNCTION webhook._start_worker_at_commit()
RETURNS void LANGUAGE C VOLATILE PARALLEL UNSAFE
AS 'MODULE_PATHNAME', 'webhook_start_worker_at_commit';

-- The signature header value for one request, exactly as the worker sends it.
CREATE FUNCTION webhook.sign(secret text, msg_id text, "timestamp" bigint, body text,
                             signing text DEFAULT 'standard')
RETURNS text LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE
AS 'MODULE_PATHNAME', 'webhook_sign';

-- Encrypt a secret under webhook.master_key_file (unchanged when none is set).
CREATE FUNCTION webhook._seal(value text)
RETURNS text LANGUAGE C VOLATILE STRICT PARALLEL SAFE
AS 'MODULE_PATHNAME', 'webhook_seal';

-- Decrypt a sealed secret (unchanged when it is not sealed).
CREATE FUNCTION webhook._unseal(value text)
RETURNS text LANGUAGE C STABLE STRICT PARALLEL SAFE
AS 'MODULE_PATHNAME', 'webhook_unseal';

-- Standard Webhooks verification of one request's parts.
CREATE FUNCTION webhook._verify(secret text, msg_id text, "timestamp" text, signatures text,
                                body text, tolerance_s double precision)
RETURNS boolean LANGUAGE C VOLATILE STRICT PARALLEL SAFE
AS 'MODULE_PATHNAME', 'webhook_verify';

-- The whpk_ public key matching an ed25519 whsk_ secret.
CREATE FUNCTION webhook._ed25519_public_key(secret text)
RETURNS text LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE
AS 'MODULE_PATHNAME', 'webhook_ed25519_public_key';

-- A time-ordered UUID (version 7), the default id of events.
CREATE FUNCTION webhook.uuid_v7()
RETURNS uuid LANGUAGE C VOLATILE PARALLEL SAFE
AS 'MODULE_PATHNAME', 'webhook_uuid_v7';

------------------------------------------------------------------------------
-- Validation helpers
------------------------------------------------------------------------------

-- An event type name: dot-separated segments of [A-Za-z0-9_-].
CREATE FUNCTION webhook._is_event_type_name(name text)
RETURNS boolean LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
RETURN name ~ '^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*$';

-- A subscription pattern: an exact name, "prefix.*" or "*".
CREATE FUNCTION webhook._is_event_type_pattern(pattern text)
RETURNS boolean LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
RETURN pattern = '*' OR pattern ~ '^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*(\.\*)?$';

-- Every subscription pattern that takes an event type: itself, "*" and
-- each "prefix.*" ("order.*" takes "order.created" and "order.item.added",
-- not "order").
CREATE FUNCTION webhook._type_patterns(event_type text)
RETURNS text[] LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE
AS 'MODULE_PATHNAME', 'webhook_type_patterns';

-- Does a list of subscription patterns take this event type?  One overlap,
-- so the planner inlines it.
CREATE FUNCTION webhook._subscribed(patterns text[], event_type text)
RETURNS boolean LANGUAGE sql IMMUTABLE PARALLEL SAFE
RETURN patterns OPERATOR(pg_catalog.&&) webhook._type_patterns(event_type);

------------------------------------------------------------------------------
-- Tables
------------------------------------------------------------------------------

-- The catalogue of topics. Advisory unless webhook.strict_event_types is on.
CREATE TABLE webhook.event_types (
    name        text PRIMARY KEY
                CONSTRAINT event_types_name_check CHECK (webhook._is_event_type_name(name)),
    description text,
    created_at  timestamptz NOT NULL DEFAULT pg_catalog.now()
);
COMMENT ON TABLE webhook.event_types IS 'catalogue of event types that endpoints can subscribe to';

INSERT INTO webhook.event_types (name, description) VALUES
    ('webhook.ping', 'a test event sent to one endpoint by webhook.ping()'),
    ('webhook.endpoint.disabled', 'an endpoint was disabled after failing for too long');

CREATE TABLE webhook.endpoints (
    id               bigint GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
    name             text UNIQUE,
    url              text NOT NULL,
    description      text,
    event_types      text[] NOT NULL DEFAULT '{*}',
    active           boolean NOT NULL DEFAULT true,
    signing          text NOT NULL DEFAULT 'standard'
                     CONSTRAINT endpoints_signing_check
                     CHECK (signing IN ('standard', 'ed25519', 'hmac-sha256', 'none')),
    secret           text,
    previous_secret  text,
    previous_secret_expires_at timestamptz,
    signature_header text NOT NULL DEFAULT 'X-Webhook-Signature',
    auth_username    text,
    auth_password    text,
    headers          jsonb NOT NULL DEFAULT '{}',
    timeout_ms       integer NOT NULL DEFAULT 15000
                     CONSTRAINT endpoints_timeout_ms_check CHECK (timeout_ms > 0),
    retry_schedule_s integer[] NOT NULL DEFAULT '{5,300,1800,7200,18000,36000,36000}',
    max_in_flight    integer
                     CONSTRAINT endpoints_max_in_flight_check CHECK (max_in_flight > 0),
    rate_limit_per_s double precision
                     CONSTRAINT endpoints_rate_limit_check CHECK (rate_limit_per_s > 0 AND rate_limit_per_s <= 1000000),
    ordered          boolean NOT NULL DEFAULT false,
    transform        regproc,
    transform_role   regrole,
    disabled_at      timestamptz,
    disabled_reason  text,
    created_at       timestamptz NOT NULL DEFAULT pg_catalog.now(),
    updated_at       timestamptz NOT NULL DEFAULT pg_catalog.now()
);
COMMENT ON TABLE webhook.endpoints IS 'receivers of webhooks, managed with INSERT, UPDATE and DELETE';
COMMENT ON COLUMN webhook.endpoints.event_types IS 'subscriptions: exact event types, "prefix.*" or "*"';
COMMENT ON COLUMN webhook.endpoints.signing IS 'standard (Standard Webhooks v1), ed25519 (v1a), hmac-sha256 (hex in signature_header) or none';
COMMENT ON COLUMN webhook.endpoints.secret IS 'generated when missing; kept exactly as given otherwise';
COMMENT ON COLUMN webhook.endpoints.previous_secret IS 'the secret before webhook.rotate_secret(); also signed with until previous_secret_expires_at';
COMMENT ON COLUMN webhook.endpoints.auth_username IS 'HTTP Basic authentication user, with auth_password';
COMMENT ON COLUMN webhook.endpoints.headers IS 'extra request headers as a JSON object of strings';
COMMENT ON COLUMN webhook.endpoints.retry_schedule_s IS 'seconds to wait after each failed attempt; one more attempt than elements';
COMMENT ON COLUMN webhook.endpoints.rate_limit_per_s IS 'most requests per second to this endpoint (token bucket); NULL for no limit';
COMMENT ON COLUMN webhook.endpoints.ordered IS 'deliver this endpoint''s events strictly in creation order, one at a time';
COMMENT ON COLUMN webhook.endpoints.transform IS 'function (event_type text, created_at timestamptz, payload jsonb) returning the body to send (jsonb or text)';
COMMENT ON COLUMN webhook.endpoints.transform_role IS 'role the transform runs as: whoever last set transform';
COMMENT ON COLUMN webhook.endpoints.max_in_flight IS 'cap on concurrent requests to this endpoint; NULL means webhook.max_in_flight_per_endpoint';

CREATE TABLE webhook.events (
    id              uuid PRIMARY KEY DEFAULT webhook.uuid_v7(),
    event_type      text NOT NULL
                    CONSTRAINT events_event_type_check CHECK (webhook._is_event_type_name(event_type)),
    payload         jsonb NOT NULL,
    body            text NOT NULL,
    idempotency_key text,
    created_at      timestamptz NOT NULL DEFAULT pg_catalog.now()
);
-- Most events have no idempotency key: index only those that do.
CREATE UNIQUE INDEX events_idempotency_key_idx ON webhook.events (idempotency_key)
    WHERE idempotency_key IS NOT NULL;
COMMENT ON TABLE webhook.events IS 'one row per event; id is the webhook-id header, body the exact bytes sent and signed';

CREATE TABLE webhook.deliveries (
    id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    event_id         uuid NOT NULL REFERENCES webhook.events (id) ON DELETE CASCADE,
    endpoint_id      bigint REFERENCES webhook.endpoints (id) ON DELETE SET NULL,
    status           text NOT NULL DEFAULT 'pending'
                     CONSTRAINT deliveries_status_check
                     CHECK (status IN ('pending', 'succeeded', 'failed')),
    attempts         integer NOT NULL DEFAULT 0,
    next_attempt_at  timestamptz NOT NULL DEFAULT pg_catalog.now(),
    claimed_at       timestamptz,
    last_attempt_at  timestamptz,
    last_status_code integer,
    last_error       text,
    created_at       timestamptz NOT NULL DEFAULT pg_catalog.now(),
    completed_at     timestamptz
);
COMMENT ON TABLE webhook.deliveries IS 'one row per (event, endpoint): the state of delivering that event there';
COMMENT ON COLUMN webhook.deliveries.claimed_at IS 'set while a delivery worker has the request in flight; the claim lapses after the endpoint''s timeout plus 30 s';

-- The worker claims due deliveries per endpoint, and sleeps until the earliest
-- one.  Claiming changes no indexed column, so it is a HOT update: leave room.
ALTER TABLE webhook.deliveries SET (fillfactor = 80);
-- Dead index entries of finished deliveries slow every claim until vacuumed:
-- vacuum this queue table after a fixed number of changes, not a fraction.
ALTER TABLE webhook.deliveries SET (autovacuum_vacuum_scale_factor = 0, autovacuum_vacuum_threshold = 20000,
                                    autovacuum_vacuum_insert_scale_factor = 0, autovacuum_vacuum_insert_threshold = 50000,
                                    autovacuum_vacuum_cost_delay = 0);
CREATE INDEX deliveries_pending_by_endpoint_idx ON webhook.deliveries (endpoint_id, next_attempt_at)
    WHERE status = 'pending';
CREATE INDEX deliveries_event_idx ON webhook.deliveries (event_id);
-- Ordered endpoints take their oldest pending delivery first.
CREATE INDEX deliveries_pending_in_order_idx ON webhook.deliveries (endpoint_id, id)
    WHERE status = 'pending';
CREATE INDEX events_created_at_idx ON webhook.events (created_at);

CREATE TABLE webhook.delivery_log (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    delivery_id   bigint NOT NULL,
    endpoint_id   bigint,
    event_id      uuid NOT NULL,
    attempt       integer NOT NULL,
    url           text NOT NULL,
    attempted_at  timestamptz NOT NULL,
    duration_ms   double precision NOT NULL,
    status_code   integer,
    error_class   text,
    error         text,
    response_body text
);
COMMENT ON TABLE webhook.delivery_log IS 'one row per HTTP attempt, written by the delivery worker';
COMMENT ON COLUMN webhook.delivery_log.error_class IS 'stable failure class: http, timeout, connect, dns, tls, protocol, blocked, too_large, internal';
COMMENT ON COLUMN webhook.delivery_log.delivery_id IS 'the delivery attempted; a history row, so no foreign key: retention deletes log rows with their delivery';
COMMENT ON COLUMN webhook.delivery_log.endpoint_id IS 'the endpoint at the time; kept after the endpoint is deleted';

CREATE INDEX delivery_log_delivery_idx ON webhook.delivery_log (delivery_id);
CREATE INDEX delivery_log_attempted_at_idx ON webhook.delivery_log (attempted_at);

-- The delivery worker's running account of each endpoint's health, kept
-- apart from webhook.endpoints so that users' rows are not rewritten.
CREATE TABLE webhook.endpoint_state (
    endpoint_id          bigint PRIMARY KEY REFERENCES webhook.endpoints (id) ON DELETE CASCADE,
    failing_since        timestamptz,
    consecutive_failures integer NOT NULL DEFAULT 0,
    last_success_at      timestamptz,
    last_failure_at      timestamptz,
    last_error           text
);
COMMENT ON TABLE webhook.endpoint_state IS 'per-endpoint failure streak, maintained by the delivery worker';

------------------------------------------------------------------------------
-- Endpoint validation and defaults
------------------------------------------------------------------------------

-- Check a row of webhook.endpoints before it is written, fill in a secret
-- and keep updated_at current, so that nothing half-valid reaches the worker.
CREATE FUNCTION webhook._endpoints_before_write()
RETURNS trigger LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    problem text;
    pattern text;
    header record;
BEGIN
    -- Before the NOT NULL constraint, whose error would print the row and its secret.
    IF NEW.url IS NULL THEN
        RAISE EXCEPTION 'url must not be null'
            USING ERRCODE = 'not_null_violation',
                  HINT = 'Give the receiver''s absolute http:// or https:// URL, such as https://example.com/webhooks.';
    END IF;
    problem := webhook._url_problem(NEW.url);
    IF problem IS NOT NULL THEN
        RAISE EXCEPTION 'invalid webhook url "%"', NEW.url
            USING ERRCODE = 'invalid_parameter_value', DETAIL = problem,
                  HINT = CASE WHEN problem LIKE '%credentials%'
                              THEN 'Put credentials in the headers column, for example {"Authorization": "Bearer ..."}.'
                              WHEN problem LIKE '%require_https%'
                              THEN 'Use an https:// URL, or ask a superuser to turn webhook.require_https off.'
                              WHEN problem LIKE '%address%'
                              THEN 'A superuser can allow private networks with webhook.allow_private_networks or webhook.allowed_networks.'
                              ELSE 'Use an absolute http:// or https:// URL with a host, such as https://example.com/webhooks.' END;
    END IF;

    IF NEW.event_types IS NULL THEN
        RAISE EXCEPTION 'event_types must not be null'
            USING ERRCODE = 'null_value_not_allowed',
                  HINT = 'Use ''{*}'' to subscribe to every event type, or ''{}'' to subscribe to none.';
    END IF;
    IF array_ndims(NEW.event_types) > 1
       OR EXISTS (SELECT 1 FROM unnest(NEW.event_types) AS p(elem) WHERE p.elem IS NULL) THEN
        RAISE EXCEPTION 'event_types must be a flat list of patterns without nulls'
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'For example: {order.created}, {order.*} or {*}.';
    END IF;
    FOREACH pattern IN ARRAY NEW.event_types LOOP
        IF NOT webhook._is_event_type_pattern(pattern) THEN
            RAISE EXCEPTION 'invalid event type pattern "%"', pattern
                USING ERRCODE = 'invalid_parameter_value',
                      DETAIL = 'A pattern is an exact event type, a prefix followed by ".*", or "*"; event types are dot-separated segments of letters, digits, "_" and "-".',
                      HINT = 'For example: {order.created}, {order.*} or {*}.';
        END IF;
    END LOOP;

    IF NEW.signing IS NULL OR NEW.signing NOT IN ('standard', 'ed25519', 'hmac-sha256', 'none') THEN
        RAISE EXCEPTION 'unknown signing scheme "%"', coalesce(NEW.signing, 'NULL')
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'Use one of standard, ed25519, hmac-sha256 or none.';
    END IF;

    IF NEW.signature_header IS NULL OR NEW.signature_header !~ '^[A-Za-z0-9!#$%&''*+.^_`|~-]+$'
       OR lower(NEW.signature_header) LIKE 'webhook-%'
       OR lower(NEW.signature_header) IN ('content-type', 'content-length', 'host') THEN
        RAISE EXCEPTION 'invalid signature header name "%"', coalesce(NEW.signature_header, 'NULL')
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'Use an HTTP header name that the extension does not set itself, such as X-Hub-Signature-256.';
    END IF;

    IF NEW.headers IS NULL OR jsonb_typeof(NEW.headers) <> 'object' THEN
        RAISE EXCEPTION 'headers must be a JSON object of strings'
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'For example: {"Authorization": "Bearer abc123", "X-Api-Key": "k"}.';
    END IF;
    FOR header IN SELECT h.key, h.value FROM jsonb_each(NEW.headers) AS h LOOP
        IF jsonb_typeof(header.value) <> 'string' THEN
            RAISE EXCEPTION 'value of header "%" must be a JSON string', header.key
                USING ERRCODE = 'invalid_parameter_value',
                      HINT = 'Quote numbers and booleans: {"X-Retry": "3"}.';
        END IF;
        problem := webhook._header_problem(header.key, header.value #>> '{}');
        IF problem = 'name' THEN
            RAISE EXCEPTION 'invalid header name "%"', header.key
                USING ERRCODE = 'invalid_parameter_value',
                      DETAIL = 'Header names are HTTP tokens: letters, digits and !#$%&''*+.^_`|~-.';
        END IF;
        IF problem = 'reserved'
           OR lower(header.key) = lower(NEW.signature_header) AND NEW.signing = 'hmac-sha256' THEN
            RAISE EXCEPTION 'header "%" is set by the extension and cannot be overridden', header.key
                USING ERRCODE = 'invalid_parameter_value',
                      DETAIL = 'The extension sets webhook-*, Content-Type, Content-Length, Host and the signature header itself.';
        END IF;
        IF problem = 'value' THEN
            RAISE EXCEPTION 'value of header "%" contains a line break', header.key
                USING ERRCODE = 'invalid_parameter_value';
        END IF;
    END LOOP;

    IF NEW.timeout_ms IS NULL OR NEW.timeout_ms <= 0 THEN
        RAISE EXCEPTION 'timeout_ms must be positive'
            USING ERRCODE = 'invalid_parameter_value',
                  DETAIL = format('The value given was %s.', coalesce(NEW.timeout_ms::text, 'NULL')),
                  HINT = 'The default is 15000 (15 seconds).';
    END IF;

    IF NEW.max_in_flight IS NOT NULL AND NEW.max_in_flight <= 0 THEN
        RAISE EXCEPTION 'max_in_flight must be positive'
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'Leave it NULL to use webhook.max_in_flight_per_endpoint.';
    END IF;

    IF NEW.rate_limit_per_s IS NOT NULL AND NOT (NEW.rate_limit_per_s > 0 AND NEW.rate_limit_per_s <= 1000000) THEN
        RAISE EXCEPTION 'rate_limit_per_s must be greater than 0 and at most 1000000'
            USING ERRCODE = 'invalid_parameter_value',
                  DETAIL = format('The value given was %s.', NEW.rate_limit_per_s),
                  HINT = 'Leave it NULL for no limit.';
    END IF;

    -- A transform runs as the role that set it, never as the worker.
    IF NEW.transform IS NULL THEN
        NEW.transform_role := NULL;
    ELSIF TG_OP = 'UPDATE' AND NEW.transform IS NOT DISTINCT FROM OLD.transform THEN
        NEW.transform_role := OLD.transform_role;   -- only setting transform sets it
    ELSIF TG_OP = 'INSERT' OR NEW.transform IS DISTINCT FROM OLD.transform THEN
        IF NOT EXISTS (SELECT 1 FROM pg_proc p
                        WHERE p.oid = NEW.transform AND p.pronargs = 3
                          AND p.proargtypes[0] = 'text'::regtype AND p.proargtypes[1] = 'timestamptz'::regtype
                          AND p.proargtypes[2] = 'jsonb'::regtype
                          AND p.prorettype IN ('jsonb'::regtype, 'text'::regtype, 'json'::regtype)) THEN
            RAISE EXCEPTION 'function % cannot be a transform', NEW.transform
                USING ERRCODE = 'invalid_parameter_value',
                      DETAIL = 'A transform takes (event_type text, created_at timestamptz, payload jsonb) and returns jsonb, json or text.';
        END IF;
        IF NOT has_function_privilege(current_user, NEW.transform, 'EXECUTE') THEN
            RAISE EXCEPTION 'permission denied for function %', NEW.transform
                USING ERRCODE = 'insufficient_privilege';
        END IF;
        NEW.transform_role := current_user::regrole;
    END IF;

    IF NEW.retry_schedule_s IS NULL OR array_ndims(NEW.retry_schedule_s) > 1
       OR EXISTS (SELECT 1 FROM unnest(NEW.retry_schedule_s) AS s(delay) WHERE s.delay IS NULL OR s.delay < 0) THEN
        RAISE EXCEPTION 'retry_schedule_s must be a list of non-negative delays in seconds'
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'Use ''{}'' for no retries; the default is {5,300,1800,7200,18000,36000,36000}.';
    END IF;

    IF NEW.auth_password IS NOT NULL AND NEW.auth_username IS NULL THEN
        RAISE EXCEPTION 'auth_password is set without auth_username'
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'Set both for HTTP Basic authentication, or neither.';
    END IF;
    IF NEW.auth_username IS NOT NULL AND (NEW.auth_username ~ '[:\r\n]' OR NEW.auth_username = '') THEN
        RAISE EXCEPTION 'invalid auth_username'
            USING ERRCODE = 'invalid_parameter_value',
                  DETAIL = 'A Basic authentication user name must not be empty nor contain ":" or a line break.';
    END IF;
    IF NEW.auth_username IS NOT NULL AND NEW.headers ? 'Authorization'
       OR NEW.auth_username IS NOT NULL AND EXISTS (SELECT 1 FROM jsonb_object_keys(NEW.headers) AS k WHERE lower(k) = 'authorization') THEN
        RAISE EXCEPTION 'both auth_username and an Authorization header are set'
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'Use auth_username and auth_password for Basic authentication, or an Authorization header, not both.';
    END IF;

    -- A secret is generated when missing, and again when the scheme changes
    -- to or from ed25519 without a new secret (the key kinds differ).
    IF NEW.secret IS NULL AND NEW.signing <> 'none'
       OR TG_OP = 'UPDATE' AND NEW.secret IS NOT DISTINCT FROM OLD.secret
          AND (NEW.signing = 'ed25519') <> (OLD.signing = 'ed25519') AND NEW.signing <> 'none' THEN
        NEW.secret := webhook.generate_secret(NEW.signing);
    END IF;
    IF NEW.secret IS NOT NULL AND NEW.signing <> 'none' THEN
        problem := webhook._secret_problem(NEW.signing, NEW.secret);
        IF problem IS NOT NULL THEN
            RAISE EXCEPTION 'invalid secret for signing scheme "%"', NEW.signing
                USING ERRCODE = 'invalid_parameter_value', DETAIL = problem,
                      HINT = 'Leave secret NULL to have one generated.';
        END IF;
    END IF;

    -- With webhook.master_key_file set, secrets and credentials are stored
    -- encrypted (values already sealed are kept).  _seal() leaves values as
    -- they are when no key is set; the setting itself is not read here, as
    -- only superusers may read it and endpoints are managed by other roles too.
    NEW.secret := webhook._seal(NEW.secret);
    NEW.previous_secret := webhook._seal(NEW.previous_secret);
    NEW.auth_password := webhook._seal(NEW.auth_password);
    IF NEW.headers <> '{}' THEN
        NEW.headers := (SELECT jsonb_object_agg(h.key, webhook._seal(h.value))
                          FROM jsonb_each_text(NEW.headers) AS h);
    END IF;

    IF TG_OP = 'UPDATE' THEN
        NEW.updated_at := now();
        -- Re-activating an endpoint clears why it was disabled.
        IF NEW.active AND NOT OLD.active THEN
            NEW.disabled_at := NULL;
            NEW.disabled_reason := NULL;
        END IF;
    END IF;
    RETURN NEW;
END;
$$;

CREATE TRIGGER endpoints_before_write
    BEFORE INSERT OR UPDATE ON webhook.endpoints
    FOR EACH ROW EXECUTE FUNCTION webhook._endpoints_before_write();

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
-- Runs as the extension's owner: a role allowed to DELETE endpoints need not
-- be allowed to write webhook.deliveries.
CREATE FUNCTION webhook._endpoints_before_delete()
RETURNS trigger LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    UPDATE webhook.deliveries
       SET status = 'failed', last_error = 'endpoint deleted', completed_at = now(), claimed_at = NULL
     WHERE endpoint_id = OLD.id AND status = 'pending';
    RETURN OLD;
END;
$$;

CREATE TRIGGER endpoints_before_delete
    BEFORE DELETE ON webhook.endpoints
    FOR EACH ROW EXECUTE FUNCTION webhook._endpoints_before_delete();

------------------------------------------------------------------------------
-- Sending events
------------------------------------------------------------------------------

-- The exact bytes sent for an event: fixed once, so every attempt and every
-- endpoint sends and signs the same body.
CREATE FUNCTION webhook._event_body(event_type text, payload jsonb, created_at timestamptz)
RETURNS text LANGUAGE sql STABLE PARALLEL SAFE
RETURN '{"type":' || pg_catalog.to_json(event_type)::text
    || ',"timestamp":"' || pg_catalog.to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"')
    || '","data":' || payload::text || '}';

-- Refuse an event type that is not a valid name, or (when strict) not in the catalogue.
CREATE FUNCTION webhook._check_event_type(event_type text)
RETURNS void LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF event_type IS NULL THEN
        RAISE EXCEPTION 'event type must not be null'
            USING ERRCODE = 'null_value_not_allowed', HINT = 'For example: order.created.';
    END IF;
    IF NOT webhook._is_event_type_name(event_type) THEN
        RAISE EXCEPTION 'invalid event type "%"', event_type
            USING ERRCODE = 'invalid_parameter_value',
                  DETAIL = 'Event types are dot-separated segments of letters, digits, "_" and "-".',
                  HINT = 'For example: order.created.';
    END IF;
    IF current_setting('webhook.strict_event_types', true) = 'on'
       AND NOT EXISTS (SELECT 1 FROM webhook.event_types t WHERE t.name = event_type) THEN
        RAISE EXCEPTION 'event type "%" is not in webhook.event_types', event_type
            USING ERRCODE = 'undefined_object',
                  HINT = 'Add it with INSERT INTO webhook.event_types (name, description), or turn webhook.strict_event_types off.';
    END IF;
END;
$$;

-- Enqueue one event inside the caller's transaction: it exists, and is
-- delivered, only if that transaction commits.
CREATE FUNCTION webhook.send(event_type text, payload jsonb, idempotency_key text DEFAULT NULL)
RETURNS uuid LANGUAGE plpgsql VOLATILE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_column
DECLARE
    v_event_id uuid;
    v_now timestamptz := now();
    v_deliveries bigint;
BEGIN
    PERFORM webhook._check_event_type(send.event_type);
    IF send.payload IS NULL THEN
        RAISE EXCEPTION 'payload must not be null'
            USING ERRCODE = 'null_value_not_allowed', HINT = 'Send ''{}'' for an event without data.';
    END IF;
    IF pg_catalog.octet_length(send.payload::text) > pg_catalog.current_setting('webhook.max_payload_bytes', true)::bigint THEN
        RAISE EXCEPTION 'payload is too large'
            USING ERRCODE = 'program_limit_exceeded',
                  DETAIL = format('The payload has %s bytes; webhook.max_payload_bytes is %s.',
                                  octet_length(send.payload::text), current_setting('webhook.max_payload_bytes', true)),
                  HINT = 'Send a reference to the data instead, or raise webhook.max_payload_bytes.';
    END IF;

    IF send.idempotency_key IS NOT NULL THEN
        SELECT e.id INTO v_event_id FROM webhook.events e WHERE e.idempotency_key = send.idempotency_key;
        IF FOUND THEN
            RETURN v_event_id;
        END IF;
    END IF;

    INSERT INTO webhook.events AS e (event_type, payload, body, idempotency_key, created_at)
    VALUES (send.event_type, send.payload, webhook._event_body(send.event_type, send.payload, v_now),
            send.idempotency_key, v_now)
    ON CONFLICT (idempotency_key) WHERE idempotency_key IS NOT NULL DO NOTHING
    RETURNING e.id INTO v_event_id;

    IF v_event_id IS NULL THEN
        -- A concurrent transaction committed the same idempotency key first.
        SELECT e.id INTO v_event_id FROM webhook.events e WHERE e.idempotency_key = send.idempotency_key;
        RETURN v_event_id;
    END IF;

    INSERT INTO webhook.deliveries (event_id, endpoint_id)
    SELECT v_event_id, ep.id
      FROM webhook.endpoints ep
     WHERE ep.active AND webhook._subscribed(ep.event_types, send.event_type);
    GET DIAGNOSTICS v_deliveries = ROW_COUNT;

    IF v_deliveries > 0 THEN
        PERFORM webhook._wake_worker_at_commit();
    END IF;
    RETURN v_event_id;
END;
$$;
COMMENT ON FUNCTION webhook.send(text, jsonb, text) IS 'enqueue an event in the current transaction; returns its id (the webhook-id)';

-- The public key that receivers of an ed25519 endpoint verify with.
CREATE FUNCTION webhook.public_key(endpoint_id bigint)
RETURNS text LANGUAGE plpgsql STABLE STRICT
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    ep record;
BEGIN
    SELECT e.signing, e.secret INTO ep FROM webhook.endpoints e WHERE e.id = public_key.endpoint_id;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'endpoint % does not exist', endpoint_id
            USING ERRCODE = 'no_data_found', HINT = 'The ids of endpoints are in webhook.endpoints.';
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
CREATE FUNCTION webhook.rotate_secret(endpoint_id bigint, grace interval DEFAULT '24 hours')
RETURNS text LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    ep record;
    v_secret text;
BEGIN
    SELECT e.signing, e.secret INTO ep FROM webhook.endpoints e WHERE e.id = rotate_secret.endpoint_id FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'endpoint % does not exist', endpoint_id
            USING ERRCODE = 'no_data_found', HINT = 'See SELECT id, name, url FROM webhook.endpoints.';
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
COMMENT ON FUNCTION webhook.rotate_secret(bigint, interval) IS 'new secret for an endpoint; the old one keeps signing during the grace period';

-- The plain secret of an endpoint, also when stored encrypted.
CREATE FUNCTION webhook.endpoint_secret(endpoint_id bigint)
RETURNS text LANGUAGE sql STABLE STRICT
SET search_path = pg_catalog, pg_temp
RETURN (SELECT webhook._unseal(e.secret) FROM webhook.endpoints e WHERE e.id = endpoint_secret.endpoint_id);

-- Raise invalid_parameter_value from an SQL function.
CREATE FUNCTION webhook._raise_invalid(message text, hint text)
RETURNS text LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    RAISE EXCEPTION '%', message USING ERRCODE = 'invalid_parameter_value', HINT = hint;
END;
$$;

-- The error of a payload above webhook.max_payload_bytes.
CREATE FUNCTION webhook._raise_too_large(bytes bigint, max_bytes bigint)
RETURNS text LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    RAISE EXCEPTION 'payload is too large'
        USING ERRCODE = 'program_limit_exceeded',
              DETAIL = format('The payload has %s bytes; webhook.max_payload_bytes is %s.', bytes, max_bytes),
              HINT = 'Send a reference to the data instead, exclude large columns with exclude_columns, or raise webhook.max_payload_bytes.';
END;
$$;

-- The value of a header in a JSON object of headers, whatever its case.
CREATE FUNCTION webhook._header(headers jsonb, name text)
RETURNS text LANGUAGE sql IMMUTABLE PARALLEL SAFE
RETURN (SELECT h.value FROM pg_catalog.jsonb_each_text(headers) AS h
         WHERE pg_catalog.lower(h.key) = name LIMIT 1);

-- Check a Standard Webhooks request as a receiver would: any of the
-- space-separated signatures valid for the secret (whsec_ for v1, whpk_ or
-- whsk_ for v1a), and a timestamp within the tolerance.
CREATE FUNCTION webhook.verify(secret text, headers jsonb, body text, tolerance interval DEFAULT '5 minutes')
RETURNS boolean LANGUAGE sql VOLATILE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
RETURN CASE WHEN jsonb_typeof(headers) <> 'object'
            THEN webhook._raise_invalid('headers must be a JSON object of the request''s headers',
                                        'For example {"webhook-id": "...", "webhook-timestamp": "...", "webhook-signature": "..."}.')::boolean
            ELSE coalesce(webhook._verify(secret,
                                          webhook._header(headers, 'webhook-id'),
                                          webhook._header(headers, 'webhook-timestamp'),
                                          webhook._header(headers, 'webhook-signature'),
                                          body,
                                          extract(epoch FROM tolerance)::double precision),
                          false)
       END;
COMMENT ON FUNCTION webhook.verify(text, jsonb, text, interval) IS 'verify a Standard Webhooks request: signature and timestamp';

------------------------------------------------------------------------------
-- Watching application tables (src/watch.c holds the trigger)
------------------------------------------------------------------------------

-- One row per watched table.  Row level security lets a table's owner manage
-- the watch of that table and no other.
CREATE TABLE webhook.table_watches (
    table_oid       regclass PRIMARY KEY,
    event_prefix    text NOT NULL,
    operations      text[] NOT NULL,
    columns         text[],
    condition       text,
    exclude_columns text[],
    created_at      timestamptz NOT NULL DEFAULT pg_catalog.now(),
    updated_at      timestamptz NOT NULL DEFAULT pg_catalog.now()
);
COMMENT ON TABLE webhook.table_watches IS 'options of webhook.watch() per table; read webhook.watches';

ALTER TABLE webhook.table_watches ENABLE ROW LEVEL SECURITY;
CREATE POLICY table_watches_owner ON webhook.table_watches
    USING (pg_catalog.pg_has_role(CURRENT_USER,
              (SELECT c.relowner FROM pg_catalog.pg_class c WHERE c.oid = table_oid), 'USAGE'));

-- The statement-level trigger behind webhook.watch(): selects the changed
-- rows as the table's owner and enqueues them as the extension's owner.
CREATE FUNCTION webhook._watch_trigger()
RETURNS trigger LANGUAGE C
AS 'MODULE_PATHNAME', 'webhook_watch_trigger';

-- Enqueue one event per payload, set-based: one statement for the events and
-- one for their deliveries, whatever the number of rows.
CREATE FUNCTION webhook._enqueue_many(event_type text, payloads jsonb[])
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
    v_max_bytes bigint := coalesce(current_setting('webhook.max_payload_bytes', true)::bigint, 1048576);
BEGIN
    -- The endpoints are matched once for the whole statement.
    WITH targets AS MATERIALIZED (
        SELECT ep.id FROM webhook.endpoints ep
         WHERE ep.active AND webhook._subscribed(ep.event_types, _enqueue_many.event_type)
    ), ev AS (
        INSERT INTO webhook.events (event_type, payload, body, created_at)
        SELECT _enqueue_many.event_type, p.payload,
               CASE WHEN octet_length(b.body) <= v_max_bytes + octet_length(v_head) + 1 THEN b.body
                    ELSE webhook._raise_too_large(octet_length(b.body) - octet_length(v_head) - 1, v_max_bytes) END,
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

-- Reject a column list naming columns the table does not have.
CREATE FUNCTION webhook._check_columns(tbl regclass, cols text[], what text)
RETURNS void LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    col text;
BEGIN
    FOREACH col IN ARRAY coalesce(cols, '{}') LOOP
        IF col IS NULL OR NOT EXISTS (SELECT 1 FROM pg_attribute a
                                        WHERE a.attrelid = tbl AND a.attname = col
                                          AND a.attnum > 0 AND NOT a.attisdropped) THEN
            RAISE EXCEPTION 'column "%" of % does not exist', coalesce(col, 'NULL'), tbl
                USING ERRCODE = 'undefined_column',
                      HINT = format('Check the names given in %s.', what);
        END IF;
    END LOOP;
END;
$$;

-- Emit <prefix>.created / .updated / .deleted from a table's row changes.
-- Calling it again replaces the watch's options.
CREATE FUNCTION webhook.watch(tbl regclass,
                              event_prefix text DEFAULT NULL,
                              operations text[] DEFAULT '{insert,update,delete}',
                              columns text[] DEFAULT NULL,
                              condition text DEFAULT NULL,
                              exclude_columns text[] DEFAULT NULL)
RETURNS void LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
SET client_min_messages = warning
AS $$
#variable_conflict use_variable
DECLARE
    v_rel record;
    v_prefix text;
    v_ops text[];
    v_op text;
    problem text;
BEGIN
    SELECT c.relkind, c.relname, c.relowner, n.nspname INTO v_rel
      FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
     WHERE c.oid = tbl;
    IF v_rel.relkind NOT IN ('r', 'p') THEN
        RAISE EXCEPTION '% is not a table', tbl
            USING ERRCODE = 'wrong_object_type',
                  HINT = 'Only ordinary and partitioned tables can be watched; for a partitioned table, watch the parent.';
    END IF;
    IF NOT pg_has_role(current_user, v_rel.relowner, 'USAGE') THEN
        RAISE EXCEPTION 'must be owner of table % to watch it', tbl
            USING ERRCODE = 'insufficient_privilege';
    END IF;

    v_prefix := coalesce(event_prefix, v_rel.relname);
    IF NOT webhook._is_event_type_name(v_prefix) THEN
        RAISE EXCEPTION 'invalid event prefix "%"', v_prefix
            USING ERRCODE = 'invalid_parameter_value',
                  DETAIL = 'Event types are dot-separated segments of letters, digits, "_" and "-".',
                  HINT = 'Pass event_prefix => ''orders'', for example.';
    END IF;

    IF operations IS NULL OR cardinality(operations) = 0 THEN
        RAISE EXCEPTION 'operations must name at least one of insert, update, delete'
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'To stop watching the table, use webhook.unwatch().';
    END IF;
    SELECT array_agg(DISTINCT lower(o) ORDER BY lower(o)) INTO v_ops FROM unnest(operations) AS o;
    FOREACH v_op IN ARRAY v_ops LOOP
        IF v_op IS NULL OR v_op NOT IN ('insert', 'update', 'delete') THEN
            RAISE EXCEPTION 'unknown operation "%"', coalesce(v_op, 'NULL')
                USING ERRCODE = 'invalid_parameter_value',
                      HINT = 'Use insert, update and delete.';
        END IF;
    END LOOP;

    PERFORM webhook._check_columns(tbl, columns, 'columns');
    PERFORM webhook._check_columns(tbl, exclude_columns, 'exclude_columns');

    IF condition IS NOT NULL THEN
        problem := webhook._expression_problem(condition);
        IF problem IS NOT NULL THEN
            RAISE EXCEPTION 'invalid watch condition: %', problem
                USING ERRCODE = 'invalid_parameter_value',
                      DETAIL = format('The condition was: %s', condition),
                      HINT = 'Give one boolean SQL expression over the columns of NEW and OLD, such as NEW.status <> OLD.status.';
        END IF;
        BEGIN
            -- As the trigger will run it: AND needs a boolean, and the
            -- search_path is pinned.
            EXECUTE format('SELECT 1 FROM %s AS new, %s AS old WHERE false AND (%s)', tbl, tbl, condition);
        EXCEPTION WHEN OTHERS THEN
            RAISE EXCEPTION 'invalid watch condition: %', SQLERRM
                USING ERRCODE = 'invalid_parameter_value',
                      DETAIL = format('The condition was: %s', condition),
                      HINT = 'Give a boolean SQL expression over the columns of NEW and OLD, such as NEW.status <> OLD.status.';
        END;
    END IF;

    INSERT INTO webhook.table_watches AS w (table_oid, event_prefix, operations, columns, condition, exclude_columns)
    VALUES (tbl, v_prefix, v_ops, columns, condition, exclude_columns)
    ON CONFLICT (table_oid) DO UPDATE
       SET event_prefix = EXCLUDED.event_prefix, operations = EXCLUDED.operations,
           columns = EXCLUDED.columns, condition = EXCLUDED.condition,
           exclude_columns = EXCLUDED.exclude_columns, updated_at = now();

    -- One statement-level trigger per operation, with transition tables.
    EXECUTE format('DROP TRIGGER IF EXISTS webhook_watch_insert ON %s', tbl);
    EXECUTE format('DROP TRIGGER IF EXISTS webhook_watch_update ON %s', tbl);
    EXECUTE format('DROP TRIGGER IF EXISTS webhook_watch_delete ON %s', tbl);
    IF 'insert' = ANY (v_ops) THEN
        EXECUTE format('CREATE TRIGGER webhook_watch_insert AFTER INSERT ON %s REFERENCING NEW TABLE AS webhook_new '
                       'FOR EACH STATEMENT EXECUTE FUNCTION webhook._watch_trigger()', tbl);
    END IF;
    IF 'update' = ANY (v_ops) THEN
        EXECUTE format('CREATE TRIGGER webhook_watch_update AFTER UPDATE ON %s REFERENCING OLD TABLE AS webhook_old NEW TABLE AS webhook_new '
                       'FOR EACH STATEMENT EXECUTE FUNCTION webhook._watch_trigger()', tbl);
    END IF;
    IF 'delete' = ANY (v_ops) THEN
        EXECUTE format('CREATE TRIGGER webhook_watch_delete AFTER DELETE ON %s REFERENCING OLD TABLE AS webhook_old '
                       'FOR EACH STATEMENT EXECUTE FUNCTION webhook._watch_trigger()', tbl);
    END IF;
END;
$$;
COMMENT ON FUNCTION webhook.watch(regclass, text, text[], text[], text, text[]) IS 'emit <prefix>.created/.updated/.deleted events from row changes of a table';

-- Stop watching a table.
CREATE FUNCTION webhook.unwatch(tbl regclass)
RETURNS boolean LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
SET client_min_messages = warning
AS $$
BEGIN
    IF NOT pg_has_role(current_user, (SELECT c.relowner FROM pg_class c WHERE c.oid = tbl), 'USAGE') THEN
        RAISE EXCEPTION 'must be owner of table % to unwatch it', tbl
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    EXECUTE format('DROP TRIGGER IF EXISTS webhook_watch_insert ON %s', tbl);
    EXECUTE format('DROP TRIGGER IF EXISTS webhook_watch_update ON %s', tbl);
    EXECUTE format('DROP TRIGGER IF EXISTS webhook_watch_delete ON %s', tbl);
    DELETE FROM webhook.table_watches w WHERE w.table_oid = tbl;
    RETURN FOUND;
END;
$$;

-- A dropped table takes its watch with it.
CREATE FUNCTION webhook._forget_dropped_tables()
RETURNS event_trigger LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    DELETE FROM webhook.table_watches w
     USING pg_event_trigger_dropped_objects() AS o
     WHERE o.classid = 'pg_class'::regclass AND o.objid = w.table_oid::oid;
END;
$$;

CREATE EVENT TRIGGER webhook_forget_dropped_tables ON sql_drop
    EXECUTE FUNCTION webhook._forget_dropped_tables();

-- Every watched table and its options.
CREATE VIEW webhook.watches WITH (security_invoker = true) AS
SELECT w.table_oid AS "table", w.event_prefix, w.operations, w.columns, w.condition,
       w.exclude_columns, w.created_at, w.updated_at
  FROM webhook.table_watches w;
COMMENT ON VIEW webhook.watches IS 'tables watched by webhook.watch() and their options';

------------------------------------------------------------------------------
-- Operating: test sends, replay, retention
------------------------------------------------------------------------------

-- Send a webhook.ping event to one endpoint now, whatever it subscribes to,
-- to check that a new receiver is reachable and verifies signatures.
CREATE FUNCTION webhook.ping(endpoint_id bigint)
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
        RAISE EXCEPTION 'endpoint % does not exist', endpoint_id
            USING ERRCODE = 'no_data_found', HINT = 'See SELECT id, name, url FROM webhook.endpoints.';
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
COMMENT ON FUNCTION webhook.ping(bigint) IS 'send a webhook.ping event to one endpoint now; returns the delivery id';

-- Re-queue one delivery now; it keeps its webhook-id and attempt count.
CREATE FUNCTION webhook.retry(delivery_id bigint)
RETURNS void LANGUAGE plpgsql VOLATILE STRICT
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_status text;
    v_endpoint bigint;
BEGIN
    SELECT d.status, d.endpoint_id INTO v_status, v_endpoint FROM webhook.deliveries d
     WHERE d.id = retry.delivery_id FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'delivery % does not exist', delivery_id
            USING ERRCODE = 'no_data_found', HINT = 'Delivery ids are in webhook.deliveries and webhook.delivery_log.';
    END IF;
    IF v_endpoint IS NULL THEN
        RAISE EXCEPTION 'delivery % belongs to a deleted endpoint', delivery_id
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  HINT = 'Use webhook.replay(event_id, endpoint_id) to send its event to another endpoint.';
    END IF;
    UPDATE webhook.deliveries d
       SET status = 'pending', next_attempt_at = now(), completed_at = NULL
     WHERE d.id = retry.delivery_id AND d.claimed_at IS NULL;
    PERFORM webhook._wake_worker_at_commit();
END;
$$;
COMMENT ON FUNCTION webhook.retry(bigint) IS 're-queue one delivery now';

-- Deliver an event again: to one endpoint, or to every active endpoint
-- subscribed to its type today.  Returns the number of new deliveries.
CREATE FUNCTION webhook.replay(event_id uuid, endpoint_id bigint DEFAULT NULL)
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
        RAISE EXCEPTION 'endpoint % does not exist', endpoint_id
            USING ERRCODE = 'no_data_found', HINT = 'See SELECT id, name, url FROM webhook.endpoints.';
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
COMMENT ON FUNCTION webhook.replay(uuid, bigint) IS 'deliver an event again, to one endpoint or to all that match today';

-- Re-queue every failed delivery of an endpoint since a time, e.g. after
-- the receiver's outage is fixed.  Returns how many.
CREATE FUNCTION webhook.recover(endpoint_id bigint, since timestamptz)
RETURNS bigint LANGUAGE plpgsql VOLATILE STRICT
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_count bigint;
BEGIN
    IF NOT EXISTS (SELECT 1 FROM webhook.endpoints e WHERE e.id = recover.endpoint_id) THEN
        RAISE EXCEPTION 'endpoint % does not exist', endpoint_id
            USING ERRCODE = 'no_data_found', HINT = 'See SELECT id, name, url FROM webhook.endpoints.';
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
COMMENT ON FUNCTION webhook.recover(bigint, timestamptz) IS 're-queue the failed deliveries of an endpoint since a time';

-- Delete finished deliveries (with their log) and events older than a
-- given age, in small batches so no lock is held for long.  The worker does
-- the same on its own with webhook.retention_succeeded / retention_failed.
CREATE FUNCTION webhook.purge(older_than interval)
RETURNS bigint LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_total bigint := 0;
    v_batch bigint;
BEGIN
    IF older_than IS NULL OR older_than < interval '0' THEN
        RAISE EXCEPTION 'older_than must be a non-negative interval'
            USING ERRCODE = 'invalid_parameter_value', HINT = 'For example webhook.purge(''30 days'').';
    END IF;
    LOOP
        v_batch := webhook._purge_batch(now() - older_than, now() - older_than, 1000);
        v_total := v_total + v_batch;
        EXIT WHEN v_batch = 0;
    END LOOP;
    RETURN v_total;
END;
$$;
COMMENT ON FUNCTION webhook.purge(interval) IS 'delete finished deliveries, their log rows and events older than an age';

-- One batch of retention: finished deliveries completed before the cutoffs
-- (their log rows go with them), then events left with no delivery.
CREATE FUNCTION webhook._purge_batch(succeeded_before timestamptz, failed_before timestamptz, batch integer)
RETURNS bigint LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_deliveries bigint;
    v_events bigint;
BEGIN
    -- Events are indexed by age, and a delivery finishes after its event was
    -- made: old events lead to the deliveries that may be old enough.
    WITH doomed AS (
        SELECT d.id FROM webhook.events e
          JOIN webhook.deliveries d ON d.event_id = e.id
         WHERE e.created_at < greatest(succeeded_before, failed_before)
           AND d.status <> 'pending'
           AND d.completed_at < CASE WHEN d.status = 'succeeded' THEN succeeded_before ELSE failed_before END
         LIMIT batch
         FOR UPDATE OF d SKIP LOCKED
    ), log AS (
        DELETE FROM webhook.delivery_log l USING doomed WHERE l.delivery_id = doomed.id
    )
    DELETE FROM webhook.deliveries d USING doomed WHERE d.id = doomed.id;
    GET DIAGNOSTICS v_deliveries = ROW_COUNT;

    WITH doomed AS (
        SELECT e.id FROM webhook.events e
         WHERE e.created_at < least(succeeded_before, failed_before)
           AND NOT EXISTS (SELECT 1 FROM webhook.deliveries d WHERE d.event_id = e.id)
         LIMIT batch
         FOR UPDATE SKIP LOCKED
    )
    DELETE FROM webhook.events e USING doomed WHERE e.id = doomed.id;
    GET DIAGNOSTICS v_events = ROW_COUNT;
    RETURN v_deliveries + v_events;
END;
$$;

-- Deactivate endpoints whose deliveries have all failed for longer than a
-- period, and announce each with a webhook.endpoint.disabled event.
CREATE FUNCTION webhook._disable_failing_endpoints(failing_for interval)
RETURNS bigint LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    ep record;
    v_count bigint := 0;
BEGIN
    FOR ep IN
        UPDATE webhook.endpoints e
           SET active = false, disabled_at = now(),
               disabled_reason = format('every delivery failed since %s', s.failing_since)
          FROM webhook.endpoint_state s
         WHERE s.endpoint_id = e.id AND e.active AND s.failing_since < now() - failing_for
        RETURNING e.id, e.name, e.url, s.failing_since, s.last_error
    LOOP
        PERFORM webhook.send('webhook.endpoint.disabled',
                             jsonb_build_object('endpoint_id', ep.id, 'name', ep.name, 'url', ep.url,
                                                'failing_since', ep.failing_since, 'last_error', ep.last_error));
        v_count := v_count + 1;
    END LOOP;
    RETURN v_count;
END;
$$;

------------------------------------------------------------------------------
-- Health, for people in psql
------------------------------------------------------------------------------

-- Counters of the delivery workers since the server started.
CREATE FUNCTION webhook._worker_stats(OUT database name, OUT pid integer, OUT attempts bigint,
                                      OUT succeeded bigint, OUT failed bigint, OUT retries bigint,
                                      OUT bytes_sent bigint, OUT in_flight integer)
RETURNS SETOF record LANGUAGE C VOLATILE
AS 'MODULE_PATHNAME', 'webhook_worker_stats';

CREATE VIEW webhook.worker_stats AS SELECT * FROM webhook._worker_stats();
COMMENT ON VIEW webhook.worker_stats IS 'per-database delivery counters since server start';

CREATE VIEW webhook.endpoint_health AS
SELECT ep.id, ep.name, ep.url, ep.active,
       (SELECT count(*) FROM webhook.deliveries d WHERE d.endpoint_id = ep.id AND d.status = 'pending') AS pending,
       h.succeeded_1h, h.failed_1h, h.succeeded_24h, h.failed_24h,
       round(100.0 * h.ok_24h / nullif(h.attempts_24h, 0), 1) AS success_rate_24h,
       round(h.p50_ms::numeric, 1) AS p50_ms, round(h.p95_ms::numeric, 1) AS p95_ms,
       s.last_success_at, s.last_failure_at, s.last_error,
       coalesce(s.consecutive_failures, 0) AS consecutive_failures, s.failing_since,
       ep.disabled_at, ep.disabled_reason
  FROM webhook.endpoints ep
  LEFT JOIN webhook.endpoint_state s ON s.endpoint_id = ep.id
  LEFT JOIN LATERAL (
      SELECT count(*) FILTER (WHERE l.error_class IS NULL AND l.attempted_at > now() - interval '1 hour') AS succeeded_1h,
             count(*) FILTER (WHERE l.error_class IS NOT NULL AND l.attempted_at > now() - interval '1 hour') AS failed_1h,
             count(*) FILTER (WHERE l.error_class IS NULL) AS succeeded_24h,
             count(*) FILTER (WHERE l.error_class IS NOT NULL) AS failed_24h,
             count(*) FILTER (WHERE l.error_class IS NULL) AS ok_24h,
             count(*) AS attempts_24h,
             percentile_cont(0.5) WITHIN GROUP (ORDER BY l.duration_ms) AS p50_ms,
             percentile_cont(0.95) WITHIN GROUP (ORDER BY l.duration_ms) AS p95_ms
        FROM webhook.delivery_log l
       WHERE l.endpoint_id = ep.id AND l.attempted_at > now() - interval '24 hours'
  ) h ON true;
COMMENT ON VIEW webhook.endpoint_health IS 'per endpoint: backlog, attempts and success in the last hour and day, latency, failure streak';

CREATE VIEW webhook.recent_failures AS
SELECT l.attempted_at, l.endpoint_id, ep.name AS endpoint, ev.event_type, l.delivery_id, l.attempt,
       coalesce(l.status_code::text, l.error_class) AS failure, l.error,
       pg_catalog.left(l.response_body, 120) AS response
  FROM webhook.delivery_log l
  LEFT JOIN webhook.endpoints ep ON ep.id = l.endpoint_id
  LEFT JOIN webhook.events ev ON ev.id = l.event_id
 WHERE l.error_class IS NOT NULL
 ORDER BY l.attempted_at DESC, l.id DESC
 LIMIT 100;
COMMENT ON VIEW webhook.recent_failures IS 'the latest 100 failed attempts';

------------------------------------------------------------------------------
-- Views for people in psql
------------------------------------------------------------------------------

-- Attempts with what they were about, newest first.
CREATE VIEW webhook.attempts AS
SELECT l.attempted_at, l.endpoint_id, ep.name AS endpoint, ev.event_type, l.event_id, l.delivery_id,
       l.attempt, l.status_code, l.error_class, round(l.duration_ms::numeric, 1) AS duration_ms,
       l.error, pg_catalog.left(l.response_body, 80) AS response
  FROM webhook.delivery_log l
  LEFT JOIN webhook.endpoints ep ON ep.id = l.endpoint_id
  LEFT JOIN webhook.events ev ON ev.id = l.event_id
 ORDER BY l.attempted_at DESC, l.id DESC;
COMMENT ON VIEW webhook.attempts IS 'every HTTP attempt, newest first, with endpoint name and event type';

------------------------------------------------------------------------------
-- Privileges: nothing is public. An application role that only sends events
-- needs USAGE on the schema and EXECUTE on webhook.send (see README).
------------------------------------------------------------------------------

REVOKE ALL ON ALL TABLES IN SCHEMA webhook FROM PUBLIC;
REVOKE ALL ON ALL FUNCTIONS IN SCHEMA webhook FROM PUBLIC;

-- Harmless helpers used by triggers that run as the writing role.
GRANT EXECUTE ON FUNCTION webhook.generate_secret(text), webhook.uuid_v7(), webhook._url_problem(text),
    webhook._secret_problem(text, text), webhook._header_problem(text, text),
    webhook._seal(text), webhook.sign(text, text, bigint, text, text),
    webhook._ed25519_public_key(text), webhook._is_event_type_name(text),
    webhook._is_event_type_pattern(text), webhook._subscribed(text[], text), webhook._type_patterns(text),
    webhook._event_body(text, jsonb, timestamptz), webhook._check_columns(regclass, text[], text),
    webhook._verify(text, text, text, text, text, double precision), webhook._header(jsonb, text),
    webhook._raise_invalid(text, text), webhook._expression_problem(text),
    webhook.verify(text, jsonb, text, interval)
    TO PUBLIC;
-- A table's owner may watch it (row level security keeps each to their own);
-- the trigger function itself checks who may do what.
GRANT EXECUTE ON FUNCTION webhook.watch(regclass, text, text[], text[], text, text[]),
    webhook.unwatch(regclass), webhook._watch_trigger() TO PUBLIC;
GRANT SELECT, INSERT, UPDATE, DELETE ON webhook.table_watches TO PUBLIC;
GRANT SELECT ON webhook.watches TO PUBLIC;

-- Endpoints, the catalogue and the queue are user data: pg_dump keeps them.
SELECT pg_catalog.pg_extension_config_dump('webhook.endpoints', '');
SELECT pg_catalog.pg_extension_config_dump('webhook.event_types', $$WHERE name NOT LIKE 'webhook.%'$$);
SELECT pg_catalog.pg_extension_config_dump('webhook.events', '');
SELECT pg_catalog.pg_extension_config_dump('webhook.deliveries', '');
SELECT pg_catalog.pg_extension_config_dump('webhook.delivery_log', '');
SELECT pg_catalog.pg_extension_config_dump('webhook.table_watches', '');
SELECT pg_catalog.pg_extension_config_dump('webhook.endpoint_state', '');

-- Start delivering in this database once CREATE EXTENSION commits.
SELECT webhook._start_worker_at_commit();
