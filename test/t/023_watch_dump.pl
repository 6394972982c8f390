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
	RESET ROLE;
	INSERT INTO webhook.endpoints (name, url, event_types)
	VALUES ('dumped', '} . $r->url('/dumped') . q{', '{dump.*}');
});
# Renamed after watch(): the dump must carry today's names.
$node->safe_psql('src', q{
	ALTER TABLE app.t RENAME COLUMN plan TO tier;
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
	       || condition || ' ' || exclude_columns::text FROM webhook.watches}),
	q{shop.t dump.t {delete,insert,update} {tier} (shop.paid(new.tier) AND (new.id > 0)) {secret}},
	'the restored database has the watch');
like(($node->psql('dst', 'DROP FUNCTION shop.paid(text)'))[2], qr/depends on function shop\.paid/,
	'the restored watch depends on the function its condition calls');

# The same filtering as before the dump.
$node->safe_psql('dst', q{
	INSERT INTO shop.t VALUES (1, 'paid', 's1', 'n'), (2, 'free', 's2', 'n'), (-3, 'paid', 's3', 'n');
	UPDATE shop.t SET secret = 'changed';
	UPDATE shop.t SET tier = 'paid', note = 'upgraded' WHERE id = 2;
});
is($node->safe_psql('dst', q{
	SELECT string_agg(event_type || ' ' || (payload -> 'record' ->> 'id') || ' ' || (payload -> 'record' ? 'secret')::text,
	                  ', ' ORDER BY event_type, payload -> 'record' ->> 'id') FROM webhook.events}),
	'dump.t.created 1 false, dump.t.updated 2 false',
	'the restored watch filters as the original did');
ok(poll_until($node, 'dst', q{
	SELECT count(*) FROM webhook.deliveries d JOIN webhook.events e ON e.id = d.event_id
	 WHERE e.event_type LIKE 'dump.%' AND d.status = 'succeeded'}, '2'),
	'both events are delivered from the restored database');
my @got = grep { $_->{path} eq '/dumped' } @{ requests($r) };
is(scalar(grep { ($_->{body} // '') =~ /"upgraded"/ } @got), 1, 'the receiver got the update');
is(scalar(grep { ($_->{body} // '') =~ /"s\d"|changed/ } @got), 0, 'no excluded column left the database');

assert_server_intact($node, $started, 'events after restore');

# Not about watches: the identity sequences of the extension's tables are
# extension members whose values pg_dump does not keep, so the first new
# endpoint in the restored database collides with a restored one.
TODO:
{
	local $TODO = 'identity sequences of webhook tables are not dumped (pg_extension_config_dump of the sequences)';
	my ($ret) = $node->psql('dst', q{
		INSERT INTO webhook.endpoints (name, url, event_types)
		VALUES ('after-restore', 'http://127.0.0.1:1/x', '{none.x}')});
	is($ret, 0, 'a new endpoint after the restore gets a free id');
}
# The manual step that TODO stands for, so that the canary can run.
$node->safe_psql('dst', q{
	SELECT setval(pg_get_serial_sequence('webhook.endpoints', 'id'), max(id)) FROM webhook.endpoints});
canary_arrives($node, 'dst', $r, 'restored database');
canary_arrives($node, 'src', $r, 'dumped database');

$r->stop;
done_testing();
