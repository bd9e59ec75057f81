//! The environment PROGRAM gets: our options turned into the library's own
//! variables, validated by the library's own `load`, and the library
//! added to `LD_PRELOAD`.

use crate::args::OptionValue;
use keepalive_core::load::{self, Loaded};
use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::Path;

/// Changes to the inherited environment.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Overrides {
    /// Variable, value, and the option it came from.
    pub set: Vec<(&'static str, Vec<u8>, &'static str)>,
    /// Other spellings of a setting an option gave: dropped, or the library
    /// would see two values for one setting and ignore both.
    pub removed: Vec<&'static str>,
}

impl Overrides {
    /// An option sets its setting's main variable (the first spelling) and
    /// removes every other spelling; a later option for the same setting wins.
    pub fn from_options(options: &[OptionValue]) -> Overrides {
        let mut overrides = Overrides::default();
        for option in options {
            let [main, others @ ..] = option.setting.variables() else {
                continue;
            };
            overrides.set.retain(|(name, _, _)| name != main);
            overrides
                .set
                .push((main, option.value.clone(), option.option));
            for other in others {
                if !overrides.removed.contains(other) {
                    overrides.removed.push(other);
                }
            }
        }
        overrides
    }

    /// The option that set `variable`, if one did.
    pub fn option_for(&self, variable: &str) -> Option<&'static str> {
        self.set
            .iter()
            .find(|(name, _, _)| *name == variable)
            .map(|(_, _, option)| *option)
    }

    /// A variable's value as PROGRAM will see it, given the inherited one.
    pub fn lookup(
        &self,
        name: &str,
        inherited: impl Fn(&str) -> Option<Vec<u8>>,
    ) -> Option<Vec<u8>> {
        if let Some((_, value, _)) = self.set.iter().find(|(set, _, _)| *set == name) {
            return Some(value.clone());
        }
        if self.removed.contains(&name) {
            return None;
        }
        inherited(name)
    }
}

/// This process's variable, as raw bytes.
pub fn inherited(name: &str) -> Option<Vec<u8>> {
    std::env::var_os(name).map(OsString::into_vec)
}

/// The library's view of PROGRAM's environment: same parser, same messages.
pub fn load(overrides: &Overrides, inherited: impl Fn(&str) -> Option<Vec<u8>>) -> Loaded {
    load::load(|name| overrides.lookup(name, &inherited))
}

/// `LD_PRELOAD` with `library` appended (glibc separates entries with
/// spaces or colons). Unchanged if the library is already listed, so that
/// `keepalive keepalive PROGRAM` loads it once.
pub fn preload_with(existing: Option<&OsStr>, library: &Path) -> OsString {
    let library = library.as_os_str();
    let existing = existing.map(OsStr::as_bytes).unwrap_or_default();
    let listed = existing
        .split(|&b| b == b' ' || b == b':')
        .any(|entry| entry == library.as_bytes());
    if listed {
        return OsStr::from_bytes(existing).to_owned();
    }
    if existing.iter().all(|&b| b == b' ' || b == b':') {
        return library.to_owned();
    }
    let mut joined = existing.to_vec();
    joined.push(b':');
    joined.extend_from_slice(library.as_bytes());
    OsString::from_vec(joined)
}

#[cfg(test)]
mod tests {
    use super::*;
    use keepalive_core::variables::Setting;

    fn option(setting: Setting, option: &'static str, value: &str) -> OptionValue {
        OptionValue {
            setting,
            option,
            value: value.as_bytes().to_vec(),
        }
    }

    fn env_of(vars: &'static [(&'static str, &'static str)]) -> impl Fn(&str) -> Option<Vec<u8>> {
        move |name| {
            vars.iter()
                .find(|(set, _)| *set == name)
                .map(|(_, value)| value.as_bytes().to_vec())
        }
    }

    #[test]
    fn an_option_replaces_every_spelling_of_its_setting() {
        let overrides = Overrides::from_options(&[option(Setting::Idle, "--idle", "30")]);
        let env = env_of(&[("TCP_KEEPIDLE", "60"), ("KEEPCNT", "4")]);
        let loaded = load(&overrides, &env);
        assert!(loaded.diagnostics.is_empty(), "{:?}", loaded.diagnostics);
        assert_eq!(loaded.settings.timers.idle_secs, Some(30));
        assert_eq!(loaded.settings.timers.count, Some(4));
        assert_eq!(loaded.sources.of(Setting::Idle), ["KEEPIDLE"]);
        assert_eq!(overrides.option_for("KEEPIDLE"), Some("--idle"));
        assert_eq!(overrides.removed, ["TCP_KEEPIDLE", "DD_TCP_KEEPALIVE_TIME"]);
    }

    #[test]
    fn the_last_option_wins() {
        let overrides = Overrides::from_options(&[
            option(Setting::Count, "--count", "abc"),
            option(Setting::Count, "--count", "7"),
        ]);
        let loaded = load(&overrides, env_of(&[]));
        assert!(loaded.diagnostics.is_empty());
        assert_eq!(loaded.settings.timers.count, Some(7));
    }

    #[test]
    fn bad_option_values_get_the_librarys_message() {
        let overrides = Overrides::from_options(&[option(Setting::Idle, "--idle", "0")]);
        let loaded = load(&overrides, env_of(&[]));
        let expected = load::load(|name| (name == "KEEPIDLE").then(|| b"0".to_vec()));
        assert_eq!(loaded.diagnostics, expected.diagnostics);
        assert!(loaded.diagnostics[0]
            .to_string()
            .starts_with("libkeepalive: KEEPIDLE=\"0\" is not valid"));
    }

    #[test]
    fn preload_is_appended_once() {
        let lib = Path::new("/opt/k/libkeepalive.so");
        assert_eq!(preload_with(None, lib), "/opt/k/libkeepalive.so");
        assert_eq!(
            preload_with(Some(OsStr::new(" ")), lib),
            "/opt/k/libkeepalive.so"
        );
        assert_eq!(
            preload_with(Some(OsStr::new("libfaketime.so.1")), lib),
            "libfaketime.so.1:/opt/k/libkeepalive.so"
        );
        assert_eq!(
            preload_with(Some(OsStr::new("a.so /opt/k/libkeepalive.so")), lib),
            "a.so /opt/k/libkeepalive.so"
        );
    }
}
