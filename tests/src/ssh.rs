//! The real OpenSSH client (`ssh`, package openssh-client) in a
//! pseudo-terminal, driven like a user at a keyboard: wait for a prompt, type
//! a line, read what was shown. ssh reads keyboard-interactive answers from
//! its controlling terminal only, so a pipe on stdin would not do.
//!
//! Every wait is bounded and wakes on new output (a condition variable fed
//! by a reader thread), never by sleeping.
//!
//! ```no_run
//! # use mfa_tests::sshd::{Sshd, SshdConfig, KBDINT};
//! # let sshd = Sshd::start(&SshdConfig::mfa(KBDINT, "unix:path=/x", ""));
//! let mut ssh = sshd.client("alice").spawn();
//! let shown = ssh.expect("Verification code: ", mfa_tests::QUICK);
//! assert!(shown.contains("(alice@127.0.0.1)"));
//! ssh.send_line("123456");
//! ssh.finish().assert_logged_in("alice");
//! ```

use crate::process::{die_with_parent, wait_timeout};
use std::ffi::{CStr, OsString};
use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

/// The client binary (Debian package openssh-client).
pub const SSH: &str = "/usr/bin/ssh";

/// Text a process writes, collected by a reader thread, that tests wait on.
/// Carriage returns are dropped as they arrive (a terminal writes `\r\n`), so
/// offsets stay stable and needles can use `\n`.
pub struct Output {
    state: Mutex<OutputState>,
    changed: Condvar,
}

#[derive(Default)]
struct OutputState {
    bytes: Vec<u8>,
    closed: bool,
}

/// Why a wait on [`Output`] ended without a match.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WaitError {
    /// The writer closed its end; the text will not grow any more.
    Closed,
    TimedOut,
}

