//! What the library does at each intercepted call. The hooks call these
//! after (or, for connect and listen, before) the real function; each runs
//! behind `shielded`, so errno is preserved and no panic escapes.
//!
//! Without rules every TCP socket is configured at `socket()`. With rules
//! (see `policy`) sockets stay `Pending` there and are decided at
//! `connect()` from its own address argument (after the real call, once the
//! kernel has accepted the pointer), at `listen()` when addresses do not
//! matter for inbound connections, or at `accept()` from one `getpeername`.

use crate::classify;
use crate::endpoint::{self, Endpoint};
use crate::fd_table::{self, FdState};
use crate::plan::Plan;
use crate::rules::{Address, Connection, Decision, Direction};
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

/// How a connection was decided, for debug lines.
#[derive(Clone, Copy)]
struct Reason {
    direction: Direction,
    decision: Decision,
    remote: Option<Address>,
    port: Option<u16>,
}

fn write_reason(line: &mut dyn std::fmt::Write, runtime: &Runtime, reason: &Reason) {
    let (label, word) = match reason.direction {
        Direction::Out => ("out", "to"),
        Direction::In => ("in", "from"),
    };
    let _ = write!(line, "{label}");
    if let Some(remote) = reason.remote {
        let _ = write!(line, " {word} {remote}");
    }
    if let Some(port) = reason.port {
        let _ = write!(line, " port {port}");
    }
    let selection = &runtime.policy.selection;
    let _ = match reason.decision {
        Decision::WrongDirection => write!(
            line,
            ": KEEPALIVE_DIRECTION={}",
            selection.directions.name()
        ),
        Decision::Unmatched => write!(line, ": no rule matched"),
        Decision::Matched(index) => match selection.rules.get(index) {
            Some(rule) => write!(line, ": rule {} {rule}", rule.number),
            None => Ok(()),
        },
    };
}

