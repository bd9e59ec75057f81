//! The node agent (`keepalive --agent`), end to end and as root. Each test
//! runs its own agent on a cgroup of its own (never the host's root), puts
//! workloads in child cgroups, and reads each connection back from inside
//! (the probe's getsockopt) and from outside (`ss`'s keepalive timer).
//! Every cgroup, attachment and process a test makes is removed by a Drop
//! guard, also when it fails.
//!
//! Workloads start as a container's entrypoint does: a shell with the
//! workload's environment that execs the program. The agent attaches on the
//! shell's exec; a socket made before that gets the node default (the
//! window measured in `the_window_between_exec_and_attachment_is_logged`),
//! so the shell of a workload with variables waits until `bpftool` shows
//! the attachment on its cgroup before it execs the probe.

mod common;

use common::cgroups::{cgroup2_mount, TestCgroup};
use common::kernel_side::{dynamic_probe, keepalive, peer, probe, HOLD, PROMPT, UNTOUCHED};
use common::netns::{preflight, Process};
use common::seen::{assert_seen, Seen};
use common::{field, fields, wait_for};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

/// A running agent. Dropped, it gets SIGTERM (as Kubernetes stops a pod)
/// and must exit 0 promptly.
struct Agent {
    process: Process,
    ready: PathBuf,
}

impl Agent {
    fn start(cgroup: &Path, options: &[&str]) -> Agent {
        static COUNTER: AtomicUsize = AtomicUsize::new(0);
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let ready = std::env::temp_dir().join(format!("katest20-{}-{n}.ready", std::process::id()));
        let mut cmd = keepalive();
        cmd.arg("--agent")
            .args(options)
            .arg("--ready")
            .arg(&ready)
            .arg(cgroup);
        Agent::spawn(cmd, ready)
    }

    fn spawn(cmd: Command, ready: PathBuf) -> Agent {
        let process = Process::spawn_with(cmd, "agent", false);
        let agent = Agent { process, ready };
        // The ready file (also written under --quiet).
        wait_for(PROMPT, || agent.ready.exists().then_some(()))
            .unwrap_or_else(|| panic!("agent not ready:\n{}", agent.log()));
        agent
    }

    fn log(&self) -> String {
        self.process.stderr()
    }

    /// Waits for a log line containing every one of `words`; returns it.
    fn wait_line(&self, words: &[&str]) -> String {
        wait_for(PROMPT, || {
            self.log()
                .lines()
                .find(|line| words.iter().all(|w| line.contains(w)))
                .map(str::to_string)
        })
        .unwrap_or_else(|| panic!("agent log has no line with {words:?}:\n{}", self.log()))
    }

    /// The agent's own count of its attachments (its --ready file).
    fn count(&self) -> usize {
        let text = fs::read_to_string(&self.ready).unwrap_or_default();
        text.trim()
            .strip_prefix("attachments ")
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("ready file {:?}", text))
    }

    /// SIGTERM (or `signal`); returns its exit code and its log.
    fn stop_with(mut self, signal: i32) -> (Option<i32>, String) {
        // SAFETY: kill(2) on our own child, not yet reaped.
        unsafe { libc::kill(self.process.id() as i32, signal) };
        let status = self.process.wait_exit(PROMPT).map(|(status, _)| status);
        let status = status.unwrap_or_else(|| panic!("agent did not end on signal {signal}"));
        // The stderr collector may still be reading the last lines.
        std::thread::sleep(Duration::from_millis(100));
        (status.code(), self.log())
    }

    fn stop(self) -> (Option<i32>, String) {
        self.stop_with(libc::SIGTERM)
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        // SAFETY: kill(2) on our own child (harmless if it already ended).
        unsafe { libc::kill(self.process.id() as i32, libc::SIGTERM) };
        let _ = self.process.wait_exit(PROMPT);
        let _ = fs::remove_file(&self.ready);
    }
}

/// A workload in `cgroup`: an entrypoint shell with `env` that execs
/// `program connect 127.0.0.1 PORT hold` (once its attachment is there, if
/// `env` has our variables); waits for its connection.
fn workload_in(cgroup: &TestCgroup, env: &[(&str, &str)], program: &Path) -> Seen {
    let ours = env
        .iter()
        .any(|(name, _)| common::our_variables().any(|v| v == *name));
    run_workload(cgroup, env, program, ours)
}

