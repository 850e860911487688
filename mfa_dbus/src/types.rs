//! Values exchanged over the bus. Field order is the wire order: changing it
//! changes the D-Bus signature, which means a new interface version.

use serde::{Deserialize, Serialize};
use serde_repr::{Deserialize_repr, Serialize_repr};
use std::fmt;
use zbus::zvariant::Type;

/// What the PAM module knows about a login, taken from PAM items only.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, Type)]
pub struct LoginRequest {
    /// `PAM_USER`.
    pub user: String,
    /// `PAM_SERVICE` (sshd, sudo, login, …).
    pub service: String,
    /// `PAM_RHOST`, empty for local logins.
    pub rhost: String,
    /// `PAM_RUSER`, empty when unset.
    pub ruser: String,
    /// `PAM_TTY`, empty when unset.
    pub tty: String,
    /// `SSH_AUTH_INFO_0` from the PAM environment (sshd `ExposeAuthInfo`),
    /// empty when unset.
    pub auth_info: String,
    /// Wrong answers allowed in this login (module option `max_tries`);
    /// 0 = mfad's `[login].max_tries`. mfad uses the smaller of the two.
    pub max_tries: u32,
}

/// What the module must do next.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize_repr, Deserialize_repr, Type)]
#[repr(u32)]
pub enum StepKind {
    /// Show `text`, then answer with an empty string.
    Info = 0,
    /// Ask `text` without echo; answer with what the user typed.
    PromptEchoOff = 1,
    /// Ask `text` with echo; answer with what the user typed.
    PromptEchoOn = 2,
    /// The second factor is satisfied. Terminal.
    Allow = 3,
    /// Refused for `reason`; `text` is shown to the user. Terminal.
    Deny = 4,
    /// Something is under way that the user must act on (touch a key):
    /// show `text` if it is not empty, then answer with an empty string at
    /// once. mfad holds that answer until the work is done or
    /// [`WAIT_HOLD_MS`] have passed, and replies with the next step — a
    /// `Wait` with an empty text while it is still under way.
    Wait = 5,
    /// No second factor was needed, and none was checked: not required,
    /// exempt, a bypass network, a trusted device, MFA off, an offer to
    /// enrol declined. Terminal. What the module returns for it is the PAM
    /// line's choice (`skip=`), never mfad's.
    Skip = 6,
}

/// The longest mfad holds an answer to a [`StepKind::Wait`] step, in
/// milliseconds: well below the shortest per-call timeout a client may use
/// (the module's `timeout=` is at least 1 s).
pub const WAIT_HOLD_MS: u64 = 500;

/// Why a login was refused; the module maps each to one PAM code.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize_repr, Deserialize_repr, Type)]
#[repr(u32)]
pub enum DenyReason {
    /// Not a denial (the step is not `Deny`).
    None = 0,
    /// The last answer was wrong (or replayed) and no tries are left for
    /// another reason than the try limit.
    WrongCode = 1,
    /// The per-login try limit was reached.
    MaxTries = 2,
    /// The user has no usable factor and policy requires one.
    NotEnrolled = 3,
    /// The user is locked out.
    Locked = 4,
    /// The login took longer than the configured time limit.
    Expired = 5,
    /// mfad could not decide (store error, …); fail closed.
    Internal = 6,
}

/// One step of the login conversation.
#[derive(Clone, PartialEq, Serialize, Deserialize, Type)]
pub struct Step {
    pub kind: StepKind,
    pub reason: DenyReason,
    pub text: String,
}

impl Step {
    pub fn info(text: impl Into<String>) -> Self {
        Step {
            kind: StepKind::Info,
            reason: DenyReason::None,
            text: text.into(),
        }
    }
    pub fn prompt(text: impl Into<String>, echo: bool) -> Self {
        let kind = if echo {
            StepKind::PromptEchoOn
        } else {
            StepKind::PromptEchoOff
        };
        Step {
            kind,
            reason: DenyReason::None,
            text: text.into(),
        }
    }
    /// Show `text` (if any) while something is under way; see [`StepKind::Wait`].
    pub fn wait(text: impl Into<String>) -> Self {
        Step {
            kind: StepKind::Wait,
            reason: DenyReason::None,
            text: text.into(),
        }
    }
    pub fn allow() -> Self {
        Step {
            kind: StepKind::Allow,
            reason: DenyReason::None,
            text: String::new(),
        }
    }
    /// Nothing was asked that proves a second factor; see [`StepKind::Skip`].
    pub fn skip() -> Self {
        Step {
            kind: StepKind::Skip,
            reason: DenyReason::None,
            text: String::new(),
        }
    }
    pub fn deny(reason: DenyReason, text: impl Into<String>) -> Self {
        Step {
            kind: StepKind::Deny,
            reason,
            text: text.into(),
        }
    }
    pub fn is_terminal(&self) -> bool {
        matches!(self.kind, StepKind::Allow | StepKind::Deny | StepKind::Skip)
    }
}

