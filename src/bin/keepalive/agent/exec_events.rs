//! Every exec on the host, from the kernel's process events (the proc
//! connector: netlink `NETLINK_CONNECTOR`, group `CN_IDX_PROC`). Needs
//! CAP_NET_ADMIN and the host's network namespace (the connector only
//! speaks in the initial one). When the socket's buffer overflowed the
//! kernel says so (ENOBUFS): the caller then walks the tree again, so that
//! no exec is missed.

use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

const CN_IDX_PROC: u32 = 1;
const CN_VAL_PROC: u32 = 1;
const PROC_CN_MCAST_LISTEN: u32 = 1;
const PROC_EVENT_EXEC: u32 = 2;

/// Sizes of `struct nlmsghdr` and `struct cn_msg` (without its data).
const NLMSG_HEADER: usize = 16;
const CN_MSG_HEADER: usize = 20;
/// Within `struct proc_event`: what, cpu, timestamp_ns, then the union
/// (for exec: process_pid, process_tgid).
const EVENT_WHAT: usize = 0;
const EVENT_TIMESTAMP: usize = 8;
const EVENT_TGID: usize = 20;

/// An exec: the process (thread group) id and when it happened
/// (CLOCK_MONOTONIC, nanoseconds).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Exec {
    pub pid: i32,
    pub at_ns: u64,
}

/// What one read brought.
pub enum Batch {
    Execs(Vec<Exec>),
    /// Events were lost (the buffer overflowed): walk the tree again.
    Lost,
}

pub struct ExecEvents {
    socket: OwnedFd,
}

impl ExecEvents {
    /// Subscribes to the process events.
    pub fn open() -> Result<ExecEvents, String> {
        let explain = |what: &str, error: io::Error| {
            let why = match error.raw_os_error() {
                Some(libc::EPERM) | Some(libc::EACCES) => {
                    " (the proc connector needs CAP_NET_ADMIN)"
                }
                Some(libc::EPROTONOSUPPORT) => {
                    " (this kernel has no proc connector: CONFIG_PROC_EVENTS)"
                }
                _ => "",
            };
            format!("cannot {what} the kernel's process events: {error}{why}")
        };
        // SAFETY: plain socket(2); the descriptor is owned at once.
        let raw = unsafe {
            libc::socket(
                libc::AF_NETLINK,
                libc::SOCK_DGRAM | libc::SOCK_CLOEXEC | libc::SOCK_NONBLOCK,
                libc::NETLINK_CONNECTOR,
            )
        };
        if raw < 0 {
            return Err(explain("open", io::Error::last_os_error()));
        }
        // SAFETY: `raw` is a fresh descriptor of ours.
        let socket = unsafe { OwnedFd::from_raw_fd(raw) };
        // A burst of execs (a node starting many pods) must not overflow
        // the default buffer; FORCE goes past rmem_max with CAP_NET_ADMIN.
        let size: libc::c_int = 8 << 20;
        // SAFETY: setsockopt(2) with an int.
        unsafe {
            libc::setsockopt(
                raw,
                libc::SOL_SOCKET,
                libc::SO_RCVBUFFORCE,
                (&size as *const libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>() as u32,
            )
        };
        // SAFETY: a zeroed sockaddr_nl is valid; we fill in family and group.
        let mut address: libc::sockaddr_nl = unsafe { std::mem::zeroed() };
        address.nl_family = libc::AF_NETLINK as u16;
        address.nl_groups = CN_IDX_PROC;
        // SAFETY: bind(2) with a sockaddr_nl of the right size.
        let bound = unsafe {
            libc::bind(
                raw,
                (&address as *const libc::sockaddr_nl).cast(),
                std::mem::size_of::<libc::sockaddr_nl>() as u32,
            )
        };
        if bound != 0 {
            return Err(explain("subscribe to", io::Error::last_os_error()));
        }
        let mut message = Vec::with_capacity(NLMSG_HEADER + CN_MSG_HEADER + 4);
        let total = (NLMSG_HEADER + CN_MSG_HEADER + 4) as u32;
        message.extend_from_slice(&total.to_ne_bytes());
        message.extend_from_slice(&(libc::NLMSG_DONE as u16).to_ne_bytes());
        message.extend_from_slice(&0u16.to_ne_bytes()); // flags
        message.extend_from_slice(&0u32.to_ne_bytes()); // seq
        message.extend_from_slice(&std::process::id().to_ne_bytes());
        message.extend_from_slice(&CN_IDX_PROC.to_ne_bytes());
        message.extend_from_slice(&CN_VAL_PROC.to_ne_bytes());
        message.extend_from_slice(&0u32.to_ne_bytes()); // seq
        message.extend_from_slice(&0u32.to_ne_bytes()); // ack
        message.extend_from_slice(&4u16.to_ne_bytes()); // len
        message.extend_from_slice(&0u16.to_ne_bytes()); // flags
        message.extend_from_slice(&PROC_CN_MCAST_LISTEN.to_ne_bytes());
        // SAFETY: send(2) from a live buffer.
        let sent = unsafe { libc::send(raw, message.as_ptr().cast(), message.len(), 0) };
        if sent != message.len() as isize {
            return Err(explain("subscribe to", io::Error::last_os_error()));
        }
        Ok(ExecEvents { socket })
    }

    /// Everything waiting now (the socket is non-blocking: poll it first).
    pub fn read(&self) -> io::Result<Batch> {
        let mut execs = Vec::new();
        let mut buffer = vec![0u8; 64 << 10];
        loop {
            // SAFETY: recv(2) into a live buffer of that length.
            let got = unsafe {
                libc::recv(
                    self.socket.as_raw_fd(),
                    buffer.as_mut_ptr().cast(),
                    buffer.len(),
                    0,
                )
            };
            if got < 0 {
                let error = io::Error::last_os_error();
                return match error.raw_os_error() {
                    Some(libc::EAGAIN) => Ok(Batch::Execs(execs)),
                    Some(libc::ENOBUFS) => Ok(Batch::Lost),
                    Some(libc::EINTR) => continue,
                    _ => Err(error),
                };
            }
            parse(&buffer[..got as usize], &mut execs);
        }
    }
}

impl AsFd for ExecEvents {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.socket.as_fd()
    }
}

