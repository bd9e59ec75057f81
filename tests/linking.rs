//! How the shipped library and command are linked (scripts/build-portable.sh),
//! read from the files themselves with objdump and readelf:
//! - they ask for at most GLIBC_2.17, so they load on CentOS 7 and every
//!   later glibc (tests/bullseye.rs runs them on Debian 11 for real);
//! - full RELRO: BIND_NOW and GNU_RELRO, so that no function table of ours
//!   stays writable in the processes we are loaded into (setuid ones
//!   included, through /etc/ld.so.preload);
//! - the library's unwinder is libgcc_s.so.1's, the one glibc unwinds a
//!   cancelled thread with (build.rs): a thread cancelled inside a hooked
//!   call is cancelled as without us, and a panic of ours is still caught.

mod common;

use common::portable::{self, glibc_floor, readelf};
use common::*;
use std::path::Path;
use std::time::Duration;

const FLOOR: [u32; 2] = [2, 17];

#[test]
fn shipped_library_and_command_ask_for_at_most_glibc_2_17() {
    for file in [portable::library(), portable::command()] {
        let floor = glibc_floor(&file);
        assert!(
            floor.as_slice() <= FLOOR.as_slice(),
            "{} asks for GLIBC_{floor:?}, above the 2.17 floor: it would stop programs on \
             CentOS 7 / RHEL 7 (objdump -T shows which symbol)",
            file.display()
        );
    }
    // The control: the developer build (this machine's glibc) asks for more,
    // so the comparison above can fail.
    assert!(glibc_floor(developer_library()).as_slice() > FLOOR.as_slice());
}

/// BIND_NOW (DT_FLAGS), NOW (DT_FLAGS_1) and a GNU_RELRO segment.
fn assert_full_relro(file: &Path) {
    let dynamic = readelf(&["-dW"], file);
    assert!(
        dynamic
            .lines()
            .any(|l| l.contains("(FLAGS)") && l.contains("BIND_NOW")),
        "{}: no BIND_NOW\n{dynamic}",
        file.display()
    );
    assert!(
        dynamic
            .lines()
            .any(|l| l.contains("(FLAGS_1)") && l.contains(" NOW")),
        "{}: no FLAGS_1 NOW\n{dynamic}",
        file.display()
    );
    let segments = readelf(&["-lW"], file);
    assert!(
        segments
            .lines()
            .any(|l| l.trim_start().starts_with("GNU_RELRO")),
        "{}: no GNU_RELRO\n{segments}",
        file.display()
    );
}

#[test]
fn shipped_and_developer_builds_have_full_relro() {
    assert_full_relro(&portable::library());
    assert_full_relro(&portable::command());
    assert_full_relro(developer_library());
}

#[test]
fn shipped_library_needs_only_glibc_and_libgcc_s() {
    let dynamic = readelf(&["-dW"], &portable::library());
    let mut needed: Vec<&str> = dynamic
        .lines()
        .filter(|line| line.contains("(NEEDED)"))
        .filter_map(|line| line.split('[').nth(1)?.split(']').next())
        .collect();
    needed.sort();
    // libdl and libpthread: where dlsym and pthread_key_create lived before
    // glibc 2.34 (empty stubs since). libgcc_s.so.1: the unwinder.
    assert_eq!(
        needed,
        [
            "ld-linux-x86-64.so.2",
            "libc.so.6",
            "libdl.so.2",
            "libgcc_s.so.1",
            "libpthread.so.0"
        ],
        "{dynamic}"
    );
    let symbols = readelf(&["--dyn-syms", "-W"], &portable::library());
    // No unwinder function of our own, exported (it would replace the
    // program's) or used inside (zig's LLVM libunwind misreads the context
    // of the libgcc_s unwinder that glibc cancels threads with).
    let defined: Vec<&str> = symbols
        .lines()
        .filter(|line| line.contains("_dl_find_object") || line.contains("_Unwind_"))
        .filter(|line| !line.contains(" UND "))
        .collect();
    assert!(defined.is_empty(), "{defined:#?}");
    // libgcc_s's, by versions every libgcc_s since gcc 4.2 has (CentOS 7's
    // is gcc 4.8).
    let imported: Vec<&str> = symbols
        .lines()
        .filter(|line| line.contains("_Unwind_") && line.contains(" UND "))
        .collect();
    assert!(imported.len() >= 5, "{symbols}");
    for line in imported {
        let version = line
            .split('@')
            .nth(1)
            .and_then(|v| v.split_whitespace().next())
            .unwrap_or_else(|| panic!("no version: {line}"));
        assert!(
            ["GCC_3.0", "GCC_3.3", "GCC_4.2.0"].contains(&version),
            "{line}"
        );
    }
    // The control: the table was read, with our hooks exported.
    assert!(
        symbols.lines().any(|line| line.ends_with(" socket")),
        "{symbols}"
    );
}

