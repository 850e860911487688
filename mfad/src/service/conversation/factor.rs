//! Asking for a factor and checking what comes back: the mechanism's
//! challenge put to the user, a fallback typed instead, the store
//! transaction that checks the response, and what follows a wrong one.

use super::Answered;
use crate::login::{self, Asking, Phase, Session};
use crate::mechanism::{
    Ask, Fallback, FallbackUse, LoginContext, Mechanism, Response, ResponseWork, Work,
};
use crate::mechanism::{ChallengeError, FactorKind};
use crate::policy::Device;
use crate::service::Service;
use crate::store::{CodeCheck, StoreError};
use mfa_dbus::{DenyReason, LoginRequest, Step};
use std::any::Any;
use std::sync::Arc;

/// The audit reason of a wrong answer that has no reason of its own.
const WRONG_CODE: &str = "wrong-code";

impl Service {
    /// Begin the challenge of `asking.factors[selected]`: the phase that
    /// waits for its response and the step that asks for it. When the
    /// mechanism cannot begin (no key plugged in), the user chooses another
    /// factor, or — with none — the login is refused: `Err` is that step.
    pub(super) fn challenge(
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
            .ok_or_else(|| ChallengeError::from(format!("no factor {selected} to ask")))
            .and_then(|factor| {
                let mechanism = self.mechanism(factor.kind)?;
                let mut load = || {
                    self.store
                        .factor(&request.user, &factor.id)?
                        .ok_or_else(|| format!("factor {} is gone", factor.id).into())
                };
                // The login's other usable factors of the same kind (one
                // removed meanwhile is left out).
                let mut others = || {
                    let mut found = Vec::new();
                    for other in asking
                        .factors
                        .iter()
                        .filter(|f| f.kind == factor.kind && f.id != factor.id)
                    {
                        if let Some(record) = self.store.factor(&request.user, &other.id)? {
                            found.push(record);
                        }
                    }
                    Ok(found)
                };
                let context = LoginContext {
                    retry,
                    ..context.clone()
                };
                mechanism.challenge(&mut load, &mut others, &context)
            });
        let challenge = match begun {
            Ok(challenge) => challenge,
            Err(ChallengeError::Store(e)) => return Err(self.store_failed(request, &e)),
            Err(ChallengeError::Unavailable(why)) if asking.factors.len() > 1 => {
                self.audit.login(
                    request,
                    "retry",
                    &[("reason", "factor-unavailable"), ("error", &why)],
                );
                let step = self.choose_prompt(&asking, Some(&why));
                return Ok((Phase::Choose { asking }, step));
            }
            Err(ChallengeError::Unavailable(why)) => {
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
            retry: retry && work.is_some(),
            work,
        };
        Ok((phase, step))
    }

    /// How `ask` is put to the user: the step, whether it asks for a code,
    /// and the work it waits for.
    pub(super) fn put(
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

    pub(super) fn mechanism(&self, kind: FactorKind) -> Result<&Arc<dyn Mechanism>, String> {
        self.mechanisms
            .get(kind)
            .ok_or_else(|| format!("{kind} factors are not enabled in this mfad"))
    }

    pub(super) fn fallback_for(&self, answer: &str) -> Option<&Arc<dyn Fallback>> {
        self.mechanisms
            .fallbacks()
            .iter()
            .find(|f| f.claims(answer))
    }

    pub(super) fn start_fallback(
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
            fallback.check(store.as_ref(), &user, &answer, now, lockout)
        })
    }

