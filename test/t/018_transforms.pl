# Transforms: what an endpoint's transform relies on, its function and its
# role, is protected the PostgreSQL way (DROP refused without CASCADE, CASCADE
# pauses the endpoint with a NOTICE, RENAME and SET SCHEMA keep working); a
# transform whose function is gone anyway fails its delivery instead of
# crashing the server; transforms run after the claim has committed, under
# webhook.transform_timeout_ms; nothing a transform sets outlives it.  After
# each action the server must be intact and a canary event must arrive.
use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin";
use WebhookTest;
use PostgreSQL::Test::Utils;
use Test::More;

my $r = start_receiver();
my $node = node_with_webhook('transforms', 'webhook.transform_timeout_ms' => '10s',
	log_min_messages => 'debug1');
$node->safe_psql('postgres', 'CREATE EXTENSION webhook');
my $started = postmaster_started($node);

sub psql { return $node->safe_psql('postgres', $_[0]); }

# Run SQL that may fail; returns (stdout, stderr) so errors and notices can be checked.
sub psql_result
{
	my ($sql) = @_;
	my ($out, $err) = ('', '');
	$node->psql('postgres', $sql, stdout => \$out, stderr => \$err);
	return ($out, $err);
}

# An endpoint for event types "$name.*", with a transform set by $role.
sub endpoint
{
	my ($name, $transform, $role) = @_;
	my $set_role = $role ? "SET ROLE $role;" : '';
	return psql(sprintf(q{%s INSERT INTO webhook.endpoints (name, url, event_types, transform)
	                      VALUES ('%s', '%s', '{%s.*}', %s) RETURNING id},
		$set_role, $name, $r->url("/$name"), $name, $transform ? "'$transform'" : 'NULL'));
}

