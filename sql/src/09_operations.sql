------------------------------------------------------------------------------
-- Operating: test sends, replay, retention
------------------------------------------------------------------------------

-- Send a webhook.ping event to one endpoint now, whatever it subscribes to,
-- to check that a new receiver is reachable and verifies signatures.
CREATE FUNCTION webhook.ping(endpoint_id bigint)
RETURNS bigint LANGUAGE plpgsql VOLATILE STRICT
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_active boolean;
    v_payload jsonb;
    v_now timestamptz := now();
    v_event_id uuid;
    v_gen smallint;
    v_delivery_id bigint;
BEGIN
    SELECT e.active INTO v_active FROM webhook.endpoints e WHERE e.id = ping.endpoint_id;
    IF NOT FOUND THEN
        PERFORM webhook._raise_no_endpoint(endpoint_id);
    END IF;
    IF NOT v_active THEN
        RAISE EXCEPTION 'endpoint % is not active', endpoint_id
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  HINT = 'UPDATE webhook.endpoints SET active = true first.';
    END IF;
    v_payload := jsonb_build_object('endpoint_id', endpoint_id, 'message', 'ping');
    -- txid 0: the worker never reads the ping as a new event (which would
    -- go to every endpoint subscribed to "*"); its one delivery is made here.
    INSERT INTO webhook.events (event_type, payload, created_at, txid)
    VALUES ('webhook.ping', v_payload, v_now, '0')
    RETURNING id, gen INTO v_event_id, v_gen;
    INSERT INTO webhook.delivery_state (event_id, endpoint_id, gen) VALUES (v_event_id, ping.endpoint_id, v_gen)
    RETURNING id INTO v_delivery_id;
    PERFORM webhook._wake_worker_at_commit();
    RETURN v_delivery_id;
END;
$$;
COMMENT ON FUNCTION webhook.ping(bigint) IS 'send a webhook.ping event to one endpoint now; returns the delivery id';

-- Does an endpoint's filter pass a payload?  Unknown (or an error the
-- filter raises) is no: the same rule as when the worker reads events.
CREATE FUNCTION webhook._passes_filter(filter jsonpath, payload jsonb)
RETURNS boolean LANGUAGE sql IMMUTABLE PARALLEL SAFE
RETURN filter IS NULL OR coalesce(webhook._filter_verdict(filter, payload), false);

-- Cancel an event that no endpoint has received yet: its pending
-- deliveries become cancelled, and none is attempted.  Returns what it
-- cancelled, one row per delivery.  Refused when a delivery of it was
-- attempted or is in flight (the receiver may have it), and when the worker
-- has not read the event yet: until then there is nothing to cancel by row,
-- and cancelling there would race the worker's reading.  Locks the
-- deliveries, so a worker's claim either comes first (and cancel refuses)
-- or finds them cancelled.
CREATE FUNCTION webhook.cancel(event_id uuid)
RETURNS TABLE (delivery_id bigint, endpoint_id bigint, endpoint text, was_due_at timestamptz)
LANGUAGE plpgsql VOLATILE STRICT
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_column
DECLARE
    v_txid xid8;
    v_busy record;
