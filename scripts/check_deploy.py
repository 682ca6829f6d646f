#!/usr/bin/env python3
"""The checks behind scripts/check-deploy.sh (run it, not this file).

    check_deploy.py build-stage               replay the Dockerfile's build stage on the host
    check_deploy.py binary BIN                the built binary: migrations embedded, libraries,
                                              configs (shipped + ConfigMap), HTTP smoke test
    check_deploy.py kubernetes                manifests: policy (security, probes, resources,
                                              secret/config wiring), Services, ServiceMonitor,
                                              PrometheusRule == alerts.yml; writes the core
                                              kinds and the rule groups for the offline tools
    check_deploy.py docs                      every kubectl command in docs/operations.md and
                                              README.md names what the manifests have
    check_deploy.py compose                   docker-compose.yml: structure, mounts exist
    check_deploy.py grafana                   dashboard JSON and provisioning files
    check_deploy.py metrics [METRICS_FILE]    every metric name used by the dashboard, the
                                              alert rules and the PrometheusRule is exported

Each prints what it checked and exits 1 on any failure. Needs PyYAML (the tools venv).
"""

import contextlib
import json
import os
import pathlib
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

import yaml

ROOT = pathlib.Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy"
K8S = DEPLOY / "kubernetes"
COMPOSE = DEPLOY / "compose" / "docker-compose.yml"
DASHBOARD = DEPLOY / "grafana" / "dashboards" / "partwarden.json"
ALERTS = DEPLOY / "prometheus" / "alerts.yml"
PROMRULE = K8S / "prometheusrule.yaml"
METRICS_RS = ROOT / "src" / "telemetry" / "metrics.rs"
WORK = ROOT / "target" / "check-deploy"

PORT = 9464
UID = 65532


class Checker:
    def __init__(self, name):
        self.name = name
        self.errors = []
        self.count = 0

    def ok(self, cond, what):
        self.count += 1
        if not cond:
            self.errors.append(what)
        return cond

    def fail(self, what):
        self.ok(False, what)

    def done(self):
        for e in self.errors:
            print(f"  FAIL {self.name}: {e}")
        if self.errors:
            print(f"  {self.name}: {len(self.errors)} of {self.count} checks failed")
            return 1
        print(f"  {self.name}: {self.count} checks passed")
        return 0


def rel(p):
    try:
        return str(pathlib.Path(p).resolve().relative_to(ROOT))
    except ValueError:
        return str(p)


def load_all(path):
    with open(path, encoding="utf-8") as f:
        return [d for d in yaml.safe_load_all(f) if d is not None]


# --------------------------------------------------------------------------- Dockerfile


def parse_dockerfile(path=ROOT / "Dockerfile"):
    """Stages of a Dockerfile: [{name, base, instructions: [(INSTR, args)]}]."""
    text = path.read_text(encoding="utf-8")
    logical, buf = [], ""
    for line in text.splitlines():
        s = line.strip()
        if not buf and (not s or s.startswith("#")):
            continue
        if buf and s.startswith("#"):
            continue  # comment lines inside a continuation are dropped by Docker too
        if s.endswith("\\"):
            buf += s[:-1] + " "
            continue
        logical.append(buf + s)
        buf = ""
    stages = []
    for line in logical:
        instr, _, args = line.partition(" ")
        instr = instr.upper()
        args = args.strip()
        if instr == "FROM":
            m = re.match(r"(?:--\S+\s+)*(\S+)(?:\s+AS\s+(\S+))?", args, re.I)
            stages.append({"base": m.group(1), "name": m.group(2) or str(len(stages)), "instructions": []})
        elif stages:
            stages[-1]["instructions"].append((instr, args))
    return stages


def split_flags(args):
    flags, rest = [], args.split()
    while rest and rest[0].startswith("--"):
        flags.append(rest.pop(0))
    return flags, rest


def build_stage():
    c = Checker("dockerfile build stage")
    stages = parse_dockerfile()
    c.ok(len(stages) >= 2, "the Dockerfile has a build stage and a runtime stage")
    build = next((s for s in stages if s["name"] == "build"), None)
    if not c.ok(build is not None, "a stage named `build`"):
        return c.done()
    runtime = stages[-1]
    c.ok(build["base"].startswith("rust:"), f"build stage is based on the Rust image (got {build['base']})")
    stage_root = WORK / "build-root"
    workdir = pathlib.PurePosixPath("/")
    runs = []
    copied = []
    for instr, args in build["instructions"]:
        if instr == "WORKDIR":
            workdir = workdir / args
        elif instr in ("COPY", "ADD"):
            c.ok(instr == "COPY", f"{instr} {args}: use COPY")
            flags, parts = split_flags(args)
            srcs, dest = parts[:-1], parts[-1]
            dest_path = workdir / dest
            for src in srcs:
                copied.append((src, dest_path, dest.endswith("/") or len(srcs) > 1))
        elif instr == "RUN":
            flags, parts = split_flags(args)
            runs.append((workdir, " ".join(parts)))
    c.ok(
        any(re.search(r"\bcargo build\b.*--release\b.*--locked\b.*--bin partwarden\b", r) for _, r in runs),
        "the build stage runs `cargo build --release --locked --bin partwarden`",
    )
    # Stage the build context exactly as the COPY lines do, under target/check-deploy.
    ignore = (ROOT / ".dockerignore").read_text(encoding="utf-8").splitlines()
    allowed = [l[1:].rstrip("/") for l in ignore if l.startswith("!")]
    c.ok(any(l.strip() == "*" for l in ignore), ".dockerignore is an allow-list (starts by excluding *)")
    for src, dest, into_dir in copied:
        host = ROOT / src
        if not c.ok(host.exists(), f"COPY source {src} exists"):
            continue
        c.ok(src.rstrip("/") in allowed or src.rstrip("/").split("/")[0] in allowed,
             f"COPY source {src} is let through by .dockerignore")
        target = stage_root / str(dest).lstrip("/")
        if into_dir or (host.is_file() and str(dest).endswith("/")):
            target = target / host.name
        if host.is_dir():
            if target.exists():
                shutil.rmtree(target)
            shutil.copytree(host, target)  # copy2: mtimes kept, so cargo sees no change
        else:
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(host, target)
    for instr, args in runtime["instructions"]:
        if instr == "COPY":
            flags, parts = split_flags(args)
            if not any(f.startswith("--from=") for f in flags):
                for src in parts[:-1]:
                    c.ok((ROOT / src).exists(), f"runtime COPY source {src} exists")
                    c.ok(src in allowed, f"runtime COPY source {src} is let through by .dockerignore")
    # target/ of the staged workdir is the repository's target/: the release build reuses it.
    wd_host = stage_root / str(workdir).lstrip("/")
    wd_host.mkdir(parents=True, exist_ok=True)
    link = wd_host / "target"
    if link.is_symlink() or not link.exists():
        if link.is_symlink():
            link.unlink()
        link.symlink_to(os.path.relpath(ROOT / "target", wd_host))
    env = {k: v for k, v in os.environ.items()
           if not (k.startswith("CARGO_") and k not in ("CARGO_HOME",)) and k not in
           ("RUSTFLAGS", "RUSTDOCFLAGS", "RUSTC_WRAPPER", "CARGO_ENCODED_RUSTFLAGS")}
    skip = os.environ.get("PW_SKIP_RELEASE_BUILD") == "1"
    for wd, cmd in runs:
        host_wd = stage_root / str(wd).lstrip("/")
        if skip:
            print(f"  SKIPPED (PW_SKIP_RELEASE_BUILD=1): in {rel(host_wd)}: {cmd}")
            continue
        print(f"  in {rel(host_wd)} (= {wd} of the build stage): {cmd}", flush=True)
        t0 = time.monotonic()
        r = subprocess.run(["sh", "-c", cmd], cwd=host_wd, env=env)
        c.ok(r.returncode == 0, f"RUN {cmd} exited {r.returncode}")
        print(f"  ... exit {r.returncode} after {time.monotonic() - t0:.0f}s", flush=True)
    # The runtime stage copies the binary out of the build stage.
    for instr, args in runtime["instructions"]:
        if instr == "COPY":
            flags, parts = split_flags(args)
            if "--from=build" in flags:
                for src in parts[:-1]:
                    p = stage_root / src.lstrip("/")
                    c.ok(p.exists(), f"COPY --from=build {src}: {rel(p)} exists after the build")
    return c.done()


# --------------------------------------------------------------------------- binary

