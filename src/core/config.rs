//! Configuration: which variables we read, how their values are spelled, and
//! what is valid. Pure code: it sees the environment only through a lookup
//! function, so it is unit-tested and fuzzed without `LD_PRELOAD`.

use crate::presets::{self, Preset};
use crate::programs::{self, Programs};
use crate::rules::{self, Selection};
use serde::Deserialize;
use std::fmt::Write as _;

/// Kernel limits for the keepalive timers (`MAX_TCP_KEEP*` in include/net/tcp.h).
pub const MAX_KEEPIDLE_SECS: u32 = 32767;
pub const MAX_KEEPINTVL_SECS: u32 = 32767;
pub const MAX_KEEPCNT: u32 = 127;
/// `TCP_USER_TIMEOUT` takes a non-negative C int of milliseconds.
pub const MAX_USER_TIMEOUT_MS: u32 = i32::MAX as u32;

/// Every variable the library reads, in the order diagnostics are printed.
/// Only these are ever looked up; nothing else in the environment matters.
pub const VARIABLE_NAMES: [&str; 20] = [
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
    "KEEPALIVE_DIRECTION",
    "KEEPALIVE_RULES",
    "KEEPALIVE_DEBUG",
    "LIBKEEPALIVE_DEBUG",
    "DD_DEBUG",
    "KEEPALIVE_PATH",
    "KEEPALIVE_PROGRAMS",
];

/// `TCP_USER_TIMEOUT` as configured: a fixed value, or derived from the
/// effective keepalive timers once the kernel defaults are known.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UserTimeout {
    Millis(u32),
    Auto,
}

/// The validated configuration. `None` means "not configured: the kernel
/// default applies".
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    pub enabled: bool,
    pub debug: bool,
    pub idle_secs: Option<u32>,
    pub interval_secs: Option<u32>,
    pub count: Option<u32>,
    pub user_timeout: Option<UserTimeout>,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            enabled: true,
            debug: false,
            idle_secs: None,
            interval_secs: None,
            count: None,
            user_timeout: None,
        }
    }
}

/// The environment as envy sees it: one optional string per variable, in
/// the order of `VARIABLE_NAMES` (envy lower-cases names; we compare without
/// case). Values are validated afterwards, one variable at a time, so one
/// bad value never hides the rest.
#[derive(Debug, Default)]
struct RawEnvironment {
    values: [Option<String>; VARIABLE_NAMES.len()],
}

impl RawEnvironment {
    /// The slot for a variable name as envy gives it (lower case).
    fn field(&mut self, name: &str) -> Option<&mut Option<String>> {
        let index = VARIABLE_NAMES
            .iter()
            .position(|known| known.eq_ignore_ascii_case(name))?;
        Some(&mut self.values[index])
    }

    /// The value of one of our variables, by its name.
    fn get(&self, name: &str) -> Option<&str> {
        let index = VARIABLE_NAMES.iter().position(|known| *known == name)?;
        self.values[index].as_deref()
    }

    /// The spellings among `names` that are set, in that order, each with
    /// the meaning its library gives it (`msantos_meaning`).
    fn present(&self, names: &[&'static str]) -> Vec<Spelling<'_>> {
        names
            .iter()
            .filter_map(|&name| {
                let text = self.get(name)?;
                let value = msantos_meaning(name, text)?;
                Some(Spelling { name, text, value })
            })
            .collect()
    }
}

/// What `#[derive(Deserialize)]` would do for a struct of one field per
/// variable, as one loop instead of a copy of the same code per field
/// (several KB of the library): each variable envy hands over goes to its slot; an unknown one is skipped and
/// a repeated one is an error, as with the derive.
impl<'de> Deserialize<'de> for RawEnvironment {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Fields;
        impl<'de> serde::de::Visitor<'de> for Fields {
            type Value = RawEnvironment;

            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("struct RawEnvironment")
            }

            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<RawEnvironment, A::Error> {
                let mut raw = RawEnvironment::default();
                while let Some(name) = map.next_key::<String>()? {
                    match raw.field(&name) {
                        Some(Some(_)) => {
                            return Err(serde::de::Error::custom(text(format_args!(
                                "duplicate field `{name}`"
                            ))))
                        }
                        Some(slot) => *slot = map.next_value()?,
                        None => {
                            map.next_value::<serde::de::IgnoredAny>()?;
                        }
                    }
                }
                Ok(raw)
            }
        }
        deserializer.deserialize_struct("RawEnvironment", &[], Fields)
    }
}

