//! The hook layer under hostile use (tests/c/reliaprobe.c): no hang, no
//! abort, no library text in a connection, every descriptor followed, no
//! decision applied to the wrong socket, no stale state, and the program's
//! own options winning one by one in every mode; threads cancelled inside
//! our hooks (tests/c/cancelprobe.c) cancelled as without us.

mod common;

use common::*;
use std::io::Read;
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Command, Output};
use std::time::Duration;

const DEADLINE: Duration = Duration::from_secs(60);

fn probe(args: &[&str], preload: bool, env: &[(&str, &str)]) -> Output {
    let mut cmd = command(c_program("reliaprobe"), preload, env);
    cmd.args(args);
    let out = run(cmd, DEADLINE);
    assert!(
        out.status.success(),
        "reliaprobe {args:?} {env:?}: {:?}\n{}{}",
        out.status,
        stdout(&out),
        stderr(&out)
    );
    out
}

/// The option words after `label ` on the probe's line starting so.
fn line(out: &Output, label: &str) -> String {
    let text = stdout(out);
    text.lines()
        .find_map(|l| {
            l.split_once(&format!("{label} "))
                .map(|(_, rest)| rest.to_string())
        })
        .unwrap_or_else(|| panic!("no {label} line: {text}"))
}

/// Runs the probe under the library built with the `slow-resolve` test
/// feature: every lookup of a real function takes 20 ms. A lookup that a
/// hook performs under a lock (redhook's `Once`, as before) then reliably
/// deadlocks a signal handler or a forked child that calls the same hook
/// within those 20 ms.
fn with_slow_library(args: &[&str]) -> Output {
    let mut cmd = command(c_program("reliaprobe"), false, &[("KEEPIDLE", "61")]);
    cmd.env("LD_PRELOAD", library_with("slow-resolve"));
    cmd.args(args);
    let out = run(cmd, DEADLINE);
    assert!(
        out.status.success(),
        "{args:?}: {:?} {}",
        out.status,
        stderr(&out)
    );
    out
}
#[test]
fn dup2_from_a_signal_handler_never_waits_on_a_lookup() {
    let out = with_slow_library(&["signal-dup"]);
    let text = stdout(&out);
    assert!(text.starts_with("signal-dup ok"), "{text}");
    let handled: u32 = text
        .split("handled=")
        .nth(1)
        .and_then(|n| n.trim().parse().ok())
        .unwrap();
    assert!(handled > 10, "the handler must really have run: {text}");
}

#[test]
fn a_child_forked_during_another_thread_s_first_dup2_can_dup2() {
    let out = with_slow_library(&["fork-dup"]);
    assert_eq!(stdout(&out).trim(), "fork-dup children stuck=0 failed=0");
}

#[test]
fn a_hook_without_a_real_function_behind_it_never_aborts() {
    // libc first, then the library: dlsym(RTLD_NEXT) from the library finds
    // no socket() after it. The global scope's (libc's) is used instead.
    let lib = library().to_str().unwrap();
    let mut cmd = command(c_program("reliaprobe"), false, &[]);
    cmd.env("LD_PRELOAD", format!("libc.so.6:{lib}"));
    cmd.args(["via-dlsym", lib]);
    let out = run(cmd, DEADLINE);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(stdout(&out).trim(), "via-dlsym socket=fd errno=0 dup2=95");
}

/// sockprobe under the library built with `panic-in-hook`: our part of
/// every socket() panics. The process must exit normally (0, not SIGABRT:
/// a panic the unwinder cannot unwind aborts), and the program must see its
/// calls exactly as without the library. This is the only thing that runs
/// the unwinder (libgcc_s in this developer build; the shipped build's
/// linked-in unwinder: tests/linking.rs).
fn with_panicking_library(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = command(c_program("sockprobe"), false, env);
    cmd.env("LD_PRELOAD", library_with("panic-in-hook"));
    cmd.args(args);
    let out = run(cmd, DEADLINE);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{args:?}: {:?}\n{}{}",
        out.status,
        stdout(&out),
        stderr(&out)
    );
    // The control: the panic really happened (std's default message).
    assert!(
        stderr(&out).contains("panic-in-hook: a test-only panic"),
        "{args:?}: {}",
        stderr(&out)
    );
    out
}

