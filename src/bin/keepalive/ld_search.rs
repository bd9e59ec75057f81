//! Would ld.so find every library ours needs? The shipped build needs
//! libgcc_s.so.1 (its unwinder, build.rs says why); where that is not
//! installed (distroless and other minimal roots), ld.so stops every
//! program the library is preloaded into with exit 127, "error while
//! loading shared libraries: libgcc_s.so.1: cannot open shared object file".
//!
//! We look where ld.so looks, in its order: the library's DT_RUNPATH (or
//! DT_RPATH), LD_LIBRARY_PATH, the directories of /etc/ld.so.conf (what
//! ldconfig puts in ld.so.cache), then the default directories. The
//! cache itself is not read: ldconfig builds it from those same
//! directories, and a file that is gone is gone whatever the cache says.

use crate::elf;
use std::path::{Path, PathBuf};

/// The libc family: installed with glibc itself, wherever glibc is.
const WITH_GLIBC: [&str; 6] = [
    "libc.so.6",
    "libpthread.so.0",
    "libdl.so.2",
    "librt.so.1",
    "libm.so.6",
    "ld-linux",
];

/// Include nesting deeper than this in ld.so.conf is a loop.
const MAX_INCLUDE_DEPTH: usize = 8;

/// The first library `library` needs that ld.so would not find here, with
/// the package that provides it where we know it; None if all are found
/// or the library cannot be read (then ld.so's own message will tell).
pub fn missing(library: &Path) -> Option<(String, Option<&'static str>)> {
    let file = std::fs::File::open(library).ok()?;
    let dependencies = elf::dependencies(&file)?;
    let origin = library.parent().unwrap_or(Path::new("/"));
    let mut directories = expand_origin(&dependencies.search_path, origin);
    if let Some(path) = std::env::var_os("LD_LIBRARY_PATH") {
        directories.extend(std::env::split_paths(&path));
    }
    directories.extend(configured(Path::new("/etc/ld.so.conf"), 0));
    directories.extend(defaults(std::env::consts::ARCH));
    dependencies
        .needed
        .into_iter()
        .filter(|name| !comes_with_glibc(name))
        .find(|name| !found(name, &directories))
        .map(|name| {
            let package = provider(&name);
            (name, package)
        })
}

fn comes_with_glibc(name: &str) -> bool {
    WITH_GLIBC.iter().any(|family| name.starts_with(family))
}

/// A name with a '/' is a path (ld.so opens it as is); else a file in one
/// of the directories.
fn found(name: &str, directories: &[PathBuf]) -> bool {
    if name.contains('/') {
        return Path::new(name).is_file();
    }
    directories
        .iter()
        .any(|directory| directory.join(name).is_file())
}

/// The package that installs `name`, for the refusal's advice.
fn provider(name: &str) -> Option<&'static str> {
    match name {
        "libgcc_s.so.1" => Some(
            "libgcc-s1 on Debian and Ubuntu (libgcc1 before Debian 11), libgcc on RHEL, \
             Fedora and Amazon Linux, libgcc_s1 on SUSE",
        ),
        _ => None,
    }
}

/// RUNPATH entries with $ORIGIN (the library's own directory) replaced.
fn expand_origin(search_path: &[String], origin: &Path) -> Vec<PathBuf> {
    let origin = origin.to_string_lossy();
    search_path
        .iter()
        .filter(|entry| !entry.is_empty())
        .map(|entry| {
            PathBuf::from(
                entry
                    .replace("${ORIGIN}", &origin)
                    .replace("$ORIGIN", &origin),
            )
        })
        .collect()
}

/// The directories an ld.so.conf names, its `include` files' too (a
/// relative pattern is relative to the including file's directory);
/// `hwcap` lines and comments are skipped. A missing file names none.
fn configured(conf: &Path, depth: usize) -> Vec<PathBuf> {
    let Ok(text) = std::fs::read_to_string(conf) else {
        return Vec::new();
    };
    let here = conf.parent().unwrap_or(Path::new("/"));
    let mut directories = Vec::new();
    for line in text.lines() {
        let line = line.split('#').next().unwrap_or("").trim();
        let mut words = line.split_whitespace();
        match words.next() {
            None => {}
            Some("include") if depth < MAX_INCLUDE_DEPTH => {
                for pattern in words {
                    for file in glob(&here.join(pattern)) {
                        directories.extend(configured(&file, depth + 1));
                    }
                }
            }
            Some("include") | Some("hwcap") => {}
            // The old "DIR=TYPE" form names DIR.
            Some(_) => directories.push(PathBuf::from(line.split('=').next().unwrap_or(line))),
        }
    }
    directories
}

