# Signing schemes end to end, each checked by an implementation independent
# of the extension's C code: standard (Perl HMAC), hmac-sha256 as GitHub
# sends it (Perl hex HMAC), ed25519 (openssl command line) and none.  Also
# secret rotation (both signatures during the grace period, only the new one
# without), HTTP Basic authentication without any trace of the password in
# the log, and secrets at rest under a master key (ciphertext in the table
# and in pg_dump, deliveries still verify).
use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin";
use WebhookTest;
use MIME::Base64 qw(encode_base64);
use PostgreSQL::Test::Utils;
use Test::More;

ok(self_test_vectors(), 'signature verifiers pass the published test vectors');

my $r = start_receiver();
my $node = node_with_webhook('signing');
$node->safe_psql('postgres', 'CREATE EXTENSION webhook');

# An endpoint that takes only event type $type; returns (id, secret in clear:
# it is stored sealed, by default under webhook_master.key).
sub endpoint
{
	my ($type, $path, %cols) = @_;
	my @names = ('name', 'url', 'event_types', sort keys %cols);
	my @vals = ("'$type'", "'" . $r->url($path) . "'", "'{$type}'",
		map { $cols{$_} } sort keys %cols);
	return split /\|/, $node->safe_psql('postgres',
		sprintf('INSERT INTO webhook.endpoints (%s) VALUES (%s) RETURNING id, webhook._unseal(secret)',
			join(', ', @names), join(', ', @vals)));
}

