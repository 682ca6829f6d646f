# shellcheck shell=bash
# Shared by the check scripts: `check NAME CMD…` runs CMD, logs it, and records NAME in
# `failed` when it fails, so a script runs every check and reports them all at the end.
# The sourcing script defines `log`.
failed=()
check() {
    local name="$1"
    shift
    log "$name: $*"
    if "$@"; then
        :
    else
        printf 'FAILED: %s\n' "$name" >&2
        failed+=("$name")
    fi
}
