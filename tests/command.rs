//! The deployment paths, end to end: the `keepalive` command (options,
//! validation with the library's own messages, LD_PRELOAD, exec, --check,
//! warnings), scripts/install.sh, the man pages, the systemd drop-in and
//! socket activation. Helpers are local, except the list of the library's
//! variables, which is shared with the other suites (tests/common).

mod common;

use common::{our_variables, require};
use std::fs;
use std::io::{BufRead, BufReader};
use std::net::TcpStream;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

const DEADLINE: Duration = Duration::from_secs(60);

/// The variable only the command reads; the library's are `our_variables()`.
/// All are cleared so that a developer's shell cannot change a test's outcome.
const COMMAND_VARIABLE: &str = "KEEPALIVE_LIB";

fn tmp() -> PathBuf {
    PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
}

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// A fresh directory for one test.
fn scratch(name: &str) -> PathBuf {
    let dir = tmp().join("command").join(name);
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).unwrap();
    dir
}

/// target/release of a release build in a target dir of our own (the outer
/// cargo holds the lock of target/): libkeepalive.so and keepalive, side by
/// side as `cargo build --release` leaves them.
fn release_dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let target = tmp().join("release-build");
        let status = Command::new(env!("CARGO"))
            .args(["build", "--release", "--quiet", "--target-dir"])
            .arg(&target)
            .current_dir(repo())
            .status()
            .expect("run cargo build");
        assert!(status.success(), "cargo build --release failed");
        target.join("release")
    })
}

fn library() -> PathBuf {
    release_dir().join("libkeepalive.so")
}

fn keepalive_bin() -> PathBuf {
    release_dir().join("keepalive")
}

/// `program` with our variables cleared and `env` added.
fn clean(program: impl AsRef<std::ffi::OsStr>, env: &[(&str, &str)]) -> Command {
    let mut cmd = Command::new(program);
    for name in our_variables().chain([COMMAND_VARIABLE]) {
        cmd.env_remove(name);
    }
    cmd.envs(env.iter().copied());
    cmd.stdin(Stdio::null());
    cmd
}

fn keepalive(args: &[&str], env: &[(&str, &str)]) -> Command {
    let mut cmd = clean(keepalive_bin(), env);
    cmd.args(args);
    cmd
}

