#!/usr/bin/env bash
# Catalog statistics and the idle daemon (SPEC §8: "Statistics for 1,000 partitions in one
# catalog query; /metrics served from memory" and "Idle daemon: small RSS (target < 20 MB),
# near-zero CPU; ready within a second of the database being reachable"). What it
# measures and how to read it: bench/README.md, section "Catalog statistics and the idle
# daemon (bench/catalog)".
#
# One migrated database whose archon_ga4_events has 1,000 daily partitions, filled in two
# stages (1,000 rows per partition, then 5,000). At each stage, the statistics of every
# partition are read four ways: partwarden's catalog snapshot (`partwarden status --json`,
# and its query alone), get_ga4_partition_stats(), one count(*) per partition, and one
# count(*) ... GROUP BY tableoid. Then `partwarden run` on that database: time to ready,
# RSS, CPU over an idle window, /metrics latency and size, readiness after database
# outages, SIGTERM. Last, the same daemon on a freshly migrated database (5 partitions) as
# a reference. Prints one table.
#
# Knobs (environment): BENCH_PARTITIONS (1000), BENCH_PREMAKE (7: the partitions from today
# through +7 days exist, so partwarden has nothing to create), BENCH_ROWS (rows per
# partition in stage 1, 1000), BENCH_ROWS_MORE (rows per partition in stage 2, 5000; 0 skips
# stage 2; must stay below the vector index's min_rows = 10000), BENCH_REPEAT (5: runs per
# timing), BENCH_COUNT_REPEAT (3: sessions of the 1,000 count(*) statements),
# BENCH_STATS_INTERVAL (5: seconds), BENCH_WARMUP (15 s), BENCH_IDLE (60 s),
# BENCH_METRICS_GETS (200), BENCH_OUTAGES ("2 4 6": seconds the database stays stopped
# under the running daemon after /readyz has turned 503), BENCH_REF_IDLE (30 s), BENCH_BIN (default: `cargo build --release`,
# then target/release/partwarden), BENCH_KEEP_LOGS=DIR (copy the logs there before the
# cluster is removed).
set -euo pipefail
cd "$(dirname "$0")/../.."
# shellcheck source=scripts/pg.sh
. scripts/pg.sh

PARTS=${BENCH_PARTITIONS:-1000}
AHEAD=${BENCH_PREMAKE:-7}
ROWS1=${BENCH_ROWS:-1000}
ROWS2=${BENCH_ROWS_MORE:-5000}
REPEAT=${BENCH_REPEAT:-5}
COUNT_REPEAT=${BENCH_COUNT_REPEAT:-3}
STATS_INTERVAL=${BENCH_STATS_INTERVAL:-5}
WARMUP=${BENCH_WARMUP:-15}
IDLE=${BENCH_IDLE:-60}
GETS=${BENCH_METRICS_GETS:-200}
OUTAGES=${BENCH_OUTAGES:-2 4 6}
REF_IDLE=${BENCH_REF_IDLE:-30}
TENANT=7d1c0a3e-5b1f-4c2a-9e3d-000000000001
MEASURE=bench/catalog/measure.py

isint() { [[ $1 =~ ^[0-9]+$ ]]; }
for v in PARTS AHEAD ROWS1 ROWS2 REPEAT COUNT_REPEAT STATS_INTERVAL WARMUP IDLE GETS REF_IDLE; do
    isint "${!v}" || { echo "$v must be a whole number (got '${!v}')" >&2; exit 2; }
done
[ "$PARTS" -gt "$AHEAD" ] || { echo "BENCH_PARTITIONS must exceed BENCH_PREMAKE" >&2; exit 2; }
[ "$REPEAT" -ge 1 ] && [ "$COUNT_REPEAT" -ge 1 ] && [ "$ROWS1" -ge 1 ] || { echo "BENCH_REPEAT, BENCH_COUNT_REPEAT and BENCH_ROWS must be >= 1" >&2; exit 2; }
# A partition with min_rows (10000) rows would get an ivfflat index built by the daemon's
# first maintenance run, which is not what this bench measures.
[ "$ROWS1" -lt 10000 ] && [ "$ROWS2" -lt 10000 ] || { echo "rows per partition must stay below 10000 (the vector index's min_rows)" >&2; exit 2; }
[ "$ROWS2" = 0 ] || [ "$ROWS2" -gt "$ROWS1" ] || { echo "BENCH_ROWS_MORE must be 0 or more than BENCH_ROWS" >&2; exit 2; }

