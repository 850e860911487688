//! Logins in progress: who started them, for whom, when, and how many tries
//! are left. Pure bookkeeping; the service decides what each answer means.

mod origin;
mod request;

pub use origin::{remote_reason, LOCAL, NO_PROCESS};
pub use request::{validate_request, validate_user};

use crate::mechanism::{FactorKind, FallbackUse, ResponseWork, Work};
use crate::policy::{Device, FactorState};
use crate::store::StoreError;
use mfa_dbus::{LoginRequest, Step};
use std::any::Any;
use std::collections::{HashMap, VecDeque};

pub const WRONG_CODE: &str = "Wrong code. ";
pub const NOT_ACCEPTED: &str = "Not accepted. ";
pub const MAX_TRIES_TEXT: &str = "Too many wrong codes.";
pub const NOT_ENROLLED_TEXT: &str = "No second factor is set up for this account, and logins here need one. Ask an administrator to set one up for you.";
pub const LOCKED_TEXT: &str =
    "Too many failed codes: the second factor of this account is locked. Ask an administrator.";
pub const EXPIRED_TEXT: &str = "The login took too long.";
pub const INTERNAL_TEXT: &str = "The second factor could not be checked.";
pub const TIME_TEXT: &str =
    "The second factor could not be checked: this machine's time cannot be trusted. Try again later.";
pub const DIRECTORY_TEXT: &str =
    "The second factor could not be checked: the user directory is not answering. Try again later.";
pub const NOT_APPROVED_TEXT: &str =
    "No second factor of this account is approved for this service. Ask an administrator.";
pub const NO_METHOD_TEXT: &str =
    "No second-factor method is allowed for this account. Ask an administrator.";
pub const ENCOURAGE_TEXT: &str =
    "Protect your account with a second factor: a code from an authenticator app.";
pub const ENCOURAGE_PROMPT: &str = "Set one up now? [y/N]: ";
pub const ENCOURAGE_LATER_TEXT: &str = "Set one up with: mfactl enrol";
pub const CONTINUE_PROMPT: &str = "Press Enter to continue: ";
pub const FORCE_TEXT: &str = "This account needs a second factor before you can log in.";
pub const CONFIRM_PROMPT: &str = "Code from your app: ";
pub const ENROLLED_TEXT: &str =
    "Second factor set up. Get recovery codes for a lost phone with: mfactl recovery-codes";
pub const TOO_MANY_FACTORS_TEXT: &str =
    "This account has as many factors as it may keep. Ask an administrator.";
pub const CHOOSE_PROMPT: &str = "Method number: ";
pub const SUSPICIOUS_TEXT: &str =
    "The second factor was refused, and the refusal recorded. Ask an administrator.";
pub const NO_USABLE_FACTOR_TEXT: &str =
    "None of the second factors of this account can be used for this login. Use one that can (a security key works only where it is plugged in), or ask an administrator.";

/// The service an unlock is audited and decided as, whatever the locker said.
pub const UNLOCK_SERVICE: &str = "unlock";

/// Logins in progress beyond this are refused: a flood cannot grow mfad.
pub const MAX_LOGINS: usize = 10_000;
/// Unlocks one uid may have in progress: a user's processes cannot use up
/// [`MAX_LOGINS`] and keep everyone else out.
pub const MAX_UNLOCKS_PER_USER: usize = 8;

/// One login in progress.
pub struct Session {
    /// Unique bus name of the connection that started it; only it may answer.
    pub owner: String,
    pub request: LoginRequest,
    /// Why the login counts as remote, or `None` at this machine.
    pub remote: Option<String>,
    /// A screen locker's unlock (or a step-up): the uid of the caller
    /// that started it, not root.
    pub unlock_uid: Option<u32>,
    /// A proof of a factor before a change to the caller's own account
    /// (`service::step_up`), not a login.
    pub step_up: bool,
    /// When the caller stops waiting for the answer being handled, in
    /// `mfa_dbus::monotonic_ms` (0: it did not say).
    pub deadline: u64,
    /// Seconds since the epoch.
    pub started: u64,
    pub tries_left: u32,
    /// What the next answer is for.
    pub phase: Phase,
    /// Steps decided ahead, sent one per answer: an info text is answered
    /// with an empty string, then its prompt follows.
    pub queued: VecDeque<Step>,
}

/// The factors a login may ask, and what a right answer also does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Asking {
    /// Usable factors, the one asked first first.
    pub factors: Vec<FactorState>,
    /// After a right answer, this device is trusted.
    pub remember: Option<Device>,
}

