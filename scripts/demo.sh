#!/usr/bin/env bash
# The Appendix A example through the tools: compose the unsigned message, sign it with the
# spec's key "foo" (scheme sha256), show it, verify it, and show that a tampered copy is
# refused (exit 77).
set -euo pipefail
cd "$(dirname "$0")/.."

cargo build --release -q
bin=target/release
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

step() { printf '\n== %s\n' "$*"; }

step "compose the unsigned Appendix A message"
printf '0\r\n2008/09/01 00:00:53.42 http://alice.com/cmr\r\n2008/09/01 00:00:53 udp://192.168.0.102:53/dns-tunnel\r\n2008/08/31 23:59:01.0955 https://www.charlie.com/messages.pl\r\n\r\n14\r\nHello World!\r\n' \
    > "$work/unsigned.msg"
cat -A "$work/unsigned.msg" 2>/dev/null || cat "$work/unsigned.msg"

step "sign with key \"foo\" (hex 666f6f), the spec's scheme"
"$bin/cmr-sign" --scheme sha256 --key-hex 666f6f "$work/unsigned.msg" > "$work/signed.msg"
head -n 1 "$work/signed.msg"
expected=101c1ad32d6fe646a56edba43bd342ee11e45ba188c59aeec91a5590a0ea114d5
if [ "$(head -n 1 "$work/signed.msg" | tr -d '\r')" = "$expected" ]; then
    echo "matches the spec's signature line"
else
    echo "does NOT match the spec's signature line" >&2
    exit 1
fi

step "cmr-parse"
"$bin/cmr-parse" "$work/signed.msg"

step "cmr-parse --json"
"$bin/cmr-parse" --json "$work/signed.msg"

step "verify"
"$bin/cmr-sign" --verify --scheme sha256 --key-hex 666f6f "$work/signed.msg"
echo "cmr-sign --verify: exit $?"

step "tamper with the body (World -> world) and verify again"
sed 's/Hello World/Hello world/' "$work/signed.msg" > "$work/tampered.msg"
set +e
"$bin/cmr-sign" --verify --scheme sha256 --key-hex 666f6f "$work/tampered.msg"
rc=$?
set -e
echo "cmr-sign --verify: exit $rc"
if [ "$rc" -ne 77 ]; then
    echo "expected exit 77 for the tampered copy" >&2
    exit 1
fi

# ---------------------------------------------------------------------------------------
# Section 3.1's conversation between three routers, each with its own state file, the
# outboxes handed over by pipes (cmr-send --outbox --print | cmr-route), every hop signed
# with the HMAC key its two peers share.
#
#   Alice -> Bob:      X = "What is the largest planet?"
#   Bob -> Charlie:    X (Bob knows Charlie from M2, "Mercury is the innermost planet")
#   Charlie -> Alice, Bob: M3 = "Jupiter is the largest planet." (posted by Dave, Charlie's client)

A=http://alice.example/cmr B=http://bob.example/cmr C=http://charlie.example/cmr
kab=$(printf 'alice+bob' | xxd -p 2>/dev/null || printf '616c6963652b626f62')
kbc=$(printf 'bob+charlie' | xxd -p 2>/dev/null || printf '626f622b636861726c6965')
kca=$(printf 'charlie+alice' | xxd -p 2>/dev/null || printf '636861726c69652b616c696365')
route() { "$bin/cmr-route" --state "$work/$1.sqlite" "${@:2}"; }
hand() { # hand FROM TO TO-ADDRESS: FROM's outbox rows for TO, over a pipe, into TO's router
    "$bin/cmr-send" --state "$work/$1.sqlite" --outbox --print --for "$3" \
        | "$bin/cmr-route" --state "$work/$2.sqlite" --explain
}
compose() { # compose ADDRESS TEXT: a new unsigned message created at ADDRESS a while ago
    local t; t=$(date -u -d "-$3 days" '+%Y/%m/%d %H:%M:%S')
    printf '0\r\n%s %s\r\n\r\n%s\r\n%s' "$t" "$1" "${#2}" "$2"
}

step "three routers: alice, bob and charlie, with pairwise HMAC keys"
route alice init --address "$A"
route bob init --address "$B"
route charlie init --address "$C"
route alice peer add "$B" --scheme hmac-sha256 --key-hex "$kab"
route alice peer add "$C" --scheme hmac-sha256 --key-hex "$kca"
route bob peer add "$A" --scheme hmac-sha256 --key-hex "$kab"
route bob peer add "$C" --scheme hmac-sha256 --key-hex "$kbc"
route charlie peer add "$A" --scheme hmac-sha256 --key-hex "$kca"
route charlie peer add "$B" --scheme hmac-sha256 --key-hex "$kbc"
route bob peer list

step "history: Alice got M1 from Bob last week; Bob got M2 from Charlie last month"
compose "$B" "Hello from Bob. I keep a garden and write about tomatoes, compost and bees." 7 \
    | "$bin/cmr-sign" --scheme hmac-sha256 --key-hex "$kab" | route alice --explain
compose "$C" "Mercury is the innermost planet of the solar system; Venus is the second planet." 30 \
    | "$bin/cmr-sign" --scheme hmac-sha256 --key-hex "$kbc" | route bob --explain

step "Dave, a client of Charlie, posts M3"
printf 'Dave said last year: Jupiter is the largest planet of the solar system.' \
    | "$bin/cmr-post" --state "$work/charlie.sqlite" --from mailto:dave@charlie.example

step "Alice posts X; her router queues it for Bob, the only peer she knows"
printf 'What is the largest planet of the solar system?' \
    | "$bin/cmr-post" --state "$work/alice.sqlite" --explain
route alice outbox

step "alice -> bob (pipe): Bob routes X towards Charlie, whose M2 is about planets"
hand alice bob "$B"

step "bob -> charlie (pipe): Charlie matches X with Dave's M3"
hand bob charlie "$C"

step "charlie -> alice and charlie -> bob (pipes): M3 comes back"
hand charlie alice "$A"
hand charlie bob "$B"

step "Alice's answers (cmr-post --replies)"
"$bin/cmr-post" --state "$work/alice.sqlite" --replies
if "$bin/cmr-post" --state "$work/alice.sqlite" --replies --all | grep -q Jupiter; then
    echo "Alice learnt that Jupiter is the largest planet."
else
    echo "the answer did not reach Alice" >&2
    exit 1
fi

step "demo done"
