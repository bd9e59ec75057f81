//! What a probe saw of its connection: the options it read with getsockopt
//! (its "connected ..." line), and the keepalive timer `ss` shows on it from
//! outside; and the assertion that the two agree with what is expected.

use super::process::Process;
use super::{field, fields, keepalive_timer_secs, ss_lines};
use std::time::Duration;

/// What a probe saw from inside, and the keepalive timer `ss` shows on its
/// connection from outside (None: no keepalive timer).
pub struct Seen {
    pub options: String,
    pub timer: Option<f64>,
}

impl Seen {
    /// Waits up to `timeout` for `process`'s "connected ..." line, then
    /// reads `ss` for its connection to `port`.
    pub fn of(process: &Process, port: u16, timeout: Duration) -> Seen {
        process
            .wait_stdout("connected", timeout)
            .unwrap_or_else(|| {
                panic!(
                    "{}: no connection; stdout {:?}, stderr {:?}",
                    process.label,
                    process.stdout(),
                    process.stderr()
                )
            });
        let line = process
            .stdout()
            .lines()
            .find(|l| l.starts_with("connected"))
            .unwrap()
            .to_string();
        let timer = ss_lines(port).iter().find_map(|l| keepalive_timer_secs(l));
        Seen {
            options: line.trim_start_matches("connected ").to_string(),
            timer,
        }
    }
}

/// Asserts the options read inside, and the keepalive timer `ss` shows
/// (`assert_timer`, 3 s slack).
pub fn assert_seen(seen: &Seen, expected: &str, label: &str) {
    assert_eq!(seen.options, expected, "{label}: options from getsockopt");
    assert_timer(seen, expected, label, 3.0);
}

/// Asserts that `ss` shows a keepalive timer between `idle - slack` and
/// `idle` seconds (just started) if `expected` has keepalive on, none if off.
pub fn assert_timer(seen: &Seen, expected: &str, label: &str, slack: f64) {
    let words = fields(expected);
    if field(&words, "keepalive") == "1" {
        let idle: f64 = field(&words, "idle").parse().unwrap();
        let timer = seen
            .timer
            .unwrap_or_else(|| panic!("{label}: ss shows no keepalive timer"));
        // ss rounds long timers to whole minutes ("119min").
        let slack = if idle > 600.0 { slack.max(60.0) } else { slack };
        assert!(
            timer <= idle && timer >= idle - slack,
            "{label}: ss timer {timer} s, idle {idle} s"
        );
    } else {
        assert_eq!(seen.timer, None, "{label}: ss shows a keepalive timer");
    }
}
