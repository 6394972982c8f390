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
