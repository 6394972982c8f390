# Basic delivery: one webhook.send() arrives as a signed POST with the exact
# event body and the endpoint's extra headers, is logged, and a rolled-back
# send never arrives.  Also: hmac-sha256 signing, the worker's presence in
# pg_stat_activity, and keep-alive connection reuse.
use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin";
use WebhookTest;
use PostgreSQL::Test::Utils;
use Test::More;

ok(self_test_vectors(), 'signature verifiers pass the published test vectors');

my $r = start_receiver();
my $node = node_with_webhook('delivery');

$node->safe_psql('postgres', 'CREATE EXTENSION webhook');

ok( poll_until(
		$node, 'postgres',
		"SELECT count(*) FROM pg_stat_activity
		  WHERE backend_type = 'webhook delivery worker' AND datname = 'postgres'",
		'1', 30),
	'a delivery worker for the database appears in pg_stat_activity');

# --- one event, standard signing, extra headers -------------------------------
my $url = $r->url('/hooks/standard');
my ($ep, $secret) = split /\|/, $node->safe_psql(
	'postgres', qq{
	INSERT INTO webhook.endpoints (name, url, headers)
	VALUES ('std', '$url',
	        '{"X-Api-Key": "key-123", "Authorization": "Bearer tok-456"}')
	RETURNING id, webhook._unseal(secret)});
like($secret, qr/^whsec_/, 'a standard secret is generated');

my $event_id = $node->safe_psql('postgres',
	q{SELECT webhook.send('order.created', '{"order": 42, "note": "caf\u00e9 \u263a"}')});
like($event_id, qr/^[0-9a-f-]{36}$/, 'send returns an event id');

ok( poll_until(
		$node, 'postgres',
		"SELECT status FROM webhook.deliveries WHERE event_id = '$event_id'",
		'succeeded', 30),
	'delivery succeeded');

