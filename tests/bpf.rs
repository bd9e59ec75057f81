//! The kernel-side mode (`keepalive --bpf/--attach/--detach`), end to end
//! and as root: programs LD_PRELOAD cannot reach (a static C client and
//! server, Go, an io_uring connect) get keepalive; rules, direction and "the
//! program wins" behave as in the library; attachments compose (nested: the
//! innermost decides, an inner "off" opts out, concurrent runs leave one
//! pair, an attach is all or nothing, one pinned record map across cgroup
//! roots); SO_KEEPALIVE=0 means nothing of ours; override replaces the
//! program's own values (its SO_KEEPALIVE=0 too); a call the kernel refuses
//! is not the program's choice (these two compared with the preload mode); and the features combined (a rule with override in
//! a nested attachment, a preset under a node default, the library inside an
//! attached cgroup, KEEPALIVE_PROGRAMS refused). Every case is read from inside
//! (the probe's own getsockopt) and from outside (`ss -tnoi`'s keepalive
//! timer). Every cgroup and attachment a test makes is removed by a Drop
//! guard, also when it fails.

mod common;

use common::cgroups::{cgroup2_mount, own_cgroup, TestCgroup};
use common::go::go_probe;
use common::kernel_side::{dynamic_probe, keepalive, peer, probe, HOLD, PROMPT, UNTOUCHED};
use common::netns::{preflight, Pair, Process, SERVER_ADDR};
use common::seen::{assert_seen, Seen};
use common::{build_c, keepalive_timer_secs, ss_lines, wait_for};
use std::fs;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// `keepalive --bpf` running in the background. Dropped (also when a test
/// fails) it is ended as a user would end it, with SIGTERM, which it passes
/// on to PROGRAM before removing its cgroup; Process's own SIGKILL would
/// leave the cgroup behind.
struct Running(Process);

impl Running {
    fn spawn(cmd: Command, label: &str) -> Running {
        Running(Process::spawn(cmd, label))
    }

    /// Ends it and checks that its cgroup is gone.
    fn stop(mut self) {
        self.end();
        let left = bpf_cgroups_of(self.0.id());
        assert!(left.is_empty(), "{left:?} left behind");
    }

    fn end(&mut self) {
        // SAFETY: kill(2) on our own child, not yet reaped (Process reaps
        // it only on drop).
        unsafe { libc::kill(self.0.id() as i32, libc::SIGTERM) };
        if self.0.wait_exit(PROMPT).is_none() {
            eprintln!("{} did not end on SIGTERM", self.0.label);
        }
    }
}

/// The cgroups `keepalive --bpf` with process id `pid` made under ours
/// (`keepalive.PID.START`; `keepalive.PID` before issue 19).
fn bpf_cgroups_of(pid: u32) -> Vec<PathBuf> {
    let name = format!("keepalive.{pid}");
    fs::read_dir(own_cgroup())
        .unwrap()
        .flatten()
        .filter(|entry| {
            let file_name = entry.file_name().to_string_lossy().into_owned();
            file_name == name || file_name.starts_with(&format!("{name}."))
        })
        .map(|entry| entry.path())
        .collect()
}

impl Drop for Running {
    fn drop(&mut self) {
        self.end();
    }
}

impl std::ops::Deref for Running {
    type Target = Process;
    fn deref(&self) -> &Process {
        &self.0
    }
}

impl std::ops::DerefMut for Running {
    fn deref_mut(&mut self) -> &mut Process {
        &mut self.0
    }
}

/// Runs `cmd` (a probe, possibly under keepalive) until it prints its
/// "connected ..." line, then reads `ss` for the connection on `port`.
fn observe(cmd: Command, port: u16) -> Seen {
    let process = Running::spawn(cmd, "probe");
    let seen = Seen::of(&process, port, PROMPT);
    process.stop();
    seen
}

/// `keepalive --bpf OPTIONS PROBE connect ADDR PORT WORDS...` against a
/// fresh peer on `address`.
fn bpf_connect(options: &[&str], address: &str, words: &[&str]) -> Seen {
    let port = peer(address);
    let mut cmd = keepalive();
    cmd.arg("--bpf").args(options).arg(probe());
    cmd.args(["connect", address, &port.to_string(), HOLD])
        .args(words);
    observe(cmd, port)
}

fn root() {
    preflight();
}

#[test]
fn a_static_client_gets_the_settings_and_is_untouched_without_them() {
    root();
    let all = [
        "--idle",
        "60",
        "--interval",
        "10",
        "--count",
        "6",
        "--user-timeout",
        "1500",
    ];
    let seen = bpf_connect(&all, "127.0.0.1", &[]);
    assert_seen(&seen, common::ALL_CONFIGURED, "static client under --bpf");
    // The control: the same static probe without us, and with the library
    // preloaded (ld.so never reads LD_PRELOAD for it).
    let port = peer("127.0.0.1");
    let mut cmd = common::command(probe(), true, &common::ALL_TIMERS);
    cmd.args(["connect", "127.0.0.1", &port.to_string(), HOLD]);
    assert_seen(&observe(cmd, port), UNTOUCHED, "static client, LD_PRELOAD");
}

#[test]
fn a_static_server_gets_them_on_accepted_connections() {
    root();
    let port = common::free_port().to_string();
    let mut cmd = keepalive();
    // An inbound port rule: the local port accepted on.
    let rule = format!("dir=in,port={port}:idle=50");
    cmd.args(["--bpf", "--idle", "20", "--count", "4", "--rule", &rule]);
    cmd.arg(probe()).args(["accept", "127.0.0.1", &port, HOLD]);
    let server = Running::spawn(cmd, "server");
    server
        .wait_stdout("listening", PROMPT)
        .expect("server listens");
    let _client =
        std::net::TcpStream::connect(("127.0.0.1", port.parse::<u16>().unwrap())).unwrap();
    server
        .wait_stdout("connected", PROMPT)
        .expect("server accepts");
    let line = server.stdout().lines().last().unwrap().to_string();
    let timer = ss_lines(port.parse().unwrap())
        .iter()
        .find_map(|l| keepalive_timer_secs(l));
    let seen = Seen {
        options: line.trim_start_matches("connected ").to_string(),
        timer,
    };
    assert_seen(
        &seen,
        "keepalive=1 idle=50 intvl=75 cnt=4 user_timeout=0",
        "accepted by a static server",
    );
    server.stop();
}

#[test]
fn go_programs_get_ours_unless_go_sets_its_own() {
    root();
    let go = go_probe(false);
    let run = |mode: &str| {
        let port = peer("127.0.0.1");
        let mut cmd = keepalive();
        cmd.args(["--bpf", "--idle", "40", "--count", "5"]).arg(&go);
        cmd.args([&format!("127.0.0.1:{port}"), mode, "3000"]);
        observe(cmd, port)
    };
    // net.Dialer{KeepAlive: -1}: Go leaves keepalive alone, ours applies.
    assert_seen(
        &run("off"),
        "keepalive=1 idle=40 intvl=75 cnt=5 user_timeout=0",
        "Go, KeepAlive -1",
    );
    // Go's default sets SO_KEEPALIVE, idle and interval (15 s) after
    // connect(): those win; the count it never sets stays ours.
    assert_seen(
        &run("default"),
        "keepalive=1 idle=15 intvl=15 cnt=5 user_timeout=0",
        "Go, default dialer",
    );
}

#[test]
fn an_io_uring_connect_is_configured() {
    root();
    let uring = build_c("uringprobe", "uringprobe", &["-static", "-luring"]);
    let port = peer("127.0.0.1");
    let mut cmd = keepalive();
    cmd.args(["--bpf", "--idle", "45"]).arg(uring);
    cmd.args(["127.0.0.1", &port.to_string(), "3000"]);
    assert_seen(
        &observe(cmd, port),
        "keepalive=1 idle=45 intvl=75 cnt=9 user_timeout=0",
        "io_uring connect",
    );
}

