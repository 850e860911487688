//! No `Debug` of an mfad type that carries a secret, a code or what a user
//! typed shows it — as text, as the bytes' debug list or as hex — in either
//! form (`{:?}`, `{:#?}`). Errors about a secret never quote it either.

use mfa_dbus::{DenyReason, Step, StepKind};
use mfad::mechanism::otpauth::{self, SecretError};
use mfad::mechanism::{Algorithm, FactorData, FactorKind, OtpParams};
use mfad::service::Answered;
use mfad::store::{CodeCheck, Confirmation, FactorRecord};

const SECRET: &[u8] = b"MARKER-SECRET-20B!!!";
const CODE: &str = "98765432";

/// The forms a leaked byte string would take in debug output.
fn forms(bytes: &[u8]) -> Vec<String> {
    let head = &bytes[..8];
    vec![
        String::from_utf8_lossy(bytes).into_owned(),
        format!("{head:?}").trim_matches(['[', ']']).to_string(),
        head.iter().map(|b| format!("{b:02x}")).collect(),
        head.iter().map(|b| format!("{b:02X}")).collect(),
        otpauth::encode_base32(bytes)[..12].to_string(),
    ]
}

#[track_caller]
fn hidden<T: std::fmt::Debug>(value: &T) -> String {
    let shown = format!("{value:?}\n{value:#?}");
    for mark in forms(SECRET).iter().chain([&CODE.to_string()]) {
        assert!(!shown.contains(mark.as_str()), "{mark:?} shown:\n{shown}");
    }
    shown
}

fn params() -> OtpParams {
    OtpParams {
        secret: SECRET.to_vec(),
        algorithm: Algorithm::Sha1,
        digits: 6,
        period: 30,
        drift: 7,
    }
}

fn record() -> FactorRecord {
    FactorRecord {
        id: "f00d".into(),
        user: "alice".into(),
        kind: FactorKind::Totp,
        label: "phone".into(),
        counter: 7,
        data: FactorData::Otp(params()),
        confirmed: true,
        approved: false,
        created: 1,
        last_used: 2,
        expires: 0,
    }
}

#[test]
fn otp_parameters_hide_the_secret() {
    let shown = hidden(&params());
    assert!(shown.contains("drift: 7"), "{shown}");
}

#[test]
fn factor_records_and_store_outcomes_hide_the_secret() {
    let shown = hidden(&record());
    assert!(shown.contains("f00d") && shown.contains("alice"), "{shown}");
    hidden(&CodeCheck::Accepted(record()));
    hidden(&Confirmation::Confirmed(record()));
    hidden(&Some(vec![record(), record()]));
}

#[test]
fn an_answered_step_hides_its_text() {
    let answered = Answered {
        step: Step {
            kind: StepKind::Allow,
            reason: DenyReason::None,
            text: format!("Recovery code {CODE} accepted"),
        },
        failure: false,
        waiting: None,
    };
    hidden(&answered);
}

#[test]
fn errors_about_a_secret_do_not_quote_it() {
    let not_base32 = format!("{}!", String::from_utf8_lossy(SECRET));
    let error = otpauth::decode_base32(&not_base32).expect_err("not base32");
    assert_eq!(error, SecretError::NotBase32);
    hidden(&error);
    assert!(!error.to_string().contains("MARKER"), "{error}");
    let short = otpauth::encode_base32(&SECRET[..4]);
    let error = otpauth::decode_base32(&short).expect_err("too short");
    assert!(!format!("{error} {error:?}").contains(&short), "{error}");
}
