//! `KEEPALIVE_DIRECTION` and `KEEPALIVE_RULES` against real connections:
//!
//! - exact option values read back with getsockopt by tests/c/ruleprobe.c
//!   (both ends in one process): direction, exclusion (untouched means
//!   identical to a run without the library), IPv4-mapped destinations and
//!   peers, per-rule timers, every way of calling accept(), foreign sockets,
//!   the program's own choice, a bad rule;
//! - the system calls it costs, counted with strace;
//! - timers seen from outside with `ss -tno`, on loopback (127.0.0.0/8 has
//!   many addresses, and ::1) and across network namespaces with several
//!   IPv4 and IPv6 addresses (needs root).

mod common;

use common::netns::{preflight, Netns, Pair, Process};
use common::*;
use std::collections::BTreeMap;
use std::process::Command;
use std::time::Duration;

const DEADLINE: Duration = Duration::from_secs(60);
const PROMPT: Duration = Duration::from_secs(10);

fn with_timers<'a>(extra: &[(&'a str, &'a str)]) -> Vec<(&'a str, &'a str)> {
    ALL_TIMERS.iter().chain(extra).copied().collect()
}

/// `ruleprobe pair ARGS...`: the option words of its "client" and
/// "accepted" lines, and its stderr.
struct PairRun {
    client: String,
    accepted: String,
    peer: String,
    stderr: String,
}

fn options_of(text: &str, label: &str) -> (String, Vec<(String, String)>) {
    let line = text
        .lines()
        .find(|l| l.starts_with(&format!("{label} ")))
        .unwrap_or_else(|| panic!("no {label} line in {text}"));
    let words = fields(line);
    let options = ["keepalive", "idle", "intvl", "cnt", "user_timeout"]
        .iter()
        .map(|key| format!("{key}={}", field(&words, key)))
        .collect::<Vec<_>>()
        .join(" ");
    (options, words)
}

fn pair(args: &[&str], preload: bool, env: &[(&str, &str)]) -> PairRun {
    let mut cmd = command(c_program("ruleprobe"), preload, env);
    cmd.arg("pair").args(args);
    let out = run(cmd, DEADLINE);
    assert!(
        out.status.success(),
        "ruleprobe pair {args:?}: {}",
        stderr(&out)
    );
    let text = stdout(&out);
    let (client, _) = options_of(&text, "client");
    let (accepted, words) = options_of(&text, "accepted");
    PairRun {
        client,
        accepted,
        peer: field(&words, "peer").to_string(),
        stderr: stderr(&out),
    }
}

/// The options a socket has when nobody touched it (kernel defaults).
fn untouched() -> String {
    pair(&["127.0.0.1", "127.0.0.1"], false, &ALL_TIMERS).client
}

#[test]
fn direction_out_or_in_configures_only_that_side() {
    let untouched = untouched();
    assert!(untouched.starts_with("keepalive=0 "), "{untouched}");
    let out = pair(
        &["127.0.0.1", "127.0.0.1"],
        true,
        &with_timers(&[("KEEPALIVE_DIRECTION", "out")]),
    );
    assert_eq!(out.client, ALL_CONFIGURED);
    assert_eq!(out.accepted, untouched);
    let inbound = pair(
        &["127.0.0.1", "127.0.0.1"],
        true,
        &with_timers(&[("KEEPALIVE_DIRECTION", "in")]),
    );
    assert_eq!(inbound.client, untouched);
    assert_eq!(inbound.accepted, ALL_CONFIGURED);
    let both = pair(
        &["127.0.0.1", "127.0.0.1"],
        true,
        &with_timers(&[("KEEPALIVE_DIRECTION", "both")]),
    );
    assert_eq!(
        (both.client.as_str(), both.accepted.as_str()),
        (ALL_CONFIGURED, ALL_CONFIGURED)
    );
    for run in [out, inbound, both] {
        assert!(run.stderr.is_empty(), "{}", run.stderr);
    }
}

#[test]
fn an_excluded_destination_is_exactly_as_without_the_library() {
    let untouched = untouched();
    let env = with_timers(&[("KEEPALIVE_RULES", "dir=out,net=127.0.0.2/32:off")]);
    let excluded = pair(&["0.0.0.0", "127.0.0.2"], true, &env);
    assert_eq!(excluded.client, untouched);
    assert_eq!(excluded.accepted, ALL_CONFIGURED, "inbound is not excluded");
    let other = pair(&["0.0.0.0", "127.0.0.3"], true, &env);
    assert_eq!(other.client, ALL_CONFIGURED);
    // Without the exclusion the same destination is configured: the
    // control that makes the first assertion able to fail.
    let control = pair(&["0.0.0.0", "127.0.0.2"], true, &ALL_TIMERS);
    assert_eq!(control.client, ALL_CONFIGURED);
}

