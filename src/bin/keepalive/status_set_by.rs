//! `--status`: who set each option's effective value on a socket, and the
//! settings in force for a process (its environment's, or the attachment's
//! that decides its connections). Only data: `status_output` prints it.
//!
//! Who set an option comes from the kernel-side attachments' record of the
//! socket where there is one (`bpf/record.rs`). The library keeps no record
//! readable from outside, so without one it is told from the values: the
//! library's own value means the library, another value than the kernel's
//! default means the program. To an attachment the library's calls are the
//! program's own (they come from inside the process), so a value the record
//! gives to the program is the library's when it is the library's value.

use crate::bpf::{Attachment, Record, SetBy as RecordSetBy};
use crate::sockets::Options;
use keepalive_core::load::Loaded;
use keepalive_core::plan::{KernelDefaults, Plan};

/// The five options, in `Options` order, as JSON keys.
pub const OPTION_KEYS: [&str; 5] = ["keepalive", "idle", "interval", "count", "user_timeout"];

/// Who set an option's effective value on a socket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SetBy {
    /// Nobody: the kernel's default.
    Default,
    Program,
    Library,
    Attachment,
    /// The program set its own value; the attachment's override replaced it.
    AttachmentOverridingProgram,
}

impl SetBy {
    pub fn name(self) -> &'static str {
        match self {
            SetBy::Default => "default",
            SetBy::Program => "program",
            SetBy::Library => "library",
            SetBy::Attachment => "attachment",
            SetBy::AttachmentOverridingProgram => "attachment overriding the program",
        }
    }
}

/// "keepalive by the library, idle by the attachment": the options someone
/// set, for a note; None if nobody set any.
pub fn describe(who: &[SetBy; 5]) -> Option<String> {
    const NAMES: [&str; 5] = ["keepalive", "idle", "interval", "count", "user timeout"];
    let parts: Vec<String> = NAMES
        .iter()
        .zip(who)
        .filter_map(|(name, by)| {
            let by = match by {
                SetBy::Default => return None,
                SetBy::Program => "the program",
                SetBy::Library => "the library",
                SetBy::Attachment => "the attachment",
                SetBy::AttachmentOverridingProgram => "the attachment, overriding the program's",
            };
            Some(format!("{name} by {by}"))
        })
        .collect();
    (!parts.is_empty()).then(|| parts.join(", "))
}

/// Each option's value as a number (keepalive 0 or 1), in `OPTION_KEYS` order.
pub fn values(options: &Options) -> [i64; 5] {
    [
        i64::from(options.keepalive),
        i64::from(options.idle_secs),
        i64::from(options.interval_secs),
        i64::from(options.count),
        i64::from(options.user_timeout_ms),
    ]
}

/// What a new socket has before anyone sets anything.
pub fn kernel_defaults(defaults: KernelDefaults) -> [i64; 5] {
    [
        0,
        i64::from(defaults.idle_secs),
        i64::from(defaults.interval_secs),
        i64::from(defaults.count),
        0,
    ]
}

/// The values the library sets on a connection its global settings cover
/// (`None` for an option it leaves alone); `None` when it applies nothing
/// to this process (not loaded, not listed, secure-execution mode).
pub fn library_values(
    loaded: &Loaded,
    applies: bool,
    defaults: KernelDefaults,
) -> Option<[Option<i64>; 5]> {
    if !applies {
        return None;
    }
    let plan = Plan::new(&loaded.settings, || defaults);
    let mut set = [None; 5];
    for option in plan.options() {
        let index = match (option.level, option.name) {
            (libc::SOL_SOCKET, libc::SO_KEEPALIVE) => 0,
            (libc::IPPROTO_TCP, libc::TCP_KEEPIDLE) => 1,
            (libc::IPPROTO_TCP, libc::TCP_KEEPINTVL) => 2,
            (libc::IPPROTO_TCP, libc::TCP_KEEPCNT) => 3,
            (libc::IPPROTO_TCP, libc::TCP_USER_TIMEOUT) => 4,
            _ => continue,
        };
        set[index] = Some(i64::from(option.value));
    }
    Some(set)
}

/// Who set each of a socket's options (`Options` order).
pub fn who_set(
    options: &Options,
    record: Option<&Record>,
    library: Option<&[Option<i64>; 5]>,
    kernel: &[i64; 5],
) -> [SetBy; 5] {
    let values = values(options);
    let mut who = [SetBy::Default; 5];
    for (index, slot) in who.iter_mut().enumerate() {
        let library_value = library.and_then(|set| set[index]);
        let by_values = if library_value == Some(values[index]) {
            SetBy::Library
        } else if values[index] != kernel[index] {
            SetBy::Program
        } else {
            SetBy::Default
        };
        *slot = match record.map(|record| record.set_by(index)) {
            Some(RecordSetBy::Us) => SetBy::Attachment,
            Some(RecordSetBy::Override) => SetBy::AttachmentOverridingProgram,
            Some(RecordSetBy::Program) if by_values == SetBy::Library => SetBy::Library,
            Some(RecordSetBy::Program) => SetBy::Program,
            Some(RecordSetBy::Nobody) | None => by_values,
        };
    }
    who
}

/// The settings in force for a process's new connections.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InForce {
    /// Its environment's (the library's, where it is loaded).
    Environment,
    /// The innermost kernel-side attachment covering its cgroup decides its
    /// connections: its settings apply.
    Attachment(Attachment),
}

#[cfg(test)]
mod tests {
    use super::*;

    const KERNEL: [i64; 5] = [0, 7200, 75, 9, 0];

    fn options(keepalive: bool, idle: i32, count: i32) -> Options {
        Options {
            keepalive,
            idle_secs: idle,
            interval_secs: 75,
            count,
            user_timeout_ms: 0,
        }
    }

    #[test]
    fn from_the_values_without_a_record() {
        let library = [Some(1), Some(60), None, None, None];
        assert_eq!(
            who_set(&options(true, 60, 4), None, Some(&library), &KERNEL),
            [
                SetBy::Library,
                SetBy::Library,
                SetBy::Default,
                SetBy::Program,
                SetBy::Default
            ]
        );
        assert_eq!(
            who_set(&options(true, 77, 9), None, None, &KERNEL)[..2],
            [SetBy::Program, SetBy::Program]
        );
    }

    #[test]
    fn from_the_record_the_library_is_the_program_to_an_attachment() {
        let record = Record {
            owner: 0b00010,
            state: 1,
            ours: 0b01011,
            ..Record::default()
        };
        let library = [None, Some(60), None, None, None];
        assert_eq!(
            who_set(
                &options(true, 60, 4),
                Some(&record),
                Some(&library),
                &KERNEL
            ),
            [
                SetBy::Attachment,
                SetBy::Library,
                SetBy::Default,
                SetBy::Attachment,
                SetBy::Default
            ]
        );
        assert_eq!(
            who_set(&options(true, 61, 4), Some(&record), None, &KERNEL)[1],
            SetBy::Program
        );
        let overriding = Record { state: 3, ..record };
        assert_eq!(
            who_set(&options(true, 60, 4), Some(&overriding), None, &KERNEL)[1],
            SetBy::AttachmentOverridingProgram
        );
    }
}
