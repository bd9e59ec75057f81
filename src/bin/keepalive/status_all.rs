//! `keepalive --status --all`: placeholder until the host-wide view lands.

use crate::environment::Overrides;
use std::process::ExitCode;

pub fn run(_overrides: &Overrides, _json: bool) -> ExitCode {
    eprintln!("keepalive: --status --all is not built yet");
    ExitCode::from(crate::FAILED)
}
