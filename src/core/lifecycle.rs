//! The socket lifecycle as a pure state machine: a descriptor's record, an
//! event and the policy give the record to write and the one step to take.
//! The library's `actions` perform them: they read the record from the
//! table, call one function here, write the result (a compare-and-swap
//! where a concurrent change must win) and do the step (set the options,
//! ask for the peer's address, print a debug line).
//!
//! What a socket we did not create is (`Foreign`) and where a connection
//! goes (`Endpoint`) come in as values or closures: the system calls that
//! learn them stay in the library, and are made only when a transition
//! needs them.
//!
//! ```text
//! socket()  TCP, no rules ----------------------> Decided (configured)
//!           TCP, rules -------------------------> Pending
//!           not TCP ----------------------------> LeftAlone
//! connect() Pending / foreign Unknown, rules ---> Decided (by destination)
//!           foreign Unknown, no rules ----------> Decided (configured)
//!           foreign, keepalive on / not TCP ----> Decided / LeftAlone (untouched)
//! listen()  Pending, inbound fixed -------------> Decided (its connections inherit)
//!           ... and listen() failed ------------> Pending again, options undone
//! accept()  from Decided / LeftAlone -----------> the same (inherited)
//!           from Pending / foreign listener ----> Decided (by peer, or fixed)
//! dup*()    the copy ---------------------------> the original's kind and choices
//! setsockopt() by the program, one of the five -> its choice, recorded; and
//!           SO_KEEPALIVE=0 on a socket we set --> our options undone
//!           under override ---------------------> our value set again
//! close()   ------------------------------------> Unknown (a new generation)
//! ```
//!
//! A configured socket's record names the plan we set (`Record::applied`),
//! so that the program's later `setsockopt` knows what was ours.
//!
//! Every write that creates or copies a record starts a new generation, so
//! a decision taken for one socket never lands on the next one to get its
//! number (`Record::next`).
//!
//! The transitions run in every hooked call: they are `#[inline]` so that
//! the library's hot path pays no call or copy for this separation
//! (scripts/bench.sh counts the instructions per socket).

use crate::endpoint::Endpoint;
use crate::fd_state::{Choices, Kind, Record};
use crate::options::{OptionSet, SockOpt};
use crate::policy::{PlanId, Policy};
use crate::rules::{Address, Connection, Decision, Direction};

/// What the kernel says about a socket we did not create (`SO_PROTOCOL`,
/// `SO_TYPE`, `SO_KEEPALIVE`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Foreign {
    /// Not a TCP stream socket: never touched.
    NotTcp,
    /// TCP with keepalive already on: its owner chose (a parent, systemd's
    /// `KeepAlive=`), and we cannot tell which timers, so it stays as is.
    KeepaliveOn,
    /// TCP with keepalive off: nobody configured it; ours to decide.
    KeepaliveOff,
}

impl Foreign {
    /// The kind such a socket is recorded as.
    #[inline]
    pub fn kind(self) -> Kind {
        match self {
            Foreign::NotTcp => Kind::LeftAlone,
            Foreign::KeepaliveOn => Kind::Decided,
            Foreign::KeepaliveOff => Kind::Unknown,
        }
    }
}

/// The call a socket is configured at, as debug lines name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Via {
    /// `socket()`.
    Socket,
    /// `connect()`.
    Connect,
    /// `listen()`.
    Listen,
    /// `accept()`.
    Accept,
}

impl Via {
    /// The call's name.
    #[inline]
    pub fn name(self) -> &'static str {
        match self {
            Via::Socket => "socket",
            Via::Connect => "connect",
            Via::Listen => "listen",
            Via::Accept => "accept",
        }
    }
}

/// How a connection was decided under rules, for the plan and debug lines.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reason {
    /// Made or accepted.
    pub direction: Direction,
    /// What the rules say.
    pub decision: Decision,
    /// The other end, when it was looked at.
    pub remote: Option<Address>,
    /// The service port, when it was looked at.
    pub port: Option<u16>,
}

/// Setting a socket's options: the global plan (`reason` `None`, no rules)
/// or the plan of a decision, minus what the program chose itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Configure {
    /// Where.
    pub via: Via,
    /// The program's own choices, which win.
    pub choices: Choices,
    /// Why, under rules.
    pub reason: Option<Reason>,
}

