//! One login on the synchronous client: peer to peer on the login socket
//! (root PAM clients), or through the system bus (a screen locker running
//! as the user). Each call to mfad is bounded by the caller's timeout; the
//! time the user takes to type is not (mfad enforces its own limit).

use super::connection::{Link, LinkError};
use super::message::{Args, Message, NO_REPLY_EXPECTED};
use crate::conversation::{
    answer_deadline, relay, ClientError, Conversation, Outcome, Relayed, StepBudget, TRUSTED_UID,
};
use crate::names::{BUS_NAME, LOGIN_INTERFACE, OBJECT_PATH};
use crate::types::{DenyReason, LoginRequest, Step, StepKind};
use serde::de::DeserializeOwned;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

const DBUS_NAME: &str = "org.freedesktop.DBus";
const DBUS_PATH: &str = "/org/freedesktop/DBus";

/// Where mfad is: always from the PAM line or the built-in defaults.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Endpoint {
    /// mfad's login socket, peer to peer.
    Socket(PathBuf),
    /// A bus address; only `unix:path=` is spoken here.
    Bus(String),
}

impl std::fmt::Display for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Endpoint::Socket(path) => write!(f, "the login socket {}", path.display()),
            Endpoint::Bus(address) => write!(f, "the bus {address}"),
        }
    }
}

/// A connection a login runs on, and where mfad is on it.
pub struct LoginLink {
    link: Link,
    /// mfad's unique name on a bus; none peer to peer.
    destination: Option<String>,
    timeout: Duration,
}

/// Drive one login at `endpoint` to its end.
pub fn run_login(
    endpoint: &Endpoint,
    request: &LoginRequest,
    conversation: &mut dyn Conversation,
    call_timeout: Duration,
) -> Result<Outcome, ClientError> {
    let (mut login, started) = match endpoint {
        Endpoint::Socket(path) => start_on_socket(path, request, call_timeout)?,
        Endpoint::Bus(address) => start_on_bus(address, request, call_timeout)?,
    };
    let (handle, mut step): (String, Step) = started;
    let mut budget = StepBudget::default();
    loop {
        budget.spend(&step)?;
        let answer = match relay(&step, conversation) {
            Ok(Relayed::Done(outcome)) => return Ok(outcome),
            Ok(Relayed::Answer(answer)) => answer,
            Err(aborted) => {
                login.cancel(&handle);
                return Err(aborted.into());
            }
        };
        let deadline = answer_deadline(call_timeout);
        let fields: StepFields =
            login.call("Answer", &(handle.as_str(), answer.expose(), deadline))?;
        step = step_from(fields);
    }
}

fn start_on_socket(
    path: &Path,
    request: &LoginRequest,
    timeout: Duration,
) -> Result<(LoginLink, (String, Step)), ClientError> {
    let mut login = LoginLink::socket(path, timeout)?;
    let started = login.call("Start", &(request,))?;
    Ok((login, started))
}

fn start_on_bus(
    address: &str,
    request: &LoginRequest,
    timeout: Duration,
) -> Result<(LoginLink, (String, Step)), ClientError> {
    let Some(path) = crate::client::unix_path(address) else {
        return Err(ClientError::Unreachable {
            address: address.to_string(),
            source: "only unix:path=/absolute/path bus addresses are supported".into(),
        });
    };
    let deadline = Instant::now() + timeout;
    let on_link = |e: LinkError| unreachable(address, timeout, e);
    let mut link = Link::connect(Path::new(path), deadline).map_err(on_link)?;
    // Authentication, Hello and the question of who owns mfad's name, in
    // one write: the bus reads past BEGIN as messages (as sd-bus does).
    // SAFETY: geteuid cannot fail; the bus compares it with SO_PEERCRED.
    let euid = unsafe { libc::geteuid() };
    let hex: String = euid
        .to_string()
        .bytes()
        .map(|b| format!("{b:02x}"))
        .collect();
    let mut out = format!("\0AUTH EXTERNAL {hex}\r\nBEGIN\r\n").into_bytes();
    let (hello, hello_serial) = link
        .call(Some(DBUS_NAME), DBUS_PATH, DBUS_NAME, "Hello", &())
        .map_err(protocol)?;
    let (owner_call, owner_serial) = link
        .call(
            Some(DBUS_NAME),
            DBUS_PATH,
            DBUS_NAME,
            "GetNameOwner",
            &(BUS_NAME,),
        )
        .map_err(protocol)?;
    out.extend_from_slice(&hello);
    out.extend_from_slice(&owner_call);
    link.send(&out, deadline).map_err(on_link)?;
    let line = link.read_line(deadline).map_err(on_link)?;
    if !line.starts_with("OK ") {
        return Err(unreachable(address, timeout, LinkError::Rejected(line)));
    }
    let (_unique,): (String,) = decode(link.reply(hello_serial, deadline).map_err(on_link)?)?;
    let (owner,): (String,) = decode(link.reply(owner_serial, deadline).map_err(on_link)?)?;
    // Talk to the connection that owns the name now, by its unique name,
    // so the name cannot move to another process mid-login; and only if
    // that connection runs as root, which the bus vouches for while Start
    // is on its way (nothing is shown to the user before the check passes).
    let (uid_call, uid_serial) = link
        .call(
            Some(DBUS_NAME),
            DBUS_PATH,
            DBUS_NAME,
            "GetConnectionUnixUser",
            &(owner.as_str(),),
        )
        .map_err(protocol)?;
    let (start, start_serial) = link
        .call(
            Some(&owner),
            OBJECT_PATH,
            LOGIN_INTERFACE,
            "Start",
            &(request,),
        )
        .map_err(protocol)?;
    let deadline = Instant::now() + timeout;
    let mut both = uid_call;
    both.extend_from_slice(&start);
    link.send(&both, deadline).map_err(lost(timeout))?;
    // The owner first: whatever a look-alike answered, it is not believed.
    let (owner_uid,): (u32,) = decode(link.reply(uid_serial, deadline).map_err(lost(timeout))?)?;
    if owner_uid != TRUSTED_UID {
        return Err(ClientError::Untrusted { uid: owner_uid });
    }
    let started = decode(link.reply(start_serial, deadline).map_err(lost(timeout))?)?;
    let login = LoginLink {
        link,
        destination: Some(owner),
        timeout,
    };
    Ok((login, started))
}

