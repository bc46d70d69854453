#!/bin/bash
# A5.3 over real channels: a clear key exchange works over SSH and HTTPS and is refused over
# HTTP, UDP and mail. Two routers on one host, each with its own state file:
#
#   Alice  ssh://alice@127.0.0.1/alice, https://127.0.0.1:PAS/alice, http://127.0.0.1:PA/alice
#          (xinetd nowait -> cmr-recv --http: where Bob's DH reply arrives),
#          udp://127.0.0.1:PAU/alice, mailto:alice@cmr.test
#   Bob    ssh://cmrtest@127.0.0.1:PS/bob    (sshd forced command -> cmr-recv --ssh --peer ALICE)
#          https://127.0.0.1:PT/bob          (xinetd nowait -> cmr-recv --https --cert --key)
#          http://127.0.0.1:PH/bob           (xinetd nowait -> cmr-recv --http)
#          udp://127.0.0.1:PU/bob            (xinetd dgram wait -> cmr-recv --udp)
#          mailto:bob@cmr.test               (Postfix pipe -> cmr-recv --mail)
#
# One address per scheme on each side: the address a router uses with a peer (in the key
# derivation and on the lines it prepends to forwards) is its first one with the peer's
# scheme. Alice posts with --from her address for Bob's scheme: a post goes out under its
# creator's address, and Bob checks the signature with the key he holds for that address.
#
# For each of Bob's addresses Alice runs `cmr-keyx init BOB --clear` and drains her outbox
# as cron would. Over ssh:// and https:// both ends then hold the same key (`cmr-keyx show
# --json`: key_id) and a message Alice's router signs for Bob verifies there. Over http://,
# udp:// and mailto: `init --clear` is refused up front; forced (--via), Bob refuses it on
# arrival: no key (or the old one), nothing cached, the refusal logged. Last, a DH exchange
# over plain HTTP (unsigned first contact, Bob's reply back over HTTP to Alice's xinetd),
# then a signed message that verifies.
source "$(dirname "$0")/lib-mailudp.sh"
need_postfix
need_packages xinetd openssh-server openssh-client openssl sqlite3 python3
build
ensure_user cmrtest

PS=$(free_port)
PT=$(free_port)
PH=$(free_port)
PU=$(free_port udp)
PA=$(free_port)
BOB_SSH="ssh://cmrtest@127.0.0.1:$PS/bob"
BOB_HTTPS="https://127.0.0.1:$PT/bob"
BOB_HTTP="http://127.0.0.1:$PH/bob"
BOB_UDP="udp://127.0.0.1:$PU/bob"
BOB_MAIL="mailto:bob@cmr.test"
ALICE_SSH="ssh://alice@127.0.0.1/alice"
ALICE_HTTPS="https://127.0.0.1:$(free_port)/alice"
ALICE_HTTP="http://127.0.0.1:$PA/alice"
ALICE_UDP="udp://127.0.0.1:$(free_port udp)/alice"
ALICE_MAIL="mailto:alice@cmr.test"
mkdir -p "$WORK/alice" "$WORK/bob"
chown cmrtest "$WORK/bob"
AS="$WORK/alice/state.sqlite"
BS="$WORK/bob/state.sqlite"
BLOG="$WORK/bob/recv.log"
ALOG="$WORK/alice/recv.log"
as_bob() { runuser -u cmrtest -- "$@"; }
# Bob's state file is read as its owner: a reader may create its WAL files.
bsql() { as_bob sqlite3 -batch -noheader "$BS" "$1" 2>/dev/null || echo sql-error; }

echo "# two routers"
"$BIN/cmr-route" init --state "$AS" --address "$ALICE_HTTP" --address "$ALICE_SSH" \
    --address "$ALICE_HTTPS" --address "$ALICE_UDP" --address "$ALICE_MAIL" >/dev/null
as_bob "$BIN/cmr-route" init --state "$BS" --address "$BOB_SSH" --address "$BOB_HTTPS" \
    --address "$BOB_HTTP" --address "$BOB_UDP" --address "$BOB_MAIL" >/dev/null
# Both listen on loopback, which the address policy refuses unless allowed.
"$BIN/cmr-route" policy --state "$AS" send_allow 127.0.0.0/8,::1 >/dev/null
as_bob "$BIN/cmr-route" policy --state "$BS" send_allow 127.0.0.0/8,::1 >/dev/null
# The key exchange is under test, not routing: no 3.1 exploration of unmatched messages to
# the other configured addresses (each router knows the other under five addresses).
"$BIN/cmr-route" policy --state "$AS" explore_fanout 0 >/dev/null
as_bob "$BIN/cmr-route" policy --state "$BS" explore_fanout 0 >/dev/null

