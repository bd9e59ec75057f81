//! Reading and validating the variables, with a record of where each
//! setting came from. Pure: the environment comes in as a lookup function,
//! so this is unit-tested and fuzzed without `LD_PRELOAD`.

use crate::diagnostic::Diagnostic;
use crate::presets::{self, Preset};
use crate::programs::{self, Programs};
use crate::quantity::{parse_quantity, parse_user_timeout, Quantity};
use crate::rules::{self, Selection};
use crate::settings::Settings;
use crate::timers::{
    Timers, MAX_KEEPCNT, MAX_KEEPIDLE_SECS, MAX_KEEPINTVL_SECS, MAX_USER_TIMEOUT_MS,
};
use crate::variables::{msantos_meaning, Setting, NAMES};
use serde::Deserialize;

#[cfg(test)]
mod proptests;
#[cfg(test)]
mod tests;

/// The environment as envy sees it: one optional string per variable, in
/// the order of `NAMES` (envy lower-cases names; we compare without
/// case). Values are validated afterwards, one variable at a time, so one
/// bad value never hides the rest.
#[derive(Debug, Default)]
struct RawEnvironment {
    values: [Option<String>; NAMES.len()],
}

impl RawEnvironment {
    /// The slot for a variable name as envy gives it (lower case).
    fn field(&mut self, name: &str) -> Option<&mut Option<String>> {
        let index = NAMES
            .iter()
            .position(|known| known.eq_ignore_ascii_case(name))?;
        Some(&mut self.values[index])
    }

    /// The value of one of our variables, by its name.
    fn get(&self, name: &str) -> Option<&str> {
        let index = NAMES.iter().position(|known| *known == name)?;
        self.values[index].as_deref()
    }
}

/// What `#[derive(Deserialize)]` would do for a struct of one field per
/// variable, keyed by the one table (`variables::NAMES`) instead of a copy
/// of it as fields: each variable envy hands over goes to its slot; an
/// unknown one is skipped and a repeated one is an error, as with the derive.
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
                            return Err(serde::de::Error::custom(format!(
                                "duplicate field `{name}`"
                            )))
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

/// The result of reading the configuration: the settings to use, what is
/// wrong (to print once at start-up), and where each setting came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Loaded {
    /// The global settings.
    pub settings: Settings,
    /// Which connections get keepalive, and with which timers.
    pub selection: Selection,
    /// One per bad variable, conflict or bad rule, in the order of `NAMES`.
    pub diagnostics: Vec<Diagnostic>,
    /// The path preset (`KEEPALIVE_PATH`), already applied to the timers of
    /// `settings` that no variable set.
    pub path: Option<&'static Preset>,
    /// Only these programs get keepalive (`KEEPALIVE_PROGRAMS`); `None`: all.
    pub programs: Option<Programs>,
    /// The variables each setting was taken from.
    pub sources: Sources,
}

/// Where each setting came from: every spelling that is set and valid on
/// its own, when they all agree (the setting applies); none when none is,
/// or when valid spellings disagree (the setting is ignored).
/// `KEEPALIVE_RULES` is a source as soon as one of its rules is valid.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Sources {
    variables: Vec<(Setting, &'static str)>,
}

impl Sources {
    /// The variables `setting` was taken from, in the order of `NAMES`.
    pub fn of(&self, setting: Setting) -> Vec<&'static str> {
        let named = self.variables.iter().filter(|(s, _)| *s == setting);
        named.map(|&(_, name)| name).collect()
    }

    fn add(&mut self, setting: Setting, names: Vec<&'static str>) {
        self.variables
            .extend(names.into_iter().map(|name| (setting, name)));
    }
}

/// What one setting's spellings came to: the value (`None` when unset,
/// bad or conflicting) and the spellings that are valid on their own, with
/// the meaning of each (`None`: msantos' "not set").
struct Resolved<T> {
    value: Option<T>,
    valid: Vec<(&'static str, Option<T>)>,
}

impl<T: PartialEq> Resolved<T> {
    /// The valid spellings if they all mean the same.
    fn sources(&self) -> Vec<&'static str> {
        let agree = self.valid.windows(2).all(|pair| pair[0].1 == pair[1].1);
        let names = self.valid.iter().map(|&(name, _)| name);
        if agree {
            names.collect()
        } else {
            Vec::new()
        }
    }
}

