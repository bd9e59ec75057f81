//! The trampolines of build.rs's lazy binding: `__wrap_NAME` jumps to libc's
//! NAME through the PLT, so that the dynamic linker looks NAME up at its
//! first call instead of at start-up. `jmp` keeps every register and the
//! return address as they were: variadic calls (open, syscall) and
//! dlsym(RTLD_NEXT), which looks at its caller, see no difference.
//!
//! A first call resolves through ld.so's `_dl_fixup`, which takes no lock
//! for objects loaded at start-up (libc) and allocates nothing: from a
//! signal handler it is as safe as the program's own lazily bound calls.

std::arch::global_asm!(include_str!(concat!(env!("OUT_DIR"), "/lazy_imports.s")));
