#!/usr/bin/env bash
# Debian's chromium, which tests/html_page.rs renders the status page with (headless: the
# page renders, its numbers match /status, a screenshot is kept). When it is missing it is
# installed with apt-get (as root, or through sudo), with a font for the page's text; the
# package starts no service.
#
# Usage: scripts/install-chromium.sh        (exit status 0 = chromium is on PATH)
set -euo pipefail

log() { printf '==> %s\n' "$*"; }
die() { printf 'install-chromium: %s\n' "$*" >&2; exit 1; }

# Debian's launcher script prints a shell warning of its own on some systems: keep the
# first line of the version only.
version() { chromium --version 2>/dev/null | head -n1; }

if ! command -v chromium >/dev/null 2>&1; then
    SUDO=()
    if [ "$(id -u)" -ne 0 ]; then
        command -v sudo >/dev/null 2>&1 ||
            die "chromium is missing and this is not root and sudo is not available: install it with
    apt-get update && apt-get install -y --no-install-recommends chromium fonts-dejavu-core
then rerun $0"
        SUDO=(sudo)
    fi
    command -v apt-get >/dev/null 2>&1 ||
        die "chromium is missing and apt-get is not available: install chromium and put it on PATH"
    t0=$(date +%s)
    log "chromium missing: installing Debian's chromium"
    "${SUDO[@]}" apt-get update
    "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive \
        apt-get install -y --no-install-recommends chromium fonts-dejavu-core
    log "chromium installed in $(($(date +%s) - t0))s"
    command -v chromium >/dev/null 2>&1 || die "chromium is still not on PATH after installing it"
fi
log "$(version)"
