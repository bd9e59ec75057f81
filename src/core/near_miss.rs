//! Names that are almost ours. `KEEPALIVE_IDLE=60`, `KEEPIDEL=60` or
//! `KEEPALIVE_RULE=...` are read by nobody, and a user who set them
//! believes the program is protected. Such a name gets one line naming it
//! and the variable it probably meant. A near miss is a name that differs
//! from one of ours only in case, or by one or two edits (a letter left
//! out, added, changed, or two swapped; two only for long names), or that
//! starts like ours (`KEEPALIVE_`, `LIBKEEPALIVE_`, `TCP_KEEP`,
//! `DD_TCP_KEEP`) and names one of our settings (`IDLE`, `INTVL`,
//! `RULE`...). Other programs use these prefixes too (`KEEPALIVE_URL`,
//! `TCP_KEEPALIVE`): a prefixed name that names none of our settings, and
//! the names other programs are known to read (`THEIRS`), are no mistake
//! of the user's and stay silent, as does any other name.
//!
//! The library checks every entry of the environment at load: no
//! allocation, and most names are turned away by their first letter.

use crate::variables::{Setting, NAMES};
use std::fmt;

/// Prefixes our variables (and those of the libraries we read the names
/// of) start with; other programs' variables may too.
const PREFIXES: [&str; 4] = ["LIBKEEPALIVE_", "DD_TCP_KEEP", "KEEPALIVE_", "TCP_KEEP"];

/// This project's other variables, read by the `keepalive` command and the
/// scripts, not by the library: they share the prefix but are no mistake.
const OURS_ELSEWHERE: [&str; 4] = [
    "KEEPALIVE_LIB",
    "KEEPALIVE_BUILD",
    "KEEPALIVE_BULLSEYE_CACHE",
    "KEEPALIVE_DEBIAN_MIRROR",
];

/// Other programs' variables that look like ours: read by someone, so
/// never a mistake to report (web servers, proxies and clients name their
/// HTTP or application keepalive so).
const THEIRS: [&str; 9] = [
    "KEEP_ALIVE",
    "KEEPALIVE_TIMEOUT",
    "KEEPALIVE_INTERVAL",
    "KEEPALIVE_URL",
    "KEEPALIVE_REQUESTS",
    "KEEPALIVE_ENABLED",
    "KEEPALIVE_PING_INTERVAL",
    "TCP_KEEPALIVE",
    "TCP_KEEPALIVE_IDLE",
];

/// Words in a prefixed name that say which setting was meant; a prefixed
/// name with none of them is not reported.
const HINTS: [(&str, Setting); 17] = [
    ("USER_TIMEOUT", Setting::UserTimeout),
    ("TIMEOUT", Setting::UserTimeout),
    ("IDLE", Setting::Idle),
    ("TIME", Setting::Idle),
    ("INTERVAL", Setting::Interval),
    ("INTVL", Setting::Interval),
    ("COUNT", Setting::Count),
    ("CNT", Setting::Count),
    ("PROBES", Setting::Count),
    ("RULE", Setting::Rules),
    ("DIRECTION", Setting::Direction),
    ("DIR", Setting::Direction),
    ("DEBUG", Setting::Debug),
    ("PROGRAM", Setting::Programs),
    ("PRESET", Setting::Path),
    ("PATH", Setting::Path),
    ("ENABLE", Setting::Enabled),
];

/// Longest name compared letter by letter.
const LONGEST: usize = 40;

/// A variable name that is almost one of ours.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NearMiss<'a> {
    /// The name as it is in the environment.
    pub name: &'a [u8],
    /// The variable it probably meant.
    pub meant: &'static str,
}

impl fmt::Display for NearMiss<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "libkeepalive: ")?;
        for chunk in self.name.utf8_chunks() {
            write!(f, "{}", chunk.valid().escape_debug())?;
            for byte in chunk.invalid() {
                write!(f, "\\x{byte:02x}")?;
            }
        }
        write!(
            f,
            " is not a variable libkeepalive reads: did you mean {}? ignoring it",
            self.meant
        )
    }
}

/// Whether `name` (an environment entry's name) is a near miss of ours.
pub fn check(name: &[u8]) -> Option<NearMiss<'_>> {
    // Each of our names starts with one of these letters.
    if !matches!(
        name.first()?.to_ascii_uppercase(),
        b'K' | b'T' | b'D' | b'L'
    ) || name.len() > LONGEST
        || NAMES.iter().any(|ours| ours.as_bytes() == name)
        || OURS_ELSEWHERE.iter().any(|ours| ours.as_bytes() == name)
    {
        return None;
    }
    let mut upper = [0u8; LONGEST];
    let upper = &mut upper[..name.len()];
    upper.copy_from_slice(name);
    upper.make_ascii_uppercase();
    let upper: &[u8] = upper;
    if THEIRS.iter().any(|theirs| theirs.as_bytes() == upper) {
        return None;
    }
    // Only names of the same first letter are compared (most entries of
    // an environment meet none of ours of a length within two).
    let closest = NAMES
        .iter()
        .filter(|ours| ours.as_bytes()[0] == upper[0])
        .map(|ours| (distance(upper, ours.as_bytes()), *ours))
        .min_by_key(|&(distance, _)| distance);
    if let Some((distance, ours)) = closest {
        let allowed = if ours.len() >= 12 { 2 } else { 1 };
        if distance <= allowed {
            return Some(NearMiss { name, meant: ours });
        }
    }
    let prefix = PREFIXES
        .iter()
        .find(|prefix| upper.starts_with(prefix.as_bytes()))?;
    let rest = &upper[prefix.len()..];
    let meant = HINTS
        .iter()
        .find(|(word, _)| rest.windows(word.len()).any(|w| w == word.as_bytes()))
        .and_then(|&(_, setting)| setting.variables().first().copied())?;
    Some(NearMiss { name, meant })
}

