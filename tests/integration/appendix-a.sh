#!/bin/bash
# The Appendix A conversation over real transports, three routers on one host:
#
#   Alice   udp://127.0.0.1:PA/alice        (xinetd dgram wait -> cmr-recv --udp)
#   Bob     ssh://cmrtest@127.0.0.1:PS/bob  (sshd forced command -> cmr-recv --ssh)
#           mailto:bob@cmr.test             (Postfix pipe -> cmr-recv --mail)
#   Charlie http://127.0.0.1:PH/cmr         (xinetd nowait -> cmr-recv --http)
#
# Alice posts X "What is the largest planet ...?". Her router forwards it to Bob by SMTP;
# Bob's router forwards it to Charlie by HTTP; Charlie matches it to his cached answer Y and
# sends Y to the addresses in X's header: to Alice by UDP and to Bob by SSH. Every router
# shares a key with each other (signed hops, unsigned messages refused), and
# `cmr-send --outbox` runs as cron would on each host. At the end each cache holds what it
# should, every hop verified its signature, and every outbox is empty.
source "$(dirname "$0")/lib-mailudp.sh"
if ! dpkg -s postfix >/dev/null 2>&1; then
    echo "postfix postfix/main_mailer_type select Local only" | debconf-set-selections
    echo "postfix postfix/mailname string cmr.test" | debconf-set-selections
fi
need_packages postfix xinetd openssh-server openssh-client sqlite3 python3
build
ensure_user cmrtest
lock_postfix
HOME_T=$(getent passwd cmrtest | cut -d: -f6)

PA=$(free_port udp)
PH=$(free_port)
PS=$(free_port)
ALICE="udp://127.0.0.1:$PA/alice"
BOB_SSH="ssh://cmrtest@127.0.0.1:$PS/bob"
BOB_MAIL="mailto:bob@cmr.test"
CHARLIE="http://127.0.0.1:$PH/cmr"
mkdir -p "$WORK/alice" "$WORK/bob" "$WORK/charlie"
chown cmrtest "$WORK/bob"
AS="$WORK/alice/state.sqlite"
BS="$WORK/bob/state.sqlite"
CS="$WORK/charlie/state.sqlite"
R="$BIN/cmr-route"
as_bob() { runuser -u cmrtest -- "$@"; }

echo "# three routers: addresses, a little history each, keys per pair"
init_state "$AS" "$ALICE"
as_bob "$R" init --state "$BS" --address "$BOB_SSH" --address "$BOB_MAIL" >/dev/null
as_bob "$R" policy --state "$BS" send_allow 127.0.0.0/8,::1 >/dev/null
init_state "$CS" "$CHARLIE"
# History (before keys exist, so unsigned is still fine): what each router knows of its
# peers decides where it forwards (3.2).
make_msg "$WORK/h1" "$BOB_MAIL" "Bob keeps notes on the planets of the solar system." "2026/01/01 00:00:01"
"$R" --state "$AS" --quiet "$WORK/h1"
make_msg "$WORK/h2" "$CHARLIE" "Charlie answers questions about which planet is the largest in the solar system." "2026/01/01 00:00:02"
as_bob "$R" --state "$BS" --quiet "$WORK/h2"
printf 'Jupiter is the largest planet in the solar system.' | "$BIN/cmr-post" --state "$CS" >/dev/null
KAB=$(python3 -c 'print(b"alice and bob".hex())')
KBC=$(python3 -c 'print(b"bob and charlie".hex())')
KCA=$(python3 -c 'print(b"charlie and alice".hex())')
"$R" peer add --state "$AS" "$BOB_MAIL" --key-hex "$KAB" >/dev/null
"$R" peer add --state "$AS" "$BOB_SSH" --key-hex "$KAB" >/dev/null
"$R" peer add --state "$AS" "$CHARLIE" --key-hex "$KCA" >/dev/null
as_bob "$R" peer add --state "$BS" "$ALICE" --key-hex "$KAB" >/dev/null
as_bob "$R" peer add --state "$BS" "$CHARLIE" --key-hex "$KBC" >/dev/null
"$R" peer add --state "$CS" "$BOB_SSH" --key-hex "$KBC" >/dev/null
"$R" peer add --state "$CS" "$BOB_MAIL" --key-hex "$KBC" >/dev/null
"$R" peer add --state "$CS" "$ALICE" --key-hex "$KCA" >/dev/null
for s in "$AS" "$CS"; do "$R" policy --state "$s" unsigned reject >/dev/null; done
as_bob "$R" policy --state "$BS" unsigned reject >/dev/null
"$BIN/cmr-send" --state "$AS" --set smtp_from=alice@cmr.test

