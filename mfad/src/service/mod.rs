//! What each call does, independent of D-Bus: the bus layer identifies and
//! authorises the caller, then calls in here (on a blocking thread, since
//! the store does disk I/O).

use crate::audit::Audit;
use crate::clock::Clock;
use crate::config::{Config, Unenrolled};
use crate::error::DaemonError;
use crate::login::{self, Logins, Refused, Session};
use crate::mechanism::otpauth::{self, UriParams};
use crate::mechanism::recovery;
use crate::mechanism::{Algorithm, FactorKind, Hotp, Mechanism, OtpParams, Totp};
use crate::notify::{Event, Notifier};
use crate::store::{
    CodeCheck, Confirmation, FactorRecord, Lockout, RecoveryUse, Store, StoreError,
};
use mfa_dbus::{
    DenyReason, EnrolOptions, EnrolmentOffer, FactorInfo, LoginRequest, Step, StepKind, UserSummary,
};
use std::sync::{Arc, Mutex, MutexGuard};

pub use crate::login::{validate_request, validate_user};

const MAX_ANSWER: usize = 1024;
const MAX_LABEL: usize = 64;

/// What checking an answer found, whatever the kind of code.
enum Checked {
    Accepted {
        method: &'static str,
        /// What the audit line says about what was used.
        detail: (&'static str, String),
        /// Shown to the user with the "allow".
        note: String,
    },
    Locked,
    Rejected {
        failures: u32,
        locked_until: u64,
    },
}

/// The next step after an answer, and whether the answer failed (a wrong,
/// replayed or refused code): failures get mfad's minimum duration.
#[derive(Debug, PartialEq)]
pub struct Answered {
    pub step: Step,
    pub failure: bool,
}

pub struct Service {
    config: Config,
    store: Store,
    clock: Arc<dyn Clock>,
    audit: Audit,
    logins: Mutex<Logins>,
    totp: Totp,
    hotp: Hotp,
    /// Account name host part in otpauth URIs.
    hostname: String,
    notifier: Notifier,
}

impl Service {
    pub fn new(config: Config, store: Store, clock: Arc<dyn Clock>, audit: Audit) -> Service {
        let hostname = nix::unistd::gethostname()
            .ok()
            .and_then(|h| h.into_string().ok())
            .unwrap_or_else(|| "localhost".into());
        Service {
            logins: Mutex::new(Logins::new(config.login.timeout)),
            totp: Totp {
                skew: config.totp.skew,
            },
            hotp: Hotp {
                window: config.hotp.window,
            },
            notifier: Notifier::new(config.notify.command.clone()),
            config,
            store,
            clock,
            audit,
            hostname,
        }
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    pub fn audit(&self) -> &Audit {
        &self.audit
    }

    fn mechanism(&self, kind: FactorKind) -> &dyn Mechanism {
        match kind {
            FactorKind::Totp => &self.totp,
            FactorKind::Hotp => &self.hotp,
        }
    }

    fn logins(&self) -> MutexGuard<'_, Logins> {
        self.logins.lock().unwrap_or_else(|p| p.into_inner())
    }

    // ---- logins -------------------------------------------------------

    /// Begin a login for `request`, owned by the bus connection `owner`.
    pub fn start_login(
        &self,
        owner: &str,
        request: LoginRequest,
    ) -> Result<(String, Step), DaemonError> {
        validate_request(&request)?;
        let enrolled = match self.store.has_confirmed_factor(&request.user) {
            Ok(enrolled) => enrolled,
            Err(e) => {
                self.audit.login(
                    &request,
                    "deny",
                    &[("reason", "store-error"), ("error", &e.to_string())],
                );
                return Ok((
                    String::new(),
                    Step::deny(DenyReason::Internal, login::INTERNAL_TEXT),
                ));
            }
        };
        if !enrolled {
            return Ok(match self.config.login.unenrolled {
                Unenrolled::Allow => {
                    self.audit
                        .login(&request, "allow", &[("reason", "not-enrolled-allowed")]);
                    (String::new(), Step::allow())
                }
                Unenrolled::Deny => {
                    self.audit
                        .login(&request, "deny", &[("reason", "not-enrolled")]);
                    (
                        String::new(),
                        Step::deny(DenyReason::NotEnrolled, login::NOT_ENROLLED_TEXT),
                    )
                }
            });
        }
        let request_tries = request.max_tries;
        let session = Session {
            owner: owner.to_string(),
            request,
            started: self.clock.now(),
            tries_left: match request_tries {
                0 => self.config.login.max_tries,
                asked => asked.min(self.config.login.max_tries),
            },
        };
        let handle = self.logins().open(session).map_err(DaemonError::Internal)?;
        Ok((handle, Step::prompt(login::PROMPT, false)))
    }

