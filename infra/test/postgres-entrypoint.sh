#!/bin/sh
# The entrypoint of the postgres:15-alpine stand-in that make-base-images.sh builds for the
# container test (CI has no image registry). It does, for what docker-compose.yml uses, what the
# official image's docker-entrypoint.sh does, so the compose file stays the one a user runs:
# - POSTGRES_PASSWORD, or POSTGRES_PASSWORD_FILE (read as root, before dropping privileges; both
#   set is an error); POSTGRES_USER (default postgres), POSTGRES_DB (default: the user),
#   POSTGRES_INITDB_ARGS, POSTGRES_HOST_AUTH_METHOD (default scram-sha-256);
# - started as root: owns PGDATA and the socket directory to `postgres` and runs as that user;
# - an empty PGDATA: initdb (local connections trusted, as in the official image), the password
#   for POSTGRES_USER, `listen_addresses = '*'`, `host all all all <method>` in pg_hba.conf, and
#   the database POSTGRES_DB created by a temporary server that listens on the socket only (so a
#   TCP health check does not pass before the initialisation is over);
# - then `exec postgres` (PID 1).
# Not implemented: /docker-entrypoint-initdb.d scripts, POSTGRES_INITDB_WALDIR.
set -eu
: "${PGDATA:=/var/lib/postgresql/data}"
export PGDATA

# file_env NAME: NAME from NAME or from the file NAME_FILE names.
file_env() {
  eval "value=\${$1:-}; file=\${$1_FILE:-}"
  if [ -n "$value" ] && [ -n "$file" ]; then
    echo "error: both $1 and $1_FILE are set (but are exclusive)" >&2
    exit 1
  fi
  if [ -z "$value" ] && [ -n "$file" ]; then value=$(cat "$file"); fi
  export "$1=$value"
  unset "$1_FILE"
}

if [ "${1:-}" = postgres ]; then
  file_env POSTGRES_PASSWORD
  if [ "$(id -u)" = 0 ]; then
    mkdir -p "$PGDATA" /var/run/postgresql
    chown postgres:postgres "$PGDATA" /var/run/postgresql
    chmod 0700 "$PGDATA"
    chmod 2777 /var/run/postgresql
    exec su -p -s /bin/sh postgres -c 'exec "$0" "$@"' "$0" "$@"
  fi
  if [ ! -s "$PGDATA/PG_VERSION" ]; then
    : "${POSTGRES_USER:=postgres}"
    : "${POSTGRES_DB:=$POSTGRES_USER}"
    method=${POSTGRES_HOST_AUTH_METHOD:-scram-sha-256}
    if [ -z "$POSTGRES_PASSWORD" ] && [ "$method" != trust ]; then
      echo "error: database is uninitialized and superuser password is not specified (POSTGRES_PASSWORD or POSTGRES_PASSWORD_FILE)" >&2
      exit 1
    fi
    pwfile=$(mktemp)
    printf '%s\n' "$POSTGRES_PASSWORD" >"$pwfile"
    # shellcheck disable=SC2086 # POSTGRES_INITDB_ARGS is a list of arguments
    initdb --username="$POSTGRES_USER" --pwfile="$pwfile" --encoding=UTF8 --locale=C ${POSTGRES_INITDB_ARGS:-} -D "$PGDATA"
    rm -f "$pwfile"
    printf "listen_addresses = '*'\n" >>"$PGDATA/postgresql.conf"
    printf '\nhost all all all %s\n' "$method" >>"$PGDATA/pg_hba.conf"
    pg_ctl -D "$PGDATA" -o "-c listen_addresses=''" -w start
    if [ "$POSTGRES_DB" != postgres ]; then
      echo 'CREATE DATABASE :"db";' | psql -v ON_ERROR_STOP=1 --username="$POSTGRES_USER" --dbname=postgres --set db="$POSTGRES_DB"
    fi
    pg_ctl -D "$PGDATA" -m fast -w stop
    echo 'PostgreSQL init process complete; ready for start up.'
  fi
fi
exec "$@"
