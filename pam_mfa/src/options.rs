//! Module options, from the arguments on the PAM line and nothing else.
//!
//! The module runs inside setuid programs whose environment belongs to the
//! caller, so no option has an environment fallback. Anything unknown,
//! malformed or repeated is an error: the caller fails closed with
//! `PAM_SERVICE_ERR` rather than run with a setting the admin did not write.

use std::fmt;
use std::time::Duration;

/// Seconds allowed for connecting to the bus and for each call to mfad.
pub const DEFAULT_TIMEOUT_SECS: u64 = mfa_dbus::DEFAULT_CALL_TIMEOUT_SECS;
pub const MAX_TIMEOUT_SECS: u64 = 300;

/// What to do when mfad cannot be reached at all.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FailMode {
    /// Refuse with `PAM_AUTHINFO_UNAVAIL` (default).
    Closed,
    /// Return `PAM_IGNORE`, so the rest of the stack decides. Never
    /// `PAM_SUCCESS`.
    Open,
}

/// What to return when mfad needed no second factor for this login.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Skip {
    /// `PAM_IGNORE` (default): the rest of the stack decides, so a
    /// `sufficient` pam_mfa never stands in for the password. A stack of
    /// pam_mfa alone then refuses: end it with `pam_permit`.
    Ignore,
    /// `PAM_SUCCESS`: for a stack where pam_mfa is the only auth module
    /// (sshd's keyboard-interactive after a public key). Never with
    /// `sufficient`.
    Success,
}

/// How the module reaches mfad.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transport {
    /// The login socket when the PAM client runs as root (sshd, login,
    /// sudo, su, display managers), the bus otherwise (a screen locker
    /// running as the user). The default.
    Auto,
    Socket,
    Bus,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Options {
    /// Log debug messages.
    pub debug: bool,
    /// Limit for connecting and for each call to mfad.
    pub timeout: Duration,
    pub failmode: FailMode,
    /// D-Bus address of the bus mfad is on: always `unix:path=/…`.
    pub bus: String,
    /// mfad's login socket: an absolute path.
    pub socket: String,
    pub transport: Transport,
    /// Wrong codes allowed in one login; `None`: mfad's `[login].max_tries`.
    /// mfad uses the smaller of the two.
    pub max_tries: Option<u32>,
    /// Do not ask libpam to delay a failed authentication.
    pub nodelay: bool,
    pub skip: Skip,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            debug: false,
            timeout: Duration::from_secs(DEFAULT_TIMEOUT_SECS),
            failmode: FailMode::Closed,
            bus: mfa_dbus::SYSTEM_BUS_ADDRESS.to_string(),
            socket: mfa_dbus::LOGIN_SOCKET.to_string(),
            transport: Transport::Auto,
            max_tries: None,
            nodelay: false,
            skip: Skip::Ignore,
        }
    }
}

/// Why the PAM line's arguments were refused. Arguments come from a
/// root-owned file and carry no secret, so they are shown as written.
#[derive(Debug, PartialEq, Eq)]
pub enum OptionError {
    NotUtf8 {
        index: usize,
    },
    Unknown(String),
    Repeated(&'static str),
    Invalid {
        option: &'static str,
        value: String,
        expected: &'static str,
    },
}

impl fmt::Display for OptionError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            OptionError::NotUtf8 { index } => write!(f, "module argument {index} is not UTF-8"),
            OptionError::Unknown(arg) => write!(f, "unknown module option {:?}", arg),
            OptionError::Repeated(name) => write!(f, "module option {name} given more than once"),
            OptionError::Invalid {
                option,
                value,
                expected,
            } => {
                write!(
                    f,
                    "bad value {value:?} for module option {option}: expected {expected}"
                )
            }
        }
    }
}

