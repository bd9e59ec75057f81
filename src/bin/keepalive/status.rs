//! What `keepalive --status` learns about one running process: whether the
//! library is mapped, the settings it started with (the library's own
//! parser and messages), and every TCP socket with its effective keepalive
//! options read from the socket itself. Only data: `status_output` prints
//! it, `status_command` runs the command.
//!
//! Read-only: the process is read through /proc, and only its TCP sockets
//! are copied (`pidfd_getfd`), from a thread in its own net_cls/net_prio
//! cgroups so the kernel's re-tagging of a received socket changes nothing
//! (`net_cgroups`). Where that cannot be done, nothing is copied and the
//! kernel's TCP table stands in.

use crate::check;
use crate::environment::Overrides;
use crate::net_cgroups;
use crate::pinned::{Failure, Pinned};
use crate::proc::{self, TcpRow};
use crate::sockets::{self, Options};
use crate::status_set_by::{self, InForce, SetBy};
use crate::unit;
use keepalive_core::load::{self, Loaded};
use keepalive_core::plan::KernelDefaults;
use keepalive_core::programs;
use std::os::fd::AsFd;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

/// One TCP socket of the process.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Connection {
    pub fd: i32,
    pub local: String,
    pub remote: String,
    pub state: String,
    /// From `getsockopt` on the socket; `None` when that was refused.
    pub options: Option<Options>,
    /// The kernel's TCP table row, for the fallback: the pending timer.
    pub row: Option<TcpRow>,
    /// Who set each option's value (`status_set_by::OPTION_KEYS` order);
    /// `None` when the options could not be read.
    pub set_by: Option<[SetBy; 5]>,
}

impl Connection {
    /// Whether keepalive is on: from the socket, or else from the table
    /// (a keepalive timer pending means on; no timer at all on an
    /// established connection means off; otherwise unknown).
    pub fn keepalive(&self) -> Option<bool> {
        if let Some(options) = self.options {
            return Some(options.keepalive);
        }
        let row = self.row.as_ref()?;
        match (row.timer, row.state) {
            (2, _) => Some(true),
            (0, "ESTABLISHED") => Some(false),
            _ => None,
        }
    }

    /// Seconds left on the keepalive timer, from the TCP table.
    pub fn timer_secs(&self) -> Option<f64> {
        let row = self.row.as_ref().filter(|row| row.timer == 2)?;
        // SAFETY: sysconf has no preconditions.
        let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
        Some(row.timer_ticks as f64 / hz)
    }
}

/// Everything `--status` reports about one process.
#[derive(Debug)]
pub struct ProcessStatus {
    pub pid: i32,
    pub exe: Option<PathBuf>,
    pub started_as: Option<Vec<u8>>,
    /// The libkeepalive files mapped into the process.
    pub library: Vec<PathBuf>,
    pub loaded: Loaded,
    /// The `--check` lines for its environment.
    pub settings: Vec<String>,
    /// `Some(false)` when `KEEPALIVE_PROGRAMS` leaves this process alone.
    pub listed: Option<bool>,
    pub connections: Vec<Connection>,
    pub warnings: Vec<String>,
    pub notes: Vec<String>,
    /// The settings in force for its connections: its environment's, or
    /// those of the kernel-side attachment (`--attach`, `--bpf`) that
    /// decides them.
    pub in_force: InForce,
}

impl ProcessStatus {
    /// The cgroup whose kernel-side attachment decides the process's
    /// connections, if any.
    pub fn bpf_attachment(&self) -> Option<&Path> {
        match &self.in_force {
            InForce::Attachment(attachment) => Some(&attachment.directory),
            InForce::Environment => None,
        }
    }
}

/// Reads one process, pinned from start to finish (`pinned`).
pub fn read(pid: i32) -> Result<ProcessStatus, Failure> {
    let process = Pinned::open(pid)?;
    let status = read_pinned(&process)?;
    // Everything read belonged to the process pinned at the start.
    if !process.still_there() {
        return Err(Failure::Gone);
    }
    Ok(status)
}

