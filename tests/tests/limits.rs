//! One user cannot hurt everyone (issue 8): a caller flooding mfad with
//! changes to their own account — enrolments, recovery-code batches,
//! resyncs, device revocations, levels — gets a burst, then one clear
//! `LimitReached` error saying when to try again; pending enrolments and
//! factors per user are capped; the store, the audit history and the log
//! stay small whatever the flood. So do the logins a user starts for
//! their own account (a screen locker's Login1.Start, Factors1.BeginStepUp),
//! while root's PAM clients are never held up by them. Calls through the
//! real bus as the users themselves (mfa-probe under setpriv).

use mfa_tests::daemon::DaemonConfig;
use mfa_tests::pam::PAM_SUCCESS;
use mfa_tests::probe;
use mfa_tests::users::{self, TestUser};
use mfa_tests::World;
use serde_json::Value;

const LIMIT: &str = "org.pam_mfa.Error.LimitReached";

fn flood(world: &World, user: &TestUser, what: &str, count: u32) -> Value {
    probe::call(world.address(), user, &["flood", what, &count.to_string()]).ok()
}

/// Rows of `user` in the audit history, as `mfactl audit` shows them.
fn audit_rows(world: &World, user: &TestUser) -> Vec<Value> {
    let out = world.mfactl(
        &users::root(),
        &["--json", "audit", "--user", &user.name, "--limit", "100000"],
    );
    out.assert_success("mfactl audit");
    serde_json::from_str(&out.stdout).expect("audit JSON")
}

fn pending_in_store(world: &World) -> usize {
    let snapshot = mfa_tests::store::snapshot(&world.daemon.state_dir());
    snapshot.confirmed.values().filter(|c| !**c).count()
}

#[test]
fn an_enrolment_flood_gets_a_burst_then_one_clear_error_and_grows_nothing() {
    let world = World::start();
    for user in [users::nobody(), users::named("alice")] {
        let result = flood(&world, &user, "begin", 500);
        // The default [limits]: a burst of 10 changes.
        assert_eq!(result["ok"], 10, "{}: {result}", user.name);
        let refused = &result["errors"][LIMIT];
        assert_eq!(refused["count"], 490, "{}: {result}", user.name);
        let message = refused["message"].as_str().expect("message");
        assert!(
            message.contains("too many changes") && message.contains("try again in"),
            "{message}"
        );
        assert_eq!(
            result["errors"].as_object().map(|e| e.len()),
            Some(1),
            "only one kind of error: {result}"
        );
        // The history holds the enrolments that were made and one line for
        // the refusals, not 500.
        let rows = audit_rows(&world, &user);
        let enrol = rows.iter().filter(|r| r["outcome"] == "enrol").count();
        let limited = rows
            .iter()
            .filter(|r| r["outcome"] == "rate-limited")
            .count();
        assert_eq!((enrol, limited), (10, 1), "{}: {rows:#?}", user.name);
    }
    // Each user keeps at most [limits] max_pending (3) pending enrolments.
    assert_eq!(pending_in_store(&world), 6);
    let log = world.daemon.log();
    let lines = log
        .lines()
        .filter(|l| l.contains("flood-") || l.contains("factors "))
        .count();
    assert!(lines <= 30, "{lines} log lines for the floods:\n{log}");
}

#[test]
fn every_change_a_user_may_make_is_limited() {
    let world = World::start();
    let alice = users::named("alice");
    for what in [
        "recovery-codes",
        "resync",
        "revoke-devices",
        "level",
        "prefer",
    ] {
        let fresh = users::numbered(match what {
            "recovery-codes" => 1,
            "resync" => 2,
            "revoke-devices" => 3,
            "level" => 4,
            _ => 5,
        });
        let result = flood(&world, &fresh, what, 50);
        let refused = result["errors"][LIMIT]["count"].as_u64().unwrap_or(0);
        assert_eq!(refused, 40, "{what}: {result}");
    }
    // Reading is never limited.
    for _ in 0..15 {
        probe::call(world.address(), &alice, &["list"]).ok();
    }
}

