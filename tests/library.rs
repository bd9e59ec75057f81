//! The library preloaded into our C probe (tests/c/sockprobe.c): exact option
//! values read back with getsockopt, the sockets left alone, errno, the
//! program-wins rule, the off switch, aliases and each kind of bad value.

mod common;

use common::process::Process;
use common::*;
use std::time::Duration;

const DEADLINE: Duration = Duration::from_secs(60);

fn probe(args: &[&str], preload: bool, env: &[(&str, &str)]) -> std::process::Output {
    let mut cmd = command(c_program("sockprobe"), preload, env);
    cmd.args(args);
    let output = run(cmd, DEADLINE);
    assert!(
        output.status.success(),
        "sockprobe {args:?}: {}",
        stderr(&output)
    );
    output
}

/// The option words of the probe's line starting with `label`.
fn options_of(output: &std::process::Output, label: &str) -> String {
    let text = stdout(output);
    let line = text
        .lines()
        .find(|l| l.starts_with(&format!("{label} ")))
        .unwrap_or_else(|| panic!("no {label} line in {text}"));
    line.split_whitespace()
        .filter(|w| !w.starts_with("fd="))
        .skip(1)
        .collect::<Vec<_>>()
        .join(" ")
}

#[test]
fn every_tcp_socket_gets_the_configured_values() {
    for domain in ["inet", "inet6"] {
        for flags in ["", "+nonblock", "+cloexec", "+nonblock+cloexec"] {
            for protocol in ["0", "6"] {
                let socket_type = format!("stream{flags}");
                let args = ["socket", domain, &socket_type, protocol];
                let out = probe(&args, true, &ALL_TIMERS);
                assert_eq!(options_of(&out, "socket"), ALL_CONFIGURED, "{args:?}");
                assert!(stderr(&out).is_empty(), "{}", stderr(&out));
            }
        }
    }
}

#[test]
fn without_the_library_sockets_have_kernel_defaults() {
    // The control that makes the test above able to fail.
    let out = probe(&["socket", "inet", "stream", "0"], false, &ALL_TIMERS);
    assert!(options_of(&out, "socket").starts_with("keepalive=0 "));
}

#[test]
fn only_so_keepalive_when_no_timer_is_set() {
    let out = probe(&["socket", "inet6", "stream", "0"], true, &[]);
    let defaults = probe(&["socket", "inet6", "stream", "0"], false, &[]);
    let expected = options_of(&defaults, "socket").replace("keepalive=0", "keepalive=1");
    assert_eq!(options_of(&out, "socket"), expected);
}

#[test]
fn other_sockets_are_never_touched() {
    let kinds: [&[&str]; 7] = [
        &["socket", "inet", "dgram", "0"],
        &["socket", "inet6", "dgram+cloexec", "17"],
        &["socket", "inet", "raw", "6"],
        &["socket", "inet6", "raw+nonblock", "6"],
        &["socket", "inet", "seqpacket", "0"],
        &["socket", "unix", "stream", "0"],
        &["socket", "netlink", "raw", "0"],
    ];
    for args in kinds {
        let with = probe(args, true, &ALL_TIMERS);
        let without = probe(args, false, &ALL_TIMERS);
        assert_eq!(
            stdout(&with).replace("loaded=1", "loaded=0"),
            stdout(&without),
            "{args:?}"
        );
        assert!(stdout(&with).contains("loaded=1"), "library not loaded");
    }
}

#[test]
fn sockets_not_made_by_our_socket_are_configured_at_connect_and_accept() {
    for how in ["raw-syscall", "recycled-raw", "foreign-listener"] {
        let out = probe(&["connect", how], true, &ALL_TIMERS);
        assert!(stdout(&out).contains("connect rc=0 errno=4242"), "{how}");
        assert_eq!(options_of(&out, "client"), ALL_CONFIGURED, "{how}");
        assert_eq!(options_of(&out, "accepted"), ALL_CONFIGURED, "{how}");
    }
}

#[test]
fn accepted_connections_inherit_from_our_listener() {
    for how in ["libc", "accept4"] {
        let out = probe(&["connect", how], true, &ALL_TIMERS);
        assert_eq!(options_of(&out, "client"), ALL_CONFIGURED, "{how}");
        assert_eq!(options_of(&out, "accepted"), ALL_CONFIGURED, "{how}");
    }
}

