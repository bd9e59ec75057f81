//! Link settings of libkeepalive.so that keep the start-up of every process
//! it is preloaded into cheap (issue 14; figures in scripts/bench.sh).
//!
//! 1. Static unwinder (x86_64). The unwinder, which runs only when a panic
//!    of ours is caught, is linked in from libgcc_eh.a instead of needing
//!    libgcc_s.so.1: one shared object fewer for the dynamic linker to find,
//!    map, relocate and version-check in every process (about 20k
//!    instructions and 100 KiB). Rust's std asks for `-lgcc_s`; a linker
//!    script of that name in a search directory of the library's own link,
//!    found first, hands over `libgcc_eh.a` instead: the same unwinder,
//!    built for static use. But gcc 12's libgcc_eh.a calls
//!    `_dl_find_object`, new in glibc 2.35: imported from libc, it would
//!    raise the glibc floor from 2.34 (RHEL 9) to 2.35, as a first attempt
//!    did (tests/package.rs guards the floor). So the library defines its
//!    own, hidden (`src/unwinder_support.rs`), which the linker binds first.
//!    Elsewhere (arm64) the library keeps needing libgcc_s.so.1.
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
];

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    let out = PathBuf::from(env::var("OUT_DIR").expect("cargo sets OUT_DIR"));

    let mut trampolines = String::new();
    // The trampolines and the unwinder's `_dl_find_object` are x86_64 code;
    // elsewhere (arm64) the library keeps the default binding and
    // libgcc_s.so.1, correct but slower to start.
    let x86_64 = env::var("CARGO_CFG_TARGET_ARCH").as_deref() == Ok("x86_64");
    if !x86_64 {
        fs::write(out.join("lazy_imports.s"), "").expect("write OUT_DIR/lazy_imports.s");
        return;
    }
    // `-L` for the library's link only (the command keeps libgcc_s.so.1:
    // it has no `_dl_find_object` of its own). ld searches it before gcc's
    // own directories, where the real libgcc_s.so is.
    fs::write(out.join("libgcc_s.so"), "INPUT(-lgcc_eh)\n").expect("write OUT_DIR/libgcc_s.so");
    println!("cargo:rustc-cdylib-link-arg=-L{}", out.display());
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
