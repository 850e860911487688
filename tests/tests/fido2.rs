//! USB security keys end to end (issue 9): `mfactl enrol fido2` and logins
//! through real libpam (pam-driver, the built module), mfad on a private
//! bus driving the real, unmodified ctap-hid-fido2, which talks to a
//! software authenticator someone else wrote (soft-fido2, in
//! `mfa-fakekey`) over a FUSE file that hidapi opens like /dev/hidraw0.
//! What stays untested here is listed in tests/fakekey/README.md (kernel
//! hidraw, USB, udev, a physical touch).

use mfa_tests::daemon::DaemonConfig;
use mfa_tests::fakekey::{FakeKey, KeyRing};
use mfa_tests::otp::Totp;
use mfa_tests::pam::{Login, PamResult, PAM_AUTH_ERR, PAM_MAXTRIES, PAM_SUCCESS};
use mfa_tests::process::run;
use mfa_tests::users::{self, command_as, TestUser};
use mfa_tests::World;
use serde_json::Value;
use std::time::{Duration, Instant};

const RP: &str = "pam://testhost";
const TOUCH: &str = "Touch your security key.";
const PIN_PROMPT: &str = "PIN of your security key: ";

fn world_with_key(key: &FakeKey) -> World {
    World::with_config(&DaemonConfig {
        policy_tables: key.mfad_table(RP),
        ..DaemonConfig::default()
    })
}

/// `mfactl ARGS` as `user`, with `input` on stdin.
fn mfactl(
    world: &World,
    user: &TestUser,
    args: &[&str],
    input: &str,
) -> mfa_tests::process::Finished {
    let mut cmd = command_as(user, &mfa_tests::bins::mfactl());
    cmd.arg("--bus-address").arg(world.address()).args(args);
    run("mfactl", &mut cmd, input, mfa_tests::QUICK)
}

/// Enrol `user`'s key with `mfactl enrol fido2`; its factor id.
fn enrol(world: &World, user: &TestUser, extra: &[&str], input: &str) -> String {
    enrol_as(world, user, "yubi", extra, input)
}

/// [`enrol`] with the label `label`.
fn enrol_as(world: &World, user: &TestUser, label: &str, extra: &[&str], input: &str) -> String {
    let mut args = vec!["--json", "enrol", "fido2", "--label", label];
    args.extend_from_slice(extra);
    let out = mfactl(world, user, &args, input);
    out.assert_success("mfactl enrol fido2");
    let factor: Value = out
        .stdout
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find(|v| v.get("factor").is_some())
        .unwrap_or_else(|| panic!("no factor line: {}", out.describe()));
    assert_eq!(factor["factor"]["kind"], "fido2", "{factor}");
    factor["factor"]["id"].as_str().expect("id").to_string()
}

fn login(world: &World, user: &TestUser, answers: &[&str]) -> PamResult {
    world.login(user, answers)
}

fn counter(world: &World, id: &str) -> u64 {
    mfa_tests::store::snapshot(&world.daemon.state_dir()).counter(id)
}

fn failures(world: &World, user: &TestUser) -> u32 {
    mfa_tests::store::snapshot(&world.daemon.state_dir()).failures(&user.name)
}

