//! The cgroup v2 hierarchy the agent works in. In a pod with a private
//! cgroup namespace the agent first joins the host's (hostPID gives it
//! /proc/1/ns/cgroup), so that /proc/PID/cgroup paths are the host's. Where
//! no cgroup2 is mounted (a cgroup v1-only host, e.g. EKS on Amazon Linux
//! 2), it mounts one in a mount namespace of its own, as Cilium and Grafana
//! Beyla do; the host's mounts are left as they were.

use std::ffi::CString;
use std::io;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

/// Where the private hierarchy is mounted, inside the agent's own mount
/// namespace (the directory is created on the host's /run).
pub const PRIVATE_MOUNT: &str = "/run/keepalive-agent/cgroup2";

/// The cgroup2 mount (the one holding `wanted`, if several), and a note
/// to log when the agent had to make it.
pub fn mount(wanted: Option<&Path>) -> Result<(PathBuf, Option<String>), String> {
    join_host_cgroup_namespace();
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo")
        .map_err(|e| format!("cannot read /proc/self/mountinfo: {e}"))?;
    let mounts = cgroup2_mounts(&mountinfo);
    let holding = mounts
        .iter()
        .filter(|mount| wanted.map_or(true, |wanted| wanted.starts_with(mount)))
        .max_by_key(|mount| mount.as_os_str().len());
    if let Some(mount) = holding.or(mounts.first()) {
        return Ok((mount.clone(), None));
    }
    mount_private().map(|mount| {
        let note = format!(
            "no cgroup v2 hierarchy is mounted (a cgroup v1-only host): mounted one at {} \
             in the agent's own mount namespace; every process is in its root there, so \
             the node default covers the host and a workload's own variables cannot get \
             a cgroup of their own",
            mount.display()
        );
        (mount, Some(note))
    })
}

/// Every mount of the cgroup2 hierarchy's root, from mountinfo's lines
/// `ID PARENT MAJ:MIN ROOT MOUNTPOINT OPTIONS [OPTIONAL...] - TYPE ...`
/// (a pod has its own /sys/fs/cgroup and the host's under /host).
fn cgroup2_mounts(mountinfo: &str) -> Vec<PathBuf> {
    mountinfo
        .lines()
        .filter_map(|line| {
            let (left, right) = line.split_once(" - ")?;
            let fields: Vec<&str> = left.split(' ').collect();
            let mountpoint = fields.get(4)?;
            (right.split(' ').next() == Some("cgroup2") && fields.get(3) == Some(&"/"))
                .then(|| PathBuf::from(crate::proc::unescape_octal(mountpoint)))
        })
        .collect()
}

/// Joins pid 1's cgroup namespace if it differs from ours (a pod with
/// hostPID). Failing that, paths stay relative to our namespace: harmless
/// where it is the host's.
fn join_host_cgroup_namespace() {
    let same = |a: &str, b: &str| {
        let (Ok(a), Ok(b)) = (std::fs::read_link(a), std::fs::read_link(b)) else {
            return true;
        };
        a == b
    };
    if same("/proc/1/ns/cgroup", "/proc/self/ns/cgroup") {
        return;
    }
    if let Ok(host) = std::fs::File::open("/proc/1/ns/cgroup") {
        // SAFETY: setns(2) with an open namespace descriptor.
        unsafe { libc::setns(host.as_raw_fd(), libc::CLONE_NEWCGROUP) };
    }
}

fn mount_private() -> Result<PathBuf, String> {
    let cannot = |what: &str, error: io::Error| {
        let why = match error.raw_os_error() {
            Some(libc::EPERM) => {
                " (mounting needs CAP_SYS_ADMIN; in Kubernetes, the DaemonSet of \
                 deploy/kubernetes/node-agent.yaml has it)"
            }
            Some(libc::ENODEV) => " (this kernel has no cgroup2 file system)",
            _ => "",
        };
        format!(
            "no cgroup v2 hierarchy is mounted, and the agent cannot mount a private \
             one: cannot {what}: {error}{why}"
        )
    };
    // SAFETY: unshare(2) of the mount namespace, for this process only.
    if unsafe { libc::unshare(libc::CLONE_NEWNS) } != 0 {
        return Err(cannot("make a mount namespace", io::Error::last_os_error()));
    }
    // Our mounts must not propagate back to the host.
    let root = CString::new("/").unwrap_or_default();
    // SAFETY: mount(2) changing propagation only.
    let slave = unsafe {
        libc::mount(
            std::ptr::null(),
            root.as_ptr(),
            std::ptr::null(),
            libc::MS_REC | libc::MS_SLAVE,
            std::ptr::null(),
        )
    };
    if slave != 0 {
        return Err(cannot(
            "make the mount namespace private",
            io::Error::last_os_error(),
        ));
    }
    let target = Path::new(PRIVATE_MOUNT);
    std::fs::create_dir_all(target).map_err(|e| cannot(&format!("create {PRIVATE_MOUNT}"), e))?;
    let (source, fstype) = (
        CString::new("cgroup2").unwrap_or_default(),
        CString::new("cgroup2").unwrap_or_default(),
    );
    let path = CString::new(PRIVATE_MOUNT).unwrap_or_default();
    // SAFETY: mount(2) with NUL-terminated strings.
    let mounted = unsafe {
        libc::mount(
            source.as_ptr(),
            path.as_ptr(),
            fstype.as_ptr(),
            0,
            std::ptr::null(),
        )
    };
    if mounted != 0 {
        return Err(cannot(
            &format!("mount cgroup2 on {PRIVATE_MOUNT}"),
            io::Error::last_os_error(),
        ));
    }
    Ok(target.to_path_buf())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_cgroup2_root_mount_is_found() {
        let mountinfo = "\
35 24 0:30 / /sys/fs/cgroup ro - cgroup2 cgroup2 rw
36 24 0:30 /kubepods/pod1/ctr /sys/fs/cgroup rw - cgroup2 cgroup2 rw
41 31 0:30 / /host/sys/fs/cgroup ro shared:9 - cgroup2 cgroup2 rw
42 31 0:39 / /sys/fs/cgroup/pids rw - cgroup cgroup rw,pids
";
        assert_eq!(
            cgroup2_mounts(mountinfo),
            [
                PathBuf::from("/sys/fs/cgroup"),
                PathBuf::from("/host/sys/fs/cgroup")
            ]
        );
    }
}
