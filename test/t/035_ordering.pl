# Ordering per key (issue 14), through the worker.  An ordered endpoint
# delivers the events of one ordering key strictly in creation order (the
# next waits until the previous one succeeded or finally failed, retries
# included) and different keys in parallel, up to its max_in_flight.  A key
# whose head keeps failing holds only that key.  A watched table's events
# carry the row's primary key as their ordering key.
use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin";
use WebhookTest;
use PostgreSQL::Test::Utils;
use Test::More;
use JSON::PP ();

my $r = start_receiver();
my $node = node_with_webhook('ordering');
$node->safe_psql('postgres', 'CREATE EXTENSION webhook');
sub psql { return $node->safe_psql('postgres', $_[0]); }

# Requests of one endpoint (by path prefix), in arrival order, as decoded
# bodies with the receiver's count of requests being handled at arrival.
sub arrivals
{
	my ($prefix) = @_;
	return [ map { { data => JSON::PP::decode_json($_->{body})->{data}, active => $_->{active} } }
		  grep { index($_->{path}, $prefix) == 0 } @{ requests($r) } ];
}

# --- an endpoint made ordered while its event waits ------------------------------
# With no ordered endpoint, the worker's claim and next-due query leave out
# their ordered arms.  An endpoint made ordered after its event was read
# must still be sent to when the event comes due: the change wakes the
# worker, whose next read sees an ordered endpoint again.  This runs first,
# while no other endpoint is ordered.
psql(sprintf(q{INSERT INTO webhook.endpoints (name, url, event_types) VALUES ('late', '%s', '{late.*}')},
	$r->url('/late')));
psql(q{SELECT webhook.send('late.e', '{"n": 1}', deliver_at => clock_timestamp() + interval '2 seconds',
                           ordering_key => 'one')});
psql(q{UPDATE webhook.endpoints SET ordered = true WHERE name = 'late'});
ok(poll_until($node, 'postgres',
		q{SELECT count(*) FILTER (WHERE d.status = 'succeeded') FROM webhook.deliveries d
		   JOIN webhook.endpoints e ON e.id = d.endpoint_id WHERE e.name = 'late'}, 1, 60),
	'an endpoint made ordered while its event waits: the event is sent when due');

# --- an endpoint made ordered while its first attempt is out ---------------------
# The read sends an unordered endpoint's new events at once, as first
# attempts (webhook.first_attempts), not as claimed delivery_state rows.
# Made ordered while one is out, the endpoint's next event of that key must
# wait until it is answered.  A receiver of its own, so that its count of
# requests in flight is this endpoint's.
my $r3 = start_receiver();
psql(sprintf(q{INSERT INTO webhook.endpoints (name, url, event_types) VALUES ('switch', '%s', '{switch.*}')},
	$r3->url('/switch/delay/1500/ok')));
psql(q{SELECT webhook.send('switch.e', '{"n": 1}', ordering_key => 'k')});
ok(poll_until($node, 'postgres',
		q{SELECT count(*) FROM webhook.first_attempts f JOIN webhook.endpoints e ON e.id = f.endpoint_id
		   WHERE e.name = 'switch'}, 1, 60),
	'made ordered while out: the first event is a first attempt in flight');
psql(q{UPDATE webhook.endpoints SET ordered = true WHERE name = 'switch'});
psql(q{SELECT webhook.send('switch.e', '{"n": 2}', ordering_key => 'k')});
my $switched = wait_for_requests($r3, 2, 60);
is(join(',', map { JSON::PP::decode_json($_->{body})->{data}{n} } @$switched), '1,2',
	'made ordered while out: both events arrived, in order');
is(join(',', map { $_->{active} } @$switched), '1,1',
	'made ordered while out: the second was sent only after the first was answered');
$r3->stop;

# --- an orphaned first attempt holds its key only for its lease -----------------
# A first attempt whose worker died and whose row nobody took over (it was
# locked when the next worker started) is as lapsed as an old claim: an
# ordered endpoint's later event of the same key still goes.
my $orphan_ep = psql(sprintf(q{INSERT INTO webhook.endpoints (name, url, event_types, ordered)
                               VALUES ('orphan', '%s', '{orphan.*}', true) RETURNING id}, $r->url('/orphan')));
