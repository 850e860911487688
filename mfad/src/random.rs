//! Randomness: the one place mfad asks the operating system for it. Every
//! secret, salt, nonce, key, code, challenge, handle and id comes from
//! [`fill`]; clippy.toml bans getrandom everywhere else, so there is one
//! source to audit and no second, weaker one to slip in.

/// Fill `bytes` from the kernel's CSPRNG (getrandom(2)), blocking until it
/// is seeded. An error means no secret can be made; callers refuse.
pub fn fill(bytes: &mut [u8]) -> Result<(), getrandom::Error> {
    // The owner of the random source: this is the one call.
    #[allow(clippy::disallowed_methods)]
    getrandom::fill(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fills_every_byte_and_differs_each_time() {
        let (mut a, mut b) = ([0u8; 32], [0u8; 32]);
        fill(&mut a).expect("randomness");
        fill(&mut b).expect("randomness");
        assert_ne!(a, [0u8; 32]);
        assert_ne!(a, b, "two draws of 256 bits do not collide");
        fill(&mut []).expect("nothing to fill is fine");
    }
}
