//! One diagnostic per process tree. A bad value in a service's or a
//! container's environment reaches every process it starts: without this,
//! each of them (35 through one pyenv shim) printed the same line. A process
//! stays quiet when its parent has this library loaded and started with
//! exactly the same values for every variable we read: that parent printed
//! the line already (or stayed quiet for the same reason). Nothing is
//! written anywhere, so the program's environment is as it was; only
//! /proc is read, and only when there is a diagnostic to print.

use std::ffi::CStr;

/// Whether the parent process already reported these diagnostics.
/// `ours` gives this process's raw value of one of our variables.
pub fn parent_reported<B: AsRef<[u8]>>(names: &[&str], ours: impl Fn(&str) -> Option<B>) -> bool {
    // SAFETY: getppid has no preconditions.
    let parent = unsafe { libc::getppid() };
    if parent <= 1 {
        return false;
    }
    let Some(library) = this_library_path() else {
        return false;
    };
    let maps = std::fs::read(format!("/proc/{parent}/maps")).unwrap_or_default();
    let library = library.as_os_str().as_encoded_bytes();
    let loaded = maps
        .split(|&b| b == b'\n')
        .any(|line| line.ends_with(library));
    if !loaded {
        return false;
    }
    let Ok(environ) = std::fs::read(format!("/proc/{parent}/environ")) else {
        return false;
    };
    let parents = |name: &str| -> Option<&[u8]> {
        environ
            .split(|&b| b == 0)
            .find_map(|entry| entry.strip_prefix(name.as_bytes())?.strip_prefix(b"="))
    };
    names
        .iter()
        .all(|&name| parents(name) == ours(name).as_ref().map(AsRef::as_ref))
}

/// The path this library was loaded from, as /proc/PID/maps shows it.
fn this_library_path() -> Option<std::path::PathBuf> {
    static MARKER: u8 = 0;
    let mut info = std::mem::MaybeUninit::<libc::Dl_info>::zeroed();
    // SAFETY: dladdr fills info when it returns non-zero.
    if unsafe { libc::dladdr(std::ptr::addr_of!(MARKER).cast(), info.as_mut_ptr()) } == 0 {
        return None;
    }
    // SAFETY: filled by dladdr; dli_fname stays valid while we are loaded.
    let name = unsafe { info.assume_init() }.dli_fname;
    if name.is_null() {
        return None;
    }
    // SAFETY: a NUL-terminated path.
    let name = unsafe { CStr::from_ptr(name) };
    let name: &std::ffi::OsStr = std::os::unix::ffi::OsStrExt::from_bytes(name.to_bytes());
    std::fs::canonicalize(name).ok()
}
