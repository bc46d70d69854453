#!/bin/bash
# Messages per second through xinetd + the HTTP receiver (release build), loaded with wrk:
# every request is a distinct message (its own message IDs and body, from one of four peers)
# posted as an RFC 1867 upload, one connection per message as a CMR sender makes it; the
# router does its whole work (cache, index, match, queue forwards) for each. Prints the figure and checks
# that every 200 left exactly one message in the state file's cache.
#
#   scripts/bench-http.sh [SECONDS] [CONNECTIONS]      (defaults: 10 s, 24 connections)
set -euo pipefail
DURATION=${1:-10}
CONNS=${2:-24}
export PROFILE=release
source "$(dirname "$0")/../tests/integration/lib-http.sh"
need_packages xinetd wrk netcat-openbsd python3
build

PORT=$(free_port)
S="$WORK/state.sqlite"
read -r -a R <<<"$(recv_cmd "$S" "$WORK/recv.log")"
service cmr-bench "$PORT" "${R[0]}" "${R[@]:1}" >"$WORK/x.services"
init_state "$S" "http://127.0.0.1:$PORT/cmr"
# The rate windows (on by default) would refuse a load test's traffic.
"$BIN/cmr-route" policy --state "$S" rate_peer off >/dev/null
"$BIN/cmr-route" policy --state "$S" rate_global off >/dev/null
start_xinetd x

cat >"$WORK/post.lua" <<'LUA'
-- One distinct CMR message per request, as a multipart/form-data upload.
local threads = {}
function setup(thread)
    table.insert(threads, thread)
    thread:set("tid", #threads)
end
function init(args)
    run = args[1] or "0"
    counter = 0
    boundary = "cmr-bench-boundary-" .. tid
end
function request()
    counter = counter + 1
    -- Distinct message IDs: a fraction unique to this thread and request; the immediate
    -- sender is one of four peers (as on a real peer), the creator unique per message.
    local now = os.time()
    local frac = string.format("%d%06d", tid, counter)
    local t1 = os.date("!%Y/%m/%d %H:%M:%S", now - 1) .. "." .. frac
    local t2 = os.date("!%Y/%m/%d %H:%M:%S", now - 2) .. "." .. frac
    local text = "benchmark message " .. run .. "/" .. tid .. "/" .. counter ..
        ": what is the largest planet, and how far is it from the sun?"
    local msg = "0\r\n" .. t1 .. " http://peer" .. (counter % 4) .. ".example/cmr\r\n" ..
        t2 .. " http://client.example/" .. run .. "/" .. tid .. "/" .. counter ..
        "\r\n\r\n" .. #text .. "\r\n" .. text
    local body = "--" .. boundary .. "\r\n" ..
        "Content-Disposition: form-data; name=\"file\"; filename=\"cmr.msg\"\r\n" ..
        "Content-Type: application/octet-stream\r\n\r\n" .. msg ..
        "\r\n--" .. boundary .. "--\r\n"
    return wrk.format("POST", "/cmr",
        {["Content-Type"] = "multipart/form-data; boundary=" .. boundary}, body)
end
function done(summary, latency, requests)
    io.write(string.format("WRK requests=%d non2xx=%d errors=%d connect=%d read=%d write=%d timeout=%d seconds=%.3f p50ms=%.1f p99ms=%.1f\n",
        summary.requests, summary.errors.status,
        summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout,
        summary.errors.connect, summary.errors.read, summary.errors.write, summary.errors.timeout,
        summary.duration / 1e6, latency:percentile(50) / 1e3, latency:percentile(99) / 1e3))
end
LUA

# warm the page cache and create the state file
make_msg "$WORK/m0" http://warmup.example/ warmup
curl -s -o /dev/null -F "file=@$WORK/m0" "http://127.0.0.1:$PORT/cmr"

echo "wrk -t2 -c$CONNS -d${DURATION}s --timeout 10s -s post.lua http://127.0.0.1:$PORT/cmr   (xinetd nowait, $(basename "${R[0]}") ${R[*]:1})"
out=$(wrk -t2 -c"$CONNS" -d"${DURATION}s" --timeout 10s -s "$WORK/post.lua" "http://127.0.0.1:$PORT/cmr" -- "$$-$RANDOM")
echo "$out" | grep -v '^WRK'
line=$(echo "$out" | grep '^WRK')
eval "$(echo "$line" | sed 's/^WRK //')"
cached=$(($(cache_count "$S") - 1))
ok=$((requests - non2xx))
echo "answered 200: $ok   non-2xx: $non2xx   socket errors: $errors (connect $connect, read $read, write $write, timeout $timeout)   cached: $cached"
echo "load average: $(cut -d' ' -f1-3 /proc/loadavg) on $(nproc) cores"
python3 -c "print('messages/s: %.0f  (p50 %s ms, p99 %s ms)' % ($ok / $seconds, '$p50ms', '$p99ms'))"
# Every 200 must be a cached message (wrk may count a reply it cut off at the end as an error).
[ "$cached" -ge "$ok" ] || { echo "FAIL: $ok answered 200 but $cached cached"; exit 1; }
