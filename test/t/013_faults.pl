# Faults: a receiver that drops the connection, answers garbage or hangs; a
# receiver that is down and comes back; an error while writing the delivery
# log (outcomes kept, nothing re-sent, all recorded once the log works
# again); a 5 MB response (stored truncated, memory stays bounded); a
# delivery whose generation retention empties while its request is out; a
# server restart with 2,000 deliveries pending.
use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin";
use WebhookTest;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time sleep);

my $r = start_receiver();
my $node = node_with_webhook('faults');
$node->safe_psql('postgres', 'CREATE EXTENSION webhook');

sub psql { return $node->safe_psql('postgres', $_[0]); }

# An endpoint for event type $type at $url; returns (id, secret).
sub endpoint
{
	my ($type, $url, %cols) = @_;
	my @names = ('name', 'url', 'event_types', sort keys %cols);
	my @vals = ("'$type'", "'$url'", "'{$type}'", map { $cols{$_} } sort keys %cols);
	return split /\|/, psql(sprintf(
		'INSERT INTO webhook.endpoints (%s) VALUES (%s) RETURNING id, webhook._unseal(secret)',
		join(', ', @names), join(', ', @vals)));
}

sub send_event
{
	my ($type, $payload) = @_;
	return psql("SELECT webhook.send('$type', '" . ($payload // '{}') . "')");
}

sub requests_at
{
	my ($rcv, $path) = @_;
	return grep { $_->{path} eq $path } @{ requests($rcv) };
}

# --- a receiver misbehaving ----------------------------------------------------
{
	my %case = (
		drop => [ '/drop', 'connection', '' ],
		garbage => [ '/garbage', 'protocol', '' ],
		hang => [ '/hang', 'timeout', 'timeout_ms' ],
	);
	my %ev;
	for my $name (sort keys %case)
	{
		my ($path, $class, $timeout) = @{ $case{$name} };
		endpoint("fault.$name", $r->url($path), retry_schedule_s => "'{}'",
			($timeout ? (timeout_ms => 300) : ()));
		$ev{$name} = send_event("fault.$name");
	}
	for my $name (sort keys %case)
	{
		my ($path, $class) = @{ $case{$name} };
		ok(wait_status($node, $ev{$name}, 'failed'), "$path: the delivery failed (no retries configured)");
		is( psql("SELECT count(*) || '|' || coalesce(string_agg(error_class, ','), '-') || '|'
		                 || coalesce(string_agg(status_code::text, ','), '-')
		            FROM webhook.delivery_log WHERE event_id = '$ev{$name}'"),
			"1|$class|-", "$path: logged with error_class $class and no status code");
		is(scalar(requests_at($r, $path)), 1, "$path: the receiver saw the request");
	}
}

# --- a receiver that is down, then comes back ------------------------------------
{
	my $port = WebhookTest::free_port();
	my $url = "http://127.0.0.1:$port/ok/back";
	# 500 s scaled by retry_delay_scale = 0.001: about half a second apart.
	my ($ep, $secret) = endpoint('down.test', $url,
		retry_schedule_s => "'{500,500,500,500,500,500,500,500,500,500,500,500}'");
	my $ev = send_event('down.test');
	ok( poll_until($node, 'postgres',
			"SELECT count(*) >= 2 FROM webhook.delivery_log WHERE event_id = '$ev'", 't', 30),
		'down: attempts fail while nothing listens');
	is(psql("SELECT status FROM webhook.deliveries WHERE event_id = '$ev'"), 'pending',
		'down: the delivery is still pending, waiting for a retry');

	my $r2 = start_receiver(port => $port);
	is($r2->{port}, $port, 'down: a receiver now listens on that port');
	ok(wait_status($node, $ev, 'succeeded'), 'down: once the receiver is back, the delivery succeeds');
	my @classes = split /,/, psql("SELECT string_agg(coalesce(error_class, 'ok'), ',' ORDER BY attempt)
	                                 FROM webhook.delivery_log WHERE event_id = '$ev'");
	is($classes[-1], 'ok', 'down: the last attempt succeeded');
	is(scalar(grep { $_ eq 'connect' } @classes), @classes - 1,
		'down: every earlier attempt failed with error_class connect')
	  or diag "@classes";
	my @got = requests_at($r2, '/ok/back');
	is(scalar @got, 1, 'down: the receiver that came back got the request once');
	ok(@got && verify_standard_signature($secret, $got[0]{headers}, $got[0]{body}),
		'down: and it is signed');
	$r2->stop;
}

# --- an error while writing the log ---------------------------------------------
{
	my ($ep) = endpoint('lb.test', $r->url('/ok/logbroken'));
	psql(q{
		CREATE FUNCTION public.log_broken() RETURNS trigger LANGUAGE plpgsql AS $$
		BEGIN
		    RAISE EXCEPTION 'delivery_log is broken on purpose';
		END $$;
		CREATE TRIGGER log_broken BEFORE INSERT ON webhook.delivery_log
		    FOR EACH ROW EXECUTE FUNCTION public.log_broken();});
	my $log_offset = -s $node->logfile;
	my @evs = split /\n/,
	  psql("SELECT webhook.send('lb.test', jsonb_build_object('i', g)) FROM generate_series(1, 5) g");
	is(scalar @evs, 5, 'broken log: five events queued');

	my $deadline = time + 30;
	sleep 0.05 while requests_at($r, '/ok/logbroken') < 5 && time < $deadline;
	is(scalar(requests_at($r, '/ok/logbroken')), 5, 'broken log: the five requests reached the receiver');
	$deadline = time + 30;
	sleep 0.05
	  while !$node->log_contains(qr/delivery_log is broken on purpose/, $log_offset)
	  && time < $deadline;
	ok($node->log_contains(qr/delivery_log is broken on purpose/, $log_offset),
		'broken log: the worker reported the error in the server log');
	is( psql("SELECT count(*) FILTER (WHERE status = 'pending') FROM webhook.deliveries WHERE endpoint_id = $ep"),
		'5', 'broken log: the deliveries stay pending');

	# Bounded wait: the worker must not send them again while it cannot
	# record them (it backs off 1 s, 2 s, 4 s ... between attempts to record).
	sleep 2.5;
	is(scalar(requests_at($r, '/ok/logbroken')), 5,
		'broken log: nothing was re-sent while the log could not be written');

	psql('DROP TRIGGER log_broken ON webhook.delivery_log');
	ok( poll_until($node, 'postgres',
			"SELECT count(*) FILTER (WHERE status = 'succeeded') FROM webhook.deliveries WHERE endpoint_id = $ep",
			'5', 60),
		'broken log: once the log works again all five are succeeded');
	is( psql("SELECT count(*) || '|' || count(DISTINCT event_id) || '|' || max(attempt)
	            FROM webhook.delivery_log WHERE endpoint_id = $ep"),
		'5|5|1', 'broken log: exactly five log rows, one first attempt per event');
	my %seen;
	$seen{ $_->{headers}{'webhook-id'} // '' }++ for requests_at($r, '/ok/logbroken');
	is_deeply([ sort keys %seen ], [ sort @evs ], 'broken log: the receiver saw each event');
	is(scalar(grep { $_ != 1 } values %seen), 0, 'broken log: each webhook-id exactly once');
}

# --- a 5 MB response ---------------------------------------------------------------
SKIP:
{
	my $pid = worker_pid($node);
	my $rss = sub {
		open my $fh, '<', "/proc/$pid/status" or return undef;
		my ($kb) = map { /^VmRSS:\s+(\d+)\s+kB/ ? $1 : () } <$fh>;
		return $kb;
	};
	my $before = $rss->();
	skip "cannot read /proc/$pid/status", 5 unless defined $before;

	my ($ep) = endpoint('big.test', $r->url('/big/5000000'));
	my @evs = split /\n/,
	  psql("SELECT webhook.send('big.test', jsonb_build_object('i', g)) FROM generate_series(1, 3) g");
	ok(!(grep { !wait_status($node, $_, 'succeeded') } @evs), '5 MB response: the deliveries succeeded');
	is( psql("SELECT count(*) || '|' || min(status_code) || '|' || bool_and(error_class IS NULL)::int
	            FROM webhook.delivery_log WHERE endpoint_id = $ep"),
		'3|200|1', '5 MB response: logged as 200 without error');
	my ($min, $max) = split /\|/, psql("SELECT min(octet_length(response_body)), max(octet_length(response_body))
	                                     FROM webhook.delivery_log WHERE endpoint_id = $ep");
	cmp_ok($max, '<=', 4096, '5 MB response: at most 4 KiB of the body is stored');
	cmp_ok($min, '>', 0, '5 MB response: the start of the body is stored');
	my $after = $rss->();
	is(worker_pid($node), $pid, 'the same worker is still running');
	diag("worker VmRSS: $before kB before, " . ($after // '?') . ' kB after three 5 MB responses');
	cmp_ok(($after // 1e9) - $before, '<', 50 * 1024, '5 MB response: worker RSS grew by less than 50 MB');
}

# --- retention and deliveries in flight -----------------------------------------------
# A first attempt (sent at once by the read, a webhook.first_attempts row)
# keeps its generation from being emptied until its outcome is recorded:
# the outcome writes the delivery's row into that generation.  A delivery
# claimed from delivery_state (here a retry()) is moved to the current
# generation instead, and its outcome is recorded there, found by its id.
# The receiver takes 3 s to answer each time.
{
	my ($ep) = endpoint('moved.test', $r->url('/delay/3000/ok/moved'));
	my $ev = send_event('moved.test');
	ok( poll_until($node, 'postgres',
			"SELECT count(*) FROM webhook.first_attempts WHERE event_id = '$ev'", '1', 30),
		'first attempt in flight: the request is out');
	my $gen = psql("SELECT gen FROM webhook.first_attempts WHERE event_id = '$ev'");
	psql("SELECT webhook._rotate_generations(now() + interval '1 hour', now() + interval '1 hour', interval '0')")
	  for 1 .. 2;
	is(psql("SELECT gen FROM webhook.events WHERE id = '$ev'"),
		$gen, 'first attempt in flight: its generation is not emptied');
	ok(wait_status($node, $ev, 'succeeded'), 'first attempt in flight: its outcome is recorded');
	is( psql("SELECT attempts || '|' || (claimed_at IS NULL)::int || '|' || gen
	            FROM webhook.delivery_state WHERE event_id = '$ev'"),
		"1|1|$gen", 'first attempt in flight: one attempt, no claim left, in its generation');

	my $id = psql("SELECT id FROM webhook.delivery_state WHERE event_id = '$ev'");
	psql("SELECT webhook.retry($id)");
	ok( poll_until($node, 'postgres',
			"SELECT count(*) FROM webhook.delivery_state WHERE event_id = '$ev' AND claimed_at IS NOT NULL",
			'1', 30),
		'moved in flight: the request is out');
	psql("SELECT webhook._rotate_generations(now() + interval '1 hour', now() + interval '1 hour', interval '0')")
	  for 1 .. 2;
	isnt(psql("SELECT gen FROM webhook.delivery_state WHERE event_id = '$ev'"), $gen,
		'moved in flight: the delivery is in another generation now');
	ok( poll_until($node, 'postgres',
			"SELECT attempts || '|' || status || '|' || (claimed_at IS NULL)::int
			   FROM webhook.delivery_state WHERE event_id = '$ev'", '2|succeeded|1', 30),
		'moved in flight: its outcome is recorded, no claim left');
	is(psql("SELECT count(*) FROM webhook.delivery_log WHERE event_id = '$ev' AND status_code = 200"),
		'2', 'moved in flight: both attempts are logged');
	is(scalar(requests_at($r, '/delay/3000/ok/moved')), 2, 'moved in flight: sent once each time');
}

# --- restart with 2,000 deliveries pending ---------------------------------------------
{
	my ($ep) = endpoint('bulk.test', $r->url('/ok/bulk'));
	# Deliveries pending for an inactive endpoint (as when it was deactivated
	# after the worker read its events), so nothing is sent before the restart.
	psql(qq{
		BEGIN;
		UPDATE webhook.endpoints SET active = false WHERE id = $ep;
		} . pending_for_endpoint_sql($ep, 'bulk.test', 2000) . qq{;
		COMMIT;});
	is(psql("SELECT count(*) FROM webhook.deliveries WHERE endpoint_id = $ep AND status = 'pending'"),
		'2000', 'restart: 2,000 deliveries pending for an inactive endpoint');

	$node->restart;
	ok( poll_until($node, 'postgres',
			"SELECT count(*) FROM pg_stat_activity
			  WHERE backend_type = 'webhook delivery worker' AND wait_event_type = 'Extension'",
			'1', 60),
		'restart: the delivery worker is back and idle');
	is(scalar(requests_at($r, '/ok/bulk')), 0, 'restart: nothing was sent to the inactive endpoint');

	psql("UPDATE webhook.endpoints SET active = true WHERE id = $ep");
	ok( poll_until($node, 'postgres',
			"SELECT count(*) FROM webhook.deliveries WHERE endpoint_id = $ep AND status = 'succeeded'",
			'2000', 20),
		'restart: once the endpoint is active again, all 2,000 are delivered');
	if (psql("SELECT count(*) FROM webhook.deliveries WHERE endpoint_id = $ep AND status = 'succeeded'") ne '2000')
	{
		# Tell apart "not delivered" from "not woken": any commit that wakes
		# the worker should get them going.
		my $poke = send_event('down.test');
		my $ok = poll_until($node, 'postgres',
			"SELECT count(*) FROM webhook.deliveries WHERE endpoint_id = $ep AND status = 'succeeded'",
			'2000', 30);
		diag('restart: after an unrelated send() woke the worker, the 2,000 were '
			  . ($ok ? '' : 'still not ') . 'delivered');
	}
	my %ids = map { ($_->{headers}{'webhook-id'} // '') => 1 } requests_at($r, '/ok/bulk');
	is(scalar keys %ids, 2000, 'restart: the receiver got 2,000 distinct webhook-ids');
}

$r->stop;
$node->stop;
done_testing();
