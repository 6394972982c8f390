# webhook on a Citus cluster (issue 16): a coordinator and two worker
# nodes, all preloading citus and webhook, sharing one master key.
# - Endpoints are written on the coordinator only; the sync worker gives
#   every node the same rows, and the nodes refuse writes of their own.
# - webhook.watch() on a distributed table puts its triggers on every
#   shard; each node writes and delivers the events of its own shards, and
#   the payload names the distributed table.  Multi-shard statements commit
#   by two-phase commit, and their events arrive all the same.
# - Nothing is lost while a shard moves, or when a node's delivery worker
#   is killed; a node added later gets the configuration and, after a
#   rebalance, delivers its shards' events.
# - A node's own decision (a 410 turns an endpoint off) reaches the
#   coordinator, and from there every node.
use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin";
use WebhookTest;
use PostgreSQL::Test::Utils;
use Test::More;
use IPC::Run ();
use JSON::PP ();
use Time::HiRes qw(time sleep);

my $libdir = `pg_config --pkglibdir`;
chomp $libdir;
if (!-f "$libdir/citus.so")
{
	# CI builds Citus (tools/build-citus); there, its absence is a failure.
	die "Citus is not installed in $libdir: run tools/build-citus as root"
	  if $ENV{CI};
	plan skip_all => "Citus is not installed: run tools/build-citus as root";
}

# One master key for every node: the coordinator's sealed secrets are
# copied as they are, and each node opens them with this key.
my $keyfile = PostgreSQL::Test::Utils::tempdir('key') . '/master.key';
open my $kf, '>', $keyfile or die $!;
print $kf join('', map { sprintf '%02x', int rand 256 } 1 .. 32), "\n";
close $kf;
chmod 0600, $keyfile;

sub citus_node
{
	my ($name) = @_;
	my $node = node_with_webhook(
		$name,
		shared_preload_libraries => 'citus,webhook',
		'citus.enable_statistics_collection' => 'off',
		listen_addresses => '127.0.0.1',
		max_prepared_transactions => '20',
		wal_level => 'logical',
		max_worker_processes => '32',
		max_replication_slots => '10',
		max_wal_senders => '10',
		'webhook.master_key_file' => $keyfile);
	$node->safe_psql('postgres', 'CREATE EXTENSION citus');
	$node->{webhook_started} = postmaster_started($node);
	return $node;
}

my $coord = citus_node('coordinator');
my @workers = (citus_node('worker1'), citus_node('worker2'));
sub cq { return $coord->safe_psql('postgres', $_[0]); }
cq(sprintf("SELECT citus_set_coordinator_host('127.0.0.1', %d)", $coord->port));
cq(sprintf("SELECT citus_add_node('127.0.0.1', %d)", $_->port)) for @workers;
cq('CREATE EXTENSION webhook');
for my $w (@workers)
{
	is($w->safe_psql('postgres', "SELECT extversion IS NOT NULL FROM pg_extension WHERE extname = 'webhook'"),
		't', $w->name . ': CREATE EXTENSION webhook reached the node');
}

my $r = start_receiver();
cq(sprintf(q{INSERT INTO webhook.endpoints (name, url, event_types) VALUES ('orders', '%s', '{orders.*}')},
	$r->url('/orders')));
my $secret = cq("SELECT webhook.endpoint_secret(id) FROM webhook.endpoints WHERE name = 'orders'");
like($secret, qr/^whsec_/, 'the coordinator generated the secret');

# The sync worker sends the endpoint to each node: same id, same secret.
sub synced
{
	my ($node, $what) = @_;
	return poll_until($node, 'postgres',
		"SELECT count(*) FROM webhook.endpoints WHERE name = 'orders' AND id = "
		  . cq("SELECT id FROM webhook.endpoints WHERE name = 'orders'")
		  . " AND webhook.endpoint_secret(id) = '$secret'", '1', 60);
}
ok(synced($_), $_->name . ': has the coordinator\'s endpoint, id and secret') for @workers;

# A node refuses to manage endpoints itself: the next sync would undo it.
my ($ret, $out, $err) = $workers[0]->psql('postgres',
	q{INSERT INTO webhook.endpoints (name, url) VALUES ('local', 'http://127.0.0.1:1/')});
