//! `--status` output: a table for people, one JSON object for programs
//! (written by hand: a few flat keys do not need a JSON crate).
//!
//! Much of it comes from the process looked at (its executable's path, the
//! name it was started as, its environment, the files it mapped, its
//! cgroup names): untrusted text. Control characters in it are escaped, as
//! the library's diagnostics do, so a process can neither forge a line of
//! the report nor send escape sequences to the terminal of whoever looks.

use crate::status::{Connection, ProcessStatus};
use crate::status_set_by::{InForce, SetBy, OPTION_KEYS};
use keepalive_core::timers::UserTimeout;
use std::fmt::Write as _;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

/// Text for a terminal: control characters (C0, DEL, C1, and line or
/// paragraph separators) as `\n`, `\u{1b}`...; a backslash doubled; bytes
/// that are not UTF-8 as `\xNN`.
pub fn printable(bytes: &[u8]) -> String {
    let mut out = String::new();
    for chunk in bytes.utf8_chunks() {
        for c in chunk.valid().chars() {
            if c == '\\' || c.is_control() || matches!(c, '\u{2028}' | '\u{2029}') {
                out.extend(c.escape_debug());
            } else {
                out.push(c);
            }
        }
        for byte in chunk.invalid() {
            let _ = write!(out, "\\x{byte:02x}");
        }
    }
    out
}

fn printable_path(path: &Path) -> String {
    printable(path.as_os_str().as_bytes())
}

fn printable_text(text: &str) -> String {
    printable(text.as_bytes())
}