now_ns() { date +%s%N; }
ms_since() { echo $(( ($(now_ns) - $1) / 1000000 )); }
log() { printf '== %s\n' "$*"; }
strip_ansi() { sed 's/\x1b\[[0-9;]*m//g'; }

pw_pg_install 2> >(grep -v -e RuntimeDirWarning -e user_runtime_dir >&2)
if [ -n "${BENCH_BIN:-}" ]; then
    BIN=$(cd "$(dirname "$BENCH_BIN")" && pwd)/$(basename "$BENCH_BIN")
else
    log "building partwarden (cargo build --release)"
    cargo build --release --quiet
    BIN=$PWD/target/release/partwarden
fi

TMP=$(mktemp -d "${TMPDIR:-/tmp}/partwarden-bench-catalog.XXXXXX")
chmod 0755 "$TMP"
RES=$TMP/results
: >"$RES"
BG_PIDS=()
PG_UP_PID=
cleanup() {
    local rc=$? p
    for p in "${BG_PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    # A cluster start under way (outage tests) finishes first, so that it is stopped too.
    [ -z "$PG_UP_PID" ] || wait "$PG_UP_PID" 2>/dev/null || true
    pw_pg_stop
    if [ -n "${BENCH_KEEP_LOGS:-}" ]; then
        mkdir -p "$BENCH_KEEP_LOGS" && cp -r "$TMP"/*.log "$TMP"/*.toml "$TMP"/*.sql "$TMP"/*.out "$TMP"/*.json "$RES" "$TMP"/pg/postgres.log "$BENCH_KEEP_LOGS"/ 2>/dev/null || true
    fi
    rm -rf "$TMP"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

put() { printf '%s=%s\n' "$1" "$2" >>"$RES"; }
# measure.py's key=value lines, prefixed.
put_all() { local prefix=$1 k v; while IFS='=' read -r k v; do [ -n "$k" ] && put "$prefix$k" "$v"; done; }

pw_pg_start "$TMP/pg"
pw_pg_bootstrap
PORT=$PW_PG_PORT
PGLOG=$TMP/pg/postgres.log
# The postmaster's options, to start the same cluster again after stopping it.
PG_OPTS=$(python3 -c 'import shlex, sys; a = shlex.split(open(sys.argv[1]).read()); i = a.index("-D"); print(" ".join(shlex.quote(x) for x in a[i + 2:]))' "$PW_PG_DATA/postmaster.opts")
pg_down() { pw_as_pg "$PW_PG_BIN/pg_ctl" -D "$PW_PG_DATA" -m fast -w -t 60 stop >/dev/null; }
pg_up() { pw_as_pg "$PW_PG_BIN/pg_ctl" -D "$PW_PG_DATA" -l "$PGLOG" -w -t 60 start -o "$PG_OPTS" >/dev/null; }

DB=bench
ADMIN=postgres://postgres@127.0.0.1:$PORT/$DB
OWNER=postgres://partwarden@127.0.0.1:$PORT/$DB
PSQL=$PW_PG_BIN/psql
CPU_MODEL=$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo 2>/dev/null || echo unknown)
MEM_GB=$(awk '/^MemTotal/ { printf "%.0f", $2 / 1048576 }' /proc/meminfo)
put machine "$(nproc) CPU(s) ($CPU_MODEL), ${MEM_GB} GB RAM, $(uname -sr)"
put postgres "$("$PW_PG_BIN/postgres" --version | awk '{print $3}')"
put partwarden "$("$BIN" --version 2>/dev/null || echo unknown)"
put date "$(date -u '+%Y-%m-%d %H:%M UTC')"
put parts "$PARTS"
put stats_interval "$STATS_INTERVAL"
put idle "$IDLE"
put ref_idle "$REF_IDLE"
put gets "$GETS"
put repeat "$REPEAT"
put count_repeat "$COUNT_REPEAT"
log "PostgreSQL $("$PW_PG_BIN/postgres" --version | awk '{print $3}'), $(nproc) CPU(s), $(uname -sr); partwarden $BIN"

# partwarden's documented default configuration, with the table partitioned by day:
# premake and retention such that the 1,000 partitions below are exactly what partwarden
# wants (no partition to create, none to expire). The daemon's stats_interval and HTTP
# address come from the environment.
CONFIG=$TMP/partwarden.toml
RETENTION_DAYS=$((PARTS + 100))
sed -e 's/^interval = "month"$/interval = "day"/' \
    -e "s/^premake = 3\$/premake = $AHEAD/" \
    -e "s/^retention = \"24 months\"\$/retention = \"$RETENTION_DAYS days\"/" \
    config/partwarden.toml >"$CONFIG"
grep -q '^interval = "day"$' "$CONFIG" && grep -q "^premake = $AHEAD\$" "$CONFIG" \
    && grep -q "^retention = \"$RETENTION_DAYS days\"\$" "$CONFIG" \
    || { echo "could not set interval/premake/retention in $CONFIG" >&2; exit 1; }
DATABASE_URL=postgres://unused@127.0.0.1/unused "$BIN" check-config --offline "$CONFIG" >/dev/null
put config "interval day, premake $AHEAD, retention $RETENTION_DAYS days, otherwise config/partwarden.toml"

# --- the database ----------------------------------------------------------------------
log "database: migrate, then $PARTS daily partitions"
pw_psql "$PW_PG_ADMIN_URL" -c "CREATE DATABASE $DB OWNER partwarden"
pw_psql "$ADMIN" -c "CREATE EXTENSION IF NOT EXISTS vector"
pw_psql "$ADMIN" -c "GRANT SELECT ON pg_catalog.pg_statistic TO partwarden"  # the documented setup
DATABASE_URL=$OWNER "$BIN" --config "$CONFIG" migrate >"$TMP/migrate.log" 2>&1
FIRST=$((AHEAD - PARTS + 1))  # day offset of the oldest partition (today = 0)
t=$(now_ns)
pw_psql "$OWNER" >"$TMP/setup.out" <<SQL
-- The migration's monthly partitions (current month + 3) would overlap the daily ones.
DO \$\$
DECLARE r record;
BEGIN
    FOR r IN SELECT c.oid::regclass AS rel
               FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
              WHERE i.inhparent = 'archon_ga4_events'::regclass
                AND c.oid <> (SELECT partdefid FROM pg_partitioned_table WHERE partrelid = 'archon_ga4_events'::regclass)
    LOOP
        EXECUTE format('DROP TABLE %s', r.rel);
    END LOOP;
END \$\$;
-- Daily UTC partitions, named and bounded as partwarden names them, with the parent's
-- forced RLS and policies (partwarden_sync_partition_rls, as the migrations do), so that
-- partwarden finds nothing to repair.
DO \$\$
DECLARE d date; name text; t0 date := (now() AT TIME ZONE 'UTC')::date;
BEGIN
    FOR k IN $FIRST..$AHEAD LOOP
        d := t0 + k;
        name := 'archon_ga4_events_' || to_char(d, 'YYYY_MM_DD');
        EXECUTE format('CREATE TABLE %I PARTITION OF archon_ga4_events FOR VALUES FROM (%L) TO (%L)',
                       name, to_char(d, 'YYYY-MM-DD') || ' 00:00:00+00', to_char(d + 1, 'YYYY-MM-DD') || ' 00:00:00+00');
        PERFORM partwarden_sync_partition_rls('archon_ga4_events', name::regclass);
    END LOOP;
END \$\$;
SQL
put setup_partitions_s "$(awk -v ms="$(ms_since "$t")" 'BEGIN { printf "%.1f", ms / 1000 }')"
n=$(pw_psql "$OWNER" -At -c "SELECT count(*) FROM pg_inherits WHERE inhparent = 'archon_ga4_events'::regclass AND inhrelid <> (SELECT partdefid FROM pg_partitioned_table WHERE partrelid = 'archon_ga4_events'::regclass)")
[ "$n" = "$PARTS" ] || { echo "expected $PARTS partitions, found $n" >&2; exit 1; }

# Rows through the parent as the tenant (RLS is forced: the owner sees and inserts nothing
# without one), evenly spread over each day; then VACUUM ANALYZE, so reltuples is exact and
# autovacuum has nothing left to do while the bench measures.
add_rows() {
    local from=$1 to=$2
    pw_psql "$OWNER" >>"$TMP/setup.out" <<SQL
BEGIN;
SELECT set_config('app.current_tenant_id', '$TENANT', true);
INSERT INTO archon_ga4_events (tenant_id, property_id, event_name, event_timestamp, page_path, user_pseudo_id, session_id, metrics, dimensions)
SELECT '$TENANT', 'bench', 'page_view',
       ((now() AT TIME ZONE 'UTC')::date + k) AT TIME ZONE 'UTC' + (g - 1) * interval '86399 seconds' / $to,
       '/page/' || g, 'user-' || (g % 100), 'session-' || (g % 500), '{"engagement_time_msec": 1200}', '{"device": "desktop"}'
  FROM generate_series($FIRST, $AHEAD) k, generate_series($from, $to) g;
COMMIT;
VACUUM ANALYZE archon_ga4_events;
SQL
}

# --- statistics, four ways -------------------------------------------------------------
# Medians are taken by report.py; every sample is kept in the results file.
CATALOG_SQL=$TMP/catalog.sql
python3 "$MEASURE" catalog-sql >"$CATALOG_SQL"
PART_LIST=$TMP/partitions.out
pw_psql "$OWNER" -At -c "SELECT c.oid::regclass FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid WHERE i.inhparent = 'archon_ga4_events'::regclass ORDER BY 1" >"$PART_LIST"

log_on() { pw_psql "$ADMIN" -c "ALTER ROLE partwarden IN DATABASE $DB SET log_min_duration_statement = 0"; }
log_off() { pw_psql "$ADMIN" -c "ALTER ROLE partwarden IN DATABASE $DB RESET log_min_duration_statement"; }
log_size() { stat -c %s "$PGLOG"; }
join() { local IFS=,; echo "$*"; }

measure_stats() {
    local s=$1 i t from to walls=() qms=() out
    local total
    total=$(pw_psql "$ADMIN" -At -c "SELECT count(*) FROM archon_ga4_events")  # superuser: no RLS
    put "s${s}_rows" "$total"
    put "s${s}_table_bytes" "$(pw_psql "$OWNER" -At -c "SELECT sum(pg_total_relation_size(inhrelid)) FROM pg_inherits WHERE inhparent = 'archon_ga4_events'::regclass")"
    log "stage $s: $total rows; statistics of $PARTS partitions"

    # (a) partwarden status --json: a new process and connection each time. The server
    # log (log_min_duration_statement = 0 for the partwarden role) gives its catalog query
    # alone: parse + bind + execute.
    log_on
    from=$(log_size)
    for i in $(seq "$REPEAT"); do
        t=$(now_ns)
        DATABASE_URL=$OWNER "$BIN" --config "$CONFIG" status --json >"$TMP/status.json"
        walls+=("$(ms_since "$t")")
    done
    sleep 0.2
    to=$(log_size)
    log_off
    python3 "$MEASURE" pglog "$PGLOG" "$from" "$to" >"$TMP/status-log-s$s.json"
    mapfile -t qms < <(python3 -c '
import json, sys
by = {}
for e in json.load(open(sys.argv[1])):
    if e["catalog"]:
        by.setdefault(e["pid"], 0.0)
        by[e["pid"]] += e["ms"]
for v in by.values(): print(f"{v:.1f}")' "$TMP/status-log-s$s.json")
    [ "${#qms[@]}" = "$REPEAT" ] || { echo "found ${#qms[@]} catalog queries in the server log, expected $REPEAT" >&2; exit 1; }
    put "s${s}_status_wall_ms" "$(join "${walls[@]}")"
    put "s${s}_status_query_ms" "$(join "${qms[@]}")"
    put "s${s}_status_same_sql" "$(python3 "$MEASURE" same-sql "$TMP/status-log-s$s.json")"
    python3 - "$TMP/status.json" "$PARTS" "$s" >>"$RES" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
t = d["tables"][0]
s = sys.argv[3]
print(f"s{s}_status_partitions={t['partition_count']}")
print(f"s{s}_status_rows={t['estimated_rows']}")
print(f"s{s}_status_pending={len(t['pending_actions'])}")
PY

    # The same query text, PREPAREd in one psql session: its first execution (new
    # connection: empty relcache/catcache) and $REPEAT more (warm), and its result size.
    {
        echo "PREPARE snap(text, text) AS"
        cat "$CATALOG_SQL"
        echo ";"
        echo '\o /dev/null'
        echo '\echo label=fresh'
        echo '\timing on'
        echo "EXECUTE snap('public', 'archon_ga4_events');"
        echo '\timing off'
        echo '\echo label=warm'
        echo '\timing on'
        for i in $(seq "$REPEAT"); do echo "EXECUTE snap('public', 'archon_ga4_events');"; done
        echo '\timing off'
        echo '\o'
        echo "CREATE TEMP TABLE snap_out AS EXECUTE snap('public', 'archon_ga4_events');"
        echo "SELECT 'json_bytes=' || octet_length(json_build_object::text) FROM snap_out;"
    } >"$TMP/catalog-timing.sql"
    pw_psql "$OWNER" -At -f "$TMP/catalog-timing.sql" >"$TMP/catalog-timing-s$s.out"
    python3 "$MEASURE" psql-times "$TMP/catalog-timing-s$s.out" | put_all "s${s}_catalog_"
    grep '^json_bytes=' "$TMP/catalog-timing-s$s.out" | put_all "s${s}_catalog_"

    # (b) get_ga4_partition_stats(): $REPEAT new sessions, each one call then 2 more.
    {
        echo '\o /dev/null'
        echo '\echo label=fresh'
        echo '\timing on'
        echo 'SELECT * FROM get_ga4_partition_stats();'
        echo '\timing off'
        echo '\echo label=warm'
        echo '\timing on'
        echo 'SELECT * FROM get_ga4_partition_stats();'
        echo 'SELECT * FROM get_ga4_partition_stats();'
        echo '\timing off'
        echo '\o'
        echo "SELECT 'fn_rows=' || sum(row_count) || ' fn_partitions=' || count(*) FROM get_ga4_partition_stats();"
    } >"$TMP/fn.sql"
    : >"$TMP/fn-s$s.out"
    for i in $(seq "$REPEAT"); do pw_psql "$OWNER" -At -f "$TMP/fn.sql" >>"$TMP/fn-s$s.out"; done
    python3 "$MEASURE" psql-times "$TMP/fn-s$s.out" | put_all "s${s}_fn_"
    grep -m1 '^fn_rows=' "$TMP/fn-s$s.out" | tr ' ' '\n' | put_all "s${s}_"

    # (c) count(*): one statement per partition, as the tenant, two passes per session
    # (the first in a new session). Timed in the server between marker statements, so
    # psql's start is not counted; the round trips are.
    {
        echo "SELECT 'mark', extract(epoch FROM clock_timestamp());"
        echo "SELECT 'tenant', set_config('app.current_tenant_id', '$TENANT', false);"
        echo "SELECT 'mark', extract(epoch FROM clock_timestamp());"
        sed "s/.*/SELECT 'count', count(*) FROM &;/" "$PART_LIST"
        echo "SELECT 'mark', extract(epoch FROM clock_timestamp());"
        sed "s/.*/SELECT 'count2', count(*) FROM &;/" "$PART_LIST"
        echo "SELECT 'mark', extract(epoch FROM clock_timestamp());"
    } >"$TMP/counts.sql"
    local fresh=() warm=() sum
    for i in $(seq "$COUNT_REPEAT"); do
        pw_psql "$OWNER" -At -F ' ' -f "$TMP/counts.sql" >"$TMP/counts-s$s.out"
        read -r a b c d < <(awk '$1 == "mark" { printf "%s ", $2 } END { print "" }' "$TMP/counts-s$s.out")
        fresh+=("$(awk -v a="$b" -v b="$c" 'BEGIN { printf "%.1f", (b - a) * 1000 }')")
        warm+=("$(awk -v a="$c" -v b="$d" 'BEGIN { printf "%.1f", (b - a) * 1000 }')")
    done
    put "s${s}_cnt_fresh" "$(join "${fresh[@]}")"
    put "s${s}_cnt_warm" "$(join "${warm[@]}")"
    put "s${s}_cnt_stmts" "$(grep -c '^count ' "$TMP/counts-s$s.out")"
    put "s${s}_cnt_sum" "$(awk '$1 == "count" { s += $2 } END { print s + 0 }' "$TMP/counts-s$s.out")"
    # The same as the owner without a tenant: forced RLS hides every row.
    grep -v "'tenant'" "$TMP/counts.sql" >"$TMP/counts-owner.sql"
    pw_psql "$OWNER" -At -F ' ' -f "$TMP/counts-owner.sql" >"$TMP/counts-owner-s$s.out"
    put "s${s}_cnt_owner_sum" "$(awk '$1 == "count" { s += $2 } END { print s + 0 }' "$TMP/counts-owner-s$s.out")"

    # (d) one count(*) ... GROUP BY tableoid as the tenant: $REPEAT new sessions, each one
    # statement then 2 more.
    {
        echo "SELECT set_config('app.current_tenant_id', '$TENANT', false);"
        echo '\o /dev/null'
        echo '\echo label=fresh'
        echo '\timing on'
        echo 'SELECT tableoid::regclass, count(*) FROM archon_ga4_events GROUP BY 1;'
        echo '\timing off'
        echo '\echo label=warm'
        echo '\timing on'
        echo 'SELECT tableoid::regclass, count(*) FROM archon_ga4_events GROUP BY 1;'
        echo 'SELECT tableoid::regclass, count(*) FROM archon_ga4_events GROUP BY 1;'
        echo '\timing off'
        echo '\o'
        echo "SELECT 'grp_sum=' || sum(n) || ' grp_groups=' || count(*) FROM (SELECT tableoid, count(*) AS n FROM archon_ga4_events GROUP BY 1) s;"
    } >"$TMP/groupby.sql"
    : >"$TMP/groupby-s$s.out"
    for i in $(seq "$REPEAT"); do pw_psql "$OWNER" -At -f "$TMP/groupby.sql" >>"$TMP/groupby-s$s.out"; done
    python3 "$MEASURE" psql-times "$TMP/groupby-s$s.out" | put_all "s${s}_grp_"
    grep -m1 '^grp_sum=' "$TMP/groupby-s$s.out" | tr ' ' '\n' | put_all "s${s}_"

    # Relation locks each way holds at its end when it runs inside one transaction (as an
    # ORM session would run the per-partition statements). Locks do not depend on rows.
    [ "$s" = 1 ] || return 0
    local locks="SELECT 'locks_%s=' || count(*) FROM pg_locks WHERE pid = pg_backend_pid() AND locktype = 'relation';"
    {
        echo "BEGIN;"
        echo "PREPARE snap(text, text) AS"
        cat "$CATALOG_SQL"
        echo ";"
        echo '\o /dev/null'
        echo "EXECUTE snap('public', 'archon_ga4_events');"
        echo '\o'
        printf "$locks\n" catalog
        echo "ROLLBACK;"
        echo "BEGIN;"
        echo '\o /dev/null'
        echo "SELECT * FROM get_ga4_partition_stats();"
        echo '\o'
        printf "$locks\n" fn
        echo "ROLLBACK;"
        echo "BEGIN;"
        echo '\o /dev/null'
        echo "SELECT set_config('app.current_tenant_id', '$TENANT', true);"
        sed "s/.*/SELECT count(*) FROM &;/" "$PART_LIST"
        echo '\o'
        printf "$locks\n" cnt
        echo "ROLLBACK;"
        echo "BEGIN;"
        echo '\o /dev/null'
        echo "SELECT set_config('app.current_tenant_id', '$TENANT', true);"
        echo 'SELECT tableoid::regclass, count(*) FROM archon_ga4_events GROUP BY 1;'
        echo '\o'
        printf "$locks\n" grp
        echo "ROLLBACK;"
    } >"$TMP/locks.sql"
    pw_psql "$OWNER" -At -f "$TMP/locks.sql" | grep '^locks_' | put_all ""
}

