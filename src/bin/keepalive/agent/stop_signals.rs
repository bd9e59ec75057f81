//! The signals that stop the agent (SIGTERM, SIGINT, SIGHUP, SIGQUIT) as a
//! descriptor (signalfd), so the agent's one poll sees them beside the
//! process events: no handler, no race between a check and the wait. Each
//! stops it as SIGTERM does (detach, unless --persist, then exit 0): the
//! default action of SIGHUP or SIGQUIT would kill it with every attachment
//! left in place and the ready file still claiming them.

use std::io;
use std::os::fd::{AsFd, BorrowedFd, FromRawFd, OwnedFd};

pub struct StopSignals {
    fd: OwnedFd,
}

impl StopSignals {
    /// Blocks the stop signals and opens a signalfd for them.
    pub fn open() -> io::Result<StopSignals> {
        // SAFETY: sigset operations on a local set; the agent has one thread.
        unsafe {
            let mut set: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut set);
            for signal in [libc::SIGTERM, libc::SIGINT, libc::SIGHUP, libc::SIGQUIT] {
                libc::sigaddset(&mut set, signal);
            }
            if libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut()) != 0 {
                return Err(io::Error::last_os_error());
            }
            let fd = libc::signalfd(-1, &set, libc::SFD_CLOEXEC | libc::SFD_NONBLOCK);
            if fd < 0 {
                return Err(io::Error::last_os_error());
            }
            Ok(StopSignals {
                fd: OwnedFd::from_raw_fd(fd),
            })
        }
    }
}

impl AsFd for StopSignals {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}
