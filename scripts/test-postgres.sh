#!/usr/bin/env bash
# A throwaway PostgreSQL server for the store tests: scripts/test-postgres.sh start|stop|url
#
#   start  install Debian's `postgresql` package if its binaries are missing (needs root and
#          apt), initialise a cluster under $SHOAL_PGTEST_DIR (default /tmp/shoal-pgtest),
#          start it on 127.0.0.1 only, on a port the OS picked, with trust auth for 127.0.0.1,
#          create the database `shoal_test`, and print its SQLAlchemy URL as the LAST line.
#          Idempotent: a running server is reused (same port, same URL).
#   stop   stop the server if it runs (the data directory stays; delete it to start afresh).
#   url    print the URL of the running server, or fail.
#
# The cluster runs as the `postgres` system user when this script runs as root (PostgreSQL
# refuses to run as root), else as the calling user. It is for tests only: fsync is off.
set -euo pipefail

DIR=${SHOAL_PGTEST_DIR:-/tmp/shoal-pgtest}
DATA=$DIR/data
PORT_FILE=$DIR/port
LOG=$DIR/server.log
DB=shoal_test

die() { echo "test-postgres: $*" >&2; exit 1; }

find_bindir() {
  local d
  d=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)
  if [ -n "$d" ] && [ -x "$d/pg_ctl" ] && [ -x "$d/initdb" ]; then echo "$d"; return 0; fi
  return 1
}

install_postgres() {
  if [ "$(id -u)" != "0" ]; then
    die "PostgreSQL server binaries not found (/usr/lib/postgresql/*/bin) and not root: install them with 'sudo apt-get install postgresql', then rerun"
  fi
  command -v apt-get >/dev/null || die "PostgreSQL binaries not found and no apt-get to install Debian's postgresql package"
  echo "test-postgres: installing Debian's postgresql package" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >&2 || die "apt-get update failed"
  apt-get install -y -qq postgresql >&2 || die "apt-get install postgresql failed"
}

# Run a command as the cluster's owner.
as_owner() {
  if [ "$(id -u)" = "0" ]; then
    if command -v runuser >/dev/null; then runuser -u postgres -- "$@"
    else su postgres -s /bin/sh -c "$(printf '%q ' "$@")"; fi
  else
    "$@"
  fi
}

free_port() {
  local py
  py=$(command -v python3 || command -v python || true)
  [ -n "$py" ] || die "python3 is needed to pick a free port"
  "$py" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

url_for() { echo "postgresql+asyncpg://postgres@127.0.0.1:$1/$DB"; }

running() {
  [ -f "$DATA/postmaster.pid" ] && as_owner "$BIN/pg_ctl" -D "$DATA" status >/dev/null 2>&1
}

init_cluster() {
  mkdir -p "$DIR"
  if [ "$(id -u)" = "0" ]; then
    id postgres >/dev/null 2>&1 || die "no 'postgres' system user (the postgresql package creates it)"
    chown postgres: "$DIR"
  fi
  chmod 700 "$DIR"
  if [ ! -f "$DATA/PG_VERSION" ]; then
    rm -rf "$DATA"
    as_owner "$BIN/initdb" -D "$DATA" -U postgres --auth-local=trust --auth-host=trust \
      --no-sync -E UTF8 --locale=C >"$DIR/initdb.log" 2>&1 || { cat "$DIR/initdb.log" >&2; die "initdb failed"; }
    # Trust only loopback TCP (and the private socket); nothing else.
    as_owner sh -c "printf '%s\n' 'local all all trust' 'host all all 127.0.0.1/32 trust' > '$DATA/pg_hba.conf'"
  fi
}

# answers PORT TRIES: does a server on 127.0.0.1:PORT answer a query (0.2 s between tries)?
answers() {
  local i
  for i in $(seq 1 "$2"); do
    "$psql" -h 127.0.0.1 -p "$1" -U postgres -d postgres -tAc 'SELECT 1' >/dev/null 2>&1 && return 0
    sleep 0.2
  done
  return 1
}

start() {
  BIN=$(find_bindir) || { install_postgres; BIN=$(find_bindir) || die "PostgreSQL installed but no /usr/lib/postgresql/*/bin/pg_ctl"; }
  init_cluster
  local port
  psql="$BIN/psql"
  [ -x "$psql" ] || psql=$(command -v psql) || die "no psql"
  if running && [ -f "$PORT_FILE" ] && answers "$(cat "$PORT_FILE")" 10; then
    port=$(cat "$PORT_FILE")
  else
    # Not running, or a leftover that does not answer (a server killed mid-way): start afresh.
    as_owner "$BIN/pg_ctl" -D "$DATA" -m immediate -w -t 30 stop >/dev/null 2>&1 || true
    port=$(free_port)
    as_owner "$BIN/pg_ctl" -D "$DATA" -l "$LOG" -w -t 60 \
      -o "-c listen_addresses=127.0.0.1 -p $port -c unix_socket_directories='$DIR' -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=200" \
      start >/dev/null || { tail -n 20 "$LOG" >&2 || true; die "pg_ctl start failed (log: $LOG)"; }
    echo "$port" > "$PORT_FILE"
    answers "$port" 50 || die "server on 127.0.0.1:$port does not answer (log: $LOG)"
  fi
  if [ "$("$psql" -h 127.0.0.1 -p "$port" -U postgres -d postgres -tAc "SELECT 1 FROM pg_database WHERE datname = '$DB'")" != "1" ]; then
    "$psql" -h 127.0.0.1 -p "$port" -U postgres -d postgres -qc "CREATE DATABASE $DB" >/dev/null \
      || die "could not create database $DB"
  fi
  url_for "$port"
}

stop() {
  BIN=$(find_bindir) || { echo "test-postgres: no PostgreSQL installed; nothing to stop" >&2; return 0; }
  if running; then
    as_owner "$BIN/pg_ctl" -D "$DATA" -m fast -w stop >/dev/null || die "pg_ctl stop failed"
    echo "test-postgres: stopped" >&2
  else
    echo "test-postgres: not running" >&2
  fi
}

url() {
  BIN=$(find_bindir) || die "no PostgreSQL installed"
  running && [ -f "$PORT_FILE" ] || die "not running (bash scripts/test-postgres.sh start)"
  url_for "$(cat "$PORT_FILE")"
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  url) url ;;
  *) echo "usage: $0 start|stop|url" >&2; exit 2 ;;
esac
