#!/usr/bin/env bash
# Vector index recall: the original approach (an ivfflat index with lists = 100 created on
# an EMPTY table, then the rows inserted) against partwarden's per-partition index (built
# CONCURRENTLY by `partwarden maintain` once the partition has min_rows vectors, lists =
# vectors/1000). DESIGN.md §5: ivfflat trains its centroids on the vectors present at build
# time, so an index built on an empty table has random centroids. What it measures and
# how to read it: bench/README.md, section "Vector index recall (bench/vector)".
#
#   bench/vector/run.sh [--rows N] [--queries Q] [--quick] [--centres C] [--noise S]
#                       [--query-noise T] [--seed X] [--probes "1 10"]
#
#   --rows N         rows (768-d vectors) in the current month's partition (default 100000)
#   --queries Q      query vectors (default 200)
#   --quick          10000 rows, 50 queries (to try it)
#   --centres C      cluster centres (default rows/100, between 100 and 1000)
#   --noise S        per-coordinate N(0, S) noise of a row around its centre; the centres'
#                    coordinates are N(0, 1) (default 1: noise as wide as the centres' spread)
#   --query-noise T  per-coordinate N(0, T) noise of a query around its data point (default 0.5)
#   --seed X         setseed() value, in [-1, 1] (default 0.42)
#   --probes "P..."  ivfflat.probes values measured for both indexes (default: 1 and
#                    round(sqrt(lists)) of each index; values >= an index's lists are skipped)
#
# Environment: BENCH_BIN (partwarden binary; default: `cargo build` then target/debug),
# BENCH_KEEP_LOGS=DIR (copy the logs there before the cluster is removed).
#
# Everything runs on a throwaway PostgreSQL 18 + pgvector cluster on a loopback port
# (scripts/pg.sh), removed on exit.
set -euo pipefail
cd "$(dirname "$0")/../.."
# shellcheck source=scripts/pg.sh
. scripts/pg.sh

ROWS=100000
QUERIES=200
CENTRES=
NOISE=1
QNOISE=0.5
SEED=0.42
PROBES=
usage() { sed -n '2,/^set -euo/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//'; }
while [ $# -gt 0 ]; do
    case $1 in
        --rows) ROWS=$2; shift 2 ;;
        --queries) QUERIES=$2; shift 2 ;;
        --quick) ROWS=10000; QUERIES=50; shift ;;
        --centres) CENTRES=$2; shift 2 ;;
        --noise) NOISE=$2; shift 2 ;;
        --query-noise) QNOISE=$2; shift 2 ;;
        --seed) SEED=$2; shift 2 ;;
        --probes) PROBES=$2; shift 2 ;;
        -h|--help) usage; exit 0 ;;
        *) echo "unknown argument: $1 (see --help)" >&2; exit 2 ;;
    esac
done
isint() { [[ $1 =~ ^[0-9]+$ ]]; }
isnum() { [[ $1 =~ ^-?[0-9]+(\.[0-9]+)?$ ]]; }
isint "$ROWS" && [ "$ROWS" -ge 1000 ] || { echo "--rows must be an integer >= 1000" >&2; exit 2; }
isint "$QUERIES" && [ "$QUERIES" -ge 1 ] && [ "$QUERIES" -le "$ROWS" ] || { echo "--queries must be 1..rows" >&2; exit 2; }
if [ -z "$CENTRES" ]; then
    CENTRES=$((ROWS / 100)); [ "$CENTRES" -ge 100 ] || CENTRES=100; [ "$CENTRES" -le 1000 ] || CENTRES=1000
fi
isint "$CENTRES" && [ "$CENTRES" -ge 1 ] || { echo "--centres must be a positive integer" >&2; exit 2; }
isnum "$NOISE" && isnum "$QNOISE" && isnum "$SEED" || { echo "--noise, --query-noise, --seed must be numbers" >&2; exit 2; }
for p in $PROBES; do isint "$p" && [ "$p" -ge 1 ] || { echo "--probes: positive integers" >&2; exit 2; }; done

ORIGINAL_LISTS=100
MIN_ROWS=$((ROWS / 2)); [ "$MIN_ROWS" -le 10000 ] || MIN_ROWS=10000
TENANT=00000000-0000-0000-0000-00000000000a
DIMS=768

