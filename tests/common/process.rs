//! Programs under test, run in the background with their output collected
//! line by line and killed when the test lets go of them (or dies).
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::process::CommandExt;
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A running program with its stdout and stderr collected as they come, and
/// its stdin kept open (an idle connection must not see EOF). Killed on drop.
pub struct Process {
    pub label: String,
    child: Child,
    stdin: Option<ChildStdin>,
    stdout: Arc<Mutex<String>>,
    stderr: Arc<Mutex<String>>,
}

impl Process {
    /// Spawns `cmd` with piped stdio; `label` names it in messages.
    pub fn spawn(cmd: Command, label: &str) -> Process {
        Process::spawn_with(cmd, label, true)
    }

    pub fn spawn_with(mut cmd: Command, label: &str, pipe_stdin: bool) -> Process {
        if pipe_stdin {
            cmd.stdin(Stdio::piped());
        }
        // Killed with the spawning thread too, so a test binary killed
        // outright leaves no program behind holding ports or pipes.
        // SAFETY: prctl is async-signal-safe.
        unsafe {
            cmd.pre_exec(|| {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
        let label = format!("{label} ({cmd:?})");
        let mut child = cmd.spawn().unwrap_or_else(|e| panic!("spawn {label}: {e}"));
        let stdout = collect(child.stdout.take().unwrap());
        let stderr = collect(child.stderr.take().unwrap());
        Process {
            label,
            stdin: child.stdin.take(),
            child,
            stdout,
            stderr,
        }
    }

    /// The process id.
    pub fn id(&self) -> u32 {
        self.child.id()
    }

    pub fn write(&mut self, text: &str) {
        let stdin = self.stdin.as_mut().expect("stdin already closed");
        stdin
            .write_all(text.as_bytes())
            .and_then(|()| stdin.flush())
            .unwrap_or_else(|e| panic!("write to {}: {e}", self.label));
    }

    pub fn close_stdin(&mut self) {
        self.stdin = None;
    }

    pub fn stdout(&self) -> String {
        self.stdout
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    pub fn stderr(&self) -> String {
        self.stderr
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Waits until stdout contains `text`; returns when it was seen.
    pub fn wait_stdout(&self, text: &str, timeout: Duration) -> Option<Instant> {
        super::wait_for(timeout, || self.stdout().contains(text).then(Instant::now))
    }

    /// Waits for the program to exit; returns its status and when it was
    /// seen to exit (polled every 10 ms), or None if it is still running.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<(ExitStatus, Instant)> {
        let child = &mut self.child;
        super::wait_for(timeout, || {
            child
                .try_wait()
                .expect("try_wait")
                .map(|status| (status, Instant::now()))
        })
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn collect(mut stream: impl Read + Send + 'static) -> Arc<Mutex<String>> {
    let text = Arc::new(Mutex::new(String::new()));
    let sink = Arc::clone(&text);
    std::thread::spawn(move || {
        let mut reader = BufReader::new(&mut stream);
        let mut line = String::new();
        // Line by line, so a test sees each line as soon as it is printed.
        while matches!(reader.read_line(&mut line), Ok(n) if n > 0) {
            sink.lock()
                .unwrap_or_else(|e| e.into_inner())
                .push_str(&line);
            line.clear();
        }
    });
    text
}
