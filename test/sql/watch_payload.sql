-- The payloads and ordering keys that the watch trigger makes in C (a watch
-- with no condition, src/watch_payload.c) are those of its payload query
-- (any watch with a condition) to the byte: the same changes go into a
-- table of each kind, for keys of many types, excluded, dropped and
-- generated columns, explicit keys and none, updates that change a
-- column, only an excluded one, nothing, or the key.
-- Everything runs in a transaction that is rolled back.
\set SHOW_CONTEXT never

BEGIN;
CREATE SCHEMA regress_wp;
CREATE TYPE regress_wp.mood AS ENUM ('sad', 'happy');
CREATE DOMAIN regress_wp.positive AS integer CHECK (VALUE > 0);

-- One pair of tables per key type: _c takes the C path, _q the query.
CREATE TABLE regress_wp.keys (n integer, type text, v1 text, v2 text);
INSERT INTO regress_wp.keys VALUES
    (1, 'integer', '1', '2'), (2, 'bigint', '9007199254740993', '-4'),
    (3, 'boolean', 'true', 'false'), (4, 'text', 'a:b', 'ü "quoted"'),
    (5, 'varchar(10)', 'v1', 'v2'), (6, 'char(4)', 'ab', 'abcd'),
    (7, 'numeric', '1.50', '-0.000'), (8, 'uuid', '0190a0c4-0000-7000-8000-000000000001',
                                                  '0190a0c4-0000-7000-8000-000000000002'),
    (9, 'timestamptz', '2026-01-02 03:04:05.678+00', 'infinity'), (10, 'date', '2026-02-28', '1999-12-31'),
    (11, 'regress_wp.mood', 'sad', 'happy'), (12, 'regress_wp.positive', '7', '8'),
    (13, 'double precision', '1e300', '0.1'), (14, 'jsonb', '{"b": 1, "a": [true, null]}', '"s"'),
    (15, 'integer[]', '{1,2}', '{}'), (16, 'bytea', '\x00ff', ''), (17, 'inet', '10.0.0.1/8', '::1');

DO $$
DECLARE
    k record;
BEGIN
    FOR k IN SELECT * FROM regress_wp.keys LOOP
        EXECUTE format('CREATE TABLE regress_wp.t%s_c (k %s PRIMARY KEY, gone integer, note text, secret text,'
                       ' doubled numeric GENERATED ALWAYS AS (length(note) * 2) STORED)', k.n, k.type);
        EXECUTE format('ALTER TABLE regress_wp.t%s_c DROP COLUMN gone', k.n);
        EXECUTE format('CREATE TABLE regress_wp.t%s_q (LIKE regress_wp.t%s_c INCLUDING ALL)', k.n, k.n);
        PERFORM webhook.watch(format('regress_wp.t%s_c', k.n)::regclass, event_prefix => 'wp.c',
                              exclude_columns => CASE WHEN k.n % 2 = 0 THEN '{secret}'::text[] END);
        PERFORM webhook.watch(format('regress_wp.t%s_q', k.n)::regclass, event_prefix => 'wp.q', condition => 'true',
                              exclude_columns => CASE WHEN k.n % 2 = 0 THEN '{secret}'::text[] END);
        FOREACH k.type IN ARRAY ARRAY['c', 'q'] LOOP
            EXECUTE format('INSERT INTO regress_wp.t%1$s_%2$s (k, note, secret) VALUES (%3$L, %5$L, %6$L), (%4$L, NULL, NULL)',
                           k.n, k.type, k.v1, k.v2, E'tab\there \u00e9 "q" \\ ', 's3cret');
            EXECUTE format('UPDATE regress_wp.t%1$s_%2$s SET note = coalesce(note, %3$L) || %4$L', k.n, k.type, 'n', '!');
            EXECUTE format('UPDATE regress_wp.t%1$s_%2$s SET secret = %3$L', k.n, k.type, 'other');
            EXECUTE format('UPDATE regress_wp.t%1$s_%2$s SET note = note', k.n, k.type);
            EXECUTE format('DELETE FROM regress_wp.t%1$s_%2$s WHERE k = %3$L', k.n, k.type, k.v2);
            EXECUTE format('UPDATE regress_wp.t%1$s_%2$s SET k = %3$L WHERE k = %4$L', k.n, k.type, k.v2, k.v1);
        END LOOP;
    END LOOP;
END;
$$;

