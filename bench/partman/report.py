#!/usr/bin/env python3
"""The one table of bench/partman/run.sh.

Usage: report.py INFO TIMINGS WORKDIR

INFO      key=value lines (machine, date, partwarden, reps, sizes, server_<name> labels)
TIMINGS   tab-separated: server, figure, tool, repetition, seconds
          (tools: partwarden, dryrun = partwarden maintain --dry-run, pg_partman)
WORKDIR   holds <server>/lock.json (bench/online/report.py --json) when the lock scenario ran

Timings: min / median / max over the repetitions. Ratio: partwarden : pg_partman of each
pair (the runs of one repetition, made one after the other), as the median and the range
over the pairs.
"""
import json
import os
import statistics
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "online"))
from report import read_kv  # noqa: E402  (bench/online/report.py: one key=value reader)


def read_timings(path):
    t = {}  # (server, figure, tool) -> {rep: seconds}
    with open(path) as f:
        for line in f:
            parts = line.rstrip("\n").split("\t")
            if len(parts) != 5:
                continue
            srv, fig, tool, rep, secs = parts
            t.setdefault((srv, fig, tool), {})[int(rep)] = float(secs)
    return t


def mmm(vals):
    if not vals:
        return "—"
    v = sorted(vals)
    return f"{v[0]:.3f} / {statistics.median(v):.3f} / {v[-1]:.3f}"


def ratio(a, b):
    pairs = sorted(a[r] / b[r] for r in a if r in b and b[r] > 0)
    if not pairs:
        return "—"
    med = statistics.median(pairs)
    if len(pairs) == 1:
        return f"**{med:.2f}**"
    return f"**{med:.2f}** ({pairs[0]:.2f}–{pairs[-1]:.2f})"


def main():
    info = read_kv(sys.argv[1])
    timings = read_timings(sys.argv[2])
    work = sys.argv[3]
    servers = info.get("servers", "").split()
    mt, mp, mpre, mret = info["monthly"].split()
    dt, dp, dpre, dret = info["daily"].split()
    pk, rk = info["premake_k"], info["retention_k"]

    lock = {}
    for s in servers:
        p = os.path.join(work, s, "lock.json")
        if os.path.exists(p):
            with open(p) as f:
                rows = json.load(f)
            lock[s] = {os.path.basename(r["dir"]).removeprefix("lock_"): r for r in rows}

    head = ["measurement"]
    for s in servers:
        label = info.get(f"server_{s}", s)
        head += [f"{label}: partwarden", "pg_partman", "partwarden : pg_partman"]
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join(["---"] + ["--:"] * (len(head) - 1)) + "|"]

    figures = [
        ("noop_monthly", "partwarden", f"no-op, {mt} tables × {mp} monthly partitions (s)"),
        ("noop_monthly", "dryrun", "  … partwarden `maintain --dry-run` instead (plan only)"),
        ("noop_daily", "partwarden", f"no-op, {dt} tables × {dp} daily partitions (s)"),
        ("noop_daily", "dryrun", "  … partwarden `maintain --dry-run` instead (plan only)"),
        ("premake", "partwarden", f"premake: {pk} tables × 1 partition to create (s)"),
        ("retention", "partwarden", f"retention: {rk} tables × 1 partition to drop (s)"),
    ]
    for fig, pw_tool, name in figures:
        cells = [name]
        for s in servers:
            a = timings.get((s, fig, pw_tool), {})
            b = timings.get((s, fig, "pg_partman"), {})
            cells += [mmm(a.values()), mmm(b.values()) if pw_tool == "partwarden" else "(as above)", ratio(a, b)]
        if any(timings.get((s, fig, pw_tool)) for s in servers):
            lines.append("| " + " | ".join(cells) + " |")

    if lock:
        lt = info.get("lock_setup", "400 10 25 1s 3 1s").split()
        lock_rows = [
            ("failed inserts", lambda r: str(r["failed"] + r.get("aborted", 0))),
            ("p99 insert latency (ms)", lambda r: f"{r['p99']:.1f}"),
            ("max insert latency (ms)", lambda r: f"{r['max']:.0f}"),
            (f"inserts > {lt[3]}", lambda r: str(r["over"])),
            ("maintenance wall (s)", lambda r: f"{float(r['meta'].get('maint_wall', 'nan')):.2f}"
             + (f" + {float(r['meta']['rerun_wall']):.2f}" if r["meta"].get("rerun_wall") else "")),
        ]
        for name, fmt in lock_rows:
            cells = [f"lock scenario: {name}"]
            for s in servers:
                got = lock.get(s, {})
                cells += [fmt(got["partwarden"]) if "partwarden" in got else "—",
                          fmt(got["pg_partman"]) if "pg_partman" in got else "—", ""]
            lines.append("| " + " | ".join(cells) + " |")

    daemon_lines = daemon_table(info, servers, dt, dp)

    print(f"Machine: {info.get('machine')}; {info.get('date')}; {info.get('partwarden')}; "
          f"{info.get('reps')} repetitions per figure, the tools alternating (ABAB…); "
          f"load average (1, 5, 15 min) {info.get('load_start', '?')} at the start, "
          f"{info.get('load_end', '?')} at the end; {info.get('minutes', '?')} minutes in all.")
    print()
    print("\n".join(lines))
    print()
    print(f"Timings: min / median / max of the whole process (`partwarden maintain --wait 0` vs "
          f"`psql -c \"CALL partman.run_maintenance_proc()\"`), in seconds. Ratio: the median "
          f"of partwarden : pg_partman per repetition (range over the repetitions). Monthly: "
          f"premake {mpre}, retention {mret} months; daily: premake {dpre}, retention {dret} days; "
          f"a default partition everywhere.")
    if lock:
        lt = info.get("lock_setup", "400 10 25 1s 3 1s").split()
        print()
        print(f"Lock scenario: pgbench {lt[0]} inserts/s (-R, latency from the scheduled start) for "
              f"{lt[2]} s; at +2 s a reader holds the current month {lt[1]} s; maintenance at +3 s "
              f"has one partition to create and one to expire (partwarden: lock_timeout {lt[3]}, "
              f"ddl_attempts {lt[4]}, ddl_backoff {lt[5]}; what it gave up on is done by a second "
              f"run after the reader).")
        for s in servers:
            got = lock.get(s, {})
            notes = []
            if "none" in got:
                r = got["none"]
                notes.append(f"no maintenance: p99 {r['p99']:.1f} ms, max {r['max']:.0f} ms, "
                             f"{r['failed']} failed")
            for t in ("partwarden", "pg_partman"):
                if t in got:
                    notes.append(f"{t}: {got[t]['meta'].get('result', '?')}")
            if notes:
                print(f"- {info.get(f'server_{s}', s)}: " + "; ".join(notes) + ".")
    if daemon_lines:
        ds = info.get("daemon_setup", "1 30 15 60 200").split()
        print()
        print("\n".join(daemon_lines))
        print()
        print(f"The daemon (`partwarden run`, statistics every {ds[1]} s) on the daily set, once every "
              f"table had its start-up maintenance and one statistics refresh had finished, {ds[2]} s "
              f"more: RSS sampled once a second for {ds[3]} s, peak RSS (VmHWM) since start, "
              f"{ds[4]} GETs of `/metrics` (a new connection each), the last statistics refresh "
              f"(`partwarden_statistics_refresh_seconds`: every table's catalog snapshot with sizes). "
              f"Targets (issue 13): RSS ≤ 20 MiB, `/metrics` p99 ≤ 50 ms.")


