//! Program scoping (`KEEPALIVE_PROGRAMS=name,name...`): which processes get
//! keepalive at all. Pure code: the list's grammar and the name match; the
//! runtime supplies the process's names once, at load.
//!
//! A process is listed when one of its two names is:
//! - the base name of its executable file, `/proc/self/exe`, symlinks
//!   resolved (`/usr/bin/python3 -> python3.11` gives `python3.11`);
//! - the base name of the path it was started by, as `execve` got it
//!   (`AT_EXECFN`), before symlinks are resolved (`python3`, or a symlink's
//!   own name such as `mycurl`).
//!
//! For an interpreter (`python3 app.py`, `java -jar app.jar`) both names are
//! the interpreter's, never the script's; a `#!` script run directly has its
//! own path as the second name.

/// The parsed list: names as written, none empty, none with a slash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Programs {
    /// The base names, as given.
    pub names: Vec<String>,
}

/// What the list allows, for messages.
pub const VALID: &str = "executable base names (letters, digits, . _ - + @ ~ :) \
                         separated by commas, e.g. nginx,python3";

/// The characters a listed name may hold: those of ordinary executable
/// names. No slash: a name is a base name, never a path.
fn name_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"._-+@~:".contains(&b)
}

/// Parses `name[,name...]`; spaces around a name are ignored. `None` when
/// the list is empty, or a name is empty or holds another character than
/// letters, digits and `. _ - + @ ~ :`.
pub fn parse(text: &str) -> Option<Programs> {
    let mut names = Vec::new();
    for name in text.split(',') {
        let name = name.trim_matches(|c| c == ' ' || c == '\t');
        if name.is_empty() || !name.bytes().all(name_byte) {
            return None;
        }
        names.push(name.to_string());
    }
    Some(Programs { names })
}

/// The last component of a path as bytes (the whole if it has no slash).
pub fn base_name(path: &[u8]) -> &[u8] {
    match path.iter().rposition(|&b| b == b'/') {
        Some(slash) => &path[slash + 1..],
        None => path,
    }
}

impl Programs {
    /// Whether a process with these names (full paths or base names, as
    /// bytes) is listed.
    pub fn lists(&self, names: &[&[u8]]) -> bool {
        names.iter().any(|path| {
            let base = base_name(path);
            !base.is_empty() && self.names.iter().any(|n| n.as_bytes() == base)
        })
    }

    /// "nginx, python3" for messages.
    pub fn joined(&self) -> String {
        self.names.join(", ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_parse_strictly() {
        assert_eq!(parse("nginx").unwrap().names, ["nginx"]);
        assert_eq!(
            parse("nginx, python3 ,java,python3.11,g++,x86_64-linux-gnu-gcc")
                .unwrap()
                .names,
            [
                "nginx",
                "python3",
                "java",
                "python3.11",
                "g++",
                "x86_64-linux-gnu-gcc"
            ]
        );
        for bad in [
            "",
            " ",
            "a,,b",
            "a,",
            ",a",
            "/usr/bin/curl",
            "a/b",
            "a\0b",
            "x!",
            "a b",
        ] {
            assert_eq!(parse(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn base_names_are_compared_exactly() {
        let programs = parse("curl,python3").unwrap();
        assert!(programs.lists(&[b"/usr/bin/curl"]));
        assert!(programs.lists(&[b"curl"]));
        assert!(programs.lists(&[b"/usr/bin/python3.11", b"/usr/bin/python3"]));
        assert!(!programs.lists(&[b"/usr/bin/python3.11"]));
        assert!(!programs.lists(&[b"/usr/bin/curl2", b"/opt/curl/bin"]));
        assert!(!programs.lists(&[b"/usr/bin/", b""]));
        assert!(!programs.lists(&[]));
        assert!(!parse("CURL").unwrap().lists(&[b"/usr/bin/curl"]));
    }

    #[test]
    fn base_name_of_paths() {
        assert_eq!(base_name(b"/a/b/c"), b"c");
        assert_eq!(base_name(b"c"), b"c");
        assert_eq!(base_name(b"/a/"), b"");
    }
}
