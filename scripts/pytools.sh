#!/usr/bin/env bash
# Python tools the export tests and bench/export use, installed once into target/pytools
# (PYTHONPATH=target/pytools): DuckDB, the outside reader that checks the Parquet files,
# and moto's S3-compatible server (with boto3, to make buckets and fetch objects).
# Idempotent: a matching install is kept.
set -euo pipefail
cd "$(dirname "$0")/.."
dir=target/pytools
want="duckdb==1.4.5 moto[server]==5.2.5"
stamp="$dir/.partwarden-pytools"
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
    exit 0
fi
echo "[pytools] installing $want into $dir"
rm -rf "$dir"
# shellcheck disable=SC2086
python3 -m pip install -q --disable-pip-version-check --no-warn-conflicts --target "$dir" $want
echo "$want" > "$stamp"