fn read_pinned(process: &Pinned) -> Result<ProcessStatus, Failure> {
    let pid = process.pid;
    let environ = proc::parse_environ(&process.read("environ")?);
    let maps = proc::executable_files(&process.read("maps")?);
    let sockets = process.socket_fds()?;
    let exe = process.read_link("exe");
    let (execfn, secure) = process
        .read_optional("auxv")
        .map(|auxv| proc::parse_auxv(&auxv))
        .unwrap_or_default();
    let started_as = execfn.and_then(|address| process.started_as(address));
    let cgroup_text = process
        .read_optional("cgroup")
        .map(|text| String::from_utf8_lossy(&text).into_owned())
        .unwrap_or_default();

    let lookup = |name: &str| environ.get(name.as_bytes()).cloned();
    let loaded = load::load(lookup);
    let settings = check::report(&loaded, &Overrides::default(), &lookup, &check::read_sysctl);
    let mut warnings: Vec<String> = loaded.diagnostics.iter().map(ToString::to_string).collect();
    let mut names: Vec<&[u8]> = environ.keys().map(Vec::as_slice).collect();
    names.sort_unstable();
    warnings.extend(check::near_misses(names));
    let mut notes = Vec::new();

    let library: Vec<PathBuf> = maps
        .into_iter()
        .filter(|file| proc::is_our_library(file))
        .collect();
    let preloaded: Vec<PathBuf> = environ
        .get(b"LD_PRELOAD".as_slice())
        .map(|value| proc::preload_entries(value))
        .unwrap_or_default()
        .into_iter()
        .filter(|entry| proc::is_our_library(entry))
        .collect();
    if library.is_empty() {
        for entry in &preloaded {
            warnings.push(not_mapped_warning(process, &cgroup_text, entry, secure));
        }
    } else if preloaded.is_empty() {
        notes.push(
            "the library is mapped but LD_PRELOAD does not name it: \
             /etc/ld.so.preload or dlopen loaded it"
                .to_string(),
        );
    }
    if secure == Some(true) && !library.is_empty() {
        notes.push(
            "secure-execution mode (setuid, setgid or capabilities): \
             the library leaves every socket alone"
                .to_string(),
        );
    }

    let listed = loaded.programs.as_ref().map(|list| {
        let comm = process.read_optional("comm").unwrap_or_default();
        let comm = comm.strip_suffix(b"\n").unwrap_or(&comm).to_vec();
        let exe_bytes = exe
            .as_deref()
            .map(|e| e.as_os_str().as_bytes())
            .unwrap_or(b"");
        // The kernel's comm is the started-as name cut to 15 bytes; it stands
        // in when the process's memory may not be read.
        let second = started_as.clone().unwrap_or(comm);
        let listed = list.lists(&[exe_bytes, &second])
            || (started_as.is_none()
                && second.len() == 15
                && list.names.iter().any(|n| n.as_bytes().starts_with(&second)));
        if !listed {
            notes.push(format!(
                "KEEPALIVE_PROGRAMS ({}) does not list this process ({}, started as {}): \
                 the library leaves it alone",
                list.joined(),
                String::from_utf8_lossy(programs::base_name(exe_bytes)),
                String::from_utf8_lossy(programs::base_name(&second)),
            ));
        }
        listed
    });

    if !library.is_empty() && is_go(pid) {
        warnings.push(
            "the library is loaded but this is a Go program, which makes its own system \
             calls: the library cannot reach its sockets; use the kernel-side mode \
             (keepalive --bpf, or --attach on its cgroup)"
                .to_string(),
        );
    }
    let attachment = kernel_side_attachment(&cgroup_text, !library.is_empty(), &mut notes);
    // The attachments' record of each socket: who set which option.
    let records = attachment
        .as_ref()
        .and_then(|_| crate::bpf::SocketRecords::open().ok().flatten());
    let defaults = kernel_defaults();
    let applies = !library.is_empty() && listed != Some(false) && secure != Some(true);
    let who = WhoSet {
        library: status_set_by::library_values(&loaded, applies, defaults),
        kernel: status_set_by::kernel_defaults(defaults),
        records,
    };

    let rows = proc::tcp_rows(|table| process.read_optional(table));
    // Only TCP sockets are ever copied: the kernel names each socket's
    // protocol without a copy. A socket it does not name is left alone.
    let tcp: Vec<(i32, u64)> = sockets
        .into_iter()
        .filter(|&(fd, inode)| {
            rows.contains_key(&inode)
                || process
                    .socket_protocol(fd)
                    .is_some_and(|name| is_tcp_protocol(&name))
        })
        .collect();
    let (options, refusal) = socket_options(process, &cgroup_text, &tcp, &who, &mut notes);
    let connections: Vec<Connection> = tcp
        .iter()
        .zip(options)
        .map(|(&(fd, inode), (options, set_by))| {
            let row = rows.get(&inode).cloned();
            // Not in the table: not yet bound, connected or listening.
            let shown = row.clone().unwrap_or_else(unbound_row);
            Connection {
                fd,
                local: shown.local,
                remote: shown.remote,
                state: shown.state.to_string(),
                options,
                row,
                set_by,
            }
        })
        .collect();
    if let Some(refusal) = refusal.filter(|_| !connections.is_empty()) {
        warnings.push(format!(
            "could not read the sockets' options ({refusal}): keepalive shown \
             from the kernel's TCP table, timer only"
        ));
    }
    Ok(ProcessStatus {
        pid,
        exe,
        started_as,
        library,
        loaded,
        settings,
        listed,
        connections,
        warnings,
        notes,
        in_force: attachment.map_or(InForce::Environment, InForce::Attachment),
    })
}

