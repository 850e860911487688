//! org.pam_mfa.Login1: root for any user; anyone else for their own
//! account only, as an unlock (a screen locker). Served on the bus and,
//! for root alone, on the login socket (`socket.rs`): the same code.

use super::access::LoginCaller;
use super::{blocking, Caller, Shared};
use mfa_dbus::{LoginRequest, MfaError, Step, StepKind, WAIT_HOLD_MS};
use std::time::Duration;
use tokio::time::Instant;
use zbus::message::Header;

pub struct LoginInterface {
    shared: Shared,
    /// The one client of a peer-to-peer connection, identified by the
    /// kernel at accept; `None` on the bus, where each call's sender is.
    peer: Option<Caller>,
}

impl LoginInterface {
    pub fn bus(shared: Shared) -> LoginInterface {
        LoginInterface { shared, peer: None }
    }

    pub fn peer(shared: Shared, caller: Caller) -> LoginInterface {
        LoginInterface {
            shared,
            peer: Some(caller),
        }
    }

    async fn caller(&self, header: &Header<'_>) -> Result<Caller, MfaError> {
        match &self.peer {
            Some(caller) => Ok(caller.clone()),
            None => self.shared.callers.identify(header).await,
        }
    }

    /// Every failure takes at least `[login].failure_delay_ms` from the
    /// call's arrival, whatever made it fail: no timing tells a wrong code
    /// from a locked account, and guessing is slow. Success is not held.
    async fn hold_failure(&self, started: Instant) {
        let delay = Duration::from_millis(self.shared.service.config().login.failure_delay_ms);
        tokio::time::sleep_until(started + delay).await;
    }
}

#[zbus::interface(name = "org.pam_mfa.Login1")]
impl LoginInterface {
    #[zbus(out_args("handle", "step"))]
    async fn start(
        &self,
        request: LoginRequest,
        #[zbus(header)] header: Header<'_>,
    ) -> Result<(String, Step), MfaError> {
        let started = Instant::now();
        let caller = self.caller(&header).await?;
        let who = self
            .shared
            .access
            .check_login(caller.uid, &request.user)
            .map_err(MfaError::from)?;
        let (connection, pid) = (caller.connection.clone(), caller.pid);
        let (handle, step) = blocking(&self.shared, move |service| match who {
            LoginCaller::Root => service.start_login_from(&connection, pid, request),
            LoginCaller::Own { uid } => service.start_unlock(&connection, pid, uid, request),
        })
        .await?;
        if step.kind == StepKind::Deny {
            self.hold_failure(started).await;
        }
        Ok((handle, step))
    }

    #[zbus(out_args("step"))]
    async fn answer(
        &self,
        handle: String,
        answer: String,
        deadline: u64,
        #[zbus(header)] header: Header<'_>,
    ) -> Result<Step, MfaError> {
        let started = Instant::now();
        // Only the connection that started a login may answer it.
        let caller = self.caller(&header).await?;
        let (connection, first) = (caller.connection.clone(), handle.clone());
        let mut answered = blocking(&self.shared, move |service| {
            service.answer(&connection, &first, &answer, deadline)
        })
        .await?;
        // Work is under way (a key waiting for a touch, slow hashes): hold
        // the answer until it is done or the hold is up, then look again.
        // What the first answer said is what the user sees if it is not.
        if let Some(waiter) = answered.waiting.take() {
            let hold = Duration::from_millis(WAIT_HOLD_MS);
            if tokio::time::timeout(hold, waiter.ready()).await.is_ok() {
                let connection = caller.connection.clone();
                answered = blocking(&self.shared, move |service| {
                    service.answer(&connection, &handle, "", deadline)
                })
                .await?;
            }
        }
        if answered.failure {
            self.hold_failure(started).await;
        }
        Ok(answered.step)
    }

    async fn cancel(
        &self,
        handle: String,
        #[zbus(header)] header: Header<'_>,
    ) -> Result<(), MfaError> {
        // As for answers: only the connection that started it.
        let caller = self.caller(&header).await?;
        blocking(&self.shared, move |service| {
            service.cancel(&caller.connection, &handle);
            Ok(())
        })
        .await
    }
}
