#!/usr/bin/env bash
# Run a command (default: the clinical database tests) against a throwaway PostgreSQL server.
#
#   scripts/with_postgres.sh                      # pytest tests/apps/clinical -m "not slow"
#   scripts/with_postgres.sh pytest tests/apps/clinical/test_db.py -q
#
# Installs Debian's `postgresql` when its binaries are missing (needs root and apt), creates a cluster
# in a temporary folder, starts it on 127.0.0.1 on a free port (trust auth, loopback only), exports
# MEDSEG_TEST_POSTGRES_URL for the tests, runs the command, then stops the server and deletes the
# folder (PG_BIN_DIR=<folder with initdb, pg_ctl> picks other binaries). initdb refuses to run as root, so as root the cluster belongs to the `postgres` user.
# Where no server can be started the command still runs and the PostgreSQL tests skip, saying why.
set -uo pipefail

PY=${PY:-.venv/bin/python}
[ -x "$PY" ] || PY=$(command -v python3)
if [ $# -eq 0 ]; then set -- "$PY" -m pytest tests/apps/clinical -m "not slow" -q; fi

note() { echo "with_postgres: $*" >&2; }
# run the command anyway; the tests' skip message repeats why there is no server
run_without_server() {
    note "$1; the PostgreSQL tests will skip"
    export MEDSEG_TEST_POSTGRES_UNAVAILABLE="$1"
    unset MEDSEG_TEST_POSTGRES_URL
    shift
    "$@"
    exit $?
}

pg_bin() { ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1; }
BIN=${PG_BIN_DIR:-$(pg_bin)}   # PG_BIN_DIR: use these PostgreSQL binaries instead of Debian's
if [ -z "$BIN" ]; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
        note "installing Debian postgresql (apt-get)"
        t0=$(date +%s)
        { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends postgresql; } \
            >/tmp/with_postgres_apt.log 2>&1 || { run_without_server "apt-get install postgresql failed (see /tmp/with_postgres_apt.log)" "$@"; }
        note "installed in $(( $(date +%s) - t0 )) s"
        BIN=$(pg_bin)
    fi
    [ -n "$BIN" ] || run_without_server "no PostgreSQL binaries in /usr/lib/postgresql/*/bin and cannot install them (not root or no apt-get)" "$@"
fi

if ! "$PY" -c "import psycopg" 2>/dev/null; then
    note "installing the psycopg driver into $PY"
    "$PY" -m pip install --quiet -c requirements/constraints.txt "psycopg[binary]" \
        || run_without_server "cannot install psycopg" "$@"
fi

DIR=$(mktemp -d /tmp/medseg_pg.XXXXXX)
PORT=$("$PY" -c "import socket; s=socket.socket(); s.bind(('127.0.0.1', 0)); print(s.getsockname()[1])")
AS=()
DBUSER=$(id -un)
if [ "$(id -u)" = 0 ]; then
    id postgres >/dev/null 2>&1 || useradd --system --home-dir "$DIR" postgres
    chown postgres "$DIR"
    AS=(runuser -u postgres --)
    DBUSER=postgres
fi
cleanup() {
    "${AS[@]}" "$BIN/pg_ctl" -D "$DIR/data" -m immediate stop >/dev/null 2>&1
    rm -rf "$DIR"
}
trap cleanup EXIT INT TERM

t0=$(date +%s)
if ! "${AS[@]}" "$BIN/initdb" -D "$DIR/data" -U "$DBUSER" --auth=trust -E UTF8 --no-sync >"$DIR/initdb.log" 2>&1; then
    cat "$DIR/initdb.log" >&2
    run_without_server "initdb failed (log above)" "$@"
fi
if ! "${AS[@]}" "$BIN/pg_ctl" -D "$DIR/data" -l "$DIR/server.log" -w -t 60 \
        -o "-p $PORT -k $DIR -c listen_addresses=127.0.0.1 -c fsync=off" start >/dev/null; then
    cat "$DIR/server.log" >&2
    run_without_server "the PostgreSQL server did not start (log above)" "$@"
fi
note "PostgreSQL $("$BIN/postgres" --version | awk '{print $3}') on 127.0.0.1:$PORT (started in $(( $(date +%s) - t0 )) s)"
export MEDSEG_TEST_POSTGRES_URL="postgresql+psycopg://$DBUSER@127.0.0.1:$PORT/postgres"
"$@"
