//! The service with a fixed clock: login flow, tries, expiry, enrolment.

use super::*;
use crate::clock::FixedClock;
use crate::config::LogTarget;
use crate::login;
use crate::mechanism::otp::hotp;
use crate::mechanism::{otpauth, recovery, Algorithm};
use crate::policy::{Level, Requirement};
use crate::store::SqliteStore;
use mfa_dbus::{DenyReason, LoginRequest, Step, StepKind};

const NOW: u64 = 1_700_000_010;

/// `service.answer`, then — while work is under way (a fallback's slow
/// hashes) — the polls a client would send until there is a step.
fn answer_fully(
    service: &Service,
    owner: &str,
    handle: &str,
    answer: &str,
) -> Result<Answered, DaemonError> {
    let mut answered = service.answer(owner, handle, answer, 0)?;
    while let Some(waiter) = answered.waiting.take() {
        assert!(
            waiter.block(std::time::Duration::from_secs(60)),
            "work never done"
        );
        answered = service.answer(owner, handle, "", 0)?;
    }
    Ok(answered)
}
const PROMPT: &str = otpauth::PROMPT;
const RETRY_PROMPT: &str = "Wrong code. Verification code: ";
const OWNER: &str = ":1.42";

struct Fixture {
    _tmp: tempfile::TempDir,
    clock: Arc<FixedClock>,
    service: Service,
}

fn fixture(edit: impl FnOnce(&mut Config)) -> Fixture {
    let tmp = tempfile::tempdir().expect("tmp");
    let mut config = Config::default();
    config.daemon.state_dir = tmp.path().join("state");
    config.daemon.log = LogTarget::Stderr;
    // MFA on, a factor required and none set up at login: a user without a
    // factor is refused, as most tests here expect.
    config.policy.enabled = true;
    config.policy.default_rule.require = Requirement::Force;
    config.policy.enrol_at_login = false;
    edit(&mut config);
    let store = Arc::new(SqliteStore::open(&config.daemon.state_dir).expect("store"));
    let clock = Arc::new(FixedClock::new(NOW));
    let service = Service::new(config, store, clock.clone(), Audit::new(LogTarget::Stderr));
    Fixture {
        _tmp: tmp,
        clock,
        service,
    }
}

fn request(user: &str) -> LoginRequest {
    LoginRequest {
        user: user.into(),
        service: "sshd".into(),
        ..Default::default()
    }
}

/// Enrol and confirm a TOTP factor with the RFC test key; returns the key.
fn enrol_totp(f: &Fixture, user: &str) -> Vec<u8> {
    let key = b"12345678901234567890".to_vec();
    let options = EnrolOptions {
        secret_base32: otpauth::encode_base32(&key),
        ..Default::default()
    };
    let offer = f
        .service
        .begin_enrolment(0, user, "totp", "phone", &options)
        .expect("begin");
    let code = hotp(&key, NOW / 30 - 1, 6, Algorithm::Sha1);
    f.service
        .confirm_enrolment(0, user, &offer.id, &code)
        .expect("confirm");
    key
}

/// Enrol and confirm an HOTP factor labelled "token"; returns its id and key.
fn enrol_hotp_token(f: &Fixture, user: &str) -> (EnrolmentOffer, Vec<u8>) {
    let offer = f
        .service
        .begin_enrolment(0, user, "hotp", "token", &EnrolOptions::default())
        .expect("begin");
    let secret = otpauth::decode_base32(&offer.secret_base32).expect("b32");
    f.service
        .confirm_enrolment(
            0,
            user,
            &offer.id,
            &hotp(&secret, offer.counter, 6, Algorithm::Sha1),
        )
        .expect("confirm");
    (offer, secret)
}

fn totp_code(key: &[u8], now: u64) -> String {
    hotp(key, now / 30, 6, Algorithm::Sha1)
}

