//! Secrets at rest: each factor's secret is sealed with XChaCha20-Poly1305
//! under a key file that only mfad reads, bound to the factor's id and user
//! (a sealed secret copied to another row does not open). The database
//! alone holds no usable secret.

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use sha2::Digest;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

/// File name of the key in the state directory.
pub const KEY_FILE: &str = "secret.key";
const KEY_LEN: usize = 32;
const NONCE_LEN: usize = 24;
/// First byte of every sealed secret: the format, so it can change later.
const FORMAT: u8 = 1;

pub struct Sealer {
    cipher: XChaCha20Poly1305,
    /// Names the key without giving it away (SHA-256 over a label and the
    /// key): hosts sharing a database compare it.
    fingerprint: String,
    /// A key of its own for keyed hashes (e-mail codes), derived from the
    /// sealing key: the same on every host that shares the store.
    hash_key: [u8; 32],
}

impl Sealer {
    /// Read the key at `path`. When it is missing and `may_create` (a new,
    /// empty store), make one: 32 random bytes, 0600, written to a temporary
    /// file, synced and renamed, so a crash never leaves half a key.
    pub fn load(path: &Path, may_create: bool) -> Result<Sealer, String> {
        let key = match std::fs::read(path) {
            Ok(key) => key,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && may_create => create_key(path)?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(format!(
                    "key file {} is missing: the secrets in the store cannot be read \
                     (restore the key from backup; mfad never replaces it)",
                    path.display()
                ))
            }
            Err(e) => return Err(format!("cannot read key file {}: {e}", path.display())),
        };
        let mode = std::fs::metadata(path)
            .map_err(|e| format!("key file {}: {e}", path.display()))?
            .permissions()
            .mode();
        if mode & 0o077 != 0 {
            return Err(format!(
                "key file {} has mode {:04o}; group and others must have no access",
                path.display(),
                mode & 0o777
            ));
        }
        if key.len() != KEY_LEN {
            return Err(format!(
                "key file {} holds {} bytes, not {KEY_LEN}",
                path.display(),
                key.len()
            ));
        }
        let cipher = XChaCha20Poly1305::new_from_slice(&key)
            .map_err(|_| format!("key file {} is not a valid key", path.display()))?;
        let mut digest = sha2::Sha256::new();
        digest.update(b"pam_mfa key fingerprint v1\0");
        digest.update(&key);
        let fingerprint = digest
            .finalize()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        let mut digest = sha2::Sha256::new();
        digest.update(b"pam_mfa keyed hashes v1\0");
        digest.update(&key);
        Ok(Sealer {
            cipher,
            fingerprint,
            hash_key: digest.finalize().into(),
        })
    }

    /// The key for keyed hashes of short-lived codes.
    pub fn hash_key(&self) -> [u8; 32] {
        self.hash_key
    }

    /// The key's fingerprint (hex): equal on hosts that share the key.
    pub fn fingerprint(&self) -> &str {
        &self.fingerprint
    }

    /// Seal `secret` for the factor `id` of `user`.
    pub fn seal(&self, secret: &[u8], id: &str, user: &str) -> Result<Vec<u8>, String> {
        let mut nonce = [0u8; NONCE_LEN];
        crate::random::fill(&mut nonce).map_err(|e| format!("no randomness for a nonce: {e}"))?;
        let aad = binding(id, user);
        let sealed = self
            .cipher
            .encrypt(
                XNonce::from_slice(&nonce),
                Payload {
                    msg: secret,
                    aad: &aad,
                },
            )
            .map_err(|_| "cannot seal a secret".to_string())?;
        let mut out = Vec::with_capacity(1 + NONCE_LEN + sealed.len());
        out.push(FORMAT);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&sealed);
        Ok(out)
    }

    /// Open what [`Sealer::seal`] made for the same `id` and `user`.
    pub fn open(&self, sealed: &[u8], id: &str, user: &str) -> Result<Vec<u8>, String> {
        let Some((&FORMAT, rest)) = sealed.split_first() else {
            return Err(format!("factor {id}: sealed secret in an unknown format"));
        };
        if rest.len() < NONCE_LEN {
            return Err(format!("factor {id}: sealed secret is truncated"));
        }
        let (nonce, ciphertext) = rest.split_at(NONCE_LEN);
        let aad = binding(id, user);
        self.cipher
            .decrypt(
                XNonce::from_slice(nonce),
                Payload {
                    msg: ciphertext,
                    aad: &aad,
                },
            )
            .map_err(|_| format!("factor {id}: secret does not open (wrong key, or altered)"))
    }
}

fn binding(id: &str, user: &str) -> Vec<u8> {
    let mut aad = Vec::with_capacity(id.len() + user.len() + 1);
    aad.extend_from_slice(id.as_bytes());
    aad.push(0);
    aad.extend_from_slice(user.as_bytes());
    aad
}

fn create_key(path: &Path) -> Result<Vec<u8>, String> {
    let mut key = vec![0u8; KEY_LEN];
    crate::random::fill(&mut key).map_err(|e| format!("no randomness for a key: {e}"))?;
    super::write_durably(path, &key)
        .map_err(|e| format!("cannot create key file {}: {e}", path.display()))?;
    Ok(key)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sealer() -> (tempfile::TempDir, Sealer) {
        let tmp = tempfile::tempdir().expect("tmp");
        let sealer = Sealer::load(&tmp.path().join(KEY_FILE), true).expect("key");
        (tmp, sealer)
    }

    #[test]
    fn seals_and_opens_only_for_the_same_row() {
        let (_tmp, s) = sealer();
        let sealed = s
            .seal(b"12345678901234567890", "f1", "alice")
            .expect("seal");
        assert!(!sealed.windows(20).any(|w| w == b"12345678901234567890"));
        assert_eq!(
            s.open(&sealed, "f1", "alice").expect("open"),
            b"12345678901234567890"
        );
        assert!(
            s.open(&sealed, "f1", "bob").is_err(),
            "moved to another user"
        );
        assert!(
            s.open(&sealed, "f2", "alice").is_err(),
            "moved to another factor"
        );
        let mut altered = sealed.clone();
        let last = altered.len() - 1;
        altered[last] ^= 1;
        assert!(s.open(&altered, "f1", "alice").is_err());
        assert!(s.open(&sealed[..10], "f1", "alice").is_err());
    }

    #[test]
    fn a_missing_key_is_never_replaced_unless_allowed() {
        let tmp = tempfile::tempdir().expect("tmp");
        let path = tmp.path().join(KEY_FILE);
        assert!(Sealer::load(&path, false).is_err());
        assert!(!path.exists());
        let a = Sealer::load(&path, true).expect("create");
        let sealed = a.seal(b"secret-secret", "f", "u").expect("seal");
        let b = Sealer::load(&path, false).expect("reload");
        assert_eq!(b.open(&sealed, "f", "u").expect("open"), b"secret-secret");
        assert_eq!(
            std::fs::metadata(&path).expect("key").permissions().mode() & 0o777,
            0o600
        );
    }

    #[test]
    fn a_key_others_can_read_is_refused() {
        let tmp = tempfile::tempdir().expect("tmp");
        let path = tmp.path().join(KEY_FILE);
        Sealer::load(&path, true).expect("create");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).expect("chmod");
        assert!(Sealer::load(&path, false).is_err());
    }
}
