//! What "no second factor needed" returns (issue 12): `PAM_IGNORE` by
//! default, so that in every stack the rest decides — a `sufficient`
//! pam_mfa never lets a user skip the password because nothing was asked;
//! `skip=success` only where the line says so. Each skip reason (not
//! required, a bypass network, MFA off, an offer declined) through real
//! libpam in required, requisite, sufficient and alone stacks, next to a
//! login that was asked and answered.

use mfa_tests::daemon::DaemonConfig;
use mfa_tests::pam::{mfa_line, Login, PAM_AUTH_ERR, PAM_PERM_DENIED, PAM_SUCCESS};
use mfa_tests::users;
use mfa_tests::World;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Stack {
    /// `required pam_mfa` + `required pam_permit`.
    Required,
    /// `requisite pam_mfa` + `required pam_permit`.
    Requisite,
    /// `sufficient pam_mfa` + `required pam_deny` (a password that fails).
    Sufficient,
    /// `required pam_mfa`, nothing else.
    Alone,
}

const STACKS: [Stack; 4] = [
    Stack::Required,
    Stack::Requisite,
    Stack::Sufficient,
    Stack::Alone,
];

/// Write `<stack>-<skip>` services for `skip` = "" (the default) and
/// "skip=success".
fn write(world: &World) {
    for stack in STACKS {
        for skip in ["", "skip=success"] {
            let options = format!("timeout=5 {skip}");
            let mfa = |control: &str| mfa_line(control, world.address(), options.trim());
            let lines = match stack {
                Stack::Required => vec![mfa("required"), "auth required pam_permit.so".into()],
                Stack::Requisite => vec![mfa("requisite"), "auth required pam_permit.so".into()],
                Stack::Sufficient => vec![mfa("sufficient"), "auth required pam_deny.so".into()],
                Stack::Alone => vec![mfa("required")],
            };
            world.pam.write(&name(stack, skip), &lines);
        }
    }
}

fn name(stack: Stack, skip: &str) -> String {
    format!(
        "{stack:?}-{}",
        if skip.is_empty() {
            "default"
        } else {
            "success"
        }
    )
    .to_lowercase()
}

/// What the whole stack returns when pam_mfa needed no factor.
fn expected(stack: Stack, skip: &str) -> i32 {
    match (stack, skip.is_empty()) {
        (Stack::Required | Stack::Requisite, _) => PAM_SUCCESS,
        // The password still has to pass, and here it does not.
        (Stack::Sufficient, true) => PAM_AUTH_ERR,
        // What skip=success costs on a sufficient line: no password.
        (Stack::Sufficient, false) => PAM_SUCCESS,
        // libpam fails a stack in which every module ignored.
        (Stack::Alone, true) => PAM_PERM_DENIED,
        (Stack::Alone, false) => PAM_SUCCESS,
    }
}

/// Every stack, both ways, for `user` from `rhost` answering `answers`:
/// the mismatches.
fn check(world: &World, reason: &str, user: &str, rhost: &str, answers: &[&str]) -> Vec<String> {
    let mut wrong = Vec::new();
    for stack in STACKS {
        for skip in ["", "skip=success"] {
            let mut login = Login::new(&name(stack, skip), user, answers);
            login.rhost = (!rhost.is_empty()).then(|| rhost.to_string());
            let got = login.run(&world.pam);
            let want = expected(stack, skip);
            if got.rc != want {
                wrong.push(format!(
                    "{reason}: {stack:?} {skip:?}: {} instead of {want}",
                    got.rc_name
                ));
            }
        }
    }
    wrong
}

#[test]
fn nothing_asked_is_ignored_by_default_in_every_stack_and_success_only_when_written() {
    let world = World::with_config(&DaemonConfig {
        require: "no".into(),
        enrol_at_login: true,
        policy_tables: format!(
            "[[policy.group]]\ngroup = \"{}\"\nrequire = \"encourage\"\n\n[bypass]\nenabled = true\n\n[[bypass.rule]]\nname = \"office\"\nnetwork = \"192.0.2.0/24\"\n",
            users::POLICY_GROUP
        ),
        ..DaemonConfig::default()
    });
    write(&world);
    let alice = users::named("alice");
    let token = world.enrol_hotp(&alice, 6);
    let mut wrong = Vec::new();
    // Not required: bob is in no rule that asks.
    wrong.extend(check(&world, "not-required", "bob", "", &[]));
    // A bypass network: alice is not asked from the office.
    wrong.extend(check(&world, "bypass", "alice", "192.0.2.7", &[]));
    // Encouraged, and declined: dave (in the group, no factor) says no.
    wrong.extend(check(
        &world,
        "encourage-declined",
        "dave",
        "",
        &["n", "n", "n"],
    ));
    let log = world.daemon.log();
    for reason in ["not-required", "bypass:office", "encourage-declined"] {
        assert!(
            log.contains(&format!("reason={reason}")),
            "{reason}:\n{log}"
        );
    }
    // A factor that was checked satisfies every stack, sufficient too.
    for (counter, stack) in (token.next_counter()..).zip(STACKS) {
        let login = Login::new(&name(stack, ""), "alice", &[&token.hotp_code(counter)]);
        let got = login.run(&world.pam);
        if got.rc != PAM_SUCCESS {
            wrong.push(format!("asked and right: {stack:?}: {}", got.rc_name));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[test]
fn with_mfa_off_nothing_is_asked_and_the_stack_decides() {
    let world = World::with_config(&DaemonConfig {
        policy_enabled: false,
        ..DaemonConfig::default()
    });
    write(&world);
    let wrong = check(&world, "mfa-disabled", "alice", "", &[]);
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
    assert!(world.daemon.log().contains("reason=mfa-disabled"));
}
