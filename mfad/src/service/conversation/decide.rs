//! What a login meets, decided before it starts: the policy, the groups it
//! names (looked up off the runtime, within a deadline), where the login
//! runs.

use crate::login;
use crate::mechanism::LoginContext;
use crate::policy::{
    decide, Decision, Directory, GroupEntry, LookupError, Memberships, Policy, Subject, UserEntry,
};
use crate::service::Service;
use crate::store::StoreError;
use mfa_dbus::LoginRequest;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Directory lookups that may hang at once before new ones fail outright.
const MAX_WAITING_LOOKUPS: usize = 16;

impl Service {
    /// What policy says about `request` now, with the user's state from the
    /// store; `Err` only when the store cannot be read.
    pub fn decide(&self, request: &LoginRequest) -> Result<Decision, StoreError> {
        self.decide_at(&self.login_context(request, None))
    }

    /// [`Service::decide`] for a login whose context is known.
    pub(in crate::service) fn decide_at(
        &self,
        context: &LoginContext,
    ) -> Result<Decision, StoreError> {
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
        let found = self.mechanisms.for_login(context);
        let subject = Subject {
            user: &request.user,
            service: &request.service,
            rhost: &request.rhost,
            auth_info: &request.auth_info,
            unavailable: &found.unavailable,
            enrolable: &found.enrolable,
            offered: &found.offered,
            unlock: context.unlock,
        };
        Ok(decide(&policy, &memberships, subject, &state, now))
    }

    /// `user`'s membership of the groups `policy` names, within its
    /// `lookup_timeout`. A lookup that hangs is left to finish on its own
    /// thread, and counts as failed; once [`MAX_WAITING_LOOKUPS`] hang, new
    /// ones fail at once rather than pile up threads.
    pub(super) fn memberships(&self, policy: &Arc<Policy>, user: &str) -> Memberships {
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
        let directory = Watched {
            inner: Arc::clone(&self.directory),
            current: Arc::new(Mutex::new(format!("user {user:?}"))),
        };
        let current = Arc::clone(&directory.current);
        let (for_thread, name) = (Arc::clone(policy), user.to_string());
        let spawned = std::thread::Builder::new()
            .name("mfad-lookup".into())
            .spawn(move || {
                let found = Memberships::look_up(&directory, &for_thread, &name);
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
            let waited_for = current
                .lock()
                .map(|c| c.clone())
                .unwrap_or_else(|_| format!("user {user:?}"));
            Memberships::failed(
                policy,
                LookupError::new(
                    waited_for,
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
    pub(in crate::service) fn login_context(
        &self,
        request: &LoginRequest,
        pid: Option<u32>,
    ) -> LoginContext {
        // The process tree is read only where some mechanism cares (without
        // it the login is not local: only such mechanisms look).
        let pid = pid.filter(|_| self.mechanisms.any_local_only());
        LoginContext {
            remote: login::remote_reason(request, pid),
            request: request.clone(),
            now: self.clock.now(),
            retry: false,
            unlock: false,
            hypothetical: false,
        }
    }
}

/// A directory that records the lookup under way, so that one that never
/// answers can be named: the user (and, through `getgrouplist`, the groups
/// they are in) or one group a rule names.
struct Watched {
    inner: Arc<dyn Directory>,
    current: Arc<Mutex<String>>,
}

impl Watched {
    fn now_looking_up(&self, what: String) {
        if let Ok(mut current) = self.current.lock() {
            *current = what;
        }
    }
}

impl Directory for Watched {
    fn user(&self, name: &str) -> Result<Option<UserEntry>, LookupError> {
        self.now_looking_up(format!("user {name:?} and the groups they are in"));
        self.inner.user(name)
    }

    fn group(&self, name: &str) -> Result<Option<GroupEntry>, LookupError> {
        self.now_looking_up(format!("group {name:?}"));
        self.inner.group(name)
    }
}
