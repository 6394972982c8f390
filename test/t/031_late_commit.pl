# The queue's reader never skips an event and never reads one twice.  The
# application's transaction writes only the event; the worker reads events
# by transaction snapshots (src/queue.c, webhook._read_events).  A
# transaction that began before others and commits after them, with an older
# txid, is read once it commits; one that rolls back (whole, to a savepoint,
# or prepared and then rolled back) never is; a prepared transaction is read
# once COMMIT PREPARED makes it visible.  And a worker terminated while such
# a transaction is open loses nothing, and an event committed while a window
# stays open over many turns is read once it closes, without another commit.
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
my $node = node_with_webhook('late', max_prepared_transactions => 5);
$node->safe_psql('postgres', 'CREATE EXTENSION webhook');
sub psql { return $node->safe_psql('postgres', $_[0]); }

psql(sprintf(q{INSERT INTO webhook.endpoints (name, url, event_types) VALUES ('late', '%s', '{late.*}')},
	$r->url('/late')));

# How many requests carried each event id, by the payload's "n".
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

sub arrived
{
	my ($n, $timeout_s) = @_;
	my $deadline = time + ($timeout_s // 30);
	while (time < $deadline)
	{
		return 1 if arrivals()->{$n};
		sleep 0.2;
	}
	return 0;
}

# Wait until every event sent so far has a succeeded delivery: the worker
# has read past them.
sub drained
{
	return poll_until($node, 'postgres',
		"SELECT count(*) FILTER (WHERE status <> 'succeeded') FROM webhook.deliveries", '0', 60);
}

# --- a transaction that commits late, with an older txid ---------------------
my $a = $node->background_psql('postgres');
$a->query_safe("BEGIN; SELECT pg_current_xact_id(); SELECT webhook.send('late.a', '{\"n\": \"a\"}')");
# B commits 100 events in five transactions, while A stays open.
for my $k (0 .. 4)
{
	psql("SELECT webhook.send('late.b', jsonb_build_object('n', 'b' || g)) FROM generate_series($k * 20 + 1, $k * 20 + 20) g");
}
ok(arrived('b100'), 'late commit: the later transactions\' events arrive while the older one is open');
ok(drained(), 'late commit: everything committed so far is delivered');
is(arrivals()->{a}, undef, 'late commit: the open transaction\'s event is not sent');
$a->query_safe('COMMIT');
ok(arrived('a'), 'late commit: once it commits, its event arrives, though its txid is older');

# --- a late transaction, while the worker is terminated and restarted ------------
$a->query_safe("BEGIN; SELECT pg_current_xact_id(); SELECT webhook.send('late.k', '{\"n\": \"k\"}')");
psql("SELECT webhook.send('late.b', '{\"n\": \"before-kill\"}')");
ok(arrived('before-kill'), 'worker killed: events before it arrive');
# Everything recorded before the kill, so that nothing may be sent twice.
ok(drained(), 'worker killed: all recorded before the kill');
my $pid = worker_pid($node);
# (kill -9 would restart the whole server, ending the open transaction too.)
psql("SELECT pg_terminate_backend($pid)");
ok(poll_until($node, 'postgres',
		"SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'webhook delivery worker' AND pid <> $pid",
		'1', 60), 'worker killed: a new worker starts');
psql("SELECT webhook.send('late.b', '{\"n\": \"after-kill\"}')");
ok(arrived('after-kill'), 'worker killed: events after it arrive');
$a->query_safe('COMMIT');
ok(arrived('k'), 'worker killed: the transaction open across the kill is delivered once it commits');

# --- rollbacks never arrive; a released savepoint does ---------------------------
$a->query_safe("BEGIN; SELECT webhook.send('late.r', '{\"n\": \"rolled-back\"}'); ROLLBACK");
$a->query_safe("BEGIN; SAVEPOINT s; SELECT webhook.send('late.r', '{\"n\": \"to-savepoint\"}'); ROLLBACK TO s;
	SAVEPOINT t; SELECT webhook.send('late.r', '{\"n\": \"released\"}'); RELEASE t; COMMIT");

# --- prepared transactions: read at COMMIT PREPARED, never after ROLLBACK PREPARED ---
$a->query_safe("BEGIN; SELECT webhook.send('late.p', '{\"n\": \"prepared-commit\"}'); PREPARE TRANSACTION 'p1'");
$a->query_safe("BEGIN; SELECT webhook.send('late.p', '{\"n\": \"prepared-rollback\"}'); PREPARE TRANSACTION 'p2'");
psql("SELECT webhook.send('late.b', '{\"n\": \"while-prepared\"}')");
ok(arrived('while-prepared'), 'prepared: others\' events arrive meanwhile');
is(arrivals()->{'prepared-commit'}, undef, 'prepared: not sent before it commits');
# COMMIT PREPARED from another session: its commit wakes the worker (wake.c).
psql("COMMIT PREPARED 'p1'");
psql("ROLLBACK PREPARED 'p2'");
ok(arrived('prepared-commit'), 'prepared: sent once COMMIT PREPARED commits it, from another session');
ok(arrived('released'), 'savepoint: an event in a released savepoint arrives');
$a->quit;

# --- a commit while the reader's window stays open across turns ------------------
# With pages of 5 events, 1,000 events take 200 turns of one window, whose
# end was taken at the first.  An event committed meanwhile, after that end, is
# read once the window closes, though no later commit wakes the worker.
# (Claims lapse only after 90 s here: the endpoint's timeout is 60 s.)
psql("UPDATE webhook.endpoints SET timeout_ms = 60000 WHERE name = 'late'");
psql('ALTER SYSTEM SET webhook.batch_size = 5');
psql('SELECT pg_reload_conf()');
sleep 1;
psql("SELECT webhook.send('late.w', jsonb_build_object('n', 'w' || g)) FROM generate_series(1, 1000) g");
psql("SELECT webhook.send('late.w', '{\"n\": \"after-window\"}')");
ok(arrived('w1000', 60), 'window: a burst read over many turns arrives');
ok(arrived('after-window', 30),
	'window: an event committed while the window stayed open arrives once it closes, with no later commit');
psql('ALTER SYSTEM RESET webhook.batch_size');
psql('SELECT pg_reload_conf()');

# A last event, then everything settles: nothing rolled back arrived, and
# every event arrived exactly once.
psql("SELECT webhook.send('late.b', '{\"n\": \"last\"}')");
ok(arrived('last'), 'the last event arrives');
ok(drained(), 'every delivery succeeded');
my $count = arrivals();
is(join(',', grep { $count->{$_} } qw(rolled-back to-savepoint prepared-rollback)), '',
	'no rolled-back event arrived');
is(join(',', grep { $count->{$_} != 1 } sort keys %$count), '', 'every event arrived exactly once');
is(scalar(keys %$count), 100 + 8 + 1001, 'all 1,109 committed events arrived');
is(psql("SELECT count(*) FROM webhook.deliveries"), 1109, 'one delivery per committed event');

$r->stop;
$node->stop;
done_testing();
