-- webhook.watch() / webhook.unwatch() / webhook.watches: events from a
-- table's row changes, their exact payloads, the options, the errors at
-- watch() time, transactions and savepoints, COPY, partitions, value types,
-- large statements, privileges and search_path.
-- Whatever would give the delivery worker a delivery runs in a transaction
-- that is rolled back; committed events have no endpoint, so no delivery.
\set SHOW_CONTEXT never

-- Nothing left over by other files: the counts below rely on it.
SELECT count(*) AS endpoints, (SELECT count(*) FROM webhook.table_watches) AS watches
  FROM webhook.endpoints;

CREATE SCHEMA regress_watch;
CREATE TABLE regress_watch.customers (
    id            integer PRIMARY KEY,
    email         text,
    plan          text,
    password_hash text,
    note          text
);

--
-- Default options: prefix = table name, every operation, whole rows.
--
BEGIN;
INSERT INTO webhook.endpoints (name, url, event_types) VALUES
    ('customers', 'https://example.com/customers', '{customers.*}'),
    ('created-only', 'https://example.com/created', '{customers.created}'),
    ('others', 'https://example.com/others', '{orders.*}');
SELECT webhook.watch('regress_watch.customers');
SELECT "table", event_prefix, operations, columns, condition, exclude_columns,
       created_at = now() AS created_now, updated_at = now() AS updated_now
  FROM webhook.watches WHERE "table" = 'regress_watch.customers'::regclass;
-- One statement-level trigger per operation, with transition tables.
SELECT pg_get_triggerdef(oid) AS trigger FROM pg_trigger
 WHERE tgrelid = 'regress_watch.customers'::regclass ORDER BY tgname;
INSERT INTO regress_watch.customers VALUES
    (1, 'ada@example.com', 'trial', 'h1', 'first'),
    (2, 'bob@example.com', 'pro', 'h2', NULL);
UPDATE regress_watch.customers SET email = 'ada@example.org' WHERE id = 1;
-- An UPDATE that changes nothing emits nothing; nor does one matching no row.
UPDATE regress_watch.customers SET email = email, plan = plan;
UPDATE regress_watch.customers SET note = 'x' WHERE id = 99;
DELETE FROM regress_watch.customers WHERE id = 2;
SELECT event_type, payload FROM webhook.events
 ORDER BY event_type, payload -> 'record' ->> 'id', payload -> 'old_record' ->> 'id';
-- The body carries the same data, like any event.
SELECT count(*) AS events, bool_and(webhook._event_body(event_type, payload, created_at)::jsonb -> 'data' = payload) AS body_data,
       bool_and(webhook._event_body(event_type, payload, created_at)::jsonb ->> 'type' = event_type) AS body_type
  FROM webhook.events;
-- Deliveries go to the endpoints subscribed to each event type.
SELECT ev.event_type, string_agg(ep.name, ', ' ORDER BY ep.name) AS endpoints
  FROM webhook.events ev JOIN webhook.deliveries d ON d.event_id = ev.id
  JOIN webhook.endpoints ep ON ep.id = d.endpoint_id
 GROUP BY ev.event_type ORDER BY ev.event_type;
ROLLBACK;

--
-- A custom prefix and a subset of operations (any case, normalised).
--
BEGIN;
SELECT webhook.watch('regress_watch.customers', event_prefix => 'crm.customer',
                     operations => '{INSERT,delete,Delete}');
SELECT event_prefix, operations FROM webhook.watches WHERE "table" = 'regress_watch.customers'::regclass;
SELECT tgname FROM pg_trigger WHERE tgrelid = 'regress_watch.customers'::regclass ORDER BY tgname;
INSERT INTO regress_watch.customers VALUES (1, 'ada@example.com', 'trial', 'h1', NULL);
UPDATE regress_watch.customers SET plan = 'pro';
DELETE FROM regress_watch.customers;
SELECT event_type, payload -> 'record' AS record, payload -> 'old_record' AS old_record
  FROM webhook.events ORDER BY event_type;
ROLLBACK;

--
-- columns: an UPDATE emits only when one of them changed.
--
BEGIN;
SELECT webhook.watch('regress_watch.customers', columns => '{email,plan}');
INSERT INTO regress_watch.customers VALUES (1, 'ada@example.com', 'trial', 'h1', NULL),
                                           (2, 'bob@example.com', 'pro', 'h2', NULL);
UPDATE regress_watch.customers SET note = 'only the note';
UPDATE regress_watch.customers SET email = 'ada@example.org' WHERE id = 1;
UPDATE regress_watch.customers SET plan = 'team', note = 'plan and note' WHERE id = 2;
UPDATE regress_watch.customers SET plan = NULL WHERE id = 1;
SELECT event_type, payload -> 'record' AS record, payload -> 'old_record' ->> 'plan' AS old_plan
  FROM webhook.events WHERE event_type = 'customers.updated'
 ORDER BY payload -> 'record' ->> 'id', payload::text;
ROLLBACK;
-- ... whatever the type of the column, even one without an equality operator.
CREATE TABLE regress_watch.documents (id integer PRIMARY KEY, doc json, pos point, title text);
BEGIN;
SELECT webhook.watch('regress_watch.documents', columns => '{doc,pos}');
INSERT INTO regress_watch.documents VALUES (1, '{"v": 1}', '(1,2)', 'a');
UPDATE regress_watch.documents SET doc = '{"v": 2}';
UPDATE regress_watch.documents SET pos = '(3,4)';
UPDATE regress_watch.documents SET title = 'b';
SELECT event_type, payload -> 'record' AS record FROM webhook.events ORDER BY event_type, created_at, payload::text;
ROLLBACK;

--
-- condition: a boolean expression over NEW and OLD, evaluated per row.
-- For INSERT, OLD is a row of NULLs; for DELETE, NEW is.
--
BEGIN;
SELECT webhook.watch('regress_watch.customers', condition => 'NEW.plan IS DISTINCT FROM ''trial''');
INSERT INTO regress_watch.customers VALUES (1, 'ada@example.com', 'trial', 'h1', NULL),
                                           (2, 'bob@example.com', 'pro', 'h2', NULL);
UPDATE regress_watch.customers SET plan = 'trial' WHERE id = 2;
UPDATE regress_watch.customers SET plan = 'pro' WHERE id = 1;
-- Every DELETE passes: NEW.plan is NULL there.
DELETE FROM regress_watch.customers;
SELECT event_type, coalesce(payload -> 'record' ->> 'id', payload -> 'old_record' ->> 'id') AS id,
       payload -> 'record' ->> 'plan' AS plan
  FROM webhook.events ORDER BY event_type, id;
ROLLBACK;
BEGIN;
SELECT webhook.watch('regress_watch.customers', event_prefix => 'upgrade',
                     condition => 'OLD.plan = ''trial'' AND NEW.plan <> ''trial''');
INSERT INTO regress_watch.customers VALUES (1, 'ada@example.com', 'trial', 'h1', NULL),
                                           (2, 'bob@example.com', 'trial', 'h2', NULL),
                                           (3, 'cy@example.com', 'pro', 'h3', NULL);
UPDATE regress_watch.customers SET plan = CASE id WHEN 1 THEN 'pro' WHEN 3 THEN 'team' ELSE plan END,
                                   note = 'touched';
DELETE FROM regress_watch.customers;
SELECT event_type, payload -> 'record' ->> 'id' AS id, payload -> 'old_record' ->> 'plan' AS old_plan,
       payload -> 'record' ->> 'plan' AS plan
  FROM webhook.events ORDER BY event_type, id;
ROLLBACK;

