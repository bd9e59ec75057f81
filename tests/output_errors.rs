//! The command never panics on its own output: a closed pipe
//! (`keepalive --check | head -1`) or a full disk (`> /dev/full`) ends it
//! with status 125 (keepalive(1), EXIT STATUS) and no panic text, instead of
//! Rust's 101 and "failed printing to stdout".

use std::fs::File;
use std::os::fd::{FromRawFd, OwnedFd};
use std::process::{Command, Output, Stdio};

const OUTPUT_FAILED: i32 = 125;

fn keepalive(args: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_keepalive"));
    cmd.args(args).stdin(Stdio::null());
    cmd
}

/// The write end of a pipe whose read end is already closed: every write
/// gets EPIPE, with no race against a reader like head(1).
fn widowed_pipe() -> Stdio {
    let mut fds = [0; 2];
    // SAFETY: fds has room for the two descriptors pipe() returns.
    assert_eq!(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) }, 0);
    // SAFETY: both descriptors are fresh and owned here alone.
    let (read, write) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    drop(read);
    Stdio::from(write)
}

fn dev_full() -> Stdio {
    Stdio::from(File::options().write(true).open("/dev/full").unwrap())
}

fn assert_clean_failure(output: &Output, expected_stderr: &str, what: &str) {
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(
        output.status.code(),
        Some(OUTPUT_FAILED),
        "{what}: {stderr}"
    );
    assert!(!stderr.contains("panicked"), "{what}: {stderr}");
    assert_eq!(stderr, expected_stderr, "{what}");
}

const EVERY_OUTPUT: [&[&str]; 3] = [&["--check"], &["--help"], &["--version"]];

#[test]
fn closed_pipe_ends_quietly_with_125() {
    for args in EVERY_OUTPUT {
        let output = keepalive(args).stdout(widowed_pipe()).output().unwrap();
        // The reader chose to stop reading: nothing to report.
        assert_clean_failure(&output, "", &format!("{args:?} into a closed pipe"));
    }
}

#[test]
fn full_disk_ends_with_one_line_and_125() {
    let line = "keepalive: cannot write the output: No space left on device (os error 28)\n";
    for args in EVERY_OUTPUT {
        let output = keepalive(args).stdout(dev_full()).output().unwrap();
        assert_clean_failure(&output, line, &format!("{args:?} > /dev/full"));
    }
}

#[test]
fn unwritable_stderr_keeps_the_documented_status() {
    // A bad option's message cannot be written either: still 125, not 101.
    let status = keepalive(&["--no-such-option"])
        .stderr(dev_full())
        .status()
        .unwrap();
    assert_eq!(status.code(), Some(OUTPUT_FAILED));
    // A program that cannot be found: 127 even with nowhere to say so. The
    // library is never loaded (nothing runs), so any file will do.
    let library = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("libkeepalive.so");
    std::fs::write(&library, b"").unwrap();
    let status = keepalive(&["/nonexistent/program"])
        .env("KEEPALIVE_LIB", &library)
        .stderr(dev_full())
        .status()
        .unwrap();
    assert_eq!(status.code(), Some(127));
}

#[test]
fn normal_output_is_unchanged() {
    let output = keepalive(&["--version"]).output().unwrap();
    assert_eq!(output.status.code(), Some(0));
    let expected = format!("keepalive {}\n", env!("CARGO_PKG_VERSION"));
    assert_eq!(String::from_utf8_lossy(&output.stdout), expected);
}
