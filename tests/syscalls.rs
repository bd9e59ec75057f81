//! System calls counted with strace: the library must cost exactly one
//! `setsockopt` per configured option on each TCP socket and nothing else on
//! the socket paths. tests/c/syscount.c walks through the phases of a client
//! and a server, writing a marker (`write(-1, "@PHASE", ...)`) before each;
//! the same program is traced with and without the library, and per phase
//! the difference between the two logs is what the library did. Counts are
//! deterministic, unlike times (scripts/bench.sh measures those).

mod common;

use common::*;
use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

const DEADLINE: Duration = Duration::from_secs(60);

/// The options libkeepalive sets for the timers below, as strace spells them,
/// in the order the library sets them.
const KEEPALIVE_ON: (&str, &str) = ("SO_KEEPALIVE", "1");
const TIMERS: [(&str, &str); 3] = [("KEEPIDLE", "60"), ("KEEPINTVL", "10"), ("KEEPCNT", "6")];
const TIMER_OPTIONS: [(&str, &str); 3] = [
    ("TCP_KEEPIDLE", "60"),
    ("TCP_KEEPINTVL", "10"),
    ("TCP_KEEPCNT", "6"),
];

/// One system call from strace's log: its name and its arguments as text.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Call {
    name: String,
    args: Vec<String>,
    line: String,
}

impl Call {
    /// `setsockopt(3, SOL_SOCKET, SO_KEEPALIVE, [1], 4) = 0` gives
    /// ("SO_KEEPALIVE", "1").
    fn option(&self) -> (String, String) {
        let value = self.args[3].trim_matches(|c| c == '[' || c == ']');
        (self.args[2].clone(), value.to_string())
    }
}

/// A traced run, split at the markers: the calls before `@main` (loading and
/// constructors) under "", then each phase under its name.
struct Trace {
    phases: BTreeMap<String, Vec<Call>>,
    order: Vec<String>,
}

fn parse_call(line: &str) -> Option<Call> {
    let open = line.find('(')?;
    let name = &line[..open];
    if name.is_empty() || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
        return None; // "+++ exited +++", "--- SIGCHLD ---" and the like
    }
    // Only top-level commas separate arguments: `{sa_family=..., ...}` and
    // `[16]` hold commas of their own. The call ends at the `)` that closes
    // the argument list; strace pads what follows it with spaces.
    let mut args = Vec::new();
    let mut depth = 0;
    let mut current = String::new();
    let mut in_string = false;
    let mut escaped = false;
    let mut closed = false;
    for c in line[open + 1..].chars() {
        if in_string {
            current.push(c);
            match (escaped, c) {
                (true, _) => escaped = false,
                (false, '\\') => escaped = true,
                (false, '"') => in_string = false,
                _ => {}
            }
            continue;
        }
        match c {
            '"' => in_string = true,
            ')' if depth == 0 => {
                closed = true;
                break;
            }
            '{' | '[' | '(' => depth += 1,
            '}' | ']' | ')' => depth -= 1,
            ',' if depth == 0 => {
                args.push(current.trim().to_string());
                current.clear();
                continue;
            }
            _ => {}
        }
        current.push(c);
    }
    if !closed {
        return None; // an unfinished call: "<unfinished ...>"
    }
    if !current.trim().is_empty() {
        args.push(current.trim().to_string());
    }
    Some(Call {
        name: name.to_string(),
        args,
        line: line.to_string(),
    })
}

/// The phase named by a marker call, if `call` is one.
fn marker(call: &Call) -> Option<String> {
    if call.name != "write" || call.args.first().map(String::as_str) != Some("-1") {
        return None;
    }
    let text = call.args.get(1)?.trim_matches('"');
    text.strip_prefix('@').map(str::to_string)
}

fn strace_available() -> &'static str {
    let found = Command::new("strace").arg("-V").output();
    assert!(
        found.is_ok_and(|out| out.status.success()),
        "strace is needed to count system calls: apt-get install -y strace"
    );
    "strace"
}

