# Shared helpers for the webhook extension's TAP tests (test/t/NNN_*.pl).
#
# Load it from a test with:
#     use FindBin;
#     use lib "$FindBin::Bin";
#     use WebhookTest;
#
# Only core Perl, IPC::Run and PostgreSQL::Test::{Utils,Cluster} are used.
package WebhookTest;

use strict;
use warnings;

use Cwd qw(abs_path);
use File::Basename qw(dirname);
use File::Spec;

# Let a plain `prove test/t/` work, not only `make prove_installcheck`: PGXS
# passes -I .../src/test/perl, PATH with the server binaries and PG_REGRESS
# (which Cluster->init runs), so fill in whatever is missing from pg_config.
BEGIN
{
	my $pg_config = $ENV{PG_CONFIG} || 'pg_config';
	my $pgxs = `"$pg_config" --pgxs 2>/dev/null`;
	my $bindir = `"$pg_config" --bindir 2>/dev/null`;
	chomp($pgxs, $bindir);
	if ($pgxs)
	{
		my $src = dirname(dirname($pgxs));    # .../lib/pgxs/src
		my $perl = "$src/test/perl";
		unshift @INC, $perl
		  if -d $perl && !grep { -f "$_/PostgreSQL/Test/Utils.pm" } @INC;
		$ENV{PG_REGRESS} = "$src/test/regress/pg_regress"
		  if !defined $ENV{PG_REGRESS} && -x "$src/test/regress/pg_regress";
	}
	if ($bindir && -d $bindir
		&& !grep { -x "$_/initdb" } split /:/, ($ENV{PATH} // ''))
	{
		$ENV{PATH} = "$bindir:" . ($ENV{PATH} // '');
	}
}

use Digest::SHA qw(hmac_sha256 hmac_sha256_hex);
use Exporter qw(import);
use IPC::Run;
use JSON::PP;
use MIME::Base64 qw(encode_base64 decode_base64);
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Time::HiRes qw(time sleep);

our @EXPORT = qw(start_receiver requests wait_for_requests
  verify_standard_signature verify_hex_hmac self_test_vectors
  node_with_webhook poll_until postmaster_started assert_server_intact
  canary_arrives wait_status worker_pid make_test_pki run_openssl
  standby_from_backup pending_for_endpoint_sql);

# The receiver lives next to this directory (test/receiver.py); resolve it
# from this file so it does not matter where prove was started from.
my $RECEIVER_PY = abs_path(dirname(abs_path(__FILE__)) . '/../receiver.py');

# Every receiver still running, so the END block can stop them even when a
# test dies half-way.
my %LIVE;

# Start test/receiver.py on an ephemeral 127.0.0.1 port and wait (up to 30 s)
# until it has written its port file, so callers can use ->{port} at once.
# Options: port => N listens on that port instead (e.g. one from free_port(),
# for a receiver that "comes back" where deliveries were failing to connect);
# tls => { cert => PEM file, key => PEM file, client_ca => PEM file } serves
# HTTPS (client_ca: requiring a client certificate from that CA).
sub start_receiver
{
	my (%opts) = @_;
	my $dir = PostgreSQL::Test::Utils::tempdir('receiver');
	my $port_file = "$dir/port";
	my $self = bless {
		dir => $dir,
		log => "$dir/requests.jsonl",
		stderr => "$dir/receiver.stderr",
		owner => $$,
		scheme => $opts{tls} ? 'https' : 'http',
	}, 'WebhookTest::Receiver';
	my $tls = $opts{tls} // {};

	$self->{handle} = IPC::Run::start(
		[
			$ENV{PYTHON} || 'python3', $RECEIVER_PY,
			'--port-file', $port_file, '--log', $self->{log},
			(defined $opts{port} ? ('--port', $opts{port}) : ()),
			($tls->{cert} ? ('--tls-cert', $tls->{cert}, '--tls-key', $tls->{key}) : ()),
			($tls->{client_ca} ? ('--tls-client-ca', $tls->{client_ca}) : ())
		],
		'<', \undef, '>', $self->{stderr}, '2>', $self->{stderr});
	$LIVE{"$self"} = [ $self->{handle}, $$ ];

	my $deadline = time + 30;
	while (!-s $port_file)
	{
		my $why =
		    !$self->{handle}->pumpable ? 'exited'
		  : time > $deadline ? 'did not start within 30 s'
		  : undef;
		if ($why)
		{
			my $err = -f $self->{stderr}
			  ? PostgreSQL::Test::Utils::slurp_file($self->{stderr}) : '';
			$self->stop;
			die "receiver.py $why: $err";
		}
		sleep 0.05;
	}
	($self->{port}) = PostgreSQL::Test::Utils::slurp_file($port_file) =~ /(\d+)/;
	return $self;
}

# Parse the receiver's JSON-lines log; a trailing line still being written
# (no newline yet) is skipped and will be seen on the next call.
sub requests
{
	my ($r) = @_;
	open my $fh, '<:raw', $r->{log} or return [];
	my @out;
	while (my $line = <$fh>)
	{
		last unless $line =~ /\n\z/;
		push @out, JSON::PP::decode_json($line);
	}
	close $fh;
	return \@out;
}

# Deliveries are asynchronous (background worker), so tests poll for them.
# Returns what arrived even on timeout; the caller asserts on the count.
sub wait_for_requests
{
	my ($r, $n, $timeout_s) = @_;
	$timeout_s //= 60;
	my $deadline = time + $timeout_s;
	while (1)
	{
		my $got = requests($r);
		return $got if @$got >= $n || time > $deadline;
		sleep 0.05;
	}
}

# HMAC needs bytes: JSON-decoded log bodies are character strings.
sub _bytes
{
	my ($s) = @_;
	utf8::encode($s) if utf8::is_utf8($s);
	return $s;
}

# Independent check of the extension's Standard Webhooks v1 signature, so a
# bug in the C signer cannot be hidden by a matching bug in the test.
# $headers may have any key case (the receiver log lower-cases them).
sub verify_standard_signature
{
	my ($secret, $headers, $body) = @_;
	my %h = map { lc($_) => $headers->{$_} } keys %$headers;
	my ($id, $ts, $sigs) = @h{qw(webhook-id webhook-timestamp webhook-signature)};
	return 0 unless defined $id && defined $ts && defined $sigs;

	(my $b64key = $secret) =~ s/^whsec_//;
	my $mac = hmac_sha256(_bytes("$id.$ts.") . _bytes($body), decode_base64($b64key));
	my $expected = 'v1,' . encode_base64($mac, '');
	return (grep { $_ eq $expected } split /\s+/, $sigs) ? 1 : 0;
}

# GitHub-style "X-Hub-Signature-256: sha256=<hex>" (or bare hex) check.
sub verify_hex_hmac
{
	my ($secret, $body, $value) = @_;
	return 0 unless defined $value;
	(my $hex = lc $value) =~ s/^sha256=//;
	return $hex eq hmac_sha256_hex(_bytes($body), _bytes($secret)) ? 1 : 0;
}

# Prove the verifiers themselves against published vectors (Standard
# Webhooks reference test and GitHub's documentation example).
sub self_test_vectors
{
	my $std = verify_standard_signature(
		'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw',
		{
			'webhook-id' => 'msg_p5jXN8AQM9LWM0D4loKWxJek',
			'webhook-timestamp' => '1614265330',
			'webhook-signature' =>
			  'v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=',
		},
		'{"test": 2432232314}');
	my $gh = verify_hex_hmac("It's a Secret to Everybody", 'Hello, World!',
		'sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17'
	);
	return ($std && $gh) ? 1 : 0;
}

# A started node with the extension preloaded and test-friendly settings:
# localhost receivers allowed, retry back-off scaled down to milliseconds.
# %extra_conf values are single-quoted unless already quoted.
sub node_with_webhook
{
	my ($name, %extra_conf) = @_;
	my $node = PostgreSQL::Test::Cluster->new($name);
	$node->init;
	my $conf = join '',
	  "shared_preload_libraries = 'webhook'\n",
	  "webhook.allow_private_networks = on\n",
	  "webhook.retry_delay_scale = 0.001\n",
	  "log_min_messages = info\n";
	for my $k (sort keys %extra_conf)
	{
		my $v = $extra_conf{$k};
		$v = "'" . ($v =~ s/'/''/gr) . "'" unless $v =~ /^'.*'$/s;
		$conf .= "$k = $v\n";
	}
	$node->append_conf('postgresql.conf', $conf);
	$node->start;
	return $node;
}

# Like $node->poll_query_until, but with a bound of $timeout_s seconds (default
# 60) instead of PG_TEST_TIMEOUT_DEFAULT, so that a test expecting something
# that never happens fails in reasonable time.  Returns 1 on success; on
# timeout prints the last output with diag and returns 0.  Connection
# failures (e.g. while the server restarts) just count as "not yet".
sub poll_until
{
	my ($node, $dbname, $query, $expected, $timeout_s) = @_;
	$expected //= 't';
	$timeout_s //= 60;
	my $deadline = time + $timeout_s;
	my ($stdout, $stderr) = ('', '');
	while (1)
	{
		$node->psql($dbname, $query, stdout => \$stdout, stderr => \$stderr);
		return 1 if $stdout eq $expected && $stderr eq '';
		last if time > $deadline;
		sleep 0.1;
	}
	Test::More::diag("poll_until timed out after ${timeout_s}s:\n$query\n"
		  . "expected: $expected\ngot: $stdout\nstderr: $stderr");
	return 0;
}

# Wait until every delivery of one event has reached a status ('succeeded',
# 'failed', ...), within $timeout_s seconds (poll_until's default when not
# given).  Returns 1 on success, 0 (with a diag) on timeout.
sub wait_status
{
	my ($node, $event_id, $status, $timeout_s) = @_;
	return poll_until($node, 'postgres',
		"SELECT count(*) > 0 AND bool_and(status = '$status')
		   FROM webhook.deliveries WHERE event_id = '$event_id'",
		't', $timeout_s);
}

# SQL that queues $n events of $type with a pending delivery each to one
# endpoint, as the worker leaves them once it has read them, whether the
# endpoint is active or not (the worker matches only active endpoints when
# it reads an event).  The events have txid 0, so the worker never reads
# them again.  Returns the event ids, one per line.
sub pending_for_endpoint_sql
{
	my ($endpoint_id, $type, $n) = @_;
	return "WITH ev AS (INSERT INTO webhook.events (event_type, payload, txid)
	                    SELECT '$type', jsonb_build_object('i', g), '0'
	                      FROM generate_series(1, $n) g RETURNING id)
	        INSERT INTO webhook.delivery_state (event_id, endpoint_id)
	        SELECT id, $endpoint_id FROM ev ORDER BY id RETURNING event_id";
}

# The pid of the delivery worker of database $dbname (default postgres), or
# an empty string when it has none running.
sub worker_pid
{
	my ($node, $dbname) = @_;
	$dbname //= 'postgres';
	return $node->safe_psql('postgres',
		"SELECT pid FROM pg_stat_activity
		  WHERE backend_type = 'webhook delivery worker' AND datname = '$dbname'");
}

# Run the openssl command; die with its output when it fails.
sub run_openssl
{
	my @args = @_;
	my ($out, $err) = ('', '');
	IPC::Run::run([ 'openssl', @args ], '<', \undef, '>', \$out, '2>', \$err)
	  or die "openssl @args failed: $err";
	return $out;
}

# A P-256 key and a certificate for $cn in $dir: self-signed (a CA) without
# $ca, otherwise issued by CA $ca with the extensions in $ext.
sub _make_cert
{
	my ($dir, $name, $cn, $ca, $ext) = @_;
	my @key = ('-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes',
		'-keyout', "$dir/$name.key", '-subj', "/CN=$cn");
	if (!$ca)
	{
		run_openssl('req', '-x509', @key, '-days', '2', '-out', "$dir/$name.pem",
			'-addext', 'basicConstraints=critical,CA:TRUE',
			'-addext', 'keyUsage=critical,keyCertSign,cRLSign');
		return;
	}
	run_openssl('req', @key, '-out', "$dir/$name.csr");
	PostgreSQL::Test::Utils::append_to_file("$dir/$name.ext", $ext);
	run_openssl('x509', '-req', '-in', "$dir/$name.csr", '-CA', "$dir/$ca.pem",
		'-CAkey', "$dir/$ca.key", '-CAcreateserial', '-days', '2',
		'-extfile', "$dir/$name.ext", '-out', "$dir/$name.pem");
	return;
}

# The tests' own PKI, made in a new temporary directory (returned): a CA
# (ca.pem/ca.key), another CA (other_ca), a server certificate for
# 127.0.0.1 (server.pem/server.key) and a client certificate
# (client.pem/client.key), both issued by ca.
sub make_test_pki
{
	my $dir = PostgreSQL::Test::Utils::tempdir('pki');

	_make_cert($dir, 'ca', 'webhook test CA');
	_make_cert($dir, 'other_ca', 'another test CA');
	_make_cert($dir, 'server', '127.0.0.1', 'ca',
		"subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n");
	_make_cert($dir, 'client', 'webhook-test-client', 'ca',
		"extendedKeyUsage=clientAuth\n");
	return $dir;
}

# A streaming standby $name made from $primary's backup $backup (not
# started).  init_from_backup copies the backup with File::Copy, which drops
# the modes pg_basebackup wrote (it keeps webhook_master.key at 0600, as 030
# checks), and the server refuses a key file that others may read: the copy
# gets the mode back.
sub standby_from_backup
{
	my ($primary, $backup, $name) = @_;
	my $standby = PostgreSQL::Test::Cluster->new($name);
	$standby->init_from_backup($primary, $backup, has_streaming => 1);
	my $key = $standby->data_dir . '/webhook_master.key';
	chmod 0600, $key or die "chmod $key: $!" if -e $key;
	return $standby;
}

# A 127.0.0.1 TCP port that nothing listens on right now (bound, then
# released), for a receiver that is down; start_receiver(port => ...) can
# bring one up there later.
sub free_port
{
	require IO::Socket::INET;
	my $s = IO::Socket::INET->new(
		LocalAddr => '127.0.0.1',
		LocalPort => 0,
		Proto => 'tcp',
		Listen => 1,
		ReuseAddr => 1) or die "cannot bind an ephemeral port: $!";
	my $port = $s->sockport;
	close $s;
	return $port;
}

# Independent check of a Standard Webhooks v1a (ed25519) signature with the
# openssl command-line tool (no core Perl module does ed25519): the whpk_
# public key becomes an SPKI PEM (fixed DER prefix + 32 raw bytes) and each
# "v1a,<base64>" signature is checked over "id.timestamp.body" with
# `openssl pkeyutl -verify -rawin`.  True when any v1a signature verifies.
sub verify_ed25519_signature
{
	my ($whpk, $headers, $body) = @_;
	my %h = map { lc($_) => $headers->{$_} } keys %$headers;
	my ($id, $ts, $sigs) = @h{qw(webhook-id webhook-timestamp webhook-signature)};
	return 0 unless defined $id && defined $ts && defined $sigs && defined $whpk;
	(my $b64 = $whpk) =~ s/^whpk_// or return 0;
	my $raw = decode_base64($b64);
	return 0 unless length($raw) == 32;

	my $dir = PostgreSQL::Test::Utils::tempdir('ed25519');
	my $der = pack('H*', '302a300506032b6570032100') . $raw;
	_write_file("$dir/pub.pem",
		"-----BEGIN PUBLIC KEY-----\n" . encode_base64($der) . "-----END PUBLIC KEY-----\n");
	_write_file("$dir/msg", _bytes("$id.$ts.") . _bytes($body));
	for my $sig (split /\s+/, $sigs)
	{
		next unless $sig =~ /^v1a,(.+)$/;
		_write_file("$dir/sig", decode_base64($1));
		my ($out, $err) = ('', '');
		my $ok = IPC::Run::run(
			[
				'openssl', 'pkeyutl', '-verify', '-pubin', '-inkey', "$dir/pub.pem",
				'-rawin', '-in', "$dir/msg", '-sigfile', "$dir/sig"
			],
			'<', \undef, '>', \$out, '2>', \$err);
		return 1 if $ok && $out =~ /Signature Verified Successfully/;
	}
	return 0;
}

sub _write_file
{
	my ($path, $bytes) = @_;
	open my $fh, '>:raw', $path or die "cannot write $path: $!";
	print $fh $bytes;
	close $fh or die "cannot write $path: $!";
}

# Who the server is: the postmaster's start time (a full restart changes it)
# and when the shared statistics were last reset (crash recovery discards
# them, while pg_postmaster_start_time() survives a crash-restart).
sub postmaster_started
{
	my ($node) = @_;
	return $node->safe_psql('postgres',
		"SELECT pg_postmaster_start_time() || ' / stats since ' || stats_reset FROM pg_stat_bgwriter");
}

# The server survived whatever the test just did: same postmaster start time
# as $started and no crashed process in the server log.
sub assert_server_intact
{
	my ($node, $started, $label) = @_;
	my $now = postmaster_started($node);
	Test::More::is($now, $started, "$label: postmaster never restarted");
	my $log = PostgreSQL::Test::Utils::slurp_file($node->logfile);
	my @crash = $log =~ /^.*(?:terminated by signal|was terminated by exception|server process .* exited with exit code [^01]|terminating any other active server processes).*$/mg;
	Test::More::is(scalar(@crash), 0, "$label: no crashed process in the log")
	  or Test::More::diag(join "\n", @crash);
	return;
}

# Delivery still works in $dbname: an event sent now reaches $receiver.
# The first call makes a "canary" endpoint at $receiver's /canary path.
my $canary_seq = 0;
sub canary_arrives
{
	my ($node, $dbname, $receiver, $label, $timeout_s) = @_;
	$node->safe_psql($dbname, qq{
		INSERT INTO webhook.endpoints (name, url, event_types)
		SELECT 'canary', '${\ $receiver->url('/canary')}', '{canary.ping}'
		WHERE NOT EXISTS (SELECT FROM webhook.endpoints WHERE name = 'canary')});
	my $tag = "$$-" . ++$canary_seq;
	$node->safe_psql($dbname,
		qq{SELECT webhook.send('canary.ping', '{"tag": "$tag"}')});
	my $deadline = time + ($timeout_s // 60);
	while (time < $deadline)
	{
		return Test::More::pass("$label: canary delivered")
		  if grep { ($_->{body} // '') =~ /"tag":\s*"\Q$tag\E"/ } @{ requests($receiver) };
		sleep 0.1;
	}
	return Test::More::fail("$label: canary delivered");
}

# Stop any receiver a test forgot (or could not) stop, e.g. after a die.
END
{
	local $?;    # keep the test's exit status
	for my $key (keys %LIVE)
	{
		my ($h, $owner) = @{ delete $LIVE{$key} };
		eval { $h->kill_kill(grace => 5) } if $owner == $$;
	}
}

package WebhookTest::Receiver;

# "http://127.0.0.1:PORT/path" (https with tls) for use in webhook subscriptions.
sub url
{
	my ($self, $path) = @_;
	$path //= '/';
	return "$self->{scheme}://127.0.0.1:$self->{port}$path";
}

# SIGTERM (SIGKILL after 5 s); idempotent and only in the starting process
# (a forked child must not kill its parent's receiver).
sub stop
{
	my ($self) = @_;
	my $h = delete $self->{handle};
	return unless $h && $self->{owner} == $$;
	delete $LIVE{"$self"};
	eval { $h->kill_kill(grace => 5) };
	return;
}

sub DESTROY
{
	my ($self) = @_;
	local ($@, $?);
	$self->stop;
}

1;
