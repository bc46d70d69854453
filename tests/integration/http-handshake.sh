#!/bin/bash
# A4.5 HTTP handshake between two peers, each served by xinetd on loopback with its own
# state file: Alice (sender) and Bob (receiver).
source "$(dirname "$0")/lib-http.sh"
need_packages xinetd curl netcat-openbsd python3 openssl
build

PA=$(free_port)
PB=$(free_port)
PS=$(free_port)
A="$WORK/alice.sqlite"
B="$WORK/bob.sqlite"
ALICE="http://127.0.0.1:$PA/"
BOB="http://127.0.0.1:$PB/"
read -r -a RA <<<"$(recv_cmd "$A" "$WORK/alice.log")"
read -r -a RB <<<"$(recv_cmd "$B" "$WORK/bob.log")"
# Alice also answers over HTTPS, with a self-signed certificate.
openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=127.0.0.1 \
    -addext subjectAltName=IP:127.0.0.1 -addext basicConstraints=critical,CA:FALSE \
    -keyout "$WORK/alice.key" -out "$WORK/alice.pem" 2>/dev/null
ALICE_TLS="https://127.0.0.1:$PS/"
read -r -a RAS <<<"$(recv_cmd "$A" "$WORK/alice.log" --https "$WORK/alice.pem" "$WORK/alice.key")"
{
    service alice "$PA" "${RA[0]}" "${RA[@]:1}"
    service alice-tls "$PS" "${RAS[0]}" "${RAS[@]:1}"
    service bob "$PB" "${RB[0]}" "${RB[@]:1}"
} >"$WORK/x.services"
init_state "$A" "$ALICE"
init_state "$B" "$BOB"
start_xinetd x

echo "# a message from Alice to Bob through the handshake"
make_msg "$WORK/m1" "$ALICE" "handshake hello"
send_msg "$BOB" "$WORK/m1" --handshake "$ALICE" --state "$A"
check "Alice's send: exit 0" 0 $?
check "Bob cached it" 1 "$(cached_with "$B" "handshake hello")"
check "  as received from Alice" "$ALICE" "$(cached_with "$B" "handshake hello" sender)"
check "Alice's one-time entry is gone" 0 "$(sql "$A" "select count(*) from handshake_reply")"
check "Bob's log names no failure" "" "$(grep -i 'HTTP [45]' "$WORK/bob.log" 2>/dev/null || true)"

make_msg "$WORK/m2" "$ALICE" "second, new key"
send_msg "$BOB" "$WORK/m2" --handshake "$ALICE" --state "$A"
check "a second message: exit 0" 0 $?
check "Bob holds both" 2 "$(cache_count "$B")"


echo "# Alice at an https address: Bob fetches over TLS, trusting her certificate per peer"
make_msg "$WORK/m5" "$ALICE_TLS" "fetched over TLS"
rc=0; send_msg "$BOB" "$WORK/m5" --handshake "$ALICE_TLS" --state "$A" 2>"$WORK/err" || rc=$?
check "Bob does not know Alice's certificate yet: transient (75)" 75 "$rc"
check "  not cached" 0 "$(cached_with "$B" "fetched over TLS")"
python3 - "$B" "$ALICE_TLS" "trust=$WORK/alice.pem" <<'PY'
import sqlite3, sys
db = sqlite3.connect(sys.argv[1])
db.execute("INSERT INTO peers(address, options, configured) VALUES(?, ?, 1) "
           "ON CONFLICT(address) DO UPDATE SET options = excluded.options", (sys.argv[2], sys.argv[3]))
db.commit()
PY
send_msg "$BOB" "$WORK/m5" --handshake "$ALICE_TLS" --state "$A"
check "with the peer option trust=alice.pem: exit 0" 0 $?
check "  cached, arrived via https" https "$(cached_with "$B" "fetched over TLS" via)"