fn u32_at(bytes: &[u8], offset: usize) -> Option<u32> {
    Some(u32::from_ne_bytes(
        bytes.get(offset..offset + 4)?.try_into().ok()?,
    ))
}

/// The exec events of one datagram (one or more netlink messages).
fn parse(mut datagram: &[u8], execs: &mut Vec<Exec>) {
    while let Some(length) = u32_at(datagram, 0) {
        let length = length as usize;
        if length < NLMSG_HEADER || length > datagram.len() {
            return;
        }
        let event = &datagram[NLMSG_HEADER + CN_MSG_HEADER.min(length - NLMSG_HEADER)..length];
        if u32_at(event, EVENT_WHAT) == Some(PROC_EVENT_EXEC) {
            if let (Some(pid), Some(at)) = (
                u32_at(event, EVENT_TGID),
                event.get(EVENT_TIMESTAMP..EVENT_TIMESTAMP + 8),
            ) {
                execs.push(Exec {
                    pid: pid as i32,
                    at_ns: u64::from_ne_bytes(at.try_into().unwrap_or_default()),
                });
            }
        }
        // Messages are 4-byte aligned (NLMSG_ALIGN).
        let next = (length + 3) & !3;
        datagram = datagram.get(next..).unwrap_or_default();
    }
}

/// CLOCK_MONOTONIC now, in nanoseconds: the clock of `Exec::at_ns`.
pub fn monotonic_ns() -> u64 {
    let mut now = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime(2) into a live timespec.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut now) };
    now.tv_sec as u64 * 1_000_000_000 + now.tv_nsec as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(what: u32, tgid: u32, at: u64) -> Vec<u8> {
        let mut bytes = Vec::new();
        let total = (NLMSG_HEADER + CN_MSG_HEADER + 24) as u32;
        bytes.extend_from_slice(&total.to_ne_bytes());
        bytes.extend_from_slice(&[0; NLMSG_HEADER - 4]);
        bytes.extend_from_slice(&[0; CN_MSG_HEADER]);
        bytes.extend_from_slice(&what.to_ne_bytes());
        bytes.extend_from_slice(&0u32.to_ne_bytes());
        bytes.extend_from_slice(&at.to_ne_bytes());
        bytes.extend_from_slice(&(tgid + 1).to_ne_bytes()); // the thread
        bytes.extend_from_slice(&tgid.to_ne_bytes());
        bytes
    }

    #[test]
    fn exec_events_are_read_and_others_skipped() {
        let mut datagram = message(PROC_EVENT_EXEC, 42, 7);
        datagram.extend(message(1, 43, 8)); // a fork
        datagram.extend(message(PROC_EVENT_EXEC, 44, 9));
        let mut execs = Vec::new();
        parse(&datagram, &mut execs);
        assert_eq!(
            execs,
            [Exec { pid: 42, at_ns: 7 }, Exec { pid: 44, at_ns: 9 }]
        );
        // Truncated or nonsense input yields nothing and does not panic.
        let mut none = Vec::new();
        parse(&datagram[..30], &mut none);
        parse(&[255; 8], &mut none);
        parse(&[], &mut none);
        assert!(none.is_empty());
    }
}
