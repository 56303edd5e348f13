#!/usr/bin/env bash
# The distributed benchmark of docs/BENCHMARKS.md ("Distributed: coordinator and workers over
# RabbitMQ and Redis"): the fleet of `rollcall bench` (benches/fleet/distributed.fleet.toml)
# served by `rollcall sim`, a `rollcall coordinator` and 1, then 2 `rollcall worker` processes
# over the local RabbitMQ and Redis, the list submitted with `rollcall submit --wait`. Then the
# embedded engine on the same fleet in the same sitting: `rollcall bench` (fleet and engine in
# one process) and `rollcall verify` (against a `rollcall sim` process, like the workers).
#
# Per run it prints: wall time from submit to the last result, campaign throughput, the
# coordinator's publish rate (batches confirmed by RabbitMQ, from rollcall_queue_published_total
# on its /metrics, sampled every 0.2 s), Redis commands per verified address (INFO stats
# total_commands_processed before and after, raw and less the rate measured with every process
# up and idle, which takes out the other clients of the shared Redis), the workers' SMTP
# counters and the fleet's (transactions, sessions, max sessions per host, 503s).
#
# Usage: bash benches/fleet/distributed.sh
#   ADDRESSES=N   a smaller list (the fleet file with `addresses = N`; the embedded runs use
#                 the same N), default 200000
#   WORKERS="1 2" the worker counts to run, in order
#   QUIET_WAIT=S  before each measurement, wait up to S seconds (default 900) for a quiet
#   LOAD_MAX=L    moment: no rustc and no test binary running, a 1-minute load under L
#                 (default 1.5); the load
#                 is printed either way
#   KEEP=1        keep the logs, lists, results and /metrics pages (the directory is printed)
# Needs Redis on 127.0.0.1:6379 and RabbitMQ on 127.0.0.1:5672 (`bash scripts/services.sh`),
# redis-cli, rabbitmqctl and curl. Loopback only. Every Redis key and AMQP queue and exchange
# it creates is under its own prefix (rcbench-dist-*) and deleted at the end.
set -euo pipefail
cd "$(dirname "$0")/../.."

ADDRESSES=${ADDRESSES:-200000}
WORKERS=${WORKERS:-"1 2"}
QUIET_WAIT=${QUIET_WAIT:-900}
LOAD_MAX=${LOAD_MAX:-1.5}
SHARDS=16
AMQP=amqp://guest:guest@127.0.0.1:5672/%2f
REDIS=redis://127.0.0.1:6379
CONFIG=benches/fleet/distributed.rollcall.toml

for tool in redis-cli rabbitmqctl curl; do
  command -v "$tool" >/dev/null || { echo "distributed.sh: $tool is missing" >&2; exit 1; }
done
if ! redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1 || ! (exec 3<>/dev/tcp/127.0.0.1/5672) 2>/dev/null; then
  echo "distributed.sh: Redis (127.0.0.1:6379) or RabbitMQ (127.0.0.1:5672) is not up; start them with: bash scripts/services.sh" >&2
  exit 1
fi

cargo build --release -q -p rollcall
bin=target/release/rollcall
work=$(mktemp -d)
pids=()
prefixes=()

rcli() { redis-cli -h 127.0.0.1 -p 6379 "$@"; }

stop_pids() {
  local pid
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  pids=()
}

# Deletes the Redis keys, AMQP queues and exchanges under one prefix, and nothing else.
cleanup_prefix() {
  local p=$1 queues exchanges list
  rcli --scan --pattern "$p:*" | xargs -r -d '\n' -n 500 redis-cli -h 127.0.0.1 -p 6379 del >/dev/null
  queues=$(rabbitmqctl -q list_queues name 2>/dev/null | grep "^$p\." || true)
  if [ -n "$queues" ]; then
    printf '%s\n' "$queues" | xargs -r -d '\n' -P 4 -I{} rabbitmqctl -q delete_queue {} >/dev/null 2>&1 || true
  fi
  exchanges=$(rabbitmqctl -q list_exchanges name 2>/dev/null | grep "^$p\." || true)
  if [ -n "$exchanges" ]; then
    # rabbitmqctl has no delete_exchange: one eval deletes them all (vhost /).
    list=$(printf '%s\n' "$exchanges" | sed 's/.*/<<"&">>/' | paste -sd, -)
    rabbitmqctl -q eval "[rabbit_exchange:delete(rabbit_misc:r(<<\"/\">>, exchange, N), false, <<\"rollcall-bench\">>) || N <- [$list]]." >/dev/null 2>&1 || true
  fi
  local left_keys left_queues
  left_keys=$(rcli --scan --pattern "$p:*" | wc -l)
  left_queues=$(rabbitmqctl -q list_queues name 2>/dev/null | grep -c "^$p\." || true)
  echo "cleanup $p: $left_keys Redis keys and $left_queues queues left"
}

