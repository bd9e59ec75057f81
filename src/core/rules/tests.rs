use super::*;
use crate::settings::Settings;
use crate::timers::UserTimeout;
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
    let rules =
        parse_ok("net=10.0.0.0/8,port=5432:idle=60; net=::1:off; dir=in,port=80:on; *:idle=200");
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
        let net = Network::parse(network).unwrap();
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
        let line = &diagnostics[0].to_string();
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
        assert!(
            diagnostics[0].to_string().contains(hint),
            "{text}: {}",
            diagnostics[0]
        );
        assert_eq!(
            diagnostics[0]
                .to_string()
                .matches("expected MATCH:ACTION")
                .count(),
            1
        );
    }
    for text in ["net=10.0.0.300:off", "dir=sideways:off", "*:idle=0"] {
        let (_, diagnostics) = parse_rules("KEEPALIVE_RULES", text);
        assert!(
            !diagnostics[0].to_string().contains("did you mean"),
            "{text}"
        );
    }
}

#[test]
fn edges_of_networks() {
    let net = Network::parse("192.168.0.0/23").unwrap();
    assert!(net.contains(v4("192.168.1.255")));
    assert!(!net.contains(v4("192.168.2.0")));
    assert!(!net.contains(v6("2001:db8::1")));
    let all4 = Network::parse("0.0.0.0/0").unwrap();
    assert!(all4.contains(v4("255.255.255.255")));
    assert!(!all4.contains(v6("::")));
    let net6 = Network::parse("2001:db8::/127").unwrap();
    assert!(net6.contains(v6("2001:db8::1")));
    assert!(!net6.contains(v6("2001:db8::2")));
    let all6 = Network::parse("::/0").unwrap();
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
        ("*:off,idle=5", "off stands alone"),
        (":off", "condition"),
    ];
    for (text, reason) in bad {
        let value = format!("net=1.1.1.1:off; {text}; *:idle=7");
        let (rules, diagnostics) = parse_rules("KEEPALIVE_RULES", &value);
        assert_eq!(diagnostics.len(), 1, "{text}: {diagnostics:?}");
        let line = &diagnostics[0].to_string();
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
    assert!(diagnostics[0].to_string().contains("more than 64 rules"));
}

#[test]
fn timers_fall_back_to_the_global_settings() {
    let global = Settings {
        timers: Timers {
            idle_secs: Some(60),
            count: Some(4),
            ..Timers::default()
        },
        ..Settings::default()
    };
    let timers = Timers {
        idle_secs: Some(200),
        user_timeout: Some(UserTimeout::Auto),
        ..Timers::default()
    };
    let merged = global.with_rule(timers, None);
    assert_eq!(merged.timers.idle_secs, Some(200));
    assert_eq!(merged.timers.count, Some(4));
    assert_eq!(merged.timers.interval_secs, None);
    assert_eq!(merged.timers.user_timeout, Some(UserTimeout::Auto));
    assert!(merged.enabled);
    assert!(!merged.override_program);
    assert!(global.with_rule(timers, Some(true)).override_program);
    let overriding = Settings {
        override_program: true,
        ..global
    };
    assert!(overriding.with_rule(timers, None).override_program);
    assert!(!overriding.with_rule(timers, Some(false)).override_program);
}

