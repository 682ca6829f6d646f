#!/usr/bin/env bash
# The fault-injection harness at full size (issue 10): kill -9 of `partwarden maintain`
# at seeded random moments, kills and SIGTERM inside the windows that matter, and
# `pg_ctl restart -m immediate`, each followed by a recovery run and the invariants.
# The harness is tests/faults (the test suite runs a seeded subset of it); this runs it
# with the numbers below on its own private PostgreSQL 18.6 cluster and prints the table.
#
#   bench/faults/run.sh                      # ~20 minutes on 2 cores
#   KILLS=50 RESTARTS=5 WINDOWS=3 SEED=7 bench/faults/run.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
# shellcheck source=scripts/pg.sh
. scripts/pg.sh
pw_pg_install
export PW_TEST_PG_BIN=$PW_PG_BIN
export PW_FAULTS_KILLS=${KILLS:-200}
export PW_FAULTS_RESTARTS=${RESTARTS:-20}
export PW_FAULTS_WINDOWS=${WINDOWS:-10}
export PW_FAULTS_SEED=${SEED:-1}
echo "== fault trials: $PW_FAULTS_KILLS random kills, $PW_FAULTS_RESTARTS restarts, $PW_FAULTS_WINDOWS per targeted window, seed $PW_FAULTS_SEED"
status=0
cargo test --locked --features failpoints --test faults -- --nocapture --test-threads 1 >target/faults-bench.log 2>&1 || status=$?
grep -E '^trial [0-9]+ ' target/faults-bench.log || true
cat target/tmp/faults-report.md 2>/dev/null || tail -40 target/faults-bench.log
echo "(full log: target/faults-bench.log)"
exit $status
