-- Ordering keys: send(..., ordering_key => ...) stores the key; a watched
-- row's key is its table and primary key; an ordered endpoint offers the
-- oldest pending delivery of each key (webhook._ordered_heads), and
-- endpoint_health counts the keys held by a failing head.  In transactions
-- that are rolled back.
\set SHOW_CONTEXT never
\set VERBOSITY terse

BEGIN;
SELECT webhook.send('ord.a', '{}', ordering_key => 'order-1001') AS a \gset
SELECT webhook.send('ord.b', '{}', 'idem-ord', ordering_key => 'order-1002') AS b \gset
SELECT webhook.send('ord.c', '{}') AS c \gset
SELECT event_type, ordering_key FROM webhook.events WHERE id IN (:'a', :'b', :'c') ORDER BY event_type;
-- At most 256 bytes, as idempotency keys.
SAVEPOINT s;
SELECT webhook.send('ord.d', '{}', ordering_key => repeat('k', 257));
ROLLBACK TO s;
SELECT webhook.send('ord.d', '{}', ordering_key => repeat('k', 256)) IS NOT NULL AS sent_256;
-- Not empty: NULL is the endpoint's own sequence.
SAVEPOINT s;
SELECT webhook.send('ord.d', '{}', ordering_key => '');
ROLLBACK TO s;

-- A watched table's key: '<schema>.<table>:' and its primary key's value
-- (several as a JSON array); none without a primary key; a long one hashed (never
-- refused: that would fail the application's write).
CREATE TABLE public.ord_pk (region text, id int, v text, PRIMARY KEY (region, id));
CREATE TABLE public.ord_nopk (id int, v text);
CREATE TABLE public.ord_long (k text PRIMARY KEY);
SELECT webhook.watch('public.ord_pk', 'ordpk'), webhook.watch('public.ord_nopk', 'ordnopk'),
       webhook.watch('public.ord_long', 'ordlong');
INSERT INTO public.ord_pk VALUES ('eu', 1, 'x'), ('us', 2, 'y');
UPDATE public.ord_pk SET v = 'z' WHERE id = 1;
DELETE FROM public.ord_pk WHERE id = 2;
INSERT INTO public.ord_nopk VALUES (1, 'x');
INSERT INTO public.ord_long VALUES ('short'), (repeat('x', 300));
SELECT event_type, ordering_key FROM webhook.events
 WHERE event_type LIKE 'ordpk.%' OR event_type LIKE 'ordnopk.%' OR event_type LIKE 'ordlong.%'
 ORDER BY id;

-- A table's name is quoted where it needs to be, so no two tables' keys
-- read alike.
CREATE SCHEMA "ord.s";
CREATE TABLE "ord.s".t (id int PRIMARY KEY);
SELECT webhook.watch('"ord.s".t', 'ordq');
INSERT INTO "ord.s".t VALUES (1);
SELECT ordering_key FROM webhook.events WHERE event_type = 'ordq.created';

-- The option names other columns, or none ('{}'); NULL is the primary key.
CREATE TABLE public.ord_opt (id int PRIMARY KEY, account text, v text);
SELECT webhook.watch('public.ord_opt', 'ordopt', ordering_key => '{account}');
INSERT INTO public.ord_opt VALUES (1, 'acme', 'x');
SELECT webhook.watch('public.ord_opt', 'ordopt', ordering_key => '{}');
INSERT INTO public.ord_opt VALUES (2, 'acme', 'x');
SELECT webhook.watch('public.ord_opt', 'ordopt', ordering_key => NULL);
INSERT INTO public.ord_opt VALUES (3, 'acme', 'x');
SELECT payload -> 'record' ->> 'id' AS id, ordering_key FROM webhook.events
 WHERE event_type = 'ordopt.created' ORDER BY id;
SAVEPOINT s;
SELECT webhook.watch('public.ord_opt', 'ordopt', ordering_key => '{nope}');
ROLLBACK TO s;
-- Kept by column number: a rename follows, a drop is refused.
SELECT webhook.watch('public.ord_opt', 'ordopt', ordering_key => '{account}');
ALTER TABLE public.ord_opt RENAME COLUMN account TO customer;
SELECT ordering_key FROM webhook.watches WHERE "table" = 'public.ord_opt'::regclass;
INSERT INTO public.ord_opt VALUES (4, 'initech', 'x');
SELECT ordering_key FROM webhook.events WHERE event_type = 'ordopt.created' AND payload -> 'record' ->> 'id' = '4';
SAVEPOINT s;
ALTER TABLE public.ord_opt DROP COLUMN customer;
ROLLBACK TO s;

-- The heads of an ordered endpoint's keys: the oldest pending delivery of
-- each, whatever its state (in flight, retrying, scheduled).
INSERT INTO webhook.endpoints (id, name, url, ordered, event_types) VALUES (9801, 'ord-heads', 'https://example.com/o', true, '{ord.x}');
INSERT INTO webhook.events (id, event_type, payload, txid) VALUES
    ('00000000-0000-7000-8000-000000009801', 'ord.x', '{}', '0');
INSERT INTO webhook.delivery_state (id, event_id, endpoint_id, ordering_key, status, attempts)
OVERRIDING SYSTEM VALUE
VALUES (980001, '00000000-0000-7000-8000-000000009801', 9801, 'a', 'succeeded', 1),
       (980002, '00000000-0000-7000-8000-000000009801', 9801, 'a', 'pending', 2),
       (980003, '00000000-0000-7000-8000-000000009801', 9801, 'a', 'pending', 0),
       (980004, '00000000-0000-7000-8000-000000009801', 9801, 'b', 'pending', 0),
       (980005, '00000000-0000-7000-8000-000000009801', 9801, 'b', 'pending', 0),
       (980006, '00000000-0000-7000-8000-000000009801', 9801, '', 'pending', 0),
       (980007, '00000000-0000-7000-8000-000000009801', 9801, 'c', 'failed', 5);
SELECT id, ordering_key, attempts FROM webhook._ordered_heads(9801) ORDER BY ordering_key;
-- Key a's head has failed before: one key blocked, the others are not.
SELECT name, pending, blocked_keys, oldest_blocked_at IS NOT NULL AS has_oldest
  FROM webhook.endpoint_health WHERE id = 9801;
SELECT ordering_key, count(*) FROM webhook.deliveries WHERE endpoint_id = 9801 AND status = 'pending'
 GROUP BY 1 ORDER BY 1;
ROLLBACK;
