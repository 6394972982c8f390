-- Secrets: webhook.rotate_secret(), webhook.verify() as a receiver would
-- run it, Basic authentication columns, and secrets at rest: sealed by
-- default under webhook_master.key in the data directory (created on first
-- use), or under webhook.master_key_file (set with ALTER SYSTEM and a reload,
-- reset at the end).  Values are read back in clear with webhook._unseal().
-- Endpoints are created in transactions that are rolled back, except one
-- inactive endpoint with no delivery, deleted at the end.
\set SHOW_CONTEXT never

--
-- rotate_secret: a new secret, the old one kept until the grace period ends.
--
BEGIN;
INSERT INTO webhook.endpoints (id, name, url, secret) VALUES
    (9201, 'standard', 'https://example.com/standard', 'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw');
INSERT INTO webhook.endpoints (id, name, url, signing) VALUES
    (9202, 'ed25519', 'https://example.com/ed25519', 'ed25519'),
    (9203, 'github', 'https://example.com/github', 'hmac-sha256'),
    (9204, 'unsigned', 'https://example.com/unsigned', 'none');
SELECT webhook._unseal(previous_secret) AS previous_secret, previous_secret_expires_at FROM webhook.endpoints WHERE id = 9201;
SELECT webhook.rotate_secret(9201) AS new_secret \gset
SELECT :'new_secret' ~ '^whsec_[A-Za-z0-9+/]{43}=$' AS new_secret_is_whsec,
       webhook._unseal(secret) = :'new_secret' AS stored,
       webhook._unseal(previous_secret) AS previous_secret,
       previous_secret_expires_at = now() + interval '24 hours' AS grace_24h_by_default,
       webhook._secret_problem('standard', webhook._unseal(secret)) IS NULL AS usable
  FROM webhook.endpoints WHERE id = 9201;
-- Again, with a grace period: the current secret becomes the previous one.
SELECT webhook.rotate_secret(9201, interval '1 hour') AS newer_secret \gset
SELECT webhook._unseal(secret) = :'newer_secret' AS stored, :'newer_secret' <> :'new_secret' AS fresh,
       webhook._unseal(previous_secret) = :'new_secret' AS previous_is_last,
       previous_secret_expires_at - now() AS grace
  FROM webhook.endpoints WHERE id = 9201;
SELECT webhook.rotate_secret(9201, interval '0') IS NOT NULL AS zero_grace_allowed;
SELECT previous_secret_expires_at = now() AS expires_now FROM webhook.endpoints WHERE id = 9201;
-- ed25519: returns the new public key, the one webhook.public_key() gives.
SELECT webhook._unseal(secret) AS old_ed25519_secret, webhook.public_key(id) AS old_public_key
  FROM webhook.endpoints WHERE id = 9202 \gset
SELECT webhook.rotate_secret(9202) AS new_public_key \gset
SELECT :'new_public_key' ~ '^whpk_[A-Za-z0-9+/]{43}=$' AS returns_whpk,
       :'new_public_key' = webhook.public_key(9202) AS equals_public_key,
       :'new_public_key' <> :'old_public_key' AS new_key_pair,
       webhook._unseal(secret) ~ '^whsk_[A-Za-z0-9+/]{86}==$' AS secret_is_whsk,
       webhook._ed25519_public_key(webhook._unseal(secret)) = :'new_public_key' AS secret_matches,
       webhook._unseal(previous_secret) = :'old_ed25519_secret' AS previous_kept,
       previous_secret_expires_at = now() + interval '24 hours' AS grace_24h
  FROM webhook.endpoints WHERE id = 9202;
-- hmac-sha256 rotates too.
SELECT webhook.rotate_secret(9203) ~ '^whsec_[A-Za-z0-9+/]{43}=$' AS hmac_rotated;
-- Refused: an endpoint that does not sign, a negative or NULL grace, an unknown endpoint.
SAVEPOINT refused;
SELECT webhook.rotate_secret(9204);
\echo SQLSTATE :SQLSTATE
ROLLBACK TO refused;
SELECT webhook.rotate_secret(9201, interval '-1 second');
\echo SQLSTATE :SQLSTATE
ROLLBACK TO refused;
SELECT webhook.rotate_secret(9201, NULL);
\echo SQLSTATE :SQLSTATE
ROLLBACK TO refused;
SELECT webhook.rotate_secret(9299);
\echo SQLSTATE :SQLSTATE
ROLLBACK TO refused;
-- Nothing changed by the refused calls.
SELECT id, previous_secret IS NULL AS no_previous FROM webhook.endpoints WHERE id = 9204;
ROLLBACK;

