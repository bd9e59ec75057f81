//! Would the dynamic linker load the library into PROGRAM? Asked before
//! exec (and by `--check`), because where it would not, preloading does not
//! merely fail: ld.so stops PROGRAM before main(). Three such cases:
//!
//! - the library asks for a glibc symbol version newer than this system's
//!   glibc (a build from a newer distribution): ld.so exits 1, printing
//!   "version `GLIBC_2.34' not found" once per missing version (2.32, 2.33
//!   and 2.34 for Debian 12's build on Debian 11). The shipped build asks
//!   for at most GLIBC_2.17 (scripts/build-portable.sh); the developer
//!   build for more.
//! - the library needs a library ld.so cannot find (libgcc_s.so.1, in a
//!   minimal root): ld.so exits 127 with "cannot open shared object file"
//!   (ld_search.rs looks where ld.so looks).
//! - PROGRAM is a musl program: musl's ld.so cannot load a glibc library
//!   (it needs libc.so.6) and exits 127 "Error loading shared library".

use crate::elf;
use crate::ld_search;
use std::ffi::CStr;
use std::path::Path;

/// A glibc version such as 2.17, compared number by number.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Version(Vec<u32>);

impl Version {
    /// "2.17" (or the "2.17" of "GLIBC_2.17"); None for anything else.
    pub fn parse(text: &str) -> Option<Version> {
        let numbers = text.strip_prefix("GLIBC_").unwrap_or(text);
        let parts: Option<Vec<u32>> = numbers.split('.').map(|part| part.parse().ok()).collect();
        parts.filter(|parts| parts.len() >= 2).map(Version)
    }
}

impl std::fmt::Display for Version {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let parts: Vec<String> = self.0.iter().map(u32::to_string).collect();
        f.write_str(&parts.join("."))
    }
}

/// The newest `GLIBC_x.y` the library asks for (libc, libdl, libpthread,
/// ld.so alike): Ok(None) if it asks for none, Err if it cannot be read.
pub fn glibc_floor(library: &Path) -> Result<Option<Version>, String> {
    let file = std::fs::File::open(library).map_err(|error| error.to_string())?;
    let needs = elf::needed_versions(&file).ok_or("not a readable ELF object")?;
    Ok(needs
        .iter()
        .filter_map(|(_, version)| Version::parse(version))
        .max())
}

/// The glibc this command (and so every glibc program here) runs with.
pub fn host_glibc() -> Option<Version> {
    // SAFETY: gnu_get_libc_version returns a static NUL-terminated string.
    let text = unsafe { CStr::from_ptr(libc::gnu_get_libc_version()) };
    Version::parse(text.to_str().ok()?)
}

/// Ok(summary) if ld.so will load `library` into `program` (its executable,
/// if found), else Err(why not), one line without the "keepalive: " prefix.
pub fn check(library: &Path, program: Option<&Path>) -> Result<String, String> {
    if let Some(program) = program {
        musl(program)?;
    }
    let summary = compare(library, glibc_floor(library), host_glibc())?;
    match ld_search::missing(library) {
        Some((name, package)) => Err(not_found(library, &name, package)),
        None => Ok(summary),
    }
}

/// The refusal for a library ld.so would not find, with ld.so's words.
fn not_found(library: &Path, name: &str, package: Option<&str>) -> String {
    let install = match package {
        Some(package) => format!("install {package}"),
        None => format!("install the package that provides {name}"),
    };
    format!(
        "{} needs {name}, which the dynamic linker cannot find here: it would stop the \
         program before it starts (\"{name}: cannot open shared object file\"); {install}",
        library.display()
    )
}

/// The glibc comparison, with both versions given (tests pass their own).
pub fn compare(
    library: &Path,
    needed: Result<Option<Version>, String>,
    host: Option<Version>,
) -> Result<String, String> {
    let needed = match needed {
        Ok(needed) => needed,
        Err(why) => {
            return Ok(format!(
                "its glibc needs are unreadable ({why}); not checked"
            ))
        }
    };
    match (needed, host) {
        (Some(needed), Some(host)) if needed > host => Err(format!(
            "{} needs glibc {needed} and this system has glibc {host}: the dynamic linker \
             would stop the program before it starts (\"version `GLIBC_{needed}' not found\"); \
             install the build for older systems (keepalive's package or tarball, \
             README: Troubleshooting)",
            library.display()
        )),
        (Some(needed), Some(host)) => Ok(format!("needs glibc {needed}, this system has {host}")),
        (None, Some(host)) => Ok(format!("needs no versioned glibc, this system has {host}")),
        (_, None) => Ok("this system's glibc version is unknown; not checked".to_string()),
    }
}

