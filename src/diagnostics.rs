//! Writing our few lines (bad configuration, debug) to the program's stderr
//! without harming the program: no allocation, errno preserved, no SIGPIPE,
//! and only ever into a private duplicate of the stderr the process started
//! with, never into whatever fd 2 names later (a program may `dup2` a
//! network connection onto fd 2 at any moment, from any thread).
//!
//! The duplicate is taken at load, and only when there is something to say:
//! a diagnostic (then closed again right after) or debug lines (then kept,
//! close-on-exec, at 512, or the highest free number under a lower
//! RLIMIT_NOFILE: never one of the low numbers a program counts on, and not
//! at all under a limit below 64: then no debug lines). If the
//! program closes or replaces that number itself, our hooks see it and we
//! stop writing.

use std::fmt;
use std::mem::MaybeUninit;
use std::sync::atomic::{AtomicI32, Ordering};

const STDERR: i32 = libc::STDERR_FILENO;

/// Where our duplicate goes: far from the low numbers programs count on,
/// below any usual limit (1024).
const PRIVATE_LOWEST: i32 = 512;

/// Our duplicate of the original stderr; -1 when we have none.
static PRIVATE: AtomicI32 = AtomicI32::new(-1);

/// Whether fd 2 is a place for messages: a terminal, file, pipe or a local
/// (AF_UNIX, as journald's) socket. Under inetd fd 2 is the network
/// connection itself: then we never write anything.
fn stderr_is_for_messages() -> bool {
    let mut st = MaybeUninit::<libc::stat>::uninit();
    // SAFETY: fstat writes a whole struct stat on success.
    if unsafe { libc::fstat(STDERR, st.as_mut_ptr()) } != 0 {
        return false;
    }
    // SAFETY: initialised by the successful fstat.
    let st = unsafe { st.assume_init() };
    st.st_mode & libc::S_IFMT != libc::S_IFSOCK
        || crate::sockopt::get_int(STDERR, libc::SOL_SOCKET, libc::SO_DOMAIN) == Some(libc::AF_UNIX)
}

/// Takes our private duplicate of fd 2, if it is a place for messages.
/// Raw system calls: our own `fcntl` hook has nothing to learn from it.
pub fn open_private() {
    let _errno = crate::sockopt::ErrnoGuard::save();
    if PRIVATE.load(Ordering::Acquire) >= 0 || !stderr_is_for_messages() {
        return;
    }
    if let Some(fd) = private_number(soft_limit(), |lowest| {
        // SAFETY: F_DUPFD_CLOEXEC takes an int and returns a new descriptor.
        let fd = unsafe { libc::syscall(libc::SYS_fcntl, STDERR, libc::F_DUPFD_CLOEXEC, lowest) };
        (fd >= 0).then_some(fd as i32)
    }) {
        PRIVATE.store(fd, Ordering::Release);
    }
}

/// The soft `RLIMIT_NOFILE` (0 if it cannot be read).
fn soft_limit() -> libc::rlim_t {
    let mut limit = MaybeUninit::<libc::rlimit>::uninit();
    // SAFETY: getrlimit writes the struct on success.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, limit.as_mut_ptr()) } == 0 {
        // SAFETY: initialised above.
        unsafe { limit.assume_init() }.rlim_cur
    } else {
        0
    }
}

/// Whether the duplicate may stay open for debug lines: not under a soft
/// `RLIMIT_NOFILE` below this, where a program has only a few numbers and
/// may need each one (under `ulimit -n 4`, 3 is its only one). A duplicate
/// for start-up diagnostics alone is closed again before the program runs.
const SMALLEST_LIMIT_TO_KEEP: libc::rlim_t = 64;

/// Whether the soft `RLIMIT_NOFILE` leaves room to keep our duplicate.
pub fn room_to_keep_private() -> bool {
    soft_limit() >= SMALLEST_LIMIT_TO_KEEP
}

/// Where our duplicate goes under a soft `RLIMIT_NOFILE` of `soft`: 512
/// (or the next free number) when the limit allows; under a lower limit,
/// the highest free number below it, so the low numbers a program counts
/// on (3, 4, ...) stay its own. Never in the lower half of the numbers it
/// may use: then no duplicate, and no lines. `dup_from(n)` takes the
/// lowest free number from n on, below the limit.
fn private_number(soft: libc::rlim_t, mut dup_from: impl FnMut(i32) -> Option<i32>) -> Option<i32> {
    let top = soft
        .min(PRIVATE_LOWEST as libc::rlim_t + 1)
        .checked_sub(1)? as i32;
    let bottom = ((top + 1) / 2).max(3);
    (bottom..=top).rev().find_map(&mut dup_from)
}

