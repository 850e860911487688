//! The codes themselves: uniform random digits, kept only as a keyed hash
//! (HMAC-SHA-256 under the store's hash key, bound to the user), compared
//! in constant time.

use hmac::{Hmac, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;

/// `length` random digits, each uniform (bytes of 250 and above are
/// drawn again, so no digit is likelier than another).
pub fn new_code(length: u32) -> Result<String, String> {
    let mut code = String::with_capacity(length as usize);
    let mut bytes = [0u8; 32];
    while code.len() < length as usize {
        crate::random::fill(&mut bytes).map_err(|e| format!("no randomness for a code: {e}"))?;
        for b in bytes.iter().filter(|b| **b < 250) {
            if code.len() == length as usize {
                break;
            }
            code.push(char::from(b'0' + b % 10));
        }
    }
    Ok(code)
}

/// What is kept of `code` sent to `user`; `None` only if HMAC refused the
/// key, which it never does (any length is valid).
pub fn keyed_hash(key: &[u8; 32], user: &str, code: &str) -> Option<[u8; 32]> {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key).ok()?;
    mac.update(b"pam_mfa e-mail code v1\0");
    mac.update(user.as_bytes());
    mac.update(b"\0");
    mac.update(code.as_bytes());
    Some(mac.finalize().into_bytes().into())
}

/// Whether `code` for `user` is the one `kept` was made from.
pub fn matches(key: &[u8; 32], user: &str, code: &str, kept: &[u8; 32]) -> bool {
    keyed_hash(key, user, code).is_some_and(|h| bool::from(h.ct_eq(kept)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_have_their_length_and_spread_over_every_digit() {
        let mut seen = [0u32; 10];
        for _ in 0..200 {
            let code = new_code(20).expect("code");
            assert_eq!(code.len(), 20);
            for b in code.bytes() {
                seen[usize::from(b - b'0')] += 1;
            }
        }
        // 4000 digits: each of the ten about 400 times.
        assert!(seen.iter().all(|n| (300..500).contains(n)), "{seen:?}");
    }

    #[test]
    fn a_hash_fits_only_its_code_and_its_user() {
        let key = [7u8; 32];
        let kept = keyed_hash(&key, "alice", "123456").expect("hash");
        assert!(matches(&key, "alice", "123456", &kept));
        assert!(!matches(&key, "alice", "123457", &kept));
        assert!(!matches(&key, "bob", "123456", &kept));
        assert!(!matches(&[8u8; 32], "alice", "123456", &kept));
    }
}
