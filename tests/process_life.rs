//! Concurrency and process life under the library, and the host's view of
//! its own calls: another library's constructor making sockets before ours
//! ran (and threads racing our lazy initialisation there), posix_spawn and
//! exec chains, fork while threads make sockets, socket() from a signal
//! handler, fds 0-2 as TCP sockets with debugging on, SIGPIPE, dlopen after
//! start, errno across failure paths, and no descriptors of our own.
//! Programs: tests/c/lifeprobe.c, tests/c/early.c, tests/c/errnoprobe.c.

mod common;

use common::*;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

const DEADLINE: Duration = Duration::from_secs(60);

/// tests/c/early.c as a shared library.
fn early_library() -> PathBuf {
    c_program_with("early", &["-shared", "-fPIC"])
}

/// `LD_PRELOAD` with these paths, in this order.
fn preload_list(paths: &[&Path]) -> String {
    paths
        .iter()
        .map(|p| p.display().to_string())
        .collect::<Vec<_>>()
        .join(":")
}

fn run_ok(cmd: Command) -> Output {
    let label = format!("{cmd:?}");
    let out = run(cmd, DEADLINE);
    assert!(
        out.status.success(),
        "{label}: {:?}\nstdout: {}\nstderr: {}",
        out.status,
        stdout(&out),
        stderr(&out)
    );
    out
}

fn lifeprobe(args: &[&str], preload: bool, env: &[(&str, &str)]) -> Output {
    let mut cmd = command(c_program("lifeprobe"), preload, env);
    cmd.args(args);
    run_ok(cmd)
}

/// Index of the first stderr line containing `text`.
fn line_index(text: &str, needle: &str) -> usize {
    text.lines()
        .position(|l| l.contains(needle))
        .unwrap_or_else(|| panic!("no line with {needle:?} in:\n{text}"))
}

/// Where our configuration load (its debug line) falls relative to early.so's
/// constructor: true when inside it, i.e. early's socket() loaded us.
fn loaded_inside_early_constructor(err: &str) -> bool {
    let start = line_index(err, "early: constructor start");
    let ours = line_index(err, "TCP sockets get");
    let end = line_index(err, "early: constructor end");
    start < ours && ours < end
}

#[test]
fn a_socket_from_another_librarys_constructor_before_ours_is_configured() {
    let early = early_library();
    let env = [
        ("KEEPIDLE", "61"),
        ("KEEPALIVE_DEBUG", "1"),
        ("EARLY_EXPECT_IDLE", "61"),
    ];
    // Constructors of preloaded libraries run last-listed first, so early.so
    // listed after us runs before our constructor.
    let mut cmd = command(c_program("lifeprobe"), false, &env);
    cmd.env("LD_PRELOAD", preload_list(&[library(), &early]));
    cmd.args(["socket"]);
    let out = run_ok(cmd);
    assert!(
        loaded_inside_early_constructor(&stderr(&out)),
        "order not as intended:\n{}",
        stderr(&out)
    );
    assert!(stdout(&out).contains("early sockets=1 configured=1"));
    assert!(stdout(&out).contains("socket keepalive=1 idle=61"));
    // Loaded once only, although both the hook and our constructor ask.
    assert_eq!(stderr(&out).matches("TCP sockets get").count(), 1);

    // A library the program is linked with also initialises before
    // preloaded ones: the everyday form of this case.
    let linked = build_c(
        "lifeprobe",
        "lifeprobe-linked-early",
        // --no-as-needed: nothing in lifeprobe calls early.so, and the
        // linker would otherwise drop it.
        &["-Wl,--no-as-needed", early.to_str().unwrap()],
    );
    let out = run_ok({
        let mut cmd = command(&linked, true, &env);
        cmd.arg("socket");
        cmd
    });
    assert!(
        loaded_inside_early_constructor(&stderr(&out)),
        "{}",
        stderr(&out)
    );
    assert!(stdout(&out).contains("early sockets=1 configured=1"));

    // The control: listed before us, early.so runs after our constructor,
    // which shows that the order check above can tell the difference.
    let mut cmd = command(c_program("lifeprobe"), false, &env);
    cmd.env("LD_PRELOAD", preload_list(&[&early, library()]));
    cmd.args(["socket"]);
    let out = run_ok(cmd);
    assert!(!loaded_inside_early_constructor(&stderr(&out)));
    assert!(stdout(&out).contains("early sockets=1 configured=1"));
}