my @got = grep { ($_->{headers}{'webhook-id'} // '') eq $event_id }
  @{ requests($r) };
is(scalar @got, 1, 'the receiver got the event exactly once');
my $req = $got[0] // { headers => {}, body => '' };
is($req->{method}, 'POST', 'method is POST');
is($req->{path}, '/hooks/standard', 'request went to the endpoint path');
like($req->{headers}{'content-type'} // '', qr{^application/json\b},
	'Content-Type is application/json');
is($req->{headers}{'webhook-id'}, $event_id, 'webhook-id is the event id');
like($req->{headers}{'webhook-timestamp'} // '', qr/^\d{10}$/,
	'webhook-timestamp is unix seconds');
ok(abs(($req->{headers}{'webhook-timestamp'} // 0) - $req->{t}) < 300,
	'webhook-timestamp is close to the time the request arrived');
ok(verify_standard_signature($secret, $req->{headers}, $req->{body}),
	'webhook-signature verifies with the endpoint secret')
  or diag explain $req->{headers};
ok( !verify_standard_signature(
		'whsec_' . ('A' x 32), $req->{headers}, $req->{body}),
	'and does not verify with another secret');

my $db_body = $node->safe_psql('postgres',
	"SELECT webhook._event_body(event_type, payload, created_at) FROM webhook.events WHERE id = '$event_id'");
# The receiver log holds utf-8 decoded text; compare as bytes.
my $wire = $req->{body};
utf8::encode($wire) if utf8::is_utf8($wire);
is($wire, $db_body, 'the body bytes equal webhook._event_body() of the event');
like($db_body, qr/"type":"order.created"/, 'body names the event type');

ok((grep { $_ eq 'order.created' } values %{ $req->{headers} }),
	'a header names the event type');
is($req->{headers}{'x-api-key'}, 'key-123', 'extra header X-Api-Key arrives');
is($req->{headers}{'authorization'}, 'Bearer tok-456',
	'extra header Authorization arrives');

is( $node->safe_psql(
		'postgres',
		"SELECT count(*), min(status_code), min(attempt), bool_and(error_class IS NULL)
		   FROM webhook.delivery_log WHERE event_id = '$event_id'"),
	'1|200|1|t',
	'delivery_log has one attempt with status 200');
is( $node->safe_psql(
		'postgres',
		"SELECT status, attempts, last_status_code, completed_at IS NOT NULL
		   FROM webhook.deliveries WHERE event_id = '$event_id'"),
	'succeeded|1|200|t',
	'deliveries row is succeeded after one attempt');

# --- a rolled-back send sends nothing ----------------------------------------
my $rolled_back = $node->safe_psql(
	'postgres', q{
	BEGIN;
	SELECT webhook.send('order.created', '{"rolled": "back"}');
	ROLLBACK;});
like($rolled_back, qr/^[0-9a-f-]{36}$/, 'send inside the rolled-back transaction returned an id');
is($node->safe_psql('postgres',
		"SELECT count(*) FROM webhook.events WHERE id = '$rolled_back'"),
	'0', 'the rolled-back event does not exist');

my $later = $node->safe_psql('postgres',
	q{SELECT webhook.send('order.created', '{"after": "rollback"}')});
ok( poll_until(
		$node, 'postgres',
		"SELECT status FROM webhook.deliveries WHERE event_id = '$later'",
		'succeeded', 30),
	'a later committed event is delivered');
my @seen_ids = map { $_->{headers}{'webhook-id'} // '' } @{ requests($r) };
ok((grep { $_ eq $later } @seen_ids), 'the later event arrived');
ok(!(grep { $_ eq $rolled_back } @seen_ids), 'the rolled-back event never arrived');
ok(!(grep { $_->{body} =~ /rolled/ } @{ requests($r) }),
	'no request carries the rolled-back payload');

# --- hmac-sha256 (GitHub style) ----------------------------------------------
# From here on the first endpoint only takes order.* events.
$node->safe_psql('postgres',
	"UPDATE webhook.endpoints SET event_types = '{order.*}' WHERE id = $ep");
my $hurl = $r->url('/hooks/hmac');
my ($hep, $hsecret) = split /\|/, $node->safe_psql(
	'postgres', qq{
	INSERT INTO webhook.endpoints (name, url, signing, secret, signature_header, event_types)
	VALUES ('gh', '$hurl', 'hmac-sha256', 'It''s a Secret to Everybody',
	        'X-Hub-Signature-256', '{gh.*}')
	RETURNING id, webhook._unseal(secret)});
is($hsecret, "It's a Secret to Everybody", 'a given secret is kept as given');
my $hevent = $node->safe_psql('postgres',
	q{SELECT webhook.send('gh.push', '{"ref": "refs/heads/main"}')});
ok( poll_until(
		$node, 'postgres',
		"SELECT string_agg(status, ',') FROM webhook.deliveries WHERE event_id = '$hevent'",
		'succeeded', 30),
	'hmac endpoint delivery succeeded (and only the subscribed endpoint got a delivery)');
my ($hreq) = grep { ($_->{headers}{'webhook-id'} // '') eq $hevent }
  @{ requests($r) };
$hreq //= { headers => {}, body => '' };
is($hreq->{path}, '/hooks/hmac', 'hmac event went to the hmac endpoint');
ok( verify_hex_hmac(
		$hsecret, $hreq->{body}, $hreq->{headers}{'x-hub-signature-256'}),
	'X-Hub-Signature-256 verifies as hex HMAC-SHA256 of the body')
  or diag explain $hreq->{headers};
like($hreq->{headers}{'x-hub-signature-256'} // '', qr/^sha256=[0-9a-f]{64}$/,
	'hmac header has the sha256=<hex> form');

# --- keep-alive: sequential deliveries to one endpoint reuse a connection ----
my $kurl = $r->url('/hooks/keepalive');
$node->safe_psql('postgres',
	qq{INSERT INTO webhook.endpoints (name, url, event_types)
	   VALUES ('ka', '$kurl', '{ka.*}')});
my @ka_ids;
for my $i (1 .. 5)
{
	my $id = $node->safe_psql('postgres',
		"SELECT webhook.send('ka.ping', '{\"i\": $i}')");
	push @ka_ids, $id;
	poll_until($node, 'postgres',
		"SELECT status FROM webhook.deliveries WHERE event_id = '$id'",
		'succeeded', 30)
	  or last;
}
my %ka = map { $_ => 1 } @ka_ids;
my @ka_reqs = grep { $ka{ $_->{headers}{'webhook-id'} // '' } } @{ requests($r) };
is(scalar @ka_reqs, 5, 'five keep-alive deliveries arrived');
my %conns = map { $_->{conn} => 1 } @ka_reqs;
diag('keep-alive: ' . scalar(@ka_reqs) . ' requests over ' . scalar(keys %conns)
	  . ' connection(s)');
cmp_ok(scalar(keys %conns), '<', scalar(@ka_reqs),
	'sequential deliveries to one endpoint reuse a connection');
is(scalar(keys %conns), 1, 'all five went over one kept-alive connection');

# --- still one worker, never a second one ------------------------------------
is( $node->safe_psql(
		'postgres',
		"SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'webhook delivery worker'"),
	'1',
	'exactly one delivery worker is running');

$r->stop;
$node->stop;
done_testing();
