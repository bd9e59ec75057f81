//! Reading our attachments back, for `--status`: which of ours cover a
//! cgroup (innermost first: the one that decides) with their settings as
//! the kernel holds them, and the record of a socket.

use super::maps::{self, OPTIONS};
use super::record::Record;
use super::{cgroup, ours, shared, syscalls, CONFIG_NAME, SHARED_CONFIG_NAME};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::path::PathBuf;
use syscalls::CGROUP_SOCK_OPS;

/// One attachment of ours and its settings for connections no rule matches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attachment {
    pub directory: PathBuf,
    /// Outbound and inbound connections covered (`KEEPALIVE_DIRECTION`).
    pub outbound: bool,
    pub inbound: bool,
    pub rules: u32,
    /// The global plan: each option's value if set (`OPTIONS` order);
    /// all `None` for `off`.
    pub values: [Option<u32>; 5],
    pub overrides: bool,
}

impl Attachment {
    fn decode(directory: PathBuf, value: &[u8]) -> Option<Attachment> {
        let field = |offset: i16| {
            Some(u32::from_ne_bytes(
                value
                    .get(offset as usize..offset as usize + 4)?
                    .try_into()
                    .ok()?,
            ))
        };
        let flags = field(maps::FLAGS)?;
        let plan_flags = field(maps::GLOBAL_PLAN + maps::PLAN_FLAGS)?;
        let mut values = [None; 5];
        for (bit, slot) in values.iter_mut().enumerate() {
            if plan_flags & (1 << bit) != 0 {
                *slot = Some(field(
                    maps::GLOBAL_PLAN + maps::PLAN_VALUES + 4 * bit as i16,
                )?);
            }
        }
        Some(Attachment {
            directory,
            outbound: flags & maps::OUT != 0,
            inbound: flags & maps::IN != 0,
            rules: field(maps::RULE_COUNT)?,
            values,
            overrides: plan_flags & maps::OVERRIDE != 0,
        })
    }

    /// One line: "keepalive on, idle 25 s, count 9, user timeout 4000 ms".
    pub fn describe(&self) -> String {
        if self.values[0].is_none() {
            return "off (it opts its connections out of outer attachments)".to_string();
        }
        let mut parts = vec!["keepalive on".to_string()];
        let names = ["", "idle", "interval", "count", "user timeout"];
        let units = ["", " s", " s", "", " ms"];
        for index in 1..OPTIONS.len() {
            if let Some(value) = self.values[index] {
                parts.push(format!("{} {value}{}", names[index], units[index]));
            }
        }
        if !(self.outbound && self.inbound) {
            parts.push(
                if self.outbound {
                    "outbound only"
                } else {
                    "inbound only"
                }
                .to_string(),
            );
        }
        if self.rules > 0 {
            parts.push(format!("{} rules", self.rules));
        }
        if self.overrides {
            parts.push("override".to_string());
        }
        parts.join(", ")
    }
}

/// The settings in our sock_ops program's settings map.
fn settings_of(ops: &OwnedFd) -> Option<Vec<u8>> {
    let (_, map_ids) = syscalls::prog_info(ops).ok()?;
    map_ids.into_iter().find_map(|id| {
        let map = syscalls::map_get_fd_by_id(id).ok()?;
        let name = syscalls::map_name(&map).ok()?;
        (name == CONFIG_NAME || name == SHARED_CONFIG_NAME)
            .then(|| syscalls::map_lookup(&map, 0, maps::VALUE_SIZE).ok()?)
            .flatten()
    })
}

/// Our attachments covering a process in `cgroup_path` (its `0::` line in
/// /proc/PID/cgroup), innermost first: the first decides each connection.
/// `Err` when it cannot be told (no cgroup2 mounted, no privileges).
pub fn attachments_covering(cgroup_path: &str) -> Result<Vec<Attachment>, String> {
    let mount = cgroup::mount()?;
    let mut directory = mount.join(cgroup_path.trim_start_matches('/'));
    let mut found = Vec::new();
    loop {
        if let Ok(file) = cgroup::open(&directory) {
            for (attach_type, ops) in ours(&file)? {
                if attach_type != CGROUP_SOCK_OPS {
                    continue;
                }
                let settings = settings_of(&ops)
                    .and_then(|value| Attachment::decode(directory.clone(), &value));
                if let Some(attachment) = settings {
                    found.push(attachment);
                }
            }
        }
        if directory == mount || !directory.pop() {
            return Ok(found);
        }
    }
}

/// The shared records map, opened once to read many sockets' records.
pub struct SocketRecords(OwnedFd);

impl SocketRecords {
    /// None when no attachment of ours is loaded on the host.
    pub fn open() -> Result<Option<SocketRecords>, String> {
        shared::find().map(|map| map.map(SocketRecords))
    }

    /// The map itself: sock_diag returns each socket's value in it.
    pub fn map(&self) -> BorrowedFd<'_> {
        self.0.as_fd()
    }

    /// The record of `socket` (a descriptor of it in this process, e.g.
    /// from pidfd_getfd); None if no program of ours has seen it.
    pub fn of(&self, socket: &impl AsRawFd) -> Option<Record> {
        shared::record_of(&self.0, socket)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_read_back_from_the_map_value() {
        let mut value = vec![0u8; maps::VALUE_SIZE];
        let mut put = |offset: i16, word: u32| {
            value[offset as usize..offset as usize + 4].copy_from_slice(&word.to_ne_bytes())
        };
        put(maps::FLAGS, maps::OUT | maps::IN);
        put(
            maps::GLOBAL_PLAN + maps::PLAN_FLAGS,
            0b10011 | maps::OVERRIDE,
        );
        put(maps::GLOBAL_PLAN + maps::PLAN_VALUES, 1);
        put(maps::GLOBAL_PLAN + maps::PLAN_VALUES + 4, 25);
        put(maps::GLOBAL_PLAN + maps::PLAN_VALUES + 16, 4000);
        let attachment = Attachment::decode(PathBuf::from("/x"), &value).unwrap();
        assert_eq!(
            attachment.values,
            [Some(1), Some(25), None, None, Some(4000)]
        );
        assert_eq!(
            attachment.describe(),
            "keepalive on, idle 25 s, user timeout 4000 ms, override"
        );
        let off = Attachment {
            values: [None; 5],
            ..attachment
        };
        assert!(off.describe().starts_with("off"));
    }
}