/// Err if `program` runs under musl's dynamic linker.
fn musl(program: &Path) -> Result<(), String> {
    let Ok(file) = std::fs::File::open(program) else {
        return Ok(());
    };
    match elf::interpreter(&file) {
        Some(interpreter) if is_musl(&interpreter) => Err(format!(
            "{} is a musl program (interpreter {}), which cannot load a glibc library: \
             preloaded, it would stop before it starts; keepalive --bpf reaches it (as root)",
            program.display(),
            String::from_utf8_lossy(&interpreter)
        )),
        _ => Ok(()),
    }
}

/// Whether `program` runs under musl's dynamic linker.
pub fn is_musl_program(program: &Path) -> bool {
    musl(program).is_err()
}

/// musl's dynamic linker is /lib/ld-musl-ARCH.so.1 everywhere.
fn is_musl(interpreter: &[u8]) -> bool {
    let name = interpreter
        .rsplit(|&b| b == b'/')
        .next()
        .unwrap_or_default();
    name.starts_with(b"ld-musl-")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn version(text: &str) -> Option<Version> {
        Version::parse(text)
    }

    #[test]
    fn versions_compare_number_by_number() {
        assert!(version("2.9") < version("2.17"));
        assert!(version("GLIBC_2.2.5") < version("2.3"));
        assert!(version("2.34") > version("GLIBC_2.31"));
        assert_eq!(version("GLIBC_PRIVATE"), None);
        assert_eq!(version("2"), None);
        assert_eq!(version("2.17").unwrap().to_string(), "2.17");
    }

    #[test]
    fn a_newer_floor_than_the_host_is_refused_with_the_linkers_words() {
        let library = Path::new("/usr/lib/libkeepalive.so");
        let refused = compare(library, Ok(version("2.34")), version("2.31")).unwrap_err();
        assert!(refused.contains("needs glibc 2.34"), "{refused}");
        assert!(refused.contains("has glibc 2.31"), "{refused}");
        assert!(
            refused.contains("version `GLIBC_2.34' not found"),
            "{refused}"
        );
        assert!(!refused.contains('\n'));
        assert!(compare(library, Ok(version("2.17")), version("2.17")).is_ok());
        assert!(compare(library, Ok(version("2.16")), version("2.31")).is_ok());
        // Unknown or unreadable: say so, never refuse.
        assert!(compare(library, Ok(version("2.34")), None).is_ok());
        let unreadable = compare(library, Err("gone".into()), version("2.31")).unwrap();
        assert!(unreadable.contains("unreadable (gone)"), "{unreadable}");
    }

    #[test]
    fn a_missing_library_is_refused_in_one_line_naming_its_package() {
        let library = Path::new("/usr/lib/libkeepalive.so");
        let refused = not_found(library, "libgcc_s.so.1", Some("libgcc-s1 on Debian"));
        assert!(
            refused.starts_with("/usr/lib/libkeepalive.so needs libgcc_s.so.1, "),
            "{refused}"
        );
        assert!(
            refused.contains("cannot open shared object file"),
            "{refused}"
        );
        assert!(
            refused.ends_with("; install libgcc-s1 on Debian"),
            "{refused}"
        );
        assert!(!refused.contains('\n'));
        let unknown = not_found(library, "libfoo.so.1", None);
        assert!(unknown.ends_with("provides libfoo.so.1"), "{unknown}");
    }

    #[test]
    fn this_command_is_a_glibc_program_and_reads_its_own_needs() {
        let exe = std::fs::read_link("/proc/self/exe").unwrap();
        assert!(musl(&exe).is_ok());
        assert!(glibc_floor(&exe).unwrap().is_some());
        assert!(glibc_floor(Path::new("/nonexistent/libkeepalive.so")).is_err());
        assert!(host_glibc().is_some());
        // What readelf shows for this binary: its interpreter, libc's versions.
        let file = std::fs::File::open(&exe).unwrap();
        let interpreter = elf::interpreter(&file).unwrap();
        assert!(interpreter.starts_with(b"/lib"), "{interpreter:?}");
        assert!(
            interpreter.windows(6).any(|w| w == b"ld-lin"),
            "{interpreter:?}"
        );
        let needs = elf::needed_versions(&file).unwrap();
        assert!(
            needs
                .iter()
                .any(|(object, version)| object == "libc.so.6" && version == "GLIBC_2.2.5"),
            "{needs:?}"
        );
        assert!(is_musl(b"/lib/ld-musl-x86_64.so.1"));
        assert!(!is_musl(b"/lib64/ld-linux-x86-64.so.2"));
    }
}
