//! A login: the policy decides at Start what the user is asked, then each
//! answer moves the conversation on (a code, the choice of another method,
//! yes or no to setting up a factor, the first code of a new factor).

use super::{Service, MAX_ANSWER};
use crate::error::DaemonError;
use crate::login::{self, Phase, Refused, Session};
use crate::mechanism::recovery;
use crate::mechanism::FactorKind;
use crate::policy::{
    decide, Decision, Device, FactorState, LookupError, Memberships, Outcome, Policy, Refusal,
    Skip, Subject,
};
use crate::store::{CodeCheck, Confirmation, RecoveryUse, StoreError};
use mfa_dbus::{DenyReason, EnrolOptions, LoginRequest, Step};
use std::collections::VecDeque;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

/// Directory lookups that may hang at once before new ones fail outright.
const MAX_WAITING_LOOKUPS: usize = 16;

/// The next step after an answer, and whether the answer failed (a wrong,
/// replayed or refused code): failures get mfad's minimum duration.
#[derive(Debug, PartialEq)]
pub struct Answered {
    pub step: Step,
    pub failure: bool,
}

impl Answered {
    fn ok(step: Step) -> Answered {
        Answered {
            step,
            failure: false,
        }
    }
    fn failed(step: Step) -> Answered {
        Answered {
            step,
            failure: true,
        }
    }
}

/// What checking a code found, whatever its kind.
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

impl Service {
    /// What policy says about `request` now, with the user's state from the
    /// store; `Err` only when the store cannot be read.
    pub fn decide(&self, request: &LoginRequest) -> Result<Decision, StoreError> {
        let now = self.clock.now();
        let policy = self.policy();
        let (state, memberships) = if policy.enabled {
            (
                self.store.policy_state(&request.user, now)?,
                self.memberships(&policy, &request.user),
            )
        } else {
            Default::default()
        };
        let subject = Subject {
            user: &request.user,
            service: &request.service,
            rhost: &request.rhost,
            auth_info: &request.auth_info,
        };
        Ok(decide(&policy, &memberships, subject, &state, now))
    }

    /// Whether starting a login may wait on the directory (the policy has
    /// group rules): then it belongs off the async runtime's threads.
    pub fn start_may_block(&self) -> bool {
        let policy = self.policy();
        policy.enabled && !policy.groups.is_empty()
    }

    /// `user`'s membership of the groups `policy` names, within its
    /// `lookup_timeout`. A lookup that hangs is left to finish on its own
    /// thread, and counts as failed; once [`MAX_WAITING_LOOKUPS`] hang, new
    /// ones fail at once rather than pile up threads.
    fn memberships(&self, policy: &Arc<Policy>, user: &str) -> Memberships {
        if policy.groups.is_empty() {
            return Memberships::default();
        }
        let waiting = Arc::clone(&self.lookups_waiting);
        if waiting.fetch_add(1, Ordering::SeqCst) >= MAX_WAITING_LOOKUPS {
            waiting.fetch_sub(1, Ordering::SeqCst);
            return Memberships::failed(
                policy,
                LookupError::new(
                    "the directory",
                    format!("{MAX_WAITING_LOOKUPS} earlier lookups are still waiting for it"),
                ),
            );
        }
        let (tx, rx) = std::sync::mpsc::channel();
        let (directory, for_thread, name) = (
            Arc::clone(&self.directory),
            Arc::clone(policy),
            user.to_string(),
        );
        let spawned = std::thread::Builder::new()
            .name("mfad-lookup".into())
            .spawn(move || {
                let found = Memberships::look_up(directory.as_ref(), &for_thread, &name);
                waiting.fetch_sub(1, Ordering::SeqCst);
                let _ = tx.send(found);
            });
        if let Err(e) = spawned {
            self.lookups_waiting.fetch_sub(1, Ordering::SeqCst);
            return Memberships::failed(
                policy,
                LookupError::new("the directory", format!("no thread for the lookup: {e}")),
            );
        }
        let limit = Duration::from_secs(policy.lookup_timeout);
        rx.recv_timeout(limit).unwrap_or_else(|_| {
            Memberships::failed(
                policy,
                LookupError::new(
                    format!("the groups of user {user:?}"),
                    format!(
                        "no answer within {} s ([policy] lookup_timeout)",
                        policy.lookup_timeout
                    ),
                ),
            )
        })
    }

