//! What mfactl prints: each value as a text table or as JSON.
//!
//! JSON shapes are mfactl's own, not the wire structs, so the bus contract
//! can evolve without breaking scripts. Times are RFC 3339 UTC strings;
//! "never used" is `null`. Tables show times in the zone they are given
//! (the local one, [`dates::local_zone`]), its abbreviation after each.

use crate::dates;
use crate::kinds::UserSort;
use crate::table::{Align, Table};
use jiff::tz::TimeZone;
use mfa_dbus::{EnrolmentOffer, FactorInfo, UserSummary};
use mfa_qr::Palette;
use serde::Serialize;
use std::ffi::OsString;
use std::io::{self, IsTerminal, Write};

#[derive(Debug, Serialize, PartialEq)]
pub struct FactorJson<'a> {
    pub id: &'a str,
    pub kind: &'a str,
    pub label: &'a str,
    /// `active` or `pending`.
    pub status: &'static str,
    pub created: String,
    pub last_used: Option<String>,
    /// Asked first at login.
    pub preferred: bool,
    /// Approved by an admin for privileged services.
    pub approved: bool,
}

impl<'a> From<&'a FactorInfo> for FactorJson<'a> {
    fn from(f: &'a FactorInfo) -> Self {
        FactorJson {
            id: &f.id,
            kind: &f.kind,
            label: &f.label,
            status: status(f),
            created: dates::rfc3339(f.created),
            last_used: (f.last_used != 0).then(|| dates::rfc3339(f.last_used)),
            preferred: f.preferred,
            approved: f.approved,
        }
    }
}

#[derive(Debug, Serialize, PartialEq)]
pub struct UserJson<'a> {
    pub user: &'a str,
    /// Kinds of the active factors; empty when the user has none.
    pub methods: &'a [String],
    pub factors: u32,
    pub pending: u32,
    pub last_used: Option<String>,
    /// Locked out after too many failed codes.
    pub locked: bool,
}

impl<'a> From<&'a UserSummary> for UserJson<'a> {
    fn from(u: &'a UserSummary) -> Self {
        UserJson {
            user: &u.user,
            methods: &u.methods,
            factors: u.factors,
            pending: u.pending,
            last_used: (u.last_used != 0).then(|| dates::rfc3339(u.last_used)),
            locked: u.locked,
        }
    }
}

/// The enrolment offer, secret included: shown this once. `Debug` by hand
/// below, without the secret and the URI that holds it.
#[derive(Serialize, PartialEq)]
pub struct OfferJson<'a> {
    pub id: &'a str,
    pub kind: &'a str,
    pub label: &'a str,
    pub issuer: &'a str,
    pub algorithm: &'a str,
    pub digits: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub period: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub counter: Option<u64>,
    pub secret: &'a str,
    pub uri: &'a str,
    pub expires: String,
    #[serde(skip_serializing_if = "str::is_empty")]
    pub check_value: &'a str,
}

impl std::fmt::Debug for OfferJson<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OfferJson")
            .field("id", &self.id)
            .field("kind", &self.kind)
            .field("label", &self.label)
            .field("issuer", &self.issuer)
            .field("algorithm", &self.algorithm)
            .field("digits", &self.digits)
            .field("period", &self.period)
            .field("counter", &self.counter)
            .field("secret", &"<redacted>")
            .field("uri", &"<redacted>")
            .field("expires", &self.expires)
            .finish()
    }
}

impl<'a> From<&'a EnrolmentOffer> for OfferJson<'a> {
    fn from(o: &'a EnrolmentOffer) -> Self {
        let hotp = o.kind == "hotp";
        OfferJson {
            id: &o.id,
            kind: &o.kind,
            label: &o.label,
            issuer: &o.issuer,
            algorithm: &o.algorithm,
            digits: o.digits,
            period: (!hotp).then_some(o.period),
            counter: hotp.then_some(o.counter),
            secret: &o.secret_base32,
            uri: &o.uri,
            expires: dates::rfc3339(o.expires),
            check_value: &o.check_value,
        }
    }
}

fn status(f: &FactorInfo) -> &'static str {
    if f.confirmed {
        "active"
    } else {
        "pending"
    }
}

