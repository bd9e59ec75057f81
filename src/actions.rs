//! What the library does at each intercepted call. The hooks call these
//! around the real function; each runs behind `shielded`, so errno is
//! preserved and no panic escapes.
//!
//! Without rules every TCP socket is configured at `socket()`. With rules
//! (see `policy`) sockets stay `Pending` there and are decided at
//! `connect()` from its own address argument (after the real call, once the
//! kernel has accepted the pointer), at `listen()` when addresses do not
//! matter for inbound connections, or at `accept()` from one `getpeername`.
//!
//! In every mode, the program wins option by option: an option it set
//! itself is never set by us, and a program that switched `SO_KEEPALIVE`
//! off gets no option at all (`fd_state::Choices`).

use crate::diagnostics;
use crate::endpoint;
use crate::fd_table;
use crate::runtime::{self, Runtime};
use crate::sockopt::{self, ErrnoGuard, SetsockoptFn};
use keepalive_core::classify;
use keepalive_core::endpoint::Endpoint;
use keepalive_core::fd_state::{Choices, Kind, Record};
use keepalive_core::options::{self, OptionSet, SockOpt};
use keepalive_core::plan::{Plan, MAX_OPTIONS};
use keepalive_core::rules::{Address, Connection, Decision, Direction};
use std::fmt::Write as _;
use std::panic::{catch_unwind, AssertUnwindSafe};

/// Runs our part of a hook: errno is restored afterwards, and a panic (a bug
/// of ours) is swallowed, leaving the program's call result untouched.
fn shielded<T>(fallback: T, work: impl FnOnce() -> T) -> T {
    let _errno = ErrnoGuard::save();
    catch_unwind(AssertUnwindSafe(work)).unwrap_or(fallback)
}

/// The configuration, if the library is on and can set options.
fn active(set: Option<SetsockoptFn>) -> Option<(&'static Runtime, SetsockoptFn)> {
    Some((runtime::active()?, set?))
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

/// One configuration of one socket: where, why, and the program's choices.
struct Target<'a> {
    fd: i32,
    family: i32,
    via: &'a str,
    choices: Choices,
    reason: Option<&'a Reason>,
}

/// Sets the options of `plan` that the program left to us. A failure is
/// only reported (debug): the program's call has already succeeded and
/// stays a success.
fn configure(runtime: &Runtime, set: SetsockoptFn, plan: &Plan, target: &Target<'_>) {
    let mut failures = [(0, 0); MAX_OPTIONS];
    let mut failed = 0;
    for option in target.choices.leave_to_us(plan) {
        if let Err(errno) = sockopt::set(set, target.fd, option) {
            failures[failed] = (option.level << 16 | option.name, errno);
            failed += 1;
        }
    }
    runtime.debug(|line| {
        let _ = write!(
            line,
            "fd {} ({}, {}): ",
            target.fd,
            family_name(target.family),
            target.via
        );
        if target.choices.keepalive_off {
            let _ = write!(line, "left alone: the program switched SO_KEEPALIVE off");
        } else {
            let _ = write!(line, "set");
            for option in target.choices.leave_to_us(plan) {
                let _ = write!(line, " {}={}", option.label(), option.value);
            }
        }
        if target.choices.set != OptionSet::EMPTY {
            let _ = write!(line, "; the program's own:");
            for option in plan.options() {
                if target.choices.set.contains(option.bit) {
                    let _ = write!(line, " {}", option.label());
                }
            }
        }
        for &(option, errno) in &failures[..failed] {
            let label = options::option_label(option >> 16, option & 0xffff).unwrap_or("?");
            let _ = write!(line, "; {label} failed (errno {errno})");
        }
        if let Some(reason) = target.reason {
            let _ = write!(line, "; ");
            write_reason(line, runtime, reason);
        }
    });
}

fn debug_left_alone(runtime: &Runtime, fd: i32, why: impl FnOnce(&mut dyn std::fmt::Write)) {
    runtime.debug(|line| {
        let _ = write!(line, "fd {fd}: left alone: ");
        why(line);
    });
}

/// Applies a rules decision to `target.fd`: its plan, or nothing at all.
fn apply(runtime: &Runtime, set: SetsockoptFn, target: &Target<'_>) {
    let Some(reason) = target.reason else { return };
    match runtime.policy.plan_for(reason.decision) {
        Some(plan) => configure(runtime, set, plan, target),
        None => debug_left_alone(runtime, target.fd, |why| {
            let _ = write!(why, "at {}: ", target.via);
            write_reason(why, runtime, reason);
        }),
    }
}

/// Only in debug lines: the family of a socket we did not create.
fn probed_family(runtime: &Runtime, fd: i32) -> i32 {
    if runtime.debug {
        sockopt::get_int(fd, libc::SOL_SOCKET, libc::SO_DOMAIN).unwrap_or(-1)
    } else {
        -1
    }
}

