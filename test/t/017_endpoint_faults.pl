# One endpoint's row, lock or lease must never stop the others: a dead
# worker's claims lapse while the worker idles; a locked pending delivery
# (plain and on an ordered endpoint); timeout_ms = 2147483647; sealed values
# that no longer decrypt; a 410 from an endpoint whose URL require_https now
# refuses, or from one holding a timeout_ms or header the checks now refuse
# (and their auto-disable); a tiny rate limit; a huge retry schedule; a
# Retry-After date far in the future; an attempts count or a failure streak
# out of range; a locked endpoint_state row.  Values the write-time checks
# may refuse are forced in as a row written before those checks existed
# would hold them: the column's CHECK constraints dropped, and the endpoints
# triggers off (session_replication_role = replica).  After each fault: the
# postmaster never restarted, and an event sent now is delivered.
use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin";
use WebhookTest;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(sleep time);

my $r = start_receiver();
my $node = node_with_webhook('endpoint_faults');
$node->safe_psql('postgres', 'CREATE EXTENSION webhook');
my $started = postmaster_started($node);

sub psql { return $node->safe_psql('postgres', $_[0]); }

# An endpoint for event type $type at the receiver's $path; returns its id.
sub endpoint
{
	my ($type, $path, %cols) = @_;
	my @names = ('name', 'url', 'event_types', sort keys %cols);
	my @vals = ("'$type'", "'" . $r->url($path) . "'", "'{$type}'", map { $cols{$_} } sort keys %cols);
	return psql(sprintf('INSERT INTO webhook.endpoints (%s) VALUES (%s) RETURNING id',
		join(', ', @names), join(', ', @vals)));
}

# Drop a table's CHECK constraints on one column, as before they existed.
sub drop_checks
{
	my ($table, $column) = @_;
	psql(qq{DO \$\$
		DECLARE c name;
		BEGIN
		    FOR c IN SELECT conname FROM pg_constraint
		              WHERE conrelid = '$table'::regclass AND contype = 'c'
		                AND conkey = ARRAY[(SELECT attnum FROM pg_attribute
		                                     WHERE attrelid = '$table'::regclass AND attname = '$column')] LOOP
		        EXECUTE format('ALTER TABLE %s DROP CONSTRAINT %I', '$table'::regclass, c);
		    END LOOP;
		END \$\$});
}

