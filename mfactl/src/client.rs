//! The connection to mfad: the contract's proxies, a time limit on every
//! call, and every failure turned into an [`Error`].

use crate::error::Error;
use crate::prompt;
use mfa_dbus::{
    AdminProxy, AuditEntry, ClientError, ConnectError, DeviceInfo, EnrolOptions, EnrolmentOffer,
    Explanation, FactorInfo, FactorsProxy, ImportOptions, ImportReport, MfaError, Outcome,
    PolicyCheck, UserSettings, UserSummary,
};
use std::future::Future;
use std::time::Duration;
use zbus::proxy::CacheProperties;
use zbus::Connection;

/// Connecting to a local bus socket is instant or broken.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// mfad answers at once; allow for the bus activating it first.
const CALL_TIMEOUT: Duration = Duration::from_secs(30);

pub struct Client {
    connection: Connection,
    address: String,
}

impl Client {
    pub async fn connect(address: &str) -> Result<Client, Error> {
        let connection =
            mfa_dbus::connect(address, CONNECT_TIMEOUT)
                .await
                .map_err(|e| match e {
                    ConnectError::Bus(source) => Error::from_bus(&source, address),
                    ConnectError::Timeout(limit) => Error::timeout(address, limit),
                })?;
        Ok(Client {
            connection,
            address: address.to_string(),
        })
    }

    /// Run one call to mfad within the time limit.
    async fn call<T>(&self, fut: impl Future<Output = Result<T, MfaError>>) -> Result<T, Error> {
        match tokio::time::timeout(CALL_TIMEOUT, fut).await {
            Ok(result) => result.map_err(|e| Error::from_daemon(e, &self.address)),
            Err(_) => Err(Error::timeout(&self.address, CALL_TIMEOUT)),
        }
    }

    /// Run `call`; when mfad first wants a fresh proof of one of the
    /// caller's factors, let the user give it on the terminal (as at a
    /// login) and run `call` once more on this same connection, which the
    /// proof is good for.
    async fn proving<T, F, Fut>(&self, call: F) -> Result<T, Error>
    where
        F: Fn() -> Fut,
        Fut: Future<Output = Result<T, Error>>,
    {
        match call().await {
            Err(Error::StepUpRequired(_)) => {
                self.step_up().await?;
                call().await
            }
            other => other,
        }
    }

    /// Prove one of the caller's factors to mfad.
    async fn step_up(&self) -> Result<(), Error> {
        let mut terminal = prompt::Terminal;
        match mfa_dbus::run_step_up(&self.connection, &mut terminal, CALL_TIMEOUT).await {
            Ok(Outcome::Allowed) => Ok(()),
            Ok(Outcome::Skipped | Outcome::Denied(_)) => Err(Error::AccessDenied(
                "the proof of your factor was refused; nothing was changed".into(),
            )),
            Err(ClientError::Daemon(e)) => Err(Error::from_daemon(e, &self.address)),
            Err(ClientError::Timeout(limit)) => Err(Error::timeout(&self.address, limit)),
            Err(ClientError::ConversationAborted) => Err(Error::AccessDenied(
                "no answer to the proof of your factor; nothing was changed".into(),
            )),
            Err(other) => Err(Error::Refused(other.to_string())),
        }
    }