/// The constructor's part: load the configuration now.
pub fn start() {
    shielded((), || {
        let _ = runtime::active();
    });
}

/// After a successful `socket()`: configure TCP sockets at once (options set
/// before connect/listen are kept, and accepted connections inherit them),
/// or, with rules, remember them as pending until we know where they go.
pub fn after_socket(
    set: Option<SetsockoptFn>,
    fd: i32,
    domain: i32,
    socket_type: i32,
    protocol: i32,
) {
    shielded((), || {
        let Some((runtime, set)) = active(set) else {
            return;
        };
        // A number we cannot follow gets nothing: we could not honour the
        // program's later choices on it.
        let Some(previous) = fd_table::load(fd) else {
            return;
        };
        if !classify::is_tcp_socket_request(domain, socket_type, protocol) {
            fd_table::store(fd, previous.next(Kind::LeftAlone, Choices::default()));
            debug_left_alone(runtime, fd, |why| {
                let _ = write!(
                    why,
                    "not TCP ({}, type {socket_type}, protocol {protocol})",
                    family_name(domain)
                );
            });
        } else if runtime.policy.eager {
            if fd_table::store(fd, previous.next(Kind::Decided, Choices::default())) {
                let target = Target {
                    fd,
                    family: domain,
                    via: "socket",
                    choices: Choices::default(),
                    reason: None,
                };
                configure(runtime, set, runtime.plan(), &target);
            }
        } else {
            fd_table::store(fd, previous.next(Kind::Pending, Choices::default()));
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

/// What a socket we did not create is: a TCP socket nobody configured
/// (`Unknown`), one whose keepalive its owner already switched on
/// (`Decided`: a parent, systemd's `KeepAlive=`; we cannot tell which timers
/// it chose, so the socket is left as it is), or not TCP. `None` if it is
/// not a socket at all or the descriptor is bad.
fn probe_foreign(fd: i32) -> Option<Kind> {
    let protocol = sockopt::get_int(fd, libc::SOL_SOCKET, libc::SO_PROTOCOL)?;
    let socket_type = sockopt::get_int(fd, libc::SOL_SOCKET, libc::SO_TYPE)?;
    if protocol != libc::IPPROTO_TCP || socket_type != libc::SOCK_STREAM {
        return Some(Kind::LeftAlone);
    }
    match sockopt::get_int(fd, libc::SOL_SOCKET, libc::SO_KEEPALIVE)? {
        0 => Some(Kind::Unknown),
        _ => Some(Kind::Decided),
    }
}

fn debug_foreign(runtime: &Runtime, fd: i32, kind: Kind) {
    debug_left_alone(runtime, fd, |why| {
        let _ = match kind {
            Kind::LeftAlone => write!(why, "at connect: not TCP"),
            _ => write!(why, "at connect: keepalive already chosen by its owner"),
        };
    });
}

/// Before `connect()`. Without rules, sockets that never came through our
/// `socket()` (inherited, raw system call) are probed once and configured
/// before the handshake starts. Returns the record as it stands, for
/// `after_connect` to check that the number still names this socket.
pub fn before_connect(set: Option<SetsockoptFn>, fd: i32) -> Option<Record> {
    shielded(None, || {
        let (runtime, set) = active(set)?;
        let record = fd_table::load(fd)?;
        if !runtime.policy.eager || record.kind != Kind::Unknown {
            return Some(record);
        }
        let kind = probe_foreign(fd)?;
        if kind == Kind::Unknown {
            let decided = record.with_kind(Kind::Decided);
            if fd_table::replace(fd, record, decided) {
                let target = Target {
                    fd,
                    family: probed_family(runtime, fd),
                    via: "connect",
                    choices: record.choices,
                    reason: None,
                };
                configure(runtime, set, runtime.plan(), &target);
            }
            return None;
        }
        fd_table::replace(fd, record, record.with_kind(kind));
        debug_foreign(runtime, fd, kind);
        None
    })
}

/// After a `connect()` that succeeded or is in progress, with rules:
/// pending and foreign sockets are decided by `destination`, which reads
/// connect()'s own address argument (no system call). This waits until
/// after the real call so that the kernel has validated that pointer.
/// `before` is the record seen before the call: if the number was closed
/// and reused meanwhile (another thread), nothing is applied.
pub fn after_connect(
    set: Option<SetsockoptFn>,
    fd: i32,
    before: Option<Record>,
    destination: impl FnOnce() -> Option<Endpoint>,
) {
    shielded((), || {
        let Some((runtime, set)) = active(set) else {
            return;
        };
        let (Some(before), false) = (before, runtime.policy.eager) else {
            return;
        };
        let Some(mut record) = fd_table::load(fd) else {
            return;
        };
        if record.generation != before.generation {
            debug_left_alone(runtime, fd, |why| {
                let _ = write!(why, "at connect: closed and reused during connect()");
            });
            return;
        }
        match record.kind {
            Kind::Pending => {}
            Kind::Unknown => match probe_foreign(fd) {
                Some(Kind::Unknown) => {}
                Some(kind) => {
                    fd_table::replace(fd, record, record.with_kind(kind));
                    debug_foreign(runtime, fd, kind);
                    return;
                }
                None => return,
            },
            _ => return,
        }
        let Some(destination) = destination() else {
            // AF_UNSPEC (dissolving an association) or no IP address: the
            // real connect() fails or connects nothing; decide at the next one.
            return;
        };
        // Claim the decision; a concurrent choice of the program (same
        // generation) is taken into account by looking again.
        while !fd_table::replace(fd, record, record.with_kind(Kind::Decided)) {
            match fd_table::load(fd) {
                Some(now) if now.generation == before.generation && now.kind == record.kind => {
                    record = now
                }
                _ => return,
            }
        }
        decide_outbound(runtime, set, fd, record.choices, destination);
    });
}

/// An outbound connection: decided from connect()'s own address argument.
fn decide_outbound(
    runtime: &Runtime,
    set: SetsockoptFn,
    fd: i32,
    choices: Choices,
    destination: Endpoint,
) {
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
    let target = Target {
        fd,
        family: probed_family(runtime, fd),
        via: "connect",
        choices,
        reason: Some(&reason),
    };
    apply(runtime, set, &target);
}

/// What `before_listen` changed, to undo if `listen()` fails.
pub struct ListenUndo {
    record: Record,
    /// Each option we set, with the value it had before.
    previous: [(i32, i32, i32); MAX_OPTIONS],
    len: usize,
}

/// Before `listen()` on a pending socket: when no rule looks at inbound
/// addresses, every connection it accepts would be decided alike, so the
/// listener is decided now and its connections inherit (accept is free).
/// Returns what to undo should `listen()` fail.
pub fn before_listen(set: Option<SetsockoptFn>, fd: i32) -> Option<ListenUndo> {
    shielded(None, || {
        let record = fd_table::load(fd)?;
        if record.kind != Kind::Pending {
            return None;
        }
        let (runtime, set) = active(set)?;
        let decision = runtime.policy.inbound_fixed?;
        if !fd_table::replace(fd, record, record.with_kind(Kind::Decided)) {
            return None;
        }
        let mut undo = ListenUndo {
            record,
            previous: [(0, 0, 0); MAX_OPTIONS],
            len: 0,
        };
        if let Some(plan) = runtime.policy.plan_for(decision) {
            for option in record.choices.leave_to_us(plan) {
                if let Some(value) = sockopt::get_int(fd, option.level, option.name) {
                    undo.previous[undo.len] = (option.level, option.name, value);
                    undo.len += 1;
                }
            }
        }
        let reason = Reason {
            direction: Direction::In,
            decision,
            remote: None,
            port: None,
        };
        let target = Target {
            fd,
            family: probed_family(runtime, fd),
            via: "listen",
            choices: record.choices,
            reason: Some(&reason),
        };
        apply(runtime, set, &target);
        Some(undo)
    })
}

/// After a `listen()` that failed: the socket goes back to what it was
/// before `before_listen`, values included, so that it behaves exactly like
/// a socket that never called `listen()` (a later `connect()` decides it as
/// outbound).
pub fn after_failed_listen(set: Option<SetsockoptFn>, fd: i32, undo: Option<ListenUndo>) {
    shielded((), || {
        let (Some(undo), Some(set)) = (undo, set) else {
            return;
        };
        let decided = undo.record.with_kind(Kind::Decided);
        if !fd_table::replace(fd, decided, undo.record) {
            return;
        }
        for &(level, name, value) in undo.previous[..undo.len].iter().rev() {
            let option = SockOpt {
                level,
                name,
                value,
                bit: OptionSet::of(level, name).unwrap_or_default(),
            };
            let _ = sockopt::set(set, fd, &option);
        }
    });
}

/// After a successful `dup()`, `dup2()`, `dup3()` or `fcntl(F_DUPFD*)`: the
/// new number names the same socket (or file), so it gets the same kind
/// and choices, in a new generation.
pub fn after_dup(fd: i32, new_fd: i32) {
    shielded((), || {
        if fd == new_fd {
            return;
        }
        let Some(previous) = fd_table::load(new_fd) else {
            return;
        };
        let copied = match fd_table::load(fd) {
            Some(source) => previous.next(source.kind, source.choices),
            // The original cannot be followed: neither can its copy.
            None => previous.next(Kind::LeftAlone, Choices::default()),
        };
        fd_table::store(new_fd, copied);
    });
}

/// Before `dup2()`/`dup3()` replace whatever `new_fd` names.
pub fn before_replace(fd: i32, new_fd: i32) {
    if fd != new_fd {
        diagnostics::forget_if_private(new_fd);
    }
}

/// After `fcntl()`: `F_DUPFD` and `F_DUPFD_CLOEXEC` return a duplicate.
pub fn after_fcntl(fd: i32, command: i32, rc: i32) {
    if rc >= 0 && (command == libc::F_DUPFD || command == libc::F_DUPFD_CLOEXEC) {
        after_dup(fd, rc);
    }
}

/// After a successful `accept()`/`accept4()` on `listener` returned `fd`.
pub fn after_accept(set: Option<SetsockoptFn>, listener: i32, fd: i32) {
    shielded((), || {
        let Some((runtime, set)) = active(set) else {
            return;
        };
        let (Some(mut listening), Some(previous)) = (fd_table::load(listener), fd_table::load(fd))
        else {
            return;
        };
        if listening.kind == Kind::Unknown {
            let kind = match probe_foreign(listener) {
                None => return,
                Some(Kind::Unknown) => Kind::ForeignListener,
                Some(kind) => kind,
            };
            let probed = listening.with_kind(kind);
            fd_table::replace(listener, listening, probed);
            listening = probed;
        }
        let choices = listening.choices;
        match listening.kind {
            // The kernel copied the listener's options into the new socket.
            Kind::Decided | Kind::LeftAlone => {
                fd_table::store(fd, previous.next(listening.kind, choices));
            }
            Kind::ForeignListener | Kind::Pending | Kind::Unknown => {
                if !fd_table::store(fd, previous.next(Kind::Decided, choices)) {
                    return;
                }
                if runtime.policy.eager {
                    let target = Target {
                        fd,
                        family: probed_family(runtime, fd),
                        via: "accept",
                        choices,
                        reason: None,
                    };
                    configure(runtime, set, runtime.plan(), &target)
                } else {
                    decide_inbound(runtime, set, fd, choices)
                }
            }
        }
    });
}

/// An inbound connection: decided from the peer address, unless no rule
/// looks at addresses. The address comes from one getpeername() (and the
/// port accepted on from one getsockname(), only if a rule asks for it):
/// accept()'s own output is the program's memory, which we never read.
fn decide_inbound(runtime: &Runtime, set: SetsockoptFn, fd: i32, choices: Choices) {
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
                debug_left_alone(runtime, fd, |why| {
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
    let target = Target {
        fd,
        family: probed_family(runtime, fd),
        via: "accept",
        choices,
        reason: Some(&reason),
    };
    apply(runtime, set, &target);
}

/// After the program's own successful `setsockopt()`: a keepalive option
/// it set is its own from now on (`value` reads the int it passed).
pub fn after_program_setsockopt(
    fd: i32,
    level: i32,
    name: i32,
    value: impl FnOnce() -> Option<i32>,
) {
    shielded((), || {
        let Some(option) = OptionSet::of(level, name) else {
            return;
        };
        let Some(runtime) = runtime::active() else {
            return;
        };
        let value = value();
        let mut recorded = None;
        for _ in 0..16 {
            let Some(record) = fd_table::load(fd) else {
                return;
            };
            let mut updated = record;
            updated.choices.record(option, value);
            if fd_table::replace(fd, record, updated) {
                recorded = Some(updated);
                break;
            }
        }
        if let Some(record) = recorded {
            runtime.debug(|line| {
                let label = options::option_label(level, name).unwrap_or("?");
                let _ = write!(line, "fd {fd}: the program set {label}");
                if let Some(value) = value {
                    let _ = write!(line, "={value}");
                }
                if record.kind == Kind::Pending || record.kind == Kind::Unknown {
                    let _ = write!(line, "; we will not set it");
                }
            });
        }
    });
}

/// Before `close()` or `fclose()`: the number may next name something else
/// entirely. Forgotten before the real close so no other thread can reuse
/// it first.
pub fn before_close(fd: i32) {
    shielded((), || {
        diagnostics::forget_if_private(fd);
        if let Ok(fd) = u32::try_from(fd) {
            fd_table::forget_range(fd, fd);
        }
    });
}

/// Before `close_range()` or `closefrom()`: every number in the range is
/// forgotten, unless the call only marks them close-on-exec.
pub fn before_close_range(first: u32, last: u32, flags: i32) {
    shielded((), || {
        if flags & libc::CLOSE_RANGE_CLOEXEC as i32 != 0 {
            return;
        }
        diagnostics::forget_private_in(first, last);
        fd_table::forget_range(first, last);
    });
}
