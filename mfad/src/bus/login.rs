//! org.pam_mfa.Login1: root only.

use super::{inline, Shared};
use mfa_dbus::{LoginRequest, MfaError, Step};
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
        inline(&self.0, |service| {
            self.0.access.check_login(caller.uid)?;
            service.start_login(&caller.connection, request)
        })
    }

    #[zbus(out_args("step"))]
    async fn answer(
        &self,
        handle: String,
        answer: String,
        #[zbus(header)] header: Header<'_>,
    ) -> Result<Step, MfaError> {
        let caller = self.0.callers.identify(&header).await?;
        inline(&self.0, |service| {
            self.0.access.check_login(caller.uid)?;
            service.answer(&caller.connection, &handle, &answer)
        })
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