ALLOWED_LIBS = re.compile(
    r"^(linux-vdso\.so\.1|ld-linux-x86-64\.so\.2|ld-linux-aarch64\.so\.1|libc\.so\.6|libm\.so\.6|"
    r"libgcc_s\.so\.1|libpthread\.so\.0|libdl\.so\.2|librt\.so\.1|libutil\.so\.1|"
    r"libstdc\+\+\.so\.6|libgomp\.so\.1|libssl\.so\.3|libcrypto\.so\.3)$"
)


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def http_get(url, timeout=2.0):
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            return r.status, r.read().decode("utf-8", "replace")
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode("utf-8", "replace")


def configmap_toml():
    for doc in load_all(K8S / "configmap.yaml"):
        if doc.get("kind") == "ConfigMap" and doc["metadata"]["name"] == "partwarden-config":
            return doc["data"]["partwarden.toml"]
    return None


def binary(path):
    c = Checker("binary")
    b = pathlib.Path(path).resolve()
    if not c.ok(b.exists(), f"{rel(b)} exists (built by the build stage)"):
        return c.done()
    r = subprocess.run([str(b), "--version"], capture_output=True, text=True)
    c.ok(r.returncode == 0 and r.stdout.startswith("partwarden "), f"--version: {r.stdout.strip()}")
    print(f"  {rel(b)}: {r.stdout.strip()}, {b.stat().st_size / 1e6:.1f} MB")
    # The migrations are compiled in: the image has no migrations/ directory.
    data = b.read_bytes()
    for sql in sorted((ROOT / "migrations").glob("*.sql")):
        c.ok(sql.read_bytes() in data, f"migrations/{sql.name} is embedded in the binary, byte for byte")
    # Only libraries that distroless `cc` has.
    r = subprocess.run(["ldd", str(b)], capture_output=True, text=True)
    libs = [l.split()[0] for l in r.stdout.splitlines() if l.strip()]
    libs = [os.path.basename(l) for l in libs]
    bad = [l for l in libs if not ALLOWED_LIBS.match(l)]
    c.ok(not bad, f"linked only against glibc/libgcc (distroless cc has no others): {bad}")
    print(f"  dynamic libraries: {', '.join(libs)}")
    env_base = {"PATH": "/usr/bin:/bin", "HOME": "/nonexistent"}
    # The image's configuration and the Kubernetes ConfigMap's are valid.
    r = subprocess.run([str(b), "check-config"], capture_output=True, text=True,
                       env={**env_base, "PARTWARDEN_CONFIG": str(ROOT / "config/partwarden.toml")})
    c.ok(r.returncode == 0, f"check-config of the image's /etc/partwarden/partwarden.toml: {r.stderr.strip()}")
    toml = configmap_toml()
    if c.ok(toml is not None, "ConfigMap partwarden-config has partwarden.toml"):
        WORK.mkdir(parents=True, exist_ok=True)
        cm = WORK / "configmap-partwarden.toml"
        cm.write_text(toml, encoding="utf-8")
        r = subprocess.run([str(b), "check-config", str(cm)], capture_output=True, text=True, env=env_base)
        c.ok(r.returncode == 0 and "configuration OK" in r.stdout,
             f"check-config of the ConfigMap's partwarden.toml: {r.stderr.strip()}")
        c.ok("[tables.vector_index]" not in toml or "[tables.vector_index]" in r.stdout,
             "the ConfigMap's table keeps its vector index policy")
    # Smoke test of `partwarden run` as the container runs it: the image's config file,
    # DATABASE_URL pointing nowhere (nothing listens on port 1), an empty working
    # directory, a minimal environment. /healthz must not depend on the database,
    # /readyz must.
    port = free_port()
    cwd = tempfile.mkdtemp(prefix="partwarden-smoke-")
    env = {**env_base, "PARTWARDEN_CONFIG": str(ROOT / "config/partwarden.toml"),
           "DATABASE_URL": "postgres://partwarden@127.0.0.1:1/nowhere",
           "PARTWARDEN__HTTP__LISTEN": f"127.0.0.1:{port}",
           "PARTWARDEN__DATABASE__CONNECT_TIMEOUT": "1s"}
    log = open(WORK / "smoke.log", "w")
    proc = subprocess.Popen([str(b), "run"], cwd=cwd, env=env, stdout=log, stderr=subprocess.STDOUT)
    metrics_text = None
    try:
        t0 = time.monotonic()
        code = None
        while time.monotonic() - t0 < 10:
            try:
                code, _ = http_get(f"http://127.0.0.1:{port}/healthz", 1)
                break
            except OSError:
                time.sleep(0.1)
        c.ok(code == 200, f"/healthz answers 200 without a database (got {code})")
        if code == 200:
            print(f"  /healthz 200 after {time.monotonic() - t0:.2f}s, database unreachable")
            code, body = http_get(f"http://127.0.0.1:{port}/readyz")
            c.ok(code == 503, f"/readyz answers 503 while the database is unreachable (got {code} {body.strip()})")
            code, metrics_text = http_get(f"http://127.0.0.1:{port}/metrics")
            c.ok(code == 200 and "partwarden_database_up 0" in metrics_text,
                 "/metrics answers 200 with partwarden_database_up 0")
            code, body = http_get(f"http://127.0.0.1:{port}/status")
            c.ok(code == 200 and json.loads(body).get("database_up") is False, "/status answers JSON")
            time.sleep(1)
            rss = int(open(f"/proc/{proc.pid}/status").read().split("VmRSS:")[1].split()[0])
            print(f"  RSS of `partwarden run` (no database): {rss / 1024:.1f} MiB")
            c.ok(rss < 20 * 1024, f"RSS {rss} kB under SPEC §8's 20 MB")
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            rc = proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            rc = "killed"
        log.close()
        shutil.rmtree(cwd, ignore_errors=True)
    c.ok(rc == 0, f"SIGTERM stops `partwarden run` with exit 0 (got {rc}); log in {rel(WORK / 'smoke.log')}")
    if metrics_text is not None:
        (WORK / "metrics.txt").write_text(metrics_text, encoding="utf-8")
        live = dict(re.findall(r"^# TYPE (\S+) (\S+)$", metrics_text, re.M))
        parsed = exported_families()
        # Without a database only the process's own families exist yet.
        c.ok(set(live.items()) <= set(parsed.items()) and "partwarden_database_up" in live,
             f"/metrics families are among those of src/telemetry/metrics.rs FAMILIES "
             f"(served, not listed: {sorted(set(live.items()) - set(parsed.items()))})")
        print(f"  /metrics serves {len(live)} families; saved to {rel(WORK / 'metrics.txt')}")
    return c.done()


# --------------------------------------------------------------------------- Kubernetes

CRD_GROUPS = ("monitoring.coreos.com/",)


def pod_templates(docs):
    for d in docs:
        if d.get("kind") in ("Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job"):
            yield d, d["spec"]["template"]
        elif d.get("kind") == "Pod":
            yield d, d


def is_partwarden(container):
    return "partwarden" in container.get("image", "").split("/")[-1].split(":")[0]


def probe_path(probe):
    return ((probe or {}).get("httpGet") or {}).get("path")


def k8s_secure(c, where, ctr, pod_sc):
    sc = ctr.get("securityContext") or {}
    c.ok(sc.get("runAsNonRoot", pod_sc.get("runAsNonRoot")) is True, f"{where}: runAsNonRoot")
    c.ok(sc.get("readOnlyRootFilesystem") is True, f"{where}: readOnlyRootFilesystem")
    c.ok(sc.get("allowPrivilegeEscalation") is False, f"{where}: allowPrivilegeEscalation false")
    c.ok("ALL" in ((sc.get("capabilities") or {}).get("drop") or []), f"{where}: capabilities drop ALL")
    c.ok(sc.get("privileged") is not True, f"{where}: not privileged")
    seccomp = (sc.get("seccompProfile") or pod_sc.get("seccompProfile") or {}).get("type")
    c.ok(seccomp == "RuntimeDefault", f"{where}: seccompProfile RuntimeDefault")
    res = ctr.get("resources") or {}
    for kind in ("requests", "limits"):
        for r in ("cpu", "memory"):
            c.ok(r in (res.get(kind) or {}), f"{where}: resources.{kind}.{r}")