#[test]
fn right_code_allows_once() {
    let f = fixture(|_| {});
    let key = enrol_totp(&f, "alice");
    let (handle, step) = f
        .service
        .start_login(OWNER, request("alice"))
        .expect("start");
    assert_eq!(step, Step::prompt(PROMPT, false));
    assert_eq!(
        answer_fully(&f.service, OWNER, &handle, &totp_code(&key, NOW))
            .expect("answer")
            .step,
        Step::allow()
    );
    assert!(
        matches!(
            answer_fully(&f.service, OWNER, &handle, "000000"),
            Err(DaemonError::UnknownHandle)
        ),
        "finished"
    );
    let (handle, _) = f
        .service
        .start_login(OWNER, request("alice"))
        .expect("start");
    let replay = answer_fully(&f.service, OWNER, &handle, &totp_code(&key, NOW)).expect("answer");
    assert!(replay.failure);
    assert_eq!(
        replay.step,
        Step::prompt(RETRY_PROMPT, false),
        "a used code is a wrong code"
    );
}

#[test]
fn the_module_may_only_lower_max_tries() {
    let f = fixture(|c| c.login.max_tries = 2);
    enrol_totp(&f, "alice");
    for (asked, allowed) in [(1, 1), (5, 2), (0, 2)] {
        let request = LoginRequest {
            max_tries: asked,
            ..request("alice")
        };
        let (handle, _) = f.service.start_login(OWNER, request).expect("start");
        for _ in 1..allowed {
            let retry = answer_fully(&f.service, OWNER, &handle, "000000").expect("retry");
            assert_eq!(retry.step.kind, StepKind::PromptEchoOff, "asked {asked}");
        }
        let last = answer_fully(&f.service, OWNER, &handle, "000000").expect("last");
        assert_eq!(last.step.reason, DenyReason::MaxTries, "asked {asked}");
    }
}

#[test]
fn wrong_codes_until_max_tries() {
    let f = fixture(|c| c.login.max_tries = 2);
    enrol_totp(&f, "alice");
    let (handle, _) = f
        .service
        .start_login(OWNER, request("alice"))
        .expect("start");
    assert_eq!(
        answer_fully(&f.service, OWNER, &handle, "000000")
            .expect("1")
            .step,
        Step::prompt(RETRY_PROMPT, false)
    );
    let last = answer_fully(&f.service, OWNER, &handle, "000000")
        .expect("2")
        .step;
    assert_eq!(
        last,
        Step::deny(DenyReason::MaxTries, login::MAX_TRIES_TEXT)
    );
    assert!(matches!(
        answer_fully(&f.service, OWNER, &handle, "000000"),
        Err(DaemonError::UnknownHandle)
    ));
}

#[test]
fn handle_is_bound_to_its_connection() {
    let f = fixture(|_| {});
    let key = enrol_totp(&f, "alice");
    let (handle, _) = f
        .service
        .start_login(OWNER, request("alice"))
        .expect("start");
    let other = answer_fully(&f.service, ":1.99", &handle, &totp_code(&key, NOW));
    assert!(matches!(other, Err(DaemonError::UnknownHandle)));
    assert_eq!(
        answer_fully(&f.service, OWNER, &handle, &totp_code(&key, NOW))
            .expect("owner")
            .step,
        Step::allow()
    );
}

#[test]
fn slow_login_expires() {
    let f = fixture(|c| c.login.timeout = 60);
    let key = enrol_totp(&f, "alice");
    let (handle, _) = f
        .service
        .start_login(OWNER, request("alice"))
        .expect("start");
    f.clock.set(NOW + 60);
    let step =
        answer_fully(&f.service, OWNER, &handle, &totp_code(&key, NOW + 60)).expect("answer");
    assert_eq!(
        step.step,
        Step::deny(DenyReason::Expired, login::EXPIRED_TEXT)
    );
}

#[test]
fn unenrolled_users_follow_the_policy() {
    let f = fixture(|_| {});
    let (_, step) = f
        .service
        .start_login(OWNER, request("nobody-here"))
        .expect("start");
    assert_eq!(step.kind, StepKind::Deny);
    assert_eq!(step.reason, DenyReason::NotEnrolled);
    let f = fixture(|c| c.policy.default_rule.require = Requirement::No);
    let (_, step) = f
        .service
        .start_login(OWNER, request("nobody-here"))
        .expect("start");
    assert_eq!(step, Step::skip());
}

#[test]
fn with_mfa_off_nobody_is_asked() {
    let f = fixture(|c| c.policy.enabled = false);
    enrol_totp(&f, "alice");
    for user in ["alice", "nobody-here"] {
        let (handle, step) = f.service.start_login(OWNER, request(user)).expect("start");
        assert_eq!(step, Step::skip(), "{user}");
        assert!(handle.is_empty());
    }
}

