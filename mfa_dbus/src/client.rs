//! The client side of a login: connect to mfad, then relay its steps to a
//! [`Conversation`] until it allows or denies. The PAM module and the tests'
//! drivers share this loop; only the conversation differs.

use crate::error::MfaError;
use crate::names::BUS_NAME;
use crate::proxy::{FactorsProxy, LoginProxy};
use crate::types::{DenyReason, LoginRequest, Step, StepKind};
use std::fmt;
use std::future::Future;
use std::time::Duration;
use zbus::names::OwnedUniqueName;
use zbus::Connection;

/// A daemon that keeps sending steps is broken; stop relaying after this many.
const MAX_STEPS: usize = 256;
/// Polls of [`StepKind::Wait`] steps per login: 20 minutes of holds, far
/// past any login time limit mfad allows.
const MAX_WAITS: usize = 2400;

/// What the user typed. Wiped when dropped, never printed.
pub struct Answer(String);

impl Answer {
    pub fn new(text: String) -> Self {
        Answer(text)
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl Drop for Answer {
    fn drop(&mut self) {
        let mut bytes = std::mem::take(&mut self.0).into_bytes();
        for b in bytes.iter_mut() {
            // SAFETY: `b` is a valid, exclusive reference into `bytes`; the
            // volatile write keeps the compiler from dropping a dead store.
            unsafe { std::ptr::write_volatile(b, 0) };
        }
    }
}

impl fmt::Debug for Answer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Answer(<redacted>)")
    }
}

/// The conversation could not show a message or get an answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConversationAborted;

/// The user-facing side of a login: PAM's conversation function, or a script.
pub trait Conversation {
    fn info(&mut self, text: &str) -> Result<(), ConversationAborted>;
    fn error(&mut self, text: &str) -> Result<(), ConversationAborted>;
    fn prompt(&mut self, text: &str, echo: bool) -> Result<Answer, ConversationAborted>;
}

/// How a login ended when mfad made a decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// A second factor was checked.
    Allowed,
    /// None was needed, none was checked.
    Skipped,
    Denied(DenyReason),
}

/// Why a login ended without a decision from mfad.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("cannot reach mfad at {address}: {source}")]
    Unreachable {
        address: String,
        source: zbus::Error,
    },
    #[error("mfad did not answer within {0:?}")]
    Timeout(Duration),
    #[error("the conversation with the user was aborted")]
    ConversationAborted,
    #[error("mfad refused the call: {0}")]
    Daemon(MfaError),
    #[error("mfad sent more than {MAX_STEPS} steps or {MAX_WAITS} waits")]
    TooManySteps,
    #[error("the owner of {BUS_NAME} runs as uid {uid}, not root: refusing to talk to it")]
    Untrusted { uid: u32 },
    /// The login socket is not root's alone, or its server is not root:
    /// nothing was sent to it.
    #[error("refusing the login socket {path}: {problem}")]
    UntrustedSocket { path: String, problem: String },
}

impl From<ConversationAborted> for ClientError {
    fn from(_: ConversationAborted) -> Self {
        ClientError::ConversationAborted
    }
}

/// Connect to the bus at `address` (never read from the environment).
///
/// A `unix:path=` address is connected here with a non-blocking socket:
/// zbus would otherwise connect on a helper thread, which costs a thread
/// start and join on every login.
pub async fn connect(address: &str, timeout: Duration) -> Result<Connection, ClientError> {
    let unreachable = |source| ClientError::Unreachable {
        address: address.to_string(),
        source,
    };
    let build = async {
        let builder = match unix_path(address) {
            Some(path) => {
                let stream = tokio::net::UnixStream::connect(path)
                    .await
                    .map_err(|e| unreachable(zbus::Error::InputOutput(e.into())))?;
                zbus::connection::Builder::unix_stream(stream)
            }
            None => zbus::connection::Builder::address(address).map_err(unreachable)?,
        };
        builder.build().await.map_err(unreachable)
    };
    within(timeout, build).await?
}

/// The socket path of a plain `unix:path=/abs/path` address.
fn unix_path(address: &str) -> Option<&str> {
    let path = address.strip_prefix("unix:path=")?;
    (path.starts_with('/') && !path.contains([',', ';', '%'])).then_some(path)
}

/// A connection a login can run on, and how its other end is known to be
/// mfad running as root.
pub struct LoginConnection {
    connection: Connection,
    /// On a bus, the owner of the name is checked per login; on the login
    /// socket the kernel already vouched for the server at connect.
    on_bus: bool,
}

