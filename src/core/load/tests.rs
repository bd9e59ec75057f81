//! Unit tests of `load`: values, spellings, diagnostics and sources.

use super::*;
use crate::quantity::parse_quantity;
use crate::timers::UserTimeout;
use std::collections::HashMap;

fn load_from(vars: &[(&str, &str)]) -> Loaded {
    let map: HashMap<String, Vec<u8>> = vars
        .iter()
        .map(|(k, v)| (k.to_string(), v.as_bytes().to_vec()))
        .collect();
    load(|name| map.get(name).cloned())
}

#[test]
fn nothing_set_means_enabled_with_kernel_defaults() {
    let loaded = load_from(&[]);
    assert_eq!(loaded.settings, Settings::default());
    assert!(loaded.diagnostics.is_empty());
}

#[test]
fn howto_names_set_the_timers() {
    let loaded = load_from(&[("KEEPIDLE", "60"), ("KEEPINTVL", "10"), ("KEEPCNT", "6")]);
    assert_eq!(loaded.settings.timers.idle_secs, Some(60));
    assert_eq!(loaded.settings.timers.interval_secs, Some(10));
    assert_eq!(loaded.settings.timers.count, Some(6));
    assert!(loaded.diagnostics.is_empty());
}

#[test]
fn suffixes_convert_to_the_kernel_unit() {
    let s = load_from(&[
        ("KEEPIDLE", "5m"),
        ("KEEPINTVL", "2000ms"),
        ("KEEPALIVE_USER_TIMEOUT", "90s"),
    ])
    .settings;
    assert_eq!(s.timers.idle_secs, Some(300));
    assert_eq!(s.timers.interval_secs, Some(2));
    assert_eq!(s.timers.user_timeout, Some(UserTimeout::Millis(90_000)));
    let s = load_from(&[("KEEPIDLE", "1h"), ("KEEPALIVE_USER_TIMEOUT", "1500")]).settings;
    assert_eq!(s.timers.idle_secs, Some(3600));
    assert_eq!(s.timers.user_timeout, Some(UserTimeout::Millis(1500)));
}

#[test]
fn ranges_are_the_kernels() {
    for (name, good, bad) in [
        ("KEEPIDLE", "32767", "32768"),
        ("KEEPINTVL", "32767", "32768"),
        ("KEEPCNT", "127", "128"),
        ("KEEPALIVE_USER_TIMEOUT", "2147483647", "2147483648"),
    ] {
        assert!(
            load_from(&[(name, good)]).diagnostics.is_empty(),
            "{name}={good}"
        );
        let loaded = load_from(&[(name, bad)]);
        assert_eq!(loaded.diagnostics.len(), 1, "{name}={bad}");
        assert_eq!(loaded.settings, Settings::default(), "{name}={bad}");
    }
    assert_eq!(
        load_from(&[("KEEPALIVE_USER_TIMEOUT", "0")])
            .settings
            .timers
            .user_timeout,
        Some(UserTimeout::Millis(0))
    );
}

#[test]
fn each_bad_value_gets_one_line_naming_variable_value_and_range() {
    let bad = [
        "",
        " 5",
        "5 ",
        "+5",
        "-1",
        "0",
        "1e3",
        "0x10",
        "5 s",
        "5ss",
        "٣",
        "abc",
        "99999999999999999999999",
        "1500ms",
        "5d",
    ];
    for value in bad {
        let loaded = load_from(&[("KEEPIDLE", value), ("KEEPCNT", "4")]);
        assert_eq!(loaded.diagnostics.len(), 1, "KEEPIDLE={value:?}");
        let line = &loaded.diagnostics[0].to_string();
        assert!(line.starts_with("libkeepalive: KEEPIDLE=\""), "{line}");
        assert!(line.contains("1..32767"), "{line}");
        assert!(!line.contains('\n'));
        assert_eq!(loaded.settings.timers.idle_secs, None);
        // The other setting still applies.
        assert_eq!(loaded.settings.timers.count, Some(4));
    }
}

