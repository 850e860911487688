//! Child processes without sleeping: exit is observed through a pidfd, output
//! through pipes read by threads, and every wait has a time limit after which
//! the child is killed and the test fails with what it printed.

use std::io::{BufRead, BufReader, Read, Write};
use std::os::fd::{FromRawFd, OwnedFd};
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use tokio::io::unix::AsyncFd;

/// A file descriptor that becomes readable when process `pid` exits.
pub fn pidfd(pid: u32) -> std::io::Result<OwnedFd> {
    // SAFETY: pidfd_open takes a pid and flags and returns a new fd or -1.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid as libc::pid_t, 0) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: the kernel just gave us this fd; nobody else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) })
}

/// Resolves when the process behind `fd` has exited (it may still need
/// reaping with `wait`).
pub async fn exited(fd: &OwnedFd) -> std::io::Result<()> {
    // SAFETY: the AsyncFd owns this duplicate and keeps it open for as long
    // as it stays registered.
    let watch = unsafe { AsyncFd::register(fd.try_clone()?)? };
    let _ready = watch.readable().await?;
    Ok(())
}

/// Wait up to `limit` for `child` to exit. `None` if it is still running.
pub fn wait_timeout(child: &mut Child, limit: Duration) -> Option<ExitStatus> {
    if let Ok(Some(status)) = child.try_wait() {
        return Some(status);
    }
    let fd = match pidfd(child.id()) {
        Ok(fd) => fd,
        // Already reaped elsewhere or gone: let `wait` report it.
        Err(_) => return child.wait().ok(),
    };
    let done = crate::block_on(async { tokio::time::timeout(limit, exited(&fd)).await });
    match done {
        Ok(Ok(())) => child.wait().ok(),
        Ok(Err(e)) => panic!("cannot watch process {}: {e}", child.id()),
        Err(_) => None,
    }
}

