//! One test per transition of the socket lifecycle.

use super::*;
use crate::plan::KernelDefaults;
use crate::rules::{parse_rules, Selection};
use crate::settings::Settings;

/// No rules: every TCP socket is configured at `socket()`.
fn eager() -> Policy {
    policy("")
}

/// Rules whose inbound decision needs no address: decided at `listen()`.
fn inbound_fixed() -> Policy {
    policy("dir=out,net=10.0.0.0/8:off")
}

/// Rules that look at the peer of inbound connections.
fn inbound_by_address() -> Policy {
    policy("net=10.0.0.0/8:off")
}

fn policy(rules: &str) -> Policy {
    let (rules, bad) = parse_rules("KEEPALIVE_RULES", rules);
    assert!(bad.is_empty());
    let selection = Selection {
        rules,
        ..Selection::default()
    };
    Policy::new(&Settings::default(), selection, || KernelDefaults::LINUX)
}

fn record(kind: Kind, generation: u16) -> Record {
    Record {
        kind,
        choices: Choices::default(),
        applied: PlanId::NONE,
        generation,
    }
}

/// The record after the program's own `setsockopt`.
fn chosen(policy: &Policy, record: Record, option: OptionSet, value: Option<i32>) -> Record {
    let t = program_set(policy, record, option, value);
    let (from, to) = replaced(&t);
    assert_eq!(from, record);
    to
}

fn chose_idle() -> Choices {
    let mut choices = Choices::default();
    choices.record(OptionSet::IDLE, Some(30));
    choices
}

fn endpoint(octets: [u8; 4], port: u16) -> Option<Endpoint> {
    Some(Endpoint {
        address: Address::v4(octets),
        port,
    })
}

fn never_probed() -> Option<Foreign> {
    panic!("probed a socket whose record already says what it is")
}

fn no_destination() -> Option<Endpoint> {
    panic!("read the destination of a connection not to be decided")
}

fn stored(transition: &Transition) -> Record {
    match transition.write {
        Some(Write::Store(record)) => record,
        other => panic!("expected a store, got {other:?}"),
    }
}

fn replaced(transition: &Transition) -> (Record, Record) {
    match transition.write {
        Some(Write::Replace { from, to }) => (from, to),
        other => panic!("expected a replace, got {other:?}"),
    }
}

fn configure(transition: &Transition) -> Configure {
    match transition.step {
        Step::Configure(configure) | Step::ConfigureListener(configure) => configure,
        other => panic!("expected a configuration, got {other:?}"),
    }
}

// ------------------------------------------------------------- socket()

#[test]
fn socket_not_tcp_is_left_alone_in_a_new_generation() {
    let before = record(Kind::Decided, 7);
    for policy in [eager(), inbound_by_address()] {
        let t = socket(&policy, before, false);
        assert_eq!(stored(&t), record(Kind::LeftAlone, 8));
        assert_eq!(t.step, Step::NotTcp);
        assert!(!t.step.needs_write());
    }
}

#[test]
fn socket_tcp_without_rules_is_configured_at_once() {
    let mut before = record(Kind::Unknown, 3);
    before.choices = chose_idle();
    let t = socket(&eager(), before, true);
    // A new socket: the old number's choices are gone; the global plan is
    // ours on it.
    assert_eq!(
        stored(&t),
        record(Kind::Decided, 4).with_applied(PlanId::GLOBAL)
    );
    let c = configure(&t);
    assert_eq!(c.via, Via::Socket);
    assert_eq!(c.choices, Choices::default());
    assert_eq!(c.reason, None);
    assert!(t.step.needs_write());
}

#[test]
fn socket_tcp_with_rules_is_pending() {
    let t = socket(&inbound_by_address(), record(Kind::Unknown, u16::MAX), true);
    // Generations wrap.
    assert_eq!(stored(&t), record(Kind::Pending, 0));
    assert_eq!(t.step, Step::Pending);
}

// ------------------------------------------------ connect(), no rules

