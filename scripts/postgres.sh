#!/usr/bin/env bash
# A project-local PostgreSQL (Debian's `postgresql` package), no system service:
#   bash scripts/postgres.sh install            apt-get install -y postgresql if initdb is missing
#   bash scripts/postgres.sh start [DIR] [PORT]   initdb into DIR (default var/postgres) on first use, start it
#                                               on 127.0.0.1:PORT (default: a free port), create database
#                                               `voicebot`; prints `url postgresql://...` as its last line
#   bash scripts/postgres.sh url    [DIR]       print the URL of the running instance
#   bash scripts/postgres.sh status [DIR]       exit 0 if it runs
#   bash scripts/postgres.sh stop   [DIR] [fast|immediate]   stop it (immediate: no checkpoint, for test instances)
# Local trust authentication: it listens on 127.0.0.1 and a unix socket in DIR only, for development,
# tests and scripts/cluster.sh. A production deployment uses a managed PostgreSQL (docs/SCALING.md).
set -euo pipefail
cd "$(dirname "$0")/.."
cmd="${1:-}"
dir="$(realpath -m "${2:-var/postgres}")"
port="${3:-}"

bindir() {
  local d
  d="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1 || true)"
  if [[ -n "$d" && -x "$d/initdb" ]]; then echo "$d"; return; fi
  if command -v initdb >/dev/null; then dirname "$(command -v initdb)"; return; fi
  return 1
}

# PostgreSQL refuses to run as root: as root the server runs as the `postgres` user of the package.
as_owner() {
  if [[ "$(id -u)" == 0 ]]; then runuser -u postgres -- "$@"; else "$@"; fi
}

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

url() {
  local p
  p="$(sed -n 's/^port = \([0-9]*\).*/\1/p' "$dir/postgresql.auto.conf" 2>/dev/null | tail -1)"
  [[ -n "$p" ]] || { echo "postgres.sh: no instance in $dir" >&2; return 1; }
  echo "postgresql://postgres@127.0.0.1:$p/voicebot"
}

case "$cmd" in
  install)
    if bindir >/dev/null; then echo "postgresql: $(bindir)"; exit 0; fi
    if [[ "$(id -u)" != 0 ]]; then echo "postgres.sh: run as root to apt-get install postgresql" >&2; exit 1; fi
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends postgresql >/dev/null \
      || { apt-get update >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends postgresql >/dev/null; }
    # Debian's package starts a system cluster; this project runs its own instead.
    if command -v pg_ctlcluster >/dev/null; then
      for c in /etc/postgresql/*/main; do [[ -d "$c" ]] && pg_ctlcluster "$(basename "$(dirname "$c")")" main stop 2>/dev/null || true; done
    fi
    echo "postgresql: $(bindir)"
    ;;
  start)
    bin="$(bindir)" || { echo "postgres.sh: PostgreSQL is not installed (bash scripts/postgres.sh install)" >&2; exit 1; }
    mkdir -p "$dir"
    if [[ "$(id -u)" == 0 ]]; then chown postgres: "$dir"; chmod 700 "$dir"; fi
    if [[ ! -f "$dir/PG_VERSION" ]]; then
      as_owner "$bin/initdb" -D "$dir" -U postgres --auth=trust --encoding=UTF8 --locale=C.UTF-8 >"$dir.initdb.log" 2>&1 \
        || { cat "$dir.initdb.log" >&2; exit 1; }
    fi
    if as_owner "$bin/pg_ctl" -D "$dir" status >/dev/null 2>&1; then url; exit 0; fi
    port="${port:-$(free_port)}"
    # Settings live in postgresql.auto.conf: the last `port =` there is how `url` finds the instance.
    {
      echo "listen_addresses = '127.0.0.1'"
      echo "port = $port"
      echo "unix_socket_directories = '$dir'"
      echo "max_connections = 200"
      echo "fsync = on"
    } | as_owner tee "$dir/postgresql.auto.conf" >/dev/null
    as_owner "$bin/pg_ctl" -D "$dir" -l "$dir/server.log" -w -t 60 start >/dev/null \
      || { tail -20 "$dir/server.log" >&2; exit 1; }
    as_owner "$bin/psql" -h 127.0.0.1 -p "$port" -U postgres -d postgres -qAtc \
      "SELECT 1 FROM pg_database WHERE datname = 'voicebot'" | grep -q 1 \
      || as_owner "$bin/createdb" -h 127.0.0.1 -p "$port" -U postgres voicebot
    echo "url $(url)"
    ;;
  url) url ;;
  status)
    bin="$(bindir)" || exit 3
    as_owner "$bin/pg_ctl" -D "$dir" status >/dev/null 2>&1 && { echo "running $(url)"; exit 0; }
    echo "stopped"; exit 3
    ;;
  stop)
    bin="$(bindir)" || exit 0
    # `immediate` skips the shutdown checkpoint (a throw-away test instance); `fast` is a clean stop.
    if [[ -f "$dir/postmaster.pid" ]]; then as_owner "$bin/pg_ctl" -D "$dir" -m "${3:-fast}" -w stop >/dev/null; fi
    echo "stopped"
    ;;
  *) echo "usage: $0 install | start [DIR] [PORT] | url [DIR] | status [DIR] | stop [DIR] [fast|immediate]" >&2; exit 2 ;;
esac