echo "# the handshake authenticates the sender"
"$BIN/cmr-route" policy unsigned reject --state "$B" >/dev/null
make_msg "$WORK/m4" "$ALICE" "unsigned but authenticated"
out=$(curl -s -o /dev/null -w '%{http_code}' --data-binary "@$WORK/m4" "$BOB")
check "with policy unsigned=reject, a plain unsigned POST: 400" 400 "$out"
send_msg "$BOB" "$WORK/m4" --handshake "$ALICE" --state "$A"
check "  the same message through the handshake: exit 0" 0 $?
check "  cached" 1 "$(cached_with "$B" "unsigned but authenticated")"
"$BIN/cmr-route" policy unsigned accept --state "$B" >/dev/null

echo "# refusals"
# The requester's host must resolve to the connecting address (we connect from 127.0.0.1).
out=$(curl -s -o "$WORK/body" -w '%{http_code}' "${BOB}?request=http%3A%2F%2F127.0.0.2%3A$PA%2F&key=abc")
check "sender host not the connecting address: 403" 403 "$out"
check "  says so" yes "$(grep -q 'does not resolve to the connecting address' "$WORK/body" && echo yes || echo no)"
out=$(curl -s -o /dev/null -w '%{http_code}' "${BOB}?request=mailto%3Aa%40b&key=abc")
check "non-http sender: 400" 400 "$out"
out=$(curl -s -o /dev/null -w '%{http_code}' "${BOB}?request=http%3A%2F%2F127.0.0.1%3A$PA%2F")
check "request without key: 400" 400 "$out"
out=$(curl -s -o /dev/null -w '%{http_code}' "${BOB}?request=http%3A%2F%2F127.0.0.1%3A$PA%2F&key=nosuchkey")
check "unknown key (Alice answers 404): 400" 400 "$out"

# A message whose first header line is not the requester.
make_msg "$WORK/m3" "http://mallory.example/" "spoofed sender"
rc=0; send_msg "$BOB" "$WORK/m3" --handshake "$ALICE" --state "$A" 2>"$WORK/err" || rc=$?
check "message not from the requester: permanent (69)" 69 "$rc"
check "  reason given" yes "$(grep -q 'not from the requester' "$WORK/err" && echo yes || echo no)"
check "  not cached" 0 "$(cached_with "$B" "spoofed sender")"
check "  entry withdrawn" 0 "$(sql "$A" "select count(*) from handshake_reply")"

# Alice's reply endpoint serves an entry once, and not after it expires.
python3 - "$A" "$WORK/m1" <<'PY'
import sqlite3, sys, time
db = sqlite3.connect(sys.argv[1])
now = int(time.time())
m = open(sys.argv[2], "rb").read()
db.execute("insert into handshake_reply values('k1', 'x', ?, ?, ?)", (m, now, now + 60))
db.execute("insert into handshake_reply values('k2', 'x', ?, ?, ?)", (m, now - 100, now - 1))
db.commit()
PY
out=$(curl -s -o "$WORK/r1" -D "$WORK/h1" -w '%{http_code}' "${ALICE}?reply=k1")
check "?reply=KEY: 200" 200 "$out"
check "  text/plain" yes "$(grep -qi '^content-type: text/plain' "$WORK/h1" && echo yes || echo no)"
check "  the message" "$(od -An -tx1 <"$WORK/m1")" "$(od -An -tx1 <"$WORK/r1")"
out=$(curl -s -o /dev/null -w '%{http_code}' "${ALICE}?reply=k1")
check "the same key again: 404" 404 "$out"
out=$(curl -s -o /dev/null -w '%{http_code}' "${ALICE}?reply=k2")
check "an expired key: 404" 404 "$out"
check "expired entries purged" 0 "$(sql "$A" "select count(*) from handshake_reply")"

# Bob unreachable: Alice's send is transient and leaves nothing behind.
rc=0; send_msg "http://127.0.0.1:$(free_port)/" "$WORK/m2" --handshake "$ALICE" --state "$A" 2>/dev/null || rc=$?
check "receiver down: transient (75)" 75 "$rc"
check "  entry withdrawn" 0 "$(sql "$A" "select count(*) from handshake_reply")"
finish