    /// The user's answer to the current prompt of login `handle`.
    pub fn answer(&self, owner: &str, handle: &str, answer: &str) -> Result<Answered, DaemonError> {
        let step = self.answer_step(owner, handle, answer)?;
        // Every answer today is a code: anything but "allow" is a failure.
        let failure = step.kind != StepKind::Allow;
        Ok(Answered { step, failure })
    }

    fn answer_step(&self, owner: &str, handle: &str, answer: &str) -> Result<Step, DaemonError> {
        let now = self.clock.now();
        let mut session = match self.logins().take(owner, handle, now) {
            Ok(s) => s,
            Err(Refused::Unknown) => return Err(DaemonError::UnknownHandle),
            Err(Refused::Expired(s)) => {
                self.audit
                    .login(&s.request, "deny", &[("reason", "expired")]);
                return Ok(Step::deny(DenyReason::Expired, login::EXPIRED_TEXT));
            }
        };
        let user = session.request.user.clone();
        let checked = match recovery::normalise(answer) {
            Some(code) => self.check_recovery_code(&user, &code, now),
            None => self.check_otp(&user, answer, now),
        };
        match checked {
            Ok(Checked::Accepted {
                method,
                detail,
                note,
            }) => {
                self.audit.login(
                    &session.request,
                    "allow",
                    &[("method", method), (detail.0, &detail.1)],
                );
                Ok(Step {
                    text: note,
                    ..Step::allow()
                })
            }
            // Locked: the answer was not even looked at; right and wrong
            // codes get this same step.
            Ok(Checked::Locked) => {
                self.audit
                    .login(&session.request, "deny", &[("reason", "locked")]);
                Ok(Step::deny(DenyReason::Locked, login::LOCKED_TEXT))
            }
            Ok(Checked::Rejected {
                failures,
                locked_until,
            }) if locked_until > now => {
                let failures = failures.to_string();
                self.audit.login(
                    &session.request,
                    "deny",
                    &[("reason", "wrong-code-locked-out"), ("failures", &failures)],
                );
                Ok(Step::deny(DenyReason::Locked, login::LOCKED_TEXT))
            }
            Ok(Checked::Rejected { failures, .. }) => {
                let failures = failures.to_string();
                session.tries_left = session.tries_left.saturating_sub(1);
                if session.tries_left == 0 {
                    self.audit.login(
                        &session.request,
                        "deny",
                        &[("reason", "max-tries"), ("failures", &failures)],
                    );
                    return Ok(Step::deny(DenyReason::MaxTries, login::MAX_TRIES_TEXT));
                }
                let left = session.tries_left.to_string();
                self.audit.login(
                    &session.request,
                    "retry",
                    &[
                        ("reason", "wrong-code"),
                        ("tries_left", &left),
                        ("failures", &failures),
                    ],
                );
                self.logins().restore(handle.to_string(), session);
                Ok(Step::prompt(login::RETRY_PROMPT, false))
            }
            Err(e) => {
                self.audit.login(
                    &session.request,
                    "deny",
                    &[("reason", "store-error"), ("error", &e.to_string())],
                );
                Ok(Step::deny(DenyReason::Internal, login::INTERNAL_TEXT))
            }
        }
    }

    /// An OTP code against the user's factors, in one store transaction.
    fn check_otp(&self, user: &str, answer: &str, now: u64) -> Result<Checked, StoreError> {
        // An answer too long to be a code is a wrong code, and counted.
        let plausible = answer.len() <= MAX_ANSWER;
        let checked = self.store.check_code(user, now, self.lockout(), |f| {
            if plausible {
                self.mechanism(f.kind).verify(&f.params, answer, now)
            } else {
                None
            }
        })?;
        Ok(match checked {
            CodeCheck::Accepted(factor) => Checked::Accepted {
                method: factor.kind.name(),
                detail: ("factor", factor.id),
                note: String::new(),
            },
            CodeCheck::Locked { .. } => Checked::Locked,
            CodeCheck::Rejected {
                failures,
                locked_until,
            } => Checked::Rejected {
                failures,
                locked_until,
            },
        })
    }

    /// A recovery code: the slow hash checks run outside the store's lock,
    /// then one transaction uses the matching code or counts the failure.
    fn check_recovery_code(&self, user: &str, code: &str, now: u64) -> Result<Checked, StoreError> {
        if self.store.locked_until(user, now)? > 0 {
            return Ok(Checked::Locked);
        }
        let matched = self
            .store
            .unused_recovery_codes(user)?
            .into_iter()
            .find(|(_, hash)| recovery::verify(code, hash))
            .map(|(rowid, _)| rowid);
        Ok(
            match self
                .store
                .use_recovery_code(user, matched, now, self.lockout())?
            {
                RecoveryUse::Used { left } => Checked::Accepted {
                    method: "recovery-code",
                    detail: ("left", left.to_string()),
                    note: format!(
                        "Recovery code accepted; {left} left. Set up your authenticator again with mfactl."
                    ),
                },
                RecoveryUse::Locked => Checked::Locked,
                RecoveryUse::Rejected {
                    failures,
                    locked_until,
                } => Checked::Rejected {
                    failures,
                    locked_until,
                },
            },
        )
    }

