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
-- strict mode never refuses them, whatever the catalogue holds.  send() and
-- the watch trigger run the same C check directly (src/enqueue.c).
CREATE FUNCTION webhook._check_event_type(event_type text)
RETURNS void LANGUAGE C STABLE
AS 'MODULE_PATHNAME', 'webhook_check_event_type';

-- Enqueue one checked event inside the caller's transaction, by SQL: one
-- events row (once per idempotency key), nothing per endpoint: the delivery
-- worker matches the endpoints when it reads the event after the commit.
-- send() comes here for events with an idempotency key or a delivery time
-- (the rest it writes from C); the extension's own events come here directly.
CREATE FUNCTION webhook._enqueue(event_type text, payload jsonb, idempotency_key text,
                                 deliver_at timestamptz DEFAULT NULL, ordering_key text DEFAULT NULL)
RETURNS uuid LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_column
DECLARE
    v_event_id uuid;
BEGIN
    IF NOT isfinite(_enqueue.deliver_at) THEN
        RAISE EXCEPTION 'deliver_at must be a finite time'
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'Give a time such as now() + interval ''1 day''; NULL delivers at once.';
    END IF;
    IF _enqueue.idempotency_key IS NOT NULL THEN
        -- A key is unique within a generation by its index, and across
        -- generations by taking turns here: a concurrent send of the same
        -- key waits until this transaction ends, then finds its event.
        PERFORM pg_advisory_xact_lock(hashtextextended('webhook.idempotency_key:' || _enqueue.idempotency_key, 0));
        SELECT e.id INTO v_event_id FROM webhook.events e WHERE e.idempotency_key = _enqueue.idempotency_key;
        IF FOUND THEN
            RETURN v_event_id;
        END IF;
    END IF;

    INSERT INTO webhook.events AS e (event_type, payload, idempotency_key, deliver_at, ordering_key)
    VALUES (_enqueue.event_type, _enqueue.payload, _enqueue.idempotency_key, _enqueue.deliver_at, _enqueue.ordering_key)
    ON CONFLICT (idempotency_key, gen) WHERE idempotency_key IS NOT NULL DO NOTHING
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
-- delivered, only if that transaction commits; with deliver_at, not before
-- that time (the worker sleeps until then); with ordering_key, in order
-- after the key's earlier events on ordered endpoints.  Written in C
-- (src/enqueue.c):
-- the row goes into webhook.events without a planned INSERT, as COPY writes.
-- It names no object by search_path (every name it uses is qualified), so it
-- sets none: SECURITY DEFINER for webhook._enqueue and the catalogue.
CREATE FUNCTION webhook.send(event_type text, payload jsonb, idempotency_key text DEFAULT NULL,
                             deliver_at timestamptz DEFAULT NULL, ordering_key text DEFAULT NULL)
RETURNS uuid LANGUAGE C VOLATILE
SECURITY DEFINER
AS 'MODULE_PATHNAME', 'webhook_send';
COMMENT ON FUNCTION webhook.send(text, jsonb, text, timestamptz, text) IS 'enqueue an event in the current transaction, to be delivered at once or at deliver_at, in order per ordering_key on ordered endpoints; returns its id (the webhook-id)';

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