t=$(now_ns)
add_rows 1 "$ROWS1"
put s1_load_s "$(awk -v ms="$(ms_since "$t")" 'BEGIN { printf "%.1f", ms / 1000 }')"
put s1_per_part "$ROWS1"
measure_stats 1
STAGES=1
if [ "$ROWS2" != 0 ]; then
    log "stage 2: $ROWS2 rows per partition"
    t=$(now_ns)
    add_rows $((ROWS1 + 1)) "$ROWS2"
    put s2_load_s "$(awk -v ms="$(ms_since "$t")" 'BEGIN { printf "%.1f", ms / 1000 }')"
    put s2_per_part "$ROWS2"
    measure_stats 2
    STAGES=2
fi
put stages "$STAGES"

# Where the catalog query's time goes: the same query with one part left out at a time,
# each PREPAREd, warmed up once, then run 3 times on one connection.
log "catalog query breakdown"
python3 "$MEASURE" breakdown-sql 3 >"$TMP/breakdown.sql"
pw_psql "$OWNER" -At -f "$TMP/breakdown.sql" >"$TMP/breakdown.out" 2>&1 || true
i=0
while IFS='=' read -r k v; do
    put "bd${i}_label" "$k"
    put "bd${i}_ms" "$v"
    i=$((i + 1))