/// Issue 19 item 6: a program that switches `SO_KEEPALIVE` off gets
/// nothing of ours, whenever it does so: what we set is undone (the
/// kernel's values put back, `TCP_USER_TIMEOUT` included), the same
/// without rules (configured at `socket()`) and with `*:on` (at
/// `connect()`, `listen()` or `accept()`), on a client, on a listener and
/// its connections, and on an accepted connection.
#[test]
fn so_keepalive_zero_leaves_nothing_of_ours() {
    let with_rules = [&ALL_TIMERS[..], &[("KEEPALIVE_RULES", "*:on")]].concat();
    let inbound_by_address = [
        &ALL_TIMERS[..],
        &[("KEEPALIVE_RULES", "net=10.0.0.0/8:off; *:on")],
    ]
    .concat();
    let cases = [
        ("program-off", "client"),
        ("program-off-after", "client"),
        ("listener-off", "listener"),
        ("listener-off", "accepted"),
        ("accepted-off", "accepted"),
    ];
    for (how, label) in cases {
        let kernel = options_of(&probe(&["connect", how], false, &ALL_TIMERS), label);
        assert!(kernel.starts_with("keepalive=0 "), "{how}: {kernel}");
        assert!(kernel.ends_with(" user_timeout=0"), "{how}: {kernel}");
        for env in [&ALL_TIMERS[..], &with_rules, &inbound_by_address] {
            let out = probe(&["connect", how], true, env);
            assert_eq!(options_of(&out, label), kernel, "{how} {label} {env:?}");
        }
    }
    // The other end of each pair is still ours.
    let out = probe(&["connect", "accepted-off"], true, &ALL_TIMERS);
    assert_eq!(options_of(&out, "client"), ALL_CONFIGURED);
}

/// undoprobe (tests/c/undoprobe.c) in a network namespace of its own whose
/// keepalive sysctls are 600/20/4 (not Linux's 7200/75/9), with `env`.
fn undoprobe_in_netns(args: &[&str], preload: bool, env: &[(&str, &str)]) -> (Option<i32>, String) {
    let undoprobe = c_program("undoprobe");
    let script = format!(
        "echo 600 > /proc/sys/net/ipv4/tcp_keepalive_time && \
         echo 20 > /proc/sys/net/ipv4/tcp_keepalive_intvl && \
         echo 4 > /proc/sys/net/ipv4/tcp_keepalive_probes && exec {} {}",
        undoprobe.display(),
        args.join(" ")
    );
    let mut cmd = command("unshare", preload, env);
    cmd.args(["--net", "sh", "-c", &script]);
    let out = run(cmd, DEADLINE);
    (out.status.code(), stdout(&out))
}

/// Issue 22 item 2: the undo of `SO_KEEPALIVE=0` opens no file. A daemon
/// that sandboxed itself (seccomp killing on open/openat) is not killed,
/// and one that chrooted (no /proc) gets its namespace's values back, not
/// Linux's compiled-in ones: the sysctls are read once, at load.
#[test]
fn switching_keepalive_off_opens_no_file_in_a_sandbox_or_a_chroot() {
    let empty = std::env::temp_dir().join(format!("keepalive-chroot-22-{}", std::process::id()));
    std::fs::create_dir_all(&empty).unwrap();
    let empty_dir = empty.to_str().unwrap().to_string();
    for args in [vec!["seccomp"], vec!["chroot", &empty_dir]] {
        let without = undoprobe_in_netns(&args, false, &ALL_TIMERS);
        assert_eq!(
            without,
            (
                Some(0),
                "after-keepalive-off keepalive=0 idle=600 intvl=20 cnt=4 user_timeout=0\n"
                    .to_string()
            ),
            "{args:?}"
        );
        assert_eq!(
            undoprobe_in_netns(&args, true, &ALL_TIMERS),
            without,
            "{args:?}"
        );
    }
    let _ = std::fs::remove_dir(&empty);
}

/// Issue 22 item 1: a `listen()` that fails leaves the socket as it was,
/// the program's own options included. Under override the library set its
/// values over the program's SO_KEEPALIVE=1 and TCP_KEEPIDLE=30 before the
/// call; the failure must give the program its own values back (and the
/// kernel's to the options it never set), in every mode.
#[test]
fn a_failed_listen_gives_the_program_its_own_values_back() {
    let expected = (
        Some(0),
        "listen rc=-1 errno=98\n\
         after-failed-listen keepalive=1 idle=30 intvl=20 cnt=4 user_timeout=0\n"
            .to_string(),
    );
    assert_eq!(undoprobe_in_netns(&["listenfail"], false, &[]), expected);
    let inbound = [&ALL_TIMERS[..], &[("KEEPALIVE_DIRECTION", "in")]].concat();
    let overriding = [&inbound[..], &[("KEEPALIVE_OVERRIDE", "on")]].concat();
    let rule_overriding = [
        &ALL_TIMERS[..],
        &[("KEEPALIVE_RULES", "dir=in:idle=60,override=on")],
    ]
    .concat();
    for env in [&inbound, &overriding, &rule_overriding] {
        assert_eq!(
            undoprobe_in_netns(&["listenfail"], true, env),
            expected,
            "{env:?}"
        );
    }
}