--
-- exclude_columns never appear, and an UPDATE of only them emits nothing.
--
BEGIN;
SELECT webhook.watch('regress_watch.customers', exclude_columns => '{password_hash,note}');
INSERT INTO regress_watch.customers VALUES (1, 'ada@example.com', 'trial', 'secret-hash-1', 'n');
UPDATE regress_watch.customers SET password_hash = 'secret-hash-2', note = 'm';
UPDATE regress_watch.customers SET plan = 'pro', password_hash = 'secret-hash-3';
DELETE FROM regress_watch.customers;
SELECT event_type, payload -> 'record' AS record, payload -> 'old_record' AS old_record
  FROM webhook.events ORDER BY event_type;
SELECT count(*) FILTER (WHERE payload::text LIKE '%secret-hash%') AS leaked
  FROM webhook.events;
ROLLBACK;

--
-- Calling watch() again replaces the options: still one trigger per
-- operation, one event per row.
--
BEGIN;
SELECT webhook.watch('regress_watch.customers');
SELECT webhook.watch('regress_watch.customers', event_prefix => 'client', exclude_columns => '{password_hash}');
SELECT webhook.watch('regress_watch.customers', event_prefix => 'client', exclude_columns => '{password_hash}');
SELECT count(*) AS watches, min(event_prefix) AS event_prefix, min(exclude_columns::text) AS exclude_columns
  FROM webhook.watches WHERE "table" = 'regress_watch.customers'::regclass;
SELECT tgname FROM pg_trigger WHERE tgrelid = 'regress_watch.customers'::regclass ORDER BY tgname;
INSERT INTO regress_watch.customers VALUES (1, 'ada@example.com', 'trial', 'h1', NULL);
UPDATE regress_watch.customers SET plan = 'pro';
SELECT event_type, count(*) AS events FROM webhook.events GROUP BY event_type ORDER BY event_type;
-- Narrowing the operations drops the other triggers.
SELECT webhook.watch('regress_watch.customers', operations => '{update}');
SELECT tgname FROM pg_trigger WHERE tgrelid = 'regress_watch.customers'::regclass ORDER BY tgname;
ROLLBACK;

--
-- The trigger reads a watch once per backend, and again whenever the row
-- the statement sees is another (src/watch_lookup.c): a watch() rolled back
-- to a savepoint is forgotten, a new watch() counts from the next
-- statement, and so does a row deleted by hand.
--
BEGIN;
SELECT webhook.watch('regress_watch.customers', event_prefix => 'first', operations => '{insert}');
INSERT INTO regress_watch.customers VALUES (1, 'ada@example.com', 'trial', 'h1', NULL);
SAVEPOINT s;
SELECT webhook.watch('regress_watch.customers', event_prefix => 'second', operations => '{insert}');
INSERT INTO regress_watch.customers VALUES (2, 'bob@example.com', 'trial', 'h2', NULL);
ROLLBACK TO s;
INSERT INTO regress_watch.customers VALUES (3, 'cy@example.com', 'trial', 'h3', NULL);
SELECT webhook.watch('regress_watch.customers', event_prefix => 'third', operations => '{insert}',
                     exclude_columns => '{email,password_hash}');
INSERT INTO regress_watch.customers VALUES (4, 'di@example.com', 'trial', 'h4', NULL);
DELETE FROM webhook.table_watches WHERE table_oid = 'regress_watch.customers'::regclass;
INSERT INTO regress_watch.customers VALUES (5, 'ed@example.com', 'trial', 'h5', NULL);
SELECT event_type, payload -> 'record' ->> 'id' AS id, payload -> 'record' ? 'email' AS has_email
  FROM webhook.events ORDER BY 2;
ROLLBACK;

--
-- unwatch() removes the triggers and the row; true only when there was a watch.
--
BEGIN;
SELECT webhook.watch('regress_watch.customers');
SELECT webhook.unwatch('regress_watch.customers');
SELECT count(*) AS triggers FROM pg_trigger WHERE tgrelid = 'regress_watch.customers'::regclass;
SELECT count(*) AS watches FROM webhook.watches WHERE "table" = 'regress_watch.customers'::regclass;
INSERT INTO regress_watch.customers VALUES (1, 'ada@example.com', 'trial', 'h1', NULL);
SELECT count(*) AS events FROM webhook.events;
SELECT webhook.unwatch('regress_watch.customers');
ROLLBACK;

--
-- Bad options are refused at watch() time, and nothing is written.
--
CREATE VIEW regress_watch.customer_view AS SELECT * FROM regress_watch.customers;
CREATE SEQUENCE regress_watch.customer_seq;
CREATE MATERIALIZED VIEW regress_watch.customer_mv AS SELECT * FROM regress_watch.customers;
SELECT webhook.watch('regress_watch.customer_view');
\echo SQLSTATE :SQLSTATE
SELECT webhook.watch('regress_watch.customer_seq');
\echo SQLSTATE :SQLSTATE
SELECT webhook.watch('regress_watch.customer_mv');
\echo SQLSTATE :SQLSTATE
SELECT webhook.watch('regress_watch.no_such_table');
\echo SQLSTATE :SQLSTATE
SELECT webhook.watch('regress_watch.customers', columns => '{email,emial}');
\echo SQLSTATE :SQLSTATE
SELECT webhook.watch('regress_watch.customers', columns => '{ctid}');
\echo SQLSTATE :SQLSTATE
SELECT webhook.watch('regress_watch.customers', exclude_columns => '{password}');
\echo SQLSTATE :SQLSTATE
SELECT webhook.watch('regress_watch.customers', condition => 'NEW.planx = ''pro''');
\echo SQLSTATE :SQLSTATE
SELECT webhook.watch('regress_watch.customers', condition => 'NEW.plan = ');
\echo SQLSTATE :SQLSTATE
SELECT webhook.watch('regress_watch.customers', condition => 'NEW.plan = ''pro''; DROP TABLE regress_watch.customers');
\echo SQLSTATE :SQLSTATE
-- A condition that is not boolean (though castable to it) would fail every
-- later write to the table: it is refused too.
\set VERBOSITY sqlstate
SELECT webhook.watch('regress_watch.customers', condition => 'NEW.id');
SELECT webhook.watch('regress_watch.customers', condition => 'NEW.plan');
\set VERBOSITY default
SELECT webhook.watch('regress_watch.customers', operations => '{insert,truncate}');
\echo SQLSTATE :SQLSTATE
SELECT webhook.watch('regress_watch.customers', operations => '{}');
\echo SQLSTATE :SQLSTATE
SELECT webhook.watch('regress_watch.customers', operations => NULL);
\echo SQLSTATE :SQLSTATE
SELECT webhook.watch('regress_watch.customers', event_prefix => 'crm customer');
\echo SQLSTATE :SQLSTATE
SELECT webhook.watch('regress_watch.customers', event_prefix => 'crm.');
\echo SQLSTATE :SQLSTATE
SELECT webhook.watch('regress_watch.customers', event_prefix => '');
\echo SQLSTATE :SQLSTATE
-- The extension's own prefix is reserved.
SELECT webhook.watch('regress_watch.customers', event_prefix => 'webhook');
\echo SQLSTATE :SQLSTATE
SELECT webhook.watch('regress_watch.customers', event_prefix => 'webhook.endpoint');
\echo SQLSTATE :SQLSTATE
-- The default prefix must be a valid name too.
CREATE TABLE regress_watch."Order Items" (id integer);
SELECT webhook.watch('regress_watch."Order Items"');
\echo SQLSTATE :SQLSTATE
SELECT webhook.watch('regress_watch."Order Items"', event_prefix => 'order_item') AS watched_with_prefix;
SELECT webhook.unwatch('regress_watch."Order Items"');
-- Nothing was written by the refused calls.
SELECT count(*) AS watches FROM webhook.watches;
SELECT count(*) AS triggers FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid
 WHERE c.relnamespace = 'regress_watch'::regnamespace;