/// One JSON document on one line.
pub fn json_line(value: &impl Serialize) -> String {
    let mut s = serde_json::to_string(value).unwrap_or_else(|e| {
        // Serialising plain structs of strings and numbers cannot fail.
        unreachable!("JSON serialisation failed: {e}")
    });
    s.push('\n');
    s
}

/// Pretty JSON for whole listings.
pub fn json_pretty(value: &impl Serialize) -> String {
    let mut s = serde_json::to_string_pretty(value)
        .unwrap_or_else(|e| unreachable!("JSON serialisation failed: {e}"));
    s.push('\n');
    s
}

pub fn factors_json(factors: &[FactorInfo]) -> String {
    json_pretty(&factors.iter().map(FactorJson::from).collect::<Vec<_>>())
}

pub fn factors_table(factors: &[FactorInfo], tz: &TimeZone) -> String {
    let mut t = Table::new(&[
        ("ID", Align::Left),
        ("KIND", Align::Left),
        ("LABEL", Align::Left),
        ("STATUS", Align::Left),
        ("CREATED", Align::Left),
        ("LAST USED", Align::Left),
        ("NOTES", Align::Left),
    ]);
    for f in factors {
        let notes: Vec<&str> = [(f.preferred, "preferred"), (f.approved, "approved")]
            .into_iter()
            .filter_map(|(on, note)| on.then_some(note))
            .collect();
        t.push(vec![
            f.id.clone(),
            f.kind.clone(),
            f.label.clone(),
            status(f).to_string(),
            dates::human(f.created, tz),
            dates::human_or_never(f.last_used, tz),
            notes.join(","),
        ]);
    }
    t.render()
}

/// Sort rows for `mfactl users`; ties are broken by user name.
pub fn sort_users(users: &mut [UserSummary], by: UserSort) {
    match by {
        UserSort::User => users.sort_by(|a, b| a.user.cmp(&b.user)),
        UserSort::LastUsed => users.sort_by(|a, b| {
            // Most recent first; 0 (never) sorts last naturally.
            b.last_used
                .cmp(&a.last_used)
                .then_with(|| a.user.cmp(&b.user))
        }),
        UserSort::Methods => users.sort_by(|a, b| {
            (a.methods.len(), &a.methods, &a.user).cmp(&(b.methods.len(), &b.methods, &b.user))
        }),
    }
}

pub fn methods_text(u: &UserSummary) -> String {
    if u.methods.is_empty() {
        "none".to_string()
    } else {
        u.methods.join(",")
    }
}

pub fn users_json(users: &[UserSummary]) -> String {
    json_pretty(&users.iter().map(UserJson::from).collect::<Vec<_>>())
}

pub fn users_table(users: &[UserSummary], tz: &TimeZone) -> String {
    let mut t = Table::new(&[
        ("USER", Align::Left),
        ("MFA", Align::Left),
        ("FACTORS", Align::Right),
        ("PENDING", Align::Right),
        ("LAST USED", Align::Left),
        ("LOCKED", Align::Left),
    ]);
    for u in users {
        t.push(vec![
            u.user.clone(),
            methods_text(u),
            u.factors.to_string(),
            u.pending.to_string(),
            dates::human_or_never(u.last_used, tz),
            if u.locked { "locked" } else { "-" }.to_string(),
        ]);
    }
    t.render()
}

/// Whether what mfactl writes to stdout may carry colour escapes. Only the
/// QR code is coloured; tables and messages never are.
pub fn stdout_colour() -> bool {
    colour(io::stdout().is_terminal(), &|name| std::env::var_os(name))
}

/// Colour on a terminal, or anywhere when `CLICOLOR_FORCE` asks (not `0`);
/// never when `NO_COLOR` is set (not empty) or `TERM` is `dumb`. Anything
/// else (a pipe, a file, a mail) gets plain text.
pub fn colour(terminal: bool, env: &dyn Fn(&str) -> Option<OsString>) -> bool {
    let no_color = env("NO_COLOR").is_some_and(|v| !v.is_empty());
    let dumb = env("TERM").is_some_and(|t| t == "dumb");
    let forced = env("CLICOLOR_FORCE").is_some_and(|v| !v.is_empty() && v != "0");
    !no_color && !dumb && (terminal || forced)
}

