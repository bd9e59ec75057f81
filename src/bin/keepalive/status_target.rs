//! What a `--status` target names: one PID, or every process in a cgroup
//! directory and below (a directory given, or a systemd unit's).
//!
//! Cgroup trees change while they are walked (pods, transient scopes,
//! `--bpf` runs come and go) and may be deeper than PATH_MAX: the walk
//! opens each directory relative to its parent's descriptor, skips what
//! vanished on the way, and reports what it could not read instead of
//! giving up.

use crate::unit;
use std::ffi::{OsStr, OsString};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::fs::OpenOptionsExt;
use std::path::PathBuf;
use std::rc::Rc;

/// The processes of a target.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Processes {
    pub pids: Vec<i32>,
    /// Whether the target named one PID (not a group).
    pub single: bool,
    /// Parts of the tree that could not be read (other than vanished ones).
    pub problems: Vec<String>,
}

/// The processes a target names. The error is one line.
pub fn resolve(target: &OsStr) -> Result<Processes, String> {
    let text = target.to_string_lossy();
    if let Ok(pid) = text.parse::<i32>() {
        return if pid > 0 {
            Ok(Processes {
                pids: vec![pid],
                single: true,
                problems: Vec::new(),
            })
        } else {
            Err(format!("{text} is not a process id"))
        };
    }
    let directory = if unit::is_unit_name(&text) {
        unit::cgroup_directory(&text, false)?
    } else {
        PathBuf::from(target)
    };
    let mut processes = walk(&directory)?;
    processes.pids.sort_unstable();
    processes.pids.dedup();
    Ok(processes)
}

/// Whether an error means the cgroup was removed meanwhile.
fn vanished(error: &std::io::Error) -> bool {
    matches!(
        error.raw_os_error(),
        Some(libc::ENOENT | libc::ENODEV | libc::ESTALE)
    )
}

/// A directory to visit: its parent's descriptor and its name there.
struct Pending {
    parent: Rc<OwnedFd>,
    name: OsString,
    shown: PathBuf,
}

/// `/proc/self/fd/N/NAME`: NAME relative to our descriptor N, a short
/// path however deep the directory lies.
fn under(fd: &OwnedFd, name: &OsStr) -> PathBuf {
    PathBuf::from(format!("/proc/self/fd/{}", fd.as_raw_fd())).join(name)
}

fn open_directory(path: &std::path::Path) -> std::io::Result<OwnedFd> {
    std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_DIRECTORY | libc::O_NOFOLLOW)
        .open(path)
        .map(OwnedFd::from)
}

/// Every PID in `root`'s `cgroup.procs` and its descendants'.
fn walk(root: &std::path::Path) -> Result<Processes, String> {
    let top =
        open_directory(root).map_err(|error| format!("cannot read {}: {error}", root.display()))?;
    let mut processes = Processes::default();
    let mut pending: Vec<Pending> = Vec::new();
    visit(top, root.to_path_buf(), &mut processes, &mut pending);
    while let Some(next) = pending.pop() {
        match open_directory(&under(&next.parent, &next.name)) {
            Ok(directory) => visit(directory, next.shown, &mut processes, &mut pending),
            Err(error) if vanished(&error) => {}
            Err(error) => processes
                .problems
                .push(format!("cannot read {}: {error}", next.shown.display())),
        }
    }
    Ok(processes)
}

/// One directory: its processes, and its children to visit.
fn visit(
    directory: OwnedFd,
    shown: PathBuf,
    processes: &mut Processes,
    pending: &mut Vec<Pending>,
) {
    let directory = Rc::new(directory);
    match std::fs::read_to_string(under(&directory, OsStr::new("cgroup.procs"))) {
        Ok(procs) => processes.pids.extend(
            procs
                .lines()
                .filter_map(|line| line.trim().parse::<i32>().ok()),
        ),
        Err(error) if vanished(&error) => return,
        Err(error) => processes.problems.push(format!(
            "cannot read {}: {error}",
            shown.join("cgroup.procs").display()
        )),
    }
    let entries = match std::fs::read_dir(under(&directory, OsStr::new(""))) {
        Ok(entries) => entries,
        Err(error) if vanished(&error) => return,
        Err(error) => {
            processes
                .problems
                .push(format!("cannot list {}: {error}", shown.display()));
            return;
        }
    };
    for entry in entries.flatten() {
        if entry.file_type().is_ok_and(|kind| kind.is_dir()) {
            pending.push(Pending {
                parent: Rc::clone(&directory),
                name: entry.file_name(),
                shown: shown.join(entry.file_name()),
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets() {
        let one = resolve(OsStr::new("42")).unwrap();
        assert_eq!((one.pids, one.single), (vec![42], true));
        assert!(resolve(OsStr::new("0")).is_err());
        assert!(resolve(OsStr::new("/nonexistent/cgroup")).is_err());
    }
}