#[test]
fn ipv4_mapped_destinations_match_ipv4_rules() {
    let untouched = untouched();
    // An AF_INET6 socket connecting to ::ffff:127.0.0.2, as Java does.
    let env = with_timers(&[("KEEPALIVE_RULES", "dir=out,net=127.0.0.2:off")]);
    let mapped = pair(&["::", "::ffff:127.0.0.2"], true, &env);
    assert_eq!(mapped.client, untouched);
    let other = pair(&["::", "::ffff:127.0.0.3"], true, &env);
    assert_eq!(other.client, ALL_CONFIGURED);
    // A rule written as a mapped network is the same IPv4 rule.
    let env = with_timers(&[("KEEPALIVE_RULES", "dir=out,net=::ffff:127.0.0.0/104:off")]);
    assert_eq!(
        pair(&["0.0.0.0", "127.0.0.9"], true, &env).client,
        untouched
    );
    // IPv6 proper.
    let env = with_timers(&[("KEEPALIVE_RULES", "dir=out,net=::1/128:off")]);
    assert_eq!(pair(&["::", "::1"], true, &env).client, untouched);
    assert_eq!(
        pair(&["::", "::ffff:127.0.0.1"], true, &env).client,
        ALL_CONFIGURED
    );
}

#[test]
fn a_rule_changes_timers_and_the_others_fall_back_to_the_global_ones() {
    let env = with_timers(&[(
        "KEEPALIVE_RULES",
        "net=127.0.0.2,port=1-65535:idle=200,cnt=3; net=127.0.0.3:user_timeout=auto; *:idle=61",
    )]);
    let first = pair(&["0.0.0.0", "127.0.0.2"], true, &env);
    assert_eq!(
        first.client,
        "keepalive=1 idle=200 intvl=10 cnt=3 user_timeout=1500"
    );
    let second = pair(&["0.0.0.0", "127.0.0.3"], true, &env);
    // auto: (60 + 10 x 6) s from this rule's effective timers.
    assert_eq!(
        second.client,
        "keepalive=1 idle=60 intvl=10 cnt=6 user_timeout=120000"
    );
    let rest = pair(&["0.0.0.0", "127.0.0.4"], true, &env);
    assert_eq!(
        rest.client,
        "keepalive=1 idle=61 intvl=10 cnt=6 user_timeout=1500"
    );
}

#[test]
fn inbound_is_decided_from_the_peer_in_every_way_of_accepting() {
    let untouched = untouched();
    for accept in [
        "accept=addr",
        "accept=null",
        "accept=short",
        "accept=accept4",
    ] {
        // A v4 client on a dual-stack listener is seen as ::ffff:127.0.0.1:
        // folded to IPv4, it matches the IPv4 rule.
        let env = with_timers(&[("KEEPALIVE_RULES", "dir=in,net=127.0.0.0/8:off")]);
        let v4 = pair(&["::", "127.0.0.1", accept], true, &env);
        assert_eq!(v4.peer.split(':').next(), Some(""), "{}", v4.peer);
        assert_eq!(v4.accepted, untouched, "{accept}");
        assert_eq!(v4.client, ALL_CONFIGURED, "{accept}");
        let v6 = pair(&["::", "::1", accept], true, &env);
        assert_eq!(v6.accepted, ALL_CONFIGURED, "{accept}");
        let env = with_timers(&[("KEEPALIVE_RULES", "dir=in,net=::1:idle=33")]);
        let v6 = pair(&["::", "::1", accept], true, &env);
        assert!(v6.accepted.starts_with("keepalive=1 idle=33 "), "{accept}");
        let v4 = pair(&["::", "127.0.0.1", accept], true, &env);
        assert_eq!(v4.accepted, ALL_CONFIGURED, "{accept}");
    }
}