done < <(python3 "$MEASURE" psql-times "$TMP/breakdown.out")
if grep -q 'breakdown skipped' "$TMP/breakdown.out"; then put bd_skipped "$(grep -m1 'breakdown skipped' "$TMP/breakdown.out")"; fi
put partition_indexes "$(pw_psql "$OWNER" -At -c "SELECT count(*) FROM pg_index i JOIN pg_inherits h ON h.inhrelid = i.indrelid WHERE h.inhparent = 'archon_ga4_events'::regclass")"

# --- the daemon -------------------------------------------------------------------------
export PARTWARDEN__SCHEDULE__STATS_INTERVAL=${STATS_INTERVAL}s
DPID=
start_daemon() {  # start_daemon URL CONFIG LOG: a new HTTP port each time; sets DPID, BASE, T_START
    local port
    port=$(pw_free_port)
    BASE=http://127.0.0.1:$port
    T_START=$(now_ns)
    DATABASE_URL=$1 PARTWARDEN__HTTP__LISTEN=127.0.0.1:$port "$BIN" --config "$2" run >"$3" 2>&1 &
    DPID=$!
    BG_PIDS+=("$DPID")
}
stop_daemon() {  # stop_daemon PREFIX: SIGTERM, exit code and time to exit
    local t rc=0
    t=$(now_ns)
    kill -TERM "$DPID"
    wait "$DPID" || rc=$?
    put "${1}term_ms" "$(ms_since "$t")"
    put "${1}term_rc" "$rc"
}
wait_log() {  # wait_log FILE PATTERN SECONDS
    local i
    for i in $(seq $(($3 * 10))); do
        strip_ansi <"$1" | grep -q -- "$2" && return 0
        sleep 0.1
    done
    echo "timed out waiting for '$2' in $1" >&2
    return 1
}
# idle_window PREFIX SECONDS DBURL: RSS, CPU of the daemon and of its backends, the
# catalog queries the daemon ran in the window (server log).
idle_window() {
    local p=$1 secs=$2 url=$3 from to
    python3 "$MEASURE" rss "$DPID" | put_all "${p}warm_"
    from=$(log_size)
    python3 "$MEASURE" cpu "$DPID" "$(getconf CLK_TCK)" "$PSQL" "$url" "$secs" | put_all "$p"
    to=$(log_size)
    python3 "$MEASURE" rss "$DPID" | put_all "${p}end_"
    python3 "$MEASURE" pglog "$PGLOG" "$from" "$to" >"$TMP/${p}window-log.json"
    python3 - "$TMP/${p}window-log.json" "$p" >>"$RES" <<'PY'
import json, sys
e = json.load(open(sys.argv[1]))
p = sys.argv[2]
cat = [x["ms"] for x in e if x["catalog"] and x["phase"] in ("execute", "statement")]
other = [x for x in e if not x["catalog"] and x["phase"] in ("execute", "statement")]
print(f"{p}refreshes={len(cat)}")
print(f"{p}refresh_query_ms=" + ",".join(f"{x:.1f}" for x in cat))
print(f"{p}other_statements={len(other)}")
print(f"{p}other_statements_ms={sum(x['ms'] for x in other):.1f}")
PY
}

