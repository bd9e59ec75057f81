//! The agent's log: one line on stderr. A failed write (stderr a pipe whose
//! reader has gone) is dropped, never a panic: the agent keeps configuring
//! workloads and still detaches everything on SIGTERM.

use std::io::Write;

/// "keepalive: agent: TEXT".
pub fn line(text: &str) {
    let _ = writeln!(std::io::stderr(), "keepalive: agent: {text}");
}
