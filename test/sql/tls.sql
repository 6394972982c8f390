-- TLS columns of webhook.endpoints: ca_cert, client_cert and client_key are
-- checked with OpenSSL when written (src/endpoint_tls.c); client_key is a
-- secret: sealed at rest under webhook.master_key_file, never in an error,
-- unreadable to a role that only sends.  The certificates and keys are made
-- here with the openssl command, in the data directory, removed at the end.
-- Endpoints are written in transactions that are rolled back.
\set SHOW_CONTEXT never

COPY (SELECT 1) TO PROGRAM 'cat > /dev/null; rm -rf regress_tls && mkdir -m 700 regress_tls';
COPY (SELECT 1) TO PROGRAM 'cat > /dev/null; cd regress_tls && openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj /CN=regress-ca -days 2 -keyout ca.key -out ca.pem 2> /dev/null';
COPY (SELECT 1) TO PROGRAM 'cat > /dev/null; cd regress_tls && openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj /CN=regress-client -keyout client.key -out client.csr 2> /dev/null && openssl x509 -req -in client.csr -CA ca.pem -CAkey ca.key -set_serial 2 -days 2 -out client.pem 2> /dev/null';
COPY (SELECT 1) TO PROGRAM 'cat > /dev/null; cd regress_tls && openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out other.key 2> /dev/null && openssl pkey -in client.key -aes256 -passout pass:regress -out encrypted.key 2> /dev/null';
SELECT pg_read_file('regress_tls/ca.pem') AS ca_pem, pg_read_file('regress_tls/client.pem') AS client_pem,
       pg_read_file('regress_tls/client.key') AS client_key, pg_read_file('regress_tls/other.key') AS other_key,
       pg_read_file('regress_tls/encrypted.key') AS encrypted_key \gset
SELECT :'ca_pem' LIKE '-----BEGIN CERTIFICATE-----%' AS ca_made, :'client_pem' LIKE '-----BEGIN CERTIFICATE-----%' AS cert_made,
       :'client_key' LIKE '-----BEGIN PRIVATE KEY-----%' AS key_made, :'other_key' LIKE '-----BEGIN PRIVATE KEY-----%' AS other_key_made,
       :'encrypted_key' LIKE '-----BEGIN ENCRYPTED PRIVATE KEY-----%' AS encrypted_key_made;

--
-- Accepted: a CA, a bundle, a client certificate with its key; the
-- certificates are stored as given, client_key sealed under the default key
-- (webhook_master.key) and opened to the key given.
--
BEGIN;
INSERT INTO webhook.endpoints (id, url, ca_cert, client_cert, client_key)
VALUES (9301, 'https://example.com/mtls', :'ca_pem', :'client_pem', :'client_key');
INSERT INTO webhook.endpoints (id, url, ca_cert) VALUES (9302, 'https://example.com/bundle', :'ca_pem' || :'client_pem');
INSERT INTO webhook.endpoints (id, url, client_cert, client_key)
VALUES (9303, 'https://example.com/chain', :'client_pem' || :'ca_pem', :'client_key');
SELECT id, ca_cert IN (:'ca_pem', :'ca_pem' || :'client_pem') AS ca_cert_as_given,
       client_cert IN (:'client_pem', :'client_pem' || :'ca_pem') AS client_cert_as_given,
       webhook._unseal(client_key) = :'client_key' AS client_key_as_given
  FROM webhook.endpoints WHERE id BETWEEN 9301 AND 9303 ORDER BY id;
-- Clearing all three, or only the CA, is fine.
UPDATE webhook.endpoints SET ca_cert = NULL WHERE id = 9301;
UPDATE webhook.endpoints SET client_cert = NULL, client_key = NULL WHERE id = 9303;
SELECT id, ca_cert IS NULL AS no_ca, client_cert IS NULL AS no_cert, client_key IS NULL AS no_key
  FROM webhook.endpoints WHERE id IN (9301, 9303) ORDER BY id;

