-- webhook.event_types: the catalogue of topics, its built-in rows, and the
-- names it refuses.  (webhook.strict_event_types is covered in send.sql.)
\set SHOW_CONTEXT never

-- Built in by CREATE EXTENSION.
SELECT name, description FROM webhook.event_types ORDER BY name;

-- Valid names: dot-separated segments of letters, digits, "_" and "-".
INSERT INTO webhook.event_types (name, description) VALUES
    ('order.created', 'an order was placed'),
    ('order.item.added', NULL),
    ('Invoice_v2.paid-late', 'mixed case, digits, "_" and "-"'),
    ('a', 'a single segment');
SELECT name, description FROM webhook.event_types WHERE name NOT LIKE 'webhook.%' ORDER BY name;

-- Invalid names.  created_at is given so that the failing row shown is always the same.
INSERT INTO webhook.event_types (name, created_at) VALUES ('order.', '2001-02-03 04:05:06+00');
\echo SQLSTATE :SQLSTATE
INSERT INTO webhook.event_types (name, created_at) VALUES ('.created', '2001-02-03 04:05:06+00');
\echo SQLSTATE :SQLSTATE
INSERT INTO webhook.event_types (name, created_at) VALUES ('order..created', '2001-02-03 04:05:06+00');
\echo SQLSTATE :SQLSTATE
INSERT INTO webhook.event_types (name, created_at) VALUES ('order.*', '2001-02-03 04:05:06+00');
\echo SQLSTATE :SQLSTATE
INSERT INTO webhook.event_types (name, created_at) VALUES ('*', '2001-02-03 04:05:06+00');
\echo SQLSTATE :SQLSTATE
INSERT INTO webhook.event_types (name, created_at) VALUES ('order created', '2001-02-03 04:05:06+00');
\echo SQLSTATE :SQLSTATE
INSERT INTO webhook.event_types (name, created_at) VALUES ('', '2001-02-03 04:05:06+00');
\echo SQLSTATE :SQLSTATE
INSERT INTO webhook.event_types (name, created_at) VALUES (NULL, '2001-02-03 04:05:06+00');
\echo SQLSTATE :SQLSTATE
-- A name is listed once.
INSERT INTO webhook.event_types (name) VALUES ('order.created');
\echo SQLSTATE :SQLSTATE
-- Renaming to an invalid name is refused too.
UPDATE webhook.event_types SET name = 'order created', created_at = '2001-02-03 04:05:06+00' WHERE name = 'order.created';
\echo SQLSTATE :SQLSTATE

-- Nothing more was written.
SELECT count(*) AS custom_event_types FROM webhook.event_types WHERE name NOT LIKE 'webhook.%';

-- The same names, asked directly.
SELECT name, webhook._is_event_type_name(name) AS is_name, webhook._is_event_type_pattern(name) AS is_pattern
  FROM (VALUES ('order.created'), ('a'), ('A-b_9.c'), ('order.*'), ('*'), ('order.'), ('.x'), ('a..b'),
               ('a.*.b'), ('**'), ('.*'), ('a b'), ('a/b'), ('order:created'), ('')) AS t(name);

-- Leave only the built-in rows.
DELETE FROM webhook.event_types WHERE name NOT LIKE 'webhook.%';
