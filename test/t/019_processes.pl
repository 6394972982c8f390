# Processes: exactly one launcher and at most one delivery worker per
# database, whatever is terminated, cancelled or restarted, and no missed
# wake-up.  A refused DROP DATABASE leaves the worker alone; COMMIT PREPARED
# wakes the worker like COMMIT; a cancel does not end the worker or the
# launcher; the launcher adopts running workers when it restarts; CREATE
# DATABASE ... TEMPLATE and ALTER DATABASE ... RENAME work while a worker
# delivers; a database refused a worker gets one when a slot frees up.
use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin";
use WebhookTest;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(sleep);

my $r = start_receiver();
my $node = node_with_webhook('processes', max_prepared_transactions => 5);
my $started = postmaster_started($node);

sub psql { return $node->safe_psql('postgres', $_[0]); }

sub launcher_pid
{
	return psql("SELECT pid FROM pg_stat_activity WHERE backend_type = 'webhook launcher'");
}

# Wait until $db has exactly one worker other than $old (any worker if $old
# is undefined); returns its pid.
sub new_worker
{
	my ($db, $old, $label) = @_;
	my $not_old = defined $old ? "AND pid <> $old" : '';
	ok( poll_until(
			$node, 'postgres',
			"SELECT count(*) FROM pg_stat_activity
			  WHERE backend_type = 'webhook delivery worker' AND datname = '$db' $not_old",
			'1', 60),
		"$label: $db has a delivery worker");
	return worker_pid($node, $db);
}

# One launcher, at most one worker per database, server intact, and an event
# sent now in each of @dbs arrives.
sub check_processes
{
	my ($label, @dbs) = @_;
	is(psql("SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'webhook launcher'"),
		'1', "$label: exactly one launcher");
	is( psql(
			"SELECT coalesce(max(n), 0) FROM (SELECT count(*) AS n FROM pg_stat_activity
			  WHERE backend_type = 'webhook delivery worker' GROUP BY datname) w"),
		'1', "$label: at most one worker per database");
	assert_server_intact($node, $started, $label);
	canary_arrives($node, $_, $r, "$label ($_)") for @dbs;
	return;
}

