#!/usr/bin/env bash
# The HTTP API with curl, as tests/http_api.rs runs it against `rollcall serve`:
#   bash tests/http/curl.sh BASE_URL TOKEN LIMITED_BASE_URL
# BASE_URL serves the simulated fleet; LIMITED_BASE_URL is a server started with
# --requests-per-minute 3. Exits non-zero at the first answer that is not the expected one.
set -euo pipefail
base=$1 token=$2 limited=$3
fail() { printf 'curl.sh: FAILED: %s\n' "$*" >&2; exit 1; }
status() { curl -s -o /dev/null -w '%{http_code}' "$@"; }

[ "$(status "$base/healthz")" = 200 ] || fail "healthz"
[ "$(status "$base/v1/campaigns/cnosuch")" = 401 ] || fail "GET without the token is 401"
[ "$(status -H "Authorization: Bearer $token" "$base/v1/campaigns/cnosuch")" = 404 ] || fail "unknown campaign is 404"

# Reacher's documented request, as its README shows it.
out=$(curl -s -X POST "$base/v0/check_email" \
  -H 'Content-Type: application/json' \
  -H "x-reacher-secret: $token" \
  -d '{"to_email": "alice.smith@normal.test"}')
case $out in *'"is_reachable":"safe"'*) ;; *) fail "check_email: $out" ;; esac

# A list as a text body, then its results as CSV.
created=$(curl -s -X POST "$base/v1/campaigns?name=curl" -H "Authorization: Bearer $token" \
  -H 'Content-Type: text/plain' --data-binary $'alice.smith@normal.test\nnobody.here@normal.test\n')
id=$(printf '%s' "$created" | sed -n 's/.*"campaign_id":"\([a-z0-9]*\)".*/\1/p')
[ -n "$id" ] || fail "no campaign id in: $created"
for _ in $(seq 1 300); do
  state=$(curl -s -H "Authorization: Bearer $token" "$base/v1/campaigns/$id" | sed -n 's/.*"state":"\([a-z]*\)".*/\1/p')
  [ "$state" = done ] && break
  sleep 0.2
done
[ "$state" = done ] || fail "campaign $id did not finish ($state)"
csv=$(curl -s -H "Authorization: Bearer $token" "$base/v1/campaigns/$id/results?format=csv")
[ "$(printf '%s\n' "$csv" | wc -l)" -eq 3 ] || fail "CSV: $csv"
printf '%s\n' "$csv" | sed -n 2p | grep -q '^alice.smith@normal.test,deliverable,accepted,' || fail "CSV row 0: $csv"
printf '%s\n' "$csv" | sed -n 3p | grep -q '^nobody.here@normal.test,undeliverable,mailbox_not_found,' || fail "CSV row 1: $csv"

# Over the rate: 429 with Retry-After (the limited server takes 3 calls a minute).
for _ in 1 2 3; do
  status -H "Authorization: Bearer $token" "$limited/v1/campaigns/cnosuch" >/dev/null
done
headers=$(curl -s -D - -o /dev/null -H "Authorization: Bearer $token" "$limited/v1/campaigns/cnosuch")
printf '%s' "$headers" | head -1 | grep -q ' 429' || fail "4th call: $headers"
printf '%s' "$headers" | grep -qi '^retry-after: [0-9]' || fail "no Retry-After: $headers"
echo "curl.sh: health, 401, 404, Reacher's request, a text list and its CSV, 429 with Retry-After: ok"
