//! The real [`Mfad`]: one short-lived D-Bus connection per login, on a
//! single-threaded tokio runtime that exists only for the call.
//!
//! The host process (sshd, sudo, su, a display manager) gets back exactly
//! the threads it had: the connection is dropped inside the runtime, then
//! the runtime is shut down, which ends its tasks and joins the helper
//! threads zbus uses for blocking socket calls.

use crate::options::Options;
use crate::relay::{LoginError, Mfad};
use mfa_dbus::{Conversation, LoginRequest, Outcome};
use std::time::Duration;

/// How long shutting the runtime down may wait for a helper thread that is
/// still inside a blocking call. Idle helpers exit at once.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(1);

pub struct BusMfad {
    /// Always from the PAM line or the built-in default, never the
    /// environment (`zbus::Connection::system()` would read it).
    address: String,
    timeout: Duration,
}

impl BusMfad {
    pub fn new(options: &Options) -> Self {
        BusMfad {
            address: options.bus.clone(),
            timeout: options.timeout,
        }
    }
}

impl Mfad for BusMfad {
    fn login(
        &self,
        request: &LoginRequest,
        conversation: &mut dyn Conversation,
    ) -> Result<Outcome, LoginError> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .enable_time()
            .build()
            .map_err(LoginError::Runtime)?;
        let result = runtime.block_on(async {
            let connection = mfa_dbus::connect(&self.address, self.timeout).await?;
            let result =
                mfa_dbus::run_login(&connection, request, conversation, self.timeout).await;
            // zbus may need the runtime to let go of the connection.
            drop(connection);
            result
        });
        runtime.shutdown_timeout(SHUTDOWN_GRACE);
        result.map_err(LoginError::from)
    }
}
