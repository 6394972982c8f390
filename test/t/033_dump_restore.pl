# pg_dump of a database whose worker has delivered some events and not yet
# read others, restored into another cluster (other transaction ids) and
# into another database of the same cluster: the events the source had
# delivered are not sent again, and those it had not read are sent once.
# Restored events keep their source's txids, which mean nothing in the new
# database: the restore sets them aside with the dumped position, and the
# worker settles one against the other (webhook._settle_restored).
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
my $src = node_with_webhook('dump_src');
$src->safe_psql('postgres', 'CREATE DATABASE app');
sub app { return $src->safe_psql('app', $_[0]); }
app('CREATE EXTENSION webhook');
app(sprintf(q{INSERT INTO webhook.endpoints (name, url, event_types, signing) VALUES ('dumped', '%s', '{dump.*}', 'none')},
	$r->url('/dumped')));

# The "n" of every request that arrived, with how many times each came.
sub arrivals
{
	my %count;
	for my $req (@{ requests($r) })
	{
		my $n = eval { JSON::PP::decode_json($req->{body})->{data}{n} };
		$count{$n}++ if defined $n;
	}
	return \%count;
}

sub wait_count
{
	my ($want, $pred) = @_;
	my $deadline = time + 60;
	my $got = 0;
	while (time < $deadline)
	{
		$got = grep { $pred->($_) } keys %{ arrivals() };
		return $got if $got >= $want;
		sleep 0.2;
	}
	return $got;
}

# Ten events delivered before the dump.
app(q{SELECT webhook.send('dump.e', jsonb_build_object('n', g)) FROM generate_series(1, 10) g});
is(wait_count(10, sub { $_[0] <= 10 }), 10, 'the source delivers the first ten events');
ok(poll_until($src, 'app', q{SELECT count(*) FILTER (WHERE status = 'succeeded') FROM webhook.deliveries}, '10'),
	'and has recorded them');

# Hold the worker's read (it waits for the position row), then commit ten
# more: committed, not read, when the dump is taken.
my $hold = $src->background_psql('app');
$hold->query_safe('BEGIN; SELECT worker FROM webhook.queue_positions FOR UPDATE');
app(q{SELECT webhook.send('dump.e', jsonb_build_object('n', g)) FROM generate_series(11, 20) g});
is(app(q{SELECT count(*) FROM webhook.delivery_state}), '10', 'the ten new events are unread');

my $file = $PostgreSQL::Test::Utils::tmp_check . '/dump_restore.sql';
my ($out, $err) = run_command([ 'pg_dump', '-f', $file, '-d', $src->connstr('app') ]);
is($err, '', 'pg_dump runs without a message');
like(slurp_file($file), qr/COPY webhook\.queue_positions/, 'the dump carries the worker\'s position');

# The source stops while its worker still waits, before it can send the
# unread ones: whatever arrives from now on comes from a restored database.
$src->stop('immediate');
eval { $hold->quit };
my %before = %{ arrivals() };

# --- another cluster, whose transaction ids are elsewhere -------------------------
# The same master key (the sealed secrets travel in the dump), as a DBA
# moving a database would set it.
my $dst = node_with_webhook('dump_dst', 'webhook.master_key_file' => $src->data_dir . '/webhook_master.key');
$dst->safe_psql('postgres', 'CREATE DATABASE app');
# Move this cluster's txids on, so that no source txid means the same here.
$dst->safe_psql('postgres', 'CREATE TABLE burn (i int)');
$dst->safe_psql('postgres', 'INSERT INTO burn VALUES (1)') for 1 .. 30;
($out, $err) = run_command([ 'psql', '-X', '-q', '-v', 'ON_ERROR_STOP=1', '-d', $dst->connstr('app'), '-f', $file ]);
is($err, '', 'the dump restores into another cluster without an error or warning');

is(wait_count(10, sub { $_[0] > 10 }), 10, 'the ten events the source had not read arrive from the restored database');
ok(poll_until($dst, 'app', q{SELECT count(*) FILTER (WHERE status = 'succeeded') || '/' || count(*) FROM webhook.deliveries}, '20/20'),
	'the restored database shows twenty deliveries, all succeeded');
# Give a wrongly re-read event every chance to show up.
$dst->safe_psql('app', q{SELECT webhook.send('dump.other', '{}')});
ok(poll_until($dst, 'app', q{SELECT count(*) FROM webhook.restored_events}, '0'), 'nothing is left to settle');
my $after = arrivals();
is(join(',', map { $after->{$_} - ($before{$_} // 0) } 1 .. 10), join(',', (0) x 10),
	'the ten the source had delivered are not sent again');
is(join(',', map { $after->{$_} } 11 .. 20), join(',', (1) x 10), 'the ten unread ones are sent once each');

# New events in the restored database are read as usual.
$dst->safe_psql('app', q{SELECT webhook.send('dump.e', '{"n": 21}')});
is(wait_count(21, sub { 1 }), 21, 'a new event in the restored database arrives');
is($dst->safe_psql('app', q{SELECT count(*) FROM webhook.queue_positions}), '1', 'the restored database keeps one position of its own');

# --- the same cluster, another database ------------------------------------------
$dst->safe_psql('postgres', 'CREATE DATABASE app2');
my $dump2 = $PostgreSQL::Test::Utils::tmp_check . '/dump_restore2.sql';
# A dump of the restored database, with everything delivered: restored into
# a database of the same cluster (the same txids), nothing is sent again.
($out, $err) = run_command([ 'pg_dump', '-f', $dump2, '-d', $dst->connstr('app') ]);
is($err, '', 'pg_dump of the restored database');
my $n_before = scalar @{ requests($r) };
($out, $err) = run_command([ 'psql', '-X', '-q', '-v', 'ON_ERROR_STOP=1', '-d', $dst->connstr('app2'), '-f', $dump2 ]);
is($err, '', 'restored into another database of the same cluster');
$dst->safe_psql('app2', q{SELECT webhook.send('dump.e', '{"n": 22}')});
is(wait_count(22, sub { 1 }), 22, 'the new event there arrives');
ok(poll_until($dst, 'app2', q{SELECT count(*) FROM webhook.restored_events}, '0'), 'and the restored ones are settled');
is(scalar @{ requests($r) } - $n_before, 1, 'only the new event was sent: nothing restored went out again');

$dst->stop;
done_testing();
