//! The configuration of this process, read once. Loading happens in our
//! constructor, or in whichever hook runs first if another library's
//! constructor creates a socket before ours ran. After that, `active()` is a
//! single atomic load: no lock, no allocation.

use crate::diagnostics;
use crate::environment::OurVariables;
use keepalive_core::load;
use keepalive_core::plan::{KernelDefaults, Plan};
use keepalive_core::policy::Policy;
use keepalive_core::rules::Selection;
use keepalive_core::settings::Settings;
use once_cell::sync::OnceCell;
use std::ffi::CStr;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicI32, Ordering};

/// What the hooks need, fixed for the life of the process.
#[derive(Debug)]
pub struct Runtime {
    /// The options for each connection (`policy.global` without rules).
    pub policy: Policy,
    pub debug: bool,
    /// This network namespace's keepalive sysctls, read once at load when
    /// some plan sets a timer: undoing it (the program switched
    /// `SO_KEEPALIVE` off, or `listen()` failed) puts them back without
    /// opening a file, which a sandboxed (seccomp) or chrooted program
    /// may no longer do.
    pub kernel_defaults: KernelDefaults,
}

impl Runtime {
    /// The global options: every TCP socket's when no rule is set.
    pub fn plan(&self) -> &Plan {
        &self.policy.global
    }

    /// Writes a line if debugging is on. The closure builds it on the stack.
    pub fn debug(&self, build: impl FnOnce(&mut diagnostics::LineBuffer)) {
        if self.debug {
            let mut line = diagnostics::LineBuffer::new();
            let _ = line.write_str("libkeepalive: ");
            build(&mut line);
            diagnostics::write_line(line.as_bytes());
        }
    }
}

impl Runtime {
    /// The library doing nothing at all.
    fn switched_off() -> Runtime {
        let off = Settings {
            enabled: false,
            ..Settings::default()
        };
        Runtime {
            policy: Policy::new(&off, Selection::default(), || KernelDefaults::LINUX),
            debug: false,
            kernel_defaults: KernelDefaults::LINUX,
        }
    }
}

static RUNTIME: OnceCell<Runtime> = OnceCell::new();
/// The thread id of the thread loading the configuration (0: nobody yet).
static LOADER: AtomicI32 = AtomicI32::new(0);

/// The configuration if the library is active in this process; `None` when
/// it is switched off, in a secure-execution process, or while this very
/// thread is loading it (a signal handler interrupting the load).
pub fn active() -> Option<&'static Runtime> {
    let runtime = match RUNTIME.get() {
        Some(runtime) => runtime,
        None => load_once()?,
    };
    (!runtime.plan().options().is_empty()).then_some(runtime)
}

#[cold]
fn load_once() -> Option<&'static Runtime> {
    // SAFETY: gettid has no preconditions. The system call, not glibc's
    // gettid(), which is new in 2.30: above the shipped build's 2.17 floor.
    let me = unsafe { libc::syscall(libc::SYS_gettid) } as libc::pid_t;
    let mut expected = 0;
    loop {
        match LOADER.compare_exchange(expected, me, Ordering::AcqRel, Ordering::Acquire) {
            Ok(_) => {
                // A bug of ours while loading must not leave the other threads
                // waiting on every call: then the library is simply off.
                // Its few cancellation points (/proc reads, stderr lines)
                // are held off where they are made (see `cancel`), so the
                // common load pays nothing for it.
                let runtime =
                    std::panic::catch_unwind(load).unwrap_or_else(|_| Runtime::switched_off());
                let _ = RUNTIME.set(runtime);
                return RUNTIME.get();
            }
            Err(loader) if loader == me => return None,
            Err(loader) => match wait_for_loader(loader) {
                Waited::Loaded(runtime) => return Some(runtime),
                Waited::GaveUp => return None,
                // Try to take over from the vanished loader.
                Waited::LoaderGone => expected = loader,
            },
        }
    }
}