now() { date +%s.%N; }
secs() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", b - a }'; }
log() { printf '== %s\n' "$*" >&2; }

if pgrep -x pgbench >/dev/null 2>&1 || pgrep -f 'bench/online/run.sh' >/dev/null 2>&1; then
    log "WARNING: another benchmark (pgbench / bench/online) is running: timings will be disturbed"
fi

pw_pg_install 2> >(grep -v -e RuntimeDirWarning -e user_runtime_dir >&2)
if [ -n "${BENCH_BIN:-}" ]; then
    BIN=$BENCH_BIN
else
    log "building partwarden (cargo build)"
    cargo build --quiet
    BIN=$PWD/target/debug/partwarden
fi
[ -x "$BIN" ] || { echo "no partwarden binary at $BIN" >&2; exit 1; }

TMP=$(mktemp -d "${TMPDIR:-/tmp}/partwarden-vbench.XXXXXX")
chmod 0755 "$TMP"
cleanup() {
    local rc=$?
    pw_pg_stop
    if [ -n "${BENCH_KEEP_LOGS:-}" ]; then
        mkdir -p "$BENCH_KEEP_LOGS" && cp "$TMP"/*.log "$TMP"/*.toml "$BENCH_KEEP_LOGS"/ 2>/dev/null || true
    fi
    rm -rf "$TMP"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

pw_pg_start "$TMP/pg"
pw_pg_bootstrap
DB=vbench
ADMIN="postgres://postgres@127.0.0.1:$PW_PG_PORT/$DB"
OWNER="postgres://partwarden@127.0.0.1:$PW_PG_PORT/$DB"
pw_psql "$PW_PG_ADMIN_URL" -c "CREATE DATABASE $DB OWNER partwarden"
pw_psql "$ADMIN" -c "CREATE EXTENSION IF NOT EXISTS vector"
pw_psql "$ADMIN" -c "GRANT SELECT ON pg_catalog.pg_statistic TO partwarden"  # vectors are counted from it
DATABASE_URL=$OWNER "$BIN" migrate >"$TMP/migrate.log" 2>&1 || { cat "$TMP/migrate.log" >&2; exit 1; }
PGV=$(pw_psql "$ADMIN" -At -c "SELECT extversion FROM pg_extension WHERE extname = 'vector'")
PGVER=$("$PW_PG_BIN/postgres" --version | awk '{print $3}')
log "PostgreSQL $PGVER, pgvector $PGV, $(nproc) CPU(s), $(awk '/MemTotal/ {printf "%.0f GB", $2/1048576}' /proc/meminfo)"

# psql as the owner (a non-superuser: forced RLS applies) with the tenant set by -v.
q() { pw_psql "$OWNER" -v tenant="$TENANT" "$@"; }
# Runs stdin as the owner in one transaction with the tenant set; prints the wall time.
timed_tx() {
    local t0 t1
    t0=$(now)
    { echo "BEGIN; SELECT set_config('app.current_tenant_id', :'tenant', true) \\gset"; cat; echo "COMMIT;"; } | q >>"$TMP/sql.log"
    t1=$(now)
    secs "$t0" "$t1"
}

MONTH_FROM=$(date -u +%Y-%m-01)
PART=archon_ga4_events_$(date -u -d "$MONTH_FROM" +%Y_%m)
pw_psql "$ADMIN" -At -c "SELECT to_regclass('$PART') IS NOT NULL" | grep -qx t \
    || { echo "partition $PART not found after migrate" >&2; exit 1; }
# Spread the rows over the first 20 days of the month (any row count stays inside it).
SPACING=$(awk -v n="$ROWS" 'BEGIN { printf "%.6f", 20 * 86400 / n }')

# --- 1. Data: CENTRES centres with N(0,1) coordinates; row g belongs to centre g % CENTRES
# and is that centre plus N(0, NOISE) per coordinate. Deterministic: setseed(), and random
# functions are PARALLEL RESTRICTED, so the plan is serial. Inserted through the parent
# (routed to the partition) as tenant A; property_id records the centre ('c<n>').
log "generating $ROWS x $DIMS vectors ($CENTRES centres, noise $NOISE, seed $SEED) in $PART"
T_GEN=$(timed_tx <<SQL
SELECT setseed($SEED);
CREATE TEMP TABLE centres AS
  SELECT c, (SELECT array_agg(random_normal()::real) FROM generate_series(1, $DIMS) WHERE c >= 0) AS v
    FROM generate_series(0, $CENTRES - 1) c;
INSERT INTO archon_ga4_events (tenant_id, property_id, event_name, event_timestamp, embedding_768)
SELECT :'tenant'::uuid, 'c' || (g % $CENTRES), 'embedding', '$MONTH_FROM 00:00:00+00'::timestamptz + make_interval(secs => g * $SPACING),
       (SELECT array_agg(x + random_normal(0, $NOISE)::real) FROM unnest(ce.v) x)::vector
  FROM generate_series(1, $ROWS) g JOIN centres ce ON ce.c = g % $CENTRES
 ORDER BY g;
SQL
)
log "generated in ${T_GEN}s"
# Exact reltuples for the planner and for partwarden's row count (lists = rows/1000).
q -c "VACUUM (ANALYZE) $PART" >>"$TMP/sql.log"

# --- 2. Queries: QUERIES data points (chosen by a hash of their id) plus N(0, QNOISE)
# per coordinate, fixed by the seed; kept in a table without RLS.
log "making $QUERIES query vectors"
T_Q=$(timed_tx <<SQL
SELECT setseed($SEED / 2);
CREATE TABLE bench_queries (qid int PRIMARY KEY, src_id bigint NOT NULL, v vector($DIMS) NOT NULL);
INSERT INTO bench_queries
SELECT row_number() OVER (ORDER BY h, id), id,
       (SELECT array_agg(x + random_normal(0, $QNOISE)::real) FROM unnest(e.embedding_768::real[]) x)::vector
  FROM (SELECT id, embedding_768, hashint8(id) AS h FROM $PART ORDER BY hashint8(id), id LIMIT $QUERIES) e
 ORDER BY h, id;
SQL
)

# --- 3. The harness: a PL/pgSQL function runs every query through EXECUTE (planned each
# time: no cached plan can ignore the enable_* settings) and times it in the server with
# clock_timestamp() (planning + execution; no client round trip). Exact: index scans off.
# Approximate: seq scans, bitmap scans and sorts off, so the ivfflat index is used (with
# the RLS filter the planner otherwise picks the tenant btree + a sort once probes is a
# sizeable fraction of lists); each run checks the plan first.
q >>"$TMP/sql.log" <<'SQL'
CREATE FUNCTION bench_knn(tbl regclass, p_probes int, p_exact bool)
RETURNS TABLE (qid int, ids bigint[], ms float8)
LANGUAGE plpgsql AS $fn$
DECLARE
    r record;
    t0 timestamptz;
    sql text;
BEGIN
    PERFORM set_config('ivfflat.probes', p_probes::text, true);
    PERFORM set_config('enable_indexscan', CASE WHEN p_exact THEN 'off' ELSE 'on' END, true);
    PERFORM set_config('enable_seqscan', CASE WHEN p_exact THEN 'on' ELSE 'off' END, true);
    PERFORM set_config('enable_bitmapscan', CASE WHEN p_exact THEN 'on' ELSE 'off' END, true);
    PERFORM set_config('enable_sort', CASE WHEN p_exact THEN 'on' ELSE 'off' END, true);
    sql := format('SELECT array_agg(id) FROM (SELECT id FROM %s ORDER BY embedding_768 <=> $1 LIMIT 10) s /* %s */',
                  tbl, CASE WHEN p_exact THEN 'exact' ELSE 'approximate' END);
    FOR r IN SELECT b.qid, b.v FROM bench_queries b ORDER BY b.qid LOOP
        t0 := clock_timestamp();
        EXECUTE sql INTO ids USING r.v;
        ms := extract(epoch FROM clock_timestamp() - t0) * 1000;
        qid := r.qid;
        RETURN NEXT;
    END LOOP;
