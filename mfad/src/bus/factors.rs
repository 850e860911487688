//! org.pam_mfa.Factors1: every call acts on the caller's own account.

use super::{blocking, Shared};
use crate::service::{Confirmed, Importer};
use std::sync::Arc;
use std::time::Duration;

/// How long one ConfirmEnrolment call waits for a device (below mfactl's
/// 30 s call timeout).
const CONFIRM_HOLD: Duration = Duration::from_secs(20);
use mfa_dbus::{
    DeviceInfo, EnrolOptions, EnrolmentOffer, FactorInfo, ImportOptions, ImportReport, MfaError,
    Step, UserSettings,
};
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
        self.0
            .proven_change_of_own_account(&header, move |service, uid, user| {
                service.begin_enrolment(uid, user, &kind, &label, &options)
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
        // A factor a device confirms (a key making its credential) is held
        // here until the device is done, for up to CONFIRM_HOLD; the caller
        // asks again while it is not.
        let (again, code_again) = (id.clone(), code.clone());
        let first = self
            .0
            .changing_own_account(&header, move |service, uid, user| {
                service.confirm_enrolment(uid, user, &id, &code)
            })
            .await?;
        let waiter = match first {
            Confirmed::Done(info) => return Ok(info),
            Confirmed::Waiting(waiter) => waiter,
        };
        let _ = tokio::time::timeout(CONFIRM_HOLD, waiter.ready()).await;
        match self
            .0
            .as_own_user(&header, move |service, uid, user| {
                service.confirm_enrolment(uid, user, &again, &code_again)
            })
            .await?
        {
            Confirmed::Done(info) => Ok(info),
            Confirmed::Waiting(_) => Err(MfaError::Pending(
                "the security key is still waiting for a touch; call ConfirmEnrolment again".into(),
            )),
        }
    }

    #[zbus(out_args("factors"))]
    async fn list_factors(
        &self,
        #[zbus(header)] header: Header<'_>,
    ) -> Result<Vec<FactorInfo>, MfaError> {
        self.0
            .as_own_user(&header, move |service, _, user| service.list_factors(user))
            .await
    }

    async fn remove_factor(
        &self,
        id: String,
        #[zbus(header)] header: Header<'_>,
    ) -> Result<(), MfaError> {
        self.0
            .proven_change_of_own_account(&header, move |service, uid, user| {
                service.remove_factor(uid, user, &id)
            })
            .await
    }

    #[zbus(out_args("codes"))]
    async fn generate_recovery_codes(
        &self,
        #[zbus(header)] header: Header<'_>,
    ) -> Result<Vec<String>, MfaError> {
        self.0
            .proven_change_of_own_account(&header, move |service, uid, user| {
                service.generate_recovery_codes(uid, user)
            })
            .await
    }

    async fn set_preferred(
        &self,
        id: String,
        #[zbus(header)] header: Header<'_>,
    ) -> Result<(), MfaError> {
        self.0
            .changing_own_account(&header, move |service, uid, user| {
                service.set_preferred(uid, user, &id)
            })
            .await
    }

    async fn set_level(
        &self,
        level: String,
        #[zbus(header)] header: Header<'_>,
    ) -> Result<(), MfaError> {
        self.0
            .proven_change_of_own_account(&header, move |service, uid, user| {
                service.set_level(uid, user, &level)
            })
            .await
    }

    #[zbus(out_args("settings"))]
    async fn get_settings(
        &self,
        #[zbus(header)] header: Header<'_>,
    ) -> Result<UserSettings, MfaError> {
        self.0
            .as_own_user(&header, move |service, _, user| service.settings(user))
            .await
    }

    #[zbus(out_args("devices"))]
    async fn list_devices(
        &self,
        #[zbus(header)] header: Header<'_>,
    ) -> Result<Vec<DeviceInfo>, MfaError> {
        self.0
            .as_own_user(&header, move |service, _, user| service.list_devices(user))
            .await
    }

    #[zbus(out_args("revoked"))]
    async fn revoke_devices(
        &self,
        id: String,
        #[zbus(header)] header: Header<'_>,
    ) -> Result<u32, MfaError> {
        self.0
            .changing_own_account(&header, move |service, uid, user| {
                service.revoke_devices(uid, user, &id)
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
        self.0
            .changing_own_account(&header, move |service, uid, user| {
                service.resync(uid, user, &id, &first, &second)
            })
            .await
    }

    #[zbus(out_args("report"))]
    async fn import_factors(
        &self,
        format: String,
        text: String,
        options: ImportOptions,
        dry_run: bool,
        #[zbus(header)] header: Header<'_>,
    ) -> Result<ImportReport, MfaError> {
        self.0
            .proven_change_of_own_account(&header, move |service, uid, user| {
                service.import(
                    Importer::Own { uid, user },
                    &format,
                    &text,
                    &options,
                    dry_run,
                )
            })
            .await
    }

    #[zbus(out_args("offer"))]
    async fn get_invitation(
        &self,
        #[zbus(header)] header: Header<'_>,
    ) -> Result<EnrolmentOffer, MfaError> {
        self.0
            .as_own_user(&header, move |service, _, user| {
                service.invitation_offer(user)
            })
            .await
    }

    #[zbus(out_args("check_value"))]
    async fn check_value(
        &self,
        id: String,
        #[zbus(header)] header: Header<'_>,
    ) -> Result<String, MfaError> {
        self.0
            .as_own_user(&header, move |service, _, user| {
                service.check_value(user, &id)
            })
            .await
    }

    #[zbus(out_args("handle", "step"))]
    async fn begin_step_up(
        &self,
        #[zbus(header)] header: Header<'_>,
    ) -> Result<(String, Step), MfaError> {
        let caller = self.0.callers.identify(&header).await?;
        let access = Arc::clone(&self.0.access);
        blocking(&self.0, move |service| {
            let user = access.own_user(caller.uid)?;
            service.begin_step_up(&caller.connection, caller.pid, caller.uid, &user)
        })
        .await
    }
}
