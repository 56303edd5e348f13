#!/usr/bin/env bash
# Egress scale-out at a hot site, distributed (docs/BENCHMARKS.md, "Egress scale-out"): the
# fleet benches/egress/hot-site.fleet.toml (100,000 addresses, the largest site 42 % of
# them, every server limiting per client IP like Postfix anvil) served by `rollcall sim`, a
# `rollcall coordinator` and workers over the local RabbitMQ and Redis, the list submitted with
# `rollcall submit --wait`. Two runs, each on a fresh fleet and prefix:
#   1x1  one worker with one egress (127.0.3.1)
#   2x4  two workers with four egresses each (127.0.3.1-4 and 127.0.4.1-4)
# Per run: wall time to the last result, the hot site's rows and the time its last row came
# (the output file polled every 0.2 s), its throughput, and the fleet's counters (per-IP rate
# refusals, greylist retries from another address). Then the hot site's speed-up.
#
#   bash benches/egress/hot-site.sh          ADDRESSES=N for a smaller list, KEEP=1 keeps the logs,
#                                            RUNS="2x4" one of the runs, LIST=FILE submits
#                                            FILE (e.g. the hot site's addresses) instead of
#                                            the fleet's whole list
# Needs Redis and RabbitMQ (bash scripts/services.sh), redis-cli, rabbitmqctl, python3.
# Loopback only; its Redis keys and AMQP queues (prefix rcbench-egress-*) are deleted at the end.
set -euo pipefail
cd "$(dirname "$0")/../.."
ADDRESSES=${ADDRESSES:-100000}
HOT=mx1.site1.test
SHARDS=8
AMQP=amqp://guest:guest@127.0.0.1:5672/%2f
REDIS=redis://127.0.0.1:6379
CONFIG=${CONFIG:-benches/egress/hot-site.rollcall.toml}
cargo build --release -q -p rollcall
bin=target/release/rollcall
work=$(mktemp -d /tmp/egress-hot.XXXXXX)
sed "s/^addresses = .*/addresses = $ADDRESSES/" benches/egress/hot-site.fleet.toml >"$work/fleet.toml"
pids=()
cleanup() {
  set +e
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null; done
  pids=()
}
drop_prefix() {
  redis-cli --scan --pattern "$1:*" | xargs -r -d '\n' -n 500 redis-cli del >/dev/null
  rabbitmqctl -q list_queues name 2>/dev/null | grep "^$1\." |
    xargs -r -d '\n' -I{} rabbitmqctl -q delete_queue {} >/dev/null 2>&1 || true
}
trap 'cleanup; if [ -n "${KEEP:-}" ]; then echo "kept $work"; else rm -rf "$work"; fi' EXIT

run() {
  local label=$1; shift
  local prefix="rcbench-egress-$label-$$" port=$((20000 + RANDOM % 20000))
  "$bin" sim --fleet "$work/fleet.toml" --smtp-port 0 --dns-listen 127.0.0.1:0 \
    --addresses "$work/list.txt" >"$work/sim-$label.log" 2>&1 &
  local sim=$!
  until grep -q "addresses to verify" "$work/sim-$label.log"; do sleep 0.5; done
  local dns smtp
  dns=$(awk '$1 == "dns" { print $2; exit }' "$work/sim-$label.log")
  smtp=$(awk '$1 == "smtp" { split($2, a, ":"); print a[length(a)]; exit }' "$work/sim-$label.log")
  local common=(--amqp "$AMQP" --redis "$REDIS" --prefix "$prefix" --shards "$SHARDS"
    --config "$CONFIG" --dns "$dns" --smtp-port "$smtp" --allow-private)
  "$bin" coordinator --listen "127.0.0.1:$port" "${common[@]}" >"$work/coord-$label.log" 2>&1 &
  pids+=($!)
  local i=0 egresses
  for egresses in "$@"; do
    i=$((i + 1))
    "$bin" worker --worker-id "w$i" "${common[@]}" --egress "$egresses" >"$work/w$i-$label.log" 2>&1 &
    pids+=($!)
  done
  until (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; do sleep 0.2; done
  # Every worker holds its fair share of the shards before the list goes in (a shard that
  # moves mid-run sends greylist retries to a worker without their egress).
  local share=$((SHARDS / $#)) w held
  for w in $(seq 1 $#); do
    for _ in $(seq 1 300); do
      held=0
      for s in $(seq 0 $((SHARDS - 1))); do
        redis-cli zrange "$prefix:{h:shard:$s}:leases" 0 -1 | grep -q "^w$w:" && held=$((held + 1))
      done
      [ "$held" -ge "$share" ] && break
      sleep 0.2
    done
  done
  local out="$work/out-$label.jsonl" samples="$work/samples-$label.txt"
  : >"$out"
  python3 - "$out" "$samples" "$HOT" <<'PY' &
import json, sys, time
out, samples, hot = sys.argv[1:]
start = time.time()
with open(samples, "w") as s:
    while True:
        n = 0
        try:
            with open(out) as f:
                n = sum(1 for line in f if f'"mx":"{hot}"' in line)
        except FileNotFoundError:
            pass
        s.write(f"{time.time() - start:.2f} {n}\n"); s.flush()
        time.sleep(0.2)
PY
  local poller=$!
  local started; started=$(date +%s.%N)
  "$bin" submit "${LIST:-$work/list.txt}" --coordinator "http://127.0.0.1:$port" --wait -o "$out" \
    --format jsonl --progress off 2>"$work/submit-$label.log"
  local wall; wall=$(echo "$(date +%s.%N) - $started" | bc)
  sleep 0.5; kill "$poller" 2>/dev/null; wait "$poller" 2>/dev/null || true
  cleanup
  kill -INT "$sim"; wait "$sim" 2>/dev/null || true
  drop_prefix "$prefix"
  local hot_rows hot_done rate_limited other_ip
  hot_rows=$(grep -c "\"mx\":\"$HOT\"" "$out" || true)
  hot_done=$(awk -v n="$hot_rows" '$2 >= n { print $1; exit }' "$samples")
  rate_limited=$(grep '^totals' "$work/sim-$label.log" | grep -o '"rate_limited":[0-9]*' | cut -d: -f2)
  other_ip=$(grep '^totals' "$work/sim-$label.log" | grep -o '"greylist_other_ip":[0-9]*' | cut -d: -f2)
  printf '%-4s rows %s in %.1f s; hot site %s: %s rows done at %.1f s (%.0f/s); per-IP refusals %s, greylist retries from another address %s\n' \
    "$label" "$(wc -l <"$out")" "$wall" "$HOT" "$hot_rows" "$hot_done" \
    "$(echo "$hot_rows / $hot_done" | bc -l)" "$rate_limited" "$other_ip"
  echo "$hot_done" >"$work/hot-$label"
}

RUNS=${RUNS:-"1x1 2x4"}
case " $RUNS " in *" 1x1 "*) run 1x1 127.0.3.1 ;; esac
case " $RUNS " in *" 2x4 "*) run 2x4 127.0.3.1,127.0.3.2,127.0.3.3,127.0.3.4 127.0.4.1,127.0.4.2,127.0.4.3,127.0.4.4 ;; esac
if [ -f "$work/hot-1x1" ] && [ -f "$work/hot-2x4" ]; then
  echo "hot site speed-up: $(echo "scale=2; $(cat "$work/hot-1x1") / $(cat "$work/hot-2x4")" | bc)x"
fi
