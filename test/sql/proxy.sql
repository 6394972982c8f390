-- Proxies: the webhook.proxy setting (superuser only, checked), the
-- endpoints' proxy column (checked in clear, its address under the network
-- guard whoever writes it, sealed at rest, unreadable by a role that only
-- sends).  Endpoints are written in transactions that are rolled back; the
-- key file of this test is removed and the setting reset at the end.
\set SHOW_CONTEXT never

CREATE ROLE regress_proxy_app NOLOGIN;
GRANT USAGE ON SCHEMA webhook TO regress_proxy_app;
GRANT EXECUTE ON FUNCTION webhook.send(text, jsonb, text, timestamptz, text) TO regress_proxy_app;
CREATE ROLE regress_proxy_manager NOLOGIN;
GRANT USAGE ON SCHEMA webhook TO regress_proxy_manager;
GRANT SELECT, INSERT, UPDATE, DELETE ON webhook.endpoints TO regress_proxy_manager;

--
-- webhook.proxy: an http:// or https:// URL, or empty (the default) for none.
--
SHOW webhook.proxy;
SET webhook.proxy = 'http://proxy.example.com:3128';
SHOW webhook.proxy;
SET webhook.proxy = 'https://proxy.example.com';
SET webhook.proxy = 'socks5://proxy.example.com:1080';
SET webhook.proxy = 'http://proxy.example.com:3128/path';
SET webhook.proxy = 'proxy.example.com:3128';
SET webhook.proxy = 'direct';
RESET webhook.proxy;
-- Only a superuser may set it, or see it (its URL may carry credentials).
SET ROLE regress_proxy_manager;
SET webhook.proxy = 'http://proxy.example.com:3128';
SHOW webhook.proxy;
SELECT count(*) AS visible FROM pg_settings WHERE name = 'webhook.proxy';
RESET ROLE;

--
-- The proxy column: NULL (webhook.proxy), 'direct' (no proxy), or a URL.
--
BEGIN;
INSERT INTO webhook.endpoints (id, url, proxy) VALUES
    (9301, 'https://example.com/a', NULL),
    (9302, 'https://example.com/b', 'direct'),
    (9303, 'https://example.com/c', 'http://proxy.example.com:3128'),
    (9304, 'https://example.com/d', 'https://proxy.example.com/'),
    (9305, 'https://example.com/e', 'http://user:p%40ss@proxy.example.com:8080');
SELECT id, webhook._unseal(proxy) AS proxy, proxy LIKE 'whenc:v1:%' AS sealed FROM webhook.endpoints WHERE id BETWEEN 9301 AND 9305 ORDER BY id;
ROLLBACK;

-- Refused: other schemes, a path, query or fragment, no host, port 0, the
-- empty string, garbage.  Errors show the proxy's origin, never credentials.
INSERT INTO webhook.endpoints (url, proxy) VALUES ('https://example.com/x', 'socks5://proxy.example.com:1080');
INSERT INTO webhook.endpoints (url, proxy) VALUES ('https://example.com/x', 'ftp://proxy.example.com');
INSERT INTO webhook.endpoints (url, proxy) VALUES ('https://example.com/x', 'http://user:secret@proxy.example.com:3128/path');
INSERT INTO webhook.endpoints (url, proxy) VALUES ('https://example.com/x', 'http://proxy.example.com:3128/?a=1');
INSERT INTO webhook.endpoints (url, proxy) VALUES ('https://example.com/x', 'http://proxy.example.com:3128#top');
INSERT INTO webhook.endpoints (url, proxy) VALUES ('https://example.com/x', 'http://');
INSERT INTO webhook.endpoints (url, proxy) VALUES ('https://example.com/x', 'http://proxy.example.com:0');
INSERT INTO webhook.endpoints (url, proxy) VALUES ('https://example.com/x', 'proxy.example.com:3128');
INSERT INTO webhook.endpoints (url, proxy) VALUES ('https://example.com/x', 'http://proxy example.com');
INSERT INTO webhook.endpoints (url, proxy) VALUES ('https://example.com/x', '');
INSERT INTO webhook.endpoints (url, proxy) VALUES ('https://example.com/x', 'http://proxy.example.com/' || repeat('a', 2048));