log "daemon on $PARTS partitions (stats_interval ${STATS_INTERVAL}s)"
DATABASE_URL=$OWNER "$BIN" --config "$CONFIG" status --json >"$TMP/status-before-daemon.json"
put d_pending_before "$(python3 -c 'import json, sys; print(len(json.load(open(sys.argv[1]))["tables"][0]["pending_actions"]))' "$TMP/status-before-daemon.json")"
log_on
start_daemon "$OWNER" "$CONFIG" "$TMP/daemon.log"
python3 "$MEASURE" ready "$BASE/readyz" "$T_START" 30 | put_all d_ready_
wait_log "$TMP/daemon.log" "maintenance done" 120
put d_start_actions "$(strip_ansi <"$TMP/daemon.log" | grep -m1 'maintenance done' | sed -E 's/.*actions=([0-9]+).*/\1/')"
sleep "$WARMUP"
put warmup "$WARMUP"
log "idle window: ${IDLE}s"
idle_window d_ "$IDLE" "$ADMIN"
python3 "$MEASURE" http "$BASE/metrics" "$GETS" | put_all d_metrics_
python3 "$MEASURE" fetch "$BASE/metrics" "$TMP/metrics.out"
python3 "$MEASURE" fetch "$BASE/status" "$TMP/status-endpoint.json"
put d_status_bytes "$(stat -c %s "$TMP/status-endpoint.json" 2>/dev/null || echo 0)"

