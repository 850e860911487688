//! Recovery codes end to end: made by `mfactl recovery-codes` as the user,
//! used through real libpam in place of an authenticator code, each once;
//! the store keeps only hashes.

use mfa_tests::otp::Totp;
use mfa_tests::pam::{PAM_SUCCESS, PROMPT_AGAIN};
use mfa_tests::users::{self};
use mfa_tests::World;

#[test]
fn a_recovery_code_logs_in_once_and_is_never_stored() {
    let world = World::start();
    let alice = users::named("alice");
    world.enrol_totp(&alice, &Totp::default_params());
    let codes = world.recovery_codes(&alice);
    assert_eq!(codes.len(), 10);

    let first = world.login(&alice, &[&codes[0]]);
    first.assert_rc(PAM_SUCCESS);
    let shown: Vec<_> = first.messages.iter().map(|m| m.text.as_str()).collect();
    assert!(
        shown
            .iter()
            .any(|t| t.contains("Recovery code accepted; 9 left")),
        "{first:#?}"
    );

    let again = world.login(&alice, &[&codes[0]]);
    assert_ne!(again.rc, PAM_SUCCESS, "{again:#?}");
    assert_eq!(again.prompts()[1], PROMPT_AGAIN);

    // Another user's code is not alice's.
    let bob = users::named("bob");
    world.enrol_totp(&bob, &Totp::default_params());
    let bobs = world.recovery_codes(&bob);
    assert_ne!(world.login(&alice, &[&bobs[0]]).rc, PAM_SUCCESS);

    let state = world.daemon.state_dir();
    for entry in std::fs::read_dir(&state).expect("state").flatten() {
        let bytes = std::fs::read(entry.path()).expect("read");
        for code in codes.iter().chain(&bobs) {
            let plain = code.replace('-', "");
            for needle in [code.as_bytes(), plain.as_bytes()] {
                assert!(
                    !bytes.windows(needle.len()).any(|w| w == needle),
                    "{} holds a recovery code",
                    entry.path().display()
                );
            }
        }
    }
}
