# Redirects are never followed: a receiver answering 301/302/303/307/308 with
# a Location (to an allowed path of the same receiver, or to an address the
# network guard refuses) gets one request per attempt, the target is never
# requested, and each attempt is logged as an "http" failure with the 3xx
# status, retried by the endpoint's schedule, then failed.
use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin";
use WebhookTest;
use IPC::Run;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(sleep);

# Loopback only: 127.0.0.1 is allowed by the policy below, 127.0.0.2 is not
# (allow_private_networks is off), so a followed redirect to it would be
# refused by the guard or, were the guard broken, reach the second receiver.
my $r = start_receiver();
my $node = node_with_webhook(
	'redirects',
	'webhook.allow_private_networks' => 'off',
	'webhook.allowed_networks' => '127.0.0.1/32');
$node->safe_psql('postgres', 'CREATE EXTENSION webhook');
my $started = postmaster_started($node);

# A second receiver on 127.0.0.2, a loopback address outside the policy.
sub blocked_receiver
{
	my $dir = PostgreSQL::Test::Utils::tempdir('blocked');
	my $h = IPC::Run::start(
		[
			$ENV{PYTHON} || 'python3', "$FindBin::Bin/../receiver.py",
			'--host', '127.0.0.2', '--port-file', "$dir/port",
			'--log', "$dir/requests.jsonl"
		],
		'<', \undef, '>', "$dir/stderr", '2>', "$dir/stderr");
	for (1 .. 600)
	{
		last if -s "$dir/port";
		sleep 0.05;
	}
	my ($port) = (slurp_file("$dir/port") =~ /(\d+)/);
	return { handle => $h, log => "$dir/requests.jsonl", port => $port };
}
my $blocked = blocked_receiver();
END { local $?; $blocked->{handle}->kill_kill(grace => 5) if $blocked && $blocked->{handle}; }
ok($blocked->{port}, 'a receiver listens on 127.0.0.2');
like(
	$node->safe_psql('postgres',
		"SELECT webhook._url_problem('http://127.0.0.2:$blocked->{port}/target')"),
	qr/\S/, 'the policy refuses 127.0.0.2');

# Percent-encode a whole URL into one path segment.
sub enc { return $_[0] =~ s/([^A-Za-z0-9\-_.~])/sprintf('%%%02X', ord $1)/ger; }

my %target = (
	allowed => sub { $r->url("/target/$_[0]") },
	relative => sub { "/target/$_[0]" },
	blocked => sub { "http://127.0.0.2:$blocked->{port}/target/$_[0]" },
);

# One endpoint per (status, target); one retry each, so every endpoint makes
# two attempts and then fails.
my @cases;
for my $code (301, 302, 303, 307, 308)
{
	for my $kind (sort keys %target)
	{
		my $name = "redirect.$code.$kind";
		my $tag = "$code-$kind";
		my $url = $r->url("/redirect/$code/" . enc($target{$kind}->($tag)));
		$node->safe_psql(
			'postgres', qq{
			INSERT INTO webhook.endpoints (name, url, event_types, retry_schedule_s)
			VALUES ('$name', '$url', '{$name}', '{0}')});
		push @cases, [ $name, $code, $tag,
			$node->safe_psql('postgres', "SELECT webhook.send('$name', '{}')") ];
	}
}

ok( poll_until(
		$node, 'postgres',
		"SELECT count(*) FILTER (WHERE status = 'failed') FROM webhook.deliveries",
		scalar(@cases), 60),
	'every redirected delivery ends failed');

for my $case (@cases)
{
	my ($name, $code, $tag, $ev) = @$case;
	is( $node->safe_psql(
			'postgres', qq{
			SELECT string_agg(attempt || ':' || coalesce(status_code::text, '-') || ':'
			                  || coalesce(error_class, '-'), ',' ORDER BY attempt)
			  FROM webhook.delivery_log WHERE event_id = '$ev'}),
		"1:$code:http,2:$code:http",
		"$name: two attempts, each logged as an http failure with status $code");
	is( $node->safe_psql(
			'postgres',
			"SELECT status || ':' || last_status_code FROM webhook.deliveries WHERE event_id = '$ev'"),
		"failed:$code", "$name: the delivery is failed with status $code");
	my @sent = grep { $_->{path} =~ m{^/redirect/$code/} && ($_->{headers}{'webhook-id'} // '') eq $ev }
	  @{ requests($r) };
	is(scalar @sent, 2, "$name: the redirecting URL was requested once per attempt");
}

# The targets: nothing under /target on either receiver.
my @followed = grep { $_->{path} =~ m{^/target/} } @{ requests($r) };
is(scalar @followed, 0, 'no redirect target on the allowed receiver was requested')
  or diag(join ', ', map { $_->{path} } @followed);
my @reached = @{ requests($blocked) };
is(scalar @reached, 0, 'the receiver on the blocked address was never requested');

assert_server_intact($node, $started, 'redirects');
canary_arrives($node, 'postgres', $r, 'redirects');

$r->stop;
$node->stop;
done_testing();