/// The one thing to do after the record is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// Nothing.
    Nothing,
    /// Set options.
    Configure(Configure),
    /// Set a listener's options, remembering their values first so that a
    /// failed `listen()` can put them back (`failed_listen`).
    ConfigureListener(Configure),
    /// Ask the kernel for the peer (and maybe the local port), then
    /// configure by `inbound_decision`.
    DecideInbound {
        /// The accepted socket's record, as written.
        accepted: Record,
    },
    /// The program switched keepalive off on a socket we configured: put
    /// back the kernel's values of these options, which we set.
    Undo(OptionSet),
    /// Override: the program set one of our options; set ours again.
    Reassert(SockOpt),
    /// Debug only: a socket left alone because it is not TCP.
    NotTcp,
    /// Debug only: a socket waiting for its decision.
    Pending,
    /// Debug only: a foreign socket seen at `connect()`, left alone.
    ForeignAtConnect(Foreign),
    /// Debug only: the number was closed and reused during `connect()`.
    ReusedDuringConnect,
}

impl Step {
    /// Whether the step acts on the socket, and so must be skipped when
    /// the write before it failed (the number names something else now).
    /// Debug lines are printed either way.
    #[inline]
    pub fn needs_write(&self) -> bool {
        matches!(
            self,
            Step::Configure(_)
                | Step::ConfigureListener(_)
                | Step::DecideInbound { .. }
                | Step::Undo(_)
                | Step::Reassert(_)
        )
    }
}

/// A record to write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Write {
    /// Unconditionally: the number starts naming something new.
    Store(Record),
    /// Only if the table still holds `from` (no close, reuse or choice of
    /// the program in between).
    Replace {
        /// The record the decision was taken on.
        from: Record,
        /// The new record.
        to: Record,
    },
}

/// A transition: the record to write, if any, then the step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Transition {
    /// The write.
    pub write: Option<Write>,
    /// What to do next (`Step::needs_write`: only if the write succeeded).
    pub step: Step,
}

impl Transition {
    const NOTHING: Transition = Transition {
        write: None,
        step: Step::Nothing,
    };

    fn store(record: Record, step: Step) -> Transition {
        Transition {
            write: Some(Write::Store(record)),
            step,
        }
    }

    fn replace(from: Record, to: Record, step: Step) -> Transition {
        Transition {
            write: Some(Write::Replace { from, to }),
            step,
        }
    }
}

/// The plan a socket configured for `reason` (`None`: the global plan,
/// without rules) with the program's `choices` records as ours: none when
/// none of its options is ours to set.
#[inline]
fn applied(policy: &Policy, reason: Option<&Reason>, choices: Choices) -> PlanId {
    let decision = reason.map_or(Decision::Unmatched, |reason| reason.decision);
    match policy.plan_with_id(decision) {
        Some((plan, id)) if choices.left_to_us(plan) != OptionSet::EMPTY => id,
        _ => PlanId::NONE,
    }
}

/// The record of a socket decided by `configure`, and the step.
#[inline]
fn decided(
    policy: &Policy,
    record: Record,
    step: fn(Configure) -> Step,
    configure: Configure,
) -> (Record, Step) {
    let id = applied(policy, configure.reason.as_ref(), configure.choices);
    (
        record.with_kind(Kind::Decided).with_applied(id),
        step(configure),
    )
}

/// A successful `socket()`. `previous`: the number's record before.
#[inline]
pub fn socket(policy: &Policy, previous: Record, tcp: bool) -> Transition {
    if !tcp {
        return Transition::store(
            previous.next(Kind::LeftAlone, Choices::default()),
            Step::NotTcp,
        );
    }
    if policy.eager {
        let configure = Configure {
            via: Via::Socket,
            choices: Choices::default(),
            reason: None,
        };
        let decided = previous
            .next(Kind::Decided, Choices::default())
            .with_applied(PlanId::GLOBAL);
        return Transition::store(decided, Step::Configure(configure));
    }
    Transition::store(
        previous.next(Kind::Pending, Choices::default()),
        Step::Pending,
    )
}

/// Before `connect()`: without rules, a socket that never came through our
/// `socket()` is probed once and configured before the handshake. Returns
/// the transition and the record `after_connect` is to check against
/// (`None`: nothing left to decide there).
#[inline]
pub fn before_connect(
    policy: &Policy,
    record: Record,
    probe: impl FnOnce() -> Option<Foreign>,
) -> (Transition, Option<Record>) {
    if !probes_at_connect(policy, record) {
        return (Transition::NOTHING, Some(record));
    }
    let transition = match probe() {
        None => Transition::NOTHING,
        Some(Foreign::KeepaliveOff) => {
            let configure = Configure {
                via: Via::Connect,
                choices: record.choices,
                reason: None,
            };
            let (to, step) = decided(policy, record, Step::Configure, configure);
            Transition::replace(record, to, step)
        }
        Some(foreign) => Transition::replace(
            record,
            record.with_kind(foreign.kind()),
            Step::ForeignAtConnect(foreign),
        ),
    };
    (transition, None)
}

/// Whether `before_connect` asks the kernel about the socket: without
/// rules, one that never came through our `socket()`.
#[inline]
pub fn probes_at_connect(policy: &Policy, record: Record) -> bool {
    policy.eager && record.kind == Kind::Unknown
}

