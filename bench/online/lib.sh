# shellcheck shell=bash
# The parts of a lock scenario that bench/online/run.sh and bench/partman/run.sh share:
# an insert load at a fixed rate (pgbench), a long transaction (the reader), a sampler of
# lock waits (pg_locks), and the scenario directory they leave for bench/online/report.py:
#
#   DIR/meta        key=value lines: load_start, reader_start, reader_locks, reader_end,
#                   load_end (epoch seconds); the caller adds method, condition,
#                   maint_start, maint_end, maint_wall, rerun_*, result
#   DIR/txlog.*     pgbench's per-transaction log (-l)
#   DIR/pgbench.out, DIR/pgbench.err
#   DIR/lockwaits   every 100 ms: the lock requests not granted in the database
#
# Sourced after scripts/pg.sh (PW_PG_BIN, pw_psql). Background processes are added to the
# caller's array BG_PIDS, so its cleanup can end them.

# bo_partwarden_bin: BIN, the partwarden binary a bench runs: BENCH_BIN as an absolute
# path, or a debug build made now (the DDL's time is PostgreSQL's: debug is fine for locks).
bo_partwarden_bin() {
    if [ -n "${BENCH_BIN:-}" ]; then
        BIN=$BENCH_BIN
    else
        echo "== building partwarden (cargo build)"
        cargo build --quiet
        BIN=$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')/debug/partwarden
    fi
    [ -x "$BIN" ] || { echo "BENCH_BIN=$BIN is not an executable partwarden binary" >&2; exit 2; }
    BIN=$(cd "$(dirname "$BIN")" && pwd)/$(basename "$BIN")
}

# bo_cleanup: the EXIT trap of both scripts. Ends BG_PIDS, stops the cluster, runs the
# caller's keep_logs when BENCH_KEEP_LOGS is set, removes TMP, exits with the script's code.
bo_cleanup() {
    local rc=$? p
    for p in "${BG_PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    pw_pg_stop
    if [ -n "${BENCH_KEEP_LOGS:-}" ]; then
        mkdir -p "$BENCH_KEEP_LOGS" && keep_logs || true
    fi
    rm -rf "$TMP"
    exit "$rc"
}

bo_now() { date +%s.%N; }

# bo_reader_sql PRELUDE QUERY HOLD: the long transaction. PRELUDE runs first in the
# transaction (e.g. set_config of the tenant, or nothing), QUERY takes the locks (a
# count(*)), then it sleeps HOLD seconds and commits. Its last line of output is
# reader_end=<epoch>.
bo_reader_sql() {
    local prelude=$1 query=$2 hold=$3
    printf '%s\n' "BEGIN;" "$prelude" "$query" "SELECT pg_sleep($hold);" "COMMIT;" \
        "SELECT 'reader_end=' || extract(epoch FROM clock_timestamp());"
}

# bo_lock_sampler URL OUT: every 100 ms, every lock request not granted in URL's
# database, who waits, for what, and who blocks it. Sets BO_SAMPLER_PID.
bo_lock_sampler() {
    local url=$1 out=$2
    printf '%s\n' "SELECT extract(epoch FROM clock_timestamp()), w.pid, a.usename, a.application_name, w.mode,
       coalesce(w.relation::regclass::text, w.locktype), left(regexp_replace(a.query, '\s+', ' ', 'g'), 90),
       pg_blocking_pids(w.pid)
  FROM pg_locks w JOIN pg_stat_activity a ON a.pid = w.pid
 WHERE NOT w.granted AND a.datname = current_database()" '\watch 0.1' |
        "$PW_PG_BIN/psql" -X -q -At -F '|' "$url" >"$out" 2>/dev/null &
    BO_SAMPLER_PID=$!
    BG_PIDS+=("$BO_SAMPLER_PID")
}

# bo_load DIR PORT USER DB RATE SECONDS SCRIPT CLIENTS THREADS: pgbench at a fixed arrival
# rate (-R: latency counts from the scheduled start, so an insert that arrives during a
# stall is charged for all of its wait), on loopback. Sets BO_LOAD_PID.
bo_load() {
    local dir=$1 port=$2 user=$3 db=$4 rate=$5 secs=$6 script=$7 clients=$8 threads=$9
    echo "load_start=$(bo_now)" >>"$dir/meta"
    "$PW_PG_BIN/pgbench" -n -h 127.0.0.1 -p "$port" -U "$user" -c "$clients" -j "$threads" -R "$rate" -T "$secs" \
        -l --log-prefix "$dir/txlog" --failures-detailed -f "$script" "$db" \
        >"$dir/pgbench.out" 2>"$dir/pgbench.err" &
    BO_LOAD_PID=$!
    BG_PIDS+=("$BO_LOAD_PID")
}

# bo_reader DIR ADMIN_URL APP_URL SQLFILE: starts the long transaction (as APP_URL's
# role), waits until it sleeps, prints and records the relation locks it holds. Sets
# BO_READER_PID.
bo_reader() {
    local dir=$1 admin=$2 app=$3 sql=$4
    echo "reader_start=$(bo_now)" >>"$dir/meta"
    pw_psql "$app" -At -f "$sql" >"$dir/reader.log" 2>&1 &
    BO_READER_PID=$!
    BG_PIDS+=("$BO_READER_PID")
    local rpid=""
    for _ in $(seq 100); do
        rpid=$(pw_psql "$admin" -At -c "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND query LIKE 'SELECT pg_sleep%' AND state = 'active'")
        [ -n "$rpid" ] && break
        sleep 0.05
    done
    [ -n "$rpid" ] || { echo "the long transaction did not start:" >&2; cat "$dir/reader.log" >&2; exit 1; }
    local held
    held=$(pw_psql "$admin" -At -c "SELECT string_agg(c.relname || ' ' || l.mode, ', ' ORDER BY c.relname) FROM pg_locks l JOIN pg_class c ON c.oid = l.relation WHERE l.pid = $rpid AND c.relkind IN ('r', 'p')")
    echo "   long transaction holds: $held"
    echo "reader_locks=$held" >>"$dir/meta"
}

# bo_reader_end DIR: waits for the long transaction and records its end.
bo_reader_end() {
    local dir=$1
    wait "$BO_READER_PID" || { echo "the long transaction failed:" >&2; cat "$dir/reader.log" >&2; exit 1; }
    grep '^reader_end=' "$dir/reader.log" >>"$dir/meta"
}

# bo_load_end DIR: waits for pgbench, records the end, stops the sampler. Sets
# BO_LOAD_RC to pgbench's exit code (non-zero when a client aborted).
# shellcheck disable=SC2034  # BO_LOAD_RC is read by the caller
bo_load_end() {
    local dir=$1
    BO_LOAD_RC=0
    wait "$BO_LOAD_PID" || BO_LOAD_RC=$?
    echo "load_end=$(bo_now)" >>"$dir/meta"
    kill "$BO_SAMPLER_PID" 2>/dev/null || true
    wait "$BO_SAMPLER_PID" 2>/dev/null || true
}
