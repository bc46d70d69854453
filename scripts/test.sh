#!/usr/bin/env bash
# The project's tests: scripts/test.sh
# One command per line; each must pass. Integration scripts are added to this list.
set -euo pipefail
cd "$(dirname "$0")/.."

# Every target must build (benches and examples included); the tests run. Benchmarks print
# figures and are run on purpose (README), not here: tests/route_eval_smoke.rs covers
# route-eval on a subset and benches/parse.rs's quick pass runs below.
cargo test --all-targets --no-run
cargo test
cargo test --bench parse
# Mail, UDP, SSH and cron over the real Postfix, xinetd, sshd and crond (root, loopback):
bash tests/integration/udp-xinetd.sh
bash tests/integration/sshd.sh
bash tests/integration/postfix.sh
bash tests/integration/cron.sh
bash tests/integration/appendix-a.sh
# HTTP, HTTPS and the A4.5 handshake over the real xinetd and curl (root, loopback):
bash tests/integration/http-inetd.sh
bash tests/integration/http-handshake.sh
bash tests/integration/keyx-channels.sh
# The other implementation (cmr-peer, pinned; installed with cargo on first run) on loopback:
bash tests/integration/interop.sh
