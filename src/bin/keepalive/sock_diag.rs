//! The kernel's table of established TCP connections, read as `ss` reads
//! it: a NETLINK_SOCK_DIAG dump (inet_diag). Read-only, and it takes no
//! descriptor from any process. The keepalive timer the kernel reports is
//! all it tells of keepalive: whether it runs and when the next probe is
//! due (the configured idle/interval/count are not in inet_diag).

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

const SOCK_DIAG_BY_FAMILY: u16 = 20;
const NLM_F_REQUEST: u16 = 1;
const NLM_F_DUMP: u16 = 0x300;
const NLMSG_HEADER: usize = 16;
const TCP_ESTABLISHED: u32 = 1;
/// Size of `struct inet_diag_msg` (the fixed part of each answer).
const DIAG_MSG: usize = 72;

/// Which timer the kernel has running on the connection (`idiag_timer`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Timer {
    /// None: keepalive is off (an idle connection with it on always has
    /// the keepalive timer running).
    Off,
    /// The keepalive timer: the next probe in this many milliseconds.
    Keepalive(u32),
    /// A retransmission or window probe is pending: keepalive's state
    /// cannot be told from outside at this moment.
    Busy,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Connection {
    pub local: SocketAddr,
    pub peer: SocketAddr,
    pub inode: u64,
    pub uid: u32,
    pub timer: Timer,
}

/// Every established TCP connection of this network namespace, IPv4 and IPv6.
pub fn established() -> io::Result<Vec<Connection>> {
    let mut all = dump(libc::AF_INET as u8)?;
    all.extend(dump(libc::AF_INET6 as u8)?);
    Ok(all)
}

fn dump(family: u8) -> io::Result<Vec<Connection>> {
    // SAFETY: plain socket(2), owned at once.
    let raw = unsafe {
        libc::socket(
            libc::AF_NETLINK,
            libc::SOCK_RAW | libc::SOCK_CLOEXEC,
            libc::NETLINK_SOCK_DIAG,
        )
    };
    if raw < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `raw` is a fresh descriptor of ours.
    let socket = unsafe { OwnedFd::from_raw_fd(raw) };
    let mut request = Vec::with_capacity(NLMSG_HEADER + 56);
    request.extend_from_slice(&((NLMSG_HEADER + 56) as u32).to_ne_bytes());
    request.extend_from_slice(&SOCK_DIAG_BY_FAMILY.to_ne_bytes());
    request.extend_from_slice(&(NLM_F_REQUEST | NLM_F_DUMP).to_ne_bytes());
    request.extend_from_slice(&1u32.to_ne_bytes()); // seq
    request.extend_from_slice(&0u32.to_ne_bytes()); // pid: the kernel's
    request.push(family);
    request.push(libc::IPPROTO_TCP as u8);
    request.push(0); // no extensions
    request.push(0);
    request.extend_from_slice(&(1u32 << TCP_ESTABLISHED).to_ne_bytes());
    request.extend_from_slice(&[0; 48]); // any socket id
                                         // SAFETY: send(2) from a live buffer.
    let sent = unsafe {
        libc::send(
            socket.as_raw_fd(),
            request.as_ptr().cast(),
            request.len(),
            0,
        )
    };
    if sent != request.len() as isize {
        return Err(io::Error::last_os_error());
    }
    let mut connections = Vec::new();
    let mut buffer = vec![0u8; 64 << 10];
    loop {
        // SAFETY: recv(2) into a live buffer of that length.
        let got = unsafe {
            libc::recv(
                socket.as_raw_fd(),
                buffer.as_mut_ptr().cast(),
                buffer.len(),
                0,
            )
        };
        if got < 0 {
            let error = io::Error::last_os_error();
            if error.raw_os_error() == Some(libc::EINTR) {
                continue;
            }
            return Err(error);
        }
        if got == 0 || parse(&buffer[..got as usize], &mut connections)? {
            return Ok(connections);
        }
    }
}

fn u32_at(bytes: &[u8], offset: usize) -> Option<u32> {
    Some(u32::from_ne_bytes(
        bytes.get(offset..offset + 4)?.try_into().ok()?,
    ))
}

