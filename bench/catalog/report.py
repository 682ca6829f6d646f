#!/usr/bin/env python3
"""The table of bench/catalog/run.sh.

Usage: report.py RESULTS

RESULTS holds key=value lines written by run.sh (lists of samples are comma-separated).
Timings are medians of the samples; "new connection" is the first execution in a new
session (empty relation and catalog caches in that backend), "warm" the later ones.
"""
import statistics
import sys


def load(path):
    r = {}
    for line in open(path):
        line = line.rstrip("\n")
        if "=" in line:
            k, v = line.split("=", 1)
            r[k] = v
    return r


R = load(sys.argv[1])


def get(k, default="n/a"):
    return R.get(k, default)


def nums(k):
    v = R.get(k, "")
    out = []
    for x in v.split(","):
        try:
            out.append(float(x))
        except ValueError:
            pass
    return out


def med(k):
    v = nums(k)
    return statistics.median(v) if v else float("nan")


def ms(x):
    if x != x:
        return "n/a"
    return f"{x:,.0f}" if x >= 100 else f"{x:.1f}"


def spread(k):
    v = nums(k)
    if not v:
        return "n/a"
    return f"{ms(statistics.median(v))} ms (n={len(v)}, {ms(min(v))}–{ms(max(v))})"


def mib(kb):
    try:
        return f"{int(kb) / 1024:.1f} MiB"
    except ValueError:
        return "n/a"


def num(k):
    try:
        return f"{int(float(get(k))):,}"
    except ValueError:
        return get(k)


rows = []


def row(measure, result, target="", met=""):
    rows.append((measure, result, target, met))


parts = int(get("parts", "0"))
stages = int(get("stages", "1"))
for s in range(1, stages + 1):
    p = f"s{s}_"
    total = int(get(p + "rows", "0"))
    row(f"**Statistics of {parts:,} partitions, {total / 1e6:.1f} M rows** "
        f"({get(p + 'per_part')} per partition, {int(get(p + 'table_bytes', '0')) / 2**30:.2f} GiB)", "", "", "")
    same = "same text as src/catalog/read.rs" if get(p + "status_same_sql") == "1" else "text differs from src/catalog/read.rs!"
    row("partwarden catalog snapshot: statements per table",
        f"1 ({same}); returns {int(get(p + 'catalog_json_bytes', '0')) / 2**20:.1f} MiB of JSON",
        "one catalog query", "yes")
    row("· that query, new connection (`partwarden status`, server log: parse+bind+execute)",
        spread(p + "status_query_ms"))
    row("· that query, warm connection (PREPAREd in psql, as the daemon's pooled connection runs it)",
        spread(p + "catalog_warm"))
    row("· `partwarden status --json`, whole command (process start … JSON printed)",
        spread(p + "status_wall_ms") + f"; reports {num(p + 'status_partitions')} partitions, "
        f"{num(p + 'status_rows')} rows (reltuples)")
    row("`get_ga4_partition_stats()`, 1 statement: new connection / warm",
        f"{ms(med(p + 'fn_fresh'))} / {ms(med(p + 'fn_warm'))} ms; reports {num(p + 'fn_partitions')} "
        f"partitions, {num(p + 'fn_rows')} rows (reltuples)")
    row(f"`count(*)` per partition as the tenant, {num(p + 'cnt_stmts')} statements (the default "
        "partition too): new session / second pass",
        f"{ms(med(p + 'cnt_fresh'))} / {ms(med(p + 'cnt_warm'))} ms (n={len(nums(p + 'cnt_fresh'))}); "
        f"counts {num(p + 'cnt_sum')} rows")
    row("`count(*) … GROUP BY tableoid` as the tenant, 1 statement: new connection / warm",
        f"{ms(med(p + 'grp_fresh'))} / {ms(med(p + 'grp_warm'))} ms; counts {num(p + 'grp_sum')} rows "
        f"in {num(p + 'grp_groups')} partitions")
    row("`count(*)` per partition as the owner, no tenant set (forced RLS)",
        f"counts {num(p + 'cnt_owner_sum')} rows")
    if s == 1 and "locks_catalog" in R:
        row("relation locks held afterwards inside one transaction: catalog query / "
            "`get_ga4_partition_stats()` / the count(*) per partition / the GROUP BY",
            f"{num('locks_catalog')} / {num('locks_fn')} / {num('locks_cnt')} / {num('locks_grp')}")

iv = get("stats_interval")
row(f"**Daemon (`partwarden run`) on those {parts:,} partitions, stats_interval {iv} s**", "", "", "")


def ready_row(label, key):
    v = med(key)
    met = "n/a" if v != v else ("yes" if v < 1000 else "no")
    row(label, f"{ms(v)} ms", "< 1 s", met)


ready_row("ready: process start → first `/readyz` 200 (database up)", "d_ready_ms")
row("maintenance at start", f"{get('d_start_actions')} actions (planned before start: {get('d_pending_before')})")
n_out = int(get("outages", "0"))
after = []
for i in range(n_out):
    after.append((get(f"o{i}_down_s"), get(f"o{i}_after_db_ms"), get(f"o{i}_noticed_s")))
