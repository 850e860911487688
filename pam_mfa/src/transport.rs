//! The real [`Mfad`]: one short-lived D-Bus connection per login, on a
//! single-threaded tokio runtime that exists only for the call: peer to
//! peer on mfad's login socket when the PAM client runs as root, through
//! the system bus otherwise (a screen locker running as the user).
//!
//! The host process (sshd, sudo, su, a display manager) gets back exactly
//! the threads it had: the connection is dropped inside the runtime, then
//! the runtime is shut down, which ends its tasks and joins the helper
//! threads zbus uses for blocking socket calls.

use crate::daemon::{LoginError, Mfad};
use crate::options::{Options, Transport};
use mfa_dbus::{Conversation, LoginConnection, LoginRequest, Outcome};
use std::path::PathBuf;
use std::time::Duration;

/// How long shutting the runtime down may wait for a helper thread that is
/// still inside a blocking call. Idle helpers exit at once.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(1);

/// Where mfad is, always from the PAM line or the built-in defaults, never
/// the environment (`zbus::Connection::system()` would read it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Endpoint {
    Socket(PathBuf),
    Bus(String),
}

impl Endpoint {
    /// `transport=auto` picks by who runs the PAM client: only root can
    /// use the login socket.
    pub fn choose(options: &Options, euid: u32) -> Endpoint {
        let socket = match options.transport {
            Transport::Socket => true,
            Transport::Bus => false,
            Transport::Auto => euid == 0,
        };
        if socket {
            Endpoint::Socket(PathBuf::from(&options.socket))
        } else {
            Endpoint::Bus(options.bus.clone())
        }
    }
}

impl std::fmt::Display for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Endpoint::Socket(path) => write!(f, "the login socket {}", path.display()),
            Endpoint::Bus(address) => write!(f, "the bus {address}"),
        }
    }
}

pub struct DaemonLink {
    endpoint: Endpoint,
    timeout: Duration,
}

impl DaemonLink {
    pub fn new(options: &Options) -> Self {
        DaemonLink {
            endpoint: Endpoint::choose(options, crate::ffi::effective_uid()),
            timeout: options.timeout,
        }
    }
}

impl Mfad for DaemonLink {
    fn describe(&self) -> String {
        self.endpoint.to_string()
    }

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
            let connection = match &self.endpoint {
                Endpoint::Socket(path) => LoginConnection::socket(path, self.timeout).await?,
                Endpoint::Bus(address) => LoginConnection::bus(address, self.timeout).await?,
            };
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn root_takes_the_socket_and_others_the_bus_unless_told() {
        let options = Options::default();
        let socket = Endpoint::Socket(PathBuf::from(mfa_dbus::LOGIN_SOCKET));
        let bus = Endpoint::Bus(mfa_dbus::SYSTEM_BUS_ADDRESS.to_string());
        assert_eq!(Endpoint::choose(&options, 0), socket);
        assert_eq!(Endpoint::choose(&options, 1000), bus);
        let told = |transport| Options {
            transport,
            ..Options::default()
        };
        assert_eq!(Endpoint::choose(&told(Transport::Bus), 0), bus);
        assert_eq!(Endpoint::choose(&told(Transport::Socket), 1000), socket);
    }
}