/// Resolves one setting from all its spellings: each is parsed on its own
/// (a bad one gets its own diagnostic and is ignored), and valid spellings
/// that disagree are a conflict, which ignores the setting (and stops
/// there: later spellings are not looked at).
fn resolve<T: Copy + PartialEq>(
    raw: &RawEnvironment,
    names: &[&'static str],
    expected: &str,
    parse: &dyn Fn(&str) -> Option<T>,
    diagnostics: &mut Vec<Diagnostic>,
) -> Resolved<T> {
    let mut resolved = Resolved {
        value: None,
        valid: Vec::new(),
    };
    let mut chosen: Option<(&'static str, &str, T)> = None;
    for &name in names {
        let Some(text) = raw.get(name) else { continue };
        let Some(meaning) = msantos_meaning(name, text) else {
            resolved.valid.push((name, None));
            continue;
        };
        let Some(value) = parse(meaning) else {
            diagnostics.push(Diagnostic::Invalid {
                variable: name,
                value: text.to_string(),
                expected: expected.to_string(),
            });
            continue;
        };
        resolved.valid.push((name, Some(value)));
        match chosen {
            None => chosen = Some((name, text, value)),
            Some((first, first_text, first_value)) if first_value != value => {
                diagnostics.push(Diagnostic::Conflict {
                    first,
                    first_value: first_text.to_string(),
                    second: name,
                    second_value: text.to_string(),
                });
                resolved.value = None;
                return resolved;
            }
            Some(_) => {}
        }
    }
    resolved.value = chosen.map(|(_, _, value)| value);
    resolved
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

/// Reads our variables through `lookup` (which returns the raw bytes of a
/// variable, or `None` when unset) and validates them.
pub fn load(lookup: impl Fn(&str) -> Option<Vec<u8>>) -> Loaded {
    let mut diagnostics = Vec::new();
    let mut pairs = Vec::new();
    for name in NAMES {
        let Some(bytes) = lookup(name) else { continue };
        match String::from_utf8(bytes) {
            Ok(text) => pairs.push((name.to_string(), text)),
            Err(err) => diagnostics.push(Diagnostic::NotUtf8 {
                variable: name,
                value: String::from_utf8_lossy(err.as_bytes()).into_owned(),
            }),
        }
    }
    // Only strings reach envy, and every field is an optional string, so it
    // cannot fail; an error would mean a field is missing for a name above.
    let raw: RawEnvironment = envy::from_iter(pairs).unwrap_or_default();
    let mut sources = Sources::default();
    let (mut settings, selection) = validate(&raw, &mut diagnostics, &mut sources);
    let (path, programs) = validate_scope(&raw, &mut diagnostics, &mut sources);
    // A variable that sets a timer wins over the preset, timer by timer.
    if let Some(preset) = path {
        settings.timers = settings.timers.or(preset.timers());
    }
    Loaded {
        settings,
        selection,
        diagnostics,
        path,
        programs,
        sources,
    }
}

/// `KEEPALIVE_PATH` and `KEEPALIVE_PROGRAMS`. A bad list of programs is
/// ignored like any bad value: every program gets keepalive, and says why.
fn validate_scope(
    raw: &RawEnvironment,
    diagnostics: &mut Vec<Diagnostic>,
    sources: &mut Sources,
) -> (Option<&'static Preset>, Option<Programs>) {
    let path = resolve(
        raw,
        Setting::Path.variables(),
        &format!("one of {}", presets::names()),
        &presets::find,
        diagnostics,
    );
    sources.add(Setting::Path, path.sources());
    let programs = raw.get("KEEPALIVE_PROGRAMS").and_then(|list| {
        let parsed = programs::parse(list);
        if parsed.is_none() {
            diagnostics.push(Diagnostic::Invalid {
                variable: "KEEPALIVE_PROGRAMS",
                value: list.to_string(),
                expected: programs::VALID.to_string(),
            });
        }
        parsed
    });
    if programs.is_some() {
        sources.add(Setting::Programs, vec!["KEEPALIVE_PROGRAMS"]);
    }
    (path.value, programs)
}

/// `KEEPALIVE` (on/off) and libdontdie's `DD_USE_KEEPALIVE` (1/0): spelled
/// differently, so compared by meaning.
fn validate_enabled(
    raw: &RawEnvironment,
    diagnostics: &mut Vec<Diagnostic>,
    sources: &mut Sources,
) -> bool {
    let names = Setting::Enabled.variables();
    let mut ours = resolve(raw, &names[..1], "on or off", &parse_on_off, diagnostics);
    let dontdie = resolve(raw, &names[1..], "1 or 0", &parse_zero_one, diagnostics);
    if let (Some(on), Some(theirs)) = (ours.value, dontdie.value) {
        if on != theirs {
            diagnostics.push(Diagnostic::Conflict {
                first: "KEEPALIVE",
                first_value: raw.get("KEEPALIVE").unwrap_or_default().to_string(),
                second: "DD_USE_KEEPALIVE",
                second_value: raw.get("DD_USE_KEEPALIVE").unwrap_or_default().to_string(),
            });
            ours.value = None;
        }
    } else if ours.value.is_none() {
        ours.value = dontdie.value;
    }
    let enabled = ours.value;
    ours.valid.extend(dontdie.valid);
    sources.add(Setting::Enabled, ours.sources());
    enabled.unwrap_or(true)
}

fn validate(
    raw: &RawEnvironment,
    diagnostics: &mut Vec<Diagnostic>,
    sources: &mut Sources,
) -> (Settings, Selection) {
    let enabled = validate_enabled(raw, diagnostics, sources);
    let mut number = |setting: Setting, quantity: Quantity| {
        let parse = move |text: &str| parse_quantity(text, quantity);
        let resolved = resolve(
            raw,
            setting.variables(),
            &quantity.describe(),
            &parse,
            diagnostics,
        );
        sources.add(setting, resolved.sources());
        resolved.value
    };
    let idle_secs = number(
        Setting::Idle,
        Quantity::Seconds {
            max: MAX_KEEPIDLE_SECS,
        },
    );
    let interval_secs = number(
        Setting::Interval,
        Quantity::Seconds {
            max: MAX_KEEPINTVL_SECS,
        },
    );
    let count = number(Setting::Count, Quantity::Count { max: MAX_KEEPCNT });
    let user_timeout = resolve(
        raw,
        Setting::UserTimeout.variables(),
        &Quantity::Millis {
            max: MAX_USER_TIMEOUT_MS,
        }
        .describe(),
        &parse_user_timeout,
        diagnostics,
    );
    sources.add(Setting::UserTimeout, user_timeout.sources());
    let directions = resolve(
        raw,
        Setting::Direction.variables(),
        "out, in or both",
        &rules::parse_directions,
        diagnostics,
    );
    sources.add(Setting::Direction, directions.sources());
    // A bad rule drops only itself, so the rules report their own lines.
    let rules = match raw.get("KEEPALIVE_RULES") {
        Some(text) => {
            let (rules, bad) = rules::parse_rules("KEEPALIVE_RULES", text);
            if bad.is_empty() || !rules.is_empty() {
                sources.add(Setting::Rules, vec!["KEEPALIVE_RULES"]);
            }
            diagnostics.extend(bad);
            rules
        }
        None => Vec::new(),
    };
    let debug = resolve(
        raw,
        Setting::Debug.variables(),
        "0 or 1",
        &parse_zero_one,
        diagnostics,
    );
    sources.add(Setting::Debug, debug.sources());
    let settings = Settings {
        enabled,
        debug: debug.value.unwrap_or(false),
        timers: Timers {
            idle_secs,
            interval_secs,
            count,
            user_timeout: user_timeout.value,
        },
    };
    let directions = directions.value.unwrap_or_default();
    (settings, Selection { directions, rules })
}
