#!/usr/bin/env bash
# The demo: the Appendix A message signed and checked, then the Section 3.1 conversation
# between three routers, each hop one `cmr-send --outbox --print | cmr-route` pipe.
#
#   scripts/demo.sh
#
# It builds the tools with `cargo build` (the dev profile), the build scripts/test.sh
# reuses, so the two commands compile the crate once. Nothing outside a temporary
# directory is touched.
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n== %s\n' "$*"; }
say() { printf '%s\n' "$@" | fold -s -w 92 | sed 's/ *$//; s/^/   /'; }

step "building the tools (cargo build; a first build compiles the dependencies too)"
cargo build --bins
bin=${CARGO_TARGET_DIR:-target}/debug
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

# --- Appendix A ----------------------------------------------------------------------
step "Appendix A: compose the unsigned example message"
printf '0\r\n2008/09/01 00:00:53.42 http://alice.com/cmr\r\n2008/09/01 00:00:53 udp://192.168.0.102:53/dns-tunnel\r\n2008/08/31 23:59:01.0955 https://www.charlie.com/messages.pl\r\n\r\n14\r\nHello World!\r\n' \
    >"$work/unsigned.msg"
cat -A "$work/unsigned.msg" 2>/dev/null || cat "$work/unsigned.msg"

step "Appendix A: sign it with the key \"foo\" (hex 666f6f), the spec's scheme"
"$bin/cmr-sign" --scheme sha256 --key-hex 666f6f "$work/unsigned.msg" >"$work/signed.msg"
head -n 1 "$work/signed.msg"
expected=101c1ad32d6fe646a56edba43bd342ee11e45ba188c59aeec91a5590a0ea114d5
if [ "$(head -n 1 "$work/signed.msg" | tr -d '\r')" = "$expected" ]; then
    say "This is the signature line the spec prints."
else
    echo "does NOT match the spec's signature line" >&2
    exit 1
fi

step "Appendix A: take it apart (cmr-parse, then cmr-parse --json)"
"$bin/cmr-parse" "$work/signed.msg"
"$bin/cmr-parse" --json "$work/signed.msg"

step "Appendix A: verify the signature"
"$bin/cmr-sign" --verify --scheme sha256 --key-hex 666f6f "$work/signed.msg"
say "cmr-sign --verify: exit 0, the signature holds."

step "Appendix A: change one letter of the body (World -> world) and verify again"
sed 's/Hello World/Hello world/' "$work/signed.msg" >"$work/tampered.msg"
set +e
"$bin/cmr-sign" --verify --scheme sha256 --key-hex 666f6f "$work/tampered.msg"
rc=$?
set -e
if [ "$rc" -ne 77 ]; then
    echo "expected exit 77 for the tampered copy, got $rc" >&2
    exit 1
fi
say "cmr-sign --verify: exit 77, the tampered copy is refused."

# --- Section 3.1 ---------------------------------------------------------------------
# Three routers, each with its own state file; every hop is signed with the HMAC key its
# two ends share. The messages are the spec's: M1 (Bob to Alice, last week), M2 (Charlie
# to Bob, last month), M3 (Charlie's note "Dave said last year: ..."), and the question.

A=http://alice.example/cmr B=http://bob.example/cmr C=http://charlie.example/cmr
kab=$(printf 'alice+bob' | od -An -tx1 | tr -d ' \n')
kbc=$(printf 'bob+charlie' | od -An -tx1 | tr -d ' \n')
kca=$(printf 'charlie+alice' | od -An -tx1 | tr -d ' \n')
route() { "$bin/cmr-route" --state "$work/$1.sqlite" "${@:2}"; }
compose() { # compose ADDRESS TEXT DAYS-AGO: an unsigned message ADDRESS created then
    local t
    t=$(date -u -d "-$3 days" '+%Y/%m/%d %H:%M:%S')
    printf '0\r\n%s %s\r\n\r\n%s\r\n%s' "$t" "$1" "${#2}" "$2"
}
name() { # name ADDRESS: the person behind a router address
    case "$1" in "$A") echo Alice ;; "$B") echo Bob ;; "$C") echo Charlie ;; *) echo "$1" ;; esac
}
label() { # label ROUTER ROW: which of the story's messages a cache row holds
    case "$(route "$1" cache show "$2")" in
    *"What is the largest planet"*) echo "the question" ;;
    *"Hello from Bob"*) echo "M1" ;;
    *Mercury*) echo "M2" ;;
    *Jupiter*) echo "M3" ;;
    *) echo "cache row $2" ;;
    esac
}
# tell ROUTER: read `cmr-route --explain` output on stdin and print each forward it queued
# in the story's words, with the rule that queued it.
tell() {
    local r=$1 out n=0 line what row dest why new m
    out=$(cat)
    new=$(printf '%s\n' "$out" | sed -n 's/^cached: *row \([0-9]*\).*/\1/p' | head -n 1)
    while IFS= read -r line; do
        case "$line" in "  outbox "* | "  held for key exchange"*) ;; *) continue ;; esac
        if ! [[ $line =~ ^\ +outbox\ [0-9]+:\ ([XYZ])\ \(row\ ([0-9]+)\)\ -\>\ ([^ ]+)\ +\[[^]]*\]\ (.*)$ ]]; then
            say "(as the router put it) $line"
            continue
        fi
        what=${BASH_REMATCH[1]} row=${BASH_REMATCH[2]} dest=${BASH_REMATCH[3]} why=${BASH_REMATCH[4]}
        n=$((n + 1))
        case "$what:$why" in
        X:3.2*)
            say "-> $(name "$dest"): $(label "$r" "$row"). Of the peers this router has messages from, $(name "$dest")'s are the closest to it (3.2: the peer whose messages compress it best; ${why#3.2 routing: })." ;;
        X:*"matched cached message"*)
            m=${why#*matched cached message }
            m=${m%% *}
            say "-> $(name "$dest"): $(label "$r" "$row"). It matched $(label "$r" "$m"), whose header names $(name "$dest") (A3: a new message goes to addresses in the header of each cached message it matches)." ;;
        Y:*)
            say "-> $(name "$dest"): $(label "$r" "$row"), the cached message that $(label "$r" "$new") matched (A3: each matched message goes to addresses in the new message's header, here $(label "$r" "$new")'s)." ;;
        *)
            say "-> $(name "$dest"): $(label "$r" "$row") ($why)." ;;
        esac
    done <<<"$out"
    [ "$n" -gt 0 ] || say "Nothing to forward."
}
# pipe FROM TO-ADDRESS TO: FROM's outbox rows for TO-ADDRESS, over a pipe, into TO's router
pipe() {
    "$bin/cmr-send" --state "$work/$1.sqlite" --outbox --print --for "$2" | route "$3" --explain
}

