#!/usr/bin/env bash
# Runs tests/distributed_broker_restart.rs N times in a row (default 20) and prints how many
# runs passed. Each run restarts the local RabbitMQ several times (`rabbitmqctl stop_app` /
# `start_app`), so nothing else may use the broker meanwhile. Logs of failed runs are kept.
#
#   bash scripts/broker-restart-soak.sh [N]
set -uo pipefail

runs=${1:-20}
cd "$(dirname "$0")/.."
bash scripts/services.sh >/dev/null
cargo test -p rollcall --test distributed_broker_restart --no-run -q || exit 1

logs=$(mktemp -d /tmp/broker-restart-soak.XXXXXX)
passed=0
for i in $(seq 1 "$runs"); do
  started=$(date +%s)
  if CI=1 cargo test -q -p rollcall --test distributed_broker_restart -- --nocapture \
      >"$logs/run-$i.log" 2>&1; then
    passed=$((passed + 1))
    rm -f "$logs/run-$i.log"
    echo "run $i/$runs: pass ($(( $(date +%s) - started ))s)"
  else
    echo "run $i/$runs: FAIL ($(( $(date +%s) - started ))s), log in $logs/run-$i.log"
    grep -E "stuck|panicked|did not end" "$logs/run-$i.log" | head -3
  fi
  # A failed run's guard starts the broker again; make sure of it before the next run.
  rabbitmqctl -q status >/dev/null 2>&1 || rabbitmqctl start_app >/dev/null
done
echo "passed $passed of $runs"
[ "$passed" -eq "$runs" ]
