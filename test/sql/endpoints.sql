-- webhook.endpoints: defaults, secrets, updates, and every bad input refused
-- with its exact error (message, DETAIL, HINT and SQLSTATE) and nothing written.
-- No event is sent here, so the delivery worker has nothing to do.
-- Secrets are sealed at rest by default (webhook_master.key, created on first
-- use): the values given are read back through webhook._unseal().
\set SHOW_CONTEXT never

--
-- A URL alone is enough; everything else has a default.
--
INSERT INTO webhook.endpoints (url) VALUES ('https://example.com/hook') RETURNING id AS minimal_id \gset
\x on
SELECT url, name, description, event_types, active, signing, signature_header, headers,
       timeout_ms, retry_schedule_s, max_in_flight, disabled_at, disabled_reason,
       webhook._unseal(secret) ~ '^whsec_[A-Za-z0-9+/]{43}=$' AS secret_is_whsec_base64,
       length(decode(substr(webhook._unseal(secret), 7), 'base64')) AS secret_bytes,
       created_at = updated_at AS same_timestamps
  FROM webhook.endpoints WHERE id = :minimal_id;
\x off
-- Every generated secret is new.
INSERT INTO webhook.endpoints (url) VALUES ('https://example.com/hook') RETURNING id AS second_id \gset
SELECT webhook._unseal(a.secret) <> webhook._unseal(b.secret) AS secrets_differ
  FROM webhook.endpoints a, webhook.endpoints b WHERE a.id = :minimal_id AND b.id = :second_id;

--
-- A secret given on INSERT is kept exactly as given.
--
INSERT INTO webhook.endpoints (name, url, secret)
VALUES ('given', 'https://example.com/given', 'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw')
RETURNING name, signing, webhook._unseal(secret) AS secret;
-- Without the whsec_ prefix, as some systems store it.
INSERT INTO webhook.endpoints (name, url, secret)
VALUES ('unprefixed', 'https://example.com/given', 'C2FVsBQIhrscChlQIMV+b5sSYspob7oD')
RETURNING name, signing, webhook._unseal(secret) AS secret;
-- GitHub style: any non-empty string is the HMAC key.
INSERT INTO webhook.endpoints (name, url, signing, secret, signature_header)
VALUES ('github', 'https://example.com/github', 'hmac-sha256', 'It''s a Secret to Everybody', 'X-Hub-Signature-256')
RETURNING name, signing, webhook._unseal(secret) AS secret, signature_header;
-- Generated secrets for the other schemes.
INSERT INTO webhook.endpoints (name, url, signing)
VALUES ('hmac-generated', 'https://example.com/github', 'hmac-sha256')
RETURNING name, signing, webhook._unseal(secret) ~ '^whsec_[A-Za-z0-9+/]{43}=$' AS secret_is_whsec_base64;
INSERT INTO webhook.endpoints (name, url, signing)
VALUES ('unsigned', 'https://example.com/unsigned', 'none')
RETURNING name, signing, secret IS NULL AS no_secret;

--
-- ed25519: a whsk_ secret (seed and public key) and its whpk_ public key.
--
INSERT INTO webhook.endpoints (name, url, signing)
VALUES ('ed', 'https://example.com/ed', 'ed25519') RETURNING id AS ed_id \gset
SELECT webhook._unseal(secret) ~ '^whsk_[A-Za-z0-9+/]{86}==$' AS secret_is_whsk_base64,
       length(decode(substr(webhook._unseal(secret), 6), 'base64')) AS secret_bytes,
       webhook.public_key(id) ~ '^whpk_[A-Za-z0-9+/]{43}=$' AS public_key_is_whpk_base64,
       webhook.public_key(id) = 'whpk_' || encode(substr(decode(substr(webhook._unseal(secret), 6), 'base64'), 33), 'base64')
           AS public_key_is_second_half_of_secret
  FROM webhook.endpoints WHERE id = :ed_id;
-- A given ed25519 secret (the Svix test key) gives the published public key.
INSERT INTO webhook.endpoints (name, url, signing, secret)
VALUES ('ed-given', 'https://example.com/ed', 'ed25519',
        'whsk_6Xb/dCcHpPea21PS1N9VY/NZW723CEc77N4rJCubMbfVKIDij2HKpMKkioLlX0dRqSKJp4AJ6p9lMicMFs6Kvg==');
