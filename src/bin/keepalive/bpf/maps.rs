//! The settings as the kernel-side program reads them: one value of a
//! one-entry array map, laid out here and read at the same offsets by
//! `program/sock_ops.rs`. Built from the library's own `Policy`, so `--bpf` applies
//! exactly the options the preloaded library would (same plans, same rule
//! order, same `auto`).
//!
//! Layout (all fields native-endian u32; addresses in network byte order):
//!
//! | offset | field |
//! |---|---|
//! | 0 | flags: bit 0 outbound, bit 1 inbound (`KEEPALIVE_DIRECTION`) |
//! | 4 | number of rules in use |
//! | 8 | the plan for connections no rule matches (`PLAN_SIZE` bytes) |
//! | 32 | `MAX_RULES` rules of `RULE_SIZE` bytes |
//!
//! A plan is a bit set of the options to set (bit i = `OPTIONS[i]`, and
//! `OVERRIDE`: our values replace the program's own) and their five values. A rule is its flags, a port range, a network (address
//! and mask as 16 bytes each, IPv4 as `::ffff:a.b.c.d`) and its plan.

use keepalive_core::plan::Plan;
use keepalive_core::policy::Policy;
use keepalive_core::rules::{Decision, Direction, Directions, Rule};
use std::net::IpAddr;

/// The kernel's limit for this mode; the prototype measured about 15k
/// verifier steps for 64 rules, far from the 1M limit.
pub const MAX_RULES: usize = 64;

/// The options in the order of their bits (in plans and in the marks the
/// setsockopt program leaves), as (level, name).
pub const OPTIONS: [(i32, i32); 5] = [
    (libc::SOL_SOCKET, libc::SO_KEEPALIVE),
    (libc::IPPROTO_TCP, libc::TCP_KEEPIDLE),
    (libc::IPPROTO_TCP, libc::TCP_KEEPINTVL),
    (libc::IPPROTO_TCP, libc::TCP_KEEPCNT),
    (libc::IPPROTO_TCP, libc::TCP_USER_TIMEOUT),
];

pub const FLAGS: i16 = 0;
pub const RULE_COUNT: i16 = 4;
pub const GLOBAL_PLAN: i16 = 8;
pub const RULES: i16 = 32;

/// In a plan's flags: under override our values replace the program's own
/// (the setsockopt program rewrites its later calls for these options).
pub const OVERRIDE: u32 = 1 << 8;

/// Within a plan: the bit set, then one value per option.
pub const PLAN_FLAGS: i16 = 0;
pub const PLAN_VALUES: i16 = 4;
pub const PLAN_SIZE: i16 = 24;

/// Within a rule.
pub const RULE_FLAGS: i16 = 0;
pub const RULE_PORT_LOW: i16 = 4;
pub const RULE_PORT_HIGH: i16 = 8;
pub const RULE_ADDRESS: i16 = 12;
pub const RULE_MASK: i16 = 28;
pub const RULE_PLAN: i16 = 44;
pub const RULE_SIZE: i16 = RULE_PLAN + PLAN_SIZE;

/// Direction bits, in `FLAGS` and in a rule's flags.
pub const OUT: u32 = 1;
pub const IN: u32 = 2;
/// The rule has a network; `NET_V4`: an IPv4 one (for readers of the map:
/// matching is the same 128-bit comparison, IPv4 being ::ffff:a.b.c.d).
pub const HAS_NET: u32 = 4;
pub const NET_V4: u32 = 8;
pub const HAS_PORTS: u32 = 16;

pub const VALUE_SIZE: usize = RULES as usize + MAX_RULES * RULE_SIZE as usize;

fn put(value: &mut [u8], offset: usize, field: u32) {
    value[offset..offset + 4].copy_from_slice(&field.to_ne_bytes());
}

