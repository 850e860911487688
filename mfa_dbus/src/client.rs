//! The zbus side of the client: connecting mfactl to the bus, and the
//! step-up conversation it holds before a change that needs a fresh proof.
//! (The PAM module's logins run on the synchronous [`crate::wire`] client.)

use crate::conversation::{
    answer_deadline, relay, ClientError, Conversation, Outcome, Relayed, StepBudget,
};
use crate::error::MfaError;
use crate::proxy::{FactorsProxy, LoginProxy};
use crate::types::Step;
use std::future::Future;
use std::time::Duration;
use zbus::Connection;

/// Why no bus connection was made.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error("{0}")]
    Bus(zbus::Error),
    #[error("no answer within {0:?}")]
    Timeout(Duration),
}

/// Connect to the bus at `address` (never read from the environment).
///
/// A `unix:path=` address is connected here with a non-blocking socket:
/// zbus would otherwise connect on a helper thread.
pub async fn connect(address: &str, timeout: Duration) -> Result<Connection, ConnectError> {
    let build = async {
        let builder = match unix_path(address) {
            Some(path) => {
                let stream = tokio::net::UnixStream::connect(path)
                    .await
                    .map_err(|e| ConnectError::Bus(zbus::Error::InputOutput(e.into())))?;
                zbus::connection::Builder::unix_stream(stream)
            }
            None => zbus::connection::Builder::address(address).map_err(ConnectError::Bus)?,
        };
        builder.build().await.map_err(ConnectError::Bus)
    };
    tokio::time::timeout(timeout, build)
        .await
        .map_err(|_| ConnectError::Timeout(timeout))?
}

/// The socket path of a plain `unix:path=/abs/path` address.
pub fn unix_path(address: &str) -> Option<&str> {
    let path = address.strip_prefix("unix:path=")?;
    (path.starts_with('/') && !path.contains([',', ';', '%'])).then_some(path)
}

/// Prove one of the caller's factors to mfad on `connection` (a bus
/// connection of the caller's own: the proof is good for it alone), in a
/// conversation like a login's. `Allowed` is the proof.
pub async fn run_step_up(
    connection: &Connection,
    conversation: &mut dyn Conversation,
    call_timeout: Duration,
) -> Result<Outcome, ClientError> {
    let factors = within(
        call_timeout,
        FactorsProxy::builder(connection)
            .cache_properties(zbus::proxy::CacheProperties::No)
            .build(),
    )
    .await?
    .map_err(daemon_error)?;
    let (handle, step) = within(call_timeout, factors.begin_step_up())
        .await?
        .map_err(ClientError::Daemon)?;
    let proxy = within(
        call_timeout,
        LoginProxy::builder(connection)
            .cache_properties(zbus::proxy::CacheProperties::No)
            .build(),
    )
    .await?
    .map_err(daemon_error)?;
    converse(&proxy, &handle, step, conversation, call_timeout).await
}

/// Relay the steps of the conversation `handle`, from `step` on, until mfad
/// decides.
async fn converse(
    proxy: &LoginProxy<'_>,
    handle: &str,
    mut step: Step,
    conversation: &mut dyn Conversation,
    call_timeout: Duration,
) -> Result<Outcome, ClientError> {
    let mut budget = StepBudget::default();
    loop {
        budget.spend(&step)?;
        let answer = match relay(&step, conversation) {
            Ok(Relayed::Done(outcome)) => return Ok(outcome),
            Ok(Relayed::Answer(answer)) => answer,
            Err(aborted) => {
                // Best effort: the handle expires on its own anyway.
                let _ = within(call_timeout, proxy.cancel(handle)).await;
                return Err(aborted.into());
            }
        };
        let deadline = answer_deadline(call_timeout);
        step = within(
            call_timeout,
            proxy.answer(handle, answer.expose(), deadline),
        )
        .await?
        .map_err(ClientError::Daemon)?;
    }
}

fn daemon_error(e: zbus::Error) -> ClientError {
    ClientError::Daemon(MfaError::ZBus(e))
}

async fn within<T>(limit: Duration, fut: impl Future<Output = T>) -> Result<T, ClientError> {
    tokio::time::timeout(limit, fut)
        .await
        .map_err(|_| ClientError::Timeout(limit))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_plain_unix_paths_are_connected_directly() {
        assert_eq!(
            unix_path("unix:path=/run/dbus/system_bus_socket"),
            Some("/run/dbus/system_bus_socket")
        );
        assert_eq!(unix_path("unix:path=relative"), None);
        assert_eq!(unix_path("unix:path=/a,guid=1"), None);
        assert_eq!(unix_path("tcp:host=localhost,port=1"), None);
    }
}