like($err, qr/webhook.endpoints is managed on the Citus coordinator/, 'a worker node refuses its own endpoints');

# A watched distributed table: the user sets no Citus setting.
cq('CREATE TABLE orders (id bigint PRIMARY KEY, n integer NOT NULL)');
cq("SELECT create_distributed_table('orders', 'id', shard_count := 8)");
cq("SELECT webhook.watch('orders')");
for my $w (@workers)
{
	ok($w->safe_psql('postgres', "SELECT count(*) FROM pg_trigger WHERE tgname LIKE 'webhook_watch_insert%'") > 1,
		$w->name . ': the watch\'s triggers are on its shards');
}

# Single-row INSERTs, a multi-shard INSERT ... SELECT, UPDATE and DELETE
# (the last three commit on both nodes by two-phase commit).
cq(join ";\n", map { "INSERT INTO orders VALUES ($_, 0)" } 1 .. 200);
cq('INSERT INTO orders SELECT g, 0 FROM generate_series(201, 1000) g');
cq('UPDATE orders SET n = 1 WHERE id % 10 = 0');
cq('DELETE FROM orders WHERE id % 7 = 0');
my %expected;
$expected{"orders.created:$_"} = 1 for 1 .. 1000;
$expected{"orders.updated:$_"} = 1 for grep { $_ % 10 == 0 } 1 .. 1000;
$expected{"orders.deleted:$_"} = 1 for grep { $_ % 7 == 0 } 1 .. 1000;

# What arrived: type:id of each request, every signature checked with the
# coordinator's secret, the table named as the distributed one.
my (%seen_ids, $bad_sig, $bad_table, $deadline);
sub arrived
{
	my %got;
	($bad_sig, $bad_table) = (0, 0);
	for my $req (grep { $_->{path} eq '/orders' } @{ requests($r) })
	{
		my $body = JSON::PP::decode_json($req->{body});
		my $row = $body->{data}{record} // $body->{data}{old_record};
		$got{"$body->{type}:$row->{id}"} = 1;
		$seen_ids{ $req->{headers}{'webhook-id'} } = 1;
		$bad_sig++ unless verify_standard_signature($secret, $req->{headers}, $req->{body});
		$bad_table++ unless $body->{data}{table} eq 'orders' && $body->{data}{schema} eq 'public';
	}
	return \%got;
}

