//! An admin sets the address a user's e-mail codes go to: taken as it is
//! (the admin vouches for it), replacing the user's e-mail factor if any.

use super::{info, new_id, Service};
use crate::error::DaemonError;
use crate::mechanism::email::{mask, valid_address, EmailFactor};
use crate::mechanism::{FactorData, FactorKind};
use crate::store::{FactorRecord, Inserted};
use mfa_dbus::FactorInfo;

impl Service {
    pub fn set_user_email(
        &self,
        caller_uid: u32,
        user: &str,
        address: &str,
    ) -> Result<FactorInfo, DaemonError> {
        super::validate_user(user)?;
        if self.mechanisms.get(FactorKind::Email).is_none() {
            return Err(DaemonError::InvalidArgument(
                "email factors are not enabled in this mfad ([email] in mfad.toml(5))".into(),
            ));
        }
        valid_address(address).map_err(DaemonError::InvalidArgument)?;
        self.known_user(user)?;
        let now = self.clock.now();
        let factor = FactorRecord {
            id: new_id()?,
            user: user.to_string(),
            kind: FactorKind::Email,
            label: "email".into(),
            counter: 0,
            data: FactorData::Email(Box::new(EmailFactor::address_only(address))),
            confirmed: true,
            approved: false,
            created: now,
            last_used: 0,
            expires: 0,
        };
        let earlier: Vec<String> = self
            .store
            .factors(user, now)?
            .into_iter()
            .filter(|f| f.kind == FactorKind::Email && f.confirmed)
            .map(|f| f.id)
            .collect();
        // Room for the new one while the old one is still there: one over
        // the limit is fine, it goes right after.
        let limits = crate::store::FactorLimits {
            max_factors: self.config.limits.max_factors.saturating_add(1),
            ..self.factor_limits()
        };
        if let Inserted::TooManyFactors = self.store.insert_confirmed_within(&factor, limits)? {
            return Err(self.too_many_factors());
        }
        for id in &earlier {
            self.store.remove_factor(user, id)?;
        }
        self.audit.change(
            "set-email",
            caller_uid,
            user,
            &[
                ("factor", &factor.id),
                ("address", &mask(address)),
                ("replaced", &earlier.join(",")),
            ],
        );
        Ok(info(&factor))
    }
}