echo "# Bob's ingress: Postfix pipe and sshd forced command"
cp -p /etc/postfix/main.cf "$WORK/main.cf.orig"
cp -p /etc/postfix/master.cf "$WORK/master.cf.orig"
WAS_RUNNING=no
postfix status >/dev/null 2>&1 && WAS_RUNNING=yes
restore_postfix() {
    cp -p "$WORK/main.cf.orig" /etc/postfix/main.cf
    cp -p "$WORK/master.cf.orig" /etc/postfix/master.cf
    if [ "$WAS_RUNNING" = yes ]; then postfix reload; else postfix stop; fi
}
at_exit restore_postfix
echo "bob@cmr.test cmr:" >"$WORK/transport"
MAILLOG=/var/log/cmr-test-postfix.log
postconf -e "mydestination = cmr.test, localhost" "inet_interfaces = loopback-only" \
    "transport_maps = texthash:$WORK/transport" "maillog_file = $MAILLOG" \
    "cmr_destination_recipient_limit = 1"
postconf -M "cmr/unix=cmr unix - n n - - pipe user=cmrtest argv=$BIN/cmr-recv --mail --state $BS --log $WORK/bob/recv.log"
: >"$MAILLOG"
newaliases
if [ "$WAS_RUNNING" = yes ]; then postfix reload; else postfix start; fi

mkdir -p /run/sshd
ssh-keygen -q -t ed25519 -N '' -f "$WORK/hostkey"
ssh-keygen -q -t ed25519 -N '' -f "$WORK/charlie_key" -C charlie
ssh-keygen -q -t ed25519 -N '' -f "$WORK/alice_key" -C alice
mkdir -p "$WORK/keys"
{
    echo "restrict,command=\"$BIN/cmr-recv --ssh --tag bob --state $BS --log $WORK/bob/recv.log\" $(cat "$WORK/charlie_key.pub")"
    echo "restrict,command=\"$BIN/cmr-recv --ssh --tag bob --state $BS --log $WORK/bob/recv.log\" $(cat "$WORK/alice_key.pub")"
} >"$WORK/keys/cmrtest"
echo "[127.0.0.1]:$PS $(cat "$WORK/hostkey.pub")" >"$WORK/known_hosts"
cat >"$WORK/sshd_config" <<CONF
Port $PS
ListenAddress 127.0.0.1
HostKey $WORK/hostkey
PidFile $WORK/sshd.pid
AuthorizedKeysFile $WORK/keys/%u
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
StrictModes no
AllowUsers cmrtest
CONF
/usr/sbin/sshd -f "$WORK/sshd_config" -D -E "$WORK/sshd.log" &
SPID=$!
at_exit "kill $SPID"
"$BIN/cmr-send" --state "$CS" --set ssh_identity="$WORK/charlie_key" \
    --set ssh_options="UserKnownHostsFile=$WORK/known_hosts"
"$BIN/cmr-send" --state "$AS" --set ssh_identity="$WORK/alice_key" \
    --set ssh_options="UserKnownHostsFile=$WORK/known_hosts"

echo "# Alice's and Charlie's ingress: xinetd (UDP dgram wait, HTTP stream nowait)"
cat >"$WORK/xinetd.conf" <<CONF
defaults
{
    instances = 20
}
service cmr-alice-udp
{
    type        = UNLISTED
    socket_type = dgram
    protocol    = udp
    bind        = 127.0.0.1
    port        = $PA
    wait        = yes
    user        = root
    server      = $BIN/cmr-recv
    server_args = --udp --tag alice --idle 2 --state $AS --log $WORK/alice/recv.log
}
service cmr-charlie-http
{
    type        = UNLISTED
    socket_type = stream
    protocol    = tcp
    bind        = 127.0.0.1
    port        = $PH
    wait        = no
    user        = root
    server      = $BIN/cmr-recv
    server_args = --http --state $CS --log $WORK/charlie/recv.log
}
CONF
xinetd -f "$WORK/xinetd.conf" -pidfile "$WORK/xinetd.pid" -dontfork -filelog "$WORK/xinetd.log" &
XPID=$!
at_exit "kill $XPID"
for _ in $(seq 50); do
    ss -lun | grep -q "127.0.0.1:$PA " && ss -ltn | grep -q "127.0.0.1:$PH " &&
        ss -ltn | grep -q "127.0.0.1:$PS " && break
    sleep 0.1
