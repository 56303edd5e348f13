#!/usr/bin/env bash
# Prometheus for rollcall's operations test (tests/ops_prometheus.rs), and a static check of the
# shipped Prometheus files.
#
#   bash tests/ops/prometheus.sh
#
# 1. Installs Debian's `prometheus` package when /usr/bin/prometheus or /usr/bin/promtool is
#    missing. The test runs its own Prometheus (own config, own data directory, a free loopback
#    port), so the package's service must not run: it is kept from starting during the install,
#    stopped if it runs anyway and disabled.
# 2. `promtool check config deploy/prometheus/prometheus.yml` and
#    `promtool check rules deploy/prometheus/alerts.yml`.
set -euo pipefail
cd "$(dirname "$0")/../.."

readonly CONFIG="deploy/prometheus/prometheus.yml"
readonly RULES="deploy/prometheus/alerts.yml"
readonly POLICY="/usr/sbin/policy-rc.d"
readonly POLICY_MARKER="# Written by rollcall tests/ops/prometheus.sh for the duration of an install."

say() { echo "prometheus.sh: $*" >&2; }
die() {
  say "error: $*"
  exit 1
}

# Remove the temporary policy-rc.d, only if this script wrote it.
drop_policy() {
  if [ -f "$POLICY" ] && grep -qxF "$POLICY_MARKER" "$POLICY"; then
    rm -f "$POLICY"
  fi
}

# Keep the package's own service from starting during the install (invoke-rc.d asks policy-rc.d
# first; 101 = action forbidden). A policy-rc.d that already exists is left alone.
forbid_service_start() {
  if [ -e "$POLICY" ]; then
    return
  fi
  trap drop_policy EXIT
  cat >"$POLICY" <<POLICY_EOF
#!/bin/sh
$POLICY_MARKER
case "\$1" in
  prometheus|prometheus-node-exporter) exit 101 ;;
esac
exit 0
POLICY_EOF
  chmod 755 "$POLICY"
}

# Stop and disable the Debian service if it runs anyway, so it holds no port (:9090).
stop_debian_service() {
  if [ -x /etc/init.d/prometheus ]; then
    /etc/init.d/prometheus stop >/dev/null 2>&1 || true
  fi
  if command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; then
    systemctl disable --now prometheus >/dev/null 2>&1 || true
  elif command -v update-rc.d >/dev/null 2>&1; then
    update-rc.d prometheus disable >/dev/null 2>&1 || true
  fi
}

install_if_missing() {
  if [ -x /usr/bin/prometheus ] && [ -x /usr/bin/promtool ]; then
    return
  fi
  [ "$(id -u)" -eq 0 ] || die "run as root to install Debian's prometheus package"
  say "installing prometheus from Debian's packages"
  forbid_service_start
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q
  # Without recommends: no node exporter (it would serve :9100).
  apt-get install -y -q --no-install-recommends prometheus
  drop_policy
  stop_debian_service
}

check_files() {
  [ -f "$CONFIG" ] || die "$CONFIG is missing"
  [ -f "$RULES" ] || die "$RULES is missing"
  # check config also checks the rule files the config names (relative to the config file).
  promtool check config "$CONFIG"
  promtool check rules "$RULES"
}

install_if_missing
[ -x /usr/bin/prometheus ] || die "/usr/bin/prometheus is missing after the install"
[ -x /usr/bin/promtool ] || die "/usr/bin/promtool is missing after the install"
say "$(/usr/bin/prometheus --version 2>&1 | head -n 1)"
check_files
