//! The C test programs, with the library preloaded, under valgrind memcheck
//! and built with gcc's AddressSanitizer and UndefinedBehaviorSanitizer:
//! the library must not make a checker report anything in its host (a bad
//! read or write through a pointer the program passed, a use of
//! uninitialised memory, a definite leak, undefined behaviour).
//!
//! ASan wants its runtime first in the library list; two ways are run:
//! preloading libasan before us, and us first with
//! ASAN_OPTIONS=verify_asan_link_order=0. LeakSanitizer is switched off:
//! it needs ptrace, which this machine's sandbox refuses ("Can't open
//! /proc/PID/task"); memcheck's leak check covers leaks instead.

mod common;

use common::*;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

/// valgrind makes everything 20-50 times slower.
const DEADLINE: Duration = Duration::from_secs(120);

const SANITIZE: [&str; 4] = [
    "-fsanitize=address,undefined",
    "-fno-omit-frame-pointer",
    "-fno-sanitize-recover=all",
    "-O1",
];

/// tests/c/SOURCE.c built with the sanitizers, under a name of its own.
fn sanitized(source: &str) -> PathBuf {
    build_c(source, &format!("{source}-asan"), &SANITIZE)
}

fn libasan() -> String {
    let out = Command::new("gcc")
        .arg("-print-file-name=libasan.so")
        .output()
        .expect("gcc");
    let path = String::from_utf8_lossy(&out.stdout).trim().to_string();
    assert!(
        Path::new(&path).exists(),
        "libasan missing: apt-get install -y libasan8 (gcc's AddressSanitizer runtime)"
    );
    path
}

/// One run of a test program: its arguments, environment, how the library
/// comes in, and a text its stdout must contain (proof the case ran and the
/// library acted).
struct Case {
    program: &'static str,
    args: Vec<String>,
    env: Vec<(&'static str, &'static str)>,
    load: Load,
    expect: &'static str,
}

#[derive(Clone, Copy, PartialEq)]
enum Load {
    /// LD_PRELOAD=libkeepalive.so
    Preload,
    /// libkeepalive.so then tests/c/early.c's library (whose constructor
    /// runs first and races eight threads through our initialisation).
    PreloadWithEarly,
    /// Not preloaded: the program dlopens the library (its path is an
    /// argument).
    Dlopen,
}

fn case(program: &'static str, args: &[&str], env: &[(&'static str, &'static str)]) -> Case {
    Case {
        program,
        args: args.iter().map(|a| a.to_string()).collect(),
        env: env.to_vec(),
        load: Load::Preload,
        expect: "keepalive=1",
    }
}

const TIMERS: [(&str, &str); 4] = [
    ("KEEPIDLE", "61"),
    ("KEEPINTVL", "10"),
    ("KEEPCNT", "6"),
    ("KEEPALIVE_USER_TIMEOUT", "auto"),
];

fn cases() -> Vec<Case> {
    let lib = library().to_str().unwrap();
    let debug = [("KEEPIDLE", "61"), ("KEEPALIVE_DEBUG", "1")];
    let mut cases = vec![
        case("sockprobe", &["connect", "libc"], &TIMERS),
        case("sockprobe", &["connect", "foreign-listener"], &TIMERS),
        case("sockprobe", &["connect", "program-idle"], &debug),
        case(
            "sockprobe",
            &["socket", "inet6", "stream+nonblock", "0"],
            &debug,
        ),
        Case {
            expect: "keepalive=0",
            ..case("sockprobe", &["socket", "unix", "stream", "0"], &debug)
        },
        case("sockprobe", &["process"], &debug),
        Case {
            expect: "sockets=2000 configured=2000",
            ..case("sockprobe", &["threads", "4", "500", "61"], &TIMERS)
        },
        case("lifeprobe", &["spawn"], &debug),
        case("lifeprobe", &["exec", "2"], &TIMERS),
        Case {
            expect: "forked=10 configured=10",
            ..case("lifeprobe", &["forkthreads", "10"], &TIMERS)
        },
        Case {
            expect: "main=2000 main_configured=2000",
            ..case("lifeprobe", &["signals", "2000"], &TIMERS)
        },
        case("lifeprobe", &["lowfds", "200000"], &debug),
        Case {
            expect: "end 0:",
            ..case("errnoprobe", &["fds"], &debug)
        },
        Case {
            expect: "case=close-again-EBADF rc=-1 errno=9",
            ..case("errnoprobe", &["errno"], &TIMERS)
        },
        Case {
            // Bad values: the diagnostics path, with a long value.
            expect: "keepalive=1 idle=7200",
            ..case(
                "sockprobe",
                &["socket", "inet", "stream", "0"],
                &[
                    ("KEEPIDLE", "0x10"),
                    ("KEEPCNT", "-1"),
                    ("KEEPALIVE", "maybe"),
                ],
            )
        },
        Case {
            load: Load::PreloadWithEarly,
            expect: "early sockets=800 configured=800",
            ..case(
                "lifeprobe",
                &["socket"],
                &[
                    ("KEEPIDLE", "61"),
                    ("EARLY_THREADS", "8"),
                    ("EARLY_SOCKETS", "100"),
                    ("EARLY_EXPECT_IDLE", "61"),
                ],
            )
        },
    ];
    // Rules: the library reads the addresses the program passes to
    // connect() and gets back from accept(), inside the checkers' view.
    let rules = [
        (
            "KEEPALIVE_RULES",
            "net=127.0.0.0/8,port=1-65535:idle=61; *:off",
        ),
        ("KEEPALIVE_DEBUG", "1"),
    ];
    cases.push(case("sockprobe", &["connect", "libc"], &rules));
    cases.push(case("sockprobe", &["connect", "accept4"], &rules));
    cases.push(Case {
        expect: "case=close-again-EBADF rc=-1 errno=9",
        ..case("errnoprobe", &["errno"], &rules)
    });
    // A thread cancelled (a forced unwind) inside our hooks, and one whose
    // pending cancellation meets our debug line.
    cases.push(case("cancelprobe", &["accept"], &debug));
    cases.push(case("cancelprobe", &["connect"], &rules));
    cases.push(case("cancelprobe", &["pending-socket"], &debug));
    for args in [
        vec!["dlopen", lib, "local"],
        vec!["dlopen", lib, "global"],
        vec!["bigenv", lib, "KEEPIDLE", "1048576"],
    ] {
        cases.push(Case {
            load: Load::Dlopen,
            ..case("lifeprobe", &args, &debug)
        });
    }
    cases
}

