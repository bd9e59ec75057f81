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
        generation,
    }
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
    // A new socket: the old number's choices are gone.
    assert_eq!(stored(&t), record(Kind::Decided, 4));
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
    assert_eq!(replaced(&t), (now, now.with_kind(Kind::Decided)));
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
    let found = program_set(now, OptionSet::IDLE, Some(30));
    let again = reclaim(claim, found).unwrap();
    assert_eq!(replaced(&again), (found, found.with_kind(Kind::Decided)));
    assert_eq!(configure(&again).choices, chose_idle());
    // Closed and reused, or decided by someone else: give up.
    assert_eq!(reclaim(claim, record(Kind::Pending, 5)), None);
    assert_eq!(reclaim(claim, now.with_kind(Kind::Decided)), None);
}

// ------------------------------------------------------------ listen()

#[test]
fn listen_decides_a_pending_socket_when_inbound_is_fixed() {
    let policy = inbound_fixed();
    let mut now = record(Kind::Pending, 2);
    now.choices = chose_idle();
    let t = before_listen(&policy, now);
    assert_eq!(replaced(&t), (now, now.with_kind(Kind::Decided)));
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
        failed_listen(before),
        Write::Replace {
            from: decided,
            to: before
        }
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
            let mut listener = record(kind, 1);
            listener.choices = chose_idle();
            let (probed, t) = accept(&policy, listener, record(Kind::Unknown, 8), never_probed);
            assert_eq!(probed, None);
            let mut expected = record(kind, 9);
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
    assert_eq!(stored(&t), record(Kind::Decided, 1));
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
    assert_eq!(
        t.step,
        Step::DecideInbound {
            choices: chose_idle()
        }
    );
    assert!(t.step.needs_write());
    // Then, from getpeername():
    let c = inbound_decision(&policy, chose_idle(), Address::v4([10, 2, 3, 4]), None);
    let reason = c.reason.unwrap();
    assert_eq!(reason.decision, Decision::Matched(0));
    assert_eq!(reason.direction, Direction::In);
    assert_eq!(reason.remote, Some(Address::v4([10, 2, 3, 4])));
    let c = inbound_decision(&policy, chose_idle(), Address::v4([192, 0, 2, 9]), Some(80));
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
    let mut original = record(Kind::Pending, 1);
    original.choices = chose_idle();
    let copy = dup(Some(original), record(Kind::Decided, 41));
    assert_eq!(copy.kind, Kind::Pending);
    assert_eq!(copy.choices, chose_idle());
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
            let after = program_set(before, option, Some(1));
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
    let pending = program_set(record(Kind::Pending, 3), OptionSet::IDLE, Some(30));
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
    let off = program_set(record(Kind::Pending, 1), OptionSet::KEEPALIVE, Some(0));
    assert!(off.choices.keepalive_off);
    let plan = eager().plan_for(Decision::Unmatched).copied().unwrap();
    assert_eq!(off.choices.leave_to_us(&plan).count(), 0);
    let on = program_set(off, OptionSet::KEEPALIVE, Some(1));
    assert!(!on.choices.keepalive_off);
    // An unreadable value is not a 0.
    let unknown = program_set(record(Kind::Pending, 1), OptionSet::KEEPALIVE, None);
    assert!(!unknown.choices.keepalive_off);
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
