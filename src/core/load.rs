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
use std::ops::Range;

#[cfg(test)]
mod proptests;
#[cfg(test)]
mod tests;

/// Our variables' values as text, in the order of `NAMES`, borrowed from
/// whatever the lookup returned: reading them allocates nothing, so the
/// library's constructor stays cheap in every process (issue 14). A value
/// that is not UTF-8 has its diagnostic already and counts as unset.
struct RawEnvironment<'a> {
    values: [Option<&'a str>; NAMES.len()],
}

impl RawEnvironment<'_> {
    /// The value of one of our variables, by its name.
    fn get(&self, name: &str) -> Option<&str> {
        self.values[index_of(name)?]
    }
}

/// The position of one of our variables in `NAMES`.
fn index_of(name: &str) -> Option<usize> {
    NAMES.iter().position(|known| *known == name)
}

/// The bit of one of our variables in a `Sources` mask.
fn bit_of(name: &str) -> u32 {
    index_of(name).map_or(0, bit)
}

/// The bit of the variable `NAMES[index]` in a `Sources` mask.
fn bit(index: usize) -> u32 {
    1 << index
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
/// One bit per variable of `NAMES` (each variable spells one setting).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Sources {
    variables: u32,
}

const _: () = assert!(NAMES.len() <= u32::BITS as usize, "one bit per variable");

impl Sources {
    /// The variables `setting` was taken from, in the order of `NAMES`.
    pub fn of(&self, setting: Setting) -> Vec<&'static str> {
        let set = setting
            .indices()
            .filter(|&index| self.variables & bit(index) != 0);
        set.map(|index| NAMES[index]).collect()
    }

    fn add(&mut self, variables: u32) {
        self.variables |= variables;
    }
}

/// What one setting's spellings came to: the value (`None` when unset,
/// bad or conflicting) and the spellings that are its sources.
struct Resolved<T> {
    value: Option<T>,
    sources: u32,
}

