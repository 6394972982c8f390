# webhook.watch() end to end: INSERT, UPDATE and DELETE on a watched table
# arrive as signed requests of type <prefix>.created / .updated / .deleted
# with the documented (Supabase-style) payload; a 1,000-row INSERT ... SELECT
# arrives as 1,000 requests.  The table is owned by an ordinary role and
# written by a role that has only DML rights on it and none on the webhook
# schema.
use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin";
use WebhookTest;
use JSON::PP;
use PostgreSQL::Test::Utils;
use Test::More;

my $r = start_receiver();
my $node = node_with_webhook('watch');

$node->safe_psql(
	'postgres', q{
	CREATE EXTENSION webhook;
	CREATE ROLE app_owner LOGIN;
	CREATE ROLE app_writer LOGIN;
	CREATE SCHEMA app AUTHORIZATION app_owner;
	GRANT USAGE ON SCHEMA webhook TO app_owner;
});

# The owner creates the table, gives the writer DML only, and watches it.
$node->safe_psql(
	'postgres', q{
	CREATE TABLE app.customers (
	    id            integer PRIMARY KEY,
	    email         text NOT NULL,
	    plan          text,
	    signup        date,
	    tags          text[],
	    password_hash text);
	GRANT USAGE ON SCHEMA app TO app_writer;
	GRANT SELECT, INSERT, UPDATE, DELETE ON app.customers TO app_writer;
	SELECT webhook.watch('app.customers', event_prefix => 'customer',
	                     exclude_columns => '{password_hash}');
}, extra_params => [ '-U', 'app_owner' ]);

is( $node->safe_psql(
		'postgres', q{
		SELECT r.rolsuper, r2.rolsuper,
		       has_schema_privilege('app_writer', 'webhook', 'USAGE'),
		       (SELECT relowner::regrole::text FROM pg_class WHERE oid = 'app.customers'::regclass)
		  FROM pg_roles r, pg_roles r2
		 WHERE r.rolname = 'app_owner' AND r2.rolname = 'app_writer'}),
	'f|f|f|app_owner',
	'the table owner and the writer are not superusers; the writer has no rights on webhook');
is($node->safe_psql('postgres', 'SELECT event_prefix FROM webhook.watches'),
	'customer', 'the watch is listed');

my ($ep, $secret) = split /\|/, $node->safe_psql(
	'postgres', q{
	INSERT INTO webhook.endpoints (name, url, event_types)
	VALUES ('crm', '} . $r->url('/crm') . q{', '{customer.*}') RETURNING id, webhook._unseal(secret)});

sub as_writer
{
	my ($sql) = @_;
	return $node->safe_psql('postgres', $sql, extra_params => [ '-U', 'app_writer' ]);
}

sub wait_succeeded
{
	my ($n, $what) = @_;
	ok( poll_until(
			$node, 'postgres',
			"SELECT count(*) FILTER (WHERE status = 'succeeded') || '/' || count(*)
			   FROM webhook.deliveries WHERE endpoint_id = $ep",
			"$n/$n", 60),
		"$what: all $n deliveries so far succeeded");
}

