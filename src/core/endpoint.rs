//! The address and port in the bytes of a `struct sockaddr`: the one a
//! program passed to `connect()`, or the one `getpeername()` fills in. The
//! library reads the bytes (raw pointers, system calls); this parses them.

use crate::rules::Address;
use std::mem::size_of;

/// An IP address (mapped IPv6 folded to IPv4) and a port.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Endpoint {
    /// The address.
    pub address: Address,
    /// The port, in host order.
    pub port: u16,
}

/// The kernel's own minimum lengths: `sizeof(struct sockaddr_in)` and
/// RFC 2133's 24-byte `sockaddr_in6` (without `sin6_scope_id`).
const MIN_V4: usize = size_of::<libc::sockaddr_in>();
const MIN_V6: usize = 24;
/// The most bytes a parse looks at: a whole `sockaddr_in6`.
pub const MAX_READ: usize = size_of::<libc::sockaddr_in6>();

/// Parses the first bytes of a sockaddr: `None` for other families
/// (AF_UNSPEC dissolves a connection, AF_UNIX is no TCP) or too few bytes.
pub fn parse(bytes: &[u8]) -> Option<Endpoint> {
    let family = i32::from(u16::from_ne_bytes([*bytes.first()?, *bytes.get(1)?]));
    let port = u16::from_be_bytes([*bytes.get(2)?, *bytes.get(3)?]);
    let address = match family {
        libc::AF_INET if bytes.len() >= MIN_V4 => Address::v4(bytes[4..8].try_into().ok()?),
        libc::AF_INET6 if bytes.len() >= MIN_V6 => Address::v6(bytes[8..24].try_into().ok()?),
        _ => return None,
    };
    Some(Endpoint { address, port })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v4_bytes(octets: [u8; 4], port: u16) -> Vec<u8> {
        let mut bytes = vec![0u8; 16];
        bytes[..2].copy_from_slice(&(libc::AF_INET as u16).to_ne_bytes());
        bytes[2..4].copy_from_slice(&port.to_be_bytes());
        bytes[4..8].copy_from_slice(&octets);
        bytes
    }

    fn v6_bytes(text: &str, port: u16) -> Vec<u8> {
        let mut bytes = vec![0u8; 28];
        bytes[..2].copy_from_slice(&(libc::AF_INET6 as u16).to_ne_bytes());
        bytes[2..4].copy_from_slice(&port.to_be_bytes());
        bytes[8..24].copy_from_slice(&text.parse::<std::net::Ipv6Addr>().unwrap().octets());
        bytes
    }

    #[test]
    fn ipv4_ipv6_and_mapped() {
        let e = parse(&v4_bytes([127, 0, 0, 2], 5432)).unwrap();
        assert_eq!(e.address, Address::v4([127, 0, 0, 2]));
        assert_eq!(e.port, 5432);
        let e = parse(&v6_bytes("::1", 80)).unwrap();
        assert_eq!(e.address.to_string(), "::1");
        assert_eq!(e.port, 80);
        let e = parse(&v6_bytes("::ffff:127.0.0.2", 1)).unwrap();
        assert_eq!(e.address, Address::v4([127, 0, 0, 2]));
        // The 24-byte RFC 2133 form is accepted, as by the kernel.
        assert!(parse(&v6_bytes("::1", 80)[..24]).is_some());
    }

    #[test]
    fn short_or_foreign_addresses_are_none() {
        assert!(parse(&[]).is_none());
        assert!(parse(&v4_bytes([1, 2, 3, 4], 1)[..15]).is_none());
        assert!(parse(&v6_bytes("::1", 80)[..23]).is_none());
        let mut unspec = v4_bytes([1, 2, 3, 4], 1);
        unspec[..2].copy_from_slice(&(libc::AF_UNSPEC as u16).to_ne_bytes());
        assert!(parse(&unspec).is_none());
        let mut unix = v4_bytes([1, 2, 3, 4], 1);
        unix[..2].copy_from_slice(&(libc::AF_UNIX as u16).to_ne_bytes());
        assert!(parse(&unix).is_none());
    }
}
