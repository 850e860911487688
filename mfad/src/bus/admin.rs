//! org.pam_mfa.Admin1: root or the configured admin group.

use super::{blocking, Shared};
use mfa_dbus::{FactorInfo, MfaError, UserSummary};
use std::sync::Arc;
use zbus::message::Header;

pub struct AdminInterface(pub Shared);

#[zbus::interface(name = "org.pam_mfa.Admin1")]
impl AdminInterface {
    #[zbus(out_args("users"))]
    async fn list_users(
        &self,
        #[zbus(header)] header: Header<'_>,
    ) -> Result<Vec<UserSummary>, MfaError> {
        let caller = self.0.callers.identify(&header).await?;
        let access = Arc::clone(&self.0.access);
        blocking(&self.0, move |service| {
            access.check_admin(caller.uid)?;
            service.list_users()
        })
        .await
    }

    #[zbus(out_args("factors"))]
    async fn list_user_factors(
        &self,
        user: String,
        #[zbus(header)] header: Header<'_>,
    ) -> Result<Vec<FactorInfo>, MfaError> {
        let caller = self.0.callers.identify(&header).await?;
        let access = Arc::clone(&self.0.access);
        blocking(&self.0, move |service| {
            access.check_admin(caller.uid)?;
            crate::login::validate_user(&user)?;
            service.list_factors(&user)
        })
        .await
    }

    #[zbus(out_args("removed"))]
    async fn reset_user(
        &self,
        user: String,
        #[zbus(header)] header: Header<'_>,
    ) -> Result<u32, MfaError> {
        let caller = self.0.callers.identify(&header).await?;
        let access = Arc::clone(&self.0.access);
        blocking(&self.0, move |service| {
            access.check_admin(caller.uid)?;
            service.reset_user(caller.uid, &user)
        })
        .await
    }

    #[zbus(out_args("was_locked"))]
    async fn unlock_user(
        &self,
        user: String,
        #[zbus(header)] header: Header<'_>,
    ) -> Result<bool, MfaError> {
        let caller = self.0.callers.identify(&header).await?;
        let access = Arc::clone(&self.0.access);
        blocking(&self.0, move |service| {
            access.check_admin(caller.uid)?;
            service.unlock_user(caller.uid, &user)
        })
        .await
    }
}
