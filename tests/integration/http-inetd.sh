#!/bin/bash
# A4.2/A4.3 through a real xinetd on loopback: `nowait` stream services running the
# receiver for HTTP and HTTPS, posted to with curl (multipart and raw), with the crate's own
# sender, and with bad requests that must get a clear answer and change nothing.
source "$(dirname "$0")/lib-http.sh"
need_packages xinetd curl openssl netcat-openbsd python3
build

PORT=$(free_port)
SLOW_PORT=$(free_port)
TLS_PORT=$(free_port)
S="$WORK/state.sqlite"
ST="$WORK/state-tls.sqlite"
LOG="$WORK/recv.log"

# --- certificates: a private CA and a server certificate for 127.0.0.1; and a
# self-signed server certificate trusted directly.
openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=cmr-test-ca \
    -keyout "$WORK/ca.key" -out "$WORK/ca.pem" 2>/dev/null
openssl req -newkey rsa:2048 -nodes -subj /CN=127.0.0.1 \
    -keyout "$WORK/server.key" -out "$WORK/server.csr" 2>/dev/null
printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\n' >"$WORK/ext.cnf"
openssl x509 -req -in "$WORK/server.csr" -CA "$WORK/ca.pem" -CAkey "$WORK/ca.key" \
    -CAcreateserial -days 2 -extfile "$WORK/ext.cnf" -out "$WORK/server.pem" 2>/dev/null
SELF_PORT=$(free_port)
openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=127.0.0.1 \
    -addext subjectAltName=IP:127.0.0.1 -addext basicConstraints=critical,CA:FALSE \
    -keyout "$WORK/self.key" -out "$WORK/self.pem" 2>/dev/null

read -r -a R <<<"$(recv_cmd "$S" "$LOG")"
read -r -a RT <<<"$(recv_cmd "$ST" "$LOG" --https "$WORK/server.pem" "$WORK/server.key")"
read -r -a RS <<<"$(recv_cmd "$ST" "$LOG" --https "$WORK/self.pem" "$WORK/self.key")"
{
    service cmr-http "$PORT" "${R[0]}" "${R[@]:1}"
    service cmr-https "$TLS_PORT" "${RT[0]}" "${RT[@]:1}"
    service cmr-https-self "$SELF_PORT" "${RS[0]}" "${RS[@]:1}"
    SERVICE_ENV=CMR_HTTP_TIMEOUT=2 service cmr-http-slow "$SLOW_PORT" "${R[0]}" "${R[@]:1}"
} >"$WORK/x.services"
URL="http://127.0.0.1:$PORT/cmr"
init_state "$S" "$URL"
init_state "$ST" "https://127.0.0.1:$TLS_PORT/"
start_xinetd x

echo "# HTTP: curl"
make_msg "$WORK/m1" http://alice.example/ "multipart upload"
out=$(curl -s -o "$WORK/body" -w '%{http_code}' -F "file=@$WORK/m1" "$URL")
check "curl -F file=@msg: 200" 200 "$out"
check "cache holds it" 1 "$(cache_count "$S")"
check "cached bytes are the message" "$(cat "$WORK/m1" | od -An -tx1)" "$(sql "$S" "select hex(bytes) from cache where id=1" | xxd -r -p | od -An -tx1)"

make_msg "$WORK/m2" http://alice.example/ "raw body"
out=$(curl -s -o /dev/null -w '%{http_code}' --data-binary "@$WORK/m2" "$URL")
check "curl --data-binary @msg: 200" 200 "$out"
check "cache holds two" 2 "$(cache_count "$S")"

out=$(curl -s -o "$WORK/body" -w '%{http_code}' -F "upload=@$WORK/m2" "$URL")
check "the same message again: 200 (duplicate, idempotent)" 200 "$out"
check "  answered as duplicate" duplicate "$(cat "$WORK/body")"
check "  nothing added" 2 "$(cache_count "$S")"