/// `workload_in`, waiting for an attachment on the cgroup if `attached`.
fn run_workload(cgroup: &TestCgroup, env: &[(&str, &str)], program: &Path, attached: bool) -> Seen {
    let port = peer("127.0.0.1");
    let wait = if attached {
        format!(
            "until bpftool cgroup show {} | grep -q keepalive_ops; do sleep 0.02; done; ",
            cgroup.path.display()
        )
    } else {
        String::new()
    };
    let script = format!(
        "{wait}exec {} connect 127.0.0.1 {port} {HOLD}",
        program.display()
    );
    let mut cmd = common::command("sh", false, env);
    cmd.args(["-c", &script]);
    cgroup.enter(&mut cmd);
    let process = Process::spawn(cmd, "workload");
    Seen::of(&process, port, PROMPT)
}

fn workload(cgroup: &TestCgroup, env: &[(&str, &str)]) -> Seen {
    workload_in(cgroup, env, &probe())
}

/// Our programs attached to `cgroup` itself, as bpftool lists them.
fn attached(cgroup: &Path) -> usize {
    let out = Command::new("bpftool")
        .args(["cgroup", "show"])
        .arg(cgroup)
        .output()
        .expect("bpftool not found: apt-get install -y bpftool");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| l.contains("keepalive_"))
        .count()
}

/// Our programs anywhere in the tree under `cgroup` (`bpftool cgroup tree`).
fn attached_in_tree(cgroup: &Path) -> usize {
    let out = Command::new("bpftool")
        .args(["cgroup", "tree"])
        .arg(cgroup)
        .output()
        .expect("bpftool not found: apt-get install -y bpftool");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| l.contains("keepalive_"))
        .count()
}

fn root() {
    preflight();
}

#[test]
fn node_default_own_variables_and_a_bad_value() {
    root();
    let node = TestCgroup::top("node");
    let agent = Agent::start(&node.path, &["--idle", "40", "--count", "4"]);
    agent.wait_line(&["configured", "node default", "KEEPIDLE=40 KEEPCNT=4"]);
    // A workload without our variables gets the node default.
    let plain = node.child("plain");
    let seen = workload(&plain, &[]);
    assert_seen(
        &seen,
        "keepalive=1 idle=40 intvl=75 cnt=4 user_timeout=0",
        "node default",
    );
    // Its own variables win setting by setting; the node's count stays.
    let own = node.child("own");
    let seen = workload(&own, &[("KEEPIDLE", "33"), ("HOSTNAME", "web-7d9")]);
    assert_seen(
        &seen,
        "keepalive=1 idle=33 intvl=75 cnt=4 user_timeout=0",
        "own variables over the node default",
    );
    let line = agent.wait_line(&["configured", own.path.to_str().unwrap()]);
    assert!(
        line.contains("pod web-7d9") && line.contains("KEEPIDLE=33"),
        "{line}"
    );
    assert!(
        !line.contains("PATH="),
        "only our variables are logged: {line}"
    );
    // A bad value: one line naming the cgroup and the process, the rest applies.
    let bad = node.child("bad");
    let seen = workload(&bad, &[("KEEPIDLE", "banana"), ("KEEPINTVL", "11")]);
    let words = fields(&seen.options);
    assert_eq!(field(&words, "keepalive"), "1", "{}", seen.options);
    assert_eq!(field(&words, "intvl"), "11", "the valid value applies");
    let line = agent.wait_line(&[bad.path.to_str().unwrap(), "KEEPIDLE=\"banana\""]);
    assert!(line.contains("(pid "), "names the process: {line}");
    // The "configured" line lists what was applied, never the bad value.
    let line = agent.wait_line(&["configured", &format!("{}:", bad.path.display())]);
    assert!(
        line.contains("KEEPINTVL=11") && !line.contains("KEEPIDLE") && !line.contains("banana"),
        "{line}"
    );
    assert_eq!(
        agent.count(),
        3,
        "node default + 2 workloads with variables"
    );
    let (code, log) = agent.stop();
    assert_eq!(code, Some(0), "{log}");
    assert_eq!(
        attached(&node.path) + attached_in_tree(&node.path),
        0,
        "{log}"
    );
}

