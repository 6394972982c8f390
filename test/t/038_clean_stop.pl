# A clean stop sends nothing twice that had succeeded.  Successes of
# unordered endpoints wait in the delivery worker's memory to be recorded
# together (webhook.record_delay_ms, README "How it works").  A fast
# shutdown, and pg_terminate_backend of the worker, reach it while it
# waits between turns: it records what it holds before it goes, so the next
# worker has nothing of them to send again.  The delay is 30 s here (its
# most), so that the successes are surely still held when the stop comes: the
# deliveries show as in flight although the worker has counted them as
# succeeded.  (Requests still in flight at a stop are sent again: 004_crash.)
use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin";
use WebhookTest;
use PostgreSQL::Test::Utils;
use Test::More;

my $N = 5;

my $r = start_receiver();
my $node = node_with_webhook('clean_stop', 'webhook.record_delay_ms' => '30000');
$node->safe_psql('postgres', 'CREATE EXTENSION webhook');
my $url = $r->url('/stop');
$node->safe_psql('postgres',
	"INSERT INTO webhook.endpoints (name, url, event_types) VALUES ('stop', '$url', '{stop.*}')");

sub succeeded_by_worker
{
	return $node->safe_psql('postgres',
		'SELECT coalesce(sum(succeeded), 0) FROM webhook.worker_stats');
}

sub count_sql
{
	my ($type, $cond) = @_;
	return "SELECT count(*) FROM webhook.deliveries d JOIN webhook.events e ON e.id = d.event_id
	         WHERE e.event_type = '$type' AND $cond";
}

# The worker $pid, stopped, is replaced by a new one, and it ended as die()
# ends a background worker, not as if it had finished (the launcher would
# not start it again then).
sub replaced_after_fatal
{
	my ($pid, $log_offset, $label) = @_;
	ok( poll_until(
			$node, 'postgres',
			"SELECT count(*) FROM pg_stat_activity
			  WHERE backend_type = 'webhook delivery worker' AND pid <> $pid",
			'1', 60),
		"$label: a new worker started");
	like(
		slurp_file($node->logfile, $log_offset),
		qr/\[$pid\] FATAL:  terminating background worker "webhook delivery worker" due to administrator command/,
		"$label: the worker ended with the usual FATAL");
}

# Send $N events of $type, wait until the worker holds their successes
# unrecorded, stop it with $stop, and check that each went out once
# ($extra: requests $stop itself makes the worker send).
sub stop_while_held
{
	my ($type, $stop, $extra) = @_;
	$extra //= 0;
	my $before = scalar @{ requests($r) };
	my $counted = succeeded_by_worker();

	$node->safe_psql('postgres',
		"SELECT webhook.send('$type', jsonb_build_object('i', i)) FROM generate_series(1, $N) i");
	ok( poll_until(
			$node, 'postgres',
			"SELECT coalesce(sum(succeeded), 0) >= $counted + $N FROM webhook.worker_stats",
			't', 60),
		"$type: the worker has every response");
	is(scalar @{ requests($r) }, $before + $N, "$type: the receiver got each request");
	is($node->safe_psql('postgres', count_sql($type, "d.status = 'pending' AND d.claimed_at IS NOT NULL")),
		$N, "$type: the successes are held, not recorded yet");

	$stop->();

	ok(poll_until($node, 'postgres', count_sql($type, "d.status = 'succeeded'"), $N, 60),
		"$type: recorded as succeeded");
	is( $node->safe_psql('postgres',
			count_sql($type, "d.attempts = 1 AND (SELECT count(*) FROM webhook.delivery_log l WHERE l.delivery_id = d.id) = 1")),
		$N, "$type: one attempt each, logged once");
	# A delivery left claimed would have been sent again before it counted
	# as succeeded: the receiver has seen everything it ever will of these.
	is(scalar @{ requests($r) }, $before + $N + $extra, "$type: nothing was sent twice");
}

stop_while_held(
	'stop.fast',
	sub {
		$node->stop('fast');
		$node->start;
	});
# No crash restart from here on (smart shutdown and pg_terminate_backend
# end the worker cleanly).
my $started;

stop_while_held(
	'stop.smart',
	sub {
		$node->stop('smart');
		$node->start;
		$started = postmaster_started($node);
	});

stop_while_held(
	'stop.terminate',
	sub {
		my $pid = worker_pid($node);
		my $log_offset = -s $node->logfile;
		$node->safe_psql('postgres', "SELECT pg_terminate_backend($pid)");
		replaced_after_fatal($pid, $log_offset, 'stop.terminate');
	});

# The stop reaches the worker inside one of its transactions: its read of
# new events waits for a lock on webhook.queue_positions that another
# session holds.  The transaction is cancelled, and the successes it holds
# are still recorded before it goes (they were lost with it before: the
# next worker sent them all again).  The record needs no lock held here.
stop_while_held(
	'stop.in_transaction',
	sub {
		my $pid = worker_pid($node);
		my $log_offset = -s $node->logfile;
		my $bg = $node->background_psql('postgres');
		$bg->query_safe('BEGIN; LOCK TABLE webhook.queue_positions IN ACCESS EXCLUSIVE MODE');
		$node->safe_psql('postgres', "SELECT webhook.send('stop.late', '{}')");
		ok( poll_until(
				$node, 'postgres',
				"SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
				  WHERE pid = $pid AND wait_event_type = 'Lock' AND state = 'active'",
				'1', 60),
			'stop.in_transaction: stopped while its read waits for the lock');
		replaced_after_fatal($pid, $log_offset, 'stop.in_transaction');
		$bg->query_safe('ROLLBACK');
		$bg->quit;
		ok(poll_until($node, 'postgres', count_sql('stop.late', "d.status = 'succeeded'"), 1, 60),
			'stop.in_transaction: the event its read waited for is delivered after');
		unlike(slurp_file($node->logfile, $log_offset),
			qr/\[$pid\] ERROR/, 'stop.in_transaction: the cancelled read is not reported as an error');
	},
	1);

# With no delay, nothing is held: each turn's outcomes are recorded at once.
$node->append_conf('postgresql.conf', 'webhook.record_delay_ms = 0');
$node->reload;
ok( poll_until($node, 'postgres', "SELECT current_setting('webhook.record_delay_ms') = '0'", 't', 30),
	'record_delay_ms reloaded');
$node->safe_psql('postgres',
	"SELECT webhook.send('stop.now', jsonb_build_object('i', i)) FROM generate_series(1, $N) i");
ok(poll_until($node, 'postgres', count_sql('stop.now', "d.status = 'succeeded'"), $N, 15),
	'stop.now: recorded well within the 30 s the delay was');

assert_server_intact($node, $started, 'after the stops');
$node->stop;
$r->stop;
done_testing();
