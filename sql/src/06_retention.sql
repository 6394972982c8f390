------------------------------------------------------------------------------
-- Retention: whole generations at a time
------------------------------------------------------------------------------
-- The queue's tables are partitioned by generation (webhook.queue_generations).
-- New events, their deliveries and log rows go to the current generation;
-- once it is older than a period the worker starts the next (empty) one.
-- A generation that ended before the succeeded-retention cutoff is emptied
-- with TRUNCATE: what must outlive it (pending deliveries, failed ones
-- younger than the failed-retention cutoff, ones attempted since the
-- succeeded cutoff, their events and log rows, restored events not settled
-- yet) is moved into the current generation first.  A generation that still
-- holds an unread event, or a delivery in flight, waits for the next turn.
-- So no row of the queue is ever deleted one by one, and nothing is left
-- for vacuum.

-- The partitions of one generation, as a list for LOCK and TRUNCATE.
CREATE FUNCTION webhook._generation_tables(gen smallint)
RETURNS text LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
RETURN pg_catalog.format('webhook.%I, webhook.%I, webhook.%I',
                         'events_' || gen, 'delivery_state_' || gen, 'delivery_log_' || gen);

-- Does a generation hold no rows?  (Each test reads one partition's index.)
CREATE FUNCTION webhook._generation_is_empty(g smallint)
RETURNS boolean LANGUAGE sql STABLE
RETURN NOT EXISTS (SELECT 1 FROM webhook.events e WHERE e.gen = g)
   AND NOT EXISTS (SELECT 1 FROM webhook.delivery_state d WHERE d.gen = g)
   AND NOT EXISTS (SELECT 1 FROM webhook.delivery_log l WHERE l.gen = g);

-- Empty one old generation, keeping what must outlive it (moved into
-- generation cur).  False, with nothing changed, when it cannot be emptied
-- now: an unread event, a delivery in flight.  A lock another session holds
-- raises lock_not_available: it is never waited for.
CREATE FUNCTION webhook._empty_generation(g smallint, cur smallint,
                                          succeeded_before timestamptz, failed_before timestamptz)
RETURNS boolean LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_done pg_snapshot;
BEGIN
    -- Readers and writers of this generation wait for this transaction,
    -- which is short.
    EXECUTE 'LOCK TABLE ' || webhook._generation_tables(g) || ' IN ACCESS EXCLUSIVE MODE NOWAIT';
    SELECT p.done_snapshot INTO v_done FROM webhook.queue_positions p WHERE p.worker = 0;
    IF v_done IS NULL
       OR EXISTS (SELECT 1 FROM webhook.events e WHERE e.gen = g AND webhook._unread(e.txid, v_done))
       OR EXISTS (SELECT 1 FROM webhook.delivery_state d JOIN webhook.endpoints ep ON ep.id = d.endpoint_id
                   WHERE d.gen = g AND d.status = 'pending' AND d.claimed_at IS NOT NULL
                     AND d.claimed_at >= now() - webhook._claim_lease(ep.timeout_ms * 4)) THEN
        RETURN false;
    END IF;

    -- Kept rows move by UPDATE of gen; their events are not a restore's.
    PERFORM pg_catalog.set_config('webhook_internal.moving_rows', 'on', true);
    WITH kept AS (
        UPDATE webhook.delivery_state d SET gen = cur
         WHERE d.gen = g
           AND (d.status = 'pending'
                OR (d.status = 'failed' AND d.completed_at >= failed_before)
                OR d.id IN (SELECT l.delivery_id FROM webhook.delivery_log l
                             WHERE l.gen = g AND l.attempted_at >= succeeded_before))
        RETURNING d.id, d.event_id
    ), log AS (
        UPDATE webhook.delivery_log l SET gen = cur FROM kept WHERE l.gen = g AND l.delivery_id = kept.id
    )
    UPDATE webhook.events e SET gen = cur
     WHERE e.gen = g
       AND (e.id IN (SELECT kept.event_id FROM kept)
            OR e.id IN (SELECT r.event_id FROM webhook.restored_events r)
            -- (a delivery written by hand into another generation)
            OR e.id IN (SELECT d.event_id FROM webhook.delivery_state d WHERE d.status = 'pending' AND d.gen <> g));
    PERFORM pg_catalog.set_config('webhook_internal.moving_rows', 'off', true);

    EXECUTE 'TRUNCATE ' || webhook._generation_tables(g);
    UPDATE webhook.queue_generations q SET began_at = NULL, ended_at = NULL WHERE q.gen = g;
    RETURN true;
END;
$$;

-- Retention's turn, run by the delivery workers: empty the generations that
-- ended before the succeeded cutoff, then start a new generation when the
-- current one is older than period and an empty one is free.  Returns the
-- number of generations emptied.  One worker at a time: another that finds
-- the generations locked skips its turn.  A generation that holds rows but
-- says it is unused (a restore brings rows of any generation) counts as old.
CREATE FUNCTION webhook._rotate_generations(succeeded_before timestamptz, failed_before timestamptz, period interval)
RETURNS integer LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_cur smallint;
    v_began timestamptz;
    v_old smallint;
    v_next smallint;
    v_emptied integer := 0;
BEGIN
    BEGIN
        PERFORM FROM webhook.queue_generations q FOR UPDATE NOWAIT;
    EXCEPTION WHEN lock_not_available THEN
        RETURN 0;
    END;
    SELECT q.gen, q.began_at INTO v_cur, v_began FROM webhook.queue_generations q
     WHERE q.began_at IS NOT NULL AND q.ended_at IS NULL ORDER BY q.began_at DESC LIMIT 1;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'webhook.queue_generations has no current generation'
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  HINT = 'Do not change webhook.queue_generations by hand; UPDATE webhook.queue_generations SET began_at = now(), ended_at = NULL WHERE gen = 0 makes generation 0 current again.';
    END IF;

    -- Old generations with no rows left are free again.
    UPDATE webhook.queue_generations q SET began_at = NULL, ended_at = NULL
     WHERE q.gen <> v_cur AND q.began_at IS NOT NULL AND webhook._generation_is_empty(q.gen);
    FOR v_old IN
        SELECT q.gen FROM webhook.queue_generations q
         WHERE q.gen <> v_cur AND coalesce(q.ended_at, '-infinity') < succeeded_before
           AND NOT webhook._generation_is_empty(q.gen)
         ORDER BY q.ended_at NULLS FIRST
    LOOP
        BEGIN
            IF webhook._empty_generation(v_old, v_cur, succeeded_before, failed_before) THEN
                v_emptied := v_emptied + 1;
            END IF;
        EXCEPTION WHEN lock_not_available THEN
            NULL;   -- in use: the next turn tries again
        END;
    END LOOP;

    IF v_began <= now() - period THEN
        SELECT q.gen INTO v_next FROM webhook.queue_generations q
         WHERE q.gen <> v_cur AND q.began_at IS NULL AND webhook._generation_is_empty(q.gen)
         ORDER BY (q.gen - v_cur + 4) % 4 LIMIT 1;
        IF FOUND THEN
            UPDATE webhook.queue_generations q SET ended_at = now() WHERE q.gen = v_cur;
            UPDATE webhook.queue_generations q SET began_at = now(), ended_at = NULL WHERE q.gen = v_next;
        END IF;
    END IF;
    RETURN v_emptied;
END;
$$;
