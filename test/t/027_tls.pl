# TLS for real, all on 127.0.0.1 with a CA this test makes (openssl command):
# (1) a receiver verified against the endpoint's ca_cert gets the delivery,
#     and without ca_cert (the system store) the same receiver is refused;
# (2) an endpoint with the wrong CA fails each attempt with error class
#     "tls", retried by its schedule, and the receiver never sees a request;
# (3) a receiver that requires a client certificate accepts the endpoint's
#     (client_key sealed at rest under a master key) and refuses an endpoint
#     without one: error class "tls", not delivered, although a connection
#     with the certificate to the same receiver was open;
# (4) nginx offering HTTP/2 (ALPN h2) gets HTTP/2 requests, several
#     deliveries over one connection (its access log: $server_protocol,
#     $connection, $connection_requests).
use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin";
use WebhookTest;
use IO::Socket::INET;
use IPC::Run;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time sleep);

# --- the test PKI (WebhookTest::make_test_pki) ---------------------------------
my $pki = make_test_pki();
my %pem = map { $_ => slurp_file("$pki/$_") }
  qw(ca.pem other_ca.pem client.pem client.key);
like(run_openssl('x509', '-in', "$pki/server.pem", '-noout', '-ext', 'subjectAltName'),
	qr/IP Address:127\.0\.0\.1/, 'the server certificate names 127.0.0.1');

# --- receivers and the server ---------------------------------------------------
my $tls = start_receiver(tls => { cert => "$pki/server.pem", key => "$pki/server.key" });
my $mtls = start_receiver(
	tls => {
		cert => "$pki/server.pem",
		key => "$pki/server.key",
		client_ca => "$pki/ca.pem"
	});

# Only 127.0.0.1 is allowed, as 022 does: the guard refuses other private
# addresses.  A master key, so that client_key is sealed at rest.
my $node = node_with_webhook(
	'tls',
	'webhook.allow_private_networks' => 'off',
	'webhook.allowed_networks' => '127.0.0.1/32');
my $key_file = $node->data_dir . '/tls_master.key';
PostgreSQL::Test::Utils::append_to_file($key_file, 'ab' x 32);
chmod 0600, $key_file or die "chmod $key_file: $!";
$node->safe_psql('postgres',
	"ALTER SYSTEM SET webhook.master_key_file = 'tls_master.key'; SELECT pg_reload_conf()");
ok(poll_until($node, 'postgres', 'SHOW webhook.master_key_file', 'tls_master.key', 30),
	'the master key is set');
$node->safe_psql('postgres', 'CREATE EXTENSION webhook');
my $started = postmaster_started($node);

# An endpoint for events "$name.*" with the given PEM texts (ca_cert,
# client_cert, client_key) and retry schedule (none by default); its id.
sub endpoint
{
	my ($name, $url, %tls) = @_;
	my %v = map { $_ => defined $tls{$_} ? "\$pem\$$tls{$_}\$pem\$" : 'NULL' }
	  qw(ca_cert client_cert client_key);
	my $retries = $tls{retry_schedule_s} // '{}';
	# Not in the server log, so that the check at the end means something.
	return $node->safe_psql(
		'postgres', qq{
		SET log_statement = 'none';
		INSERT INTO webhook.endpoints (name, url, event_types, retry_schedule_s, ca_cert, client_cert, client_key)
		VALUES ('$name', '$url', '{$name.*}', '$retries', $v{ca_cert}, $v{client_cert}, $v{client_key})
		RETURNING id});
}

# Send one event of type "$name.sent"; its id.
sub send_event
{
	my ($name, $n) = @_;
	return $node->safe_psql('postgres',
		qq{SELECT webhook.send('$name.sent', '{"n": $n}')});
}

# The receiver's requests on one path.
sub requests_on
{
	my ($r, $path) = @_;
	return [ grep { $_->{path} eq $path } @{ requests($r) } ];
}

