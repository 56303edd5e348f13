#!/usr/bin/env bash
# A real SOCKS5 server on loopback (Debian's microsocks) for rollcall-smtp's proxy tests
# (crates/smtp/tests/socks.rs) and for trying `socks5://` by hand.
#
#   bash scripts/socks.sh up [PORT] [BIND_OUT] [USER PASS]
#       install microsocks if missing, start it listening on 127.0.0.1:PORT (default 1080)
#       with its outgoing connections bound to BIND_OUT (default 127.0.0.9), requiring
#       USER/PASS (RFC 1929) when given; wait until the port accepts; print one line.
#       Idempotent: when PORT already listens nothing is started (an instance this script
#       started there with other options is an error: `down PORT` first).
#   bash scripts/socks.sh down [PORT]
#       stop the instance this script started on PORT (all of them without PORT).
#   bash scripts/socks.sh status
#       one line per instance this script started.
#
# Loopback only: the listener is 127.0.0.1 and BIND_OUT must be a 127.0.0.0/8 address, so the
# proxy can reach nothing but loopback (a socket bound to 127.x cannot leave the machine).
# microsocks is never started with -1 (auth_once would let a client that once authenticated
# skip authentication afterwards, which the wrong-password test must not meet).
# Safe without a terminal or stdin (CI runs it as root with none).
set -euo pipefail

readonly LISTEN="127.0.0.1"
readonly DEFAULT_PORT="1080"
readonly DEFAULT_BIND_OUT="127.0.0.9"
readonly STATE_DIR="${ROLLCALL_SOCKS_STATE_DIR:-${TMPDIR:-/tmp}/rollcall-socks}"
# Bounds every wait in this script (seconds).
readonly WAIT_SECS=10

say() { echo "socks.sh: $*" >&2; }
die() {
  say "error: $*"
  exit 1
}

usage() {
  sed -n '2,14p' "$0" | sed 's/^# \{0,1\}//' >&2
  exit 64
}

valid_port() { [[ "$1" =~ ^[0-9]{1,5}$ ]] && [ "$1" -ge 1 ] && [ "$1" -le 65535 ]; }

valid_loopback() {
  [[ "$1" =~ ^127\.([0-9]{1,3})\.([0-9]{1,3})\.([0-9]{1,3})$ ]] &&
    [ "${BASH_REMATCH[1]}" -le 255 ] && [ "${BASH_REMATCH[2]}" -le 255 ] &&
    [ "${BASH_REMATCH[3]}" -le 255 ]
}

# True when something accepts TCP connections on LISTEN:$1.
port_open() {
  timeout 2 bash -c "exec 3<>/dev/tcp/${LISTEN}/$1" 2>/dev/null
}

as_root() {
  if [ "$(id -u)" -eq 0 ]; then
    "$@"
  elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
    sudo -n "$@"
  else
    die "microsocks is not installed and installing it needs root: run 'sudo apt-get install -y microsocks'"
  fi
}

install_if_missing() {
  if command -v microsocks >/dev/null 2>&1; then
    return
  fi
  say "installing microsocks from Debian's packages"
  export DEBIAN_FRONTEND=noninteractive
  # The package lists are usually fresh enough; refresh them only when the install fails.
  if ! as_root apt-get install -y -q microsocks </dev/null >&2; then
    say "install failed; running apt-get update and trying again"
    as_root apt-get update -q </dev/null >&2 || die "apt-get update failed"
    as_root apt-get install -y -q microsocks </dev/null >&2 || die "apt-get install microsocks failed"
  fi
  command -v microsocks >/dev/null 2>&1 || die "microsocks still not on PATH after installing it"
}

supports_password() {
  local help
  # `-h` is not an option microsocks knows: it prints its usage and exits non-zero.
  help="$(microsocks -h 2>&1 </dev/null || true)"
  [[ "$help" == *"-P password"* ]]
}

# Our pid for PORT if that process is still a running microsocks.
running_pid() {
  local file="$STATE_DIR/$1.pid" pid
  [ -f "$file" ] || return 1
  pid="$(cat "$file")"
  [[ "$pid" =~ ^[0-9]+$ ]] || return 1
  [ "$(cat "/proc/$pid/comm" 2>/dev/null || true)" = "microsocks" ] || return 1
  echo "$pid"
}

# Serialise `up`/`down` between concurrent callers (test binaries of several crates may start
# the same instance at once).
lock() {
  # Private: the options file records the test password.
  mkdir -p -m 700 "$STATE_DIR"
  exec 9>"$STATE_DIR/lock"
  if command -v flock >/dev/null 2>&1; then
    flock -w "$WAIT_SECS" 9 || die "another socks.sh held $STATE_DIR/lock for ${WAIT_SECS}s"
  fi
}

