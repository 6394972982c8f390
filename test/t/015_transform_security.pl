# A transform runs as the role that set it, restricted: it cannot leave a
# setting, a temp table or a deferred trigger behind to act later as the
# worker's superuser, and the worker goes on delivering.
use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin";
use WebhookTest;
use PostgreSQL::Test::Utils;
use Test::More;

my $r = start_receiver();
my $node = node_with_webhook('transform_security');
$node->safe_psql('postgres', sprintf(q{
	CREATE EXTENSION webhook;
	CREATE ROLE regress_shaper LOGIN;
	GRANT USAGE ON SCHEMA webhook TO regress_shaper;
	GRANT SELECT, INSERT, UPDATE ON webhook.endpoints TO regress_shaper;
	GRANT USAGE ON SEQUENCE webhook.endpoints_id_seq TO regress_shaper;
	CREATE SCHEMA shaper AUTHORIZATION regress_shaper;
	SET ROLE regress_shaper;
	-- leaves a session setting that would stop the worker's own queries
	CREATE FUNCTION shaper.sets(t text, at timestamptz, p jsonb) RETURNS jsonb LANGUAGE plpgsql AS $$
	BEGIN PERFORM set_config('default_transaction_read_only', 'on', false); RETURN p; END $$;
	-- tries to create an object that would outlive the call
	CREATE FUNCTION shaper.temp(t text, at timestamptz, p jsonb) RETURNS jsonb LANGUAGE plpgsql AS $$
	BEGIN CREATE TEMP TABLE IF NOT EXISTS trap (x int); RETURN p; END $$;
	INSERT INTO webhook.endpoints (url, event_types, transform) VALUES
	    ('%s', '{t.sets}', 'shaper.sets'), ('%s', '{t.temp}', 'shaper.temp');
	RESET ROLE;
	INSERT INTO webhook.endpoints (url, event_types) VALUES ('%s', '{t.plain}');
}, $r->url('/sets'), $r->url('/temp'), $r->url('/plain')));

$node->safe_psql('postgres', "SELECT webhook.send('t.sets', '{\"n\": 1}')");
ok(poll_until($node, 'postgres',
		"SELECT count(*) FROM webhook.deliveries d JOIN webhook.events e ON e.id = d.event_id
		  WHERE e.event_type = 't.sets' AND d.status = 'succeeded'", '1', 30),
	'a transform that changes a setting still delivers');
$node->safe_psql('postgres', "SELECT webhook.send('t.plain', '{\"n\": 2}')");
ok(poll_until($node, 'postgres',
		"SELECT count(*) FROM webhook.deliveries d JOIN webhook.events e ON e.id = d.event_id
		  WHERE e.event_type = 't.plain' AND d.status = 'succeeded'", '1', 30),
	'and the setting did not stay behind in the worker: later deliveries are recorded');

$node->safe_psql('postgres', "SELECT webhook.send('t.temp', '{\"n\": 3}')");
ok(poll_until($node, 'postgres',
		"SELECT count(*) FROM webhook.deliveries d JOIN webhook.events e ON e.id = d.event_id
		  WHERE e.event_type = 't.temp' AND d.status = 'failed'", '1', 30),
	'a transform that creates a temp table fails its delivery');
like($node->safe_psql('postgres',
		"SELECT error_class || ': ' || error FROM webhook.delivery_log l JOIN webhook.events e ON e.id = l.event_id
		  WHERE e.event_type = 't.temp'"),
	qr/^transform: .*(security-restricted operation|read-only transaction)/,
	'recorded as refused by the restrictions (read-only, security-restricted)');
is(scalar(grep { $_->{path} eq '/temp' } @{ requests($r) }), 0, 'and nothing was sent for it');

$r->stop;
done_testing();