    /// Check `response` to the challenge of `asking.factors[selected]` in
    /// one store transaction, and go on from what it found.
    pub(super) fn commit(
        &self,
        handle: &str,
        mut session: Session,
        (asking, selected): (Asking, usize),
        challenge: Box<dyn Any + Send>,
        response: Response,
        now: u64,
    ) -> Answered {
        if let Some(gone) = self.caller_gave_up(&session) {
            return gone;
        }
        let user = session.request.user.clone();
        let Some(asked) = asking.factors.get(selected).cloned() else {
            return Answered::failed(self.internal(&session.request, "no factor to check"));
        };
        let mechanism = match self.mechanism(asked.kind) {
            Ok(mechanism) => mechanism,
            Err(e) => return Answered::failed(self.internal(&session.request, &e)),
        };
        // A challenge several factors could answer: check the one that did
        // (only ever one of this login's, of this kind).
        let factor_id = mechanism
            .answered_by(challenge.as_ref(), &response)
            .and_then(|id| {
                asking
                    .factors
                    .iter()
                    .find(|f| f.id == id && f.kind == asked.kind)
            })
            .map_or_else(|| asked.id.clone(), |f| f.id.clone());
        let checked = self
            .store
            .check_factor(&user, &factor_id, now, self.lockout(), &mut |f| {
                mechanism.verify(f, challenge.as_ref(), &response, now)
            });
        match checked {
            Ok(CodeCheck::Accepted(f)) => {
                let fields = [("method", f.kind.name()), ("factor", f.id.as_str())];
                self.allow(
                    &session,
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
                wrong,
            }) => {
                if let Some(why) = suspicious {
                    let failures = failures.to_string();
                    self.audit.login(
                        &session.request,
                        "deny",
                        &[
                            ("reason", why),
                            ("factor", &factor_id),
                            ("failures", &failures),
                        ],
                    );
                    return Answered::failed(Step::deny(
                        DenyReason::WrongCode,
                        login::SUSPICIOUS_TEXT,
                    ));
                }
                session.phase = Phase::Choose { asking };
                let reason = wrong.unwrap_or(WRONG_CODE);
                self.rejected(
                    handle,
                    session,
                    selected,
                    (failures, locked_until, reason),
                    now,
                )
            }
            Err(e) => Answered::failed(self.store_failed(&session.request, &e)),
        }
    }

    /// A wrong response (to a factor, or a fallback typed at its prompt):
    /// counted; locked out, out of tries, or asked again.
    pub(super) fn rejected(
        &self,
        handle: &str,
        mut session: Session,
        selected: usize,
        (failures, locked_until, reason): (u32, u64, &str),
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
                ("reason", reason),
                ("tries_left", &left),
                ("failures", &failures),
            ],
        );
        let Phase::Choose { asking } = std::mem::replace(
            &mut session.phase,
            Phase::Confirm {
                factor: String::new(),
                prompt: "",
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
    pub(super) fn fallback_checked(
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
                self.allow(&session, asking.remember.as_ref(), &fields, note, now)
            }
            Ok(FallbackUse::Locked) => {
                self.audit
                    .login(&session.request, "deny", &[("reason", "locked")]);
                Answered::failed(Step::deny(DenyReason::Locked, login::LOCKED_TEXT))
            }
            // The caller gives such an answer to the factor instead.
            Ok(FallbackUse::NotMine) => {
                Answered::failed(self.internal(&session.request, "a fallback gave an answer back"))
            }
            Ok(FallbackUse::Rejected {
                failures,
                locked_until,
            }) => {
                session.phase = Phase::Choose { asking };
                self.rejected(
                    handle,
                    session,
                    selected,
                    (failures, locked_until, WRONG_CODE),
                    now,
                )
            }
            Err(e) => Answered::failed(self.store_failed(&session.request, &e)),
        }
    }

    /// The work of a factor's mechanism failed (no key, no touch in time,
    /// the key unplugged): not a wrong answer, nothing is counted. The user
    /// picks another factor, or the login ends.
    pub(super) fn device_failed(
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
    pub(super) fn allow(
        &self,
        session: &Session,
        remember: Option<&Device>,
        fields: &[(&str, &str)],
        note: String,
        now: u64,
    ) -> Answered {
        let request = &session.request;
        let mut fields = fields.to_vec();
        if let Some(device) = remember {
            let days = u64::from(self.policy().remember_days);
            let trusted = crate::service::new_id()
                .map_err(|e| e.to_string())
                .and_then(|id| {
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
        self.step_up_proven(session, now);
        Answered::ok(Step {
            text: note,
            ..Step::allow()
        })
    }

    /// The list of methods to choose from, after `note` (why the last one
    /// could not be used) if any.
    pub(super) fn choose_prompt(&self, asking: &Asking, note: Option<&str>) -> Step {
        let mut text = String::new();
        if let Some(note) = note {
            text.push_str(&sentence(note));
            text.push('\n');
        }
        text.push_str("Methods:\n");
        for (i, f) in asking.factors.iter().enumerate() {
            text.push_str(&format!("  {}) {} ({})\n", i + 1, f.label, f.kind));
        }
        for fallback in self.mechanisms.fallbacks() {
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