/// After a `connect()` that succeeded or is in progress, with rules: a
/// pending (or foreign, keepalive off) socket is decided by its
/// destination. `before` is what `before_connect` returned, `now` the
/// record after the call. The write is a claim: if it fails, `reclaim`
/// says whether to try again on the record found then.
#[inline]
pub fn after_connect(
    policy: &Policy,
    before: Option<Record>,
    now: Record,
    probe: impl FnOnce() -> Option<Foreign>,
    destination: impl FnOnce() -> Option<Endpoint>,
) -> Transition {
    let Some(before) = before else {
        return Transition::NOTHING;
    };
    if policy.eager {
        return Transition::NOTHING;
    }
    if now.generation != before.generation {
        return Transition {
            write: None,
            step: Step::ReusedDuringConnect,
        };
    }
    match now.kind {
        Kind::Pending => {}
        Kind::Unknown => match probe() {
            Some(Foreign::KeepaliveOff) => {}
            Some(foreign) => {
                let step = Step::ForeignAtConnect(foreign);
                return Transition::replace(now, now.with_kind(foreign.kind()), step);
            }
            None => return Transition::NOTHING,
        },
        _ => return Transition::NOTHING,
    }
    // AF_UNSPEC (dissolving an association) or no IP address: the real
    // connect() fails or connects nothing; decide at the next one.
    let Some(destination) = destination() else {
        return Transition::NOTHING;
    };
    let connection = Connection {
        direction: Direction::Out,
        remote: destination.address,
        port: Some(destination.port),
    };
    let reason = Reason {
        direction: Direction::Out,
        decision: policy.selection.decide(&connection),
        remote: Some(destination.address),
        port: Some(destination.port),
    };
    let configure = Configure {
        via: Via::Connect,
        choices: now.choices,
        reason: Some(reason),
    };
    let (to, step) = decided(policy, now, Step::Configure, configure);
    Transition::replace(now, to, step)
}

/// After a failed claim by `after_connect` or `inbound_decision`
/// (`claimed`: the record it expected, `found`: the one in the table): the
/// claim again on `found`, with the program's newer choices, if the number
/// still names the same socket in the same state; `None` to give up.
pub fn reclaim(policy: &Policy, claimed: Transition, found: Record) -> Option<Transition> {
    let Some(Write::Replace { from, .. }) = claimed.write else {
        return None;
    };
    let Step::Configure(configure) = claimed.step else {
        return None;
    };
    if found.generation != from.generation || found.kind != from.kind {
        return None;
    }
    let configure = Configure {
        choices: found.choices,
        ..configure
    };
    let (to, step) = decided(policy, found, Step::Configure, configure);
    Some(Transition::replace(found, to, step))
}

/// Before `listen()`: a pending socket is decided now when no rule looks at
/// inbound addresses (every connection it accepts would be decided alike,
/// and inherits the listener's options).
#[inline]
pub fn before_listen(policy: &Policy, record: Record) -> Transition {
    if record.kind != Kind::Pending {
        return Transition::NOTHING;
    }
    let Some(decision) = policy.inbound_fixed else {
        return Transition::NOTHING;
    };
    let configure = Configure {
        via: Via::Listen,
        choices: record.choices,
        reason: Some(Reason {
            direction: Direction::In,
            decision,
            remote: None,
            port: None,
        }),
    };
    let (to, step) = decided(policy, record, Step::ConfigureListener, configure);
    Transition::replace(record, to, step)
}

/// After `listen()` failed: the record `before_listen` wrote (`claimed`)
/// goes back to what it was (and the shell restores the options' values,
/// if this write succeeds), so the socket is exactly one that never called
/// `listen()`.
pub fn failed_listen(claimed: Write) -> Option<Write> {
    match claimed {
        Write::Replace { from, to } => Some(Write::Replace { from: to, to: from }),
        Write::Store(_) => None,
    }
}

