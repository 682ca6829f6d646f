#!/usr/bin/env bash
# Export to Parquet (retention_mode = "export") against plain `COPY … TO` (binary) of the
# same partition to a local file: throughput, the exporting process's peak RSS, and the
# compression ratio (Parquet bytes / pg_total_relation_size). What it measures and how to
# read it: bench/README.md, section "bench/export".
#
#   bench/export/run.sh [--rows N] [--rounds R] [--quick]
#
#   --rows N     rows of GA4 events with 768-d embeddings in one monthly partition
#                (default 1000000)
#   --rounds R   COPY / export pairs, alternated; between two, `partwarden restore` puts
#                the partition back (default 2)
#   --quick      50000 rows, 1 round (to try it)
#
# Environment: BENCH_BIN (partwarden binary; default: `cargo build --release` then
# target/release/partwarden), BENCH_KEEP_LOGS=DIR (copy the logs there before the cluster
# is removed).
#
# Everything runs on a throwaway PostgreSQL 18 + pgvector cluster on a loopback port
# (scripts/pg.sh), removed on exit; the store is a directory on the same disk.
set -euo pipefail
cd "$(dirname "$0")/../.."
# shellcheck source=scripts/pg.sh
. scripts/pg.sh

ROWS=1000000
ROUNDS=2
usage() { sed -n '2,/^set -euo/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//'; }
while [ $# -gt 0 ]; do
    case $1 in
        --rows) ROWS=$2; shift 2 ;;
        --rounds) ROUNDS=$2; shift 2 ;;
        --quick) ROWS=50000; ROUNDS=1; shift ;;
        -h|--help) usage; exit 0 ;;
        *) echo "unknown argument: $1 (see --help)" >&2; exit 2 ;;
    esac
done
[[ $ROWS =~ ^[0-9]+$ ]] && [ "$ROWS" -ge 1000 ] || { echo "--rows must be an integer >= 1000" >&2; exit 2; }
[[ $ROUNDS =~ ^[0-9]+$ ]] && [ "$ROUNDS" -ge 1 ] || { echo "--rounds must be a positive integer" >&2; exit 2; }

now() { date +%s.%N; }
secs() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", b - a }'; }
log() { printf '== %s\n' "$*" >&2; }

pw_pg_install 2> >(grep -v -e RuntimeDirWarning -e user_runtime_dir >&2)
if [ -n "${BENCH_BIN:-}" ]; then
    BIN=$BENCH_BIN
else
    log "building partwarden (cargo build --release)"
    cargo build --release --quiet
    BIN=$PWD/target/release/partwarden
fi
[ -x "$BIN" ] || { echo "no partwarden binary at $BIN" >&2; exit 1; }