# Binary body: every byte value, CR LF inside.
python3 - "$WORK/m3" <<'PY'
import sys, datetime
body = bytes(range(256)) + b"\r\n--\r\n"
ts = datetime.datetime.now(datetime.timezone.utc).strftime("%Y/%m/%d %H:%M:%S.%f")
open(sys.argv[1], "wb").write(b"0\r\n" + ts.encode() + b" http://bin.example/\r\n\r\n" + str(len(body)).encode() + b"\r\n" + body)
PY
out=$(curl -s -o /dev/null -w '%{http_code}' -F "file=@$WORK/m3;type=application/octet-stream" "$URL")
check "binary message as multipart: 200" 200 "$out"
check "  bytes intact" "$(od -An -tx1 <"$WORK/m3")" "$(sql "$S" "select hex(bytes) from cache where sender='http://bin.example/'" | xxd -r -p | od -An -tx1)"

make_msg "$WORK/m4" http://alice.example/ "chunked"
out=$(curl -s -o /dev/null -w '%{http_code}' -H 'Transfer-Encoding: chunked' --data-binary "@$WORK/m4" "$URL")
check "chunked transfer-encoding: 200" 200 "$out"
check "cache holds four" 4 "$(cache_count "$S")"

echo "# HTTP: bad requests get a clear answer and change nothing"
before=$(cache_count "$S")
out=$(curl -s -D "$WORK/h" -o "$WORK/body" -w '%{http_code}' --data-binary "0\r\nnot a header\r\n" "$URL")
check "malformed CMR message: 400" 400 "$out"
check "  reason in X-CMR-Error" yes "$(grep -qi '^x-cmr-error: rejected' "$WORK/h" && echo yes || echo no)"
out=$(curl -s -o /dev/null -w '%{http_code}' -X PUT --data-binary "@$WORK/m1" "$URL")
check "PUT: 405" 405 "$out"
out=$(curl -s -o /dev/null -w '%{http_code}' "$URL")
check "plain GET: 400" 400 "$out"
out=$(printf 'GARBAGE\r\n\r\n' | raw_status "$PORT")
check "malformed request line: 400" 400 "$out"
out=$(printf 'POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 999999999\r\n\r\n' | raw_status "$PORT")
check "oversized Content-Length: 413" 413 "$out"
out=$(printf 'POST / HTTP/1.1\r\nHost: x\r\n\r\n' | raw_status "$PORT")
check "POST without length: 411" 411 "$out"
B=XyZzY
make_msg "$WORK/m5" http://alice.example/ "never routed"
{ printf -- '--%s\r\nContent-Disposition: form-data; name="file"; filename="cmr.msg"\r\n\r\n' $B; cat "$WORK/m5"; printf '\r\n--%s' $B; } >"$WORK/trunc"
out=$(curl -s -o "$WORK/body" -w '%{http_code}' -H "Content-Type: multipart/form-data; boundary=$B" --data-binary "@$WORK/trunc" "$URL")
check "truncated multipart: 400" 400 "$out"
check "  says truncated" yes "$(grep -q truncated "$WORK/body" && echo yes || echo no)"
len=$(($(stat -c %s "$WORK/m5") + 10))
out=$({ printf 'POST / HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n' $len; cat "$WORK/m5"; } | raw_status "$PORT")
check "body shorter than Content-Length: 400" 400 "$out"
check "nothing added by bad requests" "$before" "$(cache_count "$S")"

read -r status secs < <(slow_client "$SLOW_PORT" $'POST / HTTP/1.1\r\nHost: x\r\nContent-Le')
check "slow client (deadline 2 s): 408" 408 "$status"
check "  cut off within 4 s" yes "$([ "$secs" -le 4 ] && echo yes || echo "no ($secs s)")"
read -r status secs < <(slow_client "$SLOW_PORT" $'POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n0\r\n')
check "slow body: 408" 408 "$status"