    async fn factors(&self) -> Result<FactorsProxy<'_>, Error> {
        let build = FactorsProxy::builder(&self.connection)
            .cache_properties(CacheProperties::No)
            .build();
        self.call(async { build.await.map_err(MfaError::ZBus) })
            .await
    }

    async fn admin(&self) -> Result<AdminProxy<'_>, Error> {
        let build = AdminProxy::builder(&self.connection)
            .cache_properties(CacheProperties::No)
            .build();
        self.call(async { build.await.map_err(MfaError::ZBus) })
            .await
    }

    /// Import the caller's own factors (`user` empty), or, as an admin,
    /// those of the users the file names (`user`: `*` for all of them, or
    /// one name).
    pub async fn import(
        &self,
        user: &str,
        format: &str,
        text: &str,
        options: &ImportOptions,
        dry_run: bool,
    ) -> Result<ImportReport, Error> {
        if user.is_empty() {
            return self
                .proving(|| async {
                    let proxy = self.factors().await?;
                    self.call(proxy.import_factors(format, text, options, dry_run))
                        .await
                })
                .await;
        }
        let proxy = self.admin().await?;
        let only = if user == "*" { "" } else { user };
        self.call(proxy.import_user_factors(only, format, text, options, dry_run))
            .await
    }

    pub async fn list_factors(&self) -> Result<Vec<FactorInfo>, Error> {
        let proxy = self.factors().await?;
        self.call(proxy.list_factors()).await
    }

    pub async fn remove_factor(&self, id: &str) -> Result<(), Error> {
        self.proving(|| async {
            let proxy = self.factors().await?;
            self.call(proxy.remove_factor(id)).await
        })
        .await
    }

    pub async fn generate_recovery_codes(&self) -> Result<Vec<String>, Error> {
        self.proving(|| async {
            let proxy = self.factors().await?;
            self.call(proxy.generate_recovery_codes()).await
        })
        .await
    }

    pub async fn list_users(&self) -> Result<Vec<UserSummary>, Error> {
        let proxy = self.admin().await?;
        self.call(proxy.list_users()).await
    }

    pub async fn list_user_factors(&self, user: &str) -> Result<Vec<FactorInfo>, Error> {
        let proxy = self.admin().await?;
        self.call(proxy.list_user_factors(user)).await
    }

    pub async fn reset_user(&self, user: &str) -> Result<u32, Error> {
        let proxy = self.admin().await?;
        self.call(proxy.reset_user(user)).await
    }

    pub async fn unlock_user(&self, user: &str) -> Result<bool, Error> {
        let proxy = self.admin().await?;
        self.call(proxy.unlock_user(user)).await
    }

    pub async fn set_preferred(&self, id: &str) -> Result<(), Error> {
        let proxy = self.factors().await?;
        self.call(proxy.set_preferred(id)).await
    }

    pub async fn set_level(&self, level: &str) -> Result<(), Error> {
        self.proving(|| async {
            let proxy = self.factors().await?;
            self.call(proxy.set_level(level)).await
        })
        .await
    }

    pub async fn settings(&self) -> Result<UserSettings, Error> {
        let proxy = self.factors().await?;
        self.call(proxy.get_settings()).await
    }

    /// Trusted devices: the caller's own, or `user`'s (admin).
    pub async fn devices(&self, user: Option<&str>) -> Result<Vec<DeviceInfo>, Error> {
        match user {
            None => {
                let proxy = self.factors().await?;
                self.call(proxy.list_devices()).await
            }
            Some(user) => {
                let proxy = self.admin().await?;
                self.call(proxy.list_user_devices(user)).await
            }
        }
    }

    /// Forget device `id` (empty: all), the caller's own or `user`'s (admin).
    pub async fn revoke_devices(&self, user: Option<&str>, id: &str) -> Result<u32, Error> {
        match user {
            None => {
                let proxy = self.factors().await?;
                self.call(proxy.revoke_devices(id)).await
            }
            Some(user) => {
                let proxy = self.admin().await?;
                self.call(proxy.revoke_user_devices(user, id)).await
            }
        }
    }

    /// Resync a factor: the caller's own, or `user`'s (admin).
    pub async fn resync(
        &self,
        user: Option<&str>,
        id: &str,
        first: &str,
        second: &str,
    ) -> Result<(), Error> {
        match user {
            None => {
                let proxy = self.factors().await?;
                self.call(proxy.resync_factor(id, first, second)).await
            }
            Some(user) => {
                let proxy = self.admin().await?;
                self.call(proxy.resync_user_factor(user, id, first, second))
                    .await
            }
        }
    }

    /// An admin sets up a factor for `user`, active at once.
    pub async fn set_up_user_factor(
        &self,
        user: &str,
        kind: &str,
        label: &str,
        options: &EnrolOptions,
        invite: bool,
    ) -> Result<EnrolmentOffer, Error> {
        let proxy = self.admin().await?;
        self.call(proxy.set_up_user_factor(user, kind, label, options, invite))
            .await
    }

    /// The factor an admin invited the caller to set up.
    pub async fn invitation(&self) -> Result<EnrolmentOffer, Error> {
        let proxy = self.factors().await?;
        self.call(proxy.get_invitation()).await
    }

    /// The check value of factor `id`: the caller's own, or `user`'s (admin).
    pub async fn check_value(&self, user: Option<&str>, id: &str) -> Result<String, Error> {
        match user {
            None => {
                let proxy = self.factors().await?;
                self.call(proxy.check_value(id)).await
            }
            Some(user) => {
                let proxy = self.admin().await?;
                self.call(proxy.user_check_value(user, id)).await
            }
        }
    }

    pub async fn set_user_email(
        &self,
        user: &str,
        address: &str,
    ) -> Result<mfa_dbus::FactorInfo, Error> {
        let proxy = self.admin().await?;
        self.call(proxy.set_user_email(user, address)).await
    }

    pub async fn approve_factor(&self, user: &str, id: &str, approved: bool) -> Result<(), Error> {
        let proxy = self.admin().await?;
        self.call(proxy.approve_factor(user, id, approved)).await
    }

    pub async fn explain_policy(
        &self,
        user: &str,
        service: &str,
        rhost: &str,
        auth_info: &str,
    ) -> Result<Explanation, Error> {
        let proxy = self.admin().await?;
        self.call(proxy.explain_policy(user, service, rhost, auth_info))
            .await
    }

    pub async fn audit(
        &self,
        user: &str,
        since: u64,
        limit: u32,
    ) -> Result<Vec<AuditEntry>, Error> {
        let proxy = self.admin().await?;
        self.call(proxy.audit(user, since, limit)).await
    }

    pub async fn reload_policy(&self) -> Result<Vec<String>, Error> {
        let proxy = self.admin().await?;
        self.call(proxy.reload_policy()).await
    }

    pub async fn check_policy(&self, config: &str) -> Result<PolicyCheck, Error> {
        let proxy = self.admin().await?;
        self.call(proxy.check_policy(config)).await
    }

    pub async fn migrate_store(
        &self,
        config: &str,
        dry_run: bool,
    ) -> Result<mfa_dbus::StoreMigration, Error> {
        let proxy = self.admin().await?;
        self.call(proxy.migrate_store(config, dry_run)).await
    }
}

/// The two enrolment calls, as the enrolment flow needs them (a fake in
/// its tests).
pub trait Enrolment {
    async fn begin(
        &self,
        kind: &str,
        label: &str,
        options: &EnrolOptions,
    ) -> Result<EnrolmentOffer, Error>;
    async fn confirm(&self, id: &str, code: &str) -> Result<FactorInfo, Error>;
}

impl Enrolment for Client {
    async fn begin(
        &self,
        kind: &str,
        label: &str,
        options: &EnrolOptions,
    ) -> Result<EnrolmentOffer, Error> {
        self.proving(|| async {
            let proxy = self.factors().await?;
            self.call(proxy.begin_enrolment(kind, label, options)).await
        })
        .await
    }

    async fn confirm(&self, id: &str, code: &str) -> Result<FactorInfo, Error> {
        let proxy = self.factors().await?;
        self.call(proxy.confirm_enrolment(id, code)).await
    }
}
