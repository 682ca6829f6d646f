#!/usr/bin/env bash
# Online maintenance under an insert load (SPEC §8 "Online"; DESIGN "PostgreSQL
# behaviours" 1, 2, 4). What it measures and why: bench/README.md.
#
# For each
#   method:    `partwarden maintain` (default config: with a default partition)  |
#              `partwarden maintain` with default_partition = false (no default partition:
#              DETACH CONCURRENTLY becomes possible)  |
#              the blocking SQL functions, as cron would call them
#   condition: none  |  a long transaction reading the whole table  |  a long transaction
#              reading only the current month (its query is pruned to that partition)
# it makes a fresh database where one maintenance run has to create 3 partitions and
# expire 12, runs an application-like insert load with pgbench, starts the maintenance
# while the load runs, checks the result in the catalog (pg_inherits), samples lock waits
# (pg_locks) and reports insert latency. A partwarden run that gave up on some DDL after
# its retries is followed, once the long transaction has ended, by a second run.
#
# Knobs (environment): BENCH_RATE (inserts/s offered, default 400), BENCH_HOLD (seconds
# the long transaction stays open, default 10), BENCH_LOAD_SHORT / BENCH_LOAD_LONG (load
# duration without / with a long transaction, default 12 / 25 s), BENCH_LOCK_TIMEOUT
# (default 1s), BENCH_DDL_ATTEMPTS (3), BENCH_DDL_BACKOFF (1s), BENCH_SCENARIOS (default
# "partwarden:none partwarden:table partwarden:month nodefault:none nodefault:table
# nodefault:month sql:none sql:table sql:month"),
# BENCH_KEEP_LOGS=DIR (copy every log there before the cluster is removed), BENCH_BIN (a
# partwarden binary to use instead of building one with `cargo build`).
#
# BENCH_WORK=one: instead of 3 creates and 12 expiries, one run must create one partition
# (the last of the premake window is dropped) and expire one (now-25 months): the issue-10
# scenario. With it, more methods: "none" (the same load and reader, no maintenance: the
# baseline latency), "old" (the partwarden binary BENCH_OLD_BIN, e.g. an earlier build, with
# its own defaults; BENCH_OLD_LABEL names it in the table) and "partman" (pg_partman 5's run_maintenance, SQL-only install built
# from PARTMAN_SRC into a copy of the PostgreSQL install; the table set up by
# partman.create_parent with premake 3 and a default partition, retention 24 months):
#   BENCH_WORK=one BENCH_SCENARIOS="none:month partwarden:month old:month partman:month" \
#     BENCH_OLD_BIN=... PARTMAN_SRC=../shared/vendor/pg_partman-5.1.0.tar.gz bench/online/run.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
# shellcheck source=scripts/pg.sh
. scripts/pg.sh
# shellcheck source=bench/online/lib.sh
. bench/online/lib.sh

RATE=${BENCH_RATE:-400}
HOLD=${BENCH_HOLD:-10}
LOAD_SHORT=${BENCH_LOAD_SHORT:-12}
LOAD_LONG=${BENCH_LOAD_LONG:-25}
LOCK_TIMEOUT=${BENCH_LOCK_TIMEOUT:-1s}
DDL_ATTEMPTS=${BENCH_DDL_ATTEMPTS:-3}
DDL_BACKOFF=${BENCH_DDL_BACKOFF:-1s}
SCENARIOS=${BENCH_SCENARIOS:-partwarden:none partwarden:table partwarden:month nodefault:none nodefault:table nodefault:month sql:none sql:table sql:month}
WORK=${BENCH_WORK:-full}
case $WORK in
    full) N_CREATE=3; N_EXPIRE=12 ;;
    one) N_CREATE=1; N_EXPIRE=1 ;;
    *) echo "BENCH_WORK must be full or one" >&2; exit 2 ;;
esac
CLIENTS=4
THREADS=2
TENANT=7d1c0a3e-5b1f-4c2a-9e3d-000000000001
READER_AT=2  # seconds after the load starts
MAINT_AT=3

now() { date +%s.%N; }
secs() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", b - a }'; }
log() { printf '== %s\n' "$*"; }
strip_ansi() { sed 's/\x1b\[[0-9;]*m//g'; }

