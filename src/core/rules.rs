//! Which connections get keepalive, and with which timers: the
//! `KEEPALIVE_DIRECTION` and `KEEPALIVE_RULES` settings. Pure code: the
//! grammar (parsed once, at start-up) and the matching (once per connection:
//! a walk over a short slice, no allocation, no lock, no system call).
//!
//! ```text
//! KEEPALIVE_DIRECTION = out | in | both
//! KEEPALIVE_RULES     = RULE [; RULE]...        first match wins
//! RULE                = MATCH : ACTION          (split at the last ':')
//! MATCH               = * | CONDITION [, CONDITION]...   (all must hold)
//! CONDITION           = dir=in | dir=out | net=ADDRESS[/LENGTH] | port=N[-M]
//! ACTION              = off | on | TIMER [, TIMER]...
//! TIMER               = idle=S | intvl=S | cnt=N | user_timeout=MS|auto
//! ```
//!
//! `net` is the other end (the destination of an outbound connection, the
//! peer of an inbound one); `port` is the service port (the one connected to,
//! or the one accepted on). An IPv4 peer and its IPv4-mapped IPv6 form
//! (`::ffff:a.b.c.d`, as Java uses) are one peer: IPv4 networks match both,
//! and so does any IPv6 network that holds `::ffff:a.b.c.d` (`::/0`,
//! `::ffff:0:0/96`); a real IPv6 peer is never in an IPv4 network. Connections
//! that no rule matches get the global settings, so an exclusion is one rule
//! and "only these" ends with `*:off`.

use crate::config::{self, Quantity, Settings, UserTimeout};
use std::fmt;

/// More rules than this are a mistake (and would make every connection walk
/// a long list); the rest are ignored with one line.
pub const MAX_RULES: usize = 64;

/// How much of a rule's text a diagnostic quotes: enough to recognise it,
/// short enough that the line always ends with what is valid.
const SHOWN_RULE_CHARS: usize = 60;

/// The grammar, for diagnostics: what a valid rule looks like.
pub const RULE_SYNTAX: &str = "expected MATCH:ACTION, MATCH being * or conditions \
     dir=in|out, net=ADDRESS[/LENGTH], port=N[-M] joined by commas, ACTION being off, on, \
     or idle=S, intvl=S, cnt=N, user_timeout=MS|auto joined by commas";

/// Which way a connection was made, seen from this program.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// The program called `connect()`.
    Out,
    /// The program got it from `accept()`.
    In,
}

/// `KEEPALIVE_DIRECTION`: the directions that get keepalive at all.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Directions {
    #[default]
    Both,
    Out,
    In,
}

impl Directions {
    pub fn includes(self, direction: Direction) -> bool {
        match self {
            Directions::Both => true,
            Directions::Out => direction == Direction::Out,
            Directions::In => direction == Direction::In,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Directions::Both => "both",
            Directions::Out => "out",
            Directions::In => "in",
        }
    }
}

/// Parses a `KEEPALIVE_DIRECTION` value.
pub fn parse_directions(text: &str) -> Option<Directions> {
    match text {
        "both" => Some(Directions::Both),
        "out" => Some(Directions::Out),
        "in" => Some(Directions::In),
        _ => None,
    }
}

/// An IP address, IPv4-mapped IPv6 addresses folded to IPv4 so that one
/// comparison decides and `::ffff:10.1.2.3` matches `net=10.0.0.0/8`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Address {
    V4(u32),
    V6(u128),
}

impl Address {
    pub fn v4(octets: [u8; 4]) -> Address {
        Address::V4(u32::from_be_bytes(octets))
    }

    pub fn v6(octets: [u8; 16]) -> Address {
        let bits = u128::from_be_bytes(octets);
        match mapped_ipv4(bits) {
            Some(v4) => Address::V4(v4),
            None => Address::V6(bits),
        }
    }
}

/// `::ffff:a.b.c.d`, the IPv6 form of an IPv4 address.
fn mapped_bits(v4: u32) -> u128 {
    0xffff << 32 | u128::from(v4)
}

/// The IPv4 address in `::ffff:a.b.c.d`, as `Ipv6Addr::to_ipv4_mapped`.
fn mapped_ipv4(bits: u128) -> Option<u32> {
    (bits >> 32 == 0xffff).then_some(bits as u32)
}

// Addresses are parsed and shown by hand rather than with std::net, whose
// parser and RFC 5952 printer would double this part of the library's size;
// the tests check both against std::net on many inputs, byte for byte.

/// `a.b.c.d` as `Ipv4Addr`'s `Display`.
fn write_ipv4(f: &mut fmt::Formatter<'_>, bits: u32) -> fmt::Result {
    let [a, b, c, d] = bits.to_be_bytes();
    write!(f, "{a}.{b}.{c}.{d}")
}

/// As `Ipv6Addr`'s `Display` (RFC 5952): lower-case groups without leading
/// zeros, the first longest run of two or more zero groups as `::`, and
/// `::ffff:a.b.c.d` for mapped addresses.
fn write_ipv6(f: &mut fmt::Formatter<'_>, bits: u128) -> fmt::Result {
    if let Some(v4) = mapped_ipv4(bits) {
        f.write_str("::ffff:")?;
        return write_ipv4(f, v4);
    }
    let groups: [u16; 8] = std::array::from_fn(|i| (bits >> (112 - 16 * i)) as u16);
    // The first longest run of zero groups: (start, length).
    let (mut longest, mut start, mut length) = ((0, 0), 0, 0);
    for (i, &group) in groups.iter().enumerate() {
        if group != 0 {
            length = 0;
            continue;
        }
        if length == 0 {
            start = i;
        }
        length += 1;
        if length > longest.1 {
            longest = (start, length);
        }
    }
    let (skip_from, skip_to) = if longest.1 > 1 {
        (longest.0, longest.0 + longest.1)
    } else {
        (8, 8)
    };
    let mut i = 0;
    while i < 8 {
        if i == skip_from {
            f.write_str("::")?;
            i = skip_to;
            continue;
        }
        if i > 0 && i != skip_to {
            f.write_str(":")?;
        }
        write!(f, "{:x}", groups[i])?;
        i += 1;
    }
    Ok(())
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Address::V4(bits) => write_ipv4(f, bits),
            Address::V6(bits) => write_ipv6(f, bits),
        }
    }
}

