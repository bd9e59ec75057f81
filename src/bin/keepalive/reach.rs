//! A one-line warning for programs the library cannot reach. PROGRAM still
//! runs: the warning is about keepalive, not about PROGRAM.

use crate::elf::{self, Kind};
use std::os::unix::fs::MetadataExt;
use std::path::Path;

/// Why `executable` will not get keepalive, or `None` if it can (or if we
/// cannot tell: then we say nothing rather than something wrong).
pub fn warning(executable: &Path) -> Option<String> {
    let file = std::fs::File::open(executable).ok()?;
    let shown = executable.display();
    let why = match elf::inspect(&file) {
        Kind::Go => "is a Go program: Go makes its sockets without libc, \
                     so LD_PRELOAD cannot reach them (Go's own dialer enables keepalive, 15 s)"
            .to_string(),
        Kind::Static => {
            "is statically linked: ld.so never runs, so LD_PRELOAD is ignored".to_string()
        }
        Kind::NotElf => return None,
        Kind::Dynamic => secure_execution(&file.metadata().ok()?)?,
    };
    Some(format!(
        "keepalive: warning: {shown} {why}; running it without keepalive \
         (keepalive --bpf reaches it, as root)"
    ))
}

/// setuid/setgid programs run in secure-execution mode, where ld.so ignores
/// LD_PRELOAD entries with a slash (ours always has one).
fn secure_execution(metadata: &std::fs::Metadata) -> Option<String> {
    // SAFETY: geteuid and getegid have no preconditions.
    let (euid, egid) = unsafe { (libc::geteuid(), libc::getegid()) };
    let mode = metadata.mode();
    if mode & libc::S_ISUID != 0 && metadata.uid() != euid {
        return Some(
            "is setuid: ld.so ignores LD_PRELOAD for it (secure-execution mode)".to_string(),
        );
    }
    if mode & libc::S_ISGID != 0 && metadata.gid() != egid {
        return Some(
            "is setgid: ld.so ignores LD_PRELOAD for it (secure-execution mode)".to_string(),
        );
    }
    None
}
