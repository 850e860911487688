//! Enrolment: turn the options into a request, show the offer (QR code,
//! URI, secret), then confirm it with a code.

use crate::cli::EnrolArgs;
use crate::client::Client;
use crate::client::Enrolment;
use crate::error::Error;
use crate::kinds::{normalise_code, normalise_secret, Kind};
use crate::output::{self, FactorJson, OfferJson};
use crate::prompt;
use crate::table::printable;
use mfa_dbus::{EnrolOptions, EnrolmentOffer, FactorInfo};
use mfa_qr::{self as qr, Palette};
use serde::Serialize;
use std::io::{Read, Write};
use std::path::Path;

/// Tries at an interactive prompt before the enrolment is left pending.
pub const INTERACTIVE_TRIES: u32 = 3;

/// Longest secret file mfactl reads.
const MAX_SECRET_FILE: u64 = 64 * 1024;

/// Where confirmation codes come from.
pub trait CodeSource {
    /// How many codes may be tried.
    fn tries(&self) -> u32;
    /// The next code; `None` when none is given (end of input, empty line).
    fn next_code(&mut self) -> Result<Option<String>, Error>;
    /// Tell the user why the last code failed before asking again.
    fn retry(&mut self, message: &str) -> Result<(), Error>;
}

/// `--code`: one try.
pub struct GivenCode(pub Option<String>);

impl CodeSource for GivenCode {
    fn tries(&self) -> u32 {
        1
    }
    fn next_code(&mut self) -> Result<Option<String>, Error> {
        Ok(self.0.take())
    }
    fn retry(&mut self, _: &str) -> Result<(), Error> {
        Ok(())
    }
}

/// A prompt on the terminal (several tries), or one line from a pipe.
pub struct StdinCode {
    interactive: bool,
}

impl StdinCode {
    pub fn new() -> StdinCode {
        StdinCode {
            interactive: prompt::stdin_is_terminal(),
        }
    }
}

impl CodeSource for StdinCode {
    fn tries(&self) -> u32 {
        if self.interactive {
            INTERACTIVE_TRIES
        } else {
            1
        }
    }
    fn next_code(&mut self) -> Result<Option<String>, Error> {
        let question = "Code from your authenticator app (empty to finish later): ";
        let line = prompt::read_line(self.interactive.then_some(question)).map_err(|source| {
            Error::Input {
                what: "the confirmation code from stdin".to_string(),
                source,
            }
        })?;
        Ok(line.filter(|l| !l.trim().is_empty()))
    }
    fn retry(&mut self, message: &str) -> Result<(), Error> {
        Ok(prompt::say(message)?)
    }
}

/// `--code` if given, else stdin.
pub fn code_source(code: Option<String>) -> Box<dyn CodeSource> {
    match code {
        Some(c) => Box::new(GivenCode(Some(c))),
        None => Box::new(StdinCode::new()),
    }
}

/// The secret to import, from whichever option named it; read before mfad
/// is contacted so that a bad file changes nothing.
pub fn secret_to_import(args: &EnrolArgs) -> Result<Option<String>, Error> {
    let raw = if let Some(s) = &args.secret {
        s.clone()
    } else if let Some(path) = &args.secret_file {
        first_line_of_file(path)?
    } else if args.secret_stdin {
        let question = prompt::stdin_is_terminal().then_some("Secret to import (base32): ");
        prompt::read_line(question)
            .map_err(|source| Error::Input {
                what: "the secret from stdin".to_string(),
                source,
            })?
            .unwrap_or_default()
    } else {
        return Ok(None);
    };
    normalise_secret(&raw).map(Some).map_err(Error::Usage)
}

fn first_line_of_file(path: &Path) -> Result<String, Error> {
    let input = |source| Error::Input {
        what: format!("secret file {}", path.display()),
        source,
    };
    let mut text = String::new();
    std::fs::File::open(path)
        .and_then(|f| f.take(MAX_SECRET_FILE).read_to_string(&mut text))
        .map_err(input)?;
    Ok(text
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .unwrap_or_default()
        .to_string())
}

