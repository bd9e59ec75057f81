//! A small network of our own for end-to-end tests: network namespaces joined
//! by veth pairs, with addresses chosen here (10.123.0.0/16), so no packet
//! ever leaves the machine or touches its real interfaces.
//!
//! Everything is torn down by `Drop`, so also when a test panics: processes
//! are killed and namespaces deleted. Names carry the process id and a
//! counter, so tests (and test binaries) run in parallel without clashing;
//! namespaces left behind by a test binary that was killed outright are
//! removed by the next `preflight()`. Every wait here is bounded.
//!
//! Needs root (namespaces, nft); `preflight()` says so, and names the
//! `apt-get install` command for any missing tool, instead of skipping.

pub use super::process::Process;
use std::fs::File;
use std::os::fd::AsRawFd;
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;
use std::time::Duration;

/// Prefix of every namespace we create; `preflight()` recognises leftovers by it.
const PREFIX: &str = "katest";

/// Any setup command (ip, nft, sysctl) that takes longer is broken.
const SETUP_DEADLINE: Duration = Duration::from_secs(10);

/// (program, Debian package that provides it).
const TOOLS: [(&str, &str); 6] = [
    ("ip", "iproute2"),
    ("ss", "iproute2"),
    ("nstat", "iproute2"),
    ("nft", "nftables"),
    ("nc", "netcat-openbsd"),
    ("socat", "socat"),
];

/// Checks once per test binary that we are root and every tool is there,
/// builds the library (so that its build never lands inside a measured
/// interval) and removes namespaces left by killed runs. Panics with the
/// reason; these tests never skip silently.
pub fn preflight() {
    static RESULT: OnceLock<Result<(), String>> = OnceLock::new();
    let result = RESULT.get_or_init(|| {
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } != 0 {
            return Err("the namespace tests need root (they create network namespaces, \
                 veth pairs and nft rules): run them as root, e.g. `sudo -E cargo test --test netns`"
                .to_string());
        }
        for (tool, package) in TOOLS {
            if find_in_path(tool).is_none() {
                return Err(format!(
                    "`{tool}` not found: apt-get install -y {package}"
                ));
            }
        }
        // Debian's default `nc` may be the traditional one, whose options differ.
        let help = Command::new("nc").arg("-h").output().map_err(|e| e.to_string())?;
        let help = String::from_utf8_lossy(&help.stderr) + String::from_utf8_lossy(&help.stdout);
        if !help.contains("OpenBSD") {
            return Err("`nc` is not OpenBSD netcat: apt-get install -y netcat-openbsd".into());
        }
        remove_leftovers();
        super::library();
        Ok(())
    });
    if let Err(reason) = result {
        panic!("{reason}");
    }
}

fn find_in_path(program: &str) -> Option<std::path::PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        // The sbin directories are not on every root PATH (e.g. `sudo`).
        .chain(["/usr/sbin".into(), "/sbin".into()])
        .map(|dir| dir.join(program))
        .find(|candidate| candidate.is_file())
}

/// Deletes `katest-PID-...` namespaces whose test process no longer exists.
fn remove_leftovers() {
    let Ok(entries) = std::fs::read_dir("/run/netns") else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(pid) = name
            .strip_prefix(&format!("{PREFIX}-"))
            .and_then(|rest| rest.split('-').next())
        else {
            continue;
        };
        if !std::path::Path::new(&format!("/proc/{pid}")).exists() {
            let _ = Command::new("ip").args(["netns", "del", &name]).status();
        }
    }
}

/// Runs a setup command to completion; panics with its stderr on failure.
fn check(mut cmd: Command, stdin: Option<&str>) {
    cmd.stdin(if stdin.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    });
    let mut process = Process::spawn_with(cmd, "setup", false);
    if let Some(text) = stdin {
        process.write(text);
        process.close_stdin();
    }
    let status = process
        .wait_exit(SETUP_DEADLINE)
        .unwrap_or_else(|| panic!("{} did not finish in {SETUP_DEADLINE:?}", process.label));
    assert!(
        status.0.success(),
        "{} failed: {}",
        process.label,
        process.stderr()
    );
}

/// One network namespace, deleted on drop.
pub struct Netns {
    name: String,
}