impl Session {
    /// The login as mechanisms see it, at `now`.
    pub fn context(&self, now: u64) -> crate::mechanism::LoginContext {
        crate::mechanism::LoginContext {
            request: self.request.clone(),
            remote: self.remote.clone(),
            now,
            retry: false,
            unlock: self.unlock_uid.is_some(),
            hypothetical: false,
        }
    }
}

/// What the login is waiting for.
pub enum Phase {
    /// The response to the challenge of `asking.factors[selected]` (or a
    /// fallback typed instead, such as a recovery code). `work`: what the
    /// mechanism is doing meanwhile (a key waiting for a touch); every
    /// answer is then a poll.
    Factor {
        asking: Asking,
        selected: usize,
        challenge: Box<dyn Any + Send>,
        /// The prompt asks for a code (a fallback may be typed instead).
        code: bool,
        work: Option<ResponseWork>,
        /// The challenge began again after a wrong answer, and its work
        /// (a new code being sent) hides that: the prompt after it says so.
        retry: bool,
    },
    /// A fallback typed at the prompt of `asking.factors[selected]`, being
    /// checked off the runtime (slow hashes); every answer is a poll.
    Fallback {
        asking: Asking,
        selected: usize,
        name: &'static str,
        work: Work<Result<FallbackUse, StoreError>>,
        /// The factor's challenge and the answer, which is the factor's
        /// response after all if the fallback finds it is not its own.
        challenge: Box<dyn Any + Send>,
        answer: mfa_dbus::Answer,
    },
    /// The number of another method, from the list shown.
    Choose { asking: Asking },
    /// Encourage: yes to set up a factor of `kind` now (if `can_enrol`),
    /// anything else to go on without one.
    Offer { kind: FactorKind, can_enrol: bool },
    /// The first code of `factor`, set up during this login.
    /// Confirming a factor set up in this login: `prompt` asks its code.
    Confirm {
        factor: String,
        prompt: &'static str,
    },
}

impl Phase {
    /// The name the debug log gives the phase.
    pub fn name(&self) -> &'static str {
        match self {
            Phase::Factor { .. } => "factor",
            Phase::Fallback { .. } => "fallback",
            Phase::Choose { .. } => "choose",
            Phase::Offer { .. } => "offer",
            Phase::Confirm { .. } => "confirm",
        }
    }
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
    pub fn open(&mut self, session: Session) -> Result<String, Full> {
        self.sweep(session.started);
        if self.sessions.len() >= MAX_LOGINS {
            return Err(Full(format!("more than {MAX_LOGINS} logins in progress")));
        }
        if let Some(uid) = session.unlock_uid {
            let mine = self
                .sessions
                .values()
                .filter(|s| s.unlock_uid == Some(uid))
                .count();
            if mine >= MAX_UNLOCKS_PER_USER {
                return Err(Full(format!(
                    "uid {uid} has {MAX_UNLOCKS_PER_USER} unlocks in progress already"
                )));
            }
        }
        let handle = new_handle().map_err(|e| Full(format!("no randomness for a handle: {e}")))?;
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

    /// Take out every login started by `owner` (its connection is gone).
    pub fn drop_owner(&mut self, owner: &str) -> Vec<Session> {
        let handles: Vec<String> = self
            .sessions
            .iter()
            .filter(|(_, s)| s.owner == owner)
            .map(|(h, _)| h.clone())
            .collect();
        handles
            .iter()
            .filter_map(|h| self.sessions.remove(h))
            .collect()
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

/// A login could not be opened: why.
#[derive(Debug, PartialEq, Eq)]
pub struct Full(pub String);

/// 128 random bits, hex.
fn new_handle() -> Result<String, getrandom::Error> {
    let mut bytes = [0u8; 16];
    crate::random::fill(&mut bytes)?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn session(owner: &str, started: u64) -> Session {
        Session {
            owner: owner.into(),
            request: LoginRequest::default(),
            remote: None,
            unlock_uid: None,
            step_up: false,
            deadline: 0,
            started,
            tries_left: 3,
            phase: Phase::Confirm {
                factor: "f".into(),
                prompt: CONFIRM_PROMPT,
            },
            queued: VecDeque::new(),
        }
    }

    #[test]
    fn one_uid_cannot_hold_more_than_its_share_of_unlocks() {
        let mut logins = Logins::new(180);
        let unlock = |uid| Session {
            unlock_uid: Some(uid),
            ..session(":1.7", 1000)
        };
        for _ in 0..MAX_UNLOCKS_PER_USER {
            logins.open(unlock(1001)).expect("within the share");
        }
        assert!(logins.open(unlock(1001)).is_err(), "one more is refused");
        assert!(logins.open(unlock(1002)).is_ok(), "another user's is not");
        assert!(
            logins.open(session(":1.8", 1000)).is_ok(),
            "nor a root login"
        );
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