/// A workload's variables layer over the node default as if added in front
/// of the agent's environment: a path as the node default, the workload's
/// own count, gives the path's idle and interval with that count (not the
/// kernel's 7200 s idle, which the path exists to avoid).
#[test]
fn a_workload_count_layers_over_the_node_path() {
    root();
    let node = TestCgroup::top("layer");
    let agent = Agent::start(&node.path, &["--path", "aws-nlb"]);
    let count = node.child("count");
    assert_seen(
        &workload(&count, &[("KEEPCNT", "4")]),
        "keepalive=1 idle=100 intvl=30 cnt=4 user_timeout=0",
        "aws-nlb with the workload's KEEPCNT=4",
    );
    // Its own path replaces the node's timers, except those it sets.
    let path = node.child("path");
    assert_seen(
        &workload(&path, &[("KEEPALIVE_PATH", "azure-lb"), ("KEEPINTVL", "7")]),
        "keepalive=1 idle=60 intvl=7 cnt=5 user_timeout=0",
        "the workload's own path",
    );
    assert_eq!(agent.stop().0, Some(0));
}

/// Needs the innermost-decides composition of the kernel-side mode (issue
/// 19): before it, the node default's attachment still configured a
/// connection its inner attachment left alone.
#[test]
fn keepalive_off_in_a_workload_opts_out_of_the_node_default() {
    root();
    let node = TestCgroup::top("optout");
    let agent = Agent::start(&node.path, &["--idle", "40"]);
    let off = node.child("off");
    let seen = workload(&off, &[("KEEPALIVE", "off")]);
    agent.wait_line(&["configured", off.path.to_str().unwrap(), "KEEPALIVE=off"]);
    assert_seen(&seen, UNTOUCHED, "KEEPALIVE=off");
    assert_eq!(agent.stop().0, Some(0));
}

#[test]
fn a_workload_that_also_preloads_the_library_gets_the_same_values() {
    root();
    let node = TestCgroup::top("preload");
    let agent = Agent::start(&node.path, &["--idle", "40"]);
    let env = [("KEEPIDLE", "33"), ("KEEPCNT", "3")];
    let expected = "keepalive=1 idle=33 intvl=75 cnt=3 user_timeout=0";
    let agent_only = node.child("agent-only");
    assert_seen(
        &workload_in(&agent_only, &env, &dynamic_probe()),
        expected,
        "agent only",
    );
    let both = node.child("both");
    let library = common::library().to_str().unwrap().to_string();
    let mut with_preload = env.to_vec();
    with_preload.push(("LD_PRELOAD", &library));
    assert_seen(
        &workload_in(&both, &with_preload, &dynamic_probe()),
        expected,
        "agent and library",
    );
    drop(agent);
    // The library alone (no attachment left): the same again.
    let alone = TestCgroup::top("library-alone");
    let seen = run_workload(&alone, &with_preload, &dynamic_probe(), false);
    assert_seen(&seen, expected, "library alone");
}

#[test]
fn nested_cgroups_the_innermost_workload_decides() {
    root();
    let node = TestCgroup::top("nested");
    let agent = Agent::start(&node.path, &["--idle", "40"]);
    let outer = node.child("pod");
    let inner = outer.child("container");
    // The outer cgroup gets its own attachment from a process of its own.
    let mut holder = common::command("sh", false, &[("KEEPIDLE", "50")]);
    holder.args(["-c", "exec sleep 30"]);
    outer.enter(&mut holder);
    let _holder = Process::spawn(holder, "outer workload");
    agent.wait_line(&[
        "configured",
        &format!("{}:", outer.path.display()),
        "KEEPIDLE=50",
    ]);
    let seen = workload(&inner, &[("KEEPIDLE", "20")]);
    assert_seen(
        &seen,
        "keepalive=1 idle=20 intvl=75 cnt=9 user_timeout=0",
        "innermost",
    );
    // Below the outer one without variables of its own: the outer's.
    let bare = outer.child("bare");
    let seen = workload(&bare, &[]);
    assert_seen(
        &seen,
        "keepalive=1 idle=50 intvl=75 cnt=9 user_timeout=0",
        "outer",
    );
    assert_eq!(agent.stop().0, Some(0));
}

