//! Every way mfactl can fail, and the one mapping from failure to exit code.
//!
//! | code | meaning                                                              |
//! |------|----------------------------------------------------------------------|
//! | 0    | success                                                              |
//! | 1    | mfad refused or failed the request (invalid argument, not found,     |
//! |      | not allowed by the policy, a limit reached, store or internal error, |
//! |      | a method it does not know), the operator declined at a confirmation  |
//! |      | prompt, or output could not be written                               |
//! | 2    | usage error: bad command line (clap) or bad local input (secret,     |
//! |      | code format, a file that cannot be read, a needed `--yes`)           |
//! | 3    | mfad unreachable: no bus at the address, mfad not on the bus, or no  |
//! |      | answer in time                                                       |
//! | 4    | enrolment not confirmed: wrong or missing code; it stays pending     |
//! | 5    | access denied: the caller may not do this (by mfad or bus policy),   |
//! |      | or the proof of a factor a change needs was wrong or not given       |
//!
//! Access denied is kept apart from 1 so that scripts can tell "you are not
//! an admin" from "that user does not exist".

use crate::dates;
use crate::table::printable;
use mfa_dbus::MfaError;
use std::io;
use std::process::ExitCode;
use std::time::Duration;

pub const EXIT_OK: u8 = 0;
pub const EXIT_REFUSED: u8 = 1;
pub const EXIT_USAGE: u8 = 2;
pub const EXIT_UNREACHABLE: u8 = 3;
pub const EXIT_NOT_CONFIRMED: u8 = 4;
pub const EXIT_ACCESS_DENIED: u8 = 5;

/// The exit code table as shown at the end of `--help`.
pub const EXIT_CODES_HELP: &str = "\
Exit status:
  0  success
  1  mfad refused or failed the request, or the operation was declined
  2  usage error (bad arguments or input)
  3  mfad unreachable (no bus, mfad not running, or no answer in time)
  4  enrolment not confirmed (wrong or missing code); it stays pending
  5  access denied, or the proof of a factor a change needs was not given";

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Bad command line or local input; nothing was sent to mfad.
    #[error("{0}")]
    Usage(String),
    /// A local file or stream named on the command line could not be read.
    #[error("cannot read {what}: {source}")]
    Input { what: String, source: io::Error },
    /// No bus at the address, mfad not on it, or no answer in time.
    #[error("cannot reach mfad at {address}: {detail}")]
    Unreachable { address: String, detail: String },
    /// mfad (or the bus policy) refused the caller.
    #[error("{0}")]
    AccessDenied(String),
    /// mfad refused or failed the request; its message.
    #[error("{0}")]
    Refused(String),
    /// mfad said the confirmation code was wrong.
    #[error("{0}")]
    WrongCode(String),
    /// A device is still at work; asking again may finish it.
    #[error("{0}")]
    Pending(String),
    /// mfad wants a fresh proof of one of the caller's factors first
    /// ([`crate::client::Client`] gives it and asks again).
    #[error("{0}")]
    StepUpRequired(String),
    /// An enrolment was left pending (wrong or missing code).
    #[error("{}", not_confirmed(.id, *.expires, .why))]
    NotConfirmed {
        id: String,
        expires: Option<u64>,
        why: String,
    },
    /// The operator answered no at a confirmation prompt.
    #[error("{0}")]
    Declined(String),
    /// The terminal or stdout could not be written.
    #[error("cannot write output: {0}")]
    Output(io::Error),
}

fn not_confirmed(id: &str, expires: Option<u64>, why: &str) -> String {
    let until = match expires {
        Some(t) => format!("kept until {}", dates::human(t, &dates::local_zone())),
        None => "kept until it expires".to_string(),
    };
    format!("{why}\npending enrolment {id} {until}; finish it with `mfactl confirm {id} CODE`")
}

impl Error {
    pub fn exit_code(&self) -> u8 {
        match self {
            Error::Usage(_) | Error::Input { .. } => EXIT_USAGE,
            Error::Unreachable { .. } => EXIT_UNREACHABLE,
            Error::AccessDenied(_) | Error::StepUpRequired(_) => EXIT_ACCESS_DENIED,
            Error::WrongCode(_) | Error::NotConfirmed { .. } => EXIT_NOT_CONFIRMED,
            Error::Refused(_) | Error::Pending(_) | Error::Declined(_) | Error::Output(_) => {
                EXIT_REFUSED
            }
        }
    }