/// Resolves one setting from all its spellings: each is parsed on its own
/// (a bad one gets its own diagnostic and is ignored), and valid spellings
/// that disagree are a conflict, which ignores the setting (and stops
/// there: later spellings are not looked at). `expected` (what is valid)
/// is only written out for a diagnostic.
fn resolve<T: Copy + PartialEq>(
    raw: &RawEnvironment,
    names: Range<usize>,
    expected: &dyn Fn() -> String,
    parse: &dyn Fn(&str) -> Option<T>,
    diagnostics: &mut Vec<Diagnostic>,
) -> Resolved<T> {
    // The spellings valid on their own, and whether they all mean the same
    // (msantos' "not set" being a meaning of its own).
    let mut valid = 0;
    let mut first_meaning: Option<Option<T>> = None;
    let mut agree = true;
    let mut chosen: Option<(&'static str, &str, T)> = None;
    for index in names {
        let name = NAMES[index];
        let Some(text) = raw.values[index] else {
            continue;
        };
        let meaning = match msantos_meaning(name, text) {
            None => None,
            Some(meaning) => match parse(meaning) {
                Some(value) => Some(value),
                None => {
                    diagnostics.push(Diagnostic::Invalid {
                        variable: name,
                        value: text.to_string(),
                        expected: expected(),
                    });
                    continue;
                }
            },
        };
        valid |= bit(index);
        agree &= *first_meaning.get_or_insert(meaning) == meaning;
        let Some(value) = meaning else { continue };
        match chosen {
            None => chosen = Some((name, text, value)),
            Some((first, first_text, first_value)) if first_value != value => {
                diagnostics.push(Diagnostic::Conflict {
                    first,
                    first_value: first_text.to_string(),
                    second: name,
                    second_value: text.to_string(),
                });
                return Resolved {
                    value: None,
                    sources: 0,
                };
            }
            Some(_) => {}
        }
    }
    Resolved {
        value: chosen.map(|(_, _, value)| value),
        sources: if agree { valid } else { 0 },
    }
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
/// variable, or `None` when unset) and validates them. Nothing is copied
/// unless something is wrong: the library runs this in every process.
pub fn load<B: AsRef<[u8]>>(lookup: impl Fn(&str) -> Option<B>) -> Loaded {
    load_values(NAMES.map(lookup))
}

/// `load` with the raw value of each variable given in the order of
/// `NAMES`: the library reads them in one pass over its environment.
pub fn load_values<B: AsRef<[u8]>>(bytes: [Option<B>; NAMES.len()]) -> Loaded {
    let mut diagnostics = Vec::new();
    let mut raw = RawEnvironment {
        values: [None; NAMES.len()],
    };
    for ((name, bytes), text) in NAMES.iter().zip(&bytes).zip(&mut raw.values) {
        let Some(bytes) = bytes.as_ref().map(AsRef::as_ref) else {
            continue;
        };
        match std::str::from_utf8(bytes) {
            Ok(value) => *text = Some(value),
            Err(_) => diagnostics.push(Diagnostic::NotUtf8 {
                variable: name,
                value: String::from_utf8_lossy(bytes).into_owned(),
            }),
        }
    }
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
        Setting::Path.indices(),
        &|| format!("one of {}", presets::names()),
        &presets::find,
        diagnostics,
    );
    sources.add(path.sources);
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
        sources.add(bit_of("KEEPALIVE_PROGRAMS"));
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
    let Range { start, end } = Setting::Enabled.indices();
    let on_or_off = || "on or off".to_string();
    let mut ours = resolve(
        raw,
        start..start + 1,
        &on_or_off,
        &parse_on_off,
        diagnostics,
    );
    let one_or_zero = || "1 or 0".to_string();
    let dontdie = resolve(
        raw,
        start + 1..end,
        &one_or_zero,
        &parse_zero_one,
        diagnostics,
    );
    // Both spellings always mean on or off: they agree unless they conflict.
    let mut agreeing = ours.sources | dontdie.sources;
    if let (Some(on), Some(theirs)) = (ours.value, dontdie.value) {
        if on != theirs {
            diagnostics.push(Diagnostic::Conflict {
                first: "KEEPALIVE",
                first_value: raw.get("KEEPALIVE").unwrap_or_default().to_string(),
                second: "DD_USE_KEEPALIVE",
                second_value: raw.get("DD_USE_KEEPALIVE").unwrap_or_default().to_string(),
            });
            ours.value = None;
            agreeing = 0;
        }
    } else if ours.value.is_none() {
        ours.value = dontdie.value;
    }
    sources.add(agreeing);
    ours.value.unwrap_or(true)
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
            setting.indices(),
            &|| quantity.describe(),
            &parse,
            diagnostics,
        );
        sources.add(resolved.sources);
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
        Setting::UserTimeout.indices(),
        &|| {
            Quantity::Millis {
                max: MAX_USER_TIMEOUT_MS,
            }
            .describe()
        },
        &parse_user_timeout,
        diagnostics,
    );
    sources.add(user_timeout.sources);
    let directions = resolve(
        raw,
        Setting::Direction.indices(),
        &|| "out, in or both".to_string(),
        &rules::parse_directions,
        diagnostics,
    );
    sources.add(directions.sources);
    // A bad rule drops only itself, so the rules report their own lines.
    let rules = match raw.get("KEEPALIVE_RULES") {
        Some(text) => {
            let (rules, bad) = rules::parse_rules("KEEPALIVE_RULES", text);
            if bad.is_empty() || !rules.is_empty() {
                sources.add(bit_of("KEEPALIVE_RULES"));
            }
            diagnostics.extend(bad);
            rules
        }
        None => Vec::new(),
    };
    let debug = resolve(
        raw,
        Setting::Debug.indices(),
        &|| "0 or 1".to_string(),
        &parse_zero_one,
        diagnostics,
    );
    sources.add(debug.sources);
    let override_program = resolve(
        raw,
        Setting::Override.indices(),
        &|| "on or off".to_string(),
        &parse_on_off,
        diagnostics,
    );
    sources.add(override_program.sources);
    let settings = Settings {
        enabled,
        debug: debug.value.unwrap_or(false),
        timers: Timers {
            idle_secs,
            interval_secs,
            count,
            user_timeout: user_timeout.value,
        },
        override_program: override_program.value.unwrap_or(false),
    };
    let directions = directions.value.unwrap_or_default();
    (settings, Selection { directions, rules })
}
