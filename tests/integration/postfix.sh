#!/bin/bash
# A4.1 SMTP through a real Postfix on loopback ("Local only"): cmr-send hands mail to the
# local sendmail; Postfix delivers it through a `pipe` transport (and through a user's
# .forward) into `cmr-recv --mail`, which routes it into the recipient's state file.
# Plain 7-bit messages travel as the body, anything else as a base64 attachment; both
# must arrive byte for byte. Mail without a CMR part bounces (65) and changes nothing, or
# is dropped quietly with --no-message-exit 0.
source "$(dirname "$0")/lib-mailudp.sh"
if ! dpkg -s postfix >/dev/null 2>&1; then
    echo "postfix postfix/main_mailer_type select Local only" | debconf-set-selections
    echo "postfix postfix/mailname string cmr.test" | debconf-set-selections
fi
need_packages postfix sqlite3 python3 openssl mblaze
build
ensure_user cmrtest
lock_postfix
HOME_T=$(getent passwd cmrtest | cut -d: -f6)

RS="$WORK/bob/state.sqlite"     # pipe transport deliveries
PS="$WORK/bob/post.sqlite"      # posting by mail (cmr-recv --mail --post)
FS="$WORK/fwd/state.sqlite"     # .forward deliveries
SS="$WORK/alice.sqlite"         # sender's outbox
LOG="$WORK/bob/recv.log"
MAILLOG=/var/log/cmr-test-postfix.log
mkdir -p "$WORK/bob" "$WORK/fwd" && chown cmrtest "$WORK/bob" "$WORK/fwd"
init_state "$RS" mailto:bob@cmr.test cmrtest
init_state "$FS" mailto:cmrtest@cmr.test cmrtest
init_state "$PS" mailto:ask@cmr.test cmrtest

# Keep the host's Postfix configuration and put it back afterwards.
# A private CA and a certificate for the relay at 127.0.0.1 (STARTTLS).
openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=cmr-test-ca \
    -keyout "$WORK/ca.key" -out "$WORK/ca.pem" 2>/dev/null
openssl req -newkey rsa:2048 -nodes -subj /CN=127.0.0.1 \
    -keyout "$WORK/relay.key" -out "$WORK/relay.csr" 2>/dev/null
printf 'subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\n' >"$WORK/ext.cnf"
openssl x509 -req -in "$WORK/relay.csr" -CA "$WORK/ca.pem" -CAkey "$WORK/ca.key" \
    -CAcreateserial -days 2 -extfile "$WORK/ext.cnf" -out "$WORK/relay.pem" 2>/dev/null

cp -p /etc/postfix/main.cf "$WORK/main.cf.orig"
cp -p /etc/postfix/master.cf "$WORK/master.cf.orig"
WAS_RUNNING=no
postfix status >/dev/null 2>&1 && WAS_RUNNING=yes
restore_postfix() {
    cp -p "$WORK/main.cf.orig" /etc/postfix/main.cf
    cp -p "$WORK/master.cf.orig" /etc/postfix/master.cf
    rm -f "$HOME_T/.forward"
    rm -rf "$HOME_T/Maildir"
    if [ "$WAS_RUNNING" = yes ]; then postfix reload; else postfix stop; fi
}
at_exit restore_postfix

cat >"$WORK/transport" <<MAP
bob@cmr.test    cmr:
quiet@cmr.test  cmrquiet:
ask@cmr.test    cmrpost:
MAP
postconf -e "mydestination = cmr.test, localhost" \
    "inet_interfaces = loopback-only" \
    "transport_maps = texthash:$WORK/transport" \
    "maillog_file = $MAILLOG" \
    "cmr_destination_recipient_limit = 1" \
    "local_recipient_maps =" \
    "smtpd_tls_security_level = may" \
    "smtpd_tls_cert_file = $WORK/relay.pem" \
    "smtpd_tls_key_file = $WORK/relay.key" \
    "smtpd_tls_loglevel = 1" \
    "cmrquiet_destination_recipient_limit = 1" \
    "cmrpost_destination_recipient_limit = 1"
postconf -M "cmr/unix=cmr unix - n n - - pipe user=cmrtest argv=$BIN/cmr-recv --mail --state $RS --log $LOG"
postconf -M "cmrquiet/unix=cmrquiet unix - n n - - pipe user=cmrtest argv=$BIN/cmr-recv --mail --no-message-exit 0 --state $RS --log $LOG"
# Posting by mail: pipe(8) sets no environment, so env passes the envelope sender.
postconf -M "cmrpost/unix=cmrpost unix - n n - - pipe user=cmrtest argv=/usr/bin/env SENDER=\${sender} $BIN/cmr-recv --mail --post --maildir $HOME_T/Maildir --allow-sender alice@cmr.test --state $PS --log $LOG"
echo "\"|$BIN/cmr-recv --mail --state $FS --log $WORK/fwd/recv.log\"" >"$HOME_T/.forward"
chown cmrtest "$HOME_T/.forward"
: >"$MAILLOG"
newaliases
postfix check
if [ "$WAS_RUNNING" = yes ]; then postfix reload; else postfix start; fi
for _ in $(seq 50); do postfix status >/dev/null 2>&1 && break; sleep 0.1; done