#[test]
fn inbound_port_rules_use_the_port_accepted_on() {
    // The listener's port is chosen by the kernel: 1024 and above.
    let env = with_timers(&[("KEEPALIVE_RULES", "dir=in,port=1024-65535:idle=44")]);
    let run = pair(&["127.0.0.1", "127.0.0.1"], true, &env);
    assert!(
        run.accepted.starts_with("keepalive=1 idle=44 "),
        "{}",
        run.accepted
    );
    assert_eq!(run.client, ALL_CONFIGURED);
    let env = with_timers(&[("KEEPALIVE_RULES", "dir=in,port=1-1023:idle=44")]);
    let run = pair(&["127.0.0.1", "127.0.0.1"], true, &env);
    assert_eq!(run.accepted, ALL_CONFIGURED);
}

#[test]
fn sockets_not_made_by_our_socket_are_decided_too() {
    let untouched = untouched();
    let env = with_timers(&[("KEEPALIVE_RULES", "net=127.0.0.2:off")]);
    let raw = pair(&["0.0.0.0", "127.0.0.2", "client=raw"], true, &env);
    assert_eq!(raw.client, untouched);
    let raw = pair(&["0.0.0.0", "127.0.0.3", "client=raw"], true, &env);
    assert_eq!(raw.client, ALL_CONFIGURED);
    let env = with_timers(&[("KEEPALIVE_RULES", "dir=in,net=::1:off")]);
    let foreign = pair(&["::", "::1", "listener=raw"], true, &env);
    assert_eq!(foreign.accepted, untouched);
    let foreign = pair(&["::", "127.0.0.1", "listener=raw"], true, &env);
    assert_eq!(foreign.accepted, ALL_CONFIGURED);
}

/// The program's own idle wins over every rule, option by option: a rule
/// that leaves the connection alone leaves it so, and a rule that applies
/// sets the other options only.
#[test]
fn the_programs_own_choice_wins_over_every_rule() {
    let untouched = untouched();
    let program_idle = untouched.replacen("idle=7200", "idle=77", 1);
    let ours_but_idle = ALL_CONFIGURED.replacen("idle=60", "idle=77", 1);
    for (rules, expected) in [
        ("net=127.0.0.2:off", &program_idle),
        ("*:idle=5", &ours_but_idle),
        ("*:on", &ours_but_idle),
    ] {
        let env = with_timers(&[("KEEPALIVE_RULES", rules)]);
        let run = pair(&["0.0.0.0", "127.0.0.2", "client=program-idle"], true, &env);
        assert_eq!(&run.client, expected, "{rules}");
    }
}

#[test]
fn a_bad_rule_is_one_line_and_disables_only_itself() {
    let untouched = untouched();
    let env = with_timers(&[(
        "KEEPALIVE_RULES",
        "dir=out,net=127.0.0.2:off; net=127.0.0.300:off; *:idle=62",
    )]);
    let run = pair(&["0.0.0.0", "127.0.0.2"], true, &env);
    assert_eq!(run.client, untouched);
    let lines: Vec<&str> = run.stderr.lines().collect();
    assert_eq!(lines.len(), 1, "{}", run.stderr);
    assert!(
        lines[0].starts_with(
            "libkeepalive: KEEPALIVE_RULES: rule 2 \"net=127.0.0.300:off\" is not valid: "
        ),
        "{}",
        lines[0]
    );
    assert!(lines[0].contains("expected MATCH:ACTION"), "{}", lines[0]);
    let run = pair(&["0.0.0.0", "127.0.0.3"], true, &env);
    assert!(
        run.client.starts_with("keepalive=1 idle=62 "),
        "{}",
        run.client
    );
    let env = with_timers(&[("KEEPALIVE_DIRECTION", "outbound")]);
    let run = pair(&["127.0.0.1", "127.0.0.1"], true, &env);
    assert_eq!(run.stderr.lines().count(), 1, "{}", run.stderr);
    assert!(run.stderr.contains("KEEPALIVE_DIRECTION=\"outbound\""));
    assert_eq!(
        (run.client.as_str(), run.accepted.as_str()),
        (ALL_CONFIGURED, ALL_CONFIGURED)
    );
}

