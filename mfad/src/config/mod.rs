//! `mfad.toml`: parsed strictly into a raw form that remembers where each
//! value stood, then validated once into [`Config`], which the rest of the
//! daemon uses. Every error names the key and the line.

mod email;
mod time;

pub use time::{server_address, OnFailure, TimeConfig, TimeSource};
mod raw;

use crate::mechanism::Algorithm;
use crate::policy::Policy;
use std::fmt;
use std::path::{Path, PathBuf};

pub const DEFAULT_PATH: &str = "/etc/mfa/mfad.toml";
/// The only config format version this mfad reads.
pub const VERSION: u32 = 1;

#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    pub daemon: DaemonConfig,
    pub login: LoginConfig,
    pub lockout: LockoutConfig,
    pub enrolment: EnrolmentConfig,
    pub totp: TotpConfig,
    pub hotp: HotpConfig,
    pub notify: NotifyConfig,
    pub policy: Policy,
    pub limits: LimitsConfig,
    pub fido2: Fido2Config,
    pub store: StoreConfig,
    pub email: EmailConfig,
    pub time: TimeConfig,
}

/// One-time codes by e-mail (`[email]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EmailConfig {
    /// Off: `email` cannot be enrolled or asked.
    pub enabled: bool,
    pub relay: String,
    pub port: u16,
    pub tls: SmtpTls,
    /// The CA the relay's certificate is checked against; `None`: the
    /// system's roots.
    pub ca_file: Option<PathBuf>,
    /// User name and password for AUTH, on two lines of a 0600 file.
    pub credentials_file: Option<PathBuf>,
    /// `From:`, a mailbox (`pam_mfa <mfa@example.org>`).
    pub from: String,
    /// With `{host}` and `{user}`.
    pub subject: String,
    /// The body, with `{code}`, `{user}`, `{host}` and `{minutes}`.
    pub template: String,
    /// Where a user's codes go when nobody set an address: `{user}@…`.
    pub address: Option<String>,
    pub code_length: u32,
    /// Seconds a code can be used.
    pub validity: u64,
    /// Seconds before another code is sent to the same user.
    pub resend_delay: u64,
    pub max_per_hour: u32,
    /// The most a send may take, connecting included.
    pub send_timeout: std::time::Duration,
}

/// How mail reaches the relay: always TLS, verified.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SmtpTls {
    /// Plain connection upgraded with STARTTLS before anything is sent
    /// (port 587); a relay that does not offer it is refused.
    Starttls,
    /// TLS from the first byte (port 465).
    Implicit,
}

/// Where factors and counters live (`[store]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreConfig {
    /// The embedded SQLite database in `[daemon] state_dir`.
    Sqlite,
    /// One PostgreSQL database shared by a fleet.
    Postgres(PgConfig),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PgConfig {
    /// A host name or address, or the directory of a local Unix socket.
    pub host: String,
    pub port: u16,
    pub dbname: String,
    pub user: String,
    /// The password, on the first line of a file only root reads.
    pub password_file: Option<PathBuf>,
    pub tls: PgTls,
    /// The most one store call may take, connecting included.
    pub timeout: std::time::Duration,
}