-- The seed alone is accepted too, and kept as given.
INSERT INTO webhook.endpoints (name, url, signing, secret)
VALUES ('ed-seed', 'https://example.com/ed', 'ed25519', 'whsk_6Xb/dCcHpPea21PS1N9VY/NZW723CEc77N4rJCubMbc=');
SELECT name, webhook._unseal(secret) AS secret, webhook.public_key(id) FROM webhook.endpoints WHERE name IN ('ed-given', 'ed-seed') ORDER BY name;
-- public_key of an endpoint that does not sign with ed25519, of none, of NULL.
INSERT INTO webhook.endpoints (id, url) VALUES (900001, 'https://example.com/standard');
SELECT webhook.public_key(900001);
\echo SQLSTATE :SQLSTATE
SELECT webhook.public_key(-1);
\echo SQLSTATE :SQLSTATE
SELECT webhook.public_key(NULL) IS NULL AS null_for_null;

--
-- UPDATE keeps updated_at current and the row valid.
--
INSERT INTO webhook.endpoints (name, url, created_at, updated_at)
VALUES ('old', 'https://example.com/old', '2001-02-03 04:05:06+00', '2001-02-03 04:05:06+00')
RETURNING id AS old_id \gset
UPDATE webhook.endpoints SET description = 'touched' WHERE id = :old_id;
SELECT description, created_at = '2001-02-03 04:05:06+00' AS created_at_kept,
       updated_at > '2001-02-03 04:05:06+00' AS updated_at_moved
  FROM webhook.endpoints WHERE id = :old_id;
-- updated_at cannot be set back by hand.
UPDATE webhook.endpoints SET updated_at = '1999-01-01 00:00:00+00' WHERE id = :old_id;
SELECT updated_at > '2001-02-03 04:05:06+00' AS updated_at_current FROM webhook.endpoints WHERE id = :old_id;
-- Switching to or from ed25519 without a new secret generates one of the right kind;
-- between HMAC schemes the secret is kept; a secret given in the UPDATE is kept.
SELECT webhook._unseal(secret) AS old_secret FROM webhook.endpoints WHERE id = :old_id \gset
UPDATE webhook.endpoints SET signing = 'hmac-sha256' WHERE id = :old_id;
SELECT signing, webhook._unseal(secret) = :'old_secret' AS secret_kept FROM webhook.endpoints WHERE id = :old_id;
UPDATE webhook.endpoints SET signing = 'ed25519' WHERE id = :old_id;
SELECT signing, webhook._unseal(secret) ~ '^whsk_[A-Za-z0-9+/]{86}==$' AS secret_is_whsk_base64 FROM webhook.endpoints WHERE id = :old_id;
UPDATE webhook.endpoints SET signing = 'standard' WHERE id = :old_id;
SELECT signing, webhook._unseal(secret) ~ '^whsec_[A-Za-z0-9+/]{43}=$' AS secret_is_whsec_base64,
       webhook._unseal(secret) <> :'old_secret' AS secret_is_new
  FROM webhook.endpoints WHERE id = :old_id;
UPDATE webhook.endpoints SET secret = 'whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD' WHERE id = :old_id;
SELECT webhook._unseal(secret) AS secret FROM webhook.endpoints WHERE id = :old_id;
-- Re-activating an endpoint clears why it was disabled.
UPDATE webhook.endpoints SET active = false, disabled_at = now(), disabled_reason = 'receiver answered 410 Gone'
 WHERE id = :old_id;
SELECT active, disabled_at IS NOT NULL AS disabled_at_set, disabled_reason FROM webhook.endpoints WHERE id = :old_id;
UPDATE webhook.endpoints SET active = true WHERE id = :old_id;
SELECT active, disabled_at, disabled_reason FROM webhook.endpoints WHERE id = :old_id;
-- A bad UPDATE is refused and changes nothing.
UPDATE webhook.endpoints SET url = 'ftp://example.com/old', description = 'changed' WHERE id = :old_id;
\echo SQLSTATE :SQLSTATE
SELECT url, description FROM webhook.endpoints WHERE id = :old_id;