#[test]
fn count_takes_no_suffix() {
    assert_eq!(load_from(&[("KEEPCNT", "5s")]).diagnostics.len(), 1);
}

#[test]
fn msantos_values_keep_their_meaning_through_its_names_only() {
    let loaded = load_from(&[
        ("TCP_KEEPIDLE", "0"),
        ("TCP_KEEPINTVL", "0"),
        ("TCP_KEEPCNT", "0"),
        ("TCP_USER_TIMEOUT", "-1"),
        ("LIBKEEPALIVE_DEBUG", "yes"),
    ]);
    assert!(loaded.diagnostics.is_empty(), "{:?}", loaded.diagnostics);
    let s = loaded.settings;
    assert_eq!(
        (s.timers.idle_secs, s.timers.interval_secs, s.timers.count),
        (None, None, None)
    );
    assert_eq!(s.timers.user_timeout, Some(UserTimeout::Auto));
    assert!(s.debug);
    assert!(load_from(&[("LIBKEEPALIVE_DEBUG", "0")]).settings.debug);
    assert!(load_from(&[("LIBKEEPALIVE_DEBUG", "")]).settings.debug);
    // A system-default 0 is no conflict with a value set elsewhere.
    let both = load_from(&[("TCP_KEEPIDLE", "0"), ("KEEPIDLE", "60")]);
    assert!(both.diagnostics.is_empty());
    assert_eq!(both.settings.timers.idle_secs, Some(60));
    // The HOWTO's and our own names keep their strict ranges.
    for (name, value) in [
        ("KEEPIDLE", "0"),
        ("KEEPINTVL", "0"),
        ("KEEPCNT", "0"),
        ("DD_TCP_KEEPALIVE_TIME", "0"),
        ("KEEPALIVE_USER_TIMEOUT", "-1"),
        ("KEEPALIVE_DEBUG", "yes"),
        ("DD_DEBUG", "yes"),
    ] {
        let loaded = load_from(&[(name, value)]);
        assert_eq!(loaded.diagnostics.len(), 1, "{name}={value}");
        assert!(loaded.diagnostics[0]
            .to_string()
            .contains(&format!("{name}=\"{value}\"")));
    }
    // A conflict quotes the text as written, not its meaning.
    let conflict = load_from(&[
        ("KEEPALIVE_USER_TIMEOUT", "5000"),
        ("TCP_USER_TIMEOUT", "-1"),
    ]);
    assert!(conflict.diagnostics[0]
        .to_string()
        .contains("TCP_USER_TIMEOUT=\"-1\""));
}

#[test]
fn aliases_of_the_other_libraries_work() {
    let s = load_from(&[
        ("TCP_KEEPIDLE", "7"),
        ("TCP_KEEPINTVL", "8"),
        ("TCP_KEEPCNT", "9"),
        ("TCP_USER_TIMEOUT", "1000"),
        ("LIBKEEPALIVE_DEBUG", "1"),
    ])
    .settings;
    assert_eq!(
        (
            s.timers.idle_secs,
            s.timers.interval_secs,
            s.timers.count,
            s.timers.user_timeout,
            s.debug
        ),
        (
            Some(7),
            Some(8),
            Some(9),
            Some(UserTimeout::Millis(1000)),
            true
        )
    );
    let s = load_from(&[
        ("DD_TCP_KEEPALIVE_TIME", "11"),
        ("DD_TCP_KEEPALIVE_INTVL", "12"),
        ("DD_TCP_KEEPALIVE_PROBES", "13"),
        ("DD_DEBUG", "1"),
    ])
    .settings;
    assert_eq!(
        (
            s.timers.idle_secs,
            s.timers.interval_secs,
            s.timers.count,
            s.debug
        ),
        (Some(11), Some(12), Some(13), true)
    );
    assert!(!load_from(&[("DD_USE_KEEPALIVE", "0")]).settings.enabled);
    assert!(!load_from(&[("KEEPALIVE", "off")]).settings.enabled);
    assert!(load_from(&[("KEEPALIVE", "on")]).settings.enabled);
}

