-- webhook.sign() against the published vectors in shared/vectors/signatures.json,
-- bit for bit; webhook.generate_secret() and webhook._ed25519_public_key().
\set SHOW_CONTEXT never

--
-- Standard Webhooks v1 (HMAC-SHA256 of "<msg_id>.<timestamp>.<body>").
--
-- Vector 1 (go, javascript, java, csharp, ruby, php libraries); signing defaults to 'standard'.
SELECT webhook.sign('whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw', 'msg_p5jXN8AQM9LWM0D4loKWxJek', 1614265330,
                    '{"test": 2432232314}') AS signature;
SELECT webhook.sign('whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw', 'msg_p5jXN8AQM9LWM0D4loKWxJek', 1614265330,
                    '{"test": 2432232314}', 'standard')
       = 'v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=' AS matches_vector;
-- Vector 2 (rust library).
SELECT webhook.sign('whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD', 'msg_27UH4WbU6Z5A5EzD8u03UvzRbpk', 1649367553,
                    '{"email":"test@example.com","username":"test_user"}', 'standard') AS signature;
SELECT webhook.sign('whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD', 'msg_27UH4WbU6Z5A5EzD8u03UvzRbpk', 1649367553,
                    '{"email":"test@example.com","username":"test_user"}', 'standard')
       = 'v1,tZ1I4/hDygAJgO5TYxiSd6Sd0kDW6hPenDe+bTa3Kkw=' AS matches_vector;
-- The whsec_ prefix is optional, as in the libraries.
SELECT webhook.sign('MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw', 'msg_p5jXN8AQM9LWM0D4loKWxJek', 1614265330,
                    '{"test": 2432232314}') AS signature_without_prefix;
-- Every signed part matters: body bytes (no re-serialising), id and timestamp.
SELECT webhook.sign('whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw', 'msg_p5jXN8AQM9LWM0D4loKWxJek', 1614265330,
                    '{"test":2432232314}') <> 'v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=' AS body_matters,
       webhook.sign('whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw', 'msg_p5jXN8AQM9LWM0D4loKWxJeK', 1614265330,
                    '{"test": 2432232314}') <> 'v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=' AS id_matters,
       webhook.sign('whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw', 'msg_p5jXN8AQM9LWM0D4loKWxJek', 1614265331,
                    '{"test": 2432232314}') <> 'v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=' AS timestamp_matters;

--
-- Standard Webhooks v1a (ed25519), the Svix test key.
--
SELECT webhook.sign('whsk_6Xb/dCcHpPea21PS1N9VY/NZW723CEc77N4rJCubMbfVKIDij2HKpMKkioLlX0dRqSKJp4AJ6p9lMicMFs6Kvg==',
                    'msg_p5jXN8AQM9LWM0D4loKWxJek', 1614265330, '{"test": 2432232314}', 'ed25519') AS signature;
SELECT webhook.sign('whsk_6Xb/dCcHpPea21PS1N9VY/NZW723CEc77N4rJCubMbfVKIDij2HKpMKkioLlX0dRqSKJp4AJ6p9lMicMFs6Kvg==',
                    'msg_p5jXN8AQM9LWM0D4loKWxJek', 1614265330, '{"test": 2432232314}', 'ed25519')
       = 'v1a,hnO3f9T8Ytu9HwrXslvumlUpqtNVqkhqw/enGzPCXe5BdqzCInXqYXFymVJaA7AZdpXwVLPo3mNl8EM+m7TBAg=='
       AS matches_vector;
-- The 32-byte seed alone signs the same.
SELECT webhook.sign('whsk_' || encode(substr(decode('6Xb/dCcHpPea21PS1N9VY/NZW723CEc77N4rJCubMbfVKIDij2HKpMKkioLlX0dRqSKJp4AJ6p9lMicMFs6Kvg==', 'base64'), 1, 32), 'base64'),
                    'msg_p5jXN8AQM9LWM0D4loKWxJek', 1614265330, '{"test": 2432232314}', 'ed25519')
       = 'v1a,hnO3f9T8Ytu9HwrXslvumlUpqtNVqkhqw/enGzPCXe5BdqzCInXqYXFymVJaA7AZdpXwVLPo3mNl8EM+m7TBAg=='
       AS seed_only_matches_vector;
-- Its public key.
SELECT webhook._ed25519_public_key('whsk_6Xb/dCcHpPea21PS1N9VY/NZW723CEc77N4rJCubMbfVKIDij2HKpMKkioLlX0dRqSKJp4AJ6p9lMicMFs6Kvg==')
       AS public_key;