#[test]
fn restart_adopts_sigterm_detaches_persist_keeps() {
    root();
    let node = TestCgroup::top("restart");
    let work = node.child("work");
    let mut holder = common::command("sh", false, &[("KEEPIDLE", "50")]);
    holder.args(["-c", "exec sleep 60"]);
    work.enter(&mut holder);
    let _holder = Process::spawn(holder, "workload");
    // First run with --persist: its attachments stay after SIGTERM.
    let first = Agent::start(&node.path, &["--idle", "40", "--persist"]);
    first.wait_line(&["configured", work.path.to_str().unwrap(), "KEEPIDLE=50"]);
    let (code, log) = first.stop();
    assert_eq!(code, Some(0), "{log}");
    assert!(log.contains("left in place (--persist)"), "{log}");
    assert_eq!(
        (attached(&node.path), attached(&work.path)),
        (2, 2),
        "{log}"
    );
    let seen = workload(&node.child("between"), &[]);
    assert_seen(
        &seen,
        "keepalive=1 idle=40 intvl=75 cnt=9 user_timeout=0",
        "no gap",
    );
    // Restarted: it adopts them (the walk finds the running workload) and
    // stacks nothing.
    let second = Agent::start(&node.path, &["--idle", "45"]);
    second.wait_line(&["configured (adopted)", "node default"]);
    second.wait_line(&["configured (adopted)", work.path.to_str().unwrap()]);
    assert_eq!((attached(&node.path), attached(&work.path)), (2, 2));
    let seen = workload(&node.child("after"), &[]);
    assert_seen(
        &seen,
        "keepalive=1 idle=45 intvl=75 cnt=9 user_timeout=0",
        "new default",
    );
    // SIGINT (as SIGTERM) detaches everything it attached and exits 0.
    let (code, log) = second.stop_with(libc::SIGINT);
    assert_eq!(code, Some(0), "{log}");
    assert_eq!(attached_in_tree(&node.path), 0, "{log}");
    let seen = workload(&node.child("gone"), &[]);
    assert_seen(&seen, UNTOUCHED, "detached");
}

/// A --persist run's attachment whose workload has gone (its cgroup stays,
/// empty): the next run adopts it at start, counts it, and releases it on
/// SIGTERM with the rest.
#[test]
fn restart_adopts_an_attachment_whose_workload_is_gone() {
    root();
    let node = TestCgroup::top("leftover");
    let work = node.child("work");
    {
        let mut holder = common::command("sh", false, &[("KEEPIDLE", "50")]);
        holder.args(["-c", "exec sleep 60"]);
        work.enter(&mut holder);
        let _holder = Process::spawn(holder, "workload");
        let first = Agent::start(&node.path, &["--idle", "40", "--persist"]);
        first.wait_line(&["configured", work.path.to_str().unwrap(), "KEEPIDLE=50"]);
        let (code, log) = first.stop();
        assert_eq!(code, Some(0), "{log}");
    }
    wait_for(PROMPT, || {
        fs::read_to_string(work.path.join("cgroup.procs"))
            .is_ok_and(|procs| procs.trim().is_empty())
            .then_some(())
    })
    .expect("the workload's process is gone");
    assert_eq!(attached(&work.path), 2, "persisted");
    let second = Agent::start(&node.path, &["--idle", "40"]);
    second.wait_line(&["adopted", &format!("{}:", work.path.display())]);
    assert_eq!(second.count(), 2, "node default + the adopted one");
    let (code, log) = second.stop();
    assert_eq!(code, Some(0), "{log}");
    assert!(
        log.contains(&format!("released {}:", work.path.display())),
        "{log}"
    );
    assert_eq!(attached_in_tree(&node.path), 0, "{log}");
}