#[test]
fn equal_aliases_agree_and_different_ones_conflict() {
    let loaded = load_from(&[("KEEPIDLE", "60"), ("TCP_KEEPIDLE", "1m")]);
    assert!(loaded.diagnostics.is_empty());
    assert_eq!(loaded.settings.timers.idle_secs, Some(60));

    let loaded = load_from(&[("KEEPIDLE", "60"), ("DD_TCP_KEEPALIVE_TIME", "30")]);
    assert_eq!(loaded.diagnostics.len(), 1);
    assert!(loaded.diagnostics[0]
        .to_string()
        .contains("KEEPIDLE=\"60\""));
    assert!(loaded.diagnostics[0]
        .to_string()
        .contains("DD_TCP_KEEPALIVE_TIME=\"30\""));
    assert_eq!(loaded.settings.timers.idle_secs, None);

    let loaded = load_from(&[("KEEPALIVE", "off"), ("DD_USE_KEEPALIVE", "1")]);
    assert_eq!(loaded.diagnostics.len(), 1);
    assert!(loaded.settings.enabled);
    let loaded = load_from(&[("KEEPALIVE", "off"), ("DD_USE_KEEPALIVE", "0")]);
    assert!(loaded.diagnostics.is_empty());
    assert!(!loaded.settings.enabled);
}

#[test]
fn switches_are_strict() {
    for (name, value) in [
        ("KEEPALIVE", "yes"),
        ("KEEPALIVE", ""),
        ("KEEPALIVE_DEBUG", "2"),
        ("DD_USE_KEEPALIVE", "off"),
    ] {
        let loaded = load_from(&[(name, value)]);
        assert_eq!(loaded.diagnostics.len(), 1, "{name}={value}");
        assert!(loaded.diagnostics[0].to_string().contains(name));
        assert_eq!(loaded.settings, Settings::default());
    }
}

#[test]
fn direction_and_rules_are_read() {
    let loaded = load_from(&[
        ("KEEPALIVE_DIRECTION", "out"),
        ("KEEPALIVE_RULES", "net=10.0.0.0/8:idle=60; *:off"),
    ]);
    assert!(loaded.diagnostics.is_empty(), "{:?}", loaded.diagnostics);
    assert_eq!(loaded.selection.directions, rules::Directions::Out);
    assert_eq!(loaded.selection.rules.len(), 2);
    assert_eq!(loaded.settings, Settings::default());
    assert!(load_from(&[]).selection.is_everything());
}

#[test]
fn a_bad_direction_or_rule_is_one_line_and_ignored_alone() {
    let loaded = load_from(&[
        ("KEEPALIVE_DIRECTION", "outbound"),
        ("KEEPALIVE_RULES", "net=10.0.0.0/40:off; *:idle=5"),
        ("KEEPCNT", "4"),
    ]);
    assert_eq!(loaded.diagnostics.len(), 2, "{:?}", loaded.diagnostics);
    assert!(loaded.diagnostics[0]
        .to_string()
        .starts_with("libkeepalive: KEEPALIVE_DIRECTION=\"outbound\" is not valid"));
    assert!(loaded.diagnostics[0]
        .to_string()
        .contains("out, in or both"));
    assert!(loaded.diagnostics[1]
        .to_string()
        .starts_with("libkeepalive: KEEPALIVE_RULES: rule 1 \"net=10.0.0.0/40:off\" is not valid"));
    assert_eq!(loaded.selection.directions, rules::Directions::Both);
    assert_eq!(loaded.selection.rules.len(), 1);
    assert_eq!(loaded.selection.rules[0].number, 2);
    assert_eq!(loaded.settings.timers.count, Some(4));
}

