#!/usr/bin/env python3
"""The summary table of bench/citus/run.sh, from the statistics of bench/online/report.py.

Usage: report.py LOCK_TIMEOUT_MS SCENARIO_DIR...

Each SCENARIO_DIR is laid out as bench/online's (meta, txlog.*, pgbench.out/.err,
lockwaits: the coordinator's pg_locks samples), plus w1/lockwaits and w2/lockwaits (the
workers') and, in meta: rate, load_seconds, created, expired (the coordinator's
pg_inherits before and after), created_worker_shards, expired_worker_shards_left,
citus_orphan_metadata, citus_pending_cleanup, rows_in_table.
"""
import importlib.util
import os
import sys

_spec = importlib.util.spec_from_file_location(
    "online_report", os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "online", "report.py"))
online = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(online)


def offered(meta):
    rate, secs = online.fnum(meta, "rate"), online.fnum(meta, "load_seconds")
    return None if rate is None or secs is None else round(rate * secs)


PREFIX = "archon_ga4_events_"


def short(name):
    return name[len(PREFIX):] if name.startswith(PREFIX) else name


def names(ns):
    ns = [short(n) for n in ns]
    return ", ".join(ns) if len(ns) <= 3 else f"{ns[0]} … {ns[-1]}"


def created_cell(meta):
    """ "N: names (S shards, RLS forced|NONE)", grouped by shards and RLS."""
    parts = [p.split(":") for p in meta.get("created_parts", "").split()]
    if not parts:
        return "0"
    groups = {}
    for name, shards, rls in parts:
        groups.setdefault((shards, rls), []).append(name)
    cells = []
    for (shards, rls), ns in groups.items():
        each = " each" if len(ns) > 1 else ""
        cells.append(f"{names(ns)} ({shards} shards{each}, RLS {'forced' if rls == 'forced' else '**none**'})")
    return f"{len(parts)}: " + "; ".join(cells)


def expired_cell(meta):
    ns = meta.get("expired_parts", "").split()
    return f"{len(ns)}: {names(ns)}" if ns else "0"


def main():
    lock_timeout_ms = float(sys.argv[1])
    rows = [online.scenario(d, lock_timeout_ms) for d in sys.argv[2:]]
    lt = f"{lock_timeout_ms / 1000:g} s"
    header = ["method", "condition", "inserts offered", "acknowledged", "failed", "p50 ms", "p99 ms",
              "max ms (stall)", f"inserts > {lt}", "maintenance wall", "created (pg_inherits)",
              "expired (pg_inherits)", "maintenance result"]
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    for r in rows:
        m = r["meta"]
        failed = str(r["failed"])
        if r["aborted"]:
            failed += f" (+{r['aborted']} client(s) aborted)"
        wall = m.get("maint_wall", "-")
        wall = f"{float(wall):.2f} s" if wall not in ("", "-") else "-"
        if m.get("rerun_wall"):
            wall += f" (+ run 2: {float(m['rerun_wall']):.2f} s)"
        off = offered(m)
        lines.append("| " + " | ".join([
            m.get("method", "?"), m.get("condition", "?"), "-" if off is None else f"≈{off}", str(r["done"]), failed,
            f"{r['p50']:.1f}", f"{r['p99']:.1f}", f"{r['max']:.0f}", str(r["over"]), wall,
            created_cell(m), expired_cell(m), m.get("result", "?"),
        ]) + " |")
    print("\n".join(lines))
    print()
    print(f"Partitions named without the prefix {PREFIX} (Citus names its own {PREFIX}pYYYY_MM); created"
          " and expired: the coordinator's pg_inherits before and after the maintenance; shards from pg_dist_shard;"
          " RLS: forced row-level security with the parent's policy on the new partition (coordinator).")
    print("Offered: the nominal rate × the load's duration (pgbench -R draws Poisson arrivals; what is still"
          " scheduled when -T ends is not sent). Acknowledged: committed inserts logged by pgbench.")
    print()
    print("Checks and timeline per scenario (seconds since the load started; lock waits from pg_locks"
          " sampled every 100 ms on each node):")
    for r in rows:
        m = r["meta"]
        print(f"- {m.get('method')} / {m.get('condition')}: load {online.span(m, 'load_start', 'load_end')}, "
              f"maintenance {online.span(m, 'maint_start', 'maint_end')}"
              + (f", run 2 {online.span(m, 'rerun_start', 'rerun_end')}" if m.get("rerun_start") else "")
              + (f", reader {online.span(m, 'reader_start', 'reader_end')}" if m.get("reader_start") else "")
              + (f"; slowest insert waited {r['max']:.0f} ms "
                 f"({r['worst_start']:.1f}–{r['worst_end']:.1f} s)" if "worst_start" in r else ""))
        print(f"    rows in the table {m.get('rows_in_table', '?')} (acknowledged {r['done']});"
              f" shard tables on the workers: {m.get('created_worker_shards', '?')} of the new partition(s),"
              f" {m.get('expired_worker_shards_left', '?')} of the expired left;"
              f" Citus metadata without a table: {m.get('citus_orphan_metadata', '?')};"
              f" pg_dist_cleanup: {m.get('citus_pending_cleanup', '?')}")
        if m.get("reader_locks"):
            print(f"    reader holds on the coordinator: {m['reader_locks']}")
        ws = r["windows"]
        if ws:
            shown = ", ".join(f"{a:.1f}–{b:.1f} s (max {l:.0f} ms, {n} inserts)" for a, b, l, n in ws[:6])
            more = f", … {len(ws) - 6} more" if len(ws) > 6 else ""
            print(f"    inserts slower than 100 ms ({r['over100']}): {shown}{more}")
        else:
            print("    no insert slower than 100 ms")
        errs = os.path.join(r["dir"], "server_errors")
        if os.path.exists(errs):
            for line in open(errs):
                node, count, msg = line.rstrip("\n").split("|", 2)
                print(f"    server log, {node}: {count} × {msg}")
        t0 = online.fnum(m, "load_start") or 0.0
        seen = False
        for node, sub in (("coordinator", ""), ("worker 1", "w1"), ("worker 2", "w2")):
            groups = online.lock_waits(os.path.join(r["dir"], sub), t0)
            for key, eps in sorted(groups.items(), key=lambda kv: kv[1][0][0]):
                seen = True
                shown = ", ".join(f"{a:.1f}–{b:.1f} s" + (f" ({n} waiting)" if n > 1 else "") for a, b, n in eps[:6])
                more = f", … {len(eps) - 6} more" if len(eps) > 6 else ""
                print(f"    lock wait on the {node}: {key}  at {shown}{more}")
        if not seen:
            print("    lock waits: none seen on any node")


if __name__ == "__main__":
    main()
