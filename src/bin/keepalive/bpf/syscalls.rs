//! The bpf(2) commands we use, through `libc::syscall`. Each takes its own
//! `#[repr(C)]` prefix of `union bpf_attr` (linux/bpf.h): the kernel accepts
//! a shorter attribute and treats the missing tail as zero.

use super::asm::Insn;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

const MAP_CREATE: i32 = 0;
const MAP_LOOKUP_ELEM: i32 = 1;
const MAP_UPDATE_ELEM: i32 = 2;
const PROG_LOAD: i32 = 5;
const PROG_ATTACH: i32 = 8;
const PROG_DETACH: i32 = 9;
const OBJ_PIN: i32 = 6;
const OBJ_GET: i32 = 7;
const MAP_GET_NEXT_ID: i32 = 12;
const PROG_GET_FD_BY_ID: i32 = 13;
const MAP_GET_FD_BY_ID: i32 = 14;
const OBJ_GET_INFO_BY_FD: i32 = 15;
const PROG_QUERY: i32 = 16;
const BTF_LOAD: i32 = 18;

pub const MAP_TYPE_ARRAY: u32 = 2;
pub const MAP_TYPE_SK_STORAGE: u32 = 24;
pub const PROG_TYPE_SOCK_OPS: u32 = 13;
pub const PROG_TYPE_CGROUP_SOCKOPT: u32 = 25;
pub const CGROUP_SOCK_OPS: u32 = 3;
pub const CGROUP_SETSOCKOPT: u32 = 22;
/// Several programs on one cgroup, each kept by its own attachment.
pub const F_ALLOW_MULTI: u32 = 2;
pub const F_NO_PREALLOC: u32 = 1;
/// Socket storage copied to the sockets a listener accepts.
pub const F_CLONE: u32 = 512;

/// BPF object names: 15 bytes and a NUL.
pub type Name = [u8; 16];

pub fn name(text: &str) -> Name {
    let mut name = [0u8; 16];
    name[..text.len().min(15)].copy_from_slice(&text.as_bytes()[..text.len().min(15)]);
    name
}

fn bpf<T>(command: i32, attr: &mut T) -> io::Result<i64> {
    // SAFETY: attr is a live, initialised #[repr(C)] struct of the size
    // passed; the kernel reads (and for some commands writes) only that.
    let result = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            command,
            attr as *mut T,
            std::mem::size_of::<T>() as u32,
        )
    };
    if result < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(result)
    }
}

fn fd_result(result: io::Result<i64>) -> io::Result<OwnedFd> {
    // SAFETY: a successful bpf() returning a descriptor gives us sole ownership.
    result.map(|fd| unsafe { OwnedFd::from_raw_fd(fd as i32) })
}

#[repr(C)]
#[derive(Default)]
struct MapCreate {
    map_type: u32,
    key_size: u32,
    value_size: u32,
    max_entries: u32,
    map_flags: u32,
    inner_map_fd: u32,
    numa_node: u32,
    map_name: Name,
    map_ifindex: u32,
    btf_fd: u32,
    btf_key_type_id: u32,
    btf_value_type_id: u32,
}

pub struct MapSpec {
    pub map_type: u32,
    pub key_size: u32,
    pub value_size: u32,
    pub max_entries: u32,
    pub flags: u32,
    pub name: &'static str,
    /// (BTF object, key type id, value type id), for maps that need BTF.
    pub btf: Option<(i32, u32, u32)>,
}

pub fn map_create(spec: &MapSpec) -> io::Result<OwnedFd> {
    let (btf_fd, key_id, value_id) = spec.btf.unwrap_or((0, 0, 0));
    let mut attr = MapCreate {
        map_type: spec.map_type,
        key_size: spec.key_size,
        value_size: spec.value_size,
        max_entries: spec.max_entries,
        map_flags: spec.flags,
        map_name: name(spec.name),
        btf_fd: btf_fd as u32,
        btf_key_type_id: key_id,
        btf_value_type_id: value_id,
        ..MapCreate::default()
    };
    fd_result(bpf(MAP_CREATE, &mut attr))
}