#[test]
fn rules_and_direction_decide_as_in_the_library() {
    root();
    let on = |idle: u32| format!("keepalive=1 idle={idle} intvl=75 cnt=9 user_timeout=0");
    // An IPv4 rule matches an IPv6 socket's IPv4-mapped peer.
    let rules = ["--idle", "30", "--rule", "net=127.0.0.0/8:idle=70"];
    let seen = bpf_connect(&rules, "::ffff:127.0.0.1", &[]);
    assert_seen(&seen, &on(70), "IPv4 rule, mapped peer");
    // ...and an IPv4 peer is also ::ffff:a.b.c.d: ::/0 holds it, as in the
    // library, while 2001:db8::/32 does not.
    let rules = ["--idle", "30", "--rule", "net=::/0:idle=70"];
    assert_seen(
        &bpf_connect(&rules, "127.0.0.1", &[]),
        &on(70),
        "::/0, IPv4 peer",
    );
    assert_seen(&bpf_connect(&rules, "::1", &[]), &on(70), "::/0, IPv6 peer");
    let rules = ["--idle", "30", "--rule", "net=2001:db8::/32:idle=70"];
    assert_seen(
        &bpf_connect(&rules, "127.0.0.1", &[]),
        &on(30),
        "2001:db8::/32, IPv4 peer",
    );
    // First match wins; off leaves the connection exactly as it was.
    let rules = ["--rule", "net=::1:off", "--rule", "*:idle=90"];
    assert_seen(&bpf_connect(&rules, "::1", &[]), UNTOUCHED, "off rule");
    assert_seen(
        &bpf_connect(&rules, "127.0.0.1", &[]),
        &on(90),
        "second rule",
    );
    // Ports: the peer's port, outbound.
    let port = peer("127.0.0.1");
    let rule = format!("port={port}:cnt=3");
    let mut cmd = keepalive();
    cmd.args(["--bpf", "--idle", "20", "--rule", &rule])
        .arg(probe());
    cmd.args(["connect", "127.0.0.1", &port.to_string(), HOLD]);
    assert_seen(
        &observe(cmd, port),
        "keepalive=1 idle=20 intvl=75 cnt=3 user_timeout=0",
        "port rule",
    );
    let rules = ["--rule", "port=1-2:off", "--rule", "dir=in:off"];
    assert_seen(
        &bpf_connect(&rules, "127.0.0.1", &[]),
        &on(7200),
        "no rule matches",
    );
    // --direction in: outbound connections are left alone.
    let direction = ["--direction", "in", "--idle", "30"];
    assert_seen(
        &bpf_connect(&direction, "127.0.0.1", &[]),
        UNTOUCHED,
        "direction in",
    );
}

#[test]
fn the_program_wins_option_by_option() {
    root();
    let base = [
        "--idle",
        "60",
        "--interval",
        "10",
        "--count",
        "6",
        "--user-timeout",
        "1500",
    ];
    // Set before connect(): that option keeps the program's value.
    let seen = bpf_connect(&base, "127.0.0.1", &["idle=99", "user_timeout=0"]);
    assert_seen(
        &seen,
        "keepalive=1 idle=99 intvl=10 cnt=6 user_timeout=0",
        "program set idle and user_timeout",
    );
    // An explicit SO_KEEPALIVE=0 means nothing of ours: no timer, and no
    // user timeout that would end the connection the program chose not to
    // probe.
    let seen = bpf_connect(&base, "127.0.0.1", &["keepalive=0"]);
    assert_seen(&seen, UNTOUCHED, "program turned keepalive off");
    // Set after connect(): it simply wins (it comes last).
    let seen = bpf_connect(&base, "127.0.0.1", &["after:cnt=2", "after:idle=5"]);
    assert_seen(
        &seen,
        "keepalive=1 idle=5 intvl=10 cnt=2 user_timeout=1500",
        "program set options after connect",
    );
    // Accepted connections: judged by what was set on the listener.
    let port = common::free_port().to_string();
    let mut cmd = keepalive();
    cmd.arg("--bpf").args(base).arg(probe());
    cmd.args(["accept", "127.0.0.1", &port, HOLD, "intvl=3", "keepalive=1"]);
    let server = Running::spawn(cmd, "server");
    server
        .wait_stdout("listening", PROMPT)
        .expect("server listens");
    let _client =
        std::net::TcpStream::connect(("127.0.0.1", port.parse::<u16>().unwrap())).unwrap();
    server
        .wait_stdout("connected", PROMPT)
        .expect("server accepts");
    let line = server.stdout().lines().last().unwrap().to_string();
    assert_eq!(
        line, "connected keepalive=1 idle=60 intvl=3 cnt=6 user_timeout=1500",
        "listener's own interval and keepalive kept, the rest ours"
    );
    server.stop();
}

/// The dynamic probe `connect`ing with `words` under `keepalive OPTIONS --`
/// (the preload mode) and under `keepalive --bpf OPTIONS --`: the same
/// settings must decide the same in every mode.
fn in_both_modes(options: &[&str], words: &[&str], expected: &str, label: &str) {
    for bpf in [false, true] {
        let port = peer("127.0.0.1");
        let mut cmd = keepalive();
        if bpf {
            cmd.arg("--bpf");
        } else {
            // This test's debug command has no library beside it.
            cmd.env("KEEPALIVE_LIB", common::library());
        }
        cmd.args(options).arg("--").arg(dynamic_probe());
        cmd.args(["connect", "127.0.0.1", &port.to_string(), HOLD])
            .args(words);
        let mode = if bpf { "--bpf" } else { "preload" };
        assert_seen(&observe(cmd, port), expected, &format!("{label} ({mode})"));
    }
}

/// A setsockopt the kernel refuses (EINVAL: a value out of its range, an
/// optlen under an int) is not the program's choice: the library records
/// only calls that return 0, and so does the kernel-side program.
#[test]
fn a_call_the_kernel_refuses_is_not_the_programs_choice() {
    root();
    let ours = "keepalive=1 idle=30 intvl=75 cnt=9 user_timeout=0";
    for word in [
        "try:idle=0",
        "try:idle=32768",
        "try:intvl=0",
        "try:cnt=128",
        "try:user_timeout=-1",
        "byte:keepalive=1",
        "byte:idle=5",
    ] {
        in_both_modes(&["--idle", "30"], &[word], ours, word);
    }
    // The same calls in range are the program's own.
    in_both_modes(
        &["--idle", "30"],
        &["try:idle=32767", "try:cnt=127", "try:user_timeout=0"],
        "keepalive=1 idle=32767 intvl=75 cnt=127 user_timeout=0",
        "in range",
    );
}

/// Under override our values win over the program's SO_KEEPALIVE=0 too
/// (docs/rules.md): set again right after its call, before or after
/// connect(), and its later calls still rewritten.
#[test]
fn under_override_the_programs_keepalive_off_is_overridden_too() {
    root();
    let options = ["--idle", "30", "--user-timeout", "20000", "--override"];
    let ours = "keepalive=1 idle=30 intvl=75 cnt=9 user_timeout=20000";
    in_both_modes(&options, &["after:keepalive=0"], ours, "off after connect");
    in_both_modes(
        &options,
        &["after:keepalive=0", "after:idle=100"],
        ours,
        "off after connect, then its own idle",
    );
    in_both_modes(&options, &["keepalive=0"], ours, "off before connect");
    in_both_modes(
        &options,
        &["keepalive=0", "idle=100"],
        ours,
        "off and its own idle before connect",
    );
}

#[test]
fn attach_update_detach_nested_and_removal() {
    root();
    let parent = TestCgroup::top("attach");
    let nested = TestCgroup::new(&parent.path, "nested");
    let connect_in = |cgroup: &TestCgroup| {
        let port = peer("127.0.0.1");
        let mut cmd = Command::new(probe());
        cmd.args(["connect", "127.0.0.1", &port.to_string(), HOLD]);
        cgroup.enter(&mut cmd);
        observe(cmd, port)
    };
    assert!(parent.attach(&["--idle", "25"]).contains("attached"));
    let first = "keepalive=1 idle=25 intvl=75 cnt=9 user_timeout=0";
    assert_seen(&connect_in(&parent), first, "attached");
    // A cgroup below the attached one is covered too.
    assert_seen(&connect_in(&nested), first, "nested cgroup");
    // Again on the same cgroup: new settings, same attachment.
    assert!(parent
        .attach(&["--idle", "35", "--count", "2"])
        .contains("updated"));
    let second = "keepalive=1 idle=35 intvl=75 cnt=2 user_timeout=0";
    assert_seen(&connect_in(&parent), second, "updated");
    assert_seen(&connect_in(&nested), second, "updated, nested");
    assert_eq!(
        attached_programs(&parent.path),
        2,
        "one sock_ops and one setsockopt"
    );
    assert!(parent.detach().contains("detached"));
    assert_seen(&connect_in(&parent), UNTOUCHED, "detached");
    assert_eq!(attached_programs(&parent.path), 0);
    assert!(parent.detach().contains("nothing of ours"));
    // The attachment goes with its cgroup: a cgroup with ours is removable.
    assert!(nested.attach(&["--idle", "5"]).contains("attached"));
    let nested_path = nested.path.clone();
    drop(nested);
    assert!(!nested_path.exists(), "cgroup with an attachment removed");
}

