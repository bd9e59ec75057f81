//! Addresses and networks of `KEEPALIVE_RULES`' `net=` condition. An IPv4
//! peer and its IPv4-mapped IPv6 form (`::ffff:a.b.c.d`, as Java uses) are
//! one peer: addresses are folded to IPv4, IPv4 networks match both forms,
//! and an IPv6 network matches an IPv4 peer when it holds the mapped form
//! (`::/0`, `::ffff:0:0/96`). A real IPv6 peer is never in an IPv4 network.

use crate::quantity::quote_value;
use std::fmt;
use std::net::{Ipv4Addr, Ipv6Addr};

/// An IP address, IPv4-mapped IPv6 addresses folded to IPv4 so that one
/// comparison decides and `::ffff:10.1.2.3` matches `net=10.0.0.0/8`.
/// Held as bits: matching is a mask and a compare (`bits()`).
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

impl Address {
    /// The address as 128 bits, an IPv4 one in its mapped form
    /// `::ffff:a.b.c.d`: one comparison decides any network (see `Network`).
    #[inline]
    pub fn bits(self) -> u128 {
        match self {
            Address::V4(v4) => MAPPED_V4 | u128::from(v4),
            Address::V6(bits) => bits,
        }
    }
}

/// `::ffff:0:0`, the prefix of IPv4-mapped IPv6 addresses.
const MAPPED_V4: u128 = 0xffff << 32;

/// A CIDR network; host bits of the base are cleared at parse time.
///
/// Matching is on 128 bits with the mask computed once: an IPv4 network is
/// its mapped form (`10.0.0.0/8` is `::ffff:10.0.0.0/104`), so it holds an
/// IPv4 peer but never a real IPv6 one (those are never in `::ffff:0:0/96`,
/// `Address::v6` folds them to IPv4), and an IPv6 network holds an IPv4
/// peer exactly when it holds its mapped form.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Network {
    base: Address,
    prefix: u8,
    /// `base.bits()`, and the mask of the prefix on 128 bits.
    bits: u128,
    mask: u128,
}

fn mask32(prefix: u8) -> u32 {
    u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0)
}

fn mask128(prefix: u8) -> u128 {
    u128::MAX.checked_shl(128 - u32::from(prefix)).unwrap_or(0)
}

impl Network {
    /// The network of `base` (host bits cleared) and `prefix` (of its own
    /// family: at most 32 for IPv4).
    fn new(base: Address, prefix: u8) -> Network {
        let (base, mask) = match base {
            Address::V4(v4) => (Address::V4(v4 & mask32(prefix)), mask128(96 + prefix)),
            Address::V6(v6) => (Address::V6(v6 & mask128(prefix)), mask128(prefix)),
        };
        Network {
            base,
            prefix,
            bits: base.bits(),
            mask,
        }
    }

    /// Whether `address` is inside this network.
    #[inline]
    pub fn contains(&self, address: Address) -> bool {
        self.contains_bits(address.bits())
    }

    /// `contains` for `Address::bits()`, computed once per connection.
    #[inline]
    pub fn contains_bits(&self, bits: u128) -> bool {
        (self.bits ^ bits) & self.mask == 0
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
            return Ok(Network::new(Address::V4(v4.into()), prefix));
        }
        if let Ok(v6) = address.parse::<Ipv6Addr>() {
            let prefix = parse_prefix(128)?;
            let bits = u128::from(v6) & mask128(prefix);
            // A network inside ::ffff:0:0/96 is an IPv4 network, as the
            // addresses it would match are folded to IPv4.
            if prefix >= 96 {
                if let Some(v4) = Ipv6Addr::from(bits).to_ipv4_mapped() {
                    return Ok(Network::new(Address::V4(v4.into()), prefix - 96));
                }
            }
            return Ok(Network::new(Address::V6(bits), prefix));
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