# Write a value that today's checks refuse, as a row written before they
# existed holds it: without the column's CHECK constraints (the bounds came
# later), and past the endpoints triggers.
sub force
{
	my ($id, $column, $value) = @_;
	drop_checks('webhook.endpoints', $column);
	psql("SET session_replication_role = replica;
	      UPDATE webhook.endpoints SET $column = $value WHERE id = $id");
}

sub send_event
{
	my ($type) = @_;
	return psql("SELECT webhook.send('$type', '{}')");
}

# Events queued for an endpoint that is inactive once they commit: due, but
# not claimed until the endpoint is activated again.
sub queue_inactive
{
	my ($id, $type, $n) = @_;
	return split /\n/, psql("BEGIN;
		UPDATE webhook.endpoints SET active = false WHERE id = $id;
		" . pending_for_endpoint_sql($id, $type, $n) . ";
		COMMIT;");
}

sub status_is
{
	my ($ev, $status, $timeout_s) = @_;
	return poll_until($node, 'postgres',
		"SELECT count(*) > 0 AND bool_and(status = '$status')
		   FROM webhook.deliveries WHERE event_id = '$ev'",
		't', $timeout_s // 30);
}

sub arrived
{
	my ($path) = @_;
	return scalar grep { $_->{path} eq $path } @{ requests($r) };
}

# Transactions the database commits while nothing is sent: a worker that
# spins commits thousands in a few seconds; an idle one, next to none.
sub commits_while_idle
{
	my $count = sub {
		return psql("SELECT pg_stat_force_next_flush();
		             SELECT xact_commit FROM pg_stat_database WHERE datname = 'postgres'");
	};
	my $before = $count->();
	sleep 3;
	return $count->() - $before;
}

# An unrelated endpoint that must keep flowing through every fault.
my $other = endpoint('other.ping', '/ok/other');
my $n_other = 0;

sub others_flow
{
	my ($label) = @_;
	my $ev = send_event('other.ping');
	$n_other++;
	ok(status_is($ev, 'succeeded'), "$label: another endpoint's event is delivered");
}

sub intact
{
	my ($label) = @_;
	assert_server_intact($node, $started, $label);
	canary_arrives($node, 'postgres', $r, $label, 30);
}

intact('start');

# --- a dead worker's claims are re-taken once their lease lapses -----------------
{
	# Lease: timeout_ms plus 30 s.  Claimed 28 s ago, it lapses in about 3 s,
	# while nothing else is pending that would wake the worker.
	my $ep = endpoint('lease.test', '/ok/lease', timeout_ms => 1000);
	my $ev = psql("BEGIN;
		SELECT webhook.send('lease.test', '{}');
		UPDATE webhook.delivery_state SET claimed_at = now() - interval '28 seconds'
		 WHERE endpoint_id = $ep;
		COMMIT;");
	ok(status_is($ev, 'succeeded', 30), 'lapsed lease: the delivery is sent once its lease lapses');
	is(arrived('/ok/lease'), 1, 'lapsed lease: sent once');
	intact('lapsed lease');
}

# --- a pending delivery locked by another session --------------------------------------
{
	my $ep = endpoint('locked.test', '/ok/locked');
	my ($ev) = queue_inactive($ep, 'locked.test', 1);
	my $bg = $node->background_psql('postgres');
	$bg->query_safe("BEGIN; SELECT id FROM webhook.delivery_state WHERE endpoint_id = $ep FOR UPDATE");
	psql("UPDATE webhook.endpoints SET active = true WHERE id = $ep");
	others_flow('locked row');
	cmp_ok(commits_while_idle(), '<', 60, 'locked row: the worker does not spin on it');
	is(arrived('/ok/locked'), 0, 'locked row: not sent while locked');
	intact('locked row');
	$bg->query_safe('ROLLBACK');
	ok(status_is($ev, 'succeeded'), 'locked row: sent once the lock is released');
	$bg->quit;
}

# --- the oldest delivery of an ordered endpoint locked (#5) ----------------------------
{
	my $ep = endpoint('ordered.test', '/ok/ordered', ordered => 'true');
	my @evs = queue_inactive($ep, 'ordered.test', 2);
	my $first = psql("SELECT id FROM webhook.deliveries WHERE event_id = '$evs[0]'");
	my $bg = $node->background_psql('postgres');
	$bg->query_safe("BEGIN; SELECT webhook.retry($first)");
	psql("UPDATE webhook.endpoints SET active = true WHERE id = $ep");
	others_flow('ordered, locked');
	cmp_ok(commits_while_idle(), '<', 60, 'ordered, locked: the worker does not spin on it');
	is(arrived('/ok/ordered'), 0, 'ordered, locked: nothing of the endpoint sent out of order');
	intact('ordered, locked');
	$bg->query_safe('COMMIT');
	ok(status_is($evs[1], 'succeeded'), 'ordered, locked: the endpoint resumes once the lock is released');
	is( join(',', map { $_->{headers}{'webhook-id'} } grep { $_->{path} eq '/ok/ordered' } @{ requests($r) }),
		join(',', @evs), 'ordered, locked: in order');
	$bg->quit;
}

# --- a delivery in flight locked by another session when its outcome comes in -------------
{
	my $ep = endpoint('inflight.test', '/delay/3000/ok/inflight');
	# The session is open before the request starts, so that taking the lock
	# is quick next to the receiver's 3 s, however slow connecting is.
	my $bg = $node->background_psql('postgres');
	$bg->query_safe('BEGIN');
	my $ev = send_event('inflight.test');
	my $id = psql("SELECT id FROM webhook.deliveries WHERE event_id = '$ev'");
	ok(poll_until($node, 'postgres', "SELECT claimed_at IS NOT NULL FROM webhook.deliveries WHERE id = $id"),
		'locked in flight: claimed');
	$bg->query_safe("SELECT webhook.retry($id)");
	ok(poll_until($node, 'postgres', "SELECT count(*) FROM webhook.delivery_log WHERE delivery_id = $id", '0'),
		'locked in flight: not recorded yet');
	sleep 3;
	others_flow('locked in flight');
	intact('locked in flight');
	$bg->query_safe('COMMIT');
	ok(status_is($ev, 'succeeded', 60), 'locked in flight: recorded once the lock is released');
	is(arrived('/delay/3000/ok/inflight'), 1, 'locked in flight: sent once');
	$bg->quit;
}

# --- timeout_ms = 2147483647 (#3) -------------------------------------------------------
{
	my $ep = endpoint('timeout.test', '/ok/timeout');
	force($ep, 'timeout_ms', 2147483647);
	my $ev = send_event('timeout.test');
	others_flow('huge timeout');
	ok(status_is($ev, 'succeeded'), 'huge timeout: its own delivery is sent');
	intact('huge timeout');
	psql("DELETE FROM webhook.endpoints WHERE id = $ep");
}

# --- headers that the write-time checks refuse --------------------------------------------
{
	my %bad = (
		value => q{'{"X-Ok": "a\r\nX-Smuggled: 1"}'},
		name => q{'{"X-Bad Name": "v"}'},
		reserved => q{'{"Transfer-Encoding": "chunked"}'});
	my %ev;
	for my $what (sort keys %bad)
	{
		my $ep = endpoint("badheader.$what", '/ok/badheader');
		force($ep, 'headers', $bad{$what});
		$ev{$what} = send_event("badheader.$what");
	}
	for my $what (sort keys %bad)
	{
		ok(status_is($ev{$what}, 'failed'), "bad header $what: the delivery failed");
		is(psql("SELECT string_agg(error_class, ',') FROM webhook.delivery_log WHERE event_id = '$ev{$what}'"),
			'invalid_header', "bad header $what: logged as error_class invalid_header");
	}
	# The signature header obeys the same rule as the extra headers.
	my $sig = endpoint('badheader.signature', '/ok/badheader',
		signing => "'hmac-sha256'", signature_header => "'X-Signature'");
	force($sig, 'signature_header', q{'Transfer-Encoding'});
	my $sig_ev = send_event('badheader.signature');
	ok(status_is($sig_ev, 'failed'), 'reserved signature_header: the delivery failed');
	is(psql("SELECT string_agg(error_class, ',') FROM webhook.delivery_log WHERE event_id = '$sig_ev'"),
		'invalid_header', 'reserved signature_header: logged as error_class invalid_header');
	is(arrived('/ok/badheader'), 0, 'bad headers: nothing was sent');
	others_flow('bad headers');
	intact('bad headers');
	psql("DELETE FROM webhook.endpoints WHERE name LIKE 'badheader.%'");
}

# --- a 410 from an endpoint that webhook.require_https now refuses (#7) ------------------
{
	my $ep = endpoint('gone.test', '/status/410');
	psql('ALTER SYSTEM SET webhook.require_https = on; SELECT pg_reload_conf()');
	ok(poll_until($node, 'postgres', 'SHOW webhook.require_https', 'on', 30), 'require_https: on');
	my $ev = send_event('gone.test');
	ok(status_is($ev, 'failed'), '410: the delivery failed');
	ok( poll_until($node, 'postgres',
			"SELECT NOT active AND disabled_reason LIKE '%410%' FROM webhook.endpoints WHERE id = $ep"),
		'410: the endpoint is deactivated although its URL is plain http');
	others_flow('410 under require_https');
	intact('410 under require_https');
	like( $node->psql('postgres', "UPDATE webhook.endpoints SET active = true WHERE id = $ep", stderr => \my $err),
		qr/^[1-9]/, 're-activating the plain http endpoint is still refused');
	like($err, qr/require_https/, 'and the error says why');
	psql('ALTER SYSTEM RESET webhook.require_https; SELECT pg_reload_conf()');
	ok(poll_until($node, 'postgres', 'SHOW webhook.require_https', 'off', 30), 'require_https: off');
}

# --- a 410 from an endpoint holding a value today's bounds refuse --------------------------------
{
	my $ep = endpoint('oldrow.test', '/status/410/oldrow');
	force($ep, 'timeout_ms', 2147483647);
	my $ev = send_event('oldrow.test');
	ok(status_is($ev, 'failed'), '410, old row: the delivery failed');
	ok( poll_until($node, 'postgres',
			"SELECT NOT active AND disabled_reason LIKE '%410%' FROM webhook.endpoints WHERE id = $ep"),
		'410, old row: the endpoint is deactivated although its timeout_ms is out of bounds');
	others_flow('410, old row');
	intact('410, old row');
	psql("DELETE FROM webhook.endpoints WHERE id = $ep");
}

# --- a 410 from an endpoint that cannot be deactivated (#7) -----------------------------------
{
	my $ep = endpoint('stuck.test', '/status/410/stuck', retry_schedule_s => "'{}'");
	psql(qq{
		CREATE FUNCTION public.refuse_deactivation() RETURNS trigger LANGUAGE plpgsql AS \$\$
		BEGIN
		    IF OLD.id = $ep THEN
		        RAISE EXCEPTION 'endpoint $ep stays on purpose';
		    END IF;
		    RETURN NEW;
		END \$\$;
		CREATE TRIGGER refuse_deactivation BEFORE UPDATE ON webhook.endpoints
		    FOR EACH ROW EXECUTE FUNCTION public.refuse_deactivation();});
	my $log_offset = -s $node->logfile;
	my $ev = send_event('stuck.test');
	ok(status_is($ev, 'failed'), '410, not deactivated: the delivery is recorded as failed');
	is(psql("SELECT active FROM webhook.endpoints WHERE id = $ep"), 't', '410, not deactivated: still active');
	ok($node->log_contains(qr/could not deactivate webhook endpoint $ep .*stays on purpose/, $log_offset),
		'410, not deactivated: the server log says why');
	others_flow('410, not deactivated');
	intact('410, not deactivated');
	psql("DROP TRIGGER refuse_deactivation ON webhook.endpoints; DELETE FROM webhook.endpoints WHERE id = $ep");
}

# --- one row of a batch that cannot be recorded (#7) ---------------------------------------
{
	my $ep = endpoint('unloggable.test', '/ok/unloggable');
	psql(qq{
		CREATE FUNCTION public.refuse_log() RETURNS trigger LANGUAGE plpgsql AS \$\$
		BEGIN
		    IF NEW.endpoint_id = $ep THEN
		        RAISE EXCEPTION 'this endpoint''s log is refused on purpose';
		    END IF;
		    RETURN NEW;
		END \$\$;
		CREATE TRIGGER refuse_log BEFORE INSERT ON webhook.delivery_log
		    FOR EACH ROW EXECUTE FUNCTION public.refuse_log();});
	# Sent in one transaction, so both finish in one batch.
	my ($bad, $good) = split /\n/, psql("BEGIN;
		SELECT webhook.send('unloggable.test', '{}');
		SELECT webhook.send('other.ping', '{}');
		COMMIT;");
	$n_other++;
	ok(status_is($good, 'succeeded'), 'one unrecordable row: the other outcome of its batch is recorded');
	others_flow('one unrecordable row');
	intact('one unrecordable row');
	psql('DROP TRIGGER refuse_log ON webhook.delivery_log');
	others_flow('log accepts the row again');    # new outcomes retry the held one too
	ok(status_is($bad, 'succeeded', 60), 'one unrecordable row: recorded once the log accepts it');
	psql("DELETE FROM webhook.endpoints WHERE id = $ep");
}

# --- auto-disable when one of the failing endpoints cannot be updated ---------------------------
{
	psql("ALTER SYSTEM SET webhook.disable_after = '2s'; SELECT pg_reload_conf()");
	ok(poll_until($node, 'postgres', 'SHOW webhook.disable_after', '2s', 30), 'auto-disable: 2 s');
	# 1000 s scaled by 0.001: about 1 s between attempts.
	my %ep = map {
		($_ => endpoint("$_.test", "/status/500/$_", retry_schedule_s => "'{" . join(',', (1000) x 20) . "}'"))
	} qw(frozen dying badname);
	force($ep{badname}, 'headers', q{'{"X-Bad Name": "v"}'});
	psql(qq{
		CREATE FUNCTION public.refuse_update() RETURNS trigger LANGUAGE plpgsql AS \$\$
		BEGIN
		    IF OLD.id = $ep{frozen} THEN
		        RAISE EXCEPTION 'endpoint $ep{frozen} is frozen on purpose';
		    END IF;
		    RETURN NEW;
		END \$\$;
		CREATE TRIGGER refuse_update BEFORE UPDATE ON webhook.endpoints
		    FOR EACH ROW EXECUTE FUNCTION public.refuse_update();});
	my $log_offset = -s $node->logfile;
	# The frozen one fails first, so it is due for disabling whenever the
	# other one is.
	send_event('frozen.test');
	ok(poll_until($node, 'postgres', "SELECT count(*) > 0 FROM webhook.delivery_log WHERE endpoint_id = $ep{frozen}"),
		'auto-disable: the frozen endpoint is failing');
	send_event('dying.test');
	ok(poll_until($node, 'postgres', "SELECT NOT active FROM webhook.endpoints WHERE id = $ep{dying}"),
		'auto-disable: the failing endpoint that can be updated is disabled');
	send_event('badname.test');
	ok(poll_until($node, 'postgres', "SELECT NOT active FROM webhook.endpoints WHERE id = $ep{badname}"),
		'auto-disable: an endpoint with a header name the checks now refuse is disabled');
	is(psql("SELECT active FROM webhook.endpoints WHERE id = $ep{frozen}"), 't',
		'auto-disable: the one that cannot be updated stays active');
	my $why = qr/could not disable webhook endpoint $ep{frozen}: endpoint $ep{frozen} is frozen on purpose/;
	my $deadline = time + 30;
	sleep 0.1 while !$node->log_contains($why, $log_offset) && time < $deadline;
	ok($node->log_contains($why, $log_offset), 'auto-disable: and the server log says why');
	others_flow('auto-disable');
	intact('auto-disable');
	psql("DROP TRIGGER refuse_update ON webhook.endpoints;
	      DELETE FROM webhook.endpoints WHERE id IN ($ep{frozen}, $ep{dying}, $ep{badname})");

	# Now a session that stays open is editing the endpoint row.
	%ep = map {
		($_ => endpoint("$_.test", "/status/500/$_", retry_schedule_s => "'{" . join(',', (1000) x 20) . "}'"))
	} qw(lockedep dying2);
	my $bg = $node->background_psql('postgres');
	$bg->query_safe("BEGIN; UPDATE webhook.endpoints SET description = 'editing' WHERE id = $ep{lockedep}");
	send_event('lockedep.test');
	ok(poll_until($node, 'postgres', "SELECT count(*) > 0 FROM webhook.delivery_log WHERE endpoint_id = $ep{lockedep}"),
		'auto-disable, locked: the locked endpoint is failing');
	send_event('dying2.test');
	ok(poll_until($node, 'postgres', "SELECT NOT active FROM webhook.endpoints WHERE id = $ep{dying2}"),
		'auto-disable, locked: the failing endpoint that is not locked is disabled');
	others_flow('auto-disable, locked');
	intact('auto-disable, locked');
	$bg->query_safe('ROLLBACK');
	$bg->quit;
	ok(poll_until($node, 'postgres', "SELECT NOT active FROM webhook.endpoints WHERE id = $ep{lockedep}"),
		'auto-disable, locked: disabled too once the lock is gone');
	psql("DELETE FROM webhook.endpoints WHERE id IN ($ep{lockedep}, $ep{dying2});
	      ALTER SYSTEM RESET webhook.disable_after; SELECT pg_reload_conf()");
}

# --- rate_limit_per_s = 1e-300 (#8) ----------------------------------------------------------
{
	my $ep = endpoint('slow.test', '/ok/slow');
	force($ep, 'rate_limit_per_s', '1e-300');
	my ($ev1, $ev2) = (send_event('slow.test'), send_event('slow.test'));
	ok(poll_until($node, 'postgres',
			"SELECT count(*) FROM webhook.deliveries WHERE endpoint_id = $ep AND status = 'succeeded'", '1'),
		'tiny rate limit: the first event is sent');
	cmp_ok(commits_while_idle(), '<', 60, 'tiny rate limit: the worker does not spin');
	others_flow('tiny rate limit');
	psql("DELETE FROM webhook.endpoints WHERE id = $ep");
	cmp_ok(commits_while_idle(), '<', 60, 'tiny rate limit: nor once the endpoint is deleted');
	intact('tiny rate limit');
}

# --- retry_schedule_s of 1,000,000 elements (#9) ----------------------------------------------------
SKIP:
{
	my $pid = psql("SELECT pid FROM pg_stat_activity WHERE backend_type = 'webhook delivery worker'");
	my $rss = sub {
		open my $fh, '<', "/proc/$pid/status" or return undef;
		my ($kb) = map { /^VmHWM:\s+(\d+)\s+kB/ ? $1 : () } <$fh>;
		return $kb;
	};
	my $before = $rss->();
	skip "cannot read /proc/$pid/status", 3 unless defined $before;

	my $ep = endpoint('long.test', '/ok/long');
	force($ep, 'retry_schedule_s', 'array_fill(5, ARRAY[1000000])');
	psql("SELECT webhook.send('long.test', jsonb_build_object('i', g)) FROM generate_series(1, 40) g");
	ok(poll_until($node, 'postgres',
			"SELECT count(*) FROM webhook.deliveries WHERE endpoint_id = $ep AND status = 'succeeded'", '40', 60),
		'huge retry schedule: the 40 events are sent');
	my $after = $rss->();
	diag("worker peak RSS: $before kB before, " . ($after // '?') . ' kB after');
	cmp_ok(($after // 1e9) - $before, '<', 100 * 1024, 'huge retry schedule: the worker peak RSS grew by less than 100 MB');
	intact('huge retry schedule');
	psql("DELETE FROM webhook.endpoints WHERE id = $ep");
}

# --- a Retry-After date far in the future --------------------------------------------------------------
{
	my $ep = endpoint('later.test', '/status/503/retry-after/Fri,%2001%20Jan%202100%2000:00:00%20GMT',
		retry_schedule_s => "'{1,1,1}'");
	my $ev = send_event('later.test');
	ok( poll_until($node, 'postgres',
			"SELECT attempts = 1 AND status = 'pending'
			    AND next_attempt_at BETWEEN now() + interval '23 hours' AND now() + interval '25 hours'
			   FROM webhook.deliveries WHERE event_id = '$ev'"),
		'Retry-After in 2100: the next attempt is capped at a day');
	intact('Retry-After in 2100');
	psql("DELETE FROM webhook.endpoints WHERE id = $ep");
}

# --- sealed values that no longer decrypt (#4) --------------------------------------------------------------
{
	my $write_key = sub {
		my ($name) = @_;
		my $file = $node->data_dir . "/$name";
		open my $fh, '>', $file or die "cannot write $file: $!";
		print $fh join('', map { sprintf '%02x', int(rand(256)) } 1 .. 32), "\n";
		close $fh;
		chmod 0600, $file or die "chmod $file: $!";
	};
	my $use_key = sub {
		my ($name) = @_;
		psql("ALTER SYSTEM SET webhook.master_key_file = '$name'; SELECT pg_reload_conf()");
		ok(poll_until($node, 'postgres', 'SHOW webhook.master_key_file', $name, 30), "key $name in use");
	};
	$write_key->('a.key');
	$write_key->('b.key');
	$use_key->('a.key');
	my %ep = (
		header => endpoint('sealed.header', '/ok/sealed', signing => "'none'",
			headers => q{'{"X-Api-Key": "hv-2718281828"}'}),
		password => endpoint('sealed.password', '/ok/sealed', signing => "'none'",
			auth_username => "'u'", auth_password => "'pw-1414213562'"),
		secret => endpoint('sealed.secret', '/ok/sealed'),
		previous => endpoint('sealed.previous', '/ok/sealed'));
	# Rotated under a.key; then a new secret, sealed under b.key: only the
	# previous one no longer decrypts.
	psql("SELECT webhook.rotate_secret($ep{previous})");
	$use_key->('b.key');
	psql("UPDATE webhook.endpoints SET secret = webhook.generate_secret('standard') WHERE id = $ep{previous}");
	my %ev = map { ($_ => send_event("sealed.$_")) } sort keys %ep;
	for my $what (sort keys %ep)
	{
		ok(status_is($ev{$what}, 'failed'), "undecryptable $what: the delivery failed");
		my $log = psql("SELECT error_class || '|' || error FROM webhook.delivery_log WHERE event_id = '$ev{$what}'");
		like($log, qr/^secret\|.*decrypt/, "undecryptable $what: logged as error_class secret, saying why")
		  or diag $log;
		unlike($log, qr/2718281828|1414213562|whsec_|whenc:/, "undecryptable $what: no secret in the message");
		like(psql("SELECT last_error FROM webhook.endpoint_health WHERE id = $ep{$what}"), qr/^secret: /,
			"undecryptable $what: endpoint_health shows it");
	}
	is(arrived('/ok/sealed'), 0, 'undecryptable: nothing was sent without its secrets');
	# Back to the default key (webhook_master.key), under which the other
	# endpoints' secrets are sealed: they flow past the ones that do not open.
	psql("ALTER SYSTEM RESET webhook.master_key_file; SELECT pg_reload_conf()");
	ok(poll_until($node, 'postgres', 'SHOW webhook.master_key_file', '', 30), 'the default key in use again');
	others_flow('undecryptable');
	intact('undecryptable');
}

# --- deliveries.attempts out of range, written by an operator ---------------------------
{
	my $ep = endpoint('attempts.test', '/status/500/attempts', retry_schedule_s => "'{1,1}'");
	psql('CREATE ROLE ops;
	      GRANT USAGE ON SCHEMA webhook TO ops;
	      GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA webhook TO ops;
	      GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA webhook TO ops;');
	my $insert = sub {
		my ($attempts) = @_;
		return "SET ROLE ops;
			WITH ev AS (INSERT INTO webhook.events (event_type, payload, txid)
			            VALUES ('attempts.test', '{}', '0') RETURNING id)
			INSERT INTO webhook.delivery_state (event_id, endpoint_id, attempts)
			SELECT ev.id, $ep, $attempts FROM ev RETURNING event_id";
	};
	my @values = (-1000000000, 2147483647);
	for my $attempts (@values)
	{
		my $ret = $node->psql('postgres', $insert->($attempts), stderr => \my $err);
		isnt($ret, 0, "attempts = $attempts: refused");
		like($err, qr/attempts/, "attempts = $attempts: the error names the column");
	}
	# Rows written before that check existed.
	drop_checks('webhook.delivery_state', 'attempts');
	my %ev = map { ($_ => psql($insert->($_))) } @values;
	others_flow('attempts out of range');    # wakes the worker
	ok(status_is($ev{-1000000000}, 'failed', 60), 'attempts = -1000000000: fails after its retries');
	is(psql("SELECT format('%s..%s (%s)', min(attempt), max(attempt), count(*)) FROM webhook.delivery_log WHERE event_id = '$ev{-1000000000}'"),
		'1..3 (3)', 'attempts = -1000000000: counted from the first attempt');
	ok(status_is($ev{2147483647}, 'failed', 60), 'attempts = 2147483647: fails, no retry left');
	is(psql("SELECT format('%s..%s (%s)', min(attempt), max(attempt), count(*)) FROM webhook.delivery_log WHERE event_id = '$ev{2147483647}'"),
		'1000000..1000000 (1)', 'attempts = 2147483647: logged as the last attempt the bound allows');
	others_flow('attempts out of range');
	intact('attempts out of range');
	psql("DELETE FROM webhook.endpoints WHERE id = $ep");
}

# --- a failure streak at the integer limit ---------------------------------------------
{
	my $ep = endpoint('streak.test', '/status/500/streak', retry_schedule_s => "'{}'");
	my $ret = $node->psql('postgres', "INSERT INTO webhook.endpoint_state (endpoint_id, consecutive_failures) VALUES ($ep, -1)",
		stderr => \my $err);
	isnt($ret, 0, 'negative failure streak: refused');
	psql("INSERT INTO webhook.endpoint_state (endpoint_id, consecutive_failures) VALUES ($ep, 2147483647)
	      ON CONFLICT (endpoint_id) DO UPDATE SET consecutive_failures = 2147483647");
	my $ev = send_event('streak.test');
	ok(status_is($ev, 'failed'), 'streak at the limit: the failure is recorded');
	is(psql("SELECT consecutive_failures FROM webhook.endpoint_state WHERE endpoint_id = $ep"), '2147483647',
		'streak at the limit: stays at the limit');
	others_flow('streak at the limit');
	intact('streak at the limit');
	psql("DELETE FROM webhook.endpoints WHERE id = $ep");
}

# --- an endpoint_state row locked by another session ---------------------------------------
{
	my $ep = endpoint('statelock.test', '/ok/statelock');
	ok(status_is(send_event('statelock.test'), 'succeeded'), 'locked state: the endpoint has a state row');
	my $bg = $node->background_psql('postgres');
	$bg->query_safe("BEGIN; SELECT * FROM webhook.endpoint_state WHERE endpoint_id = $ep FOR UPDATE");
	my $ev = send_event('statelock.test');
	others_flow('locked state');
	intact('locked state');
	$bg->query_safe('COMMIT');
	ok(status_is($ev, 'succeeded', 60), 'locked state: recorded once the lock is released');
	$bg->quit;
	psql("DELETE FROM webhook.endpoints WHERE id = $ep");
}

is(arrived('/ok/other'), $n_other, 'the other endpoint got each of its events once');

$r->stop;
$node->stop;
done_testing();
