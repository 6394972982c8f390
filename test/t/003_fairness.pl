# Fairness: a slow endpoint held to max_in_flight = 2 does not delay another
# endpoint; all assertions are on states and orders, not on durations.
use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin";
use WebhookTest;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time sleep);

my $r = start_receiver();
my $node = node_with_webhook('fairness');
$node->safe_psql('postgres', 'CREATE EXTENSION webhook');

my $slow_url = $r->url('/delay/3000/slow');
my $fast_url = $r->url('/fast');
my $slow = $node->safe_psql(
	'postgres', qq{
	INSERT INTO webhook.endpoints (name, url, event_types, max_in_flight)
	VALUES ('slow', '$slow_url', '{slow.*}', 2) RETURNING id});
my $fast = $node->safe_psql(
	'postgres', qq{
	INSERT INTO webhook.endpoints (name, url, event_types)
	VALUES ('fast', '$fast_url', '{fast.*}') RETURNING id});

# The slow events first, so they are the oldest due deliveries.
$node->safe_psql('postgres',
	q{SELECT webhook.send('slow.tick', jsonb_build_object('i', i)) FROM generate_series(1, 10) i});
ok( poll_until(
		$node, 'postgres',
		"SELECT count(*) FROM webhook.deliveries WHERE endpoint_id = $slow AND claimed_at IS NOT NULL",
		'2', 30),
	'two slow requests are in flight');
$node->safe_psql('postgres',
	q{SELECT webhook.send('fast.tick', jsonb_build_object('i', i)) FROM generate_series(1, 10) i});

my $state_sql = qq{
	SELECT count(*) FILTER (WHERE endpoint_id = $fast AND status = 'succeeded')
	    || '|' || count(*) FILTER (WHERE endpoint_id = $slow AND status = 'succeeded')
	  FROM webhook.deliveries};
my ($fast_done, $slow_done) = (0, 0);
my $deadline = time + 60;
while (time < $deadline)
{
	($fast_done, $slow_done) = split /\|/, $node->safe_psql('postgres', $state_sql);
	last if $fast_done == 10 || $slow_done == 10;
	sleep 0.05;
}
diag("when the fast endpoint finished: fast $fast_done/10, slow $slow_done/10 succeeded");
is($fast_done, 10, 'all fast deliveries succeeded');
cmp_ok($slow_done, '<', 10,
	'... while slow deliveries were still outstanding');
# Stronger, still an order and not a duration: the fast endpoint must not have
# waited for any slow response (each takes 3 s; the fast ones take none).
is($slow_done, 0,
	'no slow delivery had completed when the fast endpoint was done');

ok( poll_until(
		$node, 'postgres',
		"SELECT count(*) FROM webhook.deliveries WHERE endpoint_id = $slow AND status = 'succeeded'",
		'10', 90),
	'all slow deliveries succeed in the end');

# Order as recorded by the server: every fast delivery completed before the
# slow endpoint's last one did, indeed before its first response came back.
is( $node->safe_psql(
		'postgres', qq{
	SELECT (SELECT max(completed_at) FROM webhook.deliveries WHERE endpoint_id = $fast)
	     < (SELECT max(completed_at) FROM webhook.deliveries WHERE endpoint_id = $slow)}),
	't',
	'the fast endpoint finished before the slow one');
is( $node->safe_psql(
		'postgres', qq{
	SELECT (SELECT max(completed_at) FROM webhook.deliveries WHERE endpoint_id = $fast)
	     < (SELECT min(completed_at) FROM webhook.deliveries WHERE endpoint_id = $slow)}),
	't',
	'every fast delivery completed before the first slow one');

# The cap: at the start of each slow attempt, at most two slow attempts
# (itself included) were under way.
my $max_overlap = $node->safe_psql(
	'postgres', qq{
	SELECT max(n) FROM (
	  SELECT (SELECT count(*) FROM webhook.delivery_log b
	           WHERE b.endpoint_id = $slow
	             AND b.attempted_at <= a.attempted_at
	             AND a.attempted_at < b.attempted_at + make_interval(secs => b.duration_ms / 1000.0)
	                                     - interval '1 millisecond') AS n
	    FROM webhook.delivery_log a WHERE a.endpoint_id = $slow) s});
