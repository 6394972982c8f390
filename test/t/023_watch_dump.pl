# pg_dump and restore of a database with a watch: the watch travels in its
# triggers' arguments (with the names of the day it was dumped), and the
# restore's CREATE TRIGGER makes it again, with the same columns, condition
# and excluded columns, and with its dependencies.  No manual step.
use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin";
use WebhookTest;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time sleep);

my $r = start_receiver();
my $node = node_with_webhook('watch_dump');
my $started = postmaster_started($node);

$node->safe_psql('postgres', q{
	CREATE ROLE app_owner NOLOGIN;
	CREATE DATABASE src;
	CREATE DATABASE dst;
});
$node->safe_psql('src', q{
	CREATE EXTENSION webhook;
	CREATE SCHEMA app AUTHORIZATION app_owner;
	GRANT USAGE ON SCHEMA webhook TO app_owner;
	SET ROLE app_owner;
	CREATE TABLE app.t (id integer PRIMARY KEY, plan text, secret text, note text);
	CREATE FUNCTION app.is_paid(text) RETURNS boolean LANGUAGE sql IMMUTABLE RETURN $1 = 'paid';
	SELECT webhook.watch('app.t', event_prefix => 'dump.t', columns => '{plan}',
	                     condition => 'app.is_paid(NEW.plan) AND NEW.id > 0',
	                     exclude_columns => '{secret}');
	-- A watch with its own ordering key (0.6.0): a sixth trigger argument.
	CREATE TABLE app.u (id integer PRIMARY KEY, account text);
	SELECT webhook.watch('app.u', event_prefix => 'dump.u', ordering_key => '{account}');
	RESET ROLE;
	INSERT INTO webhook.endpoints (name, url, event_types)
	VALUES ('dumped', '} . $r->url('/dumped') . q{', '{dump.*}');
});
# A delivery that failed before the dump, with its log row: the restored
# database can retry it.  /fail-first/1: only the first request gets a 500.
$node->safe_psql('src', q{
	INSERT INTO webhook.endpoints (name, url, event_types, retry_schedule_s)
	VALUES ('flaky', '} . $r->url('/fail-first/1/dumpflaky/flaky') . q{', '{again.x}', '{}');
	SELECT webhook.send('again.x', '{"n": 1}');
});
ok(poll_until($node, 'src', q{
	SELECT d.status || ' ' || d.attempts || ' ' || (SELECT count(*) FROM webhook.delivery_log l WHERE l.delivery_id = d.id)
	  FROM webhook.deliveries d JOIN webhook.endpoints ep ON ep.id = d.endpoint_id WHERE ep.name = 'flaky'},
	'failed 1 1'), 'the delivery to dump has failed once');

# Renamed after watch(): the dump must carry today's names.
$node->safe_psql('src', q{
	ALTER TABLE app.t RENAME COLUMN plan TO tier;
	ALTER TABLE app.u RENAME COLUMN account TO customer;
	ALTER FUNCTION app.is_paid(text) RENAME TO paid;
	ALTER SCHEMA app RENAME TO shop;
});

my $file = $PostgreSQL::Test::Utils::tmp_check . '/watch_dump.sql';
my ($out, $err) = run_command([ 'pg_dump', '-f', $file, '-d', $node->connstr('src') ]);
is($err, '', 'pg_dump runs without a message');
my $dump = slurp_file($file);
unlike($dump, qr/COPY webhook\.table_watches/, 'no raw watch rows in the dump');
like($dump, qr/webhook\._watch_trigger\('dump\.t', '\{delete,insert,update\}', '\{tier\}', '\(shop\.paid\(new\.tier\) AND \(new\.id > 0\)\)', '\{secret\}'\)/,
	'the triggers carry the watch with today\'s names');

($out, $err) = run_command([ 'psql', '-X', '-q', '-v', 'ON_ERROR_STOP=1', '-d', $node->connstr('dst'), '-f', $file ]);
is($err, '', 'the dump restores without an error or warning');
assert_server_intact($node, $started, 'restore');

is($node->safe_psql('dst', q{
	SELECT "table" || ' ' || event_prefix || ' ' || operations::text || ' ' || columns::text || ' '
	       || condition || ' ' || exclude_columns::text FROM webhook.watches WHERE "table" = 'shop.t'::regclass}),
	q{shop.t dump.t {delete,insert,update} {tier} (shop.paid(new.tier) AND (new.id > 0)) {secret}},
	'the restored database has the watch');
like(($node->psql('dst', 'DROP FUNCTION shop.paid(text)'))[2], qr/depends on function shop\.paid/,
	'the restored watch depends on the function its condition calls');