# Requests whose body is of event type $type, decoded.
sub requests_of
{
	my ($type) = @_;
	my @out;
	for my $req (@{ requests($r) })
	{
		my $body = eval { JSON::PP->new->decode($req->{body}) } or next;
		push @out, { req => $req, body => $body }
		  if ($body->{type} // '') eq $type;
	}
	return @out;
}

# One request of $type; checks headers, signature and the envelope.
sub one_request
{
	my ($type) = @_;
	my @got = requests_of($type);
	is(scalar @got, 1, "$type: one request arrived");
	my $g = $got[0] // { req => { headers => {}, body => '' }, body => {} };
	my $h = $g->{req}{headers};
	ok(verify_standard_signature($secret, $h, $g->{req}{body}), "$type: signature verifies")
	  or diag explain $h;
	is($h->{'webhook-event-type'}, $type, "$type: webhook-event-type header");
	like($g->{body}{timestamp} // '', qr/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/,
		"$type: body timestamp is ISO 8601 UTC");
	my $db_body = $node->safe_psql('postgres',
		"SELECT webhook._event_body(event_type, payload, created_at) FROM webhook.events WHERE id = '" . ($h->{'webhook-id'} // '00000000-0000-0000-0000-000000000000') . "'");
	my $wire = $g->{req}{body};
	utf8::encode($wire) if utf8::is_utf8($wire);
	is($wire, $db_body, "$type: the body sent is webhook._event_body() of the event");
	return $g->{body}{data};
}

# --- INSERT ------------------------------------------------------------------
as_writer(q{INSERT INTO app.customers VALUES
	(1, 'ada@example.com', 'trial', '2024-01-02', '{vip,beta}', 'bcrypt$secret-hash')});
wait_succeeded(1, 'insert');
my $record = { id => 1, email => 'ada@example.com', plan => 'trial', signup => '2024-01-02',
	tags => [ 'vip', 'beta' ] };
is_deeply(
	one_request('customer.created'),
	{ operation => 'INSERT', schema => 'app', table => 'customers',
	  record => $record, old_record => undef },
	'customer.created: data is {operation, schema, table, record, old_record: null}, without the excluded column');

# --- UPDATE ------------------------------------------------------------------
as_writer(q{UPDATE app.customers SET email = 'ada@example.org', plan = 'pro' WHERE id = 1});
wait_succeeded(2, 'update');
is_deeply(
	one_request('customer.updated'),
	{ operation => 'UPDATE', schema => 'app', table => 'customers',
	  record => { %$record, email => 'ada@example.org', plan => 'pro' },
	  old_record => $record },
	'customer.updated: record is the new row, old_record the old one');

# An UPDATE of only the excluded column changes nothing visible: no event.
as_writer(q{UPDATE app.customers SET password_hash = 'other' WHERE id = 1});
# --- DELETE ------------------------------------------------------------------
as_writer(q{DELETE FROM app.customers WHERE id = 1});
wait_succeeded(3, 'delete');
is_deeply(
	one_request('customer.deleted'),
	{ operation => 'DELETE', schema => 'app', table => 'customers',
	  record => undef,
	  old_record => { %$record, email => 'ada@example.org', plan => 'pro' } },
	'customer.deleted: record is null, old_record the deleted row');
is(scalar(requests_of('customer.updated')), 1,
	'an UPDATE of only an excluded column sent nothing');

# A rolled-back statement emits nothing.
as_writer(q{BEGIN; INSERT INTO app.customers VALUES (9999, 'rollback@example.com'); ROLLBACK;});
is( $node->safe_psql('postgres',
		q{SELECT count(*) FROM webhook.events WHERE payload->'record'->>'id' = '9999'}),
	'0', 'a rolled-back INSERT made no event');

# --- 1,000 rows in one statement ---------------------------------------------
as_writer(q{INSERT INTO app.customers (id, email, plan)
	SELECT g, 'user' || g || '@example.com', 'free' FROM generate_series(1001, 2000) g});
is( $node->safe_psql('postgres',
		q{SELECT count(*) FROM webhook.events WHERE event_type = 'customer.created'}),
	'1001', 'the 1,000-row INSERT made 1,000 events');
wait_succeeded(1003, 'bulk insert');

my @bulk = grep { ($_->{body}{data}{record}{id} // 0) >= 1001 } requests_of('customer.created');
my %ids = map { ($_->{req}{headers}{'webhook-id'} // '') => 1 } @bulk;
is(scalar keys %ids, 1000, 'the receiver got 1,000 distinct webhook-ids for the 1,000 rows');
my %rows = map { $_->{body}{data}{record}{id} => 1 } @bulk;
is(scalar(grep { $rows{$_} } 1001 .. 2000), 1000, 'one event for each inserted row');
my @bad = grep { !verify_standard_signature($secret, $_->{req}{headers}, $_->{req}{body}) } @bulk;
is(scalar @bad, 0, 'every bulk request is signed correctly');
my @wrong = grep {
	my $d = $_->{body}{data};
	$d->{operation} ne 'INSERT' || defined $d->{old_record}
	  || $d->{record}{email} ne "user$d->{record}{id}\@example.com"
	  || exists $d->{record}{password_hash}
} @bulk;
is(scalar @wrong, 0, 'every bulk payload carries its own row');

$r->stop;
$node->stop;
done_testing();