# The delivery log of one event: "attempt|error_class" lines (the errors
# themselves shown when a test fails).
sub attempts_of
{
	my ($event) = @_;
	diag $node->safe_psql('postgres',
		qq{SELECT string_agg(l.attempt || ': ' || coalesce(l.error, 'ok'), E'\n' ORDER BY l.attempt)
		     FROM webhook.delivery_log l WHERE l.event_id = '$event'})
	  if $ENV{TLS_TEST_VERBOSE};
	return $node->safe_psql('postgres',
		qq{SELECT string_agg(l.attempt || '|' || coalesce(l.error_class, 'ok'), ',' ORDER BY l.attempt)
		     FROM webhook.delivery_log l WHERE l.event_id = '$event'});
}

# --- (1) verified via ca_cert -----------------------------------------------------
endpoint('verified', $tls->url('/verified'), ca_cert => $pem{'ca.pem'});
my $ev = send_event('verified', 1);
ok(wait_status($node, $ev, 'succeeded'), '(1) a receiver verified via ca_cert gets the delivery');
my $got = requests_on($tls, '/verified');
is(scalar @$got, 1, '(1) it arrives once');
like($got->[0]{tls}{version} // '', qr/^TLSv1\.[23]$/, '(1) over TLS');
is(attempts_of($ev), '1|ok', '(1) logged as one successful attempt');

# The same receiver without ca_cert: the system store does not know our CA,
# and the connection verified with ca_cert is not reused for it.
endpoint('system_store', $tls->url('/system-store'));
$ev = send_event('system_store', 1);
ok(wait_status($node, $ev, 'failed'), '(1) without ca_cert the receiver is not trusted');
is(attempts_of($ev), '1|tls', '(1) error class tls');
is(scalar @{ requests_on($tls, '/system-store') }, 0, '(1) and nothing reached the receiver');

# --- (2) the wrong CA ---------------------------------------------------------------
endpoint('wrong_ca', $tls->url('/wrong-ca'),
	ca_cert => $pem{'other_ca.pem'}, retry_schedule_s => '{1,1}');
$ev = send_event('wrong_ca', 1);
ok(wait_status($node, $ev, 'failed'), '(2) with the wrong CA the delivery fails');
is(attempts_of($ev), '1|tls,2|tls,3|tls',
	'(2) each attempt is class tls, retried by the schedule (two retries)');
like(
	$node->safe_psql('postgres',
		"SELECT last_error FROM webhook.deliveries WHERE event_id = '$ev'"),
	qr/certificate/i, '(2) the error names the certificate problem');
is(scalar @{ requests_on($tls, '/wrong-ca') }, 0, '(2) nothing reached the receiver');

# --- (3) a receiver that requires a client certificate ------------------------------
endpoint('with_cert', $mtls->url('/with-cert'),
	ca_cert => $pem{'ca.pem'}, client_cert => $pem{'client.pem'}, client_key => $pem{'client.key'});
is( $node->safe_psql('postgres',
		"SELECT client_key LIKE 'whenc:v1:%' FROM webhook.endpoints WHERE name = 'with_cert'"),
	't', '(3) client_key is stored sealed');
$ev = send_event('with_cert', 1);
ok(wait_status($node, $ev, 'succeeded'), '(3) the receiver accepts our client certificate');
$got = requests_on($mtls, '/with-cert');
is(scalar @$got, 1, '(3) it arrives once');
is($got->[0]{tls}{client_cert}, 'webhook-test-client', '(3) the receiver saw our certificate');

endpoint('without_cert', $mtls->url('/without-cert'), ca_cert => $pem{'ca.pem'});
$ev = send_event('without_cert', 1);
ok(wait_status($node, $ev, 'failed'), '(3) without a client certificate the delivery fails');
is(attempts_of($ev), '1|tls', '(3) error class tls');
is(scalar @{ requests_on($mtls, '/without-cert') }, 0, '(3) not delivered: the receiver saw no request');

# And with the certificate again, after the refusal: still accepted.
$ev = send_event('with_cert', 2);
ok(wait_status($node, $ev, 'succeeded'), '(3) the endpoint with a certificate still gets through');

# --- (4) HTTP/2 with nginx, keep-alive -----------------------------------------------
my $ngx_dir = PostgreSQL::Test::Utils::tempdir('nginx');
my $ngx_port = WebhookTest::free_port();
mkdir "$ngx_dir/tmp" or die "mkdir: $!";
PostgreSQL::Test::Utils::append_to_file(
	"$ngx_dir/nginx.conf", qq{
daemon off;
master_process off;
worker_processes 1;
pid $ngx_dir/nginx.pid;
error_log $ngx_dir/error.log;
events { worker_connections 64; }
http {
    log_format webhook '\$server_protocol \$connection \$connection_requests \$request_method \$request_uri \$status';
    access_log $ngx_dir/access.log webhook;
    client_body_temp_path $ngx_dir/tmp/body;
    proxy_temp_path $ngx_dir/tmp/proxy;
    fastcgi_temp_path $ngx_dir/tmp/fastcgi;
    uwsgi_temp_path $ngx_dir/tmp/uwsgi;
    scgi_temp_path $ngx_dir/tmp/scgi;
    server {
        listen 127.0.0.1:$ngx_port ssl http2;
        ssl_certificate $pki/server.pem;
        ssl_certificate_key $pki/server.key;
        location / { return 200 "ok\\n"; }
    }
}
});
my $ngx = IPC::Run::start(
	[ 'nginx', '-p', $ngx_dir, '-c', "$ngx_dir/nginx.conf", '-e', "$ngx_dir/error.log" ],
	'<', \undef, '>', "$ngx_dir/stdout", '2>', "$ngx_dir/stderr");
END { local $?; $ngx->kill_kill(grace => 5) if $ngx; }
my $listening = 0;
for (my $deadline = time() + 30; time() < $deadline && $ngx->pumpable; sleep 0.1)
{
	my $s = IO::Socket::INET->new(PeerAddr => "127.0.0.1:$ngx_port", Proto => 'tcp');
	if ($s) { close $s; $listening = 1; last; }
}
ok($listening, '(4) nginx listens')
  or diag(-f "$ngx_dir/error.log" ? slurp_file("$ngx_dir/error.log") : 'no error log');

endpoint('h2', "https://127.0.0.1:$ngx_port/h2", ca_cert => $pem{'ca.pem'});
my $n_h2 = 5;
my $all_ok = 1;
for my $i (1 .. $n_h2)
{
	# One after another, so that each finds the connection of the last.
	$all_ok &&= wait_status($node, send_event('h2', $i), 'succeeded');
}
ok($all_ok, "(4) $n_h2 deliveries to nginx succeed");
my @lines;
for (my $deadline = time() + 30; time() < $deadline; sleep 0.1)
{
	@lines = grep { /\S/ } split /\n/,
	  (-f "$ngx_dir/access.log" ? slurp_file("$ngx_dir/access.log") : '');
	last if @lines >= $n_h2;
}
is(scalar @lines, $n_h2, "(4) nginx logged $n_h2 requests");
my @fields = map { [ split / / ] } @lines;
is(scalar(grep { $_->[0] eq 'HTTP/2.0' } @fields), $n_h2, '(4) every request used HTTP/2')
  or diag join "\n", @lines;
is(scalar(grep { $_->[3] eq 'POST' && $_->[4] eq '/h2' && $_->[5] eq '200' } @fields),
	$n_h2, '(4) each a POST to the endpoint answered 200');
my %connections = map { $_->[1] => 1 } @fields;
is(scalar keys %connections, 1, '(4) all over one connection (keep-alive)')
  or diag join "\n", @lines;
is(join(',', map { $_->[2] } @fields), join(',', 1 .. $n_h2),
	'(4) the connection served them one after another');

# --- the server is intact -----------------------------------------------------------
assert_server_intact($node, $started, 'tls');
my $log = slurp_file($node->logfile);
my $key_line = (split /\n/, $pem{'client.key'})[1];
ok(index($log, $key_line) < 0 && index($log, 'PRIVATE KEY') < 0,
	'the server log holds no client key');

$ngx->kill_kill(grace => 5);
$tls->stop;
$mtls->stop;
$node->stop;
done_testing();