#[test]
fn an_empty_answer_lists_the_other_factors_and_a_choice_asks_that_one() {
    let f = fixture(|_| {});
    let key = enrol_totp(&f, "alice");
    // Factors are listed oldest first.
    f.clock.set(NOW + 1);
    let (_, secret) = enrol_hotp_token(&f, "alice");
    let (handle, step) = f
        .service
        .start_login(OWNER, request("alice"))
        .expect("start");
    assert!(step.text.contains("(phone;"), "{}", step.text);
    let listed = answer_fully(&f.service, OWNER, &handle, "").expect("answer");
    assert!(!listed.failure, "asking for the list is not a failure");
    assert_eq!(listed.step.kind, StepKind::PromptEchoOn);
    assert!(
        listed.step.text.contains("1) phone (totp)"),
        "{}",
        listed.step.text
    );
    assert!(
        listed.step.text.contains("2) token (hotp)"),
        "{}",
        listed.step.text
    );
    let chosen = answer_fully(&f.service, OWNER, &handle, "2").expect("answer");
    assert!(chosen.step.text.contains("(token;"), "{}", chosen.step.text);
    // The TOTP code is not a code of the chosen factor.
    let wrong = answer_fully(&f.service, OWNER, &handle, &totp_code(&key, NOW)).expect("answer");
    assert!(wrong.failure);
    let right = answer_fully(
        &f.service,
        OWNER,
        &handle,
        &hotp(&secret, otpauth::HOTP_START + 1, 6, Algorithm::Sha1),
    )
    .expect("answer");
    assert_eq!(right.step, Step::allow());
}

#[test]
fn the_preferred_factor_is_asked_first() {
    let f = fixture(|_| {});
    enrol_totp(&f, "alice");
    f.clock.set(NOW + 1);
    let (second, _) = enrol_hotp_token(&f, "alice");
    f.service
        .set_preferred(0, "alice", &second.id)
        .expect("prefer");
    let (_, step) = f
        .service
        .start_login(OWNER, request("alice"))
        .expect("start");
    assert!(step.text.contains("(token;"), "{}", step.text);
}

#[test]
fn encourage_offers_enrolment_and_declining_lets_in() {
    let f = fixture(|c| {
        c.policy.default_rule.require = Requirement::Encourage;
        c.policy.enrol_at_login = true;
    });
    let (handle, step) = f.service.start_login(OWNER, request("bob")).expect("start");
    assert_eq!(step.kind, StepKind::Info);
    let offer = answer_fully(&f.service, OWNER, &handle, "").expect("info");
    assert_eq!(offer.step, Step::prompt(login::ENCOURAGE_PROMPT, true));
    let declined = answer_fully(&f.service, OWNER, &handle, "n").expect("answer");
    assert_eq!(declined.step, Step::skip());
    assert!(f.service.list_factors("bob").expect("list").is_empty());
}

#[test]
fn force_enrols_at_login_and_the_new_factor_works() {
    let f = fixture(|c| c.policy.enrol_at_login = true);
    let (handle, step) = f.service.start_login(OWNER, request("bob")).expect("start");
    assert_eq!(step, Step::info(login::FORCE_TEXT));
    let shown = answer_fully(&f.service, OWNER, &handle, "").expect("info");
    assert_eq!(shown.step.kind, StepKind::Info);
    let secret_line = shown
        .step
        .text
        .lines()
        .find_map(|l| l.strip_prefix("Secret: "))
        .expect("secret shown")
        .to_string();
    let secret = otpauth::decode_base32(&secret_line).expect("b32");
    let prompt = answer_fully(&f.service, OWNER, &handle, "").expect("prompt");
    assert_eq!(prompt.step, Step::prompt(login::CONFIRM_PROMPT, false));
    let wrong = answer_fully(&f.service, OWNER, &handle, "000000").expect("wrong");
    assert!(wrong.failure);
    assert_eq!(
        wrong.step,
        Step::prompt(
            format!("{}{}", login::WRONG_CODE, login::CONFIRM_PROMPT),
            false
        )
    );
    let done = answer_fully(&f.service, OWNER, &handle, &totp_code(&secret, NOW)).expect("confirm");
    assert_eq!(done.step.kind, StepKind::Allow);
    let factors = f.service.list_factors("bob").expect("list");
    assert_eq!(factors.len(), 1);
    assert!(factors[0].confirmed);
    // Next login asks for a code of it.
    let (_, step) = f.service.start_login(OWNER, request("bob")).expect("start");
    assert_eq!(step, Step::prompt(PROMPT, false));
}

