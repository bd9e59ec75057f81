//! The record every attachment of ours keeps about a socket, in one socket
//! storage map shared by all of them on the host (`shared.rs`): what the
//! program set, whether an attachment of ours already decided the
//! connection, and what it set. Shared, because with several attachments on
//! the path (a node-wide one at the root, a workload's below) the innermost
//! runs first and must be seen by the others: the first to decide wins, and
//! an inner "off" keeps the outer ones away.
//!
//! Layout (native-endian u32 words):
//!
//! | word | field |
//! |---|---|
//! | 0 | `OWNER`: bit i = the program set `OPTIONS[i]`; `OWNER_KEEPALIVE_ON`: its last SO_KEEPALIVE was non-zero |
//! | 1 | `STATE`: `DECIDED`, `OVERRIDDEN` |
//! | 2 | `OURS`: bit i = we set `OPTIONS[i]` |
//! | 3..8 | `VALUES`: the value we set for each option |
//! | 8 | `KNOWN`: bit i = `PREVIOUS` holds what `OPTIONS[i]` was before we set it |
//! | 9..12 | `PREVIOUS`: idle, interval and count before we set them |
//!
//! The map clones records into accepted sockets, so what a server set on
//! its listener is what its connections were set.

use super::maps::OPTIONS;

pub const OWNER: i16 = 0;
pub const STATE: i16 = 4;
pub const OURS: i16 = 8;
pub const VALUES: i16 = 12;
pub const KNOWN: i16 = 32;
/// `PREVIOUS` + 4 x (i - 1) for `OPTIONS[i]`, i in 1..=3 (the timers).
pub const PREVIOUS: i16 = 36;
pub const SIZE: u32 = 48;

/// In `OWNER`, beside the option bits.
pub const OWNER_KEEPALIVE_ON: u32 = 1 << 5;
/// In `STATE`: an attachment of ours decided this connection (whatever it
/// decided, "off" included); the others leave it alone.
pub const DECIDED: u32 = 1;
/// In `STATE`: the deciding plan overrides the program's own values, so the
/// setsockopt programs rewrite its later calls for the options in `OURS`.
pub const OVERRIDDEN: u32 = 2;

/// A socket's record, as `--status` reads it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Record {
    pub owner: u32,
    pub state: u32,
    pub ours: u32,
    pub values: [u32; 5],
}

/// Who set an option's effective value, as far as the record tells.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SetBy {
    /// Only the program (or nobody of ours): its value stands.
    Program,
    /// Only us.
    Us,
    /// The program set it, our override replaced it.
    Override,
    /// Neither.
    Nobody,
}

impl Record {
    pub fn decode(bytes: &[u8]) -> Option<Record> {
        let word = |index: usize| {
            Some(u32::from_ne_bytes(
                bytes.get(4 * index..4 * index + 4)?.try_into().ok()?,
            ))
        };
        let mut values = [0; 5];
        for (index, value) in values.iter_mut().enumerate() {
            *value = word(3 + index)?;
        }
        Some(Record {
            owner: word(0)?,
            state: word(1)?,
            ours: word(2)?,
            values,
        })
    }

    /// For `OPTIONS[index]`. Our bpf_setsockopt at connect time comes
    /// before the program's calls after it, so when both set an option
    /// without override, the program's (later) value is the one in force.
    pub fn set_by(&self, index: usize) -> SetBy {
        let bit = 1 << index;
        match (self.owner & bit != 0, self.ours & bit != 0) {
            (true, true) if self.state & OVERRIDDEN != 0 => SetBy::Override,
            (true, _) => SetBy::Program,
            (false, true) => SetBy::Us,
            (false, false) => SetBy::Nobody,
        }
    }

    /// Whether the program's last SO_KEEPALIVE was 0: then no attachment
    /// touches the connection (and ours were undone).
    pub fn program_turned_off(&self) -> bool {
        self.owner & 1 != 0 && self.owner & OWNER_KEEPALIVE_ON == 0
    }

    /// The program's own TCP_USER_TIMEOUT, if it set one: then the kernel
    /// ends an idle connection on that timeout, and the probe count is moot.
    pub fn program_user_timeout(&self) -> bool {
        let index = OPTIONS
            .iter()
            .position(|&(_, name)| name == libc::TCP_USER_TIMEOUT)
            .unwrap_or(4);
        self.set_by(index) == SetBy::Program
    }

    /// `--status` lines for a socket: who set each option's value (`who`,
    /// where the caller knows better, e.g. that the library's calls were
    /// the program's to us), and, if the program's own user timeout
    /// (`user_timeout_ms`, in force) ends the connection before the probes
    /// would, that our count is moot.
    pub fn notes(&self, user_timeout_ms: i32, who_instead: Option<String>) -> Vec<String> {
        const NAMES: [&str; 5] = ["keepalive", "idle", "interval", "count", "user timeout"];
        let mut who = Vec::new();
        for (index, name) in NAMES.iter().enumerate() {
            let by = match self.set_by(index) {
                SetBy::Program => "the program",
                SetBy::Us => "the attachment",
                SetBy::Override => "the attachment, overriding the program's",
                SetBy::Nobody => continue,
            };
            who.push(format!("{name} by {by}"));
        }
        let mut notes = Vec::new();
        if self.program_turned_off() {
            notes.push(
                "the program turned keepalive off: the attachment leaves it alone".to_string(),
            );
        } else if let Some(who) = who_instead {
            notes.push(format!("set: {who}"));
        } else if !who.is_empty() {
            notes.push(format!("set: {}", who.join(", ")));
        }
        if self.program_user_timeout() && user_timeout_ms > 0 {
            notes.push(format!(
                "the program set its own TCP_USER_TIMEOUT ({user_timeout_ms} ms): the kernel \
                 ends an unanswered connection on it, so the keepalive count is moot"
            ));
        }
        notes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn who_set_each_option() {
        let mut bytes = vec![0u8; SIZE as usize];
        bytes[..4].copy_from_slice(&(0b10010u32 | OWNER_KEEPALIVE_ON).to_ne_bytes());
        bytes[4..8].copy_from_slice(&DECIDED.to_ne_bytes());
        bytes[8..12].copy_from_slice(&0b00111u32.to_ne_bytes());
        let record = Record::decode(&bytes).unwrap();
        assert_eq!(record.set_by(0), SetBy::Us);
        assert_eq!(record.set_by(1), SetBy::Program);
        assert_eq!(record.set_by(3), SetBy::Nobody);
        assert!(record.program_user_timeout());
        let overridden = Record {
            state: DECIDED | OVERRIDDEN,
            ..record
        };
        assert_eq!(overridden.set_by(1), SetBy::Override);
        assert!(Record::decode(&bytes[..20]).is_none());
        let notes = record.notes(3000, None);
        assert_eq!(
            notes[0],
            "set: keepalive by the attachment, idle by the program, interval by the attachment, \
             user timeout by the program"
        );
        assert!(notes[1].contains("count is moot"), "{notes:?}");
        assert_eq!(record.notes(0, None).len(), 1);
        assert_eq!(
            record.notes(0, Some("idle by the library".into()))[0],
            "set: idle by the library"
        );
    }
}
