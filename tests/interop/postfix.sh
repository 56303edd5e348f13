#!/usr/bin/env bash
# A real Postfix on loopback for rollcall's interoperability tests (tests/interop_postfix.rs).
#
#   bash tests/interop/postfix.sh up      install if missing, (re)configure, start or reload,
#                                         wait until both listeners greet
#   bash tests/interop/postfix.sh down    stop Postfix
#   bash tests/interop/postfix.sh status  is Postfix running, do the listeners greet
#   bash tests/interop/postfix.sh log     print the path of Postfix's log file
#
# What `up` sets up (the test relies on exactly this):
#   127.0.0.25:2525  smtpd advertising PIPELINING and STARTTLS        (syslog_name postfix/interop-pipelining)
#   127.0.0.26:2525  smtpd with PIPELINING discarded, STARTTLS offered (syslog_name postfix/interop-nopipelining)
#   127.0.0.27:2525  smtpd like the first, with anvil limits on every client, loopback included:
#                    at most 30 RCPTs per client IP per 10 s (`450 4.7.1 Error: too many
#                    recipients from ...`, logged as "Recipient address rate limit exceeded")
#                    10 connections per client IP per 10 s, and 10 MAIL commands per client IP
#                    per 10 s (`450 4.7.1 Error: too much mail from ...`) (syslog_name
#                    postfix/interop-anvil)
#   anvil_rate_time_unit = 10s for the whole instance (only the anvil listener sets rate limits)
#   virtual mailbox domain example.test with alice, bob, carol; any other recipient there is
#   rejected at RCPT with `550 5.1.1 ... User unknown in virtual mailbox table`; other domains
#   get `454 4.7.1 Relay access denied` (no relaying, even from loopback).
#   Both listeners drop a client that pipelines past EHLO/STARTTLS (logged as "improper
#   command pipelining") and log every command and reply (debug_peer_list for loopback) to the log file.
#
# The script owns /etc/postfix/main.cf and master.cf on the machine it runs on: it is meant for
# CI and development machines. A main.cf or master.cf it did not write is kept once as
# *.pre-interop. Port 25 is left alone: no service listens there.
set -euo pipefail

readonly LISTENER_PIPELINING="127.0.0.25"
readonly LISTENER_NO_PIPELINING="127.0.0.26"
readonly LISTENER_ANVIL="127.0.0.27"
readonly PORT="2525"
readonly LOG_FILE="/var/log/postfix-interop.log"
readonly CONF_DIR="/etc/postfix"
readonly INTEROP_DIR="/etc/postfix/interop"
readonly MAILBOX_BASE="/var/mail/interop-vhosts"
readonly HOSTNAME_FQDN="mx.example.test"
readonly MARKER="# Written by rollcall tests/interop/postfix.sh; rewritten on every 'up'."
# Bounds every wait in this script (seconds).
readonly WAIT_SECS=30

say() { echo "postfix.sh: $*" >&2; }
die() {
  say "error: $*"
  exit 1
}

need_root() {
  [ "$(id -u)" -eq 0 ] || die "run as root (installs packages and writes /etc/postfix)"
}

install_if_missing() {
  if command -v postfix >/dev/null 2>&1 || [ -x /usr/sbin/postfix ]; then
    return
  fi
  say "installing postfix from Debian's packages"
  # "No configuration": the package must not write its own main.cf; this script writes it.
  debconf-set-selections <<EOF
postfix postfix/main_mailer_type select No configuration
postfix postfix/mailname string ${HOSTNAME_FQDN}
EOF
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q
  apt-get install -y -q postfix openssl
}

# Keep a config file this script did not write, once, before overwriting it.
keep_foreign() {
  local file="$1"
  if [ -f "$file" ] && ! grep -qxF "$MARKER" "$file" && [ ! -e "$file.pre-interop" ]; then
    cp -p "$file" "$file.pre-interop"
    say "kept the previous $file as $file.pre-interop"
  fi
}

write_tls_cert() {
  mkdir -p "$INTEROP_DIR"
  if [ -s "$INTEROP_DIR/key.pem" ] && [ -s "$INTEROP_DIR/cert.pem" ]; then
    return
  fi
  say "making a self-signed certificate for ${HOSTNAME_FQDN}"
  openssl req -x509 -newkey rsa:2048 -nodes -days 3650 \
    -subj "/CN=${HOSTNAME_FQDN}" \
    -addext "subjectAltName=DNS:${HOSTNAME_FQDN}" \
    -keyout "$INTEROP_DIR/key.pem" -out "$INTEROP_DIR/cert.pem" 2>/dev/null
  chmod 600 "$INTEROP_DIR/key.pem"
  chmod 644 "$INTEROP_DIR/cert.pem"
}

