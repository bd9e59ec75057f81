//! What the node agent (agent/) needs beyond `attach` and `detach`: one
//! loaded pair of programs per distinct setting, attached to every cgroup
//! that has it. Loading (the kernel's verifier) takes tens to hundreds of
//! milliseconds; attaching a loaded pair takes two system calls, which keeps
//! the window between a container's exec and its attachment short.

use super::{
    attach_programs, cgroup, check_kernel, detach_found, load_named, ours, shared, syscalls,
    Programs, SHARED_CONFIG_NAME,
};
use std::path::Path;

/// A pair with `value` as its settings, to be attached to several cgroups.
/// Its settings map is named apart, so that `--attach` on one of those
/// cgroups replaces its pair instead of changing the value they share.
pub fn load_shared(value: &[u8]) -> Result<Programs, String> {
    let _lock = shared::lock()?;
    load_named(value, SHARED_CONFIG_NAME)
}

/// Attaches `programs` to `directory`, then removes any other pair of ours
/// there (no moment without one; none stacked). Returns "attached", or
/// "replaced our programs" when there was a pair before.
pub fn attach_shared(directory: &Path, programs: &Programs) -> Result<&'static str, String> {
    check_kernel()?;
    let cgroup = cgroup::open(directory)?;
    let _lock = shared::lock()?;
    let existing = ours(&cgroup)?;
    attach_programs(&cgroup, directory, programs)?;
    let replaced = !existing.is_empty();
    detach_found(&cgroup, existing).map_err(|e| {
        format!(
            "{e} (after attaching the new pair to {})",
            directory.display()
        )
    })?;
    Ok(if replaced {
        "replaced our programs"
    } else {
        "attached"
    })
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
    found.iter().any(|(_, prog)| {
        syscalls::prog_info(prog).is_ok_and(|(_, map_ids)| {
            map_ids.into_iter().any(|id| {
                syscalls::map_get_fd_by_id(id)
                    .and_then(|map| syscalls::map_name(&map))
                    .is_ok_and(|name| name == SHARED_CONFIG_NAME)
            })
        })
    })
}
