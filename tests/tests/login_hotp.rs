//! HOTP logins through real libpam: the look-ahead window, a counter that
//! only moves forward, codes from oathtool.

use mfa_tests::daemon::DaemonConfig;
use mfa_tests::pam::{PAM_MAXTRIES, PAM_SUCCESS, PROMPT};
use mfa_tests::users::{self, numbered};
use mfa_tests::World;

/// Window 3: the expected counter and three after it are accepted.
const WINDOW: u64 = 3;

fn world() -> World {
    World::with_config(&DaemonConfig {
        max_tries: 1,
        hotp_window: WINDOW as u32,
        ..DaemonConfig::default()
    })
}

#[test]
fn look_ahead_inside_the_window_is_accepted_and_moves_the_counter() {
    let world = world();
    let user = users::named("alice");
    let hotp = world.enrol_hotp(&user, 6);
    let next = hotp.next_counter();
    // The last counter inside the window.
    let ahead = hotp.hotp_code(next + WINDOW);
    let result = world.login(&user, &[&ahead]);
    result.assert_rc(PAM_SUCCESS);
    assert_eq!(result.prompts(), vec![PROMPT]);
    // The counter moved past it: the skipped codes and the used one are dead.
    for counter in next..=next + WINDOW {
        let code = hotp.hotp_code(counter);
        let result = world.login(&user, &[&code]);
        assert_eq!(
            result.rc,
            PAM_MAXTRIES,
            "counter {counter} accepted after {}",
            next + WINDOW
        );
    }
    // The one after it is the expected one now.
    world
        .login(&user, &[&hotp.hotp_code(next + WINDOW + 1)])
        .assert_rc(PAM_SUCCESS);
    world.daemon.assert_log_free_of(&[&hotp.secret, &ahead]);
}

#[test]
fn a_code_behind_the_counter_is_refused() {
    let world = world();
    let user = users::named("bob");
    let hotp = world.enrol_hotp(&user, 8);
    let next = hotp.next_counter();
    // The confirmation's code was the counter before `next`.
    world
        .login(&user, &[&hotp.confirm_code])
        .assert_rc(PAM_MAXTRIES);
    world
        .login(&user, &[&hotp.hotp_code(next)])
        .assert_rc(PAM_SUCCESS);
    world
        .login(&user, &[&hotp.hotp_code(next)])
        .assert_rc(PAM_MAXTRIES);
    world
        .login(&user, &[&hotp.hotp_code(next + 1)])
        .assert_rc(PAM_SUCCESS);
}

#[test]
fn a_code_beyond_the_window_is_refused_and_moves_nothing() {
    let world = world();
    let user = users::named("carol");
    let hotp = world.enrol_hotp(&user, 6);
    let next = hotp.next_counter();
    let beyond = hotp.hotp_code(next + WINDOW + 1);
    world.login(&user, &[&beyond]).assert_rc(PAM_MAXTRIES);
    // Nothing moved: the expected code still works, then the one after it.
    world
        .login(&user, &[&hotp.hotp_code(next)])
        .assert_rc(PAM_SUCCESS);
    world
        .login(&user, &[&hotp.hotp_code(next + 1)])
        .assert_rc(PAM_SUCCESS);
}

#[test]
fn with_several_factors_the_first_is_asked_and_an_empty_answer_picks_another() {
    let world = world();
    let user = numbered(7);
    let first = world.enrol_hotp(&user, 6);
    let second = world.enrol_hotp(&user, 6);
    let n = first.next_counter();
    // The code of the second factor is not a code of the one asked.
    let code = second.hotp_code(n);
    let wrong = world.login(&user, &[&code]);
    wrong.assert_rc(PAM_MAXTRIES);
    assert!(
        wrong.prompts()[0]
            .starts_with("Verification code (test token; empty answer for other methods)"),
        "{wrong:#?}"
    );
    // An empty answer lists both; "2" asks the second one, whose code works.
    let chosen = world.login(&user, &["", "2", &second.hotp_code(n + 1)]);
    chosen.assert_rc(PAM_SUCCESS);
    let list = chosen.prompts()[1];
    assert!(
        list.contains("1) test token (hotp)") && list.contains("2) test token (hotp)"),
        "{list}"
    );
    assert_eq!(chosen.messages[1].style, "prompt_echo_on", "{chosen:#?}");
    world
        .login(&user, &[&first.hotp_code(n + 1)])
        .assert_rc(PAM_SUCCESS);
}

#[test]
fn resync_from_two_consecutive_codes_brings_a_token_back_in_step() {
    let world = world();
    let user = numbered(8);
    let token = world.enrol_hotp(&user, 6);
    let far = token.next_counter() + 200;
    // Pressed 200 times without logging in: past the look-ahead window.
    world
        .login(&user, &[&token.hotp_code(far)])
        .assert_rc(PAM_MAXTRIES);

    let not_consecutive = world.mfactl(
        &user,
        &[
            "resync",
            &token.id,
            &token.hotp_code(far),
            &token.hotp_code(far + 2),
        ],
    );
    assert_eq!(
        not_consecutive.code(),
        Some(4),
        "{}",
        not_consecutive.describe()
    );
    assert!(
        not_consecutive.stderr.contains("unchanged"),
        "{}",
        not_consecutive.describe()
    );

    // An admin resyncs it for the user.
    let admin = users::root();
    let done = world.mfactl(
        &admin,
        &[
            "resync",
            "--user",
            &user.name,
            &token.id,
            &token.hotp_code(far),
            &token.hotp_code(far + 1),
        ],
    );
    assert_eq!(done.code(), Some(0), "{}", done.describe());
    // The two codes are used up; the next one logs in.
    world
        .login(&user, &[&token.hotp_code(far + 1)])
        .assert_rc(PAM_MAXTRIES);
    world
        .login(&user, &[&token.hotp_code(far + 2)])
        .assert_rc(PAM_SUCCESS);
    // Another user cannot resync it.
    let other = world.mfactl(
        &numbered(9),
        &[
            "resync",
            &token.id,
            &token.hotp_code(far + 5),
            &token.hotp_code(far + 6),
        ],
    );
    assert_ne!(other.code(), Some(0), "{}", other.describe());
}
