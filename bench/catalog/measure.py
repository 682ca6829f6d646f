#!/usr/bin/env python3
"""Measurements for bench/catalog/run.sh (stdlib only). Each subcommand prints
key=value lines (run.sh appends them to its results file) or SQL.

  catalog-sql                 partwarden's catalog query, taken from src/catalog/read.rs (the
                              text the binary sends), for PREPARE in psql
  breakdown-sql REPEAT        a psql script that times the catalog query with one part left
                              out at a time (where the time goes)
  psql-times FILE             the "Time: X ms" lines and \\echo labels of a psql run
                              -> label=ms,ms,...
  pglog LOG FROM TO           the server log between byte offsets FROM and TO: every
                              statement's duration (log_min_duration_statement = 0), as JSON
  same-sql LOGJSON            1 if the catalog statement in the log is the text
                              catalog-sql prints (whitespace aside), else 0
  ready URL SINCE_NS TIMEOUT  polls URL (/readyz) every 5 ms until it answers 200;
                              prints ms since SINCE_NS (a time.time_ns() value)
  back PGISREADY HOST PORT URL SINCE_NS TIMEOUT
                              after a database start was begun at SINCE_NS: the first
                              moment pg_isready succeeds and the first /readyz 200
  wait-code URL CODE TIMEOUT  polls URL until it answers CODE; prints seconds waited
  cpu DPID TICKS PSQL DBURL SECONDS
                              CPU of the daemon process and of its database backends
                              (application_name = partwarden) over an idle window, and
                              the daemon's RSS sampled once a second
  http URL N                  N GETs, one connection each (the daemon's server closes after
                              one request); latency of each, body size, series
  fetch URL FILE              one GET, the body saved to FILE
  rss PID                     VmRSS and VmHWM from /proc/PID/status (kB)
  settled URL TABLES TIMEOUT  polls URL (/metrics) until every one of TABLES tables has a
                              successful maintenance run and a statistics refresh has
                              finished; prints seconds waited
  gauge URL NAME              the value of the unlabelled series NAME in URL (/metrics)
"""
import http.client
import json
import os
import re
import statistics
import subprocess
import sys
import time
import urllib.parse

ROOT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))


# --- the catalog query -----------------------------------------------------------------

def catalog_sql():
    """snapshot_sql() of src/catalog/read.rs with POLICIES_JSON substituted, as format! builds it."""
    src = open(os.path.join(ROOT, "src", "catalog", "read.rs")).read()
    pol = re.search(r'const POLICIES_JSON: &str = r#"(.*?)"#;', src, re.S)
    body = re.search(r'fn snapshot_sql\(\) -> String \{\s*format!\(\s*r#"(.*?)"#\s*\)', src, re.S)
    if not pol or not body:
        sys.exit("measure.py: snapshot_sql()/POLICIES_JSON not found in src/catalog/read.rs")
    sql = body.group(1).replace("{POLICIES_JSON}", pol.group(1))
    return sql.replace("{{", "{").replace("}}", "}")


def norm(s):
    return re.sub(r"\s+", " ", s).strip()


def cut(sql, start, end_marker, replacement):
    """Replaces sql[start : end of end_marker after start] by replacement."""
    i = sql.index(start)
    j = sql.index(end_marker, i) + len(end_marker)
    return sql[:i] + replacement + sql[j:]