/// Digits in `radix` from `at`, as std::net's parser reads a number: one to
/// `max_digits` of them (more: no number), a leading zero only alone unless
/// `zero_prefix`. The value and where it ends.
fn parse_digits(
    text: &[u8],
    at: usize,
    radix: u32,
    max_digits: usize,
    zero_prefix: bool,
) -> Option<(u32, usize)> {
    let mut value = 0;
    let mut end = at;
    while let Some(digit) = text.get(end).and_then(|&b| char::from(b).to_digit(radix)) {
        value = value * radix + digit;
        end += 1;
        if end - at > max_digits {
            return None;
        }
    }
    let count = end - at;
    if count == 0 || (!zero_prefix && count > 1 && text[at] == b'0') {
        return None;
    }
    Some((value, end))
}

/// `a.b.c.d` from `at` (decimal octets, no leading zeros): the address and
/// where it ends.
fn parse_ipv4_at(text: &[u8], mut at: usize) -> Option<(u32, usize)> {
    let mut bits = 0;
    for i in 0..4 {
        if i > 0 {
            if text.get(at) != Some(&b'.') {
                return None;
            }
            at += 1;
        }
        let (octet, end) = parse_digits(text, at, 10, 3, false)?;
        if octet > 255 {
            return None;
        }
        bits = bits << 8 | octet;
        at = end;
    }
    Some((bits, at))
}

/// What `Ipv4Addr::from_str` accepts.
fn parse_ipv4(text: &str) -> Option<u32> {
    match parse_ipv4_at(text.as_bytes(), 0) {
        Some((bits, end)) if end == text.len() => Some(bits),
        _ => None,
    }
}

/// Colon-separated groups from `at` into `slots`, the last two of which may
/// be an embedded IPv4 address, as std::net's parser reads them: how many
/// slots were filled, whether with IPv4, and where the groups end.
fn parse_groups(text: &[u8], mut at: usize, slots: &mut [u16]) -> (usize, bool, usize) {
    let limit = slots.len();
    for i in 0..limit {
        let start = match i {
            0 => at,
            _ if text.get(at) == Some(&b':') => at + 1,
            _ => return (i, false, at),
        };
        if i + 1 < limit {
            if let Some((v4, end)) = parse_ipv4_at(text, start) {
                slots[i] = (v4 >> 16) as u16;
                slots[i + 1] = v4 as u16;
                return (i + 2, true, end);
            }
        }
        match parse_digits(text, start, 16, 4, true) {
            Some((group, end)) => {
                slots[i] = group as u16;
                at = end;
            }
            None => return (i, false, at),
        }
    }
    (limit, false, at)
}

/// What `Ipv6Addr::from_str` accepts: eight groups, or fewer around one
/// `::`; an IPv4 address may stand for the last two (not before the `::`).
fn parse_ipv6(text: &str) -> Option<u128> {
    let text = text.as_bytes();
    let mut groups = [0u16; 8];
    let (head, head_ipv4, mut end) = parse_groups(text, 0, &mut groups);
    if head < 8 {
        if head_ipv4 || text.get(end..end + 2) != Some(b"::".as_slice()) {
            return None;
        }
        // The :: stands for at least one zero group.
        let mut tail = [0u16; 7];
        let (tail_len, _, tail_end) = parse_groups(text, end + 2, &mut tail[..7 - head]);
        groups[8 - tail_len..].copy_from_slice(&tail[..tail_len]);
        end = tail_end;
    }
    (end == text.len()).then(|| groups.iter().fold(0, |bits, &g| bits << 16 | u128::from(g)))
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
}

impl fmt::Display for Network {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.base, self.prefix)
    }
}

/// `ADDRESS[/LENGTH]`; without a length, the single address.
fn parse_network(text: &str) -> Result<Network, String> {
    let (address, prefix) = match text.split_once('/') {
        Some((address, prefix)) => (address, Some(prefix)),
        None => (text, None),
    };
    let parse_prefix = |max: u8| -> Result<u8, String> {
        let Some(prefix) = prefix else {
            return Ok(max);
        };
        let valid =
            !prefix.is_empty() && prefix.len() <= 3 && prefix.bytes().all(|b| b.is_ascii_digit());
        match prefix.parse::<u8>() {
            Ok(length) if valid && length <= max => Ok(length),
            _ => Err(config::text(format_args!(
                "prefix length {} is not 0..{max}",
                config::quote_value(prefix)
            ))),
        }
    };
    if let Some(v4) = parse_ipv4(address) {
        let prefix = parse_prefix(32)?;
        let bits = v4 & mask32(prefix);
        return Ok(Network {
            base: Address::V4(bits),
            prefix,
        });
    }
    if let Some(v6) = parse_ipv6(address) {
        let prefix = parse_prefix(128)?;
        let bits = v6 & mask128(prefix);
        // A network inside ::ffff:0:0/96 is an IPv4 network, as the
        // addresses it would match are folded to IPv4.
        if prefix >= 96 {
            if let Some(v4) = mapped_ipv4(bits) {
                return Ok(Network {
                    base: Address::V4(v4),
                    prefix: prefix - 96,
                });
            }
        }
        return Ok(Network {
            base: Address::V6(bits),
            prefix,
        });
    }
    Err(config::text(format_args!(
        "{} is not an IPv4 or IPv6 address",
        config::quote_value(address)
    )))
}

