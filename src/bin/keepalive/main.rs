//! `keepalive [OPTIONS] [--] PROGRAM [ARGS...]`: runs PROGRAM with
//! libkeepalive.so preloaded and the settings given as options, like
//! eatmydata or torsocks. See man/keepalive.1.
//!
//! The settings, rules and messages come from the pure core
//! (`keepalive_core`), the same as the library's.

mod agent;
mod args;
mod bpf;
mod check;
mod elf;
mod environment;
mod ld_search;
mod loadable;
mod locate;
mod mode;
mod net_cgroups;
mod output;
mod pinned;
mod proc;
mod reach;
mod sock_diag;
mod sockets;
mod status;
mod status_all;
mod status_all_set_by;
mod status_command;
mod status_output;
mod status_set_by;
mod status_target;
mod unit;

use args::{Action, Invocation};
use environment::Overrides;
use keepalive_core::diagnostic::Diagnostic;
use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, ExitCode};

/// env(1)'s conventions: 125 when keepalive itself fails, 126 when PROGRAM
/// cannot be executed, 127 when it cannot be found.
const FAILED: u8 = 125;
const CANNOT_EXECUTE: u8 = 126;
const NOT_FOUND: u8 = 127;

const USAGE: &str = "\
Usage: keepalive [OPTIONS] [--] PROGRAM [ARGS...]
       keepalive [OPTIONS] --check [PROGRAM]
       keepalive --bpf [OPTIONS] [--] PROGRAM [ARGS...]
       keepalive --attach CGROUP_DIR|UNIT [OPTIONS]
       keepalive --detach CGROUP_DIR|UNIT
       keepalive --status PID|CGROUP-DIR|UNIT [--json]
       keepalive --status --all [--path NAME] [--json]
       keepalive --agent [OPTIONS] [--quiet] [--persist] [--ready FILE] [CGROUP_DIR]

Runs PROGRAM with libkeepalive.so preloaded, so that its TCP sockets use
keepalive. Options override the environment variables of the same setting.

Options:
  --idle SECS          idle time before the first probe (KEEPIDLE), 1..32767
  --interval SECS      time between probes (KEEPINTVL), 1..32767
  --count N            unanswered probes before the connection is dropped
                       (KEEPCNT), 1..127
  --user-timeout MS|auto
                       TCP_USER_TIMEOUT in milliseconds (KEEPALIVE_USER_TIMEOUT),
                       0..2147483647, or auto = idle + interval x count
  --direction out|in|both
                       only connections the program makes (out), only those it
                       accepts (in), or both (KEEPALIVE_DIRECTION, default both)
  --rule RULE          which connections get keepalive and with which timers
                       (KEEPALIVE_RULES); repeatable, first match wins:
                       MATCH:ACTION, MATCH = * or dir=in|out,net=CIDR,port=N[-M]
                       ACTION = off, on, or idle=S,intvl=S,cnt=N,user_timeout=MS
                       (on or timers may add override=on|off)
                       e.g. --rule 'net=10.0.0.0/8,port=5432:idle=60' --rule '*:off'
  --path NAME          timers chosen for a middlebox's idle timeout (KEEPALIVE_PATH):
                       aws-nlb, aws-natgw, aws-nitro (350 s), azure-lb (4 min),
                       gcp (10 min), ipvs (900 s); --idle, --interval, --count override its timers
  --program NAME       only processes whose executable (or the path they were
                       started by) has this base name get keepalive; others are
                       left alone silently (KEEPALIVE_PROGRAMS); repeatable
  --debug              the library reports each socket on stderr (KEEPALIVE_DEBUG=1)
  --off                preload the library but touch no socket (KEEPALIVE=off)
  --override           our values replace the program's own for the options we
                       set, even those it sets itself (KEEPALIVE_OVERRIDE=on);
                       by default the program's own choices win
  --check              print the settings PROGRAM would get and where each comes
                       from; exit 1 if any is bad. PROGRAM is only inspected.
  --bpf                kernel-side mode (root): run PROGRAM in a new child
                       cgroup v2 with an eBPF program that sets the options on
                       every TCP connection, whatever PROGRAM is built with
                       (static, Go, io_uring); the cgroup is removed afterwards
  --attach CGROUP_DIR|UNIT
                       kernel-side mode for an existing cgroup v2 (a service's,
                       a container's; or a running systemd unit's), kept after
                       keepalive exits; again on the same cgroup: update its
                       settings
  --detach CGROUP_DIR|UNIT
                       remove it
  --status TARGET      what the library does in a running process: whether it is
                       loaded (and a warning if LD_PRELOAD names it but ld.so
                       failed), the settings it started with, and every TCP
                       socket's effective keepalive options. TARGET is a PID, a
                       cgroup directory or a systemd unit; repeatable
  --status --all       every established TCP connection of the host (read from the
                       kernel's socket tables), its process, cgroup, keepalive
                       timers and who set them; with --path NAME, exit 1 if a
                       connection would be dropped by that path's idle timeout
  --agent [CGROUP_DIR] node agent (root, foreground): the options and variables
                       as the default for every process under CGROUP_DIR (the
                       whole cgroup v2 hierarchy if none), and a workload's own
                       variables (KEEPIDLE=60, KEEPALIVE=off...) for its cgroup;
                       SIGTERM/SIGINT detach everything and exit 0
  --quiet              --agent: no line per cgroup configured/changed/released
  --persist            --agent: leave the attachments in place on exit
  --ready FILE         --agent: write 'attachments N' there once ready
  --json               --status as JSON, one object per PID target
  -h, --help           print this help
  -V, --version        print the version

Times take a suffix: ms, s, m or h (--idle 5m). The library is KEEPALIVE_LIB if
set, else PREFIX/lib/libkeepalive.so beside PREFIX/bin/keepalive, else the
command's own directory.

Exit status: PROGRAM's; 125 if keepalive fails (bad option or value, library
not found, or a library that would stop PROGRAM: too new a glibc, a musl
PROGRAM), 126 if PROGRAM cannot be executed, 127 if it is not found.
--status: 0 if every process could be read, 1 otherwise.
See keepalive(1) and libkeepalive(8).
";

