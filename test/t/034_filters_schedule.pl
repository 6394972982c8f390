# Content filters and scheduled events through the worker (issue 14).
# Endpoints with SQL/JSON path filters over the payload get exactly the
# events their filter passes, from send() and from a watched table; the
# events a filter cannot judge go nowhere and are counted.  An event sent
# with deliver_at arrives no earlier than that time, also when the worker is
# terminated while it waits; a cancelled one never arrives.
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
my $node = node_with_webhook('filters');
$node->safe_psql('postgres', 'CREATE EXTENSION webhook');
sub psql { return $node->safe_psql('postgres', $_[0]); }

my %filters = (
	eur => q{$.amount > 100 && $.currency == "EUR"},
	vip => q{exists($.tags ? (@ == "vip"))},
	strict => q{strict $.amount > 300},
	all => undef);
for my $name (sort keys %filters)
{
	psql(sprintf(q{INSERT INTO webhook.endpoints (name, url, event_types, filter) VALUES ('%s', '%s', '{order.*}', %s)},
		$name, $r->url("/$name"),
		defined $filters{$name} ? "'" . ($filters{$name} =~ s/'/''/gr) . "'" : 'NULL'));
}

# --- filters on send() --------------------------------------------------------
# Forty orders: amount 20 n, EUR for odd n, tags vip every fifth; order 7 has
# no amount, order 13 a string for one, and order 40 is not an object at all.
my (%expect, $unjudged_strict, $unjudged_eur);
my @payloads;
for my $n (1 .. 40)
{
	my %p = (n => $n, amount => 20 * $n, currency => $n % 2 ? 'EUR' : 'USD');
	$p{tags} = [ 'vip', 'gold' ] if $n % 5 == 0;
	delete $p{amount} if $n == 7;
	$p{amount} = 'lots' if $n == 13;
	my $json = $n == 40 ? '[40]' : JSON::PP->new->canonical->encode(\%p);
	push @payloads, $json;
	push @{ $expect{all} }, $n;
	next if $n == 40;
	push @{ $expect{vip} }, $n if $p{tags};
	if (!defined $p{amount} || $p{amount} eq 'lots')
	{
		# strict: a missing key or a string raises (unknown); lax: a
		# missing key is false, a string compared with a number unknown.
		$unjudged_strict++;
		$unjudged_eur++ if defined $p{amount} && $p{currency} eq 'EUR';
		next;
	}
	push @{ $expect{eur} }, $n if $p{amount} > 100 && $p{currency} eq 'EUR';
	push @{ $expect{strict} }, $n if $p{amount} > 300;
}
$unjudged_strict++;    # order 40: a strict path over an array raises
psql(join ";\n", map { "SELECT webhook.send('order.created', '$_')" } @payloads);

my $total = 0;
$total += scalar @{ $expect{$_} } for keys %expect;
my $got = wait_for_requests($r, $total, 60);
ok(poll_until($node, 'postgres',
		"SELECT count(*) FROM webhook.deliveries WHERE status NOT IN ('succeeded')", '0', 60),
	'filters: every delivery made succeeded');
$got = requests($r);
my %seen;
for my $req (@$got)
{
	my ($name) = $req->{path} =~ m{^/(\w+)};
	my $data = JSON::PP::decode_json($req->{body})->{data};
	push @{ $seen{$name} }, ref $data eq 'HASH' ? $data->{n} : $data->[0];
}
for my $name (sort keys %filters)
{
	is(join(',', sort { $a <=> $b } @{ $seen{$name} // [] }), join(',', @{ $expect{$name} // [] }),
		"filters: $name gets exactly the events its filter passes");
}
is(psql(q{SELECT string_agg(name || ':' || filter_errors, ',' ORDER BY name) FROM webhook.endpoint_health}),
	"all:0,eur:$unjudged_eur,strict:$unjudged_strict,vip:0",
	'filters: the events a filter cannot judge are counted in endpoint_health');

# --- filters on a watched table, over the payload's record -------------------
$r->stop;
$r = start_receiver();
psql(q{CREATE TABLE public.items (id int PRIMARY KEY, price int)});
psql(q{SELECT webhook.watch('public.items', 'item')});
psql(sprintf(q{UPDATE webhook.endpoints SET url = '%s' || name}, $r->url('/')));
psql(q{UPDATE webhook.endpoints SET event_types = '{item.*}',
                      filter = CASE name WHEN 'eur' THEN '$.record.price > 50 && $.operation == "INSERT"'
                                         WHEN 'vip' THEN '$.old_record.price < $.record.price' END::jsonpath
                WHERE name IN ('eur', 'vip')});
psql(q{UPDATE webhook.endpoints SET active = false WHERE name IN ('all', 'strict')});
psql(q{INSERT INTO public.items SELECT g, 10 * g FROM generate_series(1, 10) g});
psql(q{UPDATE public.items SET price = price + CASE WHEN id % 2 = 0 THEN 5 ELSE -5 END});
# eur: the inserts of price > 50 (ids 6..10); vip: the updates that raised
# the price (the even ids).
$got = wait_for_requests($r, 10, 60);
ok(poll_until($node, 'postgres',
		"SELECT count(*) FROM webhook.deliveries WHERE status NOT IN ('succeeded')", '0', 60),
	'watched table: every delivery made succeeded');
%seen = ();
for my $req (@{ requests($r) })
{
	my ($name) = $req->{path} =~ m{^/(\w+)};
	my $data = JSON::PP::decode_json($req->{body})->{data};
	push @{ $seen{$name} }, "$data->{operation}:$data->{record}{id}";
}
is(join(',', sort @{ $seen{eur} // [] }), join(',', sort map { "INSERT:$_" } 6 .. 10),
	'watched table: a filter on the record gets the inserts it passes');
is(join(',', sort @{ $seen{vip} // [] }), join(',', sort map { "UPDATE:$_" } 2, 4, 6, 8, 10),
	'watched table: a filter comparing old and new rows gets the updates it passes');

# --- scheduled events -----------------------------------------------------------
psql(q{UPDATE webhook.endpoints SET filter = NULL, event_types = '{sched.*}', active = (name = 'all')});
my $soon = psql(q{SELECT webhook.send('sched.soon', '{"k": "soon"}', deliver_at => clock_timestamp() + interval '3 seconds')});
my $soon_at = psql("SELECT extract(epoch FROM deliver_at) FROM webhook.events WHERE id = '$soon'");
my $later = psql(q{SELECT webhook.send('sched.later', '{"k": "later"}', deliver_at => now() + interval '1 hour')});
ok(poll_until($node, 'postgres',
		"SELECT string_agg(status, ',') FROM webhook.deliveries WHERE event_id = '$later' AND id IS NOT NULL",
		'scheduled', 60),
	'scheduled: read by the worker, its delivery is scheduled');
is(psql("SELECT next_attempt_at = (SELECT deliver_at FROM webhook.events WHERE id = '$soon')
           FROM webhook.delivery_state WHERE event_id = '$soon'"), 't',
	'scheduled: the delivery is due at deliver_at');
# The worker sleeps until then; terminated meanwhile, its successor keeps
# the time.
my $pid = worker_pid($node);
psql("SELECT pg_terminate_backend($pid)");
ok(wait_status($node, $soon, 'succeeded', 60), 'scheduled: delivered, after the worker was terminated');
my ($req) = grep { $_->{path} =~ m{^/all} && $_->{body} =~ /"soon"/ } @{ requests($r) };
ok($req && $req->{t} >= $soon_at, 'scheduled: it arrived no earlier than deliver_at')
  or diag('arrived at ' . ($req ? $req->{t} : 'never') . ", deliver_at $soon_at");

is(psql("SELECT count(*) FROM webhook.cancel('$later')"), '1', 'cancel: one delivery cancelled');
is(psql("SELECT string_agg(status, ',') FROM webhook.deliveries WHERE event_id = '$later'"), 'cancelled',
	'cancel: the delivery shows as cancelled');
# A later event that arrives shows that the worker went on, without it.
my $after = psql(q{SELECT webhook.send('sched.after', '{"k": "after"}')});
ok(wait_status($node, $after, 'succeeded', 60), 'cancel: later events are delivered');
is(scalar(grep { $_->{body} =~ /"later"/ } @{ requests($r) }), 0, 'cancel: the cancelled event was never sent');

$r->stop;
done_testing();
