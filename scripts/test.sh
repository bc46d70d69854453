#!/usr/bin/env bash
# The project's tests: scripts/test.sh [--no-system]
#
# Every target builds (dev profile: the build scripts/demo.sh made, reused), the cargo
# tests run, then the integration scripts run the real Postfix, xinetd, sshd, cron and curl
# on loopback. Those need root and change this machine outside the checkout: the list is
# printed before anything changes, and what can be put back is put back at the end.
# --no-system (or not being root) runs the cargo steps only.
#
# Output is TAP (`prove -e bash scripts/test.sh` reads it): a plan, one `ok N - STEP` or
# `not ok N - STEP` per step with the step's own output indented beneath it, and the last
# line `# N passed, N failed`. Every step runs, whatever failed before it; the exit status
# is 0 only when all passed.
#
# CMR_BIN=DIR runs the integration scripts and the README test against tools installed in
# DIR (e.g. /usr/bin from the Debian package) instead of this build's.
set -uo pipefail
cd "$(dirname "$0")/.."

system=yes
[ "${1:-}" = --no-system ] && system=no
[ "$(id -u)" = 0 ] || system=no

# name|command. Integration scripts are added to this list (they source lib-common.sh).
steps=(
    "build every target (benches and examples too)|cargo test --all-targets --no-run"
    "cargo test|cargo test --no-fail-fast"
    "the parse benchmark's quick pass|cargo test --bench parse"
    "the demo (Appendix A, Section 3.1) runs to its end|scripts/demo.sh"
)
# Benchmarks print figures and are run on purpose (README), not here:
# tests/route_eval_smoke.rs covers route-eval on a subset.
scripts=(
    # Mail, UDP, SSH and cron over the real Postfix, xinetd, sshd and crond:
    tests/integration/udp-xinetd.sh
    tests/integration/sshd.sh
    tests/integration/postfix.sh
    tests/integration/cron.sh
    tests/integration/appendix-a.sh
    # HTTP, HTTPS and the A4.5 handshake over the real xinetd and curl:
    tests/integration/http-inetd.sh
    tests/integration/http-handshake.sh
    tests/integration/keyx-channels.sh
    # The other implementation (cmr-peer, pinned; installed with cargo on first run):
    tests/integration/interop.sh
)
# What the integration scripts install when it is missing (each installs its own share).
packages=(postfix xinetd openssh-server openssh-client cron curl openssl netcat-openbsd
    sqlite3 python3 mblaze clang)

if [ "$system" = yes ]; then
    for s in "${scripts[@]}"; do steps+=("$s|bash $s"); done
fi
echo "1..${#steps[@]}"

# --- what the run changes outside the checkout --------------------------------------
if [ "$system" = yes ]; then
    missing=()
    for p in "${packages[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
    had_user=no
    id cmrtest >/dev/null 2>&1 && had_user=yes
    had_maillog=no
    [ -e /var/log/cmr-test-postfix.log ] && had_maillog=yes
    mailname_before=$(cat /etc/mailname 2>/dev/null || echo '(none)')
    apt_note=
    [ ${#missing[@]} -eq 0 ] || apt_note='
#     (apt-get update first; Postfix preseeded "Local only" with mail name cmr.test, so
#     its package writes /etc/mailname; packages stay installed)'
    cat <<EOF
# The integration scripts change this machine (as root):
#   apt-get install: ${missing[*]:-nothing, every package is there}$apt_note
#   a system user cmrtest with a home directory: $([ "$had_user" = yes ] && echo "exists already, kept" || echo "created, removed at the end")
#   /etc/postfix/main.cf and master.cf: changed per script, put back; Postfix started and
#     stopped again (reloaded if it was running); newaliases rebuilds /etc/aliases.db
#   ~cmrtest/.forward and /etc/cron.d/cmr-test-PID: written, removed by their script
#   /var/log/cmr-test-postfix.log (Postfix's log for the run): $([ "$had_maillog" = yes ] && echo "exists already, kept" || echo "removed at the end")
#   private xinetd, sshd and cron daemons on 127.0.0.1, stopped by their script; /run/sshd
#   /etc/mailname now: $mailname_before (put back at the end if it changes)
#   work directories /tmp/cmr-*-test.*, removed by their script; /tmp/.cmr-apt-updated
EOF
elif [ "$(id -u)" != 0 ]; then
    echo "# not root: the integration scripts (real Postfix, xinetd, sshd, cron) are skipped"
else
    echo "# --no-system: the integration scripts are skipped"
fi

restore() {
    [ "$system" = yes ] || return 0
    echo "# putting back what the run changed"
    # Another integration run (another checkout) may still be using them.
    if pgrep -f 'tests/integration/[a-z-]*\.sh' >/dev/null; then
        echo "#   another integration run is going on: cmrtest and the Postfix log are kept"
    else
        if [ "$had_user" = no ] && id cmrtest >/dev/null 2>&1; then
            userdel -r cmrtest >/dev/null 2>&1 && echo "#   removed the user cmrtest"
        fi
        if [ "$had_maillog" = no ] && [ -e /var/log/cmr-test-postfix.log ]; then
            rm -f /var/log/cmr-test-postfix.log && echo "#   removed /var/log/cmr-test-postfix.log"
        fi
    fi
    if [ "$mailname_before" != '(none)' ] && [ "$(cat /etc/mailname 2>/dev/null)" != "$mailname_before" ]; then
        printf '%s\n' "$mailname_before" >/etc/mailname && echo "#   /etc/mailname is $mailname_before again"
    fi
    local now=()
    for p in "${missing[@]}"; do dpkg -s "$p" >/dev/null 2>&1 && now+=("$p"); done
    if [ ${#now[@]} -gt 0 ]; then
        echo "#   installed by this run and left installed: ${now[*]} (apt-get purge to remove)"
    fi
}

# --- the steps ------------------------------------------------------------------------
passed=0 failed=0 n=0
for s in "${steps[@]}"; do
    n=$((n + 1))
    name=${s%%|*} cmd=${s#*|}
    echo "# $n/${#steps[@]} $name: $cmd"
    start=$(date +%s)
    bash -c "$cmd" 2>&1 | sed -u 's/^/    /' | tee "${TMPDIR:-/tmp}/cmr-test-step.$$"
    rc=${PIPESTATUS[0]}
    took=$(($(date +%s) - start))
    inner=$(sed -n 's/^    # \([0-9]* passed, [0-9]* failed\)$/\1/p' "${TMPDIR:-/tmp}/cmr-test-step.$$" | tail -n 1)
    rm -f "${TMPDIR:-/tmp}/cmr-test-step.$$"
    detail="${took}s${inner:+, $inner}"
    if [ "$rc" -eq 0 ]; then
        passed=$((passed + 1))
        echo "ok $n - $name ($detail)"
    else
        failed=$((failed + 1))
        echo "not ok $n - $name (exit $rc, $detail)"
    fi
done

restore
echo "# $passed passed, $failed failed"
[ "$failed" -eq 0 ]
