//! Link settings of libkeepalive.so that keep the start-up of every process
//! it is preloaded into cheap (issue 14; figures in scripts/bench.sh).
//!
//! 1. (Tried and dropped: linking the unwinder statically, libgcc_eh.a
//!    instead of libgcc_s.so.1, saved about 21k instructions at start-up but
//!    raised the glibc floor from 2.34 to 2.35 (`_dl_find_object`), which
//!    would shut out RHEL 9. tests/package.rs guards the floor.)
//!
//! 2. Lazy binding. With immediate binding the dynamic linker looks up every
//!    libc function the library imports before the program's main(), most
//!    of which (std's panic and backtrace code) never run: 500-1,000
//!    instructions each. `-z lazy` defers each lookup to its first call; but
//!    Rust calls an import through the GOT, which is always bound at load.
//!    So every import in `LAZY_IMPORTS` is renamed by `--wrap` to a hidden
//!    local trampoline (`__wrap_NAME`, in `src/lazy_imports.rs`) that jumps
//!    to the real function through the PLT: bound at its first call.
use std::{env, fs, path::PathBuf};

/// libc functions the library (with std) calls. One missing here is bound
/// at load time again: tests/linking.rs names it.
/// Not here: symbols used as data or tested for NULL (weak references of
/// the C start files and of libgcc: `__gmon_start__`, `__cxa_finalize`,
/// `__pthread_key_create`, ...), `__tls_get_addr` (already lazy), and never
/// a function we hook (socket, close, dup, ...): the library defines those
/// itself and finds libc's with dlsym(RTLD_NEXT).
const LAZY_IMPORTS: &[&str] = &[
    // std: memory and strings
    "malloc",
    "calloc",
    "realloc",
    "free",
    "posix_memalign",
    "memcpy",
    "memmove",
    "memset",
    "bcmp",
    "strlen",
    // std: environment, files, threads (mostly the panic/backtrace code)
    "getenv",
    "getcwd",
    "realpath",
    "readlink",
    "open",
    "open64",
    "read",
    "write",
    "writev",
    "lseek64",
    "fstat",
    "fstat64",
    "stat64",
    "statx",
    "mmap64",
    "munmap",
    "dl_iterate_phdr",
    "abort",
    "pthread_key_create",
    "pthread_key_delete",
    "pthread_setspecific",
    // ours: configuration, diagnostics, socket queries, real functions
    "__errno_location",
    "dlsym",
    "getauxval",
    "getpid",
    "gettid",
    "syscall",
    "sched_yield",
    "getsockopt",
    "getsockname",
    "getpeername",
    "pthread_sigmask",
    "sigemptyset",
    "sigaddset",
    "sigismember",
    "sigpending",
    "sigtimedwait",
    "pthread_setcancelstate",
    // ours: the descriptor table's pages, the private stderr, fclose's
    // descriptor, the real functions' owner, one line per process tree
    "mmap",
    "getrlimit",
    "fileno",
    "dladdr",
    "getppid",
    // libgcc_s: the unwinder, used only if a panic of ours is caught
    "_Unwind_RaiseException",
    "_Unwind_DeleteException",
    "_Unwind_Backtrace",
    "_Unwind_GetLanguageSpecificData",
    "_Unwind_GetIP",
    "_Unwind_GetIPInfo",
    "_Unwind_GetRegionStart",
    "_Unwind_GetTextRelBase",
    "_Unwind_GetDataRelBase",
    "_Unwind_SetGR",
    "_Unwind_SetIP",
];

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    let out = PathBuf::from(env::var("OUT_DIR").expect("cargo sets OUT_DIR"));

    let mut trampolines = String::new();
    // The trampolines are x86_64 instructions; elsewhere (arm64) the
    // library keeps the default binding, correct but slower to start.
    let x86_64 = env::var("CARGO_CFG_TARGET_ARCH").as_deref() == Ok("x86_64");
    if !x86_64 {
        fs::write(out.join("lazy_imports.s"), "").expect("write OUT_DIR/lazy_imports.s");
        return;
    }
    for name in LAZY_IMPORTS {
        println!("cargo:rustc-cdylib-link-arg=-Wl,--wrap={name}");
        trampolines.push_str(&format!(
            ".globl __wrap_{name}\n.hidden __wrap_{name}\n.type __wrap_{name},@function\n\
             __wrap_{name}:\n    jmp __real_{name}@PLT\n.size __wrap_{name},.-__wrap_{name}\n"
        ));
    }
    fs::write(out.join("lazy_imports.s"), trampolines).expect("write OUT_DIR/lazy_imports.s");
    // Rust links with -z now; this later flag wins.
    println!("cargo:rustc-cdylib-link-arg=-Wl,-z,lazy");
}
