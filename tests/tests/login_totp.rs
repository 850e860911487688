//! TOTP logins through real libpam → pam_mfa.so → the shipped bus policy →
//! mfad, with codes from oathtool. Every test asserts the PAM return code and
//! the exact text the user saw.

use mfa_tests::daemon::DaemonConfig;
use mfa_tests::otp::{Algorithm, Totp};
use mfa_tests::pam::{
    self, NOT_ENROLLED, PAM_AUTH_ERR, PAM_MAXTRIES, PAM_SUCCESS, PROMPT, PROMPT_AGAIN, TOO_MANY,
};
use mfa_tests::users::{self, numbered};
use mfa_tests::World;

fn config(max_tries: u32) -> DaemonConfig {
    DaemonConfig {
        max_tries,
        ..DaemonConfig::default()
    }
}

#[test]
fn oathtool_codes_are_accepted_for_every_algorithm_and_length() {
    let world = World::start();
    let variants = [
        (Algorithm::Sha1, 6, 30),
        (Algorithm::Sha1, 8, 30),
        (Algorithm::Sha256, 6, 30),
        (Algorithm::Sha256, 8, 30),
        (Algorithm::Sha512, 6, 30),
        (Algorithm::Sha512, 8, 30),
        (Algorithm::Sha1, 7, 60),
    ];
    let mut secrets = Vec::new();
    for (i, (algorithm, digits, period)) in variants.into_iter().enumerate() {
        let user = numbered(i as u32 + 1);
        let totp = Totp::new(algorithm, digits, period);
        let enrolled = world.enrol_totp(&user, &totp);
        // The step after the confirmation's: never consumed yet.
        let code = totp.code(1);
        let result = world.login(&user, &[&code]);
        let what = format!("{} {digits} digits {period}s", algorithm.name());
        assert_eq!(result.rc, PAM_SUCCESS, "{what}: {result:#?}");
        assert_eq!(result.prompts(), vec![PROMPT], "{what}");
        assert_eq!(
            result.messages[0].style, "prompt_echo_off",
            "{what}: codes are not echoed"
        );
        assert!(result.errors().is_empty(), "{what}: {result:#?}");
        assert_eq!(result.unused_answers, 0);
        assert_eq!(
            result.threads_before, result.threads_after,
            "{what}: module left a thread"
        );
        secrets.extend([enrolled.secret, enrolled.confirm_code, code]);
    }
    let secrets: Vec<&str> = secrets.iter().map(String::as_str).collect();
    world.daemon.assert_log_free_of(&secrets);
}

#[test]
fn a_code_of_another_factor_or_length_is_refused() {
    let world = World::with_config(&config(1));
    let user = users::named("alice");
    let totp = Totp::new(Algorithm::Sha256, 8, 30);
    world.enrol_totp(&user, &totp);
    // Same secret, other hash: the right length, the wrong code.
    let sha1 = Totp {
        algorithm: Algorithm::Sha1,
        ..totp.clone()
    };
    let other = sha1.code(1);
    if other != totp.code(1) {
        let result = world.login(&user, &[&other]);
        result.assert_rc(PAM_MAXTRIES);
    }
    // A 6-digit code for an 8-digit factor.
    let short = Totp {
        digits: 6,
        ..totp.clone()
    }
    .code(1);
    world.login(&user, &[&short]).assert_rc(PAM_MAXTRIES);
    // The right code still works: the refusals consumed nothing.
    world.login(&user, &[&totp.code(1)]).assert_rc(PAM_SUCCESS);
}

#[test]
fn wrong_codes_until_max_tries_end_in_maxtries_with_exact_texts() {
    let world = World::with_config(&config(3));
    let user = users::named("alice");
    let totp = Totp::default_params();
    let enrolled = world.enrol_totp(&user, &totp);
    let wrong = totp.wrong_code(2);
    let result = world.login(&user, &[&wrong, &wrong, &wrong]);
    result.assert_rc(PAM_MAXTRIES);
    assert_eq!(result.prompts(), vec![PROMPT, PROMPT_AGAIN, PROMPT_AGAIN]);
    assert_eq!(result.errors(), vec![TOO_MANY]);
    assert_eq!(result.unused_answers, 0);
    world.daemon.assert_log_free_of(&[&enrolled.secret, &wrong]);
}