impl fmt::Debug for Step {
    // Prompt and info texts never carry codes, but a QR code or a secret shown
    // during enrolment at login would: keep them out of debug output.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Step")
            .field("kind", &self.kind)
            .field("reason", &self.reason)
            .field("text_len", &self.text.len())
            .finish()
    }
}

/// Shortest secret [`EnrolOptions::secret_base32`] may carry, in bytes (80
/// bits, as google-authenticator).
pub const MIN_SECRET_BYTES: usize = 10;
/// Longest secret [`EnrolOptions::secret_base32`] may carry, in bytes.
pub const MAX_SECRET_BYTES: usize = 128;

/// Parameters of a new factor; empty or zero fields take mfad's defaults.
/// The OTP fields are for `totp` and `hotp`, `pin` and `verification` for
/// `fido2`; a field another kind has no use for is refused when set.
#[derive(Clone, Default, PartialEq, Serialize, Deserialize, Type)]
pub struct EnrolOptions {
    /// `SHA1`, `SHA256` or `SHA512`; empty for the default.
    pub algorithm: String,
    /// 6, 7 or 8; 0 for the default.
    pub digits: u32,
    /// TOTP period in seconds; 0 for the default.
    pub period: u32,
    /// An existing secret in base32 to import ([`MIN_SECRET_BYTES`] to
    /// [`MAX_SECRET_BYTES`] bytes); empty to let mfad generate one.
    pub secret_base32: String,
    /// The security key's PIN, when it has one; empty otherwise.
    pub pin: String,
    /// Require user verification (the PIN, or the key's own) at every
    /// login with this key, not only a touch.
    pub verification: bool,
    /// E-mail: the address codes go to; empty where `[email] address`
    /// makes it from the login name.
    pub address: String,
}

impl fmt::Debug for EnrolOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EnrolOptions")
            .field("algorithm", &self.algorithm)
            .field("digits", &self.digits)
            .field("period", &self.period)
            .field("secret_base32", &redacted(&self.secret_base32))
            .field("pin", &redacted(&self.pin))
            .field("verification", &self.verification)
            .field("address", &self.address)
            .finish()
    }
}

/// What a user needs to set up their authenticator. Sent once, to the user
/// enrolling; mfad never sends the secret again.
#[derive(Clone, Default, PartialEq, Serialize, Deserialize, Type)]
pub struct EnrolmentOffer {
    /// Id of the pending factor, used to confirm it.
    pub id: String,
    /// `totp`, `hotp`, `fido2` or `email`.
    pub kind: String,
    pub label: String,
    pub issuer: String,
    pub algorithm: String,
    pub digits: u32,
    /// TOTP period in seconds (0 for HOTP).
    pub period: u32,
    /// HOTP start counter (0 for TOTP).
    pub counter: u64,
    pub secret_base32: String,
    /// `otpauth://` URI for QR codes and password managers.
    pub uri: String,
    /// Seconds since the epoch after which the pending enrolment is dropped.
    pub expires: u64,
    /// What to do now, where there is no secret to show: a factor a
    /// device confirms ("Touch your security key"; `digits` is 0, and
    /// `ConfirmEnrolment(id, "")` waits for the device), or one whose code
    /// was sent ("A code was sent to a•••@example.org").
    pub instructions: String,
    /// The code for counter 0 (TOTP: time 0), to compare with what the
    /// app, the token or another tool makes from the secret; never a valid
    /// login code (a new HOTP factor starts at counter 1). Empty for other
    /// kinds.
    pub check_value: String,
}

impl fmt::Debug for EnrolmentOffer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EnrolmentOffer")
            .field("id", &self.id)
            .field("kind", &self.kind)
            .field("label", &self.label)
            .field("algorithm", &self.algorithm)
            .field("digits", &self.digits)
            .field("period", &self.period)
            .field("secret_base32", &redacted(&self.secret_base32))
            .field("uri", &redacted(&self.uri))
            .finish()
    }
}

/// A factor as shown to its owner or an admin: never the secret.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, Type)]
pub struct FactorInfo {
    pub id: String,
    pub kind: String,
    pub label: String,
    /// False while the enrolment waits for its confirmation code.
    pub confirmed: bool,
    /// Seconds since the epoch.
    pub created: u64,
    /// Seconds since the epoch of the last successful use; 0 = never.
    pub last_used: u64,
    /// An admin approved it for privileged services (sudo, su, …).
    pub approved: bool,
    /// Asked first at login.
    pub preferred: bool,
}

