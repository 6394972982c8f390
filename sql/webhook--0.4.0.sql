-- webhook 0.4.0, as released (git d0005d0). FROZEN: never edit; change sql/src and write an upgrade script.
-- webhook 0.4.0: transactional outgoing webhooks, delivered by a background worker.
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

-- Is this the name of a signing scheme?  The CHECK of webhook.endpoints.signing
-- (src/signature.c holds the one list of schemes).
CREATE FUNCTION webhook._is_signing_scheme(signing text)
RETURNS boolean LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE
AS 'MODULE_PATHNAME', 'webhook_is_signing_scheme';

-- NULL when the secret can be used with the signing scheme, else the reason.
-- A sealed value is not opened: this is no oracle on ciphertexts.
CREATE FUNCTION webhook._secret_problem(signing text, secret text)
RETURNS text LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE
AS 'MODULE_PATHNAME', 'webhook_secret_problem';

-- Ask for the delivery worker's latch to be set when this transaction commits.
CREATE FUNCTION webhook._wake_worker_at_commit()
RETURNS void LANGUAGE C VOLATILE PARALLEL UNSAFE
AS 'MODULE_PATHNAME', 'webhook_wake_worker_at_commit';

-- Tell the launcher that this database now has the extension.
CREATE FUNCTION webhook._start_worker_at_commit()
RETURNS void LANGUAGE C VOLATILE PARALLEL UNSAFE
AS 'MODULE_PATHNAME', 'webhook_start_worker_at_commit';