    /// Print `mfactl: <message>` on stderr (unless stdout is merely closed,
    /// as in `mfactl list | head -1`) and return the exit code.
    pub fn report(&self) -> ExitCode {
        let quiet = matches!(self, Error::Output(e) if e.kind() == io::ErrorKind::BrokenPipe);
        if !quiet {
            // Messages may quote labels or user names chosen by others.
            let text = self.to_string();
            for line in text.lines() {
                eprintln!("mfactl: {}", printable(line));
            }
        }
        ExitCode::from(self.exit_code())
    }

    /// Classify an error from a call to mfad at `address`.
    pub fn from_daemon(error: MfaError, address: &str) -> Error {
        match error {
            MfaError::AccessDenied(m) => Error::AccessDenied(m),
            MfaError::WrongCode(m) => Error::WrongCode(m),
            MfaError::Pending(m) => Error::Pending(m),
            MfaError::StepUpRequired(m) => Error::StepUpRequired(m),
            MfaError::InvalidArgument(m)
            | MfaError::PolicyDenied(m)
            | MfaError::LimitReached(m)
            | MfaError::DeviceFailed(m)
            | MfaError::NotFound(m)
            | MfaError::UnknownHandle(m)
            | MfaError::Store(m)
            | MfaError::Internal(m) => Error::Refused(m),
            MfaError::ZBus(e) => Error::from_bus(&e, address),
        }
    }

    /// Classify a transport-level error: the bus itself answered, or failed.
    pub fn from_bus(error: &zbus::Error, address: &str) -> Error {
        let name = match error {
            zbus::Error::MethodError(name, _, _) => Some(name.as_str().to_string()),
            zbus::Error::FDO(e) => Some(zbus::DBusError::name(e.as_ref()).as_str().to_string()),
            _ => None,
        };
        let unreachable = |detail: String| Error::Unreachable {
            address: address.to_string(),
            detail,
        };
        let Some(name) = name else {
            // I/O, handshake, a closed socket: the bus is gone.
            return unreachable(match error {
                // The address is in our message already.
                zbus::Error::Connection(e, _) => e.to_string(),
                other => other.to_string(),
            });
        };
        let detail = error.description().unwrap_or_default().to_string();
        match BusErrorKind::of(&name) {
            BusErrorKind::NotRunning => unreachable(format!(
                "{} is not on the bus (is mfad running?)",
                mfa_dbus::BUS_NAME
            )),
            BusErrorKind::NoAnswer => unreachable(format!("mfad did not answer ({name})")),
            BusErrorKind::AccessDenied => Error::AccessDenied(if detail.is_empty() {
                "access denied by the bus policy".to_string()
            } else {
                format!("access denied by the bus: {detail}")
            }),
            BusErrorKind::Incompatible => Error::Refused(format!(
                "mfad does not offer this call ({name}); is mfactl newer than mfad?"
            )),
            BusErrorKind::Other => Error::Refused(if detail.is_empty() {
                name
            } else {
                format!("{name}: {detail}")
            }),
        }
    }

    pub fn timeout(address: &str, limit: Duration) -> Error {
        Error::Unreachable {
            address: address.to_string(),
            detail: format!("mfad did not answer within {} s", limit.as_secs()),
        }
    }
}

/// What a D-Bus error name from the bus (not from mfad) means for us.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum BusErrorKind {
    NotRunning,
    NoAnswer,
    AccessDenied,
    Incompatible,
    Other,
}

impl BusErrorKind {
    fn of(name: &str) -> BusErrorKind {
        const FDO: &str = "org.freedesktop.DBus.Error.";
        let Some(short) = name.strip_prefix(FDO) else {
            return BusErrorKind::Other;
        };
        match short {
            "ServiceUnknown" | "NameHasNoOwner" => BusErrorKind::NotRunning,
            s if s.starts_with("Spawn.") => BusErrorKind::NotRunning,
            "NoReply" | "Timeout" | "TimedOut" | "Disconnected" | "NoServer" => {
                BusErrorKind::NoAnswer
            }
            "AccessDenied" => BusErrorKind::AccessDenied,
            "UnknownMethod" | "UnknownInterface" | "UnknownObject" | "UnknownProperty" => {
                BusErrorKind::Incompatible
            }
            _ => BusErrorKind::Other,
        }
    }
}

