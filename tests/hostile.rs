//! Hostile values in every variable the library reads. For each variable and
//! each value of the list (empty, spaces, signs, 0, the maximum and
//! one past it, 2^31, 2^64, 1e3, 0x10, "5 s", "5ss", non-ASCII digits, a huge
//! string, invalid UTF-8), tests/c/sockprobe.c's `connect` run (socket,
//! connect, accept, every option read back) must exit as without the
//! library and print what it prints without the library except for the
//! intended settings, and stderr must hold exactly one line naming the
//! variable when the value is bad and none when it is good.
//!
//! The expected outcome comes from an oracle written here from the
//! documented grammar, independently of the core's parser (src/core/load.rs).

mod common;

use common::*;
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::process::Output;
use std::time::Duration;

const DEADLINE: Duration = Duration::from_secs(60);

/// What a variable holds, as documented.
#[derive(Clone, Copy, Debug)]
enum Kind {
    /// Seconds for the `sockprobe` key, 1..=max.
    Seconds(&'static str, u64),
    /// A count for the key, 1..=max.
    Count(&'static str, u64),
    /// Milliseconds for `user_timeout`, 0..=max.
    Millis(u64),
    /// A timer under msantos/libkeepalive's name: as `Seconds` or `Count`,
    /// and 0 means the system default (nothing set, no complaint).
    MsantosTimer(&'static str, u64),
    /// msantos's `TCP_USER_TIMEOUT`: as `Millis`, and -1 means derived
    /// from the timers (our `auto`).
    MsantosMillis(u64),
    /// msantos's `LIBKEEPALIVE_DEBUG`: any value turns debugging on.
    MsantosDebug,
    /// A switch spelled (on, off).
    Switch(&'static str, &'static str),
    /// The debug switch, 1 or 0.
    Debug,
    /// out, in or both.
    Direction,
    /// `;`-separated MATCH:ACTION rules; blank means none. Of the hostile
    /// values only the maximum, `*:idle=32767`, and the blank ones are valid.
    Rules,
}

const VARIABLES: [(&str, Kind); 18] = [
    ("KEEPALIVE", Kind::Switch("on", "off")),
    ("DD_USE_KEEPALIVE", Kind::Switch("1", "0")),
    ("KEEPIDLE", Kind::Seconds("idle", 32767)),
    ("TCP_KEEPIDLE", Kind::MsantosTimer("idle", 32767)),
    ("DD_TCP_KEEPALIVE_TIME", Kind::Seconds("idle", 32767)),
    ("KEEPINTVL", Kind::Seconds("intvl", 32767)),
    ("TCP_KEEPINTVL", Kind::MsantosTimer("intvl", 32767)),
    ("DD_TCP_KEEPALIVE_INTVL", Kind::Seconds("intvl", 32767)),
    ("KEEPCNT", Kind::Count("cnt", 127)),
    ("TCP_KEEPCNT", Kind::MsantosTimer("cnt", 127)),
    ("DD_TCP_KEEPALIVE_PROBES", Kind::Count("cnt", 127)),
    ("KEEPALIVE_USER_TIMEOUT", Kind::Millis(2147483647)),
    ("TCP_USER_TIMEOUT", Kind::MsantosMillis(2147483647)),
    ("KEEPALIVE_DIRECTION", Kind::Direction),
    ("KEEPALIVE_RULES", Kind::Rules),
    ("KEEPALIVE_DEBUG", Kind::Debug),
    ("LIBKEEPALIVE_DEBUG", Kind::MsantosDebug),
    ("DD_DEBUG", Kind::Debug),
];

/// execve refuses a single "NAME=value" string over 32 pages (E2BIG), so
/// this is the longest value a variable can arrive with through exec. The
/// 1 MB case goes through setenv and dlopen instead (see below).
fn longest_exec_value(name: &str) -> Vec<u8> {
    vec![b'7'; 32 * 4096 - name.len() - 2]
}

/// The list, with the maximum and one past it for this kind.
fn hostile_values(name: &str, kind: Kind) -> Vec<Vec<u8>> {
    let (max, past) = match kind {
        Kind::Seconds(_, max)
        | Kind::Count(_, max)
        | Kind::Millis(max)
        | Kind::MsantosTimer(_, max)
        | Kind::MsantosMillis(max) => (max.to_string(), (max + 1).to_string()),
        Kind::MsantosDebug => ("1".to_string(), "2".to_string()),
        Kind::Switch(on, _) => (on.to_string(), format!("{on}{on}")),
        Kind::Debug => ("1".to_string(), "2".to_string()),
        Kind::Direction => ("both".to_string(), "bothboth".to_string()),
        Kind::Rules => ("*:idle=32767".to_string(), "*:idle=32768".to_string()),
    };
    let mut values: Vec<Vec<u8>> = [
        "",
        " 5",
        "5 ",
        " 5 ",
        "+5",
        "-1",
        "0",
        &max,
        &past,
        "2147483648",
        "18446744073709551616",
        "1e3",
        "0x10",
        "5 s",
        "5ss",
        "５",
        "٥",
        "5٥",
        "5\t",
    ]
    .iter()
    .map(|v| v.as_bytes().to_vec())
    .collect();
    values.push(longest_exec_value(name));
    values.push(b"5\xff".to_vec());
    values.push(b"\xc3\x28".to_vec());
    values
}

/// The oracle: the option words a valid value changes (key, value), the
/// switch's state, or None when the value is invalid.
enum Expected {
    Invalid,
    /// Valid; the library on (true) or off, and the option words it sets.
    Valid(bool, Vec<(&'static str, String)>),
}

fn oracle(kind: Kind, value: &[u8]) -> Expected {
    let text = match std::str::from_utf8(value) {
        Ok(text) => text,
        Err(_) => return Expected::Invalid,
    };
    let number = (!text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()))
        .then(|| text.parse::<u64>().ok())
        .flatten();
    match kind {
        Kind::Seconds(key, max) | Kind::Count(key, max) => match number {
            Some(n) if (1..=max).contains(&n) => Expected::Valid(true, vec![(key, n.to_string())]),
            _ => Expected::Invalid,
        },
        Kind::Millis(max) => match number {
            Some(n) if n <= max => Expected::Valid(true, vec![("user_timeout", n.to_string())]),
            _ => Expected::Invalid,
        },
        Kind::MsantosTimer(_, _) if text == "0" => Expected::Valid(true, vec![]),
        Kind::MsantosTimer(key, max) => oracle(Kind::Seconds(key, max), value),
        Kind::MsantosMillis(_) if text == "-1" => {
            Expected::Valid(true, vec![("user_timeout", derived_user_timeout_ms())])
        }
        Kind::MsantosMillis(max) => oracle(Kind::Millis(max), value),
        Kind::MsantosDebug => Expected::Valid(true, vec![]),
        Kind::Switch(on, off) => {
            if text == on {
                Expected::Valid(true, vec![])
            } else if text == off {
                Expected::Valid(false, vec![])
            } else {
                Expected::Invalid
            }
        }
        Kind::Debug => match text {
            "0" | "1" => Expected::Valid(true, vec![]),
            _ => Expected::Invalid,
        },
        Kind::Direction => match text {
            "out" | "in" | "both" => Expected::Valid(true, vec![]),
            _ => Expected::Invalid,
        },
        Kind::Rules => match text.trim() {
            "" => Expected::Valid(true, vec![]),
            "*:idle=32767" => Expected::Valid(true, vec![("idle", "32767".to_string())]),
            _ => Expected::Invalid,
        },
    }
}

/// `auto` with no timer set: the kernel defaults' idle + intvl x cnt.
fn derived_user_timeout_ms() -> String {
    let sysctl = |name: &str| -> u64 {
        std::fs::read_to_string(format!("/proc/sys/net/ipv4/{name}"))
            .unwrap()
            .trim()
            .parse()
            .unwrap()
    };
    let seconds = sysctl("tcp_keepalive_time")
        + sysctl("tcp_keepalive_intvl") * sysctl("tcp_keepalive_probes");
    (seconds * 1000).to_string()
}

fn sockprobe_connect(preload: bool, name: &str, value: &[u8]) -> Output {
    let mut cmd = command(c_program("sockprobe"), preload, &[]);
    cmd.args(["connect", "libc"]);
    cmd.env(name, OsStr::from_bytes(value));
    run(cmd, DEADLINE)
}

/// The run without the library, edited into what the library must make of
/// it: keepalive on (unless switched off) and the set options replaced.
fn expected_stdout(without: &str, on: bool, changes: &[(&str, String)]) -> String {
    let mut out = String::new();
    for line in without.lines() {
        let is_socket_line = line.starts_with("client ") || line.starts_with("accepted ");
        let words: Vec<String> = line
            .split(' ')
            .map(|word| {
                let Some((key, value)) = word.split_once('=') else {
                    return word.to_string();
                };
                if !is_socket_line || !on {
                    return word.to_string();
                }
                if key == "keepalive" {
                    return "keepalive=1".to_string();
                }
                match changes.iter().find(|(k, _)| *k == key) {
                    Some((_, new)) => format!("{key}={new}"),
                    None => format!("{key}={value}"),
                }
            })
            .collect();
        out.push_str(&words.join(" "));
        out.push('\n');
    }
    out
}

/// Whether a diagnostic line names `name`: `NAME="value" is not valid` or,
/// for a rule, `NAME: rule N "..." is not valid`.
fn names(line: &str, name: &str) -> bool {
    let rest = line.strip_prefix("libkeepalive: ").unwrap_or("");
    rest.strip_prefix(name)
        .is_some_and(|after| after.starts_with('=') || after.starts_with(':'))
}

fn shown(value: &[u8]) -> String {
    let text = String::from_utf8_lossy(value);
    if text.len() > 40 {
        format!("{}... ({} bytes)", &text[..20], value.len())
    } else {
        format!("{text:?}")
    }
}

/// Checks one variable against every hostile value; returns the failures.
fn check_variable(name: &'static str, kind: Kind) -> Vec<String> {
    let mut failures = Vec::new();
    for value in hostile_values(name, kind) {
        let label = format!("{name}={}", shown(&value));
        let with = sockprobe_connect(true, name, &value);
        let without = sockprobe_connect(false, name, &value);
        if with.status.code() != without.status.code() {
            failures.push(format!(
                "{label}: status {:?} vs {:?}",
                with.status, without.status
            ));
            continue;
        }
        let err = stderr(&with);
        let (want_stdout, bad) = match oracle(kind, &value) {
            Expected::Invalid => (expected_stdout(&stdout(&without), true, &[]), true),
            Expected::Valid(on, changes) => {
                (expected_stdout(&stdout(&without), on, &changes), false)
            }
        };
        if stdout(&with) != want_stdout {
            failures.push(format!(
                "{label}: stdout\n{}expected\n{want_stdout}",
                stdout(&with)
            ));
        }
        if bad {
            if err.lines().count() != 1 || !names(&err, name) || err.len() > 600 {
                failures.push(format!("{label}: want one line naming {name}, got {err:?}"));
            }
        } else if matches!(kind, Kind::MsantosDebug) || matches!(kind, Kind::Debug) && value == b"1"
        {
            // Debug on: debug lines only, no complaint.
            if err.contains("not valid") || !err.contains("TCP sockets get") {
                failures.push(format!("{label}: debug output {err:?}"));
            }
        } else if !err.is_empty() {
            failures.push(format!("{label}: stderr {err:?}"));
        }
    }
    failures
}

#[test]
fn every_variable_against_every_hostile_value() {
    // Five threads over the eighteen variables: about 1600 short runs.
    let failures: Vec<String> = std::thread::scope(|scope| {
        let workers: Vec<_> = VARIABLES
            .chunks(4)
            .map(|chunk| {
                scope.spawn(move || {
                    chunk
                        .iter()
                        .flat_map(|&(name, kind)| check_variable(name, kind))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        workers
            .into_iter()
            .flat_map(|w| w.join().unwrap())
            .collect()
    });
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn the_oracle_accepts_the_maximum_and_rejects_one_past_it() {
    // Guards the oracle itself: without this, a too-strict oracle would turn
    // the test above into "everything is invalid".
    for (name, kind) in VARIABLES {
        let values = hostile_values(name, kind);
        let valid = values
            .iter()
            .filter(|v| matches!(oracle(kind, v), Expected::Valid(..)))
            .count();
        let expected = match kind {
            // The maximum, and 0 (which is the off value or a valid timeout),
            // or for rules the empty value (no rules).
            Kind::Millis(_) | Kind::Debug | Kind::Rules | Kind::MsantosTimer(..) => 2,
            // The maximum, 0, and -1.
            Kind::MsantosMillis(_) => 3,
            // Every value that is text.
            Kind::MsantosDebug => values
                .iter()
                .filter(|v| std::str::from_utf8(v).is_ok())
                .count(),
            Kind::Switch(_, "0") => 2,
            _ => 1,
        };
        assert_eq!(valid, expected, "{name}");
    }
}

#[test]
fn all_variables_bad_at_once_give_one_line_each() {
    let mut cmd = command(c_program("sockprobe"), true, &[]);
    cmd.args(["connect", "libc"]);
    // LIBKEEPALIVE_DEBUG takes any value (msantos's meaning): not bad.
    let bad = || {
        VARIABLES
            .iter()
            .filter(|(_, kind)| !matches!(kind, Kind::MsantosDebug))
    };
    for (name, _) in bad() {
        cmd.env(name, "0x10");
    }
    let with = run(cmd, DEADLINE);
    let without = sockprobe_connect(false, "KEEPIDLE", b"0x10");
    assert_eq!(stdout(&with), expected_stdout(&stdout(&without), true, &[]));
    let err = stderr(&with);
    assert_eq!(err.lines().count(), bad().count(), "{err}");
    for &(name, _) in bad() {
        let lines: Vec<&str> = err.lines().filter(|line| names(line, name)).collect();
        assert_eq!(lines.len(), 1, "{name}: {err}");
        assert!(lines[0].contains("\"0x10\""), "{}", lines[0]);
    }
}

#[test]
fn a_megabyte_value_set_before_the_library_loads() {
    // More than execve can carry, so lifeprobe sets it with setenv and then
    // dlopens the library, whose constructor reads it.
    let lib = library().to_str().unwrap();
    for (name, kind) in VARIABLES {
        if matches!(kind, Kind::MsantosDebug) {
            continue; // any value is valid there
        }
        let mut cmd = command(c_program("lifeprobe"), false, &[]);
        cmd.args(["bigenv", lib, name, "1048576"]);
        let out = run(cmd, DEADLINE);
        assert!(out.status.success(), "{name}: {}", stderr(&out));
        // Invalid everywhere: keepalive on with kernel defaults.
        assert_eq!(
            stdout(&out).trim(),
            "via-dlsym keepalive=1 idle=7200",
            "{name}"
        );
        let err = stderr(&out);
        assert_eq!(err.lines().count(), 1, "{name}: {err}");
        assert!(names(&err, name) && err.contains("\"7777"), "{err}");
        assert!(err.len() < 600, "{} bytes: {err}", err.len());
        if name != "KEEPALIVE_RULES" {
            // Rules quote the rule, not the variable's whole value.
            assert!(err.contains("(1048576 bytes)"), "{err}");
        }
    }
}