/// How many of our programs are attached to `cgroup` itself, by name, as
/// the kernel lists them (BPF_PROG_QUERY through tests/c/bpfquery.c, since
/// bpftool is not installed by default).
fn attached_programs(cgroup: &Path) -> usize {
    let query = build_c("bpfquery", "bpfquery", &[]);
    let out = common::run(
        {
            let mut cmd = Command::new(query);
            cmd.arg(cgroup);
            cmd
        },
        PROMPT,
    );
    assert!(out.status.success(), "bpfquery: {}", common::stderr(&out));
    common::stdout(&out)
        .lines()
        .filter(|l| l.starts_with("keepalive_"))
        .count()
}

#[test]
fn bpf_runs_in_a_child_cgroup_removed_afterwards_with_the_status() {
    root();
    // Exit status passes through, and the cgroup is gone afterwards.
    let mut cmd = keepalive();
    cmd.args(["--bpf", "sh", "-c", "cat /proc/self/cgroup; exit 3"]);
    let out = common::run(cmd, PROMPT);
    assert_eq!(out.status.code(), Some(3), "{}", common::stderr(&out));
    let text = common::stdout(&out);
    let line = text.lines().find(|l| l.starts_with("0::")).unwrap();
    assert!(
        line.contains("/keepalive."),
        "ran in a child cgroup: {line}"
    );
    let child = own_cgroup().join(line.rsplit('/').next().unwrap());
    assert!(!child.exists(), "{} left behind", child.display());
    // A signal sent to keepalive reaches PROGRAM; keepalive then removes the
    // cgroup and ends by the same signal.
    let mut cmd = keepalive();
    cmd.args(["--bpf", "sh", "-c", "cat /proc/self/cgroup; exec sleep 30"]);
    cmd.stdout(Stdio::piped());
    let mut running = cmd.spawn().unwrap();
    let mut first = String::new();
    let mut stdout = std::io::BufReader::new(running.stdout.take().unwrap());
    while !first.starts_with("0::") {
        first.clear();
        std::io::BufRead::read_line(&mut stdout, &mut first).unwrap();
    }
    let child = own_cgroup().join(first.trim().rsplit('/').next().unwrap());
    assert!(child.exists());
    let started = Instant::now();
    // SAFETY: kill(2) on our own child.
    unsafe { libc::kill(running.id() as i32, libc::SIGTERM) };
    let status = running.wait().unwrap();
    assert!(started.elapsed() < PROMPT);
    assert_eq!(status.signal(), Some(libc::SIGTERM), "{status:?}");
    assert!(
        !child.exists(),
        "{} left behind after SIGTERM",
        child.display()
    );
}

#[test]
fn bad_values_exit_125_with_the_librarys_line() {
    root();
    let out = common::run(
        {
            let mut cmd = keepalive();
            cmd.args(["--bpf", "--idle", "0", "true"]);
            cmd
        },
        PROMPT,
    );
    assert_eq!(out.status.code(), Some(125));
    let library = common::run(
        {
            let mut cmd = common::command("true", true, &[("KEEPIDLE", "0")]);
            cmd.env("KEEPALIVE_DEBUG", "0");
            cmd
        },
        PROMPT,
    );
    let line = common::stderr(&library)
        .lines()
        .next()
        .unwrap_or_default()
        .to_string();
    assert!(!line.is_empty(), "the library prints a line for KEEPIDLE=0");
    assert!(
        common::stderr(&out).lines().any(|l| l == line),
        "{:?} lacks the library's {line:?}",
        common::stderr(&out)
    );
    // --attach refuses it too, and attaches nothing.
    let cgroup = TestCgroup::top("bad");
    let out = common::run(
        {
            let mut cmd = keepalive();
            cmd.arg("--attach")
                .arg(&cgroup.path)
                .args(["--count", "200"]);
            cmd
        },
        PROMPT,
    );
    assert_eq!(out.status.code(), Some(125), "{}", common::stderr(&out));
    assert_eq!(attached_programs(&cgroup.path), 0);
    // Not a cgroup v2 directory: one line saying so, 125.
    let out = common::run(
        {
            let mut cmd = keepalive();
            cmd.args(["--attach", "/tmp"]);
            cmd
        },
        PROMPT,
    );
    assert_eq!(out.status.code(), Some(125));
    assert!(common::stderr(&out).contains("not a cgroup v2 directory"));
}

#[test]
fn a_dead_peer_is_detected_on_time_by_a_static_client() {
    root();
    // idle 2 s, then 3 probes 1 s apart: dead 5 s after the last traffic.
    let run = |with_bpf: bool| -> Option<Duration> {
        let pair = Pair::new();
        let mut server = Command::new("nc");
        server.args(["-l", "5000"]);
        pair.server.enter(&mut server);
        let _server = Process::spawn(server, "nc server");
        pair.server.wait_listening(5000);
        let mut cmd = if with_bpf {
            let mut cmd = keepalive();
            cmd.args(["--bpf", "--idle", "2", "--interval", "1", "--count", "3"]);
            cmd.arg(probe());
            cmd
        } else {
            Command::new(probe())
        };
        cmd.args(["connect", SERVER_ADDR, "5000", "wait"]);
        pair.client.enter(&mut cmd);
        let mut client = Running::spawn(cmd, "static client");
        client.wait_stdout("connected", PROMPT).expect("connected");
        pair.server.vanish();
        let vanished = Instant::now();
        let ended = client
            .wait_exit(Duration::from_secs(12))
            .map(|(_, at)| at - vanished);
        if ended.is_some() {
            assert!(
                client.stdout().contains("closed err=110"),
                "{}",
                client.stdout()
            );
        }
        ended
    };
    std::thread::scope(|scope| {
        let control = scope.spawn(|| run(false));
        let ours = run(true).expect("the static client never noticed its dead peer");
        eprintln!("dead peer noticed after {ours:?} (budget 5 s)");
        assert!(
            ours >= Duration::from_secs(4) && ours < Duration::from_secs(8),
            "{ours:?}"
        );
        assert_eq!(
            control.join().unwrap(),
            None,
            "the control noticed without us"
        );
    });
}

#[test]
fn check_names_the_mode_a_program_needs() {
    let mode_of = |program: &Path| {
        let mut cmd = keepalive();
        cmd.arg("--check").arg(program);
        let out = common::run(cmd, PROMPT);
        let text = common::stdout(&out);
        let line = text
            .lines()
            .find(|l| l.starts_with("mode "))
            .map(str::to_string);
        (line.unwrap_or_default(), common::stderr(&out))
    };
    let (line, warning) = mode_of(&probe());
    assert!(line.contains("--bpf (statically linked"), "{line}");
    assert!(warning.contains("keepalive --bpf reaches it"), "{warning}");
    let (line, warning) = mode_of(&go_probe(false));
    assert!(line.contains("--bpf (a Go program"), "{line}");
    assert!(warning.contains("keepalive --bpf reaches it"), "{warning}");
    let dynamic = build_c("bpfquery", "bpfquery", &[]);
    assert!(mode_of(&dynamic).0.contains("preload (a dynamic program"));
    let uring = build_c("uringprobe", "uringprobe-dynamic", &["-luring"]);
    assert!(mode_of(&uring).0.contains("it links liburing"));
}

#[test]
fn without_privileges_or_cgroup2_the_error_says_what_to_do() {
    root();
    // Not root: nobody, without capabilities.
    let mut cmd = Command::new("setpriv");
    cmd.args([
        "--reuid=65534",
        "--regid=65534",
        "--clear-groups",
        "--inh-caps=-all",
    ]);
    cmd.arg(env!("CARGO_BIN_EXE_keepalive"))
        .args(["--bpf", "true"]);
    let out = common::run(cmd, PROMPT);
    assert_eq!(out.status.code(), Some(125));
    let err = common::stderr(&out);
    assert!(
        err.contains("needs root, or the capabilities CAP_BPF and CAP_NET_ADMIN"),
        "{err}"
    );
    // No cgroup2 mounted: a private mount namespace without it.
    let mut cmd = Command::new("unshare");
    cmd.args(["--mount", "--propagation", "private", "sh", "-c"]);
    cmd.arg(format!(
        "grep ' - cgroup2 ' /proc/self/mountinfo | cut -d' ' -f5 | xargs -r -n1 umount -l && \
         exec {} --bpf true",
        env!("CARGO_BIN_EXE_keepalive")
    ));
    let out = common::run(cmd, PROMPT);
    assert_eq!(out.status.code(), Some(125), "{}", common::stderr(&out));
    let err = common::stderr(&out);
    assert!(
        err.contains("mount -t cgroup2 none /sys/fs/cgroup/unified"),
        "{err}"
    );
}

