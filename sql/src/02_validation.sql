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

-- The one payload-size rule, for send() and every row of a watch: true, or
-- the error of a payload above webhook.max_payload_bytes (from_watch picks
-- the hint).  src/event_checks.c holds the rule.
CREATE FUNCTION webhook._check_payload_size(bytes bigint, from_watch boolean)
RETURNS boolean LANGUAGE C STABLE STRICT PARALLEL SAFE
AS 'MODULE_PATHNAME', 'webhook_check_payload_size';

-- Does a list of subscription patterns take this event type?  One overlap,
-- so the planner inlines it.
CREATE FUNCTION webhook._subscribed(patterns text[], event_type text)
RETURNS boolean LANGUAGE sql IMMUTABLE PARALLEL SAFE
RETURN patterns OPERATOR(pg_catalog.&&) webhook._type_patterns(event_type);
