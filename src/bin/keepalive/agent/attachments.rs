//! What the agent attached: the node default on CGROUP_DIR and one
//! attachment per workload cgroup, with the log line for each change.
//! Workloads with the same settings, and the node default, share one loaded
//! pair of programs (bpf::agent_api): the kernel's verifier runs once per
//! distinct setting, not once per container; a pair of the agent's already
//! on a cgroup (before a restart) is replaced, never stacked. A cgroup with
//! `keepalive --attach`'s pair is left alone, on start and on stop.

use super::exec_events::monotonic_ns;
use super::workload::{Variables, Workload};
use crate::bpf::agent_api::{self, Attached};
use crate::bpf::Programs;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};

/// A workload cgroup's attachment: the variables it was made from and who
/// asked for it, for the log.
struct Entry {
    variables: Variables,
    who: String,
    /// Found at start with no workload of ours running there (a previous
    /// run's, left by --persist): held, and released like the others.
    adopted: bool,
}

pub struct Attachments {
    node: PathBuf,
    quiet: bool,
    node_attached: bool,
    workloads: BTreeMap<PathBuf, Entry>,
    /// Workload cgroups with `--attach`'s pair, already logged.
    left_alone: BTreeSet<PathBuf>,
    /// One loaded pair per distinct settings value.
    loaded: HashMap<Vec<u8>, Programs>,
}

/// Distinct settings kept loaded; past this the cache starts afresh (the
/// pairs attached stay, held by their cgroups).
const LOADED_MAX: usize = 256;

/// Why a cgroup was not configured, or not detached: the user's own.
const LEFT_ALONE: &str = "left alone: keepalive --attach's attachment";

/// "nginx (pid 42, pod web-7d9)".
pub fn who(workload: &Workload) -> String {
    match &workload.pod {
        Some(pod) => format!("{} (pid {}, pod {pod})", workload.executable, workload.pid),
        None => format!("{} (pid {})", workload.executable, workload.pid),
    }
}

impl Attachments {
    pub fn new(node: &Path, quiet: bool) -> Attachments {
        Attachments {
            node: node.to_path_buf(),
            quiet,
            node_attached: false,
            workloads: BTreeMap::new(),
            left_alone: BTreeSet::new(),
            loaded: HashMap::new(),
        }
    }

    /// One line of the agent's log (off with --quiet).
    pub fn log(&self, line: &str) {
        if !self.quiet {
            super::log::line(line);
        }
    }

    /// How many attachments the agent holds, the node default included.
    pub fn count(&self) -> usize {
        self.workloads.len() + usize::from(self.node_attached)
    }

    /// The node default on CGROUP_DIR.
    pub fn node_default(&mut self, value: &[u8], settings: &str) -> Result<(), String> {
        let node = self.node.clone();
        let verb = match self.attach_shared(&node, value)? {
            Attached::New => "configured",
            Attached::Replaced => "configured (adopted)",
            Attached::LeftAlone => {
                self.log(&format!(
                    "not configured {}: node default: {LEFT_ALONE}",
                    node.display()
                ));
                return Ok(());
            }
        };
        self.node_attached = true;
        self.log(&format!(
            "{verb} {}: node default: {settings}",
            node.display()
        ));
        Ok(())
    }

    /// True if `directory` already has these variables: nothing to do.
    pub fn unchanged(&self, directory: &Path, variables: &Variables) -> bool {
        self.workloads
            .get(directory)
            .is_some_and(|entry| &entry.variables == variables)
    }

