//! What every attachment of ours on the host shares: one socket storage map
//! of records (`record.rs`), pinned in bpffs (`pin.rs`) or, where bpffs
//! cannot be used, found again by its name among the host's maps; and one
//! lock held while attachments are made, changed or removed.

use super::{bpf_error, cgroup, pin, program, record, syscalls};
use std::fs::File;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::Path;
use std::time::{Duration, Instant};

/// The shared map's name (bpftool map shows it). A new record layout needs
/// a new name, so that old and new attachments never read each other's.
pub const RECORDS_NAME: &str = "keepalive_sk";

/// How long another keepalive may hold the lock before we give up.
const LOCK_WAIT: Duration = Duration::from_secs(10);

/// `flock` on the cgroup v2 hierarchy's root directory, then on our
/// directory in bpffs (`pin.rs`; none where bpffs cannot be used): held,
/// attachments are changed by one keepalive at a time (concurrent
/// `--attach` on one cgroup leave one pair of ours, also when they see
/// different cgroup2 roots), the shared map is created and pinned once, and
/// `--bpf` cgroups are created and filled with no cleanup in between.
/// Always taken in that order. Released when dropped.
pub struct Lock {
    _root: File,
    _pins: Option<pin::Locked>,
}

pub fn lock() -> Result<Lock, String> {
    let root = cgroup::mount()?;
    let file = cgroup::open(&root)?;
    flock_waiting(&file, &root)?;
    Ok(Lock {
        _root: file,
        _pins: pin::lock()?,
    })
}

/// An exclusive flock on `file` (the directory `path`), waiting up to
/// `LOCK_WAIT` for another keepalive to release it.
pub fn flock_waiting(file: &File, path: &Path) -> Result<(), String> {
    let start = Instant::now();
    loop {
        // SAFETY: flock(2) on a descriptor we own.
        if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } == 0 {
            return Ok(());
        }
        let error = std::io::Error::last_os_error();
        if error.raw_os_error() != Some(libc::EWOULDBLOCK) || start.elapsed() > LOCK_WAIT {
            return Err(format!(
                "cannot lock {} (another keepalive --attach, --detach or --bpf holds it \
                 for longer than {} s): {error}",
                path.display(),
                LOCK_WAIT.as_secs()
            ));
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// The records map attachments of ours use, if any is loaded: the pinned
/// one, else one found by name.
pub fn find() -> Result<Option<OwnedFd>, String> {
    match pin::pinned()? {
        Some(map) => Ok(Some(map)),
        None => find_by_name(),
    }
}

/// A records map found by its name, type and size among the host's maps.
fn find_by_name() -> Result<Option<OwnedFd>, String> {
    let mut id = 0;
    while let Some(next) =
        syscalls::map_next_id(id).map_err(|e| bpf_error("list the host's eBPF maps", e))?
    {
        id = next;
        let Ok(map) = syscalls::map_get_fd_by_id(id) else {
            continue; // gone meanwhile
        };
        let Ok(facts) = syscalls::map_facts(&map) else {
            continue;
        };
        if facts.name == RECORDS_NAME
            && facts.map_type == syscalls::MAP_TYPE_SK_STORAGE
            && facts.value_size == record::SIZE
        {
            return Ok(Some(map));
        }
    }
    Ok(None)
}

/// The records map: the pinned one, else one in use (made by a keepalive
/// before pins, or without bpffs), pinned now, else a new one, pinned.
/// Call with the lock held. Without bpffs, the one found by name or a new
/// one, and a line saying why: runs that see different cgroup2 roots (so
/// different locks) could then both create one.
pub fn find_or_create() -> Result<OwnedFd, String> {
    if let Err(reason) = pin::prepare() {
        eprintln!(
            "keepalive: {reason}; the shared socket record map is found by its name \
             instead of a pin in bpffs, which is sound as long as runs that see different \
             cgroup2 roots (a container's and the host's) do not create it at the same \
             moment (mount bpffs at {} to make it so)",
            pin::BPFFS
        );
        return find_by_name()?.map_or_else(create, Ok);
    }
    if let Some(map) = pin::pinned()? {
        return Ok(map);
    }
    let map = find_by_name()?.map_or_else(create, Ok)?;
    if let Err(reason) = pin::pin(&map) {
        eprintln!("keepalive: {reason}; going on with the map unpinned");
    }
    Ok(map)
}

fn create() -> Result<OwnedFd, String> {
    let btf = syscalls::btf_load(&program::storage_btf())
        .map_err(|e| bpf_error("load the socket storage type (BTF)", e))?;
    syscalls::map_create(&syscalls::MapSpec {
        map_type: syscalls::MAP_TYPE_SK_STORAGE,
        key_size: 4,
        value_size: record::SIZE,
        max_entries: 0,
        flags: syscalls::F_NO_PREALLOC | syscalls::F_CLONE,
        name: RECORDS_NAME,
        btf: Some((btf.as_raw_fd(), 1, 2)),
    })
    .map_err(|e| bpf_error("create the socket storage map", e))
}

/// A socket's record (`socket` is a descriptor of it in this process).
pub fn record_of(map: &OwnedFd, socket: &impl AsRawFd) -> Option<record::Record> {
    let bytes =
        syscalls::map_lookup(map, socket.as_raw_fd() as u32, record::SIZE as usize).ok()??;
    record::Record::decode(&bytes)
}