SELECT webhook._ed25519_public_key('whsk_6Xb/dCcHpPea21PS1N9VY/NZW723CEc77N4rJCubMbc=')
       = 'whpk_1SiA4o9hyqTCpIqC5V9HUakiiaeACeqfZTInDBbOir4=' AS seed_only_matches_vector;

--
-- GitHub style (hex HMAC-SHA256 of the body alone; id and timestamp are ignored).
--
SELECT webhook.sign('It''s a Secret to Everybody', 'ignored', 0, 'Hello, World!', 'hmac-sha256') AS signature;
SELECT webhook.sign('It''s a Secret to Everybody', 'msg_other', 1614265330, 'Hello, World!', 'hmac-sha256')
       = 'sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17' AS matches_vector;

--
-- No signing, and bad calls.
--
SELECT webhook.sign('anything', 'msg', 1, 'body', 'none') IS NULL AS none_gives_null;
SELECT webhook.sign(NULL, 'msg', 1, 'body') IS NULL AS strict;
SELECT webhook.sign('whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw', 'msg', 1, 'body', 'rsa');
\echo SQLSTATE :SQLSTATE
SELECT webhook.sign('whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw', 'msg', 1, 'body', 'Standard');
\echo SQLSTATE :SQLSTATE
SELECT webhook.sign('whsec_not base64!', 'msg', 1, 'body');
\echo SQLSTATE :SQLSTATE
SELECT webhook.sign('whsec_c2VjcmV0', 'msg', 1, 'body');
\echo SQLSTATE :SQLSTATE
SELECT webhook.sign('whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw', 'msg', 1, 'body', 'ed25519');
\echo SQLSTATE :SQLSTATE
SELECT webhook.sign('whsk_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw', 'msg', 1, 'body', 'ed25519');
\echo SQLSTATE :SQLSTATE
SELECT webhook.sign('whsk_6Xb/dCcHpPea21PS1N9VY/NZW723CEc77N4rJCubMbfVKIDij2HKpMKkioLlX0dRqSKJp4AJ6p9lMicMFs6KvA==',
                    'msg', 1, 'body', 'ed25519');
\echo SQLSTATE :SQLSTATE
SELECT webhook.sign('', 'msg', 1, 'body', 'hmac-sha256');
\echo SQLSTATE :SQLSTATE
SELECT webhook._ed25519_public_key('whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw');
\echo SQLSTATE :SQLSTATE
SELECT webhook._ed25519_public_key('whsk_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw');
\echo SQLSTATE :SQLSTATE

--
-- generate_secret: fresh, printable, and usable with its scheme.
--
SELECT webhook.generate_secret() ~ '^whsec_[A-Za-z0-9+/]{43}=$' AS default_is_standard,
       webhook.generate_secret('standard') ~ '^whsec_[A-Za-z0-9+/]{43}=$' AS standard,
       webhook.generate_secret('hmac-sha256') ~ '^whsec_[A-Za-z0-9+/]{43}=$' AS hmac_sha256,
       webhook.generate_secret('ed25519') ~ '^whsk_[A-Za-z0-9+/]{86}==$' AS ed25519,
       webhook.generate_secret('none') IS NULL AS none_is_null,
       webhook.generate_secret(NULL) IS NULL AS null_is_null;
SELECT webhook.generate_secret() <> webhook.generate_secret() AS standard_differ,
       webhook.generate_secret('ed25519') <> webhook.generate_secret('ed25519') AS ed25519_differ;
-- A generated standard secret holds 32 random bytes and signs.
SELECT length(decode(substr(s, 7), 'base64')) AS bytes,
       webhook._secret_problem('standard', s) IS NULL AS usable,
       webhook.sign(s, 'msg', 1, 'body') ~ '^v1,[A-Za-z0-9+/]{43}=$' AS signs
  FROM webhook.generate_secret() AS s;
-- A generated ed25519 secret is the seed followed by its public key, and signs.
SELECT length(decode(substr(s, 6), 'base64')) AS bytes,
       webhook._secret_problem('ed25519', s) IS NULL AS usable,
       webhook._ed25519_public_key(s) = 'whpk_' || encode(substr(decode(substr(s, 6), 'base64'), 33), 'base64')
           AS second_half_is_public_key,
       webhook.sign(s, 'msg', 1, 'body', 'ed25519') ~ '^v1a,[A-Za-z0-9+/]{86}==$' AS signs
  FROM webhook.generate_secret('ed25519') AS s;
SELECT webhook.generate_secret('rsa');
\echo SQLSTATE :SQLSTATE
SELECT webhook.generate_secret('');
\echo SQLSTATE :SQLSTATE
