//! A login: the policy decides at Start what the user is asked, then each
//! answer moves the conversation on — a response to a factor's challenge,
//! the choice of another method, yes or no to setting up a factor, the
//! first code of a new factor. What a response means is the mechanism's
//! business ([`Mechanism`](crate::mechanism::Mechanism)); slow work it starts (a key waiting for a
//! touch, a fallback's slow hashes) runs off the runtime, and the answer
//! that finds it unfinished is a poll that the bus layer holds.

mod decide;
mod factor;
mod step_up;

pub use step_up::StepUps;

use super::{Service, MAX_ANSWER};
use crate::error::DaemonError;
use crate::login::{self, Asking, Phase, Refused, Session};
use crate::mechanism::{FactorKind, FallbackUse, LoginContext, Next, Response, Waiter, Work};
use crate::policy::{Device, Outcome, Refusal, Skip};
use crate::store::{Confirmation, StoreError};
use mfa_dbus::{DenyReason, EnrolOptions, LoginRequest, Step};
use std::collections::VecDeque;

/// The next step after an answer; whether the answer failed (a wrong,
/// replayed or refused response: failures get mfad's minimum duration);
/// and, when the step is a [`StepKind::Wait`](mfa_dbus::StepKind::Wait) because work is under way,
/// what to wait on before asking again.
#[derive(Debug)]
pub struct Answered {
    pub step: Step,
    pub failure: bool,
    pub waiting: Option<Waiter>,
}

impl Answered {
    fn ok(step: Step) -> Answered {
        Answered {
            step,
            failure: false,
            waiting: None,
        }
    }
    fn failed(step: Step) -> Answered {
        Answered {
            step,
            failure: true,
            waiting: None,
        }
    }
    /// Work is under way: `text` for the user (empty on later polls).
    fn waiting(text: impl Into<String>, waiter: Waiter) -> Answered {
        Answered {
            step: Step::wait(text),
            failure: false,
            waiting: Some(waiter),
        }
    }
}

impl PartialEq for Answered {
    fn eq(&self, other: &Answered) -> bool {
        self.step == other.step && self.failure == other.failure
    }
}

impl Service {
    /// Begin a login for `request`, owned by the bus connection `owner`.
    pub fn start_login(
        &self,
        owner: &str,
        request: LoginRequest,
    ) -> Result<(String, Step), DaemonError> {
        self.start_login_from(owner, None, request)
    }

    /// [`Service::start_login`] from the PAM client process `pid`, which
    /// tells where the login runs (under sshd, or at the machine).
    pub fn start_login_from(
        &self,
        owner: &str,
        pid: Option<u32>,
        request: LoginRequest,
    ) -> Result<(String, Step), DaemonError> {
        login::validate_request(&request)?;
        let context = self.login_context(&request, pid);
        self.start_in(owner, context, None)
    }

    /// A screen locker's unlock: a login from a caller that is not root,
    /// for its own account (the bus layer checked that against the
    /// caller's uid). Only the user is believed: the service, remote host,
    /// remote user, tty and SSH info it sends are dropped (the claimed
    /// service goes to the audit), and the policy treats it as an unlock —
    /// no bypass, no trusted device, no enrolment. Failures count toward
    /// the same lockout; unlocks are counted against `[limits]`.
    pub fn start_unlock(
        &self,
        owner: &str,
        pid: Option<u32>,
        caller_uid: u32,
        request: LoginRequest,
    ) -> Result<(String, Step), DaemonError> {
        login::validate_request(&request)?;
        let claimed = request.service.clone();
        let request = LoginRequest {
            service: login::UNLOCK_SERVICE.into(),
            rhost: String::new(),
            ruser: String::new(),
            tty: String::new(),
            auth_info: String::new(),
            ..request
        };
        self.limit_own_login(caller_uid, &request, "unlock")?;
        self.audit.login(
            &request,
            "start",
            &[
                ("class", "unlock"),
                ("caller_uid", &caller_uid.to_string()),
                ("client_service", &claimed),
            ],
        );
        let context = LoginContext {
            unlock: true,
            ..self.login_context(&request, pid)
        };
        self.start_in(owner, context, Some(caller_uid))
    }

