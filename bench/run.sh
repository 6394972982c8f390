#!/usr/bin/env bash
# The webhook benchmark, as one command: `sudo make bench` (or sudo bash bench/run.sh).
#
# Builds and installs the extension and the peer pg_net (from
# ../shared/peers/pg_net-0.20.5.tar.gz beside the repository, or $BENCH_PGNET_TAR;
# the run goes on without it when it is missing or does not build), starts a
# throwaway PostgreSQL 15 cluster (default settings, fsync on) in a temporary
# directory with both preloaded, starts bench/receiver.c on 127.0.0.1, runs the
# phases (1 throughput with send() included, 1b pg_net, 2 receiver ceiling,
# 2b a bare libcurl client's ceiling, 3 latency, 4 enqueue cost against a Hasura-style trigger and the floor,
# 5 worker memory, 6 fan-out, 7 isolation, 1d content filters, 1e ordering
# per key, 8 scheduled events, 9 Citus with one and two worker nodes), prints a markdown table and writes
# it to bench/results.md.  Everything goes through the extension's public API:
# webhook.send(), webhook.watch(), webhook.endpoints, reads of
# webhook.deliveries and webhook.delivery_log (and, for latency, the id and
# created_at of webhook.events).  BENCH_SMOKE=1 shrinks every
# phase (whole run 1-2 minutes) and writes bench/tmp/results-smoke.md; it
# fails only when something breaks, never on a missed target.
# Everything it started is stopped, and the temporary directory removed, on exit.
# BENCH_PERF=1 also records a perf profile of the delivery worker in phase 1
# (bench/tmp/perf-phase1.txt), when perf is installed.  See bench/README.md.
#
# Needs: PostgreSQL 15 server + dev packages (initdb, pg_ctl, psql, pgbench,
# pg_config), a C compiler, libcurl/openssl dev packages (to build the
# extension and pg_net), and optionally wrk (`apt-get install wrk`) for the receiver
# ceiling row.  It installs nothing itself.  Run as root (the server then runs
# as the user postgres, like demo/run) or as a user who may `make install`.
set -Eeuo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd)
export PATH="/usr/lib/postgresql/15/bin:$PATH"
export LC_ALL=C

# phase 9, Citus: its own servers and helpers
. bench/citus_phase.sh

smoke=${BENCH_SMOKE:-0}
[ "$smoke" = 1 ] || smoke=0

# ---------------------------------------------------------------- sizes
if [ "$smoke" = 1 ]; then
  N_TP=2000; N_TP_EP=10; TP_TX=50; TP_CLIENTS=2
  PGNET_WAIT=60
  WRK_S=2
  LAT_T=2; LAT_RATES="200 2000"
  ENQ_T=2; ENQ_ROUNDS=1; BULK_ROWS=300; BULK_ROUNDS=1
  MEM_TOTAL=2000; MEM_CHUNK=2000
  RET_S=2; RET_TOTAL=6000; RET_CHUNK=2000
  FAN_N=200
  ISO_F=300; ISO_S=100
  SCHED_N=200; ORD_N=1000
  results_file=bench/tmp/results-smoke.md
  STALL_S=20
else
  N_TP=100000; N_TP_EP=10; TP_TX=1000; TP_CLIENTS=2
  PGNET_WAIT=400
  WRK_S=5
  LAT_T=10; LAT_RATES="200 2000"
  ENQ_T=5; ENQ_ROUNDS=4; BULK_ROWS=100000; BULK_ROUNDS=4
  MEM_TOTAL=1000000; MEM_CHUNK=100000
  RET_S=20; RET_TOTAL=600000; RET_CHUNK=20000
  FAN_N=1000
  ISO_F=50000; ISO_S=2000
  SCHED_N=2000; ORD_N=20000
  CITUS_N=20000
  results_file=bench/results.md
  STALL_S=60
fi
# phase 1: N_TP deliveries = N_TP / N_TP_EP events sent to N_TP_EP endpoints
# subscribed to one type, in transactions of TP_TX events from TP_CLIENTS clients
TP_EVENTS=$((N_TP / N_TP_EP))
TP_NTX=$((TP_EVENTS / TP_TX / TP_CLIENTS * TP_CLIENTS))
TP_EVENTS=$((TP_NTX * TP_TX))
N_TP=$((TP_EVENTS * N_TP_EP))
PGNET_NTX=$((N_TP / TP_TX / TP_CLIENTS * TP_CLIENTS))

# ---------------------------------------------------------------- requirements
missing=()
for tool in cc make pg_config initdb pg_ctl psql pgbench; do
  command -v "$tool" >/dev/null 2>&1 || missing+=("$tool")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "bench: missing ${missing[*]}." >&2
  echo "bench: needs a C compiler and PostgreSQL 15 with its dev files, e.g." >&2
  echo "       apt-get install gcc make postgresql-15 postgresql-server-dev-15 libcurl4-openssl-dev libssl-dev" >&2
  exit 1
fi
have_wrk=1
if ! command -v wrk >/dev/null 2>&1; then
  have_wrk=0
  echo "bench: wrk not installed (apt-get install wrk): the receiver ceiling row will be skipped" >&2
fi

rows=()
notes=()
dir=""
row() { rows+=("| $1 | $2 | $3 | $4 | $5 |"); }
note() { notes+=("- $*"); echo "   note: $*"; }

# Other PostgreSQL servers on the machine (another session's tests?), for the "disturbed" notes
others_desc() {
  local o
  o=$(ps -eo args= | sed -n 's/^\(\/[^ ]*\/\)\{0,1\}postgres -D \([^ ]*\).*/\2/p' | grep -vxF "$dir/data" | sort -u | tr '\n' ' ' || true)
  [ -z "$o" ] || printf ' (other PostgreSQL servers running: %s)' "${o% }"
}

step() { printf '\n== %s  [%s]\n' "$*" "$(date +%H:%M:%S)"; }

# how busy the machine is before we start anything
read -r idle_b0 idle_a0 < <(awk '/^cpu / {b = $2 + $3 + $4 + $7 + $8 + $9; print b, b + $5 + $6}' /proc/stat)
sleep 1
read -r idle_b1 idle_a1 < <(awk '/^cpu / {b = $2 + $3 + $4 + $7 + $8 + $9; print b, b + $5 + $6}' /proc/stat)
busy_before=$(awk "BEGIN {print int(100 * ($idle_b1 - $idle_b0) / ($idle_a1 - $idle_a0 + 0.001))}")
load_before=$(cut -d' ' -f1-3 /proc/loadavg)

# ---------------------------------------------------------------- build
step "build and install the extension"
make -s
make -s install
mkdir -p bench/tmp
cc -O2 -o bench/tmp/receiver bench/receiver.c
cc -O2 -o bench/tmp/curl_client bench/curl_client.c -lcurl

run_as=()
user=$(id -un)
if [ "$(id -u)" = 0 ]; then run_as=(runuser -u postgres --); user=postgres; fi