/// After `accept()` on `listener` returned a socket whose number had the
/// record `previous`. `probe` is asked about the listener if we never saw
/// it. Returns the listener's new record, if probed, and the transition of
/// the accepted socket.
#[inline]
pub fn accept(
    policy: &Policy,
    listener: Record,
    previous: Record,
    probe: impl FnOnce() -> Option<Foreign>,
) -> (Option<Write>, Transition) {
    let mut listening = listener;
    let mut probed = None;
    if listening.kind == Kind::Unknown {
        let kind = match probe() {
            None => return (None, Transition::NOTHING),
            Some(Foreign::KeepaliveOff) => Kind::ForeignListener,
            Some(foreign) => foreign.kind(),
        };
        let to = listening.with_kind(kind);
        probed = Some(Write::Replace {
            from: listening,
            to,
        });
        listening = to;
    }
    if let Some(record) = inherited(listening, previous) {
        return (probed, Transition::store(record, Step::Nothing));
    }
    // A pending or foreign listener: each connection is decided now.
    let choices = listening.choices;
    let accepted = previous.next(Kind::Decided, choices);
    let reason = match (policy.eager, policy.inbound_fixed) {
        (true, _) => None,
        (false, Some(decision)) => Some(Reason {
            direction: Direction::In,
            decision,
            remote: None,
            port: None,
        }),
        (false, None) => {
            let step = Step::DecideInbound { accepted };
            return (probed, Transition::store(accepted, step));
        }
    };
    let configure = Configure {
        via: Via::Accept,
        choices,
        reason,
    };
    let (to, step) = decided(policy, accepted, Step::Configure, configure);
    (probed, Transition::store(to, step))
}

/// The record of a socket accepted from a settled listener (configured,
/// decided or left alone), which the kernel made with the listener's
/// options, ours too if we set any; `None` if the listener is not settled
/// (then `accept` decides).
#[inline]
pub fn inherited(listener: Record, previous: Record) -> Option<Record> {
    match listener.kind {
        Kind::Decided | Kind::LeftAlone => Some(
            previous
                .next(listener.kind, listener.choices)
                .with_applied(listener.applied),
        ),
        _ => None,
    }
}

/// Whether a socket is settled: configured, decided or left alone, so that
/// `connect()` has nothing to decide on it (`before_connect` and
/// `after_connect` change nothing).
#[inline]
pub fn settled(record: Record) -> bool {
    matches!(
        record.kind,
        Kind::Decided | Kind::LeftAlone | Kind::ForeignListener
    )
}

/// `Step::DecideInbound`, once the kernel gave the peer (and the local port,
/// if `policy.inbound_needs_port`): the plan it got recorded, and the
/// configuration to apply.
pub fn inbound_decision(
    policy: &Policy,
    accepted: Record,
    peer: Address,
    port: Option<u16>,
) -> Transition {
    let connection = Connection {
        direction: Direction::In,
        remote: peer,
        port,
    };
    let configure = Configure {
        via: Via::Accept,
        choices: accepted.choices,
        reason: Some(Reason {
            direction: Direction::In,
            decision: policy.selection.decide(&connection),
            remote: Some(peer),
            port,
        }),
    };
    let (to, step) = decided(policy, accepted, Step::Configure, configure);
    Transition::replace(accepted, to, step)
}

/// After `dup()` and friends: the copy `new_fd` (whose record was
/// `previous`) names the same socket as the original (`None`: the original
/// cannot be followed, and neither can its copy).
#[inline]
pub fn dup(original: Option<Record>, previous: Record) -> Record {
    match original {
        Some(source) => previous
            .next(source.kind, source.choices)
            .with_applied(source.applied),
        None => previous.next(Kind::LeftAlone, Choices::default()),
    }
}

/// After the program's own successful `setsockopt()` of a keepalive
/// option (`value`: the int it passed, if readable): the option is its own
/// from now on, whatever the socket's state, and `SO_KEEPALIVE=0` switches
/// us off for it entirely: what we set on it already is undone. Unless the
/// plan we set overrides the program: then our value is set again.
#[inline]
pub fn program_set(
    policy: &Policy,
    record: Record,
    option: OptionSet,
    value: Option<i32>,
) -> Transition {
    let mut updated = record;
    updated.choices.record(option, value);
    let step = match policy.plan(record.applied) {
        None => Step::Nothing,
        // Our value again, unless the program's was the same.
        Some(plan) if plan.override_program => {
            match plan.options().iter().find(|ours| ours.bit == option) {
                Some(&ours) if value != Some(ours.value) => Step::Reassert(ours),
                _ => Step::Nothing,
            }
        }
        Some(plan) if updated.choices.keepalive_off => {
            // Ours: what the program had not chosen before this call,
            // SO_KEEPALIVE aside (the program just set it).
            let ours = record.choices.left_to_us(plan);
            updated.applied = PlanId::NONE;
            Step::Undo(ours.without(OptionSet::KEEPALIVE))
        }
        Some(_) => Step::Nothing,
    };
    Transition::replace(record, updated, step)
}

/// Whether the socket is not decided yet, so that an option the program
/// sets now is left alone later, unless the plan it gets overrides (for
/// the debug line).
#[inline]
pub fn undecided(record: Record) -> bool {
    record.kind == Kind::Pending || record.kind == Kind::Unknown
}

/// Before `close()`: nothing known, a new generation.
#[inline]
pub fn close(record: Record) -> Record {
    record.closed()
}

#[cfg(test)]
mod tests;
