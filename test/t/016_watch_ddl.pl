# DDL and role actions around watched tables, against a live worker and
# receiver: renames (column, table, schema), column type changes, dropped
# columns, tables, schemas and roles, conditions that try to escape the
# parser or leave settings behind, and direct writes to the watch table.
# After each action the postmaster has not restarted, a canary event still
# arrives, and the watched table's next change is delivered (or the watch is
# gone, with a NOTICE, when CASCADE removed what it relied on).
use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin";
use WebhookTest;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time sleep);

my $r = start_receiver();
my $node = node_with_webhook('watch_ddl');
my $started = postmaster_started($node);

sub psql { return $node->safe_psql('postgres', $_[0], @_[ 1 .. $#_ ]); }

# Run $sql, expecting an error; returns its stderr.
sub psql_fails
{
	my ($sql, %opts) = @_;
	my ($ret, $out, $err) = $node->psql('postgres', $sql, %opts);
	isnt($ret, 0, "refused: $sql");
	return $err;
}

# Run $sql, expecting success; returns its stderr (NOTICEs).
sub psql_notices
{
	my ($sql) = @_;
	my ($ret, $out, $err) = $node->psql('postgres', $sql, on_error_stop => 1);
	is($ret, 0, "succeeded: $sql") or diag($err);
	return $err;
}

psql(q{
	CREATE EXTENSION webhook;
	CREATE SCHEMA app;
	CREATE TABLE app.t (id integer PRIMARY KEY, plan text, note text);
	INSERT INTO webhook.endpoints (name, url, event_types)
	VALUES ('watched', '} . $r->url('/watched') . q{', '{w.*}');
});

# The server survived and delivery works, whatever $label did.
sub intact
{
	my ($label) = @_;
	assert_server_intact($node, $started, $label);
	canary_arrives($node, 'postgres', $r, $label);
}

# A request to /watched whose body contains $needle arrives.
sub delivered
{
	my ($needle, $label) = @_;
	my $deadline = time + 60;
	while (time < $deadline)
	{
		return pass("$label: delivered")
		  if grep { $_->{path} eq '/watched' && ($_->{body} // '') =~ /\Q$needle\E/ }
		  @{ requests($r) };
		sleep 0.1;
	}
	return fail("$label: delivered");
}

sub watch_count
{
	return psql('SELECT count(*) FROM webhook.table_watches');
}

# --- #1: a column the condition uses is renamed ---------------------------------
psql(q{SELECT webhook.watch('app.t', event_prefix => 'w.t', columns => '{plan}',
                            condition => 'NEW.plan IS DISTINCT FROM ''skip''')});
psql(q{INSERT INTO app.t VALUES (1, 'pro', 'a')});
delivered('"plan": "pro"', 'before any DDL');
psql('ALTER TABLE app.t RENAME COLUMN plan TO tier');
# Two INSERTs in one session: the second one used to find a half-made plan.
$node->psql('postgres', q{
	INSERT INTO app.t VALUES (2, 'gold', 'b');
	INSERT INTO app.t VALUES (3, 'skip', 'c');
	INSERT INTO app.t VALUES (4, 'silver', 'd');
}, on_error_stop => 0);
intact('column rename');
delivered('"tier": "gold"', 'column rename');
delivered('"tier": "silver"', 'column rename, second statement');
is(psql(q{SELECT columns::text || ' ' || condition FROM webhook.watches}),
	q{{tier} (new.tier IS DISTINCT FROM 'skip'::text)},
	'the watch shows the new column name');

# --- column type changes ---------------------------------------------------------
psql('ALTER TABLE app.t ALTER COLUMN note TYPE varchar(40)');
psql(q{INSERT INTO app.t VALUES (5, 'type-unrelated', 'e')});
intact('type change of an unrelated column');
delivered('type-unrelated', 'type change of an unrelated column');
like(psql_fails('ALTER TABLE app.t ALTER COLUMN tier TYPE varchar(40)'),
	qr/cannot alter type of a column used in a trigger definition/,
	'type change of a column the watch uses is refused, as for a trigger WHEN clause');
psql(q{INSERT INTO app.t VALUES (6, 'type-refused', 'f')});
intact('refused type change');
delivered('type-refused', 'refused type change');

# --- #17: an unrelated column is dropped --------------------------------------------
psql('ALTER TABLE app.t DROP COLUMN note');
is(watch_count(), 1, 'dropping an unrelated column keeps the watch');
psql(q{INSERT INTO app.t VALUES (7, 'after-drop')});
intact('unrelated column drop');
delivered('after-drop', 'unrelated column drop');

# --- table and schema renames ----------------------------------------------------------
psql('ALTER TABLE app.t RENAME TO t2');
psql(q{INSERT INTO app.t2 VALUES (8, 'table-renamed')});
intact('table rename');
delivered('"table": "t2"', 'table rename');
psql('ALTER SCHEMA app RENAME TO app2');
psql(q{UPDATE app2.t2 SET tier = 'schema-renamed' WHERE id = 8});
intact('schema rename');
delivered('"schema": "app2"', 'schema rename');

# --- a column the watch uses is dropped ------------------------------------------------
like(psql_fails('ALTER TABLE app2.t2 DROP COLUMN tier'),
	qr/cannot drop column tier of table app2\.t2 because other objects depend on it/,
	'dropping a column the condition uses is refused without CASCADE');
is(watch_count(), 1, 'the refused drop kept the watch');
like(psql_notices('ALTER TABLE app2.t2 DROP COLUMN tier CASCADE'),
	qr/NOTICE:.*watch of table app2\.t2 removed/,
	'with CASCADE the watch is removed, with a NOTICE');
is(watch_count(), 0, 'no watch left');
is(psql(q{SELECT count(*) FROM pg_trigger WHERE tgrelid = 'app2.t2'::regclass AND NOT tgisinternal}),
	0, 'nor its triggers');
intact('column drop CASCADE');

# A column named in exclude_columns is protected the same way.
psql(q{ALTER TABLE app2.t2 ADD COLUMN secret text, ADD COLUMN label text;
       SELECT webhook.watch('app2.t2', event_prefix => 'w.t', exclude_columns => '{secret}')});
like(psql_fails('ALTER TABLE app2.t2 DROP COLUMN secret'),
	qr/depends on column secret/, 'an excluded column cannot be dropped without CASCADE');
psql('ALTER TABLE app2.t2 RENAME COLUMN secret TO hidden');
psql(q{INSERT INTO app2.t2 (id, hidden, label) VALUES (9, 'topsecret', 'excluded-renamed')});
delivered('excluded-renamed', 'excluded column renamed');
my $bodies = join "\n", map { $_->{body} // '' } @{ requests($r) };
unlike($bodies, qr/topsecret|"hidden"/, 'the renamed excluded column is still excluded');
intact('excluded column rename');

# --- DROP TABLE ----------------------------------------------------------------------------
# A table the condition reads is protected; the watched table itself takes
# its watch with it, as it takes its triggers.
psql(q{CREATE TABLE app2.plans (name text);
       INSERT INTO app2.plans VALUES ('listed');
       SELECT webhook.watch('app2.t2', event_prefix => 'w.t',
                            condition => 'NEW.id IN (SELECT 9 FROM app2.plans) OR NEW.id > 9')});
like(psql_fails('DROP TABLE app2.plans'), qr/because other objects depend on it/,
	'a table the condition reads cannot be dropped without CASCADE');
psql(q{INSERT INTO app2.t2 VALUES (10, 'subquery-kept')});
delivered('subquery-kept', 'refused DROP TABLE');
like(psql_notices('DROP TABLE app2.plans CASCADE'), qr/watch of table app2\.t2 removed/,
	'DROP TABLE ... CASCADE of a table the condition reads removes the watch');
is(watch_count(), 0, 'no watch left');
intact('DROP TABLE CASCADE');

psql(q{SELECT webhook.watch('app2.t2', event_prefix => 'w.t')});
like(psql_notices('DROP TABLE app2.t2'), qr/watch of table app2\.t2 removed/,
	'DROP TABLE of the watched table removes its watch, with a NOTICE');
is(watch_count(), 0, 'no watch left');
intact('DROP TABLE');

# --- DROP SCHEMA CASCADE ------------------------------------------------------------------
psql(q{CREATE TABLE app2.s (id integer);
       SELECT webhook.watch('app2.s', event_prefix => 'w.s')});
like(psql_notices('DROP SCHEMA app2 CASCADE'), qr/watch of table app2\.s removed/,
	'DROP SCHEMA CASCADE removes the watch');
is(watch_count(), 0, 'no watch left');
intact('DROP SCHEMA CASCADE');

# --- roles: REASSIGN OWNED, DROP OWNED ---------------------------------------------------
psql(q{
	CREATE ROLE tab_owner LOGIN;
	CREATE ROLE tab_heir LOGIN;
	CREATE SCHEMA owned AUTHORIZATION tab_owner;
	GRANT USAGE ON SCHEMA webhook TO tab_owner, tab_heir;
});
psql(q{CREATE TABLE owned.o (id integer, v text);
       SELECT webhook.watch('owned.o', event_prefix => 'w.o', condition => 'NEW.v <> ''no''')},
	extra_params => [ '-U', 'tab_owner' ]);
psql('REASSIGN OWNED BY tab_owner TO tab_heir; DROP OWNED BY tab_owner; DROP ROLE tab_owner');
psql(q{INSERT INTO owned.o VALUES (1, 'reassigned')});
intact('REASSIGN OWNED');
delivered('reassigned', 'REASSIGN OWNED');
like(psql_notices('DROP OWNED BY tab_heir'), qr/watch of table owned\.o removed/,
	'DROP OWNED removes the watch with the table');
psql('DROP OWNED BY tab_heir; DROP ROLE tab_heir');
is(watch_count(), 0, 'no watch left');
intact('DROP OWNED');

# --- #23: conditions are one expression, and the watch table is not writable -----------
psql(q{
	CREATE ROLE app_owner LOGIN;
	CREATE SCHEMA inj AUTHORIZATION app_owner;
	GRANT USAGE ON SCHEMA webhook TO app_owner;
});
psql(q{CREATE TABLE inj.t (id integer, v text)}, extra_params => [ '-U', 'app_owner' ]);
for my $cond (
	q{E'\\'' = '''') OR (true); CREATE TABLE inj.pwned(); SELECT ((true'},
	q{E'\\'' = '') OR true; CREATE TABLE inj.pwned(); --'},
	qq{E'\\'' IS NOT NULL); CREATE TABLE inj.pwned(); SELECT (true --'\n},
	q{true) OR (true; CREATE TABLE inj.pwned()},
	q{true; CREATE TABLE inj.pwned()},
	q{NEW.id = 1, true},
	q{true FROM inj.t},
	q{true AS x})
{
	my $lit = $cond =~ s/'/''/gr;
	psql_fails("SELECT webhook.watch('inj.t', event_prefix => 'w.inj', condition => '$lit')",
		extra_params => [ '-U', 'app_owner' ]);
}
is(psql(q{SELECT count(*) FROM pg_class WHERE relname = 'pwned'}), 0,
	'no injected statement ran');
psql(q{SELECT webhook.watch('inj.t', event_prefix => 'w.inj', condition => E'NEW.v <> \';\'')},
	extra_params => [ '-U', 'app_owner' ]);
for my $dml (
	q{UPDATE webhook.table_watches SET event_prefix = 'hijack'},
	q{UPDATE webhook.table_watches SET condition = NULL},
	q{DELETE FROM webhook.table_watches},
	q{INSERT INTO webhook.table_watches (table_oid, event_prefix, operations) VALUES ('inj.t', 'x', '{insert}')})
{
	like(psql_fails($dml, extra_params => [ '-U', 'app_owner' ]),
		qr/permission denied/, "the table owner cannot write the watch table directly");
}
is(psql(q{SELECT event_prefix || ' ' || condition FROM webhook.watches}),
	q{w.inj (new.v <> ';'::text)}, 'the watch is unchanged');
psql(q{INSERT INTO inj.t VALUES (1, 'injection-refused'), (2, ';')});
is(psql(q{SELECT count(*) FROM pg_class WHERE relname = 'pwned'}), 0,
	'firing the trigger ran no injected statement either');
intact('injection attempts');
delivered('injection-refused', 'injection attempts');

# --- #22: nothing a condition sets outlives it ------------------------------------------
psql(q{SELECT webhook.watch('inj.t', event_prefix => 'w.inj',
       condition => 'set_config(''search_path'', ''inj'', false) IS NOT NULL AND set_config(''work_mem'', ''7777kB'', false) IS NOT NULL')},
	extra_params => [ '-U', 'app_owner' ]);
is( psql(q{SET search_path = public; INSERT INTO inj.t VALUES (3, 'guc'); SELECT current_setting('search_path') || ' ' || current_setting('work_mem')}),
	'public 4MB', "a condition's set_config does not outlive the trigger in the writer's session");
intact('set_config in a condition');
delivered('"guc"', 'set_config in a condition');

# --- a column named like the old internal pairing column -----------------------------
psql(q{
	CREATE TABLE inj.odd (__webhook_row integer, i integer, n integer, r text, t text, new text, old text);
	SELECT webhook.watch('inj.odd', event_prefix => 'w.odd');
	INSERT INTO inj.odd VALUES (1, 1, 1, 'r', 't', 'new', 'old');
	UPDATE inj.odd SET t = 'odd-updated';
});
intact('colliding column names');
delivered('odd-updated', 'colliding column names');

done_testing();
