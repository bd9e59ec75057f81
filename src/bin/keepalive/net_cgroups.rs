//! Copying a descriptor of another process changes that process's socket:
//! the kernel, receiving it (`pidfd_getfd` -> `__receive_sock`), re-tags
//! the socket with the *caller's* cgroup v1 `net_cls` classid and
//! `net_prio` index (`sock_update_classid`, `sock_update_netprioidx`).
//! Traffic shaping and firewall rules on those (`tc`, `nft meta cgroup`)
//! would then stop matching the service's traffic.
//!
//! So `--status` copies only from a thread that is in the target's own
//! `net_cls` and `net_prio` cgroups: the re-tagging then writes the values
//! the socket already has. Where those controllers are not mounted (pure
//! cgroup v2) every process shares their root, and nothing needs moving.
//! The thread is ours alone and ends with the copy.

/// The v1 controllers the kernel stamps on a received socket.
const STAMPED: [&str; 2] = ["net_cls", "net_prio"];

/// Each stamped controller's cgroup path in a `/proc/PID/cgroup` text
/// (`ID:CONTROLLERS:PATH` lines); a controller not listed is not mounted.
pub fn stamped_paths(text: &str) -> Vec<(&'static str, String)> {
    let mut paths = Vec::new();
    for line in text.lines() {
        let mut parts = line.splitn(3, ':');
        let (Some(_), Some(controllers), Some(path)) = (parts.next(), parts.next(), parts.next())
        else {
            continue;
        };
        for controller in STAMPED {
            if controllers.split(',').any(|c| c == controller) {
                paths.push((controller, path.to_string()));
            }
        }
    }
    paths.sort();
    paths
}

/// The mount point of the v1 hierarchy holding `controller`, and the
/// cgroup path at its root, from a `/proc/self/mountinfo` text.
fn mount_of(mountinfo: &str, controller: &str) -> Option<(String, String)> {
    mountinfo.lines().find_map(|line| {
        let (mount, fs) = line.split_once(" - ")?;
        let mut fs = fs.split(' ');
        let (kind, _, options) = (fs.next()?, fs.next()?, fs.next()?);
        if kind != "cgroup" || !options.split(',').any(|o| o == controller) {
            return None;
        }
        let words: Vec<&str> = mount.split(' ').collect();
        Some((
            crate::proc::unescape_octal(words.get(4)?),
            crate::proc::unescape_octal(words.get(3)?),
        ))
    })
}

/// Moves the calling thread into `path` of `controller`'s hierarchy.
fn join(controller: &str, path: &str) -> Result<(), String> {
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").map_err(|e| e.to_string())?;
    let (point, root) = mount_of(&mountinfo, controller)
        .ok_or_else(|| format!("its {controller} cgroup is not mounted here"))?;
    let relative = path
        .strip_prefix(root.trim_end_matches('/'))
        .unwrap_or(path)
        .trim_start_matches('/');
    let tasks = std::path::Path::new(&point).join(relative).join("tasks");
    // SAFETY: gettid has no preconditions. The system call, not glibc's
    // gettid(), which is new in 2.30: above the shipped build's 2.17 floor.
    let tid = unsafe { libc::syscall(libc::SYS_gettid) } as libc::pid_t;
    std::fs::write(&tasks, tid.to_string()).map_err(|error| {
        format!(
            "joining its {controller} cgroup: {}: {error}",
            tasks.display()
        )
    })
}

/// Runs `copy` where the kernel's re-tagging changes nothing for a process
/// whose `/proc/PID/cgroup` reads `target`: here if this thread shares its
/// stamped cgroups, else on a thread of its own moved into them. The error
/// says why that could not be done; then nothing was copied.
pub fn in_targets_cgroups<T: Send>(
    target: &str,
    copy: impl FnOnce() -> T + Send,
) -> Result<T, String> {
    let wanted = stamped_paths(target);
    let here = std::fs::read_to_string("/proc/thread-self/cgroup").map_err(|e| e.to_string())?;
    if stamped_paths(&here) == wanted {
        return Ok(copy());
    }
    std::thread::scope(|scope| {
        scope
            .spawn(|| {
                for (controller, path) in &wanted {
                    join(controller, path)?;
                }
                let now = std::fs::read_to_string("/proc/thread-self/cgroup")
                    .map_err(|e| e.to_string())?;
                if stamped_paths(&now) != wanted {
                    return Err("this command's net_cls/net_prio cgroups differ from the \
                                process's and could not be made the same"
                        .to_string());
                }
                Ok(copy())
            })
            .join()
            .unwrap_or_else(|_| Err("the copying thread failed".to_string()))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stamped_controllers_and_their_mounts() {
        let cgroup =
            "12:net_cls,net_prio:/shaped\n4:memory:/x\n1:name=systemd:/a.service\n0::/a.service\n";
        assert_eq!(
            stamped_paths(cgroup),
            [
                ("net_cls", "/shaped".into()),
                ("net_prio", "/shaped".into())
            ]
        );
        assert!(stamped_paths("0::/a.service\n").is_empty());
        let mountinfo = "30 25 0:26 / /sys/fs/cgroup/unified rw - cgroup2 cgroup2 rw\n\
                         31 25 0:27 / /sys/fs/cgroup/net_cls,net_prio rw shared:9 - cgroup cgroup rw,net_cls,net_prio\n";
        assert_eq!(
            mount_of(mountinfo, "net_prio"),
            Some(("/sys/fs/cgroup/net_cls,net_prio".into(), "/".into()))
        );
        assert_eq!(mount_of(mountinfo, "memory"), None);
    }
}