#[test]
fn a_thread_cancelled_inside_a_hooked_call_is_cancelled_as_without_us() {
    // glibc unwinds the cancelled thread through our hook's frames with
    // libgcc_s, calling our personality routine: with zig's static
    // unwinder this crashed (SIGSEGV). tests/c/cancelprobe.c checks the
    // thread's end and the sockets made afterwards.
    for call in ["connect", "accept"] {
        let mut cmd = command(c_program("cancelprobe"), false, &[("KEEPIDLE", "61")]);
        cmd.env("LD_PRELOAD", portable::library()).arg(call);
        let out = run(cmd, Duration::from_secs(60));
        assert_eq!(
            out.status.code(),
            Some(0),
            "{call}: {:?}\n{}{}",
            out.status,
            stdout(&out),
            stderr(&out)
        );
        let text = stdout(&out);
        assert!(
            text.contains(&format!("{call} joined=canceled cleanup=1\n")),
            "{text}"
        );
        assert!(text.contains("client keepalive=1 idle=61 "), "{text}");
    }
}

#[test]
fn shipped_library_configures_sockets_with_and_without_ld_bind_now() {
    for bind_now in [false, true] {
        let mut cmd = command(c_program("lifeprobe"), false, &[("KEEPIDLE", "61")]);
        cmd.env("LD_PRELOAD", portable::library());
        if bind_now {
            cmd.env("LD_BIND_NOW", "1");
        }
        cmd.args(["socket", "probe"]);
        let out = run(cmd, Duration::from_secs(30));
        assert!(out.status.success(), "{out:?}");
        assert!(
            stdout(&out).contains("probe keepalive=1 idle=61"),
            "LD_BIND_NOW={bind_now}: {}",
            stdout(&out)
        );
    }
}

#[test]
fn shipped_unwinder_catches_a_panic_of_ours_and_walks_the_program() {
    // Built with the test-only panic-in-hook: our part of every socket()
    // panics. Caught, the program exits 0 (not SIGABRT), its socket left
    // alone; RUST_BACKTRACE walks through main and libc with the linked-in
    // unwinder.
    let library = portable::build("panic-in-hook").join("libkeepalive.so");
    let mut cmd = command(
        c_program("sockprobe"),
        false,
        &[("KEEPIDLE", "61"), ("RUST_BACKTRACE", "full")],
    );
    cmd.env("LD_PRELOAD", &library);
    cmd.args(["socket", "inet", "stream", "0"]);
    let out = run(cmd, Duration::from_secs(60));
    let (text, err) = (stdout(&out), stderr(&out));
    assert_eq!(out.status.code(), Some(0), "{:?}\n{text}{err}", out.status);
    assert!(err.contains("panic-in-hook: a test-only panic"), "{err}");
    assert!(text.starts_with("rc=0 errno=4242 loaded=1\n"), "{text}");
    assert!(text.contains("socket fd=3 keepalive=0 "), "{text}");
    assert!(err.contains(" - main\n"), "{err}");
    assert!(err.contains("__libc_start_main"), "{err}");
}