#[repr(C)]
struct MapElem {
    map_fd: u32,
    _pad: u32,
    key: u64,
    value: u64,
    flags: u64,
}

/// The value under `key` (a u32 index, or a socket descriptor for socket
/// storage), `size` bytes; `None` if there is none.
pub fn map_lookup(map: &impl AsRawFd, key: u32, size: usize) -> io::Result<Option<Vec<u8>>> {
    let mut value = vec![0u8; size];
    let mut attr = MapElem {
        map_fd: map.as_raw_fd() as u32,
        _pad: 0,
        key: &key as *const u32 as u64,
        value: value.as_mut_ptr() as u64,
        flags: 0,
    };
    match bpf(MAP_LOOKUP_ELEM, &mut attr) {
        Ok(_) => Ok(Some(value)),
        Err(error) if error.raw_os_error() == Some(libc::ENOENT) => Ok(None),
        Err(error) => Err(error),
    }
}

pub fn map_update(map: &impl AsRawFd, key: u32, value: &[u8]) -> io::Result<()> {
    let mut attr = MapElem {
        map_fd: map.as_raw_fd() as u32,
        _pad: 0,
        key: &key as *const u32 as u64,
        value: value.as_ptr() as u64,
        flags: 0,
    };
    bpf(MAP_UPDATE_ELEM, &mut attr).map(drop)
}

#[repr(C)]
#[derive(Default)]
struct BtfLoad {
    btf: u64,
    btf_log_buf: u64,
    btf_size: u32,
    btf_log_size: u32,
    btf_log_level: u32,
}

pub fn btf_load(blob: &[u8]) -> io::Result<OwnedFd> {
    let mut attr = BtfLoad {
        btf: blob.as_ptr() as u64,
        btf_size: blob.len() as u32,
        ..BtfLoad::default()
    };
    fd_result(bpf(BTF_LOAD, &mut attr))
}

#[repr(C)]
#[derive(Default)]
struct ProgLoad {
    prog_type: u32,
    insn_cnt: u32,
    insns: u64,
    license: u64,
    log_level: u32,
    log_size: u32,
    log_buf: u64,
    kern_version: u32,
    prog_flags: u32,
    prog_name: Name,
    prog_ifindex: u32,
    expected_attach_type: u32,
}

/// Why a program did not load: the error, and the verifier's log if the
/// verifier is what refused it.
pub struct LoadError {
    pub error: io::Error,
    pub log: String,
}

pub fn prog_load(
    prog_type: u32,
    expected_attach_type: u32,
    name_text: &str,
    insns: &[Insn],
) -> Result<OwnedFd, LoadError> {
    let license = b"Dual MIT/GPL\0";
    let attempt = |log: &mut Vec<u8>| {
        let mut attr = ProgLoad {
            prog_type,
            insn_cnt: insns.len() as u32,
            insns: insns.as_ptr() as u64,
            license: license.as_ptr() as u64,
            log_level: u32::from(!log.is_empty()),
            log_size: log.len() as u32,
            log_buf: log.as_mut_ptr() as u64,
            prog_name: name(name_text),
            expected_attach_type,
            ..ProgLoad::default()
        };
        fd_result(bpf(PROG_LOAD, &mut attr))
    };
    // First without a log (cheaper); on failure, again with one to show.
    attempt(&mut Vec::new()).or_else(|first| {
        let mut log = vec![0u8; 1 << 20];
        match attempt(&mut log) {
            Ok(fd) => Ok(fd),
            Err(_) => {
                let end = log.iter().position(|&b| b == 0).unwrap_or(log.len());
                Err(LoadError {
                    error: first,
                    log: String::from_utf8_lossy(&log[..end]).into_owned(),
                })
            }
        }
    })
}

#[repr(C)]
#[derive(Default)]
struct ProgAttach {
    target_fd: u32,
    attach_bpf_fd: u32,
    attach_type: u32,
    attach_flags: u32,
    replace_bpf_fd: u32,
}

pub fn prog_attach(cgroup: &impl AsRawFd, prog: &impl AsRawFd, attach_type: u32) -> io::Result<()> {
    let mut attr = ProgAttach {
        target_fd: cgroup.as_raw_fd() as u32,
        attach_bpf_fd: prog.as_raw_fd() as u32,
        attach_type,
        attach_flags: F_ALLOW_MULTI,
        ..ProgAttach::default()
    };
    bpf(PROG_ATTACH, &mut attr).map(drop)
}

