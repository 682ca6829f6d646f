#!/usr/bin/env bash
# bench/online's lock scenario on a Citus cluster: what one maintenance run does to an
# application insert load sent through the Citus coordinator. What it measures and the
# results: bench/README.md, "citus/".
#
# It builds Citus from CITUS_SRC into a copy of the embedded PostgreSQL install (cached
# under target/, scripts/citus.sh), starts its own coordinator and two workers on free
# loopback ports (removed on exit, even on failure or Ctrl-C), and for each
#   method:    partwarden  `partwarden maintain`, documented default config (default
#                          partition on)
#              nodefault   `partwarden maintain` with default_partition = false (the
#                          migrations' default partition dropped first)
#              citus       Citus's own functions, as pg_cron would call them (two jobs, the
#                          owner role, no lock_timeout):
#                            SELECT create_time_partitions(table_name := 'archon_ga4_events',
#                                   partition_interval := '1 month', end_at := <end>)
#                            CALL drop_old_time_partitions('archon_ga4_events',
#                                   older_than := now() - interval '24 months')
#                          (a procedure: CALL, not SELECT). It keeps the default partition:
#                          create_time_partitions does not refuse it.
#              none        no maintenance: the latency of the same load and reader alone
#   condition: none  |  month: a transaction of app_user reading the current month, open
#              HOLD seconds during the maintenance (bench/online's "month" reader)
# it makes a fresh database on all three nodes (pw_citus_database), applies `partwarden
# migrate` as the owner role partwarden on the coordinator, distributes the two tables by
# tenant_id (primary keys widened to hold tenant_id), arranges that one maintenance run
# must create one partition (month +3, the last of the premake window) and expire one
# (now-25 months, 100 rows) -- BENCH_WORK=full: 3 and 12 -- then runs pgbench inserts
# through the coordinator as app_user, the reader at +2 s, the maintenance at +3 s, and
# checks on the coordinator what was created and expired (pg_inherits, before and after),
# the Citus metadata (pg_dist_shard, leftover metadata, shard tables on the workers) and the
# row-level security of the new partitions. pg_locks is sampled on every node (10 Hz), and
# the ERROR/FATAL lines each server logged during the scenario are counted. A partwarden run
# that did not complete is followed by a second run (after the reader, if any), as in
# bench/online. Prints one table (bench/citus/report.py, on bench/online/report.py's
# statistics) and a timeline per scenario. About 3 minutes with the defaults on 2 cores.
#
# The application's tenant: through Citus, set_config('app.current_tenant_id', ..., true)
# stays on the coordinator, and the workers, where the shards' forced RLS is checked, see no
# tenant (the insert fails: "new row violates row-level security policy for table
# archon_ga4_events_102008"). The load and the reader therefore use
# SET LOCAL app.current_tenant_id = '<uuid>' with citus.propagate_set_commands = 'local'
# (set on the database), which Citus forwards to the workers.
#
# Knobs (environment):
#   BENCH_BIN            a partwarden binary (default: `cargo build`, target/debug/partwarden;
#                        the DDL time is PostgreSQL's, so a debug build is fine)
#   CITUS_SRC            Citus source, tarball or directory (default
#                        ../shared/vendor/citus-15.0devel-a3d5708.tar.gz next to the repository)
#   BENCH_SCENARIOS      default "none:month partwarden:none partwarden:month nodefault:none
#                        nodefault:month citus:none citus:month"
#   BENCH_RATE           inserts/s offered (400), by 4 pgbench clients, 8 tenants
#   BENCH_HOLD           seconds the reader stays open (10)
#   BENCH_LOAD_SHORT / BENCH_LOAD_LONG   load seconds without / with the reader (12 / 25)
#   BENCH_SHARDS         citus.shard_count of the distributed tables (4)
#   BENCH_WORK           one (1 to create, 1 to expire; default) | full (3 and 12)
#   BENCH_CITUS_END_AT   aligned: end_at = the UTC month start 4 months ahead (creates the
#                        premake window exactly, what partwarden's premake = 3 covers;
#                        default) | now: end_at = now() + interval '4 months' (also
#                        creates month +4)
#   BENCH_DISTRIBUTE     auto (default): `partwarden migrate --citus [--shard-count N]` when
#                        the binary has --citus, else SQL: SET citus.shard_count; the primary
#                        keys widened to (tenant_id, id, event_timestamp) and (tenant_id, id);
#                        create_distributed_table(..., 'tenant_id'), the summaries colocated
#                        | sql | migrate
#   BENCH_LOCK_TIMEOUT / BENCH_DDL_ATTEMPTS / BENCH_DDL_BACKOFF   partwarden's (1s / 3 / 1s)
#   BENCH_KEEP_LOGS=DIR  copy every log there before the cluster is removed
#   BENCH_OUT=FILE       also write the report there
set -euo pipefail
cd "$(dirname "$0")/../.."
REPO=$PWD
# shellcheck source=scripts/pg.sh
. scripts/pg.sh
# shellcheck source=scripts/citus.sh
. scripts/citus.sh
# shellcheck source=bench/online/lib.sh
. bench/online/lib.sh

