//! The exported C functions. Each calls the real libc function and hands
//! the result to `actions`; nothing here decides anything. Return values
//! and errno pass through unchanged.
//!
//! One list, `hooks!`, makes both the exported symbols and `resolve_all`,
//! which our constructor calls: every real function is found before the
//! program runs, so no hook ever looks one up from a signal handler or in a
//! forked child (see `real`).
//!
//! Why `"C-unwind"`: glibc's `pthread_cancel` (and `pthread_exit` from a
//! cleanup handler) is a forced unwind through the cancelled thread's
//! frames, and accept, connect, close, fclose, fcntl(F_SETLKW) are
//! cancellation points: a thread cancelled inside the real call is unwound
//! through the real function and then through our hook. Under `"C"` both
//! are declared unable to unwind, which only happens to work; `"C-unwind"`
//! says what really happens. A hook's frame holds nothing to drop around
//! the real call, and our own work runs under `catch_unwind` with
//! cancellation held off (`actions`, `cancel`), so no Rust panic leaves a
//! hook and no cancellation is acted on inside our code
//! (tests/reliability.rs, tests/c/cancelprobe.c).

#![allow(clippy::missing_safety_doc)]

use crate::actions;
use crate::real::{missing, Real};
use crate::sockopt::SetsockoptFn;
use libc::{c_int, c_uint, c_ulong, c_void, sockaddr, socklen_t, FILE};
use std::ffi::CStr;