/// The request for BeginEnrolment; empty or zero fields take mfad's defaults.
/// `secret` is the OTP secret to import, or a security key's PIN.
pub fn options(args: &EnrolArgs, secret: Option<String>) -> EnrolOptions {
    if args.kind == Kind::Fido2 {
        return EnrolOptions {
            pin: secret.unwrap_or_default(),
            verification: args.verification,
            ..EnrolOptions::default()
        };
    }
    if args.kind == Kind::Email {
        return EnrolOptions {
            address: args.address.clone().unwrap_or_default(),
            ..EnrolOptions::default()
        };
    }
    EnrolOptions {
        algorithm: args
            .algorithm
            .map(|a| a.wire().to_string())
            .unwrap_or_default(),
        digits: args.digits.unwrap_or(0),
        period: args.period.unwrap_or(0),
        secret_base32: secret.unwrap_or_default(),
        ..EnrolOptions::default()
    }
}

/// The security key's PIN, when `--pin` or `--pin-stdin` asks for it.
pub fn pin_to_use(args: &EnrolArgs) -> Result<Option<String>, Error> {
    if !(args.pin || args.pin_stdin) {
        return Ok(None);
    }
    let question = args.pin.then_some("PIN of your security key: ");
    let pin = prompt::read_secret_line(question).map_err(|source| Error::Input {
        what: "the security key's PIN".to_string(),
        source,
    })?;
    match pin {
        Some(pin) if (4..=63).contains(&pin.len()) => Ok(Some(pin)),
        Some(_) => Err(Error::Usage(
            "a security key's PIN is 4 to 63 characters".to_string(),
        )),
        None => Err(Error::Usage("no PIN given".to_string())),
    }
}

/// Waits for a security key, each up to mfad's hold (20 s): two minutes.
const DEVICE_POLLS: u32 = 6;

/// Confirm `id`, which a device confirms: ask mfad until the device is done.
pub async fn confirm_device(api: &impl Enrolment, id: &str) -> Result<FactorInfo, Error> {
    for _ in 0..DEVICE_POLLS {
        match api.confirm(id, "").await {
            Err(Error::Pending(_)) => continue,
            other => return other,
        }
    }
    Err(Error::Refused(
        "the security key was not touched in time; start again with mfactl enrol fido2".to_string(),
    ))
}

/// `JBSWY3DPEHPK3PXP` as `JBSW Y3DP EHPK 3PXP`, for typing by hand.
pub fn group_secret(secret: &str) -> String {
    let mut out = String::with_capacity(secret.len() + secret.len() / 4);
    for (i, c) in secret.chars().enumerate() {
        if i > 0 && i % 4 == 0 {
            out.push(' ');
        }
        out.push(c);
    }
    out
}

/// What of the offer to show as text.
#[derive(Debug, Clone, Copy)]
pub struct Show {
    /// Draw the QR code in these colours; `None` for no QR code.
    pub qr: Option<Palette>,
    pub uri: bool,
}

impl Show {
    /// What the options ask for; `colour` when the text may carry colour
    /// escapes ([`output::stdout_colour`]), else the QR code is plain.
    pub fn from_args(args: &EnrolArgs, colour: bool) -> Show {
        let secret_only = args.show_secret_only;
        Show {
            qr: (!secret_only && !args.no_qr).then(|| output::qr_palette(colour)),
            uri: !secret_only,
        }
    }
}

/// The offer as text: QR code, URI, grouped secret and parameters.
pub fn offer_text(offer: &EnrolmentOffer, show: Show) -> String {
    let mut out = String::new();
    if let Some(palette) = show.qr {
        match qr::render(&offer.uri, palette) {
            Ok(code) => {
                out.push_str("Scan this QR code with your authenticator app:\n\n");
                out.push_str(&code);
                out.push_str("\nOr enter the secret by hand:\n");
            }
            Err(e) => out.push_str(&format!("(no QR code: the URI cannot be drawn: {e})\n")),
        }
    } else {
        out.push_str("Enter this in your authenticator app:\n");
    }
    let kind = if offer.kind == "hotp" {
        format!(
            "HOTP (counter-based), starting at counter {}",
            offer.counter
        )
    } else {
        format!("TOTP (time-based), a new code every {} s", offer.period)
    };
    let mut rows = vec![
        ("Secret", group_secret(&offer.secret_base32)),
        ("Type", kind),
        ("Algorithm", offer.algorithm.clone()),
        ("Digits", offer.digits.to_string()),
        ("Issuer", offer.issuer.clone()),
        ("Label", offer.label.clone()),
    ];
    if show.uri {
        rows.push(("URI", offer.uri.clone()));
    }
    if !offer.check_value.is_empty() {
        rows.push((
            "Check",
            format!(
                "{} (the code for counter 0, TOTP: time 0; an app, token or oathtool with this secret makes the same; it never logs in)",
                offer.check_value
            ),
        ));
    }
    for (name, value) in rows {
        out.push_str(&format!("  {name:<10} {}\n", printable(&value)));
    }
    out
}