-- The signature header value for one request, exactly as the worker sends it
-- (an hmac-sha256 one in the endpoint's signature_encoding).
CREATE FUNCTION webhook.sign(secret text, msg_id text, "timestamp" bigint, body text,
                             signing text DEFAULT 'standard', signature_encoding text DEFAULT 'sha256=hex')
RETURNS text LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE
AS 'MODULE_PATHNAME', 'webhook_sign';

-- Encrypt a secret under the master key (webhook.master_key_file, or by
-- default webhook_master.key in the data directory, created on first use).
-- Endpoints do not need it: their values are sealed by _endpoints_seal().
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

-- Request formats (issue 15: CloudEvents and the seeds' own formats).
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

------------------------------------------------------------------------------
-- Validation helpers
------------------------------------------------------------------------------

-- What errors and events show of a URL: scheme://host[:port], never user
-- info, path, query or fragment (src/url_rules.c holds the rule).
CREATE FUNCTION webhook._url_origin(url text)
RETURNS text LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE
AS 'MODULE_PATHNAME', 'webhook_url_origin_sql';

-- An event type name: dot-separated segments of [A-Za-z0-9_-], at most
-- 256 bytes (src/event_checks.c holds the rule).
CREATE FUNCTION webhook._is_event_type_name(name text)
RETURNS boolean LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE
AS 'MODULE_PATHNAME', 'webhook_is_event_type_name';

-- A subscription pattern: an exact name, "prefix.*" or "*".
CREATE FUNCTION webhook._is_event_type_pattern(pattern text)
RETURNS boolean LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE
AS 'MODULE_PATHNAME', 'webhook_is_event_type_pattern';

-- Raise the error for an event type (or, with pattern, a subscription
-- pattern) that breaks the rule above: too long, or not a name.
CREATE FUNCTION webhook._require_event_type(name text, pattern boolean)
RETURNS void LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE
AS 'MODULE_PATHNAME', 'webhook_require_event_type';

-- Refuse the extension's own event types ("webhook" and "webhook.*", in
-- any case) to callers: receivers can trust that such an event is genuine.
CREATE FUNCTION webhook._require_unreserved_event_type(name text)
RETURNS void LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE
AS 'MODULE_PATHNAME', 'webhook_require_unreserved_event_type';

-- Every subscription pattern that takes an event type: itself, "*" and
-- each "prefix.*" ("order.*" takes "order.created" and "order.item.added",
-- not "order").
CREATE FUNCTION webhook._type_patterns(event_type text)
RETURNS text[] LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE
AS 'MODULE_PATHNAME', 'webhook_type_patterns';

-- Which of a database's webhook.workers delivers an endpoint's events: each
-- endpoint belongs to one worker, so its order, its in-flight cap and its
-- rate limit stay one worker's, and workers never claim the same row.
CREATE FUNCTION webhook._worker_of(endpoint_id bigint, workers integer)
RETURNS integer LANGUAGE sql IMMUTABLE PARALLEL SAFE
RETURN pg_catalog.abs(endpoint_id % GREATEST(workers, 1))::integer;

-- Does a list of subscription patterns take this event type?  One overlap,
-- so the planner inlines it.
CREATE FUNCTION webhook._subscribed(patterns text[], event_type text)
RETURNS boolean LANGUAGE sql IMMUTABLE PARALLEL SAFE
RETURN patterns OPERATOR(pg_catalog.&&) webhook._type_patterns(event_type);

-- The bounds of an endpoint's numeric settings, written once: the CHECK
-- constraints of webhook.endpoints (the backstop when triggers are off) and
-- the endpoints trigger's errors (with their hints) both read them here.
CREATE FUNCTION webhook._endpoint_bound(setting text, high boolean)
RETURNS double precision LANGUAGE sql IMMUTABLE PARALLEL SAFE
RETURN CASE setting
    WHEN 'timeout_ms' THEN CASE WHEN high THEN 300000 ELSE 1 END
    WHEN 'max_in_flight' THEN CASE WHEN high THEN 10000 ELSE 1 END
    WHEN 'rate_limit_per_s' THEN CASE WHEN high THEN 100000 ELSE 0.001 END
END::double precision;

-- Is a value within its setting's bounds?  NULL for NULL, as BETWEEN; NaN
-- compares greater than every number, so the upper bound refuses it.
CREATE FUNCTION webhook._within_bounds(setting text, value double precision)
RETURNS boolean LANGUAGE sql IMMUTABLE PARALLEL SAFE
RETURN value BETWEEN webhook._endpoint_bound(setting, false) AND webhook._endpoint_bound(setting, true);

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

-- A bad name gets the same error as in webhook.send(), not the CHECK's.
CREATE FUNCTION webhook._event_types_before_write()
RETURNS trigger LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    PERFORM webhook._require_event_type(NEW.name, false);
    RETURN NEW;
END;
$$;

CREATE TRIGGER event_types_before_write
    BEFORE INSERT OR UPDATE ON webhook.event_types
    FOR EACH ROW EXECUTE FUNCTION webhook._event_types_before_write();

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
                     CHECK (webhook._is_signing_scheme(signing)),
    secret           text,
    previous_secret  text,
    previous_secret_expires_at timestamptz,
    signature_header text NOT NULL DEFAULT 'X-Webhook-Signature',
    auth_username    text,
    auth_password    text,
    headers          jsonb NOT NULL DEFAULT '{}',
    timeout_ms       integer NOT NULL DEFAULT 15000
                     CONSTRAINT endpoints_timeout_ms_check CHECK (webhook._within_bounds('timeout_ms', timeout_ms)),
    retry_schedule_s integer[] NOT NULL DEFAULT '{5,300,1800,7200,18000,36000,36000}',
    max_in_flight    integer
                     CONSTRAINT endpoints_max_in_flight_check CHECK (webhook._within_bounds('max_in_flight', max_in_flight)),
    rate_limit_per_s double precision
                     CONSTRAINT endpoints_rate_limit_check CHECK (webhook._within_bounds('rate_limit_per_s', rate_limit_per_s)),
    ordered          boolean NOT NULL DEFAULT false,
    transform        regproc,
    transform_role   regrole,
    disabled_at      timestamptz,
    disabled_reason  text,
    created_at       timestamptz NOT NULL DEFAULT pg_catalog.now(),
    updated_at       timestamptz NOT NULL DEFAULT pg_catalog.now(),
    -- Proxies (src/proxy.c): checked and sealed by webhook._endpoints_proxy().
    proxy            text,
    -- Request formats (issue 15: CloudEvents and the seeds' own formats)
    format             text NOT NULL DEFAULT 'standard'
                       CONSTRAINT endpoints_format_check
                       CHECK (webhook._is_request_format(format)),
    event_type_header  text NOT NULL DEFAULT 'webhook-event-type',
    signature_encoding text NOT NULL DEFAULT 'sha256=hex'
                       CONSTRAINT endpoints_signature_encoding_check
                       CHECK (webhook._is_signature_encoding(signature_encoding)),
    cloudevents_source text,
    -- TLS: the CA bundle the receiver is verified against, and a client
    -- certificate with its key for mutual TLS (checked by src/endpoint_tls.c).
    ca_cert          text,
    client_cert      text,
    client_key       text,
    -- OAuth2 client credentials (src/endpoint_oauth.c, src/oauth.c): the
    -- worker fetches a token and sends it as Authorization: Bearer.
    oauth_token_url     text,
    oauth_client_id     text,
    oauth_client_secret text,
    oauth_scope         text
);
COMMENT ON COLUMN webhook.endpoints.proxy IS 'http:// or https:// proxy for this endpoint, credentials allowed (sealed); NULL: webhook.proxy; ''direct'': no proxy';
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
-- Request formats (issue 15)
COMMENT ON COLUMN webhook.endpoints.format IS 'standard (the event''s body), cloudevents (CloudEvents 1.0 HTTP binary mode) or cloudevents-structured (one application/cloudevents+json document)';
COMMENT ON COLUMN webhook.endpoints.event_type_header IS 'header that names the event type, default webhook-event-type';
COMMENT ON COLUMN webhook.endpoints.signature_encoding IS 'how an hmac-sha256 signature is written: sha256=hex (default), hex or base64';
COMMENT ON COLUMN webhook.endpoints.cloudevents_source IS 'CloudEvents source attribute (a URI-reference); NULL means /webhook/<database name>';
-- TLS
COMMENT ON COLUMN webhook.endpoints.ca_cert IS 'PEM CA certificates to verify the receiver against, instead of the system store; NULL for the system store';
COMMENT ON COLUMN webhook.endpoints.client_cert IS 'PEM client certificate (then any intermediates) for mutual TLS, with client_key';
COMMENT ON COLUMN webhook.endpoints.client_key IS 'PEM private key of client_cert, without a passphrase; sealed at rest like the secrets';
COMMENT ON COLUMN webhook.endpoints.oauth_token_url IS 'OAuth2 token endpoint (client credentials grant), with oauth_client_id and oauth_client_secret; NULL: no OAuth2';
COMMENT ON COLUMN webhook.endpoints.oauth_client_id IS 'OAuth2 client id, sent with oauth_client_secret by HTTP Basic authentication to oauth_token_url';
COMMENT ON COLUMN webhook.endpoints.oauth_client_secret IS 'OAuth2 client secret; sealed at rest like the secrets';
COMMENT ON COLUMN webhook.endpoints.oauth_scope IS 'OAuth2 scope asked for, space-separated; NULL: none asked';

-- The queue.  An application's transaction writes one events row per event
-- and nothing per endpoint: the delivery worker reads committed events by
-- transaction snapshots (webhook.queue_positions, src/reader.c), matches
-- them to endpoints and creates their delivery_state rows itself.
CREATE TABLE webhook.events (
    id              uuid PRIMARY KEY DEFAULT webhook.uuid_v7(),
    event_type      text NOT NULL,
    payload         jsonb NOT NULL,
    idempotency_key text,
    created_at      timestamptz NOT NULL DEFAULT pg_catalog.now(),
    -- The writing transaction (top level): the worker reads an event once
    -- that transaction is visible in its snapshot.  0: never read (the
    -- event was settled when written, as pings and events from before 0.3.0).
    txid            xid8 NOT NULL DEFAULT pg_catalog.pg_current_xact_id()
);
-- Most events have no idempotency key: index only those that do.
CREATE UNIQUE INDEX events_idempotency_key_idx ON webhook.events (idempotency_key)
    WHERE idempotency_key IS NOT NULL;
-- The worker reads events in (txid, id) order, a window of transactions at a time.
CREATE INDEX events_txid_idx ON webhook.events (txid, id);
COMMENT ON TABLE webhook.events IS 'one row per event; id is the webhook-id header; the body sent is webhook._event_body(event_type, payload, created_at)';
COMMENT ON COLUMN webhook.events.txid IS 'the transaction that wrote the event; the delivery worker reads it once that transaction is visible';

-- Where the delivery worker is in the queue: every event whose transaction
-- is visible in done_snapshot has its delivery_state rows.  While a window
-- of events is read in pages, window_snapshot is its end and (after_txid,
-- after_id) the last event read.
CREATE TABLE webhook.queue_positions (
    worker          integer PRIMARY KEY,
    done_snapshot   pg_snapshot NOT NULL,
    window_snapshot pg_snapshot,
    after_txid      xid8 NOT NULL DEFAULT '0',
    after_id        uuid NOT NULL DEFAULT '00000000-0000-0000-0000-000000000000',
    updated_at      timestamptz NOT NULL DEFAULT pg_catalog.now()
);
COMMENT ON TABLE webhook.queue_positions IS 'the delivery worker''s place in webhook.events, as transaction snapshots';
-- Events written from here on are read by the worker; none before exist.
INSERT INTO webhook.queue_positions (worker, done_snapshot) VALUES (0, pg_catalog.pg_current_snapshot());

-- Is an event still unread by the delivery worker (it has no delivery_state
-- rows yet)?  Its transaction is not visible in the worker's done snapshot.
-- The range test lets the planner use events_txid_idx.
CREATE FUNCTION webhook._unread(txid xid8, done pg_snapshot)
RETURNS boolean LANGUAGE sql IMMUTABLE PARALLEL SAFE
RETURN txid >= pg_catalog.pg_snapshot_xmin(done) AND NOT pg_catalog.pg_visible_in_snapshot(txid, done);

-- The smallest event id (webhook.uuid_v7) made at a time: events with a
-- smaller id were made before it, so retention finds old events by their
-- primary key, with no index on created_at for every writer to maintain.
CREATE FUNCTION webhook._uuid_v7_floor(ts timestamptz)
RETURNS uuid LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
RETURN (pg_catalog.lpad(pg_catalog.to_hex(GREATEST(0, pg_catalog.floor(EXTRACT(epoch FROM ts) * 1000))::bigint), 12, '0')
        || '70008000000000000000')::uuid;

CREATE TABLE webhook.delivery_state (
    id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    event_id         uuid NOT NULL REFERENCES webhook.events (id) ON DELETE CASCADE,
    endpoint_id      bigint REFERENCES webhook.endpoints (id) ON DELETE SET NULL,
    status           text NOT NULL DEFAULT 'pending'
                     CONSTRAINT delivery_state_status_check
                     CHECK (status IN ('pending', 'succeeded', 'failed')),
    -- The worker counts on from here: bounded so that the count never
    -- overflows (src/delivery.h, WEBHOOK_MAX_ATTEMPTS).
    attempts         integer NOT NULL DEFAULT 0
                     CONSTRAINT delivery_state_attempts_check CHECK (attempts BETWEEN 0 AND 1000000),
    next_attempt_at  timestamptz NOT NULL DEFAULT pg_catalog.now(),
    claimed_at       timestamptz,
    last_attempt_at  timestamptz,
    last_status_code integer,
    last_error       text,
    created_at       timestamptz NOT NULL DEFAULT pg_catalog.now(),
    completed_at     timestamptz
);
COMMENT ON TABLE webhook.delivery_state IS 'one row per (event, endpoint) the worker has read: the state of delivering that event there (read webhook.deliveries)';
COMMENT ON COLUMN webhook.delivery_state.claimed_at IS 'set while a delivery worker has the request in flight; the claim lapses after the endpoint''s timeout plus 30 s';

-- How long a delivery worker's claim lasts: the endpoint's timeout plus a
-- margin.  Claims and the worker's next-due query share this one rule; in
-- floating point, so that no timeout_ms a row may hold can overflow it.
CREATE FUNCTION webhook._claim_lease(timeout_ms integer)
RETURNS interval LANGUAGE sql IMMUTABLE PARALLEL SAFE
RETURN pg_catalog.make_interval(secs => (pg_catalog.float8(timeout_ms) + 30000) / 1000);

-- The worker claims due deliveries per endpoint, and sleeps until the earliest
-- one.  Claiming changes no indexed column, so it is a HOT update: leave room.
ALTER TABLE webhook.delivery_state SET (fillfactor = 80);
-- Dead index entries of finished deliveries slow every claim until vacuumed:
-- vacuum this queue table after a fixed number of changes, not a fraction.
ALTER TABLE webhook.delivery_state SET (autovacuum_vacuum_scale_factor = 0, autovacuum_vacuum_threshold = 20000,
                                        autovacuum_vacuum_insert_scale_factor = 0, autovacuum_vacuum_insert_threshold = 50000,
                                        autovacuum_vacuum_cost_delay = 0);
CREATE INDEX delivery_state_pending_by_endpoint_idx ON webhook.delivery_state (endpoint_id, next_attempt_at)
    WHERE status = 'pending';
CREATE INDEX delivery_state_event_idx ON webhook.delivery_state (event_id);
-- Ordered endpoints take their oldest pending delivery first.
CREATE INDEX delivery_state_pending_in_order_idx ON webhook.delivery_state (endpoint_id, id)
    WHERE status = 'pending';

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
COMMENT ON COLUMN webhook.delivery_log.error_class IS 'why the attempt failed (NULL: it succeeded), a name that stays the same across versions: one of webhook.error_classes()';
-- The error classes with their meaning, from the table the worker itself
-- uses (src/schedule.c): the one list there is.
CREATE FUNCTION webhook.error_classes(OUT error_class text, OUT meaning text)
RETURNS SETOF record LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE ROWS 16
AS 'MODULE_PATHNAME', 'webhook_error_classes';
COMMENT ON COLUMN webhook.delivery_log.delivery_id IS 'the delivery attempted; a history row, so no foreign key: retention deletes log rows with their delivery';
COMMENT ON COLUMN webhook.delivery_log.endpoint_id IS 'the endpoint at the time; kept after the endpoint is deleted';

CREATE INDEX delivery_log_delivery_idx ON webhook.delivery_log (delivery_id);
CREATE INDEX delivery_log_attempted_at_idx ON webhook.delivery_log (attempted_at);

-- The delivery worker's running account of each endpoint's health, kept
-- apart from webhook.endpoints so that users' rows are not rewritten.
CREATE TABLE webhook.endpoint_state (
    endpoint_id          bigint PRIMARY KEY REFERENCES webhook.endpoints (id) ON DELETE CASCADE,
    failing_since        timestamptz,
    consecutive_failures integer NOT NULL DEFAULT 0
                         CONSTRAINT endpoint_state_consecutive_failures_check CHECK (consecutive_failures >= 0),
    last_success_at      timestamptz,
    last_failure_at      timestamptz,
    last_error           text
);
COMMENT ON TABLE webhook.endpoint_state IS 'per-endpoint failure streak, maintained by the delivery worker';

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
-- Runs as the extension's owner: a role allowed to DELETE endpoints need not
-- be allowed to write webhook.delivery_state.
CREATE FUNCTION webhook._endpoints_before_delete()
RETURNS trigger LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
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

------------------------------------------------------------------------------
-- Reading the queue: committed events by transaction snapshots
------------------------------------------------------------------------------
-- Applications' transactions only INSERT into webhook.events.  The delivery
-- worker reads the events whose transactions became visible since its last
-- read, as PgQ's consumers do: those visible in a new snapshot (the window's
-- end) and not in the done one.  No event is skipped when a transaction
-- commits late with an older id: its txid stays in the done snapshot's
-- in-progress list until it ends, and then falls into the next window.