/// How a number is written for one setting and what it means (also in the
/// timers of a rule, see `rules`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Quantity {
    /// Whole seconds; suffixes ms (if whole), s, m, h.
    Seconds { max: u32 },
    /// Milliseconds; suffixes ms, s, m, h; `auto` allowed.
    Millis { max: u32 },
    /// A plain count, no suffix.
    Count { max: u32 },
}

impl Quantity {
    pub fn describe(self) -> String {
        match self {
            Quantity::Seconds { max } => text(format_args!(
                "whole seconds 1..{max} (a suffix ms, s, m or h is allowed)"
            )),
            Quantity::Millis { max } => text(format_args!(
                "milliseconds 0..{max} (a suffix ms, s, m or h is allowed) or auto"
            )),
            Quantity::Count { max } => text(format_args!("a whole number 1..{max}")),
        }
    }
}

/// `format!` for messages, with its inlined fast path for text without
/// arguments taken out of every call site: one copy serves them all.
#[inline(never)]
pub fn text(message: std::fmt::Arguments<'_>) -> String {
    std::fmt::format(message)
}

/// Parses `digits[suffix]` strictly: no sign, no spaces, no other base, no
/// exponent. Returns the value in the quantity's own unit, or `None`.
pub fn parse_quantity(text: &str, quantity: Quantity) -> Option<u32> {
    let digits_end = text
        .bytes()
        .position(|b| !b.is_ascii_digit())
        .unwrap_or(text.len());
    let (digits, suffix) = text.split_at(digits_end);
    if digits.is_empty() {
        return None;
    }
    // Saturate instead of failing so that a huge number is reported as out of
    // range rather than as a spelling mistake.
    let number = digits.bytes().fold(0u64, |acc, b| {
        acc.saturating_mul(10).saturating_add(u64::from(b - b'0'))
    });
    let millis_per_unit: u64 = match suffix {
        "ms" => 1,
        "s" | "" => 1000,
        "m" => 60_000,
        "h" => 3_600_000,
        _ => return None,
    };
    let (value, min, max) = match quantity {
        Quantity::Count { max } => {
            if !suffix.is_empty() {
                return None;
            }
            (number, 1, max)
        }
        Quantity::Seconds { max } => {
            let millis = number.saturating_mul(millis_per_unit);
            if millis % 1000 != 0 {
                return None;
            }
            (millis / 1000, 1, max)
        }
        Quantity::Millis { max } => {
            // A bare number is already milliseconds, the kernel's unit.
            let per_unit = if suffix.is_empty() {
                1
            } else {
                millis_per_unit
            };
            (number.saturating_mul(per_unit), 0, max)
        }
    };
    if value < min || value > u64::from(max) {
        return None;
    }
    u32::try_from(value).ok()
}

/// A value shown in a diagnostic: escaped so it stays on one line, and cut
/// short so a megabyte of garbage gives a readable message.
pub fn quote_value(value: &str) -> String {
    quote_value_up_to(value, 40)
}

/// `quote_value` showing up to `shown_chars` characters.
pub fn quote_value_up_to(value: &str, shown_chars: usize) -> String {
    let mut quoted = String::from("\"");
    for (count, c) in value.chars().enumerate() {
        if count == shown_chars {
            let _ = write!(quoted, "\"... ({} bytes)", value.len());
            return quoted;
        }
        quoted.extend(c.escape_debug());
    }
    quoted.push('"');
    quoted
}

/// One variable that was set, by name, with its text as written (for
/// messages) and the value it stands for (what is parsed).
struct Spelling<'a> {
    name: &'static str,
    text: &'a str,
    value: &'a str,
}