--
-- An event exists only if its transaction commits: a rollback, a rolled
-- back savepoint or a failed statement emit nothing.  (The watch is
-- committed; no endpoint exists, so the committed events have no delivery.)
--
SELECT webhook.watch('regress_watch.customers');
BEGIN;
INSERT INTO regress_watch.customers VALUES (1, 'ada@example.com', 'trial', 'h1', NULL);
SELECT count(*) AS events_in_transaction FROM webhook.events;
ROLLBACK;
SELECT count(*) AS events_after_rollback FROM webhook.events;
BEGIN;
INSERT INTO regress_watch.customers VALUES (1, 'ada@example.com', 'trial', 'h1', NULL);
SAVEPOINT before_more;
INSERT INTO regress_watch.customers VALUES (2, 'bob@example.com', 'pro', 'h2', NULL);
UPDATE regress_watch.customers SET plan = 'team';
ROLLBACK TO SAVEPOINT before_more;
UPDATE regress_watch.customers SET plan = 'pro';
SAVEPOINT before_failure;
-- The second row violates the primary key: the whole statement fails.
INSERT INTO regress_watch.customers VALUES (3, 'cy@example.com', 'pro', 'h3', NULL),
                                           (1, 'dup@example.com', 'pro', 'h4', NULL);
ROLLBACK TO SAVEPOINT before_failure;
COMMIT;
SELECT event_type, payload -> 'record' ->> 'id' AS id, payload -> 'record' ->> 'plan' AS plan
  FROM webhook.events ORDER BY event_type;
DELETE FROM webhook.events;
DELETE FROM regress_watch.customers;
SELECT event_type, count(*) AS events FROM webhook.events GROUP BY event_type;
DELETE FROM webhook.events;

--
-- COPY FROM emits events like INSERT.
--
BEGIN;
COPY regress_watch.customers (id, email, plan) FROM STDIN;
10	copy1@example.com	trial
11	copy2@example.com	pro
12	copy3@example.com	\N
\.
SELECT event_type, payload -> 'record' AS record FROM webhook.events ORDER BY payload -> 'record' ->> 'id';
ROLLBACK;

--
-- INSERT ... ON CONFLICT and MERGE emit per row what they did.
--
BEGIN;
INSERT INTO regress_watch.customers VALUES (1, 'ada@example.com', 'trial', 'h1', NULL),
                                           (2, 'bob@example.com', 'pro', 'h2', NULL);
DELETE FROM webhook.events;
INSERT INTO regress_watch.customers VALUES (1, 'ada@example.com', 'trial', 'h1', NULL),
                                           (2, 'bob@example.com', 'team', 'h2', NULL),
                                           (3, 'cy@example.com', 'pro', 'h3', NULL)
    ON CONFLICT (id) DO UPDATE SET plan = EXCLUDED.plan;
SELECT event_type, payload -> 'record' ->> 'id' AS id, payload -> 'old_record' ->> 'plan' AS old_plan,
       payload -> 'record' ->> 'plan' AS plan
  FROM webhook.events ORDER BY event_type, id;
DELETE FROM webhook.events;
MERGE INTO regress_watch.customers c
USING (VALUES (1, 'pro'), (2, NULL), (4, 'trial')) AS s(id, plan) ON c.id = s.id
 WHEN MATCHED AND s.plan IS NULL THEN DELETE
 WHEN MATCHED THEN UPDATE SET plan = s.plan
 WHEN NOT MATCHED THEN INSERT (id, plan) VALUES (s.id, s.plan);
SELECT event_type, coalesce(payload -> 'record' ->> 'id', payload -> 'old_record' ->> 'id') AS id,
       payload -> 'old_record' ->> 'plan' AS old_plan, payload -> 'record' ->> 'plan' AS plan
  FROM webhook.events ORDER BY event_type, id;
ROLLBACK;
SELECT webhook.unwatch('regress_watch.customers');

--
-- A partitioned table: watch the parent; rows in any partition, and rows
-- moved across partitions by an UPDATE, are events of the parent.
--
CREATE TABLE regress_watch.sales (id integer, region text, amount numeric, PRIMARY KEY (id, region))
    PARTITION BY LIST (region);
CREATE TABLE regress_watch.sales_eu PARTITION OF regress_watch.sales FOR VALUES IN ('eu');
CREATE TABLE regress_watch.sales_us PARTITION OF regress_watch.sales FOR VALUES IN ('us');
BEGIN;
SELECT webhook.watch('regress_watch.sales', event_prefix => 'sale');
INSERT INTO regress_watch.sales VALUES (1, 'eu', 10), (2, 'us', 20), (3, 'eu', 30);
SELECT tableoid::regclass AS partition, id FROM regress_watch.sales ORDER BY id;
-- Row 1 moves from eu to us; row 2 stays in us.
UPDATE regress_watch.sales SET region = 'us', amount = amount + 1 WHERE id IN (1, 2);
SELECT tableoid::regclass AS partition, id FROM regress_watch.sales ORDER BY id;
DELETE FROM regress_watch.sales WHERE id = 3;
SELECT event_type, payload FROM webhook.events
 ORDER BY event_type, payload -> 'record' ->> 'id', payload -> 'old_record' ->> 'id';
ROLLBACK;

-- A row moved to a partition whose BEFORE INSERT trigger drops it leaves the
-- transition tables of unequal length: no pairing of old and new rows can be
-- trusted, so each row image is an event of its own (record or old_record
-- null), never a wrong pair.  Here row 1 vanished, 2 became 200, 3 became 300.
CREATE TABLE regress_watch.q (id integer, k text) PARTITION BY LIST (k);
CREATE TABLE regress_watch.q_a PARTITION OF regress_watch.q FOR VALUES IN ('a');
CREATE TABLE regress_watch.q_b PARTITION OF regress_watch.q FOR VALUES IN ('b');
CREATE FUNCTION regress_watch.drop_row() RETURNS trigger LANGUAGE plpgsql AS $$BEGIN RETURN NULL; END$$;
CREATE TRIGGER drop_row BEFORE INSERT ON regress_watch.q_b FOR EACH ROW EXECUTE FUNCTION regress_watch.drop_row();
INSERT INTO regress_watch.q VALUES (1, 'a'), (2, 'a'), (3, 'a');
BEGIN;
SELECT webhook.watch('regress_watch.q', condition => 'NEW.id IS DISTINCT FROM 7');
UPDATE regress_watch.q SET k = CASE WHEN id = 1 THEN 'b' ELSE 'a' END, id = id * 100;
SELECT id, k FROM regress_watch.q ORDER BY id;
SELECT payload -> 'old_record' AS old_record, payload -> 'record' AS record
  FROM webhook.events WHERE event_type = 'q.updated'
 ORDER BY payload -> 'old_record' ->> 'id', payload -> 'record' ->> 'id';
-- Equal lengths, also with a row moved: pairs as before, and the columns
-- filter and the unchanged-row rule apply again.
DELETE FROM webhook.events;
DROP TRIGGER drop_row ON regress_watch.q_b;
SELECT webhook.watch('regress_watch.q', columns => '{k}');
UPDATE regress_watch.q SET k = CASE WHEN id = 200 THEN 'b' ELSE 'a' END, id = id + 1;
SELECT payload -> 'old_record' AS old_record, payload -> 'record' AS record
  FROM webhook.events WHERE event_type = 'q.updated'
 ORDER BY payload -> 'old_record' ->> 'id';
ROLLBACK;

