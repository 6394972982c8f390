# Retries and failure classes: a receiver that fails first and then accepts,
# retries running out, 410 Gone disabling the endpoint, Retry-After, and the
# stable error classes timeout / connect / connection / dns / blocked.
use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin";
use WebhookTest;
use IO::Socket::INET;
use PostgreSQL::Test::Utils;
use Test::More;

my $r = start_receiver();
my $node = node_with_webhook('retries');
$node->safe_psql('postgres', 'CREATE EXTENSION webhook');

# An endpoint that takes only the event type $type; returns (id, secret).
sub endpoint
{
	my ($type, $url, %cols) = @_;
	my @names = ('name', 'url', 'event_types', sort keys %cols);
	my @vals = ("'$type'", "'$url'", "'{$type}'", map { $cols{$_} } sort keys %cols);
	my $sql = sprintf(
		'INSERT INTO webhook.endpoints (%s) VALUES (%s) RETURNING id, webhook._unseal(secret)',
		join(', ', @names), join(', ', @vals));
	return split /\|/, $node->safe_psql('postgres', $sql);
}

sub send_event
{
	my ($type) = @_;
	return $node->safe_psql('postgres',
		"SELECT webhook.send('$type', '{\"case\": \"$type\"}')");
}

# Wait until the event's delivery is no longer pending; returns its status.
sub wait_settled
{
	my ($event_id, $timeout_s) = @_;
	poll_until($node, 'postgres',
		"SELECT status <> 'pending' FROM webhook.deliveries WHERE event_id = '$event_id'",
		't', $timeout_s // 60);
	return $node->safe_psql('postgres',
		"SELECT status FROM webhook.deliveries WHERE event_id = '$event_id'");
}

sub log_rows
{
	my ($event_id) = @_;
	return $node->safe_psql(
		'postgres', qq{
		SELECT attempt || ':' || coalesce(status_code::text, '-') || ':' || coalesce(error_class, '-')
		  FROM webhook.delivery_log WHERE event_id = '$event_id' ORDER BY attempt});
}

sub requests_for
{
	my ($event_id) = @_;
	return grep { ($_->{headers}{'webhook-id'} // '') eq $event_id } @{ requests($r) };
}

# --- fail twice, then succeed -------------------------------------------------
{
	my ($ep, $secret) = endpoint('t.failfirst', $r->url('/fail-first/2/ff1'));
	my $ev = send_event('t.failfirst');
	is(wait_settled($ev), 'succeeded', 'fail-first delivery eventually succeeds');
	is(log_rows($ev), "1:500:http\n2:500:http\n3:200:-",
		'delivery_log: 500, 500, 200 with attempts 1..3');
	is( $node->safe_psql(
			'postgres',
			"SELECT attempts, last_status_code, last_error IS NULL FROM webhook.deliveries WHERE event_id = '$ev'"),
		'3|200|t',
		'deliveries row: 3 attempts, last status 200, no error');
	my @reqs = requests_for($ev);
	is(scalar @reqs, 3, 'the receiver saw three attempts with the same webhook-id');
	is(scalar(grep { verify_standard_signature($secret, $_->{headers}, $_->{body}) } @reqs),
		3, 'every attempt is validly signed');
	my %bodies = map { $_->{body} => 1 } @reqs;
	is(scalar keys %bodies, 1, 'every attempt sends the same body');
}

# --- retries run out -----------------------------------------------------------
{
	my ($ep) = endpoint('t.always500', $r->url('/status/500'),
		retry_schedule_s => q('{1,1}'));
	my $ev = send_event('t.always500');
	is(wait_settled($ev), 'failed', 'always-500 delivery ends failed');
	is(log_rows($ev), "1:500:http\n2:500:http\n3:500:http",
		'three attempts, each logged as http 500');
	is( $node->safe_psql(
			'postgres',
			"SELECT attempts, last_status_code, last_error LIKE 'http%', completed_at IS NOT NULL
			   FROM webhook.deliveries WHERE event_id = '$ev'"),
		'3|500|t|t',
		'deliveries row: 3 attempts, last status 500, error and completion recorded');
	is(scalar(requests_for($ev)), 3, 'the receiver saw exactly three attempts');
}

# --- 410 Gone disables the endpoint ---------------------------------------------
{
	my ($ep) = endpoint('t.gone', $r->url('/status/410'));
	my $ev = send_event('t.gone');
	is(wait_settled($ev), 'failed', '410 delivery fails');
	is(log_rows($ev), '1:410:http', 'after a single attempt');
	ok( poll_until(
			$node, 'postgres',
			"SELECT NOT active AND disabled_reason IS NOT NULL AND disabled_at IS NOT NULL
			   FROM webhook.endpoints WHERE id = $ep", 't', 30),
		'the endpoint is deactivated with a reason');
	my $reason = $node->safe_psql('postgres',
		"SELECT disabled_reason FROM webhook.endpoints WHERE id = $ep");
	like($reason, qr/410/, "disabled_reason mentions 410 ($reason)");
	my $ev2 = send_event('t.gone');
	is($node->safe_psql('postgres',
			"SELECT count(*) FROM webhook.deliveries WHERE event_id = '$ev2'"),
		'0', 'a disabled endpoint gets no new deliveries');
}

# --- Retry-After on 429 ----------------------------------------------------------
{
	# One retry only, so the endpoint settles after the second attempt.
	my ($ep) = endpoint('t.ratelimited', $r->url('/status/429/retry-after/2'),
		retry_schedule_s => q('{0}'));
	my $ev = send_event('t.ratelimited');
	# Read the row between attempt 1 and 2: recorded, not yet claimed again.
	my $gap;
	my $deadline = time + 30;
	while (time < $deadline)
	{
		$gap = $node->safe_psql(
			'postgres', qq{
			SELECT extract(epoch FROM next_attempt_at - last_attempt_at)
			  FROM webhook.deliveries
			 WHERE event_id = '$ev' AND status = 'pending' AND attempts = 1
			   AND claimed_at IS NULL});
		last if $gap ne '';
		select(undef, undef, undef, 0.05);
	}
	isnt($gap, '', 'saw the delivery waiting after a 429');
	cmp_ok($gap || 0, '>=', 1.95,
		'next_attempt_at is at least Retry-After (2 s) after last_attempt_at');
	cmp_ok($gap || 0, '<', 60, 'and not absurdly far away');
	is(wait_settled($ev), 'failed', '429 delivery fails when its one retry is used');
	is(log_rows($ev), "1:429:http\n2:429:http", 'two 429 attempts logged');
	my $apart = $node->safe_psql(
		'postgres', qq{
		SELECT extract(epoch FROM max(attempted_at) - min(attempted_at))
		  FROM webhook.delivery_log WHERE event_id = '$ev'});
	cmp_ok($apart, '>=', 1.95, 'the retry was not attempted before Retry-After');
}

# --- error classes -------------------------------------------------------------
{
	my ($ep) = endpoint('t.hang', $r->url('/hang'),
		timeout_ms => 500, retry_schedule_s => q('{}'));
	my $ev = send_event('t.hang');
	is(wait_settled($ev), 'failed', 'hanging receiver: delivery fails');
	is(log_rows($ev), '1:-:timeout', 'hanging receiver is logged as timeout');
}

{
	# A port nothing listens on: bind, note the port, close.
	my $sock = IO::Socket::INET->new(
		LocalAddr => '127.0.0.1',
		LocalPort => 0,
		Proto => 'tcp',
		Listen => 1) or die "cannot bind: $!";
	my $port = $sock->sockport;
	close $sock;
	my ($ep) = endpoint('t.refused', "http://127.0.0.1:$port/nobody",
		retry_schedule_s => q('{}'));
	my $ev = send_event('t.refused');
	is(wait_settled($ev), 'failed', 'refused connection: delivery fails');
	is(log_rows($ev), '1:-:connect', 'refused connection is logged as connect');
}

{
	my ($ep) = endpoint('t.drop', $r->url('/drop'), retry_schedule_s => q('{}'));
	my $ev = send_event('t.drop');
	is(wait_settled($ev), 'failed', 'dropped connection: delivery fails');
	is(log_rows($ev), '1:-:connection',
		'connection closed without a response is logged as connection');
}

{
	my ($ep) = endpoint('t.dns', 'http://does-not-exist.invalid/hook',
		retry_schedule_s => q('{}'));
	my $ev = send_event('t.dns');
	is(wait_settled($ev), 'failed', 'unresolvable host: delivery fails');
	is(log_rows($ev), '1:-:dns', 'unresolvable host is logged as dns');
}

{
	my $last_error = $node->safe_psql('postgres',
		"SELECT string_agg(DISTINCT split_part(last_error, ':', 1), ',' ORDER BY split_part(last_error, ':', 1))
		   FROM webhook.deliveries d JOIN webhook.endpoints e ON e.id = d.endpoint_id
		  WHERE e.name IN ('t.hang', 't.refused', 't.drop', 't.dns')");
	is($last_error, 'connect,connection,dns,timeout',
		'deliveries.last_error starts with the error class');
}

# --- private networks refused after DNS resolution ----------------------------
sub set_private_networks
{
	my ($value) = @_;
	$node->safe_psql('postgres',
		"ALTER SYSTEM SET webhook.allow_private_networks = $value");
	$node->reload;
	ok(poll_until($node, 'postgres', 'SHOW webhook.allow_private_networks', $value, 30),
		"allow_private_networks is $value after reload");
}

{
	# Made while private networks are still allowed; a name, not a literal, so
	# only the connect-time check can catch it.
	my $port = $r->{port};
	my ($ep) = endpoint('t.blocked', "http://localhost:$port/blocked");

	set_private_networks('off');
	my $ev = send_event('t.blocked');
	is(wait_settled($ev), 'failed', 'a request to localhost is refused');
	is(log_rows($ev), '1:-:blocked', 'logged once as blocked, no retries');
	is( $node->safe_psql(
			'postgres', "SELECT attempts, last_error LIKE 'blocked%' FROM webhook.deliveries WHERE event_id = '$ev'"),
		'1|t', 'the blocked delivery made one attempt only');
	is(scalar(requests_for($ev)), 0, 'nothing reached the receiver');
}

# The same must hold while the worker is busy with another request: a reload
# has to tighten the policy for new connections at once.
{
	set_private_networks('on');
	my ($slow) = endpoint('t.slow', $r->url('/delay/5000'),
		retry_schedule_s => q('{}'));
	my $slow_ev = send_event('t.slow');
	ok( poll_until(
			$node, 'postgres',
			"SELECT claimed_at IS NOT NULL FROM webhook.deliveries WHERE event_id = '$slow_ev'",
			't', 30),
		'a slow request is in flight');
	set_private_networks('off');
	my $ev = send_event('t.blocked');
	is(wait_settled($ev), 'failed',
		'with another request in flight, a request to localhost is still refused');
	is(log_rows($ev), '1:-:blocked', 'and logged as blocked');
	is(scalar(requests_for($ev)), 0, 'nothing reached the receiver');
	is(wait_settled($slow_ev, 30), 'succeeded', 'the slow request completes');
}

# ... and when a kept-alive connection to the address, opened while it was
# allowed, is still in the worker's pool.
{
	set_private_networks('on');
	my $port = $r->{port};
	my ($ep) = endpoint('t.warm', "http://localhost:$port/warm");
	my $warm = send_event('t.warm');
	is(wait_settled($warm), 'succeeded', 'a request to localhost succeeds while allowed');
	set_private_networks('off');
	is($node->safe_psql('postgres',
			"SELECT count(*) FROM webhook.deliveries WHERE status = 'pending'"),
		'0', 'the worker has nothing in flight');
	my $ev = send_event('t.warm');
	is(wait_settled($ev), 'failed',
		'after the setting is turned off, the pooled connection is not used');
	is(log_rows($ev), '1:-:blocked', 'and the request is logged as blocked');
	is(scalar(requests_for($ev)), 0, 'nothing reached the receiver')
	  or diag('receiver connection of the allowed request: '
		  . join(',', map { $_->{conn} } requests_for($warm))
		  . '; of the one that should have been blocked: '
		  . join(',', map { $_->{conn} } requests_for($ev)));
}

$r->stop;
$node->stop;
done_testing();
