//! Plain values that the command line, the commands and the output share:
//! the kinds of factor, algorithms, sort orders, import formats, and what a
//! typed code or secret must look like. No I/O and no other mfactl module,
//! so that `cli` and the commands can both use them without depending on
//! each other.

use clap::ValueEnum;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Kind {
    /// Time-based one-time password (RFC 6238)
    Totp,
    /// Counter-based one-time password (RFC 4226)
    Hotp,
    /// A USB security key (FIDO2) plugged into this machine
    Fido2,
    /// One-time codes sent by e-mail
    Email,
}

impl Kind {
    /// The name in the D-Bus contract.
    pub fn wire(self) -> &'static str {
        match self {
            Kind::Totp => "totp",
            Kind::Hotp => "hotp",
            Kind::Fido2 => "fido2",
            Kind::Email => "email",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Algorithm {
    #[value(name = "SHA1")]
    Sha1,
    #[value(name = "SHA256")]
    Sha256,
    #[value(name = "SHA512")]
    Sha512,
}

impl Algorithm {
    /// The name in the D-Bus contract.
    pub fn wire(self) -> &'static str {
        match self {
            Algorithm::Sha1 => "SHA1",
            Algorithm::Sha256 => "SHA256",
            Algorithm::Sha512 => "SHA512",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum UserSort {
    /// By login name
    User,
    /// Most recent login first; users who never logged in with MFA last
    LastUsed,
    /// Users without an active factor first, then by their methods
    Methods,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ImportFormat {
    /// pam_u2f's u2f_keys or central authfile
    #[value(name = "pam-u2f")]
    PamU2f,
    /// google-authenticator's ~/.google_authenticator
    #[value(name = "google-authenticator")]
    GoogleAuthenticator,
}

impl ImportFormat {
    pub fn wire(self) -> &'static str {
        match self {
            ImportFormat::PamU2f => "pam-u2f",
            ImportFormat::GoogleAuthenticator => "google-authenticator",
        }
    }
}

/// A code as typed (spaces allowed, `123 456`) to the digits mfad expects.
pub fn normalise_code(raw: &str) -> Result<String, String> {
    let code: String = raw.chars().filter(|c| !c.is_whitespace()).collect();
    if code.is_empty() || !code.bytes().all(|b| b.is_ascii_digit()) {
        return Err("a confirmation code is digits only".to_string());
    }
    if !(6..=20).contains(&code.len()) {
        return Err(format!(
            "a confirmation code has 6 to 20 digits, not {}",
            code.len()
        ));
    }
    Ok(code)
}

/// A base32 secret as written by people and other tools (lower case,
/// spaces or dashes between groups, `=` padding) to plain upper case.
pub fn normalise_secret(raw: &str) -> Result<String, String> {
    let cleaned: String = raw
        .chars()
        .filter(|c| !c.is_whitespace() && *c != '-')
        .map(|c| c.to_ascii_uppercase())
        .collect();
    let secret = cleaned.trim_end_matches('=');
    if secret.is_empty() {
        return Err("the secret to import is empty".to_string());
    }
    if !secret.chars().all(|c| matches!(c, 'A'..='Z' | '2'..='7')) {
        return Err("the secret to import is not base32 (letters A-Z and digits 2-7)".to_string());
    }
    // Base32 carries 5 bits a letter; 1, 3 or 6 letters past a whole
    // group of 8 cannot end a byte string.
    if matches!(secret.len() % 8, 1 | 3 | 6) {
        return Err(format!(
            "the secret to import is not valid base32: {} letters cannot make whole bytes",
            secret.len()
        ));
    }
    let bytes = secret.len() * 5 / 8;
    let (min, max) = (mfa_dbus::MIN_SECRET_BYTES, mfa_dbus::MAX_SECRET_BYTES);
    if !(min..=max).contains(&bytes) {
        return Err(format!(
            "the secret to import is {bytes} bytes ({} base32 letters); it must be {min} to {max} bytes",
            secret.len()
        ));
    }
    Ok(secret.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "JBSWY3DPEHPK3PXP";

    #[test]
    fn secrets_are_normalised_and_checked() {
        assert_eq!(
            normalise_secret("jbsw y3dp-ehpk 3pxp==").as_deref(),
            Ok(SECRET)
        );
        assert!(normalise_secret("  ").is_err());
        assert!(normalise_secret("JBSW1").is_err(), "1 is not base32");
        assert!(normalise_secret("JBSW8").is_err(), "8 is not base32");
        let short = normalise_secret("JBSWY3DP").expect_err("5 bytes");
        assert!(
            short.contains("5 bytes") && short.contains("10 to 128"),
            "{short}"
        );
        let ragged = normalise_secret("JBSWY3DPE").expect_err("9 letters");
        assert!(ragged.contains("whole bytes"), "{ragged}");
        let long = "A".repeat(208);
        assert!(normalise_secret(&long).is_err(), "130 bytes");
        assert!(normalise_secret(&"A".repeat(200)).is_ok(), "125 bytes");
    }

    #[test]
    fn codes_are_normalised_and_checked() {
        assert_eq!(normalise_code(" 123 456\n").as_deref(), Ok("123456"));
        assert_eq!(normalise_code("12345678").as_deref(), Ok("12345678"));
        assert!(normalise_code("12345").is_err());
        assert_eq!(
            normalise_code("12345678901234567890").as_deref(),
            Ok("12345678901234567890"),
            "an e-mail code may have 20"
        );
        assert!(normalise_code("123456789012345678901").is_err());
        assert!(normalise_code("12345a").is_err());
        assert!(normalise_code("١٢٣٤٥٦").is_err(), "ASCII digits only");
    }
}