--
-- Values as to_jsonb writes them: generated columns, bytea as "\\x...",
-- timestamps in ISO 8601, numbers, arrays, composites; a TOASTed value intact.
--
CREATE TYPE regress_watch.money_amount AS (currency text, cents bigint);
CREATE TABLE regress_watch.items (
    id       integer PRIMARY KEY,
    qty      integer,
    double   integer GENERATED ALWAYS AS (qty * 2) STORED,
    raw      bytea,
    at       timestamptz,
    price    numeric,
    tags     text[],
    cost     regress_watch.money_amount,
    flag     boolean,
    big      text
);
-- Kept out of line, uncompressed: the trigger must fetch it from the TOAST table.
ALTER TABLE regress_watch.items ALTER COLUMN big SET STORAGE EXTERNAL;
SELECT reltoastrelid::regclass AS items_toast FROM pg_class WHERE oid = 'regress_watch.items'::regclass \gset
BEGIN;
SET LOCAL TimeZone = 'UTC';
SELECT webhook.watch('regress_watch.items');
INSERT INTO regress_watch.items (id, qty, raw, at, price, tags, cost, flag, big)
VALUES (1, 21, '\xdeadbeef00', '2026-01-02 03:04:05.678+00', 12.50, '{a,"b c"}', ROW('EUR', 1250), true,
        repeat('x', 100000)),
       (2, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL);
SELECT (payload -> 'record') - 'big' AS record FROM webhook.events ORDER BY payload -> 'record' ->> 'id';
SELECT length(payload -> 'record' ->> 'big') AS big_length,
       payload -> 'record' ->> 'big' = repeat('x', 100000) AS big_intact,
       webhook._event_body(event_type, payload, created_at)::jsonb -> 'data' -> 'record' ->> 'big' = repeat('x', 100000) AS body_intact
  FROM webhook.events WHERE payload -> 'record' ->> 'id' = '1';
SELECT count(*) > 0 AS stored_out_of_line FROM :items_toast;
-- It arrives whole in both images of an UPDATE that does not touch it.
UPDATE regress_watch.items SET qty = 1 WHERE id = 1;
SELECT payload -> 'record' ->> 'double' AS double, payload -> 'old_record' ->> 'double' AS old_double,
       length(payload -> 'record' ->> 'big') AS big_length,
       length(payload -> 'old_record' ->> 'big') AS old_big_length
  FROM webhook.events WHERE event_type = 'items.updated';
ROLLBACK;

--
-- One statement, 10,000 rows: 10,000 events, 10,000 deliveries, each UPDATE
-- event pairing the right old and new row.
--
CREATE TABLE regress_watch.bulk (id integer PRIMARY KEY, v text);
BEGIN;
INSERT INTO webhook.endpoints (name, url, event_types) VALUES ('bulk', 'https://example.com/bulk', '{bulk.*}');
SELECT webhook.watch('regress_watch.bulk');
INSERT INTO regress_watch.bulk SELECT g, 'v' || g FROM generate_series(1, 10000) AS g;
SELECT count(*) AS events, count(DISTINCT payload -> 'record' ->> 'id') AS distinct_rows,
       min((payload -> 'record' ->> 'id')::int) AS min_id, max((payload -> 'record' ->> 'id')::int) AS max_id
  FROM webhook.events WHERE event_type = 'bulk.created';
-- Written from C in batches of at most 1,000 rows: one transaction id, the
-- row defaults, ids growing in the order of the rows.
SELECT count(DISTINCT txid) AS txids, bool_and(txid = pg_current_xact_id()) AS own_txid,
       bool_and(created_at = now()) AS created_now, count(DISTINCT id) AS ids,
       bool_and(id > prev_id OR prev_id IS NULL) AS ids_in_row_order
  FROM (SELECT e.*, lag(id) OVER (ORDER BY (payload -> 'record' ->> 'id')::int) AS prev_id
          FROM webhook.events e WHERE event_type = 'bulk.created') AS e;
SELECT count(*) AS deliveries FROM webhook.deliveries;
UPDATE regress_watch.bulk SET v = v || '!';
SELECT count(*) AS events,
       count(*) FILTER (WHERE payload -> 'record' ->> 'id' = payload -> 'old_record' ->> 'id'
                          AND payload -> 'record' ->> 'v' = (payload -> 'old_record' ->> 'v') || '!'
                          AND payload -> 'old_record' ->> 'v' = 'v' || (payload -> 'old_record' ->> 'id'))
           AS paired_correctly
  FROM webhook.events WHERE event_type = 'bulk.updated';
DELETE FROM regress_watch.bulk;
SELECT count(*) AS events FROM webhook.events WHERE event_type = 'bulk.deleted';
SELECT count(*) AS deliveries FROM webhook.deliveries;
ROLLBACK;

--
-- A non-superuser table owner watches its table; a role with only
-- INSERT/UPDATE/DELETE on it, and no right on schema webhook, writes rows
-- and the events exist.
--
CREATE ROLE regress_webhook_owner NOLOGIN;
CREATE ROLE regress_webhook_writer NOLOGIN;
GRANT USAGE ON SCHEMA webhook TO regress_webhook_owner;
GRANT USAGE ON SCHEMA regress_watch TO regress_webhook_owner, regress_webhook_writer;
CREATE TABLE regress_watch.orders (id integer PRIMARY KEY, status text, secret_note text);
ALTER TABLE regress_watch.orders OWNER TO regress_webhook_owner;
-- Another table, owned by the superuser, is watched too.
SELECT webhook.watch('regress_watch.customers');
SET ROLE regress_webhook_owner;
GRANT INSERT, UPDATE, DELETE ON regress_watch.orders TO regress_webhook_writer;
SELECT webhook.watch('regress_watch.orders', condition => 'NEW.status IS DISTINCT FROM ''draft''',
                     exclude_columns => '{secret_note}');
-- The owner sees and manages its own watch, and no other.
SELECT "table", event_prefix, operations, condition, exclude_columns FROM webhook.watches ORDER BY 1;
SELECT webhook.watch('regress_watch.customers');
\echo SQLSTATE :SQLSTATE
SELECT webhook.unwatch('regress_watch.customers');
\echo SQLSTATE :SQLSTATE
INSERT INTO webhook.table_watches (table_oid, event_prefix, operations)
VALUES ('regress_watch.customers', 'hijack', '{insert}');
\echo SQLSTATE :SQLSTATE
UPDATE webhook.table_watches SET event_prefix = 'hijack' WHERE table_oid = 'regress_watch.customers'::regclass;
DELETE FROM webhook.table_watches WHERE table_oid = 'regress_watch.customers'::regclass;
RESET ROLE;
SELECT "table", event_prefix FROM webhook.watches ORDER BY 1;
BEGIN;
INSERT INTO webhook.endpoints (name, url, event_types) VALUES ('orders', 'https://example.com/orders', '{orders.*}');
SET LOCAL ROLE regress_webhook_writer;
INSERT INTO regress_watch.orders VALUES (1, 'new', 's1'), (2, 'draft', 's2');
UPDATE regress_watch.orders SET status = 'paid';
DELETE FROM regress_watch.orders;
RESET ROLE;
SELECT ev.event_type, ev.payload -> 'record' AS record, ev.payload -> 'old_record' AS old_record,
       ep.name AS endpoint, d.status
  FROM webhook.events ev JOIN webhook.deliveries d ON d.event_id = ev.id
  JOIN webhook.endpoints ep ON ep.id = d.endpoint_id
 ORDER BY ev.event_type, ev.payload -> 'record' ->> 'id', ev.payload -> 'old_record' ->> 'id';