RATE=${BENCH_RATE:-400}
HOLD=${BENCH_HOLD:-10}
LOAD_SHORT=${BENCH_LOAD_SHORT:-12}
LOAD_LONG=${BENCH_LOAD_LONG:-25}
SHARDS=${BENCH_SHARDS:-4}
LOCK_TIMEOUT=${BENCH_LOCK_TIMEOUT:-1s}
DDL_ATTEMPTS=${BENCH_DDL_ATTEMPTS:-3}
DDL_BACKOFF=${BENCH_DDL_BACKOFF:-1s}
SCENARIOS=${BENCH_SCENARIOS:-none:month partwarden:none partwarden:month nodefault:none nodefault:month citus:none citus:month}
WORK=${BENCH_WORK:-one}
END_AT=${BENCH_CITUS_END_AT:-aligned}
DISTRIBUTE=${BENCH_DISTRIBUTE:-auto}
CITUS_SRC=${CITUS_SRC:-$REPO/../shared/vendor/citus-15.0devel-a3d5708.tar.gz}
bo_partwarden_bin
case $WORK in
    full) N_CREATE=3; N_EXPIRE=12 ;;
    one) N_CREATE=1; N_EXPIRE=1 ;;
    *) echo "BENCH_WORK must be one or full" >&2; exit 2 ;;
esac
case $END_AT in aligned | now) ;; *) echo "BENCH_CITUS_END_AT must be aligned or now" >&2; exit 2 ;; esac
case $DISTRIBUTE in auto | sql | migrate) ;; *) echo "BENCH_DISTRIBUTE must be auto, sql or migrate" >&2; exit 2 ;; esac
CLIENTS=4
THREADS=2
# 8 tenants, ...000010 to ...000017: with 4 shards, two on each shard.
TENANT_PREFIX=7d1c0a3e-5b1f-4c2a-9e3d-0000000000
TENANT_LO=10
TENANT_HI=17
TENANT=${TENANT_PREFIX}$TENANT_LO # the reader's
READER_AT=2 # seconds after the load starts
MAINT_AT=3

now() { date +%s.%N; }
secs() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", b - a }'; }
log() { printf '== %s\n' "$*"; }

if [ "$DISTRIBUTE" = auto ]; then
    if "$BIN" migrate --help 2>/dev/null | grep -q -- '--citus'; then DISTRIBUTE=migrate; else DISTRIBUTE=sql; fi
fi

pw_pg_install 2> >(grep --line-buffered -v -e RuntimeDirWarning -e user_runtime_dir >&2)
pw_citus_install "$CITUS_SRC"

