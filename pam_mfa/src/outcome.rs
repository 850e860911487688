//! The one table from how a call into the module ended to the PAM code it
//! returns. Nothing else in the module picks a return code.
//!
//! Everything fails closed. `PAM_IGNORE` appears in two cells: mfad could
//! not be reached before the login started and the PAM line says
//! `failmode=open`; and mfad needed no second factor (`skip=ignore`, the
//! default), so that a `sufficient` pam_mfa never replaces the password.
//! Once mfad has shown the user a step, losing it is never ignored, so a
//! slow or vanished daemon cannot turn a started login into a skipped
//! factor.

use crate::options::{FailMode, Skip};
use crate::sys::{
    PAM_AUTHINFO_UNAVAIL, PAM_AUTH_ERR, PAM_CONV_ERR, PAM_IGNORE, PAM_MAXTRIES, PAM_SERVICE_ERR,
    PAM_SUCCESS, PAM_SYSTEM_ERR, PAM_USER_UNKNOWN,
};
use mfa_dbus::{ClientError, DenyReason, Outcome};
use std::fmt::Write as _;
use std::os::raw::c_int;

/// How a call into the module ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum End {
    /// mfad allowed the login: a second factor was checked.
    Allowed,
    /// mfad needed no second factor for it (not required, exempt,
    /// bypassed, a trusted device, MFA off); the PAM line's `skip=` says
    /// what that returns.
    Skipped(Skip),
    /// mfad refused the login.
    Denied(DenyReason),
    /// mfad could not be reached before the login started: no bus socket, the
    /// bus refused the connection, mfad is not on the bus, or no answer within
    /// `timeout`.
    Unreachable,
    /// mfad stopped answering after it had shown the user a step.
    LostMidLogin,
    /// mfad or the bus answered a call with an error (access denied, invalid
    /// argument, unknown handle, store failure, …).
    DaemonError,
    /// mfad kept sending steps without deciding.
    TooManySteps,
    /// mfad's bus name is owned by a process that does not run as root: a
    /// look-alike. Refused in every failmode.
    Untrusted,
    /// The application's conversation function failed or gave no answer.
    ConversationFailed,
    /// `pam_get_user` failed, or the name is empty or not UTF-8.
    NoUser,
    /// A PAM item or `SSH_AUTH_INFO_0` could not be read or is not UTF-8.
    BadItem,
    /// A module argument on the PAM line is unknown or malformed.
    BadOptions,
    /// libpam passed no handle.
    SystemError,
    /// The module panicked (a bug); the panic did not reach the application.
    Panicked,
    /// `pam_sm_setcred`: the module sets no credentials.
    SetCred,
    /// `pam_sm_acct_mgmt`, `pam_sm_open_session`, `pam_sm_close_session` or
    /// `pam_sm_chauthtok`: the module is only an auth module.
    NotAuthStack,
}

impl End {
    /// The PAM code for this ending.
    pub fn pam_code(self, failmode: FailMode) -> c_int {
        match self {
            End::Allowed => PAM_SUCCESS,
            End::Skipped(Skip::Ignore) => PAM_IGNORE,
            End::Skipped(Skip::Success) => PAM_SUCCESS,
            End::Denied(DenyReason::MaxTries) => PAM_MAXTRIES,
            End::Denied(
                DenyReason::WrongCode
                | DenyReason::NotEnrolled
                | DenyReason::Locked
                | DenyReason::Expired
                | DenyReason::Internal
                | DenyReason::None,
            ) => PAM_AUTH_ERR,
            End::Unreachable => match failmode {
                FailMode::Closed => PAM_AUTHINFO_UNAVAIL,
                FailMode::Open => PAM_IGNORE,
            },
            End::LostMidLogin => PAM_AUTHINFO_UNAVAIL,
            End::DaemonError | End::TooManySteps | End::Untrusted | End::BadItem => PAM_AUTH_ERR,
            End::ConversationFailed => PAM_CONV_ERR,
            End::NoUser => PAM_USER_UNKNOWN,
            End::BadOptions => PAM_SERVICE_ERR,
            End::SystemError | End::Panicked => PAM_SYSTEM_ERR,
            // Setting credentials is part of a successful auth stack; this
            // module has none to set, and refusing would break the stack
            // after the factor passed. Like pam_u2f and
            // google-authenticator-libpam: PAM_SUCCESS.
            End::SetCred => PAM_SUCCESS,
            // In an account, session or password stack the module would
            // check nothing. PAM_SUCCESS could satisfy a `sufficient` line and
            // PAM_IGNORE is reserved for explicit options, so the
            // misconfiguration is refused (and logged).
            End::NotAuthStack => PAM_SERVICE_ERR,
        }
    }

