//! Writing our few lines (bad configuration, debug) to the program's stderr
//! without harming the program: no allocation, errno preserved, no SIGPIPE,
//! and never into a descriptor that is no longer the stderr we started with.

use std::fmt;
use std::mem::MaybeUninit;

const STDERR: i32 = libc::STDERR_FILENO;

/// Which open file fd 2 was when the library started. A program that closes
/// fd 2 and gets a socket on that number must never see our text in its data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StderrIdentity {
    device: u64,
    inode: u64,
}

fn fstat_stderr() -> Option<libc::stat> {
    let mut st = MaybeUninit::<libc::stat>::uninit();
    // SAFETY: fstat writes a whole struct stat on success.
    (unsafe { libc::fstat(STDERR, st.as_mut_ptr()) } == 0).then(|| unsafe { st.assume_init() })
}

/// Identifies fd 2, if it is a place for messages: a terminal, file, pipe or
/// a local (AF_UNIX, as journald's) socket. Under inetd fd 2 is the network
/// connection itself: then we never write anything.
pub fn capture_stderr() -> Option<StderrIdentity> {
    let _errno = crate::sockopt::ErrnoGuard::save();
    let st = fstat_stderr()?;
    if st.st_mode & libc::S_IFMT == libc::S_IFSOCK
        && crate::sockopt::get_int(STDERR, libc::SOL_SOCKET, libc::SO_DOMAIN) != Some(libc::AF_UNIX)
    {
        return None;
    }
    Some(StderrIdentity {
        device: st.st_dev,
        inode: st.st_ino,
    })
}

/// A line built on the stack; text beyond its capacity is cut off.
pub struct LineBuffer {
    bytes: [u8; 512],
    len: usize,
}

impl LineBuffer {
    pub fn new() -> Self {
        LineBuffer {
            bytes: [0; 512],
            len: 0,
        }
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes[..self.len]
    }
}

impl Default for LineBuffer {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Write for LineBuffer {
    fn write_str(&mut self, text: &str) -> fmt::Result {
        // Keep one byte for the newline that write_line adds.
        let room = self.bytes.len() - 1 - self.len;
        let take = text.len().min(room);
        self.bytes[self.len..self.len + take].copy_from_slice(&text.as_bytes()[..take]);
        self.len += take;
        Ok(())
    }
}

/// Writes `line` and a newline to fd 2 if fd 2 is still `identity`.
/// Async-signal-safe; errno and the signal mask are as before.
pub fn write_line(identity: Option<StderrIdentity>, line: &[u8]) {
    let Some(identity) = identity else { return };
    let _errno = crate::sockopt::ErrnoGuard::save();
    match fstat_stderr() {
        Some(st) if st.st_dev == identity.device && st.st_ino == identity.inode => {}
        _ => return,
    }
    let mut buffer = [0u8; 600];
    let len = line.len().min(buffer.len() - 1);
    buffer[..len].copy_from_slice(&line[..len]);
    buffer[len] = b'\n';
    without_sigpipe(|| write_all(&buffer[..=len]));
}

fn write_all(mut bytes: &[u8]) {
    while !bytes.is_empty() {
        // SAFETY: bytes is a valid slice.
        let written = unsafe { libc::write(STDERR, bytes.as_ptr().cast(), bytes.len()) };
        if written > 0 {
            bytes = &bytes[written as usize..];
        } else if written < 0 && crate::sockopt::errno() == libc::EINTR {
            continue;
        } else {
            return;
        }
    }
}

/// Runs `write` with SIGPIPE blocked, and discards a SIGPIPE it raised, so a
/// reader that went away (a closed pipe or journald) cannot kill the program.
fn without_sigpipe(write: impl FnOnce()) {
    // SAFETY: plain signal-set manipulation on local sets.
    unsafe {
        let mut pipe_only = MaybeUninit::<libc::sigset_t>::uninit();
        libc::sigemptyset(pipe_only.as_mut_ptr());
        libc::sigaddset(pipe_only.as_mut_ptr(), libc::SIGPIPE);
        let pipe_only = pipe_only.assume_init();
        let mut pending = MaybeUninit::<libc::sigset_t>::uninit();
        libc::sigpending(pending.as_mut_ptr());
        let was_pending = libc::sigismember(pending.as_ptr(), libc::SIGPIPE) == 1;
        let mut old_mask = MaybeUninit::<libc::sigset_t>::uninit();
        libc::pthread_sigmask(libc::SIG_BLOCK, &pipe_only, old_mask.as_mut_ptr());
        write();
        if !was_pending {
            libc::sigpending(pending.as_mut_ptr());
            if libc::sigismember(pending.as_ptr(), libc::SIGPIPE) == 1 {
                let no_wait = libc::timespec {
                    tv_sec: 0,
                    tv_nsec: 0,
                };
                libc::sigtimedwait(&pipe_only, std::ptr::null_mut(), &no_wait);
            }
        }
        libc::pthread_sigmask(libc::SIG_SETMASK, old_mask.as_ptr(), std::ptr::null_mut());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fmt::Write as _;

    #[test]
    fn line_buffer_truncates_and_keeps_room_for_newline() {
        let mut line = LineBuffer::new();
        let long = "x".repeat(2000);
        let _ = write!(line, "{long}");
        assert_eq!(line.as_bytes().len(), 511);
    }
}
