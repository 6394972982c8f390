------------------------------------------------------------------------------
-- C helpers (src/)
------------------------------------------------------------------------------

-- A new signing secret: whsec_<base64 of 32 random bytes> for HMAC schemes,
-- whsk_<base64 of seed || public key> for ed25519.
CREATE FUNCTION webhook.generate_secret(signing text DEFAULT 'standard')
RETURNS text LANGUAGE C VOLATILE STRICT PARALLEL SAFE
AS 'MODULE_PATHNAME', 'webhook_generate_secret';

-- NULL when the URL is acceptable as a webhook target, else the reason.
CREATE FUNCTION webhook._url_problem(url text)
RETURNS text LANGUAGE C STABLE STRICT PARALLEL SAFE
AS 'MODULE_PATHNAME', 'webhook_url_problem';

-- Is this the name of a signing scheme?  The CHECK of webhook.endpoints.signing
-- (src/signature.c holds the one list of schemes).
CREATE FUNCTION webhook._is_signing_scheme(signing text)
RETURNS boolean LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE
AS 'MODULE_PATHNAME', 'webhook_is_signing_scheme';

-- NULL when the secret can be used with the signing scheme, else the reason.
-- A sealed value is not opened: this is no oracle on ciphertexts.
CREATE FUNCTION webhook._secret_problem(signing text, secret text)
RETURNS text LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE
AS 'MODULE_PATHNAME', 'webhook_secret_problem';

-- Ask for the delivery worker's latch to be set when this transaction commits.
CREATE FUNCTION webhook._wake_worker_at_commit()
RETURNS void LANGUAGE C VOLATILE PARALLEL UNSAFE
AS 'MODULE_PATHNAME', 'webhook_wake_worker_at_commit';

-- Tell the launcher that this database now has the extension.
CREATE FUNCTION webhook._start_worker_at_commit()
RETURNS void LANGUAGE C VOLATILE PARALLEL UNSAFE
AS 'MODULE_PATHNAME', 'webhook_start_worker_at_commit';

-- The signature header value for one request, exactly as the worker sends it
-- (an hmac-sha256 one in the endpoint's signature_encoding).
CREATE FUNCTION webhook.sign(secret text, msg_id text, "timestamp" bigint, body text,
                             signing text DEFAULT 'standard', signature_encoding text DEFAULT 'sha256=hex')
RETURNS text LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE
AS 'MODULE_PATHNAME', 'webhook_sign';

-- Encrypt a secret under the master key (webhook.master_key_file, or by
-- default webhook_master.key in the data directory, created on first use).
-- Endpoints do not need it: their values are sealed by _endpoints_seal().
CREATE FUNCTION webhook._seal(value text)
RETURNS text LANGUAGE C VOLATILE STRICT PARALLEL SAFE
AS 'MODULE_PATHNAME', 'webhook_seal';

-- Decrypt a sealed secret (unchanged when it is not sealed).
CREATE FUNCTION webhook._unseal(value text)
RETURNS text LANGUAGE C STABLE STRICT PARALLEL SAFE
AS 'MODULE_PATHNAME', 'webhook_unseal';

-- Standard Webhooks verification of one request's parts.
CREATE FUNCTION webhook._verify(secret text, msg_id text, "timestamp" text, signatures text,
                                body text, tolerance_s double precision)
RETURNS boolean LANGUAGE C VOLATILE STRICT PARALLEL SAFE
AS 'MODULE_PATHNAME', 'webhook_verify';

-- The whpk_ public key matching an ed25519 whsk_ secret.
CREATE FUNCTION webhook._ed25519_public_key(secret text)
RETURNS text LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE
AS 'MODULE_PATHNAME', 'webhook_ed25519_public_key';

-- A time-ordered UUID (version 7), the default id of events.
CREATE FUNCTION webhook.uuid_v7()
RETURNS uuid LANGUAGE C VOLATILE PARALLEL SAFE
AS 'MODULE_PATHNAME', 'webhook_uuid_v7';

-- Request formats (issue 15: CloudEvents and the seeds' own formats).
-- Is this the name of an endpoint format?  The CHECK of webhook.endpoints.format
-- (src/request_format.c holds the one list of formats).
CREATE FUNCTION webhook._is_request_format(format text)
RETURNS boolean LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE
AS 'MODULE_PATHNAME', 'webhook_is_request_format';

-- Is this the name of a signature encoding?  The CHECK of
-- webhook.endpoints.signature_encoding (src/signature.c holds the one list).
CREATE FUNCTION webhook._is_signature_encoding(signature_encoding text)
RETURNS boolean LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE
AS 'MODULE_PATHNAME', 'webhook_is_signature_encoding';

-- Is this SQL/JSON path a predicate (a boolean result for any payload)?
-- The CHECK of webhook.endpoints.filter (src/endpoint_filter.c).
CREATE FUNCTION webhook._is_jsonpath_predicate(filter jsonpath)
RETURNS boolean LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE
AS 'MODULE_PATHNAME', 'webhook_is_jsonpath_predicate';
