//! The synchronous client the PAM module runs its logins on: D-Bus
//! messages on a blocking Unix socket, no threads and no event loop, so
//! the host process (sshd, sudo, a screen locker) gets back exactly what it
//! had. The message bodies are the contract's types, encoded by zvariant.

pub mod connection;
pub mod login;
pub mod message;

pub use login::{run_login, Endpoint};
