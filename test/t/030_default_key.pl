# Secrets encrypted by default (issue 15): a node with no
# webhook.master_key_file.  The key file webhook_master.key appears in the
# data directory at the first seal, mode 0600; concurrent first uses leave
# one key; values are stored sealed and requests are signed and sent in
# clear; a restart keeps working; pg_dump holds no secret in clear; a
# standby made by pg_basebackup opens the secrets.  With the
# key file deleted, the deliveries that need it fail with error_class
# secret while others flow, and a write says the key is missing (no new key
# is made over the sealed values); the key copied back, deliveries resume.
# Last, the change to a new key that README.md describes.
use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin";
use WebhookTest;
use IPC::Run;
use MIME::Base64 qw(encode_base64);
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $r = start_receiver();
# node_with_webhook's settings, on a node that pg_basebackup can copy.
my $node = PostgreSQL::Test::Cluster->new('default_key');
$node->init(allows_streaming => 1);
$node->append_conf('postgresql.conf', join '',
	"shared_preload_libraries = 'webhook'\n",
	"webhook.allow_private_networks = on\n",
	"webhook.retry_delay_scale = 0.001\n",
	"log_min_messages = info\n");
$node->start;
my $started = postmaster_started($node);
my $key_file = $node->data_dir . '/webhook_master.key';

sub psql { return $node->safe_psql('postgres', $_[0]); }

psql('CREATE EXTENSION webhook');
is(psql('SHOW webhook.master_key_file'), '', 'no master key file is configured');
ok(!-e $key_file, 'no key file before the first secret is written');

# An endpoint with nothing to seal needs no key.
my $plain_ep = psql(sprintf(q{INSERT INTO webhook.endpoints (name, url, event_types, signing)
	VALUES ('unsigned', '%s', '{other.*}', 'none') RETURNING id}, $r->url('/other')));
ok(!-e $key_file, 'an endpoint without secrets makes no key');

# --- concurrent first uses -------------------------------------------------------
# Six sessions wait on an advisory lock, then each writes an endpoint (and
# so seals its generated secret) at the same moment.
my $holder = $node->background_psql('postgres');
$holder->query_safe('SELECT pg_advisory_lock(3030)');
my (@runs, @out, @err);
for my $i (0 .. 5)
{
	($out[$i], $err[$i]) = ('', '');
	push @runs, IPC::Run::start(
		[
			'psql', '-X', '-q', '-v', 'ON_ERROR_STOP=1', '-d', $node->connstr('postgres'), '-c',
			"SELECT pg_advisory_lock_shared(3030); INSERT INTO webhook.endpoints (name, url, event_types, active)
			 VALUES ('race$i', 'http://127.0.0.1:9/race', '{race.*}', false)"
		],
		'>', \$out[$i], '2>', \$err[$i]);
}
ok( poll_until($node, 'postgres',
		q{SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted}, '6', 60),
	'six first uses wait at the barrier');
$holder->query_safe('SELECT pg_advisory_unlock(3030)');
$holder->quit;
my $failed = 0;
for my $i (0 .. 5)
{
	$runs[$i]->finish;
	$failed++ if $runs[$i]->result != 0;
	diag $err[$i] if $runs[$i]->result != 0;
}
is($failed, 0, 'every concurrent first use succeeded');
ok(-f $key_file, 'the key file exists after the first seal');
is((stat $key_file)[2] & 07777, 0600, 'the key file has mode 0600');
like(slurp_file($key_file), qr/\A[0-9a-f]{64}\n\z/, 'the key file holds 64 hex digits');
opendir my $dh, $node->data_dir or die "cannot read data directory: $!";
my @leftover = grep { /^webhook_master\.key./ } readdir $dh;
closedir $dh;
is(join(' ', @leftover), '', 'no temporary key file is left');
is( psql(q{SELECT count(*) FILTER (WHERE secret LIKE 'whenc:v1:%'
	                               AND webhook.endpoint_secret(id) ~ '^whsec_') FROM webhook.endpoints
	        WHERE name LIKE 'race%'}),
	'6', 'the six secrets are sealed under the one key that stays');
psql(q{DELETE FROM webhook.endpoints WHERE name LIKE 'race%'});

# --- sealed at rest, sent in clear ---------------------------------------------------
my $secret = 'whsec_' . encode_base64(join('', map { chr(int(rand(256))) } 1 .. 32), '');
my $header_value = 'hv-5772156649';
my $password = 'pw-6180339887';
my $ep = psql(sprintf(q{INSERT INTO webhook.endpoints (name, url, event_types, secret, headers,
	                                                   auth_username, auth_password)
	VALUES ('sealed', '%s', '{order.*}', '%s', '{"X-Api-Key": "%s"}', 'user', '%s') RETURNING id},
	$r->url('/sealed'), $secret, $header_value, $password));
is( psql(qq{SELECT secret LIKE 'whenc:v1:%' AND auth_password LIKE 'whenc:v1:%'
	                AND headers ->> 'X-Api-Key' LIKE 'whenc:v1:%'
	           FROM webhook.endpoints WHERE id = $ep}),
	't', 'secret, password and header value are stored sealed');
is(psql("SELECT webhook.endpoint_secret($ep)"), $secret, 'endpoint_secret() opens the secret');

