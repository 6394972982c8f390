# Durability: with requests in flight, kill -9 of the delivery worker (crash
# restart), an immediate shutdown, a fast (graceful) shutdown and
# pg_terminate_backend of the worker lose nothing: every event is still
# there, every delivery ends succeeded and the receiver saw every event at
# least once.  Delivery is at least once, but only what was in flight at the
# interruption may be sent twice (DESIGN: on SIGTERM "requests in flight stay
# pending and are retried after restart"): after a stop, the duplicates
# number at most the deliveries the next worker took over.  Here the
# endpoint's max_in_flight bounds them: the endpoint is full at each claim,
# and while it is, every outcome is recorded at once rather than gathered
# (README: successes that free nothing otherwise wait about 20 ms to be
# recorded together; a worker stopped while it waits records them first,
# 038_clean_stop).  A crash (kill -9, immediate shutdown) also forgets what
# had not reached disk: the last claim, whose requests had just left (a
# claim of unordered deliveries is flushed right after they leave), and the
# outcomes recorded since the claim before it.  Those deliveries are sent
# again too, each group at most the endpoint's max_in_flight.
use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin";
use WebhookTest;
use PostgreSQL::Test::Utils;
use Test::More;

my $N = 200;
my $CAP = 20;    # the endpoint's max_in_flight

my $r = start_receiver();
my $node = node_with_webhook('crash', restart_after_crash => 'on');
$node->safe_psql('postgres', 'CREATE EXTENSION webhook');

# 200 ms per request, 20 at a time: each batch of 200 takes a couple of
# seconds, so there is time to interrupt it half-way.
my $url = $r->url('/delay/200/crash');
my $ep = $node->safe_psql(
	'postgres', qq{
	INSERT INTO webhook.endpoints (name, url, event_types, max_in_flight)
	VALUES ('crash', '$url', '{crash.*}', $CAP) RETURNING id});

sub wait_worker
{
	my ($not_pid) = @_;
	my $cond = "backend_type = 'webhook delivery worker' AND datname = 'postgres'";
	$cond .= " AND pid <> $not_pid" if $not_pid;
	return poll_until($node, 'postgres',
		"SELECT count(*) FROM pg_stat_activity WHERE $cond", '1', 60);
}

# Queue $N events of one type; returns their ids.
sub send_batch
{
	my ($type) = @_;
	my @ids = split /\n/, $node->safe_psql('postgres',
		"SELECT webhook.send('$type', jsonb_build_object('i', i)) FROM generate_series(1, $N) i");
	is(scalar @ids, $N, "$type: $N events queued");
	return @ids;
}

sub counts_sql
{
	my ($type) = @_;
	return qq{
	SELECT count(*) FILTER (WHERE d.status = 'succeeded') || '|'
	    || count(*) FILTER (WHERE d.status = 'pending' AND d.claimed_at IS NOT NULL) || '|'
	    || count(*) FILTER (WHERE d.status = 'failed')
	  FROM webhook.deliveries d JOIN webhook.events e ON e.id = d.event_id
	 WHERE e.event_type = '$type'};
}

# Wait until some deliveries of the batch succeeded and some are in flight.
sub wait_mid_flight
{
	my ($type) = @_;
	my $ok = poll_until(
		$node, 'postgres', qq{
		SELECT count(*) FILTER (WHERE d.status = 'succeeded') >= 10
		   AND count(*) FILTER (WHERE d.status = 'pending' AND d.claimed_at IS NOT NULL) > 0
		  FROM webhook.deliveries d JOIN webhook.events e ON e.id = d.event_id
		 WHERE e.event_type = '$type'}, 't', 60);
	my ($succeeded, $in_flight) = split /\|/, $node->safe_psql('postgres', counts_sql($type));
	my $first = $node->safe_psql('postgres', 'SELECT count(*) FROM webhook.first_attempts');
	diag("$type: interrupting with $succeeded succeeded and $in_flight in flight ($first first attempts)");
	ok($ok && $succeeded < $N, "$type: interrupted while deliveries were in flight");
}