#[test]
fn a_wrong_code_then_the_right_one_succeeds() {
    let world = World::with_config(&config(3));
    let user = users::named("bob");
    let totp = Totp::default_params();
    world.enrol_totp(&user, &totp);
    let wrong = totp.wrong_code(2);
    let right = totp.code(1);
    let result = world.login(&user, &[&wrong, &right]);
    result.assert_rc(PAM_SUCCESS);
    assert_eq!(result.prompts(), vec![PROMPT, PROMPT_AGAIN]);
    assert!(result.errors().is_empty());
}

#[test]
fn one_try_means_one_wrong_code_is_maxtries() {
    let world = World::with_config(&config(1));
    let user = users::named("carol");
    let totp = Totp::default_params();
    world.enrol_totp(&user, &totp);
    let result = world.login(&user, &[&totp.wrong_code(2), &totp.code(1)]);
    result.assert_rc(PAM_MAXTRIES);
    assert_eq!(result.prompts(), vec![PROMPT]);
    assert_eq!(result.errors(), vec![TOO_MANY]);
    assert_eq!(
        result.unused_answers, 1,
        "mfad must not ask again after the last try"
    );
}

#[test]
fn the_same_code_twice_is_refused_the_second_time() {
    let world = World::with_config(&config(3));
    let user = users::named("alice");
    let totp = Totp::default_params();
    world.enrol_totp(&user, &totp);
    let code = totp.code(1);
    world.login(&user, &[&code]).assert_rc(PAM_SUCCESS);
    let again = world.login(&user, &[&code, &code, &code]);
    again.assert_rc(PAM_MAXTRIES);
    assert_eq!(again.prompts(), vec![PROMPT, PROMPT_AGAIN, PROMPT_AGAIN]);
    // An older code than the last accepted one is a replay as well.
    let older = world.login(&user, &[&totp.code(0)]);
    assert_ne!(older.rc, PAM_SUCCESS, "{older:#?}");
}

#[test]
fn twenty_concurrent_logins_with_one_code_succeed_once() {
    const LOGINS: usize = 20;
    // 19 wrong answers must not lock dave out: this is about replays.
    let world = World::with_config(&DaemonConfig {
        lockout_max_failures: 100,
        ..config(1)
    });
    let user = users::named("dave");
    let totp = Totp::default_params();
    world.enrol_totp(&user, &totp);
    let code = totp.code(1);
    let mut pending: Vec<_> = (0..LOGINS)
        .map(|_| {
            let mut login = world.prepare(&user, &[&code]);
            login.sync = true;
            login.spawn(&world.pam)
        })
        .collect();
    // Every login has been started by mfad and sits at its prompt; then all
    // answer at once.
    for (i, p) in pending.iter_mut().enumerate() {
        assert!(
            p.wait_at_prompt(mfa_tests::QUICK),
            "login {i} never reached the prompt"
        );
    }
    for p in pending.iter_mut() {
        p.release();
    }
    let results: Vec<_> = pending.into_iter().map(|p| p.finish()).collect();
    let successes = results.iter().filter(|r| r.rc == PAM_SUCCESS).count();
    assert_eq!(successes, 1, "{results:#?}");
    for r in results.iter().filter(|r| r.rc != PAM_SUCCESS) {
        r.assert_rc(PAM_MAXTRIES);
        assert_eq!(r.prompts(), vec![PROMPT]);
    }
}

#[test]
fn a_user_without_a_factor_is_refused_or_allowed_by_policy() {
    let world = World::start();
    let result = world.login(&users::named("bob"), &["123456"]);
    result.assert_rc(PAM_AUTH_ERR);
    assert!(
        result.prompts().is_empty(),
        "no prompt without a factor: {result:#?}"
    );
    assert_eq!(result.errors(), vec![NOT_ENROLLED]);

    // A pending (unconfirmed) factor is no factor.
    let totp = Totp::default_params();
    mfa_tests::probe::begin_totp(world.address(), &users::named("bob"), &totp);
    world
        .login(&users::named("bob"), &[&totp.code(0)])
        .assert_rc(PAM_AUTH_ERR);

    let open = World::with_config(&DaemonConfig {
        require: "no".into(),
        ..Default::default()
    });
    let result = open.login(&users::named("bob"), &[]);
    result.assert_rc(PAM_SUCCESS);
    assert!(result.prompts().is_empty(), "{result:#?}");
}