--
-- verify(): what a receiver checks, with webhook.sign() as the sender.
--
\set secret 'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw'
\set other_secret 'whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD'
\set body '{"type":"order.created","timestamp":"2026-11-23T04:00:00.000Z","data":{"id":1}}'
SELECT extract(epoch FROM now())::bigint AS now_ts,
       extract(epoch FROM now())::bigint - 600 AS old_ts,
       extract(epoch FROM now())::bigint + 600 AS future_ts \gset
SELECT webhook.sign(:'secret', 'msg_1', :now_ts, :'body') AS sig,
       webhook.sign(:'secret', 'msg_1', :old_ts, :'body') AS old_sig,
       webhook.sign(:'secret', 'msg_1', :future_ts, :'body') AS future_sig,
       webhook.sign(:'other_secret', 'msg_1', :now_ts, :'body') AS other_sig \gset
SELECT webhook.verify(:'secret', jsonb_build_object('webhook-id', 'msg_1', 'webhook-timestamp', :'now_ts',
                                                    'webhook-signature', :'sig'), :'body') AS fresh;
SELECT webhook.verify(:'secret', jsonb_build_object('webhook-id', 'msg_1', 'webhook-timestamp', :'now_ts',
                                                    'webhook-signature', :'sig'), :'body' || ' ') AS wrong_body,
       webhook.verify(:'other_secret', jsonb_build_object('webhook-id', 'msg_1', 'webhook-timestamp', :'now_ts',
                                                          'webhook-signature', :'sig'), :'body') AS wrong_secret,
       webhook.verify(:'secret', jsonb_build_object('webhook-id', 'msg_2', 'webhook-timestamp', :'now_ts',
                                                    'webhook-signature', :'sig'), :'body') AS wrong_id,
       webhook.verify(:'secret', jsonb_build_object('webhook-id', 'msg_1', 'webhook-timestamp', (:now_ts + 1)::text,
                                                    'webhook-signature', :'sig'), :'body') AS wrong_timestamp;
-- Timestamps outside the tolerance (default 5 minutes) are refused, even correctly signed.
SELECT webhook.verify(:'secret', jsonb_build_object('webhook-id', 'msg_1', 'webhook-timestamp', :'old_ts',
                                                    'webhook-signature', :'old_sig'), :'body') AS ten_minutes_old,
       webhook.verify(:'secret', jsonb_build_object('webhook-id', 'msg_1', 'webhook-timestamp', :'future_ts',
                                                    'webhook-signature', :'future_sig'), :'body') AS ten_minutes_ahead,
       webhook.verify(:'secret', jsonb_build_object('webhook-id', 'msg_1', 'webhook-timestamp', :'old_ts',
                                                    'webhook-signature', :'old_sig'), :'body',
                      interval '15 minutes') AS old_within_15_minutes,
       webhook.verify(:'secret', jsonb_build_object('webhook-id', 'msg_1', 'webhook-timestamp', :'future_ts',
                                                    'webhook-signature', :'future_sig'), :'body',
                      interval '15 minutes') AS ahead_within_15_minutes;
-- Missing or malformed headers.
SELECT webhook.verify(:'secret', jsonb_build_object('webhook-timestamp', :'now_ts', 'webhook-signature', :'sig'),
                      :'body') AS no_id,
       webhook.verify(:'secret', jsonb_build_object('webhook-id', 'msg_1', 'webhook-signature', :'sig'),
                      :'body') AS no_timestamp,
       webhook.verify(:'secret', jsonb_build_object('webhook-id', 'msg_1', 'webhook-timestamp', :'now_ts'),
                      :'body') AS no_signature,
       webhook.verify(:'secret', '{}', :'body') AS no_headers,
       webhook.verify(:'secret', jsonb_build_object('webhook-id', 'msg_1', 'webhook-timestamp', 'yesterday',
                                                    'webhook-signature', :'sig'), :'body') AS timestamp_not_a_number,
       webhook.verify(:'secret', jsonb_build_object('webhook-id', 'msg_1', 'webhook-timestamp', :'now_ts',
                                                    'webhook-signature', substr(:'sig', 4)), :'body') AS no_version,
       webhook.verify(:'secret', jsonb_build_object('webhook-id', 'msg_1', 'webhook-timestamp', :'now_ts',
                                                    'webhook-signature', 'v2,' || substr(:'sig', 4)), :'body') AS unknown_version;
