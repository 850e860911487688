//! The daemon's error type, and its one mapping to D-Bus errors.

use crate::store::StoreError;
use mfa_dbus::MfaError;

#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    #[error("access denied: {0}")]
    AccessDenied(String),
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    #[error("not found: {0}")]
    NotFound(String),
    #[error("unknown or expired login handle")]
    UnknownHandle,
    /// A wrong code; the text says what stays as it was.
    #[error("the code is wrong: {0}")]
    WrongCode(&'static str),
    #[error("not allowed by the policy: {0}")]
    PolicyDenied(String),
    #[error("limit reached: {0}")]
    LimitReached(String),
    /// A device (a security key) could not do its part.
    #[error("device failed: {0}")]
    DeviceFailed(String),
    /// A device is still at work; ask again.
    #[error("still under way: {0}")]
    Pending(String),
    /// The change needs a fresh proof of one of the caller's factors.
    #[error("step-up required: {0}")]
    StepUpRequired(String),
    #[error(transparent)]
    Store(#[from] StoreError),
    /// `mfactl store migrate` failed: its admin is told why (the target's
    /// address, its state: nothing secret).
    #[error("the store was not migrated: {0}")]
    Unmigrated(StoreError),
    #[error("internal error: {0}")]
    Internal(String),
}

impl From<DaemonError> for MfaError {
    fn from(e: DaemonError) -> MfaError {
        match e {
            DaemonError::AccessDenied(m) => MfaError::AccessDenied(m),
            DaemonError::InvalidArgument(m) => MfaError::InvalidArgument(m),
            DaemonError::NotFound(m) => MfaError::NotFound(m),
            DaemonError::UnknownHandle => {
                MfaError::UnknownHandle("unknown or expired login handle".into())
            }
            DaemonError::PolicyDenied(m) => MfaError::PolicyDenied(m),
            DaemonError::LimitReached(m) => MfaError::LimitReached(m),
            DaemonError::DeviceFailed(m) => MfaError::DeviceFailed(m),
            DaemonError::Pending(m) => MfaError::Pending(m),
            DaemonError::StepUpRequired(m) => MfaError::StepUpRequired(m),
            DaemonError::WrongCode(what) => {
                MfaError::WrongCode(format!("the code is wrong; {what}"))
            }
            // Details go to mfad's log, not to the caller.
            DaemonError::Store(_) => MfaError::Store(
                "the store could not be read or written; nothing was changed".into(),
            ),
            e @ DaemonError::Unmigrated(_) => MfaError::Store(e.to_string()),
            DaemonError::Internal(_) => MfaError::Internal("internal error; see mfad's log".into()),
        }
    }
}

/// `error` and what caused it ("error performing TLS handshake: invalid
/// peer certificate: UnknownIssuer").
pub fn with_causes(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut cause = error.source();
    while let Some(c) = cause {
        let more = c.to_string();
        if !text.contains(&more) {
            text.push_str(": ");
            text.push_str(&more);
        }
        cause = c.source();
    }
    text
}