--
-- Bad input: each is refused with its own error, and nothing is written.
--
SELECT count(*) AS endpoints_before FROM webhook.endpoints \gset

-- URLs
INSERT INTO webhook.endpoints (url) VALUES (NULL);
\echo SQLSTATE :SQLSTATE
INSERT INTO webhook.endpoints (url) VALUES ('example.com/hook');
\echo SQLSTATE :SQLSTATE
INSERT INTO webhook.endpoints (url) VALUES ('/hook');
\echo SQLSTATE :SQLSTATE
INSERT INTO webhook.endpoints (url) VALUES ('');
\echo SQLSTATE :SQLSTATE
INSERT INTO webhook.endpoints (url) VALUES ('ftp://example.com/hook');
\echo SQLSTATE :SQLSTATE
INSERT INTO webhook.endpoints (url) VALUES ('file:///etc/passwd');
\echo SQLSTATE :SQLSTATE
-- Ports: 1 to 65535 (curl's parser accepts 0, where no receiver can listen).
INSERT INTO webhook.endpoints (url) VALUES ('https://example.com:0/hook');
\echo SQLSTATE :SQLSTATE
INSERT INTO webhook.endpoints (url) VALUES ('https://example.com:00/hook');
\echo SQLSTATE :SQLSTATE
INSERT INTO webhook.endpoints (url) VALUES ('https://example.com:65536/hook');
\echo SQLSTATE :SQLSTATE
INSERT INTO webhook.endpoints (url) VALUES ('http://');
\echo SQLSTATE :SQLSTATE
INSERT INTO webhook.endpoints (url) VALUES ('https://user:pass@example.com/hook');
\echo SQLSTATE :SQLSTATE
INSERT INTO webhook.endpoints (url) VALUES ('https://token@example.com/hook');
\echo SQLSTATE :SQLSTATE
-- Errors name the receiver by scheme, host and port only: never user info,
-- path, query or fragment, even of a URL the parser refuses.
INSERT INTO webhook.endpoints (url) VALUES ('http://SECRETUSER:SECRETPW@example.com/SECRETPATH?token=SECRETQUERY');
INSERT INTO webhook.endpoints (url) VALUES ('http://SECRETUSER:SECRET/PW@example.com:8080/SECRETPATH');
INSERT INTO webhook.endpoints (url) VALUES ('ftp://SECRETUSER:SECRETPW@example.com/SECRETPATH');
INSERT INTO webhook.endpoints (url) VALUES ('SECRETUSER:SECRETPW@example.com/SECRETPATH');
INSERT INTO webhook.endpoints (url) VALUES ('http://[::1]:8080/SECRETPATH?SECRETQUERY#SECRETFRAGMENT');
INSERT INTO webhook.endpoints (url) VALUES ('https://example.com/SECRET PATH');
SELECT u AS url, webhook._url_origin(u) AS origin
  FROM (VALUES ('https://hooks.example.com/services/T0/B0/X'), ('https://example.com:8443/a?b#c'),
               ('https://discord.example/api/@me/x'), ('HTTPS://Example.COM'), ('http://[::1]/x'), ('/hook'), ('')) AS t(u);
INSERT INTO webhook.endpoints (url) VALUES ('https://example.com/my hook');
\echo SQLSTATE :SQLSTATE
INSERT INTO webhook.endpoints (url) VALUES (' https://example.com/hook');
\echo SQLSTATE :SQLSTATE
INSERT INTO webhook.endpoints (url) VALUES ('http://10.0.0.1/hook');
\echo SQLSTATE :SQLSTATE
INSERT INTO webhook.endpoints (url) VALUES ('http://192.168.1.20:8080/hook');
\echo SQLSTATE :SQLSTATE
INSERT INTO webhook.endpoints (url) VALUES ('http://127.0.0.1/hook');
\echo SQLSTATE :SQLSTATE
INSERT INTO webhook.endpoints (url) VALUES ('http://0x7f000001/hook');
\echo SQLSTATE :SQLSTATE
INSERT INTO webhook.endpoints (url) VALUES ('http://[::1]/hook');
\echo SQLSTATE :SQLSTATE
INSERT INTO webhook.endpoints (url) VALUES ('http://[::ffff:127.0.0.1]/hook');
\echo SQLSTATE :SQLSTATE
INSERT INTO webhook.endpoints (url) VALUES ('http://169.254.169.254/latest/meta-data/');
\echo SQLSTATE :SQLSTATE
INSERT INTO webhook.endpoints (url) VALUES ('http://[fc00::1]/hook');
\echo SQLSTATE :SQLSTATE

-- event_types
INSERT INTO webhook.endpoints (url, event_types) VALUES ('https://example.com/hook', NULL);
\echo SQLSTATE :SQLSTATE
INSERT INTO webhook.endpoints (url, event_types) VALUES ('https://example.com/hook', '{order.created,NULL}');
\echo SQLSTATE :SQLSTATE
INSERT INTO webhook.endpoints (url, event_types) VALUES ('https://example.com/hook', '{{order.created,order.paid},{a,b}}');
\echo SQLSTATE :SQLSTATE
INSERT INTO webhook.endpoints (url, event_types) VALUES ('https://example.com/hook', '{order.}');
\echo SQLSTATE :SQLSTATE
INSERT INTO webhook.endpoints (url, event_types) VALUES ('https://example.com/hook', '{.x}');
\echo SQLSTATE :SQLSTATE
INSERT INTO webhook.endpoints (url, event_types) VALUES ('https://example.com/hook', '{a..b}');
\echo SQLSTATE :SQLSTATE
INSERT INTO webhook.endpoints (url, event_types) VALUES ('https://example.com/hook', '{a.*.b}');
\echo SQLSTATE :SQLSTATE
INSERT INTO webhook.endpoints (url, event_types) VALUES ('https://example.com/hook', '{**}');
\echo SQLSTATE :SQLSTATE
INSERT INTO webhook.endpoints (url, event_types) VALUES ('https://example.com/hook', '{.*}');
\echo SQLSTATE :SQLSTATE
INSERT INTO webhook.endpoints (url, event_types) VALUES ('https://example.com/hook', '{order.*.*}');
\echo SQLSTATE :SQLSTATE
INSERT INTO webhook.endpoints (url, event_types) VALUES ('https://example.com/hook', '{"a b"}');
\echo SQLSTATE :SQLSTATE
INSERT INTO webhook.endpoints (url, event_types) VALUES ('https://example.com/hook', '{""}');
\echo SQLSTATE :SQLSTATE
INSERT INTO webhook.endpoints (url, event_types) VALUES ('https://example.com/hook', '{order.created,"order created"}');
\echo SQLSTATE :SQLSTATE

-- signing and signature header
INSERT INTO webhook.endpoints (url, signing) VALUES ('https://example.com/hook', 'rsa');
\echo SQLSTATE :SQLSTATE
INSERT INTO webhook.endpoints (url, signing) VALUES ('https://example.com/hook', 'Standard');
\echo SQLSTATE :SQLSTATE
INSERT INTO webhook.endpoints (url, signing) VALUES ('https://example.com/hook', NULL);
\echo SQLSTATE :SQLSTATE
INSERT INTO webhook.endpoints (url, signature_header) VALUES ('https://example.com/hook', 'webhook-signature');
\echo SQLSTATE :SQLSTATE
INSERT INTO webhook.endpoints (url, signature_header) VALUES ('https://example.com/hook', 'Content-Type');
\echo SQLSTATE :SQLSTATE
INSERT INTO webhook.endpoints (url, signature_header) VALUES ('https://example.com/hook', 'X Signature');
\echo SQLSTATE :SQLSTATE
-- The same rule as for extra headers: HTTP's own framing headers are refused,
-- and a signature header may not replace Basic authentication.
INSERT INTO webhook.endpoints (url, signature_header) VALUES ('https://example.com/hook', 'Transfer-Encoding');
\echo SQLSTATE :SQLSTATE
INSERT INTO webhook.endpoints (url, signature_header) VALUES ('https://example.com/hook', 'connection');
\echo SQLSTATE :SQLSTATE
INSERT INTO webhook.endpoints (url, signing, signature_header, auth_username, auth_password)
VALUES ('https://example.com/hook', 'hmac-sha256', 'Authorization', 'user', 'pw');
\echo SQLSTATE :SQLSTATE
INSERT INTO webhook.endpoints (url, signature_header) VALUES ('https://example.com/hook', 'X-' || repeat('s', 127));
\echo SQLSTATE :SQLSTATE
BEGIN;
INSERT INTO webhook.endpoints (url, signature_header) VALUES ('https://example.com/hook', 'X-' || repeat('s', 126))
RETURNING length(signature_header) AS longest_signature_header;
-- Setting Basic authentication later meets the same rule.
UPDATE webhook.endpoints SET signing = 'hmac-sha256', signature_header = 'authorization' WHERE url = 'https://example.com/hook';
UPDATE webhook.endpoints SET auth_username = 'user' WHERE url = 'https://example.com/hook';
\echo SQLSTATE :SQLSTATE
ROLLBACK;

-- headers
INSERT INTO webhook.endpoints (url, headers) VALUES ('https://example.com/hook', NULL);
\echo SQLSTATE :SQLSTATE
INSERT INTO webhook.endpoints (url, headers) VALUES ('https://example.com/hook', '[]');
\echo SQLSTATE :SQLSTATE
INSERT INTO webhook.endpoints (url, headers) VALUES ('https://example.com/hook', '"x"');
\echo SQLSTATE :SQLSTATE
INSERT INTO webhook.endpoints (url, headers) VALUES ('https://example.com/hook', 'null');
\echo SQLSTATE :SQLSTATE
INSERT INTO webhook.endpoints (url, headers) VALUES ('https://example.com/hook', '{"X-Retry": 3}');
\echo SQLSTATE :SQLSTATE
INSERT INTO webhook.endpoints (url, headers) VALUES ('https://example.com/hook', '{"X-Flag": true}');
\echo SQLSTATE :SQLSTATE
INSERT INTO webhook.endpoints (url, headers) VALUES ('https://example.com/hook', '{"X-Api-Key": null}');
\echo SQLSTATE :SQLSTATE
INSERT INTO webhook.endpoints (url, headers) VALUES ('https://example.com/hook', '{"X-Api-Key": {"k": "v"}}');
\echo SQLSTATE :SQLSTATE
INSERT INTO webhook.endpoints (url, headers) VALUES ('https://example.com/hook', '{"webhook-id": "x"}');
\echo SQLSTATE :SQLSTATE
INSERT INTO webhook.endpoints (url, headers) VALUES ('https://example.com/hook', '{"Webhook-Signature": "v1,x"}');
\echo SQLSTATE :SQLSTATE
INSERT INTO webhook.endpoints (url, headers) VALUES ('https://example.com/hook', '{"Content-Type": "text/plain"}');
\echo SQLSTATE :SQLSTATE
INSERT INTO webhook.endpoints (url, headers) VALUES ('https://example.com/hook', '{"CONTENT-TYPE": "text/plain"}');
\echo SQLSTATE :SQLSTATE
INSERT INTO webhook.endpoints (url, headers) VALUES ('https://example.com/hook', '{"content-length": "0"}');
\echo SQLSTATE :SQLSTATE
INSERT INTO webhook.endpoints (url, headers) VALUES ('https://example.com/hook', '{"host": "internal.example"}');
\echo SQLSTATE :SQLSTATE
INSERT INTO webhook.endpoints (url, headers) VALUES ('https://example.com/hook', '{"Transfer-Encoding": "chunked"}');
\echo SQLSTATE :SQLSTATE
INSERT INTO webhook.endpoints (url, headers) VALUES ('https://example.com/hook', '{"Connection": "close"}');
\echo SQLSTATE :SQLSTATE
INSERT INTO webhook.endpoints (url, signing, signature_header, headers)
VALUES ('https://example.com/hook', 'hmac-sha256', 'X-Hub-Signature-256', '{"x-hub-signature-256": "sha256=0"}');
\echo SQLSTATE :SQLSTATE
INSERT INTO webhook.endpoints (url, headers) VALUES ('https://example.com/hook', '{"X Api Key": "k"}');
\echo SQLSTATE :SQLSTATE
INSERT INTO webhook.endpoints (url, headers) VALUES ('https://example.com/hook', '{"X-Api-Key:": "k"}');
\echo SQLSTATE :SQLSTATE
INSERT INTO webhook.endpoints (url, headers) VALUES ('https://example.com/hook', '{"": "k"}');
\echo SQLSTATE :SQLSTATE
INSERT INTO webhook.endpoints (url, headers) VALUES ('https://example.com/hook', '{"X-Api-Key": "k\r\nX-Injected: 1"}');
\echo SQLSTATE :SQLSTATE
INSERT INTO webhook.endpoints (url, headers) VALUES ('https://example.com/hook', '{"X-Api-Key": "k\n"}');
\echo SQLSTATE :SQLSTATE
INSERT INTO webhook.endpoints (url, headers) VALUES ('https://example.com/hook', '{"X-Api-Key": "k\r"}');
\echo SQLSTATE :SQLSTATE

-- timeout, concurrency cap, retry schedule
INSERT INTO webhook.endpoints (url, timeout_ms) VALUES ('https://example.com/hook', 0);
\echo SQLSTATE :SQLSTATE
INSERT INTO webhook.endpoints (url, timeout_ms) VALUES ('https://example.com/hook', -1);
\echo SQLSTATE :SQLSTATE
INSERT INTO webhook.endpoints (url, timeout_ms) VALUES ('https://example.com/hook', NULL);
\echo SQLSTATE :SQLSTATE
INSERT INTO webhook.endpoints (url, max_in_flight) VALUES ('https://example.com/hook', 0);
\echo SQLSTATE :SQLSTATE
INSERT INTO webhook.endpoints (url, max_in_flight) VALUES ('https://example.com/hook', -5);
\echo SQLSTATE :SQLSTATE
INSERT INTO webhook.endpoints (url, retry_schedule_s) VALUES ('https://example.com/hook', '{5,-1}');
\echo SQLSTATE :SQLSTATE
INSERT INTO webhook.endpoints (url, retry_schedule_s) VALUES ('https://example.com/hook', '{5,NULL}');
\echo SQLSTATE :SQLSTATE
INSERT INTO webhook.endpoints (url, retry_schedule_s) VALUES ('https://example.com/hook', '{{5,10},{20,30}}');
\echo SQLSTATE :SQLSTATE
INSERT INTO webhook.endpoints (url, retry_schedule_s) VALUES ('https://example.com/hook', NULL);
\echo SQLSTATE :SQLSTATE

-- secrets: standard (whsec_ + base64 of 16 to 64 bytes)
INSERT INTO webhook.endpoints (url, secret) VALUES ('https://example.com/hook', 'whsec_not base64!');
\echo SQLSTATE :SQLSTATE
INSERT INTO webhook.endpoints (url, secret) VALUES ('https://example.com/hook', 'whsec_');
\echo SQLSTATE :SQLSTATE
INSERT INTO webhook.endpoints (url, secret) VALUES ('https://example.com/hook', 'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaS');
\echo SQLSTATE :SQLSTATE
INSERT INTO webhook.endpoints (url, secret) VALUES ('https://example.com/hook', 'whsec_c2VjcmV0');
\echo SQLSTATE :SQLSTATE
INSERT INTO webhook.endpoints (url, secret)
VALUES ('https://example.com/hook', 'whsec_' || encode(decode(repeat('ab', 15), 'hex'), 'base64'));
\echo SQLSTATE :SQLSTATE
INSERT INTO webhook.endpoints (url, secret)
VALUES ('https://example.com/hook', 'whsec_' || translate(encode(decode(repeat('ab', 65), 'hex'), 'base64'), E'\n', ''));
\echo SQLSTATE :SQLSTATE
-- secrets: ed25519 (whsk_ + base64 of the seed, or of seed and public key)
INSERT INTO webhook.endpoints (url, signing, secret)
VALUES ('https://example.com/hook', 'ed25519', 'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw');
\echo SQLSTATE :SQLSTATE
INSERT INTO webhook.endpoints (url, signing, secret)
VALUES ('https://example.com/hook', 'ed25519', 'whsk_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw');
\echo SQLSTATE :SQLSTATE
INSERT INTO webhook.endpoints (url, signing, secret)
VALUES ('https://example.com/hook', 'ed25519', 'whsk_not base64!');
\echo SQLSTATE :SQLSTATE
INSERT INTO webhook.endpoints (url, signing, secret)
VALUES ('https://example.com/hook', 'ed25519',
        'whsk_6Xb/dCcHpPea21PS1N9VY/NZW723CEc77N4rJCubMbfVKIDij2HKpMKkioLlX0dRqSKJp4AJ6p9lMicMFs6KvA==');
\echo SQLSTATE :SQLSTATE
-- secrets: hmac-sha256 (1 to 128 bytes)
INSERT INTO webhook.endpoints (url, signing, secret) VALUES ('https://example.com/hook', 'hmac-sha256', '');
\echo SQLSTATE :SQLSTATE
INSERT INTO webhook.endpoints (url, signing, secret) VALUES ('https://example.com/hook', 'hmac-sha256', repeat('s', 129));
\echo SQLSTATE :SQLSTATE

-- Nothing was written.
SELECT count(*) = :endpoints_before AS nothing_written FROM webhook.endpoints;

--
-- The limits, and what is accepted right at them.
--
INSERT INTO webhook.endpoints (url, secret, timeout_ms, max_in_flight, retry_schedule_s, event_types, headers)
VALUES ('https://example.com/edge', 'whsec_' || encode(decode(repeat('ab', 16), 'hex'), 'base64'), 1, 1, '{}',
        '{}', '{"Authorization": "Bearer abc123", "X-Api-Key": "k", "X-Webhook-Signature": "not used by standard signing"}')
RETURNING timeout_ms, max_in_flight, retry_schedule_s, event_types,
          (SELECT jsonb_object_agg(h.key, webhook._unseal(h.value)) FROM jsonb_each_text(headers) h) AS headers;
INSERT INTO webhook.endpoints (url, retry_schedule_s, event_types)
VALUES ('https://example.com/edge', '{0,0}', '{order.created,order.*,*,a-b_c.D9}')
RETURNING retry_schedule_s, event_types;
INSERT INTO webhook.endpoints (url, signing, secret)
VALUES ('https://example.com/edge', 'hmac-sha256', repeat('s', 128))
RETURNING length(webhook._unseal(secret));
INSERT INTO webhook.endpoints (url, secret)
VALUES ('https://example.com/edge', 'whsec_' || translate(encode(decode(repeat('ab', 64), 'hex'), 'base64'), E'\n', ''))
RETURNING length(decode(substr(webhook._unseal(secret), 7), 'base64')) AS secret_bytes;
-- Host names are checked when the worker connects, not here.
INSERT INTO webhook.endpoints (url) VALUES ('http://localhost:8080/hook') RETURNING url;

--
-- Network policy settings (superuser only).
--
-- webhook.allow_private_networks lets literal private addresses in.
SET webhook.allow_private_networks = on;
INSERT INTO webhook.endpoints (url) VALUES ('http://10.0.0.1/hook'), ('http://127.0.0.1/hook'), ('http://[::1]/hook')
RETURNING url;
RESET webhook.allow_private_networks;
-- Later writes to such an endpoint check it again.
UPDATE webhook.endpoints SET description = 'loopback' WHERE url = 'http://127.0.0.1/hook';
\echo SQLSTATE :SQLSTATE
-- webhook.allowed_networks lets in just the networks it names.
SET webhook.allowed_networks = '10.0.0.0/8';
INSERT INTO webhook.endpoints (url) VALUES ('http://10.1.2.3/hook') RETURNING url;
INSERT INTO webhook.endpoints (url) VALUES ('http://127.0.0.1/hook');
\echo SQLSTATE :SQLSTATE
RESET webhook.allowed_networks;
-- webhook.require_https refuses plain http.
SET webhook.require_https = on;
INSERT INTO webhook.endpoints (url) VALUES ('http://example.com/hook');
\echo SQLSTATE :SQLSTATE
INSERT INTO webhook.endpoints (url) VALUES ('https://example.com/secure') RETURNING url;
RESET webhook.require_https;

-- Leave no endpoints behind.
DELETE FROM webhook.endpoints;
