//! Second-factor mechanisms, each a conversation: a mechanism begins a
//! challenge for a factor (a prompt, or a wait while a device works), then
//! checks the response against the factor as the store holds it and says
//! where the factor moves — applied in the same store transaction as the
//! check. The service, the login and the bus layers name no mechanism: a new
//! method is one new module implementing [`Mechanism`], registered in
//! [`Mechanisms`].
//!
//! - `totp`, `hotp`: one-time codes (RFC 6238, RFC 4226).
//! - `fido2`: USB security keys (FIDO2/U2F through ctap-hid-fido2).
//! - `email`: one-time codes sent through an SMTP relay.
//! - `recovery`: one-time recovery codes, a [`Fallback`] typed at any prompt.

pub mod email;
pub mod fido2;
mod hotp;
pub mod otp;
pub mod otpauth;
pub mod recovery;
mod totp;
pub mod work;

pub use hotp::Hotp;
pub use otp::Algorithm;
pub use totp::Totp;
pub use work::{Cancel, Waiter, Work};

/// Background work whose result is a [`Response`] (or why there is none).
pub type ResponseWork = Work<Result<Response, String>>;

use crate::config::Config;
use crate::store::{FactorRecord, Lockout, Store, StoreError};
use mfa_dbus::{EnrolOptions, EnrolmentOffer};
use std::any::Any;
use std::fmt;
use std::sync::Arc;

/// The kinds of factor mfad knows. Stored by name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum FactorKind {
    Totp,
    Hotp,
    Fido2,
    Email,
}

impl FactorKind {
    pub const ALL: [FactorKind; 4] = [
        FactorKind::Totp,
        FactorKind::Hotp,
        FactorKind::Fido2,
        FactorKind::Email,
    ];

    pub fn name(self) -> &'static str {
        match self {
            FactorKind::Totp => "totp",
            FactorKind::Hotp => "hotp",
            FactorKind::Fido2 => "fido2",
            FactorKind::Email => "email",
        }
    }
    pub fn from_name(name: &str) -> Option<FactorKind> {
        Self::ALL.into_iter().find(|k| k.name() == name)
    }
    /// The names, quoted, for error messages: `"totp", "hotp" or "fido2"`.
    pub fn choices() -> String {
        let names: Vec<String> = Self::ALL
            .iter()
            .map(|k| format!("{:?}", k.name()))
            .collect();
        match names.split_last() {
            Some((last, rest)) if !rest.is_empty() => format!("{} or {last}", rest.join(", ")),
            _ => names.join(""),
        }
    }
}

impl fmt::Display for FactorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// What a factor holds besides its counter, per kind; sealed at rest as a
/// whole (a key's public key too: whoever can write the store cannot swap
/// in their own).
#[derive(Clone, PartialEq, Eq)]
pub enum FactorData {
    /// TOTP and HOTP.
    Otp(OtpParams),
    Fido2(fido2::Credential),
    /// Boxed: much larger than the others.
    Email(Box<email::EmailFactor>),
}

impl fmt::Debug for FactorData {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FactorData::Otp(p) => p.fmt(f),
            FactorData::Fido2(c) => c.fmt(f),
            FactorData::Email(e) => e.fmt(f),
        }
    }
}

/// A shared secret and the parameters of its codes.
#[derive(Clone, PartialEq, Eq)]
pub struct OtpParams {
    pub secret: Vec<u8>,
    pub algorithm: Algorithm,
    pub digits: u32,
    /// TOTP time step in seconds; 0 for HOTP.
    pub period: u32,
    /// TOTP: how many steps the authenticator's clock is ahead (or behind,
    /// negative), learned from accepted codes, capped; 0 for HOTP.
    pub drift: i64,
}

impl fmt::Debug for OtpParams {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OtpParams")
            .field("secret", &"<redacted>")
            .field("algorithm", &self.algorithm)
            .field("digits", &self.digits)
            .field("period", &self.period)
            .field("drift", &self.drift)
            .finish()
    }
}

/// Where a factor moves after a right response, in the same transaction:
/// its counter only ever goes up (the TOTP step, the HOTP counter, a key's
/// signature counter), and its data may change with it (a TOTP drift).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Advance {
    pub counter: u64,
    /// New data for the factor; `None` keeps it as it is.
    pub data: Option<FactorData>,
}