# Send one order event and check what the receiver got.
sub delivered_in_clear
{
	my ($label, $n) = @_;
	my $ev = psql(q{SELECT webhook.send('order.created', '{"n": 1}')});
	ok(wait_status($node, $ev, 'succeeded', 60), "$label: the delivery succeeded");
	my @got = grep { $_->{path} eq '/sealed' } @{ wait_for_requests($r, $n, 30) };
	my $req = $got[-1];
	ok(verify_standard_signature($secret, $req->{headers}, $req->{body}),
		"$label: the request verifies with the secret given");
	is($req->{headers}{'x-api-key'}, $header_value, "$label: the header value is sent in clear");
	is($req->{headers}{authorization}, 'Basic ' . encode_base64("user:$password", ''),
		"$label: the password is sent in clear");
}
delivered_in_clear('first use', 1);

$node->restart;
$started = postmaster_started($node);
delivered_in_clear('after a restart', 2);
is(psql("SELECT webhook.endpoint_secret($ep)"), $secret, 'after a restart: the secret still opens');

# --- pg_dump ---------------------------------------------------------------------
my ($dump, $dump_err) = run_command([ 'pg_dump', '-d', $node->connstr('postgres') ]);
like($dump, qr/whenc:v1:/, 'pg_dump: the endpoints are dumped, sealed');
(my $b64 = $secret) =~ s/^whsec_//;
unlike($dump, qr/\Q$b64\E/, 'pg_dump: no secret in clear');
unlike($dump, qr/\Q$header_value\E/, 'pg_dump: no header value in clear');
unlike($dump, qr/\Q$password\E/, 'pg_dump: no password in clear');

# --- a physical standby ------------------------------------------------------------
# pg_basebackup copies the data directory but for a few files it excludes
# by name: the key file travels, and the standby opens the secrets.
$node->backup('base');
my $backup_key = $node->backup_dir . '/base/webhook_master.key';
ok(-f $backup_key, 'pg_basebackup copies webhook_master.key');
is((stat $backup_key)[2] & 07777, 0600, 'pg_basebackup keeps it readable by its owner only');
my $standby = standby_from_backup($node, 'base', 'default_key_standby');
$standby->start;
$node->wait_for_catchup($standby);
is($standby->safe_psql('postgres', "SELECT webhook.endpoint_secret($ep)"), $secret,
	'the standby opens the secret with the copied key');
$standby->stop;

# --- the key file deleted ----------------------------------------------------------
my $saved_key = slurp_file($key_file);
unlink $key_file or die "cannot delete $key_file: $!";
my $ev = psql(q{SELECT webhook.send('order.created', '{"n": 2}')});
ok(wait_status($node, $ev, 'failed', 60), 'key deleted: the delivery that needs it failed');
my $log = psql("SELECT error_class || '|' || error FROM webhook.delivery_log WHERE event_id = '$ev'");
like($log, qr/^secret\|.*webhook master key file "webhook_master\.key" is missing/,
	'key deleted: logged as error_class secret, naming the missing file')
  or diag $log;
unlike($log, qr/\Q$b64\E|\Q$header_value\E|\Q$password\E|whenc:/, 'key deleted: no secret in the message');
my $other = psql(q{SELECT webhook.send('other.ping', '{}')});
ok(wait_status($node, $other, 'succeeded', 60), 'key deleted: another endpoint still gets its events');

my ($rc, $out, $err) = $node->psql('postgres',
	q{INSERT INTO webhook.endpoints (name, url) VALUES ('after-loss', 'http://127.0.0.1:9/x')});
isnt($rc, 0, 'key deleted: writing a new secret is refused');
like($err, qr/ERROR:  webhook master key file "webhook_master\.key" is missing/,
	'key deleted: the error names the missing key file');
like($err, qr/HINT:  Copy the file back/, 'key deleted: and says how to get it back');
($rc, $out, $err) = $node->psql('postgres',
	qq{UPDATE webhook.endpoints SET headers = '{"X-Api-Key": "new"}' WHERE id = $ep});
like($err, qr/webhook master key file "webhook_master\.key" is missing/,
	'key deleted: rewriting a sealed endpoint is refused too');
ok(!-e $key_file, 'key deleted: no new key was made over the sealed values');

# The key copied back: everything works again.
open my $fh, '>', $key_file or die "cannot write $key_file: $!";
print $fh $saved_key;
close $fh;
chmod 0600, $key_file or die "chmod $key_file: $!";
delivered_in_clear('key copied back', 3);

# --- changing the key, as README.md says ---------------------------------------------
# The values read in clear under the old key (here the test knows them), a
# new key file named, every sealed column written back in clear.
my $new_key = $node->data_dir . '/webhook_new.key';
open $fh, '>', $new_key or die "cannot write $new_key: $!";
print $fh join('', map { sprintf '%02x', int(rand(256)) } 1 .. 32), "\n";
close $fh;
chmod 0600, $new_key or die "chmod $new_key: $!";
my $old_stored = psql("SELECT secret FROM webhook.endpoints WHERE id = $ep");
psql("ALTER SYSTEM SET webhook.master_key_file = 'webhook_new.key'; SELECT pg_reload_conf()");
ok(poll_until($node, 'postgres', 'SHOW webhook.master_key_file', 'webhook_new.key', 30), 'new key: in use');
psql(qq{UPDATE webhook.endpoints SET secret = '$secret', auth_password = '$password',
	        headers = '{"X-Api-Key": "$header_value"}' WHERE id = $ep});
is( psql(qq{SELECT secret LIKE 'whenc:v1:%' AND secret <> '$old_stored' AND auth_password LIKE 'whenc:v1:%'
	                AND headers ->> 'X-Api-Key' LIKE 'whenc:v1:%'
	           FROM webhook.endpoints WHERE id = $ep}),
	't', 'new key: the values written back are sealed again');
delivered_in_clear('new key', 4);

assert_server_intact($node, $started, 'default key');
$node->stop;
done_testing();