-- Several signatures, space-separated: any valid one is enough.
SELECT webhook.verify(:'secret', jsonb_build_object('webhook-id', 'msg_1', 'webhook-timestamp', :'now_ts',
                                                    'webhook-signature', :'other_sig' || ' ' || :'sig'), :'body') AS second_valid,
       webhook.verify(:'secret', jsonb_build_object('webhook-id', 'msg_1', 'webhook-timestamp', :'now_ts',
                                                    'webhook-signature', 'v1,bm90IGEgc2lnbmF0dXJl v1a,AAAA ' || :'sig'),
                      :'body') AS third_valid,
       webhook.verify(:'other_secret', jsonb_build_object('webhook-id', 'msg_1', 'webhook-timestamp', :'now_ts',
                                                          'webhook-signature', :'sig' || ' ' || :'other_sig'),
                      :'body') AS rotated_receiver,
       webhook.verify(:'secret', jsonb_build_object('webhook-id', 'msg_1', 'webhook-timestamp', :'now_ts',
                                                    'webhook-signature', :'other_sig' || ' v1,AAAA'), :'body') AS none_valid;
-- Header names in any case.
SELECT webhook.verify(:'secret', jsonb_build_object('Webhook-Id', 'msg_1', 'WEBHOOK-TIMESTAMP', :'now_ts',
                                                    'webhook-Signature', :'sig'), :'body') AS any_case,
       webhook.verify(:'secret', jsonb_build_object('webhook-id', 'msg_1', 'webhook-timestamp', :'now_ts',
                                                    'webhook-signature', :'sig', 'Content-Type', 'application/json'),
                      :'body') AS other_headers_ignored;
-- NULL arguments verify nothing.
SELECT webhook.verify(NULL, jsonb_build_object('webhook-id', 'msg_1', 'webhook-timestamp', :'now_ts',
                                               'webhook-signature', :'sig'), :'body') AS null_secret,
       webhook.verify(:'secret', NULL, :'body') AS null_headers,
       webhook.verify(:'secret', jsonb_build_object('webhook-id', 'msg_1', 'webhook-timestamp', :'now_ts',
                                                    'webhook-signature', :'sig'), NULL) AS null_body;
-- A secret that is not one is an error, not a quiet false.
SELECT webhook.verify('whsec_not base64!', jsonb_build_object('webhook-id', 'msg_1', 'webhook-timestamp', :'now_ts',
                                                              'webhook-signature', :'sig'), :'body');
\echo SQLSTATE :SQLSTATE

--
-- v1a: signed with the ed25519 vector's private key (whsk_), verified with
-- its public key (whpk_) as a receiver would, or with the private key.
--
\set ed_secret 'whsk_6Xb/dCcHpPea21PS1N9VY/NZW723CEc77N4rJCubMbfVKIDij2HKpMKkioLlX0dRqSKJp4AJ6p9lMicMFs6Kvg=='
\set ed_public 'whpk_1SiA4o9hyqTCpIqC5V9HUakiiaeACeqfZTInDBbOir4='
SELECT webhook._ed25519_public_key(:'ed_secret') = :'ed_public' AS vector_key_pair;
SELECT webhook.sign(:'ed_secret', 'msg_1', :now_ts, :'body', 'ed25519') AS ed_sig \gset
SELECT :'ed_sig' ~ '^v1a,[A-Za-z0-9+/]{86}==$' AS v1a_shape,
       webhook.verify(:'ed_public', jsonb_build_object('webhook-id', 'msg_1', 'webhook-timestamp', :'now_ts',
                                                       'webhook-signature', :'ed_sig'), :'body') AS with_public_key,
       webhook.verify(:'ed_secret', jsonb_build_object('webhook-id', 'msg_1', 'webhook-timestamp', :'now_ts',
                                                       'webhook-signature', :'ed_sig'), :'body') AS with_private_key,
       webhook.verify(:'ed_public', jsonb_build_object('webhook-id', 'msg_1', 'webhook-timestamp', :'now_ts',
                                                       'webhook-signature', 'v1,AAAA ' || :'ed_sig'), :'body') AS second_valid;
