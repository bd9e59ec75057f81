//! musl programs (Alpine's libc), built here with Debian's musl-gcc:
//! - what preloading our glibc library does to them: a dynamic musl program
//!   is stopped by musl's dynamic linker before main() (it cannot find or
//!   load glibc's libc.so.6 / ld-linux-x86-64.so.2), exit 127; a static one
//!   ignores LD_PRELOAD;
//! - so `keepalive -- PROG` refuses a dynamic musl PROG with one line
//!   (exit 125) instead of starting it to fail, and `--check` says --bpf;
//! - the kernel-side mode (`--bpf`, root) reaches a musl client: getsockopt
//!   inside and ss outside.

mod common;

use common::portable;
use common::process::Process;
use common::*;
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::Duration;

const DEADLINE: Duration = Duration::from_secs(60);
const UNTOUCHED: &str = "keepalive=0 idle=7200 intvl=75 cnt=9 user_timeout=0";

/// tests/c/bpfprobe.c built with musl-gcc, dynamic or static.
fn musl_probe(static_link: bool) -> PathBuf {
    static BUILT: Mutex<Vec<bool>> = Mutex::new(Vec::new());
    let mut built = BUILT.lock().unwrap_or_else(|e| e.into_inner());
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("c");
    std::fs::create_dir_all(&dir).unwrap();
    let name = if static_link {
        "bpfprobe-musl-static"
    } else {
        "bpfprobe-musl"
    };
    let out = dir.join(name);
    if built.contains(&static_link) {
        return out;
    }
    let partial = dir.join(format!("{name}.{}.partial", std::process::id()));
    let mut cmd = Command::new("musl-gcc");
    cmd.args(["-O2", "-Wall", "-Wextra", "-Werror", "-o"])
        .arg(&partial)
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/c/bpfprobe.c"));
    if static_link {
        cmd.arg("-static");
    }
    let result = cmd
        .output()
        .expect("musl-gcc not found: apt-get install -y musl-tools");
    assert!(result.status.success(), "musl-gcc: {}", stderr(&result));
    std::fs::rename(&partial, &out).unwrap();
    built.push(static_link);
    out
}

/// A listener on loopback that accepts and holds connections.
struct Peer {
    port: u16,
    _held: Arc<Mutex<Vec<TcpStream>>>,
}

fn listen() -> Peer {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let held = Arc::new(Mutex::new(Vec::new()));
    let keep = held.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            keep.lock().unwrap_or_else(|e| e.into_inner()).push(stream);
        }
    });
    Peer { port, _held: held }
}

fn probe_connect(program: impl AsRef<std::ffi::OsStr>, port: u16) -> Command {
    let mut cmd = command(program, false, &[]);
    cmd.args(["connect", "127.0.0.1", &port.to_string()]);
    cmd
}

#[test]
fn preloading_our_glibc_library_stops_a_dynamic_musl_program() {
    let peer = listen();
    // The control: without the library it connects and exits 0.
    let out = run(probe_connect(musl_probe(false), peer.port), DEADLINE);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(stdout(&out).trim(), format!("connected {UNTOUCHED}"));
    // Preloaded (the shipped build, or the developer's): never reaches main().
    for library in [portable::library(), developer_library().to_path_buf()] {
        let mut cmd = probe_connect(musl_probe(false), peer.port);
        cmd.env("LD_PRELOAD", &library);
        let out = run(cmd, DEADLINE);
        assert_eq!(out.status.code(), Some(127), "{out:?}");
        assert_eq!(stdout(&out), "");
        assert!(
            stderr(&out).contains("Error loading shared library"),
            "{}",
            stderr(&out)
        );
    }
    // A static musl program never runs a dynamic linker: LD_PRELOAD ignored.
    let mut cmd = probe_connect(musl_probe(true), peer.port);
    cmd.env("LD_PRELOAD", portable::library())
        .env("KEEPIDLE", "31");
    let out = run(cmd, DEADLINE);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(stdout(&out).trim(), format!("connected {UNTOUCHED}"));
}

#[test]
fn keepalive_refuses_a_dynamic_musl_program_with_one_line() {
    let peer = listen();
    let probe = musl_probe(false);
    let mut cmd = command(portable::command(), false, &[]);
    cmd.env("KEEPALIVE_LIB", portable::library())
        .args(["--idle", "30", "--"])
        .arg(&probe)
        .args(["connect", "127.0.0.1", &peer.port.to_string()]);
    let out = run(cmd, DEADLINE);
    assert_eq!(out.status.code(), Some(125), "{out:?}");
    assert_eq!(stdout(&out), "", "PROG must not have run");
    let err = stderr(&out);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.contains("is a musl program") && err.contains("keepalive --bpf"),
        "{err}"
    );
    // --check names the mode that reaches it, and fails.
    let mut cmd = command(portable::command(), false, &[]);
    cmd.env("KEEPALIVE_LIB", portable::library())
        .arg("--check")
        .arg(&probe);
    let out = run(cmd, DEADLINE);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let report = stdout(&out);
    assert!(report.contains("\nloads         no: "), "{report}");
    assert!(
        report.contains("\nmode          --bpf (a musl program"),
        "{report}"
    );
    // The control: a glibc program is run.
    let mut cmd = command(portable::command(), false, &[]);
    cmd.env("KEEPALIVE_LIB", portable::library())
        .args(["--idle", "30", "--", "true"]);
    assert!(run(cmd, DEADLINE).status.success());
}

#[test]
fn the_kernel_side_mode_reaches_a_musl_client() {
    // SAFETY: geteuid has no preconditions.
    assert_eq!(
        unsafe { libc::geteuid() },
        0,
        "--bpf needs root: sudo -E env \"PATH=$PATH\" cargo test --test musl"
    );
    let peer = listen();
    let mut cmd = command(portable::command(), false, &[]);
    cmd.args(["--bpf", "--idle", "33", "--interval", "7", "--"])
        .arg(musl_probe(false))
        .args(["connect", "127.0.0.1", &peer.port.to_string(), "hold=3000"]);
    let mut client = Process::spawn(cmd, "keepalive --bpf musl client");
    client
        .wait_stdout("connected", Duration::from_secs(20))
        .unwrap_or_else(|| panic!("no connection: {:?} {:?}", client.stdout(), client.stderr()));
    let suffix = format!(":{}", peer.port);
    let line = ss_lines(peer.port)
        .into_iter()
        .find(|l| {
            l.split_whitespace()
                .nth(3)
                .is_some_and(|p| p.ends_with(&suffix))
        })
        .unwrap_or_else(|| panic!("no connection to {} in ss", peer.port));
    // Inside: getsockopt; outside: the kernel's timer.
    assert_eq!(
        client.stdout().trim(),
        "connected keepalive=1 idle=33 intvl=7 cnt=9 user_timeout=0"
    );
    let timer = keepalive_timer_secs(&line).unwrap_or_else(|| panic!("no timer: {line}"));
    assert!((28.0..=33.0).contains(&timer), "{line}");
    // It ends by itself (hold=3000), keepalive with it.
    let (status, _) = client
        .wait_exit(Duration::from_secs(30))
        .expect("keepalive --bpf did not end after the client");
    assert!(status.success(), "{status:?} {}", client.stderr());
}
