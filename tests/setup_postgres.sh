#!/usr/bin/env bash
# A throwaway PostgreSQL cluster for the store tests, listening on a Unix socket only.
#
#   eval "$(bash tests/setup_postgres.sh start)"   # exports EVALKIT_TEST_POSTGRES (a DSN) and EVALKIT_TEST_PGDATA
#   bash tests/setup_postgres.sh stop              # stops the cluster and deletes its directory
#
# Installs Debian's `postgresql` when initdb is missing (root only). initdb refuses to run as
# root, so as root the cluster belongs to the `postgres` user the package creates.
set -euo pipefail

pg_bin() {
    local bin
    bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
    if [ -z "$bin" ] && command -v initdb >/dev/null; then bin=$(dirname "$(command -v initdb)"); fi
    echo "$bin"
}

as_owner() {
    if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

case "${1:-start}" in
start)
    if [ -z "$(pg_bin)" ]; then
        if [ "$(id -u)" != 0 ]; then echo "setup_postgres: initdb not found and not root" >&2; exit 1; fi
        (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql) >&2
    fi
    BIN=$(pg_bin)
    DIR=$(mktemp -d /tmp/evalkit-pg.XXXXXX)
    chmod 755 "$DIR"
    if [ "$(id -u)" = 0 ]; then chown postgres "$DIR"; fi
    as_owner "$BIN/initdb" -D "$DIR/data" -U evalkit --auth=trust -E UTF8 >&2
    # No TCP at all: the socket lives in the temporary directory.
    as_owner "$BIN/pg_ctl" -D "$DIR/data" -l "$DIR/server.log" -w \
        -o "-c listen_addresses='' -k $DIR -c max_connections=200 -c fsync=off" start >&2
    echo "export EVALKIT_TEST_POSTGRES='postgresql://evalkit@/postgres?host=$DIR'"
    echo "export EVALKIT_TEST_PGDATA='$DIR/data'"
    ;;
stop)
    DATA=${EVALKIT_TEST_PGDATA:?EVALKIT_TEST_PGDATA is not set}
    as_owner "$(pg_bin)/pg_ctl" -D "$DATA" -m fast -w stop >&2 || true
    rm -rf "$(dirname "$DATA")"
    ;;
*)
    echo "usage: $0 start|stop" >&2
    exit 2
    ;;
esac