#[test]
fn calls_made_before_the_attachment_are_unseen() {
    root();
    let cgroup = TestCgroup::top("before");
    // A server that set its listener's options before the attachment:
    // `accept` prints "listening" after listen(), then we attach.
    let server = |words: &[&str]| {
        let port = common::free_port().to_string();
        let mut cmd = Command::new(probe());
        cmd.args(["accept", "127.0.0.1", &port, HOLD]).args(words);
        cgroup.enter(&mut cmd);
        let server = Running::spawn(cmd, "server");
        server
            .wait_stdout("listening", PROMPT)
            .expect("server listens");
        (server, port.parse::<u16>().unwrap())
    };
    let accepted = |server: &Running, port: u16| {
        let _client = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
        server
            .wait_stdout("connected", PROMPT)
            .expect("server accepts");
        let text = server.stdout();
        let line = text.lines().last().unwrap();
        line.trim_start_matches("connected ").to_string()
    };
    let (with_keepalive, port_a) = server(&["keepalive=1", "idle=77"]);
    let (idle_only, port_b) = server(&["idle=77"]);
    cgroup.attach(&["--idle", "25"]);
    // Keepalive already on, with no recorded call: somebody chose it where
    // we could not see, and the connection is left alone.
    assert_eq!(
        accepted(&with_keepalive, port_a),
        "keepalive=1 idle=77 intvl=75 cnt=9 user_timeout=0"
    );
    // A timer set before the attachment, keepalive off: indistinguishable
    // from a default, so ours replaces it.
    assert_eq!(
        accepted(&idle_only, port_b),
        "keepalive=1 idle=25 intvl=75 cnt=9 user_timeout=0"
    );
}

/// `keepalive --status` says which attachment covers a process: its own
/// cgroup's or an ancestor's; none outside.
#[test]
fn status_names_the_attachment_that_covers_a_process() {
    root();
    let parent = TestCgroup::top("status");
    let nested = TestCgroup::new(&parent.path, "nested");
    assert!(parent.attach(&["--idle", "25"]).contains("attached"));
    let status_of = |cgroup: Option<&TestCgroup>| {
        let mut sleeper = Command::new("sleep");
        sleeper.arg("30");
        if let Some(cgroup) = cgroup {
            cgroup.enter(&mut sleeper);
        }
        // Killed when dropped, at the end of this closure.
        let sleeper = Process::spawn(sleeper, "sleep");
        let mut cmd = keepalive();
        cmd.arg("--status")
            .arg(sleeper.id().to_string())
            .arg("--json");
        let out = common::run(cmd, PROMPT);
        assert!(out.status.success(), "{}", common::stderr(&out));
        common::stdout(&out)
    };
    let key = |path: &Path| format!("\"bpf_attachment\":\"{}\"", path.display());
    let inside = status_of(Some(&parent));
    assert!(inside.contains(&key(&parent.path)), "{inside}");
    let below = status_of(Some(&nested));
    assert!(below.contains(&key(&parent.path)), "{below}");
    let outside = status_of(None);
    assert!(outside.contains("\"bpf_attachment\":null"), "{outside}");
}

/// A static probe `connect`ing from inside `cgroup`, with `words`.
fn connect_in(cgroup: &TestCgroup, words: &[&str]) -> Seen {
    let port = peer("127.0.0.1");
    let mut cmd = Command::new(probe());
    cmd.args(["connect", "127.0.0.1", &port.to_string(), HOLD])
        .args(words);
    cgroup.enter(&mut cmd);
    observe(cmd, port)
}

/// A static probe `accept`ing one connection: `cmd` is the probe (or
/// keepalive running it) with its arguments up to the port, `port` that
/// port; `words` go after HOLD. What it saw inside, and `ss` outside.
fn accepted(mut cmd: Command, port: u16, words: &[&str]) -> Seen {
    cmd.arg(HOLD).args(words);
    let server = Running::spawn(cmd, "server");
    server
        .wait_stdout("listening", PROMPT)
        .expect("server listens");
    let _client = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    server
        .wait_stdout("connected", PROMPT)
        .expect("server accepts");
    let line = server.stdout().lines().last().unwrap().to_string();
    // The accepted socket's row: local port `port`, keepalive timer or not.
    let timer = ss_lines(port)
        .iter()
        .filter(|l| l.contains(&format!(":{port} ")) && !l.starts_with("LISTEN"))
        .find_map(|l| keepalive_timer_secs(l));
    server.stop();
    Seen {
        options: line.trim_start_matches("connected ").to_string(),
        timer,
    }
}

/// Issue 19 item 1: parent `--idle 100 --user-timeout 7000`, child
/// `--idle 50`: a program in the child that sets SO_KEEPALIVE=1 itself
/// (libpq, curl, Java) gets the child's settings and nothing of the
/// parent's, as does one that sets nothing, and a server's connections.
#[test]
fn nested_attachments_the_innermost_decides() {
    root();
    let parent = TestCgroup::top("outer");
    let child = TestCgroup::new(&parent.path, "inner");
    parent.attach(&["--idle", "100", "--user-timeout", "7000"]);
    child.attach(&["--idle", "50"]);
    let inner = "keepalive=1 idle=50 intvl=75 cnt=9 user_timeout=0";
    assert_seen(
        &connect_in(&child, &["keepalive=1"]),
        inner,
        "SO_KEEPALIVE=1 set by the program, in the child",
    );
    assert_seen(&connect_in(&child, &[]), inner, "nothing set, in the child");
    let port = common::free_port();
    let mut server = Command::new(probe());
    server.args(["accept", "127.0.0.1", &port.to_string()]);
    child.enter(&mut server);
    assert_seen(
        &accepted(server, port, &["keepalive=1"]),
        inner,
        "accepted in the child, listener with SO_KEEPALIVE=1",
    );
    // The parent's own processes get the parent's settings.
    assert_seen(
        &connect_in(&parent, &["keepalive=1"]),
        "keepalive=1 idle=100 intvl=75 cnt=9 user_timeout=7000",
        "in the parent",
    );
}

/// Issue 19 item 2: an inner attachment that decides "off" (`--off`, a rule
/// `*:off`, its direction) keeps the outer one away from its connections.
#[test]
fn an_inner_off_opts_out_of_outer_attachments() {
    root();
    let parent = TestCgroup::top("node");
    let child = TestCgroup::new(&parent.path, "pod");
    parent.attach(&["--idle", "30", "--user-timeout", "4000"]);
    child.attach(&["--off"]);
    assert_seen(&connect_in(&child, &[]), UNTOUCHED, "inner --off");
    assert_seen(
        &connect_in(&child, &["keepalive=1"]),
        "keepalive=1 idle=7200 intvl=75 cnt=9 user_timeout=0",
        "inner --off, the program's own SO_KEEPALIVE=1",
    );
    assert!(child.attach(&["--rule", "*:off"]).contains("updated"));
    assert_seen(&connect_in(&child, &[]), UNTOUCHED, "inner rule *:off");
    child.attach(&["--direction", "in", "--idle", "20"]);
    assert_seen(&connect_in(&child, &[]), UNTOUCHED, "inner --direction in");
    // Without the inner attachment the outer one applies again.
    child.detach();
    assert_seen(
        &connect_in(&child, &[]),
        "keepalive=1 idle=30 intvl=75 cnt=9 user_timeout=4000",
        "outer only",
    );
}