#[test]
fn user_timeout_auto() {
    assert_eq!(
        load_from(&[("KEEPALIVE_USER_TIMEOUT", "auto")])
            .settings
            .timers
            .user_timeout,
        Some(UserTimeout::Auto)
    );
}

#[test]
fn non_utf8_and_huge_values_are_reported_briefly() {
    let loaded = load(|name| (name == "KEEPCNT").then(|| vec![b'5', 0xff]));
    assert_eq!(loaded.diagnostics.len(), 1);
    assert!(loaded.diagnostics[0].to_string().contains("KEEPCNT"));
    let huge = "7".repeat(1 << 20);
    let loaded = load_from(&[("KEEPINTVL", &huge)]);
    assert_eq!(loaded.diagnostics.len(), 1);
    assert!(loaded.diagnostics[0].to_string().len() < 300);
    assert!(loaded.diagnostics[0].to_string().contains("1048576 bytes"));
}

#[test]
fn control_characters_stay_on_one_line() {
    let loaded = load_from(&[("KEEPIDLE", "6\n0")]);
    assert_eq!(loaded.diagnostics.len(), 1);
    assert!(!loaded.diagnostics[0].to_string().contains('\n'));
    assert!(loaded.diagnostics[0].to_string().contains("6\\n0"));
}

#[test]
fn a_path_preset_sets_the_timers_a_variable_does_not() {
    let loaded = load_from(&[("KEEPALIVE_PATH", "aws-nlb")]);
    assert!(loaded.diagnostics.is_empty(), "{:?}", loaded.diagnostics);
    assert_eq!(loaded.path.map(|p| p.name), Some("aws-nlb"));
    let s = &loaded.settings;
    assert_eq!(
        (s.timers.idle_secs, s.timers.interval_secs, s.timers.count),
        (Some(100), Some(30), Some(5))
    );
    let s = load_from(&[("KEEPALIVE_PATH", "gcp"), ("TCP_KEEPIDLE", "45")]).settings;
    assert_eq!(
        (s.timers.idle_secs, s.timers.interval_secs, s.timers.count),
        (Some(45), Some(60), Some(5))
    );
    assert_eq!(s.timers.user_timeout, None);
    let loaded = load_from(&[("KEEPALIVE_PATH", "aws"), ("KEEPCNT", "3")]);
    assert_eq!(loaded.diagnostics.len(), 1);
    assert!(loaded.diagnostics[0].to_string().starts_with(
        "libkeepalive: KEEPALIVE_PATH=\"aws\" is not valid: expected one of aws-nlb, aws-natgw,"
    ));
    assert_eq!(loaded.settings.timers.idle_secs, None);
    assert_eq!(loaded.settings.timers.count, Some(3));
}

#[test]
fn programs_are_read_and_a_bad_list_is_ignored() {
    let loaded = load_from(&[("KEEPALIVE_PROGRAMS", "nginx, python3")]);
    assert!(loaded.diagnostics.is_empty());
    assert_eq!(loaded.programs.unwrap().names, ["nginx", "python3"]);
    let loaded = load_from(&[("KEEPALIVE_PROGRAMS", "/usr/bin/nginx")]);
    assert_eq!(loaded.diagnostics.len(), 1);
    assert!(loaded.diagnostics[0]
        .to_string()
        .starts_with("libkeepalive: KEEPALIVE_PROGRAMS=\"/usr/bin/nginx\" is not valid"));
    assert_eq!(loaded.programs, None);
    assert_eq!(load_from(&[]).programs, None);
}

