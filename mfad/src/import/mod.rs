//! Factors brought over from the tools users already have: each format is
//! one module that turns a file into factors, every line or none. The
//! service adds them in one store transaction (`Service::import`).

pub mod pam_u2f;

/// The file formats mfad reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// pam_u2f's `u2f_keys` / central authfile.
    PamU2f,
}

impl Format {
    pub fn from_name(name: &str) -> Option<Format> {
        match name {
            "pam-u2f" => Some(Format::PamU2f),
            _ => None,
        }
    }
}

/// The largest file mfad reads.
pub const MAX_FILE: usize = 1 << 20;