/// Issue 19 item 3: eight `--attach` at once on one cgroup leave exactly
/// one pair of our programs, and a later one updates the settings in force.
#[test]
fn concurrent_attaches_leave_one_pair() {
    root();
    let cgroup = TestCgroup::top("concurrent");
    let runs: Vec<_> = (0..8)
        .map(|i| {
            let mut cmd = keepalive();
            cmd.arg("--attach")
                .arg(&cgroup.path)
                .args(["--idle", &(20 + i).to_string()]);
            cmd.stderr(Stdio::piped());
            cmd.spawn().unwrap()
        })
        .collect();
    for run in runs {
        let out = run.wait_with_output().unwrap();
        assert!(out.status.success(), "{}", common::stderr(&out));
    }
    assert_eq!(
        attached_programs(&cgroup.path),
        2,
        "one sock_ops and one setsockopt"
    );
    assert!(cgroup.attach(&["--idle", "44"]).contains("updated"));
    assert_seen(
        &connect_in(&cgroup, &[]),
        "keepalive=1 idle=44 intvl=75 cnt=9 user_timeout=0",
        "after the update",
    );
    assert_eq!(attached_programs(&cgroup.path), 2);
    // Stray pairs of ours (as older versions' races left them): the next
    // --attach repairs the cgroup to one pair, with its settings.
    other_attachment(&cgroup.path, "pair");
    other_attachment(&cgroup.path, "pair");
    assert_eq!(attached_programs(&cgroup.path), 6);
    assert!(cgroup
        .attach(&["--idle", "33"])
        .contains("replaced our programs"));
    assert_eq!(attached_programs(&cgroup.path), 2);
    assert_seen(
        &connect_in(&cgroup, &[]),
        "keepalive=1 idle=33 intvl=75 cnt=9 user_timeout=0",
        "after the repair",
    );
}

/// tests/c/bpfattach.c: another tool's `exclusive` sock_ops program, or a
/// stray `pair` of ours; returns what it printed (the exclusive one's id).
fn other_attachment(cgroup: &Path, what: &str) -> String {
    let out = common::run(
        {
            let mut cmd = Command::new(build_c("bpfattach", "bpfattach", &[]));
            cmd.arg(cgroup).arg(what);
            cmd
        },
        PROMPT,
    );
    assert!(out.status.success(), "{}", common::stderr(&out));
    common::stdout(&out).trim().to_string()
}

/// Issue 19 item 4: another tool's exclusive sock_ops program on the cgroup
/// (or an ancestor) makes our second attach fail: nothing of ours stays,
/// and the one line names that program as `bpftool cgroup tree` shows it.
#[test]
fn an_exclusive_program_refuses_and_nothing_of_ours_stays() {
    root();
    let cgroup = TestCgroup::top("exclusive");
    let below = TestCgroup::new(&cgroup.path, "below");
    let id = other_attachment(&cgroup.path, "exclusive");
    for (target, holder_on) in [(&cgroup, &cgroup), (&below, &cgroup)] {
        let mut cmd = keepalive();
        cmd.arg("--attach").arg(&target.path).args(["--idle", "30"]);
        let out = common::run(cmd, PROMPT);
        let err = common::stderr(&out);
        assert_eq!(out.status.code(), Some(125), "{err}");
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(
            err.contains(&format!("program id {id} (ka_exclusive)"))
                && err.contains(&format!("on {} ", holder_on.path.display()))
                && err.contains("nothing of ours was left attached"),
            "{err}"
        );
        assert!(!err.contains("needs root"), "{err}");
        assert_eq!(attached_programs(&target.path), 0, "{err}");
    }
}

/// Issue 19 item 5: a `keepalive --bpf` killed outright leaves its cgroup;
/// a later run with the same process id (here: 1, in a new PID namespace
/// each time) starts anyway, and removes the stale cgroup.
#[test]
fn a_killed_bpf_run_leaves_nothing_a_later_run_trips_over() {
    root();
    let in_new_pid_namespace = |script: &str| {
        let mut cmd = Command::new("unshare");
        cmd.args(["--pid", "--fork", "--kill-child"]);
        cmd.arg(env!("CARGO_BIN_EXE_keepalive"))
            .args(["--bpf", "sh", "-c", script]);
        cmd.stdin(Stdio::null());
        cmd
    };
    let first = Process::spawn(
        in_new_pid_namespace("cat /proc/self/cgroup; exec sleep 30"),
        "first --bpf",
    );
    first.wait_stdout("0::", PROMPT).expect("first run started");
    let line = first.stdout();
    let name = line
        .lines()
        .find_map(|l| l.strip_prefix("0::/"))
        .unwrap()
        .to_string();
    assert!(name.starts_with("keepalive.1"), "{name}");
    let stale = own_cgroup().join(&name);
    // keepalive is unshare's child: SIGKILL it, as the OOM killer would.
    let children = format!("/proc/{0}/task/{0}/children", first.id());
    let keepalive_pid: i32 = fs::read_to_string(&children)
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .parse()
        .unwrap();
    // SAFETY: kill(2) on the keepalive this test started.
    unsafe { libc::kill(keepalive_pid, libc::SIGKILL) };
    // Another --bpf run of this suite may already have removed the stale
    // cgroup (its clean-up runs at every start): gone counts as empty.
    wait_for(PROMPT, || {
        match fs::read_to_string(stale.join("cgroup.procs")) {
            Ok(procs) => procs.trim().is_empty().then_some(()),
            Err(_) => (!stale.exists()).then_some(()),
        }
    })
    .expect("PROGRAM ended with its PID namespace");
    drop(first);
    let out = common::run(in_new_pid_namespace("cat /proc/self/cgroup"), PROMPT);
    assert_eq!(out.status.code(), Some(0), "{}", common::stderr(&out));
    assert!(common::stdout(&out).contains("0::/keepalive.1"));
    assert!(!stale.exists(), "{} not cleaned up", stale.display());
}

/// Issue 19 item 5: a SIGTERM that arrives right after `--bpf` made its
/// cgroup (strace holds keepalive there for 2 s) is passed on to PROGRAM,
/// and the cgroup is removed: it no longer ends keepalive before it
/// installed its forwarding.
#[test]
fn a_signal_before_program_starts_leaves_no_cgroup() {
    root();
    Command::new("strace")
        .arg("-V")
        .output()
        .expect("strace not found: apt-get install -y strace");
    let mut cmd = Command::new("strace");
    cmd.args([
        "-f",
        "--seccomp-bpf", // stops only at the traced calls
        "-o",
        "/dev/null",
        "-e",
        "trace=mkdir,mkdirat",
        "-e",
        "inject=mkdir,mkdirat:delay_exit=2000000",
    ]);
    cmd.arg(env!("CARGO_BIN_EXE_keepalive"))
        .args(["--bpf", "sleep", "30"]);
    cmd.stdin(Stdio::null());
    let mut strace = Process::spawn(cmd, "strace keepalive --bpf");
    let children = format!("/proc/{0}/task/{0}/children", strace.id());
    // strace forks short-lived children of its own first (its seccomp
    // checks): the one that runs keepalive is named so.
    let keepalive_pid: u32 = wait_for(PROMPT, || {
        fs::read_to_string(&children)
            .ok()?
            .split_whitespace()
            .filter_map(|pid| pid.parse().ok())
            .find(|pid: &u32| {
                fs::read_to_string(format!("/proc/{pid}/comm")).is_ok_and(|c| c == "keepalive\n")
            })
    })
    .expect("strace started keepalive");
    // Generous: the first run of this binary builds Go and C probes beside.
    let made = wait_for(3 * PROMPT, || bpf_cgroups_of(keepalive_pid).pop()).unwrap_or_else(|| {
        panic!(
            "keepalive {keepalive_pid} made no cgroup; its stderr: {}",
            strace.stderr()
        )
    });
    // SAFETY: kill(2) on the keepalive this test started.
    unsafe { libc::kill(keepalive_pid as i32, libc::SIGTERM) };
    let (status, _) = strace.wait_exit(PROMPT).expect("keepalive ended");
    assert!(
        !made.exists(),
        "{} left behind ({status:?})",
        made.display()
    );
    assert_eq!(status.signal(), Some(libc::SIGTERM), "{status:?}");
}

/// Issue 19 item 6: SO_KEEPALIVE=0 by the program means nothing of ours:
/// set before connect() or on a listener, the connection is untouched; set
/// after, what we set is taken back (the kernel's values put back).
#[test]
fn so_keepalive_0_means_nothing_of_ours() {
    root();
    let base = ["--idle", "60", "--count", "4", "--user-timeout", "4000"];
    assert_seen(
        &bpf_connect(&base, "127.0.0.1", &["keepalive=0"]),
        UNTOUCHED,
        "client, before connect",
    );
    assert_seen(
        &bpf_connect(&base, "127.0.0.1", &["after:keepalive=0"]),
        UNTOUCHED,
        "client, after connect",
    );
    let port = common::free_port();
    let mut cmd = keepalive();
    cmd.arg("--bpf").args(base).arg(probe());
    cmd.args(["accept", "127.0.0.1", &port.to_string()]);
    assert_seen(
        &accepted(cmd, port, &["keepalive=0"]),
        UNTOUCHED,
        "listener with SO_KEEPALIVE=0",
    );
}

