//! `keepalive --status` against real processes: a Python program holding a
//! listener, a connection it made and one it accepted, which prints what
//! getsockopt says about each of its own sockets. The command must report
//! the same values, read from outside.

mod common;

use common::process::Process;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

const DEADLINE: Duration = Duration::from_secs(30);

/// Prints "fd=N keepalive=K idle=I intvl=V cnt=C user_timeout=U" for each
/// of its three sockets, then "ready", then waits for stdin to close.
/// argv[1], if given, is an idle time the program sets itself on the
/// accepted socket.
const TARGET: &str = r#"
import socket, sys
l = socket.socket()
l.bind(("127.0.0.1", 0))
l.listen()
c = socket.create_connection(l.getsockname())
a, _ = l.accept()
if len(sys.argv) > 1:
    a.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE, int(sys.argv[1]))
for s in (l, c, a):
    g = lambda level, name: s.getsockopt(level, name)
    print("fd=%d keepalive=%d idle=%d intvl=%d cnt=%d user_timeout=%d" % (
        s.fileno(), g(socket.SOL_SOCKET, socket.SO_KEEPALIVE),
        g(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE), g(socket.IPPROTO_TCP, socket.TCP_KEEPINTVL),
        g(socket.IPPROTO_TCP, socket.TCP_KEEPCNT), g(socket.IPPROTO_TCP, socket.TCP_USER_TIMEOUT)))
print("ready", flush=True)
sys.stdin.read()
"#;

/// Written once per test binary: the tests run in parallel, and rewriting
/// the file while another test's python3 was reading it gave that one an
/// empty script (it exited at once, without "ready": a flaky failure).
fn target_script() -> PathBuf {
    static SCRIPT: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    SCRIPT
        .get_or_init(|| {
            let path = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("status-target.py");
            std::fs::write(&path, TARGET).unwrap();
            path
        })
        .clone()
}

/// The Python target, started with `preload` as LD_PRELOAD (if any) and `env`.
fn start(preload: Option<&Path>, env: &[(&str, &str)], own_idle: Option<u32>) -> Process {
    start_in(None, preload, env, own_idle)
}

/// The same, started inside `cgroup` (it joins between fork and exec).
fn start_in(
    cgroup: Option<&Path>,
    preload: Option<&Path>,
    env: &[(&str, &str)],
    own_idle: Option<u32>,
) -> Process {
    // Both builds first: a release build on a busy machine must not eat
    // into the target's start-up deadline.
    common::keepalive_command();
    let mut cmd = common::command("/usr/bin/python3", false, env);
    if let Some(cgroup) = cgroup {
        use std::io::Write;
        use std::os::unix::process::CommandExt;
        let mut procs = std::fs::OpenOptions::new()
            .write(true)
            .open(cgroup.join("cgroup.procs"))
            .unwrap();
        // SAFETY: one write(2) between fork and exec, no allocation.
        unsafe { cmd.pre_exec(move || procs.write_all(b"0")) };
    }
    if let Some(preload) = preload {
        cmd.env("LD_PRELOAD", preload);
    }
    cmd.arg(target_script());
    if let Some(idle) = own_idle {
        cmd.arg(idle.to_string());
    }
    let process = Process::spawn(cmd, "python3 target");
    assert!(
        process.wait_stdout("ready", DEADLINE).is_some(),
        "{}: {}",
        process.label,
        process.stderr()
    );
    process
}

/// The target's own view: fd -> the words it printed for that socket.
fn own_view(process: &Process) -> HashMap<i64, Vec<(String, String)>> {
    process
        .stdout()
        .lines()
        .filter(|line| line.starts_with("fd="))
        .map(|line| {
            let fields = common::fields(line);
            (common::field(&fields, "fd").parse().unwrap(), fields)
        })
        .collect()
}

fn pid_of(process: &Process) -> u32 {
    process.id()
}

fn status(args: &[&str]) -> Output {
    let mut cmd = Command::new(common::keepalive_command());
    cmd.args(args);
    common::run(cmd, DEADLINE)
}