/// A JSON string.
pub fn string(text: &str) -> String {
    let mut out = String::from("\"");
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() || matches!(c, '\u{2028}' | '\u{2029}') => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn strings(items: &[String]) -> String {
    let items: Vec<String> = items.iter().map(|item| string(item)).collect();
    format!("[{}]", items.join(","))
}

fn number(value: Option<impl std::fmt::Display>) -> String {
    value.map_or("null".to_string(), |v| v.to_string())
}

fn boolean(value: Option<bool>) -> String {
    number(value)
}

/// `{"keepalive":"program","idle":"attachment",...}`, or null.
fn set_by_json(set_by: Option<&[SetBy; 5]>) -> String {
    let Some(set_by) = set_by else {
        return "null".to_string();
    };
    let pairs: Vec<String> = OPTION_KEYS
        .iter()
        .zip(set_by)
        .map(|(key, by)| format!("{}:{}", string(key), string(by.name())))
        .collect();
    format!("{{{}}}", pairs.join(","))
}

fn connection_json(c: &Connection) -> String {
    let o = c.options;
    format!(
        "{{\"fd\":{},\"local\":{},\"remote\":{},\"state\":{},\"keepalive\":{},\"idle\":{},\
         \"interval\":{},\"count\":{},\"user_timeout_ms\":{},\"source\":{},\"timer_secs\":{},\
         \"set_by\":{}}}",
        c.fd,
        string(&c.local),
        string(&c.remote),
        string(&c.state),
        boolean(c.keepalive()),
        number(o.map(|o| o.idle_secs)),
        number(o.map(|o| o.interval_secs)),
        number(o.map(|o| o.count)),
        number(o.map(|o| o.user_timeout_ms)),
        string(if o.is_some() {
            "getsockopt"
        } else {
            "tcp-table"
        }),
        number(c.timer_secs().map(|secs| format!("{secs:.2}"))),
        set_by_json(c.set_by.as_ref()),
    )
}

/// The attachment's settings, in the keys of the environment's.
fn attachment_settings_json(status: &ProcessStatus) -> Option<String> {
    let InForce::Attachment(attachment) = &status.in_force else {
        return None;
    };
    let direction = match (attachment.outbound, attachment.inbound) {
        (true, true) => "both",
        (true, false) => "out",
        (false, true) => "in",
        (false, false) => "none",
    };
    Some(format!(
        "{{\"from\":\"attachment\",\"attachment\":{},\"keepalive\":{},\"idle\":{},\
         \"interval\":{},\"count\":{},\"user_timeout_ms\":{},\"direction\":{},\"rules\":{},\
         \"override\":{},\"path\":null,\"programs\":null}}",
        string(&attachment.directory.display().to_string()),
        attachment.values[0].is_some(),
        number(attachment.values[1]),
        number(attachment.values[2]),
        number(attachment.values[3]),
        number(attachment.values[4]),
        string(direction),
        attachment.rules,
        attachment.overrides,
    ))
}

/// The environment's settings (what the library applies).
fn environment_settings_json(status: &ProcessStatus) -> String {
    let settings = &status.loaded.settings;
    let user_timeout = match settings.timers.user_timeout {
        Some(UserTimeout::Millis(ms)) => ms.to_string(),
        Some(UserTimeout::Auto) => string("auto"),
        None => "null".to_string(),
    };
    let programs = status
        .loaded
        .programs
        .as_ref()
        .map_or("null".to_string(), |p| strings(&p.names));
    format!(
        "{{\"from\":\"environment\",\"attachment\":null,\"keepalive\":{},\"idle\":{},\
         \"interval\":{},\"count\":{},\"user_timeout_ms\":{},\"direction\":{},\"rules\":{},\
         \"override\":{},\"path\":{},\"programs\":{}}}",
        settings.enabled,
        number(settings.timers.idle_secs),
        number(settings.timers.interval_secs),
        number(settings.timers.count),
        user_timeout,
        string(status.loaded.selection.directions.name()),
        status.loaded.selection.rules.len(),
        settings.override_program,
        status
            .loaded
            .path
            .map_or("null".to_string(), |p| string(p.name)),
        programs,
    )
}

/// One process as a JSON object: `settings` are those in force (the
/// deciding attachment's, else the environment's), `environment` the
/// environment's (what the library applies).
pub fn json(status: &ProcessStatus) -> String {
    let environment = environment_settings_json(status);
    let in_force = attachment_settings_json(status).unwrap_or_else(|| environment.clone());
    let connections: Vec<String> = status.connections.iter().map(connection_json).collect();
    let library: Vec<String> = status
        .library
        .iter()
        .map(|path| path.display().to_string())
        .collect();
    format!(
        "{{\"pid\":{},\"exe\":{},\"started_as\":{},\"library_loaded\":{},\"library\":{},\
         \"settings\":{in_force},\"environment\":{environment},\"listed\":{},\
         \"bpf_attachment\":{},\"connections\":[{}],\"warnings\":{},\"notes\":{}}}",
        status.pid,
        status
            .exe
            .as_ref()
            .map_or("null".to_string(), |e| string(&e.display().to_string())),
        status
            .started_as
            .as_ref()
            .map_or("null".to_string(), |s| string(&String::from_utf8_lossy(s))),
        !status.library.is_empty(),
        strings(&library),
        boolean(status.listed),
        status
            .bpf_attachment()
            .map_or("null".to_string(), |d| string(&d.display().to_string())),
        connections.join(","),
        strings(&status.warnings),
        strings(&status.notes),
    )
}

fn on_off(value: Option<bool>) -> &'static str {
    match value {
        Some(true) => "on",
        Some(false) => "off",
        None => "?",
    }
}