/// `N` or `N-M`, 1..65535.
fn parse_ports(text: &str) -> Result<(u16, u16), String> {
    let port = |part: &str| -> Option<u16> {
        let digits =
            !part.is_empty() && part.len() <= 5 && part.bytes().all(|b| b.is_ascii_digit());
        part.parse::<u16>().ok().filter(|&p| digits && p >= 1)
    };
    let (low, high) = text.split_once('-').unwrap_or((text, text));
    match (port(low), port(high)) {
        (Some(low), Some(high)) if low <= high => Ok((low, high)),
        _ => Err(config::text(format_args!(
            "port {} is not N or N-M with 1 <= N <= M <= 65535",
            config::quote_value(text)
        ))),
    }
}

/// The timers a rule overrides; the others are the global settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Timers {
    pub idle_secs: Option<u32>,
    pub interval_secs: Option<u32>,
    pub count: Option<u32>,
    pub user_timeout: Option<UserTimeout>,
}

impl Timers {
    /// The global settings with this rule's timers put in.
    pub fn applied_to(&self, global: &Settings) -> Settings {
        Settings {
            idle_secs: self.idle_secs.or(global.idle_secs),
            interval_secs: self.interval_secs.or(global.interval_secs),
            count: self.count.or(global.count),
            user_timeout: self.user_timeout.or(global.user_timeout),
            ..global.clone()
        }
    }
}

/// What a matching rule does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Leave the connection exactly as the kernel and the program made it.
    Off,
    /// The global settings.
    On,
    /// The global settings with some timers replaced.
    Timers(Timers),
}

/// One parsed rule. `None` conditions always hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    /// Its position in `KEEPALIVE_RULES`, from 1, for messages.
    pub number: usize,
    pub direction: Option<Direction>,
    pub network: Option<Network>,
    pub ports: Option<(u16, u16)>,
    pub action: Action,
}

/// What is known of a connection when it is decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Connection {
    pub direction: Direction,
    /// The other end.
    pub remote: Address,
    /// The service port: the remote one for outbound, the local one for
    /// inbound; `None` when it was not needed (no rule asks) or not known.
    pub port: Option<u16>,
}

impl Rule {
    pub fn matches(&self, connection: &Connection) -> bool {
        self.direction.map_or(true, |d| d == connection.direction)
            && self
                .network
                .map_or(true, |network| network.contains(connection.remote))
            && self.ports.map_or(true, |(low, high)| {
                connection.port.is_some_and(|p| low <= p && p <= high)
            })
    }

    /// Whether deciding an inbound connection needs its local port.
    fn asks_port_of(&self, direction: Direction) -> bool {
        self.ports.is_some() && self.direction.map_or(true, |d| d == direction)
    }
}

/// The canonical spelling: what `--check` and debug lines show.
impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut first = true;
        let mut separator = |f: &mut fmt::Formatter<'_>| {
            let text = if first { "" } else { "," };
            first = false;
            f.write_str(text)
        };
        if let Some(direction) = self.direction {
            separator(f)?;
            let name = if direction == Direction::Out {
                "out"
            } else {
                "in"
            };
            write!(f, "dir={name}")?;
        }
        if let Some(network) = self.network {
            separator(f)?;
            write!(f, "net={network}")?;
        }
        if let Some((low, high)) = self.ports {
            separator(f)?;
            if low == high {
                write!(f, "port={low}")?;
            } else {
                write!(f, "port={low}-{high}")?;
            }
        }
        if first {
            f.write_str("*")?;
        }
        f.write_str(":")?;
        match self.action {
            Action::Off => f.write_str("off"),
            Action::On => f.write_str("on"),
            Action::Timers(timers) => {
                let mut items = 0;
                let mut item =
                    |f: &mut fmt::Formatter<'_>, key: &str, value: fmt::Arguments<'_>| {
                        let comma = if items == 0 { "" } else { "," };
                        items += 1;
                        write!(f, "{comma}{key}={value}")
                    };
                if let Some(idle) = timers.idle_secs {
                    item(f, "idle", format_args!("{idle}"))?;
                }
                if let Some(interval) = timers.interval_secs {
                    item(f, "intvl", format_args!("{interval}"))?;
                }
                if let Some(count) = timers.count {
                    item(f, "cnt", format_args!("{count}"))?;
                }
                match timers.user_timeout {
                    Some(UserTimeout::Millis(ms)) => item(f, "user_timeout", format_args!("{ms}")),
                    Some(UserTimeout::Auto) => item(f, "user_timeout", format_args!("auto")),
                    None => Ok(()),
                }
            }
        }
    }
}

/// Why a connection gets what it gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// `KEEPALIVE_DIRECTION` excludes its direction: left alone.
    WrongDirection,
    /// No rule matched: the global settings.
    Unmatched,
    /// The rule at this index of `Selection::rules` matched.
    Matched(usize),
}

/// `KEEPALIVE_DIRECTION` and `KEEPALIVE_RULES` as understood.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Selection {
    pub directions: Directions,
    pub rules: Vec<Rule>,
}

impl Selection {
    /// True when every TCP connection gets the global settings: the
    /// library then configures sockets at `socket()`, as it always did.
    pub fn is_everything(&self) -> bool {
        self.directions == Directions::Both && self.rules.is_empty()
    }

    /// The first matching rule, in order. Allocation- and lock-free.
    pub fn decide(&self, connection: &Connection) -> Decision {
        if !self.directions.includes(connection.direction) {
            return Decision::WrongDirection;
        }
        match self.rules.iter().position(|rule| rule.matches(connection)) {
            Some(index) => Decision::Matched(index),
            None => Decision::Unmatched,
        }
    }

