//! One diagnostic per process tree. A bad value in a service's or a
//! container's environment reaches every process it starts: without this,
//! each of them (35 through one pyenv shim) printed the same line.
//!
//! A process stays quiet only when its parent really wrote the line where
//! ours would go: the parent has this library loaded, started with exactly
//! the same values for every variable we read, and wrote its lines (or
//! stayed quiet for the same reason) to the very file that is our stderr.
//! Each process records where its lines went in `WRITTEN_TO`, in its own
//! memory; a child reads its parent's record through `/proc/PPID/mem`. A
//! parent that could not print (its stderr closed, or a network socket)
//! records nowhere, so its children print. Where the parent's memory may
//! not be read (Yama's ptrace_scope 1 or more, which would also log the
//! attempt: then it is not made), nothing tells whether the parent said
//! the line (its stderr now may not be the one it started with), so the
//! child says it too: a repeated line beats none.
//!
//! A record lives in one program's memory: an `exec` replaces it, so each
//! program a process execs says the line again (`sh -c 'exec prog'`: two
//! lines). Of a program's own state only its environment and descriptors
//! survive an exec, and we change neither.
//! The parent may be PID 1, a container's entrypoint.
//!
//! Nothing is written anywhere else, so the program's environment is as it
//! was; only /proc is read, and only when there is a diagnostic to print.

use std::ffi::CStr;
use std::os::unix::fs::FileExt;
use std::sync::atomic::{AtomicU64, Ordering};

/// Marks a filled record.
const RECORDED: u64 = u64::from_be_bytes(*b"keepaliv");

/// `[RECORDED, st_dev, st_ino]` of the file our start-up lines went to;
/// `st_dev` and `st_ino` 0 when they went nowhere. All 0 until recorded.
static WRITTEN_TO: [AtomicU64; 3] = [AtomicU64::new(0), AtomicU64::new(0), AtomicU64::new(0)];

/// A file, as `stat` tells one from another.
pub type FileId = (u64, u64);

/// Our fd 2's identity, if it is open.
pub fn stderr_id() -> Option<FileId> {
    let mut st = std::mem::MaybeUninit::<libc::stat>::uninit();
    // SAFETY: fstat writes a whole struct stat on success.
    if unsafe { libc::fstat(libc::STDERR_FILENO, st.as_mut_ptr()) } != 0 {
        return None;
    }
    // SAFETY: initialised by the successful fstat.
    let st = unsafe { st.assume_init() };
    Some((st.st_dev, st.st_ino))
}

/// Records where this process's start-up lines went (`None`: nowhere).
pub fn record(written_to: Option<FileId>) {
    let (dev, ino) = written_to.unwrap_or((0, 0));
    WRITTEN_TO[1].store(dev, Ordering::Relaxed);
    WRITTEN_TO[2].store(ino, Ordering::Relaxed);
    WRITTEN_TO[0].store(RECORDED, Ordering::Release);
}

/// Where the parent process wrote these same diagnostics, if that is our
/// stderr: then it said them already. `ours` gives this process's raw
/// value of one of our variables.
pub fn parent_reported<B: AsRef<[u8]>>(
    names: &[&[u8]],
    ours: impl Fn(&[u8]) -> Option<B>,
) -> Option<FileId> {
    // SAFETY: getppid has no preconditions.
    let parent = unsafe { libc::getppid() };
    // 0: the parent is outside our PID namespace, and cannot be looked at.
    if parent < 1 {
        return None;
    }
    // Opening a parent's memory under Yama would be refused, and logged as
    // an attempted ptrace attach. Whether the parent said the line is then
    // unknown, and we say it: a repeated line beats none. (Its stderr now
    // tells nothing: it may have been closed at start and redirected since.)
    if yama_restricts_ptrace() {
        return None;
    }
    let here = stderr_id()?;
    let library = this_library()?;
    let maps = std::fs::read(format!("/proc/{parent}/maps")).ok()?;
    let parent_base = base_address(&maps, library.path.as_os_str().as_encoded_bytes())?;
    let environ = std::fs::read(format!("/proc/{parent}/environ")).ok()?;
    let parents = |name: &[u8]| -> Option<&[u8]> {
        environ
            .split(|&b| b == 0)
            .find_map(|entry| entry.strip_prefix(name)?.strip_prefix(b"="))
    };
    let same_values = names
        .iter()
        .all(|&name| parents(name) == ours(name).as_ref().map(AsRef::as_ref));
    if !same_values {
        return None;
    }
    let offset = (WRITTEN_TO.as_ptr() as usize).checked_sub(library.base)?;
    let theirs = read_record(parent, parent_base + offset as u64).ok()??;
    (theirs == here).then_some(here)
}