on_exit() {
  set +e
  stop_pids
  [ -n "${sim_pid:-}" ] && kill -INT "$sim_pid" 2>/dev/null && wait "$sim_pid" 2>/dev/null
  sim_pid=""
  local p
  for p in "${prefixes[@]}"; do cleanup_prefix "$p"; done
  if [ -n "${KEEP:-}" ]; then echo "logs and metrics kept in $work"; else rm -rf "$work"; fi
}
trap on_exit EXIT

# Waits (up to QUIET_WAIT s) until no compiler and no test binary (target/*/deps/) runs and the
# 1-minute load is under LOAD_MAX, then prints the load.
quiet_moment() {
  local what=$1 waited=0
  while [ "$waited" -lt "$QUIET_WAIT" ]; do
    if ! pgrep -x rustc >/dev/null && ! pgrep -f '/target/[a-z]+/deps/' >/dev/null &&
      awk -v max="$LOAD_MAX" '{ exit !($1 < max) }' /proc/loadavg; then
      break
    fi
    [ $((waited % 60)) -eq 0 ] &&
      echo "($what: waiting for a quiet moment: $(pgrep -x rustc | wc -l) rustc, $(pgrep -f '/target/[a-z]+/deps/' | wc -l) test processes, load $(cut -d' ' -f1-3 /proc/loadavg))"
    sleep 5
    waited=$((waited + 5))
  done
  local busy=""
  pgrep -x rustc >/dev/null && busy=" (rustc running)"
  pgrep -f '/target/[a-z]+/deps/' >/dev/null && busy="$busy (tests running)"
  load_note="$(cut -d' ' -f1-3 /proc/loadavg)$busy"
  echo "load before $what: $load_note"
}

port() { echo $((20000 + RANDOM % 30000)); }

wait_http() {
  local url=$1 i
  for i in $(seq 1 240); do curl -sf "$url" >/dev/null 2>&1 && return 0; sleep 0.25; done
  echo "distributed.sh: nothing answers at $url" >&2
  return 1
}

# Sum of a metric (all label sets) on a /metrics page.
metric() {
  awk -v m="$2" '$1 == m || index($1, m "{") == 1 { s += $NF } END { printf "%.0f\n", s }' "$1"
}

# User + system CPU seconds of a process so far (/proc/PID/stat fields 14 and 15).
cpu_s() {
  awk -v hz="$(getconf CLK_TCK)" '{ sub(/.*\) /, ""); printf "%.1f\n", ($12 + $13) / hz }' "/proc/$1/stat" 2>/dev/null || echo 0
}

# Calls per command since a saved `INFO commandstats`, per address, the largest first.
redis_command_mix() {
  local before=$1 n=$2
  rcli INFO commandstats | tr -d '\r' | awk -F'[:,=]' -v n="$n" '
    NR == FNR { if ($1 ~ /^cmdstat_/) was[$1] = $3; next }
    $1 ~ /^cmdstat_/ { d = $3 - was[$1]; if (d > 0) printf "%s %.3f\n", substr($1, 9), d / n }
  ' "$before" - | sort -k2 -rn | head -8 | awk '{ printf "%s%s %s", sep, $1, $2; sep = ", " } END { print "" }'
}

redis_commands() { rcli INFO stats | tr -d '\r' | awk -F: '$1 == "total_commands_processed" { print $2 }'; }
redis_clients() { rcli INFO clients | tr -d '\r' | awk -F: '$1 == "connected_clients" { print $2 }'; }

# The fleet file with ADDRESSES addresses.
fleet=$work/fleet.toml
sed "s/^addresses = .*/addresses = $ADDRESSES/" benches/fleet/distributed.fleet.toml >"$fleet"