/// The files a pattern such as /etc/ld.so.conf.d/*.conf names, sorted as
/// ldconfig reads them; only the last component may hold a '*' (all that
/// distributions use).
fn glob(pattern: &Path) -> Vec<PathBuf> {
    let name = pattern
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let Some((prefix, suffix)) = name.split_once('*') else {
        return vec![pattern.to_path_buf()];
    };
    let directory = pattern.parent().unwrap_or(Path::new("/"));
    let Ok(entries) = std::fs::read_dir(directory) else {
        return Vec::new();
    };
    let mut files: Vec<PathBuf> = entries
        .flatten()
        .map(|entry| entry.file_name().to_string_lossy().into_owned())
        .filter(|file| {
            file.len() >= prefix.len() + suffix.len()
                && file.starts_with(prefix)
                && file.ends_with(suffix)
        })
        .map(|file| directory.join(file))
        .collect();
    files.sort();
    files
}

/// ld.so's built-in directories, the multiarch ones of Debian and Ubuntu
/// first, then the lib64 ones of RHEL, Fedora and SUSE.
fn defaults(arch: &str) -> Vec<PathBuf> {
    let multiarch = format!("{arch}-linux-gnu");
    [
        format!("/lib/{multiarch}"),
        format!("/usr/lib/{multiarch}"),
        "/lib64".into(),
        "/usr/lib64".into(),
        "/lib".into(),
        "/usr/lib".into(),
    ]
    .into_iter()
    .map(PathBuf::from)
    .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A scratch directory of this test, removed on drop.
    struct Scratch(PathBuf);

    impl Scratch {
        fn new(label: &str) -> Scratch {
            let dir = std::env::temp_dir().join(format!(
                "keepalive-21-ld-search-{label}-{}",
                std::process::id()
            ));
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir_all(&dir).unwrap();
            Scratch(dir)
        }

        fn write(&self, name: &str, text: &str) -> PathBuf {
            let path = self.0.join(name);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(&path, text).unwrap();
            path
        }
    }

    impl Drop for Scratch {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    #[test]
    fn ld_so_conf_includes_are_followed_relative_to_their_file() {
        let scratch = Scratch::new("conf");
        let conf = scratch.write(
            "ld.so.conf",
            "# comment\n/opt/first\ninclude conf.d/*.conf\nhwcap 0 nosegneg\n/opt/old=libc6\n",
        );
        scratch.write("conf.d/b.conf", "/opt/b\n");
        scratch.write(
            "conf.d/a.conf",
            "/opt/a # trailing\n\ninclude ../ld.so.conf\n",
        );
        scratch.write("conf.d/skipped.txt", "/opt/never\n");
        let directories = configured(&conf, 0);
        // a.conf's include of the top file loops; the depth limit ends it.
        let first: Vec<&Path> = directories.iter().map(PathBuf::as_path).take(3).collect();
        assert_eq!(
            first,
            [
                Path::new("/opt/first"),
                Path::new("/opt/a"),
                Path::new("/opt/first")
            ]
        );
        assert!(directories.contains(&PathBuf::from("/opt/b")));
        assert!(directories.contains(&PathBuf::from("/opt/old")));
        assert!(!directories.contains(&PathBuf::from("/opt/never")));
        assert!(configured(&scratch.0.join("absent.conf"), 0).is_empty());
    }

    #[test]
    fn a_library_is_found_in_a_directory_or_by_its_path() {
        let scratch = Scratch::new("found");
        let library = scratch.write("lib/libgcc_s.so.1", "");
        let directories = vec![PathBuf::from("/nonexistent"), scratch.0.join("lib")];
        assert!(found("libgcc_s.so.1", &directories));
        assert!(!found("libgcc_s.so.1", &directories[..1]));
        assert!(found(library.to_str().unwrap(), &[]));
        assert!(!found("libabsent.so.1", &directories));
    }

    #[test]
    fn origin_and_defaults_are_where_ld_so_looks() {
        let expanded = expand_origin(
            &["$ORIGIN/../lib".into(), "${ORIGIN}".into(), "".into()],
            Path::new("/opt/keepalive"),
        );
        assert_eq!(
            expanded,
            [
                PathBuf::from("/opt/keepalive/../lib"),
                PathBuf::from("/opt/keepalive")
            ]
        );
        let defaults = defaults("x86_64");
        assert!(defaults.contains(&PathBuf::from("/usr/lib/x86_64-linux-gnu")));
        assert!(defaults.contains(&PathBuf::from("/usr/lib64")));
        assert!(comes_with_glibc("ld-linux-x86-64.so.2"));
        assert!(!comes_with_glibc("libgcc_s.so.1"));
        assert!(provider("libgcc_s.so.1").unwrap().contains("libgcc-s1"));
    }

    #[test]
    fn this_machines_libraries_are_all_found() {
        // This test binary needs libgcc_s.so.1 and libc, all installed here.
        let exe = std::fs::read_link("/proc/self/exe").unwrap();
        assert_eq!(missing(&exe), None);
    }
}
