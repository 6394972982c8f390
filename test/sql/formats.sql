-- Request formats (issue 15: CloudEvents and the seeds' own formats): the
-- endpoint columns format, event_type_header, signature_encoding and
-- cloudevents_source, their defaults, the values they take and the errors
-- for bad input.  What the worker sends for each is test/t/026_formats.pl.
\set SHOW_CONTEXT never

-- The error a statement raises, as "SQLSTATE message", or 'accepted'.
CREATE FUNCTION pg_temp.outcome(sql text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
    EXECUTE sql;
    RETURN 'accepted';
EXCEPTION WHEN OTHERS THEN
    RETURN SQLSTATE || ' ' || SQLERRM;
END;
$$;

-- Defaults: today's request, unchanged.
INSERT INTO webhook.endpoints (name, url) VALUES ('fmt', 'https://example.com/hook');
SELECT format, event_type_header, signature_encoding, cloudevents_source
  FROM webhook.endpoints WHERE name = 'fmt';

-- The lists the CHECK constraints ask (src/request_format.c, src/signature.c).
SELECT v, webhook._is_request_format(v) AS is_format, webhook._is_signature_encoding(v) AS is_encoding
  FROM unnest(ARRAY['standard', 'cloudevents', 'cloudevents-structured', 'CloudEvents', 'cloudevents-binary',
                    'sha256=hex', 'hex', 'base64', 'HEX', 'sha256=base64', '']) AS v;

-- Every format and every encoding is accepted, on INSERT and on UPDATE.
SELECT f, pg_temp.outcome(format('INSERT INTO webhook.endpoints (url, format) VALUES (%L, %L)',
                                 'https://example.com/hook', f)) AS on_insert,
          pg_temp.outcome(format('UPDATE webhook.endpoints SET format = %L WHERE name = %L', f, 'fmt')) AS on_update
  FROM unnest(ARRAY['standard', 'cloudevents', 'cloudevents-structured']) AS f;
SELECT e, pg_temp.outcome(format('INSERT INTO webhook.endpoints (url, signing, signature_encoding) VALUES (%L, %L, %L)',
                                 'https://example.com/hook', 'hmac-sha256', e)) AS on_insert,
          pg_temp.outcome(format('UPDATE webhook.endpoints SET signature_encoding = %L WHERE name = %L', e, 'fmt')) AS on_update
  FROM unnest(ARRAY['sha256=hex', 'hex', 'base64']) AS e;

-- Unknown names: the error names every one there is.
INSERT INTO webhook.endpoints (url, format) VALUES ('https://example.com/hook', 'cloudevents-binary');
UPDATE webhook.endpoints SET format = 'CloudEvents' WHERE name = 'fmt';
INSERT INTO webhook.endpoints (url, signing, signature_encoding) VALUES ('https://example.com/hook', 'hmac-sha256', 'sha256=base64');
UPDATE webhook.endpoints SET signature_encoding = 'HEX' WHERE name = 'fmt';
-- NULL is refused like any NOT NULL column of endpoints, without printing the row.
INSERT INTO webhook.endpoints (url, format) VALUES ('https://example.com/hook', NULL);
UPDATE webhook.endpoints SET signature_encoding = NULL WHERE name = 'fmt';
UPDATE webhook.endpoints SET event_type_header = NULL WHERE name = 'fmt';

-- event_type_header: the default in any case, or a name the one header rule
-- (src/header_rules.c) lets users set, as for signature_header.
SELECT CASE WHEN length(h) > 30 THEN left(h, 3) || '... (' || length(h) || ' bytes)' ELSE h END AS h,
       pg_temp.outcome(format('INSERT INTO webhook.endpoints (url, event_type_header) VALUES (%L, %L)',
                                 'https://example.com/hook', h)) AS on_insert,
          pg_temp.outcome(format('UPDATE webhook.endpoints SET event_type_header = %L WHERE name = %L', h, 'fmt')) AS on_update
  FROM unnest(ARRAY['webhook-event-type', 'Webhook-Event-Type', 'X-GitHub-Event', 'X-CompleteEvent-Event',
                    'ce-type', 'webhook-id', 'Webhook-Signature', 'Content-Type', 'host', 'Proxy-Event',
                    'X Event', 'X-Event:', '', repeat('x', 128), repeat('x', 129)]) AS h;
-- The full errors of three of them.
UPDATE webhook.endpoints SET event_type_header = 'X Event' WHERE name = 'fmt';
UPDATE webhook.endpoints SET event_type_header = 'webhook-id' WHERE name = 'fmt';
UPDATE webhook.endpoints SET event_type_header = repeat('x', 129) WHERE name = 'fmt';
-- It must not replace the signature header of an hmac-sha256 endpoint...
INSERT INTO webhook.endpoints (url, signing, signature_header, event_type_header)
VALUES ('https://example.com/hook', 'hmac-sha256', 'X-Hub-Signature-256', 'x-hub-signature-256');
UPDATE webhook.endpoints SET event_type_header = 'X-Event' WHERE name = 'fmt';
UPDATE webhook.endpoints SET signing = 'hmac-sha256', signature_header = 'x-event' WHERE name = 'fmt';
-- ... while a scheme that signs in webhook-signature leaves the name free.
UPDATE webhook.endpoints SET signature_header = 'x-event' WHERE name = 'fmt';
SELECT signing, signature_header, event_type_header FROM webhook.endpoints WHERE name = 'fmt';

-- cloudevents_source: NULL (/webhook/<database>) or a URI-reference.
SELECT CASE WHEN length(s) > 50 THEN left(s, 3) || '... (' || length(s) || ' bytes)' ELSE s END AS s,
       pg_temp.outcome(format('INSERT INTO webhook.endpoints (url, format, cloudevents_source) VALUES (%L, %L, %L)',
                                 'https://example.com/hook', 'cloudevents', s)) AS outcome
  FROM unnest(ARRAY[NULL, '/billing/orders', 'https://example.com/a?b=c&d=e#f', 'urn:uuid:6e8bc430-9c3a-11d9-9669-0800200c9a66',
                    'my%20source', '[::1]:8080', 'x', '', 'my source', '"quoted"', 'caf' || chr(233), '/a%2', '/a%zz',
                    '/tab' || chr(9), '/' || repeat('s', 1023), '/' || repeat('s', 1024)]) AS s;
UPDATE webhook.endpoints SET cloudevents_source = 'my source' WHERE name = 'fmt';
UPDATE webhook.endpoints SET cloudevents_source = '/' || repeat('s', 1024) WHERE name = 'fmt';
UPDATE webhook.endpoints SET format = 'cloudevents', cloudevents_source = '/shop/orders' WHERE name = 'fmt';
SELECT format, cloudevents_source FROM webhook.endpoints WHERE name = 'fmt';

-- A write that leaves the format columns alone does not check them again,
-- so a row written past the triggers stays writable; the CHECK constraints
-- still hold the names to their lists.
SET session_replication_role = replica;
UPDATE webhook.endpoints SET cloudevents_source = 'not a uri' WHERE name = 'fmt';
SELECT pg_temp.outcome($$UPDATE webhook.endpoints SET format = 'bogus' WHERE name = 'fmt'$$);
SELECT pg_temp.outcome($$UPDATE webhook.endpoints SET signature_encoding = 'bogus' WHERE name = 'fmt'$$);
RESET session_replication_role;
UPDATE webhook.endpoints SET timeout_ms = 1000 WHERE name = 'fmt';
UPDATE webhook.endpoints SET active = false WHERE name = 'fmt';
-- ... until it is turned on again: then every column is checked.
UPDATE webhook.endpoints SET active = true WHERE name = 'fmt';
UPDATE webhook.endpoints SET active = true, cloudevents_source = NULL WHERE name = 'fmt';

-- A role that may write endpoints, and nothing else in the schema, can use
-- every format column: the checks run as the writer.
CREATE ROLE regress_fmt_writer;
GRANT USAGE ON SCHEMA webhook TO regress_fmt_writer;
GRANT SELECT, INSERT, UPDATE ON webhook.endpoints TO regress_fmt_writer;
GRANT USAGE ON SEQUENCE webhook.endpoints_id_seq TO regress_fmt_writer;
SET ROLE regress_fmt_writer;
INSERT INTO webhook.endpoints (name, url, format, event_type_header, signing, signature_header, signature_encoding, cloudevents_source)
VALUES ('fmt_writer', 'https://example.com/hook', 'cloudevents-structured', 'X-GitHub-Event', 'hmac-sha256',
        'X-Hub-Signature-256', 'base64', '/writer');
UPDATE webhook.endpoints SET format = 'cloudevents' WHERE name = 'fmt_writer';
INSERT INTO webhook.endpoints (url, format) VALUES ('https://example.com/hook', 'nope');
RESET ROLE;
SELECT format, event_type_header, signature_encoding, cloudevents_source
  FROM webhook.endpoints WHERE name = 'fmt_writer';

-- The README's configurations of the seeds' own formats, as written there,
-- in a transaction rolled back: nothing is ever sent to those hosts.
BEGIN;
CREATE FUNCTION public.completeevent_body(event_type text, created_at timestamptz, payload jsonb)
RETURNS text LANGUAGE sql
RETURN format('{"event":%s,"timestamp":%s,"data":%s}', to_json(event_type),
              to_json(to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"')), payload);
INSERT INTO webhook.endpoints (url, signing, secret, signature_header, signature_encoding,
                               event_type_header, transform)
VALUES ('https://app.example.com/completeevent', 'hmac-sha256', 'the receiver''s secret',
        'X-CompleteEvent-Signature', 'hex', 'X-CompleteEvent-Event', 'public.completeevent_body');
INSERT INTO webhook.endpoints (url, signing, secret, signature_header, signature_encoding)
VALUES ('https://app.example.com/commenda', 'hmac-sha256', 'the receiver''s secret',
        'Commenda-X-Secret', 'hex');
CREATE FUNCTION public.github_body(event_type text, created_at timestamptz, payload jsonb)
RETURNS jsonb LANGUAGE sql
RETURN payload;
INSERT INTO webhook.endpoints (url, event_types, signing, secret, signature_header,
                               event_type_header, transform)
VALUES ('https://ci.example.com/github', '{push, pull_request}', 'hmac-sha256', 'the receiver''s secret',
        'X-Hub-Signature-256', 'X-GitHub-Event', 'public.github_body');
INSERT INTO webhook.endpoints (url, format, cloudevents_source)
VALUES ('https://events.example.com/in', 'cloudevents', 'https://shop.example.com');
SELECT url, event_types, format, signing, signature_header, signature_encoding, event_type_header, transform, cloudevents_source
  FROM webhook.endpoints WHERE url LIKE 'https://%.example.com/%' ORDER BY id;
SELECT webhook.send('push', '{"ref": "refs/heads/main"}') IS NOT NULL AS sent;
SELECT e.url, count(d.event_id) AS deliveries
  FROM webhook.endpoints e LEFT JOIN webhook.deliveries d ON d.endpoint_id = e.id
 WHERE e.url LIKE 'https://%.example.com/%' GROUP BY e.id, e.url ORDER BY e.id;
ROLLBACK;

-- webhook.sign() still writes hmac-sha256 signatures as sha256=<hex>.
SELECT webhook.sign('It''s a Secret to Everybody', 'x', 0, 'Hello, World!', 'hmac-sha256');
-- ... and in any signature_encoding, named as endpoints name them.
SELECT e, webhook.sign('It''s a Secret to Everybody', 'x', 0, 'Hello, World!', 'hmac-sha256', e)
  FROM unnest(ARRAY['sha256=hex', 'hex', 'base64']) AS e;
SELECT webhook.sign('It''s a Secret to Everybody', 'x', 0, 'Hello, World!', 'hmac-sha256', 'HEX');
SELECT webhook.sign('It''s a Secret to Everybody', 'x', 0, 'Hello, World!', 'hmac-sha256', NULL) IS NULL AS strict;
-- Other schemes have one form, whatever the encoding says.
SELECT webhook.sign('whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw', 'msg_p5jXN8AQM9LWM0D4loKWxJek', 1614265330,
                    '{"test": 2432232314}', 'standard', 'hex')
     = webhook.sign('whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw', 'msg_p5jXN8AQM9LWM0D4loKWxJek', 1614265330,
                    '{"test": 2432232314}') AS same;

-- No header is sent twice.  An extra header may not take the name of the
-- event type header, whichever of the two the write sets (the default,
-- webhook-event-type, is a reserved name anyway).
INSERT INTO webhook.endpoints (url, event_type_header, headers)
VALUES ('https://example.com/hook', 'X-GitHub-Event', '{"x-github-event": "push"}');
INSERT INTO webhook.endpoints (name, url, event_type_header, headers)
VALUES ('clash', 'https://example.com/hook', 'X-GitHub-Event', '{"X-Api-Key": "k"}');
UPDATE webhook.endpoints SET headers = '{"X-Api-Key": "k", "X-GITHUB-EVENT": "push"}' WHERE name = 'clash';
UPDATE webhook.endpoints SET event_type_header = 'x-api-key' WHERE name = 'clash';
UPDATE webhook.endpoints SET headers = '{"Webhook-Event-Type": "x"}', event_type_header = DEFAULT WHERE name = 'clash';
-- In format cloudevents (binary mode) the extension sends the ce-*
-- attributes and Content-Type: no header the user names may be one, extra,
-- event type or signature header, whichever the write sets.
SELECT h, pg_temp.outcome(format('INSERT INTO webhook.endpoints (url, format, headers) VALUES (%L, %L, %L)',
                                 'https://example.com/hook', 'cloudevents', jsonb_build_object(h, 'v'))) AS outcome
  FROM unnest(ARRAY['ce-id', 'CE-Source', 'ce-type', 'Ce-Time', 'ce-specversion', 'ce-myextension',
                    'Content-Type', 'X-Ce-Id', 'ce', 'cex-id']) AS h;
INSERT INTO webhook.endpoints (url, format, headers) VALUES ('https://example.com/hook', 'cloudevents', '{"ce-id": "forged"}');
INSERT INTO webhook.endpoints (url, format, event_type_header) VALUES ('https://example.com/hook', 'cloudevents', 'ce-type');
INSERT INTO webhook.endpoints (url, format, signing, signature_header)
VALUES ('https://example.com/hook', 'cloudevents', 'hmac-sha256', 'CE-Signature');
-- Other formats leave ce-* names free; turning the format to cloudevents
-- checks them.
UPDATE webhook.endpoints SET headers = '{"ce-id": "mine"}', event_type_header = 'X-GitHub-Event' WHERE name = 'clash';
UPDATE webhook.endpoints SET format = 'cloudevents-structured' WHERE name = 'clash';
UPDATE webhook.endpoints SET format = 'cloudevents' WHERE name = 'clash';
UPDATE webhook.endpoints SET headers = '{"X-Api-Key": "k"}', event_type_header = 'ce-type' WHERE name = 'clash';
UPDATE webhook.endpoints SET format = 'cloudevents' WHERE name = 'clash';
UPDATE webhook.endpoints SET event_type_header = DEFAULT, format = 'cloudevents' WHERE name = 'clash';
UPDATE webhook.endpoints SET headers = '{"ce-id": "mine"}' WHERE name = 'clash';
SELECT format, event_type_header, headers ? 'X-Api-Key' AS has_key FROM webhook.endpoints WHERE name = 'clash';

-- Leave nothing behind.
DELETE FROM webhook.endpoints;
REVOKE ALL ON webhook.endpoints, webhook.endpoints_id_seq FROM regress_fmt_writer;
REVOKE ALL ON SCHEMA webhook FROM regress_fmt_writer;
DROP ROLE regress_fmt_writer;