    /// Begin a login for `request`, owned by the bus connection `owner`.
    pub fn start_login(
        &self,
        owner: &str,
        request: LoginRequest,
    ) -> Result<(String, Step), DaemonError> {
        login::validate_request(&request)?;
        let decision = match self.decide(&request) {
            Ok(d) => d,
            Err(e) => return Ok((String::new(), self.store_failed(&request, &e))),
        };
        let rule = decision
            .rule
            .as_ref()
            .map(ToString::to_string)
            .unwrap_or_default();
        let (phase, steps) = match decision.outcome {
            Outcome::Skip(skip) => {
                if skip == Skip::TrustedDevice {
                    self.touch_device(&request);
                }
                self.audit.login(
                    &request,
                    "allow",
                    &[("reason", &skip.reason()), ("rule", &rule)],
                );
                return Ok((String::new(), Step::allow()));
            }
            Outcome::Refuse(refusal) => {
                let (reason, text) = match &refusal {
                    Refusal::NotEnrolled => (DenyReason::NotEnrolled, login::NOT_ENROLLED_TEXT),
                    Refusal::NotApproved => (DenyReason::NotEnrolled, login::NOT_APPROVED_TEXT),
                    Refusal::NoMethod => (DenyReason::NotEnrolled, login::NO_METHOD_TEXT),
                    Refusal::Lookup(_) => (DenyReason::Internal, login::DIRECTORY_TEXT),
                };
                let error = match &refusal {
                    Refusal::Lookup(e) => e.to_string(),
                    _ => String::new(),
                };
                let mut fields = vec![("reason", refusal.reason()), ("rule", rule.as_str())];
                if !error.is_empty() {
                    fields.push(("error", &error));
                }
                self.audit.login(&request, "deny", &fields);
                return Ok((String::new(), Step::deny(reason, text)));
            }
            Outcome::Ask { factors, remember } => {
                let prompt = code_prompt(&factors, 0, false);
                let phase = Phase::Code {
                    factors,
                    selected: 0,
                    remember,
                };
                (phase, vec![prompt])
            }
            Outcome::Offer { kind } => {
                let can_enrol = self.policy().enrol_at_login;
                let steps = if can_enrol {
                    vec![
                        Step::info(login::ENCOURAGE_TEXT),
                        Step::prompt(login::ENCOURAGE_PROMPT, true),
                    ]
                } else {
                    vec![
                        Step::info(format!(
                            "{}\n{}",
                            login::ENCOURAGE_TEXT,
                            login::ENCOURAGE_LATER_TEXT
                        )),
                        Step::prompt(login::CONTINUE_PROMPT, true),
                    ]
                };
                (Phase::Offer { kind, can_enrol }, steps)
            }
            Outcome::Enrol { kind } => match self.enrol_at_login(&request, kind) {
                Ok((phase, mut steps)) => {
                    steps.insert(0, Step::info(login::FORCE_TEXT));
                    (phase, steps)
                }
                Err(e) => {
                    self.audit.login(
                        &request,
                        "deny",
                        &[("reason", "enrolment-failed"), ("error", &e.to_string())],
                    );
                    return Ok((
                        String::new(),
                        Step::deny(DenyReason::Internal, login::INTERNAL_TEXT),
                    ));
                }
            },
        };
        let request_tries = request.max_tries;
        let mut queued: VecDeque<Step> = steps.into();
        let first = queued.pop_front().unwrap_or_else(Step::allow);
        let session = Session {
            owner: owner.to_string(),
            request,
            started: self.clock.now(),
            tries_left: match request_tries {
                0 => self.config.login.max_tries,
                asked => asked.min(self.config.login.max_tries),
            },
            phase,
            queued,
        };
        let handle = self.logins().open(session).map_err(DaemonError::Internal)?;
        Ok((handle, first))
    }

