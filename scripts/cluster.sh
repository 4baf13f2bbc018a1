#!/usr/bin/env bash
# A whole voicebot cluster on this machine (docs/SCALING.md):
#   bash scripts/cluster.sh up       PostgreSQL, a Ray head with the engines' Serve app, two call workers;
#                                    prints `cluster ready` once every worker answers /readyz, exits 0
#                                    and leaves it all running (pid files and logs in the run dir)
#   bash scripts/cluster.sh down     stops all of it (workers drain first)
#   bash scripts/cluster.sh status   one line per piece; exit 0 when all run
# Environment (all optional):
#   CLUSTER_DIR        run dir (default .cluster)          CLUSTER_PORTS   worker ports (default "8765 8766")
#   CLUSTER_RAY_PORT   Ray GCS port (default 6379; the next three ports are Ray's too; not 10002-19999,
#                      Ray's worker ports)                  CLUSTER_CPUS    CPUs Ray may use (default 2)
#   CLUSTER_PG_PORT    PostgreSQL port (default: a free one, kept across restarts of the same run dir)
#   CLUSTER_WAIT_S     how long `up` waits for readiness (default 600)
#   VOICEBOT_SERVER__AGENT_TOKENS  the workers' agent tokens (default: one generated into the run dir)
#   VOICEBOT_ENGINES__*            replicas, batch size, CPUs of the Serve app; any other VOICEBOT_* passes through
# Ray keeps its sockets and logs in /tmp/vbray-<uid>-<ray port> (its socket paths must stay short).
set -euo pipefail
cd "$(dirname "$0")/.."
root="$(pwd)"
cmd="${1:-}"
dir="$(realpath -m "${CLUSTER_DIR:-.cluster}")"
ports="${CLUSTER_PORTS:-8765 8766}"
ray_port="${CLUSTER_RAY_PORT:-6379}"
cpus="${CLUSTER_CPUS:-2}"
wait_s="${CLUSTER_WAIT_S:-600}"
py="$root/.venv/bin/python"
ray_tmp="/tmp/vbray-$(id -u)-$ray_port"
ray_address="127.0.0.1:$ray_port"

# Ray with token authentication: its GCS listens on every interface, the token keeps strangers out.
export RAY_AUTH_MODE=token RAY_AUTH_TOKEN_PATH="$dir/ray_auth_token" RAY_USAGE_STATS_ENABLED=0

alive() { [[ -f "$1" ]] && running "$(cat "$1")"; }

ready() {  # ready PORT: the worker's /readyz says 200
  "$py" -c 'import sys, urllib.request
try:
    sys.exit(0 if urllib.request.urlopen(f"http://127.0.0.1:{sys.argv[1]}/readyz", timeout=2).status == 200 else 1)
except Exception:
    sys.exit(1)' "$1"
}

descendants() {  # descendants PID: PID and every process below it (Ray's replicas run in sessions of their own)
  local all=" $1 " grew=1
  while [[ $grew == 1 ]]; do
    grew=0
    while read -r pid ppid; do
      if [[ "$all" == *" $ppid "* && "$all" != *" $pid "* ]]; then all+="$pid "; grew=1; fi
    done < <(ps -eo pid=,ppid=)
  done
  echo $all
}

running() {  # running PID: the process exists and is not a zombie (nothing may reap orphans here)
  local st
  st="$(ps -o stat= -p "$1" 2>/dev/null)" && [[ -n "$st" && "$st" != Z* ]]
}

stop_tree() {  # stop_tree PIDFILE SIGNAL GRACE_S [all]: signal the process (all: its whole tree), KILL what is left
  local file="$1" sig="$2" grace="$3" pids left
  alive "$file" || { rm -f "$file"; return 0; }
  pids="$(descendants "$(cat "$file")")"
  if [[ "${4:-}" == all ]]; then kill "-$sig" $pids 2>/dev/null || true; else kill "-$sig" "$(cat "$file")" 2>/dev/null || true; fi
  for _ in $(seq $((grace * 10))); do
    left=""; for p in $pids; do running "$p" && left+="$p "; done
    [[ -z "$left" ]] && break
    sleep 0.1  # polling for the processes to exit
  done
  for p in $pids; do running "$p" && kill -KILL "$p" 2>/dev/null; done
  rm -f "$file"
}

down() {
  for p in $ports; do stop_tree "$dir/worker-$p.pid" INT 30; done  # SIGINT: drain calls, as Ctrl+C does
  # Every Ray process at once, as `ray stop` does (the head alone drains for up to 30 s first).
  stop_tree "$dir/ray.pid" TERM 10 all
  if [[ -d "$dir/postgres" ]]; then bash scripts/postgres.sh stop "$dir/postgres" fast >/dev/null; fi
}

fail() {
  echo "cluster.sh: $1" >&2
  [[ -n "${2:-}" && -f "$2" ]] && tail -30 "$2" >&2
  down
  exit 1
}

