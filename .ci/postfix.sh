#!/usr/bin/env bash
# A real Postfix (and Dovecot for SASL AUTH) on loopback for the `postfix` test tier (tests/postfix_support.py).
#
# Idempotent; runs as root. Installs Debian's postfix and dovecot-core if missing (apt-get update once), writes
# a test-only configuration and (re)starts both. Nothing can leave the machine: Postfix listens on 127.0.0.1
# only, EVERY domain is a virtual mailbox domain delivered into a Maildir under $SPOOL (a catch-all per domain
# and local part), and the relay and default transports are `error:` as a second lock.
#
# Services (all 127.0.0.1):
#   2525  plain SMTP, STARTTLS offered, AUTH offered after STARTTLS; clients in 127.0.0.0/8 may send.
#   2587  STARTTLS required, AUTH required (Dovecot SASL), nobody relays without it.
#   4465  implicit TLS, AUTH required.
#   2526  like 2525, with a per-client message rate limit (anvil): the 6th MAIL FROM in a minute gets 450.
# Senders `busy@callslip.test` get `421` at MAIL FROM (Postfix then closes the connection) on every service,
# `tempfail@callslip.test` get `450` at MAIL FROM.
#
# What the tests need is written to $CONF_DIR/env (ports, CA file, user, password, Maildir base, log file).
set -euo pipefail

CONF_DIR=/etc/callslip-postfix-test
SPOOL=/var/spool/callslip-maildir
LOG=/var/log/postfix-test.log
DOVECOT_LOG=/var/log/dovecot-test.log
SASL_USER=callslip
SASL_PASSWORD='postfix-test-pw-1'
# A second user whose password is not ASCII (RFC 4616 PLAIN carries UTF-8), for the UTF-8 password tests.
UTF8_USER=callslip-utf8
UTF8_PASSWORD='Pässwörd-Ω-test'
MAIL_USER=callslipmail

if [ "$(id -u)" -ne 0 ]; then
  echo "postfix.sh: run as root" >&2
  exit 1
fi

if ! command -v postconf >/dev/null || ! command -v dovecot >/dev/null || ! command -v openssl >/dev/null; then
  echo "+ apt-get install postfix dovecot-core"
  export DEBIAN_FRONTEND=noninteractive
  echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections
  echo "postfix postfix/mailname string mail.callslip.test" | debconf-set-selections
  apt-get update -q >/dev/null
  apt-get install -y -q --no-install-recommends postfix dovecot-core openssl >/dev/null
fi

id "$MAIL_USER" >/dev/null 2>&1 || useradd --system --no-create-home --shell /usr/sbin/nologin "$MAIL_USER"
MAIL_UID=$(id -u "$MAIL_USER")
MAIL_GID=$(id -g "$MAIL_USER")
mkdir -p "$CONF_DIR" "$SPOOL"
chown "$MAIL_USER:$MAIL_GID" "$SPOOL"
chmod 0755 "$SPOOL"

# --- a test CA and a server certificate for localhost / 127.0.0.1 (made once; valid ten years)
if [ ! -s "$CONF_DIR/server.pem" ]; then
  openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -subj "/CN=Callslip test CA" \
    -keyout "$CONF_DIR/ca.key" -out "$CONF_DIR/ca.pem" \
    -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null
  openssl req -newkey rsa:2048 -nodes -subj "/CN=localhost" \
    -keyout "$CONF_DIR/server.key" -out "$CONF_DIR/server.csr" 2>/dev/null
  printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n' >"$CONF_DIR/server.ext"
  openssl x509 -req -in "$CONF_DIR/server.csr" -CA "$CONF_DIR/ca.pem" -CAkey "$CONF_DIR/ca.key" \
    -CAcreateserial -days 3650 -extfile "$CONF_DIR/server.ext" -out "$CONF_DIR/server.pem" 2>/dev/null
  chmod 0600 "$CONF_DIR/ca.key" "$CONF_DIR/server.key"
fi
chmod 0644 "$CONF_DIR/ca.pem" "$CONF_DIR/server.pem"

