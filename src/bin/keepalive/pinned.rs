//! One process, start to finish, for `--status`. The process is pinned
//! with a pidfd before anything is read; its `/proc/PID` directory is then
//! opened once, and checked to belong to the pinned process; every file is
//! read through that directory, which never shows another process that
//! later gets the same PID; and at the end its start time is read again.
//! A process that is gone, or exited meanwhile, is "no process", never a
//! permission problem.

use std::ffi::OsStr;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::FileExt;
use std::path::PathBuf;

/// Why a process could not be read.
#[derive(Debug, PartialEq, Eq)]
pub enum Failure {
    /// No such process, or it exited while being read.
    Gone,
    /// One line saying what was refused and why.
    Refused(String),
}

impl Failure {
    pub fn message(&self, pid: i32) -> String {
        match self {
            Failure::Gone => format!("no process {pid}"),
            Failure::Refused(message) => message.clone(),
        }
    }
}

/// A process being read.
pub struct Pinned {
    pub pid: i32,
    /// `None` when the process is not in our PID namespace (its /proc may
    /// still be ours): then only the start time pins it.
    pidfd: Result<OwnedFd, io::Error>,
    /// `/proc/PID`, opened once.
    directory: OwnedFd,
    start_time: u64,
}

fn errno_of(error: &io::Error) -> i32 {
    error.raw_os_error().unwrap_or(0)
}

impl Pinned {
    pub fn open(pid: i32) -> Result<Pinned, Failure> {
        if pid <= 0 {
            return Err(Failure::Gone);
        }
        // SAFETY: pidfd_open takes a pid and flags; it returns a new fd or -1.
        let raw = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
        let pidfd = if raw >= 0 {
            // SAFETY: the descriptor is new and ours.
            Ok(unsafe { OwnedFd::from_raw_fd(raw as i32) })
        } else {
            Err(io::Error::last_os_error())
        };
        if matches!(&pidfd, Err(error) if errno_of(error) == libc::ESRCH)
            && !std::path::Path::new(&format!("/proc/{pid}")).exists()
        {
            return Err(Failure::Gone);
        }
        let directory = std::fs::File::open(format!("/proc/{pid}"))
            .map_err(|_| Failure::Gone)?
            .into();
        let mut pinned = Pinned {
            pid,
            pidfd,
            directory,
            start_time: 0,
        };
        // The directory was opened after the pidfd: if the pinned process
        // is still there, the directory is its own.
        let (start_time, alive) = pinned.stat().ok_or(Failure::Gone)?;
        if !alive || !pinned.pidfd_alive() {
            return Err(Failure::Gone);
        }
        pinned.start_time = start_time;
        Ok(pinned)
    }

    /// The pidfd, if the process is in our PID namespace.
    pub fn pidfd(&self) -> Result<&OwnedFd, &io::Error> {
        self.pidfd.as_ref()
    }

    /// A path inside the pinned directory: `/proc/self/fd/N/FILE` resolves
    /// through our descriptor, so it names this process's file whatever
    /// happened to the PID meanwhile.
    pub fn path(&self, file: &str) -> PathBuf {
        PathBuf::from(format!(
            "/proc/self/fd/{}/{file}",
            self.directory.as_raw_fd()
        ))
    }

    /// The start time (clock ticks after boot), and whether the process
    /// is still running (not a zombie).
    fn stat(&self) -> Option<(u64, bool)> {
        let text = std::fs::read(self.path("stat")).ok()?;
        parse_stat(&text)
    }

    fn pidfd_alive(&self) -> bool {
        let Ok(pidfd) = &self.pidfd else {
            return true;
        };
        // SAFETY: signal 0 only checks; the pidfd is ours.
        let rc = unsafe {
            libc::syscall(
                libc::SYS_pidfd_send_signal,
                pidfd.as_raw_fd(),
                0,
                std::ptr::null::<libc::siginfo_t>(),
                0,
            )
        };
        rc == 0 || errno_of(&io::Error::last_os_error()) != libc::ESRCH
    }

    /// Whether it is still the process pinned at the start, running.
    pub fn still_there(&self) -> bool {
        matches!(self.stat(), Some((start, true)) if start == self.start_time) && self.pidfd_alive()
    }

    /// What to say about a failed read: gone if the process went away,
    /// else what was refused.
    pub fn failure(&self, file: &str, error: &io::Error) -> Failure {
        if !self.still_there() {
            return Failure::Gone;
        }
        let pid = self.pid;
        Failure::Refused(match errno_of(error) {
            libc::EACCES | libc::EPERM => format!(
                "may not read process {pid} (/proc/{pid}/{file}: {error}): \
                 run as root or as the process's user"
            ),
            _ => format!("cannot read process {pid} (/proc/{pid}/{file}: {error})"),
        })
    }

    /// `/proc/PID/FILE`, whole.
    pub fn read(&self, file: &str) -> Result<Vec<u8>, Failure> {
        std::fs::read(self.path(file)).map_err(|error| self.failure(file, &error))
    }

