# Operating from psql: webhook.ping(), retry(), replay(), recover();
# ordered endpoints; rate limits; transforms (failing and working);
# worker_stats; auto-disable after webhook.disable_after with its
# webhook.endpoint.disabled event; retention of old deliveries (by the
# worker and by webhook.purge()).
use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin";
use WebhookTest;
use JSON::PP;
use PostgreSQL::Test::Utils;
use Test::More;

my $r = start_receiver();
my $node = node_with_webhook('operations');
$node->safe_psql('postgres', 'CREATE EXTENSION webhook');

# An endpoint that takes only the event types in $types ('{a.b}'); returns
# (id, secret).
sub endpoint
{
	my ($name, $types, $path, %cols) = @_;
	my @names = ('name', 'url', 'event_types', sort keys %cols);
	my @vals = ("'$name'", "'" . $r->url($path) . "'", "'$types'",
		map { $cols{$_} } sort keys %cols);
	return split /\|/, $node->safe_psql('postgres',
		sprintf('INSERT INTO webhook.endpoints (%s) VALUES (%s) RETURNING id, webhook._unseal(secret)',
			join(', ', @names), join(', ', @vals)));
}

sub send_event
{
	my ($type, $payload) = @_;
	return $node->safe_psql('postgres',
		"SELECT webhook.send('$type', '" . ($payload // '{}') . "')");
}

sub psql { return $node->safe_psql('postgres', $_[0]); }

sub requests_for
{
	my ($ev) = @_;
	return grep { ($_->{headers}{'webhook-id'} // '') eq $ev } @{ requests($r) };
}

sub decode { my $b = eval { JSON::PP->new->decode($_[0]) }; return $b // {}; }

# --- ping --------------------------------------------------------------------
{
	# Subscribed to nothing: the ping goes to it anyway.
	my ($ep, $secret) = endpoint('pinged', '{}', '/ping');
	my $did = psql("SELECT webhook.ping($ep)");
	ok( poll_until($node, 'postgres',
			"SELECT status FROM webhook.deliveries WHERE id = $did", 'succeeded', 30),
		'ping: the delivery succeeded');
	my ($req) = grep { $_->{path} eq '/ping' } @{ requests($r) };
	$req //= { headers => {}, body => '' };
	is($req->{headers}{'webhook-event-type'}, 'webhook.ping', 'ping: event type header is webhook.ping');
	my $body = decode($req->{body});
	is($body->{type}, 'webhook.ping', 'ping: body type is webhook.ping');
	is($body->{data}{endpoint_id}, $ep, 'ping: data names the endpoint');
	ok(verify_standard_signature($secret, $req->{headers}, $req->{body}), 'ping: signed');
}

# --- retry of a failed delivery ------------------------------------------------
my ($retry_ep, $retry_ev);
{
	my $secret;
	($retry_ep, $secret) = endpoint('retried', '{retry.test}', '/status/500/retry',
		retry_schedule_s => "'{}'");
	$retry_ev = send_event('retry.test', '{"what": "retry"}');
	ok(wait_status($node, $retry_ev, 'failed'), 'retry: with no retries left the delivery failed');
	my $did = psql("SELECT id FROM webhook.deliveries WHERE event_id = '$retry_ev'");
	psql("UPDATE webhook.endpoints SET url = '" . $r->url('/ok/retry') . "' WHERE id = $retry_ep");
	psql("SELECT webhook.retry($did)");
	ok(wait_status($node, $retry_ev, 'succeeded'), 'retry: after webhook.retry() it succeeded');
	is(psql("SELECT attempts FROM webhook.deliveries WHERE id = $did"), '2',
		'retry: the delivery counts two attempts');
	my @got = requests_for($retry_ev);
	is_deeply([ map { $_->{path} } @got ], [ '/status/500/retry', '/ok/retry' ],
		'retry: both attempts arrived with the same webhook-id');
	ok((@got == 2 && !grep { !verify_standard_signature($secret, $_->{headers}, $_->{body}) } @got),
		'retry: both attempts are signed');
	is(psql("SELECT string_agg(attempt || ':' || coalesce(status_code, 0), ',' ORDER BY attempt)
	           FROM webhook.delivery_log WHERE delivery_id = $did"),
		'1:500,2:200', 'retry: the log has both attempts');
}

# --- retry() committed with a new event for another endpoint ------------------
# The worker's read makes the new event's delivery already claimed and may
# then skip the claim statement; the delivery retry() made due in the same
# commit must still go (found by the next-due query), not wait for a later
# wake that never comes.
{
	my ($ep) = endpoint('retried-beside', '{beside.retry}', '/status/500/beside',
		retry_schedule_s => "'{}'");
	endpoint('beside-new', '{beside.new}', '/ok/beside-new');
	my $ev = send_event('beside.retry');
	ok(wait_status($node, $ev, 'failed'), 'retry beside a new event: the first attempt failed');
	my $did = psql("SELECT id FROM webhook.deliveries WHERE event_id = '$ev'");
	psql("UPDATE webhook.endpoints SET url = '" . $r->url('/ok/beside') . "' WHERE id = $ep");
	my $new = psql("WITH r AS MATERIALIZED (SELECT webhook.retry($did))
	                SELECT webhook.send('beside.new', '{}') FROM r");
	ok(wait_status($node, $new, 'succeeded'), 'retry beside a new event: the new event is delivered');
	ok(wait_status($node, $ev, 'succeeded'),
		'retry beside a new event: the delivery retried in the same commit is delivered too');
	is_deeply([ map { $_->{path} } requests_for($ev) ], [ '/status/500/beside', '/ok/beside' ],
		'retry beside a new event: both attempts arrived');
}

# --- replay ------------------------------------------------------------------
{
	is(psql("SELECT webhook.replay('$retry_ev')"), '1',
		'replay: one new delivery (the one subscribed, active endpoint)');
	ok( poll_until($node, 'postgres',
			"SELECT count(*) FILTER (WHERE status = 'succeeded') FROM webhook.deliveries
			  WHERE event_id = '$retry_ev'", '2', 30),
		'replay: the new delivery succeeded');
	my @got = requests_for($retry_ev);
	is(scalar @got, 3, 'replay: the event was sent again with the same webhook-id');
	is($got[-1]{body}, $got[0]{body}, 'replay: with the same body bytes') if @got;
}

# --- recover -----------------------------------------------------------------
{
	my ($ep) = endpoint('recovered', '{recover.test}', '/status/500/recover',
		retry_schedule_s => "'{}'");
	my $before = send_event('recover.test', '{"n": 0}');
	ok(wait_status($node, $before, 'failed'), 'recover: an early event failed');
	my $since = psql('SELECT clock_timestamp()');
	my @evs = map { send_event('recover.test', qq({"n": $_})) } 1 .. 3;
	ok(!(grep { !wait_status($node, $_, 'failed') } @evs), 'recover: three later events failed');
	psql("UPDATE webhook.endpoints SET url = '" . $r->url('/ok/recover') . "' WHERE id = $ep");
	is(psql("SELECT webhook.recover($ep, '$since')"), '3',
		'recover: re-queues the three failed since the given time');
	ok(!(grep { !wait_status($node, $_, 'succeeded') } @evs), 'recover: all three then succeeded');
	is(psql("SELECT status FROM webhook.deliveries WHERE event_id = '$before'"), 'failed',
		'recover: the one failed before that time is left alone');
	is(scalar(grep { $_->{path} eq '/ok/recover' } @{ requests($r) }), 3,
		'recover: three requests reached the fixed URL');
}

# --- ordered endpoint ----------------------------------------------------------
{
	# /fail-first/2: the first two requests get a 500.  Retry delays of 1 s
	# scaled by retry_delay_scale = 0.001 are 1 ms.
	my ($ep) = endpoint('ordered', '{ord.test}', '/fail-first/2/ordkey/ord',
		ordered => 'true', retry_schedule_s => "'{1,1,1}'");
	my @evs = split /\n/,
	  psql("SELECT webhook.send('ord.test', jsonb_build_object('seq', g)) FROM generate_series(1, 5) g");
	is(scalar @evs, 5, 'ordered: five events queued');
	ok(!(grep { !wait_status($node, $_, 'succeeded') } @evs), 'ordered: all five succeeded');
	my @seq = map { decode($_->{body})->{data}{seq} // '?' }
	  grep { $_->{path} eq '/fail-first/2/ordkey/ord' } @{ requests($r) };
	is(join(',', @seq), '1,1,1,2,3,4,5',
		'ordered: in creation order, the first retried twice before the second was sent');
}

# --- rate limit ----------------------------------------------------------------
{
	my ($ep) = endpoint('throttled', '{thr.test}', '/thr', rate_limit_per_s => 20);
	psql("SELECT webhook.send('thr.test', jsonb_build_object('i', g)) FROM generate_series(1, 40) g");
	ok( poll_until($node, 'postgres',
			"SELECT count(*) FILTER (WHERE status = 'succeeded') FROM webhook.deliveries
			  WHERE endpoint_id = $ep", '40', 60),
		'rate limit: all 40 events were delivered');
	is(scalar(grep { $_->{path} eq '/thr' } @{ requests($r) }), 40, 'rate limit: 40 requests arrived');
	my @t = split /\n/, psql("SELECT extract(epoch FROM attempted_at) FROM webhook.delivery_log
	                           WHERE endpoint_id = $ep ORDER BY attempted_at");
	# A token bucket of 20 tokens refilled at 20/s lets at most 20 + 20 w
	# requests start in any w seconds: 40 take about 1 s at least, and no
	# half-second holds more than 30.  Both bounds only get easier on a slow
	# machine; the slack covers attempted_at being taken a little after the
	# token (a slow claim query).  Unthrottled, all 40 start within ~0.1 s.
	my $span = @t ? $t[-1] - $t[0] : 0;
	cmp_ok($span, '>=', 0.75, 'rate limit: the 40 attempts are spread over at least ~1 s');
	my $max = 0;
	for my $i (0 .. $#t)
	{
		my $n = grep { $_ >= $t[$i] && $_ < $t[$i] + 0.5 } @t;
		$max = $n if $n > $max;
	}
	cmp_ok($max, '<=', 35, 'rate limit: no half-second window holds much more than 20 + 10 attempts');
	diag(sprintf('rate limit: 40 attempts over %.2f s, at most %d in 0.5 s', $span, $max));
}

# --- transforms ------------------------------------------------------------------
my ($fail_ep, $plain_ep);
{
	psql(q{
		CREATE FUNCTION public.tx_fail(event_type text, created_at timestamptz, payload jsonb)
		RETURNS jsonb LANGUAGE plpgsql AS $$
		BEGIN
		    RAISE EXCEPTION 'transform refuses %', event_type;
		END $$;
		CREATE FUNCTION public.tx_text(event_type text, created_at timestamptz, payload jsonb)
		RETURNS jsonb LANGUAGE sql AS $$
		    SELECT jsonb_build_object('text', event_type || ': ' || (payload ->> 'msg'))
		$$;});
	($fail_ep) = endpoint('tx-fail', '{txfail.test}', '/tx-fail', transform => "'public.tx_fail'");
	my ($ok_ep, $ok_secret) = endpoint('tx-ok', '{txok.test}', '/tx-ok',
		transform => "'public.tx_text'");
	($plain_ep) = endpoint('plain', '{plain.test}', '/plain');

	my $ev = send_event('txfail.test', '{"msg": "x"}');
	ok(wait_status($node, $ev, 'failed'), 'failing transform: the delivery failed');
	is( psql("SELECT count(*) || '|' || string_agg(error_class, ',') || '|' || bool_and(error LIKE '%transform refuses txfail.test%')::int
	            FROM webhook.delivery_log WHERE event_id = '$ev'"),
		'1|transform|1', 'failing transform: one log row, error_class transform, with the error');
	is(scalar(requests_for($ev)), 0, 'failing transform: nothing was sent');

	my $after = send_event('plain.test', '{"after": "transform failure"}');
	ok(wait_status($node, $after, 'succeeded'), 'failing transform: the worker goes on delivering to other endpoints');

	my $tev = send_event('txok.test', '{"msg": "hello"}');
	ok(wait_status($node, $tev, 'succeeded'), 'transform: the delivery succeeded');
	my ($req) = requests_for($tev);
	$req //= { headers => {}, body => '' };
	my $expected = psql(q{SELECT public.tx_text('txok.test', now(), '{"msg": "hello"}')::text});
	is($req->{body}, $expected, 'transform: the body is exactly the transformed JSON');
	is_deeply(decode($req->{body}), { text => 'txok.test: hello' }, 'transform: which is {"text": ...}');
	ok(verify_standard_signature($ok_secret, $req->{headers}, $req->{body}),
		'transform: the signature verifies over the transformed bytes')
	  or diag explain $req->{headers};
}

# --- worker_stats ----------------------------------------------------------------
is( psql("SELECT attempts > 0, succeeded > 0, failed > 0, succeeded + failed <= attempts
            FROM webhook.worker_stats WHERE database = current_database()"),
	't|t|t|t', 'worker_stats counts attempts, successes and failures for this database');

# --- auto-disable ----------------------------------------------------------------
{
	# The endpoint with the failing transform is still failing: park it so
	# that only the endpoint under test is disabled.
	psql("UPDATE webhook.endpoints SET active = false WHERE id = $fail_ep");
	psql("ALTER SYSTEM SET webhook.disable_after = '2s'; SELECT pg_reload_conf()");
	ok(poll_until($node, 'postgres', 'SHOW webhook.disable_after', '2s', 30),
		'auto-disable: webhook.disable_after reloaded');

	my ($sub, $sub_secret) = endpoint('watcher', '{webhook.endpoint.disabled}', '/disabled');
	# 1000 s scaled by 0.001: about 1 s between attempts.
	my ($ep) = endpoint('dying', '{dying.test}', '/status/500/dying',
		retry_schedule_s => "'{1000,1000,1000,1000,1000,1000}'");
	my $ev = send_event('dying.test');
	ok( poll_until($node, 'postgres',
			"SELECT NOT active FROM webhook.endpoints WHERE id = $ep", 't', 30),
		'auto-disable: the failing endpoint is deactivated');
	is( psql("SELECT disabled_at IS NOT NULL, disabled_reason IS NOT NULL AND disabled_reason <> ''
	            FROM webhook.endpoints WHERE id = $ep"),
		't|t', 'auto-disable: disabled_at and disabled_reason are set');
	# Not before: it was deactivated more than 2 s after its first failure,
	# with several failed attempts in between.
	is( psql("SELECT count(*) >= 2 AND bool_and(l.error_class IS NOT NULL)
	               AND e.disabled_at - min(l.attempted_at) > interval '2 s'
	            FROM webhook.delivery_log l, webhook.endpoints e
	           WHERE l.endpoint_id = $ep AND e.id = $ep GROUP BY e.disabled_at"),
		't', 'auto-disable: only after failing for more than 2 s');

	my $dis;
	my $deadline = time + 30;
	while (!$dis && time < $deadline)
	{
		($dis) = grep { $_->{path} eq '/disabled' } @{ requests($r) };
		select(undef, undef, undef, 0.1) unless $dis;
	}
	$dis //= { headers => {}, body => '' };
	my $body = decode($dis->{body});
	is($body->{type}, 'webhook.endpoint.disabled', 'auto-disable: the subscriber got webhook.endpoint.disabled');
	is($body->{data}{endpoint_id}, $ep, 'auto-disable: naming the disabled endpoint');
	like($body->{data}{url_origin} // '', qr{^http://127\.0\.0\.1:[0-9]+$},
		'auto-disable: by the origin of its URL');
	unlike($dis->{body}, qr{/status/500/dying}, 'auto-disable: never by the path of its URL');
	ok(verify_standard_signature($sub_secret, $dis->{headers}, $dis->{body}),
		'auto-disable: the announcement is signed');
	is(scalar(grep { $_->{path} eq '/disabled' } @{ requests($r) }), 1,
		'auto-disable: exactly one announcement');
	is(psql("SELECT status FROM webhook.deliveries WHERE event_id = '$ev'"), 'pending',
		'auto-disable: the disabled endpoint\'s delivery waits, pending');
	psql('ALTER SYSTEM RESET webhook.disable_after; SELECT pg_reload_conf()');
}

# --- retention -------------------------------------------------------------------
{
	psql("ALTER SYSTEM SET webhook.retention_succeeded = '1s'; SELECT pg_reload_conf()");
	ok(poll_until($node, 'postgres', 'SHOW webhook.retention_succeeded', '1s', 30),
		'retention: webhook.retention_succeeded reloaded');
	my ($n_ok, $n_failed) = split /\|/,
	  psql("SELECT count(*) FILTER (WHERE status = 'succeeded'), count(*) FILTER (WHERE status = 'failed')
	          FROM webhook.deliveries");
	cmp_ok($n_ok, '>', 50, 'retention: there are succeeded deliveries to purge');
	ok( poll_until($node, 'postgres',
			"SELECT bool_and(completed_at < now() - interval '1.2 s') FROM webhook.deliveries
			  WHERE status = 'succeeded'", 't', 30),
		'retention: they are all older than 1 s');

	my $pending = psql("SELECT count(*) FROM webhook.deliveries WHERE status = 'pending'");

	# Retention works a generation at a time: after recording outcomes the
	# worker starts a new generation every half retention, and empties a
	# generation that ended more than a retention ago, keeping (moving on)
	# pending and failed deliveries.  It takes its turn only after it
	# recorded something, so keep giving it deliveries.
	my $gen0 = psql('SELECT webhook._current_generation()');
	my $t_loop = psql('SELECT now()');
	my $trigger;
	my $emptied = 0;
	for my $try (1 .. 30)
	{
		$trigger = send_event('plain.test', qq({"trigger": $try}));
		wait_status($node, $trigger, 'succeeded');
		if (psql("SELECT count(*) FROM webhook.events WHERE gen = $gen0") eq '0')
		{
			$emptied = 1;
			last;
		}
		sleep 1;
	}
	ok($emptied, 'retention: the generation of the old deliveries was emptied');
	# (By when, the four generations may have come round to $gen0 again.)
	is( psql("SELECT began_at > '$t_loop' FROM webhook.queue_generations
	           WHERE began_at IS NOT NULL AND ended_at IS NULL"),
		't', 'retention: a new generation is current');
	is(psql("SELECT pg_relation_size('webhook.events_$gen0') + pg_relation_size('webhook.delivery_state_$gen0')
	               + pg_relation_size('webhook.delivery_log_$gen0')"),
		'0', 'retention: by TRUNCATE (its partitions have no pages left)');
	is( psql("SELECT count(*) FROM webhook.deliveries WHERE status = 'succeeded'
			    AND completed_at < '$t_loop'"), '0',
		'retention: no succeeded delivery from before is left');
	is(psql("SELECT count(*) FROM webhook.deliveries WHERE event_id = '$trigger'"), '1',
		'retention: the recent one is kept');
	is(psql("SELECT count(*) FROM webhook.deliveries WHERE status = 'failed'"), $n_failed,
		'retention: failed deliveries are kept (retention_failed is 30 days)');
	is(psql("SELECT count(*) FROM webhook.deliveries WHERE status = 'pending'"), $pending,
		'retention: pending deliveries are kept');
	is(psql("SELECT count(*) FROM webhook.delivery_state d
	          WHERE NOT EXISTS (SELECT 1 FROM webhook.events e WHERE e.id = d.event_id AND e.gen = d.gen)"),
		'0', 'retention: every kept delivery has its event, in its generation');
	is(psql("SELECT count(*) FROM webhook.delivery_log l
	          WHERE NOT EXISTS (SELECT 1 FROM webhook.deliveries d WHERE d.id = l.delivery_id)"),
		'0', 'retention: no log row outlives its delivery');
	is(psql("SELECT count(*) FROM webhook.delivery_log l JOIN webhook.delivery_state d ON d.id = l.delivery_id
	          WHERE d.status = 'failed' AND l.gen = d.gen"),
		psql("SELECT count(*) FROM webhook.delivery_log l JOIN webhook.delivery_state d ON d.id = l.delivery_id
	          WHERE d.status = 'failed'"),
		'retention: the kept deliveries\' log rows moved with them');

	# TRUNCATE is not MVCC-safe: a transaction whose snapshot is older than
	# the move of a generation's kept rows must still find them, so that
	# generation is truncated only once that snapshot is gone.  (A
	# REPEATABLE READ session that has its snapshot but no lock on the
	# queue, as pg_dump between its snapshot and its locks.)
	# A pending delivery in the current generation: an event replayed to an
	# inactive endpoint, which waits.
	my $held_ev = send_event('plain.test', '{"snapshot": "held"}');
	ok(wait_status($node, $held_ev, 'succeeded'), 'retention: an event in the current generation');
	my $gen1 = psql("SELECT gen FROM webhook.events WHERE id = '$held_ev'");
	is(psql("SELECT webhook.replay('$held_ev', (SELECT min(id) FROM webhook.endpoints WHERE NOT active))"), '1',
		'retention: replayed to an inactive endpoint, it waits there');
	my $held = psql("SELECT count(*) FROM webhook.delivery_state WHERE status = 'pending'");
	my $rr = $node->background_psql('postgres');
	$rr->query_safe('BEGIN ISOLATION LEVEL REPEATABLE READ');
	$rr->query_safe('SELECT 1');
	my $moved = 0;
	for my $try (1 .. 30)
	{
		my $ev = send_event('plain.test', qq({"snapshot": $try}));
		wait_status($node, $ev, 'succeeded');
		if (psql("SELECT moved_xid IS NOT NULL FROM webhook.queue_generations WHERE gen = $gen1") eq 't')
		{
			$moved = 1;
			last;
		}
		sleep 1;
	}
	ok($moved, 'retention: the kept rows of the next generation were moved on');
	for my $try (1 .. 3)
	{
		my $ev = send_event('plain.test', qq({"waiting": $try}));
		wait_status($node, $ev, 'succeeded');
		sleep 1;
	}
	# (TRUNCATE would clear moved_xid and leave no pages.)
	is(psql("SELECT moved_xid IS NOT NULL AND pg_relation_size('webhook.delivery_state_$gen1') > 0
	           FROM webhook.queue_generations WHERE gen = $gen1"), 't',
		'retention: a generation is not truncated while an older snapshot is in use');
	is($rr->query_safe("SELECT count(*) FROM webhook.delivery_state WHERE status = 'pending'"), $held,
		'retention: that snapshot still sees every pending delivery');
	$rr->query_safe('COMMIT');
	$rr->quit;
	my $truncated = 0;
	for my $try (1 .. 30)
	{
		my $ev = send_event('plain.test', qq({"after snapshot": $try}));
		wait_status($node, $ev, 'succeeded');
		if (psql("SELECT moved_xid IS NULL FROM webhook.queue_generations WHERE gen = $gen1") eq 't')
		{
			$truncated = 1;
			last;
		}
		sleep 1;
	}
	ok($truncated, 'retention: once it is gone, the generation is truncated');
	is(psql("SELECT count(*) FROM webhook.delivery_state WHERE status = 'pending'"), $held,
		'retention: every pending delivery is still there');

	# A generations table broken by hand (no current generation) fails
	# retention's turn with a warning; the worker goes on delivering.
	my $wpid = psql("SELECT pid FROM pg_stat_activity WHERE backend_type = 'webhook delivery worker'");
	my $log_pos = -s $node->logfile;
	psql("UPDATE webhook.queue_generations SET ended_at = coalesce(ended_at, now()), began_at = coalesce(began_at, now())");
	my $broken_ok = 0;
	for my $try (1 .. 20)
	{
		my $ev = send_event('plain.test', qq({"broken": $try}));
		wait_status($node, $ev, 'succeeded');
		if (substr(slurp_file($node->logfile), $log_pos) =~ /webhook retention could not empty old queue generations: webhook.queue_generations has no current generation/)
		{
			$broken_ok = 1;
			last;
		}
		sleep 1;
	}
	ok($broken_ok, 'retention: a broken generations table is reported as a warning');
	is(psql("SELECT pid FROM pg_stat_activity WHERE backend_type = 'webhook delivery worker'"), $wpid,
		'retention: the worker goes on (same process)');
	my $after_broken = send_event('plain.test', '{"after": "broken generations"}');
	ok(wait_status($node, $after_broken, 'succeeded'), 'retention: deliveries go on with a broken generations table');
	psql("UPDATE webhook.queue_generations SET ended_at = NULL
	       WHERE gen = (SELECT gen FROM webhook.queue_generations ORDER BY began_at DESC NULLS LAST LIMIT 1)");

	# By hand: everything finished goes, pending deliveries stay.
	$pending = psql("SELECT count(*) FROM webhook.deliveries WHERE status = 'pending'");
	cmp_ok(psql("SELECT webhook.purge('0 seconds')"), '>', 0, 'purge: deletes rows');
	is( psql("SELECT count(*) FILTER (WHERE status <> 'pending') || '|' || count(*) FILTER (WHERE status = 'pending')
	            FROM webhook.deliveries"),
		"0|$pending", 'purge(0 seconds): no finished delivery is left, pending ones stay');
	is( psql("SELECT count(*) FROM webhook.events e
	          WHERE NOT EXISTS (SELECT 1 FROM webhook.deliveries d WHERE d.event_id = e.id)"),
		'0', 'purge(0 seconds): events without deliveries are gone');
	is( psql("SELECT count(*) FROM webhook.delivery_log l JOIN webhook.deliveries d ON d.id = l.delivery_id
	           WHERE d.status <> 'pending'"),
		'0', 'purge(0 seconds): only log rows of pending deliveries are left');
}

$r->stop;
$node->stop;
done_testing();
