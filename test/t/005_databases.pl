# One delivery worker per database with the extension: databases deliver
# independently, a new database starts delivering after CREATE EXTENSION
# without a restart, DROP EXTENSION stops its worker, and DROP DATABASE of a
# database with the extension is not blocked by the worker.
use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin";
use WebhookTest;
use PostgreSQL::Test::Utils;
use Test::More;

my $r = start_receiver();
my $node = node_with_webhook('databases');

sub workers_in
{
	my ($db) = @_;
	return "SELECT count(*) FROM pg_stat_activity
	         WHERE backend_type = 'webhook delivery worker' AND datname = '$db'";
}

# Make a database deliver to /<db>; returns the endpoint id.
sub setup_db
{
	my ($db) = @_;
	my $url = $r->url("/$db");
	$node->safe_psql($db, 'CREATE EXTENSION webhook');
	return $node->safe_psql($db,
		"INSERT INTO webhook.endpoints (name, url) VALUES ('$db', '$url') RETURNING id");
}

# Send one event in $db and wait until it is delivered; returns its id.
sub deliver_one
{
	my ($db, $what) = @_;
	my $ev = $node->safe_psql($db,
		"SELECT webhook.send('db.event', '{\"db\": \"$db\", \"what\": \"$what\"}')");
	ok( poll_until(
			$node, $db,
			"SELECT status FROM webhook.deliveries WHERE event_id = '$ev'",
			'succeeded', 30),
		"$db: $what delivered")
	  or diag(
		$node->safe_psql(
			$db,
			"SELECT status, attempts, claimed_at, next_attempt_at, now() FROM webhook.deliveries WHERE event_id = '$ev'"
		),
		"\n",
		$node->safe_psql(
			'postgres',
			"SELECT pid, datname, wait_event, state, query FROM pg_stat_activity WHERE backend_type LIKE 'webhook%'"
		));
	return $ev;
}