write_maps() {
  mkdir -p "$INTEROP_DIR" "$MAILBOX_BASE/example.test"
  # texthash: read as plain text, no postmap step. Right-hand side: the mailbox path under
  # virtual_mailbox_base (a trailing slash means Maildir). Nothing is ever delivered here:
  # the tests never send DATA.
  cat >"$INTEROP_DIR/vmailbox" <<'EOF'
alice@example.test example.test/alice/
bob@example.test   example.test/bob/
carol@example.test example.test/carol/
EOF
  chown -R nobody:nogroup "$MAILBOX_BASE"
  [ -s /etc/mailname ] || echo "$HOSTNAME_FQDN" >/etc/mailname
  [ -e /etc/aliases ] || : >/etc/aliases
}

write_main_cf() {
  keep_foreign "$CONF_DIR/main.cf"
  local nobody_uid nogroup_gid
  nobody_uid="$(id -u nobody)"
  nogroup_gid="$(getent group nogroup | cut -d: -f3)"
  cat >"$CONF_DIR/main.cf" <<EOF
$MARKER
compatibility_level = 3.6
smtpd_banner = \$myhostname ESMTP \$mail_name (Debian/GNU)
biff = no
append_dot_mydomain = no
readme_directory = no

myhostname = ${HOSTNAME_FQDN}
myorigin = ${HOSTNAME_FQDN}
mydestination =
alias_maps =
alias_database =
local_recipient_maps =
relayhost =
inet_protocols = ipv4
# The listeners name their own addresses in master.cf, so nothing binds 127.0.0.1 or :25.
# (Naming 127.0.0.25 here would be fatal: Postfix wants an address configured on an
# interface, and lo only carries 127.0.0.1 even though it answers for all of 127/8.)
inet_interfaces = loopback-only
mynetworks = 127.0.0.1/32

# No syslog daemon here: Postfix 3.4+ logs through postlogd straight to a file.
maillog_file = ${LOG_FILE}

# The mailbox domain the tests probe.
virtual_mailbox_domains = example.test
virtual_mailbox_maps = texthash:${INTEROP_DIR}/vmailbox
virtual_mailbox_base = ${MAILBOX_BASE}
virtual_uid_maps = static:${nobody_uid}
virtual_gid_maps = static:${nogroup_gid}
virtual_minimum_uid = 1
recipient_delimiter = +

# Behaviour the tests check (defaults where the defaults are what a verifier meets).
smtpd_helo_required = yes
# No permit_mynetworks: loopback clients cannot relay either. defer_unauth_destination
# answers 454 4.7.1 (Postfix's default reply for relay attempts).
smtpd_relay_restrictions = defer_unauth_destination
smtpd_reject_unlisted_recipient = yes

# The window of anvil's rate counters (default 60s): short, so that the anvil listener's
# limits judge a test of a few seconds. No other listener sets a rate limit.
anvil_rate_time_unit = 10s

smtpd_tls_cert_file = ${INTEROP_DIR}/cert.pem
smtpd_tls_key_file = ${INTEROP_DIR}/key.pem
smtpd_tls_security_level = may
smtpd_tls_loglevel = 1
smtp_tls_security_level = none
EOF
}

