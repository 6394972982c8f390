# webhook: PGXS build.  Tests: see README.md ("make installcheck" and "make prove").
EXTENSION = webhook
MODULE_big = webhook
OBJS = src/webhook.o src/shared.o src/launcher.o src/worker.o src/queue.o src/http.o \
       src/signing.o src/signature.o src/url_policy.o src/url_rules.o src/header_rules.o \
       src/event_checks.o src/waitset.o src/ids.o src/netguard.o src/wake.o \
       src/watch.o src/watch_condition.o src/watch_trigger.o src/watch_ddl.o src/sealing.o src/endpoint_secrets.o src/transform.o
DATA = $(wildcard sql/webhook--*.sql)
PGFILEDESC = "webhook - transactional outgoing webhooks"

SHLIB_LINK = -lcurl -lcrypto
PG_CPPFLAGS = -I$(srcdir)/src

# pg_regress: inputs in test/sql, expected output in expected/, own server
# with the library preloaded (initdb refuses root: run as an ordinary user).
REGRESS = $(patsubst test/sql/%.sql,%,$(sort $(wildcard test/sql/*.sql)))
REGRESS_OPTS = --inputdir=test --temp-instance=./tmp_check --temp-config=test/regress.conf --load-extension=webhook

# TAP tests in test/t, run by "make prove" after "make install".
PROVE_TESTS = $(sort $(wildcard test/t/*.pl))
PROVE_FLAGS = -I $(srcdir)/test/t --timer

EXTRA_CLEAN = tmp_check/ tmp_check_iso results regression.diffs regression.out log test/unit/netguard_test

PG_CONFIG ?= pg_config
PGXS := $(shell $(PG_CONFIG) --pgxs)
include $(PGXS)

.PHONY: prove unit fuzz sqlsmith valgrind demo bench
# PGXS's TAP runner over test/t/*.pl; fails loudly when a test fails.
prove:
	$(prove_installcheck)

# C unit tests of the network guard, with gcc and with clang's ASan/UBSan.
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

# PGXS does not track headers: rebuild every object when one changes.
$(OBJS): $(wildcard src/*.h)
