------------------------------------------------------------------------------
-- Sending events
------------------------------------------------------------------------------

-- The exact bytes sent for an event: fixed once, so every attempt and every
-- endpoint sends and signs the same body.
CREATE FUNCTION webhook._event_body(event_type text, payload jsonb, created_at timestamptz)
RETURNS text LANGUAGE sql STABLE PARALLEL SAFE
RETURN '{"type":' || pg_catalog.to_json(event_type)::text
    || ',"timestamp":"' || pg_catalog.to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"')
    || '","data":' || payload::text || '}';

-- Refuse an event type that a caller may not send: not a valid name, one of
-- the extension's own ("webhook.*"), or (when strict) not in the catalogue.
-- The extension's own events skip these checks (see webhook._enqueue), so
-- strict mode never refuses them, whatever the catalogue holds.
CREATE FUNCTION webhook._check_event_type(event_type text)
RETURNS void LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF event_type IS NULL THEN
        RAISE EXCEPTION 'event type must not be null'
            USING ERRCODE = 'null_value_not_allowed', HINT = 'For example: order.created.';
    END IF;
    PERFORM webhook._require_event_type(event_type, false);
    PERFORM webhook._require_unreserved_event_type(event_type);
    IF current_setting('webhook.strict_event_types', true) = 'on'
       AND NOT EXISTS (SELECT 1 FROM webhook.event_types t WHERE t.name = event_type) THEN
        RAISE EXCEPTION 'event type "%" is not in webhook.event_types', event_type
            USING ERRCODE = 'undefined_object',
                  HINT = 'Add it with INSERT INTO webhook.event_types (name, description), or turn webhook.strict_event_types off.';
    END IF;
END;
$$;

-- Enqueue one checked event inside the caller's transaction: one events
-- row (once per idempotency key), nothing per endpoint: the delivery worker
-- matches the endpoints when it reads the event after the commit.  send()
-- checks what callers give; the extension's own events come here directly.
CREATE FUNCTION webhook._enqueue(event_type text, payload jsonb, idempotency_key text)
RETURNS uuid LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_column
DECLARE
    v_event_id uuid;
BEGIN
    IF _enqueue.idempotency_key IS NOT NULL THEN
        SELECT e.id INTO v_event_id FROM webhook.events e WHERE e.idempotency_key = _enqueue.idempotency_key;
        IF FOUND THEN
            RETURN v_event_id;
        END IF;
    END IF;

    INSERT INTO webhook.events AS e (event_type, payload, idempotency_key)
    VALUES (_enqueue.event_type, _enqueue.payload, _enqueue.idempotency_key)
    ON CONFLICT (idempotency_key) WHERE idempotency_key IS NOT NULL DO NOTHING
    RETURNING e.id INTO v_event_id;

    IF v_event_id IS NULL THEN
        -- A concurrent transaction committed the same idempotency key first.
        SELECT e.id INTO v_event_id FROM webhook.events e WHERE e.idempotency_key = _enqueue.idempotency_key;
        RETURN v_event_id;
    END IF;
    PERFORM webhook._wake_worker_at_commit();
    RETURN v_event_id;
END;
$$;

-- Enqueue one event inside the caller's transaction: it exists, and is
-- delivered, only if that transaction commits.
CREATE FUNCTION webhook.send(event_type text, payload jsonb, idempotency_key text DEFAULT NULL)
RETURNS uuid LANGUAGE plpgsql VOLATILE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    PERFORM webhook._check_event_type(send.event_type);
    IF send.payload IS NULL THEN
        PERFORM webhook._raise_null_payload();
    END IF;
    PERFORM webhook._check_payload_size(pg_catalog.octet_length(send.payload::text), false);
    IF octet_length(send.idempotency_key) > 256 THEN
        RAISE EXCEPTION 'idempotency key is too long'
            USING ERRCODE = 'program_limit_exceeded',
                  DETAIL = format('It has %s bytes.', octet_length(send.idempotency_key)),
                  HINT = 'An idempotency key has at most 256 bytes; send a hash of a longer key.';
    END IF;
    RETURN webhook._enqueue(send.event_type, send.payload, send.idempotency_key);
END;
$$;
COMMENT ON FUNCTION webhook.send(text, jsonb, text) IS 'enqueue an event in the current transaction; returns its id (the webhook-id)';

-- The public key that receivers of an ed25519 endpoint verify with.
CREATE FUNCTION webhook.public_key(endpoint_id bigint)
RETURNS text LANGUAGE plpgsql STABLE STRICT
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    ep record;
BEGIN
    SELECT e.signing, e.secret INTO ep FROM webhook.endpoints e WHERE e.id = public_key.endpoint_id;
    IF NOT FOUND THEN
        PERFORM webhook._raise_no_endpoint(endpoint_id);
    END IF;
    IF ep.signing <> 'ed25519' THEN
        RAISE EXCEPTION 'endpoint % does not use ed25519 signing', endpoint_id
            USING ERRCODE = 'wrong_object_type',
                  DETAIL = format('Its signing scheme is %s, which has no public key.', ep.signing),
                  HINT = 'UPDATE webhook.endpoints SET signing = ''ed25519'' to switch it to public-key signatures.';
    END IF;
    RETURN webhook._ed25519_public_key(webhook._unseal(ep.secret));
END;
$$;
