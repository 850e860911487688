//! A fresh proof of a factor before a change (`[policy] step_up`, on as
//! shipped): a user who has a factor proves one through mfactl — a code
//! from oathtool, or a recovery code — before adding or removing a factor
//! or making recovery codes. Without the proof nothing changes; the proof
//! spends its code like a login, counts wrong answers like one, and is good
//! for that one mfactl run only.

use mfa_tests::daemon::DaemonConfig;
use mfa_tests::otp::Totp;
use mfa_tests::pam::PAM_SUCCESS;
use mfa_tests::process::Finished;
use mfa_tests::users::{self, TestUser};
use mfa_tests::World;
use serde_json::Value;

fn world() -> World {
    World::with_config(&DaemonConfig {
        step_up: true,
        ..DaemonConfig::default()
    })
}

fn factors(world: &World, user: &TestUser) -> Vec<Value> {
    mfa_tests::probe::list_factors(world.address(), user)
}

/// Refused for want of a proof: mfactl's access-denied exit, and why.
fn assert_unproven(out: &Finished) {
    assert_eq!(out.code(), Some(5), "{}", out.describe());
    assert!(
        out.stderr.contains("fresh proof of one of your factors"),
        "{}",
        out.describe()
    );
}

/// Enrol a TOTP factor with `totp`'s secret through mfactl, confirmed
/// with its current code; `proof` goes to mfactl's stdin.
fn enrol_second_totp(world: &World, user: &TestUser, totp: &Totp, proof: &str) -> Finished {
    world.mfactl_with_input(
        user,
        &[
            "enrol",
            "totp",
            "--secret",
            &totp.secret,
            "--no-qr",
            "--code",
            &totp.code(0),
        ],
        proof,
    )
}

#[test]
fn a_second_factor_needs_a_code_of_the_first_and_spends_it() {
    let world = world();
    let alice = users::named("alice");
    // The first factor needs no proof: there is nothing to prove.
    let phone = Totp::default_params();
    world.enrol_totp(&alice, &phone);

    let tablet = Totp::default_params();
    let wrong = phone.wrong_code(2);
    let refused = enrol_second_totp(&world, &alice, &tablet, &format!("{wrong}\n"));
    assert_eq!(refused.code(), Some(5), "{}", refused.describe());
    assert!(
        refused.stderr.contains("This change needs a fresh proof")
            && refused.stderr.contains("Wrong code"),
        "mfad's texts reach the user: {}",
        refused.describe()
    );
    assert_eq!(factors(&world, &alice).len(), 1, "nothing was added");

    let proof = phone.code(1);
    let added = enrol_second_totp(&world, &alice, &tablet, &format!("{proof}\n"));
    added.assert_success("enrol with a proof");
    let now = factors(&world, &alice);
    assert_eq!(now.len(), 2, "{now:?}");
    assert!(now.iter().all(|f| f["confirmed"] == true), "{now:?}");

    // The proof was a login's worth of the phone's code: it is spent.
    assert_ne!(world.login(&alice, &[&proof]).rc, PAM_SUCCESS);
    let audit = world.mfactl(&users::root(), &["--json", "audit", "--user", "alice"]);
    audit.assert_success("audit");
    let rows: Vec<Value> = serde_json::from_str(&audit.stdout).expect("audit JSON");
    let step_up = |outcome: &str| {
        rows.iter()
            .any(|r| r["service"] == "step-up" && r["outcome"] == outcome)
    };
    assert!(
        step_up("retry") && step_up("allow"),
        "the wrong answer counted, the right one allowed: {}",
        audit.describe()
    );
    assert!(!audit.stdout.contains(&proof), "no code in the audit");
}

#[test]
fn recovery_codes_and_removal_need_a_proof_and_a_recovery_code_gives_one() {
    let world = world();
    let bob = users::named("bob");
    let phone = Totp::default_params();
    let enrolled = world.enrol_totp(&bob, &phone);

    assert_unproven(&world.mfactl(&bob, &["--json", "recovery-codes"]));
    let made = world.mfactl_with_input(
        &bob,
        &["--json", "recovery-codes"],
        &format!("{}\n", phone.code(1)),
    );
    made.assert_success("recovery codes with a proof");
    let doc: Value = serde_json::from_str(made.stdout.trim()).expect("JSON");
    let codes: Vec<String> = doc["recovery_codes"]
        .as_array()
        .expect("codes")
        .iter()
        .map(|c| c.as_str().expect("a code").to_string())
        .collect();

    // The proof was good for that run alone.
    assert_unproven(&world.mfactl(&bob, &["remove", &enrolled.id, "--yes"]));
    assert_eq!(factors(&world, &bob).len(), 1);

    let removed = world.mfactl_with_input(
        &bob,
        &["remove", &enrolled.id, "--yes"],
        &format!("{}\n", codes[0]),
    );
    removed.assert_success("remove with a recovery code as the proof");
    assert!(factors(&world, &bob).is_empty());
    // The recovery code was used up by the proof.
    let again = world.mfactl_with_input(&bob, &["--json", "recovery-codes"], "");
    again.assert_success("no factor left: nothing to prove");
}

#[test]
fn an_admin_changes_other_users_without_a_proof_and_off_means_off() {
    let world = world();
    let carol = users::named("carol");
    world.enrol_hotp(&carol, 6);
    // An admin's changes to another account need nothing of its owner's.
    world
        .mfactl(&users::root(), &["reset", "carol", "--yes"])
        .assert_success("reset by root");
    assert!(factors(&world, &carol).is_empty());

    let relaxed = World::with_config(&DaemonConfig::default());
    let dave = users::named("dave");
    relaxed.enrol_totp(&dave, &Totp::default_params());
    enrol_second_totp(&relaxed, &dave, &Totp::default_params(), "")
        .assert_success("[policy] step_up = false asks for no proof");
}
