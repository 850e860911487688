//! Secrets at rest: after enrolments and logins through the real daemon, no
//! file mfad keeps holds a secret (raw or base32) or a code it accepted;
//! only the key file, which only root can read, makes them usable.

use mfa_tests::otp::{base32_to_hex, Totp};
use mfa_tests::pam::PAM_SUCCESS;
use mfa_tests::users;
use mfa_tests::World;
use std::os::unix::fs::PermissionsExt;

fn hex_to_bytes(hex: &str) -> Vec<u8> {
    (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).expect("hex"))
        .collect()
}

#[test]
fn the_state_directory_holds_no_secret_and_no_code() {
    let world = World::start();
    let alice = users::named("alice");
    let totp = Totp::default_params();
    let enrolled = world.enrol_totp(&alice, &totp);
    let code = totp.code(1);
    world.login(&alice, &[&code]).assert_rc(PAM_SUCCESS);

    let state = world.daemon.state_dir();
    let key = state.join("secret.key");
    let mode = std::fs::metadata(&key)
        .expect("key file")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600, "the key is root's alone");

    let raw = hex_to_bytes(&base32_to_hex(&enrolled.secret));
    let mut checked = 0;
    for entry in std::fs::read_dir(&state).expect("state dir").flatten() {
        if entry.path() == key {
            continue;
        }
        let bytes = std::fs::read(entry.path()).expect("read");
        checked += bytes.len();
        let name = entry.path().display().to_string();
        for (what, needle) in [
            ("raw secret", raw.as_slice()),
            ("base32 secret", enrolled.secret.as_bytes()),
            ("accepted code", code.as_bytes()),
            ("confirmation code", enrolled.confirm_code.as_bytes()),
        ] {
            assert!(
                !bytes.windows(needle.len()).any(|w| w == needle),
                "{name} holds the {what}"
            );
        }
    }
    assert!(checked > 0, "nothing was stored");
}