/// What checking a response found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Right: the factor moves.
    Accept(Advance),
    /// Wrong, malformed or replayed: counted as a failure.
    Reject,
    /// Wrong, in a way worth naming in the audit (a key's assertion for
    /// another relying party, or whose signature does not verify: forged
    /// or replayed): counted as a failure like [`Verdict::Reject`], and
    /// audited with this reason.
    Wrong(&'static str),
    /// Refused and worth an admin's attention (a security key whose
    /// signature counter did not increase: possibly cloned). Counted as a
    /// failure and audited with this reason.
    Suspicious(&'static str),
}

/// What the user (or their device) gave back.
pub enum Response {
    /// Typed at a prompt.
    Text(String),
    /// What background work of the mechanism returned (a key's assertion).
    Evidence(Box<dyn Any + Send>),
}

impl fmt::Debug for Response {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Response::Text(_) => f.write_str("Text(<redacted>)"),
            Response::Evidence(_) => f.write_str("Evidence(..)"),
        }
    }
}

/// How a challenge is put to the user.
pub enum Ask {
    /// A prompt; the answer goes to [`Mechanism::respond`]. `code`: the
    /// answer is a code (a fallback such as a recovery code may be typed
    /// instead; a wrong one is "Wrong code").
    Prompt {
        text: String,
        echo: bool,
        code: bool,
    },
    /// `text` is shown while `work` runs (a key waiting for a touch); its
    /// result comes back as [`Response::Evidence`], or the error it gave.
    Wait { text: String, work: ResponseWork },
}

/// A challenge begun for one factor in one login.
pub struct Challenge {
    pub ask: Ask,
    /// What the mechanism remembers until it checks the response (a
    /// key's challenge bytes); only that mechanism reads it.
    pub state: Box<dyn Any + Send>,
}

impl Challenge {
    /// A prompt for a code, with nothing to remember.
    pub fn code_prompt(text: impl Into<String>) -> Challenge {
        Challenge {
            ask: Ask::Prompt {
                text: text.into(),
                echo: false,
                code: true,
            },
            state: Box::new(()),
        }
    }
}

/// What the answer to a prompt leads to.
pub enum Next {
    /// A response to check now.
    Check(Response),
    /// Something more to ask first (after a key's PIN: the touch).
    Ask(Ask),
    /// Begin the challenge again (a new e-mail code).
    Again,
}

/// Where a login comes from, as far as mechanisms care.
#[derive(Debug, Clone, PartialEq)]
pub struct LoginContext {
    pub request: mfa_dbus::LoginRequest,
    /// Why the login is remote (the client's address, a remote session),
    /// or `None` when it is local to this machine.
    pub remote: Option<String>,
    /// The clock of the login, seconds since the epoch.
    pub now: u64,
    /// Asking again after a wrong answer.
    pub retry: bool,
    /// A screen locker's unlock (a caller that is not root).
    pub unlock: bool,
    /// `policy explain`'s login, which has no process to look at: `remote`
    /// then says only what the request shows (service, remote host), and
    /// what a process tree would tell is assumed (a real login whose
    /// process is not known is never local).
    pub hypothetical: bool,
}

/// A new factor, not yet confirmed, and what its owner is shown.
pub struct NewFactor {
    pub data: FactorData,
    /// The counter the factor starts at.
    pub counter: u64,
    /// The offer, without its id and expiry (the service adds those).
    pub offer: EnrolmentOffer,
    /// Work that must finish before the factor can be confirmed (a key
    /// making its credential): its response confirms it through
    /// [`Mechanism::verify`], with `state`. `None` when a code confirms it.
    pub work: Option<ResponseWork>,
    pub state: Box<dyn Any + Send>,
    /// Shown at a login that enrols this factor, before the confirmation.
    pub login_text: String,
    /// The prompt for the code that confirms it there.
    pub login_prompt: &'static str,
}

/// What enrolling needs to know about the user and the request.
pub struct EnrolRequest<'a> {
    pub user: &'a str,
    pub label: &'a str,
    pub options: &'a EnrolOptions,
    /// The account name an app shows (`alice@host (phone)`).
    pub account: &'a str,
    pub issuer: &'a str,
    /// Seconds since the epoch.
    pub now: u64,
}

/// A factor kind that cannot be used in some logins, and why.
pub type Unavailable = String;

/// One second-factor method.
pub trait Mechanism: Send + Sync {
    fn kind(&self) -> FactorKind;

    /// Whether factors of this kind can be asked in `login`; the reason
    /// when not (a security key over SSH: it is not plugged in there).
    fn available(&self, _login: &LoginContext) -> Result<(), Unavailable> {
        Ok(())
    }