-- The events of a window, in (txid, id) order, after a cursor: at most n.
-- Below xmax(done), only done's in-progress txids are unread ("late"); from
-- xmax(done) on, every txid visible in cur is.  Both arms are range or
-- equality scans of events_txid_idx.  The range arm starts at the cursor
-- when it is past xmax(done), else at xmax(done): one bound each, so that
-- the index scan starts there (given both, it started at the cursor, and a
-- closed window's cursor, (0, nil), made every empty read walk all the
-- settled events).  The parameters pick the arm once per call.
CREATE FUNCTION webhook._window_events(done pg_snapshot, cur pg_snapshot, after_txid xid8, after_id uuid, n integer)
RETURNS TABLE (txid xid8, id uuid, event_type text) LANGUAGE sql STABLE
AS $$
SELECT w.txid, w.id, w.event_type FROM (
    (SELECT e.txid, e.id, e.event_type FROM webhook.events e
      WHERE e.txid = ANY (ARRAY(SELECT pg_catalog.pg_snapshot_xip(done)))
        AND (e.txid, e.id) > (after_txid, after_id)
        AND pg_catalog.pg_visible_in_snapshot(e.txid, cur)
      ORDER BY e.txid, e.id LIMIT n)
    UNION ALL
    (SELECT e.txid, e.id, e.event_type FROM webhook.events e
      WHERE after_txid >= pg_catalog.pg_snapshot_xmax(done)
        AND (e.txid, e.id) > (after_txid, after_id) AND e.txid < pg_catalog.pg_snapshot_xmax(cur)
        AND pg_catalog.pg_visible_in_snapshot(e.txid, cur)
      ORDER BY e.txid, e.id LIMIT n)
    UNION ALL
    (SELECT e.txid, e.id, e.event_type FROM webhook.events e
      WHERE after_txid < pg_catalog.pg_snapshot_xmax(done)
        AND e.txid >= pg_catalog.pg_snapshot_xmax(done) AND e.txid < pg_catalog.pg_snapshot_xmax(cur)
        AND pg_catalog.pg_visible_in_snapshot(e.txid, cur)
      ORDER BY e.txid, e.id LIMIT n)
) w
ORDER BY w.txid, w.id LIMIT n
$$;