END
$fn$;
-- The plan of the approximate query (to check that it uses the ivfflat index).
CREATE FUNCTION bench_plan(tbl regclass, p_probes int)
RETURNS SETOF text
LANGUAGE plpgsql AS $fn$
BEGIN
    PERFORM set_config('ivfflat.probes', p_probes::text, true);
    PERFORM set_config('enable_seqscan', 'off', true);
    PERFORM set_config('enable_bitmapscan', 'off', true);
    PERFORM set_config('enable_sort', 'off', true);
    RETURN QUERY EXECUTE format('EXPLAIN SELECT id FROM %s ORDER BY embedding_768 <=> $1 LIMIT 10', tbl)
        USING (SELECT v FROM bench_queries WHERE qid = 1);
END
$fn$;
CREATE TABLE bench_truth (qid int PRIMARY KEY, ids bigint[] NOT NULL);
CREATE TABLE bench_results (approach text, lists int, probes int, qid int, ids bigint[], ms float8);
SQL

# --- 4. Ground truth: exact top-10 by cosine distance, by seq scan, before any vector
# index exists on the partition.
log "ground truth: exact top-10 of $QUERIES queries (seq scan)"
T_TRUTH=$(timed_tx <<SQL
INSERT INTO bench_truth SELECT qid, ids FROM bench_knn('$PART', 1, true);
SQL
)
log "ground truth in ${T_TRUTH}s"
q -At -c "SELECT min(cardinality(ids)) FROM bench_truth" | grep -qx 10 \
    || { echo "exact search found fewer than 10 rows for some query" >&2; exit 1; }