pub fn prog_detach(cgroup: &impl AsRawFd, prog: &impl AsRawFd, attach_type: u32) -> io::Result<()> {
    let mut attr = ProgAttach {
        target_fd: cgroup.as_raw_fd() as u32,
        attach_bpf_fd: prog.as_raw_fd() as u32,
        attach_type,
        ..ProgAttach::default()
    };
    bpf(PROG_DETACH, &mut attr).map(drop)
}

#[repr(C)]
#[derive(Default)]
struct ProgQuery {
    target_fd: u32,
    attach_type: u32,
    query_flags: u32,
    attach_flags: u32,
    prog_ids: u64,
    prog_cnt: u32,
    _pad: u32,
}

/// The ids of the programs attached to the cgroup itself (not inherited).
pub fn prog_query(cgroup: &impl AsRawFd, attach_type: u32) -> io::Result<Vec<u32>> {
    prog_query_flags(cgroup, attach_type).map(|(ids, _)| ids)
}

/// The same, with the flags they were attached with (0: exclusive, which
/// refuses any other program here and below).
pub fn prog_query_flags(cgroup: &impl AsRawFd, attach_type: u32) -> io::Result<(Vec<u32>, u32)> {
    let mut ids = vec![0u32; 64];
    let mut attr = ProgQuery {
        target_fd: cgroup.as_raw_fd() as u32,
        attach_type,
        prog_ids: ids.as_mut_ptr() as u64,
        prog_cnt: ids.len() as u32,
        ..ProgQuery::default()
    };
    bpf(PROG_QUERY, &mut attr)?;
    ids.truncate(attr.prog_cnt as usize);
    Ok((ids, attr.attach_flags))
}

#[repr(C)]
#[derive(Default)]
struct GetFdById {
    id: u32,
    next_id: u32,
    open_flags: u32,
}

pub fn prog_get_fd_by_id(id: u32) -> io::Result<OwnedFd> {
    let mut attr = GetFdById {
        id,
        ..GetFdById::default()
    };
    fd_result(bpf(PROG_GET_FD_BY_ID, &mut attr))
}

/// The next map id after `id` on the host, or None after the last.
pub fn map_next_id(id: u32) -> io::Result<Option<u32>> {
    let mut attr = GetFdById {
        id,
        ..GetFdById::default()
    };
    match bpf(MAP_GET_NEXT_ID, &mut attr) {
        Ok(_) => Ok(Some(attr.next_id)),
        Err(error) if error.raw_os_error() == Some(libc::ENOENT) => Ok(None),
        Err(error) => Err(error),
    }
}

pub fn map_get_fd_by_id(id: u32) -> io::Result<OwnedFd> {
    let mut attr = GetFdById {
        id,
        ..GetFdById::default()
    };
    fd_result(bpf(MAP_GET_FD_BY_ID, &mut attr))
}

#[repr(C)]
struct InfoByFd {
    bpf_fd: u32,
    info_len: u32,
    info: u64,
}

/// `struct bpf_prog_info` up to its name (offsets from linux/bpf.h).
#[repr(C)]
#[derive(Default)]
struct ProgInfo {
    prog_type: u32,
    id: u32,
    tag: [u8; 8],
    jited_prog_len: u32,
    xlated_prog_len: u32,
    jited_prog_insns: u64,
    xlated_prog_insns: u64,
    load_time: u64,
    created_by_uid: u32,
    nr_map_ids: u32,
    map_ids: u64,
    name: Name,
}

/// `struct bpf_map_info` up to its name.
#[repr(C)]
#[derive(Default)]
struct MapInfo {
    map_type: u32,
    id: u32,
    key_size: u32,
    value_size: u32,
    max_entries: u32,
    map_flags: u32,
    name: Name,
}

fn name_text(name: &Name) -> String {
    let end = name.iter().position(|&b| b == 0).unwrap_or(name.len());
    String::from_utf8_lossy(&name[..end]).into_owned()
}

