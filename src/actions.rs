//! What the library does at each intercepted call. The hooks call these
//! around the real function; each runs behind `shielded`, so errno is
//! preserved and no panic escapes.
//!
//! The decisions are the core's (`keepalive_core::lifecycle`); this file
//! performs them: it reads a descriptor's record from `fd_table`, asks the
//! lifecycle, writes the record it returns (`commit`) and does its step
//! (`finish`): system calls through `sockopt` and `endpoint`, debug lines.
//!
//! Without rules every TCP socket is configured at `socket()`. With rules
//! (see `policy`) sockets stay `Pending` there and are decided at
//! `connect()` from its own address argument (after the real call, once the
//! kernel has accepted the pointer), at `listen()` when addresses do not
//! matter for inbound connections, or at `accept()` from one `getpeername`.
//!
//! In every mode, the program wins option by option: an option it set
//! itself is never set by us, and a program that switched `SO_KEEPALIVE`
//! off gets no option at all (`fd_state::Choices`): what we had set is
//! undone, the kernel's values put back. Under override
//! (`KEEPALIVE_OVERRIDE`, a rule's `override=on`) our values win instead:
//! set regardless, and set again after the program's own `setsockopt`.

use crate::diagnostics;
use crate::endpoint;
use crate::fd_table;
use crate::runtime::{self, Runtime};
use crate::sockopt::{self, ErrnoGuard, SetsockoptFn};
use keepalive_core::classify;
use keepalive_core::endpoint::Endpoint;
use keepalive_core::fd_state::{Choices, Kind, Record};
use keepalive_core::lifecycle::{self, Configure, Foreign, Reason, Step, Write};
use keepalive_core::options::{self, OptionSet, SockOpt};
use keepalive_core::plan::{Plan, MAX_OPTIONS};
use keepalive_core::policy::Policy;
use keepalive_core::rules::{Decision, Direction};
use std::fmt::Write as _;
use std::panic::{catch_unwind, AssertUnwindSafe};

/// Runs our part of a hook: errno is restored afterwards, and a panic (a bug
/// of ours) is swallowed, leaving the program's call result untouched.
fn shielded<T>(fallback: T, work: impl FnOnce() -> T) -> T {
    let _errno = ErrnoGuard::save();
    catch_unwind(AssertUnwindSafe(work)).unwrap_or(fallback)
}

/// The configuration, if the library is on and can set options.
#[inline]
fn active(set: Option<SetsockoptFn>) -> Option<(&'static Runtime, SetsockoptFn)> {
    Some((runtime::active()?, set?))
}

