#!/bin/bash
# cron drains the outbox: the documented crontab line, run exactly as cron runs it
# (/bin/sh -c with cron's bare environment), then by the real cron daemon (bounded wait;
# CMR_SKIP_REAL_CRON=1 skips that part). Destination: cmr-recv --udp on loopback.
source "$(dirname "$0")/lib-mailudp.sh"
need_packages cron sqlite3 python3
build

PORT=$(free_port udp)
RS="$WORK/bob.sqlite"
SS="$WORK/alice.sqlite"
SENDLOG="$WORK/send.log"
DEST="udp://127.0.0.1:$PORT/bob"
init_state "$RS" "$DEST"

"$BIN/cmr-recv" --udp --listen "127.0.0.1:$PORT" --tag bob --idle 120 --state "$RS" --log "$WORK/recv.log" &
RPID=$!
at_exit "kill $RPID"

queue() { # queue N..M BODYPREFIX
    "$BIN/cmr-send" --state "$SS" --list >/dev/null
    for i in $(seq "$1" "$2"); do
        make_msg "$WORK/q$i" mailto:alice@example.org "$3 $i" "2021/01/01 00:00:$(printf %02d "$i")"
        sqlite3 "$SS" "INSERT INTO outbox(dest, bytes, msg_key, created, attempts, next_attempt, state)
            VALUES ('$DEST', readfile('$WORK/q$i'), cast('k$i' as blob), strftime('%Y-%m-%d %H:%M:%f','now'), 0,
                    strftime('%Y-%m-%d %H:%M:%f','now'), 'queued')"
    done
}

# The crontab line from docs/transports.md, with this test's paths.
CMD="cmr-send --allow 127.0.0.0/8 --outbox --state $SS --log $SENDLOG"
cat >"$WORK/crontab" <<TAB
PATH=$BIN:/usr/bin:/bin
*/1 * * * * $CMD
TAB

echo "# the crontab command line, run as cron runs it"
queue 1 5 "drained by the cron line"
set +e
env -i HOME="$WORK" LOGNAME=root SHELL=/bin/sh PATH="$BIN:/usr/bin:/bin" /bin/sh -c "$CMD"
rc=$?
set -e
check "exit 0 (everything due delivered)" 0 "$rc"
check "all five rows sent" 5 "$(sql "$SS" "select count(*) from delivered")"
WAIT_TRIES=50 wait_for 5 cache_has "$RS" "drained by the cron line" || true
check "bob's cache holds all five" 5 "$(cache_has "$RS" "drained by the cron line")"
check "a quiet run writes nothing (cron mails any output)" 0 "$(stat -c %s "$SENDLOG" 2>/dev/null || echo 0)"

if [ "${CMR_SKIP_REAL_CRON:-}" != 1 ]; then
    echo "# the real cron daemon (waits at most 75 s for the next minute)"
    queue 6 8 "drained by crond"
    # /etc/cron.d format has a user field.
    sed -E "s|^(\*/1 \* \* \* \*) |\1 root |" "$WORK/crontab" >/etc/cron.d/cmr-test-$$
    chmod 644 /etc/cron.d/cmr-test-$$
    at_exit "rm -f /etc/cron.d/cmr-test-$$"
    STARTED_CRON=no
    if ! pgrep -x cron >/dev/null; then
        cron -f -L 15 &
        CPID=$!
        STARTED_CRON=yes
        at_exit "kill $CPID"
    fi
    WAIT_TRIES=375 wait_for 8 sql "$SS" "select count(*) from delivered" || true
    check "crond drained the outbox" 8 "$(sql "$SS" "select count(*) from delivered")"
    WAIT_TRIES=50 wait_for 3 cache_has "$RS" "drained by crond" || true
    check "bob's cache holds the three" 3 "$(cache_has "$RS" "drained by crond")"
fi

summary