#[test]
fn a_device_is_trusted_after_a_right_code_until_revoked() {
    let f = fixture(|c| c.policy.remember_days = 3);
    let key = enrol_totp(&f, "alice");
    let from = |rhost: &str| LoginRequest {
        rhost: rhost.into(),
        ..request("alice")
    };
    let (handle, _) = f
        .service
        .start_login(OWNER, from("192.0.2.7"))
        .expect("start");
    let done = answer_fully(&f.service, OWNER, &handle, &totp_code(&key, NOW)).expect("answer");
    assert_eq!(done.step, Step::allow());
    let (handle, step) = f
        .service
        .start_login(OWNER, from("192.0.2.7"))
        .expect("start");
    assert_eq!((handle.as_str(), step), ("", Step::skip()));
    let (_, step) = f
        .service
        .start_login(OWNER, from("192.0.2.8"))
        .expect("start");
    assert_eq!(step, Step::prompt(PROMPT, false));
    let devices = f.service.list_devices("alice").expect("devices");
    assert_eq!(devices.len(), 1);
    assert_eq!(devices[0].device, "address 192.0.2.7");
    assert_eq!(devices[0].expires, NOW + 3 * 86_400);
    f.clock.set(NOW + 3 * 86_400);
    let (_, step) = f
        .service
        .start_login(OWNER, from("192.0.2.7"))
        .expect("start");
    assert_eq!(step, Step::prompt(PROMPT, false), "expired");
    f.clock.set(NOW);
    assert_eq!(f.service.revoke_devices(0, "alice", "").expect("revoke"), 1);
    let (_, step) = f
        .service
        .start_login(OWNER, from("192.0.2.7"))
        .expect("start");
    assert_eq!(step, Step::prompt(PROMPT, false), "revoked");
}

#[test]
fn levels_are_bounded_by_the_rule() {
    let f = fixture(|_| {});
    enrol_totp(&f, "alice");
    let err = f
        .service
        .set_level(0, "alice", "privileged")
        .expect_err("below min_level");
    assert!(err.to_string().contains("appropriate"), "{err}");
    let f = fixture(|c| c.policy.default_rule.min_level = Level::Privileged);
    enrol_totp(&f, "alice");
    f.service
        .set_level(0, "alice", "privileged")
        .expect("level");
    let (_, step) = f
        .service
        .start_login(OWNER, request("alice"))
        .expect("start");
    assert_eq!(step, Step::skip(), "not asked at login");
    let sudo = LoginRequest {
        service: "sudo".into(),
        ..request("alice")
    };
    let (_, step) = f.service.start_login(OWNER, sudo).expect("start");
    assert_eq!(step, Step::prompt(PROMPT, false), "asked by sudo");
}

#[test]
fn pending_enrolment_is_not_a_factor() {
    let f = fixture(|_| {});
    let offer = f
        .service
        .begin_enrolment(0, "bob", "totp", "", &EnrolOptions::default())
        .expect("begin");
    assert_eq!(offer.label, "totp");
    assert_eq!(offer.secret_base32.len(), 32, "160-bit SHA1 secret");
    assert!(
        offer.uri.starts_with("otpauth://totp/pam_mfa:bob%40"),
        "{}",
        offer.uri
    );
    let (_, step) = f.service.start_login(OWNER, request("bob")).expect("start");
    assert_eq!(step.reason, DenyReason::NotEnrolled);
    let err = f.service.confirm_enrolment(0, "bob", &offer.id, "000000");
    assert!(matches!(err, Err(DaemonError::WrongCode(_))));
    let listed = f.service.list_factors("bob").expect("list");
    assert_eq!(listed.len(), 1);
    assert!(!listed[0].confirmed);
}