# No webhook-id reached the receiver twice.
sub no_duplicates
{
	my ($label) = @_;
	my %seen;
	$seen{ $_->{headers}{'webhook-id'} // '' }++ for @{ requests($r) };
	my @dup = grep { $seen{$_} > 1 } sort keys %seen;
	is(scalar(@dup), 0, "$label: no event delivered twice")
	  or diag("sent more than once: " . join(', ', map { "$_ x$seen{$_}" } @dup));
	return;
}

psql('CREATE DATABASE d');
$node->safe_psql('d', 'CREATE EXTENSION webhook');
$node->safe_psql('d',
	"INSERT INTO webhook.endpoints (name, url, event_types)
	 VALUES ('events', '${\ $r->url('/events')}', '{proc.*}')");
new_worker('d', undef, 'setup');
check_processes('setup', 'd');

# --- #11: DDL refused for lack of privilege stops nothing ---------------------
{
	# May create databases, but owns none.
	psql('CREATE ROLE intruder LOGIN CREATEDB');
	my $pid = worker_pid($node, 'd');
	for my $i (1 .. 3)
	{
		my ($ret, $out, $err) =
		  $node->psql('postgres', 'DROP DATABASE d', extra_params => [ '-U', 'intruder' ]);
		like($err, qr/must be owner of database d/, "refused DROP DATABASE $i: permission denied");
	}
	for my $sql ('CREATE DATABASE y TEMPLATE d', 'ALTER DATABASE d RENAME TO z',
		'ALTER DATABASE d SET TABLESPACE pg_global')
	{
		my ($ret, $out, $err) =
		  $node->psql('postgres', $sql, extra_params => [ '-U', 'intruder' ]);
		like($err, qr/must be owner of database d|permission denied to copy database "d"/,
			"refused $sql: permission denied");
	}
	check_processes('after refused DDL', 'd');
	is(worker_pid($node, 'd'), $pid, 'refused DDL: the worker was never stopped');
}

# --- #14: COMMIT PREPARED wakes the worker like COMMIT ------------------------
{
	$node->safe_psql('d', q{
		BEGIN;
		SELECT webhook.send('proc.prepared', '{"tag": "prepared"}');
		PREPARE TRANSACTION 'webhook_p1'});
	# Another session commits it; nothing else happens in d meanwhile.
	$node->safe_psql('d', "COMMIT PREPARED 'webhook_p1'");
	my $arrived = 0;
	for (1 .. 300)
	{
		$arrived = grep { ($_->{body} // '') =~ /"tag":\s*"prepared"/ } @{ requests($r) };
		last if $arrived;
		sleep 0.1;
	}
	ok($arrived, 'COMMIT PREPARED: the event is delivered without any other wake-up');

	# A prepared CREATE EXTENSION gets its database a worker.
	psql('CREATE DATABASE prepared');
	$node->safe_psql('prepared', q{
		BEGIN;
		CREATE EXTENSION webhook;
		PREPARE TRANSACTION 'webhook_p2'});
	$node->safe_psql('prepared', "COMMIT PREPARED 'webhook_p2'");
	new_worker('prepared', undef, 'after a prepared CREATE EXTENSION');
	check_processes('after COMMIT PREPARED', 'd', 'prepared');
}

# --- #15: a cancel ends neither the worker nor the launcher --------------------
{
	my $wpid = worker_pid($node, 'd');
	my $lpid = launcher_pid();
	for (1 .. 3)
	{
		psql("SELECT pg_cancel_backend($wpid)");
		psql("SELECT pg_cancel_backend($lpid)");
		sleep 0.2;
	}
	check_processes('after cancels', 'd');
	sleep 1;
	is(worker_pid($node, 'd'), $wpid, 'cancelled worker: still the same process');
	is(launcher_pid(), $lpid, 'cancelled launcher: still the same process');
}

# --- the network thread blocks every signal; the worker's own thread takes them -
{
	my $wpid = worker_pid($node, 'd');
	my %blocked;
	for my $status (glob("/proc/$wpid/task/*/status"))
	{
		my ($tid) = $status =~ m{/task/(\d+)/};
		open(my $fh, '<', $status) or next;
		my ($mask) = map { /^SigBlk:\s*([0-9a-f]+)/ ? $1 : () } <$fh>;
		close $fh;
		$blocked{$tid} = hex(substr($mask, -8)) if defined $mask;
	}
	# SIGHUP, SIGINT, SIGUSR1, SIGUSR2, SIGTERM and SIGURG: bits 0, 1, 9, 11, 14, 22.
	my $signals = (1 << 0) | (1 << 1) | (1 << 9) | (1 << 11) | (1 << 14) | (1 << 22);
	my @threads = grep { $_ != $wpid } keys %blocked;
	ok(@threads >= 1, 'the worker runs a network thread');
	is(scalar(grep { ($blocked{$_} & $signals) != $signals } @threads), 0,
		'every other thread of the worker blocks SIGHUP, SIGINT, SIGUSR1, SIGUSR2, SIGTERM and SIGURG');
	is($blocked{$wpid} & (1 << 14), 0, 'the worker\'s own thread takes SIGTERM');
}

# --- #12: a restarted launcher adopts the running worker ----------------------
{
	$node->safe_psql('d',
		"INSERT INTO webhook.endpoints (name, url, event_types)
		 VALUES ('slow', '${\ $r->url('/delay/10000/slow')}', '{slow.*}')");
	my @ev = map {
		$node->safe_psql('d', "SELECT webhook.send('slow.event', '{\"n\": $_}')")
	} 1 .. 3;
	my $list = join ',', map { "'$_'" } @ev;
	ok( poll_until(
			$node, 'd',
			"SELECT count(*) FROM webhook.deliveries WHERE event_id IN ($list) AND claimed_at IS NOT NULL",
			'3', 30),
		'launcher restart: three slow requests in flight');
	my $wpid = worker_pid($node, 'd');
	my $lpid = launcher_pid();
	psql("SELECT pg_terminate_backend($lpid)");
	ok( poll_until(
			$node, 'postgres',
			"SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'webhook launcher'
			    AND pid <> $lpid AND state = 'idle'",
			'1', 60),
		'launcher restart: a new launcher has scanned the databases');
	check_processes('launcher restart with requests in flight', 'd');
	is(worker_pid($node, 'd'), $wpid, 'launcher restart: the running worker was adopted');
	ok( poll_until(
			$node, 'd',
			"SELECT count(*) FROM webhook.deliveries WHERE event_id IN ($list) AND status = 'succeeded'",
			'3', 60),
		'launcher restart: the slow deliveries succeed');
	no_duplicates('launcher restart with requests in flight');
}

# --- launcher and worker terminated repeatedly, alternating --------------------
for my $i (1 .. 5)
{
	my $lpid = launcher_pid();
	psql("SELECT pg_terminate_backend($lpid)");
	ok( poll_until(
			$node, 'postgres',
			"SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'webhook launcher'
			    AND pid <> $lpid AND state = 'idle'",
			'1', 60),
		"launcher terminated ($i): a new one runs");
	check_processes("launcher terminated ($i)", 'd');

	my $wpid = worker_pid($node, 'd');
	psql("SELECT pg_terminate_backend($wpid)");
	new_worker('d', $wpid, "worker terminated ($i)");
	check_processes("worker terminated ($i)", 'd');
}
no_duplicates('launcher and worker terminated repeatedly');

# --- #16: CREATE DATABASE ... TEMPLATE and ALTER DATABASE ... RENAME -----------
{
	my $pid = worker_pid($node, 'd');
	my ($ret, $out, $err) = $node->psql('postgres', 'CREATE DATABASE x TEMPLATE d');
	is($ret, 0, 'CREATE DATABASE x TEMPLATE d succeeds') or diag($err);
	new_worker('d', $pid, 'after CREATE DATABASE ... TEMPLATE');
	new_worker('x', undef, 'after CREATE DATABASE ... TEMPLATE') if $ret == 0;
	check_processes('after CREATE DATABASE ... TEMPLATE', 'd', ($ret == 0 ? 'x' : ()));

	$pid = worker_pid($node, 'd');
	($ret, $out, $err) = $node->psql('postgres', 'ALTER DATABASE d RENAME TO e');
	is($ret, 0, 'ALTER DATABASE d RENAME TO e succeeds') or diag($err);
	my $db = $ret == 0 ? 'e' : 'd';
	new_worker($db, $pid, 'after ALTER DATABASE ... RENAME');
	check_processes('after ALTER DATABASE ... RENAME', $db);

	# The same for moving the database to another tablespace.
	my $dir = PostgreSQL::Test::Utils::tempdir();
	psql("CREATE TABLESPACE elsewhere LOCATION '$dir'");
	$pid = worker_pid($node, $db);
	($ret, $out, $err) = $node->psql('postgres', "ALTER DATABASE $db SET TABLESPACE elsewhere");
	is($ret, 0, 'ALTER DATABASE ... SET TABLESPACE succeeds') or diag($err);
	new_worker($db, $pid, 'after ALTER DATABASE ... SET TABLESPACE');
	check_processes('after ALTER DATABASE ... SET TABLESPACE', $db);
	no_duplicates('template, rename and tablespace');
}

$node->stop;

# --- #13: a database refused a worker gets one when a slot frees up ----------
{
	# Room for the launcher and one delivery worker only.
	my $small = node_with_webhook(
		'few_slots',
		max_worker_processes => 2,
		max_logical_replication_workers => 0,
		max_parallel_workers => 0);
	my $small_started = postmaster_started($small);
	my $count = sub {
		my ($db) = @_;
		return "SELECT count(*) FROM pg_stat_activity
		         WHERE backend_type = 'webhook delivery worker' AND datname = '$db'";
	};
	$small->safe_psql('postgres', 'CREATE DATABASE s1');
	$small->safe_psql('postgres', 'CREATE DATABASE s2');
	$small->safe_psql('s1', 'CREATE EXTENSION webhook');
	ok(poll_until($small, 'postgres', $count->('s1'), '1', 60),
		'few slots: s1 gets the only worker slot');
	canary_arrives($small, 's1', $r, 'few slots (s1)');

	$small->safe_psql('s2', 'CREATE EXTENSION webhook');
	$small->safe_psql('s1', 'DROP EXTENSION webhook');
	ok(poll_until($small, 'postgres', $count->('s2'), '1', 60),
		'few slots: s2 gets a worker once s1 no longer needs its slot');
	canary_arrives($small, 's2', $r, 'few slots (s2)');
	assert_server_intact($small, $small_started, 'few slots');
	$small->stop;
}

$r->stop;
done_testing();
