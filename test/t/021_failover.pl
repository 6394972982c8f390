# Failover: the queue is WAL-logged, so a synchronous streaming standby holds
# every committed event.  A primary with deliveries in flight to a slow
# receiver is killed (immediate stop) and its standby promoted: every event
# committed on the primary is delivered at least once, by the promoted
# node.  No delivery worker runs on the standby before its promotion, and
# nothing reaches the receiver while only the standby is up.  Duplicates
# come only from the requests in flight at the kill and, since a claim of
# unordered deliveries waits for the standby only once its requests have
# started (README, "At least once"), from the outcomes recorded since the
# claim before it: each at most the endpoint's max_in_flight.
use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin";
use WebhookTest;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time sleep);

my $N = 100;          # events per batch
my $CAP = 10;         # requests in flight at once

my $r = start_receiver();
my $primary = node_with_webhook(
	'primary',
	wal_level => 'replica',
	max_wal_senders => 4);
$primary->safe_psql('postgres', 'CREATE EXTENSION webhook');
$primary->safe_psql(
	'postgres', qq{
	CREATE TABLE orders (id int PRIMARY KEY, note text);
	SELECT webhook.watch('orders', event_prefix => 'fo.order');
	INSERT INTO webhook.endpoints (name, url, event_types, max_in_flight)
	VALUES ('failover', '${\ $r->url('/delay/300/failover')}', '{fo.*}', $CAP)});

$primary->backup('bk');
my $standby = standby_from_backup($primary, 'bk', 'standby');
$standby->start;
# Synchronous from now on: a commit returns once the standby has it.
$primary->safe_psql('postgres',
	"ALTER SYSTEM SET synchronous_standby_names = '*'; SELECT pg_reload_conf()");
ok( poll_until(
		$primary, 'postgres',
		"SELECT count(*) FROM pg_stat_replication WHERE sync_state = 'sync' AND state = 'streaming'",
		'1', 60),
	'the standby streams synchronously');

# Delivery workers running on a node (a launcher that only waits for the
# end of recovery would be harmless; a worker is what sends).
sub delivery_workers
{
	my ($node) = @_;
	return $node->safe_psql('postgres',
		"SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'webhook delivery worker'");
}

# Requests the receiver saw for the failover endpoint.
sub received
{
	return grep { $_->{path} =~ m{/failover$} } @{ requests($r) };
}

is(delivery_workers($standby), '0', 'no delivery worker runs on the hot standby');

# Events in many small transactions (webhook.send and a watched table), then
# wait until deliveries are in flight and some succeeded.
my @ids;
for my $i (1 .. $N / 2)
{
	push @ids, $primary->safe_psql('postgres',
		"SELECT webhook.send('fo.sent', jsonb_build_object('i', $i))");
}
$primary->safe_psql('postgres',
	"INSERT INTO orders SELECT i, 'n' FROM generate_series(1, @{[ $N / 2 ]}) i");
push @ids, split /\n/, $primary->safe_psql('postgres',
	"SELECT id FROM webhook.events WHERE event_type = 'fo.order.created'");
is(scalar @ids, $N, "$N events committed on the primary");

ok( poll_until(
		$primary, 'postgres', qq{
		SELECT count(*) FILTER (WHERE status = 'succeeded') >= 5
		   AND count(*) FILTER (WHERE status = 'pending' AND claimed_at IS NOT NULL) > 0
		  FROM webhook.deliveries}, 't', 60),
	'deliveries are in flight on the primary');

# A last event committed while requests are in flight, just before the kill.
push @ids, $primary->safe_psql('postgres', "SELECT webhook.send('fo.last', '{}')");
is(delivery_workers($standby), '0', 'still no delivery worker on the standby');
$primary->stop('immediate');

# Let requests already written by the dead primary's worker reach the log.
my $before = -1;
for (1 .. 50)
{
	my $now = scalar(received());
	last if $now == $before;
	$before = $now;
	sleep 0.5;
}
my $pending_on_standby = $standby->safe_psql('postgres',
	"SELECT count(*) FROM webhook.deliveries WHERE status = 'pending'");
cmp_ok($pending_on_standby, '>', 0,
	"the standby holds the $pending_on_standby deliveries still pending at the kill");
is($standby->safe_psql('postgres', 'SELECT count(*) FROM webhook.events'),
	scalar(@ids), 'the standby holds every event committed on the primary');

# Only the standby runs: nothing may be sent.
sleep 3;
is(scalar(received()), $before, 'nothing is sent while only the standby runs');
is(delivery_workers($standby), '0', 'no delivery worker on the standby before promotion');
my $log_before_promote = slurp_file($standby->logfile);
unlike($log_before_promote, qr/LOG:  webhook delivery worker started|background worker "webhook delivery worker"/,
	'the standby log shows no delivery worker before promotion');

my $promote_offset = -s $standby->logfile;
$standby->promote;
ok(poll_until($standby, 'postgres', 'SELECT NOT pg_is_in_recovery()', 't', 60),
	'the standby is promoted');
my $started = postmaster_started($standby);

ok( poll_until(
		$standby, 'postgres',
		"SELECT count(*) FILTER (WHERE status = 'succeeded') || '/' || count(*) FROM webhook.deliveries",
		scalar(@ids) . '/' . scalar(@ids), 120),
	'every delivery ends succeeded on the promoted node');

my %seen;
$seen{ $_->{headers}{'webhook-id'} // '' }++ for received();
my @missing = grep { !$seen{$_} } @ids;
is(scalar @missing, 0, 'the receiver saw every committed event at least once (distinct webhook-id)')
  or diag('missing: ' . join ' ', @missing[0 .. ($#missing < 4 ? $#missing : 4)]);
my $dups = 0;
$dups += $seen{$_} - 1 for grep { $seen{$_} } @ids;
diag("$dups duplicate request(s) over " . scalar(@ids) . ' events');
cmp_ok($dups, '<=', 2 * $CAP,
	"duplicates only among the $CAP requests in flight at the kill and the outcomes the standby had not received");

assert_server_intact($standby, $started, 'after promotion');
canary_arrives($standby, 'postgres', $r, 'after promotion');

$r->stop;
$standby->stop;
done_testing();