-- An endpoint's proxy obeys the network guard, for a superuser too: a host
-- written as a non-public address is refused unless the policy allows it.
INSERT INTO webhook.endpoints (url, proxy) VALUES ('https://example.com/x', 'http://127.0.0.1:3128');
INSERT INTO webhook.endpoints (url, proxy) VALUES ('https://example.com/x', 'http://user:secret@10.1.2.3:3128');
INSERT INTO webhook.endpoints (url, proxy) VALUES ('https://example.com/x', 'http://[::1]:3128');
INSERT INTO webhook.endpoints (url, proxy) VALUES ('https://example.com/x', 'http://0x7f.1:3128');
BEGIN;
SET LOCAL webhook.allowed_networks = '10.1.2.3/32';
INSERT INTO webhook.endpoints (id, url, proxy) VALUES (9306, 'https://example.com/x', 'http://10.1.2.3:3128');
INSERT INTO webhook.endpoints (url, proxy) VALUES ('https://example.com/x', 'http://10.1.2.4:3128');
ROLLBACK;

-- An UPDATE checks a proxy it changes, and one an endpoint is re-activated with.
BEGIN;
SET LOCAL webhook.allowed_networks = '10.1.2.3/32';
INSERT INTO webhook.endpoints (id, url, active, proxy) VALUES (9307, 'https://example.com/x', false, 'http://10.1.2.3:3128');
SET LOCAL webhook.allowed_networks = '';
UPDATE webhook.endpoints SET description = 'still off' WHERE id = 9307;
UPDATE webhook.endpoints SET active = true WHERE id = 9307;
ROLLBACK;
BEGIN;
INSERT INTO webhook.endpoints (id, url) VALUES (9308, 'https://example.com/x');
UPDATE webhook.endpoints SET proxy = 'http://192.168.0.1:3128' WHERE id = 9308;
ROLLBACK;

--
-- Privileges: a role that only sends cannot read the column; a role that
-- manages endpoints writes it under the same checks.
--
SET ROLE regress_proxy_app;
SELECT proxy FROM webhook.endpoints;
RESET ROLE;
BEGIN;
SET LOCAL ROLE regress_proxy_manager;
INSERT INTO webhook.endpoints (id, url, proxy) VALUES (9309, 'https://example.com/m', 'http://proxy.example.com:3128');
UPDATE webhook.endpoints SET proxy = 'direct' WHERE id = 9309;
SELECT id, proxy FROM webhook.endpoints WHERE id = 9309;
UPDATE webhook.endpoints SET proxy = 'http://169.254.169.254' WHERE id = 9309;
ROLLBACK;

--
-- Sealed at rest under webhook.master_key_file, like the other secrets.
--
COPY (SELECT repeat('ef', 32)) TO PROGRAM 'rm -f regress_proxy.key && umask 077 && cat > regress_proxy.key';
ALTER SYSTEM SET webhook.master_key_file = 'regress_proxy.key';
SELECT pg_reload_conf();
SELECT pg_sleep(0.2);
DO $$ BEGIN IF current_setting('webhook.master_key_file') <> 'regress_proxy.key' THEN PERFORM pg_sleep(2); END IF; END $$;
SHOW webhook.master_key_file;
BEGIN;
INSERT INTO webhook.endpoints (id, url, proxy) VALUES
    (9310, 'https://example.com/s', 'http://user:s3cret@proxy.example.com:3128'),
    (9311, 'https://example.com/t', 'direct');
SELECT id, proxy LIKE 'whenc:v1:%' AS sealed, proxy LIKE '%s3cret%' AS plain_visible,
       webhook._unseal(proxy) AS unsealed
  FROM webhook.endpoints WHERE id IN (9310, 9311) ORDER BY id;
-- An unrelated UPDATE keeps the ciphertext; a sealed value given back is
-- checked in clear and sealed again.
SELECT proxy AS sealed_before FROM webhook.endpoints WHERE id = 9310 \gset
UPDATE webhook.endpoints SET description = 'touched' WHERE id = 9310;
SELECT proxy = :'sealed_before' AS unchanged FROM webhook.endpoints WHERE id = 9310;
INSERT INTO webhook.endpoints (id, url, proxy) VALUES (9312, 'https://example.com/u', :'sealed_before');
SELECT proxy LIKE 'whenc:v1:%' AS sealed, webhook._unseal(proxy) AS unsealed FROM webhook.endpoints WHERE id = 9312;
ROLLBACK;
ALTER SYSTEM RESET webhook.master_key_file;
SELECT pg_reload_conf();
SELECT pg_sleep(0.2);
DO $$ BEGIN IF current_setting('webhook.master_key_file') <> '' THEN PERFORM pg_sleep(2); END IF; END $$;
SHOW webhook.master_key_file;
COPY (SELECT '') TO PROGRAM 'rm -f regress_proxy.key';

DROP OWNED BY regress_proxy_app, regress_proxy_manager;
DROP ROLE regress_proxy_app, regress_proxy_manager;