#[test]
fn connect_without_rules_leaves_known_sockets_to_after_connect() {
    for kind in [Kind::Decided, Kind::LeftAlone, Kind::Pending] {
        let now = record(kind, 2);
        let (t, pass) = before_connect(&eager(), now, never_probed);
        assert_eq!(t, Transition::NOTHING);
        assert_eq!(pass, Some(now));
        // ... which has nothing to do without rules.
        let after = after_connect(&eager(), pass, now, never_probed, no_destination);
        assert_eq!(after, Transition::NOTHING);
    }
}

#[test]
fn foreign_socket_at_connect_keepalive_off_is_configured() {
    let mut now = record(Kind::Unknown, 5);
    now.choices = chose_idle();
    let (t, pass) = before_connect(&eager(), now, || Some(Foreign::KeepaliveOff));
    assert_eq!(pass, None);
    let decided = now.with_kind(Kind::Decided).with_applied(PlanId::GLOBAL);
    assert_eq!(replaced(&t), (now, decided));
    let c = configure(&t);
    assert_eq!(
        (c.via, c.choices, c.reason),
        (Via::Connect, chose_idle(), None)
    );
}

#[test]
fn foreign_socket_at_connect_keepalive_on_or_not_tcp_is_left_alone() {
    for (foreign, kind) in [
        (Foreign::KeepaliveOn, Kind::Decided),
        (Foreign::NotTcp, Kind::LeftAlone),
    ] {
        let now = record(Kind::Unknown, 5);
        let (t, pass) = before_connect(&eager(), now, || Some(foreign));
        assert_eq!(pass, None);
        assert_eq!(replaced(&t), (now, now.with_kind(kind)));
        assert_eq!(t.step, Step::ForeignAtConnect(foreign));
        assert!(!t.step.needs_write());
    }
}

#[test]
fn foreign_descriptor_that_is_no_socket_is_not_recorded() {
    let now = record(Kind::Unknown, 5);
    let (t, pass) = before_connect(&eager(), now, || None);
    assert_eq!((t, pass), (Transition::NOTHING, None));
}

// ---------------------------------------------------- connect(), rules

#[test]
fn pending_socket_is_decided_by_its_destination() {
    let policy = inbound_by_address();
    let mut now = record(Kind::Pending, 9);
    now.choices = chose_idle();
    let (t, pass) = before_connect(&policy, now, never_probed);
    assert_eq!((t, pass), (Transition::NOTHING, Some(now)));
    let t = after_connect(&policy, pass, now, never_probed, || {
        endpoint([10, 1, 2, 3], 5432)
    });
    // Rule 1 is off: nothing of ours on it.
    assert_eq!(replaced(&t), (now, now.with_kind(Kind::Decided)));
    let c = configure(&t);
    assert_eq!(c.via, Via::Connect);
    assert_eq!(c.choices, chose_idle());
    let reason = c.reason.unwrap();
    assert_eq!(reason.decision, Decision::Matched(0));
    assert_eq!(reason.direction, Direction::Out);
    assert_eq!(reason.remote, Some(Address::v4([10, 1, 2, 3])));
    assert_eq!(reason.port, Some(5432));
    // Elsewhere: no rule matched, the global settings.
    let t = after_connect(&policy, pass, now, never_probed, || {
        endpoint([192, 0, 2, 1], 80)
    });
    assert_eq!(configure(&t).reason.unwrap().decision, Decision::Unmatched);
    assert_eq!(replaced(&t).1.applied, PlanId::GLOBAL);
}

#[test]
fn foreign_socket_first_seen_at_connect_with_rules() {
    let policy = inbound_by_address();
    let now = record(Kind::Unknown, 1);
    let (_, pass) = before_connect(&policy, now, never_probed);
    // Keepalive off: decided like one of ours.
    let t = after_connect(
        &policy,
        pass,
        now,
        || Some(Foreign::KeepaliveOff),
        || endpoint([10, 0, 0, 1], 1),
    );
    assert_eq!(configure(&t).reason.unwrap().decision, Decision::Matched(0));
    // Keepalive on, or not TCP: recorded, left alone, destination unread.
    for foreign in [Foreign::KeepaliveOn, Foreign::NotTcp] {
        let t = after_connect(&policy, pass, now, || Some(foreign), no_destination);
        assert_eq!(replaced(&t), (now, now.with_kind(foreign.kind())));
        assert_eq!(t.step, Step::ForeignAtConnect(foreign));
    }
    // Not a socket.
    let t = after_connect(&policy, pass, now, || None, no_destination);
    assert_eq!(t, Transition::NOTHING);
}

