//! The shipped artifacts of scripts/package.sh, all made from the portable
//! build (glibc 2.17 and later):
//! - the Debian package, end to end (as root): lintian finds no error, apt
//!   installs it, the library works by bare name (`LD_PRELOAD=libkeepalive.so`)
//!   in our probe (getsockopt) and in a real program (OpenBSD nc, seen with
//!   ss), /usr/bin/keepalive runs and checks, and apt purge leaves no file
//!   behind. The host is put back as it was: Debian's libkeepalive0, which
//!   the package replaces, is reinstalled if it was there. Its libc6
//!   dependency is the shipped files' real floor (Debian 11 installs it:
//!   tests/bullseye.rs);
//! - the tarball, unpacked and installed with its install.sh into a DESTDIR;
//! - the .rpm, listed with rpm -qlp and installed with rpm --root into a
//!   test root (never into this machine's rpm database).
//!
//! Also: the glibc floor the README states is the shipped library's.

mod common;

use common::portable;
use common::process::Process;
use common::*;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

const PACKAGE: &str = "keepalive";
/// Debian's library of the same name, which the package conflicts with.
const DEBIAN_PEER: &str = "libkeepalive0";
const DEADLINE: Duration = Duration::from_secs(300);

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// The release build directory common::library() uses, so that the
/// package reuses that build instead of making another.
fn target_dir() -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR")).join("release-build")
}

fn sh(program: &str, args: &[&str]) -> Output {
    let mut cmd = Command::new(program);
    cmd.args(args)
        .env("DEBIAN_FRONTEND", "noninteractive")
        .stdin(std::process::Stdio::null());
    run(cmd, DEADLINE)
}

fn check(program: &str, args: &[&str]) -> String {
    let output = sh(program, args);
    assert!(
        output.status.success(),
        "{program} {args:?}: {}{}",
        stdout(&output),
        stderr(&output)
    );
    stdout(&output)
}

fn installed(package: &str) -> bool {
    let output = sh("dpkg-query", &["-W", "-f=${Status}", package]);
    stdout(&output) == "install ok installed"
}

/// apt waits for a lock another apt holds instead of failing at once.
fn apt(args: &[&str]) -> String {
    let mut all = vec!["-o", "DPkg::Lock::Timeout=120", "-y", "-q"];
    all.extend_from_slice(args);
    check("apt-get", &all)
}

/// Purges the package and puts Debian's libkeepalive0 back if it was
/// installed, even when the test fails half-way.
struct RestoreHost {
    peer_was_installed: bool,
}

impl Drop for RestoreHost {
    fn drop(&mut self) {
        if installed(PACKAGE) {
            let _ = sh(
                "apt-get",
                &["-o", "DPkg::Lock::Timeout=120", "-y", "purge", PACKAGE],
            );
        }
        if self.peer_was_installed && !installed(DEBIAN_PEER) {
            let _ = sh(
                "apt-get",
                &[
                    "-o",
                    "DPkg::Lock::Timeout=120",
                    "-y",
                    "install",
                    DEBIAN_PEER,
                ],
            );
        }
    }
}

fn multiarch() -> String {
    check("gcc", &["-print-multiarch"]).trim().to_string()
}

/// Builds the packages with scripts/package.sh, once per test binary;
/// returns the .deb.
fn build_package() -> PathBuf {
    static BUILT: std::sync::Mutex<Option<PathBuf>> = std::sync::Mutex::new(None);
    let mut built = BUILT.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(deb) = built.as_ref() {
        return deb.clone();
    }
    let mut cmd = Command::new(repo().join("scripts/package.sh"));
    cmd.env("CARGO_TARGET_DIR", target_dir());
    let output = run(cmd, DEADLINE);
    assert!(
        output.status.success(),
        "scripts/package.sh: {}{}",
        stdout(&output),
        stderr(&output)
    );
    let arch = check("dpkg", &["--print-architecture"]);
    let deb = target_dir().join("debian").join(format!(
        "{PACKAGE}_{}-1_{}.deb",
        env!("CARGO_PKG_VERSION"),
        arch.trim()
    ));
    assert!(deb.is_file(), "{} not built", deb.display());
    *built = Some(deb.clone());
    deb
}