#[test]
fn a_caught_panic_of_ours_leaves_socket_and_errno_as_without_us() {
    let env = [("KEEPIDLE", "61")];
    let socket = ["socket", "inet", "stream", "0"];
    let out = with_panicking_library(&socket, &env);
    // The socket is the program's, errno as it set it, the library loaded,
    // and the socket left alone: the panic cut our part short.
    let text = stdout(&out);
    assert!(text.starts_with("rc=0 errno=4242 loaded=1\n"), "{text}");
    assert!(text.contains("socket fd=3 keepalive=0 "), "{text}");
    // The control: the same library without the panic configures it.
    let mut plain = command(c_program("sockprobe"), true, &env);
    plain.args(socket);
    let plain = stdout(&run(plain, DEADLINE));
    assert!(plain.contains("keepalive=1 idle=61"), "{plain}");
    // Every result and errno of the failure and success cases, as without
    // the library.
    let mut without = command(c_program("sockprobe"), false, &[]);
    without.arg("errno");
    let without = stdout(&run(without, DEADLINE));
    assert!(without.contains("case=connect-refused"), "{without}");
    assert_eq!(stdout(&with_panicking_library(&["errno"], &env)), without);
}

#[test]
fn panics_caught_in_many_threads_at_once_never_abort() {
    // 4 threads x 50 sockets: 200 panics unwound concurrently (the
    // unwinder's own locks, dl_iterate_phdr's), none configured.
    let out = with_panicking_library(&["threads", "4", "50", "61"], &[("KEEPIDLE", "61")]);
    assert_eq!(stdout(&out).trim(), "sockets=200 configured=0");
}

#[test]
fn a_backtrace_of_a_caught_panic_walks_through_the_program() {
    // RUST_BACKTRACE makes std's panic message walk the stack with
    // _Unwind_Backtrace: through our frames, the program's main and libc's.
    let env = [("KEEPIDLE", "61"), ("RUST_BACKTRACE", "full")];
    let out = with_panicking_library(&["socket", "inet", "stream", "0"], &env);
    let text = stderr(&out);
    assert!(text.contains(" - main\n"), "{text}");
    assert!(text.contains("__libc_start_main"), "{text}");
}

#[test]
fn debug_text_never_reaches_a_connection_swapped_onto_fd_2() {
    let peer = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = peer.local_addr().unwrap().port().to_string();
    let reader = std::thread::spawn(move || {
        let (mut connection, _) = peer.accept().unwrap();
        connection
            .set_read_timeout(Some(Duration::from_secs(30)))
            .unwrap();
        let mut received = Vec::new();
        let _ = connection.read_to_end(&mut received);
        received
    });
    let env = [("KEEPIDLE", "61"), ("KEEPALIVE_DEBUG", "1")];
    let out = probe(&["stderr-swap", &port], true, &env);
    let received = reader.join().unwrap();
    assert!(
        received.is_empty(),
        "the peer received {} bytes: {:?}",
        received.len(),
        String::from_utf8_lossy(&received[..received.len().min(200)])
    );
    // Debug lines still reach the original stderr.
    assert!(stderr(&out).contains("(AF_INET, socket): set SO_KEEPALIVE=1"));
}

/// The library built with a test-only `--features` list, once per list.
fn library_with(features: &str) -> PathBuf {
    static BUILT: std::sync::Mutex<Vec<String>> = std::sync::Mutex::new(Vec::new());
    let mut built = BUILT.lock().unwrap_or_else(|e| e.into_inner());
    let target = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("build-{features}"));
    if !built.iter().any(|f| f == features) {
        let status = Command::new(env!("CARGO"))
            .args([
                "build",
                "--release",
                "--lib",
                "--quiet",
                "--features",
                features,
            ])
            .arg("--target-dir")
            .arg(&target)
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .status()
            .expect("run cargo build");
        assert!(status.success(), "cargo build --features {features} failed");
        built.push(features.to_string());
    }
    target.join("release/libkeepalive.so")
}

fn hard_fd_limit() -> usize {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes the struct.
    assert_eq!(
        unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) },
        0
    );
    limit.rlim_max as usize
}

/// Descriptors beyond any fixed table, with the program's choices on them.
/// The table's first page holds 65,536 numbers; this machine's hard
/// RLIMIT_NOFILE may be lower (20,000 was seen), so the same checks also run
/// against a library built with 256-number pages (`small-fd-pages`), where
/// every number above 255 is in a page mapped on demand.
#[test]
fn descriptors_beyond_the_first_page_keep_the_program_s_choices() {
    let highest = hard_fd_limit().min(1 << 30) - 16;
    let mut cases = vec![(library().to_path_buf(), highest)];
    let small = library_with("small-fd-pages");
    cases.push((small.clone(), 300));
    cases.push((small, highest));
    if highest > 70_000 {
        cases.push((library().to_path_buf(), 70_000));
    }
    let modes: [&[(&str, &str)]; 3] = [
        &[("KEEPIDLE", "61")],
        &[("KEEPIDLE", "61"), ("KEEPALIVE_DIRECTION", "out")],
        &[("KEEPIDLE", "61"), ("KEEPALIVE_RULES", "*:idle=300")],
    ];
    for (library, number) in cases {
        let number = number.to_string();
        for env in modes {
            let mut cmd = command(c_program("reliaprobe"), false, env);
            cmd.env("LD_PRELOAD", &library);
            cmd.args(["high-fd", &number]);
            let out = run(cmd, DEADLINE);
            assert!(out.status.success(), "{number}: {}", stderr(&out));
            let label = format!("{} fd {number} {env:?}", library.display());
            assert!(stdout(&out).contains(&format!("fd={number} ")), "{label}");
            assert!(line(&out, "off").starts_with("keepalive=0 "), "{label}");
            let idle = line(&out, "idle");
            assert!(idle.starts_with("keepalive=1 idle=5 "), "{label}: {idle}");
            let accepted = line(&out, "accepted");
            assert!(accepted.starts_with("keepalive=0 "), "{label}: {accepted}");
        }
    }
}

