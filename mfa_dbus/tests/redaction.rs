//! No `Debug` of a contract type shows a code, a secret or what the user
//! typed, in either form (`{:?}`, `{:#?}`): these values pass through
//! setuid programs and daemons whose debug output may end up in logs.

use mfa_dbus::{Answer, DenyReason, EnrolOptions, EnrolmentOffer, Step, StepKind};

const SECRET: &str = "MARKERSECRETQQQQ";
const CODE: &str = "98765432";

#[track_caller]
fn hidden<T: std::fmt::Debug>(value: &T, marks: &[&str]) -> String {
    let shown = format!("{value:?}\n{value:#?}");
    for mark in marks {
        assert!(!shown.contains(mark), "{mark:?} shown:\n{shown}");
    }
    shown
}

#[test]
fn enrol_options_hide_the_imported_secret() {
    let options = EnrolOptions {
        algorithm: "SHA256".into(),
        digits: 8,
        period: 30,
        secret_base32: SECRET.into(),
        pin: "4711-pin".into(),
        verification: true,
        address: String::new(),
    };
    let shown = hidden(&options, &[SECRET, "4711-pin"]);
    assert!(
        shown.contains("SHA256") && shown.contains("<redacted>"),
        "{shown}"
    );
}

#[test]
fn an_enrolment_offer_hides_its_secret_and_uri() {
    let offer = EnrolmentOffer {
        id: "f00d".into(),
        kind: "totp".into(),
        label: "phone".into(),
        issuer: "pam_mfa".into(),
        algorithm: "SHA1".into(),
        digits: 6,
        period: 30,
        counter: 0,
        secret_base32: SECRET.into(),
        uri: format!("otpauth://totp/pam_mfa:alice?secret={SECRET}&issuer=pam_mfa"),
        expires: 1,
        instructions: String::new(),
        check_value: "328482".into(),
    };
    let shown = hidden(&offer, &[SECRET, "otpauth", "328482"]);
    assert!(shown.contains("f00d"), "{shown}");
}

#[test]
fn a_step_hides_its_text() {
    // Texts carry no code today, but a step could show a secret (enrolment
    // at login) or a recovery code: the length only.
    for kind in [StepKind::Info, StepKind::PromptEchoOn, StepKind::Allow] {
        let step = Step {
            kind,
            reason: DenyReason::None,
            text: format!("Your new code is {CODE}, secret {SECRET}"),
        };
        hidden(&step, &[CODE, SECRET]);
    }
    hidden(&Step::deny(DenyReason::Internal, CODE), &[CODE]);
}

#[test]
fn an_answer_is_never_shown() {
    let answer = Answer::new(CODE.into());
    hidden(&answer, &[CODE]);
    hidden(&Some(&answer), &[CODE]);
    assert_eq!(answer.expose(), CODE);
}
