# ALTER EXTENSION webhook UPDATE from each install of 0.1.0 to the current
# version, on a database full of work: the release's script (git 2b8c360,
# installed as sql/webhook--0.1.0.sql) and its later in-place revision
# (abf15af, test/upgrade/webhook--0.1.0-abf15af.sql, offered as 0.1.0 by a
# private copy of the installation).  The new library serves the old schema
# until the update (src/compat.c): watched writes still make their events.
# After the update every pending delivery arrives once, signed, and the
# schema equals a fresh CREATE EXTENSION's (test/upgrade/catalog.sql).
use strict;
use warnings;

use Cwd qw(abs_path);
use File::Basename qw(dirname);
use File::Copy qw(copy);
use File::Path qw(make_path);
use FindBin;
use lib "$FindBin::Bin";
use WebhookTest;
use IPC::Run;
use JSON::PP qw(decode_json);
use MIME::Base64 qw(encode_base64);
use PostgreSQL::Test::Utils;
use Test::More;

my $upgrade_dir = abs_path("$FindBin::Bin/../upgrade");
my $catalog_sql = slurp_file("$upgrade_dir/catalog.sql");
# The version this tree builds (the Makefile sets it), which every update reaches.
my ($current) = slurp_file("$FindBin::Bin/../../Makefile") =~ /^EXTVERSION = (\S+)$/m;

# --- a private installation whose 0.1.0 is another script ---------------------

# The installation's directories, as pg_config reports them.
sub installation_dir
{
	my ($what) = @_;
	my $pg_config = $ENV{PG_CONFIG} || 'pg_config';
	my $dir = `"$pg_config" --$what`;
	chomp $dir;
	die "pg_config --$what failed" if $? || $dir eq '';
	return abs_path($dir);
}

# A copy of the installation in which extension/webhook--0.1.0.sql is
# $script; returns the install_path for PostgreSQL::Test::Cluster.  The
# server finds share/ and lib/ relative to the real path of its binary
# (Debian: /usr/lib/postgresql/15/bin -> /usr/share/postgresql/15), so the
# relative layout is kept below a temporary root: postgres, initdb and
# pg_ctl are copied (a symlink would lead back to the real share/), every
# other file is a symlink.
sub installation_with_script
{
	my ($script) = @_;
	my %dir = map { $_ => installation_dir($_) } qw(bindir sharedir pkglibdir);
	my @common = split m{/}, $dir{bindir};
	for my $d (values %dir)
	{
		my @parts = split m{/}, $d;
		my $n = 0;
		$n++ while $n < @common && $n < @parts && $common[$n] eq $parts[$n];
		splice @common, $n;
	}
	my $prefix = join('/', @common);
	my $root = PostgreSQL::Test::Utils::tempdir('installation');
	my %mine = map { $_ => $root . substr($dir{$_}, length $prefix) } keys %dir;

	make_path($mine{bindir});
	opendir my $bin, $dir{bindir} or die "cannot read $dir{bindir}: $!";
	for my $name (grep { !/^\.\.?$/ } readdir $bin)
	{
		my $from = abs_path("$dir{bindir}/$name");
		if (grep { $_ eq $name } qw(postgres initdb pg_ctl))
		{
			copy($from, "$mine{bindir}/$name") or die "cannot copy $from: $!";
			chmod 0755, "$mine{bindir}/$name";
		}
		else
		{
			symlink $from, "$mine{bindir}/$name" or die "cannot link $from: $!";
		}
	}
	closedir $bin;

	make_path("$mine{sharedir}/extension");
	opendir my $share, $dir{sharedir} or die "cannot read $dir{sharedir}: $!";
	for my $name (grep { !/^\.\.?$/ && $_ ne 'extension' } readdir $share)
	{
		symlink "$dir{sharedir}/$name", "$mine{sharedir}/$name"
		  or die "cannot link $dir{sharedir}/$name: $!";
	}
	closedir $share;
	opendir my $ext, "$dir{sharedir}/extension" or die "cannot read $dir{sharedir}/extension: $!";
	for my $name (grep { !/^\.\.?$/ && $_ ne 'webhook--0.1.0.sql' } readdir $ext)
	{
		symlink "$dir{sharedir}/extension/$name", "$mine{sharedir}/extension/$name"
		  or die "cannot link $name: $!";
	}
	closedir $ext;
	copy($script, "$mine{sharedir}/extension/webhook--0.1.0.sql") or die "cannot copy $script: $!";

	make_path(dirname($mine{pkglibdir}));
	symlink $dir{pkglibdir}, $mine{pkglibdir} or die "cannot link $dir{pkglibdir}: $!";
	return dirname($mine{bindir});
}

