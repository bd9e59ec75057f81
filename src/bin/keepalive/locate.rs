//! Finding libkeepalive.so and PROGRAM's executable.

use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

pub const LIBRARY_FILE: &str = "libkeepalive.so";

/// The places to look, in order: `KEEPALIVE_LIB` alone if it is set (an
/// explicit choice must not silently fall back to another copy), else the
/// installed layout (`PREFIX/bin/keepalive` beside `PREFIX/lib/`), else the
/// command's own directory (cargo's `target/release/`).
pub fn candidates(keepalive_lib: Option<&OsStr>, exe_dir: Option<&Path>) -> Vec<PathBuf> {
    match keepalive_lib {
        Some(path) if !path.is_empty() => vec![PathBuf::from(path)],
        _ => exe_dir
            .map(|dir| {
                vec![
                    dir.join("../lib").join(LIBRARY_FILE),
                    dir.join(LIBRARY_FILE),
                ]
            })
            .unwrap_or_default(),
    }
}

/// The library's absolute path, ready for `LD_PRELOAD`, or a one-line reason.
pub fn find_library() -> Result<PathBuf, String> {
    let keepalive_lib = std::env::var_os("KEEPALIVE_LIB");
    // current_exe is /proc/self/exe: symlinks to the command are resolved, so
    // a /usr/bin/keepalive -> /opt/keepalive/bin/keepalive link still works.
    let exe = std::env::current_exe().ok();
    let exe_dir = exe.as_deref().and_then(Path::parent);
    let tried = candidates(keepalive_lib.as_deref(), exe_dir);
    for candidate in &tried {
        if let Ok(path) = candidate.canonicalize() {
            if path.is_file() {
                return preloadable(path);
            }
        }
    }
    let list: Vec<String> = tried.iter().map(|p| p.display().to_string()).collect();
    Err(match keepalive_lib {
        Some(lib) if !lib.is_empty() => {
            format!("KEEPALIVE_LIB={} is not a file", Path::new(&lib).display())
        }
        _ => format!(
            "cannot find {LIBRARY_FILE} (tried {}); set KEEPALIVE_LIB to its path",
            list.join(", ")
        ),
    })
}

/// `LD_PRELOAD` splits on spaces and colons, so such a path cannot be listed.
fn preloadable(path: PathBuf) -> Result<PathBuf, String> {
    if path
        .as_os_str()
        .as_bytes()
        .iter()
        .any(|&b| b == b' ' || b == b':')
    {
        return Err(format!(
            "{} cannot go in LD_PRELOAD (it splits paths at spaces and colons); \
             install the library elsewhere",
            path.display()
        ));
    }
    Ok(path)
}

/// The file `execvp` would run for `program`: itself if it has a slash,
/// else the first executable regular file of that name in `PATH`.
pub fn executable(program: &OsStr, path_var: Option<&OsStr>) -> Option<PathBuf> {
    if program.as_bytes().contains(&b'/') {
        return Some(PathBuf::from(program));
    }
    let path_var = path_var
        .map(OsStr::to_owned)
        .unwrap_or_else(|| OsString::from("/usr/bin:/bin"));
    std::env::split_paths(&path_var)
        .map(|dir| {
            // An empty PATH entry means the current directory.
            let dir = if dir.as_os_str().is_empty() {
                PathBuf::from(".")
            } else {
                dir
            };
            dir.join(program)
        })
        .find(|candidate| {
            candidate
                .metadata()
                .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
                .unwrap_or(false)
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keepalive_lib_is_the_only_candidate_when_set() {
        let got = candidates(Some(OsStr::new("/x/lib.so")), Some(Path::new("/usr/bin")));
        assert_eq!(got, [PathBuf::from("/x/lib.so")]);
    }

    #[test]
    fn installed_layout_then_own_directory() {
        let got = candidates(None, Some(Path::new("/usr/local/bin")));
        assert_eq!(
            got,
            [
                PathBuf::from("/usr/local/bin/../lib/libkeepalive.so"),
                PathBuf::from("/usr/local/bin/libkeepalive.so")
            ]
        );
        assert_eq!(
            candidates(Some(OsStr::new("")), Some(Path::new("/b"))).len(),
            2
        );
    }

    #[test]
    fn paths_ld_preload_cannot_hold_are_refused() {
        assert!(preloadable(PathBuf::from("/opt/my libs/libkeepalive.so")).is_err());
        assert!(preloadable(PathBuf::from("/opt/a:b/libkeepalive.so")).is_err());
        assert!(preloadable(PathBuf::from("/opt/k/libkeepalive.so")).is_ok());
    }

    #[test]
    fn executables_are_found_like_execvp() {
        let sh = executable(
            OsStr::new("sh"),
            Some(OsStr::new("/nonexistent:/bin:/usr/bin")),
        );
        assert_eq!(sh, Some(PathBuf::from("/bin/sh")));
        assert_eq!(
            executable(OsStr::new("no-such-program-x"), Some(OsStr::new("/bin"))),
            None
        );
        assert_eq!(
            executable(OsStr::new("./rel/prog"), None),
            Some(PathBuf::from("./rel/prog"))
        );
    }
}
