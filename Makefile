# webhook: PGXS build.  Tests: see README.md ("make installcheck" and "make prove").
EXTENSION = webhook
# The version lives here and only here: webhook.control (default_version), the
# install script's name and the C code (WEBHOOK_EXTVERSION) take it from this.
EXTVERSION = 0.9.0
MODULE_big = webhook
OBJS = src/module.o src/shmem.o src/launcher.o src/worker.o src/queue.o src/http.o \
       src/signing.o src/signature.o src/url_policy.o src/url_rules.o src/header_rules.o \
       src/event_checks.o src/http_io.o src/ids.o src/netguard.o src/wake.o \
       src/watch.o src/watch_condition.o src/watch_def.o src/watch_options.o src/watch_trigger.o src/watch_payload.o src/watch_lookup.o src/watch_ddl.o src/sealing.o src/master_key.o src/endpoint_secrets.o src/endpoint_tls.o src/transform.o \
       src/compat.o src/proxy.o src/proxy_rules.o src/oauth.o src/endpoint_oauth.o \
       src/schedule.o src/error_classes.o src/endpoint_load.o src/spi_util.o src/version_gate.o \
       src/request_format.o src/enqueue.o src/endpoint_filter.o src/citus.o src/cluster_sync.o \
       src/unseal_cache.o src/reader.o
# The install script of this version is built from the topic files in sql/src
# (in name order).  sql/webhook--0.1.0.sql is the script released as 0.1.0
# (git 2b8c360), FROZEN: never edit it, change sql/src and write an upgrade
# script instead.  Every upgrade script sql/webhook--A--B.sql is a tracked file
# and installed by the wildcard.  On a release, freeze the built script the
# same way (copy it to a tracked file, add it to DATA, drop it from .gitignore)
# before raising EXTVERSION.
SQL_SRC = $(sort $(wildcard sql/src/*.sql))
DATA_built = sql/$(EXTENSION)--$(EXTVERSION).sql
DATA = sql/$(EXTENSION)--0.1.0.sql sql/$(EXTENSION)--0.2.0.sql sql/$(EXTENSION)--0.3.0.sql sql/$(EXTENSION)--0.4.0.sql sql/$(EXTENSION)--0.5.0.sql sql/$(EXTENSION)--0.6.0.sql sql/$(EXTENSION)--0.7.0.sql sql/$(EXTENSION)--0.8.0.sql $(wildcard sql/$(EXTENSION)--*--*.sql)
PGFILEDESC = "webhook - transactional outgoing webhooks"

SHLIB_LINK = -lcurl -lcrypto -pthread
PG_CPPFLAGS = -I$(srcdir)/src
PG_CPPFLAGS += -DWEBHOOK_EXTVERSION='"$(EXTVERSION)"'

# pg_regress: inputs in test/sql, expected output in test/expected, own server
# with the library preloaded (initdb refuses root: run as an ordinary user).
# PostgreSQL 15's pg_regress looks for expected/ under --outputdir (there is no
# --expecteddir before 16), so the output goes to test/ too: test/results,
# test/regression.diffs and test/regression.out.
REGRESS = $(patsubst test/sql/%.sql,%,$(sort $(wildcard test/sql/*.sql)))
REGRESS_OPTS = --inputdir=test --outputdir=test --temp-instance=./tmp_check --temp-config=test/regress.conf --load-extension=webhook

# TAP tests in test/t, run by "make prove" after "make install";
# PROVE_JOBS=2 runs two files at a time (each starts servers of its own).
PROVE_TESTS = $(sort $(wildcard test/t/*.pl))
PROVE_FLAGS = -I $(srcdir)/test/t --timer $(if $(PROVE_JOBS),-j$(PROVE_JOBS))

EXTRA_CLEAN = $(EXTENSION).control tmp_check/ tmp_check_iso test/results test/regression.diffs test/regression.out test/log test/unit/netguard_test test/unit/schedule_test

PG_CONFIG ?= pg_config
PGXS := $(shell $(PG_CONFIG) --pgxs)
include $(PGXS)

# The files compiled with WEBHOOK_EXTVERSION follow a change of it.
src/version_gate.o src/worker.o: Makefile

.PHONY: prove unit fuzz sqlsmith valgrind demo bench indent indent-check
# PGXS's TAP runner over test/t/*.pl; fails loudly when a test fails.
prove:
	$(prove_installcheck)

# C unit tests of the network guard and the worker's schedule, with gcc and
# with clang's ASan/UBSan.
unit:
	$(MAKE) -C test/unit check check-asan

# libFuzzer (ASan+UBSan) on URL/header validation, verify() and the guard.
FUZZ_SECONDS ?= 20
fuzz:
	$(MAKE) -C test/fuzz run FUZZ_SECONDS=$(FUZZ_SECONDS)

# sqlsmith against a database with the extension, endpoints, watches and the
# worker busy; fails on any server crash.  SQLSMITH_QUERIES per role (three
# roles), SQLSMITH_SEED fixed for repeatable runs.
SQLSMITH_QUERIES ?= 1000
SQLSMITH_SEED ?= 1
sqlsmith:
	SQLSMITH_QUERIES=$(SQLSMITH_QUERIES) SQLSMITH_SEED=$(SQLSMITH_SEED) \
		$(MAKE) prove PROVE_TESTS=test/sqlsmith/fuzz.pl

# The server under valgrind: a delivery workload, then TAP suites
# (VALGRIND_TESTS='test/t/*.pl' for all of them).
valgrind:
	bash test/valgrind

demo:
	bash demo/run

bench:
	bash bench/run.sh

# C formatted by pgindent's rules: tools/pgindent runs Debian's pg_bsd_indent
# with pgindent's options and a typedef list made from the headers.
# bench/receiver.c is left out: pg_bsd_indent mangles its compound literals.
INDENT_FILES = $(wildcard src/*.c src/*.h test/unit/*.c test/fuzz/*.c)
indent:
	PG_CONFIG='$(PG_CONFIG)' CC='$(CC)' perl tools/pgindent $(INDENT_FILES)

# Fails, showing the diff, when a file is not formatted.
indent-check:
	PG_CONFIG='$(PG_CONFIG)' CC='$(CC)' perl tools/pgindent --check $(INDENT_FILES)

# The install script: the topic files one after another, a blank line between
# them, with @EXTVERSION@ replaced.
sql/$(EXTENSION)--$(EXTVERSION).sql: $(SQL_SRC) Makefile
	{ echo '-- Generated by the Makefile from sql/src/*.sql: edit those files, not this one.'; \
	  awk 'FNR == 1 && NR > 1 { print "" } { print }' $(SQL_SRC); } \
	  | sed 's/@EXTVERSION@/$(EXTVERSION)/g' > $@.tmp
	mv $@.tmp $@

# The control file, generated from its template with the version above.
$(EXTENSION).control: $(EXTENSION).control.in Makefile
	sed 's/@EXTVERSION@/$(EXTVERSION)/g' $< > $@

# PGXS does not track headers: rebuild every object when one changes.
$(OBJS): $(wildcard src/*.h)