/// Issue 22 item 7: under override the debug lines say what happens. A
/// pending socket's own option is not "ours to leave": ours will be set
/// over it; and "over the program's own" is said only where the program
/// set something. undoprobe listenfail: fd 3 listens with nothing of the
/// program's, fd 4 has the program's SO_KEEPALIVE and TCP_KEEPIDLE.
#[test]
fn debug_lines_under_override_say_what_happens() {
    let lines = |env: &[(&str, &str)]| {
        let env = [
            env,
            &[
                ("KEEPIDLE", "60"),
                ("KEEPALIVE_DIRECTION", "in"),
                ("KEEPALIVE_DEBUG", "1"),
            ],
        ]
        .concat();
        let mut cmd = command(c_program("undoprobe"), true, &env);
        cmd.arg("listenfail");
        stderr(&run(cmd, DEADLINE))
    };
    let find = |text: &str, start: &str| -> String {
        let line = text.lines().find(|line| line.starts_with(start));
        line.unwrap_or_else(|| panic!("no {start} in {text}"))
            .to_string()
    };
    let overriding = lines(&[("KEEPALIVE_OVERRIDE", "on")]);
    assert!(!overriding.contains("we will not set it"), "{overriding}");
    assert_eq!(
        find(
            &overriding,
            "libkeepalive: fd 4: the program set SO_KEEPALIVE"
        ),
        "libkeepalive: fd 4: the program set SO_KEEPALIVE=1; \
         ours will be set over it if the socket gets keepalive (override)"
    );
    let own = find(&overriding, "libkeepalive: fd 3 (AF_INET, listen)");
    assert!(!own.contains("program's own"), "{own}");
    let over = find(&overriding, "libkeepalive: fd 4 (AF_INET, listen)");
    assert!(
        over.contains("; over the program's own: SO_KEEPALIVE TCP_KEEPIDLE (override);"),
        "{over}"
    );
    // Without override, the program's own are left alone, and said so.
    let winning = lines(&[]);
    assert_eq!(
        find(&winning, "libkeepalive: fd 4: the program set SO_KEEPALIVE"),
        "libkeepalive: fd 4: the program set SO_KEEPALIVE=1; we will not set it"
    );
    let left = find(&winning, "libkeepalive: fd 4 (AF_INET, listen)");
    assert!(
        left.contains("; the program's own: SO_KEEPALIVE TCP_KEEPIDLE;"),
        "{left}"
    );
}

#[test]
fn the_programs_own_choice_wins() {
    let out = probe(&["connect", "program-idle"], true, &ALL_TIMERS);
    assert_eq!(
        options_of(&out, "client"),
        "keepalive=1 idle=77 intvl=10 cnt=6 user_timeout=1500"
    );
    let out = probe(&["connect", "program-user-timeout"], true, &ALL_TIMERS);
    assert_eq!(
        options_of(&out, "client"),
        "keepalive=1 idle=60 intvl=10 cnt=6 user_timeout=4321"
    );
}

#[test]
fn errno_and_return_values_are_unchanged() {
    let with = probe(&["errno"], true, &ALL_TIMERS);
    let without = probe(&["errno"], false, &ALL_TIMERS);
    assert_eq!(stdout(&with), stdout(&without));
    let text = stdout(&with);
    for expected in [
        "case=bad-type rc=-1 errno=22",
        "case=connect-refused rc=-1 errno=111",
        "case=connect-nonblocking rc=-1 errno=115",
        "case=connect-bad-fd rc=-1 errno=9",
        "case=connect-not-socket rc=-1 errno=88",
        "case=success-keeps-errno rc=0 errno=4242",
    ] {
        assert!(text.contains(expected), "{expected} missing from {text}");
    }
    assert!(text.lines().count() >= 16);
}

#[test]
fn off_switch_in_each_spelling_leaves_everything_alone() {
    let without = probe(&["socket", "inet", "stream", "0"], false, &[]);
    for off in [("KEEPALIVE", "off"), ("DD_USE_KEEPALIVE", "0")] {
        let env = [off, ("KEEPIDLE", "60")];
        let out = probe(&["socket", "inet", "stream", "0"], true, &env);
        assert_eq!(
            stdout(&out).replace("loaded=1", "loaded=0"),
            stdout(&without),
            "{off:?}"
        );
        assert!(stderr(&out).is_empty());
    }
}

#[test]
fn aliases_of_the_other_libraries() {
    let msantos = [
        ("TCP_KEEPIDLE", "60"),
        ("TCP_KEEPINTVL", "10"),
        ("TCP_KEEPCNT", "6"),
        ("TCP_USER_TIMEOUT", "1500"),
    ];
    let out = probe(&["socket", "inet", "stream", "0"], true, &msantos);
    assert_eq!(options_of(&out, "socket"), ALL_CONFIGURED);
    let dontdie = [
        ("DD_TCP_KEEPALIVE_TIME", "1m"),
        ("DD_TCP_KEEPALIVE_INTVL", "10"),
        ("DD_TCP_KEEPALIVE_PROBES", "6"),
        ("KEEPALIVE_USER_TIMEOUT", "1500ms"),
    ];
    let out = probe(&["socket", "inet", "stream", "0"], true, &dontdie);
    assert_eq!(options_of(&out, "socket"), ALL_CONFIGURED);
}

#[test]
fn user_timeout_auto_and_suffixes() {
    let env = [
        ("KEEPIDLE", "2"),
        ("KEEPINTVL", "1"),
        ("KEEPCNT", "3"),
        ("KEEPALIVE_USER_TIMEOUT", "auto"),
    ];
    let out = probe(&["socket", "inet", "stream", "0"], true, &env);
    assert_eq!(
        options_of(&out, "socket"),
        "keepalive=1 idle=2 intvl=1 cnt=3 user_timeout=5000"
    );
    let env = [("KEEPIDLE", "5m"), ("KEEPALIVE_USER_TIMEOUT", "90s")];
    let out = probe(&["socket", "inet", "stream", "0"], true, &env);
    let options = options_of(&out, "socket");
    assert!(options.contains("idle=300 "), "{options}");
    assert!(options.contains("user_timeout=90000"), "{options}");
}

