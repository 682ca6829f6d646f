#!/usr/bin/env python3
"""Statistics and the summary table of bench/online/run.sh.

Usage: report.py [--json=FILE] LOCK_TIMEOUT_MS SCENARIO_DIR...

With --json=FILE it also writes each scenario's figures to FILE (a JSON list).

Each SCENARIO_DIR holds what run.sh left there:
  meta          key=value lines (method, condition, epoch timestamps, results)
  txlog.*       pgbench per-transaction logs (-l): one line per transaction
                  client_id tx_no time script_no time_epoch time_us [schedule_lag] [retries]
                `time` is the latency in microseconds (with --rate it counts from the
                scheduled start, so a stalled insert is charged for all of its wait), or
                `failed` / `serialization` / `deadlock` for a failed transaction
  pgbench.out   pgbench's summary (failed transactions), pgbench.err (aborted clients)
  lockwaits     pg_locks samples every 100 ms of lock requests not granted:
                  epoch|pid|user|application|mode|relation|query|blocking pids
"""
import glob
import json
import math
import os
import re
import sys


def read_kv(path):
    """key=value lines (the first "=" splits), as the bench scripts write them."""
    kv = {}
    with open(path) as f:
        for line in f:
            line = line.rstrip("\n")
            if "=" in line:
                k, v = line.split("=", 1)
                kv[k] = v
    return kv


def read_meta(d):
    return read_kv(os.path.join(d, "meta"))


def percentile(sorted_vals, p):
    if not sorted_vals:
        return float("nan")
    # nearest-rank
    k = max(0, math.ceil(p / 100.0 * len(sorted_vals)) - 1)
    return sorted_vals[k]


def read_log(d):
    ok = []  # (latency_ms, end_epoch_s, exec_ms)
    failed = 0
    for path in glob.glob(os.path.join(d, "txlog.*")):
        with open(path) as f:
            for line in f:
                parts = line.split()
                if len(parts) < 6:
                    continue
                t = parts[2]
                end = int(parts[4]) + int(parts[5]) / 1e6
                if t.isdigit():
                    lag = int(parts[6]) if len(parts) > 6 and parts[6].isdigit() else 0
                    ok.append((int(t) / 1000.0, end, (int(t) - lag) / 1000.0))
                else:
                    failed += 1
    return ok, failed


def fnum(meta, key):
    v = meta.get(key, "")
    try:
        return float(v)
    except ValueError:
        return None


def scenario(d, lock_timeout_ms):
    meta = read_meta(d)
    ok, failed_logged = read_log(d)
    lat = sorted(x[0] for x in ok)
    out = open(os.path.join(d, "pgbench.out")).read() if os.path.exists(os.path.join(d, "pgbench.out")) else ""
    err = open(os.path.join(d, "pgbench.err")).read() if os.path.exists(os.path.join(d, "pgbench.err")) else ""
    m = re.search(r"number of failed transactions: (\d+)", out)
    failed_reported = int(m.group(1)) if m else 0
    aborted = len(re.findall(r"client \d+ .*aborted", err))
    failed = max(failed_reported, failed_logged)
    t0 = fnum(meta, "load_start") or 0.0
    worst = max(ok, key=lambda x: x[0]) if ok else None
    row = {
        "dir": d,
        "meta": meta,
        "failed": failed,
        "aborted": aborted,
        "done": len(lat),
        "p50": percentile(lat, 50),
        "p99": percentile(lat, 99),
        "max": lat[-1] if lat else float("nan"),
        "over": sum(1 for x in lat if x > lock_timeout_ms),
        "max_exec": max((x[2] for x in ok), default=float("nan")),
        "over100": sum(1 for x in lat if x > 100.0),
    }
    if worst:
        row["worst_start"] = worst[1] - worst[0] / 1000.0 - t0
        row["worst_end"] = worst[1] - t0
    # Stall windows: maximal runs of inserts (by completion time) slower than 100 ms.
    slow = sorted((e - t0, l) for l, e, _x in ok if l > 100.0)
    windows = []
    for end, l in slow:
        start = end - l / 1000.0
        if windows and start <= windows[-1][1] + 0.05:
            windows[-1][1] = max(windows[-1][1], end)
            windows[-1][2] = max(windows[-1][2], l)
            windows[-1][3] += 1
        else:
            windows.append([start, end, l, 1])
    row["windows"] = windows
    return row