/// A tiny JSON reader for our own output: enough to pull out values by key.
mod json {
    #[derive(Debug, Clone, PartialEq)]
    pub enum Value {
        Null,
        Bool(bool),
        Number(f64),
        Text(String),
        List(Vec<Value>),
        Object(Vec<(String, Value)>),
    }

    impl Value {
        pub fn get(&self, key: &str) -> &Value {
            match self {
                Value::Object(pairs) => pairs
                    .iter()
                    .find(|(k, _)| k == key)
                    .map(|(_, v)| v)
                    .unwrap_or_else(|| panic!("no key {key} in {self:?}")),
                _ => panic!("not an object: {self:?}"),
            }
        }
        pub fn list(&self) -> &[Value] {
            match self {
                Value::List(items) => items,
                _ => panic!("not a list: {self:?}"),
            }
        }
        pub fn number(&self) -> i64 {
            match self {
                Value::Number(n) => *n as i64,
                _ => panic!("not a number: {self:?}"),
            }
        }
        pub fn text(&self) -> &str {
            match self {
                Value::Text(t) => t,
                _ => panic!("not text: {self:?}"),
            }
        }
    }

    pub fn parse(text: &str) -> Value {
        let mut chars = text.trim().chars().peekable();
        let value = parse_value(&mut chars);
        assert!(chars.next().is_none(), "trailing text in {text}");
        value
    }

    type Chars<'a> = std::iter::Peekable<std::str::Chars<'a>>;

    fn skip(chars: &mut Chars) {
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
    }

    fn parse_value(chars: &mut Chars) -> Value {
        skip(chars);
        match chars.peek().copied() {
            Some('{') => {
                chars.next();
                let mut pairs = Vec::new();
                loop {
                    skip(chars);
                    if chars.peek() == Some(&'}') {
                        chars.next();
                        return Value::Object(pairs);
                    }
                    let Value::Text(key) = parse_value(chars) else {
                        panic!("key")
                    };
                    skip(chars);
                    assert_eq!(chars.next(), Some(':'));
                    pairs.push((key, parse_value(chars)));
                    skip(chars);
                    if chars.peek() == Some(&',') {
                        chars.next();
                    }
                }
            }
            Some('[') => {
                chars.next();
                let mut items = Vec::new();
                loop {
                    skip(chars);
                    if chars.peek() == Some(&']') {
                        chars.next();
                        return Value::List(items);
                    }
                    items.push(parse_value(chars));
                    skip(chars);
                    if chars.peek() == Some(&',') {
                        chars.next();
                    }
                }
            }
            Some('"') => {
                chars.next();
                let mut text = String::new();
                loop {
                    match chars.next().expect("unterminated string") {
                        '"' => return Value::Text(text),
                        '\\' => match chars.next().unwrap() {
                            'n' => text.push('\n'),
                            't' => text.push('\t'),
                            'u' => {
                                let hex: String = chars.by_ref().take(4).collect();
                                text.push(
                                    char::from_u32(u32::from_str_radix(&hex, 16).unwrap()).unwrap(),
                                );
                            }
                            c => text.push(c),
                        },
                        c => text.push(c),
                    }
                }
            }
            _ => {
                let mut word = String::new();
                while chars
                    .peek()
                    .is_some_and(|c| c.is_ascii_alphanumeric() || "-+.".contains(*c))
                {
                    word.push(chars.next().unwrap());
                }
                match word.as_str() {
                    "null" => Value::Null,
                    "true" => Value::Bool(true),
                    "false" => Value::Bool(false),
                    number => {
                        Value::Number(number.parse().unwrap_or_else(|_| panic!("{number:?}")))
                    }
                }
            }
        }
    }
}

/// `--status PID --json`, parsed; asserts exit status 0.
fn status_json(pid: u32) -> json::Value {
    let output = status(&["--status", &pid.to_string(), "--json"]);
    assert_eq!(output.status.code(), Some(0), "{}", common::stderr(&output));
    json::parse(&common::stdout(&output))
}