impl Options {
    /// Parse the module arguments (`argv` of the PAM line) in order.
    pub fn parse<'a>(args: impl IntoIterator<Item = &'a [u8]>) -> Result<Options, OptionError> {
        let mut options = Options::default();
        let mut seen: Vec<&'static str> = Vec::new();
        let mut once = |name: &'static str| {
            if seen.contains(&name) {
                return Err(OptionError::Repeated(name));
            }
            seen.push(name);
            Ok(())
        };
        for (index, arg) in args.into_iter().enumerate() {
            let arg = std::str::from_utf8(arg).map_err(|_| OptionError::NotUtf8 { index })?;
            let (name, value) = match arg.split_once('=') {
                Some((name, value)) => (name, Some(value)),
                None => (arg, None),
            };
            match (name, value) {
                ("debug", None) => {
                    once("debug")?;
                    options.debug = true;
                }
                ("timeout", Some(value)) => {
                    once("timeout")?;
                    options.timeout = parse_timeout(value)?;
                }
                ("failmode", Some(value)) => {
                    once("failmode")?;
                    options.failmode = match value {
                        "closed" => FailMode::Closed,
                        "open" => FailMode::Open,
                        _ => return Err(invalid("failmode", value, "closed or open")),
                    };
                }
                ("bus", Some(value)) => {
                    once("bus")?;
                    options.bus = parse_bus(value)?;
                }
                ("socket", Some(value)) => {
                    once("socket")?;
                    options.socket = parse_path(value)
                        .ok_or_else(|| invalid("socket", value, PATH_EXPECTED))?
                        .to_string();
                }
                ("transport", Some(value)) => {
                    once("transport")?;
                    options.transport = match value {
                        "auto" => Transport::Auto,
                        "socket" => Transport::Socket,
                        "bus" => Transport::Bus,
                        _ => return Err(invalid("transport", value, "auto, socket or bus")),
                    };
                }
                ("max_tries", Some(value)) => {
                    once("max_tries")?;
                    options.max_tries = Some(parse_max_tries(value)?);
                }
                ("nodelay", None) => {
                    once("nodelay")?;
                    options.nodelay = true;
                }
                ("skip", Some(value)) => {
                    once("skip")?;
                    options.skip = match value {
                        "ignore" => Skip::Ignore,
                        "success" => Skip::Success,
                        _ => return Err(invalid("skip", value, "ignore or success")),
                    };
                }
                _ => return Err(OptionError::Unknown(arg.to_string())),
            }
        }
        Ok(options)
    }
}

fn invalid(option: &'static str, value: &str, expected: &'static str) -> OptionError {
    OptionError::Invalid {
        option,
        value: value.to_string(),
        expected,
    }
}

fn parse_timeout(value: &str) -> Result<Duration, OptionError> {
    const EXPECTED: &str = "whole seconds from 1 to 300";
    // Digits only: `u64::from_str` would also take a leading `+`.
    if value.is_empty() || value.len() > 3 || !value.bytes().all(|b| b.is_ascii_digit()) {
        return Err(invalid("timeout", value, EXPECTED));
    }
    match value.parse::<u64>() {
        Ok(secs) if (1..=MAX_TIMEOUT_SECS).contains(&secs) => Ok(Duration::from_secs(secs)),
        _ => Err(invalid("timeout", value, EXPECTED)),
    }
}

fn parse_max_tries(value: &str) -> Result<u32, OptionError> {
    const EXPECTED: &str = "a whole number from 1 to 10";
    if value.is_empty() || value.len() > 2 || !value.bytes().all(|b| b.is_ascii_digit()) {
        return Err(invalid("max_tries", value, EXPECTED));
    }
    match value.parse::<u32>() {
        Ok(n) if (1..=10).contains(&n) => Ok(n),
        _ => Err(invalid("max_tries", value, EXPECTED)),
    }
}

const PATH_EXPECTED: &str = "an absolute path (letters, digits and -_/.)";

/// An absolute path of bytes a D-Bus address carries unescaped, so no `,`
/// (another key), `;` (another address) or `%` (an escape) can change what
/// is connected to; and no `..`, so the path is the one written.
fn parse_path(path: &str) -> Option<&str> {
    let allowed = |b: u8| b.is_ascii_alphanumeric() || b"-_/.".contains(&b);
    let climbs = path.split('/').any(|part| part == "..");
    (path.len() >= 2 && path.starts_with('/') && path.bytes().all(allowed) && !climbs)
        .then_some(path)
}

