#!/usr/bin/env bash
# The docker runtime's engine: start | stop | host.
#   host   prints the DOCKER_HOST to use: the user's daemon when one answers, else the project's own.
#   start  uses a daemon that already answers (nothing started); otherwise starts the project's own
#          dockerd on a socket under the state dir (never the default one: a daemon there would switch
#          every stack's `cdcstack:runtime auto` to docker) and waits until it answers.
#   stop   stops the project's own daemon by its pid (a user's daemon is never touched).
# Images and volumes live under $CDCSTACK_STATE_DIR/docker/data, so they outlive any one stack.
set -euo pipefail
shopt -s inherit_errexit
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=toolchain/env.sh
source "$root/toolchain/env.sh"

engine_dir="$CDCSTACK_STATE_DIR/docker"
own_socket="$engine_dir/docker.sock"
own_host="unix://$own_socket"
pidfile="$engine_dir/dockerd.pid"
log="$engine_dir/dockerd.log"
start_timeout_seconds=${CDCSTACK_DOCKERD_START_TIMEOUT:-60}

answers() { DOCKER_HOST=$1 python3 -c 'import sys; sys.path.insert(0, sys.argv[1]); from components.runtime import docker_daemon_answers; sys.exit(not docker_daemon_answers())' "$root"; }

users_host() {
  # DOCKER_HOST as the user set it, else the default socket; never the project's own.
  local host=${DOCKER_HOST:-unix:///var/run/docker.sock}
  [ "$host" != "$own_host" ] && answers "$host" && echo "$host"
}

own_pid() { [ -f "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null && cat "$pidfile"; }

start_own() {
  command -v dockerd >/dev/null || { echo "dockerd is not installed: run 'make toolchain'" >&2; exit 1; }
  mkdir -p "$engine_dir/data" "$engine_dir/exec"
  if ! own_pid >/dev/null; then
    # No iptables, no default bridge: containers join the stacks' own networks and publish on
    # 127.0.0.1 through docker-proxy; nothing of the host's network is changed.
    nohup dockerd --host "$own_host" --data-root "$engine_dir/data" --exec-root "$engine_dir/exec" \
      --pidfile "$pidfile" --iptables=false --ip6tables=false --ip-forward=false --ip-masq=false \
      --bridge=none --storage-driver overlay2 >>"$log" 2>&1 </dev/null &
  fi
  local waited=0
  until answers "$own_host"; do
    if [ "$waited" -ge "$start_timeout_seconds" ]; then
      echo "docker engine: dockerd did not answer on $own_socket within ${start_timeout_seconds}s; see $log" >&2
      exit 1
    fi
    sleep 1
    waited=$((waited + 1))
  done
}

case "${1:-}" in
  host)
    users_host || echo "$own_host"
    ;;
  start)
    if host=$(users_host); then
      echo "docker engine: using the daemon at $host"
    else
      start_own
      echo "docker engine: the project's own dockerd answers at $own_host (log $log)"
    fi
    ;;
  stop)
    if pid=$(own_pid); then
      kill "$pid"
      for _ in $(seq 1 30); do kill -0 "$pid" 2>/dev/null || break; sleep 1; done
      if kill -0 "$pid" 2>/dev/null; then
        echo "docker engine: dockerd (pid $pid) did not stop within 30s; see $log" >&2
        exit 1
      fi
      echo "docker engine: the project's own dockerd stopped"
    fi
    ;;
  *)
    echo "usage: $0 host|start|stop" >&2
    exit 2
    ;;
esac
