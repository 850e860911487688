//! Screen lockers (issue 12): a PAM client running as the user — real
//! libpam and pam_mfa.so in a process of the user's uid — unlocks only its
//! own account. Nothing else it says is believed: no bypass from the
//! address it claims, no trusted device, no enrolment at the lock screen;
//! its wrong codes count toward the same lockout. `[policy] unlock =
//! "never"` leaves the lock screen to the password. Codes from oathtool.

use mfa_tests::daemon::DaemonConfig;
use mfa_tests::pam::{Login, PamResult, LOCKED, PAM_AUTH_ERR, PAM_MAXTRIES, PAM_SUCCESS};
use mfa_tests::users::{self, TestUser};
use mfa_tests::World;

const OFFICE: &str =
    "[bypass]\nenabled = true\n\n[[bypass.rule]]\nname = \"office\"\nnetwork = \"192.0.2.0/24\"\n";

/// `user`'s locker (`service`, claiming to come from `rhost`) unlocking
/// `account` with `answers`.
fn unlock(
    world: &World,
    user: &TestUser,
    account: &str,
    rhost: &str,
    answers: &[&str],
) -> PamResult {
    let mut login = Login::new("swaylock", account, answers);
    login.rhost = (!rhost.is_empty()).then(|| rhost.to_string());
    login.tty = Some(":0".into());
    login.as_user = Some(user.clone());
    world.pam.mfa("swaylock", world.address(), "timeout=5");
    login.run(&world.pam)
}

fn world(lockout: u32) -> World {
    World::with_config(&DaemonConfig {
        require: "force".into(),
        enrol_at_login: true,
        lockout_max_failures: lockout,
        max_tries: 1,
        policy_tables: OFFICE.into(),
        ..DaemonConfig::default()
    })
}

#[test]
fn a_locker_running_as_the_user_unlocks_with_a_code_and_no_bypass() {
    let world = world(10);
    let alice = users::named("alice");
    let token = world.enrol_hotp(&alice, 6);
    let next = token.next_counter();
    // From the office a root login is not asked; the locker says it is
    // there too, and is asked anyway.
    let mut office = Login::new("sshd", "alice", &[]);
    office.rhost = Some("192.0.2.7".into());
    world.pam.mfa("sshd", world.address(), "timeout=5");
    office.run(&world.pam).assert_rc(PAM_SUCCESS);
    let unlocked = unlock(
        &world,
        &alice,
        "alice",
        "192.0.2.7",
        &[&token.hotp_code(next)],
    );
    unlocked.assert_rc(PAM_SUCCESS);
    assert!(
        unlocked
            .prompts()
            .iter()
            .any(|p| p.contains("Verification code")),
        "{unlocked:#?}"
    );
    let log = world.daemon.log();
    let start = log
        .lines()
        .find(|l| l.contains("login start user=alice service=unlock"))
        .unwrap_or_else(|| panic!("no unlock start in:\n{log}"));
    assert!(
        start.contains(&format!("caller_uid={}", alice.uid))
            && start.contains("client_service=swaylock")
            && !start.contains("rhost="),
        "{start}"
    );
    assert!(
        log.lines().any(
            |l| l.starts_with("mfad: login allow user=alice service=unlock")
                && !l.contains("bypass")
        ),
        "{log}"
    );
}

#[test]
fn a_locker_cannot_start_a_login_for_anyone_else() {
    let world = world(10);
    let (alice, bob) = (users::named("alice"), users::named("bob"));
    let token = world.enrol_hotp(&bob, 6);
    let refused = unlock(
        &world,
        &alice,
        "bob",
        "",
        &[&token.hotp_code(token.next_counter())],
    );
    refused.assert_rc(PAM_AUTH_ERR);
    assert!(refused.prompts().is_empty(), "asked nothing: {refused:#?}");
    assert!(
        !world.daemon.log().contains("login start user=bob"),
        "no login of bob was started"
    );
    // Bob's code is still good: nothing was checked or spent.
    let mut root = Login::new("sshd", "bob", &[&token.hotp_code(token.next_counter())]);
    root.rhost = Some("203.0.113.9".into());
    world.pam.mfa("sshd", world.address(), "timeout=5");
    root.run(&world.pam).assert_rc(PAM_SUCCESS);
}

#[test]
fn wrong_codes_at_the_lock_screen_count_toward_the_same_lockout() {
    let world = world(2);
    let carol = users::named("carol");
    let token = world.enrol_hotp(&carol, 6);
    unlock(&world, &carol, "carol", "", &["000000"]).assert_rc(PAM_MAXTRIES);
    let locked = unlock(&world, &carol, "carol", "", &["000001"]);
    assert!(
        locked.errors().iter().any(|e| e.contains(LOCKED)),
        "the second wrong code locks her out: {locked:#?}"
    );
    // A login at the console is locked out too, even with the right code.
    let mut console = Login::new("login", "carol", &[&token.hotp_code(token.next_counter())]);
    console.tty = Some("tty1".into());
    world.pam.mfa("login", world.address(), "timeout=5");
    let refused = console.run(&world.pam);
    refused.assert_rc(PAM_AUTH_ERR);
    assert!(
        refused.errors().iter().any(|e| e.contains(LOCKED)),
        "{refused:#?}"
    );
}

#[test]
fn nothing_is_set_up_at_a_lock_screen_and_unlock_never_leaves_it_to_the_password() {
    let world = world(10);
    let dave = users::named("dave");
    // Forced, no factor: a root login would set one up; the locker is refused.
    let refused = unlock(&world, &dave, "dave", "", &[]);
    refused.assert_rc(PAM_AUTH_ERR);
    assert!(refused.prompts().is_empty(), "no enrolment: {refused:#?}");
    assert!(
        world
            .daemon
            .log()
            .contains("nothing is set up at a lock screen")
            || world.daemon.log().contains("reason=not-enrolled"),
        "{}",
        world.daemon.log()
    );
    // `policy explain --service unlock`: what a lock screen meets.
    let forced = world.explain("dave", "unlock", "", None);
    assert_eq!(forced["class"], "unlock", "{forced}");
    assert_eq!(forced["outcome"], "refuse", "{forced}");
    assert_eq!(world.explain("dave", "sshd", "", None)["outcome"], "enrol");
    // unlock = "never": the lock screen asks no second factor.
    let alice = users::named("alice");
    world.enrol_hotp(&alice, 6);
    let config = std::fs::read_to_string(world.daemon.config_path()).expect("config");
    std::fs::write(
        world.daemon.config_path(),
        config.replacen("[policy]\n", "[policy]\nunlock = \"never\"\n", 1),
    )
    .expect("write config");
    world
        .mfactl(&users::root(), &["policy", "reload"])
        .assert_success("policy reload");
    let skipped = unlock(&world, &alice, "alice", "", &[]);
    skipped.assert_rc(PAM_SUCCESS);
    assert!(skipped.prompts().is_empty(), "{skipped:#?}");
    assert!(world.daemon.log().contains("reason=unlock-not-asked"));

    let locked = world.explain("alice", "unlock", "192.0.2.7", None);
    assert_eq!(locked["class"], "unlock", "{locked}");
    assert_eq!(locked["outcome"], "skip", "{locked}");
    assert_eq!(locked["reason"], "unlock-not-asked", "{locked}");
}