/// What msantos/libkeepalive gives its own variables, which its users have
/// in their units: `0` for a timer means the system default (so: not set),
/// `TCP_USER_TIMEOUT=-1` means derived from the timers (our `auto`), and
/// `LIBKEEPALIVE_DEBUG` set to anything turns debugging on. Only through
/// its names: the HOWTO's and ours keep their strict ranges. `None`: the
/// variable counts as not set.
fn msantos_meaning<'a>(name: &str, text: &'a str) -> Option<&'a str> {
    match (name, text) {
        ("TCP_KEEPIDLE" | "TCP_KEEPINTVL" | "TCP_KEEPCNT", "0") => None,
        ("TCP_USER_TIMEOUT", "-1") => Some("auto"),
        ("LIBKEEPALIVE_DEBUG", _) => Some("1"),
        _ => Some(text),
    }
}

/// Resolves one setting from all its spellings: each is parsed on its own
/// (a bad one gets its own diagnostic and is ignored), and valid spellings
/// that disagree are a conflict, which ignores the setting.
fn resolve<T: Copy + PartialEq>(
    spellings: &[Spelling<'_>],
    valid: &str,
    parse: &dyn Fn(&str) -> Option<T>,
    diagnostics: &mut Vec<String>,
) -> Option<T> {
    let mut chosen: Option<(&Spelling<'_>, T)> = None;
    for spelling in spellings {
        let Some(value) = parse(spelling.value) else {
            diagnostics.push(text(format_args!(
                "libkeepalive: {}={} is not valid: expected {}; ignoring it",
                spelling.name,
                quote_value(spelling.text),
                valid
            )));
            continue;
        };
        match chosen {
            None => chosen = Some((spelling, value)),
            Some((first, first_value)) if first_value != value => {
                diagnostics.push(text(format_args!(
                    "libkeepalive: {}={} conflicts with {}={} (two names for one setting); \
                     ignoring both",
                    first.name,
                    quote_value(first.text),
                    spelling.name,
                    quote_value(spelling.text)
                )));
                return None;
            }
            Some(_) => {}
        }
    }
    chosen.map(|(_, value)| value)
}

fn parse_on_off(text: &str) -> Option<bool> {
    match text {
        "on" => Some(true),
        "off" => Some(false),
        _ => None,
    }
}

fn parse_zero_one(text: &str) -> Option<bool> {
    match text {
        "1" => Some(true),
        "0" => Some(false),
        _ => None,
    }
}

pub fn parse_user_timeout(text: &str) -> Option<UserTimeout> {
    if text == "auto" {
        return Some(UserTimeout::Auto);
    }
    parse_quantity(
        text,
        Quantity::Millis {
            max: MAX_USER_TIMEOUT_MS,
        },
    )
    .map(UserTimeout::Millis)
}

/// The result of reading the configuration: the settings to use, and one
/// line per bad variable or conflict, to print once at start-up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Loaded {
    pub settings: Settings,
    /// Which connections get keepalive, and with which timers.
    pub selection: Selection,
    pub diagnostics: Vec<String>,
    /// The path preset (`KEEPALIVE_PATH`), already applied to the timers of
    /// `settings` that no variable set.
    pub path: Option<&'static Preset>,
    /// Only these programs get keepalive (`KEEPALIVE_PROGRAMS`); `None`: all.
    pub programs: Option<Programs>,
}

/// Reads our variables through `lookup` (which returns the raw bytes of a
/// variable, or `None` when unset) and validates them.
pub fn load(lookup: impl Fn(&str) -> Option<Vec<u8>>) -> Loaded {
    let mut diagnostics = Vec::new();
    let mut pairs = Vec::new();
    for name in VARIABLE_NAMES {
        let Some(bytes) = lookup(name) else { continue };
        match String::from_utf8(bytes) {
            Ok(text) => pairs.push((name.to_string(), text)),
            Err(err) => diagnostics.push(text(format_args!(
                "libkeepalive: {}={} is not valid: not UTF-8 text; ignoring it",
                name,
                quote_value(&String::from_utf8_lossy(err.as_bytes()))
            ))),
        }
    }
    // Only strings reach envy, and every field is an optional string, so it
    // cannot fail; an error would mean a field is missing for a name above.
    let raw: RawEnvironment = envy::from_iter(pairs).unwrap_or_default();
    let (mut settings, selection) = validate(&raw, &mut diagnostics);
    let (path, programs) = validate_scope(&raw, &mut diagnostics);
    // A variable that sets a timer wins over the preset, timer by timer.
    if let Some(preset) = path {
        settings.idle_secs = settings.idle_secs.or(Some(preset.idle_secs));
        settings.interval_secs = settings.interval_secs.or(Some(preset.interval_secs));
        settings.count = settings.count.or(Some(preset.count));
    }
    Loaded {
        settings,
        selection,
        diagnostics,
        path,
        programs,
    }
}

/// `KEEPALIVE_PATH` and `KEEPALIVE_PROGRAMS`. A bad list of programs is
/// ignored like any bad value: every program gets keepalive, and says why.
fn validate_scope(
    raw: &RawEnvironment,
    diagnostics: &mut Vec<String>,
) -> (Option<&'static Preset>, Option<Programs>) {
    let path = resolve(
        &raw.present(Setting::Path.variables()),
        &text(format_args!("one of {}", presets::names())),
        &presets::find,
        diagnostics,
    );
    let programs = raw.get("KEEPALIVE_PROGRAMS").and_then(|list| {
        let parsed = programs::parse(list);
        if parsed.is_none() {
            diagnostics.push(text(format_args!(
                "libkeepalive: KEEPALIVE_PROGRAMS={} is not valid: expected {}; ignoring it",
                quote_value(list),
                programs::VALID
            )));
        }
        parsed
    });
    (path, programs)
}

fn validate(raw: &RawEnvironment, diagnostics: &mut Vec<String>) -> (Settings, Selection) {
    let seconds = |max| {
        let quantity = Quantity::Seconds { max };
        (quantity.describe(), move |text: &str| {
            parse_quantity(text, quantity)
        })
    };
    let enabled = {
        let mut enabled = resolve(
            &raw.present(&Setting::Enabled.variables()[..1]),
            "on or off",
            &parse_on_off,
            diagnostics,
        );
        let dontdie = resolve(
            &raw.present(&Setting::Enabled.variables()[1..]),
            "1 or 0",
            &parse_zero_one,
            diagnostics,
        );
        // The two switches are spelled differently, so compare their meaning.
        if let (Some(ours), Some(theirs)) = (enabled, dontdie) {
            if ours != theirs {
                diagnostics.push(text(format_args!(
                    "libkeepalive: KEEPALIVE={} conflicts with DD_USE_KEEPALIVE={} \
                     (two names for one setting); ignoring both",
                    quote_value(raw.get("KEEPALIVE").unwrap_or_default()),
                    quote_value(raw.get("DD_USE_KEEPALIVE").unwrap_or_default())
                )));
                enabled = None;
            }
        } else if enabled.is_none() {
            enabled = dontdie;
        }
        enabled.unwrap_or(true)
    };
    let (idle_valid, idle_parse) = seconds(MAX_KEEPIDLE_SECS);
    let idle_secs = resolve(
        &raw.present(Setting::Idle.variables()),
        &idle_valid,
        &idle_parse,
        diagnostics,
    );
    let (intvl_valid, intvl_parse) = seconds(MAX_KEEPINTVL_SECS);
    let interval_secs = resolve(
        &raw.present(Setting::Interval.variables()),
        &intvl_valid,
        &intvl_parse,
        diagnostics,
    );
    let count_quantity = Quantity::Count { max: MAX_KEEPCNT };
    let count = resolve(
        &raw.present(Setting::Count.variables()),
        &count_quantity.describe(),
        &|text| parse_quantity(text, count_quantity),
        diagnostics,
    );
    let user_timeout = resolve(
        &raw.present(Setting::UserTimeout.variables()),
        &Quantity::Millis {
            max: MAX_USER_TIMEOUT_MS,
        }
        .describe(),
        &parse_user_timeout,
        diagnostics,
    );
    let directions = resolve(
        &raw.present(Setting::Direction.variables()),
        "out, in or both",
        &rules::parse_directions,
        diagnostics,
    )
    .unwrap_or_default();
    // A bad rule drops only itself, so the rules report their own lines.
    let rules = match raw.get("KEEPALIVE_RULES") {
        Some(text) => {
            let (rules, bad) = rules::parse_rules("KEEPALIVE_RULES", text);
            diagnostics.extend(bad);
            rules
        }
        None => Vec::new(),
    };
    let debug = resolve(
        &raw.present(Setting::Debug.variables()),
        "0 or 1",
        &parse_zero_one,
        diagnostics,
    )
    .unwrap_or(false);
    let settings = Settings {
        enabled,
        debug,
        idle_secs,
        interval_secs,
        count,
        user_timeout,
    };
    (settings, Selection { directions, rules })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn load_from(vars: &[(&str, &str)]) -> Loaded {
        let map: HashMap<String, Vec<u8>> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.as_bytes().to_vec()))
            .collect();
        load(|name| map.get(name).cloned())
    }

    #[test]
    fn envy_maps_each_variable_to_its_own_field() {
        for (i, name) in VARIABLE_NAMES.iter().enumerate() {
            let pairs = vec![
                (name.to_string(), format!("value {i}")),
                ("UNRELATED".to_string(), "x".to_string()),
            ];
            let mut raw: RawEnvironment = envy::from_iter(pairs).unwrap();
            let expected = format!("value {i}");
            for other in VARIABLE_NAMES {
                let slot = raw.field(&other.to_lowercase()).unwrap();
                let wanted = (other == *name).then_some(expected.as_str());
                assert_eq!(slot.as_deref(), wanted, "{name} -> {other}");
            }
        }
        let twice = vec![
            ("KEEPIDLE".to_string(), "1".to_string()),
            ("keepidle".to_string(), "2".to_string()),
        ];
        assert!(envy::from_iter::<_, RawEnvironment>(twice).is_err());
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
        assert_eq!(loaded.settings.idle_secs, Some(60));
        assert_eq!(loaded.settings.interval_secs, Some(10));
        assert_eq!(loaded.settings.count, Some(6));
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
        assert_eq!(s.idle_secs, Some(300));
        assert_eq!(s.interval_secs, Some(2));
        assert_eq!(s.user_timeout, Some(UserTimeout::Millis(90_000)));
        let s = load_from(&[("KEEPIDLE", "1h"), ("KEEPALIVE_USER_TIMEOUT", "1500")]).settings;
        assert_eq!(s.idle_secs, Some(3600));
        assert_eq!(s.user_timeout, Some(UserTimeout::Millis(1500)));
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
            let line = &loaded.diagnostics[0];
            assert!(line.starts_with("libkeepalive: KEEPIDLE=\""), "{line}");
            assert!(line.contains("1..32767"), "{line}");
            assert!(!line.contains('\n'));
            assert_eq!(loaded.settings.idle_secs, None);
            // The other setting still applies.
            assert_eq!(loaded.settings.count, Some(4));
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
        assert_eq!((s.idle_secs, s.interval_secs, s.count), (None, None, None));
        assert_eq!(s.user_timeout, Some(UserTimeout::Auto));
        assert!(s.debug);
        assert!(load_from(&[("LIBKEEPALIVE_DEBUG", "0")]).settings.debug);
        assert!(load_from(&[("LIBKEEPALIVE_DEBUG", "")]).settings.debug);
        // A system-default 0 is no conflict with a value set elsewhere.
        let both = load_from(&[("TCP_KEEPIDLE", "0"), ("KEEPIDLE", "60")]);
        assert!(both.diagnostics.is_empty());
        assert_eq!(both.settings.idle_secs, Some(60));
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
            assert!(loaded.diagnostics[0].contains(&format!("{name}=\"{value}\"")));
        }
        // A conflict quotes the text as written, not its meaning.
        let conflict = load_from(&[
            ("KEEPALIVE_USER_TIMEOUT", "5000"),
            ("TCP_USER_TIMEOUT", "-1"),
        ]);
        assert!(conflict.diagnostics[0].contains("TCP_USER_TIMEOUT=\"-1\""));
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
                s.idle_secs,
                s.interval_secs,
                s.count,
                s.user_timeout,
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
            (s.idle_secs, s.interval_secs, s.count, s.debug),
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
        assert_eq!(loaded.settings.idle_secs, Some(60));

        let loaded = load_from(&[("KEEPIDLE", "60"), ("DD_TCP_KEEPALIVE_TIME", "30")]);
        assert_eq!(loaded.diagnostics.len(), 1);
        assert!(loaded.diagnostics[0].contains("KEEPIDLE=\"60\""));
        assert!(loaded.diagnostics[0].contains("DD_TCP_KEEPALIVE_TIME=\"30\""));
        assert_eq!(loaded.settings.idle_secs, None);

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
            assert!(loaded.diagnostics[0].contains(name));
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
            .starts_with("libkeepalive: KEEPALIVE_DIRECTION=\"outbound\" is not valid"));
        assert!(loaded.diagnostics[0].contains("out, in or both"));
        assert!(loaded.diagnostics[1].starts_with(
            "libkeepalive: KEEPALIVE_RULES: rule 1 \"net=10.0.0.0/40:off\" is not valid"
        ));
        assert_eq!(loaded.selection.directions, rules::Directions::Both);
        assert_eq!(loaded.selection.rules.len(), 1);
        assert_eq!(loaded.selection.rules[0].number, 2);
        assert_eq!(loaded.settings.count, Some(4));
    }

    #[test]
    fn user_timeout_auto() {
        assert_eq!(
            load_from(&[("KEEPALIVE_USER_TIMEOUT", "auto")])
                .settings
                .user_timeout,
            Some(UserTimeout::Auto)
        );
    }

    #[test]
    fn non_utf8_and_huge_values_are_reported_briefly() {
        let loaded = load(|name| (name == "KEEPCNT").then(|| vec![b'5', 0xff]));
        assert_eq!(loaded.diagnostics.len(), 1);
        assert!(loaded.diagnostics[0].contains("KEEPCNT"));
        let huge = "7".repeat(1 << 20);
        let loaded = load_from(&[("KEEPINTVL", &huge)]);
        assert_eq!(loaded.diagnostics.len(), 1);
        assert!(loaded.diagnostics[0].len() < 300);
        assert!(loaded.diagnostics[0].contains("1048576 bytes"));
    }

    #[test]
    fn control_characters_stay_on_one_line() {
        let loaded = load_from(&[("KEEPIDLE", "6\n0")]);
        assert_eq!(loaded.diagnostics.len(), 1);
        assert!(!loaded.diagnostics[0].contains('\n'));
        assert!(loaded.diagnostics[0].contains("6\\n0"));
    }

    #[test]
    fn a_path_preset_sets_the_timers_a_variable_does_not() {
        let loaded = load_from(&[("KEEPALIVE_PATH", "aws-nlb")]);
        assert!(loaded.diagnostics.is_empty(), "{:?}", loaded.diagnostics);
        assert_eq!(loaded.path.map(|p| p.name), Some("aws-nlb"));
        let s = &loaded.settings;
        assert_eq!(
            (s.idle_secs, s.interval_secs, s.count),
            (Some(100), Some(30), Some(5))
        );
        let s = load_from(&[("KEEPALIVE_PATH", "gcp"), ("TCP_KEEPIDLE", "45")]).settings;
        assert_eq!(
            (s.idle_secs, s.interval_secs, s.count),
            (Some(45), Some(60), Some(5))
        );
        assert_eq!(s.user_timeout, None);
        let loaded = load_from(&[("KEEPALIVE_PATH", "aws"), ("KEEPCNT", "3")]);
        assert_eq!(loaded.diagnostics.len(), 1);
        assert!(loaded.diagnostics[0].starts_with(
            "libkeepalive: KEEPALIVE_PATH=\"aws\" is not valid: expected one of aws-nlb, aws-natgw,"
        ));
        assert_eq!(loaded.settings.idle_secs, None);
        assert_eq!(loaded.settings.count, Some(3));
    }

    #[test]
    fn programs_are_read_and_a_bad_list_is_ignored() {
        let loaded = load_from(&[("KEEPALIVE_PROGRAMS", "nginx, python3")]);
        assert!(loaded.diagnostics.is_empty());
        assert_eq!(loaded.programs.unwrap().names, ["nginx", "python3"]);
        let loaded = load_from(&[("KEEPALIVE_PROGRAMS", "/usr/bin/nginx")]);
        assert_eq!(loaded.diagnostics.len(), 1);
        assert!(loaded.diagnostics[0]
            .starts_with("libkeepalive: KEEPALIVE_PROGRAMS=\"/usr/bin/nginx\" is not valid"));
        assert_eq!(loaded.programs, None);
        assert_eq!(load_from(&[]).programs, None);
    }

    #[test]
    fn every_name_reaches_envy() {
        // Guards the two lists (VARIABLE_NAMES and the alias groups of Setting).
        for name in VARIABLE_NAMES {
            if name == "LIBKEEPALIVE_DEBUG" {
                // Any value is valid there (msantos's meaning): read, it is on.
                assert!(load_from(&[(name, "not-a-valid-value!")]).settings.debug);
                continue;
            }
            let loaded = load_from(&[(name, "not-a-valid-value!")]);
            assert_eq!(loaded.diagnostics.len(), 1, "{name} was not read");
            assert!(loaded.diagnostics[0].contains(name));
        }
    }

    #[test]
    fn parser_never_accepts_out_of_range() {
        // A small exhaustive sweep over short inputs of the parser's alphabet.
        let alphabet = ["0", "1", "9", "m", "s", "h", " ", "+", "-", "x"];
        let mut inputs = vec![String::new()];
        for _ in 0..4 {
            let mut next = Vec::new();
            for prefix in &inputs {
                for piece in alphabet {
                    next.push(format!("{prefix}{piece}"));
                }
            }
            inputs.extend(next);
        }
        for text in inputs {
            if let Some(v) = parse_quantity(&text, Quantity::Seconds { max: 32767 }) {
                assert!((1..=32767).contains(&v), "{text:?} -> {v}");
                assert!(text.bytes().all(|b| b.is_ascii_alphanumeric()), "{text:?}");
            }
            if let Some(v) = parse_quantity(&text, Quantity::Count { max: 127 }) {
                assert!((1..=127).contains(&v), "{text:?} -> {v}");
            }
        }
    }
}