SELECT webhook.verify(:'ed_public', jsonb_build_object('webhook-id', 'msg_1', 'webhook-timestamp', :'now_ts',
                                                       'webhook-signature', :'ed_sig'), :'body' || ' ') AS tampered_body,
       webhook.verify(:'ed_public', jsonb_build_object('webhook-id', 'msg_2', 'webhook-timestamp', :'now_ts',
                                                       'webhook-signature', :'ed_sig'), :'body') AS tampered_id,
       webhook.verify(:'ed_public', jsonb_build_object('webhook-id', 'msg_1', 'webhook-timestamp', :'now_ts',
                                                       'webhook-signature', 'v1a,' || translate(substr(:'ed_sig', 5), 'ABCabc', 'BCAbca')),
                      :'body') AS tampered_signature,
       webhook.verify(:'ed_public', jsonb_build_object('webhook-id', 'msg_1', 'webhook-timestamp', :'now_ts',
                                                       'webhook-signature', :'sig'), :'body') AS v1_signature,
       webhook.verify(:'secret', jsonb_build_object('webhook-id', 'msg_1', 'webhook-timestamp', :'now_ts',
                                                    'webhook-signature', :'ed_sig'), :'body') AS hmac_secret,
       webhook.verify(webhook._ed25519_public_key(webhook.generate_secret('ed25519')),
                      jsonb_build_object('webhook-id', 'msg_1', 'webhook-timestamp', :'now_ts',
                                         'webhook-signature', :'ed_sig'), :'body') AS other_key;
SELECT webhook.verify('whpk_c2hvcnQ=', jsonb_build_object('webhook-id', 'msg_1', 'webhook-timestamp', :'now_ts',
                                                          'webhook-signature', :'ed_sig'), :'body');
\echo SQLSTATE :SQLSTATE

--
-- HTTP Basic authentication columns.
--
BEGIN;
SAVEPOINT refused;
INSERT INTO webhook.endpoints (url, auth_password) VALUES ('https://example.com/basic', 'pw');
\echo SQLSTATE :SQLSTATE
ROLLBACK TO refused;
INSERT INTO webhook.endpoints (url, auth_username, auth_password) VALUES ('https://example.com/basic', 'us:er', 'pw');
\echo SQLSTATE :SQLSTATE
ROLLBACK TO refused;
INSERT INTO webhook.endpoints (url, auth_username) VALUES ('https://example.com/basic', '');
\echo SQLSTATE :SQLSTATE
ROLLBACK TO refused;
INSERT INTO webhook.endpoints (url, auth_username, auth_password, headers)
VALUES ('https://example.com/basic', 'user', 'pw', '{"Authorization": "Bearer abc"}');
\echo SQLSTATE :SQLSTATE
ROLLBACK TO refused;
INSERT INTO webhook.endpoints (url, auth_username, headers)
VALUES ('https://example.com/basic', 'user', '{"authorization": "Bearer abc"}');
\echo SQLSTATE :SQLSTATE
ROLLBACK TO refused;
INSERT INTO webhook.endpoints (id, url, auth_username, auth_password)
VALUES (9211, 'https://example.com/basic', 'user', 'p:w d');
INSERT INTO webhook.endpoints (id, url, auth_username) VALUES (9212, 'https://example.com/basic-no-password', 'user');
INSERT INTO webhook.endpoints (id, url, headers) VALUES (9213, 'https://example.com/bearer', '{"Authorization": "Bearer abc"}');
-- Stored sealed under the default key, and opened to what was given.
SELECT id, auth_username, webhook._unseal(auth_password) AS auth_password,
       coalesce((SELECT jsonb_object_agg(h.key, webhook._unseal(h.value)) FROM jsonb_each_text(headers) h), '{}') AS headers,
       auth_password IS NULL OR auth_password LIKE 'whenc:v1:%' AS password_sealed,
       headers = '{}' OR headers ->> 'Authorization' LIKE 'whenc:v1:%' AS header_sealed
  FROM webhook.endpoints WHERE id BETWEEN 9211 AND 9213 ORDER BY id;
-- Clearing the user name while a password is set is refused as well.
UPDATE webhook.endpoints SET auth_username = NULL WHERE id = 9211;
\echo SQLSTATE :SQLSTATE
ROLLBACK;