#[test]
fn bad_enrolment_arguments_change_nothing() {
    let f = fixture(|_| {});
    let cases: [(&str, &str, EnrolOptions); 6] = [
        ("sms", "x", EnrolOptions::default()),
        (
            "totp",
            "x",
            EnrolOptions {
                digits: 9,
                ..Default::default()
            },
        ),
        (
            "totp",
            "x",
            EnrolOptions {
                algorithm: "MD5".into(),
                ..Default::default()
            },
        ),
        (
            "totp",
            "x",
            EnrolOptions {
                period: 5,
                ..Default::default()
            },
        ),
        (
            "totp",
            "x",
            EnrolOptions {
                secret_base32: "!!".into(),
                ..Default::default()
            },
        ),
        ("totp", "bad\nlabel", EnrolOptions::default()),
    ];
    for (kind, label, options) in cases {
        let err = f.service.begin_enrolment(0, "bob", kind, label, &options);
        assert!(
            matches!(err, Err(DaemonError::InvalidArgument(_))),
            "{kind} {label:?} {options:?}"
        );
    }
    assert!(f.service.list_factors("bob").expect("list").is_empty());
}

#[test]
fn hotp_login_moves_the_counter() {
    let f = fixture(|_| {});
    let key = b"12345678901234567890".to_vec();
    let options = EnrolOptions {
        secret_base32: otpauth::encode_base32(&key),
        ..Default::default()
    };
    let offer = f
        .service
        .begin_enrolment(0, "carol", "hotp", "token", &options)
        .expect("begin");
    assert_eq!(offer.counter, 1, "counter 0 is the check value");
    assert_eq!(offer.check_value, "755224", "RFC 4226, counter 0");
    f.service
        .confirm_enrolment(0, "carol", &offer.id, "287082")
        .expect("counter 1");
    let (handle, _) = f
        .service
        .start_login(OWNER, request("carol"))
        .expect("start");
    // counter 3, inside the window
    assert_eq!(
        answer_fully(&f.service, OWNER, &handle, "969429")
            .expect("answer")
            .step,
        Step::allow()
    );
    let (handle, _) = f
        .service
        .start_login(OWNER, request("carol"))
        .expect("start");
    let behind =
        answer_fully(&f.service, OWNER, &handle, "359152").expect("counter 2 is behind now");
    assert_eq!(behind.step.kind, StepKind::PromptEchoOff);
}

#[test]
fn lockout_gives_right_and_wrong_codes_the_same_answer() {
    let f = fixture(|c| {
        c.login.max_tries = 5;
        c.lockout.max_failures = 3;
        c.lockout.unlock_after = 300;
    });
    let key = enrol_totp(&f, "alice");
    let locked = Step::deny(DenyReason::Locked, login::LOCKED_TEXT);
    let (handle, _) = f
        .service
        .start_login(OWNER, request("alice"))
        .expect("start");
    for _ in 0..2 {
        assert_eq!(
            answer_fully(&f.service, OWNER, &handle, "000000")
                .expect("wrong")
                .step,
            Step::prompt(RETRY_PROMPT, false)
        );
    }
    assert_eq!(
        answer_fully(&f.service, OWNER, &handle, "000000")
            .expect("third")
            .step,
        locked
    );
    for answer in [totp_code(&key, NOW), "000000".to_string()] {
        let (handle, step) = f
            .service
            .start_login(OWNER, request("alice"))
            .expect("start");
        assert_eq!(
            step,
            Step::prompt(PROMPT, false),
            "the lock is not revealed early"
        );
        assert_eq!(
            answer_fully(&f.service, OWNER, &handle, &answer)
                .expect("answer")
                .step,
            locked
        );
    }
    f.clock.set(NOW + 300);
    let (handle, _) = f
        .service
        .start_login(OWNER, request("alice"))
        .expect("start");
    let code = totp_code(&key, NOW + 300);
    assert_eq!(
        answer_fully(&f.service, OWNER, &handle, &code)
            .expect("answer")
            .step,
        Step::allow()
    );
}