    /// `/proc/PID/FILE` if it can be read; nothing to report otherwise.
    pub fn read_optional(&self, file: &str) -> Option<Vec<u8>> {
        std::fs::read(self.path(file)).ok()
    }

    pub fn read_link(&self, file: &str) -> Option<PathBuf> {
        std::fs::read_link(self.path(file)).ok()
    }

    /// The process's descriptors that are sockets: (fd, inode), by fd.
    pub fn socket_fds(&self) -> Result<Vec<(i32, u64)>, Failure> {
        let entries =
            std::fs::read_dir(self.path("fd")).map_err(|error| self.failure("fd", &error))?;
        let mut sockets = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|error| self.failure("fd", &error))?;
            let Some(fd) = entry.file_name().to_str().and_then(|s| s.parse().ok()) else {
                continue;
            };
            // A descriptor closed meanwhile is simply gone.
            let Ok(target) = std::fs::read_link(entry.path()) else {
                continue;
            };
            if let Some(inode) = crate::proc::socket_inode(target.as_os_str().as_bytes()) {
                sockets.push((fd, inode));
            }
        }
        sockets.sort_unstable();
        Ok(sockets)
    }

    /// The socket's protocol as the kernel names it (`TCP`, `TCPv6`,
    /// `UNIX-STREAM`, `UDP`, ...): read from the descriptor's inode without
    /// taking a copy of it.
    pub fn socket_protocol(&self, fd: i32) -> Option<String> {
        let path = self.path(&format!("fd/{fd}"));
        let path = std::ffi::CString::new(path.as_os_str().as_bytes()).ok()?;
        let mut value = [0u8; 64];
        // SAFETY: path is NUL-terminated; value is writable for its length.
        let len = unsafe {
            libc::getxattr(
                path.as_ptr(),
                c"system.sockprotoname".as_ptr(),
                value.as_mut_ptr().cast(),
                value.len(),
            )
        };
        let value = value.get(..usize::try_from(len).ok()?)?;
        let value = value.split(|&b| b == 0).next().unwrap_or(value);
        Some(OsStr::from_bytes(value).to_string_lossy().into_owned())
    }

    /// `AT_EXECFN`'s string, read from the process's memory (needs the same
    /// permission as `pidfd_getfd`); `None` if refused.
    pub fn started_as(&self, address: u64) -> Option<Vec<u8>> {
        let memory = std::fs::File::open(self.path("mem")).ok()?;
        let mut bytes = vec![0u8; 4096];
        // The string ends near the top of the stack: a short read is normal.
        let read = memory.read_at(&mut bytes, address).ok()?;
        let end = bytes[..read].iter().position(|&b| b == 0)?;
        bytes.truncate(end);
        Some(bytes)
    }
}

/// Start time (field 22) and whether the state (field 3) is a running one
/// (not Z, zombie, or X, dead), from `/proc/PID/stat`. The name in
/// parentheses may hold anything: the fields are counted after its last `)`.
pub fn parse_stat(text: &[u8]) -> Option<(u64, bool)> {
    let close = text.iter().rposition(|&b| b == b')')?;
    let rest = std::str::from_utf8(&text[close + 1..]).ok()?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // fields[0] is the state (field 3), so field N is fields[N - 3].
    let state = fields.first()?;
    let start = fields.get(22 - 3)?.parse().ok()?;
    Some((start, !matches!(*state, "Z" | "X")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_fields_after_the_name() {
        let stat =
            b"42 (a) b) 1 2) S 1 42 42 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 98765 1000 10";
        assert_eq!(parse_stat(stat), Some((98765, true)));
        let zombie = b"42 (x) Z 1 42 42 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 5 0 0";
        assert_eq!(parse_stat(zombie), Some((5, false)));
        assert_eq!(parse_stat(b"42 (x"), None);
    }

    #[test]
    fn a_reaped_child_is_gone_and_its_directory_shows_nobody_else() {
        let mut child = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .unwrap();
        let pinned = Pinned::open(child.id() as i32).unwrap();
        assert!(pinned.still_there());
        assert!(pinned.read("environ").is_ok());
        child.kill().unwrap();
        child.wait().unwrap();
        // The PID may be anybody's now: the pinned directory is still the
        // old process's, and says so.
        assert!(!pinned.still_there());
        assert_eq!(pinned.read("environ"), Err(Failure::Gone));
        assert_eq!(pinned.socket_fds(), Err(Failure::Gone));
        assert_eq!(Pinned::open(999_999_999).err(), Some(Failure::Gone));
    }

    #[test]
    fn an_exited_child_not_yet_reaped_is_gone() {
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let pid = child.id() as i32;
        // A zombie until waited for.
        let zombie = (0..500).any(|_| {
            std::thread::sleep(std::time::Duration::from_millis(10));
            std::fs::read(format!("/proc/{pid}/stat"))
                .ok()
                .and_then(|text| parse_stat(&text))
                .is_some_and(|(_, running)| !running)
        });
        assert!(zombie);
        assert_eq!(Pinned::open(pid).err(), Some(Failure::Gone));
        child.wait().unwrap();
    }
}
