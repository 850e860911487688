//! What each call does, independent of D-Bus: the bus layer identifies and
//! authorises the caller, then calls in here (on a blocking thread, since
//! the store does disk I/O).

use crate::audit::Audit;
use crate::clock::Clock;
use crate::config::Config;
use crate::error::DaemonError;
use crate::limits::RateLimiter;
use crate::login::Logins;
use crate::mechanism::recovery;
use crate::mechanism::{
    EnrolError, EnrolRequest, FactorData, FactorKind, Mechanisms, Response, ResponseWork, Verdict,
    Waiter,
};
use crate::notify::{Event, Notifier};
use crate::policy::Policy;
use crate::policy::{Directory, Nss};
use crate::store::{
    Advanced, Confirmation, FactorLimits, FactorRecord, Inserted, Lockout, Store, StoreError,
};
use mfa_dbus::{EnrolOptions, EnrolmentOffer, FactorInfo, UserSummary};
use std::any::Any;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::AtomicUsize;
use std::sync::{Arc, Mutex, MutexGuard, RwLock};

pub use crate::login::{validate_request, validate_user};
pub use conversation::Answered;

mod conversation;
mod email;
mod import;
mod migrate;
mod set_up;
mod settings;

pub use import::Importer;

const MAX_ANSWER: usize = 1024;
const MAX_LABEL: usize = 64;
/// What stays as it was after a wrong code.
const PENDING: &str = "the enrolment is still pending";
const UNMOVED: &str = "no two consecutive codes found; the factor is unchanged";

pub struct Service {
    /// As read at start; its `policy` is only the first one: read the
    /// policy in force with [`Service::policy`].
    config: Config,
    /// The policy in force, replaced whole by a reload.
    policy: RwLock<Arc<Policy>>,
    /// Where the config was read from, for reloads; `None`: no reload.
    config_path: Option<PathBuf>,
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    audit: Audit,
    logins: Mutex<Logins>,
    mechanisms: Mechanisms,
    /// Enrolments a device is completing (a key making its credential), by
    /// pending factor id.
    device_enrolments: Mutex<HashMap<String, DeviceEnrolment>>,
    /// Account name host part in otpauth URIs.
    hostname: String,
    notifier: Notifier,
    /// Group membership for the policy: NSS, or a fake in tests.
    directory: Arc<dyn Directory>,
    /// Directory lookups started and not yet back.
    lookups_waiting: Arc<AtomicUsize>,
    /// Changes users make to their own accounts.
    changes: RateLimiter,
    /// Logins users start for their own accounts (unlocks, step-ups).
    own_logins: RateLimiter,
    /// Connections that proved a factor for a change (`step_up`).
    step_ups: conversation::StepUps,
}

/// A pending factor whose confirmation is a device's work.
struct DeviceEnrolment {
    user: String,
    kind: FactorKind,
    state: Box<dyn Any + Send>,
    work: ResponseWork,
    expires: u64,
}

/// What confirming an enrolment came to.
pub enum Confirmed {
    Done(FactorInfo),
    /// A device is still at work; ask again when `Waiter` is ready.
    Waiting(Waiter),
}

impl Service {
    pub fn new(
        config: Config,
        store: Arc<dyn Store>,
        clock: Arc<dyn Clock>,
        audit: Audit,
    ) -> Service {
        let audit = match store.history() {
            Ok(history) => audit.with_history(history, clock.clone()),
            Err(e) => {
                audit.message(
                    crate::audit::Severity::Error,
                    &format!("audit history unavailable, syslog only: {e}"),
                );
                audit
            }
        };
        let hostname = crate::store::hostname();
        let changes = RateLimiter::new(config.limits.changes_burst, config.limits.changes_per_hour);
        let own_logins = RateLimiter::new(
            config.limits.own_logins_burst,
            config.limits.own_logins_per_hour,
        );
        Service {
            logins: Mutex::new(Logins::new(config.login.timeout)),
            mechanisms: Mechanisms::from_config(&config, &hostname, &store),
            device_enrolments: Mutex::new(HashMap::new()),
            notifier: Notifier::new(config.notify.command.clone()),
            policy: RwLock::new(Arc::new(config.policy.clone())),
            config_path: None,
            config,
            store,
            clock,
            audit,
            hostname,
            directory: Arc::new(Nss),
            lookups_waiting: Arc::new(AtomicUsize::new(0)),
            changes,
            own_logins,
            step_ups: conversation::StepUps::default(),
        }
    }

    /// The same service, reloading its policy from `path` when asked.
    pub fn with_config_path(mut self, path: PathBuf) -> Service {
        self.config_path = Some(path);
        self
    }

    /// The same service with these mechanisms (tests give keys of their own).
    pub fn with_mechanisms(mut self, mechanisms: Mechanisms) -> Service {
        self.mechanisms = mechanisms;
        self
    }

