#!/usr/bin/env bash
# The second pass against a throttling tenant (docs/BENCHMARKS.md, "Fewer unknowns"): the
# fleet benches/providers/throttling.fleet.toml (300 addresses of one domain behind a host
# that answers `451 4.7.500 Server busy` past 20 RCPTs per 20 s) served by `rollcall sim`, and
# `rollcall verify` of its list with benches/providers/second-pass.rollcall.toml twice, on a
# fresh fleet each: with `--second-pass off`, then with the file's second pass (30 s). Prints
# per run the unknown rows, the unknown rate, the rows tried a second time and the wall time.
# The result cache is off (`--no-cache`): the second run would take the first one's verdicts.
#
#   bash benches/providers/second-pass.sh
# Loopback only.
set -euo pipefail
cd "$(dirname "$0")/../.."
cargo build --release -q -p rollcall
bin=target/release/rollcall
work=$(mktemp -d /tmp/second-pass.XXXXXX)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT

run() {
  local label=$1; shift
  "$bin" sim --fleet benches/providers/throttling.fleet.toml --smtp-port 0 \
    --dns-listen 127.0.0.1:0 --addresses "$work/list.txt" >"$work/sim-$label.log" 2>&1 &
  local sim=$!
  until grep -q "addresses to verify" "$work/sim-$label.log"; do sleep 0.2; done
  local dns smtp
  dns=$(awk '$1 == "dns" { print $2; exit }' "$work/sim-$label.log")
  smtp=$(awk '$1 == "smtp" { split($2, a, ":"); print a[length(a)]; exit }' "$work/sim-$label.log")
  local started=$SECONDS
  "$bin" verify "$work/list.txt" -o "$work/out-$label.csv" --config benches/providers/second-pass.rollcall.toml \
    --dns "$dns" --smtp-port "$smtp" --allow-private --progress off --no-cache \
    --summary-json "$work/summary-$label.json" "$@" >/dev/null 2>"$work/verify-$label.log" || true
  local wall=$((SECONDS - started))
  kill -INT "$sim"; wait "$sim" 2>/dev/null || true
  python3 - "$work/summary-$label.json" "$label" "$wall" <<'PY'
import json, sys
s = json.load(open(sys.argv[1]))
rows = s["rows"]
unknown = s["by_status"]["unknown"]
print(f"{sys.argv[2]:<18} rows {rows}  unknown {unknown} ({100 * unknown / rows:.1f} %)  "
      f"second pass {s.get('second_pass', 0)}  wall {sys.argv[3]} s  "
      f"unknown by provider {json.dumps(s.get('unknown_by_provider', {}))}")
PY
}

run "second pass off" --second-pass off
run "second pass 30s"
