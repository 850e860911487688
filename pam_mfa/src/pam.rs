//! The PAM handle as the flow sees it: the items it reads, its log, its
//! conversation. `ffi.rs` implements [`PamHandle`] over libpam; the tests
//! over a script.

use mfa_dbus::Conversation;
use std::fmt;
use std::os::raw::c_int;

/// The PAM items the module reads (`PAM_USER` comes from `pam_get_user`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Item {
    Service,
    Rhost,
    Ruser,
    Tty,
}

impl Item {
    pub fn name(self) -> &'static str {
        match self {
            Item::Service => "PAM_SERVICE",
            Item::Rhost => "PAM_RHOST",
            Item::Ruser => "PAM_RUSER",
            Item::Tty => "PAM_TTY",
        }
    }
}

/// Why a PAM value could not be read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PamError {
    /// libpam returned this code.
    Code(c_int),
    /// The value is not valid UTF-8; D-Bus strings must be.
    NotUtf8,
}

impl fmt::Display for PamError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PamError::Code(code) => write!(f, "libpam returned {code}"),
            PamError::NotUtf8 => f.write_str("the value is not valid UTF-8"),
        }
    }
}

/// Syslog priorities the module uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Priority {
    Error,
    Notice,
    Debug,
}

/// The PAM handle as the flow needs it. Its [`Conversation`] is the
/// application's conversation function.
pub trait PamHandle: Conversation {
    /// `pam_get_user` (may prompt for the name).
    fn user(&mut self) -> Result<String, PamError>;
    /// `pam_get_item`; `None` when unset.
    fn item(&self, item: Item) -> Result<Option<String>, PamError>;
    /// `pam_getenv`: the PAM environment, never the process environment.
    fn env(&self, name: &str) -> Result<Option<String>, PamError>;
    /// Log one line to authpriv, tagged with the module, service and hook.
    fn syslog(&self, priority: Priority, message: &str);
    /// `pam_fail_delay`: ask libpam to wait at least this long before it
    /// reports a failed stack (it waits the largest delay any module asked).
    fn fail_delay(&mut self, micros: u32);
}

/// What the module asks libpam to delay a failure by, as pam_unix does.
pub const FAIL_DELAY_MICROS: u32 = 2_000_000;

/// Text safe for one syslog line: control characters (newlines included)
/// escaped, so a user name cannot forge a second log line.
pub(crate) fn printable(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}
