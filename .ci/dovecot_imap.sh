#!/usr/bin/env bash
# A real IMAP server on loopback for the bounce-mailbox tests (tests/imap_support.py): a second Dovecot
# instance, IMAP over implicit TLS only, on 127.0.0.1:10993.
#
# Run AFTER .ci/postfix.sh (it reuses that script's test CA, server certificate and mail user, and reads the
# Maildirs Postfix delivers into, so a bounce Postfix delivers to ill@library.callslip.test is in that user's
# IMAP INBOX). Idempotent; runs as root; installs Debian's dovecot-imapd if missing. Nothing listens beyond
# 127.0.0.1. Users (passwd-file): bounces@callslip.test (the fixture fills its Maildir) and
# ill@library.callslip.test (the end-to-end test's return address), both with $IMAP_PASSWORD.
# What the tests need is written to $CONF_DIR/env.
set -euo pipefail

POSTFIX_CONF=/etc/callslip-postfix-test
CONF_DIR=/etc/callslip-imap-test
SPOOL=/var/spool/callslip-maildir
LOG=/var/log/dovecot-imap-test.log
PORT=10993
IMAP_PASSWORD='imap-test-pw-1'
MAIL_USER=callslipmail

if [ "$(id -u)" -ne 0 ]; then
  echo "dovecot_imap.sh: run as root" >&2
  exit 1
fi
if [ ! -s "$POSTFIX_CONF/server.pem" ] || ! id "$MAIL_USER" >/dev/null 2>&1; then
  echo "dovecot_imap.sh: run .ci/postfix.sh first (it makes the certificate and the mail user)" >&2
  exit 1
fi
if [ ! -x /usr/lib/dovecot/imap ]; then
  echo "+ apt-get install dovecot-imapd"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q >/dev/null
  apt-get install -y -q --no-install-recommends dovecot-imapd >/dev/null
fi

MAIL_UID=$(id -u "$MAIL_USER")
MAIL_GID=$(id -g "$MAIL_USER")
mkdir -p "$CONF_DIR" "$SPOOL"  # before anything is written into it (a fresh machine has neither)

# The end-to-end bounce test: mail to any user of unknown-users.callslip.test is accepted (250, as a remote
# server's front end would) and then fails delivery with 5.1.1, so Postfix itself bounces it to the envelope
# sender (an RFC 3464 report), which is delivered to that sender's Maildir, i.e. its IMAP INBOX here.
printf '%s\n' '/@unknown-users\.callslip\.test$/ error:5.1.1 User unknown in virtual mailbox table' \
  >"$CONF_DIR/transport.regexp"
# smtpd would refuse such a recipient at RCPT (an error: transport is an unknown user); a remote server often
# accepts first and bounces later, which is the case the bounce loop exists for.
postconf -e "transport_maps = regexp:$CONF_DIR/transport.regexp" "smtpd_reject_unlisted_recipient = no"
postfix reload >/dev/null 2>&1 || true

printf '%s:{PLAIN}%s\n%s:{PLAIN}%s\n' bounces@callslip.test "$IMAP_PASSWORD" ill@library.callslip.test \
  "$IMAP_PASSWORD" >"$CONF_DIR/users"
chown root:dovecot "$CONF_DIR/users" 2>/dev/null || true
chmod 0640 "$CONF_DIR/users"
cat >"$CONF_DIR/dovecot.conf" <<CONF
# Callslip test configuration (.ci/dovecot_imap.sh): IMAPS on loopback for the bounce mailbox tests.
base_dir = /run/callslip-imap/
instance_name = callslip-imap
protocols = imap
listen = 127.0.0.1
ssl = required
ssl_cert = <$POSTFIX_CONF/server.pem
ssl_key = <$POSTFIX_CONF/server.key
ssl_min_protocol = TLSv1.2
disable_plaintext_auth = yes
auth_mechanisms = plain login
log_path = $LOG
mail_location = maildir:$SPOOL/%d/%n
first_valid_uid = $MAIL_UID
passdb {
  driver = passwd-file
  args = scheme=PLAIN username_format=%u $CONF_DIR/users
}
userdb {
  driver = static
  args = uid=$MAIL_UID gid=$MAIL_GID home=$SPOOL/%d/%n
}
service imap-login {
  inet_listener imap {
    port = 0
  }
  inet_listener imaps {
    address = 127.0.0.1
    port = $PORT
    ssl = yes
  }
}
service stats {
  unix_listener stats-reader {
    mode = 0666
  }
  unix_listener stats-writer {
    mode = 0666
  }
}
CONF
touch "$LOG"
chmod 0644 "$LOG"
if [ -f /run/callslip-imap/master.pid ] && kill -0 "$(cat /run/callslip-imap/master.pid)" 2>/dev/null; then
  doveadm -c "$CONF_DIR/dovecot.conf" reload
else
  dovecot -c "$CONF_DIR/dovecot.conf"
fi

cat >"$CONF_DIR/env" <<ENV
CALLSLIP_IMAP_HOST=127.0.0.1
CALLSLIP_IMAP_PORT=$PORT
CALLSLIP_IMAP_CA_FILE=$POSTFIX_CONF/ca.pem
CALLSLIP_IMAP_USER=bounces@callslip.test
CALLSLIP_IMAP_PASSWORD=$IMAP_PASSWORD
CALLSLIP_IMAP_E2E_USER=ill@library.callslip.test
CALLSLIP_IMAP_MAILDIR=$SPOOL
ENV
chmod 0644 "$CONF_DIR/env"

for _ in $(seq 1 50); do
  if (exec 3<>/dev/tcp/127.0.0.1/$PORT) 2>/dev/null; then
    echo "dovecot_imap.sh: Dovecot IMAPS on 127.0.0.1:$PORT; $CONF_DIR/env"
    exit 0
  fi
  sleep 0.2
done
echo "dovecot_imap.sh: Dovecot did not start listening on 127.0.0.1:$PORT (see $LOG)" >&2
exit 1
