//! What keepalive is for, end to end, with unmodified programs (OpenBSD nc,
//! socat) across namespaced networks (tests/common/netns.rs):
//!
//! 1. a dead peer of an idle connection is detected on time;
//! 2. a dead peer with data in flight is detected thanks to the user timeout;
//! 3. an idle flow survives a middlebox that forgets idle flows;
//! 4. the same as 1 on the server side (accepted sockets inherit).
//!
//! Each case also runs a control without the library (or without the user
//! timeout) that must fail, and prints what it measured. The variants of a
//! case run in parallel threads, each in its own namespaces, because they
//! mostly wait; a case takes about 13 s. Needs root.

mod common;

use common::command;
use common::netns::{preflight, Netns, Pair, Process, Routed, ROUTED_SERVER_ADDR, SERVER_ADDR};
use std::thread::ScopedJoinHandle;
use std::time::{Duration, Instant};

const PORT: &str = "5000";

/// idle 2 s, then 3 probes 1 s apart: the peer is declared dead 5 s after
/// the last traffic.
const TIMERS: [(&str, &str); 3] = [("KEEPIDLE", "2"), ("KEEPINTVL", "1"), ("KEEPCNT", "3")];
const BUDGET_SECS: f64 = 5.0;
const KEEPCNT: u64 = 3;

/// How long a control run must survive to show it would not have noticed.
const CONTROL: Duration = Duration::from_secs(12);

/// Bounds every wait for something that should happen at once (a
/// connection, a line crossing the network).
const PROMPT: Duration = Duration::from_secs(5);

/// Printed twice: cargo captures stdout of passing tests, and `--nocapture`
/// shows stderr as it comes.
fn report(line: String) {
    println!("{line}");
    eprintln!("{line}");
}

fn secs(since: Instant, until: Instant) -> f64 {
    until.duration_since(since).as_secs_f64()
}

/// Joins a scoped thread, re-raising its panic with the original message.
fn join<T>(handle: ScopedJoinHandle<'_, T>) -> T {
    handle
        .join()
        .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
}

fn with_timers(extra: &[(&'static str, &'static str)]) -> Vec<(&'static str, &'static str)> {
    TIMERS.iter().chain(extra).copied().collect()
}

/// Starts `nc -l` in `ns` and waits until it listens.
fn nc_server(ns: &Netns, addr: &str, preload: bool, env: &[(&str, &str)]) -> Process {
    let mut cmd = command("nc", preload, env);
    cmd.args(["-n", "-l", addr, PORT]);
    ns.enter(&mut cmd);
    let server = Process::spawn(cmd, "nc -l");
    ns.wait_listening(PORT.parse().unwrap());
    server
}

/// The clients, all unmodified programs that read stdin and write the network.
#[derive(Clone, Copy, Debug)]
enum Client {
    /// OpenBSD nc: exits silently (status 0) when its connection fails.
    Nc,
    /// socat: reports why the connection failed on stderr.
    Socat,
}

/// Connects `client` from `ns` to `addr`, sends a line and waits until the
/// server printed it. Returns the client and the moment of that last traffic.
fn connect(
    ns: &Netns,
    client: Client,
    addr: &str,
    preload: bool,
    env: &[(&str, &str)],
    server: &Process,
) -> (Process, Instant) {
    let mut cmd = match client {
        Client::Nc => {
            let mut cmd = command("nc", preload, env);
            cmd.args(["-n", addr, PORT]);
            cmd
        }
        Client::Socat => {
            let mut cmd = command("socat", preload, env);
            // -d: also print warnings, such as a read failing with ECONNRESET.
            cmd.args(["-d", "STDIO", &format!("TCP:{addr}:{PORT}")]);
            cmd
        }
    };
    ns.enter(&mut cmd);
    let mut process = Process::spawn(cmd, &format!("{client:?} client"));
    process.write("hello\n");
    let last_traffic = server.wait_stdout("hello", PROMPT).unwrap_or_else(|| {
        panic!(
            "the server never got the first line; client stderr: {}",
            process.stderr()
        )
    });
    (process, last_traffic)
}

/// What one run of a dead-peer case measured.
struct DeadPeer {
    label: String,
    /// Seconds from the reference moment to the program's exit, if it
    /// exited before `CONTROL` was over.
    gave_up_after: Option<f64>,
    stderr: String,
    probes: u64,
    retransmits: u64,
}