# --- helpers -----------------------------------------------------------------

# A started node with the library preloaded, secrets sealed under a master
# key, as WebhookTest::node_with_webhook makes it (which knows no
# install_path).
sub start_node
{
	my ($name, $install_path) = @_;
	my $node = PostgreSQL::Test::Cluster->new($name,
		defined $install_path ? (install_path => $install_path) : ());
	$node->init;
	my $keyfile = $node->data_dir . '/webhook.key';
	open my $fh, '>', $keyfile or die "cannot write $keyfile: $!";
	print $fh join('', map { sprintf '%02x', int(rand(256)) } 1 .. 32), "\n";
	close $fh;
	chmod 0600, $keyfile or die "chmod $keyfile: $!";
	$node->append_conf('postgresql.conf', join '',
		"shared_preload_libraries = 'webhook'\n",
		"webhook.allow_private_networks = on\n",
		"webhook.retry_delay_scale = 0.001\n",
		"webhook.master_key_file = 'webhook.key'\n",
		"log_min_messages = info\n");
	$node->start;
	return $node;
}

# The difference of two texts as `diff -u` shows it.
sub difference
{
	my ($a, $b, $label_a, $label_b) = @_;
	my $dir = PostgreSQL::Test::Utils::tempdir('diff');
	for ([ "$dir/a", $a ], [ "$dir/b", $b ])
	{
		open my $fh, '>', $_->[0] or die "cannot write $_->[0]: $!";
		print $fh $_->[1], "\n";
		close $fh;
	}
	my ($out, $err) = ('', '');
	IPC::Run::run([ 'diff', '-u', '--label', $label_a, '--label', $label_b, "$dir/a", "$dir/b" ],
		'>', \$out, '2>', \$err);
	return $out . $err;
}

# Rows of the work the update must keep, as text (bounded columns aside).
# An endpoint's NULL columns are left out: a column new in 0.2.0 (proxy, ...)
# is NULL after the update where the row before had none, and any value that
# changes to or from NULL still shows.  The format columns the update adds
# with defaults are checked after it.  Secrets are compared in clear: the
# update seals those 0.1.0 stored in clear.
my $kept_sql = q{
	SELECT 'endpoint ' || e.id || ' ' || (jsonb_strip_nulls(to_jsonb(e) || jsonb_build_object(
	           'secret', webhook._unseal(e.secret), 'previous_secret', webhook._unseal(e.previous_secret),
	           'auth_password', webhook._unseal(e.auth_password),
	           'headers', coalesce((SELECT jsonb_object_agg(h.key, webhook._unseal(h.value))
	                                  FROM jsonb_each_text(e.headers) h), '{}')))
	         - '{timeout_ms,max_in_flight,updated_at}'::text[]
	         - '{format,event_type_header,signature_encoding,cloudevents_source,ca_cert,client_cert,client_key}'::text[])::text
	  FROM webhook.endpoints e
	-- 0.3.0 computes the body an event sends: the same bytes 0.2.0 stored.
	-- 0.5.0 partitions the queue by generation (gen): every row in one.
	-- 0.6.0 adds deliver_at and ordering_key (NULL) and the filter counters (0 and NULL).
	UNION ALL SELECT 'event ' || (to_jsonb(v) - 'txid' - 'gen' - 'deliver_at' - 'ordering_key' || jsonb_build_object('body',
	           coalesce(to_jsonb(v) ->> 'body', webhook._event_body(v.event_type, v.payload, v.created_at))))::text
	  FROM webhook.events v
	UNION ALL SELECT 'delivery ' || (to_jsonb(d) - 'ordering_key')::text FROM webhook.deliveries d
	UNION ALL SELECT 'log ' || (to_jsonb(l) - 'gen')::text FROM webhook.delivery_log l
	UNION ALL SELECT 'state ' || (to_jsonb(s) - '{filter_errors,last_filter_error_at,last_filter_error_event}'::text[])::text
	  FROM webhook.endpoint_state s
	UNION ALL SELECT 'type ' || to_jsonb(t)::text FROM webhook.event_types t
	UNION ALL SELECT format('watch %s %s %s %s %s %s', w."table", w.event_prefix, w.operations,
	                        w.columns, w.exclude_columns, w.created_at)
	  FROM webhook.watches w
	ORDER BY 1};