#[test]
fn the_window_between_exec_and_attachment_is_logged() {
    root();
    let node = TestCgroup::top("window");
    let agent = Agent::start(&node.path, &[]);
    let mut windows = Vec::new();
    for i in 0..20 {
        let cgroup = node.child(&format!("w{i}"));
        let mut cmd = common::command("sleep", false, &[("KEEPIDLE", "30")]);
        cmd.arg("5");
        cgroup.enter(&mut cmd);
        let _running = Process::spawn(cmd, "sleeper");
        let line = agent.wait_line(&["configured", &format!("{}:", cgroup.path.display())]);
        let ms: f64 = line
            .rsplit_once(" ms after its exec")
            .and_then(|(left, _)| {
                left.rsplit(' ')
                    .next()?
                    .trim_start_matches('(')
                    .parse()
                    .ok()
            })
            .unwrap_or_else(|| panic!("no window in {line}"));
        windows.push(ms);
    }
    windows.sort_by(f64::total_cmp);
    eprintln!(
        "exec -> attachment: median {:.1} ms, max {:.1} ms over {} cgroups",
        windows[windows.len() / 2],
        windows[windows.len() - 1],
        windows.len()
    );
    assert!(windows[windows.len() / 2] < 1000.0, "{windows:?}");
}

#[test]
fn two_hundred_cgroups_come_and_go_leaving_nothing() {
    root();
    let node = TestCgroup::top("churn");
    let agent = Agent::start(&node.path, &["--quiet"]);
    for i in 0..200 {
        let cgroup = node.child(&format!("c{i}"));
        let mut cmd = common::command("sleep", false, &[("KEEPIDLE", "30")]);
        cmd.arg("30");
        cgroup.enter(&mut cmd);
        let running = Process::spawn(cmd, "sleeper");
        if i % 2 == 0 {
            // Half wait for their attachment; the others go at once, maybe
            // before the agent read them.
            wait_for(PROMPT, || (attached(&cgroup.path) == 2).then_some(()))
                .unwrap_or_else(|| panic!("cgroup {i} not configured"));
        }
        drop(running);
        drop(cgroup);
    }
    // The agent notices every removal within its sweep.
    wait_for(PROMPT, || (agent.count() == 1).then_some(()))
        .unwrap_or_else(|| panic!("agent still counts {}", agent.count()));
    assert_eq!(
        fs::read_dir(&node.path)
            .unwrap()
            .filter(|e| e.as_ref().unwrap().file_type().unwrap().is_dir())
            .count(),
        0
    );
    assert_eq!(attached_in_tree(&node.path), 2, "only the node default");
    let (code, log) = agent.stop();
    assert_eq!(code, Some(0));
    assert!(log.lines().count() < 5, "--quiet: {log}");
    assert_eq!(attached_in_tree(&node.path), 0);
}

#[test]
fn a_cgroup_v1_only_host_gets_a_private_cgroup2() {
    root();
    let node = TestCgroup::top("v1");
    let relative = node
        .path
        .strip_prefix(cgroup2_mount())
        .unwrap()
        .to_path_buf();
    // A mount namespace where no cgroup2 is mounted, as on a v1-only host.
    let unmounts: Vec<String> = fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .filter(|l| {
            l.split_once(" - ")
                .is_some_and(|(_, r)| r.starts_with("cgroup2 "))
        })
        .map(|l| format!("umount -l {};", l.split(' ').nth(4).unwrap()))
        .collect();
    let private = Path::new("/run/keepalive-agent/cgroup2").join(&relative);
    let ready = std::env::temp_dir().join(format!("katest20-{}-v1.ready", std::process::id()));
    let script = format!(
        "{} ! grep -q ' - cgroup2 ' /proc/self/mountinfo || exit 99; exec {} --agent --idle 41 --ready {} {}",
        unmounts.join(" "),
        env!("CARGO_BIN_EXE_keepalive"),
        ready.display(),
        private.display()
    );
    let mut cmd = common::command("unshare", false, &[]);
    cmd.args(["-m", "sh", "-c", &script]);
    let agent = Agent::spawn(cmd, ready);
    agent.wait_line(&[
        "no cgroup v2 hierarchy is mounted",
        "/run/keepalive-agent/cgroup2",
    ]);
    // The host's view of the same cgroup has the attachment.
    assert_eq!(attached(&node.path), 2, "{}", agent.log());
    let seen = workload(&node.child("w"), &[]);
    assert_seen(
        &seen,
        "keepalive=1 idle=41 intvl=75 cnt=9 user_timeout=0",
        "private cgroup2",
    );
    let (code, log) = agent.stop();
    assert_eq!(code, Some(0), "{log}");
    assert_eq!(attached(&node.path), 0, "{log}");
    // Without CAP_SYS_ADMIN it cannot mount one, and says exactly why.
    let mut cmd = common::command("unshare", false, &[]);
    let script = format!(
        "{} exec setpriv --inh-caps=-sys_admin --bounding-set=-sys_admin {} --agent {}",
        unmounts.join(" "),
        env!("CARGO_BIN_EXE_keepalive"),
        private.display()
    );
    cmd.args(["-m", "sh", "-c", &script]);
    let out = common::run(cmd, PROMPT);
    assert_eq!(out.status.code(), Some(125), "{}", common::stderr(&out));
    let message = common::stderr(&out);
    assert!(
        message.contains("cannot mount a private one") && message.contains("CAP_SYS_ADMIN"),
        "{message}"
    );
}

