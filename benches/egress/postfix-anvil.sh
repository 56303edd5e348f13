#!/usr/bin/env bash
# Egress scale-out against the real interop Postfix's anvil listener (127.0.0.27:2525: 30 RCPTs,
# 10 connections and 10 MAIL commands per client IP per 10 s; tests/interop/postfix.sh): the
# same list verified from 1 egress address and from 4 (127.0.1.1..4), each at the same
# per-egress politeness (120 RCPT/min, burst 5, 20 RCPTs per transaction). Prints the wall time
# of each run, the speed-up, and the anvil rejections Postfix logged (there must be none).
#
#   bash benches/egress/postfix-anvil.sh [ADDRESSES]     (default 480)
set -euo pipefail
cd "$(dirname "$0")/../.."
n=${1:-480}
bash tests/interop/postfix.sh up >/dev/null
cargo build --release -q
bin=target/release/rollcall
work=$(mktemp -d /tmp/egress-bench.XXXXXX)
trap 'kill "${sim:-}" 2>/dev/null || true; rm -rf "$work"' EXIT

cat >"$work/fleet.toml" <<'FLEET'
[fleet]
address_base = "127.29.0.0"

[[host]]
name = "mx.example.test"
address = "127.0.0.27"
external = true

[[site]]
name = "interop"
mx = [{ host = "mx.example.test", preference = 10 }]

[[domain]]
name = "example.test"
site = "interop"
mailboxes = { "alice" = "valid", "bob" = "valid", "carol" = "valid" }
FLEET
cat >"$work/rollcall.toml" <<'CONF'
[[shaping.site]]
pattern = "mx.example.test"
rcpt_per_minute = 120
rcpt_burst = 5
rcpt_per_transaction = 20
CONF
for i in $(seq 0 $((n - 1))); do
  case $((i % 3)) in 0) u=alice ;; 1) u=bob ;; *) u=carol ;; esac
  echo "$u+b$i@example.test"
done >"$work/list.txt"

"$bin" sim --fleet "$work/fleet.toml" --smtp-port 2525 --dns-listen 127.0.0.1:15353 >/dev/null 2>&1 &
sim=$!
sleep 1

run() {
  local label=$1; shift
  local log_start; log_start=$(stat -c %s /var/log/postfix-interop.log)
  local started; started=$(date +%s.%N)
  "$bin" verify "$work/list.txt" -o "$work/out-$label.csv" --config "$work/rollcall.toml" \
    --progress off --allow-private --dns 127.0.0.1:15353 --smtp-port 2525 \
    --helo bench.rollcall.test --mail-from probe@rollcall.test --batch-size 20 "$@" 2>/dev/null
  local secs; secs=$(echo "$(date +%s.%N) - $started" | bc)
  local rejected; rejected=$(tail -c +"$((log_start + 1))" /var/log/postfix-interop.log |
    grep 'interop-anvil' | grep -cE 'rate limit exceeded|too many|too much mail' || true)
  local ok; ok=$(grep -c ',deliverable,' "$work/out-$label.csv" || true)
  printf '%-10s %6.1f s  %d deliverable of %d  anvil rejections: %d\n' "$label" "$secs" "$ok" "$n" "$rejected"
  echo "$secs" >"$work/secs-$label"
}
sleep 11   # a fresh anvil window
run 1-egress --egress 127.0.1.1
sleep 11
run 4-egress --egress 127.0.1.1,127.0.1.2,127.0.1.3,127.0.1.4
echo "speed-up: $(echo "scale=2; $(cat "$work/secs-1-egress") / $(cat "$work/secs-4-egress")" | bc)x"
