//! The single definition of the pam_mfa D-Bus contract.
//!
//! `mfad` serves it, `pam_mfa.so`, `mfactl` and the tests consume it. Nothing
//! here depends on the daemon, so the PAM module stays small.

/// Seconds pam_mfa allows, unless its `timeout=` option says otherwise,
/// for connecting to the bus and for each call to mfad: whatever mfad must
/// decide within one call (a store deadline) has to fit below it.
pub const DEFAULT_CALL_TIMEOUT_SECS: u64 = 10;

pub mod client;
pub mod conversation;
pub mod error;
pub mod names;
pub mod proxy;
pub mod socket;
pub mod types;
pub mod wire;

pub use client::{connect, run_step_up, ConnectError};
pub use conversation::{Answer, ClientError, Conversation, ConversationAborted, Outcome};
pub use error::MfaError;
pub use names::*;
pub use proxy::{AdminProxy, FactorsProxy, LoginProxy};
pub use types::*;

/// Milliseconds on the system's monotonic clock (CLOCK_MONOTONIC, shared by
/// every process of the machine): how a PAM client tells mfad when it
/// stops waiting for an answer.
pub fn monotonic_ms() -> u64 {
    let mut now = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime only writes the timespec it is given.
    if unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut now) } != 0 {
        return 0;
    }
    (now.tv_sec as u64).saturating_mul(1000) + (now.tv_nsec as u64) / 1_000_000
}
