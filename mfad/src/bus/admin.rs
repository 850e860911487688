//! org.pam_mfa.Admin1: root or the configured admin group.

use super::Shared;
use crate::error::DaemonError;
use crate::service::Importer;
use mfa_dbus::{
    AuditEntry, DeviceInfo, EnrolOptions, EnrolmentOffer, Explanation, FactorInfo, ImportOptions,
    ImportReport, LoginRequest, MfaError, PolicyCheck, StoreMigration, UserSummary,
};
use zbus::message::Header;

pub struct AdminInterface(pub Shared);

/// An mfad.toml text sent over the bus is refused past this.
const MAX_CONFIG_TEXT: usize = 1024 * 1024;

fn check_size(config: &str) -> Result<(), DaemonError> {
    if config.len() > MAX_CONFIG_TEXT {
        return Err(DaemonError::InvalidArgument(
            "config text is larger than 1 MiB".into(),
        ));
    }
    Ok(())
}

#[zbus::interface(name = "org.pam_mfa.Admin1")]
impl AdminInterface {
    #[zbus(out_args("users"))]
    async fn list_users(
        &self,
        #[zbus(header)] header: Header<'_>,
    ) -> Result<Vec<UserSummary>, MfaError> {
        self.0
            .as_admin(&header, move |service, _| service.list_users())
            .await
    }

    #[zbus(out_args("factors"))]
    async fn list_user_factors(
        &self,
        user: String,
        #[zbus(header)] header: Header<'_>,
    ) -> Result<Vec<FactorInfo>, MfaError> {
        self.0
            .as_admin(&header, move |service, _| {
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
        self.0
            .as_admin(&header, move |service, uid| service.reset_user(uid, &user))
            .await
    }

    #[zbus(out_args("was_locked"))]
    async fn unlock_user(
        &self,
        user: String,
        #[zbus(header)] header: Header<'_>,
    ) -> Result<bool, MfaError> {
        self.0
            .as_admin(&header, move |service, uid| service.unlock_user(uid, &user))
            .await
    }

    async fn approve_factor(
        &self,
        user: String,
        id: String,
        approved: bool,
        #[zbus(header)] header: Header<'_>,
    ) -> Result<(), MfaError> {
        self.0
            .as_admin(&header, move |service, uid| {
                service.approve_factor(uid, &user, &id, approved)
            })
            .await
    }

    #[zbus(out_args("devices"))]
    async fn list_user_devices(
        &self,
        user: String,
        #[zbus(header)] header: Header<'_>,
    ) -> Result<Vec<DeviceInfo>, MfaError> {
        self.0
            .as_admin(&header, move |service, _| {
                crate::login::validate_user(&user)?;
                service.list_devices(&user)
            })
            .await
    }

    #[zbus(out_args("revoked"))]
    async fn revoke_user_devices(
        &self,
        user: String,
        id: String,
        #[zbus(header)] header: Header<'_>,
    ) -> Result<u32, MfaError> {
        self.0
            .as_admin(&header, move |service, uid| {
                crate::login::validate_user(&user)?;
                service.revoke_devices(uid, &user, &id)
            })
            .await
    }

    #[zbus(out_args("explanation"))]
    async fn explain_policy(
        &self,
        user: String,
        service: String,
        rhost: String,
        auth_info: String,
        #[zbus(header)] header: Header<'_>,
    ) -> Result<Explanation, MfaError> {
        let request = LoginRequest {
            user,
            service,
            rhost,
            auth_info,
            ..Default::default()
        };
        self.0
            .as_admin(&header, move |svc, _| svc.explain(&request))
            .await
    }

    #[zbus(out_args("check"))]
    async fn check_policy(
        &self,
        config: String,
        #[zbus(header)] header: Header<'_>,
    ) -> Result<PolicyCheck, MfaError> {
        self.0
            .as_admin(&header, move |service, _| {
                check_size(&config)?;
                Ok(service.check_policy(&config))
            })
            .await
    }

    #[zbus(out_args("entries"))]
    async fn audit(
        &self,
        user: String,
        since: u64,
        limit: u32,
        #[zbus(header)] header: Header<'_>,
    ) -> Result<Vec<AuditEntry>, MfaError> {
        self.0
            .as_admin(&header, move |service, _| {
                if !user.is_empty() {
                    crate::login::validate_user(&user)?;
                }
                service.audit_history(&user, since, limit)
            })
            .await
    }

    async fn resync_user_factor(
        &self,
        user: String,
        id: String,
        first: String,
        second: String,
        #[zbus(header)] header: Header<'_>,
    ) -> Result<(), MfaError> {
        self.0
            .as_admin(&header, move |service, uid| {
                crate::login::validate_user(&user)?;
                service.resync(uid, &user, &id, &first, &second)
            })
            .await
    }

    #[zbus(out_args("notes"))]
    async fn reload_policy(
        &self,
        #[zbus(header)] header: Header<'_>,
    ) -> Result<Vec<String>, MfaError> {
        self.0
            .as_admin(&header, move |service, uid| service.reload_policy(uid))
            .await
    }

    #[zbus(out_args("report"))]
    async fn import_user_factors(
        &self,
        user: String,
        format: String,
        text: String,
        options: ImportOptions,
        dry_run: bool,
        #[zbus(header)] header: Header<'_>,
    ) -> Result<ImportReport, MfaError> {
        self.0
            .as_admin(&header, move |service, uid| {
                if !user.is_empty() {
                    crate::login::validate_user(&user)?;
                }
                let only = (!user.is_empty()).then_some(user.as_str());
                service.import(
                    Importer::Admin { uid, only },
                    &format,
                    &text,
                    &options,
                    dry_run,
                )
            })
            .await
    }

    #[zbus(out_args("migration"))]
    async fn migrate_store(
        &self,
        config: String,
        dry_run: bool,
        #[zbus(header)] header: Header<'_>,
    ) -> Result<StoreMigration, MfaError> {
        self.0
            .as_admin(&header, move |service, uid| {
                check_size(&config)?;
                service.migrate_store(uid, &config, dry_run)
            })
            .await
    }

    #[zbus(out_args("factor"))]
    async fn set_user_email(
        &self,
        user: String,
        address: String,
        #[zbus(header)] header: Header<'_>,
    ) -> Result<FactorInfo, MfaError> {
        self.0
            .as_admin(&header, move |service, uid| {
                service.set_user_email(uid, &user, &address)
            })
            .await
    }

    #[zbus(out_args("offer"))]
    async fn set_up_user_factor(
        &self,
        user: String,
        kind: String,
        label: String,
        options: EnrolOptions,
        invite: bool,
        #[zbus(header)] header: Header<'_>,
    ) -> Result<EnrolmentOffer, MfaError> {
        self.0
            .as_admin(&header, move |service, uid| {
                service.set_up_for_user(uid, &user, &kind, &label, &options, invite)
            })
            .await
    }

    #[zbus(out_args("check_value"))]
    async fn user_check_value(
        &self,
        user: String,
        id: String,
        #[zbus(header)] header: Header<'_>,
    ) -> Result<String, MfaError> {
        self.0
            .as_admin(&header, move |service, _| {
                crate::login::validate_user(&user)?;
                service.check_value(&user, &id)
            })
            .await
    }
}