-- Read the next page of new events (at most page events) into pending
-- delivery_state rows, one per active endpoint subscribed to each, in queue
-- order (ordered endpoints deliver by id), and move the position on.  The
-- delivery worker runs it as the first statement of a transaction: the
-- window's end is then a snapshot in which the worker's own transaction is
-- not running yet, and which sees every transaction committed so far.
-- A short page closes the window (done := its end); a full one keeps it open
-- with a cursor, so the next call reads on from there.  Returns the number
-- of events read.
CREATE FUNCTION webhook._read_events(page integer)
RETURNS integer LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    pos webhook.queue_positions;
    v_cur pg_snapshot;
    v_read integer;
    v_last_txid xid8;
    v_last_id uuid;
BEGIN
    SELECT * INTO pos FROM webhook.queue_positions p WHERE p.worker = 0 FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'webhook.queue_positions has no row for worker 0'
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  HINT = 'Do not delete rows of webhook.queue_positions; INSERT INTO webhook.queue_positions (worker, done_snapshot) VALUES (0, pg_current_snapshot()) starts reading from now.';
    END IF;
    v_cur := coalesce(pos.window_snapshot, pg_current_snapshot());
    IF EXISTS (SELECT 1 FROM webhook.restored_events) THEN
        PERFORM webhook._settle_restored();
    END IF;

    WITH page AS MATERIALIZED (
        SELECT w.txid, w.id, w.event_type
          FROM webhook._window_events(pos.done_snapshot, v_cur, pos.after_txid, pos.after_id, page) w
    ), made AS (
        INSERT INTO webhook.delivery_state (event_id, endpoint_id)
        SELECT p.id, ep.id
          FROM page p JOIN webhook.endpoints ep
            ON ep.active AND webhook._subscribed(ep.event_types, p.event_type)
         ORDER BY p.txid, p.id, ep.id
    )
    SELECT (SELECT count(*) FROM page), l.txid, l.id INTO v_read, v_last_txid, v_last_id
      FROM (SELECT 1) one
      LEFT JOIN (SELECT p.txid, p.id FROM page p ORDER BY p.txid DESC, p.id DESC LIMIT 1) l ON true;

    IF v_read >= page THEN
        UPDATE webhook.queue_positions p
           SET window_snapshot = v_cur, after_txid = v_last_txid, after_id = v_last_id, updated_at = now()
         WHERE p.worker = 0;
    ELSIF v_read > 0 OR pos.window_snapshot IS NOT NULL
          OR pg_snapshot_xmin(v_cur) <> pg_snapshot_xmin(pos.done_snapshot)
          OR pg_snapshot_xmax(v_cur) <> pg_snapshot_xmax(pos.done_snapshot) THEN
        UPDATE webhook.queue_positions p
           SET done_snapshot = v_cur, window_snapshot = NULL, after_txid = '0',
               after_id = '00000000-0000-0000-0000-000000000000', updated_at = now()
         WHERE p.worker = 0;
    END IF;
    RETURN v_read;