# --- 5. The original approach: the index created on the empty table (lists = 100), then
# the rows inserted. The same insert into a table without the index gives the cost of the
# index during the insert. Both tables: the parent's columns and defaults, the same
# forced RLS policy as the partition (queries are run the same way on all tables).
log "original approach: ivfflat (lists = $ORIGINAL_LISTS) on an empty table, then $ROWS inserts"
q >>"$TMP/sql.log" <<'SQL'
CREATE TABLE original_plain (LIKE archon_ga4_events INCLUDING DEFAULTS);
CREATE TABLE original (LIKE archon_ga4_events INCLUDING DEFAULTS);
DO $$
DECLARE t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['original_plain', 'original'] LOOP
        EXECUTE format('ALTER TABLE %I ENABLE ROW LEVEL SECURITY', t);
        EXECUTE format('ALTER TABLE %I FORCE ROW LEVEL SECURITY', t);
        EXECUTE format($p$CREATE POLICY tenant ON %I USING (tenant_id = NULLIF(current_setting('app.current_tenant_id', true), '')::uuid)
                          WITH CHECK (tenant_id = NULLIF(current_setting('app.current_tenant_id', true), '')::uuid)$p$, t);
    END LOOP;
END $$;
SQL
# pgvector >= 0.8.4 needs about lists x 50 x 3.1 kB of maintenance_work_mem for a build.
MWM_KB=$(awk -v l="$ORIGINAL_LISTS" 'BEGIN { m = int(l * 50 * 3.1 * 1.25); if (m < 65536) m = 65536; print m }')
T_EMPTY=$(timed_tx <<SQL
SET LOCAL maintenance_work_mem = '${MWM_KB}kB';
CREATE INDEX original_ivf ON original USING ivfflat (embedding_768 vector_cosine_ops) WITH (lists = $ORIGINAL_LISTS);
SQL
)
T_INS_PLAIN=$(timed_tx <<SQL
INSERT INTO original_plain SELECT * FROM $PART ORDER BY id;
SQL
)
T_INS_IDX=$(timed_tx <<SQL
INSERT INTO original SELECT * FROM $PART ORDER BY id;
SQL
)
q -c "VACUUM (ANALYZE) original" -c "VACUUM (ANALYZE) original_plain" >>"$TMP/sql.log"
log "empty build ${T_EMPTY}s; insert ${T_INS_PLAIN}s without the index, ${T_INS_IDX}s with it"