impl Output {
    /// Start a thread copying `reader` into a new `Output` until end of file
    /// (or, for a pty master, until the terminal's last user closed it: EIO).
    pub fn collect(reader: impl Read + Send + 'static) -> Arc<Output> {
        let output = Arc::new(Output {
            state: Mutex::new(OutputState::default()),
            changed: Condvar::new(),
        });
        let writer = Arc::clone(&output);
        let mut reader = reader;
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            loop {
                match reader.read(&mut buf) {
                    Ok(0) => break,
                    Ok(n) => writer.push(&buf[..n]),
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                    Err(_) => break,
                }
            }
            writer.close();
        });
        output
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, OutputState> {
        // A panicking reader thread leaves the text as it was: still usable.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn push(&self, data: &[u8]) {
        let mut state = self.lock();
        state.bytes.extend(data.iter().filter(|&&b| b != b'\r'));
        self.changed.notify_all();
    }

    fn close(&self) {
        self.lock().closed = true;
        self.changed.notify_all();
    }

    /// Everything so far (lossy UTF-8).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.lock().bytes).into_owned()
    }

    /// The text between byte offsets `from` and `to`.
    pub fn slice(&self, from: usize, to: usize) -> String {
        let state = self.lock();
        let to = to.min(state.bytes.len());
        String::from_utf8_lossy(&state.bytes[from.min(to)..to]).into_owned()
    }

    pub fn len(&self) -> usize {
        self.lock().bytes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn is_closed(&self) -> bool {
        self.lock().closed
    }

    /// Wait until one of `needles` occurs at or after byte offset `from`.
    /// Returns the index of the needle found first in the text and the
    /// offset just past it.
    pub fn wait_for(
        &self,
        from: usize,
        needles: &[&str],
        limit: Duration,
    ) -> Result<(usize, usize), WaitError> {
        let deadline = Instant::now() + limit;
        let mut state = self.lock();
        loop {
            let found = needles
                .iter()
                .enumerate()
                .filter_map(|(i, needle)| {
                    find(&state.bytes, from, needle.as_bytes()).map(|at| (at, i, needle.len()))
                })
                .min();
            if let Some((at, i, len)) = found {
                return Ok((i, at + len));
            }
            if state.closed {
                return Err(WaitError::Closed);
            }
            let now = Instant::now();
            if now >= deadline {
                return Err(WaitError::TimedOut);
            }
            state = self
                .changed
                .wait_timeout(state, deadline - now)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }

    /// Wait until the writer has closed; false if `limit` passed first.
    pub fn wait_closed(&self, limit: Duration) -> bool {
        let deadline = Instant::now() + limit;
        let mut state = self.lock();
        while !state.closed {
            let now = Instant::now();
            if now >= deadline {
                return false;
            }
            state = self
                .changed
                .wait_timeout(state, deadline - now)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
        true
    }
}

fn find(haystack: &[u8], from: usize, needle: &[u8]) -> Option<usize> {
    let rest = haystack.get(from..)?;
    if needle.is_empty() {
        return Some(from);
    }
    rest.windows(needle.len())
        .position(|w| w == needle)
        .map(|i| from + i)
}

/// How to run `ssh`. Build it with [`crate::sshd::Sshd::client`] or
/// [`SshOptions::new`], adjust, then [`SshOptions::spawn`].
#[derive(Clone, Debug)]
pub struct SshOptions {
    pub user: String,
    pub host: String,
    pub port: u16,
    /// `-i`: the only key offered. Without one, ssh offers no key at all
    /// (root's own `~/.ssh` keys stay out of the tests).
    pub key: Option<PathBuf>,
    /// `-b`: the local address to connect from (any 127.0.0.x), which sshd
    /// passes on as `PAM_RHOST`.
    pub bind: Option<String>,
    /// `PreferredAuthentications`.
    pub preferred: String,
    /// Extra `-o` options. They come before the harness's own, and ssh keeps
    /// the first value it sees, so they win (e.g.
    /// `NumberOfPasswordPrompts=3`, ssh's own default, to have a refused
    /// keyboard-interactive login tried again: up to three PAM transactions
    /// in one connection; the harness sets 1).
    pub options: Vec<String>,
}

impl SshOptions {
    /// Keyboard-interactive only, no key, to `127.0.0.1:port`.
    pub fn new(user: &str, port: u16) -> SshOptions {
        SshOptions {
            user: user.into(),
            host: "127.0.0.1".into(),
            port,
            key: None,
            bind: None,
            preferred: "keyboard-interactive".into(),
            options: Vec::new(),
        }
    }

    /// Offer this key, and try publickey before keyboard-interactive.
    pub fn key(mut self, private_key: impl Into<PathBuf>) -> SshOptions {
        self.key = Some(private_key.into());
        self.preferred = "publickey,keyboard-interactive".into();
        self
    }

    pub fn bind(mut self, address: &str) -> SshOptions {
        self.bind = Some(address.into());
        self
    }

    pub fn preferred(mut self, methods: &str) -> SshOptions {
        self.preferred = methods.into();
        self
    }

    /// One more `-o NAME=VALUE`.
    pub fn option(mut self, option: &str) -> SshOptions {
        self.options.push(option.into());
        self
    }

    /// The command line after `ssh`.
    pub fn args(&self) -> Vec<OsString> {
        let mut args: Vec<OsString> = Vec::new();
        let mut opt = |o: &str| {
            args.push("-o".into());
            args.push(o.into());
        };
        for o in &self.options {
            opt(o);
        }
        // No config files, no known_hosts, no agent: only what is here.
        opt("StrictHostKeyChecking=no");
        opt("UserKnownHostsFile=/dev/null");
        opt("GlobalKnownHostsFile=/dev/null");
        opt("BatchMode=no");
        opt(&format!("PreferredAuthentications={}", self.preferred));
        opt("IdentitiesOnly=yes");
        opt("IdentityAgent=none");
        opt("ConnectionAttempts=1");
        // One PAM transaction per connection: what mfad sees is predictable
        // and a refusal costs one failure delay, not three.
        opt("NumberOfPasswordPrompts=1");
        opt("ConnectTimeout=20");
        if self.key.is_none() {
            opt("PubkeyAuthentication=no");
        }
        args.extend(["-F", "/dev/null", "-T"].map(OsString::from));
        args.push("-p".into());
        args.push(self.port.to_string().into());
        args.push("-l".into());
        args.push(self.user.clone().into());
        if let Some(key) = &self.key {
            args.push("-i".into());
            args.push(key.clone().into());
        }
        if let Some(bind) = &self.bind {
            args.push("-b".into());
            args.push(bind.into());
        }
        args.push(self.host.clone().into());
        args
    }

    pub fn spawn(&self) -> SshSession {
        SshSession::spawn(self)
    }
}

/// A running `ssh` on its own pseudo-terminal.
pub struct SshSession {
    child: Option<Child>,
    /// Our side of the terminal: what we type goes in here.
    master: File,
    output: Arc<Output>,
    /// Offset in `output` up to which [`SshSession::expect`] has consumed.
    cursor: usize,
    started: Instant,
    args: Vec<OsString>,
}

impl SshSession {
    pub fn spawn(opts: &SshOptions) -> SshSession {
        let (master, slave) = open_pty();
        let args = opts.args();
        let reader = master.try_clone().expect("cannot dup the pty master");
        let started = Instant::now();
        let child = {
            // In a block: the Command holds copies of the terminal's slave
            // side, which must be closed here, or the reader never sees the
            // end of the output.
            let mut cmd = Command::new(SSH);
            cmd.args(&args)
                .env_clear()
                .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
                .env("HOME", "/root")
                .env("TERM", "dumb")
                .env("LANG", "C.UTF-8")
                .stdin(Stdio::from(slave.try_clone().expect("cannot dup the pty")))
                .stdout(Stdio::from(slave.try_clone().expect("cannot dup the pty")))
                .stderr(Stdio::from(slave));
            die_with_parent(&mut cmd);
            // SAFETY: setsid and ioctl are async-signal-safe and touch only
            // the new child: a new session whose controlling terminal is the
            // pty on fd 0, so ssh can open /dev/tty for its prompts.
            unsafe {
                cmd.pre_exec(|| {
                    if libc::setsid() < 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                    if libc::ioctl(0, libc::TIOCSCTTY, 0) < 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                    Ok(())
                });
            }
            cmd.spawn().unwrap_or_else(|e| {
                panic!("cannot start {SSH} (apt-get install openssh-client): {e}")
            })
        };
        SshSession {
            child: Some(child),
            master,
            output: Output::collect(reader),
            cursor: 0,
            started,
            args,
        }
    }

    /// Wait until `needle` appears after what earlier calls consumed; returns
    /// the text from there up to and including `needle` (the info text shown
    /// before a prompt, with the prompt). Panics with the transcript if ssh
    /// ends or `limit` passes first.
    #[track_caller]
    pub fn expect(&mut self, needle: &str, limit: Duration) -> String {
        self.expect_any(&[needle], limit).1
    }

    /// Like [`SshSession::expect`] for whichever of `needles` comes first;
    /// returns its index too.
    #[track_caller]
    pub fn expect_any(&mut self, needles: &[&str], limit: Duration) -> (usize, String) {
        match self.output.wait_for(self.cursor, needles, limit) {
            Ok((which, end)) => {
                let seen = self.output.slice(self.cursor, end);
                self.cursor = end;
                (which, seen)
            }
            Err(why) => panic!(
                "ssh: {} while waiting for {needles:?}\n--- unconsumed ---\n{}\n--- transcript ---\n{}",
                match why {
                    WaitError::Closed => "output ended",
                    WaitError::TimedOut => "time limit passed",
                },
                self.output.slice(self.cursor, usize::MAX),
                self.output.text()
            ),
        }
    }

    /// Type `line` and Enter.
    pub fn send_line(&mut self, line: &str) {
        self.master
            .write_all(format!("{line}\n").as_bytes())
            .and_then(|_| self.master.flush())
            .unwrap_or_else(|e| panic!("cannot type into ssh's terminal: {e}"));
    }

    /// Everything ssh showed so far.
    pub fn transcript(&self) -> String {
        self.output.text()
    }

    pub fn id(&self) -> u32 {
        self.child.as_ref().map(Child::id).unwrap_or(0)
    }

    /// Wait for ssh to exit (at most [`crate::QUICK`]; then it is killed and
    /// the test fails) and collect the whole transcript.
    #[track_caller]
    pub fn finish(mut self) -> SshOutcome {
        let mut child = self.child.take().expect("ssh already finished");
        let status = match wait_timeout(&mut child, crate::QUICK) {
            Some(status) => status,
            None => {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "ssh {:?} did not exit within {:?}:\n{}",
                    self.args,
                    crate::QUICK,
                    self.output.text()
                );
            }
        };
        let elapsed = self.started.elapsed();
        // ssh is gone, so its terminal closes: the rest arrives, then EIO.
        self.output.wait_closed(crate::QUICK);
        SshOutcome {
            status,
            transcript: self.output.text(),
            elapsed,
        }
    }
}

impl Drop for SshSession {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            if let Ok(None) = child.try_wait() {
                let _ = child.kill();
            }
            let _ = child.wait();
        }
    }
}

