#!/bin/bash
# A4.4 UDP through a real xinetd on loopback: cmr-recv --udp as a `dgram wait` service
# (the socket is its fd 0), fed by cmr-send --to and by cmr-send --outbox; bad datagrams
# (wrong tag, oversized, not a message) are dropped and change nothing; a receiver that is
# down for a while gets every queued message once it is back, once each.
source "$(dirname "$0")/lib-mailudp.sh"
need_packages xinetd sqlite3 python3
build
ensure_user cmrtest

PORT=$(free_port udp)
RS="$WORK/bob/state.sqlite"      # receiver's state (owned by the service user)
SS="$WORK/alice.sqlite"          # sender's state (outbox)
LOG="$WORK/bob/recv.log"
mkdir -p "$WORK/bob" && chown cmrtest "$WORK/bob"
DEST="udp://127.0.0.1:$PORT/bob"
init_state "$RS" "$DEST" cmrtest

cat >"$WORK/xinetd.conf" <<CONF
defaults
{
    instances = 10
}
service cmr-udp
{
    type        = UNLISTED
    socket_type = dgram
    protocol    = udp
    bind        = 127.0.0.1
    port        = $PORT
    wait        = yes
    user        = cmrtest
    server      = $BIN/cmr-recv
    server_args = --udp --tag bob --idle 2 --max-datagram 4096 --state $RS --log $LOG
}
CONF

start_xinetd() {
    xinetd -f "$WORK/xinetd.conf" -pidfile "$WORK/xinetd.pid" -dontfork -filelog "$WORK/xinetd.log" &
    XPID=$!
    for _ in $(seq 50); do
        ss -lun 2>/dev/null | grep -q "127.0.0.1:$PORT " && return 0
        sleep 0.1
    done
    echo "xinetd did not bind udp $PORT"; return 1
}
stop_xinetd() { kill "$XPID" 2>/dev/null; wait "$XPID" 2>/dev/null || true; }
at_exit 'stop_xinetd'
start_xinetd

echo "# cmr-send --to udp://"
make_msg "$WORK/m1" mailto:alice@example.org "over udp"
"$BIN/cmr-send" --allow 127.0.0.0/8 --to "$DEST" "$WORK/m1"
check "cmr-send --to exits 0" 0 $?
wait_for 1 cache_count "$RS" || true
check "the message reached bob's cache via xinetd" 1 "$(cache_has "$RS" "over udp")"
check "  tagged as arrived by udp" udp "$(sql "$RS" "select via from cache where id=1")"

echo "# bad datagrams: logged, dropped, no state change"
before=$(cache_count "$RS")
make_msg "$WORK/m2" mailto:alice@example.org "wrong tag"
"$BIN/cmr-send" --allow 127.0.0.0/8 --to "udp://127.0.0.1:$PORT/carol" "$WORK/m2"
python3 - "$PORT" <<'PY'
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
body = b"x" * 5000
msg = b"0\r\n2020/01/01 00:00:00 mailto:a@example.org\r\n\r\n%d\r\n%s" % (len(body), body)
s.sendto(b"bob\n" + msg, ("127.0.0.1", int(sys.argv[1])))      # over --max-datagram 4096
s.sendto(b"no tag line at all", ("127.0.0.1", int(sys.argv[1])))
s.sendto(b"bob\nnot a cmr message", ("127.0.0.1", int(sys.argv[1])))
PY
sleep 3
check "nothing cached from bad datagrams" "$before" "$(cache_count "$RS")"
check_contains "wrong tag is logged" 'tag "carol" is not ours ("bob")' "$(cat "$LOG")"
check_contains "oversized is logged" "oversized datagram: 5057 bytes, limit 4096" "$(cat "$LOG")"
check_contains "missing tag is logged" "no \`tag LF\` prefix" "$(cat "$LOG")"
check_contains "malformed is logged" "malformed message" "$(cat "$LOG")"

echo "# the sender refuses what cannot fit in one datagram"
python3 -c "
import sys
b = b'y' * 65500
sys.stdout.buffer.write(b'0\r\n2020/01/01 00:00:00 mailto:a@example.org\r\n\r\n%d\r\n%s' % (len(b), b))" >"$WORK/big"
set +e
err=$("$BIN/cmr-send" --allow 127.0.0.0/8 --to "$DEST" "$WORK/big" 2>&1); rc=$?
set -e
check "oversized send exits 69" 69 "$rc"
check_contains "  and says why" "over the 65507-byte UDP limit" "$err"

echo "# outbox: receiver down for a while, then back"
stop_xinetd
sleep 0.5
python3 - "$SS" "$DEST" "$BIN" <<'PY'
import sqlite3, subprocess, sys, time
state, dest, bindir = sys.argv[1:4]
# Create the state file (schema) through the tool, then queue 20 forwards.
subprocess.run([bindir + "/cmr-send", "--state", state, "--list"], check=True, stdout=subprocess.DEVNULL)
c = sqlite3.connect(state)
for i in range(20):
    body = b"queued message %02d" % i
    m = b"0\r\n2021/01/01 00:00:%02d mailto:alice@example.org\r\n\r\n%d\r\n%s" % (i, len(body), body)
    c.execute("INSERT INTO outbox(dest, bytes, msg_key, created, attempts, next_attempt, state) "
              "VALUES (?, ?, ?, strftime('%Y-%m-%d %H:%M:%f','now'), 0, "
              "strftime('%Y-%m-%d %H:%M:%f','now'), 'queued')", (dest, m, b"k%d" % i))
c.commit()
PY
set +e
"$BIN/cmr-send" --allow 127.0.0.0/8 --state "$SS" --outbox --backoff-base 0.5 2>"$WORK/send.err"; rc=$?
set -e
check "outbox run while bob is down exits 75" 75 "$rc"
check_contains "  and says the port is unreachable" "port unreachable" "$(cat "$WORK/send.err")"
check "  nothing marked sent" 0 "$(sql "$SS" "select count(*) from delivered")"
sleep 1
set +e; "$BIN/cmr-send" --allow 127.0.0.0/8 --state "$SS" --outbox --backoff-base 0.5 2>/dev/null; rc=$?; set -e
check "a second run while down: 75 again" 75 "$rc"
start_xinetd
sleep 1.2
# Runs as cron would, until nothing is deferred (bounded).
for i in $(seq 10); do
    set +e; "$BIN/cmr-send" --allow 127.0.0.0/8 --state "$SS" --outbox --backoff-base 0.5 2>>"$WORK/send.err"; rc=$?; set -e
    [ "$rc" = 0 ] && break
    sleep 1
done
check "outbox drained once bob is back" 0 "$rc"
check "all 20 rows sent" 20 "$(sql "$SS" "select count(*) from delivered")"
WAIT_TRIES=100 wait_for 21 cache_count "$RS" || true
check "bob's cache holds each queued message" 20 "$(cache_has "$RS" "queued message")"
dups=$(sql "$RS" "select count(*) from (select bytes from cache group by bytes having count(*) > 1)")
check "  no duplicates" 0 "$dups"
for i in 00 07 19; do
    check "  message $i is there" 1 "$(cache_has "$RS" "queued message $i")"
done

summary