/// The QR code's drawing: ANSI colours, or plain half blocks without a
/// single escape.
pub fn qr_palette(colour: bool) -> Palette {
    if colour {
        Palette::Ansi
    } else {
        Palette::Plain
    }
}

/// Write to stdout and flush, so that a closed pipe or a full disk is an
/// error rather than a panic in `println!`.
pub fn emit(text: &str) -> io::Result<()> {
    let mut out = io::stdout().lock();
    out.write_all(text.as_bytes())?;
    out.flush()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};

    fn factor(id: &str, confirmed: bool, last_used: u64) -> FactorInfo {
        FactorInfo {
            id: id.into(),
            kind: "totp".into(),
            label: "phone".into(),
            confirmed,
            created: 1_700_000_000,
            last_used,
            approved: false,
            preferred: false,
        }
    }

    fn user(name: &str, methods: &[&str], last_used: u64) -> UserSummary {
        UserSummary {
            user: name.into(),
            methods: methods.iter().map(|m| m.to_string()).collect(),
            factors: methods.len() as u32,
            pending: 0,
            last_used,
            locked: false,
        }
    }

    fn env<'a>(vars: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<OsString> + 'a {
        move |name| {
            vars.iter()
                .find(|(n, _)| *n == name)
                .map(|(_, v)| OsString::from(v))
        }
    }

    #[test]
    fn colour_only_on_a_terminal_and_when_not_refused() {
        assert!(colour(true, &env(&[])));
        assert!(colour(true, &env(&[("TERM", "xterm-256color")])));
        assert!(!colour(false, &env(&[])), "a pipe or a file: plain");
        assert!(!colour(false, &env(&[("TERM", "xterm-256color")])));
        assert!(!colour(true, &env(&[("NO_COLOR", "1")])));
        assert!(colour(true, &env(&[("NO_COLOR", "")])), "empty is unset");
        assert!(!colour(true, &env(&[("TERM", "dumb")])));
        assert!(colour(false, &env(&[("CLICOLOR_FORCE", "1")])));
        assert!(!colour(false, &env(&[("CLICOLOR_FORCE", "0")])));
        assert!(!colour(false, &env(&[("CLICOLOR_FORCE", "")])));
        assert!(
            !colour(false, &env(&[("CLICOLOR_FORCE", "1"), ("NO_COLOR", "1")])),
            "NO_COLOR wins"
        );
    }

    #[test]
    fn a_plain_qr_code_has_no_escapes() {
        let text = mfa_qr::render(
            "otpauth://totp/x?secret=JBSWY3DPEHPK3PXP",
            qr_palette(false),
        )
        .expect("renders");
        assert!(text.contains('\u{2588}'), "{text}");
        assert!(!text.contains('\x1b'), "{text}");
        let coloured = mfa_qr::render("otpauth://totp/x", qr_palette(true)).expect("renders");
        assert!(
            coloured.contains('\x1b'),
            "the terminal's drawing is coloured"
        );
    }

    #[test]
    fn tables_have_no_escapes() {
        let mut f = factor("f1\x1b[31m", true, 1_700_000_060);
        f.label = "\x1b]0;title\x07".into();
        let mut u = user("bob\x1b[2J", &["totp"], 1_700_000_000);
        u.methods = vec!["to\x1btp".into()];
        let tz = TimeZone::posix("CET-1CEST,M3.5.0,M10.5.0/3").expect("TZ");
        for text in [factors_table(&[f], &tz), users_table(&[u], &tz)] {
            assert!(!text.contains('\x1b'), "{text:?}");
            assert!(text.contains("2023-11-14 23:1"), "local time: {text}");
            assert!(text.contains(" CET"), "the zone is shown: {text}");
        }
    }

    #[test]
    fn factors_table_shows_status_and_dates() {
        let mut first = factor("f1", true, 1_700_000_060);
        (first.preferred, first.approved) = (true, true);
        let text = factors_table(&[first, factor("f2", false, 0)], &TimeZone::UTC);
        assert_eq!(
            text,
            "ID  KIND  LABEL  STATUS   CREATED               LAST USED             NOTES\n\
             f1  totp  phone  active   2023-11-14 22:13 UTC  2023-11-14 22:14 UTC  preferred,approved\n\
             f2  totp  phone  pending  2023-11-14 22:13 UTC  never\n"
        );
    }

    #[test]
    fn factor_json_shape() {
        let v: Value =
            serde_json::from_str(&factors_json(&[factor("f2", false, 0)])).expect("json");
        assert_eq!(
            v,
            json!([{
                "id": "f2", "kind": "totp", "label": "phone", "status": "pending",
                "created": "2023-11-14T22:13:20Z", "last_used": null,
                "preferred": false, "approved": false
            }])
        );
    }

    #[test]
    fn users_table_columns() {
        let mut u = user("bob", &["hotp", "totp"], 1_700_000_000);
        u.pending = 1;
        u.locked = true;
        let text = users_table(&[u, user("al", &[], 0)], &TimeZone::UTC);
        assert_eq!(
            text,
            "USER  MFA        FACTORS  PENDING  LAST USED             LOCKED\n\
             bob   hotp,totp        2        1  2023-11-14 22:13 UTC  locked\n\
             al    none             0        0  never                 -\n"
        );
    }

    #[test]
    fn users_sorting() {
        let base = vec![
            user("carol", &["totp"], 100),
            user("alice", &["hotp", "totp"], 0),
            user("bob", &[], 300),
            user("dave", &["hotp"], 100),
        ];
        let names = |by| {
            let mut v = base.clone();
            sort_users(&mut v, by);
            v.into_iter().map(|u| u.user).collect::<Vec<_>>()
        };
        assert_eq!(names(UserSort::User), ["alice", "bob", "carol", "dave"]);
        assert_eq!(names(UserSort::LastUsed), ["bob", "carol", "dave", "alice"]);
        assert_eq!(names(UserSort::Methods), ["bob", "dave", "carol", "alice"]);
    }

    #[test]
    fn user_json_shape() {
        let v: Value =
            serde_json::from_str(&users_json(&[user("al", &["totp"], 0)])).expect("json");
        assert_eq!(
            v,
            json!([{"user": "al", "methods": ["totp"], "factors": 1, "pending": 0, "last_used": null, "locked": false}])
        );
    }

    #[test]
    fn offer_json_carries_secret_and_kind_specific_fields() {
        let offer = EnrolmentOffer {
            id: "p1".into(),
            kind: "hotp".into(),
            label: "key".into(),
            issuer: "pam_mfa".into(),
            algorithm: "SHA1".into(),
            digits: 6,
            period: 0,
            counter: 0,
            secret_base32: "JBSWY3DPEHPK3PXP".into(),
            uri: "otpauth://hotp/x".into(),
            expires: 1_700_000_000,
            instructions: String::new(),
            check_value: String::new(),
        };
        let v: Value = serde_json::from_str(&json_line(&OfferJson::from(&offer))).expect("json");
        assert_eq!(v["secret"], "JBSWY3DPEHPK3PXP");
        assert_eq!(v["counter"], 0);
        assert!(v.get("period").is_none());
        assert_eq!(v["expires"], "2023-11-14T22:13:20Z");
        assert!(json_line(&1).ends_with('\n') && !json_line(&[1, 2]).trim_end().contains('\n'));
    }

    #[test]
    fn offer_debug_shows_no_secret() {
        const SECRET: &str = "MARKERSECRETQQQQ";
        let offer = EnrolmentOffer {
            id: "p1".into(),
            kind: "totp".into(),
            label: "phone".into(),
            issuer: "pam_mfa".into(),
            algorithm: "SHA1".into(),
            digits: 6,
            period: 30,
            counter: 0,
            secret_base32: SECRET.into(),
            uri: format!("otpauth://totp/pam_mfa:alice?secret={SECRET}&issuer=pam_mfa"),
            expires: 1_700_000_000,
            instructions: String::new(),
            check_value: String::new(),
        };
        let json = OfferJson::from(&offer);
        let shown = format!("{json:?} {json:#?}");
        assert!(!shown.contains(SECRET), "{shown}");
        assert!(
            shown.contains("p1") && shown.contains("<redacted>"),
            "{shown}"
        );
    }
}
