//! The kernel's table of established TCP connections, read as `ss` reads
//! it: a NETLINK_SOCK_DIAG dump (inet_diag). Read-only, and it takes no
//! descriptor from any process. The keepalive timer the kernel reports is
//! all it tells of keepalive: whether it runs and when the next probe is
//! due (the configured idle/interval/count are not in inet_diag). Given the
//! descriptor of a socket storage map, it also asks for each socket's value
//! in that map (INET_DIAG_REQ_SK_BPF_STORAGES: our attachments' record).

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

const SOCK_DIAG_BY_FAMILY: u16 = 20;
const NLM_F_REQUEST: u16 = 1;
const NLM_F_DUMP: u16 = 0x300;
const NLMSG_HEADER: usize = 16;
const TCP_ESTABLISHED: u32 = 1;
/// Size of `struct inet_diag_msg` (the fixed part of each answer).
const DIAG_MSG: usize = 72;
/// Request attribute: socket storage maps whose values to return
/// (nested `SK_DIAG_BPF_STORAGE_REQ_MAP_FD`, 1, each a map descriptor).
const INET_DIAG_REQ_SK_BPF_STORAGES: u16 = 2;
const SK_DIAG_BPF_STORAGE_REQ_MAP_FD: u16 = 1;
const NLA_F_NESTED: u16 = 1 << 15;
/// Answer attribute: nested `SK_DIAG_BPF_STORAGE` (1), each holding
/// `SK_DIAG_BPF_STORAGE_MAP_ID` (2) and `SK_DIAG_BPF_STORAGE_MAP_VALUE` (3).
const INET_DIAG_SK_BPF_STORAGES: u16 = 20;
const SK_DIAG_BPF_STORAGE: u16 = 1;
const SK_DIAG_BPF_STORAGE_MAP_VALUE: u16 = 3;

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
    /// The socket's value in the storage map asked for, if it has one.
    pub storage: Option<Vec<u8>>,
}

/// Every established TCP connection of this network namespace, IPv4 and
/// IPv6, with each one's value in the socket storage map `storage` if one
/// is given (that needs CAP_BPF or CAP_SYS_ADMIN: EPERM without).
pub fn established(storage: Option<BorrowedFd>) -> io::Result<Vec<Connection>> {
    let mut all = dump(libc::AF_INET as u8, storage)?;
    all.extend(dump(libc::AF_INET6 as u8, storage)?);
    Ok(all)
}

/// The `inet_diag_req_v2` request, and the storage attribute if asked.
fn request(family: u8, storage: Option<BorrowedFd>) -> Vec<u8> {
    let attribute = if storage.is_some() { 4 + 8 } else { 0 };
    let length = NLMSG_HEADER + 56 + attribute;
    let mut request = Vec::with_capacity(length);
    request.extend_from_slice(&(length as u32).to_ne_bytes());
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
    if let Some(map) = storage {
        request.extend_from_slice(&12u16.to_ne_bytes());
        request.extend_from_slice(&(INET_DIAG_REQ_SK_BPF_STORAGES | NLA_F_NESTED).to_ne_bytes());
        request.extend_from_slice(&8u16.to_ne_bytes());
        request.extend_from_slice(&SK_DIAG_BPF_STORAGE_REQ_MAP_FD.to_ne_bytes());
        request.extend_from_slice(&(map.as_raw_fd() as u32).to_ne_bytes());
    }
    request
}

fn dump(family: u8, storage: Option<BorrowedFd>) -> io::Result<Vec<Connection>> {
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
    let request = request(family, storage);
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
        storage: attribute(&message[DIAG_MSG..], INET_DIAG_SK_BPF_STORAGES)
            .and_then(|storages| attribute(storages, SK_DIAG_BPF_STORAGE))
            .and_then(|storage| attribute(storage, SK_DIAG_BPF_STORAGE_MAP_VALUE))
            .map(<[u8]>::to_vec),
    })
}

/// The payload of the first netlink attribute of type `wanted` (flags
/// masked) in `attributes`.
fn attribute(mut attributes: &[u8], wanted: u16) -> Option<&[u8]> {
    while attributes.len() >= 4 {
        let length = u16::from_ne_bytes([attributes[0], attributes[1]]) as usize;
        let kind = u16::from_ne_bytes([attributes[2], attributes[3]]) & !(NLA_F_NESTED | 1 << 14);
        if length < 4 || length > attributes.len() {
            return None;
        }
        if kind == wanted {
            return Some(&attributes[4..length]);
        }
        attributes = attributes.get((length + 3) & !3..)?;
    }
    None
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
                storage: None,
            }]
        );
        // Truncated input: nothing, no panic.
        assert!(parse(&datagram[..40], &mut Vec::new()).unwrap());
    }

    #[test]
    fn a_sockets_storage_value_is_read_from_the_nested_attributes() {
        let nla = |kind: u16, payload: &[u8]| {
            let mut bytes = ((4 + payload.len()) as u16).to_ne_bytes().to_vec();
            bytes.extend_from_slice(&kind.to_ne_bytes());
            bytes.extend_from_slice(payload);
            bytes.resize((bytes.len() + 3) & !3, 0);
            bytes
        };
        let storage = [
            nla(2, &7u32.to_ne_bytes()),
            nla(SK_DIAG_BPF_STORAGE_MAP_VALUE, &[1, 2, 3, 4, 5, 6]),
        ]
        .concat();
        let storages = nla(SK_DIAG_BPF_STORAGE | NLA_F_NESTED, &storage);
        let mut message = vec![0u8; DIAG_MSG];
        message[0] = libc::AF_INET as u8;
        message.extend_from_slice(&nla(8, &[0; 1])); // INET_DIAG_SHUTDOWN
        message.extend_from_slice(&nla(INET_DIAG_SK_BPF_STORAGES | NLA_F_NESTED, &storages));
        let found = connection(&message).unwrap();
        assert_eq!(found.storage.as_deref(), Some(&[1, 2, 3, 4, 5, 6][..]));
        // Truncated attributes: no value, no panic.
        assert_eq!(connection(&message[..DIAG_MSG + 10]).unwrap().storage, None);
    }

    #[test]
    fn this_hosts_table_is_readable() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let client = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let all = established(None).unwrap();
        assert!(
            all.iter().any(|c| c.local == client.local_addr().unwrap()),
            "{all:?}"
        );
    }
}