TMP=$(mktemp -d "${TMPDIR:-/tmp}/partwarden-xbench.XXXXXX")
chmod 0755 "$TMP"
cleanup() {
    local rc=$?
    pw_pg_stop
    if [ -n "${BENCH_KEEP_LOGS:-}" ]; then
        mkdir -p "$BENCH_KEEP_LOGS" && cp "$TMP"/*.log "$TMP"/*.json "$TMP"/*.toml "$BENCH_KEEP_LOGS"/ 2>/dev/null || true
    fi
    rm -rf "$TMP"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

pw_pg_start "$TMP/pg"
pw_pg_bootstrap
DB=xbench
ADMIN="postgres://postgres@127.0.0.1:$PW_PG_PORT/$DB"
OWNER="postgres://partwarden@127.0.0.1:$PW_PG_PORT/$DB"
pw_psql "$PW_PG_ADMIN_URL" -c "CREATE DATABASE $DB OWNER partwarden"
pw_psql "$ADMIN" -c "CREATE EXTENSION IF NOT EXISTS vector"
DATABASE_URL=$OWNER "$BIN" migrate >"$TMP/migrate.log" 2>&1 || { cat "$TMP/migrate.log" >&2; exit 1; }
PGV=$(pw_psql "$ADMIN" -At -c "SELECT extversion FROM pg_extension WHERE extname = 'vector'")
PGVER=$("$PW_PG_BIN/postgres" --version | awk '{print $3}')
log "PostgreSQL $PGVER, pgvector $PGV, $(nproc) CPU(s), $(awk '/MemTotal/ {printf "%.0f GB", $2/1048576}' /proc/meminfo)"

# The partition six months back: expired at retention 3 months.
FROM=$(date -u -d "$(date -u +%Y-%m-01) -6 months" +%Y-%m-01)
PART=archon_ga4_events_$(date -u -d "$FROM" +%Y_%m)
pw_psql "$OWNER" -At -c "SELECT create_ga4_events_partition('$FROM')" >/dev/null
SPACING=$(awk -v n="$ROWS" 'BEGIN { printf "%.6f", 20 * 86400 / n }')

# Rows as the GA4 product writes them: two tenants, text, JSONB metrics and dimensions,
# and an embedding per row: a centre (1,000 of them, N(0,1) coordinates) plus N(0, 0.3)
# noise, so no two vectors are equal (real embeddings are as incompressible as this).
log "generating $ROWS rows in $PART"
t0=$(now)
pw_psql "$ADMIN" >"$TMP/generate.log" <<SQL
SELECT setseed(0.42);
CREATE TEMP TABLE centres AS
  SELECT c, (SELECT array_agg(random_normal()::real) FROM generate_series(1, 768) WHERE c >= 0) AS v
    FROM generate_series(0, 999) c;
INSERT INTO $PART (tenant_id, property_id, event_name, event_timestamp, page_path, page_title,
                   user_pseudo_id, session_id, metrics, dimensions, embedding_768, embedding_model)
SELECT CASE WHEN g % 3 = 0 THEN '00000000-0000-0000-0000-00000000000a'::uuid
            ELSE '00000000-0000-0000-0000-00000000000b'::uuid END,
       'properties/' || (g % 40), (ARRAY['page_view','scroll','click','purchase'])[1 + g % 4],
       '$FROM 00:00:00+00'::timestamptz + make_interval(secs => g * $SPACING),
       '/products/' || (g % 5000), 'Product ' || (g % 5000), 'u.' || (g % 200000), 's.' || (g / 7),
       jsonb_build_object('engagement_time_msec', g % 60000, 'value', (g % 1000) / 10.0),
       jsonb_build_object('device', (ARRAY['desktop','mobile','tablet'])[1 + g % 3], 'country', 'C' || (g % 90)),
       (SELECT array_agg(x + random_normal(0, 0.3)::real) FROM unnest(ce.v) x)::vector,
       'text-embedding-004'
  FROM generate_series(1, $ROWS) g JOIN centres ce ON ce.c = g % 1000;
VACUUM ANALYZE $PART;
SQL
log "generated in $(secs "$t0" "$(now)") s"
SOURCE_BYTES=$(pw_psql "$ADMIN" -At -c "SELECT pg_total_relation_size('$PART')")

STORE=$TMP/store
mkdir -p "$STORE"
cat >"$TMP/bench.toml" <<TOML
[[tables]]
name = "archon_ga4_events"
retention = "3 months"
premake = 1
retention_mode = "export"

[export]
url = "file://$STORE"
TOML
COLS=$(pw_psql "$ADMIN" -At -c "SELECT string_agg(quote_ident(attname), ', ' ORDER BY attnum) FROM pg_attribute WHERE attrelid = '$PART'::regclass AND attnum > 0 AND NOT attisdropped")

results=$TMP/results.log
: >"$results"
for r in $(seq 1 "$ROUNDS"); do
    # Plain COPY, binary, to a local file on the same disk, through the same socket (as
    # the superuser: forced row-level security would hide the rows from the owner).
    rm -f "$TMP/copy.bin"
    sync
    t0=$(now)
    /usr/bin/time -f '%M' -o "$TMP/copy.rss" \
        "$PW_PG_BIN/psql" "$ADMIN" -X -q -v ON_ERROR_STOP=1 \
        -c "\\copy $PART ($COLS) TO '$TMP/copy.bin' WITH (FORMAT binary)" 2>"$TMP/copy.log" \
        || { cat "$TMP/copy.log" >&2; exit 1; }
    sync
    COPY_S=$(secs "$t0" "$(now)")
    COPY_BYTES=$(stat -c %s "$TMP/copy.bin")
    rm -f "$TMP/copy.bin"

    # partwarden's export of the same partition: detach, COPY → Parquet → manifest,
    # read-back check, drop.
    sync
    t0=$(now)
    /usr/bin/time -f '%M' -o "$TMP/export.rss" \
        env DATABASE_URL="$OWNER" "$BIN" --config "$TMP/bench.toml" maintain --table archon_ga4_events --json \
        >"$TMP/export-$r.json" 2>"$TMP/export-$r.log" || { cat "$TMP/export-$r.log" >&2; exit 1; }
    sync
    WALL_S=$(secs "$t0" "$(now)")
    read -r EXPORT_S PARQUET_BYTES EXPORTED <<<"$(python3 - "$TMP/export-$r.json" <<'PY'
import json, sys
doc = json.load(open(sys.argv[1]))
for t in doc["tables"]:
    for o in (t.get("report") or {}).get("outcomes", []):
        e = o.get("export")
        if e:
            print(f'{e["seconds"]:.2f} {e["parquet_bytes"]} {e["rows"]}')
            sys.exit(0)
sys.exit("no export in the report")
PY
)"
    [ "$EXPORTED" = "$ROWS" ] || { echo "exported $EXPORTED rows, expected $ROWS" >&2; exit 1; }
    echo "round=$r copy_s=$COPY_S copy_bytes=$COPY_BYTES copy_rss_kb=$(cat "$TMP/copy.rss") export_s=$EXPORT_S wall_s=$WALL_S parquet_bytes=$PARQUET_BYTES export_rss_kb=$(cat "$TMP/export.rss")" | tee -a "$results" >&2

    # Back for the next round (and to time a restore): held 1 s, then expired again.
    t0=$(now)
    /usr/bin/time -f '%M' -o "$TMP/restore.rss" \
        env DATABASE_URL="$OWNER" "$BIN" --config "$TMP/bench.toml" restore --table archon_ga4_events --partition "$PART" --hold 1s \
        >"$TMP/restore-$r.log" 2>&1 || { cat "$TMP/restore-$r.log" >&2; exit 1; }
    echo "round=$r restore_s=$(secs "$t0" "$(now)") restore_rss_kb=$(cat "$TMP/restore.rss")" | tee -a "$results" >&2
    rm -rf "${STORE:?}"/*
    pw_psql "$ADMIN" -q -c "DELETE FROM partwarden_exports" -c "VACUUM ANALYZE $PART"
    sleep 1.5
done

python3 - "$results" "$ROWS" "$SOURCE_BYTES" "$PGVER" "$PGV" <<'PY'
import sys, statistics
path, rows, source, pgver, pgv = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4], sys.argv[5]
runs, restores = [], []
for line in open(path):
    kv = dict(p.split("=", 1) for p in line.split())
    (runs if "copy_s" in kv else restores).append(kv)
med = lambda k, rs: statistics.median(float(r[k]) for r in rs)
copy_s, export_s, wall_s = med("copy_s", runs), med("export_s", runs), med("wall_s", runs)
print(f"\nbench/export: {rows:,} GA4 rows with 768-d embeddings, PostgreSQL {pgver}, pgvector {pgv}; "
      f"median of {len(runs)} round(s)")
print(f"partition: pg_total_relation_size {source / 2**20:,.0f} MiB; binary COPY stream {float(runs[0]['copy_bytes']) / 2**20:,.0f} MiB\n")
print(f"| | seconds | rows/s | MiB/s of COPY stream | peak RSS |")
print(f"|---|---:|---:|---:|---:|")
cb = float(runs[0]["copy_bytes"]) / 2**20
print(f"| `COPY … TO` file (binary, psql \\copy) | {copy_s:.1f} | {rows / copy_s:,.0f} | {cb / copy_s:,.0f} | {med('copy_rss_kb', runs) / 1024:.0f} MiB (psql) |")
print(f"| partwarden export (COPY → Parquet, manifest, read-back, drop) | {export_s:.1f} | {rows / export_s:,.0f} | {cb / export_s:,.0f} | {med('export_rss_kb', runs) / 1024:.0f} MiB (partwarden) |")
print(f"| whole `partwarden maintain` run | {wall_s:.1f} | | | |")
if restores:
    print(f"| `partwarden restore` (read-back, COPY in with indexes, attach) | {med('restore_s', restores):.1f} | {rows / med('restore_s', restores):,.0f} | | {med('restore_rss_kb', restores) / 1024:.0f} MiB |")
pq = med("parquet_bytes", runs)
print(f"\nthroughput, export : COPY = {copy_s / export_s:.2f} (target >= 0.5)")
print(f"peak RSS of the exporting process = {med('export_rss_kb', runs) / 1024:.0f} MiB (target <= 128)")
print(f"compression: Parquet {pq / 2**20:,.0f} MiB / pg_total_relation_size {source / 2**20:,.0f} MiB = {pq / source:.2f}")
PY