/// Runs to completion; kills it and fails after `DEADLINE`.
fn run(mut cmd: Command) -> Output {
    cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = cmd.spawn().unwrap_or_else(|e| panic!("spawn {cmd:?}: {e}"));
    let start = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if start.elapsed() > DEADLINE {
            let _ = child.kill();
            panic!("{cmd:?} did not finish within {DEADLINE:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// (exit code, stdout, stderr)
fn outcome(cmd: Command) -> (Option<i32>, String, String) {
    let out = run(cmd);
    (out.status.code(), text(&out.stdout), text(&out.stderr))
}

/// Kills a background process when the test ends, even by panic.
struct Background(Child);

impl Drop for Background {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

// ---------------------------------------------------------------- command

#[test]
fn release_build_puts_the_command_beside_the_library() {
    assert!(library().is_file());
    assert!(keepalive_bin().is_file());
    let (code, out, _) = outcome(keepalive(&["--version"], &[]));
    assert_eq!(code, Some(0));
    assert_eq!(
        out.trim(),
        format!("keepalive {}", env!("CARGO_PKG_VERSION"))
    );
    let (code, out, _) = outcome(keepalive(&["--help"], &[]));
    assert_eq!(code, Some(0));
    for option in [
        "--idle",
        "--interval",
        "--count",
        "--user-timeout",
        "--direction",
        "--rule",
        "--debug",
        "--off",
        "--check",
    ] {
        assert!(out.contains(option), "--help lacks {option}");
    }
}

#[test]
fn program_replaces_the_command_with_the_library_appended_to_ld_preload() {
    // libm is harmless to preload, and shows that ours is added after it.
    let other = "/lib/x86_64-linux-gnu/libm.so.6";
    let mut cmd = keepalive(
        &[
            "--idle",
            "5m",
            "--",
            "sh",
            "-c",
            "echo $$ $LD_PRELOAD $KEEPIDLE",
        ],
        &[("LD_PRELOAD", other)],
    );
    cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
    let child = cmd.spawn().unwrap();
    let pid = child.id();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let expected = format!("{pid} {other}:{} 5m", library().display());
    assert_eq!(text(&out.stdout).trim(), expected);
    assert_eq!(text(&out.stderr), "");

    // Nested: the library is listed once.
    let cmd = keepalive(
        &[
            keepalive_bin().to_str().unwrap(),
            "sh",
            "-c",
            "echo $LD_PRELOAD",
        ],
        &[],
    );
    let (_, out, _) = outcome(cmd);
    assert_eq!(out.trim(), library().display().to_string());
}

#[test]
fn exit_status_and_signals_are_the_programs() {
    let (code, _, _) = outcome(keepalive(&["sh", "-c", "exit 7"], &[]));
    assert_eq!(code, Some(7));
    let out = run(keepalive(&["sh", "-c", "kill -TERM $$"], &[]));
    assert_eq!(out.status.signal(), Some(15), "SIGTERM");
    // Rust ignores SIGPIPE in its own programs; PROGRAM must not inherit that.
    let (_, out, _) = outcome(keepalive(&["grep", "SigIgn", "/proc/self/status"], &[]));
    let mask = u64::from_str_radix(out.split_whitespace().nth(1).unwrap(), 16).unwrap();
    assert_eq!(
        mask & (1 << (13 - 1)),
        0,
        "SIGPIPE ignored in PROGRAM: {out}"
    );
}

#[test]
fn missing_or_unrunnable_programs_exit_like_env() {
    let (code, _, err) = outcome(keepalive(&["no-such-program-here"], &[]));
    assert_eq!(code, Some(127), "{err}");
    let not_executable = scratch("not-executable").join("data");
    fs::write(&not_executable, "data").unwrap();
    fs::set_permissions(&not_executable, fs::Permissions::from_mode(0o644)).unwrap();
    let (code, _, err) = outcome(keepalive(&[not_executable.to_str().unwrap()], &[]));
    assert_eq!(code, Some(126), "{err}");
    let (code, _, err) = outcome(keepalive(&["--idel", "5", "true"], &[]));
    assert_eq!(code, Some(125));
    assert!(err.contains("unknown option --idel"), "{err}");
    let (code, _, err) = outcome(keepalive(&["--idle"], &[]));
    assert_eq!(code, Some(125));
    assert!(err.contains("--idle needs a value"), "{err}");
}

/// The line the library itself prints at start-up for `name=value`.
fn library_diagnostic(name: &str, value: &str) -> String {
    let cmd = clean(
        "true",
        &[("LD_PRELOAD", library().to_str().unwrap()), (name, value)],
    );
    let (code, _, err) = outcome(cmd);
    assert_eq!(code, Some(0));
    assert_eq!(err.lines().count(), 1, "{err}");
    err.trim_end().to_string()
}

#[test]
fn bad_values_stop_before_exec_with_the_librarys_own_message() {
    let cases = [
        ("--idle", "0", "KEEPIDLE"),
        ("--idle", "1500ms", "KEEPIDLE"),
        ("--interval", "32768", "KEEPINTVL"),
        ("--count", "5s", "KEEPCNT"),
        ("--user-timeout", "-1", "KEEPALIVE_USER_TIMEOUT"),
        ("--user-timeout", "soon", "KEEPALIVE_USER_TIMEOUT"),
        ("--direction", "sideways", "KEEPALIVE_DIRECTION"),
        // The library alone would skip the bad rule; the command refuses.
        ("--rule", "net=999.0.0.0/8:off", "KEEPALIVE_RULES"),
    ];
    for (option, value, variable) in cases {
        let cmd = keepalive(&[option, value, "sh", "-c", "echo started"], &[]);
        let (code, out, err) = outcome(cmd);
        assert_eq!(code, Some(125), "{option} {value}: {err}");
        assert_eq!(out, "", "PROGRAM ran despite {option} {value}");
        let first = err.lines().next().unwrap();
        assert_eq!(first, library_diagnostic(variable, value));
        assert!(
            err.contains(&format!("{variable} is the value of {option}")),
            "{err}"
        );
    }
    // A bad inherited variable stops it too, named as the library names it.
    let cmd = keepalive(&["sh", "-c", "echo started"], &[("TCP_KEEPINTVL", "abc")]);
    let (code, out, err) = outcome(cmd);
    assert_eq!((code, out.as_str()), (Some(125), ""));
    assert_eq!(
        err.lines().next().unwrap(),
        library_diagnostic("TCP_KEEPINTVL", "abc")
    );
}

#[test]
fn an_option_replaces_the_other_spellings_of_its_setting() {
    let script = "echo ${KEEPIDLE-unset} ${TCP_KEEPIDLE-unset} ${DD_TCP_KEEPALIVE_TIME-unset}";
    let env = [("TCP_KEEPIDLE", "60"), ("DD_TCP_KEEPALIVE_TIME", "90")];
    let (code, out, err) = outcome(keepalive(&["--idle", "30", "sh", "-c", script], &env));
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(out.trim(), "30 unset unset");
    // Without the removal the library would report a conflict.
    assert_eq!(err, "");
}

#[test]
fn the_program_gets_the_configured_socket_options() {
    require("python3", "python3");
    let script = "import socket\n\
        s = socket.socket()\n\
        g = lambda level, name: str(s.getsockopt(level, name))\n\
        print(' '.join([g(socket.SOL_SOCKET, socket.SO_KEEPALIVE),\n\
            g(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE),\n\
            g(socket.IPPROTO_TCP, socket.TCP_KEEPINTVL),\n\
            g(socket.IPPROTO_TCP, socket.TCP_KEEPCNT),\n\
            g(socket.IPPROTO_TCP, 18)]))\n";
    let args = [
        "--idle",
        "41",
        "--interval",
        "7",
        "--count",
        "3",
        "--user-timeout",
        "auto",
    ];
    let mut all: Vec<&str> = args.to_vec();
    all.extend(["python3", "-c", script]);
    let (code, out, err) = outcome(keepalive(&all, &[]));
    assert_eq!(code, Some(0), "{err}");
    // auto = (41 + 7 x 3) s.
    assert_eq!(out.trim(), "1 41 7 3 62000");
    // --off: preloaded, nothing set.
    let (_, out, _) = outcome(keepalive(&["--off", "python3", "-c", script], &[]));
    assert!(out.starts_with("0 "), "{out}");
}

#[test]
fn debug_option_makes_the_library_report() {
    let (code, _, err) = outcome(keepalive(&["--debug", "--idle", "9", "true"], &[]));
    assert_eq!(code, Some(0));
    assert!(
        err.contains("libkeepalive: pid ") && err.contains("TCP_KEEPIDLE=9"),
        "{err}"
    );
}

fn sysctl(name: &str) -> String {
    fs::read_to_string(format!("/proc/sys/net/ipv4/{name}"))
        .unwrap()
        .trim()
        .to_string()
}

/// --check's lines as (label, rest), whitespace collapsed.
fn check_lines(out: &str) -> Vec<(String, String)> {
    out.lines()
        .map(|line| {
            let words: Vec<&str> = line.split_whitespace().collect();
            let (label, rest) = if words[..2] == ["tcp", "sockets"] {
                ("tcp sockets".to_string(), &words[2..])
            } else {
                (words[0].to_string(), &words[1..])
            };
            (label, rest.join(" "))
        })
        .collect()
}

fn check_value<'a>(lines: &'a [(String, String)], label: &str) -> &'a str {
    &lines
        .iter()
        .find(|(l, _)| l == label)
        .unwrap_or_else(|| panic!("no {label}"))
        .1
}

#[test]
fn check_reports_each_setting_with_its_source() {
    let (code, out, err) = outcome(keepalive(&["--check"], &[]));
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(err, "");
    let lines = check_lines(&out);
    assert_eq!(
        check_value(&lines, "library"),
        library().display().to_string()
    );
    assert_eq!(check_value(&lines, "keepalive"), "on default");
    let time = sysctl("tcp_keepalive_time");
    assert_eq!(
        check_value(&lines, "idle"),
        format!("{time} s kernel default (net.ipv4.tcp_keepalive_time = {time})")
    );
    let probes = sysctl("tcp_keepalive_probes");
    assert_eq!(
        check_value(&lines, "count"),
        format!("{probes} kernel default (net.ipv4.tcp_keepalive_probes = {probes})")
    );
    assert_eq!(check_value(&lines, "tcp sockets"), "SO_KEEPALIVE=1");

    let env = [("TCP_KEEPINTVL", "10"), ("KEEPALIVE_DEBUG", "1")];
    let (code, out, _) = outcome(keepalive(&["--idle", "1m", "--check"], &env));
    assert_eq!(code, Some(0));
    let lines = check_lines(&out);
    assert_eq!(check_value(&lines, "idle"), "60 s --idle");
    assert_eq!(check_value(&lines, "interval"), "10 s TCP_KEEPINTVL");
    assert_eq!(check_value(&lines, "debug"), "on KEEPALIVE_DEBUG");
    assert_eq!(
        check_value(&lines, "tcp sockets"),
        "SO_KEEPALIVE=1 TCP_KEEPIDLE=60 TCP_KEEPINTVL=10"
    );
}

#[test]
fn check_fails_naming_the_variable() {
    let (code, out, err) = outcome(keepalive(&["--check"], &[("KEEPCNT", "200")]));
    assert_eq!(code, Some(1));
    assert_eq!(err.trim_end(), library_diagnostic("KEEPCNT", "200"));
    assert!(check_value(&check_lines(&out), "count").ends_with("ignored: KEEPCNT"));
    let env = [("KEEPALIVE", "off"), ("DD_USE_KEEPALIVE", "1")];
    let (code, _, err) = outcome(keepalive(&["--check"], &env));
    assert_eq!(code, Some(1));
    assert!(
        err.contains("KEEPALIVE=\"off\" conflicts with DD_USE_KEEPALIVE=\"1\""),
        "{err}"
    );
}

/// A name that is almost ours is read by nobody: `--check` names it and
/// what it probably meant, with the library's own line, and exits 1. A
/// name that is no near miss of ours stays silent.
#[test]
fn check_names_variables_that_are_almost_ours() {
    for (name, meant) in [
        ("KEEPALIVE_IDLE", "KEEPIDLE"),
        ("KEEPIDEL", "KEEPIDLE"),
        ("KEEPALIVE_RULE", "KEEPALIVE_RULES"),
        ("keepcnt", "KEEPCNT"),
    ] {
        let (code, out, err) = outcome(keepalive(&["--check"], &[(name, "60")]));
        assert_eq!(code, Some(1), "{name}: {err}");
        assert_eq!(
            err,
            format!(
                "libkeepalive: {name} is not a variable libkeepalive reads: \
                 did you mean {meant}? ignoring it\n"
            )
        );
        assert!(out.contains("idle"), "{out}");
    }
    for name in ["DD_ENV", "KEEPASS_DB", "TERMINFO", "LD_BIND_NOW"] {
        let (code, _, err) = outcome(keepalive(&["--check"], &[(name, "1")]));
        assert_eq!((code, err.as_str()), (Some(0), ""), "{name}");
    }
    // The command's own variable is ours too, not a near miss.
    let library = library();
    let env = [(COMMAND_VARIABLE, library.to_str().unwrap())];
    let (code, _, err) = outcome(keepalive(&["--check"], &env));
    assert_eq!((code, err.as_str()), (Some(0), ""), "{COMMAND_VARIABLE}");
}

#[test]
fn check_lists_the_rules_and_rule_options_replace_the_variable() {
    let cmd = keepalive(&["--rule", "net=127.0.0.0/8:off", "--check"], &[]);
    let (code, out, err) = outcome(cmd);
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(err, "");
    let lines = check_lines(&out);
    assert_eq!(check_value(&lines, "rules"), "1 --rule");
    assert_eq!(
        check_value(&lines, "rule"),
        "1 net=127.0.0.0/8:off -> left alone"
    );
    assert_eq!(
        check_value(&lines, "tcp sockets"),
        "SO_KEEPALIVE=1 when no rule matches"
    );

    // The variable alone is a source too.
    let env = [("KEEPALIVE_RULES", "*:off")];
    let (code, out, err) = outcome(keepalive(&["--check"], &env));
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(
        check_value(&check_lines(&out), "rules"),
        "1 KEEPALIVE_RULES"
    );

    // Rule options add up in order and replace an inherited KEEPALIVE_RULES.
    let args = [
        "--rule",
        "port=22:off",
        "--rule=*:idle=9",
        "sh",
        "-c",
        "echo \"$KEEPALIVE_RULES\"",
    ];
    let (code, out, err) = outcome(keepalive(&args, &env));
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(out.trim(), "port=22:off; *:idle=9");
}

// ---------------------------------------------------------------- warnings

fn compile(dir: &Path, name: &str, source: &str, flags: &[&str]) -> PathBuf {
    require("gcc", "gcc libc6-dev");
    let c = dir.join(format!("{name}.c"));
    fs::write(&c, source).unwrap();
    let out = dir.join(name);
    let result = Command::new("gcc")
        .args(flags)
        .arg("-o")
        .arg(&out)
        .arg(&c)
        .output()
        .unwrap();
    assert!(result.status.success(), "gcc: {}", text(&result.stderr));
    out
}

#[test]
fn unreachable_programs_get_one_warning_and_still_run() {
    let dir = scratch("warnings");
    let source = "int main(void) { return 3; }\n";
    let dynamic = compile(&dir, "dynamic", source, &[]);
    let fully_static = compile(&dir, "static", source, &["-static"]);
    // A Go binary as far as the ELF goes: the section Go's linker writes.
    require("objcopy", "binutils");
    let note = dir.join("buildid");
    fs::write(&note, b"go build id").unwrap();
    let go = dir.join("go-program");
    let status = Command::new("objcopy")
        .arg(format!("--add-section=.note.go.buildid={}", note.display()))
        .arg(&dynamic)
        .arg(&go)
        .status()
        .unwrap();
    assert!(status.success());

    let (code, _, err) = outcome(keepalive(&[dynamic.to_str().unwrap()], &[]));
    assert_eq!((code, err.as_str()), (Some(3), ""));
    for (program, why) in [(&fully_static, "statically linked"), (&go, "Go program")] {
        let (code, _, err) = outcome(keepalive(&[program.to_str().unwrap()], &[]));
        assert_eq!(code, Some(3), "{err}");
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(err.starts_with("keepalive: warning: "), "{err}");
        assert!(err.contains(why), "{err}");
    }
    // --check only inspects PROGRAM: the warning, and its own exit status.
    let (code, out, err) = outcome(keepalive(&["--check", go.to_str().unwrap()], &[]));
    assert_eq!(code, Some(0), "{err}");
    assert!(out.contains("tcp sockets"), "{out}");
    assert!(err.contains("Go program"), "{err}");
    // setuid to another user: ld.so would ignore LD_PRELOAD (we are root, so
    // the program's owner must be someone else for it to matter).
    let setuid = dir.join("setuid");
    fs::copy(&dynamic, &setuid).unwrap();
    std::os::unix::fs::chown(&setuid, Some(65534), None).unwrap();
    fs::set_permissions(&setuid, fs::Permissions::from_mode(0o4755)).unwrap();
    let (code, _, err) = outcome(keepalive(&[setuid.to_str().unwrap()], &[]));
    assert_eq!(code, Some(3), "{err}");
    assert!(err.contains("is setuid"), "{err}");
    // A script is not judged by its own bytes.
    let script = dir.join("script");
    fs::write(&script, "#!/bin/sh\nexit 4\n").unwrap();
    fs::set_permissions(&script, fs::Permissions::from_mode(0o755)).unwrap();
    let (code, _, err) = outcome(keepalive(&[script.to_str().unwrap()], &[]));
    assert_eq!((code, err.as_str()), (Some(4), ""));
}

// ---------------------------------------------------------------- location

#[test]
fn library_is_found_by_variable_layout_or_own_directory() {
    let dir = scratch("locate");
    // KEEPALIVE_LIB wins, and a wrong one is an error, not a fallback.
    let copy = dir.join("libkeepalive-copy.so");
    fs::copy(library(), &copy).unwrap();
    let lib = copy.to_str().unwrap();
    let cmd = keepalive(&["sh", "-c", "echo $LD_PRELOAD"], &[("KEEPALIVE_LIB", lib)]);
    assert_eq!(outcome(cmd).1.trim(), lib);
    let cmd = keepalive(
        &["true"],
        &[("KEEPALIVE_LIB", "/nonexistent/libkeepalive.so")],
    );
    let (code, _, err) = outcome(cmd);
    assert_eq!(code, Some(125));
    assert!(err.contains("KEEPALIVE_LIB"), "{err}");
    // The command alone, with no library near it.
    let lonely = dir.join("bin");
    fs::create_dir_all(&lonely).unwrap();
    fs::copy(keepalive_bin(), lonely.join("keepalive")).unwrap();
    let mut cmd = clean(lonely.join("keepalive"), &[]);
    cmd.arg("true");
    let (code, _, err) = outcome(cmd);
    assert_eq!(code, Some(125));
    assert!(err.contains("cannot find libkeepalive.so"), "{err}");
    // Installed layout: PREFIX/bin/keepalive and PREFIX/lib/libkeepalive.so.
    fs::create_dir_all(dir.join("lib")).unwrap();
    fs::copy(library(), dir.join("lib/libkeepalive.so")).unwrap();
    let mut cmd = clean(lonely.join("keepalive"), &[]);
    cmd.args(["sh", "-c", "echo $LD_PRELOAD"]);
    let expected = dir.join("lib/libkeepalive.so").canonicalize().unwrap();
    assert_eq!(outcome(cmd).1.trim(), expected.to_str().unwrap());
}

// ---------------------------------------------------------------- install

/// Every file and directory under `root`, relative, sorted.
fn tree(root: &Path) -> Vec<String> {
    let mut found = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            let relative = path.strip_prefix(root).unwrap().display().to_string();
            if path.is_dir() {
                stack.push(path);
                found.push(format!("{relative}/"));
            } else {
                found.push(relative);
            }
        }
    }
    found.sort();
    found
}

