------------------------------------------------------------------------------
-- Retention: whole generations at a time
------------------------------------------------------------------------------
-- The queue's tables are partitioned by generation (webhook.queue_generations).
-- New events, their deliveries and log rows go to the current generation;
-- once it is older than a period the worker starts the next (empty) one.
-- A generation that ended before the succeeded-retention cutoff is emptied
-- with TRUNCATE: what must outlive it (pending deliveries, failed ones
-- younger than the failed-retention cutoff, their events and log rows,
-- restored events not settled yet) is moved into the current generation
-- first.  A generation that still holds an unread event, or a delivery that
-- succeeded since the cutoff (the worker lags), waits for a later turn:
-- what it holds is mostly such deliveries, and they need not move.
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
   AND NOT EXISTS (SELECT 1 FROM webhook.first_attempts f WHERE f.gen = g)
   AND NOT EXISTS (SELECT 1 FROM webhook.delivery_log l WHERE l.gen = g);

-- Is a snapshot older than transaction x still in use, in another session?
-- (A backend's xmin at or below x: its snapshot may not see what x did.)
-- Read against this snapshot's xmax, below the next xid: when unsure, yes.
CREATE FUNCTION webhook._snapshot_older_than(x xid8)
RETURNS boolean LANGUAGE sql STABLE
RETURN EXISTS (SELECT 1 FROM pg_catalog.pg_stat_activity a
                WHERE a.pid <> pg_catalog.pg_backend_pid() AND a.backend_xmin IS NOT NULL
                  AND pg_catalog.age(a.backend_xmin)::numeric
                      >= pg_catalog.pg_snapshot_xmax(pg_catalog.pg_current_snapshot())::text::numeric - x::text::numeric);

-- Did a delivery of generation g succeed at or after the cutoff?  Checked
-- twice: before the locks (cheap to wait) and under them (a delivery in
-- flight may have succeeded in between, and must not be truncated).
CREATE FUNCTION webhook._succeeded_since(g smallint, succeeded_before timestamptz)
RETURNS boolean LANGUAGE sql STABLE
RETURN EXISTS (SELECT 1 FROM webhook.delivery_state d
                WHERE d.gen = g AND d.status = 'succeeded' AND d.completed_at >= succeeded_before);

-- Empty one old generation, keeping what must outlive it (moved into
-- generation cur).  Returns NULL once emptied, else why not yet: an event in
-- it not read yet, a delivery in it that succeeded since the cutoff, or rows
-- just moved out of it.  TRUNCATE is not MVCC-safe
-- (a snapshot taken before it sees the partitions empty), so a generation
-- whose rows were moved is truncated in a later turn, once no snapshot older
-- than the move is left: a pg_dump that began before sees the rows where
-- they were.  A lock another session holds raises lock_not_available: it is
-- never waited for.  Moved events get txid 0: they were read (or are
-- restored ones, settled by their own list), and the restore trigger leaves
-- txid 0 alone.
CREATE FUNCTION webhook._empty_generation(g smallint, cur smallint,
                                          succeeded_before timestamptz, failed_before timestamptz)
RETURNS text LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_done pg_snapshot;
    v_moved bigint;
    v_moved_xid xid8;
BEGIN
    -- A lagging worker's generation waits, without taking its locks.
    IF webhook._succeeded_since(g, succeeded_before) THEN
        RETURN 'a delivery in it succeeded since the cutoff';
    END IF;
    -- Readers and writers of this generation wait for this transaction,
    -- which is short.
    EXECUTE 'LOCK TABLE ' || webhook._generation_tables(g) || ' IN ACCESS EXCLUSIVE MODE NOWAIT';
    SELECT p.done_snapshot INTO v_done FROM webhook.queue_positions p WHERE p.worker = 0;
    IF v_done IS NULL THEN
        RETURN 'webhook.queue_positions has no row for worker 0';
    END IF;
    IF EXISTS (SELECT 1 FROM webhook.events e WHERE e.gen = g AND webhook._unread(e.txid, v_done)) THEN
        RETURN 'an event in it is not read yet';
    END IF;
    -- Its outcome writes the delivery's row into this generation (and no
    -- new one can be made in it: every event in it is read).
    IF EXISTS (SELECT 1 FROM webhook.first_attempts f WHERE f.gen = g) THEN
        RETURN 'a first attempt in it is in flight';
    END IF;
    IF webhook._succeeded_since(g, succeeded_before) THEN
        RETURN 'a delivery in it succeeded since the cutoff';
    END IF;

    -- Kept: pending deliveries (in flight too: the outcome is recorded by
    -- id), failed ones younger than the failed cutoff; their log rows and
    -- events; restored events not settled yet; events of pending deliveries
    -- written by hand into another generation.  A moved event whose idempotency key the current
    -- generation holds too (written by hand) keeps its row, not the key.
    WITH kept AS (
        UPDATE webhook.delivery_state d SET gen = cur
         WHERE d.gen = g
           AND (d.status = 'pending' OR (d.status = 'failed' AND d.completed_at >= failed_before))
        RETURNING d.id, d.event_id
    ), log AS (
        UPDATE webhook.delivery_log l SET gen = cur FROM kept WHERE l.gen = g AND l.delivery_id = kept.id
        RETURNING 1
    ), events AS (
        UPDATE webhook.events e
           SET gen = cur, txid = '0',
               idempotency_key = CASE WHEN EXISTS (SELECT 1 FROM webhook.events c
                                                    WHERE c.gen = cur AND c.idempotency_key = e.idempotency_key)
                                      THEN NULL ELSE e.idempotency_key END
         WHERE e.gen = g
           AND (e.id IN (SELECT kept.event_id FROM kept)
                OR e.id IN (SELECT r.event_id FROM webhook.restored_events r)
                OR e.id IN (SELECT d.event_id FROM webhook.delivery_state d WHERE d.status = 'pending' AND d.gen <> g))
        RETURNING 1
    )
    SELECT (SELECT count(*) FROM kept) + (SELECT count(*) FROM log) + (SELECT count(*) FROM events) INTO v_moved;
    IF v_moved > 0 THEN
        UPDATE webhook.queue_generations q SET moved_xid = pg_current_xact_id() WHERE q.gen = g;
        RETURN format('%s rows moved out of it just now', v_moved);
    END IF;
    SELECT q.moved_xid INTO v_moved_xid FROM webhook.queue_generations q WHERE q.gen = g;
    IF v_moved_xid IS NOT NULL AND webhook._snapshot_older_than(v_moved_xid) THEN
        RETURN 'a snapshot older than the last move out of it is still in use';
    END IF;

    EXECUTE 'TRUNCATE ' || webhook._generation_tables(g);
    UPDATE webhook.queue_generations q SET began_at = NULL, ended_at = NULL, moved_xid = NULL WHERE q.gen = g;
    RETURN NULL;
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
    v_ended timestamptz;
    v_why text;
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
    FOR v_old, v_ended IN
        SELECT q.gen, q.ended_at FROM webhook.queue_generations q
         WHERE q.gen <> v_cur AND coalesce(q.ended_at, '-infinity') < succeeded_before
           AND NOT webhook._generation_is_empty(q.gen)
         ORDER BY q.ended_at NULLS FIRST
    LOOP
        BEGIN
            v_why := webhook._empty_generation(v_old, v_cur, succeeded_before, failed_before);
        EXCEPTION
            WHEN lock_not_available THEN
                v_why := 'another session is using it';
            WHEN OTHERS THEN
                -- Not a reason to stop: the other generations, and starting
                -- a new one, go on.
                v_why := SQLERRM;
                RAISE WARNING 'webhook retention could not empty queue generation %: %', v_old, SQLERRM
                    USING ERRCODE = SQLSTATE;
        END;
        IF v_why IS NULL THEN
            v_emptied := v_emptied + 1;
        ELSIF coalesce(v_ended, '-infinity') < succeeded_before - 2 * period THEN
            -- A whole retention late: say so (a session that holds a lock
            -- or an old snapshot for that long keeps the queue growing).
            RAISE WARNING 'webhook queue generation % is overdue for emptying: %', v_old, v_why
                USING HINT = 'See pg_stat_activity for sessions open since before it ended; webhook.queue_generations says when it did.';
        END IF;
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