    /// The user's answer to the current step of login `handle`.
    pub fn answer(&self, owner: &str, handle: &str, answer: &str) -> Result<Answered, DaemonError> {
        let now = self.clock.now();
        let mut session = match self.logins().take(owner, handle, now) {
            Ok(s) => s,
            Err(Refused::Unknown) => return Err(DaemonError::UnknownHandle),
            Err(Refused::Expired(s)) => {
                self.audit
                    .login(&s.request, "deny", &[("reason", "expired")]);
                return Ok(Answered::failed(Step::deny(
                    DenyReason::Expired,
                    login::EXPIRED_TEXT,
                )));
            }
        };
        // An info text was shown; its prompt comes next, whatever came back.
        if let Some(step) = session.queued.pop_front() {
            self.logins().restore(handle.to_string(), session);
            return Ok(Answered::ok(step));
        }
        let answered = match session.phase.clone() {
            Phase::Code {
                factors,
                selected,
                remember,
            } => {
                if answer.is_empty() && factors.len() > 1 {
                    session.phase = Phase::Choose { factors, remember };
                    Answered::ok(choose_prompt(&session.phase))
                } else {
                    return Ok(self.answer_code(
                        handle,
                        session,
                        answer,
                        now,
                        (&factors, selected, remember.as_ref()),
                    ));
                }
            }
            Phase::Choose { factors, remember } => match answer.trim().parse::<usize>() {
                Ok(n) if (1..=factors.len()).contains(&n) => {
                    let prompt = code_prompt(&factors, n - 1, false);
                    session.phase = Phase::Code {
                        factors,
                        selected: n - 1,
                        remember,
                    };
                    Answered::ok(prompt)
                }
                _ => Answered::ok(choose_prompt(&session.phase)),
            },
            Phase::Offer { kind, can_enrol } => {
                let yes = matches!(answer.trim().to_ascii_lowercase().as_str(), "y" | "yes");
                if !(yes && can_enrol) {
                    self.audit.login(
                        &session.request,
                        "allow",
                        &[("reason", "encourage-declined")],
                    );
                    return Ok(Answered::ok(Step::allow()));
                }
                match self.enrol_at_login(&session.request, kind) {
                    Ok((phase, steps)) => {
                        session.phase = phase;
                        session.queued = steps.into();
                        match session.queued.pop_front() {
                            Some(step) => Answered::ok(step),
                            None => Answered::ok(Step::allow()),
                        }
                    }
                    Err(e) => {
                        self.audit.login(
                            &session.request,
                            "deny",
                            &[("reason", "enrolment-failed"), ("error", &e.to_string())],
                        );
                        return Ok(Answered::failed(Step::deny(
                            DenyReason::Internal,
                            login::INTERNAL_TEXT,
                        )));
                    }
                }
            }
            Phase::Confirm { factor } => {
                return Ok(self.answer_confirm(handle, session, &factor, answer, now));
            }
        };
        self.logins().restore(handle.to_string(), session);
        Ok(answered)
    }

    /// Set up a pending factor of `kind` for the user logging in: the steps
    /// show its QR code and secret, then ask for its first code. sshd shows
    /// info texts only together with the next prompt, so every info text is
    /// followed by one.
    fn enrol_at_login(
        &self,
        request: &LoginRequest,
        kind: FactorKind,
    ) -> Result<(Phase, Vec<Step>), DaemonError> {
        let uid = self.uid_of(&request.user);
        let offer = self.begin_enrolment(
            uid,
            &request.user,
            kind.name(),
            "",
            &EnrolOptions::default(),
        )?;
        let qr = mfa_qr::render(&offer.uri, mfa_qr::Palette::Plain)
            .map_err(|e| DaemonError::Internal(format!("QR code: {e}")))?;
        let timing = match kind {
            FactorKind::Totp => format!("time-based, every {} s", offer.period),
            FactorKind::Hotp => "counter-based".to_string(),
        };
        let text = format!(
            "Scan this QR code with an authenticator app, or type in the secret.\n{qr}Secret: {}\n({}, {} digits, {timing})",
            offer.secret_base32, offer.algorithm, offer.digits
        );
        Ok((
            Phase::Confirm { factor: offer.id },
            vec![Step::info(text), Step::prompt(login::CONFIRM_PROMPT, false)],
        ))
    }

