//! The single definition of the pam_mfa D-Bus contract.
//!
//! `mfad` serves it, `pam_mfa.so`, `mfactl` and the tests consume it. Nothing
//! here depends on the daemon, so the PAM module stays small.

pub mod client;
pub mod error;
pub mod names;
pub mod proxy;
pub mod socket;
pub mod types;

pub use client::{
    connect, run_login, run_step_up, Answer, ClientError, Conversation, ConversationAborted,
    LoginConnection, Outcome,
};
pub use error::MfaError;
pub use names::*;
pub use proxy::{AdminProxy, FactorsProxy, LoginProxy};
pub use types::*;
