//! The shared records map's pin in bpffs, `/sys/fs/bpf/keepalive/keepalive_sk`:
//! every run finds the one map by that path, whatever cgroup2 root it sees
//! (a container's cgroup namespace has its own, and so its own cgroup lock),
//! and `shared::lock` also takes a flock on `/sys/fs/bpf/keepalive`, a lock
//! that does not depend on the cgroup2 root either: the pin is made, and
//! attachments are changed, by one keepalive at a time. bpffs is mounted at
//! /sys/fs/bpf when it is not, as Cilium does. Where that cannot be done,
//! `shared.rs` falls back to finding the map by name, and says why.

use super::{record, shared, syscalls};
use std::ffi::CString;
use std::fs::File;
use std::io;
use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

/// Where bpffs is mounted by convention (systemd, Cilium, bpftool).
pub const BPFFS: &str = "/sys/fs/bpf";
/// Our directory in it: the lock, and the pin.
pub const DIRECTORY: &str = "/sys/fs/bpf/keepalive";
/// linux/magic.h
const BPF_FS_MAGIC: i64 = 0xcafe_4a11;

/// The pin's path: the map's name, so that a new record layout (a new
/// name) gets a new pin beside the old one.
pub fn path() -> PathBuf {
    Path::new(DIRECTORY).join(shared::RECORDS_NAME)
}

fn is_bpffs(path: &Path) -> bool {
    let Ok(text) = CString::new(path.as_os_str().as_bytes()) else {
        return false;
    };
    // SAFETY: statfs(2) into a zeroed struct we own.
    unsafe {
        let mut facts: libc::statfs = std::mem::zeroed();
        libc::statfs(text.as_ptr(), &mut facts) == 0 && facts.f_type as i64 == BPF_FS_MAGIC
    }
}

/// Mounts bpffs at /sys/fs/bpf unless it is there. Err: why not, for the
/// fallback's line.
fn mount_bpffs() -> Result<(), String> {
    if is_bpffs(Path::new(BPFFS)) {
        return Ok(());
    }
    let (source, target, fstype) = (c"bpffs", c"/sys/fs/bpf", c"bpf");
    // SAFETY: mount(2) with NUL-terminated strings and no data.
    let mounted = unsafe {
        libc::mount(
            source.as_ptr(),
            target.as_ptr(),
            fstype.as_ptr(),
            0,
            std::ptr::null(),
        )
    };
    if mounted == 0 {
        return Ok(());
    }
    let error = io::Error::last_os_error();
    let why = match error.raw_os_error() {
        Some(libc::EPERM) | Some(libc::EACCES) => {
            " (mounting needs CAP_SYS_ADMIN, and no seccomp or AppArmor profile that forbids \
             it; in a container, mount the host's /sys/fs/bpf into it instead)"
        }
        Some(libc::ENOENT) => " (there is no /sys/fs/bpf: /sys is not the kernel's sysfs here)",
        Some(libc::ENODEV) => " (this kernel has no bpffs)",
        _ => "",
    };
    Err(format!(
        "bpffs is not mounted at {BPFFS} and cannot be: {error}{why}"
    ))
}

/// Mounts bpffs if needed and makes our directory, then opens it. Err: why
/// the pin cannot be used here.
pub fn prepare() -> Result<File, String> {
    mount_bpffs()?;
    let directory = Path::new(DIRECTORY);
    match std::fs::DirBuilder::new().mode(0o700).create(directory) {
        Ok(()) => {}
        Err(error) if error.kind() == io::ErrorKind::AlreadyExists => {}
        Err(error) => return Err(format!("cannot create {DIRECTORY}: {error}")),
    }
    std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_DIRECTORY)
        .open(directory)
        .map_err(|e| format!("cannot open {DIRECTORY}: {e}"))
}

/// `DIRECTORY`, open and flocked. Released when dropped.
pub struct Locked(#[allow(dead_code)] File);

/// Locks `DIRECTORY` (after `prepare`); `None` where bpffs cannot be used
/// (`find_or_create` then says why). Err if another keepalive holds it too
/// long.
pub fn lock() -> Result<Option<Locked>, String> {
    let Ok(file) = prepare() else {
        return Ok(None);
    };
    shared::flock_waiting(&file, Path::new(DIRECTORY))?;
    Ok(Some(Locked(file)))
}

/// Pins `map` (with the lock held, after `pinned()` found none).
pub fn pin(map: &OwnedFd) -> Result<(), String> {
    let path = path();
    let text = CString::new(path.as_os_str().as_bytes()).unwrap_or_default();
    syscalls::obj_pin(map, &text)
        .map_err(|e| format!("cannot pin the shared map at {}: {e}", path.display()))
}

/// The pinned map, if bpffs is mounted and the pin is there (no lock, no
/// mount: for readers such as `--status`). Err if something else is
/// pinned there.
pub fn pinned() -> Result<Option<OwnedFd>, String> {
    let path = path();
    if !is_bpffs(Path::new(BPFFS)) {
        return Ok(None);
    }
    let text = CString::new(path.as_os_str().as_bytes()).unwrap_or_default();
    let map = match syscalls::obj_get(&text) {
        Ok(map) => map,
        Err(error) if error.raw_os_error() == Some(libc::ENOENT) => return Ok(None),
        Err(error) => return Err(format!("cannot open {}: {error}", path.display())),
    };
    let ours = syscalls::map_facts(&map).is_ok_and(|facts| {
        facts.name == shared::RECORDS_NAME
            && facts.map_type == syscalls::MAP_TYPE_SK_STORAGE
            && facts.value_size == record::SIZE
    });
    if !ours {
        return Err(format!(
            "{} is not keepalive's socket record map: remove it (rm {})",
            path.display(),
            path.display()
        ));
    }
    Ok(Some(map))
}
