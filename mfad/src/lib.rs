//! mfad: the pam_mfa daemon.
//!
//! - `config`: strict, versioned `mfad.toml`
//! - `mechanism`: second-factor mechanisms (TOTP, HOTP) behind one trait
//! - `store`: the embedded, transactional store of factors and their counters
//! - `login`: the login conversation state machine
//! - `policy`: who is asked, for what, from where (groups, levels, bypass, devices)
//! - `service`: what each D-Bus call does, free of D-Bus
//! - `bus`: the D-Bus interfaces and caller identification
//! - `audit`: every decision with its reason, never a code or a secret
//! - `notify`: telling admins when someone's second factor goes away
//! - `clock` and `random`: the only readers of the time and of the random source

pub mod audit;
pub mod bus;
pub mod clock;
pub mod config;
pub mod error;
pub mod import;
pub mod limits;
pub mod login;
pub mod mechanism;
pub mod notify;
pub mod policy;
pub mod random;
pub mod service;
pub mod store;
