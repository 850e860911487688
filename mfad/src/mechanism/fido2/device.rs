//! The security keys plugged into this machine, behind a small trait: found
//! by reading sysfs (no udev at run time), driven through ctap-hid-fido2 by
//! path. Its pitfalls stay in here: it panics when hidapi cannot start
//! (caught), it blocks until the key answers (callers run it as `Work`),
//! it prints to stdout unless told not to (told), and its builders ask for
//! user verification unless told otherwise (always told).

use super::PublicKey;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// What making a credential returned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Made {
    pub credential_id: Vec<u8>,
    pub public_key: PublicKey,
    /// The authenticator data: RP ID hash, flags, signature counter, …
    pub auth_data: Vec<u8>,
}

/// What a key signed at a login.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Signed {
    pub credential_id: Vec<u8>,
    pub auth_data: Vec<u8>,
    pub signature: Vec<u8>,
}

/// What one call to a key needs.
pub struct Request<'a> {
    pub rp_id: &'a str,
    /// Random bytes; the key signs their SHA-256 (ctap-hid-fido2's client
    /// data hash) with the authenticator data.
    pub challenge: &'a [u8],
    /// The key's PIN, when user verification is wanted.
    pub pin: Option<&'a str>,
    /// Credentials the key may use (a login); empty when making one.
    pub credentials: &'a [Vec<u8>],
    /// Make an Ed25519 credential rather than ES256.
    pub eddsa: bool,
}

/// Why a key did not do what was asked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyError {
    /// No key plugged in.
    Absent,
    /// Another login is using the key.
    Busy,
    /// The key holds none of the credentials asked for (it answered at
    /// once, without a touch).
    NoCredential,
    /// The key refused: the reason in words (no touch, wrong PIN, …).
    Refused(String),
    /// The key could not be reached, or broke off (unplugged).
    Io(String),
}

impl std::fmt::Display for KeyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            KeyError::Absent => f.write_str("no security key is plugged in"),
            KeyError::Busy => f.write_str("the security key is in use by another login"),
            KeyError::NoCredential => {
                f.write_str("the security key refused: it holds no credential of this account")
            }
            KeyError::Refused(why) => write!(f, "the security key refused: {why}"),
            KeyError::Io(why) => write!(f, "the security key could not be reached: {why}"),
        }
    }
}