fn install_script(destdir: &Path, uninstall: bool) -> Output {
    let mut cmd = clean(repo().join("scripts/install.sh"), &[]);
    if uninstall {
        cmd.arg("--uninstall");
    }
    cmd.env("DESTDIR", destdir)
        .env("PREFIX", "/usr/local")
        .env("CARGO_TARGET_DIR", release_dir().parent().unwrap());
    let out = run(cmd);
    assert!(out.status.success(), "install.sh: {}", text(&out.stderr));
    out
}

#[test]
fn install_then_uninstall_leaves_exactly_what_was_there() {
    let destdir = scratch("install");
    // Something of someone else's in a directory the install also uses.
    fs::create_dir_all(destdir.join("usr/local/bin")).unwrap();
    fs::write(destdir.join("usr/local/bin/other"), "x").unwrap();
    let before = tree(&destdir);

    install_script(&destdir, false);
    let root = destdir.join("usr/local");
    for (file, mode) in [
        ("bin/keepalive", 0o755),
        ("lib/libkeepalive.so", 0o644),
        ("share/man/man1/keepalive.1", 0o644),
        ("share/man/man8/libkeepalive.8", 0o644),
        ("share/doc/keepalive/keepalive.conf", 0o644),
    ] {
        let meta = fs::metadata(root.join(file)).unwrap_or_else(|_| panic!("{file} missing"));
        assert_eq!(meta.permissions().mode() & 0o777, mode, "{file}");
    }
    // Installing twice is fine (an upgrade) and still uninstalls cleanly.
    install_script(&destdir, false);

    // The installed command, run from elsewhere, finds the installed library
    // through ../lib and preloads it.
    let installed = root.join("bin/keepalive");
    let mut cmd = clean(&installed, &[]);
    cmd.args(["--check"]).current_dir("/");
    let (code, out, err) = outcome(cmd);
    assert_eq!(code, Some(0), "{err}");
    let lib = root.join("lib/libkeepalive.so");
    assert_eq!(
        check_value(&check_lines(&out), "library"),
        lib.to_str().unwrap()
    );
    let mut cmd = clean(&installed, &[]);
    cmd.args(["--debug", "--idle", "8", "true"])
        .current_dir("/");
    let (code, _, err) = outcome(cmd);
    assert_eq!(code, Some(0));
    assert!(err.contains("TCP_KEEPIDLE=8"), "library not loaded: {err}");

    install_script(&destdir, true);
    assert_eq!(tree(&destdir), before);
}

