//! Who is calling: the uid the bus daemon vouches for, never an argument.

use mfa_dbus::MfaError;
use std::collections::HashMap;
use std::sync::Mutex;
use zbus::message::Header;
use zbus::names::BusName;
use zbus::Connection;

/// A resolved caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// Unique bus name of the calling connection.
    pub connection: String,
    pub uid: u32,
}

/// Resolves senders to uids. Unique names are never reused while the bus
/// runs, so a resolved name can be cached; the cache is cleared when it
/// grows large.
pub struct Callers {
    bus: zbus::fdo::DBusProxy<'static>,
    cache: Mutex<HashMap<String, u32>>,
}

const CACHE_LIMIT: usize = 4096;

impl Callers {
    pub async fn new(connection: &Connection) -> zbus::Result<Callers> {
        let bus = zbus::fdo::DBusProxy::builder(connection)
            .cache_properties(zbus::proxy::CacheProperties::No)
            .build()
            .await?;
        Ok(Callers {
            bus,
            cache: Mutex::new(HashMap::new()),
        })
    }

    pub async fn identify(&self, header: &Header<'_>) -> Result<Caller, MfaError> {
        let sender = header
            .sender()
            .ok_or_else(|| MfaError::AccessDenied("message has no sender".into()))?
            .to_owned();
        let name = sender.to_string();
        if let Some(uid) = self.cached(&name) {
            return Ok(Caller {
                connection: name,
                uid,
            });
        }
        let uid = self
            .bus
            .get_connection_unix_user(BusName::Unique(sender))
            .await
            .map_err(|e| MfaError::AccessDenied(format!("cannot identify the caller: {e}")))?;
        let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        if cache.len() >= CACHE_LIMIT {
            cache.clear();
        }
        cache.insert(name.clone(), uid);
        Ok(Caller {
            connection: name,
            uid,
        })
    }

    fn cached(&self, name: &str) -> Option<u32> {
        self.cache
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(name)
            .copied()
    }
}
