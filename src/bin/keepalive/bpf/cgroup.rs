//! cgroup v2 directories: where the hierarchy is mounted, which cgroup this
//! process is in, and the child cgroup `--bpf` runs PROGRAM in.

use std::fs::File;
use std::io;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

/// Where cgroup2 is mounted, from mountinfo's lines
/// `ID PARENT MAJ:MIN ROOT MOUNTPOINT OPTIONS [OPTIONAL...] - TYPE SOURCE SUPER`.
/// Only a mount of the hierarchy's root ("/") will do.
pub fn find_mount(mountinfo: &str) -> Option<PathBuf> {
    mountinfo.lines().find_map(|line| {
        let (left, right) = line.split_once(" - ")?;
        let fields: Vec<&str> = left.split(' ').collect();
        let fstype = right.split(' ').next()?;
        let mountpoint = fields.get(4)?;
        (fstype == "cgroup2" && fields.get(3) == Some(&"/"))
            .then(|| PathBuf::from(crate::proc::unescape_octal(mountpoint)))
    })
}

/// This process's cgroup v2 path, from the `0::PATH` line of /proc/self/cgroup.
pub fn own_path(proc_cgroup: &str) -> Option<String> {
    proc_cgroup
        .lines()
        .find_map(|line| line.strip_prefix("0::"))
        .map(str::to_string)
}

/// The cgroup2 mount, or a message saying how to get one.
pub fn mount() -> Result<PathBuf, String> {
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo")
        .map_err(|e| format!("cannot read /proc/self/mountinfo: {e}"))?;
    find_mount(&mountinfo).ok_or_else(no_mount_message)
}

/// The name `ip netns add` gave this process's network namespace, if any:
/// the /run/netns entry that is the same namespace as ours.
fn named_netns() -> Option<String> {
    use std::os::unix::fs::MetadataExt;
    let ours = std::fs::metadata("/proc/self/ns/net").ok()?;
    std::fs::read_dir("/run/netns")
        .ok()?
        .flatten()
        .find_map(|entry| {
            let other = std::fs::metadata(entry.path()).ok()?;
            (other.dev() == ours.dev() && other.ino() == ours.ino())
                .then(|| entry.file_name().to_string_lossy().into_owned())
        })
}

/// Why no cgroup2 is seen, and what works. Under `ip netns exec`, which
/// remounts /sys, mounting one is not the answer: running the namespace
/// inside keepalive is. In a container, attaching from the host is.
fn no_mount_message() -> String {
    if let Some(name) = named_netns() {
        return format!(
            "this runs in network namespace {name} through `ip netns exec`, which remounts \
             /sys without the cgroup v2 hierarchy; run the namespace inside keepalive \
             instead: keepalive --bpf [OPTIONS] -- ip netns exec {name} PROGRAM [ARGS...]"
        );
    }
    "no cgroup v2 hierarchy is mounted here; mount one with \
     `mkdir -p /sys/fs/cgroup/unified && mount -t cgroup2 none /sys/fs/cgroup/unified` \
     (hosts booted with systemd.unified_cgroup_hierarchy=1 have it at /sys/fs/cgroup); \
     in a container, attach from the host instead: keepalive --attach on the container's \
     cgroup (the 0:: line of /proc/PID/cgroup, under the host's cgroup2 mount)"
        .to_string()
}

/// The directory of this process's own cgroup v2.
pub fn own_directory() -> Result<PathBuf, String> {
    let mount = mount()?;
    let text = std::fs::read_to_string("/proc/self/cgroup")
        .map_err(|e| format!("cannot read /proc/self/cgroup: {e}"))?;
    let path = own_path(&text).ok_or_else(|| {
        "this process is in no cgroup v2 (no 0:: line in /proc/self/cgroup)".to_string()
    })?;
    Ok(mount.join(path.trim_start_matches('/')))
}

/// An open cgroup directory, as bpf(2) wants its target.
pub fn open(directory: &Path) -> Result<File, String> {
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_DIRECTORY)
        .open(directory)
        .map_err(|e| format!("cannot open cgroup {}: {e}", directory.display()))?;
    // A v2 cgroup has cgroup.procs and no "tasks" file (v1's).
    if !directory.join("cgroup.procs").exists() || directory.join("tasks").exists() {
        return Err(format!(
            "{} is not a cgroup v2 directory (the attachment needs one; \
             see `keepalive --bpf` and the man page for hybrid hosts)",
            directory.display()
        ));
    }
    Ok(file)
}

/// A child cgroup we made: removed when dropped (the kernel detaches our
/// programs with it). Removal fails while processes are still in it, e.g.
/// a daemon PROGRAM left behind: then it stays, and we say so.
pub struct Child {
    pub path: PathBuf,
}

/// The prefix of the cgroups `--bpf` makes.
const PREFIX: &str = "keepalive.";

/// This process's start time in clock ticks since boot (field 22 of
/// /proc/self/stat): with the process id, a name no later run can have.
fn start_time() -> Option<u64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    stat.rsplit_once(')')?
        .1
        .split_whitespace()
        .nth(19)?
        .parse()
        .ok()
}