/// Every socket the target reports is in the status with the same values,
/// read by the command from outside.
fn assert_matches_own_view(process: &Process, report: &json::Value) {
    let own = own_view(process);
    assert_eq!(own.len(), 3, "{}", process.stdout());
    let connections = report.get("connections").list();
    for (fd, fields) in &own {
        let row = connections
            .iter()
            .find(|c| c.get("fd").number() == *fd)
            .unwrap_or_else(|| panic!("fd {fd} missing from {connections:?}"));
        let keepalive = common::field(fields, "keepalive") == "1";
        assert_eq!(
            row.get("keepalive"),
            &json::Value::Bool(keepalive),
            "fd {fd}"
        );
        for (key, theirs) in [
            ("idle", "idle"),
            ("interval", "intvl"),
            ("count", "cnt"),
            ("user_timeout_ms", "user_timeout"),
        ] {
            assert_eq!(
                row.get(key).number().to_string(),
                common::field(fields, theirs),
                "fd {fd} {key}"
            );
        }
        assert_eq!(row.get("source").text(), "getsockopt");
    }
    let states: Vec<&str> = connections.iter().map(|c| c.get("state").text()).collect();
    assert_eq!(states, ["LISTEN", "ESTABLISHED", "ESTABLISHED"]);
    let local = connections[0].get("local").text();
    assert!(local.starts_with("127.0.0.1:"), "{local}");
    // The accepted connection's remote end is the client's local one.
    assert_eq!(
        connections[2].get("remote").text(),
        connections[1].get("local").text()
    );
}

#[test]
fn a_preloaded_process_shows_the_library_and_its_configured_sockets() {
    let process = start(Some(common::library()), &common::ALL_TIMERS, None);
    let report = status_json(pid_of(&process));
    assert_eq!(report.get("pid").number(), i64::from(pid_of(&process)));
    assert_eq!(report.get("library_loaded"), &json::Value::Bool(true));
    assert!(report.get("warnings").list().is_empty(), "{report:?}");
    assert_eq!(report.get("settings").get("idle").number(), 60);
    assert_matches_own_view(&process, &report);
    // The configured values, as the library's own probes see them.
    let own = own_view(&process);
    for fields in own.values() {
        assert_eq!(common::field(fields, "idle"), "60");
        assert_eq!(common::field(fields, "user_timeout"), "1500");
    }
    // The table for people says the same.
    let output = status(&["--status", &pid_of(&process).to_string()]);
    assert_eq!(output.status.code(), Some(0));
    let text = common::stdout(&output);
    assert!(text.contains("library       loaded: "), "{text}");
    assert!(
        text.contains("idle          60 s             KEEPIDLE"),
        "{text}"
    );
    let row = text
        .lines()
        .find(|line| line.contains("ESTABLISHED"))
        .unwrap_or_else(|| panic!("{text}"));
    let words: Vec<&str> = row.split_whitespace().collect();
    assert_eq!(words[4..], ["on", "60s", "10s", "6", "1500ms"], "{row}");
}

#[test]
fn a_process_without_the_library_shows_kernel_defaults() {
    let process = start(None, &[], None);
    let report = status_json(pid_of(&process));
    assert_eq!(report.get("library_loaded"), &json::Value::Bool(false));
    assert!(report.get("warnings").list().is_empty(), "{report:?}");
    assert_matches_own_view(&process, &report);
    let default_idle: i64 = std::fs::read_to_string("/proc/sys/net/ipv4/tcp_keepalive_time")
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    for connection in report.get("connections").list() {
        assert_eq!(connection.get("keepalive"), &json::Value::Bool(false));
        assert_eq!(connection.get("idle").number(), default_idle);
    }
}

