//! `--status --all`: who set a connection's keepalive options. From the
//! record our attachments keep of the socket (the shared `keepalive_sk`
//! map, which sock_diag returns per socket), option by option, as
//! `--status PID` does; where that map cannot be read (none loaded, not
//! root), inferred from what shows without it: the innermost attachment
//! covering the process's cgroup, the library in its memory map, and the
//! keepalive timer's remaining time.

use crate::bpf::{Attachment, Record, SetBy};
use crate::sock_diag::Timer;
use crate::status_set_by::OPTION_KEYS;
use std::collections::HashMap;

/// The process holding a socket, as far as attribution needs it.
pub struct Holder<'a> {
    pub cgroup: &'a str,
    pub library: bool,
}

/// Who set a connection's options.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attribution {
    /// One phrase: "attachment /sys/fs/cgroup/x (keepalive), program (idle)".
    pub summary: String,
    /// Per option (`OPTION_KEYS` order), when the record tells.
    pub options: Option<[Option<String>; 5]>,
    /// Told from the timer, not from a record.
    pub inferred: bool,
}

/// Our attachments covering each cgroup, innermost first, read once each.
#[derive(Default)]
pub struct Covering(HashMap<String, Vec<Attachment>>);

impl Covering {
    fn of(&mut self, cgroup: &str) -> &[Attachment] {
        self.0
            .entry(cgroup.to_string())
            .or_insert_with(|| crate::bpf::attachments_covering(cgroup).unwrap_or_default())
    }
}

fn own(holder: &Holder) -> &'static str {
    if holder.library {
        "library or program"
    } else {
        "program"
    }
}

/// The attachment whose plan set what the record says we set (the one
/// that decided the connection); else the innermost one that is not off.
fn deciding<'a>(covering: &'a [Attachment], record: &Record) -> Option<&'a Attachment> {
    let matches = |attachment: &&Attachment| {
        (0..5).all(|index| {
            record.ours & (1 << index) == 0
                || attachment.values[index] == Some(record.values[index])
        })
    };
    covering
        .iter()
        .find(matches)
        .or_else(|| covering.iter().find(|a| a.values[0].is_some()))
}

/// From the socket's record (`None`: no attachment of ours ever saw it).
pub fn from_record(
    holder: Option<&Holder>,
    record: Option<&Record>,
    timer: Timer,
    covering: &mut Covering,
) -> Attribution {
    let known = |summary: String, options| Attribution {
        summary,
        options,
        inferred: false,
    };
    let Some(holder) = holder else {
        return known("unknown (no process holds it)".to_string(), None);
    };
    let Some(record) = record else {
        let summary = match timer {
            Timer::Off => "-".to_string(),
            _ => own(holder).to_string(),
        };
        return known(summary, None);
    };
    let attachment = deciding(covering.of(holder.cgroup), record)
        .map(|a| format!("attachment {}", a.directory.display()))
        .unwrap_or_else(|| "an attachment".to_string());
    let mut options: [Option<String>; 5] = Default::default();
    for (index, slot) in options.iter_mut().enumerate() {
        *slot = match record.set_by(index) {
            SetBy::Us => Some(attachment.clone()),
            SetBy::Override => Some(format!("{attachment}, overriding the program")),
            SetBy::Program => Some(own(holder).to_string()),
            SetBy::Nobody => None,
        };
    }
    let summary = if record.program_turned_off() {
        format!("{} (SO_KEEPALIVE=0)", own(holder))
    } else {
        group(&options).unwrap_or_else(|| match timer {
            Timer::Off => "-".to_string(),
            _ => own(holder).to_string(),
        })
    };
    known(summary, Some(options))
}

/// "attachment X (keepalive, count), program (idle)"; just "attachment X"
/// when one set every option that was set. None if nobody set any.
fn group(options: &[Option<String>; 5]) -> Option<String> {
    let mut groups: Vec<(&str, Vec<&str>)> = Vec::new();
    for (key, who) in OPTION_KEYS.iter().zip(options) {
        let Some(who) = who else { continue };
        match groups.iter_mut().find(|(w, _)| w == who) {
            Some((_, keys)) => keys.push(key),
            None => groups.push((who, vec![key])),
        }
    }
    match groups.as_slice() {
        [] => None,
        [(who, _)] => Some(who.to_string()),
        _ => Some(
            groups
                .iter()
                .map(|(who, keys)| format!("{who} ({})", keys.join(", ")))
                .collect::<Vec<_>>()
                .join(", "),
        ),
    }
}

