//! systemd units as `--status` and `--attach` name them: a unit's control
//! group directory (from `systemctl`), and the unit a process runs in (from
//! its `/proc/PID/cgroup`).

use std::path::{Path, PathBuf};

/// Where a unit's control group may be mounted: pure cgroup v2 (Debian 11
/// and later by default), then the hybrid layout's v2 and v1 (systemd) trees.
const ROOTS: [&str; 3] = [
    "/sys/fs/cgroup",
    "/sys/fs/cgroup/unified",
    "/sys/fs/cgroup/systemd",
];

/// Whether a target is a unit name rather than a PID or a directory.
pub fn is_unit_name(target: &str) -> bool {
    !target.contains('/') && target.parse::<i32>().is_err()
}

/// The cgroup directory of a running systemd unit, as `systemctl` reports
/// it. `v2_only`: only a cgroup v2 directory will do (the kernel-side mode).
pub fn cgroup_directory(unit: &str, v2_only: bool) -> Result<PathBuf, String> {
    let output = std::process::Command::new("systemctl")
        .args(["show", "--property=ControlGroup", "--value", "--", unit])
        .output()
        .map_err(|error| {
            format!("{unit}: not a PID or a cgroup directory, and systemctl: {error}")
        })?;
    let group = String::from_utf8_lossy(&output.stdout).trim().to_string();
    if !output.status.success() || group.is_empty() {
        return Err(format!("{unit}: no such running unit"));
    }
    let relative = group.trim_start_matches('/');
    ROOTS
        .iter()
        .map(|root| Path::new(root).join(relative))
        .find(|directory| {
            directory.join("cgroup.procs").exists()
                && (!v2_only || directory.join("cgroup.controllers").exists())
        })
        .ok_or_else(|| {
            let kind = if v2_only { "cgroup v2 " } else { "" };
            format!("{unit}: {kind}cgroup {group} not found under /sys/fs/cgroup")
        })
}

/// The cgroup v2 directory `--attach` and `--detach` name: a directory,
/// or a systemd unit's control group.
pub fn attach_target(target: &std::ffi::OsStr) -> Result<PathBuf, String> {
    match target.to_str().filter(|text| is_unit_name(text)) {
        Some(unit) => cgroup_directory(unit, true),
        None => Ok(PathBuf::from(target)),
    }
}

/// The innermost `.service` in the paths of a `/proc/PID/cgroup` file
/// (`ID:CONTROLLERS:PATH` lines, v1 and v2).
pub fn in_cgroups(text: &str) -> Option<String> {
    text.lines()
        .flat_map(|line| line.splitn(3, ':').nth(2).unwrap_or("").split('/'))
        .rfind(|part| part.ends_with(".service"))
        .map(str::to_string)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_unit_comes_from_the_cgroup_paths() {
        let hybrid = "12:pids:/system.slice/redis-server.service\n\
                      1:name=systemd:/system.slice/redis-server.service\n\
                      0::/system.slice/redis-server.service\n";
        assert_eq!(in_cgroups(hybrid).as_deref(), Some("redis-server.service"));
        let nested = "0::/system.slice/postgresql@15-main.service/payload\n";
        assert_eq!(
            in_cgroups(nested).as_deref(),
            Some("postgresql@15-main.service")
        );
        assert_eq!(in_cgroups("0::/user.slice/session-3.scope\n"), None);
        assert_eq!(in_cgroups("0::/\n"), None);
    }

    #[test]
    fn unit_names() {
        assert!(is_unit_name("nginx.service"));
        assert!(is_unit_name("nginx"));
        assert!(!is_unit_name("42"));
        assert!(!is_unit_name("/sys/fs/cgroup/x"));
        assert!(!is_unit_name("./x"));
    }
}