# Starts `rollcall sim` on $fleet; sets sim_pid, sim_dns, sim_port, sim_log; list in $2.
start_sim() {
  local name=$1 list=$2
  sim_log=$work/$name.log
  sim_port=$(port)
  sim_dns=127.0.0.1:$(port)
  "$bin" sim --fleet "$fleet" --smtp-port "$sim_port" --dns-listen "$sim_dns" \
    --addresses "$list" >"$sim_log" 2>&1 &
  sim_pid=$!
  local i
  for i in $(seq 1 600); do grep -q "addresses to verify" "$sim_log" && return 0; sleep 0.2; done
  echo "distributed.sh: the fleet did not start:" >&2
  cat "$sim_log" >&2
  return 1
}

# Stops the fleet with Ctrl-C; sets fleet_counts to "transactions connections max_per_host
# faults" from the counters it prints.
stop_sim() {
  kill -INT "$sim_pid"
  wait "$sim_pid" || true
  sim_pid=""
  local totals max
  totals=$(grep '^totals' "$sim_log" | sed 's/^totals *//')
  field() { printf '%s' "$totals" | grep -o "\"$1\":[0-9]*" | cut -d: -f2; }
  max=$(grep -o '"max_concurrent_connections":[0-9]*' "$sim_log" | cut -d: -f2 | sort -n | tail -1)
  fleet_counts="$(field transactions) $(field connections) ${max:-0} $(($(field replies_503) + $(field pipelining_violations) + $(field error_budget_trips)))"
}

engine_flags() { echo --config "$CONFIG" --dns "$sim_dns" --smtp-port "$sim_port" --allow-private; }

