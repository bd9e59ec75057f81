//! Shared by the integration tests: builds the release library and the C
//! test programs once per test binary, and runs programs with or without
//! the library and a clean environment of our variables.
#![allow(dead_code)]

pub mod cgroups;
pub mod go;
pub mod kernel_side;
pub mod netns;
pub mod portable;
pub mod process;
pub mod seen;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

/// Every variable the library reads (the core's one table), and
/// `LD_PRELOAD`: removed from the inherited environment so that a
/// developer's shell cannot change a test's outcome.
pub fn our_variables() -> impl Iterator<Item = &'static str> {
    std::iter::once("LD_PRELOAD").chain(keepalive_core::variables::NAMES)
}

/// Every timer set, and what getsockopt then reports on a configured socket
/// (the probes' option words, see tests/c/options.h).
pub const ALL_TIMERS: [(&str, &str); 4] = [
    ("KEEPIDLE", "60"),
    ("KEEPINTVL", "10"),
    ("KEEPCNT", "6"),
    ("KEEPALIVE_USER_TIMEOUT", "1500"),
];
pub const ALL_CONFIGURED: &str = "keepalive=1 idle=60 intvl=10 cnt=6 user_timeout=1500";

fn tmp_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
}

/// `TEST_SHIPPED_BUILD=1`: the tests that use library() and
/// keepalive_command() run the shipped build (scripts/build-portable.sh)
/// instead of the developer's release build. (Not named KEEPALIVE_...: the
/// library would warn about a near miss of its own variables.)
fn shipped_build_requested() -> bool {
    std::env::var_os("TEST_SHIPPED_BUILD").is_some_and(|v| v == "1")
}

/// The release `libkeepalive.so`, built into a target dir of its own (the
/// outer `cargo test` holds the lock on the usual one).
pub fn library() -> &'static Path {
    static SHIPPED: OnceLock<PathBuf> = OnceLock::new();
    if shipped_build_requested() {
        return SHIPPED.get_or_init(portable::library);
    }
    developer_library()
}

/// The developer's release `libkeepalive.so` (`cargo build --release`),
/// whatever TEST_SHIPPED_BUILD says.
pub fn developer_library() -> &'static Path {
    static LIBRARY: OnceLock<PathBuf> = OnceLock::new();
    LIBRARY.get_or_init(|| {
        let target = tmp_dir().join("release-build");
        let status = Command::new(env!("CARGO"))
            .args(["build", "--release", "--lib", "--quiet", "--target-dir"])
            .arg(&target)
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .status()
            .expect("run cargo build");
        assert!(status.success(), "cargo build --release --lib failed");
        let path = target.join("release/libkeepalive.so");
        assert!(path.exists(), "{} missing", path.display());
        path
    })
}

/// The release `keepalive` command, built with the library into the same
/// target dir (so it finds `libkeepalive.so` beside itself).
pub fn keepalive_command() -> &'static Path {
    static COMMAND: OnceLock<PathBuf> = OnceLock::new();
    COMMAND.get_or_init(|| {
        if shipped_build_requested() {
            return portable::command();
        }
        let target = tmp_dir().join("release-build");
        let status = Command::new(env!("CARGO"))
            .args(["build", "--release", "--quiet", "--target-dir"])
            .arg(&target)
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .status()
            .expect("run cargo build");
        assert!(status.success(), "cargo build --release failed");
        target.join("release/keepalive")
    })
}

/// Compiles `tests/c/NAME.c` into an executable of the same name, once per
/// test binary; returns its path.
pub fn c_program(name: &str) -> PathBuf {
    c_program_with(name, &[])
}

/// The same, with extra gcc arguments (for example `-shared -fPIC`).
pub fn c_program_with(name: &str, extra_args: &[&str]) -> PathBuf {
    build_c(name, name, extra_args)
}

/// Compiles `tests/c/SOURCE.c` into `OUT_NAME`, with `extra_args` after the
/// defaults (so a later `-O1` wins over `-O2`); once per output name and
/// test binary, so one source can be built several ways.
pub fn build_c(source: &str, out_name: &str, extra_args: &[&str]) -> PathBuf {
    static BUILT: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());
    let mut built = BUILT.lock().unwrap_or_else(|e| e.into_inner());
    let out_dir = tmp_dir().join("c");
    std::fs::create_dir_all(&out_dir).unwrap();
    let out = out_dir.join(out_name);
    if built.contains(&out) {
        return out;
    }
    let source = Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("tests/c/{source}.c"));
    // Build under a unique name, then rename: test binaries run in parallel.
    let partial = out_dir.join(format!("{out_name}.{}.partial", std::process::id()));
    let result = Command::new("gcc")
        .args(["-O2", "-g", "-Wall", "-Wextra", "-Werror", "-pthread", "-o"])
        .arg(&partial)
        .arg(&source)
        .args(extra_args)
        .output()
        .expect("gcc not found: apt-get install -y gcc");
    assert!(
        result.status.success(),
        "gcc {}: {}",
        source.display(),
        String::from_utf8_lossy(&result.stderr)
    );
    std::fs::rename(&partial, &out).unwrap();
    built.push(out.clone());
    out
}