# Activate the endpoints for one transaction's work and deactivate them in
# it again: deliveries are made, and nothing is claimable before the update.
sub while_active
{
	my ($sql) = @_;
	return "BEGIN;
		UPDATE webhook.endpoints SET active = true WHERE name <> 'inactive';
		$sql;
		UPDATE webhook.endpoints SET active = false WHERE name <> 'inactive';
		COMMIT;";
}

# --- one variant -------------------------------------------------------------

sub update_variant
{
	my (%v) = @_;
	my $label = $v{label};
	my $node = start_node($v{name}, $v{install_path});
	my $port = WebhookTest::free_port();
	my $url = "http://127.0.0.1:$port";
	my $secret = 'whsec_' . encode_base64(join('', map { chr(int(rand(256))) } 1 .. 32), '');
	my $psql = sub { $node->safe_psql('postgres', $_[0]) };
	my $started = postmaster_started($node);

	# -- 0.1.0 -----------------------------------------------------------------
	$psql->(q{CREATE EXTENSION webhook VERSION '0.1.0'});
	is($psql->(q{SELECT extversion FROM pg_extension WHERE extname = 'webhook'}), '0.1.0',
		"$label: 0.1.0 installed");
	is($psql->(q{SELECT to_regprocedure('webhook._header_problem(text, text)') IS NOT NULL}),
		$v{release} ? 't' : 'f', "$label: it is the script meant");

	$psql->(qq{
		CREATE TABLE public.items (id int PRIMARY KEY, name text, price numeric NOT NULL DEFAULT 0,
		                           status text, note text);
		CREATE FUNCTION public.shape(event_type text, created_at timestamptz, payload jsonb)
		RETURNS jsonb LANGUAGE sql IMMUTABLE
		RETURN jsonb_build_object('shaped', event_type, 'data', payload);
		INSERT INTO webhook.event_types (name, description) VALUES
		    ('order.created', 'an order was placed'), ('item.created', 'an item was added'),
		    ('item.updated', 'an item changed'), ('item.deleted', 'an item was removed');
		SELECT webhook.watch('public.items', 'item', '{insert,update,delete}', columns => '{price,status}',
		                     condition => 'coalesce(NEW.price, OLD.price) > 0', exclude_columns => '{note}');
		INSERT INTO webhook.endpoints (name, url, event_types, secret, active)
		VALUES ('signed', '$url/signed', '{order.*}', '$secret', false);
		INSERT INTO webhook.endpoints (name, url, event_types, headers, auth_username, auth_password, active)
		VALUES ('headers', '$url/headers', '{order.*,item.*}', '{"X-Api-Key": "key-123"}', 'user', 'pw-456', false);
		INSERT INTO webhook.endpoints (name, url, event_types, ordered, active)
		VALUES ('ordered', '$url/ordered', '{*}', true, false);
		INSERT INTO webhook.endpoints (name, url, event_types, transform, active)
		VALUES ('transformed', '$url/transformed', '{item.*}', 'public.shape', false);
		INSERT INTO webhook.endpoints (name, url, event_types, active)
		VALUES ('inactive', '$url/inactive', '{*}', false);
	});
	is($psql->(q{SELECT count(*) FROM webhook.endpoints
	              WHERE secret LIKE 'whenc:v1:%' AND (headers = '{}' OR headers->>'X-Api-Key' LIKE 'whenc:v1:%')}),
		'5', "$label: secrets and header values are sealed");
	# Secrets encrypted by default (issue 15): 0.1.0 without a master key
	# stored them in clear.  Two endpoints as it left them (written past the
	# triggers, which would seal them today); the update seals them.
	$psql->(q{
		SET session_replication_role = replica;
		UPDATE webhook.endpoints SET secret = webhook._unseal(secret) WHERE name = 'signed';
		UPDATE webhook.endpoints SET auth_password = webhook._unseal(auth_password),
		       headers = jsonb_build_object('X-Api-Key', webhook._unseal(headers ->> 'X-Api-Key'))
		 WHERE name = 'headers';
		RESET session_replication_role});
	is($psql->(q{SELECT count(*) FROM webhook.endpoints
	              WHERE secret NOT LIKE 'whenc:v1:%' OR auth_password NOT LIKE 'whenc:v1:%'
	                 OR headers ->> 'X-Api-Key' NOT LIKE 'whenc:v1:%'}),
		'2', "$label: two endpoints hold secrets in clear, as 0.1.0 without a key stored them");

	if ($v{release})
	{
		# The release's CHECKs took values that 0.2.0 refuses.
		$psql->(q{UPDATE webhook.endpoints SET timeout_ms = 600000, max_in_flight = 20000 WHERE name = 'headers'});

		# The release's triggers call C entry points that src/compat.c keeps.
		my ($rc, $out, $err) = $node->psql('postgres',
			q{UPDATE webhook.endpoints SET headers = '{"Webhook-Id": "x"}' WHERE name = 'inactive'});
		like($err, qr/is set by the extension and cannot be overridden/,
			"$label: the old endpoints trigger refuses a reserved header, by today's rule");
		($rc, $out, $err) = $node->psql('postgres',
			q{SELECT webhook.watch('public.items', 'item', condition => 'true) OR (true')});
		like($err, qr/syntax error|single expression/,
			"$label: the old watch() refuses a condition that closes its parentheses");
	}

	if ($v{release})
	{
		# A watch that today's rules refuse stops the update, which leaves
		# the database as it was; once the watch is fixed the update runs.
		# The triggers of a watch whose row the release lost (it did so at a
		# DROP COLUMN) make nothing, and go.
		$node->safe_psql('postgres', 'CREATE DATABASE broken');
		$node->safe_psql('broken', q{
			CREATE EXTENSION webhook VERSION '0.1.0';
			CREATE TABLE public.t (a int, b int);
			SELECT webhook.watch('public.t', columns => '{b}');
			ALTER TABLE public.t RENAME COLUMN b TO c;
			CREATE TABLE public.u (a int, b int);
			SELECT webhook.watch('public.u');
			ALTER TABLE public.u DROP COLUMN b;
			CREATE FUNCTION public.gone(text, timestamptz, jsonb) RETURNS jsonb LANGUAGE sql RETURN $3;
			INSERT INTO webhook.endpoints (name, url, transform) VALUES ('lost', 'http://127.0.0.1:9/', 'public.gone');
			DROP FUNCTION public.gone});
		is($node->safe_psql('broken', q{SELECT count(*) FROM webhook.table_watches}), '1',
			"$label: the release lost a watch at a DROP COLUMN");
		my ($rc, $out, $err) = $node->psql('broken', 'ALTER EXTENSION webhook UPDATE');
		like($err, qr/the watch of table public.t cannot be carried over to webhook 0\.2\.0: column "b" of public.t does not exist/,
			"$label: a watch 0.2.0 cannot keep stops the update, naming it");
		is($node->safe_psql('broken', q{SELECT extversion FROM pg_extension WHERE extname = 'webhook'}),
			'0.1.0', "$label: and the database stays at 0.1.0");
		$node->safe_psql('broken', q{SELECT webhook.unwatch('public.t')});
		($rc, $out, $err) = $node->psql('broken', 'ALTER EXTENSION webhook UPDATE');
		is($node->safe_psql('broken', q{SELECT extversion FROM pg_extension WHERE extname = 'webhook'}),
			$current, "$label: without it the update runs");
		like($err, qr/WARNING:  trigger webhook_watch_delete on table public.u had no watch/,
			"$label: and says which triggers it drops");
		is($node->safe_psql('broken', q{SELECT count(*) FROM pg_trigger WHERE tgrelid = 'public.u'::regclass}),
			'0', "$label: the lost watch's triggers are gone");
		like($err, qr/WARNING:  endpoint \d+ \(lost\) is paused: its transform or the role it ran as was dropped/,
			"$label: an endpoint whose transform the release let go is paused, with a warning");
		is($node->safe_psql('broken', q{SELECT format('%s %s %s', active, transform, disabled_reason)
		                                  FROM webhook.endpoints WHERE name = 'lost'}),
			'f  its transform was dropped', "$label: its transform is cleared");
		$node->safe_psql('postgres', 'DROP DATABASE broken');
	}

	# Events from send() and from the watched table, delivered to nobody yet.
	$psql->(while_active(q{
		SELECT webhook.send('order.created', '{"order": 0}');
		SELECT webhook.send('order.created', '{"order": 1}');
		SELECT webhook.send('order.created', '{"order": 2}', 'order-2');
		INSERT INTO public.items VALUES (1, 'free', 0, 'new', 'n1'), (2, 'lamp', 25, 'new', 'n2');
		UPDATE public.items SET status = 'sold' WHERE id = 2;
		UPDATE public.items SET note = 'only an excluded column' WHERE id = 2}));
	# Deliveries the release's worker made (order 0), and a first attempt
	# that failed (order 1 to the signed endpoint), as it logged them.
	$psql->(q{
		WITH d AS (
		    UPDATE webhook.deliveries d SET status = 'succeeded', attempts = 1, last_attempt_at = now(),
		                                    last_status_code = 200, completed_at = now()
		      FROM webhook.events v
		     WHERE v.id = d.event_id AND v.payload = '{"order": 0}'
		    RETURNING d.id, d.event_id, d.endpoint_id)
		INSERT INTO webhook.delivery_log (delivery_id, endpoint_id, event_id, attempt, url, attempted_at,
		                                  duration_ms, status_code, response_body)
		SELECT d.id, d.endpoint_id, d.event_id, 1, e.url, now(), 2.5, 200, 'ok'
		  FROM d JOIN webhook.endpoints e ON e.id = d.endpoint_id;
		WITH d AS (
		    UPDATE webhook.deliveries d SET attempts = 1, last_attempt_at = now(), last_error = 'connection refused'
		      FROM webhook.events v, webhook.endpoints e
		     WHERE v.id = d.event_id AND e.id = d.endpoint_id AND v.payload = '{"order": 1}' AND e.name = 'signed'
		    RETURNING d.id, d.event_id, d.endpoint_id)
		INSERT INTO webhook.delivery_log (delivery_id, endpoint_id, event_id, attempt, url, attempted_at,
		                                  duration_ms, error_class, error)
		SELECT d.id, d.endpoint_id, d.event_id, 1, e.url, now(), 1.5, 'connect', 'connection refused'
		  FROM d JOIN webhook.endpoints e ON e.id = d.endpoint_id;
		INSERT INTO webhook.endpoint_state (endpoint_id, failing_since, consecutive_failures, last_failure_at, last_error)
		SELECT id, now(), 1, now(), 'connection refused' FROM webhook.endpoints WHERE name = 'signed'});

	# A session that writes the watched table before and after the update.
	my $app = $node->background_psql('postgres');
	$app->query_safe(while_active(q{
		INSERT INTO public.items VALUES (3, 'desk', 90, 'new', 'n3');
		UPDATE public.items SET price = 80 WHERE id = 3;
		DELETE FROM public.items WHERE id = 1;
		DELETE FROM public.items WHERE id = 2}));
	is($psql->(q{SELECT string_agg(event_type || ':' || n, ',' ORDER BY event_type)
	               FROM (SELECT event_type, count(*) AS n FROM webhook.events GROUP BY 1) c}),
		'item.created:2,item.deleted:1,item.updated:2,order.created:3',
		"$label: watched writes under the old schema made their events");
	is($psql->(q{SELECT count(*) FILTER (WHERE status = 'pending') || '/' || count(*) FROM webhook.deliveries}),
		'21/24', "$label: every delivery but the three made is pending");
	my $kept = $psql->($kept_sql);
	# An operator role an administrator granted the log to (README,
	# Privileges): the grant outlives the tables the update rebuilds.
	$psql->(q{DROP ROLE IF EXISTS log_reader; CREATE ROLE log_reader;
	          GRANT SELECT ON webhook.delivery_log TO log_reader});

	# -- the update ------------------------------------------------------------
	my ($rc, $out, $err) = $node->psql('postgres', 'ALTER EXTENSION webhook UPDATE');
	is($rc, 0, "$label: ALTER EXTENSION webhook UPDATE succeeds") or diag $err;
	is($psql->(q{SELECT extversion FROM pg_extension WHERE extname = 'webhook'}), $current,
		"$label: $current installed, through every update script on the way");
	is(difference($kept, $psql->($kept_sql), 'before the update', 'after the update'), '',
		"$label: every row is kept");
	is($psql->(q{SELECT has_table_privilege('log_reader', 'webhook.delivery_log', 'SELECT')
	                    AND NOT has_table_privilege('log_reader', 'webhook.delivery_log', 'INSERT')}),
		't', "$label: a privilege granted on the log is kept, and no more");
	$psql->(q{REVOKE SELECT ON webhook.delivery_log FROM log_reader; DROP ROLE log_reader});
	# Secrets encrypted by default (issue 15): none is left in clear.
	is($psql->(q{SELECT count(*) FROM webhook.endpoints
	              WHERE secret NOT LIKE 'whenc:v1:%' OR previous_secret NOT LIKE 'whenc:v1:%'
	                 OR auth_password NOT LIKE 'whenc:v1:%'
	                 OR EXISTS (SELECT FROM jsonb_each_text(headers) h WHERE h.value NOT LIKE 'whenc:v1:%')}),
		'0', "$label: the update sealed every secret stored in clear");
	# Request formats (issue 15): endpoints keep today's request.
	is($psql->(q{SELECT count(*) FROM webhook.endpoints
	              WHERE (format, event_type_header, signature_encoding) IS DISTINCT FROM
	                    ('standard', 'webhook-event-type', 'sha256=hex') OR cloudevents_source IS NOT NULL}),
		'0', "$label: the endpoints' new format columns hold their defaults");
	if ($v{release})
	{
		like($err, qr/WARNING:  endpoint \d+ \(headers\) had a value outside the bounds/,
			"$label: the update warns of the values it brought within bounds");
		is($psql->(q{SELECT timeout_ms || '/' || max_in_flight FROM webhook.endpoints WHERE name = 'headers'}),
			'300000/10000', "$label: they are the nearest allowed");
	}
	is($psql->(q{SELECT format('%s %s %s', columns, condition, exclude_columns) FROM webhook.watches}),
		'{price,status} (COALESCE(new.price, old.price) > (0)::numeric) {note}',
		"$label: the watch keeps its options");

	# -- delivery --------------------------------------------------------------
	my $r = start_receiver(port => $port);
	$psql->(q{UPDATE webhook.endpoints SET active = true WHERE name <> 'inactive'});
	$app->query_safe(q{INSERT INTO public.items VALUES (4, 'chair', 40, 'new', 'n4')});
	$psql->(q{SELECT webhook.send('order.created', '{"order": 3}')});
	$app->quit;
	ok( poll_until(
			$node, 'postgres',
			q{SELECT count(*) FILTER (WHERE status = 'succeeded') || '/' || count(*) FROM webhook.deliveries},
			'30/30', 180),
		"$label: every delivery, made before and after the update, succeeded");

	my %secret_of = map { split /\|/ } split /\n/,
	  $psql->(q{SELECT name, webhook.endpoint_secret(id) FROM webhook.endpoints});
	is($secret_of{signed}, $secret, "$label: the given secret is kept");
	my @got = @{ requests($r) };
	my %seen;
	my @bad;
	for my $req (@got)
	{
		my ($name) = $req->{path} =~ m{^/(\w+)};
		$seen{ ($req->{headers}{'webhook-id'} // '') . " /$name" }++;
		push @bad, "$req->{path} $req->{headers}{'webhook-id'}"
		  unless verify_standard_signature($secret_of{$name} // '', $req->{headers}, $req->{body});
	}
	is(join("\n", @bad), '', "$label: every request verifies with its endpoint's secret");
	my $expected = $psql->(q{SELECT d.event_id || ' /' || e.name FROM webhook.deliveries d
	                          JOIN webhook.endpoints e ON e.id = d.endpoint_id
	                          JOIN webhook.events v ON v.id = d.event_id
	                         WHERE v.payload <> '{"order": 0}' ORDER BY 1});
	is(join("\n", sort keys %seen), join("\n", sort split /\n/, $expected),
		"$label: each pending delivery arrived, and none made before the update again");
	is(join(' ', grep { $seen{$_} > 1 } sort keys %seen), '', "$label: none twice");
	# In order per ordering key (0.6.0: a watched row's events carry its
	# key; events from before the update and send()'s have none).
	my %key_of = map { split /\|/, $_, -1 } split /\n/, $psql->(q{
		SELECT d.event_id || '|' || d.ordering_key FROM webhook.deliveries d
		  JOIN webhook.endpoints e ON e.id = d.endpoint_id WHERE e.name = 'ordered'});
	my %got_seq;
	push @{ $got_seq{ $key_of{ $_->{headers}{'webhook-id'} } // '?' } }, $_->{headers}{'webhook-id'}
	  for grep { $_->{path} eq '/ordered' } @got;
	is(join("\n", map { "$_: " . join(',', @{ $got_seq{$_} }) } sort keys %got_seq),
		$psql->(q{SELECT string_agg(k || ': ' || ids, E'\n' ORDER BY k) FROM (
		            SELECT d.ordering_key AS k, string_agg(d.event_id::text, ',' ORDER BY d.id) AS ids
		              FROM webhook.deliveries d
		              JOIN webhook.endpoints e ON e.id = d.endpoint_id
		              JOIN webhook.events v ON v.id = d.event_id
		             WHERE e.name = 'ordered' AND v.payload <> '{"order": 0}' GROUP BY 1) s}),
		"$label: the ordered endpoint got each key's events in order");
	my @headers = grep { $_->{path} eq '/headers' } @got;
	is(scalar(grep { ($_->{headers}{'x-api-key'} // '') eq 'key-123'
		  && ($_->{headers}{authorization} // '') eq 'Basic ' . encode_base64('user:pw-456', '') } @headers),
		scalar(@headers), "$label: sealed header values and password are sent in clear");
	is(scalar(grep { (eval { decode_json($_->{body})->{shaped} } // '') !~ /^item\.\w+$/ }
			grep { $_->{path} eq '/transformed' } @got),
		0, "$label: the transform shapes its endpoint's bodies");
	is($psql->(q{SELECT string_agg(l.attempt || ':' || coalesce(l.status_code::text, l.error_class), ',' ORDER BY l.attempt)
	               FROM webhook.delivery_log l JOIN webhook.events v ON v.id = l.event_id
	               JOIN webhook.endpoints e ON e.id = l.endpoint_id
	              WHERE v.payload = '{"order": 1}' AND e.name = 'signed'}),
		'1:connect,2:200', "$label: the retried delivery keeps its log and goes on from its attempt");
	is($psql->(q{SELECT format('%s/%s', active, count(d.id)) FROM webhook.endpoints e
	              LEFT JOIN webhook.deliveries d ON d.endpoint_id = e.id WHERE e.name = 'inactive' GROUP BY active}),
		'f/0', "$label: the inactive endpoint stays so, with nothing sent");
	$r->stop;

	# -- the schema, against a fresh install -----------------------------------
	my $transformed = $psql->(q{SELECT id FROM webhook.endpoints WHERE name = 'transformed'});
	$node->safe_psql('postgres', 'CREATE DATABASE fresh');
	$node->safe_psql('fresh', qq{
		CREATE EXTENSION webhook;
		CREATE TABLE public.items (id int PRIMARY KEY, name text, price numeric NOT NULL DEFAULT 0,
		                           status text, note text);
		CREATE FUNCTION public.shape(event_type text, created_at timestamptz, payload jsonb)
		RETURNS jsonb LANGUAGE sql IMMUTABLE
		RETURN jsonb_build_object('shaped', event_type, 'data', payload);
		SELECT webhook.watch('public.items', 'item', '{insert,update,delete}', columns => '{price,status}',
		                     condition => 'coalesce(NEW.price, OLD.price) > 0', exclude_columns => '{note}');
		INSERT INTO webhook.endpoints (id, name, url, event_types, transform, active)
		VALUES ($transformed, 'transformed', '$url/transformed', '{item.*}', 'public.shape', false);
	});
	my $updated = $node->safe_psql('postgres', $catalog_sql);
	my $fresh = $node->safe_psql('fresh', $catalog_sql);
	my $diff = difference($fresh, $updated, 'fresh CREATE EXTENSION webhook', "updated from $label");
	ok($diff eq '', "$label: the updated schema equals a fresh install's (test/upgrade/catalog.sql)")
	  or diag "Bring the update scripts (sql/webhook--*--*.sql) in step with the install script:\n$diff";
	cmp_ok(scalar(() = $updated =~ /^member: /mg), '>', 50, "$label: the comparison saw the extension's objects");

	assert_server_intact($node, $started, $label);
	$node->stop;
	return;
}

update_variant(label => 'the release (2b8c360)', name => 'release', release => 1);
update_variant(
	label => 'the revised 0.1.0 (abf15af)',
	name => 'revised',
	release => 0,
	install_path => installation_with_script("$upgrade_dir/webhook--0.1.0-abf15af.sql"));

# --- 0.5.0 -> 0.6.0: send() is replaced ----------------------------------------
# It gains parameters, so it is a new function: what was granted on the old
# one holds for the new one, and an object that depends on the old one stops
# the update with an error that names it (and nothing changes).
{
	my $node = node_with_webhook('send06');
	my $psql = sub { $node->safe_psql('postgres', $_[0]) };
	$psql->(q{CREATE EXTENSION webhook VERSION '0.5.0';
	          CREATE ROLE app;
	          GRANT EXECUTE ON FUNCTION webhook.send(text, jsonb, text) TO app;
	          CREATE FUNCTION public.notify(o int) RETURNS uuid LANGUAGE sql
	          BEGIN ATOMIC SELECT webhook.send('order.created', jsonb_build_object('id', o)); END});
	my ($rc, $out, $err) = $node->psql('postgres', 'ALTER EXTENSION webhook UPDATE');
	isnt($rc, 0, '0.6.0: an object that uses the old send() stops the update');
	like($err, qr/webhook\.send\(text, jsonb, text\) is used by function public\.notify\(integer\)/,
		'0.6.0: the error names it');
	is($psql->(q{SELECT extversion FROM pg_extension WHERE extname = 'webhook'}), '0.5.0',
		'0.6.0: and the extension stays as it was');
	$psql->(q{DROP FUNCTION public.notify(int); ALTER EXTENSION webhook UPDATE TO '0.6.0'});
	is($psql->(q{SELECT extversion FROM pg_extension WHERE extname = 'webhook'}), '0.6.0',
		'0.6.0: without it, the update goes through');
	is($psql->(q{SELECT has_function_privilege('app', 'webhook.send(text, jsonb, text, timestamptz, text)', 'EXECUTE')
	                    AND NOT has_function_privilege('public', 'webhook.send(text, jsonb, text, timestamptz, text)', 'EXECUTE')}),
		't', '0.6.0: the role granted the old send() may call the new one, and PUBLIC may not');
	# pg_dump keeps the grant: it is not taken for the extension's own.
	my $dump = `pg_dump -s -h @{[ $node->host ]} -p @{[ $node->port ]} postgres 2>&1`;
	like($dump, qr/GRANT ALL ON FUNCTION webhook\.send\(event_type text, payload jsonb, idempotency_key text, deliver_at timestamp with time zone, ordering_key text\) TO app/,
		'0.6.0: pg_dump dumps the carried grant');
	$psql->(q{CREATE FUNCTION public.notify(o int) RETURNS uuid LANGUAGE sql
	          BEGIN ATOMIC SELECT webhook.send('order.created', jsonb_build_object('id', o)); END});
	is($psql->(q{SELECT public.notify(7) IS NOT NULL}), 't',
		'0.6.0: created again, unchanged, the function calls the new send()');
	is($psql->(q{SELECT count(*) FROM webhook.events WHERE payload = '{"id": 7}'}), '1',
		'0.6.0: and its event is there');
	$node->stop;
}

done_testing();
