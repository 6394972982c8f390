-- OAuth2 client credentials: oauth_token_url, oauth_client_id and
-- oauth_client_secret go together, oauth_scope only with them; the token
-- URL obeys the endpoint URL's rules and network guard; the client secret
-- is sealed at rest and unreadable by a role that only sends.  Endpoints
-- are written in transactions that are rolled back; the key file of this
-- test is removed and the setting reset at the end.
\set SHOW_CONTEXT never

CREATE ROLE regress_oauth_app NOLOGIN;
GRANT USAGE ON SCHEMA webhook TO regress_oauth_app;
GRANT EXECUTE ON FUNCTION webhook.send(text, jsonb, text, timestamptz, text) TO regress_oauth_app;
CREATE ROLE regress_oauth_manager NOLOGIN;
GRANT USAGE ON SCHEMA webhook TO regress_oauth_manager;
GRANT SELECT, INSERT, UPDATE, DELETE ON webhook.endpoints TO regress_oauth_manager;

--
-- Accepted: all three (with or without a scope), or none.
--
BEGIN;
INSERT INTO webhook.endpoints (id, url, oauth_token_url, oauth_client_id, oauth_client_secret, oauth_scope) VALUES
    (9401, 'https://example.com/a', NULL, NULL, NULL, NULL),
    (9402, 'https://example.com/b', 'https://auth.example.com/oauth/token', 'client-1', 's3cret', NULL),
    (9403, 'https://example.com/c', 'https://auth.example.com/token?audience=x', 'client 2', 'p@ss:word', 'webhooks:write events.read');
-- Sealed at rest (by default too): the stored value is ciphertext.
SELECT id, oauth_token_url, oauth_client_id, webhook._unseal(oauth_client_secret) AS oauth_client_secret,
       oauth_client_secret LIKE 'whenc:v1:%' AS sealed, oauth_scope
  FROM webhook.endpoints WHERE id BETWEEN 9401 AND 9403 ORDER BY id;
-- Taken away all at once.
UPDATE webhook.endpoints SET oauth_token_url = NULL, oauth_client_id = NULL, oauth_client_secret = NULL,
       oauth_scope = NULL WHERE id = 9403;
SELECT id, oauth_token_url IS NULL AS no_oauth FROM webhook.endpoints WHERE id = 9403;
ROLLBACK;

--
-- Refused: a part missing, a scope alone, empty or oversized values,
-- control characters, a bad scope, a token URL the URL rules or the network
-- guard refuse (errors show its origin, never credentials), and a clash
-- with another Authorization header.
--
INSERT INTO webhook.endpoints (url, oauth_token_url, oauth_client_id) VALUES ('https://example.com/x', 'https://auth.example.com/t', 'id');
INSERT INTO webhook.endpoints (url, oauth_token_url, oauth_client_secret) VALUES ('https://example.com/x', 'https://auth.example.com/t', 's');
INSERT INTO webhook.endpoints (url, oauth_client_id, oauth_client_secret) VALUES ('https://example.com/x', 'id', 's');
INSERT INTO webhook.endpoints (url, oauth_scope) VALUES ('https://example.com/x', 'read');
INSERT INTO webhook.endpoints (url, oauth_token_url, oauth_client_id, oauth_client_secret) VALUES ('https://example.com/x', 'https://auth.example.com/t', '', 's');
INSERT INTO webhook.endpoints (url, oauth_token_url, oauth_client_id, oauth_client_secret) VALUES ('https://example.com/x', 'https://auth.example.com/t', 'id', '');
INSERT INTO webhook.endpoints (url, oauth_token_url, oauth_client_id, oauth_client_secret) VALUES ('https://example.com/x', 'https://auth.example.com/t', E'id\n', 's');
INSERT INTO webhook.endpoints (url, oauth_token_url, oauth_client_id, oauth_client_secret) VALUES ('https://example.com/x', 'https://auth.example.com/t', repeat('i', 257), 's');
INSERT INTO webhook.endpoints (url, oauth_token_url, oauth_client_id, oauth_client_secret) VALUES ('https://example.com/x', 'https://auth.example.com/t', 'id', repeat('s', 1025));
INSERT INTO webhook.endpoints (url, oauth_token_url, oauth_client_id, oauth_client_secret, oauth_scope) VALUES ('https://example.com/x', 'https://auth.example.com/t', 'id', 's', 'read "all"');
INSERT INTO webhook.endpoints (url, oauth_token_url, oauth_client_id, oauth_client_secret, oauth_scope) VALUES ('https://example.com/x', 'https://auth.example.com/t', 'id', 's', '');
INSERT INTO webhook.endpoints (url, oauth_token_url, oauth_client_id, oauth_client_secret) VALUES ('https://example.com/x', 'ftp://auth.example.com/t', 'id', 's');
INSERT INTO webhook.endpoints (url, oauth_token_url, oauth_client_id, oauth_client_secret) VALUES ('https://example.com/x', 'https://user:secret@auth.example.com/t', 'id', 's');
INSERT INTO webhook.endpoints (url, oauth_token_url, oauth_client_id, oauth_client_secret) VALUES ('https://example.com/x', 'not a url', 'id', 's');
INSERT INTO webhook.endpoints (url, oauth_token_url, oauth_client_id, oauth_client_secret) VALUES ('https://example.com/x', 'http://127.0.0.1:8080/token', 'id', 's');
INSERT INTO webhook.endpoints (url, oauth_token_url, oauth_client_id, oauth_client_secret) VALUES ('https://example.com/x', 'http://169.254.169.254/latest/token', 'id', 's');
INSERT INTO webhook.endpoints (url, oauth_token_url, oauth_client_id, oauth_client_secret) VALUES ('https://example.com/x', 'https://auth.example.com/' || repeat('a', 2048), 'id', 's');
INSERT INTO webhook.endpoints (url, auth_username, auth_password, oauth_token_url, oauth_client_id, oauth_client_secret) VALUES ('https://example.com/x', 'u', 'p', 'https://auth.example.com/t', 'id', 's');
INSERT INTO webhook.endpoints (url, headers, oauth_token_url, oauth_client_id, oauth_client_secret) VALUES ('https://example.com/x', '{"authorization": "Bearer x"}', 'https://auth.example.com/t', 'id', 's');
-- webhook.require_https applies to the token URL too.
BEGIN;
SET LOCAL webhook.require_https = on;
INSERT INTO webhook.endpoints (url, oauth_token_url, oauth_client_id, oauth_client_secret) VALUES ('https://example.com/x', 'http://auth.example.com/t', 'id', 's');
ROLLBACK;
-- An UPDATE is checked too: an Authorization header added later, or a
-- part taken away alone.
BEGIN;
INSERT INTO webhook.endpoints (id, url, oauth_token_url, oauth_client_id, oauth_client_secret)
VALUES (9404, 'https://example.com/u', 'https://auth.example.com/t', 'id', 's');
SAVEPOINT s;
UPDATE webhook.endpoints SET headers = '{"Authorization": "Basic eA=="}' WHERE id = 9404;
ROLLBACK TO s;
UPDATE webhook.endpoints SET oauth_client_secret = NULL WHERE id = 9404;
ROLLBACK TO s;
UPDATE webhook.endpoints SET oauth_token_url = 'http://10.0.0.1/token' WHERE id = 9404;
ROLLBACK TO s;
UPDATE webhook.endpoints SET oauth_scope = 'read' WHERE id = 9404;
SELECT id, oauth_scope FROM webhook.endpoints WHERE id = 9404;
ROLLBACK;

