#!/usr/bin/env bash
# The 1,000,000-address list of million.sh verified twice with the result cache: a cold run
# that fills a fresh cache file, then a warm run over the same list. Each run has a fresh
# `rollcall sim` (the same seeded world), stopped with SIGINT after the run so it prints its
# counters: the warm run's `connections` and `rcpts` are what it sent to SMTP servers.
# Prints per run the verifier's wall time, peak RSS and CPU (GNU time), the summary, the
# cache file's size and the sim's totals.
# Usage: bash benches/fleet/million-cache.sh            (builds the release binary first)
#        ADDRESSES=100000 bash benches/fleet/million-cache.sh   (a smaller list)
set -euo pipefail
cd "$(dirname "$0")/../.."
cargo build --release -q
bin=target/release/rollcall
work=$(mktemp -d)
sim=""
trap '[ -n "$sim" ] && kill "$sim" 2>/dev/null; rm -rf "$work"' EXIT
fleet=benches/fleet/million.fleet.toml
if [ -n "${ADDRESSES:-}" ]; then
  sed "s/^addresses = .*/addresses = $ADDRESSES/" "$fleet" >"$work/fleet.toml"
  fleet="$work/fleet.toml"
fi
cache="$work/results.sqlite"

run() {
  local name=$1
  shift
  port=$((30000 + RANDOM % 20000))
  dns=$((30000 + RANDOM % 20000))
  "$bin" sim --fleet "$fleet" --smtp-port "$port" --dns-listen "127.0.0.1:$dns" \
    --addresses "$work/list.txt" >"$work/sim-$name.log" 2>"$work/sim-$name.err" &
  sim=$!
  for _ in $(seq 1 120); do [ -s "$work/list.txt" ] && grep -q . "$work/sim-$name.err" && break; sleep 0.5; done
  sleep 1
  echo "== $name run: $(wc -l <"$work/list.txt") addresses"
  /usr/bin/time -f "verify ($name): peak RSS %M KB, user %U s, system %S s, wall %e s" \
    "$bin" verify "$work/list.txt" -o "$work/out-$name.csv" --progress off \
    --summary-json "$work/summary-$name.json" --cache "$cache" \
    --config benches/fleet/million.rollcall.toml --dns "127.0.0.1:$dns" --smtp-port "$port" "$@"
  kill -INT "$sim"
  wait "$sim" || true
  sim=""
  echo "summary ($name): $(for k in rows written cached cache_misses changed; do grep -o "\"$k\": *[0-9]*" "$work/summary-$name.json"; done | tr -d ' ' | tr '\n' ' ')"
  echo "cached rows in the output ($name): $(awk -F, 'NR>1 && $(NF-2)=="true"' "$work/out-$name.csv" | wc -l)"
  echo "cache file ($name): $(du -b "$cache" | cut -f1) bytes, WAL $(du -b "$cache-wal" 2>/dev/null | cut -f1 || echo 0) bytes"
  echo "sim totals ($name): $(grep '^totals' "$work/sim-$name.log" | grep -o '"connections":[0-9]*,"connections_refused":[0-9]*\|"rcpts":[0-9]*' | tr '\n' ' ')"
}

run cold "$@"
run warm "$@"