#[test]
fn threads_racing_our_initialisation_then_thousands_of_sockets() {
    let early = early_library();
    // Eight threads of early.so's constructor hit their first socket() at
    // one barrier before our constructor ran: one loads, the rest wait for
    // it. Then sockprobe's own eight threads make 16000 more. Repeated,
    // because a race shows only sometimes.
    for round in 0..5 {
        let mut cmd = command(
            c_program("sockprobe"),
            false,
            &[
                ("KEEPIDLE", "61"),
                ("EARLY_THREADS", "8"),
                ("EARLY_SOCKETS", "250"),
                ("EARLY_EXPECT_IDLE", "61"),
            ],
        );
        cmd.env("LD_PRELOAD", preload_list(&[library(), &early]));
        cmd.args(["threads", "8", "2000", "61"]);
        let out = run_ok(cmd);
        let text = stdout(&out);
        assert!(
            text.contains("early sockets=2000 configured=2000"),
            "round {round}: {text}"
        );
        assert!(
            text.contains("sockets=16000 configured=16000"),
            "round {round}: {text}"
        );
    }
    // With debugging on: the configuration is loaded (and reported) once.
    for _ in 0..5 {
        let mut cmd = command(
            c_program("lifeprobe"),
            false,
            &[
                ("KEEPIDLE", "61"),
                ("KEEPALIVE_DEBUG", "1"),
                ("EARLY_THREADS", "8"),
                ("EARLY_EXPECT_IDLE", "61"),
            ],
        );
        cmd.env("LD_PRELOAD", preload_list(&[library(), &early]));
        cmd.arg("socket");
        let out = run_ok(cmd);
        assert!(stdout(&out).contains("early sockets=8 configured=8"));
        assert_eq!(stderr(&out).matches("TCP sockets get").count(), 1);
    }
}

#[test]
fn posix_spawn_children_and_exec_chains_keep_the_library() {
    let env = [("KEEPIDLE", "61")];
    let out = lifeprobe(&["spawn"], true, &env);
    let text = stdout(&out);
    assert!(
        text.contains("posix_spawn-child keepalive=1 idle=61"),
        "{text}"
    );
    assert!(
        text.contains("posix_spawnp-sh-child keepalive=1 idle=61"),
        "{text}"
    );

    // Four execs, two of them through sh: every step is configured.
    let out = lifeprobe(&["exec", "4"], true, &env);
    let text = stdout(&out);
    assert_eq!(
        text.matches("keepalive=1 idle=61").count(),
        5,
        "every step: {text}"
    );
    assert!(text.contains("exec-last keepalive=1 idle=61"), "{text}");
    // The control: without the library no step is.
    let out = lifeprobe(&["exec", "2"], false, &env);
    assert_eq!(stdout(&out).matches("keepalive=0").count(), 3);
}

#[test]
fn fork_while_other_threads_make_sockets() {
    // Four threads make sockets non-stop while the main thread forks: the
    // library holds no lock a child could inherit locked.
    let out = lifeprobe(&["forkthreads", "100"], true, &[("KEEPIDLE", "61")]);
    assert_eq!(stdout(&out).trim(), "forked=100 configured=100");
}

#[test]
fn socket_from_a_signal_handler_that_interrupts_socket() {
    let out = lifeprobe(&["signals", "20000"], true, &[("KEEPIDLE", "61")]);
    let fields = fields(stdout(&out).trim());
    assert_eq!(field(&fields, "main_configured"), "20000");
    let handler = field(&fields, "handler");
    assert!(handler.parse::<u32>().unwrap() > 0, "no signal arrived");
    assert_eq!(field(&fields, "handler_configured"), handler);
    assert_eq!(field(&fields, "handler_errno_kept"), handler);
}

#[test]
fn tcp_sockets_on_fds_0_to_2_with_debugging_get_their_data_intact() {
    // 4 MB each way between sockets numbered 0, 1 and 2; every debug line of
    // ours would corrupt it if we wrote to "fd 2" after it became a socket.
    let env = [("KEEPIDLE", "61"), ("KEEPALIVE_DEBUG", "1")];
    let out = lifeprobe(&["lowfds", "4000000"], true, &env);
    let text = stdout(&out);
    assert!(
        text.contains("fds listener=0 client=1 accepted=2"),
        "{text}"
    );
    assert!(text.contains("client keepalive=1 idle=61"), "{text}");
    assert!(text.contains("accepted keepalive=1 idle=61"), "{text}");
    assert!(text.contains("intact=1 sent=1 stray=0"), "{text}");
    // Debug lines go to the library's private duplicate of the original
    // stderr, never to whatever fd 2 is now (the program's SIGPIPE is
    // SIG_DFL: exit 0 means no write went to a closed socket either).
    let err = stderr(&out);
    assert!(
        err.lines().next().unwrap().contains("TCP sockets get"),
        "{err}"
    );
    assert!(
        err.lines().all(|l| l.starts_with("libkeepalive: ")),
        "{err}"
    );
    assert!(err.contains("fd 1 (AF_INET, socket): set"), "{err}");
}