impl PgConfig {
    /// Where the database is, for messages: `postgresql host:port/dbname`.
    pub fn describe(&self) -> String {
        format!("postgresql {}:{}/{}", self.host, self.port, self.dbname)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PgTls {
    /// TLS, the server's certificate checked against this CA and its name
    /// against `host` (verify-full).
    VerifyFull { ca_file: PathBuf },
    /// No TLS: only for a Unix socket on this machine.
    LocalSocket,
}

/// USB security keys (`[fido2]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fido2Config {
    /// Off: `fido2` cannot be enrolled or asked.
    pub enabled: bool,
    /// The relying party ID credentials are bound to; `None`: `pam://HOST`.
    /// One value for a fleet, or a key enrolled on one host fails on the
    /// others.
    pub rp_id: Option<String>,
    /// Where `class/hidraw` is found (sysfs).
    pub sysfs: PathBuf,
    /// Where the `hidrawN` device nodes are.
    pub dev: PathBuf,
}

impl Fido2Config {
    /// The relying party ID in force on host `hostname`.
    pub fn rp_id_on(&self, hostname: &str) -> String {
        self.rp_id
            .clone()
            .unwrap_or_else(|| format!("pam://{hostname}"))
    }
}

/// What one non-admin user may do to their own account, so that nobody can
/// grow the store, the audit history or the log without bound.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LimitsConfig {
    /// Unconfirmed enrolments kept per user; a new one replaces the oldest.
    pub max_pending: u32,
    /// Confirmed factors per user.
    pub max_factors: u32,
    /// Changes (enrol, confirm, remove, recovery codes, resync, level,
    /// preferred factor, device revocations) a user may make in a burst…
    pub changes_burst: u32,
    /// …and then per hour, spread evenly.
    pub changes_per_hour: u32,
    /// Logins a user starts for their own account, not through a root PAM
    /// client (a screen locker's unlock, a step-up proof), in a burst…
    pub own_logins_burst: u32,
    /// …and then per hour, spread evenly.
    pub own_logins_per_hour: u32,
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct NotifyConfig {
    /// Run as `COMMAND EVENT USER BY_UID` when a user's MFA goes away.
    pub command: Option<PathBuf>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct DaemonConfig {
    pub state_dir: PathBuf,
    /// Members of this group may use the admin interface besides root.
    pub admin_group: Option<String>,
    pub log: LogTarget,
    /// Where root PAM clients reach Login1 peer to peer; `None`: only the
    /// bus (`login_socket = ""`).
    pub login_socket: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogTarget {
    Syslog,
    Stderr,
}

#[derive(Debug, Clone, PartialEq)]
pub struct LoginConfig {
    /// Seconds from the start of a login to its last answer.
    pub timeout: u64,
    pub max_tries: u32,
    /// Least time every failed answer takes, in milliseconds.
    pub failure_delay_ms: u64,
}

/// Consecutive failed codes, counted across every login and service.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LockoutConfig {
    /// Failures in a row that lock the user out (1 to 100).
    pub max_failures: u32,
    /// Seconds until a lockout ends by itself; 0 = only `mfactl unlock`.
    pub unlock_after: u64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct EnrolmentConfig {
    pub issuer: String,
    /// Seconds an unconfirmed enrolment is kept.
    pub pending_expiry: u64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct TotpConfig {
    pub algorithm: Algorithm,
    pub digits: u32,
    pub period: u32,
    /// Time steps accepted on either side of the expected one.
    pub skew: u32,
    /// Steps a token's clock may be learned to be off by (and resync searches).
    pub max_drift: u32,
}

#[derive(Debug, Clone, PartialEq)]
pub struct HotpConfig {
    pub digits: u32,
    /// How many counter values ahead of the stored one are accepted.
    pub window: u32,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            time: TimeConfig::default(),
            daemon: DaemonConfig {
                state_dir: PathBuf::from("/var/lib/mfa"),
                admin_group: None,
                log: LogTarget::Syslog,
                login_socket: Some(PathBuf::from(mfa_dbus::LOGIN_SOCKET)),
            },
            login: LoginConfig {
                timeout: 180,
                max_tries: 3,
                failure_delay_ms: 1000,
            },
            lockout: LockoutConfig {
                max_failures: 10,
                unlock_after: 900,
            },
            enrolment: EnrolmentConfig {
                issuer: "pam_mfa".into(),
                pending_expiry: 600,
            },
            totp: TotpConfig {
                algorithm: Algorithm::Sha1,
                digits: 6,
                period: 30,
                skew: 1,
                max_drift: 10,
            },
            notify: NotifyConfig::default(),
            hotp: HotpConfig {
                digits: 6,
                window: 10,
            },
            policy: Policy::default(),
            store: StoreConfig::Sqlite,
            fido2: Fido2Config {
                enabled: false,
                rp_id: None,
                sysfs: PathBuf::from("/sys"),
                dev: PathBuf::from("/dev"),
            },
            email: EmailConfig::default(),
            limits: LimitsConfig {
                max_pending: 3,
                max_factors: 20,
                changes_burst: 10,
                changes_per_hour: 60,
                own_logins_burst: 10,
                own_logins_per_hour: 60,
            },
        }
    }
}

/// A config that could not be used, with where and why.
#[derive(Debug, Clone, PartialEq)]
pub struct ConfigError {
    pub path: PathBuf,
    /// 1-based line of the offending value, when known.
    pub line: Option<usize>,
    /// Dotted key, e.g. `totp.digits`, when known.
    pub key: Option<String>,
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.path.display())?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
        }
        if let Some(key) = &self.key {
            write!(f, ": {key}")?;
        }
        write!(f, ": {}", self.message)
    }
}

impl std::error::Error for ConfigError {}

impl Config {
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
            path: path.to_path_buf(),
            line: None,
            key: None,
            message: format!("cannot read: {e}"),
        })?;
        Config::parse(&text, path)
    }

    /// Parse and validate `text`; `path` is only used in error messages.
    pub fn parse(text: &str, path: &Path) -> Result<Config, ConfigError> {
        raw::parse(text).map_err(|e| ConfigError {
            path: path.to_path_buf(),
            line: e.offset.map(|o| line_of(text, o)),
            key: e.key,
            message: e.message,
        })
    }
}

fn line_of(text: &str, offset: usize) -> usize {
    text.as_bytes()
        .iter()
        .take(offset)
        .filter(|&&b| b == b'\n')
        .count()
        + 1
}

#[cfg(test)]
mod tests;
