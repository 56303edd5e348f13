#!/usr/bin/env bash
# Load test of the HTTP API's POST /v1/verify (docs/BENCHMARKS.md, "HTTP API"): starts the
# simulated fleet of the HTTP tests (tests/http/fleet.toml) and `rollcall serve` against it
# (release build, limits raised so none answers 429), then runs tests/http/load.py: REQUESTS
# calls over CONCURRENCY keep-alive connections, round robin over the fleet's deliverable,
# unknown-mailbox, catch-all and full-mailbox addresses. Prints one JSON line per concurrency.
#   bash benches/http-verify.sh [REQUESTS] [CONCURRENCY...]      (default: 2000 1 8 32)
set -euo pipefail
cd "$(dirname "$0")/.."
requests=${1:-2000}
shift || true
levels=("${@:-1}")
[ $# -gt 0 ] || levels=(1 8 32)
bin=target/release/rollcall
[ -x "$bin" ] || cargo build --release -p rollcall
work=$(mktemp -d)
pids=()
cleanup() { for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT
"$bin" sim --fleet tests/http/fleet.toml --smtp-port 0 --dns-listen 127.0.0.1:0 \
  --addresses "$work/list.txt" >"$work/sim.log" 2>&1 &
pids+=($!)
for _ in $(seq 1 100); do grep -q 'addresses to verify' "$work/sim.log" && break; sleep 0.1; done
dns=$(awk '/^dns/{print $2}' "$work/sim.log")
smtp_port=$(awk '/^smtp/{split($2,a,":"); print a[2]; exit}' "$work/sim.log")
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
"$bin" serve --listen 127.0.0.1:0 --http-listen "127.0.0.1:$port" --token bench \
  --requests-per-minute 100000000 --max-concurrent-verify 1024 \
  --config tests/http/rollcall.toml --dns "$dns" --smtp-port "$smtp_port" --allow-private \
  >"$work/serve.log" 2>&1 &
pids+=($!)
for _ in $(seq 1 100); do grep -q 'HTTP API on' "$work/serve.log" && break; sleep 0.1; done
for c in "${levels[@]}"; do
  python3 tests/http/load.py "http://127.0.0.1:$port" bench "$requests" "$c" \
    alice.smith@normal.test nobody.here@normal.test dave.brown@catchall.test bob.jones@normal.test
done
