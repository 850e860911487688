//! An admin sets up a factor for someone who cannot (a new hire, a lost
//! phone), a TOTP or HOTP factor, one of two ways:
//! - handed over: active at once, its secret shown to the admin this once
//!   (a QR code on paper, a programmed token); the admin vouches for it as
//!   for an address (`set-email`): no code confirms it;
//! - an invitation: pending for [`INVITATION_VALID`], its secret shown to
//!   no one but the user, who confirms it with a code at their next login
//!   (the QR code and secret are shown there) or with `mfactl invitation`.
//!
//! Audited, and the notify command told.

use super::{account_name, new_id, Service};
use crate::error::DaemonError;
use crate::login::{self, Phase};
use crate::mechanism::{otpauth, FactorData, FactorKind};
use crate::notify::Event;
use crate::store::{FactorRecord, Inserted, StoreError};
use mfa_dbus::{EnrolOptions, EnrolmentOffer, LoginRequest, Step};

/// Seconds an invitation waits for its user.
pub const INVITATION_VALID: u64 = 7 * 86_400;

pub const INVITED_TEXT: &str = "An administrator set up a second factor for you.";

impl Service {
    pub fn set_up_for_user(
        &self,
        caller_uid: u32,
        user: &str,
        kind: &str,
        label: &str,
        options: &EnrolOptions,
        invite: bool,
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
        self.known_user(user)?;
        let (label, new) = self.make_factor(user, kind, label, options)?;
        let now = self.clock.now();
        let factor = FactorRecord {
            id: new_id()?,
            user: user.to_string(),
            kind,
            label: label.to_string(),
            counter: new.counter,
            data: new.data,
            confirmed: !invite,
            approved: false,
            created: now,
            last_used: 0,
            expires: if invite { now + INVITATION_VALID } else { 0 },
        };
        let inserted = match invite {
            true => self.store.insert_pending(&factor, self.factor_limits())?,
            false => self
                .store
                .insert_confirmed_within(&factor, self.factor_limits())?,
        };
        if let Inserted::TooManyFactors = inserted {
            return Err(self.too_many_factors());
        }
        let (action, event) = match invite {
            true => {
                self.store
                    .put_invitation(user, &factor.id, caller_uid, now)?;
                ("invite", Event::Invite)
            }
            false => ("set-up", Event::SetUp),
        };
        self.audit.change(
            action,
            caller_uid,
            user,
            &[("factor", &factor.id), ("method", kind.name())],
        );
        self.notifier.notify(&self.audit, event, user, caller_uid);
        if invite {
            // The secret is the user's alone: the admin sees that it waits.
            return Ok(EnrolmentOffer {
                id: factor.id,
                kind: kind.name().into(),
                label: factor.label,
                expires: factor.expires,
                instructions: format!(
                    "{user} sets it up at their next login, or with `mfactl invitation`"
                ),
                ..EnrolmentOffer::default()
            });
        }
        Ok(EnrolmentOffer {
            id: factor.id,
            label: factor.label,
            expires: 0,
            ..new.offer
        })
    }

    /// `user`'s invited factor as its owner sees it (secret, URI, check
    /// value) and the text a login shows for it; `None` without one.
    pub(super) fn invited(
        &self,
        user: &str,
    ) -> Result<Option<(EnrolmentOffer, String)>, StoreError> {
        let now = self.clock.now();
        let Some(invitation) = self.store.invitation(user, now)? else {
            return Ok(None);
        };
        let factors = self.store.factors(user, now)?;
        let Some(factor) = factors.iter().find(|f| f.id == invitation.factor) else {
            return Ok(None);
        };
        let FactorData::Otp(params) = &factor.data else {
            return Ok(None);
        };
        let account = account_name(user, &self.hostname, &factor.label, factor.kind);
        let shown = otpauth::shown(
            factor.kind,
            params,
            factor.counter,
            &account,
            &self.config.enrolment.issuer,
            &factor.label,
        );
        Ok(shown.ok().map(|(offer, text)| {
            (
                EnrolmentOffer {
                    id: factor.id.clone(),
                    expires: factor.expires,
                    ..offer
                },
                text,
            )
        }))
    }

    /// `mfactl invitation`: the caller's invited factor, to confirm.
    pub fn invitation_offer(&self, user: &str) -> Result<EnrolmentOffer, DaemonError> {
        self.invited(user)?
            .map(|(offer, _)| offer)
            .ok_or_else(|| DaemonError::NotFound("no invitation waits for you".into()))
    }

    /// A login of a user without a factor whom an admin invited: the
    /// invited factor's QR code and secret, then its first code.
    pub(super) fn invitation_at_login(
        &self,
        request: &LoginRequest,
    ) -> Result<Option<(Phase, Vec<Step>)>, StoreError> {
        Ok(self.invited(&request.user)?.map(|(offer, text)| {
            (
                Phase::Confirm {
                    factor: offer.id,
                    prompt: login::CONFIRM_PROMPT,
                },
                vec![
                    Step::info(format!("{INVITED_TEXT}\n{text}")),
                    Step::prompt(login::CONFIRM_PROMPT, false),
                ],
            )
        }))
    }
}
