//! `[email]`: the relay codes go through, and what the messages say.

use super::raw::{flag, int_in, invalid, one_of, RawError};
use super::{EmailConfig, SmtpTls};
use serde::Deserialize;
use std::path::PathBuf;
use toml::Spanned;

pub const DEFAULT_TEMPLATE: &str = "Your login code for {host} is {code}.\n\n\
It can be used once, within {minutes} minutes. If you did not try to log in \
as {user}, someone knows your password: change it, and tell your \
administrator.\n";

impl Default for EmailConfig {
    fn default() -> Self {
        EmailConfig {
            enabled: false,
            relay: String::new(),
            port: 587,
            tls: SmtpTls::Starttls,
            ca_file: None,
            credentials_file: None,
            from: String::new(),
            subject: "Login code for {host}".into(),
            template: DEFAULT_TEMPLATE.into(),
            address: None,
            code_length: 6,
            validity: 900,
            resend_delay: 30,
            max_per_hour: 10,
            send_timeout: std::time::Duration::from_secs(5),
        }
    }
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawEmail {
    enabled: Option<Spanned<bool>>,
    relay: Option<Spanned<String>>,
    port: Option<Spanned<i64>>,
    tls: Option<Spanned<String>>,
    ca_file: Option<Spanned<String>>,
    credentials_file: Option<Spanned<String>>,
    from: Option<Spanned<String>>,
    subject: Option<Spanned<String>>,
    template: Option<Spanned<String>>,
    address: Option<Spanned<String>>,
    code_length: Option<Spanned<i64>>,
    validity: Option<Spanned<i64>>,
    resend_delay: Option<Spanned<i64>>,
    max_per_hour: Option<Spanned<i64>>,
    send_timeout: Option<Spanned<i64>>,
}

/// The placeholders a text may hold; anything else in braces is refused
/// (a typo would otherwise reach every user's mailbox).
fn placeholders(
    key: &str,
    text: &Spanned<String>,
    allowed: &[&str],
    required: &[&str],
) -> Result<(), RawError> {
    let mut rest = text.get_ref().as_str();
    while let Some(open) = rest.find('{') {
        let after = &rest[open + 1..];
        let Some(close) = after.find('}') else {
            return invalid(key, text.span(), "has a \"{\" that is never closed".into());
        };
        let name = &after[..close];
        if !allowed.contains(&name) {
            let names: Vec<String> = allowed.iter().map(|n| format!("{{{n}}}")).collect();
            return invalid(
                key,
                text.span(),
                format!("{{{name}}} is not one of {}", names.join(", ")),
            );
        }
        rest = &after[close + 1..];
    }
    for name in required {
        if !text.get_ref().contains(&format!("{{{name}}}")) {
            return invalid(key, text.span(), format!("must contain {{{name}}}"));
        }
    }
    Ok(())
}

pub(super) fn email(raw: RawEmail) -> Result<EmailConfig, RawError> {
    let defaults = EmailConfig::default();
    let enabled = flag(raw.enabled, false);
    let path = |key: &str, v: Option<Spanned<String>>| -> Result<Option<PathBuf>, RawError> {
        match v {
            None => Ok(None),
            Some(v) if PathBuf::from(v.get_ref()).is_absolute() => {
                Ok(Some(PathBuf::from(v.into_inner())))
            }
            Some(v) => invalid(key, v.span(), "must be an absolute path".into()),
        }
    };
    let tls = one_of(
        "email.tls",
        raw.tls,
        &[("starttls", SmtpTls::Starttls), ("tls", SmtpTls::Implicit)],
        SmtpTls::Starttls,
    )?;
    let relay = match raw.relay {
        Some(r)
            if r.get_ref().is_empty()
                || r.get_ref().len() > 253
                || r.get_ref()
                    .chars()
                    .any(|c| c.is_whitespace() || c.is_control()) =>
        {
            return invalid(
                "email.relay",
                r.span(),
                "must be a host name or address".into(),
            )
        }
        Some(r) => r.into_inner(),
        None if enabled => {
            return Err(RawError {
                offset: None,
                key: Some("email.relay".into()),
                message: "missing: the SMTP relay that sends the codes".into(),
            })
        }
        None => String::new(),
    };
    let from = match raw.from {
        Some(f) if crate::mechanism::email::parse_mailbox(f.get_ref()).is_none() => {
            return invalid(
                "email.from",
                f.span(),
                "must be an address, or a name and an address (\"pam_mfa <mfa@example.org>\")"
                    .into(),
            )
        }
        Some(f) => f.into_inner(),
        None if enabled => {
            return Err(RawError {
                offset: None,
                key: Some("email.from".into()),
                message: "missing: the sender of the codes (\"pam_mfa <mfa@example.org>\")".into(),
            })
        }
        None => String::new(),
    };
    let subject = match raw.subject {
        Some(s) => {
            placeholders("email.subject", &s, &["host", "user"], &[])?;
            if s.get_ref().chars().any(char::is_control) {
                return invalid("email.subject", s.span(), "must be one line".into());
            }
            s.into_inner()
        }
        None => defaults.subject,
    };
    let template = match raw.template {
        Some(t) => {
            placeholders(
                "email.template",
                &t,
                &["code", "user", "host", "minutes"],
                &["code"],
            )?;
            t.into_inner()
        }
        None => defaults.template,
    };
    let address = match raw.address {
        Some(a) => {
            placeholders("email.address", &a, &["user"], &["user"])?;
            let example = a.get_ref().replace("{user}", "alice");
            if crate::mechanism::email::valid_address(&example).is_err() {
                return invalid(
                    "email.address",
                    a.span(),
                    "must make an address from the login name, e.g. \"{user}@example.org\"".into(),
                );
            }
            Some(a.into_inner())
        }
        None => None,
    };
    let default_port = match tls {
        SmtpTls::Starttls => 587,
        SmtpTls::Implicit => 465,
    };
    let validity: u64 = int_in(
        "email.validity",
        raw.validity,
        60..=86_400,
        defaults.validity,
    )?;
    let resend_delay: u64 = int_in(
        "email.resend_delay",
        raw.resend_delay,
        0..=3600,
        defaults.resend_delay,
    )?;
    Ok(EmailConfig {
        enabled,
        relay,
        port: int_in("email.port", raw.port, 1..=65535, default_port)?,
        tls,
        ca_file: path("email.ca_file", raw.ca_file)?,
        credentials_file: path("email.credentials_file", raw.credentials_file)?,
        from,
        subject,
        template,
        address,
        code_length: int_in(
            "email.code_length",
            raw.code_length,
            6..=20,
            defaults.code_length,
        )?,
        validity,
        resend_delay,
        max_per_hour: int_in(
            "email.max_per_hour",
            raw.max_per_hour,
            1..=100,
            defaults.max_per_hour,
        )?,
        send_timeout: std::time::Duration::from_secs(int_in(
            "email.send_timeout",
            raw.send_timeout,
            1..=8,
            5u64,
        )?),
    })
}