    /// The policy in force now.
    pub fn policy(&self) -> Arc<Policy> {
        Arc::clone(&self.policy.read().unwrap_or_else(|p| p.into_inner()))
    }

    /// The same service, with group membership from `directory`.
    pub fn with_directory(mut self, directory: Arc<dyn Directory>) -> Service {
        self.directory = directory;
        self
    }

    pub fn directory(&self) -> &dyn Directory {
        self.directory.as_ref()
    }

    /// `user`'s uid for the audit log of changes made during their login.
    fn uid_of(&self, user: &str) -> u32 {
        nix::unistd::User::from_name(user)
            .ok()
            .flatten()
            .map(|u| u.uid.as_raw())
            .unwrap_or(u32::MAX)
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    pub fn audit(&self) -> &Audit {
        &self.audit
    }

    fn logins(&self) -> MutexGuard<'_, Logins> {
        self.logins.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn device_enrolments(&self) -> MutexGuard<'_, HashMap<String, DeviceEnrolment>> {
        self.device_enrolments
            .lock()
            .unwrap_or_else(|p| p.into_inner())
    }

    /// A fresh batch of recovery codes for `user`, replacing any earlier
    /// batch; returned once, kept only as hashes.
    pub fn generate_recovery_codes(
        &self,
        caller_uid: u32,
        user: &str,
    ) -> Result<Vec<String>, DaemonError> {
        let (codes, hashes) = recovery::new_batch().map_err(DaemonError::Internal)?;
        self.store
            .replace_recovery_codes(user, &hashes, self.clock.now())?;
        let count = codes.len().to_string();
        self.audit
            .change("recovery-codes", caller_uid, user, &[("count", &count)]);
        Ok(codes)
    }

    /// Count one change `caller_uid` makes to their own account against
    /// `[limits]`; refused past it. root is not limited. The first refusal
    /// of a run is logged and audited, the rest are not: a flood of refused
    /// calls writes nothing.
    pub fn limit_change(&self, caller_uid: u32, user: &str) -> Result<(), DaemonError> {
        if caller_uid == 0 {
            return Ok(());
        }
        let Err(limited) = self.changes.spend(caller_uid, self.clock.now()) else {
            return Ok(());
        };
        if limited.first {
            self.audit.change(
                "rate-limited",
                caller_uid,
                user,
                &[("retry_after", &limited.retry_after.to_string())],
            );
        }
        Err(DaemonError::LimitReached(format!(
            "too many changes to this account in a short time; try again in {} s",
            limited.retry_after
        )))
    }

    fn factor_limits(&self) -> FactorLimits {
        FactorLimits {
            max_pending: self.config.limits.max_pending,
            max_factors: self.config.limits.max_factors,
        }
    }

    fn lockout(&self) -> Lockout {
        Lockout {
            max_failures: self.config.lockout.max_failures,
            unlock_after: self.config.lockout.unlock_after,
        }
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
        self.begin_enrolment_with_text(caller_uid, user, kind, label, options)
            .map(|(offer, _, _)| offer)
    }

    /// [`Service::begin_enrolment`], with the text a login shows for it and
    /// the prompt for its code.
    fn begin_enrolment_with_text(
        &self,
        caller_uid: u32,
        user: &str,
        kind: &str,
        label: &str,
        options: &EnrolOptions,
    ) -> Result<(EnrolmentOffer, String, &'static str), DaemonError> {
        let kind = FactorKind::from_name(kind).ok_or_else(|| {
            DaemonError::InvalidArgument(format!(
                "unknown factor kind {kind:?}; use {}",
                FactorKind::choices()
            ))
        })?;
        let (label, new) = self.make_factor(user, kind, label, options)?;
        let now = self.clock.now();
        let factor = FactorRecord {
            id: new_id()?,
            user: user.to_string(),
            kind,
            label: label.to_string(),
            counter: new.counter,
            data: new.data,
            confirmed: false,
            approved: false,
            created: now,
            last_used: 0,
            expires: now + self.config.enrolment.pending_expiry,
        };
        let replaced = match self.store.insert_pending(&factor, self.factor_limits())? {
            Inserted::Added { replaced } => replaced,
            Inserted::TooManyFactors => return Err(self.too_many_factors()),
        };
        let mut devices = self.device_enrolments();
        devices.retain(|id, d| !replaced.contains(id) && d.expires > now);
        if let Some(work) = new.work {
            devices.insert(
                factor.id.clone(),
                DeviceEnrolment {
                    user: user.to_string(),
                    kind,
                    state: new.state,
                    work,
                    expires: factor.expires,
                },
            );
        }
        drop(devices);
        let replaced = replaced.join(",");
        let mut fields = vec![
            ("factor", factor.id.as_str()),
            ("method", kind.name()),
            ("state", "pending"),
        ];
        if !replaced.is_empty() {
            fields.push(("replaced", &replaced));
        }
        self.audit.change("enrol", caller_uid, user, &fields);
        let offer = EnrolmentOffer {
            id: factor.id,
            label: factor.label,
            expires: factor.expires,
            ..new.offer
        };
        Ok((offer, new.login_text, new.login_prompt))
    }

