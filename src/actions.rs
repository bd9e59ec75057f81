//! What the library does at each intercepted call. The hooks call these
//! after (or, for connect, before) the real function; each runs behind
//! `shielded`, so errno is preserved and no panic escapes.

use crate::classify;
use crate::fd_table::{self, FdState};
use crate::runtime::{self, Runtime};
use crate::sockopt::{self, ErrnoGuard, SetsockoptFn};
use std::fmt::Write as _;
use std::panic::{catch_unwind, AssertUnwindSafe};

/// Runs our part of a hook: errno is restored afterwards, and a panic (a bug
/// of ours) is swallowed, leaving the program's call result untouched.
fn shielded(work: impl FnOnce()) {
    let _errno = ErrnoGuard::save();
    let _ = catch_unwind(AssertUnwindSafe(work));
}

fn family_name(domain: i32) -> &'static str {
    match domain {
        libc::AF_INET => "AF_INET",
        libc::AF_INET6 => "AF_INET6",
        libc::AF_UNIX => "AF_UNIX",
        libc::AF_NETLINK => "AF_NETLINK",
        libc::AF_PACKET => "AF_PACKET",
        _ => "other family",
    }
}

/// Sets every planned option on `fd`. A failure is only reported (debug):
/// the program's call has already succeeded and stays a success.
fn configure(runtime: &Runtime, set: SetsockoptFn, fd: i32, family: i32, via: &str) {
    let mut failures: [(usize, i32); crate::plan::MAX_OPTIONS] = [(0, 0); crate::plan::MAX_OPTIONS];
    let mut failed = 0;
    for (index, option) in runtime.plan.options().iter().enumerate() {
        if let Err(errno) = sockopt::set(set, fd, option) {
            failures[failed] = (index, errno);
            failed += 1;
        }
    }
    fd_table::set(fd, FdState::Configured);
    runtime.debug(|line| {
        let _ = write!(line, "fd {fd} ({}, {via}): set", family_name(family));
        for option in runtime.plan.options() {
            let _ = write!(line, " {}={}", option.label(), option.value);
        }
        for &(index, errno) in &failures[..failed] {
            let label = runtime.plan.options()[index].label();
            let _ = write!(line, "; {label} failed (errno {errno})");
        }
    });
}

fn leave_alone(
    runtime: &Runtime,
    fd: i32,
    state: FdState,
    why: impl FnOnce(&mut dyn std::fmt::Write),
) {
    fd_table::set(fd, state);
    runtime.debug(|line| {
        let _ = write!(line, "fd {fd}: left alone: ");
        why(line);
    });
}

/// Only in debug lines: the family of a socket we did not create.
fn probed_family(runtime: &Runtime, fd: i32) -> i32 {
    if runtime.debug {
        sockopt::get_int(fd, libc::SOL_SOCKET, libc::SO_DOMAIN).unwrap_or(-1)
    } else {
        -1
    }
}

/// After a successful `socket()`: configure TCP sockets at once (options set
/// before connect/listen are kept, and accepted connections inherit them).
pub fn after_socket(set: SetsockoptFn, fd: i32, domain: i32, socket_type: i32, protocol: i32) {
    shielded(|| {
        let Some(runtime) = runtime::active() else {
            return;
        };
        if classify::is_tcp_socket_request(domain, socket_type, protocol) {
            configure(runtime, set, fd, domain, "socket");
        } else {
            leave_alone(runtime, fd, FdState::LeftAlone, |why| {
                let _ = write!(
                    why,
                    "not TCP ({}, type {socket_type}, protocol {protocol})",
                    family_name(domain)
                );
            });
        }
    });
}

/// What a socket we did not create is: a TCP socket nobody configured, one
/// whose keepalive somebody already chose, or not TCP. `None` if it is not
/// a socket at all or the descriptor is bad: then we remember nothing.
fn probe_foreign(fd: i32) -> Option<FdState> {
    let protocol = sockopt::get_int(fd, libc::SOL_SOCKET, libc::SO_PROTOCOL)?;
    let socket_type = sockopt::get_int(fd, libc::SOL_SOCKET, libc::SO_TYPE)?;
    if protocol != libc::IPPROTO_TCP || socket_type != libc::SOCK_STREAM {
        return Some(FdState::LeftAlone);
    }
    // Keepalive already on means its owner (a parent, systemd's KeepAlive=)
    // chose it: that choice wins.
    match sockopt::get_int(fd, libc::SOL_SOCKET, libc::SO_KEEPALIVE)? {
        0 => Some(FdState::Unknown),
        _ => Some(FdState::ProgramOwned),
    }
}

/// Before `connect()`: sockets that never came through our `socket()`
/// (inherited, raw system call) are probed once and configured.
pub fn before_connect(set: SetsockoptFn, fd: i32) {
    shielded(|| {
        let Some(runtime) = runtime::active() else {
            return;
        };
        if fd_table::get(fd) != FdState::Unknown {
            return;
        }
        match probe_foreign(fd) {
            None => {}
            Some(FdState::Unknown) => {
                configure(runtime, set, fd, probed_family(runtime, fd), "connect")
            }
            Some(state) => leave_alone(runtime, fd, state, |why| {
                let _ = write!(
                    why,
                    "at connect: not TCP, or keepalive already chosen by its owner"
                );
            }),
        }
    });
}

/// After a successful `accept()`/`accept4()` on `listener` returned `fd`.
pub fn after_accept(set: SetsockoptFn, listener: i32, fd: i32) {
    shielded(|| {
        let Some(runtime) = runtime::active() else {
            return;
        };
        let mut listener_state = fd_table::get(listener);
        if listener_state == FdState::Unknown {
            listener_state = match probe_foreign(listener) {
                None => return,
                Some(FdState::Unknown) => FdState::ForeignListener,
                Some(state) => state,
            };
            fd_table::set(listener, listener_state);
        }
        match listener_state {
            // The kernel copied the listener's options into the new socket.
            FdState::Configured | FdState::ProgramOwned | FdState::LeftAlone => {
                fd_table::set(fd, listener_state)
            }
            FdState::ForeignListener | FdState::Unknown => {
                configure(runtime, set, fd, probed_family(runtime, fd), "accept")
            }
        }
    });
}

/// After the program's own successful `setsockopt()`: if it chose a
/// keepalive option itself, we never touch this socket again.
pub fn after_program_setsockopt(fd: i32, level: i32, name: i32) {
    shielded(|| {
        if !classify::is_keepalive_option(level, name) {
            return;
        }
        let Some(runtime) = runtime::active() else {
            return;
        };
        if fd_table::get(fd) != FdState::ProgramOwned {
            leave_alone(runtime, fd, FdState::ProgramOwned, |why| {
                let _ = write!(
                    why,
                    "the program set its own keepalive option (level {level}, option {name})"
                );
            });
        }
    });
}

/// Before `close()`: the number may next name something else entirely.
/// Forgotten before the real close so no other thread can reuse it first.
pub fn before_close(fd: i32) {
    fd_table::set(fd, FdState::Unknown);
}
