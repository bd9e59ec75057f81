//! The shipped build on an older glibc for real: a Debian 11 root (bullseye,
//! glibc 2.31), made once with debootstrap and cached
//! (scripts/bullseye-root.sh), where each test installs the .deb of
//! scripts/package.sh with dpkg and runs bullseye's own programs (bash's
//! /dev/tcp, perl) with `LD_PRELOAD=libkeepalive.so` by bare name; their
//! connections are read with `ss` from outside (the root shares this
//! machine's network). Also `keepalive --check`, `keepalive -- PROG`,
//! `keepalive --status`, a bad value's one line, and the developer build
//! (GLIBC_2.34), which ld.so refuses there and the command therefore
//! refuses to start PROG with.
//!
//! The cached root is never changed: each test works in an overlay of its
//! own (lower: the cache; upper: a scratch directory), mounted with /proc in
//! a private mount and PID namespace (`unshare`) per command, so nothing is
//! left mounted or running when a command ends or is killed. As root only.

mod common;

use common::process::Process;
use common::*;
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::Mutex;
use std::time::Duration;

const DEADLINE: Duration = Duration::from_secs(120);
/// The debootstrap of the cache, when it is not there yet (about two minutes).
const FIRST_BUILD: Duration = Duration::from_secs(900);
const PATH: &str = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
const LIBRARY: &str = "/usr/lib/x86_64-linux-gnu/libkeepalive.so";

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// The cached Debian 11 root, built on first use.
fn cached_root() -> PathBuf {
    static ROOT: Mutex<Option<PathBuf>> = Mutex::new(None);
    let mut root = ROOT.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(root) = root.as_ref() {
        return root.clone();
    }
    // SAFETY: geteuid has no preconditions.
    assert_eq!(
        unsafe { libc::geteuid() },
        0,
        "the bullseye tests mount and chroot: run them as root, e.g. \
         sudo -E env \"PATH=$PATH\" cargo test --test bullseye"
    );
    for (tool, package) in [("unshare", "util-linux"), ("ss", "iproute2")] {
        common::require(tool, package);
    }
    let out = run(
        Command::new(repo().join("scripts/bullseye-root.sh")),
        FIRST_BUILD,
    );
    assert!(
        out.status.success(),
        "scripts/bullseye-root.sh: {}",
        stderr(&out)
    );
    let path = PathBuf::from(stdout(&out).trim());
    assert!(path.join(".complete").is_file(), "{}", path.display());
    *root = Some(path.clone());
    path
}

/// The .deb of scripts/package.sh, built once per test binary in the
/// portable build's own target directory.
fn deb() -> PathBuf {
    static DEB: Mutex<Option<PathBuf>> = Mutex::new(None);
    let mut deb = DEB.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(deb) = deb.as_ref() {
        return deb.clone();
    }
    let target = Path::new(env!("CARGO_TARGET_TMPDIR")).join("portable-build");
    let mut cmd = Command::new(repo().join("scripts/package.sh"));
    cmd.env("CARGO_TARGET_DIR", &target);
    let out = run(cmd, Duration::from_secs(600));
    assert!(out.status.success(), "scripts/package.sh: {}", stderr(&out));
    let path = target.join(format!(
        "debian/keepalive_{}-1_amd64.deb",
        env!("CARGO_PKG_VERSION")
    ));
    assert!(path.is_file(), "{} not built", path.display());
    *deb = Some(path.clone());
    path
}

/// One test's writable view of the cached root (an overlay), removed on drop.
struct Root {
    dir: PathBuf,
}

impl Root {
    fn new(label: &str) -> Root {
        let lower = cached_root();
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
            .join(format!("bullseye-21-{label}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        for sub in ["upper", "work", "merged"] {
            std::fs::create_dir_all(dir.join(sub)).unwrap();
        }
        std::fs::write(dir.join("lower"), lower.to_str().unwrap()).unwrap();
        Root { dir }
    }

    /// A file of the root, written into the overlay's upper layer.
    fn put(&self, inside: &str, bytes: &[u8]) {
        let path = self.dir.join("upper").join(inside.trim_start_matches('/'));
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, bytes).unwrap();
    }

