//! A factor as stored, and how its per-kind data is written inside the
//! sealed column: a small versioned JSON document, so a kind's fields are
//! its own (a key has no digits, a code has no public key).

use crate::mechanism::email::{EmailFactor, SentCode};
use crate::mechanism::fido2::{Credential, PublicKey};
use crate::mechanism::{Algorithm, FactorData, FactorKind, OtpParams};
use data_encoding::HEXLOWER;
use serde::{Deserialize, Serialize};

/// One registered factor, as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FactorRecord {
    /// Random, unguessable, stable id shown to users.
    pub id: String,
    pub user: String,
    pub kind: FactorKind,
    pub label: String,
    /// What only moves forward, so nothing is accepted twice: TOTP the
    /// lowest time step still acceptable, HOTP the next counter expected, a
    /// key the last signature counter it reported.
    pub counter: u64,
    /// Everything else about the factor, sealed at rest.
    pub data: FactorData,
    pub confirmed: bool,
    /// An admin approved it for privileged services (sudo, su, …).
    pub approved: bool,
    /// Seconds since the epoch.
    pub created: u64,
    /// Seconds since the epoch; 0 = never used.
    pub last_used: u64,
    /// Pending factors only: seconds since the epoch after which the
    /// enrolment is dropped. 0 for confirmed factors.
    pub expires: u64,
}

impl FactorRecord {
    /// The OTP parameters, for the kinds that have them.
    pub fn otp(&self) -> Option<&OtpParams> {
        match &self.data {
            FactorData::Otp(p) => Some(p),
            FactorData::Fido2(_) | FactorData::Email(_) => None,
        }
    }
}

/// The plaintext inside the sealed column.
#[derive(Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase", deny_unknown_fields)]
enum Stored {
    Otp {
        v: u32,
        /// Hex.
        secret: String,
        algorithm: String,
        digits: u32,
        period: u32,
        drift: i64,
    },
    Fido2 {
        v: u32,
        /// Hex.
        credential_id: String,
        key_type: String,
        /// Hex.
        public_key: String,
        rp_id: String,
        presence: bool,
        verification: bool,
    },
    Email {
        v: u32,
        address: String,
        /// Hex: the keyed hash of the code sent last, until it is used.
        code_hash: Option<String>,
        code_sent: u64,
        code_expires: u64,
        window_start: u64,
        sent_in_window: u32,
    },
}

const VERSION: u32 = 1;

/// `data` as the sealed column's plaintext.
pub fn encode(data: &FactorData) -> Vec<u8> {
    let stored = match data {
        FactorData::Otp(p) => Stored::Otp {
            v: VERSION,
            secret: HEXLOWER.encode(&p.secret),
            algorithm: p.algorithm.name().into(),
            digits: p.digits,
            period: p.period,
            drift: p.drift,
        },
        FactorData::Fido2(c) => Stored::Fido2 {
            v: VERSION,
            credential_id: HEXLOWER.encode(&c.id),
            key_type: c.public_key.algorithm().into(),
            public_key: HEXLOWER.encode(c.public_key.bytes()),
            rp_id: c.rp_id.clone(),
            presence: c.presence,
            verification: c.verification,
        },
        FactorData::Email(e) => Stored::Email {
            v: VERSION,
            address: e.address.clone(),
            code_hash: e.code.as_ref().map(|c| HEXLOWER.encode(&c.hash)),
            code_sent: e.code.as_ref().map_or(0, |c| c.sent),
            code_expires: e.code.as_ref().map_or(0, |c| c.expires),
            window_start: e.window_start,
            sent_in_window: e.sent_in_window,
        },
    };
    // A map of strings, numbers and booleans always serialises.
    serde_json::to_vec(&stored).unwrap_or_default()
}