    /// Classify a failed login. `login_started` is true once mfad has shown
    /// the user a step: from then on, losing mfad is never `Unreachable`.
    pub fn from_client_error(error: &ClientError, login_started: bool) -> End {
        let lost = if login_started {
            End::LostMidLogin
        } else {
            End::Unreachable
        };
        match error {
            ClientError::Unreachable { .. } | ClientError::Lost(_) | ClientError::Timeout(_) => {
                lost
            }
            ClientError::Daemon(_) | ClientError::Refused { .. } | ClientError::Protocol(_) => {
                End::DaemonError
            }
            ClientError::ConversationAborted => End::ConversationFailed,
            ClientError::TooManySteps => End::TooManySteps,
            ClientError::Untrusted { .. } | ClientError::UntrustedSocket { .. } => End::Untrusted,
        }
    }

    /// Every row, in the order of the printed table.
    pub fn all() -> Vec<End> {
        let mut all = vec![
            End::Allowed,
            End::Skipped(Skip::Ignore),
            End::Skipped(Skip::Success),
        ];
        all.extend(
            [
                DenyReason::WrongCode,
                DenyReason::MaxTries,
                DenyReason::NotEnrolled,
                DenyReason::Locked,
                DenyReason::Expired,
                DenyReason::Internal,
            ]
            .map(End::Denied),
        );
        all.extend([
            End::Unreachable,
            End::LostMidLogin,
            End::DaemonError,
            End::TooManySteps,
            End::Untrusted,
            End::ConversationFailed,
            End::NoUser,
            End::BadItem,
            End::BadOptions,
            End::SystemError,
            End::Panicked,
            End::SetCred,
            End::NotAuthStack,
        ]);
        all
    }

    /// When this row applies, in words, for the table.
    pub fn describe(self) -> &'static str {
        match self {
            End::Allowed => "mfad allowed the login",
            End::Skipped(Skip::Ignore) => "no second factor needed (skip=ignore, the default)",
            End::Skipped(Skip::Success) => "no second factor needed, with skip=success",
            End::Denied(DenyReason::WrongCode) => "mfad denied: wrong code",
            End::Denied(DenyReason::MaxTries) => "mfad denied: too many wrong codes",
            End::Denied(DenyReason::NotEnrolled) => "mfad denied: no second factor set up",
            End::Denied(DenyReason::Locked) => "mfad denied: user locked out",
            End::Denied(DenyReason::Expired) => "mfad denied: the login took too long",
            End::Denied(DenyReason::Internal | DenyReason::None) => {
                "mfad denied: it could not decide"
            }
            End::Unreachable => "mfad not reachable or not answering before the login started",
            End::LostMidLogin => "mfad stopped answering during the login",
            End::DaemonError => "mfad or the bus returned an error",
            End::TooManySteps => "mfad sent steps without deciding",
            End::Untrusted => "mfad's bus name or login socket is not root's alone",
            End::ConversationFailed => "the application's conversation failed",
            End::NoUser => "no usable user name",
            End::BadItem => "a PAM item is unreadable or not UTF-8",
            End::BadOptions => "unknown or malformed module option",
            End::SystemError => "libpam passed no PAM handle",
            End::Panicked => "internal error in the module",
            End::SetCred => "pam_setcred (no credentials to set)",
            End::NotAuthStack => "used in an account, session or password stack",
        }
    }
}

