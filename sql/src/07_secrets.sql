------------------------------------------------------------------------------
-- Secrets: rotation, reading, verification
------------------------------------------------------------------------------

-- Replace an endpoint's secret.  Until the grace period ends, requests carry
-- signatures with both the new and the old secret, so receivers can switch
-- at their own pace.  Returns the new secret, or for ed25519 the new public key.
CREATE FUNCTION webhook.rotate_secret(endpoint_id bigint, grace interval DEFAULT '24 hours')
RETURNS text LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    ep record;
    v_secret text;
BEGIN
    SELECT e.signing, e.secret INTO ep FROM webhook.endpoints e WHERE e.id = rotate_secret.endpoint_id FOR UPDATE;
    IF NOT FOUND THEN
        PERFORM webhook._raise_no_endpoint(endpoint_id);
    END IF;
    IF ep.signing = 'none' THEN
        RAISE EXCEPTION 'endpoint % does not sign its requests', endpoint_id
            USING ERRCODE = 'wrong_object_type',
                  HINT = 'Set its signing column first.';
    END IF;
    IF grace IS NULL OR grace < interval '0' THEN
        RAISE EXCEPTION 'grace must be a non-negative interval'
            USING ERRCODE = 'invalid_parameter_value', HINT = 'Use ''0 seconds'' to stop signing with the old secret at once.';
    END IF;
    v_secret := webhook.generate_secret(ep.signing);
    UPDATE webhook.endpoints e
       SET previous_secret = ep.secret, previous_secret_expires_at = now() + grace, secret = v_secret
     WHERE e.id = rotate_secret.endpoint_id;
    IF ep.signing = 'ed25519' THEN
        RETURN webhook._ed25519_public_key(v_secret);
    END IF;
    RETURN v_secret;
END;
$$;
COMMENT ON FUNCTION webhook.rotate_secret(bigint, interval) IS 'new secret for an endpoint; the old one keeps signing during the grace period';

-- The plain secret of an endpoint, also when stored encrypted.
CREATE FUNCTION webhook.endpoint_secret(endpoint_id bigint)
RETURNS text LANGUAGE sql STABLE STRICT
SET search_path = pg_catalog, pg_temp
RETURN (SELECT webhook._unseal(e.secret) FROM webhook.endpoints e WHERE e.id = endpoint_secret.endpoint_id);

-- Raise invalid_parameter_value from an SQL function.
CREATE FUNCTION webhook._raise_invalid(message text, hint text)
RETURNS text LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    RAISE EXCEPTION '%', message USING ERRCODE = 'invalid_parameter_value', HINT = hint;
END;
$$;

-- The value of a header in a JSON object of headers, whatever its case.
CREATE FUNCTION webhook._header(headers jsonb, name text)
RETURNS text LANGUAGE sql IMMUTABLE PARALLEL SAFE
RETURN (SELECT h.value FROM pg_catalog.jsonb_each_text(headers) AS h
         WHERE pg_catalog.lower(h.key) = name LIMIT 1);

-- Check a Standard Webhooks request as a receiver would: any of the
-- space-separated signatures valid for the secret (whsec_ for v1, whpk_ or
-- whsk_ for v1a), and a timestamp within the tolerance.
CREATE FUNCTION webhook.verify(secret text, headers jsonb, body text, tolerance interval DEFAULT '5 minutes')
RETURNS boolean LANGUAGE sql VOLATILE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
RETURN CASE WHEN jsonb_typeof(headers) <> 'object'
            THEN webhook._raise_invalid('headers must be a JSON object of the request''s headers',
                                        'For example {"webhook-id": "...", "webhook-timestamp": "...", "webhook-signature": "..."}.')::boolean
            ELSE coalesce(webhook._verify(secret,
                                          webhook._header(headers, 'webhook-id'),
                                          webhook._header(headers, 'webhook-timestamp'),
                                          webhook._header(headers, 'webhook-signature'),
                                          body,
                                          extract(epoch FROM tolerance)::double precision),
                          false)
       END;
COMMENT ON FUNCTION webhook.verify(text, jsonb, text, interval) IS 'verify a Standard Webhooks request: signature and timestamp';