    /// A fresh batch of recovery codes for `user`, replacing any earlier
    /// batch; returned once, kept only as hashes.
    pub fn generate_recovery_codes(
        &self,
        caller_uid: u32,
        user: &str,
    ) -> Result<Vec<String>, DaemonError> {
        let codes = recovery::generate().map_err(DaemonError::Internal)?;
        let hashes = codes
            .iter()
            .map(|c| {
                recovery::normalise(c)
                    .ok_or_else(|| "malformed code".to_string())
                    .and_then(|c| recovery::hash(&c))
            })
            .collect::<Result<Vec<_>, _>>()
            .map_err(DaemonError::Internal)?;
        self.store
            .replace_recovery_codes(user, &hashes, self.clock.now())?;
        let count = codes.len().to_string();
        self.audit
            .change("recovery-codes", caller_uid, user, &[("count", &count)]);
        Ok(codes)
    }

    fn lockout(&self) -> Lockout {
        Lockout {
            max_failures: self.config.lockout.max_failures,
            unlock_after: self.config.lockout.unlock_after,
        }
    }

    /// Abandon a login; unknown handles are not an error (it may have expired).
    pub fn cancel(&self, owner: &str, handle: &str) {
        let now = self.clock.now();
        if let Ok(session) = self.logins().take(owner, handle, now) {
            self.audit.login(
                &session.request,
                "cancel",
                &[("reason", "conversation-aborted")],
            );
        }
    }

    /// Drop logins past their time limit.
    pub fn sweep(&self) {
        let now = self.clock.now();
        self.logins().sweep(now);
    }

    // ---- a user's own factors ----------------------------------------

    pub fn begin_enrolment(
        &self,
        caller_uid: u32,
        user: &str,
        kind: &str,
        label: &str,
        options: &EnrolOptions,
    ) -> Result<EnrolmentOffer, DaemonError> {
        let kind = FactorKind::from_name(kind).ok_or_else(|| {
            DaemonError::InvalidArgument(format!(
                "unknown factor kind {kind:?}; use \"totp\" or \"hotp\""
            ))
        })?;
        let label = if label.is_empty() { kind.name() } else { label };
        if label.chars().count() > MAX_LABEL || label.chars().any(char::is_control) {
            return Err(DaemonError::InvalidArgument(format!(
                "label must be at most {MAX_LABEL} characters, without control characters"
            )));
        }
        let (default_algorithm, default_digits) = match kind {
            FactorKind::Totp => (self.config.totp.algorithm, self.config.totp.digits),
            FactorKind::Hotp => (Algorithm::Sha1, self.config.hotp.digits),
        };
        let algorithm = match options.algorithm.as_str() {
            "" => default_algorithm,
            name => Algorithm::from_name(name).ok_or_else(|| {
                DaemonError::InvalidArgument(format!(
                    "unknown algorithm {name:?}; use SHA1, SHA256 or SHA512"
                ))
            })?,
        };
        let digits = match options.digits {
            0 => default_digits,
            d @ 6..=8 => d,
            d => {
                return Err(DaemonError::InvalidArgument(format!(
                    "digits {d} is out of range: 6 to 8"
                )))
            }
        };
        let period = match (kind, options.period) {
            (FactorKind::Hotp, 0) => 0,
            (FactorKind::Hotp, p) => {
                return Err(DaemonError::InvalidArgument(format!(
                    "period {p} makes no sense for hotp"
                )))
            }
            (FactorKind::Totp, 0) => self.config.totp.period,
            (FactorKind::Totp, p @ 10..=300) => p,
            (FactorKind::Totp, p) => {
                return Err(DaemonError::InvalidArgument(format!(
                    "period {p} is out of range: 10 to 300"
                )))
            }
        };
        let secret = if options.secret_base32.is_empty() {
            otpauth::generate_secret(algorithm).map_err(|e| DaemonError::Internal(e.to_string()))?
        } else {
            otpauth::decode_base32(&options.secret_base32)
                .map_err(|e| DaemonError::InvalidArgument(e.to_string()))?
        };
        let now = self.clock.now();
        let factor = FactorRecord {
            id: new_factor_id()?,
            user: user.to_string(),
            kind,
            label: label.to_string(),
            params: OtpParams {
                secret,
                algorithm,
                digits,
                period,
                counter: 0,
            },
            confirmed: false,
            created: now,
            last_used: 0,
            expires: now + self.config.enrolment.pending_expiry,
        };
        self.store.insert_pending(&factor)?;
        self.audit.change(
            "enrol",
            caller_uid,
            user,
            &[
                ("factor", &factor.id),
                ("method", kind.name()),
                ("state", "pending"),
            ],
        );
        let account = format!("{user}@{}", self.hostname);
        let uri = otpauth::uri(&UriParams {
            kind,
            issuer: &self.config.enrolment.issuer,
            account: &account,
            secret: &factor.params.secret,
            algorithm,
            digits,
            period,
            counter: 0,
        });
        Ok(EnrolmentOffer {
            id: factor.id,
            kind: kind.name().into(),
            label: factor.label,
            issuer: self.config.enrolment.issuer.clone(),
            algorithm: algorithm.name().into(),
            digits,
            period,
            counter: 0,
            secret_base32: otpauth::encode_base32(&factor.params.secret),
            uri,
            expires: factor.expires,
        })
    }