def breakdown_variants(sql):
    """(label, sql) pairs: the full query, then one part left out at a time. Raises
    ValueError when the query no longer has the expected shape."""
    p = sql.index("'partitions', (SELECT json_agg(")
    head, tail = sql[:p], sql[p:]

    def part(old, new):
        if old not in tail:
            raise ValueError(old)
        return head + tail.replace(old, new)

    out = [("full query", sql)]
    out.append(("without the 2nd pg_total_relation_size (the one inside size_pretty)",
                part("pg_size_pretty(pg_total_relation_size(c.oid))", "''")))
    t = tail
    for f in ("pg_total_relation_size(c.oid)", "pg_indexes_size(c.oid)"):
        if f not in t:
            raise ValueError(f)
        t = t.replace(f, "0::int8")
    out.append(("without the partition sizes (pg_total_relation_size x2, pg_indexes_size)", head + t))
    out.append(("without pg_relation_size of each partition index",
                part("pg_relation_size(i.indexrelid)", "0::int8")))
    s = part("obj_description(i.indexrelid, 'pg_class')", "NULL::text")
    out.append(("without obj_description of each partition index", s))
    # pg_get_indexdef appears for the parent's indexes (head) and the partitions' (tail).
    out.append(("without pg_get_indexdef of each partition index",
                part("'definition', pg_get_indexdef(i.indexrelid))", "'definition', '')")))
    i = tail.index("'policies', (")
    j = tail.index("c.oid)", i) + len("c.oid)")
    out.append(("without the policies of each partition", head + tail[:i] + "'policies', NULL" + tail[j:]))
    k = tail.index("'indexes', (SELECT json_agg(")
    e = tail.index("WHERE i.indrelid = c.oid)", k) + len("WHERE i.indrelid = c.oid)")
    noidx = tail[:k] + "'indexes', NULL" + tail[e:]
    out.append(("without the index list of each partition (all of its columns)", head + noidx))
    i = noidx.index("'policies', (")
    j = noidx.index("c.oid)", i) + len("c.oid)")
    core = noidx[:i] + "'policies', NULL" + noidx[j:]
    for f in ("pg_total_relation_size(c.oid)", "pg_indexes_size(c.oid)"):
        core = core.replace(f, "0::int8")
    out.append(("core only: names, bounds, reltuples (no sizes, index list, policies)", head + core))
    return out


def breakdown_sql(repeat):
    sql = catalog_sql()
    try:
        variants = breakdown_variants(sql)
    except ValueError as e:
        print(f"\\echo 'breakdown skipped: src/catalog/read.rs no longer has {e}'")
        return
    for n, (label, q) in enumerate(variants):
        print(f"PREPARE v{n}(text, text) AS {q};")
        print("\\o /dev/null")
        print(f"EXECUTE v{n}('public', 'archon_ga4_events');")  # warm-up, not counted
        print("\\o")
        print(f"\\echo 'label={label}'")
        print("\\o /dev/null")
        print("\\timing on")
        for _ in range(repeat):
            print(f"EXECUTE v{n}('public', 'archon_ga4_events');")
        print("\\timing off")
        print("\\o")
        print(f"DEALLOCATE v{n};")


def psql_times(path):
    """Groups 'Time: X ms' lines under the preceding 'label=...' echo line."""
    label, out = None, {}
    for line in open(path):
        line = line.rstrip("\n")
        if line.startswith("label="):
            label = line[len("label="):]
            out.setdefault(label, [])
        m = re.match(r"Time: ([0-9.]+) ms", line)
        if m and label is not None:
            out[label].append(float(m.group(1)))
    for k, v in out.items():
        print(f"{k}=" + ",".join(f"{x:.1f}" for x in v))


# --- the server log ----------------------------------------------------------------------

LOGLINE = re.compile(r"^(\S+ \S+) \S+ \[(\d+)\] LOG:  duration: ([0-9.]+) ms  (parse|bind|execute|statement)(?: (\S+))?: ?(.*)$")


def pglog(path, start, end):
    with open(path, "rb") as f:
        f.seek(start)
        data = f.read(end - start).decode("utf-8", "replace")
    entries, cur = [], None
    for line in data.split("\n"):
        m = LOGLINE.match(line)
        if m:
            cur = {"ts": m.group(1), "pid": int(m.group(2)), "ms": float(m.group(3)),
                   "phase": m.group(4), "name": m.group(5), "text": m.group(6)}
            entries.append(cur)
        elif cur is not None and line.startswith("\t"):
            cur["text"] += "\n" + line[1:]
        else:
            cur = None
    for e in entries:
        e["catalog"] = e["text"].lstrip().startswith("WITH parent AS (")
        if not e["catalog"]:
            e["text"] = e["text"][:120]
    print(json.dumps(entries))


