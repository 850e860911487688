//! The policy through a real sshd and OpenSSH's ssh on a terminal: a forced
//! group, enrolment at first login, network bypass by source address,
//! trusted devices by SSH key. Each case also checks what `mfactl policy
//! explain` says about it. Codes from oathtool.

use mfa_tests::daemon::DaemonConfig;
use mfa_tests::otp::{self, Algorithm};
use mfa_tests::pam::PROMPT;
use mfa_tests::process::Finished;
use mfa_tests::ssh::SshSession;
use mfa_tests::sshd::{Sshd, SshdConfig, KBDINT, PUBKEY_THEN_KBDINT};
use mfa_tests::users::{self, TestUser};
use mfa_tests::world::OPTIONS;
use mfa_tests::{World, QUICK};
use serde_json::Value;

fn start(require: &str, tables: &str, enrol_at_login: bool, methods: &str) -> (World, Sshd) {
    let world = World::with_config(&DaemonConfig {
        require: require.into(),
        policy_tables: tables.into(),
        enrol_at_login,
        ..DaemonConfig::default()
    });
    let sshd = Sshd::start(&SshdConfig::mfa(methods, world.address(), OPTIONS));
    (world, sshd)
}

fn explain(world: &World, user: &str, from: &str, ssh_key: Option<&str>) -> Value {
    world.explain(user, "sshd", from, ssh_key)
}

fn verdict(e: &Value) -> (String, String) {
    (
        e["outcome"].as_str().unwrap_or("?").to_string(),
        e["reason"].as_str().unwrap_or("?").to_string(),
    )
}

fn pair(outcome: &str, reason: &str) -> (String, String) {
    (outcome.to_string(), reason.to_string())
}

/// A login that must not be asked anything: ssh runs the session at once.
fn logs_in_unasked(ssh: SshSession, user: &str) {
    let outcome = ssh.finish();
    outcome.assert_logged_in(user);
    assert!(
        !outcome.transcript.contains("code"),
        "was asked:\n{}",
        outcome.transcript
    );
}

/// A login that must be asked: answer `code`, expect the session.
fn logs_in_with(mut ssh: SshSession, user: &str, code: &str) {
    ssh.expect(PROMPT, QUICK);
    ssh.send_line(code);
    ssh.finish().assert_logged_in(user);
}

/// The base32 secret mfad showed for manual entry during enrolment at login.
fn secret_shown(shown: &str) -> String {
    shown
        .lines()
        .find_map(|l| l.trim().strip_prefix("Secret: "))
        .unwrap_or_else(|| panic!("no secret shown:\n{shown}"))
        .trim()
        .to_string()
}

fn ok(out: &Finished) {
    assert_eq!(out.code(), Some(0), "{}", out.describe());
}

/// An HOTP factor and its codes in order, so every login has a fresh one.
struct Token {
    enrolled: mfa_tests::probe::Enrolled,
    next: u64,
}

impl Token {
    fn enrol(world: &World, user: &TestUser) -> Token {
        let enrolled = world.enrol_hotp(user, 6);
        let next = enrolled.next_counter();
        Token { enrolled, next }
    }
    fn code(&mut self) -> String {
        self.next += 1;
        self.enrolled.hotp_code(self.next - 1)
    }
}

#[test]
fn a_forced_member_is_asked_and_a_user_in_no_mfa_group_is_not() {
    let rule = format!(
        "[[policy.group]]\ngroup = \"{}\"\nrequire = \"force\"\n",
        users::POLICY_GROUP
    );
    let (world, sshd) = start("no", &rule, false, KBDINT);
    let alice = users::named("alice");
    let mut token = Token::enrol(&world, &alice);

    logs_in_with(sshd.client("alice").spawn(), "alice", &token.code());
    let e = explain(&world, "alice", "127.0.0.1", None);
    assert_eq!(verdict(&e), pair("ask", ""));
    assert!(
        e["rule"]
            .as_str()
            .is_some_and(|r| r.contains(users::POLICY_GROUP)),
        "{e}"
    );

    logs_in_unasked(sshd.client("bob").spawn(), "bob");
    assert_eq!(
        verdict(&explain(&world, "bob", "127.0.0.1", None)),
        pair("skip", "not-required")
    );

    // dave is in the forced group without a factor, and enrolment at login is off.
    let refused = sshd.client("dave").spawn().finish();
    refused.assert_refused();
    assert!(
        refused.transcript.contains("No second factor"),
        "{}",
        refused.transcript
    );
    assert_eq!(
        verdict(&explain(&world, "dave", "", None)),
        pair("refuse", "not-enrolled")
    );
}

