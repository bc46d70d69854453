#!/usr/bin/env bash
# Build the tools as they are meant to be installed: release profile and, on Linux with
# glibc, statically linked (static-pie). Every message may be a process of its own (an MTA
# pipe, an inetd connection, an SSH forced command), and loading shared libraries is a
# large part of a short process's life: measured here, a static `cmr-route` routes a
# message in about 1 ms less than the same code linked dynamically (scripts/bench-route.sh).
# Name resolution still works (glibc reads nsswitch.conf, hosts and resolv.conf itself).
#
#   scripts/build-release.sh [--quiet]     # binaries in target/release/
#
# `cargo rustc` passes the flag to the final link of each tool only, so dependencies and
# procedural macros build as usual. Elsewhere the tools are linked the default way.
set -euo pipefail
cd "$(dirname "$0")/.."
q=()
[ "${1:-}" = --quiet ] && q=(-q)
flags=()
case "$(rustc -vV | sed -n 's/^host: //p')" in
*-linux-gnu*) flags=(-C target-feature=+crt-static) ;;
esac
for src in src/bin/*.rs; do
    cargo rustc "${q[@]}" --release --bin "$(basename "$src" .rs)" -- "${flags[@]}"
done
[ "${1:-}" = --quiet ] || echo "built: $(ls "${CARGO_TARGET_DIR:-target}"/release/cmr-* | grep -v '\.d$' | tr '\n' ' ')"
