use crate::mechanism::{FactorKind, OtpParams};

/// One registered factor, as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FactorRecord {
    /// Random, unguessable, stable id shown to users.
    pub id: String,
    pub user: String,
    pub kind: FactorKind,
    pub label: String,
    pub params: OtpParams,
    pub confirmed: bool,
    /// An admin approved it for privileged services (sudo, su, …).
    pub approved: bool,
    /// Seconds since the epoch.
    pub created: u64,
    /// Seconds since the epoch; 0 = never used.
    pub last_used: u64,
    /// Pending factors only: seconds since the epoch after which the
    /// enrolment is dropped. 0 for confirmed factors.
    pub expires: u64,
}