case "$cmd" in
  up)
    mkdir -p "$dir"
    [[ -x "$root/.venv/bin/ray" ]] || { echo "cluster.sh: Ray is not installed: .venv/bin/pip install -e '.[ray]'" >&2; exit 1; }
    if [[ ! -s "$dir/ray_auth_token" ]]; then
      (umask 077; "$py" -c 'import secrets; print(secrets.token_hex(32), end="")' >"$dir/ray_auth_token")
    fi
    tokens="${VOICEBOT_SERVER__AGENT_TOKENS:-}"
    if [[ -z "$tokens" ]]; then
      [[ -s "$dir/agent_token" ]] || (umask 077; "$py" -c 'import secrets; print(secrets.token_urlsafe(24))' >"$dir/agent_token")
      tokens="$(cat "$dir/agent_token")"
    fi

    # 1. PostgreSQL: the calls' store and the workers' bus.
    pg_out="$(bash scripts/postgres.sh start "$dir/postgres" "${CLUSTER_PG_PORT:-}")" || fail "PostgreSQL did not start"
    store_url="$(echo "$pg_out" | sed -n 's/^url //p; s/^\(postgresql:.*\)/\1/p' | tail -1)"
    echo "postgres  $store_url"

    # 2. The Ray head (one node; its CPUs are what the replicas reserve), then the engines app on it.
    if ! alive "$dir/ray.pid"; then
      # Another Ray head on this port (another checkout's cluster) would answer the wait below, and the deploy
      # would then fail on its token ("InvalidAuthToken") after a minute of retries: say so at once.
      if (exec 3<>"/dev/tcp/127.0.0.1/$ray_port") 2>/dev/null; then
        fail "port $ray_port is in use (another Ray head?): stop it or set CLUSTER_RAY_PORT"
      fi
      setsid "$root/.venv/bin/ray" start --head --block --port="$ray_port" --num-cpus="$cpus" \
        --include-dashboard=false --object-store-memory=200000000 --disable-usage-stats \
        --node-ip-address=127.0.0.1 --temp-dir="$ray_tmp" --ray-client-server-port=$((ray_port + 1)) \
        --dashboard-agent-listen-port=$((ray_port + 2)) --dashboard-port=$((ray_port + 3)) \
        </dev/null >"$dir/ray.log" 2>&1 &
      echo $! >"$dir/ray.pid"
    fi
    for _ in $(seq $((wait_s * 10))); do
      (exec 3<>"/dev/tcp/127.0.0.1/$ray_port") 2>/dev/null && break
      alive "$dir/ray.pid" || fail "the Ray head exited" "$dir/ray.log"
      sleep 0.1  # polling the GCS port
    done
    "$root/.venv/bin/voicebot" engines serve --address "$ray_address" >"$dir/engines.log" 2>&1 \
      || fail "deploying the engines failed" "$dir/engines.log"
    echo "ray       $ray_address ($(tail -1 "$dir/engines.log"))"

    # 3. The call workers: stateless, sharing the store (and its bus) and the engines.
    for p in $ports; do
      alive "$dir/worker-$p.pid" && continue
      VOICEBOT_STORE__URL="$store_url" VOICEBOT_SERVER__AGENT_TOKENS="$tokens" \
        VOICEBOT_ENGINES__BACKEND=ray VOICEBOT_ENGINES__RAY_ADDRESS="$ray_address" PYTHONUNBUFFERED=1 \
        setsid "$root/.venv/bin/voicebot" serve --host 127.0.0.1 --port "$p" </dev/null >"$dir/worker-$p.log" 2>&1 &
      echo $! >"$dir/worker-$p.pid"
    done
    for p in $ports; do
      for _ in $(seq $((wait_s * 5))); do
        ready "$p" && break
        alive "$dir/worker-$p.pid" || fail "worker $p exited" "$dir/worker-$p.log"
        sleep 0.2  # polling /readyz
      done
      ready "$p" || fail "worker $p not ready after ${wait_s}s" "$dir/worker-$p.log"
      echo "worker    http://127.0.0.1:$p (ws://127.0.0.1:$p/v1/call, /v1/agent)"
    done
    echo "cluster ready"
    ;;
  down)
    down
    echo "cluster down"
    ;;
  status)
    rc=0
    if [[ -d "$dir/postgres" ]] && bash scripts/postgres.sh status "$dir/postgres" >/dev/null 2>&1; then
      echo "postgres  running $(bash scripts/postgres.sh url "$dir/postgres")"
    else echo "postgres  stopped"; rc=3; fi
    if alive "$dir/ray.pid"; then
      echo "ray       running $ray_address, $("$root/.venv/bin/voicebot" engines status --address "$ray_address" 2>/dev/null || true)"
    else echo "ray       stopped"; rc=3; fi
    for p in $ports; do
      if alive "$dir/worker-$p.pid" && ready "$p"; then echo "worker    $p ready"
      elif alive "$dir/worker-$p.pid"; then echo "worker    $p not ready"; rc=3
      else echo "worker    $p stopped"; rc=3; fi
    done
    exit $rc
    ;;
  *) echo "usage: $0 up | down | status" >&2; exit 2 ;;
esac
