//! The file as written: every table denies unknown keys, every value keeps
//! its span so validation errors can name the line.

use super::{
    Config, DaemonConfig, EnrolmentConfig, HotpConfig, LockoutConfig, LogTarget, LoginConfig,
    NotifyConfig, TotpConfig, Unenrolled, VERSION,
};
use crate::mechanism::Algorithm;
use serde::Deserialize;
use std::path::PathBuf;
use toml::Spanned;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    version: Option<Spanned<u32>>,
    #[serde(default)]
    daemon: RawDaemon,
    #[serde(default)]
    login: RawLogin,
    #[serde(default)]
    lockout: RawLockout,
    #[serde(default)]
    enrolment: RawEnrolment,
    #[serde(default)]
    totp: RawTotp,
    #[serde(default)]
    hotp: RawHotp,
    #[serde(default)]
    notify: RawNotify,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawNotify {
    command: Option<Spanned<String>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawDaemon {
    state_dir: Option<Spanned<String>>,
    admin_group: Option<Spanned<String>>,
    log: Option<Spanned<String>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawLogin {
    timeout: Option<Spanned<i64>>,
    max_tries: Option<Spanned<i64>>,
    unenrolled: Option<Spanned<String>>,
    failure_delay_ms: Option<Spanned<i64>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawLockout {
    max_failures: Option<Spanned<i64>>,
    unlock_after: Option<Spanned<i64>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawEnrolment {
    issuer: Option<Spanned<String>>,
    pending_expiry: Option<Spanned<i64>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawTotp {
    algorithm: Option<Spanned<String>>,
    digits: Option<Spanned<i64>>,
    period: Option<Spanned<i64>>,
    skew: Option<Spanned<i64>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawHotp {
    digits: Option<Spanned<i64>>,
    window: Option<Spanned<i64>>,
}

pub(super) struct RawError {
    pub offset: Option<usize>,
    pub key: Option<String>,
    pub message: String,
}

fn invalid<T>(key: &str, span: std::ops::Range<usize>, message: String) -> Result<T, RawError> {
    Err(RawError {
        offset: Some(span.start),
        key: Some(key.to_string()),
        message,
    })
}

fn int_in<T: TryFrom<i64>>(
    key: &str,
    value: Option<Spanned<i64>>,
    range: std::ops::RangeInclusive<i64>,
    default: T,
) -> Result<T, RawError> {
    let Some(value) = value else {
        return Ok(default);
    };
    let v = *value.get_ref();
    if !range.contains(&v) {
        return invalid(
            key,
            value.span(),
            format!(
                "{v} is out of range: must be {} to {}",
                range.start(),
                range.end()
            ),
        );
    }
    T::try_from(v).or_else(|_| invalid(key, value.span(), format!("{v} is out of range")))
}

fn one_of<T: Copy>(
    key: &str,
    value: Option<Spanned<String>>,
    choices: &[(&str, T)],
    default: T,
) -> Result<T, RawError> {
    let Some(value) = value else {
        return Ok(default);
    };
    match choices
        .iter()
        .find(|(name, _)| *name == value.get_ref().as_str())
    {
        Some((_, choice)) => Ok(*choice),
        None => {
            let names: Vec<String> = choices.iter().map(|(n, _)| format!("\"{n}\"")).collect();
            invalid(
                key,
                value.span(),
                format!("\"{}\" is not one of {}", value.get_ref(), names.join(", ")),
            )
        }
    }
}

pub(super) fn parse(text: &str) -> Result<Config, RawError> {
    let raw: RawConfig = toml::from_str(text).map_err(|e| {
        let offset = e.span().map(|s| s.start);
        RawError {
            offset,
            key: offset.and_then(|o| key_at(text, o)),
            message: e.message().to_string(),
        }
    })?;
    let defaults = Config::default();

    let Some(version) = raw.version else {
        return Err(RawError {
            offset: None,
            key: Some("version".into()),
            message: format!("missing; this mfad reads `version = {VERSION}`"),
        });
    };
    if *version.get_ref() != VERSION {
        return invalid(
            "version",
            version.span(),
            format!(
                "version {} is not supported; this mfad reads version {VERSION}",
                version.get_ref()
            ),
        );
    }

    let state_dir = match raw.daemon.state_dir {
        None => defaults.daemon.state_dir,
        Some(dir) => {
            let path = PathBuf::from(dir.get_ref());
            if !path.is_absolute() {
                return invalid(
                    "daemon.state_dir",
                    dir.span(),
                    "must be an absolute path".into(),
                );
            }
            path
        }
    };
    let admin_group = match raw.daemon.admin_group {
        None => None,
        Some(g) if g.get_ref().is_empty() => None,
        Some(g) => {
            if !valid_name(g.get_ref()) {
                return invalid(
                    "daemon.admin_group",
                    g.span(),
                    format!("\"{}\" is not a valid group name", g.get_ref()),
                );
            }
            Some(g.into_inner())
        }
    };
    let log = one_of(
        "daemon.log",
        raw.daemon.log,
        &[("syslog", LogTarget::Syslog), ("stderr", LogTarget::Stderr)],
        defaults.daemon.log,
    )?;

    let login = LoginConfig {
        timeout: int_in(
            "login.timeout",
            raw.login.timeout,
            10..=3600,
            defaults.login.timeout,
        )?,
        max_tries: int_in(
            "login.max_tries",
            raw.login.max_tries,
            1..=10,
            defaults.login.max_tries,
        )?,
        unenrolled: one_of(
            "login.unenrolled",
            raw.login.unenrolled,
            &[("deny", Unenrolled::Deny), ("allow", Unenrolled::Allow)],
            defaults.login.unenrolled,
        )?,
        failure_delay_ms: int_in(
            "login.failure_delay_ms",
            raw.login.failure_delay_ms,
            0..=10_000,
            defaults.login.failure_delay_ms,
        )?,
    };

    // The hard cap: no configuration may allow more than 100 guesses in a row.
    let lockout = LockoutConfig {
        max_failures: int_in(
            "lockout.max_failures",
            raw.lockout.max_failures,
            1..=100,
            defaults.lockout.max_failures,
        )?,
        unlock_after: int_in(
            "lockout.unlock_after",
            raw.lockout.unlock_after,
            0..=30 * 24 * 3600,
            defaults.lockout.unlock_after,
        )?,
    };

    let issuer = match raw.enrolment.issuer {
        None => defaults.enrolment.issuer,
        Some(i) => {
            let s = i.get_ref();
            if s.is_empty() || s.len() > 64 || s.contains(':') || s.chars().any(char::is_control) {
                return invalid(
                    "enrolment.issuer",
                    i.span(),
                    "must be 1 to 64 characters, without ':' or control characters".into(),
                );
            }
            i.into_inner()
        }
    };
    let enrolment = EnrolmentConfig {
        issuer,
        pending_expiry: int_in(
            "enrolment.pending_expiry",
            raw.enrolment.pending_expiry,
            60..=7 * 24 * 3600,
            defaults.enrolment.pending_expiry,
        )?,
    };

    let totp = TotpConfig {
        algorithm: one_of(
            "totp.algorithm",
            raw.totp.algorithm,
            &[
                ("SHA1", Algorithm::Sha1),
                ("SHA256", Algorithm::Sha256),
                ("SHA512", Algorithm::Sha512),
            ],
            defaults.totp.algorithm,
        )?,
        digits: int_in("totp.digits", raw.totp.digits, 6..=8, defaults.totp.digits)?,
        period: int_in(
            "totp.period",
            raw.totp.period,
            10..=300,
            defaults.totp.period,
        )?,
        skew: int_in("totp.skew", raw.totp.skew, 0..=10, defaults.totp.skew)?,
    };
    let hotp = HotpConfig {
        digits: int_in("hotp.digits", raw.hotp.digits, 6..=8, defaults.hotp.digits)?,
        window: int_in(
            "hotp.window",
            raw.hotp.window,
            1..=100,
            defaults.hotp.window,
        )?,
    };

    let command = match raw.notify.command {
        None => None,
        Some(c) if c.get_ref().is_empty() => None,
        Some(c) => {
            let path = PathBuf::from(c.get_ref());
            if !path.is_absolute() {
                return invalid(
                    "notify.command",
                    c.span(),
                    "must be an absolute path".into(),
                );
            }
            Some(path)
        }
    };

    Ok(Config {
        daemon: DaemonConfig {
            state_dir,
            admin_group,
            log,
        },
        login,
        lockout,
        enrolment,
        totp,
        hotp,
        notify: NotifyConfig { command },
    })
}

/// POSIX-ish user/group name: what useradd accepts, no shell surprises.
fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && !name.starts_with('-')
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | '$'))
}

/// The dotted key whose value sits at `offset`, for errors the TOML parser
/// reports with a position only (a value of the wrong type). mfad.toml is
/// flat: `[table]` headers and `key = value` lines.
fn key_at(text: &str, offset: usize) -> Option<String> {
    let mut table: Option<String> = None;
    let mut start = 0;
    for line in text.split_inclusive('\n') {
        let end = start + line.len();
        let trimmed = line.trim();
        if trimmed.starts_with('[') {
            table = trimmed
                .trim_start_matches('[')
                .split(']')
                .next()
                .map(|t| t.trim().to_string());
        }
        if (start..end).contains(&offset) {
            let (key, _) = trimmed.split_once('=')?;
            let key = key.trim();
            if key.is_empty() || trimmed.starts_with('[') {
                return None;
            }
            return Some(match table {
                Some(t) => format!("{t}.{key}"),
                None => key.to_string(),
            });
        }
        start = end;
    }
    None
}