def lock_waits(d, t0):
    """Episodes of lock waits, grouped by who waits for what: {key: [[first, last, max_waiters]]}."""
    path = os.path.join(d, "lockwaits")
    if not os.path.exists(path):
        return {}
    samples = {}  # (epoch, key) -> set of pids
    for line in open(path):
        parts = line.rstrip("\n").split("|")
        if len(parts) < 8:
            continue
        try:
            ts = float(parts[0]) - t0
        except ValueError:
            continue
        _, pid, user, app, mode, relname, query, _blockers = parts[:8]
        q = query.strip()
        if q.upper().startswith("INSERT"):
            m = re.match(r"INSERT\s+INTO\s+(\S+)", q, re.I)
            q = f"INSERT INTO {m.group(1) if m else '…'} …"
        elif len(q) > 70:
            q = q[:70] + "…"
        who = user + (f" ({app})" if app and app not in ("psql", "pgbench") else "")
        key = f"{who} waits for {mode} on {relname}: {q}"
        samples.setdefault((round(ts, 3), key), set()).add(pid)
    groups = {}
    for (ts, key), pids in sorted(samples.items()):
        eps = groups.setdefault(key, [])
        if eps and ts - eps[-1][1] <= 0.25:
            eps[-1][1] = ts
            eps[-1][2] = max(eps[-1][2], len(pids))
        else:
            eps.append([ts, ts, len(pids)])
    return groups


def rel(meta, key):
    v, t0 = fnum(meta, key), fnum(meta, "load_start")
    return None if v is None or t0 is None else v - t0


def span(meta, a, b):
    x, y = rel(meta, a), rel(meta, b)
    if x is None or y is None:
        return "-"
    return f"{x:.1f}–{y:.1f} s"


def main():
    args = sys.argv[1:]
    json_out = None
    if args and args[0].startswith("--json="):
        json_out = args.pop(0)[len("--json="):]
    lock_timeout_ms = float(args[0])
    rows = [scenario(d, lock_timeout_ms) for d in args[1:]]
    if json_out:
        # The figures of each scenario, for other reports (bench/partman/report.py).
        keys = ("failed", "aborted", "done", "p50", "p99", "max", "over", "max_exec", "over100")
        with open(json_out, "w") as f:
            json.dump([dict({k: r[k] for k in keys}, dir=r["dir"], meta=r["meta"]) for r in rows], f, indent=1)
    lt = f"{lock_timeout_ms / 1000:g} s"
    header = ["method", "condition", "failed inserts", "inserts done", "p50 ms", "p99 ms",
              "max ms", f"inserts > {lt}", "longest single INSERT ms", "maintenance wall",
              "maintenance result"]
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    for r in rows:
        m = r["meta"]
        failed = str(r["failed"])
        if r["aborted"]:
            failed += f" (+{r['aborted']} client(s) aborted)"
        wall = m.get("maint_wall", "-")
        wall = f"{float(wall):.2f} s" if wall not in ("", "-") else "-"
        if m.get("rerun_wall"):
            wall += f" (+ rerun {float(m['rerun_wall']):.2f} s)"
        lines.append("| " + " | ".join([
            m.get("method", "?"), m.get("condition", "?"), failed, str(r["done"]),
            f"{r['p50']:.1f}", f"{r['p99']:.1f}", f"{r['max']:.0f}", str(r["over"]),
            f"{r['max_exec']:.0f}", wall, m.get("result", "?"),
        ]) + " |")
    print("\n".join(lines))
    print()
    print("Timeline per scenario (seconds since the load started):")
    for r in rows:
        m = r["meta"]
        print(f"- {m.get('method')} / {m.get('condition')}: load {span(m, 'load_start', 'load_end')}, "
              f"maintenance {span(m, 'maint_start', 'maint_end')}"
              + (f", rerun {span(m, 'rerun_start', 'rerun_end')}" if m.get("rerun_start") else "")
              + (f", long transaction {span(m, 'reader_start', 'reader_end')}" if m.get("reader_start") else "")
              + (f"; slowest insert waited {r['max']:.0f} ms "
                 f"({r['worst_start']:.1f}–{r['worst_end']:.1f} s)" if "worst_start" in r else ""))
        ws = r["windows"]
        if ws:
            shown = ", ".join(f"{a:.1f}–{b:.1f} s (max {l:.0f} ms, {n} inserts)" for a, b, l, n in ws[:6])
            more = f", … {len(ws) - 6} more" if len(ws) > 6 else ""
            print(f"    inserts slower than 100 ms ({r['over100']}): {shown}{more}")
        else:
            print("    no insert slower than 100 ms")
        groups = lock_waits(r["dir"], fnum(m, "load_start") or 0.0)
        if not groups:
            print("    lock waits (pg_locks, sampled every 100 ms): none seen")
        for key, eps in sorted(groups.items(), key=lambda kv: kv[1][0][0]):
            shown = ", ".join(f"{a:.1f}–{b:.1f} s" + (f" ({n} waiting)" if n > 1 else "") for a, b, n in eps[:6])
            more = f", … {len(eps) - 6} more" if len(eps) > 6 else ""
            print(f"    lock wait: {key}  at {shown}{more}")


if __name__ == "__main__":
    main()