# Database outages under the running daemon: stop the cluster, wait until /readyz says
# 503, keep it down D s more, start it again; then the first moment pg_isready succeeds
# and the first /readyz 200.
i=0
for d in $OUTAGES; do
    log "outage: stop, wait for /readyz 503, ${d}s more, start"
    pg_down
    python3 "$MEASURE" wait-code "$BASE/readyz" 503 $((STATS_INTERVAL + 30)) | put_all "o${i}_noticed_"
    t=$(now_ns)
    if [ "$i" = 0 ]; then
        python3 "$MEASURE" http "$BASE/metrics" 50 | put_all o_metrics_
    fi
    while [ "$(ms_since "$t")" -lt $((d * 1000)) ]; do sleep 0.05; done
    put "o${i}_down_s" "$d"
    t=$(now_ns)
    pg_up &
    PG_UP_PID=$!
    python3 "$MEASURE" back "$PW_PG_BIN/pg_isready" 127.0.0.1 "$PORT" "$BASE/readyz" "$t" 60 | put_all "o${i}_"
    wait "$PG_UP_PID"
    PG_UP_PID=
    i=$((i + 1))
done
put outages "$i"
log "SIGTERM"
stop_daemon d_

# Started while the database is down: the database comes up 3 s later.
log "daemon started with the database down"
pg_down
start_daemon "$OWNER" "$CONFIG" "$TMP/daemon-cold.log"
sleep 3
t=$(now_ns)
pg_up &
PG_UP_PID=$!
python3 "$MEASURE" back "$PW_PG_BIN/pg_isready" 127.0.0.1 "$PORT" "$BASE/readyz" "$t" 60 | put_all c_
wait "$PG_UP_PID"
PG_UP_PID=
stop_daemon c_
log_off

