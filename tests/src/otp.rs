//! One-time codes for the tests, made by `oathtool` (package oathtool) and
//! never by our own code: an implementation checked only against itself would
//! prove nothing. Secrets are random bytes from the kernel.

use std::io::Read;
use std::process::Command;
use std::time::{SystemTime, UNIX_EPOCH};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Algorithm {
    Sha1,
    Sha256,
    Sha512,
}

impl Algorithm {
    /// As mfad spells it (config, `EnrolOptions`, otpauth URIs).
    pub fn name(self) -> &'static str {
        match self {
            Algorithm::Sha1 => "SHA1",
            Algorithm::Sha256 => "SHA256",
            Algorithm::Sha512 => "SHA512",
        }
    }
    fn oathtool(self) -> &'static str {
        match self {
            Algorithm::Sha1 => "sha1",
            Algorithm::Sha256 => "sha256",
            Algorithm::Sha512 => "sha512",
        }
    }
    /// A secret as long as the hash output (RFC 6238's test keys), rounded up
    /// to whole base32 blocks.
    pub fn secret_len(self) -> usize {
        match self {
            Algorithm::Sha1 => 20,
            Algorithm::Sha256 => 35,
            Algorithm::Sha512 => 65,
        }
    }
}

/// Seconds since the epoch, now.
// Codes for the real mfad are made for its real clock.
#[allow(clippy::disallowed_methods)]
pub fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// `len` random bytes, base32 (RFC 4648, upper case, no padding).
pub fn random_secret(len: usize) -> String {
    let mut bytes = vec![0u8; len];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .expect("cannot read /dev/urandom");
    base32(&bytes)
}

/// RFC 4648 base32 without padding.
pub fn base32(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let mut out = String::new();
    let mut buffer: u32 = 0;
    let mut bits = 0;
    for &b in bytes {
        buffer = (buffer << 8) | u32::from(b);
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            out.push(ALPHABET[((buffer >> bits) & 31) as usize] as char);
        }
    }
    if bits > 0 {
        out.push(ALPHABET[((buffer << (5 - bits)) & 31) as usize] as char);
    }
    out
}

/// The hex form of a base32 secret (to look for it in logs).
pub fn base32_to_hex(secret: &str) -> String {
    let mut buffer: u64 = 0;
    let mut bits = 0;
    let mut out = String::new();
    for c in secret.trim_end_matches('=').chars() {
        let v = match c {
            'A'..='Z' => c as u64 - 'A' as u64,
            'a'..='z' => c as u64 - 'a' as u64,
            '2'..='7' => c as u64 - '2' as u64 + 26,
            _ => panic!("not base32: {c:?}"),
        };
        buffer = (buffer << 5) | v;
        bits += 5;
        if bits >= 8 {
            bits -= 8;
            out.push_str(&format!("{:02x}", (buffer >> bits) & 0xff));
        }
    }
    out
}

/// TOTP parameters of one factor.
#[derive(Clone, Debug)]
pub struct Totp {
    pub secret: String,
    pub algorithm: Algorithm,
    pub digits: u32,
    pub period: u64,
}

impl Totp {
    pub fn new(algorithm: Algorithm, digits: u32, period: u64) -> Totp {
        Totp {
            secret: random_secret(algorithm.secret_len()),
            algorithm,
            digits,
            period,
        }
    }
    /// The default factor: SHA1, 6 digits, 30 s.
    pub fn default_params() -> Totp {
        Totp::new(Algorithm::Sha1, 6, 30)
    }
    /// The time step containing `unix`.
    pub fn step_at(&self, unix: u64) -> u64 {
        unix / self.period
    }
    /// The code of time step `step`.
    pub fn code_for_step(&self, step: u64) -> String {
        oath_totp_at(
            &self.secret,
            self.algorithm,
            self.digits,
            self.period,
            step * self.period,
        )
    }
    /// The code `offset_steps` steps away from now.
    pub fn code(&self, offset_steps: i64) -> String {
        oath_totp(
            &self.secret,
            self.algorithm,
            self.digits,
            self.period,
            offset_steps,
        )
    }
    /// A code valid in none of the steps within ±`reach` of now.
    pub fn wrong_code(&self, reach: u64) -> String {
        let step = self.step_at(now());
        let valid: Vec<String> = (step.saturating_sub(reach + 1)..=step + reach + 1)
            .map(|s| self.code_for_step(s))
            .collect();
        wrong_code_avoiding(self.digits, &valid)
    }
}

/// A code of `digits` digits equal to none of `valid`.
pub fn wrong_code_avoiding(digits: u32, valid: &[String]) -> String {
    (0..10u32)
        .map(|d| std::iter::repeat_n(char::from_digit(d, 10).unwrap_or('0'), digits as usize))
        .map(String::from_iter)
        .find(|c| !valid.contains(c))
        .unwrap_or_else(|| unreachable!("ten candidates, at most {} taken", valid.len()))
}

/// TOTP code for the time `at_offset_steps` periods from now.
pub fn oath_totp(
    secret_b32: &str,
    algorithm: Algorithm,
    digits: u32,
    period: u64,
    at_offset_steps: i64,
) -> String {
    let at = now() as i64 + at_offset_steps * period as i64;
    oath_totp_at(secret_b32, algorithm, digits, period, at.max(0) as u64)
}

/// TOTP code at the given Unix time.
pub fn oath_totp_at(
    secret_b32: &str,
    algorithm: Algorithm,
    digits: u32,
    period: u64,
    unix: u64,
) -> String {
    oathtool(&[
        format!("--totp={}", algorithm.oathtool()),
        format!("--digits={digits}"),
        format!("--time-step-size={period}s"),
        "--base32".into(),
        format!("--now=@{unix}"),
        secret_b32.into(),
    ])
}

/// HOTP code (SHA1, RFC 4226) for `counter`; the secret is base32.
pub fn oath_hotp(secret_b32: &str, counter: u64, digits: u32) -> String {
    oathtool(&[
        "--hotp".into(),
        format!("--digits={digits}"),
        format!("--counter={counter}"),
        "--base32".into(),
        secret_b32.into(),
    ])
}

fn oathtool(args: &[String]) -> String {
    let out = Command::new("oathtool")
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run oathtool (apt-get install oathtool): {e}"));
    assert!(
        out.status.success(),
        "oathtool {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let code = String::from_utf8_lossy(&out.stdout).trim().to_string();
    assert!(
        !code.is_empty() && code.chars().all(|c| c.is_ascii_digit()),
        "oathtool printed {code:?}"
    );
    code
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base32_matches_rfc4648() {
        assert_eq!(base32(b"foobar"), "MZXW6YTBOI");
        assert_eq!(
            base32(b"12345678901234567890"),
            "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ"
        );
        assert_eq!(base32_to_hex("MZXW6YTBOI"), "666f6f626172");
    }

    #[test]
    fn oathtool_reproduces_rfc_vectors() {
        // RFC 6238 Appendix B, T = 59 and T = 20000000000 with the SHA1 key.
        let key = base32(b"12345678901234567890");
        assert_eq!(oath_totp_at(&key, Algorithm::Sha1, 8, 30, 59), "94287082");
        assert_eq!(
            oath_totp_at(&key, Algorithm::Sha1, 8, 30, 20_000_000_000),
            "65353130"
        );
        // RFC 4226 Appendix D, counter 9.
        assert_eq!(oath_hotp(&key, 9, 6), "520489");
    }

    #[test]
    fn wrong_code_avoids_every_valid_one() {
        let valid = vec!["000000".to_string(), "111111".to_string()];
        assert_eq!(wrong_code_avoiding(6, &valid), "222222");
    }
}
