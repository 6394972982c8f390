-- webhook 0.3.0 -> 0.4.0: events written from C, several workers per
-- database (issue 13, second step).
--
-- send() and the watch trigger write webhook.events rows from C
-- (src/enqueue.c), as COPY does: no PL/pgSQL call, no jsonb[] of the
-- statement's payloads, no planned INSERT per statement.  The rows are the
-- same; the functions that only the old SQL path used go.
--
-- The library of this version still writes a 0.3.0 schema's events through
-- that schema's own functions until this script runs (src/compat.c).

\echo Use "ALTER EXTENSION webhook UPDATE TO '0.4.0'" to load this file. \quit

CREATE OR REPLACE FUNCTION webhook._check_event_type(event_type text)
RETURNS void LANGUAGE C STABLE
AS 'MODULE_PATHNAME', 'webhook_check_event_type';

-- SECURITY DEFINER and the grants stay; the SET search_path goes, as in a
-- fresh install (the C function names every object it uses in full).
CREATE OR REPLACE FUNCTION webhook.send(event_type text, payload jsonb, idempotency_key text DEFAULT NULL)
RETURNS uuid LANGUAGE C VOLATILE
SECURITY DEFINER
AS 'MODULE_PATHNAME', 'webhook_send';

DROP FUNCTION webhook._enqueue_many(text, jsonb[]);
DROP FUNCTION webhook._raise_null_payload();
DROP FUNCTION webhook._check_payload_size(bigint, boolean);

-- webhook.workers: which worker delivers an endpoint's events.
CREATE FUNCTION webhook._worker_of(endpoint_id bigint, workers integer)
RETURNS integer LANGUAGE sql IMMUTABLE PARALLEL SAFE
RETURN pg_catalog.abs(endpoint_id % GREATEST(workers, 1))::integer;
REVOKE ALL ON FUNCTION webhook._worker_of(bigint, integer) FROM PUBLIC;