impl DeadPeer {
    fn report(&self, case: &str) {
        let outcome = match self.gave_up_after {
            Some(secs) => format!("gave up after {secs:.2} s"),
            None => format!("still connected after {} s", CONTROL.as_secs()),
        };
        report(format!(
            "{case} | {:<44} | {outcome:<28} | keepalive probes {} | retransmits {} | {}",
            self.label,
            self.probes,
            self.retransmits,
            self.stderr.trim()
        ));
    }

    fn assert_within(&self, low: f64, high: f64) {
        let secs = self
            .gave_up_after
            .unwrap_or_else(|| panic!("{}: never gave up", self.label));
        assert!(
            (low..=high).contains(&secs),
            "{}: gave up after {secs:.2} s, expected {low}-{high} s",
            self.label
        );
    }

    fn assert_still_connected(&self) {
        assert!(
            self.gave_up_after.is_none(),
            "{}: gave up after {:.2} s, expected to hang for {} s",
            self.label,
            self.gave_up_after.unwrap(),
            CONTROL.as_secs()
        );
    }
}

/// Waits up to `CONTROL` for `process` to exit after `since`, then reads the
/// counters of the namespace it ran in.
fn measure(label: String, ns: &Netns, process: &mut Process, since: Instant) -> DeadPeer {
    let exit = process.wait_exit(CONTROL - since.elapsed().min(CONTROL));
    let counters = ns.counters(&["TcpExtTCPKeepAlive", "TcpRetransSegs"]);
    DeadPeer {
        label,
        gave_up_after: exit.map(|(_, at)| secs(since, at)),
        stderr: process.stderr(),
        probes: counters[0],
        retransmits: counters[1],
    }
}

/// Case 1 (and 2 with `data_in_flight`): a client in one namespace, idle
/// after its first line; then the server's namespace goes silent. With data
/// in flight the client writes a line right after the cut, and times are
/// measured from the cut.
fn dead_server(
    client: Client,
    preload: bool,
    env: &[(&str, &str)],
    data_in_flight: bool,
) -> DeadPeer {
    let net = Pair::new();
    let server = nc_server(&net.server, SERVER_ADDR, false, &[]);
    let (mut process, last_traffic) =
        connect(&net.client, client, SERVER_ADDR, preload, env, &server);
    net.server.vanish();
    let since = if data_in_flight {
        let cut = Instant::now();
        process.write("never acknowledged\n");
        cut
    } else {
        last_traffic
    };
    let settings: Vec<String> = env.iter().map(|(k, v)| format!("{k}={v}")).collect();
    let label = format!(
        "{client:?}, {} {}",
        if preload { "library" } else { "no library" },
        settings.join(" ")
    );
    measure(label, &net.client, &mut process, since)
}

#[test]
fn case1_dead_peer_of_an_idle_connection_is_detected_on_time() {
    preflight();
    let (nc, control, socat) = std::thread::scope(|s| {
        let nc = s.spawn(|| dead_server(Client::Nc, true, &TIMERS, false));
        let control = s.spawn(|| dead_server(Client::Nc, false, &[], false));
        let socat = s.spawn(|| dead_server(Client::Socat, true, &TIMERS, false));
        (join(nc), join(control), join(socat))
    });
    for run in [&nc, &control, &socat] {
        run.report("case 1, idle, from last traffic");
    }
    let (low, high) = (BUDGET_SECS - 0.5, BUDGET_SECS + 1.5);
    nc.assert_within(low, high);
    socat.assert_within(low, high);
    control.assert_still_connected();
    // The kernel's own account: exactly KEEPCNT unanswered probes, and none
    // at all without the library.
    assert_eq!(nc.probes, KEEPCNT, "{}", nc.label);
    assert_eq!(control.probes, 0, "{}", control.label);
    assert!(
        socat.stderr.contains("Connection timed out"),
        "socat should report the reason: {}",
        socat.stderr
    );
}

