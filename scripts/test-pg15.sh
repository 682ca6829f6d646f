#!/usr/bin/env bash
# The engine tests that need no pgvector (tests/no_pgvector.rs, which the main run of
# scripts/test.sh runs on PostgreSQL 18) again on Debian's PostgreSQL 15 without pgvector:
# installs postgresql-15 with apt-get when missing (scripts/pg.sh, pw_pg15_install), starts
# a throwaway cluster on a free loopback port as an unprivileged user with the roles of
# pw_pg_bootstrap, runs the tests against it, and removes it. Every test checks that the
# server is PostgreSQL 15, and that pgvector is absent as the server says.
#
#   scripts/test-pg15.sh                 # scripts/test.sh runs it after the main suite
#   scripts/test-pg15.sh -- <filter>     # extra arguments go to `cargo test`
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/pg.sh
. scripts/pg.sh
# Run from scripts/test.sh, the main cluster's settings are in the environment.
unset PW_PG_PORT PW_PG_DATA PW_PG_ADMIN_URL PW_PG_SOCK

pw_pg15_install
tmp=$(mktemp -d "${TMPDIR:-/tmp}/partwarden-pg15.XXXXXX")
chmod 0755 "$tmp"
cleanup() { pw_pg_stop; rm -rf "$tmp"; }
trap cleanup EXIT
pw_pg_start "$tmp/pg"
pw_pg_bootstrap

pgvector=absent
if [ "$(pw_psql "$PW_PG_ADMIN_URL" -tAc "SELECT count(*) FROM pg_available_extensions WHERE name = 'vector'")" != 0 ]; then
    pgvector=present
    echo "note: pgvector is installed for PostgreSQL 15 on this machine: migrate's advice for a server without it is not tested in this run"
fi
[ "${1:-}" = "--" ] && shift

PW_TEST_ADMIN_URL=$PW_PG_ADMIN_URL PW_TEST_PG_BIN=$PW_PG_BIN \
    PW_TEST_EXPECT_SERVER_MAJOR=15 PW_TEST_EXPECT_PGVECTOR=$pgvector \
    RUST_BACKTRACE=${RUST_BACKTRACE:-1} \
    cargo test --locked --no-fail-fast --features failpoints --test no_pgvector "$@"
