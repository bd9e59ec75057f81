//! `keepalive --agent [OPTIONS] [CGROUP_DIR]`: the node agent. It attaches
//! the kernel-side mode with the node default (the usual options and
//! variables) to CGROUP_DIR, and gives each workload under it that has our
//! variables in its own environment an attachment of its own on its cgroup,
//! which wins there (the innermost attachment decides; `KEEPALIVE=off` is
//! the opt-out). A workload's variables layer over the node default, setting
//! by setting (layering.rs). It runs in the foreground until SIGTERM,
//! SIGINT, SIGHUP or SIGQUIT (stop_signals.rs).
//!
//!   exec_events  every exec on the host (proc connector)
//!   workload     a process's cgroup, executable, pod and our variables
//!   layering     a workload's variables over the node default's
//!   tree         the cgroups present at start
//!   attachments  what the agent attached, and the log line for each change
//!   hierarchy    the cgroup2 mount (a private one on cgroup v1-only hosts)
//!   log          one line on stderr, a failed write dropped (never a panic)
//!   stop_signals SIGTERM, SIGINT, SIGHUP and SIGQUIT as a descriptor

mod attachments;
mod exec_events;
mod hierarchy;
mod layering;
mod log;
mod stop_signals;
mod tree;
mod workload;

use attachments::{who, Attachments};
use exec_events::{Batch, ExecEvents};
use keepalive_core::diagnostic::Diagnostic;
use keepalive_core::load;
use std::collections::BTreeSet;
use std::os::fd::{AsFd, AsRawFd};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use stop_signals::StopSignals;

/// What the command line asked of the agent.
pub struct Options {
    /// Absolute, or relative to the cgroup2 mount.
    pub cgroup: Option<PathBuf>,
    pub quiet: bool,
    pub persist: bool,
    /// `--ready FILE`: written once the agent covers the tree, and again
    /// with each change: `attachments N` (a readiness probe reads it).
    pub ready: Option<PathBuf>,
}

/// How often cgroups that went away are looked for (their attachment went
/// with them; this only updates the log and the count).
const SWEEP: Duration = Duration::from_secs(1);

/// The agent's state while it runs.
struct Agent {
    mount: PathBuf,
    node: PathBuf,
    attachments: Attachments,
    /// The node default's variables, under every workload's own.
    node_variables: workload::Variables,
    /// Cgroups already told that they cannot have settings of their own.
    told: BTreeSet<PathBuf>,
    ready: Option<PathBuf>,
    written: Option<usize>,
}

fn fail(message: &str) -> ExitCode {
    log::line(message);
    ExitCode::from(crate::FAILED)
}

/// Runs the agent with the node default `value`, made from `node_variables`.
pub fn run(value: &[u8], node_variables: workload::Variables, options: Options) -> ExitCode {
    let wanted = options.cgroup.as_deref().filter(|c| c.is_absolute());
    let (mount, note) = match hierarchy::mount(wanted) {
        Ok(found) => found,
        Err(message) => return fail(&message),
    };
    // A relative CGROUP_DIR (system.slice) is in the hierarchy, wherever it
    // is mounted (/sys/fs/cgroup, or /sys/fs/cgroup/unified on hybrid hosts).
    let node = match &options.cgroup {
        Some(cgroup) => mount.join(cgroup),
        None => mount.clone(),
    };
    let node = node.canonicalize().unwrap_or(node);
    if !node.starts_with(&mount) {
        return fail(&format!(
            "{} is not in the cgroup v2 hierarchy (mounted at {})",
            node.display(),
            mount.display()
        ));
    }
    // Listening first: an exec while the tree is walked is not missed.
    let events = match ExecEvents::open() {
        Ok(events) => events,
        Err(message) => return fail(&message),
    };
    let stop = match StopSignals::open() {
        Ok(stop) => stop,
        Err(error) => return fail(&format!("cannot watch the stop signals: {error}")),
    };
    let mut agent = Agent {
        attachments: Attachments::new(&node, options.quiet),
        node_variables,
        mount,
        node,
        told: BTreeSet::new(),
        ready: options.ready,
        written: None,
    };
    if let Some(note) = note {
        agent.attachments.log(&note);
    }
    let settings = workload::describe(&agent.node_variables);
    if let Err(message) = agent.attachments.node_default(value, &settings) {
        return fail(&message);
    }
    agent.walk();
    agent.attachments.adopt_leftovers(&tree::below(&agent.node));
    agent.attachments.log(&format!(
        "ready: {} attachments under {}",
        agent.attachments.count(),
        agent.node.display()
    ));
    agent.write_ready();
    let mut last_sweep = Instant::now();
    // Ok on a stop signal; Err if the process events failed (then it
    // cleans up as on SIGTERM, and exits 125).
    let ended: Result<(), String> = loop {
        let mut fds = [
            libc::pollfd {
                fd: events.as_fd().as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            },
            libc::pollfd {
                fd: stop.as_fd().as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            },
        ];
        // SAFETY: poll(2) on two live descriptors.
        unsafe { libc::poll(fds.as_mut_ptr(), 2, SWEEP.as_millis() as i32) };
        if fds[1].revents != 0 {
            break Ok(());
        }
        if fds[0].revents != 0 {
            match events.read() {
                Ok(Batch::Execs(execs)) => {
                    for exec in execs {
                        agent.consider(exec.pid, Some(exec.at_ns));
                    }
                }
                Ok(Batch::Lost) => {
                    agent
                        .attachments
                        .log("process events were lost (a burst of execs): walking the tree again");
                    agent.walk();
                }
                Err(error) => break Err(format!("reading process events: {error}")),
            }
        }
        if last_sweep.elapsed() >= SWEEP {
            agent.attachments.sweep();
            last_sweep = Instant::now();
        }
        agent.write_ready();
    };
    if options.persist {
        agent.attachments.log(&format!(
            "stopping: {} attachments left in place (--persist)",
            agent.attachments.count()
        ));
    } else {
        agent.attachments.detach_all();
        agent.attachments.log("stopping: everything detached");
    }
    if let Some(ready) = &agent.ready {
        let _ = std::fs::remove_file(ready);
    }
    match ended {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => fail(&message),
    }
}