#[test]
fn admin_unlocks_a_user() {
    let f = fixture(|c| {
        c.lockout.max_failures = 1;
        c.lockout.unlock_after = 0;
    });
    let key = enrol_totp(&f, "alice");
    let (handle, _) = f
        .service
        .start_login(OWNER, request("alice"))
        .expect("start");
    answer_fully(&f.service, OWNER, &handle, "000000").expect("wrong");
    assert!(f.service.list_users().expect("users")[0].locked);
    assert!(f.service.unlock_user(0, "alice").expect("unlock"));
    let (handle, _) = f
        .service
        .start_login(OWNER, request("alice"))
        .expect("start");
    let step = answer_fully(&f.service, OWNER, &handle, &totp_code(&key, NOW)).expect("answer");
    assert_eq!(step.step, Step::allow());
}

#[test]
fn recovery_codes_work_once_each_and_say_how_many_are_left() {
    let f = fixture(|_| {});
    enrol_totp(&f, "alice");
    let codes = f
        .service
        .generate_recovery_codes(0, "alice")
        .expect("codes");
    assert_eq!(codes.len(), recovery::BATCH);
    let (handle, _) = f
        .service
        .start_login(OWNER, request("alice"))
        .expect("start");
    let used = answer_fully(&f.service, OWNER, &handle, &codes[3].to_uppercase()).expect("answer");
    assert_eq!(used.step.kind, StepKind::Allow);
    assert!(!used.failure);
    assert!(used.step.text.contains("9 left"), "{:?}", used.step.text);
    let (handle, _) = f
        .service
        .start_login(OWNER, request("alice"))
        .expect("start");
    let again = answer_fully(&f.service, OWNER, &handle, &codes[3]).expect("answer");
    assert!(again.failure, "a recovery code works once");
    assert_eq!(again.step, Step::prompt(RETRY_PROMPT, false));
    // A new batch replaces the old one.
    f.service
        .generate_recovery_codes(0, "alice")
        .expect("codes");
    let (handle, _) = f
        .service
        .start_login(OWNER, request("alice"))
        .expect("start");
    assert!(
        answer_fully(&f.service, OWNER, &handle, &codes[4])
            .expect("answer")
            .failure
    );
}

#[test]
fn racing_logins_with_one_recovery_code_let_one_in() {
    let f = Arc::new(fixture(|_| {}));
    enrol_totp(&f, "alice");
    let codes = f
        .service
        .generate_recovery_codes(0, "alice")
        .expect("codes");
    let threads: Vec<_> = (0..4)
        .map(|i| {
            let f = Arc::clone(&f);
            let code = codes[0].clone();
            std::thread::spawn(move || {
                let owner = format!(":1.{i}");
                let (handle, _) = f
                    .service
                    .start_login(&owner, request("alice"))
                    .expect("start");
                answer_fully(&f.service, &owner, &handle, &code)
                    .expect("answer")
                    .step
                    .kind
            })
        })
        .collect();
    let allowed = threads
        .into_iter()
        .map(|t| t.join().expect("join"))
        .filter(|k| *k == StepKind::Allow)
        .count();
    assert_eq!(allowed, 1);
}

#[test]
fn wrong_recovery_codes_count_toward_lockout() {
    let f = fixture(|c| {
        c.login.max_tries = 5;
        c.lockout.max_failures = 2;
    });
    enrol_totp(&f, "alice");
    let codes = f
        .service
        .generate_recovery_codes(0, "alice")
        .expect("codes");
    let (handle, _) = f
        .service
        .start_login(OWNER, request("alice"))
        .expect("start");
    answer_fully(&f.service, OWNER, &handle, "aaaa-bbbb-cccc").expect("wrong");
    let locked = answer_fully(&f.service, OWNER, &handle, "aaaa-bbbb-cccd").expect("wrong");
    assert_eq!(locked.step.reason, DenyReason::Locked);
    let (handle, _) = f
        .service
        .start_login(OWNER, request("alice"))
        .expect("start");
    let right = answer_fully(&f.service, OWNER, &handle, &codes[0]).expect("right");
    assert_eq!(
        right.step.reason,
        DenyReason::Locked,
        "not checked while locked"
    );
}

#[test]
fn a_closed_connection_takes_its_logins_with_it() {
    let f = fixture(|_| {});
    let key = enrol_totp(&f, "alice");
    let (gone, _) = f
        .service
        .start_login(OWNER, request("alice"))
        .expect("start");
    let (kept, _) = f
        .service
        .start_login(":1.43", request("alice"))
        .expect("start");
    f.service.connection_gone(OWNER);
    assert!(matches!(
        answer_fully(&f.service, OWNER, &gone, &totp_code(&key, NOW)),
        Err(DaemonError::UnknownHandle)
    ));
    let answered = answer_fully(&f.service, ":1.43", &kept, &totp_code(&key, NOW))
        .expect("the other connection's login is untouched");
    assert_eq!(answered.step, Step::allow());
}

