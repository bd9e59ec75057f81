//! The kernel-side mode: an eBPF `sock_ops` program on a cgroup v2 sets the
//! keepalive options on every TCP connection made or accepted by any process
//! in that cgroup, whatever its libc (static, Go, io_uring programs too).
//! Part of the command only: the library never loads any of this.
//!
//! - `keepalive --bpf PROGRAM`: PROGRAM in a new child cgroup, removed after.
//! - `keepalive --attach DIR`: attach to (or update) an existing cgroup.
//! - `keepalive --detach DIR`: remove our attachment.
//!
//! Attachments use the legacy `BPF_PROG_ATTACH` with `BPF_F_ALLOW_MULTI`:
//! they stay after the command exits, beside other programs, until detached
//! or until the cgroup is removed. Ours are found again by name. Each is a
//! pair (sock_ops, setsockopt) with its own settings map; all pairs on the
//! host share one map of socket records, pinned in bpffs (`shared.rs`,
//! `pin.rs`, `record.rs`), so that with nested attachments the innermost
//! decides each connection.

pub mod agent_api;
mod asm;
pub mod cgroup;
mod inspect;
mod maps;
mod pin;
mod program;
mod record;
mod refusal;
mod run;
mod shared;
mod syscalls;

pub use inspect::{attachments_covering, Attachment, SocketRecords};
pub use record::{Record, SetBy};
pub use run::run;

use crate::check::read_sysctl;
use keepalive_core::load::Loaded;
use keepalive_core::plan::KernelDefaults;
use keepalive_core::policy::Policy;
use std::fs::File;
use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::path::Path;
use syscalls::{MapSpec, CGROUP_SETSOCKOPT, CGROUP_SOCK_OPS};

/// The names bpftool and `--attach`/`--detach` know ours by.
const OPS_NAME: &str = "keepalive_ops";
const SETSOCKOPT_NAME: &str = "keepalive_sso";
const CONFIG_NAME: &str = "keepalive_cfg";
/// The settings map of a pair the node agent attaches to several cgroups
/// (agent_api.rs): `--attach` finds no map of its own name there, so it
/// replaces that cgroup's pair instead of changing the shared value.
const SHARED_CONFIG_NAME: &str = "keepalive_cfs";

/// bpf_setsockopt takes the keepalive options since 5.9, and sock_ops
/// programs reach socket storage (for "the program wins") since 5.10.
const MINIMUM_KERNEL: (u32, u32) = (5, 10);

/// The map value for the settings PROGRAM would get from the library.
/// `KEEPALIVE_PROGRAMS` (`--program`) is refused: an attachment covers
/// every process of its cgroup, and never silently more than was asked.
/// `programs_option` is the option that set the list (`--program`), if one
/// did: the refusal names what was actually used.
pub fn config_value(loaded: &Loaded, programs_option: Option<&str>) -> Result<Vec<u8>, String> {
    if let Some(programs) = &loaded.programs {
        // Names hold no space: ", " only separates them.
        let list = programs.joined().replace(", ", ",");
        let source = match programs_option {
            Some(option) => format!("{option} {list}"),
            None => format!("KEEPALIVE_PROGRAMS={list}"),
        };
        return Err(format!(
            "{source} cannot be honoured by the kernel-side mode, which covers every \
             process in the cgroup: put only those programs in it \
             (keepalive --bpf PROGRAM), or use the preload mode"
        ));
    }
    let policy = Policy::new(&loaded.settings, loaded.selection.clone(), || {
        let read = |name, linux| read_sysctl(name).unwrap_or(linux);
        KernelDefaults {
            idle_secs: read("tcp_keepalive_time", KernelDefaults::LINUX.idle_secs),
            interval_secs: read("tcp_keepalive_intvl", KernelDefaults::LINUX.interval_secs),
            count: read("tcp_keepalive_probes", KernelDefaults::LINUX.count),
        }
    });
    maps::encode(&policy)
}

/// "5.10.0-8-amd64" -> (5, 10).
fn kernel_version(release: &str) -> Option<(u32, u32)> {
    let mut parts = release.split(|c: char| !c.is_ascii_digit());
    Some((parts.next()?.parse().ok()?, parts.next()?.parse().ok()?))
}

fn check_kernel() -> Result<(), String> {
    let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    match kernel_version(release.trim()) {
        Some(version) if version < MINIMUM_KERNEL => Err(format!(
            "the kernel-side mode needs Linux {}.{} or later (bpf_setsockopt for the \
             keepalive options, socket storage in sock_ops); this is {}: use the \
             preload mode (keepalive PROGRAM) instead",
            MINIMUM_KERNEL.0,
            MINIMUM_KERNEL.1,
            release.trim()
        )),
        _ => Ok(()),
    }
}