/// Confirm `id` with codes from `source`: wrong codes are retried while
/// the source allows; when it gives up the enrolment stays pending.
pub async fn confirm_with(
    api: &impl Enrolment,
    id: &str,
    expires: Option<u64>,
    source: &mut dyn CodeSource,
) -> Result<FactorInfo, Error> {
    let pending = |why: String| Error::NotConfirmed {
        id: id.to_string(),
        expires,
        why,
    };
    let tries = source.tries();
    let mut tried = 0;
    loop {
        let Some(raw) = source.next_code()? else {
            return Err(pending("no confirmation code given".to_string()));
        };
        tried += 1;
        let why = match normalise_code(&raw) {
            Ok(code) => match api.confirm(id, &code).await {
                Ok(factor) => return Ok(factor),
                Err(Error::WrongCode(message)) => message,
                Err(other) => return Err(other),
            },
            Err(message) => message,
        };
        if tried >= tries {
            return Err(pending(why));
        }
        source.retry(&format!("{why}; try again ({} of {tries}).", tried + 1))?;
    }
}

#[derive(Serialize)]
struct OfferLine<'a> {
    offer: OfferJson<'a>,
}

#[derive(Serialize)]
struct FactorLine<'a> {
    factor: FactorJson<'a>,
}

/// The result of a confirmation, as text or a JSON line.
pub fn confirmed_text(factor: &FactorInfo, json: bool) -> String {
    if json {
        output::json_line(&FactorLine {
            factor: factor.into(),
        })
    } else {
        format!(
            "Factor {} ({} \"{}\") is active; it will be asked for at your next login.\n",
            printable(&factor.id),
            printable(&factor.kind),
            printable(&factor.label)
        )
    }
}

/// `mfactl enrol`: begin, show the offer on `out`, confirm.
/// `mfactl enrol KIND --user USER`: an admin sets a factor up for `user`,
/// active at once, and is shown its secret this once to hand over.
pub async fn set_up_for(
    client: &Client,
    user: &str,
    args: &EnrolArgs,
    secret: Option<String>,
    json: bool,
    show: Show,
    out: &mut dyn Write,
) -> Result<(), Error> {
    let label = args.label.clone().unwrap_or_default();
    let offer = client
        .set_up_user_factor(
            user,
            args.kind.wire(),
            &label,
            &options(args, secret),
            args.invite,
        )
        .await?;
    let shown = if json {
        output::json_line(&OfferLine {
            offer: (&offer).into(),
        })
    } else if args.invite {
        format!(
            "Invited {}: factor {} waits until {}; {}.\n",
            printable(user),
            printable(&offer.id),
            crate::dates::human(offer.expires, &crate::dates::local_zone()),
            printable(&offer.instructions)
        )
    } else {
        format!(
            "Set up for {}, active now (factor {}). Hand this over; it is not shown again:\n{}",
            printable(user),
            printable(&offer.id),
            offer_text(&offer, show)
        )
    };
    out.write_all(shown.as_bytes())?;
    out.flush()?;
    Ok(())
}

/// `mfactl invitation`: show the invited factor, then confirm it.
pub async fn accept_invitation(
    client: &Client,
    json: bool,
    show: Show,
    source: &mut dyn CodeSource,
    out: &mut dyn Write,
) -> Result<FactorInfo, Error> {
    let offer = client.invitation().await?;
    let shown = if json {
        output::json_line(&OfferLine {
            offer: (&offer).into(),
        })
    } else {
        offer_text(&offer, show)
    };
    out.write_all(shown.as_bytes())?;
    out.flush()?;
    let factor = confirm_with(client, &offer.id, Some(offer.expires), source).await?;
    out.write_all(confirmed_text(&factor, json).as_bytes())?;
    out.flush()?;
    Ok(factor)
}

