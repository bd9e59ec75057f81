//! Call sequences around connect(), dup() and listen() that once slipped
//! past the library (tests/c/seqprobe.c): a connect() interrupted by a
//! signal, a program's own choice carried by a dup(), and a listen() that
//! failed before the socket was used outbound. Each is checked without rules,
//! with a direction and with rules, against the run without the library.

mod common;

use common::*;
use std::time::Duration;

const DEADLINE: Duration = Duration::from_secs(30);

/// The option words of the probe's `client` line, and its whole output.
fn client_options(mode: &str, preload: bool, env: &[(&str, &str)]) -> (String, String) {
    let mut cmd = command(c_program("seqprobe"), preload, env);
    cmd.arg(mode);
    let out = run(cmd, DEADLINE);
    let text = stdout(&out);
    assert!(
        out.status.success(),
        "seqprobe {mode}: {text} {}",
        stderr(&out)
    );
    let line = text
        .lines()
        .find_map(|l| l.strip_prefix("client "))
        .unwrap_or_else(|| panic!("no client line: {text}"))
        .to_string();
    (line, text)
}

const MODES: [&[(&str, &str)]; 3] = [
    &[("KEEPIDLE", "61")],
    &[("KEEPIDLE", "61"), ("KEEPALIVE_DIRECTION", "out")],
    &[
        ("KEEPIDLE", "61"),
        ("KEEPALIVE_RULES", "net=127.0.0.0/8:on"),
    ],
];

#[test]
fn connect_interrupted_by_a_signal_is_still_configured() {
    let (without, text) = client_options("eintr", false, &[]);
    assert!(text.contains("connect rc=-1 errno=4"), "no EINTR: {text}");
    assert!(without.starts_with("keepalive=0 "), "{without}");
    for env in MODES {
        let (with, text) = client_options("eintr", true, env);
        assert!(text.contains("connect rc=-1 errno=4"), "{env:?}: {text}");
        assert!(with.starts_with("keepalive=1 idle=61 "), "{env:?}: {with}");
    }
}

#[test]
fn a_dup_keeps_the_programs_own_choice() {
    let (without, _) = client_options("dup-choice", false, &[]);
    assert!(without.starts_with("keepalive=0 "), "{without}");
    for env in MODES {
        let (with, _) = client_options("dup-choice", true, env);
        assert!(with.starts_with("keepalive=0 "), "{env:?}: {with}");
    }
}

/// listen() itself fails (EADDRINUSE, not an earlier bind): the socket then
/// behaves exactly like one that never called listen(), in every mode,
/// including those that decide inbound at listen().
#[test]
fn a_failed_listen_does_not_decide_the_socket() {
    let (without, text) = client_options("failed-listen", false, &[]);
    assert!(text.contains("listen rc=-1 errno=98"), "{text}");
    for env in MODES {
        let (with, text) = client_options("failed-listen", true, env);
        assert!(text.contains("listen rc=-1 errno=98"), "{env:?}: {text}");
        assert!(with.starts_with("keepalive=1 idle=61 "), "{env:?}: {with}");
    }
    // Inbound decided at listen(), then undone: the outbound connection is
    // left alone, values included.
    let (with, _) = client_options(
        "failed-listen",
        true,
        &[("KEEPIDLE", "61"), ("KEEPALIVE_DIRECTION", "in")],
    );
    assert_eq!(with, without);
    let rules = [("KEEPALIVE_RULES", "dir=in:idle=300; dir=out:idle=61")];
    let (with, _) = client_options("failed-listen", true, &rules);
    assert!(with.starts_with("keepalive=1 idle=61 "), "{with}");
}