/// A program's name and the ids of the maps it uses.
pub fn prog_info(prog: &impl AsRawFd) -> io::Result<(String, Vec<u32>)> {
    prog_info_with_id(prog).map(|(name, maps, _)| (name, maps))
}

/// A program's name, the ids of its maps, and its own id.
pub fn prog_info_with_id(prog: &impl AsRawFd) -> io::Result<(String, Vec<u32>, u32)> {
    let mut map_ids = vec![0u32; 16];
    let mut info = ProgInfo {
        nr_map_ids: map_ids.len() as u32,
        map_ids: map_ids.as_mut_ptr() as u64,
        ..ProgInfo::default()
    };
    let mut attr = InfoByFd {
        bpf_fd: prog.as_raw_fd() as u32,
        info_len: std::mem::size_of::<ProgInfo>() as u32,
        info: &mut info as *mut ProgInfo as u64,
    };
    bpf(OBJ_GET_INFO_BY_FD, &mut attr)?;
    map_ids.truncate((info.nr_map_ids as usize).min(16));
    Ok((name_text(&info.name), map_ids, info.id))
}

#[repr(C)]
struct Obj {
    pathname: u64,
    bpf_fd: u32,
    file_flags: u32,
}

/// Pins `object` (a map or program) at `path` in a bpffs: it then lives
/// until the pin is removed, and others find it by that path.
pub fn obj_pin(object: &impl AsRawFd, path: &std::ffi::CStr) -> io::Result<()> {
    let mut attr = Obj {
        pathname: path.as_ptr() as u64,
        bpf_fd: object.as_raw_fd() as u32,
        file_flags: 0,
    };
    bpf(OBJ_PIN, &mut attr).map(drop)
}

/// The object pinned at `path`.
pub fn obj_get(path: &std::ffi::CStr) -> io::Result<OwnedFd> {
    let mut attr = Obj {
        pathname: path.as_ptr() as u64,
        bpf_fd: 0,
        file_flags: 0,
    };
    fd_result(bpf(OBJ_GET, &mut attr))
}

/// What identifies a map of ours: its name, type, value size and id.
pub struct MapFacts {
    pub name: String,
    pub map_type: u32,
    pub value_size: u32,
    pub id: u32,
}

pub fn map_facts(map: &impl AsRawFd) -> io::Result<MapFacts> {
    let mut info = MapInfo::default();
    let mut attr = InfoByFd {
        bpf_fd: map.as_raw_fd() as u32,
        info_len: std::mem::size_of::<MapInfo>() as u32,
        info: &mut info as *mut MapInfo as u64,
    };
    bpf(OBJ_GET_INFO_BY_FD, &mut attr)?;
    Ok(MapFacts {
        name: name_text(&info.name),
        map_type: info.map_type,
        value_size: info.value_size,
        id: info.id,
    })
}

pub fn map_name(map: &impl AsRawFd) -> io::Result<String> {
    let mut info = MapInfo::default();
    let mut attr = InfoByFd {
        bpf_fd: map.as_raw_fd() as u32,
        info_len: std::mem::size_of::<MapInfo>() as u32,
        info: &mut info as *mut MapInfo as u64,
    };
    bpf(OBJ_GET_INFO_BY_FD, &mut attr)?;
    Ok(name_text(&info.name))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attribute_layouts_match_linux_bpf_h() {
        // Offsets checked against offsetof() on linux/bpf.h.
        assert_eq!(std::mem::offset_of!(ProgInfo, nr_map_ids), 52);
        assert_eq!(std::mem::offset_of!(ProgInfo, map_ids), 56);
        assert_eq!(std::mem::offset_of!(ProgInfo, name), 64);
        assert_eq!(std::mem::offset_of!(MapInfo, name), 24);
        assert_eq!(std::mem::offset_of!(ProgLoad, prog_name), 48);
        assert_eq!(std::mem::offset_of!(ProgLoad, expected_attach_type), 68);
        assert_eq!(std::mem::offset_of!(MapCreate, btf_value_type_id), 56);
        assert_eq!(std::mem::offset_of!(ProgQuery, prog_cnt), 24);
    }
}