ROLLBACK;
-- The writer can see nothing of the webhook schema, nor watch or unwatch.
SET ROLE regress_webhook_writer;
SELECT count(*) FROM webhook.events;
\echo SQLSTATE :SQLSTATE
SELECT webhook.watch('regress_watch.orders');
\echo SQLSTATE :SQLSTATE
SELECT webhook.unwatch('regress_watch.orders');
\echo SQLSTATE :SQLSTATE
RESET ROLE;
SET ROLE regress_webhook_owner;
SELECT webhook.unwatch('regress_watch.orders');
RESET ROLE;
SELECT webhook.unwatch('regress_watch.customers');

--
-- Nothing depends on the search_path of the role writing rows: functions
-- and operators named like builtins in a schema put first are never called.
--
CREATE SCHEMA regress_evil;
CREATE FUNCTION regress_evil.to_jsonb(anyelement) RETURNS jsonb LANGUAGE plpgsql
AS $$BEGIN RAISE EXCEPTION 'regress_evil.to_jsonb called by %', current_user; END$$;
CREATE FUNCTION regress_evil.jsonb_build_object(VARIADIC text[]) RETURNS jsonb LANGUAGE plpgsql
AS $$BEGIN RAISE EXCEPTION 'regress_evil.jsonb_build_object called by %', current_user; END$$;
CREATE FUNCTION regress_evil.text_eq(text, text) RETURNS boolean LANGUAGE plpgsql
AS $$BEGIN RAISE EXCEPTION 'regress_evil text = called by %', current_user; END$$;
CREATE OPERATOR regress_evil.= (LEFTARG = text, RIGHTARG = text, FUNCTION = regress_evil.text_eq);
CREATE FUNCTION regress_evil.jsonb_eq(jsonb, jsonb) RETURNS boolean LANGUAGE plpgsql
AS $$BEGIN RAISE EXCEPTION 'regress_evil jsonb = called by %', current_user; END$$;
CREATE OPERATOR regress_evil.= (LEFTARG = jsonb, RIGHTARG = jsonb, FUNCTION = regress_evil.jsonb_eq);
CREATE FUNCTION regress_evil.varchar_eq(varchar, varchar) RETURNS boolean LANGUAGE plpgsql
AS $$BEGIN RAISE EXCEPTION 'regress_evil varchar = called by %', current_user; END$$;
CREATE OPERATOR regress_evil.= (LEFTARG = varchar, RIGHTARG = varchar, FUNCTION = regress_evil.varchar_eq);
CREATE TABLE regress_watch.accounts (id integer PRIMARY KEY, code varchar(10), plan text);
-- As the builtin-less search_path of an application that names its own schema first.
BEGIN;
SELECT webhook.watch('regress_watch.accounts', columns => '{code}');
SET LOCAL search_path = regress_evil, public;
INSERT INTO regress_watch.accounts VALUES (1, 'a', 'trial');
UPDATE regress_watch.accounts SET code = 'b';
DELETE FROM regress_watch.accounts;
RESET search_path;
SELECT event_type, count(*) AS events FROM webhook.events GROUP BY event_type ORDER BY event_type;
ROLLBACK;
-- Even with the schema put before pg_catalog, and with a condition.
BEGIN;
SELECT webhook.watch('regress_watch.accounts', columns => '{code,plan}',
                     condition => 'NEW.plan IS DISTINCT FROM ''x''');
SET LOCAL search_path = regress_evil, pg_catalog, public;
INSERT INTO regress_watch.accounts VALUES (1, 'a', 'trial');
UPDATE regress_watch.accounts SET code = 'b';
UPDATE regress_watch.accounts SET plan = 'pro';
DELETE FROM regress_watch.accounts;
RESET search_path;
SELECT event_type, count(*) AS events FROM webhook.events GROUP BY event_type ORDER BY event_type;
ROLLBACK;

--
-- What a watch relies on is depended on, as for a trigger's WHEN clause:
-- renames keep it working, DROP refuses or cascades (with a NOTICE), and a
-- dropped unrelated column leaves it alone.
--
CREATE TABLE regress_watch.deps (id integer PRIMARY KEY, plan text, note text, secret text, extra text);
SELECT webhook.watch('regress_watch.deps', columns => '{plan}', exclude_columns => '{secret}',
                     condition => 'NEW.plan IS DISTINCT FROM ''skip''');
SELECT columns, condition, exclude_columns FROM webhook.watches WHERE "table" = 'regress_watch.deps'::regclass;
ALTER TABLE regress_watch.deps RENAME COLUMN plan TO tier;
ALTER TABLE regress_watch.deps RENAME COLUMN secret TO hidden;
SELECT columns, condition, exclude_columns FROM webhook.watches WHERE "table" = 'regress_watch.deps'::regclass;
BEGIN;
-- Two statements in one session: the second reuses the first one's plan.
INSERT INTO regress_watch.deps VALUES (1, 'pro', 'a', 's1');
INSERT INTO regress_watch.deps VALUES (2, 'skip', 'b', 's2');
UPDATE regress_watch.deps SET tier = 'team' WHERE id = 1;
UPDATE regress_watch.deps SET note = 'only the note' WHERE id = 1;
SELECT event_type, payload -> 'record' AS record FROM webhook.events ORDER BY event_type, payload::text;
ROLLBACK;
ALTER TABLE regress_watch.deps DROP COLUMN extra;
ALTER TABLE regress_watch.deps ALTER COLUMN note TYPE varchar(20);
SELECT count(*) AS watches, (SELECT count(*) FROM pg_trigger WHERE tgrelid = 'regress_watch.deps'::regclass) AS triggers
  FROM webhook.watches WHERE "table" = 'regress_watch.deps'::regclass;
BEGIN;
INSERT INTO regress_watch.deps VALUES (3, 'pro', 'c', 's3');
SELECT event_type, payload -> 'record' AS record FROM webhook.events ORDER BY event_type, payload::text;
ROLLBACK;
ALTER TABLE regress_watch.deps DROP COLUMN tier;
ALTER TABLE regress_watch.deps DROP COLUMN hidden;
ALTER TABLE regress_watch.deps ALTER COLUMN tier TYPE varchar(20);
ALTER TABLE regress_watch.deps DROP COLUMN hidden CASCADE;
SELECT count(*) AS watches, (SELECT count(*) FROM pg_trigger WHERE tgrelid = 'regress_watch.deps'::regclass) AS triggers
  FROM webhook.watches WHERE "table" = 'regress_watch.deps'::regclass;
-- A function the condition calls cannot be dropped from under it.
CREATE FUNCTION regress_watch.is_big(integer) RETURNS boolean LANGUAGE sql IMMUTABLE RETURN $1 > 100;
SELECT webhook.watch('regress_watch.deps', condition => 'regress_watch.is_big(NEW.id)');
DROP FUNCTION regress_watch.is_big(integer);
ALTER FUNCTION regress_watch.is_big(integer) RENAME TO is_large;
SELECT condition FROM webhook.watches WHERE "table" = 'regress_watch.deps'::regclass;
DROP FUNCTION regress_watch.is_large(integer) CASCADE;
SELECT count(*) AS watches FROM webhook.watches WHERE "table" = 'regress_watch.deps'::regclass;
-- Dropping one of its triggers by hand removes the watch and the others.
SELECT webhook.watch('regress_watch.deps');
DROP TRIGGER webhook_watch_update ON regress_watch.deps;
SELECT count(*) AS watches, (SELECT count(*) FROM pg_trigger WHERE tgrelid = 'regress_watch.deps'::regclass) AS triggers
  FROM webhook.watches WHERE "table" = 'regress_watch.deps'::regclass;
-- Dropping the watched table takes its watch, with a NOTICE.
SELECT webhook.watch('regress_watch.deps');
DROP TABLE regress_watch.deps;
SELECT count(*) AS watches FROM webhook.table_watches;

