//! org.pam_mfa.Login1: root only.

use super::{blocking, inline, Shared};
use crate::mechanism::recovery;
use mfa_dbus::{LoginRequest, MfaError, Step, StepKind};
use std::time::Duration;
use tokio::time::Instant;
use zbus::message::Header;

pub struct LoginInterface(pub Shared);

impl LoginInterface {
    /// Every failure takes at least `[login].failure_delay_ms` from the
    /// call's arrival, whatever made it fail: no timing tells a wrong code
    /// from a locked account, and guessing is slow. Success is not held.
    async fn hold_failure(&self, started: Instant) {
        let delay = Duration::from_millis(self.0.service.config().login.failure_delay_ms);
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
        let caller = self.0.callers.identify(&header).await?;
        self.0
            .access
            .check_login(caller.uid)
            .map_err(MfaError::from)?;
        let (handle, step) = if self.0.service.start_may_block() {
            let connection = caller.connection.clone();
            blocking(&self.0, move |service| {
                service.start_login(&connection, request)
            })
            .await?
        } else {
            inline(&self.0, |service| {
                service.start_login(&caller.connection, request)
            })?
        };
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
        #[zbus(header)] header: Header<'_>,
    ) -> Result<Step, MfaError> {
        let started = Instant::now();
        let caller = self.0.callers.identify(&header).await?;
        self.0
            .access
            .check_login(caller.uid)
            .map_err(MfaError::from)?;
        let answered = if recovery::normalise(&answer).is_some() {
            // Recovery codes are checked against slow hashes: off the
            // runtime's threads.
            let connection = caller.connection.clone();
            blocking(&self.0, move |service| {
                service.answer(&connection, &handle, &answer)
            })
            .await?
        } else {
            inline(&self.0, |service| {
                service.answer(&caller.connection, &handle, &answer)
            })?
        };
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
        let caller = self.0.callers.identify(&header).await?;
        inline(&self.0, |service| {
            self.0.access.check_login(caller.uid)?;
            service.cancel(&caller.connection, &handle);
            Ok(())
        })
    }
}