#[test]
fn each_bad_value_gives_one_line_and_the_rest_still_applies() {
    let bad = [
        ("KEEPIDLE", "abc", "1..32767"),
        ("KEEPIDLE", "0", "1..32767"),
        ("KEEPIDLE", "-1", "1..32767"),
        ("KEEPIDLE", "", "1..32767"),
        ("KEEPIDLE", "32768", "1..32767"),
        ("KEEPINTVL", "1e3", "1..32767"),
        ("KEEPCNT", "128", "1..127"),
        ("KEEPALIVE_USER_TIMEOUT", "2147483648", "0..2147483647"),
        ("KEEPALIVE", "maybe", "on or off"),
        ("KEEPALIVE_DEBUG", "yes", "0 or 1"),
    ];
    let without = probe(&["socket", "inet", "stream", "0"], false, &[]);
    let default_line = options_of(&without, "socket");
    for (name, value, range) in bad {
        // KEEPCNT=4 is a good setting beside the bad one: it still applies.
        let good_name = if name == "KEEPCNT" {
            "KEEPINTVL"
        } else {
            "KEEPCNT"
        };
        let env = [(name, value), (good_name, "4")];
        let out = probe(&["socket", "inet", "stream", "0"], true, &env);
        let err = stderr(&out);
        assert_eq!(err.lines().count(), 1, "{name}={value:?}: {err}");
        assert!(
            err.starts_with(&format!("libkeepalive: {name}=\"{value}\"")),
            "{err}"
        );
        assert!(err.contains(range), "{err}");
        let options = options_of(&out, "socket");
        assert!(options.starts_with("keepalive=1 "), "{options}");
        let good_key = if good_name == "KEEPCNT" {
            "cnt"
        } else {
            "intvl"
        };
        assert!(options.contains(&format!("{good_key}=4")), "{options}");
        // The bad setting keeps the kernel default.
        let key = match name {
            "KEEPIDLE" => Some("idle"),
            "KEEPINTVL" => Some("intvl"),
            "KEEPCNT" => Some("cnt"),
            "KEEPALIVE_USER_TIMEOUT" => Some("user_timeout"),
            _ => None,
        };
        if let Some(key) = key {
            let default = default_line
                .split_whitespace()
                .find(|w| w.starts_with(&format!("{key}=")))
                .unwrap();
            assert!(options.contains(default), "{name}: {options}");
        }
    }
}

#[test]
fn conflicting_aliases_are_one_error() {
    let env = [("KEEPIDLE", "60"), ("TCP_KEEPIDLE", "30"), ("KEEPCNT", "4")];
    let out = probe(&["socket", "inet", "stream", "0"], true, &env);
    let err = stderr(&out);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("KEEPIDLE=\"60\"") && err.contains("TCP_KEEPIDLE=\"30\""));
    assert!(options_of(&out, "socket").contains("idle=7200"));
}

#[test]
fn unrelated_non_utf8_variables_do_not_matter_but_ours_are_reported() {
    use std::os::unix::ffi::OsStrExt;
    let mut cmd = command(c_program("sockprobe"), true, &ALL_TIMERS);
    cmd.args(["socket", "inet", "stream", "0"]);
    cmd.env(
        "SOME_OTHER_VARIABLE",
        std::ffi::OsStr::from_bytes(b"\xff\xfe"),
    );
    let out = run(cmd, DEADLINE);
    assert!(stderr(&out).is_empty());
    assert_eq!(options_of(&out, "socket"), ALL_CONFIGURED);

    let mut cmd = command(c_program("sockprobe"), true, &[]);
    cmd.args(["socket", "inet", "stream", "0"]);
    cmd.env("KEEPIDLE", std::ffi::OsStr::from_bytes(b"6\xff"));
    let out = run(cmd, DEADLINE);
    assert_eq!(stderr(&out).lines().count(), 1);
    assert!(stderr(&out).contains("KEEPIDLE"));
}