psql(qq{WITH e AS (INSERT INTO webhook.events (event_type, payload, txid) VALUES ('orphan.e', '{"n": 0}', '0')
                   RETURNING id, gen)
        INSERT INTO webhook.first_attempts (event_id, endpoint_id, gen, ordering_key)
        SELECT id, $orphan_ep, gen, 'k' FROM e});
psql(qq{UPDATE webhook.first_attempts SET claimed_at = now() - interval '1 hour' WHERE endpoint_id = $orphan_ep});
psql(q{SELECT webhook.send('orphan.e', '{"n": 1}', ordering_key => 'k')});
ok(poll_until($node, 'postgres',
		qq{SELECT count(*) FROM webhook.delivery_log WHERE endpoint_id = $orphan_ep AND status_code = 200}, 1, 60),
	'an orphaned first attempt older than its lease does not hold its key');

# --- one key of successes goes on at once ----------------------------------------
# Each success of an ordered endpoint lets its key's next event go: recording
# it must lead to a claim, not to a wait for the recorded head's lease (half a
# minute or more) to lapse.  Nothing fails here, the endpoint is never
# full and nothing else is queued (this runs early), so only the ordering
# makes that claim needed.
psql(sprintf(q{INSERT INTO webhook.endpoints (name, url, event_types, ordered)
               VALUES ('chain', '%s', '{chain.*}', true)}, $r->url('/chain')));
psql(q{SELECT count(webhook.send('chain.e', jsonb_build_object('n', n), ordering_key => 'one'))
         FROM generate_series(1, 6) n});
ok(poll_until($node, 'postgres',
		q{SELECT count(*) FILTER (WHERE d.status = 'succeeded') FROM webhook.deliveries d
		   JOIN webhook.endpoints e ON e.id = d.endpoint_id WHERE e.name = 'chain'}, 6, 60),
	'one key of successes: each delivery follows the one before, without waiting for a lease');
is(join(',', map { $_->{data}{n} } @{ arrivals('/chain') }), '1,2,3,4,5,6', 'one key of successes: in order');

# --- 50 keys x 40 events, a slow receiver that fails at random ---------------
# Many quick retries (the test node scales retry delays to milliseconds), so
# that nothing fails for good.
psql(sprintf(q{INSERT INTO webhook.endpoints (name, url, event_types, ordered, max_in_flight, retry_schedule_s)
               VALUES ('ordered', '%s', '{ord.*}', true, 16, array_fill(1, ARRAY[40]))},
	$r->url('/ordered/delay/20/fail-percent/20')));
