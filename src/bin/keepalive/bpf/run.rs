//! `keepalive --bpf PROGRAM`: PROGRAM runs in a new child of our own cgroup
//! v2, with our programs attached to it; we wait for it, forward the signals
//! sent to us, remove the cgroup and exit with PROGRAM's status.

use super::cgroup::{self, Child};
use std::ffi::{OsStr, OsString};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::{Command, ExitCode};
use std::sync::atomic::{AtomicI32, Ordering};

/// PROGRAM's process id once started; a signal that came before is kept in
/// `PENDING` and sent as soon as it is.
static CHILD: AtomicI32 = AtomicI32::new(0);
static PENDING: AtomicI32 = AtomicI32::new(0);

/// Signals that would end us: passed on to PROGRAM instead, so that the
/// cgroup is removed after it ends.
const FORWARDED: [i32; 4] = [libc::SIGHUP, libc::SIGINT, libc::SIGQUIT, libc::SIGTERM];

extern "C" fn forward(signal: i32, info: *mut libc::siginfo_t, _: *mut libc::c_void) {
    // A terminal's ^C or ^\ (si_code SI_KERNEL) already reached PROGRAM,
    // which is in the same process group: sending it again would double it.
    // SAFETY: the kernel passes a valid siginfo to an SA_SIGINFO handler.
    if unsafe { (*info).si_code } > 0 {
        return;
    }
    match CHILD.load(Ordering::SeqCst) {
        0 => PENDING.store(signal, Ordering::SeqCst),
        // SAFETY: kill(2) is async-signal-safe.
        pid => unsafe {
            libc::kill(pid, signal);
        },
    }
}

fn install_forwarding() {
    for signal in FORWARDED {
        // SAFETY: a zeroed sigaction with a valid handler and SA_SIGINFO.
        unsafe {
            let mut action: libc::sigaction = std::mem::zeroed();
            action.sa_sigaction = forward as *const () as usize;
            action.sa_flags = libc::SA_SIGINFO | libc::SA_RESTART;
            libc::sigemptyset(&mut action.sa_mask);
            libc::sigaction(signal, &action, std::ptr::null_mut());
        }
    }
}

/// PROGRAM's end as our own: its exit code, or the same signal (raised on
/// ourselves once the cgroup is gone, so a parent shell sees it).
fn exit_like(status: std::process::ExitStatus) -> ExitCode {
    if let Some(code) = status.code() {
        return ExitCode::from(code as u8);
    }
    let signal = status.signal().unwrap_or(libc::SIGKILL);
    // SAFETY: default disposition, then raise: ends this process unless the
    // signal is one whose default is to be ignored.
    unsafe {
        libc::signal(signal, libc::SIG_DFL);
        libc::raise(signal);
    }
    ExitCode::from(128 + signal as u8)
}

/// Ends us by a signal that came before PROGRAM started (kept in
/// PENDING, never sent), now that nothing of ours is left; else `code`.
fn pending_or(code: ExitCode) -> ExitCode {
    match PENDING.swap(0, Ordering::SeqCst) {
        0 => code,
        signal => {
            // SAFETY: default disposition, then raise: ends this process.
            unsafe {
                libc::signal(signal, libc::SIG_DFL);
                libc::raise(signal);
            }
            ExitCode::from(128 + signal as u8)
        }
    }
}

/// Runs PROGRAM under the kernel-side mode with settings `value`. Errors
/// before PROGRAM starts exit 125, as keepalive's own failures do.
pub fn run(value: &[u8], program: &OsStr, args: &[OsString]) -> ExitCode {
    // First of all: from here on a signal that would end us is kept for
    // PROGRAM, so it cannot end us between making the cgroup and removing it.
    install_forwarding();
    let fail = |message: String| {
        eprintln!("keepalive: {message}");
        pending_or(ExitCode::from(crate::FAILED))
    };
    let parent = match cgroup::own_directory() {
        Ok(parent) => parent,
        Err(message) => return fail(message),
    };
    // Held until PROGRAM is in its cgroup: no other run's cleanup takes an
    // empty cgroup of ours for a stale one.
    let lock = match super::shared::lock() {
        Ok(lock) => lock,
        Err(message) => return fail(message),
    };
    cgroup::remove_stale(&parent);
    let programs = match super::load(value) {
        Ok(programs) => programs,
        Err(message) => return fail(message),
    };
    let child = match Child::create(&parent) {
        Ok(child) => child,
        Err(message) => return fail(message),
    };
    let opened = cgroup::open(&child.path).and_then(|directory| {
        super::attach_programs(&directory, &child.path, &programs)?;
        std::fs::OpenOptions::new()
            .write(true)
            .open(child.path.join("cgroup.procs"))
            .map_err(|e| format!("cannot open {}/cgroup.procs: {e}", child.path.display()))
    });
    let procs = match opened {
        Ok(procs) => procs,
        Err(message) => {
            drop(child);
            return fail(message);
        }
    };
    let mut command = Command::new(program);
    command.args(args);
    // SAFETY: join() makes one write(2) and allocates nothing, as required
    // between fork and exec. PROGRAM's sockets are all made in the cgroup.
    unsafe {
        command.pre_exec(move || cgroup::join(&procs));
    }
    let spawned = command.spawn();
    drop(lock);
    let mut started = match spawned {
        Ok(started) => started,
        Err(error) => {
            eprintln!(
                "keepalive: cannot run {}: {error}",
                program.to_string_lossy()
            );
            drop(child);
            return pending_or(ExitCode::from(
                if error.kind() == std::io::ErrorKind::NotFound {
                    crate::NOT_FOUND
                } else {
                    crate::CANNOT_EXECUTE
                },
            ));
        }
    };
    CHILD.store(started.id() as i32, Ordering::SeqCst);
    let early = PENDING.swap(0, Ordering::SeqCst);
    if early != 0 {
        // SAFETY: kill(2) on PROGRAM, which we have not reaped yet.
        unsafe { libc::kill(started.id() as i32, early) };
    }
    let status = started.wait();
    drop(child); // removes the cgroup, and with it the attachment
    match status {
        Ok(status) => exit_like(status),
        Err(error) => fail(format!(
            "cannot wait for {}: {error}",
            program.to_string_lossy()
        )),
    }
}