#[test]
fn install_refuses_prefixes_ld_preload_cannot_hold() {
    let mut cmd = clean(repo().join("scripts/install.sh"), &[]);
    cmd.env("DESTDIR", scratch("bad-prefix"))
        .env("PREFIX", "/opt/my tools");
    let (code, _, err) = outcome(cmd);
    assert_eq!(code, Some(2));
    assert!(err.contains("space or a colon"), "{err}");
}

// ---------------------------------------------------------------- man pages

#[test]
fn man_pages_render_without_warnings() {
    require("man", "man-db groff-base");
    for page in ["man/keepalive.1", "man/libkeepalive.8"] {
        for width in ["80", "120"] {
            let mut cmd = clean("man", &[("MANWIDTH", width)]);
            cmd.args(["--warnings", "-l"]).arg(repo().join(page));
            let (code, out, err) = outcome(cmd);
            assert_eq!(code, Some(0), "{page}: {err}");
            assert_eq!(err, "", "{page} at width {width}");
            for section in [
                "NAME",
                "SYNOPSIS",
                "DESCRIPTION",
                "EXAMPLES",
                "EXIT STATUS",
                "SEE ALSO",
            ] {
                assert!(
                    out.contains(&format!("\n{section}\n")),
                    "{page} lacks {section}"
                );
            }
        }
    }
    // Every variable the library reads is documented in libkeepalive(8).
    let page = fs::read_to_string(repo().join("man/libkeepalive.8")).unwrap();
    for variable in keepalive_core::variables::NAMES {
        assert!(page.contains(variable), "libkeepalive.8 lacks {variable}");
    }
}