#[test]
fn connect_without_an_ip_destination_decides_nothing_yet() {
    // AF_UNSPEC, or connect() interrupted by EINTR before the kernel read
    // the address: the socket stays pending for the next connect().
    let policy = inbound_by_address();
    let now = record(Kind::Pending, 4);
    let t = after_connect(&policy, Some(now), now, never_probed, || None);
    assert_eq!(t, Transition::NOTHING);
}

#[test]
fn connect_interrupted_by_eintr_is_decided_once_by_the_retry() {
    // EINTR: the kernel goes on connecting, and the hooks decide as for
    // EINPROGRESS. The program's retry (EALREADY/EISCONN) finds the socket
    // decided and changes nothing.
    let policy = inbound_by_address();
    let now = record(Kind::Pending, 4);
    let first = after_connect(&policy, Some(now), now, never_probed, || {
        endpoint([192, 0, 2, 1], 80)
    });
    let (_, decided) = replaced(&first);
    let (t, pass) = before_connect(&policy, decided, never_probed);
    assert_eq!(t, Transition::NOTHING);
    let retry = after_connect(&policy, pass, decided, never_probed, no_destination);
    assert_eq!(retry, Transition::NOTHING);
}

#[test]
fn a_failed_connect_decides_nothing() {
    // The hooks call after_connect only after a connect() that succeeded or
    // is in progress; a failed one leaves the record as before_connect saw
    // it, and the next connect() decides.
    let policy = inbound_by_address();
    let now = record(Kind::Pending, 4);
    let (t, pass) = before_connect(&policy, now, never_probed);
    assert_eq!((t, pass), (Transition::NOTHING, Some(now)));
    let next = after_connect(&policy, pass, now, never_probed, || {
        endpoint([10, 9, 9, 9], 22)
    });
    assert_eq!(replaced(&next).1.kind, Kind::Decided);
}

#[test]
fn stale_descriptor_closed_and_reused_during_connect() {
    let policy = inbound_by_address();
    let before = record(Kind::Pending, 4);
    // Another thread closed the number and opened a new socket on it.
    let now = record(Kind::Pending, 6);
    let t = after_connect(&policy, Some(before), now, never_probed, no_destination);
    assert_eq!(t.write, None);
    assert_eq!(t.step, Step::ReusedDuringConnect);
}

#[test]
fn a_lost_claim_is_retried_with_the_programs_new_choice() {
    let policy = inbound_by_address();
    let now = record(Kind::Pending, 4);
    let claim = after_connect(&policy, Some(now), now, never_probed, || {
        endpoint([192, 0, 2, 1], 80)
    });
    // The program set TCP_KEEPIDLE meanwhile: same socket, new choices.
    let found = chosen(&policy, now, OptionSet::IDLE, Some(30));
    let again = reclaim(&policy, claim, found).unwrap();
    let decided = found.with_kind(Kind::Decided).with_applied(PlanId::GLOBAL);
    assert_eq!(replaced(&again), (found, decided));
    assert_eq!(configure(&again).choices, chose_idle());
    // Closed and reused, or decided by someone else: give up.
    assert_eq!(reclaim(&policy, claim, record(Kind::Pending, 5)), None);
    assert_eq!(reclaim(&policy, claim, now.with_kind(Kind::Decided)), None);
}

// ------------------------------------------------------------ listen()

#[test]
fn listen_decides_a_pending_socket_when_inbound_is_fixed() {
    let policy = inbound_fixed();
    let mut now = record(Kind::Pending, 2);
    now.choices = chose_idle();
    let t = before_listen(&policy, now);
    let decided = now.with_kind(Kind::Decided).with_applied(PlanId::GLOBAL);
    assert_eq!(replaced(&t), (now, decided));
    let Step::ConfigureListener(c) = t.step else {
        panic!("{:?}", t.step)
    };
    assert_eq!(c.via, Via::Listen);
    assert_eq!(c.choices, chose_idle());
    let reason = c.reason.unwrap();
    assert_eq!(
        (reason.direction, reason.decision),
        (Direction::In, Decision::Unmatched)
    );
    assert_eq!((reason.remote, reason.port), (None, None));
}

