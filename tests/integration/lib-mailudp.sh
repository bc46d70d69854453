# Shared helpers for the mail / UDP / SSH / cron integration scripts (sourced).
# Everything runs on loopback; each script cleans up after itself (trap).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
PROFILE=${PROFILE:-debug}
WORK=$(mktemp -d /tmp/cmr-mailudp-test.XXXXXX)
chmod 755 "$WORK"
FAILS=0
PASSES=0
CLEANUP=()
# Never touch the invoking user's own state file.
unset CMR_STATE
export XDG_STATE_HOME="$WORK/xdg-state"

# Run on exit, newest first.
at_exit() { CLEANUP=("$*" "${CLEANUP[@]}"); }
finish() {
    local rc=$?
    for c in "${CLEANUP[@]}"; do eval "$c" >/dev/null 2>&1 || true; done
    if [ "${KEEP_WORK:-}" = 1 ]; then echo "# kept $WORK"; else rm -rf "$WORK"; fi
    if [ $rc -ne 0 ] && [ $FAILS -eq 0 ]; then echo "not ok - script failed (exit $rc)"; fi
    exit $rc
}
trap finish EXIT

# Install what the script needs (we are root); `apt-get update` at most once per boot.
source "$(dirname "${BASH_SOURCE[0]}")/lib-common.sh"

# Build the tools and copy them where unprivileged daemons' users can run them.
build() {
    if [ -n "${CMR_BIN:-}" ]; then
        # the installed tools (e.g. CMR_BIN=/usr/bin after dpkg -i), as an operator runs them
        BIN=$CMR_BIN
        export PATH="$BIN:$PATH"
        return
    fi
    if [ "$PROFILE" = release ]; then
        # the tools as installed (statically linked where that is the default)
        (cd "$ROOT" && scripts/build-release.sh --quiet)
    else
        (cd "$ROOT" && cargo build -q --bins)
    fi
    mkdir -p "$WORK/bin"
    for b in "${CARGO_TARGET_DIR:-$ROOT/target}/$PROFILE"/cmr-*; do
        [ -x "$b" ] && [ -f "$b" ] && install -m 755 "$b" "$WORK/bin/"
    done
    BIN="$WORK/bin"
    export PATH="$BIN:$PATH"
}

# Postfix is one per host: scripts that reconfigure it take turns (bounded wait). A lock
# directory holding the owner's pid (daemons started later must not inherit a lock fd).
lock_postfix() {
    local d=/tmp/cmr-test-postfix.lock
    [ "$(cat "$d/pid" 2>/dev/null)" = "$$" ] && return 0 # already ours
    for _ in $(seq 900); do
        if mkdir "$d" 2>/dev/null; then
            echo $$ >"$d/pid"
            at_exit "rm -rf $d"
            return 0
        fi
        # A holder that died without cleaning up.
        local p
        p=$(cat "$d/pid" 2>/dev/null || true)
        if [ -n "$p" ] && ! kill -0 "$p" 2>/dev/null; then rm -rf "$d"; continue; fi
        sleep 1
    done
    echo "another test has held Postfix for 15 minutes"
    exit 1
}

# An unprivileged user for daemons' deliveries (Postfix pipe, sshd forced command, xinetd).
ensure_user() {
    local u=$1
    id "$u" >/dev/null 2>&1 || useradd --system --create-home --shell /bin/sh "$u"
    # No password, but not locked: sshd refuses locked accounts even for keys.
    usermod -p '*' "$u"
}

# init_state PATH ADDRESS [OWNER]: a receiver's state file with its own address, created
# by OWNER (the user the daemon runs the receiver as).
init_state() {
    local owner=${3:-root}
    runuser -u "$owner" -- "$BIN/cmr-route" init --state "$1" --address "$2" >/dev/null
    # The peers here listen on loopback, which the address policy refuses unless allowed.
    runuser -u "$owner" -- "$BIN/cmr-route" policy --state "$1" send_allow 127.0.0.0/8,::1 >/dev/null
}

free_port() {
    python3 - "$@" <<'PY'
import socket, sys
kind = socket.SOCK_DGRAM if len(sys.argv) > 1 and sys.argv[1] == "udp" else socket.SOCK_STREAM
s = socket.socket(socket.AF_INET, kind)
s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])
PY
}

ok() { PASSES=$((PASSES + 1)); echo "ok - $1"; }
fail() { FAILS=$((FAILS + 1)); echo "not ok - $1"; }

# check NAME EXPECTED ACTUAL
check() {
    if [ "$2" = "$3" ]; then ok "$1"; else fail "$1: expected [$2], got [$3]"; fi
}

# check_contains NAME NEEDLE HAYSTACK
check_contains() {
    case "$3" in *"$2"*) ok "$1" ;; *) fail "$1: [$2] not in [$3]" ;; esac
}

sql() { sqlite3 -batch -noheader "$1" "$2" 2>/dev/null || echo "sql-error"; }

# Messages in the cache of state file $1 (0 when it does not exist yet).
cache_count() {
    if [ -e "$1" ]; then sql "$1" "select count(*) from cache"; else echo 0; fi
}

