//! What the kernel-side tests (tests/bpf.rs, tests/agent.rs,
//! tests/podman.rs) share: the command, tests/c/bpfprobe.c built static and
//! dynamic, the time a step may take, and a peer to connect to.

use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::time::Duration;

/// Any single step (a connection, a line of output) takes less than this.
pub const PROMPT: Duration = Duration::from_secs(10);
/// How long a probe keeps its connection, for `ss` to look at it.
pub const HOLD: &str = "hold=3000";
/// What a static probe reports without us: keepalive off, kernel defaults.
pub const UNTOUCHED: &str = "keepalive=0 idle=7200 intvl=75 cnt=9 user_timeout=0";

/// `keepalive`, with a clean environment of our variables and no stdin.
pub fn keepalive() -> Command {
    let mut cmd = super::command(env!("CARGO_BIN_EXE_keepalive"), false, &[]);
    cmd.stdin(Stdio::null());
    cmd
}

/// tests/c/bpfprobe.c, static: LD_PRELOAD cannot reach it.
pub fn probe() -> PathBuf {
    super::build_c("bpfprobe", "bpfprobe-static", &["-static"])
}

/// tests/c/bpfprobe.c, dynamically linked against glibc.
pub fn dynamic_probe() -> PathBuf {
    super::build_c("bpfprobe", "bpfprobe-dynamic", &[])
}

/// A peer outside every test cgroup, on `address`: accepts connections and
/// holds them until the test binary ends. Returns its port.
pub fn peer(address: &str) -> u16 {
    static HELD: Mutex<Vec<TcpStream>> = Mutex::new(Vec::new());
    let listener = TcpListener::bind((address, 0)).unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            HELD.lock().unwrap_or_else(|e| e.into_inner()).push(stream);
        }
    });
    port
}