/// One setting of `Settings`, for tools that talk about settings rather than
/// variables (the `keepalive` command's options and its `--check` report).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Setting {
    Enabled,
    Idle,
    Interval,
    Count,
    UserTimeout,
    Direction,
    Rules,
    Debug,
    Path,
    Programs,
}

impl Setting {
    pub const ALL: [Setting; 10] = [
        Setting::Enabled,
        Setting::Idle,
        Setting::Interval,
        Setting::Count,
        Setting::UserTimeout,
        Setting::Direction,
        Setting::Rules,
        Setting::Debug,
        Setting::Path,
        Setting::Programs,
    ];

    /// Every variable that spells this setting, in the order `load` reads
    /// them: the one list of aliases, which `validate` reads too.
    pub fn variables(self) -> &'static [&'static str] {
        match self {
            Setting::Enabled => &["KEEPALIVE", "DD_USE_KEEPALIVE"],
            Setting::Idle => &["KEEPIDLE", "TCP_KEEPIDLE", "DD_TCP_KEEPALIVE_TIME"],
            Setting::Interval => &["KEEPINTVL", "TCP_KEEPINTVL", "DD_TCP_KEEPALIVE_INTVL"],
            Setting::Count => &["KEEPCNT", "TCP_KEEPCNT", "DD_TCP_KEEPALIVE_PROBES"],
            Setting::UserTimeout => &["KEEPALIVE_USER_TIMEOUT", "TCP_USER_TIMEOUT"],
            Setting::Direction => &["KEEPALIVE_DIRECTION"],
            Setting::Rules => &["KEEPALIVE_RULES"],
            Setting::Debug => &["KEEPALIVE_DEBUG", "LIBKEEPALIVE_DEBUG", "DD_DEBUG"],
            Setting::Path => &["KEEPALIVE_PATH"],
            Setting::Programs => &["KEEPALIVE_PROGRAMS"],
        }
    }

    /// This setting's value in `settings`, in a form that compares equal
    /// exactly when two spellings mean the same thing.
    fn value_in(self, loaded: &Loaded) -> String {
        let settings = &loaded.settings;
        match self {
            Setting::Enabled => format!("{:?}", settings.enabled),
            Setting::Idle => format!("{:?}", settings.idle_secs),
            Setting::Interval => format!("{:?}", settings.interval_secs),
            Setting::Count => format!("{:?}", settings.count),
            Setting::UserTimeout => format!("{:?}", settings.user_timeout),
            Setting::Direction => format!("{:?}", loaded.selection.directions),
            Setting::Rules => format!("{:?}", loaded.selection.rules),
            Setting::Debug => format!("{:?}", settings.debug),
            Setting::Path => format!("{:?}", loaded.path.map(|preset| preset.name)),
            Setting::Programs => format!("{:?}", loaded.programs),
        }
    }
}