    /// A new factor of `kind` for `user` from `options`, as its mechanism
    /// makes it (not stored yet), and its label (`kind` when empty).
    fn make_factor<'a>(
        &self,
        user: &str,
        kind: FactorKind,
        label: &'a str,
        options: &EnrolOptions,
    ) -> Result<(&'a str, crate::mechanism::NewFactor), DaemonError> {
        let mechanism = self.mechanisms.get(kind).ok_or_else(|| {
            DaemonError::InvalidArgument(format!(
                "{kind} factors are not enabled in this mfad (mfad.toml(5))"
            ))
        })?;
        let label = if label.is_empty() { kind.name() } else { label };
        if label.chars().count() > MAX_LABEL || label.chars().any(char::is_control) {
            return Err(DaemonError::InvalidArgument(format!(
                "label must be at most {MAX_LABEL} characters, without control characters"
            )));
        }
        let new = mechanism
            .enrol(&EnrolRequest {
                user,
                label,
                options,
                account: &account_name(user, &self.hostname, label, kind),
                issuer: &self.config.enrolment.issuer,
                now: self.clock.now(),
            })
            .map_err(|e| match e {
                EnrolError::Invalid(m) => DaemonError::InvalidArgument(m),
                EnrolError::Failed(m) => DaemonError::DeviceFailed(m),
            })?;
        Ok((label, new))
    }

    /// `user` is someone this machine knows (an admin named them).
    fn known_user(&self, user: &str) -> Result<(), DaemonError> {
        match self.directory.user(user) {
            Ok(Some(_)) => Ok(()),
            Ok(None) => Err(DaemonError::NotFound(format!("no user {user:?} here"))),
            Err(e) => Err(DaemonError::Internal(format!(
                "cannot look up {user:?}: {e}"
            ))),
        }
    }

    /// Confirm `user`'s pending factor `id`: with a code, or — for a factor
    /// a device confirms — with what the device made (`code` empty).
    pub fn confirm_enrolment(
        &self,
        caller_uid: u32,
        user: &str,
        id: &str,
        code: &str,
    ) -> Result<Confirmed, DaemonError> {
        let now = self.clock.now();
        if code.len() > MAX_ANSWER {
            return Err(DaemonError::WrongCode(PENDING));
        }
        let device = {
            let mut devices = self.device_enrolments();
            match devices.get(id) {
                Some(d) if d.user == user && !d.work.is_done() => {
                    return Ok(Confirmed::Waiting(d.work.waiter()))
                }
                Some(d) if d.user == user => devices.remove(id),
                _ => None,
            }
        };
        let outcome = match device {
            Some(d) => match d.work.take() {
                Some(Ok(response)) => {
                    let mechanism = self.mechanisms.get(d.kind).ok_or_else(|| {
                        DaemonError::Internal(format!("{} is not enabled", d.kind))
                    })?;
                    self.store
                        .confirm(user, id, now, self.factor_limits(), &mut |f| {
                            mechanism.verify(f, d.state.as_ref(), &response, now)
                        })?
                }
                failed => {
                    let why = match failed {
                        Some(Err(why)) => why,
                        _ => "the device's result was lost".to_string(),
                    };
                    self.store.remove_factor(user, id)?;
                    self.audit.change(
                        "confirm-failed",
                        caller_uid,
                        user,
                        &[("factor", id), ("reason", "device-failed"), ("error", &why)],
                    );
                    return Err(DaemonError::DeviceFailed(format!(
                        "{why}; the enrolment was dropped, start again with mfactl enrol"
                    )));
                }
            },
            None => self.confirm_with(user, id, now, &Response::Text(code.to_string()))?,
        };
        match outcome {
            Confirmation::Confirmed(factor) => {
                self.audit.change(
                    "confirm",
                    caller_uid,
                    user,
                    &[("factor", &factor.id), ("method", factor.kind.name())],
                );
                Ok(Confirmed::Done(info(&factor)))
            }
            Confirmation::WrongCode => {
                self.audit.change(
                    "confirm-failed",
                    caller_uid,
                    user,
                    &[("factor", id), ("reason", "wrong-code")],
                );
                Err(DaemonError::WrongCode(PENDING))
            }
            Confirmation::NotFound => Err(DaemonError::NotFound(format!(
                "no pending enrolment {id:?} (it may have expired, or a newer one replaced it)"
            ))),
            Confirmation::TooManyFactors => Err(self.too_many_factors()),
        }
    }

    /// Confirm the pending factor `id` of `user` with `response`.
    fn confirm_with(
        &self,
        user: &str,
        id: &str,
        now: u64,
        response: &Response,
    ) -> Result<Confirmation, StoreError> {
        self.store
            .confirm(
                user,
                id,
                now,
                self.factor_limits(),
                &mut |f| match self.mechanisms.get(f.kind) {
                    Some(mechanism) => mechanism.verify(f, &(), response, now),
                    None => Verdict::Reject,
                },
            )
    }

    fn too_many_factors(&self) -> DaemonError {
        DaemonError::LimitReached(format!(
            "this account has {} factors, the most [limits] max_factors allows; remove one first",
            self.config.limits.max_factors
        ))
    }

    pub fn list_factors(&self, user: &str) -> Result<Vec<FactorInfo>, DaemonError> {
        let factors = self.store.factors(user, self.clock.now())?;
        let (_, chosen) = self.store.settings(user)?;
        // The factor asked first: the chosen one while it exists, else the oldest.
        let confirmed = || factors.iter().filter(|f| f.confirmed);
        let preferred = chosen
            .filter(|id| confirmed().any(|f| &f.id == id))
            .or_else(|| confirmed().next().map(|f| f.id.clone()));
        Ok(factors
            .iter()
            .map(|f| FactorInfo {
                preferred: preferred.as_deref() == Some(f.id.as_str()),
                ..info(f)
            })
            .collect())
    }

    /// The check value of `user`'s confirmed OTP factor `id`: its code for
    /// counter 0. Once confirmed, counter 0 is behind the factor (HOTP) or
    /// decades ago (TOTP): it never logs in.
    pub fn check_value(&self, user: &str, id: &str) -> Result<String, DaemonError> {
        let factor = self
            .store
            .factor(user, id)?
            .ok_or_else(|| DaemonError::NotFound(format!("no confirmed factor {id}")))?;
        match &factor.data {
            FactorData::Otp(p) if factor.counter > 0 || factor.kind == FactorKind::Totp => Ok(
                crate::mechanism::otpauth::check_value(&p.secret, p.algorithm, p.digits),
            ),
            FactorData::Otp(_) => Err(DaemonError::PolicyDenied(format!(
                "factor {id} has not moved past counter 0: its check value would be a valid code; log in with it once first"
            ))),
            _ => Err(DaemonError::InvalidArgument(format!(
                "factor {id} is a {}: only TOTP and HOTP factors have a check value",
                factor.kind
            ))),
        }
    }

    /// Move `user`'s factor `id` to where two consecutive codes are found
    /// (HOTP: up to 1000 ahead; TOTP: within `[totp].max_drift`), which
    /// also resets a learned drift.
    pub fn resync(
        &self,
        caller_uid: u32,
        user: &str,
        id: &str,
        first: &str,
        second: &str,
    ) -> Result<(), DaemonError> {
        if first.len() > MAX_ANSWER || second.len() > MAX_ANSWER {
            return Err(DaemonError::WrongCode(UNMOVED));
        }
        let now = self.clock.now();
        match self.store.advance_factor(user, id, &mut |f| {
            self.mechanisms
                .get(f.kind)
                .and_then(|m| m.resync(f, first, second, now))
        })? {
            Advanced::Moved(factor) => {
                self.audit.change(
                    "resync",
                    caller_uid,
                    user,
                    &[
                        ("factor", id),
                        ("method", factor.kind.name()),
                        (
                            "drift",
                            &factor.otp().map(|p| p.drift).unwrap_or(0).to_string(),
                        ),
                    ],
                );
                Ok(())
            }
            Advanced::NotFound => Err(DaemonError::NotFound(format!(
                "{user} has no active factor {id:?}"
            ))),
            Advanced::Unchanged => {
                self.audit.change(
                    "resync-failed",
                    caller_uid,
                    user,
                    &[("factor", id), ("reason", "codes-not-found")],
                );
                Err(DaemonError::WrongCode(UNMOVED))
            }
        }
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

/// The account name an authenticator app shows for the factor: the user,
/// the host, and the label when it says more than the method's name.
fn account_name(user: &str, hostname: &str, label: &str, kind: FactorKind) -> String {
    if label == kind.name() {
        format!("{user}@{hostname}")
    } else {
        format!("{user}@{hostname} ({label})")
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
        approved: f.approved,
        preferred: false,
    }
}

/// 64 random bits, hex: short enough to type, unguessable enough for an id
/// (of a factor or a device) that is only ever used with its owner's name.
pub(crate) fn new_id() -> Result<String, DaemonError> {
    let mut bytes = [0u8; 8];
    crate::random::fill(&mut bytes)
        .map_err(|e| DaemonError::Internal(format!("no randomness: {e}")))?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

#[cfg(test)]
mod tests;
