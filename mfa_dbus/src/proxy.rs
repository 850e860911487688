//! Proxies for the three interfaces. mfad implements the same method
//! signatures with `#[zbus::interface]`; the golden introspection test keeps
//! both sides and `packaging/dbus/org.pam_mfa.Mfad1.xml` in step.

use crate::error::MfaError;
use crate::types::{
    AuditEntry, DeviceInfo, EnrolOptions, EnrolmentOffer, Explanation, FactorInfo, ImportOptions,
    ImportReport, LoginRequest, PolicyCheck, Step, StoreMigration, UserSettings, UserSummary,
};

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
    /// `deadline` is when the caller stops waiting for the reply, in
    /// [`monotonic_ms`](crate::monotonic_ms) (0: never): an answer mfad
    /// reaches later is checked against nothing and spends no code.
    fn answer(&self, handle: &str, answer: &str, deadline: u64) -> Result<Step, MfaError>;
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
    /// Ask this confirmed factor first at login.
    fn set_preferred(&self, id: &str) -> Result<(), MfaError>;
    /// Choose when to be asked: `privileged`, `appropriate` or `always`
    /// (refused below the policy's minimum); empty to drop the choice.
    fn set_level(&self, level: &str) -> Result<(), MfaError>;
    /// The calling user's level and preferred factor.
    fn get_settings(&self) -> Result<UserSettings, MfaError>;
    /// The calling user's trusted devices.
    fn list_devices(&self) -> Result<Vec<DeviceInfo>, MfaError>;
    /// Forget one trusted device by id, or all with an empty id; returns how many.
    fn revoke_devices(&self, id: &str) -> Result<u32, MfaError>;
    /// Bring one of the caller's factors back in step from two consecutive
    /// codes (HOTP: up to 1000 ahead; TOTP: clock drift), resetting drift.
    fn resync_factor(&self, id: &str, first: &str, second: &str) -> Result<(), MfaError>;
    /// Import the calling user's factors from a file of another tool
    /// (`format`: `pam-u2f`), every line or none; `dry_run` changes nothing.
    fn import_factors(
        &self,
        format: &str,
        text: &str,
        options: &ImportOptions,
        dry_run: bool,
    ) -> Result<ImportReport, MfaError>;
    /// Begin proving one of the calling user's confirmed factors, as a
    /// login would: returns a handle and the first step, answered through
    /// Login1.Answer on the same connection. Once it allows, changes that
    /// need a fresh proof (`StepUpRequired`) are accepted from this
    /// connection for a few minutes.
    fn begin_step_up(&self) -> Result<(String, Step), MfaError>;
    /// The factor an admin invited the caller to set up (its secret, to
    /// confirm with ConfirmEnrolment).
    fn get_invitation(&self) -> Result<EnrolmentOffer, MfaError>;
    /// The check value of one of the caller's confirmed TOTP or HOTP
    /// factors: its code for counter 0 (TOTP: time 0), to compare with the
    /// app or token; never a valid login code once the factor is confirmed.
    fn check_value(&self, id: &str) -> Result<String, MfaError>;
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
    /// Approve a user's factor for privileged services, or withdraw it.
    fn approve_factor(&self, user: &str, id: &str, approved: bool) -> Result<(), MfaError>;
    /// A user's trusted devices.
    fn list_user_devices(&self, user: &str) -> Result<Vec<DeviceInfo>, MfaError>;
    /// Bring a user's factor back in step from two consecutive codes.
    fn resync_user_factor(
        &self,
        user: &str,
        id: &str,
        first: &str,
        second: &str,
    ) -> Result<(), MfaError>;
    /// Forget one of a user's devices by id, or all with an empty id.
    fn revoke_user_devices(&self, user: &str, id: &str) -> Result<u32, MfaError>;
    /// What a login of `user` to `service` from `rhost` would meet, and why.
    fn explain_policy(
        &self,
        user: &str,
        service: &str,
        rhost: &str,
        auth_info: &str,
    ) -> Result<Explanation, MfaError>;
    /// Check an mfad.toml text: errors refuse it (it would lock out root or
    /// every admin); warnings do not.
    fn check_policy(&self, config: &str) -> Result<PolicyCheck, MfaError>;
    /// Read mfad.toml again and put its policy in force for new logins; a
    /// file with an error changes nothing. Returns notes on other sections
    /// that changed and need a restart.
    fn reload_policy(&self) -> Result<Vec<String>, MfaError>;
    /// Recorded decisions and changes since `since` (seconds since the
    /// epoch), of `user` or everyone (empty), the latest `limit`, oldest first.
    fn audit(&self, user: &str, since: u64, limit: u32) -> Result<Vec<AuditEntry>, MfaError>;
    /// Import factors for the users a file names (`user` non-empty: that
    /// user's lines only), every line or none; `dry_run` changes nothing.
    fn import_user_factors(
        &self,
        user: &str,
        format: &str,
        text: &str,
        options: &ImportOptions,
        dry_run: bool,
    ) -> Result<ImportReport, MfaError>;
    /// Copy the whole store of this host into the empty PostgreSQL database
    /// named by `config` (an mfad.toml text; empty: mfad's own file, read
    /// again), then refuse every call until mfad is restarted to use it.
    /// `dry_run` checks both stores and counts, changing nothing.
    fn migrate_store(&self, config: &str, dry_run: bool) -> Result<StoreMigration, MfaError>;
    /// Send a user's e-mail codes to `address` (an admin vouches for it; no
    /// code confirms it), replacing their e-mail factor if they have one.
    fn set_user_email(&self, user: &str, address: &str) -> Result<FactorInfo, MfaError>;
    /// Set up a TOTP or HOTP factor for a user, active at once: the offer
    /// holds its secret, shown this once for the admin to hand over.
    /// With `invite`, the factor is pending instead, its secret shown to
    /// no one but the user, who sets it up at their next login or with
    /// Factors1.GetInvitation.
    fn set_up_user_factor(
        &self,
        user: &str,
        kind: &str,
        label: &str,
        options: &EnrolOptions,
        invite: bool,
    ) -> Result<EnrolmentOffer, MfaError>;
    /// The check value of a user's confirmed TOTP or HOTP factor.
    fn user_check_value(&self, user: &str, id: &str) -> Result<String, MfaError>;
}
