//! `keepalive --status --all [--path NAME] [--json]`: every established TCP
//! connection of the host with its process, cgroup, keepalive timer and who
//! set it: an attachment of the kernel-side mode (which one), the library,
//! or the program itself, option by option from our attachments' record of
//! each socket where it can be read (status_all_set_by.rs). Read-only: the
//! kernel's socket table (sock_diag.rs, which also returns each socket's
//! record), /proc links and the cgroups' attachment lists; no descriptor is
//! taken from any process. With `--path NAME`, connections an
//! idle timeout on that path would drop are marked, and the exit status is 1.

use crate::environment::Overrides;
use crate::sock_diag::{self, Timer};
use crate::status_all_set_by::{self as set_by, Attribution, Covering};
use crate::status_output::string as json_string;
use crate::status_set_by::OPTION_KEYS;
use keepalive_core::presets::{self, Preset};
use std::collections::HashMap;
use std::process::ExitCode;

/// The process that holds a socket, as /proc shows it.
#[derive(Debug, Clone)]
struct Holder {
    pid: i32,
    name: String,
    cgroup: String,
    library: bool,
}

/// One row of the view.
struct Row {
    connection: sock_diag::Connection,
    holder: Option<Holder>,
    set_by: Attribution,
    at_risk: bool,
}

/// socket inode -> the process holding it (the lowest pid of several), by
/// reading /proc/PID/fd links.
fn holders() -> HashMap<u64, i32> {
    let mut found = HashMap::new();
    let Ok(processes) = std::fs::read_dir("/proc") else {
        return found;
    };
    let mut pids: Vec<i32> = processes
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse().ok())
        .collect();
    pids.sort();
    for pid in pids {
        let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
            continue;
        };
        for fd in fds.flatten() {
            let Ok(target) = std::fs::read_link(fd.path()) else {
                continue;
            };
            let inode = target
                .to_str()
                .and_then(|t| t.strip_prefix("socket:["))
                .and_then(|t| t.strip_suffix(']'))
                .and_then(|t| t.parse().ok());
            if let Some(inode) = inode {
                found.entry(inode).or_insert(pid);
            }
        }
    }
    found
}

fn holder(pid: i32) -> Holder {
    let read =
        |file: &str| std::fs::read_to_string(format!("/proc/{pid}/{file}")).unwrap_or_default();
    Holder {
        pid,
        name: read("comm").trim_end().to_string(),
        cgroup: crate::bpf::cgroup::own_path(&read("cgroup")).unwrap_or_default(),
        library: read("maps").contains("libkeepalive"),
    }
}

/// An idle connection on `preset`'s path is dropped if keepalive is off, or
/// if its next probe comes after the path's idle timeout.
fn at_risk(timer: Timer, preset: &Preset) -> bool {
    match timer {
        Timer::Off => true,
        Timer::Keepalive(ms) => ms / 1000 > preset.timeout_secs,
        Timer::Busy => false,
    }
}

fn keepalive_text(timer: Timer) -> String {
    match timer {
        Timer::Off => "off".to_string(),
        Timer::Keepalive(ms) => format!("on, next probe in {} s", ms / 1000),
        Timer::Busy => "unknown (data in flight)".to_string(),
    }
}