def k8s_wiring(c, where, ctr, volumes, configmaps, secrets, pod_sc):
    """Checks a partwarden container's configuration and database URL; returns what it is
    wired to: (ConfigMap at /etc/partwarden, PARTWARDEN_CONFIG, the URL's Secret and key)."""
    env = {e["name"]: e for e in ctr.get("env") or []}
    mounts = {m["mountPath"]: m for m in ctr.get("volumeMounts") or []}
    # Configuration: a ConfigMap at /etc/partwarden, file partwarden.toml.
    cm = None
    cfg = mounts.get("/etc/partwarden")
    if c.ok(cfg is not None, f"{where}: config mounted at /etc/partwarden"):
        vol = volumes.get(cfg["name"], {})
        cm = (vol.get("configMap") or {}).get("name")
        c.ok(cm in configmaps and "partwarden.toml" in configmaps[cm].get("data", {}),
             f"{where}: /etc/partwarden is ConfigMap {cm} with partwarden.toml")
        c.ok(cfg.get("readOnly") is True, f"{where}: config mount read-only")
    cfg_env = env.get("PARTWARDEN_CONFIG", {}).get("value", "/etc/partwarden/partwarden.toml")
    c.ok(cfg_env == "/etc/partwarden/partwarden.toml", f"{where}: PARTWARDEN_CONFIG is /etc/partwarden/partwarden.toml")
    # Database URL: DATABASE_URL from a Secret, or a url_file mounted from a Secret.
    url = env.get("DATABASE_URL")
    url_file = env.get("PARTWARDEN__DATABASE__URL_FILE")
    source = None
    c.ok(url is not None or url_file is not None, f"{where}: database URL from DATABASE_URL or PARTWARDEN__DATABASE__URL_FILE")
    if url is not None:
        ref = (url.get("valueFrom") or {}).get("secretKeyRef")
        c.ok(ref is not None and "value" not in url, f"{where}: DATABASE_URL from a secretKeyRef")
        if ref:
            c.ok(ref["name"] in secrets and ref["key"] in (secrets[ref["name"]].get("stringData") or secrets[ref["name"]].get("data") or {}),
                 f"{where}: Secret {ref['name']} has key {ref['key']}")
            source = (ref["name"], ref["key"])
    if url_file is not None:
        path = url_file.get("value", "")
        mdir, fname = path.rsplit("/", 1)
        m = mounts.get(mdir)
        if c.ok(m is not None, f"{where}: url_file {path}: a volume is mounted at {mdir}"):
            sv = (volumes.get(m["name"]) or {}).get("secret") or {}
            c.ok(sv.get("secretName") in secrets, f"{where}: {mdir} is Secret {sv.get('secretName')}")
            items = {i["path"]: i["key"] for i in sv.get("items") or []}
            sec = secrets.get(sv.get("secretName"), {})
            keys = set((sec.get("stringData") or {}) | (sec.get("data") or {}))
            c.ok(items.get(fname, fname) in keys, f"{where}: the secret has the key behind {fname}")
            mode = sv.get("defaultMode", 0o644)
            c.ok(mode & 0o004 == 0, f"{where}: the secret file is not world-readable (defaultMode {oct(mode)})")
            c.ok(mode & 0o040 == 0 or pod_sc.get("fsGroup") == UID, f"{where}: fsGroup {UID} makes the secret file readable")
            source = (sv.get("secretName"), items.get(fname, fname))
    return (cm, cfg_env, source)


def k8s_migrate_job(c, where, job, ctr):
    """A Job of partwarden runs `migrate` once: retried a few times, cleaned up after."""
    spec = job["spec"]
    pod = spec["template"]["spec"]
    c.ok((ctr.get("args") or ctr.get("command") or []) == ["migrate"], f"{where}: args [migrate]")
    c.ok(pod.get("restartPolicy") in ("Never", "OnFailure"), f"{where}: restartPolicy Never or OnFailure")
    c.ok(isinstance(spec.get("backoffLimit"), int) and 1 <= spec["backoffLimit"] <= 10, f"{where}: backoffLimit between 1 and 10")
    c.ok(isinstance(spec.get("ttlSecondsAfterFinished"), int), f"{where}: ttlSecondsAfterFinished (the finished Job is cleaned up)")
    c.ok(not any(p in ctr for p in ("livenessProbe", "readinessProbe", "startupProbe", "ports")),
         f"{where}: a one-shot command: no probes, no ports")
    for rule in (spec.get("podFailurePolicy") or {}).get("rules") or []:
        named = (rule.get("onExitCodes") or {}).get("containerName")
        c.ok(named in (None, ctr["name"]), f"{where}: podFailurePolicy names container {named}, which is {ctr['name']}")
        c.ok(pod.get("restartPolicy") == "Never", f"{where}: podFailurePolicy needs restartPolicy Never")