#[test]
fn debug_lines_into_a_pipe_nobody_reads_raise_no_sigpipe() {
    // stderr is a pipe whose read end is closed: our debug write fails with
    // EPIPE. The program (SIGPIPE default) must live, and a SIGPIPE of its
    // own, pending while blocked, must still be pending after ours.
    use std::os::fd::FromRawFd;
    let mut ends = [0; 2];
    // SAFETY: pipe writes two descriptors into the array.
    assert_eq!(unsafe { libc::pipe(ends.as_mut_ptr()) }, 0);
    // SAFETY: both descriptors were just created and are owned here.
    let (reader, writer) = unsafe {
        (
            std::os::fd::OwnedFd::from_raw_fd(ends[0]),
            std::os::fd::OwnedFd::from_raw_fd(ends[1]),
        )
    };
    drop(reader);
    let mut cmd = command(
        c_program("lifeprobe"),
        true,
        &[("KEEPIDLE", "61"), ("KEEPALIVE_DEBUG", "1")],
    );
    cmd.arg("sigpipe");
    cmd.stdout(std::process::Stdio::piped());
    cmd.stderr(std::process::Stdio::from(writer));
    let out = cmd.output().expect("run lifeprobe");
    assert!(out.status.success(), "{:?}", out.status);
    assert_eq!(
        stdout(&out).trim(),
        "ours_pending=0 own_write=-1 own_errno=32 own_pending=1"
    );
}

#[test]
fn dlopen_after_start_configures_only_calls_through_its_own_symbol() {
    // Not preloaded: dlopen puts the library after libc in the lookup
    // order, so the program's socket() stays libc's and its sockets are
    // untouched; only a call through dlsym(handle, "socket") is configured.
    // Nothing crashes, errno is kept, and dlclose is harmless.
    let lib = library().to_str().unwrap();
    for mode in ["local", "global"] {
        let env = [("KEEPIDLE", "61"), ("KEEPALIVE_DEBUG", "1")];
        let out = lifeprobe(&["dlopen", lib, mode], false, &env);
        let text = stdout(&out);
        for expected in [
            "before keepalive=0 idle=7200",
            "dlopen=ok errno_kept=1",
            "after keepalive=0 idle=7200",
            "via-dlsym keepalive=1 idle=61 errno_kept=1",
            "dlclose=0",
            "after-dlclose keepalive=0 idle=7200",
        ] {
            assert!(text.contains(expected), "{mode}: {expected} in {text}");
        }
        // The configuration was loaded at dlopen (our constructor ran).
        assert!(stderr(&out).contains("TCP sockets get"), "{}", stderr(&out));
    }
}

#[test]
fn errno_is_identical_with_and_without_the_library() {
    let errnoprobe = c_program("errnoprobe");
    let run_probe = |preload: bool, env: &[(&str, &str)]| {
        let mut cmd = command(&errnoprobe, preload, env);
        cmd.arg("errno");
        stdout(&run_ok(cmd))
    };
    let without = run_probe(false, &[]);
    // Every option, a user timeout MPTCP refuses, and debug lines: the most
    // the library ever does behind the program's calls.
    let busy = [
        ("KEEPIDLE", "60"),
        ("KEEPINTVL", "10"),
        ("KEEPCNT", "6"),
        ("KEEPALIVE_USER_TIMEOUT", "auto"),
        ("KEEPALIVE_DEBUG", "1"),
    ];
    // Rules make the library read the program's addresses at connect() and
    // accept() and decide there: the same paths once more.
    let rules = [
        (
            "KEEPALIVE_RULES",
            "net=127.0.0.0/8,port=1-65535:idle=61; *:off",
        ),
        ("KEEPALIVE_DEBUG", "1"),
    ];
    let direction = [("KEEPALIVE_DIRECTION", "in")];
    for env in [&busy[..], &[], &rules, &direction] {
        assert_eq!(run_probe(true, env), without, "env {env:?}");
    }
    let failures = without
        .lines()
        .filter(|l| l.contains("rc=-1") || l.contains("EMFILE"))
        .count();
    assert!(failures >= 30, "{failures} failure paths:\n{without}");
    for expected in [
        "case=socket-bad-domain-EAFNOSUPPORT rc=-1 errno=97",
        "case=socket-bad-type-EINVAL rc=-1 errno=22",
        "case=connect-ECONNREFUSED rc=-1 errno=111",
        "case=connect-nonblocking-EINPROGRESS rc=-1 errno=115",
        "case=connect-EBADF rc=-1 errno=9",
        "case=connect-ENOTSOCK rc=-1 errno=88",
        "case=connect-wrong-family-EAFNOSUPPORT rc=-1 errno=97",
        "case=socket-mptcp-success rc=0 errno=4242",
        "case=fclose-fmemopen-success rc=0 errno=4242",
        "case=fclose-open_memstream-success rc=0 errno=4242",
        "case=fclose-fopencookie-success rc=0 errno=4242",
        "case=accept-EMFILE rc=-1 errno=24",
        "case=accept4-EMFILE rc=-1 errno=24",
        "case=socket-udp-EMFILE rc=-1 errno=24",
    ] {
        assert!(without.contains(expected), "{expected} in:\n{without}");
    }
    // Under RLIMIT_NOFILE=64 the same number of sockets fit: the library
    // takes none of the 64.
    assert!(without.contains("case=socket-EMFILE made="), "{without}");
}