sub wait_all
{
	my ($want, $timeout) = @_;
	my $deadline = time + ($timeout // 120);
	my $got;
	while (1)
	{
		$got = arrived();
		last if !grep { !$got->{$_} } keys %$want;
		last if time > $deadline;
		sleep 1;
	}
	my @missing = grep { !$got->{$_} } sort keys %$want;
	diag('missing: ' . join(' ', @missing[ 0 .. ($#missing < 9 ? $#missing : 9) ])) if @missing;
	return scalar @missing;
}

is(wait_all(\%expected), 0, 'every change of the 1,000 rows arrived (INSERT, INSERT ... SELECT, UPDATE, DELETE)');
is($bad_sig, 0, 'every request is signed with the coordinator\'s secret, whichever node sent it');
is($bad_table, 0, 'every payload names the distributed table public.orders, not a shard');

# Each node delivered its own shards' events, and each event arrived.
my @event_ids;
for my $w (@workers)
{
	my @ids = split /\n/, $w->safe_psql('postgres', 'SELECT id FROM webhook.events');
	ok(@ids > 100, $w->name . ': wrote and delivered its shards\' events (' . scalar(@ids) . ')');
	push @event_ids, @ids;
}
is(scalar(grep { !$seen_ids{$_} } @event_ids), 0, 'each event id of every node arrived at least once');
is(cq('SELECT count(*) FROM webhook.events'), '0', 'the coordinator queued none of them');

# A table watched before it is distributed: Citus refuses to distribute a
# table that has triggers, and its data copy into the shards would fire
# them again.  README's recipe: unwatch, distribute, watch, in one
# transaction.  The rows copied make no events; later rows do, on the nodes.
cq('CREATE TABLE later (id bigint PRIMARY KEY, n integer NOT NULL)');
cq("SELECT webhook.watch('later', event_prefix => 'orders.later')");
cq('INSERT INTO later VALUES (1, 0)');
($ret, $out, $err) = $coord->psql('postgres', "SELECT create_distributed_table('later', 'id', shard_count := 4)");
like($err, qr/cannot distribute relation "later" because it has triggers/, 'Citus refuses to distribute a watched table as it is');
cq(q{BEGIN;
     SELECT webhook.unwatch('later');
     SELECT create_distributed_table('later', 'id', shard_count := 4);
     SELECT webhook.watch('later', event_prefix => 'orders.later');
     COMMIT});
cq('INSERT INTO later SELECT g, 1 FROM generate_series(2, 41) g');
sub later_ids
{
	return sort { $a <=> $b } map {
		my $b = JSON::PP::decode_json($_->{body});
		$b->{data}{table} eq 'later' ? $b->{data}{record}{id} : ()
	} grep { $_->{path} eq '/orders' } @{ requests($r) };
}
$deadline = time + 60;
sleep 0.5 while scalar(later_ids()) < 41 && time < $deadline;
sleep 1;
is(join(',', later_ids()), join(',', 1 .. 41),
	'each row arrived once: the one written before the distribution, and the 40 after it');
ok($workers[0]->safe_psql('postgres', "SELECT count(*) FROM webhook.events WHERE payload ->> 'table' = 'later'") > 0
	  && $workers[1]->safe_psql('postgres', "SELECT count(*) FROM webhook.events WHERE payload ->> 'table' = 'later'") > 0,
	'and the worker nodes made the later ones');

# A reference table has a copy on every node, and a write runs on each:
# one copy makes the events, so each change is sent once, not once per node.
cq(sprintf(q{INSERT INTO webhook.endpoints (name, url, event_types) VALUES ('regions', '%s', '{regions.*}')},
	$r->url('/regions')));
ok(poll_until($_, 'postgres', "SELECT count(*) FROM webhook.endpoints WHERE name = 'regions'", '1', 60),
	$_->name . ': has the endpoint of the reference table') for @workers;
cq('CREATE TABLE regions (id integer PRIMARY KEY, name text)');
cq("SELECT create_reference_table('regions')");
cq("SELECT webhook.watch('regions')");
cq("INSERT INTO regions VALUES (1, 'north'), (2, 'south'), (3, 'east')");
cq("UPDATE regions SET name = 'west' WHERE id = 3");
sub region_requests { return scalar grep { $_->{path} eq '/regions' } @{ requests($r) }; }
$deadline = time + 60;
sleep 0.5 while region_requests() < 4 && time < $deadline;
# Duplicates would come from the other copies within the same second;
# give them two.
sleep 2;
is(region_requests(), 4, 'a watched reference table: each of its 4 changes sent once, not once per copy');

# The coordinator's views show every node's deliveries and attempts.
for my $w (@workers)
{
	my $node = '127.0.0.1:' . $w->port;
	is(cq("SELECT count(*) FROM webhook.cluster_attempts WHERE node = '$node'"),
		$w->safe_psql('postgres', 'SELECT count(*) FROM webhook.attempts'),
		$w->name . ': webhook.cluster_attempts shows each of its attempts');
	is(cq("SELECT count(*) FROM webhook.cluster_deliveries WHERE node = '$node' AND status = 'succeeded'"),
		$w->safe_psql('postgres', "SELECT count(*) FROM webhook.deliveries WHERE status = 'succeeded'"),
		$w->name . ': webhook.cluster_deliveries shows each of its deliveries');
}

# retry and replay from the coordinator, for deliveries on a worker node.
my ($node2, $delivery2, $event2) = split /\|/, cq(sprintf(
	q{SELECT node, id, event_id FROM webhook.cluster_deliveries WHERE node = '127.0.0.1:%d' ORDER BY id LIMIT 1},
	$workers[1]->port));
my $before = scalar grep { $_->{headers}{'webhook-id'} eq $event2 } @{ requests($r) };
cq("SELECT webhook.cluster_retry('$node2', $delivery2)");
is(cq("SELECT webhook.cluster_replay('$event2')"), '1', 'cluster_replay() found the event on its node');
$deadline = time + 60;
sleep 0.5 while time < $deadline
  && (grep { $_->{headers}{'webhook-id'} eq $event2 } @{ requests($r) }) < $before + 2;
is(scalar(grep { $_->{headers}{'webhook-id'} eq $event2 } @{ requests($r) }), $before + 2,
	'the retried delivery and the replayed event were sent again by their node');
($ret, $out, $err) = $coord->psql('postgres', "SELECT webhook.cluster_retry('nowhere:1', 1)");
like($err, qr/no Citus node "nowhere:1"/, 'cluster_retry() names an unknown node');

# A shard moves from worker 1 to worker 2 while rows are written.
my $rows_file = PostgreSQL::Test::Utils::tempdir('rows') . '/rows.sql';
open my $rf, '>', $rows_file or die $!;
print $rf "INSERT INTO orders VALUES ($_, 2);\n" for 2001 .. 2400;
close $rf;
my $writer = IPC::Run::start(
	[ 'psql', '-X', '-q', '-h', '127.0.0.1', '-p', $coord->port, '-d', 'postgres', '-f', $rows_file ],
	'>', \my $wout, '2>', \my $werr);
my $shard = cq(sprintf(q{SELECT shardid FROM citus_shards WHERE table_name = 'orders'::regclass
                          AND nodeport = %d ORDER BY shardid LIMIT 1}, $workers[0]->port));
cq(sprintf("SELECT citus_move_shard_placement(%d, '127.0.0.1', %d, '127.0.0.1', %d)",
	$shard, $workers[0]->port, $workers[1]->port));
$writer->finish;
is($werr, '', 'the writes during the move all succeeded');
is(cq(sprintf('SELECT nodeport FROM citus_shards WHERE shardid = %d', $shard)), $workers[1]->port,
	'the shard moved');
my %moved = map { ("orders.created:$_" => 1) } 2001 .. 2400;
is(wait_all(\%moved), 0, 'every row written during the shard move arrived');

# COPY into the distributed table, then a shard split in two.
$coord->safe_psql('postgres', "COPY orders FROM STDIN;\n" . join('', map { "$_\t2\n" } 2501 .. 2600) . "\\.\n");
my ($split_shard, $lo, $hi) = split /\|/, cq(q{SELECT shardid, shardminvalue, shardmaxvalue FROM pg_dist_shard
                                              WHERE logicalrelid = 'orders'::regclass ORDER BY shardid LIMIT 1});
cq(sprintf(q{SELECT citus_split_shard_by_split_points(%d, ARRAY['%d'],
                    ARRAY[(SELECT nodeid FROM pg_dist_node WHERE nodeport = %d), (SELECT nodeid FROM pg_dist_node WHERE nodeport = %d)],
                    'block_writes')},
	$split_shard, int(($lo + $hi) / 2), $workers[0]->port, $workers[1]->port));
is(cq("SELECT count(*) FROM pg_dist_shard WHERE logicalrelid = 'orders'::regclass"), '9', 'a shard was split in two');
cq('INSERT INTO orders SELECT g, 2 FROM generate_series(2601, 2800) g');
my %copied = map { ("orders.created:$_" => 1) } 2501 .. 2800;
is(wait_all(\%copied), 0, 'every row of a COPY, and every row written after the split, arrived');

# A node's delivery worker is killed: its events still arrive, and the
# other node's worker goes on untouched.
my $other_pid = $workers[1]->safe_psql('postgres',
	"SELECT pid FROM pg_stat_activity WHERE backend_type = 'webhook delivery worker'");
$workers[0]->safe_psql('postgres',
	"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE backend_type = 'webhook delivery worker'");
cq("INSERT INTO orders SELECT g, 3 FROM generate_series(3001, 3200) g");
my %killed = map { ("orders.created:$_" => 1) } 3001 .. 3200;
is(wait_all(\%killed), 0, 'after a delivery worker was killed on one node, every event arrived');
is($workers[1]->safe_psql('postgres', "SELECT pid FROM pg_stat_activity WHERE backend_type = 'webhook delivery worker'"),
	$other_pid, 'the other node\'s delivery worker was not touched');

# A node added later gets the configuration, and after a rebalance delivers
# its own shards' events.
my $late = citus_node('worker3');
cq(sprintf("SELECT citus_add_node('127.0.0.1', %d)", $late->port));
ok(synced($late), 'a node added later has the endpoint, id and secret');
cq("SELECT citus_rebalance_start(shard_transfer_mode := 'block_writes')");
cq('SELECT citus_rebalance_wait()');
ok(cq(sprintf("SELECT count(*) FROM citus_shards WHERE table_name = 'orders'::regclass AND nodeport = %d",
	$late->port)) > 0, 'the rebalance gave the new node shards');
cq("INSERT INTO orders SELECT g, 4 FROM generate_series(4001, 4300) g");
my %late_rows = map { ("orders.created:$_" => 1) } 4001 .. 4300;
is(wait_all(\%late_rows), 0, 'every row written after the rebalance arrived');
ok($late->safe_psql('postgres', 'SELECT count(*) FROM webhook.events') > 0,
	'the new node delivered its shards\' events');

# The watch's options change, and a column is renamed, on the coordinator:
# every shard follows.  Then unwatch() stops the events everywhere.
cq("SELECT webhook.watch('orders', operations => '{insert,update}', condition => 'NEW.n > 5')");
cq('ALTER TABLE orders RENAME COLUMN n TO qty');
cq('INSERT INTO orders SELECT g, g - 6000 FROM generate_series(6001, 6010) g');   # qty 1..10: 6..10 pass
cq('DELETE FROM orders WHERE id BETWEEN 6001 AND 6010');                          # no longer watched
my %opts = map { ("orders.created:$_" => 1) } 6006 .. 6010;
is(wait_all(\%opts), 0, 'changed options reach every shard: the rows the condition passes arrived');
my @qty = grep { defined } map {
	my $b = JSON::PP::decode_json($_->{body});
	($b->{data}{record} // {})->{id} && $b->{data}{record}{id} >= 6001 ? $b->{data}{record}{qty} : undef
} grep { $_->{path} eq '/orders' } @{ requests($r) };
is(join(',', sort { $a <=> $b } @qty), '6,7,8,9,10',
	'only those rows, under the renamed column, and no deletion');
cq("SELECT webhook.unwatch('orders')");
cq('INSERT INTO orders SELECT g, 1 FROM generate_series(7001, 7010) g');
cq("SELECT webhook.watch('orders')");
cq('INSERT INTO orders SELECT g, 1 FROM generate_series(7011, 7020) g');
my %after = map { ("orders.created:$_" => 1) } 7011 .. 7020;
is(wait_all(\%after), 0, 'watched again: the new rows arrived');
sleep 1;
my $got = arrived();
is(scalar(grep { $got->{"orders.created:$_"} } 7001 .. 7010), 0,
	'unwatch() stopped the events of every shard: none of the rows written meanwhile arrived');

# Shards with two copies (citus.shard_replication_factor = 2): a write runs
# on both, and one copy makes the events.
cq(q{SET citus.shard_replication_factor = 2;
     CREATE TABLE replicated (id bigint PRIMARY KEY, n integer);
     SELECT create_distributed_table('replicated', 'id', shard_count := 4);
     SELECT webhook.watch('replicated', event_prefix => 'orders.replicated')});
cq('INSERT INTO replicated SELECT g, 0 FROM generate_series(1, 10) g');
cq('UPDATE replicated SET n = 1 WHERE id <= 5');
sub replicated_events
{
	return scalar grep {
		my $b = JSON::PP::decode_json($_->{body});
		$b->{data}{table} eq 'replicated'
	} grep { $_->{path} eq '/orders' } @{ requests($r) };
}
$deadline = time + 60;
sleep 0.5 while replicated_events() < 15 && time < $deadline;
sleep 2;
is(replicated_events(), 15, 'replicated shards: each of the 15 changes sent once, not once per copy');

# A column the watch names is dropped with CASCADE: the watch goes, from
# the shards too, and the table can be watched again.
cq("SELECT webhook.watch('replicated', event_prefix => 'orders.replicated', columns => '{n}')");
cq('ALTER TABLE replicated DROP COLUMN n CASCADE');
is(cq("SELECT count(*) FROM webhook.table_watches WHERE table_oid = 'replicated'::regclass"), '0',
	'DROP COLUMN ... CASCADE took the watch');
($ret, $out, $err) = $coord->psql('postgres', "SELECT webhook.watch('replicated', event_prefix => 'orders.replicated')");
is($err, '', 'and the table can be watched again (the shards lost their copies of its triggers)');

# Configuration the nodes must follow: an endpoint with a transform, and two
# endpoints that swap their names.
cq(q{CREATE FUNCTION public.shape(t text, c timestamptz, p jsonb) RETURNS jsonb LANGUAGE sql
     AS $$ SELECT jsonb_build_object('shaped', p -> 'record' -> 'id') $$});
cq(sprintf(q{INSERT INTO webhook.endpoints (name, url, event_types, transform) VALUES ('shaped', '%s', '{orders.created}', 'public.shape')},
	$r->url('/shaped')));
cq(q{BEGIN;
     UPDATE webhook.endpoints SET name = 'swap' WHERE name = 'regions';
     UPDATE webhook.endpoints SET name = 'regions' WHERE name = 'shaped';
     UPDATE webhook.endpoints SET name = 'shaped' WHERE name = 'swap';
     COMMIT});
for my $w (@workers)
{
	ok(poll_until($w, 'postgres', "SELECT string_agg(name || ':' || coalesce(transform::text, '-'), ',' ORDER BY name)
	                                 FROM webhook.endpoints WHERE name IN ('regions', 'shaped')",
			'regions:shape,shaped:-', 60),
		$w->name . ': has the endpoint with a transform, and the swapped names');
}
cq('INSERT INTO orders VALUES (8001, 8)');
$deadline = time + 60;
sleep 0.5 while !(grep { $_->{path} eq '/shaped' } @{ requests($r) }) && time < $deadline;
my ($shaped) = grep { $_->{path} eq '/shaped' } @{ requests($r) };
is($shaped ? $shaped->{body} : '', '{"shaped": 8001}', 'the node that holds the row sent it through the transform');

# A node's own copy is repaired: a worker refuses TRUNCATE, and what a
# superuser changes there past the guard is undone by the next sync.
($ret, $out, $err) = $workers[0]->psql('postgres', 'TRUNCATE webhook.endpoints CASCADE');
like($err, qr/managed on the Citus coordinator/, 'a worker node refuses TRUNCATE of its endpoints');
cq('CREATE ROLE clerk');    # roles are made on the coordinator, which gives them to the nodes
$workers[0]->safe_psql('postgres', q{SET citus.enable_ddl_propagation = off;
                                      GRANT USAGE ON SCHEMA webhook TO clerk;
                                      GRANT INSERT ON webhook.endpoints TO clerk});
($ret, $out, $err) = $workers[0]->psql('postgres', q{SET ROLE clerk; SET webhook_sync.applying = on;
	INSERT INTO webhook.endpoints (name, url) VALUES ('rogue', 'http://127.0.0.1:1/')});
like($err, qr/managed on the Citus coordinator/, 'only the sync (a superuser) may pass the guard');
$workers[0]->safe_psql('postgres', q{SET webhook_sync.applying = on; DELETE FROM webhook.endpoints WHERE name = 'orders'});
cq('SELECT count(*) FROM webhook.sync_cluster()');
ok(synced($workers[0]), 'the next sync gave the node back the endpoint a superuser deleted there');

# A 410 on one node turns the endpoint off there; the coordinator reads the
# decision back, and every node then has it off.
cq(sprintf(q{INSERT INTO webhook.endpoints (name, url, event_types) VALUES ('gone', '%s', '{orders.*}')},
	$r->url('/status/410')));
ok(poll_until($_, 'postgres', "SELECT count(*) FROM webhook.endpoints WHERE name = 'gone'", '1', 60),
	$_->name . ': has the new endpoint') for @workers, $late;
cq("INSERT INTO orders VALUES (5001, 5)");
ok(poll_until($coord, 'postgres', "SELECT active FROM webhook.endpoints WHERE name = 'gone'", 'f', 90),
	'the coordinator took the node\'s 410: the endpoint is off');
ok(poll_until($_, 'postgres', "SELECT active FROM webhook.endpoints WHERE name = 'gone'", 'f', 60),
	$_->name . ': the endpoint is off') for @workers, $late;
is(cq("SELECT count(*) FROM webhook.cluster_nodes WHERE error IS NULL AND digest IS NOT NULL"), '3',
	'webhook.cluster_nodes: three nodes synced, no error');

assert_server_intact($_, $_->{webhook_started}, $_->name) for $coord, @workers, $late;
$r->stop;
done_testing();