END;
$$;

------------------------------------------------------------------------------
-- Restored queues: pg_dump and restore, into this cluster or another
------------------------------------------------------------------------------
-- A restored event keeps the txid its source database gave it, which means
-- nothing here: read against this database's snapshots it would be skipped
-- (lost, if it was still unread when dumped) or read again (sent twice).
-- So a restore's rows are set aside as they arrive: an event row whose
-- txid is neither 0 nor the inserting transaction's is kept with txid 0 (never
-- read by windows) and its source txid noted in webhook.restored_events;
-- the dumped position, arriving while this database has its own, goes to
-- webhook.restored_positions.  The worker then settles them against that
-- position (webhook._settle_restored): events the source had read keep the
-- delivery_state rows that came with them, events it had not read get theirs
-- now.  Events written by send() and watches come from C and never fire
-- these triggers.
CREATE TABLE webhook.restored_events (
    event_id uuid PRIMARY KEY,
    txid     xid8 NOT NULL
);
COMMENT ON TABLE webhook.restored_events IS 'restored events waiting to be settled against their source''s position (webhook._settle_restored)';
CREATE TABLE webhook.restored_positions (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    done_snapshot   pg_snapshot NOT NULL,
    window_snapshot pg_snapshot,
    after_txid      xid8 NOT NULL,
    after_id        uuid NOT NULL,
    restored_at     timestamptz NOT NULL DEFAULT pg_catalog.now()
);
COMMENT ON TABLE webhook.restored_positions IS 'positions that came with a restore: where the source database''s worker was';