--
-- Privileges: a role that only sends cannot read the columns; a role that
-- manages endpoints writes them under the same checks.
--
SELECT has_column_privilege('regress_oauth_app', 'webhook.endpoints', 'oauth_client_secret', 'SELECT') AS app_may_read_secret;
SET ROLE regress_oauth_app;
SELECT oauth_client_secret FROM webhook.endpoints;
RESET ROLE;
BEGIN;
SET LOCAL ROLE regress_oauth_manager;
INSERT INTO webhook.endpoints (id, url, oauth_token_url, oauth_client_id, oauth_client_secret)
VALUES (9405, 'https://example.com/m', 'https://auth.example.com/t', 'id', 's');
UPDATE webhook.endpoints SET oauth_token_url = 'http://192.168.1.1/t' WHERE id = 9405;
ROLLBACK;

--
-- Sealed at rest under webhook.master_key_file, like the other secrets; the
-- token URL, client id and scope are no secrets and stay as given.
--
COPY (SELECT repeat('ef', 32)) TO PROGRAM 'rm -f regress_oauth.key && umask 077 && cat > regress_oauth.key';
ALTER SYSTEM SET webhook.master_key_file = 'regress_oauth.key';
SELECT pg_reload_conf();
SELECT pg_sleep(0.2);
DO $$ BEGIN IF current_setting('webhook.master_key_file') <> 'regress_oauth.key' THEN PERFORM pg_sleep(2); END IF; END $$;
SHOW webhook.master_key_file;
BEGIN;
INSERT INTO webhook.endpoints (id, url, oauth_token_url, oauth_client_id, oauth_client_secret, oauth_scope)
VALUES (9410, 'https://example.com/s', 'https://auth.example.com/t', 'client-9410', 'very-s3cret', 'read');
SELECT oauth_client_secret LIKE 'whenc:v1:%' AS sealed, oauth_client_secret LIKE '%s3cret%' AS plain_visible,
       webhook._unseal(oauth_client_secret) AS unsealed, oauth_token_url, oauth_client_id, oauth_scope
  FROM webhook.endpoints WHERE id = 9410;
-- An unrelated UPDATE keeps the ciphertext; a sealed value given back is
-- opened, checked and sealed again.
SELECT oauth_client_secret AS sealed_before FROM webhook.endpoints WHERE id = 9410 \gset
UPDATE webhook.endpoints SET description = 'touched' WHERE id = 9410;
SELECT oauth_client_secret = :'sealed_before' AS unchanged FROM webhook.endpoints WHERE id = 9410;
UPDATE webhook.endpoints SET oauth_scope = 'write' WHERE id = 9410;
SELECT oauth_client_secret = :'sealed_before' AS unchanged_by_scope FROM webhook.endpoints WHERE id = 9410;
INSERT INTO webhook.endpoints (id, url, oauth_token_url, oauth_client_id, oauth_client_secret)
VALUES (9411, 'https://example.com/v', 'https://auth.example.com/t', 'id', :'sealed_before');
SELECT oauth_client_secret LIKE 'whenc:v1:%' AS sealed, webhook._unseal(oauth_client_secret) AS unsealed
  FROM webhook.endpoints WHERE id = 9411;
ROLLBACK;

-- Leave nothing behind.
ALTER SYSTEM RESET webhook.master_key_file;
SELECT pg_reload_conf();
SELECT pg_sleep(0.2);
DO $$ BEGIN IF current_setting('webhook.master_key_file') <> '' THEN PERFORM pg_sleep(2); END IF; END $$;
SHOW webhook.master_key_file;
COPY (SELECT '') TO PROGRAM 'rm -f regress_oauth.key';
DROP OWNED BY regress_oauth_app, regress_oauth_manager;
DROP ROLE regress_oauth_app, regress_oauth_manager;