#[test]
fn force_enrolment_at_first_login_ends_with_a_working_factor() {
    let (world, sshd) = start("force", "", true, KBDINT);
    assert_eq!(
        verdict(&explain(&world, "dave", "", None)),
        pair("enrol", "")
    );

    let mut ssh = sshd.client("dave").spawn();
    let shown = ssh.expect("Code from your app: ", QUICK);
    assert!(shown.contains("needs a second factor"), "{shown}");
    assert!(
        shown.contains('█') || shown.contains('▀'),
        "a QR code is drawn:\n{shown}"
    );
    let secret = secret_shown(&shown);
    ssh.send_line(&otp::oath_totp(&secret, Algorithm::Sha1, 6, 30, 0));
    let outcome = ssh.finish();
    outcome.assert_logged_in("dave");
    assert!(
        outcome.transcript.contains("Second factor set up"),
        "{}",
        outcome.transcript
    );

    // The factor is confirmed: the next login asks for a code of it.
    let listed = world.mfactl(&users::named("dave"), &["--json", "list"]);
    assert!(
        listed.stdout.contains("\"status\": \"active\""),
        "{}",
        listed.describe()
    );
    assert_eq!(verdict(&explain(&world, "dave", "", None)), pair("ask", ""));
    logs_in_with(
        sshd.client("dave").spawn(),
        "dave",
        &otp::oath_totp(&secret, Algorithm::Sha1, 6, 30, 1),
    );
    world.daemon.assert_log_free_of(&[&secret]);
}

const BYPASS: &str = "[bypass]
enabled = true

[[bypass.rule]]
name = \"lab\"
network = \"127.0.0.2/32\"

[[bypass.rule]]
name = \"old-lab\"
network = \"127.0.0.3/32\"
expires = 2020-01-01
";

#[test]
fn a_bypass_address_skips_the_code_until_expired_and_never_for_level_always() {
    let (world, sshd) = start("force", BYPASS, false, KBDINT);
    let alice = users::named("alice");
    let mut token = Token::enrol(&world, &alice);

    logs_in_unasked(sshd.client("alice").bind("127.0.0.2").spawn(), "alice");
    assert_eq!(
        verdict(&explain(&world, "alice", "127.0.0.2", None)),
        pair("skip", "bypass:lab")
    );

    logs_in_with(
        sshd.client("alice").bind("127.0.0.4").spawn(),
        "alice",
        &token.code(),
    );
    assert_eq!(
        verdict(&explain(&world, "alice", "127.0.0.4", None)),
        pair("ask", "")
    );

    logs_in_with(
        sshd.client("alice").bind("127.0.0.3").spawn(),
        "alice",
        &token.code(),
    );
    let e = explain(&world, "alice", "127.0.0.3", None);
    assert_eq!(verdict(&e), pair("ask", ""));
    assert!(e.to_string().contains("expired"), "{e}");

    ok(&world.mfactl(&alice, &["level", "always"]));
    logs_in_with(
        sshd.client("alice").bind("127.0.0.2").spawn(),
        "alice",
        &token.code(),
    );
    let e = explain(&world, "alice", "127.0.0.2", None);
    assert_eq!(verdict(&e), pair("ask", ""));
    assert!(e.to_string().contains("level always"), "{e}");
}