/// Poll the key until `done` (the fake key reports its state; nothing here
/// waits for time to pass).
fn until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + mfa_tests::QUICK;
    while !done() {
        assert!(Instant::now() < deadline, "never: {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn a_key_is_enrolled_then_logs_in_with_a_touch_and_its_counter_goes_up() {
    let key = FakeKey::start();
    let world = world_with_key(&key);
    let alice = users::named("alice");
    let id = enrol(&world, &alice, &[], "");
    assert_eq!(key.status("credentials"), "1");
    let listed = mfactl(&world, &alice, &["--json", "list"], "");
    listed.assert_success("mfactl list");
    assert!(
        listed.stdout.contains("\"fido2\"") && listed.stdout.contains("yubi"),
        "{}",
        listed.describe()
    );

    let before = counter(&world, &id);
    let first = login(&world, &alice, &[]);
    first.assert_rc(PAM_SUCCESS);
    assert!(first.prompts().is_empty(), "{first:#?}");
    let second = login(&world, &alice, &[]);
    second.assert_rc(PAM_SUCCESS);
    let after = counter(&world, &id);
    assert!(after >= before + 2, "counter {before} -> {after}");
    assert_eq!(
        key.status("up_requests"),
        "3",
        "enrolment and two logins each took a touch"
    );
    let log = world.daemon.log();
    assert!(log.contains("method=fido2"), "{log}");
}

#[test]
fn the_user_is_told_to_touch_the_key_while_it_waits() {
    let key = FakeKey::start_with(&["--presence", "delay:1500:accept"]);
    let world = world_with_key(&key);
    let alice = users::named("alice");
    key.control("presence accept");
    enrol(&world, &alice, &[], "");
    key.control("presence delay 1500 accept");
    let result = login(&world, &alice, &[]);
    result.assert_rc(PAM_SUCCESS);
    assert_eq!(result.infos(), vec![TOUCH], "{result:#?}");
}

#[test]
fn a_key_whose_counter_does_not_go_up_is_refused_as_possibly_cloned() {
    let key = FakeKey::start();
    let world = world_with_key(&key);
    let alice = users::named("alice");
    enrol(&world, &alice, &[], "");
    login(&world, &alice, &[]).assert_rc(PAM_SUCCESS);
    login(&world, &alice, &[]).assert_rc(PAM_SUCCESS);
    // A clone whose counter is behind: it reports 1 again.
    key.control("counter set 0");
    let cloned = login(&world, &alice, &[]);
    cloned.assert_rc(PAM_AUTH_ERR);
    assert!(
        cloned
            .errors()
            .iter()
            .any(|e| e.contains("refusal recorded")),
        "{cloned:#?}"
    );
    assert!(world.daemon.log().contains("reason=possibly-cloned-key"));
    assert_eq!(failures(&world, &alice), 1, "counted as a failure");
    // A key that never moves its counter either.
    key.control("counter normal");
    login(&world, &alice, &[]).assert_rc(PAM_AUTH_ERR);
    key.control("counter set 100");
    login(&world, &alice, &[]).assert_rc(PAM_SUCCESS);
    key.control("counter freeze");
    login(&world, &alice, &[]).assert_rc(PAM_SUCCESS);
    login(&world, &alice, &[]).assert_rc(PAM_AUTH_ERR);
}

#[test]
fn no_touch_is_refused_and_not_counted_against_the_user() {
    let key = FakeKey::start();
    let world = world_with_key(&key);
    let alice = users::named("alice");
    enrol(&world, &alice, &[], "");
    for (answer, says) in [("deny", "no touch"), ("timeout", "no touch in time")] {
        key.control(&format!("presence {answer}"));
        let refused = login(&world, &alice, &[]);
        refused.assert_rc(PAM_AUTH_ERR);
        assert!(
            refused.errors().iter().any(|e| e.contains(says)),
            "{answer}: {refused:#?}"
        );
    }
    assert_eq!(failures(&world, &alice), 0);
    key.control("presence accept");
    login(&world, &alice, &[]).assert_rc(PAM_SUCCESS);
}

#[test]
fn a_key_with_a_pin_asks_for_it_and_a_wrong_or_blocked_pin_is_refused() {
    // PINs that cannot turn up by chance inside a hex factor id in the log.
    let key = FakeKey::start_with(&["--pin", "pin-right", "--max-pin-retries", "2"]);
    let world = world_with_key(&key);
    let alice = users::named("alice");
    enrol(
        &world,
        &alice,
        &["--pin-stdin", "--verification"],
        "pin-right\n",
    );
    let right = login(&world, &alice, &["pin-right"]);
    right.assert_rc(PAM_SUCCESS);
    assert_eq!(right.prompts(), vec![PIN_PROMPT], "{right:#?}");
    let wrong = login(&world, &alice, &["pin-wrong"]);
    wrong.assert_rc(PAM_AUTH_ERR);
    assert!(
        wrong.errors().iter().any(|e| e.contains("wrong PIN")),
        "{wrong:#?}"
    );
    login(&world, &alice, &["pin-worse"]).assert_rc(PAM_AUTH_ERR);
    let blocked = login(&world, &alice, &["pin-right"]);
    blocked.assert_rc(PAM_AUTH_ERR);
    assert!(
        blocked.errors().iter().any(|e| e.contains("blocked")),
        "{blocked:#?}"
    );
    world
        .daemon
        .assert_log_free_of(&["pin-right", "pin-wrong", "pin-worse"]);
}

#[test]
fn a_key_unplugged_mid_login_fails_that_login_and_the_next_one_works() {
    let key = FakeKey::start();
    let world = world_with_key(&key);
    let alice = users::named("alice");
    enrol(&world, &alice, &[], "");
    key.control("presence delay 20000 accept");
    let pending = world.prepare(&alice, &[]).spawn(&world.pam);
    until("the key is asked for a touch", || {
        key.status("up_requests") == "2"
    });
    key.control("unplug");
    let lost = pending.finish();
    lost.assert_rc(PAM_AUTH_ERR);
    assert!(
        lost.errors().iter().any(|e| e.contains("security key")),
        "{lost:#?}"
    );
    // Unplugged: nothing to ask, said at once.
    let absent = login(&world, &alice, &[]);
    absent.assert_rc(PAM_AUTH_ERR);
    assert!(
        absent
            .errors()
            .iter()
            .any(|e| e.contains("No security key is plugged in")),
        "{absent:#?}"
    );
    key.control("plug");
    key.control("presence accept");
    login(&world, &alice, &[]).assert_rc(PAM_SUCCESS);
}

#[test]
fn a_second_login_on_a_busy_key_is_told_so_and_the_first_goes_on() {
    let key = FakeKey::start();
    let world = world_with_key(&key);
    let alice = users::named("alice");
    enrol(&world, &alice, &[], "");
    key.control("presence delay 3000 accept");
    let first = world.prepare(&alice, &[]).spawn(&world.pam);
    until("the key is asked for a touch", || {
        key.status("up_requests") == "2"
    });
    let second = login(&world, &alice, &[]);
    second.assert_rc(PAM_AUTH_ERR);
    assert!(
        second
            .errors()
            .iter()
            .any(|e| e.contains("in use by another login")),
        "{second:#?}"
    );
    first.finish().assert_rc(PAM_SUCCESS);
}

#[test]
fn a_dropped_login_gives_the_key_back() {
    let key = FakeKey::start();
    let world = world_with_key(&key);
    let alice = users::named("alice");
    enrol(&world, &alice, &[], "");
    key.control("presence delay 1000 accept");
    let pending = world.prepare(&alice, &[]).spawn(&world.pam);
    until("the key is asked for a touch", || {
        key.status("up_requests") == "2"
    });
    drop(pending);
    until("mfad notices the client is gone", || {
        world.daemon.log().contains("reason=connection-closed")
    });
    key.control("presence accept");
    // ctap-hid-fido2 cannot cancel a request in flight: the key is free
    // once it has answered the abandoned one (within its delay). Until then
    // a login is told the key is busy — never more than that.
    let mut busy = 0;
    until("the key is free again", || {
        let next = login(&world, &alice, &[]);
        if next.rc == PAM_SUCCESS {
            return true;
        }
        assert!(
            next.errors()
                .iter()
                .any(|e| e.contains("in use by another login")),
            "{next:#?}"
        );
        busy += 1;
        false
    });
    assert!(busy < 1000, "{busy} busy answers");
}

#[test]
fn a_key_is_never_offered_to_a_remote_login() {
    let key = FakeKey::start();
    let world = world_with_key(&key);
    let (alice, bob) = (users::named("alice"), users::named("bob"));
    enrol(&world, &alice, &[], "");
    // Only a key, from another host: refused, never offered another factor.
    let mut remote = Login::new(mfa_tests::world::SERVICE, &alice.name, &[]);
    remote.rhost = Some("192.0.2.7".into());
    let refused = remote.run(&world.pam);
    refused.assert_rc(PAM_AUTH_ERR);
    assert!(refused.prompts().is_empty(), "{refused:#?}");
    assert_eq!(key.status("up_requests"), "1", "the key was not touched");
    let e = world.explain(&alice.name, "sshd", "", None);
    assert_eq!(e["reason"], "no-usable-factor", "{e}");
    assert!(
        e["lines"]
            .to_string()
            .contains("fido2 factors are not offered: an SSH login"),
        "{e}"
    );
    assert!(
        world
            .daemon
            .log()
            .contains("not_local=\"the login comes from 192.0.2.7\""),
        "the audit says why the key was not offered: {}",
        world.daemon.log()
    );
    // At the machine, explain says why the key is offered (and that the
    // process tree, which it has not got, is assumed).
    let here = world.explain(&alice.name, "login", "", None);
    assert_eq!(here["outcome"], "ask", "{here}");
    assert!(
        here["lines"]
            .to_string()
            .contains("fido2 factors are offered: the login runs at this machine")
            && here["lines"]
                .to_string()
                .contains("assumed: policy explain"),
        "{here}"
    );
    // sudo in an SSH session: a PAM client with sshd among its ancestors.
    world
        .pam
        .mfa("sudo", world.address(), mfa_tests::world::OPTIONS);
    let at_console = Login::new("sudo", &alice.name, &[]).run(&world.pam);
    at_console.assert_rc(PAM_SUCCESS);
    assert_eq!(
        key.status("up_requests"),
        "2",
        "sudo at the machine uses the key"
    );
    let under_sshd = Login::new("sudo", &alice.name, &[]).run_under(&world.pam, "sshd");
    under_sshd.assert_rc(PAM_AUTH_ERR);
    assert!(
        under_sshd
            .errors()
            .iter()
            .any(|e| e.contains("can be used for this login")),
        "{under_sshd:#?}"
    );
    assert!(
        world.daemon.log().contains("reason=no-usable-factor"),
        "{}",
        world.daemon.log()
    );
    assert_eq!(key.status("up_requests"), "2", "the key was not touched");
    // A key and a code: over SSH only the code is asked.
    let totp = Totp::default_params();
    world.enrol_totp(&bob, &totp);
    enrol(&world, &bob, &[], "");
    let mut ssh = Login::new(mfa_tests::world::SERVICE, &bob.name, &[&totp.code(1)]);
    ssh.rhost = Some("192.0.2.7".into());
    let asked = ssh.run(&world.pam);
    asked.assert_rc(PAM_SUCCESS);
    assert_eq!(asked.prompts(), vec!["Verification code: "], "{asked:#?}");
    // At the machine, the key (the preferred factor: asked first here) works.
    let out = mfactl(&world, &bob, &["--json", "list"], "");
    let listed: Vec<Value> = serde_json::from_str(&out.stdout).expect("list");
    let key_id = listed
        .iter()
        .find(|f| f["kind"] == "fido2")
        .and_then(|f| f["id"].as_str())
        .expect("key factor")
        .to_string();
    mfactl(&world, &bob, &["prefer", &key_id], "").assert_success("prefer");
    login(&world, &bob, &[]).assert_rc(PAM_SUCCESS);
}

#[test]
fn a_touch_of_the_key_is_the_proof_a_change_needs() {
    let key = FakeKey::start();
    let world = World::with_config(&DaemonConfig {
        policy_tables: key.mfad_table(RP),
        step_up: true,
        ..DaemonConfig::default()
    });
    let alice = users::named("alice");
    let id = enrol(&world, &alice, &[], "");
    let before = counter(&world, &id);
    let made = mfactl(&world, &alice, &["--json", "recovery-codes"], "");
    made.assert_success("recovery codes after a touch");
    assert!(made.stderr.contains(TOUCH), "{}", made.describe());
    assert_eq!(
        key.status("up_requests"),
        "2",
        "the enrolment and the proof each took a touch"
    );
    assert!(counter(&world, &id) > before, "the proof moved the counter");
}

/// The factor id the daemon's last `login allow` line names.
fn allowed_factor(world: &World) -> String {
    let log = world.daemon.log();
    let line = log
        .lines()
        .rev()
        .find(|l| l.contains("login allow") && l.contains("method=fido2"))
        .unwrap_or_else(|| panic!("no fido2 allow line: {log}"));
    line.split_whitespace()
        .find_map(|kv| kv.strip_prefix("factor="))
        .unwrap_or_else(|| panic!("no factor in {line}"))
        .to_string()
}

#[test]
fn a_user_with_two_keys_logs_in_with_whichever_is_plugged_in() {
    let ring = KeyRing::start(2);
    let (first_key, second_key) = (&ring.keys[0], &ring.keys[1]);
    let world = World::with_config(&DaemonConfig {
        policy_tables: ring.mfad_table(RP),
        ..DaemonConfig::default()
    });
    let (alice, root) = (users::named("alice"), users::root());
    second_key.control("unplug");
    let first = enrol_as(&world, &alice, "main", &[], "");
    first_key.control("unplug");
    second_key.control("plug");
    let second = enrol_as(&world, &alice, "spare", &[], "");
    assert_ne!(first, second);
    assert_eq!(first_key.status("credentials"), "1");
    assert_eq!(second_key.status("credentials"), "1");

    // Only the spare is plugged in (the main key, enrolled first, is the
    // one asked): the spare answers, and its factor moves.
    let (before, main_before) = (counter(&world, &second), counter(&world, &first));
    let spare = login(&world, &alice, &[]);
    spare.assert_rc(PAM_SUCCESS);
    assert!(spare.prompts().is_empty(), "{spare:#?}");
    assert_eq!(allowed_factor(&world), second);
    assert!(
        counter(&world, &second) > before,
        "the spare's counter moved"
    );
    assert_eq!(
        counter(&world, &first),
        main_before,
        "the main key's did not"
    );

    // Only the main key.
    second_key.control("unplug");
    first_key.control("plug");
    login(&world, &alice, &[]).assert_rc(PAM_SUCCESS);
    assert_eq!(allowed_factor(&world), first);

    // Both: one touch, on the first key that holds a credential.
    second_key.control("plug");
    let (up_first, up_second) = (
        first_key.status("up_requests"),
        second_key.status("up_requests"),
    );
    login(&world, &alice, &[]).assert_rc(PAM_SUCCESS);
    let touches = |key: &FakeKey, was: &str| {
        key.status("up_requests").parse::<u32>().expect("count")
            - was.parse::<u32>().expect("count")
    };
    assert_eq!(
        touches(first_key, &up_first) + touches(second_key, &up_second),
        1,
        "one touch for one login"
    );

    // An admin sees both keys.
    let listed = mfactl(&world, &root, &["--json", "user", &alice.name], "");
    listed.assert_success("mfactl user alice");
    let factors: Vec<Value> = serde_json::from_str(&listed.stdout).expect("json");
    let keys: Vec<(&str, &str)> = factors
        .iter()
        .filter(|f| f["kind"] == "fido2")
        .map(|f| {
            (
                f["id"].as_str().unwrap_or(""),
                f["label"].as_str().unwrap_or(""),
            )
        })
        .collect();
    assert_eq!(
        keys,
        vec![(first.as_str(), "main"), (second.as_str(), "spare")],
        "{}",
        listed.describe()
    );

    // The main key removed: it no longer logs in (and is not touched), the
    // spare still does.
    mfactl(&world, &alice, &["remove", &first, "--yes"], "").assert_success("remove");
    let listed = mfactl(&world, &alice, &["--json", "list"], "");
    assert!(
        !listed.stdout.contains(&first) && listed.stdout.contains(&second),
        "{}",
        listed.describe()
    );
    second_key.control("unplug");
    let up = first_key.status("up_requests");
    let removed = login(&world, &alice, &[]);
    removed.assert_rc(PAM_AUTH_ERR);
    assert_eq!(
        first_key.status("up_requests"),
        up,
        "the removed key was not asked for a touch"
    );
    assert!(
        world
            .daemon
            .log()
            .contains("holds no credential of this account"),
        "{}",
        world.daemon.log()
    );
    second_key.control("plug");
    first_key.control("unplug");
    login(&world, &alice, &[]).assert_rc(PAM_SUCCESS);
    assert_eq!(allowed_factor(&world), second);
}

/// How many of the daemon's audit lines give `reason`.
fn audited(world: &World, reason: &str) -> usize {
    world
        .daemon
        .log()
        .lines()
        .filter(|l| {
            l.contains(&format!("reason={reason} ")) || l.ends_with(&format!("reason={reason}"))
        })
        .count()
}

#[test]
fn a_replayed_assertion_is_refused_and_audited() {
    let key = FakeKey::start();
    let world = world_with_key(&key);
    let alice = users::named("alice");
    let id = enrol(&world, &alice, &[], "");
    login(&world, &alice, &[]).assert_rc(PAM_SUCCESS);
    let (moved_to, touches) = (counter(&world, &id), key.status("up_requests"));
    // The key answers with the assertion it made for the last login: the
    // old challenge, the old counter, no touch.
    key.control("assertion replay");
    // Refused at every try (each one a new challenge, the same old answer).
    let replayed = login(&world, &alice, &[]);
    replayed.assert_rc(PAM_MAXTRIES);
    assert_eq!(counter(&world, &id), moved_to, "the factor did not move");
    assert_eq!(key.status("up_requests"), touches, "nobody touched the key");
    assert!(failures(&world, &alice) >= 1, "counted as a failure");
    assert!(
        audited(&world, "bad-signature") >= 1,
        "{}",
        world.daemon.log()
    );
    assert_eq!(audited(&world, "wrong-relying-party"), 0);
    // The same key, behaving again, logs in.
    key.control("assertion normal");
    login(&world, &alice, &[]).assert_rc(PAM_SUCCESS);
    assert!(counter(&world, &id) > moved_to);
}

#[test]
fn an_assertion_for_another_relying_party_is_refused_and_audited() {
    let key = FakeKey::start();
    let world = world_with_key(&key);
    let alice = users::named("alice");
    let id = enrol(&world, &alice, &[], "");
    let before = counter(&world, &id);
    // A validly signed assertion, touch and counter included, for
    // "evil.example" rather than this host's RP ID.
    key.control("assertion other-rp");
    let touches: u32 = key.status("up_requests").parse().expect("count");
    let other = login(&world, &alice, &[]);
    other.assert_rc(PAM_MAXTRIES);
    assert!(
        key.status("up_requests").parse::<u32>().expect("count") > touches,
        "the key was touched: only the relying party is wrong"
    );
    assert_eq!(counter(&world, &id), before, "the factor did not move");
    assert!(failures(&world, &alice) >= 1, "counted as a failure");
    assert!(
        audited(&world, "wrong-relying-party") >= 1,
        "{}",
        world.daemon.log()
    );
    assert_eq!(
        audited(&world, "bad-signature"),
        0,
        "its signature is valid"
    );
    key.control("assertion normal");
    login(&world, &alice, &[]).assert_rc(PAM_SUCCESS);
}

#[test]
fn a_pin_goes_only_to_the_key_that_holds_the_credential() {
    // hidraw0: someone else's key, with its own PIN; hidraw1: alice's.
    let ring = KeyRing::start_with(&[&["--pin", "pin-other"], &["--pin", "pin-alice"]]);
    let (other_key, alices_key) = (&ring.keys[0], &ring.keys[1]);
    let world = World::with_config(&DaemonConfig {
        policy_tables: ring.mfad_table(RP),
        ..DaemonConfig::default()
    });
    let alice = users::named("alice");
    other_key.control("unplug");
    enrol(
        &world,
        &alice,
        &["--pin-stdin", "--verification"],
        "pin-alice\n",
    );
    other_key.control("plug");
    let retries = other_key.status("pin_retries");
    let result = login(&world, &alice, &["pin-alice"]);
    result.assert_rc(PAM_SUCCESS);
    assert_eq!(result.prompts(), vec![PIN_PROMPT], "{result:#?}");
    assert_eq!(
        other_key.status("pin_retries"),
        retries,
        "alice's PIN was never tried on the other key"
    );
    assert_eq!(other_key.status("up_requests"), "0", "nor was it touched");
    assert_eq!(alices_key.status("pin_retries"), "8");
}