echo "# Bob's ingress: sshd forced command, xinetd (https, http, udp), Postfix pipe; Alice's: xinetd http"
openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=127.0.0.1 \
    -addext subjectAltName=IP:127.0.0.1 -addext basicConstraints=critical,CA:FALSE \
    -keyout "$WORK/bob/key.pem" -out "$WORK/bob/cert.pem" 2>/dev/null
chown cmrtest "$WORK/bob/key.pem"

ssh-keygen -q -t ed25519 -N '' -f "$WORK/alice/ssh_key" -C alice
echo "restrict,command=\"$BIN/cmr-recv --ssh --tag bob --peer $ALICE_SSH --state $BS --log $BLOG\" $(cat "$WORK/alice/ssh_key.pub")" \
    >"$WORK/authorized_keys"
private_sshd "$PS" cmrtest "$WORK/authorized_keys"

cat >"$WORK/xinetd.conf" <<CONF
defaults
{
    instances = 20
}
service cmr-bob-https
{
    type        = UNLISTED
    socket_type = stream
    protocol    = tcp
    bind        = 127.0.0.1
    port        = $PT
    wait        = no
    user        = cmrtest
    server      = $BIN/cmr-recv
    server_args = --https --cert $WORK/bob/cert.pem --key $WORK/bob/key.pem --state $BS --log $BLOG
}
service cmr-bob-http
{
    type        = UNLISTED
    socket_type = stream
    protocol    = tcp
    bind        = 127.0.0.1
    port        = $PH
    wait        = no
    user        = cmrtest
    server      = $BIN/cmr-recv
    server_args = --http --state $BS --log $BLOG
}
service cmr-bob-udp
{
    type        = UNLISTED
    socket_type = dgram
    protocol    = udp
    bind        = 127.0.0.1
    port        = $PU
    wait        = yes
    user        = cmrtest
    server      = $BIN/cmr-recv
    server_args = --udp --tag bob --idle 2 --state $BS --log $BLOG
}
service cmr-alice-http
{
    type        = UNLISTED
    socket_type = stream
    protocol    = tcp
    bind        = 127.0.0.1
    port        = $PA
    wait        = no
    user        = root
    server      = $BIN/cmr-recv
    server_args = --http --state $AS --log $ALOG
}
CONF
private_xinetd "$WORK/xinetd.conf"

postfix_pipe bob@cmr.test cmrtest "$BIN/cmr-recv" --mail --state "$BS" --log "$BLOG"

"$BIN/cmr-send" --state "$AS" --set ssh_identity="$WORK/alice/ssh_key" \
    --set ssh_options="UserKnownHostsFile=$WORK/known_hosts" \
    --set http_trust_file="$WORK/bob/cert.pem" --set smtp_from=alice@cmr.test

# Alice's cron tick: drain her outbox; prints the exit status.
drain_alice() {
    local rc=0
    "$BIN/cmr-send" --state "$AS" --outbox --timeout 20 2>>"$WORK/alice/send.log" || rc=$?
    echo "$rc"
}
drain_bob() {
    local rc=0
    as_bob "$BIN/cmr-send" --state "$BS" --outbox --timeout 20 2>>"$WORK/bob/send.log" || rc=$?
    echo "$rc"
}
# key_id STATE PEER [as_bob]: the fingerprint of the key held for PEER ("none" if none).
key_id() {
    local out
    out=$(${3:-} "$BIN/cmr-keyx" --state "$1" show "$2" --json 2>/dev/null) || { echo none; return; }
    python3 -c 'import json,sys; print(json.loads(sys.argv[1]).get("key_id") or "none")' "$out"
}
alice_key() { key_id "$AS" "$1"; }
bob_key() { key_id "$BS" "$1" as_bob; }
# The latest decision in Bob's log about a message from $1: "outcome|via|reason".
bob_decision() {
    bsql "select outcome || '|' || coalesce(via, '') || '|' || coalesce(reason, '') from log where sender = '$1' order by id desc limit 1"
}
bob_decisions() { bsql "select count(*) from log where sender = '$1'"; }
# Key-exchange messages in Bob's cache (there must never be any).
bob_cached_keyx() { bsql "select count(*) from cache where instr(bytes, cast('key exchange' as blob)) > 0"; }
# "via verified" of the message in Bob's cache whose body holds $1 (the cache keeps the
# unsigned form; `signed` says its signature verified on arrival).
bob_arrival() {
    bsql "select via || ' ' || signed from cache where instr(bytes, cast('$1' as blob)) > 0"
}

