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

step "demo done"
