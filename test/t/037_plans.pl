# The worker's queue statements reach their rows by key whatever the
# planner's statistics say.  A VACUUM ANALYZE of the empty queue tables
# (what a DBA runs after a restore, or autovacuum after retention emptied a
# generation) once gave the read a plan that hashed every pending
# delivery_state row at each page: a quarter of the worker's time at full
# rate, growing with the backlog.  The test counts the sequential scans of
# the queue's tables while the worker delivers after such an ANALYZE: none
# may come from the worker.  (Counted, not timed.)
use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin";
use WebhookTest;
use PostgreSQL::Test::Utils;
use Test::More;

my $r = start_receiver();
# Autovacuum off: the statistics stay those of the empty tables throughout.
my $node = node_with_webhook('plans', autovacuum => 'off');
sub psql { return $node->safe_psql('postgres', $_[0]); }
psql('CREATE EXTENSION webhook');

my $n_endpoints = 4;
my $n_tx = 5;
my $per_tx = 40;
my $total = $n_endpoints * $n_tx * $per_tx;
for my $i (1 .. $n_endpoints)
{
	psql(sprintf(q{INSERT INTO webhook.endpoints (name, url, event_types) VALUES ('ep%d', '%s', '{plan.*}')},
		$i, $r->url("/ep$i")));
}

# The worker started and idle first: its start-up statements (the takeover
# of a predecessor's claims) are not the worker's statements under test.
ok(poll_until($node, 'postgres',
		q{SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'webhook delivery worker' AND state = 'idle'}, 1, 60),
	'the delivery worker is up and idle');

# Every table of the extension analyzed while the queue is empty.
my $tables = psql(q{SELECT string_agg(format('%I.%I', n.nspname, c.relname), ', ')
                      FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
                     WHERE n.nspname = 'webhook' AND c.relkind IN ('r', 'p')});
psql("VACUUM ANALYZE $tables");
is(psql(q{SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
           WHERE n.nspname = 'webhook' AND c.relname LIKE 'delivery\_state\__' AND c.reltuples = 0}),
	'4', 'every delivery_state partition has statistics saying it is empty');

# Sequential scans of the current generation's partitions of events,
# delivery_state and delivery_log, which hold this test's rows, and how many
# attempts are logged, as the statistics system has them.  (Retention's
# checks of the other, empty generations may scan those: that is their
# cheapest plan.)
my $gen = psql('SELECT webhook._current_generation()');
my $queue_tables = "schemaname = 'webhook' AND relname IN ('events_$gen', 'delivery_state_$gen', 'delivery_log_$gen')";
my $scans_sql = "SELECT coalesce(sum(seq_scan), 0) FROM pg_stat_user_tables WHERE $queue_tables";
my $logged_sql = "SELECT coalesce(sum(n_tup_ins), 0) FROM pg_stat_user_tables WHERE schemaname = 'webhook' AND relname = 'delivery_log_$gen'";
my $scans0 = psql($scans_sql);
my $scans_by_table0 = psql("SELECT string_agg(relname || ' ' || seq_scan, ', ' ORDER BY relname) FROM pg_stat_user_tables WHERE $queue_tables");
my $logged0 = psql($logged_sql);

for my $t (1 .. $n_tx)
{
	psql("SELECT count(webhook.send('plan.made', jsonb_build_object('t', $t, 'i', g))) FROM generate_series(1, $per_tx) g");
}
my $got = wait_for_requests($r, $total, 120);
is(scalar @$got, $total, "every delivery arrived ($total)");

# The worker reports its counters at most once a second, at the end of a
# transaction: an event nobody subscribes to gives it one more.
ok( poll_until(
		$node, 'postgres',
		"SELECT webhook.send('nobody.listens', '{}') IS NOT NULL
		    AND ($logged_sql) >= $logged0 + $total",
		't', 60),
	'the worker has reported its attempts to the statistics system');
is(psql($scans_sql) - $scans0, 0,
	'no sequential scan of the generation\'s events, delivery_state or delivery_log while the worker delivered')
  or diag("sequential scans before: $scans_by_table0\nafter: "
	  . psql("SELECT string_agg(relname || ' ' || seq_scan, ', ' ORDER BY relname) FROM pg_stat_user_tables WHERE $queue_tables"));

is(psql(q{SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
           WHERE n.nspname = 'webhook' AND c.relname LIKE 'delivery\_state\__' AND c.reltuples = 0}),
	'4', 'the statistics still say every delivery_state partition is empty');

$r->stop;
$node->stop;
done_testing();