# history ADDR TOPIC: Alice's router learns that ADDR talks about TOPIC (an unsigned message
# from ADDR, routed before any key is shared with it): her posts on TOPIC then go to ADDR.
# Bob is one peer with five addresses here, which no router can tell apart: Alice's router
# would forward one address's history to Bob's other addresses (matching topics), and Bob
# rightly refuses his own address in a header. History goes in with forwarding off.
history() {
    make_msg "$WORK/h" "$1" "$2" "2026/01/01 00:00:0$3"
    "$BIN/cmr-route" --state "$AS" policy max_forwards 0 >/dev/null
    "$BIN/cmr-route" --state "$AS" --quiet "$WORK/h"
    "$BIN/cmr-route" --state "$AS" policy max_forwards 8 >/dev/null # the default
}
# signed_post FROM DEST TEXT: Alice posts TEXT as FROM; her router queues it to DEST signed.
signed_post() {
    printf '%s' "$3" | "$BIN/cmr-post" --state "$AS" --from "$1" >/dev/null
    sql "$AS" "select cast(substr(bytes, 1, 1) as text) from outbox where dest = '$2' and instr(bytes, cast('$3' as blob)) > 0"
}

# clear_works NAME ALICE_ADDR BOB_ADDR TOPIC QUESTION N
clear_works() {
    local name=$1 alice=$2 bob=$3 ka kb
    echo "# $name: clear key exchange"
    history "$bob" "$4" "$6"
    set +e; out=$("$BIN/cmr-keyx" --state "$AS" init "$bob" --clear 2>&1); rc=$?; set -e
    check "$name: cmr-keyx init --clear is accepted" 0 "$rc"
    check_contains "  and queued" "queued clear key" "$out"
    check "  Alice's cron run delivers it" 0 "$(drain_alice)"
    check "  Alice's outbox is empty" 0 "$(sql "$AS" "select count(*) from outbox")"
    ka=$(alice_key "$bob")
    kb=$(bob_key "$alice")
    check "  Alice holds a key for Bob" yes "$([ "$ka" != none ] && echo yes || echo no)"
    check "  Bob holds the same key for Alice (show --json key_id)" "$ka" "$kb"
    check_contains "  Bob's log: key exchange accepted via $name" "key-exchange|$name|" "$(bob_decision "$alice")"
    check "  the control message is not cached" 0 "$(bob_cached_keyx)"
    echo "# $name: a message Alice's router signs with the new key"
    check "Alice's forward to Bob is signed" 1 "$(signed_post "$alice" "$bob" "$5")"
    check "  delivered" 0 "$(drain_alice)"
    check "  Bob cached it, arrived by $name, signature verified" "$name 1" "$(bob_arrival "$5")"
    check "  Bob's log: accepted" accepted "$(bob_decision "$alice" | cut -d'|' -f1)"
}

# clear_refused NAME ALICE_ADDR BOB_ADDR FORCE_VIA [WAIT]
clear_refused() {
    local name=$1 alice=$2 bob=$3 via=$4 ka kb n
    echo "# $name: clear key exchange refused"
    ka=$(alice_key "$bob")
    kb=$(bob_key "$alice")
    set +e; out=$("$BIN/cmr-keyx" --state "$AS" init "$bob" --clear 2>&1); rc=$?; set -e
    check "$name: cmr-keyx init --clear is refused up front (64)" 64 "$rc"
    check_contains "  saying why" "a clear key may only travel over HTTPS or SSH (A5.3)" "$out"
    check "  nothing queued" 0 "$(sql "$AS" "select count(*) from outbox where dest = '$bob'")"
    check "  Alice's key unchanged" "$ka" "$(alice_key "$bob")"
    n=$(bob_decisions "$alice")
    set +e; "$BIN/cmr-keyx" --state "$AS" init "$bob" --clear --via "$via" >/dev/null; rc=$?; set -e
    check "forced with --via $via: queued" 0 "$rc"
    check "  Alice now holds a new key for Bob" yes "$([ "$(alice_key "$bob")" != "$ka" ] && echo yes || echo no)"
    rc=$(drain_alice)
    echo "# (Alice's outbox run: exit $rc)"
    WAIT_TRIES=${5:-50} wait_for $((n + 1)) bob_decisions "$alice" || true
    check "  it reached Bob, who logged one decision" $((n + 1)) "$(bob_decisions "$alice")"
    # Refused either as a clear key over an insecure channel, or (when Alice's key is still
    # provisional on her side, so her control message goes unsigned: docs/keyx.md) as an
    # unsigned exchange from a peer Bob holds an established key for.
    d=$(bob_decision "$alice")
    check_contains "  refused as a clear key over $name" "rejected|$name|key exchange (clear) refused: " "$d"
    check "  for being insecure or unsigned" yes \
        "$(grep -qE 'not secure|unsigned key exchange from a peer we share a key with' <<<"$d" && echo yes || echo no)"
    check "  Bob's key for Alice unchanged ($kb)" "$kb" "$(bob_key "$alice")"
    check "  nothing cached" 0 "$(bob_cached_keyx)"
    check_contains "  cmr-recv logged the refusal" "key exchange (clear) refused" "$(grep -F "$alice" "$BLOG" || true)"
}

