# SQL-surface fuzzing with sqlsmith against a database where the extension
# is busy: endpoints at a local receiver (fast, failing, slow, ordered, rate
# limited, every signing scheme, a transform), two watched tables, queued
# events and the delivery worker running.  sqlsmith runs as an application
# role that owns the watched tables and may send, as an operator role with
# the README's grants, and as a superuser, each with a fixed seed, so it
# explores the webhook schema (--exclude-catalog keeps it off the system
# tables; the roles see only what they are granted).  The run fails on any
# server crash: postmaster start time changed, or a crashed process in the
# server log.  Afterwards a canary event must still be delivered.
#
# Run by `make sqlsmith` (SQLSMITH_QUERIES per role, default 1000;
# SQLSMITH_SEED, default 1; SQLSMITH_DUMP=1 to keep every query).
use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/../t";
use WebhookTest;
use IPC::Run;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(sleep);

my $queries = $ENV{SQLSMITH_QUERIES} || 1000;
my $seed = $ENV{SQLSMITH_SEED} || 1;
my $sqlsmith = $ENV{SQLSMITH} || 'sqlsmith';

my $r = start_receiver();
# Errors of fuzzed queries are expected: keep them out of the server log
# (ERROR ranks below LOG there); crashes are logged at LOG.
# A crash stops sqlsmith at once (see run_sqlsmith); the server restarts so
# that the log and the later checks still work.
my $node = node_with_webhook(
	'sqlsmith',
	restart_after_crash => 'on',
	log_min_messages => 'log',
	log_statement => 'none',
	log_min_error_statement => 'panic');
my $db = 'fuzz';
$node->safe_psql('postgres', "CREATE DATABASE $db");

sub psql { return $node->safe_psql($db, $_[0]); }

my $url = sub { $r->url($_[0]) };
psql(qq{
	CREATE EXTENSION webhook;
	CREATE ROLE app LOGIN;
	CREATE ROLE ops LOGIN;
	GRANT USAGE ON SCHEMA webhook TO app, ops;
	GRANT CREATE ON SCHEMA public TO app;
	GRANT EXECUTE ON FUNCTION webhook.send(text, jsonb, text, timestamptz, text) TO app;
	GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA webhook TO ops;
	GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA webhook TO ops;

	SET ROLE app;
	CREATE TABLE public.orders (id int PRIMARY KEY, status text, amount numeric, note text);
	CREATE TABLE public.customers (id int PRIMARY KEY, name text, email text, vip boolean);
	SELECT webhook.watch('public.orders', event_prefix => 'order');
	SELECT webhook.watch('public.customers', event_prefix => 'customer',
	                     columns => '{id,name,vip}', condition => 'NEW.vip IS NOT FALSE');
	RESET ROLE;

	CREATE FUNCTION public.to_text(event_type text, created_at timestamptz, payload jsonb)
	RETURNS text LANGUAGE sql AS \$\$ SELECT event_type || ': ' || payload::text \$\$;

	INSERT INTO webhook.endpoints (name, url, event_types, signing, max_in_flight,
	                               rate_limit_per_s, ordered, retry_schedule_s, headers)
	VALUES ('ok', '${\ $url->('/ok')}', '{*}', 'standard', NULL, NULL, false, '{1,2}', '{}'),
	       ('slow', '${\ $url->('/delay/200/slow')}', '{order.*}', 'ed25519', 4, NULL, false, '{1}', '{}'),
	       ('failing', '${\ $url->('/status/500')}', '{customer.*,app.*}', 'hmac-sha256', NULL, NULL, false,
	        '{1,1,1}', '{"X-Api-Key": "k"}'),
	       ('ordered', '${\ $url->('/ok/ordered')}', '{order.*}', 'none', NULL, NULL, true, '{1}', '{}'),
	       ('limited', '${\ $url->('/ok/limited')}', '{app.*}', 'standard', NULL, 5, false, '{}', '{}'),
	       ('gone', '${\ $url->('/status/410')}', '{app.gone}', 'standard', NULL, NULL, false, '{}', '{}');
	INSERT INTO webhook.endpoints (name, url, event_types, transform)
	VALUES ('transformed', '${\ $url->('/ok/transformed')}', '{app.*}', 'public.to_text');

	INSERT INTO public.orders SELECT i, 'new', i * 1.5, 'n' || i FROM generate_series(1, 20) i;
	INSERT INTO public.customers SELECT i, 'c' || i, 'c' || i || '\@example.com', i % 2 = 0
	  FROM generate_series(1, 20) i;
	SELECT webhook.send('app.' || t, jsonb_build_object('i', i))
	  FROM generate_series(1, 20) i, unnest('{created,gone,paid}'::text[]) t;
});
ok(poll_until($node, $db, "SELECT count(*) > 0 FROM webhook.deliveries WHERE status = 'succeeded'", 't', 60),
	'the worker delivers before fuzzing');

# Run sqlsmith; stop it as soon as the server log shows a crash, rather than
# letting it retry against a restarting server.  Returns its exit status.
sub run_sqlsmith
{
	my ($cmd, $dump, $err) = @_;
	my $offset = -s $node->logfile;
	my $h = IPC::Run::start($cmd, '<', \undef, '>', $dump, '2>', $err);
	while ($h->pumpable)
	{
		my $log = substr(slurp_file($node->logfile), $offset);
		if ($log =~ /terminated by signal|was terminated by exception|terminating any other active server processes/)
		{
			$h->kill_kill(grace => 1);
			return -1;
		}
		$h->pump_nb;
		sleep 0.5;
	}
	$h->finish;
	return $? >> 8;
}

my $started = postmaster_started($node);
my $total = 0;
for my $role ('app', 'ops', $node->safe_psql('postgres', 'SELECT current_user'))
{
	my $target = sprintf('host=%s port=%d dbname=%s user=%s',
		$node->host, $node->port, $db, $role);
	# A crashing query is in the server log ("Failed process was running");
	# SQLSMITH_DUMP=1 also keeps every query (about 3 kB each) next to it.
	my $dump = $ENV{SQLSMITH_DUMP}
	  ? "$PostgreSQL::Test::Utils::log_path/sqlsmith_$role.sql" : '/dev/null';
	my $err = '';
	my @cmd = ($sqlsmith, "--target=$target", "--seed=$seed", "--max-queries=$queries",
		'--exclude-catalog', '--verbose', ($ENV{SQLSMITH_DUMP} ? '--dump-all-queries' : ()));
	my $log_offset = -s $node->logfile;
	my $rc = run_sqlsmith(\@cmd, $dump, \$err);
	if ($rc < 0)
	{
		my @why = (substr(slurp_file($node->logfile), $log_offset)
			  =~ /^.*(?:terminated by signal|Failed process was running).*$/mg);
		fail("sqlsmith as $role: the server crashed");
		diag(join "\n", @why);
		poll_until($node, $db, 'SELECT 1', '1', 120);
		assert_server_intact($node, $started, "sqlsmith as $role");
		last;
	}
	my ($n) = ($err =~ /.*queries:\s*(\d+)/s);
	$n //= 0;
	$total += $n;
	note("sqlsmith as $role, seed $seed: exit $rc, $n queries");
	ok($n > 0, "sqlsmith as $role ran queries") or diag("stderr: $err");

	assert_server_intact($node, $started, "sqlsmith as $role");
	psql("DELETE FROM webhook.endpoints WHERE name = 'canary'");
	canary_arrives($node, $db, $r, "after sqlsmith as $role");
}
diag("sqlsmith ran $total queries (seed $seed, up to $queries per role)");

$r->stop;
$node->stop;
done_testing();