# Send one event and wait until its only delivery succeeded; returns the
# request the receiver got for it (or an empty stand-in).
sub deliver
{
	my ($type, $payload) = @_;
	$payload //= '{"n": 1}';
	my $ev = $node->safe_psql('postgres', "SELECT webhook.send('$type', '$payload')");
	ok( poll_until(
			$node, 'postgres',
			"SELECT string_agg(status, ',') FROM webhook.deliveries WHERE event_id = '$ev'",
			'succeeded', 30),
		"$type: delivered");
	my @got = grep { ($_->{headers}{'webhook-id'} // '') eq $ev } @{ requests($r) };
	is(scalar @got, 1, "$type: the receiver got the event once");
	return $got[0] // { headers => {}, body => '', event_id => $ev };
}

# --- standard ----------------------------------------------------------------
{
	my ($id, $secret) = endpoint('std.test', '/std');
	like($secret, qr/^whsec_/, 'standard: a whsec_ secret is generated');
	my $req = deliver('std.test');
	ok(verify_standard_signature($secret, $req->{headers}, $req->{body}),
		'standard: webhook-signature verifies (Perl HMAC-SHA256)')
	  or diag explain $req->{headers};
	like($req->{headers}{'webhook-signature'} // '', qr/^v1,[A-Za-z0-9+\/]+=*$/,
		'standard: exactly one v1 signature');
	ok(!defined $req->{headers}{'x-webhook-signature'},
		'standard: no hex signature header');
}

# --- hmac-sha256, GitHub style -----------------------------------------------
{
	my ($id, $secret) = endpoint('hmac.test', '/hmac',
		signing => "'hmac-sha256'", signature_header => "'X-Hub-Signature-256'");
	ok(length($secret // '') > 0, 'hmac-sha256: a secret is generated');
	my $req = deliver('hmac.test');
	my $sig = $req->{headers}{'x-hub-signature-256'};
	like($sig // '', qr/^sha256=[0-9a-f]{64}$/, 'hmac-sha256: X-Hub-Signature-256 is sha256=<hex>');
	ok(verify_hex_hmac($secret, $req->{body}, $sig),
		'hmac-sha256: hex HMAC of the body with the endpoint secret verifies')
	  or diag explain $req->{headers};
	ok(!verify_hex_hmac($secret . 'x', $req->{body}, $sig),
		'hmac-sha256: and not with another secret');
	ok(!defined $req->{headers}{'webhook-signature'},
		'hmac-sha256: no webhook-signature header');
	ok(!defined $req->{headers}{'x-webhook-signature'},
		'hmac-sha256: nothing in the default signature header either');
}

# --- ed25519 -----------------------------------------------------------------
SKIP:
{
	my ($ok_openssl) = eval {
		my ($out, $err) = run_command([ 'openssl', 'version' ]);
		$out =~ /^OpenSSL 3/ ? 1 : 0;
	};
	skip 'openssl 3 command line tool not available', 13 unless $ok_openssl;

	my ($id, $secret) = endpoint('ed.test', '/ed', signing => "'ed25519'");
	like($secret, qr/^whsk_/, 'ed25519: a whsk_ secret is generated');
	my $pk = $node->safe_psql('postgres', "SELECT webhook.public_key($id)");
	like($pk, qr/^whpk_[A-Za-z0-9+\/]{43}=$/, 'ed25519: public_key() is whpk_ + 32 bytes');
	my $req = deliver('ed.test');
	like($req->{headers}{'webhook-signature'} // '', qr/^v1a,[A-Za-z0-9+\/]+=*$/,
		'ed25519: one v1a signature');
	ok(WebhookTest::verify_ed25519_signature($pk, $req->{headers}, $req->{body}),
		'ed25519: the v1a signature verifies with openssl and the public key')
	  or diag explain $req->{headers};
	ok(!WebhookTest::verify_ed25519_signature($pk, $req->{headers}, $req->{body} . ' '),
		'ed25519: and not over other bytes');

	# Rotation of an ed25519 key: the new public key is returned, and during
	# the grace period one v1a signature verifies with each key.
	my $pk2 = $node->safe_psql('postgres', "SELECT webhook.rotate_secret($id, '1 hour')");
	like($pk2, qr/^whpk_/, 'ed25519 rotation: rotate_secret returns the new public key');
	is($node->safe_psql('postgres', "SELECT webhook.public_key($id)"), $pk2,
		'ed25519 rotation: public_key() is the new key');
	$req = deliver('ed.test', '{"rotated": true}');
	my @sigs = split / /, ($req->{headers}{'webhook-signature'} // '');
	is(scalar @sigs, 2, 'ed25519 rotation: two v1a signatures during the grace period');
	my %one = map {
		my $sig = $_;
		$sig => {
			old => WebhookTest::verify_ed25519_signature($pk,
				{ %{ $req->{headers} }, 'webhook-signature' => $sig }, $req->{body}),
			new => WebhookTest::verify_ed25519_signature($pk2,
				{ %{ $req->{headers} }, 'webhook-signature' => $sig }, $req->{body}) }
	} @sigs;
	is( join(',', sort map { ($one{$_}{old} ? 'old' : '') . ($one{$_}{new} ? 'new' : '') } @sigs),
		'new,old',
		'ed25519 rotation: one signature verifies with the old key only, one with the new key only')
	  or diag explain \%one;
}

# --- none --------------------------------------------------------------------
{
	my ($id, $secret) = endpoint('none.test', '/none', signing => "'none'");
	ok(!defined $secret || $secret eq '', 'none: no secret is generated');
	my $req = deliver('none.test');
	ok(!defined $req->{headers}{'webhook-signature'}, 'none: no webhook-signature header');
	ok(!defined $req->{headers}{'x-webhook-signature'}, 'none: no hex signature header');
	ok(defined $req->{headers}{'webhook-id'} && defined $req->{headers}{'webhook-timestamp'},
		'none: webhook-id and webhook-timestamp are still sent');
}

# --- rotation ----------------------------------------------------------------
{
	my ($id, $old) = endpoint('rot.test', '/rot');
	my $new = $node->safe_psql('postgres', "SELECT webhook.rotate_secret($id, '1 hour')");
	like($new, qr/^whsec_/, 'rotation: rotate_secret returns the new secret');
	isnt($new, $old, 'rotation: the new secret differs from the old one');

	my $req = deliver('rot.test', '{"rotation": "grace"}');
	my @sigs = split / /, ($req->{headers}{'webhook-signature'} // '');
	is(scalar @sigs, 2, 'rotation, grace period: two space-separated signatures')
	  or diag explain $req->{headers};
	my @with_old = grep {
		verify_standard_signature($old, { %{ $req->{headers} }, 'webhook-signature' => $_ },
			$req->{body})
	} @sigs;
	my @with_new = grep {
		verify_standard_signature($new, { %{ $req->{headers} }, 'webhook-signature' => $_ },
			$req->{body})
	} @sigs;
	is(scalar @with_old, 1, 'rotation, grace period: one signature verifies with the old secret');
	is(scalar @with_new, 1, 'rotation, grace period: one signature verifies with the new secret');
	isnt($with_old[0] // 'a', $with_new[0] // 'a', 'rotation, grace period: and they are different ones');

	my $newer = $node->safe_psql('postgres', "SELECT webhook.rotate_secret($id, '0 seconds')");
	$req = deliver('rot.test', '{"rotation": "none"}');
	@sigs = split / /, ($req->{headers}{'webhook-signature'} // '');
	is(scalar @sigs, 1, 'rotation without grace: a single signature');
	ok(verify_standard_signature($newer, $req->{headers}, $req->{body}),
		'rotation without grace: it verifies with the newest secret');
	ok(!verify_standard_signature($new, $req->{headers}, $req->{body}),
		'rotation without grace: not with the secret it replaced');
	is($node->safe_psql('postgres', "SELECT webhook.endpoint_secret($id)"), $newer,
		'rotation: endpoint_secret() returns the newest secret');
}

# --- HTTP Basic authentication, and nothing secret in the log ----------------
{
	my $user = 'hook-user';
	my $pw = 'pw-Zq8!tR5-never-logged';
	my $hdr = 'hdr-secret-value-77';
	my ($id, $secret) = endpoint('auth.test', '/auth',
		auth_username => "'$user'", auth_password => "'$pw'",
		headers => qq{'{"X-Api-Key": "$hdr"}'});
	my $req = deliver('auth.test');
	is($req->{headers}{authorization},
		'Basic ' . encode_base64("$user:$pw", ''),
		'basic auth: Authorization: Basic base64(user:password) arrives');
	is($req->{headers}{'x-api-key'}, $hdr, 'basic auth: extra header arrives too');
	ok(verify_standard_signature($secret, $req->{headers}, $req->{body}),
		'basic auth: the request is still signed');

	# A failing attempt too, whose log row carries an error text.
	$node->safe_psql('postgres',
		"UPDATE webhook.endpoints SET url = '" . $r->url('/status/401/auth') . "',"
		  . " retry_schedule_s = '{}' WHERE id = $id");
	my $ev = $node->safe_psql('postgres', "SELECT webhook.send('auth.test', '{}')");
	ok( poll_until(
			$node, 'postgres',
			"SELECT status FROM webhook.deliveries WHERE event_id = '$ev'",
			'failed', 30),
		'basic auth: a 401 attempt fails and is logged');

	my $log = $node->safe_psql('postgres',
		'SELECT string_agg(l::text, E\'\n\') FROM webhook.delivery_log l');
	my $deliveries = $node->safe_psql('postgres',
		'SELECT string_agg(d::text, E\'\n\') FROM webhook.deliveries d');
	my @secrets = split /\n/, $node->safe_psql('postgres',
		"SELECT webhook.endpoint_secret(id) FROM webhook.endpoints WHERE secret IS NOT NULL
		 UNION ALL SELECT webhook._unseal(previous_secret) FROM webhook.endpoints WHERE previous_secret IS NOT NULL");
	ok(length($log) > 0, 'basic auth: the log has rows to look at');
	unlike($log, qr/\Q$pw\E/, 'delivery_log holds no auth password');
	my $b64 = encode_base64("$user:$pw", '');
	unlike($log, qr/\Q$b64\E/, 'delivery_log holds no Authorization value');
	unlike($log, qr/\Q$hdr\E/, 'delivery_log holds no extra header value');
	unlike($deliveries, qr/\Q$pw\E|\Q$b64\E/, 'deliveries holds no auth password');
	my @leaked = grep { my $s = $_; index($log, $s) >= 0 || index($deliveries, $s) >= 0 } @secrets;
	ok(@secrets >= 5, 'there are endpoint secrets to look for');
	is(scalar @leaked, 0, 'no endpoint secret appears in delivery_log or deliveries')
	  or diag explain \@leaked;
	my @sig_values = grep { defined } map { $_->{headers}{'webhook-signature'} } @{ requests($r) };
	is(scalar(grep { index($log, (split /[ ,]/, $_)[1] // "\0") >= 0 } @sig_values), 0,
		'no signature sent appears in delivery_log');
}

# --- secrets at rest under a master key --------------------------------------
{
	my $keyfile = $node->data_dir . '/webhook.key';
	open my $fh, '>', $keyfile or die "cannot write $keyfile: $!";
	print $fh join('', map { sprintf '%02x', int(rand(256)) } 1 .. 32), "\n";
	close $fh;
	chmod 0600, $keyfile or die "chmod $keyfile: $!";

	# Relative to the data directory, as the README shows it.
	$node->safe_psql('postgres',
		"ALTER SYSTEM SET webhook.master_key_file = 'webhook.key'; SELECT pg_reload_conf()");
	ok(poll_until($node, 'postgres', 'SHOW webhook.master_key_file', 'webhook.key', 30),
		'master key: the setting is reloaded');

	my $plain_secret = 'whsec_' . encode_base64(join('', map { chr(int(rand(256))) } 1 .. 32), '');
	my $pw = 'sealed-pw-Kd93-xyz';
	my $hdr = 'sealed-header-value-31415';
	my ($id) = endpoint('sealed.test', '/sealed',
		secret => "'$plain_secret'", auth_username => "'sealer'",
		auth_password => "'$pw'", headers => qq{'{"X-Api-Key": "$hdr"}'});
	my $stored = $node->safe_psql('postgres', "SELECT secret FROM webhook.endpoints WHERE id = $id");
	like($stored, qr/^whenc:v1:/, 'master key: the stored secret is whenc:v1:...');
	is( $node->safe_psql('postgres',
			"SELECT auth_password LIKE 'whenc:v1:%' AND headers->>'X-Api-Key' LIKE 'whenc:v1:%'
			   FROM webhook.endpoints WHERE id = $id"),
		't',
		'master key: the auth password and header values are stored sealed');
	is($node->safe_psql('postgres', "SELECT webhook.endpoint_secret($id)"), $plain_secret,
		'master key: endpoint_secret() returns the plain secret');

	my $req = deliver('sealed.test');
	ok(verify_standard_signature($plain_secret, $req->{headers}, $req->{body}),
		'master key: the delivery verifies with the plain secret')
	  or diag explain $req->{headers};
	is($req->{headers}{authorization}, 'Basic ' . encode_base64("sealer:$pw", ''),
		'master key: the plain auth password is sent');
	is($req->{headers}{'x-api-key'}, $hdr, 'master key: the plain header value is sent');

	my ($dump, $err) = run_command([ 'pg_dump', '-d', $node->connstr('postgres') ]);
	like($dump, qr/whenc:v1:/, 'pg_dump: the endpoints are dumped, sealed');
	unlike($dump, qr/\Q$plain_secret\E/, 'pg_dump: no plain secret');
	(my $b64_part = $plain_secret) =~ s/^whsec_//;
	unlike($dump, qr/\Q$b64_part\E/, 'pg_dump: not even the base64 part of the secret');
	unlike($dump, qr/\Q$pw\E/, 'pg_dump: no plain auth password');
	unlike($dump, qr/\Q$hdr\E/, 'pg_dump: no plain header value');
}

$r->stop;
$node->stop;
done_testing();