impl LoginConnection {
    /// Through the bus at `address` (never read from the environment).
    pub async fn bus(address: &str, timeout: Duration) -> Result<LoginConnection, ClientError> {
        Ok(LoginConnection {
            connection: connect(address, timeout).await?,
            on_bus: true,
        })
    }

    /// Peer to peer on the login socket at `path`, once it and its server
    /// are shown to be root's (see [`crate::socket`]).
    pub async fn socket(
        path: &std::path::Path,
        timeout: Duration,
    ) -> Result<LoginConnection, ClientError> {
        Ok(LoginConnection {
            connection: crate::socket::connect(path, timeout).await?,
            on_bus: false,
        })
    }
}

/// Drive one login to its end. Each call to mfad must answer within
/// `call_timeout`; the time the user takes to type is not limited here (mfad
/// enforces its own login time limit).
pub async fn run_login(
    login: &LoginConnection,
    request: &LoginRequest,
    conversation: &mut dyn Conversation,
    call_timeout: Duration,
) -> Result<Outcome, ClientError> {
    let connection = &login.connection;
    let (proxy, started) = if login.on_bus {
        // Talk to the connection that owns the name now, by its unique
        // name, so the name cannot move to another process mid-login; and
        // only if that connection runs as root, which the bus vouches for
        // while Start is on its way (nothing is shown to the user before
        // the check passes).
        let owner = within(call_timeout, name_owner(connection)).await??;
        let proxy = within(call_timeout, login_proxy(connection, Some(owner.clone()))).await??;
        let (owner_uid, started) = within(call_timeout, async {
            tokio::join!(unix_user(connection, &owner), proxy.start(request))
        })
        .await?;
        // The owner first: whatever a look-alike answered, it is not believed.
        let owner_uid = owner_uid?;
        if owner_uid != TRUSTED_UID {
            return Err(ClientError::Untrusted { uid: owner_uid });
        }
        (proxy, started)
    } else {
        let proxy = within(call_timeout, login_proxy(connection, None)).await??;
        let started = within(call_timeout, proxy.start(request)).await?;
        (proxy, started)
    };
    let (handle, step) = started.map_err(ClientError::Daemon)?;
    converse(&proxy, &handle, step, conversation, call_timeout).await
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
    let proxy = within(call_timeout, login_proxy(connection, None)).await??;
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
    let (mut steps, mut waits) = (0, 0);
    while steps < MAX_STEPS && waits < MAX_WAITS {
        if step.kind == StepKind::Wait {
            waits += 1;
        } else {
            steps += 1;
        }
        let answer = match relay(&step, conversation) {
            Ok(Relayed::Done(outcome)) => return Ok(outcome),
            Ok(Relayed::Answer(answer)) => answer,
            Err(aborted) => {
                // Best effort: the handle expires on its own anyway.
                let _ = within(call_timeout, proxy.cancel(handle)).await;
                return Err(aborted.into());
            }
        };
        let deadline = crate::monotonic_ms() + call_timeout.as_millis() as u64;
        step = within(
            call_timeout,
            proxy.answer(handle, answer.expose(), deadline),
        )
        .await?
        .map_err(ClientError::Daemon)?;
    }
    Err(ClientError::TooManySteps)
}

/// The uid mfad must run as.
pub(crate) const TRUSTED_UID: u32 = 0;

/// Login1 on `connection`, at `owner` on a bus (a peer-to-peer connection
/// has no names).
async fn login_proxy(
    connection: &Connection,
    owner: Option<OwnedUniqueName>,
) -> Result<LoginProxy<'static>, ClientError> {
    let mut builder =
        LoginProxy::builder(connection).cache_properties(zbus::proxy::CacheProperties::No);
    if let Some(owner) = owner {
        builder = builder.destination(owner).map_err(daemon_error)?;
    }
    builder.build().await.map_err(daemon_error)
}

fn daemon_error(e: zbus::Error) -> ClientError {
    ClientError::Daemon(MfaError::ZBus(e))
}