/// How an ssh run ended.
#[derive(Debug)]
pub struct SshOutcome {
    pub status: ExitStatus,
    /// Everything shown on ssh's terminal (prompts, info text, the command's
    /// output, ssh's own messages), `\r` removed.
    pub transcript: String,
    pub elapsed: Duration,
}

impl SshOutcome {
    pub fn code(&self) -> Option<i32> {
        self.status.code()
    }

    /// Did the login reach the session (sshd's forced command ran for `user`)?
    pub fn logged_in(&self, user: &str) -> bool {
        self.transcript.contains(&crate::sshd::login_ok(user))
    }

    /// The session ran for `user` and ssh exited 0.
    #[track_caller]
    pub fn assert_logged_in(&self, user: &str) -> &Self {
        assert!(
            self.logged_in(user) && self.status.success(),
            "expected {user} to log in; ssh exited with {}:\n{}",
            self.status,
            self.transcript
        );
        self
    }

    /// No session ran and ssh failed (255: authentication refused).
    #[track_caller]
    pub fn assert_refused(&self) -> &Self {
        assert!(
            !self.transcript.contains(crate::sshd::LOGIN_OK) && !self.status.success(),
            "expected the login to be refused; ssh exited with {}:\n{}",
            self.status,
            self.transcript
        );
        self
    }
}