impl Agent {
    /// Every process already under CGROUP_DIR, cgroup by cgroup.
    fn walk(&mut self) {
        for cgroup in tree::below(&self.node) {
            for pid in tree::processes(&cgroup) {
                if self.consider(pid, None) {
                    break; // one process decides for its cgroup
                }
            }
        }
    }

    /// A process that exec'd at `exec_ns` (CLOCK_MONOTONIC), or was found
    /// by the walk: if it has our variables, its cgroup gets them. True if
    /// it had any.
    fn consider(&mut self, pid: i32, exec_ns: Option<u64>) -> bool {
        let mount = &self.mount;
        let node = &self.node;
        let under_node = |path: &str| mount.join(path.trim_start_matches('/')).starts_with(node);
        let Some(workload) = workload::read(pid, under_node) else {
            return false;
        };
        if !workload::has_settings(&workload.variables) {
            return false;
        }
        let directory = self.mount.join(workload.cgroup.trim_start_matches('/'));
        if self.attachments.unchanged(&directory, &workload.variables) {
            return true;
        }
        if directory == self.node {
            if self.told.insert(directory.clone()) {
                self.attachments.log(&format!(
                    "not configured {}: {}: its variables ({}) are ignored, it runs in \
                     CGROUP_DIR itself, whose attachment is the node default",
                    directory.display(),
                    who(&workload),
                    workload::describe(&workload.variables)
                ));
            }
            return true;
        }
        let environment = layering::layered(&self.node_variables, &workload.variables);
        let loaded = load::load(|name| {
            environment
                .iter()
                .find(|(n, _)| *n == name)
                .map(|(_, v)| v.clone())
        });
        for diagnostic in &loaded.diagnostics {
            // Always printed, --quiet or not: the workload's owner must see it.
            log::line(&format!(
                "{}: {}: {diagnostic}",
                directory.display(),
                who(&workload)
            ));
        }
        // The log lists what was applied: a bad value had its own line.
        let applied = applied(&workload.variables, &loaded.diagnostics);
        let settings = if applied.is_empty() {
            "none of its values is valid".to_string()
        } else {
            workload::describe(&applied)
        };
        match crate::bpf::config_value(&loaded, None) {
            Ok(value) => self
                .attachments
                .workload(&directory, &workload, &settings, &value, exec_ns),
            Err(message) => log::line(&format!(
                "{}: {}: {message}",
                directory.display(),
                who(&workload)
            )),
        }
        true
    }

    /// The readiness file, when the count changed.
    fn write_ready(&mut self) {
        let count = self.attachments.count();
        let Some(ready) = &self.ready else { return };
        if self.written == Some(count) {
            return;
        }
        let temporary = ready.with_extension("tmp");
        let written = std::fs::write(&temporary, format!("attachments {count}\n"))
            .and_then(|()| std::fs::rename(&temporary, ready));
        match written {
            Ok(()) => self.written = Some(count),
            Err(error) => log::line(&format!("cannot write {}: {error}", ready.display())),
        }
    }
}

/// The workload's variables that were applied: those no diagnostic
/// dropped whole (a bad rule drops that rule only; the others apply).
fn applied(variables: &workload::Variables, diagnostics: &[Diagnostic]) -> workload::Variables {
    variables
        .iter()
        .filter(|(name, _)| {
            !diagnostics
                .iter()
                .any(|d| !d.is_about_rules() && d.variables().contains(name))
        })
        .cloned()
        .collect()
}

/// The node default's variables: those the options set, and those the
/// agent inherited.
pub fn node_variables(lookup: impl Fn(&str) -> Option<Vec<u8>>) -> workload::Variables {
    keepalive_core::variables::NAMES
        .iter()
        .filter_map(|name| Some((*name, lookup(name)?)))
        .collect()
}
