# Changes while running: an endpoint's new URL applies to the next attempt of
# a delivery already being retried, and a reload (SIGHUP) of
# webhook.max_in_flight reaches sessions and the delivery worker.
use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin";
use WebhookTest;
use PostgreSQL::Test::Utils;
use Test::More;

my $r = start_receiver();
my $node = node_with_webhook('sighup');
$node->safe_psql('postgres', 'CREATE EXTENSION webhook');

# --- a new URL applies to the next attempt -----------------------------------
{
	# 1000 s steps scaled by retry_delay_scale = 0.001: about 1 s apart, time
	# enough to change the URL between attempts.
	my $bad = $r->url('/status/500/old');
	my $ep = $node->safe_psql(
		'postgres', qq{
		INSERT INTO webhook.endpoints (name, url, event_types, retry_schedule_s)
		VALUES ('moving', '$bad', '{move.*}', '{1000,1000,1000,1000,1000}') RETURNING id});
	my $ev = $node->safe_psql('postgres', q{SELECT webhook.send('move.it', '{}')});
	ok( poll_until(
			$node, 'postgres',
			"SELECT attempts >= 1 AND status = 'pending' FROM webhook.deliveries WHERE event_id = '$ev'",
			't', 30),
		'the first attempt failed and the delivery waits for a retry');

	my $good = $r->url('/ok/new');
	$node->safe_psql('postgres',
		"UPDATE webhook.endpoints SET url = '$good' WHERE id = $ep");
	ok( poll_until(
			$node, 'postgres',
			"SELECT status FROM webhook.deliveries WHERE event_id = '$ev'",
			'succeeded', 30),
		'the delivery succeeds after the URL is changed');

	my @log = split /\n/, $node->safe_psql(
		'postgres', qq{
		SELECT attempt || ' ' || url || ' ' || coalesce(status_code::text, '-')
		  FROM webhook.delivery_log WHERE event_id = '$ev' ORDER BY attempt});
	like($log[0] // '', qr{^1 \Q$bad\E 500$}, 'attempt 1 went to the old URL and got 500');
	like($log[-1] // '', qr{ \Q$good\E 200$}, 'the last attempt went to the new URL and got 200');
	is(scalar(grep { / \Q$good\E / } @log), 1, 'exactly one attempt at the new URL');

	my @paths = map { $_->{path} }
	  grep { ($_->{headers}{'webhook-id'} // '') eq $ev } @{ requests($r) };
	is($paths[-1] // '', '/ok/new', 'the receiver got the last attempt at the new path');
	is(scalar(grep { $_ eq '/ok/new' } @paths), 1, 'and only one request there');
}

# --- reload of webhook.max_in_flight -----------------------------------------
# Largest number of attempts of one endpoint under way at the same time, from
# the worker's own log.
sub max_overlap
{
	my ($ep) = @_;
	return $node->safe_psql(
		'postgres', qq{
		SELECT coalesce(max(n), 0) FROM (
		  SELECT (SELECT count(*) FROM webhook.delivery_log b
		           WHERE b.endpoint_id = $ep
		             AND b.attempted_at <= a.attempted_at
		             AND a.attempted_at < b.attempted_at + make_interval(secs => b.duration_ms / 1000.0)
		                                     - interval '1 millisecond') AS n
		    FROM webhook.delivery_log a WHERE a.endpoint_id = $ep) s});
}

sub send_batch_and_wait
{
	my ($type, $n) = @_;
	$node->safe_psql('postgres',
		"SELECT webhook.send('$type', jsonb_build_object('i', i)) FROM generate_series(1, $n) i");
	return poll_until(
		$node, 'postgres',
		"SELECT count(*) FROM webhook.deliveries d JOIN webhook.events e ON e.id = d.event_id
		  WHERE e.event_type = '$type' AND d.status = 'succeeded'",
		$n, 60);
}

my $worker_sql = "SELECT pid FROM pg_stat_activity WHERE backend_type = 'webhook delivery worker'";
{
	my $worker_pid = $node->safe_psql('postgres', $worker_sql);
	is($node->safe_psql('postgres', 'SHOW webhook.max_in_flight'), '512',
		'webhook.max_in_flight starts at its default');

	$node->safe_psql('postgres', 'ALTER SYSTEM SET webhook.max_in_flight = 1');
	$node->reload;
	ok(poll_until($node, 'postgres', 'SHOW webhook.max_in_flight', '1', 30),
		'after reload a new session shows webhook.max_in_flight = 1');

	my $url = $r->url('/delay/300/capped');
	my $ep1 = $node->safe_psql(
		'postgres', qq{
		INSERT INTO webhook.endpoints (name, url, event_types)
		VALUES ('capped', '$url', '{capped.*}') RETURNING id});
	ok(send_batch_and_wait('capped.tick', 4), 'four capped deliveries succeed');
	is(max_overlap($ep1), '1',
		'the worker obeyed max_in_flight = 1: one request at a time');

	$node->safe_psql('postgres', 'ALTER SYSTEM RESET webhook.max_in_flight');
	$node->reload;
	ok(poll_until($node, 'postgres', 'SHOW webhook.max_in_flight', '512', 30),
		'after RESET and reload it is 512 again');
	my $url2 = $r->url('/delay/300/uncapped');
	my $ep2 = $node->safe_psql(
		'postgres', qq{
		INSERT INTO webhook.endpoints (name, url, event_types)
		VALUES ('uncapped', '$url2', '{uncapped.*}') RETURNING id});
	ok(send_batch_and_wait('uncapped.tick', 4), 'four uncapped deliveries succeed');
	cmp_ok(max_overlap($ep2), '>', 1,
		'the worker runs several requests at once again');

	is($node->safe_psql('postgres', $worker_sql), $worker_pid,
		'the same single worker kept running through the reloads');
}

$r->stop;
$node->stop;
done_testing();