    pub fn confirm_enrolment(
        &self,
        caller_uid: u32,
        user: &str,
        id: &str,
        code: &str,
    ) -> Result<FactorInfo, DaemonError> {
        let now = self.clock.now();
        if code.len() > MAX_ANSWER {
            return Err(DaemonError::WrongCode);
        }
        let outcome = self.store.confirm(user, id, now, |f| {
            self.mechanism(f.kind).verify(&f.params, code, now)
        })?;
        match outcome {
            Confirmation::Confirmed(factor) => {
                self.audit.change(
                    "confirm",
                    caller_uid,
                    user,
                    &[("factor", &factor.id), ("method", factor.kind.name())],
                );
                Ok(info(&factor))
            }
            Confirmation::WrongCode => {
                self.audit.change(
                    "confirm-failed",
                    caller_uid,
                    user,
                    &[("factor", id), ("reason", "wrong-code")],
                );
                Err(DaemonError::WrongCode)
            }
            Confirmation::NotFound => Err(DaemonError::NotFound(format!(
                "no pending enrolment {id:?} (it may have expired)"
            ))),
        }
    }

    pub fn list_factors(&self, user: &str) -> Result<Vec<FactorInfo>, DaemonError> {
        Ok(self
            .store
            .factors(user, self.clock.now())?
            .iter()
            .map(info)
            .collect())
    }

    pub fn remove_factor(&self, caller_uid: u32, user: &str, id: &str) -> Result<(), DaemonError> {
        if self.store.remove_factor(user, id)? {
            self.audit
                .change("remove", caller_uid, user, &[("factor", id)]);
            if !self.store.has_confirmed_factor(user)? {
                self.notifier
                    .notify(&self.audit, Event::MfaOff, user, caller_uid);
            }
            Ok(())
        } else {
            Err(DaemonError::NotFound(format!(
                "{user} has no factor {id:?}"
            )))
        }
    }

    // ---- administration ----------------------------------------------

    pub fn list_users(&self) -> Result<Vec<UserSummary>, DaemonError> {
        Ok(self
            .store
            .users(self.clock.now())?
            .into_iter()
            .map(|u| UserSummary {
                user: u.user,
                methods: u.methods.iter().map(|k| k.name().to_string()).collect(),
                factors: u.factors,
                pending: u.pending,
                last_used: u.last_used,
                locked: u.locked,
            })
            .collect())
    }

    /// Clear a user's lockout and failure count; true if they were locked.
    pub fn unlock_user(&self, caller_uid: u32, user: &str) -> Result<bool, DaemonError> {
        validate_user(user)?;
        let was_locked = self.store.unlock(user, self.clock.now())?;
        let state = if was_locked {
            "was-locked"
        } else {
            "was-not-locked"
        };
        self.audit
            .change("unlock", caller_uid, user, &[("state", state)]);
        Ok(was_locked)
    }

    pub fn reset_user(&self, caller_uid: u32, user: &str) -> Result<u32, DaemonError> {
        validate_user(user)?;
        let removed = self.store.remove_user(user)?;
        self.audit.change(
            "reset",
            caller_uid,
            user,
            &[("removed", &removed.to_string())],
        );
        self.notifier
            .notify(&self.audit, Event::Reset, user, caller_uid);
        Ok(removed)
    }
}

fn info(f: &FactorRecord) -> FactorInfo {
    FactorInfo {
        id: f.id.clone(),
        kind: f.kind.name().into(),
        label: f.label.clone(),
        confirmed: f.confirmed,
        created: f.created,
        last_used: f.last_used,
    }
}

/// 64 random bits, hex: short enough to type, unguessable enough for an id
/// that is only ever used together with its owner's name.
fn new_factor_id() -> Result<String, DaemonError> {
    let mut bytes = [0u8; 8];
    getrandom::fill(&mut bytes)
        .map_err(|e| DaemonError::Internal(format!("no randomness: {e}")))?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

#[cfg(test)]
mod tests;