def kubernetes(k8s=K8S, work=WORK, name="kubernetes"):
    """The manifests of `k8s` (the self-test gives it broken copies); the core kinds and the
    rule groups are written under `work` for kubernetes-validate and promtool."""
    c = Checker(name)
    files = sorted(k8s.glob("*.yaml"))
    c.ok(files, "deploy/kubernetes has manifests")
    docs, core_dir = [], work / "kubernetes-core"
    if core_dir.exists():
        shutil.rmtree(core_dir)
    core_dir.mkdir(parents=True)
    for f in files:
        fdocs = load_all(f)
        core = [d for d in fdocs if not d.get("apiVersion", "").startswith(CRD_GROUPS)]
        for d in fdocs:
            c.ok(d.get("apiVersion") and d.get("kind") and (d.get("metadata") or {}).get("name"),
                 f"{rel(f)}: every document has apiVersion, kind and metadata.name")
            docs.append((f, d))
        if core:
            with open(core_dir / f.name, "w", encoding="utf-8") as out:
                yaml.safe_dump_all(core, out, sort_keys=False)
    all_docs = [d for _, d in docs]
    kinds = {}
    for d in all_docs:
        kinds.setdefault(d["kind"], []).append(d)
    print("  documents: " + ", ".join(f"{k} {len(v)}" for k, v in sorted(kinds.items())))

    configmaps = {d["metadata"]["name"]: d for d in kinds.get("ConfigMap", [])}
    secrets = {d["metadata"]["name"]: d for d in kinds.get("Secret", [])}
    sidecars, jobs, standalones = [], [], 0  # sidecars, jobs: (workload, container, wiring)
    pw_pods = []  # (workload, template, partwarden container, native sidecar?)
    for wl, tpl in pod_templates(all_docs):
        name = f"{wl['kind']}/{wl['metadata']['name']}"
        spec = tpl["spec"]
        pod_sc = spec.get("securityContext") or {}
        c.ok((pod_sc.get("seccompProfile") or {}).get("type") == "RuntimeDefault", f"{name}: pod seccompProfile RuntimeDefault")
        c.ok(pod_sc.get("runAsNonRoot") is True, f"{name}: pod runAsNonRoot")
        c.ok(spec.get("automountServiceAccountToken") is False, f"{name}: automountServiceAccountToken false")
        if wl["kind"] not in ("Pod", "Job"):  # a Job selects its pods itself
            sel = wl["spec"]["selector"]["matchLabels"]
            labels = tpl["metadata"]["labels"]
            c.ok(all(labels.get(k) == v for k, v in sel.items()), f"{name}: selector matches the template's labels")
        volumes = {v["name"]: v for v in spec.get("volumes") or []}
        init = spec.get("initContainers") or []
        main = spec.get("containers") or []
        for ctr in init + main:
            k8s_secure(c, f"{name} container {ctr['name']}", ctr, pod_sc)
            for probe in ("livenessProbe", "readinessProbe", "startupProbe"):
                path = probe_path(ctr.get(probe))
                if probe == "startupProbe" and ctr.get(probe):
                    c.ok(path != "/readyz", f"{name} {ctr['name']}: no startupProbe on /readyz")
        for ctr in init + main:
            if not is_partwarden(ctr):
                continue
            where = f"{name} container {ctr['name']}"
            c.ok((ctr.get("securityContext") or {}).get("runAsUser", pod_sc.get("runAsUser")) == UID,
                 f"{where}: runAsUser {UID} (the image's user)")
            wiring = k8s_wiring(c, where, ctr, volumes, configmaps, secrets, pod_sc)
            if wl["kind"] == "Job":
                k8s_migrate_job(c, where, wl, ctr)
                jobs.append((wl, ctr, wiring))
                continue
            native = ctr in init
            if native:
                c.ok(ctr.get("restartPolicy") == "Always", f"{where}: a native sidecar (initContainers, restartPolicy: Always)")
                c.ok(bool(main), f"{where}: next to an application container")
                c.ok("readinessProbe" not in ctr, f"{where}: no readinessProbe (a native sidecar's readiness gates its pod)")
                c.ok("startupProbe" not in ctr, f"{where}: no startupProbe (it would gate the application's start)")
                sidecars.append((wl, ctr, wiring))
            else:
                c.ok(len(main) == 1 and not init, f"{where}: partwarden alone in its pod (else run it as a native sidecar)")
                rp = ctr.get("readinessProbe")
                c.ok(rp is None or probe_path(rp) == "/readyz", f"{where}: readiness (if any) on /readyz")
                standalones += 1
            c.ok(probe_path(ctr.get("livenessProbe")) == "/healthz", f"{where}: livenessProbe httpGet /healthz")
            lp = ((ctr.get("livenessProbe") or {}).get("httpGet") or {}).get("port")
            ports = {p.get("name"): p["containerPort"] for p in ctr.get("ports") or []}
            c.ok(PORT in ports.values(), f"{where}: containerPort {PORT}")
            c.ok(lp == PORT or ports.get(lp) == PORT, f"{where}: liveness probes port {PORT}")
            args = ctr.get("args") or ctr.get("command") or []
            c.ok(args[:1] == ["run"], f"{where}: args [run]")
            pw_pods.append((wl, tpl, ctr, native))
    c.ok(sidecars, "a Deployment runs partwarden as a native sidecar next to an application")
    c.ok(standalones >= 1, "a Deployment runs partwarden alone (standalone, one database)")
    # The migration Job runs what the sidecar runs, with what it runs with.
    images = {ctr.get("image") for _, tpl in pod_templates(all_docs)
              for ctr in (tpl["spec"].get("initContainers") or []) + tpl["spec"]["containers"] if is_partwarden(ctr)}
    c.ok(len(images) == 1, f"every partwarden container runs the same image (got {sorted(images)})")
    if c.ok(len(jobs) == 1, f"one Job runs `partwarden migrate` (got {len(jobs)})") and sidecars:
        (job, jctr, jwiring), (sc_wl, sctr, swiring) = jobs[0], sidecars[0]
        where = f"Job/{job['metadata']['name']}"
        side = f"Deployment/{sc_wl['metadata']['name']}"
        c.ok(jwiring == swiring, f"{where}: the same ConfigMap at /etc/partwarden and the same database Secret as {side} ({jwiring} vs {swiring})")
        c.ok(jctr.get("securityContext") == sctr.get("securityContext"), f"{where}: the same container securityContext as {side}'s partwarden")
        c.ok(jctr.get("resources") == sctr.get("resources"), f"{where}: the same resources as {side}'s partwarden")

    # Services: port `metrics` 9464 selecting pods that run partwarden.
    pw_services = []
    for svc in kinds.get("Service", []):
        labels = svc["metadata"].get("labels") or {}
        if labels.get("app.kubernetes.io/name") != "partwarden":
            continue
        pw_services.append(svc)
        name = f"Service/{svc['metadata']['name']}"
        port = next((p for p in svc["spec"]["ports"] if p.get("name") == "metrics"), None)
        if not c.ok(port is not None and port["port"] == PORT, f"{name}: port `metrics` {PORT}"):
            continue
        sel = svc["spec"].get("selector") or {}
        targets = [(wl, tpl, ctr, native) for wl, tpl, ctr, native in pw_pods
                   if all((tpl["metadata"].get("labels") or {}).get(k) == v for k, v in sel.items())]
        c.ok(len(targets) == 1, f"{name}: selects the pods of exactly one partwarden workload (got {len(targets)})")
        for wl, tpl, ctr, native in targets:
            tp = port.get("targetPort", port["port"])
            ports = {p.get("name"): p["containerPort"] for p in ctr.get("ports") or []}
            c.ok(tp == PORT or ports.get(tp) == PORT, f"{name}: targetPort {tp} is partwarden's {PORT}")
            if native:
                c.ok(isinstance(tp, int), f"{name}: numeric targetPort for a native sidecar (named ports of init containers are not resolved before Kubernetes 1.32)")
    c.ok(len(pw_services) >= 2, "a metrics Service for the sidecars and one for the standalone Deployment")

    # ServiceMonitor: selects those Services, port metrics, job label "partwarden".
    sms = kinds.get("ServiceMonitor", [])
    if c.ok(len(sms) == 1, "one ServiceMonitor"):
        sm = sms[0]
        sel = sm["spec"]["selector"].get("matchLabels") or {}
        for svc in pw_services:
            labels = svc["metadata"].get("labels") or {}
            c.ok(all(labels.get(k) == v for k, v in sel.items()),
                 f"ServiceMonitor selects Service/{svc['metadata']['name']}")
            job = labels.get(sm["spec"].get("jobLabel"), svc["metadata"]["name"])
            c.ok(job == "partwarden", f"Service/{svc['metadata']['name']} is scraped as job=\"partwarden\" (the alerts' up{{job=\"partwarden\"}}), got {job}")
        eps = sm["spec"].get("endpoints") or []
        c.ok(eps and all(e.get("port") == "metrics" and e.get("path", "/metrics") == "/metrics" for e in eps),
             "ServiceMonitor scrapes port `metrics` at /metrics")
    # PrometheusRule: exactly alerts.yml's groups.
    prs = kinds.get("PrometheusRule", [])
    if c.ok(len(prs) == 1, "one PrometheusRule"):
        groups = prs[0]["spec"]["groups"]
        c.ok(groups == yaml.safe_load(ALERTS.read_text(encoding="utf-8"))["groups"],
             "PrometheusRule spec.groups == deploy/prometheus/alerts.yml groups")
        with open(work / "prometheusrule-groups.yml", "w", encoding="utf-8") as out:
            yaml.safe_dump({"groups": groups}, out, sort_keys=False)
    print(f"  core kinds for kubernetes-validate: {rel(core_dir)}; rule groups: {rel(work / 'prometheusrule-groups.yml')}")
    return c


def kubernetes_selftest():
    """The manifest checks catch a migration Job that drifted from the sidecar: each broken
    copy of deploy/kubernetes must fail with the expected complaint."""
    c = Checker("kubernetes self-test")

    def job_container(docs):
        job = next(d for d in docs if d.get("kind") == "Job")
        return job, job["spec"]["template"]["spec"]["containers"][0]

    def image(docs):
        job_container(docs)[1]["image"] = "partwarden:9.9.9"

    def config(docs):
        job_container(docs)[0]["spec"]["template"]["spec"]["volumes"][0]["configMap"]["name"] = "other"

    def secret(docs):
        env = job_container(docs)[1]["env"]
        next(e for e in env if e["name"] == "DATABASE_URL")["valueFrom"]["secretKeyRef"]["key"] = "password"

    def args(docs):
        job_container(docs)[1]["args"] = ["run"]

    def hardening(docs):
        job_container(docs)[1]["securityContext"]["readOnlyRootFilesystem"] = False

    cases = [
        (image, "every partwarden container runs the same image"),
        (config, "the same ConfigMap at /etc/partwarden and the same database Secret"),
        (secret, "Secret partwarden-database has key password"),
        (args, "args [migrate]"),
        (hardening, "readOnlyRootFilesystem"),
    ]
    with tempfile.TemporaryDirectory(prefix="partwarden-k8s-selftest-") as tmp:
        for mutate, expected in cases:
            k8s = pathlib.Path(tmp) / mutate.__name__
            shutil.copytree(K8S, k8s)
            job_file = k8s / "migrate-job.yaml"
            docs = load_all(job_file)
            mutate(docs)
            with open(job_file, "w", encoding="utf-8") as out:
                yaml.safe_dump_all(docs, out, sort_keys=False)
            with open(os.devnull, "w") as devnull, contextlib.redirect_stdout(devnull):
                broken = kubernetes(k8s, pathlib.Path(tmp) / f"{mutate.__name__}-work", mutate.__name__)
            c.ok(any(expected in e for e in broken.errors),
                 f"a Job with a broken {mutate.__name__} fails with {expected!r} (got {broken.errors})")
    return c.done()


# --------------------------------------------------------------------------- docs

DOC_FILES = [ROOT / "docs" / "operations.md", ROOT / "README.md"]
# kubectl's resource types and the kinds they name.
K8S_TYPES = {"deploy": "Deployment", "deployment": "Deployment", "deployments": "Deployment",
             "job": "Job", "jobs": "Job", "svc": "Service", "service": "Service",
             "services": "Service", "secret": "Secret", "secrets": "Secret", "cm": "ConfigMap",
             "configmap": "ConfigMap", "configmaps": "ConfigMap", "pod": "Pod", "po": "Pod",
             "pods": "Pod"}