#[test]
fn status_all_names_the_attachment_and_marks_connections_at_risk() {
    root();
    let node = TestCgroup::top("status");
    let agent = Agent::start(&node.path, &["--idle", "40"]);
    let covered = node.child("covered");
    let port = peer("127.0.0.1");
    let start = |cgroup: Option<&TestCgroup>, words: &[&str]| {
        let mut cmd = Command::new(probe());
        cmd.args(["connect", "127.0.0.1", &port.to_string(), "hold=8000"]);
        cmd.args(words);
        if let Some(cgroup) = cgroup {
            cgroup.enter(&mut cmd);
        }
        let process = Process::spawn(cmd, "probe");
        process.wait_stdout("connected", PROMPT).unwrap();
        process
    };
    let inside = start(Some(&covered), &[]);
    let outside = start(None, &[]);
    // Its own idle, set before connect(): the program wins, and says so.
    let own_idle = start(Some(&covered), &["idle=300"]);
    // A shorter one than the attachment's: the timer alone cannot tell.
    let short_idle = start(Some(&covered), &["idle=20"]);
    // Keepalive off by the program: the attachment leaves it alone.
    let off = start(Some(&covered), &["keepalive=0"]);
    // Read-only: no descriptor is taken from any process.
    let trace = std::env::temp_dir().join(format!("katest20-{}-strace", std::process::id()));
    let mut cmd = Command::new("strace");
    cmd.args(["-f", "-e", "trace=pidfd_getfd,pidfd_open", "-o"])
        .arg(&trace)
        .arg(env!("CARGO_BIN_EXE_keepalive"))
        .args(["--status", "--all", "--json"]);
    let out = common::run(cmd, PROMPT);
    let traced = fs::read_to_string(&trace).unwrap_or_default();
    let _ = fs::remove_file(&trace);
    assert!(
        common::stdout(&out).contains("\"connections\""),
        "strace (apt-get install -y strace): {}",
        common::stderr(&out)
    );
    assert!(!traced.contains("pidfd_getfd"), "{traced}");
    let mut cmd = keepalive();
    cmd.args(["--status", "--all", "--path", "aws-nlb", "--json"]);
    let out = common::run(cmd, PROMPT);
    let text = common::stdout(&out);
    assert_eq!(out.status.code(), Some(1), "a connection at risk: {text}");
    let row_of = |pid: u32| {
        let key = format!("\"pid\":{pid},");
        text.split("{\"local\"")
            .find(|row| row.contains(&key))
            .unwrap_or_else(|| panic!("no row for pid {pid}: {text}"))
            .to_string()
    };
    let row = row_of(inside.id());
    assert!(row.contains("\"keepalive\":true"), "{row}");
    assert!(
        row.contains(&format!(
            "\"set_by\":\"attachment {}\"",
            node.path.display()
        )),
        "{row}"
    );
    assert!(row.contains("\"at_risk\":false"), "{row}");
    assert!(row.contains("\"set_by_inferred\":false"), "{row}");
    // Option by option, from the attachments' record of each socket.
    for pid in [own_idle.id(), short_idle.id()] {
        let row = row_of(pid);
        assert!(
            row.contains(&format!(
                "\"set_by\":\"attachment {} (keepalive), program (idle)\"",
                node.path.display()
            )),
            "{row}"
        );
        assert!(row.contains("\"idle\":\"program\""), "{row}");
    }
    // Without privileges the records cannot be read: inferred, and said.
    let mut cmd = Command::new("setpriv");
    cmd.args(["--reuid=65534", "--regid=65534", "--clear-groups"])
        .arg(env!("CARGO_BIN_EXE_keepalive"))
        .args(["--status", "--all", "--json"]);
    let unprivileged = common::stdout(&common::run(cmd, PROMPT));
    assert!(
        unprivileged.contains("\"set_by_inferred\":true")
            && !unprivileged.contains("\"set_by_inferred\":false"),
        "{unprivileged}"
    );
    let row = row_of(off.id());
    assert!(row.contains("\"keepalive\":false"), "{row}");
    assert!(
        row.contains("\"set_by\":\"program (SO_KEEPALIVE=0)\""),
        "{row}"
    );
    let row = row_of(outside.id());
    assert!(row.contains("\"keepalive\":false"), "{row}");
    assert!(row.contains("\"at_risk\":true"), "{row}");
    // The human view says the same.
    let mut cmd = keepalive();
    cmd.args(["--status", "--all", "--path", "aws-nlb"]);
    let out = common::run(cmd, PROMPT);
    let text = common::stdout(&out);
    let line = text
        .lines()
        .find(|l| l.contains(&format!("pid {} ", outside.id())))
        .unwrap_or_else(|| panic!("{text}"));
    assert!(line.contains("AT RISK: aws-nlb"), "{line}");
    drop(agent);
}