// ---------------------------------------------------------------- systemd

const SAMPLE_UNIT: &str = "[Unit]\nDescription=sample service for the keepalive drop-in\n\n\
    [Service]\nExecStart=/bin/sleep infinity\n\n[Install]\nWantedBy=multi-user.target\n";

/// `systemd-analyze verify` of sample.service with `dropin` as its drop-in.
fn verify_with_dropin(name: &str, dropin: &str) -> (Option<i32>, String) {
    require("systemd-analyze", "systemd");
    let units = scratch(name);
    fs::write(units.join("sample.service"), SAMPLE_UNIT).unwrap();
    fs::create_dir_all(units.join("sample.service.d")).unwrap();
    fs::write(units.join("sample.service.d/keepalive.conf"), dropin).unwrap();
    // Our directory first, then the defaults (the trailing colon).
    let mut cmd = clean("systemd-analyze", &[]);
    cmd.env("SYSTEMD_UNIT_PATH", format!("{}:", units.display()))
        .arg("verify")
        .arg(units.join("sample.service"));
    let (code, _, err) = outcome(cmd);
    (code, err)
}

fn dropin() -> String {
    fs::read_to_string(repo().join("scripts/systemd/keepalive.conf")).unwrap()
}

#[test]
fn systemd_drop_in_verifies_and_its_values_are_valid() {
    let (code, err) = verify_with_dropin("systemd-ok", &dropin());
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(err, "");
    // The drop-in really is read: a bad key in it is reported.
    let (_, err) = verify_with_dropin("systemd-bad", &format!("{}\nBogusKey=1\n", dropin()));
    assert!(
        err.contains("keepalive.conf") && err.contains("BogusKey"),
        "{err}"
    );

    // Every assignment, commented out or not, passes the library's rules.
    let mut assignments = Vec::new();
    for line in dropin().lines() {
        let line = line.trim_start_matches('#');
        if let Some(assignment) = line.strip_prefix("Environment=") {
            let (name, value) = assignment.split_once('=').unwrap();
            assignments.push((name.to_string(), value.to_string()));
        }
    }
    let names: Vec<&str> = assignments.iter().map(|(n, _)| n.as_str()).collect();
    for expected in [
        "LD_PRELOAD",
        "KEEPIDLE",
        "KEEPINTVL",
        "KEEPCNT",
        "KEEPALIVE_USER_TIMEOUT",
    ] {
        assert!(names.contains(&expected), "drop-in lacks {expected}");
    }
    for (name, value) in &assignments {
        if name == "LD_PRELOAD" {
            assert_eq!(value, "/usr/local/lib/libkeepalive.so");
            continue;
        }
        let (code, _, err) = outcome(keepalive(&["--check"], &[(name, value)]));
        assert_eq!(code, Some(0), "{name}={value}: {err}");
    }
}

