//! Checking what a key returned, here rather than in ctap-hid-fido2 (whose
//! verifier checks neither flags nor the counter): the RP ID hash, user
//! presence and verification, the signature over `authData ‖
//! SHA-256(challenge)`, and a signature counter that must go up.

use super::{Credential, PublicKey};
use sha2::{Digest, Sha256};

/// The fixed part of authenticator data: RP ID hash, flags, counter.
const AUTH_DATA_MIN: usize = 32 + 1 + 4;
const FLAG_UP: u8 = 0x01;
const FLAG_UV: u8 = 0x04;

/// Authenticator data, read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AuthData<'a> {
    pub rp_id_hash: &'a [u8],
    pub presence: bool,
    pub verification: bool,
    pub sign_count: u32,
}

impl<'a> AuthData<'a> {
    pub fn parse(bytes: &'a [u8]) -> Result<AuthData<'a>, &'static str> {
        if bytes.len() < AUTH_DATA_MIN {
            return Err("authenticator data is truncated");
        }
        let flags = bytes[32];
        let mut count = [0u8; 4];
        count.copy_from_slice(&bytes[33..37]);
        Ok(AuthData {
            rp_id_hash: &bytes[..32],
            presence: flags & FLAG_UP != 0,
            verification: flags & FLAG_UV != 0,
            sign_count: u32::from_be_bytes(count),
        })
    }
}

/// The assertion was made for another relying party.
pub const OTHER_RP: &str = "the assertion is for another relying party";
/// The signature is not the key's over this login's challenge (forged, or
/// an old assertion replayed).
pub const BAD_SIGNATURE: &str = "the signature does not verify";

/// The audit reason of a wrong assertion (`why`: its [`Refusal::Wrong`]).
pub fn audit_reason(why: &str) -> &'static str {
    match why {
        OTHER_RP => "wrong-relying-party",
        BAD_SIGNATURE => "bad-signature",
        _ => "bad-assertion",
    }
}

/// Why an assertion was not accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// Malformed, another RP, another credential, no presence or
    /// verification where required, or a bad signature: a wrong answer.
    Wrong(&'static str),
    /// All good but the signature counter did not go up: the key may have
    /// been cloned.
    CounterNotIncreased,
}

/// Check an assertion by `credential` (whose counter stands at `stored`)
/// over `challenge`; the counter to move to.
pub fn assertion(
    credential: &Credential,
    stored: u64,
    challenge: &[u8],
    credential_id: &[u8],
    auth_data: &[u8],
    signature: &[u8],
) -> Result<u64, Refusal> {
    // A resident credential has no id of its own here: its signature
    // alone says whether it is the one.
    if !credential.id.is_empty() && credential_id != credential.id.as_slice() {
        return Err(Refusal::Wrong("another credential answered"));
    }
    let data = AuthData::parse(auth_data).map_err(Refusal::Wrong)?;
    if data.rp_id_hash != Sha256::digest(credential.rp_id.as_bytes()).as_slice() {
        return Err(Refusal::Wrong(OTHER_RP));
    }
    if credential.presence && !data.presence {
        return Err(Refusal::Wrong("the key reported no user presence"));
    }
    if credential.verification && !data.verification {
        return Err(Refusal::Wrong("the key reported no user verification"));
    }
    let mut signed = auth_data.to_vec();
    signed.extend_from_slice(&Sha256::digest(challenge));
    if !signature_valid(&credential.public_key, &signed, signature) {
        return Err(Refusal::Wrong(BAD_SIGNATURE));
    }
    counter_after(stored, data.sign_count)
}

/// WebAuthn §6.1.1: a key that reports 0 and was never seen above 0 has no
/// counter; otherwise the counter must go up.
fn counter_after(stored: u64, received: u32) -> Result<u64, Refusal> {
    let received = u64::from(received);
    if (stored == 0 && received == 0) || received > stored {
        Ok(received)
    } else {
        Err(Refusal::CounterNotIncreased)
    }
}

/// Check a credential just made for `rp_id` (its authenticator data).
pub fn made(rp_id: &str, presence: bool, auth_data: &[u8]) -> Result<u64, &'static str> {
    let data = AuthData::parse(auth_data)?;
    if data.rp_id_hash != Sha256::digest(rp_id.as_bytes()).as_slice() {
        return Err("the credential was made for another relying party");
    }
    if presence && !data.presence {
        return Err("the key reported no user presence");
    }
    Ok(u64::from(data.sign_count))
}

fn signature_valid(key: &PublicKey, message: &[u8], signature: &[u8]) -> bool {
    match key {
        PublicKey::Es256(point) => {
            use p256::ecdsa::signature::Verifier;
            let (Ok(key), Ok(signature)) = (
                p256::ecdsa::VerifyingKey::from_sec1_bytes(point),
                p256::ecdsa::Signature::from_der(signature),
            ) else {
                return false;
            };
            key.verify(message, &signature).is_ok()
        }
        PublicKey::Ed25519(bytes) => {
            let (Ok(key), Ok(signature)) = (
                <[u8; 32]>::try_from(bytes.as_slice()),
                <[u8; 64]>::try_from(signature),
            ) else {
                return false;
            };
            let Ok(key) = ed25519_dalek::VerifyingKey::from_bytes(&key) else {
                return false;
            };
            key.verify_strict(message, &ed25519_dalek::Signature::from_bytes(&signature))
                .is_ok()
        }
        PublicKey::None => false,
    }
}