/// Issue 19 item 8: `--program` / KEEPALIVE_PROGRAMS cannot be honoured by
/// an attachment (it covers the whole cgroup): refused, never ignored.
#[test]
fn program_lists_are_refused_not_ignored() {
    root();
    let refused = |mut cmd: Command, source: &str, not: &str| {
        let out = common::run(
            {
                cmd.stdout(Stdio::piped());
                cmd
            },
            PROMPT,
        );
        let err = common::stderr(&out);
        assert_eq!(out.status.code(), Some(125), "{err}");
        assert_eq!(err.lines().count(), 1, "{err}");
        // It names the source actually used, the option or the variable.
        assert!(err.contains(source) && !err.contains(not), "{err}");
        assert!(common::stdout(&out).is_empty(), "PROGRAM never ran");
    };
    let (option, variable) = ("--program redis-server", "KEEPALIVE_PROGRAMS");
    let mut cmd = keepalive();
    cmd.args(["--bpf", "--program", "redis-server", "echo", "ran"]);
    refused(cmd, option, variable);
    let mut cmd = keepalive();
    cmd.env("KEEPALIVE_PROGRAMS", "redis-server,nginx")
        .args(["--bpf", "echo", "ran"]);
    refused(cmd, "KEEPALIVE_PROGRAMS=redis-server,nginx", "--program");
    let cgroup = TestCgroup::top("programs");
    let mut cmd = keepalive();
    cmd.arg("--attach")
        .arg(&cgroup.path)
        .args(["--program", "redis-server"]);
    refused(cmd, option, variable);
    assert_eq!(attached_programs(&cgroup.path), 0);
}

/// Issue 19 item 11: under `ip netns exec` (which remounts /sys) the
/// message names the namespace and the command that works, and that
/// command works.
#[test]
fn under_ip_netns_exec_the_message_gives_the_command_that_works() {
    root();
    let netns = common::netns::Netns::new("exec");
    let mut cmd = Command::new("ip");
    cmd.args(["netns", "exec", netns.name()])
        .arg(env!("CARGO_BIN_EXE_keepalive"))
        .args(["--bpf", "true"]);
    let out = common::run(cmd, PROMPT);
    let err = common::stderr(&out);
    assert_eq!(out.status.code(), Some(125), "{err}");
    let suggested = format!(
        "keepalive --bpf [OPTIONS] -- ip netns exec {}",
        netns.name()
    );
    assert!(err.contains(&suggested), "{err}");
    assert!(!err.contains("mount -t cgroup2"), "{err}");
    let mut cmd = keepalive();
    cmd.args(["--bpf", "--", "ip", "netns", "exec", netns.name()]);
    cmd.args(["sh", "-c", "cat /proc/self/cgroup"]);
    let out = common::run(cmd, PROMPT);
    assert_eq!(out.status.code(), Some(0), "{}", common::stderr(&out));
    assert!(common::stdout(&out).contains("0::/keepalive."));
}

/// Issue 19 items 9 and 10: `--status` of a covered process shows the
/// deciding attachment's settings (not the library's defaults), the outer
/// one it overrules, who set each option, and that the program's own
/// TCP_USER_TIMEOUT makes our count moot.
#[test]
fn status_shows_the_deciding_attachment_and_who_set_each_option() {
    root();
    let parent = TestCgroup::top("status-outer");
    let child = TestCgroup::new(&parent.path, "inner");
    parent.attach(&["--idle", "90"]);
    child.attach(&["--idle", "25", "--count", "4"]);
    let port = peer("127.0.0.1");
    let mut cmd = Command::new(probe());
    cmd.args(["connect", "127.0.0.1", &port.to_string(), "hold=20000"]);
    cmd.args(["keepalive=1", "user_timeout=3000"]);
    child.enter(&mut cmd);
    let client = Running::spawn(cmd, "probe");
    client.wait_stdout("connected", PROMPT).expect("connected");
    let mut cmd = keepalive();
    cmd.arg("--status")
        .arg(client.id().to_string())
        .arg("--json");
    let out = common::run(cmd, PROMPT);
    assert!(out.status.success(), "{}", common::stderr(&out));
    let json = common::stdout(&out);
    for expected in [
        format!(
            "the attachment on {} decides this process's connections: keepalive on, \
             idle 25 s, count 4 (these apply",
            child.path.display()
        ),
        format!(
            "the outer attachment on {} (keepalive on, idle 90 s) leaves them to it",
            parent.path.display()
        ),
        "set: keepalive by the program, idle by the attachment, count by the attachment, \
         user timeout by the program"
            .to_string(),
        "the program set its own TCP_USER_TIMEOUT (3000 ms)".to_string(),
        "count is moot".to_string(),
    ] {
        assert!(json.contains(&expected), "{expected:?} not in {json}");
    }
}

/// Issue 19 item 7: under `--override` our values replace the program's
/// own for the options we set, before connect() (Go's listener, a C
/// program's setsockopt) and after it (Go's dialer), on both ends.
#[test]
fn override_replaces_the_programs_own_values() {
    root();
    let base = ["--idle", "5", "--interval", "2"];
    let own = ["idle=99", "after:idle=77", "after:intvl=30"];
    assert_seen(
        &bpf_connect(&base, "127.0.0.1", &own),
        "keepalive=1 idle=77 intvl=30 cnt=9 user_timeout=0",
        "the program wins by default",
    );
    let overriding = ["--override", "--idle", "5", "--interval", "2"];
    let ours = "keepalive=1 idle=5 intvl=2 cnt=9 user_timeout=0";
    assert_seen(
        &bpf_connect(&overriding, "127.0.0.1", &own),
        ours,
        "C client under --override",
    );
    let port = common::free_port();
    let mut cmd = keepalive();
    cmd.arg("--bpf").args(overriding).arg(probe());
    cmd.args(["accept", "127.0.0.1", &port.to_string()]);
    assert_seen(
        &accepted(cmd, port, &own),
        ours,
        "C server under --override",
    );
    // A rule's override=on, for its connections only.
    let rule = [
        "--idle",
        "5",
        "--rule",
        "net=127.0.0.0/8:intvl=2,override=on",
    ];
    assert_seen(
        &bpf_connect(&rule, "127.0.0.1", &own),
        ours,
        "rule with override=on",
    );
    // Go's default dialer sets idle and interval (15 s) after connect().
    let port = peer("127.0.0.1");
    let mut cmd = keepalive();
    cmd.args([
        "--bpf",
        "--override",
        "--idle",
        "5",
        "--interval",
        "1",
        "--count",
        "3",
    ])
    .arg(go_probe(false));
    cmd.args([&format!("127.0.0.1:{port}"), "default", "3000"]);
    assert_seen(
        &observe(cmd, port),
        "keepalive=1 idle=5 intvl=1 cnt=3 user_timeout=0",
        "Go, default dialer, --override",
    );
}

/// Issue 19 item 7, measured: a Go client with the default dialer under
/// `--bpf --override --idle 5 --interval 1 --count 3` notices its peer gone
/// in about 8 s (5 + 3 x 1), not Go's 15 + 15 x 3.
#[test]
fn a_go_client_under_override_notices_a_cut_peer_in_8_seconds() {
    root();
    let go = go_probe(false);
    let pair = Pair::new();
    let mut server = Command::new("nc");
    server.args(["-l", "5000"]);
    pair.server.enter(&mut server);
    let _server = Process::spawn(server, "nc server");
    pair.server.wait_listening(5000);
    let mut cmd = keepalive();
    cmd.args([
        "--bpf",
        "--override",
        "--idle",
        "5",
        "--interval",
        "1",
        "--count",
        "3",
    ]);
    cmd.arg(go)
        .args([&format!("{SERVER_ADDR}:5000"), "default", "wait"]);
    pair.client.enter(&mut cmd);
    let mut client = Running::spawn(cmd, "Go client");
    client.wait_stdout("connected", PROMPT).expect("connected");
    assert!(
        client.stdout().contains("idle=5 intvl=1 cnt=3"),
        "{}",
        client.stdout()
    );
    pair.server.vanish();
    let vanished = Instant::now();
    let (_, ended) = client
        .wait_exit(Duration::from_secs(14))
        .expect("the Go client never noticed its dead peer");
    let took = ended - vanished;
    eprintln!("Go client noticed its dead peer after {took:?} (budget 8 s)");
    assert!(
        client.stdout().contains("closed err=110"),
        "{}",
        client.stdout()
    );
    assert!(
        took >= Duration::from_secs(7) && took < Duration::from_secs(11),
        "{took:?}"
    );
}