    fn answer_confirm(
        &self,
        handle: &str,
        mut session: Session,
        factor: &str,
        answer: &str,
        now: u64,
    ) -> Answered {
        let user = session.request.user.clone();
        let outcome = if answer.len() > MAX_ANSWER {
            Ok(Confirmation::WrongCode)
        } else {
            self.store
                .confirm(&user, factor, now, self.factor_limits(), |f| {
                    self.mechanism(f.kind).verify(&f.params, answer, now)
                })
        };
        match outcome {
            Ok(Confirmation::Confirmed(f)) => {
                self.audit.change(
                    "confirm",
                    self.uid_of(&user),
                    &user,
                    &[
                        ("factor", &f.id),
                        ("method", f.kind.name()),
                        ("at", "login"),
                    ],
                );
                self.audit.login(
                    &session.request,
                    "allow",
                    &[("reason", "enrolled-at-login"), ("factor", &f.id)],
                );
                Answered::ok(Step {
                    text: login::ENROLLED_TEXT.into(),
                    ..Step::allow()
                })
            }
            Ok(Confirmation::WrongCode) => {
                session.tries_left = session.tries_left.saturating_sub(1);
                if session.tries_left == 0 {
                    self.audit.login(
                        &session.request,
                        "deny",
                        &[("reason", "max-tries"), ("phase", "enrolment")],
                    );
                    return Answered::failed(Step::deny(
                        DenyReason::MaxTries,
                        login::MAX_TRIES_TEXT,
                    ));
                }
                self.audit.login(
                    &session.request,
                    "retry",
                    &[("reason", "wrong-code"), ("phase", "enrolment")],
                );
                self.logins().restore(handle.to_string(), session);
                Answered::failed(Step::prompt(login::CONFIRM_RETRY_PROMPT, false))
            }
            Ok(Confirmation::NotFound) => {
                self.audit.login(
                    &session.request,
                    "deny",
                    &[("reason", "expired"), ("phase", "enrolment")],
                );
                Answered::failed(Step::deny(DenyReason::Expired, login::EXPIRED_TEXT))
            }
            Ok(Confirmation::TooManyFactors) => {
                self.audit.login(
                    &session.request,
                    "deny",
                    &[("reason", "too-many-factors"), ("phase", "enrolment")],
                );
                Answered::failed(Step::deny(
                    DenyReason::Internal,
                    login::TOO_MANY_FACTORS_TEXT,
                ))
            }
            Err(e) => Answered::failed(self.store_failed(&session.request, &e)),
        }
    }