--
-- Refused at write time, each with its own error.
--
SAVEPOINT refused;
-- Not PEM at all.
INSERT INTO webhook.endpoints (url, ca_cert) VALUES ('https://example.com/bad', 'not a certificate');
\echo SQLSTATE :SQLSTATE
ROLLBACK TO refused;
-- A PEM block whose base64 is broken.
INSERT INTO webhook.endpoints (url, ca_cert) VALUES ('https://example.com/bad', regexp_replace(:'ca_pem', '\n(.)', E'\n!\\1'));
\echo SQLSTATE :SQLSTATE
ROLLBACK TO refused;
-- A certificate cut short: no END line.
INSERT INTO webhook.endpoints (url, ca_cert) VALUES ('https://example.com/bad', left(:'ca_pem', 200));
\echo SQLSTATE :SQLSTATE
ROLLBACK TO refused;
-- Well-formed PEM whose content is no certificate.
INSERT INTO webhook.endpoints (url, ca_cert)
VALUES ('https://example.com/bad', E'-----BEGIN CERTIFICATE-----\nbm90IGEgY2VydGlmaWNhdGU=\n-----END CERTIFICATE-----\n');
\echo SQLSTATE :SQLSTATE
ROLLBACK TO refused;
-- A private key pasted into ca_cert or client_cert would be stored in clear.
INSERT INTO webhook.endpoints (url, ca_cert) VALUES ('https://example.com/bad', :'ca_pem' || :'client_key');
\echo SQLSTATE :SQLSTATE
ROLLBACK TO refused;
INSERT INTO webhook.endpoints (url, client_cert, client_key)
VALUES ('https://example.com/bad', :'client_pem' || :'client_key', :'client_key');
\echo SQLSTATE :SQLSTATE
ROLLBACK TO refused;
-- A key without its certificate, a certificate without its key.
INSERT INTO webhook.endpoints (url, client_key) VALUES ('https://example.com/bad', :'client_key');
\echo SQLSTATE :SQLSTATE
ROLLBACK TO refused;
INSERT INTO webhook.endpoints (url, client_cert) VALUES ('https://example.com/bad', :'client_pem');
\echo SQLSTATE :SQLSTATE
ROLLBACK TO refused;
-- A key that is not the certificate's.
INSERT INTO webhook.endpoints (url, client_cert, client_key) VALUES ('https://example.com/bad', :'client_pem', :'other_key');
\echo SQLSTATE :SQLSTATE
ROLLBACK TO refused;
-- The certificate's key, but behind a passphrase.
INSERT INTO webhook.endpoints (url, client_cert, client_key) VALUES ('https://example.com/bad', :'client_pem', :'encrypted_key');
\echo SQLSTATE :SQLSTATE
ROLLBACK TO refused;
-- A key that is not PEM.
INSERT INTO webhook.endpoints (url, client_cert, client_key) VALUES ('https://example.com/bad', :'client_pem', 'not a key');
\echo SQLSTATE :SQLSTATE
ROLLBACK TO refused;
-- An UPDATE is checked too: another certificate for the stored key, or
-- dropping only one of the pair.
UPDATE webhook.endpoints SET client_cert = :'ca_pem' WHERE id = 9301;
\echo SQLSTATE :SQLSTATE
ROLLBACK TO refused;
UPDATE webhook.endpoints SET client_cert = NULL WHERE id = 9301;
\echo SQLSTATE :SQLSTATE
ROLLBACK TO refused;
UPDATE webhook.endpoints SET ca_cert = 'garbage' WHERE id = 9302;
\echo SQLSTATE :SQLSTATE
ROLLBACK TO refused;
-- Too long.
INSERT INTO webhook.endpoints (url, ca_cert) VALUES ('https://example.com/bad', repeat('x', 262145));
\echo SQLSTATE :SQLSTATE
ROLLBACK TO refused;
-- No error quotes the key: each refused write above, and its text searched
-- for the key's base64.
CREATE FUNCTION pg_temp.error_of(stmt text, VARIADIC args text[])
RETURNS text LANGUAGE plpgsql AS $$
DECLARE
    v_state text;
    v_detail text;
    v_hint text;
BEGIN
    EXECUTE stmt USING args[1], args[2], args[3];
    RETURN 'accepted';
EXCEPTION WHEN OTHERS THEN
    GET STACKED DIAGNOSTICS v_state = RETURNED_SQLSTATE, v_detail = PG_EXCEPTION_DETAIL, v_hint = PG_EXCEPTION_HINT;
    RETURN concat_ws(' | ', v_state, SQLERRM, v_detail, v_hint);
END;
$$;
SELECT e.what, strpos(e.error, split_part(:'client_key', E'\n', 2)) = 0
               AND strpos(e.error, split_part(:'other_key', E'\n', 2)) = 0 AS key_not_quoted
  FROM (VALUES
    ('key without cert', pg_temp.error_of('INSERT INTO webhook.endpoints (url, client_key) VALUES ($1, $2)',
                                          'https://example.com/bad', :'client_key')),
    ('other key', pg_temp.error_of('INSERT INTO webhook.endpoints (url, client_cert, client_key) VALUES ($1, $2, $3)',
                                   'https://example.com/bad', :'client_pem', :'other_key')),
    ('key in ca_cert', pg_temp.error_of('INSERT INTO webhook.endpoints (url, ca_cert) VALUES ($1, $2)',
                                        'https://example.com/bad', :'client_key')),
    ('key in client_cert', pg_temp.error_of('INSERT INTO webhook.endpoints (url, client_cert, client_key) VALUES ($1, $2, $3)',
                                            'https://example.com/bad', :'client_key', :'client_key')),
    ('cut key', pg_temp.error_of('INSERT INTO webhook.endpoints (url, client_cert, client_key) VALUES ($1, $2, $3)',
                                 'https://example.com/bad', :'client_pem', left(:'client_key', 100))))
       AS e(what, error)
 ORDER BY e.what;
