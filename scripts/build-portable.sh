#!/usr/bin/env bash
# Builds the shipped library and command: target/portable/libkeepalive.so
# and target/portable/keepalive (or under $CARGO_TARGET_DIR/portable/).
# They ask for at most GLIBC_2.17 (CentOS/RHEL 7 and every glibc since), so
# they load on Debian 11, Ubuntu 20.04, RHEL 8, Amazon Linux 2 as well as
# today's systems; `cargo build --release` (the developer's build) asks for
# whatever this machine's glibc has (2.34 on Debian 12).
#
#   scripts/build-portable.sh                          # release, this arch
#   scripts/build-portable.sh --features panic-in-hook # extra cargo args
#
# How: cargo-zigbuild links with zig, against glibc 2.17's symbol stubs
# (target x86_64-unknown-linux-gnu.2.17); docs/dependencies.md says why.
# The library links this machine's libgcc_s.so.1 for its unwinder, the one
# glibc unwinds cancelled threads with (build.rs says why), and both keep
# Rust's full RELRO (BIND_NOW). The packages (scripts/package.sh), the
# tarball and scripts/bench.sh's "shipped" row use this build.
#
# Missing tools are installed once: cargo-zigbuild with cargo install, zig
# with pip (PyPI's ziglang; cargo-zigbuild finds it as `python3 -m ziglang`).
# Ends by checking the floor (objdump -T): it fails rather than leave a
# library that would stop programs on older systems.
set -euo pipefail
cd "$(dirname "$0")/.."

FLOOR=2.17
arch=$(uname -m)
case "$arch" in
    x86_64 | aarch64) ;;
    *) echo "build-portable.sh: no portable build for $arch (x86_64 and aarch64 only)" >&2; exit 1 ;;
esac
triple="$arch-unknown-linux-gnu"

if ! cargo zigbuild --help >/dev/null 2>&1; then
    echo "build-portable.sh: installing cargo-zigbuild (once): cargo install --locked cargo-zigbuild" >&2
    cargo install --locked --quiet cargo-zigbuild
fi
if ! command -v zig >/dev/null && ! python3 -m ziglang version >/dev/null 2>&1; then
    echo "build-portable.sh: installing zig (once): pip3 install ziglang" >&2
    # Debian 12 marks its Python as externally managed.
    pip3 install --quiet ziglang 2>/dev/null || pip3 install --quiet --break-system-packages ziglang
fi
if command -v rustup >/dev/null && ! rustup target list --installed | grep -qx "$triple"; then
    rustup target add "$triple"
fi

# The library's unwinder: libgcc_s.so.1 (build.rs). Its _Unwind_* symbol
# versions (GCC_3.0 to GCC_4.2.0) are in every libgcc_s since gcc 4.2.
libgcc_s=$(gcc -print-file-name=libgcc_s.so.1 2>/dev/null || true)
case "$libgcc_s" in
    /*) ;;
    *) libgcc_s=/lib/$arch-linux-gnu/libgcc_s.so.1 ;;
esac
if [ ! -f "$libgcc_s" ]; then
    echo "build-portable.sh: libgcc_s.so.1 not found; install it with: apt-get install -y gcc" >&2
    exit 1
fi

target=${CARGO_TARGET_DIR:-$PWD/target}
KEEPALIVE_LIBGCC_S=$libgcc_s cargo zigbuild --release --quiet --target "$triple.$FLOOR" "$@"

out="$target/portable"
mkdir -p "$out"
for file in libkeepalive.so keepalive; do
    # Replaced by rename: a process running the old file keeps it.
    cp "$target/$triple/release/$file" "$out/.$file.new"
    mv -f "$out/.$file.new" "$out/$file"
done

# The floor: the newest GLIBC_ version either file asks for.
for file in "$out/libkeepalive.so" "$out/keepalive"; do
    newest=$(objdump -T "$file" | grep -o 'GLIBC_[0-9][0-9.]*' | sed 's/GLIBC_//' | sort -uV | tail -1)
    if [ "$(printf '%s\n%s\n' "$newest" "$FLOOR" | sort -V | tail -1)" != "$FLOOR" ]; then
        echo "build-portable.sh: $file asks for GLIBC_$newest, above the $FLOOR floor" >&2
        exit 1
    fi
done
echo "$out/libkeepalive.so"
echo "$out/keepalive"