# Wait until Postfix has logged a final status for the mail to $1 (bounded).
delivery_status() {
    for _ in $(seq 150); do
        s=$(grep -E "to=<$1>.*status=(sent|bounced)" "$MAILLOG" | tail -1 | sed -E 's/.*status=([a-z]+).*/\1/')
        [ -n "$s" ] && { echo "$s"; return; }
        sleep 0.2
    done
    echo timeout
}
clear_log() { : >"$MAILLOG"; }

SEND=("$BIN/cmr-send" --from alice@cmr.test)

echo "# a plain 7-bit message, as the mail body, through the pipe transport"
make_msg "$WORK/m1" mailto:alice@cmr.test "Hello over SMTP"
"${SEND[@]}" --to mailto:bob@cmr.test "$WORK/m1"
check "cmr-send via sendmail exits 0" 0 $?
check "Postfix delivered it to the pipe" sent "$(delivery_status bob@cmr.test)"
check "bob's cache holds it" 1 "$(cache_has "$RS" "Hello over SMTP")"
check "  byte for byte (CR LF restored)" "$(xxd -p "$WORK/m1" | tr -d '\n')" \
    "$(sql "$RS" "select lower(hex(bytes)) from cache where id=1")"
check "  tagged as arrived by mail" mail "$(sql "$RS" "select via from cache where id=1")"

echo "# a binary message, as a base64 application/octet-stream attachment"
python3 - "$WORK/m2" <<'PY'
import sys
body = bytes(range(256)) + b"\nbare LF, bare CR\r and long " + b"z" * 2000
m = b"0\r\n2020/01/01 00:00:00 mailto:alice@cmr.test\r\n\r\n%d\r\n%s" % (len(body), body)
open(sys.argv[1], "wb").write(m)
PY
clear_log
"${SEND[@]}" --to mailto:bob@cmr.test "$WORK/m2"
check "delivered" sent "$(delivery_status bob@cmr.test)"
check "bob's cache holds it byte for byte" 1 \
    "$(sql "$RS" "select count(*) from cache where bytes = readfile('$WORK/m2')")"

echo "# through a user's .forward (\"|cmr-recv --mail\")"
make_msg "$WORK/m3" mailto:alice@cmr.test "Hello via forward"
clear_log
"${SEND[@]}" --to mailto:cmrtest@cmr.test "$WORK/m3"
check "delivered by local(8)" sent "$(delivery_status cmrtest@cmr.test)"
check "the .forward state holds it" 1 "$(cache_has "$FS" "Hello via forward")"

echo "# outbox rows for mailto: go through sendmail too"
"$BIN/cmr-send" --state "$SS" --list >/dev/null
make_msg "$WORK/m4" mailto:alice@cmr.test "Queued for mail"
"$BIN/cmr-send" --state "$SS" --set smtp_from=alice@cmr.test
sqlite3 "$SS" "INSERT INTO outbox(dest, bytes, msg_key, created, attempts, next_attempt, state)
    VALUES ('mailto:bob@cmr.test', readfile('$WORK/m4'), cast('k4' as blob), strftime('%Y-%m-%d %H:%M:%f','now'),
            0, strftime('%Y-%m-%d %H:%M:%f','now'), 'queued')"
clear_log
"$BIN/cmr-send" --state "$SS" --outbox
check "cmr-send --outbox exits 0" 0 $?
check "  row left the outbox for delivered" "0 1" "$(sql "$SS" "select (select count(*) from outbox), (select count(*) from delivered)" | tr '|' ' ')"
check "delivered" sent "$(delivery_status bob@cmr.test)"
check "bob's cache holds it" 1 "$(cache_has "$RS" "Queued for mail")"

