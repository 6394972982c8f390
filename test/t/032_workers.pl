# webhook.workers = 2: two delivery workers share one database's queue.
# Either may read new events (they take turns on the position row); each
# claims only the deliveries of the endpoints that webhook._worker_of gives
# it.  So no delivery is claimed by both, an ordered endpoint keeps its
# order, and a worker that is terminated holds up only its own endpoints
# until the launcher starts it again.
use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin";
use WebhookTest;
use PostgreSQL::Test::Utils;
use Test::More;
use JSON::PP ();
use Time::HiRes qw(time sleep);

my $r = start_receiver();
my $node = node_with_webhook('workers', 'webhook.workers' => 2);
sub psql { return $node->safe_psql('postgres', $_[0]); }
psql('CREATE EXTENSION webhook');

my $workers_sql = "SELECT string_agg(application_name, ',' ORDER BY application_name) FROM pg_stat_activity
                    WHERE backend_type = 'webhook delivery worker' AND datname = 'postgres'";
ok(poll_until($node, 'postgres', $workers_sql, 'webhook delivery worker 0,webhook delivery worker 1'),
	'two delivery workers run for the database, numbered 0 and 1');

# Six endpoints, ids 1-6: three for each worker; endpoint 5 is ordered.
for my $i (1 .. 6)
{
	psql(sprintf(q{INSERT INTO webhook.endpoints (id, name, url, event_types, ordered)
	               VALUES (%d, 'ep%d', '%s', '{w.*}', %s)},
		$i, $i, $r->url("/ep$i"), $i == 5 ? 'true' : 'false'));
}
is(psql('SELECT string_agg(webhook._worker_of(id, 2)::text, \',\' ORDER BY id) FROM webhook.endpoints'),
	'1,0,1,0,1,0', 'each endpoint belongs to one worker');

# Arrivals per endpoint: the list of "n" in the order they came.
sub arrivals
{
	my %by;
	for my $req (@{ requests($r) })
	{
		my ($ep) = $req->{path} =~ m{^/ep(\d+)} or next;
		my $n = eval { JSON::PP::decode_json($req->{body})->{data}{n} };
		push @{ $by{$ep} }, $n if defined $n;
	}
	return \%by;
}

sub wait_arrivals
{
	my ($total) = @_;
	my $deadline = time + 90;
	while (time < $deadline)
	{
		my $by = arrivals();
		my $got = 0;
		$got += scalar @{ $by->{$_} } for keys %$by;
		return $by if $got >= $total;
		sleep 0.2;
	}
	return arrivals();
}

# Every (endpoint, n) exactly once, for n in $from .. $to.
sub exactly_once
{
	my ($by, $from, $to) = @_;
	for my $ep (1 .. 6)
	{
		my %seen;
		$seen{$_}++ for grep { $_ >= $from && $_ <= $to } @{ $by->{$ep} // [] };
		for my $n ($from .. $to)
		{
			return "endpoint $ep, event $n: " . ($seen{$n} // 0) . ' requests' if ($seen{$n} // 0) != 1;
		}
	}
	return '';
}

# --- 200 events in four transactions: 1,200 deliveries --------------------------
for my $k (0 .. 3)
{
	psql("SELECT webhook.send('w.e', jsonb_build_object('n', g)) FROM generate_series($k * 50 + 1, $k * 50 + 50) g");
}
my $by = wait_arrivals(1200);
is(exactly_once($by, 1, 200), '', 'both workers together: every delivery exactly once');
is(join(',', @{ $by->{5} // [] }), join(',', 1 .. 200), 'the ordered endpoint got its events in order');
ok(poll_until($node, 'postgres',
		"SELECT count(*) FILTER (WHERE status = 'succeeded') || '/' || count(*) FROM webhook.deliveries", '1200/1200'),
	'the deliveries view shows all 1,200 succeeded');
is(psql("SELECT attempts, succeeded FROM webhook.worker_stats WHERE database = 'postgres'"), '1200|1200',
	'worker_stats adds up both workers');

# --- worker 1 terminated: its endpoints wait for it, worker 0's do not ------------
my $pid1 = psql("SELECT pid FROM pg_stat_activity WHERE application_name = 'webhook delivery worker 1'");
psql("SELECT pg_terminate_backend($pid1)");
ok(poll_until($node, 'postgres', "SELECT count(*) FROM pg_stat_activity WHERE pid = $pid1", '0'),
	'worker 1 terminated');
psql("SELECT webhook.send('w.e', jsonb_build_object('n', g)) FROM generate_series(201, 250) g");
# Worker 0's endpoints (2, 4, 6) get theirs whether worker 1 is back or not.
my $deadline = time + 60;
my $mine = 0;
while (time < $deadline)
{
	$by = arrivals();
	$mine = grep { $_ > 200 } map { @{ $by->{$_} // [] } } (2, 4, 6);
	last if $mine >= 150;
	sleep 0.1;
}
is($mine, 150, "worker 0's endpoints get the new events while worker 1 is away");
# If worker 1 is still away now, nothing of its endpoints can have been sent.
my $back = psql("SELECT count(*) FROM pg_stat_activity WHERE application_name = 'webhook delivery worker 1'");
my $theirs = grep { $_ > 200 } map { @{ $by->{$_} // [] } } (1, 3, 5);
if ($back eq '0')
{
	is($theirs, 0, "worker 1's endpoints are not taken over by worker 0");
}
else
{
	pass("worker 1 was back before the check (its endpoints had $theirs)");
}
ok(poll_until($node, 'postgres', $workers_sql, 'webhook delivery worker 0,webhook delivery worker 1'),
	'the launcher starts worker 1 again');
$by = wait_arrivals(1500);
is(exactly_once($by, 201, 250), '', 'after the restart every new delivery arrived exactly once');
is(join(',', grep { $_ > 200 } @{ $by->{5} // [] }), join(',', 201 .. 250), 'and in order on the ordered endpoint');

# --- several workers also change nothing for an event nobody subscribes to -------
is(psql("SELECT count(*) FROM webhook.queue_positions"), '1', 'the workers share one queue position');

$node->stop;

# --- without shared_preload_libraries ----------------------------------------------
# webhook.workers is a postmaster setting, defined only while preloading:
# a library loaded later (CREATE EXTENSION on a server that does not preload
# it) must not define it, or PostgreSQL ends the session.
my $plain = PostgreSQL::Test::Cluster->new('no_preload');
$plain->init;
$plain->start;
my ($ret, $out, $err) = $plain->psql('postgres', 'CREATE EXTENSION webhook');
is($ret, 0, 'CREATE EXTENSION works on a server that does not preload the library');
is($plain->safe_psql('postgres', q{SELECT webhook.send('w.e', '{}') IS NOT NULL}), 't', 'send() queues an event there');
unlike(slurp_file($plain->logfile), qr/FATAL|PANIC/, 'no session ended');
$plain->stop;

done_testing();
