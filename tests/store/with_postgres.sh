#!/bin/sh
# Runs "$@" against a throwaway PostgreSQL 15 started in a temporary directory: unix
# socket only (listen_addresses ''), trust auth, stopped and removed on exit whatever
# happens. Exports TG_TEST_STORE_URL and, for the store-down test, TG_PG_STOP / TG_PG_START.
# As root the server runs as the `postgres` user (PostgreSQL refuses to run as root).
set -eu
PGBIN=${PGBIN:-/usr/lib/postgresql/15/bin}
dir=$(mktemp -d /tmp/tgpg.XXXXXX)
chmod 755 "$dir"
RUN=""
if [ "$(id -u)" = 0 ]; then
    RUN="runuser -u postgres --"
    chown postgres "$dir"
fi
cleanup() {
    (cd "$dir" && $RUN "$PGBIN/pg_ctl" -D "$dir/data" -m immediate -w stop >/dev/null 2>&1) || true
    rm -rf "$dir"
}
trap cleanup EXIT
trap 'exit 1' INT TERM
(cd "$dir" && $RUN "$PGBIN/initdb" -D "$dir/data" -A trust -U postgres >"$dir/initdb.log" 2>&1) ||
    { cat "$dir/initdb.log"; exit 1; }
cat >>"$dir/data/postgresql.conf" <<CONF
listen_addresses = ''
unix_socket_directories = '$dir'
CONF
export TG_PG_START="cd $dir && $RUN $PGBIN/pg_ctl -D $dir/data -l $dir/server.log -w start >/dev/null"
export TG_PG_STOP="cd $dir && $RUN $PGBIN/pg_ctl -D $dir/data -m fast -w stop >/dev/null"
sh -c "$TG_PG_START" || { cat "$dir/server.log"; exit 1; }
export TG_TEST_STORE_URL="host=$dir dbname=postgres user=postgres"
export TG_TEST_PG_DIR="$dir"
"$@"