step "3.1: three routers, Alice, Bob and Charlie, each pair sharing an HMAC key"
route alice init --address "$A" >/dev/null
route bob init --address "$B" >/dev/null
route charlie init --address "$C" >/dev/null
route alice peer add "$B" --key-hex "$kab" >/dev/null
route alice peer add "$C" --key-hex "$kca" >/dev/null
route bob peer add "$A" --key-hex "$kab" >/dev/null
route bob peer add "$C" --key-hex "$kbc" >/dev/null
route charlie peer add "$A" --key-hex "$kca" >/dev/null
route charlie peer add "$B" --key-hex "$kbc" >/dev/null
say "alice.sqlite, bob.sqlite and charlie.sqlite; each router holds a key for the other two, and signs what it sends them with it."

step "3.1: what they knew before: Bob sent Alice M1 last week, Charlie sent Bob M2 last month"
compose "$B" "Hello from Bob. I keep a garden and write about tomatoes, compost and bees." 7 \
    | "$bin/cmr-sign" --key-hex "$kab" | route alice --quiet
compose "$C" "Mercury is the innermost planet of the solar system; Venus is the second planet." 30 \
    | "$bin/cmr-sign" --key-hex "$kbc" | route bob --quiet
say "M1 (\"Hello from Bob ...\") is in Alice's cache, M2 (\"Mercury is the innermost planet ...\") in Bob's." \
    "Their signatures verified, so each router now has messages from that peer to score new messages against."

step "3.1: Charlie writes down M3: \"Dave said last year: Jupiter is the largest planet\""
printf 'Dave said last year: Jupiter is the largest planet of the solar system.' \
    | "$bin/cmr-post" --state "$work/charlie.sqlite" >/dev/null
say "Charlie posts it to his own router (cmr-post). It is cached there; nobody has asked about it, so nothing is forwarded."

step "3.1: Alice asks \"What is the largest planet?\" (cmr-post)"
out=$(printf 'What is the largest planet of the solar system?' \
    | "$bin/cmr-post" --state "$work/alice.sqlite" --explain)
say "Her router caches the question and queues:"
tell alice <<<"$out"
if grep -q 'post_routing best' <<<"$out"; then
    say "That score is above distance_threshold, past which a router relays nothing; but a client's own question goes at least to the best peer (3.1: \"She asks Bob\")."
fi
say "She also knows Charlie, but has no message from him yet: nothing to score him by."

step "3.1: Alice -> Bob (a pipe): Bob's router reads the question"
out=$(pipe alice "$B" bob)
say "Bob does not know the answer. His router matches the question with M2 and queues:"
tell bob <<<"$out"

step "3.1: Bob -> Charlie (a pipe): Charlie's router reads the question"
out=$(pipe bob "$C" charlie)
say "The question now carries a line for Bob too: its header names Alice, who asked, and Bob, who passed it on. Charlie's router matches it with M3 and queues:"
tell charlie <<<"$out"

step "3.1: Charlie -> Alice and Charlie -> Bob (pipes): M3 comes back"
out=$(pipe charlie "$A" alice)
say "Alice's router caches M3 and keeps it for her as a reply to her question. It queues:"
tell alice <<<"$out"
out=$(pipe charlie "$B" bob)
say "Bob's router caches M3: the next question about planets it can answer itself, or send straight to Charlie. It queues:"
tell bob <<<"$out"

step "3.1: Alice reads her answer (cmr-post --replies)"
"$bin/cmr-post" --state "$work/alice.sqlite" --replies
if "$bin/cmr-post" --state "$work/alice.sqlite" --replies --all | grep -q Jupiter; then
    say "Alice learnt that Jupiter is the largest planet, and her router learnt that Charlie knows about planets."
else
    echo "the answer did not reach Alice" >&2
    exit 1
fi

step "3.1: left in the outboxes for cmr-send --outbox (the demo delivers no further)"
for r in alice bob charlie; do
    json=$(route "$r" outbox --json)
    paste -d ' ' <(grep -o '"dest":"[^"]*"' <<<"$json" | cut -d'"' -f4) \
        <(grep -o '"cache_id":[0-9]*' <<<"$json" | cut -d: -f2) |
        while read -r dest row; do
            [ -n "$dest" ] && say "${r^}'s router: $(label "$r" "$row") -> $(name "$dest")"
        done
done

say "A router that already holds a message drops another copy of it as a duplicate (A3)."

step "demo done"