def daemon_table(info, servers, dt, dp):
    """The daemon's figures at the daily set, per server and per_partition_metrics."""
    modes = [("true", "per-partition series"), ("false", "per-table series only")]
    have = [(s, m) for s in servers for m, _ in modes if f"daemon_{s}_{m}_rss_max_kb" in info]
    if not have:
        return []
    head = ["daemon on the daily set"] + [f"{info.get(f'server_{s}', s)}: {label}"
                                          for s in servers for m, label in modes
                                          if (s, m) in have]
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join(["---"] + ["--:"] * (len(head) - 1)) + "|"]

    def g(s, m, k):
        return info.get(f"daemon_{s}_{m}_{k}", "?")

    def mib(kb):
        try:
            return f"{int(kb) / 1024:.1f}"
        except ValueError:
            return "?"

    rows = [
        (f"partitions ({dt} tables × {dp} daily)", lambda s, m: f"{int(dt) * int(dp):,}"),
        ("RSS over the idle window, min – max (MiB)",
         lambda s, m: f"{mib(g(s, m, 'rss_min_kb'))} – {mib(g(s, m, 'rss_max_kb'))}"),
        ("peak RSS since start, VmHWM (MiB)", lambda s, m: mib(g(s, m, "hwm_kb"))),
        ("daemon CPU over the idle window (%)", lambda s, m: g(s, m, "daemon_cpu_pct")),
        ("its database backends' CPU (%)", lambda s, m: g(s, m, "backend_cpu_pct")),
        ("`/metrics` p50 / p99 / max (ms)",
         lambda s, m: f"{g(s, m, 'metrics_p50_ms')} / {g(s, m, 'metrics_p99_ms')} / {g(s, m, 'metrics_max_ms')}"),
        ("`/metrics` size (KiB), series",
         lambda s, m: f"{int(g(s, m, 'metrics_bytes')) / 1024:,.0f}, {int(g(s, m, 'metrics_series')):,}"
         if g(s, m, "metrics_bytes").isdigit() else "?"),
        ("statistics refresh (s)", lambda s, m: g(s, m, "refresh_s")),
        ("from start to every table maintained and statistics read (s)", lambda s, m: g(s, m, "settled_s")),
    ]
    for name, fmt in rows:
        lines.append("| " + " | ".join([name] + [fmt(s, m) for s, m in have]) + " |")
    return lines


if __name__ == "__main__":
    main()
