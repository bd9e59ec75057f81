//! How the release library is linked, which decides what every process it
//! is preloaded into pays at start-up (issue 14, build.rs): no shared object
//! besides libc and the dynamic linker, and libc functions bound at their
//! first call rather than all at load. Read from the library itself with
//! readelf; start-up instruction counts are scripts/bench.sh's.

mod common;

use common::*;
use std::process::Command;
use std::time::Duration;

fn readelf(args: &[&str]) -> String {
    let out = Command::new("readelf")
        .args(args)
        .arg(library())
        .output()
        .expect("run readelf (apt-get install -y binutils)");
    assert!(out.status.success(), "readelf {args:?}: {out:?}");
    stdout(&out)
}

#[test]
fn only_libc_and_the_dynamic_linker_are_needed() {
    let dynamic = readelf(&["-dW"]);
    let mut needed: Vec<&str> = dynamic
        .lines()
        .filter(|line| line.contains("(NEEDED)"))
        .filter_map(|line| line.split('[').nth(1)?.split(']').next())
        .collect();
    needed.sort();
    // libgcc_s.so.1 would be a whole object more to load in every process:
    // the unwinder is linked in statically instead (build.rs).
    assert_eq!(needed, ["ld-linux-x86-64.so.2", "libc.so.6"], "{dynamic}");
    // Lazy binding: neither DF_BIND_NOW nor DF_1_NOW.
    assert!(!dynamic.contains("BIND_NOW"), "{dynamic}");
    assert!(!dynamic.contains("Flags: NOW"), "{dynamic}");
}

#[test]
fn the_static_unwinder_neither_imports_nor_exports_dl_find_object() {
    let symbols = readelf(&["--dyn-syms", "-W"]);
    // Imported from libc it would raise the glibc floor to 2.35; exported it
    // would replace glibc's for the whole process. The library's own copy
    // (src/unwinder_support.rs) is hidden: in no dynamic symbol table.
    // Nor is any of the unwinder's functions exported or imported.
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
fn functions_are_bound_at_their_first_call_not_at_load() {
    let relocations = readelf(&["-rW"]);
    // R_X86_64_GLOB_DAT is bound before main() in every process. Only these
    // may use it: weak references that the C start files and libgcc test for
    // NULL (a trampoline would never be NULL), our own exported close,
    // which the library's code calls, and `environ`: data, not a function,
    // read in one pass at load (src/environment.rs).
    let allowed = [
        "environ",
        "__gmon_start__",
        "_ITM_deregisterTMCloneTable",
        "_ITM_registerTMCloneTable",
        "__cxa_finalize",
        "__pthread_key_create",
        "close",
    ];
    let eager: Vec<&str> = relocations
        .lines()
        .filter(|line| line.contains("R_X86_64_GLOB_DAT"))
        .filter_map(|line| line.split_whitespace().nth(4))
        .map(|symbol| symbol.split('@').next().unwrap_or(symbol))
        .filter(|symbol| !allowed.contains(symbol))
        .collect();
    assert!(
        eager.is_empty(),
        "bound at load in every process; add them to LAZY_IMPORTS in build.rs: {eager:?}"
    );
    // The control: the lazily bound functions are there, as PLT slots.
    let lazy = relocations
        .lines()
        .filter(|line| line.contains("R_X86_64_JUMP_SLOT"))
        .count();
    assert!(
        lazy >= 40,
        "only {lazy} lazily bound functions:\n{relocations}"
    );
}

#[test]
fn with_ld_bind_now_everything_is_bound_at_load_and_still_works() {
    // The user's choice of immediate binding must not change what we do.
    for bind_now in [false, true] {
        let mut cmd = command(c_program("lifeprobe"), true, &[("KEEPIDLE", "61")]);
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
