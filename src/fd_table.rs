//! What we know about each file descriptor, so that `connect()` and
//! `accept()` cost no system call on sockets we have already seen.
//!
//! A fixed table of one atomic byte per descriptor number: no lock, no
//! allocation, safe from signal handlers. It lives in .bss, so only the pages
//! for descriptor numbers actually used become resident (4096 fds a page).
//! Descriptors beyond the table are simply "unknown" and probed when needed.

use std::sync::atomic::{AtomicU8, Ordering};

/// Descriptors 0..TRACKED_FDS are remembered (1 MiB of address space).
pub const TRACKED_FDS: usize = 1 << 20;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum FdState {
    /// Never seen: inherited, made by a raw system call, dup'ed, or a file.
    Unknown = 0,
    /// A TCP socket we configured; connections accepted from it inherit that.
    Configured = 1,
    /// A TCP socket whose keepalive options the program chose itself.
    ProgramOwned = 2,
    /// Not a TCP socket, or one we must leave alone: never touched.
    LeftAlone = 3,
    /// A TCP listener we did not create (systemd, inetd): its connections
    /// are configured one by one at accept().
    ForeignListener = 4,
    /// A TCP socket we created while rules are in force: untouched until
    /// connect(), listen() or accept() tells what it is for.
    Pending = 5,
}

impl FdState {
    fn from_u8(value: u8) -> FdState {
        match value {
            1 => FdState::Configured,
            2 => FdState::ProgramOwned,
            3 => FdState::LeftAlone,
            4 => FdState::ForeignListener,
            5 => FdState::Pending,
            _ => FdState::Unknown,
        }
    }
}

static STATES: [AtomicU8; TRACKED_FDS] = [const { AtomicU8::new(0) }; TRACKED_FDS];

fn slot(fd: i32) -> Option<&'static AtomicU8> {
    usize::try_from(fd).ok().and_then(|index| STATES.get(index))
}

/// The state of `fd`; `Unknown` for negative or untracked numbers.
pub fn get(fd: i32) -> FdState {
    slot(fd).map_or(FdState::Unknown, |s| {
        FdState::from_u8(s.load(Ordering::Relaxed))
    })
}

/// Records the state of `fd`; ignored for numbers outside the table.
pub fn set(fd: i32, state: FdState) {
    if let Some(s) = slot(fd) {
        s.store(state as u8, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_bounds() {
        assert_eq!(get(12345), FdState::Unknown);
        set(12345, FdState::Configured);
        assert_eq!(get(12345), FdState::Configured);
        set(12345, FdState::Unknown);
        assert_eq!(get(12345), FdState::Unknown);
        set(-1, FdState::Configured);
        assert_eq!(get(-1), FdState::Unknown);
        set(TRACKED_FDS as i32, FdState::Configured);
        assert_eq!(get(TRACKED_FDS as i32), FdState::Unknown);
        set(TRACKED_FDS as i32 - 1, FdState::ForeignListener);
        assert_eq!(get(TRACKED_FDS as i32 - 1), FdState::ForeignListener);
        set(12345, FdState::Pending);
        assert_eq!(get(12345), FdState::Pending);
    }
}
