------------------------------------------------------------------------------
-- Health, for people in psql
------------------------------------------------------------------------------

-- Every delivery: the worker's delivery_state rows, and the deliveries of
-- events it has not read yet (committed a moment ago, or written by the
-- current transaction), as pending rows with no id yet, to the endpoints
-- that match now.  The worker matches endpoints when it reads the event.
-- A first attempt that waits for its event's deliver_at is 'scheduled'.
-- First attempts in flight (webhook.first_attempts) are pending and claimed.
CREATE VIEW webhook.deliveries AS
SELECT s.id, s.event_id, s.endpoint_id,
       CASE WHEN s.status = 'pending' AND s.attempts = 0 AND s.last_attempt_at IS NULL
                 AND s.next_attempt_at > s.created_at AND s.next_attempt_at > pg_catalog.now()
            THEN 'scheduled' ELSE s.status END AS status,
       s.attempts, s.next_attempt_at, s.claimed_at,
       s.last_attempt_at, s.last_status_code, s.last_error, s.created_at, s.completed_at,
       s.ordering_key
  FROM webhook.delivery_state s
UNION ALL
SELECT f.id, f.event_id, f.endpoint_id, 'pending', 0, f.claimed_at, f.claimed_at,
       NULL::timestamptz, NULL::integer, NULL::text, f.claimed_at, NULL::timestamptz,
       f.ordering_key
  FROM webhook.first_attempts f
UNION ALL
SELECT NULL::bigint, e.id, ep.id,
       CASE WHEN e.deliver_at > pg_catalog.now() THEN 'scheduled' ELSE 'pending' END,
       0, greatest(e.deliver_at, e.created_at), NULL::timestamptz,
       NULL::timestamptz, NULL::integer, NULL::text, e.created_at, NULL::timestamptz,
       coalesce(e.ordering_key, '')
  FROM webhook.queue_positions p
  JOIN webhook.events e ON webhook._unread(e.txid, p.done_snapshot)
  JOIN webhook.endpoints ep ON ep.active AND webhook._subscribed(ep.event_types, e.event_type)
                           AND webhook._passes_filter(ep.filter, e.payload)
 WHERE p.worker = 0
   AND NOT EXISTS (SELECT 1 FROM webhook.delivery_state s
                    WHERE s.event_id = e.id AND s.endpoint_id = ep.id)
   AND NOT EXISTS (SELECT 1 FROM webhook.first_attempts f
                    WHERE f.event_id = e.id AND f.endpoint_id = ep.id);
COMMENT ON VIEW webhook.deliveries IS 'one row per (event, endpoint): the state of delivering that event there (pending, scheduled, succeeded, failed or cancelled); id is NULL until the worker has read the event';

-- Counters of the delivery workers since the server started.
CREATE FUNCTION webhook._worker_stats(OUT database name, OUT pid integer, OUT attempts bigint,
                                      OUT succeeded bigint, OUT failed bigint, OUT retries bigint,
                                      OUT bytes_sent bigint, OUT in_flight integer)
RETURNS SETOF record LANGUAGE C VOLATILE
AS 'MODULE_PATHNAME', 'webhook_worker_stats';

CREATE VIEW webhook.worker_stats AS SELECT * FROM webhook._worker_stats();
COMMENT ON VIEW webhook.worker_stats IS 'per-database delivery counters since server start';

