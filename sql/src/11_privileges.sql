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
-- The queue tables' default for gen, evaluated as whoever writes a row.
GRANT EXECUTE ON FUNCTION webhook._current_generation() TO PUBLIC;
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
-- Content filters (issue 14): the check the endpoints trigger and CHECK run.
GRANT EXECUTE ON FUNCTION webhook._is_jsonpath_predicate(jsonpath), webhook._check_endpoint_filter(jsonpath),
    webhook._passes_filter(jsonpath, jsonb), webhook._filter_verdict(jsonpath, jsonb)
    TO PUBLIC;
-- Citus (issue 16): the endpoints' guard on worker nodes runs as the writer.
GRANT EXECUTE ON FUNCTION webhook._citus_role() TO PUBLIC;
-- A table's owner may watch it: watch() and unwatch() check ownership and
-- write the watch table themselves; nobody else writes it, and row level
-- security shows each owner their own watches.
GRANT EXECUTE ON FUNCTION webhook.watch(regclass, text, text[], text[], text, text[], text[]),
    webhook.unwatch(regclass), webhook._watch_trigger() TO PUBLIC;
GRANT SELECT ON webhook.table_watches TO PUBLIC;
GRANT SELECT ON webhook.watches TO PUBLIC;