// ---------------------------------------------------------------- activation

/// A free port on 127.0.0.1 (bound, then released for the activator).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// `ss -tnoH state established` for the server side of `port`.
fn server_side(port: u16) -> Option<String> {
    let out = Command::new("ss")
        .args(["-tnoH", "state", "established"])
        .output()
        .ok()?;
    text(&out.stdout)
        .lines()
        .find(|line| {
            // Recv-Q Send-Q Local Peer [timer]: ours is the local address.
            line.split_whitespace()
                .nth(2)
                .is_some_and(|local| local == format!("127.0.0.1:{port}"))
        })
        .map(str::to_string)
}

/// The seconds left on `timer:(keepalive,36sec,0)` (or `1min2sec`).
fn keepalive_secs(line: &str) -> Option<u64> {
    let start = line.find("timer:(keepalive,")? + "timer:(keepalive,".len();
    let field = line[start..].split(',').next()?;
    let minutes: u64 = field
        .split_once("min")
        .map_or(Some(0), |(m, _)| m.parse().ok())?;
    let rest = field.split_once("min").map_or(field, |(_, s)| s);
    let seconds: u64 = rest.strip_suffix("sec").unwrap_or("0").parse().ok()?;
    Some(minutes * 60 + seconds)
}

/// A server that accepts one connection on the listener systemd passes as
/// fd 3 (it never calls socket() for it), says so, and holds it open.
const SERVER: &str = "import socket\n\
    listener = socket.socket(fileno=3)\n\
    conn, _ = listener.accept()\n\
    conn.sendall(b'accepted\\n')\n\
    conn.recv(1)\n";

