#!/usr/bin/env bash
# The scale benchmark (benches/route_scale.rs) with its end-to-end figures measured on the
# tools as installed (scripts/build-release.sh: release, statically linked on Linux/glibc).
# Arguments go to the benchmark, e.g.
#
#   scripts/bench-scale.sh                                   # 20 and 100 peers, 1k..1M
#   scripts/bench-scale.sh --peers 20 --sizes 10000,1000000
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/build-release.sh --quiet
bin="$(mktemp -d)"
trap 'rm -rf "$bin"' EXIT
# `cargo bench` relinks target/release/cmr-route its own way: run a copy.
cp target/release/cmr-route "$bin/"
CMR_ROUTE_BIN="$bin/cmr-route" cargo bench -q --bench route_scale -- "$@"