echo "# through an SMTP relay instead of sendmail (Postfix's smtpd on 127.0.0.1:25)"
make_msg "$WORK/m6" mailto:alice@cmr.test "Hello through the relay"
clear_log
set +e; "${SEND[@]}" --relay smtp://127.0.0.1:25 --to mailto:bob@cmr.test "$WORK/m6"; rc=$?; set -e
check "cmr-send --relay exits 0 (the relay accepted the DATA)" 0 "$rc"
check "delivered" sent "$(delivery_status bob@cmr.test)"
check "bob's cache holds it" 1 "$(cache_has "$RS" "Hello through the relay")"
set +e; err=$("${SEND[@]}" --relay smtp://127.0.0.1:25 --to mailto:nobody@elsewhere.invalid "$WORK/m6" 2>&1); rc=$?; set -e
check "a relay refusing the recipient (5xx) is permanent: 69" 69 "$rc"
check_contains "  with the relay's answer" "SMTP relay" "$err"

echo "# through the relay with STARTTLS, trusting a private CA"
make_msg "$WORK/m7" mailto:alice@cmr.test "Hello over STARTTLS"
clear_log
set +e
err=$("${SEND[@]}" --relay 'smtp://127.0.0.1:25?tls=required' --to mailto:bob@cmr.test "$WORK/m7" 2>&1); rc=$?
set -e
check "without the CA the relay's certificate is refused: 75 (retry after fixing trust)" 75 "$rc"
check_contains "  and says so" "SMTP relay" "$err"
set +e
"${SEND[@]}" --relay 'smtp://127.0.0.1:25?tls=required' --relay-ca "$WORK/ca.pem" --to mailto:bob@cmr.test "$WORK/m7"; rc=$?
set -e
check "with --relay-ca: STARTTLS, exit 0" 0 "$rc"
check "delivered" sent "$(delivery_status bob@cmr.test)"
check_contains "Postfix logged a TLS session" "TLS connection established from" "$(cat "$MAILLOG")"
check "bob's cache holds it" 1 "$(cache_has "$RS" "Hello over STARTTLS")"

echo "# mail without a CMR part: bounced with a clear reason, no state change"
before=$(cache_count "$RS")
clear_log
printf 'From: carol@cmr.test\nTo: bob@cmr.test\nSubject: hello\n\nJust a note, no CMR here.\n' |
    /usr/sbin/sendmail -i -f carol@cmr.test bob@cmr.test
check "Postfix bounced it (cmr-recv exit 65)" bounced "$(delivery_status bob@cmr.test)"
check_contains "the bounce names the reason" "no part holding a CMR message" "$(grep 'to=<bob@cmr.test>' "$MAILLOG")"
check "nothing cached" "$before" "$(cache_count "$RS")"
clear_log
printf 'From: carol@cmr.test\nTo: quiet@cmr.test\nSubject: hello\n\nAnother note.\n' |
    /usr/sbin/sendmail -i -f carol@cmr.test quiet@cmr.test
check "with --no-message-exit 0 it is dropped without a bounce" sent "$(delivery_status quiet@cmr.test)"
check "  nothing cached" "$before" "$(cache_count "$RS")"
check_contains "  and the drop is logged" "dropped: mail has no part holding a CMR message" "$(cat "$LOG")"

echo "# the same mail delivered twice is a duplicate, not a second copy"
clear_log
"${SEND[@]}" --to mailto:bob@cmr.test "$WORK/m1"
check "delivered (exit 0, duplicate)" sent "$(delivery_status bob@cmr.test)"
check "  still one copy" 1 "$(cache_has "$RS" "Hello over SMTP")"

echo "# transient trouble: state file locked -> exit 75 -> Postfix defers, then delivers"
make_msg "$WORK/m5" mailto:alice@cmr.test "Delivered after a deferral"
# Hold a write lock on bob's state longer than the busy timeout.
python3 - "$RS" "$WORK/locked" <<'PY' &
import sqlite3, sys, time, os
c = sqlite3.connect(sys.argv[1], isolation_level=None)
c.execute("BEGIN EXCLUSIVE")
open(sys.argv[2], "w").close()
time.sleep(14)
c.execute("ROLLBACK")
PY
LOCKER=$!
for _ in $(seq 50); do [ -e "$WORK/locked" ] && break; sleep 0.1; done
clear_log
"${SEND[@]}" --to mailto:bob@cmr.test "$WORK/m5"
for _ in $(seq 150); do grep -q "to=<bob@cmr.test>.*status=deferred" "$MAILLOG" && break; sleep 0.2; done
check_contains "Postfix deferred it" "status=deferred" "$(grep 'to=<bob@cmr.test>' "$MAILLOG")"
check "  nothing cached yet" 0 "$(sql "$RS" "select count(*) from cache where instr(bytes, cast('after a deferral' as blob)) > 0" 2>/dev/null || echo 0)"
wait "$LOCKER"
postqueue -f
check "after the lock is gone Postfix delivers it" sent "$(delivery_status bob@cmr.test)"
check "bob's cache holds it once" 1 "$(cache_has "$RS" "Delivered after a deferral")"

echo "# posting by mail: a mail to ask@cmr.test becomes a post; related messages go to a Maildir"
as_t() { runuser -u cmrtest -- "$@"; }
# What the pool already holds: a message from a peer about planets.
make_msg "$WORK/p1" mailto:carol@cmr.test "Saturn and Jupiter are the gas giants of the solar system." "2025/06/01 10:00:00"
as_t "$BIN/cmr-route" --state "$PS" --quiet "$WORK/p1"
rm -rf "$HOME_T/Maildir"
clear_log
printf 'From: Alice <alice@cmr.test>\nTo: ask@cmr.test\nSubject: What is the largest planet?\n\nI would like to know.\n-- \nAlice\n' |
    /usr/sbin/sendmail -i -f alice@cmr.test ask@cmr.test
check "Postfix delivered it to cmr-recv --mail --post" sent "$(delivery_status ask@cmr.test)"
check "the post is in the router's cache, as our client's" 1 \
    "$(sql "$PS" "select count(*) from cache where client = 1 and instr(bytes, cast('What is the largest planet?' as blob)) > 0")"
check "  without the signature" 0 "$(sql "$PS" "select count(*) from cache where instr(bytes, cast('Alice' as blob)) > 0")"
check "the related message is in the poster's Maildir" 1 "$(ls "$HOME_T/Maildir/new" 2>/dev/null | wc -l)"
POST_ID=$(sql "$PS" "select substr(cast(bytes as text), 4, instr(substr(cast(bytes as text), 4), char(13)) - 1) from cache where client = 1")
# Checked with Python's mail parser: From, Date, Subject, References.
mailcheck() { # mailcheck FILE: "from|date|subject|references" as a mail reader sees them
    python3 - "$1" <<'PY'
import email, email.policy, email.utils, sys
m = email.message_from_binary_file(open(sys.argv[1], "rb"), policy=email.policy.default)
d = email.utils.parsedate_to_datetime(m["Date"]).strftime("%Y/%m/%d %H:%M:%S")
print("|".join([m["From"].addresses[0].addr_spec, d, str(m["Subject"]), str(m["References"])]))
PY
}
msgid() { printf '%s' "$1" | sha256sum | cut -c1-32; }
check "  From, Date, Subject, References" \
    "carol@cmr.test|2025/06/01 10:00:00|Saturn and Jupiter are the gas giants of the solar system.|<$(msgid "$POST_ID")@cmr.invalid>" \
    "$(mailcheck "$(ls -d "$HOME_T"/Maildir/new/* | head -n 1)")"
clear_log
before=$(cache_count "$PS")
printf 'From: eve@cmr.test\nTo: ask@cmr.test\nSubject: spam\n\nBuy now.\n' |
    /usr/sbin/sendmail -i -f eve@cmr.test ask@cmr.test
check "a sender not allowed to post is bounced (77)" bounced "$(delivery_status ask@cmr.test)"
check "  nothing posted" "$before" "$(cache_count "$PS")"

echo "# a later reply, delivered by cmr-post --replies --maildir as cron runs it"
make_msg "$WORK/p2" mailto:carol@cmr.test "Jupiter is the largest planet of the solar system." "2025/06/02 09:30:15"
as_t "$BIN/cmr-route" --state "$PS" --quiet "$WORK/p2"
as_t env -i HOME="$HOME_T" PATH="$BIN:/usr/bin:/bin" /bin/sh -c \
    "cmr-post --replies --maildir $HOME_T/Maildir --state $PS"
check "the Maildir holds two messages" 2 "$(ls "$HOME_T/Maildir/new" | wc -l)"
later=$(grep -l 'Subject: Jupiter is the largest' "$HOME_T"/Maildir/new/*)
check "  the reply: From, Date, Subject, References" \
    "carol@cmr.test|2025/06/02 09:30:15|Jupiter is the largest planet of the solar system.|<$(msgid "$POST_ID")@cmr.invalid>" \
    "$(mailcheck "$later")"
check "  owned by the user" cmrtest "$(stat -c %U "$later")"
check "mblaze's mlist lists both" 2 "$(mlist "$HOME_T/Maildir" | wc -l)"
check_contains "mblaze's mshow shows the reply" "Jupiter is the largest planet of the solar system." \
    "$(mshow "$later")"
as_t env -i HOME="$HOME_T" PATH="$BIN:/usr/bin:/bin" /bin/sh -c \
    "cmr-post --replies --maildir $HOME_T/Maildir --state $PS"
check "a second run delivers nothing again" 2 "$(ls "$HOME_T/Maildir/new" | wc -l)"

summary
