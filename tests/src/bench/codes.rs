//! Users, secrets and codes for the benchmark.
//!
//! User `i` is named `mfab<i>`; its 20-byte SHA1 secret is derived from the
//! run's random seed and `i`, so the fixtures and every worker process agree
//! on it without passing secrets around. Codes come from mfad's HOTP
//! function; google-authenticator and pam_oath accepting the same codes
//! shows they are right.

use mfad::mechanism::otp::hotp;
use mfad::mechanism::Algorithm;
use std::io::Read;
use std::time::{SystemTime, UNIX_EPOCH};

/// TOTP parameters of every benchmark factor (the defaults of all three
/// systems): SHA1, 6 digits, 30 s.
pub const DIGITS: u32 = 6;
pub const PERIOD: u64 = 30;
pub const SECRET_LEN: usize = 20;

/// The login name of benchmark user `index`.
pub fn user_name(index: u64) -> String {
    format!("mfab{index}")
}

/// Where every user's secret comes from.
#[derive(Clone, Copy, Debug)]
pub struct Secrets {
    seed: u64,
}

impl Secrets {
    /// A new seed from the kernel: each run enrols fresh secrets.
    pub fn random() -> Result<Secrets, String> {
        let mut bytes = [0u8; 8];
        std::fs::File::open("/dev/urandom")
            .and_then(|mut f| f.read_exact(&mut bytes))
            .map_err(|e| format!("cannot read /dev/urandom: {e}"))?;
        Ok(Secrets {
            seed: u64::from_le_bytes(bytes),
        })
    }

    pub fn from_seed(seed: u64) -> Secrets {
        Secrets { seed }
    }

    pub fn seed(&self) -> u64 {
        self.seed
    }

    /// The secret of user `index` (splitmix64 over seed and index: distinct
    /// per user, which is all a load generator needs).
    pub fn secret(&self, index: u64) -> [u8; SECRET_LEN] {
        let mut state = self.seed ^ index.wrapping_mul(0xD6E8_FEB8_6659_FD93);
        let mut out = [0u8; SECRET_LEN];
        for chunk in out.chunks_mut(8) {
            state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = state;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^= z >> 31;
            chunk.copy_from_slice(&z.to_be_bytes()[..chunk.len()]);
        }
        out
    }
}

/// Seconds since the epoch.
// Codes for the real mfad are made for its real clock.
#[allow(clippy::disallowed_methods)]
pub fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// The TOTP code of `secret` for the current time step.
pub fn totp_now(secret: &[u8]) -> String {
    hotp(secret, now() / PERIOD, DIGITS, Algorithm::Sha1)
}

/// The HOTP code of `secret` for `counter`.
pub fn hotp_code(secret: &[u8], counter: u64) -> String {
    hotp(secret, counter, DIGITS, Algorithm::Sha1)
}

/// Lower-case hex (pam_oath's usersfile).
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Base32 without padding (google-authenticator's secret file).
pub fn base32(bytes: &[u8]) -> String {
    mfa_tests::otp::base32(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_stable_and_distinct() {
        let s = Secrets::from_seed(42);
        assert_eq!(s.secret(7), Secrets::from_seed(42).secret(7));
        assert_ne!(s.secret(7), s.secret(8));
        assert_ne!(s.secret(7), Secrets::from_seed(43).secret(7));
    }

    #[test]
    fn codes_match_rfc4226() {
        assert_eq!(hotp_code(b"12345678901234567890", 9), "520489");
    }
}
