//! An admin sets up a factor for someone who cannot (a new hire, a lost
//! phone): a TOTP or HOTP factor, active at once, whose secret the admin
//! is shown this once to hand over (a QR code on paper, a programmed
//! token). The admin vouches for it as for an address (`set-email`): no
//! code confirms it. Audited, and the notify command told.

use super::{account_name, new_id, Service};
use crate::error::DaemonError;
use crate::mechanism::{EnrolError, EnrolRequest, FactorKind};
use crate::notify::Event;
use crate::store::{FactorRecord, Inserted};
use mfa_dbus::{EnrolOptions, EnrolmentOffer};

impl Service {
    pub fn set_up_for_user(
        &self,
        caller_uid: u32,
        user: &str,
        kind: &str,
        label: &str,
        options: &EnrolOptions,
    ) -> Result<EnrolmentOffer, DaemonError> {
        super::validate_user(user)?;
        let kind = match FactorKind::from_name(kind) {
            Some(k @ (FactorKind::Totp | FactorKind::Hotp)) => k,
            _ => {
                return Err(DaemonError::InvalidArgument(format!(
                    "an admin sets up \"totp\" or \"hotp\" factors for others, not {kind:?}: \
                     a security key is enrolled by its user at the machine, an address with set-email"
                )))
            }
        };
        let mechanism = self.mechanisms.get(kind).ok_or_else(|| {
            DaemonError::InvalidArgument(format!(
                "{kind} factors are not enabled in this mfad (mfad.toml(5))"
            ))
        })?;
        match self.directory.user(user) {
            Ok(Some(_)) => {}
            Ok(None) => return Err(DaemonError::NotFound(format!("no user {user:?} here"))),
            Err(e) => {
                return Err(DaemonError::Internal(format!(
                    "cannot look up {user:?}: {e}"
                )))
            }
        }
        let label = if label.is_empty() { kind.name() } else { label };
        if label.chars().count() > super::MAX_LABEL || label.chars().any(char::is_control) {
            return Err(DaemonError::InvalidArgument(format!(
                "label must be at most {} characters, without control characters",
                super::MAX_LABEL
            )));
        }
        let now = self.clock.now();
        let new = mechanism
            .enrol(&EnrolRequest {
                user,
                label,
                options,
                account: &account_name(user, &self.hostname, label, kind),
                issuer: &self.config.enrolment.issuer,
                now,
            })
            .map_err(|e| match e {
                EnrolError::Invalid(m) => DaemonError::InvalidArgument(m),
                EnrolError::Failed(m) => DaemonError::DeviceFailed(m),
            })?;
        let factor = FactorRecord {
            id: new_id()?,
            user: user.to_string(),
            kind,
            label: label.to_string(),
            counter: new.counter,
            data: new.data,
            confirmed: true,
            approved: false,
            created: now,
            last_used: 0,
            expires: 0,
        };
        if let Inserted::TooManyFactors = self
            .store
            .insert_confirmed_within(&factor, self.factor_limits())?
        {
            return Err(self.too_many_factors());
        }
        self.audit.change(
            "set-up",
            caller_uid,
            user,
            &[("factor", &factor.id), ("method", kind.name())],
        );
        self.notifier
            .notify(&self.audit, Event::SetUp, user, caller_uid);
        Ok(EnrolmentOffer {
            id: factor.id,
            label: factor.label,
            expires: 0,
            ..new.offer
        })
    }
}