done

# One cron tick on every host: each drains its outbox as its own user.
tick() {
    "$BIN/cmr-send" --state "$AS" --outbox --timeout 20 2>>"$WORK/send.log" || true
    as_bob "$BIN/cmr-send" --state "$BS" --outbox --timeout 20 2>>"$WORK/send.log" || true
    "$BIN/cmr-send" --state "$CS" --outbox --timeout 20 2>>"$WORK/send.log" || true
}
pending() {
    echo $(($(sql "$AS" "select count(*) from outbox") + $(sql "$BS" "select count(*) from outbox") + $(sql "$CS" "select count(*) from outbox")))
}
# via and verified-signature flag of the cached message in $1 whose body holds $2.
arrival() {
    sql "$1" "select via || ' ' || signed from cache where instr(bytes, cast('$2' as blob)) > 0 order by id limit 1"
}

echo "# Alice posts X"
out=$(printf 'What is the largest planet in the solar system?' | "$BIN/cmr-post" --state "$AS" --json)
check "Alice's router queues X for Bob by mail" "$BOB_MAIL" \
    "$(sql "$AS" "select dest from outbox where dest like 'mailto:%'")"

X="What is the largest planet"
Y="Jupiter is the largest planet"
for round in $(seq 12); do
    tick
    [ "$(pending)" = 0 ] &&
        [ -n "$(arrival "$BS" "$Y")" ] && [ -n "$(arrival "$AS" "$Y")" ] && break
    sleep 1
done

echo "# every hop arrived by its transport, signature verified"
check "Alice->Bob by SMTP: X in Bob's cache, verified" "mail 1" "$(arrival "$BS" "$X")"
check "Bob->Charlie by HTTP: X in Charlie's cache, verified" "http 1" "$(arrival "$CS" "$X")"
check "Charlie->Alice by UDP: Y in Alice's cache, verified" "udp 1" "$(arrival "$AS" "$Y")"
check "Charlie->Bob by SSH: Y in Bob's cache, verified" "ssh 1" "$(arrival "$BS" "$Y")"
check "X reached Charlie with Bob's and Alice's lines" 1 \
    "$(sql "$CS" "select count(*) from cache where instr(bytes, cast('$BOB_SSH' as blob)) > 0 and instr(bytes, cast('$ALICE' as blob)) > 0 and instr(bytes, cast('$X' as blob)) > 0")"
refused="select count(*) from log where outcome='rejected' and (reason like '%signature%' or reason like '%unsigned%' or reason like '%signed message%')"
check "no hop was refused for its signature" 0 \
    "$(($(sql "$AS" "$refused") + $(sql "$BS" "$refused") + $(sql "$CS" "$refused")))"
check "every outbox drained" 0 "$(pending)"
check "nothing dead-lettered" 0 "$(($(sql "$AS" "select count(*) from outbox where state='dead'") + $(sql "$BS" "select count(*) from outbox where state='dead'") + $(sql "$CS" "select count(*) from outbox where state='dead'")))"
check_contains "Postfix delivered to the pipe" "status=sent" "$(grep 'to=<bob@cmr.test>' "$MAILLOG")"
for who in alice bob charlie; do
    echo "# $who's log:"
    s=$WORK/$who/state.sqlite
    sql "$s" "select '#   ' || outcome || ' via ' || via || ' from ' || coalesce(sender, '-') || coalesce(': ' || reason, '') from log order by id"
    echo "# $who's cache:"
    s=$WORK/$who/state.sqlite
    sql "$s" "select '#   ' || via || ' signed=' || signed || ' ' || replace(replace(cast(substr(bytes, body_offset + 1) as text), char(13), ''), char(10), ' ') from cache order by id"
done

summary