-- A row of another transaction's making (a restore's COPY): note its
-- source txid and keep it out of every window.
CREATE FUNCTION webhook._events_restored()
RETURNS trigger LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    INSERT INTO webhook.restored_events (event_id, txid) VALUES (NEW.id, NEW.txid)
    ON CONFLICT (event_id) DO UPDATE SET txid = EXCLUDED.txid;
    NEW.txid := '0';
    PERFORM webhook._wake_worker_at_commit();
    RETURN NEW;
END;
$$;
CREATE TRIGGER events_restored BEFORE INSERT ON webhook.events
    FOR EACH ROW WHEN (NEW.txid OPERATOR(pg_catalog.<>) '0'::pg_catalog.xid8
                       AND NEW.txid OPERATOR(pg_catalog.<>) pg_catalog.pg_current_xact_id())
    EXECUTE FUNCTION webhook._events_restored();
-- Also under session_replication_role = replica (pg_restore does not set
-- it; --disable-triggers, for data-only restores, turns it off: README).
ALTER TABLE webhook.events ENABLE ALWAYS TRIGGER events_restored;

-- Does a worker have its position row?  (The restore trigger's test.)
CREATE FUNCTION webhook._has_position(worker integer)
RETURNS boolean LANGUAGE sql STABLE
RETURN EXISTS (SELECT 1 FROM webhook.queue_positions p WHERE p.worker = _has_position.worker);

-- A position for a worker that has one already (a restore's COPY, after
-- CREATE EXTENSION made this database's): set it aside for settling.
CREATE FUNCTION webhook._positions_restored()
RETURNS trigger LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    INSERT INTO webhook.restored_positions (done_snapshot, window_snapshot, after_txid, after_id)
    VALUES (NEW.done_snapshot, NEW.window_snapshot, NEW.after_txid, NEW.after_id);
    PERFORM webhook._wake_worker_at_commit();
    RETURN NULL;
END;
$$;
CREATE TRIGGER positions_restored BEFORE INSERT ON webhook.queue_positions
    FOR EACH ROW WHEN (webhook._has_position(NEW.worker))
    EXECUTE FUNCTION webhook._positions_restored();
ALTER TABLE webhook.queue_positions ENABLE ALWAYS TRIGGER positions_restored;

-- Settle restored events against the latest restored position: those the
-- source had not read get their delivery_state rows now, in queue order;
-- those it had read already have theirs.  Without a restored position (not
-- restored yet, or a dump from before 0.4.0, which had none) they wait.
-- Run by the worker's read; returns the number of delivery rows made.
CREATE FUNCTION webhook._settle_restored()
RETURNS integer LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    pos webhook.restored_positions;
    v_made integer;
BEGIN
    SELECT * INTO pos FROM webhook.restored_positions ORDER BY id DESC LIMIT 1;
    IF NOT FOUND THEN
        RETURN 0;
    END IF;
    WITH settled AS (
        DELETE FROM webhook.restored_events r RETURNING r.event_id, r.txid
    ), unread AS (
        SELECT s.event_id, s.txid, e.event_type
          FROM settled s JOIN webhook.events e ON e.id = s.event_id
         WHERE NOT pg_visible_in_snapshot(s.txid, pos.done_snapshot)
           AND NOT (pos.window_snapshot IS NOT NULL AND pg_visible_in_snapshot(s.txid, pos.window_snapshot)
                    AND (s.txid, s.event_id) <= (pos.after_txid, pos.after_id))
    )
    INSERT INTO webhook.delivery_state (event_id, endpoint_id)
    SELECT u.event_id, ep.id
      FROM unread u JOIN webhook.endpoints ep
        ON ep.active AND webhook._subscribed(ep.event_types, u.event_type)
     ORDER BY u.txid, u.event_id, ep.id;
    GET DIAGNOSTICS v_made = ROW_COUNT;
    -- Used up: rows a later restore sets aside come with their own position.
    DELETE FROM webhook.restored_positions r WHERE r.id <= pos.id;
    RETURN v_made;
END;
$$;

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

-- Refuse an event type that a caller may not send: not a valid name, one of
-- the extension's own ("webhook.*"), or (when strict) not in the catalogue.
-- The extension's own events skip these checks (see webhook._enqueue), so
-- strict mode never refuses them, whatever the catalogue holds.  send() and
-- the watch trigger run the same C check directly (src/enqueue.c).
CREATE FUNCTION webhook._check_event_type(event_type text)
RETURNS void LANGUAGE C STABLE
AS 'MODULE_PATHNAME', 'webhook_check_event_type';

-- Enqueue one checked event inside the caller's transaction, by SQL: one
-- events row (once per idempotency key), nothing per endpoint: the delivery
-- worker matches the endpoints when it reads the event after the commit.
-- send() comes here for events with an idempotency key (the rest it writes
-- from C); the extension's own events come here directly.
CREATE FUNCTION webhook._enqueue(event_type text, payload jsonb, idempotency_key text)
RETURNS uuid LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_column
DECLARE
    v_event_id uuid;
BEGIN
    IF _enqueue.idempotency_key IS NOT NULL THEN
        SELECT e.id INTO v_event_id FROM webhook.events e WHERE e.idempotency_key = _enqueue.idempotency_key;
        IF FOUND THEN
            RETURN v_event_id;
        END IF;
    END IF;

    INSERT INTO webhook.events AS e (event_type, payload, idempotency_key)
    VALUES (_enqueue.event_type, _enqueue.payload, _enqueue.idempotency_key)
    ON CONFLICT (idempotency_key) WHERE idempotency_key IS NOT NULL DO NOTHING
    RETURNING e.id INTO v_event_id;

    IF v_event_id IS NULL THEN
        -- A concurrent transaction committed the same idempotency key first.
        SELECT e.id INTO v_event_id FROM webhook.events e WHERE e.idempotency_key = _enqueue.idempotency_key;
        RETURN v_event_id;
    END IF;
    PERFORM webhook._wake_worker_at_commit();
    RETURN v_event_id;
END;
$$;

-- Enqueue one event inside the caller's transaction: it exists, and is
-- delivered, only if that transaction commits.  Written in C (src/enqueue.c):
-- the row goes into webhook.events without a planned INSERT, as COPY writes.
-- It names no object by search_path (every name it uses is qualified), so it
-- sets none: SECURITY DEFINER for webhook._enqueue and the catalogue.
CREATE FUNCTION webhook.send(event_type text, payload jsonb, idempotency_key text DEFAULT NULL)
RETURNS uuid LANGUAGE C VOLATILE
SECURITY DEFINER
AS 'MODULE_PATHNAME', 'webhook_send';
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
    updated_at      timestamptz NOT NULL DEFAULT pg_catalog.now()
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
                              exclude_columns text[] DEFAULT NULL)
RETURNS void LANGUAGE C VOLATILE
AS 'MODULE_PATHNAME', 'webhook_watch';
COMMENT ON FUNCTION webhook.watch(regclass, text, text[], text[], text, text[]) IS 'emit <prefix>.created/.updated/.deleted events from row changes of a table';

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
       w.created_at, w.updated_at
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
        PERFORM webhook._raise_no_endpoint(endpoint_id);
    END IF;
    IF NOT v_active THEN
        RAISE EXCEPTION 'endpoint % is not active', endpoint_id
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  HINT = 'UPDATE webhook.endpoints SET active = true first.';
    END IF;
    v_payload := jsonb_build_object('endpoint_id', endpoint_id, 'message', 'ping');
    -- txid 0: the worker never reads the ping as a new event (which would
    -- go to every endpoint subscribed to "*"); its one delivery is made here.
    INSERT INTO webhook.events (event_type, payload, created_at, txid)
    VALUES ('webhook.ping', v_payload, v_now, '0')
    RETURNING id INTO v_event_id;
    INSERT INTO webhook.delivery_state (event_id, endpoint_id) VALUES (v_event_id, ping.endpoint_id)
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
    SELECT d.status, d.endpoint_id INTO v_status, v_endpoint FROM webhook.delivery_state d
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
    UPDATE webhook.delivery_state d
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
        PERFORM webhook._raise_no_endpoint(endpoint_id);
    END IF;
    INSERT INTO webhook.delivery_state (event_id, endpoint_id)
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
        PERFORM webhook._raise_no_endpoint(endpoint_id);
    END IF;
    UPDATE webhook.delivery_state d
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
    -- Event ids grow with time (webhook.uuid_v7), and a delivery finishes
    -- after its event was made: old events lead to the deliveries that may be
    -- old enough.
    WITH doomed AS (
        SELECT d.id FROM webhook.events e
          JOIN webhook.delivery_state d ON d.event_id = e.id
         WHERE e.id < webhook._uuid_v7_floor(greatest(succeeded_before, failed_before))
           AND e.created_at < greatest(succeeded_before, failed_before)
           AND d.status <> 'pending'
           AND d.completed_at < CASE WHEN d.status = 'succeeded' THEN succeeded_before ELSE failed_before END
         LIMIT batch
         FOR UPDATE OF d SKIP LOCKED
    ), log AS (
        DELETE FROM webhook.delivery_log l USING doomed WHERE l.delivery_id = doomed.id
    )
    DELETE FROM webhook.delivery_state d USING doomed WHERE d.id = doomed.id;
    GET DIAGNOSTICS v_deliveries = ROW_COUNT;

    WITH doomed AS (
        SELECT e.id FROM webhook.events e
         WHERE e.id < webhook._uuid_v7_floor(least(succeeded_before, failed_before))
           AND e.created_at < least(succeeded_before, failed_before)
           AND NOT EXISTS (SELECT 1 FROM webhook.delivery_state d WHERE d.event_id = e.id)
           AND NOT webhook._unread(e.txid, (SELECT p.done_snapshot FROM webhook.queue_positions p WHERE p.worker = 0))
           AND NOT EXISTS (SELECT 1 FROM webhook.restored_events r WHERE r.event_id = e.id)
         LIMIT batch
         FOR UPDATE SKIP LOCKED
    )
    DELETE FROM webhook.events e USING doomed WHERE e.id = doomed.id;
    GET DIAGNOSTICS v_events = ROW_COUNT;
    RETURN v_deliveries + v_events;
END;
$$;

-- Deactivate endpoints whose deliveries have all failed for longer than a
-- period, and announce each with a webhook.endpoint.disabled event.  Each in
-- its own subtransaction: one that cannot be updated (a lock, a row a newer
-- check refuses) stays active with a warning, and the others are disabled.
CREATE FUNCTION webhook._disable_failing_endpoints(failing_for interval)
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

------------------------------------------------------------------------------
-- Health, for people in psql
------------------------------------------------------------------------------

-- Every delivery: the worker's delivery_state rows, and the deliveries of
-- events it has not read yet (committed a moment ago, or written by the
-- current transaction), as pending rows with no id yet, to the endpoints
-- that match now.  The worker matches endpoints when it reads the event.
CREATE VIEW webhook.deliveries AS
SELECT s.id, s.event_id, s.endpoint_id, s.status, s.attempts, s.next_attempt_at, s.claimed_at,
       s.last_attempt_at, s.last_status_code, s.last_error, s.created_at, s.completed_at
  FROM webhook.delivery_state s
UNION ALL
SELECT NULL::bigint, e.id, ep.id, 'pending'::text, 0, e.created_at, NULL::timestamptz,
       NULL::timestamptz, NULL::integer, NULL::text, e.created_at, NULL::timestamptz
  FROM webhook.queue_positions p
  JOIN webhook.events e ON webhook._unread(e.txid, p.done_snapshot)
  JOIN webhook.endpoints ep ON ep.active AND webhook._subscribed(ep.event_types, e.event_type)
 WHERE p.worker = 0
   AND NOT EXISTS (SELECT 1 FROM webhook.delivery_state s
                    WHERE s.event_id = e.id AND s.endpoint_id = ep.id);
COMMENT ON VIEW webhook.deliveries IS 'one row per (event, endpoint): the state of delivering that event there; id is NULL until the worker has read the event';

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

-- The SQL API that needs no secret, and the pure checks it relies on: the
-- triggers on webhook.endpoints and webhook.event_types run as the writing
-- role, watch() as the table's owner, verify() and the operations (ping,
-- replay, recover, rotate_secret) as their caller.  Nothing here
-- reads, encrypts or decrypts a stored value.
GRANT EXECUTE ON FUNCTION webhook.generate_secret(text), webhook.uuid_v7(),
    webhook.sign(text, text, bigint, text, text, text), webhook.verify(text, jsonb, text, interval),
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
-- The pure functions the webhook.deliveries view calls, run as its reader.
GRANT EXECUTE ON FUNCTION webhook._unread(xid8, pg_snapshot), webhook._subscribed(text[], text),
    webhook._type_patterns(text)
    TO PUBLIC;
