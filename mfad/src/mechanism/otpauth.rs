//! Secrets and the `otpauth://` URI format understood by Google
//! Authenticator, FreeOTP and Aegis.

use super::{Algorithm, FactorKind};
use data_encoding::BASE32_NOPAD;

pub use mfa_dbus::{MAX_SECRET_BYTES as MAX_SECRET_LEN, MIN_SECRET_BYTES as MIN_SECRET_LEN};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SecretError {
    #[error("the secret is not valid base32 (letters A-Z and digits 2-7)")]
    NotBase32,
    #[error("the secret is {0} bytes; it must be {MIN_SECRET_LEN} to {MAX_SECRET_LEN} bytes")]
    BadLength(usize),
}

/// Decode a base32 secret as users paste it: any case, spaces, dashes and
/// `=` padding allowed.
pub fn decode_base32(text: &str) -> Result<Vec<u8>, SecretError> {
    let cleaned: String = text
        .chars()
        .filter(|c| !matches!(c, ' ' | '-' | '='))
        .map(|c| c.to_ascii_uppercase())
        .collect();
    let secret = BASE32_NOPAD
        .decode(cleaned.as_bytes())
        .map_err(|_| SecretError::NotBase32)?;
    if !(MIN_SECRET_LEN..=MAX_SECRET_LEN).contains(&secret.len()) {
        return Err(SecretError::BadLength(secret.len()));
    }
    Ok(secret)
}

pub fn encode_base32(secret: &[u8]) -> String {
    BASE32_NOPAD.encode(secret)
}

/// A fresh random secret of the length RFC 4226/6238 recommend.
pub fn generate_secret(algorithm: Algorithm) -> std::io::Result<Vec<u8>> {
    let mut secret = vec![0u8; algorithm.key_len()];
    getrandom::fill(&mut secret).map_err(|e| std::io::Error::other(e.to_string()))?;
    Ok(secret)
}

/// What goes into an otpauth URI.
pub struct UriParams<'a> {
    pub kind: FactorKind,
    pub issuer: &'a str,
    /// Account name shown in the app, e.g. `alice@host`.
    pub account: &'a str,
    pub secret: &'a [u8],
    pub algorithm: Algorithm,
    pub digits: u32,
    pub period: u32,
    pub counter: u64,
}

pub fn uri(p: &UriParams<'_>) -> String {
    let mut uri = format!(
        "otpauth://{}/{}:{}?secret={}&issuer={}&algorithm={}&digits={}",
        p.kind.name(),
        percent_encode(p.issuer),
        percent_encode(p.account),
        encode_base32(p.secret),
        percent_encode(p.issuer),
        p.algorithm.name(),
        p.digits
    );
    match p.kind {
        FactorKind::Totp => uri.push_str(&format!("&period={}", p.period)),
        FactorKind::Hotp => uri.push_str(&format!("&counter={}", p.counter)),
    }
    uri
}

/// RFC 3986: everything but unreserved characters is escaped.
fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base32_round_trip_and_forgiving_input() {
        let secret = b"12345678901234567890";
        let text = encode_base32(secret);
        assert_eq!(text, "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ");
        assert_eq!(
            decode_base32(&text.to_lowercase()).as_deref(),
            Ok(&secret[..])
        );
        assert_eq!(
            decode_base32("GEZD GNBV-GY3T QOJQ GEZD GNBV GY3T QOJQ====").as_deref(),
            Ok(&secret[..])
        );
    }

    #[test]
    fn bad_secrets_are_named() {
        assert_eq!(decode_base32("not base32!"), Err(SecretError::NotBase32));
        assert_eq!(decode_base32("GEZDGNBV"), Err(SecretError::BadLength(5)));
    }

    #[test]
    fn uri_has_every_parameter_and_escapes_labels() {
        let u = uri(&UriParams {
            kind: FactorKind::Totp,
            issuer: "My Corp",
            account: "alice@host",
            secret: b"12345678901234567890",
            algorithm: Algorithm::Sha256,
            digits: 8,
            period: 60,
            counter: 0,
        });
        assert_eq!(
            u,
            "otpauth://totp/My%20Corp:alice%40host?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ&issuer=My%20Corp&algorithm=SHA256&digits=8&period=60"
        );
    }
}