#[test]
fn every_name_is_read() {
    // Guards the two lists (NAMES and the alias groups of Setting).
    for name in NAMES {
        if name == "LIBKEEPALIVE_DEBUG" {
            // Any value is valid there (msantos's meaning): read, it is on.
            assert!(load_from(&[(name, "not-a-valid-value!")]).settings.debug);
            continue;
        }
        let loaded = load_from(&[(name, "not-a-valid-value!")]);
        assert_eq!(loaded.diagnostics.len(), 1, "{name} was not read");
        assert!(loaded.diagnostics[0].to_string().contains(name));
    }
}

#[test]
fn parser_never_accepts_out_of_range() {
    // A small exhaustive sweep over short inputs of the parser's alphabet.
    let alphabet = ["0", "1", "9", "m", "s", "h", " ", "+", "-", "x"];
    for text in crate::test_inputs::joinings(&alphabet, 4) {
        if let Some(v) = parse_quantity(&text, Quantity::Seconds { max: 32767 }) {
            assert!((1..=32767).contains(&v), "{text:?} -> {v}");
            assert!(text.bytes().all(|b| b.is_ascii_alphanumeric()), "{text:?}");
        }
        if let Some(v) = parse_quantity(&text, Quantity::Count { max: 127 }) {
            assert!((1..=127).contains(&v), "{text:?} -> {v}");
        }
    }
}

fn lookup_in(vars: &[(&str, &str)]) -> impl Fn(&str) -> Option<Vec<u8>> {
    let map: HashMap<String, Vec<u8>> = vars
        .iter()
        .map(|(k, v)| (k.to_string(), v.as_bytes().to_vec()))
        .collect();
    move |name| map.get(name).cloned()
}

#[test]
fn the_groups_list_every_variable_once_in_load_order() {
    let flat: Vec<&str> = Setting::ALL
        .iter()
        .flat_map(|setting| setting.variables().iter().copied())
        .collect();
    assert_eq!(flat, NAMES);
}

#[test]
fn each_variable_changes_its_own_setting_and_no_other() {
    let valid = |setting| match setting {
        Setting::Enabled => ["off", "0"],
        Setting::Debug => ["1", "1"],
        Setting::Direction => ["out", "out"],
        Setting::Rules => ["*:off", "*:off"],
        Setting::Path => ["gcp", "gcp"],
        Setting::Programs => ["curl", "curl"],
        Setting::Override => ["on", "on"],
        _ => ["3", "3"],
    };
    for setting in Setting::ALL {
        for (index, &name) in setting.variables().iter().enumerate() {
            // DD_USE_KEEPALIVE spells "off" as 0.
            let value = valid(setting)[index.min(1)];
            let loaded = load(lookup_in(&[(name, value)]));
            assert!(loaded.diagnostics.is_empty(), "{name}={value}");
            let nothing = load(|_| None::<Vec<u8>>);
            for other in Setting::ALL {
                let changed = value_in(other, &loaded) != value_in(other, &nothing);
                // A preset sets the three timers.
                let timer = matches!(other, Setting::Idle | Setting::Interval | Setting::Count);
                let expected = other == setting || (setting == Setting::Path && timer);
                assert_eq!(changed, expected, "{name} and {other:?}");
            }
        }
    }
}