#[test]
fn case2_dead_peer_with_data_in_flight_needs_the_user_timeout() {
    preflight();
    let ut_3000 = with_timers(&[("KEEPALIVE_USER_TIMEOUT", "3000")]);
    let ut_auto = with_timers(&[("KEEPALIVE_USER_TIMEOUT", "auto")]);
    let alias = with_timers(&[("TCP_USER_TIMEOUT", "3000")]);
    let (fixed, auto, alias, control) = std::thread::scope(|s| {
        let fixed = s.spawn(|| dead_server(Client::Nc, true, &ut_3000, true));
        let auto = s.spawn(|| dead_server(Client::Nc, true, &ut_auto, true));
        let alias = s.spawn(|| dead_server(Client::Nc, true, &alias, true));
        // Keepalive alone: no probe is sent while data is unacknowledged.
        let control = s.spawn(|| dead_server(Client::Nc, true, &TIMERS, true));
        (join(fixed), join(auto), join(alias), join(control))
    });
    for run in [&fixed, &auto, &alias, &control] {
        run.report("case 2, data in flight, from the cut");
    }
    fixed.assert_within(2.5, 5.0);
    alias.assert_within(2.5, 5.0);
    auto.assert_within(BUDGET_SECS - 0.5, BUDGET_SECS + 1.5);
    control.assert_still_connected();
    assert_eq!(
        control.probes, 0,
        "keepalive must stay silent while data is unacknowledged"
    );
    assert!(
        control.retransmits > 0,
        "the kernel should be retransmitting"
    );
}

/// How long the middlebox remembers an idle established flow, and how long
/// the client stays idle (well past it).
const MIDDLEBOX_IDLE_SECS: u64 = 3;
const CLIENT_IDLE: Duration = Duration::from_secs(7);

/// A router that tracks connections, forgets an established flow after
/// `MIDDLEBOX_IDLE_SECS` without packets, and refuses packets of flows it
/// does not know with a TCP reset, as AWS's NAT gateway does after 350 s.
/// (`tcp_loose=0` keeps conntrack from adopting a mid-stream packet as a new
/// flow; the second rule would catch it anyway.)
fn middlebox() -> Routed {
    let net = Routed::new();
    net.router
        .sysctl("net.netfilter.nf_conntrack_tcp_loose", "0");
    net.router.nft(&format!(
        "table inet middlebox {{
            ct timeout idle_flows {{
                protocol tcp; l3proto ip;
                policy = {{ established: {MIDDLEBOX_IDLE_SECS} }};
            }}
            chain forward {{
                type filter hook forward priority filter; policy accept;
                ct state new ct timeout set \"idle_flows\"
                ct state invalid reject with tcp reset
                ct state new tcp flags & (syn|ack) != syn reject with tcp reset
            }}
        }}"
    ));
    net
}

struct ThroughMiddlebox {
    label: String,
    /// Flows to our port in the router's conntrack table after the idle time.
    flows_remembered: usize,
    /// Seconds from the write to the line showing up at the server.
    arrived_after: Option<f64>,
    /// Seconds from the write to the client's exit (socat lingers 0.5 s,
    /// its -t, after the reset), and what it printed.
    client_failed_after: Option<f64>,
    client_stderr: String,
    probes: u64,
}

/// Case 3: a socat client, idle for `CLIENT_IDLE` after its first line,
/// then sends a second line through the middlebox.
fn idle_through_middlebox(preload: bool, env: &[(&str, &str)]) -> ThroughMiddlebox {
    let net = middlebox();
    let server = nc_server(&net.server, ROUTED_SERVER_ADDR, false, &[]);
    let (mut client, last_traffic) = connect(
        &net.client,
        Client::Socat,
        ROUTED_SERVER_ADDR,
        preload,
        env,
        &server,
    );
    std::thread::sleep(CLIENT_IDLE.saturating_sub(last_traffic.elapsed()));
    let table = net.router.output("cat", &["/proc/net/nf_conntrack"]);
    let flows_remembered = table
        .lines()
        .filter(|line| line.contains(&format!("dport={PORT} ")))
        .count();
    let written = Instant::now();
    client.write("after the idle time\n");
    // Watch for both outcomes at once: the line showing up at the server, or
    // the client erroring out (after which the line cannot arrive; one more
    // second makes sure it is not merely late).
    let (mut arrived, mut failed) = (None, None);
    while written.elapsed() < PROMPT {
        arrived = arrived.or_else(|| server.wait_stdout("after the idle time", Duration::ZERO));
        failed = failed.or_else(|| client.wait_exit(Duration::ZERO).map(|(_, at)| at));
        match (arrived, failed) {
            (Some(_), _) => break,
            (None, Some(at)) if at.elapsed() > Duration::from_secs(1) => break,
            _ => std::thread::sleep(Duration::from_millis(10)),
        }
    }
    ThroughMiddlebox {
        label: format!(
            "socat, {}",
            if preload {
                "library KEEPIDLE=1 KEEPINTVL=1 KEEPCNT=3"
            } else {
                "no library"
            }
        ),
        flows_remembered,
        arrived_after: arrived.map(|at| secs(written, at)),
        client_failed_after: failed.map(|at| secs(written, at)),
        client_stderr: client.stderr(),
        probes: net.client.counters(&["TcpExtTCPKeepAlive"])[0],
    }
}

