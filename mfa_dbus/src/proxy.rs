//! Proxies for the three interfaces. mfad implements the same method
//! signatures with `#[zbus::interface]`; the golden introspection test keeps
//! both sides and `packaging/dbus/org.pam_mfa.Mfad1.xml` in step.

use crate::error::MfaError;
use crate::types::{EnrolOptions, EnrolmentOffer, FactorInfo, LoginRequest, Step, UserSummary};

#[zbus::proxy(
    interface = "org.pam_mfa.Login1",
    default_service = "org.pam_mfa.Mfad1",
    default_path = "/org/pam_mfa/Mfad1",
    gen_blocking = false
)]
pub trait Login {
    /// Begin a login; returns an opaque handle and the first step.
    fn start(&self, request: &LoginRequest) -> Result<(String, Step), MfaError>;
    /// Answer the current step (empty after an info step); returns the next.
    fn answer(&self, handle: &str, answer: &str) -> Result<Step, MfaError>;
    /// Abandon a login (conversation aborted by the user or the module).
    fn cancel(&self, handle: &str) -> Result<(), MfaError>;
}

#[zbus::proxy(
    interface = "org.pam_mfa.Factors1",
    default_service = "org.pam_mfa.Mfad1",
    default_path = "/org/pam_mfa/Mfad1",
    gen_blocking = false
)]
pub trait Factors {
    /// Start registering a factor for the calling user. It is inactive until
    /// confirmed with a code.
    fn begin_enrolment(
        &self,
        kind: &str,
        label: &str,
        options: &EnrolOptions,
    ) -> Result<EnrolmentOffer, MfaError>;
    /// Confirm a pending registration with a code from the authenticator.
    fn confirm_enrolment(&self, id: &str, code: &str) -> Result<FactorInfo, MfaError>;
    /// The calling user's factors, confirmed and pending.
    fn list_factors(&self) -> Result<Vec<FactorInfo>, MfaError>;
    /// Remove one of the calling user's factors.
    fn remove_factor(&self, id: &str) -> Result<(), MfaError>;
    /// A new batch of one-time recovery codes for the calling user,
    /// replacing any earlier batch. Shown this once; mfad keeps only hashes.
    fn generate_recovery_codes(&self) -> Result<Vec<String>, MfaError>;
}

#[zbus::proxy(
    interface = "org.pam_mfa.Admin1",
    default_service = "org.pam_mfa.Mfad1",
    default_path = "/org/pam_mfa/Mfad1",
    gen_blocking = false
)]
pub trait Admin {
    /// Every user that has at least one factor, confirmed or pending.
    fn list_users(&self) -> Result<Vec<UserSummary>, MfaError>;
    /// One user's factors.
    fn list_user_factors(&self, user: &str) -> Result<Vec<FactorInfo>, MfaError>;
    /// Remove all factors of a user; returns how many were removed.
    fn reset_user(&self, user: &str) -> Result<u32, MfaError>;
    /// Clear a user's lockout and failure count; true if they were locked.
    fn unlock_user(&self, user: &str) -> Result<bool, MfaError>;
}
