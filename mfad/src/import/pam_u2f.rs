//! pam_u2f's authfile (`~/.config/Yubico/u2f_keys`, or a central
//! `authfile=`), as pamu2fcfg writes it:
//!
//! ```text
//! user:KeyHandle,UserKey,CoseType,Options[:KeyHandle,UserKey,CoseType,Options…]
//! ```
//!
//! KeyHandle is the credential id in standard base64 (`*` for a resident
//! credential), UserKey the raw public key in base64 (ES256: x‖y, 64 bytes,
//! or 04‖x‖y; EdDSA: 32 bytes), CoseType `es256`, `eddsa` or `rs256`, Options
//! a run of `+presence`, `+verification`, `+pin`. The old format
//! (pamu2fcfg up to 1.0.8) is `user:KeyHandle,UserKey` with a web-safe base64
//! key handle and a hex 65-byte key, ES256, bound to the appid. As pam_u2f
//! does, only the last line of a user counts. The `sshformat` (an OpenSSH
//! `id_*_sk` file) is refused.

pub use super::LineError;
use crate::mechanism::fido2::{Credential, PublicKey};
use data_encoding::{BASE64, BASE64URL_NOPAD, HEXLOWER_PERMISSIVE};

/// pam_u2f reads at most this many keys per user (`MAX_DEVS`).
pub const MAX_KEYS: usize = 24;

/// One key of the file, for `user`, from `line`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub line: usize,
    pub user: String,
    pub credential: Credential,
}

/// The relying parties imported keys are bound to.
#[derive(Debug, Clone)]
pub struct Origins {
    /// pam_u2f's `origin=` (default `pam://HOST`): new-format credentials.
    pub origin: String,
    /// pam_u2f's `appid=` (default: the origin): old-format credentials.
    pub appid: String,
}

/// Every key of `text`, the last line of each user winning; any bad line
/// fails the whole file.
pub fn parse(text: &str, origins: &Origins) -> Result<Vec<Entry>, LineError> {
    if text.contains("-----BEGIN OPENSSH PRIVATE KEY-----") {
        return Err(LineError {
            line: 1,
            message: "this is an OpenSSH key file (pam_u2f's sshformat), not an authfile: \
                      it cannot be imported; enrol the key with `mfactl enrol fido2`"
                .into(),
        });
    }
    let mut by_user: Vec<(String, Vec<Entry>)> = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let line = i + 1;
        let trimmed = raw.trim();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        let bad = |message: String| LineError { line, message };
        let mut fields = trimmed.split(':');
        let user = fields.next().unwrap_or_default();
        if !valid_user(user) {
            return Err(bad(format!("{user:?} is not a user name")));
        }
        let keys: Vec<&str> = fields.collect();
        if keys.is_empty() || keys.iter().all(|k| k.is_empty()) {
            return Err(bad(format!("no key for user {user}")));
        }
        if keys.len() > MAX_KEYS {
            return Err(bad(format!(
                "{} keys; pam_u2f reads at most {MAX_KEYS}",
                keys.len()
            )));
        }
        let entries = keys
            .iter()
            .enumerate()
            .map(|(n, key)| {
                credential(key, origins)
                    .map(|credential| Entry {
                        line,
                        user: user.to_string(),
                        credential,
                    })
                    .map_err(|e| bad(format!("key {} of {user}: {e}", n + 1)))
            })
            .collect::<Result<Vec<_>, _>>()?;
        by_user.retain(|(u, _)| u != user);
        by_user.push((user.to_string(), entries));
    }
    Ok(by_user.into_iter().flat_map(|(_, e)| e).collect())
}

/// One `KeyHandle,UserKey[,CoseType,Options]`.
fn credential(text: &str, origins: &Origins) -> Result<Credential, String> {
    let parts: Vec<&str> = text.split(',').collect();
    match parts.as_slice() {
        [handle, key] => old_format(handle, key, origins),
        [handle, key, kind, options] => new_format(handle, key, kind, options, origins),
        _ => Err(format!(
            "{} comma-separated fields; pamu2fcfg writes 4 (KeyHandle,UserKey,CoseType,Options), or 2 in its old format",
            parts.len()
        )),
    }
}

fn new_format(
    handle: &str,
    key: &str,
    kind: &str,
    options: &str,
    origins: &Origins,
) -> Result<Credential, String> {
    let id = match handle {
        "*" => Vec::new(),
        h => BASE64
            .decode(h.as_bytes())
            .map_err(|_| "the key handle is not base64".to_string())?,
    };
    if handle != "*" && id.is_empty() {
        return Err("the key handle is empty".into());
    }
    let kind = kind.to_ascii_lowercase();
    if kind == "rs256" {
        return Err(
            "RS256 keys are not supported; enrol the key again with `mfactl enrol fido2`".into(),
        );
    }
    let bytes = BASE64
        .decode(key.as_bytes())
        .map_err(|_| "the public key is not base64".to_string())?;
    let public_key = PublicKey::from_parts(&kind, bytes)?;
    let (mut presence, mut verification) = (false, false);
    let mut rest = options;
    while !rest.is_empty() {
        rest = if let Some(r) = rest.strip_prefix("+presence") {
            presence = true;
            r
        } else if let Some(r) = rest.strip_prefix("+verification") {
            verification = true;
            r
        } else if let Some(r) = rest.strip_prefix("+pin") {
            verification = true;
            r
        } else {
            return Err(format!(
                "options {options:?}: only +presence, +verification and +pin are known"
            ));
        };
    }
    // mfad always asks for a touch: a key that signs without one would let
    // anybody in while it is plugged in.
    let _ = presence;
    Ok(Credential {
        id,
        public_key,
        rp_id: origins.origin.clone(),
        presence: true,
        verification,
    })
}

