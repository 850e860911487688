//! mfad on the bus: the three interfaces of the contract in `mfa_dbus`,
//! each method identifying its caller through the bus before any work.

mod access;
mod admin;
mod caller;
mod factors;
mod login;
mod socket;

pub use access::Access;
pub use caller::{Caller, Callers};
pub use socket::{LoginSocket, SocketError};

use crate::service::Service;
use futures_lite::StreamExt;
use mfa_dbus::{MfaError, BUS_NAME, OBJECT_PATH};
use std::sync::Arc;
use zbus::message::Header;
use zbus::Connection;

/// What every interface needs.
#[derive(Clone)]
pub struct Shared {
    pub service: Arc<Service>,
    pub callers: Arc<Callers>,
    pub access: Arc<Access>,
}

/// mfad on the bus (and its login socket), until it is not any more.
pub struct Served {
    pub connection: Connection,
    name_lost: zbus::fdo::NameLostStream,
    login_socket: Option<tokio::task::JoinHandle<Result<(), SocketError>>>,
}

impl Served {
    /// Completes when mfad no longer owns its name (the bus went away or
    /// the name was taken from it) or cannot serve its login socket any
    /// more. Says which.
    pub async fn gone(&mut self) -> String {
        let bus = async {
            while let Some(lost) = self.name_lost.next().await {
                if lost
                    .args()
                    .map(|a| a.name().as_str() == BUS_NAME)
                    .unwrap_or(false)
                {
                    return "lost its bus name".to_string();
                }
            }
            "lost its bus connection".to_string()
        };
        let socket = async {
            match self.login_socket.as_mut() {
                Some(task) => match task.await {
                    Ok(Err(e)) => format!("cannot serve the login socket: {e}"),
                    _ => "stopped serving the login socket".to_string(),
                },
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            why = bus => why,
            why = socket => why,
        }
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        if let Some(task) = &self.login_socket {
            task.abort();
        }
    }
}

/// Connect to the bus at `address`, serve the interfaces there and on the
/// login socket, then take the well-known name (so clients never see the
/// name before both work).
pub async fn serve(
    address: &str,
    service: Arc<Service>,
    login_socket: Option<LoginSocket>,
) -> Result<Served, zbus::Error> {
    let connection = zbus::connection::Builder::address(address)?.build().await?;
    let name_lost = zbus::fdo::DBusProxy::new(&connection)
        .await?
        .receive_name_lost()
        .await?;
    let on_gone = Arc::clone(&service);
    let callers = Callers::new(&connection, move |name| on_gone.connection_gone(name)).await?;
    let access = Arc::new(Access::new(service.config().daemon.admin_group.clone()));
    let shared = Shared {
        service,
        callers,
        access,
    };
    let server = connection.object_server();
    server
        .at(OBJECT_PATH, login::LoginInterface::bus(shared.clone()))
        .await?;
    server
        .at(OBJECT_PATH, factors::FactorsInterface(shared.clone()))
        .await?;
    server
        .at(OBJECT_PATH, admin::AdminInterface(shared.clone()))
        .await?;
    let login_socket = login_socket.map(|socket| tokio::spawn(socket.serve(shared)));
    connection
        .request_name_with_flags(BUS_NAME, zbus::fdo::RequestNameFlags::DoNotQueue.into())
        .await?;
    Ok(Served {
        connection,
        name_lost,
        login_socket,
    })
}

/// Every service call runs as blocking work, never holding up the
/// runtime's other tasks: it may wait on the store (a database server, a
/// disk), on NSS (group lookups can go to LDAP), or on slow hashes.
impl Shared {
    /// Run `call` off the runtime for the caller's own account, named by
    /// the caller's uid on the bus: (service, caller uid, user name). For
    /// calls that only read.
    async fn as_own_user<T: Send + 'static>(
        &self,
        header: &Header<'_>,
        call: impl FnOnce(&Service, u32, &str) -> Result<T, crate::error::DaemonError> + Send + 'static,
    ) -> Result<T, MfaError> {
        self.own_account(header, Change::None, call).await
    }

    /// [`Shared::as_own_user`] for a call that changes the account: counted
    /// against the caller's `[limits]` first.
    async fn changing_own_account<T: Send + 'static>(
        &self,
        header: &Header<'_>,
        call: impl FnOnce(&Service, u32, &str) -> Result<T, crate::error::DaemonError> + Send + 'static,
    ) -> Result<T, MfaError> {
        self.own_account(header, Change::Counted, call).await
    }

    /// [`Shared::changing_own_account`] for a change that needs a fresh
    /// proof of one of the caller's factors (`StepUpRequired` until this
    /// connection gave one), checked before it is counted.
    async fn proven_change_of_own_account<T: Send + 'static>(
        &self,
        header: &Header<'_>,
        call: impl FnOnce(&Service, u32, &str) -> Result<T, crate::error::DaemonError> + Send + 'static,
    ) -> Result<T, MfaError> {
        self.own_account(header, Change::Proven, call).await
    }

    async fn own_account<T: Send + 'static>(
        &self,
        header: &Header<'_>,
        change: Change,
        call: impl FnOnce(&Service, u32, &str) -> Result<T, crate::error::DaemonError> + Send + 'static,
    ) -> Result<T, MfaError> {
        let caller = self.callers.identify(header).await?;
        let access = Arc::clone(&self.access);
        blocking(self, move |service| {
            let user = access.own_user(caller.uid)?;
            if change == Change::Proven {
                service.require_step_up(&caller.connection, caller.uid, &user)?;
            }
            if change != Change::None {
                service.limit_change(caller.uid, &user)?;
            }
            call(service, caller.uid, &user)
        })
        .await
    }

    /// Run `call` off the runtime if the caller is an admin: (service,
    /// caller uid).
    async fn as_admin<T: Send + 'static>(
        &self,
        header: &Header<'_>,
        call: impl FnOnce(&Service, u32) -> Result<T, crate::error::DaemonError> + Send + 'static,
    ) -> Result<T, MfaError> {
        let caller = self.callers.identify(header).await?;
        let access = Arc::clone(&self.access);
        blocking(self, move |service| {
            access.check_admin(caller.uid)?;
            call(service, caller.uid)
        })
        .await
    }
}

/// What a call on the caller's own account does to it.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Change {
    None,
    /// Counted against `[limits]`.
    Counted,
    /// Counted, and only after a fresh proof of a factor (`step_up`).
    Proven,
}

async fn blocking<T: Send + 'static>(
    shared: &Shared,
    call: impl FnOnce(&Service) -> Result<T, crate::error::DaemonError> + Send + 'static,
) -> Result<T, MfaError> {
    let service = Arc::clone(&shared.service);
    // The call runs right here, once tokio has handed this worker's other
    // tasks to another thread: no hop to a pool thread and back on every
    // call of a login (mfad's runtime is multi-threaded, as this needs).
    tokio::task::block_in_place(move || call(&service)).map_err(MfaError::from)
}
