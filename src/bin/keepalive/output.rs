//! The command's own output. print!/println! panic when stdout cannot be
//! written (`keepalive --check | head -1`, `keepalive --help > /dev/full`):
//! exit status 101 and panic text. Here a failed write ends the command with
//! status 125 instead, silently when the reader closed the pipe (it chose to
//! stop reading), with one line on stderr otherwise.

use std::io::{ErrorKind, Write};
use std::process::ExitCode;

/// Status when stdout cannot be written: keepalive itself failed (env(1)'s
/// 125, as for a bad option), documented in keepalive(1).
pub const OUTPUT_FAILED: u8 = 125;

/// Writes `text` to stdout and flushes it.
pub fn print(text: &str) -> Result<(), ExitCode> {
    let mut stdout = std::io::stdout().lock();
    match stdout
        .write_all(text.as_bytes())
        .and_then(|()| stdout.flush())
    {
        Ok(()) => Ok(()),
        Err(error) => {
            if error.kind() != ErrorKind::BrokenPipe {
                warn(&format!("keepalive: cannot write the output: {error}"));
            }
            Err(ExitCode::from(OUTPUT_FAILED))
        }
    }
}

/// One line on stderr. If even that fails there is nobody to tell, so the
/// error is dropped (eprintln! would panic).
pub fn warn(line: &str) {
    let _ = writeln!(std::io::stderr().lock(), "{line}");
}
