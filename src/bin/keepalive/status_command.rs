//! `keepalive --status PID|CGROUP-DIR|UNIT [--json]`: resolves each target
//! (`status_target`), reads each process (`status`) and prints it
//! (`status_output`) on stdout. Exit status 0 when every process could be
//! read; a process of a group that exited meanwhile is simply not shown.

use crate::output;
use crate::pinned::Failure;
use crate::status::{self, ProcessStatus};
use crate::status_output;
use crate::status_target;
use std::ffi::OsString;

/// Runs `--status` for each target. True when everything could be read.
pub fn run(targets: &[OsString], json: bool) -> bool {
    let mut ok = true;
    for target in targets {
        let processes = match status_target::resolve(target) {
            Ok(processes) => processes,
            Err(message) => {
                output::warn(&format!(
                    "keepalive: {}",
                    status_output::printable(message.as_bytes())
                ));
                ok = false;
                continue;
            }
        };
        for problem in &processes.problems {
            output::warn(&format!(
                "keepalive: {}",
                status_output::printable(problem.as_bytes())
            ));
            ok = false;
        }
        let mut statuses: Vec<ProcessStatus> = Vec::new();
        for &pid in &processes.pids {
            match status::read(pid) {
                Ok(status) => statuses.push(status),
                Err(Failure::Gone) if !processes.single => {}
                Err(failure) => {
                    output::warn(&format!("keepalive: {}", failure.message(pid)));
                    ok = false;
                }
            }
        }
        let text = if json {
            if processes.single {
                statuses
                    .first()
                    .map(|status| format!("{}\n", status_output::json(status)))
                    .unwrap_or_default()
            } else {
                let list: Vec<String> = statuses.iter().map(status_output::json).collect();
                format!(
                    "{{\"target\":{},\"processes\":[{}]}}\n",
                    status_output::string(&target.to_string_lossy()),
                    list.join(",")
                )
            }
        } else {
            statuses.iter().map(status_output::human).collect()
        };
        if output::print(&text).is_err() {
            return false;
        }
    }
    ok
}