/// Whether Yama allows attaching only to descendants (or less): then a
/// parent's memory is out of reach.
fn yama_restricts_ptrace() -> bool {
    std::fs::read("/proc/sys/kernel/yama/ptrace_scope")
        .is_ok_and(|scope| scope.first().is_some_and(|&digit| digit != b'0'))
}

/// The parent's `WRITTEN_TO`: `Ok(None)` when it recorded nothing or
/// wrote nowhere.
fn read_record(parent: i32, address: u64) -> std::io::Result<Option<FileId>> {
    let memory = std::fs::File::open(format!("/proc/{parent}/mem"))?;
    let mut bytes = [0u8; 24];
    memory.read_exact_at(&mut bytes, address)?;
    let word =
        |i: usize| u64::from_ne_bytes(bytes[i * 8..i * 8 + 8].try_into().unwrap_or_default());
    Ok((word(0) == RECORDED && (word(1), word(2)) != (0, 0)).then(|| (word(1), word(2))))
}

/// Where `library` starts in a `/proc/PID/maps`: its mapping at offset 0.
fn base_address(maps: &[u8], library: &[u8]) -> Option<u64> {
    maps.split(|&b| b == b'\n')
        .filter(|line| line.ends_with(library))
        .find_map(|line| {
            let line = std::str::from_utf8(line).ok()?;
            let mut words = line.split_whitespace();
            let range = words.next()?;
            let offset = words.nth(1)?;
            if u64::from_str_radix(offset, 16).ok()? != 0 {
                return None;
            }
            u64::from_str_radix(range.split('-').next()?, 16).ok()
        })
}

/// This library: its path as /proc/PID/maps shows it, and its load address.
struct ThisLibrary {
    path: std::path::PathBuf,
    base: usize,
}

fn this_library() -> Option<ThisLibrary> {
    let mut info = std::mem::MaybeUninit::<libc::Dl_info>::zeroed();
    // SAFETY: dladdr fills info when it returns non-zero.
    if unsafe { libc::dladdr(WRITTEN_TO.as_ptr().cast(), info.as_mut_ptr()) } == 0 {
        return None;
    }
    // SAFETY: filled by dladdr; dli_fname stays valid while we are loaded.
    let info = unsafe { info.assume_init() };
    if info.dli_fname.is_null() {
        return None;
    }
    // SAFETY: a NUL-terminated path.
    let name = unsafe { CStr::from_ptr(info.dli_fname) };
    let name: &std::ffi::OsStr = std::os::unix::ffi::OsStrExt::from_bytes(name.to_bytes());
    Some(ThisLibrary {
        path: std::fs::canonicalize(name).ok()?,
        base: info.dli_fbase as usize,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_base_is_the_mapping_at_offset_zero() {
        let maps = b"55d0-55d1 r--p 00000000 08:01 123 /usr/bin/cat\n\
            7f10-7f20 r--p 00000000 08:01 9 /usr/lib/libkeepalive.so\n\
            7f20-7f30 r-xp 00010000 08:01 9 /usr/lib/libkeepalive.so\n";
        assert_eq!(
            base_address(maps, b"/usr/lib/libkeepalive.so"),
            Some(0x7f10)
        );
        assert_eq!(base_address(maps, b"/usr/lib/other.so"), None);
    }
}