/// Accept exactly `unix:path=/absolute/path`.
fn parse_bus(value: &str) -> Result<String, OptionError> {
    const EXPECTED: &str = "unix:path=/absolute/path (letters, digits and -_/.)";
    value
        .strip_prefix("unix:path=")
        .and_then(parse_path)
        .ok_or_else(|| invalid("bus", value, EXPECTED))?;
    Ok(value.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Options, OptionError> {
        Options::parse(args.iter().map(|a| a.as_bytes()))
    }

    #[test]
    fn defaults_without_arguments() {
        let options = parse(&[]).expect("no arguments is valid");
        assert_eq!(options, Options::default());
        assert!(!options.debug);
        assert_eq!(options.timeout, Duration::from_secs(10));
        assert_eq!(options.failmode, FailMode::Closed);
        assert_eq!(options.bus, "unix:path=/run/dbus/system_bus_socket");
    }

    #[test]
    fn every_option_in_one_line() {
        let options = parse(&[
            "debug",
            "timeout=300",
            "failmode=open",
            "bus=unix:path=/tmp/t-1/bus.sock",
            "max_tries=2",
            "nodelay",
            "skip=success",
            "socket=/tmp/t-1/mfa/login.sock",
            "transport=socket",
        ])
        .expect("valid line");
        assert_eq!(
            options,
            Options {
                debug: true,
                timeout: Duration::from_secs(300),
                failmode: FailMode::Open,
                bus: "unix:path=/tmp/t-1/bus.sock".into(),
                socket: "/tmp/t-1/mfa/login.sock".into(),
                transport: Transport::Socket,
                max_tries: Some(2),
                nodelay: true,
                skip: Skip::Success,
            }
        );
        assert_eq!(Options::default().skip, Skip::Ignore, "the safe default");
        assert_eq!(Options::default().transport, Transport::Auto);
        assert_eq!(Options::default().socket, "/run/mfa/login.sock");
        for bad in [
            "transport=dbus",
            "transport=",
            "socket=relative/login.sock",
            "socket=/run/mfa/../tmp/login.sock",
            "socket=/run/mfa/login.sock,x",
            "socket=/",
            "socket=",
            "skip=SUCCESS",
            "skip=",
            "skip",
            "skip=permit",
            "max_tries=0",
            "max_tries=11",
            "max_tries=+3",
            "max_tries=",
            "nodelay=1",
        ] {
            assert!(parse(&[bad]).is_err(), "{bad}");
        }
        assert_eq!(
            parse(&["failmode=closed"]).map(|o| o.failmode),
            Ok(FailMode::Closed)
        );
        assert_eq!(
            parse(&["timeout=1"]).map(|o| o.timeout),
            Ok(Duration::from_secs(1))
        );
    }

    #[test]
    fn unknown_options_are_refused() {
        for arg in [
            "nullok", "Debug", "debug=1", "", "=", "timeout", "failmode", "bus", " debug",
        ] {
            assert!(parse(&[arg]).is_err(), "{arg:?} must be refused");
        }
        assert_eq!(
            parse(&["nullok"]),
            Err(OptionError::Unknown("nullok".into()))
        );
    }

    #[test]
    fn timeout_out_of_range_or_malformed() {
        for value in [
            "0",
            "301",
            "1000",
            "-1",
            "+5",
            " 5",
            "5s",
            "1.5",
            "",
            "99999999999999999999",
        ] {
            let arg = format!("timeout={value}");
            assert!(
                matches!(
                    parse(&[&arg]),
                    Err(OptionError::Invalid {
                        option: "timeout",
                        ..
                    })
                ),
                "{arg:?} must be refused"
            );
        }
    }

    #[test]
    fn failmode_only_closed_or_open() {
        for value in ["", "Open", "CLOSED", "ignore", "success", "open "] {
            let arg = format!("failmode={value}");
            assert!(parse(&[&arg]).is_err(), "{arg:?} must be refused");
        }
    }

    #[test]
    fn bus_only_unix_path_absolute() {
        for value in [
            "",
            "unix:path=",
            "unix:path=/",
            "unix:path=relative/bus",
            "unix:abstract=/bus",
            "unix:dir=/tmp",
            "tcp:host=127.0.0.1,port=1234",
            "unix:path=/tmp/bus,guid=0123",
            "unix:path=/tmp/a;unix:path=/tmp/b",
            "unix:path=/tmp/%2e",
            "unix:path=/tmp/a b",
            "unix:path=/tmp/\u{e9}",
            "UNIX:path=/tmp/bus",
            "unix:path=/tmp/bus\n",
        ] {
            let arg = format!("bus={value}");
            assert!(
                matches!(
                    parse(&[&arg]),
                    Err(OptionError::Invalid { option: "bus", .. })
                ),
                "{arg:?} must be refused"
            );
        }
    }

    #[test]
    fn repeated_options_are_refused() {
        assert_eq!(
            parse(&["debug", "debug"]),
            Err(OptionError::Repeated("debug"))
        );
        assert_eq!(
            parse(&["timeout=5", "timeout=5"]),
            Err(OptionError::Repeated("timeout"))
        );
        assert_eq!(
            parse(&["failmode=closed", "failmode=open"]),
            Err(OptionError::Repeated("failmode"))
        );
        assert_eq!(
            parse(&["bus=unix:path=/a/b", "bus=unix:path=/a/b"]),
            Err(OptionError::Repeated("bus"))
        );
    }

    #[test]
    fn non_utf8_argument_is_refused() {
        let args: [&[u8]; 2] = [b"debug", b"bus=unix:path=/tmp/\xff"];
        assert_eq!(Options::parse(args), Err(OptionError::NotUtf8 { index: 1 }));
    }

    #[test]
    fn error_messages_name_the_argument() {
        assert_eq!(
            parse(&["nullok"]).unwrap_err().to_string(),
            "unknown module option \"nullok\""
        );
        assert_eq!(
            parse(&["timeout=0"]).unwrap_err().to_string(),
            "bad value \"0\" for module option timeout: expected whole seconds from 1 to 300"
        );
    }
}