#[test]
fn debug_lines_name_the_rule_that_decided() {
    let env = with_timers(&[
        ("KEEPALIVE_DEBUG", "1"),
        (
            "KEEPALIVE_RULES",
            "dir=out,net=127.0.0.2:off; dir=in:idle=9",
        ),
    ]);
    let run = pair(&["0.0.0.0", "127.0.0.2"], true, &env);
    let err = &run.stderr;
    assert!(
        err.contains("rule 1: dir=out,net=127.0.0.2/32:off"),
        "{err}"
    );
    assert!(
        err.contains("pending until connect, listen or accept"),
        "{err}"
    );
    assert!(
        err.contains("left alone: at connect: out to 127.0.0.2 port"),
        "{err}"
    );
    // Inbound ignores addresses here: decided once, at listen().
    assert!(
        err.contains("listen): set SO_KEEPALIVE=1 TCP_KEEPIDLE=9"),
        "{err}"
    );
    assert!(run.accepted.starts_with("keepalive=1 idle=9 "));
}

// --- System calls --------------------------------------------------------

/// How many times ruleprobe calls each of the socket-option and address
/// system calls, under strace.
fn count_calls(args: &[&str], preload: bool, env: &[(&str, &str)]) -> BTreeMap<String, usize> {
    let log = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!(
        "ruleprobe.{}.{}.strace",
        std::process::id(),
        args.join("_").replace(['/', ':', '='], "-")
    ));
    let mut cmd = command("strace", false, env);
    cmd.env_remove("LD_LIBRARY_PATH");
    cmd.args([
        "-qq",
        "-e",
        "trace=setsockopt,getsockopt,getpeername,getsockname",
        "-o",
    ])
    .arg(&log);
    if preload {
        cmd.arg("-E")
            .arg(format!("LD_PRELOAD={}", library().display()));
    }
    cmd.arg(c_program("ruleprobe")).arg("pair").args(args);
    let out = run(cmd, DEADLINE);
    assert!(out.status.success(), "strace: {}", stderr(&out));
    let text = std::fs::read_to_string(&log).expect("strace log");
    let _ = std::fs::remove_file(&log);
    let mut counts = BTreeMap::new();
    for line in text.lines() {
        if let Some(name) = line.split('(').next() {
            *counts.entry(name.to_string()).or_insert(0) += 1;
        }
    }
    counts
}

/// The calls the library added, per name.
fn extra_calls(args: &[&str], env: &[(&str, &str)]) -> BTreeMap<String, i64> {
    let with = count_calls(args, true, env);
    let without = count_calls(args, false, env);
    let mut extra = BTreeMap::new();
    for name in ["setsockopt", "getsockopt", "getpeername", "getsockname"] {
        let difference =
            *with.get(name).unwrap_or(&0) as i64 - *without.get(name).unwrap_or(&0) as i64;
        extra.insert(name.to_string(), difference);
    }
    extra
}

fn expect(setsockopt: i64, getpeername: i64, getsockname: i64) -> BTreeMap<String, i64> {
    [
        ("setsockopt", setsockopt),
        ("getsockopt", 0),
        ("getpeername", getpeername),
        ("getsockname", getsockname),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), *v))
    .collect()
}

#[test]
fn rules_cost_the_options_and_only_the_address_lookups_needed() {
    strace_needed();
    // SO_KEEPALIVE and the four settings of ALL_TIMERS on each configured socket.
    let per_socket = 5;
    // Outbound only: the client at connect(), the listener never, its
    // connections never (decided at listen(): left alone).
    let env = with_timers(&[("KEEPALIVE_DIRECTION", "out")]);
    assert_eq!(
        extra_calls(&["127.0.0.1", "127.0.0.1"], &env),
        expect(per_socket, 0, 0)
    );
    // Inbound rules that ignore addresses: the listener at listen(), once.
    let env = with_timers(&[("KEEPALIVE_RULES", "dir=out,net=127.0.0.2:off")]);
    assert_eq!(
        extra_calls(&["0.0.0.0", "127.0.0.3"], &env),
        expect(2 * per_socket, 0, 0)
    );
    // Rules on inbound addresses: each accepted connection on its own, from
    // one getpeername() (the program's accept() buffer is never read: a bad
    // pointer there must stay the kernel's EFAULT) ...
    let env = with_timers(&[("KEEPALIVE_RULES", "net=10.0.0.0/8:off")]);
    assert_eq!(
        extra_calls(&["127.0.0.1", "127.0.0.1", "accept=addr"], &env),
        expect(2 * per_socket, 1, 0)
    );
    assert_eq!(
        extra_calls(&["127.0.0.1", "127.0.0.1", "accept=null"], &env),
        expect(2 * per_socket, 1, 0)
    );
    assert_eq!(
        extra_calls(&["127.0.0.1", "127.0.0.1", "accept=short"], &env),
        expect(2 * per_socket, 1, 0)
    );
    // ... and one getsockname() when a rule asks for the port accepted on.
    let env = with_timers(&[("KEEPALIVE_RULES", "port=5432:off")]);
    assert_eq!(
        extra_calls(&["127.0.0.1", "127.0.0.1", "accept=addr"], &env),
        expect(2 * per_socket, 1, 1)
    );
    // An excluded connection costs nothing at all.
    let env = with_timers(&[("KEEPALIVE_RULES", "dir=out,net=127.0.0.2:off; dir=in:off")]);
    assert_eq!(
        extra_calls(&["0.0.0.0", "127.0.0.2"], &env),
        expect(0, 0, 0)
    );
}

