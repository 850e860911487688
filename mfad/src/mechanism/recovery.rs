//! One-time recovery codes for a lost device: generated in a batch, shown
//! once, kept only as salted Argon2id hashes, each usable once.
//!
//! A code is 12 characters from the lower-case base32 alphabet, shown as
//! `abcd-efgh-ijkl` (60 bits). Its shape tells it apart from an OTP code,
//! so a mistyped OTP never pays for the slow hash checks.
//!
//! Scratch codes imported from google-authenticator are recovery codes
//! too: 8 digits, kept as the same slow hashes, marked as scratch codes.
//! An 8-digit answer is checked against those alone; when none matches
//! (none there, the usual case) it is not counted here but goes to the
//! asked factor, which may take 8-digit codes.

use super::{Fallback, FallbackUse};
use crate::store::{Lockout, RecoveryUse, Store, StoreError};
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};

/// Recovery codes typed at any code prompt.
pub struct RecoveryCodes;

impl Fallback for RecoveryCodes {
    fn name(&self) -> &'static str {
        "recovery-code"
    }

    fn hint(&self) -> &'static str {
        "A recovery code can be typed at any code prompt."
    }

    fn claims(&self, answer: &str) -> bool {
        typed(answer).is_some()
    }

    /// The slow hash checks run outside the store's lock; then one
    /// transaction uses the matching code or counts the failure.
    fn check(
        &self,
        store: &dyn Store,
        user: &str,
        answer: &str,
        now: u64,
        lockout: Lockout,
    ) -> Result<FallbackUse, StoreError> {
        if store.locked_until(user, now)? > 0 {
            return Ok(FallbackUse::Locked);
        }
        let matched = match typed(answer) {
            None => None,
            Some(Typed::Recovery(code)) => store
                .unused_recovery_codes(user)?
                .into_iter()
                .filter(|(_, hash)| !hash.starts_with(SCRATCH_MARK))
                .find(|(_, hash)| verify(&code, hash))
                .map(|(rowid, _)| rowid),
            Some(Typed::Scratch(code)) => {
                let found = store
                    .unused_recovery_codes(user)?
                    .into_iter()
                    .filter_map(|(rowid, hash)| {
                        hash.strip_prefix(SCRATCH_MARK)
                            .map(|phc| (rowid, phc.to_string()))
                    })
                    .find(|(_, phc)| verify(&code, phc))
                    .map(|(rowid, _)| rowid);
                if found.is_none() {
                    return Ok(FallbackUse::NotMine);
                }
                found
            }
        };
        Ok(match store.use_recovery_code(user, matched, now, lockout)? {
            RecoveryUse::Used { left } => FallbackUse::Used {
                note: format!(
                    "Recovery code accepted; {left} left. Set up your authenticator again with mfactl."
                ),
                detail: ("left", left.to_string()),
            },
            RecoveryUse::Locked => FallbackUse::Locked,
            RecoveryUse::Rejected {
                failures,
                locked_until,
            } => FallbackUse::Rejected {
                failures,
                locked_until,
            },
        })
    }
}

/// Codes in a batch.
pub const BATCH: usize = 10;
const LEN: usize = 12;
const ALPHABET: &[u8; 32] = b"abcdefghijklmnopqrstuvwxyz234567";

/// OWASP's minimum for Argon2id: 19 MiB, 2 passes, 1 lane.
fn argon2() -> Result<Argon2<'static>, String> {
    let params = Params::new(19 * 1024, 2, 1, None).map_err(|e| e.to_string())?;
    Ok(Argon2::new(Algorithm::Argon2id, Version::V0x13, params))
}