/// Issue 19 item 10: `--status` warns when the library is loaded into a Go
/// program (here built with cgo, so ld.so does load it), whose sockets only
/// the kernel-side mode reaches.
#[test]
fn status_warns_when_the_library_is_loaded_into_a_go_program() {
    root();
    let go = go_probe(true);
    let port = peer("127.0.0.1");
    let mut cmd = common::command(&go, true, &[]);
    cmd.args([&format!("127.0.0.1:{port}"), "default", "20000"]);
    let client = Running::spawn(cmd, "Go client with the library");
    client.wait_stdout("connected", PROMPT).expect("connected");
    let mut cmd = keepalive();
    cmd.arg("--status")
        .arg(client.id().to_string())
        .arg("--json");
    let out = common::run(cmd, PROMPT);
    let json = common::stdout(&out);
    assert!(json.contains("\"library_loaded\":true"), "{json}");
    let warnings = json
        .split("\"warnings\":")
        .nth(1)
        .and_then(|rest| rest.split("\"notes\":").next())
        .unwrap_or_default();
    assert!(
        warnings.contains("this is a Go program, which makes its own system calls")
            && warnings.contains("keepalive --bpf"),
        "{json}"
    );
}

/// Where every attachment of ours finds the one socket record map.
const PIN: &str = "/sys/fs/bpf/keepalive/keepalive_sk";

/// The id of the map pinned at PIN, read with tests/c/bpfquery.c.
fn pinned_map_id() -> String {
    let mut cmd = Command::new(build_c("bpfquery", "bpfquery", &[]));
    cmd.args(["--pinned", PIN]);
    let out = common::run(cmd, PROMPT);
    assert!(out.status.success(), "no pin: {}", common::stderr(&out));
    let line = common::stdout(&out);
    assert!(line.contains("keepalive_sk"), "{line}");
    line.split_whitespace().next().unwrap().to_string()
}

/// The ids of the maps each of our programs on `cgroup` uses, one list a
/// program.
fn our_programs_maps(cgroup: &Path) -> Vec<Vec<String>> {
    let mut cmd = Command::new(build_c("bpfquery", "bpfquery", &[]));
    cmd.arg(cgroup).arg("maps");
    let out = common::run(cmd, PROMPT);
    assert!(out.status.success(), "bpfquery: {}", common::stderr(&out));
    common::stdout(&out)
        .lines()
        .filter(|l| l.starts_with("keepalive_"))
        .map(|l| l.split_whitespace().skip(1).map(str::to_string).collect())
        .collect()
}

/// An empty directory of the test's, removed on drop: the mount points of
/// mount namespaces the test makes (their mounts go with the namespace).
struct MountPoint(PathBuf);

impl MountPoint {
    fn new(role: &str) -> MountPoint {
        let path = std::env::temp_dir().join(format!("ka19-{role}-{}", std::process::id()));
        fs::create_dir_all(&path).unwrap();
        MountPoint(path)
    }
}

impl Drop for MountPoint {
    fn drop(&mut self) {
        let _ = fs::remove_dir(&self.0);
    }
}