fn strace_needed() {
    let found = Command::new("strace").arg("-V").output();
    assert!(
        found.is_ok_and(|out| out.status.success()),
        "strace is needed to count system calls: apt-get install -y strace"
    );
}

// --- Seen from outside: ss -tno -------------------------------------------

/// The `ss` line of the connection from `local_port` to `peer_port`. The
/// peer's port matters too: one local port may serve two connections to
/// different destinations at once (the kernel reuses ephemeral ports).
fn line_of_connection(ss_output: &str, local_port: &str, peer_port: &str) -> String {
    let (local_suffix, peer_suffix) = (format!(":{local_port}"), format!(":{peer_port}"));
    ss_output
        .lines()
        .find(|line| {
            // With a state filter ss prints: Recv-Q Send-Q Local Peer [timer].
            let words: Vec<&str> = line.split_whitespace().collect();
            words
                .get(2)
                .is_some_and(|local| local.ends_with(&local_suffix))
                && words
                    .get(3)
                    .is_some_and(|peer| peer.ends_with(&peer_suffix))
        })
        .unwrap_or_else(|| {
            panic!("no connection from port {local_port} to port {peer_port} in:\n{ss_output}")
        })
        .to_string()
}

/// Each "client" line of a ruleprobe connect: (to, local_port).
fn clients(text: &str) -> Vec<(String, String)> {
    text.lines()
        .filter(|l| l.starts_with("client "))
        .map(|l| {
            let words = fields(l);
            (
                field(&words, "to").to_string(),
                field(&words, "local_port").to_string(),
            )
        })
        .collect()
}

/// Asserts the keepalive timer of `line` is within (idle - 15 s, idle]
/// (the tests look within seconds of connecting), or absent for `None`.
fn assert_timer(line: &str, idle: Option<u32>, what: &str) {
    let timer = keepalive_timer_secs(line);
    match idle {
        None => assert!(timer.is_none(), "{what}: keepalive timer running: {line}"),
        Some(idle) => {
            let secs = timer.unwrap_or_else(|| panic!("{what}: no keepalive timer: {line}"));
            let idle = f64::from(idle);
            assert!(
                secs <= idle + 0.5 && secs > idle - 15.0,
                "{what}: timer {secs} s, expected about {idle} s: {line}"
            );
        }
    }
}

#[test]
fn loopback_destinations_get_their_rules_timers_seen_with_ss() {
    let port = free_port().to_string();
    // The server is untouched (no library): only the client's rules count.
    let mut server = command(c_program("ruleprobe"), false, &[]);
    server.args(["serve", "::", &port]);
    let server = Process::spawn(server, "ruleprobe serve");
    assert!(
        server.wait_stdout("listening", PROMPT).is_some(),
        "{}",
        server.stderr()
    );

    let env = with_timers(&[(
        "KEEPALIVE_RULES",
        "net=127.0.0.2:idle=200; net=127.0.0.3:off; net=::1:idle=100; *:idle=50",
    )]);
    let destinations = [
        ("127.0.0.2", Some(200)),
        ("127.0.0.3", None),
        ("::1", Some(100)),
        ("::ffff:127.0.0.2", Some(200)),
        ("::ffff:127.0.0.3", None),
        ("127.0.0.4", Some(50)),
    ];
    let mut client = command(c_program("ruleprobe"), true, &env);
    client.arg("connect");
    for (address, _) in destinations {
        client.args([address, &port]);
    }
    let client = Process::spawn(client, "ruleprobe connect");
    let expected_lines = destinations.len();
    let ready = wait_for(PROMPT, || {
        (clients(&client.stdout()).len() == expected_lines).then_some(())
    });
    assert!(ready.is_some(), "{} {}", client.stdout(), client.stderr());

    let ss = Command::new("ss")
        .args(["-tnoH", "state", "established"])
        .output()
        .expect("ss not found: apt-get install -y iproute2");
    let ss = String::from_utf8_lossy(&ss.stdout).into_owned();
    for ((to, local_port), (address, idle)) in clients(&client.stdout()).iter().zip(destinations) {
        assert_eq!(to, &format!("{address}:{port}"));
        let line = line_of_connection(&ss, local_port, &port);
        println!("{address:<18} {line}");
        assert_timer(&line, idle, address);
    }
    assert!(client.stderr().is_empty(), "{}", client.stderr());
}