# kubectl flags that take a value (the value is not a resource).
K8S_VALUE_FLAGS = {"-c", "--container", "-f", "--filename", "-n", "--namespace", "-l", "--selector",
                   "--timeout", "--for", "-o", "--output", "--image", "--profile", "--custom",
                   "--target", "--from-literal", "--from-file", "--type", "--since", "--tail"}
PLACEHOLDER = re.compile(r"[<>…$]|^(REGISTRY|TAG|NAME)\b")


def doc_commands(text):
    """Shell commands in a markdown text: the lines of fenced code blocks (continuations
    joined, heredoc bodies left out) and the inline code spans of the prose (a span may
    wrap to the next line), each as (line number, text)."""
    out, fence, buf, heredoc = [], None, "", None
    prose, prose_start = [], 0

    def spans():
        joined = " ".join(prose)
        out.extend((prose_start, m) for m in re.findall(r"`([^`]+)`", joined))
        prose.clear()

    for n, line in enumerate(text.splitlines(), 1):
        s = line.strip()
        if s.startswith("```"):
            spans()
            fence = None if fence else (s[3:].strip() or "sh")
            continue
        if fence:
            if heredoc:
                heredoc = None if s == heredoc else heredoc
                continue
            if fence not in ("sh", "bash", "shell", "console"):
                continue
            m = re.search(r"<<-?'?\"?(\w+)", s)
            if m:
                heredoc = m.group(1)
            if s.endswith("\\"):
                buf += s[:-1] + " "
                continue
            out.append((n, buf + s))
            buf = ""
        elif not s:
            spans()
        else:
            if not prose:
                prose_start = n
            prose.append(s)
    spans()
    return out


def manifest_index(k8s=K8S):
    """{(kind, name): document} of the manifests."""
    index = {}
    for f in sorted(k8s.glob("*.yaml")):
        for d in load_all(f):
            index[(d["kind"], d["metadata"]["name"])] = d
    return index


def cli_commands():
    """partwarden's subcommands: the variants of `enum Command` in src/main.rs, kebab-cased."""
    src = (ROOT / "src" / "main.rs").read_text(encoding="utf-8")
    body = re.search(r"enum Command \{(.*?)\n\}", src, re.S).group(1)
    names = re.findall(r"^\s{4}([A-Z]\w*)", body, re.M)
    return {re.sub(r"(?<!^)([A-Z])", r"-\1", n).lower() for n in names}


def pod_containers(doc):
    spec = doc["spec"]["template"]["spec"] if doc["kind"] != "Pod" else doc["spec"]
    return (spec.get("initContainers") or []) + (spec.get("containers") or [])


def default_container(doc):
    """The container kubectl exec/logs use without -c: the annotated default, else the first
    of `containers` (never an init container, so never a native sidecar)."""
    tpl = doc["spec"]["template"] if doc["kind"] != "Pod" else doc
    named = ((tpl.get("metadata") or {}).get("annotations") or {}).get("kubectl.kubernetes.io/default-container")
    return named or tpl["spec"]["containers"][0]["name"]


def check_kubectl(words, index, commands, dockerfile_bin):
    """What is wrong with one kubectl command line (its words after `kubectl`), against the
    manifests: the resources it names exist, so do its containers, files, Secret keys and
    ports, and what it runs in a partwarden container is a partwarden command."""
    problems = []
    if "--" in words:
        cut = words.index("--")
        words, inner = words[:cut], words[cut + 1:]
    else:
        inner = []
    flags, positional, i = {}, [], 0
    while i < len(words):
        w = words[i]
        if w.startswith("-"):
            key, eq, value = w.partition("=")
            if not eq and key in K8S_VALUE_FLAGS and i + 1 < len(words):
                value, i = words[i + 1], i + 1
            flags.setdefault(key, []).append(value)
        else:
            positional.append(w)
        i += 1
    verb = positional[0] if positional else ""
    rest = positional[1:]
    if verb in ("rollout", "set", "create") and rest:
        verb, rest = f"{verb} {rest[0]}", rest[1:]
    if verb == "create secret" and rest:
        rest = rest[1:]  # generic, tls, docker-registry
        rest = [f"secret/{rest[0]}"] + rest[1:] if rest else rest
    refs, others = [], []
    j = 0
    while j < len(rest):
        w = rest[j]
        typ, slash, name = w.partition("/")
        if slash and typ in K8S_TYPES:
            refs.append((K8S_TYPES[typ], name))
        elif not slash and w in K8S_TYPES and j + 1 < len(rest) and verb in ("get", "delete", "describe", "wait", "logs", "scale"):
            refs.append((K8S_TYPES[w], rest[j + 1]))
            j += 1
        else:
            others.append(w)
        j += 1
    for path in flags.get("-f", []) + flags.get("--filename", []):
        if path != "-" and not PLACEHOLDER.search(path) and not (ROOT / path).exists():
            problems.append(f"file {path} does not exist")
    workloads = []
    for kind, name in refs:
        if PLACEHOLDER.search(name):
            continue
        doc = index.get((kind, name))
        if doc is None:
            problems.append(f"no {kind} {name} in deploy/kubernetes")
        elif kind in ("Deployment", "Job", "Pod"):
            workloads.append(doc)
    containers = flags.get("-c", []) + flags.get("--container", [])
    for doc in workloads:
        names = [ctr["name"] for ctr in pod_containers(doc)]
        where = f"{doc['kind']}/{doc['metadata']['name']}"
        for ctr in containers:
            if ctr not in names:
                problems.append(f"{where} has no container {ctr} (it has {', '.join(names)})")
        if verb in ("exec", "logs") and not containers:
            default = default_container(doc)
            image = next(ctr.get("image", "") for ctr in pod_containers(doc) if ctr["name"] == default)
            if "partwarden" not in image:
                problems.append(f"{where}: without -c, kubectl {verb} uses container {default} (image {image}), not partwarden's")
        if verb == "set image":
            for pair in others:
                ctr = pair.partition("=")[0]
                if ctr not in names:
                    problems.append(f"{where} has no container {ctr} to set the image of")
        if verb == "port-forward":
            ports = {p["containerPort"] for ctr in pod_containers(doc) for p in ctr.get("ports") or []}
            for pair in others:
                remote = pair.rpartition(":")[2]
                if remote.isdigit() and int(remote) not in ports:
                    problems.append(f"{where} has no containerPort {remote}")
    for target in flags.get("--target", []):
        if not any(ctr["name"] == target for d in index.values() if d["kind"] in ("Deployment", "Job")
                   for ctr in pod_containers(d) if "partwarden" in ctr.get("image", "")):
            problems.append(f"--target={target} is no partwarden container")
    for literal in flags.get("--from-literal", []):
        key = literal.partition("=")[0]
        for kind, name in refs:
            sec = index.get(("Secret", name)) or {}
            keys = set((sec.get("stringData") or {}) | (sec.get("data") or {}))
            if kind == "Secret" and sec and key not in keys:
                problems.append(f"Secret {name} has no key {key} (the manifests read {', '.join(sorted(keys))})")
    if verb == "exec" and inner and workloads:
        binary, sub = inner[0], (inner[1:2] or [""])[0]
        if binary not in ("partwarden", dockerfile_bin):
            problems.append(f"runs {binary}: the image has partwarden at {dockerfile_bin} (on PATH as partwarden), and no shell")
        elif sub not in commands:
            problems.append(f"partwarden has no command {sub!r} (it has {', '.join(sorted(commands))})")
    return problems


def check_sed_image(words, index):
    """`sed … s|image: PATTERN|…| FILES`: in each file PATTERN (a sed regex, here only `.`
    and `*`) matches the image of every partwarden container, and no other image."""
    problems = []
    script = next((w for w in words if re.match(r"s(.)image: ", w)), None)
    if not script:
        return problems
    pattern = script[2:].split(script[1])[0].removeprefix("image: ")
    regex = re.compile(re.escape(pattern).replace(r"\.\*", ".*").replace(r"\.", "."))
    for f in [w for w in words if w.endswith((".yaml", ".yml"))]:
        path = ROOT / f
        if not path.exists():
            problems.append(f"file {f} does not exist")
            continue
        ctrs = [ctr for d in load_all(path) if d.get("kind") in ("Deployment", "Job", "Pod")
                for ctr in pod_containers(d)]
        missed = sorted({ctr.get("image", "") for ctr in ctrs
                         if is_partwarden(ctr) and not regex.fullmatch(ctr.get("image", ""))})
        wrong = sorted({ctr.get("image", "") for ctr in ctrs
                        if not is_partwarden(ctr) and regex.fullmatch(ctr.get("image", ""))})
        if missed:
            problems.append(f"{f}: the sed does not match partwarden's image {', '.join(missed)}")
        if wrong:
            problems.append(f"{f}: the sed would also replace {', '.join(wrong)}")
    return problems


