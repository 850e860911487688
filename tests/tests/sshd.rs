//! Logins through a real OpenSSH sshd: the `ssh` client on a terminal →
//! sshd's keyboard-interactive PAM → pam_mfa.so → the shipped bus policy →
//! mfad, with codes from oathtool. sshd's PAM service, users, keys and host
//! key all live in temporary directories (see `mfa_tests::sshd`).

use mfa_tests::monitor::{BusMonitor, LOGIN_START};
use mfa_tests::otp::Totp;
use mfa_tests::pam::{PROMPT, PROMPT_AGAIN, TOO_MANY};
use mfa_tests::sshd::{Sshd, SshdConfig, KBDINT, PUBKEY_THEN_KBDINT};
use mfa_tests::users;
use mfa_tests::world::OPTIONS;
use mfa_tests::{World, QUICK};

/// mfad with its default config (a user without a factor is refused) and an
/// sshd whose PAM auth stack is pam_mfa.so on mfad's bus.
fn start(methods: &str) -> (World, Sshd) {
    start_with(methods, OPTIONS)
}

fn start_with(methods: &str, options: &str) -> (World, Sshd) {
    let world = World::start();
    let sshd = Sshd::start(&SshdConfig::mfa(methods, world.address(), options));
    (world, sshd)
}

#[test]
fn an_enrolled_user_logs_in_with_an_oathtool_code() {
    let (world, sshd) = start(KBDINT);
    let alice = users::named("alice");
    let totp = Totp::default_params();
    world.enrol_totp(&alice, &totp);

    // From another loopback address: sshd passes it on as PAM_RHOST.
    let mut ssh = sshd.client("alice").bind("127.0.0.2").spawn();
    let shown = ssh.expect(PROMPT, QUICK);
    assert!(
        shown.contains(&format!("(alice@127.0.0.1) {PROMPT}")),
        "ssh shows keyboard-interactive prompts as (user@host) prompt:\n{shown}"
    );
    let code = totp.code(1);
    ssh.send_line(&code);
    let outcome = ssh.finish();
    outcome.assert_logged_in("alice");
    assert_eq!(outcome.code(), Some(0));
    assert!(
        !outcome.transcript.contains(&code),
        "the code was echoed:\n{}",
        outcome.transcript
    );

    let log = sshd.wait_for_log("Accepted keyboard-interactive/pam for alice", QUICK);
    assert!(
        log.contains("Accepted keyboard-interactive/pam for alice from 127.0.0.2 port"),
        "{log}"
    );
    assert!(
        log.contains("PAM: setting PAM_RHOST to \"127.0.0.2\""),
        "{log}"
    );
    world.daemon.assert_log_free_of(&[&totp.secret, &code]);
}

#[test]
fn a_wrong_code_is_refused() {
    let (world, sshd) = start(KBDINT);
    let bob = users::named("bob");
    let totp = Totp::default_params();
    world.enrol_totp(&bob, &totp);
    let wrong = totp.wrong_code(2);

    let mut ssh = sshd.client("bob").spawn();
    // mfad's default max_tries is 3: three prompts, then it gives up.
    ssh.expect(PROMPT, QUICK);
    ssh.send_line(&wrong);
    for _ in 0..2 {
        ssh.expect(PROMPT_AGAIN, QUICK);
        ssh.send_line(&wrong);
    }
    let outcome = ssh.finish();
    outcome.assert_refused();
    assert_eq!(outcome.code(), Some(255), "{}", outcome.transcript);
    assert!(
        outcome.transcript.contains(TOO_MANY),
        "sshd shows mfad's last message before it refuses:\n{}",
        outcome.transcript
    );
    assert!(
        outcome.transcript.contains("Permission denied"),
        "{}",
        outcome.transcript
    );
    assert!(!outcome.logged_in("bob"));
    sshd.wait_for_log("Failed keyboard-interactive/pam for bob", QUICK);
    world.daemon.assert_log_free_of(&[&totp.secret, &wrong]);
}

#[test]
fn publickey_then_code_hands_the_key_to_pam() {
    // Through the bus, where dbus-monitor can watch what the module sends
    // (on the login socket no one can: tests/login_socket.rs).
    let (world, sshd) = start_with(PUBKEY_THEN_KBDINT, &format!("{OPTIONS} transport=bus"));
    let carol = users::named("carol");
    let totp = Totp::default_params();
    world.enrol_totp(&carol, &totp);
    let key = sshd.add_key("carol");
    // A second key of hers, never authorized.
    let stranger = sshd.generate_key("carol");

    // mfad does not log what it is sent: watch the bus from outside.
    let monitor = BusMonitor::start(&world.bus, LOGIN_START);

    // The unauthorized key does not get as far as PAM.
    let outcome = sshd.client("carol").key(&stranger.private).spawn().finish();
    outcome.assert_refused();
    assert!(
        !outcome.transcript.contains(PROMPT),
        "asked for a code without an authorized key:\n{}",
        outcome.transcript
    );

    let mark = sshd.log_mark();
    let mut ssh = sshd.client("carol").key(&key.private).spawn();
    ssh.expect(PROMPT, QUICK);
    ssh.send_line(&totp.code(1));
    ssh.finish().assert_logged_in("carol");

    // sshd accepted this key as the first factor …
    let log = sshd.wait_for_log_since(mark, "Accepted keyboard-interactive/pam for carol", QUICK);
    assert!(
        log.contains("Partial publickey for carol from 127.0.0.1 port")
            && log.contains(&format!("ssh2: ED25519 {}", key.fingerprint)),
        "{log}"
    );
    assert!(
        log.contains("auth information in SSH_AUTH_INFO_0"),
        "sshd did not expose the methods to PAM:\n{log}"
    );
    // … exposed it to PAM as SSH_AUTH_INFO_0, and pam_mfa.so passed it on
    // to mfad in LoginRequest.auth_info, exactly (trailing newline and all;
    // dbus-monitor prints strings as they are); one login only, the one
    // with the authorized key.
    let calls = monitor.wait_for(&format!("string \"{}\"", key.auth_info()), QUICK);
    assert_eq!(calls.matches("member=Start").count(), 1, "{calls}");
    assert!(calls.contains("string \"carol\""), "{calls}");
}