pub async fn enrol(
    api: &impl Enrolment,
    args: &EnrolArgs,
    secret: Option<String>,
    json: bool,
    show: Show,
    source: &mut dyn CodeSource,
    out: &mut dyn Write,
) -> Result<FactorInfo, Error> {
    let label = args.label.clone().unwrap_or_default();
    let offer = api
        .begin(args.kind.wire(), &label, &options(args, secret))
        .await?;
    // No digits: a device confirms it, not a code.
    let device = offer.digits == 0;
    let shown = if json {
        output::json_line(&OfferLine {
            offer: (&offer).into(),
        })
    } else if !offer.instructions.is_empty() {
        format!("{}\n", printable(&offer.instructions))
    } else {
        offer_text(&offer, show)
    };
    out.write_all(shown.as_bytes())?;
    out.flush()?;
    let factor = if device {
        confirm_device(api, &offer.id).await?
    } else {
        confirm_with(api, &offer.id, Some(offer.expires), source).await?
    };
    out.write_all(confirmed_text(&factor, json).as_bytes())?;
    out.flush()?;
    Ok(factor)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;
    use std::cell::RefCell;

    const SECRET: &str = "JBSWY3DPEHPK3PXP";

    /// mfad as far as enrolment goes: one pending factor, one right code.
    struct FakeMfad {
        right_code: &'static str,
        begun: RefCell<Vec<(String, String, EnrolOptions)>>,
        tried: RefCell<Vec<String>>,
    }

    impl FakeMfad {
        fn new(right_code: &'static str) -> FakeMfad {
            FakeMfad {
                right_code,
                begun: RefCell::default(),
                tried: RefCell::default(),
            }
        }
    }

    impl Enrolment for FakeMfad {
        async fn begin(
            &self,
            kind: &str,
            label: &str,
            options: &EnrolOptions,
        ) -> Result<EnrolmentOffer, Error> {
            self.begun
                .borrow_mut()
                .push((kind.into(), label.into(), options.clone()));
            Ok(EnrolmentOffer {
                id: "p1".into(),
                kind: kind.into(),
                label: label.into(),
                issuer: "pam_mfa".into(),
                algorithm: "SHA1".into(),
                digits: 6,
                period: 30,
                counter: 0,
                secret_base32: SECRET.into(),
                uri: format!("otpauth://{kind}/pam_mfa:alice?secret={SECRET}&issuer=pam_mfa"),
                expires: 1_700_000_000,
                instructions: String::new(),
                check_value: String::new(),
            })
        }

        async fn confirm(&self, id: &str, code: &str) -> Result<FactorInfo, Error> {
            self.tried.borrow_mut().push(code.to_string());
            if id != "p1" {
                return Err(Error::Refused(format!("no pending enrolment {id}")));
            }
            if code != self.right_code {
                return Err(Error::WrongCode("wrong code".into()));
            }
            Ok(FactorInfo {
                id: id.into(),
                kind: "totp".into(),
                label: "phone".into(),
                confirmed: true,
                created: 1_699_999_000,
                last_used: 0,
                approved: false,
                preferred: false,
            })
        }
    }

    /// Scripted answers; records what the user was told.
    struct Script {
        answers: Vec<Option<&'static str>>,
        tries: u32,
        told: Vec<String>,
    }

    impl Script {
        fn new(tries: u32, answers: &[Option<&'static str>]) -> Script {
            Script {
                answers: answers.to_vec(),
                tries,
                told: Vec::new(),
            }
        }
    }

    impl CodeSource for Script {
        fn tries(&self) -> u32 {
            self.tries
        }
        fn next_code(&mut self) -> Result<Option<String>, Error> {
            assert!(
                !self.answers.is_empty(),
                "asked for more codes than scripted"
            );
            Ok(self.answers.remove(0).map(str::to_string))
        }
        fn retry(&mut self, message: &str) -> Result<(), Error> {
            self.told.push(message.to_string());
            Ok(())
        }
    }

    fn args(extra: &[&str]) -> EnrolArgs {
        let argv = ["mfactl", "enrol"].into_iter().chain(extra.iter().copied());
        match crate::cli::Cli::parse_from(argv).command {
            crate::cli::Command::Enrol(e) => e,
            _ => unreachable!(),
        }
    }

    #[tokio::test(flavor = "current_thread")]
    async fn interactive_retry_until_right() {
        let mfad = FakeMfad::new("123456");
        let mut script = Script::new(3, &[Some("111111"), Some("123 456")]);
        let factor = confirm_with(&mfad, "p1", Some(1), &mut script)
            .await
            .expect("confirmed");
        assert!(factor.confirmed);
        assert_eq!(*mfad.tried.borrow(), ["111111", "123456"]);
        assert_eq!(script.told, ["wrong code; try again (2 of 3)."]);
    }

    #[tokio::test(flavor = "current_thread")]
    async fn three_wrong_codes_leave_it_pending() {
        let mfad = FakeMfad::new("123456");
        let mut script = Script::new(3, &[Some("000000"), Some("000001"), Some("000002")]);
        let err = confirm_with(&mfad, "p1", Some(1_700_000_000), &mut script)
            .await
            .unwrap_err();
        assert_eq!(err.exit_code(), crate::error::EXIT_NOT_CONFIRMED);
        let until = crate::dates::human(1_700_000_000, &crate::dates::local_zone());
        assert!(
            err.to_string()
                .contains(&format!("pending enrolment p1 kept until {until}")),
            "{err}"
        );
        assert_eq!(mfad.tried.borrow().len(), 3);
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_given_code_is_tried_once() {
        let mfad = FakeMfad::new("123456");
        let mut given = GivenCode(Some("654321".into()));
        let err = confirm_with(&mfad, "p1", None, &mut given)
            .await
            .unwrap_err();
        assert!(matches!(err, Error::NotConfirmed { ref why, .. } if why == "wrong code"));
        assert_eq!(mfad.tried.borrow().len(), 1);
    }

    #[tokio::test(flavor = "current_thread")]
    async fn no_code_calls_nothing() {
        let mfad = FakeMfad::new("123456");
        let mut script = Script::new(3, &[None]);
        let err = confirm_with(&mfad, "p1", None, &mut script)
            .await
            .unwrap_err();
        assert!(matches!(err, Error::NotConfirmed { .. }));
        assert!(mfad.tried.borrow().is_empty());
    }

    #[tokio::test(flavor = "current_thread")]
    async fn malformed_codes_are_not_sent() {
        let mfad = FakeMfad::new("123456");
        let mut script = Script::new(3, &[Some("12ab"), Some("123456")]);
        confirm_with(&mfad, "p1", None, &mut script)
            .await
            .expect("confirmed");
        assert_eq!(*mfad.tried.borrow(), ["123456"]);
        assert_eq!(script.told.len(), 1);
    }

    #[tokio::test(flavor = "current_thread")]
    async fn other_daemon_errors_stop_at_once() {
        let mfad = FakeMfad::new("123456");
        let mut script = Script::new(3, &[Some("123456")]);
        let err = confirm_with(&mfad, "gone", None, &mut script)
            .await
            .unwrap_err();
        assert!(matches!(err, Error::Refused(_)));
    }

    #[tokio::test(flavor = "current_thread")]
    async fn enrol_shows_offer_then_result() {
        let mfad = FakeMfad::new("123456");
        let a = args(&["totp", "--label", "phone", "--digits", "6", "--no-qr"]);
        let mut given = GivenCode(Some("123456".into()));
        let mut out = Vec::new();
        let show = Show::from_args(&a, true);
        enrol(&mfad, &a, None, false, show, &mut given, &mut out)
            .await
            .expect("enrolled");
        let text = String::from_utf8(out).expect("utf8");
        assert!(text.contains("Secret     JBSW Y3DP EHPK 3PXP\n"), "{text}");
        assert!(text.contains("URI        otpauth://totp/"), "{text}");
        assert!(!text.contains('\u{2588}'), "no QR with --no-qr");
        assert!(text.ends_with("is active; it will be asked for at your next login.\n"));
        let begun = mfad.begun.borrow();
        assert_eq!(
            (begun[0].0.as_str(), begun[0].1.as_str()),
            ("totp", "phone")
        );
        assert_eq!(begun[0].2.digits, 6);
    }

    /// Not a terminal: the QR code is there, drawn without one escape.
    #[tokio::test(flavor = "current_thread")]
    async fn enrol_to_a_pipe_prints_no_escapes() {
        let mfad = FakeMfad::new("123456");
        let a = args(&["totp", "--label", "phone\x1b[31m"]);
        let printed = |terminal: bool| {
            let (mfad, a) = (&mfad, &a);
            async move {
                let mut given = GivenCode(Some("123456".into()));
                let mut out = Vec::new();
                let show = Show::from_args(a, terminal);
                enrol(mfad, a, None, false, show, &mut given, &mut out)
                    .await
                    .expect("enrolled");
                String::from_utf8(out).expect("utf8")
            }
        };
        let text = printed(false).await;
        assert!(text.contains("Scan this QR code"), "{text}");
        assert!(text.contains('\u{2588}'), "a QR code: {text}");
        assert!(!text.contains('\x1b'), "{text:?}");
        // The same on a terminal is coloured: the test above sees escapes.
        assert!(printed(true).await.contains('\x1b'));
    }

    #[tokio::test(flavor = "current_thread")]
    async fn enrol_json_is_two_lines() {
        let mfad = FakeMfad::new("123456");
        let mut given = GivenCode(Some("123456".into()));
        let mut out = Vec::new();
        let a = args(&["hotp"]);
        let show = Show::from_args(&a, true);
        enrol(&mfad, &a, None, true, show, &mut given, &mut out)
            .await
            .expect("enrolled");
        let text = String::from_utf8(out).expect("utf8");
        let lines: Vec<serde_json::Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).expect("json line"))
            .collect();
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[0]["offer"]["secret"], SECRET);
        assert_eq!(lines[0]["offer"]["kind"], "hotp");
        assert_eq!(lines[1]["factor"]["status"], "active");
    }

    #[test]
    fn offer_text_with_qr_and_secret_only() {
        let offer = EnrolmentOffer {
            id: "p1".into(),
            kind: "totp".into(),
            label: "phone\x1b[2J".into(),
            issuer: "pam_mfa".into(),
            algorithm: "SHA256".into(),
            digits: 8,
            period: 30,
            counter: 0,
            secret_base32: SECRET.into(),
            uri: "otpauth://totp/x?secret=JBSWY3DPEHPK3PXP".into(),
            expires: 0,
            instructions: String::new(),
            check_value: String::new(),
        };
        let full = offer_text(
            &offer,
            Show {
                qr: Some(Palette::Plain),
                uri: true,
            },
        );
        assert!(full.starts_with("Scan this QR code"));
        assert!(full.contains('\u{2588}'));
        assert!(full.contains("every 30 s") && full.contains("SHA256") && full.contains("8\n"));
        assert!(!full.contains('\x1b'), "label escapes are neutralised");
        let only = offer_text(
            &offer,
            Show {
                qr: None,
                uri: false,
            },
        );
        assert!(only.contains("JBSW Y3DP EHPK 3PXP") && !only.contains("otpauth://"));
        let a = args(&["totp", "--show-secret-only"]);
        let show = Show::from_args(&a, true);
        assert!(show.qr.is_none() && !show.uri);
    }

    #[test]
    fn secret_grouping() {
        assert_eq!(group_secret(SECRET), "JBSW Y3DP EHPK 3PXP");
        assert_eq!(group_secret("ABCDE"), "ABCD E");
        assert_eq!(group_secret("ABCD"), "ABCD");
        assert_eq!(group_secret(""), "");
    }

    #[test]
    fn options_leave_defaults_to_mfad() {
        let o = options(&args(&["totp"]), None);
        assert_eq!(o, EnrolOptions::default());
        let o = options(
            &args(&["totp", "--algorithm", "SHA512", "--period", "60"]),
            Some(SECRET.into()),
        );
        assert_eq!(
            (o.algorithm.as_str(), o.period, o.secret_base32.as_str()),
            ("SHA512", 60, SECRET)
        );
    }

    #[test]
    fn secret_file_first_non_empty_line() {
        let dir = std::env::temp_dir().join(format!("mfactl-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let path = dir.join("ga");
        std::fs::write(&path, "\n jbswy3dpehpk3pxp \n\" RATE_LIMIT 3 30\n").expect("write");
        let a = args(&["totp", "--secret-file", path.to_str().expect("utf8 path")]);
        assert_eq!(secret_to_import(&a).expect("read").as_deref(), Some(SECRET));
        let missing = args(&["totp", "--secret-file", "/nonexistent/mfactl/secret"]);
        assert!(matches!(
            secret_to_import(&missing),
            Err(Error::Input { .. })
        ));
        std::fs::remove_dir_all(&dir).expect("cleanup");
    }
}