impl From<io::Error> for Error {
    fn from(e: io::Error) -> Self {
        Error::Output(e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ADDR: &str = "unix:path=/nonexistent";

    #[test]
    fn daemon_errors_map_to_exit_codes() {
        let rows: [(MfaError, u8); 9] = [
            (MfaError::AccessDenied("no".into()), EXIT_ACCESS_DENIED),
            (MfaError::PolicyDenied("level".into()), EXIT_REFUSED),
            (MfaError::LimitReached("later".into()), EXIT_REFUSED),
            (MfaError::WrongCode("wrong".into()), EXIT_NOT_CONFIRMED),
            (MfaError::InvalidArgument("bad".into()), EXIT_REFUSED),
            (MfaError::NotFound("gone".into()), EXIT_REFUSED),
            (MfaError::UnknownHandle("h".into()), EXIT_REFUSED),
            (MfaError::Store("disk".into()), EXIT_REFUSED),
            (MfaError::Internal("bug".into()), EXIT_REFUSED),
        ];
        for (error, code) in rows {
            let mapped = Error::from_daemon(error, ADDR);
            assert_eq!(mapped.exit_code(), code, "{mapped:?}");
        }
    }

    #[test]
    fn daemon_message_is_kept_verbatim() {
        let e = Error::from_daemon(MfaError::NotFound("no factor abc".into()), ADDR);
        assert_eq!(e.to_string(), "no factor abc");
    }

    #[test]
    fn bus_error_names_are_classified() {
        let rows = [
            (
                "org.freedesktop.DBus.Error.ServiceUnknown",
                BusErrorKind::NotRunning,
            ),
            (
                "org.freedesktop.DBus.Error.NameHasNoOwner",
                BusErrorKind::NotRunning,
            ),
            (
                "org.freedesktop.DBus.Error.Spawn.ExecFailed",
                BusErrorKind::NotRunning,
            ),
            ("org.freedesktop.DBus.Error.NoReply", BusErrorKind::NoAnswer),
            (
                "org.freedesktop.DBus.Error.AccessDenied",
                BusErrorKind::AccessDenied,
            ),
            (
                "org.freedesktop.DBus.Error.UnknownMethod",
                BusErrorKind::Incompatible,
            ),
            ("org.freedesktop.DBus.Error.Failed", BusErrorKind::Other),
            ("com.example.Whatever", BusErrorKind::Other),
        ];
        for (name, kind) in rows {
            assert_eq!(BusErrorKind::of(name), kind, "{name}");
        }
    }

    #[test]
    fn fdo_errors_map_to_exit_codes() {
        let fdo = |e: zbus::fdo::Error| MfaError::ZBus(zbus::Error::FDO(Box::new(e)));
        let rows = [
            (
                fdo(zbus::fdo::Error::ServiceUnknown("x".into())),
                EXIT_UNREACHABLE,
            ),
            (fdo(zbus::fdo::Error::NoReply("x".into())), EXIT_UNREACHABLE),
            (
                fdo(zbus::fdo::Error::AccessDenied("x".into())),
                EXIT_ACCESS_DENIED,
            ),
            (
                fdo(zbus::fdo::Error::UnknownMethod("x".into())),
                EXIT_REFUSED,
            ),
            (MfaError::ZBus(zbus::Error::InvalidReply), EXIT_UNREACHABLE),
        ];
        for (error, code) in rows {
            let mapped = Error::from_daemon(error, ADDR);
            assert_eq!(mapped.exit_code(), code, "{mapped:?}");
        }
    }

    #[test]
    fn local_errors_map_to_exit_codes() {
        assert_eq!(Error::Usage("x".into()).exit_code(), EXIT_USAGE);
        let input = Error::Input {
            what: "f".into(),
            source: io::ErrorKind::NotFound.into(),
        };
        assert_eq!(input.exit_code(), EXIT_USAGE);
        assert_eq!(Error::Declined("no".into()).exit_code(), EXIT_REFUSED);
        assert_eq!(
            Error::timeout(ADDR, Duration::from_secs(3)).exit_code(),
            EXIT_UNREACHABLE
        );
        assert_eq!(
            Error::Output(io::ErrorKind::BrokenPipe.into()).exit_code(),
            EXIT_REFUSED
        );
        assert_eq!(EXIT_OK, 0);
    }

    #[test]
    fn not_confirmed_tells_how_to_finish() {
        let e = Error::NotConfirmed {
            id: "f1".into(),
            expires: Some(1_700_000_000),
            why: "wrong code".into(),
        };
        assert_eq!(e.exit_code(), EXIT_NOT_CONFIRMED);
        // In the local zone, whatever it is here.
        let until = dates::human(1_700_000_000, &dates::local_zone());
        assert_eq!(
            e.to_string(),
            format!(
                "wrong code\npending enrolment f1 kept until {until}; \
                 finish it with `mfactl confirm f1 CODE`"
            )
        );
        let e = Error::NotConfirmed {
            id: "f1".into(),
            expires: None,
            why: "no code".into(),
        };
        assert!(e.to_string().contains("f1 kept until it expires"));
    }
}
