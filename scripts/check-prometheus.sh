#!/usr/bin/env bash
# Checks partwarden's monitoring configuration:
#   - deploy/prometheus/alerts.yml         promtool check rules
#   - deploy/prometheus/alerts.test.yml    promtool test rules (unit tests of every alert)
#   - deploy/prometheus/prometheus.yml     promtool check config (also loads rule_files,
#                                          relative to the config file)
#   - deploy/alertmanager/alertmanager.yml amtool check-config, and that critical alerts
#                                          reach the pager and the webhook
#
# promtool and amtool come from Debian's `prometheus` and `prometheus-alertmanager`
# packages; when either is missing they are installed with apt-get (as root, or through
# sudo). The packages' maintainer scripts may try to start the services: the script
# blocks that with a temporary policy-rc.d and afterwards stops any Prometheus or
# Alertmanager process that appeared during the install, so nothing is left running.
#
# Usage: scripts/check-prometheus.sh        (from anywhere; exit status 0 = all passed)
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

log() { printf '==> %s\n' "$*"; }
die() { printf 'check-prometheus: %s\n' "$*" >&2; exit 1; }

# Processes of the Prometheus server or Alertmanager (not exporters), one PID a line.
server_pids() {
    pgrep -f '(^|/)prometheus(-alertmanager)?( |$)' || true
}

SUDO=()
install_tools() {
    if [ "$(id -u)" -ne 0 ]; then
        if command -v sudo >/dev/null 2>&1; then
            SUDO=(sudo)
        else
            die "promtool/amtool are missing and this is not root and sudo is not available: install them with
    apt-get update && apt-get install -y --no-install-recommends prometheus prometheus-alertmanager
or put promtool and amtool on PATH, then rerun $0"
        fi
    fi
    command -v apt-get >/dev/null 2>&1 ||
        die "promtool/amtool are missing and apt-get is not available: install Prometheus' promtool and Alertmanager's amtool and put them on PATH"

    local before started policy=/usr/sbin/policy-rc.d added_policy=0
    before="$(server_pids)"

    # Ask the packages' maintainer scripts not to start services (invoke-rc.d and
    # deb-systemd-invoke honour policy-rc.d exit code 101), unless a policy exists.
    if [ ! -e "$policy" ]; then
        "${SUDO[@]}" sh -c "printf '#!/bin/sh\nexit 101\n' > $policy && chmod 0755 $policy"
        added_policy=1
        trap '"${SUDO[@]}" rm -f /usr/sbin/policy-rc.d' EXIT
    fi

    local t0 t1 t2
    t0=$(date +%s)
    log "promtool/amtool missing: installing prometheus and prometheus-alertmanager"
    "${SUDO[@]}" apt-get update
    t1=$(date +%s)
    "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive \
        apt-get install -y --no-install-recommends prometheus prometheus-alertmanager
    t2=$(date +%s)
    log "apt-get update took $((t1 - t0))s, install $((t2 - t1))s"

    if [ "$added_policy" = 1 ]; then
        "${SUDO[@]}" rm -f "$policy"
        trap - EXIT
    fi

    # Whatever the packages started anyway (e.g. under systemd) is stopped again, by PID;
    # processes that were running before the install are left alone.
    if [ -d /run/systemd/system ] && command -v systemctl >/dev/null 2>&1; then
        local unit
        for unit in prometheus prometheus-alertmanager; do
            if ! grep -qx "$unit" <<<"$BEFORE_UNITS" &&
                systemctl is-active --quiet "$unit" 2>/dev/null; then
                log "stopping $unit.service started by the package install"
                "${SUDO[@]}" systemctl stop "$unit" || true
            fi
        done
    fi
    started="$(comm -13 <(sort <<<"$before") <(server_pids | sort))"
    if [ -n "$started" ]; then
        local pid
        for pid in $started; do
            log "stopping process $pid started by the package install: $(ps -o args= -p "$pid" 2>/dev/null || true)"
            "${SUDO[@]}" kill "$pid" 2>/dev/null || true
        done
        sleep 2
        for pid in $started; do
            if kill -0 "$pid" 2>/dev/null; then
                die "process $pid started by the package install did not stop; stop it by hand (kill $pid)"
            fi
        done
    fi
}

BEFORE_UNITS=""
if [ -d /run/systemd/system ] && command -v systemctl >/dev/null 2>&1; then
    for u in prometheus prometheus-alertmanager; do
        if systemctl is-active --quiet "$u" 2>/dev/null; then
            BEFORE_UNITS+="$u"$'\n'
        fi
    done
fi

if ! command -v promtool >/dev/null 2>&1 || ! command -v amtool >/dev/null 2>&1; then
    install_tools
    command -v promtool >/dev/null 2>&1 || die "promtool is still not on PATH after installing prometheus"
    command -v amtool >/dev/null 2>&1 || die "amtool is still not on PATH after installing prometheus-alertmanager"
fi

log "$(promtool --version 2>&1 | head -n1)"
log "$(amtool --version 2>&1 | head -n1)"

# shellcheck source=scripts/lib-check.sh
. scripts/lib-check.sh

# Critical alerts must reach the pager and (like everything) the webhook; others only
# the webhook.
check_routes() {
    local cfg=deploy/alertmanager/alertmanager.yml
    amtool config routes test --config.file="$cfg" --verify.receivers=pager,webhook \
        severity=critical alertname=PartwardenNoFuturePartitions table=public.archon_ga4_events 2>/dev/null &&
        amtool config routes test --config.file="$cfg" --verify.receivers=webhook \
            severity=warning alertname=PartwardenFutureCoverageLow table=public.archon_ga4_events 2>/dev/null
}

check "rules" promtool check rules deploy/prometheus/alerts.yml
check "rule unit tests" promtool test rules deploy/prometheus/alerts.test.yml
check "prometheus config" promtool check config deploy/prometheus/prometheus.yml
check "alertmanager config" amtool check-config deploy/alertmanager/alertmanager.yml
check "alertmanager routes" check_routes

leftover="$(pgrep -a prometheus || true)"
if [ -n "$leftover" ]; then
    log "processes matching 'prometheus' still running (they were running before this script; left alone):"
    printf '%s\n' "$leftover"
else
    log "no prometheus process running"
fi

if [ "${#failed[@]}" -gt 0 ]; then
    printf 'check-prometheus: %d check(s) failed: %s\n' "${#failed[@]}" "${failed[*]}" >&2
    exit 1
fi
log "all Prometheus/Alertmanager checks passed"