/// One datagram's messages into `connections`; true at the dump's end.
fn parse(mut datagram: &[u8], connections: &mut Vec<Connection>) -> io::Result<bool> {
    while let Some(length) = u32_at(datagram, 0) {
        let length = length as usize;
        if length < NLMSG_HEADER || length > datagram.len() {
            return Ok(true);
        }
        let kind = u16::from_ne_bytes([datagram[4], datagram[5]]);
        let body = &datagram[NLMSG_HEADER..length];
        match kind {
            k if k == libc::NLMSG_DONE as u16 => return Ok(true),
            k if k == libc::NLMSG_ERROR as u16 => {
                let errno = u32_at(body, 0).unwrap_or(0) as i32;
                if errno != 0 {
                    return Err(io::Error::from_raw_os_error(-errno));
                }
            }
            SOCK_DIAG_BY_FAMILY => {
                if let Some(connection) = connection(body) {
                    connections.push(connection);
                }
            }
            _ => {}
        }
        datagram = datagram.get((length + 3) & !3..).unwrap_or_default();
    }
    Ok(false)
}

/// One `struct inet_diag_msg`.
fn connection(message: &[u8]) -> Option<Connection> {
    if message.len() < DIAG_MSG {
        return None;
    }
    let family = message[0];
    let address = |offset: usize| -> IpAddr {
        let bytes: [u8; 16] = message[offset..offset + 16].try_into().unwrap_or_default();
        if family == libc::AF_INET as u8 {
            IpAddr::V4(Ipv4Addr::new(bytes[0], bytes[1], bytes[2], bytes[3]))
        } else {
            IpAddr::V6(Ipv6Addr::from(bytes))
        }
    };
    let port = |offset: usize| u16::from_be_bytes([message[offset], message[offset + 1]]);
    let timer = match message[2] {
        0 => Timer::Off,
        2 => Timer::Keepalive(u32_at(message, 52)?),
        _ => Timer::Busy,
    };
    Some(Connection {
        local: SocketAddr::new(address(8), port(4)),
        peer: SocketAddr::new(address(24), port(6)),
        uid: u32_at(message, 64)?,
        inode: u64::from(u32_at(message, 68)?),
        timer,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_dump_message_is_read() {
        let mut message = vec![0u8; DIAG_MSG];
        message[0] = libc::AF_INET as u8;
        message[1] = 1;
        message[2] = 2; // keepalive timer
        message[4..6].copy_from_slice(&8080u16.to_be_bytes());
        message[6..8].copy_from_slice(&443u16.to_be_bytes());
        message[8..12].copy_from_slice(&[127, 0, 0, 1]);
        message[24..28].copy_from_slice(&[10, 0, 0, 2]);
        message[52..56].copy_from_slice(&59_000u32.to_ne_bytes());
        message[64..68].copy_from_slice(&1000u32.to_ne_bytes());
        message[68..72].copy_from_slice(&4242u32.to_ne_bytes());
        let mut datagram = ((NLMSG_HEADER + DIAG_MSG) as u32).to_ne_bytes().to_vec();
        datagram.extend_from_slice(&SOCK_DIAG_BY_FAMILY.to_ne_bytes());
        datagram.extend_from_slice(&[0; 10]);
        datagram.extend_from_slice(&message);
        let mut found = Vec::new();
        assert!(!parse(&datagram, &mut found).unwrap());
        assert_eq!(
            found,
            [Connection {
                local: "127.0.0.1:8080".parse().unwrap(),
                peer: "10.0.0.2:443".parse().unwrap(),
                inode: 4242,
                uid: 1000,
                timer: Timer::Keepalive(59_000),
            }]
        );
        // Truncated input: nothing, no panic.
        assert!(parse(&datagram[..40], &mut Vec::new()).unwrap());
    }

    #[test]
    fn this_hosts_table_is_readable() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let client = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let all = established().unwrap();
        assert!(
            all.iter().any(|c| c.local == client.local_addr().unwrap()),
            "{all:?}"
        );
    }
}