#[test]
fn the_library_opens_no_descriptors_of_its_own() {
    let errnoprobe = c_program("errnoprobe");
    let listing = |preload: bool, debug: &str| {
        // auto makes the library read /proc/sys at start-up; a bad value
        // makes it write a diagnostic; neither leaves a descriptor behind.
        let env = [
            ("KEEPIDLE", "60"),
            ("KEEPALIVE_USER_TIMEOUT", "auto"),
            ("KEEPCNT", "0"),
            ("KEEPALIVE_DEBUG", debug),
        ];
        let mut cmd = command(&errnoprobe, preload, &env);
        cmd.arg("fds");
        stdout(&run_ok(cmd))
    };
    let with = listing(true, "0");
    let without = listing(false, "0");
    assert_eq!(with, without);
    // Debug lines need the library's one private duplicate of stderr, at a
    // high number, close-on-exec: that, and nothing else.
    let debugging = listing(true, "1");
    let expected: String = without
        .lines()
        .map(|line| format!("{line} 512:pipe\n"))
        .collect();
    assert_eq!(debugging, expected);
    // Under a low RLIMIT_NOFILE the duplicate takes the highest number
    // below the limit: the program's own numbers are as without us.
    let limited = |preload: bool| {
        let env = [("KEEPIDLE", "60"), ("KEEPALIVE_DEBUG", "1")];
        let mut cmd = command("sh", preload, &env);
        cmd.arg("-c").arg(format!(
            "ulimit -n 100 && exec {} fds",
            errnoprobe.display()
        ));
        stdout(&run_ok(cmd))
    };
    let without_limited = limited(false);
    // Each line with 99:pipe added in its place among the numbers.
    let expected: String = without_limited
        .lines()
        .map(|line| {
            let mut words: Vec<&str> = line.split(' ').collect();
            words.push("99:pipe");
            let number = |word: &&str| word.split(':').next().unwrap().parse::<i32>().unwrap_or(-1);
            words[1..].sort_by_key(number);
            words.join(" ") + "\n"
        })
        .collect();
    assert_eq!(limited(true), expected);
    let lines: Vec<&str> = with.lines().collect();
    assert_eq!(lines.len(), 3, "{with}");
    assert_eq!(
        lines[0].trim_start_matches("start"),
        lines[2].trim_start_matches("end")
    );
    assert_eq!(lines[1].matches(":socket").count(), 5, "{with}");
}

#[test]
fn debugging_under_a_tiny_descriptor_limit_leaves_the_program_its_numbers() {
    // Under `ulimit -n 4` a program has one number of its own, 3: a kept
    // duplicate of stderr would take it, and cat's open() would fail with
    // EMFILE. The debug lines give way: cat runs as without us.
    let cat = |preload: bool| {
        let env = [("KEEPIDLE", "60"), ("KEEPALIVE_DEBUG", "1")];
        let mut cmd = command("sh", preload, &env);
        cmd.args(["-c", "ulimit -n 4 && exec cat /dev/null /proc/self/limits"]);
        let out = run(cmd, DEADLINE);
        (out.status.code(), stdout(&out))
    };
    let without = cat(false);
    assert_eq!(without.0, Some(0), "{}", without.1);
    assert!(
        without.1.contains("Max open files            4"),
        "{}",
        without.1
    );
    assert_eq!(cat(true), without);
}

#[test]
fn bad_pointers_get_efault_from_the_kernel_not_a_crash_from_us() {
    // The library must never dereference a pointer the kernel would refuse:
    // accept()'s address and length are never read, and with rules or a
    // direction connect()'s address is read only after the kernel did.
    let errnoprobe = c_program("errnoprobe");
    let run_probe = |preload: bool, env: &[(&str, &str)]| {
        let mut cmd = command(&errnoprobe, preload, env);
        cmd.arg("efault");
        let out = run(cmd, DEADLINE);
        (out.status.code(), stdout(&out))
    };
    let without = run_probe(false, &[]);
    assert_eq!(without.0, Some(0), "{}", without.1);
    assert_eq!(without.1.matches("errno=14").count(), 4, "{}", without.1);
    for env in [
        &[][..],
        &[("KEEPALIVE_DIRECTION", "out")],
        &[("KEEPALIVE_RULES", "net=127.0.0.0/8:idle=61; *:off")],
    ] {
        assert_eq!(run_probe(true, env), without, "env {env:?}");
    }
}