/// A bpf(2) failure as a message saying what to do.
pub(crate) fn bpf_error(what: &str, error: io::Error) -> String {
    match error.raw_os_error() {
        Some(libc::EPERM) | Some(libc::EACCES) => format!(
            "cannot {what}: {error}; the kernel-side mode needs root, or the \
             capabilities CAP_BPF and CAP_NET_ADMIN (and CAP_SYS_ADMIN to find an \
             attachment again): run it with sudo, or use the preload mode"
        ),
        Some(libc::ENOSYS) => format!(
            "cannot {what}: this kernel has no bpf(2) (CONFIG_BPF_SYSCALL): \
             use the preload mode"
        ),
        _ => format!("cannot {what}: {error}"),
    }
}

/// Our two programs, loaded but not attached. The maps need no descriptor
/// of ours: each loaded program holds the maps it uses.
pub struct Programs {
    ops: OwnedFd,
    setsockopt: OwnedFd,
}

/// Loads the programs with `value` as their settings, sharing the records
/// map of every other attachment of ours. Call with the lock held.
pub fn load(value: &[u8]) -> Result<Programs, String> {
    load_named(value, CONFIG_NAME)
}

/// `load`, with the settings map called `config_name`.
fn load_named(value: &[u8], config_name: &'static str) -> Result<Programs, String> {
    check_kernel()?;
    let records = shared::find_or_create()?;
    let config = syscalls::map_create(&MapSpec {
        map_type: syscalls::MAP_TYPE_ARRAY,
        key_size: 4,
        value_size: value.len() as u32,
        max_entries: 1,
        flags: 0,
        name: config_name,
        btf: None,
    })
    .map_err(|e| bpf_error("create the settings map", e))?;
    syscalls::map_update(&config, 0, value).map_err(|e| bpf_error("write the settings", e))?;
    let load = |prog_type, attach_type, name, insns: Vec<asm::Insn>| {
        syscalls::prog_load(prog_type, attach_type, name, &insns).map_err(|failure| {
            if failure.log.is_empty() {
                bpf_error(&format!("load the eBPF program {name}"), failure.error)
            } else {
                format!(
                    "the kernel's verifier refused the eBPF program {name} ({}); please \
                     report this with the kernel version and its log:\n{}",
                    failure.error,
                    failure.log.trim_end()
                )
            }
        })
    };
    let ops = load(
        syscalls::PROG_TYPE_SOCK_OPS,
        0,
        OPS_NAME,
        program::sock_ops(config.as_fd(), records.as_fd()),
    )?;
    // bpf_setsockopt in a setsockopt program (the undo on SO_KEEPALIVE=0)
    // needs Linux 5.15; before, the program only records and overrides.
    let setsockopt = load(
        syscalls::PROG_TYPE_CGROUP_SOCKOPT,
        CGROUP_SETSOCKOPT,
        SETSOCKOPT_NAME,
        program::setsockopt(records.as_fd(), true),
    )
    .or_else(|_| {
        load(
            syscalls::PROG_TYPE_CGROUP_SOCKOPT,
            CGROUP_SETSOCKOPT,
            SETSOCKOPT_NAME,
            program::setsockopt(records.as_fd(), false),
        )
    })?;
    Ok(Programs { ops, setsockopt })
}

/// Attaches both programs, all or nothing: the recording one first, so
/// that no connection is configured before the program's choices are
/// recorded; if the second fails the first is detached again. A refusal
/// names the exclusive program that caused it.
pub fn attach_programs(cgroup: &File, directory: &Path, programs: &Programs) -> Result<(), String> {
    let attach = |prog: &OwnedFd, attach_type, what| {
        syscalls::prog_attach(cgroup, prog, attach_type).map_err(|error| {
            refusal::explain(directory, attach_type, &error)
                .unwrap_or_else(|| bpf_error(&format!("attach the {what} program"), error))
        })
    };
    attach(&programs.setsockopt, CGROUP_SETSOCKOPT, "setsockopt")?;
    if let Err(message) = attach(&programs.ops, CGROUP_SOCK_OPS, "sock_ops") {
        let undone = syscalls::prog_detach(cgroup, &programs.setsockopt, CGROUP_SETSOCKOPT);
        return Err(match undone {
            Ok(()) => format!("{message}; nothing of ours was left attached"),
            Err(error) => format!(
                "{message}; and our setsockopt program could not be detached again \
                 ({error}): run keepalive --detach {}",
                directory.display()
            ),
        });
    }
    Ok(())
}

