#!/usr/bin/env bash
# The project's tests: scripts/test.sh
# One command per line; each must pass. Integration scripts are added to this list.
set -euo pipefail
cd "$(dirname "$0")/.."

cargo test --all-targets
