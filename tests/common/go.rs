//! tests/go/goprobe.go, built once per test binary with Debian's golang-go,
//! offline: without cgo (a static program that makes its own system calls)
//! or with it (dynamically linked, so LD_PRELOAD loads the library into it,
//! which still cannot reach Go's sockets).

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// The built probe, `target/tmp/go/goprobe` or `goprobe-cgo`.
pub fn go_probe(cgo: bool) -> PathBuf {
    static STATIC: OnceLock<PathBuf> = OnceLock::new();
    static CGO: OnceLock<PathBuf> = OnceLock::new();
    let (built, name) = if cgo {
        (&CGO, "goprobe-cgo")
    } else {
        (&STATIC, "goprobe")
    };
    built.get_or_init(|| build(name, cgo)).clone()
}

fn build(name: &str, cgo: bool) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("go");
    fs::create_dir_all(&dir).unwrap();
    let out = dir.join(name);
    // Built under a name of this process's own and renamed into place: test
    // binaries running at once never see each other's half-written file.
    let partial = dir.join(format!("{name}.{}", std::process::id()));
    let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/go/goprobe.go");
    let result = Command::new("go")
        .args(["build", "-o"])
        .arg(&partial)
        .arg(&source)
        .env("GOFLAGS", "-mod=mod")
        .env("GOCACHE", dir.join("cache"))
        .env("GOPATH", dir.join("path"))
        .env("CGO_ENABLED", if cgo { "1" } else { "0" })
        .output()
        .expect("go not found: apt-get install -y golang-go");
    assert!(
        result.status.success(),
        "go build: {}",
        String::from_utf8_lossy(&result.stderr)
    );
    fs::rename(&partial, &out).unwrap();
    out
}