if after:
    vals = [float(a) for _, a, _ in after if a not in ("n/a", "timeout")]
    worst = max(vals) if vals else float("nan")
    row("ready after an outage: database reachable again (pg_isready) → `/readyz` 200; down "
        + " / ".join(f"{d} s" for d, _, _ in after) + " after the daemon noticed",
        " / ".join(f"{ms(float(a))} ms" if a not in ("n/a", "timeout") else a for _, a, _ in after),
        "< 1 s", "n/a" if worst != worst else ("yes" if worst < 1000 else "no"))
    row("· time from stopping the database to `/readyz` 503",
        " / ".join(f"{n} s" for _, _, n in after))
ready_row("ready when started with the database down (up 3 s later): reachable → `/readyz` 200",
          "c_after_db_ms")
def rss_row(label, p):
    w, lo, hi, hwm = get(p + "warm_rss_kb"), get(p + "rss_min_kb"), get(p + "rss_max_kb"), get(p + "end_hwm_kb")
    try:
        met = "yes" if max(int(w), int(hi)) < 20 * 1024 else "no"
    except ValueError:
        met = "n/a"
    row(label, f"{mib(w)}; {mib(lo)} – {mib(hi)} ({get(p + 'rss_samples')} samples); peak {mib(hwm)}",
        "< 20 MB", met)


rss_row(f"RSS after {get('warmup')} s warm-up; min – max over the idle window (once a second); "
        "peak (VmHWM)", "d_")
refresh = nums("d_refresh_query_ms")
try:
    per = f", ≈ {float(get('d_daemon_cpu_s')) * 1000 / len(refresh):.0f} ms per refresh"
except (ValueError, ZeroDivisionError):
    per = ""
row(f"CPU over an idle {get('d_wall_s')} s window: the partwarden process",
    f"{get('d_daemon_cpu_pct')} % of one core ({get('d_daemon_cpu_s')} s{per})", "near zero")
row("· its PostgreSQL backends in the same window",
    f"{get('d_backend_cpu_pct')} % of one core ({get('d_backend_cpu_s')} s): {len(refresh)} catalog "
    f"refreshes, median {ms(statistics.median(refresh)) if refresh else 'n/a'} ms each, "
    f"+ {get('d_other_statements')} other statements ({get('d_other_statements_ms')} ms)", "near zero")
row(f"`/metrics`, {get('d_metrics_n')} GETs (new connection each): p50 / p99 / max",
    f"{get('d_metrics_p50_ms')} / {get('d_metrics_p99_ms')} / {get('d_metrics_max_ms')} ms",
    "served from memory")
row("`/metrics` size",
    f"{int(get('d_metrics_bytes', '0')) / 1024:,.0f} KiB, {num('d_metrics_series')} series in "
    f"{get('d_metrics_families')} families (`/status`: {int(get('d_status_bytes', '0')) / 1024:,.0f} KiB)")
row(f"`/metrics` while the database is down, {get('o_metrics_n')} GETs: p50 / p99",
    f"{get('o_metrics_p50_ms')} / {get('o_metrics_p99_ms')} ms, {num('o_metrics_series')} series, "
    f"partwarden_database_up {get('o_metrics_database_up')}", "served from memory",
    "yes" if get("o_metrics_series") not in ("n/a", "0") else "no")
row("SIGTERM → exit: code, time (running daemon / the one started with the database down)",
    f"{get('d_term_rc')} in {get('d_term_ms')} ms / {get('c_term_rc')} in {get('c_term_ms')} ms")

row(f"**Reference: the same daemon on a freshly migrated database ({get('r_parts')} partitions, "
    f"default config, stats_interval {iv} s)**", "", "", "")
ready_row("ready: process start → first `/readyz` 200", "r_ready_ms")
rss_row("RSS after warm-up; min – max over the idle window; peak", "r_")
rr = nums("r_refresh_query_ms")
row(f"CPU over an idle {get('r_wall_s')} s window: partwarden / its backends",
    f"{get('r_daemon_cpu_pct')} % / {get('r_backend_cpu_pct')} % of one core "
    f"({len(rr)} refreshes, median {ms(statistics.median(rr)) if rr else 'n/a'} ms each)", "near zero")
row(f"`/metrics`, {get('r_metrics_n')} GETs: p50 / p99; size",
    f"{get('r_metrics_p50_ms')} / {get('r_metrics_p99_ms')} ms; "
    f"{int(get('r_metrics_bytes', '0')) / 1024:,.1f} KiB, {num('r_metrics_series')} series")

print(f"Machine: {get('machine')}; PostgreSQL {get('postgres')}; {get('partwarden')} "
      f"(release build); {get('date')}.")
print(f"Table: {get('config')}. Timings: median of {get('repeat')} runs "
      f"({get('count_repeat')} sessions for the per-partition count(*)).")
print()
print("| measurement | result | SPEC §8 target | met |")
print("|---|---|---|---|")
for m, r, t, k in rows:
    print(f"| {m} | {r} | {t} | {k} |")

if "bd0_label" in R or "bd_skipped" in R:
    print()
    if "bd_skipped" in R:
        print(R["bd_skipped"])
    else:
        print(f"Where the catalog query's time goes ({parts:,} partitions, "
              f"{get('partition_indexes')} partition indexes; warm connection, median of 3):")
        print()
        print("| variant of the query | ms | vs full |")
        print("|---|---|---|")
        full = None
        i = 0
        while f"bd{i}_label" in R:
            v = med(f"bd{i}_ms")
            if full is None:
                full = v
            print(f"| {R[f'bd{i}_label']} | {ms(v)} | {'' if i == 0 else f'{v - full:+,.0f} ms'} |")
            i += 1
