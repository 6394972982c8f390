# OAuth2 client credentials: the worker asks a local token endpoint
# (test/oauth_server.py, 127.0.0.1) for a token by the client credentials
# grant with HTTP Basic client authentication, reuses it across deliveries,
# fetches a new one after it expires, and after a 401 from the receiver
# fetches one more and sends the request once more.  A token request that
# fails (wrong client secret) fails the attempt with class oauth and nothing
# reaches the receiver; the client secret is in no log.  A hanging token
# endpoint holds back only its endpoint's deliveries.  The receiver
# (test/receiver.py, /bearer/FILE) accepts only the tokens the token
# endpoint listed in FILE.
use strict;
use warnings;

use Cwd qw(abs_path);
use FindBin;
use lib "$FindBin::Bin";
use IPC::Run;
use MIME::Base64 qw(decode_base64);
use Time::HiRes qw(time sleep);
use WebhookTest;
use PostgreSQL::Test::Utils;
use Test::More;

my $OAUTH_PY = abs_path("$FindBin::Bin/../oauth_server.py");
my $SECRET = 'sekret-XYZ:+/&=';    # characters that form-encoding must escape
my $WRONG = 'wrong-secret-ABC';

# test/oauth_server.py, at most 40 requests; stopped like a receiver
# (WebhookTest::Receiver's stop; requests reads its log).
sub start_token_server
{
	my (%opts) = @_;
	my $dir = PostgreSQL::Test::Utils::tempdir('oauth');
	my $self = bless { dir => $dir, log => "$dir/requests.jsonl", owner => $$,
		tokens => $opts{tokens}, scheme => 'http' }, 'WebhookTest::Receiver';
	$self->{handle} = IPC::Run::start(
		[
			$ENV{PYTHON} || 'python3', $OAUTH_PY,
			'--port-file', "$dir/port", '--log', $self->{log},
			'--tokens-file', $opts{tokens}, '--client', "c1:$SECRET",
			'--expires-in', $opts{expires_in} // 3600, '--max-requests', 40
		],
		'<', \undef, '>', "$dir/stderr", '2>', "$dir/stderr");
	my $deadline = time + 30;
	while (!-s "$dir/port")
	{
		die "oauth_server.py did not start: " . slurp_file("$dir/stderr")
		  if !$self->{handle}->pumpable || time > $deadline;
		sleep 0.05;
	}
	($self->{port}) = slurp_file("$dir/port") =~ /(\d+)/;
	return $self;
}

my $tmp = PostgreSQL::Test::Utils::tempdir('oauth_tokens');
my $tokens = "$tmp/tokens";           # what the receiver accepts
my $none = "$tmp/none";               # a list no token gets into
append_to_file($tokens, '');
append_to_file($none, '');
my $auth = start_token_server(tokens => $tokens);
my $short = start_token_server(tokens => $tokens, expires_in => 3);
my $r = start_receiver();

my $node = node_with_webhook('oauth2');
$node->safe_psql('postgres', 'CREATE EXTENSION webhook');

sub psql { return $node->safe_psql('postgres', $_[0]); }

# An endpoint subscribed to oa.<name>, its receiver path checking tokens
# listed in $list; extra columns as SQL literals.
sub endpoint
{
	my ($name, $list, $token_url, $secret, %cols) = @_;
	my $url = $r->url("/$name/bearer/" . form_encode($list) . '/ok');
	my @names = ('name', 'url', 'event_types', 'oauth_token_url', 'oauth_client_id',
		'oauth_client_secret', keys %cols);
	my @values = ("'$name'", "'$url'", "'{oa.$name}'", "'$token_url'", "'c1'",
		"'$secret'", values %cols);
	# Not in the server log as a statement: the test looks for the secret there.
	local $ENV{PGOPTIONS} = '-c log_statement=none';
	return psql('INSERT INTO webhook.endpoints (' . join(', ', @names)
		  . ') VALUES (' . join(', ', @values) . ') RETURNING id');
}

sub send_events
{
	my ($name, $n) = @_;
	return [ map { psql("SELECT webhook.send('oa.$name', '{\"n\": $_}')") } 1 .. $n ];
}