impl Netns {
    /// Creates `katest-PID-N-ROLE` with its loopback up.
    pub fn new(role: &str) -> Netns {
        static COUNTER: AtomicUsize = AtomicUsize::new(0);
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let name = format!("{PREFIX}-{}-{n}-{role}", std::process::id());
        let mut add = Command::new("ip");
        add.args(["netns", "add", &name]);
        check(add, None);
        // Built before anything else can fail, so Drop always deletes it.
        let netns = Netns { name };
        netns.ip(&["link", "set", "lo", "up"]);
        netns
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// Makes `cmd` run inside this namespace: the child joins it with
    /// setns() between fork and exec, so the program under test is our
    /// direct child (no `ip netns exec` in between to carry LD_PRELOAD).
    ///
    /// The child is also killed when the thread that spawned it ends
    /// (PR_SET_PDEATHSIG), so that a test binary killed outright leaves no
    /// idle `nc` behind keeping a deleted namespace alive. That is per
    /// thread, not per process: spawn and drop a `Process` in one thread.
    pub fn enter<'a>(&self, cmd: &'a mut Command) -> &'a mut Command {
        let path = format!("/run/netns/{}", self.name);
        let file = File::open(&path).unwrap_or_else(|e| panic!("open {path}: {e}"));
        // SAFETY: the closure only makes two async-signal-safe system calls
        // and reads a descriptor the closure itself keeps open.
        unsafe {
            cmd.pre_exec(move || {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0
                    || libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) != 0
                {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            })
        }
    }

    /// `ip -n NAME ARGS...`, checked.
    pub fn ip(&self, args: &[&str]) {
        let mut cmd = Command::new("ip");
        cmd.args(["-n", &self.name]).args(args);
        check(cmd, None);
    }

    /// Loads an nft ruleset (text as for `nft -f`) into this namespace.
    pub fn nft(&self, ruleset: &str) {
        let mut cmd = Command::new("nft");
        cmd.args(["-f", "-"]);
        self.enter(&mut cmd);
        check(cmd, Some(ruleset));
    }

    /// Sets a sysctl of this namespace (net.* sysctls are per namespace).
    pub fn sysctl(&self, key: &str, value: &str) {
        let mut cmd = Command::new("sysctl");
        cmd.args(["-qw", &format!("{key}={value}")]);
        self.enter(&mut cmd);
        check(cmd, None);
    }

    /// The namespace goes silent, as if its host had vanished: nothing in,
    /// nothing out, no RST or ICMP to tell the peer.
    pub fn vanish(&self) {
        self.nft(
            "table inet vanish {
                chain input { type filter hook input priority -300; policy drop; }
                chain output { type filter hook output priority -300; policy drop; }
            }",
        );
    }

    /// This namespace's values of kernel counters (`nstat`), e.g.
    /// `TcpExtTCPKeepAlive` (probes sent) or `TcpExtTCPAbortOnTimeout`.
    pub fn counters(&self, names: &[&str]) -> Vec<u64> {
        // -a absolute values, -s do not touch nstat's history file, -z zeros too.
        let text = self.output("nstat", &["-asz"]);
        names
            .iter()
            .map(|name| {
                text.lines()
                    .find_map(|line| {
                        let mut words = line.split_whitespace();
                        (words.next() == Some(*name)).then(|| words.next()?.parse().ok())?
                    })
                    .unwrap_or_else(|| panic!("no {name} in nstat output:\n{text}"))
            })
            .collect()
    }

    /// Runs a program inside the namespace and returns its stdout.
    pub fn output(&self, program: &str, args: &[&str]) -> String {
        let mut cmd = Command::new(program);
        cmd.args(args);
        self.enter(&mut cmd);
        let out = super::run(cmd, SETUP_DEADLINE);
        assert!(
            out.status.success(),
            "{program} {args:?} in {}: {}",
            self.name,
            super::stderr(&out)
        );
        super::stdout(&out)
    }

    /// Waits (bounded) until something listens on TCP `port` here.
    pub fn wait_listening(&self, port: u16) {
        let filter = format!("sport = :{port}");
        let found = super::wait_for(SETUP_DEADLINE, || {
            let text = self.output("ss", &["-ltnH", &filter]);
            (!text.trim().is_empty()).then_some(())
        });
        assert!(
            found.is_some(),
            "nothing listens on port {port} in {}",
            self.name
        );
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        // Not checked: a panic here during unwinding would abort the run.
        let result = Command::new("ip")
            .args(["netns", "del", &self.name])
            .stdin(Stdio::null())
            .output();
        if let Ok(out) = result {
            if !out.status.success() {
                eprintln!(
                    "ip netns del {}: {}",
                    self.name,
                    String::from_utf8_lossy(&out.stderr)
                );
            }
        }
    }
}

/// Joins `a` and `b` with a veth pair: `to-B` in `a` with `a_addr`, `to-A`
/// in `b` with `b_addr` (CIDR notation). The ends are created directly in
/// their namespaces, so the names only need to be unique there.
pub fn link(a: &Netns, a_role: &str, a_addr: &str, b: &Netns, b_role: &str, b_addr: &str) {
    let a_dev = format!("to-{b_role}");
    let b_dev = format!("to-{a_role}");
    a.ip(&[
        "link", "add", &a_dev, "type", "veth", "peer", "name", &b_dev, "netns", &b.name,
    ]);
    for (ns, dev, addr) in [(a, &a_dev, a_addr), (b, &b_dev, b_addr)] {
        ns.ip(&["addr", "add", addr, "dev", dev]);
        ns.ip(&["link", "set", dev, "up"]);
    }
}

pub const CLIENT_ADDR: &str = "10.123.1.1";
pub const SERVER_ADDR: &str = "10.123.1.2";

/// Two hosts on one link: client 10.123.1.1, server 10.123.1.2.
pub struct Pair {
    pub client: Netns,
    pub server: Netns,
}

impl Pair {
    pub fn new() -> Pair {
        let pair = Pair {
            client: Netns::new("client"),
            server: Netns::new("server"),
        };
        link(
            &pair.client,
            "client",
            "10.123.1.1/24",
            &pair.server,
            "server",
            "10.123.1.2/24",
        );
        pair
    }
}

/// The server's address in a `Routed` network.
pub const ROUTED_SERVER_ADDR: &str = "10.123.2.2";

/// client 10.123.1.1 -- 10.123.1.254 router 10.123.2.254 -- 10.123.2.2 server.
/// The router forwards; whatever filtering it does is up to the test.
pub struct Routed {
    pub client: Netns,
    pub router: Netns,
    pub server: Netns,
}

impl Routed {
    pub fn new() -> Routed {
        let net = Routed {
            client: Netns::new("client"),
            router: Netns::new("router"),
            server: Netns::new("server"),
        };
        link(
            &net.client,
            "client",
            "10.123.1.1/24",
            &net.router,
            "router",
            "10.123.1.254/24",
        );
        link(
            &net.router,
            "router",
            "10.123.2.254/24",
            &net.server,
            "server",
            "10.123.2.2/24",
        );
        net.client
            .ip(&["route", "add", "default", "via", "10.123.1.254"]);
        net.server
            .ip(&["route", "add", "default", "via", "10.123.2.254"]);
        net.router.sysctl("net.ipv4.ip_forward", "1");
        net
    }
}
