//! A socket's effective keepalive options, read from the socket itself: a
//! copy of the process's descriptor (`pidfd_getfd`, Linux 5.6, needs ptrace
//! permission over the process) and `getsockopt` on it, closed at once.
//! Receiving the copy re-tags the socket with the receiver's net_cls and
//! net_prio cgroups: callers copy only TCP sockets, and only from the
//! target's own cgroups (`net_cgroups`).

use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

/// The options as the kernel reports them: the effective values, kernel
/// defaults included.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Options {
    pub keepalive: bool,
    pub idle_secs: i32,
    pub interval_secs: i32,
    pub count: i32,
    pub user_timeout_ms: i32,
}

/// What a copied descriptor is.
pub struct Socket {
    fd: OwnedFd,
}

impl AsRawFd for Socket {
    fn as_raw_fd(&self) -> std::os::fd::RawFd {
        self.fd.as_raw_fd()
    }
}

fn last_error() -> std::io::Error {
    std::io::Error::last_os_error()
}

/// A copy of descriptor `target` of the process `pidfd` pins.
pub fn copy(pidfd: BorrowedFd<'_>, target: i32) -> std::io::Result<Socket> {
    // SAFETY: pidfd_getfd takes a pidfd, a descriptor number and flags.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_getfd, pidfd.as_raw_fd(), target, 0) };
    if fd < 0 {
        return Err(last_error());
    }
    // SAFETY: the descriptor is new and ours.
    Ok(Socket {
        fd: unsafe { OwnedFd::from_raw_fd(fd as i32) },
    })
}

impl Socket {
    fn int_option(&self, level: i32, name: i32) -> std::io::Result<i32> {
        let mut value: libc::c_int = 0;
        let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
        // SAFETY: value and len are valid for getsockopt to write.
        let rc = unsafe {
            libc::getsockopt(
                self.fd.as_raw_fd(),
                level,
                name,
                (&mut value as *mut libc::c_int).cast(),
                &mut len,
            )
        };
        if rc == 0 {
            Ok(value)
        } else {
            Err(last_error())
        }
    }

    pub fn options(&self) -> std::io::Result<Options> {
        let tcp = |name| self.int_option(libc::IPPROTO_TCP, name);
        Ok(Options {
            keepalive: self.int_option(libc::SOL_SOCKET, libc::SO_KEEPALIVE)? != 0,
            idle_secs: tcp(libc::TCP_KEEPIDLE)?,
            interval_secs: tcp(libc::TCP_KEEPINTVL)?,
            count: tcp(libc::TCP_KEEPCNT)?,
            user_timeout_ms: tcp(libc::TCP_USER_TIMEOUT)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{TcpListener, TcpStream};
    use std::os::fd::AsFd;

    #[test]
    fn reads_our_own_socket_through_a_pidfd() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let stream = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let fd = stream.as_raw_fd();
        let seven: libc::c_int = 7;
        // SAFETY: a valid int option on our own socket.
        let rc = unsafe {
            libc::setsockopt(
                fd,
                libc::IPPROTO_TCP,
                libc::TCP_KEEPIDLE,
                (&seven as *const libc::c_int).cast(),
                4,
            )
        };
        assert_eq!(rc, 0);
        // SAFETY: pidfd_open takes a pid and flags.
        let raw = unsafe { libc::syscall(libc::SYS_pidfd_open, std::process::id(), 0) };
        assert!(raw >= 0);
        // SAFETY: new and ours.
        let pidfd = unsafe { OwnedFd::from_raw_fd(raw as i32) };
        let copy = copy(pidfd.as_fd(), fd).unwrap();
        let options = copy.options().unwrap();
        assert_eq!((options.keepalive, options.idle_secs), (false, 7));
        assert!(super::copy(pidfd.as_fd(), 9999).is_err());
    }
}
