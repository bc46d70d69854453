# Helpers every integration script shares (sourced by lib-mailudp.sh and lib-http.sh).

# need_packages PKG...: install what is missing (we are root); `apt-get update` once per
# machine; waits for another apt run's lock instead of failing.
need_packages() {
    local missing=()
    for p in "$@"; do
        dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
    done
    if [ ${#missing[@]} -gt 0 ]; then
        if [ ! -e /tmp/.cmr-apt-updated ]; then
            apt-get update -qq && touch /tmp/.cmr-apt-updated
        fi
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq -o DPkg::Lock::Timeout=600 \
            "${missing[@]}" >/dev/null
    fi
}