dir=$(mktemp -d /tmp/webhook-bench.XXXXXX)
chmod 755 "$dir"
chown "$user" "$dir"
port=$((20000 + RANDOM % 20000))
receiver_pid=""
cleanup() {
  local rc=$?
  set +e
  trap - ERR
  [ -f "$dir/data/postmaster.pid" ] && "${run_as[@]}" pg_ctl -D "$dir/data" stop -m fast >/dev/null 2>&1
  citus_stop
  if [ -n "$receiver_pid" ]; then
    kill -CONT "$receiver_pid" 2>/dev/null; kill "$receiver_pid" 2>/dev/null
    for _ in $(seq 50); do kill -0 "$receiver_pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$receiver_pid" 2>/dev/null; wait "$receiver_pid" 2>/dev/null
  fi
  # keep the server log of the last run for post-mortems (bench/tmp is gitignored)
  [ -f "$dir/server.log" ] && cp "$dir/server.log" "$repo/bench/tmp/server-last.log"
  rm -rf "$dir"
  exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM
phase="setup"
trap 'echo "bench: a command failed at line $LINENO (phase: $phase); server log tail:" >&2; tail -n 5 "$dir/server.log" 2>/dev/null | cut -c1-300 >&2' ERR

# ---------------------------------------------------------------- peer: pg_net
# pg_net 0.20.5 (../shared/peers, see bench/README.md), built into the same
# server.  When it does not build, the run says so and goes on without it.
pgnet_tar=${BENCH_PGNET_TAR:-$repo/../shared/peers/pg_net-0.20.5.tar.gz}
have_pgnet=0
preload=webhook
pgnet_conf=""
step "build and install the peer pg_net"
if [ ! -f "$pgnet_tar" ]; then
  note "pg_net: $pgnet_tar not found: the pg_net phase is skipped"
elif tar -xzf "$pgnet_tar" -C "$dir" \
     && pgnet_src=$(find "$dir" -maxdepth 1 -type d -name 'pg_net-*' | head -n 1) && [ -n "$pgnet_src" ] \
     && make -C "$pgnet_src" PG_CONFIG="${PG_CONFIG:-pg_config}" > "$dir/pg_net-build.log" 2>&1 \
     && make -C "$pgnet_src" PG_CONFIG="${PG_CONFIG:-pg_config}" install >> "$dir/pg_net-build.log" 2>&1; then
  have_pgnet=1
  preload=webhook,pg_net
  pgnet_conf="pg_net.batch_size = 1000"
  echo "pg_net built from $(basename "$pgnet_tar") and installed"
else
  note "pg_net did not build from $(basename "$pgnet_tar"): the pg_net phase is skipped; build log tail: \`$(tail -n 3 "$dir/pg_net-build.log" 2>/dev/null | tr '\n' ' ' | cut -c1-300)\`"
fi

# ---------------------------------------------------------------- server
step "initdb and start PostgreSQL in $dir"
"${run_as[@]}" initdb -D "$dir/data" -A trust -U postgres >/dev/null
cat >> "$dir/data/postgresql.conf" <<EOF
# webhook benchmark: defaults (fsync, synchronous_commit, ...) except these
shared_preload_libraries = '$preload'
$pgnet_conf
webhook.allowed_networks = '127.0.0.1/32'
max_worker_processes = 16
shared_buffers = 512MB
max_connections = 50
# a throwaway cluster reachable only through its socket in the temp dir
port = $port
listen_addresses = ''
unix_socket_directories = '$dir'
EOF
"${run_as[@]}" pg_ctl -D "$dir/data" -l "$dir/server.log" -w start >/dev/null

psql_() { "${run_as[@]}" psql -X -q -At -v ON_ERROR_STOP=1 -h "$dir" -p "$port" -U postgres -d postgres "$@"; }
# q SQL...: run SQL (read from stdin when no argument), print the last output line
q() {
  if [ $# -gt 0 ]; then printf '%s\n' "$*" | psql_ -f - | tail -n 1
  else psql_ -f - | tail -n 1; fi
}
pgbench_() { "${run_as[@]}" pgbench -h "$dir" -p "$port" -U postgres "$@" postgres; }

# ---------------------------------------------------------------- receiver
step "start the receiver"
bench/tmp/receiver 0 "$dir/lat.log" >"$dir/receiver.out" 2>"$dir/receiver.err" &
receiver_pid=$!
for _ in $(seq 100); do grep -q '^listening' "$dir/receiver.out" 2>/dev/null && break; sleep 0.05; done
rport=$(sed -n 's/^listening 127\.0\.0\.1:\([0-9]*\)$/\1/p' "$dir/receiver.out")
[ -n "$rport" ] || { echo "bench: the receiver did not start" >&2; cat "$dir/receiver.err" >&2; exit 1; }
base="http://127.0.0.1:$rport"
echo "receiver on $base (pid $receiver_pid)"

# rcount: the receiver's request count so far (SIGUSR1 also flushes its latency log)
rcount() {
  local before after
  before=$(grep -c '^requests' "$dir/receiver.err" || true)
  kill -USR1 "$receiver_pid"
  for _ in $(seq 200); do
    after=$(grep -c '^requests' "$dir/receiver.err" || true)
    [ "$after" -gt "$before" ] && break
    sleep 0.01
  done
  awk '/^requests/ {n = $2} END {print n + 0}' "$dir/receiver.err"
}

# ---------------------------------------------------------------- helpers
clk_tck=$(getconf CLK_TCK)
# CPU ticks (user + system) of a process
proc_ticks() { awk '{sub(/^.*\) /, ""); print $12 + $13}' "/proc/$1/stat" 2>/dev/null || echo 0; }
# busy and total ticks of the machine
sys_ticks() { awk '/^cpu / {b = $2 + $3 + $4 + $7 + $8 + $9; print b, b + $5 + $6}' /proc/stat; }
# CPU ticks used so far by this script's process tree and by our PostgreSQL
# server's (children that have exited count through their parents' cutime/cstime)
ours_ticks() {
  local pm
  pm=$(head -n 1 "$dir/data/postmaster.pid" 2>/dev/null || echo 0)
  # (cat fails when a process exits between the glob and the read: that is fine)
  { cat /proc/[0-9]*/stat 2>/dev/null || true; } | awk -v a=$$ -v b="${pm:-0}" '
    { pid = $1; line = $0; sub(/^[0-9]+ \(.*\) /, "", line); split(line, f, " ")
      ppid[pid] = f[2]; t[pid] = f[12] + f[13] + f[14] + f[15] }
    END { s = 0
          for (p in t) { q = p; hops = 0
            while (q > 1 && hops++ < 64) { if (q == a || q == b) { s += t[p]; break }; q = ppid[q] } }
          print s }'
}
rss_kb() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status" 2>/dev/null || echo 0; }
# VmRSS, RssAnon (private), RssFile, RssShmem (shared buffers the process touched), in kB
rss_parts() { awk '/^(VmRSS|RssAnon|RssFile|RssShmem):/ {v[$1] = $2}
  END {print v["VmRSS:"] + 0, v["RssAnon:"] + 0, v["RssFile:"] + 0, v["RssShmem:"] + 0}' "/proc/$1/status" 2>/dev/null || echo 0 0 0 0; }
calc() { awk "BEGIN {print $*}"; }
fmt_int() { printf '%.0f' "$1" | sed -e ':a' -e 's/\([0-9]\)\([0-9]\{3\}\)\($\|,\)/\1,\2\3/' -e 'ta'; }
fmt1() { printf '%.1f' "$1"; }
# judge VALUE OP TARGET -> met / missed
judge() { awk -v v="$1" -v t="$3" -v op="$2" 'BEGIN {
  ok = (op == ">=") ? v >= t : (op == "<=") ? v <= t : (op == "<") ? v < t : (op == ">") ? v > t : (op == "==") ? v == t : 0
  print (ok ? "met" : "**missed**") }'; }

worker_pid=""
# find_worker: the pid of the database's delivery worker (worker 0 when there are several)
find_worker() {
  worker_pid=$(q "SELECT pid FROM pg_stat_activity WHERE backend_type = 'webhook delivery worker' AND datname = current_database()
                  ORDER BY application_name LIMIT 1")
}

# cpu_begin / cpu_end LABEL [quiet]: CPU used in between by the worker, the
# receiver, the whole machine and by processes that are not this benchmark's
# (another session's tests or benchmarks disturb the figures: flag them).
cpu_begin() {
  cpu_t0=$(date +%s.%N); cpu_w0=$(proc_ticks "$worker_pid"); cpu_r0=$(proc_ticks "$receiver_pid")
  cpu_o0=$(ours_ticks)
  read -r cpu_b0 cpu_a0 < <(sys_ticks)
}
cpu_end() {
  local t1 w1 r1 b1 a1 o1 wall other
  t1=$(date +%s.%N); w1=$(proc_ticks "$worker_pid"); r1=$(proc_ticks "$receiver_pid")
  o1=$(ours_ticks)
  read -r b1 a1 < <(sys_ticks)
  wall=$(calc "$t1 - $cpu_t0")
  cpu_worker_s=$(calc "($w1 - $cpu_w0) / $clk_tck")
  other=$(calc "int(100 * (($b1 - $cpu_b0) - ($o1 - $cpu_o0)) / ($a1 - $cpu_a0))")
  [ "$other" -lt 0 ] && other=0
  if [ "${2:-}" != quiet ]; then
    note "$1: over $(fmt1 "$wall") s the delivery worker used $(calc "int(100 * ($w1 - $cpu_w0) / $clk_tck / $wall)")% of one core, the receiver $(calc "int(100 * ($r1 - $cpu_r0) / $clk_tck / $wall)")%; the whole machine was $(calc "int(100 * ($b1 - $cpu_b0) / ($a1 - $cpu_a0))")% busy ($(nproc) cores), $other% of it by processes outside this benchmark"
  fi
  # (windows under a second are too short for 10 ms CPU ticks to say anything)
  if [ "$other" -ge 5 ] && [ "$(calc "($wall >= 1)")" = 1 ]; then
    note "**disturbed**: during $1, processes outside this benchmark used $other% of the machine$(others_desc): its figures are not reliable"
  fi
}

# wait_done CONDITION EXPECTED TIMEOUT_S [RECEIVER_TARGET]: wait until
# EXPECTED deliveries matching CONDITION are settled (succeeded or failed) in
# webhook.deliveries.  Delivery rows appear only once the worker has read the
# events, so "nothing pending" does not mean "all delivered": settled rows are
# counted against what was sent.  With RECEIVER_TARGET, it first waits, without
# querying the database (which would take CPU from the worker), until the
# receiver has counted that many requests; then it polls the database every
# 0.5 s (the settled count is not index-only).  Samples the worker's RSS peak
# meanwhile.  When nothing moves for STALL_S seconds, or after TIMEOUT_S, the
# worker is stuck: show why and abort the run (later phases would only be
# stuck too).
rss_peak=0
wait_done() {
  local cond=$1 expected=$2 timeout=$3 rc_target=${4:-} start now n last=-1 last_change r
  start=$(date +%s); last_change=$start
  if [ -n "$rc_target" ]; then
    while :; do
      n=$(rcount)
      if [ -n "$worker_pid" ]; then r=$(rss_kb "$worker_pid"); [ "${r:-0}" -gt "$rss_peak" ] && rss_peak=$r; fi
      [ "$n" -ge "$rc_target" ] && break
      now=$(date +%s)
      [ "$n" != "$last" ] && { last=$n; last_change=$now; }
      # no progress at the receiver: let the database poll below tell why
      if [ $((now - last_change)) -ge "$STALL_S" ] || [ $((now - start)) -ge "$timeout" ]; then break; fi
      sleep 0.2
    done
    last=-1
  fi
  while :; do
    n=$(q "SELECT count(*) FROM webhook.deliveries WHERE status NOT IN ('pending', 'scheduled') AND ($cond)")
    if [ -n "$worker_pid" ]; then r=$(rss_kb "$worker_pid"); [ "${r:-0}" -gt "$rss_peak" ] && rss_peak=$r; fi
    [ "$n" -ge "$expected" ] && return 0
    now=$(date +%s)
    [ "$n" != "$last" ] && { last=$n; last_change=$now; }
    if [ $((now - last_change)) -ge "$STALL_S" ] || [ $((now - start)) -ge "$timeout" ]; then
      abort_run "$n of $expected deliveries settled ($cond), none in the last $((now - last_change)) s"
    fi
    sleep 0.5
  done
}

# abort_run WHY: report a stuck worker with the server log, write what we have, exit 1
abort_run() {
  local errs
  echo "bench: $1" >&2
  q "SELECT status, claimed_at IS NOT NULL AS claimed, count(*), min(next_attempt_at), max(attempts), max(last_error) FROM webhook.deliveries WHERE status = 'pending' GROUP BY 1, 2" >&2 || true
  q "SELECT pid, backend_type, state, wait_event, left(query, 60) FROM pg_stat_activity WHERE backend_type LIKE 'webhook%'" >&2 || true
  echo "--- server log (ERROR/FATAL/PANIC/WARNING lines, last 10, cut at 300 characters)" >&2
  grep -E '(ERROR|FATAL|PANIC|WARNING):' "$dir/server.log" | tail -n 10 | cut -c1-300 >&2 || true
  row "$phase" "**aborted**: $1" "stuck" "—" "**missed**"
  errs=$(q "SELECT count(*) || ' pending with attempts ≥ 1, last error: ' || coalesce(max(last_error), 'none') FROM webhook.deliveries WHERE status = 'pending' AND attempts > 0" 2>/dev/null || true)
  [ -n "$errs" ] && note "${errs:0:300}"
  errs=$(grep -E '(ERROR|FATAL|PANIC):' "$dir/server.log" | tail -n 1 | cut -c1-300 || true)
  [ -n "$errs" ] && note "last error in the server log: \`$errs\`"
  note "the run was aborted in phase $phase; the later phases did not run (full server log: bench/tmp/server-last.log)"
  write_report
  exit 1
}

deactivate_all() { q "UPDATE webhook.endpoints SET active = false WHERE active" >/dev/null; }
# VACUUM ANALYZE every table of the extension (webhook.deliveries may be a view)
vacuum() {
  local t
  t=$(q "SELECT string_agg(format('%I.%I', n.nspname, c.relname), ', ') FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
         WHERE n.nspname = 'webhook' AND c.relkind IN ('r', 'p', 'm')")
  [ -z "$t" ] || q "VACUUM ANALYZE $t" >/dev/null
}
# settled COND: how many deliveries matching COND are succeeded or failed
settled() { q "SELECT count(*) FROM webhook.deliveries WHERE status <> 'pending' AND ($1)"; }

# write_report: the markdown table and notes, to stdout and $results_file
write_report() {
  local log_errors curl_version cpu_model mem_gb os git_rev mode
  log_errors=$(grep -cE '(ERROR|FATAL|PANIC|WARNING):' "$dir/server.log" || true)
  if [ "$log_errors" -gt 0 ]; then
    note "the server log has $log_errors ERROR/FATAL/PANIC/WARNING lines; first ones: $(grep -m 3 -E '(ERROR|FATAL|PANIC|WARNING):' "$dir/server.log" 2>/dev/null | tr '\n' ' ' | cut -c1-400)"
  else
    note "the server log has no ERROR, FATAL, PANIC or WARNING line"
  fi

  curl_version=$(curl-config --version 2>/dev/null || dpkg-query -W -f='libcurl ${Version}' libcurl4 2>/dev/null || echo unknown)
  cpu_model=$(grep -m1 '^model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')
  mem_gb=$(awk '/^MemTotal:/ {printf "%.1f", $2 / 1048576}' /proc/meminfo)
  os=$(. /etc/os-release 2>/dev/null && echo "$PRETTY_NAME" || uname -s)
  git_rev=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
  [ -z "$(git status --porcelain -- src sql Makefile 2>/dev/null)" ] || git_rev="$git_rev + uncommitted changes in src/, sql/ or Makefile"
  mode=full; [ "$smoke" = 1 ] && mode="smoke (BENCH_SMOKE=1: every phase shrunk, figures are not meaningful)"
  {
    echo "# webhook benchmark results"
    echo
    echo "| | |"
    echo "|---|---|"
    echo "| date | $(date -u '+%Y-%m-%d %H:%M UTC') |"
    echo "| machine | $(nproc) cores (nproc), $cpu_model, $mem_gb GiB RAM, $os, $(uname -r) |"
    echo "| PostgreSQL | $pg_version; defaults (fsync, synchronous_commit on) except shared_preload_libraries = '$preload'${pgnet_conf:+, $pgnet_conf}, webhook.allowed_networks = '127.0.0.1/32', max_worker_processes = 16, shared_buffers = 512MB, max_connections = 50 |"
    echo "| libcurl | ${curl_version#libcurl } |"
    echo "| extension | git $git_rev; webhook.* settings at their defaults (max_in_flight 512, 64 per endpoint, batch_size 500) |"
    echo "| receiver | bench/receiver.c (epoll, keep-alive) on 127.0.0.1, same machine |"
    echo "| run | $mode; before it started the machine was $busy_before% busy (load average $load_before) |"
    echo
    echo "| phase | measure | result | target | status |"
    echo "|---|---|---|---|---|"
    printf '%s\n' "${rows[@]}"
    echo
    echo "Notes:"
    echo
    printf '%s\n' "${notes[@]}"
  } > "$dir/results.md"
  cp "$dir/results.md" "$results_file"
  step "results (written to $results_file)"
  cat "$results_file"
}

# ---------------------------------------------------------------- setup
phase="setup"
step "CREATE EXTENSION webhook"
q <<'SQL' >/dev/null
CREATE EXTENSION webhook;
-- A ~230-byte payload: with the envelope the request body is ~300 bytes.
CREATE FUNCTION bench_payload(i bigint) RETURNS jsonb LANGUAGE sql IMMUTABLE
RETURN jsonb_build_object('order_id', i, 'customer', 'customer-' || lpad(i::text, 8, '0'),
                          'amount', 12.34, 'currency', 'EUR', 'items', 3,
                          'note', repeat('x', 128));
-- n events of one type through the public API, in the caller's transaction
CREATE FUNCTION bench_send(etype text, n int) RETURNS bigint LANGUAGE sql
RETURN (SELECT count(webhook.send(etype, bench_payload(g))) FROM generate_series(1, n) AS g);
CREATE TABLE bench_lat_raw (id text, us bigint);
CREATE TABLE bench_lat_runs (rate int, t_from timestamptz, t_to timestamptz);
SQL
for _ in $(seq 100); do find_worker; [ -n "$worker_pid" ] && break; sleep 0.1; done
[ -n "$worker_pid" ] || { echo "bench: no delivery worker appeared" >&2; tail -n 30 "$dir/server.log" >&2; exit 1; }
echo "delivery worker pid $worker_pid"
pg_version=$(q "SHOW server_version")

# throughput NAME LABEL [FILTER]: phase 1's measurement, with $N_TP_EP new
# endpoints named NAME-i (each with the content filter FILTER, when given):
# send() of $TP_EVENTS events in the timed span, until every delivery is done.  Sets tp_ids, tp_rate, tp_send_s, tp_failed, tp_err,
# rc0/rc1, and the write counters w0_*/w1_* and tp_wal.
throughput() {
  tp_ids=$(q "WITH e AS (INSERT INTO webhook.endpoints (name, url, event_types, filter)
              SELECT '$1-' || i, '$base/$1/' || i, '{bench.tp}', nullif('${3:-}', '')::jsonpath
                FROM generate_series(1, $N_TP_EP) AS i RETURNING id)
              SELECT array_agg(id ORDER BY id) FROM e")
  body_len=$(q "SELECT octet_length(webhook._event_body('bench.tp', bench_payload(1), now()))")
  echo "SELECT bench_send('bench.tp', $TP_TX);" > "$dir/tp.sql"
  vacuum
  q "CHECKPOINT" >/dev/null
  rc0=$(rcount)
  # What each delivery costs in writes: rows inserted, updated and deleted in
  # the extension's tables (pg_stat_user_tables, counted at commit) and WAL.
  writes_sql="SELECT coalesce(sum(n_tup_ins + n_tup_upd + n_tup_del), 0) || '|' || coalesce(sum(n_tup_ins), 0) || '|'
                || coalesce(sum(n_tup_upd), 0) || '|' || pg_current_wal_lsn()
                FROM pg_stat_user_tables WHERE schemaname = 'webhook'"
  IFS='|' read -r w0_rows w0_ins w0_upd wal0 < <(q "$writes_sql")
  cpu_begin
  perf_pid=""
  if [ "${BENCH_PERF:-0}" = 1 ] && command -v perf >/dev/null 2>&1; then
    perf record -F 999 -g -p "$worker_pid" -o "$repo/bench/tmp/perf-$1.data" >/dev/null 2>&1 &
    perf_pid=$!
    sleep 0.5
  fi
  # t0: before the first send(); the clients commit $TP_TX events per transaction
  t0=$(date +%s.%N)
  pgbench_ -n -c "$TP_CLIENTS" -j "$TP_CLIENTS" -t $((TP_NTX / TP_CLIENTS)) -f "$dir/tp.sql" > "$dir/pgbench-tp.txt" 2>&1 \
    || { cat "$dir/pgbench-tp.txt"; exit 1; }
  t_sent=$(date +%s.%N)
  echo "sent $(fmt_int "$TP_EVENTS") events in $(fmt1 "$(calc "$t_sent - $t0")") s"
  wait_done "endpoint_id = ANY ('$tp_ids')" "$N_TP" 600 $((rc0 + N_TP))
  cpu_end "$2"
  if [ -n "$perf_pid" ]; then
    kill -INT "$perf_pid"; wait "$perf_pid" || true
    perf report -i "$repo/bench/tmp/perf-$1.data" --no-children --sort dso,sym --percent-limit 1 --stdio -g none \
      > "$repo/bench/tmp/perf-$1.txt" 2>/dev/null || true
    echo "perf profile of the worker in $2: bench/tmp/perf-$1.txt"
  fi
  IFS='|' read -r t1 tp_failed tp_done < <(q "SELECT extract(epoch FROM max(completed_at)), count(*) FILTER (WHERE status = 'failed'),
      count(*) FILTER (WHERE status = 'succeeded') FROM webhook.deliveries WHERE endpoint_id = ANY ('$tp_ids')")
  tp_err=$(q "SELECT count(*) FROM webhook.delivery_log WHERE endpoint_id = ANY ('$tp_ids') AND error_class IS NOT NULL")
  rc1=$(rcount)
  # The worker flushes its table counters at most once a second, after a
  # transaction: give it one more (an event nobody subscribes to) a second on.
  sleep 1.2; q "SELECT webhook.send('bench.flush', '{}')" >/dev/null; sleep 0.5
  IFS='|' read -r w1_rows w1_ins w1_upd wal1 < <(q "$writes_sql")
  tp_wal=$(q "SELECT pg_wal_lsn_diff('$wal1', '$wal0')")
  tp_rate=$(calc "$tp_done / ($t1 - $t0)")
  tp_send_s=$(calc "$t_sent - $t0")
  tp_worker_us=$(calc "1e6 * $cpu_worker_s / $N_TP")
  echo "delivered $tp_done in $(fmt1 "$(calc "$t1 - $t0")") s: $(fmt_int "$tp_rate")/s; failed deliveries $tp_failed, failed attempts $tp_err; receiver got $((rc1 - rc0)) requests"
}

# ================================================================ 1. throughput
phase="1. Throughput"
step "1. throughput: $(fmt_int "$TP_EVENTS") events × $N_TP_EP endpoints = $(fmt_int "$N_TP") deliveries, send() included"
throughput tp "phase 1"
row "1. Throughput" "deliveries/s with send() included: $(fmt_int "$TP_EVENTS") events (~${body_len}-byte bodies, standard signing) × $N_TP_EP endpoints subscribed to one type = $(fmt_int "$N_TP") deliveries; send() in transactions of $(fmt_int "$TP_TX") events from $TP_CLIENTS pgbench clients (all committed after $(fmt1 "$tp_send_s") s); first send → last completed_at" "$(fmt_int "$tp_rate")/s" "≥ 15,000/s" "$(judge "$tp_rate" '>=' 15000)"
row "1. Throughput" "the delivery worker's CPU (user and system) per delivery" "$(fmt_int "$tp_worker_us") µs" "—" "—"
# later phases run throughput again: phase 1's own figures, for the ceilings
tp1_rate=$tp_rate; tp1_worker_us=$tp_worker_us
row "1. Throughput" "failed deliveries / failed attempts (receiver got $(fmt_int $((rc1 - rc0))) requests)" "$tp_failed / $tp_err" "0" "$(judge "$((tp_failed + tp_err))" '==' 0)"
row "1. Throughput" "writes per delivery, send() and the worker together: rows inserted + updated + deleted in webhook.* tables (of which inserted / updated), and WAL bytes" "$(printf '%.2f' "$(calc "($w1_rows - $w0_rows) / $N_TP")") rows ($(printf '%.2f' "$(calc "($w1_ins - $w0_ins) / $N_TP")") / $(printf '%.2f' "$(calc "($w1_upd - $w0_upd) / $N_TP")")), $(fmt_int "$(calc "$tp_wal / $N_TP")") B WAL" "—" "—"
deactivate_all
vacuum

# ================================================================ 1b. pg_net
phase="1b. pg_net"
if [ "$have_pgnet" = 1 ]; then
  step "1b. peer pg_net: $(fmt_int "$N_TP") requests via net.http_post (batch_size 1000)"
  q "CREATE EXTENSION pg_net" >/dev/null
  pgnet_version=$(q "SELECT extversion FROM pg_extension WHERE extname = 'pg_net'")
  # warm-up: one request, so that the worker's start is not timed
  q "SELECT net.http_post('$base/pgnet/warmup', '{}'::jsonb)" >/dev/null
  for _ in $(seq 150); do [ "$(q "SELECT count(*) FROM net._http_response")" -gt 0 ] && break; sleep 0.2; done
  pgnet_warm=$(q "SELECT count(*) FROM net._http_response")
  q "TRUNCATE net._http_response" >/dev/null
  [ "$pgnet_warm" != 0 ] || note "pg_net: the warm-up request got no response in 30 s; the phase ran anyway"
  echo "SELECT count(net.http_post('$base/pgnet', webhook._event_body('bench.tp', bench_payload(g), now())::jsonb)) FROM generate_series(1, $TP_TX) AS g;" > "$dir/pgnet.sql"
  pgnet_n=$((PGNET_NTX * TP_TX))
  pgnet_len=$(q "SELECT octet_length(webhook._event_body('bench.tp', bench_payload(1), now())::jsonb::text)")
  q "CHECKPOINT" >/dev/null
  rc0=$(rcount)
  cpu_begin
  # t0: before the first request is queued
  t0=$(date +%s.%N)
  pgbench_ -n -c "$TP_CLIENTS" -j "$TP_CLIENTS" -t $((PGNET_NTX / TP_CLIENTS)) -f "$dir/pgnet.sql" > "$dir/pgbench-pgnet.txt" 2>&1 \
    || { cat "$dir/pgbench-pgnet.txt"; exit 1; }
  t_sent=$(date +%s.%N)
  echo "queued $(fmt_int "$pgnet_n") requests in $(fmt1 "$(calc "$t_sent - $t0")") s"
  # bounded wait until net._http_response holds them all (or nothing moves for STALL_S)
  start=$(date +%s); last=-1; last_change=$start
  while :; do
    got=$(q "SELECT count(*) FROM net._http_response")
    [ "$got" -ge "$pgnet_n" ] && break
    now=$(date +%s)
    [ "$got" != "$last" ] && { last=$got; last_change=$now; }
    if [ $((now - last_change)) -ge "$STALL_S" ] || [ $((now - start)) -ge "$PGNET_WAIT" ]; then
      note "pg_net: only $got of $pgnet_n responses after $((now - start)) s of waiting (none new in the last $((now - last_change)) s); the rest count as failures"
      break
    fi
    sleep 0.5
  done
  cpu_end "phase 1b (pg_net)" quiet
  IFS='|' read -r t1 pgnet_got pgnet_ok pgnet_err < <(q "SELECT extract(epoch FROM max(created)), count(*),
      count(*) FILTER (WHERE status_code = 200 AND error_msg IS NULL), max(error_msg) FROM net._http_response")
  rc1=$(rcount)
  [ -n "$t1" ] || t1=$(date +%s.%N)
  pgnet_rate=$(calc "$pgnet_ok / ($t1 - $t0)")
  pgnet_failed=$((pgnet_n - pgnet_ok))
  echo "pg_net: $pgnet_ok of $pgnet_n answered 200 in $(fmt1 "$(calc "$t1 - $t0")") s: $(fmt_int "$pgnet_rate")/s; $pgnet_failed failed or missing; receiver got $((rc1 - rc0)) requests"
  [ -z "$pgnet_err" ] || note "pg_net: an error_msg seen in net._http_response: \`${pgnet_err:0:200}\`"
  row "1b. pg_net (peer)" "pg_net $pgnet_version (0.20.5 source; batch_size 1000; unsigned, no retries): requests/s for $(fmt_int "$pgnet_n") bodies like phase 1's (~${pgnet_len} bytes as jsonb) via net.http_post to the same receiver, in transactions of $(fmt_int "$TP_TX") from $TP_CLIENTS pgbench clients (all committed after $(fmt1 "$(calc "$t_sent - $t0")") s); first request queued → last response in net._http_response" "$(fmt_int "$pgnet_rate")/s" "—" "—"
  row "1b. pg_net (peer)" "failed or missing responses: status ≠ 200, error_msg, or none within the wait (receiver got $(fmt_int $((rc1 - rc0))) requests)" "$(fmt_int "$pgnet_failed")" "—" "—"
  if [ "$(calc "($pgnet_rate > 0)")" = 1 ]; then
    pgnet_ratio=$(calc "$tp_rate / $pgnet_rate")
    row "1b. pg_net (peer)" "phase 1 deliveries/s ÷ pg_net requests/s (same bodies, receiver and run)" "$(fmt1 "$pgnet_ratio")×" "≥ 15×" "$(judge "$pgnet_ratio" '>=' 15)"
  else
    row "1b. pg_net (peer)" "phase 1 deliveries/s ÷ pg_net requests/s" "pg_net delivered nothing" "≥ 15×" "—"
  fi
  q "TRUNCATE net._http_response" >/dev/null
else
  step "1b. peer pg_net: skipped (not built)"
  row "1b. pg_net (peer)" "net.http_post of $(fmt_int "$N_TP") bodies to the same receiver" "skipped: pg_net did not build (see the notes)" "—" "—"
fi

# ================================================================ 1c. two workers
# Phase 1 again with webhook.workers = 2 (a restart), then back to one: each
# endpoint belongs to one worker, so the ten endpoints split five and five.
phase="1c. Two workers"
# restart_with_workers N: restart the server with webhook.workers = N and
# wait until the database has N delivery workers
restart_with_workers() {
  q "ALTER SYSTEM SET webhook.workers = $1" >/dev/null
  "${run_as[@]}" pg_ctl -D "$dir/data" -l "$dir/server.log" -w -m fast restart >/dev/null
  for _ in $(seq 150); do
    [ "$(q "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'webhook delivery worker' AND datname = current_database()")" = "$1" ] && break
    sleep 0.2
  done
  find_worker
}
step "1c. two workers: phase 1 again with webhook.workers = 2"
tp_rate_one=$tp_rate
restart_with_workers 2
throughput tp2 "phase 1c (two workers; CPU of worker 0 only)"
row "1c. Two workers" "phase 1 with webhook.workers = 2 (each of the 10 endpoints belongs to one worker): deliveries/s, send() included; failed deliveries / attempts" "$(fmt_int "$tp_rate")/s; $tp_failed / $tp_err" "—" "—"
row "1c. Two workers" "two workers ÷ one (phase 1), same run" "$(printf '%.2f' "$(calc "$tp_rate / $tp_rate_one")")×" "—" "—"
deactivate_all
restart_with_workers 1
vacuum

# ================================================================ 1d. content filters
# Phase 1 twice more (one worker, after phase 1c's restart): ten endpoints
# without filters, then ten with a content filter that every event passes,
# so that both run on the same queue and caches: what evaluating filters
# where the worker reads events costs.
phase="1d. Filters"
step "1d. filters: phase 1 again without filters, then each endpoint with a content filter"
tp_filter='$.amount > 10 && $.currency == "EUR" && !exists($.tags ? (@ == "test"))'
throughput tpu "phase 1d (ten endpoints without filters)"
tp_rate_plain=$tp_rate
deactivate_all
vacuum
throughput tpf "phase 1d (ten filtered endpoints)" "$tp_filter"
row "1d. Filters" "phase 1 again, 10 endpoints without filters / each with a content filter (\`$tp_filter\`, which every event passes), one after the other: deliveries/s, send() included; failed deliveries / attempts of the filtered run" "$(fmt_int "$tp_rate_plain") / $(fmt_int "$tp_rate")/s; $tp_failed / $tp_err" "—" "—"
row "1d. Filters" "filtered ÷ unfiltered, back to back" "$(printf '%.2f' "$(calc "$tp_rate / $tp_rate_plain")")×" "—" "—"
deactivate_all
vacuum

# ================================================================ 1e. ordering per key
# ORD_N events sent in one transaction to one endpoint, with 100 ordering
# keys in turn: deliveries/s when the endpoint is ordered (one request per
# key at a time, keys in parallel up to its 64 slots) and when it is not.
phase="1e. Ordering"
step "1e. ordering: $(fmt_int "$ORD_N") events with 100 keys to one ordered endpoint, and to one unordered"
# ord_rate NAME ORDERED: sets ord_r, the deliveries/s of ORD_N events to a new endpoint NAME
ord_rate() {
  local ep rc0 t0 t1 n
  ep=$(q "INSERT INTO webhook.endpoints (name, url, event_types, ordered) VALUES ('$1', '$base/$1', '{bench.$1}', $2) RETURNING id")
  rc0=$(rcount)
  cpu_begin
  t0=$(q "SELECT extract(epoch FROM clock_timestamp())")
  q "SELECT count(webhook.send('bench.$1', bench_payload(g), ordering_key => 'key-' || (g % 100))) FROM generate_series(1, $ORD_N) g" >/dev/null
  wait_done "endpoint_id = $ep" "$ORD_N" 600 $((rc0 + ORD_N))
  cpu_end "phase 1e ($1)"
  IFS='|' read -r t1 n < <(q "SELECT extract(epoch FROM max(completed_at)), count(*) FILTER (WHERE status = 'succeeded')
                                FROM webhook.deliveries WHERE endpoint_id = $ep")
  ord_r=$(calc "$n / ($t1 - $t0)")
  [ "$n" = "$ORD_N" ] || note "phase 1e ($1): $((ORD_N - n)) deliveries did not succeed"
  q "UPDATE webhook.endpoints SET active = false WHERE id = $ep" >/dev/null
  echo "$1: $n deliveries in $(fmt1 "$(calc "$t1 - $t0")") s = $(fmt_int "$ord_r")/s"
}
ord_rate unordered false; unord_r=$ord_r
ord_rate ordered true;    ordk_r=$ord_r
row "1e. Ordering" "$(fmt_int "$ORD_N") events sent in one transaction to one endpoint (64 requests in flight at most), ordering keys key-0 … key-99 in turn: deliveries/s ordered (one request per key at a time) / unordered, send() included" "$(fmt_int "$ordk_r") / $(fmt_int "$unord_r")/s" "—" "—"
row "1e. Ordering" "ordered with 100 keys ÷ unordered, same run" "$(printf '%.2f' "$(calc "$ordk_r / $unord_r")")×" "—" "—"
vacuum

# ================================================================ 2. receiver ceiling
phase="2. Receiver ceiling"
step "2. receiver ceiling (wrk)"
if [ "$have_wrk" = 1 ]; then
  body=$(q "SELECT webhook._event_body('bench.tp', bench_payload(1), now())")
  cat > "$dir/post.lua" <<EOF
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = [==[$body]==]
EOF
  cpu_begin
  wrk -t1 -c64 -d"${WRK_S}s" -s "$dir/post.lua" "$base/wrk" > "$dir/wrk.txt" 2>&1 || true
  cpu_end "phase 2 (wrk)" quiet
  wrk_rate=$(sed -n 's/^Requests\/sec: *\([0-9.]*\).*/\1/p' "$dir/wrk.txt")
  if [ -n "$wrk_rate" ]; then
    echo "wrk: $(fmt_int "$wrk_rate") req/s"
    row "2. Receiver ceiling" "wrk -t1 -c64 -d${WRK_S}s POSTing the same ${body_len}-byte body to bench/receiver" "$(fmt_int "$wrk_rate") req/s" "—" "—"
    row "2. Receiver ceiling" "phase 1 throughput as a share of that ceiling" "$(calc "int(100 * $tp1_rate / $wrk_rate + 0.5)")%" "—" "—"
  else
    cat "$dir/wrk.txt"
    row "2. Receiver ceiling" "wrk -t1 -c64 -d${WRK_S}s" "wrk failed" "—" "—"
  fi
else
  echo "wrk not installed: skipped"
  row "2. Receiver ceiling" "wrk -t1 -c64 -d${WRK_S}s" "skipped: wrk not installed" "—" "—"
fi

# ================================================================ 2b. libcurl ceiling
# The library the worker sends with, alone: phase 1's requests (same body,
# receiver, ten URLs, 512 in flight) from bench/curl_client.c, with no
# database, signing or log around it.  What the worker spends per delivery
# beyond this client's CPU per request is the queue's and the log's share.
phase="2b. libcurl ceiling"
step "2b. a bare libcurl client: $(fmt_int "$N_TP") requests, 512 in flight"
printf '%s' "$(q "SELECT webhook._event_body('bench.tp', bench_payload(1), now())")" > "$dir/body.json"
rc0=$(rcount)
cpu_begin
curl_out=$(bench/tmp/curl_client "$base" "$dir/body.json" "$N_TP" 512 || true)
cpu_end "phase 2b (libcurl client)" quiet
rc1=$(rcount)
read -r _ curl_n _ curl_failed _ curl_s _ curl_us <<< "$curl_out" || true
if [ -n "${curl_us:-}" ] && [ "$(calc "($curl_s > 0)")" = 1 ]; then
  curl_rate=$(calc "$curl_n / $curl_s")
  echo "libcurl client: $curl_out ($(fmt_int "$curl_rate")/s); receiver got $((rc1 - rc0)) requests"
  row "2b. libcurl ceiling" "bench/curl_client.c: $(fmt_int "$curl_n") POSTs of phase 1's body with headers like the worker's, 512 in flight over 10 URLs, keep-alive, on one libcurl multi handle; no database, signing or log (failed: $curl_failed)" "$(fmt_int "$curl_rate")/s" "—" "—"
  row "2b. libcurl ceiling" "its CPU per request / the delivery worker's per delivery in phase 1" "$(fmt_int "$curl_us") / $(fmt_int "$tp1_worker_us") µs" "—" "—"
  row "2b. libcurl ceiling" "phase 1 throughput as a share of this client's" "$(calc "int(100 * $tp1_rate / $curl_rate + 0.5)")%" "—" "—"
else
  echo "libcurl client failed: $curl_out"
  row "2b. libcurl ceiling" "bench/curl_client.c" "failed" "—" "—"
fi

# ================================================================ 3. latency
phase="3. Latency"
step "3. latency COMMIT → receipt"
lat_ep=$(q "INSERT INTO webhook.endpoints (name, url, event_types) VALUES ('lat', '$base/lat', '{bench.latency}') RETURNING id")
echo "SELECT webhook.send('bench.latency', '{\"k\": 1}');" > "$dir/lat.sql"
q "CHECKPOINT" >/dev/null
lat_sent=0
for rate in $LAT_RATES; do
  ta=$(q "SELECT clock_timestamp()")
  cpu_begin
  pgbench_ -n -c 4 -j 2 -T "$LAT_T" -R "$rate" -f "$dir/lat.sql" > "$dir/pgbench-lat-$rate.txt" 2>&1 \
    || { cat "$dir/pgbench-lat-$rate.txt"; exit 1; }
  cpu_end "phase 3 (pgbench -R $rate)" quiet
  tb=$(q "SELECT clock_timestamp()")
  n=$(sed -n 's/^number of transactions actually processed: \([0-9]*\).*/\1/p' "$dir/pgbench-lat-$rate.txt")
  lat_sent=$((lat_sent + ${n:-0}))
  wait_done "endpoint_id = $lat_ep" "$lat_sent" 120
  q "INSERT INTO bench_lat_runs VALUES ($rate, '$ta', '$tb')" >/dev/null
  tps=$(sed -n 's/^tps = \([0-9.]*\) .*/\1/p' "$dir/pgbench-lat-$rate.txt")
  eval "lat_tps_$rate=\${tps:-0}"
  echo "pgbench -R $rate: $tps tps"
done
rcount >/dev/null   # flushes the receiver's latency log
"${run_as[@]}" psql -X -q -v ON_ERROR_STOP=1 -h "$dir" -p "$port" -U postgres -d postgres \
  -c "\\copy bench_lat_raw (id, us) FROM '$dir/lat.log' WITH (FORMAT text, DELIMITER ' ')"
for rate in $LAT_RATES; do
  IFS='|' read -r n_ev n_rcv p50 p99 pmax < <(q "
    WITH run AS (SELECT * FROM bench_lat_runs WHERE rate = $rate),
    ev AS (SELECT e.id, e.created_at FROM webhook.events e, run
            WHERE e.event_type = 'bench.latency' AND e.created_at BETWEEN run.t_from AND run.t_to),
    rcv AS (SELECT id, min(us) AS us FROM bench_lat_raw GROUP BY id),
    lat AS (SELECT ((r.us - extract(epoch FROM ev.created_at) * 1e6) / 1000.0)::float8 AS ms
              FROM ev JOIN rcv r ON r.id = ev.id::text)
    SELECT (SELECT count(*) FROM ev), count(*),
           round(percentile_cont(0.5) WITHIN GROUP (ORDER BY ms)::numeric, 2),
           round(percentile_cont(0.99) WITHIN GROUP (ORDER BY ms)::numeric, 2),
           round(max(ms)::numeric, 1)
      FROM lat")
  tps_var="lat_tps_$rate"; tps=${!tps_var}
  echo "rate $rate/s: $n_rcv of $n_ev events received; p50 $p50 ms, p99 $p99 ms, max $pmax ms"
  if [ "$rate" = 200 ]; then
    row "3. Latency @ 200/s" "COMMIT → receipt p50 (pgbench -c4 -j2 -R200, $(fmt_int "$tps") tps, $n_rcv/$n_ev events received)" "$p50 ms" "≤ 3 ms" "$(judge "${p50:-999}" '<=' 3)"
    row "3. Latency @ 200/s" "COMMIT → receipt p99 (max $pmax ms)" "$p99 ms" "≤ 10 ms" "$(judge "${p99:-999}" '<=' 10)"
  else
    row "3. Latency @ $rate/s" "COMMIT → receipt p50 / p99 / max (pgbench -R$rate reached $(fmt_int "$tps") tps; $n_rcv/$n_ev received)" "$p50 / $p99 / $pmax ms" "—" "—"
  fi
  [ "$n_rcv" = "$n_ev" ] || note "latency @ $rate/s: only $n_rcv of $n_ev events reached the receiver"
done
deactivate_all

# ================================================================ 4. enqueue cost
phase="4. Enqueue cost"
step "4. enqueue cost: plain, webhook.watch, Hasura-style trigger, floor"
enq_ep=$(q "INSERT INTO webhook.endpoints (name, url, event_types) VALUES ('enq', '$base/enq', '{bench.watched.*}') RETURNING id")
q <<'SQL' >/dev/null
CREATE TABLE bench_plain    (id bigserial PRIMARY KEY, customer text, amount numeric, note text);
CREATE TABLE bench_watched  (id bigserial PRIMARY KEY, customer text, amount numeric, note text);
CREATE TABLE hasura_watched (id bigserial PRIMARY KEY, customer text, amount numeric, note text);
CREATE TABLE bench_floor    (id bigserial PRIMARY KEY, customer text, amount numeric, note text);
SELECT webhook.watch('bench_watched', event_prefix => 'bench.watched');
SQL
q < bench/peers/hasura_style_trigger.sql >/dev/null
q < bench/peers/floor_trigger.sql >/dev/null
enq_tables=(bench_plain bench_watched hasura_watched bench_floor)
declare -A enq_label=([bench_plain]=plain [bench_watched]=watched [hasura_watched]=Hasura-style [bench_floor]=floor)
declare -A enq_sum=() enq_runs=() bulk_sum=() bulk_runs=()
# enq_order ROUND: the four tables, rotated by ROUND, so each one takes each place in turn
enq_order() { local i n=${#enq_tables[@]}; for ((i = 0; i < n; i++)); do echo "${enq_tables[$(((i + $1) % n))]}"; done; }
# every event of the watched table delivered, so the next measurement starts with an idle worker
enq_drain() { wait_done "endpoint_id = $enq_ep" "$(q "SELECT count(*) FROM bench_watched")" 600; }
for t in "${enq_tables[@]}"; do
  cat > "$dir/enq-$t.sql" <<EOF
\\set c random(1, 100000)
INSERT INTO $t (customer, amount, note) VALUES ('customer-' || :c, :c * 0.01, 'a short note about this order');
EOF
  enq_sum[$t]=0; enq_runs[$t]=""; bulk_sum[$t]=0; bulk_runs[$t]=""
done
for ((r = 0; r < ENQ_ROUNDS; r++)); do
  for t in $(enq_order "$r"); do
    q "CHECKPOINT" >/dev/null
    cpu_begin
    pgbench_ -n -c 4 -j 2 -T "$ENQ_T" -f "$dir/enq-$t.sql" > "$dir/pgbench-enq-$t.txt" 2>&1 \
      || { cat "$dir/pgbench-enq-$t.txt"; exit 1; }
    if [ "$r" = 0 ]; then cpu_end "phase 4 (pgbench INSERT into $t, round 1)"; else cpu_end "phase 4 (pgbench INSERT into $t, round $((r + 1)))" quiet; fi
    tps=$(sed -n 's/^tps = \([0-9.]*\) .*/\1/p' "$dir/pgbench-enq-$t.txt")
    enq_sum[$t]=$(calc "${enq_sum[$t]} + $tps"); enq_runs[$t]="${enq_runs[$t]} $(fmt_int "$tps")"
    echo "round $((r + 1)): single-row INSERT into $t: $tps tps"
    if [ "$t" = bench_watched ]; then enq_drain; fi
  done
done
for ((r = 0; r < BULK_ROUNDS; r++)); do
  for t in $(enq_order "$r"); do
    q "CHECKPOINT" >/dev/null
    cpu_begin
    ms=$(printf '%s\n' '\timing on' "INSERT INTO $t (customer, amount, note) SELECT 'customer-' || g, g * 0.01, 'a short note about this order' FROM generate_series(1, $BULK_ROWS) AS g;" \
         | "${run_as[@]}" psql -X -v ON_ERROR_STOP=1 -h "$dir" -p "$port" -U postgres -d postgres -f - \
         | sed -n 's/^Time: \([0-9.]*\) ms.*/\1/p' | tail -n 1)
    cpu_end "phase 4 (bulk INSERT into $t, round $((r + 1)))" quiet
    bulk_sum[$t]=$(calc "${bulk_sum[$t]} + $ms"); bulk_runs[$t]="${bulk_runs[$t]} $(fmt_int "$ms")"
    echo "round $((r + 1)): INSERT ... SELECT $BULK_ROWS rows into $t: $ms ms"
    if [ "$t" = bench_watched ]; then enq_drain; fi
  done
done
declare -A enq_tps=() bulk_ms=()
for t in "${enq_tables[@]}"; do
  enq_tps[$t]=$(calc "${enq_sum[$t]} / $ENQ_ROUNDS")
  bulk_ms[$t]=$(calc "${bulk_sum[$t]} / $BULK_ROUNDS")
done
# pct_of_plain T / times_plain T: T's figure against the plain table's
pct_of_plain() { calc "int(100 * ${enq_tps[$1]} / ${enq_tps[bench_plain]} + 0.5)"; }
times_plain() { printf '%.2f' "$(calc "${bulk_ms[$1]} / ${bulk_ms[bench_plain]}")"; }
enq_ratio=$(calc "100 * ${enq_tps[bench_watched]} / ${enq_tps[bench_plain]}")
bulk_ratio=$(calc "${bulk_ms[bench_watched]} / ${bulk_ms[bench_plain]}")
row "4. Enqueue cost" "single-row INSERT tps, pgbench -c4 -j2 -T$ENQ_T, mean of $ENQ_ROUNDS run(s) each in rotating order: plain / watched (webhook.watch, the worker delivering alongside) / Hasura-style per-row trigger / floor (statement trigger, transition table)" "$(fmt_int "${enq_tps[bench_plain]}") / $(fmt_int "${enq_tps[bench_watched]}") / $(fmt_int "${enq_tps[hasura_watched]}") / $(fmt_int "${enq_tps[bench_floor]}") tps" "—" "—"
row "4. Enqueue cost" "single-row INSERT tps as % of plain: watched / Hasura-style / floor" "$(pct_of_plain bench_watched)% / $(pct_of_plain hasura_watched)% / $(pct_of_plain bench_floor)%" "—" "—"
row "4. Enqueue cost" "single-row INSERT tps, watched as % of plain" "$(calc "int($enq_ratio + 0.5)")%" "≥ 70%" "$(judge "$enq_ratio" '>=' 70)"
row "4. Enqueue cost" "one INSERT … SELECT of $(fmt_int "$BULK_ROWS") rows (commit included), mean of $BULK_ROUNDS run(s) each in rotating order: plain / watched / Hasura-style / floor" "$(fmt_int "${bulk_ms[bench_plain]}") / $(fmt_int "${bulk_ms[bench_watched]}") / $(fmt_int "${bulk_ms[hasura_watched]}") / $(fmt_int "${bulk_ms[bench_floor]}") ms" "—" "—"
row "4. Enqueue cost" "bulk INSERT time ÷ plain: watched / Hasura-style / floor" "$(times_plain bench_watched)× / $(times_plain hasura_watched)× / $(times_plain bench_floor)×" "—" "—"
row "4. Enqueue cost" "bulk INSERT time, watched ÷ plain" "$(printf '%.2f' "$bulk_ratio")×" "≤ 2.5×" "$(judge "$bulk_ratio" '<=' 2.5)"
note "phase 4, each run in its round's order: single-row INSERT tps$(for t in "${enq_tables[@]}"; do printf ' %s (%s)' "${enq_label[$t]}" "${enq_runs[$t]# }"; done); bulk ms$(for t in "${enq_tables[@]}"; do printf ' %s (%s)' "${enq_label[$t]}" "${bulk_runs[$t]# }"; done)"
IFS='|' read -r enq_failed enq_total < <(q "SELECT count(*) FILTER (WHERE status <> 'succeeded'), count(*) FROM webhook.deliveries WHERE endpoint_id = $enq_ep")
[ "$enq_failed" = 0 ] || note "phase 4: $enq_failed of $enq_total deliveries of the watched table did not succeed"
# the peers must have recorded every row too, or their figures flatter them
IFS='|' read -r n_h n_he n_f n_fe < <(q "SELECT (SELECT count(*) FROM hasura_watched), (SELECT count(*) FROM hdb.event_log),
                                                (SELECT count(*) FROM bench_floor), (SELECT count(*) FROM bench_floor_events)")
[ "$n_h" = "$n_he" ] || note "phase 4: hasura_watched has $n_h rows but hdb.event_log $n_he"
[ "$n_f" = "$n_fe" ] || note "phase 4: bench_floor has $n_f rows but bench_floor_events $n_fe"
echo "watched table: $enq_total deliveries, $enq_failed not succeeded; Hasura-style: $n_h rows, $n_he event_log rows; floor: $n_f rows, $n_fe event rows"
q "SELECT webhook.unwatch('bench_watched')" >/dev/null
deactivate_all
vacuum

# ================================================================ 5. worker memory
phase="5. Worker memory"
step "5. worker memory over $(fmt_int "$MEM_TOTAL") deliveries"
find_worker
mem_ids=$(q "WITH e AS (INSERT INTO webhook.endpoints (name, url, event_types)
             SELECT 'mem-' || i, '$base/mem/' || i, '{bench.mem}' FROM generate_series(1, 10) AS i RETURNING id)
             SELECT array_agg(id ORDER BY id) FROM e")
# Warm-up: one chunk delivered first, so that the worker (restarted by
# phase 1c) has reached its working size before "before" is taken.
rss_peak=0
rc0=$(rcount)
q "SELECT bench_send('bench.mem', $((MEM_CHUNK / 10)))" >/dev/null
wait_done "endpoint_id = ANY ('$mem_ids')" "$MEM_CHUNK" 900 $((rc0 + MEM_CHUNK))
find_worker
read -r rss0 anon0 file0 shm0 < <(rss_parts "$worker_pid"); rss_peak=$rss0
mem_pid0=$worker_pid
rc0=$(rcount)
cpu_begin
mem_t0=$(date +%s.%N)
done_n=0
while [ "$done_n" -lt "$MEM_TOTAL" ]; do
  n=$((MEM_TOTAL - done_n < MEM_CHUNK ? MEM_TOTAL - done_n : MEM_CHUNK))
  # n deliveries: n / 10 events to the 10 endpoints, in one transaction
  q "SELECT bench_send('bench.mem', $((n / 10)))" >/dev/null
  done_n=$((done_n + n))
  r=$(rss_kb "$worker_pid"); [ "${r:-0}" -gt "$rss_peak" ] && rss_peak=$r
  printf '  enqueued %s, worker RSS %s kB\n' "$done_n" "$r"
done
wait_done "endpoint_id = ANY ('$mem_ids')" "$((MEM_CHUNK + MEM_TOTAL))" 900 $((rc0 + MEM_TOTAL))
cpu_end "phase 5"
mem_wall=$(calc "$(date +%s.%N) - $mem_t0")
sleep 1   # let the worker settle into its idle loop
find_worker
read -r rss1 anon1 file1 shm1 < <(rss_parts "$worker_pid")
IFS='|' read -r mem_done mem_bad < <(q "SELECT count(*) FILTER (WHERE status = 'succeeded') - $MEM_CHUNK, count(*) FILTER (WHERE status <> 'succeeded') FROM webhook.deliveries WHERE endpoint_id = ANY ('$mem_ids')")
growth_mb=$(calc "($rss1 - $rss0) / 1024")
anon_mb=$(calc "($anon1 - $anon0) / 1024")
shm_mb=$(calc "($shm1 - $shm0) / 1024")
echo "worker VmRSS before $rss0 kB, after $rss1 kB, peak $rss_peak kB (RssAnon $anon0 → $anon1, RssFile $file0 → $file1, RssShmem $shm0 → $shm1 kB); $mem_done delivered, $mem_bad not succeeded, in $(fmt1 "$mem_wall") s"
if [ "$worker_pid" != "$mem_pid0" ]; then
  note "phase 5: the delivery worker changed pid ($mem_pid0 → $worker_pid): it restarted during the phase"
  row "5. Worker memory" "VmRSS growth over $(fmt_int "$MEM_TOTAL") deliveries" "worker restarted" "< 10 MB" "**missed**"
else
  row "5. Worker memory" "VmRSS growth of the worker over $(fmt_int "$MEM_TOTAL") deliveries ($(fmt_int $((rss0 / 1024))) → $(fmt_int $((rss1 / 1024))) MB, peak $(fmt_int $((rss_peak / 1024))) MB), of which RssShmem (shared_buffers pages the worker touched, not its own memory) $(fmt1 "$shm_mb") MB; the target is on private memory, below" "$(fmt1 "$growth_mb") MB" "—" "—"
  row "5. Worker memory" "private memory (RssAnon) growth of the worker over the same deliveries ($(fmt1 "$(calc "$anon0 / 1024")") → $(fmt1 "$(calc "$anon1 / 1024")") MB)" "$(fmt1 "$anon_mb") MB" "< 10 MB" "$(judge "$anon_mb" '<' 10)"
fi
note "phase 5: $(fmt_int "$mem_done") deliveries sent with send() in transactions of $(fmt_int "$((MEM_CHUNK / 10))") events × 10 endpoints and delivered in $(fmt1 "$mem_wall") s ($(fmt_int "$(calc "$mem_done / $mem_wall")")/s including send()); $mem_bad did not succeed"
deactivate_all
vacuum

# ================================================================ 5b. retention
# Retention at full rate: webhook.retention_succeeded = RET_S, and RET_TOTAL
# deliveries sent as fast as they go.  The queue's tables must stay bounded
# (a generation is emptied by TRUNCATE once it ended RET_S ago), with no
# DELETE and no dead rows.  Counted at the receiver: the database forgets
# delivered rows as it goes.
phase="5b. Retention"
step "5b. retention at full rate: $(fmt_int "$RET_TOTAL") deliveries, webhook.retention_succeeded = ${RET_S}s"
queue_bytes() {
  q "SELECT sum(pg_total_relation_size(c.oid)) FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
      WHERE i.inhparent IN ('webhook.events'::regclass, 'webhook.delivery_state'::regclass, 'webhook.delivery_log'::regclass)"
}
queue_deletes() {
  q "SELECT coalesce(sum(n_tup_del), 0) || '|' || coalesce(sum(n_dead_tup), 0) FROM pg_stat_user_tables
      WHERE schemaname = 'webhook' AND relname ~ '^(events|delivery_state|delivery_log)_[0-9]$'"
}
ret_ids=$(q "WITH e AS (INSERT INTO webhook.endpoints (name, url, event_types)
             SELECT 'ret-' || i, '$base/ret/' || i, '{bench.ret}' FROM generate_series(1, 10) AS i RETURNING id)
             SELECT array_agg(id ORDER BY id) FROM e")
q "ALTER SYSTEM SET webhook.retention_succeeded = '${RET_S}s'" >/dev/null
q "SELECT pg_reload_conf()" >/dev/null
# The earlier phases' rows go first (a turn comes after the worker records
# something: a trickle of one event a second), so that the peak is this phase's.
ret_w0=$(date +%s)
while [ $(($(date +%s) - ret_w0)) -lt $((3 * RET_S + 10)) ] && [ "$(queue_bytes)" -gt $((64 * 1048576)) ]; do
  q "SELECT bench_send('bench.ret', 1)" >/dev/null
  sleep 1
done
find_worker
ret_bytes0=$(queue_bytes)
IFS='|' read -r ret_del0 _ < <(queue_deletes)
ret_peak=$ret_bytes0
ret_gens=0
ret_gen=$(q "SELECT webhook._current_generation()")
rc0=$(rcount)
cpu_begin
ret_t0=$(date +%s.%N)
sent=0
while [ "$sent" -lt "$RET_TOTAL" ] || [ "$(rcount)" -lt $((rc0 + RET_TOTAL)) ]; do
  if [ "$sent" -lt "$RET_TOTAL" ]; then
    # keep about two chunks queued ahead of the worker
    if [ "$(rcount)" -ge $((rc0 + sent - 2 * RET_CHUNK)) ]; then
      q "SELECT bench_send('bench.ret', $((RET_CHUNK / 10)))" >/dev/null
      sent=$((sent + RET_CHUNK))
    fi
  fi
  b=$(queue_bytes); [ "$b" -gt "$ret_peak" ] && ret_peak=$b
  g=$(q "SELECT webhook._current_generation()"); [ "$g" != "$ret_gen" ] && { ret_gens=$((ret_gens + 1)); ret_gen=$g; }
  if [ "$(calc "int($(date +%s.%N) - $ret_t0)")" -gt 1200 ]; then abort_run "phase 5b did not finish in 20 minutes"; fi
  sleep 0.5
done
ret_wall=$(calc "$(date +%s.%N) - $ret_t0")
cpu_end "phase 5b"
# After the run: the tables shrink back once the last generations expire
# (a turn comes after the worker records something: keep a trickle going).
ret_t1=$(date +%s)
while [ $(($(date +%s) - ret_t1)) -lt $((3 * RET_S + 10)) ]; do
  q "SELECT bench_send('bench.ret', 1)" >/dev/null
  g=$(q "SELECT webhook._current_generation()"); [ "$g" != "$ret_gen" ] && { ret_gens=$((ret_gens + 1)); ret_gen=$g; }
  sleep 1
done
ret_bytes1=$(queue_bytes)
IFS='|' read -r ret_del1 ret_dead1 < <(queue_deletes)
ret_rows=$(q "SELECT count(*) FROM webhook.delivery_state WHERE endpoint_id = ANY ('$ret_ids')")
ret_bad=$(q "SELECT count(*) FROM webhook.delivery_state WHERE endpoint_id = ANY ('$ret_ids') AND status = 'failed'")
q "ALTER SYSTEM RESET webhook.retention_succeeded" >/dev/null
q "SELECT pg_reload_conf()" >/dev/null
echo "retention: $RET_TOTAL deliveries in $(fmt1 "$ret_wall") s; queue tables $ret_bytes0 → peak $ret_peak → $ret_bytes1 bytes; $ret_gens new generations; $ret_rows delivery rows left; deletes $ret_del0 → $ret_del1, dead rows $ret_dead1"
row "5b. Retention" "$(fmt_int "$RET_TOTAL") deliveries at full rate ($(fmt_int "$(calc "$RET_TOTAL / $ret_wall")")/s, send() included) with webhook.retention_succeeded = ${RET_S} s: the queue tables' size at the start (the earlier phases' rows emptied first) and their peak (all generations, indexes and TOAST included)" "$(fmt1 "$(calc "$ret_bytes0 / 1048576")") MB; peak $(fmt1 "$(calc "$ret_peak / 1048576")") MB" "bounded" "—"
row "5b. Retention" "the same tables $((3 * RET_S + 10)) s after the last delivery; delivery rows of the phase left; generations begun during the phase" "$(fmt1 "$(calc "$ret_bytes1 / 1048576")") MB; $(fmt_int "$ret_rows") of $(fmt_int "$RET_TOTAL"); $ret_gens" "—" "—"
row "5b. Retention" "rows of the queue deleted one by one (n_tup_del of the partitions during the phase) and dead rows left (n_dead_tup): retention truncates" "$((ret_del1 - ret_del0)); $ret_dead1" "0" "$(judge "$((ret_del1 - ret_del0))" '<=' 0)"
[ "$ret_bad" = 0 ] || note "phase 5b: $ret_bad deliveries failed"
deactivate_all
vacuum

# ================================================================ 6. fan-out
phase="6. Fan-out"
step "6. fan-out to $FAN_N endpoints"
q "INSERT INTO webhook.endpoints (name, url, event_types)
   SELECT 'fan-' || i, '$base/fan/' || i, '{bench.fanout}' FROM generate_series(1, $FAN_N) AS i" >/dev/null
rc0=$(rcount)
# now() of the sending transaction is the event's created_at
IFS='|' read -r fan_event fan_t0 < <(q "SELECT webhook.send('bench.fanout', '{\"fan\": \"out\"}'), extract(epoch FROM now())")
wait_done "event_id = '$fan_event'" "$FAN_N" 120 $((rc0 + FAN_N))
IFS='|' read -r fan_n fan_bad fan_ms < <(q "SELECT count(*), count(*) FILTER (WHERE status <> 'succeeded'),
    round(((extract(epoch FROM max(completed_at)) - $fan_t0) * 1000)::numeric, 1)
    FROM webhook.deliveries WHERE event_id = '$fan_event'")
rc1=$(rcount)
echo "fan-out: $fan_n deliveries ($fan_bad not succeeded) in $fan_ms ms; receiver got $((rc1 - rc0))"
row "6. Fan-out" "one webhook.send() to $(fmt_int "$FAN_N") subscribed endpoints: created_at → last completed_at ($fan_bad not succeeded)" "$fan_ms ms" "—" "—"
deactivate_all
vacuum

# ================================================================ 7. isolation
phase="7. Isolation"
step "7. isolation: fast endpoint F ($ISO_F) next to a 1 s endpoint S ($ISO_S)"
IFS='|' read -r iso_f iso_s < <(q "WITH f AS (INSERT INTO webhook.endpoints (name, url, event_types)
                                  VALUES ('iso-fast', '$base/iso/fast', '{bench.iso.f}') RETURNING id),
                                 s AS (INSERT INTO webhook.endpoints (name, url, event_types, active)
                                  VALUES ('iso-slow', '$base/slow/iso', '{bench.iso.s}', false) RETURNING id)
                                 SELECT f.id, s.id FROM f, s")
# iso_run without|with: in one transaction, switch S on ("with") or off
# ("without") and send ISO_F events for F (and, "with", top S up to ISO_S
# pending); measure F's deliveries/s from that commit to F's last
# completed_at.  S is switched off again after each run.
iso_run() {
  local f_before t0 t1 n bad bad_before need=0 s_on=false rc_before
  IFS='|' read -r f_before bad_before < <(q "SELECT count(*) FILTER (WHERE status <> 'pending'), count(*) FILTER (WHERE status = 'failed')
                                              FROM webhook.deliveries WHERE endpoint_id = $iso_f")
  if [ "$1" = with ]; then
    s_on=true
    need=$(q "SELECT $ISO_S - count(*) FROM webhook.deliveries WHERE endpoint_id = $iso_s AND status = 'pending'")
    [ "$need" -gt 0 ] || need=0
  fi
  vacuum
  q "CHECKPOINT" >/dev/null
  rc_before=$(rcount)
  cpu_begin
  t0=$(q <<SQL
BEGIN;
UPDATE webhook.endpoints SET active = $s_on WHERE id = $iso_s;
SELECT bench_send('bench.iso.f', $ISO_F);
SELECT bench_send('bench.iso.s', $need);
COMMIT;
SELECT extract(epoch FROM clock_timestamp());
SQL
)
  # (S's requests count at the receiver too: the database poll finishes the wait)
  wait_done "endpoint_id = $iso_f" $((f_before + ISO_F)) 600 $((rc_before + ISO_F))
  cpu_end "phase 7 (F $1 S, run $2)"
  IFS='|' read -r t1 n bad < <(q "SELECT extract(epoch FROM max(completed_at)), count(*) FILTER (WHERE status <> 'pending') - $f_before,
                                   count(*) FILTER (WHERE status = 'failed') - $bad_before
                                   FROM webhook.deliveries WHERE endpoint_id = $iso_f")
  q "UPDATE webhook.endpoints SET active = false WHERE id = $iso_s" >/dev/null
  iso_rate=$(calc "$n / ($t1 - $t0)")
  iso_slow_done=$(q "SELECT count(*) FROM webhook.deliveries WHERE endpoint_id = $iso_s AND status = 'succeeded'
                      AND completed_at BETWEEN to_timestamp($t0) AND to_timestamp($t1)")
  echo "F $1 S (run $2): $n deliveries in $(fmt1 "$(calc "$t1 - $t0")") s = $(fmt_int "$iso_rate")/s ($bad not succeeded); S completed $iso_slow_done meanwhile"
  [ "$bad" = 0 ] || note "phase 7 (F $1 S): $bad of F's deliveries did not succeed"
}
# Alternate the two conditions twice: a single ~7 s run varies by ±15% here.
iso_run without 1; iso_alone1=$iso_rate
iso_run with 1;    iso_with1=$iso_rate; iso_slow1=$iso_slow_done
iso_run without 2; iso_alone2=$iso_rate
iso_run with 2;    iso_with2=$iso_rate; iso_slow2=$iso_slow_done
iso_alone=$(calc "($iso_alone1 + $iso_alone2) / 2")
iso_with=$(calc "($iso_with1 + $iso_with2) / 2")
slow_left=$(q "SELECT count(*) FROM webhook.deliveries WHERE endpoint_id = $iso_s AND status = 'pending'")
iso_ratio=$(calc "100 * $iso_with / $iso_alone")
row "7. Isolation" "F's deliveries/s, $(fmt_int "$ISO_F") events sent in one transaction, mean of 2 alternating runs each: alone ($(fmt_int "$iso_alone1"), $(fmt_int "$iso_alone2")) / with S's $(fmt_int "$ISO_S") pending at 1 s each ($(fmt_int "$iso_with1"), $(fmt_int "$iso_with2"); S finished $iso_slow1 and $iso_slow2 meanwhile)" "$(fmt_int "$iso_alone") / $(fmt_int "$iso_with")/s" "—" "—"
row "7. Isolation" "F with S as % of F alone" "$(calc "int($iso_ratio + 0.5)")%" "≥ 90%" "$(judge "$iso_ratio" '>=' 90)"
echo "S still had $slow_left deliveries pending at the end (expected: it is deactivated and left behind)"

# ================================================================ 8. scheduled events
# SCHED_N events sent in one transaction with deliver_at spread over 2 s,
# starting 1 s after the commit, to one endpoint: how late each first
# attempt starts after its deliver_at (never early), and the worker's CPU
# while it waits (it sleeps until the earliest, with no polling).
phase="8. Scheduled"
step "8. scheduled: $SCHED_N events due over 2 s"
deactivate_all
rc_sched=$(rcount)
sched_ep=$(q "INSERT INTO webhook.endpoints (name, url, event_types) VALUES ('sched', '$base/sched', '{bench.sched}') RETURNING id")
q "SELECT count(webhook.send('bench.sched', bench_payload(g), deliver_at => clock_timestamp() + interval '1 s' + g * interval '2 s' / $SCHED_N))
     FROM generate_series(1, $SCHED_N) g" >/dev/null
sleep 0.3
w_wait0=$(proc_ticks "$worker_pid")
sleep 0.6
w_wait1=$(proc_ticks "$worker_pid")
wait_done "endpoint_id = $sched_ep" "$SCHED_N" 120 $((rc_sched + SCHED_N))
IFS='|' read -r s_p50 s_p99 s_max s_early < <(q "SELECT round(percentile_cont(0.5) WITHIN GROUP (ORDER BY ms)::numeric, 2),
       round(percentile_cont(0.99) WITHIN GROUP (ORDER BY ms)::numeric, 2), round(max(ms)::numeric, 2),
       count(*) FILTER (WHERE ms < 0)
  FROM (SELECT extract(epoch FROM l.attempted_at - e.deliver_at) * 1000 AS ms
          FROM webhook.delivery_log l JOIN webhook.events e ON e.id = l.event_id
         WHERE l.endpoint_id = $sched_ep AND l.attempt = 1) x")
row "8. Scheduled" "$(fmt_int "$SCHED_N") events sent in one transaction, deliver_at spread over 2 s from 1 s after it: first attempt's start − deliver_at, p50 / p99 / max; attempts started early" "$s_p50 / $s_p99 / $s_max ms; $s_early early" "0 early" "$(judge "$s_early" '<=' 0)"
row "8. Scheduled" "the delivery worker's CPU while it waits for the first due time (0.6 s)" "$(( (w_wait1 - w_wait0) * 1000 / clk_tck )) ms" "—" "—"
[ "$s_early" = 0 ] || note "phase 8: $s_early scheduled deliveries were attempted before their deliver_at"

# ---------------------------------------------------------------- 9. Citus
phase="9. Citus"
step "9. Citus: a watched distributed table delivered by one worker node, then by two"
deactivate_all
# Smoke runs skip it: three more servers cost half a minute of the test
# suite, and test/t/036_citus.pl covers the same paths.
if [ "$smoke" = 1 ]; then
  note "phase 9: skipped in smoke mode (BENCH_SMOKE=1)"
else
  citus_phase "$CITUS_N"
fi

write_report