    /// A workload's own attachment on its cgroup `directory`; `settings`
    /// are the values applied, for the log.
    pub fn workload(
        &mut self,
        directory: &Path,
        workload: &Workload,
        settings: &str,
        value: &[u8],
        exec_ns: Option<u64>,
    ) {
        let done = match self.attach_shared(directory, value) {
            Ok(done) => done,
            Err(message) => {
                // The cgroup may be gone already (a short-lived container).
                if directory.exists() {
                    super::log::line(&format!(
                        "cannot configure {} for {}: {message}",
                        directory.display(),
                        who(workload)
                    ));
                }
                return;
            }
        };
        if done == Attached::LeftAlone {
            // Not the agent's to hold (`--attach` may have replaced its pair).
            self.workloads.remove(directory);
            if self.left_alone.insert(directory.to_path_buf()) {
                self.log(&format!(
                    "not configured {}: {}: {LEFT_ALONE}",
                    directory.display(),
                    who(workload)
                ));
            }
            return;
        }
        self.left_alone.remove(directory);
        let before = self.workloads.get(directory).map(|entry| entry.adopted);
        let verb = match (before, done) {
            (Some(true), _) => "configured (adopted)",
            (Some(false), _) => "changed",
            (None, Attached::Replaced) => "configured (adopted)",
            (None, _) => "configured",
        };
        // The window in which its sockets got the node default.
        let when = exec_ns
            .map(|at| {
                let window = monotonic_ns().saturating_sub(at);
                format!(" ({:.1} ms after its exec)", window as f64 / 1e6)
            })
            .unwrap_or_default();
        let entry = Entry {
            variables: workload.variables.clone(),
            who: who(workload),
            adopted: false,
        };
        self.log(&format!(
            "{verb} {}: {}: {settings}{when}",
            directory.display(),
            entry.who,
        ));
        self.workloads.insert(directory.to_path_buf(), entry);
    }

    /// Takes over the agent's pairs under CGROUP_DIR that no running
    /// workload claimed at start (a previous run's, left by --persist, whose
    /// workload is gone): they are released with the others on stop.
    pub fn adopt_leftovers(&mut self, cgroups: &[PathBuf]) {
        for directory in cgroups {
            if self.workloads.contains_key(directory) || !agent_api::has_agent_pair(directory) {
                continue;
            }
            let who = "no workload with our variables runs there".to_string();
            self.log(&format!("adopted {}: {who}", directory.display()));
            let entry = Entry {
                variables: Variables::new(),
                who,
                adopted: true,
            };
            self.workloads.insert(directory.clone(), entry);
        }
    }

    /// The pair for `value` (loaded on first use) attached to `directory`.
    fn attach_shared(&mut self, directory: &Path, value: &[u8]) -> Result<Attached, String> {
        if !self.loaded.contains_key(value) {
            if self.loaded.len() >= LOADED_MAX {
                self.loaded.clear();
            }
            let programs = agent_api::load_shared(value)?;
            self.loaded.insert(value.to_vec(), programs);
        }
        let programs = &self.loaded[value];
        agent_api::attach_shared(directory, programs)
    }

    /// Forgets the cgroups that are gone: the kernel removed their
    /// attachment with them. Returns how many.
    pub fn sweep(&mut self) -> usize {
        self.left_alone.retain(|directory| directory.exists());
        let gone: Vec<PathBuf> = self
            .workloads
            .keys()
            .filter(|directory| !directory.exists())
            .cloned()
            .collect();
        for directory in &gone {
            if let Some(entry) = self.workloads.remove(directory) {
                self.log(&format!(
                    "released {}: {}: the cgroup was removed",
                    directory.display(),
                    entry.who
                ));
            }
        }
        gone.len()
    }

    /// Detaches everything the agent attached (SIGTERM without --persist),
    /// never `keepalive --attach`'s pairs.
    pub fn detach_all(&mut self) {
        for (directory, entry) in std::mem::take(&mut self.workloads) {
            self.release(&directory, &entry.who);
        }
        if std::mem::take(&mut self.node_attached) {
            let node = self.node.clone();
            self.release(&node, "node default");
        }
    }

    /// The agent's pairs on `directory` detached, with the log line.
    fn release(&self, directory: &Path, who: &str) {
        let shown = directory.display();
        match agent_api::detach_agent(directory) {
            Ok((_, true)) => self.log(&format!("not detached {shown}: {who}: {LEFT_ALONE}")),
            Ok(_) => self.log(&format!("released {shown}: {who}: detached")),
            Err(_) if !directory.exists() => {}
            Err(message) => super::log::line(&message),
        }
    }
}
