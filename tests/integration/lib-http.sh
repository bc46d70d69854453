# Shared helpers for the HTTP integration scripts (sourced). Loopback only.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
PROFILE=${PROFILE:-debug}
BIN="${CMR_BIN:-${CARGO_TARGET_DIR:-$ROOT/target}/$PROFILE}"
WORK=$(mktemp -d /tmp/cmr-http-test.XXXXXX)
FAILS=0
PASSES=0

source "$(dirname "${BASH_SOURCE[0]}")/lib-common.sh"

build() {
    # CMR_BIN: the installed tools (e.g. /usr/bin after dpkg -i), nothing to build
    [ -z "${CMR_BIN:-}" ] || return 0
    if [ "$PROFILE" = release ]; then
        # the tools as installed (statically linked where that is the default)
        (cd "$ROOT" && scripts/build-release.sh --quiet)
    else
        (cd "$ROOT" && cargo build -q --bins)
    fi
}

# The receiving command under inetd: cmr-recv --http, or --https with a certificate.
recv_cmd() { # recv_cmd STATE LOG [--https CERT KEY] [more args]
    local state=$1 log=$2
    shift 2
    if [ "${1:-}" = --https ]; then
        echo "$BIN/cmr-recv --https --cert $2 --key $3 --state $state --log $log ${*:4}"
    else
        echo "$BIN/cmr-recv --http --state $state --log $log $*"
    fi
}

# The sending command, cmr-send: exits 0, 75 (transient) or 69 (permanent). The A4.5
# handshake and other per-peer options are set on the peer in the sender's state file, as an
# operator does (`cmr-route peer add URL --options ...`).
send_msg() { # send_msg URL FILE [--trust PEM] [--handshake OWN --state S] [--peer-options O]
    local url=$1 file=$2 state="$WORK/sender.sqlite" options="" extra=()
    shift 2
    while [ $# -gt 0 ]; do
        case "$1" in
        --trust) extra+=(--http-trust "$2") ;;
        --handshake) options="handshake=$2" ;;
        --state) state=$2 ;;
        --peer-options) options=$2 ;;
        *) echo "send_msg: unknown option $1" >&2; return 64 ;;
        esac
        shift 2
    done
    "$BIN/cmr-route" --state "$state" --log none peer add "$url" --options "$options" >/dev/null
    # The receivers listen on loopback, which the address policy refuses unless allowed.
    "$BIN/cmr-route" --state "$state" --log none policy send_allow 127.0.0.0/8,::1 >/dev/null
    "$BIN/cmr-send" --state "$state" --to "$url" "${extra[@]}" "$file"
}

free_port() {
    local p
    while :; do
        p=$((20000 + RANDOM % 30000))
        if ! nc -z 127.0.0.1 "$p" 2>/dev/null; then
            echo "$p"
            return
        fi
    done
}

# start_xinetd NAME: services are described in $WORK/NAME.services (xinetd syntax).
start_xinetd() {
    local name=$1
    cat >"$WORK/$name.conf" <<CONF
defaults
{
    log_type = FILE $WORK/$name.xinetd.log
    log_on_success =
    log_on_failure = HOST
    instances = 400
    per_source = UNLIMITED
    cps = 100000 1
}
CONF
    cat "$WORK/$name.services" >>"$WORK/$name.conf"
    xinetd -f "$WORK/$name.conf" -pidfile "$WORK/$name.pid" -dontfork &
    echo $! >"$WORK/$name.xpid"
    for port in $(awk '/port *=/ {print $3}' "$WORK/$name.services"); do
        for _ in $(seq 100); do
            nc -z 127.0.0.1 "$port" 2>/dev/null && break
            sleep 0.1
        done
        nc -z 127.0.0.1 "$port" || { echo "xinetd did not listen on $port"; cat "$WORK/$name.xinetd.log"; exit 1; }
    done
}

# service NAME PORT COMMAND...: one `nowait` stream service on 127.0.0.1:PORT.
service() {
    local name=$1 port=$2 server=$3
    shift 3
    cat <<SVC
service $name
{
    type = UNLISTED
    socket_type = stream
    protocol = tcp
    wait = no
    user = root
    bind = 127.0.0.1
    port = $port
    server = $server
    server_args = $*
    ${SERVICE_ENV:+env = $SERVICE_ENV}
}
SVC
}

cleanup() {
    for f in "$WORK"/*.xpid; do
        [ -f "$f" ] && kill "$(cat "$f")" 2>/dev/null || true
    done
    if [ "${KEEP:-0}" = 1 ]; then echo "kept $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT

# A fresh unsigned message from SENDER with BODY; current UTC time, nanoseconds make it unique.
make_msg() { # make_msg FILE SENDER BODY
    local ts
    ts=$(date -u +'%Y/%m/%d %H:%M:%S.%N')
    printf '0\r\n%s %s\r\n\r\n%d\r\n%s' "$ts" "$2" "${#3}" "$3" >"$1"
}

cache_count() { # cache_count STATE
    python3 - "$1" <<'PY'
import sqlite3, sys
try:
    print(sqlite3.connect(sys.argv[1]).execute("select count(*) from cache").fetchone()[0])
except Exception:
    print(0)
PY
}

sql() { # sql STATE QUERY
    python3 - "$1" "$2" <<'PY'
import sqlite3, sys
for row in sqlite3.connect(sys.argv[1]).execute(sys.argv[2]):
    print("|".join(str(c) for c in row))
PY
}

check() { # check DESCRIPTION EXPECTED ACTUAL
    if [ "$2" = "$3" ]; then
        PASSES=$((PASSES + 1))
        echo "ok - $1"
    else
        FAILS=$((FAILS + 1))
        echo "not ok - $1: expected [$2], got [$3]"
    fi
}

# HTTP status of a raw request written with nc (first line of the answer).
raw_status() { # raw_status PORT < request
    nc -q 5 -w 10 127.0.0.1 "$1" | head -1 | awk '{print $2}'
}

finish() {
    echo "# $PASSES passed, $FAILS failed"
    [ "$FAILS" = 0 ]
}

cached_with() { # cached_with STATE TEXT [COLUMN]: count (or COLUMN) of cache rows whose bytes contain TEXT
    python3 - "$1" "$2" "${3:-count(*)}" <<'PY'
import sqlite3, sys
try:
    db = sqlite3.connect(sys.argv[1])
    q = "select %s from cache where instr(bytes, ?) > 0" % sys.argv[3]
    for row in db.execute(q, (sys.argv[2].encode(),)):
        print(row[0])
except sqlite3.Error:
    print(0)
PY
}

# slow_client PORT PARTIAL_REQUEST: send part of a request, then wait; prints "STATUS SECONDS"
# (the answer's status and how long the server took to give it).
slow_client() {
    python3 - "$1" "$2" <<'PY'
import socket, sys, time
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
t0 = time.time()
s.sendall(sys.argv[2].encode())
s.settimeout(20)
data = b""
try:
    while True:
        d = s.recv(4096)
        if not d:
            break
        data += d
except socket.timeout:
    pass
status = data.split(b" ")[1].decode() if data.startswith(b"HTTP/") else "none"
print(status, int(time.time() - t0 + 0.999))
PY
}

init_state() { # init_state STATE OWN_ADDRESS
    "$BIN/cmr-route" init --state "$1" --address "$2" >/dev/null
    # The peers here listen on loopback, which the address policy refuses unless allowed.
    "$BIN/cmr-route" policy --state "$1" send_allow 127.0.0.0/8,::1 >/dev/null
}