#[test]
fn listen_leaves_the_decision_to_accept_when_addresses_matter() {
    let t = before_listen(&inbound_by_address(), record(Kind::Pending, 2));
    assert_eq!(t, Transition::NOTHING);
}

#[test]
fn listen_on_a_socket_not_pending_changes_nothing() {
    for kind in [
        Kind::Unknown,
        Kind::Decided,
        Kind::LeftAlone,
        Kind::ForeignListener,
    ] {
        assert_eq!(
            before_listen(&inbound_fixed(), record(kind, 2)),
            Transition::NOTHING
        );
    }
}

#[test]
fn a_failed_listen_puts_the_socket_back() {
    let mut before = record(Kind::Pending, 2);
    before.choices = chose_idle();
    let t = before_listen(&inbound_fixed(), before);
    let (_, decided) = replaced(&t);
    assert_eq!(
        failed_listen(t.write.unwrap()),
        Some(Write::Replace {
            from: decided,
            to: before
        })
    );
    // The socket is then a pending one again: a connect() decides it.
    let after = after_connect(&inbound_fixed(), Some(before), before, never_probed, || {
        endpoint([10, 0, 0, 1], 1)
    });
    assert_eq!(
        configure(&after).reason.unwrap().decision,
        Decision::Matched(0)
    );
}

// ------------------------------------------------------------ accept()

#[test]
fn accepted_from_a_decided_or_left_alone_listener_inherits() {
    for policy in [eager(), inbound_by_address()] {
        for kind in [Kind::Decided, Kind::LeftAlone] {
            let mut listener = record(kind, 1).with_applied(PlanId::GLOBAL);
            listener.choices = chose_idle();
            let (probed, t) = accept(&policy, listener, record(Kind::Unknown, 8), never_probed);
            assert_eq!(probed, None);
            // What we set on the listener is ours on the connection too.
            let mut expected = record(kind, 9).with_applied(PlanId::GLOBAL);
            expected.choices = chose_idle();
            assert_eq!(stored(&t), expected);
            assert_eq!(t.step, Step::Nothing);
        }
    }
}

#[test]
fn accepted_from_a_pending_listener_without_rules_is_configured() {
    // A pending listener under no rules cannot happen from our socket(),
    // but a foreign listener probed as keepalive off can (see below).
    let (_, t) = accept(
        &eager(),
        record(Kind::Pending, 1),
        record(Kind::Unknown, 0),
        never_probed,
    );
    assert_eq!(
        stored(&t),
        record(Kind::Decided, 1).with_applied(PlanId::GLOBAL)
    );
    let c = configure(&t);
    assert_eq!((c.via, c.reason), (Via::Accept, None));
}

#[test]
fn accepted_from_a_pending_listener_with_inbound_fixed() {
    let mut listener = record(Kind::Pending, 1);
    listener.choices = chose_idle();
    let (_, t) = accept(
        &inbound_fixed(),
        listener,
        record(Kind::Unknown, 0),
        never_probed,
    );
    let c = configure(&t);
    assert_eq!(c.choices, chose_idle());
    let reason = c.reason.unwrap();
    assert_eq!(
        (reason.decision, reason.remote),
        (Decision::Unmatched, None)
    );
}