# --- Postfix
# Catch-all delivery: every recipient gets its own Maildir <domain>/<local part>/ under $SPOOL (both in lower
# case). Postfix's virtual(8) agent refuses "$1" substitutions in mailbox paths, so a pipe(8) transport runs this
# script once per recipient instead.
cat >"$CONF_DIR/deliver" <<EOF
#!/bin/sh
# Called by Postfix's pipe(8) as: deliver <domain> <local part>; the message on standard input.
set -eu
case "\$1/\$2" in
  */*/*|.*|*/.*|/*|*/) echo "refusing an unsafe mailbox name" >&2; exit 67 ;;
esac
dir="$SPOOL/\$1/\$2"
mkdir -p "\$dir/tmp" "\$dir/new" "\$dir/cur"
name="\$(date +%s).\$\$_\$(od -An -N4 -tx4 /dev/urandom | tr -d ' ').callslip-test"
cat >"\$dir/tmp/\$name"
mv "\$dir/tmp/\$name" "\$dir/new/\$name"
EOF
chmod 0755 "$CONF_DIR/deliver"
cat >"$CONF_DIR/mailboxes.regexp" <<'EOF'
# Every address has a mailbox (the pipe transport makes it on first delivery).
/./ OK
EOF
cat >"$CONF_DIR/domains.regexp" <<'EOF'
# Every domain is delivered here: nothing is ever relayed.
/./ OK
EOF
cat >"$CONF_DIR/sender_access" <<'EOF'
busy@callslip.test 421 4.3.2 Service busy, closing connection (test sender)
tempfail@callslip.test 450 4.3.2 Try again later (test sender)
EOF

# "No configuration" leaves no main.cf: start from an empty one (postconf writes every setting below).
[ -e /etc/postfix/main.cf ] || touch /etc/postfix/main.cf
postconf -e \
  "compatibility_level = 3.6" \
  "myhostname = mail.callslip.test" \
  "mydomain = callslip.test" \
  "myorigin = \$myhostname" \
  "mydestination =" \
  "inet_interfaces = 127.0.0.1" \
  "inet_protocols = ipv4" \
  "mynetworks = 127.0.0.0/8" \
  "relayhost =" \
  "relay_domains =" \
  "default_transport = error:outbound mail disabled in tests" \
  "relay_transport = error:outbound mail disabled in tests" \
  "local_transport = error:local delivery disabled in tests" \
  "alias_maps =" \
  "alias_database =" \
  "virtual_mailbox_domains = regexp:$CONF_DIR/domains.regexp" \
  "virtual_mailbox_maps = regexp:$CONF_DIR/mailboxes.regexp" \
  "virtual_transport = callslipmaildir" \
  "callslipmaildir_destination_recipient_limit = 1" \
  "message_size_limit = 20480000" \
  "smtputf8_enable = yes" \
  "smtpd_delay_reject = no" \
  "smtpd_sender_restrictions = check_sender_access texthash:$CONF_DIR/sender_access" \
  "smtpd_relay_restrictions = permit_mynetworks, permit_sasl_authenticated, reject_unauth_destination" \
  "smtpd_recipient_restrictions =" \
  "smtpd_tls_cert_file = $CONF_DIR/server.pem" \
  "smtpd_tls_key_file = $CONF_DIR/server.key" \
  "smtpd_tls_security_level = may" \
  "smtpd_tls_auth_only = yes" \
  "smtpd_tls_loglevel = 1" \
  "smtpd_sasl_type = dovecot" \
  "smtpd_sasl_path = private/auth" \
  "smtpd_sasl_auth_enable = yes" \
  "smtpd_client_event_limit_exceptions =" \
  "smtp_tls_security_level = none" \
  "maillog_file = $LOG" \
  "biff = no" \
  "notify_classes ="