sub all_succeeded
{
	my ($name, $n) = @_;
	return poll_until($node, 'postgres',
		"SELECT count(*) FROM webhook.deliveries d JOIN webhook.endpoints e ON e.id = d.endpoint_id
		  WHERE e.name = '$name' AND d.status = 'succeeded'", $n);
}

sub received { my ($name) = @_; return [ grep { $_->{path} =~ m{^/$name/} } @{ requests($r) } ]; }
sub bearer { return ($_[0]->{headers}{authorization} // '') =~ s/^Bearer //r; }

# --- one token, fetched once, reused ----------------------------------------
endpoint('reuse', $tokens, $auth->url('/oauth/token'), $SECRET, oauth_scope => "'webhooks:write events.read'");
send_events('reuse', 10);
ok(all_succeeded('reuse', 10), 'ten deliveries with OAuth2 succeed');
my $asked = requests($auth);
is(scalar @$asked, 1, 'one token request for all of them');
my $ask = $asked->[0];
is($ask->{method}, 'POST', 'the token request is a POST');
like($ask->{headers}{'content-type'}, qr{^application/x-www-form-urlencoded}, 'of a form');
is($ask->{body}, 'grant_type=client_credentials&scope=webhooks%3Awrite+events.read',
	'grant_type=client_credentials with the scope, form-encoded');
my ($basic) = ($ask->{headers}{authorization} // '') =~ /^Basic (.+)$/;
is(decode_base64($basic // ''), 'c1:' . form_encode($SECRET),
	'the client authenticates by HTTP Basic, id and secret form-encoded');
is($ask->{status}, 200, 'the token endpoint issued a token');
my $got = received('reuse');
is(scalar @$got, 10, 'the receiver got the ten requests');
is(scalar(grep { bearer($_) eq $ask->{token} } @$got), 10, 'each with Authorization: Bearer and the token');

# --- a token that expires is fetched again -------------------------------------
endpoint('expiry', $tokens, $short->url('/token'), $SECRET);
send_events('expiry', 3);
ok(all_succeeded('expiry', 3), 'deliveries with a token valid for 3 s succeed');
is(scalar @{ requests($short) }, 1, 'one token request for them');
sleep 4;    # past the token's lifetime
send_events('expiry', 3);
ok(all_succeeded('expiry', 6), 'deliveries after it expired succeed');
my $short_asked = requests($short);
is(scalar @$short_asked, 2, 'a new token was fetched once it expired');
$got = received('expiry');
is(scalar(grep { bearer($_) eq $short_asked->[1]{token} } @$got), 3, 'the later deliveries carry the new token');

# --- a 401 fetches a new token once and sends once more ------------------------
truncate_file($tokens);    # the receiver no longer accepts the cached token
my ($ev) = @{ send_events('reuse', 1) };
ok(wait_status($node, $ev, 'succeeded'), 'after a 401 the delivery succeeds');
$asked = requests($auth);
is(scalar @$asked, 2, 'the 401 made exactly one more token request');
$got = [ grep { $_->{body} =~ /"n": 1/ && $_->{headers}{'webhook-id'} eq $ev } @{ received('reuse') } ];
is(scalar @$got, 2, 'the receiver got the request twice');
is(bearer($got->[0]), $asked->[0]{token}, 'first with the refused token');
is(bearer($got->[1]), $asked->[1]{token}, 'then with the new one');
is(psql("SELECT string_agg(status_code::text, ',') FROM webhook.delivery_log WHERE event_id = '$ev'"),
	'200', 'one attempt, logged with the answer to the retry');

# A receiver that refuses every token: one refresh, one retry, then the
# attempt fails with the receiver's 401.
endpoint('refused', $none, $auth->url('/oauth/token'), $SECRET, retry_schedule_s => "'{}'");
($ev) = @{ send_events('refused', 1) };
ok(wait_status($node, $ev, 'failed'), 'a receiver refusing every token: the delivery fails');
is(scalar @{ received('refused') }, 2, 'it got the request twice');
is(scalar @{ requests($auth) }, 4, 'with one token request before each');
is(psql("SELECT count(*) || ' ' || string_agg(error_class || ' ' || status_code, ',') FROM webhook.delivery_log WHERE event_id = '$ev'"),
	'1 http 401', 'one attempt, failed with HTTP 401');

# --- a wrong client secret ----------------------------------------------------
endpoint('wrong', $tokens, $auth->url('/oauth/token'), $WRONG, retry_schedule_s => "'{0}'");
($ev) = @{ send_events('wrong', 1) };
ok(wait_status($node, $ev, 'failed'), 'a wrong client secret: the delivery fails after its retry');
is(scalar @{ received('wrong') }, 0, 'nothing reached the receiver');
my $log = psql("SELECT string_agg(attempt || ' ' || error_class || ' ' || coalesce(status_code, 0) || ' ' || error, E'\n' ORDER BY attempt)
	  FROM webhook.delivery_log WHERE event_id = '$ev'");
my @attempts = split /\n/, $log;
is(scalar @attempts, 2, 'two attempts, retried per the schedule');
like($attempts[0],
	qr{^1 oauth 0 the OAuth2 token request to http://127\.0\.0\.1:\d+ failed: HTTP 401 \(invalid_client: client authentication failed\)$},
	'each failed with class oauth, saying the token request failed and why');
is(scalar(grep { ($_->{client_id} // '') eq 'c1' && $_->{status} == 401 } @{ requests($auth) }), 2,
	'the token endpoint refused both');

# A token endpoint that does not answer JSON.
endpoint('notjson', $tokens, $auth->url('/not-json'), $SECRET, retry_schedule_s => "'{}'");
($ev) = @{ send_events('notjson', 1) };
ok(wait_status($node, $ev, 'failed'), 'a token endpoint answering no JSON: the delivery fails');
like(psql("SELECT error_class || ' ' || error FROM webhook.delivery_log WHERE event_id = '$ev'"),
	qr{^oauth the OAuth2 token endpoint http://127\.0\.0\.1:\d+ did not answer with a JSON object$},
	'with class oauth and what was wrong');
is(scalar @{ received('notjson') }, 0, 'and nothing reached the receiver');

# --- a hanging token endpoint holds back only its own endpoint -------------------
endpoint('slow', $tokens, $auth->url('/hang'), $SECRET, timeout_ms => 15000, retry_schedule_s => "'{}'");
my ($slow_ev) = @{ send_events('slow', 1) };
my $before = scalar @{ requests($auth) };
my $deadline = time + 30;
sleep 0.05 while !(grep { $_->{path} eq '/hang' } @{ requests($auth) }) && time < $deadline;
ok((grep { $_->{path} eq '/hang' } @{ requests($auth) }), 'the token request hangs');
psql("INSERT INTO webhook.endpoints (name, url, event_types) VALUES ('fast', '" . $r->url('/fast/ok') . "', '{oa.fast}')");
send_events('fast', 5);
ok(all_succeeded('fast', 5), 'another endpoint delivers meanwhile');
is(psql("SELECT count(*) FROM webhook.delivery_log WHERE event_id = '$slow_ev'"), '0',
	'while the token request still hangs (no attempt recorded yet)');
is(scalar @{ received('fast') }, 5, 'all five arrived');
ok(wait_status($node, $slow_ev, 'failed', 60), 'the hanging token request ends at the timeout');
like(psql("SELECT error_class || ' ' || error FROM webhook.delivery_log WHERE event_id = '$slow_ev'"),
	qr{^oauth the OAuth2 token request to http://127\.0\.0\.1:\d+ failed \(timeout\): },
	'failing the attempt with class oauth and the timeout');
is(scalar @{ received('slow') }, 0, 'nothing of it reached the receiver');

# --- the network guard: the token request's address is checked at connect time ---
endpoint('guarded', $tokens, $auth->url('/oauth/token'), $SECRET, retry_schedule_s => "'{}'");
psql('ALTER SYSTEM SET webhook.allow_private_networks = off; SELECT pg_reload_conf()');
ok(poll_until($node, 'postgres', 'SHOW webhook.allow_private_networks', 'off', 30), 'private networks refused');
my $asked_before = scalar @{ requests($auth) };
($ev) = @{ send_events('guarded', 1) };
ok(wait_status($node, $ev, 'failed'), 'a token URL the network guard refuses: the delivery fails');
like(psql("SELECT error_class || ' ' || error FROM webhook.delivery_log WHERE event_id = '$ev'"),
	qr{^oauth the OAuth2 token request to http://127\.0\.0\.1:\d+ failed \(blocked\): connection refused by the network guard: loopback address$},
	'with class oauth: the guard refused the token request');
is(scalar @{ requests($auth) }, $asked_before, 'the token endpoint was not contacted');
is(scalar @{ received('guarded') }, 0, 'nor the receiver');
psql('ALTER SYSTEM RESET webhook.allow_private_networks; SELECT pg_reload_conf()');
ok(poll_until($node, 'postgres', 'SHOW webhook.allow_private_networks', 'on', 30), 'private networks allowed again');

# --- no client secret in any log ---------------------------------------------------
{
	local $ENV{PGOPTIONS} = '-c log_statement=none';    # the query names them
	is( psql("SELECT count(*) FROM webhook.delivery_log l
		   WHERE strpos(l::text, 'sekret') > 0 OR strpos(l::text, '$WRONG') > 0"),
		'0', 'no client secret in delivery_log');
}
my $server_log = slurp_file($node->logfile);
ok(index($server_log, 'sekret') < 0 && index($server_log, $WRONG) < 0, 'none in the server log');

$auth->stop;
$short->stop;
$r->stop;
$node->stop;
done_testing();

# application/x-www-form-urlencoded, as RFC 6749 appendix B asks (also a
# safe URL path segment).
sub form_encode
{
	my ($s) = @_;
	$s =~ s/([^A-Za-z0-9\-._*])/$1 eq ' ' ? '+' : sprintf('%%%02X', ord $1)/ge;
	return $s;
}

# Empty a file in place.
sub truncate_file { open my $fh, '>', $_[0] or die "$_[0]: $!"; close $fh; return; }
