//! The control socket: a UNIX stream socket taking one command per line and
//! answering each with one line, `ok[ DETAILS]` or `err MESSAGE`. A command
//! has taken effect when its answer arrives. See main.rs for the commands.

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::fs::FileTypeExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::{mpsc, Arc, Mutex};
use std::thread;

use crate::fs::Identity;
use crate::key::{AssertionMode, CounterMode, Input, Presence, Shared};
use crate::sysfs::Sysfs;

/// Longest command line accepted.
const MAX_LINE: usize = 256;

pub struct Controller {
    pub shared: Arc<Shared>,
    pub input: Mutex<mpsc::Sender<Input>>,
    pub sysfs: Option<Sysfs>,
    pub identity: Identity,
    /// Serialises commands from several connections; true once shut down.
    lock: Mutex<bool>,
}

impl Controller {
    pub fn new(
        shared: Arc<Shared>,
        input: mpsc::Sender<Input>,
        sysfs: Option<Sysfs>,
        identity: Identity,
    ) -> Self {
        Controller {
            shared,
            input: Mutex::new(input),
            sysfs,
            identity,
            lock: Mutex::new(false),
        }
    }

    /// Runs one command line; the answer without its newline.
    pub fn execute(&self, line: &str) -> String {
        let closed = self.lock.lock().unwrap_or_else(|e| e.into_inner());
        if *closed {
            return "err shutting down".to_string();
        }
        match self.run(line) {
            Ok(None) => "ok".to_string(),
            Ok(Some(details)) => format!("ok {details}"),
            Err(e) => format!("err {e}"),
        }
    }

    fn run(&self, line: &str) -> Result<Option<String>, String> {
        let words: Vec<&str> = line.split_whitespace().collect();
        match words.as_slice() {
            ["presence", rest @ ..] => {
                let presence = Presence::parse_str(&rest.join(" "))?;
                self.shared.knobs().presence = presence;
                Ok(None)
            }
            ["counter", "set", n] => {
                let n: u32 = n
                    .parse()
                    .map_err(|_| format!("counter set needs a number, got {n:?}"))?;
                let mut store = self.shared.store();
                for c in store.credentials.iter_mut() {
                    c.sign_count = n;
                }
                store.save()?;
                Ok(None)
            }
            ["counter", mode] => {
                let mode = CounterMode::parse(mode)?;
                let changed = {
                    let mut knobs = self.shared.knobs();
                    let changed =
                        (knobs.counter == CounterMode::Constant) != (mode == CounterMode::Constant);
                    knobs.counter = mode;
                    changed
                };
                if changed {
                    // soft-fido2 takes constant_sign_count at construction.
                    self.rebuild(false)?;
                }
                Ok(None)
            }
            ["assertion", mode] => {
                self.shared.knobs().assertion = AssertionMode::parse(mode)?;
                Ok(None)
            }
            ["unplug"] => {
                if self.shared.device.is_plugged() {
                    self.shared.device.unplug();
                    self.shared.wake_waiters();
                    if let Some(sysfs) = &self.sysfs {
                        sysfs.remove()?;
                    }
                }
                Ok(None)
            }
            ["plug"] => {
                if !self.shared.device.is_plugged() {
                    // Power-on: PIN tokens, key agreement, consecutive PIN
                    // failures and CTAPHID channels start afresh.
                    self.rebuild(true)?;
                    self.shared.device.plug();
                    if let Some(sysfs) = &self.sysfs {
                        sysfs.create(&self.identity)?;
                    }
                }
                Ok(None)
            }
            ["status"] => Ok(Some(self.status())),
            [] => Err("empty command".into()),
            _ => Err(format!("unknown command {line:?}")),
        }
    }

    /// The process is stopping: the key goes away for good (waiting reads
    /// fail, the sysfs entry is removed) and later commands are refused.
    pub fn shutdown(&self) {
        let mut closed = self.lock.lock().unwrap_or_else(|e| e.into_inner());
        *closed = true;
        self.shared.device.unplug();
        self.shared.wake_waiters();
        if let Some(sysfs) = &self.sysfs {
            if let Err(e) = sysfs.remove() {
                eprintln!("mfa-fakekey: {e}");
            }
        }
    }

    fn rebuild(&self, power_cycle: bool) -> Result<(), String> {
        let (done, wait) = mpsc::channel();
        let sent = self
            .input
            .lock()
            .map(|tx| tx.send(Input::Rebuild { power_cycle, done }).is_ok())
            .unwrap_or(false);
        if !sent || wait.recv().is_err() {
            return Err("the authenticator thread is gone".into());
        }
        Ok(())
    }

    fn status(&self) -> String {
        let (presence, counter, assertion) = {
            let k = self.shared.knobs();
            (k.presence, k.counter, k.assertion)
        };
        let (pin, retries, credentials) = {
            let store = self.shared.store();
            let (pin, retries) = match &store.pin_state {
                Some(s) if s.is_pin_set() => ("set", s.retries.to_string()),
                _ => ("unset", "-".to_string()),
            };
            (pin, retries, store.credentials.len())
        };
        format!(
            "plugged={} presence={presence} counter={counter} assertion={assertion} pin={pin} pin_retries={retries} \
             pin_auth_blocked={} credentials={credentials} up_requests={} keepalives={} \
             open={} readers={}",
            yes_no(self.shared.device.is_plugged()),
            yes_no(self.shared.pin_auth_blocked.load(Ordering::SeqCst)),
            self.shared.up_requests.load(Ordering::SeqCst),
            self.shared.keepalives.load(Ordering::SeqCst),
            self.shared.device.open_handles(),
            self.shared.device.waiting_reads(),
        )
    }
}

fn yes_no(b: bool) -> &'static str {
    if b {
        "yes"
    } else {
        "no"
    }
}

/// Binds `path` (replacing a stale socket left there) and serves it on a
/// thread per connection.
pub fn serve(path: &Path, controller: Arc<Controller>) -> Result<(), String> {
    if let Ok(meta) = std::fs::symlink_metadata(path) {
        if meta.file_type().is_socket() {
            std::fs::remove_file(path)
                .map_err(|e| format!("cannot remove old socket {}: {e}", path.display()))?;
        } else {
            return Err(format!("{} exists and is not a socket", path.display()));
        }
    }
    let listener =
        UnixListener::bind(path).map_err(|e| format!("cannot bind {}: {e}", path.display()))?;
    thread::Builder::new()
        .name("control".into())
        .spawn(move || {
            for stream in listener.incoming().flatten() {
                let controller = controller.clone();
                let _ = thread::Builder::new()
                    .name("control-conn".into())
                    .spawn(move || connection(stream, &controller));
            }
        })
        .map_err(|e| format!("cannot start the control thread: {e}"))?;
    Ok(())
}

fn connection(stream: UnixStream, controller: &Controller) {
    let Ok(mut out) = stream.try_clone() else {
        return;
    };
    let mut reader = BufReader::new(stream);
    let mut buf = Vec::new();
    loop {
        buf.clear();
        match reader
            .by_ref()
            .take(MAX_LINE as u64 + 1)
            .read_until(b'\n', &mut buf)
        {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        let answer = if buf.len() > MAX_LINE && !buf.ends_with(b"\n") {
            // Too long: answer, then drop the connection (the rest of the
            // line is not read).
            let _ = writeln!(out, "err command longer than {MAX_LINE} bytes");
            return;
        } else {
            match std::str::from_utf8(&buf) {
                Ok(line) => controller.execute(line.trim()),
                Err(_) => "err command is not UTF-8".to_string(),
            }
        };
        if writeln!(out, "{answer}").is_err() {
            return;
        }
    }
}