--
-- A condition is one expression, read by PostgreSQL's parser: quotes,
-- semicolons and comments cannot make it anything else.
--
CREATE TABLE regress_watch.inj (id integer, v text);
SELECT webhook.watch('regress_watch.inj', condition => E'E''\\'''' = '''''''') OR (true); CREATE TABLE regress_watch.pwned(); SELECT ((true');
\echo SQLSTATE :SQLSTATE
SELECT webhook.watch('regress_watch.inj', condition => E'E''\\'''' = '''') OR true; CREATE TABLE regress_watch.pwned(); --');
\echo SQLSTATE :SQLSTATE
-- This one got past the old quote checker: a comment ends its idea of a string.
SELECT webhook.watch('regress_watch.inj', condition => E'E''\\'''' IS NOT NULL); CREATE TABLE public.pwned(); SELECT (true --''\n');
\echo SQLSTATE :SQLSTATE
SELECT webhook.watch('regress_watch.inj', condition => 'true) OR (true');
\echo SQLSTATE :SQLSTATE
SELECT webhook.watch('regress_watch.inj', condition => 'NEW.id = 1, true');
\echo SQLSTATE :SQLSTATE
SELECT webhook.watch('regress_watch.inj', condition => 'true FROM regress_watch.inj');
\echo SQLSTATE :SQLSTATE
SELECT webhook.watch('regress_watch.inj', condition => 'true AS x');
\echo SQLSTATE :SQLSTATE
SELECT webhook.watch('regress_watch.inj', condition => '');
\echo SQLSTATE :SQLSTATE
SELECT webhook.watch('regress_watch.inj', condition => 'count(*) > 0');
\echo SQLSTATE :SQLSTATE
SELECT count(*) AS pwned FROM pg_class WHERE relname = 'pwned';
-- Not even the extension's owner writes watch rows by hand.
SELECT webhook.watch('regress_watch.inj');
UPDATE webhook.table_watches SET event_prefix = 'hijack';
\echo SQLSTATE :SQLSTATE
INSERT INTO webhook.table_watches (table_oid, event_prefix, operations) VALUES ('regress_watch.customers', 'x', '{insert}');
\echo SQLSTATE :SQLSTATE
SELECT event_prefix FROM webhook.watches WHERE "table" = 'regress_watch.inj'::regclass;
-- Quotes and semicolons inside a string are just a string.
SELECT webhook.watch('regress_watch.inj', condition => E'NEW.v <> \';\' AND NEW.v <> E\'\\\'\' -- x');
SELECT condition FROM webhook.watches WHERE "table" = 'regress_watch.inj'::regclass;
BEGIN;
INSERT INTO regress_watch.inj VALUES (1, 'a'), (2, ';'), (3, '''');
SELECT payload -> 'record' AS record FROM webhook.events ORDER BY event_type, payload::text;
ROLLBACK;

--
-- Nothing a condition sets outlives it in the writer's session.
--
SELECT webhook.watch('regress_watch.inj',
                     condition => 'set_config(''search_path'', ''regress_watch'', false) IS NOT NULL'
                                  ' AND set_config(''work_mem'', ''7777kB'', false) IS NOT NULL');
SET work_mem = '4MB';
BEGIN;
INSERT INTO regress_watch.inj VALUES (1, 'a');
SHOW search_path;
SHOW work_mem;
SELECT count(*) AS events FROM webhook.events;
COMMIT;
SHOW search_path;
SHOW work_mem;
RESET work_mem;
DELETE FROM webhook.events;

--
-- Column names like the trigger's own names do not disturb it.
--
CREATE TABLE regress_watch.odd (__webhook_row integer, i integer, r text, t text, new text, old text);
SELECT webhook.watch('regress_watch.odd', columns => '{t,new}', condition => 'NEW.old IS DISTINCT FROM ''x''');
BEGIN;
INSERT INTO regress_watch.odd VALUES (1, 2, 'r', 't', 'n', 'o');
UPDATE regress_watch.odd SET t = 't2', __webhook_row = 5;
UPDATE regress_watch.odd SET i = 3;
DELETE FROM regress_watch.odd;
SELECT event_type, payload -> 'record' AS record, payload -> 'old_record' AS old_record FROM webhook.events ORDER BY event_type, payload::text;
ROLLBACK;

-- An empty column list stays an empty list.
SELECT webhook.watch('regress_watch.odd', columns => '{}', exclude_columns => '{}');
SELECT columns, exclude_columns FROM webhook.watches WHERE "table" = 'regress_watch.odd'::regclass;

-- A watch trigger without its watch (made by hand, without arguments) warns and emits nothing.
BEGIN;
SELECT webhook.unwatch('regress_watch.inj');
CREATE TRIGGER webhook_watch_insert AFTER INSERT ON regress_watch.inj REFERENCING NEW TABLE AS webhook_new
    FOR EACH STATEMENT EXECUTE FUNCTION webhook._watch_trigger();
INSERT INTO regress_watch.inj VALUES (1, 'a');
SELECT count(*) AS events FROM webhook.events;
ROLLBACK;

-- pg_dump keeps a watch in its triggers' arguments, kept up to date with
-- today's names; a restore's CREATE TRIGGER makes the watch again, with the
-- checks of watch() and the dependencies.
CREATE TABLE regress_watch.dumped (id integer PRIMARY KEY, plan text, secret text);
CREATE FUNCTION regress_watch.is_paid(text) RETURNS boolean LANGUAGE sql IMMUTABLE RETURN $1 = 'paid';
SELECT webhook.watch('regress_watch.dumped', event_prefix => 'dumped', operations => '{insert,update}',
                     columns => '{plan}', condition => 'regress_watch.is_paid(NEW.plan)',
                     exclude_columns => '{secret}');
ALTER TABLE regress_watch.dumped RENAME COLUMN plan TO tier;
ALTER FUNCTION regress_watch.is_paid(text) RENAME TO paid;
SELECT pg_get_triggerdef(oid) AS trigger FROM pg_trigger
 WHERE tgrelid = 'regress_watch.dumped'::regclass ORDER BY tgname;
BEGIN;
CREATE TEMP TABLE dumped_triggers ON COMMIT DROP AS
SELECT pg_get_triggerdef(oid) AS def FROM pg_trigger WHERE tgrelid = 'regress_watch.dumped'::regclass;
SELECT webhook.unwatch('regress_watch.dumped');
SET LOCAL search_path = '';
SELECT def FROM dumped_triggers ORDER BY def \gexec
RESET search_path;
SELECT "table", event_prefix, operations, columns, condition, exclude_columns
  FROM webhook.watches WHERE "table" = 'regress_watch.dumped'::regclass;
INSERT INTO regress_watch.dumped VALUES (1, 'paid', 's'), (2, 'free', 's');
UPDATE regress_watch.dumped SET secret = 'changed';
UPDATE regress_watch.dumped SET tier = 'paid' WHERE id = 2;
SELECT event_type, payload -> 'record' AS record FROM webhook.events ORDER BY 1, 2::text;
SAVEPOINT s;
DROP FUNCTION regress_watch.paid(text);
ROLLBACK TO s;
ROLLBACK;
-- Renaming an enum label the condition names updates the arguments too.
CREATE TYPE regress_watch.level AS ENUM ('low', 'high');
CREATE TABLE regress_watch.leveled (id integer, level regress_watch.level);
SELECT webhook.watch('regress_watch.leveled', operations => '{insert}', condition => 'NEW.level = ''high''');
ALTER TYPE regress_watch.level RENAME VALUE 'high' TO 'top';
SELECT w.condition, pg_get_triggerdef(t.oid) LIKE '%''(new.level = ''''top''''::regress_watch.level)''%' AS args_renamed
  FROM webhook.watches w JOIN pg_trigger t ON t.tgrelid = w."table"
 WHERE w."table" = 'regress_watch.leveled'::regclass;
