//! The real [`Mfad`]: one short-lived connection per login on mfa_dbus's
//! synchronous client: peer to peer on mfad's login socket when the PAM
//! client runs as root, through the system bus otherwise (a screen locker
//! running as the user). No thread and no event loop: the host process
//! (sshd, sudo, su, a display manager) gets back exactly what it had.

use crate::daemon::{LoginError, Mfad};
use crate::options::{Options, Transport};
use mfa_dbus::wire::Endpoint;
use mfa_dbus::{Conversation, LoginRequest, Outcome};
use std::path::PathBuf;
use std::time::Duration;

/// Where mfad is, always from the PAM line or the built-in defaults, never
/// the environment. `transport=auto` picks by who runs the PAM client:
/// only root can use the login socket.
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

pub struct DaemonLink {
    endpoint: Endpoint,
    timeout: Duration,
}

impl DaemonLink {
    pub fn new(options: &Options) -> Self {
        DaemonLink {
            endpoint: choose(options, crate::ffi::effective_uid()),
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
        mfa_dbus::wire::run_login(&self.endpoint, request, conversation, self.timeout)
            .map_err(LoginError::from)
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
        assert_eq!(choose(&options, 0), socket);
        assert_eq!(choose(&options, 1000), bus);
        let told = |transport| Options {
            transport,
            ..Options::default()
        };
        assert_eq!(choose(&told(Transport::Bus), 0), bus);
        assert_eq!(choose(&told(Transport::Socket), 1000), socket);
    }
}
