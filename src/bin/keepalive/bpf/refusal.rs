//! Why the kernel refused an attachment with EPERM although we are root:
//! another tool's exclusive attachment of the same type, on the cgroup
//! itself or on an ancestor, refuses every other program (the kernel's
//! `hierarchy_allows_attach`). Named as `bpftool cgroup tree` shows it.

use super::{cgroup, syscalls};
use std::io;
use std::path::{Path, PathBuf};

/// The program that refuses ours: the cgroup it is attached to, its id and
/// its name.
struct Refuser {
    directory: PathBuf,
    id: u32,
    name: String,
}

/// `BPF_F_ALLOW_OVERRIDE`: a single program that lets cgroups below
/// attach their own.
const F_ALLOW_OVERRIDE: u32 = 1;

fn attached(directory: &Path, attach_type: u32) -> Option<(Vec<u32>, u32)> {
    let file = cgroup::open(directory).ok()?;
    syscalls::prog_query_flags(&file, attach_type).ok()
}

fn refuser(directory: &Path, attach_type: u32) -> Option<Refuser> {
    let named = |directory: &Path, id: u32| {
        let name = syscalls::prog_get_fd_by_id(id)
            .and_then(|prog| syscalls::prog_info(&prog))
            .map(|(name, _)| name)
            .unwrap_or_default();
        Refuser {
            directory: directory.to_path_buf(),
            id,
            name,
        }
    };
    // On the cgroup itself: any program not attached as one of several.
    if let Some((ids, flags)) = attached(directory, attach_type) {
        if flags & syscalls::F_ALLOW_MULTI == 0 {
            if let Some(&id) = ids.first() {
                return Some(named(directory, id));
            }
        }
    }
    // Above: the nearest ancestor with programs decides.
    let root = cgroup::mount().ok()?;
    let mut ancestor = directory.to_path_buf();
    while ancestor != root && ancestor.pop() {
        let (ids, flags) = attached(&ancestor, attach_type)?;
        if flags & syscalls::F_ALLOW_MULTI != 0 {
            return None;
        }
        if let Some(&id) = ids.first() {
            return (flags & F_ALLOW_OVERRIDE == 0).then(|| named(&ancestor, id));
        }
    }
    None
}

/// The message for an attach that failed with EPERM because of another
/// program; None for any other failure.
pub fn explain(directory: &Path, attach_type: u32, error: &io::Error) -> Option<String> {
    if error.raw_os_error() != Some(libc::EPERM) {
        return None;
    }
    let found = refuser(directory, attach_type)?;
    let kind = if attach_type == syscalls::CGROUP_SOCK_OPS {
        "sock_ops"
    } else {
        "setsockopt"
    };
    Some(format!(
        "cannot attach our {kind} program to {}: program id {} ({}) holds an exclusive \
         {kind} attachment on {} (see `bpftool cgroup tree`), which refuses every other \
         program there and below; ask its owner to attach it with BPF_F_ALLOW_MULTI",
        directory.display(),
        found.id,
        if found.name.is_empty() {
            "no name"
        } else {
            &found.name
        },
        found.directory.display()
    ))
}