/// Ask the bus daemon itself (`org.freedesktop.DBus`) one question about a
/// name. Errors stay plain method errors, so "no owner" reads as mfad gone.
async fn ask_bus<R>(
    connection: &Connection,
    method: &'static str,
    name: &str,
) -> Result<R, ClientError>
where
    R: for<'d> serde::Deserialize<'d> + zbus::zvariant::Type,
{
    let reply = connection
        .call_method(
            Some("org.freedesktop.DBus"),
            "/org/freedesktop/DBus",
            Some("org.freedesktop.DBus"),
            method,
            &(name,),
        )
        .await
        .map_err(daemon_error)?;
    reply.body().deserialize::<R>().map_err(daemon_error)
}

async fn name_owner(connection: &Connection) -> Result<OwnedUniqueName, ClientError> {
    ask_bus(connection, "GetNameOwner", BUS_NAME).await
}

async fn unix_user(connection: &Connection, owner: &OwnedUniqueName) -> Result<u32, ClientError> {
    ask_bus(connection, "GetConnectionUnixUser", owner.as_str()).await
}

enum Relayed {
    Done(Outcome),
    Answer(Answer),
}

fn relay(step: &Step, conversation: &mut dyn Conversation) -> Result<Relayed, ConversationAborted> {
    match step.kind {
        StepKind::Info => {
            conversation.info(&step.text)?;
            Ok(Relayed::Answer(Answer::new(String::new())))
        }
        // The user is told once (later polls carry no text); the empty
        // answer goes back at once and mfad holds it.
        StepKind::Wait => {
            if !step.text.is_empty() {
                conversation.info(&step.text)?;
            }
            Ok(Relayed::Answer(Answer::new(String::new())))
        }
        StepKind::PromptEchoOff | StepKind::PromptEchoOn => {
            let echo = step.kind == StepKind::PromptEchoOn;
            Ok(Relayed::Answer(conversation.prompt(&step.text, echo)?))
        }
        StepKind::Allow => {
            if !step.text.is_empty() {
                conversation.info(&step.text)?;
            }
            Ok(Relayed::Done(Outcome::Allowed))
        }
        StepKind::Skip => Ok(Relayed::Done(Outcome::Skipped)),
        StepKind::Deny => {
            if !step.text.is_empty() {
                // The decision stands even if the message cannot be shown.
                let _ = conversation.error(&step.text);
            }
            let reason = match step.reason {
                // A deny without a reason is still a deny.
                DenyReason::None => DenyReason::Internal,
                other => other,
            };
            Ok(Relayed::Done(Outcome::Denied(reason)))
        }
    }
}

pub(crate) async fn within<T>(
    limit: Duration,
    fut: impl Future<Output = T>,
) -> Result<T, ClientError> {
    tokio::time::timeout(limit, fut)
        .await
        .map_err(|_| ClientError::Timeout(limit))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Default)]
    struct Script {
        shown: Vec<String>,
        answers: Vec<&'static str>,
    }

    impl Conversation for Script {
        fn info(&mut self, text: &str) -> Result<(), ConversationAborted> {
            self.shown.push(format!("info:{text}"));
            Ok(())
        }
        fn error(&mut self, text: &str) -> Result<(), ConversationAborted> {
            self.shown.push(format!("error:{text}"));
            Ok(())
        }
        fn prompt(&mut self, text: &str, _echo: bool) -> Result<Answer, ConversationAborted> {
            self.shown.push(format!("prompt:{text}"));
            if self.answers.is_empty() {
                return Err(ConversationAborted);
            }
            Ok(Answer::new(self.answers.remove(0).to_string()))
        }
    }

    #[test]
    fn deny_without_reason_is_internal_and_shows_text() {
        let mut script = Script::default();
        let step = Step {
            kind: StepKind::Deny,
            reason: DenyReason::None,
            text: "no".into(),
        };
        match relay(&step, &mut script) {
            Ok(Relayed::Done(Outcome::Denied(DenyReason::Internal))) => {}
            _ => panic!("a reasonless deny must map to Internal"),
        }
        assert_eq!(script.shown, vec!["error:no".to_string()]);
    }

    #[test]
    fn prompt_answers_and_aborts() {
        let mut script = Script {
            answers: vec!["123456"],
            ..Default::default()
        };
        match relay(&Step::prompt("Code: ", false), &mut script) {
            Ok(Relayed::Answer(a)) => assert_eq!(a.expose(), "123456"),
            _ => panic!("prompt must yield the answer"),
        }
        assert!(relay(&Step::prompt("Code: ", false), &mut script).is_err());
    }

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

    #[test]
    fn answer_debug_is_redacted() {
        assert_eq!(
            format!("{:?}", Answer::new("123456".into())),
            "Answer(<redacted>)"
        );
    }
}