    /// `env -i PATH=... ENV... ARGV` inside the root, in namespaces of its
    /// own: killing the command ends everything it started and unmounts.
    fn command(&self, env: &[(&str, &str)], argv: &[&str]) -> Command {
        let lower = std::fs::read_to_string(self.dir.join("lower")).unwrap();
        let script = format!(
            "set -e; m='{merged}'; \
             mount -t overlay overlay -o 'lowerdir={lower},upperdir={upper},workdir={work}' \"$m\"; \
             mount -t proc proc \"$m/proc\"; \
             exec chroot \"$m\" /usr/bin/env -i {PATH} \"$@\"",
            merged = self.dir.join("merged").display(),
            upper = self.dir.join("upper").display(),
            work = self.dir.join("work").display(),
        );
        let mut cmd = Command::new("unshare");
        cmd.args([
            "--mount",
            "--pid",
            "--fork",
            "--kill-child",
            "--propagation",
            "private",
            "sh",
            "-c",
            &script,
            "sh",
        ]);
        cmd.args(env.iter().map(|(name, value)| format!("{name}={value}")));
        cmd.args(argv).stdin(Stdio::null());
        cmd
    }

    fn run(&self, env: &[(&str, &str)], argv: &[&str]) -> Output {
        run(self.command(env, argv), DEADLINE)
    }

    /// The root with the package installed by dpkg.
    fn with_package(label: &str) -> Root {
        let root = Root::new(label);
        root.put("/tmp/keepalive.deb", &std::fs::read(deb()).unwrap());
        let out = root.run(&[], &["dpkg", "-i", "/tmp/keepalive.deb"]);
        assert!(
            out.status.success(),
            "dpkg -i on Debian 11: {}{}",
            stdout(&out),
            stderr(&out)
        );
        root
    }
}

impl Drop for Root {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A listener on this machine's loopback that accepts and holds connections.
struct Peer {
    port: u16,
    _held: std::sync::Arc<Mutex<Vec<TcpStream>>>,
}

fn listen() -> Peer {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let held = std::sync::Arc::new(Mutex::new(Vec::new()));
    let keep = held.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            keep.lock().unwrap_or_else(|e| e.into_inner()).push(stream);
        }
    });
    Peer { port, _held: held }
}

/// Runs a client inside the root until it prints "connected", then returns
/// the keepalive timer `ss` shows (from outside) on its side of the
/// connection to `port`, if any.
fn client_timer(root: &Root, env: &[(&str, &str)], argv: &[&str], port: u16) -> Option<f64> {
    let client = Process::spawn(root.command(env, argv), "client in bullseye");
    client
        .wait_stdout("connected", Duration::from_secs(30))
        .unwrap_or_else(|| {
            panic!(
                "{}: no connection; stdout {:?}, stderr {:?}",
                client.label,
                client.stdout(),
                client.stderr()
            )
        });
    let line = client_ss_line(port, Duration::from_secs(10))
        .unwrap_or_else(|| panic!("no connection to port {port} in ss"));
    assert!(client.stderr().is_empty(), "{}", client.stderr());
    keepalive_timer_secs(&line)
}

/// bash's /dev/tcp: connects, says so, then holds the connection.
fn bash_client(port: u16) -> Vec<String> {
    let script = format!("exec 3<>/dev/tcp/127.0.0.1/{port} && echo connected && exec sleep 60");
    vec!["bash".into(), "-c".into(), script]
}

fn perl_client(port: u16) -> Vec<String> {
    let script = format!(
        "use IO::Socket::INET; $| = 1; \
         my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1:{port}') or die $@; \
         print \"connected\\n\"; sleep 60"
    );
    vec!["perl".into(), "-e".into(), script]
}

fn strs(argv: &[String]) -> Vec<&str> {
    argv.iter().map(String::as_str).collect()
}

fn assert_timer(timer: Option<f64>, idle: f64, label: &str) {
    let timer = timer.unwrap_or_else(|| panic!("{label}: ss shows no keepalive timer"));
    assert!(
        timer <= idle && timer >= idle - 5.0,
        "{label}: ss timer {timer} s, idle {idle} s"
    );
}

