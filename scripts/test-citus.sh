#!/usr/bin/env bash
# The Citus suite (tests/citus.rs): builds Citus from CITUS_SRC (a Citus source tarball or
# directory; cached under target/, scripts/citus.sh) into a copy of the embedded
# PostgreSQL 18 install, starts a coordinator and two workers on free loopback ports as an
# unprivileged user, runs the suite against them, and removes them. scripts/test.sh runs it
# when CITUS_SRC is set (.ci/run sets it), and says that it did not when it is not.
#
#   CITUS_SRC=../shared/vendor/citus-15.0devel-a3d5708.tar.gz scripts/test-citus.sh
#   scripts/test-citus.sh -- <filter>     # extra arguments go to `cargo test`
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/pg.sh
. scripts/pg.sh
# shellcheck source=scripts/citus.sh
. scripts/citus.sh
[ -n "${CITUS_SRC:-}" ] || pw_die "CITUS_SRC is not set: a Citus source tarball or directory (e.g. ../shared/vendor/citus-15.0devel-a3d5708.tar.gz)"
# Run from scripts/test.sh, the main cluster's settings are in the environment.
unset PW_PG_PORT PW_PG_DATA PW_PG_ADMIN_URL PW_PG_SOCK

pw_pg_install
pw_citus_install "$CITUS_SRC"
tmp=$(mktemp -d "${TMPDIR:-/tmp}/partwarden-citus.XXXXXX")
chmod 0755 "$tmp"
cleanup() { pw_citus_stop; rm -rf "$tmp"; }
trap cleanup EXIT
pw_citus_start "$tmp"
[ "${1:-}" = "--" ] && shift

# Two at a time: each test makes its database on all three nodes, and the nodes share the
# machine's cores.
PW_TEST_CITUS_COORDINATOR_URL=$PW_CITUS_COORDINATOR_URL PW_TEST_CITUS_WORKER_URLS=$PW_CITUS_WORKER_URLS \
    PW_TEST_PG_BIN=$PW_PG_BIN RUST_BACKTRACE=${RUST_BACKTRACE:-1} \
    cargo test --locked --no-fail-fast --features failpoints --test citus "$@" -- --ignored --test-threads=2