#[test]
fn a_decision_for_a_closed_socket_never_reaches_the_next_one_on_its_number() {
    let without = probe(&["close-in-connect"], false, &[]);
    let untouched = line(&without, "reused");
    let env = [
        ("KEEPIDLE", "61"),
        ("KEEPALIVE_RULES", "net=127.0.0.0/8:idle=300"),
    ];
    let out = probe(&["close-in-connect"], true, &env);
    assert!(stdout(&out).contains("same-number=1"), "{}", stdout(&out));
    assert_eq!(line(&out, "reused"), untouched);
}

#[test]
fn stale_state_never_touches_a_udp_socket_on_the_same_number() {
    for how in [
        "fclose",
        "close_range",
        "closefrom",
        "fcntl-dupfd",
        "fcntl-dupfd-cloexec",
    ] {
        for env in [
            &[("KEEPIDLE", "61"), ("KEEPALIVE_RULES", "*:on")][..],
            &[("KEEPIDLE", "61"), ("KEEPALIVE_DIRECTION", "out")][..],
            &[("KEEPIDLE", "61")][..],
        ] {
            let out = probe(&["stale", how], true, env);
            assert_eq!(stdout(&out).trim(), "udp keepalive=0", "{how} {env:?}");
        }
    }
}

/// The program's own options, one by one, the same in every mode; `ours`
/// says whether the mode gives keepalive to that direction at all.
#[test]
fn the_program_s_own_options_win_one_by_one_in_every_mode() {
    let timers = ALL_TIMERS.to_vec();
    let with = |extra: &[(&'static str, &'static str)]| {
        let mut env = timers.clone();
        env.extend_from_slice(extra);
        env
    };
    // (environment, outbound gets ours, inbound gets ours)
    let modes = [
        (with(&[]), true, true),
        (with(&[("KEEPALIVE_DIRECTION", "both")]), true, true),
        (with(&[("KEEPALIVE_DIRECTION", "out")]), true, false),
        (with(&[("KEEPALIVE_DIRECTION", "in")]), false, true),
        (with(&[("KEEPALIVE_RULES", "*:on")]), true, true),
        (
            with(&[("KEEPALIVE_RULES", "net=127.0.0.0/8,port=1-65535:on; *:off")]),
            true,
            true,
        ),
    ];
    let untouched = "keepalive=0 idle=7200 intvl=75 cnt=9 user_timeout=0";
    for (env, out_ours, in_ours) in &modes {
        let ours = |yes: bool, words: &str| {
            if yes {
                words.to_string()
            } else {
                untouched.into()
            }
        };
        // psql: SO_KEEPALIVE=1 before connect(); the timers are ours.
        let run = probe(&["own", "psql"], true, env);
        let want = if *out_ours {
            ALL_CONFIGURED.to_string()
        } else {
            "keepalive=1 idle=7200 intvl=75 cnt=9 user_timeout=0".to_string()
        };
        assert_eq!(line(&run, "client"), want, "psql {env:?}");
        // Only TCP_KEEPIDLE: the rest is ours.
        let run = probe(&["own", "idle"], true, env);
        let want = if *out_ours {
            "keepalive=1 idle=33 intvl=10 cnt=6 user_timeout=1500"
        } else {
            "keepalive=0 idle=33 intvl=75 cnt=9 user_timeout=0"
        };
        assert_eq!(line(&run, "client"), want, "idle {env:?}");
        // SO_KEEPALIVE=0: keepalive stays off.
        let run = probe(&["own", "off"], true, env);
        assert!(
            line(&run, "client").starts_with("keepalive=0 "),
            "off {env:?}"
        );
        // haproxy: TCP_USER_TIMEOUT=0 on the listener; its connections get
        // the rest.
        let run = probe(&["own", "haproxy"], true, env);
        let want = ours(
            *in_ours,
            "keepalive=1 idle=60 intvl=10 cnt=6 user_timeout=0",
        );
        assert_eq!(line(&run, "accepted"), want, "haproxy {env:?}");
        // memcached: SO_KEEPALIVE=1 on the listener; the timers are ours.
        let run = probe(&["own", "memcached"], true, env);
        let want = if *in_ours {
            ALL_CONFIGURED.to_string()
        } else {
            "keepalive=1 idle=7200 intvl=75 cnt=9 user_timeout=0".to_string()
        };
        assert_eq!(line(&run, "accepted"), want, "memcached {env:?}");
    }
}

