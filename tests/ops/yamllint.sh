#!/usr/bin/env bash
# yamllint on the plain YAML files of the deployment: the Helm chart's Chart.yaml and
# values.yaml, deploy/*.yml (docker compose) and Grafana's provisioning files.
#
#   bash tests/ops/yamllint.sh
#
# Installs yamllint (Debian's package) when it is missing, then lints with yamllint's default
# rules and lines up to 100 characters (the project's line length); warnings fail too. The
# chart's templates are not YAML until Helm renders them (tests/helm_chart.rs checks them);
# deploy/prometheus/ is checked by promtool (tests/ops_prometheus.rs).
set -euo pipefail
cd "$(dirname "$0")/../.."

readonly CONFIG='{extends: default, rules: {line-length: {max: 100}}}'

say() { echo "yamllint.sh: $*" >&2; }
die() {
  say "error: $*"
  exit 1
}

if ! command -v yamllint >/dev/null 2>&1; then
  [ "$(id -u)" -eq 0 ] || die "yamllint is missing: run as root, or apt-get install -y yamllint"
  say "installing yamllint (apt-get)"
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y -q --no-install-recommends yamllint >/dev/null 2>&1 \
    || { apt-get update -q >/dev/null && apt-get install -y -q --no-install-recommends yamllint; } \
    || die "apt-get could not install yamllint"
fi
command -v yamllint >/dev/null 2>&1 || die "yamllint is not on PATH after the install"

shopt -s nullglob
files=(
  helm/rollcall/Chart.yaml
  helm/rollcall/values.yaml
  deploy/*.yml
  deploy/grafana/provisioning/*/*.yml
)
for needed in helm/rollcall/Chart.yaml helm/rollcall/values.yaml deploy/docker-compose.yml; do
  [ -f "$needed" ] || die "$needed is missing"
done
say "$(yamllint --version) on ${#files[@]} files"
yamllint --strict -d "$CONFIG" "${files[@]}"
say "ok: ${files[*]}"