#[test]
fn accepted_from_a_pending_listener_by_address() {
    let policy = inbound_by_address();
    let mut listener = record(Kind::Pending, 1);
    listener.choices = chose_idle();
    let (_, t) = accept(&policy, listener, record(Kind::Unknown, 0), never_probed);
    let mut decided = record(Kind::Decided, 1);
    decided.choices = chose_idle();
    assert_eq!(stored(&t), decided);
    assert_eq!(t.step, Step::DecideInbound { accepted: decided });
    assert!(t.step.needs_write());
    // Then, from getpeername(): rule 1 is off, nothing of ours on it.
    let t = inbound_decision(&policy, decided, Address::v4([10, 2, 3, 4]), None);
    assert_eq!(replaced(&t), (decided, decided));
    let c = configure(&t);
    assert_eq!(c.choices, chose_idle());
    let reason = c.reason.unwrap();
    assert_eq!(reason.decision, Decision::Matched(0));
    assert_eq!(reason.direction, Direction::In);
    assert_eq!(reason.remote, Some(Address::v4([10, 2, 3, 4])));
    let t = inbound_decision(&policy, decided, Address::v4([192, 0, 2, 9]), Some(80));
    assert_eq!(replaced(&t).1, decided.with_applied(PlanId::GLOBAL));
    let c = configure(&t);
    assert_eq!(c.reason.unwrap().decision, Decision::Unmatched);
    assert_eq!(c.reason.unwrap().port, Some(80));
}

#[test]
fn accepted_from_a_foreign_listener_probes_it_once() {
    // systemd's socket, keepalive off: a foreign listener, connections
    // decided one by one.
    let listener = record(Kind::Unknown, 3);
    for policy in [eager(), inbound_fixed(), inbound_by_address()] {
        let (probed, t) = accept(&policy, listener, record(Kind::Unknown, 0), || {
            Some(Foreign::KeepaliveOff)
        });
        assert_eq!(
            probed,
            Some(Write::Replace {
                from: listener,
                to: listener.with_kind(Kind::ForeignListener)
            })
        );
        assert_eq!(stored(&t).kind, Kind::Decided);
        assert!(t.step.needs_write());
        // Next time it is known.
        let (again, _) = accept(
            &policy,
            listener.with_kind(Kind::ForeignListener),
            record(Kind::Unknown, 0),
            never_probed,
        );
        assert_eq!(again, None);
    }
    // Keepalive on (systemd's KeepAlive=yes): connections inherit it.
    let (probed, t) = accept(&eager(), listener, record(Kind::Unknown, 0), || {
        Some(Foreign::KeepaliveOn)
    });
    assert!(probed.is_some());
    assert_eq!((stored(&t).kind, t.step), (Kind::Decided, Step::Nothing));
    // Not TCP, or no socket at all.
    let (_, t) = accept(&eager(), listener, record(Kind::Unknown, 0), || {
        Some(Foreign::NotTcp)
    });
    assert_eq!((stored(&t).kind, t.step), (Kind::LeftAlone, Step::Nothing));
    let (probed, t) = accept(&eager(), listener, record(Kind::Unknown, 0), || None);
    assert_eq!((probed, t), (None, Transition::NOTHING));
}

// -------------------------------------------------------------- dup*()

#[test]
fn a_duplicate_gets_the_originals_kind_and_choices_in_a_new_generation() {
    let mut original = record(Kind::Decided, 1).with_applied(PlanId::GLOBAL);
    original.choices = chose_idle();
    let copy = dup(Some(original), record(Kind::Decided, 41));
    assert_eq!(copy.kind, Kind::Decided);
    assert_eq!(copy.choices, chose_idle());
    assert_eq!(copy.applied, PlanId::GLOBAL);
    assert_eq!(copy.generation, 42);
    // An original we cannot follow: neither can its copy.
    assert_eq!(
        dup(None, record(Kind::Decided, 41)),
        record(Kind::LeftAlone, 42)
    );
}

// -------------------------------------------- the program's setsockopt()

#[test]
fn each_option_the_program_sets_is_its_own_before_and_after_a_decision() {
    let options = [
        OptionSet::KEEPALIVE,
        OptionSet::IDLE,
        OptionSet::INTERVAL,
        OptionSet::COUNT,
        OptionSet::USER_TIMEOUT,
    ];
    for kind in [
        Kind::Pending,
        Kind::Unknown,
        Kind::Decided,
        Kind::ForeignListener,
    ] {
        for option in options {
            let before = record(kind, 3);
            let after = chosen(&eager(), before, option, Some(1));
            // Same socket, same state: only the choice is new.
            assert_eq!((after.kind, after.generation), (kind, 3));
            assert!(after.choices.set.contains(option));
            assert!(!after.choices.keepalive_off);
            assert_eq!(
                undecided(after),
                matches!(kind, Kind::Pending | Kind::Unknown)
            );
        }
    }
}