fn put_plan(value: &mut [u8], offset: usize, plan: Option<&Plan>) {
    let mut flags = 0;
    for option in plan.map(Plan::options).unwrap_or_default() {
        if let Some(bit) = OPTIONS
            .iter()
            .position(|&(level, name)| (level, name) == (option.level, option.name))
        {
            flags |= 1 << bit;
            put(
                value,
                offset + PLAN_VALUES as usize + 4 * bit,
                option.value as u32,
            );
        }
    }
    if plan.is_some_and(|plan| plan.override_program) && flags != 0 {
        flags |= OVERRIDE;
    }
    put(value, offset + PLAN_FLAGS as usize, flags);
}

fn direction_bits(directions: Directions) -> u32 {
    match directions {
        Directions::Both => OUT | IN,
        Directions::Out => OUT,
        Directions::In => IN,
    }
}

/// A rule's network as (flags, address, mask), IPv4 mapped into IPv6.
/// Read back from its canonical text, `ADDRESS/LENGTH`, the one public view.
fn network_of(rule: &Rule) -> Option<(u32, [u8; 16], [u8; 16])> {
    let network = rule.network?.to_string();
    let (address, length) = network.split_once('/')?;
    let length: u32 = length.parse().ok()?;
    let (flags, bits, length) = match address.parse::<IpAddr>().ok()? {
        IpAddr::V4(v4) => (
            HAS_NET | NET_V4,
            u128::from(v4.to_ipv6_mapped()),
            length + 96,
        ),
        IpAddr::V6(v6) => (HAS_NET, u128::from(v6), length),
    };
    let mask = u128::MAX.checked_shl(128 - length).unwrap_or(0);
    Some((flags, bits.to_be_bytes(), mask.to_be_bytes()))
}

