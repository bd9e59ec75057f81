//! How the shipped library and command are linked (scripts/build-portable.sh),
//! read from the files themselves with objdump and readelf:
//! - they ask for at most GLIBC_2.17, so they load on CentOS 7 and every
//!   later glibc (tests/bullseye.rs runs them on Debian 11 for real);
//! - full RELRO: BIND_NOW and GNU_RELRO, so that no function table of ours
//!   stays writable in the processes we are loaded into (setuid ones
//!   included, through /etc/ld.so.preload);
//! - no libgcc_s.so.1 to load: the unwinder is linked in, and still catches
//!   a panic of ours.

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
    assert!(glibc_floor(library()).as_slice() > FLOOR.as_slice());
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
    assert_full_relro(library());
}

#[test]
fn shipped_library_needs_only_glibc_objects() {
    let dynamic = readelf(&["-dW"], &portable::library());
    let mut needed: Vec<&str> = dynamic
        .lines()
        .filter(|line| line.contains("(NEEDED)"))
        .filter_map(|line| line.split('[').nth(1)?.split(']').next())
        .collect();
    needed.sort();
    // libdl and libpthread: where dlsym and pthread_key_create lived before
    // glibc 2.34 (empty stubs since). No libgcc_s.so.1: the unwinder is
    // linked in.
    assert_eq!(
        needed,
        [
            "ld-linux-x86-64.so.2",
            "libc.so.6",
            "libdl.so.2",
            "libpthread.so.0"
        ],
        "{dynamic}"
    );
    // Nor is any of the unwinder's functions exported or imported (exported
    // they would replace the program's own).
    let symbols = readelf(&["--dyn-syms", "-W"], &portable::library());
    let unwinder: Vec<&str> = symbols
        .lines()
        .filter(|line| line.contains("_dl_find_object") || line.contains("_Unwind_"))
        .collect();
    assert!(unwinder.is_empty(), "{unwinder:#?}");
    // The control: the table was read, with our hooks exported.
    assert!(
        symbols.lines().any(|line| line.ends_with(" socket")),
        "{symbols}"
    );
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