#[test]
fn the_deb_installs_on_debian_11_and_a_bare_name_preload_reaches_its_programs() {
    let root = Root::with_package("preload");
    // Where dpkg put it, and Debian 11's glibc (the point of the test).
    let listed = stdout(&root.run(&[], &["dpkg", "-L", "keepalive"]));
    assert!(listed.lines().any(|l| l == LIBRARY), "{listed}");
    let glibc = stdout(&root.run(&[], &["ldd", "--version"]));
    assert!(
        glibc.lines().next().unwrap_or("").ends_with(" 2.31"),
        "{glibc}"
    );

    // Every program still starts: /bin/true and ls, silent, exit 0.
    for argv in [&["true"][..], &["ls", "/"][..]] {
        let out = root.run(&[("LD_PRELOAD", "libkeepalive.so")], argv);
        assert!(out.status.success(), "{argv:?}: {}", stderr(&out));
        assert_eq!(stderr(&out), "", "{argv:?}");
    }

    // bash's /dev/tcp and perl's IO::Socket: the kernel's timer from outside.
    for (client, idle) in [
        (bash_client as fn(u16) -> Vec<String>, 37),
        (perl_client, 38),
    ] {
        let peer = listen();
        let argv = client(peer.port);
        let idle_text = idle.to_string();
        let env = [("LD_PRELOAD", "libkeepalive.so"), ("KEEPIDLE", &idle_text)];
        let timer = client_timer(&root, &env, &strs(&argv), peer.port);
        assert_timer(timer, f64::from(idle), &argv[0]);
        // The control: the same program without the library has no timer.
        let peer = listen();
        let argv = client(peer.port);
        let timer = client_timer(&root, &[("KEEPIDLE", &idle_text)], &strs(&argv), peer.port);
        assert_eq!(timer, None, "{} without the library", argv[0]);
    }
}

#[test]
fn a_bad_value_gives_its_one_line_on_debian_11() {
    let root = Root::with_package("bad-value");
    let out = root.run(
        &[("LD_PRELOAD", "libkeepalive.so"), ("KEEPIDLE", "soon")],
        &["bash", "-c", "echo ran"],
    );
    assert!(out.status.success(), "{out:?}");
    assert_eq!(stdout(&out), "ran\n");
    let err = stderr(&out);
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), 1, "{err}");
    assert!(
        lines[0].starts_with("libkeepalive: ") && lines[0].contains("KEEPIDLE=\"soon\""),
        "{err}"
    );
}

#[test]
fn keepalive_check_and_run_work_on_debian_11() {
    let root = Root::with_package("command");
    let out = root.run(&[("KEEPIDLE", "40")], &["keepalive", "--check", "bash"]);
    let report = stdout(&out);
    assert!(out.status.success(), "{report}{}", stderr(&out));
    assert!(
        report.starts_with(&format!("library       {LIBRARY}\n")),
        "{report}"
    );
    assert!(
        report.contains("\nloads         yes: needs glibc 2.") && report.contains("has 2.31\n"),
        "{report}"
    );
    assert!(report.contains("\nidle          40 s "), "{report}");

    let peer = listen();
    let mut argv = vec!["keepalive", "--idle", "39", "--"];
    let bash = bash_client(peer.port);
    argv.extend(strs(&bash));
    let timer = client_timer(&root, &[], &argv, peer.port);
    assert_timer(timer, 39.0, "keepalive -- bash");

    // --status, from inside: the library loaded, the socket's options.
    let peer = listen();
    let script = format!(
        "exec 3<>/dev/tcp/127.0.0.1/{} && keepalive --status $$",
        peer.port
    );
    let out = root.run(
        &[],
        &["keepalive", "--idle", "41", "--", "bash", "-c", &script],
    );
    let status = stdout(&out);
    assert!(out.status.success(), "{status}{}", stderr(&out));
    assert!(
        status.contains(&format!("\nlibrary       loaded: {LIBRARY}\n")),
        "{status}"
    );
    let socket = status
        .lines()
        .find(|l| l.contains(&format!("127.0.0.1:{} ", peer.port)))
        .unwrap_or_else(|| panic!("no socket line: {status}"));
    assert!(
        socket.contains(" on ") && socket.contains(" 41s "),
        "{socket}"
    );
}

