//! The file as written: every table denies unknown keys, every value keeps
//! its span so validation errors can name the line.

use super::{
    Config, DaemonConfig, EnrolmentConfig, Fido2Config, HotpConfig, LimitsConfig, LockoutConfig,
    LogTarget, LoginConfig, NotifyConfig, PgConfig, PgTls, StoreConfig, TotpConfig, VERSION,
};
use crate::mechanism::{Algorithm, FactorKind};
use crate::policy::{
    BypassRule, BypassScope, Level, Network, Policy, Requirement, Rule, RuleOrigin,
};
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
    #[serde(default)]
    policy: RawPolicy,
    #[serde(default)]
    bypass: RawBypass,
    #[serde(default)]
    devices: RawDevices,
    #[serde(default)]
    limits: RawLimits,
    #[serde(default)]
    fido2: RawFido2,
    #[serde(default)]
    store: RawStore,
    #[serde(default)]
    email: super::email::RawEmail,
    #[serde(default)]
    time: super::time::RawTime,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawStore {
    backend: Option<Spanned<String>>,
    host: Option<Spanned<String>>,
    port: Option<Spanned<i64>>,
    dbname: Option<Spanned<String>>,
    user: Option<Spanned<String>>,
    password_file: Option<Spanned<String>>,
    tls: Option<Spanned<String>>,
    ca_file: Option<Spanned<String>>,
    timeout: Option<Spanned<i64>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawFido2 {
    enabled: Option<Spanned<bool>>,
    rp_id: Option<Spanned<String>>,
    sysfs: Option<Spanned<String>>,
    dev: Option<Spanned<String>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawLimits {
    max_pending: Option<Spanned<i64>>,
    max_factors: Option<Spanned<i64>>,
    changes_burst: Option<Spanned<i64>>,
    changes_per_hour: Option<Spanned<i64>>,
    own_logins_burst: Option<Spanned<i64>>,
    own_logins_per_hour: Option<Spanned<i64>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawPolicy {
    enabled: Option<Spanned<bool>>,
    methods: Option<Spanned<Vec<String>>>,
    privileged_services: Option<Spanned<Vec<String>>>,
    enrol_at_login: Option<Spanned<bool>>,
    lookup_timeout: Option<Spanned<i64>>,
    unlock: Option<Spanned<String>>,
    step_up: Option<Spanned<bool>>,
    #[serde(default)]
    default: RawRule,
    #[serde(default)]
    group: Vec<RawRule>,
}

/// `[policy.default]` and each `[[policy.group]]` (which alone has `group`).
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawRule {
    group: Option<Spanned<String>>,
    require: Option<Spanned<String>>,
    methods: Option<Spanned<Vec<String>>>,
    min_level: Option<Spanned<String>>,
    elevation_approval: Option<Spanned<bool>>,
    exempt: Option<Spanned<Vec<String>>>,
    allow_missing: Option<Spanned<bool>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawBypass {
    enabled: Option<Spanned<bool>>,
    #[serde(default)]
    rule: Vec<RawBypassRule>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawBypassRule {
    name: Spanned<String>,
    network: Spanned<String>,
    scope: Option<Spanned<String>>,
    expires: Option<Spanned<toml::value::Datetime>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawDevices {
    remember_days: Option<Spanned<i64>>,
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
    login_socket: Option<Spanned<String>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawLogin {
    timeout: Option<Spanned<i64>>,
    max_tries: Option<Spanned<i64>>,
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
    max_drift: Option<Spanned<i64>>,
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

pub(super) fn invalid<T>(
    key: &str,
    span: std::ops::Range<usize>,
    message: String,
) -> Result<T, RawError> {
    Err(RawError {
        offset: Some(span.start),
        key: Some(key.to_string()),
        message,
    })
}

pub(super) fn int_in<T: TryFrom<i64>>(
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

pub(super) fn one_of<T: Copy>(
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

pub(super) fn flag(value: Option<Spanned<bool>>, default: bool) -> bool {
    value.map(Spanned::into_inner).unwrap_or(default)
}

/// A list of method names, each one mfad knows.
fn methods(key: &str, value: Spanned<Vec<String>>) -> Result<Vec<FactorKind>, RawError> {
    let span = value.span();
    let mut kinds = Vec::new();
    for name in value.into_inner() {
        let Some(kind) = FactorKind::from_name(&name) else {
            return invalid(
                key,
                span,
                format!("\"{name}\" is not a method; use {}", FactorKind::choices()),
            );
        };
        if !kinds.contains(&kind) {
            kinds.push(kind);
        }
    }
    Ok(kinds)
}

/// A list of user or service names.
fn names(key: &str, value: Option<Spanned<Vec<String>>>) -> Result<Vec<String>, RawError> {
    let Some(value) = value else {
        return Ok(Vec::new());
    };
    let span = value.span();
    let names = value.into_inner();
    match names.iter().find(|n| !valid_name(n)) {
        Some(bad) => invalid(key, span, format!("\"{bad}\" is not a valid name")),
        None => Ok(names),
    }
}

fn rule(key: &str, raw: RawRule, origin: RuleOrigin) -> Result<Rule, RawError> {
    let defaults = Rule::default_rule();
    Ok(Rule {
        origin,
        require: one_of(
            &format!("{key}.require"),
            raw.require,
            Requirement::CHOICES,
            defaults.require,
        )?,
        methods: match raw.methods {
            None => Vec::new(),
            Some(m) => {
                let span = m.span();
                let kinds = methods(&format!("{key}.methods"), m)?;
                if kinds.is_empty() {
                    return invalid(
                        &format!("{key}.methods"),
                        span,
                        "is empty; leave it out to allow every method".into(),
                    );
                }
                kinds
            }
        },
        min_level: one_of(
            &format!("{key}.min_level"),
            raw.min_level,
            Level::CHOICES,
            defaults.min_level,
        )?,
        elevation_approval: flag(raw.elevation_approval, defaults.elevation_approval),
        exempt: names(&format!("{key}.exempt"), raw.exempt)?,
        allow_missing: flag(raw.allow_missing, defaults.allow_missing),
    })
}

fn policy(
    text: &str,
    raw: RawPolicy,
    bypass: RawBypass,
    devices: RawDevices,
) -> Result<Policy, RawError> {
    let defaults = Policy::default();
    let methods = match raw.methods {
        None => defaults.methods,
        Some(m) => {
            let span = m.span();
            let kinds = methods("policy.methods", m)?;
            if kinds.is_empty() {
                return invalid("policy.methods", span, "allows no method at all".into());
            }
            kinds
        }
    };
    let privileged_services = match raw.privileged_services {
        None => defaults.privileged_services,
        some => names("policy.privileged_services", some)?,
    };
    if let Some(group) = raw.default.group {
        return invalid(
            "policy.default.group",
            group.span(),
            "the default rule applies to everyone; group rules are [[policy.group]] tables".into(),
        );
    }
    if let Some(allow) = &raw.default.allow_missing {
        return invalid(
            "policy.default.allow_missing",
            allow.span(),
            "only a [[policy.group]] rule names a group that may be missing".into(),
        );
    }
    let default_rule = rule("policy.default", raw.default, RuleOrigin::Default)?;
    let mut groups = Vec::new();
    for (i, mut raw_rule) in raw.group.into_iter().enumerate() {
        let key = format!("policy.group[{}]", i + 1);
        let Some(group) = raw_rule.group.take() else {
            return Err(RawError {
                offset: None,
                key: Some(format!("{key}.group")),
                message: "missing: every [[policy.group]] names its group".into(),
            });
        };
        if !valid_name(group.get_ref()) {
            return invalid(
                &format!("{key}.group"),
                group.span(),
                format!("\"{}\" is not a valid group name", group.get_ref()),
            );
        }
        let origin = RuleOrigin::Group {
            line: super::line_of(text, group.span().start),
            group: group.into_inner(),
        };
        groups.push(rule(&key, raw_rule, origin)?);
    }

    let mut rules = Vec::new();
    for (i, r) in bypass.rule.into_iter().enumerate() {
        let key = format!("bypass.rule[{}]", i + 1);
        let name = r.name.get_ref();
        if name.is_empty() || name.len() > 64 || name.chars().any(char::is_control) {
            return invalid(
                &format!("{key}.name"),
                r.name.span(),
                "must be 1 to 64 characters, without control characters".into(),
            );
        }
        let network = Network::parse(r.network.get_ref())
            .or_else(|e| invalid(&format!("{key}.network"), r.network.span(), e))?;
        let scope = one_of(
            &format!("{key}.scope"),
            r.scope,
            BypassScope::CHOICES,
            BypassScope::Login,
        )?;
        let expires = match r.expires {
            None => None,
            Some(when) => Some(
                epoch_seconds(when.get_ref())
                    .or_else(|e| invalid(&format!("{key}.expires"), when.span(), e))?,
            ),
        };
        rules.push(BypassRule {
            line: super::line_of(text, r.name.span().start),
            name: r.name.into_inner(),
            network,
            scope,
            expires,
        });
    }

    Ok(Policy {
        enabled: flag(raw.enabled, defaults.enabled),
        methods,
        privileged_services,
        enrol_at_login: flag(raw.enrol_at_login, defaults.enrol_at_login),
        lookup_timeout: int_in(
            "policy.lookup_timeout",
            raw.lookup_timeout,
            1..=60,
            defaults.lookup_timeout,
        )?,
        default_rule,
        groups,
        bypass_enabled: flag(bypass.enabled, defaults.bypass_enabled),
        bypass: rules,
        remember_days: int_in(
            "devices.remember_days",
            devices.remember_days,
            0..=365,
            defaults.remember_days,
        )?,
        unlock: one_of(
            "policy.unlock",
            raw.unlock,
            crate::policy::Unlock::CHOICES,
            defaults.unlock,
        )?,
        step_up: flag(raw.step_up, defaults.step_up),
    })
}

/// A TOML date (midnight UTC) or date-time with an offset, as seconds since
/// the epoch. A local date-time is refused: which zone would it be in?
fn epoch_seconds(when: &toml::value::Datetime) -> Result<u64, String> {
    use toml::value::Offset;
    let date = when
        .date
        .ok_or("a time without a date is not an expiry; write e.g. 2027-01-31")?;
    let (seconds, offset_minutes) = match (when.time, when.offset) {
        (None, _) => (0, 0),
        (Some(_), None) => {
            return Err("add a zone: e.g. 2027-01-31T18:00:00Z or +01:00".into());
        }
        (Some(t), Some(offset)) => (
            i64::from(t.hour) * 3600 + i64::from(t.minute) * 60 + i64::from(t.second),
            match offset {
                Offset::Z => 0,
                Offset::Custom { minutes } => i64::from(minutes),
            },
        ),
    };
    let days = days_from_civil(
        i64::from(date.year),
        i64::from(date.month),
        i64::from(date.day),
    );
    let at = days * 86_400 + seconds - offset_minutes * 60;
    u64::try_from(at).map_err(|_| "is before 1970".to_string())
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's
/// well-known algorithm).
pub fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
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
    let login_socket = match raw.daemon.login_socket {
        None => defaults.daemon.login_socket,
        Some(path) if path.get_ref().is_empty() => None,
        Some(path) => {
            let value = PathBuf::from(path.get_ref());
            let named = value.file_name().is_some() && value.parent().is_some();
            if !value.is_absolute() || !named || path.get_ref().contains("/../") {
                return invalid(
                    "daemon.login_socket",
                    path.span(),
                    "must be an absolute path to a socket file, or \"\" for none".into(),
                );
            }
            Some(value)
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
        max_drift: int_in(
            "totp.max_drift",
            raw.totp.max_drift,
            0..=120,
            defaults.totp.max_drift,
        )?,
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

    let limits = LimitsConfig {
        max_pending: int_in(
            "limits.max_pending",
            raw.limits.max_pending,
            1..=20,
            defaults.limits.max_pending,
        )?,
        max_factors: int_in(
            "limits.max_factors",
            raw.limits.max_factors,
            1..=100,
            defaults.limits.max_factors,
        )?,
        changes_burst: int_in(
            "limits.changes_burst",
            raw.limits.changes_burst,
            1..=1000,
            defaults.limits.changes_burst,
        )?,
        changes_per_hour: int_in(
            "limits.changes_per_hour",
            raw.limits.changes_per_hour,
            1..=3600,
            defaults.limits.changes_per_hour,
        )?,
        own_logins_burst: int_in(
            "limits.own_logins_burst",
            raw.limits.own_logins_burst,
            1..=1000,
            defaults.limits.own_logins_burst,
        )?,
        own_logins_per_hour: int_in(
            "limits.own_logins_per_hour",
            raw.limits.own_logins_per_hour,
            1..=3600,
            defaults.limits.own_logins_per_hour,
        )?,
    };

    let fido2 = fido2(raw.fido2, &defaults.fido2)?;
    let store = store(raw.store)?;
    let email = super::email::email(raw.email)?;
    let time = super::time::time(raw.time)?;

    Ok(Config {
        store,
        email,
        time,
        fido2,
        limits,
        daemon: DaemonConfig {
            state_dir,
            admin_group,
            log,
            login_socket,
        },
        login,
        lockout,
        enrolment,
        totp,
        hotp,
        notify: NotifyConfig { command },
        policy: policy(text, raw.policy, raw.bypass, raw.devices)?,
    })
}

fn store(raw: RawStore) -> Result<StoreConfig, RawError> {
    #[derive(Clone, Copy)]
    enum Backend {
        Sqlite,
        Postgres,
    }
    let backend = one_of(
        "store.backend",
        raw.backend,
        &[
            ("sqlite", Backend::Sqlite),
            ("postgresql", Backend::Postgres),
        ],
        Backend::Sqlite,
    )?;
    if let Backend::Sqlite = backend {
        // Connection keys without the backend that reads them are a mistake.
        for (key, value) in [
            ("store.host", raw.host.as_ref().map(Spanned::span)),
            ("store.dbname", raw.dbname.as_ref().map(Spanned::span)),
            ("store.user", raw.user.as_ref().map(Spanned::span)),
            ("store.ca_file", raw.ca_file.as_ref().map(Spanned::span)),
            (
                "store.password_file",
                raw.password_file.as_ref().map(Spanned::span),
            ),
        ] {
            if let Some(span) = value {
                return invalid(key, span, "is for backend = \"postgresql\"".into());
            }
        }
        return Ok(StoreConfig::Sqlite);
    }
    let Some(host) = raw.host else {
        return Err(RawError {
            offset: None,
            key: Some("store.host".into()),
            message:
                "missing: the database server's host name, or the directory of its Unix socket"
                    .into(),
        });
    };
    let text = |key: &str, v: Option<Spanned<String>>, default: &str| -> Result<String, RawError> {
        match v {
            None => Ok(default.to_string()),
            Some(v) if v.get_ref().is_empty() || v.get_ref().chars().any(char::is_control) => {
                invalid(
                    key,
                    v.span(),
                    "must not be empty or hold control characters".into(),
                )
            }
            Some(v) => Ok(v.into_inner()),
        }
    };
    let absolute = |key: &str, v: Option<Spanned<String>>| -> Result<Option<PathBuf>, RawError> {
        match v {
            None => Ok(None),
            Some(v) if PathBuf::from(v.get_ref()).is_absolute() => {
                Ok(Some(PathBuf::from(v.into_inner())))
            }
            Some(v) => invalid(key, v.span(), "must be an absolute path".into()),
        }
    };
    let socket = host.get_ref().starts_with('/');
    let tls_span = raw.tls.as_ref().map(Spanned::span);
    let tls_name = raw
        .tls
        .map(Spanned::into_inner)
        .unwrap_or_else(|| "verify-full".into());
    let ca_span = raw.ca_file.as_ref().map(Spanned::span);
    let ca_file = absolute("store.ca_file", raw.ca_file)?;
    let tls = match (tls_name.as_str(), ca_file) {
        ("verify-full", Some(ca_file)) => PgTls::VerifyFull { ca_file },
        ("verify-full", None) => {
            return Err(RawError {
                offset: tls_span.map(|s| s.start),
                key: Some("store.ca_file".into()),
                message: "missing: TLS to the database needs the CA that signed its certificate (tls = \"verify-full\")".into(),
            })
        }
        ("none", None) if socket => PgTls::LocalSocket,
        ("none", Some(_)) => {
            return Err(RawError {
                offset: ca_span.map(|s| s.start),
                key: Some("store.ca_file".into()),
                message: "makes no sense with tls = \"none\"".into(),
            })
        }
        ("none", None) => {
            return Err(RawError {
                offset: tls_span.map(|s| s.start),
                key: Some("store.tls".into()),
                message: "\"none\" only for a Unix socket on this machine (host = a directory): over the network, the database connection must be TLS, verified (\"verify-full\")".into(),
            })
        }
        (other, _) => {
            return Err(RawError {
                offset: tls_span.map(|s| s.start),
                key: Some("store.tls".into()),
                message: format!("\"{other}\" is not one of \"verify-full\", \"none\""),
            })
        }
    };
    Ok(StoreConfig::Postgres(PgConfig {
        host: host.into_inner(),
        port: int_in("store.port", raw.port, 1..=65535, 5432)?,
        dbname: text("store.dbname", raw.dbname, "mfa")?,
        user: text("store.user", raw.user, "mfa")?,
        password_file: absolute("store.password_file", raw.password_file)?,
        tls,
        timeout: std::time::Duration::from_secs(int_in(
            "store.timeout",
            raw.timeout,
            1..=30,
            3u64,
        )?),
    }))
}

fn fido2(raw: RawFido2, defaults: &Fido2Config) -> Result<Fido2Config, RawError> {
    let rp_id = match raw.rp_id {
        None => defaults.rp_id.clone(),
        Some(rp) => {
            let text = rp.get_ref();
            let ok = !text.is_empty()
                && text.len() <= 255
                && !text.chars().any(|c| c.is_control() || c.is_whitespace());
            if !ok {
                return invalid(
                    "fido2.rp_id",
                    rp.span(),
                    "must be 1 to 255 characters without spaces, e.g. \"pam://example.org\"".into(),
                );
            }
            Some(rp.into_inner())
        }
    };
    let dir = |key: &str, value: Option<Spanned<String>>, default: &PathBuf| match value {
        None => Ok(default.clone()),
        Some(v) if PathBuf::from(v.get_ref()).is_absolute() => Ok(PathBuf::from(v.into_inner())),
        Some(v) => invalid(key, v.span(), "must be an absolute path".into()),
    };
    Ok(Fido2Config {
        enabled: flag(raw.enabled, defaults.enabled),
        rp_id,
        sysfs: dir("fido2.sysfs", raw.sysfs, &defaults.sysfs)?,
        dev: dir("fido2.dev", raw.dev, &defaults.dev)?,
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