/// Have the kernel SIGKILL the child when the thread that started it dies,
/// so a test process killed from outside (a runner's timeout) leaves no
/// dbus-daemon or mfad behind.
pub fn die_with_parent(cmd: &mut Command) {
    use std::os::unix::process::CommandExt;
    // SAFETY: prctl is async-signal-safe and touches only the new child.
    unsafe {
        cmd.pre_exec(|| {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

/// Run the child in a UTS namespace of its own, named `name`.
pub fn with_hostname(cmd: &mut Command, name: &str) {
    use std::os::unix::process::CommandExt;
    let name = name.as_bytes().to_vec();
    // SAFETY: unshare and sethostname are plain syscalls on the new child;
    // `name` is allocated before the fork.
    unsafe {
        cmd.pre_exec(move || {
            if libc::unshare(libc::CLONE_NEWUTS) != 0
                || libc::sethostname(name.as_ptr().cast(), name.len()) != 0
            {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

/// Send a signal to a child we started.
pub fn signal(child: &Child, sig: libc::c_int) {
    // SAFETY: plain kill(2) on the pid of a child we have not reaped yet.
    let rc = unsafe { libc::kill(child.id() as libc::pid_t, sig) };
    assert_eq!(
        rc,
        0,
        "kill({}, {sig}) failed: {}",
        child.id(),
        std::io::Error::last_os_error()
    );
}

/// What a finished process left behind.
#[derive(Debug)]
pub struct Finished {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
    pub elapsed: Duration,
}

impl Finished {
    pub fn code(&self) -> Option<i32> {
        self.status.code()
    }
    /// Panic with everything the process printed unless it exited 0.
    pub fn assert_success(&self, what: &str) -> &Self {
        assert!(
            self.status.success(),
            "{what} failed ({}):\n{}",
            self.status,
            self.describe()
        );
        self
    }
    pub fn describe(&self) -> String {
        format!(
            "--- stdout ---\n{}\n--- stderr ---\n{}",
            self.stdout, self.stderr
        )
    }
}

/// A running child whose stdout arrives line by line and whose stdin stays
/// open until [`Running::close_stdin`] or [`Running::finish`].
pub struct Running {
    what: String,
    child: Child,
    stdin: Option<ChildStdin>,
    lines: mpsc::Receiver<String>,
    stdout_seen: Vec<String>,
    stderr: Option<JoinHandle<String>>,
    started: Instant,
}

impl Running {
    /// Spawn `cmd` with all three standard streams piped.
    pub fn spawn(what: impl Into<String>, cmd: &mut Command) -> Running {
        let what = what.into();
        let started = Instant::now();
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {what} ({cmd:?}): {e}"));
        let stdin = child.stdin.take();
        let stdout = child.stdout.take().expect("piped stdout");
        let mut stderr = child.stderr.take().expect("piped stderr");
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let stderr = std::thread::spawn(move || {
            let mut buf = Vec::new();
            let _ = stderr.read_to_end(&mut buf);
            String::from_utf8_lossy(&buf).into_owned()
        });
        Running {
            what,
            child,
            stdin,
            lines,
            stdout_seen: Vec::new(),
            stderr: Some(stderr),
            started,
        }
    }

    pub fn id(&self) -> u32 {
        self.child.id()
    }

    /// The next line of stdout, waiting at most `limit`. `None` at end of
    /// output or when the limit passes.
    pub fn next_line(&mut self, limit: Duration) -> Option<String> {
        match self.lines.recv_timeout(limit) {
            Ok(line) => {
                self.stdout_seen.push(line.clone());
                Some(line)
            }
            Err(_) => None,
        }
    }

    /// The lines of stdout read so far.
    pub fn seen(&self) -> &[String] {
        &self.stdout_seen
    }

    /// Write one line to the child's stdin.
    pub fn send_line(&mut self, line: &str) {
        let what = &self.what;
        let stdin = self
            .stdin
            .as_mut()
            .unwrap_or_else(|| panic!("stdin of {what} is closed"));
        stdin
            .write_all(format!("{line}\n").as_bytes())
            .and_then(|_| stdin.flush())
            .unwrap_or_else(|e| panic!("cannot write to {what}: {e}"));
    }

    pub fn close_stdin(&mut self) {
        self.stdin = None;
    }

    /// Wait for exit (killing the child after `limit`) and collect output.
    pub fn finish(mut self, limit: Duration) -> Finished {
        self.stdin = None;
        let status = match wait_timeout(&mut self.child, limit) {
            Some(status) => status,
            None => {
                let _ = self.child.kill();
                let _ = self.child.wait();
                let (stdout, stderr) = self.collect();
                panic!(
                    "{} did not finish within {limit:?}:\n--- stdout ---\n{stdout}\n--- stderr ---\n{stderr}",
                    self.what
                );
            }
        };
        let elapsed = self.started.elapsed();
        let (stdout, stderr) = self.collect();
        Finished {
            status,
            stdout,
            stderr,
            elapsed,
        }
    }

    fn collect(&mut self) -> (String, String) {
        // The child is gone, so the reader threads reach end of file.
        while let Ok(line) = self.lines.recv() {
            self.stdout_seen.push(line);
        }
        let stdout = self.stdout_seen.join("\n");
        let stderr = self
            .stderr
            .take()
            .and_then(|h| h.join().ok())
            .unwrap_or_default();
        (stdout, stderr)
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Run `cmd` to completion with `input` on stdin, within `limit`.
pub fn run(what: &str, cmd: &mut Command, input: &str, limit: Duration) -> Finished {
    let mut running = Running::spawn(what, cmd);
    if !input.is_empty() {
        if let Some(stdin) = running.stdin.as_mut() {
            // A child that exits without reading its input is not an error
            // here; its exit status tells the story.
            let _ = stdin.write_all(input.as_bytes());
        }
    }
    running.finish(limit)
}
