-- webhook 0.7.0 -> 0.8.0: the delivery worker reads new events in C.
--  * webhook._read_events is src/reader.c, which the worker calls directly:
--    the same statements as saved plans, without the two PL/pgSQL layers
--    (and their search_path settings) that cost an idle worker more than
--    the statements themselves at every wake-up.
--  * webhook._fan_out, its inner function, is gone.
-- Nothing a user reads or writes changes.

CREATE OR REPLACE FUNCTION webhook._read_events(page integer)
RETURNS integer LANGUAGE C VOLATILE STRICT
SET search_path = pg_catalog, pg_temp
AS 'MODULE_PATHNAME', 'webhook_read_events';

DROP FUNCTION webhook._fan_out(pg_snapshot, pg_snapshot, xid8, uuid, integer, boolean);
