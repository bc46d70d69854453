#!/bin/bash
# Interoperation with the other implementation of the protocol: cmr-peer and its compressor
# worker cmr-compressor (crates.io, pinned below), run on loopback next to cmr, whose
# cmr-recv serves HTTP, HTTPS and UDP behind a real xinetd. The peer is driven through its
# documented interfaces: the config file written by `cmr-peer init-config`, `cmr-peer run`
# (with its dashboard API, enabled in that file, to start key exchanges, send messages and
# read its cache, peers and events) and `cmr-peer receive-stdin`. Each check reads the
# other side's own answer, cache or events to prove acceptance.
#
# If the pinned version cannot be installed, built or run, the script fails and says why.
source "$(dirname "$0")/lib-http.sh"
need_packages xinetd curl netcat-openbsd python3 openssl clang iproute2

PEER_VERSION=0.2.0
CARGO_BIN="${CARGO_INSTALL_ROOT:-${CARGO_HOME:-$HOME/.cargo}}/bin"

installed() { cargo install --list 2>/dev/null | grep -q "^$1 v$PEER_VERSION:"; }
if ! installed cmr-peer || ! installed cmr-compressor; then
    echo "# installing cmr-peer and cmr-compressor $PEER_VERSION (C++ part with clang, no LTO)"
    if ! nice -n 10 env CC=clang CXX=clang++ CARGO_PROFILE_RELEASE_LTO=false \
        cargo install --locked "cmr-peer@$PEER_VERSION" "cmr-compressor@$PEER_VERSION" \
        >"$WORK/install.log" 2>&1; then
        tail -40 "$WORK/install.log"
        echo "not ok - cannot build cmr-peer/cmr-compressor $PEER_VERSION (log above)"
        echo "# 0 passed, 1 failed"
        exit 1
    fi
fi
PEER="$CARGO_BIN/cmr-peer"
COMPRESSOR="$CARGO_BIN/cmr-compressor"
for b in "$PEER" "$COMPRESSOR"; do
    [ -x "$b" ] || { echo "not ok - $b missing after install"; echo "# 0 passed, 1 failed"; exit 1; }
done
build

# --- the other implementation ----------------------------------------------------------
AUTH=operator:interop-test

# peer_config NAME HTTP_PORT UDP_PORT [key=value...]: a config from `cmr-peer init-config`,
# on loopback, dashboard on (with credentials), the compressor by full path. Options:
# https=PORT (with $WORK/peer.pem), handshake=1, key=ADDRESS:HEX (a static key).
peer_config() {
    local name=$1 http=$2 udp=$3
    shift 3
    "$PEER" init-config --config "$WORK/$name.toml" >/dev/null
    python3 - "$WORK/$name.toml" "$http" "$udp" "$COMPRESSOR" "$AUTH" "$WORK" "$@" <<'PY'
import sys
path, http, udp, compressor, auth, work, *opts = sys.argv[1:]
s = open(path).read()
def sub(old, new):
    global s
    assert old in s, old
    s = s.replace(old, new, 1)
sub('local_address = "http://127.0.0.1:8080/"', f'local_address = "http://127.0.0.1:{http}/"')
sub('bind = "0.0.0.0:8080"', f'bind = "127.0.0.1:{http}"')
sub('bind = "0.0.0.0:9000"', f'bind = "127.0.0.1:{udp}"')
sub('command = "cmr-compressor"', f'command = "{compressor}"')
user, pw = auth.split(":")
sub('[dashboard]\nenabled = false', '[dashboard]\nenabled = true')
sub('# auth_username = "operator"', f'auth_username = "{user}"')
sub('# auth_password = "change-me"', f'auth_password = "{pw}"')
# every message matches every cached one: the test decides what goes where
s += '\n[policy_tuning]\nmax_match_distance = 1000000.0\n'
for o in opts:
    k, v = o.split("=", 1)
    if k == "https":
        s += (f'\n[listen.https]\nbind = "127.0.0.1:{v}"\npath = "/"\n'
              f'cert_path = "{work}/peer.pem"\nkey_path = "{work}/peer.key"\n')
    elif k == "handshake":
        sub('prefer_http_handshake = false', 'prefer_http_handshake = true')
    elif k == "key":
        addr, hexkey = v.rsplit(":", 1)
        s += f'\n[[static_keys]]\npeer = "{addr}"\nhex_key = "{hexkey}"\n'
open(path, "w").write(s)
PY
}

