//! `keepalive --status` against targets that work against it: a process
//! whose names and environment hold control characters, a process that is
//! gone by the time it is read, exits while it is read or whose PID is
//! reused meanwhile (strace holds one of the command's system calls, in a
//! PID namespace of the test's own), and cgroup trees that change while
//! they are walked or are deeper than PATH_MAX (a directory tree of the
//! same shape as a cgroup hierarchy: `cgroup.procs` files in nested
//! directories).

mod common;

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

const DEADLINE: Duration = Duration::from_secs(30);

fn status(args: &[&OsStr]) -> Output {
    let mut cmd = Command::new(common::keepalive_command());
    cmd.args(args);
    common::run(cmd, DEADLINE)
}

/// A directory of this test's own under the target dir, removed on drop.
struct Scratch(PathBuf);

impl Scratch {
    fn new(name: &str) -> Scratch {
        let path = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
            .join(format!("status-targets-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).unwrap();
        Scratch(path)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A `sleep` killed on drop.
struct Sleeper(std::process::Child);

impl Sleeper {
    fn start(program: &Path, env: &[(&str, &OsStr)]) -> Sleeper {
        let mut cmd = common::command(program, false, &[]);
        for (name, value) in env {
            cmd.env(name, value);
        }
        cmd.arg("60").stderr(std::process::Stdio::null());
        let child = cmd.spawn().unwrap();
        // Until ld.so is done and sleep runs, /proc shows the exec'ing process.
        let pid = child.id();
        let started = common::wait_for(DEADLINE, || {
            let stat = std::fs::read_to_string(format!("/proc/{pid}/wchan")).ok()?;
            (stat.contains("nanosleep") || stat.contains("hrtimer")).then_some(())
        });
        assert!(started.is_some(), "sleep did not start");
        Sleeper(child)
    }

    fn pid(&self) -> String {
        self.0.id().to_string()
    }
}

impl Drop for Sleeper {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn text_from_the_target_cannot_forge_lines_or_reach_the_terminal() {
    let scratch = Scratch::new("names");
    // The executable's directory name, hence its path and the name it was
    // started as, holds a newline, a forged report line and escape sequences.
    let forged = b"x\nlibrary       loaded: /usr/lib/libkeepalive.so\n\x1b]2;owned\x07\x1b[2J";
    let directory = scratch.0.join(OsStr::from_bytes(forged));
    std::fs::create_dir_all(&directory).unwrap();
    let program = directory.join("sleep");
    std::fs::copy("/bin/sleep", &program).unwrap();
    // (ld.so splits LD_PRELOAD at spaces and colons.)
    let preload = b"/nonexistent/\x1b[31m\nforged/libkeepalive.so";
    let sleeper = Sleeper::start(&program, &[("LD_PRELOAD", OsStr::from_bytes(preload))]);
    let output = status(&[OsStr::new("--status"), OsStr::new(&sleeper.pid())]);
    assert_eq!(output.status.code(), Some(0), "{output:?}");
    let text = common::stdout(&output);
    assert!(
        !output.stdout.iter().any(|&b| b == 0x1b || b == 0x07),
        "control characters reached the terminal:\n{text}"
    );
    let loaded: Vec<&str> = text.lines().filter(|l| l.starts_with("library")).collect();
    assert_eq!(loaded, ["library       not loaded"], "{text}");
    assert_eq!(
        text.lines().filter(|l| l.starts_with("warning:")).count(),
        1,
        "{text}"
    );
    assert!(text.contains("x\\nlibrary       loaded: "), "{text}");
    assert!(text.contains("\\u{1b}[2J"), "{text}");
    assert!(
        text.contains("/nonexistent/\\u{1b}[31m\\nforged/libkeepalive.so"),
        "{text}"
    );
}

#[test]
fn a_process_that_is_gone_is_no_process_not_a_permission_problem() {
    // Exited, not yet waited for: a zombie, whose /proc directory is still
    // there but whose memory and descriptors are gone.
    let mut child = Command::new("true").spawn().unwrap();
    let pid = child.id();
    let zombie = common::wait_for(DEADLINE, || {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        stat.rsplit_once(") ")
            .is_some_and(|(_, rest)| rest.starts_with('Z'))
            .then_some(())
    });
    assert!(zombie.is_some());
    let output = status(&[OsStr::new("--status"), OsStr::new(&pid.to_string())]);
    child.wait().unwrap();
    assert_eq!(output.status.code(), Some(1), "{output:?}");
    assert_eq!(
        common::stderr(&output),
        format!("keepalive: no process {pid}\n")
    );
    assert_eq!(common::stdout(&output), "");
}

/// A target that holds a listener and two connections, each with
/// TCP_KEEPIDLE = argv[1]; it writes argv[2] when ready.
const HOLDER: &str = r#"
import socket, sys, time
l = socket.socket(); l.bind(("127.0.0.1", 0)); l.listen()
c = socket.create_connection(l.getsockname()); a, _ = l.accept()
for s in (l, c, a):
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE, int(sys.argv[1]))
open(sys.argv[2], "w").write("ready")
time.sleep(60)
"#;

/// A PID reused while `--status` runs: in a PID namespace of its own,
/// process A (a copy of python3 named procA, idle 7200) is inspected;
/// strace holds the command's `pidfd_open` for 5 s, during which A is
/// killed and process B (procB, idle 77) is made to get A's PID. Whatever
/// the command shows must be one process: procB with idle 77, or procA
/// with 7200, or "no process". (Reading /proc first and opening the pidfd
/// last showed procA with B's sockets, and exit status 0.)
#[test]
fn a_pid_reused_during_the_read_never_mixes_two_processes() {
    let scratch = Scratch::new("reuse");
    for name in ["procA", "procB"] {
        std::fs::copy("/usr/bin/python3", scratch.0.join(name)).unwrap();
    }
    std::fs::write(scratch.0.join("holder.py"), HOLDER).unwrap();
    let script = format!(
        r#"cd {dir}
./procA holder.py 7200 readyA & A=$!
until [ -e readyA ]; do sleep 0.05; done
strace -o /dev/null -e inject=pidfd_open:delay_enter=5s {keepalive} --status $A --json >out 2>err & S=$!
sleep 2
kill -9 $A; wait $A 2>/dev/null
echo $((A - 1)) > /proc/sys/kernel/ns_last_pid
./procB holder.py 77 readyB & B=$!
[ "$A" = "$B" ] || echo "PID not reused: $A $B" >&2
wait $S; echo $? >code
kill $B
"#,
        dir = scratch.0.display(),
        keepalive = common::keepalive_command().display(),
    );
    let mut cmd = common::command("unshare", false, &[]);
    cmd.args(["--pid", "--fork", "--mount-proc", "bash", "-c", &script]);
    let output = common::run(cmd, Duration::from_secs(60));
    assert_eq!(
        common::stderr(&output),
        "",
        "strace: apt-get install -y strace"
    );
    let read = |file: &str| std::fs::read_to_string(scratch.0.join(file)).unwrap();
    let (code, out, err) = (read("code"), read("out"), read("err"));
    if code.trim() == "1" {
        assert!(err.starts_with("keepalive: no process "), "{err}");
        return;
    }
    assert_eq!(code.trim(), "0", "{err}");
    let idle = if out.contains("\"exe\":\"") && out.contains("/procB\",") {
        77
    } else {
        assert!(out.contains("/procA\","), "{out}");
        7200
    };
    // The connections' idle values (the settings objects come before; the
    // `set_by` objects name who set them, not a number).
    let connections = out.split("\"connections\":").nth(1).unwrap_or_default();
    let shown: Vec<&str> = connections
        .split("\"idle\":")
        .skip(1)
        .filter(|value| value.starts_with(|c: char| c.is_ascii_digit()))
        .collect();
    assert_eq!(shown.len(), 3, "{out}");
    for value in shown {
        assert!(value.starts_with(&format!("{idle},")), "mixed: {out}");
    }
}

/// A target that exits while `--status` reads it (strace holds one of
/// the command's system calls while the test kills and reaps it): "no
/// process", exit status 1, nothing on stdout. (It was shown as a process
/// with an unknown executable and no sockets, exit status 0.)
#[test]
fn a_target_that_exits_mid_read_is_no_process() {
    let scratch = Scratch::new("exits");
    std::fs::copy("/usr/bin/python3", scratch.0.join("procA")).unwrap();
    std::fs::write(scratch.0.join("holder.py"), HOLDER).unwrap();
    // Listing its descriptors; copying its first socket.
    for held in ["getdents64", "pidfd_getfd"] {
        let _ = std::fs::remove_file(scratch.0.join("readyA"));
        let script = format!(
            r#"cd {dir}
./procA holder.py 7200 readyA & A=$!
until [ -e readyA ]; do sleep 0.05; done
strace -o /dev/null -e inject={held}:delay_enter=3s:when=1 {keepalive} --status $A >out 2>err & S=$!
sleep 1.5
kill -9 $A; wait $A 2>/dev/null
wait $S; echo $? >code
"#,
            dir = scratch.0.display(),
            keepalive = common::keepalive_command().display(),
        );
        let mut cmd = common::command("unshare", false, &[]);
        cmd.args(["--pid", "--fork", "--mount-proc", "bash", "-c", &script]);
        let output = common::run(cmd, Duration::from_secs(60));
        assert_eq!(
            common::stderr(&output),
            "",
            "strace: apt-get install -y strace"
        );
        let read = |file: &str| std::fs::read_to_string(scratch.0.join(file)).unwrap();
        let err = read("err");
        assert_eq!(read("code").trim(), "1", "{held}: {err}{}", read("out"));
        assert!(err.starts_with("keepalive: no process "), "{held}: {err}");
        assert_eq!(read("out"), "", "{held}");
    }
}

/// Writes `cgroup.procs` holding `pids` into `directory`.
fn procs(directory: &Path, pids: &[&str]) {
    std::fs::write(directory.join("cgroup.procs"), pids.join("\n") + "\n").unwrap();
}

/// The PIDs `--status DIR --json` reports.
fn reported_pids(output: &Output) -> Vec<String> {
    common::stdout(output)
        .split("{\"pid\":")
        .skip(1)
        .map(|rest| rest.split(',').next().unwrap().to_string())
        .collect()
}

#[test]
fn a_tree_deeper_than_path_max_is_walked() {
    let scratch = Scratch::new("deep");
    let sleeper = Sleeper::start(Path::new("/bin/sleep"), &[]);
    procs(&scratch.0, &[]);
    // 30 levels of 200-byte names: 6000 bytes, beyond PATH_MAX (4096).
    // Created relative to a descriptor, as no path reaches the bottom.
    let name = "d".repeat(200);
    let mut directory = std::fs::File::open(&scratch.0).unwrap();
    for _ in 0..30 {
        use std::os::fd::AsRawFd;
        let here = PathBuf::from(format!("/proc/self/fd/{}", directory.as_raw_fd()));
        std::fs::create_dir(here.join(&name)).unwrap();
        procs(&here.join(&name), &[]);
        directory = std::fs::File::open(here.join(&name)).unwrap();
    }
    {
        use std::os::fd::AsRawFd;
        let bottom = PathBuf::from(format!("/proc/self/fd/{}", directory.as_raw_fd()));
        procs(&bottom, &[&sleeper.pid()]);
    }
    let output = status(&[
        OsStr::new("--status"),
        scratch.0.as_os_str(),
        OsStr::new("--json"),
    ]);
    assert_eq!(output.status.code(), Some(0), "{output:?}");
    assert_eq!(reported_pids(&output), [sleeper.pid()]);
}

#[test]
fn a_child_cgroup_that_vanishes_during_the_walk_is_skipped() {
    let scratch = Scratch::new("vanish");
    let sleeper = Sleeper::start(Path::new("/bin/sleep"), &[]);
    procs(&scratch.0, &[&sleeper.pid()]);
    // Two children whose cgroup.procs are FIFOs: the walk blocks on the
    // first it reads, the test then removes the other one and lets it go on.
    let children = [scratch.0.join("a"), scratch.0.join("b")];
    for child in &children {
        std::fs::create_dir(child).unwrap();
        let fifo =
            std::ffi::CString::new(child.join("cgroup.procs").as_os_str().as_bytes()).unwrap();
        // SAFETY: a NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o600) }, 0);
    }
    let mut cmd = Command::new(common::keepalive_command());
    cmd.args([
        OsStr::new("--status"),
        scratch.0.as_os_str(),
        OsStr::new("--json"),
    ]);
    cmd.stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let walker = cmd.spawn().unwrap();
    let start = Instant::now();
    let (reading, writer) = loop {
        let opened = children.iter().enumerate().find_map(|(i, child)| {
            std::fs::OpenOptions::new()
                .write(true)
                .custom_flags(libc::O_NONBLOCK)
                .open(child.join("cgroup.procs"))
                .ok()
                .map(|writer| (i, writer))
        });
        if let Some(found) = opened {
            break found;
        }
        assert!(start.elapsed() < DEADLINE, "the walk never read a child");
        std::thread::sleep(Duration::from_millis(5));
    };
    let other = &children[1 - reading];
    std::fs::remove_file(other.join("cgroup.procs")).unwrap();
    std::fs::remove_dir(other).unwrap();
    drop(writer);
    let output = walker.wait_with_output().unwrap();
    assert_eq!(output.status.code(), Some(0), "{output:?}");
    assert_eq!(common::stderr(&output), "");
    assert_eq!(reported_pids(&output), [sleeper.pid()]);
}
