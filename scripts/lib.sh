# shellcheck shell=bash
# shellcheck disable=SC2034  # the variables here are used by the scripts that source this file
# Shared shell helpers for scripts/stack, scripts/demo and scripts/test: where things
# live, how ports are chosen, and small waiting/logging functions. Sourced, never run.

set -euo pipefail

REPO_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# Downloads, built servers and the cargo target dir live outside the clone, so a fresh
# clone on the same machine reuses them; an empty cache is rebuilt from the registries.
VOTEFLOW_CACHE=${VOTEFLOW_CACHE:-$HOME/.cache/voteflow}
# Per-checkout runtime state (data, logs, pid files): gitignored.
STACK_DIR=${VOTEFLOW_STACK_DIR:-$REPO_ROOT/.stack}

KAFKA_VERSION=4.1.1
KAFKA_PORT=${VOTEFLOW_KAFKA_PORT:-9092}
KAFKA_CONTROLLER_PORT=${VOTEFLOW_KAFKA_CONTROLLER_PORT:-9093}
REDIS_PORT=${VOTEFLOW_REDIS_PORT:-6379}
MONGO_PORT=${VOTEFLOW_MONGO_PORT:-27017}
INGRESS_PORT=${VOTEFLOW_INGRESS_PORT:-8088}
PROMETHEUS_PORT=${VOTEFLOW_PROMETHEUS_PORT:-9090}
GRPC_FRONT=${VOTEFLOW_GRPC_FRONT:-127.0.0.1:3000}
REST_FRONT=${VOTEFLOW_REST_FRONT:-127.0.0.1:8000}

export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$VOTEFLOW_CACHE/target}

say() { printf '\033[1m[%s]\033[0m %s\n' "$(basename "$0")" "$*" >&2; }
die() { say "error: $*"; exit 1; }

# port_open PORT: true when something accepts TCP connections on 127.0.0.1:PORT.
port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# wait_for SECONDS WHAT COMMAND...: polls COMMAND every 0.2 s until it succeeds.
wait_for() {
  local seconds=$1 what=$2
  shift 2
  local deadline=$((SECONDS + seconds))
  until "$@"; do
    if ((SECONDS >= deadline)); then
      return 1
    fi
    sleep 0.2
  done
  say "$what is up"
}

# pid_alive FILE: true when FILE names a running process.
pid_alive() { [[ -f $1 ]] && kill -0 "$(cat "$1")" 2>/dev/null; }

# stop_pid NAME FILE: SIGTERM, then SIGKILL after 15 s; removes the pid file.
stop_pid() {
  local name=$1 file=$2
  if pid_alive "$file"; then
    local pid
    pid=$(cat "$file")
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 75); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.2
    done
    if kill -0 "$pid" 2>/dev/null; then
      say "$name did not stop in 15 s; killing it"
      kill -KILL "$pid" 2>/dev/null || true
    fi
    say "$name stopped"
  fi
  rm -f "$file"
}

# The pipeline's services as scripts/demo runs them: pid files and logs here.
SERVICES_DIR=$STACK_DIR/services
DEMO_SERVICES=(consumer rest-client grpc-client rest-server grpc-server)

# stop_demo_services: stops what scripts/demo started (also after `--keep`).
stop_demo_services() {
  local service
  for service in "${DEMO_SERVICES[@]}"; do stop_pid "$service" "$SERVICES_DIR/$service.pid"; done
}

# build_release: the release binaries of every service and tool, into $CARGO_TARGET_DIR/release.
build_release() {
  say "building release binaries (the first build takes ~10-20 min on 2 cores)"
  local started=$SECONDS
  (cd "$REPO_ROOT" && cargo build --release --locked --bins \
    -p voteflow-producer-rest -p voteflow-producer-grpc -p voteflow-consumer -p voteflow-bench)
  say "release binaries ready in $((SECONDS - started)) s"
}

# apt_install PACKAGE...: installs Debian packages that are missing (needs root or sudo).
apt_install() {
  local missing=()
  for pkg in "$@"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' || missing+=("$pkg")
  done
  ((${#missing[@]} == 0)) && return 0
  local sudo=""
  [[ $(id -u) == 0 ]] || sudo="sudo"
  say "installing Debian packages: ${missing[*]}"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

# Python tools (linters, validators, Locust) live in one virtualenv in the cache.
TOOLS_VENV=$VOTEFLOW_CACHE/venv

# pip_tools PACKAGE...: installs missing PyPI packages into $TOOLS_VENV (created on first
# use) and puts its bin/ first on PATH.
pip_tools() {
  if [[ ! -x $TOOLS_VENV/bin/pip ]]; then
    rm -rf "$TOOLS_VENV"
    python3 -m venv "$TOOLS_VENV" 2>/dev/null || {
      apt_install python3-venv
      python3 -m venv "$TOOLS_VENV"
    }
  fi
  local missing=()
  for pkg in "$@"; do
    "$TOOLS_VENV/bin/pip" show -q "${pkg%%[=<>]*}" >/dev/null 2>&1 || missing+=("$pkg")
  done
  if ((${#missing[@]})); then
    say "installing from PyPI into $TOOLS_VENV: ${missing[*]}"
    "$TOOLS_VENV/bin/pip" install -q --disable-pip-version-check "${missing[@]}" >&2
  fi
  export PATH=$TOOLS_VENV/bin:$PATH
}
