#!/usr/bin/env bash
# Per-message cost of routing through a fresh cmr-route process (release build), as under
# MTA delivery or inetd: a state file holding 10,000 cached messages from 20 peers, then N
# fresh processes each routing one new message for real (cache, index, match, queue
# forwards, commit). Prints the median and p90 wall and CPU (user+sys) milliseconds per
# message, and checks that every message was cached exactly once.
#
#   scripts/bench-route.sh [N] [CACHED]          (defaults: 200, 10000)
#   BENCH_POLICY="answer_depth=0 reply_window=0" scripts/bench-route.sh    (settings under test)
#   BENCH_POSTS=16 scripts/bench-route.sh     (16 open client posts, made with cmr-post after
#                                              the bulk load, that each message is ranked for)
#
# Texts come from the routing corpus ($CMR_SHARED or ../shared, corpus/fortunes_topics.jsonl).
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-200}
CACHED=${2:-10000}
SHARED=${CMR_SHARED:-../shared}
CORPUS="$SHARED/corpus/fortunes_topics.jsonl"
[ -r "$CORPUS" ] || { echo "bench-route: no corpus at $CORPUS" >&2; exit 66; }

scripts/build-release.sh --quiet
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

python3 - "$PWD/target/release/cmr-route" "$work/state.sqlite" "$CORPUS" "$N" "$CACHED" "${BENCH_POSTS:-0}" <<'PY'
import json, os, sqlite3, statistics, subprocess, sys, time
from datetime import datetime, timedelta, timezone

route, state, corpus, n, cached = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5])
posts = int(sys.argv[6])
post = os.path.join(os.path.dirname(route), "cmr-post")
PEERS = [f"http://peer{i:02d}.bench/cmr" for i in range(20)]
texts = [json.loads(l)["text"] for l in open(corpus, encoding="utf-8") if l.strip()]
base = datetime.now(timezone.utc) - timedelta(hours=6)

def message(k, sender, body):
    # A2: one header line, a timestamp unique to this message (microseconds), unsigned.
    t = base + timedelta(microseconds=k * 1000)
    b = body.encode("utf-8")
    ts = t.strftime("%Y/%m/%d %H:%M:%S.%f")
    return b"0\r\n" + f"{ts} {sender}\r\n\r\n{len(b)}\r\n".encode() + b

def doc(k):
    return f"{texts[k % len(texts)]}\n[{k}]"

subprocess.run([route, "--state", state, "init", "--address", "http://bench.test/cmr"],
               check=True, stdout=subprocess.DEVNULL)
# The rate windows would refuse a bulk load; the peers are configured peers, so the relay
# policy lets these unsigned messages be forwarded to them as before it existed.
for k in ("rate_peer", "rate_global"):
    subprocess.run([route, "--state", state, "policy", k, "off"], check=True,
                   stdout=subprocess.DEVNULL)
# BENCH_POLICY="KEY=VALUE ...": settings under test (e.g. answer_depth=0).
for kv in os.environ.get("BENCH_POLICY", "").split():
    k, _, v = kv.partition("=")
    subprocess.run([route, "--state", state, "policy", k, v], check=True,
                   stdout=subprocess.DEVNULL)
for peer in PEERS:
    subprocess.run([route, "--state", state, "peer", "add", peer], check=True,
                   stdout=subprocess.DEVNULL)

# Bulk load through cmr-route streams, 20 streams (one per peer), two at a time.
t0 = time.perf_counter()
streams = [b"".join(message(k, PEERS[p], doc(k)) for k in range(p, cached, len(PEERS)))
           for p in range(len(PEERS))]
for i in range(0, len(streams), 2):
    procs = [subprocess.Popen([route, "--state", state], stdin=subprocess.PIPE,
                              stdout=subprocess.DEVNULL) for _ in streams[i:i + 2]]
    for p, s in zip(procs, streams[i:i + 2]):
        p.stdin.write(s)
        p.stdin.close()
    for p in procs:
        if p.wait() != 0:
            sys.exit(f"bulk load: cmr-route exited {p.returncode}")
db = sqlite3.connect(state)
have = db.execute("SELECT count(*) FROM cache").fetchone()[0]
print(f"bulk load: {have} cached messages from {len(PEERS)} peers in {time.perf_counter() - t0:.1f} s")

# Open client posts (cmr-post), newer than every message routed below: each of those is
# ranked for them (reply_watch) and may be taken for an answer to them (answers_return).
for j in range(posts):
    subprocess.run([post, "--state", state, "-"], input=texts[(j * 104729) % len(texts)].encode(),
                   check=True, stdout=subprocess.DEVNULL)
have = db.execute("SELECT count(*) FROM cache").fetchone()[0]
if posts:
    print(f"{posts} open client posts")

# N fresh processes, one new message each, committed.
wall, cpu = [], []
for j in range(n):
    k = cached + j
    m = message(k, PEERS[j % len(PEERS)], f"{texts[(k * 7919) % len(texts)]}\n[new {j}]")
    t = time.perf_counter()
    p = subprocess.Popen([route, "--state", state], stdin=subprocess.PIPE,
                         stdout=subprocess.DEVNULL)
    p.stdin.write(m)
    p.stdin.close()
    _, status, ru = os.wait4(p.pid, 0)
    wall.append((time.perf_counter() - t) * 1000)
    p.returncode = os.waitstatus_to_exitcode(status)
    if p.returncode != 0:
        sys.exit(f"message {j}: cmr-route exited {p.returncode}")
    cpu.append((ru.ru_utime + ru.ru_stime) * 1000)

after = db.execute("SELECT count(*) FROM cache").fetchone()[0]
if after != have + n:
    sys.exit(f"expected {have + n} cached messages, found {after}")

def p90(v):
    return sorted(v)[max(0, int(round(0.9 * len(v))) - 1)]

print(f"{n} fresh cmr-route processes, one new message each, on {have} cached messages:")
print(f"  wall ms/message: median {statistics.median(wall):.1f}  p90 {p90(wall):.1f}")
print(f"  CPU  ms/message: median {statistics.median(cpu):.1f}  p90 {p90(cpu):.1f}  (user+sys)")
PY