fn main() -> ExitCode {
    let invocation = match args::parse(std::env::args_os().skip(1)) {
        Ok(invocation) => invocation,
        Err(message) => {
            output::warn(&format!("keepalive: {message}; see keepalive --help"));
            return ExitCode::from(FAILED);
        }
    };
    let Invocation { options, action } = invocation;
    let overrides = Overrides::from_options(&options);
    match action {
        Action::Help => output::print(USAGE).map_or_else(|status| status, |()| ExitCode::SUCCESS),
        Action::Version => output::print(&format!("keepalive {}\n", env!("CARGO_PKG_VERSION")))
            .map_or_else(|status| status, |()| ExitCode::SUCCESS),
        Action::Check { program } => run_check(&overrides, program.as_deref()),
        Action::Run { program, args } => run_program(&overrides, &program, &args),
        Action::Bpf { program, args } => match bpf_settings(&overrides) {
            Ok(value) => bpf::run(&value, &program, &args),
            Err(code) => code,
        },
        Action::Attach { cgroup } => match unit::attach_target(&cgroup) {
            Ok(directory) => attach_cgroup(&overrides, &directory),
            Err(message) => {
                output::warn(&format!("keepalive: {message}"));
                ExitCode::from(FAILED)
            }
        },
        Action::Detach { cgroup } => match unit::attach_target(&cgroup) {
            Ok(directory) => detach_cgroup(&directory),
            Err(message) => {
                output::warn(&format!("keepalive: {message}"));
                ExitCode::from(FAILED)
            }
        },
        Action::Agent {
            cgroup,
            quiet,
            persist,
            ready,
        } => match bpf_settings(&overrides) {
            Ok(value) => {
                let node =
                    agent::node_variables(|name| overrides.lookup(name, environment::inherited));
                let options = agent::Options {
                    cgroup: cgroup.map(Into::into),
                    quiet,
                    persist,
                    ready: ready.map(Into::into),
                };
                agent::run(&value, node, options)
            }
            Err(code) => code,
        },
        Action::StatusAll { json } => status_all::run(&overrides, json),
        Action::Status { targets, json } => {
            if status_command::run(&targets, json) {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
    }
}

/// The kernel-side mode's settings, validated exactly as the library's:
/// a bad value exits 125 with the library's own line.
fn bpf_settings(overrides: &Overrides) -> Result<Vec<u8>, ExitCode> {
    let loaded = environment::load(overrides, environment::inherited);
    if !report_diagnostics(&loaded.diagnostics, overrides) {
        eprintln!("keepalive: fix the setting above");
        return Err(ExitCode::from(FAILED));
    }
    if loaded.settings.debug {
        eprintln!(
            "keepalive: note: debug lines come from the library; the kernel-side mode prints none"
        );
    }
    let programs_option = overrides.option_for("KEEPALIVE_PROGRAMS");
    bpf::config_value(&loaded, programs_option).map_err(|message| {
        eprintln!("keepalive: {message}");
        ExitCode::from(FAILED)
    })
}

fn attach_cgroup(overrides: &Overrides, cgroup: &Path) -> ExitCode {
    let value = match bpf_settings(overrides) {
        Ok(value) => value,
        Err(code) => return code,
    };
    match bpf::attach(cgroup, &value) {
        Ok(done) => {
            eprintln!("keepalive: {done} on {}", cgroup.display());
            ExitCode::SUCCESS
        }
        Err(message) => {
            eprintln!("keepalive: {message}");
            ExitCode::from(FAILED)
        }
    }
}

fn detach_cgroup(cgroup: &Path) -> ExitCode {
    match bpf::detach(cgroup) {
        Ok(true) => {
            eprintln!("keepalive: detached from {}", cgroup.display());
            ExitCode::SUCCESS
        }
        Ok(false) => {
            eprintln!(
                "keepalive: nothing of ours attached to {}",
                cgroup.display()
            );
            ExitCode::SUCCESS
        }
        Err(message) => {
            eprintln!("keepalive: {message}");
            ExitCode::from(FAILED)
        }
    }
}

/// Prints the library's own diagnostic lines, and which option set the
/// variable a line names. Returns true if there were none.
fn report_diagnostics(diagnostics: &[Diagnostic], overrides: &Overrides) -> bool {
    for diagnostic in diagnostics {
        output::warn(&diagnostic.to_string());
    }
    for (variable, _, option) in &overrides.set {
        if diagnostics
            .iter()
            .any(|diagnostic| diagnostic.variables().contains(variable))
        {
            output::warn(&format!("keepalive: {variable} is the value of {option}"));
        }
    }
    diagnostics.is_empty()
}

/// PROGRAM's executable, searched in PATH as exec will.
fn executable(program: &OsStr) -> Option<std::path::PathBuf> {
    let path = std::env::var_os("PATH");
    locate::executable(program, path.as_deref())
}

/// Warns (one line) if PROGRAM is out of the library's reach.
fn warn_if_unreachable(program: &OsStr) {
    let path = std::env::var_os("PATH");
    if let Some(warning) =
        locate::executable(program, path.as_deref()).and_then(|e| reach::warning(&e))
    {
        output::warn(&warning);
    }
}

fn run_check(overrides: &Overrides, program: Option<&OsStr>) -> ExitCode {
    let loaded = environment::load(overrides, environment::inherited);
    let library = locate::find_library();
    let mut report = match &library {
        Ok(path) => format!("{:<13} {}\n", "library", path.display()),
        Err(reason) => format!("{:<13} not found: {reason}\n", "library"),
    };
    for line in check::report(
        &loaded,
        overrides,
        &environment::inherited,
        &check::read_sysctl,
    ) {
        report.push_str(&line);
        report.push('\n');
    }
    if let Ok(path) = &library {
        // Hardened units (NoExecPaths=/, e.g. Debian's redis-server) make
        // ld.so refuse the preload with only a line in the journal.
        report.push_str(&format!(
            "{:<13} a unit with NoExecPaths= also needs ExecPaths={}\n",
            "systemd",
            path.display()
        ));
    }
    let loads = library
        .as_ref()
        .ok()
        .map(|path| loadable::check(path, program.and_then(executable).as_deref()));
    match &loads {
        Some(Ok(summary)) => report.push_str(&format!("{:<13} yes: {summary}\n", "loads")),
        Some(Err(why)) => report.push_str(&format!("{:<13} no: {why}\n", "loads")),
        None => {}
    }
    if let Some(line) = program.and_then(mode::for_program) {
        report.push_str(&format!("{:<13} {line}\n", "mode"));
    }
    if let Err(status) = output::print(&report) {
        return status;
    }
    let valid = report_diagnostics(&loaded.diagnostics, overrides);
    let names: Vec<OsString> = std::env::vars_os().map(|(name, _)| name).collect();
    let near_misses = check::near_misses(names.iter().map(|name| name.as_bytes()));
    for line in &near_misses {
        output::warn(line);
    }
    if let Some(program) = program {
        warn_if_unreachable(program);
    }
    if let Some(Err(why)) = &loads {
        output::warn(&format!("keepalive: {why}"));
    }
    if valid && near_misses.is_empty() && matches!(loads, Some(Ok(_))) {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

fn run_program(overrides: &Overrides, program: &OsStr, args: &[OsString]) -> ExitCode {
    let loaded = environment::load(overrides, environment::inherited);
    if !report_diagnostics(&loaded.diagnostics, overrides) {
        output::warn(&format!(
            "keepalive: not starting {}: fix the setting above",
            program.to_string_lossy()
        ));
        return ExitCode::from(FAILED);
    }
    let library = match locate::find_library() {
        Ok(library) => library,
        Err(reason) => {
            output::warn(&format!("keepalive: {reason}"));
            return ExitCode::from(FAILED);
        }
    };
    // Where ld.so would refuse the library, it would stop PROGRAM too.
    if let Err(why) = loadable::check(&library, executable(program).as_deref()) {
        output::warn(&format!(
            "keepalive: not starting {}: {why}",
            program.to_string_lossy()
        ));
        return ExitCode::from(FAILED);
    }
    warn_if_unreachable(program);
    let mut command = Command::new(program);
    command.args(args);
    for variable in &overrides.removed {
        command.env_remove(variable);
    }
    for (variable, value, _) in &overrides.set {
        command.env(variable, OsStr::from_bytes(value));
    }
    let preload = std::env::var_os("LD_PRELOAD");
    command.env(
        "LD_PRELOAD",
        environment::preload_with(preload.as_deref(), &library),
    );
    // exec only returns on failure; on success PROGRAM has our process id,
    // and its signals and exit status are its own.
    let error = command.exec();
    output::warn(&format!(
        "keepalive: cannot run {}: {error}",
        program.to_string_lossy()
    ));
    ExitCode::from(if error.kind() == std::io::ErrorKind::NotFound {
        NOT_FOUND
    } else {
        CANNOT_EXECUTE
    })
}
