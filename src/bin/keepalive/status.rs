//! `keepalive --status PID|CGROUP-DIR|UNIT [--json]`: what the library does
//! in running processes. Whether it is mapped, the settings the process
//! started with (the library's own parser and messages), and every TCP
//! socket with its effective keepalive options read from the socket itself.

use crate::check;
use crate::environment::Overrides;
use crate::proc::{self, TcpRow};
use crate::sockets::{Options, Pidfd};
use keepalive_core::load::{self, Loaded};
use keepalive_core::programs;
use std::ffi::OsStr;
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
    /// The cgroup whose kernel-side attachment (`--attach`, `--bpf`) covers
    /// the process, if any.
    pub bpf_attachment: Option<PathBuf>,
}

/// Why a process could not be read, as one line.
fn refused(pid: i32, what: &str, error: &std::io::Error) -> String {
    match error.raw_os_error() {
        Some(libc::ENOENT) | Some(libc::ESRCH) => format!("no process {pid}"),
        Some(libc::EACCES) | Some(libc::EPERM) => format!(
            "may not read process {pid} ({what}: {error}): run as root or as the process's user"
        ),
        _ => format!("cannot read process {pid} ({what}: {error})"),
    }
}

/// Reads one process. The error is a one-line message.
pub fn read(pid: i32) -> Result<ProcessStatus, String> {
    let read = |file: &str| {
        std::fs::read(proc::path(pid, file))
            .map_err(|error| refused(pid, &format!("/proc/{pid}/{file}"), &error))
    };
    if !proc::path(pid, "").exists() {
        return Err(format!("no process {pid}"));
    }
    let environ = proc::parse_environ(&read("environ")?);
    let maps = proc::executable_files(&read("maps")?);
    let sockets =
        proc::socket_fds(pid).map_err(|error| refused(pid, &format!("/proc/{pid}/fd"), &error))?;
    let exe = std::fs::read_link(proc::path(pid, "exe")).ok();
    let (execfn, secure) = std::fs::read(proc::path(pid, "auxv"))
        .map(|auxv| proc::parse_auxv(&auxv))
        .unwrap_or_default();
    let started_as = execfn.and_then(|address| proc::started_as(pid, address));

    let lookup = |name: &str| environ.get(name.as_bytes()).cloned();
    let loaded = load::load(lookup);
    let settings = check::report(&loaded, &Overrides::default(), &lookup, &check::read_sysctl);
    let mut warnings: Vec<String> = loaded.diagnostics.iter().map(ToString::to_string).collect();
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
            warnings.push(not_mapped_warning(pid, entry, secure));
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
        let comm = std::fs::read(proc::path(pid, "comm")).unwrap_or_default();
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

    let bpf_attachment = kernel_side_attachment(pid, !library.is_empty(), &mut notes);
    let records = bpf_attachment
        .as_ref()
        .and_then(|_| crate::bpf::SocketRecords::open().ok().flatten());

    let rows = proc::tcp_rows(pid);
    let pidfd = Pidfd::open(pid);
    let mut refusal: Option<String> = pidfd.as_ref().err().map(|e| format!("pidfd_open: {e}"));
    let mut connections = Vec::new();
    for (fd, inode) in sockets {
        let row = rows.get(&inode).cloned();
        let copy = pidfd.as_ref().ok().map(|pidfd| pidfd.socket(fd));
        let options = match copy {
            Some(Ok(socket)) => {
                if row.is_none() && !socket.is_tcp() {
                    continue;
                }
                let options = socket.options().ok();
                if let Some(record) = records.as_ref().and_then(|r| r.of(&socket)) {
                    let user_timeout = options.map_or(0, |o| o.user_timeout_ms);
                    for note in record.notes(user_timeout) {
                        notes.push(format!("kernel-side mode, fd {fd}: {note}"));
                    }
                }
                options
            }
            Some(Err(error)) => {
                refusal.get_or_insert_with(|| format!("pidfd_getfd: {error}"));
                None
            }
            None => None,
        };
        // Without the socket itself, only the table tells TCP from the rest.
        let Some(row_or_unbound) = row.clone().or_else(|| options.map(|_| unbound_row())) else {
            continue;
        };
        connections.push(Connection {
            fd,
            local: row_or_unbound.local.clone(),
            remote: row_or_unbound.remote.clone(),
            state: row_or_unbound.state.to_string(),
            options,
            row,
        });
    }
    if let Some(refusal) = refusal.filter(|_| !connections.is_empty()) {
        warnings.push(format!(
            "could not read the sockets' options ({refusal}; pidfd_getfd needs Linux 5.6, \
             ptrace permission over the process and its PID namespace): keepalive shown \
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
        bpf_attachment,
    })
}

/// Whether a kernel-side attachment covers the process's cgroup; notes say
/// which, with the settings that apply (not the library's), or why it could
/// not be told (it needs root). A warning if the library is loaded into a
/// Go program, whose sockets only the kernel-side mode reaches.
fn kernel_side_attachment(
    pid: i32,
    library_loaded: bool,
    notes: &mut Vec<String>,
) -> Option<PathBuf> {
    if library_loaded {
        let go = std::fs::File::open(proc::path(pid, "exe"))
            .is_ok_and(|file| crate::elf::inspect(&file) == crate::elf::Kind::Go);
        if go {
            notes.push(
                "warning: the library is loaded but this is a Go program, which makes its \
                 own system calls: the library cannot reach its sockets; use the kernel-side \
                 mode (keepalive --bpf, or --attach on its cgroup)"
                    .to_string(),
            );
        }
    }
    let text = std::fs::read_to_string(proc::path(pid, "cgroup")).ok()?;
    let cgroup = crate::bpf::cgroup::own_path(&text)?;
    match crate::bpf::attachments_covering(&cgroup) {
        Ok(found) => {
            let first = found.first()?;
            notes.push(format!(
                "kernel-side mode: the attachment on {} decides this process's connections: \
                 {} (these apply, not the library's settings)",
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
            Some(first.directory.clone())
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
fn not_mapped_warning(pid: i32, entry: &Path, secure: Option<bool>) -> String {
    let mut warning = format!(
        "LD_PRELOAD names {} but it is not mapped: ld.so could not preload it \
         and the program runs without keepalive",
        entry.display()
    );
    let in_root = proc::path(pid, "root").join(entry.strip_prefix("/").unwrap_or(entry));
    let unit = systemd_unit(pid);
    let noexec = entry.is_absolute()
        && std::fs::read_to_string(proc::path(pid, "mountinfo"))
            .ok()
            .and_then(|info| proc::on_noexec_mount(&info, entry))
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

/// The systemd service the process runs in, from `/proc/PID/cgroup`.
fn systemd_unit(pid: i32) -> Option<String> {
    unit_in_cgroups(&std::fs::read_to_string(proc::path(pid, "cgroup")).ok()?)
}

/// The innermost `.service` in the paths of a `/proc/PID/cgroup` file
/// (`ID:CONTROLLERS:PATH` lines, v1 and v2).
fn unit_in_cgroups(text: &str) -> Option<String> {
    text.lines()
        .flat_map(|line| line.splitn(3, ':').nth(2).unwrap_or("").split('/'))
        .rfind(|part| part.ends_with(".service"))
        .map(str::to_string)
}

/// The processes a target names: a PID, a cgroup directory (every process
/// in it and below), or a systemd unit (its control group).
pub fn resolve(target: &OsStr) -> Result<Vec<i32>, String> {
    let text = target.to_string_lossy();
    if let Ok(pid) = text.parse::<i32>() {
        return if pid > 0 {
            Ok(vec![pid])
        } else {
            Err(format!("{text} is not a process id"))
        };
    }
    let directory = if text.contains('/') {
        PathBuf::from(target)
    } else {
        unit_cgroup(&text)?
    };
    let mut pids = Vec::new();
    collect_pids(&directory, &mut pids)
        .map_err(|error| format!("cannot read {}: {error}", directory.display()))?;
    pids.sort_unstable();
    pids.dedup();
    Ok(pids)
}

fn collect_pids(directory: &Path, pids: &mut Vec<i32>) -> std::io::Result<()> {
    let procs = std::fs::read_to_string(directory.join("cgroup.procs"))?;
    pids.extend(
        procs
            .lines()
            .filter_map(|line| line.trim().parse::<i32>().ok()),
    );
    for entry in std::fs::read_dir(directory)? {
        let entry = entry?;
        if entry.file_type()?.is_dir() {
            collect_pids(&entry.path(), pids)?;
        }
    }
    Ok(())
}

/// The cgroup directory of a systemd unit, as `systemctl` reports it.
fn unit_cgroup(unit: &str) -> Result<PathBuf, String> {
    let output = std::process::Command::new("systemctl")
        .args(["show", "--property=ControlGroup", "--value", "--", unit])
        .output()
        .map_err(|error| {
            format!("{unit}: not a PID or a cgroup directory, and systemctl: {error}")
        })?;
    let group = String::from_utf8_lossy(&output.stdout).trim().to_string();
    if !output.status.success() || group.is_empty() {
        return Err(format!("{unit}: no such running unit (and not a PID)"));
    }
    let relative = group.trim_start_matches('/');
    [
        "/sys/fs/cgroup",
        "/sys/fs/cgroup/unified",
        "/sys/fs/cgroup/systemd",
    ]
    .iter()
    .map(|root| Path::new(root).join(relative))
    .find(|directory| directory.join("cgroup.procs").exists())
    .ok_or_else(|| format!("{unit}: cgroup {group} not found under /sys/fs/cgroup"))
}

/// Runs `--status` for each target; prints to stdout. Exit status 0 when
/// every process could be read.
pub fn run(targets: &[std::ffi::OsString], json: bool) -> bool {
    let mut ok = true;
    for target in targets {
        let pids = match resolve(target) {
            Ok(pids) => pids,
            Err(message) => {
                eprintln!("keepalive: {message}");
                ok = false;
                continue;
            }
        };
        let single = target.to_string_lossy().parse::<i32>().is_ok();
        let mut statuses = Vec::new();
        for pid in pids {
            match read(pid) {
                Ok(status) => statuses.push(status),
                // A process of a group that exited meanwhile is just gone.
                Err(message) if !single && message == format!("no process {pid}") => {}
                Err(message) => {
                    eprintln!("keepalive: {message}");
                    ok = false;
                }
            }
        }
        if json {
            if single {
                if let Some(status) = statuses.first() {
                    println!("{}", crate::status_output::json(status));
                }
            } else {
                let list: Vec<String> = statuses.iter().map(crate::status_output::json).collect();
                println!(
                    "{{\"target\":{},\"processes\":[{}]}}",
                    crate::status_output::string(&target.to_string_lossy()),
                    list.join(",")
                );
            }
        } else {
            for status in &statuses {
                print!("{}", crate::status_output::human(status));
            }
        }
    }
    ok
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_unit_comes_from_the_cgroup_paths() {
        let hybrid = "12:pids:/system.slice/redis-server.service\n\
                      1:name=systemd:/system.slice/redis-server.service\n\
                      0::/system.slice/redis-server.service\n";
        assert_eq!(
            unit_in_cgroups(hybrid).as_deref(),
            Some("redis-server.service")
        );
        let nested = "0::/system.slice/postgresql@15-main.service/payload\n";
        assert_eq!(
            unit_in_cgroups(nested).as_deref(),
            Some("postgresql@15-main.service")
        );
        assert_eq!(unit_in_cgroups("0::/user.slice/session-3.scope\n"), None);
        assert_eq!(unit_in_cgroups("0::/\n"), None);
    }

    #[test]
    fn targets() {
        assert_eq!(resolve(OsStr::new("42")).unwrap(), [42]);
        assert!(resolve(OsStr::new("0")).is_err());
        assert!(resolve(OsStr::new("/nonexistent/cgroup")).is_err());
    }

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
        };
        assert_eq!(connection(row(2, "ESTABLISHED")).keepalive(), Some(true));
        assert_eq!(connection(row(0, "ESTABLISHED")).keepalive(), Some(false));
        assert_eq!(connection(row(1, "ESTABLISHED")).keepalive(), None);
        assert_eq!(connection(row(0, "LISTEN")).keepalive(), None);
    }
}