MASTER=/etc/postfix/master.cf
[ -s "$MASTER" ] || cp /usr/share/postfix/master.cf.dist "$MASTER"
# Only our loopback services accept SMTP: drop the standard port-25 listener and any earlier copy of ours.
sed -i -e '/^smtp[[:space:]]\+inet/s/^/#callslip-disabled /' -e '/^# callslip-test begin$/,/^# callslip-test end$/d' "$MASTER"
grep -q '^postlog[[:space:]]' "$MASTER" || echo "postlog   unix-dgram n  -       n       -       1       postlogd" >>"$MASTER"
cat >>"$MASTER" <<'EOF'
# callslip-test begin
127.0.0.1:2525 inet n - n - - smtpd
127.0.0.1:2526 inet n - n - - smtpd -o syslog_name=postfix/ratelimited -o smtpd_client_message_rate_limit=5
127.0.0.1:2587 inet n - n - - smtpd -o syslog_name=postfix/submission -o smtpd_tls_security_level=encrypt
  -o smtpd_relay_restrictions=permit_sasl_authenticated,reject -o mynetworks=
127.0.0.1:4465 inet n - n - - smtpd -o syslog_name=postfix/smtps -o smtpd_tls_wrappermode=yes
  -o smtpd_relay_restrictions=permit_sasl_authenticated,reject -o mynetworks=
callslipmaildir unix - n n - - pipe
  flags=DRhu user=__MAIL_USER__ argv=__CONF_DIR__/deliver ${domain} ${user}
# callslip-test end
EOF
sed -i -e "s|__MAIL_USER__|$MAIL_USER|" -e "s|__CONF_DIR__|$CONF_DIR|" "$MASTER"

# --- Dovecot: SASL only (no IMAP/POP), one test user
printf '%s:{PLAIN}%s\n%s:{PLAIN}%s\n' "$SASL_USER" "$SASL_PASSWORD" "$UTF8_USER" "$UTF8_PASSWORD" >"$CONF_DIR/dovecot-users"
chown root:dovecot "$CONF_DIR/dovecot-users" 2>/dev/null || true
chmod 0640 "$CONF_DIR/dovecot-users"
cat >/etc/dovecot/dovecot.conf <<EOF
# Callslip test configuration (.ci/postfix.sh): SASL authentication for Postfix only.
protocols =
listen = 127.0.0.1
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain login
log_path = $DOVECOT_LOG
passdb {
  driver = passwd-file
  args = scheme=PLAIN username_format=%u $CONF_DIR/dovecot-users
}
userdb {
  driver = static
  args = uid=$MAIL_UID gid=$MAIL_GID home=$SPOOL
}
service auth {
  unix_listener /var/spool/postfix/private/auth {
    mode = 0660
    user = postfix
    group = postfix
  }
}
EOF

touch "$LOG"
chmod 0644 "$LOG"
postfix check
if doveadm reload >/dev/null 2>&1; then :; else dovecot; fi
# A restart rather than a reload: a master that throttled a broken smtpd would otherwise keep waiting.
postfix status >/dev/null 2>&1 && postfix stop >/dev/null 2>&1
postfix start >/dev/null 2>&1

cat >"$CONF_DIR/env" <<EOF
CALLSLIP_POSTFIX_HOST=127.0.0.1
CALLSLIP_POSTFIX_PORT=2525
CALLSLIP_POSTFIX_RATE_LIMITED_PORT=2526
CALLSLIP_POSTFIX_SUBMISSION_PORT=2587
CALLSLIP_POSTFIX_SMTPS_PORT=4465
CALLSLIP_POSTFIX_CA_FILE=$CONF_DIR/ca.pem
CALLSLIP_POSTFIX_USER=$SASL_USER
CALLSLIP_POSTFIX_PASSWORD=$SASL_PASSWORD
CALLSLIP_POSTFIX_UTF8_USER=$UTF8_USER
CALLSLIP_POSTFIX_UTF8_PASSWORD=$UTF8_PASSWORD
CALLSLIP_POSTFIX_MAILDIR=$SPOOL
CALLSLIP_POSTFIX_LOG=$LOG
EOF
chmod 0644 "$CONF_DIR/env"

for _ in $(seq 1 50); do
  if (exec 3<>/dev/tcp/127.0.0.1/2525) 2>/dev/null; then
    echo "postfix.sh: Postfix $(postconf -h mail_version) on 127.0.0.1:2525/2526/2587/4465, Dovecot SASL; $CONF_DIR/env"
    exit 0
  fi
  sleep 0.2
done
echo "postfix.sh: Postfix did not start listening on 127.0.0.1:2525 (see $LOG)" >&2
exit 1
