//! USB security keys, FIDO2 (CTAP2) through ctap-hid-fido2: a credential
//! made on the key at enrolment, an assertion over a fresh random challenge
//! at every login, verified here — RP ID hash, user presence and
//! verification, the signature, and a signature counter that must go up.

use crate::mechanism::ChallengeError;
use std::fmt;

/// A credential as mfad keeps it (sealed, with the factor).
#[derive(Clone, PartialEq, Eq)]
pub struct Credential {
    /// The credential id the key gave at enrolment.
    pub id: Vec<u8>,
    pub public_key: PublicKey,
    /// The relying party the credential is bound to (`pam://host`, or an
    /// imported pam_u2f origin).
    pub rp_id: String,
    /// The key must report user presence (a touch).
    pub presence: bool,
    /// The key must report user verification (a PIN or built-in UV).
    pub verification: bool,
}

impl fmt::Debug for Credential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credential")
            .field("id_len", &self.id.len())
            .field("algorithm", &self.public_key.algorithm())
            .field("rp_id", &self.rp_id)
            .field("presence", &self.presence)
            .field("verification", &self.verification)
            .finish()
    }
}

/// A credential's public key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PublicKey {
    /// ECDSA P-256 with SHA-256 (COSE -7): the uncompressed SEC1 point.
    Es256(Vec<u8>),
    /// Ed25519 (COSE -8): 32 bytes.
    Ed25519(Vec<u8>),
    /// Not made yet: the key is still making the credential (a pending
    /// enrolment). Nothing verifies against it.
    None,
}

impl PublicKey {
    /// The name stored and shown: `es256`, `eddsa` (as pam_u2f writes them).
    pub fn algorithm(&self) -> &'static str {
        match self {
            PublicKey::Es256(_) => "es256",
            PublicKey::Ed25519(_) => "eddsa",
            PublicKey::None => "none",
        }
    }

    pub fn bytes(&self) -> &[u8] {
        match self {
            PublicKey::Es256(b) | PublicKey::Ed25519(b) => b,
            PublicKey::None => &[],
        }
    }

    /// A key from its algorithm name and bytes, checked for shape.
    pub fn from_parts(algorithm: &str, bytes: Vec<u8>) -> Result<PublicKey, String> {
        match algorithm.to_ascii_lowercase().as_str() {
            "es256" if bytes.len() == 65 && bytes[0] == 4 => Ok(PublicKey::Es256(bytes)),
            "es256" if bytes.len() == 64 => {
                let mut point = Vec::with_capacity(65);
                point.push(4);
                point.extend_from_slice(&bytes);
                Ok(PublicKey::Es256(point))
            }
            "es256" => Err(format!(
                "an ES256 public key is 64 or 65 bytes, not {}",
                bytes.len()
            )),
            "eddsa" if bytes.len() == 32 => Ok(PublicKey::Ed25519(bytes)),
            "eddsa" => Err(format!(
                "an EdDSA public key is 32 bytes, not {}",
                bytes.len()
            )),
            "none" if bytes.is_empty() => Ok(PublicKey::None),
            other => Err(format!(
                "key type {other:?} is not supported; use es256 or eddsa"
            )),
        }
    }
}

mod device;
mod verify;

pub use device::{HidKeys, KeyError, Keys, Made, Request, Signed};

use super::{
    Advance, Ask, Challenge, EnrolError, EnrolRequest, FactorData, FactorKind, LoginContext,
    Mechanism, NewFactor, Next, Response, ResponseWork, Verdict, Work,
};
use crate::config::Fido2Config;
use crate::store::FactorRecord;
use mfa_dbus::EnrolmentOffer;
use std::any::Any;
use std::path::PathBuf;
use std::sync::Arc;

const TOUCH_TEXT: &str = "Touch your security key.";
const ENROL_TEXT: &str = "Touch your security key to finish setting it up.";
const PIN_PROMPT: &str = "PIN of your security key: ";
/// The audit reason of an assertion whose counter did not go up.
pub const CLONED: &str = "possibly-cloned-key";

/// Security keys as a second factor.
pub struct Fido2 {
    /// The relying party every new credential is bound to.
    rp_id: String,
    keys: Arc<dyn Keys>,
}

/// What a login or an enrolment remembers between asking and checking.
struct Challenged {
    challenge: [u8; 32],
    /// A login's: what the key is asked for.
    asked: Option<Asked>,
    /// The PIN is still to come (the key is started once it is typed).
    pin_pending: bool,
}

