# The version gate: a library built for another version than the one the
# extension is installed at (the package was upgraded, ALTER EXTENSION
# webhook UPDATE not run yet) delivers nothing and says once what to do; it
# waits without polling, and starts delivering as soon as it is woken with
# the versions matching.  The old version is faked by updating pg_extension,
# which sends no invalidation: the server restarts to pick it up, as after a
# package upgrade.  Then a real one: a database created at 0.1.0 gets nothing
# delivered until ALTER EXTENSION webhook UPDATE, whose commit wakes the
# worker.  Also: webhook.error_classes() shows the worker's table.
use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin";
use WebhookTest;
use PostgreSQL::Test::Utils;
use Test::More;

my $r = start_receiver();
my $node = node_with_webhook('version_gate', log_min_messages => 'debug1');

$node->safe_psql('postgres', 'CREATE EXTENSION webhook');
my $version = $node->safe_psql('postgres',
	"SELECT extversion FROM pg_extension WHERE extname = 'webhook'");
my $url = $r->url('/hooks/gate');
$node->safe_psql('postgres',
	"INSERT INTO webhook.endpoints (name, url) VALUES ('gate', '$url')");

# --- at the library's version, events are delivered ---------------------------
my $first = $node->safe_psql('postgres',
	q{SELECT webhook.send('gate.before', '{"n": 1}')});
ok( poll_until(
		$node, 'postgres',
		"SELECT status FROM webhook.deliveries WHERE event_id = '$first'",
		'succeeded', 30),
	'a delivery succeeds while the versions match');

# --- installed at another version: the worker waits ----------------------------
$node->safe_psql('postgres',
	"UPDATE pg_extension SET extversion = '0.0.9' WHERE extname = 'webhook'");
my $log_offset = -s $node->logfile;
$node->restart;
my $waiting = qr/webhook delivery worker is waiting: the extension is installed at version 0\.0\.9, the library is version \Q$version\E/;
ok($node->wait_for_log($waiting, $log_offset),
	'the worker says it waits for the versions to match');
ok($node->log_contains(qr/HINT:\s+Run ALTER EXTENSION webhook UPDATE in this database\./, $log_offset),
	'with a hint to run ALTER EXTENSION webhook UPDATE');

# webhook.send wakes the worker at commit: it looks again, and still waits.
my $still_offset = -s $node->logfile;
my $gated = $node->safe_psql('postgres',
	q{SELECT webhook.send('gate.during', '{"n": 2}')});
ok( $node->wait_for_log(
		qr/webhook delivery worker is still waiting: the extension is installed at version 0\.0\.9/,
		$still_offset),
	'woken by a send, the worker looks again and goes on waiting');
is( $node->safe_psql('postgres',
		"SELECT status || ' ' || attempts FROM webhook.deliveries WHERE event_id = '$gated'"),
	'pending 0',
	'nothing is delivered while the versions differ');
is( $node->safe_psql('postgres',
		"SELECT count(*) FROM webhook.delivery_log l
		   JOIN webhook.deliveries d ON d.id = l.delivery_id
		  WHERE d.event_id = '$gated'"),
	'0', 'and no attempt is logged');

# --- the versions match again: the next wake-up starts delivery ----------------
my $restored_at = $node->safe_psql('postgres',
	"UPDATE pg_extension SET extversion = '$version' WHERE extname = 'webhook';
	 SELECT now()");
my $after = $node->safe_psql('postgres',
	q{SELECT webhook.send('gate.after', '{"n": 3}')});
ok( poll_until(
		$node, 'postgres',
		"SELECT count(*) FROM webhook.deliveries
		  WHERE event_id IN ('$gated', '$after') AND status = 'succeeded'",
		'2', 30),
	'once woken with the versions matching, the worker delivers what waited');
is( $node->safe_psql('postgres',
		"SELECT bool_and(l.attempted_at >= '$restored_at') AND count(*) = 1
		   FROM webhook.delivery_log l JOIN webhook.deliveries d ON d.id = l.delivery_id
		  WHERE d.event_id = '$gated'"),
	't', 'the event sent while waiting was attempted once, after the versions matched');

my $log = substr(slurp_file($node->logfile), $log_offset);
my $count = () = $log =~ /$waiting/g;
is($count, 1, 'the worker said it waits once, not at every wake-up');

# --- a real update: the worker waits at 0.1.0, and ALTER EXTENSION wakes it ---
$node->safe_psql('postgres', 'CREATE DATABASE olddb');
$log_offset = -s $node->logfile;
$node->safe_psql('olddb', "CREATE EXTENSION webhook VERSION '0.1.0'");
ok( $node->wait_for_log(
		qr/webhook delivery worker is waiting: the extension is installed at version 0\.1\.0/,
		$log_offset),
	'in a database still at 0.1.0, the worker waits');
$node->safe_psql('olddb',
	"INSERT INTO webhook.endpoints (name, url) VALUES ('old', '$url')");
$still_offset = -s $node->logfile;
my $old = $node->safe_psql('olddb',
	q{SELECT webhook.send('gate.old', '{"n": 4}')});
ok( $node->wait_for_log(
		qr/webhook delivery worker is still waiting: the extension is installed at version 0\.1\.0/,
		$still_offset),
	'woken by a send at 0.1.0, it goes on waiting');
is($node->safe_psql('olddb', "SELECT status FROM webhook.deliveries WHERE event_id = '$old'"),
	'pending', 'nothing is delivered before the update');
$node->safe_psql('olddb', 'ALTER EXTENSION webhook UPDATE');
ok( poll_until(
		$node, 'olddb',
		"SELECT status FROM webhook.deliveries WHERE event_id = '$old'",
		'succeeded', 30),
	'ALTER EXTENSION webhook UPDATE wakes the worker at commit, and it delivers');

# --- the error classes, as SQL sees the worker's table ----------------------------
is( $node->safe_psql('postgres',
		"SELECT string_agg(error_class, ',') FROM webhook.error_classes()"),
	'http,timeout,connect,dns,tls,connection,protocol,blocked,invalid_url,too_large,'
	  . 'secret,invalid_header,transform,internal,oauth',
	'webhook.error_classes() lists every class the worker writes');
is( $node->safe_psql('postgres',
		"SELECT count(*) FROM webhook.error_classes() WHERE meaning IS NULL OR meaning = ''"),
	'0', 'each with its meaning');

$node->stop;
done_testing();