/// A fresh batch: the codes as the user is shown them, and the hashes that
/// are all mfad keeps.
pub fn new_batch() -> Result<(Vec<String>, Vec<String>), String> {
    let codes = generate()?;
    let hashes = codes
        .iter()
        .map(|c| {
            normalise(c)
                .ok_or_else(|| "malformed code".to_string())
                .and_then(|c| hash(&c))
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok((codes, hashes))
}

/// A fresh batch, formatted for the user.
pub fn generate() -> Result<Vec<String>, String> {
    let mut codes = Vec::with_capacity(BATCH);
    for _ in 0..BATCH {
        let mut bytes = [0u8; LEN];
        crate::random::fill(&mut bytes).map_err(|e| format!("no randomness: {e}"))?;
        let chars: String = bytes
            .iter()
            .map(|b| ALPHABET[usize::from(b % 32)] as char)
            .collect();
        codes.push(format!(
            "{}-{}-{}",
            &chars[0..4],
            &chars[4..8],
            &chars[8..12]
        ));
    }
    Ok(codes)
}

/// What a stored hash of a scratch code starts with.
const SCRATCH_MARK: &str = "scratch:";
/// Digits of an imported scratch code.
pub const SCRATCH_DIGITS: usize = 8;

/// An answer with the shape of one of these codes, as compared.
#[derive(Debug, PartialEq, Eq)]
enum Typed {
    Recovery(String),
    Scratch(String),
}

fn typed(answer: &str) -> Option<Typed> {
    let trimmed = answer.trim();
    if trimmed.len() == SCRATCH_DIGITS && trimmed.bytes().all(|b| b.is_ascii_digit()) {
        return Some(Typed::Scratch(trimmed.to_string()));
    }
    normalise(answer).map(Typed::Recovery)
}

/// The stored form of an imported scratch code: its slow hash, marked.
pub fn scratch_hash(code: &str) -> Result<String, String> {
    let valid = code.len() == SCRATCH_DIGITS && code.bytes().all(|b| b.is_ascii_digit());
    if !valid {
        return Err(format!("a scratch code is {SCRATCH_DIGITS} digits"));
    }
    Ok(format!("{SCRATCH_MARK}{}", hash(code)?))
}

/// The code as compared: dashes and spaces dropped, lower case. `None` if
/// the answer does not have a recovery code's shape.
pub fn normalise(answer: &str) -> Option<String> {
    let code: String = answer
        .chars()
        .filter(|c| !matches!(c, '-' | ' '))
        .map(|c| c.to_ascii_lowercase())
        .collect();
    let shaped = code.len() == LEN
        && code.bytes().all(|b| ALPHABET.contains(&b))
        && code.bytes().any(|b| b.is_ascii_lowercase());
    shaped.then_some(code)
}

/// A salted slow hash of a normalised code, as a PHC string.
pub fn hash(code: &str) -> Result<String, String> {
    let mut salt = [0u8; 16];
    crate::random::fill(&mut salt).map_err(|e| format!("no randomness: {e}"))?;
    let salt = SaltString::encode_b64(&salt).map_err(|e| e.to_string())?;
    argon2()?
        .hash_password(code.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| e.to_string())
}

/// Whether a normalised code matches a stored hash.
pub fn verify(code: &str, phc: &str) -> bool {
    let (Ok(hash), Ok(argon2)) = (PasswordHash::new(phc), argon2()) else {
        return false;
    };
    argon2.verify_password(code.as_bytes(), &hash).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batch_is_distinct_and_well_formed() {
        let codes = generate().expect("codes");
        assert_eq!(codes.len(), BATCH);
        for code in &codes {
            assert_eq!(code.len(), 14, "{code}");
            assert!(normalise(code).is_some(), "{code}");
        }
        let mut unique = codes.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(unique.len(), BATCH);
    }

    #[test]
    fn otp_codes_do_not_look_like_recovery_codes() {
        for answer in [
            "123456",
            "12345678",
            "",
            "234567234567",
            "abcd-efgh-ijk",
            "abcd-efgh-ijk!",
        ] {
            assert_eq!(normalise(answer), None, "{answer:?}");
        }
        assert_eq!(normalise("ABCD efgh-IJKL").as_deref(), Some("abcdefghijkl"));
    }

    #[test]
    fn eight_digits_are_scratch_codes_and_kept_apart() {
        assert_eq!(typed("61141614"), Some(Typed::Scratch("61141614".into())));
        assert_eq!(typed("6114161"), None);
        assert_eq!(typed("123456"), None);
        let stored = scratch_hash("61141614").expect("hash");
        assert!(stored.starts_with(SCRATCH_MARK) && !stored.contains("61141614"));
        assert!(verify("61141614", &stored[SCRATCH_MARK.len()..]));
        assert!(scratch_hash("abcd").is_err());
    }

    #[test]
    fn hashes_are_salted_and_verify() {
        let a = hash("abcdefghijkl").expect("hash");
        let b = hash("abcdefghijkl").expect("hash");
        assert_ne!(a, b, "salted");
        assert!(!a.contains("abcdefghijkl"));
        assert!(verify("abcdefghijkl", &a));
        assert!(!verify("abcdefghijkm", &a));
        assert!(!verify("abcdefghijkl", "not a hash"));
    }
}