/// One process as text: a header, its settings, a table of its sockets.
pub fn human(status: &ProcessStatus) -> String {
    let mut out = String::new();
    let exe = status
        .exe
        .as_deref()
        .map_or("(executable unknown)".to_string(), printable_path);
    let _ = write!(out, "process {}: {exe}", status.pid);
    if let Some(started) = &status.started_as {
        let _ = write!(out, " (started as {})", printable(started));
    }
    out.push('\n');
    let library = if status.library.is_empty() {
        "not loaded".to_string()
    } else {
        let paths: Vec<String> = status.library.iter().map(|p| printable_path(p)).collect();
        format!("loaded: {}", paths.join(", "))
    };
    let _ = writeln!(out, "{:<13} {library}", "library");
    match &status.in_force {
        InForce::Attachment(attachment) => {
            let _ = writeln!(
                out,
                "settings in force: the attachment on {} decides its connections: {}",
                printable_path(&attachment.directory),
                attachment.describe()
            );
            let _ = writeln!(
                out,
                "settings in its environment ({}):",
                if status.library.is_empty() {
                    "not in force: no library loaded"
                } else {
                    "what the library applies first; the attachment takes them for the \
                     program's own"
                }
            );
        }
        InForce::Environment => {
            let _ = writeln!(
                out,
                "settings in its environment (what the library applies):"
            );
        }
    }
    for line in &status.settings {
        let _ = writeln!(out, "  {}", printable_text(line));
    }
    if status.connections.is_empty() {
        let _ = writeln!(out, "no TCP sockets");
    } else {
        let _ = writeln!(
            out,
            "{:<4} {:<12} {:<26} {:<26} {:<9} {:>6} {:>6} {:>4} {:>13}",
            "FD", "STATE", "LOCAL", "REMOTE", "KEEPALIVE", "IDLE", "INTVL", "CNT", "USER_TIMEOUT"
        );
        for c in &status.connections {
            let (idle, interval, count, user_timeout) = match c.options {
                Some(o) => (
                    format!("{}s", o.idle_secs),
                    format!("{}s", o.interval_secs),
                    o.count.to_string(),
                    format!("{}ms", o.user_timeout_ms),
                ),
                None => {
                    let timer = c
                        .timer_secs()
                        .map_or("-".to_string(), |secs| format!("{secs:.0}s left"));
                    (timer, "-".into(), "-".into(), "-".into())
                }
            };
            let _ = writeln!(
                out,
                "{:<4} {:<12} {:<26} {:<26} {:<9} {:>6} {:>6} {:>4} {:>13}",
                c.fd,
                printable_text(&c.state),
                printable_text(&c.local),
                printable_text(&c.remote),
                on_off(c.keepalive()),
                idle,
                interval,
                count,
                user_timeout
            );
            if let Some(set_by) = &c.set_by {
                let who: Vec<String> = ["keepalive", "idle", "interval", "count", "user timeout"]
                    .iter()
                    .zip(set_by)
                    .map(|(name, by)| format!("{name} {}", by.name()))
                    .collect();
                let _ = writeln!(out, "{:<4} set by: {}", "", who.join(", "));
            }
        }
    }
    for warning in &status.warnings {
        let _ = writeln!(out, "warning: {}", printable_text(warning));
    }
    for note in &status.notes {
        let _ = writeln!(out, "note: {}", printable_text(note));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_are_escaped() {
        assert_eq!(string("a\"b\\c\nd\u{1}é"), "\"a\\\"b\\\\c\\nd\\u0001é\"");
        assert_eq!(strings(&["x".into(), "y".into()]), "[\"x\",\"y\"]");
        assert_eq!(number(None::<u32>), "null");
        assert_eq!(string("\u{7f}\u{9b}\u{2028}"), "\"\\u007f\\u009b\\u2028\"");
    }

    #[test]
    fn untrusted_text_cannot_forge_lines_or_reach_the_terminal() {
        assert_eq!(
            printable(b"/tmp/x\nlibrary       loaded: /usr/lib/libkeepalive.so"),
            "/tmp/x\\nlibrary       loaded: /usr/lib/libkeepalive.so"
        );
        assert_eq!(
            printable(b"\x1b]2;owned\x07\x1b[2J"),
            "\\u{1b}]2;owned\\u{7}\\u{1b}[2J"
        );
        assert_eq!(
            printable("a\u{9b}b\u{2028}c".as_bytes()),
            "a\\u{9b}b\\u{2028}c"
        );
        assert_eq!(printable(b"\xff\\ \r\t\x7f"), "\\xff\\\\ \\r\\t\\u{7f}");
        assert_eq!(printable("/usr/bin/café".as_bytes()), "/usr/bin/café");
    }
}