// --- Namespaces ------------------------------------------------------------

/// A client and a server namespace; the server has 10.123.1.2 and .3 and
/// fd00:123::2 and ::3, the client 10.123.1.1 and fd00:123::1.
fn dual_stack_pair() -> Pair {
    preflight();
    let net = Pair::new();
    for address in ["10.123.1.3/24", "fd00:123::2/64", "fd00:123::3/64"] {
        // nodad: usable at once, without waiting for duplicate detection.
        net.server
            .ip(&["addr", "add", address, "dev", "to-client", "nodad"]);
    }
    net.client
        .ip(&["addr", "add", "fd00:123::1/64", "dev", "to-server", "nodad"]);
    net
}

fn serve(ns: &Netns, preload: bool, env: &[(&str, &str)], ports: &[&str]) -> Process {
    let mut cmd = command(c_program("ruleprobe"), preload, env);
    cmd.args(["serve", "::"]).args(ports);
    ns.enter(&mut cmd);
    let server = Process::spawn(cmd, "ruleprobe serve");
    assert!(
        server.wait_stdout("listening", PROMPT).is_some(),
        "{}",
        server.stderr()
    );
    server
}

fn connect_all(ns: &Netns, preload: bool, env: &[(&str, &str)], to: &[(&str, &str)]) -> Process {
    let mut cmd = command(c_program("ruleprobe"), preload, env);
    cmd.arg("connect");
    for (address, port) in to {
        cmd.args([address, port]);
    }
    ns.enter(&mut cmd);
    let client = Process::spawn(cmd, "ruleprobe connect");
    let ready = wait_for(PROMPT, || {
        (clients(&client.stdout()).len() == to.len()).then_some(())
    });
    assert!(ready.is_some(), "{} {}", client.stdout(), client.stderr());
    client
}

#[test]
fn namespaces_outbound_rules_per_network_port_and_family() {
    let net = dual_stack_pair();
    let (p1, p2) = ("5001", "5002");
    let _server = serve(&net.server, false, &[], &[p1, p2]);
    let env = with_timers(&[(
        "KEEPALIVE_RULES",
        "net=10.123.1.2,port=5001:idle=200; net=10.123.1.3:off; \
         net=fd00:123::2:idle=100; net=fd00:123::/64:off; *:idle=50",
    )]);
    let cases = [
        (("10.123.1.2", p1), Some(200)),
        (("10.123.1.2", p2), Some(50)),
        (("10.123.1.3", p1), None),
        (("fd00:123::2", p1), Some(100)),
        (("fd00:123::3", p1), None),
        (("::ffff:10.123.1.2", p1), Some(200)),
        (("::ffff:10.123.1.3", p2), None),
    ];
    let to: Vec<(&str, &str)> = cases.iter().map(|(to, _)| *to).collect();
    let client = connect_all(&net.client, true, &env, &to);
    let ss = net.client.output("ss", &["-tnoH", "state", "established"]);
    for ((_, local_port), ((address, port), idle)) in clients(&client.stdout()).iter().zip(cases) {
        let line = line_of_connection(&ss, local_port, port);
        println!("{address}:{port:<6} {line}");
        assert_timer(&line, idle, &format!("{address} port {port}"));
    }
}