-- Request formats (issue 15): the checks of the endpoints' format columns,
-- which the endpoints triggers and CHECK constraints run as the writing role.
GRANT EXECUTE ON FUNCTION webhook._is_request_format(text), webhook._is_signature_encoding(text),
    webhook._check_endpoint_format(text), webhook._check_endpoint_signature_encoding(text),
    webhook._check_endpoint_cloudevents_source(text)
    TO PUBLIC;
-- A table's owner may watch it: watch() and unwatch() check ownership and
-- write the watch table themselves; nobody else writes it, and row level
-- security shows each owner their own watches.
GRANT EXECUTE ON FUNCTION webhook.watch(regclass, text, text[], text[], text, text[]),
    webhook.unwatch(regclass), webhook._watch_trigger() TO PUBLIC;
GRANT SELECT ON webhook.table_watches TO PUBLIC;
GRANT SELECT ON webhook.watches TO PUBLIC;

-- Endpoints, the catalogue and the queue are user data: pg_dump keeps them.
-- (Watches travel in their triggers' arguments: see webhook._watch_ddl_end.)
SELECT pg_catalog.pg_extension_config_dump('webhook.endpoints', '');
SELECT pg_catalog.pg_extension_config_dump('webhook.event_types', $$WHERE name NOT LIKE 'webhook.%'$$);
SELECT pg_catalog.pg_extension_config_dump('webhook.events', '');
SELECT pg_catalog.pg_extension_config_dump('webhook.delivery_state', '');
SELECT pg_catalog.pg_extension_config_dump('webhook.delivery_log', '');
SELECT pg_catalog.pg_extension_config_dump('webhook.endpoint_state', '');
-- The worker's position too: a restore sets it aside, and the worker
-- settles the restored events against it (webhook._settle_restored).
SELECT pg_catalog.pg_extension_config_dump('webhook.queue_positions', '');
-- Their identity sequences too, so that new rows after a restore do not
-- collide with restored ones.
SELECT pg_catalog.pg_extension_config_dump(pg_catalog.pg_get_serial_sequence('webhook.endpoints', 'id')::pg_catalog.regclass, '');
SELECT pg_catalog.pg_extension_config_dump(pg_catalog.pg_get_serial_sequence('webhook.delivery_state', 'id')::pg_catalog.regclass, '');
SELECT pg_catalog.pg_extension_config_dump(pg_catalog.pg_get_serial_sequence('webhook.delivery_log', 'id')::pg_catalog.regclass, '');

-- Start delivering in this database once CREATE EXTENSION commits.
SELECT webhook._start_worker_at_commit();