#[test]
fn every_login_a_user_starts_for_itself_is_limited_and_roots_are_not() {
    let world = World::start();
    // Each user has a factor, so each Start or BeginStepUp opens a login
    // that the flood cancels at once: a Start/Cancel loop.
    for (user, what, service) in [
        (users::numbered(6), "unlock", "unlock"),
        (users::numbered(7), "step-up", "step-up"),
    ] {
        let token = world.enrol_hotp(&user, 6);
        let result = probe::call(
            world.address(),
            &user,
            &["flood", what, "200", "--user", &user.name],
        )
        .ok();
        // The default [limits]: a burst of 10 logins of one's own; each
        // user has a bucket of their own.
        assert_eq!(result["ok"], 10, "{what}: {result}");
        let refused = &result["errors"][LIMIT];
        assert_eq!(refused["count"], 190, "{what}: {result}");
        let message = refused["message"].as_str().expect("message");
        assert!(
            message.contains("too many unlocks and step-up proofs")
                && message.contains("try again in"),
            "{message}"
        );
        assert_eq!(
            result["errors"].as_object().map(|e| e.len()),
            Some(1),
            "only one kind of error: {result}"
        );
        // The history holds the logins that were started, their ends and
        // one line for the refusals, not 200 of each.
        let rows: Vec<Value> = audit_rows(&world, &user)
            .into_iter()
            .filter(|r| r["service"] == service)
            .collect();
        let count = |outcome: &str| rows.iter().filter(|r| r["outcome"] == outcome).count();
        assert_eq!(
            (count("start"), count("cancel"), count("rate-limited")),
            (10, 10, 1),
            "{what}: {rows:#?}"
        );
        assert_eq!(rows.len(), 21, "{what}: {rows:#?}");
        let log = world.daemon.log();
        let lines = log
            .lines()
            .filter(|l| {
                l.contains(&format!("user={} ", user.name))
                    && l.contains(&format!("service={service}"))
            })
            .count();
        assert_eq!(lines, 21, "{what}: {lines} log lines:\n{log}");
        // The user's flood does not hold up root's PAM clients: a real
        // login for them (as sshd makes it) still asks and lets them in.
        world
            .login(&user, &[&token.hotp_code(token.next_counter())])
            .assert_rc(PAM_SUCCESS);
        // While their own are still refused.
        let again = probe::call(
            world.address(),
            &user,
            &["flood", what, "1", "--user", &user.name],
        )
        .ok();
        assert_eq!(again["errors"][LIMIT]["count"], 1, "{what}: {again}");
    }
}

#[test]
fn a_new_enrolment_replaces_the_oldest_pending_one_and_factors_are_capped() {
    let world = World::with_config(&DaemonConfig {
        policy_tables: "[limits]\nmax_pending = 2\nmax_factors = 2\n".into(),
        ..DaemonConfig::default()
    });
    let alice = users::named("alice");
    let begin = |label: &str| {
        probe::call(world.address(), &alice, &["begin", "totp", label]).ok()["id"]
            .as_str()
            .expect("id")
            .to_string()
    };
    let first = begin("one");
    let _second = begin("two");
    let _third = begin("three");
    assert_eq!(pending_in_store(&world), 2);
    let gone = probe::call(world.address(), &alice, &["confirm", &first, "123456"]);
    assert_eq!(gone.err_name(), "org.pam_mfa.Error.NotFound", "{gone:?}");

    let totp = mfa_tests::otp::Totp::default_params();
    world.enrol_totp(&alice, &totp);
    world.enrol_hotp(&alice, 6);
    let full = probe::call(world.address(), &alice, &["begin", "totp", "four"]);
    let probe::Reply::Err { name, message } = &full else {
        panic!("a third factor was accepted: {full:?}");
    };
    assert_eq!(name, LIMIT);
    assert!(message.contains("remove one first"), "{message}");
}