pw_pg_install 2> >(grep -v -e RuntimeDirWarning -e user_runtime_dir >&2)
case " $SCENARIOS " in
    *" partman:"*)
        [ -n "${PARTMAN_SRC:-}" ] || { echo "the partman method needs PARTMAN_SRC (a pg_partman 5 source tarball or directory)" >&2; exit 2; }
        # shellcheck source=scripts/partman.sh
        . scripts/partman.sh
        pw_partman_install "$PARTMAN_SRC" ;;
esac
case " $SCENARIOS " in
    *" old:"*) [ -x "${BENCH_OLD_BIN:-}" ] || { echo "the old method needs BENCH_OLD_BIN (a partwarden binary)" >&2; exit 2; } ;;
esac
bo_partwarden_bin

TMP=$(mktemp -d "${TMPDIR:-/tmp}/partwarden-bench.XXXXXX")
chmod 0755 "$TMP"
BG_PIDS=()
keep_logs() { cp -r "$TMP"/sc_* "$TMP"/*.toml "$TMP"/*.sql "$BENCH_KEEP_LOGS"/ 2>/dev/null; }
trap bo_cleanup EXIT
trap 'exit 130' INT TERM

pw_pg_start "$TMP/pg"
pw_pg_bootstrap
PORT=$PW_PG_PORT
PGBENCH=$PW_PG_BIN/pgbench
log "$("$PW_PG_BIN/postgres" --version), pgbench $("$PGBENCH" --version | awk '{print $3}'), $(nproc) CPU(s), $(uname -sr)"

# partwarden's documented default configuration, except max_expire_per_run: its default
# (3) would expire only 3 of the 12 partitions per run; this bench compares one run of
# each method doing the same work.
CONFIG=$TMP/partwarden.toml
sed 's/^max_expire_per_run = 3$/max_expire_per_run = 12/' config/partwarden.toml >"$CONFIG"
grep -q '^max_expire_per_run = 12$' "$CONFIG" || { echo "could not set max_expire_per_run in $CONFIG" >&2; exit 1; }
# The same without a default partition (the "nodefault" method; its databases get the
# migrations' default partition dropped).
CONFIG_NODEFAULT=$TMP/partwarden-nodefault.toml
sed 's/^default_partition = true$/default_partition = false/' "$CONFIG" >"$CONFIG_NODEFAULT"
grep -q '^default_partition = false$' "$CONFIG_NODEFAULT" || { echo "could not set default_partition in $CONFIG_NODEFAULT" >&2; exit 1; }
export PARTWARDEN__DATABASE__LOCK_TIMEOUT=$LOCK_TIMEOUT
export PARTWARDEN__DATABASE__DDL_ATTEMPTS=$DDL_ATTEMPTS
export PARTWARDEN__DATABASE__DDL_BACKOFF=$DDL_BACKOFF
# An older build knows fewer keys: its config is the same without the ones it lacks.
CONFIG_OLD=$TMP/partwarden-old.toml
grep -v -e '^lock_wait = ' "$CONFIG" >"$CONFIG_OLD"
DATABASE_URL=postgres://unused@127.0.0.1/unused "$BIN" check-config --offline "$CONFIG" >/dev/null
DATABASE_URL=postgres://unused@127.0.0.1/unused "$BIN" check-config --offline "$CONFIG_NODEFAULT" >/dev/null
LOCK_TIMEOUT_MS=$(pw_psql "$PW_PG_ADMIN_URL" -At -c "SELECT round(extract(epoch FROM '$LOCK_TIMEOUT'::interval) * 1000)")

# The application's insert, as it would run it: the tenant set for the transaction
# (forced RLS), event_timestamp = now(). Runs as app_user (not the owner) with INSERT on
# the table and USAGE on its sequence granted; no embedding (NULL).
cat >"$TMP/insert.sql" <<SQL
\set r random(1, 1000000000)
BEGIN;
SELECT set_config('app.current_tenant_id', '$TENANT', true);
INSERT INTO archon_ga4_events (tenant_id, property_id, event_name, event_timestamp, page_path, page_title, user_pseudo_id, session_id, metrics, dimensions) VALUES ('$TENANT', 'bench-load', 'page_view', now(), '/page/' || :r, 'Bench page', 'user-' || (:r % 1000), 'session-' || (:r % 10000), '{"engagement_time_msec": 1200}', '{"device": "desktop", "country": "DE"}');
COMMIT;
SQL

# The long transactions (app_user, same tenant). "table": no partition pruning, so it
# holds ACCESS SHARE on the parent and on every partition, the default one included.
# "month": a constant range of the current UTC month, pruned at plan time, so it holds
# ACCESS SHARE on the parent and on the current month's partition only.
MONTH_FROM=$(date -u +%Y-%m-01)
MONTH_TO=$(date -u -d "$MONTH_FROM +1 month" +%Y-%m-01)
reader_sql() {
    local where=$1
    bo_reader_sql "SELECT set_config('app.current_tenant_id', '$TENANT', true);" \
        "SELECT count(*) AS rows_seen_by_reader FROM archon_ga4_events$where;" "$HOLD"
}
reader_sql "" >"$TMP/reader_table.sql"
reader_sql " WHERE event_timestamp >= '$MONTH_FROM 00:00:00+00' AND event_timestamp < '$MONTH_TO 00:00:00+00'" >"$TMP/reader_month.sql"

# A fresh database: owned by partwarden, vector created by the superuser, migrated by
# `partwarden migrate` (current month + 3 ahead), then set up so that one maintenance run
# must create 3 partitions (the 3 future months are dropped) and expire 12 (months
# now-36 .. now-25, 100 rows each, entirely older than the 24-month retention) — or with
# BENCH_WORK=one create 1 (month +3) and expire 1 (now-25).
# With a third argument "nodefault", the default partition is dropped; with "partman" the
# partitions are pg_partman's (create_parent), named <table>_pYYYYMMDD.
setup_db() {
    local db=$1 dir=$2 variant=${3:-}
    local admin="postgres://postgres@127.0.0.1:$PORT/$db" owner="postgres://partwarden@127.0.0.1:$PORT/$db"
    pw_psql "$PW_PG_ADMIN_URL" -c "CREATE DATABASE $db OWNER partwarden"
    pw_psql "$admin" -c "CREATE EXTENSION IF NOT EXISTS vector"
    DATABASE_URL=$owner "$BIN" --config "$CONFIG" migrate >"$dir/migrate.log" 2>&1
    [ "$variant" != nodefault ] || pw_psql "$owner" -c "DROP TABLE archon_ga4_events_default"
    local first_future=1 old_from=25 old_to=36 fmt="archon_ga4_events_%s" datefmt=YYYY_MM
    [ "$WORK" = one ] && first_future=3 && old_to=25
    if [ "$variant" = partman ]; then
        fmt="archon_ga4_events_p%s"; datefmt=YYYYMMDD
        pw_psql "$admin" -c "CREATE SCHEMA partman AUTHORIZATION partwarden; CREATE EXTENSION pg_partman SCHEMA partman;
            GRANT ALL ON ALL TABLES IN SCHEMA partman TO partwarden; GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA partman TO partwarden;
            GRANT EXECUTE ON ALL PROCEDURES IN SCHEMA partman TO partwarden;"
        pw_psql "$owner" >"$dir/partman.log" <<'SQL'
DO $$ DECLARE r record; BEGIN
    FOR r IN SELECT inhrelid::regclass AS c FROM pg_inherits WHERE inhparent = 'archon_ga4_events'::regclass LOOP
        EXECUTE 'DROP TABLE ' || r.c;
    END LOOP;
END $$;
SELECT partman.create_parent(p_parent_table := 'public.archon_ga4_events', p_control := 'event_timestamp',
                             p_interval := '1 month', p_premake := 3);
UPDATE partman.part_config SET retention = '24 months', retention_keep_table = false, infinite_time_partitions = true
 WHERE parent_table = 'public.archon_ga4_events';
SQL
    fi
    # The partitions to create again, and the old ones to expire (100 rows each).
    pw_psql "$owner" >"$dir/setup.log" <<SQL
DO \$\$
DECLARE r record; n int := 0;
BEGIN
    FOR r IN SELECT c.oid::regclass AS rel
               FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
               CROSS JOIN LATERAL partwarden_range_bounds(c.oid) b
              WHERE i.inhparent = 'archon_ga4_events'::regclass
                AND b.range_start >= (date_trunc('month', now() AT TIME ZONE 'UTC') + make_interval(months => $first_future)) AT TIME ZONE 'UTC'
    LOOP
        EXECUTE format('DROP TABLE %s', r.rel);
        n := n + 1;
    END LOOP;
    IF n <> $N_CREATE THEN RAISE EXCEPTION 'expected $N_CREATE future partitions to drop, found %', n; END IF;
    FOR k IN $old_from..$old_to LOOP
        EXECUTE format('CREATE TABLE %I PARTITION OF archon_ga4_events FOR VALUES FROM (%L) TO (%L)',
                       format('$fmt', to_char(date_trunc('month', now() AT TIME ZONE 'UTC') - make_interval(months => k), '$datefmt')),
                       to_char(date_trunc('month', now() AT TIME ZONE 'UTC') - make_interval(months => k), 'YYYY-MM-DD') || ' 00:00:00+00',
                       to_char(date_trunc('month', now() AT TIME ZONE 'UTC') - make_interval(months => k - 1), 'YYYY-MM-DD') || ' 00:00:00+00');
        PERFORM partwarden_sync_partition_rls('archon_ga4_events',
                  format('$fmt', to_char(date_trunc('month', now() AT TIME ZONE 'UTC') - make_interval(months => k), '$datefmt'))::regclass);
    END LOOP;
END \$\$;
BEGIN;
SELECT set_config('app.current_tenant_id', '$TENANT', true);
INSERT INTO archon_ga4_events (tenant_id, property_id, event_name, event_timestamp)
SELECT '$TENANT', 'bench-old', 'page_view',
       (date_trunc('month', now() AT TIME ZONE 'UTC') - make_interval(months => k)) AT TIME ZONE 'UTC' + g * interval '1 minute'
  FROM generate_series($old_from, $old_to) k, generate_series(1, 100) g;
COMMIT;
GRANT SELECT, INSERT ON archon_ga4_events TO app_user;
GRANT USAGE ON SEQUENCE archon_ga4_events_id_seq TO app_user;
ANALYZE archon_ga4_events;
SQL
    # Names the run must create / expire, computed in the database (UTC months).
    pw_psql "$owner" -At -c "SELECT string_agg(quote_literal(format('$fmt', to_char(date_trunc('month', now() AT TIME ZONE 'UTC') + make_interval(months => k), '$datefmt'))), ',' ORDER BY k) FROM generate_series($first_future, 3) k" >"$dir/expect_created"
    pw_psql "$owner" -At -c "SELECT string_agg(quote_literal(format('$fmt', to_char(date_trunc('month', now() AT TIME ZONE 'UTC') - make_interval(months => k), '$datefmt'))), ',' ORDER BY k) FROM generate_series($old_from, $old_to) k" >"$dir/expect_expired"
}

# "C E P": how many of the expected partitions are attached to archon_ga4_events
# (pg_inherits), how many of the old ones are gone (dropped), how many partitions are
# left "detach pending".
verify() {
    local db=$1 dir=$2
    pw_psql "postgres://postgres@127.0.0.1:$PORT/$db" -At -F ' ' -c "
        WITH parts AS (SELECT c.relname, i.inhdetachpending
                         FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
                        WHERE i.inhparent = 'archon_ga4_events'::regclass)
        SELECT (SELECT count(*) FROM parts WHERE relname IN ($(cat "$dir/expect_created")) AND NOT inhdetachpending),
               (SELECT count(*) FROM unnest(ARRAY[$(cat "$dir/expect_expired")]) n WHERE to_regclass(n) IS NULL),
               (SELECT count(*) FROM parts WHERE inhdetachpending)"
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
        echo "$ok actions ok, $failed gave up after $DDL_ATTEMPTS × lock_timeout"
    else
        echo "$ok actions ok, $failed failed ($gaveup gave up after $DDL_ATTEMPTS × lock_timeout)"
    fi
}

run_scenario() {
    local method=$1 long=$2
    local name=${method}_${long}
    local db=bench_$name dir=$TMP/sc_$name
    local cond load mlabel config=$CONFIG
    mkdir -p "$dir"
    case $long in
        none) cond="none"; load=$LOAD_SHORT ;;
        table) cond="long tx reading the whole table (${HOLD} s)"; load=$LOAD_LONG ;;
        month) cond="long tx reading the current month (${HOLD} s)"; load=$LOAD_LONG ;;
        *) echo "unknown condition $long" >&2; exit 2 ;;
    esac
    local bin=$BIN
    case $method in
        partwarden) mlabel="partwarden maintain" ;;
        nodefault) mlabel="partwarden maintain, default_partition = false"; config=$CONFIG_NODEFAULT ;;
        old) mlabel="partwarden maintain, ${BENCH_OLD_LABEL:-an older build}"; bin=$BENCH_OLD_BIN; config=$CONFIG_OLD ;;
        sql) mlabel="SQL functions (blocking)" ;;
        partman) mlabel="pg_partman $PW_PARTMAN_VERSION run_maintenance" ;;
        none) mlabel="no maintenance (baseline)" ;;
        *) echo "unknown method $method" >&2; exit 2 ;;
    esac
    log "scenario: $mlabel / $cond"
    local variant=""
    case $method in nodefault | partman) variant=$method ;; esac
    setup_db "$db" "$dir" "$variant"
    local c e p
    read -r c e p < <(verify "$db" "$dir")
    [ "$c $e $p" = "0 0 0" ] || { echo "setup is wrong: created=$c expired=$e pending=$p" >&2; exit 1; }

    local admin="postgres://postgres@127.0.0.1:$PORT/$db"
    local owner="postgres://partwarden@127.0.0.1:$PORT/$db"
    local app="postgres://app_user@127.0.0.1:$PORT/$db"
    printf '%s\n' "method=$mlabel" "condition=$cond" >"$dir/meta"
    bo_lock_sampler "$admin" "$dir/lockwaits"
    bo_load "$dir" "$PORT" app_user "$db" "$RATE" "$load" "$TMP/insert.sql" "$CLIENTS" "$THREADS"
    sleep "$READER_AT"

    [ "$long" = none ] || bo_reader "$dir" "$admin" "$app" "$TMP/reader_$long.sql"
    sleep $((MAINT_AT - READER_AT))

    local rc=0 t1 t2
    t1=$(now)
    case $method in
        sql)
            # As cron would call them: one psql, the owner role, no lock_timeout.
            pw_psql "$owner" -c "SELECT * FROM ensure_ga4_partitions_exist(3); SELECT * FROM drop_old_ga4_partitions(24);" \
                >"$dir/maint.out" 2>"$dir/maint.err" || rc=$? ;;
        partman)
            # As pg_cron would call it (pg_partman's own guidance): no lock_timeout.
            pw_psql "$owner" -c "SELECT partman.run_maintenance('public.archon_ga4_events')" \
                >"$dir/maint.out" 2>"$dir/maint.err" || rc=$? ;;
        none) : >"$dir/maint.out" ;;
        *) DATABASE_URL=$owner "$bin" --config "$config" maintain >"$dir/maint.out" 2>"$dir/maint.err" || rc=$? ;;
    esac
    t2=$(now)
    {
        echo "maint_start=$t1"
        echo "maint_end=$t2"
        echo "maint_wall=$(secs "$t1" "$t2")"
    } >>"$dir/meta"
    read -r c e p < <(verify "$db" "$dir")
    local result complete=no
    [ "$c" = "$N_CREATE" ] && [ "$e" = "$N_EXPIRE" ] && [ "$p" = 0 ] && [ "$rc" = 0 ] && complete=yes
    case $method in
        sql | partman) result="created $c, expired $e (exit $rc)" ;;
        none) result="none (created $c, expired $e)"; complete=yes ;;
        *) result="created $c, expired $e ($(pw_summary "$dir/maint.out"); exit $rc)" ;;
    esac
    echo "   maintenance: wall $(secs "$t1" "$t2") s; catalog: created $c/$N_CREATE, expired $e/$N_EXPIRE, detach pending $p; exit $rc -> completed: $complete"

    [ "$long" = none ] || bo_reader_end "$dir"
    if [ "$method" != sql ] && [ "$method" != partman ] && [ "$complete" = no ]; then
        # The designed behaviour: what gave up after lock_timeout is done by the next run.
        local rc2=0 t3 t4 complete2=no
        t3=$(now)
        DATABASE_URL=$owner "$bin" --config "$config" maintain >"$dir/rerun.out" 2>"$dir/rerun.err" || rc2=$?
        t4=$(now)
        read -r c e p < <(verify "$db" "$dir")
        [ "$c" = "$N_CREATE" ] && [ "$e" = "$N_EXPIRE" ] && [ "$p" = 0 ] && [ "$rc2" = 0 ] && complete2=yes
        echo "   run 2, after the long transaction ended: wall $(secs "$t3" "$t4") s; catalog: created $c/$N_CREATE, expired $e/$N_EXPIRE, detach pending $p; exit $rc2 -> completed: $complete2"
        result="run 1: $result. Run 2 after the long tx: $(pw_summary "$dir/rerun.out"); exit $rc2; now created $c, expired $e"
        {
            echo "rerun_start=$t3"
            echo "rerun_end=$t4"
            echo "rerun_wall=$(secs "$t3" "$t4")"
        } >>"$dir/meta"
    fi
    echo "result=$result" >>"$dir/meta"

    bo_load_end "$dir"
    [ "$BO_LOAD_RC" = 0 ] || echo "   pgbench exited $BO_LOAD_RC"
    # Every logged insert is in the table, none went to the default partition (superuser:
    # no RLS).
    local rows logged dflt
    rows=$(pw_psql "$admin" -At -c "SELECT count(*) FROM archon_ga4_events WHERE property_id = 'bench-load'")
    dflt=$(pw_psql "$admin" -At -c "SELECT coalesce((SELECT count(*) FROM archon_ga4_events_default), 0)" 2>/dev/null || echo 'n/a (no default partition)')
    logged=$(cat "$dir"/txlog.* | awk '$3 ~ /^[0-9]+$/' | wc -l)
    echo "   load: $logged inserts logged by pgbench, $rows rows in the table, $dflt in the default partition;" \
        "$(grep -h -E 'number of failed transactions' "$dir/pgbench.out" || echo 'no pgbench summary')"
    grep -h -i -E 'abort|error' "$dir/pgbench.err" | head -5 | sed 's/^/   pgbench: /' || true
    # partwarden's own account of lock timeouts and retries.
    for f in maint rerun; do
        [ -s "$dir/$f.err" ] || [ -s "$dir/$f.out" ] || continue
        if [ "$method" != sql ] && [ "$method" != partman ]; then
            # Compact: without the tracing spans and the partition bounds.
            grep -E '^  FAILED' "$dir/$f.out" | sed -E "s/ \[[0-9-]+ [0-9:+]+, [0-9-]+ [0-9:+]+\)//; s/^  /   [$f] /" || true
            strip_ansi <"$dir/$f.err" | grep -E ' (WARN|ERROR) ' | grep -v 'slow statement' |
                sed -E "s/ table\{[^}]*\}:action\{[^}]*\}: partwarden::apply://; s/ \[[0-9-]+ [0-9:+]+, [0-9-]+ [0-9:+]+\)//; s/^/   [$f log] /" || true
        else
            echo "   [$f] $(grep -c 'Successfully created' "$dir/$f.out" || true) created, $(grep -c 'Dropped partition' "$dir/$f.out" || true) dropped"
            sed "s/^/   [$f] /" "$dir/$f.err"
        fi
    done
}

for s in $SCENARIOS; do
    run_scenario "${s%%:*}" "${s#*:}"
done

echo
log "results: $RATE inserts/s offered by $CLIENTS pgbench clients (-R, latency counted from the scheduled start);" \
    "long transaction at +${READER_AT} s for ${HOLD} s; maintenance at +${MAINT_AT} s;" \
    "partwarden: lock_timeout $LOCK_TIMEOUT, ddl_attempts $DDL_ATTEMPTS, ddl_backoff $DDL_BACKOFF, max_expire_per_run 12;" \
    "work: $N_CREATE partition(s) to create, $N_EXPIRE to expire"
echo
dirs=()
for s in $SCENARIOS; do dirs+=("$TMP/sc_${s%%:*}_${s#*:}"); done
python3 bench/online/report.py "$LOCK_TIMEOUT_MS" "${dirs[@]}"