    /// The decision for every connection in `direction`, if it does not
    /// depend on the connection's addresses or port. For inbound, it lets a
    /// listener be configured once at `listen()` (its connections inherit
    /// the options) instead of each connection at `accept()`.
    pub fn decision_without_address(&self, direction: Direction) -> Option<Decision> {
        if !self.directions.includes(direction) {
            return Some(Decision::WrongDirection);
        }
        for (index, rule) in self.rules.iter().enumerate() {
            if rule.direction.is_some_and(|d| d != direction) {
                continue;
            }
            if rule.network.is_some() || rule.ports.is_some() {
                return None;
            }
            return Some(Decision::Matched(index));
        }
        Some(Decision::Unmatched)
    }

    /// Whether deciding a connection in `direction` may need its service
    /// port (for inbound, a `getsockname()`).
    pub fn needs_port(&self, direction: Direction) -> bool {
        self.directions.includes(direction)
            && self.rules.iter().any(|rule| rule.asks_port_of(direction))
    }
}

/// The condition and action keys a rule may use, for "given twice".
fn once<T>(slot: &mut Option<T>, key: &str, value: T) -> Result<(), String> {
    if slot.is_some() {
        return Err(config::text(format_args!("{key} is given twice")));
    }
    *slot = Some(value);
    Ok(())
}

fn parse_match(text: &str, rule: &mut Rule) -> Result<(), String> {
    if text == "*" {
        return Ok(());
    }
    for condition in text.split(',').map(str::trim) {
        let Some((key, value)) = condition.split_once('=') else {
            return Err(if condition == "*" {
                "* stands alone".to_string()
            } else {
                config::text(format_args!(
                    "condition {} is not KEY=VALUE",
                    config::quote_value(condition)
                ))
            });
        };
        let value = value.trim();
        match key.trim() {
            "dir" => {
                let direction = match value {
                    "out" => Direction::Out,
                    "in" => Direction::In,
                    _ => {
                        return Err(config::text(format_args!(
                            "dir={} is not in or out",
                            config::quote_value(value)
                        )))
                    }
                };
                once(&mut rule.direction, "dir", direction)?;
            }
            "net" => once(&mut rule.network, "net", parse_network(value)?)?,
            "port" => once(&mut rule.ports, "port", parse_ports(value)?)?,
            other => {
                return Err(config::text(format_args!(
                    "unknown condition {}",
                    config::quote_value(other)
                )))
            }
        }
    }
    Ok(())
}

fn parse_action(text: &str) -> Result<Action, String> {
    match text {
        "off" => return Ok(Action::Off),
        "on" => return Ok(Action::On),
        _ => {}
    }
    let mut timers = Timers::default();
    for item in text.split(',').map(str::trim) {
        let Some((key, value)) = item.split_once('=') else {
            return Err(config::text(format_args!(
                "action {} is not off, on or TIMER=VALUE",
                config::quote_value(item)
            )));
        };
        let (key, value) = (key.trim(), value.trim());
        let quantity = match key {
            "idle" => Quantity::Seconds {
                max: config::MAX_KEEPIDLE_SECS,
            },
            "intvl" => Quantity::Seconds {
                max: config::MAX_KEEPINTVL_SECS,
            },
            "cnt" => Quantity::Count {
                max: config::MAX_KEEPCNT,
            },
            "user_timeout" => Quantity::Millis {
                max: config::MAX_USER_TIMEOUT_MS,
            },
            _ => {
                return Err(config::text(format_args!(
                    "unknown action {}",
                    config::quote_value(key)
                )))
            }
        };
        let bad = || {
            config::text(format_args!(
                "{key}={}: expected {}",
                config::quote_value(value),
                quantity.describe()
            ))
        };
        match key {
            "idle" => once(
                &mut timers.idle_secs,
                key,
                config::parse_quantity(value, quantity).ok_or_else(bad)?,
            )?,
            "intvl" => once(
                &mut timers.interval_secs,
                key,
                config::parse_quantity(value, quantity).ok_or_else(bad)?,
            )?,
            "cnt" => once(
                &mut timers.count,
                key,
                config::parse_quantity(value, quantity).ok_or_else(bad)?,
            )?,
            _ => once(
                &mut timers.user_timeout,
                key,
                config::parse_user_timeout(value).ok_or_else(bad)?,
            )?,
        }
    }
    Ok(Action::Timers(timers))
}

/// One rule's text (already trimmed, not empty).
fn parse_rule(text: &str, number: usize) -> Result<Rule, String> {
    // IPv6 addresses hold colons, actions never do: split at the last one.
    let Some((matcher, action)) = text.rsplit_once(':') else {
        return Err("no ':' between the match and the action".to_string());
    };
    let mut rule = Rule {
        number,
        direction: None,
        network: None,
        ports: None,
        action: parse_action(action.trim())?,
    };
    parse_match(matcher.trim(), &mut rule)?;
    Ok(rule)
}

/// What a bad rule's author probably meant, for the two common mistakes:
/// rules joined by a comma instead of `;` (`net=10.0.0.0/8:off, *:on`), and
/// conditions joined by a space instead of a comma (`dir=out port=22:off`).
fn likely_mistake(rule: &str) -> Option<&'static str> {
    let (matcher, _) = rule.rsplit_once(':')?;
    let ends_an_action = |text: &str| {
        let action = text.trim();
        ["off", "on"].contains(&action)
            || ["idle=", "intvl=", "cnt=", "user_timeout="]
                .iter()
                .any(|timer| action.starts_with(timer))
    };
    // `...:off, next...`: an action followed by a comma inside the match.
    let comma_after_action = matcher.split(',').any(|piece| {
        piece
            .rsplit_once(':')
            .is_some_and(|(_, action)| ends_an_action(action))
    });
    if comma_after_action {
        return Some("did you mean ';' between rules? ");
    }
    let space_between_conditions = matcher.split(',').any(|condition| {
        let mut words = condition.split_whitespace();
        words.next().is_some() && words.any(|word| word.contains('='))
    });
    space_between_conditions.then_some("did you mean ',' between conditions? ")
}

