#!/bin/bash
# Every mail / UDP / SSH / cron integration script (and the key exchange over them), in turn (root; installs what it needs).
# CMR_SKIP_REAL_CRON=1 skips the part of cron.sh that waits for crond's next minute.
set -uo pipefail
dir=$(dirname "$0")
failed=()
for t in udp-xinetd sshd postfix cron appendix-a keyx-channels; do
    echo "=== $t"
    bash "$dir/$t.sh" || failed+=("$t")
done
if [ ${#failed[@]} -gt 0 ]; then
    echo "FAILED: ${failed[*]}"
    exit 1
fi
echo "all passed"