enum Waited {
    Loaded(&'static Runtime),
    LoaderGone,
    GaveUp,
}

/// Another thread is loading (it takes microseconds). Wait without a lock.
/// If that thread is not in this process (a child forked mid-load), say so
/// and the caller takes over; and never wait forever: a loader stuck for
/// long (say, on a full stderr pipe) leaves sockets alone, not the program.
fn wait_for_loader(loader: i32) -> Waited {
    for round in 0..100_000u32 {
        if let Some(runtime) = RUNTIME.get() {
            return Waited::Loaded(runtime);
        }
        if round % 256 == 255 && !thread_exists(loader) {
            return Waited::LoaderGone;
        }
        // SAFETY: sched_yield has no preconditions.
        unsafe { libc::sched_yield() };
    }
    Waited::GaveUp
}

/// Whether `tid` is a thread of this process (signal 0 only checks).
fn thread_exists(tid: i32) -> bool {
    let _errno = crate::sockopt::ErrnoGuard::save();
    // SAFETY: tgkill with signal 0 sends nothing.
    let rc = unsafe { libc::syscall(libc::SYS_tgkill, libc::getpid(), tid, 0) };
    rc == 0 || crate::sockopt::errno() != libc::ESRCH
}

fn load() -> Runtime {
    let _errno = crate::sockopt::ErrnoGuard::save();
    // SAFETY: getauxval has no preconditions.
    let secure = unsafe { libc::getauxval(libc::AT_SECURE) } != 0;
    if secure {
        // setuid/setgid/capabilities: an unprivileged user's environment must
        // not steer it, so the library does nothing at all.
        return Runtime::switched_off();
    }
    let variables = OurVariables::read();
    let lookup = |name: &str| variables.get(name);
    let loaded = load::load_values(variables.values());
    // A process KEEPALIVE_PROGRAMS does not list is left alone entirely and
    // silently: decided here, once, so its sockets cost one atomic load.
    if let Some(programs) = &loaded.programs {
        if !crate::scope::this_process_is_listed(programs) {
            return Runtime::switched_off();
        }
    }
    let debug = loaded.settings.debug;
    // One line per process tree: not again in a child whose parent already
    // wrote it where ours would go. With KEEPALIVE_PROGRAMS the parent may
    // have been silent.
    // Names almost ours are reported with the diagnostics, and a parent
    // must have had the same ones.
    let near_misses: Vec<_> = variables.near_misses().collect();
    let lines: Vec<String> = (loaded.diagnostics.iter().map(ToString::to_string))
        .chain(near_misses.iter().map(|(miss, _)| miss.to_string()))
        .collect();
    let reported_by_parent = if lines.is_empty() || loaded.programs.is_some() {
        None
    } else {
        let names: Vec<&[u8]> = (keepalive_core::variables::NAMES
            .iter()
            .map(|n| n.as_bytes()))
        .chain(near_misses.iter().map(|(miss, _)| miss.name))
        .collect();
        let value = |name: &[u8]| {
            let ours = std::str::from_utf8(name).ok().and_then(lookup);
            ours.or_else(|| {
                near_misses
                    .iter()
                    .find(|(miss, _)| miss.name == name)
                    .map(|&(_, value)| value)
            })
        };
        crate::cancel::held_off(|| crate::lineage::parent_reported(&names, value))
    };
    let report = !lines.is_empty() && reported_by_parent.is_none();
    // Debug lines need a duplicate of stderr kept for the process's life:
    // not under a tiny descriptor limit, where it would take a number the
    // program needs.
    let keep_for_debug = debug && diagnostics::room_to_keep_private();
    if keep_for_debug || report {
        diagnostics::open_private();
    }
    if report {
        for line in &lines {
            diagnostics::write_line(line.as_bytes());
        }
    }
    if !lines.is_empty() {
        // For our children: where these lines went (nowhere if we could not
        // write them), or where our parent's went.
        let written_to = if report {
            diagnostics::has_private()
                .then(crate::lineage::stderr_id)
                .flatten()
        } else {
            reported_by_parent
        };
        crate::lineage::record(written_to);
    }
    if !keep_for_debug {
        diagnostics::close_private();
    }
    // The sysctls are read at most once, for `auto` and for undoing.
    let kernel = std::cell::OnceCell::new();
    let kernel_defaults = || *kernel.get_or_init(read_kernel_defaults);
    let policy = Policy::new(&loaded.settings, loaded.selection, kernel_defaults);
    let runtime = Runtime {
        kernel_defaults: if policy.sets_a_timer() {
            kernel_defaults()
        } else {
            KernelDefaults::LINUX // never used
        },
        policy,
        debug,
    };
    runtime.debug(|line| {
        // SAFETY: getpid has no preconditions.
        let _ = write!(line, "pid {}: ", unsafe { libc::getpid() });
        if runtime.plan().options().is_empty() {
            let _ = write!(line, "switched off, no socket will be touched");
        } else {
            let _ = write!(line, "TCP sockets get");
            for option in runtime.plan().options() {
                let _ = write!(line, " {}={}", option.label(), option.value);
            }
        }
    });
    if runtime.debug && !runtime.policy.eager && !runtime.plan().options().is_empty() {
        let selection = &runtime.policy.selection;
        runtime.debug(|line| {
            let _ = write!(
                line,
                "direction {}; decided at connect/listen/accept by {} rule(s)",
                selection.directions.name(),
                selection.rules.len()
            );
        });
        for rule in &selection.rules {
            runtime.debug(|line| {
                let _ = write!(line, "rule {}: {rule}", rule.number);
            });
        }
    }
    runtime
}

/// This network namespace's defaults, for `auto` user timeouts and for
/// undoing our timers. Read at load only: never from a hook, where the
/// program may be sandboxed or chrooted by then.
/// open/read/close are cancellation points: held off (see `cancel`).
fn read_kernel_defaults() -> KernelDefaults {
    crate::cancel::held_off(read_kernel_defaults_now)
}

fn read_kernel_defaults_now() -> KernelDefaults {
    let linux = KernelDefaults::LINUX;
    KernelDefaults {
        idle_secs: read_sysctl(c"/proc/sys/net/ipv4/tcp_keepalive_time").unwrap_or(linux.idle_secs),
        interval_secs: read_sysctl(c"/proc/sys/net/ipv4/tcp_keepalive_intvl")
            .unwrap_or(linux.interval_secs),
        count: read_sysctl(c"/proc/sys/net/ipv4/tcp_keepalive_probes").unwrap_or(linux.count),
    }
}

/// A number in a /proc/sys file (text, surrounded by white space), read with
/// plain system calls rather than std::fs, which would only add size here.
/// `None` if it cannot be read, is not UTF-8 or not a number, or is longer
/// than any sysctl number.
fn read_sysctl(path: &CStr) -> Option<u32> {
    // SAFETY: path is NUL-terminated.
    let fd = unsafe { libc::open(path.as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC) };
    if fd < 0 {
        return None;
    }
    let mut buffer = [0u8; 64];
    let mut len = 0;
    let complete = loop {
        let room = &mut buffer[len..];
        if room.is_empty() {
            break false;
        }
        // SAFETY: room is a valid, writable slice.
        let read = unsafe { libc::read(fd, room.as_mut_ptr().cast(), room.len()) };
        match read {
            0 => break true,
            1.. => len += read as usize,
            _ if crate::sockopt::errno() == libc::EINTR => {}
            _ => break false,
        }
    };
    // SAFETY: fd is ours and open.
    unsafe { libc::close(fd) };
    let text = std::str::from_utf8(&buffer[..len]).ok()?;
    complete.then(|| text.trim().parse().ok())?
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::CString;

    #[test]
    fn sysctls_read_as_std_fs_reads_them() {
        for name in [
            "tcp_keepalive_time",
            "tcp_keepalive_intvl",
            "tcp_keepalive_probes",
            "tcp_syn_retries",
            "ip_forward",
            "no_such_sysctl",
            "ip_local_port_range",
            "tcp_rmem",
        ] {
            let path = format!("/proc/sys/net/ipv4/{name}");
            let expected = std::fs::read_to_string(&path)
                .ok()
                .and_then(|text| text.trim().parse::<u32>().ok());
            let c_path = CString::new(path.clone()).unwrap();
            assert_eq!(read_sysctl(&c_path), expected, "{path}");
        }
        // Files of our own: spaces around the number, no number, not UTF-8.
        let directory = std::env::temp_dir().join(format!("sysctl-{}", std::process::id()));
        std::fs::create_dir_all(&directory).unwrap();
        let contents: [&[u8]; 9] = [
            b"7200\n",
            b"  42 \t\n",
            b"+5\n",
            b"-5\n",
            b"",
            b"4294967296\n",
            b"12 34\n",
            b"\xff1\n",
            &[b' '; 100],
        ];
        for (i, bytes) in contents.iter().enumerate() {
            let path = directory.join(i.to_string());
            std::fs::write(&path, bytes).unwrap();
            let expected = std::fs::read_to_string(&path)
                .ok()
                .and_then(|text| text.trim().parse::<u32>().ok());
            let c_path = CString::new(path.to_str().unwrap()).unwrap();
            assert_eq!(read_sysctl(&c_path), expected, "{bytes:?}");
        }
        std::fs::remove_dir_all(&directory).unwrap();
    }
}
