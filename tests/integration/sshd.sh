#!/bin/bash
# SSH through a real sshd on loopback: a generated key in authorized_keys with a forced
# command `cmr-recv --ssh --peer ... --tag bob`, the system ssh client in batch mode run by
# cmr-send; whatever command the client asks for is never executed; a malformed message
# is refused (65, permanent) with no state change; with sshd stopped the outbox defers
# and, once sshd is back, delivers every queued message exactly once.
source "$(dirname "$0")/lib-mailudp.sh"
need_packages openssh-server openssh-client sqlite3 python3
build
ensure_user cmrtest

PORT=$(free_port)
HOME_B=$(getent passwd cmrtest | cut -d: -f6)
RS="$WORK/bob/state.sqlite"
SS="$WORK/alice.sqlite"
LOG="$WORK/bob/recv.log"
mkdir -p "$WORK/bob" && chown cmrtest "$WORK/bob"
mkdir -p /run/sshd
init_state "$RS" "ssh://cmrtest@127.0.0.1:$PORT/bob" cmrtest

ssh-keygen -q -t ed25519 -N '' -f "$WORK/hostkey"
ssh-keygen -q -t ed25519 -N '' -f "$WORK/alice_key" -C alice
mkdir -p "$WORK/keys"
FORCED="$BIN/cmr-recv --ssh --peer ssh://alice@127.0.0.1/alice --tag bob --state $RS --log $LOG"
echo "restrict,command=\"$FORCED\" $(cat "$WORK/alice_key.pub")" >"$WORK/keys/cmrtest"
chmod 644 "$WORK/keys/cmrtest"
echo "[127.0.0.1]:$PORT $(cat "$WORK/hostkey.pub")" >"$WORK/known_hosts"

cat >"$WORK/sshd_config" <<CONF
Port $PORT
ListenAddress 127.0.0.1
HostKey $WORK/hostkey
PidFile $WORK/sshd.pid
AuthorizedKeysFile $WORK/keys/%u
PasswordAuthentication no
KbdInteractiveAuthentication no
PubkeyAuthentication yes
UsePAM no
StrictModes no
AllowUsers cmrtest
LogLevel VERBOSE
CONF

start_sshd() {
    /usr/sbin/sshd -f "$WORK/sshd_config" -D -E "$WORK/sshd.log" &
    SPID=$!
    for _ in $(seq 50); do
        ss -ltn 2>/dev/null | grep -q "127.0.0.1:$PORT " && return 0
        sleep 0.1
    done
    echo "sshd did not listen on $PORT"; cat "$WORK/sshd.log"; return 1
}
stop_sshd() { kill "$SPID" 2>/dev/null; wait "$SPID" 2>/dev/null || true; }
at_exit 'stop_sshd'
start_sshd

SEND=("$BIN/cmr-send" --allow 127.0.0.0/8 --ssh-identity "$WORK/alice_key" --ssh-option "UserKnownHostsFile=$WORK/known_hosts" --timeout 20)
DEST="ssh://cmrtest@127.0.0.1:$PORT/bob"

echo "# cmr-send --to ssh://"
make_msg "$WORK/m1" ssh://alice@127.0.0.1/alice "over ssh"
set +e; "${SEND[@]}" --to "$DEST" "$WORK/m1"; rc=$?; set -e
check "cmr-send --to ssh:// exits 0" 0 "$rc"
check "bob's cache holds it" 1 "$(cache_has "$RS" "over ssh")"
check "  tagged as arrived by ssh" ssh "$(sql "$RS" "select via from cache where id=1")"
set +e; "${SEND[@]}" --to "$DEST" "$WORK/m1"; rc=$?; set -e
check "sending it again is idempotent (duplicate, exit 0)" 0 "$rc"
check "  still one copy" 1 "$(cache_count "$RS")"

echo "# the forced command is the only thing that runs"
set +e
out=$(ssh -p "$PORT" -i "$WORK/alice_key" -o BatchMode=yes -o UserKnownHostsFile="$WORK/known_hosts" \
    -T cmrtest@127.0.0.1 "touch $WORK/pwned" </dev/null 2>&1); rc=$?
set -e
check "a client asking for another command is refused (64)" 64 "$rc"
check "  and it was not run" no "$([ -e "$WORK/pwned" ] && echo yes || echo no)"
check_contains "  with a clear message" "this forced command serves tag \"bob\"" "$out"

echo "# bad input over ssh: clear answer, no state change"
before=$(cache_count "$RS")
printf 'this is not a CMR message\r\n' >"$WORK/bad"
set +e; err=$("${SEND[@]}" --to "$DEST" - <"$WORK/bad" 2>&1); rc=$?; set -e
check "cmr-send refuses a malformed file before sending (65)" 65 "$rc"
set +e
err=$(ssh -p "$PORT" -i "$WORK/alice_key" -o BatchMode=yes -o UserKnownHostsFile="$WORK/known_hosts" \
    -T cmrtest@127.0.0.1 bob <"$WORK/bad" 2>&1); rc=$?
set -e
check "the receiver answers a malformed message with 65" 65 "$rc"
check_contains "  naming what is wrong and where" "message 1: malformed message: line 1, byte 0: signature version" "$err"
check "  nothing cached" "$before" "$(cache_count "$RS")"

echo "# outbox: sshd down for a while, then back"
stop_sshd
"$BIN/cmr-send" --state "$SS" --list >/dev/null
for i in $(seq 0 9); do
    make_msg "$WORK/q$i" ssh://alice@127.0.0.1/alice "queued over ssh $i" "2021/01/01 00:00:0$i"
    sqlite3 "$SS" "INSERT INTO outbox(dest, bytes, msg_key, created, attempts, next_attempt, state)
        VALUES ('$DEST', readfile('$WORK/q$i'), cast('k$i' as blob), strftime('%Y-%m-%d %H:%M:%f','now'), 0,
                strftime('%Y-%m-%d %H:%M:%f','now'), 'queued')"
done
set +e; "${SEND[@]}" --state "$SS" --outbox --backoff-base 0.5 2>"$WORK/send.err"; rc=$?; set -e
check "outbox run with sshd down exits 75" 75 "$rc"
check_contains "  ssh's reason is kept" "Connection refused" "$(sql "$SS" "select last_error from outbox where attempts > 0")"
check "  nothing sent" 0 "$(sql "$SS" "select count(*) from delivered")"
start_sshd
sleep 1
for i in $(seq 10); do
    set +e; "${SEND[@]}" --state "$SS" --outbox --backoff-base 0.5 2>>"$WORK/send.err"; rc=$?; set -e
    [ "$rc" = 0 ] && break
    sleep 1
done
check "outbox drained once sshd is back" 0 "$rc"
check "all 10 rows sent" 10 "$(sql "$SS" "select count(*) from delivered")"
check "bob's cache holds each one" 10 "$(cache_has "$RS" "queued over ssh")"
check "  no duplicates" 0 "$(sql "$RS" "select count(*) from (select bytes from cache group by bytes having count(*) > 1)")"

summary