def dockerfile_binary():
    """Where the runtime stage puts the binary."""
    runtime = parse_dockerfile()[-1]
    for instr, args in runtime["instructions"]:
        if instr == "COPY" and "--from=build" in args and args.rstrip().endswith("partwarden"):
            return args.split()[-1]
    return None


def docs_problems(text, index, commands, dockerfile_bin):
    """(line, command, problem) of every kubectl and image-setting command of a markdown text."""
    found = []
    for n, cmd in doc_commands(text):
        try:
            words = shlex.split(cmd, comments=True)
        except ValueError:
            continue
        # One command at a time: split at pipes and command separators.
        segment = []
        for w in words + [";"]:
            if w in ("|", "||", "&&", ";", "&"):
                if segment[:1] == ["kubectl"]:
                    found += [(n, cmd, p) for p in check_kubectl(segment[1:], index, commands, dockerfile_bin)]
                elif segment[:1] == ["sed"]:
                    found += [(n, cmd, p) for p in check_sed_image(segment[1:], index)]
                segment = []
            else:
                segment.append(w)
    return found


def docs():
    """Every kubectl command in docs/operations.md and README.md names what the manifests have."""
    c = Checker("docs")
    index, commands, binary = manifest_index(), cli_commands(), dockerfile_binary()
    c.ok(binary == "/usr/local/bin/partwarden", f"the image has the binary at /usr/local/bin/partwarden (got {binary})")
    c.ok({"run", "maintain", "status", "migrate", "check-config"} <= commands, f"partwarden's commands parsed from src/main.rs: {sorted(commands)}")
    for f in DOC_FILES:
        text = f.read_text(encoding="utf-8")
        checked = [cmd for _, cmd in doc_commands(text) if re.search(r"\b(kubectl|sed) ", cmd)]
        print(f"  {rel(f)}: {len(checked)} kubectl and sed commands")
        problems = docs_problems(text, index, commands, binary)
        for n, cmd, problem in problems:
            c.fail(f"{rel(f)}:{n}: {cmd}: {problem}")
        c.count += len(checked) - len(problems)
    return c.done()


def docs_selftest():
    """The doc checker finds each broken reference, one problem each, and none in good ones."""
    c = Checker("docs self-test")
    index, commands, binary = manifest_index(), cli_commands(), dockerfile_binary()
    good = """```sh
kubectl exec deploy/analytics-app -c partwarden -- partwarden maintain --dry-run
kubectl exec deploy/partwarden -- /usr/local/bin/partwarden status
kubectl apply -f deploy/kubernetes/migrate-job.yaml && \\
  kubectl wait --for=condition=complete --timeout=5m job/partwarden-migrate
kubectl logs job/partwarden-migrate
kubectl delete job partwarden-migrate --ignore-not-found
kubectl create secret generic partwarden-database --from-literal=url='postgres://x'
kubectl set image deploy/analytics-app partwarden=registry.example.com/partwarden:0.2.0
kubectl port-forward deploy/analytics-app 9464:9464 &
kubectl debug pod/<pod> --target=partwarden --image=busybox:1.36 -- kill -HUP 1
sed -i "s|image: partwarden:0.1.0|image: $IMAGE|" deploy/kubernetes/migrate-job.yaml
sed -i "s|image: .*partwarden:.*|image: $IMAGE|" deploy/kubernetes/sidecar.yaml
```
and inline `kubectl exec deploy/partwarden -- partwarden migrate`."""
    problems = docs_problems(good, index, commands, binary)
    c.ok(not problems, f"good references pass: {problems}")
    bad = [
        ("kubectl exec deploy/nope -- partwarden status", "no Deployment nope"),
        ("kubectl exec deploy/analytics-app -- partwarden status", "without -c, kubectl exec uses container app"),
        ("kubectl exec deploy/analytics-app -c nope -- partwarden status", "has no container nope"),
        ("kubectl wait --for=condition=complete job/partwarden-migrat", "no Job partwarden-migrat"),
        ("kubectl apply -f deploy/kubernetes/migrate.yaml", "file deploy/kubernetes/migrate.yaml does not exist"),
        ("kubectl exec deploy/partwarden -- partwarden maintian", "partwarden has no command 'maintian'"),
        ("kubectl exec deploy/partwarden -- sh -c 'partwarden status'", "runs sh"),
        ("kubectl create secret generic partwarden-db --from-literal=url=x", "no Secret partwarden-db"),
        ("kubectl create secret generic partwarden-database --from-literal=uri=x", "Secret partwarden-database has no key uri"),
        ("kubectl set image deploy/analytics-app migrate=x:1", "has no container migrate"),
        ("kubectl port-forward svc/analytics-app 9464:9464", "no Service analytics-app"),
        ("kubectl port-forward deploy/analytics-app 9187:9187", "has no containerPort 9187"),
        ("kubectl debug pod/<pod> --target=app --image=busybox -- kill -HUP 1", "--target=app is no partwarden container"),
        ("sed -i 's|image: partwarden:latest|image: x|' deploy/kubernetes/sidecar.yaml", "does not match partwarden's image partwarden:0.1.0"),
        ("sed -i 's|image: .*:.*|image: x|' deploy/kubernetes/sidecar.yaml", "would also replace registry.k8s.io/pause"),
    ]
    for cmd, expected in bad:
        found = docs_problems(f"```sh\n{cmd}\n```\n", index, commands, binary)
        c.ok(len(found) == 1 and expected in found[0][2], f"{cmd!r}: one problem, {expected!r} (got {[p for _, _, p in found]})")
        inline = docs_problems(f"text `{cmd}` text", index, commands, binary)
        c.ok([p for _, _, p in inline] == [p for _, _, p in found], f"{cmd!r} inline: the same problem")
    return c.done()


# --------------------------------------------------------------------------- compose