fn old_format(handle: &str, key: &str, origins: &Origins) -> Result<Credential, String> {
    let id = BASE64URL_NOPAD
        .decode(handle.trim_end_matches('=').as_bytes())
        .map_err(|_| "the key handle is not web-safe base64 (old format)".to_string())?;
    if id.is_empty() {
        return Err("the key handle is empty".into());
    }
    let bytes = HEXLOWER_PERMISSIVE
        .decode(key.as_bytes())
        .map_err(|_| "the public key is not hex (old format)".to_string())?;
    if bytes.len() != 65 {
        return Err(format!(
            "an old-format public key is 65 bytes, not {}",
            bytes.len()
        ));
    }
    Ok(Credential {
        id,
        public_key: PublicKey::from_parts("es256", bytes)?,
        rp_id: origins.appid.clone(),
        presence: true,
        verification: false,
    })
}

fn valid_user(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && !name.starts_with('-')
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | '$'))
}

#[cfg(test)]
mod tests {
    //! Lines written as pamu2fcfg writes them, from keys made here.

    use super::*;

    fn origins() -> Origins {
        Origins {
            origin: "pam://testhost".into(),
            appid: "pam://oldhost".into(),
        }
    }

    fn es256_point(seed: u8) -> Vec<u8> {
        let mut bytes = [seed; 32];
        bytes[0] = 1;
        let key = p256::ecdsa::SigningKey::from_slice(&bytes).expect("key");
        key.verifying_key().to_sec1_point(false).as_bytes().to_vec()
    }

    fn ed25519_key(seed: u8) -> Vec<u8> {
        ed25519_dalek::SigningKey::from_bytes(&[seed; 32])
            .verifying_key()
            .to_bytes()
            .to_vec()
    }

    #[test]
    fn new_format_lines_of_both_key_types_with_their_options() {
        let point = es256_point(3);
        let ed = ed25519_key(4);
        let text = format!(
            "# a comment\nalice:{},{},es256,+presence:{},{},EdDSA,+presence+pin\n",
            BASE64.encode(b"credential-one"),
            // pamu2fcfg writes x||y, without the 04 prefix.
            BASE64.encode(&point[1..]),
            BASE64.encode(b"credential-two"),
            BASE64.encode(&ed),
        );
        let entries = parse(&text, &origins()).expect("parses");
        assert_eq!(entries.len(), 2);
        assert_eq!(entries[0].user, "alice");
        assert_eq!(entries[0].line, 2);
        assert_eq!(entries[0].credential.id, b"credential-one");
        assert_eq!(entries[0].credential.public_key, PublicKey::Es256(point));
        assert_eq!(entries[0].credential.rp_id, "pam://testhost");
        assert!(!entries[0].credential.verification);
        assert_eq!(entries[1].credential.public_key, PublicKey::Ed25519(ed));
        assert!(entries[1].credential.verification, "+pin");
    }

    #[test]
    fn the_old_format_and_resident_credentials() {
        let point = es256_point(5);
        let text = format!(
            "bob:{},{}\ncarol:*,{},es256,+presence+verification\n",
            BASE64URL_NOPAD.encode(b"old-handle"),
            HEXLOWER_PERMISSIVE.encode(&point),
            BASE64.encode(&point),
        );
        let entries = parse(&text, &origins()).expect("parses");
        assert_eq!(entries[0].credential.id, b"old-handle");
        assert_eq!(
            entries[0].credential.rp_id, "pam://oldhost",
            "old keys use the appid"
        );
        assert!(entries[1].credential.id.is_empty(), "resident");
        assert!(entries[1].credential.verification);
    }

    #[test]
    fn only_the_last_line_of_a_user_counts() {
        let point = es256_point(6);
        let line = |handle: &[u8]| {
            format!(
                "alice:{},{},es256,+presence\n",
                BASE64.encode(handle),
                BASE64.encode(&point[1..])
            )
        };
        let text = format!("{}{}", line(b"first"), line(b"second"));
        let entries = parse(&text, &origins()).expect("parses");
        assert_eq!(entries.len(), 1);
        assert_eq!(entries[0].credential.id, b"second");
        assert_eq!(entries[0].line, 2);
    }

    #[test]
    fn bad_lines_name_the_line_and_what_is_wrong() {
        let point = BASE64.encode(&es256_point(7)[1..]);
        for (text, line, says) in [
            ("alice\n".to_string(), 1, "no key"),
            (
                format!(
                    "ok:{},{point},es256,+presence\nbob:!!,{point},es256,\n",
                    BASE64.encode(b"x")
                ),
                2,
                "not base64",
            ),
            (
                format!("bob:{},{point},rs256,+presence\n", BASE64.encode(b"x")),
                1,
                "RS256",
            ),
            (
                format!("bob:{},{point},es256,+touch\n", BASE64.encode(b"x")),
                1,
                "+touch",
            ),
            (
                format!(
                    "bob:{},{},es256,\n",
                    BASE64.encode(b"x"),
                    BASE64.encode(b"short")
                ),
                1,
                "64 or 65 bytes",
            ),
            (
                format!("bob:{},{point}\n", BASE64.encode(b"x")),
                1,
                "not hex",
            ),
            ("bob:a,b,c\n".to_string(), 1, "3 comma-separated fields"),
            (
                "-----BEGIN OPENSSH PRIVATE KEY-----\nabc\n".to_string(),
                1,
                "sshformat",
            ),
            ("\u{0}\u{1}:\n".to_string(), 1, "not a user name"),
        ] {
            let err = parse(&text, &origins()).expect_err(&text);
            assert_eq!(err.line, line, "{text:?}: {err}");
            assert!(err.message.contains(says), "{text:?}: {err}");
        }
    }
}
