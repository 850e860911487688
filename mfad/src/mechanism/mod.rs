//! Second-factor mechanisms. Each one checks an answer against a factor's
//! parameters and says which counter the factor moves to; the store applies
//! that in the same transaction as the check. A new method is one new module
//! implementing [`Mechanism`].

mod hotp;
pub mod otp;
pub mod otpauth;
pub mod recovery;
mod totp;

pub use hotp::Hotp;
pub use otp::Algorithm;
pub use totp::Totp;

use std::fmt;

/// The kinds of factor mfad knows. Stored by name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum FactorKind {
    Totp,
    Hotp,
}

impl FactorKind {
    pub fn name(self) -> &'static str {
        match self {
            FactorKind::Totp => "totp",
            FactorKind::Hotp => "hotp",
        }
    }
    pub fn from_name(name: &str) -> Option<FactorKind> {
        match name {
            "totp" => Some(FactorKind::Totp),
            "hotp" => Some(FactorKind::Hotp),
            _ => None,
        }
    }
}

impl fmt::Display for FactorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// What a mechanism needs to check a code: the shared secret and its
/// parameters, and the counter state.
#[derive(Clone, PartialEq, Eq)]
pub struct OtpParams {
    pub secret: Vec<u8>,
    pub algorithm: Algorithm,
    pub digits: u32,
    /// TOTP time step in seconds; unused by HOTP.
    pub period: u32,
    /// HOTP: the next counter value expected. TOTP: the lowest time step
    /// still acceptable (one past the last accepted), so no code is
    /// accepted twice and none older than an accepted one.
    pub counter: u64,
    /// TOTP: how many steps the authenticator's clock is ahead (or behind,
    /// negative), learned from accepted codes, capped; 0 for HOTP.
    pub drift: i64,
}

/// Where a factor moves after an accepted code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Advance {
    pub counter: u64,
    pub drift: i64,
}

impl fmt::Debug for OtpParams {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OtpParams")
            .field("secret", &"<redacted>")
            .field("algorithm", &self.algorithm)
            .field("digits", &self.digits)
            .field("period", &self.period)
            .field("counter", &self.counter)
            .field("drift", &self.drift)
            .finish()
    }
}

/// A second-factor method.
pub trait Mechanism: Send + Sync {
    fn kind(&self) -> FactorKind;
    /// Check `answer` at time `now` (seconds since the epoch). On success,
    /// where the factor moves to; `None` if the answer is wrong, malformed
    /// or already used.
    fn verify(&self, params: &OtpParams, answer: &str, now: u64) -> Option<Advance>;
    /// Find two consecutive codes, `first` then `second`, in a range wider
    /// than `verify` looks at (a token pressed many times, a clock gone
    /// wrong); where the factor moves to if they are found.
    fn resync(&self, params: &OtpParams, first: &str, second: &str, now: u64) -> Option<Advance>;
}

/// The code a user typed, if it has the shape of a `digits`-long code.
/// Spaces are allowed (apps show codes as "123 456").
pub(crate) fn normalise_code(answer: &str, digits: u32) -> Option<String> {
    let code: String = answer.chars().filter(|c| *c != ' ').collect();
    (code.len() == digits as usize && code.bytes().all(|b| b.is_ascii_digit())).then_some(code)
}
