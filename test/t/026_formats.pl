# Request formats (issue 15): CloudEvents 1.0 over HTTP in binary and in
# structured content mode, read by a parser written here from the spec (the
# HTTP protocol binding and the JSON event format), and the seeds' own
# request shapes (CompleteEvent, Commenda, GitHub), each checked byte for
# byte as its receiver would verify it, with an HMAC computed here in Perl,
# independently of the extension's C code.  Standard requests stay as they
# were.
use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin";
use WebhookTest;
use Digest::SHA qw(hmac_sha256 hmac_sha256_hex);
use Encode qw(decode);
use JSON::PP;
use MIME::Base64 qw(encode_base64 decode_base64);
use PostgreSQL::Test::Utils;
use Test::More;

ok(self_test_vectors(), 'signature verifiers pass the published test vectors');

my $r = start_receiver();
my $node = node_with_webhook('formats');
$node->safe_psql('postgres', 'CREATE EXTENSION webhook');

sub psql { my ($sql, $db) = @_; return $node->safe_psql($db // 'postgres', $sql); }

# Raw bytes of a string that came through the receiver's JSON log.
sub bytes_of
{
	my ($s) = @_;
	utf8::encode($s) if utf8::is_utf8($s);
	return $s;
}

# An endpoint for exactly event type $type; %cols are SQL literals.
# Returns (id, secret in clear).
sub endpoint
{
	my ($type, %cols) = @_;
	my $db = delete $cols{db};
	my @names = ('name', 'url', 'event_types', sort keys %cols);
	my @vals = ("'$type'", "'" . $r->url("/$type") . "'", "'{$type}'",
		map { $cols{$_} } sort keys %cols);
	return split /\|/, psql(
		sprintf('INSERT INTO webhook.endpoints (%s) VALUES (%s) RETURNING id, webhook._unseal(secret)',
			join(', ', @names), join(', ', @vals)), $db);
}

# Send one event and wait for its only delivery to succeed; returns the
# event id and the one request the receiver got for it.
sub deliver
{
	my ($type, $payload, $db) = @_;
	$db //= 'postgres';
	my $ev = psql("SELECT webhook.send('$type', '$payload')", $db);
	ok( poll_until(
			$node, $db,
			"SELECT string_agg(status, ',') FROM webhook.deliveries WHERE event_id = '$ev'",
			'succeeded', 60),
		"$type: delivered");
	my @got = grep { ($_->{headers}{'webhook-id'} // '') eq $ev } @{ requests($r) };
	is(scalar @got, 1, "$type: the receiver got the event once");
	return ($ev, $got[0] // { headers => {}, body => '' });
}

# ---------------------------------------------------------------------------
# A CloudEvents 1.0 receiver, from the HTTP protocol binding (3.1 binary and
# 3.2 structured content mode) and the JSON event format.  Returns a hash of
# the event's attributes and data, or dies saying which rule was broken.
# ---------------------------------------------------------------------------

# HTTP binding 3.1.3.2: a header value is first unescaped as an RFC 7230
# quoted-string (if quoted), then percent-decoded once; byte sequences that
# are not UTF-8 are rejected.
sub ce_header_value
{
	my ($v) = @_;
	$v =~ s/^[ \t]+|[ \t]+$//g;
	if ($v =~ /^"(.*)"$/s)
	{
		($v = $1) =~ s/\\(.)/$1/gs;
	}
	die "a stray % in \"$v\"\n" if $v =~ /%(?![0-9A-Fa-f]{2})/;
	(my $bytes = $v) =~ s/%([0-9A-Fa-f]{2})/chr(hex($1))/ge;
	return decode('UTF-8', $bytes, Encode::FB_CROAK);
}

# The context attributes every event has (spec: REQUIRED) and the
# constraints on their values that a receiver checks.
sub ce_check_attributes
{
	my ($ce) = @_;
	for my $a (qw(specversion id source type))
	{
		die "required attribute $a is missing\n" unless defined $ce->{$a};
		die "attribute $a is empty\n" if $ce->{$a} eq '';
	}
	die "specversion is $ce->{specversion}, not 1.0\n" unless $ce->{specversion} eq '1.0';
	die "source \"$ce->{source}\" is not a URI-reference\n"
	  unless $ce->{source} =~ m{^(?:[A-Za-z0-9._~:/?#\[\]@!\$&'()*+,;=-]|%[0-9A-Fa-f]{2})+$};
	die "time \"$ce->{time}\" is not RFC 3339\n"
	  if defined $ce->{time}
	  && $ce->{time} !~ /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?(?:Z|[+-]\d\d:\d\d)$/;
	return $ce;
}

# Is this media type JSON (application/json, or any +json suffix)?
sub is_json_media_type
{
	my ($t) = @_;
	return defined $t && $t =~ m{^\s*(?:application/json|[^/;\s]+/[^;\s]+\+json)\s*(?:;.*)?$}i;
}

sub parse_cloudevent
{
	my ($req) = @_;
	my %h = %{ $req->{headers} };
	my $content_type = $h{'content-type'};
	my $body = bytes_of($req->{body});
	my %ce;

	# Section 3: the mode is told by the Content-Type.
	if (defined $content_type && $content_type =~ m{^\s*application/cloudevents-batch}i)
	{
		die "a batch, which was not solicited\n";
	}
	if (defined $content_type && $content_type =~ m{^\s*application/cloudevents}i)
	{
		# 3.2 structured: the JSON event format (media type +json).
		die "structured event format is not JSON: $content_type\n"
		  unless $content_type =~ m{^\s*application/cloudevents\+json\s*(?:;.*)?$}i;
		my $doc = JSON::PP->new->utf8->decode($body);
		die "a structured event is a JSON object\n" unless ref $doc eq 'HASH';
		for my $k (keys %$doc)
		{
			next if $k eq 'data' || $k eq 'data_base64';
			die "attribute name \"$k\" is not lower-case alphanumeric\n" unless $k =~ /^[a-z0-9]+$/;
			die "attribute $k is not a string\n" if ref $doc->{$k};
			$ce{$k} = $doc->{$k};
		}
		die "both data and data_base64\n" if exists $doc->{data} && exists $doc->{data_base64};
		$ce{data} = $doc->{data} if exists $doc->{data};
		$ce{data} = decode_base64($doc->{data_base64}) if exists $doc->{data_base64};
		$ce{mode} = 'structured';
		return ce_check_attributes(\%ce);
	}

	# 3.1 binary: every ce-* header is an attribute, Content-Type is the
	# datacontenttype (and ce-datacontenttype MUST NOT be there), the body
	# is the data.
	die "ce-datacontenttype must not be sent in binary mode\n" if exists $h{'ce-datacontenttype'};
	for my $name (keys %h)
	{
		next unless $name =~ /^ce-(.+)$/;
		my $attr = $1;
		die "attribute name \"$attr\" is not lower-case alphanumeric\n" unless $attr =~ /^[a-z0-9]+$/;
		die "header $name is repeated\n" if $h{$name} =~ /, /;
		$ce{$attr} = ce_header_value($h{$name});
	}
	$ce{datacontenttype} = $content_type if defined $content_type;
	$ce{data} = is_json_media_type($content_type) ? JSON::PP->new->utf8->allow_nonref->decode($body) : $body;
	$ce{data_bytes} = $body;
	$ce{mode} = 'binary';
	return ce_check_attributes(\%ce);
}

# The parser itself, on the binding's own examples and on what it must refuse.
{
	my $ex = parse_cloudevent({
		headers => {
			'ce-specversion' => '1.0', 'ce-type' => 'com.example.someevent',
			'ce-time' => '2018-04-05T03:56:24Z', 'ce-id' => '1234-1234-1234',
			'ce-source' => '/mycontext/subcontext', 'ce-comexampleextension1' => '"quoted%20value"',
			'content-type' => 'application/json; charset=utf-8'
		},
		body => '{"a": 1}' });
	is_deeply([ @$ex{qw(mode specversion id source type time)}, $ex->{data}{a}, $ex->{comexampleextension1} ],
		[ 'binary', '1.0', '1234-1234-1234', '/mycontext/subcontext', 'com.example.someevent',
		  '2018-04-05T03:56:24Z', 1, 'quoted value' ],
		'parser: the binding\'s binary-mode example');
	is(ce_header_value('Euro%20%E2%82%AC%20%F0%9F%98%80'), "Euro \x{20AC} \x{1F600}",
		'parser: the binding\'s percent-encoding example');
	ok(!eval { ce_header_value('%C0%A0'); 1 }, 'parser: an overlong UTF-8 encoding is rejected');
	my $st = parse_cloudevent({
		headers => { 'content-type' => 'application/cloudevents+json; charset=utf-8' },
		body => '{"specversion":"1.0","type":"t","source":"/s","id":"1","data":{"x":[1]}}' });
	is_deeply([ @$st{qw(mode id)}, $st->{data} ], [ 'structured', '1', { x => [1] } ],
		'parser: a structured event');
	ok(!eval { parse_cloudevent({ headers => { 'ce-specversion' => '1.0', 'ce-id' => '1', 'ce-type' => 't' },
		body => '' }); 1 }, 'parser: an event without source is refused');
	ok(!eval { parse_cloudevent({ headers => { 'content-type' => 'application/json',
		'ce-specversion' => '1.0', 'ce-id' => '1', 'ce-type' => 't', 'ce-source' => '/s',
		'ce-datacontenttype' => 'application/json' }, body => '{}' }); 1 },
		'parser: ce-datacontenttype in binary mode is refused');
}

# What the database holds for an event: its payload as text (the data sent
# byte for byte), and whether an RFC 3339 time is its creation time (to the
# millisecond the format writes).
sub payload_of { my ($ev, $db) = @_; return psql("SELECT payload::text FROM webhook.events WHERE id = '$ev'", $db); }

sub is_event_time
{
	my ($ev, $time, $db) = @_;
	return psql("SELECT date_trunc('milliseconds', created_at) = '$time'::timestamptz
	               FROM webhook.events WHERE id = '$ev'", $db) eq 't';
}

# --- standard: the request of today ------------------------------------------
{
	my (undef, $secret) = endpoint('std.ev');
	my ($ev, $req) = deliver('std.ev', '{"n": 1}');
	my $body = psql("SELECT webhook._event_body(event_type, payload, created_at) FROM webhook.events WHERE id = '$ev'");
	is(bytes_of($req->{body}), $body, 'standard: the body is the event\'s body, byte for byte');
	is($req->{headers}{'content-type'}, 'application/json', 'standard: Content-Type application/json');
	is($req->{headers}{'webhook-event-type'}, 'std.ev', 'standard: webhook-event-type names the event type');
	ok(!(grep { /^ce-/ } keys %{ $req->{headers} }), 'standard: no ce-* header');
	ok(verify_standard_signature($secret, $req->{headers}, $req->{body}), 'standard: the signature verifies');
}

# --- cloudevents (binary), default source --------------------------------------
{
	my (undef, $secret) = endpoint('ce.bin', format => "'cloudevents'");
	my ($ev, $req) = deliver('ce.bin', '{"order_id": 1001, "note": "a \"quoted\" 100% note"}');
	my $ce = eval { parse_cloudevent($req) };
	ok($ce, 'binary: a spec-following receiver reads the request') or diag $@;
	$ce //= {};
	is($ce->{mode}, 'binary', 'binary: binary content mode (Content-Type is not application/cloudevents)');
	is($ce->{specversion}, '1.0', 'binary: specversion 1.0');
	is($ce->{id}, $ev, 'binary: id is the event id');
	is($ce->{source}, '/webhook/postgres', 'binary: source defaults to /webhook/<database>');
	is($ce->{type}, 'ce.bin', 'binary: type is the event type');
	ok(is_event_time($ev, $ce->{time} // 'epoch'), "binary: time ($ce->{time}) is the event's time");
	is($ce->{datacontenttype}, 'application/json', 'binary: datacontenttype is application/json');
	is($ce->{data_bytes}, payload_of($ev), 'binary: the body is the event\'s data, byte for byte');
	is_deeply($ce->{data}, { order_id => 1001, note => 'a "quoted" 100% note' }, 'binary: the data as sent');
	ok(verify_standard_signature($secret, $req->{headers}, $req->{body}),
		'binary: the standard signature verifies over the bytes sent');
	is($req->{headers}{'webhook-event-type'}, 'ce.bin', 'binary: the event type header is still sent');
}

# --- cloudevents (binary), a source that needs percent-encoding in headers ----
{
	endpoint('ce.src', format => "'cloudevents'", cloudevents_source => q{'https://shop.example/a%20b?x=1&y=(2)'},
		signing => "'none'");
	my ($ev, $req) = deliver('ce.src', '[1, "two", null]');
	is($req->{headers}{'ce-source'}, 'https://shop.example/a%2520b?x=1&y=(2)',
		'binary: % in the source is sent percent-encoded, as the binding says');
	my $ce = eval { parse_cloudevent($req) } // {};
	is($ce->{source}, 'https://shop.example/a%20b?x=1&y=(2)', 'binary: the receiver decodes the source as stored');
	is_deeply($ce->{data}, [ 1, 'two', undef ], 'binary: an array as data');
}

# --- cloudevents-structured, hmac-sha256 in base64 ----------------------------
{
	my (undef, $secret) = endpoint('ce.st', format => "'cloudevents-structured'", signing => "'hmac-sha256'",
		signature_header => "'X-Signature'", signature_encoding => "'base64'", cloudevents_source => "'/shop/orders'");
	my ($ev, $req) = deliver('ce.st', '{"order_id": 7, "lines": [{"sku": "a-1", "qty": 2}]}');
	is($req->{headers}{'content-type'}, 'application/cloudevents+json',
		'structured: Content-Type application/cloudevents+json');
	my $ce = eval { parse_cloudevent($req) };
	ok($ce, 'structured: a spec-following receiver reads the request') or diag $@;
	$ce //= {};
	is($ce->{mode}, 'structured', 'structured: structured content mode');
	is_deeply([ @$ce{qw(specversion id source type datacontenttype)} ],
		[ '1.0', $ev, '/shop/orders', 'ce.st', 'application/json' ],
		'structured: specversion, id, source, type and datacontenttype');
	ok(is_event_time($ev, $ce->{time} // 'epoch'), "structured: time ($ce->{time}) is the event's time");
	is_deeply($ce->{data}, JSON::PP->new->decode(payload_of($ev)), 'structured: data is the event\'s data');
	is($req->{headers}{'x-signature'}, encode_base64(hmac_sha256(bytes_of($req->{body}), $secret), ''),
		'structured: X-Signature is base64 HMAC-SHA256 of the bytes sent');
}

# --- CloudEvents with a transform: the transform's result is the data --------
psql(q{
	CREATE SCHEMA shapes;
	CREATE FUNCTION shapes.summary(t text, at timestamptz, p jsonb) RETURNS jsonb LANGUAGE sql
	    AS $$ SELECT jsonb_build_object('summary', t || ' #' || (p ->> 'n')) $$;
	CREATE FUNCTION shapes.plain(t text, at timestamptz, p jsonb) RETURNS text LANGUAGE sql
	    AS $$ SELECT 'order ' || (p ->> 'n') || ' shipped' $$;
});
{
	endpoint('ce.tbin', format => "'cloudevents'", transform => "'shapes.summary'");
	my ($ev, $req) = deliver('ce.tbin', '{"n": 5}');
	my $ce = eval { parse_cloudevent($req) } // {};
	is($ce->{data_bytes}, '{"summary": "ce.tbin #5"}', 'binary + transform: the body is the transform\'s result');
	is($ce->{id}, $ev, 'binary + transform: still the event\'s attributes');

	endpoint('ce.tst', format => "'cloudevents-structured'", transform => "'shapes.summary'");
	($ev, $req) = deliver('ce.tst', '{"n": 6}');
	$ce = eval { parse_cloudevent($req) } // {};
	is_deeply($ce->{data}, { summary => 'ce.tst #6' }, 'structured + transform: data is the transform\'s result');

	endpoint('ce.tbad', format => "'cloudevents-structured'", transform => "'shapes.plain'");
	my $bad = psql(q{SELECT webhook.send('ce.tbad', '{"n": 8}')});
	ok(wait_status($node, $bad, 'failed', 60), 'structured + a transform returning text that is not JSON: failed');
	like(psql("SELECT error_class || ': ' || error FROM webhook.delivery_log l
	             JOIN webhook.deliveries d ON d.id = l.delivery_id WHERE d.event_id = '$bad'"),
		qr/^transform: .*not JSON/, 'structured + text transform: logged as a transform failure');
	ok(!(grep { ($_->{headers}{'webhook-id'} // '') eq $bad } @{ requests($r) }),
		'structured + text transform: nothing was sent');

	endpoint('ce.tplain', format => "'cloudevents'", transform => "'shapes.plain'");
	($ev, $req) = deliver('ce.tplain', '{"n": 9}');
	is(bytes_of($req->{body}), 'order 9 shipped', 'binary + text transform: the text is the body');
}

# --- the default source percent-encodes the database name --------------------
psql('CREATE DATABASE "shop floor"');
psql('CREATE EXTENSION webhook', 'shop floor');
{
	endpoint('ce.db', db => 'shop floor', format => "'cloudevents'", signing => "'none'");
	my ($ev, $req) = deliver('ce.db', '{}', 'shop floor');
	is($req->{headers}{'ce-source'}, '/webhook/shop%2520floor', 'default source: the header value, encoded twice over');
	my $ce = eval { parse_cloudevent($req) } // {};
	is($ce->{source}, '/webhook/shop%20floor', 'default source: /webhook/<database name percent-encoded>');
}

# --- the seeds' own formats ---------------------------------------------------
psql(q{
	CREATE SCHEMA seeds;
	-- CompleteEvent's body: {"event": <type>, "timestamp": <ISO 8601>, "data": {...}}.
	CREATE FUNCTION seeds.completeevent(event_type text, created_at timestamptz, payload jsonb)
	RETURNS text LANGUAGE sql
	RETURN format('{"event":%s,"timestamp":%s,"data":%s}', to_json(event_type),
	              to_json(to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"')), payload);
	-- GitHub's body is the payload itself.
	CREATE FUNCTION seeds.github(event_type text, created_at timestamptz, payload jsonb)
	RETURNS jsonb LANGUAGE sql
	RETURN payload;
});

# CompleteEvent: X-CompleteEvent-Event: <type>,
# X-CompleteEvent-Signature: <hex HMAC-SHA256(secret, body)>.
{
	my $secret = 'ce_live_2f1d9a7c0e';
	endpoint('invoice.paid', signing => "'hmac-sha256'", secret => "'$secret'",
		signature_header => "'X-CompleteEvent-Signature'", signature_encoding => "'hex'",
		event_type_header => "'X-CompleteEvent-Event'", transform => "'seeds.completeevent'");
	my ($ev, $req) = deliver('invoice.paid', '{"invoice": "in_42", "amount": 1999}');
	my %h = %{ $req->{headers} };
	my $body = bytes_of($req->{body});
	is($h{'x-completeevent-signature'}, hmac_sha256_hex($body, $secret),
		'CompleteEvent: X-CompleteEvent-Signature is the bare hex HMAC-SHA256 of the body');
	is($h{'x-completeevent-event'}, 'invoice.paid', 'CompleteEvent: X-CompleteEvent-Event names the type');
	my $doc = eval { JSON::PP->new->utf8->decode($body) } // {};
	is_deeply([ sort keys %$doc ], [qw(data event timestamp)], 'CompleteEvent: body has event, timestamp and data');
	is($doc->{event}, 'invoice.paid', 'CompleteEvent: body.event is the type');
	like($doc->{timestamp} // '', qr/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/, 'CompleteEvent: body.timestamp is ISO 8601');
	ok(is_event_time($ev, $doc->{timestamp} // 'epoch'), 'CompleteEvent: body.timestamp is the event\'s time');
	is_deeply($doc->{data}, { invoice => 'in_42', amount => 1999 }, 'CompleteEvent: body.data is the payload');
	ok(!exists $h{'webhook-event-type'}, 'CompleteEvent: no webhook-event-type header');
	like($body, qr/^\{"event":"invoice\.paid","timestamp":"[^"]+","data":\{/, 'CompleteEvent: keys in its order');
}

# Commenda: HMAC-SHA256 of the body in Commenda-X-Secret.
{
	my $secret = 'commenda-shared-secret';
	endpoint('filing.submitted', signing => "'hmac-sha256'", secret => "'$secret'",
		signature_header => "'Commenda-X-Secret'", signature_encoding => "'hex'");
	my ($ev, $req) = deliver('filing.submitted', '{"filing_id": 77}');
	my $body = bytes_of($req->{body});
	is($body, psql("SELECT webhook._event_body(event_type, payload, created_at) FROM webhook.events WHERE id = '$ev'"), 'Commenda: the standard body');
	is($req->{headers}{'commenda-x-secret'}, hmac_sha256_hex($body, $secret),
		'Commenda: Commenda-X-Secret is the hex HMAC-SHA256 of the body');
}

# GitHub: X-Hub-Signature-256: sha256=<hex>, X-GitHub-Event: <type>, the
# payload as the body.
{
	my $secret = "It's a Secret to Everybody";
	endpoint('push', signing => "'hmac-sha256'", secret => q{'It''s a Secret to Everybody'},
		signature_header => "'X-Hub-Signature-256'", event_type_header => "'X-GitHub-Event'",
		transform => "'seeds.github'");
	my ($ev, $req) = deliver('push', '{"ref": "refs/heads/main", "commits": [{"id": "abc"}]}');
	my $body = bytes_of($req->{body});
	is($req->{headers}{'x-hub-signature-256'}, 'sha256=' . hmac_sha256_hex($body, $secret),
		'GitHub: X-Hub-Signature-256 is sha256=<hex HMAC-SHA256 of the body>');
	ok(verify_hex_hmac($secret, $req->{body}, $req->{headers}{'x-hub-signature-256'}),
		'GitHub: the shared GitHub-style verifier agrees');
	is($req->{headers}{'x-github-event'}, 'push', 'GitHub: X-GitHub-Event names the event');
	is($body, payload_of($ev), 'GitHub: the body is the payload, byte for byte');
	ok(!exists $req->{headers}{'webhook-event-type'}, 'GitHub: no webhook-event-type header');
}

# --- a row written past the triggers fails its delivery, is never sent -------
{
	my ($id) = endpoint('bad.header', signing => "'none'");
	psql("SET session_replication_role = replica;
	      UPDATE webhook.endpoints SET event_type_header = 'Content-Length' WHERE id = $id");
	my $ev = psql(q{SELECT webhook.send('bad.header', '{}')});
	ok(wait_status($node, $ev, 'failed', 60), 'an event type header past the triggers: failed');
	is(psql("SELECT error_class FROM webhook.delivery_log l JOIN webhook.deliveries d ON d.id = l.delivery_id
	          WHERE d.event_id = '$ev'"), 'invalid_header', 'an event type header past the triggers: invalid_header');
	ok(!(grep { ($_->{headers}{'webhook-id'} // '') eq $ev } @{ requests($r) }),
		'an event type header past the triggers: nothing was sent');
}

# Headers sent twice, in rows written past the triggers (which refuse them):
# an extra header named like the event type header, and in binary
# CloudEvents a ce-* extra header, event type header or signature header.
for my $case (
	[ 'clash.event', 'an extra header named like the event type header',
		q{event_type_header = 'X-Event', headers = '{"x-event": "forged"}'} ],
	[ 'clash.ce', 'a ce-* extra header in binary CloudEvents',
		q{format = 'cloudevents', headers = '{"CE-Id": "forged"}'} ],
	[ 'clash.cetype', 'a ce-* event type header in binary CloudEvents',
		q{format = 'cloudevents', event_type_header = 'ce-type'} ],
	[ 'clash.cesig', 'a ce-* signature header in binary CloudEvents',
		q{format = 'cloudevents', signing = 'hmac-sha256', secret = 'shh', signature_header = 'ce-signature'} ])
{
	my ($type, $what, $set) = @$case;
	my ($id) = endpoint($type, signing => "'none'");
	psql("SET session_replication_role = replica;
	      UPDATE webhook.endpoints SET $set WHERE id = $id");
	my $ev = psql("SELECT webhook.send('$type', '{}')");
	ok(wait_status($node, $ev, 'failed', 60), "$what past the triggers: failed");
	is(psql("SELECT error_class FROM webhook.delivery_log l JOIN webhook.deliveries d ON d.id = l.delivery_id
	          WHERE d.event_id = '$ev'"), 'invalid_header', "$what past the triggers: invalid_header");
	ok(!(grep { ($_->{headers}{'webhook-id'} // '') eq $ev } @{ requests($r) }),
		"$what past the triggers: nothing was sent");
}

$r->stop;
$node->stop;
done_testing();