    /// Why factors of this kind are offered in `login`, when that is worth
    /// saying (`policy explain`: a key, because the login runs here).
    fn offered_because(&self, _login: &LoginContext) -> Option<String> {
        None
    }

    /// Whether [`Mechanism::available`] needs to know where the login runs
    /// (its process tree is read only then).
    fn local_only(&self) -> bool {
        false
    }

    /// Set up a new factor for a user (`options` already checked by the
    /// caller for what is common); an error names the bad option.
    fn enrol(&self, request: &EnrolRequest<'_>) -> Result<NewFactor, EnrolError>;

    /// Whether a user can set up a factor of this kind in the middle of a
    /// login (a QR code in the terminal: yes; a key: no).
    fn enrols_at_login(&self) -> bool {
        false
    }

    /// Begin asking for the factor `load` reads from the store. `others`
    /// reads the login's other factors of this kind, for a mechanism whose
    /// one challenge any of them may answer (a key's assertion request lists
    /// every credential of the user: whichever key is plugged in signs); it
    /// then says which one did through [`Mechanism::answered_by`].
    fn challenge(
        &self,
        load: &mut dyn FnMut() -> Result<FactorRecord, ChallengeError>,
        others: &mut dyn FnMut() -> Result<Vec<FactorRecord>, ChallengeError>,
        login: &LoginContext,
    ) -> Result<Challenge, ChallengeError>;

    /// The id of the factor `response` answers, when a challenge covered
    /// several (see `others` in [`Mechanism::challenge`]); `None`: the one
    /// asked. Only a factor of the challenge is ever named, and the
    /// response is still checked against it as the store holds it.
    fn answered_by(&self, _challenge: &(dyn Any + Send), _response: &Response) -> Option<String> {
        None
    }

    /// What the answer `text` to a prompt of this challenge leads to; by
    /// default, a response to check.
    fn respond(&self, _state: &mut (dyn Any + Send), text: String) -> Result<Next, String> {
        Ok(Next::Check(Response::Text(text)))
    }

    /// What the result of the challenge's work leads to (a code sent: its
    /// prompt); by default, a response to check.
    fn worked(&self, _state: &mut (dyn Any + Send), response: Response) -> Next {
        Next::Check(response)
    }

    /// Check `response` to a challenge against `factor` as the store holds
    /// it now. Called inside the store's transaction: quick, no I/O.
    fn verify(
        &self,
        factor: &FactorRecord,
        challenge: &(dyn Any + Send),
        response: &Response,
        now: u64,
    ) -> Verdict;

    /// Find two consecutive codes, `first` then `second`, further away than
    /// `verify` looks (a token pressed many times, a clock gone wrong).
    /// Mechanisms without codes never find any.
    fn resync(
        &self,
        _factor: &FactorRecord,
        _first: &str,
        _second: &str,
        _now: u64,
    ) -> Option<Advance> {
        None
    }
}

/// A challenge could not begin: the factor cannot be asked now (no key
/// plugged in, the mail cap reached: the user may pick another), or the
/// store could not be read or written (the login is refused, audited as
/// the store's failure).
#[derive(Debug, thiserror::Error)]
pub enum ChallengeError {
    #[error("{0}")]
    Unavailable(String),
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
}

impl From<String> for ChallengeError {
    fn from(why: String) -> ChallengeError {
        ChallengeError::Unavailable(why)
    }
}

/// A new factor could not be set up: which option, and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EnrolError {
    /// A bad option; nothing was changed.
    #[error("{0}")]
    Invalid(String),
    /// The mechanism could not do its part (no key attached, …).
    #[error("{0}")]
    Failed(String),
}

/// Something a user may type at any prompt instead of the asked factor's
/// answer, kept apart from the factors (recovery codes). Checking is slow
/// by design (slow hashes): the service runs [`Fallback::check`] as
/// [`Work`], off the async runtime.
pub trait Fallback: Send + Sync {
    /// The name audit lines give it.
    fn name(&self) -> &'static str;
    /// One line for the list of methods at login, saying how to use it.
    fn hint(&self) -> &'static str;
    /// Whether `answer` is meant for this fallback (it has its shape); it
    /// is then never checked as a code of the asked factor.
    fn claims(&self, answer: &str) -> bool;
    /// Check `answer` for `user`: use it up if right, count a failure
    /// otherwise, in one store transaction; nothing is checked while the
    /// user is locked out.
    fn check(
        &self,
        store: &dyn Store,
        user: &str,
        answer: &str,
        now: u64,
        lockout: Lockout,
    ) -> Result<FallbackUse, StoreError>;
}