def same_sql(path):
    entries = json.load(open(path))
    want = norm(catalog_sql())
    got = [norm(e["text"]) for e in entries if e["catalog"]]
    print(1 if got and all(g == want for g in got) else 0)


# --- HTTP and processes ------------------------------------------------------------------

def get(url, timeout=2.0):
    u = urllib.parse.urlsplit(url)
    c = http.client.HTTPConnection(u.hostname, u.port, timeout=timeout)
    try:
        c.request("GET", u.path or "/")
        r = c.getresponse()
        body = r.read()
        return r.status, body
    finally:
        c.close()


def ready(url, since_ns, timeout):
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            code, _ = get(url, 1.0)
            if code == 200:
                print(f"ms={(time.time_ns() - since_ns) / 1e6:.1f}")
                return
        except OSError:
            pass
        time.sleep(0.005)
    print("ms=timeout")


def back(pg_isready, host, port, url, since_ns, timeout):
    deadline = time.time() + timeout
    t_db = t_ready = None
    while time.time() < deadline and (t_db is None or t_ready is None):
        now = time.time_ns()
        if t_db is None:
            r = subprocess.run([pg_isready, "-q", "-h", host, "-p", port, "-t", "1"])
            if r.returncode == 0:
                t_db = time.time_ns()
        if t_ready is None:
            try:
                code, _ = get(url, 1.0)
                if code == 200:
                    t_ready = now
            except OSError:
                pass
        time.sleep(0.005)
    f = lambda t: "timeout" if t is None else f"{(t - since_ns) / 1e6:.1f}"
    print(f"db_ms={f(t_db)}")
    print(f"ready_ms={f(t_ready)}")
    if t_db is not None and t_ready is not None:
        print(f"after_db_ms={(t_ready - t_db) / 1e6:.1f}")


def wait_code(url, code, timeout):
    t0 = time.time()
    while time.time() - t0 < timeout:
        try:
            c, _ = get(url, 1.0)
            if c == code:
                print(f"s={time.time() - t0:.2f}")
                return
        except OSError:
            pass
        time.sleep(0.02)
    print("s=timeout")