clear_works ssh "$ALICE_SSH" "$BOB_SSH" \
    "Bob keeps notes on the moons of Saturn: Titan, Enceladus, Mimas, Iapetus and Rhea." \
    "How many moons of Saturn are larger than Titan, Enceladus, Mimas, Iapetus or Rhea?" 1
clear_works https "$ALICE_HTTPS" "$BOB_HTTPS" \
    "Bob collects sourdough bread recipes: rye starter, hydration, levain and long proofing." \
    "Which sourdough bread recipe uses a rye starter, high hydration and a long levain proofing?" 2

echo "# http: a DH exchange over plain HTTP, unsigned first contact"
history "$BOB_HTTP" "Bob repairs vintage mechanical typewriters: ribbons, platens, carriages and keys." 3
check "Alice holds no key for Bob's http address yet" none "$(alice_key "$BOB_HTTP")"
"$BIN/cmr-keyx" --state "$AS" init "$BOB_HTTP" --dh >/dev/null
check "the request is unsigned" 0 "$(sql "$AS" "select cast(substr(bytes, 1, 1) as text) from outbox where dest = '$BOB_HTTP'")"
check "Alice's cron run delivers the request over HTTP" 0 "$(drain_alice)"
check_contains "  Bob answered it" "key-exchange|http|" "$(bob_decision "$ALICE_HTTP")"
check "  Bob's reply waits in his outbox for Alice's http address" "$ALICE_HTTP 0" \
    "$(bsql "select dest || ' ' || cast(substr(bytes, 1, 1) as text) from outbox")"
check "Bob's cron run delivers the reply over HTTP" 0 "$(drain_bob)"
ka=$(alice_key "$BOB_HTTP")
check "  Alice holds a key now" yes "$([ "$ka" != none ] && echo yes || echo no)"
check "  the same key as Bob" "$ka" "$(bob_key "$ALICE_HTTP")"
check_contains "  Alice's log: the reply completed the exchange" "key-exchange|http|" \
    "$(sql "$AS" "select outcome || '|' || via || '|' from log where sender = '$BOB_HTTP' order by id desc limit 1")"
check "Alice's forward to Bob is signed" 1 "$(signed_post "$ALICE_HTTP" "$BOB_HTTP" \
    "Who repairs vintage mechanical typewriters with worn ribbons, platens and carriages?")"
check "  delivered" 0 "$(drain_alice)"
check "  Bob cached it, arrived by http, signature verified" "http 1" "$(bob_arrival "mechanical typewriters with worn")"

clear_refused http "$ALICE_HTTP" "$BOB_HTTP" https
check "  Alice's row is dead-lettered with Bob's answer (HTTP 400)" 1 \
    "$(sql "$AS" "select count(*) from outbox where dest = '$BOB_HTTP' and state = 'dead' and last_error like '%400%'")"
clear_refused udp "$ALICE_UDP" "$BOB_UDP" ssh 100
clear_refused mail "$ALICE_MAIL" "$BOB_MAIL" ssh 150
mail_sent() { grep -q 'to=<bob@cmr.test>.*status=sent' "$MAILLOG" && echo yes || echo no; }
WAIT_TRIES=50 wait_for yes mail_sent || true
check "Postfix delivered the mail to the pipe (status=sent)" yes "$(mail_sent)"

if [ "$FAILS" -gt 0 ]; then
    echo "# Postfix log:"; sed 's/^/#   /' "$MAILLOG" | tail -20
    echo "# Bob's receiver log:"; sed 's/^/#   /' "$BLOG" | tail -20
fi
echo "# Bob's key-exchange state:"
as_bob "$BIN/cmr-keyx" --state "$BS" list | sed 's/^/#   /'
summary