/// Runs syscount under strace, the library preloaded into the traced
/// program only (strace's own `-E`, so strace itself stays untouched).
fn trace(preload: bool, env: &[(&str, &str)]) -> Trace {
    let log = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!(
        "syscount.{}.{}.strace",
        std::process::id(),
        unique()
    ));
    let mut cmd = command(strace_available(), false, env);
    // cargo test's library path only makes the loader search more places.
    cmd.env_remove("LD_LIBRARY_PATH");
    cmd.args(["-qq", "-e", "signal=none", "-s", "64", "-o"])
        .arg(&log);
    if preload {
        cmd.arg("-E")
            .arg(format!("LD_PRELOAD={}", library().display()));
    }
    cmd.arg(c_program("syscount"));
    let output = run(cmd, DEADLINE);
    assert!(
        output.status.success(),
        "strace syscount: {}{}",
        stdout(&output),
        stderr(&output)
    );
    let text = std::fs::read_to_string(&log).expect("read strace log");
    let _ = std::fs::remove_file(&log);

    let mut phases: BTreeMap<String, Vec<Call>> = BTreeMap::new();
    let mut order = vec![String::new()];
    let mut current = String::new();
    for call in text.lines().filter_map(parse_call) {
        if let Some(name) = marker(&call) {
            order.push(name.clone());
            current = name;
            phases.entry(current.clone()).or_default();
            continue;
        }
        phases.entry(current.clone()).or_default().push(call);
    }
    assert_eq!(order.last().map(String::as_str), Some("end"), "{text}");
    Trace { phases, order }
}