#[test]
fn sources_name_the_valid_agreeing_spellings() {
    let env = [("KEEPIDLE", "60"), ("TCP_KEEPIDLE", "1m"), ("KEEPCNT", "x")];
    assert_eq!(
        sources(Setting::Idle, lookup_in(&env)),
        ["KEEPIDLE", "TCP_KEEPIDLE"]
    );
    assert!(sources(Setting::Count, lookup_in(&env)).is_empty());
    assert!(sources(Setting::Interval, lookup_in(&env)).is_empty());
    let conflict = [("KEEPALIVE", "on"), ("DD_USE_KEEPALIVE", "0")];
    assert!(sources(Setting::Enabled, lookup_in(&conflict)).is_empty());
    let agree = [("KEEPALIVE", "off"), ("DD_USE_KEEPALIVE", "0")];
    assert_eq!(
        sources(Setting::Enabled, lookup_in(&agree)),
        ["KEEPALIVE", "DD_USE_KEEPALIVE"]
    );
    // Rules apply as soon as one of them is valid.
    let rules = [("KEEPALIVE_RULES", "bad; *:off")];
    assert_eq!(
        sources(Setting::Rules, lookup_in(&rules)),
        ["KEEPALIVE_RULES"]
    );
    let rules = [("KEEPALIVE_RULES", "bad")];
    assert!(sources(Setting::Rules, lookup_in(&rules)).is_empty());
    // A bad spelling beside a good one: the good one applies.
    let mixed = [("KEEPINTVL", "abc"), ("DD_TCP_KEEPALIVE_INTVL", "5")];
    assert_eq!(
        sources(Setting::Interval, lookup_in(&mixed)),
        ["DD_TCP_KEEPALIVE_INTVL"]
    );
    assert_eq!(
        load(lookup_in(&mixed)).settings.timers.interval_secs,
        Some(5)
    );
}

/// `setting`'s value in `loaded`, in a form that compares equal exactly
/// when two spellings mean the same thing.
fn value_in(setting: Setting, loaded: &Loaded) -> String {
    let settings = &loaded.settings;
    let timers = &settings.timers;
    match setting {
        Setting::Enabled => format!("{:?}", settings.enabled),
        Setting::Idle => format!("{:?}", timers.idle_secs),
        Setting::Interval => format!("{:?}", timers.interval_secs),
        Setting::Count => format!("{:?}", timers.count),
        Setting::UserTimeout => format!("{:?}", timers.user_timeout),
        Setting::Direction => format!("{:?}", loaded.selection.directions),
        Setting::Rules => format!("{:?}", loaded.selection.rules),
        Setting::Debug => format!("{:?}", settings.debug),
        Setting::Path => format!("{:?}", loaded.path.map(|preset| preset.name)),
        Setting::Programs => format!("{:?}", loaded.programs),
        Setting::Override => format!("{:?}", settings.override_program),
    }
}

/// The sources `load` records for `setting`.
fn sources(setting: Setting, lookup: impl Fn(&str) -> Option<Vec<u8>>) -> Vec<&'static str> {
    load(lookup).sources.of(setting)
}

#[test]
fn msantos_zero_is_a_source_that_disagrees_with_a_value() {
    // TCP_KEEPIDLE=0 means "not set": alone it is a (valid) source of the
    // kernel default; beside KEEPIDLE=60 the two mean different things.
    let alone = [("TCP_KEEPIDLE", "0")];
    assert_eq!(sources(Setting::Idle, lookup_in(&alone)), ["TCP_KEEPIDLE"]);
    let both = [("KEEPIDLE", "60"), ("TCP_KEEPIDLE", "0")];
    assert!(sources(Setting::Idle, lookup_in(&both)).is_empty());
    assert_eq!(load(lookup_in(&both)).settings.timers.idle_secs, Some(60));
}

#[test]
fn override_is_on_or_off_and_off_by_default() {
    assert!(!load_from(&[]).settings.override_program);
    let on = load_from(&[("KEEPALIVE_OVERRIDE", "on")]);
    assert!(on.diagnostics.is_empty());
    assert!(on.settings.override_program);
    assert_eq!(on.sources.of(Setting::Override), ["KEEPALIVE_OVERRIDE"]);
    let off = load_from(&[("KEEPALIVE_OVERRIDE", "off")]);
    assert!(!off.settings.override_program);
    for bad in ["1", "yes", "ON", ""] {
        let loaded = load_from(&[("KEEPALIVE_OVERRIDE", bad)]);
        assert!(!loaded.settings.override_program, "{bad}");
        assert_eq!(
            loaded.diagnostics[0].to_string(),
            format!(
                "libkeepalive: KEEPALIVE_OVERRIDE=\"{bad}\" is not valid: expected on or off; \
                 ignoring it"
            )
        );
    }
}