/// target/dist/NAME of the package build.
fn dist(name: &str) -> PathBuf {
    build_package();
    let path = target_dir().join("dist").join(name);
    assert!(path.is_file(), "{} not built", path.display());
    path
}

/// A fresh directory for one test, removed when dropped.
struct Scratch(PathBuf);

impl Scratch {
    fn new(label: &str) -> Scratch {
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
            .join(format!("package-{label}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Scratch(dir)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The socket options our probe reads back from a fresh TCP socket.
fn probe_options(env: &[(&str, &str)]) -> (String, String) {
    let mut cmd = command(c_program("sockprobe"), false, env);
    // cargo test puts target/release/deps (which holds our build of
    // libkeepalive.so) on LD_LIBRARY_PATH: a bare name must not find it.
    cmd.env_remove("LD_LIBRARY_PATH");
    cmd.args(["socket", "inet", "stream", "0"]);
    let output = run(cmd, Duration::from_secs(30));
    let line = stdout(&output)
        .lines()
        .find(|l| l.starts_with("socket "))
        .map(|l| {
            l.split_whitespace()
                .filter(|w| !w.starts_with("fd="))
                .skip(1)
                .collect::<Vec<_>>()
                .join(" ")
        })
        .unwrap_or_default();
    (line, stderr(&output))
}

/// A real program, OpenBSD nc, as a client run by `client`, connected to an
/// nc listener without the library; returns the client side's ss line.
fn nc_client_line(client: &mut dyn FnMut(u16) -> Command) -> String {
    let port = free_port();
    let mut listener = Command::new("nc");
    listener.args(["-l", "127.0.0.1", &port.to_string()]);
    let _listener = Process::spawn(listener, "nc -l");
    let listening = wait_for(Duration::from_secs(10), || {
        let out = sh("ss", &["-tlnH"]);
        stdout(&out)
            .contains(&format!("127.0.0.1:{port} "))
            .then_some(())
    });
    assert!(listening.is_some(), "nc -l never listened on {port}");
    let _client = Process::spawn(client(port), "nc client");
    client_ss_line(port, Duration::from_secs(10))
        .unwrap_or_else(|| panic!("no connection to port {port} in ss"))
}

fn nc_with(
    env: &'static [(&'static str, &'static str)],
    via_command: bool,
) -> impl FnMut(u16) -> Command {
    move |port| {
        let port = port.to_string();
        let mut cmd = if via_command {
            let mut cmd = command("/usr/bin/keepalive", false, env);
            cmd.args(["--", "nc", "-d", "127.0.0.1", &port]);
            cmd
        } else {
            let mut cmd = command("nc", false, env);
            cmd.args(["-d", "127.0.0.1", &port]);
            cmd
        };
        cmd.env("KEEPALIVE_LIB", "");
        cmd
    }
}

#[test]
fn package_builds_installs_works_by_bare_name_and_purges_clean() {
    // SAFETY: geteuid has no preconditions.
    assert_eq!(
        unsafe { libc::geteuid() },
        0,
        "the package test installs a package: run it as root, e.g. \
         sudo -E env \"PATH=$PATH\" scripts/test.sh"
    );
    for (tool, package) in [
        ("lintian", "lintian"),
        ("nc", "netcat-openbsd"),
        ("gcc", "gcc"),
    ] {
        require(tool, package);
    }
    assert!(
        !installed(PACKAGE),
        "the {PACKAGE} package is installed on this machine; this test installs and purges it, \
         so remove it first: apt-get purge {PACKAGE}"
    );
    let _restore = RestoreHost {
        peer_was_installed: installed(DEBIAN_PEER),
    };
    let library = format!("/usr/lib/{}/libkeepalive.so", multiarch());

    let deb = build_package();
    let deb = deb.to_str().unwrap();

    // lintian: no errors (warnings are listed in the failure message).
    let lint = sh("lintian", &["--fail-on", "error", deb]);
    assert!(
        lint.status.success(),
        "lintian:\n{}{}",
        stdout(&lint),
        stderr(&lint)
    );

    // Control before installing: the bare name finds nothing of ours (maybe
    // Debian's libkeepalive0, which knows no KEEPALIVE_USER_TIMEOUT).
    let ours_only = [
        ("LD_PRELOAD", "libkeepalive.so"),
        ("KEEPALIVE_USER_TIMEOUT", "4321"),
    ];
    let (before, _) = probe_options(&ours_only);
    assert!(!before.contains("user_timeout=4321"), "{before}");

    apt(&["install", deb]);
    assert!(installed(PACKAGE));
    assert!(
        !installed(DEBIAN_PEER),
        "{DEBIAN_PEER} still installed beside {PACKAGE}"
    );
    let files: Vec<String> = check("dpkg", &["-L", PACKAGE])
        .lines()
        .map(str::to_string)
        .collect();
    for expected in [
        library.as_str(),
        "/usr/lib/libkeepalive.so",
        "/usr/bin/keepalive",
        "/usr/share/man/man1/keepalive.1.gz",
        "/usr/share/man/man8/libkeepalive.8.gz",
        "/usr/share/doc/keepalive/keepalive.conf",
        "/usr/share/doc/keepalive/copyright",
        "/usr/share/doc/keepalive/keepalive-agent.service",
        "/usr/share/doc/keepalive/keepalive-attach@.service",
    ] {
        assert!(
            files.iter().any(|f| f == expected),
            "{expected} not in the package: {files:?}"
        );
    }
    // The drop-in names the packaged library, for LD_PRELOAD and ExecPaths.
    let dropin = std::fs::read_to_string("/usr/share/doc/keepalive/keepalive.conf").unwrap();
    assert!(
        dropin.contains(&format!("Environment=LD_PRELOAD={library}\n")),
        "{dropin}"
    );
    assert!(
        dropin.contains(&format!("#ExecPaths={library}\n")),
        "{dropin}"
    );
    check("man", &["-w", "keepalive"]);
    check("man", &["-w", "8", "libkeepalive"]);

    // By bare name, in our probe: what getsockopt reads back.
    let (options, err) = probe_options(&[
        ("LD_PRELOAD", "libkeepalive.so"),
        ("KEEPIDLE", "37"),
        ("KEEPINTVL", "7"),
        ("KEEPCNT", "3"),
        ("KEEPALIVE_USER_TIMEOUT", "4321"),
    ]);
    assert_eq!(
        options, "keepalive=1 idle=37 intvl=7 cnt=3 user_timeout=4321",
        "{err}"
    );
    assert!(err.is_empty(), "{err}");

    // By bare name, in a real program: the kernel's timer seen with ss.
    let line = nc_client_line(&mut nc_with(
        &[("LD_PRELOAD", "libkeepalive.so"), ("KEEPIDLE", "37")],
        false,
    ));
    let secs = keepalive_timer_secs(&line).unwrap_or_else(|| panic!("no keepalive timer: {line}"));
    assert!(secs > 30.0 && secs <= 37.0, "{line}");

    // The installed command finds the packaged library by itself.
    let report = check("/usr/bin/keepalive", &["--check"]);
    assert!(
        report.starts_with(&format!("library       {library}\n")),
        "{report}"
    );
    let line = nc_client_line(&mut nc_with(&[("KEEPIDLE", "41")], true));
    let secs = keepalive_timer_secs(&line).unwrap_or_else(|| panic!("no keepalive timer: {line}"));
    assert!(secs > 34.0 && secs <= 41.0, "{line}");

    apt(&["purge", PACKAGE]);
    assert!(!installed(PACKAGE));
    for file in &files {
        let path = Path::new(file);
        // Directories the system shares (/usr, /usr/lib, ...) stay.
        if path.is_dir() && !file.contains("keepalive") {
            continue;
        }
        assert!(
            !path.exists() && path.symlink_metadata().is_err(),
            "{file} left after purge"
        );
    }
    // And the bare name finds nothing again.
    let (after, _) = probe_options(&ours_only);
    assert!(!after.contains("user_timeout=4321"), "{after}");
}

#[test]
fn readme_states_the_glibc_floor_of_the_shipped_files() {
    // The library's and the command's: the newer of the two.
    let floor = [portable::library(), portable::command()]
        .iter()
        .map(|file| portable::glibc_floor(file))
        .max()
        .unwrap();
    let [major, minor, ..] = floor[..] else {
        panic!("odd floor {floor:?}")
    };
    let readme = std::fs::read_to_string(repo().join("README.md")).unwrap();
    let stated = format!("GLIBC_{major}.{minor}");
    assert!(
        readme.contains(&format!("glibc {major}.{minor} or later")) && readme.contains(&stated),
        "the shipped files now need {stated}: update README.md's requirements"
    );
}

#[test]
fn deb_and_rpm_depend_on_the_shipped_files_real_glibc_floor() {
    // The newest version either shipped file asks for (objdump -T)...
    let floor = [portable::library(), portable::command()]
        .iter()
        .map(|file| portable::glibc_floor(file))
        .max()
        .unwrap();
    let floor: Vec<String> = floor.iter().map(u32::to_string).collect();
    let floor = floor.join(".");
    // ... is exactly what the packages require: not the build machine's
    // glibc (which would refuse Debian 11), not less.
    let deb = build_package();
    let depends = check("dpkg-deb", &["-f", deb.to_str().unwrap(), "Depends"]);
    assert_eq!(
        depends.trim(),
        format!("libc6 (>= {floor}), libgcc-s1 | libgcc1")
    );
    let rpm = dist(&format!(
        "keepalive-{}-1.x86_64.rpm",
        env!("CARGO_PKG_VERSION")
    ));
    let requires = check("rpm", &["-qp", "--requires", rpm.to_str().unwrap()]);
    let glibc: Vec<&str> = requires
        .lines()
        .filter(|l| !l.starts_with("rpmlib("))
        .collect();
    assert_eq!(
        glibc,
        [format!("glibc >= {floor}"), "libgcc".to_string()],
        "{requires}"
    );
}

#[test]
fn tarball_holds_the_shipped_files_and_installs_with_its_install_sh() {
    let name = format!("keepalive-{}-x86_64-linux-gnu", env!("CARGO_PKG_VERSION"));
    let tarball = dist(&format!("{name}.tar.gz"));
    let scratch = Scratch::new("tarball");
    check(
        "tar",
        &[
            "-C",
            scratch.0.to_str().unwrap(),
            "-xzf",
            tarball.to_str().unwrap(),
        ],
    );
    let top = scratch.0.join(&name);
    let mut expected = vec![
        "install.sh",
        "lib/libkeepalive.so",
        "bin/keepalive",
        "man/keepalive.1",
        "man/libkeepalive.8",
        "systemd/keepalive.conf",
        "systemd/keepalive-attach@.service",
        "README.md",
        "LICENSE",
    ];
    // The node agent's unit, where the tree has one.
    if repo()
        .join("scripts/systemd/keepalive-agent.service")
        .exists()
    {
        expected.push("systemd/keepalive-agent.service");
    }
    for file in &expected {
        assert!(top.join(file).is_file(), "{file} not in {name}.tar.gz");
    }
    // The shipped build, byte for byte.
    assert_eq!(
        std::fs::read(top.join("lib/libkeepalive.so")).unwrap(),
        std::fs::read(portable::library()).unwrap()
    );
    // install.sh installs from beside itself, into a DESTDIR, for a PREFIX.
    let destdir = scratch.0.join("root");
    let mut install = Command::new(top.join("install.sh"));
    install
        .env("PREFIX", "/opt/keepalive")
        .env("DESTDIR", &destdir)
        .env_remove("CARGO_TARGET_DIR");
    let out = run(install, DEADLINE);
    assert!(out.status.success(), "install.sh: {}", stderr(&out));
    for file in [
        "opt/keepalive/lib/libkeepalive.so",
        "opt/keepalive/bin/keepalive",
        "opt/keepalive/share/man/man1/keepalive.1",
        "opt/keepalive/share/man/man8/libkeepalive.8",
        "opt/keepalive/share/doc/keepalive/keepalive.conf",
    ] {
        assert!(destdir.join(file).is_file(), "{file} not installed");
    }
    // The attach template starts and stops with the command of this PREFIX.
    let template = std::fs::read_to_string(
        destdir.join("opt/keepalive/share/doc/keepalive/keepalive-attach@.service"),
    )
    .unwrap();
    assert!(
        template.contains("\nExecStart=/opt/keepalive/bin/keepalive --attach ")
            && template.contains("\nExecStop=-/opt/keepalive/bin/keepalive --detach ")
            && !template
                .lines()
                .any(|l| l.starts_with("Exec") && l.contains("/usr/bin/keepalive")),
        "{template}"
    );
    // The agent's unit runs the command of this PREFIX.
    if repo()
        .join("scripts/systemd/keepalive-agent.service")
        .exists()
    {
        let unit = std::fs::read_to_string(
            destdir.join("opt/keepalive/share/doc/keepalive/keepalive-agent.service"),
        )
        .unwrap();
        assert!(
            unit.contains("\nExecStart=/opt/keepalive/bin/keepalive "),
            "{unit}"
        );
    }
    // The installed command finds the installed library and runs a program.
    let keepalive = destdir.join("opt/keepalive/bin/keepalive");
    assert_installed_command_configures_a_socket(&keepalive, "43");
}

#[test]
fn rpm_lists_its_files_and_installs_into_a_test_root() {
    let rpm = dist(&format!(
        "keepalive-{}-1.x86_64.rpm",
        env!("CARGO_PKG_VERSION")
    ));
    let rpm = rpm.to_str().unwrap();
    let listed = check("rpm", &["-qlp", rpm]);
    let files = [
        "/usr/lib64/libkeepalive.so",
        "/usr/lib/libkeepalive.so",
        "/usr/bin/keepalive",
        "/usr/share/man/man1/keepalive.1",
        "/usr/share/man/man8/libkeepalive.8",
        "/usr/share/doc/keepalive/keepalive.conf",
        "/usr/share/doc/keepalive/keepalive-attach@.service",
    ];
    for file in files {
        assert!(listed.lines().any(|l| l == file), "{file} not in: {listed}");
    }
    if repo()
        .join("scripts/systemd/keepalive-agent.service")
        .exists()
    {
        let unit = "/usr/share/doc/keepalive/keepalive-agent.service";
        assert!(listed.lines().any(|l| l == unit), "{unit} not in: {listed}");
    }
    // Into an empty root with its own database: --nodeps, since that root
    // holds no glibc package to satisfy "glibc >= 2.17".
    let scratch = Scratch::new("rpm");
    let root = scratch.0.to_str().unwrap();
    check("rpm", &["--root", root, "--initdb"]);
    check("rpm", &["--root", root, "-i", "--nodeps", rpm]);
    let query = check("rpm", &["--root", root, "-q", "keepalive"]);
    assert!(query.starts_with("keepalive-"), "{query}");
    for file in files {
        let path = scratch.0.join(file.trim_start_matches('/'));
        assert!(path.is_file(), "{file} not installed");
    }
    // The drop-in names the library where the rpm put it.
    let dropin =
        std::fs::read_to_string(scratch.0.join("usr/share/doc/keepalive/keepalive.conf")).unwrap();
    assert!(
        dropin.contains("Environment=LD_PRELOAD=/usr/lib64/libkeepalive.so\n"),
        "{dropin}"
    );
    // The installed command finds the installed library (through the
    // /usr/lib link) and the library configures a socket.
    let keepalive = scratch.0.join("usr/bin/keepalive");
    assert_installed_command_configures_a_socket(&keepalive, "44");
    check("rpm", &["--root", root, "-e", "keepalive"]);
    for file in files {
        let path = scratch.0.join(file.trim_start_matches('/'));
        assert!(path.symlink_metadata().is_err(), "{file} left after rpm -e");
    }
}

/// The installed `keepalive` (no KEEPALIVE_LIB: it must find the installed
/// library itself) runs the socket probe with `--idle IDLE`, and the probe's
/// socket has that idle.
fn assert_installed_command_configures_a_socket(keepalive: &Path, idle: &str) {
    let mut cmd = command(keepalive, false, &[]);
    cmd.env_remove("KEEPALIVE_LIB").args([
        "--idle",
        idle,
        "--",
        c_program("sockprobe").to_str().unwrap(),
        "socket",
        "inet",
        "stream",
        "0",
    ]);
    let out = run(cmd, DEADLINE);
    assert!(
        stdout(&out).contains(&format!("keepalive=1 idle={idle}")),
        "{out:?}"
    );
}
