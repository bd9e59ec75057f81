//! Addresses and networks of `KEEPALIVE_RULES`' `net=` condition. An IPv4
//! peer and its IPv4-mapped IPv6 form (`::ffff:a.b.c.d`, as Java uses) are
//! one peer: addresses are folded to IPv4, IPv4 networks match both forms,
//! and an IPv6 network matches an IPv4 peer when it holds the mapped form
//! (`::/0`, `::ffff:0:0/96`). A real IPv6 peer is never in an IPv4 network.

use crate::quantity::quote_value;
use std::fmt;
use std::net::{Ipv4Addr, Ipv6Addr};

/// An IP address, IPv4-mapped IPv6 addresses folded to IPv4 so that one
/// comparison decides and `::ffff:10.1.2.3` matches `net=10.0.0.0/8`. Held
/// as bits: matching is a mask and a compare.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Address {
    /// An IPv4 address (or an IPv4-mapped IPv6 one).
    V4(u32),
    /// Any other IPv6 address.
    V6(u128),
}

impl Address {
    /// An IPv4 address from its octets in network order.
    pub fn v4(octets: [u8; 4]) -> Address {
        Address::V4(u32::from_be_bytes(octets))
    }

    /// An IPv6 address from its octets in network order; a mapped one is
    /// folded to IPv4.
    pub fn v6(octets: [u8; 16]) -> Address {
        let address = Ipv6Addr::from(octets);
        match address.to_ipv4_mapped() {
            Some(v4) => Address::V4(v4.into()),
            None => Address::V6(address.into()),
        }
    }
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Address::V4(bits) => Ipv4Addr::from(bits).fmt(f),
            Address::V6(bits) => Ipv6Addr::from(bits).fmt(f),
        }
    }
}

/// `::ffff:a.b.c.d`, the IPv6 form of an IPv4 address.
fn mapped_bits(v4: u32) -> u128 {
    Ipv4Addr::from(v4).to_ipv6_mapped().into()
}

/// A CIDR network; host bits of the base are cleared at parse time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Network {
    base: Address,
    prefix: u8,
}

fn mask32(prefix: u8) -> u32 {
    u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0)
}

fn mask128(prefix: u8) -> u128 {
    u128::MAX.checked_shl(128 - u32::from(prefix)).unwrap_or(0)
}

impl Network {
    /// Whether `address` is inside this network.
    pub fn contains(&self, address: Address) -> bool {
        match (self.base, address) {
            (Address::V4(base), Address::V4(a)) => (base ^ a) & mask32(self.prefix) == 0,
            (Address::V6(base), Address::V6(a)) => (base ^ a) & mask128(self.prefix) == 0,
            // An IPv4 peer is also the IPv6 address ::ffff:a.b.c.d: an IPv6
            // network matches it when it holds that address (::/0 does).
            (Address::V6(base), Address::V4(a)) => {
                (base ^ mapped_bits(a)) & mask128(self.prefix) == 0
            }
            // A real IPv6 peer is never inside an IPv4 network.
            (Address::V4(_), Address::V6(_)) => false,
        }
    }

    /// `ADDRESS[/LENGTH]`; without a length, the single address. The error
    /// says what is wrong, for a rule's diagnostic.
    pub fn parse(text: &str) -> Result<Network, String> {
        let (address, prefix) = match text.split_once('/') {
            Some((address, prefix)) => (address, Some(prefix)),
            None => (text, None),
        };
        let parse_prefix = |max: u8| -> Result<u8, String> {
            let Some(prefix) = prefix else {
                return Ok(max);
            };
            let valid = !prefix.is_empty()
                && prefix.len() <= 3
                && prefix.bytes().all(|b| b.is_ascii_digit());
            match prefix.parse::<u8>() {
                Ok(length) if valid && length <= max => Ok(length),
                _ => Err(format!(
                    "prefix length {} is not 0..{max}",
                    quote_value(prefix)
                )),
            }
        };
        if let Ok(v4) = address.parse::<Ipv4Addr>() {
            let prefix = parse_prefix(32)?;
            let bits = u32::from(v4) & mask32(prefix);
            return Ok(Network {
                base: Address::V4(bits),
                prefix,
            });
        }
        if let Ok(v6) = address.parse::<Ipv6Addr>() {
            let prefix = parse_prefix(128)?;
            let bits = u128::from(v6) & mask128(prefix);
            // A network inside ::ffff:0:0/96 is an IPv4 network, as the
            // addresses it would match are folded to IPv4.
            if prefix >= 96 {
                if let Some(v4) = Ipv6Addr::from(bits).to_ipv4_mapped() {
                    return Ok(Network {
                        base: Address::V4(v4.into()),
                        prefix: prefix - 96,
                    });
                }
            }
            return Ok(Network {
                base: Address::V6(bits),
                prefix,
            });
        }
        Err(format!(
            "{} is not an IPv4 or IPv6 address",
            quote_value(address)
        ))
    }
}

impl fmt::Display for Network {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.base, self.prefix)
    }
}