/// Fails, with the command that installs it, if `tool` is not on PATH.
pub fn require(tool: &str, package: &str) {
    let found = Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .stdout(Stdio::null())
        .status()
        .map(|status| status.success())
        .unwrap_or(false);
    assert!(found, "{tool} not found: apt-get install -y {package}");
}

/// A command with our variables cleared, `LD_PRELOAD` set to the library when
/// `preload`, and `env` added.
pub fn command(
    program: impl AsRef<std::ffi::OsStr>,
    preload: bool,
    env: &[(&str, &str)],
) -> Command {
    let mut cmd = Command::new(program);
    for name in our_variables() {
        cmd.env_remove(name);
    }
    if preload {
        cmd.env("LD_PRELOAD", library());
    }
    for (name, value) in env {
        cmd.env(name, value);
    }
    cmd.stdin(Stdio::null());
    cmd
}

/// Runs to completion with a deadline; panics (after killing it) on timeout.
pub fn run(mut cmd: Command, deadline: Duration) -> Output {
    cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
    let child = cmd.spawn().unwrap_or_else(|e| panic!("spawn {cmd:?}: {e}"));
    let pid = child.id();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    match rx.recv_timeout(deadline) {
        Ok(output) => output.expect("wait"),
        Err(_) => {
            // SAFETY: kill has no memory-safety preconditions.
            unsafe { libc_kill(pid as i32, 9) };
            panic!("{cmd:?} did not finish within {deadline:?}");
        }
    }
}

extern "C" {
    #[link_name = "kill"]
    fn libc_kill(pid: i32, signal: i32) -> i32;
}

pub fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

pub fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// Parses `key=value` words of a probe's output line into pairs.
pub fn fields(line: &str) -> Vec<(String, String)> {
    line.split_whitespace()
        .filter_map(|word| word.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

pub fn field<'a>(fields: &'a [(String, String)], key: &str) -> &'a str {
    fields
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
        .unwrap_or_else(|| panic!("no {key}= in {fields:?}"))
}

/// Polls `check` every 10 ms until it returns Some or `timeout` passes (the
/// netns tests measure exit times with it).
pub fn wait_for<T>(timeout: Duration, mut check: impl FnMut() -> Option<T>) -> Option<T> {
    let start = Instant::now();
    loop {
        if let Some(value) = check() {
            return Some(value);
        }
        if start.elapsed() > timeout {
            return None;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// A free TCP port on 127.0.0.1 (bound then released).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// `ss -tnoH state established` lines whose local or peer port is `port`.
pub fn ss_lines(port: u16) -> Vec<String> {
    let out = Command::new("ss")
        .args(["-tnoH", "state", "established"])
        .output()
        .expect("ss not found: apt-get install -y iproute2");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|line| {
            let suffix = format!(":{port}");
            line.split_whitespace().any(|word| word.ends_with(&suffix))
        })
        .map(str::to_string)
        .collect()
}

/// The `ss` line of the client connected to `port` on this machine (its
/// peer, the 4th column, ends in `:port`), waited for up to `timeout`.
pub fn client_ss_line(port: u16, timeout: Duration) -> Option<String> {
    let suffix = format!(":{port}");
    wait_for(timeout, || {
        ss_lines(port).into_iter().find(|l| {
            l.split_whitespace()
                .nth(3)
                .is_some_and(|peer| peer.ends_with(&suffix))
        })
    })
}

/// The seconds left on a `timer:(keepalive,43sec,0)` or `(keepalive,1min2sec,0)`
/// field of an `ss -o` line, if it has one.
pub fn keepalive_timer_secs(line: &str) -> Option<f64> {
    let start = line.find("timer:(keepalive,")? + "timer:(keepalive,".len();
    let rest = &line[start..];
    let text = &rest[..rest.find(',')?];
    let mut total = 0.0;
    let mut number = String::new();
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if c.is_ascii_digit() || c == '.' {
            number.push(c);
            continue;
        }
        let mut unit = c.to_string();
        while let Some(&next) = chars.peek() {
            if next.is_ascii_digit() {
                break;
            }
            unit.push(next);
            chars.next();
        }
        let value: f64 = number.parse().ok()?;
        number.clear();
        total += match unit.as_str() {
            "min" => value * 60.0,
            "sec" => value,
            // ss prints e.g. "5.992ms" for 5.992 seconds (see REFERENCE.md).
            "ms" => value,
            _ => return None,
        };
    }
    Some(total)
}
