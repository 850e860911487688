//! `mfad.toml` as anything an admin (or an editor gone wrong) could write.
//! Only UTF-8 reaches the parser (`Config::load` reads a `String`), so the
//! bytes go in as they are when they are UTF-8, and lossily converted.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mfad::config::Config;
use std::path::Path;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        check(text);
    }
    check(&String::from_utf8_lossy(data));
});

fn check(text: &str) {
    match Config::parse(text, Path::new("/etc/mfa/mfad.toml")) {
        Ok(c) => {
            // Whatever parses is within the documented limits.
            assert!(c.daemon.state_dir.is_absolute());
            assert!((10..=3600).contains(&c.login.timeout));
            assert!((1..=10).contains(&c.login.max_tries));
            assert!(c.login.failure_delay_ms <= 10_000);
            assert!((1..=100).contains(&c.lockout.max_failures));
            assert!(c.lockout.unlock_after <= 30 * 24 * 3600);
            let issuer = &c.enrolment.issuer;
            assert!((1..=64).contains(&issuer.len()));
            assert!(!issuer.contains(':') && !issuer.chars().any(char::is_control));
            assert!((60..=7 * 24 * 3600).contains(&c.enrolment.pending_expiry));
            assert!((6..=8).contains(&c.totp.digits) && (6..=8).contains(&c.hotp.digits));
            assert!((10..=300).contains(&c.totp.period));
            assert!(c.totp.skew <= 10 && (1..=100).contains(&c.hotp.window));
            if let Some(command) = &c.notify.command {
                assert!(command.is_absolute());
            }
        }
        Err(e) => {
            if let Some(line) = e.line {
                assert!(line >= 1 && line <= text.split('\n').count(), "{e}");
            }
            let _ = e.to_string();
        }
    }
}