#[test]
fn namespaces_inbound_rules_per_peer_and_port_accepted_on() {
    let net = dual_stack_pair();
    let (p1, p2) = ("5001", "5002");
    let env = with_timers(&[
        ("KEEPALIVE_DIRECTION", "in"),
        (
            "KEEPALIVE_RULES",
            "net=10.123.1.1,port=5001:idle=31; net=fd00:123::1:idle=32; *:off",
        ),
    ]);
    let server = serve(&net.server, true, &env, &[p1, p2]);
    let to = [
        ("10.123.1.2", p1),
        ("10.123.1.2", p2),
        ("fd00:123::2", p1),
        ("fd00:123::3", p2),
    ];
    // The client runs without the library: only the server's rules count.
    let client = connect_all(&net.client, false, &[], &to);
    let accepted = wait_for(PROMPT, || {
        let text = server.stdout();
        (text.lines().filter(|l| l.starts_with("accepted ")).count() == to.len()).then_some(text)
    })
    .unwrap_or_else(|| panic!("{}", server.stderr()));
    let ss = net.server.output("ss", &["-tnoH", "state", "established"]);
    let expected = [Some(31), None, Some(32), Some(32)];
    for ((_, client_port), idle) in clients(&client.stdout()).iter().zip(expected) {
        // The server's line is the one whose peer port is the client's.
        let suffix = format!(":{client_port}");
        let line = ss
            .lines()
            .find(|l| {
                l.split_whitespace()
                    .nth(3)
                    .is_some_and(|p| p.ends_with(&suffix))
            })
            .unwrap_or_else(|| panic!("no connection from port {client_port}:\n{ss}"));
        println!("{line}");
        assert_timer(line, idle, &format!("from client port {client_port}"));
    }
    // The v4 clients were accepted on a dual-stack socket as ::ffff:10.123.1.1.
    assert!(accepted.contains("peer=::ffff:10.123.1.1:"), "{accepted}");
    assert!(server.stderr().is_empty(), "{}", server.stderr());
}

// --- The keepalive command -------------------------------------------------

fn keepalive_command(args: &[&str]) -> std::process::Output {
    let library = library().to_str().unwrap().to_string();
    let mut cmd = command(
        env!("CARGO_BIN_EXE_keepalive"),
        false,
        &[("KEEPALIVE_LIB", library.as_str())],
    );
    cmd.args(args);
    run(cmd, DEADLINE)
}

#[test]
fn the_keepalive_command_takes_direction_and_rules_and_check_shows_them() {
    let options = [
        "--direction",
        "out",
        "--rule",
        "net=127.0.0.2:off",
        "--rule",
        "port=1-65535 , net=::ffff:127.0.0.0/104:idle=1m",
    ];
    let check = keepalive_command(&[&options[..], &["--check"]].concat());
    assert!(check.status.success(), "{}", stderr(&check));
    let lines: Vec<String> = stdout(&check)
        .lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
        .collect();
    for expected in [
        "direction out --direction",
        "rules 2 --rule",
        "rule 1 net=127.0.0.2/32:off -> left alone",
        "rule 2 net=127.0.0.0/8,port=1-65535:idle=60 -> SO_KEEPALIVE=1 TCP_KEEPIDLE=60",
        "tcp sockets SO_KEEPALIVE=1 when no rule matches; accepted connections are left alone",
    ] {
        assert!(
            lines.iter().any(|l| l == expected),
            "{expected}: {lines:#?}"
        );
    }

    let untouched = untouched();
    let probe = c_program("ruleprobe");
    let probe = probe.to_str().unwrap();
    for (destination, client) in [
        ("127.0.0.2", untouched.clone()),
        (
            "127.0.0.3",
            untouched.replacen("keepalive=0 idle=7200", "keepalive=1 idle=60", 1),
        ),
    ] {
        let args = [&options[..], &[probe, "pair", "0.0.0.0", destination]].concat();
        let out = keepalive_command(&args);
        assert!(out.status.success(), "{}", stderr(&out));
        let (got, _) = options_of(&stdout(&out), "client");
        assert_eq!(got, client, "{destination}");
        let (accepted, _) = options_of(&stdout(&out), "accepted");
        assert_eq!(accepted, untouched, "inbound is left alone");
    }

    let bad = keepalive_command(&["--rule", "net=10.0.0.0/99:off", "true"]);
    assert_eq!(bad.status.code(), Some(125));
    let err = stderr(&bad);
    assert!(
        err.contains("libkeepalive: KEEPALIVE_RULES: rule 1 \"net=10.0.0.0/99:off\" is not valid"),
        "{err}"
    );
    assert!(
        err.contains("keepalive: KEEPALIVE_RULES is the value of --rule"),
        "{err}"
    );
}
