#!/usr/bin/env bash
# 1,000,000 addresses through `rollcall verify` in its own process, against the simulated
# fleet in another; prints the verifier's peak RSS and CPU time (GNU time) and its summary.
# No result cache (--no-cache): every run probes every address (million-cache.sh measures the
# cache).
# Usage: bash benches/fleet/million.sh   (builds the release binary first)
set -euo pipefail
cd "$(dirname "$0")/../.."
cargo build --release -q
bin=target/release/rollcall
work=$(mktemp -d)
trap 'kill "$sim" 2>/dev/null || true; rm -rf "$work"' EXIT
port=$((30000 + RANDOM % 20000))
dns=$((30000 + RANDOM % 20000))
"$bin" sim --fleet benches/fleet/million.fleet.toml --smtp-port "$port" \
  --dns-listen "127.0.0.1:$dns" --addresses "$work/list.txt" >"$work/sim.log" 2>&1 &
sim=$!
for _ in $(seq 1 120); do [ -s "$work/list.txt" ] && grep -q . "$work/sim.log" && break; sleep 0.5; done
sleep 1
echo "list: $(wc -l <"$work/list.txt") addresses"
/usr/bin/time -f 'verify: peak RSS %M KB, user %U s, system %S s, wall %e s' \
  "$bin" verify "$work/list.txt" -o "$work/out.csv" --progress log --no-cache \
  --config benches/fleet/million.rollcall.toml --dns "127.0.0.1:$dns" --smtp-port "$port" "$@"
echo "output rows: $(($(wc -l <"$work/out.csv") - 1))"