echo "# HTTP: the crate's sender"
make_msg "$WORK/m6" http://alice.example/ "sent by send()"
send_msg "$URL" "$WORK/m6"
check "send(): exit 0" 0 $?
check "  cached" 1 "$(cached_with "$S" "sent by send()")"
printf 'garbage' >"$WORK/bad"
# cmr-send checks a message before it leaves the host; curl shows the server's verdict.
out=$(curl -s -o /dev/null -D "$WORK/head" -w '%{http_code}' --data-binary @"$WORK/bad" "$URL")
check "a malformed message posted raw: 400" 400 "$out"
check "  with the server's reason" yes "$(grep -qi '^X-CMR-Error: .*malformed' "$WORK/head" && echo yes || echo no)"
rc=0; send_msg "$URL" "$WORK/bad" 2>/dev/null || rc=$?
check "cmr-send --to refuses it before sending (65)" 65 "$rc"
rc=0; send_msg "http://127.0.0.1:$(free_port)/" "$WORK/m6" 2>/dev/null || rc=$?
check "send() to a closed port: transient (75)" 75 "$rc"

echo "# HTTPS"
make_msg "$WORK/t1" http://alice.example/ "over TLS"
out=$(curl -s -o /dev/null -w '%{http_code}' --cacert "$WORK/ca.pem" -F "file=@$WORK/t1" "https://127.0.0.1:$TLS_PORT/")
check "curl https multipart: 200" 200 "$out"
check "  arrived via https" https "$(cached_with "$ST" "over TLS" via)"
out=$(curl -s -o /dev/null -w '%{http_code}' -F "file=@$WORK/t1" "https://127.0.0.1:$TLS_PORT/" || true)
check "curl without the CA: refused (000)" 000 "$out"
make_msg "$WORK/t2" http://alice.example/ "TLS send()"
rc=0; send_msg "https://127.0.0.1:$TLS_PORT/" "$WORK/t2" 2>"$WORK/err" || rc=$?
check "send() https without trusting the CA: transient failure" 75 "$rc"
send_msg "https://127.0.0.1:$TLS_PORT/" "$WORK/t2" --trust "$WORK/ca.pem"
check "send() https --trust CA: exit 0" 0 $?
check "  cached" 1 "$(cached_with "$ST" "TLS send()")"
make_msg "$WORK/t2b" http://alice.example/ "TLS per-peer options"
send_msg "https://127.0.0.1:$TLS_PORT/" "$WORK/t2b" --peer-options "trust=$WORK/ca.pem timeout=10"
check "send() https with the peer option trust=CA: exit 0" 0 $?
make_msg "$WORK/t3" http://alice.example/ "self-signed"
send_msg "https://127.0.0.1:$SELF_PORT/" "$WORK/t3" --trust "$WORK/self.pem"
check "send() https to a self-signed server, --trust its cert: exit 0" 0 $?
out=$(printf 'GET / HTTP/1.1\r\n\r\n' | raw_status "$TLS_PORT")
check "plain HTTP to the HTTPS port: no answer" "" "$out"
before=$(cache_count "$ST")
out=$(curl -s -o /dev/null -w '%{http_code}' --cacert "$WORK/ca.pem" -H "Content-Type: multipart/form-data; boundary=$B" --data-binary "@$WORK/trunc" "https://127.0.0.1:$TLS_PORT/")
check "https truncated multipart: 400" 400 "$out"
out=$(curl -s -o /dev/null -w '%{http_code}' --cacert "$WORK/ca.pem" -X DELETE "https://127.0.0.1:$TLS_PORT/")
check "https DELETE: 405" 405 "$out"
check "  nothing added" "$before" "$(cache_count "$ST")"

check "nothing written to the socket's stderr side (log has the failures)" yes "$(grep -q 'HTTP 405' "$LOG" && echo yes || echo no)"
finish