/// The map value for `policy`, or a message if it has too many rules.
pub fn encode(policy: &Policy) -> Result<Vec<u8>, String> {
    let rules = &policy.selection.rules;
    if rules.len() > MAX_RULES {
        return Err(format!(
            "KEEPALIVE_RULES has {} rules; the kernel-side mode takes at most {MAX_RULES}",
            rules.len()
        ));
    }
    let mut value = vec![0u8; VALUE_SIZE];
    put(
        &mut value,
        FLAGS as usize,
        direction_bits(policy.selection.directions),
    );
    put(&mut value, RULE_COUNT as usize, rules.len() as u32);
    put_plan(
        &mut value,
        GLOBAL_PLAN as usize,
        policy.plan_for(Decision::Unmatched),
    );
    for (index, rule) in rules.iter().enumerate() {
        let base = RULES as usize + index * RULE_SIZE as usize;
        let mut flags = match rule.direction {
            None => OUT | IN,
            Some(Direction::Out) => OUT,
            Some(Direction::In) => IN,
        };
        if let Some((net_flags, address, mask)) = network_of(rule) {
            flags |= net_flags;
            value[base + RULE_ADDRESS as usize..][..16].copy_from_slice(&address);
            value[base + RULE_MASK as usize..][..16].copy_from_slice(&mask);
        }
        if let Some((low, high)) = rule.ports {
            flags |= HAS_PORTS;
            put(&mut value, base + RULE_PORT_LOW as usize, low.into());
            put(&mut value, base + RULE_PORT_HIGH as usize, high.into());
        }
        put(&mut value, base + RULE_FLAGS as usize, flags);
        put_plan(
            &mut value,
            base + RULE_PLAN as usize,
            policy.plan_for(Decision::Matched(index)),
        );
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;
    use keepalive_core::plan::KernelDefaults;
    use keepalive_core::rules::{parse_rules, Selection};
    use keepalive_core::settings::Settings;
    use keepalive_core::timers::Timers;

    fn policy(directions: Directions, text: &str) -> Policy {
        let (rules, diagnostics) = parse_rules("KEEPALIVE_RULES", text);
        assert!(diagnostics.is_empty(), "{diagnostics:?}");
        let settings = Settings {
            timers: Timers {
                idle_secs: Some(60),
                ..Timers::default()
            },
            ..Settings::default()
        };
        Policy::new(&settings, Selection { directions, rules }, || {
            KernelDefaults::LINUX
        })
    }

    fn field(value: &[u8], offset: i16) -> u32 {
        u32::from_ne_bytes(value[offset as usize..][..4].try_into().unwrap())
    }

    #[test]
    fn global_plan_and_directions() {
        let value = encode(&policy(Directions::Out, "")).unwrap();
        assert_eq!(value.len(), VALUE_SIZE);
        assert_eq!(field(&value, FLAGS), OUT);
        assert_eq!(field(&value, RULE_COUNT), 0);
        // SO_KEEPALIVE=1 and TCP_KEEPIDLE=60.
        assert_eq!(field(&value, GLOBAL_PLAN + PLAN_FLAGS), 0b11);
        assert_eq!(field(&value, GLOBAL_PLAN + PLAN_VALUES), 1);
        assert_eq!(field(&value, GLOBAL_PLAN + PLAN_VALUES + 4), 60);
    }

    #[test]
    fn rules_with_mapped_ipv4_networks_ports_and_actions() {
        let value = encode(&policy(
            Directions::Both,
            "dir=in,net=10.1.0.0/16,port=80-90:cnt=3; net=fd00::/8:off; net=::ffff:127.0.0.1:on,override=on",
        ))
        .unwrap();
        assert_eq!(field(&value, RULE_COUNT), 3);
        let first = RULES;
        assert_eq!(
            field(&value, first + RULE_FLAGS),
            IN | HAS_NET | NET_V4 | HAS_PORTS
        );
        assert_eq!(
            &value[(first + RULE_ADDRESS) as usize..][..16],
            &[0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 10, 1, 0, 0]
        );
        let mut mask = [0xffu8; 16];
        mask[14..].fill(0);
        assert_eq!(&value[(first + RULE_MASK) as usize..][..16], &mask);
        assert_eq!(field(&value, first + RULE_PORT_LOW), 80);
        assert_eq!(field(&value, first + RULE_PORT_HIGH), 90);
        // SO_KEEPALIVE, TCP_KEEPIDLE (global) and TCP_KEEPCNT (the rule).
        assert_eq!(field(&value, first + RULE_PLAN + PLAN_FLAGS), 0b1011);
        assert_eq!(field(&value, first + RULE_PLAN + PLAN_VALUES + 12), 3);
        let second = RULES + RULE_SIZE;
        assert_eq!(field(&value, second + RULE_FLAGS), OUT | IN | HAS_NET);
        assert_eq!(value[(second + RULE_ADDRESS) as usize], 0xfd);
        assert_eq!(value[(second + RULE_MASK) as usize + 1], 0);
        assert_eq!(field(&value, second + RULE_PLAN + PLAN_FLAGS), 0, "off");
        // The library folds ::ffff:127.0.0.1 to IPv4: a /32 of IPv4.
        let third = RULES + 2 * RULE_SIZE;
        assert_eq!(
            field(&value, third + RULE_FLAGS),
            OUT | IN | HAS_NET | NET_V4
        );
        assert_eq!(&value[(third + RULE_MASK) as usize..][..16], &[0xff; 16]);
        // Override is per plan; an off plan has nothing to override with.
        assert_eq!(
            field(&value, third + RULE_PLAN + PLAN_FLAGS),
            0b11 | OVERRIDE
        );
        assert_eq!(field(&value, GLOBAL_PLAN + PLAN_FLAGS), 0b11);
    }

    #[test]
    fn the_librarys_64_rules_fill_every_slot() {
        // The library's parser already stops at 64 rules (its own message).
        let text = vec!["port=1:on"; MAX_RULES].join("; ");
        let value = encode(&policy(Directions::Both, &text)).unwrap();
        assert_eq!(field(&value, RULE_COUNT), 64);
        let last = RULES + 63 * RULE_SIZE;
        assert_eq!(field(&value, last + RULE_PORT_HIGH), 1);
        assert_eq!(last as usize + RULE_SIZE as usize, VALUE_SIZE);
    }
}