#[test]
fn a_failed_preload_is_a_warning() {
    // A path that does not exist, and a file that is not a library.
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("status-broken");
    std::fs::create_dir_all(&dir).unwrap();
    let broken = dir.join("libkeepalive.so");
    std::fs::write(&broken, "not an ELF file\n").unwrap();
    let missing = PathBuf::from("/nonexistent/libkeepalive.so");
    for (preload, cause) in [
        (&missing, "no such file in the process's file system"),
        (&broken, "ld.so printed why on the program's stderr"),
    ] {
        let process = start(Some(preload), &common::ALL_TIMERS, None);
        // ld.so said so once, and the program ran anyway.
        assert!(
            process.stderr().contains("cannot be preloaded"),
            "{}",
            process.stderr()
        );
        let report = status_json(pid_of(&process));
        assert_eq!(report.get("library_loaded"), &json::Value::Bool(false));
        let warnings = report.get("warnings").list();
        assert_eq!(warnings.len(), 1, "{warnings:?}");
        let warning = warnings[0].text();
        assert!(
            warning.starts_with(&format!(
                "LD_PRELOAD names {} but it is not mapped",
                preload.display()
            )),
            "{warning}"
        );
        assert!(warning.contains(cause), "{warning}");
        // Its sockets are the kernel's defaults: nothing was configured.
        for connection in report.get("connections").list() {
            assert_eq!(connection.get("keepalive"), &json::Value::Bool(false));
        }
        let output = status(&["--status", &pid_of(&process).to_string()]);
        assert!(common::stdout(&output).contains("warning: LD_PRELOAD names"));
    }
}

#[test]
fn a_preload_refused_by_a_noexec_mount_names_the_mount() {
    // What a hardened systemd unit (NoExecPaths=) does, in a mount namespace
    // of the target's own: the library sits on a tmpfs mounted noexec.
    common::keepalive_command();
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("status-noexec");
    std::fs::create_dir_all(&dir).unwrap();
    let preload = dir.join("libkeepalive.so");
    let script = format!(
        "mount -t tmpfs -o noexec none {dir} && cp {library} {dir}/ && \
         exec env LD_PRELOAD={preload} KEEPIDLE=60 /usr/bin/python3 {target}",
        dir = dir.display(),
        library = common::library().display(),
        preload = preload.display(),
        target = target_script().display(),
    );
    let mut cmd = common::command("unshare", false, &[]);
    cmd.args(["--mount", "--propagation", "private", "sh", "-c", &script]);
    let process = Process::spawn(cmd, "python3 target on a noexec mount");
    assert!(
        process.wait_stdout("ready", DEADLINE).is_some(),
        "{}",
        process.stderr()
    );
    assert!(
        process
            .stderr()
            .contains("failed to map segment from shared object"),
        "{}",
        process.stderr()
    );
    let report = status_json(pid_of(&process));
    assert_eq!(report.get("library_loaded"), &json::Value::Bool(false));
    let warnings = report.get("warnings").list();
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    let warning = warnings[0].text();
    assert!(
        warning.contains(&format!(
            "LD_PRELOAD names {} but it is not mapped",
            preload.display()
        )),
        "{warning}"
    );
    assert!(
        warning.contains("; its file system is mounted noexec for this process"),
        "{warning}"
    );
}

#[test]
fn the_programs_own_idle_is_what_status_reports() {
    let process = start(Some(common::library()), &common::ALL_TIMERS, Some(77));
    let report = status_json(pid_of(&process));
    assert_matches_own_view(&process, &report);
    let idles: Vec<i64> = report
        .get("connections")
        .list()
        .iter()
        .map(|c| c.get("idle").number())
        .collect();
    assert_eq!(idles, [60, 60, 77]);
    // Who set each: the library, but the program's own idle after accept.
    let who: Vec<&str> = report
        .get("connections")
        .list()
        .iter()
        .map(|c| c.get("set_by").get("idle").text())
        .collect();
    assert_eq!(who, ["library", "library", "program"]);
    let connection = &report.get("connections").list()[1];
    assert_eq!(connection.get("set_by").get("keepalive").text(), "library");
    assert_eq!(report.get("settings").get("from").text(), "environment");
}

