//! Which sockets are ours to care about (which options: `options`). Pure functions of
//! the arguments a program passes, so every rule is unit-tested.

/// True for `socket(AF_INET|AF_INET6, SOCK_STREAM[|SOCK_NONBLOCK|SOCK_CLOEXEC],
/// 0|IPPROTO_TCP)`. The type carries flags in its high bits: mask them before
/// comparing, and compare for equality (`type & SOCK_STREAM` would also match
/// SOCK_RAW and SOCK_SEQPACKET, Debian libkeepalive0's bug).
#[inline]
pub fn is_tcp_socket_request(domain: i32, socket_type: i32, protocol: i32) -> bool {
    let base_type = socket_type & !(libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC);
    (domain == libc::AF_INET || domain == libc::AF_INET6)
        && base_type == libc::SOCK_STREAM
        && (protocol == 0 || protocol == libc::IPPROTO_TCP)
}

#[cfg(test)]
mod tests {
    use super::*;
    use libc::*;

    #[test]
    fn tcp_in_every_spelling() {
        for domain in [AF_INET, AF_INET6] {
            for flags in [0, SOCK_NONBLOCK, SOCK_CLOEXEC, SOCK_NONBLOCK | SOCK_CLOEXEC] {
                for protocol in [0, IPPROTO_TCP] {
                    assert!(is_tcp_socket_request(domain, SOCK_STREAM | flags, protocol));
                }
            }
        }
    }

    #[test]
    fn everything_else_is_left_alone() {
        let others = [
            (AF_INET, SOCK_DGRAM, 0),
            (AF_INET6, SOCK_DGRAM, IPPROTO_UDP),
            (AF_INET, SOCK_RAW, IPPROTO_TCP),
            (AF_INET6, SOCK_RAW | SOCK_CLOEXEC, IPPROTO_TCP),
            (AF_INET, SOCK_SEQPACKET, 0),
            (AF_INET, SOCK_STREAM, IPPROTO_SCTP),
            (AF_INET, SOCK_STREAM, 262), // MPTCP
            (AF_UNIX, SOCK_STREAM, 0),
            (AF_NETLINK, SOCK_RAW, 0),
            (AF_PACKET, SOCK_STREAM, 0),
        ];
        for (domain, socket_type, protocol) in others {
            assert!(
                !is_tcp_socket_request(domain, socket_type, protocol),
                "{domain} {socket_type} {protocol}"
            );
        }
    }
}