    fn answer_code(
        &self,
        handle: &str,
        mut session: Session,
        answer: &str,
        now: u64,
        (factors, selected, remember): (&[FactorState], usize, Option<&Device>),
    ) -> Answered {
        let user = session.request.user.clone();
        let factor_id = factors.get(selected).map(|f| f.id.as_str()).unwrap_or("");
        let checked = match recovery::normalise(answer) {
            Some(code) => self.check_recovery_code(&user, &code, now),
            None => self.check_otp(&user, factor_id, answer, now),
        };
        match checked {
            Ok(Checked::Accepted {
                method,
                detail,
                note,
            }) => {
                let mut fields = vec![("method", method), (detail.0, detail.1.as_str())];
                if let Some(device) = remember {
                    let days = u64::from(self.policy().remember_days);
                    let trusted = super::new_id().map_err(|e| e.to_string()).and_then(|id| {
                        self.store
                            .trust_device(&user, &device.key, &id, now, now + days * 86_400)
                            .map_err(|e| e.to_string())
                    });
                    match trusted {
                        Ok(()) => fields.push(("device", "remembered")),
                        // The login itself succeeded; only the convenience is lost.
                        Err(_) => fields.push(("device", "not-remembered-store-error")),
                    }
                }
                self.audit.login(&session.request, "allow", &fields);
                Answered::ok(Step {
                    text: note,
                    ..Step::allow()
                })
            }
            // Locked: the answer was not even looked at; right and wrong
            // codes get this same step.
            Ok(Checked::Locked) => {
                self.audit
                    .login(&session.request, "deny", &[("reason", "locked")]);
                Answered::failed(Step::deny(DenyReason::Locked, login::LOCKED_TEXT))
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
                Answered::failed(Step::deny(DenyReason::Locked, login::LOCKED_TEXT))
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
                    return Answered::failed(Step::deny(
                        DenyReason::MaxTries,
                        login::MAX_TRIES_TEXT,
                    ));
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
                Answered::failed(code_prompt(factors, selected, true))
            }
            Err(e) => Answered::failed(self.store_failed(&session.request, &e)),
        }
    }

    /// An OTP code against the factor `factor_id`, in one store transaction.
    fn check_otp(
        &self,
        user: &str,
        factor_id: &str,
        answer: &str,
        now: u64,
    ) -> Result<Checked, StoreError> {
        // An answer too long to be a code is a wrong code, and counted.
        let plausible = answer.len() <= MAX_ANSWER;
        let checked = self.store.check_code(user, now, self.lockout(), |f| {
            if plausible && f.id == factor_id {
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

    /// The store could not be read or written: refuse, and say why in the log.
    fn store_failed(&self, request: &LoginRequest, e: &StoreError) -> Step {
        self.audit.login(
            request,
            "deny",
            &[("reason", "store-error"), ("error", &e.to_string())],
        );
        Step::deny(DenyReason::Internal, login::INTERNAL_TEXT)
    }

    fn touch_device(&self, request: &LoginRequest) {
        if let Some(device) = Device::identify(&request.auth_info, &request.rhost) {
            // Only the "last used" column; a failure here changes no decision.
            let _ = self
                .store
                .touch_device(&request.user, &device.key, self.clock.now());
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

    /// The bus connection `owner` closed: its logins can never be answered.
    pub fn connection_gone(&self, owner: &str) {
        let dropped = self.logins().drop_owner(owner);
        for session in dropped {
            self.audit.login(
                &session.request,
                "cancel",
                &[("reason", "connection-closed")],
            );
        }
    }

    /// Drop logins past their time limit.
    pub fn sweep(&self) {
        let now = self.clock.now();
        self.logins().sweep(now);
    }
}

/// The prompt for a code of `factors[selected]`. With one factor it is the
/// plain prompt; with several it names the factor and says how to switch.
fn code_prompt(factors: &[FactorState], selected: usize, retry: bool) -> Step {
    let text = match factors.get(selected).filter(|_| factors.len() > 1) {
        None if retry => login::RETRY_PROMPT.to_string(),
        None => login::PROMPT.to_string(),
        Some(f) => format!(
            "{}Verification code ({}; empty answer for other methods): ",
            if retry { "Wrong code. " } else { "" },
            f.label
        ),
    };
    Step::prompt(text, false)
}

fn choose_prompt(phase: &Phase) -> Step {
    let Phase::Choose { factors, .. } = phase else {
        return Step::prompt(login::CHOOSE_PROMPT, true);
    };
    let mut text = String::from("Methods:\n");
    for (i, f) in factors.iter().enumerate() {
        text.push_str(&format!("  {}) {} ({})\n", i + 1, f.label, f.kind));
    }
    text.push_str("A recovery code can be typed at any code prompt.\n");
    text.push_str(login::CHOOSE_PROMPT);
    Step::prompt(text, true)
}