/// The keys plugged in, and what they can do.
pub trait Keys: Send + Sync {
    /// The device nodes of the FIDO keys plugged in now.
    fn plugged(&self) -> Vec<PathBuf>;
    fn make_credential(&self, key: &Path, request: &Request<'_>) -> Result<Made, KeyError>;
    fn get_assertion(&self, key: &Path, request: &Request<'_>) -> Result<Signed, KeyError>;
    /// Whether `key` holds one of `request`'s credentials: a silent
    /// assertion (no touch, no PIN; the key's counter moves, nothing else),
    /// before a PIN is sent to it.
    fn holds(&self, key: &Path, request: &Request<'_>) -> Result<bool, KeyError>;
}

/// Keys found in sysfs and driven through ctap-hid-fido2.
pub struct HidKeys {
    /// Where `class/hidraw` is (`/sys`; a test's own tree).
    sysfs: PathBuf,
    /// Where the `hidrawN` nodes are (`/dev`).
    dev: PathBuf,
    /// One call at a time per key.
    locks: Mutex<HashMap<PathBuf, Arc<Mutex<()>>>>,
}

impl HidKeys {
    pub fn new(sysfs: PathBuf, dev: PathBuf) -> HidKeys {
        HidKeys {
            sysfs,
            dev,
            locks: Mutex::new(HashMap::new()),
        }
    }

    /// Run `call` on `key` if no other call holds it.
    fn exclusively<T>(
        &self,
        key: &Path,
        call: impl FnOnce() -> Result<T, KeyError>,
    ) -> Result<T, KeyError> {
        let lock = Arc::clone(
            self.locks
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .entry(key.to_path_buf())
                .or_default(),
        );
        let Ok(_held) = lock.try_lock() else {
            return Err(KeyError::Busy);
        };
        // hidapi panics when it cannot start; ctap-hid-fido2 has asserts of
        // its own. Neither may take mfad down.
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(call))
            .unwrap_or_else(|_| Err(KeyError::Io("the key's driver failed".into())))
    }
}

/// The usage page of FIDO devices (0xF1D0) as a HID report descriptor
/// writes it: a 2-byte Usage Page item, little-endian.
const FIDO_USAGE_PAGE: [u8; 3] = [0x06, 0xd0, 0xf1];

impl Keys for HidKeys {
    fn plugged(&self) -> Vec<PathBuf> {
        let Ok(entries) = std::fs::read_dir(self.sysfs.join("class/hidraw")) else {
            return Vec::new();
        };
        let mut keys: Vec<PathBuf> = entries
            .flatten()
            .filter(|e| {
                std::fs::read(e.path().join("device/report_descriptor"))
                    .map(|d| d.windows(3).any(|w| w == FIDO_USAGE_PAGE))
                    .unwrap_or(false)
            })
            .map(|e| self.dev.join(e.file_name()))
            .filter(|node| node.exists())
            .collect();
        keys.sort();
        keys
    }

    fn make_credential(&self, key: &Path, request: &Request<'_>) -> Result<Made, KeyError> {
        self.exclusively(key, || {
            let device = open(key)?;
            let mut args = ctap_hid_fido2::fidokey::MakeCredentialArgsBuilder::new(
                request.rp_id,
                request.challenge,
            );
            args = match request.pin {
                Some(pin) => args.pin(pin),
                None => args.without_pin_and_uv(),
            };
            if request.eddsa {
                args = args.key_type(ctap_hid_fido2::fidokey::CredentialSupportedKeyType::Ed25519);
            }
            let made = device
                .make_credential_with_args(&args.build())
                .map_err(refused)?;
            let public_key = match made.credential_publickey.key_type {
                ctap_hid_fido2::public_key::PublicKeyType::Ecdsa256 => {
                    PublicKey::from_parts("es256", made.credential_publickey.der.clone())
                }
                ctap_hid_fido2::public_key::PublicKeyType::Ed25519 => {
                    PublicKey::from_parts("eddsa", made.credential_publickey.der.clone())
                }
                ctap_hid_fido2::public_key::PublicKeyType::Unknown => {
                    Err("the key made a credential of a type mfad does not know".into())
                }
            }
            .map_err(KeyError::Refused)?;
            Ok(Made {
                credential_id: made.credential_descriptor.id,
                public_key,
                auth_data: made.auth_data,
            })
        })
    }

    fn get_assertion(&self, key: &Path, request: &Request<'_>) -> Result<Signed, KeyError> {
        self.exclusively(key, || {
            let device = open(key)?;
            let mut args = ctap_hid_fido2::fidokey::GetAssertionArgsBuilder::new(
                request.rp_id,
                request.challenge,
            );
            for id in request.credentials {
                args = args.add_credential_id(id);
            }
            args = match request.pin {
                Some(pin) => args.pin(pin),
                None => args.without_pin_and_uv(),
            };
            let signed = device
                .get_assertion_with_args(&args.build())
                .map_err(refused)?;
            let first = signed
                .into_iter()
                .next()
                .ok_or_else(|| KeyError::Refused("the key signed nothing".into()))?;
            // A key may leave out the credential when only one was
            // allowed (CTAP 2.1 §6.2): it is that one.
            let credential_id = match (first.credential_id.is_empty(), request.credentials) {
                (true, [only]) => only.clone(),
                _ => first.credential_id,
            };
            Ok(Signed {
                credential_id,
                auth_data: first.auth_data,
                signature: first.signature,
            })
        })
    }

    fn holds(&self, key: &Path, request: &Request<'_>) -> Result<bool, KeyError> {
        self.probe(key, request)
    }
}

impl HidKeys {
    fn probe(&self, key: &Path, request: &Request<'_>) -> Result<bool, KeyError> {
        self.exclusively(key, || {
            let device = open(key)?;
            let mut args = ctap_hid_fido2::fidokey::GetAssertionArgsBuilder::new(
                request.rp_id,
                request.challenge,
            )
            .without_pin_and_uv()
            .without_up();
            for id in request.credentials {
                args = args.add_credential_id(id);
            }
            match device
                .get_assertion_with_args(&args.build())
                .map_err(refused)
            {
                Ok(_) => Ok(true),
                Err(KeyError::NoCredential) => Ok(false),
                Err(e) => Err(e),
            }
        })
    }
}

/// The key at `path`, speaking the newest PIN protocol both sides know.
fn open(path: &Path) -> Result<ctap_hid_fido2::FidoKeyHid, KeyError> {
    let mut cfg = ctap_hid_fido2::LibCfg::init();
    // Its default prints "touch the sensor" to mfad's stdout.
    cfg.enable_keep_alive_msg = false;
    cfg.enable_log = false;
    let path_text = path
        .to_str()
        .ok_or_else(|| KeyError::Io(format!("{} is not UTF-8", path.display())))?;
    let device = ctap_hid_fido2::FidoKeyHidFactory::create_by_params(
        &[ctap_hid_fido2::HidParam::Path(path_text.to_string())],
        &cfg,
    )
    .map_err(|e| KeyError::Io(e.to_string()))?;
    let two = device
        .get_info()
        .map(|info| info.pin_uv_auth_protocols.contains(&2))
        .map_err(|e| KeyError::Io(e.to_string()))?;
    Ok(if two {
        device.with_pin_protocol_version(2)
    } else {
        device
    })
}

/// ctap-hid-fido2's error in words a user understands. Its errors are text
/// with the CTAP status byte in it ("0x27 CTAP2_ERR_OPERATION_DENIED").
fn refused(error: impl std::fmt::Display) -> KeyError {
    let text = error.to_string();
    if text.contains("0x2E") {
        return KeyError::NoCredential;
    }
    let known = [
        ("0x27", "no touch (the operation was denied)"),
        ("0x2F", "no touch in time"),
        ("0x31", "wrong PIN"),
        (
            "0x32",
            "the PIN is blocked (too many wrong PINs); reset the key",
        ),
        (
            "0x34",
            "too many wrong PINs: unplug the key and plug it in again",
        ),
        ("0x35", "it has no PIN set"),
        ("0x36", "it needs its PIN (give it with --pin)"),
        ("0x2D", "the request was cancelled"),
        ("0x26", "it does not support the key type asked for"),
    ];
    match known.iter().find(|(code, _)| text.contains(code)) {
        Some((_, why)) => KeyError::Refused((*why).to_string()),
        None if text.contains("write error") || text.contains("read error") => KeyError::Io(text),
        None => KeyError::Refused(text),
    }
}