SELECT webhook.unwatch('regress_watch.leveled');
-- A role that may only create triggers on the table cannot make a watch so,
-- and arguments get the checks of watch().
GRANT TRIGGER ON regress_watch.dumped TO regress_webhook_owner;
SET ROLE regress_webhook_owner;
CREATE TRIGGER webhook_watch_delete AFTER DELETE ON regress_watch.dumped REFERENCING OLD TABLE AS webhook_old
    FOR EACH STATEMENT EXECUTE FUNCTION webhook._watch_trigger('hijack', '{delete}', '', '', '');
\echo SQLSTATE :SQLSTATE
RESET ROLE;
CREATE TRIGGER webhook_watch_delete AFTER DELETE ON regress_watch.dumped REFERENCING OLD TABLE AS webhook_old
    FOR EACH STATEMENT EXECUTE FUNCTION webhook._watch_trigger('dumped', '{delete}', '', 'true); SELECT (1', '');
\echo SQLSTATE :SQLSTATE
CREATE TRIGGER webhook_watch_delete AFTER DELETE ON regress_watch.dumped REFERENCING OLD TABLE AS webhook_old
    FOR EACH STATEMENT EXECUTE FUNCTION webhook._watch_trigger('dumped', '{insert}', '', '', '');
\echo SQLSTATE :SQLSTATE
SELECT webhook.unwatch('regress_watch.dumped');

-- unwatch(NULL) is NULL, like PostgreSQL's own functions; watch(NULL) is an error.
SELECT webhook.unwatch(NULL) IS NULL AS unwatch_null;
SELECT webhook.watch(NULL);
\echo SQLSTATE :SQLSTATE
SELECT webhook.unwatch('regress_watch.inj'), webhook.unwatch('regress_watch.odd');

--
-- Tables a watch cannot serve are refused: a temporary table (it goes at
-- the end of its session, and nothing removes its watch), the extension's
-- own tables and anything in its schema, system catalogs, OIDs of no table.
--
CREATE TEMP TABLE regress_temp_orders (id integer);
SELECT webhook.watch('regress_temp_orders', event_prefix => 'order');
\echo SQLSTATE :SQLSTATE
SELECT webhook.watch('webhook.events');
\echo SQLSTATE :SQLSTATE
SELECT webhook.watch('webhook.endpoints');
\echo SQLSTATE :SQLSTATE
CREATE TABLE webhook.regress_extra (id integer);
SELECT webhook.watch('webhook.regress_extra');
\echo SQLSTATE :SQLSTATE
DROP TABLE webhook.regress_extra;
SELECT webhook.watch('pg_catalog.pg_class');
\echo SQLSTATE :SQLSTATE
SELECT webhook.watch(0);
\echo SQLSTATE :SQLSTATE
SELECT webhook.unwatch(0);
\echo SQLSTATE :SQLSTATE
-- A new session: the temporary table is gone, the watches are readable.
\c -
\set SHOW_CONTEXT never
SELECT count(*) AS watches FROM webhook.watches WHERE event_prefix = 'order';
-- A watch row left without its table (here the event trigger that removes
-- it was disabled) still reads, and unwatch() of its OID removes it.
CREATE TABLE regress_watch.gone (id integer);
SELECT webhook.watch('regress_watch.gone', condition => 'NEW.id > 0');
SELECT 'regress_watch.gone'::regclass::oid AS gone_oid \gset
ALTER EVENT TRIGGER webhook_forget_dropped_watches DISABLE;
DROP TABLE regress_watch.gone;
ALTER EVENT TRIGGER webhook_forget_dropped_watches ENABLE;
SELECT "table"::oid = :gone_oid AS gone, event_prefix, columns, condition
  FROM webhook.watches WHERE event_prefix = 'gone';
SELECT webhook.unwatch(:gone_oid) AS removed, webhook.unwatch(:gone_oid) AS again;
SELECT count(*) AS watches FROM webhook.watches WHERE event_prefix = 'gone';

--
-- Under webhook.strict_event_types, watched events obey the catalogue as
-- send() does: watch() refuses types not in it, and so does a write made
-- after a type left it.
--
CREATE TABLE regress_watch.strict_orders (id integer);
SET webhook.strict_event_types = on;
SELECT webhook.watch('regress_watch.strict_orders', event_prefix => 'order');
\echo SQLSTATE :SQLSTATE
BEGIN;
INSERT INTO webhook.event_types (name) VALUES ('order.created'), ('order.deleted');
SELECT webhook.watch('regress_watch.strict_orders', event_prefix => 'order');
\echo SQLSTATE :SQLSTATE
ROLLBACK;
BEGIN;
INSERT INTO webhook.event_types (name) VALUES ('order.created'), ('order.deleted');
SELECT webhook.watch('regress_watch.strict_orders', event_prefix => 'order', operations => '{insert,delete}');
INSERT INTO regress_watch.strict_orders VALUES (1);
DELETE FROM webhook.event_types WHERE name = 'order.created';
SAVEPOINT refused;
INSERT INTO regress_watch.strict_orders VALUES (2);
\echo SQLSTATE :SQLSTATE
ROLLBACK TO SAVEPOINT refused;
DELETE FROM regress_watch.strict_orders;
SELECT event_type, payload -> 'record' AS record, payload -> 'old_record' AS old_record
  FROM webhook.events ORDER BY event_type;
ROLLBACK;
RESET webhook.strict_event_types;

--
-- A condition that would fail every write to the table is refused at
-- watch() time: system columns (the changed rows have none), and what the
-- table's owner, who runs the condition, may not read or call.
--
SELECT webhook.watch('regress_watch.customers', condition => 'NEW.xmin IS NOT NULL');
\echo SQLSTATE :SQLSTATE
SELECT webhook.watch('regress_watch.customers', condition => 'OLD.ctid IS NOT NULL');
\echo SQLSTATE :SQLSTATE
SELECT webhook.watch('regress_watch.customers', condition => 'EXISTS (SELECT 1 WHERE NEW.tableoid > 0)');
\echo SQLSTATE :SQLSTATE
-- The system columns of a subquery's own table are its own business.
BEGIN;
SELECT webhook.watch('regress_watch.customers',
                     condition => 'EXISTS (SELECT 1 FROM regress_watch.customers c WHERE c.id = NEW.id AND c.xmin IS NOT NULL)');
INSERT INTO regress_watch.customers VALUES (1, 'ada@example.com', 'trial', 'h1', NULL);
SELECT count(*) AS events FROM webhook.events;
ROLLBACK;
CREATE TABLE regress_watch.private (id integer);
CREATE FUNCTION regress_watch.private_check(integer) RETURNS boolean LANGUAGE sql RETURN $1 > 0;
REVOKE EXECUTE ON FUNCTION regress_watch.private_check(integer) FROM PUBLIC;
CREATE SCHEMA regress_hidden;
CREATE FUNCTION regress_hidden.check_id(integer) RETURNS boolean LANGUAGE sql RETURN $1 > 0;
SET ROLE regress_webhook_owner;
SELECT webhook.watch('regress_watch.orders', condition => 'EXISTS (SELECT FROM regress_watch.private p WHERE p.id = NEW.id)');
\echo SQLSTATE :SQLSTATE
SELECT webhook.watch('regress_watch.orders', condition => 'regress_watch.private_check(NEW.id)');
\echo SQLSTATE :SQLSTATE
RESET ROLE;
-- A superuser watching the owner's table is held to the owner's rights too.
SELECT webhook.watch('regress_watch.orders', condition => 'NEW.id IN (SELECT p.id FROM regress_watch.private p)');
\echo SQLSTATE :SQLSTATE
SELECT webhook.watch('regress_watch.orders', condition => 'regress_hidden.check_id(NEW.id)');
\echo SQLSTATE :SQLSTATE
SELECT count(*) AS watches FROM webhook.watches WHERE "table" = 'regress_watch.orders'::regclass;
-- A condition failing when it runs shows writers neither its text nor the
-- query around it.
SET ROLE regress_webhook_owner;
SELECT webhook.watch('regress_watch.orders', condition => '100 / (NEW.id - 1) > 0 AND NEW.secret_note <> ''s3cr3t''');
RESET ROLE;
SET ROLE regress_webhook_writer;
\set SHOW_CONTEXT always
INSERT INTO regress_watch.orders VALUES (1, 'new', 'n');
\set SHOW_CONTEXT never
RESET ROLE;
SELECT webhook.unwatch('regress_watch.orders');

