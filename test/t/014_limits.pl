# Limits: 10,000 deliveries claimed at once (pg_net is known to crash above
# about 1,000 concurrent requests) all end delivered and the worker survives;
# a watched row whose payload exceeds webhook.max_payload_bytes is refused
# with a clear error and nothing is written.
use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin";
use WebhookTest;
use PostgreSQL::Test::Utils;
use Test::More;

my $r = start_receiver();
my $node = node_with_webhook('limits',
	'webhook.max_in_flight' => '10000',
	'webhook.max_in_flight_per_endpoint' => '10000',
	'webhook.batch_size' => '10000');
$node->safe_psql('postgres', 'CREATE EXTENSION webhook');

# Ten endpoints, inactive while 10,000 deliveries are queued, then all at once.
$node->safe_psql('postgres', sprintf(q{
	INSERT INTO webhook.endpoints (url, active, event_types)
	SELECT '%s' || g, false, '{limits.*}' FROM generate_series(1, 10) g;
	WITH ev AS (
	    INSERT INTO webhook.events (event_type, payload, txid)
	    SELECT 'limits.many', p, '0'
	      FROM (SELECT jsonb_build_object('n', g) AS p FROM generate_series(1, 1000) g) s
	    RETURNING id)
	INSERT INTO webhook.delivery_state (event_id, endpoint_id)
	SELECT ev.id, ep.id FROM ev CROSS JOIN webhook.endpoints ep;
}, $r->url('/many/')));
is($node->safe_psql('postgres', "SELECT count(*) FROM webhook.deliveries WHERE status = 'pending'"),
	'10000', '10,000 deliveries pending');

my $pid = $node->safe_psql('postgres',
	"SELECT pid FROM pg_stat_activity WHERE backend_type = 'webhook delivery worker'");
$node->safe_psql('postgres', 'UPDATE webhook.endpoints SET active = true');

ok(poll_until($node, 'postgres',
		"SELECT count(*) FROM webhook.deliveries WHERE status <> 'succeeded'", '0', 180),
	'all 10,000 deliveries succeeded');
is($node->safe_psql('postgres',
		"SELECT pid FROM pg_stat_activity WHERE backend_type = 'webhook delivery worker'"),
	$pid, 'the same worker did it all: nothing crashed or restarted');
my %ids = map { ($_->{headers}{'webhook-id'} . $_->{path}) => 1 }
  grep { $_->{path} =~ m{^/many/} } @{ requests($r) };
is(scalar(keys %ids), 10000, 'the receiver saw 10,000 distinct (event, endpoint) requests');
unlike(slurp_file($node->logfile), qr/PANIC|server process .* was terminated/,
	'no crash in the server log');

# A watched row too large for webhook.max_payload_bytes.
$node->safe_psql('postgres', q{
	ALTER SYSTEM SET webhook.max_payload_bytes = 1000;
	SELECT pg_reload_conf();
	CREATE TABLE notes (id int PRIMARY KEY, body text);
	SELECT webhook.watch('notes');
});
my ($ret, $out, $err) = $node->psql('postgres',
	"SET webhook.max_payload_bytes = 1000; INSERT INTO notes VALUES (1, repeat('x', 5000))");
isnt($ret, 0, 'a watched row above max_payload_bytes is refused');
like($err, qr/payload is too large/, 'with a clear error');
is($node->safe_psql('postgres', 'SELECT count(*) FROM notes'), '0', 'and nothing was written');
$node->safe_psql('postgres', "SET webhook.max_payload_bytes = 1000; INSERT INTO notes VALUES (2, 'small')");
is($node->safe_psql('postgres', "SELECT count(*) FROM webhook.events WHERE event_type = 'notes.created'"),
	'1', 'a small row still makes its event');

# A statement's events are written in batches, and each batch's memory is
# freed after it: a 40,000-row watched INSERT of 2 kB rows keeps the
# backend's peak memory (VmHWM, shared buffers included) near its start
# instead of growing by every row (about 9 kB each, 400 MB here, before).
$node->safe_psql('postgres', q{
	CREATE TABLE wide (id int PRIMARY KEY, body text);
	SELECT webhook.watch('wide');
});
my $bg = $node->background_psql('postgres');
my $bg_pid = $bg->query_safe('SELECT pg_backend_pid()');
$bg->query_safe('SET webhook.max_payload_bytes = 1048576');
$bg->query_safe(q{INSERT INTO wide SELECT g, repeat(md5(g::text), 64) FROM generate_series(1, 40000) g});
my ($hwm_kb) = slurp_file("/proc/$bg_pid/status") =~ /^VmHWM:\s+(\d+) kB/m;
$bg->quit;
is($node->safe_psql('postgres', "SELECT count(*) FROM webhook.events WHERE event_type = 'wide.created'"),
	'40000', 'a 40,000-row watched INSERT makes its events');
cmp_ok($hwm_kb, '<', 250 * 1024, "and its backend's peak memory stays bounded (VmHWM $hwm_kb kB)");

$r->stop;
done_testing();