    /// Count one login `caller_uid` starts for their own account (`class`:
    /// a screen locker's unlock, a step-up) against `[limits]`; refused past
    /// it, before anything is written. Each one writes a few rows of audit
    /// history and log (start, its answers, its end), so the bucket bounds
    /// what one user's loop of Start and Cancel can grow. Root's PAM clients
    /// (sshd, sudo, login) never come here: their logins are never held up
    /// by what a user's own processes did. The first refusal of a run is
    /// logged and audited, the rest are not.
    fn limit_own_login(
        &self,
        caller_uid: u32,
        request: &LoginRequest,
        class: &str,
    ) -> Result<(), DaemonError> {
        if caller_uid == 0 {
            return Ok(());
        }
        let Err(limited) = self.own_logins.spend(caller_uid, self.clock.now()) else {
            return Ok(());
        };
        let retry_after = limited.retry_after.to_string();
        if limited.first {
            self.audit.login(
                request,
                "rate-limited",
                &[
                    ("class", class),
                    ("caller_uid", &caller_uid.to_string()),
                    ("retry_after", &retry_after),
                ],
            );
        }
        Err(DaemonError::LimitReached(format!(
            "too many unlocks and step-up proofs of this account in a short time; try again in {retry_after} s"
        )))
    }

    /// Begin the login of `context` for the connection `owner` (an unlock
    /// by `unlock_uid`).
    fn start_in(
        &self,
        owner: &str,
        context: LoginContext,
        unlock_uid: Option<u32>,
    ) -> Result<(String, Step), DaemonError> {
        let request = context.request.clone();
        if let Err(why) = self.clock.trusted() {
            self.audit.login(
                &request,
                "deny",
                &[("reason", "time-unavailable"), ("error", &why)],
            );
            return Ok((
                String::new(),
                Step::deny(DenyReason::Internal, login::TIME_TEXT),
            ));
        }
        let decision = match self.decide_at(&context) {
            Ok(d) => d,
            Err(e) => return Ok((String::new(), self.store_failed(&request, &e))),
        };
        let rule = decision
            .rule
            .as_ref()
            .map(ToString::to_string)
            .unwrap_or_default();
        let without_factor = matches!(
            decision.outcome,
            Outcome::Enrol { .. }
                | Outcome::Offer { .. }
                | Outcome::Refuse(Refusal::NotEnrolled)
                | Outcome::Skip(Skip::NotRequired)
        );
        let invited = match without_factor && !context.unlock {
            true => match self.invitation_at_login(&request) {
                Ok(invited) => invited,
                Err(e) => return Ok((String::new(), self.store_failed(&request, &e))),
            },
            false => None,
        };
        let (phase, steps) = match (invited, decision.outcome) {
            (Some(invited), _) => invited,
            (None, Outcome::Skip(skip)) => {
                if skip == Skip::TrustedDevice {
                    self.touch_device(&request);
                }
                self.audit.login(
                    &request,
                    "allow",
                    &[("reason", &skip.reason()), ("rule", &rule)],
                );
                // Nothing asked: the PAM line decides what that returns.
                return Ok((String::new(), Step::skip()));
            }
            (None, Outcome::Refuse(refusal)) => {
                let (reason, text) = match &refusal {
                    Refusal::NotEnrolled => (DenyReason::NotEnrolled, login::NOT_ENROLLED_TEXT),
                    Refusal::NotApproved => (DenyReason::NotEnrolled, login::NOT_APPROVED_TEXT),
                    Refusal::NoMethod => (DenyReason::NotEnrolled, login::NO_METHOD_TEXT),
                    Refusal::NoUsableFactor => {
                        (DenyReason::NotEnrolled, login::NO_USABLE_FACTOR_TEXT)
                    }
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
                // Why factors that need the user here were not offered.
                if let (Some(why), true) = (&context.remote, self.mechanisms.any_local_only()) {
                    fields.push(("not_local", why));
                }
                self.audit.login(&request, "deny", &fields);
                return Ok((String::new(), Step::deny(reason, text)));
            }
            (None, Outcome::Ask { factors, remember }) => {
                let asking = Asking { factors, remember };
                match self.challenge(&context, asking, 0, false) {
                    Ok((phase, step)) => (phase, vec![step]),
                    Err(e) => return Ok((String::new(), e)),
                }
            }
            (None, Outcome::Offer { kind }) => {
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
            (None, Outcome::Enrol { kind }) => match self.enrol_at_login(&request, kind) {
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
            remote: context.remote,
            unlock_uid,
            step_up: false,
            deadline: 0,
            started: self.clock.now(),
            tries_left: match request_tries {
                0 => self.config.login.max_tries,
                asked => asked.min(self.config.login.max_tries),
            },
            phase,
            queued,
        };
        let handle = self
            .logins()
            .open(session)
            .map_err(|login::Full(why)| DaemonError::LimitReached(why))?;
        Ok((handle, first))
    }

    /// The user's answer to the current step of login `handle` (an empty
    /// answer to a [`StepKind::Wait`](mfa_dbus::StepKind::Wait) step is a poll),
    /// which its caller waits for until `deadline` (see [`Session::deadline`]).
    pub fn answer(
        &self,
        owner: &str,
        handle: &str,
        answer: &str,
        deadline: u64,
    ) -> Result<Answered, DaemonError> {
        let now = self.clock.now();
        let mut session = match self.logins().take(owner, handle, now) {
            Ok(s) => Session { deadline, ..s },
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
        let phase = std::mem::replace(
            &mut session.phase,
            Phase::Confirm {
                factor: String::new(),
                prompt: "",
            },
        );
        let answered = match phase {
            Phase::Factor {
                asking,
                selected,
                challenge,
                code,
                work: Some(work),
                retry,
            } => match work.take() {
                None => {
                    let waiter = work.waiter();
                    session.phase = Phase::Factor {
                        asking,
                        selected,
                        challenge,
                        code,
                        work: Some(work),
                        retry,
                    };
                    Answered::waiting("", waiter)
                }
                Some(Ok(response)) => {
                    let mut challenge = challenge;
                    let next = asking
                        .factors
                        .get(selected)
                        .ok_or_else(|| "no factor to answer".to_string())
                        .and_then(|f| self.mechanism(f.kind))
                        .map(|m| m.worked(challenge.as_mut(), response));
                    return Ok(match next {
                        Ok(next) => self.go_on(
                            handle,
                            session,
                            (asking, selected),
                            challenge,
                            (next, retry),
                            now,
                        ),
                        Err(why) => self.device_failed(handle, session, asking, &why),
                    });
                }
                Some(Err(why)) => return Ok(self.device_failed(handle, session, asking, &why)),
            },
            Phase::Factor {
                asking,
                selected,
                challenge,
                code,
                work: None,
                retry: _,
            } => {
                if answer.is_empty() && asking.factors.len() > 1 {
                    let step = self.choose_prompt(&asking, None);
                    session.phase = Phase::Choose { asking };
                    Answered::ok(step)
                } else if let Some(fallback) = self.fallback_for(answer).filter(|_| code) {
                    if let Some(gone) = self.caller_gave_up(&session) {
                        return Ok(gone);
                    }
                    match self.start_fallback(&session.request, fallback, answer, now) {
                        Ok(work) => {
                            let waiter = work.waiter();
                            session.phase = Phase::Fallback {
                                asking,
                                selected,
                                name: fallback.name(),
                                work,
                                challenge,
                                answer: mfa_dbus::Answer::new(answer.to_string()),
                            };
                            Answered::waiting("", waiter)
                        }
                        Err(e) => return Ok(Answered::failed(self.internal(&session.request, &e))),
                    }
                } else {
                    return Ok(self.respond(
                        handle,
                        session,
                        (asking, selected),
                        challenge,
                        answer,
                        now,
                    ));
                }
            }
            Phase::Fallback {
                asking,
                selected,
                name,
                work,
                challenge,
                answer: typed,
            } => match work.take() {
                None => {
                    let waiter = work.waiter();
                    session.phase = Phase::Fallback {
                        asking,
                        selected,
                        name,
                        work,
                        challenge,
                        answer: typed,
                    };
                    Answered::waiting("", waiter)
                }
                Some(Ok(FallbackUse::NotMine)) => {
                    return Ok(self.respond(
                        handle,
                        session,
                        (asking, selected),
                        challenge,
                        typed.expose(),
                        now,
                    ));
                }
                Some(checked) => {
                    return Ok(self.fallback_checked(
                        handle,
                        session,
                        (asking, selected),
                        name,
                        checked,
                        now,
                    ));
                }
            },
            Phase::Choose { asking } => match answer.trim().parse::<usize>() {
                Ok(n) if (1..=asking.factors.len()).contains(&n) => {
                    match self.challenge(&session.context(now), asking, n - 1, false) {
                        Ok((phase, step)) => {
                            session.phase = phase;
                            Answered::ok(step)
                        }
                        Err(step) => return Ok(Answered::failed(step)),
                    }
                }
                _ => {
                    let step = self.choose_prompt(&asking, None);
                    session.phase = Phase::Choose { asking };
                    Answered::ok(step)
                }
            },
            Phase::Offer { kind, can_enrol } => {
                let yes = matches!(answer.trim().to_ascii_lowercase().as_str(), "y" | "yes");
                if !(yes && can_enrol) {
                    self.audit.login(
                        &session.request,
                        "allow",
                        &[("reason", "encourage-declined")],
                    );
                    return Ok(Answered::ok(Step::skip()));
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
            Phase::Confirm { factor, prompt } => {
                return Ok(self.answer_confirm(handle, session, (&factor, prompt), answer, now));
            }
        };
        self.logins().restore(handle.to_string(), session);
        Ok(answered)
    }

    /// `answer` as the response to the challenge of
    /// `asking.factors[selected]`: what its mechanism makes of it, then on.
    fn respond(
        &self,
        handle: &str,
        session: Session,
        (asking, selected): (Asking, usize),
        mut challenge: Box<dyn std::any::Any + Send>,
        answer: &str,
        now: u64,
    ) -> Answered {
        let next = if answer.len() > MAX_ANSWER {
            // Too long to be anything asked: a wrong answer, counted.
            Ok(Next::Check(Response::Text(String::new())))
        } else {
            asking
                .factors
                .get(selected)
                .ok_or_else(|| "no factor to answer".to_string())
                .and_then(|f| self.mechanism(f.kind))
                .and_then(|m| m.respond(challenge.as_mut(), answer.to_string()))
        };
        match next {
            Ok(next) => self.go_on(
                handle,
                session,
                (asking, selected),
                challenge,
                (next, false),
                now,
            ),
            Err(why) => self.device_failed(handle, session, asking, &why),
        }
    }

    /// Go on from what a mechanism made of an answer or of its work: check
    /// a response, ask something more (saying the last answer was wrong
    /// when `retry`), or begin the challenge again.
    fn go_on(
        &self,
        handle: &str,
        mut session: Session,
        (asking, selected): (Asking, usize),
        challenge: Box<dyn std::any::Any + Send>,
        (next, retry): (Next, bool),
        now: u64,
    ) -> Answered {
        let answered = match next {
            Next::Check(response) => {
                return self.commit(
                    handle,
                    session,
                    (asking, selected),
                    challenge,
                    response,
                    now,
                )
            }
            Next::Ask(ask) => {
                let (step, code, work) = self.put(&asking, selected, ask, retry);
                let waiter = work.as_ref().map(Work::waiter);
                session.phase = Phase::Factor {
                    asking,
                    selected,
                    challenge,
                    code,
                    work,
                    retry: false,
                };
                Answered {
                    step,
                    failure: false,
                    waiting: waiter,
                }
            }
            Next::Again => match self.challenge(&session.context(now), asking, selected, false) {
                Ok((phase, step)) => {
                    session.phase = phase;
                    let waiting = match &session.phase {
                        Phase::Factor { work: Some(w), .. } => Some(w.waiter()),
                        _ => None,
                    };
                    Answered {
                        step,
                        failure: false,
                        waiting,
                    }
                }
                Err(step) => return Answered::failed(step),
            },
        };
        self.logins().restore(handle.to_string(), session);
        answered
    }

    /// Set up a pending factor of `kind` for the user logging in: the steps
    /// show what the mechanism shows (a QR code and secret), then ask for
    /// its first code. sshd shows info texts only together with the next
    /// prompt, so every info text is followed by one.
    pub(super) fn enrol_at_login(
        &self,
        request: &LoginRequest,
        kind: FactorKind,
    ) -> Result<(Phase, Vec<Step>), DaemonError> {
        let uid = self.uid_of(&request.user);
        let (offer, login_text, prompt) = self.begin_enrolment_with_text(
            uid,
            &request.user,
            kind.name(),
            "",
            &EnrolOptions::default(),
        )?;
        Ok((
            Phase::Confirm {
                factor: offer.id,
                prompt,
            },
            vec![Step::info(login_text), Step::prompt(prompt, false)],
        ))
    }

    pub(super) fn answer_confirm(
        &self,
        handle: &str,
        mut session: Session,
        (factor, prompt): (&str, &'static str),
        answer: &str,
        now: u64,
    ) -> Answered {
        if let Some(gone) = self.caller_gave_up(&session) {
            return gone;
        }
        let user = session.request.user.clone();
        let outcome = if answer.len() > MAX_ANSWER {
            Ok(Confirmation::WrongCode)
        } else {
            self.confirm_with(&user, factor, now, &Response::Text(answer.to_string()))
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
                session.phase = Phase::Confirm {
                    factor: factor.to_string(),
                    prompt,
                };
                self.logins().restore(handle.to_string(), session);
                Answered::failed(Step::prompt(
                    format!("{}{prompt}", login::WRONG_CODE),
                    false,
                ))
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

    /// Whether the caller of `session`'s answer has stopped waiting: what it
    /// sent is then checked against nothing and spends nothing (the user
    /// was told the login failed); the login ends, audited.
    pub(super) fn caller_gave_up(&self, session: &Session) -> Option<Answered> {
        if session.deadline == 0 || mfa_dbus::monotonic_ms() < session.deadline {
            return None;
        }
        self.audit
            .login(&session.request, "cancel", &[("reason", "client-gave-up")]);
        Some(Answered::failed(Step::deny(
            DenyReason::Expired,
            login::EXPIRED_TEXT,
        )))
    }

    /// The store could not be read or written: refuse, and say why in the log
    /// (`store-unavailable`: it did not answer in time, or is not there).
    pub(super) fn store_failed(&self, request: &LoginRequest, e: &StoreError) -> Step {
        let reason = match e.is_unavailable() {
            true => "store-unavailable",
            false => "store-error",
        };
        self.audit.login(
            request,
            "deny",
            &[("reason", reason), ("error", &e.to_string())],
        );
        Step::deny(DenyReason::Internal, login::INTERNAL_TEXT)
    }

    /// Something that should not happen did: refuse, and say what in the log.
    pub(super) fn internal(&self, request: &LoginRequest, error: &str) -> Step {
        self.audit.login(
            request,
            "deny",
            &[("reason", "internal-error"), ("error", error)],
        );
        Step::deny(DenyReason::Internal, login::INTERNAL_TEXT)
    }

    pub(super) fn touch_device(&self, request: &LoginRequest) {
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

    /// The bus connection `owner` closed: its logins can never be answered
    /// (and the work they started is told to give up).
    pub fn connection_gone(&self, owner: &str) {
        self.step_ups.forget(owner);
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