sub paths_of
{
	my ($ev) = @_;
	return join ',', sort map { $_->{path} }
	  grep { ($_->{headers}{'webhook-id'} // '') eq $ev } @{ requests($r) };
}

$node->safe_psql('postgres', 'CREATE DATABASE db1');
$node->safe_psql('postgres', 'CREATE DATABASE db2');
setup_db('db1');
setup_db('db2');

ok(poll_until($node, 'postgres', workers_in('db1'), '1', 30), 'db1 has a delivery worker');
ok(poll_until($node, 'postgres', workers_in('db2'), '1', 30), 'db2 has a delivery worker');
# A worker may look into a database without the extension, but leaves.
ok(poll_until($node, 'postgres', workers_in('postgres'), '0', 30),
	'no worker stays in a database without the extension');

# --- independent delivery ---------------------------------------------------
{
	# Queue in both before waiting for either.
	my $e1 = $node->safe_psql('db1', q{SELECT webhook.send('db.event', '{"db": "db1"}')});
	my $e2 = $node->safe_psql('db2', q{SELECT webhook.send('db.event', '{"db": "db2"}')});
	ok(poll_until($node, 'db1',
			"SELECT status FROM webhook.deliveries WHERE event_id = '$e1'", 'succeeded', 30),
		'db1 event delivered');
	ok(poll_until($node, 'db2',
			"SELECT status FROM webhook.deliveries WHERE event_id = '$e2'", 'succeeded', 30),
		'db2 event delivered');
	is(paths_of($e1), '/db1', "db1's event went only to db1's endpoint");
	is(paths_of($e2), '/db2', "db2's event went only to db2's endpoint");
	isnt($e1, $e2, 'events of different databases have different ids');
}

# A stuck endpoint in db1 does not hold up db2.  The hanging endpoints use the
# host name "localhost" so that they never share a connection pool entry with
# the 127.0.0.1 endpoints (same-host fairness is 003_fairness.pl's business).
my $hang_base = "http://localhost:$r->{port}";
{
	my $hang = "$hang_base/hang/db1";
	$node->safe_psql('db1',
		"INSERT INTO webhook.endpoints (name, url, event_types, timeout_ms, retry_schedule_s)
		 VALUES ('db1-hang', '$hang', '{stuck.*}', 60000, '{}')");
	my $stuck = $node->safe_psql('db1', q{SELECT webhook.send('stuck.event', '{}')});
	ok( poll_until(
			$node, 'db1',
			"SELECT d.claimed_at IS NOT NULL FROM webhook.deliveries d JOIN webhook.endpoints e ON e.id = d.endpoint_id
			  WHERE d.event_id = '$stuck' AND e.name = 'db1-hang'",
			't', 30),
		'db1 has a request hanging');
	deliver_one('db2', 'while db1 has a request hanging');
	# Put the stuck delivery out of the way (the hanging request keeps its
	# attempt; the delivery is closed when the endpoint goes).
	$node->safe_psql('db1', "DELETE FROM webhook.endpoints WHERE name = 'db1-hang'");
}

# --- a new database starts delivering without a restart ----------------------
my $postmaster_pid = $node->safe_psql('postgres',
	"SELECT pid FROM pg_stat_activity WHERE backend_type = 'checkpointer'");
$node->safe_psql('postgres', 'CREATE DATABASE db3');
setup_db('db3');
ok(poll_until($node, 'postgres', workers_in('db3'), '1', 30),
	'db3 gets a delivery worker after CREATE EXTENSION');
my $e3 = deliver_one('db3', 'first event');
is(paths_of($e3), '/db3', "db3's event went to db3's endpoint");
is( $node->safe_psql('postgres',
		"SELECT pid FROM pg_stat_activity WHERE backend_type = 'checkpointer'"),
	$postmaster_pid, 'without a server restart');

# --- DROP EXTENSION stops that database's worker ------------------------------
$node->safe_psql('db2', 'DROP EXTENSION webhook');
ok(poll_until($node, 'postgres', workers_in('db2'), '0', 30),
	'db2 has no delivery worker after DROP EXTENSION');
deliver_one('db1', 'after DROP EXTENSION in db2');
ok(poll_until($node, 'postgres', workers_in('db1'), '1', 5),
	'db1 keeps its worker');

# ... and CREATE EXTENSION brings it back.
setup_db('db2');
ok(poll_until($node, 'postgres', workers_in('db2'), '1', 30),
	'db2 gets a worker again after CREATE EXTENSION');
deliver_one('db2', 'after re-creating the extension');

# --- DROP DATABASE of a database with the extension ----------------------------
{
	# Keep db3's worker busy with a request that never ends.
	my $hang = "$hang_base/hang/db3";
	$node->safe_psql('db3',
		"INSERT INTO webhook.endpoints (name, url, event_types, timeout_ms)
		 VALUES ('db3-hang', '$hang', '{stuck.*}', 60000)");
	my $stuck = $node->safe_psql('db3', q{SELECT webhook.send('stuck.event', '{}')});
	ok( poll_until(
			$node, 'db3',
			"SELECT d.claimed_at IS NOT NULL FROM webhook.deliveries d JOIN webhook.endpoints e ON e.id = d.endpoint_id
			  WHERE d.event_id = '$stuck' AND e.name = 'db3-hang'",
			't', 30),
		'db3 has a request in flight');

	my ($ret, $stdout, $stderr) = $node->psql('postgres', 'DROP DATABASE db3');
	is($ret, 0, 'DROP DATABASE db3 succeeds') or diag($stderr);
	is($node->safe_psql('postgres', "SELECT count(*) FROM pg_database WHERE datname = 'db3'"),
		'0', 'db3 is gone');
	ok(poll_until($node, 'postgres', workers_in('db3'), '0', 30),
		'no worker for db3 remains');
}

# The others carry on.
deliver_one('db1', 'after DROP DATABASE db3');
deliver_one('db2', 'after DROP DATABASE db3');
ok( poll_until(
		$node, 'postgres',
		"SELECT string_agg(datname, ',' ORDER BY datname) FROM pg_stat_activity
		  WHERE backend_type = 'webhook delivery worker'",
		'db1,db2', 30),
	'in the end exactly one worker each for db1 and db2');

$r->stop;
$node->stop;
done_testing();
