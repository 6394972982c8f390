# Proxies: webhook.proxy sends requests through a proxy (absolute-form for
# http://, CONNECT for https://), an endpoint's proxy column overrides it
# ('direct': no proxy), proxy credentials reach the proxy and nothing else, an
# unreachable proxy is a connect error that is retried, a reload of the
# setting takes effect, and the environment's proxies (and no_proxy) stay
# ignored.  The network guard: the receiver's URL is checked before the
# request, an endpoint's own proxy is checked at connect time, webhook.proxy
# (a superuser's choice) is trusted.  The proxies are test/proxy.py on
# 127.0.0.1; whatever host a request names, they only connect to the local
# receiver.
use strict;
use warnings;

use Cwd qw(abs_path);
use File::Basename qw(dirname);
use FindBin;
use lib "$FindBin::Bin";
use IPC::Run;
use MIME::Base64 qw(encode_base64);
use Time::HiRes qw(time sleep);
use WebhookTest;
use PostgreSQL::Test::Utils;
use Test::More;

my $PROXY_PY = abs_path("$FindBin::Bin/../proxy.py");

my $r = start_receiver();
my $decoy = start_receiver();    # named by the environment: must see nothing

# test/proxy.py forwarding to the receiver, at most 50 requests; stopped like
# a receiver (WebhookTest::Receiver's stop, requests reads its log).
sub start_proxy
{
	my (%opts) = @_;
	my $dir = PostgreSQL::Test::Utils::tempdir('proxy');
	my $self = bless { dir => $dir, log => "$dir/requests.jsonl", owner => $$ },
	  'WebhookTest::Receiver';
	$self->{handle} = IPC::Run::start(
		[
			$ENV{PYTHON} || 'python3', $PROXY_PY,
			'--port-file', "$dir/port", '--log', $self->{log},
			'--upstream-port', ($opts{upstream} // $r)->{port}, '--max-requests', 50,
			(defined $opts{auth} ? ('--auth', $opts{auth}) : ())
		],
		'<', \undef, '>', "$dir/stderr", '2>', "$dir/stderr");
	my $deadline = time + 30;
	while (!-s "$dir/port")
	{
		die "proxy.py did not start: " . slurp_file("$dir/stderr")
		  if !$self->{handle}->pumpable || time > $deadline;
		sleep 0.05;
	}
	($self->{port}) = slurp_file("$dir/port") =~ /(\d+)/;
	return $self;
}

my $a = start_proxy();                                        # webhook.proxy
my $b = start_proxy(auth => 'px-user:p@ss:w0rd');             # an endpoint's
my $c = start_proxy();                                        # after a reload

# The server inherits the test's environment when it starts: proxies that
# must be ignored, and a no_proxy that must not bypass the configured one.
my @proxy_vars = qw(http_proxy HTTP_PROXY https_proxy HTTPS_PROXY all_proxy ALL_PROXY no_proxy NO_PROXY);
my %saved = map { ($_ => $ENV{$_}) } @proxy_vars;
$ENV{$_} = $decoy->url('/') for qw(http_proxy HTTPS_PROXY ALL_PROXY);
$ENV{$_} = '*' for qw(no_proxy NO_PROXY);
my $node = node_with_webhook('proxy', 'webhook.proxy' => "http://127.0.0.1:$a->{port}");
for my $var (@proxy_vars)
{
	if (defined $saved{$var}) { $ENV{$var} = $saved{$var}; }
	else { delete $ENV{$var}; }
}
$node->safe_psql('postgres', 'CREATE EXTENSION webhook');

sub psql { return $node->safe_psql('postgres', $_[0]); }

# An endpoint subscribed to px.<name>; extra columns as SQL literals.
sub endpoint
{
	my ($name, $url, %cols) = @_;
	my @names = ('name', 'url', 'event_types', sort keys %cols);
	my @values = ("'$name'", "'$url'", "'{px.$name}'", map { $cols{$_} } sort keys %cols);
	return psql(sprintf('INSERT INTO webhook.endpoints (%s) VALUES (%s) RETURNING id',
			join(', ', @names), join(', ', @values)));
}

sub send_event { my ($name) = @_; return psql("SELECT webhook.send('px.$name', '{\"n\": 1}')"); }

# The delivery's final status (succeeded or failed), or '' after 60 s.
sub settled
{
	my ($ev) = @_;
	poll_until($node, 'postgres',
		"SELECT status <> 'pending' FROM webhook.deliveries WHERE event_id = '$ev'", 't', 60);
	return psql("SELECT status FROM webhook.deliveries WHERE event_id = '$ev'");
}

# The attempts of an event as "class|error" lines ("-" for success).
sub attempts
{
	my ($ev) = @_;
	return psql("SELECT string_agg(coalesce(error_class, '-') || '|' || coalesce(error, ''), E'\\n' ORDER BY attempt)
	               FROM webhook.delivery_log WHERE event_id = '$ev'");
}

# What a receiver or proxy logged of one event.
sub seen
{
	my ($srv, $ev) = @_;
	return grep { ($_->{headers}{'webhook-id'} // '') eq $ev } @{ requests($srv) };
}

my $rport = $r->{port};

# --- webhook.proxy: absolute-form request through the proxy ------------------
{
	endpoint('setting', $r->url('/via-setting'));
	my $ev = send_event('setting');
	is(settled($ev), 'succeeded', 'webhook.proxy: the delivery succeeded');
	my @via = seen($a, $ev);
	is(scalar(@via), 1, 'webhook.proxy: the proxy forwarded the request');
	is($via[0]{method} . ' ' . $via[0]{target}, "POST http://127.0.0.1:$rport/via-setting",
		'webhook.proxy: in absolute form, naming the receiver');
	my @got = seen($r, $ev);
	is(scalar(@got), 1, 'webhook.proxy: the receiver got it once');
	is($got[0]{path}, '/via-setting', 'webhook.proxy: at its path');
}

# --- an endpoint's proxy beats the setting, and gets its credentials ---------
{
	endpoint('override', $r->url('/override'),
		proxy => "'http://px-user:p%40ss%3Aw0rd\@127.0.0.1:$b->{port}'");
	my $ev = send_event('override');
	is(settled($ev), 'succeeded', 'endpoint proxy: the delivery succeeded');
	my @via = seen($b, $ev);
	is(scalar(@via), 1, "endpoint proxy: the endpoint's proxy forwarded it");
	is($via[0]{headers}{'proxy-authorization'}, 'Basic ' . encode_base64('px-user:p@ss:w0rd', ''),
		'endpoint proxy: the credentials reached the proxy as Proxy-Authorization');
	is(scalar(seen($a, $ev)), 0, 'endpoint proxy: webhook.proxy saw nothing of it');
	my @got = seen($r, $ev);
	is(scalar(@got), 1, 'endpoint proxy: the receiver got it');
	ok(!exists $got[0]{headers}{'proxy-authorization'}, 'endpoint proxy: without the proxy credentials');
}

# --- wrong credentials: the proxy's 407, without the password ----------------
{
	endpoint('bad-creds', $r->url('/bad-creds'),
		proxy => "'http://px-user:wrong-pass\@127.0.0.1:$b->{port}'", retry_schedule_s => q('{}'));
	my $ev = send_event('bad-creds');
	is(settled($ev), 'failed', 'wrong proxy credentials: the delivery failed');
	is(attempts($ev), "http|HTTP 407 (through proxy http://127.0.0.1:$b->{port})",
		'wrong proxy credentials: the 407 is logged with the proxy, not its password');
	is(scalar(seen($r, $ev)), 0, 'wrong proxy credentials: nothing reached the receiver');
}

# --- 'direct': no proxy, even though webhook.proxy is set -----------------
{
	endpoint('direct', $r->url('/direct'), proxy => q('direct'));
	my $ev = send_event('direct');
	is(settled($ev), 'succeeded', 'direct: the delivery succeeded');
	is(scalar(seen($r, $ev)), 1, 'direct: the receiver got it');
	is(scalar(seen($a, $ev)) + scalar(seen($b, $ev)), 0, 'direct: no proxy saw it');
}

# --- an unreachable proxy: connect errors, retried ---------------------------
{
	my $port = WebhookTest::free_port();
	endpoint('gone', $r->url('/gone'),
		proxy => "'http://px-user:gone-pass\@127.0.0.1:$port'", retry_schedule_s => q('{0,0}'));
	my $ev = send_event('gone');
	is(settled($ev), 'failed', 'unreachable proxy: the delivery failed');
	my @rows = split /\n/, attempts($ev);
	is(scalar(@rows), 3, 'unreachable proxy: three attempts (two retries)');
	is(scalar(grep { /^connect\|.*\(through proxy http:\/\/127\.0\.0\.1:$port\)$/ } @rows), 3,
		'unreachable proxy: each a connect error naming the proxy');
	is(scalar(seen($r, $ev)), 0, 'unreachable proxy: nothing reached the receiver');
}

# --- https:// through the proxy: a CONNECT tunnel ----------------------------
{
	endpoint('tunnel', "https://127.0.0.1:$rport/tunnel", retry_schedule_s => q('{}'),
		timeout_ms => 3000);
	my $ev = send_event('tunnel');
	is(settled($ev), 'failed', 'CONNECT: the delivery failed (the receiver speaks no TLS)');
	my @connect = grep { $_->{method} eq 'CONNECT' } @{ requests($a) };
	is(scalar(@connect), 1, 'CONNECT: webhook.proxy was asked for one tunnel');
	is($connect[0]{target}, "127.0.0.1:$rport", 'CONNECT: to the receiver');
	like(attempts($ev), qr/\(through proxy http:\/\/127\.0\.0\.1:$a->{port}\)$/,
		'CONNECT: the error names the proxy');
}

# --- https:// through a CONNECT tunnel, end to end --------------------------
# A TLS receiver with a certificate from the test CA, reached only through an
# endpoint's proxy that tunnels to it: the TLS session runs inside the tunnel,
# verified by the endpoint's ca_cert, and the proxy sees no request of its own.
{
	my $pki = make_test_pki();
	my $tls = start_receiver(tls => { cert => "$pki/server.pem", key => "$pki/server.key" });
	my $tunnel = start_proxy(upstream => $tls);
	my $ca = slurp_file("$pki/ca.pem");
	endpoint('tls-tunnel', $tls->url('/tls-tunnel'), retry_schedule_s => q('{}'),
		proxy => "'http://127.0.0.1:$tunnel->{port}'", ca_cert => "\$pem\$$ca\$pem\$");
	my $ev = send_event('tls-tunnel');
	is(settled($ev), 'succeeded', 'https through CONNECT: delivered');
	my @connect = grep { $_->{method} eq 'CONNECT' } @{ requests($tunnel) };
	is(scalar(@connect), 1, 'https through CONNECT: one tunnel');
	is($connect[0]{target}, "127.0.0.1:$tls->{port}", 'https through CONNECT: to the TLS receiver');
	my @got = seen($tls, $ev);
	is(scalar(@got), 1, 'https through CONNECT: the TLS receiver got it once');
	like($got[0]{tls}{version} // '', qr/^TLSv1\.[23]$/, 'https through CONNECT: over TLS inside the tunnel');
}

# --- a reload of webhook.proxy takes effect ----------------------------------
{
	psql("ALTER SYSTEM SET webhook.proxy = 'http://127.0.0.1:$c->{port}'");
	$node->reload;
	ok(poll_until($node, 'postgres', 'SHOW webhook.proxy', "http://127.0.0.1:$c->{port}", 30),
		'reload: webhook.proxy changed');
	my $ev = send_event('setting');
	is(settled($ev), 'succeeded', 'reload: the delivery succeeded');
	is(scalar(seen($c, $ev)), 1, 'reload: through the new proxy');
	is(scalar(seen($a, $ev)), 0, 'reload: not through the old one');
	psql("ALTER SYSTEM SET webhook.proxy = 'http://127.0.0.1:$a->{port}'");
	$node->reload;
	ok(poll_until($node, 'postgres', 'SHOW webhook.proxy', "http://127.0.0.1:$a->{port}", 30),
		'reload: webhook.proxy back');
}

# --- the network guard with a proxy -----------------------------------------
{
	# Written while private networks are allowed.
	endpoint('guard-literal', $r->url('/guard-literal'), retry_schedule_s => q('{}'));
	endpoint('guard-own-proxy', 'http://receiver.localhost/guard-own-proxy',
		proxy => "'http://localhost:$a->{port}'", retry_schedule_s => q('{}'));
	endpoint('guard-name', 'http://receiver.localhost/guard-name', retry_schedule_s => q('{}'));
	psql('ALTER SYSTEM SET webhook.allow_private_networks = off');
	$node->reload;
	ok(poll_until($node, 'postgres', 'SHOW webhook.allow_private_networks', 'off', 30),
		'guard: private networks refused after reload');

	my $ev = send_event('guard-own-proxy');
	is(settled($ev), 'failed', "guard: an endpoint's proxy on loopback is refused");
	is(attempts($ev),
		"blocked|connection to the endpoint's proxy refused by the network guard: loopback address (through proxy http://localhost:$a->{port})",
		'guard: at connect time, once, as blocked');
	is(scalar(seen($a, $ev)), 0, 'guard: the proxy saw nothing');

	$ev = send_event('guard-literal');
	is(settled($ev), 'failed', "guard: a receiver on a loopback literal is refused through webhook.proxy");
	like(attempts($ev),
		qr/^blocked\|the receiver's URL is refused by the network guard: The host is a non-public address \(loopback\)/,
		'guard: before the request, by the URL rules, as blocked');
	is(scalar(seen($a, $ev)) + scalar(seen($r, $ev)), 0, 'guard: neither proxy nor receiver saw it');

	$ev = send_event('guard-name');
	is(settled($ev), 'succeeded', 'guard: webhook.proxy on loopback is trusted');
	my @via = seen($a, $ev);
	is($via[0]{target}, 'http://receiver.localhost/guard-name',
		"guard: the receiver's name went to the proxy, unresolved");
	is(scalar(seen($r, $ev)), 1, 'guard: and the receiver got it');
}

# --- nothing went where it should not ---------------------------------------
is(scalar(@{ requests($decoy) }), 0, "the environment's proxy saw nothing");
is(psql(q{SELECT count(*) FROM webhook.delivery_log
           WHERE concat_ws(' ', url, error, response_body) ~ '(w0rd|p%40ss|p@ss|wrong-pass|gone-pass)'}),
	'0', 'no proxy password in webhook.delivery_log');
is(psql(q{SELECT count(*) FROM webhook.deliveries WHERE last_error ~ '(w0rd|p%40ss|wrong-pass|gone-pass)'}),
	'0', 'nor in webhook.deliveries.last_error');
# The test's own statements are logged (log_statement = all): skip them.
my @server_log = grep { !/statement: / && !/^\s/ } split /\n/, slurp_file($node->logfile);
is(scalar(grep { /w0rd|p%40ss|wrong-pass|gone-pass/ } @server_log), 0, 'nor in the server log');

$node->stop;
$_->stop for ($a, $b, $c, $r, $decoy);
done_testing();