/// Our programs attached to the cgroup itself: (attach type, program).
fn ours(cgroup: &File) -> Result<Vec<(u32, OwnedFd)>, String> {
    let mut found = Vec::new();
    for (attach_type, wanted) in [
        (CGROUP_SOCK_OPS, OPS_NAME),
        (CGROUP_SETSOCKOPT, SETSOCKOPT_NAME),
    ] {
        let ids = syscalls::prog_query(cgroup, attach_type)
            .map_err(|e| bpf_error("list the cgroup's programs", e))?;
        for id in ids {
            let Ok(prog) = syscalls::prog_get_fd_by_id(id) else {
                continue; // detached meanwhile
            };
            let (name, _) =
                syscalls::prog_info(&prog).map_err(|e| bpf_error("read a program's name", e))?;
            if name == wanted {
                found.push((attach_type, prog));
            }
        }
    }
    Ok(found)
}

/// The settings map of our sock_ops program, if it uses the shared records
/// map `records_id` (a pair from an older keepalive uses its own).
fn current_config(ops: &OwnedFd, records_id: Option<u32>) -> Result<Option<OwnedFd>, String> {
    let (_, map_ids) = syscalls::prog_info(ops).map_err(|e| bpf_error("read our program", e))?;
    let mut config = None;
    let mut shares = false;
    for id in map_ids {
        let map =
            syscalls::map_get_fd_by_id(id).map_err(|e| bpf_error("open our settings map", e))?;
        match syscalls::map_facts(&map) {
            Ok(facts) if facts.name == CONFIG_NAME => config = Some(map),
            Ok(facts) if Some(facts.id) == records_id => shares = true,
            _ => {}
        }
    }
    Ok(config.filter(|_| shares))
}

/// `--attach DIR`: new programs, or new settings for ours already there.
/// Under the lock, so that concurrent runs leave one pair; several pairs
/// of ours found (left by older versions' races) are repaired to one.
/// Returns what was done, for the one line the command prints.
pub fn attach(directory: &Path, value: &[u8]) -> Result<&'static str, String> {
    check_kernel()?;
    let cgroup = cgroup::open(directory)?;
    let _lock = shared::lock()?;
    let existing = ours(&cgroup)?;
    let count = |wanted| existing.iter().filter(|(t, _)| *t == wanted).count();
    if (count(CGROUP_SOCK_OPS), count(CGROUP_SETSOCKOPT)) == (1, 1) {
        let records = shared::find()?;
        let records_id = records
            .as_ref()
            .and_then(|map| syscalls::map_facts(map).ok())
            .map(|facts| facts.id);
        let (_, ops) = existing
            .iter()
            .find(|(t, _)| *t == CGROUP_SOCK_OPS)
            .expect("counted");
        if let Some(config) = current_config(ops, records_id)? {
            // Same programs, new value: the records are kept.
            syscalls::map_update(&config, 0, value)
                .map_err(|e| bpf_error("update the settings", e))?;
            return Ok("updated");
        }
    }
    // Nothing of ours, half of it, several pairs or an old one: a new pair
    // first (no moment without one), then the others go.
    let programs = load(value)?;
    attach_programs(&cgroup, directory, &programs)?;
    let replaced = !existing.is_empty();
    detach_found(&cgroup, existing)?;
    Ok(if replaced {
        "replaced our programs"
    } else {
        "attached"
    })
}

fn detach_found(cgroup: &File, found: Vec<(u32, OwnedFd)>) -> Result<(), String> {
    for (attach_type, prog) in found {
        syscalls::prog_detach(cgroup, &prog, attach_type)
            .map_err(|e| bpf_error("detach our program", e))?;
    }
    Ok(())
}

/// `--detach DIR`. False if nothing of ours was attached there.
pub fn detach(directory: &Path) -> Result<bool, String> {
    let cgroup = cgroup::open(directory)?;
    let _lock = shared::lock()?;
    let found = ours(&cgroup)?;
    let any = !found.is_empty();
    detach_found(&cgroup, found)?;
    Ok(any)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernel_versions() {
        assert_eq!(kernel_version("6.18.44-fc-v782"), Some((6, 18)));
        assert_eq!(kernel_version("5.9.0"), Some((5, 9)));
        assert!(kernel_version("5.9.0").unwrap() < MINIMUM_KERNEL);
        assert!(kernel_version("5.10.1").unwrap() >= MINIMUM_KERNEL);
        assert_eq!(kernel_version("x"), None);
    }
}