/// `net.ipv4.tcp_keepalive_*`, what a socket has before anyone sets one.
fn kernel_defaults() -> KernelDefaults {
    let read = |name, linux| check::read_sysctl(name).unwrap_or(linux);
    KernelDefaults {
        idle_secs: read("tcp_keepalive_time", KernelDefaults::LINUX.idle_secs),
        interval_secs: read("tcp_keepalive_intvl", KernelDefaults::LINUX.interval_secs),
        count: read("tcp_keepalive_probes", KernelDefaults::LINUX.count),
    }
}

/// A socket's options and who set each, as far as they could be read.
type SocketView = (Option<Options>, Option<[SetBy; 5]>);

/// What tells who set a socket's options: the library's values (if it
/// applies to the process), the kernel's defaults, the attachments' records.
struct WhoSet {
    library: Option<[Option<i64>; 5]>,
    kernel: [i64; 5],
    records: Option<crate::bpf::SocketRecords>,
}

/// `system.sockprotoname` of a TCP socket (MPTCP's too: keepalive applies).
fn is_tcp_protocol(name: &str) -> bool {
    matches!(name, "TCP" | "TCPv6" | "MPTCP" | "MPTCPv6")
}

/// Each socket's options, from a copy taken where the kernel's re-tagging
/// of a received socket changes nothing; and, if some could not be read,
/// why (the first refusal).
fn socket_options(
    process: &Pinned,
    cgroup_text: &str,
    sockets: &[(i32, u64)],
    who: &WhoSet,
    notes: &mut Vec<String>,
) -> (Vec<SocketView>, Option<String>) {
    let none = vec![(None, None); sockets.len()];
    if sockets.is_empty() {
        return (none, None);
    }
    let pidfd = match process.pidfd() {
        Ok(pidfd) => pidfd,
        Err(error) => {
            return (
                none,
                Some(format!(
                    "pidfd_open: {error}; it needs Linux 5.3 and the process in this \
                     command's PID namespace"
                )),
            )
        }
    };
    let copied = net_cgroups::in_targets_cgroups(cgroup_text, || {
        let mut refusal = None;
        let options: Vec<SocketView> = sockets
            .iter()
            .map(|&(fd, _)| match sockets::copy(pidfd.as_fd(), fd) {
                Ok(socket) => {
                    let options = socket.options().ok();
                    let record = who.records.as_ref().and_then(|r| r.of(&socket));
                    let set_by = options.map(|options| {
                        status_set_by::who_set(
                            &options,
                            record.as_ref(),
                            who.library.as_ref(),
                            &who.kernel,
                        )
                    });
                    if let Some(record) = record {
                        let user_timeout = options.map_or(0, |o| o.user_timeout_ms);
                        let described = set_by.as_ref().and_then(status_set_by::describe);
                        for note in record.notes(user_timeout, described) {
                            notes.push(format!("kernel-side mode, fd {fd}: {note}"));
                        }
                    }
                    (options, set_by)
                }
                Err(error) => {
                    refusal.get_or_insert_with(|| {
                        format!(
                            "pidfd_getfd: {error}; it needs Linux 5.6 and ptrace \
                             permission over the process"
                        )
                    });
                    (None, None)
                }
            })
            .collect();
        (options, refusal)
    });
    match copied {
        Ok(result) => result,
        Err(reason) => (
            none,
            Some(format!(
                "not copied, as copying would re-tag them with this command's \
                 net_cls/net_prio cgroups: {reason}"
            )),
        ),
    }
}

/// Whether the process runs a Go program (its sockets are out of the
/// library's reach even when it is loaded).
fn is_go(pid: i32) -> bool {
    std::fs::File::open(format!("/proc/{pid}/exe"))
        .is_ok_and(|file| crate::elf::inspect(&file) == crate::elf::Kind::Go)
}