/// Workloads with the same settings share one loaded pair of programs; a
/// later `keepalive --attach` on one of their cgroups changes that cgroup
/// only (it replaces the pair there), never the others.
#[test]
fn attach_on_one_workload_leaves_the_others_sharing_its_settings() {
    root();
    let node = TestCgroup::top("shared");
    let agent = Agent::start(&node.path, &["--idle", "40"]);
    let env = [("KEEPIDLE", "33")];
    let expected = "keepalive=1 idle=33 intvl=75 cnt=9 user_timeout=0";
    let (first, second) = (node.child("first"), node.child("second"));
    assert_seen(&workload(&first, &env), expected, "first");
    assert_seen(&workload(&second, &env), expected, "second");
    let mut cmd = keepalive();
    cmd.arg("--attach").arg(&first.path).args(["--idle", "22"]);
    let out = common::run(cmd, PROMPT);
    assert!(out.status.success(), "{}", common::stderr(&out));
    assert_eq!((attached(&first.path), attached(&second.path)), (2, 2));
    let changed = "keepalive=1 idle=22 intvl=75 cnt=9 user_timeout=0";
    assert_seen(
        &run_workload(&first, &[], &probe(), false),
        changed,
        "first, changed",
    );
    assert_seen(
        &run_workload(&second, &[], &probe(), false),
        expected,
        "second, unchanged",
    );
    assert_eq!(agent.stop().0, Some(0));
}

/// `--off` as the node default: nothing for workloads without variables of
/// their own; those with them still get theirs.
#[test]
fn off_as_the_node_default_leaves_only_workloads_that_ask() {
    root();
    let node = TestCgroup::top("nodeoff");
    let agent = Agent::start(&node.path, &["--off"]);
    agent.wait_line(&["configured", "node default", "KEEPALIVE=off"]);
    assert_seen(
        &workload(&node.child("plain"), &[]),
        UNTOUCHED,
        "node default off",
    );
    let asks = node.child("asks");
    assert_seen(
        &workload(&asks, &[("KEEPIDLE", "33")]),
        "keepalive=1 idle=33 intvl=75 cnt=9 user_timeout=0",
        "its own variables",
    );
    assert_eq!(agent.stop().0, Some(0));
}

/// `keepalive --attach`'s pair on CGROUP_DIR itself is the user's: the agent
/// neither changes its settings nor detaches it on SIGTERM.
#[test]
fn attach_on_the_node_cgroup_is_left_alone() {
    root();
    let node = TestCgroup::top("userattach");
    node.attach(&["--idle", "45"]);
    let expected = "keepalive=1 idle=45 intvl=75 cnt=9 user_timeout=0";
    let agent = Agent::start(&node.path, &["--idle", "60"]);
    // The kernel's outcome first: the user's 45 decides, not the agent's 60.
    assert_seen(
        &workload(&node.child("during"), &[]),
        expected,
        "agent running",
    );
    agent.wait_line(&["not configured", "node default", "left alone"]);
    let (code, log) = agent.stop();
    assert_eq!(code, Some(0), "{log}");
    assert_eq!(attached(&node.path), 2, "{log}");
    assert_seen(
        &workload(&node.child("after"), &[]),
        expected,
        "agent stopped",
    );
}

