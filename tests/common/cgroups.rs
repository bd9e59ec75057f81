//! cgroup2 for the kernel-side tests: where it is mounted, this process's
//! cgroup, and cgroups of a test's own that are removed on drop.

use super::kernel_side::{keepalive, PROMPT};
use super::wait_for;
use std::fs;
use std::io::Write;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};

/// The cgroup2 mount.
pub fn cgroup2_mount() -> PathBuf {
    let mountinfo = fs::read_to_string("/proc/self/mountinfo").unwrap();
    mountinfo
        .lines()
        .find_map(|line| {
            let (left, right) = line.split_once(" - ")?;
            let fields: Vec<&str> = left.split(' ').collect();
            (right.starts_with("cgroup2 ") && fields[3] == "/").then(|| PathBuf::from(fields[4]))
        })
        .expect("no cgroup2 mounted: mount -t cgroup2 none /sys/fs/cgroup/unified")
}

/// This process's cgroup.
pub fn own_cgroup() -> PathBuf {
    let own = fs::read_to_string("/proc/self/cgroup").unwrap();
    let path = own.lines().find_map(|l| l.strip_prefix("0::")).unwrap();
    cgroup2_mount().join(path.trim_start_matches('/'))
}

/// A cgroup of our own, removed on drop: its processes killed, our
/// attachment detached, then the directory removed. (A child made with
/// `child` is declared after its parent, so it is dropped first.)
pub struct TestCgroup {
    pub path: PathBuf,
}

impl TestCgroup {
    /// `katest-TESTBINARY-PID-N-ROLE` under `parent`: unique across test
    /// binaries and runs at once.
    pub fn new(parent: &Path, role: &str) -> TestCgroup {
        static COUNTER: AtomicUsize = AtomicUsize::new(0);
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let name = format!(
            "katest-{}-{}-{n}-{role}",
            env!("CARGO_CRATE_NAME"),
            std::process::id()
        );
        let path = parent.join(name);
        fs::create_dir(&path).unwrap_or_else(|e| panic!("mkdir {}: {e}", path.display()));
        TestCgroup { path }
    }

    /// Under this process's own cgroup.
    pub fn top(role: &str) -> TestCgroup {
        TestCgroup::new(&own_cgroup(), role)
    }

    pub fn child(&self, role: &str) -> TestCgroup {
        TestCgroup::new(&self.path, role)
    }

    /// `cmd` starts inside this cgroup (it joins between fork and exec).
    pub fn enter<'a>(&self, cmd: &'a mut Command) -> &'a mut Command {
        let mut procs = fs::OpenOptions::new()
            .write(true)
            .open(self.path.join("cgroup.procs"))
            .unwrap();
        // SAFETY: one write(2) between fork and exec, no allocation.
        unsafe { cmd.pre_exec(move || procs.write_all(b"0")) }
    }

    /// `keepalive --attach` on this cgroup, which must succeed; its stderr.
    pub fn attach(&self, options: &[&str]) -> String {
        let mut cmd = keepalive();
        cmd.arg("--attach").arg(&self.path).args(options);
        let out = super::run(cmd, PROMPT);
        assert!(out.status.success(), "--attach: {}", super::stderr(&out));
        super::stderr(&out)
    }

    /// `keepalive --detach` on this cgroup, which must succeed; its stderr.
    pub fn detach(&self) -> String {
        let mut cmd = keepalive();
        cmd.arg("--detach").arg(&self.path);
        let out = super::run(cmd, PROMPT);
        assert!(out.status.success(), "--detach: {}", super::stderr(&out));
        super::stderr(&out)
    }
}

impl Drop for TestCgroup {
    fn drop(&mut self) {
        // Not checked: a panic while unwinding would abort the run.
        if let Ok(procs) = fs::read_to_string(self.path.join("cgroup.procs")) {
            for pid in procs.lines().filter_map(|p| p.parse::<i32>().ok()) {
                // SAFETY: kill(2) on a process of our own test cgroup.
                unsafe { libc::kill(pid, libc::SIGKILL) };
            }
        }
        let _ = keepalive()
            .arg("--detach")
            .arg(&self.path)
            .stderr(Stdio::null())
            .status();
        // A killed process leaves its cgroup a moment after it dies.
        let removed = wait_for(PROMPT, || fs::remove_dir(&self.path).ok());
        if removed.is_none() && self.path.exists() {
            eprintln!("could not remove cgroup {}", self.path.display());
        }
    }
}
