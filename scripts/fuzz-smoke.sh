#!/usr/bin/env bash
# Fuzz the A2 parser: scripts/fuzz-smoke.sh [RUNS]   (default 10000000)
#
# Installs cargo-fuzz when missing, seeds the corpus from the conformance vectors and runs
# the `parse` target for RUNS executions. Exits non-zero when the fuzzer finds a crash
# (the input is left under fuzz/artifacts/parse/).
set -euo pipefail

runs="${1:-10000000}"
root="$(cd "$(dirname "$0")/.." && pwd)"
shared="${CMR_SHARED:-$root/../shared}"

if ! cargo fuzz --help >/dev/null 2>&1; then
    cargo install cargo-fuzz
fi

# cargo-fuzz needs nightly flags; on a stable toolchain let it use them anyway.
if ! rustc --version | grep -q nightly; then
    export RUSTC_BOOTSTRAP=1
fi

corpus="$root/fuzz/corpus/parse"
mkdir -p "$corpus"
if [ -d "$shared/conformance" ]; then
    find "$shared/conformance" -name '*.msg' -exec cp -f {} "$corpus/" \;
fi

cd "$root"
exec cargo fuzz run parse "$corpus" -- -runs="$runs" -max_len=4096 -print_final_stats=1
