//! Secrets and the `otpauth://` URI format understood by Google
//! Authenticator, FreeOTP and Aegis.

use super::{Algorithm, EnrolError, EnrolRequest, FactorData, FactorKind, NewFactor, OtpParams};
use data_encoding::BASE32_NOPAD;
use mfa_dbus::EnrolmentOffer;

/// The prompt for a code at login.
pub const PROMPT: &str = "Verification code: ";

/// What a new TOTP or HOTP factor gets unless its enrolment says otherwise.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Defaults {
    pub algorithm: Algorithm,
    pub digits: u32,
    /// TOTP only; 0 for HOTP.
    pub period: u32,
}

impl Default for Defaults {
    fn default() -> Self {
        Defaults {
            algorithm: Algorithm::Sha1,
            digits: 6,
            period: 30,
        }
    }
}

/// A new TOTP or HOTP factor from `request`'s options: a fresh secret or an
/// imported one, its URI, and the text that shows it at a login.
pub fn enrol(
    kind: FactorKind,
    defaults: &Defaults,
    request: &EnrolRequest<'_>,
) -> Result<NewFactor, EnrolError> {
    let options = request.options;
    let invalid = |m: String| Err(EnrolError::Invalid(m));
    if !options.pin.is_empty() {
        return invalid(format!("a PIN makes no sense for {kind}"));
    }
    let algorithm = match options.algorithm.as_str() {
        "" => defaults.algorithm,
        name => match Algorithm::from_name(name) {
            Some(a) => a,
            None => {
                return invalid(format!(
                    "unknown algorithm {name:?}; use SHA1, SHA256 or SHA512"
                ))
            }
        },
    };
    let digits = match options.digits {
        0 => defaults.digits,
        d @ 6..=8 => d,
        d => return invalid(format!("digits {d} is out of range: 6 to 8")),
    };
    let period = match (kind, options.period) {
        (FactorKind::Totp, 0) => defaults.period,
        (FactorKind::Totp, p @ 10..=300) => p,
        (FactorKind::Totp, p) => return invalid(format!("period {p} is out of range: 10 to 300")),
        (_, 0) => 0,
        (_, p) => return invalid(format!("period {p} makes no sense for {kind}")),
    };
    let secret = if options.secret_base32.is_empty() {
        generate_secret(algorithm).map_err(|e| EnrolError::Failed(e.to_string()))?
    } else {
        decode_base32(&options.secret_base32).map_err(|e| EnrolError::Invalid(e.to_string()))?
    };
    let params = OtpParams {
        secret,
        algorithm,
        digits,
        period,
        drift: 0,
    };
    // HOTP starts at counter 1: the code for counter 0 is the check value,
    // shown at enrolment, and never logs in.
    let counter = match kind {
        FactorKind::Hotp => HOTP_START,
        _ => 0,
    };
    let (offer, login_text) = shown(
        kind,
        &params,
        counter,
        request.account,
        request.issuer,
        request.label,
    )?;
    Ok(NewFactor {
        data: FactorData::Otp(params),
        counter,
        offer,
        work: None,
        state: Box::new(()),
        login_text,
        login_prompt: crate::login::CONFIRM_PROMPT,
    })
}

/// The counter a new HOTP factor starts at.
pub const HOTP_START: u64 = 1;

/// What a new (or invited, not yet confirmed) factor of `kind` with
/// `params`, its counter at `counter`, shows its user: the offer (secret,
/// URI, check value) and the text a login shows for it (QR code and
/// secret).
pub fn shown(
    kind: FactorKind,
    params: &OtpParams,
    counter: u64,
    account: &str,
    issuer: &str,
    label: &str,
) -> Result<(EnrolmentOffer, String), EnrolError> {
    let (secret, algorithm, digits, period) = (
        &params.secret,
        params.algorithm,
        params.digits,
        params.period,
    );
    let link = uri(&UriParams {
        kind,
        issuer,
        account,
        secret,
        algorithm,
        digits,
        period,
        counter,
    });
    let qr = mfa_qr::render(&link, mfa_qr::Palette::Plain)
        .map_err(|e| EnrolError::Failed(format!("QR code: {e}")))?;
    let timing = match kind {
        FactorKind::Totp => format!("time-based, every {period} s"),
        _ => "counter-based".to_string(),
    };
    let secret_base32 = encode_base32(secret);
    let login_text = format!(
        "Scan this QR code with an authenticator app, or type in the secret.\n{qr}Secret: {secret_base32}\n({}, {digits} digits, {timing})",
        algorithm.name()
    );
    // Only where counter 0 cannot log in.
    let check_value = match kind == FactorKind::Totp || counter > 0 {
        true => check_value(secret, algorithm, digits),
        false => String::new(),
    };
    let offer = EnrolmentOffer {
        kind: kind.name().into(),
        label: label.into(),
        issuer: issuer.into(),
        algorithm: algorithm.name().into(),
        digits,
        period,
        counter: if kind == FactorKind::Hotp { counter } else { 0 },
        check_value,
        secret_base32,
        uri: link,
        ..EnrolmentOffer::default()
    };
    Ok((offer, login_text))
}

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

/// The check value of an OTP secret: its code for counter 0 (for TOTP,
/// time 0), as Google Authenticator's "check key value" showed it.
pub fn check_value(secret: &[u8], algorithm: Algorithm, digits: u32) -> String {
    super::otp::hotp(secret, 0, digits, algorithm)
}

pub fn encode_base32(secret: &[u8]) -> String {
    BASE32_NOPAD.encode(secret)
}

/// A fresh random secret of the length RFC 4226/6238 recommend.
pub fn generate_secret(algorithm: Algorithm) -> std::io::Result<Vec<u8>> {
    let mut secret = vec![0u8; algorithm.key_len()];
    crate::random::fill(&mut secret).map_err(|e| std::io::Error::other(e.to_string()))?;
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
        _ => uri.push_str(&format!("&counter={}", p.counter)),
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
