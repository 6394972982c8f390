# Egress: libcurl never takes a proxy from the server's environment.  The
# server is started with http_proxy, HTTPS_PROXY and ALL_PROXY pointing at a
# second receiver acting as a proxy; every request must still go straight to
# the endpoint's own address, where the network guard checked it.  And the
# longest signature header name allowed is sent whole, signature included.
use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin";
use WebhookTest;
use PostgreSQL::Test::Utils;
use Test::More;

my $r = start_receiver();
my $proxy = start_receiver();

# The server inherits the test's environment when it starts.
my @proxy_vars = qw(http_proxy HTTP_PROXY https_proxy HTTPS_PROXY all_proxy ALL_PROXY no_proxy NO_PROXY);
my %saved = map { ($_ => $ENV{$_}) } @proxy_vars;
delete @ENV{qw(no_proxy NO_PROXY)};
$ENV{$_} = $proxy->url('/') for qw(http_proxy HTTPS_PROXY ALL_PROXY);
my $node = node_with_webhook('egress');
for my $var (@proxy_vars)
{
	if (defined $saved{$var}) { $ENV{$var} = $saved{$var}; }
	else { delete $ENV{$var}; }
}

$node->safe_psql('postgres', 'CREATE EXTENSION webhook');
my $started = postmaster_started($node);

$node->safe_psql('postgres', sprintf(q{
	INSERT INTO webhook.endpoints (name, url, event_types) VALUES ('direct', '%s', '{egress.direct}')},
	$r->url('/direct')));
my $ev = $node->safe_psql('postgres', q{SELECT webhook.send('egress.direct', '{"n": 1}')});
ok(poll_until($node, 'postgres',
		"SELECT status FROM webhook.deliveries WHERE event_id = '$ev'", 'succeeded', 60),
	'the delivery succeeded');
my @direct = grep { $_->{path} eq '/direct' && ($_->{headers}{'webhook-id'} // '') eq $ev }
  @{ requests($r) };
is(scalar(@direct), 1, 'the endpoint received the request directly');
is(scalar(@{ requests($proxy) }), 0, 'the proxy named in the environment saw nothing');

assert_server_intact($node, $started, 'proxy in the environment');
canary_arrives($node, 'postgres', $r, 'proxy in the environment');
is(scalar(@{ requests($proxy) }), 0, 'the canary did not go through the proxy either');

# The longest signature header name allowed (128 bytes) arrives whole, with
# the whole signature after it: nothing truncates the header line.
my $long_name = 'X-' . ('s' x 126);
my ($gh_id, $gh_secret) = split /\|/, $node->safe_psql('postgres', sprintf(q{
	INSERT INTO webhook.endpoints (name, url, event_types, signing, signature_header)
	VALUES ('long-header', '%s', '{egress.long}', 'hmac-sha256', '%s') RETURNING id, webhook._unseal(secret)},
	$r->url('/long'), $long_name));
$ev = $node->safe_psql('postgres', q{SELECT webhook.send('egress.long', '{"n": 2}')});
ok(poll_until($node, 'postgres',
		"SELECT status FROM webhook.deliveries WHERE event_id = '$ev'", 'succeeded', 60),
	'the delivery with a 128-byte signature header succeeded');
my ($long) = grep { ($_->{headers}{'webhook-id'} // '') eq $ev } @{ requests($r) };
ok($long && verify_hex_hmac($gh_secret, $long->{body}, $long->{headers}{ lc $long_name }),
	'its signature header carries the whole, valid signature');

$node->stop;
$r->stop;
$proxy->stop;
done_testing();
