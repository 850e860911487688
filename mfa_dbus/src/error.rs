//! Errors mfad returns over the bus. Each variant is one D-Bus error name
//! (`org.pam_mfa.Error.<Variant>`); the message says what was wrong.

use zbus::DBusError;

#[derive(Debug, DBusError, PartialEq)]
#[zbus(prefix = "org.pam_mfa.Error")]
pub enum MfaError {
    /// Transport-level failure (not sent by mfad itself).
    #[zbus(error)]
    ZBus(zbus::Error),
    /// The caller's uid may not make this call.
    AccessDenied(String),
    /// An argument is malformed or out of range; nothing was changed.
    InvalidArgument(String),
    /// The user, factor or enrolment does not exist.
    NotFound(String),
    /// The login handle is unknown, expired, or belongs to another connection.
    UnknownHandle(String),
    /// The confirmation code did not match; the enrolment stays pending.
    WrongCode(String),
    /// The policy does not allow this (a level below the rule's minimum, …);
    /// nothing was changed.
    PolicyDenied(String),
    /// Too many requests, or too many of something (pending enrolments,
    /// factors); the message says when to try again. Nothing was changed.
    LimitReached(String),
    /// A device (a security key) could not do its part: none plugged in,
    /// no touch in time, a wrong PIN. The message says which.
    DeviceFailed(String),
    /// A device is still at work (a key waiting for a touch): call again.
    Pending(String),
    /// The change needs a fresh proof of one of the caller's factors
    /// (Factors1.BeginStepUp on the same connection); nothing was changed.
    StepUpRequired(String),
    /// The store could not be read or written; nothing was changed.
    Store(String),
    /// Anything else; details are in mfad's log.
    Internal(String),
}

impl MfaError {
    /// The human-readable part, without the D-Bus error name.
    pub fn message(&self) -> String {
        match self {
            MfaError::ZBus(e) => e.to_string(),
            MfaError::AccessDenied(m)
            | MfaError::InvalidArgument(m)
            | MfaError::NotFound(m)
            | MfaError::UnknownHandle(m)
            | MfaError::WrongCode(m)
            | MfaError::PolicyDenied(m)
            | MfaError::LimitReached(m)
            | MfaError::DeviceFailed(m)
            | MfaError::Pending(m)
            | MfaError::StepUpRequired(m)
            | MfaError::Store(m)
            | MfaError::Internal(m) => m.clone(),
        }
    }
}

impl MfaError {
    /// The error mfad sent as `name` (a D-Bus error name) with `message`;
    /// `None` for a name that is not one of mfad's.
    pub fn from_wire(name: &str, message: String) -> Option<MfaError> {
        let variant = name
            .strip_prefix(crate::names::ERROR_PREFIX)?
            .strip_prefix('.')?;
        Some(match variant {
            "AccessDenied" => MfaError::AccessDenied(message),
            "InvalidArgument" => MfaError::InvalidArgument(message),
            "NotFound" => MfaError::NotFound(message),
            "UnknownHandle" => MfaError::UnknownHandle(message),
            "WrongCode" => MfaError::WrongCode(message),
            "PolicyDenied" => MfaError::PolicyDenied(message),
            "LimitReached" => MfaError::LimitReached(message),
            "DeviceFailed" => MfaError::DeviceFailed(message),
            "Pending" => MfaError::Pending(message),
            "StepUpRequired" => MfaError::StepUpRequired(message),
            "Store" => MfaError::Store(message),
            "Internal" => MfaError::Internal(message),
            _ => return None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use zbus::DBusError;

    /// Every error mfad can send reads back as itself: the names zbus
    /// gives the variants are the ones the synchronous client knows.
    #[test]
    fn every_variant_reads_back_from_its_wire_name() {
        let m = || "why".to_string();
        let all = [
            MfaError::AccessDenied(m()),
            MfaError::InvalidArgument(m()),
            MfaError::NotFound(m()),
            MfaError::UnknownHandle(m()),
            MfaError::WrongCode(m()),
            MfaError::PolicyDenied(m()),
            MfaError::LimitReached(m()),
            MfaError::DeviceFailed(m()),
            MfaError::Pending(m()),
            MfaError::StepUpRequired(m()),
            MfaError::Store(m()),
            MfaError::Internal(m()),
        ];
        for error in all {
            let name = error.name().to_string();
            assert_eq!(MfaError::from_wire(&name, m()), Some(error), "{name}");
        }
        assert_eq!(MfaError::from_wire("org.pam_mfa.Error.Nope", m()), None);
        assert_eq!(
            MfaError::from_wire("org.freedesktop.DBus.Error.AccessDenied", m()),
            None
        );
        assert_eq!(MfaError::from_wire("org.pam_mfa.ErrorX.Store", m()), None);
    }
}