# All events are still there, all deliveries succeeded, the receiver saw
# every id at least once, and duplicates are bounded by what the worker that
# came after the interruption at $log_offset took over; after a crash, by
# that and the last claim, which the crash may have forgotten.
sub check_all_delivered
{
	my ($type, $log_offset, $crash, @ids) = @_;
	my $id_list = join ',', map { "'$_'" } @ids;
	is($node->safe_psql('postgres', "SELECT count(*) FROM webhook.events WHERE id IN ($id_list)"),
		$N, "$type: every committed event survived");
	ok( poll_until(
			$node, 'postgres',
			"SELECT count(*) FROM webhook.deliveries d JOIN webhook.events e ON e.id = d.event_id
			  WHERE e.event_type = '$type' AND d.status = 'succeeded'",
			$N, 120),
		"$type: all $N deliveries end succeeded");
	is( $node->safe_psql(
			'postgres',
			"SELECT count(*) FROM webhook.deliveries d JOIN webhook.events e ON e.id = d.event_id
			  WHERE e.event_type = '$type'"),
		$N, "$type: one delivery per event");
	is($node->safe_psql('postgres', 'SELECT count(*) FROM webhook.first_attempts'),
		'0', "$type: no first attempt is left in flight");

	my %seen;
	$seen{ $_->{headers}{'webhook-id'} // '' }++ for @{ requests($r) };
	my @missing = grep { !$seen{$_} } @ids;
	is(scalar @missing, 0, "$type: the receiver saw every event id at least once")
	  or diag("missing: @missing[0 .. ($#missing < 4 ? $#missing : 4)]");
	my $dups = 0;
	$dups += $seen{$_} - 1 for grep { $seen{$_} } @ids;
	diag("$type: $dups duplicate request(s) over $N events");
	if ($crash)
	{
		cmp_ok($dups, '<=', 2 * $CAP,
			"$type: duplicates only among the $CAP requests that can be in flight and the outcomes not on disk");
	}
	else
	{
		cmp_ok($dups, '<=', $CAP,
			"$type: duplicates only among the $CAP requests that can be in flight");
	}
	# The worker that came next says how many claims it took over.
	my $log = substr(slurp_file($node->logfile), $log_offset);
	my ($seen_count, $taken) = (0, 0);
	while ($log =~ /took over (\d+) deliveries claimed by its predecessor/g)
	{
		$seen_count++;
		$taken += $1;
	}
	SKIP:
	{
		skip "$type: the log does not say how many claims were taken over", 1
		  unless $seen_count || $dups == 0;
		my $forgotten = $crash ? $CAP : 0;
		cmp_ok($dups, '<=', $taken + $forgotten,
			"$type: duplicates only among the $taken deliveries claimed at the interruption"
			  . ($crash ? " and the last claim" : ''));
	}

	# Attempts that were cut short are not logged; every logged attempt is 200.
	is( $node->safe_psql(
			'postgres',
			"SELECT count(*) FROM webhook.delivery_log l JOIN webhook.events e ON e.id = l.event_id
			  WHERE e.event_type = '$type' AND (l.status_code IS DISTINCT FROM 200)"),
		'0', "$type: no failed attempts were logged");
}

ok(wait_worker(), 'delivery worker is running');

# kill -9 of the worker $pid: the server restarts, a new worker runs, and
# every event of the batch is delivered (check_all_delivered).
sub kill9_then_check
{
	my ($type, $pid, @ids) = @_;
	my $log_offset = -s $node->logfile;
	kill 'KILL', $pid;
	ok( $node->wait_for_log(
			qr/all server processes terminated; reinitializing/, $log_offset),
		"$type: the server restarts after kill -9 of the worker");
	ok(wait_worker($pid), "$type: a new delivery worker runs after crash recovery");
	check_all_delivered($type, $log_offset, 1, @ids);
}

# --- kill -9 of the worker: crash restart ----------------------------------
{
	my @ids = send_batch('crash.kill9');
	wait_mid_flight('crash.kill9');
	my $pid = worker_pid($node);
	like($pid, qr/^\d+$/, 'found the worker pid');
	kill9_then_check('crash.kill9', $pid, @ids);
}

# --- kill -9 while first attempts are in flight ------------------------------
# The read sends the first deliveries of a batch at once, as rows of
# webhook.first_attempts: the next worker turns them into pending
# delivery_state rows and sends them again.
{
	my @ids = send_batch('crash.first');
	ok( poll_until(
			$node, 'postgres', 'SELECT count(*) > 0 FROM webhook.first_attempts', 't', 60),
		'crash.first: first attempts are in flight');
	my $pid = worker_pid($node);
	kill9_then_check('crash.first', $pid, @ids);
}

# --- immediate shutdown, then start ------------------------------------------
{
	my @ids = send_batch('crash.immediate');
	wait_mid_flight('crash.immediate');
	my $pid = worker_pid($node);
	my $log_offset = -s $node->logfile;
	$node->stop('immediate');
	$node->start;
	ok(wait_worker($pid), 'a delivery worker runs after the restart');
	check_all_delivered('crash.immediate', $log_offset, 1, @ids);
}

# --- fast shutdown (SIGTERM to the worker), then start -----------------------
{
	my @ids = send_batch('crash.fast');
	wait_mid_flight('crash.fast');
	my $pid = worker_pid($node);
	my $log_offset = -s $node->logfile;
	$node->stop('fast');
	$node->start;
	ok(wait_worker($pid), 'a delivery worker runs after the restart');
	check_all_delivered('crash.fast', $log_offset, 0, @ids);
}

# --- pg_terminate_backend of the worker: the launcher starts another --------
{
	my @ids = send_batch('crash.terminate');
	wait_mid_flight('crash.terminate');
	my $pid = worker_pid($node);
	my $log_offset = -s $node->logfile;
	is($node->safe_psql('postgres', "SELECT pg_terminate_backend($pid)"),
		't', 'terminated the worker');
	ok(wait_worker($pid), 'the launcher starts a new delivery worker');
	check_all_delivered('crash.terminate', $log_offset, 0, @ids);
	ok( !$node->log_contains(
			qr/all server processes terminated; reinitializing/, $log_offset),
		'terminating the worker is not a crash');
}

$r->stop;
$node->stop;
done_testing();