TMP=$(mktemp -d "${TMPDIR:-/tmp}/partwarden-bench-citus.XXXXXX")
chmod 0755 "$TMP"
BG_PIDS=()
keep_logs() {
    local n
    for n in 0 1 2; do cp "$TMP/citus/node$n/postgres.log" "$BENCH_KEEP_LOGS/node$n-postgres.log" 2>/dev/null || true; done
    cp -r "$TMP"/sc_* "$TMP"/*.toml "$TMP"/*.sql "$TMP"/report.md "$BENCH_KEEP_LOGS"/ 2>/dev/null
}
# bench/online's cleanup, after the background processes and the three nodes are stopped
# (its pw_pg_stop knows one node only). Without errexit: a failing step must not cut the
# cleanup short, and bo_cleanup exits with the script's code.
cleanup() {
    local rc=$? p
    set +e
    for p in "${BG_PIDS[@]}"; do kill "$p" 2>/dev/null; done
    pw_citus_stop
    (exit "$rc")
    bo_cleanup
}
trap cleanup EXIT
trap 'exit 130' INT TERM

pw_citus_start "$TMP/citus" 2> >(grep --line-buffered -v -e RuntimeDirWarning -e user_runtime_dir >&2)
COORD=${PW_CITUS_COORDINATOR_URL%/*} # postgres://postgres@127.0.0.1:PORT
hp=$(pw_url_hostport "$PW_CITUS_COORDINATOR_URL")
PORT=${hp##*:}
read -r -a WORKERS <<<"$PW_CITUS_WORKER_URLS"
PGBENCH=$PW_PG_BIN/pgbench
BIN_VERSION=$("$BIN" --version)
BIN_INFO="$BIN ($BIN_VERSION, built $(date -u -r "$BIN" '+%Y-%m-%d %H:%M UTC'), sha256 $(sha256sum "$BIN" | cut -c1-12))"
log "$("$PW_PG_BIN/postgres" --version), Citus $PW_CITUS_VERSION (from $(basename "$CITUS_SRC")), pgbench $("$PGBENCH" --version | awk '{print $3}'), $(nproc) CPU(s), $(uname -sr)"
log "coordinator 127.0.0.1:$PORT, workers $(for w in "${WORKERS[@]}"; do printf '%s ' "$(pw_url_hostport "$w")"; done)"
log "partwarden: $BIN_INFO"
log "tables distributed by: $([ "$DISTRIBUTE" = migrate ] && echo 'partwarden migrate --citus' || echo 'SQL (create_distributed_table)'), citus.shard_count $SHARDS"

# As bench/online: the documented default configuration, max_expire_per_run 12 (so that
# BENCH_WORK=full is one run), and the same without a default partition.
CONFIG=$TMP/partwarden.toml
sed 's/^max_expire_per_run = 3$/max_expire_per_run = 12/' config/partwarden.toml >"$CONFIG"
grep -q '^max_expire_per_run = 12$' "$CONFIG" || { echo "could not set max_expire_per_run in $CONFIG" >&2; exit 1; }
CONFIG_NODEFAULT=$TMP/partwarden-nodefault.toml
sed 's/^default_partition = true$/default_partition = false/' "$CONFIG" >"$CONFIG_NODEFAULT"
grep -q '^default_partition = false$' "$CONFIG_NODEFAULT" || { echo "could not set default_partition in $CONFIG_NODEFAULT" >&2; exit 1; }
export PARTWARDEN__DATABASE__LOCK_TIMEOUT=$LOCK_TIMEOUT
export PARTWARDEN__DATABASE__DDL_ATTEMPTS=$DDL_ATTEMPTS
export PARTWARDEN__DATABASE__DDL_BACKOFF=$DDL_BACKOFF
DATABASE_URL=postgres://unused@127.0.0.1/unused "$BIN" check-config --offline "$CONFIG" >/dev/null
DATABASE_URL=postgres://unused@127.0.0.1/unused "$BIN" check-config --offline "$CONFIG_NODEFAULT" >/dev/null
LOCK_TIMEOUT_MS=$(pw_psql "$PW_CITUS_COORDINATOR_URL" -At -c "SELECT round(extract(epoch FROM '$LOCK_TIMEOUT'::interval) * 1000)")

# The application's insert: the tenant set for the transaction (SET LOCAL, propagated to
# the workers; see the top), event_timestamp = now(), one of 8 tenants at random.
cat >"$TMP/insert.sql" <<SQL
\set r random(1, 1000000000)
\set t random($TENANT_LO, $TENANT_HI)
BEGIN;
SET LOCAL app.current_tenant_id = '${TENANT_PREFIX}:t';
INSERT INTO archon_ga4_events (tenant_id, property_id, event_name, event_timestamp, page_path, page_title, user_pseudo_id, session_id, metrics, dimensions) VALUES ('${TENANT_PREFIX}:t', 'bench-load', 'page_view', now(), '/page/' || :r, 'Bench page', 'user-' || (:r % 1000), 'session-' || (:r % 10000), '{"engagement_time_msec": 1200}', '{"device": "desktop", "country": "DE"}');
COMMIT;
SQL
# The reader: bench/online's "month" reader (a constant range of the current UTC month),
# one tenant.
MONTH_FROM=$(date -u +%Y-%m-01)
MONTH_TO=$(date -u -d "$MONTH_FROM +1 month" +%Y-%m-01)
bo_reader_sql "SET LOCAL app.current_tenant_id = '$TENANT';" \
    "SELECT count(*) AS rows_seen_by_reader FROM archon_ga4_events WHERE event_timestamp >= '$MONTH_FROM 00:00:00+00' AND event_timestamp < '$MONTH_TO 00:00:00+00';" \
    "$HOLD" >"$TMP/reader_month.sql"

# UTC month start k months from now, as a SQL expression.
month_sql() { echo "(date_trunc('month', now() AT TIME ZONE 'UTC') + make_interval(months => $1)) AT TIME ZONE 'UTC'"; }

# setup_db DB DIR [nodefault]: a fresh database on the three nodes, migrated, set up so that
# one run must create N_CREATE partitions (the last of the premake window) and expire
# N_EXPIRE (now-25 .., 100 rows each over the 8 tenants), distributed.
setup_db() {
    local db=$1 dir=$2 variant=${3:-}
    local admin=$COORD/$db owner=${COORD/postgres@/partwarden@}/$db
    pw_citus_database "$db"
    # For every new session: the tenant of SET LOCAL reaches the workers; the shard count.
    pw_psql "$admin" -c "ALTER DATABASE $db SET citus.propagate_set_commands = 'local'" \
        -c "ALTER DATABASE $db SET citus.shard_count = $SHARDS"
    local margs=()
    if [ "$DISTRIBUTE" = migrate ]; then
        margs=(--citus)
        "$BIN" migrate --help | grep -q -- '--shard-count' && margs+=(--shard-count "$SHARDS")
    fi
    DATABASE_URL=$owner "$BIN" --config "$CONFIG" migrate "${margs[@]}" >"$dir/migrate.log" 2>&1 \
        || { cat "$dir/migrate.log" >&2; echo "partwarden migrate ${margs[*]} failed" >&2; exit 1; }
    [ "$variant" != nodefault ] || pw_psql "$owner" -c "DROP TABLE archon_ga4_events_default"
    local first_future=1 old_from=25 old_to=36
    [ "$WORK" = one ] && first_future=3 && old_to=25
    # The partitions to create again, the old ones to expire (bench/online's setup; before
    # the distribution unless migrate --citus distributed already: both work).
    pw_psql "$owner" >"$dir/setup.log" <<SQL
DO \$\$
DECLARE r record; n int := 0; v_name text;
BEGIN
    FOR r IN SELECT c.oid::regclass AS rel
               FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
               CROSS JOIN LATERAL partwarden_range_bounds(c.oid) b
              WHERE i.inhparent = 'archon_ga4_events'::regclass AND b.range_start >= $(month_sql "$first_future")
    LOOP
        EXECUTE format('DROP TABLE %s', r.rel);
        n := n + 1;
    END LOOP;
    IF n <> $N_CREATE THEN RAISE EXCEPTION 'expected $N_CREATE future partitions to drop, found %', n; END IF;
    FOR k IN $old_from..$old_to LOOP
        v_name := 'archon_ga4_events_' || to_char($(month_sql "-k"), 'YYYY_MM');
        EXECUTE format('CREATE TABLE %I PARTITION OF archon_ga4_events FOR VALUES FROM (%L) TO (%L)', v_name,
                       to_char($(month_sql "-k") AT TIME ZONE 'UTC', 'YYYY-MM-DD') || ' 00:00:00+00',
                       to_char($(month_sql "1 - k") AT TIME ZONE 'UTC', 'YYYY-MM-DD') || ' 00:00:00+00');
        PERFORM partwarden_sync_partition_rls('archon_ga4_events', v_name::regclass);
    END LOOP;
END \$\$;
SQL
    if pw_psql "$admin" -At -c "SELECT count(*) FROM pg_dist_partition WHERE logicalrelid = 'archon_ga4_events'::regclass" | grep -qx 0; then
        [ "$DISTRIBUTE" = sql ] || { echo "partwarden migrate --citus left archon_ga4_events undistributed" >&2; exit 1; }
        pw_psql "$owner" >>"$dir/setup.log" <<'SQL'
ALTER TABLE archon_ga4_events DROP CONSTRAINT archon_ga4_events_pkey, ADD PRIMARY KEY (tenant_id, id, event_timestamp);
SELECT create_distributed_table('archon_ga4_events', 'tenant_id');
ALTER TABLE archon_ga4_daily_summaries DROP CONSTRAINT archon_ga4_daily_summaries_pkey, ADD PRIMARY KEY (tenant_id, id);
SELECT create_distributed_table('archon_ga4_daily_summaries', 'tenant_id', colocate_with => 'archon_ga4_events');
SQL
    fi
    # The old rows, as the superuser (no RLS on any node), spread over the tenants.
    pw_psql "$admin" >>"$dir/setup.log" <<SQL
INSERT INTO archon_ga4_events (tenant_id, property_id, event_name, event_timestamp)
SELECT ('$TENANT_PREFIX' || ($TENANT_LO + g % ($TENANT_HI - $TENANT_LO + 1)))::uuid, 'bench-old', 'page_view',
       $(month_sql "-k") + g * interval '1 minute'
  FROM generate_series($old_from, $old_to) k, generate_series(1, 100) g;
SQL
    pw_psql "$owner" >>"$dir/setup.log" <<'SQL'
GRANT SELECT, INSERT ON archon_ga4_events TO app_user;
GRANT USAGE ON SEQUENCE archon_ga4_events_id_seq TO app_user;
ANALYZE archon_ga4_events;
SQL
    # What the run must do: the month starts to cover, the names to expire.
    pw_psql "$owner" -At -c "SELECT string_agg(quote_literal(to_char($(month_sql k) AT TIME ZONE 'UTC', 'YYYY-MM-DD')), ',' ORDER BY k) FROM generate_series($first_future, 3) k" >"$dir/expect_created"
    pw_psql "$owner" -At -c "SELECT string_agg(quote_literal('archon_ga4_events_' || to_char($(month_sql "-k"), 'YYYY_MM')), ',' ORDER BY k) FROM generate_series($old_from, $old_to) k" >"$dir/expect_expired"
}

# The partitions of archon_ga4_events on the coordinator (pg_inherits): name|range start
# (UTC date, or DEFAULT)|detach pending.
children() {
    pw_psql "$COORD/$1" -At -F '|' -c "
        SELECT c.relname, coalesce(to_char(b.range_start AT TIME ZONE 'UTC', 'YYYY-MM-DD'), 'DEFAULT'), i.inhdetachpending
          FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid LEFT JOIN LATERAL partwarden_range_bounds(c.oid) b ON true
         WHERE i.inhparent = 'archon_ga4_events'::regclass ORDER BY 2, 1"
}

# "C E P": how many of the month starts to cover have an attached partition (by range: Citus
# names its partitions <table>_pYYYY_MM), how many of the old ones are gone, how many are
# "detach pending".
verify() {
    local db=$1 dir=$2
    pw_psql "$COORD/$db" -At -F ' ' -c "
        WITH parts AS (SELECT c.relname, i.inhdetachpending, to_char(b.range_start AT TIME ZONE 'UTC', 'YYYY-MM-DD') AS start
                         FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid LEFT JOIN LATERAL partwarden_range_bounds(c.oid) b ON true
                        WHERE i.inhparent = 'archon_ga4_events'::regclass)
        SELECT (SELECT count(*) FROM unnest(ARRAY[$(cat "$dir/expect_created")]) s WHERE EXISTS (SELECT 1 FROM parts WHERE start = s AND NOT inhdetachpending)),
               (SELECT count(*) FROM unnest(ARRAY[$(cat "$dir/expect_expired")]) n WHERE to_regclass(n) IS NULL),
               (SELECT count(*) FROM parts WHERE inhdetachpending)"
}

# shard tables on the workers whose name is one of NAMES (space separated) + _<shard id>
worker_shards() {
    local db=$1 names=$2 w n=0 c
    [ -n "$names" ] || { echo 0; return; }
    local re="^(${names// /|})_[0-9]+\$"
    for w in "${WORKERS[@]}"; do
        c=$(pw_psql "${w%/*}/$db" -At -c "SET citus.override_table_visibility = off" \
            -c "SELECT count(*) FROM pg_class WHERE relkind IN ('r', 'p') AND relname ~ '$re'")
        n=$((n + c))
    done
    echo "$n"
}

# What the run changed, from the before/after pg_inherits lists, and the Citus side of it:
# for each new partition its shards (pg_dist_shard, and shard tables on the workers) and its
# row-level security (forced with the parent's policy, on the coordinator); for the expired
# ones, shard tables left on the workers; metadata left without a table.
catalog_report() {
    local db=$1 dir=$2 created expired
    created=$(comm -13 <(cut -d'|' -f1 "$dir/children.before" | sort) <(cut -d'|' -f1 "$dir/children.after" | sort) | tr '\n' ' ' | sed 's/ $//')
    expired=$(comm -23 <(cut -d'|' -f1 "$dir/children.before" | sort) <(cut -d'|' -f1 "$dir/children.after" | sort) | tr '\n' ' ' | sed 's/ $//')
    local c_list="" e_list="" c_parts="" n info
    for n in $created; do
        info=$(pw_psql "$COORD/$db" -At -F ' ' -c "
            SELECT (SELECT count(*) FROM pg_dist_shard s WHERE s.logicalrelid = c.oid),
                   CASE WHEN c.relrowsecurity AND c.relforcerowsecurity AND EXISTS (SELECT 1 FROM pg_policy p WHERE p.polrelid = c.oid)
                        THEN 'forced' ELSE 'none' END
              FROM pg_class c WHERE c.oid = '$n'::regclass")
        c_list+="${c_list:+, }$n (${info% *} shards, RLS ${info#* })"
        c_parts+="${c_parts:+ }$n:${info% *}:${info#* }"
    done
    for n in $expired; do e_list+="${e_list:+, }$n"; done
    local orphans cleanup
    orphans=$(pw_psql "$COORD/$db" -At -c "
        SELECT (SELECT count(*) FROM pg_dist_partition p WHERE NOT EXISTS (SELECT 1 FROM pg_class c WHERE c.oid = p.logicalrelid))
             + (SELECT count(*) FROM pg_dist_shard s WHERE NOT EXISTS (SELECT 1 FROM pg_class c WHERE c.oid = s.logicalrelid))")
    cleanup=$(pw_psql "$COORD/$db" -At -c "SELECT count(*) FROM pg_dist_cleanup")
    {
        echo "created=${c_list:-none}"
        echo "expired=${e_list:-none}"
        echo "created_parts=$c_parts"
        echo "expired_parts=$expired"
        echo "created_worker_shards=$(worker_shards "$db" "$created")"
        echo "expired_worker_shards_left=$(worker_shards "$db" "$expired")"
        echo "citus_orphan_metadata=$orphans"
        echo "citus_pending_cleanup=$cleanup"
    } >>"$dir/meta"
    echo "   catalog (coordinator pg_inherits): created ${c_list:-none}; expired ${e_list:-none};" \
        "shard tables on the workers: $(worker_shards "$db" "$created") of the new, $(worker_shards "$db" "$expired") of the expired left;" \
        "metadata without a table: $orphans; pg_dist_cleanup: $cleanup"
}

# The servers' logs: their sizes now (one per node), and what they said since (ERROR, FATAL
# and PANIC messages, counted, per node): Citus's own errors (refusals, distributed
# deadlocks) and the lock timeouts, as the servers saw them.
log_marks() {
    local n
    for n in 0 1 2; do stat -c %s "$TMP/citus/node$n/postgres.log"; done | tr '\n' ' '
}
server_errors() {
    local out=$1 n=0 mark node
    shift
    : >"$out"
    for mark in "$@"; do
        node=coordinator
        [ "$n" = 0 ] || node="worker $n"
        tail -c +"$((mark + 1))" "$TMP/citus/node$n/postgres.log" |
            sed -n -E 's/^.*(ERROR|FATAL|PANIC):  +(.*)$/\1: \2/p' | sort | uniq -c |
            sed -E "s/^ *([0-9]+) /$node|\1|/" >>"$out"
        n=$((n + 1))
    done
}

# partwarden prints one line per action: "  ok ..." or "  FAILED ...".
pw_summary() {
    local out=$1 ok failed gaveup
    ok=$(grep -c '^  ok ' "$out" || true)
    failed=$(grep -c '^  FAILED ' "$out" || true)
    gaveup=$(grep '^  FAILED ' "$out" | grep -c 'gave up after' || true)
    if [ "$failed" = 0 ]; then
        echo "all $ok actions ok"
    elif [ "$failed" = "$gaveup" ]; then
        echo "$ok actions ok, $failed gave up"
    else
        echo "$ok actions ok, $failed failed ($gaveup gave up)"
    fi
}

CITUS_END_AT="$(month_sql 4)"
[ "$END_AT" = now ] && CITUS_END_AT="now() + interval '4 months'"
CITUS_CREATE="SELECT create_time_partitions(table_name := 'archon_ga4_events', partition_interval := '1 month', end_at := $CITUS_END_AT)"
CITUS_DROP="CALL drop_old_time_partitions('archon_ga4_events', older_than := now() - interval '24 months')"

maintain() {
    local method=$1 owner=$2 out=$3 err=$4
    case $method in
        partwarden) DATABASE_URL=$owner "$BIN" --config "$CONFIG" maintain >"$out" 2>"$err" ;;
        nodefault) DATABASE_URL=$owner "$BIN" --config "$CONFIG_NODEFAULT" maintain >"$out" 2>"$err" ;;
        # Two pg_cron jobs, one after the other (each -c its own transaction).
        citus) pw_psql "$owner" -At -c "$CITUS_CREATE" -c "$CITUS_DROP" >"$out" 2>"$err" ;;
        none) : >"$out" ;;
    esac
}

run_scenario() {
    local method=$1 long=$2
    local name=${method}_${long}
    local db=bench_$name dir=$TMP/sc_$name
    local cond load mlabel
    mkdir -p "$dir" "$dir/w1" "$dir/w2"
    case $long in
        none) cond="none"; load=$LOAD_SHORT ;;
        month) cond="long tx reading the current month (${HOLD} s)"; load=$LOAD_LONG ;;
        *) echo "unknown condition $long (none or month)" >&2; exit 2 ;;
    esac
    case $method in
        partwarden) mlabel="partwarden maintain" ;;
        nodefault) mlabel="partwarden maintain, default_partition = false" ;;
        citus) mlabel="Citus create_time_partitions + drop_old_time_partitions" ;;
        none) mlabel="no maintenance (baseline)" ;;
        *) echo "unknown method $method (partwarden, nodefault, citus or none)" >&2; exit 2 ;;
    esac
    log "scenario: $mlabel / $cond"
    local t0 variant="" marks
    [ "$method" = nodefault ] && variant=nodefault
    t0=$(now)
    setup_db "$db" "$dir" "$variant"
    local c e p
    read -r c e p < <(verify "$db" "$dir")
    [ "$c $e $p" = "0 0 0" ] || { echo "setup is wrong: created=$c expired=$e pending=$p" >&2; exit 1; }
    children "$db" >"$dir/children.before"
    echo "   setup: $(secs "$t0" "$(now)") s; partitions: $(cut -d'|' -f1 "$dir/children.before" | tr '\n' ' ')"
    marks=$(log_marks)

    local admin=$COORD/$db
    local owner=${COORD/postgres@/partwarden@}/$db
    local app=${COORD/postgres@/app_user@}/$db
    printf '%s\n' "method=$mlabel" "condition=$cond" "rate=$RATE" "load_seconds=$load" >"$dir/meta"
    # Lock waits on every node; the coordinator's sampler last (bo_load_end stops it).
    local wpids=() i=1 w
    for w in "${WORKERS[@]}"; do
        bo_lock_sampler "${w%/*}/$db" "$dir/w$i/lockwaits"
        wpids+=("$BO_SAMPLER_PID")
        i=$((i + 1))
    done
    bo_lock_sampler "$admin" "$dir/lockwaits"
    bo_load "$dir" "$PORT" app_user "$db" "$RATE" "$load" "$TMP/insert.sql" "$CLIENTS" "$THREADS"
    sleep "$READER_AT"
    if [ "$long" != none ]; then
        bo_reader "$dir" "$admin" "$app" "$TMP/reader_$long.sql"
        # Its side on the workers: the shard locks of its open transaction.
        i=1
        for w in "${WORKERS[@]}"; do
            echo "   on worker $i: $(pw_psql "${w%/*}/$db" -At -c "SET citus.override_table_visibility = off" -c "
                SELECT coalesce(string_agg(DISTINCT c.relname || ' ' || l.mode, ', '), 'nothing')
                  FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid JOIN pg_class c ON c.oid = l.relation
                 WHERE a.usename = 'app_user' AND a.state LIKE 'idle in transaction%' AND c.relkind IN ('r', 'p')")"
            i=$((i + 1))
        done
    fi
    sleep $((MAINT_AT - READER_AT))

    local rc=0 t1 t2
    t1=$(now)
    maintain "$method" "$owner" "$dir/maint.out" "$dir/maint.err" || rc=$?
    t2=$(now)
    printf '%s\n' "maint_start=$t1" "maint_end=$t2" "maint_wall=$(secs "$t1" "$t2")" "maint_rc=$rc" >>"$dir/meta"
    read -r c e p < <(verify "$db" "$dir")
    local result complete=no
    [ "$c" = "$N_CREATE" ] && [ "$e" = "$N_EXPIRE" ] && [ "$p" = 0 ] && [ "$rc" = 0 ] && complete=yes
    case $method in
        citus) result="created $c, expired $e (exit $rc)" ;;
        none) result="none (created $c, expired $e)"; complete=yes ;;
        *) result="created $c, expired $e ($(pw_summary "$dir/maint.out"); exit $rc)" ;;
    esac
    echo "   maintenance: wall $(secs "$t1" "$t2") s; catalog: created $c/$N_CREATE, expired $e/$N_EXPIRE, detach pending $p; exit $rc -> completed: $complete"

    [ "$long" = none ] || bo_reader_end "$dir"
    if [ "$method" = partwarden ] || [ "$method" = nodefault ] && [ "$complete" = no ]; then
        # What gave up is for the next run: once, after the reader ended.
        local rc2=0 t3 t4 complete2=no
        t3=$(now)
        maintain "$method" "$owner" "$dir/rerun.out" "$dir/rerun.err" || rc2=$?
        t4=$(now)
        read -r c e p < <(verify "$db" "$dir")
        [ "$c" = "$N_CREATE" ] && [ "$e" = "$N_EXPIRE" ] && [ "$p" = 0 ] && [ "$rc2" = 0 ] && complete2=yes
        echo "   run 2$([ "$long" = none ] || echo ', after the reader ended'): wall $(secs "$t3" "$t4") s; catalog: created $c/$N_CREATE, expired $e/$N_EXPIRE, detach pending $p; exit $rc2 -> completed: $complete2"
        result="run 1: $result. Run 2$([ "$long" = none ] || echo ' after the reader'): $(pw_summary "$dir/rerun.out"); exit $rc2; now created $c, expired $e"
        printf '%s\n' "rerun_start=$t3" "rerun_end=$t4" "rerun_wall=$(secs "$t3" "$t4")" >>"$dir/meta"
    fi
    echo "result=$result" >>"$dir/meta"

    bo_load_end "$dir"
    for w in "${wpids[@]}"; do kill "$w" 2>/dev/null || true; wait "$w" 2>/dev/null || true; done
    [ "$BO_LOAD_RC" = 0 ] || echo "   pgbench exited $BO_LOAD_RC"
    # shellcheck disable=SC2086  # one mark per node
    server_errors "$dir/server_errors" $marks
    children "$db" >"$dir/children.after"
    catalog_report "$db" "$dir"
    # Every logged insert is in the table (superuser: no RLS), and where.
    local rows logged dflt
    rows=$(pw_psql "$admin" -At -c "SELECT count(*) FROM archon_ga4_events WHERE property_id = 'bench-load'")
    dflt='n/a (no default partition)'
    [ "$(pw_psql "$admin" -At -c "SELECT to_regclass('archon_ga4_events_default') IS NOT NULL")" = f ] ||
        dflt=$(pw_psql "$admin" -At -c "SELECT count(*) FROM archon_ga4_events_default")
    logged=$(cat "$dir"/txlog.* | awk '$3 ~ /^[0-9]+$/' | wc -l)
    echo "rows_in_table=$rows" >>"$dir/meta"
    echo "   load: $logged inserts logged by pgbench, $rows rows in the table, $dflt in the default partition;" \
        "$(grep -h -E 'number of failed transactions' "$dir/pgbench.out" || echo 'no pgbench summary')"
    grep -h -i -E 'abort|error' "$dir/pgbench.err" | head -5 | sed 's/^/   pgbench: /' || true
    for f in maint rerun; do
        [ -s "$dir/$f.err" ] || [ -s "$dir/$f.out" ] || continue
        if [ "$method" = citus ]; then
            sed "s/^/   [$f] /" "$dir/$f.out" "$dir/$f.err"
        else
            grep -E '^  FAILED' "$dir/$f.out" | sed -E "s/ \[[0-9-]+ [0-9:+]+, [0-9-]+ [0-9:+]+\)//; s/^  /   [$f] /" || true
            sed 's/\x1b\[[0-9;]*m//g' "$dir/$f.err" | grep -E ' (WARN|ERROR) ' | grep -v 'slow statement' |
                sed -E "s/ table\{[^}]*\}:action\{[^}]*\}: partwarden::apply://; s/ \[[0-9-]+ [0-9:+]+, [0-9-]+ [0-9:+]+\)//; s/^/   [$f log] /" || true
        fi
    done
    sed -E 's/^([^|]*)\|([0-9]+)\|/   [server log, \1] \2 × /' "$dir/server_errors"
    # The database's background workers (Citus's maintenance daemon on each node) end with it.
    pw_psql "$PW_CITUS_COORDINATOR_URL" -c "DROP DATABASE $db WITH (FORCE)"
    for w in "${WORKERS[@]}"; do pw_psql "$w" -c "DROP DATABASE IF EXISTS $db WITH (FORCE)"; done
}

START=$(now)
LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
for s in $SCENARIOS; do
    run_scenario "${s%%:*}" "${s#*:}"
done

dirs=()
for s in $SCENARIOS; do dirs+=("$TMP/sc_${s%%:*}_${s#*:}"); done
{
    echo "Citus $PW_CITUS_VERSION ($(basename "$CITUS_SRC")) on $("$PW_PG_BIN/postgres" --version | awk '{print $3}'):" \
        "coordinator + 2 workers on loopback, citus.shard_count $SHARDS," \
        "tables distributed by $([ "$DISTRIBUTE" = migrate ] && echo '`partwarden migrate --citus`' || echo 'SQL (create_distributed_table by tenant_id)');" \
        "$(nproc) CPU(s), $(uname -sr); $(date -u '+%Y-%m-%d %H:%M UTC')."
    echo "partwarden: $BIN_INFO."
    echo "Load: $RATE inserts/s offered through the coordinator by $CLIENTS pgbench clients as app_user, 8 tenants over $SHARDS shards" \
        "(-R, latency counted from the scheduled start); reader at +${READER_AT} s for ${HOLD} s; maintenance at +${MAINT_AT} s;" \
        "partwarden: lock_timeout $LOCK_TIMEOUT, ddl_attempts $DDL_ATTEMPTS, ddl_backoff $DDL_BACKOFF;" \
        "citus: end_at := $CITUS_END_AT;" \
        "work: $N_CREATE partition(s) to create, $N_EXPIRE to expire. Bench wall time $(secs "$START" "$(now)") s;" \
        "load average before $LOAD_BEFORE, after $(cut -d' ' -f1-3 /proc/loadavg) (the machine is shared)."
    echo
    python3 bench/citus/report.py "$LOCK_TIMEOUT_MS" "${dirs[@]}"
} >"$TMP/report.md"
echo
cat "$TMP/report.md"
[ -z "${BENCH_OUT:-}" ] || cp "$TMP/report.md" "$BENCH_OUT"