BEGIN
    SELECT e.txid INTO v_txid FROM webhook.events e WHERE e.id = cancel.event_id FOR KEY SHARE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'event % does not exist', cancel.event_id
            USING ERRCODE = 'no_data_found', HINT = 'Event ids are in webhook.events and webhook.deliveries.';
    END IF;
    -- Read: it has deliveries (all of an event's are made together), or
    -- the worker's done snapshot sees it (it matched no endpoint).
    IF NOT EXISTS (SELECT 1 FROM webhook.delivery_state d WHERE d.event_id = cancel.event_id)
       AND NOT EXISTS (SELECT 1 FROM webhook.first_attempts f WHERE f.event_id = cancel.event_id)
       AND EXISTS (SELECT 1 FROM webhook.queue_positions p WHERE p.worker = 0 AND webhook._unread(v_txid, p.done_snapshot)) THEN
        RAISE EXCEPTION 'event % is not read by the delivery worker yet', cancel.event_id
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  DETAIL = 'Its deliveries are made when the worker reads it, after the transaction that sent it commits.',
                  HINT = 'Cancel it once webhook.deliveries shows its deliveries with an id; in the transaction that sent it, roll back instead.';
    END IF;
    SELECT d.id, d.endpoint_id, d.status, d.attempts, d.claimed_at IS NOT NULL AS in_flight INTO v_busy
      FROM (SELECT d.* FROM webhook.delivery_state d WHERE d.event_id = cancel.event_id ORDER BY d.id FOR UPDATE) d
     WHERE d.attempts > 0 OR d.claimed_at IS NOT NULL OR d.status IN ('succeeded', 'failed')
     LIMIT 1;
    IF NOT FOUND THEN
        SELECT f.id, f.endpoint_id, 'pending' AS status, 0 AS attempts, true AS in_flight INTO v_busy
          FROM webhook.first_attempts f WHERE f.event_id = cancel.event_id ORDER BY f.id LIMIT 1;
    END IF;
    IF FOUND THEN
        RAISE EXCEPTION 'event % has been sent already', cancel.event_id
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  DETAIL = format('Its delivery %s to endpoint %s is %s after %s attempts.', v_busy.id,
                                  coalesce(v_busy.endpoint_id::text, '(deleted)'),
                                  CASE WHEN v_busy.in_flight THEN 'in flight' ELSE v_busy.status END, v_busy.attempts),
                  HINT = 'webhook.cancel() cancels only events that no endpoint has been sent yet.';
    END IF;
    RETURN QUERY
    WITH c AS (
        -- Checked again row by row: a delivery made since (a replay) and
        -- claimed meanwhile is left alone.
        UPDATE webhook.delivery_state d
           SET status = 'cancelled', completed_at = now(), last_error = 'cancelled by webhook.cancel()'
         WHERE d.event_id = cancel.event_id AND d.status = 'pending' AND d.attempts = 0 AND d.claimed_at IS NULL
        RETURNING d.id, d.endpoint_id, d.next_attempt_at
    )
    SELECT c.id, c.endpoint_id, ep.name, c.next_attempt_at
      FROM c LEFT JOIN webhook.endpoints ep ON ep.id = c.endpoint_id
     ORDER BY c.id;
END;
$$;
COMMENT ON FUNCTION webhook.cancel(uuid) IS 'cancel an event (a scheduled one, say) that no endpoint has been sent yet; returns the deliveries cancelled';

-- Re-queue one delivery now; it keeps its webhook-id and attempt count.
CREATE FUNCTION webhook.retry(delivery_id bigint)
RETURNS void LANGUAGE plpgsql VOLATILE STRICT
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_status text;
    v_endpoint bigint;
BEGIN
    SELECT d.status, d.endpoint_id INTO v_status, v_endpoint FROM webhook.delivery_state d
     WHERE d.id = retry.delivery_id FOR UPDATE;
    IF NOT FOUND AND EXISTS (SELECT 1 FROM webhook.first_attempts f WHERE f.id = retry.delivery_id) THEN
        RETURN;  -- in flight, as a claimed row is: nothing to re-queue
    END IF;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'delivery % does not exist', delivery_id
            USING ERRCODE = 'no_data_found', HINT = 'Delivery ids are in webhook.deliveries and webhook.delivery_log.';
    END IF;
    IF v_endpoint IS NULL THEN
        RAISE EXCEPTION 'delivery % belongs to a deleted endpoint', delivery_id
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  HINT = 'Use webhook.replay(event_id, endpoint_id) to send its event to another endpoint.';
    END IF;
    UPDATE webhook.delivery_state d
       SET status = 'pending', next_attempt_at = now(), completed_at = NULL
     WHERE d.id = retry.delivery_id AND d.claimed_at IS NULL;
    PERFORM webhook._wake_worker_at_commit();
END;
$$;
COMMENT ON FUNCTION webhook.retry(bigint) IS 're-queue one delivery now';

-- Deliver an event again: to one endpoint, or to every active endpoint
-- subscribed to its type today; either way only where the endpoint's filter,
-- as it is now, passes the payload.  Returns the number of new deliveries.
CREATE FUNCTION webhook.replay(event_id uuid, endpoint_id bigint DEFAULT NULL)
RETURNS bigint LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_type text;
    v_gen smallint;
    v_payload jsonb;
    v_key text;
    v_count bigint;
BEGIN
    IF event_id IS NULL THEN
        RAISE EXCEPTION 'event_id must not be null' USING ERRCODE = 'null_value_not_allowed';
    END IF;
    -- Locked until commit, so that no purge deletes it under its new delivery.
    SELECT e.event_type, e.gen, e.payload, coalesce(e.ordering_key, '') INTO v_type, v_gen, v_payload, v_key
      FROM webhook.events e WHERE e.id = replay.event_id FOR KEY SHARE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'event % does not exist', event_id
            USING ERRCODE = 'no_data_found', HINT = 'Events older than webhook.retention_succeeded may have been purged.';
    END IF;
    IF endpoint_id IS NOT NULL AND NOT EXISTS (SELECT 1 FROM webhook.endpoints e WHERE e.id = replay.endpoint_id) THEN
        PERFORM webhook._raise_no_endpoint(endpoint_id);
    END IF;
    INSERT INTO webhook.delivery_state (event_id, endpoint_id, gen, ordering_key)
    SELECT replay.event_id, ep.id, v_gen, v_key FROM webhook.endpoints ep
     WHERE CASE WHEN replay.endpoint_id IS NULL
                THEN ep.active AND webhook._subscribed(ep.event_types, v_type)
                ELSE ep.id = replay.endpoint_id END
       AND webhook._passes_filter(ep.filter, v_payload);
    GET DIAGNOSTICS v_count = ROW_COUNT;
    IF v_count > 0 THEN
        PERFORM webhook._wake_worker_at_commit();
    END IF;
    RETURN v_count;
END;
$$;
COMMENT ON FUNCTION webhook.replay(uuid, bigint) IS 'deliver an event again, to one endpoint or to all that match today';

-- Re-queue every failed delivery of an endpoint since a time, e.g. after
-- the receiver's outage is fixed, whose event passes the endpoint's filter
-- as it is now.  Returns how many.
CREATE FUNCTION webhook.recover(endpoint_id bigint, since timestamptz)
RETURNS bigint LANGUAGE plpgsql VOLATILE STRICT
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_count bigint;
BEGIN
    IF NOT EXISTS (SELECT 1 FROM webhook.endpoints e WHERE e.id = recover.endpoint_id) THEN
        PERFORM webhook._raise_no_endpoint(endpoint_id);
    END IF;
    UPDATE webhook.delivery_state d
       SET status = 'pending', next_attempt_at = now(), completed_at = NULL
      FROM webhook.endpoints ep, webhook.events e
     WHERE d.endpoint_id = recover.endpoint_id AND d.status = 'failed' AND d.created_at >= since
       AND ep.id = d.endpoint_id AND e.id = d.event_id AND e.gen = d.gen
       AND webhook._passes_filter(ep.filter, e.payload);
    GET DIAGNOSTICS v_count = ROW_COUNT;
    IF v_count > 0 THEN
        PERFORM webhook._wake_worker_at_commit();
    END IF;
    RETURN v_count;
END;
$$;
COMMENT ON FUNCTION webhook.recover(bigint, timestamptz) IS 're-queue the failed deliveries of an endpoint since a time';

-- Delete finished deliveries (with their log) and events older than a
-- given age, in small batches so no lock is held for long.  The worker does
-- the same on its own with webhook.retention_succeeded / retention_failed.
CREATE FUNCTION webhook.purge(older_than interval)
RETURNS bigint LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_total bigint := 0;
    v_batch bigint;
BEGIN
    IF older_than IS NULL OR older_than < interval '0' THEN
        RAISE EXCEPTION 'older_than must be a non-negative interval'
            USING ERRCODE = 'invalid_parameter_value', HINT = 'For example webhook.purge(''30 days'').';
    END IF;
    LOOP
        v_batch := webhook._purge_batch(now() - older_than, now() - older_than, 1000);
        v_total := v_total + v_batch;
        EXIT WHEN v_batch = 0;
    END LOOP;
    RETURN v_total;
END;
$$;
COMMENT ON FUNCTION webhook.purge(interval) IS 'delete finished deliveries, their log rows and events older than an age';

-- One batch of retention: finished deliveries completed before the cutoffs
-- (their log rows go with them), then events left with no delivery.
CREATE FUNCTION webhook._purge_batch(succeeded_before timestamptz, failed_before timestamptz, batch integer)
RETURNS bigint LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_deliveries bigint;
    v_events bigint;
BEGIN
    -- Event ids grow with time (webhook.uuid_v7), and a delivery finishes
    -- after its event was made: old events lead to the deliveries that may be
    -- old enough.
    WITH doomed AS (
        SELECT d.id FROM webhook.events e
          JOIN webhook.delivery_state d ON d.event_id = e.id AND d.gen = e.gen
         WHERE e.id < webhook._uuid_v7_floor(greatest(succeeded_before, failed_before))
           AND e.created_at < greatest(succeeded_before, failed_before)
           AND d.status <> 'pending'
           AND d.completed_at < CASE WHEN d.status IN ('succeeded', 'cancelled') THEN succeeded_before ELSE failed_before END
         LIMIT batch
         FOR UPDATE OF d SKIP LOCKED
    ), log AS (
        DELETE FROM webhook.delivery_log l USING doomed WHERE l.delivery_id = doomed.id
    )
    DELETE FROM webhook.delivery_state d USING doomed WHERE d.id = doomed.id;
    GET DIAGNOSTICS v_deliveries = ROW_COUNT;

    WITH doomed AS (
        SELECT e.id FROM webhook.events e
         WHERE e.id < webhook._uuid_v7_floor(least(succeeded_before, failed_before))
           AND e.created_at < least(succeeded_before, failed_before)
           AND NOT EXISTS (SELECT 1 FROM webhook.delivery_state d WHERE d.event_id = e.id AND d.gen = e.gen)
           AND NOT EXISTS (SELECT 1 FROM webhook.first_attempts f WHERE f.event_id = e.id)
           AND NOT webhook._unread(e.txid, (SELECT p.done_snapshot FROM webhook.queue_positions p WHERE p.worker = 0))
           AND NOT EXISTS (SELECT 1 FROM webhook.restored_events r WHERE r.event_id = e.id)
         LIMIT batch
         FOR UPDATE SKIP LOCKED
    )
    DELETE FROM webhook.events e USING doomed WHERE e.id = doomed.id;
    GET DIAGNOSTICS v_events = ROW_COUNT;
    RETURN v_deliveries + v_events;
END;
$$;

-- Deactivate endpoints whose deliveries have all failed for longer than a
-- period, and announce each with a webhook.endpoint.disabled event.  Each in
-- its own subtransaction: one that cannot be updated (a lock, a row a newer
-- check refuses) stays active with a warning, and the others are disabled.
CREATE FUNCTION webhook._disable_failing_endpoints(failing_for interval)
RETURNS bigint LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    ep record;
    v_count bigint := 0;
BEGIN
    FOR ep IN
        SELECT e.id, e.name, e.url, s.failing_since, s.last_error
          FROM webhook.endpoints e JOIN webhook.endpoint_state s ON s.endpoint_id = e.id
         WHERE e.active AND s.failing_since < now() - failing_for
    LOOP
        BEGIN
            UPDATE webhook.endpoints e
               SET active = false, disabled_at = now(),
                   disabled_reason = format('every delivery failed since %s', ep.failing_since)
             WHERE e.id = ep.id AND e.active;
            IF FOUND THEN
                PERFORM webhook._enqueue('webhook.endpoint.disabled',
                                         jsonb_build_object('endpoint_id', ep.id, 'name', ep.name, 'url_origin', webhook._url_origin(ep.url),
                                                            'failing_since', ep.failing_since, 'last_error', ep.last_error),
                                         NULL);
                v_count := v_count + 1;
            END IF;
        EXCEPTION WHEN OTHERS THEN
            RAISE WARNING 'could not disable webhook endpoint %: %', ep.id, SQLERRM USING ERRCODE = SQLSTATE;
        END;
    END LOOP;
    RETURN v_count;
END;
$$;