-- A key of its own column, a key of two columns, no key at all, a table
-- without a primary key, a key whose cast to text is a function of the
-- user's (called on NULL too, and returning NULL for some values), and a
-- partitioned table whose partition has its columns in another order.
CREATE TYPE regress_wp.pair AS (x integer, y integer);
CREATE FUNCTION regress_wp.pair_text(p regress_wp.pair) RETURNS text LANGUAGE plpgsql IMMUTABLE
AS $$ BEGIN RETURN CASE WHEN p IS NULL THEN 'none' WHEN p.x = 0 THEN NULL ELSE p.x || '/' || p.y END; END; $$;
CREATE CAST (regress_wp.pair AS text) WITH FUNCTION regress_wp.pair_text(regress_wp.pair);
CREATE TABLE regress_wp.u_c (a integer, b text, c boolean, p regress_wp.pair);
CREATE TABLE regress_wp.u_q (LIKE regress_wp.u_c);
CREATE TABLE regress_wp.v_c (a integer, b text, c boolean) PARTITION BY LIST (c);
CREATE TABLE regress_wp.v_c1 (c boolean, gone integer, b text, a integer);
ALTER TABLE regress_wp.v_c1 DROP COLUMN gone;
ALTER TABLE regress_wp.v_c ATTACH PARTITION regress_wp.v_c1 FOR VALUES IN (true, false);
CREATE TABLE regress_wp.v_c2 PARTITION OF regress_wp.v_c DEFAULT;
CREATE TABLE regress_wp.v_q (a integer, b text, c boolean) PARTITION BY LIST (c);
CREATE TABLE regress_wp.v_q1 PARTITION OF regress_wp.v_q FOR VALUES IN (true, false);
CREATE TABLE regress_wp.v_q2 PARTITION OF regress_wp.v_q DEFAULT;
SELECT webhook.watch('regress_wp.u_c', event_prefix => 'wp.c', ordering_key => '{p}'),
       webhook.watch('regress_wp.u_q', event_prefix => 'wp.q', ordering_key => '{p}', condition => 'true'),
       webhook.watch('regress_wp.v_c', event_prefix => 'wp.c', ordering_key => '{b}'),
       webhook.watch('regress_wp.v_q', event_prefix => 'wp.q', ordering_key => '{b}', condition => 'true');
CREATE TABLE regress_wp.o_c (a integer, b text, c boolean);
CREATE TABLE regress_wp.o_q (LIKE regress_wp.o_c);
CREATE TABLE regress_wp.m_c (a integer, b text, c boolean);
CREATE TABLE regress_wp.m_q (LIKE regress_wp.m_c);
CREATE TABLE regress_wp.n_c (a integer PRIMARY KEY, b text, c boolean);
CREATE TABLE regress_wp.n_q (LIKE regress_wp.n_c INCLUDING ALL);
CREATE TABLE regress_wp.p_c (a integer, b text, c boolean);
CREATE TABLE regress_wp.p_q (LIKE regress_wp.p_c);
SELECT webhook.watch('regress_wp.o_c', event_prefix => 'wp.c', ordering_key => '{c}'),
       webhook.watch('regress_wp.o_q', event_prefix => 'wp.q', ordering_key => '{c}', condition => 'true'),
       webhook.watch('regress_wp.m_c', event_prefix => 'wp.c', ordering_key => '{b,a}'),
       webhook.watch('regress_wp.m_q', event_prefix => 'wp.q', ordering_key => '{b,a}', condition => 'true'),
       webhook.watch('regress_wp.n_c', event_prefix => 'wp.c', ordering_key => '{}'),
       webhook.watch('regress_wp.n_q', event_prefix => 'wp.q', ordering_key => '{}', condition => 'true'),
       webhook.watch('regress_wp.p_c', event_prefix => 'wp.c'),
       webhook.watch('regress_wp.p_q', event_prefix => 'wp.q', condition => 'true');
DO $$
DECLARE
    t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['o_c', 'o_q', 'm_c', 'm_q', 'n_c', 'n_q', 'p_c', 'p_q', 'u_c', 'u_q', 'v_c', 'v_q'] LOOP
        EXECUTE format('INSERT INTO regress_wp.%I (a, b, c) VALUES (1, %L, true), (2, NULL, NULL), (3, %L, false)',
                       t, 'x', 'y"z');
        IF t LIKE 'u_%' THEN
            EXECUTE format('UPDATE regress_wp.%I SET p = ROW(a - 1, a * 10)::regress_wp.pair WHERE a <> 2', t);
        END IF;
        EXECUTE format('UPDATE regress_wp.%I SET b = b || %L, c = NOT c', t, '+');
        EXECUTE format('DELETE FROM regress_wp.%I WHERE a <> 1', t);
    END LOOP;
END;
$$;

