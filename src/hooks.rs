//! The exported C functions. Each calls the real libc function (found by
//! redhook with dlsym(RTLD_NEXT)) and hands the result to `actions`; nothing
//! here decides anything. Return values pass through unchanged.

// redhook's macros use `static mut` and `extern fn` spellings of 2020.
#![allow(static_mut_refs, missing_abi, clippy::missing_safety_doc)]

use crate::actions;
use crate::endpoint;
use crate::sockopt::{self, SetsockoptFn};
use libc::{c_int, c_void, sockaddr, socklen_t};
use redhook::{hook, real};

fn real_setsockopt() -> SetsockoptFn {
    real!(setsockopt)
}

hook! {
    unsafe fn socket(domain: c_int, socket_type: c_int, protocol: c_int) -> c_int => keepalive_socket {
        // Resolved before the real call: redhook's panic fallback calls the
        // real function again, which must never mean a second socket.
        let set = real_setsockopt();
        let fd = real!(socket)(domain, socket_type, protocol);
        if fd >= 0 {
            actions::after_socket(set, fd, domain, socket_type, protocol);
        }
        fd
    }
}

hook! {
    unsafe fn connect(fd: c_int, address: *const sockaddr, length: socklen_t) -> c_int => keepalive_connect {
        let set = real_setsockopt();
        actions::before_connect(set, fd);
        let rc = real!(connect)(fd, address, length);
        // Rules decide from the destination only once the kernel has read it:
        // a pointer it refused (EFAULT) is never dereferenced by us. EINTR
        // too: the handshake goes on, and the program may only poll for it.
        let errno = sockopt::errno();
        if rc == 0 || errno == libc::EINPROGRESS || errno == libc::EINTR {
            // SAFETY: the kernel has copied `length` bytes from `address`.
            actions::after_connect(set, fd, || unsafe { endpoint::read(address, length) });
        }
        rc
    }
}

/// What follows a successful accept() or accept4(): one copy for both. The
/// program's address and length pointers are never read (a bad one must
/// get the kernel's EFAULT, not our SIGSEGV); rules that need the peer ask
/// getpeername().
#[inline(never)]
fn accepted(set: SetsockoptFn, listener: c_int, fd: c_int) {
    actions::after_accept(set, listener, fd);
}

hook! {
    unsafe fn accept(listener: c_int, address: *mut sockaddr, length: *mut socklen_t) -> c_int => keepalive_accept {
        let set = real_setsockopt();
        let fd = real!(accept)(listener, address, length);
        if fd >= 0 {
            accepted(set, listener, fd);
        }
        fd
    }
}

hook! {
    unsafe fn accept4(listener: c_int, address: *mut sockaddr, length: *mut socklen_t, flags: c_int) -> c_int => keepalive_accept4 {
        let set = real_setsockopt();
        let fd = real!(accept4)(listener, address, length, flags);
        if fd >= 0 {
            accepted(set, listener, fd);
        }
        fd
    }
}

hook! {
    unsafe fn listen(fd: c_int, backlog: c_int) -> c_int => keepalive_listen {
        // Before: connections the kernel accepts inherit the listener's options.
        let decided = actions::before_listen(real_setsockopt(), fd);
        let rc = real!(listen)(fd, backlog);
        if rc != 0 && decided {
            actions::after_failed_listen(fd);
        }
        rc
    }
}

hook! {
    unsafe fn setsockopt(fd: c_int, level: c_int, name: c_int, value: *const c_void, length: socklen_t) -> c_int => keepalive_setsockopt {
        let rc = real!(setsockopt)(fd, level, name, value, length);
        if rc == 0 {
            actions::after_program_setsockopt(fd, level, name);
        }
        rc
    }
}

// A duplicate is the same socket under another number: it carries what we
// know (above all, that the program chose its own keepalive options).
hook! {
    unsafe fn dup(fd: c_int) -> c_int => keepalive_dup {
        let new_fd = real!(dup)(fd);
        if new_fd >= 0 {
            actions::after_dup(fd, new_fd);
        }
        new_fd
    }
}

hook! {
    unsafe fn dup2(fd: c_int, new_fd: c_int) -> c_int => keepalive_dup2 {
        let rc = real!(dup2)(fd, new_fd);
        if rc >= 0 {
            actions::after_dup(fd, rc);
        }
        rc
    }
}

hook! {
    unsafe fn dup3(fd: c_int, new_fd: c_int, flags: c_int) -> c_int => keepalive_dup3 {
        let rc = real!(dup3)(fd, new_fd, flags);
        if rc >= 0 {
            actions::after_dup(fd, rc);
        }
        rc
    }
}

hook! {
    unsafe fn close(fd: c_int) -> c_int => keepalive_close {
        actions::before_close(fd);
        real!(close)(fd)
    }
}

/// Our constructor: load the configuration (printing any diagnostics at
/// start-up, even if the program never makes a socket) and resolve every
/// real function now, so no hook ever has to do it from a signal handler.
extern "C" fn start() {
    let _ = std::panic::catch_unwind(|| {
        // Our copy of std's panic hook only serves this library: keep any
        // panic of ours off the program's stderr (it is caught anyway).
        std::panic::set_hook(Box::new(|_| {}));
        let _ = (
            real!(socket),
            real!(connect),
            real!(accept),
            real!(accept4),
            real!(listen),
            real!(close),
        );
        let _ = real_setsockopt();
        let _ = crate::runtime::active();
    });
}

#[used]
#[link_section = ".init_array"]
static CONSTRUCTOR: extern "C" fn() = start;