/// What checking a fallback found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FallbackUse {
    /// Right, and used up. `note` is shown to the user with the "allow";
    /// `detail` goes into the audit line.
    Used {
        note: String,
        detail: (&'static str, String),
    },
    Rejected {
        failures: u32,
        locked_until: u64,
    },
    Locked,
    /// Not one of the fallback's, though it had the shape (an 8-digit
    /// number is a scratch code or an 8-digit OTP code): nothing was
    /// counted; it is the asked factor's response after all.
    NotMine,
}

/// Every mechanism mfad runs, by kind, and the fallbacks.
pub struct Mechanisms {
    all: Vec<Arc<dyn Mechanism>>,
    fallbacks: Vec<Arc<dyn Fallback>>,
}

impl Mechanisms {
    pub fn new(all: Vec<Arc<dyn Mechanism>>) -> Mechanisms {
        Mechanisms {
            all,
            fallbacks: vec![Arc::new(recovery::RecoveryCodes)],
        }
    }

    /// The mechanisms `config` enables; those that keep state of their own
    /// between the calls of a login (e-mail codes) keep it in `store`.
    pub fn from_config(config: &Config, hostname: &str, store: &Arc<dyn Store>) -> Mechanisms {
        let mut all: Vec<Arc<dyn Mechanism>> = vec![
            Arc::new(Totp {
                skew: config.totp.skew,
                max_drift: config.totp.max_drift,
                defaults: otpauth::Defaults {
                    algorithm: config.totp.algorithm,
                    digits: config.totp.digits,
                    period: config.totp.period,
                },
            }),
            Arc::new(Hotp {
                window: config.hotp.window,
                defaults: otpauth::Defaults {
                    algorithm: Algorithm::Sha1,
                    digits: config.hotp.digits,
                    period: 0,
                },
            }),
        ];
        if let Some(fido2) = fido2::Fido2::from_config(&config.fido2, hostname) {
            all.push(Arc::new(fido2));
        }
        if let Some(email) = email::Email::from_config(&config.email, hostname, Arc::clone(store)) {
            all.push(Arc::new(email));
        }
        Mechanisms::new(all)
    }

    /// What may be typed at any code prompt instead (recovery codes).
    pub fn fallbacks(&self) -> &[Arc<dyn Fallback>] {
        &self.fallbacks
    }

    pub fn get(&self, kind: FactorKind) -> Option<&Arc<dyn Mechanism>> {
        self.all.iter().find(|m| m.kind() == kind)
    }

    /// Whether some mechanism is offered only at this machine.
    pub fn any_local_only(&self) -> bool {
        self.all.iter().any(|m| m.local_only())
    }

    /// For `login`: the kinds that cannot be used and why, the kinds a
    /// user can set up during it, and why some kinds are offered.
    pub fn for_login(&self, login: &LoginContext) -> ForLogin {
        let mut unavailable = Vec::new();
        let mut enrolable = Vec::new();
        let mut offered = Vec::new();
        for kind in FactorKind::ALL {
            match self.get(kind) {
                None => unavailable.push((kind, format!("{kind} is not enabled in this mfad"))),
                Some(m) => {
                    if let Err(why) = m.available(login) {
                        unavailable.push((kind, why));
                        continue;
                    }
                    if let Some(why) = m.offered_because(login) {
                        offered.push((kind, why));
                    }
                    if m.enrols_at_login() {
                        enrolable.push(kind);
                    }
                }
            }
        }
        ForLogin {
            unavailable,
            enrolable,
            offered,
        }
    }
}

/// What [`Mechanisms::for_login`] found.
#[derive(Debug, Default)]
pub struct ForLogin {
    /// Kinds that cannot be used, and why.
    pub unavailable: Vec<(FactorKind, String)>,
    /// Kinds a user can set up during the login.
    pub enrolable: Vec<FactorKind>,
    /// Kinds offered, with a reason worth saying.
    pub offered: Vec<(FactorKind, String)>,
}

/// The code a user typed, if it has the shape of a `digits`-long code.
/// Spaces are allowed (apps show codes as "123 456").
pub(crate) fn normalise_code(answer: &str, digits: u32) -> Option<String> {
    let code: String = answer.chars().filter(|c| *c != ' ').collect();
    (code.len() == digits as usize && code.bytes().all(|b| b.is_ascii_digit())).then_some(code)
}
