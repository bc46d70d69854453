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
need_packages() {
    local missing=()
    for p in "$@"; do
        dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
    done
    if [ ${#missing[@]} -gt 0 ]; then
        if [ ! -e /tmp/.cmr-apt-updated ]; then
            apt-get update -qq && touch /tmp/.cmr-apt-updated
        fi
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq -o DPkg::Lock::Timeout=600 \
            "${missing[@]}" >/dev/null
    fi
}

# Build the tools and copy them where unprivileged daemons' users can run them.
build() {
    local flag=()
    [ "$PROFILE" = release ] && flag=(--release)
    (cd "$ROOT" && cargo build -q "${flag[@]}" --bins)
    mkdir -p "$WORK/bin"
    for b in "$ROOT/target/$PROFILE"/cmr-*; do
        [ -x "$b" ] && [ -f "$b" ] && install -m 755 "$b" "$WORK/bin/"
    done
    BIN="$WORK/bin"
    export PATH="$BIN:$PATH"
}

# Postfix is one per host: scripts that reconfigure it take turns (bounded wait). A lock
# directory holding the owner's pid (daemons started later must not inherit a lock fd).
lock_postfix() {
    local d=/tmp/cmr-test-postfix.lock
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

summary() {
    echo "# $PASSES passed, $FAILS failed"
    [ "$FAILS" -eq 0 ]
}
