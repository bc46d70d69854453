#!/usr/bin/env bash
# Install the tools, their man pages and the example configurations, as packagers expect:
#
#   scripts/install.sh                         # build (release, static), install under /usr/local
#   PREFIX=/usr DESTDIR=/tmp/stage scripts/install.sh --no-build
#   scripts/install.sh --uninstall             # remove what an install under PREFIX put there
#
#   $DESTDIR$PREFIX/bin/cmr-*                        the tools (src/bin/*.rs)
#   $DESTDIR$PREFIX/share/man/man1/cmr-*.1.gz        their manuals; man7/cmr.7.gz
#   $DESTDIR$PREFIX/share/doc/cmr/                   README.md, docs/*.md
#   $DESTDIR$PREFIX/share/doc/cmr/examples/          postfix, procmail, xinetd, inetd, sshd,
#                                                    cron: the snippets docs/transports.md uses
#
# --no-build installs what is in $CMR_BUILD_DIR (default target/release, or
# $CARGO_TARGET_DIR/release) without building. Nothing is started: cmr has no daemon; the
# examples show how to wire the tools into the host's own Postfix, inetd, sshd and cron.
set -euo pipefail
cd "$(dirname "$0")/.."

PREFIX=${PREFIX:-/usr/local}
DESTDIR=${DESTDIR:-}
bindir=$DESTDIR$PREFIX/bin
mandir=$DESTDIR$PREFIX/share/man
docdir=$DESTDIR$PREFIX/share/doc/cmr
build=${CMR_BUILD_DIR:-${CARGO_TARGET_DIR:-target}/release}
# Every binary of the crate (src/bin/NAME.rs), so a new tool is installed with the others.
tools=()
for src in src/bin/*.rs; do tools+=("$(basename "$src" .rs)"); done
examples=(postfix procmail xinetd inetd sshd cron)

case "${1:-}" in
--uninstall)
    for t in "${tools[@]}"; do rm -f "$bindir/$t"; done
    for m in man/*.1 man/*.7; do rm -f "$mandir/man${m##*.}/$(basename "$m").gz"; done
    rm -rf "$docdir"
    echo "removed cmr from $DESTDIR$PREFIX"
    exit 0
    ;;
--no-build) ;;
"") scripts/build-release.sh ;;
*)
    echo "usage: scripts/install.sh [--no-build | --uninstall]  (PREFIX, DESTDIR from the environment)" >&2
    exit 64
    ;;
esac

for t in "${tools[@]}"; do
    [ -x "$build/$t" ] || {
        echo "scripts/install.sh: $build/$t is missing: build first (scripts/build-release.sh)" >&2
        exit 66
    }
done

install -d -m 755 "$bindir" "$mandir/man1" "$mandir/man7" "$docdir/examples"
for t in "${tools[@]}"; do
    install -m 755 "$build/$t" "$bindir/$t"
done
# Man pages compressed, reproducibly (no name or time stamp in the gzip header).
for m in man/*.1 man/*.7; do
    sect=${m##*.}
    gzip -9nc "$m" >"$mandir/man$sect/$(basename "$m").gz"
    chmod 644 "$mandir/man$sect/$(basename "$m").gz"
done
install -m 644 README.md "$docdir/"
install -d -m 755 "$docdir/docs"
install -m 644 docs/*.md "$docdir/docs/"
for e in "${examples[@]}"; do
    install -d -m 755 "$docdir/examples/$e"
    install -m 644 "scripts/$e"/* "$docdir/examples/$e/"
done
echo "installed ${tools[*]} in $bindir; manuals in $mandir; examples in $docdir/examples"