sub send_event
{
	my ($type, $payload) = @_;
	return psql("SELECT webhook.send('$type', '" . ($payload // '{}') . "')");
}

# The body the receiver got for event $ev, decoded.
sub body_of
{
	my ($ev) = @_;
	my ($req) = grep { ($_->{headers}{'webhook-id'} // '') eq $ev } @{ requests($r) };
	return $req ? JSON::PP::decode_json($req->{body}) : undef;
}

sub intact
{
	my ($label) = @_;
	assert_server_intact($node, $started, $label);
	canary_arrives($node, 'postgres', $r, $label);
}

psql(q{
	CREATE ROLE regress_shaper LOGIN;
	CREATE ROLE "regress Heir" LOGIN;
	GRANT USAGE ON SCHEMA webhook TO regress_shaper, "regress Heir";
	GRANT SELECT, INSERT, UPDATE ON webhook.endpoints TO regress_shaper, "regress Heir";
	GRANT USAGE ON SEQUENCE webhook.endpoints_id_seq TO regress_shaper, "regress Heir";
	CREATE SCHEMA shapes;
	CREATE SCHEMA shapes_moved;
	GRANT USAGE ON SCHEMA shapes, shapes_moved TO PUBLIC;
	CREATE FUNCTION shapes.tag(t text, at timestamptz, p jsonb) RETURNS jsonb LANGUAGE sql
	    AS $$ SELECT jsonb_build_object('shaped', true, 'by', current_user::text) || p $$;
	CREATE FUNCTION shapes.gone(t text, at timestamptz, p jsonb) RETURNS jsonb LANGUAGE sql
	    AS $$ SELECT p $$;
	CREATE FUNCTION shapes.slow(t text, at timestamptz, p jsonb) RETURNS jsonb LANGUAGE plpgsql
	    AS $$ BEGIN PERFORM pg_sleep((p ->> 'sleep')::float8); RETURN p; END $$;
	-- leaves settings and a session lock behind, if it can
	CREATE FUNCTION shapes.meddle(t text, at timestamptz, p jsonb) RETURNS jsonb LANGUAGE plpgsql
	    AS $$
	    BEGIN
	        PERFORM set_config('search_path', 'shapes, pg_catalog', false);
	        PERFORM set_config('TimeZone', 'Pacific/Chatham', false);
	        PERFORM set_config('regress.flag', 'set', false);
	        PERFORM pg_advisory_lock(4242);
	        RETURN p;
	    END $$;
	CREATE FUNCTION shapes.report(t text, at timestamptz, p jsonb) RETURNS jsonb LANGUAGE sql
	    AS $$ SELECT jsonb_build_object('search_path', current_setting('search_path'),
	                                    'timezone', current_setting('TimeZone'),
	                                    'flag', coalesce(current_setting('regress.flag', true), '')) $$;
});

# --- the transform's role on INSERT ----------------------------------------------
# Kept when the writer could act as it (a restore by a superuser), else the
# writer's own role: nobody makes a transform run as a role they cannot use.
my $kept = psql(q{INSERT INTO webhook.endpoints (url, transform, transform_role)
                  VALUES ('http://127.0.0.1:1/kept', 'shapes.tag', '"regress Heir"') RETURNING transform_role});
is($kept, '"regress Heir"', 'a superuser\'s INSERT keeps the transform_role given');
is(psql(q{SET ROLE regress_shaper;
          INSERT INTO webhook.endpoints (url, transform, transform_role)
          VALUES ('http://127.0.0.1:1/forged', 'shapes.tag', 'postgres') RETURNING transform_role}),
	'regress_shaper', 'another role\'s INSERT cannot name a role it is not a member of');
psql(q{DELETE FROM webhook.endpoints WHERE url LIKE 'http://127.0.0.1:1/%'});

# --- the transform's function -------------------------------------------------
my $shaped = endpoint('shaped', 'shapes.tag', 'regress_shaper');
my $ev = send_event('shaped.one', '{"n": 1}');
ok(wait_status($node, $ev, 'succeeded'), 'a transform set by a role is delivered');
is_deeply(body_of($ev), { shaped => JSON::PP::true, by => 'regress_shaper', n => 1 },
	'and it ran as that role');

my (undef, $err) = psql_result('DROP FUNCTION shapes.tag(text, timestamptz, jsonb)');
like($err, qr/cannot drop function shapes\.tag\(text,timestamp with time zone,jsonb\) because other objects depend on it/,
	'DROP FUNCTION of a transform in use is refused');
like($err, qr/HINT:  Use DROP \.\.\. CASCADE/, 'with PostgreSQL\'s hint');
is(psql("SELECT transform::text FROM webhook.endpoints WHERE id = $shaped"), 'shapes.tag',
	'and the endpoint keeps its transform');
intact('refused DROP FUNCTION');

psql(q{ALTER FUNCTION shapes.tag(text, timestamptz, jsonb) RENAME TO tag2;
       ALTER FUNCTION shapes.tag2(text, timestamptz, jsonb) SET SCHEMA shapes_moved});
is(psql("SELECT transform::text FROM webhook.endpoints WHERE id = $shaped"), 'shapes_moved.tag2',
	'RENAME and SET SCHEMA of a transform are followed');
$ev = send_event('shaped.two', '{"n": 2}');
ok(wait_status($node, $ev, 'succeeded'), 'and the renamed transform still runs');
is(body_of($ev)->{shaped}, JSON::PP::true, 'and shapes the body');
intact('RENAME and SET SCHEMA');

# --- the transform's role --------------------------------------------------------
(undef, $err) = psql_result('DROP ROLE regress_shaper');
like($err, qr/role "regress_shaper" cannot be dropped because some objects depend on it/,
	'DROP ROLE of a transform\'s role is refused');
like($err, qr/webhook\._transform_$shaped/, 'because of the endpoint\'s transform');
intact('refused DROP ROLE');

my $spare = endpoint('spare', 'shapes_moved.tag2', 'regress_shaper');
psql('REASSIGN OWNED BY regress_shaper TO "regress Heir"; DROP OWNED BY regress_shaper; DROP ROLE regress_shaper');
# A new id moves the wrapper, which keeps its owner.
psql("UPDATE webhook.endpoints SET id = 434343 WHERE id = $spare");
is(psql("SELECT proowner::regrole FROM pg_proc WHERE proname = '_transform_434343'"), '"regress Heir"',
	'a new endpoint id moves the wrapper, with its owner');
$ev = send_event('shaped.three', '{"n": 3}');
ok(wait_status($node, $ev, 'succeeded'), 'after REASSIGN OWNED and DROP ROLE the transform runs');
is(body_of($ev)->{by}, 'regress Heir', 'as the role that now owns it');
psql("UPDATE webhook.endpoints SET description = 'touched' WHERE id = $shaped");
is(psql("SELECT transform_role FROM webhook.endpoints WHERE id = $shaped"), '"regress Heir"',
	'and the next change of the endpoint shows that role in transform_role');
intact('REASSIGN OWNED');

my ($out, $notices) = psql_result('DROP OWNED BY "regress Heir" CASCADE; DROP ROLE "regress Heir"');
like($notices, qr/endpoint "shaped" is paused/, 'DROP OWNED BY pauses the endpoint with a NOTICE');
is(psql("SELECT active, transform IS NULL, transform_role IS NULL, disabled_reason LIKE '%transform%'
           FROM webhook.endpoints WHERE id = $shaped"), 'f|t|t|t',
	'and clears its transform');
is(psql("SELECT count(*) FROM pg_roles WHERE rolname = 'regress Heir'"), '0', 'and the role could be dropped');
intact('DROP OWNED BY');

# --- DROP FUNCTION ... CASCADE ---------------------------------------------------
psql(q{CREATE FUNCTION shapes.tag(t text, at timestamptz, p jsonb) RETURNS jsonb LANGUAGE sql
           AS $$ SELECT p $$});
my $cascade = endpoint('cascade', 'shapes.tag');
# The endpoint's http:// URL would now be refused; that must not block the DROP.
($out, $notices) = psql_result('SET webhook.require_https = on; DROP FUNCTION shapes.tag(text, timestamptz, jsonb) CASCADE');
like($notices, qr/drop cascades to function webhook\._transform_$cascade/, 'CASCADE drops the transform');
like($notices, qr/endpoint "cascade" is paused/, 'and pauses the endpoint with a NOTICE');
is(psql("SELECT active, transform IS NULL FROM webhook.endpoints WHERE id = $cascade"), 'f|t',
	'the endpoint is paused, its transform cleared');
$ev = send_event('cascade.one');
intact('DROP FUNCTION CASCADE');
is(psql("SELECT count(*) FROM webhook.deliveries WHERE event_id = '$ev' AND status <> 'pending'"), '0',
	'its events are not delivered');
is(scalar(grep { $_->{path} eq '/cascade' } @{ requests($r) }), 0, 'nothing untransformed was sent');

# DROP SCHEMA ... CASCADE of the function's schema does the same.
my $schema = endpoint('schema', 'shapes_moved.tag2');
($out, $notices) = psql_result('DROP SCHEMA shapes_moved CASCADE');
like($notices, qr/endpoint "schema" is paused/, 'DROP SCHEMA CASCADE pauses the endpoint with a NOTICE');
is(psql("SELECT active, transform IS NULL FROM webhook.endpoints WHERE id = $schema"), 'f|t',
	'and clears its transform');
intact('DROP SCHEMA CASCADE');

# --- a transform whose function is gone anyway -----------------------------------
# With event triggers off (session_replication_role = replica) nothing clears
# the endpoint: the worker finds no function to run.
my $dangling = endpoint('dangling', 'shapes.gone');
psql(q{SET session_replication_role = replica; DROP FUNCTION shapes.gone(text, timestamptz, jsonb) CASCADE});
is(psql("SELECT count(*) FROM webhook.endpoints e JOIN pg_proc p ON p.oid = e.transform WHERE e.id = $dangling"),
	'0', 'the endpoint names a function that no longer exists');
$ev = send_event('dangling.one');
ok(wait_status($node, $ev, 'failed'), 'its delivery fails');
like(psql("SELECT error_class || ': ' || error FROM webhook.delivery_log WHERE event_id = '$ev'"),
	qr/^transform: .*no longer exists/, 'with error_class transform and the reason');
intact('dropped transform function');

# --- transforms run after the claim, under a time limit ---------------------------
endpoint('slow', 'shapes.slow');
$ev = send_event('slow.one', '{"sleep": 5}');
ok(poll_until($node, 'postgres',
		"SELECT count(*) FROM pg_stat_activity
		  WHERE backend_type = 'webhook delivery worker' AND wait_event = 'PgSleep'", '1', 60),
	'the slow transform is running');
# Its row: a first attempt the read made, or a delivery_state row claimed.
my ($locked) = psql_result(
	"SELECT (SELECT count(*) FROM (SELECT 1 FROM webhook.delivery_state WHERE event_id = '$ev' FOR UPDATE NOWAIT) d)
	      + (SELECT count(*) FROM (SELECT 1 FROM webhook.first_attempts WHERE event_id = '$ev' FOR UPDATE NOWAIT) f)");
is($locked, '1', 'while it runs, its claim has committed: the delivery row is not locked');
ok(wait_status($node, $ev, 'succeeded'), 'a transform within the limit is delivered');

psql('ALTER SYSTEM SET webhook.transform_timeout_ms = 500; SELECT pg_reload_conf()');
# Three in one claim: the first uses up the time, the others go back to the
# queue untried and are claimed again.
my @too_slow = split /\n/, psql(q{SELECT webhook.send('slow.two', '{"sleep": 600}') FROM generate_series(1, 3)});
my $quick = send_event('slow.three', '{"sleep": 0}');
canary_arrives($node, 'postgres', $r, 'a transform over the limit');
ok(wait_status($node, $_, 'failed'), 'a transform over the limit fails its delivery') for @too_slow;
like(psql("SELECT error_class || ': ' || error FROM webhook.delivery_log WHERE event_id = '$too_slow[0]'"),
	qr/^transform: .*webhook\.transform_timeout_ms/, 'with error_class transform, naming the setting');
my $ids = join ',', map { "'$_'" } @too_slow;
is(psql("SELECT count(*) FROM webhook.delivery_log WHERE event_id IN ($ids)"), '3',
	'each slow transform ran and was logged once, whether or not it fitted in the first batch');
like(slurp_file($node->logfile), qr/deliveries went back to the queue/, 'some had gone back to the queue');
ok(wait_status($node, $quick, 'succeeded'), 'another delivery of the same endpoint succeeds');
assert_server_intact($node, $started, 'transform timeout');

# --- nothing a transform sets outlives it ---------------------------------------
endpoint('meddle', 'shapes.meddle');
endpoint('report', 'shapes.report');
my $before = send_event('report.one');
ok(wait_status($node, $before, 'succeeded'), 'the reporting transform is delivered');
$ev = send_event('meddle.one');
ok(wait_status($node, $ev, 'succeeded'), 'a transform that changes settings is delivered');
my $after = send_event('report.two');
ok(wait_status($node, $after, 'succeeded'), 'and the next transform too');
is_deeply(body_of($after), body_of($before), 'which sees the worker\'s settings unchanged')
  or diag explain [ body_of($before), body_of($after) ];
is(psql("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND objid = 4242"), '0',
	'and no session lock taken by the transform is left');
intact('transform settings');

# --- transforms run read-only ---------------------------------------------------
# A write would commit with the transform's transaction; a transform that
# sent its own endpoint's event types would loop for ever.
psql(q{
	CREATE TABLE shapes.written (note text);
	GRANT INSERT ON shapes.written TO PUBLIC;
	CREATE FUNCTION shapes.writes(t text, at timestamptz, p jsonb) RETURNS jsonb LANGUAGE plpgsql
	    AS $$ BEGIN INSERT INTO shapes.written VALUES (t); RETURN p; END $$;
	CREATE FUNCTION shapes.sends(t text, at timestamptz, p jsonb) RETURNS jsonb LANGUAGE plpgsql
	    AS $$ BEGIN PERFORM webhook.send('echo.' || t, p); RETURN p; END $$;
	CREATE FUNCTION shapes.unlocks(t text, at timestamptz, p jsonb) RETURNS jsonb LANGUAGE plpgsql
	    AS $$ BEGIN SET LOCAL transaction_read_only = off; INSERT INTO shapes.written VALUES (t); RETURN p; END $$;
});
endpoint($_, "shapes.$_") for qw(writes sends unlocks);
for my $name (qw(writes sends unlocks))
{
	$ev = send_event("$name.one");
	ok(poll_until($node, 'postgres',
			"SELECT status <> 'pending' FROM webhook.deliveries WHERE event_id = '$ev'", 't', 60),
		"$name: the delivery is settled");
	like(psql("SELECT d.status || ' ' || coalesce(l.error_class || ': ' || l.error, '')
	             FROM webhook.deliveries d LEFT JOIN webhook.delivery_log l ON l.delivery_id = d.id
	            WHERE d.event_id = '$ev'"),
		qr/^failed transform: transform $name failed: .*read-only/,
		"$name: a transform that writes fails its delivery, with error_class transform and the reason");
}
is(psql('SELECT count(*) FROM shapes.written'), '0', 'nothing a transform wrote was kept');
is(psql("SELECT count(*) FROM webhook.events WHERE event_type LIKE 'echo.%'"), '0',
	'no event a transform sent was kept');
is(scalar(grep { $_->{path} =~ m{^/(writes|sends|unlocks)$} } @{ requests($r) }), 0,
	'and nothing was sent for them');
intact('read-only transforms');

# --- a transform that ignores its cancel --------------------------------------------
# It catches query_canceled and carries on: the worker cannot take it back
# but ends itself, and the restarted worker fails that endpoint's deliveries
# at once, without running the transform, until the endpoint or the function
# changes.  Nothing else is held, and nothing is lost.
psql(q{
	CREATE FUNCTION shapes.stubborn(t text, at timestamptz, p jsonb) RETURNS jsonb LANGUAGE plpgsql
	    AS $$
	    BEGIN
	        LOOP
	            BEGIN
	                PERFORM pg_sleep(0.2);
	            EXCEPTION WHEN query_canceled THEN
	                RAISE LOG 'stubborn transform caught a cancel';
	            END;
	        END LOOP;
	    END $$;
});
my $stubborn = endpoint('stubborn', 'shapes.stubborn');
endpoint('bystander');
my $worker_sql = "SELECT pid FROM pg_stat_activity
                   WHERE backend_type = 'webhook delivery worker' AND datname = 'postgres'";
my $worker_before = psql($worker_sql);
# Both are claimed in one batch: the bystander's delivery is not lost when
# the worker ends itself.
my ($stuck, $bystander) = split /\|/,
  psql(q{SELECT webhook.send('stubborn.one', '{}'), webhook.send('bystander.one', '{}')});
canary_arrives($node, 'postgres', $r, 'a transform that ignores its cancel');
ok(wait_status($node, $bystander, 'succeeded'), 'a delivery claimed with it is delivered');
ok(wait_status($node, $stuck, 'failed'), 'its delivery fails');
like(psql("SELECT error_class || ': ' || error FROM webhook.delivery_log WHERE event_id = '$stuck'"),
	qr/^transform: transform stubborn failed: .*ignored its cancel.*not run again until/,
	'with error_class transform and the reason');
like(slurp_file($node->logfile), qr/the transform of endpoint $stubborn ignored its cancel/,
	'the worker said why it ended itself');
my $worker_after = psql($worker_sql);
isnt($worker_after, $worker_before, 'the worker was restarted');
assert_server_intact($node, $started, 'a transform that ignores its cancel');

$ev = send_event('stubborn.two');
ok(wait_status($node, $ev, 'failed'), 'the next delivery of that endpoint fails');
like(psql("SELECT error_class || ': ' || error FROM webhook.delivery_log WHERE event_id = '$ev'"),
	qr/^transform: .*ignored its cancel/, 'for the same reason');
is(psql($worker_sql), $worker_after, 'without running the transform: the worker stayed');
intact('a transform that ignored its cancel, again');

# A change of the endpoint row runs the transform again.
psql("UPDATE webhook.endpoints SET description = 'changed' WHERE id = $stubborn");
$ev = send_event('stubborn.three');
ok(wait_status($node, $ev, 'failed'), 'after the endpoint changed, the transform runs, and fails again');
my $logged = () = slurp_file($node->logfile) =~ /the transform of endpoint $stubborn ignored its cancel/g;
is($logged, 2, 'the worker ended itself once more');
# So does a new version of the function.
psql(q{CREATE OR REPLACE FUNCTION shapes.stubborn(t text, at timestamptz, p jsonb) RETURNS jsonb
       LANGUAGE sql AS $$ SELECT p $$});
$ev = send_event('stubborn.four');
ok(wait_status($node, $ev, 'succeeded'), 'after the function changed, the transform runs, and succeeds');
intact('a stubborn transform replaced');

# --- the wrapper follows its endpoint -------------------------------------------
my $moved = endpoint('moved', 'shapes.report');
psql("UPDATE webhook.endpoints SET id = 424242 WHERE id = $moved");
is(psql("SELECT string_agg(proname, ',') FROM pg_proc WHERE proname IN ('_transform_$moved', '_transform_424242')"),
	'_transform_424242', 'a new endpoint id moves the wrapper');
psql("UPDATE webhook.endpoints SET transform = NULL WHERE id = 424242");
is(psql("SELECT count(*) FROM pg_proc WHERE proname = '_transform_424242'"), '0',
	'clearing the transform drops the wrapper');
is(psql("SELECT active FROM webhook.endpoints WHERE id = 424242"), 't', 'and leaves the endpoint active');

# --- TRUNCATE takes the wrappers along ------------------------------------------
endpoint('truncated', 'shapes.report');
psql('TRUNCATE webhook.endpoints CASCADE');
is(psql("SELECT count(*) FROM pg_proc WHERE proname ~ '^_transform_[0-9]+\$'"), '0',
	'TRUNCATE of the endpoints drops every transform wrapper');
psql('DROP FUNCTION shapes.meddle(text, timestamptz, jsonb)');
intact('TRUNCATE');
endpoint('report', 'shapes.report');

# --- pg_dump and a restore keep each transform's role ----------------------------
psql(q{DELETE FROM webhook.endpoints WHERE name = 'dangling';
       CREATE ROLE regress_dumped;
       INSERT INTO webhook.endpoints (name, url, event_types, transform, transform_role)
       VALUES ('dumped', 'http://127.0.0.1:1/dumped', '{dumped.*}', 'shapes.report', 'regress_dumped')});
my $dump = PostgreSQL::Test::Utils::tempdir() . '/dump.sql';
$node->command_ok([ 'pg_dump', '-f', $dump, '-d', $node->connstr('postgres') ], 'pg_dump');
psql('CREATE DATABASE restored');
$node->command_ok([ 'psql', '-X', '-q', '-v', 'ON_ERROR_STOP=1', '-f', $dump, '-d', $node->connstr('restored') ],
	'the dump restores');
is($node->safe_psql('restored',
		"SELECT e.transform_role::text || '|' || p.proowner::regrole::text
		   FROM webhook.endpoints e JOIN pg_proc p ON p.proname = '_transform_' || e.id
		  WHERE e.name = 'dumped'"),
	'regress_dumped|regress_dumped', 'the restored transform keeps its role');
intact('pg_dump and restore');

# --- DROP EXTENSION with transforms set ------------------------------------------
psql('DROP EXTENSION webhook');
is(psql("SELECT count(*) FROM pg_proc WHERE proname LIKE '\\_transform\\_%'"), '0',
	'DROP EXTENSION takes the transform wrappers with it');
psql('DROP FUNCTION shapes.report(text, timestamptz, jsonb)');
assert_server_intact($node, $started, 'DROP EXTENSION');

$r->stop;
done_testing();