CREATE VIEW webhook.endpoint_health AS
SELECT ep.id, ep.name, ep.url, ep.active,
       (SELECT count(*) FROM webhook.deliveries d WHERE d.endpoint_id = ep.id AND d.status = 'pending') AS pending,
       h.succeeded_1h, h.failed_1h, h.succeeded_24h, h.failed_24h,
       round(100.0 * h.ok_24h / nullif(h.attempts_24h, 0), 1) AS success_rate_24h,
       round(h.p50_ms::numeric, 1) AS p50_ms, round(h.p95_ms::numeric, 1) AS p95_ms,
       s.last_success_at, s.last_failure_at, s.last_error,
       coalesce(s.consecutive_failures, 0) AS consecutive_failures, s.failing_since,
       ep.disabled_at, ep.disabled_reason,
       (SELECT count(*) FROM webhook.deliveries d WHERE d.endpoint_id = ep.id AND d.status = 'scheduled') AS scheduled,
       coalesce(s.filter_errors, 0) AS filter_errors, s.last_filter_error_at, s.last_filter_error_event,
       coalesce(k.blocked_keys, 0) AS blocked_keys, k.oldest_blocked_at
  FROM webhook.endpoints ep
  LEFT JOIN webhook.endpoint_state s ON s.endpoint_id = ep.id
  -- An ordered endpoint's keys whose head is failing and retrying (only
  -- heads are attempted): each holds only its own key's later deliveries.
  LEFT JOIN LATERAL (
      SELECT count(DISTINCT b.ordering_key) AS blocked_keys, min(b.created_at) AS oldest_blocked_at
        FROM webhook.delivery_state b
       WHERE ep.ordered AND b.endpoint_id = ep.id AND b.status = 'pending' AND b.attempts > 0
  ) k ON true
  LEFT JOIN LATERAL (
      SELECT count(*) FILTER (WHERE l.error_class IS NULL AND l.attempted_at > now() - interval '1 hour') AS succeeded_1h,
             count(*) FILTER (WHERE l.error_class IS NOT NULL AND l.attempted_at > now() - interval '1 hour') AS failed_1h,
             count(*) FILTER (WHERE l.error_class IS NULL) AS succeeded_24h,
             count(*) FILTER (WHERE l.error_class IS NOT NULL) AS failed_24h,
             count(*) FILTER (WHERE l.error_class IS NULL) AS ok_24h,
             count(*) AS attempts_24h,
             percentile_cont(0.5) WITHIN GROUP (ORDER BY l.duration_ms) AS p50_ms,
             percentile_cont(0.95) WITHIN GROUP (ORDER BY l.duration_ms) AS p95_ms
        FROM webhook.delivery_log l
       WHERE l.endpoint_id = ep.id AND l.attempted_at > now() - interval '24 hours'
  ) h ON true;
COMMENT ON VIEW webhook.endpoint_health IS 'per endpoint: backlog, attempts and success in the last hour and day, latency, failure streak, scheduled deliveries, events its filter could not judge, ordering keys blocked by a failing delivery';

CREATE VIEW webhook.recent_failures AS
SELECT l.attempted_at, l.endpoint_id, ep.name AS endpoint, ev.event_type, l.delivery_id, l.attempt,
       coalesce(l.status_code::text, l.error_class) AS failure, l.error,
       pg_catalog.left(l.response_body, 120) AS response
  FROM webhook.delivery_log l
  LEFT JOIN webhook.endpoints ep ON ep.id = l.endpoint_id
  LEFT JOIN webhook.events ev ON ev.id = l.event_id
 WHERE l.error_class IS NOT NULL
 ORDER BY l.attempted_at DESC, l.id DESC
 LIMIT 100;
COMMENT ON VIEW webhook.recent_failures IS 'the latest 100 failed attempts';

------------------------------------------------------------------------------
-- Views for people in psql
------------------------------------------------------------------------------

-- Attempts with what they were about, newest first.
CREATE VIEW webhook.attempts AS
SELECT l.attempted_at, l.endpoint_id, ep.name AS endpoint, ev.event_type, l.event_id, l.delivery_id,
       l.attempt, l.status_code, l.error_class, round(l.duration_ms::numeric, 1) AS duration_ms,
       l.error, pg_catalog.left(l.response_body, 80) AS response
  FROM webhook.delivery_log l
  LEFT JOIN webhook.endpoints ep ON ep.id = l.endpoint_id
  LEFT JOIN webhook.events ev ON ev.id = l.event_id
 ORDER BY l.attempted_at DESC, l.id DESC;
COMMENT ON VIEW webhook.attempts IS 'every HTTP attempt, newest first, with endpoint name and event type';