/// The data of a factor of `kind` from the sealed column's plaintext; an
/// error says what does not fit (another kind's data, a field out of range).
pub fn decode(kind: FactorKind, plain: &[u8]) -> Result<FactorData, String> {
    let stored: Stored =
        serde_json::from_slice(plain).map_err(|e| format!("factor data unreadable: {e}"))?;
    let hex = |what: &str, text: &str| {
        HEXLOWER
            .decode(text.as_bytes())
            .map_err(|_| format!("factor data: {what} is not hex"))
    };
    match (kind, stored) {
        (
            FactorKind::Totp | FactorKind::Hotp,
            Stored::Otp {
                v: VERSION,
                secret,
                algorithm,
                digits,
                period,
                drift,
            },
        ) => {
            let algorithm = Algorithm::from_name(&algorithm)
                .ok_or_else(|| format!("factor data: unknown algorithm {algorithm:?}"))?;
            if !(6..=8).contains(&digits) {
                return Err(format!("factor data: {digits} digits"));
            }
            Ok(FactorData::Otp(OtpParams {
                secret: hex("the secret", &secret)?,
                algorithm,
                digits,
                period,
                drift,
            }))
        }
        (
            FactorKind::Fido2,
            Stored::Fido2 {
                v: VERSION,
                credential_id,
                key_type,
                public_key,
                rp_id,
                presence,
                verification,
            },
        ) => Ok(FactorData::Fido2(Credential {
            id: hex("the credential id", &credential_id)?,
            public_key: PublicKey::from_parts(&key_type, hex("the public key", &public_key)?)
                .map_err(|e| format!("factor data: {e}"))?,
            rp_id,
            presence,
            verification,
        })),
        (
            FactorKind::Email,
            Stored::Email {
                v: VERSION,
                address,
                code_hash,
                code_sent,
                code_expires,
                window_start,
                sent_in_window,
            },
        ) => {
            let code = match code_hash {
                None => None,
                Some(h) => Some(SentCode {
                    hash: hex("the code hash", &h)?
                        .try_into()
                        .map_err(|_| "factor data: the code hash is not 32 bytes".to_string())?,
                    sent: code_sent,
                    expires: code_expires,
                }),
            };
            Ok(FactorData::Email(Box::new(EmailFactor {
                address,
                code,
                window_start,
                sent_in_window,
            })))
        }
        (kind, _) => Err(format!(
            "factor data does not belong to a {kind} factor, or has an unknown version"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_round_trips_and_kinds_do_not_mix() {
        let otp = FactorData::Otp(OtpParams {
            secret: b"12345678901234567890".to_vec(),
            algorithm: Algorithm::Sha256,
            digits: 8,
            period: 30,
            drift: -2,
        });
        let key = FactorData::Fido2(Credential {
            id: vec![1, 2, 3],
            public_key: PublicKey::Ed25519(vec![7; 32]),
            rp_id: "pam://host".into(),
            presence: true,
            verification: false,
        });
        let mail = |code| {
            FactorData::Email(Box::new(EmailFactor {
                address: "alice@example.org".into(),
                code,
                window_start: 1000,
                sent_in_window: 2,
            }))
        };
        for email in [
            mail(None),
            mail(Some(SentCode {
                hash: [9; 32],
                sent: 1000,
                expires: 1900,
            })),
        ] {
            assert_eq!(
                decode(FactorKind::Email, &encode(&email)),
                Ok(email.clone())
            );
            assert!(decode(FactorKind::Totp, &encode(&email)).is_err());
        }
        assert_eq!(decode(FactorKind::Totp, &encode(&otp)), Ok(otp.clone()));
        assert_eq!(decode(FactorKind::Fido2, &encode(&key)), Ok(key.clone()));
        assert!(decode(FactorKind::Fido2, &encode(&otp)).is_err());
        assert!(decode(FactorKind::Hotp, &encode(&key)).is_err());
        assert!(decode(FactorKind::Totp, b"{\"type\":\"otp\"}").is_err());
        assert!(decode(FactorKind::Totp, b"\xff").is_err());
    }
}
