//! Property tests of the parser (the fuzzing of issue 6, run in the
//! ordinary suite).

use super::*;
use crate::timers::UserTimeout;
use proptest::prelude::*;
use std::collections::HashMap;

/// The variables of the timers and switches, whose grammar is a single
/// word (digits and a unit, on/off, 0/1, auto). Listed here rather than
/// taken from NAMES so that variables with a grammar of their
/// own can be added there without changing what these properties mean.
const SIMPLE: [&str; 16] = [
    "KEEPALIVE",
    "DD_USE_KEEPALIVE",
    "KEEPIDLE",
    "TCP_KEEPIDLE",
    "DD_TCP_KEEPALIVE_TIME",
    "KEEPINTVL",
    "TCP_KEEPINTVL",
    "DD_TCP_KEEPALIVE_INTVL",
    "KEEPCNT",
    "TCP_KEEPCNT",
    "DD_TCP_KEEPALIVE_PROBES",
    "KEEPALIVE_USER_TIMEOUT",
    "TCP_USER_TIMEOUT",
    "KEEPALIVE_DEBUG",
    "LIBKEEPALIVE_DEBUG",
    "DD_DEBUG",
];

/// Values near the grammar (digits, units, signs, spaces, dots, letters,
/// non-ASCII digits) and arbitrary bytes, so that both the accepting and
/// the rejecting paths are exercised.
fn value() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        "[0-9]{0,12}(ms|s|m|h|)".prop_map(String::into_bytes),
        "[ +\\-0-9a-z.٥５]{0,10}".prop_map(String::into_bytes),
        "(on|off|auto|0|1)".prop_map(String::into_bytes),
        proptest::collection::vec(any::<u8>(), 0..24),
    ]
}

fn environment(
    names: &'static [&'static str],
) -> impl Strategy<Value = HashMap<&'static str, Vec<u8>>> {
    proptest::collection::hash_map(proptest::sample::select(names), value(), 0..6)
}

fn in_range(settings: &Settings) -> bool {
    // map_or, not is_none_or (Rust 1.82): rust-version is 1.80.
    #[allow(clippy::unnecessary_map_or)]
    let timer = |v: Option<u32>, max| v.map_or(true, |v| (1..=max).contains(&v));
    timer(settings.timers.idle_secs, MAX_KEEPIDLE_SECS)
        && timer(settings.timers.interval_secs, MAX_KEEPINTVL_SECS)
        && timer(settings.timers.count, MAX_KEEPCNT)
        && match settings.timers.user_timeout {
            Some(UserTimeout::Millis(ms)) => ms <= MAX_USER_TIMEOUT_MS,
            _ => true,
        }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn any_environment_gives_settings_in_range(env in environment(&NAMES)) {
        let loaded = load(|name| env.get(name).cloned());
        prop_assert!(in_range(&loaded.settings), "{:?} -> {:?}", env, loaded.settings);
        for line in loaded.diagnostics.iter().map(ToString::to_string) {
            prop_assert!(!line.contains('\n'), "{}", line);
            prop_assert!(line.starts_with("libkeepalive: "), "{}", line);
            prop_assert!(line.len() < 600, "{}", line);
        }
    }

    #[test]
    fn at_most_one_line_per_simple_variable(env in environment(&SIMPLE)) {
        let loaded = load(|name| env.get(name).cloned());
        // A bad value is one line, a conflict one line naming two.
        prop_assert!(loaded.diagnostics.len() <= env.len(), "{:?}", loaded.diagnostics);
    }

    #[test]
    fn one_variable_is_either_applied_silently_or_named_in_one_line(
        name in proptest::sample::select(&SIMPLE[..]),
        bytes in value(),
    ) {
        let loaded = load(|asked| (asked == name).then(|| bytes.clone()));
        prop_assert!(in_range(&loaded.settings));
        let any_value = name == "LIBKEEPALIVE_DEBUG" && String::from_utf8(bytes.clone()).is_ok();
        let msantos_auto = name == "TCP_USER_TIMEOUT" && bytes == b"-1";
        if any_value || msantos_auto {
            prop_assert!(loaded.diagnostics.is_empty());
        } else if loaded.diagnostics.is_empty() {
            // Accepted: a single word of ASCII letters and digits.
            prop_assert!(!bytes.is_empty());
            prop_assert!(bytes.iter().all(u8::is_ascii_alphanumeric), "{:?}", bytes);
        } else {
            prop_assert_eq!(loaded.diagnostics.len(), 1);
            let named = format!("libkeepalive: {name}=");
            prop_assert!(loaded.diagnostics[0].to_string().starts_with(&named), "{}", loaded.diagnostics[0]);
            // A rejected value changes nothing.
            prop_assert_eq!(&loaded.settings, &Settings::default());
        }
    }

    #[test]
    fn plain_numbers_are_taken_exactly_when_in_range(n in any::<u64>(), small in 0u64..70000) {
        let idle = |text: &str| parse_quantity(text, Quantity::Seconds { max: MAX_KEEPIDLE_SECS });
        let idle_range = 1..=u64::from(MAX_KEEPIDLE_SECS);
        for n in [n, small] {
            let text = n.to_string();
            prop_assert_eq!(idle(&text), idle_range.contains(&n).then_some(n as u32));
            let count = parse_quantity(&text, Quantity::Count { max: MAX_KEEPCNT });
            prop_assert_eq!(count, (1..=u64::from(MAX_KEEPCNT)).contains(&n).then_some(n as u32));
            let millis = parse_quantity(&text, Quantity::Millis { max: MAX_USER_TIMEOUT_MS });
            prop_assert_eq!(millis, (n <= u64::from(MAX_USER_TIMEOUT_MS)).then_some(n as u32));
            // Units scale; milliseconds only when they make whole seconds.
            let expected = (n % 1000 == 0 && idle_range.contains(&(n / 1000)))
                .then_some((n / 1000) as u32);
            prop_assert_eq!(idle(&format!("{n}ms")), expected);
            let expected = n.checked_mul(60).filter(|s| idle_range.contains(s)).map(|s| s as u32);
            prop_assert_eq!(idle(&format!("{n}m")), expected);
        }
    }

    #[test]
    fn decorated_numbers_are_never_taken(
        n in 1u32..100,
        decoration in proptest::sample::select(&[
            " {}", "{} ", "+{}", "-{}", "{}.0", "{}e3", "0x{}", "{} s", "{}ss", "{}S",
            "{}\n", "{}٥", "５{}", "{}\u{0}",
        ][..]),
    ) {
        let text = decoration.replace("{}", &n.to_string());
        for quantity in [
            Quantity::Seconds { max: MAX_KEEPIDLE_SECS },
            Quantity::Count { max: MAX_KEEPCNT },
            Quantity::Millis { max: MAX_USER_TIMEOUT_MS },
        ] {
            prop_assert_eq!(parse_quantity(&text, quantity), None, "{:?}", text);
        }
    }
}