ROLLBACK;

--
-- A role that only sends cannot read client_key (nor any other column).
--
CREATE ROLE regress_tls_app NOLOGIN;
GRANT USAGE ON SCHEMA webhook TO regress_tls_app;
GRANT EXECUTE ON FUNCTION webhook.send(text, jsonb, text, timestamptz, text) TO regress_tls_app;
SELECT has_column_privilege('regress_tls_app', 'webhook.endpoints', 'client_key', 'SELECT') AS app_may_read_client_key,
       has_column_privilege('regress_tls_app', 'webhook.endpoints', 'ca_cert', 'SELECT') AS app_may_read_ca_cert;
BEGIN;
INSERT INTO webhook.endpoints (id, url, client_cert, client_key)
VALUES (9311, 'https://example.com/mtls', :'client_pem', :'client_key');
SET LOCAL ROLE regress_tls_app;
SELECT client_key FROM webhook.endpoints WHERE id = 9311;
\echo SQLSTATE :SQLSTATE
ROLLBACK;
DROP OWNED BY regress_tls_app;
DROP ROLE regress_tls_app;

--
-- Sealed at rest once a master key is set (as in secrets.sql): client_key
-- only; the certificates are public and stay as given.
--
COPY (SELECT repeat('ef', 32)) TO PROGRAM 'rm -f regress_tls.key && umask 077 && cat > regress_tls.key';
ALTER SYSTEM SET webhook.master_key_file = 'regress_tls.key';
SELECT pg_reload_conf();
SELECT pg_sleep(0.2);
DO $$ BEGIN IF current_setting('webhook.master_key_file') <> 'regress_tls.key' THEN PERFORM pg_sleep(2); END IF; END $$;
SHOW webhook.master_key_file;
BEGIN;
INSERT INTO webhook.endpoints (id, url, ca_cert, client_cert, client_key)
VALUES (9321, 'https://example.com/sealed', :'ca_pem', :'client_pem', :'client_key');
SELECT client_key LIKE 'whenc:v1:%' AS client_key_sealed,
       strpos(client_key, split_part(:'client_key', E'\n', 2)) = 0 AS no_key_text,
       webhook._unseal(client_key) = :'client_key' AS opens_to_the_key,
       ca_cert = :'ca_pem' AS ca_cert_as_given, client_cert = :'client_pem' AS client_cert_as_given
  FROM webhook.endpoints WHERE id = 9321;
-- An unrelated UPDATE keeps the ciphertext.
SELECT client_key AS sealed_before FROM webhook.endpoints WHERE id = 9321 \gset
UPDATE webhook.endpoints SET description = 'touched' WHERE id = 9321;
SELECT client_key = :'sealed_before' AS ciphertext_unchanged FROM webhook.endpoints WHERE id = 9321;
-- The sealed key is opened to check it against a new certificate.
SAVEPOINT refused;
UPDATE webhook.endpoints SET client_cert = :'ca_pem' WHERE id = 9321;
\echo SQLSTATE :SQLSTATE
ROLLBACK TO refused;
-- A key given already sealed is opened and checked like a plain one.
INSERT INTO webhook.endpoints (url, client_cert, client_key)
VALUES ('https://example.com/pre-sealed', :'client_pem', webhook._seal(:'other_key'));
\echo SQLSTATE :SQLSTATE
ROLLBACK TO refused;
INSERT INTO webhook.endpoints (id, url, client_cert, client_key)
VALUES (9322, 'https://example.com/pre-sealed', :'client_pem', webhook._seal(:'client_key'));
SELECT client_key LIKE 'whenc:v1:%' AS sealed, webhook._unseal(client_key) = :'client_key' AS opens_to_the_key
  FROM webhook.endpoints WHERE id = 9322;
ROLLBACK;

-- Leave nothing behind.
ALTER SYSTEM RESET webhook.master_key_file;
SELECT pg_reload_conf();
SELECT pg_sleep(0.2);
DO $$ BEGIN IF current_setting('webhook.master_key_file') <> '' THEN PERFORM pg_sleep(2); END IF; END $$;
SHOW webhook.master_key_file;
COPY (SELECT 1) TO PROGRAM 'cat > /dev/null; rm -rf regress_tls regress_tls.key';
SELECT count(*) AS tls_files FROM pg_ls_dir('.') AS f WHERE f LIKE 'regress_tls%';