/// The variables that `settings` of `load(lookup)` took `setting` from:
/// every spelling that is set and valid, when they all agree (the library
/// applies it); empty when none is, or when valid spellings disagree (the
/// library ignores the setting). Uses `load` itself, so the rules stay one.
/// `KEEPALIVE_RULES` is a source as soon as one of its rules is valid: a
/// bad rule drops only itself.
pub fn sources(setting: Setting, lookup: impl Fn(&str) -> Option<Vec<u8>>) -> Vec<&'static str> {
    let mut valid: Vec<(&'static str, String)> = Vec::new();
    for &name in setting.variables() {
        let Some(value) = lookup(name) else { continue };
        let alone = load(|asked| (asked == name).then(|| value.clone()));
        let applied = alone.diagnostics.is_empty()
            || (setting == Setting::Rules && !alone.selection.rules.is_empty());
        if applied {
            valid.push((name, setting.value_in(&alone)));
        }
    }
    let agree = valid.windows(2).all(|pair| pair[0].1 == pair[1].1);
    if agree {
        valid.into_iter().map(|(name, _)| name).collect()
    } else {
        Vec::new()
    }
}

#[cfg(test)]
mod setting_tests {
    use super::*;
    use std::collections::HashMap;

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
        assert_eq!(flat, VARIABLE_NAMES);
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
            _ => ["3", "3"],
        };
        for setting in Setting::ALL {
            for (index, &name) in setting.variables().iter().enumerate() {
                // DD_USE_KEEPALIVE spells "off" as 0.
                let value = valid(setting)[index.min(1)];
                let loaded = load(lookup_in(&[(name, value)]));
                assert!(loaded.diagnostics.is_empty(), "{name}={value}");
                let nothing = load(|_| None);
                for other in Setting::ALL {
                    let changed = other.value_in(&loaded) != other.value_in(&nothing);
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
        assert_eq!(load(lookup_in(&mixed)).settings.interval_secs, Some(5));
    }
}

/// Property tests of the parser (the fuzzing of issue 6, run in the ordinary
/// suite): whatever bytes any variable holds, `load` does not panic, accepts
/// nothing outside the kernel's ranges, and reports a bad variable in one
/// line that names it.
#[cfg(test)]
mod proptests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::HashMap;

    /// The variables of the timers and switches, whose grammar is a single
    /// word (digits and a unit, on/off, 0/1, auto). Listed here rather than
    /// taken from VARIABLE_NAMES so that variables with a grammar of their
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
        timer(settings.idle_secs, MAX_KEEPIDLE_SECS)
            && timer(settings.interval_secs, MAX_KEEPINTVL_SECS)
            && timer(settings.count, MAX_KEEPCNT)
            && match settings.user_timeout {
                Some(UserTimeout::Millis(ms)) => ms <= MAX_USER_TIMEOUT_MS,
                _ => true,
            }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        #[test]
        fn any_environment_gives_settings_in_range(env in environment(&VARIABLE_NAMES)) {
            let loaded = load(|name| env.get(name).cloned());
            prop_assert!(in_range(&loaded.settings), "{:?} -> {:?}", env, loaded.settings);
            for line in &loaded.diagnostics {
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
                prop_assert!(loaded.diagnostics[0].starts_with(&named), "{}", loaded.diagnostics[0]);
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
}