def compose():
    c = Checker("compose")
    base = COMPOSE.parent
    doc = yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))
    services = doc.get("services") or {}
    named = set((doc.get("volumes") or {}).keys())
    for want in ("postgres", "partwarden-migrate", "partwarden", "prometheus", "alertmanager", "grafana"):
        c.ok(want in services, f"service {want}")
    mounts_of = {}
    nbind = 0
    for name, svc in services.items():
        c.ok("image" in svc or "build" in svc, f"{name}: image or build")
        mapping = []
        for v in svc.get("volumes") or []:
            if isinstance(v, dict):
                src, dst, typ = v.get("source"), v.get("target"), v.get("type", "volume")
            else:
                parts = v.split(":")
                src, dst = parts[0], parts[1] if len(parts) > 1 else parts[0]
                typ = "bind" if src.startswith((".", "/", "~")) else "volume"
            if typ == "bind":
                host = (base / src).resolve()
                nbind += 1
                c.ok(host.exists(), f"{name}: bind mount source {src} -> {rel(host)} exists")
                mapping.append((dst, host))
            else:
                c.ok(src in named, f"{name}: named volume {src} is declared")
        mounts_of[name] = mapping
        b = svc.get("build")
        if b:
            ctx = (base / (b["context"] if isinstance(b, dict) else b)).resolve()
            df = ctx / (b.get("dockerfile", "Dockerfile") if isinstance(b, dict) else "Dockerfile")
            c.ok(df.exists(), f"{name}: build context {rel(ctx)} has {df.name}")
        # Absolute container paths in the command and environment that lie under a bind
        # mount must exist on the host side.
        strings = [str(x) for x in (svc.get("command") or [])] if isinstance(svc.get("command"), list) else [str(svc.get("command") or "")]
        envv = svc.get("environment") or {}
        strings += [str(v) for v in (envv.values() if isinstance(envv, dict) else [e.split("=", 1)[-1] for e in envv])]
        for s in strings:
            for path in re.findall(r"(/[\w./-]+)", s):
                for dst, host in mapping:
                    if path == dst or path.startswith(dst.rstrip("/") + "/"):
                        hp = host / os.path.relpath(path, dst)
                        c.ok(hp.exists(), f"{name}: {path} (in command/environment) is {rel(hp)}, which exists")
        for dep, cond in (svc.get("depends_on") or {}).items() if isinstance(svc.get("depends_on"), dict) else []:
            c.ok(dep in services, f"{name}: depends on existing service {dep}")
    print(f"  {len(services)} services, {nbind} bind mounts")
    pw, mig = services.get("partwarden", {}), services.get("partwarden-migrate", {})
    c.ok(mig.get("command") == ["migrate"], "partwarden-migrate runs `migrate`")
    c.ok(pw.get("command") == ["run"], "partwarden runs `run`")
    c.ok(((pw.get("depends_on") or {}).get("partwarden-migrate") or {}).get("condition") == "service_completed_successfully",
         "partwarden starts after partwarden-migrate completed successfully")
    c.ok(((mig.get("depends_on") or {}).get("postgres") or {}).get("condition") == "service_healthy",
         "partwarden-migrate waits for postgres to be healthy")
    c.ok("healthcheck" in services.get("postgres", {}), "postgres has a healthcheck")
    c.ok("pgvector" in services.get("postgres", {}).get("image", ""), "postgres image has pgvector")
    for n in ("partwarden", "partwarden-migrate"):
        s = services.get(n, {})
        c.ok(s.get("read_only") is True and "ALL" in (s.get("cap_drop") or []) and str(s.get("user", "")).split(":")[0] == str(UID),
             f"{n}: non-root ({UID}), read-only, no capabilities")
        c.ok(s.get("build", {}).get("context") and (base / s["build"]["context"] / "Dockerfile").exists(), f"{n}: built from the Dockerfile")
    # Image tags pinned (no :latest, no untagged).
    for name, svc in services.items():
        img = svc.get("image", "")
        if img and "build" not in svc:
            c.ok(":" in img.split("/")[-1] and not img.endswith(":latest"), f"{name}: image {img} is pinned by tag")
    # Prometheus loads ../prometheus; Alertmanager ../alertmanager; Grafana provisioning.
    prom = mounts_of.get("prometheus", [])
    c.ok(any(h == (DEPLOY / "prometheus").resolve() for _, h in prom), "prometheus mounts ../prometheus (the rules)")
    c.ok(any(h == (DEPLOY / "alertmanager").resolve() for _, h in mounts_of.get("alertmanager", [])), "alertmanager mounts ../alertmanager")
    graf = mounts_of.get("grafana", [])
    prov = yaml.safe_load((DEPLOY / "grafana/provisioning/dashboards/partwarden.yml").read_text(encoding="utf-8"))
    for p in prov.get("providers") or []:
        path = p["options"]["path"]
        hit = [(d, h) for d, h in graf if path == d or path.startswith(d.rstrip("/") + "/")]
        c.ok(bool(hit), f"grafana: the dashboard provider's path {path} is a bind mount")
        for d, h in hit:
            hp = h / os.path.relpath(path, d)
            c.ok((hp / DASHBOARD.name).exists(), f"grafana: {path} holds {DASHBOARD.name}")
    c.ok(any(d == "/etc/grafana/provisioning/dashboards" for d, _ in graf), "grafana: dashboard provisioning mounted")
    c.ok(any(d == "/etc/grafana/provisioning/datasources" for d, _ in graf), "grafana: datasource provisioning mounted")
    ds = yaml.safe_load((DEPLOY / "grafana/provisioning/datasources/prometheus.yml").read_text(encoding="utf-8"))
    for d in ds.get("datasources") or []:
        host = re.match(r"https?://([^:/]+)", d.get("url", ""))
        c.ok(host and host.group(1) in services, f"grafana datasource {d.get('name')}: {d.get('url')} is a compose service")
    return c.done()


# --------------------------------------------------------------------------- Grafana


def walk_panels(panels):
    for p in panels:
        yield p
        yield from walk_panels(p.get("panels") or [])


def grafana():
    c = Checker("grafana")
    d = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    c.ok(d.get("uid") == "partwarden", "dashboard uid is \"partwarden\"")
    c.ok("__inputs" not in d and "__requires" not in d, "no __inputs/__requires (provisioning does not resolve them)")
    c.ok(d.get("id") is None, "no numeric id (Grafana assigns it)")
    tvars = {v["name"]: v for v in (d.get("templating") or {}).get("list") or []}
    dsv = tvars.get("datasource", {})
    c.ok(dsv.get("type") == "datasource" and dsv.get("query") == "prometheus",
         "template variable `datasource` of type datasource, query prometheus")
    want_ds = {"type": "prometheus", "uid": "${datasource}"}
    for name, v in tvars.items():
        if v.get("type") == "query":
            c.ok(v.get("datasource") == want_ds, f"variable {name} uses ${{datasource}}")
    ids = []
    npanels = ntargets = 0
    for p in walk_panels(d.get("panels") or []):
        ids.append(p.get("id"))
        g = p.get("gridPos") or {}
        c.ok(all(k in g for k in "hwxy") and g["x"] + g["w"] <= 24, f"panel {p.get('title')}: gridPos within 24 columns")
        if p.get("type") == "row":
            continue
        npanels += 1
        c.ok(p.get("datasource") == want_ds, f"panel {p.get('title')}: datasource ${{datasource}}")
        c.ok(bool(p.get("targets")), f"panel {p.get('title')}: has queries")
        for t in p.get("targets") or []:
            ntargets += 1
            c.ok(t.get("datasource") in (None, want_ds), f"panel {p.get('title')} query {t.get('refId')}: datasource ${{datasource}}")
            c.ok(bool(t.get("expr")), f"panel {p.get('title')} query {t.get('refId')}: has an expr")
    c.ok(len(ids) == len(set(ids)), "panel ids are unique")
    all_exprs = [e for _, e in dashboard_exprs()]
    exprs = "\n".join(all_exprs)
    # What the dashboard must show (issue #6).
    for what, pattern in [
        ("partitions per table", r"partwarden_partitions\b"),
        ("future coverage", r"partwarden_future_coverage_seconds"),
        ("future partitions", r"partwarden_future_partitions"),
        ("sizes per partition", r"by \(table, partition\) \(partwarden_partition_size_bytes"),
        ("default-partition rows", r"partwarden_default_partition_rows"),
        ("maintenance runs by result", r"by \(table, result\) \(increase\(partwarden_maintenance_runs_total"),
        ("maintenance duration histogram", r"histogram_quantile\(.*partwarden_maintenance_duration_seconds_bucket"),
        ("indexes missing", r"partwarden_indexes_missing"),
        ("indexes invalid", r"partwarden_indexes_invalid"),
        ("vector indexes missing", r"partwarden_vector_indexes_missing"),
        ("vector indexes invalid", r"partwarden_vector_indexes_invalid"),
        ("RLS drift", r"partwarden_partitions_rls_drift"),
        ("probe latency quantiles", r"histogram_quantile\(0\.95, sum by \(table, le\) \(rate\(partwarden_probe_query_duration_seconds_bucket"),
        ("leader", r"partwarden_leader"),
        ("database up", r"partwarden_database_up"),
    ]:
        c.ok(any(re.search(pattern, e) for e in all_exprs), f"the dashboard shows {what}")
    unused = [f for f in exported_families() if not re.search(re.escape(f) + r"(_bucket|_sum|_count)?\b", exprs)]
    if unused:
        print(f"  note: exported families not on the dashboard: {', '.join(unused)}")
    # Every query, with Grafana's variables substituted, as a recording rule: `promtool
    # check rules` on that file parses each one as PromQL.
    subst = {"$table": ".*", "${table}": ".*", "$__rate_interval": "2m", "$__interval": "30s",
             "$__range": "1h", "${datasource}": ""}
    rules = []
    for i, (where, e) in enumerate(dashboard_exprs()):
        for k, v in subst.items():
            e = e.replace(k, v)
        c.ok("$" not in e, f"{where}: only known Grafana variables ({e})")
        rules.append({"record": f"dashboard:query_{i + 1}", "expr": e})
    with open(WORK / "dashboard-queries.yml", "w", encoding="utf-8") as out:
        yaml.safe_dump({"groups": [{"name": "partwarden-dashboard", "rules": rules}]}, out, sort_keys=False)
    print(f"  queries as recording rules for promtool: {rel(WORK / 'dashboard-queries.yml')}")
    for f in (DEPLOY / "grafana/provisioning").rglob("*.yml"):
        y = yaml.safe_load(f.read_text(encoding="utf-8"))
        c.ok(y.get("apiVersion") == 1 and (y.get("providers") or y.get("datasources")), f"{rel(f)}: provisioning file (apiVersion 1)")
    print(f"  {npanels} panels, {ntargets} queries")
    return c.done()


