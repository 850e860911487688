//! The key's persistent state: its credentials (private keys and sign
//! counters included) and soft-fido2's PIN state, kept in a JSON file.
//!
//! File layout (`format` must be `mfa-fakekey-state/1`):
//!
//! ```json
//! {
//!   "format": "mfa-fakekey-state/1",
//!   "credentials": [
//!     { "id": "<hex>", "rp_id": "pam://testhost", "alg": -7,
//!       "sign_count": 2, "record": "<hex CBOR of soft_fido2_ctap::types::Credential>" }
//!   ],
//!   "pin_state": "<hex CBOR of soft_fido2_ctap::types::PinState>" | null
//! }
//! ```
//!
//! `sign_count` is authoritative: on load it replaces the count inside
//! `record`, so a test may rewind or advance a counter by editing it.
//! `id`, `rp_id` and `alg` are there to be read; `id` must match the record.
//! The file holds private keys and the PIN hash: it is written mode 0600,
//! atomically (temporary file, then rename).

use std::fs;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use soft_fido2_ctap::cbor;
use soft_fido2_ctap::types::{Credential, PinState};

const FORMAT: &str = "mfa-fakekey-state/1";

#[derive(Serialize, Deserialize)]
struct StateFile {
    format: String,
    credentials: Vec<CredentialEntry>,
    pin_state: Option<String>,
}

#[derive(Serialize, Deserialize)]
struct CredentialEntry {
    id: String,
    rp_id: String,
    alg: i32,
    sign_count: u32,
    record: String,
}

/// The credentials and PIN state, mirrored to `path` when one is given.
pub struct Store {
    path: Option<PathBuf>,
    pub credentials: Vec<Credential>,
    pub pin_state: Option<PinState>,
}

impl Store {
    /// An empty store that lives only in memory.
    pub fn ephemeral() -> Self {
        Store {
            path: None,
            credentials: Vec::new(),
            pin_state: None,
        }
    }

    /// Loads `path`, or starts empty when it does not exist yet.
    pub fn open(path: &Path) -> Result<Self, String> {
        let mut store = Store {
            path: Some(path.to_path_buf()),
            credentials: Vec::new(),
            pin_state: None,
        };
        let text = match fs::read_to_string(path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(store),
            Err(e) => return Err(format!("cannot read state file {}: {e}", path.display())),
        };
        let file: StateFile = serde_json::from_str(&text)
            .map_err(|e| format!("state file {} is not valid: {e}", path.display()))?;
        if file.format != FORMAT {
            return Err(format!(
                "state file {} has format {:?}, expected {FORMAT:?}",
                path.display(),
                file.format
            ));
        }
        for (i, entry) in file.credentials.iter().enumerate() {
            let bytes = hex::decode(&entry.record)
                .map_err(|e| format!("credential {i}: record is not hex: {e}"))?;
            let mut cred: Credential = cbor::decode(&bytes)
                .map_err(|_| format!("credential {i}: record is not a soft-fido2 credential"))?;
            if hex::encode(&cred.id) != entry.id.to_ascii_lowercase() {
                return Err(format!("credential {i}: id does not match its record"));
            }
            cred.sign_count = entry.sign_count;
            store.credentials.push(cred);
        }
        if let Some(pin) = &file.pin_state {
            let bytes = hex::decode(pin).map_err(|e| format!("pin_state is not hex: {e}"))?;
            let state: PinState = cbor::decode(&bytes)
                .map_err(|_| "pin_state is not a soft-fido2 PIN state".to_string())?;
            store.pin_state = Some(state);
        }
        Ok(store)
    }

    /// Writes the store to its file (no-op for an ephemeral store).
    pub fn save(&self) -> Result<(), String> {
        let Some(path) = &self.path else {
            return Ok(());
        };
        let mut credentials = Vec::with_capacity(self.credentials.len());
        for cred in &self.credentials {
            let record =
                cbor::encode(cred).map_err(|_| "cannot encode a credential".to_string())?;
            credentials.push(CredentialEntry {
                id: hex::encode(&cred.id),
                rp_id: cred.rp_id.clone(),
                alg: cred.algorithm,
                sign_count: cred.sign_count,
                record: hex::encode(record),
            });
        }
        let pin_state = match &self.pin_state {
            Some(state) => Some(hex::encode(
                cbor::encode(state).map_err(|_| "cannot encode the PIN state".to_string())?,
            )),
            None => None,
        };
        let file = StateFile {
            format: FORMAT.to_string(),
            credentials,
            pin_state,
        };
        let mut text = serde_json::to_string_pretty(&file).map_err(|e| e.to_string())?;
        text.push('\n');
        write_atomically(path, text.as_bytes())
            .map_err(|e| format!("cannot write state file {}: {e}", path.display()))
    }
}

fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let name = path
        .file_name()
        .ok_or_else(|| std::io::Error::other("state path has no file name"))?;
    let mut tmp_name = std::ffi::OsString::from(".");
    tmp_name.push(name);
    tmp_name.push(".tmp");
    let tmp = path.with_file_name(tmp_name);
    {
        let mut f = fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
    }
    fs::rename(&tmp, path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use soft_fido2_ctap::types::CredentialBackupState;
    use soft_fido2_ctap::{CredentialKey, SecBytes};

    fn credential() -> Credential {
        Credential {
            id: vec![7; 16],
            rp_id: "pam://testhost".into(),
            created: 1,
            rp_name: None,
            user_id: vec![1, 2, 3],
            algorithm: -7,
            user_name: Some("alice".into()),
            sign_count: 5,
            key: CredentialKey::software(SecBytes::new(vec![9u8; 32])),
            cred_protect: 1,
            discoverable: true,
            backup_state: CredentialBackupState::NotEligible,
            user_display_name: None,
            cred_random: None,
        }
    }

    #[test]
    fn round_trip_and_authoritative_counter() {
        let dir = std::env::temp_dir().join(format!("fakekey-state-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let path = dir.join("state.json");
        let _ = fs::remove_file(&path);

        let mut store = Store::open(&path).unwrap();
        assert!(store.credentials.is_empty());
        store.credentials.push(credential());
        store.pin_state = Some(PinState::new());
        store.save().unwrap();

        let text = fs::read_to_string(&path).unwrap();
        let edited = text.replace("\"sign_count\": 5", "\"sign_count\": 41");
        assert_ne!(text, edited);
        fs::write(&path, edited).unwrap();

        let again = Store::open(&path).unwrap();
        assert_eq!(again.credentials.len(), 1);
        assert_eq!(again.credentials[0].sign_count, 41);
        assert_eq!(again.credentials[0].key, credential().key);
        assert!(again.pin_state.is_some());
        fs::remove_dir_all(&dir).unwrap();
    }
}