like($dump, qr/webhook\._watch_trigger\('dump\.u', '\{delete,insert,update\}', '', '', '', '\{customer\}'\)/,
	'a watch\'s ordering key is a sixth trigger argument, with today\'s names');
is($node->safe_psql('dst', q{SELECT ordering_key::text FROM webhook.watches WHERE "table" = 'shop.u'::regclass}),
	'{customer}', 'the restored watch keeps its ordering key');
$node->safe_psql('dst', q{INSERT INTO shop.u VALUES (1, 'acme')});
is($node->safe_psql('dst', q{SELECT ordering_key FROM webhook.events WHERE event_type = 'dump.u.created'}),
	'shop.u:acme', 'and its events are keyed by it');

# The same filtering as before the dump.
$node->safe_psql('dst', q{
	INSERT INTO shop.t VALUES (1, 'paid', 's1', 'n'), (2, 'free', 's2', 'n'), (-3, 'paid', 's3', 'n');
	UPDATE shop.t SET secret = 'changed';
	UPDATE shop.t SET tier = 'paid', note = 'upgraded' WHERE id = 2;
});
is($node->safe_psql('dst', q{
	SELECT string_agg(event_type || ' ' || (payload -> 'record' ->> 'id') || ' ' || (payload -> 'record' ? 'secret')::text,
	                  ', ' ORDER BY event_type, payload -> 'record' ->> 'id') FROM webhook.events
	 WHERE event_type LIKE 'dump.t.%'}),
	'dump.t.created 1 false, dump.t.updated 2 false',
	'the restored watch filters as the original did');
ok(poll_until($node, 'dst', q{
	SELECT count(*) FROM webhook.deliveries d JOIN webhook.events e ON e.id = d.event_id
	 WHERE e.event_type LIKE 'dump.t.%' AND d.status = 'succeeded'}, '2'),
	'both events are delivered from the restored database');
my @got = grep { $_->{path} eq '/dumped' } @{ requests($r) };
is(scalar(grep { ($_->{body} // '') =~ /"upgraded"/ } @got), 1, 'the receiver got the update');
is(scalar(grep { ($_->{body} // '') =~ /"s\d"|changed/ } @got), 0, 'no excluded column left the database');

assert_server_intact($node, $started, 'events after restore');

# The identity sequences of the extension's tables are dumped with the
# tables: new rows after the restore get ids of their own.
is($node->safe_psql('dst', q{
	SELECT string_agg(s.seq, ' ' ORDER BY s.seq) FROM
	  (SELECT pg_get_serial_sequence('webhook.' || t, 'id') FROM unnest('{endpoints,delivery_state,delivery_log}'::text[]) t) s(seq)
	 WHERE s.seq::regclass = ANY ((SELECT extconfig FROM pg_extension WHERE extname = 'webhook')::regclass[])}),
	'webhook.delivery_log_id_seq webhook.delivery_state_id_seq webhook.endpoints_id_seq',
	'the identity sequences are configuration of the extension');
my ($ret, $stdout, $stderr) = $node->psql('dst', q{
	INSERT INTO webhook.endpoints (name, url, event_types)
	VALUES ('after-restore', 'http://127.0.0.1:1/x', '{none.x}')});
is($stderr, '', 'a new endpoint after the restore gets a free id');

# The restored failed delivery is retried by the restored database's worker;
# its second attempt is logged next to the restored first one.
$node->safe_psql('dst', q{
	SELECT webhook.retry(d.id) FROM webhook.deliveries d
	  JOIN webhook.endpoints ep ON ep.id = d.endpoint_id WHERE ep.name = 'flaky'});
ok(poll_until($node, 'dst', q{
	SELECT d.status || ' ' || d.attempts || ' ' || string_agg(l.attempt || ':' || coalesce(l.status_code, 0), ',' ORDER BY l.id)
	  FROM webhook.deliveries d JOIN webhook.endpoints ep ON ep.id = d.endpoint_id
	  JOIN webhook.delivery_log l ON l.delivery_id = d.id
	 WHERE ep.name = 'flaky' GROUP BY d.id, d.status, d.attempts},
	'succeeded 2 1:500,2:200'), 'retry() of a restored delivery succeeds and is logged');
is(scalar(grep { $_->{path} eq '/fail-first/1/dumpflaky/flaky' } @{ requests($r) }), 2,
	'the receiver got the first attempt and the retry');
assert_server_intact($node, $started, 'retry after restore');
canary_arrives($node, 'dst', $r, 'restored database');
canary_arrives($node, 'src', $r, 'dumped database');

$r->stop;
done_testing();
