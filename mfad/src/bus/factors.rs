//! org.pam_mfa.Factors1: every call acts on the caller's own account.

use super::{blocking, Shared};
use mfa_dbus::{DeviceInfo, EnrolOptions, EnrolmentOffer, FactorInfo, MfaError, UserSettings};
use std::sync::Arc;
use zbus::message::Header;

pub struct FactorsInterface(pub Shared);

#[zbus::interface(name = "org.pam_mfa.Factors1")]
impl FactorsInterface {
    #[zbus(out_args("offer"))]
    async fn begin_enrolment(
        &self,
        kind: String,
        label: String,
        options: EnrolOptions,
        #[zbus(header)] header: Header<'_>,
    ) -> Result<EnrolmentOffer, MfaError> {
        let caller = self.0.callers.identify(&header).await?;
        let access = Arc::clone(&self.0.access);
        blocking(&self.0, move |service| {
            let user = access.own_user(caller.uid)?;
            service.begin_enrolment(caller.uid, &user, &kind, &label, &options)
        })
        .await
    }

    #[zbus(out_args("factor"))]
    async fn confirm_enrolment(
        &self,
        id: String,
        code: String,
        #[zbus(header)] header: Header<'_>,
    ) -> Result<FactorInfo, MfaError> {
        let caller = self.0.callers.identify(&header).await?;
        let access = Arc::clone(&self.0.access);
        blocking(&self.0, move |service| {
            let user = access.own_user(caller.uid)?;
            service.confirm_enrolment(caller.uid, &user, &id, &code)
        })
        .await
    }

    #[zbus(out_args("factors"))]
    async fn list_factors(
        &self,
        #[zbus(header)] header: Header<'_>,
    ) -> Result<Vec<FactorInfo>, MfaError> {
        let caller = self.0.callers.identify(&header).await?;
        let access = Arc::clone(&self.0.access);
        blocking(&self.0, move |service| {
            let user = access.own_user(caller.uid)?;
            service.list_factors(&user)
        })
        .await
    }

    async fn remove_factor(
        &self,
        id: String,
        #[zbus(header)] header: Header<'_>,
    ) -> Result<(), MfaError> {
        let caller = self.0.callers.identify(&header).await?;
        let access = Arc::clone(&self.0.access);
        blocking(&self.0, move |service| {
            let user = access.own_user(caller.uid)?;
            service.remove_factor(caller.uid, &user, &id)
        })
        .await
    }

    #[zbus(out_args("codes"))]
    async fn generate_recovery_codes(
        &self,
        #[zbus(header)] header: Header<'_>,
    ) -> Result<Vec<String>, MfaError> {
        let caller = self.0.callers.identify(&header).await?;
        let access = Arc::clone(&self.0.access);
        blocking(&self.0, move |service| {
            let user = access.own_user(caller.uid)?;
            service.generate_recovery_codes(caller.uid, &user)
        })
        .await
    }

    async fn set_preferred(
        &self,
        id: String,
        #[zbus(header)] header: Header<'_>,
    ) -> Result<(), MfaError> {
        let caller = self.0.callers.identify(&header).await?;
        let access = Arc::clone(&self.0.access);
        blocking(&self.0, move |service| {
            let user = access.own_user(caller.uid)?;
            service.set_preferred(caller.uid, &user, &id)
        })
        .await
    }

    async fn set_level(
        &self,
        level: String,
        #[zbus(header)] header: Header<'_>,
    ) -> Result<(), MfaError> {
        let caller = self.0.callers.identify(&header).await?;
        let access = Arc::clone(&self.0.access);
        blocking(&self.0, move |service| {
            let user = access.own_user(caller.uid)?;
            service.set_level(caller.uid, &user, &level)
        })
        .await
    }

    #[zbus(out_args("settings"))]
    async fn get_settings(
        &self,
        #[zbus(header)] header: Header<'_>,
    ) -> Result<UserSettings, MfaError> {
        let caller = self.0.callers.identify(&header).await?;
        let access = Arc::clone(&self.0.access);
        blocking(&self.0, move |service| {
            let user = access.own_user(caller.uid)?;
            service.settings(&user)
        })
        .await
    }

    #[zbus(out_args("devices"))]
    async fn list_devices(
        &self,
        #[zbus(header)] header: Header<'_>,
    ) -> Result<Vec<DeviceInfo>, MfaError> {
        let caller = self.0.callers.identify(&header).await?;
        let access = Arc::clone(&self.0.access);
        blocking(&self.0, move |service| {
            let user = access.own_user(caller.uid)?;
            service.list_devices(&user)
        })
        .await
    }

    #[zbus(out_args("revoked"))]
    async fn revoke_devices(
        &self,
        id: String,
        #[zbus(header)] header: Header<'_>,
    ) -> Result<u32, MfaError> {
        let caller = self.0.callers.identify(&header).await?;
        let access = Arc::clone(&self.0.access);
        blocking(&self.0, move |service| {
            let user = access.own_user(caller.uid)?;
            service.revoke_devices(caller.uid, &user, &id)
        })
        .await
    }

    async fn resync_factor(
        &self,
        id: String,
        first: String,
        second: String,
        #[zbus(header)] header: Header<'_>,
    ) -> Result<(), MfaError> {
        let caller = self.0.callers.identify(&header).await?;
        let access = Arc::clone(&self.0.access);
        blocking(&self.0, move |service| {
            let user = access.own_user(caller.uid)?;
            service.resync(caller.uid, &user, &id, &first, &second)
        })
        .await
    }
}