#[cfg(test)]
mod tests {
    //! Assertions signed here with p256 and ed25519-dalek, as a key would
    //! sign them, checked by the code above.

    use super::*;
    use p256::ecdsa::signature::Signer;

    const RP: &str = "pam://testhost";

    fn auth_data(rp: &str, flags: u8, count: u32) -> Vec<u8> {
        let mut data = Sha256::digest(rp.as_bytes()).to_vec();
        data.push(flags);
        data.extend_from_slice(&count.to_be_bytes());
        data
    }

    fn message(auth: &[u8], challenge: &[u8]) -> Vec<u8> {
        let mut m = auth.to_vec();
        m.extend_from_slice(&Sha256::digest(challenge));
        m
    }

    struct Es256Key(p256::ecdsa::SigningKey);

    impl Es256Key {
        fn new(seed: u8) -> Es256Key {
            let mut bytes = [seed; 32];
            bytes[0] = 1;
            Es256Key(p256::ecdsa::SigningKey::from_slice(&bytes).expect("key"))
        }
        fn credential(&self, verification: bool) -> Credential {
            let point = self.0.verifying_key().to_sec1_point(false);
            Credential {
                id: vec![9; 16],
                public_key: PublicKey::Es256(point.as_bytes().to_vec()),
                rp_id: RP.into(),
                presence: true,
                verification,
            }
        }
        fn sign(&self, auth: &[u8], challenge: &[u8]) -> Vec<u8> {
            let signature: p256::ecdsa::Signature = self.0.sign(&message(auth, challenge));
            signature.to_der().as_bytes().to_vec()
        }
    }

    #[test]
    fn a_fresh_es256_assertion_is_accepted_and_moves_the_counter() {
        let key = Es256Key::new(7);
        let cred = key.credential(false);
        let auth = auth_data(RP, FLAG_UP, 5);
        let sig = key.sign(&auth, b"challenge-1");
        assert_eq!(
            assertion(&cred, 4, b"challenge-1", &cred.id, &auth, &sig),
            Ok(5)
        );
    }

    #[test]
    fn a_replayed_assertion_fails_on_a_new_challenge() {
        let key = Es256Key::new(7);
        let cred = key.credential(false);
        let auth = auth_data(RP, FLAG_UP, 5);
        let sig = key.sign(&auth, b"old challenge");
        assert_eq!(
            assertion(&cred, 4, b"new challenge", &cred.id, &auth, &sig),
            Err(Refusal::Wrong("the signature does not verify"))
        );
    }

    #[test]
    fn wrong_rp_missing_presence_or_verification_and_other_keys_are_refused() {
        let key = Es256Key::new(7);
        let cred = key.credential(true);
        let ch = b"c";
        let signed = |rp: &str, flags: u8| {
            let auth = auth_data(rp, flags, 1);
            let sig = key.sign(&auth, ch);
            assertion(&cred, 0, ch, &cred.id, &auth, &sig)
        };
        assert_eq!(signed(RP, FLAG_UP | FLAG_UV), Ok(1));
        assert!(matches!(
            signed("pam://elsewhere", FLAG_UP | FLAG_UV),
            Err(Refusal::Wrong(_))
        ));
        assert!(matches!(signed(RP, FLAG_UV), Err(Refusal::Wrong(_))));
        assert!(matches!(signed(RP, FLAG_UP), Err(Refusal::Wrong(_))));
        let other = Es256Key::new(8);
        let auth = auth_data(RP, FLAG_UP | FLAG_UV, 1);
        let sig = other.sign(&auth, ch);
        assert!(matches!(
            assertion(&cred, 0, ch, &cred.id, &auth, &sig),
            Err(Refusal::Wrong(_))
        ));
        assert!(matches!(
            assertion(&cred, 0, ch, b"another id", &auth, &key.sign(&auth, ch)),
            Err(Refusal::Wrong(_))
        ));
        assert!(matches!(
            assertion(&cred, 0, ch, &cred.id, &auth[..20], &sig),
            Err(Refusal::Wrong(_))
        ));
    }

    #[test]
    fn a_counter_that_does_not_go_up_is_a_possible_clone() {
        let key = Es256Key::new(7);
        let cred = key.credential(false);
        for (stored, received, ok) in [
            (5, 5, false),
            (5, 4, false),
            (5, 6, true),
            (0, 0, true),
            (3, 0, false),
        ] {
            let auth = auth_data(RP, FLAG_UP, received);
            let sig = key.sign(&auth, b"c");
            let got = assertion(&cred, stored, b"c", &cred.id, &auth, &sig);
            match ok {
                true => assert_eq!(got, Ok(u64::from(received))),
                false => assert_eq!(
                    got,
                    Err(Refusal::CounterNotIncreased),
                    "{stored} {received}"
                ),
            }
        }
    }

    #[test]
    fn ed25519_assertions_verify() {
        let signing = ed25519_dalek::SigningKey::from_bytes(&[3; 32]);
        let cred = Credential {
            id: vec![1],
            public_key: PublicKey::Ed25519(signing.verifying_key().to_bytes().to_vec()),
            rp_id: RP.into(),
            presence: true,
            verification: false,
        };
        let auth = auth_data(RP, FLAG_UP, 2);
        let sig = ed25519_dalek::Signer::sign(&signing, &message(&auth, b"c")).to_bytes();
        assert_eq!(assertion(&cred, 1, b"c", &cred.id, &auth, &sig), Ok(2));
        assert!(assertion(&cred, 1, b"d", &cred.id, &auth, &sig).is_err());
    }
}