/// Sets every option of `plan` on `fd`. A failure is only reported (debug):
/// the program's call has already succeeded and stays a success.
fn configure(
    runtime: &Runtime,
    set: SetsockoptFn,
    fd: i32,
    plan: &Plan,
    family: i32,
    via: &str,
    reason: Option<&Reason>,
) {
    let mut failures: [(usize, i32); crate::plan::MAX_OPTIONS] = [(0, 0); crate::plan::MAX_OPTIONS];
    let mut failed = 0;
    for (index, option) in plan.options().iter().enumerate() {
        if let Err(errno) = sockopt::set(set, fd, option) {
            failures[failed] = (index, errno);
            failed += 1;
        }
    }
    fd_table::set(fd, FdState::Configured);
    runtime.debug(|line| {
        let _ = write!(line, "fd {fd} ({}, {via}): set", family_name(family));
        for option in plan.options() {
            let _ = write!(line, " {}={}", option.label(), option.value);
        }
        for &(index, errno) in &failures[..failed] {
            let label = plan.options()[index].label();
            let _ = write!(line, "; {label} failed (errno {errno})");
        }
        if let Some(reason) = reason {
            let _ = write!(line, "; ");
            write_reason(line, runtime, reason);
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

/// Applies a rules decision to `fd`: its plan, or nothing at all.
fn apply(runtime: &Runtime, set: SetsockoptFn, fd: i32, via: &str, reason: &Reason) {
    match runtime.policy.plan_for(reason.decision) {
        Some(plan) => configure(
            runtime,
            set,
            fd,
            plan,
            probed_family(runtime, fd),
            via,
            Some(reason),
        ),
        None => leave_alone(runtime, fd, FdState::LeftAlone, |why| {
            let _ = write!(why, "at {via}: ");
            write_reason(why, runtime, reason);
        }),
    }
}

/// An outbound connection: decided from connect()'s own address argument.
fn decide_outbound(
    runtime: &Runtime,
    set: SetsockoptFn,
    fd: i32,
    destination: impl FnOnce() -> Option<Endpoint>,
) {
    let Some(destination) = destination() else {
        // AF_UNSPEC (dissolving an association) or no IP address: the
        // real connect() fails or connects nothing; decide at the next one.
        fd_table::set(fd, FdState::Pending);
        return;
    };
    let connection = Connection {
        direction: Direction::Out,
        remote: destination.address,
        port: Some(destination.port),
    };
    let reason = Reason {
        direction: Direction::Out,
        decision: runtime.policy.selection.decide(&connection),
        remote: Some(destination.address),
        port: Some(destination.port),
    };
    apply(runtime, set, fd, "connect", &reason);
}

/// An inbound connection: decided from the peer address, unless no rule
/// looks at addresses. The address comes from one getpeername() (and the
/// port accepted on from one getsockname(), only if a rule asks for it):
/// accept()'s own output is the program's memory, which we never read.
fn decide_inbound(runtime: &Runtime, set: SetsockoptFn, fd: i32) {
    let policy = &runtime.policy;
    let reason = match policy.inbound_fixed {
        Some(decision) => Reason {
            direction: Direction::In,
            decision,
            remote: None,
            port: None,
        },
        None => {
            let Some(peer) = endpoint::query(fd, libc::getpeername) else {
                leave_alone(runtime, fd, FdState::LeftAlone, |why| {
                    let _ = write!(why, "at accept: the peer address is unknown");
                });
                return;
            };
            let port = if policy.inbound_needs_port {
                endpoint::query(fd, libc::getsockname).map(|local| local.port)
            } else {
                None
            };
            let connection = Connection {
                direction: Direction::In,
                remote: peer.address,
                port,
            };
            Reason {
                direction: Direction::In,
                decision: policy.selection.decide(&connection),
                remote: Some(peer.address),
                port,
            }
        }
    };
    apply(runtime, set, fd, "accept", &reason);
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
/// before connect/listen are kept, and accepted connections inherit them),
/// or, with rules, remember them as pending until we know where they go.
pub fn after_socket(set: SetsockoptFn, fd: i32, domain: i32, socket_type: i32, protocol: i32) {
    shielded(|| {
        let Some(runtime) = runtime::active() else {
            return;
        };
        if !classify::is_tcp_socket_request(domain, socket_type, protocol) {
            leave_alone(runtime, fd, FdState::LeftAlone, |why| {
                let _ = write!(
                    why,
                    "not TCP ({}, type {socket_type}, protocol {protocol})",
                    family_name(domain)
                );
            });
        } else if runtime.policy.eager {
            configure(runtime, set, fd, runtime.plan(), domain, "socket", None);
        } else {
            fd_table::set(fd, FdState::Pending);
            runtime.debug(|line| {
                let _ = write!(
                    line,
                    "fd {fd} ({}, socket): pending until connect, listen or accept",
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

/// Before `connect()`, without rules: sockets that never came through our
/// `socket()` (inherited, raw system call) are probed once and configured
/// before the handshake starts.
pub fn before_connect(set: SetsockoptFn, fd: i32) {
    shielded(|| {
        let Some(runtime) = runtime::active() else {
            return;
        };
        if !runtime.policy.eager || fd_table::get(fd) != FdState::Unknown {
            return;
        }
        match probe_foreign(fd) {
            None => {}
            Some(FdState::Unknown) => configure(
                runtime,
                set,
                fd,
                runtime.plan(),
                probed_family(runtime, fd),
                "connect",
                None,
            ),
            Some(state) => leave_alone_foreign(runtime, fd, state),
        }
    });
}

/// After a `connect()` that succeeded or is in progress, with rules:
/// pending and foreign sockets are decided by `destination`, which reads
/// connect()'s own address argument (no system call). This waits until
/// after the real call so that the kernel has validated that pointer.
pub fn after_connect(set: SetsockoptFn, fd: i32, destination: impl FnOnce() -> Option<Endpoint>) {
    shielded(|| {
        let Some(runtime) = runtime::active() else {
            return;
        };
        if runtime.policy.eager {
            return;
        }
        match fd_table::get(fd) {
            FdState::Pending => decide_outbound(runtime, set, fd, destination),
            FdState::Unknown => match probe_foreign(fd) {
                None => {}
                Some(FdState::Unknown) => decide_outbound(runtime, set, fd, destination),
                Some(state) => leave_alone_foreign(runtime, fd, state),
            },
            _ => {}
        }
    });
}

fn leave_alone_foreign(runtime: &Runtime, fd: i32, state: FdState) {
    leave_alone(runtime, fd, state, |why| {
        let _ = write!(
            why,
            "at connect: not TCP, or keepalive already chosen by its owner"
        );
    });
}

/// Before `listen()` on a pending socket: when no rule looks at inbound
/// addresses, every connection it accepts would be decided alike, so the
/// listener is decided now and its connections inherit (accept is free).
/// Returns whether it decided.
pub fn before_listen(set: SetsockoptFn, fd: i32) -> bool {
    let mut decided = false;
    shielded(|| {
        if fd_table::get(fd) != FdState::Pending {
            return;
        }
        let Some(runtime) = runtime::active() else {
            return;
        };
        if let Some(decision) = runtime.policy.inbound_fixed {
            let reason = Reason {
                direction: Direction::In,
                decision,
                remote: None,
                port: None,
            };
            apply(runtime, set, fd, "listen", &reason);
            decided = true;
        }
    });
    decided
}

/// After a `listen()` that failed on a socket `before_listen` decided: if
/// that decision was to leave it alone, nothing was set, so it may still
/// be decided later (say, at a `connect()` on the same socket).
pub fn after_failed_listen(fd: i32) {
    if fd_table::get(fd) == FdState::LeftAlone {
        fd_table::set(fd, FdState::Pending);
    }
}

/// After a successful `dup()`, `dup2()` or `dup3()`: the new number names
/// the same socket (or file), so it gets the same state.
pub fn after_dup(fd: i32, new_fd: i32) {
    fd_table::set(new_fd, fd_table::get(fd));
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
            FdState::ForeignListener | FdState::Unknown | FdState::Pending => {
                if runtime.policy.eager {
                    let family = probed_family(runtime, fd);
                    configure(runtime, set, fd, runtime.plan(), family, "accept", None)
                } else {
                    decide_inbound(runtime, set, fd)
                }
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