#[test]
fn the_ssh_key_that_passed_is_a_trusted_device_until_revoked() {
    let (world, sshd) = start(
        "force",
        "[devices]\nremember_days = 7\n",
        false,
        PUBKEY_THEN_KBDINT,
    );
    let alice = users::named("alice");
    let mut token = Token::enrol(&world, &alice);
    let first = sshd.add_key("alice");
    let second = sshd.add_key("alice");

    logs_in_with(
        sshd.client("alice").key(&first.private).spawn(),
        "alice",
        &token.code(),
    );
    logs_in_unasked(sshd.client("alice").key(&first.private).spawn(), "alice");
    let e = explain(&world, "alice", "127.0.0.1", Some(&first.public));
    assert_eq!(verdict(&e), pair("skip", "trusted-device"));
    assert_eq!(
        verdict(&explain(&world, "alice", "127.0.0.1", Some(&second.public))),
        pair("ask", "")
    );

    let listed = world.mfactl(&alice, &["devices"]);
    assert!(
        listed
            .stdout
            .contains(&format!("SSH key {}", first.fingerprint)),
        "{}",
        listed.describe()
    );
    // Another key is another device.
    logs_in_with(
        sshd.client("alice").key(&second.private).spawn(),
        "alice",
        &token.code(),
    );

    ok(&world.mfactl(&alice, &["devices", "revoke", "--all"]));
    logs_in_with(
        sshd.client("alice").key(&first.private).spawn(),
        "alice",
        &token.code(),
    );
}

#[test]
fn encourage_offers_enrolment_declining_lets_in_and_asks_again_next_time() {
    let (world, sshd) = start("encourage", "", true, KBDINT);
    assert_eq!(
        verdict(&explain(&world, "bob", "", None)),
        pair("offer", "")
    );

    let mut ssh = sshd.client("bob").spawn();
    let shown = ssh.expect("Set one up now? [y/N]: ", QUICK);
    assert!(shown.contains("Protect your account"), "{shown}");
    ssh.send_line("n");
    ssh.finish().assert_logged_in("bob");

    // Asked again; this time bob sets one up right there.
    let mut ssh = sshd.client("bob").spawn();
    ssh.expect("Set one up now? [y/N]: ", QUICK);
    ssh.send_line("y");
    let shown = ssh.expect("Code from your app: ", QUICK);
    let secret = secret_shown(&shown);
    ssh.send_line(&otp::oath_totp(&secret, Algorithm::Sha1, 6, 30, 0));
    ssh.finish().assert_logged_in("bob");
    assert_eq!(verdict(&explain(&world, "bob", "", None)), pair("ask", ""));
}

/// A security key is never offered over SSH (issue 9): the key plugged into
/// the server answers nobody logging in from elsewhere. Alone it refuses the
/// login; beside a code, only the code is asked.
#[test]
fn a_security_key_is_never_offered_over_ssh() {
    let key = mfa_tests::fakekey::FakeKey::start();
    let (world, sshd) = start("force", &key.mfad_table("pam://testhost"), false, KBDINT);
    let (alice, bob) = (users::named("alice"), users::named("bob"));
    for user in [&alice, &bob] {
        let mut enrol = mfa_tests::users::command_as(user, &mfa_tests::bins::mfactl());
        enrol
            .arg("--bus-address")
            .arg(world.address())
            .args(["enrol", "fido2", "--label", "yubi"]);
        ok(&mfa_tests::process::run(
            "mfactl enrol fido2",
            &mut enrol,
            "",
            QUICK,
        ));
    }
    let touched = key.status("up_requests");
    let refused = sshd.client("alice").spawn().finish();
    refused.assert_refused();
    assert!(
        refused
            .transcript
            .contains("security key works only where it is plugged in")
            || refused.transcript.contains("can be used for this login"),
        "{}",
        refused.transcript
    );
    let e = explain(&world, "alice", "127.0.0.1", None);
    assert_eq!(verdict(&e), pair("refuse", "no-usable-factor"), "{e}");
    let mut token = Token::enrol(&world, &bob);
    logs_in_with(sshd.client("bob").spawn(), "bob", &token.code());
    assert_eq!(
        key.status("up_requests"),
        touched,
        "the key was never asked"
    );
}