def proc_ticks(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return int(fields[11]) + int(fields[12])  # utime, stime (fields 14, 15)
    except OSError:
        return None


def backends(psql, dburl):
    out = subprocess.run([psql, "-X", "-At", dburl, "-c",
                          "SELECT pid FROM pg_stat_activity WHERE application_name = 'partwarden'"],
                         capture_output=True, text=True, check=True).stdout
    return [int(x) for x in out.split()]


def rss(pid):
    vals = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            k, _, v = line.partition(":")
            if k in ("VmRSS", "VmHWM"):
                vals[k] = int(v.split()[0])
    return vals


def cpu(dpid, ticks, psql, dburl, seconds):
    ticks = int(ticks)
    b0 = {p: proc_ticks(p) for p in backends(psql, dburl)}
    d0 = proc_ticks(dpid)
    t0 = time.time()
    samples = []
    while time.time() - t0 < seconds:  # RSS once a second (reading /proc costs nothing)
        samples.append(rss(dpid)["VmRSS"])
        time.sleep(min(1.0, max(0.0, seconds - (time.time() - t0))))
    d1 = proc_ticks(dpid)
    wall = time.time() - t0
    b1 = {p: proc_ticks(p) for p in backends(psql, dburl)}
    used = 0
    for p, t in b1.items():
        if t is None:
            continue
        used += t - (b0.get(p) or 0)  # a backend that appeared in the window: all of it
    gone = [p for p in b0 if p not in b1]
    print(f"wall_s={wall:.1f}")
    print(f"daemon_cpu_s={(d1 - d0) / ticks:.2f}")
    print(f"daemon_cpu_pct={100.0 * (d1 - d0) / ticks / wall:.2f}")
    print(f"backend_cpu_s={used / ticks:.2f}")
    print(f"backend_cpu_pct={100.0 * used / ticks / wall:.2f}")
    print(f"backends={len(b1)}")
    print(f"backends_gone={len(gone)}")
    print(f"rss_min_kb={min(samples)}")
    print(f"rss_max_kb={max(samples)}")
    print(f"rss_samples={len(samples)}")


def pct(sorted_vals, p):
    k = max(0, int(-(-p * len(sorted_vals) // 100)) - 1)
    return sorted_vals[k]


def http_bench(url, n):
    lat, size, body = [], None, b""
    for _ in range(n):
        t = time.perf_counter()
        code, body = get(url, 5.0)
        lat.append((time.perf_counter() - t) * 1000)
        if code != 200:
            sys.exit(f"measure.py: {url} answered {code}")
        size = len(body)
    lat.sort()
    text = body.decode()
    series = [l for l in text.splitlines() if l and not l.startswith("#")]
    fams = {l.split()[2] for l in text.splitlines() if l.startswith("# TYPE ")}
    print(f"n={n}")
    print(f"p50_ms={statistics.median(lat):.2f}")
    print(f"p99_ms={pct(lat, 99):.2f}")
    print(f"max_ms={lat[-1]:.2f}")
    print(f"bytes={size}")
    print(f"series={len(series)}")
    print(f"families={len(fams)}")
    up = [l for l in series if l.startswith("partwarden_database_up")]
    print(f"database_up={up[0].split()[-1] if up else 'missing'}")


def series_value(text, name):
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[-1])
    return None


def settled(url, tables, timeout):
    t0 = time.time()
    while time.time() - t0 < timeout:
        try:
            code, body = get(url, 5.0)
        except OSError:
            code = None
        if code == 200:
            text = body.decode()
            ok = sum(1 for l in text.splitlines()
                     if l.startswith("partwarden_maintenance_runs_total{") and 'result="success"' in l
                     and float(l.split()[-1]) >= 1)
            refresh = series_value(text, "partwarden_statistics_refresh_seconds") or 0.0
            if ok >= tables and refresh > 0:
                print(f"s={time.time() - t0:.1f}")
                return
        time.sleep(0.5)
    print("s=timeout")


def gauge(url, name):
    code, body = get(url, 5.0)
    v = series_value(body.decode(), name) if code == 200 else None
    print("missing" if v is None else f"{v:.4f}")


def main():
    a = sys.argv[1:]
    if not a:
        sys.exit(__doc__)
    cmd, args = a[0], a[1:]
    if cmd == "catalog-sql":
        print(catalog_sql())
    elif cmd == "breakdown-sql":
        breakdown_sql(int(args[0]))
    elif cmd == "psql-times":
        psql_times(args[0])
    elif cmd == "pglog":
        pglog(args[0], int(args[1]), int(args[2]))
    elif cmd == "same-sql":
        same_sql(args[0])
    elif cmd == "ready":
        ready(args[0], int(args[1]), float(args[2]))
    elif cmd == "back":
        back(args[0], args[1], args[2], args[3], int(args[4]), float(args[5]))
    elif cmd == "wait-code":
        wait_code(args[0], int(args[1]), float(args[2]))
    elif cmd == "cpu":
        cpu(int(args[0]), args[1], args[2], args[3], float(args[4]))
    elif cmd == "http":
        http_bench(args[0], int(args[1]))
    elif cmd == "fetch":
        code, body = get(args[0], 5.0)
        open(args[1], "wb").write(body)
    elif cmd == "rss":
        r = rss(int(args[0]))
        print(f"rss_kb={r.get('VmRSS')}")
        print(f"hwm_kb={r.get('VmHWM')}")
    elif cmd == "settled":
        settled(args[0], int(args[1]), float(args[2]))
    elif cmd == "gauge":
        gauge(args[0], args[1])
    else:
        sys.exit(f"measure.py: unknown subcommand {cmd}\n{__doc__}")


if __name__ == "__main__":
    main()