-- Each C event has its query twin: the same type suffix, the same payload
-- but for the table's name, the same key but for its prefix.
CREATE TEMP TABLE wp_events AS
SELECT split_part(event_type, '.', 2) AS path, split_part(event_type, '.', 3) AS op,
       payload ->> 'table' AS tbl, regexp_replace(payload ->> 'table', '_[cq]$', '') AS pair,
       payload, ordering_key
  FROM webhook.events WHERE event_type LIKE 'wp.%';
SELECT path, op, count(*) AS events FROM wp_events GROUP BY 1, 2 ORDER BY 1, 2;
-- What must match: all but the table's name, in the payload and the key.
CREATE TEMP VIEW wp_compared AS
SELECT path, pair, op, payload - 'table' AS payload,
       regexp_replace(ordering_key, '^regress_wp\.[a-z0-9]+_[cq]:', '') AS key
  FROM wp_events;
SELECT (SELECT count(*) FROM (SELECT pair, op, payload, key FROM wp_compared WHERE path = 'c'
                              EXCEPT ALL
                              SELECT pair, op, payload, key FROM wp_compared WHERE path = 'q') x) AS c_unmatched,
       (SELECT count(*) FROM (SELECT pair, op, payload, key FROM wp_compared WHERE path = 'q'
                              EXCEPT ALL
                              SELECT pair, op, payload, key FROM wp_compared WHERE path = 'c') x) AS q_unmatched;
-- Each names its own table, and its key starts with it.
SELECT count(*) FILTER (WHERE ordering_key NOT LIKE 'regress_wp.' || tbl || ':%') AS other_prefix,
       count(*) FILTER (WHERE ordering_key IS NULL) AS no_key,
       count(*) FILTER (WHERE payload ->> 'schema' <> 'regress_wp') AS other_schema
  FROM wp_events;
-- A sample of the C path's payloads and keys, as written.
SELECT op, payload, ordering_key FROM wp_events
 WHERE path = 'c' AND pair IN ('t3', 't6', 't17', 'o', 'u', 'v')
 ORDER BY pair, op, payload::text;
-- The C path is taken where it should be, and only there.
SET client_min_messages = debug2;
INSERT INTO regress_wp.t1_c (k) VALUES (100);
INSERT INTO regress_wp.t1_q (k) VALUES (100);
INSERT INTO regress_wp.m_c (a) VALUES (100);
DELETE FROM regress_wp.p_c WHERE a = 1;
DELETE FROM regress_wp.v_c WHERE a = 1;
UPDATE regress_wp.t1_c SET note = 'u' WHERE k = 100;
UPDATE regress_wp.t1_q SET note = 'u' WHERE k = 100;
RESET client_min_messages;

-- The key's cast runs with the table owner's rights on both paths: an
-- owner that may not execute the cast function cannot write the table.
CREATE ROLE regress_wp_owner NOLOGIN;
GRANT USAGE ON SCHEMA webhook, regress_wp TO regress_wp_owner;
CREATE TABLE regress_wp.r_c (a integer, p regress_wp.pair);
CREATE TABLE regress_wp.r_q (LIKE regress_wp.r_c);
ALTER TABLE regress_wp.r_c OWNER TO regress_wp_owner;
ALTER TABLE regress_wp.r_q OWNER TO regress_wp_owner;
SET ROLE regress_wp_owner;
SELECT webhook.watch('regress_wp.r_c', event_prefix => 'wp.c', ordering_key => '{p}'),
       webhook.watch('regress_wp.r_q', event_prefix => 'wp.q', ordering_key => '{p}', condition => 'true');
RESET ROLE;
REVOKE EXECUTE ON FUNCTION regress_wp.pair_text(regress_wp.pair) FROM PUBLIC;
SET ROLE regress_wp_owner;
SAVEPOINT s;
INSERT INTO regress_wp.r_c VALUES (1, ROW(1, 2));
ROLLBACK TO SAVEPOINT s;
INSERT INTO regress_wp.r_q VALUES (1, ROW(1, 2));
ROLLBACK TO SAVEPOINT s;
RESET ROLE;
GRANT EXECUTE ON FUNCTION regress_wp.pair_text(regress_wp.pair) TO regress_wp_owner;
SET ROLE regress_wp_owner;
INSERT INTO regress_wp.r_c VALUES (1, ROW(1, 2));
INSERT INTO regress_wp.r_q VALUES (1, ROW(1, 2));
RESET ROLE;
SELECT event_type, ordering_key FROM webhook.events WHERE payload ->> 'table' IN ('r_c', 'r_q') ORDER BY 1;

ROLLBACK;