-- A watch trigger made by CREATE TRIGGER, as a restore makes it, gets the
-- same checks; only a privilege the owner lacks warns, since a restore
-- grants privileges after it has created the triggers.
CREATE TEMP TABLE regress_temp_restored (id integer);
CREATE TRIGGER webhook_watch_insert AFTER INSERT ON regress_temp_restored REFERENCING NEW TABLE AS webhook_new
    FOR EACH STATEMENT EXECUTE FUNCTION webhook._watch_trigger('order', '{insert}', '', '', '');
\echo SQLSTATE :SQLSTATE
DROP TABLE regress_temp_restored;
CREATE TRIGGER webhook_watch_insert AFTER INSERT ON regress_watch.customers REFERENCING NEW TABLE AS webhook_new
    FOR EACH STATEMENT EXECUTE FUNCTION webhook._watch_trigger('customers', '{insert}', '', '(new.xmin IS NOT NULL)', '');
\echo SQLSTATE :SQLSTATE
SET webhook.strict_event_types = on;
CREATE TRIGGER webhook_watch_insert AFTER INSERT ON regress_watch.customers REFERENCING NEW TABLE AS webhook_new
    FOR EACH STATEMENT EXECUTE FUNCTION webhook._watch_trigger('customers', '{insert}', '', '', '');
\echo SQLSTATE :SQLSTATE
RESET webhook.strict_event_types;
BEGIN;
CREATE TRIGGER webhook_watch_insert AFTER INSERT ON regress_watch.orders REFERENCING NEW TABLE AS webhook_new
    FOR EACH STATEMENT EXECUTE FUNCTION webhook._watch_trigger('orders', '{insert}', '', '(EXISTS (SELECT FROM regress_watch.private p WHERE p.id = new.id))', '');
SELECT "table", operations, condition FROM webhook.watches WHERE "table" = 'regress_watch.orders'::regclass;
GRANT SELECT ON regress_watch.private TO regress_webhook_owner;
INSERT INTO regress_watch.private VALUES (7);
INSERT INTO regress_watch.orders VALUES (7, 'new', 'n');
SELECT event_type FROM webhook.events;
ROLLBACK;

-- A watch cached by this backend whose row's page is gone: VACUUM FULL
-- rewrites webhook.table_watches shorter while the cached row (past a
-- page of other watches) was replaced.  The next statement reads the watch
-- again, and reads nothing past the table's end.
SET client_min_messages = warning;
DO $$
BEGIN
    FOR i IN 1..150 LOOP
        EXECUTE format('CREATE TABLE regress_watch.pad_%s (id integer)', i);
        PERFORM webhook.watch(format('regress_watch.pad_%s', i)::regclass);
    END LOOP;
END $$;
RESET client_min_messages;
CREATE TABLE regress_watch.probe (id integer);
SELECT webhook.watch('regress_watch.probe', event_prefix => 'probe.first', operations => '{insert}');
SELECT (ctid::text::point)[0] > 0 AS past_the_first_page
  FROM webhook.table_watches WHERE table_oid = 'regress_watch.probe'::regclass;
INSERT INTO regress_watch.probe VALUES (1);
DO $$
BEGIN
    FOR i IN 1..150 LOOP
        PERFORM webhook.unwatch(format('regress_watch.pad_%s', i)::regclass);
    END LOOP;
END $$;
SELECT webhook.watch('regress_watch.probe', event_prefix => 'probe.second', operations => '{insert}');
-- VACUUM FULL keeps the row versions that a snapshot taken before the
-- unwatches may still see (the worker's read, an autovacuum ANALYZE): wait
-- until no other backend holds one.
SELECT set_config('regress_watch.after_unwatch', pg_current_xact_id()::text, false) IS NOT NULL AS noted;
DO $$
BEGIN
    FOR i IN 1..600 LOOP
        PERFORM pg_stat_clear_snapshot();
        EXIT WHEN NOT EXISTS (
            SELECT 1 FROM pg_stat_activity a
             WHERE a.pid <> pg_backend_pid() AND a.backend_xmin IS NOT NULL
               AND age(a.backend_xmin) > age(current_setting('regress_watch.after_unwatch')::xid));
        PERFORM pg_sleep(0.1);
    END LOOP;
END $$;
VACUUM FULL webhook.table_watches;
SELECT pg_relation_size('webhook.table_watches') <= current_setting('block_size')::int AS one_page;
INSERT INTO regress_watch.probe VALUES (2);
SELECT event_type, payload -> 'record' ->> 'id' AS id FROM webhook.events
 WHERE event_type LIKE 'probe.%' ORDER BY 2;
SELECT webhook.unwatch('regress_watch.probe');
DELETE FROM webhook.events WHERE event_type LIKE 'probe.%';

-- A rewrite keeps xmins but moves rows: two watches made in one
-- transaction, the first cached, then changed, and VACUUM FULL packs the
-- second into the first's old place.  The cache sees another file and
-- reads the watch again, instead of taking the second row for the first.
VACUUM FULL webhook.table_watches;
CREATE TABLE regress_watch.twin_a (id integer);
CREATE TABLE regress_watch.twin_b (id integer);
BEGIN;
SELECT webhook.watch('regress_watch.twin_a', event_prefix => 'twin.a', operations => '{insert}');
SELECT webhook.watch('regress_watch.twin_b', event_prefix => 'twin.b', operations => '{insert}');
COMMIT;
SELECT ctid AS a_was FROM webhook.table_watches WHERE table_oid = 'regress_watch.twin_a'::regclass \gset
INSERT INTO regress_watch.twin_a VALUES (1);
SELECT webhook.watch('regress_watch.twin_a', event_prefix => 'twin.a2', operations => '{insert}');
VACUUM FULL webhook.table_watches;
SELECT table_oid::regclass AS now_at_a_was FROM webhook.table_watches WHERE ctid = :'a_was';
INSERT INTO regress_watch.twin_a VALUES (2);
SELECT event_type, payload -> 'record' ->> 'id' AS id FROM webhook.events
 WHERE event_type LIKE 'twin.%' ORDER BY 2;
SELECT webhook.unwatch('regress_watch.twin_a'), webhook.unwatch('regress_watch.twin_b');
DELETE FROM webhook.events WHERE event_type LIKE 'twin.%';

-- Leave nothing behind.
SET client_min_messages = warning;
DROP SCHEMA regress_evil CASCADE;
DROP SCHEMA regress_hidden CASCADE;
DROP SCHEMA regress_watch CASCADE;
DROP OWNED BY regress_webhook_owner, regress_webhook_writer;
DROP ROLE regress_webhook_owner, regress_webhook_writer;
RESET client_min_messages;
SELECT count(*) AS watches FROM webhook.table_watches;
SELECT count(*) AS events FROM webhook.events;