/// One assertion request a login sends: the relying party, and the
/// credentials any plugged key may answer with, each with its factor.
#[derive(Clone)]
struct Asked {
    rp_id: String,
    /// Credential id → factor id; empty for a resident credential (found
    /// by the RP ID), which is then the only one.
    credentials: Vec<(Vec<u8>, String)>,
}

impl Fido2 {
    /// Security keys as `config` says, or `None` when they are off.
    pub fn from_config(config: &Fido2Config, hostname: &str) -> Option<Fido2> {
        config.enabled.then(|| Fido2 {
            rp_id: config.rp_id_on(hostname),
            keys: Arc::new(HidKeys::new(config.sysfs.clone(), config.dev.clone())),
        })
    }

    pub fn with_keys(rp_id: String, keys: Arc<dyn Keys>) -> Fido2 {
        Fido2 { rp_id, keys }
    }

    fn key(&self) -> Result<PathBuf, String> {
        self.keys
            .plugged()
            .into_iter()
            .next()
            .ok_or_else(|| KeyError::Absent.to_string())
    }

    /// Ask the plugged keys, one after the other, for an assertion over
    /// `challenge` by one of `asked`'s credentials, off the runtime; a key
    /// that holds none of them is passed over (it answers at once, with no
    /// touch), the first that signs answers. With a PIN and several keys
    /// plugged in, the PIN goes only to keys a silent check found holding
    /// one: another key's PIN retries are never spent on it.
    fn assert(
        &self,
        asked: &Asked,
        challenge: [u8; 32],
        pin: Option<String>,
    ) -> Result<ResponseWork, String> {
        let plugged = self.keys.plugged();
        if plugged.is_empty() {
            return Err(KeyError::Absent.to_string());
        }
        let keys = Arc::clone(&self.keys);
        let rp_id = asked.rp_id.clone();
        let ids: Vec<Vec<u8>> = asked
            .credentials
            .iter()
            .map(|(id, _)| id.clone())
            .filter(|id| !id.is_empty())
            .collect();
        Work::spawn("mfad-fido2", move |_| {
            let request = Request {
                rp_id: &rp_id,
                challenge: &challenge,
                pin: pin.as_deref(),
                credentials: &ids,
                eddsa: false,
            };
            let mut passed = KeyError::NoCredential;
            let mut candidates = Vec::new();
            if request.pin.is_some() && plugged.len() > 1 && !ids.is_empty() {
                for key in &plugged {
                    match keys.holds(key, &request) {
                        Ok(true) => candidates.push(key.clone()),
                        Ok(false) => {}
                        Err(KeyError::Busy) => passed = KeyError::Busy,
                        Err(e) => return Err(e.to_string()),
                    }
                }
            } else {
                candidates = plugged;
            }
            for key in &candidates {
                match keys.get_assertion(key, &request) {
                    Ok(signed) => return Ok(Response::Evidence(Box::new(signed))),
                    Err(KeyError::NoCredential) => {}
                    // Another login holds this key: say so if none signs.
                    Err(KeyError::Busy) => passed = KeyError::Busy,
                    Err(e) => return Err(e.to_string()),
                }
            }
            Err(passed.to_string())
        })
    }

    /// The request of a login asking `factor`'s key, covering `others` of
    /// the same relying party and the same need for verification, so that
    /// whichever of the user's keys is plugged in can answer. A resident
    /// credential (imported from pam_u2f as `*`, no id) is asked alone.
    fn asked(factor: &FactorRecord, credential: &Credential, others: &[FactorRecord]) -> Asked {
        let mut credentials = vec![(credential.id.clone(), factor.id.clone())];
        if !credential.id.is_empty() {
            for other in others {
                let FactorData::Fido2(c) = &other.data else {
                    continue;
                };
                let same = c.rp_id == credential.rp_id
                    && c.verification == credential.verification
                    && !c.id.is_empty()
                    && c.public_key != PublicKey::None
                    && !credentials.iter().any(|(id, _)| id == &c.id);
                if same {
                    credentials.push((c.id.clone(), other.id.clone()));
                }
            }
        }
        Asked {
            rp_id: credential.rp_id.clone(),
            credentials,
        }
    }
}

fn random_challenge() -> Result<[u8; 32], String> {
    let mut challenge = [0u8; 32];
    crate::random::fill(&mut challenge)
        .map_err(|e| format!("no randomness for a challenge: {e}"))?;
    Ok(challenge)
}

impl Mechanism for Fido2 {
    fn kind(&self) -> FactorKind {
        FactorKind::Fido2
    }