/// Parses `KEEPALIVE_RULES` (named `variable` in messages). Empty rules
/// (`;;`, a trailing `;`) are skipped; each bad rule gets one line and is
/// dropped, the others keep their order and their numbers.
pub fn parse_rules(variable: &str, text: &str) -> (Vec<Rule>, Vec<String>) {
    let mut rules = Vec::new();
    let mut diagnostics = Vec::new();
    let pieces = text.split(';').map(str::trim).filter(|p| !p.is_empty());
    for (index, piece) in pieces.enumerate() {
        let number = index + 1;
        if number > MAX_RULES {
            diagnostics.push(config::text(format_args!(
                "libkeepalive: {variable}: more than {MAX_RULES} rules; ignoring rule \
                 {number} and every later one"
            )));
            break;
        }
        match parse_rule(piece, number) {
            Ok(rule) => rules.push(rule),
            Err(reason) => diagnostics.push(config::text(format_args!(
                "libkeepalive: {variable}: rule {number} {} is not valid: {reason}; \
                 {}ignoring this rule; {RULE_SYNTAX}",
                config::quote_value_up_to(piece, SHOWN_RULE_CHARS),
                likely_mistake(piece).unwrap_or("")
            ))),
        }
    }
    (rules, diagnostics)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{Ipv4Addr, Ipv6Addr};

    fn parse_ok(text: &str) -> Vec<Rule> {
        let (rules, diagnostics) = parse_rules("KEEPALIVE_RULES", text);
        assert!(diagnostics.is_empty(), "{text}: {diagnostics:?}");
        rules
    }

    fn shown(text: &str) -> Vec<String> {
        parse_ok(text).iter().map(Rule::to_string).collect()
    }

    fn v4(text: &str) -> Address {
        Address::v4(text.parse::<Ipv4Addr>().unwrap().octets())
    }

    fn v6(text: &str) -> Address {
        Address::v6(text.parse::<Ipv6Addr>().unwrap().octets())
    }

    fn out(remote: Address, port: u16) -> Connection {
        Connection {
            direction: Direction::Out,
            remote,
            port: Some(port),
        }
    }

    /// A small deterministic generator for the comparisons with std::net.
    struct Lcg(u64);

    impl Lcg {
        fn next(&mut self) -> u64 {
            self.0 = self
                .0
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            self.0 >> 11
        }

        fn below(&mut self, n: usize) -> usize {
            (self.next() % n as u64) as usize
        }
    }

    /// Our parsers accept exactly what std::net's do, with the same value.
    /// Whether either accepted it.
    fn check_parse(text: &str) -> bool {
        assert_eq!(
            parse_ipv4(text),
            text.parse::<Ipv4Addr>().ok().map(u32::from),
            "IPv4 {text:?}"
        );
        assert_eq!(
            parse_ipv6(text),
            text.parse::<Ipv6Addr>().ok().map(u128::from),
            "IPv6 {text:?}"
        );
        parse_ipv4(text).is_some() || parse_ipv6(text).is_some()
    }

    #[test]
    fn addresses_parse_exactly_as_std_net_does() {
        for text in [
            "",
            "0.0.0.0",
            "255.255.255.255",
            "256.0.0.0",
            "1.2.3",
            "1.2.3.4.5",
            "01.2.3.4",
            "1.2.3.04",
            "1.2.3.0",
            "1..2.3",
            "1.2.3.4 ",
            " 1.2.3.4",
            "+1.2.3.4",
            "1.2.3.-4",
            "1000.2.3.4",
            "0x1.2.3.4",
            "::",
            ":::",
            "::1",
            "1::",
            "1:2:3:4:5:6:7:8",
            "1:2:3:4:5:6:7:8:9",
            "1:2:3:4:5:6:7::",
            "::2:3:4:5:6:7:8",
            "1:2:3:4:5:6:7:8::",
            "::1:2:3:4:5:6:7:8",
            "1::2::3",
            "12345::",
            "::12345",
            "0000:0000:0000:0000:0000:0000:0000:0001",
            "00000::",
            "ABCD:ef01::",
            "g::",
            "::ffff:1.2.3.4",
            "::ffff:1.2.3",
            "::ffff:01.2.3.4",
            "::1.2.3.4",
            "1.2.3.4::",
            "1:2:3:4:5:6:1.2.3.4",
            "1:2:3:4:5:6:7:1.2.3.4",
            "1:2:3:4:5::1.2.3.4",
            "1:2:3:4:5:6::1.2.3.4",
            "::1.2.3.4:5",
            "fe80::1%eth0",
            "[::1]",
            "::ffff:10.0.0.0",
            "1:2:3:4:5:6:7:8 ",
            ":1::",
            "1:",
            ":1",
            "\u{663}::",
        ] {
            check_parse(text);
        }
        let mut valid = 0;
        // Every string of up to five characters over a telling alphabet.
        let alphabet = ['0', '1', '2', '5', 'a', 'F', 'g', ':', '.', '/'];
        let mut texts = vec![String::new()];
        for _ in 0..5 {
            let mut longer = Vec::new();
            for text in &texts {
                for c in alphabet {
                    longer.push(format!("{text}{c}"));
                }
            }
            texts = longer;
            for text in &texts {
                valid += usize::from(check_parse(text));
            }
        }
        assert!(valid > 1000, "{valid}");
        // Random sequences of address-like pieces.
        let pieces = [
            "0",
            "1",
            "00",
            "01",
            "255",
            "256",
            "999",
            "1000",
            "ffff",
            "FfFf",
            "12345",
            "abcde",
            "1.2.3.4",
            "0.0.0.0",
            "255.255.255.255",
            "::",
            ":",
            ".",
            "::ffff:",
            "1:2:3:4",
            "g",
            " ",
            "-",
            "+",
            "7",
        ];
        let mut random = Lcg(0x5eed);
        for _ in 0..200_000 {
            let count = 1 + random.below(9);
            let text: String = (0..count)
                .map(|_| pieces[random.below(pieces.len())])
                .collect();
            valid += usize::from(check_parse(&text));
        }
        assert!(valid > 3000, "{valid}");
    }

    /// A random address with runs of zero groups, as rules and peers have.
    fn random_v6(random: &mut Lcg) -> u128 {
        let mut bits = 0u128;
        for _ in 0..8 {
            let group = match random.below(4) {
                0 | 1 => 0,
                2 => random.next() as u16 & 0xf,
                _ => random.next() as u16,
            };
            bits = bits << 16 | u128::from(group);
        }
        match random.below(8) {
            0 => 0xffff << 32 | bits & 0xffff_ffff,
            1 => bits & 0xffff_ffff,
            _ => bits,
        }
    }

    #[test]
    fn addresses_print_exactly_as_std_net_does() {
        let mut random = Lcg(7);
        let mut values: Vec<u128> = vec![0, 1, u128::MAX, 0xffff << 32, 1 << 112, 1 << 16];
        values.extend((0..100_000).map(|_| random_v6(&mut random)));
        for bits in values {
            let std_text = Ipv6Addr::from(bits).to_string();
            assert_eq!(Address::V6(bits).to_string(), std_text, "{bits:#x}");
            let v4 = bits as u32;
            assert_eq!(Address::V4(v4).to_string(), Ipv4Addr::from(v4).to_string());
            // And what std prints, ours reads back (and so does std).
            check_parse(&std_text);
            check_parse(&Ipv4Addr::from(v4).to_string());
            // Small edits of valid addresses: one character dropped,
            // doubled or replaced.
            let bytes = std_text.as_bytes();
            let at = random.below(bytes.len());
            let replacement = [b'0', b'f', b':', b'.', b'1', b'9'][random.below(6)];
            for edited in [
                [&bytes[..at], &bytes[at + 1..]].concat(),
                [&bytes[..=at], &bytes[at..]].concat(),
                [&bytes[..at], &[replacement], &bytes[at + 1..]].concat(),
            ] {
                check_parse(std::str::from_utf8(&edited).unwrap());
            }
        }
    }

    #[test]
    fn the_issues_example() {
        let selection = Selection {
            directions: Directions::Both,
            rules: parse_ok("net=10.0.0.0/8,port=5432:idle=60; net=::1/128:off; *:idle=200"),
        };
        assert_eq!(
            selection.decide(&out(v4("10.1.1.1"), 5432)),
            Decision::Matched(0)
        );
        assert_eq!(
            selection.decide(&out(v6("::1"), 5432)),
            Decision::Matched(1)
        );
        assert_eq!(
            selection.decide(&out(v4("127.0.0.1"), 22)),
            Decision::Matched(2)
        );
    }

    #[test]
    fn canonical_spelling_round_trips() {
        let text = "net=10.0.0.0/8,port=5432:idle=60; net=::1/128:off; dir=in,port=8000-8099:on; \
                    *:idle=200,intvl=10,cnt=3,user_timeout=auto";
        let canonical = shown(text);
        assert_eq!(
            canonical,
            [
                "net=10.0.0.0/8,port=5432:idle=60",
                "net=::1/128:off",
                "dir=in,port=8000-8099:on",
                "*:idle=200,intvl=10,cnt=3,user_timeout=auto",
            ]
        );
        assert_eq!(shown(&canonical.join(";")), canonical);
    }

    #[test]
    fn spaces_suffixes_and_empty_rules() {
        assert_eq!(
            shown(" ; net = 10.1.2.3 , port = 22 : idle = 5m , user_timeout = 2s ;; "),
            ["net=10.1.2.3/32,port=22:idle=300,user_timeout=2000"]
        );
        assert!(parse_ok("").is_empty());
        assert!(parse_ok(" ; ;").is_empty());
    }

    #[test]
    fn host_bits_are_cleared_and_lengths_default_to_the_address() {
        assert_eq!(shown("net=10.1.2.3/8:off"), ["net=10.0.0.0/8:off"]);
        assert_eq!(shown("net=fe80::1:off"), ["net=fe80::1/128:off"]);
        assert_eq!(shown("net=fe80::1/10:off"), ["net=fe80::/10:off"]);
        assert_eq!(shown("net=0.0.0.0/0:off"), ["net=0.0.0.0/0:off"]);
    }

    #[test]
    fn mapped_networks_are_ipv4_networks() {
        assert_eq!(shown("net=::ffff:10.0.0.0/104:off"), ["net=10.0.0.0/8:off"]);
        assert_eq!(shown("net=::ffff:127.0.0.2:off"), ["net=127.0.0.2/32:off"]);
        // Wider than the mapped range: an IPv6 network.
        assert_eq!(shown("net=::ffff:0:0/95:off"), ["net=::fffe:0:0/95:off"]);
    }

    #[test]
    fn matching_networks_ports_and_directions() {
        let rules = parse_ok(
            "net=10.0.0.0/8,port=5432:idle=60; net=::1:off; dir=in,port=80:on; *:idle=200",
        );
        let selection = Selection {
            directions: Directions::Both,
            rules,
        };
        assert_eq!(
            selection.decide(&out(v4("10.200.0.1"), 5432)),
            Decision::Matched(0)
        );
        assert_eq!(
            selection.decide(&out(v4("10.200.0.1"), 5433)),
            Decision::Matched(3)
        );
        assert_eq!(
            selection.decide(&out(v4("11.0.0.1"), 5432)),
            Decision::Matched(3)
        );
        assert_eq!(selection.decide(&out(v6("::1"), 1)), Decision::Matched(1));
        assert_eq!(selection.decide(&out(v6("::2"), 1)), Decision::Matched(3));
        let inbound = Connection {
            direction: Direction::In,
            remote: v4("192.0.2.1"),
            port: Some(80),
        };
        assert_eq!(selection.decide(&inbound), Decision::Matched(2));
        assert_eq!(
            selection.decide(&Connection {
                direction: Direction::Out,
                ..inbound
            }),
            Decision::Matched(3)
        );
        // A port rule never matches when the port is unknown.
        assert_eq!(
            selection.decide(&Connection {
                port: None,
                ..inbound
            }),
            Decision::Matched(3)
        );
    }

    #[test]
    fn an_ipv4_peer_is_also_its_mapped_ipv6_address() {
        let selection = Selection {
            directions: Directions::Both,
            rules: parse_ok("net=127.0.0.2/32:off; net=::/0:idle=9"),
        };
        assert_eq!(v6("::ffff:127.0.0.2"), v4("127.0.0.2"));
        assert_eq!(
            selection.decide(&out(v6("::ffff:127.0.0.2"), 80)),
            Decision::Matched(0)
        );
        // ::/0 holds every IPv6 address, ::ffff:127.0.0.3 among them.
        for peer in [v6("::ffff:127.0.0.3"), v4("127.0.0.3")] {
            assert_eq!(selection.decide(&out(peer, 80)), Decision::Matched(1));
        }
        // The same answer for every network that holds the mapped form or not.
        for (network, holds_10_1_2_3) in [
            ("::/0", true),
            ("::/64", true),
            ("::ffff:0:0/96", true),
            ("::ffff:10.0.0.0/104", true),
            ("::ffff:11.0.0.0/104", false),
            ("2001:db8::/32", false),
            ("::/96", false),
            ("10.0.0.0/8", true),
            ("0.0.0.0/0", true),
        ] {
            let net = parse_network(network).unwrap();
            assert_eq!(net.contains(v4("10.1.2.3")), holds_10_1_2_3, "{network}");
            assert_eq!(
                net.contains(v6("::ffff:10.1.2.3")),
                holds_10_1_2_3,
                "{network}"
            );
        }
        assert_eq!(
            selection.decide(&out(v6("2001:db8::1"), 80)),
            Decision::Matched(1)
        );
    }

    #[test]
    fn every_bad_rule_line_ends_with_the_grammar_however_long_the_rule() {
        let long_net = format!("net={}:off", "1".repeat(5000));
        let long_condition = format!("{}=1:off", "x".repeat(5000));
        let long_timer = format!("*:idle={}", "9".repeat(5000));
        for text in [long_net, long_condition, long_timer] {
            let (_, diagnostics) = parse_rules("KEEPALIVE_RULES", &text);
            assert_eq!(diagnostics.len(), 1);
            let line = &diagnostics[0];
            assert!(line.ends_with(RULE_SYNTAX), "{line}");
            assert!(line.len() < 600, "{} bytes: {line}", line.len());
            assert!(line.contains("(5"), "the length is shown: {line}");
        }
    }

    #[test]
    fn the_two_common_mistakes_get_a_hint() {
        for (text, hint) in [
            (
                "net=10.0.0.0/8:off, *:on",
                "did you mean ';' between rules?",
            ),
            (
                "port=22:idle=60,port=80:off",
                "did you mean ';' between rules?",
            ),
            (
                "dir=out port=22:off",
                "did you mean ',' between conditions?",
            ),
            (
                "net=10.0.0.0/8 port=22:idle=5",
                "did you mean ',' between conditions?",
            ),
        ] {
            let (_, diagnostics) = parse_rules("KEEPALIVE_RULES", text);
            assert_eq!(diagnostics.len(), 1, "{text}");
            assert!(diagnostics[0].contains(hint), "{text}: {}", diagnostics[0]);
            assert_eq!(diagnostics[0].matches("expected MATCH:ACTION").count(), 1);
        }
        for text in ["net=10.0.0.300:off", "dir=sideways:off", "*:idle=0"] {
            let (_, diagnostics) = parse_rules("KEEPALIVE_RULES", text);
            assert!(!diagnostics[0].contains("did you mean"), "{text}");
        }
    }

    #[test]
    fn edges_of_networks() {
        let net = parse_network("192.168.0.0/23").unwrap();
        assert!(net.contains(v4("192.168.1.255")));
        assert!(!net.contains(v4("192.168.2.0")));
        assert!(!net.contains(v6("2001:db8::1")));
        let all4 = parse_network("0.0.0.0/0").unwrap();
        assert!(all4.contains(v4("255.255.255.255")));
        assert!(!all4.contains(v6("::")));
        let net6 = parse_network("2001:db8::/127").unwrap();
        assert!(net6.contains(v6("2001:db8::1")));
        assert!(!net6.contains(v6("2001:db8::2")));
        let all6 = parse_network("::/0").unwrap();
        assert!(all6.contains(v6("ffff::")));
        assert!(all6.contains(v4("192.0.2.1")));
    }

    #[test]
    fn direction_setting() {
        for (text, directions) in [
            ("both", Directions::Both),
            ("out", Directions::Out),
            ("in", Directions::In),
        ] {
            assert_eq!(parse_directions(text), Some(directions));
            assert_eq!(directions.name(), text);
        }
        for bad in ["", "OUT", "inbound", " out"] {
            assert_eq!(parse_directions(bad), None);
        }
        let out_only = Selection {
            directions: Directions::Out,
            rules: Vec::new(),
        };
        assert_eq!(
            out_only.decide(&Connection {
                direction: Direction::In,
                remote: v4("1.2.3.4"),
                port: None
            }),
            Decision::WrongDirection
        );
        assert_eq!(out_only.decide(&out(v4("1.2.3.4"), 1)), Decision::Unmatched);
        assert!(!out_only.is_everything());
        assert!(Selection::default().is_everything());
    }

    #[test]
    fn decisions_without_address() {
        let selection = |directions, text| Selection {
            directions,
            rules: parse_ok(text),
        };
        let s = selection(Directions::Out, "");
        assert_eq!(
            s.decision_without_address(Direction::In),
            Some(Decision::WrongDirection)
        );
        assert_eq!(
            s.decision_without_address(Direction::Out),
            Some(Decision::Unmatched)
        );
        let s = selection(
            Directions::Both,
            "dir=out,net=10.0.0.0/8:off; dir=in:idle=5; *:off",
        );
        assert_eq!(
            s.decision_without_address(Direction::In),
            Some(Decision::Matched(1))
        );
        assert_eq!(s.decision_without_address(Direction::Out), None);
        let s = selection(Directions::Both, "port=22:off");
        assert_eq!(s.decision_without_address(Direction::In), None);
        assert!(s.needs_port(Direction::In));
        let s = selection(Directions::Both, "dir=out,port=22:off");
        assert!(!s.needs_port(Direction::In));
        assert!(s.needs_port(Direction::Out));
        let s = selection(Directions::Out, "port=22:off");
        assert!(!s.needs_port(Direction::In));
    }

    #[test]
    fn each_bad_rule_gets_one_line_and_only_it_is_dropped() {
        let bad = [
            ("net=10.0.0.0/33:off", "prefix length"),
            ("net=10.0.0.256:off", "not an IPv4 or IPv6 address"),
            ("net=10.0.0.0/:off", "prefix length"),
            ("net=10.0.0.0/+8:off", "prefix length"),
            ("net=::1/129:off", "prefix length"),
            ("net=localhost:off", "not an IPv4 or IPv6 address"),
            ("port=0:off", "port"),
            ("port=65536:off", "port"),
            ("port=20-10:off", "port"),
            ("port=+5:off", "port"),
            ("dir=sideways:off", "dir="),
            ("dst=10.0.0.0/8:off", "unknown condition"),
            ("*,port=5:off", "* stands alone"),
            ("net=1.2.3.4,net=1.2.3.5:off", "net is given twice"),
            ("port=5", "no ':'"),
            ("*", "no ':'"),
            ("*:", "action"),
            ("*:idle=0", "1..32767"),
            ("*:idle=60,idle=30", "idle is given twice"),
            ("*:cnt=5s", "1..127"),
            ("*:user_timeout=-1", "auto"),
            ("*:keepalive=1", "unknown action"),
            ("*:off,idle=5", "action"),
            (":off", "condition"),
        ];
        for (text, reason) in bad {
            let value = format!("net=1.1.1.1:off; {text}; *:idle=7");
            let (rules, diagnostics) = parse_rules("KEEPALIVE_RULES", &value);
            assert_eq!(diagnostics.len(), 1, "{text}: {diagnostics:?}");
            let line = &diagnostics[0];
            assert!(
                line.starts_with("libkeepalive: KEEPALIVE_RULES: rule 2 \""),
                "{line}"
            );
            assert!(line.contains(reason), "{text}: {line}");
            assert!(line.contains("expected MATCH:ACTION"), "{line}");
            assert!(line.ends_with(RULE_SYNTAX), "{line}");
            assert!(!line.contains('\n'));
            assert!(line.len() < 500, "{}", line.len());
            let numbers: Vec<_> = rules.iter().map(|r| r.number).collect();
            assert_eq!(numbers, [1, 3], "{text}");
        }
    }

    #[test]
    fn too_many_rules_is_one_line() {
        let text = vec!["*:on"; MAX_RULES + 10].join(";");
        let (rules, diagnostics) = parse_rules("KEEPALIVE_RULES", &text);
        assert_eq!(rules.len(), MAX_RULES);
        assert_eq!(diagnostics.len(), 1);
        assert!(diagnostics[0].contains("more than 64 rules"));
    }

    #[test]
    fn timers_fall_back_to_the_global_settings() {
        let global = Settings {
            idle_secs: Some(60),
            count: Some(4),
            ..Settings::default()
        };
        let timers = Timers {
            idle_secs: Some(200),
            user_timeout: Some(UserTimeout::Auto),
            ..Timers::default()
        };
        let merged = timers.applied_to(&global);
        assert_eq!(merged.idle_secs, Some(200));
        assert_eq!(merged.count, Some(4));
        assert_eq!(merged.interval_secs, None);
        assert_eq!(merged.user_timeout, Some(UserTimeout::Auto));
        assert!(merged.enabled);
    }

    #[test]
    fn parser_never_panics_on_short_inputs() {
        let alphabet = [
            "*", ":", ";", ",", "=", "/", "-", "1", "net", "port", "off", "::",
        ];
        let mut inputs = vec![String::new()];
        for _ in 0..4 {
            let mut next = Vec::new();
            for prefix in &inputs {
                for piece in alphabet {
                    next.push(format!("{prefix}{piece}"));
                }
            }
            inputs = next;
        }
        for text in inputs {
            let (rules, diagnostics) = parse_rules("KEEPALIVE_RULES", &text);
            let pieces = text.split(';').filter(|p| !p.trim().is_empty()).count();
            assert_eq!(rules.len() + diagnostics.len(), pieces, "{text:?}");
        }
    }
}
