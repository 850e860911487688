//! org.pam_mfa.Login1: root only.

use super::{blocking, Shared};
use mfa_dbus::{LoginRequest, MfaError, Step};
use std::sync::Arc;
use zbus::message::Header;

pub struct LoginInterface(pub Shared);

#[zbus::interface(name = "org.pam_mfa.Login1")]
impl LoginInterface {
    #[zbus(out_args("handle", "step"))]
    async fn start(
        &self,
        request: LoginRequest,
        #[zbus(header)] header: Header<'_>,
    ) -> Result<(String, Step), MfaError> {
        let caller = self.0.callers.identify(&header).await?;
        let access = Arc::clone(&self.0.access);
        blocking(&self.0, move |service| {
            access.check_login(caller.uid)?;
            service.start_login(&caller.connection, request)
        })
        .await
    }

    #[zbus(out_args("step"))]
    async fn answer(
        &self,
        handle: String,
        answer: String,
        #[zbus(header)] header: Header<'_>,
    ) -> Result<Step, MfaError> {
        let caller = self.0.callers.identify(&header).await?;
        let access = Arc::clone(&self.0.access);
        blocking(&self.0, move |service| {
            access.check_login(caller.uid)?;
            service.answer(&caller.connection, &handle, &answer)
        })
        .await
    }

    async fn cancel(
        &self,
        handle: String,
        #[zbus(header)] header: Header<'_>,
    ) -> Result<(), MfaError> {
        let caller = self.0.callers.identify(&header).await?;
        let access = Arc::clone(&self.0.access);
        blocking(&self.0, move |service| {
            access.check_login(caller.uid)?;
            service.cancel(&caller.connection, &handle);
            Ok(())
        })
        .await
    }
}
