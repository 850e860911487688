//! Direct calls to mfad's interfaces as any test user, through the
//! `mfa-probe` binary run with `setpriv` (mfad identifies callers by the uid
//! of their bus connection, so the call must come from a process with that
//! uid). Also the enrolment helpers every login test starts with.

use crate::otp::{self, Totp};
use crate::process::run;
use crate::users::{command_as, TestUser};
use serde_json::Value;

/// What a call returned: a JSON value, or a D-Bus error by name.
#[derive(Clone, Debug, PartialEq)]
pub enum Reply {
    Ok(Value),
    Err { name: String, message: String },
}

impl Reply {
    /// The value; panics with the error otherwise.
    #[track_caller]
    pub fn ok(self) -> Value {
        match self {
            Reply::Ok(v) => v,
            Reply::Err { name, message } => panic!("call failed: {name}: {message}"),
        }
    }
    /// The D-Bus error name; panics if the call succeeded.
    #[track_caller]
    pub fn err_name(&self) -> &str {
        match self {
            Reply::Err { name, .. } => name,
            Reply::Ok(v) => panic!("call unexpectedly succeeded: {v}"),
        }
    }
}

/// Run `mfa-probe --bus <address> <args>` as `user`.
pub fn call(bus_address: &str, user: &TestUser, args: &[&str]) -> Reply {
    let mut cmd = command_as(user, &crate::bins::mfa_probe());
    cmd.arg("--bus").arg(bus_address).args(args);
    let finished = run("mfa-probe", &mut cmd, "", crate::QUICK);
    let line = finished
        .stdout
        .lines()
        .rev()
        .find(|l| l.starts_with('{'))
        .unwrap_or_else(|| {
            panic!(
                "mfa-probe {args:?} as {} printed nothing:\n{}",
                user.name,
                finished.describe()
            )
        });
    let value: Value =
        serde_json::from_str(line).unwrap_or_else(|e| panic!("bad mfa-probe output {line}: {e}"));
    if let Some(ok) = value.get("ok") {
        return Reply::Ok(ok.clone());
    }
    let name = value["err"]["name"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let message = value["err"]["message"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(
        !name.is_empty(),
        "mfa-probe output is neither ok nor err: {line}"
    );
    Reply::Err { name, message }
}

/// A confirmed factor and what a test needs to make codes for it.
#[derive(Clone, Debug)]
pub struct Enrolled {
    pub user: TestUser,
    pub id: String,
    pub secret: String,
    /// The code used to confirm the enrolment.
    pub confirm_code: String,
    pub totp: Option<Totp>,
    /// HOTP: digits and the first counter not used by the confirmation.
    pub hotp: Option<(u32, u64)>,
}

impl Enrolled {
    /// HOTP code for `counter`.
    pub fn hotp_code(&self, counter: u64) -> String {
        let (digits, _) = self.hotp.expect("not an HOTP factor");
        otp::oath_hotp(&self.secret, counter, digits)
    }
    /// The first HOTP counter after the confirmation code.
    pub fn next_counter(&self) -> u64 {
        self.hotp.expect("not an HOTP factor").1
    }
    pub fn totp(&self) -> &Totp {
        self.totp.as_ref().expect("not a TOTP factor")
    }
}

/// Begin a TOTP enrolment for `user` with `totp`'s secret and parameters.
pub fn begin_totp(bus_address: &str, user: &TestUser, totp: &Totp) -> Value {
    call(
        bus_address,
        user,
        &[
            "begin",
            "totp",
            "test phone",
            "--algorithm",
            totp.algorithm.name(),
            "--digits",
            &totp.digits.to_string(),
            "--period",
            &totp.period.to_string(),
            "--secret",
            &totp.secret,
        ],
    )
    .ok()
}

/// Enrol and confirm a TOTP factor (confirmed with the current code; logins
/// in tests use a later step so the confirmation never collides with them).
pub fn enrol_totp(bus_address: &str, user: &TestUser, totp: &Totp) -> Enrolled {
    let offer = begin_totp(bus_address, user, totp);
    let id = offer["id"].as_str().expect("offer without id").to_string();
    assert_eq!(
        offer["secret_base32"].as_str(),
        Some(totp.secret.as_str()),
        "secret not imported"
    );
    let code = totp.code(0);
    let factor = call(bus_address, user, &["confirm", &id, &code]).ok();
    assert_eq!(
        factor["confirmed"],
        Value::Bool(true),
        "confirmed factor: {factor}"
    );
    Enrolled {
        user: user.clone(),
        id,
        secret: totp.secret.clone(),
        confirm_code: code,
        totp: Some(totp.clone()),
        hotp: None,
    }
}

/// Enrol and confirm an HOTP factor with a fresh secret; confirmed with the
/// code for the start counter mfad offered.
pub fn enrol_hotp(bus_address: &str, user: &TestUser, digits: u32) -> Enrolled {
    let secret = otp::random_secret(20);
    let offer = call(
        bus_address,
        user,
        &[
            "begin",
            "hotp",
            "test token",
            "--digits",
            &digits.to_string(),
            "--secret",
            &secret,
        ],
    )
    .ok();
    let id = offer["id"].as_str().expect("offer without id").to_string();
    let counter = offer["counter"].as_u64().expect("offer without counter");
    let code = otp::oath_hotp(&secret, counter, digits);
    let factor = call(bus_address, user, &["confirm", &id, &code]).ok();
    assert_eq!(
        factor["confirmed"],
        Value::Bool(true),
        "confirmed factor: {factor}"
    );
    Enrolled {
        user: user.clone(),
        id,
        secret,
        confirm_code: code,
        totp: None,
        hotp: Some((digits, counter + 1)),
    }
}

/// The factors `user` sees as their own.
pub fn list_factors(bus_address: &str, user: &TestUser) -> Vec<Value> {
    match call(bus_address, user, &["list"]).ok() {
        Value::Array(items) => items,
        other => panic!("list returned {other}"),
    }
}