/// The optimal string alignment distance (insertions, deletions,
/// substitutions, adjacent swaps), on the stack; names up to `LONGEST`.
fn distance(a: &[u8], b: &[u8]) -> usize {
    if a.len() > LONGEST || b.len() > LONGEST || a.len().abs_diff(b.len()) > 2 {
        return usize::MAX;
    }
    let mut before = [0usize; LONGEST + 1];
    let mut previous = [0usize; LONGEST + 1];
    let mut current = [0usize; LONGEST + 1];
    for (j, cell) in previous.iter_mut().enumerate().take(b.len() + 1) {
        *cell = j;
    }
    for i in 1..=a.len() {
        current[0] = i;
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut best = (previous[j] + 1)
                .min(current[j - 1] + 1)
                .min(previous[j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                best = best.min(before[j - 2] + 1);
            }
            current[j] = best;
        }
        before = previous;
        previous = current;
    }
    previous[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meant(name: &str) -> Option<&'static str> {
        check(name.as_bytes()).map(|miss| miss.meant)
    }

    #[test]
    fn the_issues_examples() {
        assert_eq!(meant("KEEPALIVE_IDLE"), Some("KEEPIDLE"));
        assert_eq!(meant("KEEPIDEL"), Some("KEEPIDLE"));
        assert_eq!(meant("KEEPALIVE_RULE"), Some("KEEPALIVE_RULES"));
    }

    #[test]
    fn close_spellings_of_each_of_our_names() {
        for ours in NAMES {
            let lower = ours.to_ascii_lowercase();
            assert_eq!(meant(&lower), Some(ours), "{lower}");
            let dropped = format!("{}{}", &ours[..2], &ours[3..]);
            assert!(meant(&dropped).is_some(), "{dropped}");
            assert_eq!(meant(ours), None, "{ours} is ours");
        }
    }

    #[test]
    fn prefixes_and_hints() {
        assert_eq!(meant("KEEPALIVE_INTVL"), Some("KEEPINTVL"));
        assert_eq!(meant("KEEPALIVE_COUNT"), Some("KEEPCNT"));
        assert_eq!(meant("KEEPALIVE_PROBES"), Some("KEEPCNT"));
        assert_eq!(meant("TCP_KEEPALIVE_TIME"), Some("KEEPIDLE"));
        assert_eq!(meant("LIBKEEPALIVE_IDLE"), Some("KEEPIDLE"));
        assert_eq!(
            meant("DD_TCP_KEEPALIVE_TIMES"),
            Some("DD_TCP_KEEPALIVE_TIME")
        );
        // A prefixed name that names none of our settings is someone else's.
        assert_eq!(meant("KEEPALIVE_FOO"), None);
    }

    #[test]
    fn other_programs_names_stay_silent() {
        for name in THEIRS {
            assert_eq!(meant(name), None, "{name}");
            assert_eq!(meant(&name.to_ascii_lowercase()), None, "{name}");
        }
        for name in [
            "KEEPALIVE_URL_2",
            "KEEPALIVE_MAX_REQUESTS",
            "TCP_KEEPALIVE_ON",
        ] {
            assert_eq!(meant(name), None, "{name}");
        }
    }

    #[test]
    fn other_names_stay_silent() {
        for name in [
            "PATH",
            "TERM",
            "LANG",
            "LD_PRELOAD",
            "LD_LIBRARY_PATH",
            "DISPLAY",
            "TZ",
            "LOGNAME",
            "DD_ENV",
            "DD_SERVICE",
            "DD_AGENT_HOST",
            "DD_TRACE_DEBUG",
            "TMPDIR",
            "KUBECONFIG",
            "KEEP",
            "KEEPASS_DB",
            "LC_ALL",
            "DEBUG",
            "HOME",
            "K",
            "",
            "keepalived_conf",
            "KEEPALIVE_LIB",
            "KEEPALIVE_BUILD",
        ] {
            assert_eq!(meant(name), None, "{name}");
        }
    }

    #[test]
    fn the_line_names_the_variable_and_what_was_meant() {
        let miss = check(b"KEEPIDEL").unwrap();
        assert_eq!(
            miss.to_string(),
            "libkeepalive: KEEPIDEL is not a variable libkeepalive reads: \
             did you mean KEEPIDLE? ignoring it"
        );
        let odd = check(b"KEEPALIVE_IDLE\x1b\xff").unwrap();
        assert_eq!(
            odd.to_string(),
            "libkeepalive: KEEPALIVE_IDLE\\u{1b}\\xff is not a variable libkeepalive reads: \
             did you mean KEEPIDLE? ignoring it"
        );
    }

    #[test]
    fn distances() {
        assert_eq!(distance(b"KEEPIDLE", b"KEEPIDLE"), 0);
        assert_eq!(distance(b"KEEPIDEL", b"KEEPIDLE"), 1);
        assert_eq!(distance(b"KEEPIDL", b"KEEPIDLE"), 1);
        assert_eq!(distance(b"KEEPXIDLE", b"KEEPIDLE"), 1);
        assert_eq!(distance(b"KEPIDEL", b"KEEPIDLE"), 2);
        assert_eq!(distance(b"A", b"KEEPIDLE"), usize::MAX);
    }
}
