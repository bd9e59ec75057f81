#!/bin/sh
# Installs libkeepalive.so, the keepalive command, the man pages and the
# systemd drop-in example, the agent's unit (where there is one) and the
# template that attaches the kernel-side mode to another unit.
#
# From the release tarball (keepalive-VERSION-ARCH-linux-gnu.tar.gz, made
# by scripts/package.sh; loads on glibc 2.17 and later):
#   tar xzf keepalive-*.tar.gz && sudo keepalive-*/install.sh
# From a source tree, after building:
#   cargo build --release          # or scripts/build-portable.sh
#   sudo scripts/install.sh                          # under /usr/local
#   PREFIX=/usr DESTDIR=/tmp/pkg scripts/install.sh  # staged, for a package
#   sudo scripts/install.sh --uninstall              # same PREFIX and DESTDIR
#
# PREFIX (default /usr/local) is where the files live when used; DESTDIR, if
# set, is prepended only while copying. Beside this script in a tarball, the
# files come from lib/, bin/, man/ and systemd/; in a source tree, from
# target/release (or $CARGO_TARGET_DIR/release; KEEPALIVE_BUILD=portable:
# target/portable, the build for older systems). This script does not
# build, so root needs no Rust toolchain.
#
# PREFIX/share/keepalive/installed records what was installed ("file PATH",
# and "dir PATH" for each directory this script created), so --uninstall
# removes exactly those files, and those directories once they are empty.
set -eu

usage() {
    echo "usage: $0 [--uninstall]    environment: PREFIX, DESTDIR, CARGO_TARGET_DIR"
}

uninstall=false
case "${1-}" in
    "") ;;
    --uninstall) uninstall=true ;;
    -h | --help) usage; exit 0 ;;
    *) usage >&2; exit 2 ;;
esac
[ $# -le 1 ] || { usage >&2; exit 2; }

prefix=${PREFIX:-/usr/local}
destdir=${DESTDIR:-}
case "$prefix" in
    /*) ;;
    *) echo "$0: PREFIX must be an absolute path, not '$prefix'" >&2; exit 2 ;;
esac
case "$prefix" in
    *" "* | *:*)
        # The command puts PREFIX/lib/libkeepalive.so into LD_PRELOAD, which
        # splits at spaces and colons.
        echo "$0: PREFIX must not contain a space or a colon: LD_PRELOAD could not hold it" >&2
        exit 2 ;;
esac
prefix=${prefix%/}
manifest="$prefix/share/keepalive/installed"

if $uninstall; then
    if [ ! -f "$destdir$manifest" ]; then
        echo "$0: nothing to uninstall: $destdir$manifest not found" >&2
        exit 1
    fi
    sed -n 's/^file //p' "$destdir$manifest" | while IFS= read -r path; do
        if [ -e "$destdir$path" ] || [ -L "$destdir$path" ]; then
            rm -f "$destdir$path"
            echo "removed $destdir$path"
        fi
    done
    dirs=$(sed -n 's/^dir //p' "$destdir$manifest")
    rm -f "$destdir$manifest"
    echo "removed $destdir$manifest"
    # Deepest first; a directory something else now uses stays.
    printf '%s\n' "$dirs" | awk '{ print length($0) " " $0 }' | sort -rn | cut -d' ' -f2- |
        while IFS= read -r dir; do
            [ -n "$dir" ] || continue
            if rmdir "$destdir$dir" 2>/dev/null; then
                echo "removed $destdir$dir/"
            fi
        done
    exit 0
fi

here=$(cd "$(dirname "$0")" && pwd)
if [ -f "$here/lib/libkeepalive.so" ] && [ -f "$here/bin/keepalive" ]; then
    # An unpacked release tarball: everything is beside this script.
    library=$here/lib/libkeepalive.so
    command=$here/bin/keepalive
    man=$here/man
    systemd=$here/systemd
else
    repo=$(cd "$here/.." && pwd)
    build=${CARGO_TARGET_DIR:-$repo/target}/${KEEPALIVE_BUILD:-release}
    library=$build/libkeepalive.so
    command=$build/keepalive
    man=$repo/man
    systemd=$repo/scripts/systemd
    for built in "$library" "$command"; do
        if [ ! -f "$built" ]; then
            echo "$0: $built not found: run cargo build --release first" >&2
            exit 1
        fi
    done
fi

# Directories created by an earlier install stay recorded as ours.
created=$(mktemp)
installed=$(mktemp)
trap 'rm -f "$created" "$installed"' EXIT
if [ -f "$destdir$manifest" ]; then
    sed -n '/^dir /p' "$destdir$manifest" >"$created"
fi

# mkdir -p that records each directory it creates.
make_dir() {
    path=""
    # Split on "/" without globbing the components.
    set -f
    old_ifs=$IFS
    IFS=/
    for part in $1; do
        [ -n "$part" ] || continue
        path="$path/$part"
        if [ ! -d "$destdir$path" ]; then
            mkdir "$destdir$path"
            echo "dir $path" >>"$created"
        fi
    done
    IFS=$old_ifs
    set +f
}

# put MODE SOURCE DIRECTORY [NAME]
put() {
    target="$3/${4:-$(basename "$2")}"
    make_dir "$3"
    install -m "$1" "$2" "$destdir$target"
    echo "file $target" >>"$installed"
    echo "installed $destdir$target"
}

if [ -n "$destdir" ] && [ ! -d "$destdir" ]; then
    mkdir -p "$destdir"
fi
put 0644 "$library" "$prefix/lib"
put 0755 "$command" "$prefix/bin"
put 0644 "$man/keepalive.1" "$prefix/share/man/man1"
put 0644 "$man/libkeepalive.8" "$prefix/share/man/man8"

# The drop-in example, pointing at this PREFIX's library.
dropin=$(mktemp)
sed "s|/usr/local/lib/libkeepalive.so|$prefix/lib/libkeepalive.so|g" \
    "$systemd/keepalive.conf" >"$dropin"
put 0644 "$dropin" "$prefix/share/doc/keepalive" keepalive.conf
rm -f "$dropin"
# The node agent's unit, beside the drop-in (not enabled), running this
# PREFIX's command.
if [ -f "$systemd/keepalive-agent.service" ]; then
    unit=$(mktemp)
    sed "s|^ExecStart=/usr/bin/keepalive |ExecStart=$prefix/bin/keepalive |" \
        "$systemd/keepalive-agent.service" >"$unit"
    put 0644 "$unit" "$prefix/share/doc/keepalive" keepalive-agent.service
    rm -f "$unit"
fi
# The template attaching the kernel-side mode to another unit, running
# this PREFIX's command (ExecStart= and ExecStop=).
unit=$(mktemp)
sed "/^Exec/ s|/usr/bin/keepalive |$prefix/bin/keepalive |" \
    "$systemd/keepalive-attach@.service" >"$unit"
put 0644 "$unit" "$prefix/share/doc/keepalive" keepalive-attach@.service
rm -f "$unit"

make_dir "$prefix/share/keepalive"
sort -u "$created" >"$destdir$manifest.new"
cat "$installed" >>"$destdir$manifest.new"
mv "$destdir$manifest.new" "$destdir$manifest"
echo "recorded in $destdir$manifest"
