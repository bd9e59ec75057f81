//! The shipped build's unwinder (scripts/build-portable.sh).
//!
//! glibc unwinds a cancelled thread (pthread_cancel, pthread_exit) with
//! libgcc_s.so.1, which it loads itself, and calls the personality routine
//! of every frame on the way: ours too when the thread is cancelled inside
//! a hooked call (connect, accept, close). Rust's personality routine reads
//! that unwinder's context through `_Unwind_GetIP` and friends, so those
//! must be libgcc_s's own. zig (cargo-zigbuild) links LLVM's libunwind
//! statically instead, whose functions misread libgcc_s's context: the
//! cancelled program crashed (tests/reliability.rs, with
//! TEST_SHIPPED_BUILD=1). So the shipped library links libgcc_s.so.1, as
//! the developer build does: `KEEPALIVE_LIBGCC_S` names the system's copy,
//! linked under another name because cargo-zigbuild turns `-lgcc_s` into
//! zig's `-lunwind`. It comes before std's libraries on the link line, so
//! the `_Unwind_*` references bind to it and libunwind is never pulled in.
use std::{env, fs, path::PathBuf};

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-env-changed=KEEPALIVE_LIBGCC_S");
    let Some(libgcc_s) = env::var_os("KEEPALIVE_LIBGCC_S") else {
        // cargo-zigbuild's linker wrapper is named zigcc-...: a zig build
        // made without build-portable.sh gets zig's unwinder.
        let linker = env::var("CARGO_TARGET_X86_64_UNKNOWN_LINUX_GNU_LINKER")
            .or_else(|_| env::var("CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER"));
        if linker.is_ok_and(|linker| linker.contains("zigcc")) {
            println!(
                "cargo:warning=built with zig but without KEEPALIVE_LIBGCC_S: the library gets \
                 zig's unwinder, which crashes a thread cancelled inside a hook; \
                 build with scripts/build-portable.sh"
            );
        }
        return;
    };
    let out = PathBuf::from(env::var("OUT_DIR").expect("cargo sets OUT_DIR"));
    let link = out.join("libgcc_s_shared.so");
    let _ = fs::remove_file(&link);
    std::os::unix::fs::symlink(&libgcc_s, &link).expect("symlink OUT_DIR/libgcc_s_shared.so");
    println!("cargo:rustc-link-search=native={}", out.display());
    println!("cargo:rustc-link-lib=dylib=gcc_s_shared");
}