#[test]
fn the_developer_build_is_refused_before_it_stops_a_program_on_debian_11() {
    let root = Root::with_package("refuse");
    // This machine's `cargo build --release` asks for GLIBC_2.34.
    root.put(
        "/opt/dev/libkeepalive.so",
        &std::fs::read(developer_library()).unwrap(),
    );
    // The danger, as ld.so shows it: preloaded, it stops /bin/true with
    // exit 1 (not 127) and one line per missing version (README).
    let out = root.run(&[("LD_PRELOAD", "/opt/dev/libkeepalive.so")], &["true"]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    for version in ["2.32", "2.33", "2.34"] {
        let line = format!(
            "true: /lib/x86_64-linux-gnu/libc.so.6: version `GLIBC_{version}' not found \
             (required by /opt/dev/libkeepalive.so)"
        );
        assert!(stderr(&out).lines().any(|l| l == line), "{}", stderr(&out));
    }
    // The command refuses with exit 125 and one line, before running PROG.
    let dev = [("KEEPALIVE_LIB", "/opt/dev/libkeepalive.so")];
    let out = root.run(&dev, &["keepalive", "--", "bash", "-c", "echo ran"]);
    assert_eq!(out.status.code(), Some(125), "{out:?}");
    assert_eq!(stdout(&out), "");
    let err = stderr(&out);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.starts_with(
            "keepalive: not starting bash: /opt/dev/libkeepalive.so needs glibc 2.34 \
             and this system has glibc 2.31"
        ),
        "{err}"
    );
    // --check says the same and fails.
    let out = root.run(&dev, &["keepalive", "--check"]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(
        stdout(&out).contains("\nloads         no: /opt/dev/libkeepalive.so needs glibc 2.34"),
        "{}",
        stdout(&out)
    );
    // The control: the packaged library, named the same way, is accepted.
    let out = root.run(
        &[("KEEPALIVE_LIB", LIBRARY)],
        &["keepalive", "--", "bash", "-c", "echo ran"],
    );
    assert!(out.status.success(), "{out:?}");
    assert_eq!(stdout(&out), "ran\n");
}

#[test]
fn a_root_without_libgcc_s_is_refused_before_it_stops_a_program() {
    let root = Root::with_package("no-libgcc");
    // A minimal root (distroless, a hand-made chroot) without GCC's
    // unwinder; ld.so.cache still names it, as it would there.
    let libgcc_s = "/usr/lib/x86_64-linux-gnu/libgcc_s.so.1";
    let out = root.run(&[], &["rm", libgcc_s]);
    assert!(out.status.success(), "rm {libgcc_s}: {}", stderr(&out));
    // The danger, as ld.so shows it: preloaded, it stops /bin/true.
    let out = root.run(&[("LD_PRELOAD", "libkeepalive.so")], &["true"]);
    assert_eq!(out.status.code(), Some(127), "{out:?}");
    assert!(
        stderr(&out).contains("libgcc_s.so.1: cannot open shared object file"),
        "{}",
        stderr(&out)
    );
    // The command refuses with exit 125 and one line, before running PROG.
    let out = root.run(&[], &["keepalive", "--", "bash", "-c", "echo ran"]);
    assert_eq!(out.status.code(), Some(125), "{out:?}");
    assert_eq!(stdout(&out), "");
    let err = stderr(&out);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.starts_with(&format!(
            "keepalive: not starting bash: {LIBRARY} needs libgcc_s.so.1, which the \
             dynamic linker cannot find here"
        )) && err.contains("install libgcc-s1 on Debian"),
        "{err}"
    );
    // --check says no and fails.
    let out = root.run(&[], &["keepalive", "--check"]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(
        stdout(&out).contains(&format!(
            "\nloads         no: {LIBRARY} needs libgcc_s.so.1, "
        )),
        "{}",
        stdout(&out)
    );
}