#[test]
fn a_program_that_chose_an_option_keeps_it_when_we_decide() {
    let policy = inbound_by_address();
    let pending = chosen(&policy, record(Kind::Pending, 3), OptionSet::IDLE, Some(30));
    let t = after_connect(&policy, Some(pending), pending, never_probed, || {
        endpoint([192, 0, 2, 1], 80)
    });
    let c = configure(&t);
    assert_eq!(c.choices, chose_idle());
    let plan = policy.plan_for(c.reason.unwrap().decision).unwrap();
    let ours: Vec<_> = c.choices.leave_to_us(plan).map(|o| o.bit).collect();
    assert!(!ours.contains(&OptionSet::IDLE));
    assert!(ours.contains(&OptionSet::KEEPALIVE));
}

#[test]
fn so_keepalive_zero_switches_us_off_and_one_back_on() {
    let policy = eager();
    let off = chosen(
        &policy,
        record(Kind::Pending, 1),
        OptionSet::KEEPALIVE,
        Some(0),
    );
    assert!(off.choices.keepalive_off);
    let plan = policy.plan_for(Decision::Unmatched).copied().unwrap();
    assert_eq!(off.choices.leave_to_us(&plan).count(), 0);
    let on = chosen(&policy, off, OptionSet::KEEPALIVE, Some(1));
    assert!(!on.choices.keepalive_off);
    // An unreadable value is not a 0.
    let unknown = chosen(
        &policy,
        record(Kind::Pending, 1),
        OptionSet::KEEPALIVE,
        None,
    );
    assert!(!unknown.choices.keepalive_off);
}

/// A policy with every timer set, overriding the program or not.
fn every_timer(override_program: bool, rules: &str) -> Policy {
    let settings = Settings {
        timers: crate::timers::Timers {
            idle_secs: Some(5),
            interval_secs: Some(2),
            count: Some(3),
            user_timeout: Some(crate::timers::UserTimeout::Millis(4000)),
        },
        override_program,
        ..Settings::default()
    };
    let (rules, bad) = parse_rules("KEEPALIVE_RULES", rules);
    assert!(bad.is_empty());
    let selection = Selection {
        rules,
        ..Selection::default()
    };
    Policy::new(&settings, selection, || KernelDefaults::LINUX)
}

#[test]
fn so_keepalive_zero_undoes_what_we_set_and_only_that() {
    let policy = every_timer(false, "");
    let configured = stored(&socket(&policy, record(Kind::Unknown, 1), true));
    // The program sets its own idle after us (its value stays), then
    // switches keepalive off: the interval, count and user timeout we set
    // are undone, and nothing of ours is left on the socket.
    let own_idle = chosen(&policy, configured, OptionSet::IDLE, Some(30));
    let t = program_set(&policy, own_idle, OptionSet::KEEPALIVE, Some(0));
    let undone = OptionSet::INTERVAL
        .union(OptionSet::COUNT)
        .union(OptionSet::USER_TIMEOUT);
    assert_eq!(t.step, Step::Undo(undone));
    assert!(t.step.needs_write());
    let (_, off) = replaced(&t);
    assert_eq!(off.applied, PlanId::NONE);
    assert!(off.choices.keepalive_off);
    // Again, or on a socket we set nothing on: nothing to undo.
    assert_eq!(
        program_set(&policy, off, OptionSet::KEEPALIVE, Some(0)).step,
        Step::Nothing
    );
    let pending = record(Kind::Pending, 1);
    assert_eq!(
        program_set(&policy, pending, OptionSet::KEEPALIVE, Some(0)).step,
        Step::Nothing
    );
    // SO_KEEPALIVE=1, or another option: nothing to undo either.
    for (option, value) in [(OptionSet::KEEPALIVE, 1), (OptionSet::COUNT, 0)] {
        let t = program_set(&policy, configured, option, Some(value));
        assert_eq!(t.step, Step::Nothing);
        assert_eq!(replaced(&t).1.applied, PlanId::GLOBAL);
    }
}