/// `active`, when no debug line is to be printed (the common case): the
/// fast paths of the hooks then skip `shielded` and the debug branches.
/// They call only code with no panic path (loads and stores of the table,
/// the core's pure transitions, system calls), so no panic can leave them.
/// The `panic-in-hook` tests take the full path.
#[inline]
fn quiet(set: Option<SetsockoptFn>) -> Option<(&'static Runtime, SetsockoptFn)> {
    let (runtime, set) = active(set)?;
    let quiet = !runtime.debug && !cfg!(feature = "panic-in-hook");
    quiet.then_some((runtime, set))
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

/// Sets the options of `plan` that `choices` leave to us. A failure is
/// ignored: the program's call has already succeeded and stays a success.
/// The caller keeps errno.
#[inline(always)]
fn set_options(set: SetsockoptFn, fd: i32, plan: &Plan, choices: Choices) {
    let ours = choices.left_to_us(plan);
    for option in plan.options() {
        if ours.contains(option.bit) {
            let _ = sockopt::set(set, fd, option);
        }
    }
}

/// Sets the options of `plan` that the program left to us, and says so
/// (debug). A failure is only reported: the program's call has already
/// succeeded and stays a success.
fn configure(runtime: &Runtime, set: SetsockoptFn, plan: &Plan, target: &Target<'_>) {
    let choices = target.choices;
    // The errno of each option that failed, by its place in the plan.
    let mut failed = [0; MAX_OPTIONS];
    for (index, option) in plan.options().iter().enumerate() {
        if !choices.leaves_to_us(plan, option) {
            continue; // the program's own
        }
        if let Err(errno) = sockopt::set(set, target.fd, option) {
            failed[index] = errno;
        }
    }
    debug_configured(runtime, plan, target, &failed);
}

/// The debug line of `configure`.
#[cold]
fn debug_configured(runtime: &Runtime, plan: &Plan, target: &Target<'_>, failed: &[i32]) {
    runtime.debug(|line| {
        let _ = write!(
            line,
            "fd {} ({}, {}): ",
            target.fd,
            family_name(target.family),
            target.via
        );
        if target.choices.keepalive_off && !plan.override_program {
            let _ = write!(line, "left alone: the program switched SO_KEEPALIVE off");
        } else {
            let _ = write!(line, "set");
            for option in target.choices.leave_to_us(plan) {
                let _ = write!(line, " {}={}", option.label(), option.value);
            }
        }
        // The options of the plan the program set itself: kept, or under
        // override replaced by ours.
        let programs =
            || (plan.options().iter()).filter(|option| target.choices.set.contains(option.bit));
        if programs().next().is_some() {
            let _ = match plan.override_program {
                true => write!(line, "; over the program's own:"),
                false => write!(line, "; the program's own:"),
            };
            for option in programs() {
                let _ = write!(line, " {}", option.label());
            }
            if plan.override_program {
                let _ = write!(line, " (override)");
            }
        }
        for (option, &errno) in plan.options().iter().zip(failed) {
            if errno != 0 {
                let _ = write!(line, "; {} failed (errno {errno})", option.label());
            }
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

/// Applies the lifecycle's `Configure` step to `fd`: the global plan, or
/// a rules decision's plan (or nothing at all). `family`: the socket's,
/// when known; otherwise asked for (debug only).
// Inlined into each hook: a call and the copy of its argument cost more
// than the rest (scripts/bench.sh). Without debug lines, only the options.
#[inline(always)]
fn configure_as(
    runtime: &Runtime,
    set: SetsockoptFn,
    fd: i32,
    family: Option<i32>,
    step: &Configure,
) {
    if !runtime.debug {
        let plan = match step.reason {
            None => Some(runtime.plan()),
            Some(reason) => runtime.policy.plan_for(reason.decision),
        };
        if let Some(plan) = plan {
            set_options(set, fd, plan, step.choices);
        }
        return;
    }
    configure_with_debug(runtime, set, fd, family, step);
}

/// `configure_as` with its debug lines.
#[cold]
fn configure_with_debug(
    runtime: &Runtime,
    set: SetsockoptFn,
    fd: i32,
    family: Option<i32>,
    step: &Configure,
) {
    let target = Target {
        fd,
        family: family.unwrap_or_else(|| probed_family(runtime, fd)),
        via: step.via.name(),
        choices: step.choices,
        reason: step.reason.as_ref(),
    };
    let Some(reason) = target.reason else {
        return configure(runtime, set, runtime.plan(), &target);
    };
    match runtime.policy.plan_for(reason.decision) {
        Some(plan) => configure(runtime, set, plan, &target),
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

/// Writes a record the lifecycle returned: the one place a hook writes a
/// descriptor's state (closing goes through `fd_table::forget_range`, with
/// `lifecycle::close`). False if the number cannot be followed, or changed
/// under us.
#[inline(always)]
fn commit(fd: i32, write: Option<Write>) -> bool {
    match write {
        None => true,
        Some(Write::Store(record)) => fd_table::store(fd, record),
        Some(Write::Replace { from, to }) => fd_table::replace(fd, from, to),
    }
}

/// Does a transition's step, once its record is written (`written`).
/// `NotTcp` and `Pending` are reported by `after_socket`, which knows the
/// socket's arguments.
fn finish(runtime: &Runtime, set: SetsockoptFn, fd: i32, written: bool, step: Step) {
    if step.needs_write() && !written {
        return;
    }
    match step {
        Step::Configure(configure) | Step::ConfigureListener(configure) => {
            configure_as(runtime, set, fd, None, &configure)
        }
        Step::DecideInbound { accepted } => decide_inbound(runtime, set, fd, accepted),
        Step::Undo(options) => put_back_kernel_values(runtime, set, fd, options),
        Step::Reassert(option) => {
            let failed = sockopt::set(set, fd, &option).err();
            runtime.debug(|line| {
                let _ = write!(
                    line,
                    "fd {fd}: set {}={} again",
                    option.label(),
                    option.value
                );
                let _ = write!(line, " over the program's own (override)");
                if let Some(errno) = failed {
                    let _ = write!(line, "; failed (errno {errno})");
                }
            });
        }
        Step::ForeignAtConnect(foreign) => debug_left_alone(runtime, fd, |why| {
            let _ = match foreign {
                Foreign::NotTcp => write!(why, "at connect: not TCP"),
                _ => write!(why, "at connect: keepalive already chosen by its owner"),
            };
        }),
        Step::ReusedDuringConnect => debug_left_alone(runtime, fd, |why| {
            let _ = write!(why, "at connect: closed and reused during connect()");
        }),
        Step::Nothing | Step::NotTcp | Step::Pending => {}
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
#[inline(always)]
pub fn after_socket(
    set: Option<SetsockoptFn>,
    fd: i32,
    domain: i32,
    socket_type: i32,
    protocol: i32,
) {
    // Fast path, no debug lines: the lifecycle's record stored and, for a
    // TCP socket without rules, the global plan set.
    if let (Some((runtime, set)), Some(previous)) = (quiet(set), fd_table::load(fd)) {
        let tcp = classify::is_tcp_socket_request(domain, socket_type, protocol);
        let transition = lifecycle::socket(&runtime.policy, previous, tcp);
        if let (true, Step::Configure(_)) = (commit(fd, transition.write), transition.step) {
            // A new socket: the program has chosen nothing on it yet.
            let _errno = ErrnoGuard::save();
            for option in runtime.plan().options() {
                let _ = sockopt::set(set, fd, option);
            }
        }
        return;
    }
    after_socket_slow(set, fd, domain, socket_type, protocol);
}

// Out of line: the hook itself stays small for the fast path.
#[inline(never)]
fn after_socket_slow(
    set: Option<SetsockoptFn>,
    fd: i32,
    domain: i32,
    socket_type: i32,
    protocol: i32,
) {
    shielded((), || {
        // Tests only: a bug of ours, which `shielded` must catch.
        if cfg!(feature = "panic-in-hook") {
            panic!("panic-in-hook: a test-only panic in after_socket");
        }
        let Some((runtime, set)) = active(set) else {
            return;
        };
        // A number we cannot follow gets nothing: we could not honour the
        // program's later choices on it.
        let Some(previous) = fd_table::load(fd) else {
            return;
        };
        let tcp = classify::is_tcp_socket_request(domain, socket_type, protocol);
        let transition = lifecycle::socket(&runtime.policy, previous, tcp);
        let written = commit(fd, transition.write);
        match transition.step {
            Step::NotTcp => debug_left_alone(runtime, fd, |why| {
                let _ = write!(
                    why,
                    "not TCP ({}, type {socket_type}, protocol {protocol})",
                    family_name(domain)
                );
            }),
            Step::Pending => runtime.debug(|line| {
                let _ = write!(
                    line,
                    "fd {fd} ({}, socket): pending until connect, listen or accept",
                    family_name(domain)
                );
            }),
            Step::Configure(configure) if written => {
                configure_as(runtime, set, fd, Some(domain), &configure)
            }
            step => finish(runtime, set, fd, written, step),
        }
    });
}

/// What the kernel says a socket we did not create is; `None` if it is not
/// a socket at all or the descriptor is bad.
fn probe_foreign(fd: i32) -> Option<Foreign> {
    let protocol = sockopt::get_int(fd, libc::SOL_SOCKET, libc::SO_PROTOCOL)?;
    let socket_type = sockopt::get_int(fd, libc::SOL_SOCKET, libc::SO_TYPE)?;
    if protocol != libc::IPPROTO_TCP || socket_type != libc::SOCK_STREAM {
        return Some(Foreign::NotTcp);
    }
    match sockopt::get_int(fd, libc::SOL_SOCKET, libc::SO_KEEPALIVE)? {
        0 => Some(Foreign::KeepaliveOff),
        _ => Some(Foreign::KeepaliveOn),
    }
}

/// Before `connect()`. Without rules, sockets that never came through our
/// `socket()` (inherited, raw system call) are probed once and configured
/// before the handshake starts. Returns the record as it stands, for
/// `after_connect` to check that the number still names this socket
/// (`None`: nothing to do after the call).
#[inline(always)]
pub fn before_connect(set: Option<SetsockoptFn>, fd: i32) -> Option<Record> {
    // Fast path, the common case: a socket already settled (configured at
    // socket(), or decided) has nothing to decide at connect(). Two loads,
    // nothing that can fail or panic; debug lines take the full path
    // (`quiet`).
    // With rules, a pending socket is decided after the call: the record
    // is all `after_connect` needs.
    if let (Some((runtime, _)), Some(record)) = (quiet(set), fd_table::load(fd)) {
        if lifecycle::settled(record) {
            return None;
        }
        if !lifecycle::probes_at_connect(&runtime.policy, record) {
            return Some(record);
        }
    }
    before_connect_slow(set, fd)
}

// Out of line: the hook itself stays small for the fast path.
#[inline(never)]
fn before_connect_slow(set: Option<SetsockoptFn>, fd: i32) -> Option<Record> {
    shielded(None, || {
        let (runtime, set) = active(set)?;
        let record = fd_table::load(fd)?;
        let (transition, pass) =
            lifecycle::before_connect(&runtime.policy, record, || probe_foreign(fd));
        let written = commit(fd, transition.write);
        finish(runtime, set, fd, written, transition.step);
        pass
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
        // Nothing to decide (lifecycle::after_connect says the same): skip
        // even the table's load on the hot path.
        if before.is_none() || runtime.policy.eager {
            return;
        }
        let Some(now) = fd_table::load(fd) else {
            return;
        };
        let mut transition = lifecycle::after_connect(
            &runtime.policy,
            before,
            now,
            || probe_foreign(fd),
            destination,
        );
        // The claim fails if the program made a choice meanwhile (same
        // socket): claimed again with it, or given up if the socket changed.
        let mut written = commit(fd, transition.write);
        while !written && transition.step.needs_write() {
            let found = fd_table::load(fd);
            let again =
                found.and_then(|found| lifecycle::reclaim(&runtime.policy, transition, found));
            let Some(again) = again else {
                return;
            };
            transition = again;
            written = commit(fd, transition.write);
        }
        match &transition.step {
            Step::Configure(configure) if written => {
                configure_as(runtime, set, fd, None, configure)
            }
            step => finish(runtime, set, fd, written, *step),
        }
    });
}

/// What `before_listen` changed, to undo if `listen()` fails.
pub struct ListenUndo {
    /// The record it wrote.
    claim: Write,
    /// The options we set that had the kernel's default before: the socket
    /// was ours and undecided, and the program had not set them.
    set: OptionSet,
    /// Under override, the program's own values of the options it had set,
    /// read before ours replaced them, to give back.
    programs: [Option<SockOpt>; MAX_OPTIONS],
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
        let transition = lifecycle::before_listen(&runtime.policy, record);
        let (Step::ConfigureListener(configure), Some(claim)) = (transition.step, transition.write)
        else {
            return None;
        };
        if !commit(fd, Some(claim)) {
            return None;
        }
        let decision = configure.reason.map(|reason| reason.decision);
        let plan = decision.and_then(|d| runtime.policy.plan_for(d));
        let mut undo = ListenUndo {
            claim,
            set: plan.map_or(OptionSet::EMPTY, |plan| configure.choices.left_to_us(plan)),
            programs: [None; MAX_OPTIONS],
        };
        if let Some(plan) = plan.filter(|plan| plan.override_program) {
            keep_programs_values(fd, plan, configure.choices, &mut undo);
        }
        configure_as(runtime, set, fd, None, &configure);
        Some(undo)
    })
}

/// Under override, `before_listen` is about to set our values over the
/// program's own: reads those (one getsockopt each, only on this path) so
/// that a failed `listen()` gives them back. An option whose value cannot
/// be read gets the kernel's default back instead.
fn keep_programs_values(fd: i32, plan: &Plan, choices: Choices, undo: &mut ListenUndo) {
    let programs = plan
        .options()
        .iter()
        .filter(|option| choices.set.contains(option.bit));
    for (slot, option) in undo.programs.iter_mut().zip(programs) {
        if let Some(value) = sockopt::get_int(fd, option.level, option.name) {
            *slot = Some(SockOpt { value, ..*option });
            undo.set = undo.set.without(option.bit);
        }
    }
}

/// After a `listen()` that failed: the socket goes back to what it was
/// before `before_listen`, values included (the program's own, under
/// override, and for each other option we set the kernel's default: off,
/// this namespace's sysctls, no user timeout),
/// so that it behaves like a socket that never called `listen()`: a later
/// `connect()` decides it as outbound. Costs nothing unless listen() failed.
pub fn after_failed_listen(set: Option<SetsockoptFn>, fd: i32, undo: Option<ListenUndo>) {
    shielded((), || {
        let (Some(undo), Some((runtime, set))) = (undo, active(set)) else {
            return;
        };
        if commit(fd, lifecycle::failed_listen(undo.claim)) {
            put_back_kernel_values(runtime, set, fd, undo.set);
            for option in undo.programs.iter().flatten() {
                let _ = sockopt::set(set, fd, option);
            }
        }
    });
}

/// The five options, in the order of a plan.
const KEEPALIVE_OPTIONS: [(i32, i32); 5] = [
    (libc::SOL_SOCKET, libc::SO_KEEPALIVE),
    (libc::IPPROTO_TCP, libc::TCP_KEEPIDLE),
    (libc::IPPROTO_TCP, libc::TCP_KEEPINTVL),
    (libc::IPPROTO_TCP, libc::TCP_KEEPCNT),
    (libc::IPPROTO_TCP, libc::TCP_USER_TIMEOUT),
];

/// Gives each of `options` the value a new socket has (keepalive off, this
/// namespace's sysctls as read at load, no user timeout): what we set on
/// a socket we created is undone. No file is opened here.
fn put_back_kernel_values(runtime: &Runtime, set: SetsockoptFn, fd: i32, options: OptionSet) {
    if options == OptionSet::EMPTY {
        return;
    }
    let defaults = runtime.kernel_defaults;
    let kernel = [
        0,
        defaults.idle_secs,
        defaults.interval_secs,
        defaults.count,
        0,
    ];
    for ((level, name), value) in KEEPALIVE_OPTIONS.into_iter().zip(kernel) {
        let bit = OptionSet::of(level, name).unwrap_or_default();
        if options.contains(bit) {
            let option = SockOpt {
                level,
                name,
                value: value as i32,
                bit,
            };
            let _ = sockopt::set(set, fd, &option);
        }
    }
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
        let copy = lifecycle::dup(fd_table::load(fd), previous);
        commit(new_fd, Some(Write::Store(copy)));
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
#[inline(always)]
pub fn after_accept(set: Option<SetsockoptFn>, listener: i32, fd: i32) {
    // Fast path, the common case: the listener is settled, and the kernel
    // copied its options into the new socket; one store records that. Two
    // loads and a store, nothing that can fail or panic.
    if let (Some(listening), Some(previous)) = (fd_table::load(listener), fd_table::load(fd)) {
        if let Some(inherited) = lifecycle::inherited(listening, previous) {
            fd_table::store(fd, inherited);
            return;
        }
    }
    after_accept_slow(set, listener, fd);
}

// Out of line: the hook itself stays small for the fast path.
#[inline(never)]
fn after_accept_slow(set: Option<SetsockoptFn>, listener: i32, fd: i32) {
    shielded((), || {
        let Some((runtime, set)) = active(set) else {
            return;
        };
        let (Some(listening), Some(previous)) = (fd_table::load(listener), fd_table::load(fd))
        else {
            return;
        };
        let (probed, transition) = lifecycle::accept(&runtime.policy, listening, previous, || {
            probe_foreign(listener)
        });
        commit(listener, probed);
        let written = commit(fd, transition.write);
        finish(runtime, set, fd, written, transition.step);
    });
}

/// An inbound connection decided from the peer address. The address comes
/// from one getpeername() (and the port accepted on from one getsockname(),
/// only if a rule asks for it): accept()'s own output is the program's
/// memory, which we never read.
fn decide_inbound(runtime: &Runtime, set: SetsockoptFn, fd: i32, accepted: Record) {
    let policy = &runtime.policy;
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
    let mut transition = lifecycle::inbound_decision(policy, accepted, peer.address, port);
    // The claim fails if the program made a choice meanwhile (another
    // thread): claimed again with it, or given up if the socket changed.
    let mut written = commit(fd, transition.write);
    while !written {
        let found = fd_table::load(fd);
        let again = found.and_then(|found| lifecycle::reclaim(policy, transition, found));
        let Some(again) = again else {
            return;
        };
        transition = again;
        written = commit(fd, transition.write);
    }
    finish(runtime, set, fd, written, transition.step);
}

/// After the program's own successful `setsockopt()`: a keepalive option
/// it set is its own from now on (`value` reads the int it passed); if it
/// switched keepalive off, what we set is undone; under override, ours is
/// set again. `set`: the real `setsockopt`.
#[inline(always)]
pub fn after_program_setsockopt(
    set: SetsockoptFn,
    fd: i32,
    level: i32,
    name: i32,
    value: impl FnOnce() -> Option<i32>,
) {
    // Fast path: any other option (SO_LINGER, TCP_NODELAY...) is none of
    // our business. A pure comparison of two ints.
    if let Some(option) = OptionSet::of(level, name) {
        program_chose(set, fd, (level, name, option), value());
    }
}

/// `after_program_setsockopt` of one of the five options.
#[inline(never)]
fn program_chose(set: SetsockoptFn, fd: i32, chosen: (i32, i32, OptionSet), value: Option<i32>) {
    let (level, name, option) = chosen;
    shielded((), || {
        let Some(runtime) = runtime::active() else {
            return;
        };
        let mut recorded = None;
        for _ in 0..16 {
            let Some(record) = fd_table::load(fd) else {
                return;
            };
            // Retried if a decision or a close got in between: the choice is
            // then recorded on what the number holds now.
            let transition = lifecycle::program_set(&runtime.policy, record, option, value);
            if commit(fd, transition.write) {
                recorded = Some((record, transition.step));
                break;
            }
        }
        if let Some((record, step)) = recorded {
            runtime.debug(|line| {
                let label = options::option_label(level, name).unwrap_or("?");
                let _ = write!(line, "fd {fd}: the program set {label}");
                if let Some(value) = value {
                    let _ = write!(line, "={value}");
                }
                if lifecycle::undecided(record) {
                    let _ = write!(line, "{}", when_decided(&runtime.policy, option));
                }
                if let Step::Undo(options) = step {
                    let _ = write!(line, "; the kernel's values put back:");
                    for (level, name) in KEEPALIVE_OPTIONS {
                        if options.contains(OptionSet::of(level, name).unwrap_or_default()) {
                            let label = options::option_label(level, name).unwrap_or("?");
                            let _ = write!(line, " {label}");
                        }
                    }
                }
            });
            finish(runtime, set, fd, true, step);
        }
    });
}

/// What becomes of an option the program set on a socket not decided yet
/// (debug): ours is set over it only by a plan that overrides and has it.
fn when_decided(policy: &Policy, option: OptionSet) -> &'static str {
    let overrides = |plan: &Plan| plan.override_program && plan.set().contains(option);
    if !policy.plans().any(overrides) {
        "; we will not set it"
    } else if policy.plans().all(overrides) {
        "; ours will be set over it if the socket gets keepalive (override)"
    } else {
        "; ours will be set over it if the socket's rule overrides"
    }
}

/// Before `close()` or `fclose()`: the number may next name something else
/// entirely. Forgotten before the real close so no other thread can reuse
/// it first.
/// Two atomic operations, no system call, nothing that can fail or panic.
pub fn before_close(fd: i32) {
    diagnostics::forget_if_private(fd);
    fd_table::forget(fd);
}

/// Before `fclose()`: the stream's descriptor, if it has one, as for
/// `close()`. `fileno` sets errno to EBADF on a stream with no descriptor
/// (`fmemopen`, `open_memstream`, `fopencookie`), and the real `fclose`
/// then succeeds without touching errno: so errno is kept as it was.
pub fn before_fclose(fileno: impl FnOnce() -> i32) {
    let _errno = crate::sockopt::ErrnoGuard::save();
    let fd = fileno();
    if fd >= 0 {
        before_close(fd);
    }
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