/// Runs tests/c/cancelprobe.c, which cancels a thread (pthread_cancel) in
/// `call`; the exit status, the thread's fate and the sockets the program
/// makes afterwards are checked by the caller.
fn cancel_probe(call: &str, preload: bool, env: &[(&str, &str)]) -> Output {
    let mut cmd = command(c_program("cancelprobe"), preload, env);
    cmd.arg(call);
    let out = run(cmd, DEADLINE);
    assert_eq!(
        out.status.code(),
        Some(0),
        "cancelprobe {call} {env:?} (preloaded: {preload}): {:?}\n{}{}",
        out.status,
        stdout(&out),
        stderr(&out)
    );
    assert!(
        stdout(&out).contains(&format!("{call} joined=canceled cleanup=1\n")),
        "cancelprobe {call} {env:?}: {}",
        stdout(&out)
    );
    out
}

/// glibc cancels a thread by a forced unwind through its frames: one
/// blocked in accept(), accept4(), connect() or fcntl(F_OFD_SETLKW) is
/// unwound through the real function and our hook. The program must see
/// what it sees without us: the thread cancelled, its cleanup handler run,
/// exit status 0; and its sockets, before and after, configured as usual.
#[test]
fn a_thread_cancelled_inside_a_hooked_call_is_cancelled_as_without_us() {
    let untouched = "keepalive=0 idle=7200 intvl=75 cnt=9 user_timeout=0";
    let modes: [(&[(&str, &str)], &str); 3] = [
        (&[("KEEPIDLE", "61")], "keepalive=1 idle=61 "),
        (
            &[("KEEPIDLE", "61"), ("KEEPALIVE_RULES", "*:idle=300")],
            "keepalive=1 idle=300 ",
        ),
        (
            &[("KEEPIDLE", "61"), ("KEEPALIVE_DEBUG", "1")],
            "keepalive=1 idle=61 ",
        ),
    ];
    for call in ["accept", "accept4", "connect", "fcntl-setlkw"] {
        let control = cancel_probe(call, false, &[]);
        assert_eq!(line(&control, "client"), untouched, "{call}");
        assert_eq!(line(&control, "accepted"), untouched, "{call}");
        for (env, configured) in modes {
            let out = cancel_probe(call, true, env);
            for label in ["client", "accepted"] {
                let words = line(&out, label);
                assert!(
                    words.starts_with(configured),
                    "{call} {env:?} {label}: {words}"
                );
            }
            if call == "connect" {
                // Closed by the cleanup handler in the middle of the unwind.
                // Configured at socket(); with rules, undecided: its
                // connect() never returned.
                let words = line(&out, "connecting");
                let rules = env.iter().any(|(name, _)| *name == "KEEPALIVE_RULES");
                let want = if rules { untouched } else { configured };
                assert!(words.starts_with(want), "{call} {env:?}: {words}");
            }
        }
    }
}

/// A cancellation requested while the thread is outside any cancellation
/// point waits for the next one; socket() is none, so it returns its
/// descriptor first. Our debug line inside socket() is a write(), a
/// cancellation point: it must not act on the request (with the old
/// library the forced unwind met our catch_unwind and the process aborted:
/// "FATAL: exception not rethrown", exit 134).
#[test]
fn a_pending_cancellation_waits_for_the_program_s_next_cancellation_point() {
    let control = cancel_probe("pending-socket", false, &[]);
    assert!(stdout(&control).contains("socket returned fd="));
    for env in [
        &[("KEEPIDLE", "61")][..],
        &[("KEEPIDLE", "61"), ("KEEPALIVE_DEBUG", "1")][..],
        &[
            ("KEEPIDLE", "61"),
            ("KEEPALIVE_DEBUG", "1"),
            ("KEEPALIVE_RULES", "*:idle=300"),
        ][..],
    ] {
        let out = cancel_probe("pending-socket", true, env);
        assert!(
            stdout(&out).contains("socket returned fd="),
            "{env:?}: {}",
            stdout(&out)
        );
        if env.contains(&("KEEPALIVE_DEBUG", "1")) {
            // The debug line of the thread's socket() was written whole.
            let made = stdout(&out)
                .split("socket returned fd=")
                .nth(1)
                .and_then(|rest| rest.lines().next())
                .unwrap()
                .to_string();
            assert!(
                stderr(&out).contains(&format!("fd {made} (AF_INET, socket): ")),
                "{env:?}: {}",
                stderr(&out)
            );
        }
    }
}
