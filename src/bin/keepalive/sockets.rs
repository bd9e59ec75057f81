//! A socket's effective keepalive options, read from the socket itself: a
//! copy of the process's descriptor (`pidfd_getfd`, Linux 5.6, needs ptrace
//! permission over the process) and `getsockopt` on it. The copy changes
//! nothing in the process and is closed at once.

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

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

/// A handle on a process for copying its descriptors.
pub struct Pidfd {
    fd: OwnedFd,
}

fn last_error() -> std::io::Error {
    std::io::Error::last_os_error()
}

impl Pidfd {
    pub fn open(pid: i32) -> std::io::Result<Pidfd> {
        // SAFETY: pidfd_open takes a pid and flags; it returns a new fd or -1.
        let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
        if fd < 0 {
            return Err(last_error());
        }
        // SAFETY: the descriptor is new and ours.
        Ok(Pidfd {
            fd: unsafe { OwnedFd::from_raw_fd(fd as i32) },
        })
    }

    /// A copy of the process's descriptor `target`.
    pub fn socket(&self, target: i32) -> std::io::Result<Socket> {
        // SAFETY: pidfd_getfd takes a pidfd, a descriptor number and flags.
        let fd = unsafe { libc::syscall(libc::SYS_pidfd_getfd, self.fd.as_raw_fd(), target, 0) };
        if fd < 0 {
            return Err(last_error());
        }
        // SAFETY: the descriptor is new and ours.
        Ok(Socket {
            fd: unsafe { OwnedFd::from_raw_fd(fd as i32) },
        })
    }
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

    /// Whether this is a TCP socket (IPv4 or IPv6).
    pub fn is_tcp(&self) -> bool {
        let domain = self.int_option(libc::SOL_SOCKET, libc::SO_DOMAIN);
        let protocol = self.int_option(libc::SOL_SOCKET, libc::SO_PROTOCOL);
        matches!(domain, Ok(libc::AF_INET | libc::AF_INET6))
            && matches!(protocol, Ok(libc::IPPROTO_TCP))
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
        let pidfd = Pidfd::open(std::process::id() as i32).unwrap();
        let copy = pidfd.socket(fd).unwrap();
        assert!(copy.is_tcp());
        let options = copy.options().unwrap();
        assert_eq!((options.keepalive, options.idle_secs), (false, 7));
        // A UDP socket is not TCP.
        let udp = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        assert!(!pidfd.socket(udp.as_raw_fd()).unwrap().is_tcp());
        assert!(pidfd.socket(9999).is_err());
    }
}