cmd_up() {
  local port="${1:-$DEFAULT_PORT}" bind_out="${2:-$DEFAULT_BIND_OUT}" user="${3:-}" pass="${4:-}"
  valid_port "$port" || die "PORT must be 1-65535, got '$port'"
  valid_loopback "$bind_out" || die "BIND_OUT must be a 127.0.0.0/8 address, got '$bind_out'"
  if [ -n "$user" ] && [ -z "$pass" ]; then die "USER given without PASS"; fi
  if [ -z "$user" ] && [ -n "$pass" ]; then die "PASS given without USER"; fi
  local options="bind_out=$bind_out user=$user pass=$pass"
  local auth_note="no auth"
  if [ -n "$user" ]; then auth_note="user '$user' with a password"; fi

  lock
  if port_open "$port"; then
    local had=""
    [ -f "$STATE_DIR/$port.options" ] && had="$(cat "$STATE_DIR/$port.options")"
    if running_pid "$port" >/dev/null && [ "$had" != "$options" ]; then
      die "$LISTEN:$port already serves a proxy this script started with other options; run 'bash $0 down $port' first"
    fi
    if running_pid "$port" >/dev/null; then
      echo "socks.sh: microsocks already up on $LISTEN:$port (outgoing from $bind_out, $auth_note)"
    else
      echo "socks.sh: $LISTEN:$port already listens (not started by this script); nothing started"
    fi
    return
  fi

  install_if_missing
  local args=(-i "$LISTEN" -p "$port" -b "$bind_out")
  if [ -n "$user" ]; then
    supports_password || die "this microsocks has no -u/-P (user/password) options"
    args+=(-u "$user" -P "$pass")
  fi
  local log="$STATE_DIR/$port.log"
  # Detached from the caller: its own session, no stdin, output to a file (a test reading this
  # script's stdout must not wait for the proxy to exit), and without the lock's descriptor
  # (which would hold the lock for as long as the proxy runs).
  setsid microsocks "${args[@]}" </dev/null >"$log" 2>&1 9>&- &
  local pid=$!
  echo "$pid" >"$STATE_DIR/$port.pid"
  echo "$options" >"$STATE_DIR/$port.options"

  local deadline=$((SECONDS + WAIT_SECS))
  until port_open "$port"; do
    if ! kill -0 "$pid" 2>/dev/null; then
      rm -f "$STATE_DIR/$port.pid" "$STATE_DIR/$port.options"
      die "microsocks exited at once; its output ($log): $(tr '\n' ' ' <"$log")"
    fi
    [ "$SECONDS" -lt "$deadline" ] || die "microsocks (pid $pid) did not accept on $LISTEN:$port within ${WAIT_SECS}s"
    sleep 0.1
  done
  echo "socks.sh: microsocks up on $LISTEN:$port (outgoing from $bind_out, $auth_note), pid $pid"
}

stop_port() {
  local port="$1" pid
  if pid="$(running_pid "$port")"; then
    kill "$pid" 2>/dev/null || true
    local deadline=$((SECONDS + WAIT_SECS))
    while kill -0 "$pid" 2>/dev/null; do
      if [ "$SECONDS" -ge "$deadline" ]; then
        kill -KILL "$pid" 2>/dev/null || true
        break
      fi
      sleep 0.1
    done
    echo "socks.sh: stopped microsocks on $LISTEN:$port (pid $pid)"
  else
    echo "socks.sh: no microsocks of ours on $LISTEN:$port"
  fi
  rm -f "$STATE_DIR/$port.pid" "$STATE_DIR/$port.options"
}

cmd_down() {
  lock
  if [ $# -ge 1 ]; then
    valid_port "$1" || die "PORT must be 1-65535, got '$1'"
    stop_port "$1"
    return
  fi
  local file found=""
  for file in "$STATE_DIR"/*.pid; do
    [ -e "$file" ] || continue
    found=1
    stop_port "$(basename "$file" .pid)"
  done
  [ -n "$found" ] || echo "socks.sh: no microsocks of ours running"
}

cmd_status() {
  local file port pid found=""
  for file in "$STATE_DIR"/*.pid; do
    [ -e "$file" ] || continue
    port="$(basename "$file" .pid)"
    found=1
    if pid="$(running_pid "$port")"; then
      echo "socks.sh: $LISTEN:$port up, pid $pid ($(cat "$STATE_DIR/$port.options" 2>/dev/null | sed 's/pass=[^ ]*/pass=***/'))"
    else
      echo "socks.sh: $LISTEN:$port down (stale pid file)"
    fi
  done
  [ -n "$found" ] || echo "socks.sh: no microsocks of ours running"
}

main() {
  [ $# -ge 1 ] || usage
  local cmd="$1"
  shift
  case "$cmd" in
    up)
      [ $# -le 4 ] || usage
      cmd_up "$@"
      ;;
    down)
      [ $# -le 1 ] || usage
      cmd_down "$@"
      ;;
    status) cmd_status ;;
    -h | --help | help) usage ;;
    *) usage ;;
  esac
}

main "$@"
