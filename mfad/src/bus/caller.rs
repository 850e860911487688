//! Who is calling: the uid the bus daemon vouches for, never an argument.
//!
//! Every login comes on a new connection, so asking the bus for its uid
//! when the call arrives would add a round trip to every login. Instead mfad
//! watches connections appear (`NameOwnerChanged`) and asks at once; by the
//! time the connection's first call arrives the answer is usually there.
//! A call that arrives first simply waits for (or starts) the same lookup.
//! Unique names are never reused while the bus runs, so an answer stays
//! true until the connection goes, when it is forgotten.

use futures_lite::StreamExt;
use mfa_dbus::MfaError;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use tokio::sync::OnceCell;
use zbus::message::Header;
use zbus::names::{BusName, UniqueName};
use zbus::Connection;

/// A resolved caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// Unique bus name of the calling connection.
    pub connection: String,
    pub uid: u32,
    /// The process on the other end, as the bus daemon saw it connect.
    pub pid: Option<u32>,
}

/// What the bus daemon vouches for about a connection.
#[derive(Debug, Clone, Copy)]
struct Credentials {
    uid: u32,
    pid: Option<u32>,
}

type Lookup = Arc<OnceCell<Credentials>>;

pub struct Callers {
    bus: zbus::fdo::DBusProxy<'static>,
    lookups: Mutex<HashMap<String, Lookup>>,
}

/// A bound on remembered connections, should disconnects go unseen.
const LIMIT: usize = 65_536;

impl Callers {
    /// Watch connections come and go; `gone` is told each unique name that
    /// leaves the bus (its logins in progress can be dropped).
    pub async fn new(
        connection: &Connection,
        gone: impl Fn(&str) + Send + Sync + 'static,
    ) -> zbus::Result<Arc<Callers>> {
        let bus = zbus::fdo::DBusProxy::builder(connection)
            .cache_properties(zbus::proxy::CacheProperties::No)
            .build()
            .await?;
        let callers = Arc::new(Callers {
            bus,
            lookups: Mutex::new(HashMap::new()),
        });
        let mut changes = callers.bus.receive_name_owner_changed().await?;
        let watcher = Arc::clone(&callers);
        tokio::spawn(async move {
            while let Some(change) = changes.next().await {
                let Ok(args) = change.args() else { continue };
                let BusName::Unique(name) = args.name() else {
                    continue;
                };
                match (args.old_owner().is_none(), args.new_owner().is_none()) {
                    (true, false) => watcher.prefetch(name.to_owned()),
                    (_, true) => {
                        watcher.forget(name.as_str());
                        gone(name.as_str());
                    }
                    _ => {}
                }
            }
        });
        Ok(callers)
    }

    pub async fn identify(&self, header: &Header<'_>) -> Result<Caller, MfaError> {
        let sender = header
            .sender()
            .ok_or_else(|| MfaError::AccessDenied("message has no sender".into()))?
            .to_owned();
        let credentials = self.credentials_of(sender.clone()).await?;
        Ok(Caller {
            connection: sender.to_string(),
            uid: credentials.uid,
            pid: credentials.pid,
        })
    }

    fn prefetch(self: &Arc<Self>, name: UniqueName<'static>) {
        let callers = Arc::clone(self);
        tokio::spawn(async move {
            // A failure here is retried by the connection's first call.
            let _ = callers.credentials_of(name).await;
        });
    }

    async fn credentials_of(&self, name: UniqueName<'static>) -> Result<Credentials, MfaError> {
        let lookup = self.lookup_for(name.as_str());
        lookup
            .get_or_try_init(|| async {
                let denied =
                    |e: String| MfaError::AccessDenied(format!("cannot identify the caller: {e}"));
                let credentials = self
                    .bus
                    .get_connection_credentials(BusName::Unique(name.clone()))
                    .await
                    .map_err(|e| denied(e.to_string()))?;
                let uid = credentials
                    .unix_user_id()
                    .ok_or_else(|| denied("the bus gave no uid".into()))?;
                Ok(Credentials {
                    uid,
                    pid: credentials.process_id(),
                })
            })
            .await
            .copied()
    }

    fn lookup_for(&self, name: &str) -> Lookup {
        let mut lookups = self.lookups.lock().unwrap_or_else(|p| p.into_inner());
        if lookups.len() >= LIMIT && !lookups.contains_key(name) {
            lookups.clear();
        }
        Arc::clone(lookups.entry(name.to_string()).or_default())
    }

    fn forget(&self, name: &str) {
        self.lookups
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(name);
    }
}