macro_rules! hooks {
    ($(
        $(#[$doc:meta])*
        fn $name:ident($($arg:ident: $type:ty),*) -> $ret:ty, or $fallback:expr;
        |$real:ident| $body:block
    )*) => {
        /// The real function behind each hook, by the hook's name.
        #[allow(non_upper_case_globals)]
        mod real_fn {
            use super::*;
            $(
                pub static $name: Real<unsafe extern "C-unwind" fn($($type),*) -> $ret> =
                    Real::new(match CStr::from_bytes_with_nul(
                        concat!(stringify!($name), "\0").as_bytes(),
                    ) {
                        Ok(name) => name,
                        Err(_) => panic!("hook name"),
                    });
            )*
        }

        $(
            $(#[$doc])*
            #[no_mangle]
            pub unsafe extern "C-unwind" fn $name($($arg: $type),*) -> $ret {
                let Some($real) = real_fn::$name.get() else {
                    return missing($fallback);
                };
                $body
            }
        )*

        /// Finds every real function now (our constructor calls this).
        fn resolve_all() {
            $( let _ = real_fn::$name.get(); )*
        }
    };
}

/// The real `setsockopt`, for our own calls (never our hook: that would
/// take them for the program's choices).
fn real_setsockopt() -> Option<SetsockoptFn> {
    real_fn::setsockopt.get()
}

hooks! {
    fn socket(domain: c_int, socket_type: c_int, protocol: c_int) -> c_int, or -1;
    |real| {
        let fd = real(domain, socket_type, protocol);
        if fd >= 0 {
            actions::after_socket(real_setsockopt(), fd, domain, socket_type, protocol);
        }
        fd
    }

    fn connect(fd: c_int, address: *const sockaddr, length: socklen_t) -> c_int, or -1;
    |real| {
        let set = real_setsockopt();
        let before = actions::before_connect(set, fd);
        let rc = real(fd, address, length);
        // Rules decide from the destination only once the kernel has read it:
        // a pointer it refused (EFAULT) is never dereferenced by us. EINTR
        // too: the handshake goes on, and the program may only poll for it.
        let in_progress = || {
            let errno = crate::sockopt::errno();
            errno == libc::EINPROGRESS || errno == libc::EINTR
        };
        if before.is_some() && (rc == 0 || in_progress()) {
            // SAFETY: the kernel has copied `length` bytes from `address`.
            actions::after_connect(set, fd, before, || unsafe {
                crate::endpoint::read(address, length)
            });
        }
        rc
    }

    // The program's address and length pointers are never read (a bad one
    // must get the kernel's EFAULT, not our SIGSEGV); rules that need the
    // peer ask getpeername().
    fn accept(listener: c_int, address: *mut sockaddr, length: *mut socklen_t) -> c_int, or -1;
    |real| {
        let fd = real(listener, address, length);
        if fd >= 0 {
            actions::after_accept(real_setsockopt(), listener, fd);
        }
        fd
    }

    fn accept4(
        listener: c_int,
        address: *mut sockaddr,
        length: *mut socklen_t,
        flags: c_int
    ) -> c_int, or -1;
    |real| {
        let fd = real(listener, address, length, flags);
        if fd >= 0 {
            actions::after_accept(real_setsockopt(), listener, fd);
        }
        fd
    }

    // Decided before: connections the kernel accepts inherit the listener's
    // options. A failed listen() is undone, as if it never happened.
    fn listen(fd: c_int, backlog: c_int) -> c_int, or -1;
    |real| {
        let set = real_setsockopt();
        let undo = actions::before_listen(set, fd);
        let rc = real(fd, backlog);
        if rc != 0 {
            actions::after_failed_listen(set, fd, undo);
        }
        rc
    }

    fn setsockopt(
        fd: c_int,
        level: c_int,
        name: c_int,
        value: *const c_void,
        length: socklen_t
    ) -> c_int, or -1;
    |real| {
        let rc = real(fd, level, name, value, length);
        if rc == 0 {
            // SAFETY: the kernel has just read `length` bytes at `value`.
            actions::after_program_setsockopt(real, fd, level, name, || unsafe {
                crate::sockopt::read_int_value(value, length)
            });
        }
        rc
    }

    // A duplicate is the same socket under another number: it carries what
    // we know (above all, the program's own choices).
    fn dup(fd: c_int) -> c_int, or -1;
    |real| {
        let new_fd = real(fd);
        if new_fd >= 0 {
            actions::after_dup(fd, new_fd);
        }
        new_fd
    }

    fn dup2(fd: c_int, new_fd: c_int) -> c_int, or -1;
    |real| {
        actions::before_replace(fd, new_fd);
        let rc = real(fd, new_fd);
        if rc >= 0 {
            actions::after_dup(fd, rc);
        }
        rc
    }

    fn dup3(fd: c_int, new_fd: c_int, flags: c_int) -> c_int, or -1;
    |real| {
        actions::before_replace(fd, new_fd);
        let rc = real(fd, new_fd, flags);
        if rc >= 0 {
            actions::after_dup(fd, rc);
        }
        rc
    }

    // fcntl is variadic; on the supported ABIs (x86_64, aarch64 Linux) its
    // third argument arrives, and is passed on, as one register-sized word
    // (an int or a pointer), whatever the command.
    fn fcntl(fd: c_int, command: c_int, argument: c_ulong) -> c_int, or -1;
    |real| {
        let rc = real(fd, command, argument);
        actions::after_fcntl(fd, command, rc);
        rc
    }

    // What `fcntl` is renamed to by glibc's headers with _FILE_OFFSET_BITS=64
    // (and on 32-bit ABIs): the same call under another symbol.
    fn fcntl64(fd: c_int, command: c_int, argument: c_ulong) -> c_int, or -1;
    |real| {
        let rc = real(fd, command, argument);
        actions::after_fcntl(fd, command, rc);
        rc
    }

    fn close(fd: c_int) -> c_int, or -1;
    |real| {
        actions::before_close(fd);
        real(fd)
    }

    // Closes the descriptor under the stream, out of our hooks' sight.
    fn fclose(stream: *mut FILE) -> c_int, or libc::EOF;
    |real| {
        if !stream.is_null() {
            // SAFETY: the program hands fclose a stream; fileno only reads it.
            actions::before_fclose(|| unsafe { libc::fileno(stream) });
        }
        real(stream)
    }

    fn close_range(first: c_uint, last: c_uint, flags: c_int) -> c_int, or -1;
    |real| {
        actions::before_close_range(first, last, flags);
        real(first, last, flags)
    }

    fn closefrom(lowest: c_int) -> (), or ();
    |real| {
        actions::before_close_range(lowest.max(0) as c_uint, c_uint::MAX, 0);
        real(lowest)
    }
}

/// Our constructor: resolve every real function now, so no hook ever has
/// to, then load the configuration (printing any diagnostics at start-up,
/// even if the program never makes a socket).
extern "C" fn start() {
    resolve_all();
    actions::start();
}

#[used]
#[link_section = ".init_array"]
static CONSTRUCTOR: extern "C" fn() = start;