#[test]
fn pamtester_under_pam_wrapper_logs_in_with_an_oathtool_code() {
    let world = World::with_config(&config(1));
    let user = users::named("alice");
    let totp = Totp::default_params();
    world.enrol_totp(&user, &totp);
    let wrong = pam::pamtester(
        &world.pam,
        mfa_tests::world::SERVICE,
        "alice",
        &format!("{}\n", totp.wrong_code(2)),
    );
    assert!(
        !wrong.status.success(),
        "a wrong code passed:\n{}",
        wrong.describe()
    );
    assert!(
        wrong.stdout.contains(PROMPT) || wrong.stderr.contains(PROMPT),
        "{}",
        wrong.describe()
    );
    let ok = pam::pamtester(
        &world.pam,
        mfa_tests::world::SERVICE,
        "alice",
        &format!("{}\n", totp.code(1)),
    );
    ok.assert_success("pamtester with the right code");
    assert!(
        ok.stdout.contains("successfully authenticated"),
        "{}",
        ok.describe()
    );
}

/// Log in with the code `offset` steps from now; `None` if the time step
/// changed during the attempt (the offset would be off by one).
fn login_at_offset(
    world: &World,
    user: &mfa_tests::TestUser,
    totp: &Totp,
    offset: i64,
) -> Option<i32> {
    let before = totp.step_at(mfa_tests::otp::now());
    let result = world.login(user, &[&totp.code(offset)]);
    let after = totp.step_at(mfa_tests::otp::now());
    (before == after).then_some(result.rc)
}

#[test]
fn skew_accepts_one_step_ahead_and_refuses_two() {
    let world = World::with_config(&config(1));
    let user = users::named("alice");
    let totp = Totp::default_params();
    world.enrol_totp(&user, &totp);
    // A refused code consumes nothing, so a retry at a step boundary is fair.
    let rc = (0..3).find_map(|_| login_at_offset(&world, &user, &totp, 2));
    assert_eq!(
        rc,
        Some(PAM_MAXTRIES),
        "a code two steps ahead was not refused"
    );
    world.login(&user, &[&totp.code(1)]).assert_rc(PAM_SUCCESS);

    // With skew = 2 the code two steps ahead is fine.
    let wide = World::with_config(&DaemonConfig {
        totp_skew: 2,
        max_tries: 1,
        ..DaemonConfig::default()
    });
    let bob = users::named("bob");
    let totp = Totp::default_params();
    wide.enrol_totp(&bob, &totp);
    wide.login(&bob, &[&totp.code(2)]).assert_rc(PAM_SUCCESS);
}

#[test]
fn a_phone_clock_far_off_is_resynced_and_then_followed() {
    let world = World::with_config(&config(1));
    let user = numbered(20);
    let totp = Totp::default_params();
    let factor = world.enrol_totp(&user, &totp);
    // Codes of steps counted from one instant, so a period ending during the
    // test shifts nothing that is asserted.
    let t0 = mfa_tests::otp::now();
    let at = |steps: u64| {
        mfa_tests::otp::oath_totp_at(&totp.secret, Algorithm::Sha1, 6, 30, t0 + steps * 30)
    };
    // A phone six periods (3 minutes) fast: outside the skew of one period.
    world.login(&user, &[&at(6)]).assert_rc(PAM_MAXTRIES);
    let resync = world.mfactl(&user, &["resync", &factor.id, &at(6), &at(7)]);
    assert_eq!(resync.code(), Some(0), "{}", resync.describe());
    // The drift is learned: the window now sits six periods ahead, and
    // the codes used by the resync are spent.
    world.login(&user, &[&at(7)]).assert_rc(PAM_MAXTRIES);
    world.login(&user, &[&at(8)]).assert_rc(PAM_SUCCESS);
    // Beyond [totp].max_drift (10 periods) nothing is found.
    let far = world.mfactl(&user, &["resync", &factor.id, &at(30), &at(31)]);
    assert_eq!(far.code(), Some(4), "{}", far.describe());
}
