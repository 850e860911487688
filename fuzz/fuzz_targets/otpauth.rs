//! Secrets and otpauth URIs. mfad has no URI parser: the user-supplied part
//! is the base32 secret to import (`decode_base32`); the URI is built from
//! the configured issuer and the user name, so it is fuzzed for injection.
//! Input: one parameter byte, then text (lossy UTF-8); the first line is
//! the issuer and the rest the account for the URI.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mfad::mechanism::otpauth::{
    decode_base32, encode_base32, uri, UriParams, MAX_SECRET_LEN, MIN_SECRET_LEN,
};
use mfad::mechanism::{Algorithm, FactorKind};

fuzz_target!(|data: &[u8]| {
    let Some((&p, rest)) = data.split_first() else {
        return;
    };
    let text = String::from_utf8_lossy(rest);

    if let Ok(secret) = decode_base32(&text) {
        assert!((MIN_SECRET_LEN..=MAX_SECRET_LEN).contains(&secret.len()));
        assert_eq!(decode_base32(&encode_base32(&secret)), Ok(secret));
    }
    if (MIN_SECRET_LEN..=MAX_SECRET_LEN).contains(&rest.len()) {
        assert_eq!(decode_base32(&encode_base32(rest)).as_deref(), Ok(rest));
    }
    let _ = Algorithm::from_name(&text);
    let _ = FactorKind::from_name(&text);

    let (issuer, account) = text.split_once('\n').unwrap_or((&text, ""));
    let kind = if p & 1 == 0 {
        FactorKind::Totp
    } else {
        FactorKind::Hotp
    };
    let algorithm =
        [Algorithm::Sha1, Algorithm::Sha256, Algorithm::Sha512][usize::from(p >> 1) % 3];
    let u = uri(&UriParams {
        kind,
        issuer,
        account,
        secret: rest,
        algorithm,
        digits: 6 + u32::from(p >> 3) % 3,
        period: 30,
        counter: u64::from(p),
    });
    // Labels cannot add a parameter, a fragment or another label separator.
    assert!(u.is_ascii() && !u.bytes().any(|b| b.is_ascii_control() || b == b' '));
    let rest = u.strip_prefix("otpauth://").expect("scheme");
    assert_eq!(rest.matches('?').count(), 1, "{u}");
    assert_eq!(rest.matches(':').count(), 1, "{u}");
    assert_eq!(rest.matches('&').count(), 4, "{u}");
    assert!(!rest.contains('#'), "{u}");
});
