# Phase 9 of bench/run.sh, which sources this file: a watched distributed
# table on a Citus cluster, delivered with one worker node and then, in the
# same run, with two (issue 16).  Three more throwaway servers (a
# coordinator and two worker nodes, preloading citus and webhook) listen on
# 127.0.0.1, because Citus's nodes talk over TCP.  Rows go in through the
# coordinator with one INSERT ... SELECT; the figure is deliveries/s from
# before that statement until the receiver has every request.  Uses
# run.sh's helpers (row, note, step, rcount, calc, fmt_int, run_as, dir,
# port, base, user).

# citus_pg NODE ARGS...: psql as postgres on one of the phase's servers.
citus_pg() {
  local node=$1; shift
  "${run_as[@]}" psql -X -q -At -v ON_ERROR_STOP=1 -h "$dir/citus" -p "${citus_ports[$node]}" -U postgres -d postgres "$@"
}

# citus_start NODE: initdb and start one of the phase's servers.
citus_start() {
  local node=$1 d="$dir/citus/$1"
  "${run_as[@]}" initdb -D "$d" -A trust -U postgres >/dev/null
  cat >> "$d/postgresql.conf" <<EOF
shared_preload_libraries = 'citus,webhook'
citus.enable_statistics_collection = off
webhook.allowed_networks = '127.0.0.1/32'
webhook.master_key_file = '$dir/citus/master.key'
max_prepared_transactions = 50
max_worker_processes = 16
shared_buffers = 128MB
port = ${citus_ports[$node]}
listen_addresses = '127.0.0.1'
unix_socket_directories = '$dir/citus'
EOF
  "${run_as[@]}" pg_ctl -D "$d" -l "$d.log" -w start >/dev/null
  citus_pg "$node" -c 'CREATE EXTENSION citus'
}

# citus_stop: stop whatever of the phase's servers runs (also from cleanup).
citus_stop() {
  local d
  for d in "$dir"/citus/c "$dir"/citus/w1 "$dir"/citus/w2; do
    [ -f "$d/postmaster.pid" ] && "${run_as[@]}" pg_ctl -D "$d" stop -m fast >/dev/null 2>&1
  done
  return 0
}

# citus_wait_synced NODE: until the node has the coordinator's endpoint.
citus_wait_synced() {
  local i
  for i in $(seq 300); do
    [ "$(citus_pg "$1" -c "SELECT count(*) FROM webhook.endpoints WHERE name = 'citus'")" = 1 ] && return 0
    sleep 0.1
  done
  echo "bench: the endpoint did not reach Citus node $1 within 30 s" >&2
  return 1
}

# citus_rate FIRST N: insert rows FIRST.. FIRST+N-1 through the coordinator;
# prints deliveries/s until the receiver has them all.
citus_rate() {
  local first=$1 n=$2 r0 t0 t1 got i
  r0=$(rcount)
  t0=$(date +%s.%N)
  citus_pg c -c "INSERT INTO bench_orders SELECT g, 0, 'row ' || g FROM generate_series($first, $((first + n - 1))) g"
  for i in $(seq 6000); do
    got=$(rcount)
    [ $((got - r0)) -ge "$n" ] && break
    sleep 0.1
  done
  t1=$(date +%s.%N)
  [ $((got - r0)) -ge "$n" ] || { echo "bench: Citus phase: $((got - r0)) of $n deliveries arrived" >&2; return 1; }
  calc "int($n / ($t1 - $t0))"
}

citus_phase() {
  local n=$1 libdir rate1 rate2 shards1 shards2
  libdir=$(pg_config --pkglibdir)
  if [ ! -f "$libdir/citus.so" ]; then
    note "phase 9: Citus is not installed (tools/build-citus builds it): skipped"
    return 0
  fi
  declare -gA citus_ports=([c]=$((port + 1)) [w1]=$((port + 2)) [w2]=$((port + 3)))
  mkdir -p "$dir/citus"
  head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' > "$dir/citus/master.key"
  echo >> "$dir/citus/master.key"
  chmod 600 "$dir/citus/master.key"
  chown -R "$user" "$dir/citus"
  citus_start c; citus_start w1; citus_start w2

  citus_pg c -c "SELECT citus_set_coordinator_host('127.0.0.1', ${citus_ports[c]})" >/dev/null
  citus_pg c -c "SELECT citus_add_node('127.0.0.1', ${citus_ports[w1]})" >/dev/null
  citus_pg c <<EOF >/dev/null
CREATE EXTENSION webhook;
CREATE TABLE bench_orders (id bigint PRIMARY KEY, n integer NOT NULL, note text);
SELECT create_distributed_table('bench_orders', 'id', shard_count := 8);
SELECT webhook.watch('bench_orders');
INSERT INTO webhook.endpoints (name, url, event_types) VALUES ('citus', '$base/citus', '{bench_orders.*}');
EOF
  citus_wait_synced w1
  rate1=$(citus_rate 1 "$n")
  shards1=$(citus_pg c -c "SELECT count(*) FROM citus_shards WHERE table_name = 'bench_orders'::regclass AND nodeport = ${citus_ports[w1]}")

  citus_pg c -c "SELECT citus_add_node('127.0.0.1', ${citus_ports[w2]})" >/dev/null
  citus_wait_synced w2
  citus_pg c -c "SELECT citus_rebalance_start(shard_transfer_mode := 'block_writes')" -c 'SELECT citus_rebalance_wait()' >/dev/null
  shards2=$(citus_pg c -c "SELECT string_agg(n::text, ' + ') FROM (SELECT count(*) AS n FROM citus_shards WHERE table_name = 'bench_orders'::regclass GROUP BY nodeport ORDER BY nodeport) x")
  rate2=$(citus_rate $((n + 1)) "$n")
  citus_stop

  row "9. Citus" "watched distributed table, $(fmt_int "$n") rows in one INSERT ... SELECT through the coordinator, until all delivered: one worker node ($shards1 shards)" "$(fmt_int "$rate1")/s" "—" "—"
  row "9. Citus" "the same with two worker nodes after a rebalance ($shards2 shards): each node delivers its own shards' events" "$(fmt_int "$rate2")/s ($(printf '%.2f' "$(calc "$rate2 / $rate1")")× one node)" "> 1× one node" "$(judge "$(calc "$rate2 / $rate1")" '>' 1)"
}