run_distributed() {
  local workers=$1
  local prefix=rcbench-dist-$$-w$workers
  prefixes+=("$prefix")
  local list=$work/list-w$workers.txt out=$work/out-w$workers.jsonl
  echo
  echo "== $workers worker(s), prefix $prefix =="
  start_sim "sim-w$workers" "$list"
  local n
  n=$(wc -l <"$list")
  local fleet_flags=(--amqp "$AMQP" --redis "$REDIS" --prefix "$prefix" --shards "$SHARDS")
  local api cmetrics
  api=$(port)
  cmetrics=$(port)
  # shellcheck disable=SC2046
  "$bin" coordinator --listen "127.0.0.1:$api" --no-cache "${fleet_flags[@]}" \
    --metrics-listen "127.0.0.1:$cmetrics" $(engine_flags) >"$work/coordinator-w$workers.log" 2>&1 &
  local coordinator_pid=$!
  pids+=("$coordinator_pid")
  local wmetrics=() worker_pids=() i
  for i in $(seq 1 "$workers"); do
    wmetrics+=("$(port)")
    # shellcheck disable=SC2046
    "$bin" worker --worker-id "w$i" "${fleet_flags[@]}" \
      --metrics-listen "127.0.0.1:${wmetrics[$((i - 1))]}" $(engine_flags) \
      >"$work/worker$i-w$workers.log" 2>&1 &
    worker_pids+=("$!")
    pids+=("$!")
  done
  wait_http "http://127.0.0.1:$cmetrics/metrics"
  for i in "${wmetrics[@]}"; do wait_http "http://127.0.0.1:$i/metrics"; done
  # Every worker holds its fair share of the shard leases.
  local share=$(((SHARDS + workers - 1) / workers)) ok=0
  for _ in $(seq 1 240); do
    ok=1
    for i in $(seq 1 "$workers"); do
      local held=0 s
      for s in $(seq 0 $((SHARDS - 1))); do
        rcli ZRANGE "$prefix:{h:shard:$s}:leases" 0 -1 | grep -q "^w$i:" && held=$((held + 1))
      done
      [ "$held" -ge $((SHARDS / workers)) ] && [ "$held" -le "$share" ] || ok=0
    done
    [ "$ok" = 1 ] && break
    sleep 0.5
  done
  [ "$ok" = 1 ] || echo "(the shard leases were not split evenly after 120 s; measuring anyway)"

  quiet_moment "$workers worker(s)"
  local load=$load_note
  # Redis commands with everything up and idle: the other clients' and our idle polling.
  local idle0 idle1 t_idle0 t_idle1
  idle0=$(redis_commands)
  t_idle0=$(date +%s.%N)
  sleep 5
  idle1=$(redis_commands)
  t_idle1=$(date +%s.%N)
  local clients
  clients=$(redis_clients)

  local samples=$work/published-w$workers.txt
  (
    while :; do
      printf '%s %s\n' "$(date +%s.%N)" \
        "$(curl -sf "http://127.0.0.1:$cmetrics/metrics" | awk '$1 == "rollcall_queue_published_total" { print $2 }')"
      sleep 0.2
    done
  ) >"$samples" 2>/dev/null &
  local sampler=$!
  pids+=("$sampler")

  # The shared services' CPU too (read only): the oldest beam.smp (RabbitMQ) and redis-server.
  local rabbit_pid redis_pid
  rabbit_pid=$(pgrep -o -x beam.smp || echo 0)
  redis_pid=$(pgrep -o -x redis-server || echo 0)
  local cpu_before=() p
  for p in "$coordinator_pid" "${worker_pids[@]}" "$sim_pid" "$rabbit_pid" "$redis_pid"; do cpu_before+=("$(cpu_s "$p")"); done
  rcli INFO commandstats | tr -d '\r' >"$work/commandstats-w$workers.txt"
  local before t0 t1 after
  before=$(redis_commands)
  t0=$(date +%s.%N)
  "$bin" submit "$list" --coordinator "http://127.0.0.1:$api" --name "bench-w$workers" \
    --wait -o "$out" --format jsonl --progress log >"$work/submit-w$workers.log" 2>&1 || {
    echo "distributed.sh: submit failed:" >&2
    tail -20 "$work/submit-w$workers.log" >&2
    return 1
  }
  t1=$(date +%s.%N)
  after=$(redis_commands)
  local mix
  mix=$(redis_command_mix "$work/commandstats-w$workers.txt" "$n")
  local cpu_line="" k=0 names=(coordinator)
  for i in $(seq 1 "$workers"); do names+=("worker$i"); done
  names+=(sim rabbitmq redis)
  for p in "$coordinator_pid" "${worker_pids[@]}" "$sim_pid" "$rabbit_pid" "$redis_pid"; do
    cpu_line="$cpu_line${cpu_line:+, }${names[$k]} $(awk -v a="$(cpu_s "$p")" -v b="${cpu_before[$k]}" 'BEGIN { printf "%.1f", a - b }') s"
    k=$((k + 1))
  done
  kill "$sampler" 2>/dev/null || true
  wait "$sampler" 2>/dev/null || true

  curl -sf "http://127.0.0.1:$cmetrics/metrics" >"$work/coordinator-w$workers.metrics"
  local transactions=0 sessions=0 redelivered=0 verifications=0
  for i in "${!wmetrics[@]}"; do
    local m=$work/worker$((i + 1))-w$workers.metrics
    curl -sf "http://127.0.0.1:${wmetrics[$i]}/metrics" >"$m"
    transactions=$((transactions + $(metric "$m" rollcall_smtp_transactions_total)))
    sessions=$((sessions + $(metric "$m" rollcall_smtp_sessions_opened_total)))
    redelivered=$((redelivered + $(metric "$m" rollcall_queue_redelivered_total)))
    echo "worker $((i + 1)): $(metric "$m" rollcall_smtp_transactions_total) transactions, $(metric "$m" rollcall_smtp_sessions_opened_total) sessions opened"
  done
  local batches
  batches=$(metric "$work/coordinator-w$workers.metrics" rollcall_queue_published_total)
  verifications=$(metric "$work/coordinator-w$workers.metrics" rollcall_verifications_total)
  stop_pids
  stop_sim
  local rows
  rows=$(grep -c . "$out" || true)

  awk -v n="$n" -v rows="$rows" -v t0="$t0" -v t1="$t1" -v b="$before" -v a="$after" \
    -v i0="$idle0" -v i1="$idle1" -v ti0="$t_idle0" -v ti1="$t_idle1" -v clients="$clients" \
    -v batches="$batches" -v tx="$transactions" -v sess="$sessions" -v red="$redelivered" \
    -v ver="$verifications" -v fleet="$fleet_counts" -v w="$workers" -v loadnote="$load" -v samples="$samples" -v dir="$work" '
    BEGIN {
      # Publish window: from the first sample above 0 to the first at the final count.
      while ((getline line < samples) > 0) {
        split(line, f, " ")
        if (f[2] == "") continue
        if (f[2] + 0 > 0 && first == "") first = f[1]
        if (f[2] + 0 >= batches && done == "") done = f[1]
      }
      wall = t1 - t0
      window = (first != "" && done != "" && done > first) ? done - first : 0
      idle_rate = (i1 - i0) / (ti1 - ti0)
      raw = a - b
      split(fleet, fc, " ")
      printf "workers %d | rows %d of %d | wall %.1f s | %.0f addresses/s\n", w, rows, n, wall, n / wall
      if (window > 0)
        printf "  published %d batches (%.1f addresses per batch) in %.1f s: %.0f batches/s, %.0f addresses/s\n", batches, n / batches, window, batches / window, n / window
      else
        printf "  published %d batches (%.1f addresses per batch); publish window not resolved by the sampler\n", batches, n / batches
      printf "  Redis: %d commands during the campaign = %.2f per address; idle rate %.0f/s (%d clients connected) -> %.2f per address net\n", raw, raw / n, idle_rate, clients, (raw - idle_rate * wall) / n
      printf "  coordinator: %d verdicts; workers: %d transactions, %d sessions opened, %d redelivered\n", ver, tx, sess, red
      printf "  fleet: %d transactions, %d connections, max %d sessions per host, %d faults (503, pipelining, error budget)\n", fc[1], fc[2], fc[3], fc[4]
      printf "  load before: %s\n", loadnote
      printf "SUMMARY distributed workers=%d addresses=%d wall_s=%.2f rate=%.0f batches=%d publish_s=%.2f redis_per_addr=%.2f redis_net_per_addr=%.2f\n", w, n, wall, n / wall, batches, window, raw / n, (raw - idle_rate * wall) / n
      bps = 0; aps = 0
      if (window > 0) { bps = batches / window; aps = n / window }
      printf("%d %.2f %.0f %.0f %.0f %.2f %.2f\n", w, wall, n / wall, bps, aps, raw / n, (raw - idle_rate * wall) / n) >> (dir "/runs.txt")
    }'
  echo "  Redis calls per address by command (all clients): $mix"
  echo "  CPU during the campaign: $cpu_line"
  [ "$rows" = "$n" ] || echo "distributed.sh: $rows result rows for $n addresses" >&2
}

