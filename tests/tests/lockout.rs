//! Lockout through real libpam: failures counted across logins, a locked
//! user refused with the same answer for right and wrong codes, the lockout
//! surviving a restart, and `mfactl unlock` ending it.

use mfa_tests::daemon::DaemonConfig;
use mfa_tests::otp::Totp;
use mfa_tests::pam::{LOCKED, PAM_AUTH_ERR, PAM_SUCCESS, PROMPT, PROMPT_AGAIN};
use mfa_tests::process::run;
use mfa_tests::users::{self, command_as};
use mfa_tests::World;

fn locking_world() -> World {
    World::with_config(&DaemonConfig {
        max_tries: 2,
        lockout_max_failures: 3,
        lockout_unlock_after: 0,
        ..DaemonConfig::default()
    })
}

#[test]
fn failures_across_logins_lock_until_an_admin_unlocks() {
    let mut world = locking_world();
    let alice = users::named("alice");
    let totp = Totp::default_params();
    world.enrol_totp(&alice, &totp);

    // Two failures in one login, the third in the next: locked.
    let first = world.login(&alice, &["000000", "000001"]);
    assert_eq!(first.prompts(), vec![PROMPT, PROMPT_AGAIN]);
    let second = world.login(&alice, &["000002"]);
    second.assert_rc(PAM_AUTH_ERR);
    assert_eq!(second.errors(), vec![LOCKED], "{second:#?}");

    // Right and wrong codes now get the same prompt, answer and message.
    let right = world.login(&alice, &[&totp.code(1)]);
    let wrong = world.login(&alice, &["123123"]);
    for r in [&right, &wrong] {
        r.assert_rc(PAM_AUTH_ERR);
        assert_eq!(r.prompts(), vec![PROMPT]);
        assert_eq!(r.errors(), vec![LOCKED]);
    }

    // A restart does not end it.
    world.daemon.stop();
    world.daemon.restart();
    let after_restart = world.login(&alice, &[&totp.code(1)]);
    after_restart.assert_rc(PAM_AUTH_ERR);
    assert_eq!(after_restart.errors(), vec![LOCKED]);

    // An admin does.
    let mut unlock = command_as(&users::root(), &mfa_tests::bins::mfactl());
    unlock.args(["--bus-address", world.address(), "--json", "users"]);
    let listed = run("mfactl users", &mut unlock, "", mfa_tests::QUICK);
    listed.assert_success("mfactl users");
    assert!(
        listed.stdout.contains("\"locked\": true"),
        "{}",
        listed.describe()
    );
    let mut unlock = command_as(&users::root(), &mfa_tests::bins::mfactl());
    unlock.args(["--bus-address", world.address(), "unlock", "alice"]);
    run("mfactl unlock", &mut unlock, "", mfa_tests::QUICK).assert_success("mfactl unlock");
    world.login(&alice, &[&totp.code(1)]).assert_rc(PAM_SUCCESS);
}

#[test]
fn only_admins_unlock() {
    let world = locking_world();
    let mut unlock = command_as(&users::named("bob"), &mfa_tests::bins::mfactl());
    unlock.args(["--bus-address", world.address(), "unlock", "alice"]);
    let refused = run("mfactl unlock", &mut unlock, "", mfa_tests::QUICK);
    assert_eq!(refused.code(), Some(5), "{}", refused.describe());
}
