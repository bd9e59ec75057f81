//! What the node agent (agent/) needs beyond `attach` and `detach`: one
//! loaded pair of programs per distinct setting, attached to every cgroup
//! that has it. Loading (the kernel's verifier) takes tens to hundreds of
//! milliseconds; attaching a loaded pair takes two system calls, which keeps
//! the window between a container's exec and its attachment short.
//!
//! The agent's pairs are told from `keepalive --attach`'s by their settings
//! map's name (`SHARED_CONFIG_NAME`); `--attach`'s are never the agent's to
//! replace or detach.

use super::{
    attach_programs, cgroup, check_kernel, detach_found, load_named, ours, shared, syscalls,
    Programs, SHARED_CONFIG_NAME,
};
use std::fs::File;
use std::os::fd::OwnedFd;
use std::path::Path;
use syscalls::CGROUP_SOCK_OPS;

/// A pair with `value` as its settings, to be attached to several cgroups.
/// Its settings map is named apart, so that `--attach` on one of those
/// cgroups replaces its pair instead of changing the value they share.
pub fn load_shared(value: &[u8]) -> Result<Programs, String> {
    let _lock = shared::lock()?;
    load_named(value, SHARED_CONFIG_NAME)
}

/// What `attach_shared` did.
#[derive(Debug, PartialEq, Eq, Clone, Copy)]
pub enum Attached {
    New,
    /// The agent's pair there before (a previous run's) was replaced.
    Replaced,
    /// `keepalive --attach`'s pair is there: nothing was done.
    LeftAlone,
}

/// Attaches `programs` to `directory`, then removes any other pair of the
/// agent's there (no moment without one; none stacked). A cgroup with
/// `keepalive --attach`'s pair is left alone: that pair keeps deciding.
pub fn attach_shared(directory: &Path, programs: &Programs) -> Result<Attached, String> {
    check_kernel()?;
    let cgroup = cgroup::open(directory)?;
    let _lock = shared::lock()?;
    let (existing, others) = split(&cgroup)?;
    if others {
        return Ok(Attached::LeftAlone);
    }
    attach_programs(&cgroup, directory, programs)?;
    let replaced = !existing.is_empty();
    detach_found(&cgroup, existing).map_err(|e| {
        format!(
            "{e} (after attaching the new pair to {})",
            directory.display()
        )
    })?;
    Ok(if replaced {
        Attached::Replaced
    } else {
        Attached::New
    })
}

/// Detaches the agent's pairs from `directory`, never `--attach`'s.
/// Returns (whether any was detached, whether `--attach`'s pair is there).
pub fn detach_agent(directory: &Path) -> Result<(bool, bool), String> {
    let cgroup = cgroup::open(directory)?;
    let _lock = shared::lock()?;
    let (found, others) = split(&cgroup)?;
    let any = !found.is_empty();
    detach_found(&cgroup, found)?;
    Ok((any, others))
}

/// Whether `directory` has a pair the agent attached (its settings map is
/// the shared one's name; `--attach`'s pairs are not the agent's to take).
/// False if it cannot be told.
pub fn has_agent_pair(directory: &Path) -> bool {
    let Ok(cgroup) = cgroup::open(directory) else {
        return false;
    };
    let Ok(found) = ours(&cgroup) else {
        return false;
    };
    found
        .iter()
        .any(|(attach_type, prog)| *attach_type == CGROUP_SOCK_OPS && is_agents(prog))
}

/// A sock_ops program of ours whose settings map has the agent's name.
fn is_agents(prog: &OwnedFd) -> bool {
    syscalls::prog_info(prog).is_ok_and(|(_, map_ids)| {
        map_ids.into_iter().any(|id| {
            syscalls::map_get_fd_by_id(id)
                .and_then(|map| syscalls::map_name(&map))
                .is_ok_and(|name| name == SHARED_CONFIG_NAME)
        })
    })
}

/// Our programs on `cgroup` that are the agent's, and whether a pair that
/// is not (`--attach`'s, or one whose settings cannot be read) is there.
/// The setsockopt programs hold no settings map and are all alike: as many
/// as there are other sock_ops programs are left to those.
fn split(cgroup: &File) -> Result<(Vec<(u32, OwnedFd)>, bool), String> {
    let (ops, setsockopt): (Vec<_>, Vec<_>) = ours(cgroup)?
        .into_iter()
        .partition(|(attach_type, _)| *attach_type == CGROUP_SOCK_OPS);
    let (agents, others): (Vec<_>, Vec<_>) = ops.into_iter().partition(|(_, p)| is_agents(p));
    let setsockopt = setsockopt.into_iter().skip(others.len());
    Ok((
        agents.into_iter().chain(setsockopt).collect(),
        !others.is_empty(),
    ))
}