write_master_cf() {
  keep_foreign "$CONF_DIR/master.cf"
  # No service is chrooted: there is no init script here to populate the chroot.
  # smtpd_forbid_unauth_pipelining (Postfix 3.7.10+, default no before 3.9): a client that
  # sends more after a command that must end a pipeline group (EHLO, STARTTLS; RFC 2920
  # section 3.1) gets "554 5.5.0 Error: SMTP protocol synchronization", is dropped, and the
  # log says "improper command pipelining". It does not police MAIL+RCPT sent together
  # without PIPELINING: the test checks that on the client side.
  # The debug_peer_list on the two listeners makes smtpd log every command and reply
  # ("< client: RCPT TO:..." / "> client: 250 2.1.5 Ok"), which the test reads.
  cat >"$CONF_DIR/master.cf" <<EOF
$MARKER
# service type  private unpriv  chroot  wakeup  maxproc command + args
${LISTENER_PIPELINING}:${PORT} inet n - n - - smtpd
  -o syslog_name=postfix/interop-pipelining
  -o smtpd_forbid_unauth_pipelining=yes
  -o debug_peer_list=127.0.0.0/8
  -o debug_peer_level=1
${LISTENER_NO_PIPELINING}:${PORT} inet n - n - - smtpd
  -o syslog_name=postfix/interop-nopipelining
  -o smtpd_discard_ehlo_keywords=pipelining
  -o smtpd_forbid_unauth_pipelining=yes
  -o debug_peer_list=127.0.0.0/8
  -o debug_peer_level=1
${LISTENER_ANVIL}:${PORT} inet n - n - - smtpd
  -o syslog_name=postfix/interop-anvil
  -o smtpd_forbid_unauth_pipelining=yes
  -o smtpd_client_event_limit_exceptions=
  -o smtpd_client_recipient_rate_limit=30
  -o smtpd_client_connection_rate_limit=10
  -o smtpd_client_message_rate_limit=10
  -o debug_peer_list=127.0.0.0/8
  -o debug_peer_level=1
pickup    unix  n       -       n       60      1       pickup
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
tlsmgr    unix  -       -       n       1000?   1       tlsmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
verify    unix  -       -       n       -       1       verify
flush     unix  n       -       n       1000?   0       flush
proxymap  unix  -       -       n       -       -       proxymap
proxywrite unix -       -       n       -       1       proxymap
smtp      unix  -       -       n       -       -       smtp
relay     unix  -       -       n       -       -       smtp
showq     unix  n       -       n       -       -       showq
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
local     unix  -       n       n       -       -       local
virtual   unix  -       n       n       -       -       virtual
lmtp      unix  -       -       n       -       -       lmtp
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
postlog   unix-dgram n  -       n       -       1       postlogd
EOF
}

is_running() {
  postfix status >/dev/null 2>&1
}

# Reads the first line a listener sends; succeeds if it is a 220 greeting.
# Sends QUIT so smtpd does not log a lost connection.
greets() {
  local host="$1" line=""
  (
    exec 3<>"/dev/tcp/${host}/${PORT}" || exit 1
    IFS= read -r -t 5 line <&3 || exit 1
    printf 'QUIT\r\n' >&3
    # Drain the 221 so the close is orderly.
    IFS= read -r -t 5 _ <&3 || true
    exec 3>&-
    case "$line" in 220*) exit 0 ;; *) exit 1 ;; esac
  ) 2>/dev/null
}

wait_for_listeners() {
  local deadline=$((SECONDS + WAIT_SECS)) host
  for host in "$LISTENER_PIPELINING" "$LISTENER_NO_PIPELINING" "$LISTENER_ANVIL"; do
    until greets "$host"; do
      if [ "$SECONDS" -ge "$deadline" ]; then
        say "the listener ${host}:${PORT} did not greet within ${WAIT_SECS}s; last log lines:"
        tail -n 20 "$LOG_FILE" >&2 2>/dev/null || true
        return 1
      fi
      sleep 0.2
    done
    say "listening: ${host}:${PORT}"
  done
}

cmd_up() {
  need_root
  install_if_missing
  write_tls_cert
  write_maps
  write_main_cf
  write_master_cf
  touch "$LOG_FILE"
  # Fixes ownership and permissions of Postfix's queue and files; reports config errors.
  postfix set-permissions >/dev/null 2>&1 || true
  if ! postfix check 2>/dev/null; then
    # Without a tty the postfix command logs its fatal error to syslog only (absent here):
    # rerun under a pseudo-terminal so the reason reaches stderr.
    script -qec "postfix check" /dev/null >&2 || true
    die "postfix check failed (see above)"
  fi
  if is_running; then
    say "reloading postfix"
    postfix reload
  else
    say "starting postfix"
    postfix start
  fi
  wait_for_listeners || die "Postfix is not answering; log: ${LOG_FILE}"
  say "up; log: ${LOG_FILE}"
}

cmd_down() {
  need_root
  if command -v postfix >/dev/null 2>&1 && is_running; then
    postfix stop
    say "stopped"
  else
    say "postfix is not running"
  fi
}

cmd_status() {
  local rc=0 host
  if command -v postfix >/dev/null 2>&1 && is_running; then
    say "postfix is running"
  else
    say "postfix is not running"
    rc=1
  fi
  for host in "$LISTENER_PIPELINING" "$LISTENER_NO_PIPELINING" "$LISTENER_ANVIL"; do
    if greets "$host"; then
      say "${host}:${PORT} greets"
    else
      say "${host}:${PORT} does not answer"
      rc=1
    fi
  done
  return "$rc"
}

case "${1:-}" in
  up) cmd_up ;;
  down) cmd_down ;;
  status) cmd_status ;;
  log) echo "$LOG_FILE" ;;
  *)
    echo "usage: $0 up|down|status|log" >&2
    exit 2
    ;;
esac
