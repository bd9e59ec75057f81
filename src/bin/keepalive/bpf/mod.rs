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
//! or until the cgroup is removed. Ours are found again by name.

mod asm;
pub mod cgroup;
mod maps;
mod program;
mod run;
mod syscalls;

pub use run::run;

use crate::check::read_sysctl;
use keepalive_core::load::Loaded;
use keepalive_core::plan::KernelDefaults;
use keepalive_core::policy::Policy;
use std::fs::File;
use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};
use syscalls::{MapSpec, CGROUP_SETSOCKOPT, CGROUP_SOCK_OPS};

/// The names bpftool and `--attach`/`--detach` know ours by.
const OPS_NAME: &str = "keepalive_ops";
const SETSOCKOPT_NAME: &str = "keepalive_sso";
const CONFIG_NAME: &str = "keepalive_cfg";
const MARKS_NAME: &str = "keepalive_set";

/// bpf_setsockopt takes the keepalive options since 5.9, and sock_ops
/// programs reach socket storage (for "the program wins") since 5.10.
const MINIMUM_KERNEL: (u32, u32) = (5, 10);

/// The map value for the settings PROGRAM would get from the library.
pub fn config_value(loaded: &Loaded) -> Result<Vec<u8>, String> {
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
fn bpf_error(what: &str, error: io::Error) -> String {
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

/// Loads the programs with `value` as their settings.
pub fn load(value: &[u8]) -> Result<Programs, String> {
    check_kernel()?;
    let btf = syscalls::btf_load(&program::storage_btf())
        .map_err(|e| bpf_error("load the socket storage type (BTF)", e))?;
    let marks = syscalls::map_create(&MapSpec {
        map_type: syscalls::MAP_TYPE_SK_STORAGE,
        key_size: 4,
        value_size: 4,
        max_entries: 0,
        flags: syscalls::F_NO_PREALLOC | syscalls::F_CLONE,
        name: MARKS_NAME,
        btf: Some((std::os::fd::AsRawFd::as_raw_fd(&btf), 1, 1)),
    })
    .map_err(|e| bpf_error("create the socket storage map", e))?;
    let config = syscalls::map_create(&MapSpec {
        map_type: syscalls::MAP_TYPE_ARRAY,
        key_size: 4,
        value_size: value.len() as u32,
        max_entries: 1,
        flags: 0,
        name: CONFIG_NAME,
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
        program::sock_ops(config.as_fd(), marks.as_fd()),
    )?;
    let setsockopt = load(
        syscalls::PROG_TYPE_CGROUP_SOCKOPT,
        CGROUP_SETSOCKOPT,
        SETSOCKOPT_NAME,
        program::setsockopt(marks.as_fd()),
    )?;
    Ok(Programs { ops, setsockopt })
}

/// Attaches both programs: the marking one first, so that no connection is
/// configured before the owner's choices are being recorded.
pub fn attach_programs(cgroup: &File, programs: &Programs) -> Result<(), String> {
    syscalls::prog_attach(cgroup, &programs.setsockopt, CGROUP_SETSOCKOPT)
        .map_err(|e| bpf_error("attach the setsockopt program", e))?;
    syscalls::prog_attach(cgroup, &programs.ops, CGROUP_SOCK_OPS)
        .map_err(|e| bpf_error("attach the sock_ops program", e))?;
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

/// `--attach DIR`: new programs, or new settings for ours already there.
/// Returns what was done, for the one line the command prints.
pub fn attach(directory: &Path, value: &[u8]) -> Result<&'static str, String> {
    check_kernel()?;
    let cgroup = cgroup::open(directory)?;
    let existing = ours(&cgroup)?;
    if let Some((_, ops)) = existing.iter().find(|(t, _)| *t == CGROUP_SOCK_OPS) {
        if existing.iter().any(|(t, _)| *t == CGROUP_SETSOCKOPT) {
            // Same programs, new value: the socket storage (the owners'
            // marks on existing listeners) is kept.
            let (_, map_ids) =
                syscalls::prog_info(ops).map_err(|e| bpf_error("read our program", e))?;
            for id in map_ids {
                let map = syscalls::map_get_fd_by_id(id)
                    .map_err(|e| bpf_error("open our settings map", e))?;
                if syscalls::map_name(&map).ok().as_deref() == Some(CONFIG_NAME) {
                    syscalls::map_update(&map, 0, value)
                        .map_err(|e| bpf_error("update the settings", e))?;
                    return Ok("updated");
                }
            }
        }
    }
    // Nothing of ours (or half of it): start afresh.
    detach_found(&cgroup, existing)?;
    let programs = load(value)?;
    attach_programs(&cgroup, &programs)?;
    Ok("attached")
}

fn detach_found(cgroup: &File, found: Vec<(u32, OwnedFd)>) -> Result<(), String> {
    for (attach_type, prog) in found {
        syscalls::prog_detach(cgroup, &prog, attach_type)
            .map_err(|e| bpf_error("detach our program", e))?;
    }
    Ok(())
}

/// The cgroup v2 directory whose attachment of ours covers a process in
/// `cgroup_path` (its `0::` line in /proc/PID/cgroup): that cgroup or the
/// nearest ancestor with our sock_ops program (the innermost wins). `Err`
/// when it cannot be told: no cgroup2 mounted, or no privileges to list a
/// cgroup's programs.
pub fn covering_attachment(cgroup_path: &str) -> Result<Option<PathBuf>, String> {
    let mount = cgroup::mount()?;
    let mut directory = mount.join(cgroup_path.trim_start_matches('/'));
    loop {
        if let Ok(cgroup) = cgroup::open(&directory) {
            if ours(&cgroup)?.iter().any(|(t, _)| *t == CGROUP_SOCK_OPS) {
                return Ok(Some(directory));
            }
        }
        if directory == mount || !directory.pop() {
            return Ok(None);
        }
    }
}

/// `--detach DIR`. False if nothing of ours was attached there.
pub fn detach(directory: &Path) -> Result<bool, String> {
    let cgroup = cgroup::open(directory)?;
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