--
-- Secrets at rest.  Only a superuser may see or set webhook.master_key_file,
-- and only in the configuration (reload is enough).
--
CREATE ROLE regress_webhook_manager NOLOGIN;
GRANT USAGE ON SCHEMA webhook TO regress_webhook_manager;
GRANT SELECT, INSERT, UPDATE, DELETE ON webhook.endpoints TO regress_webhook_manager;
SET ROLE regress_webhook_manager;
SHOW webhook.master_key_file;
\echo SQLSTATE :SQLSTATE
ALTER SYSTEM SET webhook.master_key_file = 'regress_webhook.key';
\echo SQLSTATE :SQLSTATE
RESET ROLE;
SET webhook.master_key_file = 'regress_webhook.key';
\echo SQLSTATE :SQLSTATE
SHOW webhook.master_key_file;
-- Without webhook.master_key_file, values are sealed under webhook_master.key,
-- which the first seal created in the data directory (64 hex digits and a
-- line break; its mode, 0600, is checked by test/t/030_default_key.pl).
SELECT webhook._seal('whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw') LIKE 'whenc:v1:%' AS sealed_by_default,
       webhook._unseal(webhook._seal('whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw')) AS opens_again,
       (pg_stat_file('webhook_master.key')).size AS default_key_file_bytes;
-- A role with only table privileges on webhook.endpoints manages endpoints.
BEGIN;
SET LOCAL ROLE regress_webhook_manager;
INSERT INTO webhook.endpoints (id, url, auth_username, auth_password)
VALUES (9221, 'https://example.com/managed', 'user', 'pw');
UPDATE webhook.endpoints SET description = 'managed' WHERE id = 9221;
RESET ROLE;
SELECT id, description, secret LIKE 'whenc:v1:%' AS secret_sealed, webhook._unseal(secret) ~ '^whsec_' AS whsec_secret,
       webhook._unseal(auth_password) AS auth_password FROM webhook.endpoints WHERE id = 9221;
ROLLBACK;
-- An endpoint stored in clear, as 0.1.0 stored it without a key (inactive,
-- and no event is sent): written with the triggers off, as the update from
-- 0.1.0 or a restore of such a dump with --disable-triggers leaves it.
SET session_replication_role = replica;
INSERT INTO webhook.endpoints (id, name, url, active, secret, auth_username, auth_password, headers)
VALUES (9230, 'regress_before_key', 'https://example.com/before', false,
        'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw', 'user', 'old-pw', '{"X-Api-Key": "k-old"}');
RESET session_replication_role;