/// Without the records: from the innermost attachment covering the
/// process's cgroup (with its settings as the kernel holds them), the
/// library in its memory map, and the timer's remaining time (a next probe
/// later than the attachment's idle means the program set its own).
pub fn inferred(holder: Option<&Holder>, timer: Timer, covering: &mut Covering) -> Attribution {
    let summary = match (holder, timer) {
        (_, Timer::Off) => "-".to_string(),
        (None, _) => "unknown (no process holds it)".to_string(),
        (Some(holder), timer) => infer(holder, timer, covering),
    };
    Attribution {
        summary,
        options: None,
        inferred: true,
    }
}

fn infer(holder: &Holder, timer: Timer, covering: &mut Covering) -> String {
    let own = if holder.library { "library" } else { "program" };
    // The innermost attachment decides (bpf/inspect.rs lists it first).
    let Some(attachment) = covering.of(holder.cgroup).first().cloned() else {
        return own.to_string();
    };
    let which = format!("attachment {}", attachment.directory.display());
    match (attachment.values[0], attachment.values[1], timer) {
        // The attachment opts out: whatever runs is the program's own.
        (None, _, _) => format!("{own} ({which} is off)"),
        // Rules may give other timers: the global idle proves nothing.
        _ if attachment.rules > 0 => format!("{which} ({} rules) or the {own}", attachment.rules),
        (_, Some(idle), Timer::Keepalive(ms)) if ms / 1000 > idle + 1 => {
            format!("{own} (its own idle; {which} sets {idle} s)")
        }
        _ => which,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn covering(directory: &str, values: [Option<u32>; 5]) -> Covering {
        let attachment = Attachment {
            directory: PathBuf::from(directory),
            outbound: true,
            inbound: true,
            rules: 0,
            values,
            overrides: false,
        };
        Covering(HashMap::from([("/w".to_string(), vec![attachment])]))
    }

    const HOLDER: Holder = Holder {
        cgroup: "/w",
        library: false,
    };

    #[test]
    fn per_option_from_the_record() {
        let mut node = covering("/sys/fs/cgroup/n", [Some(1), Some(40), None, None, None]);
        let all_ours = Record {
            state: 1,
            ours: 0b00011,
            values: [1, 40, 0, 0, 0],
            ..Record::default()
        };
        let seen = from_record(
            Some(&HOLDER),
            Some(&all_ours),
            Timer::Keepalive(40_000),
            &mut node,
        );
        assert_eq!(seen.summary, "attachment /sys/fs/cgroup/n");
        assert!(!seen.inferred);
        let own_idle = Record {
            owner: 0b00010,
            ours: 0b00001,
            ..all_ours
        };
        let seen = from_record(
            Some(&HOLDER),
            Some(&own_idle),
            Timer::Keepalive(30_000),
            &mut node,
        );
        assert_eq!(
            seen.summary,
            "attachment /sys/fs/cgroup/n (keepalive), program (idle)"
        );
        assert_eq!(seen.options.unwrap()[1].as_deref(), Some("program"));
        let off = Record {
            owner: 0b00001,
            ours: 0,
            ..all_ours
        };
        let seen = from_record(Some(&HOLDER), Some(&off), Timer::Off, &mut node);
        assert_eq!(seen.summary, "program (SO_KEEPALIVE=0)");
        let seen = from_record(Some(&HOLDER), None, Timer::Off, &mut node);
        assert_eq!(seen.summary, "-");
    }

    #[test]
    fn inferred_from_the_timer() {
        let mut node = covering("/n", [Some(1), Some(40), None, None, None]);
        let seen = inferred(Some(&HOLDER), Timer::Keepalive(300_000), &mut node);
        assert_eq!(
            seen.summary,
            "program (its own idle; attachment /n sets 40 s)"
        );
        assert!(seen.inferred);
        assert_eq!(
            inferred(Some(&HOLDER), Timer::Keepalive(39_000), &mut node).summary,
            "attachment /n"
        );
    }
}