fn unique() -> usize {
    use std::sync::atomic::{AtomicUsize, Ordering};
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

/// The calls of `phase` in `with` that `without` does not have: matched by
/// name, in order, so the program's own calls cancel out. Panics if the
/// library removed or reordered one of the program's calls.
fn extra_calls(with: &Trace, without: &Trace, phase: &str) -> Vec<Call> {
    let ours = &with.phases[phase];
    let theirs = &without.phases[phase];
    let mut extra = Vec::new();
    let mut next = theirs.iter().peekable();
    for call in ours {
        match next.peek() {
            Some(program) if program.name == call.name => {
                next.next();
            }
            _ => extra.push(call.clone()),
        }
    }
    let missing: Vec<_> = next.map(|c| c.line.as_str()).collect();
    assert!(
        missing.is_empty(),
        "phase {phase}: the program's calls {missing:?} are missing under the library"
    );
    extra
}

fn lines(calls: &[Call]) -> Vec<&str> {
    calls.iter().map(|c| c.line.as_str()).collect()
}

/// `expected` as strace prints options, repeated `sockets` times.
fn options_times(expected: &[(&str, &str)], sockets: usize) -> Vec<(String, String)> {
    std::iter::repeat(expected)
        .take(sockets)
        .flatten()
        .map(|(name, value)| (name.to_string(), value.to_string()))
        .collect()
}

/// Asserts that `calls` are exactly the planned setsockopt calls, in order,
/// for `sockets` sockets, and nothing else.
fn assert_only_options(phase: &str, calls: &[Call], expected: &[(&str, &str)], sockets: usize) {
    let not_setsockopt: Vec<_> = calls.iter().filter(|c| c.name != "setsockopt").collect();
    assert!(
        not_setsockopt.is_empty(),
        "phase {phase}: the library made calls other than setsockopt: {:?}",
        lines(calls)
    );
    let got: Vec<_> = calls.iter().map(Call::option).collect();
    assert_eq!(
        got,
        options_times(expected, sockets),
        "phase {phase}: {:?}",
        lines(calls)
    );
}

/// Phases where the library must make no system call at all.
const FREE_PHASES: [&str; 14] = [
    "main",
    "udp-socket",
    "unix-socket",
    "listener-setup",
    "connect",
    "accept",
    "connect2",
    "accept4",
    "program-setsockopt",
    "udp-connect",
    "close",
    "foreign-listener",
    "raw-socket",
    "end",
];

/// Phases in which the program creates TCP sockets through libc: how many.
const SOCKET_PHASES: [(&str, usize); 5] = [
    ("tcp-socket", 1),
    ("tcp6-socket", 1),
    ("listener-socket", 1),
    ("client2-socket", 1),
    ("foreign-clients", 2),
];

/// A socket the library did not see created is probed once with
/// `getsockopt` (protocol, type, keepalive already on?) before configuring.
const MAX_PROBE_CALLS: usize = 3;

/// Every phase of syscount, checked for one configuration whose plan is
/// `expected` (empty: the library is switched off).
fn check_every_phase(env: &[(&str, &str)], expected: &[(&str, &str)]) {
    let with = trace(true, env);
    let without = trace(false, env);
    assert_eq!(with.order, without.order);
    let covered: Vec<&str> = FREE_PHASES
        .iter()
        .copied()
        .chain(SOCKET_PHASES.iter().map(|(p, _)| *p))
        .chain(["foreign-accept1", "foreign-accept2", "raw-connect"])
        .collect();
    for phase in &with.order[1..] {
        assert!(covered.contains(&phase.as_str()), "phase {phase} unchecked");
    }

    for phase in FREE_PHASES {
        let extra = extra_calls(&with, &without, phase);
        assert!(
            extra.is_empty(),
            "phase {phase}: the library made system calls {:?} (env {env:?})",
            lines(&extra)
        );
    }
    for (phase, sockets) in SOCKET_PHASES {
        let extra = extra_calls(&with, &without, phase);
        assert_only_options(phase, &extra, expected, sockets);
    }
    // A listener inherited from systemd or inetd: probed at its first
    // accept() only; after that each connection costs exactly its options.
    for (phase, max_probe) in [
        ("foreign-accept1", MAX_PROBE_CALLS),
        ("foreign-accept2", 0),
        ("raw-connect", MAX_PROBE_CALLS),
    ] {
        let extra = extra_calls(&with, &without, phase);
        let (probe, rest): (Vec<Call>, Vec<Call>) =
            extra.into_iter().partition(|c| c.name == "getsockopt");
        let probe_limit = if expected.is_empty() { 0 } else { max_probe };
        assert!(
            probe.len() <= probe_limit,
            "phase {phase}: {} probes, at most {probe_limit} expected: {:?}",
            probe.len(),
            lines(&probe)
        );
        assert_only_options(phase, &rest, expected, 1);
    }
}

#[test]
fn default_settings_cost_one_setsockopt_per_tcp_socket() {
    check_every_phase(&[], &[KEEPALIVE_ON]);
}

#[test]
fn three_timers_cost_four_setsockopts_per_tcp_socket() {
    let mut expected = vec![KEEPALIVE_ON];
    expected.extend(TIMER_OPTIONS);
    check_every_phase(&TIMERS, &expected);
}

#[test]
fn every_option_costs_one_setsockopt_even_if_equal_to_the_default() {
    // KEEPCNT=9 and the user timeout 0 are the kernel's own defaults: they
    // are still set, because a sysctl may change under a running program.
    let env = [
        ("KEEPIDLE", "7200"),
        ("KEEPINTVL", "75"),
        ("KEEPCNT", "9"),
        ("KEEPALIVE_USER_TIMEOUT", "0"),
    ];
    let expected = [
        KEEPALIVE_ON,
        ("TCP_KEEPIDLE", "7200"),
        ("TCP_KEEPINTVL", "75"),
        ("TCP_KEEPCNT", "9"),
        ("TCP_USER_TIMEOUT", "0"),
    ];
    check_every_phase(&env, &expected);
}

#[test]
fn switched_off_costs_nothing_anywhere() {
    check_every_phase(&[("KEEPALIVE", "off"), ("KEEPIDLE", "60")], &[]);
}

/// The calls the library's constructor made: those after the dynamic
/// loader finished (its `munmap` of ld.so.cache, which follows the last
/// shared object it opened) and before main.
fn constructor_calls(trace: &Trace) -> Vec<Call> {
    let start = &trace.phases[""];
    let last_library = start
        .iter()
        .rposition(|c| c.name == "openat" && c.line.contains(".so"))
        .expect("no shared object opened");
    let loader_done = start[last_library..]
        .iter()
        .position(|c| c.name == "munmap")
        .map(|i| last_library + i + 1)
        .expect("no munmap of ld.so.cache");
    start[loader_done..].to_vec()
}

fn opened_files(calls: &[Call]) -> Vec<String> {
    calls
        .iter()
        .filter(|c| c.name == "openat" || c.name == "open")
        .map(|c| {
            let path = if c.name == "openat" {
                &c.args[1]
            } else {
                &c.args[0]
            };
            path.trim_matches('"').to_string()
        })
        .collect()
}

/// The three keepalive sysctls, in the order the library reads them.
const SYSCTLS: [&str; 3] = [
    "/proc/sys/net/ipv4/tcp_keepalive_time",
    "/proc/sys/net/ipv4/tcp_keepalive_intvl",
    "/proc/sys/net/ipv4/tcp_keepalive_probes",
];

#[test]
fn the_constructor_opens_only_the_keepalive_sysctls_and_only_for_timers() {
    let without = trace(false, &TIMERS);
    assert!(
        constructor_calls(&without).is_empty(),
        "control: syscount alone makes no calls between loading and main: {:?}",
        lines(&constructor_calls(&without))
    );

    // Without a timer (SO_KEEPALIVE only), nothing is opened or read.
    let plain = trace(true, &[]);
    let calls = constructor_calls(&plain);
    assert_eq!(
        opened_files(&calls),
        Vec::<String>::new(),
        "{:?}",
        lines(&calls)
    );
    assert!(
        calls.iter().all(|c| c.name != "read"),
        "{:?}",
        lines(&calls)
    );

    // With timers the sysctls are read once, at start-up, so that undoing
    // our timers later (SO_KEEPALIVE=0, a failed listen()) opens no file.
    // auto derives the timeout from them too: still once.
    let user_timeout_auto = [("KEEPIDLE", "60"), ("KEEPALIVE_USER_TIMEOUT", "auto")];
    for env in [&TIMERS[..], &user_timeout_auto] {
        let traced = trace(true, env);
        let calls = constructor_calls(&traced);
        assert_eq!(
            opened_files(&calls),
            SYSCTLS,
            "{env:?}: {:?}",
            lines(&calls)
        );
        for forbidden in ["socket", "getsockopt", "setsockopt", "fcntl", "ioctl"] {
            assert!(
                calls.iter().all(|c| c.name != forbidden),
                "constructor made {forbidden}: {:?}",
                lines(&calls)
            );
        }
        for phase in &traced.order[1..] {
            assert!(
                opened_files(&traced.phases[phase]).is_empty(),
                "{env:?}: phase {phase} opened files"
            );
        }
    }
}

#[test]
fn strace_log_parsing() {
    let call = parse_call(
        r#"connect(3, {sa_family=AF_INET, sin_port=htons(1), sin_addr=inet_addr("127.0.0.1")}, 16) = 0"#,
    )
    .unwrap();
    assert_eq!(call.name, "connect");
    assert_eq!(call.args.len(), 3);
    let call =
        parse_call(r#"write(-1, "@a, b)", 6)      = -1 EBADF (Bad file descriptor)"#).unwrap();
    assert_eq!(marker(&call).as_deref(), Some("a, b)"));
    let call = parse_call("setsockopt(3, SOL_TCP, TCP_KEEPIDLE, [60], 4) = 0").unwrap();
    assert_eq!(call.option(), ("TCP_KEEPIDLE".into(), "60".into()));
    assert!(parse_call("+++ exited with 0 +++").is_none());
}