/// Activates SERVER on a fresh port through `launcher` (the arguments
/// between `-l ADDR` and the server), connects, and returns the server
/// side's `ss` line once it is established.
fn activated_connection(launcher: &[&str]) -> String {
    require("systemd-socket-activate", "systemd");
    require("ss", "iproute2");
    require("python3", "python3");
    let port = free_port();
    let mut cmd = clean("systemd-socket-activate", &[]);
    cmd.arg("-l")
        .arg(format!("127.0.0.1:{port}"))
        .args(launcher);
    cmd.args(["python3", "-c", SERVER])
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let _server = Background(cmd.spawn().expect("spawn systemd-socket-activate"));
    let start = Instant::now();
    let stream = loop {
        match TcpStream::connect(("127.0.0.1", port)) {
            Ok(stream) => break stream,
            Err(err) if start.elapsed() > Duration::from_secs(10) => panic!("connect: {err}"),
            Err(_) => std::thread::sleep(Duration::from_millis(50)),
        }
    };
    stream.set_read_timeout(Some(DEADLINE)).unwrap();
    let mut line = String::new();
    BufReader::new(&stream).read_line(&mut line).unwrap();
    assert_eq!(line, "accepted\n");
    // The server's send has been acknowledged once we read it; give ss a
    // moment for the keepalive timer to be armed.
    std::thread::sleep(Duration::from_millis(200));
    server_side(port).expect("no established server-side connection in ss")
}

