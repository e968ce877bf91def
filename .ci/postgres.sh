#!/usr/bin/env bash
# A throwaway PostgreSQL server for the tests that need one (issue 13: two
# `micrograd tune` workers sharing one study through a database URL).
#
#   bash .ci/postgres.sh          start it (or reuse it) and print its SQLAlchemy URL
#   bash .ci/postgres.sh stop     stop it
#
# Installs Debian's `postgresql` package when no server binaries are present,
# then runs a cluster of its own in $MICROGRAD_PG_DIR (default
# /var/tmp/micrograd-pg), never the system's `main` cluster, listening on
# 127.0.0.1 only, on port 55432 or the next free one. Run twice, it reuses the
# running server. The URL is the only thing printed on stdout; progress goes
# to stderr.
set -euo pipefail

datadir="${MICROGRAD_PG_DIR:-/var/tmp/micrograd-pg}"
first_port="${MICROGRAD_PG_PORT:-55432}"
db=micrograd_test
user=micrograd
# Loopback only and throwaway data: the password keeps the URL realistic, not secret.
password=micrograd

say() { echo "postgres.sh: $*" >&2; }

bindir() {
    local dir
    for dir in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V -r); do
        if [ -x "$dir/initdb" ] && [ -x "$dir/pg_ctl" ]; then echo "$dir"; return 0; fi
    done
    return 1
}

# The server refuses to run as root: as root, everything runs as `postgres`.
as_owner() {
    if [ "$(id -u)" = 0 ]; then (cd / && runuser -u postgres -- "$@"); else "$@"; fi
}

port_is_free() {
    python3 - "$1" <<'EOF'
import socket, sys
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the server binds
try:
    s.bind(("127.0.0.1", int(sys.argv[1])))
except OSError:
    sys.exit(1)
EOF
}

bin="$(bindir || true)"
if [ "${1:-}" = stop ]; then
    if [ -n "$bin" ] && [ -f "$datadir/postmaster.pid" ]; then
        as_owner "$bin/pg_ctl" -D "$datadir" -m fast -w stop >&2
    fi
    exit 0
fi

if [ -z "$bin" ]; then
    if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then
        say "no PostgreSQL server binaries in /usr/lib/postgresql/*/bin, and no root apt-get to install them"
        exit 1
    fi
    say "installing Debian's postgresql package"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >&2
    apt-get install -y -qq --no-install-recommends postgresql >&2
    bin="$(bindir)" || { say "postgresql installed but no initdb found"; exit 1; }
fi
say "server binaries: $bin ($("$bin/postgres" --version))"

if [ "$(id -u)" = 0 ] && ! id postgres >/dev/null 2>&1; then
    say "no 'postgres' user to run the server as"
    exit 1
fi

major="$(basename "$(dirname "$bin")")"
if [ -f "$datadir/PG_VERSION" ] && [ "$(cat "$datadir/PG_VERSION")" != "$major" ] \
        && ! as_owner "$bin/pg_ctl" -D "$datadir" status >/dev/null 2>&1; then
    say "$datadir holds a PostgreSQL $(cat "$datadir/PG_VERSION") cluster; making a $major one"
    rm -rf "$datadir"
fi
if [ ! -f "$datadir/PG_VERSION" ]; then
    say "creating a cluster in $datadir"
    rm -rf "$datadir"
    mkdir -p "$datadir"
    if [ "$(id -u)" = 0 ]; then chown postgres: "$datadir"; fi
    chmod 700 "$datadir"
    # Local (socket) connections are trusted: the socket lives in the 0700 data
    # folder, so only the owner (and root) reach it. TCP needs the password.
    as_owner "$bin/initdb" -D "$datadir" -U postgres --auth-local=trust \
        --auth-host=scram-sha-256 -E UTF8 --locale=C --no-sync >/dev/null
    # A test database: durability buys nothing, speed does.
    cat >>"$datadir/postgresql.conf" <<EOF

# micrograd CI (.ci/postgres.sh)
listen_addresses = '127.0.0.1'
unix_socket_directories = '$datadir'
fsync = off
synchronous_commit = off
full_page_writes = off
EOF
fi

if as_owner "$bin/pg_ctl" -D "$datadir" status >/dev/null 2>&1; then
    # postmaster.pid's fourth line is the port the running server listens on.
    port="$(sed -n 4p "$datadir/postmaster.pid")"
    say "reusing the server already running on 127.0.0.1:$port"
else
    port="$first_port"
    while ! port_is_free "$port"; do
        port=$((port + 1))
        if [ "$port" -ge $((first_port + 50)) ]; then
            say "no free port in $first_port..$((first_port + 49))"
            exit 1
        fi
    done
    say "starting the server on 127.0.0.1:$port"
    if ! as_owner "$bin/pg_ctl" -D "$datadir" -l "$datadir/server.log" -w -t 60 \
            -o "-p $port" start >/dev/null; then
        say "the server did not start; its log:"
        tail -n 30 "$datadir/server.log" >&2 || true
        exit 1
    fi
fi

psql_admin() {
    as_owner "$bin/psql" -h "$datadir" -p "$port" -U postgres -d postgres \
        -v ON_ERROR_STOP=1 -qtA "$@"
}
if [ "$(psql_admin -c "SELECT 1 FROM pg_roles WHERE rolname = '$user'")" != 1 ]; then
    psql_admin -c "CREATE ROLE $user LOGIN PASSWORD '$password'"
else
    psql_admin -c "ALTER ROLE $user LOGIN PASSWORD '$password'"
fi
if [ "$(psql_admin -c "SELECT 1 FROM pg_database WHERE datname = '$db'")" != 1 ]; then
    psql_admin -c "CREATE DATABASE $db OWNER $user"
fi

# The way the tests connect: TCP on loopback, with the password.
PGPASSWORD="$password" "$bin/psql" -h 127.0.0.1 -p "$port" -U "$user" -d "$db" \
    -v ON_ERROR_STOP=1 -qtA -c "SELECT 1" >/dev/null
say "ready in ${SECONDS} s: database $db, user $user on 127.0.0.1:$port"
echo "postgresql+psycopg2://$user:$password@127.0.0.1:$port/$db"
