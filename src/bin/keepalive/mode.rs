//! `--check PROGRAM`: which of our two modes reaches PROGRAM. The preload
//! mode reaches dynamic programs that make their sockets through libc; the
//! kernel-side mode (`--bpf`, root) reaches every TCP connection.

use crate::elf::{self, Kind};
use crate::locate;
use crate::reach;
use std::ffi::OsStr;
use std::io::Read;

/// The shared library whose name in a program's dynamic section means it
/// may connect through io_uring, where no connect() is called.
const LIBURING: &[u8] = b"liburing.so";
/// How much of a program is searched for that name (.dynstr is near the start).
const SEARCHED: u64 = 16 << 20;

/// The `mode` line of `--check PROGRAM`, or None if PROGRAM is not found
/// or not ELF (a script: its interpreter decides).
pub fn for_program(program: &OsStr) -> Option<String> {
    let path = std::env::var_os("PATH");
    let executable = locate::executable(program, path.as_deref())?;
    let file = std::fs::File::open(&executable).ok()?;
    let mode = match elf::inspect(&file) {
        Kind::NotElf => return None,
        Kind::Go => "--bpf (a Go program: LD_PRELOAD cannot reach its sockets)",
        Kind::Static => "--bpf (statically linked: LD_PRELOAD is never read)",
        Kind::Dynamic if reach::warning(&executable).is_some() => {
            "--bpf (setuid or setgid: ld.so ignores LD_PRELOAD for it)"
        }
        Kind::Dynamic if crate::loadable::is_musl_program(&executable) => {
            "--bpf (a musl program: it cannot load the glibc library)"
        }
        Kind::Dynamic if links_liburing(&file) => {
            "preload, or --bpf with rules or --direction (it links liburing: io_uring \
             connects bypass connect(), where the library applies rules)"
        }
        Kind::Dynamic => "preload (a dynamic program: LD_PRELOAD reaches it)",
    };
    Some(mode.to_string())
}

fn links_liburing(file: &std::fs::File) -> bool {
    let mut bytes = Vec::new();
    if file.take(SEARCHED).read_to_end(&mut bytes).is_err() {
        return false;
    }
    bytes
        .windows(LIBURING.len())
        .any(|window| window == LIBURING)
}