#[test]
fn socket_activated_connections_get_keepalive() {
    let lib = format!("LD_PRELOAD={}", library().display());
    let line = activated_connection(&["-E", &lib, "-E", "KEEPIDLE=37"]);
    let secs = keepalive_secs(&line).unwrap_or_else(|| panic!("no keepalive timer: {line}"));
    assert!(
        (30..=37).contains(&secs),
        "timer {secs}s is not KEEPIDLE=37: {line}"
    );

    // Through the command as well.
    let command = keepalive_bin().display().to_string();
    let line = activated_connection(&[&command, "--idle", "43", "--"]);
    let secs = keepalive_secs(&line).unwrap_or_else(|| panic!("no keepalive timer: {line}"));
    assert!(
        (36..=43).contains(&secs),
        "timer {secs}s is not --idle 43: {line}"
    );

    // Control: without the library the same connection has no timer.
    let line = activated_connection(&[]);
    assert!(!line.contains("keepalive"), "{line}");
}

/// A long bad rule: the library and `keepalive --check` print the very same
/// line, and it ends with what is valid (the rule's text is cut, not it).
#[test]
fn a_long_bad_rule_is_the_same_whole_line_in_the_library_and_check() {
    let rule = format!("net=10.0.0.0/8,port=5432:idle={}", "9".repeat(2000));
    let env = [("KEEPALIVE_RULES", rule.as_str())];
    let mut with_library = clean("/bin/true", &env);
    with_library.env("LD_PRELOAD", library());
    let library_line = text(&run(with_library).stderr);
    assert_eq!(library_line.lines().count(), 1, "{library_line}");
    let library_line = library_line.lines().next().unwrap().to_string();
    assert!(
        library_line.ends_with(keepalive_core::rules::RULE_SYNTAX),
        "{library_line}"
    );
    assert!(library_line.len() < 600, "{library_line}");
    let check = run(keepalive(&["--check"], &env));
    let printed = format!("{}{}", text(&check.stdout), text(&check.stderr));
    assert!(
        printed.lines().any(|line| line == library_line),
        "--check did not print the library's line {library_line:?}:\n{printed}"
    );
}