# --- reference: the same daemon on a freshly migrated database ----------------------------
log "reference: daemon on a freshly migrated database (default config)"
REF_OWNER=postgres://partwarden@127.0.0.1:$PORT/ref
pw_psql "$PW_PG_ADMIN_URL" -c "CREATE DATABASE ref OWNER partwarden"
pw_psql "postgres://postgres@127.0.0.1:$PORT/ref" -c "CREATE EXTENSION IF NOT EXISTS vector"
DATABASE_URL=$REF_OWNER "$BIN" --config config/partwarden.toml migrate >"$TMP/migrate-ref.log" 2>&1
put r_parts "$(pw_psql "$REF_OWNER" -At -c "SELECT count(*) FROM pg_inherits WHERE inhparent = 'archon_ga4_events'::regclass")"
pw_psql "postgres://postgres@127.0.0.1:$PORT/ref" -c "ALTER ROLE partwarden IN DATABASE ref SET log_min_duration_statement = 0"
start_daemon "$REF_OWNER" config/partwarden.toml "$TMP/daemon-ref.log"
python3 "$MEASURE" ready "$BASE/readyz" "$T_START" 30 | put_all r_ready_
wait_log "$TMP/daemon-ref.log" "maintenance done" 60
sleep "$WARMUP"
idle_window r_ "$REF_IDLE" "postgres://postgres@127.0.0.1:$PORT/ref"
python3 "$MEASURE" http "$BASE/metrics" "$GETS" | put_all r_metrics_
stop_daemon r_

echo
log "results"
echo
python3 bench/catalog/report.py "$RES"
