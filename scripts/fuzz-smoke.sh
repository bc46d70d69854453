#!/usr/bin/env bash
# Fuzz every decoder that takes bytes from the network or from mail:
#
#   scripts/fuzz-smoke.sh [RUNS] [TARGET...]     (default 10000000 runs, every target)
#
# Targets (fuzz/fuzz_targets/): parse (A2 wire format), mail (cmr-recv --mail extraction),
# http_request (the HTTP request head and body), http_chunked (chunked bodies), multipart,
# udp (datagram unframing), keyx_body (A5 key-exchange bodies), handshake_query (the A4.5
# query).
#
# Installs what it needs when it is missing: a nightly toolchain (rustup) and cargo-fuzz
# (cargo install). Seeds each corpus (fuzz/corpus/TARGET/, not committed) from the
# conformance vectors and the HTTP fixtures, runs each target for RUNS executions, prints libFuzzer's final stats, and exits non-zero at the first
# crash (the input is left under fuzz/artifacts/TARGET/). RUNS=0 runs only the corpus.
#
# Environment: CMR_SHARED (the shared tree with conformance/), FUZZ_NICE (niceness,
# default 10), FUZZ_SECONDS (stop each target after this many seconds, even short of RUNS),
# FUZZ_SANITIZER (address, the default, or none: the decoders are safe Rust, so a build
# without AddressSanitizer finds the same panics several times faster).
set -euo pipefail

runs="${1:-10000000}"
shift || true
root="$(cd "$(dirname "$0")/.." && pwd)"
shared="${CMR_SHARED:-$root/../shared}"
all=(parse mail http_request http_chunked multipart udp keyx_body handshake_query)
if [ "$#" -gt 0 ]; then targets=("$@"); else targets=("${all[@]}"); fi

say() { printf 'fuzz-smoke: %s\n' "$*" >&2; }

if ! rustup toolchain list 2>/dev/null | grep -q '^nightly'; then
    say "installing the nightly toolchain (rustup toolchain install nightly --profile minimal)"
    rustup toolchain install nightly --profile minimal
fi
if ! cargo fuzz --help >/dev/null 2>&1; then
    say "installing cargo-fuzz (cargo install cargo-fuzz --locked)"
    cargo install cargo-fuzz --locked
fi

corpus() { mkdir -p "$root/fuzz/corpus/$1"; printf '%s' "$root/fuzz/corpus/$1"; }
seed() { # seed TARGET NAME BYTES (printf format)
    # shellcheck disable=SC2059
    printf "$3" >"$(corpus "$1")/$2"
}

msg='0\r\n2030/01/01 00:00:00 http://alice.test/cmr\r\n\r\n5\r\nhello'
if [ -d "$shared/conformance" ]; then
    find "$shared/conformance" -name '*.msg' -exec cp -f {} "$(corpus parse)/" \;
fi
seed parse spec "$msg"
seed mail plain "From: a@x.test\r\nTo: b@y.test\r\nSubject: cmr\r\n\r\n$msg"
seed mail mime "From: a@x.test\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"b1\"\r\n\r\n--b1\r\nContent-Type: text/plain\r\n\r\nhi\r\n--b1\r\nContent-Type: application/octet-stream\r\nContent-Transfer-Encoding: base64\r\n\r\nMA0KMjAzMC8wMS8wMSAwMDowMDowMCBodHRwOi8vYWxpY2UudGVzdC9jbXINCg0KNQ0KaGVsbG8=\r\n--b1--\r\n"
seed mail qp "From: a@x.test\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n0=0D=0A2030/01/01 00:00:00 http://alice.test/cmr=0D=0A=0D=0A5=0D=0Ahello"
if [ -d "$root/tests/fixtures/http" ]; then
    cp -f "$root"/tests/fixtures/http/*.http "$(corpus http_request)/"
fi
seed http_request post "POST / HTTP/1.1\r\nHost: b\r\nContent-Length: 53\r\n\r\n$msg"
seed http_request get "GET /?reply=abcdef HTTP/1.1\r\nHost: b\r\n\r\n"
seed http_chunked one "5\r\nhello\r\n0\r\n\r\n"
seed http_chunked ext "3;x=y\r\nabc\r\n2\r\nde\r\n0\r\nTrailer: t\r\n\r\n"
seed multipart upload "multipart/form-data; boundary=XyZ\n--XyZ\r\nContent-Disposition: form-data; name=\"message\"; filename=\"m\"\r\nContent-Type: application/octet-stream\r\n\r\n$msg\r\n--XyZ--\r\n"
seed udp tagged "bob\n$msg"
seed keyx_body rsa_request "RSA key exchange request=c5a1,10001."
seed keyx_body rsa_reply "RSA key exchange reply=1f."
seed keyx_body dh_request "DH key exchange request=2,17,5."
seed keyx_body dh_reply "DH key exchange reply=3."
seed keyx_body clear "Clear key exchange=00112233445566778899aabbccddeeff."
seed handshake_query request "request=http://alice.test/cmr&key=0123456789abcdef0123456789abcdef"
seed handshake_query reply "reply=0123456789abcdef0123456789abcdef"

# SQLite's C code (bundled, linked into the library the targets call) trips ASan's
# one-definition-rule check at start-up; the decoders under test are Rust.
export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_odr_violation=0}"
extra=()
if [ -n "${FUZZ_SECONDS:-}" ]; then extra+=(-max_total_time="$FUZZ_SECONDS"); fi

cd "$root/fuzz"
for t in "${targets[@]}"; do
    say "target $t: $runs runs (cargo +nightly fuzz run $t -- -runs=$runs)"
    nice -n "${FUZZ_NICE:-10}" cargo +nightly fuzz run -s "${FUZZ_SANITIZER:-address}" "$t" "$(corpus "$t")" -- \
        -runs="$runs" -max_len=4096 -timeout=10 -rss_limit_mb=1024 -print_final_stats=1 \
        "${extra[@]}"
done
say "every target ran without a crash (up to $runs executions each; see the stats above)"