#[test]
fn a_listener_switched_off_leaves_nothing_of_ours_to_its_connections() {
    let policy = every_timer(false, "");
    let listener = stored(&socket(&policy, record(Kind::Unknown, 1), true));
    let off = replaced(&program_set(
        &policy,
        listener,
        OptionSet::KEEPALIVE,
        Some(0),
    ))
    .1;
    let (_, t) = accept(&policy, off, record(Kind::Unknown, 5), never_probed);
    let accepted = stored(&t);
    assert_eq!((accepted.applied, t.step), (PlanId::NONE, Step::Nothing));
    assert!(accepted.choices.keepalive_off);
}

#[test]
fn a_socket_decided_after_keepalive_off_has_nothing_of_ours() {
    // With rules, SO_KEEPALIVE=0 before connect(): nothing set, nothing
    // to undo later; the same end state as without rules.
    let policy = every_timer(false, "*:on");
    let off = chosen(
        &policy,
        record(Kind::Pending, 1),
        OptionSet::KEEPALIVE,
        Some(0),
    );
    let t = after_connect(&policy, Some(off), off, never_probed, || {
        endpoint([192, 0, 2, 1], 80)
    });
    assert_eq!(replaced(&t).1.applied, PlanId::NONE);
    assert_eq!(configure(&t).choices.leave_to_us(&policy.global).count(), 0);
}

#[test]
fn under_override_our_value_is_set_again_over_the_program_s() {
    for policy in [
        every_timer(true, ""),
        every_timer(false, "*:on,override=on"),
    ] {
        let pending = record(Kind::Pending, 1);
        let configured = if policy.eager {
            stored(&socket(&policy, record(Kind::Unknown, 0), true))
        } else {
            // The program's own idle before the decision does not stop ours.
            let own = chosen(&policy, pending, OptionSet::IDLE, Some(15));
            let t = after_connect(&policy, Some(own), own, never_probed, || {
                endpoint([192, 0, 2, 1], 80)
            });
            let decided = replaced(&t).1;
            let plan = policy.plan(decided.applied).unwrap();
            assert_eq!(configure(&t).choices.leave_to_us(plan).count(), 5);
            decided
        };
        assert_ne!(configured.applied, PlanId::NONE);
        let t = program_set(&policy, configured, OptionSet::IDLE, Some(15));
        let Step::Reassert(ours) = t.step else {
            panic!("{:?}", t.step)
        };
        assert_eq!((ours.label(), ours.value), ("TCP_KEEPIDLE", 5));
        // SO_KEEPALIVE=0 too: keepalive stays on, ours.
        let t = program_set(&policy, configured, OptionSet::KEEPALIVE, Some(0));
        assert!(matches!(t.step, Step::Reassert(ours) if ours.value == 1));
        assert_eq!(replaced(&t).1.applied, configured.applied);
        // The program's value is ours already: nothing to do.
        let t = program_set(&policy, configured, OptionSet::KEEPALIVE, Some(1));
        assert_eq!(t.step, Step::Nothing);
    }
    // Override off in the rule that decided: the program wins there.
    let policy = every_timer(true, "port=80:on,override=off");
    let t = after_connect(
        &policy,
        Some(record(Kind::Pending, 1)),
        record(Kind::Pending, 1),
        never_probed,
        || endpoint([192, 0, 2, 1], 80),
    );
    let configured = replaced(&t).1;
    let t = program_set(&policy, configured, OptionSet::IDLE, Some(15));
    assert_eq!(t.step, Step::Nothing);
}

// ------------------------------------------------------------- close()

#[test]
fn close_forgets_everything_in_a_new_generation() {
    let mut open = record(Kind::Decided, 10);
    open.choices = chose_idle();
    assert_eq!(close(open), record(Kind::Unknown, 11));
    // A decision taken before the close misses the next socket.
    let pending = record(Kind::Pending, 10);
    let claim = after_connect(
        &inbound_by_address(),
        Some(pending),
        pending,
        never_probed,
        || endpoint([10, 0, 0, 1], 1),
    );
    let reused = socket(&inbound_by_address(), close(pending), true);
    let (from, _) = replaced(&claim);
    assert_ne!(from, stored(&reused));
}