#[test]
fn debug_lines_go_to_stderr_only() {
    let env = [("KEEPIDLE", "60"), ("KEEPALIVE_DEBUG", "1")];
    let with = probe(&["connect", "libc"], true, &env);
    let plain = probe(&["connect", "libc"], true, &[("KEEPIDLE", "60")]);
    let normalize = |s: String| s.replace("loaded=1", "loaded=0");
    assert_eq!(normalize(stdout(&with)), normalize(stdout(&plain)));
    let err = stderr(&with);
    assert!(
        err.contains("TCP sockets get SO_KEEPALIVE=1 TCP_KEEPIDLE=60"),
        "{err}"
    );
    assert!(
        err.contains("(AF_INET, socket): set SO_KEEPALIVE=1"),
        "{err}"
    );
    for line in err.lines() {
        assert!(line.starts_with("libkeepalive: "), "{line}");
    }
    let out = probe(&["socket", "unix", "stream", "0"], true, &env);
    assert!(
        stderr(&out).contains("left alone: not TCP (AF_UNIX"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn eight_threads_ten_thousand_sockets_each() {
    let env = [("KEEPIDLE", "61")];
    let out = probe(&["threads", "8", "10000", "61"], true, &env);
    assert_eq!(stdout(&out).trim(), "sockets=80000 configured=80000");
    let out = probe(&["threads", "8", "100", "61"], false, &env);
    assert_eq!(stdout(&out).trim(), "sockets=800 configured=0");
}

#[test]
fn fork_vfork_and_signal_handler() {
    let out = probe(&["process"], true, &[("KEEPIDLE", "61")]);
    assert!(options_of(&out, "fork-child").starts_with("keepalive=1 idle=61 "));
    assert!(stdout(&out).contains("vfork-child keepalive=1"));
    assert!(options_of(&out, "signal").starts_with("keepalive=1 idle=61 "));
}

#[test]
fn secure_execution_ignores_the_environment() {
    // A setuid-root copy of the probe run as `nobody` is in secure-execution
    // mode (AT_SECURE). ld.so then only preloads a setuid library from a
    // system directory named without a slash; install a copy for this test.
    let id = std::process::id();
    let lib_name = format!("libkeepalive-securetest-{id}.so");
    let lib_path = format!("/usr/lib/x86_64-linux-gnu/{lib_name}");
    let probe_path = format!("/tmp/sockprobe-setuid-{id}");
    let cleanup = || {
        let _ = std::fs::remove_file(&lib_path);
        let _ = std::fs::remove_file(&probe_path);
    };
    let setup = || -> std::io::Result<()> {
        use std::os::unix::fs::PermissionsExt;
        std::fs::copy(library(), &lib_path)?;
        std::fs::set_permissions(&lib_path, std::fs::Permissions::from_mode(0o4755))?;
        std::fs::copy(c_program("sockprobe"), &probe_path)?;
        std::fs::set_permissions(&probe_path, std::fs::Permissions::from_mode(0o4755))?;
        Ok(())
    };
    if let Err(e) = setup() {
        cleanup();
        panic!("this test needs root (to install a setuid copy): {e}");
    }
    // Only the probe gets the variables: setpriv and sh are not setuid and
    // would load the library normally.
    let script = format!(
        "LD_PRELOAD={lib_name} KEEPIDLE=60 KEEPALIVE_DEBUG=1 exec {probe_path} socket inet stream 0"
    );
    let mut cmd = command("setpriv", false, &[]);
    cmd.args([
        "--reuid=nobody",
        "--regid=nogroup",
        "--clear-groups",
        "sh",
        "-c",
        &script,
    ]);
    let out = run(cmd, DEADLINE);
    cleanup();
    let text = stdout(&out);
    assert!(
        text.contains("loaded=1"),
        "library was not loaded: {text} {}",
        stderr(&out)
    );
    assert!(
        options_of(&out, "socket").starts_with("keepalive=0 idle=7200 "),
        "{text}"
    );
    assert!(stderr(&out).is_empty(), "{}", stderr(&out));
}

/// A bad value inherited by a tree of processes is reported once, by the
/// first process of the tree that has the library, not by every child
/// (a pyenv shim printed 35 lines). A child with another value reports it.
#[test]
fn a_bad_value_is_reported_once_per_process_tree() {
    let probe = c_program("lifeprobe");
    let probe = probe.to_str().unwrap();
    let tree = format!("sh -c 'sh -c \"exec {probe} socket\"'; {probe} socket");
    let mut cmd = command("sh", true, &[("KEEPIDLE", "90x")]);
    cmd.args(["-c", &tree]);
    let out = run(cmd, Duration::from_secs(30));
    let err = stderr(&out);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.starts_with("libkeepalive: KEEPIDLE=\"90x\" is not valid"),
        "{err}"
    );
    assert_eq!(
        stdout(&out).matches("keepalive=1").count(),
        2,
        "{}",
        stdout(&out)
    );
    // A child whose value differs from its parent's reports its own.
    let tree = format!("KEEPIDLE=91x exec {probe} socket");
    let mut cmd = command("sh", true, &[("KEEPIDLE", "90x")]);
    cmd.args(["-c", &tree]);
    let err = stderr(&run(cmd, Duration::from_secs(30)));
    assert_eq!(err.lines().count(), 2, "{err}");
    assert!(err.contains("\"91x\""), "{err}");
}

/// A name that is almost ours gets one line naming it and the variable it
/// probably meant; the settings the program gets are unchanged. A name that
/// is no near miss of ours stays silent.
#[test]
fn names_that_are_almost_ours_get_one_line() {
    for (name, meant) in [
        ("KEEPALIVE_IDLE", "KEEPIDLE"),
        ("KEEPIDEL", "KEEPIDLE"),
        ("KEEPALIVE_RULE", "KEEPALIVE_RULES"),
    ] {
        let out = probe(&["socket", "inet", "stream", "0"], true, &[(name, "60")]);
        assert_eq!(
            stderr(&out),
            format!(
                "libkeepalive: {name} is not a variable libkeepalive reads: \
                 did you mean {meant}? ignoring it\n"
            )
        );
        assert!(
            options_of(&out, "socket").starts_with("keepalive=1 idle=7200 "),
            "{}",
            stdout(&out)
        );
    }
    let silent = [("DD_ENV", "prod"), ("KEEPASS_DB", "x"), ("TERMINFO", "/x")];
    let out = probe(&["socket", "inet", "stream", "0"], true, &silent);
    assert_eq!(stderr(&out), "");
    // Once per process tree, as the other lines.
    let probe = c_program("lifeprobe");
    let probe = probe.to_str().unwrap();
    let mut cmd = command("sh", true, &[("KEEPIDEL", "60")]);
    cmd.args(["-c", &format!("{probe} socket; {probe} socket")]);
    let err = stderr(&run(cmd, Duration::from_secs(30)));
    assert_eq!(err.lines().count(), 1, "{err}");
}

/// Other programs' variables that look like ours stay silent: they are
/// read by someone. And they take none of the few places for near misses,
/// so a real typo beside four of them is still reported (the environment
/// is in name order: the four KEEPALIVE_ names come before KEEPIDEL).
#[test]
fn other_programs_variables_stay_silent_and_hide_no_typo() {
    let theirs = [
        ("KEEP_ALIVE", "1"),
        ("KEEPALIVE_TIMEOUT", "5"),
        ("KEEPALIVE_INTERVAL", "30"),
        ("KEEPALIVE_URL", "http://localhost/ping"),
        ("KEEPALIVE_REQUESTS", "100"),
        ("KEEPALIVE_ENABLED", "true"),
        ("KEEPALIVE_PING_INTERVAL", "10"),
        ("TCP_KEEPALIVE", "1"),
        ("TCP_KEEPALIVE_IDLE", "60"),
    ];
    let out = probe(&["socket", "inet", "stream", "0"], true, &theirs);
    assert_eq!(stderr(&out), "");
    let with_typo: Vec<_> = theirs.iter().copied().chain([("KEEPIDEL", "60")]).collect();
    let out = probe(&["socket", "inet", "stream", "0"], true, &with_typo);
    assert_eq!(
        stderr(&out),
        "libkeepalive: KEEPIDEL is not a variable libkeepalive reads: \
         did you mean KEEPIDLE? ignoring it\n"
    );
}

/// A container's entrypoint (PID 1 of its PID namespace) with the library
/// prints the line; the processes it starts, whose parent is PID 1, do not
/// print it again.
#[test]
fn the_line_is_not_repeated_under_a_pid_1_entrypoint() {
    let probe = c_program("lifeprobe");
    let probe = probe.to_str().unwrap();
    let library = common::library().to_str().unwrap();
    // unshare's child execs env, then sh: PID 1 of the new namespace, the
    // first process with the library. Its children are the two probes.
    let mut cmd = command("unshare", false, &[("KEEPIDLE", "90x")]);
    cmd.args(["--pid", "--fork", "--mount-proc", "env"])
        .arg(format!("LD_PRELOAD={library}"))
        .args(["sh", "-c", &format!("{probe} socket; {probe} socket; true")]);
    let out = run(cmd, Duration::from_secs(30));
    assert!(out.status.success(), "{out:?}");
    let err = stderr(&out);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.starts_with("libkeepalive: KEEPIDLE=\"90x\""), "{err}");
    assert_eq!(stdout(&out).matches("keepalive=1").count(), 2);
}

/// A parent that could not print (its stderr closed) does not silence its
/// children: the first one whose stderr is open says it.
#[test]
fn a_parent_that_could_not_print_does_not_silence_its_children() {
    let probe = c_program("lifeprobe");
    let probe = probe.to_str().unwrap();
    let library = common::library().to_str().unwrap();
    // The second sh has the library and fd 2 closed; its child's fd 2 is
    // the stdout pipe.
    let tree = format!("exec 2>&-; LD_PRELOAD={library} exec sh -c '{probe} socket 2>&1; true'");
    let mut cmd = command("sh", false, &[("KEEPIDLE", "90x")]);
    cmd.args(["-c", &tree]);
    let out = run(cmd, Duration::from_secs(30));
    assert!(out.status.success(), "{out:?}");
    let text = stdout(&out);
    assert_eq!(
        text.matches("libkeepalive: KEEPIDLE=\"90x\" is not valid")
            .count(),
        1,
        "{text}"
    );
    // And a child writing to another file than its parent's stderr.
    let tree = format!("{probe} socket 2>&1; true");
    let mut cmd = command("sh", true, &[("KEEPIDLE", "90x")]);
    cmd.args(["-c", &tree]);
    let out = run(cmd, Duration::from_secs(30));
    assert_eq!(stderr(&out).lines().count(), 1, "{out:?}");
    assert_eq!(stdout(&out).matches("libkeepalive: KEEPIDLE").count(), 1);
}

/// A parent whose stderr is a TCP socket (inetd's way: fd 2 is the
/// connection) prints nothing there, and so does not silence its child:
/// the child, whose own stderr is a pipe, says the line, once; the peer of
/// the socket receives nothing.
#[test]
fn a_parent_whose_stderr_is_a_tcp_socket_does_not_silence_its_child() {
    use std::io::Read;
    let probe = c_program("lifeprobe");
    let probe = probe.to_str().unwrap();
    let library = common::library().to_str().unwrap();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let connection = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
    let (mut peer, _) = listener.accept().unwrap();
    // The connection arrives as stdin; the first sh (no library) makes it
    // fd 2 of the second (the library's first process), whose child writes
    // its stderr to the stdout pipe.
    let tree = format!(
        "exec 2<&0 </dev/null; LD_PRELOAD={library} exec sh -c '{probe} socket 2>&1; true'"
    );
    let mut cmd = command("sh", false, &[("KEEPIDLE", "90x")]);
    cmd.args(["-c", &tree])
        .stdin(std::process::Stdio::from(std::os::fd::OwnedFd::from(
            connection,
        )));
    // run() drops cmd, and with it this process's copy of the connection.
    let out = run(cmd, Duration::from_secs(30));
    assert!(out.status.success(), "{out:?}");
    let text = stdout(&out);
    assert_eq!(
        text.matches("libkeepalive: KEEPIDLE=\"90x\" is not valid")
            .count(),
        1,
        "{text}"
    );
    assert!(text.contains("keepalive=1"), "{text}");
    assert_eq!(stderr(&out), "");
    peer.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut sent = Vec::new();
    peer.read_to_end(&mut sent).unwrap();
    assert_eq!(String::from_utf8_lossy(&sent), "", "written to the socket");
}

/// Under Yama's ptrace_scope 1 (Ubuntu's default) a parent's memory, where
/// it recorded where its line went, may not be read. Then the child cannot
/// know whether the line was said, and says it: a parent whose stderr was
/// closed at start (so it said nothing) and that later sent fd 2 to a log
/// must not silence its children. Yama is simulated in a private mount
/// namespace (a tmpfs over /proc/sys/kernel holding yama/ptrace_scope = 1).
#[test]
fn under_yama_a_child_says_the_line_its_parent_could_not() {
    let library = common::library().to_str().unwrap();
    let dir = std::env::temp_dir().join(format!("keepalive-yama-22-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let log = dir.join("log");
    let script = format!(
        "mount -t tmpfs none /proc/sys/kernel && mkdir /proc/sys/kernel/yama && \
         echo 1 > /proc/sys/kernel/yama/ptrace_scope && \
         LD_PRELOAD={library} sh -c 'exec 2>>{log}; /bin/true' 2>&-",
        log = log.display()
    );
    let mut cmd = command("unshare", false, &[("KEEPIDLE", "abc")]);
    cmd.args(["--mount", "--propagation", "private", "sh", "-c", &script]);
    let out = run(cmd, Duration::from_secs(30));
    let logged = std::fs::read_to_string(&log).unwrap_or_default();
    let _ = std::fs::remove_dir_all(&dir);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(
        logged
            .matches("libkeepalive: KEEPIDLE=\"abc\" is not valid")
            .count(),
        1,
        "{logged}"
    );
}

/// The library reads its variables in one pass over `environ` (not with
/// `getenv`), so it must read what `getenv` would: the first entry of a
/// name, and no entry without `=`. execenv builds environments no shell can
/// (a name twice) and prints getenv's answers as the oracle.
#[test]
fn variables_are_read_as_getenv_reads_them_first_entry_wins() {
    let library = library().to_str().unwrap().to_string();
    let sockprobe = c_program("sockprobe");
    let run_with = |entries: &[&str]| {
        let mut cmd = std::process::Command::new(c_program("execenv"));
        cmd.arg(format!("LD_PRELOAD={library}"));
        cmd.args(entries).arg("--").arg(&sockprobe);
        cmd.args(["socket", "inet", "stream", "0"]);
        run(cmd, DEADLINE)
    };
    let getenv_lines = |out: &std::process::Output, name: &str| -> Vec<String> {
        let prefix = format!("getenv {name}");
        let text = stdout(out);
        let lines = text.lines().filter(|line| line.starts_with(&prefix));
        lines.map(str::to_string).collect()
    };

    // The first of two entries wins; the second, bad, is never read.
    let out = run_with(&["KEEPIDLE=61", "KEEPIDLE=oops"]);
    assert_eq!(getenv_lines(&out, "KEEPIDLE"), ["getenv KEEPIDLE=61"; 2]);
    assert!(options_of(&out, "socket").starts_with("keepalive=1 idle=61 "));
    assert!(stderr(&out).is_empty(), "{}", stderr(&out));

    // The other way round: the bad one is read and reported, once.
    let out = run_with(&["KEEPIDLE=oops", "KEEPIDLE=61"]);
    assert_eq!(getenv_lines(&out, "KEEPIDLE"), ["getenv KEEPIDLE=oops"; 2]);
    assert!(!options_of(&out, "socket").contains("idle=61"));
    let err = stderr(&out);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.starts_with("libkeepalive: KEEPIDLE=\"oops\" is not valid"),
        "{err}"
    );

    // An entry without `=` is no variable; an empty value is a value.
    let out = run_with(&["KEEPCNT", "KEEPCNT=5", "KEEPINTVL="]);
    assert_eq!(
        getenv_lines(&out, "KEEPCNT"),
        ["getenv KEEPCNT=5", "getenv KEEPCNT=5"]
    );
    assert!(
        options_of(&out, "socket").contains(" cnt=5"),
        "{}",
        stdout(&out)
    );
    let err = stderr(&out);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.starts_with("libkeepalive: KEEPINTVL=\"\" is not valid"),
        "{err}"
    );
}

/// Issue 19 item 7: under override our values replace those a program sets
/// itself right after connect() and accept() (tests/c/ownprobe.c does what
/// Go does: idle and interval 15 s, count 9). The program's own calls
/// still return what the kernel said for them, EINVAL included.
#[test]
fn override_replaces_the_programs_own_values() {
    const OURS: [(&str, &str); 4] = [
        ("KEEPIDLE", "5"),
        ("KEEPINTVL", "1"),
        ("KEEPCNT", "3"),
        ("KEEPALIVE_USER_TIMEOUT", "8000"),
    ];
    let own_probe = |preload: bool, extra: &[(&str, &str)]| {
        let env = [&OURS[..], extra].concat();
        let out = run(command(c_program("ownprobe"), preload, &env), DEADLINE);
        assert!(out.status.success(), "{extra:?}: {}", stderr(&out));
        out
    };
    let calls = |out: &std::process::Output| -> Vec<String> {
        let text = stdout(out);
        text.lines()
            .filter(|l| l.starts_with("own "))
            .map(str::to_string)
            .collect()
    };
    let without = own_probe(false, &[]);
    let theirs = "keepalive=1 idle=15 intvl=15 cnt=9 user_timeout=0";
    assert_eq!(options_of(&without, "client"), theirs);
    assert_eq!(calls(&without).len(), 10);
    assert!(calls(&without)[4].ends_with("TCP_KEEPIDLE=0 rc=-1 errno=22"));
    // The program wins by default: ours only where it set nothing.
    let program_wins = "keepalive=1 idle=15 intvl=15 cnt=9 user_timeout=8000";
    let ours = "keepalive=1 idle=5 intvl=1 cnt=3 user_timeout=8000";
    // Extra variables, then what the client and the accepted end get.
    type Case<'a> = (&'a [(&'a str, &'a str)], &'a str, &'a str);
    let cases: [Case; 6] = [
        (&[], program_wins, program_wins),
        (&[("KEEPALIVE_OVERRIDE", "off")], program_wins, program_wins),
        (&[("KEEPALIVE_OVERRIDE", "on")], ours, ours),
        (&[("KEEPALIVE_RULES", "*:on,override=on")], ours, ours),
        (
            &[("KEEPALIVE_RULES", "dir=out:on,override=on")],
            ours,
            program_wins,
        ),
        (
            &[
                ("KEEPALIVE_OVERRIDE", "on"),
                (
                    "KEEPALIVE_RULES",
                    "net=10.0.0.0/8:off; dir=in:on,override=off",
                ),
            ],
            ours,
            program_wins,
        ),
    ];
    for (extra, client, accepted) in cases {
        let out = own_probe(true, extra);
        assert_eq!(options_of(&out, "client"), client, "{extra:?}");
        assert_eq!(options_of(&out, "accepted"), accepted, "{extra:?}");
        assert_eq!(calls(&out), calls(&without), "{extra:?}");
        assert!(stderr(&out).is_empty(), "{extra:?}: {}", stderr(&out));
    }
}

