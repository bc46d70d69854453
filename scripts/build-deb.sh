#!/usr/bin/env bash
# Build the Debian package: scripts/build-deb.sh [--no-build]
#
# The release build (scripts/build-release.sh: statically linked on Linux with glibc),
# staged by scripts/install.sh under /usr, packed with dpkg-deb. The package holds the
# seven tools, their man pages, README and docs, and the example Postfix, procmail,
# xinetd, inetd, sshd and cron files under /usr/share/doc/cmr/examples. It starts no
# daemon and has no maintainer scripts: the operator wires the tools into the host.
#
#   sudo dpkg -i target/debian/cmr_VERSION_ARCH.deb
#
# CMR_BUILD_DIR=DIR packs the tools found in DIR instead (default: the release build).
# Prints the path of the .deb on its last line.
set -euo pipefail
cd "$(dirname "$0")/.."

# cargo's progress goes to stderr, so the last line of stdout stays the package's path.
[ "${1:-}" = --no-build ] || scripts/build-release.sh >&2
target=${CARGO_TARGET_DIR:-target}
version=$(sed -n 's/^version = "\(.*\)"$/\1/p' Cargo.toml | head -n 1)-1
arch=$(dpkg --print-architecture)
stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
chmod 755 "$stage"

PREFIX=/usr DESTDIR=$stage CMR_BUILD_DIR=${CMR_BUILD_DIR:-$target/release} scripts/install.sh --no-build >/dev/null
# Debug information stays out of the package (the release profile keeps some for
# backtraces in the build tree).
strip --strip-unneeded "$stage"/usr/bin/cmr-*
doc=$stage/usr/share/doc/cmr
cat >"$doc/copyright" <<'EOF'
Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/
Upstream-Name: cmr

Files: *
License: MIT or Apache-2.0
 The tools are licensed under either of the MIT license or the Apache License,
 Version 2.0, at your option. On Debian systems the Apache License is in
 /usr/share/common-licenses/Apache-2.0.
EOF
printf 'cmr (%s) unstable; urgency=low\n\n  * Built from the source tree.\n\n -- cmr maintainers <cmr@localhost>  %s\n' \
    "$version" "$(date -uR -d "@${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct 2>/dev/null || date +%s)}")" |
    gzip -9n >"$doc/changelog.Debian.gz"
chmod 644 "$doc/copyright" "$doc/changelog.Debian.gz"

install -d -m 755 "$stage/DEBIAN"
(cd "$stage" && find usr -type f -print0 | sort -z | xargs -0 md5sum) >"$stage/DEBIAN/md5sums"
cat >"$stage/DEBIAN/control" <<EOF
Package: cmr
Version: $version
Architecture: $arch
Maintainer: cmr maintainers <cmr@localhost>
Installed-Size: $(du -sk --exclude=DEBIAN "$stage" | cut -f1)
Depends: libc6
Recommends: cron | cron-daemon
Suggests: postfix | mail-transport-agent, xinetd | inetd-superserver, openssh-server, jq
Section: net
Priority: optional
Description: Competitive Message Routing (CMR) as a mail-and-shell-first toolkit
 Small tools over one SQLite state file: cmr-parse, cmr-sign, cmr-route,
 cmr-send, cmr-recv, cmr-keyx and cmr-post. The host's own machinery carries
 the messages: an MTA pipe or .forward, inetd/xinetd, an SSH forced command,
 and cron to drain the outbox. No daemon is started; examples for Postfix,
 procmail, xinetd, inetd, sshd and cron are in /usr/share/doc/cmr/examples.
EOF
mkdir -p "$target/debian"
deb=$target/debian/cmr_${version}_$arch.deb
dpkg-deb --root-owner-group -Zxz --build "$stage" "$deb" >/dev/null
echo "$deb"