#[test]
fn bad_settings_get_the_librarys_own_message() {
    let process = start(
        Some(common::library()),
        &[("KEEPIDLE", "0"), ("KEEPCNT", "4")],
        None,
    );
    // The library printed its line on the program's stderr at start.
    let printed = process.stderr();
    let report = status_json(pid_of(&process));
    let warnings: Vec<&str> = report
        .get("warnings")
        .list()
        .iter()
        .map(|w| w.text())
        .collect();
    assert_eq!(warnings.len(), 1);
    assert!(warnings[0].starts_with("libkeepalive: KEEPIDLE=\"0\" is not valid"));
    assert!(printed.contains(warnings[0]), "{printed}");
    assert_eq!(report.get("settings").get("count").number(), 4);
}

#[test]
fn an_unlisted_program_is_reported_as_left_alone() {
    let process = start(
        Some(common::library()),
        &[("KEEPALIVE_PROGRAMS", "nginx"), ("KEEPIDLE", "60")],
        None,
    );
    assert_eq!(process.stderr(), "", "an unlisted process stays silent");
    let report = status_json(pid_of(&process));
    assert_eq!(report.get("listed"), &json::Value::Bool(false));
    let notes = report.get("notes").list();
    assert!(
        notes[0]
            .text()
            .starts_with("KEEPALIVE_PROGRAMS (nginx) does not list this process"),
        "{notes:?}"
    );
    for connection in report.get("connections").list() {
        assert_eq!(connection.get("keepalive"), &json::Value::Bool(false));
    }
}

#[test]
fn a_process_the_caller_may_not_read_is_exit_status_1() {
    let process = start(Some(common::library()), &common::ALL_TIMERS, None);
    let pid = pid_of(&process).to_string();
    // The command run as nobody, against this (root's) process.
    let mut cmd = Command::new("setpriv");
    cmd.args([
        "--reuid=65534",
        "--regid=65534",
        "--clear-groups",
        "--inh-caps=-all",
    ])
    .arg(common::keepalive_command())
    .args(["--status", &pid]);
    let output = common::run(cmd, DEADLINE);
    assert_eq!(output.status.code(), Some(1), "{output:?}");
    let err = common::stderr(&output);
    assert!(
        err.starts_with(&format!("keepalive: may not read process {pid}")),
        "{err}"
    );
    assert_eq!(common::stdout(&output), "");
    // And a process that does not exist.
    let output = status(&["--status", "999999999"]);
    assert_eq!(output.status.code(), Some(1));
    assert_eq!(common::stderr(&output), "keepalive: no process 999999999\n");
}

#[test]
fn without_pidfd_getfd_the_timer_from_the_tcp_table_is_shown() {
    let process = start(Some(common::library()), &common::ALL_TIMERS, None);
    // In a PID namespace of its own, the command cannot open a pidfd for a
    // process of ours (its /proc is still ours): a real refusal.
    let mut cmd = Command::new("unshare");
    cmd.args(["--pid", "--fork"])
        .arg(common::keepalive_command())
        .args(["--status", &pid_of(&process).to_string(), "--json"]);
    let output = common::run(cmd, DEADLINE);
    assert_eq!(output.status.code(), Some(0), "{}", common::stderr(&output));
    let report = json::parse(&common::stdout(&output));
    let warnings = report.get("warnings").list();
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(
        warnings[0]
            .text()
            .starts_with("could not read the sockets' options (pidfd_open: "),
        "{warnings:?}"
    );
    let connections = report.get("connections").list();
    assert_eq!(connections.len(), 3);
    for connection in connections {
        assert_eq!(connection.get("source").text(), "tcp-table");
        assert_eq!(connection.get("idle"), &json::Value::Null);
        if connection.get("state").text() == "ESTABLISHED" {
            // The keepalive timer is pending, with at most the idle time left.
            assert_eq!(connection.get("keepalive"), &json::Value::Bool(true));
            let Some(left) = (match connection.get("timer_secs") {
                json::Value::Number(n) => Some(*n),
                _ => None,
            }) else {
                panic!("{connection:?}")
            };
            assert!(left > 0.0 && left <= 60.0, "{left}");
        } else {
            assert_eq!(connection.get("keepalive"), &json::Value::Null);
        }
    }
}