impl End {
    /// How a finished login maps onto the table, with the line's `skip=`.
    pub fn from_outcome(outcome: Outcome, skip: Skip) -> End {
        match outcome {
            Outcome::Allowed => End::Allowed,
            Outcome::Skipped => End::Skipped(skip),
            Outcome::Denied(reason) => End::Denied(reason),
        }
    }
}

/// The symbolic name of a code this module returns.
pub fn code_name(code: c_int) -> &'static str {
    match code {
        PAM_SUCCESS => "PAM_SUCCESS",
        PAM_AUTH_ERR => "PAM_AUTH_ERR",
        PAM_MAXTRIES => "PAM_MAXTRIES",
        PAM_AUTHINFO_UNAVAIL => "PAM_AUTHINFO_UNAVAIL",
        PAM_IGNORE => "PAM_IGNORE",
        PAM_CONV_ERR => "PAM_CONV_ERR",
        PAM_USER_UNKNOWN => "PAM_USER_UNKNOWN",
        PAM_SERVICE_ERR => "PAM_SERVICE_ERR",
        PAM_SYSTEM_ERR => "PAM_SYSTEM_ERR",
        _ => "(not returned by pam_mfa)",
    }
}

/// The table as plain text, one row per line: situation, code with
/// `failmode=closed` (the default), code with `failmode=open`. For the
/// RETURN VALUES section of pam_mfa(8).
pub fn table() -> String {
    let rows: Vec<(&str, &str, &str)> = End::all()
        .into_iter()
        .map(|end| {
            (
                end.describe(),
                code_name(end.pam_code(FailMode::Closed)),
                code_name(end.pam_code(FailMode::Open)),
            )
        })
        .collect();
    let header = ("situation", "failmode=closed", "failmode=open");
    let w0 = rows
        .iter()
        .map(|r| r.0.len())
        .chain([header.0.len()])
        .max()
        .unwrap_or(0);
    let w1 = rows
        .iter()
        .map(|r| r.1.len())
        .chain([header.1.len()])
        .max()
        .unwrap_or(0);
    let mut out = String::new();
    for (a, b, c) in std::iter::once(header).chain(rows) {
        // Writing to a String cannot fail.
        let _ = writeln!(out, "{a:<w0$}  {b:<w1$}  {c}");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use mfa_dbus::MfaError;
    use std::time::Duration;

    fn both(end: End) -> (c_int, c_int) {
        (end.pam_code(FailMode::Closed), end.pam_code(FailMode::Open))
    }

    #[test]
    fn row_allowed() {
        assert_eq!(both(End::Allowed), (PAM_SUCCESS, PAM_SUCCESS));
    }

    #[test]
    fn row_denied_wrong_code() {
        assert_eq!(
            both(End::Denied(DenyReason::WrongCode)),
            (PAM_AUTH_ERR, PAM_AUTH_ERR)
        );
    }

    #[test]
    fn row_denied_max_tries() {
        assert_eq!(
            both(End::Denied(DenyReason::MaxTries)),
            (PAM_MAXTRIES, PAM_MAXTRIES)
        );
    }

    #[test]
    fn row_denied_not_enrolled() {
        assert_eq!(
            both(End::Denied(DenyReason::NotEnrolled)),
            (PAM_AUTH_ERR, PAM_AUTH_ERR)
        );
    }

    #[test]
    fn row_denied_locked() {
        assert_eq!(
            both(End::Denied(DenyReason::Locked)),
            (PAM_AUTH_ERR, PAM_AUTH_ERR)
        );
    }

    #[test]
    fn row_denied_expired() {
        assert_eq!(
            both(End::Denied(DenyReason::Expired)),
            (PAM_AUTH_ERR, PAM_AUTH_ERR)
        );
    }

    #[test]
    fn row_denied_internal_and_reasonless() {
        assert_eq!(
            both(End::Denied(DenyReason::Internal)),
            (PAM_AUTH_ERR, PAM_AUTH_ERR)
        );
        assert_eq!(
            both(End::Denied(DenyReason::None)),
            (PAM_AUTH_ERR, PAM_AUTH_ERR)
        );
    }

    #[test]
    fn row_unreachable_is_the_only_failmode_dependent_row() {
        assert_eq!(both(End::Unreachable), (PAM_AUTHINFO_UNAVAIL, PAM_IGNORE));
        for end in End::all().into_iter().filter(|e| *e != End::Unreachable) {
            let (closed, open) = both(end);
            assert_eq!(closed, open, "{end:?} must not depend on failmode");
            let skipped = end == End::Skipped(Skip::Ignore);
            assert_eq!(
                closed == PAM_IGNORE,
                skipped,
                "{end:?}: ignored only if skipped"
            );
        }
    }

    #[test]
    fn row_skipped_is_what_the_line_says() {
        assert_eq!(both(End::Skipped(Skip::Ignore)), (PAM_IGNORE, PAM_IGNORE));
        assert_eq!(
            both(End::Skipped(Skip::Success)),
            (PAM_SUCCESS, PAM_SUCCESS)
        );
    }

    #[test]
    fn row_lost_mid_login() {
        assert_eq!(
            both(End::LostMidLogin),
            (PAM_AUTHINFO_UNAVAIL, PAM_AUTHINFO_UNAVAIL)
        );
    }

    #[test]
    fn row_daemon_error() {
        assert_eq!(both(End::DaemonError), (PAM_AUTH_ERR, PAM_AUTH_ERR));
    }

    #[test]
    fn row_too_many_steps() {
        assert_eq!(both(End::TooManySteps), (PAM_AUTH_ERR, PAM_AUTH_ERR));
    }

    #[test]
    fn row_untrusted_owner_is_refused_even_with_failmode_open() {
        assert_eq!(both(End::Untrusted), (PAM_AUTH_ERR, PAM_AUTH_ERR));
        assert_eq!(
            End::from_client_error(&ClientError::Untrusted { uid: 1000 }, false),
            End::Untrusted
        );
    }

    #[test]
    fn row_conversation_failed() {
        assert_eq!(both(End::ConversationFailed), (PAM_CONV_ERR, PAM_CONV_ERR));
    }

    #[test]
    fn row_no_user() {
        assert_eq!(both(End::NoUser), (PAM_USER_UNKNOWN, PAM_USER_UNKNOWN));
    }

    #[test]
    fn row_bad_item() {
        assert_eq!(both(End::BadItem), (PAM_AUTH_ERR, PAM_AUTH_ERR));
    }

    #[test]
    fn row_bad_options() {
        assert_eq!(both(End::BadOptions), (PAM_SERVICE_ERR, PAM_SERVICE_ERR));
    }

    #[test]
    fn row_system_error() {
        assert_eq!(both(End::SystemError), (PAM_SYSTEM_ERR, PAM_SYSTEM_ERR));
    }

    #[test]
    fn row_panicked() {
        assert_eq!(both(End::Panicked), (PAM_SYSTEM_ERR, PAM_SYSTEM_ERR));
    }

    #[test]
    fn row_setcred() {
        assert_eq!(both(End::SetCred), (PAM_SUCCESS, PAM_SUCCESS));
    }

    #[test]
    fn row_not_auth_stack() {
        assert_eq!(both(End::NotAuthStack), (PAM_SERVICE_ERR, PAM_SERVICE_ERR));
    }

    #[test]
    fn only_allowed_and_setcred_succeed() {
        for end in End::all() {
            let succeeds = end.pam_code(FailMode::Open) == PAM_SUCCESS;
            assert_eq!(
                succeeds,
                matches!(
                    end,
                    End::Allowed | End::SetCred | End::Skipped(Skip::Success)
                ),
                "{end:?}"
            );
        }
    }

    fn method_error(name: &str) -> ClientError {
        ClientError::from_error_reply(name, "why".into())
    }

    fn unreachable() -> ClientError {
        ClientError::Unreachable {
            address: "unix:path=/nonexistent".into(),
            source: Box::new(std::io::Error::from(std::io::ErrorKind::NotFound)),
        }
    }

    #[test]
    fn client_errors_before_the_login_started() {
        let cases: Vec<(ClientError, End)> = vec![
            (unreachable(), End::Unreachable),
            (
                ClientError::Timeout(Duration::from_secs(1)),
                End::Unreachable,
            ),
            (
                method_error("org.freedesktop.DBus.Error.ServiceUnknown"),
                End::Unreachable,
            ),
            (
                method_error("org.freedesktop.DBus.Error.NameHasNoOwner"),
                End::Unreachable,
            ),
            (
                method_error("org.freedesktop.DBus.Error.NoReply"),
                End::Unreachable,
            ),
            (
                method_error("org.freedesktop.DBus.Error.Spawn.ChildExited"),
                End::Unreachable,
            ),
            (
                method_error("org.freedesktop.DBus.Error.AccessDenied"),
                End::DaemonError,
            ),
            (
                method_error("org.freedesktop.DBus.Error.UnknownMethod"),
                End::DaemonError,
            ),
            (
                ClientError::Daemon(MfaError::AccessDenied("root only".into())),
                End::DaemonError,
            ),
            (
                ClientError::Daemon(MfaError::InvalidArgument("user".into())),
                End::DaemonError,
            ),
            (
                ClientError::Daemon(MfaError::UnknownHandle("h".into())),
                End::DaemonError,
            ),
            (
                ClientError::Daemon(MfaError::Store("disk".into())),
                End::DaemonError,
            ),
            (
                ClientError::Daemon(MfaError::Internal("bug".into())),
                End::DaemonError,
            ),
            (method_error("org.pam_mfa.Error.Store"), End::DaemonError),
            (
                ClientError::Lost("the connection was closed".into()),
                End::Unreachable,
            ),
            (
                ClientError::Protocol("a reply of signature \"s\"".into()),
                End::DaemonError,
            ),
            (ClientError::ConversationAborted, End::ConversationFailed),
            (ClientError::TooManySteps, End::TooManySteps),
        ];
        for (error, expected) in cases {
            assert_eq!(End::from_client_error(&error, false), expected, "{error:?}");
        }
    }

    #[test]
    fn losing_mfad_after_a_step_is_never_unreachable() {
        for error in [
            unreachable(),
            ClientError::Timeout(Duration::from_secs(1)),
            method_error("org.freedesktop.DBus.Error.ServiceUnknown"),
            ClientError::Lost("the connection was closed".into()),
        ] {
            let end = End::from_client_error(&error, true);
            assert_eq!(end, End::LostMidLogin, "{error:?}");
            assert_eq!(end.pam_code(FailMode::Open), PAM_AUTHINFO_UNAVAIL);
        }
        assert_eq!(
            End::from_client_error(&ClientError::ConversationAborted, true),
            End::ConversationFailed
        );
    }

    #[test]
    fn outcomes_map_to_rows() {
        assert_eq!(
            End::from_outcome(Outcome::Allowed, Skip::Ignore),
            End::Allowed
        );
        assert_eq!(
            End::from_outcome(Outcome::Skipped, Skip::Ignore),
            End::Skipped(Skip::Ignore)
        );
        assert_eq!(
            End::from_outcome(Outcome::Skipped, Skip::Success),
            End::Skipped(Skip::Success)
        );
        assert_eq!(
            End::from_outcome(Outcome::Denied(DenyReason::MaxTries), Skip::Success),
            End::Denied(DenyReason::MaxTries)
        );
    }

    #[test]
    fn printed_table_has_every_row() {
        let table = table();
        let lines: Vec<&str> = table.lines().collect();
        assert_eq!(lines.len(), End::all().len() + 1);
        assert!(lines[0].starts_with("situation"));
        assert!(table.contains("mfad denied: too many wrong codes"));
        let unreachable = lines
            .iter()
            .find(|l| l.starts_with("mfad not reachable"))
            .expect("the unreachable row");
        assert!(
            unreachable.contains("PAM_AUTHINFO_UNAVAIL") && unreachable.ends_with("PAM_IGNORE")
        );
        assert!(!table.contains("(not returned by pam_mfa)"));
    }
}