/// The same seen from outside: the kernel's keepalive timer (`ss -o`) on
/// both ends counts down from our 5 s idle, not the program's 15 s.
#[test]
fn override_shows_in_the_kernel_s_timers() {
    let timers = |extra: &[(&str, &str)]| -> Vec<f64> {
        let env = [&[("KEEPIDLE", "5")][..], extra].concat();
        let mut cmd = command(c_program("ownprobe"), true, &env);
        cmd.arg("hold");
        let probe = Process::spawn(cmd, "ownprobe hold");
        let port = wait_for(DEADLINE, || {
            let text = probe.stdout();
            let line = text.lines().find_map(|l| l.strip_prefix("port="))?;
            line.trim().parse::<u16>().ok()
        });
        let port = port.unwrap_or_else(|| panic!("{} {}", probe.stdout(), probe.stderr()));
        let lines = ss_lines(port);
        assert_eq!(lines.len(), 2, "{lines:?}");
        lines
            .iter()
            .map(|line| keepalive_timer_secs(line).unwrap_or_else(|| panic!("{line}")))
            .collect()
    };
    for secs in timers(&[]) {
        assert!(secs > 10.0, "the program's 15 s: {secs}");
    }
    for secs in timers(&[("KEEPALIVE_OVERRIDE", "on")]) {
        assert!(secs <= 5.0, "our 5 s: {secs}");
    }
}