-- The key file.  COPY TO a file makes it readable by others (mode 0644,
-- whatever the server's umask), which is refused.
DO $$
BEGIN
    EXECUTE format('COPY (SELECT repeat(''ab'', 32)) TO %L',
                   current_setting('data_directory') || '/regress_webhook.key');
END
$$;
SELECT (pg_stat_file('regress_webhook.key')).size AS key_file_bytes;
ALTER SYSTEM SET webhook.master_key_file = 'regress_webhook.key';
SELECT pg_reload_conf();
SELECT pg_sleep(0.2);
DO $$ BEGIN IF current_setting('webhook.master_key_file') <> 'regress_webhook.key' THEN PERFORM pg_sleep(2); END IF; END $$;
SHOW webhook.master_key_file;
BEGIN;
INSERT INTO webhook.endpoints (url) VALUES ('https://example.com/world-readable-key');
\echo SQLSTATE :SQLSTATE
ROLLBACK;
-- A file that does not hold a 256-bit key is refused.
COPY (SELECT 'not a key') TO PROGRAM 'rm -f regress_webhook.key && umask 077 && cat > regress_webhook.key';
BEGIN;
INSERT INTO webhook.endpoints (url) VALUES ('https://example.com/bad-key');
\echo SQLSTATE :SQLSTATE
ROLLBACK;
-- 64 hex digits, readable by the server's user only (COPY TO PROGRAM, umask 077).
COPY (SELECT repeat('ab', 32)) TO PROGRAM 'rm -f regress_webhook.key && umask 077 && cat > regress_webhook.key';
BEGIN;
INSERT INTO webhook.endpoints (id, name, url, secret, auth_username, auth_password, headers) VALUES
    (9231, 'sealed-given', 'https://example.com/given', 'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw',
     'user', 'p@ss', '{"X-Api-Key": "k-123", "X-Other": "v"}'),
    (9232, 'sealed-same', 'https://example.com/same', 'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw', NULL, NULL, '{}');
INSERT INTO webhook.endpoints (id, name, url) VALUES (9233, 'sealed-generated', 'https://example.com/generated');
INSERT INTO webhook.endpoints (id, name, url, signing) VALUES (9234, 'sealed-ed25519', 'https://example.com/ed', 'ed25519');
-- Stored sealed: whenc:v1:<base64 of IV, ciphertext and tag>.
SELECT id, secret LIKE 'whenc:v1:%' AS secret_sealed,
       auth_password LIKE 'whenc:v1:%' AS password_sealed,
       (SELECT bool_and(h.value LIKE 'whenc:v1:%') FROM jsonb_each_text(headers) AS h) AS headers_sealed,
       auth_username, (SELECT array_agg(k ORDER BY k) FROM jsonb_object_keys(headers) AS k) AS header_names,
       secret LIKE '%MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw%' AS plain_visible
  FROM webhook.endpoints WHERE id BETWEEN 9231 AND 9234 ORDER BY id;
-- The same secret twice is two different ciphertexts.
SELECT count(DISTINCT secret) AS ciphertexts FROM webhook.endpoints WHERE id IN (9231, 9232);
-- Read in clear with endpoint_secret(); the worker's _unseal() gives the rest.
SELECT id, webhook.endpoint_secret(id) AS secret FROM webhook.endpoints WHERE id IN (9231, 9232) ORDER BY id;
SELECT webhook.endpoint_secret(9233) ~ '^whsec_[A-Za-z0-9+/]{43}=$' AS generated_is_whsec,
       webhook.endpoint_secret(9234) ~ '^whsk_[A-Za-z0-9+/]{86}==$' AS generated_is_whsk;
SELECT webhook._unseal(auth_password) AS auth_password,
       (SELECT jsonb_object_agg(h.key, webhook._unseal(h.value)) FROM jsonb_each_text(headers) AS h) AS headers
  FROM webhook.endpoints WHERE id = 9231;
-- public_key() works on a sealed ed25519 secret.
SELECT webhook.public_key(9234) ~ '^whpk_[A-Za-z0-9+/]{43}=$' AS public_key_shape,
       webhook.public_key(9234) = webhook._ed25519_public_key(webhook.endpoint_secret(9234)) AS public_key_matches;
-- A sealed secret signs and verifies like the plain one.
SELECT webhook.verify(webhook.endpoint_secret(9231),
                      jsonb_build_object('webhook-id', 'msg_1', 'webhook-timestamp', :'now_ts',
                                         'webhook-signature', webhook.sign(webhook.endpoint_secret(9231), 'msg_1', :now_ts, :'body')),
                      :'body') AS sealed_secret_verifies;
-- An unrelated UPDATE keeps the ciphertexts as they are.
SELECT secret AS sealed_before, auth_password AS password_before FROM webhook.endpoints WHERE id = 9231 \gset
UPDATE webhook.endpoints SET description = 'touched' WHERE id = 9231;
SELECT secret = :'sealed_before' AS secret_unchanged, auth_password = :'password_before' AS password_unchanged
  FROM webhook.endpoints WHERE id = 9231;
-- rotate_secret returns the new secret in clear and stores both sealed.
SELECT webhook.rotate_secret(9231) AS rotated \gset
SELECT :'rotated' ~ '^whsec_[A-Za-z0-9+/]{43}=$' AS returned_in_clear,
       secret LIKE 'whenc:v1:%' AS secret_sealed, previous_secret LIKE 'whenc:v1:%' AS previous_sealed,
       webhook.endpoint_secret(id) = :'rotated' AS endpoint_secret_is_new,
       webhook._unseal(previous_secret) AS previous_in_clear
  FROM webhook.endpoints WHERE id = 9231;
SELECT webhook.rotate_secret(9234) AS rotated_public_key \gset
SELECT :'rotated_public_key' = webhook.public_key(9234) AS ed25519_rotated,
       secret LIKE 'whenc:v1:%' AS secret_sealed, previous_secret LIKE 'whenc:v1:%' AS previous_sealed
  FROM webhook.endpoints WHERE id = 9234;
-- The endpoint written before the key still reads in clear, and is sealed
-- at its next write.
SELECT secret AS secret_before_key, webhook.endpoint_secret(9230) AS endpoint_secret
  FROM webhook.endpoints WHERE id = 9230;
UPDATE webhook.endpoints SET description = 'now sealed' WHERE id = 9230;
SELECT secret LIKE 'whenc:v1:%' AS secret_sealed, auth_password LIKE 'whenc:v1:%' AS password_sealed,
       headers ->> 'X-Api-Key' LIKE 'whenc:v1:%' AS header_sealed,
       webhook.endpoint_secret(id) AS endpoint_secret, webhook._unseal(auth_password) AS auth_password
  FROM webhook.endpoints WHERE id = 9230;
-- Keep one ciphertext for what follows.
SELECT secret AS sealed FROM webhook.endpoints WHERE id = 9232 \gset
ROLLBACK;
-- A role with only table privileges on webhook.endpoints writes sealed values too.
BEGIN;
SET LOCAL ROLE regress_webhook_manager;
INSERT INTO webhook.endpoints (id, url, auth_username, auth_password)
VALUES (9235, 'https://example.com/managed', 'user', 'pw');
RESET ROLE;
SELECT secret LIKE 'whenc:v1:%' AS secret_sealed, auth_password LIKE 'whenc:v1:%' AS password_sealed,
       webhook._unseal(auth_password) AS auth_password
  FROM webhook.endpoints WHERE id = 9235;
ROLLBACK;

-- A value given already sealed is opened and checked like a plain one: a
-- line break hidden in a sealed header value cannot smuggle headers or a
-- second request, a sealed secret must suit the scheme, and no role but the
-- superuser may seal anything (webhook._seal is not executable by PUBLIC).
SELECT webhook._seal(E'k\r\nX-Injected: 1\r\n\r\nGET /smuggled HTTP/1.1') AS sealed_crlf,
       webhook._seal('not base64 at all!') AS sealed_bad_secret,
       webhook._seal('k-sealed-before') AS sealed_good_value,
       webhook._seal('whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw') AS sealed_good_secret \gset
-- _secret_problem() judges a ciphertext as it stands and never opens it: a
-- sealed good secret and a sealed bad one get the same answer.
SELECT webhook._secret_problem('standard', :'sealed_good_secret') AS good_sealed,
       webhook._secret_problem('standard', :'sealed_good_secret')
         IS NOT DISTINCT FROM webhook._secret_problem('standard', :'sealed_bad_secret') AS same_answer;
SET ROLE regress_webhook_manager;
SELECT webhook._seal('k');
\echo SQLSTATE :SQLSTATE
INSERT INTO webhook.endpoints (url, headers)
VALUES ('https://example.com/injected', jsonb_build_object('X-Api-Key', :'sealed_crlf'));
\echo SQLSTATE :SQLSTATE
INSERT INTO webhook.endpoints (url, secret) VALUES ('https://example.com/injected', :'sealed_bad_secret');
\echo SQLSTATE :SQLSTATE
INSERT INTO webhook.endpoints (url, previous_secret) VALUES ('https://example.com/injected', :'sealed_bad_secret');
\echo SQLSTATE :SQLSTATE
INSERT INTO webhook.endpoints (url, headers) VALUES ('https://example.com/injected', '{"X-Api-Key": "whenc:v1:AAAA"}');
\echo SQLSTATE :SQLSTATE
RESET ROLE;
BEGIN;
SET LOCAL ROLE regress_webhook_manager;
INSERT INTO webhook.endpoints (id, url, headers, auth_username, auth_password)
VALUES (9236, 'https://example.com/pre-sealed', jsonb_build_object('X-Api-Key', :'sealed_good_value'), 'user', :'sealed_good_value');
-- The header check runs on values in clear when the headers change.
SAVEPOINT crlf;
UPDATE webhook.endpoints SET headers = headers || jsonb_build_object('X-Other', :'sealed_crlf') WHERE id = 9236;
\echo SQLSTATE :SQLSTATE
ROLLBACK TO crlf;
RESET ROLE;
SELECT headers ->> 'X-Api-Key' LIKE 'whenc:v1:%' AS header_sealed,
       headers ->> 'X-Api-Key' <> :'sealed_good_value' AS sealed_again,
       webhook._unseal(headers ->> 'X-Api-Key') AS header_in_clear,
       webhook._unseal(auth_password) AS password_in_clear
  FROM webhook.endpoints WHERE id = 9236;
ROLLBACK;

-- Another key cannot open it.
COPY (SELECT repeat('cd', 32)) TO PROGRAM 'umask 077 && cat > regress_webhook_other.key';
ALTER SYSTEM SET webhook.master_key_file = 'regress_webhook_other.key';
SELECT pg_reload_conf();
SELECT pg_sleep(0.2);
DO $$ BEGIN IF current_setting('webhook.master_key_file') <> 'regress_webhook_other.key' THEN PERFORM pg_sleep(2); END IF; END $$;
SHOW webhook.master_key_file;
SELECT webhook._unseal(:'sealed');
\echo SQLSTATE :SQLSTATE

-- Back to the default key: a value sealed under another key cannot be read,
-- and new values are sealed under webhook_master.key.
ALTER SYSTEM RESET webhook.master_key_file;
SELECT pg_reload_conf();
SELECT pg_sleep(0.2);
DO $$ BEGIN IF current_setting('webhook.master_key_file') <> '' THEN PERFORM pg_sleep(2); END IF; END $$;
SHOW webhook.master_key_file;
SELECT webhook._unseal(:'sealed');
\echo SQLSTATE :SQLSTATE
SELECT webhook._seal('whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw') LIKE 'whenc:v1:%' AS sealed_by_default;
-- The endpoint written before the key is as it was.
SELECT secret, auth_password, headers FROM webhook.endpoints WHERE id = 9230;
-- A sealed value cannot be written without the key that opens it.
INSERT INTO webhook.endpoints (url, headers) VALUES ('https://example.com/sealed', jsonb_build_object('X-Api-Key', :'sealed'));
\echo SQLSTATE :SQLSTATE

--
-- No error prints a secret, a password or a header value: a NULL in each NOT
-- NULL column and a value breaking each CHECK constraint, on INSERT and
-- UPDATE of a row that has all three (sealed under the default key; the
-- statements hold them in clear).
--
INSERT INTO webhook.endpoints (url, active, secret, auth_username, auth_password, headers)
VALUES ('https://example.com/leak', NULL, 'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw', 'user', 'regress-pw-leak',
        '{"X-Api-Key": "regress-header-leak"}');
\echo SQLSTATE :SQLSTATE
CREATE FUNCTION pg_temp.leaks(stmt text, base jsonb, col text, val jsonb)
RETURNS text LANGUAGE plpgsql AS $$
DECLARE
    v_state text;
    v_detail text;
    v_hint text;
    v_text text;
BEGIN
    BEGIN
        EXECUTE stmt USING base || jsonb_build_object(col, val);
        RAISE EXCEPTION 'accepted' USING ERRCODE = 'WH001';   -- and rolled back
    EXCEPTION WHEN OTHERS THEN
        GET STACKED DIAGNOSTICS v_state = RETURNED_SQLSTATE, v_detail = PG_EXCEPTION_DETAIL,
                                v_hint = PG_EXCEPTION_HINT;
        v_text := concat_ws(' | ', SQLERRM, v_detail, v_hint);
    END;
    IF v_state = 'WH001' THEN
        RETURN 'accepted';
    END IF;
    IF v_text ~ '(MfKQ9r8GKY|regress-pw-leak|regress-header-leak)' THEN
        RETURN v_state || ' LEAKED: ' || v_text;
    END IF;
    RETURN v_state;
END;
$$;
BEGIN;
INSERT INTO webhook.endpoints (id, url, secret, auth_username, auth_password, headers)
VALUES (9240, 'https://example.com/leak', 'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw', 'user', 'regress-pw-leak',
        '{"X-Api-Key": "regress-header-leak"}');
SELECT to_jsonb(e) || '{"id": 9241}' AS base FROM webhook.endpoints e WHERE id = 9240 \gset
SELECT c.col, c.val,
       pg_temp.leaks('INSERT INTO webhook.endpoints SELECT (jsonb_populate_record(NULL::webhook.endpoints, $1)).*',
                     :'base', c.col, c.val) AS on_insert,
       pg_temp.leaks('UPDATE webhook.endpoints e SET (' || quote_ident(c.col) || ') = '
                     || '(SELECT ' || quote_ident(c.col) || ' FROM jsonb_populate_record(NULL::webhook.endpoints, $1)) '
                     || 'WHERE e.id = 9240', :'base', c.col, c.val) AS on_update
  FROM (SELECT a.attname::text, 'null'::jsonb FROM pg_attribute a
         WHERE a.attrelid = 'webhook.endpoints'::regclass AND a.attnotnull AND a.attnum > 0 AND NOT a.attisdropped
        UNION ALL
        VALUES ('signing', '"rsa"'::jsonb), ('timeout_ms', '0'), ('max_in_flight', '0'), ('rate_limit_per_s', '0'))
       AS c(col, val)
 ORDER BY c.col, c.val::text;
ROLLBACK;

-- Leave nothing behind.
DELETE FROM webhook.endpoints WHERE id = 9230;
COPY (SELECT 1) TO PROGRAM 'cat > /dev/null; rm -f regress_webhook.key regress_webhook_other.key';
SELECT count(*) AS key_files FROM pg_ls_dir('.') AS f WHERE f LIKE 'regress_webhook%';
DROP OWNED BY regress_webhook_manager;
DROP ROLE regress_webhook_manager;