for w in $WORKERS; do run_distributed "$w"; done

echo
echo "== embedded: rollcall bench (fleet and engine in one process) =="
quiet_moment "rollcall bench"
domains=$(awk -F' = ' '$1 == "domains" { print $2 }' "$fleet")
"$bin" bench --addresses "$ADDRESSES" --domains "$domains" --json --progress off \
  >"$work/bench.json" 2>"$work/bench.log"
awk -F'[:,]' '/"elapsed_s"|"rate_per_s"|"transactions"|"connections"|"accuracy"|"cpu_s"/ { gsub(/[ "]/, "", $1); printf "  %s %s\n", $1, $2 }' "$work/bench.json"
bench_rate=$(awk -F'[:,]' '/"rate_per_s"/ { print $2 + 0 }' "$work/bench.json")
echo "SUMMARY embedded-bench addresses=$ADDRESSES rate=$bench_rate load=\"$load_note\""

echo
echo "== embedded: rollcall verify against a rollcall sim process =="
start_sim sim-verify "$work/list-verify.txt"
quiet_moment "rollcall verify"
t0=$(date +%s.%N)
# shellcheck disable=SC2046
/usr/bin/time -f '%U %S' -o "$work/verify.time" \
  "$bin" verify "$work/list-verify.txt" -o "$work/verify.csv" --progress off --no-cache $(engine_flags) \
  >"$work/verify.log" 2>&1
t1=$(date +%s.%N)
echo "  CPU of rollcall verify: $(awk '{ printf "%.1f s", $1 + $2 }' "$work/verify.time")"
stop_sim
awk -v n="$ADDRESSES" -v t0="$t0" -v t1="$t1" -v fleet="$fleet_counts" -v loadnote="$load_note" 'BEGIN {
  split(fleet, fc, " ")
  printf "  wall %.1f s | %.0f addresses/s | fleet: %d transactions, %d connections, max %d per host\n", t1 - t0, n / (t1 - t0), fc[1], fc[2], fc[3]
  printf "SUMMARY embedded-verify addresses=%d wall_s=%.2f rate=%.0f load=\"%s\"\n", n, t1 - t0, n / (t1 - t0), loadnote
}'

echo
echo "== summary ($ADDRESSES addresses; embedded: rollcall bench $bench_rate/s) =="
printf '%-8s %8s %12s %16s %18s %18s\n' workers wall_s addresses/s "publish batch/s" "publish addr/s" "Redis cmd/address"
awk -v bench="$bench_rate" '{
  printf "%-8d %8.1f %12.0f %16.0f %18.0f %11.2f (net %.2f)   ratio to embedded %.2f\n", $1, $2, $3, $4, $5, $6, $7, $3 / bench
}' "$work/runs.txt"