# --- 6. partwarden: `partwarden maintain` with a vector policy (lists = auto).
CONFIG=$TMP/partwarden.toml
cat >"$CONFIG" <<TOML
[[tables]]
name = "archon_ga4_events"
[tables.vector_index]
column = "embedding_768"
method = "ivfflat"
opclass = "vector_cosine_ops"
min_rows = $MIN_ROWS
lists = "auto"
TOML
log "partwarden maintain (min_rows = $MIN_ROWS, lists = auto)"
t0=$(now)
DATABASE_URL=$OWNER RUST_LOG=warn "$BIN" --config "$CONFIG" maintain >"$TMP/maintain.log" 2>&1 \
    || { cat "$TMP/maintain.log" >&2; exit 1; }
T_MAINT=$(secs "$t0" "$(now)")
BUILD_LINE=$(grep -m1 'build ivfflat index' "$TMP/maintain.log" || true)
[ -n "$BUILD_LINE" ] || { cat "$TMP/maintain.log" >&2; echo "maintain built no ivfflat index" >&2; exit 1; }
T_CIC=$(sed -n 's/.*attempt(s), \([0-9.]*\)s).*/\1/p' <<<"$BUILD_LINE")
MWM_PW=$(sed -n 's/.*maintenance_work_mem \([0-9]*\) MB.*/\1/p' <<<"$BUILD_LINE")
PW_INDEX=$(q -At -c "SELECT c.relname FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid JOIN pg_am am ON am.oid = c.relam
                      WHERE i.indrelid = '$PART'::regclass AND am.amname = 'ivfflat' AND i.indisvalid")
[ -n "$PW_INDEX" ] || { echo "no valid ivfflat index on $PART" >&2; exit 1; }
PW_LISTS=$(q -At -c "SELECT substring(pg_get_indexdef('$PW_INDEX'::regclass) FROM 'lists=''([0-9]+)''')")
log "maintain ${T_MAINT}s; $BUILD_LINE"

# --- 7. Recall and latency.
sqrt_probes() { awk -v l="$1" 'BEGIN { p = int(sqrt(l) + 0.5); if (p < 1) p = 1; print p }'; }
if [ -z "$PROBES" ]; then
    PROBES=$(printf '%s\n' 1 "$(sqrt_probes "$ORIGINAL_LISTS")" "$(sqrt_probes "$PW_LISTS")" | sort -nu | tr '\n' ' ')
fi
for spec in "original:original:$ORIGINAL_LISTS" "partwarden:$PART:$PW_LISTS"; do
    IFS=: read -r name tbl lists <<<"$spec"
    for p in $PROBES; do
        [ "$p" -lt "$lists" ] || continue  # probes = lists is an exhaustive scan
        plan=$(printf '%s\n' "BEGIN; SELECT set_config('app.current_tenant_id', :'tenant', true) \\gset" \
                   "SELECT * FROM bench_plan('$tbl', $p);" "COMMIT;" | q -At)
        grep -q 'Index Scan using .*ivf' <<<"$plan" || { printf '%s\n' "$plan" | cut -c1-160 >&2; echo "$name probes=$p does not use its ivfflat index" >&2; exit 1; }
        log "$name: lists $lists, probes $p (warm-up, then measured)"
        timed_tx >/dev/null <<SQL
SELECT count(*) FROM bench_knn('$tbl', $p, false);
INSERT INTO bench_results SELECT '$name', $lists, $p, qid, ids, ms FROM bench_knn('$tbl', $p, false);
SQL
    done
done
printf '%s\n' "$plan" >"$TMP/plan.log"

# How hard the data is: the share of the true top-10 that lies in the query's own cluster,
# and the cosine distances of the 1st and 10th true neighbour against a random row.
T_HARD=$(timed_tx <<SQL
CREATE TABLE bench_hardness AS
SELECT avg(own)::numeric(4,3) AS own, avg(d1)::numeric(5,3) AS d1, avg(d10)::numeric(5,3) AS d10,
       (SELECT avg(b.v <=> e.embedding_768) FROM bench_queries b
          CROSS JOIN (SELECT embedding_768 FROM $PART ORDER BY hashint8(id) DESC LIMIT 200) e)::numeric(5,3) AS drand
  FROM (SELECT t.qid, avg((e.property_id = s.property_id)::int) AS own,
               min(b.v <=> e.embedding_768) AS d1, max(b.v <=> e.embedding_768) AS d10
          FROM bench_truth t JOIN bench_queries b USING (qid)
          JOIN $PART s ON s.id = b.src_id
          JOIN $PART e ON e.id = ANY (t.ids)
         GROUP BY t.qid) x;
SQL
)
IFS='|' read -r H_OWN H_D1 H_D10 H_DRAND < <(q -At -F '|' -c "SELECT own, d1, d10, drand FROM bench_hardness")
# A fingerprint of the data (the query vectors are derived from the data points).
FPRINT=$(q -At -c "SELECT left(md5(string_agg(v::text, ';' ORDER BY qid)), 12) FROM bench_queries")

# --- 8. The table.
q -At -F '|' >"$TMP/sizes.log" -c "
SELECT pg_table_size('$PART'), pg_relation_size('$PART'), pg_indexes_size('$PART') - pg_relation_size('$PW_INDEX'),
       pg_relation_size('original_ivf'), pg_relation_size('$PW_INDEX'), pg_table_size('original')"
IFS='|' read -r PART_BYTES HEAP_BYTES BTREE_BYTES ORIG_IDX_BYTES PW_IDX_BYTES ORIG_BYTES <"$TMP/sizes.log"
mb() { awk -v b="$1" 'BEGIN { printf "%.1f", b / 1048576 }'; }
T_ORIG_BUILD=$(awk -v a="$T_INS_PLAIN" -v b="$T_INS_IDX" 'BEGIN { printf "%.2f", b - a }')

echo
echo "Vector index recall@10 (cosine, exact top-10 by seq scan as truth)"
echo "data: $ROWS rows x $DIMS dims in $PART ($CENTRES centres N(0,1), noise N(0,$NOISE), seed $SEED);" \
     "table $(mb "$PART_BYTES") MB (heap $(mb "$HEAP_BYTES") MB + TOAST), its btree/GIN indexes $(mb "$BTREE_BYTES") MB;" \
     "$QUERIES queries (data points + N(0,$QNOISE)); fingerprint $FPRINT"
echo "hardness: $(awk -v o="$H_OWN" 'BEGIN { printf "%.0f%%", o * 100 }') of the true top-10 lie in the query's own cluster;" \
     "mean cosine distance to the 1st / 10th true neighbour $H_D1 / $H_D10, to a random row $H_DRAND"
echo "PostgreSQL $PGVER, pgvector $PGV, $(nproc) CPU(s); latency = server-side time of one query (planning + execution)"
echo
q -P pager=off -P footer=off <<SQL
SELECT CASE r.approach WHEN 'original' THEN 'original (lists=$ORIGINAL_LISTS built empty, then filled)'
                       ELSE 'partwarden maintain (built on the data)' END AS approach,
       r.lists, r.probes,
       round(avg(cardinality(ARRAY(SELECT unnest(r.ids) INTERSECT SELECT unnest(t.ids)))) / 10, 3) AS "recall@10",
       round(percentile_cont(0.5) WITHIN GROUP (ORDER BY r.ms)::numeric, 2) AS "p50 ms",
       round(percentile_cont(0.95) WITHIN GROUP (ORDER BY r.ms)::numeric, 2) AS "p95 ms",
       CASE r.approach WHEN 'original' THEN $T_ORIG_BUILD ELSE $T_CIC END AS "build s",
       round(CASE r.approach WHEN 'original' THEN $ORIG_IDX_BYTES ELSE $PW_IDX_BYTES END / 1048576.0, 1) AS "index MB"
  FROM bench_results r JOIN bench_truth t USING (qid)
 GROUP BY r.approach, r.lists, r.probes
 ORDER BY r.approach, r.probes;
SQL
echo "build s: original = insert of the $ROWS rows into the indexed table ($T_INS_IDX s) minus the same insert"
echo "         without the index ($T_INS_PLAIN s); the CREATE INDEX on the empty table took $T_EMPTY s."
echo "         partwarden = its CREATE INDEX CONCURRENTLY action (maintenance_work_mem ${MWM_PW} MB);"
echo "         the whole \`partwarden maintain\` run took $T_MAINT s."
echo "timings: data generation ${T_GEN}s, queries ${T_Q}s, ground truth ${T_TRUTH}s"