my ($keys, $per_key) = (50, 40);
psql(join ";\n",
	map { "SELECT count(webhook.send('ord.e', jsonb_build_object('k', k, 'n', $_), ordering_key => 'key-' || k))
	         FROM generate_series(1, $keys) k" } 1 .. $per_key);
ok(poll_until($node, 'postgres',
		q{SELECT count(*) FILTER (WHERE d.status = 'succeeded') || '/' || count(*) FROM webhook.deliveries d
		   JOIN webhook.endpoints e ON e.id = d.endpoint_id WHERE e.name = 'ordered'},
		($keys * $per_key) . '/' . ($keys * $per_key), 180),
	'ordered: every delivery succeeded');
my $got = arrivals('/ordered/');
my (%seq, $max_active, $failed_some);
for my $a (@$got)
{
	push @{ $seq{ $a->{data}{k} } }, $a->{data}{n};
	$max_active = $a->{active} if !defined $max_active || $a->{active} > $max_active;
}
my @out_of_order;
for my $k (1 .. $keys)
{
	my $s = $seq{$k} // [];
	for my $i (1 .. $#$s)
	{
		push @out_of_order, "key $k: $s->[$i - 1] then $s->[$i]" if $s->[$i] < $s->[ $i - 1 ];
	}
	my %has = map { $_ => 1 } @$s;
	push @out_of_order, "key $k: missing " . join(',', grep { !$has{$_} } 1 .. $per_key)
	  if keys %has != $per_key;
}
is(join('; ', @out_of_order), '',
	'ordered: per key, every event arrived, in order (a retry repeats the last one, never overtakes it)');
cmp_ok(scalar @$got, '>', $keys * $per_key, 'ordered: the receiver failed some requests, which were retried');
cmp_ok($max_active, '>', 1, 'ordered: more than one request was in flight at a time (different keys)');
is(psql(q{SELECT count(*) FROM webhook.delivery_log l JOIN webhook.endpoints e ON e.id = l.endpoint_id
           WHERE e.name = 'ordered' AND l.error_class IS NOT NULL}) > 0 ? 't' : 'f', 't',
	'ordered: the failed attempts are in the log');

# --- a stuck key holds only itself ---------------------------------------------
psql(sprintf(q{INSERT INTO webhook.endpoints (name, url, event_types, ordered, retry_schedule_s)
               VALUES ('stuck', '%s', '{stuck.*}', true, array_fill(3600, ARRAY[20]))},
	$r->url('/stuck/fail-body/poison')));
psql(q{SELECT webhook.send('stuck.e', '{"k": "a", "n": 1, "x": "poison"}', ordering_key => 'a');
       SELECT webhook.send('stuck.e', '{"k": "a", "n": 2}', ordering_key => 'a');
       SELECT webhook.send('stuck.e', jsonb_build_object('k', 'b', 'n', n), ordering_key => 'b')
         FROM generate_series(1, 5) n;
       SELECT webhook.send('stuck.e', '{"k": "none", "n": 1}')});
ok(poll_until($node, 'postgres',
		q{SELECT count(*) FROM webhook.deliveries d JOIN webhook.endpoints e ON e.id = d.endpoint_id
		   WHERE e.name = 'stuck' AND d.status = 'succeeded'}, '6', 60),
	'stuck key: the other key and the keyless event are delivered');
ok(poll_until($node, 'postgres',
		q{SELECT blocked_keys || ' ' || (oldest_blocked_at IS NOT NULL) FROM webhook.endpoint_health WHERE name = 'stuck'},
		'1 true', 60),
	'stuck key: endpoint_health shows one blocked key');
my @a = map { "$_->{data}{k}$_->{data}{n}" } @{ arrivals('/stuck/') };
is(scalar(grep { $_ eq 'a2' } @a), 0, 'stuck key: the key\'s next event waits behind its failing head');
is(psql(q{SELECT string_agg(d.status, ',' ORDER BY d.id) FROM webhook.deliveries d
           JOIN webhook.endpoints e ON e.id = d.endpoint_id WHERE e.name = 'stuck' AND d.ordering_key = 'a'}),
	'pending,pending', 'stuck key: both of its deliveries are pending');

# --- retry() of an earlier delivery never puts two of one key in flight --------
# A receiver of its own, so that its count of requests in flight is this
# endpoint's.  Event 1 succeeds, event 2 is in flight (1.5 s), and then
# event 1 is retried: it waits until event 2 is done.
my $r2 = start_receiver();
psql(sprintf(q{INSERT INTO webhook.endpoints (name, url, event_types, ordered, max_in_flight)
               VALUES ('again', '%s', '{again.*}', true, 4)}, $r2->url('/again/delay/1500')));
psql(q{SELECT webhook.send('again.e', jsonb_build_object('n', n), ordering_key => 'k') FROM generate_series(1, 3) n});
my $first = psql(q{SELECT d.id FROM webhook.deliveries d JOIN webhook.endpoints e ON e.id = d.endpoint_id
                    WHERE e.name = 'again' ORDER BY d.id LIMIT 1});
ok(poll_until($node, 'postgres',
		q{SELECT string_agg(CASE WHEN d.claimed_at IS NOT NULL THEN 'flight' ELSE d.status END, ',' ORDER BY d.id)
		    FROM webhook.deliveries d JOIN webhook.endpoints e ON e.id = d.endpoint_id WHERE e.name = 'again'},
		'succeeded,flight,pending', 60),
	'retry: the first event succeeded and the second is in flight');
psql("SELECT webhook.retry($first)");
ok(poll_until($node, 'postgres',
		q{SELECT count(*) FILTER (WHERE d.status = 'succeeded') FROM webhook.deliveries d
		   JOIN webhook.endpoints e ON e.id = d.endpoint_id WHERE e.name = 'again'}, '3', 60),
	'retry: all three succeeded');
my @again = @{ requests($r2) };
is(scalar(@again), 4, 'retry: four requests, the retried one among them');
is(join(',', grep { $_ > 1 } map { $_->{active} } @again), '', 'retry: never two requests of the key at once');
$r2->stop;

# --- a watched table: the row's primary key is the ordering key ----------------
psql(q{CREATE TABLE public.accounts (region text, id int, balance int, PRIMARY KEY (region, id))});
psql(q{SELECT webhook.watch('public.accounts', 'account')});
psql(sprintf(q{INSERT INTO webhook.endpoints (name, url, event_types, ordered, max_in_flight)
               VALUES ('rows', '%s', '{account.*}', true, 8)}, $r->url('/rows/delay/10')));
psql(q{INSERT INTO public.accounts SELECT 'eu', g, 0 FROM generate_series(1, 10) g});
psql(join ";\n", map { "UPDATE public.accounts SET balance = $_" } 1 .. 5);
psql(q{DELETE FROM public.accounts WHERE id <= 5});
is(psql(q{SELECT string_agg(DISTINCT ordering_key, ',') FROM webhook.events
           WHERE event_type LIKE 'account.%' AND coalesce(payload -> 'record', payload -> 'old_record') ->> 'id' = '3'}),
	'public.accounts:["eu", 3]', 'watched table: the ordering key is the table and its primary key');
ok(poll_until($node, 'postgres',
		q{SELECT count(*) FILTER (WHERE d.status = 'succeeded') FROM webhook.deliveries d
		   JOIN webhook.endpoints e ON e.id = d.endpoint_id WHERE e.name = 'rows'}, 10 + 50 + 5, 60),
	'watched table: every change delivered');
my (%rows, @bad);
for my $a (@{ arrivals('/rows/') })
{
	my $d = $a->{data};
	my $id = ($d->{record} // $d->{old_record})->{id};
	my $step = $d->{operation} eq 'INSERT' ? 0 : $d->{operation} eq 'DELETE' ? 99 : $d->{record}{balance};
	push @bad, "row $id: $rows{$id} then $step" if defined $rows{$id} && $step < $rows{$id};
	$rows{$id} = $step;
}
is(join('; ', @bad), '', 'watched table: each row\'s changes arrived in order');

# --- synchronous_commit off, set by a DBA ------------------------------------
# A claim of an ordered delivery is flushed before its requests leave
# whatever the setting says; a claim of unordered ones only is then not
# flushed by the worker at all (README, "At least once").  Unordered events
# first, on their own, so that their claims hold no ordered delivery; then
# ordered ones: both paths deliver everything, each key in order.  (What
# the flush protects, the order after a server crash, no test can time.)
psql(q{ALTER SYSTEM SET synchronous_commit = off});
psql(q{SELECT pg_reload_conf()});
ok(poll_until($node, 'postgres', 'SHOW synchronous_commit', 'off', 30),
	'synchronous_commit off: the server reloaded it');
psql(sprintf(q{INSERT INTO webhook.endpoints (name, url, event_types, ordered)
               VALUES ('async-ordered', '%s', '{async.ordered}', true),
                      ('async-unordered', '%s', '{async.unordered}', false)},
		$r->url('/async-ordered'), $r->url('/async-unordered')));
sub async_succeeded
{
	my ($name, $n) = @_;
	return poll_until($node, 'postgres',
		qq{SELECT count(*) FILTER (WHERE d.status = 'succeeded') FROM webhook.deliveries d
		    JOIN webhook.endpoints e ON e.id = d.endpoint_id WHERE e.name = '$name'}, $n, 60);
}
psql(q{SELECT count(webhook.send('async.unordered', jsonb_build_object('n', n))) FROM generate_series(1, 10) n});
ok(async_succeeded('async-unordered', 10), 'synchronous_commit off: every unordered delivery succeeded');
is(scalar @{ arrivals('/async-unordered') }, 10, 'synchronous_commit off: the unordered endpoint got all ten');
psql(q{SELECT count(webhook.send('async.ordered', jsonb_build_object('n', n), ordering_key => 'k' || (n % 2)))
         FROM generate_series(1, 10) n});
ok(async_succeeded('async-ordered', 10), 'synchronous_commit off: every ordered delivery succeeded');
my @async = map { $_->{data}{n} } @{ arrivals('/async-ordered') };
is(join(',', grep { $_ % 2 == 0 } @async), '2,4,6,8,10', 'synchronous_commit off: key k0 in order');
is(join(',', grep { $_ % 2 == 1 } @async), '1,3,5,7,9', 'synchronous_commit off: key k1 in order');
psql(q{ALTER SYSTEM RESET synchronous_commit});
psql(q{SELECT pg_reload_conf()});

$r->stop;
done_testing();