/// Whether we hold a duplicate of stderr to write to.
pub fn has_private() -> bool {
    PRIVATE.load(Ordering::Acquire) >= 0
}

/// Closes our duplicate (start-up diagnostics written, no debug).
pub fn close_private() {
    let fd = PRIVATE.swap(-1, Ordering::AcqRel);
    if fd >= 0 {
        let _errno = crate::sockopt::ErrnoGuard::save();
        // SAFETY: our own descriptor.
        unsafe { libc::syscall(libc::SYS_close, fd) };
    }
}

/// The program is about to close or replace `fd`: if that is our
/// duplicate, it is no longer ours to write to.
pub fn forget_if_private(fd: i32) {
    if fd >= 0 && PRIVATE.load(Ordering::Relaxed) == fd {
        let _ = PRIVATE.compare_exchange(fd, -1, Ordering::AcqRel, Ordering::Relaxed);
    }
}

/// The same for a range of numbers (`close_range`, `closefrom`).
pub fn forget_private_in(first: u32, last: u32) {
    let fd = PRIVATE.load(Ordering::Relaxed);
    if fd >= 0 && (first..=last).contains(&(fd as u32)) {
        forget_if_private(fd);
    }
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

/// Writes `line` and a newline to our duplicate of stderr, if we hold one,
/// whole (a diagnostic always ends with what is valid). Async-signal-safe;
/// errno and the signal mask are as before.
pub fn write_line(line: &[u8]) {
    let fd = PRIVATE.load(Ordering::Acquire);
    if fd < 0 {
        return;
    }
    let _errno = crate::sockopt::ErrnoGuard::save();
    // write() is a cancellation point: never ours to act on (see `cancel`).
    crate::cancel::held_off(|| {
        without_sigpipe(|| {
            // One writev, so that threads' lines never interleave mid-line.
            let parts = [
                libc::iovec {
                    iov_base: line.as_ptr() as *mut libc::c_void,
                    iov_len: line.len(),
                },
                libc::iovec {
                    iov_base: b"\n".as_ptr() as *mut libc::c_void,
                    iov_len: 1,
                },
            ];
            // SAFETY: both parts point to live bytes of the given lengths.
            let written = unsafe { libc::writev(fd, parts.as_ptr(), 2) };
            let written = usize::try_from(written).unwrap_or(0);
            if written <= line.len() {
                write_all(fd, &line[written..]);
                write_all(fd, b"\n");
            }
        })
    });
}

fn write_all(fd: i32, mut bytes: &[u8]) {
    while !bytes.is_empty() {
        // SAFETY: bytes is a valid slice.
        let written = unsafe { libc::write(fd, bytes.as_ptr().cast(), bytes.len()) };
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
    fn the_duplicate_goes_high_and_never_in_the_lower_half() {
        // A process with only 0, 1, 2 and `busy` taken, under `soft`.
        let place = |soft: libc::rlim_t, busy: &[i32]| {
            private_number(soft, |from| {
                (from..soft as i32).find(|n| *n > 2 && !busy.contains(n))
            })
        };
        assert_eq!(place(1024, &[]), Some(512));
        assert_eq!(place(1024, &[512]), Some(513));
        assert_eq!(place(513, &[]), Some(512));
        assert_eq!(place(512, &[]), Some(511));
        assert_eq!(place(64, &[]), Some(63));
        assert_eq!(place(64, &[63, 62]), Some(61));
        let upper_half: Vec<i32> = (32..64).collect();
        assert_eq!(place(64, &upper_half), None);
        assert_eq!(place(4, &[]), Some(3));
        assert_eq!(place(3, &[]), None);
        assert_eq!(place(0, &[]), None);
    }

    #[test]
    fn line_buffer_truncates_and_keeps_room_for_newline() {
        let mut line = LineBuffer::new();
        let long = "x".repeat(2000);
        let _ = write!(line, "{long}");
        assert_eq!(line.as_bytes().len(), 511);
    }
}