    /// Only where the key can be plugged in: never for a user who is
    /// elsewhere, so a key left in a server never satisfies a remote user.
    fn available(&self, login: &LoginContext) -> Result<(), String> {
        match &login.remote {
            None => Ok(()),
            Some(why) => Err(format!(
                "{why}, and a security key works only where it is plugged in"
            )),
        }
    }

    fn offered_because(&self, login: &LoginContext) -> Option<String> {
        if login.remote.is_some() {
            return None;
        }
        let mut why = format!(
            "{}, where a security key can be plugged in",
            crate::login::LOCAL
        );
        if login.hypothetical {
            why.push_str(
                " (assumed: policy explain has no process to look at; a real login is offered a key only when its client's processes can be read and hold no remote-login server)",
            );
        }
        Some(why)
    }

    fn local_only(&self) -> bool {
        true
    }

    fn enrol(&self, request: &EnrolRequest<'_>) -> Result<NewFactor, EnrolError> {
        let options = request.options;
        if !options.algorithm.is_empty()
            || options.digits != 0
            || options.period != 0
            || !options.secret_base32.is_empty()
        {
            return Err(EnrolError::Invalid(
                "algorithm, digits, period and secret are for codes, not for a security key".into(),
            ));
        }
        if options.verification && options.pin.is_empty() {
            return Err(EnrolError::Invalid(
                "user verification needs the key's PIN: give it with --pin".into(),
            ));
        }
        let key = self.key().map_err(EnrolError::Failed)?;
        let challenge = random_challenge().map_err(EnrolError::Failed)?;
        let (keys, rp_id) = (Arc::clone(&self.keys), self.rp_id.clone());
        let pin = (!options.pin.is_empty()).then(|| options.pin.clone());
        let work = Work::spawn("mfad-fido2", move |_| {
            keys.make_credential(
                &key,
                &Request {
                    rp_id: &rp_id,
                    challenge: &challenge,
                    pin: pin.as_deref(),
                    credentials: &[],
                    eddsa: false,
                },
            )
            .map(|made| Response::Evidence(Box::new(made)))
            .map_err(|e| e.to_string())
        })
        .map_err(EnrolError::Failed)?;
        Ok(NewFactor {
            data: FactorData::Fido2(Credential {
                id: Vec::new(),
                public_key: PublicKey::None,
                rp_id: self.rp_id.clone(),
                presence: true,
                verification: options.verification,
            }),
            counter: 0,
            offer: EnrolmentOffer {
                kind: FactorKind::Fido2.name().into(),
                label: request.label.into(),
                instructions: ENROL_TEXT.into(),
                ..EnrolmentOffer::default()
            },
            work: Some(work),
            state: Box::new(Challenged {
                challenge,
                asked: None,
                pin_pending: false,
            }),
            login_text: String::new(),
            login_prompt: "",
        })
    }

    fn challenge(
        &self,
        load: &mut dyn FnMut() -> Result<FactorRecord, ChallengeError>,
        others: &mut dyn FnMut() -> Result<Vec<FactorRecord>, ChallengeError>,
        _login: &LoginContext,
    ) -> Result<Challenge, ChallengeError> {
        let factor = load()?;
        let FactorData::Fido2(credential) = &factor.data else {
            return Err(format!("factor {} holds no key", factor.id).into());
        };
        let asked = Fido2::asked(&factor, credential, &others()?);
        let challenge = random_challenge()?;
        if credential.verification {
            // The PIN first; the key is started once it is typed.
            return Ok(Challenge {
                ask: Ask::Prompt {
                    text: PIN_PROMPT.into(),
                    echo: false,
                    code: false,
                },
                state: Box::new(Challenged {
                    challenge,
                    asked: Some(asked),
                    pin_pending: true,
                }),
            });
        }
        let work = self.assert(&asked, challenge, None)?;
        Ok(Challenge {
            ask: Ask::Wait {
                text: TOUCH_TEXT.into(),
                work,
            },
            state: Box::new(Challenged {
                challenge,
                asked: Some(asked),
                pin_pending: false,
            }),
        })
    }

    fn respond(&self, state: &mut (dyn Any + Send), pin: String) -> Result<Next, String> {
        let Some(state) = state.downcast_mut::<Challenged>() else {
            return Err("the challenge was lost".into());
        };
        let (true, Some(asked)) = (state.pin_pending, state.asked.as_ref()) else {
            return Err("no PIN was asked for".into());
        };
        let work = self.assert(asked, state.challenge, Some(pin))?;
        state.pin_pending = false;
        Ok(Next::Ask(Ask::Wait {
            text: TOUCH_TEXT.into(),
            work,
        }))
    }