impl LoginLink {
    /// Peer to peer on the login socket at `path`, once it and its server
    /// are shown to be root's (see [`crate::socket`]).
    pub fn socket(path: &Path, timeout: Duration) -> Result<LoginLink, ClientError> {
        crate::socket::check_path(path).map_err(|e| *e)?;
        let deadline = Instant::now() + timeout;
        let link =
            Link::connect(path, deadline).map_err(|e| unreachable(path.display(), timeout, e))?;
        let server = link.peer_uid().map_err(|e| {
            crate::socket::untrusted(path, format!("cannot read the server's credentials: {e}"))
        })?;
        if server != TRUSTED_UID {
            return Err(crate::socket::untrusted(
                path,
                format!("the server runs as uid {server}, not root"),
            ));
        }
        // No SASL exchange: the kernel has vouched for the server, and mfad
        // for this end (see mfad's bus/socket.rs).
        Ok(LoginLink {
            link,
            destination: None,
            timeout,
        })
    }

    /// `org.freedesktop.DBus.Peer.Ping`: one round trip, for scale.
    pub fn ping(&mut self) -> Result<(), ClientError> {
        self.call_on("org.freedesktop.DBus.Peer", "Ping", &())
    }

    /// One Login1 call (`member` with `args`), within the timeout.
    pub fn call<A, R>(&mut self, member: &str, args: &A) -> Result<R, ClientError>
    where
        A: serde::Serialize + Args,
        R: DeserializeOwned + Args,
    {
        self.call_on(LOGIN_INTERFACE, member, args)
    }

    fn call_on<A, R>(&mut self, interface: &str, member: &str, args: &A) -> Result<R, ClientError>
    where
        A: serde::Serialize + Args,
        R: DeserializeOwned + Args,
    {
        let deadline = Instant::now() + self.timeout;
        let (bytes, serial) = self
            .link
            .call(
                self.destination.as_deref(),
                OBJECT_PATH,
                interface,
                member,
                args,
            )
            .map_err(protocol)?;
        self.link
            .send(&bytes, deadline)
            .map_err(lost(self.timeout))?;
        decode(
            self.link
                .reply(serial, deadline)
                .map_err(lost(self.timeout))?,
        )
    }

    /// Abandon the login; best effort, no reply awaited (the handle
    /// expires on its own, and dies with the connection).
    fn cancel(&mut self, handle: &str) {
        let deadline = Instant::now() + self.timeout;
        if let Ok((bytes, _)) = self.link.call_with_flags(
            self.destination.as_deref(),
            OBJECT_PATH,
            LOGIN_INTERFACE,
            "Cancel",
            &(handle,),
            NO_REPLY_EXPECTED,
        ) {
            let _ = self.link.send(&bytes, deadline);
        }
    }
}

/// A [`Step`] returned alone, as mfad (zbus) sends it: a single struct
/// return goes out as its fields, `uus` (the introspection XML says
/// `(uus)`; see the note in `packaging/dbus`).
pub type StepFields = (StepKind, DenyReason, String);

pub fn step_from((kind, reason, text): StepFields) -> Step {
    Step { kind, reason, text }
}

/// A reply's arguments, or the error it carries.
fn decode<R: DeserializeOwned + Args>(reply: Message) -> Result<R, ClientError> {
    if let Some(name) = &reply.error_name {
        return Err(ClientError::from_error_reply(name, reply.error_message()));
    }
    reply.body().map_err(protocol)
}

fn protocol(e: impl std::fmt::Display) -> ClientError {
    ClientError::Protocol(e.to_string())
}

fn unreachable(address: impl std::fmt::Display, timeout: Duration, e: LinkError) -> ClientError {
    match e {
        LinkError::Timeout => ClientError::Timeout(timeout),
        other => ClientError::Unreachable {
            address: address.to_string(),
            source: Box::new(other),
        },
    }
}

/// Once connected: a broken connection or silence is mfad lost.
fn lost(timeout: Duration) -> impl Fn(LinkError) -> ClientError {
    move |e| match e {
        LinkError::Timeout => ClientError::Timeout(timeout),
        LinkError::Wire(w) => ClientError::Protocol(w.to_string()),
        other => ClientError::Lost(other.to_string()),
    }
}