# --------------------------------------------------------------------------- metric names


def exported_families():
    """{name: type} of every family partwarden exports: the `FAMILIES` list of
    src/telemetry/metrics.rs (a unit test there checks it against a full rendering)."""
    src = METRICS_RS.read_text(encoding="utf-8")
    m = re.search(r"pub const FAMILIES: &\[\(&str, &str\)\] = &\[(.*?)\n\];", src, re.S)
    fams = dict(re.findall(r'\(\s*"([a-z_:][a-z0-9_:]*)",\s*"(\w+)",?\s*\)', m.group(1))) if m else {}
    return dict(sorted(fams.items()))


PROMQL_FUNCTIONS = set("""
abs absent absent_over_time acos acosh asin asinh atan atanh avg_over_time ceil changes clamp
clamp_max clamp_min cos cosh count_over_time day_of_month day_of_week day_of_year days_in_month
deg delta deriv double_exponential_smoothing exp floor histogram_avg histogram_count
histogram_fraction histogram_quantile histogram_stddev histogram_stdvar histogram_sum
holt_winters hour idelta increase info irate label_join label_replace last_over_time ln log10
log2 mad_over_time max_over_time min_over_time minute month pi predict_linear
present_over_time quantile_over_time rad rate resets round scalar sgn sin sinh sort sort_by_label
sort_by_label_desc sort_desc sqrt stddev_over_time stdvar_over_time sum_over_time tan tanh time
timestamp vector year
avg bottomk count count_values group limit_ratio limitk max min quantile stddev stdvar sum topk
""".split())
PROMQL_AGGREGATIONS = set("avg bottomk count count_values group limit_ratio limitk max min "
                          "quantile stddev stdvar sum topk".split())
PROMQL_KEYWORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "bool", "and",
                   "or", "unless", "offset", "atan2", "inf", "nan", "start", "end"}
# Series Prometheus makes itself.
PROMETHEUS_SERIES = {"up", "scrape_duration_seconds", "scrape_samples_scraped",
                     "scrape_samples_post_metric_relabeling", "scrape_series_added",
                     "ALERTS", "ALERTS_FOR_STATE"}


def promql_names(expr):
    """(metric names, function names) referenced by a PromQL expression (Grafana variables allowed)."""
    e = re.sub(r"\$\{[^}]*\}|\$\w+", " ", expr)  # Grafana variables
    e = re.sub(r'"(?:\\.|[^"\\])*"|\'(?:\\.|[^\'\\])*\'|`[^`]*`', " ", e)  # strings
    e = re.sub(r"\{[^}]*\}", " ", e)  # label matchers
    e = re.sub(r"\[[^\]]*\]", " ", e)  # ranges, subqueries
    e = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", r" \1 ", e)
    e = re.sub(r"(?<![\w:])\d+(\.\d+)?([eE][+-]?\d+)?(ms|s|m|h|d|w|y)?\b", " ", e)  # numbers, durations
    metrics, funcs = [], []
    for m in re.finditer(r"[A-Za-z_:][A-Za-z0-9_:]*", e):
        tok = m.group(0)
        after = e[m.end():]
        if tok not in PROMQL_KEYWORDS and (
            re.match(r"\s*\(", after)
            or (tok in PROMQL_AGGREGATIONS and re.match(r"\s*(by|without)\b", after))
        ):
            funcs.append(tok)
        elif tok.lower() not in PROMQL_KEYWORDS:
            metrics.append(tok)
    return metrics, funcs


def dashboard_exprs():
    d = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    out = []
    for p in walk_panels(d.get("panels") or []):
        for t in p.get("targets") or []:
            if t.get("expr"):
                out.append((f"dashboard panel {p.get('title')!r} {t.get('refId')}", t["expr"]))
    for v in (d.get("templating") or {}).get("list") or []:
        q = v.get("query")
        q = q.get("query") if isinstance(q, dict) else q
        if v.get("type") == "query" and q:
            m = re.fullmatch(r"\s*label_values\(\s*(.*?)\s*,\s*\w+\s*\)\s*", q)
            out.append((f"dashboard variable {v['name']}", m.group(1) if m else q))
    return out


def rule_exprs(groups, where):
    out = []
    for g in groups:
        for r in g.get("rules") or []:
            out.append((f"{where} {r.get('alert') or r.get('record')}", str(r["expr"])))
    return out


def metrics(served_file=None):
    c = Checker("metric names")
    fams = exported_families()
    c.ok(len(fams) >= 15, f"parsed the exported families from src/telemetry/metrics.rs (got {len(fams)})")
    print(f"  {len(fams)} families exported by src/telemetry/metrics.rs: "
          + ", ".join(f"{n} ({k})" for n, k in fams.items() if k != "gauge") + " and gauges")
    if served_file and pathlib.Path(served_file).exists():
        live = dict(re.findall(r"^# TYPE (\S+) (\S+)$", pathlib.Path(served_file).read_text(), re.M))
        c.ok(set(live.items()) <= set(fams.items()), "the families /metrics serves are listed in src/telemetry/metrics.rs FAMILIES")
    valid = set(PROMETHEUS_SERIES)
    for n, k in fams.items():
        if k == "histogram":
            valid |= {n + "_bucket", n + "_sum", n + "_count"}
        elif k == "summary":
            valid |= {n, n + "_sum", n + "_count"}
        else:
            valid.add(n)
    sources = dashboard_exprs()
    sources += rule_exprs(yaml.safe_load(ALERTS.read_text(encoding="utf-8"))["groups"], rel(ALERTS))
    for d in load_all(PROMRULE):
        if d.get("kind") == "PrometheusRule":
            sources += rule_exprs(d["spec"]["groups"], rel(PROMRULE))
    unknown, bad_funcs, used = [], [], set()
    for where, expr in sources:
        names, funcs = promql_names(expr)
        c.ok(names, f"{where}: references a metric ({expr})")
        for n in names:
            used.add(n)
            if n not in valid:
                hint = " (a histogram: use _bucket/_sum/_count)" if fams.get(n) == "histogram" else ""
                unknown.append(f"{n}{hint} in {where}")
        bad_funcs += [f"{f}() in {where}" for f in funcs if f not in PROMQL_FUNCTIONS]
    c.ok(not unknown, "every referenced metric is exported by partwarden (or made by Prometheus): unknown: "
         + "; ".join(unknown))
    c.ok(not bad_funcs, "every function is a PromQL function: unknown: " + "; ".join(bad_funcs))
    print(f"  {len(sources)} expressions (dashboard, alerts.yml, PrometheusRule) reference "
          f"{len(used)} distinct series names: {', '.join(sorted(used))}")
    return c.done()


def selftest():
    """The extractor itself: it must find what it should and nothing else."""
    c = Checker("metric extractor self-test")
    m, f = promql_names('histogram_quantile(0.95, sum by (table, le) (rate(x_bucket{table=~"$table", a="b(c)"}[$__rate_interval]))) > 0.5')
    c.ok(m == ["x_bucket"] and f == ["histogram_quantile", "sum", "rate"], f"quantile expr: {m} {f}")
    m, f = promql_names('time() - max without (instance) (a_seconds) > 172800 or absent(up{job="p"}) unless on(table) b < 2419200')
    c.ok(m == ["a_seconds", "up", "b"] and f == ["time", "max", "absent"], f"binary ops: {m} {f}")
    m, _ = promql_names("partwarden_nonexistent offset 5m")
    c.ok(m == ["partwarden_nonexistent"], f"offset: {m}")
    return c.done()


def main(argv):
    if len(argv) < 2:
        print(__doc__, file=sys.stderr)
        return 2
    cmd, args = argv[1], argv[2:]
    WORK.mkdir(parents=True, exist_ok=True)
    if cmd == "build-stage":
        return build_stage()
    if cmd == "binary":
        return binary(args[0])
    if cmd == "kubernetes":
        return kubernetes_selftest() | kubernetes().done()
    if cmd == "compose":
        return compose()
    if cmd == "grafana":
        return grafana()
    if cmd == "docs":
        return docs_selftest() | docs()
    if cmd == "metrics":
        return selftest() | metrics(args[0] if args else None)
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
