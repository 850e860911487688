//! Telling admins when someone's second factor goes away: an audit notice
//! always, and the command `[notify].command` if set, run as
//! `COMMAND EVENT USER BY_UID` with nothing in its environment but
//! [`COMMAND_PATH`]. The change has already happened; a failing or slow
//! command cannot undo or block it.

use crate::audit::{Audit, Severity};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

/// The command's whole environment: `PATH` set to this, so that a shell
/// script finds the usual tools; nothing of mfad's own environment.
pub const COMMAND_PATH: &str = "/usr/sbin:/usr/bin:/sbin:/bin";

/// How long the command may run before it is killed.
const COMMAND_LIMIT: Duration = Duration::from_secs(30);

/// Events admins are told about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    /// A user removed their last active factor: their MFA is off.
    MfaOff,
    /// An admin removed all of a user's factors.
    Reset,
    /// An admin set up a factor for a user (its secret handed over).
    SetUp,
    /// An admin invited a user to set up a factor.
    Invite,
}

impl Event {
    pub fn name(self) -> &'static str {
        match self {
            Event::MfaOff => "mfa-off",
            Event::Reset => "reset",
            Event::SetUp => "set-up",
            Event::Invite => "invite",
        }
    }
}

pub struct Notifier {
    command: Option<PathBuf>,
}

impl Notifier {
    pub fn new(command: Option<PathBuf>) -> Notifier {
        Notifier { command }
    }

    pub fn notify(&self, audit: &Audit, event: Event, user: &str, by_uid: u32) {
        let by = by_uid.to_string();
        audit.change(&format!("notify-{}", event.name()), by_uid, user, &[]);
        let Some(command) = &self.command else { return };
        let spawned = Command::new(command)
            .args([event.name(), user, &by])
            .env_clear()
            .env("PATH", COMMAND_PATH)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn();
        let mut child = match spawned {
            Ok(child) => child,
            Err(e) => {
                audit.message(
                    Severity::Warning,
                    &format!("notify command {} failed to start: {e}", command.display()),
                );
                return;
            }
        };
        // Reap it in the background, ending it if it hangs. The child is
        // ours until reaped, so the kill cannot hit another process.
        std::thread::spawn(move || {
            let started = std::time::Instant::now();
            while let Ok(None) = child.try_wait() {
                if started.elapsed() > COMMAND_LIMIT {
                    let _ = child.kill();
                    let _ = child.wait();
                    return;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        });
    }
}
