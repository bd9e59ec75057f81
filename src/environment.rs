//! Our variables in this process's environment, found in one pass over
//! `environ` at load. Every process the library is preloaded into pays for
//! this, so it copies nothing and asks libc nothing per variable: twenty
//! `getenv` calls would each walk the whole environment again.
//!
//! `secure_getenv` semantics: the caller reads this only when the process
//! is not in secure-execution mode (`AT_SECURE`), where `secure_getenv` is
//! `getenv`; in secure mode the library reads nothing at all. Like `getenv`,
//! the first entry of a name wins.

use keepalive_core::near_miss::{self, NearMiss};
use keepalive_core::variables::NAMES;
use libc::c_char;
use std::ffi::CStr;

extern "C" {
    static environ: *const *const c_char;
}

/// How many names that are almost ours are kept (and reported).
const NEAR_MISSES: usize = 4;

/// The raw value of each of our variables, in the order of `NAMES`, and
/// the entries whose names are almost ours (`near_miss`).
pub struct OurVariables {
    values: [Option<&'static [u8]>; NAMES.len()],
    near_misses: [Option<(NearMiss<'static>, &'static [u8])>; NEAR_MISSES],
}

impl OurVariables {
    /// Reads them now. The values borrow the environment's own strings:
    /// use them while loading, before the program can change its
    /// environment (our constructor, or the first hook that runs).
    pub fn read() -> OurVariables {
        let mut values = [None; NAMES.len()];
        let mut near_misses = [None; NEAR_MISSES];
        // SAFETY: environ is NULL or a NULL-terminated array of C strings.
        let mut entry = unsafe { environ };
        while !entry.is_null() {
            // SAFETY: entry points into that array, before or at its end.
            let text = unsafe { *entry };
            if text.is_null() {
                break;
            }
            // SAFETY: a NUL-terminated string of the environment.
            let bytes = unsafe { CStr::from_ptr(text) }.to_bytes();
            if let Some((index, value)) = ours(bytes) {
                values[index].get_or_insert(value);
            } else if let Some(miss) = almost_ours(bytes) {
                if let Some(free) = near_misses.iter_mut().find(|slot| slot.is_none()) {
                    *free = Some(miss);
                }
            }
            // SAFETY: the array goes on until its NULL, not reached yet.
            entry = unsafe { entry.add(1) };
        }
        OurVariables {
            values,
            near_misses,
        }
    }

    /// The entries whose names are almost ours, with their values.
    pub fn near_misses(&self) -> impl Iterator<Item = (NearMiss<'static>, &'static [u8])> + '_ {
        self.near_misses.iter().flatten().copied()
    }

    /// Every value, in the order of `NAMES`.
    pub fn values(&self) -> [Option<&'static [u8]>; NAMES.len()] {
        self.values
    }

    /// The value of the variable `name` (one of `NAMES`), if set.
    pub fn get(&self, name: &str) -> Option<&'static [u8]> {
        let index = NAMES.iter().position(|known| *known == name)?;
        self.values[index]
    }
}

/// For an entry `NAME=value` naming one of our variables: its index in
/// `NAMES` and the value.
fn ours(entry: &'static [u8]) -> Option<(usize, &'static [u8])> {
    // Each of our names starts with one of these: most entries stop here.
    if !matches!(entry.first(), Some(b'K' | b'T' | b'D' | b'L')) {
        return None;
    }
    let equals = entry.iter().position(|&b| b == b'=')?;
    let (name, value) = (&entry[..equals], &entry[equals + 1..]);
    let index = NAMES.iter().position(|known| known.as_bytes() == name)?;
    Some((index, value))
}

/// For an entry `NAME=value` whose name is almost one of ours: which, and
/// the value.
fn almost_ours(entry: &'static [u8]) -> Option<(NearMiss<'static>, &'static [u8])> {
    let equals = entry.iter().position(|&b| b == b'=')?;
    let miss = near_miss::check(&entry[..equals])?;
    Some((miss, &entry[equals + 1..]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_name_starts_with_a_letter_the_filter_lets_through() {
        for name in NAMES {
            let entry: &'static [u8] = format!("{name}=7").leak().as_bytes();
            assert_eq!(
                ours(entry).map(|(i, v)| (NAMES[i], v)),
                Some((name, &b"7"[..]))
            );
        }
    }

    #[test]
    fn other_entries_and_near_misses_are_not_ours() {
        for entry in [
            &b"PATH=/bin"[..],
            b"KEEPIDLE",
            b"KEEPIDLEX=1",
            b"KEEPIDL=1",
            b"keepidle=1",
            b"",
            b"=1",
        ] {
            assert_eq!(ours(entry), None, "{:?}", String::from_utf8_lossy(entry));
        }
        let idle = NAMES.iter().position(|&name| name == "KEEPIDLE");
        assert_eq!(ours(b"KEEPIDLE=a=b"), Some((idle.unwrap(), &b"a=b"[..])));
        assert_eq!(ours(b"KEEPIDLE="), Some((idle.unwrap(), &b""[..])));
    }

    #[test]
    fn near_misses_are_found_with_their_values() {
        let (miss, value) = almost_ours(b"KEEPIDEL=60").unwrap();
        assert_eq!((miss.meant, value), ("KEEPIDLE", &b"60"[..]));
        assert!(almost_ours(b"KEEPIDLE=60").is_none());
        assert!(almost_ours(b"PATH=/bin").is_none());
        assert!(almost_ours(b"KEEPIDEL").is_none());
    }

    #[test]
    fn values_are_what_getenv_returns() {
        // The test process's own environment, with getenv as the oracle.
        std::env::set_var("KEEPCNT", "4");
        let variables = OurVariables::read();
        for name in NAMES {
            let expected = std::env::var_os(name);
            let got = variables
                .get(name)
                .map(|v| std::ffi::OsStr::new(std::str::from_utf8(v).unwrap()));
            assert_eq!(got, expected.as_deref(), "{name}");
        }
        assert_eq!(variables.get("KEEPCNT"), Some(&b"4"[..]));
    }
}