cmp_ok($max_overlap, '<=', 2, "slow endpoint never had more than 2 requests in flight (max $max_overlap)");
is($node->safe_psql('postgres',
		"SELECT count(*) FROM webhook.delivery_log WHERE endpoint_id = $slow"),
	'10', 'one attempt per slow delivery');

# The receiver agrees: no more than two slow requests open at once.
my @slow_reqs = sort { $a->{t} <=> $b->{t} }
  grep { $_->{path} =~ m{^/delay/3000/slow} } @{ requests($r) };
is(scalar @slow_reqs, 10, 'the receiver saw ten slow requests');
my $overlap_at_receiver = 0;
for my $i (0 .. $#slow_reqs)
{
	# each slow request is answered 3 s after it arrived
	my $n = grep {
		$_->{t} <= $slow_reqs[$i]{t} && $slow_reqs[$i]{t} < $_->{t} + 2.9
	} @slow_reqs;
	$overlap_at_receiver = $n if $n > $overlap_at_receiver;
}
cmp_ok($overlap_at_receiver, '<=', 2,
	"receiver never had more than 2 slow requests open (max $overlap_at_receiver)");
is($overlap_at_receiver, 2, 'and the cap of 2 was used');

# Both first slow requests, and all fast ones, reach the receiver before the
# first slow response is sent: nothing queues behind a slow request.
my @first_round = grep { $_->{t} < $slow_reqs[0]{t} + 2.9 } @{ requests($r) };
is(scalar(grep { $_->{path} =~ m{^/delay/3000/slow} } @first_round), 2,
	'both permitted slow requests were sent at once');
is(scalar(grep { $_->{path} eq '/fast' } @first_round), 10,
	'all fast requests arrived while the first slow requests were open');

# --- a due delivery while a busy worker's reads fill all its room -------------
# With room for two requests in all, each turn of a burst reads as many new
# events as it has room for and makes their rows already claimed.  A
# delivery that retry() makes due meanwhile, for an endpoint the burst does
# not touch, is still claimed before the burst is done (it once waited for
# the burst's end).  An order, not a duration.
$node->append_conf('postgresql.conf', "webhook.max_in_flight = 2\n");
$node->reload;
sleep 1;
my $busy_url = $r->url('/delay/100/busy');
my $busy = $node->safe_psql(
	'postgres', qq{
	INSERT INTO webhook.endpoints (name, url, event_types)
	VALUES ('busy', '$busy_url', '{busy.*}') RETURNING id});
my $again = $node->safe_psql('postgres',
	"SELECT min(id) FROM webhook.deliveries WHERE endpoint_id = $fast");
$node->safe_psql('postgres',
	q{SELECT webhook.send('busy.tick', jsonb_build_object('i', i)) FROM generate_series(1, 100) i});
ok( poll_until(
		$node, 'postgres',
		"SELECT count(*) >= 4 FROM webhook.deliveries WHERE endpoint_id = $busy AND status = 'succeeded'",
		't', 60),
	'busy: the burst is under way, two requests at a time');
$node->safe_psql('postgres', "SELECT webhook.retry($again)");
ok( poll_until(
		$node, 'postgres',
		"SELECT count(*) FROM webhook.delivery_log WHERE delivery_id = $again", '2', 60),
	'busy: the retried delivery is sent again');
ok( poll_until(
		$node, 'postgres',
		"SELECT count(*) FROM webhook.deliveries WHERE endpoint_id = $busy AND status = 'succeeded'",
		'100', 90),
	'busy: the whole burst is delivered');
my $busy_before = $node->safe_psql(
	'postgres', qq{
	SELECT count(*) FROM webhook.delivery_log
	 WHERE endpoint_id = $busy
	   AND attempted_at < (SELECT max(attempted_at) FROM webhook.delivery_log WHERE delivery_id = $again)});
diag("busy attempts begun before the retried one: $busy_before of 100");
cmp_ok($busy_before, '<', 90, 'busy: the retried delivery went before the burst was done');
$node->append_conf('postgresql.conf', "webhook.max_in_flight = 512\n");
$node->reload;

$r->stop;
$node->stop;
done_testing();
