//! The shipped build (scripts/build-portable.sh: zig, glibc 2.17 stubs),
//! made once per test binary and feature list into a target directory of
//! its own; and what objdump/readelf say about an ELF file.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;

/// The directory holding the shipped `libkeepalive.so` and `keepalive`,
/// built with `features` (none: the real shipped build).
pub fn build(features: &str) -> PathBuf {
    static BUILT: Mutex<Vec<String>> = Mutex::new(Vec::new());
    let mut built = BUILT.lock().unwrap_or_else(|e| e.into_inner());
    let name = if features.is_empty() {
        "portable-build".to_string()
    } else {
        format!("portable-build-{features}")
    };
    let target = Path::new(env!("CARGO_TARGET_TMPDIR")).join(name);
    let dir = target.join("portable");
    if built.iter().any(|f| f == features) {
        return dir;
    }
    let mut cmd =
        Command::new(Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/build-portable.sh"));
    cmd.env("CARGO_TARGET_DIR", &target);
    if !features.is_empty() {
        cmd.args(["--features", features]);
    }
    let out = cmd.output().expect("run scripts/build-portable.sh");
    assert!(
        out.status.success(),
        "scripts/build-portable.sh {features}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    built.push(features.to_string());
    dir
}

pub fn library() -> PathBuf {
    build("").join("libkeepalive.so")
}

pub fn command() -> PathBuf {
    build("").join("keepalive")
}

/// The newest GLIBC_x.y[.z] symbol version `file` asks for (objdump -T):
/// the oldest glibc it loads on.
pub fn glibc_floor(file: &Path) -> Vec<u32> {
    let output = Command::new("objdump")
        .arg("-T")
        .arg(file)
        .output()
        .expect("objdump: apt-get install -y binutils");
    assert!(
        output.status.success(),
        "objdump -T {}: {output:?}",
        file.display()
    );
    String::from_utf8_lossy(&output.stdout)
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '.'))
        .filter_map(|word| word.strip_prefix("GLIBC_"))
        .filter_map(|version| version.split('.').map(|p| p.parse().ok()).collect())
        .max()
        .expect("no GLIBC_ versions in objdump -T")
}

/// readelf ARGS FILE's output.
pub fn readelf(args: &[&str], file: &Path) -> String {
    let out = Command::new("readelf")
        .args(args)
        .arg(file)
        .output()
        .expect("run readelf (apt-get install -y binutils)");
    assert!(out.status.success(), "readelf {args:?}: {out:?}");
    String::from_utf8_lossy(&out.stdout).into_owned()
}
