//! The one table of the variables the library reads, which setting each
//! spells, and what the other libraries' names mean. Only these are ever
//! looked up; nothing else in the environment matters.

use std::ops::Range;

/// Every variable, in the order diagnostics are printed, with the setting
/// it spells. The spellings of one setting stand together: ours first, then
/// the TCP-Keepalive-HOWTO's libkeepalive (`TCP_*`, also msantos') and
/// libdontdie's (`DD_*`).
pub const VARIABLES: [(&str, Setting); 21] = [
    ("KEEPALIVE", Setting::Enabled),
    ("DD_USE_KEEPALIVE", Setting::Enabled),
    ("KEEPIDLE", Setting::Idle),
    ("TCP_KEEPIDLE", Setting::Idle),
    ("DD_TCP_KEEPALIVE_TIME", Setting::Idle),
    ("KEEPINTVL", Setting::Interval),
    ("TCP_KEEPINTVL", Setting::Interval),
    ("DD_TCP_KEEPALIVE_INTVL", Setting::Interval),
    ("KEEPCNT", Setting::Count),
    ("TCP_KEEPCNT", Setting::Count),
    ("DD_TCP_KEEPALIVE_PROBES", Setting::Count),
    ("KEEPALIVE_USER_TIMEOUT", Setting::UserTimeout),
    ("TCP_USER_TIMEOUT", Setting::UserTimeout),
    ("KEEPALIVE_DIRECTION", Setting::Direction),
    ("KEEPALIVE_RULES", Setting::Rules),
    ("KEEPALIVE_DEBUG", Setting::Debug),
    ("LIBKEEPALIVE_DEBUG", Setting::Debug),
    ("DD_DEBUG", Setting::Debug),
    ("KEEPALIVE_PATH", Setting::Path),
    ("KEEPALIVE_PROGRAMS", Setting::Programs),
    ("KEEPALIVE_OVERRIDE", Setting::Override),
];

/// The names of `VARIABLES`, in its order.
pub const NAMES: [&str; VARIABLES.len()] = {
    let mut names = [""; VARIABLES.len()];
    let mut i = 0;
    while i < names.len() {
        names[i] = VARIABLES[i].0;
        i += 1;
    }
    names
};

/// One setting of `Settings`, for tools that talk about settings rather than
/// variables (the `keepalive` command's options and its `--check` report).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Setting {
    /// On or off.
    Enabled,
    /// `TCP_KEEPIDLE`.
    Idle,
    /// `TCP_KEEPINTVL`.
    Interval,
    /// `TCP_KEEPCNT`.
    Count,
    /// `TCP_USER_TIMEOUT`.
    UserTimeout,
    /// Which directions get keepalive.
    Direction,
    /// Which connections get which timers.
    Rules,
    /// Debug lines.
    Debug,
    /// A path preset.
    Path,
    /// Which programs get keepalive.
    Programs,
    /// Whether our values replace the program's own (`on`) or the
    /// program's own choices win (`off`, the default).
    Override,
}

impl Setting {
    /// Every setting, in the order of `VARIABLES`.
    pub const ALL: [Setting; 11] = [
        Setting::Enabled,
        Setting::Idle,
        Setting::Interval,
        Setting::Count,
        Setting::UserTimeout,
        Setting::Direction,
        Setting::Rules,
        Setting::Debug,
        Setting::Path,
        Setting::Programs,
        Setting::Override,
    ];

    /// Every variable that spells this setting, in the order `load` reads
    /// them (a run of `VARIABLES`).
    pub fn variables(self) -> &'static [&'static str] {
        &NAMES[self.indices()]
    }

    /// Where `variables()` stand in `NAMES`.
    pub fn indices(self) -> Range<usize> {
        let start = VARIABLES.iter().position(|&(_, s)| s == self);
        let start = start.unwrap_or(NAMES.len());
        let len = VARIABLES[start..]
            .iter()
            .take_while(|&&(_, s)| s == self)
            .count();
        start..start + len
    }
}

/// What msantos/libkeepalive gives its own variables, which its users have
/// in their units: `0` for a timer means the system default (so: not set),
/// `TCP_USER_TIMEOUT=-1` means derived from the timers (our `auto`), and
/// `LIBKEEPALIVE_DEBUG` set to anything turns debugging on. Only through
/// its names: the HOWTO's and ours keep their strict ranges. `None`: the
/// variable counts as not set.
pub fn msantos_meaning<'a>(name: &str, text: &'a str) -> Option<&'a str> {
    match (name, text) {
        ("TCP_KEEPIDLE" | "TCP_KEEPINTVL" | "TCP_KEEPCNT", "0") => None,
        ("TCP_USER_TIMEOUT", "-1") => Some("auto"),
        ("LIBKEEPALIVE_DEBUG", _) => Some("1"),
        _ => Some(text),
    }
}