/// A cgroup v2 directory of our own, removed even if the test fails.
struct Cgroup(PathBuf);

impl Drop for Cgroup {
    fn drop(&mut self) {
        // Declared before the processes, so dropped after they are killed:
        // an empty cgroup can be removed.
        for _ in 0..100 {
            if std::fs::remove_dir(&self.0).is_ok() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

fn cgroup2_root() -> PathBuf {
    for root in ["/sys/fs/cgroup/unified", "/sys/fs/cgroup"] {
        if Path::new(root).join("cgroup.procs").exists()
            && Path::new(root).join("cgroup.controllers").exists()
        {
            return PathBuf::from(root);
        }
    }
    panic!("no cgroup2 hierarchy: mount -t cgroup2 none /sys/fs/cgroup/unified");
}

#[test]
fn a_cgroup_directory_reports_each_of_its_processes() {
    let cgroup = Cgroup(cgroup2_root().join(format!("keepalive-status-{}", std::process::id())));
    std::fs::create_dir_all(&cgroup.0).unwrap();
    let first = start(Some(common::library()), &common::ALL_TIMERS, None);
    let second = start(None, &[], None);
    for process in [&first, &second] {
        std::fs::write(cgroup.0.join("cgroup.procs"), pid_of(process).to_string()).unwrap();
    }
    let output = status(&["--status", cgroup.0.to_str().unwrap(), "--json"]);
    assert_eq!(output.status.code(), Some(0), "{}", common::stderr(&output));
    let report = json::parse(&common::stdout(&output));
    assert_eq!(report.get("target").text(), cgroup.0.to_str().unwrap());
    let processes = report.get("processes").list();
    let mut pids: Vec<i64> = processes.iter().map(|p| p.get("pid").number()).collect();
    pids.sort_unstable();
    let mut expected = vec![i64::from(pid_of(&first)), i64::from(pid_of(&second))];
    expected.sort_unstable();
    assert_eq!(pids, expected);
    for process in processes {
        let loaded = process.get("pid").number() == i64::from(pid_of(&first));
        assert_eq!(process.get("library_loaded"), &json::Value::Bool(loaded));
    }
    drop(first);
    drop(second);
}

#[test]
fn help_and_man_page_document_status() {
    let output = status(&["--help"]);
    let help = common::stdout(&output);
    for word in ["--status TARGET", "--json", "--path NAME", "--program NAME"] {
        assert!(help.contains(word), "--help lacks {word}");
    }
    let page =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("man/keepalive.1"))
            .unwrap();
    for word in [
        "\\-\\-status",
        "\\-\\-json",
        "\\-\\-path",
        "\\-\\-program",
        "library_loaded",
        "user_timeout_ms",
    ] {
        assert!(page.contains(word), "keepalive.1 lacks {word}");
    }
}

/// `keepalive --attach` on `cgroup` with `options`.
fn attach(cgroup: &Path, options: &[&str]) {
    let mut args = vec!["--attach", cgroup.to_str().unwrap()];
    args.extend_from_slice(options);
    let output = status(&args);
    assert_eq!(output.status.code(), Some(0), "{}", common::stderr(&output));
}

/// Each connection's `set_by` for `key`, in the order of `connections`.
fn set_by(report: &json::Value, key: &str) -> Vec<String> {
    report
        .get("connections")
        .list()
        .iter()
        .map(|c| c.get("set_by").get(key).text().to_string())
        .collect()
}

/// A process covered by a kernel-side attachment: `settings` are the
/// attachment's, naming it, not its environment's (`environment` keeps
/// those); each connection says who set each option: the attachment, the
/// program (its own idle after accept), or, under `--override`, the
/// attachment overriding the program. The values are the target's own
/// getsockopt's.
#[test]
fn an_attached_process_shows_the_attachments_settings_and_who_set_each_option() {
    let cgroup =
        Cgroup(cgroup2_root().join(format!("keepalive-status-bpf-{}", std::process::id())));
    std::fs::create_dir_all(&cgroup.0).unwrap();
    attach(&cgroup.0, &["--idle", "25", "--count", "4"]);
    let env = [("KEEPIDLE", "60")];
    let process = start_in(Some(&cgroup.0), None, &env, Some(77));
    let report = status_json(pid_of(&process));
    assert_matches_own_view(&process, &report);
    let settings = report.get("settings");
    assert_eq!(settings.get("from").text(), "attachment");
    assert_eq!(
        settings.get("attachment").text(),
        cgroup.0.to_str().unwrap()
    );
    assert_eq!(settings.get("keepalive"), &json::Value::Bool(true));
    assert_eq!(settings.get("idle").number(), 25);
    assert_eq!(settings.get("interval"), &json::Value::Null);
    assert_eq!(settings.get("count").number(), 4);
    assert_eq!(settings.get("override"), &json::Value::Bool(false));
    assert_eq!(report.get("environment").get("idle").number(), 60);
    assert_eq!(
        report.get("bpf_attachment").text(),
        cgroup.0.to_str().unwrap()
    );
    // The listener, the connection made, the one accepted.
    assert_eq!(
        set_by(&report, "keepalive"),
        ["default", "attachment", "attachment"]
    );
    assert_eq!(
        set_by(&report, "idle"),
        ["default", "attachment", "program"]
    );
    assert_eq!(
        set_by(&report, "interval"),
        ["default", "default", "default"]
    );
    assert_eq!(
        set_by(&report, "count"),
        ["default", "attachment", "attachment"]
    );
    // The table for people says the same.
    let output = status(&["--status", &pid_of(&process).to_string()]);
    let text = common::stdout(&output);
    let expected = format!(
        "settings in force: the attachment on {} decides its connections: keepalive on, \
         idle 25 s, count 4\n",
        cgroup.0.display()
    );
    assert!(text.contains(&expected), "{text}");
    assert!(
        text.contains(
            "set by: keepalive attachment, idle program, interval default, count attachment"
        ),
        "{text}"
    );
    drop(process);

    attach(&cgroup.0, &["--idle", "25", "--count", "4", "--override"]);
    let process = start_in(Some(&cgroup.0), None, &env, Some(77));
    let report = status_json(pid_of(&process));
    assert_matches_own_view(&process, &report);
    assert_eq!(
        report.get("settings").get("override"),
        &json::Value::Bool(true)
    );
    let idles: Vec<i64> = report
        .get("connections")
        .list()
        .iter()
        .map(|c| c.get("idle").number())
        .collect();
    assert_eq!(idles[1..], [25, 25], "the program's own 77 overridden");
    assert_eq!(
        set_by(&report, "idle"),
        ["default", "attachment", "attachment overriding the program"]
    );
    drop(process);

    // The library preloaded as well: to the attachment (no override) its
    // calls are the program's own, so its idle stands; the attachment sets
    // the count, which the library leaves alone.
    attach(&cgroup.0, &["--idle", "25", "--count", "4"]);
    let process = start_in(Some(&cgroup.0), Some(common::library()), &env, None);
    let report = status_json(pid_of(&process));
    assert_matches_own_view(&process, &report);
    assert_eq!(set_by(&report, "idle"), ["library", "library", "library"]);
    assert_eq!(
        set_by(&report, "count"),
        ["default", "attachment", "attachment"]
    );
    let notes: Vec<&str> = report
        .get("notes")
        .list()
        .iter()
        .map(|note| note.text())
        .collect();
    assert!(
        notes.iter().any(|note| note.ends_with(
            "set: keepalive by the library, idle by the library, count by the attachment"
        )),
        "{notes:?}"
    );
    drop(process);
}