#[test]
fn case3_idle_flow_survives_a_middlebox_that_forgets_idle_flows() {
    preflight();
    let library_env = [("KEEPIDLE", "1"), ("KEEPINTVL", "1"), ("KEEPCNT", "3")];
    let (kept, control) = std::thread::scope(|s| {
        let kept = s.spawn(|| idle_through_middlebox(true, &library_env));
        let control = s.spawn(|| idle_through_middlebox(false, &[]));
        (join(kept), join(control))
    });
    for run in [&kept, &control] {
        let arrived = match run.arrived_after {
            Some(secs) => format!("line arrived after {secs:.2} s"),
            None => "line lost".to_string(),
        };
        let failed = match run.client_failed_after {
            Some(secs) => format!("client failed after {secs:.2} s"),
            None => "client still connected".to_string(),
        };
        report(format!(
            "case 3, idle {} s, middlebox forgets after {MIDDLEBOX_IDLE_SECS} s | {:<44} | \
             flows remembered {} | {arrived} | {failed} | keepalive probes {} | {}",
            CLIENT_IDLE.as_secs(),
            run.label,
            run.flows_remembered,
            run.probes,
            run.client_stderr.trim()
        ));
    }
    assert_eq!(
        kept.flows_remembered, 1,
        "probes should keep the flow known"
    );
    assert!(kept.arrived_after.is_some(), "{}: line lost", kept.label);
    assert!(
        kept.client_failed_after.is_none(),
        "{}: {}",
        kept.label,
        kept.client_stderr
    );
    assert!(kept.probes > 0);
    assert_eq!(control.flows_remembered, 0, "the middlebox should forget");
    assert!(
        control.arrived_after.is_none(),
        "{}: line arrived",
        control.label
    );
    assert!(
        control.client_failed_after.is_some(),
        "{}: should have errored out",
        control.label
    );
    assert!(
        control.client_stderr.contains("Connection reset by peer"),
        "{}",
        control.client_stderr
    );
}

/// Case 4: `nc -l` in the server namespace, a plain nc client that sends a
/// line and then vanishes (its namespace goes silent).
fn vanished_client(preload: bool, env: &[(&str, &str)]) -> DeadPeer {
    let net = Pair::new();
    let mut server = nc_server(&net.server, SERVER_ADDR, preload, env);
    let (_client, last_traffic) =
        connect(&net.client, Client::Nc, SERVER_ADDR, false, &[], &server);
    net.client.vanish();
    let label = format!(
        "nc -l, {}",
        if preload {
            "library KEEPIDLE=2 KEEPINTVL=1 KEEPCNT=3"
        } else {
            "no library"
        }
    );
    measure(label, &net.server, &mut server, last_traffic)
}

#[test]
fn case4_server_detects_a_vanished_client_through_the_accepted_socket() {
    preflight();
    let (server, control) = std::thread::scope(|s| {
        let server = s.spawn(|| vanished_client(true, &TIMERS));
        let control = s.spawn(|| vanished_client(false, &[]));
        (join(server), join(control))
    });
    for run in [&server, &control] {
        run.report("case 4, server side, from last traffic");
    }
    server.assert_within(BUDGET_SECS - 0.5, BUDGET_SECS + 1.5);
    assert_eq!(server.probes, KEEPCNT, "{}", server.label);
    control.assert_still_connected();
    assert_eq!(control.probes, 0, "{}", control.label);
}
