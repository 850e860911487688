//! A user directory that goes down never exempts anyone (issue 8). mfad
//! reads users and groups through real glibc NSS from the test module
//! `libnss_mfatest` (see `mfa_tests::directory`), which a test switches to
//! "unavailable", "try again", a silent failure or a hang while mfad runs.
//! The member of a directory group whose only force rule comes from that
//! group is refused, as is everyone that rule could decide, and
//! `mfactl policy explain` names the lookup that failed. Logins through real
//! libpam (pam-driver) with the built module; codes from oathtool.

use mfa_tests::daemon::DaemonConfig;
use mfa_tests::directory::{DirectoryState, Order, TestDirectory};
use mfa_tests::pam::{PamResult, DIRECTORY_DOWN, PAM_AUTH_ERR, PAM_SUCCESS, PROMPT};
use mfa_tests::users::{self, TestUser};
use mfa_tests::World;
use std::sync::Arc;

/// A group only the directory knows; alice is in it.
const LDAP_GROUP: &str = "ldapadmins";

fn setup(order: Order, rule_extra: &str) -> (World, Arc<TestDirectory>) {
    let directory = Arc::new(TestDirectory::new(
        &format!("{LDAP_GROUP}:x:3100:alice\n"),
        order,
    ));
    let config = DaemonConfig {
        require: "no".into(),
        lookup_timeout: 1,
        policy_tables: format!(
            "[[policy.group]]\ngroup = \"{LDAP_GROUP}\"\nrequire = \"force\"\n{rule_extra}"
        ),
        ..DaemonConfig::default()
    };
    let world = World::with_directory(&config, Arc::clone(&directory));
    (world, directory)
}

fn not_asked(result: &PamResult) {
    result.assert_rc(PAM_SUCCESS);
    assert!(result.prompts().is_empty(), "asked: {result:#?}");
}

#[track_caller]
fn refused_as_directory_down(result: &PamResult) {
    result.assert_rc(PAM_AUTH_ERR);
    assert!(result.prompts().is_empty(), "asked: {result:#?}");
    assert_eq!(result.errors(), vec![DIRECTORY_DOWN], "{result:#?}");
}

fn explain_lines(world: &World, user: &TestUser) -> (String, Vec<String>) {
    let e = world.explain(&user.name, "sshd", "", None);
    let lines = e["lines"]
        .as_array()
        .expect("lines")
        .iter()
        .filter_map(|l| l.as_str().map(String::from))
        .collect();
    (format!("{}:{}", e["outcome"], e["reason"]), lines)
}

#[test]
fn a_directory_that_is_down_never_exempts_the_members_of_its_groups() {
    let (world, directory) = setup(Order::AfterFiles, "");
    let (alice, bob) = (users::named("alice"), users::named("bob"));
    let hotp = world.enrol_hotp(&alice, 6);
    let next = hotp.next_counter();

    // Up: alice's group forces her to give a code, bob is not asked.
    let asked = world.login(&alice, &[&hotp.hotp_code(next)]);
    asked.assert_rc(PAM_SUCCESS);
    assert_eq!(asked.prompts(), vec![PROMPT]);
    not_asked(&world.login(&bob, &[]));

    for state in [
        DirectoryState::Unavailable,
        DirectoryState::Silent,
        DirectoryState::TryAgain,
    ] {
        directory.set(state);
        // The force rule could hold either of them: both are refused.
        refused_as_directory_down(&world.login(&alice, &[&hotp.hotp_code(next + 1)]));
        refused_as_directory_down(&world.login(&bob, &[]));
        let (outcome, lines) = explain_lines(&world, &alice);
        assert_eq!(outcome, "\"refuse\":\"group-lookup-failed\"", "{state:?}");
        assert!(
            lines.iter().any(
                |l| l.contains(&format!("lookup of group \"{LDAP_GROUP}\" failed"))
                    && l.contains("never exempted")
            ),
            "{state:?}: explain does not name the lookup: {lines:#?}"
        );
        let log = world.daemon.log();
        assert!(
            log.contains("reason=group-lookup-failed") && log.contains(LDAP_GROUP),
            "{state:?}: the refusal is not logged with its lookup:\n{log}"
        );
    }

    // Back up: logins go on as before, without a restart.
    directory.set(DirectoryState::Ok);
    not_asked(&world.login(&bob, &[]));
    let asked = world.login(&alice, &[&hotp.hotp_code(next + 1)]);
    asked.assert_rc(PAM_SUCCESS);
    assert_eq!(asked.prompts(), vec![PROMPT]);
}

#[test]
fn a_directory_that_hangs_refuses_within_the_lookup_timeout_and_recovers() {
    let (world, directory) = setup(Order::AfterFiles, "");
    let bob = users::named("bob");
    directory.set(DirectoryState::Hang);
    // The module's own timeout is 10 s; mfad gives up after lookup_timeout
    // (1 s) and says so, rather than let the module time out.
    refused_as_directory_down(&world.login(&bob, &[]));
    let (outcome, lines) = explain_lines(&world, &bob);
    assert_eq!(outcome, "\"refuse\":\"group-lookup-failed\"");
    assert!(
        lines
            .iter()
            .any(|l| l.contains("no answer within 1 s") && l.contains("lookup_timeout")),
        "{lines:#?}"
    );
    directory.set(DirectoryState::Ok);
    not_asked(&world.login(&bob, &[]));
}

/// With `mfatest files`, glibc lets `files` have the last word ("no such
/// group") after the directory failed: the group a rule names does not
/// resolve, which refuses too — unless the rule says the group may be missing.
#[test]
fn a_failure_that_nss_turns_into_no_such_group_still_refuses() {
    let (world, directory) = setup(Order::BeforeFiles, "");
    let bob = users::named("bob");
    not_asked(&world.login(&bob, &[]));
    directory.set(DirectoryState::Unavailable);
    refused_as_directory_down(&world.login(&bob, &[]));
    let (_, lines) = explain_lines(&world, &bob);
    assert!(
        lines
            .iter()
            .any(|l| l.contains("NSS knows no such group") && l.contains("allow_missing")),
        "{lines:#?}"
    );
}

#[test]
fn a_rule_whose_group_may_be_missing_applies_to_nobody_while_it_is() {
    let (world, _directory) = setup(
        Order::AfterFiles,
        "\n[[policy.group]]\ngroup = \"future-team\"\nrequire = \"force\"\nallow_missing = true\n",
    );
    let bob = users::named("bob");
    not_asked(&world.login(&bob, &[]));
    let (outcome, lines) = explain_lines(&world, &bob);
    assert_eq!(outcome, "\"skip\":\"not-required\"");
    assert!(
        lines
            .iter()
            .any(|l| l.contains("\"future-team\" does not exist") && l.contains("allow_missing")),
        "{lines:#?}"
    );
}