/// A new pseudo-terminal (master, slave), both close-on-exec from the
/// start so no other test's child inherits them and keeps the terminal open.
fn open_pty() -> (File, File) {
    // std opens every file with O_CLOEXEC.
    let master = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_NOCTTY)
        .open("/dev/ptmx")
        .expect("cannot open /dev/ptmx");
    let fd = master.as_raw_fd();
    let mut name = [0 as libc::c_char; 128];
    // SAFETY: fd is an open ptmx; `name` is a writable buffer of the given
    // length that ptsname_r NUL-terminates.
    let slave_path = unsafe {
        assert_eq!(libc::unlockpt(fd), 0, "unlockpt failed");
        assert_eq!(
            libc::ptsname_r(fd, name.as_mut_ptr(), name.len()),
            0,
            "ptsname_r failed"
        );
        CStr::from_ptr(name.as_ptr()).to_string_lossy().into_owned()
    };
    // Wide enough that nothing (a QR code, a long prompt) is wrapped.
    let size = libc::winsize {
        ws_row: 60,
        ws_col: 250,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCSWINSZ reads one winsize from the pointer.
    unsafe { libc::ioctl(fd, libc::TIOCSWINSZ, &size) };
    let slave = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_NOCTTY)
        .open(&slave_path)
        .unwrap_or_else(|e| panic!("cannot open {slave_path}: {e}"));
    (master, slave)
}
