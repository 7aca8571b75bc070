#!/usr/bin/env bash
# Stack life cycle behind the Makefile: up | ensure | outputs | down. Needs `make toolchain` first.
set -euo pipefail
shopt -s inherit_errexit
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=toolchain/env.sh
source "$root/toolchain/env.sh"
cd "$root"

stack=${STACK:-dev}
command -v pulumi >/dev/null || { echo "pulumi is not installed: run 'make toolchain'" >&2; exit 1; }

select_stack() {
  # A fresh clone has Pulumi.<stack>.yaml (config, encrypted secrets) but no stack in the local backend.
  pulumi stack select --create "$stack" >/dev/null
}

elapsed_since() { echo "$(($(date +%s) - $1))s"; }

# A stack on the docker runtime needs an engine: the user's daemon when one answers, else the
# project's own (scripts/dockerd.sh). `auto` only means docker when a daemon already answers, so
# nothing is started for it.
stack_runtime() { pulumi config get cdcstack:runtime --stack "$stack" 2>/dev/null || echo auto; }
use_docker_engine() {
  if [ "$(stack_runtime)" = docker ]; then
    "$root/scripts/dockerd.sh" start >&2
    DOCKER_HOST=$("$root/scripts/dockerd.sh" host)
    export DOCKER_HOST
  fi
}

check_config() {
  # A program that raises loses the stack's outputs for that update, so a bad value must stop here:
  # one line naming the key and the fix, nothing applied, the last outputs kept. Without
  # --show-secrets a secret is listed without its value; its presence is all the check needs.
  pulumi config --json --stack "$stack" | python -m stack_config check
}

case "${1:-}" in
  up)
    started=$(date +%s)
    select_stack
    check_config
    use_docker_engine
    # Refresh first: a service that died (or a replacement that failed) reads as gone and is started again.
    pulumi up --yes --skip-preview --refresh --stack "$stack"
    pulumi stack output --stack "$stack" --json
    echo "stack $stack is up ($(elapsed_since "$started"))"
    ;;
  ensure)
    started=$(date +%s)
    select_stack
    check_config
    use_docker_engine
    # Quiet when it works; on a failure the engine's own messages, which a CI log must show.
    up_log="$CDCSTACK_STATE_DIR/stacks/$stack.last-up.log"
    mkdir -p "$(dirname "$up_log")"
    pulumi up --yes --skip-preview --refresh --stack "$stack" --suppress-outputs >"$up_log" 2>&1 ||
      { tail -n 40 "$up_log" >&2; echo "pulumi up failed for stack $stack (whole output: $up_log); run 'make up' to see why" >&2; exit 1; }
    echo "stack $stack is up ($(elapsed_since "$started"))"
    ;;
  outputs)
    pulumi stack output --stack "$stack" --json --show-secrets
    ;;
  down)
    started=$(date +%s)
    if pulumi stack select "$stack" >/dev/null 2>&1; then
      use_docker_engine
      pulumi destroy --yes --skip-preview --stack "$stack"
      # The project's own engine goes with the docker stack (a user's daemon is never touched).
      [ "$(stack_runtime)" != docker ] || "$root/scripts/dockerd.sh" stop
    fi
    echo "stack $stack is down ($(elapsed_since "$started"))"
    ;;
  *)
    echo "usage: $0 up|ensure|outputs|down" >&2
    exit 2
    ;;
esac
