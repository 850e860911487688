//! Factors brought over from the tools users already have: each format is
//! one module that turns a file into factors, every line or none. The
//! service adds them in one store transaction (`Service::import`).

pub mod google_authenticator;
pub mod pam_u2f;

/// The file formats mfad reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// pam_u2f's `u2f_keys` / central authfile.
    PamU2f,
    /// google-authenticator's `~/.google_authenticator`.
    GoogleAuthenticator,
}

impl Format {
    pub const NAMES: &'static str = "\"pam-u2f\" or \"google-authenticator\"";

    pub fn from_name(name: &str) -> Option<Format> {
        match name {
            "pam-u2f" => Some(Format::PamU2f),
            "google-authenticator" => Some(Format::GoogleAuthenticator),
            _ => None,
        }
    }
}

/// The largest file mfad reads.
pub const MAX_FILE: usize = 1 << 20;

/// A line that is not what the other tool writes: which, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LineError {
    pub line: usize,
    pub message: String,
}

impl std::fmt::Display for LineError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "line {}: {}", self.line, self.message)
    }
}
