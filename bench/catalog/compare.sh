#!/usr/bin/env bash
# Two partwarden builds through bench/catalog/run.sh in one invocation, one after the
# other on the same settings, and the idle-daemon rows of both side by side (RSS, CPU,
# /metrics latency and size), with the ratio new/old. The machine is shared and noisy:
# compare the ratio, not the absolute numbers of different days.
#
#   bench/catalog/compare.sh OLD_BIN NEW_BIN      # e.g. a build of the previous release
#
# The knobs of run.sh apply to both runs (BENCH_PARTITIONS, BENCH_IDLE, ...).
set -euo pipefail
cd "$(dirname "$0")/../.."
[ $# -eq 2 ] && [ -x "$1" ] && [ -x "$2" ] || { echo "usage: $0 OLD_BIN NEW_BIN (two executables)" >&2; exit 2; }
out=$(mktemp -d "${TMPDIR:-/tmp}/partwarden-bench-compare.XXXXXX")
trap 'rm -rf "$out"' EXIT
for side in old new; do
    bin=$1; [ "$side" = new ] && bin=$2
    echo "== $side: $bin ($("$bin" --version))" >&2
    BENCH_BIN=$bin bench/catalog/run.sh >"$out/$side.md"
done
python3 - "$out/old.md" "$out/new.md" <<'PY'
import re, sys
def rows(path):
    text = open(path).read()
    got, section = {}, ""
    for line in text.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) < 2 or set(cells[1]) <= set("-"):
            continue
        if cells[0].startswith("**"):
            section = cells[0].strip("*").split("(")[0].strip()
            continue
        got[(section, cells[0])] = cells[1]
    return text.splitlines()[0], got
(old_head, old), (new_head, new) = rows(sys.argv[1]), rows(sys.argv[2])
print(old_head.replace("Machine:", "Machine (old run):"))
print(new_head.replace("Machine:", "Machine (new run):"))
print()
print("| section | measurement | old | new | new/old (first number) |")
print("|---|---|---|---|---|")
num = re.compile(r"[0-9][0-9,]*\.?[0-9]*")
for key, o in old.items():
    sec, name = key
    if not re.search(r"RSS|CPU|/metrics|ready", name):
        continue
    n = new.get(key, "(missing)")
    a, b = num.search(o), num.search(n)
    ratio = ""
    if a and b and float(a.group().replace(",", "")) > 0:
        ratio = f"{float(b.group().replace(',', '')) / float(a.group().replace(',', '')):.2f}"
    print(f"| {sec} | {name} | {o} | {n} | {ratio} |")
PY