    fn answered_by(&self, state: &(dyn Any + Send), response: &Response) -> Option<String> {
        let asked = state.downcast_ref::<Challenged>()?.asked.as_ref()?;
        let Response::Evidence(evidence) = response else {
            return None;
        };
        let signed = evidence.downcast_ref::<Signed>()?;
        asked
            .credentials
            .iter()
            .find(|(id, _)| !id.is_empty() && id == &signed.credential_id)
            .map(|(_, factor)| factor.clone())
    }

    fn verify(
        &self,
        factor: &FactorRecord,
        state: &(dyn Any + Send),
        response: &Response,
        _now: u64,
    ) -> Verdict {
        let (FactorData::Fido2(credential), Some(state), Response::Evidence(evidence)) =
            (&factor.data, state.downcast_ref::<Challenged>(), response)
        else {
            return Verdict::Reject;
        };
        if let Some(made) = evidence.downcast_ref::<Made>() {
            if credential.public_key != PublicKey::None || made.credential_id.is_empty() {
                return Verdict::Reject;
            }
            return match verify::made(&credential.rp_id, credential.presence, &made.auth_data) {
                Ok(counter) => Verdict::Accept(Advance {
                    counter,
                    data: Some(FactorData::Fido2(Credential {
                        id: made.credential_id.clone(),
                        public_key: made.public_key.clone(),
                        ..credential.clone()
                    })),
                }),
                Err(_) => Verdict::Reject,
            };
        }
        let Some(signed) = evidence.downcast_ref::<Signed>() else {
            return Verdict::Reject;
        };
        match verify::assertion(
            credential,
            factor.counter,
            &state.challenge,
            &signed.credential_id,
            &signed.auth_data,
            &signed.signature,
        ) {
            Ok(counter) => Verdict::Accept(Advance {
                counter,
                data: None,
            }),
            Err(verify::Refusal::CounterNotIncreased) => Verdict::Suspicious(CLONED),
            Err(verify::Refusal::Wrong(why)) => Verdict::Wrong(verify::audit_reason(why)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct NoKeys;
    impl Keys for NoKeys {
        fn plugged(&self) -> Vec<PathBuf> {
            Vec::new()
        }
        fn make_credential(&self, _: &std::path::Path, _: &Request<'_>) -> Result<Made, KeyError> {
            Err(KeyError::Absent)
        }
        fn get_assertion(&self, _: &std::path::Path, _: &Request<'_>) -> Result<Signed, KeyError> {
            Err(KeyError::Absent)
        }
        fn holds(&self, _: &std::path::Path, _: &Request<'_>) -> Result<bool, KeyError> {
            Err(KeyError::Absent)
        }
    }

    fn context(pid: Option<u32>, hypothetical: bool) -> LoginContext {
        let request = mfa_dbus::LoginRequest {
            user: "alice".into(),
            service: "login".into(),
            ..Default::default()
        };
        LoginContext {
            remote: crate::login::remote_reason(&request, pid),
            request,
            now: 0,
            retry: false,
            unlock: false,
            hypothetical,
        }
    }

    #[test]
    fn a_login_without_a_known_process_is_not_offered_a_key_and_says_why() {
        let fido2 = Fido2::with_keys("pam://h".into(), Arc::new(NoKeys));
        let unknown = context(None, false);
        let why = fido2.available(&unknown).expect_err("not offered");
        assert!(why.starts_with(crate::login::NO_PROCESS), "{why}");
        assert_eq!(fido2.offered_because(&unknown), None);
        // A process that is gone: its tree cannot be read.
        let gone = context(Some(u32::MAX - 1), false);
        assert!(fido2.available(&gone).is_err());
    }

    #[test]
    fn a_local_login_is_offered_a_key_and_says_why() {
        let fido2 = Fido2::with_keys("pam://h".into(), Arc::new(NoKeys));
        let mut local = context(None, false);
        local.remote = None;
        assert_eq!(fido2.available(&local), Ok(()));
        let why = fido2.offered_because(&local).expect("offered");
        assert!(why.starts_with(crate::login::LOCAL), "{why}");
        assert!(!why.contains("assumed"), "{why}");
        local.hypothetical = true;
        let assumed = fido2.offered_because(&local).expect("offered");
        assert!(assumed.contains("assumed: policy explain"), "{assumed}");
    }
}
