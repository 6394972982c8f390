-- One rule for the names of request headers (src/header_rules.c): a name the
-- extension or HTTP itself sets is refused alike as an extra header and as
-- the signature header, on INSERT and on UPDATE, in any case, whatever the
-- signing scheme.
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

-- The case the issue found: Transfer-Encoding as the signature header.
INSERT INTO webhook.endpoints (url, signing, signature_header)
VALUES ('https://example.com/hook', 'hmac-sha256', 'Transfer-Encoding');
\echo SQLSTATE :SQLSTATE
INSERT INTO webhook.endpoints (name, url, signing) VALUES ('rules', 'https://example.com/hook', 'hmac-sha256');
UPDATE webhook.endpoints SET signature_header = 'transfer-encoding' WHERE name = 'rules';
\echo SQLSTATE :SQLSTATE

-- Every reserved name, in three spellings, through each door.
WITH names AS (
    SELECT v.spelling
      FROM unnest(ARRAY['Content-Type', 'Content-Length', 'Host', 'Transfer-Encoding', 'Connection',
                        'Keep-Alive', 'TE', 'Trailer', 'Upgrade', 'Expect',
                        'webhook-id', 'Webhook-Signature', 'Proxy-Authorization']) AS n(name)
     CROSS JOIN LATERAL (VALUES (n.name), (lower(n.name)), (upper(n.name))) AS v(spelling)
), outcomes AS (
    SELECT s.signing, names.spelling,
           pg_temp.outcome(format('INSERT INTO webhook.endpoints (url, signing, headers) VALUES (%L, %L, %L)',
                                  'https://example.com/hook', s.signing,
                                  jsonb_build_object(names.spelling, 'x'))) AS as_header,
           pg_temp.outcome(format('INSERT INTO webhook.endpoints (url, signing, signature_header) VALUES (%L, %L, %L)',
                                  'https://example.com/hook', s.signing, names.spelling)) AS as_signature_header,
           pg_temp.outcome(format('UPDATE webhook.endpoints SET signing = %L, signature_header = %L WHERE name = %L',
                                  s.signing, names.spelling, 'rules')) AS as_updated_signature_header
      FROM names
     CROSS JOIN unnest(ARRAY['standard', 'ed25519', 'hmac-sha256', 'none']) AS s(signing)
)
SELECT count(*) AS attempts,
       count(*) FILTER (WHERE as_header LIKE '22023 header "%" is set by the extension or by HTTP itself and cannot be overridden') AS refused_as_header,
       count(*) FILTER (WHERE as_signature_header = replace(as_header, '22023 header', '22023 signature header')) AS refused_as_signature_header,
       count(*) FILTER (WHERE as_updated_signature_header = as_signature_header) AS refused_on_update
  FROM outcomes;

-- Names next to reserved ones stay allowed.
INSERT INTO webhook.endpoints (url, signing, signature_header, headers)
VALUES ('https://example.com/hook', 'hmac-sha256', 'X-Transfer-Encoding', '{"Content-Types": "x", "Hosts": "y", "webhooks-id": "z"}')
RETURNING signature_header, headers ?& ARRAY['Content-Types', 'Hosts', 'webhooks-id'] AS headers_kept;

SELECT count(*) AS endpoints_left FROM webhook.endpoints WHERE signature_header ~* '^(transfer-encoding|te)$';
DELETE FROM webhook.endpoints WHERE name = 'rules' OR signature_header = 'X-Transfer-Encoding';