/// Lines a checker wrote: valgrind's and ASan's "==PID==" prefix, UBSan's
/// "runtime error:".
fn reports(stderr: &str) -> Vec<&str> {
    stderr
        .lines()
        .filter(|line| {
            let pid_prefix = line.starts_with("==")
                && line[2..]
                    .split_once("==")
                    .is_some_and(|(pid, _)| pid.bytes().all(|b| b.is_ascii_digit()));
            pid_prefix || line.contains("runtime error:")
        })
        .collect()
}

/// Runs every case through `wrap` (which turns the program and its
/// LD_PRELOAD list into a command) and returns a description of each
/// failure: a report, a failed exit, or missing output.
fn run_all(tool: &str, wrap: impl Fn(&Case, Option<String>) -> Command) -> Vec<String> {
    let early = c_program_with("early", &["-shared", "-fPIC"]);
    let mut failures = Vec::new();
    for case in cases() {
        let preload = match case.load {
            Load::Preload => Some(library().display().to_string()),
            Load::PreloadWithEarly => Some(format!("{}:{}", library().display(), early.display())),
            Load::Dlopen => None,
        };
        let cmd = wrap(&case, preload);
        let label = format!("{tool}: {} {}", case.program, case.args.join(" "));
        let out: Output = run(cmd, DEADLINE);
        let err = stderr(&out);
        let found = reports(&err);
        if !found.is_empty() || !out.status.success() || !stdout(&out).contains(case.expect) {
            failures.push(format!(
                "{label}: {:?}\nstdout: {}\nstderr: {err}",
                out.status,
                stdout(&out)
            ));
        }
    }
    failures
}

fn base_command(program: impl AsRef<std::ffi::OsStr>, case: &Case) -> Command {
    let mut cmd = command(program, false, &case.env);
    cmd.args(&case.args);
    cmd
}

#[test]
fn memcheck_finds_nothing() {
    let version = Command::new("valgrind").arg("--version").output();
    assert!(
        version.is_ok_and(|v| v.status.success()),
        "valgrind missing: apt-get install -y valgrind"
    );
    let failures = run_all("valgrind", |case, preload| {
        let mut cmd = command("valgrind", false, &case.env);
        cmd.args([
            "-q",
            "--error-exitcode=99",
            "--leak-check=full",
            "--show-leak-kinds=definite",
            "--errors-for-leak-kinds=definite",
            // valgrind runs one thread at a time; its default lock lets the
            // socket-churning threads of `forkthreads` starve the forking
            // one for minutes. A fair lock takes turns.
            "--fair-sched=yes",
            // posix_spawn, exec chains and forks are checked too.
            "--trace-children=yes",
        ]);
        cmd.arg(c_program(case.program));
        cmd.args(&case.args);
        if case.program == "errnoprobe" && case.args == ["errno"] {
            // valgrind does not enforce RLIMIT_NOFILE: no EMFILE to see.
            cmd.arg("no-emfile");
        }
        if let Some(list) = preload {
            cmd.env("LD_PRELOAD", list);
        }
        cmd
    });
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

/// ASan (and UBSan) builds run with the preload list `first` + ours.
fn asan_run(asan_first: bool) -> Vec<String> {
    let libasan = libasan();
    let tool = if asan_first {
        "asan (libasan preloaded first)"
    } else {
        "asan (libkeepalive first, verify_asan_link_order=0)"
    };
    run_all(tool, |case, preload| {
        let mut cmd = base_command(sanitized(case.program), case);
        // halt_on_error: the first report ends the run with a failure.
        let mut options = "detect_leaks=0:halt_on_error=1".to_string();
        let list = match (asan_first, preload) {
            (true, Some(list)) => Some(format!("{libasan}:{list}")),
            (false, Some(list)) => {
                options.push_str(":verify_asan_link_order=0");
                Some(list)
            }
            (_, None) => None,
        };
        if let Some(list) = list {
            cmd.env("LD_PRELOAD", list);
        }
        cmd.env("ASAN_OPTIONS", options);
        cmd.env("UBSAN_OPTIONS", "print_stacktrace=1:halt_on_error=1");
        cmd
    })
}

#[test]
fn address_and_undefined_sanitizers_find_nothing_with_libasan_first() {
    let failures = asan_run(true);
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

#[test]
fn address_and_undefined_sanitizers_find_nothing_with_us_first() {
    let failures = asan_run(false);
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

#[test]
fn the_report_filter_sees_reports() {
    // Guards `reports`: a checker's line must not slip through as output.
    let sample = "==1234== Invalid read of size 4\nlibkeepalive: x\n\
                  a.c:3:5: runtime error: signed integer overflow\n==x== no";
    assert_eq!(reports(sample).len(), 2);
}
