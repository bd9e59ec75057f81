//! KEEPALIVE_PROGRAMS / --program: only listed processes get keepalive, by
//! the base name of their executable (/proc/self/exe) or of the path they
//! were started by (AT_EXECFN). Renamed and symlinked executables and an
//! interpreter, checked with getsockopt inside the real processes.

mod common;

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

const DEADLINE: Duration = Duration::from_secs(30);

fn scratch(name: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join("programs")
        .join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// (keepalive, idle) of the connection sockprobe (or a copy) makes, and
/// its stderr.
fn sockprobe_outcome(mut cmd: Command) -> ((String, String), String) {
    cmd.args(["connect", "plain"]);
    let output = common::run(cmd, DEADLINE);
    assert!(output.status.success(), "{output:?}");
    let stdout = common::stdout(&output);
    let line = stdout
        .lines()
        .find(|line| line.starts_with("client "))
        .unwrap_or_else(|| panic!("{stdout}"));
    let fields = common::fields(line);
    let got = (
        common::field(&fields, "keepalive").to_string(),
        common::field(&fields, "idle").to_string(),
    );
    (got, common::stderr(&output))
}

fn configured() -> (String, String) {
    ("1".to_string(), "60".to_string())
}

fn left_alone() -> (String, String) {
    let idle = std::fs::read_to_string("/proc/sys/net/ipv4/tcp_keepalive_time").unwrap();
    ("0".to_string(), idle.trim().to_string())
}

/// `program` run with the library, KEEPIDLE=60, debug on and `programs`.
fn with_programs(program: &std::path::Path, programs: &str) -> ((String, String), String) {
    let env = [
        ("KEEPALIVE_PROGRAMS", programs),
        ("KEEPIDLE", "60"),
        ("KEEPALIVE_DEBUG", "1"),
    ];
    sockprobe_outcome(common::command(program, true, &env))
}

#[test]
fn a_listed_program_is_configured_and_others_are_left_alone_silently() {
    let probe = common::c_program("sockprobe");
    let (got, stderr) = with_programs(&probe, "nginx, sockprobe");
    assert_eq!(got, configured());
    assert!(
        stderr.contains("libkeepalive: pid "),
        "debug lines: {stderr}"
    );
    let (got, stderr) = with_programs(&probe, "nginx,python3");
    assert_eq!(got, left_alone());
    assert_eq!(
        stderr, "",
        "an unlisted process prints nothing, even with debug on"
    );
    // Not even a bad value of another variable is mentioned there.
    let env = [("KEEPALIVE_PROGRAMS", "nginx"), ("KEEPIDLE", "0")];
    let (got, stderr) = sockprobe_outcome(common::command(&probe, true, &env));
    assert_eq!((got, stderr), (left_alone(), String::new()));
}

#[test]
fn a_renamed_executable_goes_by_its_new_name() {
    let dir = scratch("renamed");
    let renamed = dir.join("my-daemon");
    std::fs::copy(common::c_program("sockprobe"), &renamed).unwrap();
    assert_eq!(with_programs(&renamed, "my-daemon").0, configured());
    assert_eq!(with_programs(&renamed, "sockprobe").0, left_alone());
}

#[test]
fn a_symlink_matches_by_its_own_name_and_by_its_target() {
    let dir = scratch("symlinked");
    let link = dir.join("alias");
    std::os::unix::fs::symlink(common::c_program("sockprobe"), &link).unwrap();
    assert_eq!(with_programs(&link, "alias").0, configured());
    assert_eq!(with_programs(&link, "sockprobe").0, configured());
    assert_eq!(with_programs(&link, "other").0, left_alone());
}

/// python3 making a connection; prints "keepalive=K idle=I".
const PYTHON: &str = r#"
import socket
l = socket.socket(); l.bind(("127.0.0.1", 0)); l.listen()
c = socket.create_connection(l.getsockname())
print("keepalive=%d idle=%d" % (c.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE),
      c.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE)))
"#;

fn python_outcome(cmd: Command) -> (String, String) {
    let output = common::run(cmd, DEADLINE);
    assert!(output.status.success(), "{output:?}");
    let fields = common::fields(common::stdout(&output).trim());
    (
        common::field(&fields, "keepalive").to_string(),
        common::field(&fields, "idle").to_string(),
    )
}

#[test]
fn an_interpreter_goes_by_its_own_name_not_the_scripts() {
    // /usr/bin/python3 is a symlink to python3.11 on Debian 12: both names count.
    let real = std::fs::canonicalize("/usr/bin/python3").unwrap();
    let real_name = real.file_name().unwrap().to_str().unwrap().to_string();
    assert_ne!(
        real_name, "python3",
        "this test needs python3 to be a symlink"
    );
    let dir = scratch("interpreter");
    let script = dir.join("app.py");
    std::fs::write(&script, format!("#!/usr/bin/python3\n{PYTHON}")).unwrap();
    let env = |programs: &'static str| [("KEEPALIVE_PROGRAMS", programs), ("KEEPIDLE", "60")];
    for (programs, expected) in [
        ("python3", configured()),
        ("python3.11", configured()),
        ("app.py", left_alone()),
    ] {
        let mut cmd = common::command("/usr/bin/python3", true, &env(programs));
        cmd.arg(&script);
        assert_eq!(
            python_outcome(cmd),
            expected,
            "python3 app.py with {programs}"
        );
    }
    // Run directly by its #! line, a script's own path is the started-as name.
    std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    for (programs, expected) in [("app.py", configured()), ("python3", left_alone())] {
        let cmd = common::command(&script, true, &env(programs));
        assert_eq!(python_outcome(cmd), expected, "./app.py with {programs}");
    }
}

#[test]
fn a_bad_list_is_one_line_and_every_program_gets_keepalive() {
    let probe = common::c_program("sockprobe");
    let (got, stderr) = with_programs(&probe, "/usr/sbin/nginx");
    assert_eq!(got, configured());
    assert!(
        stderr.starts_with(
            "libkeepalive: KEEPALIVE_PROGRAMS=\"/usr/sbin/nginx\" is not valid: expected executable base names"
        ),
        "{stderr}"
    );
}

#[test]
fn the_command_takes_program_options_that_add_up() {
    let probe = common::c_program("sockprobe");
    for (programs, expected) in [
        (["nginx", "sockprobe"], configured()),
        (["nginx", "java"], left_alone()),
    ] {
        let mut cmd = common::command(common::keepalive_command(), false, &[]);
        cmd.args(["--idle", "60"]);
        for program in programs {
            cmd.args(["--program", program]);
        }
        cmd.arg(&probe);
        assert_eq!(sockprobe_outcome(cmd).0, expected, "{programs:?}");
    }
    let mut cmd = common::command(common::keepalive_command(), false, &[]);
    cmd.args(["--program", "nginx", "--program", "python3", "--check"]);
    let output = common::run(cmd, DEADLINE);
    let out = common::stdout(&output);
    let line = out.lines().find(|l| l.starts_with("programs")).unwrap();
    assert_eq!(
        line.split_whitespace().collect::<Vec<_>>().join(" "),
        "programs nginx, python3 --program"
    );
}