#[test]
fn override_is_a_key_of_the_action() {
    let rules = parse_ok(
        "dir=out:on,override=on; port=22:idle=5,override=off; *:override=on,cnt=3; \
         net=10.0.0.0/8:override=on; *:on; *:idle=5",
    );
    let overrides: Vec<_> = rules.iter().map(|rule| rule.override_program).collect();
    assert_eq!(
        overrides,
        [Some(true), Some(false), Some(true), Some(true), None, None]
    );
    assert_eq!(rules[3].action, Action::On);
    let canonical: Vec<String> = rules.iter().map(Rule::to_string).collect();
    assert_eq!(
        canonical,
        [
            "dir=out:on,override=on",
            "port=22:idle=5,override=off",
            "*:cnt=3,override=on",
            "net=10.0.0.0/8:on,override=on",
            "*:on",
            "*:idle=5",
        ]
    );
    assert_eq!(shown(&canonical.join(";")), canonical);
    for (bad, reason) in [
        ("*:off,override=on", "off stands alone"),
        ("*:override=yes", "override=\"yes\": expected on or off"),
        (
            "*:override",
            "action \"override\" is not off, on or KEY=VALUE",
        ),
        ("*:on,override=on,override=off", "override is given twice"),
        ("*:on,idle=5", "on stands alone or with override"),
        ("*:on,on", "on is given twice"),
    ] {
        let (rules, diagnostics) = parse_rules("KEEPALIVE_RULES", bad);
        assert!(rules.is_empty(), "{bad}");
        let line = diagnostics[0].to_string();
        assert!(line.contains(reason), "{bad}: {line}");
    }
}

#[test]
fn parser_never_panics_on_short_inputs() {
    let alphabet = [
        "*", ":", ";", ",", "=", "/", "-", "1", "net", "port", "off", "::",
    ];
    for text in crate::test_inputs::joinings(&alphabet, 4) {
        let (rules, diagnostics) = parse_rules("KEEPALIVE_RULES", &text);
        let pieces = text.split(';').filter(|p| !p.trim().is_empty()).count();
        assert_eq!(rules.len() + diagnostics.len(), pieces, "{text:?}");
    }
}

/// The one 128-bit comparison `Network::contains` makes gives the answers
/// of the rules spelled out per family (the way it was first written).
#[test]
fn the_128_bit_match_is_the_per_family_rule() {
    fn by_family(network: &str, address: Address) -> bool {
        let (base, prefix) = network.split_once('/').unwrap();
        let prefix: u32 = prefix.parse().unwrap();
        let v4_mask = |p: u32| u32::MAX.checked_shl(32 - p).unwrap_or(0);
        let v6_mask = |p: u32| u128::MAX.checked_shl(128 - p).unwrap_or(0);
        let mapped = |v4: u32| u128::from(Ipv4Addr::from(v4).to_ipv6_mapped());
        match (base.parse::<Ipv4Addr>(), address) {
            (Ok(base), Address::V4(a)) => (u32::from(base) ^ a) & v4_mask(prefix) == 0,
            (Ok(_), Address::V6(_)) => false,
            (Err(_), address) => {
                let base = u128::from(base.parse::<Ipv6Addr>().unwrap());
                let bits = match address {
                    Address::V4(a) => mapped(a),
                    Address::V6(a) => a,
                };
                (base ^ bits) & v6_mask(prefix) == 0
            }
        }
    }
    let networks = [
        "0.0.0.0/0",
        "10.0.0.0/8",
        "10.1.2.3/32",
        "192.168.0.0/16",
        "::/0",
        "::ffff:0:0/96",
        "fd00::/8",
        "2001:db8::/32",
        "::1/128",
        "::/1",
        "::ffff:0:0/95",
    ];
    let addresses = [
        v4("10.1.2.3"),
        v4("10.200.0.1"),
        v4("192.168.7.7"),
        v4("0.0.0.0"),
        v4("255.255.255.255"),
        v6("::1"),
        v6("fd00::5"),
        v6("2001:db8::1"),
        v6("::"),
        v6("::fffe:1.2.3.4"),
    ];
    for text in networks {
        let network = Network::parse(text).unwrap();
        // The canonical spelling: an IPv6 network inside ::ffff:0:0/96 is
        // shown as the IPv4 network it is.
        let canonical = network.to_string();
        for address in addresses {
            assert_eq!(
                network.contains(address),
                by_family(&canonical, address),
                "{text} ({canonical}) {address}"
            );
        }
    }
}