/// `keepalive --attach INNER_DIR OPTIONS` run in a cgroup namespace rooted
/// at `root` (its own cgroup2 mount at `mount`, so its own cgroup2 root and
/// lock), in a mount namespace of its own; `inner` is the target's path in it.
fn attach_from_a_cgroup_namespace(
    mount: &Path,
    root: &TestCgroup,
    inner: &str,
    options: &[&str],
) -> Command {
    let mut cmd = common::command("unshare", false, &[]);
    cmd.args(["-C", "-m", "--propagation", "private", "sh", "-c"]);
    cmd.arg(r#"mount -t cgroup2 none "$1" && shift && exec "$@""#);
    cmd.arg("sh")
        .arg(mount)
        .arg(env!("CARGO_BIN_EXE_keepalive"));
    cmd.arg("--attach").arg(mount.join(inner)).args(options);
    root.enter(&mut cmd);
    cmd
}

/// Runs from different cgroup2 roots (a container's cgroup namespace and
/// the host's: different cgroup locks) share the one socket record map: it
/// is pinned in bpffs, mounted at /sys/fs/bpf if it was not, and made under
/// a lock in bpffs. Attached at once from several roots, every program of
/// ours uses the pinned map, so nesting across them holds.
#[test]
fn the_shared_map_is_pinned_and_shared_across_cgroup_roots() {
    root();
    let host = TestCgroup::top("pin-host");
    host.attach(&["--idle", "25"]);
    let out = common::run(
        {
            let mut cmd = Command::new("stat");
            cmd.args(["-f", "-c", "%T", "/sys/fs/bpf"]);
            cmd
        },
        PROMPT,
    );
    assert_eq!(
        common::stdout(&out).trim(),
        "bpf_fs",
        "bpffs at /sys/fs/bpf"
    );
    let pinned = pinned_map_id();
    let mount = MountPoint::new("cgroup2");
    let roots: Vec<TestCgroup> = (0..3).map(|_| TestCgroup::top("pin-root")).collect();
    let inner: Vec<TestCgroup> = roots
        .iter()
        .map(|root| TestCgroup::new(&root.path, "pod"))
        .collect();
    let mut runs = Vec::new();
    for (root, pod) in roots.iter().zip(&inner) {
        let name = pod.path.file_name().unwrap().to_str().unwrap();
        let mut cmd = attach_from_a_cgroup_namespace(&mount.0, root, name, &["--idle", "31"]);
        cmd.stdout(Stdio::null()).stderr(Stdio::piped());
        runs.push(cmd.spawn().unwrap());
        let mut cmd = keepalive();
        cmd.arg("--attach").arg(&root.path).args(["--idle", "61"]);
        cmd.stderr(Stdio::piped());
        runs.push(cmd.spawn().unwrap());
    }
    for run in runs {
        let out = run.wait_with_output().unwrap();
        assert!(out.status.success(), "{}", common::stderr(&out));
    }
    for cgroup in std::iter::once(&host).chain(&roots).chain(&inner) {
        let programs = our_programs_maps(&cgroup.path);
        assert_eq!(programs.len(), 2, "{}", cgroup.path.display());
        for maps in programs {
            assert!(
                maps.contains(&pinned),
                "{}: maps {maps:?}, pinned {pinned}",
                cgroup.path.display()
            );
        }
    }
    // Nesting across the roots holds: the pod's attachment, made from the
    // container's root, decides; its outer one, made from the host's,
    // leaves the connection to it.
    assert_seen(
        &connect_in(&inner[0], &["keepalive=1"]),
        "keepalive=1 idle=31 intvl=75 cnt=9 user_timeout=0",
        "inner attachment made from a cgroup namespace",
    );
    assert_eq!(pinned_map_id(), pinned, "the pin stays");
}

/// Where bpffs cannot be mounted (no /sys/fs/bpf: here /sys is unmounted
/// in a mount namespace of the test's), the attach still works, finds the
/// shared map by name, and says why in one line.
#[test]
fn without_bpffs_the_map_is_found_by_name_and_the_line_says_why() {
    root();
    let host = TestCgroup::top("nobpffs-host");
    host.attach(&["--idle", "25"]); // makes sure the pin exists
    let pinned = pinned_map_id();
    let cgroup = TestCgroup::top("nobpffs");
    let relative = cgroup.path.strip_prefix(cgroup2_mount()).unwrap();
    let mount = MountPoint::new("nobpffs");
    let mount = &mount.0;
    let mut cmd = common::command("unshare", false, &[]);
    cmd.args(["-m", "--propagation", "private", "sh", "-c"]);
    cmd.arg(r#"mount --bind "$1" "$2" && umount -l /sys && shift 2 && exec "$@""#);
    cmd.arg("sh").arg(cgroup2_mount()).arg(mount);
    cmd.arg(env!("CARGO_BIN_EXE_keepalive"))
        .arg("--attach")
        .arg(mount.join(relative))
        .args(["--idle", "41"]);
    let out = common::run(cmd, PROMPT);
    let err = common::stderr(&out);
    assert!(out.status.success(), "{err}");
    assert!(
        err.contains("bpffs is not mounted at /sys/fs/bpf and cannot be")
            && err.contains("found by its name"),
        "{err}"
    );
    assert_eq!(
        err.lines().filter(|l| l.contains("cannot be")).count(),
        1,
        "{err}"
    );
    for maps in our_programs_maps(&cgroup.path) {
        assert!(maps.contains(&pinned), "maps {maps:?}, pinned {pinned}");
    }
    assert_seen(
        &connect_in(&cgroup, &[]),
        "keepalive=1 idle=41 intvl=75 cnt=9 user_timeout=0",
        "attached without bpffs",
    );
}

/// A probe `connect`ing from inside `cgroup` to a fresh peer on `address`
/// with `words`: the static one, or with `preload` the dynamic build with
/// the library preloaded and `env` (our variables only from there).
fn connect_from(
    cgroup: &TestCgroup,
    address: &str,
    words: &[&str],
    preload: Option<&[(&str, &str)]>,
) -> Seen {
    let port = peer(address);
    let mut cmd = match preload {
        None => common::command(probe(), false, &[]),
        Some(env) => common::command(build_c("bpfprobe", "bpfprobe-dynamic", &[]), true, env),
    };
    cmd.args(["connect", address, &port.to_string(), HOLD])
        .args(words);
    cgroup.enter(&mut cmd);
    observe(cmd, port)
}

/// Features combined: a rule with `override=on` in a workload's attachment
/// nested under a node-wide one. The rule's connections get the rule's
/// values over the program's own (before and after connect), the others
/// the inner attachment's with the program's own idle kept, and nothing of
/// the outer one (its user timeout) reaches either.
#[test]
fn a_rule_with_override_in_a_nested_attachment_under_a_node_default() {
    root();
    let node = TestCgroup::top("combo-node");
    let pod = TestCgroup::new(&node.path, "pod");
    node.attach(&["--idle", "100", "--user-timeout", "7000"]);
    pod.attach(&[
        "--idle",
        "40",
        "--rule",
        "net=127.0.0.2:idle=20,cnt=3,override=on",
    ]);
    assert_seen(
        &connect_from(&pod, "127.0.0.2", &["idle=77", "after:idle=78"], None),
        "keepalive=1 idle=20 intvl=75 cnt=3 user_timeout=0",
        "the rule's connection, the program's own idle overridden",
    );
    assert_seen(
        &connect_from(&pod, "127.0.0.1", &["idle=77"], None),
        "keepalive=1 idle=77 intvl=75 cnt=9 user_timeout=0",
        "another connection: the inner global settings, the program's idle wins",
    );
    assert_seen(
        &connect_from(&node, "127.0.0.2", &[], None),
        "keepalive=1 idle=100 intvl=75 cnt=9 user_timeout=7000",
        "outside the pod: the node default, no rule",
    );
}

/// Features combined: a preset (`--path`) on a workload's attachment under
/// a node default: the preset's timers apply there, also to a program that
/// sets SO_KEEPALIVE=1 itself, and the node default elsewhere.
#[test]
fn a_preset_on_an_inner_attachment_under_an_outer_default() {
    root();
    let node = TestCgroup::top("preset-node");
    let pod = TestCgroup::new(&node.path, "pod");
    node.attach(&["--idle", "300"]);
    pod.attach(&["--path", "aws-nlb"]);
    let preset = "keepalive=1 idle=100 intvl=30 cnt=5 user_timeout=0";
    assert_seen(
        &connect_from(&pod, "127.0.0.1", &[], None),
        preset,
        "aws-nlb",
    );
    assert_seen(
        &connect_from(&pod, "127.0.0.1", &["keepalive=1"], None),
        preset,
        "aws-nlb, the program's own SO_KEEPALIVE=1",
    );
    assert_seen(
        &connect_from(&node, "127.0.0.1", &[], None),
        "keepalive=1 idle=300 intvl=75 cnt=9 user_timeout=0",
        "the node default",
    );
}

/// Features combined: the library preloaded into a C program inside an
/// attached cgroup, override on one side only. To the attachment the
/// library's calls are the program's own (they come from inside the
/// process), so the result is that of "the program wins" with the library
/// as the program: the attachment's override beats the library's values;
/// without it the library's values stand (its own override included), and
/// the attachment sets the options neither set.
#[test]
fn the_library_inside_an_attachment_with_override_on_one_side() {
    root();
    let cgroup = TestCgroup::top("preload-override");
    let words = ["idle=77", "after:idle=78"];
    cgroup.attach(&["--idle", "20", "--count", "3", "--override"]);
    assert_seen(
        &connect_from(
            &cgroup,
            "127.0.0.1",
            &words,
            Some(&[("KEEPIDLE", "60"), ("KEEPCNT", "5")]),
        ),
        "keepalive=1 idle=20 intvl=75 cnt=3 user_timeout=0",
        "the attachment overrides, the library does not: the attachment's values",
    );
    cgroup.attach(&["--idle", "20", "--count", "3"]);
    assert_seen(
        &connect_from(
            &cgroup,
            "127.0.0.1",
            &words,
            Some(&[("KEEPIDLE", "60"), ("KEEPALIVE_OVERRIDE", "on")]),
        ),
        "keepalive=1 idle=60 intvl=75 cnt=3 user_timeout=0",
        "the library overrides, the attachment does not: the library's idle, the \
         attachment's count",
    );
    assert_seen(
        &connect_from(&cgroup, "127.0.0.1", &words, Some(&[("KEEPIDLE", "60")])),
        "keepalive=1 idle=78 intvl=75 cnt=3 user_timeout=0",
        "neither overrides: the program's own idle",
    );
}

/// Features combined: KEEPALIVE_PROGRAMS in the environment of `--attach`
/// on a workload under a node default is refused (exit 125, one line),
/// attaches nothing, and leaves the node default in force there.
#[test]
fn keepalive_programs_under_attach_is_refused_in_a_nested_cgroup() {
    root();
    let node = TestCgroup::top("programs-node");
    let pod = TestCgroup::new(&node.path, "pod");
    node.attach(&["--idle", "50"]);
    let mut cmd = keepalive();
    cmd.env("KEEPALIVE_PROGRAMS", "redis-server")
        .arg("--attach")
        .arg(&pod.path)
        .args(["--idle", "5"]);
    let out = common::run(cmd, PROMPT);
    let err = common::stderr(&out);
    assert_eq!(out.status.code(), Some(125), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("KEEPALIVE_PROGRAMS"), "{err}");
    assert_eq!(attached_programs(&pod.path), 0);
    assert_seen(
        &connect_from(&pod, "127.0.0.1", &[], None),
        "keepalive=1 idle=50 intvl=75 cnt=9 user_timeout=0",
        "the node default, nothing of the refused attach",
    );
}

/// Concurrent `--attach` on one cgroup from different cgroup2 roots (the
/// host's, and a cgroup namespace's such as a container's: different
/// cgroup locks) still leave exactly one pair of ours: they also take the
/// lock in bpffs, which does not depend on the cgroup2 root.
#[test]
fn concurrent_attaches_from_different_cgroup_roots_leave_one_pair() {
    root();
    let mount = MountPoint::new("cgroup2-one-pair");
    let outer = TestCgroup::top("one-pair-root");
    let target = TestCgroup::new(&outer.path, "target");
    let name = target.path.file_name().unwrap().to_str().unwrap();
    let runs: Vec<_> = (0..8)
        .map(|i| {
            let idle = (20 + i).to_string();
            let mut cmd = if i % 2 == 0 {
                attach_from_a_cgroup_namespace(&mount.0, &outer, name, &["--idle", &idle])
            } else {
                let mut cmd = keepalive();
                cmd.arg("--attach")
                    .arg(&target.path)
                    .args(["--idle", &idle]);
                cmd
            };
            cmd.stdout(Stdio::null()).stderr(Stdio::piped());
            cmd.spawn().unwrap()
        })
        .collect();
    for run in runs {
        let out = run.wait_with_output().unwrap();
        assert!(out.status.success(), "{}", common::stderr(&out));
    }
    assert_eq!(
        attached_programs(&target.path),
        2,
        "one sock_ops and one setsockopt"
    );
}