pub fn run(overrides: &Overrides, json: bool) -> ExitCode {
    let preset = match overrides.lookup("KEEPALIVE_PATH", |_| None) {
        Some(name) => match presets::find(&String::from_utf8_lossy(&name)) {
            Some(preset) => Some(preset),
            None => {
                eprintln!(
                    "keepalive: --path {:?} is not a known path; known: {}",
                    String::from_utf8_lossy(&name),
                    presets::names()
                );
                return ExitCode::from(crate::FAILED);
            }
        },
        None => None,
    };
    // Our attachments' records come with the table where the shared map
    // can be opened and sock_diag may return it (root); else inferred.
    let records = crate::bpf::SocketRecords::open().ok().flatten();
    let with_records = records
        .as_ref()
        .and_then(|records| sock_diag::established(Some(records.map())).ok());
    let read_records = with_records.is_some();
    let connections = match with_records.map_or_else(|| sock_diag::established(None), Ok) {
        Ok(connections) => connections,
        Err(error) => {
            eprintln!("keepalive: cannot read the kernel's TCP table (sock_diag): {error}");
            return ExitCode::from(crate::FAILED);
        }
    };
    let inodes = holders();
    let mut covering = Covering::default();
    let mut rows: Vec<Row> = connections
        .into_iter()
        .map(|connection| {
            let holder = inodes.get(&connection.inode).map(|&pid| holder(pid));
            let seen = holder.as_ref().map(|h| set_by::Holder {
                cgroup: &h.cgroup,
                library: h.library,
            });
            let timer = connection.timer;
            let set_by = if read_records {
                let record = connection
                    .storage
                    .as_deref()
                    .and_then(crate::bpf::Record::decode);
                set_by::from_record(seen.as_ref(), record.as_ref(), timer, &mut covering)
            } else {
                set_by::inferred(seen.as_ref(), timer, &mut covering)
            };
            let at_risk = preset.is_some_and(|p| at_risk(timer, p));
            Row {
                connection,
                holder,
                set_by,
                at_risk,
            }
        })
        .collect();
    rows.sort_by_key(|r| (r.holder.as_ref().map(|h| h.pid), r.connection.local));
    let text = if json {
        json_view(&rows, preset)
    } else {
        human_view(&rows, preset)
    };
    if let Err(status) = crate::output::print(&text) {
        return status;
    }
    if rows.iter().any(|r| r.at_risk) {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

fn human_view(rows: &[Row], preset: Option<&Preset>) -> String {
    let mut text = String::new();
    for row in rows {
        let process = match &row.holder {
            Some(h) => format!("pid {} ({}) cgroup {}", h.pid, h.name, h.cgroup),
            None => "no process".to_string(),
        };
        text.push_str(&format!(
            "{} -> {}  {process}  keepalive {}  set by {}{}",
            row.connection.local,
            row.connection.peer,
            keepalive_text(row.connection.timer),
            row.set_by.summary,
            if row.set_by.inferred {
                " (inferred from the timer: our attachments' records cannot be read)"
            } else {
                ""
            }
        ));
        if let (true, Some(p)) = (row.at_risk, preset) {
            text.push_str(&format!(
                "  AT RISK: {} drops idle flows after {} s",
                p.name, p.timeout_secs
            ));
        }
        text.push('\n');
    }
    let risky = rows.iter().filter(|r| r.at_risk).count();
    text.push_str(&format!("{} established TCP connections", rows.len()));
    if let Some(p) = preset {
        text.push_str(&format!(", {risky} at risk on the {} path", p.name));
    }
    text.push('\n');
    text
}

fn json_view(rows: &[Row], preset: Option<&Preset>) -> String {
    let items: Vec<String> = rows
        .iter()
        .map(|row| {
            let c = &row.connection;
            let (keepalive, next) = match c.timer {
                Timer::Off => ("false".to_string(), "null".to_string()),
                Timer::Keepalive(ms) => ("true".to_string(), (ms / 1000).to_string()),
                Timer::Busy => ("null".to_string(), "null".to_string()),
            };
            let process = match &row.holder {
                Some(h) => format!(
                    "{{\"pid\":{},\"name\":{},\"cgroup\":{},\"library\":{}}}",
                    h.pid,
                    json_string(&h.name),
                    json_string(&h.cgroup),
                    h.library
                ),
                None => "null".to_string(),
            };
            let options = match &row.set_by.options {
                Some(options) => {
                    let pairs: Vec<String> = OPTION_KEYS
                        .iter()
                        .zip(options)
                        .map(|(key, who)| {
                            let who = who.as_deref().map_or("null".to_string(), json_string);
                            format!("\"{key}\":{who}")
                        })
                        .collect();
                    format!("{{{}}}", pairs.join(","))
                }
                None => "null".to_string(),
            };
            format!(
                "{{\"local\":{},\"peer\":{},\"inode\":{},\"uid\":{},\"process\":{process},\
                 \"keepalive\":{keepalive},\"next_probe_secs\":{next},\"set_by\":{},\
                 \"set_by_option\":{options},\"set_by_inferred\":{},\"at_risk\":{}}}",
                json_string(&c.local.to_string()),
                json_string(&c.peer.to_string()),
                c.inode,
                c.uid,
                json_string(&row.set_by.summary),
                row.set_by.inferred,
                row.at_risk
            )
        })
        .collect();
    let path = preset.map_or("null".to_string(), |p| json_string(p.name));
    format!(
        "{{\"path\":{path},\"connections\":[{}]}}\n",
        items.join(",")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn risk_on_a_path() {
        let nlb = presets::find("aws-nlb").unwrap();
        assert!(at_risk(Timer::Off, nlb));
        assert!(at_risk(Timer::Keepalive(7_200_000), nlb));
        assert!(!at_risk(Timer::Keepalive(100_000), nlb));
        assert!(!at_risk(Timer::Busy, nlb));
    }
}