# start_peer NAME PORT: `cmr-peer run` in the background, its output in $WORK/NAME.log.
start_peer() {
    (cd "$WORK" && exec "$PEER" run --config "$WORK/$1.toml") >"$WORK/$1.log" 2>&1 &
    echo $! >"$WORK/$1.xpid"
    for _ in $(seq 100); do
        nc -z 127.0.0.1 "$2" 2>/dev/null && return 0
        kill -0 "$(cat "$WORK/$1.xpid")" 2>/dev/null || break
        sleep 0.1
    done
    cat "$WORK/$1.log"
    echo "not ok - cmr-peer $PEER_VERSION ($1) does not run (log above)"
    echo "# $PASSES passed, $((FAILS + 1)) failed"
    exit 1
}

api() { # api PORT PATH [JSON]: the peer's dashboard API; prints the JSON answer
    if [ $# -ge 3 ]; then
        curl -s -u "$AUTH" -H 'Content-Type: application/json' --data "$3" \
            "http://127.0.0.1:$1/_cmr/api/$2"
    else
        curl -s -u "$AUTH" "http://127.0.0.1:$1/_cmr/api/$2"
    fi
}

# peer_cache_has PORT TEXT: 1 when the peer's cache holds a message whose body has TEXT
peer_cache_has() {
    api "$1" cache | python3 -c '
import json, sys
d = json.load(sys.stdin)["data"]
print(sum(1 for e in d["entries"] if sys.argv[1] in e["body_preview"]))' "$2"
}

# peer_has_key PORT ADDRESS: true/false, the peer's own view of whether it shares a key
peer_has_key() {
    api "$1" peers | python3 -c '
import json, sys
rows = [p for p in json.load(sys.stdin)["data"] if p["peer"] == sys.argv[1]]
print("true" if rows and rows[0]["has_shared_key"] else "false")' "$2"
}

# peer_drop_reasons PORT: the reasons of the messages the peer dropped, as it logged them
peer_drop_reasons() {
    api "$1" events | python3 -c '
import json, sys
for e in json.load(sys.stdin)["data"]:
    if e.get("drop_reason"):
        print(e["drop_reason"])'
}

# --- cmr ---------------------------------------------------------------------------------
PP=$(free_port)   # the peer: HTTP (and its dashboard)
PPS=$(free_port)  # the peer: HTTPS
PPU=$(free_port)  # the peer: UDP
PH=$(free_port)   # a second peer that sends with the A4.5 handshake
PHU=$(free_port)
P="http://127.0.0.1:$PP/"
PS="https://127.0.0.1:$PPS/"
PU="udp://127.0.0.1:$PPU/cmr"
PHA="http://127.0.0.1:$PH/"

openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=127.0.0.1 \
    -addext subjectAltName=IP:127.0.0.1 -addext basicConstraints=critical,CA:FALSE \
    -keyout "$WORK/peer.key" -out "$WORK/peer.pem" 2>/dev/null

# One cmr router per exchange, each at its own address, each cmr-recv --http behind xinetd:
# c1 shares a static key with the peer, c2 runs RSA started by cmr, c3 RSA started by the
# peer, c4 DH started by cmr, c5 a clear key over HTTPS, c6 the A4.5 handshake and UDP.
declare -A PORT ADDR
for c in c1 c2 c3 c4 c5 c6; do
    PORT[$c]=$(free_port)
    ADDR[$c]="http://127.0.0.1:${PORT[$c]}/"
done
CU=$(free_port)
CUA="udp://127.0.0.1:$CU/cmr"
{
    for c in c1 c2 c3 c4 c5 c6; do
        read -r -a R <<<"$(recv_cmd "$WORK/$c.sqlite" "$WORK/$c.recv.log")"
        service "$c" "${PORT[$c]}" "${R[0]}" "${R[@]:1}"
    done
} >"$WORK/x.services"
# cmr-recv --udp as a `dgram wait` service, in an xinetd of its own (start_xinetd waits
# for TCP ports)
cat >"$WORK/u.conf" <<SVC
defaults
{
    instances = 10
}
service c6-udp
{
    type = UNLISTED
    socket_type = dgram
    protocol = udp
    wait = yes
    user = root
    bind = 127.0.0.1
    port = $CU
    server = $BIN/cmr-recv
    server_args = --udp --tag cmr --idle 2 --state $WORK/c6.sqlite --log $WORK/c6.recv.log
}
SVC
for c in c1 c2 c3 c4 c5 c6; do
    init_state "$WORK/$c.sqlite" "${ADDR[$c]}"
    # loopback peers are allowed to be sent to (relay policy; older states lack the setting)
    "$BIN/cmr-route" --state "$WORK/$c.sqlite" policy send_allow 127.0.0.0/8 >/dev/null
done
"$BIN/cmr-route" --state "$WORK/c6.sqlite" init --address "${ADDR[c6]}" --address "$CUA" >/dev/null
start_xinetd x
xinetd -f "$WORK/u.conf" -pidfile "$WORK/u.pid" -dontfork -filelog "$WORK/u.xinetd.log" &
echo $! >"$WORK/u.xpid"
for _ in $(seq 50); do
    ss -lun 2>/dev/null | grep -q "127.0.0.1:$CU " && break
    sleep 0.1
done

K1=$(python3 -c 'import os; print(os.urandom(32).hex())')
peer_config peer "$PP" "$PPU" "https=$PPS" "key=${ADDR[c1]}:$K1"
start_peer peer "$PP"
peer_config hs "$PH" "$PHU" handshake=1
start_peer hs "$PH"

cmr() { # cmr NAME TOOL ARGS...: a cmr tool on router NAME's state file
    local c=$1 tool=$2
    shift 2
    "$BIN/cmr-$tool" --state "$WORK/$c.sqlite" "$@"
}
msg() { # msg FILE SENDER BODY: a fresh unsigned message
    make_msg "$@"
}
recv_cached() { # recv_cached NAME TEXT [COLUMN]
    cached_with "$WORK/$1.sqlite" "$2" "${3:-count(*)}"
}

echo "# DH: the generator cmr sends is a primitive root of p (A5.2)"
cmr c4 keyx init "$P" --dh --print >"$WORK/dh.req"
python3 - "$WORK/dh.req" <<'PY' >"$WORK/dh.check"
import sys
body = open(sys.argv[1], "rb").read().split(b"\r\n\r\n", 1)[1].split(b"\r\n", 1)[1].decode()
g, p, a = (int(x, 16) for x in body[len("DH key exchange request="):-1].split(","))
q = (p - 1) // 2
print("primitive" if pow(g, 2, p) != 1 and pow(g, q, p) != 1 else "not primitive", g)
PY
check "cmr-keyx init --dh --print: g is a primitive root of p" "primitive 11" "$(cat "$WORK/dh.check")"

echo "# c1 -> peer over HTTP, signed with a shared static key"
cmr c1 keyx set "$P" --key-hex "$K1" >/dev/null
msg "$WORK/t1" "http://127.0.0.1:9/client" "Jupiter is the largest planet in the solar system, a gas giant."
check "the peer caches a client's message (its answer: 200)" 200 \
    "$(curl -s -o /dev/null -w '%{http_code}' --data-binary "@$WORK/t1" "$P")"
msg "$WORK/q1" "${ADDR[c1]}" "Which planet is the largest in the solar system? A gas giant?"
"$BIN/cmr-sign" --key-hex "$K1" "$WORK/q1" >"$WORK/q1.signed"
rc=0; "$BIN/cmr-send" --state "$WORK/c1.sqlite" --to "$P" "$WORK/q1.signed" 2>"$WORK/err" || rc=$?
check "cmr-send of the signed message: accepted (exit 0)" 0 "$rc"
check "  in the peer's cache" 1 "$(peer_cache_has "$PP" "Which planet is the largest")"

echo "# peer -> c1 over HTTP, verified"
# The peer matched the question with the client's message and sent that to c1, signed.
for _ in $(seq 50); do [ "$(recv_cached c1 "Jupiter is the largest")" = 1 ] && break; sleep 0.1; done
check "c1 cached the peer's forward" 1 "$(recv_cached c1 "Jupiter is the largest")"
check "  from the peer" "$P" "$(recv_cached c1 "Jupiter is the largest" sender)"
check "  signed, and the signature verified" 1 "$(recv_cached c1 "Jupiter is the largest" signed)"

echo "# a refusal's reason reaches cmr-send's diagnostics"
msg "$WORK/q2" "${ADDR[c1]}" "Signed with the wrong key, so the peer refuses it."
"$BIN/cmr-sign" --key-hex 00112233445566778899aabbccddeeff "$WORK/q2" >"$WORK/q2.signed"
rc=0; "$BIN/cmr-send" --state "$WORK/c1.sqlite" --to "$P" "$WORK/q2.signed" 2>"$WORK/err" || rc=$?
check "wrong key: permanent (69)" 69 "$rc"
check "  with the peer's X-CMR-Drop-Reason" yes \
    "$(grep -q 'HTTP 400: signature verification failed' "$WORK/err" && echo yes || echo no)"

echo "# a duplicate answer is delivery, not a dead letter"
rc=0; "$BIN/cmr-send" --state "$WORK/c1.sqlite" --to "$P" "$WORK/q1.signed" 2>"$WORK/err" || rc=$?
check "re-sending an accepted message: delivered (exit 0)" 0 "$rc"
check "  the peer answered 'duplicate'" yes "$(peer_drop_reasons "$PP" | grep -q 'duplicate message id' && echo yes || echo no)"
# The real case: the peer answers only after its own onward forwards. A client that accepts
# connections and never answers holds it (5 s per try, 3 tries); cmr gives up first, and its
# retry finds the message held.
python3 - "$WORK/sink.port" <<'PY' &
import socket, sys, time
s = socket.socket(); s.bind(("127.0.0.1", 0)); s.listen(64)
open(sys.argv[1], "w").write(str(s.getsockname()[1]))
conns = []
s.settimeout(1)
end = time.time() + 600
while time.time() < end:
    try:
        conns.append(s.accept()[0])
    except OSError:
        pass
PY
echo $! >"$WORK/sink.xpid"
for _ in $(seq 50); do [ -s "$WORK/sink.port" ] && break; sleep 0.1; done
SINK="http://127.0.0.1:$(cat "$WORK/sink.port")/slow"
msg "$WORK/t3" "$SINK" "Saturn has the most visible rings of any planet in the solar system."
# (the peer keeps the message even though this client stops waiting for its answer)
curl -s -o /dev/null --max-time 3 --data-binary "@$WORK/t3" "$P" || true
check "  the peer holds the silent client's message" 1 "$(peer_cache_has "$PP" "most visible rings of any")"
# c1's own router posts the question to its best peer, the one it heard from: a signed
# forward in c1's outbox.
printf 'Which planet has the most visible rings in the solar system?' | cmr c1 post >/dev/null
check "c1 queued the question for the peer" 1 "$(sql "$WORK/c1.sqlite" "select count(*) from outbox where dest = '$P'")"
rc=0; cmr c1 send --outbox --for "$P" --backoff-base 0 --timeout 3 2>"$WORK/err" || rc=$?
check "the peer answered too late: deferred (75), not dead" 75 "$rc"
check "  the row waits in the outbox" "queued|1" "$(sql "$WORK/c1.sqlite" "select state, attempts from outbox where dest = '$P'")"
check "  yet the peer has it" 1 "$(peer_cache_has "$PP" "most visible rings in the")"
sleep 20  # the peer is done with its forwards to the silent client
rc=0; cmr c1 send --outbox --for "$P" --backoff-base 0 2>"$WORK/err" || rc=$?
check "the retry: the peer answers 'duplicate', so delivered (0)" 0 "$rc"
check "  nothing left for the peer, nothing dead" "0|0" "$(sql "$WORK/c1.sqlite" "select (select count(*) from outbox where dest = '$P'), (select count(*) from outbox where state = 'dead')")"
kill "$(cat "$WORK/sink.xpid")" 2>/dev/null || true

echo "# RSA key exchange started by cmr (c2), then signed messages both ways"
cmr c2 keyx init "$P" --rsa >/dev/null
rc=0; cmr c2 send --outbox 2>"$WORK/err" || rc=$?
check "c2's RSA request: accepted by the peer (exit 0)" 0 "$rc"
for _ in $(seq 50); do [ "$(peer_has_key "$PP" "${ADDR[c2]}")" = true ] && break; sleep 0.1; done
check "  the peer holds a key for c2" true "$(peer_has_key "$PP" "${ADDR[c2]}")"
check "  c2 holds a key for the peer (the reply arrived)" yes \
    "$(cmr c2 keyx show "$P" --json | grep -q '"has_key": *true' && echo yes || echo no)"

echo "# RSA key exchange started by the peer (c3)"
api "$PP" key-exchange "{\"peer\":\"${ADDR[c3]}\",\"mode\":\"rsa\"}" >"$WORK/kx3"
check "the peer sent its RSA request" true "$(python3 -c 'import json,sys; print(str(json.load(open(sys.argv[1]))["ok"]).lower())' "$WORK/kx3")"
rc=0; cmr c3 send --outbox 2>"$WORK/err" || rc=$?
check "c3's RSA reply: accepted by the peer (exit 0)" 0 "$rc"
check "  the peer holds a key for c3" true "$(peer_has_key "$PP" "${ADDR[c3]}")"

echo "# DH key exchange started by cmr (c4)"
cmr c4 keyx init "$P" --dh --replace >/dev/null
rc=0; cmr c4 send --outbox 2>"$WORK/err" || rc=$?
check "c4's DH request (g = 11): accepted by the peer (exit 0)" 0 "$rc"
check "  the peer holds a key for c4" true "$(peer_has_key "$PP" "${ADDR[c4]}")"

echo "# a clear key over HTTPS (c5)"
cmr c5 route peer add "$PS" --options "trust=$WORK/peer.pem" >/dev/null
cmr c5 keyx init "$PS" --clear >/dev/null
rc=0; cmr c5 send --outbox 2>"$WORK/err" || rc=$?
check "c5's clear key over HTTPS: accepted by the peer (exit 0)" 0 "$rc"
check "  the peer holds a key for c5" true "$(peer_has_key "$PP" "${ADDR[c5]}")"

echo "# signed messages verify both ways with each exchanged key"
for c in c2 c3 c4; do
    api "$PP" send "{\"destination\":\"${ADDR[$c]}\",\"body_text\":\"A signed note from the peer to $c about planets and rings.\",\"sign\":true}" >/dev/null
    check "peer -> $c: cached, signed and verified" 1 "$(recv_cached "$c" "from the peer to $c" signed)"
    # cmr's own routing: the post goes to its best peer, the one it heard from, signed.
    printf 'A signed note from %s to the peer about planets and rings.' "$c" | cmr "$c" post >/dev/null
    rc=0; cmr "$c" send --outbox --for "$P" 2>"$WORK/err" || rc=$?
    check "$c -> peer: sent (exit 0)" 0 "$rc"
    # the peer holds a key for c, so it takes only a message whose signature verifies
    check "  in the peer's cache (signed; it requires that of a peer it shares a key with)" 1 \
        "$(peer_cache_has "$PP" "from $c to the peer")"
done

echo "# UDP both ways"
msg "$WORK/u1" "$CUA" "Over UDP from cmr to the peer, about the moons of Mars."
cmr c6 send --to "$PU" "$WORK/u1" 2>"$WORK/err"
check "cmr-send to the peer's udp:// address: exit 0" 0 $?
for _ in $(seq 50); do [ "$(peer_cache_has "$PP" "moons of Mars")" = 1 ] && break; sleep 0.1; done
check "  in the peer's cache" 1 "$(peer_cache_has "$PP" "moons of Mars")"
api "$PP" send "{\"destination\":\"$CUA\",\"body_text\":\"Over UDP from the peer to cmr, about Phobos and Deimos.\"}" >/dev/null
for _ in $(seq 50); do [ "$(recv_cached c6 "Phobos and Deimos")" = 1 ] && break; sleep 0.1; done
check "peer -> cmr over UDP: cached" 1 "$(recv_cached c6 "Phobos and Deimos")"
check "  arrived via udp" udp "$(recv_cached c6 "Phobos and Deimos" via)"

echo "# the A4.5 handshake both ways"
msg "$WORK/h1" "${ADDR[c6]}" "Through the handshake from cmr to the peer, about Venus."
cmr c6 route peer add "$P" --options "handshake=${ADDR[c6]}" >/dev/null
rc=0; cmr c6 send --to "$P" "$WORK/h1" 2>"$WORK/err" || rc=$?
check "cmr -> peer with the handshake: exit 0" 0 "$rc"
check "  the peer fetched it and cached it" 1 "$(peer_cache_has "$PP" "handshake from cmr to the peer")"
check "  cmr's offer was taken" 0 "$(sql "$WORK/c6.sqlite" "select count(*) from handshake_reply")"
api "$PH" send "{\"destination\":\"${ADDR[c6]}\",\"body_text\":\"Through the handshake from the peer to cmr, about Mercury.\"}" >"$WORK/hs"
check "peer -> cmr with the handshake: cached" 1 "$(recv_cached c6 "handshake from the peer to cmr")"
check "  as received from that peer" "$PHA" "$(recv_cached c6 "handshake from the peer to cmr" sender)"

echo "# re-keying while both hold the key: started by cmr, signed with the old key"
key_id() { cmr "$1" keyx show "$P" --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["key_id"])'; }
old_id=$(key_id c3)
cmr c3 keyx init "$P" --rsa >/dev/null
rc=0; cmr c3 send --outbox --for "$P" 2>"$WORK/err" || rc=$?
check "c3's signed RSA request: accepted by the peer (exit 0)" 0 "$rc"
check "  the peer's reply (signed with the old key) set a new key" yes \
    "$([ "$(key_id c3)" != "$old_id" ] && echo yes || echo no)"
api "$PP" send "{\"destination\":\"${ADDR[c3]}\",\"body_text\":\"Signed with the key c3 started, about the Oort cloud.\",\"sign\":true}" >/dev/null
check "  the peer's next signed message verifies with it" 1 "$(recv_cached c3 "Oort cloud" signed)"

echo "# re-keying started by the peer: its request comes unsigned; refused, with the remedy"
old_id=$(key_id c2)
api "$PP" key-exchange "{\"peer\":\"${ADDR[c2]}\",\"mode\":\"rsa\"}" >/dev/null
check "c2 refused it and says what to do" yes \
    "$(grep -q "cmr-keyx forget $P" "$WORK/c2.recv.log" && echo yes || echo no)"
check "  c2 kept its key" "$old_id" "$(key_id c2)"
# cmr-peer keeps exchanged keys in memory: restarted, it has lost them and asks again.
kill "$(cat "$WORK/peer.xpid")" && wait "$(cat "$WORK/peer.xpid")" 2>/dev/null || true
start_peer peer "$PP"
api "$PP" key-exchange "{\"peer\":\"${ADDR[c2]}\",\"mode\":\"rsa\"}" >/dev/null
check "  after the peer's restart, still refused until the operator acts" "$old_id" "$(key_id c2)"
cmr c2 keyx forget "$P" >/dev/null
api "$PP" key-exchange "{\"peer\":\"${ADDR[c2]}\",\"mode\":\"rsa\"}" >/dev/null
rc=0; cmr c2 send --outbox --for "$P" 2>"$WORK/err" || rc=$?
check "after cmr-keyx forget, c2 answers it; the peer accepts (exit 0)" 0 "$rc"
check "  the peer holds a key for c2 again" true "$(peer_has_key "$PP" "${ADDR[c2]}")"
api "$PP" send "{\"destination\":\"${ADDR[c2]}\",\"body_text\":\"Signed with the new key, about the Kuiper belt.\",\"sign\":true}" >/dev/null
check "  its next signed message verifies with the new key" 1 "$(recv_cached c2 "Kuiper belt" signed)"

echo "# receive-stdin: the peer's one-shot ingress reads what cmr forwards"
msg "$WORK/s1" "${ADDR[c6]}" "Piped into cmr-peer receive-stdin by hand."
rc=0; "$PEER" receive-stdin --config "$WORK/peer.toml" --transport ssh <"$WORK/s1" >"$WORK/stdin.out" 2>&1 || rc=$?
check "cmr-peer receive-stdin takes cmr's message (exit 0)" 0 "$rc"

finish