/// A device remembered after a successful second factor.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, Type)]
pub struct DeviceInfo {
    /// Id to revoke it with.
    pub id: String,
    /// `SSH key SHA256:…` or `address …`.
    pub device: String,
    /// Seconds since the epoch.
    pub created: u64,
    /// Seconds since the epoch from which it is no longer trusted.
    pub expires: u64,
    /// Seconds since the epoch of the last login it skipped the code for.
    pub last_used: u64,
}

/// A user's own choices and what policy makes of them.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, Type)]
pub struct UserSettings {
    /// `privileged`, `appropriate` or `always`: the level in force.
    pub level: String,
    /// The level the user chose; empty if none.
    pub chosen_level: String,
    /// The least level the deciding rule allows.
    pub min_level: String,
    /// Id of the factor asked first; empty for the oldest.
    pub preferred: String,
}

/// `mfactl policy explain`: what a login would meet, and why.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, Type)]
pub struct Explanation {
    /// `skip`, `ask`, `offer`, `enrol` or `refuse`.
    pub outcome: String,
    /// Why, as the audit log spells it (`bypass:office`, `not-approved`, …);
    /// empty for `ask`.
    pub reason: String,
    /// The deciding rule; empty when MFA is off.
    pub rule: String,
    /// `login` or `privileged`.
    pub class: String,
    /// The user's level in force; empty when no rule decided.
    pub level: String,
    /// Every step of the reasoning.
    pub lines: Vec<String>,
}

/// How to read a file of factors to import (`mfactl import`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, Type)]
pub struct ImportOptions {
    /// pam-u2f: the `origin=` the keys were registered with; empty for
    /// mfad's `[fido2] rp_id` (pam_u2f's default is `pam://HOST` too).
    pub origin: String,
    /// pam-u2f: the `appid=` of old-format lines; empty for the origin.
    pub appid: String,
}

/// What an import did, or would do (a dry run). Nothing is imported unless
/// every line of the file can be.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, Type)]
pub struct ImportReport {
    pub entries: Vec<ImportEntry>,
    /// Things worth knowing: lines skipped (a user unknown here), keys that
    /// cannot be asked until `[fido2]` is enabled, options not carried over.
    pub notes: Vec<String>,
}

/// What `MigrateStore` copied, or would copy (a dry run).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, Type)]
pub struct StoreMigration {
    /// Where to: `postgresql host:port/dbname`.
    pub target: String,
    pub factors: u32,
    pub recovery_codes: u32,
    /// Users with failed codes counted or a lockout in force.
    pub lockouts: u32,
    /// Users with a security level or a preferred factor.
    pub settings: u32,
    pub trusted_devices: u32,
    /// Admins' invitations to set up a pending factor.
    pub invitations: u32,
    /// What to do next.
    pub notes: Vec<String>,
}

/// One factor found in an import file.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, Type)]
pub struct ImportEntry {
    /// 1-based line of the file.
    pub line: u32,
    pub user: String,
    pub kind: String,
    pub label: String,
    /// `added`, `would-add` (a dry run) or `exists` (already there: an
    /// import run twice changes nothing).
    pub outcome: String,
    /// The factor's id, once added (or the one it already has).
    pub id: String,
}

/// `mfactl policy check`: problems that refuse a config, and warnings.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, Type)]
pub struct PolicyCheck {
    pub errors: Vec<String>,
    pub warnings: Vec<String>,
}

/// One decision or change, for `mfactl audit`. Never a code or a secret.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, Type)]
pub struct AuditEntry {
    /// The host that recorded it (every host of a fleet on PostgreSQL).
    pub host: String,
    /// Seconds since the epoch.
    pub time: u64,
    /// `login` or `change`.
    pub event: String,
    pub user: String,
    /// PAM service (logins only).
    pub service: String,
    /// PAM_RHOST (logins only).
    pub rhost: String,
    /// Logins: allow, deny, retry, start, cancel. Changes: the action
    /// (enrol, confirm, remove, reset, unlock, approve, …).
    pub outcome: String,
    /// Why: wrong-code, locked, bypass:office, trusted-device, …
    pub reason: String,
    /// Other fields, `key=value` separated by spaces.
    pub detail: String,
}

/// One row of the admin users table.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, Type)]
pub struct UserSummary {
    pub user: String,
    /// Kinds of the user's confirmed factors, sorted, without duplicates.
    pub methods: Vec<String>,
    /// Number of confirmed factors.
    pub factors: u32,
    /// Number of enrolments waiting for confirmation.
    pub pending: u32,
    /// Seconds since the epoch of the last successful use; 0 = never.
    pub last_used: u64,
    /// Locked out after too many failed codes.
    pub locked: bool,
}

fn redacted(s: &str) -> &'static str {
    if s.is_empty() {
        ""
    } else {
        "<redacted>"
    }
}
