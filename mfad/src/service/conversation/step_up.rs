//! A fresh proof before a change to one's own factors ("sudo mode"): a user
//! who has a confirmed factor proves one, in a conversation like a login's,
//! before adding or removing a factor or an e-mail address, making new
//! recovery codes, importing factors or changing their level. Whoever finds
//! a session left open then cannot redirect the codes or make a way in of
//! their own. The proof is good for the bus connection that gave it (one
//! mfactl run), for [`STEP_UP_VALID`] seconds; an admin changing another
//! user's account never needs one.

use crate::error::DaemonError;
use crate::login::{self, Asking, Session};
use crate::mechanism::LoginContext;
use crate::service::Service;
use mfa_dbus::{DenyReason, LoginRequest, Step};
use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;

/// Seconds a proof holds for its connection.
pub const STEP_UP_VALID: u64 = 300;
/// The service a step-up is audited as.
pub const STEP_UP_SERVICE: &str = "step-up";
/// Connections holding a proof at once; a flood of connections cannot grow
/// mfad (the oldest proof goes first).
const MAX_GRANTS: usize = 4096;

pub const STEP_UP_TEXT: &str = "This change needs a fresh proof of one of your factors.";
const REQUIRED: &str = "this change needs a fresh proof of one of your factors; mfactl asks for it (Factors1.BeginStepUp); nothing was changed";

/// Proofs given, by the unique bus name of the connection that gave them.
#[derive(Default)]
pub struct StepUps {
    grants: Mutex<HashMap<String, Grant>>,
}

#[derive(Clone, Copy)]
struct Grant {
    uid: u32,
    until: u64,
}

impl StepUps {
    fn grants(&self) -> std::sync::MutexGuard<'_, HashMap<String, Grant>> {
        self.grants.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn grant(&self, connection: &str, uid: u32, now: u64) {
        let mut grants = self.grants();
        grants.retain(|_, g| g.until > now);
        if grants.len() >= MAX_GRANTS {
            if let Some(oldest) = grants
                .iter()
                .min_by_key(|(_, g)| g.until)
                .map(|(c, _)| c.clone())
            {
                grants.remove(&oldest);
            }
        }
        grants.insert(
            connection.to_string(),
            Grant {
                uid,
                until: now + STEP_UP_VALID,
            },
        );
    }

    fn holds(&self, connection: &str, uid: u32, now: u64) -> bool {
        self.grants()
            .get(connection)
            .is_some_and(|g| g.uid == uid && g.until > now)
    }

    /// The connection closed: its proof goes with it.
    pub fn forget(&self, connection: &str) {
        self.grants().remove(connection);
    }
}

impl Service {
    /// Refuse a change `uid` (as `user`) asks for on `connection` unless
    /// no proof is needed (the policy asks for none, or the user has no
    /// confirmed factor yet) or the connection gave one in time.
    pub fn require_step_up(
        &self,
        connection: &str,
        uid: u32,
        user: &str,
    ) -> Result<(), DaemonError> {
        let now = self.clock.now();
        if !self.policy().step_up || self.step_ups.holds(connection, uid, now) {
            return Ok(());
        }
        let state = self.store.policy_state(user, now)?;
        if state.factors.is_empty() {
            return Ok(());
        }
        Err(DaemonError::StepUpRequired(REQUIRED.into()))
    }

    /// Begin the proof of one of `user`'s confirmed factors for `owner`,
    /// the connection of `uid` (the process `pid`): the preferred factor
    /// first, as at a login, with recovery codes as the fallback; answered
    /// through Login1.Answer. No bypass, no trusted device, no enrolment;
    /// wrong answers count toward the lockout. Counted against `[limits]`
    /// with the user's unlocks.
    pub fn begin_step_up(
        &self,
        owner: &str,
        pid: Option<u32>,
        uid: u32,
        user: &str,
    ) -> Result<(String, Step), DaemonError> {
        let request = LoginRequest {
            user: user.to_string(),
            service: STEP_UP_SERVICE.into(),
            ..LoginRequest::default()
        };
        self.limit_own_login(uid, &request, "step-up")?;
        let context = LoginContext {
            unlock: true,
            ..self.login_context(&request, pid)
        };
        let state = self.store.policy_state(user, context.now)?;
        if state.factors.is_empty() {
            return Err(DaemonError::InvalidArgument(format!(
                "{user} has no confirmed factor to prove; changes need no proof until one is set up"
            )));
        }
        self.audit.login(
            &request,
            "start",
            &[("class", "step-up"), ("caller_uid", &uid.to_string())],
        );
        let unavailable = self.mechanisms.for_login(&context).unavailable;
        let mut factors: Vec<_> = state
            .factors
            .into_iter()
            .filter(|f| self.mechanisms.get(f.kind).is_some())
            .filter(|f| !unavailable.iter().any(|(kind, _)| *kind == f.kind))
            .collect();
        if let Some(i) = state
            .preferred
            .as_ref()
            .and_then(|p| factors.iter().position(|f| &f.id == p))
        {
            let preferred = factors.remove(i);
            factors.insert(0, preferred);
        }
        if factors.is_empty() {
            self.audit
                .login(&request, "deny", &[("reason", "no-usable-factor")]);
            return Ok((
                String::new(),
                Step::deny(DenyReason::NotEnrolled, login::NO_USABLE_FACTOR_TEXT),
            ));
        }
        let asking = Asking {
            factors,
            remember: None,
        };
        let (phase, step) = match self.challenge(&context, asking, 0, false) {
            Ok(begun) => begun,
            Err(step) => return Ok((String::new(), step)),
        };
        let session = Session {
            owner: owner.to_string(),
            request,
            remote: context.remote,
            unlock_uid: Some(uid),
            step_up: true,
            deadline: 0,
            started: context.now,
            tries_left: self.config.login.max_tries,
            phase,
            queued: VecDeque::from([step]),
        };
        let handle = self
            .logins()
            .open(session)
            .map_err(|login::Full(why)| DaemonError::LimitReached(why))?;
        Ok((handle, Step::info(STEP_UP_TEXT)))
    }

    /// A step-up allowed: its connection may make the changes for a while.
    pub(super) fn step_up_proven(&self, session: &Session, now: u64) {
        if let (true, Some(uid)) = (session.step_up, session.unlock_uid) {
            self.step_ups.grant(&session.owner, uid, now);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{StepUps, STEP_UP_VALID};

    #[test]
    fn a_proof_holds_for_its_connection_and_uid_until_it_expires() {
        let proofs = StepUps::default();
        proofs.grant(":1.7", 1001, 100);
        assert!(proofs.holds(":1.7", 1001, 100));
        assert!(!proofs.holds(":1.8", 1001, 100), "another connection");
        assert!(!proofs.holds(":1.7", 1002, 100), "another uid");
        assert!(!proofs.holds(":1.7", 1001, 100 + STEP_UP_VALID), "expired");
        proofs.forget(":1.7");
        assert!(!proofs.holds(":1.7", 1001, 101), "the connection closed");
    }
}
