//! Our variables as the process started, copied by the constructor so that
//! parsing them can wait for the first socket call (issue 14: start-up).
//!
//! Why a copy: the program may change its environment before its first
//! socket (`setenv`, `clearenv`, Python's `os.environ`, `setproctitle`
//! overwriting the original strings); the configuration must still be the
//! one it was started with, read once. The copy allocates nothing and
//! calls nothing: one pass over `envp`, a byte compare for the few entries
//! that start like one of our names.

use crate::config::VARIABLE_NAMES;
use std::cell::UnsafeCell;
use std::ffi::c_char;
use std::sync::atomic::{AtomicU8, Ordering};

/// Room for the values of all our variables together. Beyond it (a huge
/// KEEPALIVE_RULES), the live environment is read as before the copy.
const CAPACITY: usize = 8 * 1024;

const NOT_TAKEN: u8 = 0;
const TAKEN: u8 = 1;
const TOO_BIG: u8 = 2;

struct Snapshot {
    bytes: [u8; CAPACITY],
    /// (start, length) in `bytes` of each `VARIABLE_NAMES` entry that is set.
    values: [Option<(u16, u16)>; VARIABLE_NAMES.len()],
}

struct Shared(UnsafeCell<Snapshot>);
// SAFETY: written only by `take`, before STATE says TAKEN (Release); read
// only after a reader saw TAKEN (Acquire); never written again.
unsafe impl Sync for Shared {}

static SNAPSHOT: Shared = Shared(UnsafeCell::new(Snapshot {
    bytes: [0; CAPACITY],
    values: [None; VARIABLE_NAMES.len()],
}));
static STATE: AtomicU8 = AtomicU8::new(NOT_TAKEN);

/// Copies our variables out of `envp` (the constructor's third argument).
/// As `getenv`, the first `NAME=` entry of a name wins.
///
/// # Safety
/// `envp` is NULL or a NULL-terminated array of NUL-terminated strings, and
/// nothing else calls `take`.
pub unsafe fn take(envp: *const *const c_char) {
    if envp.is_null() || STATE.load(Ordering::Relaxed) != NOT_TAKEN {
        return;
    }
    // SAFETY: nobody reads before STATE is TAKEN (see Shared).
    let snapshot = unsafe { &mut *SNAPSHOT.0.get() };
    let mut used = 0;
    let mut entry = envp;
    // SAFETY: envp is NULL-terminated; each entry is a C string, read only
    // up to its NUL.
    unsafe {
        while !(*entry).is_null() {
            let text = (*entry).cast::<u8>();
            entry = entry.add(1);
            // Almost every variable is rejected by its first byte.
            if !matches!(*text, b'K' | b'T' | b'D' | b'L') {
                continue;
            }
            let Some(index) = VARIABLE_NAMES
                .iter()
                .position(|name| is_entry_of(text, name))
            else {
                continue;
            };
            if snapshot.values[index].is_some() {
                continue;
            }
            // Copied byte by byte: a strlen or memcpy here would be the
            // first call of each, bound by the dynamic linker at start-up.
            let mut source = text.add(VARIABLE_NAMES[index].len() + 1);
            let start = used;
            while *source != 0 {
                if used == CAPACITY {
                    STATE.store(TOO_BIG, Ordering::Release);
                    return;
                }
                snapshot.bytes[used] = *source;
                used += 1;
                source = source.add(1);
            }
            snapshot.values[index] = Some((start as u16, (used - start) as u16));
        }
    }
    STATE.store(TAKEN, Ordering::Release);
}

/// Whether the C string `text` starts with `name=`.
///
/// # Safety
/// `text` is a NUL-terminated string.
unsafe fn is_entry_of(text: *const u8, name: &str) -> bool {
    // A NUL in `text` differs from every byte of a name, so no read goes
    // past the end of the string.
    for (i, &byte) in name.as_bytes().iter().enumerate() {
        if unsafe { *text.add(i) } != byte {
            return false;
        }
    }
    unsafe { *text.add(name.len()) == b'=' }
}

/// What the copy says about one of our variables.
pub enum Lookup {
    /// The variable's value at start-up (`None`: it was not set).
    Copied(Option<&'static [u8]>),
    /// No copy (a hook ran before our constructor, or the values did not
    /// fit): read the live environment.
    NoCopy,
}

pub fn lookup(name: &str) -> Lookup {
    if STATE.load(Ordering::Acquire) != TAKEN {
        return Lookup::NoCopy;
    }
    let Some(index) = VARIABLE_NAMES.iter().position(|known| *known == name) else {
        return Lookup::Copied(None);
    };
    // SAFETY: TAKEN was published after the last write (see Shared).
    let snapshot: &'static Snapshot = unsafe { &*SNAPSHOT.0.get() };
    Lookup::Copied(
        snapshot.values[index]
            .map(|(start, len)| &snapshot.bytes[start as usize..start as usize + len as usize]),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::CString;

    #[test]
    fn entry_matching_needs_the_whole_name_and_an_equals_sign() {
        let check = |entry: &str, name: &str| {
            let entry = CString::new(entry).unwrap();
            unsafe { is_entry_of(entry.as_ptr().cast(), name) }
        };
        assert!(check("KEEPIDLE=60", "KEEPIDLE"));
        assert!(check("KEEPIDLE=", "KEEPIDLE"));
        assert!(!check("KEEPIDLE", "KEEPIDLE"));
        assert!(!check("KEEPIDLEX=1", "KEEPIDLE"));
        assert!(!check("KEEP", "KEEPIDLE"));
        assert!(!check("keepidle=60", "KEEPIDLE"));
    }

    // The only test touching the process-wide copy: it is taken once.
    #[test]
    fn the_copy_keeps_the_first_value_of_each_of_our_variables() {
        let strings: Vec<CString> = [
            "PATH=/bin",
            "KEEPIDLE=60",
            "KEEPIDLE=61",
            "TCP_KEEPCNT=",
            "DD_DEBUG=1",
            "KEEPALIVE_RULES=*:idle=30",
            "LANG=C",
            "KEEPINTVL",
        ]
        .iter()
        .map(|s| CString::new(*s).unwrap())
        .collect();
        let mut envp: Vec<*const c_char> = strings.iter().map(|s| s.as_ptr()).collect();
        envp.push(std::ptr::null());
        unsafe { take(envp.as_ptr()) };
        drop(strings); // the copy must not point into them
        let value = |name| match lookup(name) {
            Lookup::Copied(value) => value.map(|v| String::from_utf8(v.to_vec()).unwrap()),
            Lookup::NoCopy => panic!("no copy"),
        };
        assert_eq!(value("KEEPIDLE").as_deref(), Some("60"));
        assert_eq!(value("TCP_KEEPCNT").as_deref(), Some(""));
        assert_eq!(value("DD_DEBUG").as_deref(), Some("1"));
        assert_eq!(value("KEEPALIVE_RULES").as_deref(), Some("*:idle=30"));
        assert_eq!(value("KEEPINTVL"), None);
        assert_eq!(value("KEEPALIVE"), None);
        assert_eq!(value("PATH"), None);
    }
}