/// Whether a kernel-side attachment covers the process's cgroup; notes say
/// which, with the settings that apply (not the library's), and the outer
/// ones it overrules, or why it could not be told (it needs root).
fn kernel_side_attachment(
    cgroup_text: &str,
    library_loaded: bool,
    notes: &mut Vec<String>,
) -> Option<crate::bpf::Attachment> {
    let cgroup = crate::bpf::cgroup::own_path(cgroup_text)?;
    match crate::bpf::attachments_covering(&cgroup) {
        Ok(found) => {
            let first = found.first()?;
            let library = if library_loaded {
                "the library's calls are the program's own to it: its values stand unless \
                 the attachment overrides"
            } else {
                "these apply, not the library's settings"
            };
            notes.push(format!(
                "kernel-side mode: the attachment on {} decides this process's connections: \
                 {} ({library})",
                first.directory.display(),
                first.describe()
            ));
            for outer in &found[1..] {
                notes.push(format!(
                    "kernel-side mode: the outer attachment on {} ({}) leaves them to it",
                    outer.directory.display(),
                    outer.describe()
                ));
            }
            Some(first.clone())
        }
        Err(error) => {
            notes.push(format!("kernel-side mode: could not tell ({error})"));
            None
        }
    }
}

/// A TCP socket the table does not list: not yet bound, connected or listening.
fn unbound_row() -> TcpRow {
    TcpRow {
        local: "*".into(),
        remote: "*".into(),
        state: "CLOSE",
        timer: 0,
        timer_ticks: 0,
        retransmits: 0,
        inode: 0,
    }
}

/// The silent failure made visible: LD_PRELOAD names the library, ld.so did
/// not load it. With the likely cause where one can be seen.
fn not_mapped_warning(
    process: &Pinned,
    cgroup_text: &str,
    entry: &Path,
    secure: Option<bool>,
) -> String {
    let mut warning = format!(
        "LD_PRELOAD names {} but it is not mapped: ld.so could not preload it \
         and the program runs without keepalive",
        entry.display()
    );
    let in_root = process
        .path("root")
        .join(entry.strip_prefix("/").unwrap_or(entry));
    let unit = unit::in_cgroups(cgroup_text);
    let noexec = entry.is_absolute()
        && process
            .read_optional("mountinfo")
            .and_then(|info| proc::on_noexec_mount(&String::from_utf8_lossy(&info), entry))
            .unwrap_or(false);
    if secure == Some(true) && entry.as_os_str().as_bytes().contains(&b'/') {
        warning.push_str(
            "; the process runs in secure-execution mode (setuid, setgid or capabilities), \
             where ld.so ignores LD_PRELOAD paths with a slash",
        );
    } else if entry.is_absolute() && !in_root.exists() {
        warning.push_str("; no such file in the process's file system");
    } else if noexec {
        warning.push_str("; its file system is mounted noexec for this process");
        if let Some(unit) = unit {
            warning.push_str(&format!(
                ", as a hardened systemd unit's NoExecPaths= does: add ExecPaths={} to \
                 {unit} (systemctl edit {unit})",
                entry.display()
            ));
        }
    } else if let Some(unit) = unit {
        warning.push_str(&format!(
            "; it runs in {unit}: if the unit is hardened (NoExecPaths=, \
             SystemCallFilter=), add ExecPaths={} to it (systemctl edit {unit})",
            entry.display()
        ));
    } else {
        warning.push_str(
            "; ld.so printed why on the program's stderr when it started \
             (wrong architecture, a symbol version its glibc lacks, an unreadable file)",
        );
    }
    warning
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_reads_itself() {
        let status = read(std::process::id() as i32).unwrap();
        assert!(status.library.is_empty());
        assert!(status.exe.is_some());
        let map = proc::parse_environ(b"KEEPIDLE=0\0");
        let loaded = load::load(|name| map.get(name.as_bytes()).cloned());
        assert_eq!(loaded.diagnostics.len(), 1);
    }

    #[test]
    fn fallback_from_the_table() {
        let row = |timer, state| TcpRow {
            state,
            timer,
            ..unbound_row()
        };
        let connection = |row| Connection {
            fd: 3,
            local: String::new(),
            remote: String::new(),
            state: String::new(),
            options: None,
            row: Some(row),
            set_by: None,
        };
        assert_eq!(connection(row(2, "ESTABLISHED")).keepalive(), Some(true));
        assert_eq!(connection(row(0, "ESTABLISHED")).keepalive(), Some(false));
        assert_eq!(connection(row(1, "ESTABLISHED")).keepalive(), None);
        assert_eq!(connection(row(0, "LISTEN")).keepalive(), None);
    }
}