# Does the cache of $1 hold a message whose body contains $2?
cache_has() {
    [ -e "$1" ] || { echo 0; return; }
    sql "$1" "select count(*) from cache where instr(bytes, cast('$2' as blob)) > 0"
}

# Wait (bounded) until command "$2..." prints $1.
wait_for() {
    local want=$1 tries=${WAIT_TRIES:-150}
    shift
    for _ in $(seq "$tries"); do
        [ "$("$@")" = "$want" ] && return 0
        sleep 0.2
    done
    return 1
}

# make_msg FILE ADDRESS BODY [TIMESTAMP]: an unsigned message created by ADDRESS.
make_msg() {
    local ts=${4:-$(date -u '+%Y/%m/%d %H:%M:%S.%N')}
    printf '0\r\n%s %s\r\n\r\n%d\r\n%s' "$ts" "$2" "${#3}" "$3" >"$1"
}

# need_postfix: Postfix installed as "Local only" (mail name cmr.test), if it is not yet.
need_postfix() {
    if ! dpkg -s postfix >/dev/null 2>&1; then
        echo "postfix postfix/main_mailer_type select Local only" | debconf-set-selections
        echo "postfix postfix/mailname string cmr.test" | debconf-set-selections
    fi
    need_packages postfix
}

# postfix_pipe RECIPIENT USER COMMAND...: Postfix (loopback only, domain cmr.test) delivers
# mail for RECIPIENT to COMMAND through a `pipe` transport run as USER. The host's
# configuration is kept and put back on exit. Postfix logs to $MAILLOG.
MAILLOG=/var/log/cmr-test-postfix.log
postfix_pipe() {
    local rcpt=$1 user=$2
    shift 2
    lock_postfix
    cp -p /etc/postfix/main.cf "$WORK/main.cf.orig"
    cp -p /etc/postfix/master.cf "$WORK/master.cf.orig"
    POSTFIX_WAS_RUNNING=no
    postfix status >/dev/null 2>&1 && POSTFIX_WAS_RUNNING=yes
    at_exit 'cp -p "$WORK/main.cf.orig" /etc/postfix/main.cf; cp -p "$WORK/master.cf.orig" /etc/postfix/master.cf;
        if [ "$POSTFIX_WAS_RUNNING" = yes ]; then postfix reload; else postfix stop; fi'
    echo "$rcpt cmr:" >"$WORK/transport"
    postconf -e "mydestination = cmr.test, localhost" "inet_interfaces = loopback-only" \
        "transport_maps = texthash:$WORK/transport" "maillog_file = $MAILLOG" \
        "cmr_destination_recipient_limit = 1" "local_recipient_maps ="
    postconf -M "cmr/unix=cmr unix - n n - - pipe user=$user argv=$*"
    : >"$MAILLOG"
    newaliases
    if [ "$POSTFIX_WAS_RUNNING" = yes ]; then postfix reload; else postfix start; fi
    for _ in $(seq 50); do postfix status >/dev/null 2>&1 && break; sleep 0.1; done
}

# private_sshd PORT USER KEYS: an sshd on 127.0.0.1:PORT that lets only USER in, by the
# authorized_keys lines in file KEYS (forced commands); its host key is in
# $WORK/known_hosts for clients. Stopped on exit.
private_sshd() {
    local port=$1 user=$2 keys=$3
    mkdir -p /run/sshd "$WORK/sshd"
    ssh-keygen -q -t ed25519 -N '' -f "$WORK/sshd/hostkey"
    chmod 644 "$keys"
    echo "[127.0.0.1]:$port $(cat "$WORK/sshd/hostkey.pub")" >>"$WORK/known_hosts"
    cat >"$WORK/sshd/config" <<CONF
Port $port
ListenAddress 127.0.0.1
HostKey $WORK/sshd/hostkey
PidFile $WORK/sshd/pid
AuthorizedKeysFile $keys
PasswordAuthentication no
KbdInteractiveAuthentication no
PubkeyAuthentication yes
UsePAM no
StrictModes no
AllowUsers $user
CONF
    /usr/sbin/sshd -f "$WORK/sshd/config" -D -E "$WORK/sshd/log" &
    at_exit "kill $!"
    for _ in $(seq 50); do
        ss -ltn 2>/dev/null | grep -q "127.0.0.1:$port " && return 0
        sleep 0.1
    done
    echo "sshd did not listen on $port"; cat "$WORK/sshd/log"; return 1
}

# private_xinetd CONF: xinetd with the configuration file CONF (services bound to
# 127.0.0.1); waits until every service's port is bound. Stopped on exit.
private_xinetd() {
    local conf=$1 port proto
    xinetd -f "$conf" -pidfile "$conf.pid" -dontfork -filelog "$conf.log" &
    at_exit "kill $!"
    awk '/^service/ {p=""; t=""} /port *=/ {p=$3} /protocol *=/ {t=$3} /^}/ && p {print p, t; p=""}' "$conf" |
        while read -r port proto; do
            for _ in $(seq 50); do
                if [ "$proto" = udp ]; then ss -lun; else ss -ltn; fi 2>/dev/null | grep -q "127.0.0.1:$port " && break
                sleep 0.1
            done
        done
}

summary() {
    echo "# $PASSES passed, $FAILS failed"
    [ "$FAILS" -eq 0 ]
}