#[test]
fn logins_a_user_starts_for_itself_are_limited_and_roots_are_not() {
    let f = fixture(|c| {
        c.limits.own_logins_burst = 3;
        c.limits.own_logins_per_hour = 60;
    });
    enrol_totp(&f, "alice");
    let unlock = || LoginRequest {
        service: "swaylock".into(),
        ..request("alice")
    };
    // Unlocks and step-ups share one bucket, each cancelled at once.
    for i in 0..3 {
        let (handle, _) = match i {
            1 => f.service.begin_step_up(OWNER, None, 2001, "alice"),
            _ => f.service.start_unlock(OWNER, None, 2001, unlock()),
        }
        .expect("within the burst");
        assert!(!handle.is_empty());
        f.service.cancel(OWNER, &handle);
    }
    let refused = [
        f.service.start_unlock(OWNER, None, 2001, unlock()),
        f.service.begin_step_up(OWNER, None, 2001, "alice"),
    ];
    for refused in refused {
        match refused {
            Err(DaemonError::LimitReached(why)) => {
                assert!(why.contains("try again in 60 s"), "{why}")
            }
            other => panic!("not limited: {other:?}"),
        }
    }
    // Root's PAM clients (sshd) are not held up by it, nor another user.
    let (handle, _) = f
        .service
        .start_login(OWNER, request("alice"))
        .expect("root's login");
    assert!(!handle.is_empty());
    enrol_totp(&f, "bob");
    let bob = LoginRequest {
        user: "bob".into(),
        ..unlock()
    };
    f.service
        .start_unlock(OWNER, None, 2002, bob)
        .expect("another user's unlock");
    // A minute later alice has one more.
    f.clock.set(NOW + 60);
    f.service
        .start_unlock(":1.43", None, 2001, unlock())
        .expect("refilled");
    assert!(f
        .service
        .start_unlock(":1.43", None, 2001, unlock())
        .is_err());
}

/// A directory whose group `slow-team` never answers (until the test ends).
struct SlowGroup(std::sync::Mutex<std::sync::mpsc::Receiver<()>>);

impl crate::policy::Directory for SlowGroup {
    fn user(
        &self,
        name: &str,
    ) -> Result<Option<crate::policy::UserEntry>, crate::policy::LookupError> {
        Ok(Some(crate::policy::UserEntry {
            name: name.into(),
            gid: 1000,
            gids: vec![1000],
        }))
    }
    fn group(
        &self,
        name: &str,
    ) -> Result<Option<crate::policy::GroupEntry>, crate::policy::LookupError> {
        if name == "slow-team" {
            if let Ok(waiting) = self.0.lock() {
                let _ = waiting.recv();
            }
        }
        Ok(Some(crate::policy::GroupEntry {
            name: name.into(),
            gid: 2000,
            members: vec![],
        }))
    }
}

#[test]
fn a_lookup_that_never_answers_is_named_in_the_explanation() {
    let (_release, hang) = std::sync::mpsc::channel();
    let f = fixture(|c| {
        c.policy.default_rule.require = Requirement::No;
        c.policy.lookup_timeout = 1;
        for (line, group) in [(10, "fast-team"), (20, "slow-team")] {
            c.policy.groups.push(crate::policy::Rule {
                origin: crate::policy::RuleOrigin::Group {
                    group: group.into(),
                    line,
                },
                require: Requirement::Force,
                ..crate::policy::Rule::default_rule()
            });
        }
    });
    let service = f
        .service
        .with_directory(Arc::new(SlowGroup(std::sync::Mutex::new(hang))));
    let explained = service.explain(&request("alice")).expect("explain");
    assert_eq!(
        (explained.outcome.as_str(), explained.reason.as_str()),
        ("refuse", "group-lookup-failed")
    );
    assert!(
        explained
            .lines
            .iter()
            .any(|l| l.contains("group \"slow-team\"") && l.contains("no answer within 1 s")),
        "{:#?}",
        explained.lines
    );
}
