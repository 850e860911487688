//! A login: the policy decides at Start what the user is asked, then each
//! answer moves the conversation on — a response to a factor's challenge,
//! the choice of another method, yes or no to setting up a factor, the
//! first code of a new factor. What a response means is the mechanism's
//! business ([`Mechanism`]); slow work it starts (a key waiting for a
//! touch, a fallback's slow hashes) runs off the runtime, and the answer
//! that finds it unfinished is a poll that the bus layer holds.

use super::{Service, MAX_ANSWER};
use crate::error::DaemonError;
use crate::login::{self, Asking, Phase, Refused, Session};
use crate::mechanism::{
    Ask, FactorKind, Fallback, FallbackUse, LoginContext, Mechanism, Next, Response, ResponseWork,
    Waiter, Work,
};
use crate::policy::{
    decide, Decision, Device, LookupError, Memberships, Outcome, Policy, Refusal, Skip, Subject,
};
use crate::store::{CodeCheck, Confirmation, StoreError};
use mfa_dbus::{DenyReason, EnrolOptions, LoginRequest, Step};
use std::any::Any;
use std::collections::VecDeque;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

/// Directory lookups that may hang at once before new ones fail outright.
const MAX_WAITING_LOOKUPS: usize = 16;

/// The next step after an answer; whether the answer failed (a wrong,
/// replayed or refused response: failures get mfad's minimum duration);
/// and, when the step is a [`StepKind::Wait`] because work is under way,
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
    /// What policy says about `request` now, with the user's state from the
    /// store; `Err` only when the store cannot be read.
    pub fn decide(&self, request: &LoginRequest) -> Result<Decision, StoreError> {
        self.decide_at(&self.login_context(request, None))
    }

    /// [`Service::decide`] for a login whose context is known.
    fn decide_at(&self, context: &LoginContext) -> Result<Decision, StoreError> {
        let request = &context.request;
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
        let (unavailable, enrolable) = self.mechanisms.for_login(context);
        let subject = Subject {
            user: &request.user,
            service: &request.service,
            rhost: &request.rhost,
            auth_info: &request.auth_info,
            unavailable: &unavailable,
            enrolable: &enrolable,
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

    /// Where `request`, from the PAM client process `pid`, comes from, as
    /// mechanisms see it.
    fn login_context(&self, request: &LoginRequest, pid: Option<u32>) -> LoginContext {
        // The process tree is read only where some mechanism cares.
        let pid = pid.filter(|_| self.mechanisms.any_local_only());
        LoginContext {
            remote: login::remote_reason(request, pid),
            request: request.clone(),
            now: self.clock.now(),
        }
    }

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
        let decision = match self.decide_at(&context) {
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
                self.audit.login(&request, "deny", &fields);
                return Ok((String::new(), Step::deny(reason, text)));
            }
            Outcome::Ask { factors, remember } => {
                let asking = Asking { factors, remember };
                match self.challenge(&context, asking, 0, false) {
                    Ok((phase, step)) => (phase, vec![step]),
                    Err(e) => return Ok((String::new(), e)),
                }
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
            remote: context.remote,
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

    /// The user's answer to the current step of login `handle` (an empty
    /// answer to a [`StepKind::Wait`] step is a poll).
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
        let phase = std::mem::replace(
            &mut session.phase,
            Phase::Confirm {
                factor: String::new(),
            },
        );
        let answered = match phase {
            Phase::Factor {
                asking,
                selected,
                challenge,
                code,
                work: Some(work),
            } => match work.take() {
                None => {
                    let waiter = work.waiter();
                    session.phase = Phase::Factor {
                        asking,
                        selected,
                        challenge,
                        code,
                        work: Some(work),
                    };
                    Answered::waiting("", waiter)
                }
                Some(Ok(response)) => {
                    return Ok(self.commit(
                        handle,
                        session,
                        (asking, selected),
                        challenge,
                        response,
                        now,
                    ));
                }
                Some(Err(why)) => return Ok(self.device_failed(handle, session, asking, &why)),
            },
            Phase::Factor {
                asking,
                selected,
                mut challenge,
                code,
                work: None,
            } => {
                if answer.is_empty() && asking.factors.len() > 1 {
                    let step = self.choose_prompt(&asking, None);
                    session.phase = Phase::Choose { asking };
                    Answered::ok(step)
                } else if let Some(fallback) = self.fallback_for(answer).filter(|_| code) {
                    match self.start_fallback(&session.request, fallback, answer, now) {
                        Ok(work) => {
                            let waiter = work.waiter();
                            session.phase = Phase::Fallback {
                                asking,
                                selected,
                                name: fallback.name(),
                                work,
                            };
                            Answered::waiting("", waiter)
                        }
                        Err(e) => return Ok(Answered::failed(self.internal(&session.request, &e))),
                    }
                } else {
                    // An answer too long to be a code is a wrong code, and counted.
                    let text = if answer.len() <= MAX_ANSWER {
                        answer
                    } else {
                        ""
                    };
                    let next = asking
                        .factors
                        .get(selected)
                        .ok_or_else(|| "no factor to answer".to_string())
                        .and_then(|f| self.mechanism(f.kind))
                        .and_then(|m| m.respond(challenge.as_mut(), text.to_string()));
                    match next {
                        Ok(Next::Check(response)) => {
                            return Ok(self.commit(
                                handle,
                                session,
                                (asking, selected),
                                challenge,
                                response,
                                now,
                            ));
                        }
                        Ok(Next::Ask(ask)) => {
                            let (step, code, work) = self.put(&asking, selected, ask, false);
                            let waiter = work.as_ref().map(Work::waiter);
                            session.phase = Phase::Factor {
                                asking,
                                selected,
                                challenge,
                                code,
                                work,
                            };
                            Answered {
                                step,
                                failure: false,
                                waiting: waiter,
                            }
                        }
                        Err(why) => return Ok(self.device_failed(handle, session, asking, &why)),
                    }
                }
            }
            Phase::Fallback {
                asking,
                selected,
                name,
                work,
            } => match work.take() {
                None => {
                    let waiter = work.waiter();
                    session.phase = Phase::Fallback {
                        asking,
                        selected,
                        name,
                        work,
                    };
                    Answered::waiting("", waiter)
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

    /// Begin the challenge of `asking.factors[selected]`: the phase that
    /// waits for its response and the step that asks for it. When the
    /// mechanism cannot begin (no key plugged in), the user chooses another
    /// factor, or — with none — the login is refused: `Err` is that step.
    fn challenge(
        &self,
        context: &LoginContext,
        asking: Asking,
        selected: usize,
        retry: bool,
    ) -> Result<(Phase, Step), Step> {
        let request = &context.request;
        let begun = asking
            .factors
            .get(selected)
            .ok_or_else(|| format!("no factor {selected} to ask"))
            .and_then(|factor| {
                let mechanism = self.mechanism(factor.kind)?;
                let mut load = || {
                    self.store
                        .factor(&request.user, &factor.id)
                        .map_err(|e| e.to_string())?
                        .ok_or_else(|| format!("factor {} is gone", factor.id))
                };
                mechanism.challenge(&mut load, context)
            });
        let challenge = match begun {
            Ok(challenge) => challenge,
            Err(why) if asking.factors.len() > 1 => {
                self.audit.login(
                    request,
                    "retry",
                    &[("reason", "factor-unavailable"), ("error", &why)],
                );
                let step = self.choose_prompt(&asking, Some(&why));
                return Ok((Phase::Choose { asking }, step));
            }
            Err(why) => {
                self.audit.login(
                    request,
                    "deny",
                    &[("reason", "factor-unavailable"), ("error", &why)],
                );
                return Err(Step::deny(DenyReason::Internal, sentence(&why)));
            }
        };
        let (step, code, work) = self.put(&asking, selected, challenge.ask, retry);
        let phase = Phase::Factor {
            asking,
            selected,
            challenge: challenge.state,
            code,
            work,
        };
        Ok((phase, step))
    }

    /// How `ask` is put to the user: the step, whether it asks for a code,
    /// and the work it waits for.
    fn put(
        &self,
        asking: &Asking,
        selected: usize,
        ask: Ask,
        retry: bool,
    ) -> (Step, bool, Option<ResponseWork>) {
        match ask {
            Ask::Prompt { text, echo, code } => {
                let text = prompt_text(asking, selected, &text, retry && code);
                (Step::prompt(text, echo), code, None)
            }
            Ask::Wait { text, work } => {
                let text = if retry {
                    format!("{}{text}", login::NOT_ACCEPTED)
                } else {
                    text
                };
                (Step::wait(text), false, Some(work))
            }
        }
    }

    fn mechanism(&self, kind: FactorKind) -> Result<&Arc<dyn Mechanism>, String> {
        self.mechanisms
            .get(kind)
            .ok_or_else(|| format!("{kind} factors are not enabled in this mfad"))
    }

    fn fallback_for(&self, answer: &str) -> Option<&Arc<dyn Fallback>> {
        self.fallbacks.iter().find(|f| f.claims(answer))
    }

    fn start_fallback(
        &self,
        request: &LoginRequest,
        fallback: &Arc<dyn Fallback>,
        answer: &str,
        now: u64,
    ) -> Result<Work<Result<FallbackUse, StoreError>>, String> {
        let (fallback, store, user, answer, lockout) = (
            Arc::clone(fallback),
            Arc::clone(&self.store),
            request.user.clone(),
            answer.to_string(),
            self.lockout(),
        );
        Work::spawn("mfad-fallback", move |_| {
            fallback.check(&store, &user, &answer, now, lockout)
        })
    }

    /// Check `response` to the challenge of `asking.factors[selected]` in
    /// one store transaction, and go on from what it found.
    fn commit(
        &self,
        handle: &str,
        mut session: Session,
        (asking, selected): (Asking, usize),
        challenge: Box<dyn Any + Send>,
        response: Response,
        now: u64,
    ) -> Answered {
        let user = session.request.user.clone();
        let Some(factor) = asking.factors.get(selected).cloned() else {
            return Answered::failed(self.internal(&session.request, "no factor to check"));
        };
        let checked = match self.mechanism(factor.kind) {
            Ok(mechanism) => self
                .store
                .check_factor(&user, &factor.id, now, self.lockout(), |f| {
                    mechanism.verify(f, challenge.as_ref(), &response, now)
                }),
            Err(e) => return Answered::failed(self.internal(&session.request, &e)),
        };
        match checked {
            Ok(CodeCheck::Accepted(f)) => {
                let fields = [("method", f.kind.name()), ("factor", f.id.as_str())];
                self.allow(
                    &session.request,
                    asking.remember.as_ref(),
                    &fields,
                    String::new(),
                    now,
                )
            }
            // Locked: the answer was not even looked at; right and wrong
            // answers get this same step.
            Ok(CodeCheck::Locked { .. }) => {
                self.audit
                    .login(&session.request, "deny", &[("reason", "locked")]);
                Answered::failed(Step::deny(DenyReason::Locked, login::LOCKED_TEXT))
            }
            Ok(CodeCheck::Rejected {
                failures,
                locked_until,
                suspicious,
            }) => {
                if let Some(why) = suspicious {
                    let failures = failures.to_string();
                    self.audit.login(
                        &session.request,
                        "deny",
                        &[
                            ("reason", why),
                            ("factor", &factor.id),
                            ("failures", &failures),
                        ],
                    );
                    return Answered::failed(Step::deny(
                        DenyReason::WrongCode,
                        login::SUSPICIOUS_TEXT,
                    ));
                }
                session.phase = Phase::Choose { asking };
                self.rejected(handle, session, selected, failures, locked_until, now)
            }
            Err(e) => Answered::failed(self.store_failed(&session.request, &e)),
        }
    }

    /// A wrong response (to a factor, or a fallback typed at its prompt):
    /// counted; locked out, out of tries, or asked again.
    fn rejected(
        &self,
        handle: &str,
        mut session: Session,
        selected: usize,
        failures: u32,
        locked_until: u64,
        now: u64,
    ) -> Answered {
        let failures = failures.to_string();
        if locked_until > now {
            self.audit.login(
                &session.request,
                "deny",
                &[("reason", "wrong-code-locked-out"), ("failures", &failures)],
            );
            return Answered::failed(Step::deny(DenyReason::Locked, login::LOCKED_TEXT));
        }
        session.tries_left = session.tries_left.saturating_sub(1);
        if session.tries_left == 0 {
            self.audit.login(
                &session.request,
                "deny",
                &[("reason", "max-tries"), ("failures", &failures)],
            );
            return Answered::failed(Step::deny(DenyReason::MaxTries, login::MAX_TRIES_TEXT));
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
        let Phase::Choose { asking } = std::mem::replace(
            &mut session.phase,
            Phase::Confirm {
                factor: String::new(),
            },
        ) else {
            return Answered::failed(self.internal(&session.request, "lost the factors asked"));
        };
        match self.challenge(&session.context(self.clock.now()), asking, selected, true) {
            Ok((phase, step)) => {
                session.phase = phase;
                self.logins().restore(handle.to_string(), session);
                Answered::failed(step)
            }
            Err(step) => Answered::failed(step),
        }
    }

    /// What a fallback's check found.
    fn fallback_checked(
        &self,
        handle: &str,
        mut session: Session,
        (asking, selected): (Asking, usize),
        name: &'static str,
        checked: Result<FallbackUse, StoreError>,
        now: u64,
    ) -> Answered {
        match checked {
            Ok(FallbackUse::Used { note, detail }) => {
                let fields = [("method", name), (detail.0, detail.1.as_str())];
                self.allow(
                    &session.request,
                    asking.remember.as_ref(),
                    &fields,
                    note,
                    now,
                )
            }
            Ok(FallbackUse::Locked) => {
                self.audit
                    .login(&session.request, "deny", &[("reason", "locked")]);
                Answered::failed(Step::deny(DenyReason::Locked, login::LOCKED_TEXT))
            }
            Ok(FallbackUse::Rejected {
                failures,
                locked_until,
            }) => {
                session.phase = Phase::Choose { asking };
                self.rejected(handle, session, selected, failures, locked_until, now)
            }
            Err(e) => Answered::failed(self.store_failed(&session.request, &e)),
        }
    }

    /// The work of a factor's mechanism failed (no key, no touch in time,
    /// the key unplugged): not a wrong answer, nothing is counted. The user
    /// picks another factor, or the login ends.
    fn device_failed(
        &self,
        handle: &str,
        mut session: Session,
        asking: Asking,
        why: &str,
    ) -> Answered {
        if asking.factors.len() > 1 {
            self.audit.login(
                &session.request,
                "retry",
                &[("reason", "factor-failed"), ("error", why)],
            );
            let step = self.choose_prompt(&asking, Some(why));
            session.phase = Phase::Choose { asking };
            self.logins().restore(handle.to_string(), session);
            return Answered::ok(step);
        }
        self.audit.login(
            &session.request,
            "deny",
            &[("reason", "factor-failed"), ("error", why)],
        );
        Answered::failed(Step::deny(DenyReason::Internal, sentence(why)))
    }

    /// A right response: remember the device if asked, audit, allow.
    fn allow(
        &self,
        request: &LoginRequest,
        remember: Option<&Device>,
        fields: &[(&str, &str)],
        note: String,
        now: u64,
    ) -> Answered {
        let mut fields = fields.to_vec();
        if let Some(device) = remember {
            let days = u64::from(self.policy().remember_days);
            let trusted = super::new_id().map_err(|e| e.to_string()).and_then(|id| {
                self.store
                    .trust_device(&request.user, &device.key, &id, now, now + days * 86_400)
                    .map_err(|e| e.to_string())
            });
            match trusted {
                Ok(()) => fields.push(("device", "remembered")),
                // The login itself succeeded; only the convenience is lost.
                Err(_) => fields.push(("device", "not-remembered-store-error")),
            }
        }
        self.audit.login(request, "allow", &fields);
        Answered::ok(Step {
            text: note,
            ..Step::allow()
        })
    }

    /// Set up a pending factor of `kind` for the user logging in: the steps
    /// show what the mechanism shows (a QR code and secret), then ask for
    /// its first code. sshd shows info texts only together with the next
    /// prompt, so every info text is followed by one.
    fn enrol_at_login(
        &self,
        request: &LoginRequest,
        kind: FactorKind,
    ) -> Result<(Phase, Vec<Step>), DaemonError> {
        let uid = self.uid_of(&request.user);
        let (offer, login_text) = self.begin_enrolment_with_text(
            uid,
            &request.user,
            kind.name(),
            "",
            &EnrolOptions::default(),
        )?;
        Ok((
            Phase::Confirm { factor: offer.id },
            vec![
                Step::info(login_text),
                Step::prompt(login::CONFIRM_PROMPT, false),
            ],
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
                };
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

    /// The store could not be read or written: refuse, and say why in the log.
    fn store_failed(&self, request: &LoginRequest, e: &StoreError) -> Step {
        self.audit.login(
            request,
            "deny",
            &[("reason", "store-error"), ("error", &e.to_string())],
        );
        Step::deny(DenyReason::Internal, login::INTERNAL_TEXT)
    }

    /// Something that should not happen did: refuse, and say what in the log.
    fn internal(&self, request: &LoginRequest, error: &str) -> Step {
        self.audit.login(
            request,
            "deny",
            &[("reason", "internal-error"), ("error", error)],
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

    /// The bus connection `owner` closed: its logins can never be answered
    /// (and the work they started is told to give up).
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

    /// The list of methods to choose from, after `note` (why the last one
    /// could not be used) if any.
    fn choose_prompt(&self, asking: &Asking, note: Option<&str>) -> Step {
        let mut text = String::new();
        if let Some(note) = note {
            text.push_str(&sentence(note));
            text.push('\n');
        }
        text.push_str("Methods:\n");
        for (i, f) in asking.factors.iter().enumerate() {
            text.push_str(&format!("  {}) {} ({})\n", i + 1, f.label, f.kind));
        }
        for fallback in &self.fallbacks {
            text.push_str(fallback.hint());
            text.push('\n');
        }
        text.push_str(login::CHOOSE_PROMPT);
        Step::prompt(text, true)
    }
}

/// The prompt for `asking.factors[selected]`: the mechanism's own text,
/// naming the factor and how to switch when there are several.
fn prompt_text(asking: &Asking, selected: usize, text: &str, retry: bool) -> String {
    let again = if retry { login::WRONG_CODE } else { "" };
    match asking
        .factors
        .get(selected)
        .filter(|_| asking.factors.len() > 1)
    {
        None => format!("{again}{text}"),
        Some(f) => format!(
            "{again}{} ({}; empty answer for other methods): ",
            text.trim_end().trim_end_matches(':'),
            f.label
        ),
    }
}

/// `text` with a capital first letter and a full stop, for the user.
fn sentence(text: &str) -> String {
    let mut chars = text.chars();
    let mut out: String = match chars.next() {
        Some(c) => c.to_uppercase().chain(chars).collect(),
        None => return String::new(),
    };
    if !out.ends_with('.') {
        out.push('.');
    }
    out
}