/// `keepalive --attach`'s pair on a workload's cgroup keeps deciding there:
/// the workload's own variables do not replace it, and SIGTERM leaves it.
#[test]
fn attach_on_a_workload_cgroup_is_left_alone() {
    root();
    let node = TestCgroup::top("userwork");
    let work = node.child("work");
    work.attach(&["--idle", "45"]);
    let agent = Agent::start(&node.path, &["--idle", "60"]);
    let mut holder = common::command("env", false, &[("KEEPIDLE", "50")]);
    holder.args(["sleep", "25"]);
    work.enter(&mut holder);
    let _holder = Process::spawn(holder, "workload");
    // Once the agent has seen the workload (whatever it did), the kernel's
    // outcome first: the user's 45 decides, not the workload's 50.
    let line = agent.wait_line(&["configured", &format!("{}:", work.path.display())]);
    let expected = "keepalive=1 idle=45 intvl=75 cnt=9 user_timeout=0";
    let probe_in_work = || run_workload(&work, &[], &probe(), false);
    assert_seen(&probe_in_work(), expected, "agent running");
    assert!(
        line.contains("not configured")
            && line.contains("left alone: keepalive --attach's attachment"),
        "{line}"
    );
    assert_eq!(agent.count(), 1, "the node default only");
    let (code, log) = agent.stop();
    assert_eq!(code, Some(0), "{log}");
    assert_eq!(
        (attached(&node.path), attached(&work.path)),
        (0, 2),
        "{log}"
    );
    assert_seen(&probe_in_work(), expected, "agent stopped");
}

/// SIGHUP (a closed terminal, `kill -HUP`) stops the agent as SIGTERM
/// does: everything detached, the ready file removed, exit 0.
#[test]
fn sighup_detaches_and_exits_0() {
    root();
    let node = TestCgroup::top("sighup");
    let agent = Agent::start(&node.path, &["--idle", "40"]);
    let own = node.child("own");
    assert_seen(
        &workload(&own, &[("KEEPIDLE", "33")]),
        "keepalive=1 idle=33 intvl=75 cnt=9 user_timeout=0",
        "own variables",
    );
    let ready = agent.ready.clone();
    let (code, log) = agent.stop_with(libc::SIGHUP);
    assert_eq!(code, Some(0), "{log}");
    assert_eq!(attached_in_tree(&node.path), 0, "{log}");
    assert!(!ready.exists(), "ready file left: {log}");
}

/// stderr a pipe whose reader has gone: every log line fails (EPIPE), and
/// the agent still configures a new workload and detaches on SIGTERM.
#[test]
fn a_broken_stderr_pipe_neither_kills_nor_stops_the_agent() {
    root();
    let node = TestCgroup::top("epipe");
    let ready = std::env::temp_dir().join(format!("katest20-{}-epipe.ready", std::process::id()));
    let mut cmd = keepalive();
    cmd.args(["--agent", "--idle", "40", "--ready"])
        .arg(&ready)
        .arg(&node.path)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    // The reader goes before the agent's first line.
    drop(child.stderr.take());
    /// Killed and reaped even if the test fails.
    struct Reaped(std::process::Child, PathBuf);
    impl Drop for Reaped {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
            let _ = fs::remove_file(&self.1);
        }
    }
    let mut child = Reaped(child, ready.clone());
    wait_for(PROMPT, || ready.exists().then_some(()))
        .unwrap_or_else(|| panic!("agent not ready: {:?}", child.0.try_wait()));
    assert_seen(
        &workload(&node.child("own"), &[("KEEPIDLE", "33")]),
        "keepalive=1 idle=33 intvl=75 cnt=9 user_timeout=0",
        "configured with stderr broken",
    );
    // SAFETY: kill(2) on our own child, not yet reaped.
    unsafe { libc::kill(child.0.id() as i32, libc::SIGTERM) };
    let status = wait_for(PROMPT, || child.0.try_wait().ok().flatten())
        .expect("agent did not end on SIGTERM");
    assert_eq!(status.code(), Some(0), "{status:?}");
    assert_eq!(attached_in_tree(&node.path), 0);
}