impl Child {
    /// `keepalive.PID.START` (and a counter in the rare case that a process
    /// with the same id started in the same tick, in another PID namespace).
    pub fn create(parent: &Path) -> Result<Child, String> {
        let stem = format!(
            "{PREFIX}{}.{}",
            std::process::id(),
            start_time().unwrap_or_default()
        );
        let mut attempt = 0;
        loop {
            let name = match attempt {
                0 => stem.clone(),
                n => format!("{stem}.{n}"),
            };
            let path = parent.join(name);
            match std::fs::create_dir(&path) {
                Ok(()) => return Ok(Child { path }),
                Err(error) if error.kind() == io::ErrorKind::AlreadyExists && attempt < 100 => {
                    attempt += 1
                }
                Err(error) => {
                    return Err(format!("cannot create cgroup {}: {error}", path.display()))
                }
            }
        }
    }
}

/// `keepalive.PID.START[.N]`: made under the lock. (`keepalive.PID`, made
/// by versions without it, may be empty while its run is starting.)
fn is_ours(name: &str) -> bool {
    let Some(rest) = name.strip_prefix(PREFIX) else {
        return false;
    };
    let parts: Vec<&str> = rest.split('.').collect();
    (2..=3).contains(&parts.len())
        && parts
            .iter()
            .all(|part| !part.is_empty() && part.bytes().all(|b| b.is_ascii_digit()))
}

/// Removes the empty `keepalive.PID.START` cgroups under `parent`: left by a run
/// killed with SIGKILL (the OOM killer, a stop timeout). Called with the
/// shared lock held, under which every live run's cgroup holds its PROGRAM:
/// an empty one is stale, or its run is removing it itself.
pub fn remove_stale(parent: &Path) {
    let Ok(entries) = std::fs::read_dir(parent) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let ours = entry.file_name().to_str().is_some_and(is_ours);
        let empty = std::fs::read_to_string(path.join("cgroup.procs"))
            .is_ok_and(|procs| procs.trim().is_empty());
        if ours && empty {
            // Busy or already gone: not ours to worry about.
            let _ = std::fs::remove_dir(&path);
        }
    }
}

/// How long removal is retried while the cgroup is busy: a process that
/// just ended (or an orphan of PROGRAM's that is ending) leaves its cgroup a
/// moment later. A daemon PROGRAM left running keeps it busy for good.
const RELEASE: std::time::Duration = std::time::Duration::from_secs(2);

impl Child {
    fn remove(&self) -> io::Result<()> {
        let start = std::time::Instant::now();
        loop {
            match std::fs::remove_dir(&self.path) {
                Err(error)
                    if error.raw_os_error() == Some(libc::EBUSY) && start.elapsed() < RELEASE =>
                {
                    std::thread::sleep(std::time::Duration::from_millis(5));
                }
                // Removed by a later run's cleanup of stale cgroups.
                Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(()),
                other => return other,
            }
        }
    }
}

impl Drop for Child {
    fn drop(&mut self) {
        if let Err(error) = self.remove() {
            eprintln!(
                "keepalive: cannot remove cgroup {}: {error}; processes PROGRAM left \
                 are still in it (remove it with rmdir once they end)",
                self.path.display()
            );
        }
    }
}

/// Moves the calling process into `procs` (an open cgroup.procs); safe
/// between fork and exec: one write(2), no allocation.
pub fn join(procs: &File) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    // SAFETY: write(2) on an open descriptor from a live buffer.
    let written = unsafe { libc::write(procs.as_raw_fd(), b"0".as_ptr().cast(), 1) };
    if written == 1 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_cgroup2_mount_on_a_hybrid_host() {
        let mountinfo = "\
35 24 0:30 / /sys/fs/cgroup rw - tmpfs tmpfs ro,mode=755
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime shared:9 - cgroup2 cgroup2 rw
42 31 0:39 / /sys/fs/cgroup/pids rw - cgroup cgroup rw,pids
";
        assert_eq!(
            find_mount(mountinfo),
            Some(PathBuf::from("/sys/fs/cgroup/unified"))
        );
        assert_eq!(
            find_mount("42 31 0:39 / /x rw - cgroup cgroup rw,pids\n"),
            None
        );
        // A bind mount of a subtree is not the hierarchy's root.
        assert_eq!(
            find_mount("41 31 0:38 /sub /mnt rw - cgroup2 cgroup2 rw\n"),
            None
        );
        assert_eq!(
            find_mount("41 31 0:38 / /mnt/a\\040b rw - cgroup2 cgroup2 rw\n"),
            Some(PathBuf::from("/mnt/a b"))
        );
    }

    #[test]
    fn only_our_names_are_cleaned_up() {
        assert!(is_ours("keepalive.1.2936893"));
        assert!(is_ours("keepalive.42.7.1"));
        assert!(
            !is_ours("keepalive.42"),
            "an older version's, maybe starting"
        );
        assert!(!is_ours("keepalive.1.x"));
        assert!(!is_ours("keepalive-bench-3"));
        assert!(!is_ours("system.slice"));
    }

    #[test]
    fn own_path_is_the_unified_line() {
        assert_eq!(
            own_path("9:name=systemd:/\n0::/user.slice/x.scope\n"),
            Some("/user.slice/x.scope".to_string())
        );
        assert_eq!(own_path("9:name=systemd:/\n"), None);
    }
}
