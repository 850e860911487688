//! Logins in progress: who started them, for whom, when, and how many tries
//! are left. Pure bookkeeping; the service decides what each answer means.

mod request;

pub use request::{validate_request, validate_user};

use mfa_dbus::LoginRequest;
use std::collections::HashMap;

pub const PROMPT: &str = "Verification code: ";
pub const RETRY_PROMPT: &str = "Wrong code. Verification code: ";
pub const MAX_TRIES_TEXT: &str = "Too many wrong codes.";
pub const NOT_ENROLLED_TEXT: &str = "No second factor is set up for this account.";
pub const LOCKED_TEXT: &str =
    "Too many failed codes: the second factor of this account is locked. Ask an administrator.";
pub const EXPIRED_TEXT: &str = "The login took too long.";
pub const INTERNAL_TEXT: &str = "The second factor could not be checked.";

/// Logins in progress beyond this are refused: a flood cannot grow mfad.
pub const MAX_LOGINS: usize = 10_000;

/// One login in progress.
pub struct Session {
    /// Unique bus name of the connection that started it; only it may answer.
    pub owner: String,
    pub request: LoginRequest,
    /// Seconds since the epoch.
    pub started: u64,
    pub tries_left: u32,
}

/// Why a handle could not be taken.
pub enum Refused {
    /// Unknown, or started by another connection (indistinguishable on purpose).
    Unknown,
    /// Known, but past its time limit; the session is gone now.
    Expired(Box<Session>),
}

pub struct Logins {
    sessions: HashMap<String, Session>,
    timeout: u64,
}

impl Logins {
    pub fn new(timeout: u64) -> Logins {
        Logins {
            sessions: HashMap::new(),
            timeout,
        }
    }

    /// Register a new login under a fresh unguessable handle.
    pub fn open(&mut self, session: Session) -> Result<String, String> {
        self.sweep(session.started);
        if self.sessions.len() >= MAX_LOGINS {
            return Err(format!("more than {MAX_LOGINS} logins in progress"));
        }
        let handle = new_handle().map_err(|e| format!("no randomness for a handle: {e}"))?;
        self.sessions.insert(handle.clone(), session);
        Ok(handle)
    }

    /// Take a login out while its answer is checked, so a second answer on
    /// the same handle cannot race it. Put it back with [`Logins::restore`].
    pub fn take(&mut self, owner: &str, handle: &str, now: u64) -> Result<Session, Refused> {
        match self.sessions.get(handle) {
            Some(s) if s.owner == owner => {}
            _ => return Err(Refused::Unknown),
        }
        let session = self.sessions.remove(handle).ok_or(Refused::Unknown)?;
        if self.is_expired(&session, now) {
            return Err(Refused::Expired(Box::new(session)));
        }
        Ok(session)
    }

    pub fn restore(&mut self, handle: String, session: Session) {
        self.sessions.insert(handle, session);
    }

    pub fn is_expired(&self, session: &Session, now: u64) -> bool {
        now >= session.started.saturating_add(self.timeout)
    }

    /// Drop logins past their time limit.
    pub fn sweep(&mut self, now: u64) {
        let timeout = self.timeout;
        self.sessions
            .retain(|_, s| now < s.started.saturating_add(timeout));
    }

    pub fn len(&self) -> usize {
        self.sessions.len()
    }

    pub fn is_empty(&self) -> bool {
        self.sessions.is_empty()
    }
}

/// 128 random bits, hex.
fn new_handle() -> Result<String, getrandom::Error> {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes)?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn session(owner: &str, started: u64) -> Session {
        Session {
            owner: owner.into(),
            request: LoginRequest::default(),
            started,
            tries_left: 3,
        }
    }

    #[test]
    fn handles_are_bound_to_their_connection() {
        let mut logins = Logins::new(60);
        let h = logins.open(session(":1.5", 100)).expect("open");
        assert_eq!(h.len(), 32);
        assert!(matches!(
            logins.take(":1.6", &h, 101),
            Err(Refused::Unknown)
        ));
        assert!(logins.take(":1.5", &h, 101).is_ok());
        assert!(
            matches!(logins.take(":1.5", &h, 101), Err(Refused::Unknown)),
            "taken"
        );
    }

    #[test]
    fn handles_expire() {
        let mut logins = Logins::new(60);
        let h = logins.open(session(":1.5", 100)).expect("open");
        assert!(matches!(
            logins.take(":1.5", &h, 160),
            Err(Refused::Expired(_))
        ));
        logins.open(session(":1.5", 100)).expect("open");
        logins.sweep(200);
        assert!(logins.is_empty());
    }

    #[test]
    fn handles_differ() {
        let mut logins = Logins::new(60);
        let a = logins.open(session(":1.5", 100)).expect("open");
        let b = logins.open(session(":1.5", 100)).expect("open");
        assert_ne!(a, b);
    }
}
