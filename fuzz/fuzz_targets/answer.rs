//! What a user types at the prompt: empty, huge, NUL, control characters,
//! whatever lossy UTF-8 makes of raw bytes (D-Bus strings are UTF-8, and
//! pam_mfa.so refuses a non-UTF-8 answer before it reaches mfad). Each
//! answer goes to the mechanisms directly and through a real login.
//!
//! Input: one flags byte, then up to four answers separated by 0xFF. When a
//! login ends, the next answer goes to a new one.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mfa_dbus::{LoginRequest, StepKind};
use mfad::error::DaemonError;
use mfad::mechanism::{
    recovery, Algorithm, FactorData, FactorKind, Hotp, Mechanism, OtpParams, Response, Totp,
    Verdict,
};
use pam_mfa_fuzz::{code_shaped, factor, World, ALICE, BOB, KEY, NOW, OWNER};

/// The highest counter the store holds (SQLite integers are i64).
const MAX_COUNTER: u64 = i64::MAX as u64;

thread_local! {
    static WORLD: World = World::new();
}

fuzz_target!(|data: &[u8]| {
    let Some((&flags, rest)) = data.split_first() else {
        return;
    };
    let answers: Vec<String> = rest
        .split(|&b| b == 0xff)
        .take(4)
        .map(|a| String::from_utf8_lossy(a).into_owned())
        .collect();
    for answer in &answers {
        mechanisms(flags, answer);
    }
    WORLD.with(|world| {
        world.reset();
        login(world, flags, &answers);
    });
});

/// Totp and Hotp alone, with parameters an enrolment may choose, the widest
/// skew and window the config allows, and the highest stored counter.
fn mechanisms(flags: u8, answer: &str) {
    if let Some(code) = recovery::normalise(answer) {
        assert!(code.len() == 12 && code.bytes().all(|b| b.is_ascii_alphanumeric()));
    }
    let params = OtpParams {
        secret: KEY.to_vec(),
        algorithm: [Algorithm::Sha1, Algorithm::Sha256, Algorithm::Sha512]
            [usize::from(flags >> 6) % 3],
        digits: 6 + u32::from(flags >> 3) % 3,
        period: [10, 30, 300][usize::from(flags >> 5) % 3],
        // A learned drift, as far as the config allows either way.
        drift: [0, 120, -120][usize::from(flags & 0x03) % 3],
    };
    let mut record = factor(
        "f",
        ALICE,
        FactorKind::Totp,
        params.algorithm,
        params.digits,
    );
    record.data = FactorData::Otp(params);
    record.counter = if flags & 0x80 == 0 { 0 } else { MAX_COUNTER };
    let totp = Totp {
        skew: 10,
        max_drift: 120,
        defaults: Default::default(),
    };
    let hotp = Hotp {
        window: 100,
        defaults: Default::default(),
    };
    let response = Response::Text(answer.to_string());
    let verified = [
        totp.verify(&record, &(), &response, NOW),
        hotp.verify(&record, &(), &response, NOW),
    ];
    let resynced = [
        totp.resync(&record, answer, answer, NOW),
        hotp.resync(&record, answer, answer, NOW),
    ];
    if verified.iter().any(|v| matches!(v, Verdict::Accept(_)))
        || resynced.iter().any(Option::is_some)
    {
        assert!(code_shaped(answer), "{answer:?} accepted");
    }
}

fn login(world: &World, flags: u8, answers: &[String]) {
    let service = &world.service;
    let user = if flags & 0x07 == 0 { BOB } else { ALICE };
    let request = LoginRequest {
        user: user.into(),
        service: "sshd".into(),
        ..Default::default()
    };
    let mut live = None;
    for (i, answer) in answers.iter().enumerate() {
        let handle = match live.take() {
            Some(handle) => handle,
            None => {
                let (handle, step) = service.start_login(OWNER, request.clone()).expect("start");
                assert_eq!(step.kind, StepKind::PromptEchoOff);
                handle
            }
        };
        if i == 0 && flags & 0x08 != 0 {
            world.clock.set(NOW + service.config().login.timeout);
        }
        if flags & 0x10 != 0 {
            // Another connection cannot answer, and does not end the login.
            assert!(matches!(
                service.answer(":1.43", &handle, answer, 0),
                Err(DaemonError::UnknownHandle)
            ));
        }
        let mut answered = service.answer(OWNER, &handle, answer, 0).expect("answer");
        // Slow work (a recovery code's hashes): poll as a client would.
        while let Some(waiter) = answered.waiting.take() {
            assert!(waiter.block(std::time::Duration::from_secs(5)), "work hung");
            answered = service.answer(OWNER, &handle, "", 0).expect("poll");
        }
        match answered.step.kind {
            StepKind::Allow => assert!(!answered.failure),
            StepKind::Deny => assert!(answered.failure),
            // A prompt again: a wrong code (failure), or the list of
            // methods after an empty answer, or a method picked (not).
            _ => {}
        }
        if answered.step.kind == StepKind::Allow {
            assert!(code_shaped(answer), "{answer:?} logged {user} in");
        }
        if answered.step.is_terminal() {
            assert!(matches!(
                service.answer(OWNER, &handle, answer, 0),
                Err(DaemonError::UnknownHandle)
            ));
        } else {
            live = Some(handle);
        }
    }
    if let Some(handle) = live {
        service.cancel(OWNER, &handle);
    }
}
