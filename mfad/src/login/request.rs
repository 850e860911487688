//! What a login request may contain. Names are checked before they reach the
//! store or the log.

use crate::error::DaemonError;
use mfa_dbus::LoginRequest;

const MAX_FIELD: usize = 1024;
const MAX_AUTH_INFO: usize = 16 * 1024;

pub fn validate_request(r: &LoginRequest) -> Result<(), DaemonError> {
    validate_user(&r.user)?;
    for (name, value) in [
        ("service", &r.service),
        ("rhost", &r.rhost),
        ("ruser", &r.ruser),
        ("tty", &r.tty),
    ] {
        if value.len() > MAX_FIELD {
            return Err(DaemonError::InvalidArgument(format!(
                "{name} is longer than {MAX_FIELD} bytes"
            )));
        }
        if value.chars().any(char::is_control) {
            return Err(DaemonError::InvalidArgument(format!(
                "{name} contains control characters"
            )));
        }
    }
    if r.service.is_empty() {
        return Err(DaemonError::InvalidArgument("service is empty".into()));
    }
    if r.auth_info.len() > MAX_AUTH_INFO {
        return Err(DaemonError::InvalidArgument(format!(
            "auth_info is longer than {MAX_AUTH_INFO} bytes"
        )));
    }
    Ok(())
}

/// A user name as PAM hands it over: non-empty, bounded, printable.
pub fn validate_user(user: &str) -> Result<(), DaemonError> {
    if user.is_empty() {
        return Err(DaemonError::InvalidArgument("user is empty".into()));
    }
    if user.len() > 256 {
        return Err(DaemonError::InvalidArgument(
            "user is longer than 256 bytes".into(),
        ));
    }
    if user.chars().any(|c| c.is_control() || c == '/' || c == ':') {
        return Err(DaemonError::InvalidArgument(
            "user contains control characters, '/' or ':'".into(),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(user: &str) -> LoginRequest {
        LoginRequest {
            user: user.into(),
            service: "sshd".into(),
            ..Default::default()
        }
    }

    #[test]
    fn bad_requests_are_named() {
        assert!(validate_request(&req("alice")).is_ok());
        for bad in ["", "a\nb", "a/b", &"x".repeat(300)] {
            let err = validate_request(&req(bad)).expect_err(bad);
            assert!(err.to_string().contains("user"), "{err}");
        }
        let mut r = req("alice");
        r.rhost = "1.2.3.4\r\n".into();
        assert!(validate_request(&r)
            .expect_err("rhost")
            .to_string()
            .contains("rhost"));
    }
}
