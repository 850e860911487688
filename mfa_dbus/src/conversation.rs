//! What a login looks like from the client's side, whatever carries it: the
//! user's [`Conversation`], how mfad's steps are relayed to it, how a login
//! ends ([`Outcome`]) or fails ([`ClientError`]). The synchronous client
//! the PAM module uses ([`crate::wire`]) and the zbus client mfactl uses
//! ([`crate::client`]) share all of it.

use crate::error::MfaError;
use crate::names::BUS_NAME;
use crate::types::{DenyReason, Step, StepKind};
use std::fmt;
use std::time::Duration;

/// A daemon that keeps sending steps is broken; stop relaying after this many.
pub const MAX_STEPS: usize = 256;
/// Polls of [`StepKind::Wait`] steps per login: 20 minutes of holds, far
/// past any login time limit mfad allows.
pub const MAX_WAITS: usize = 2400;

/// The uid mfad must run as.
pub(crate) const TRUSTED_UID: u32 = 0;

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
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// The connection broke mid-login, or the bus said mfad is not there
    /// (no owner of the name, no reply, being started and failing).
    #[error("lost mfad: {0}")]
    Lost(String),
    #[error("mfad did not answer within {0:?}")]
    Timeout(Duration),
    #[error("the conversation with the user was aborted")]
    ConversationAborted,
    #[error("mfad refused the call: {0}")]
    Daemon(MfaError),
    /// The bus refused a call (its policy, a malformed address, …).
    #[error("the bus refused the call: {name}: {message}")]
    Refused { name: String, message: String },
    /// A reply that is not what the contract says (a wrong signature, a
    /// malformed message, an error mfad does not send).
    #[error("mfad's reply does not follow the D-Bus contract: {0}")]
    Protocol(String),
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

impl ClientError {
    /// An error reply named `name`: one of mfad's, the bus saying mfad is
    /// not there, or the bus refusing the call.
    pub fn from_error_reply(name: &str, message: String) -> ClientError {
        if let Some(error) = MfaError::from_wire(name, message.clone()) {
            return ClientError::Daemon(error);
        }
        if bus_says_mfad_is_gone(name) {
            return ClientError::Lost(format!("{name}: {message}"));
        }
        ClientError::Refused {
            name: name.to_string(),
            message,
        }
    }
}

/// Error names the bus daemon uses when the service is not there or does
/// not answer: for a login, the same as mfad being gone.
fn bus_says_mfad_is_gone(name: &str) -> bool {
    matches!(
        name,
        "org.freedesktop.DBus.Error.ServiceUnknown"
            | "org.freedesktop.DBus.Error.NameHasNoOwner"
            | "org.freedesktop.DBus.Error.NoReply"
            | "org.freedesktop.DBus.Error.Timeout"
            | "org.freedesktop.DBus.Error.TimedOut"
            | "org.freedesktop.DBus.Error.Disconnected"
            | "org.freedesktop.DBus.Error.NoServer"
    ) || name.starts_with("org.freedesktop.DBus.Error.Spawn.")
}

/// Counts the steps of one login against [`MAX_STEPS`] and [`MAX_WAITS`].
#[derive(Debug, Default)]
pub struct StepBudget {
    steps: usize,
    waits: usize,
}

impl StepBudget {
    /// Count `step`; an error once mfad has sent too many.
    pub fn spend(&mut self, step: &Step) -> Result<(), ClientError> {
        if step.kind == StepKind::Wait {
            self.waits += 1;
        } else {
            self.steps += 1;
        }
        if self.steps > MAX_STEPS || self.waits > MAX_WAITS {
            return Err(ClientError::TooManySteps);
        }
        Ok(())
    }
}

/// What the user's side made of one step.
pub enum Relayed {
    /// mfad decided.
    Done(Outcome),
    /// Send this back with `Login1.Answer`.
    Answer(Answer),
}

/// Show one step to the user and collect what goes back to mfad.
pub fn relay(
    step: &Step,
    conversation: &mut dyn Conversation,
) -> Result<Relayed, ConversationAborted> {
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

/// When a caller that waits `call_timeout` for a reply stops waiting, on
/// [`crate::monotonic_ms`]'s clock: sent with each answer.
pub fn answer_deadline(call_timeout: Duration) -> u64 {
    crate::monotonic_ms().saturating_add(call_timeout.as_millis() as u64)
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
    fn the_budget_ends_a_login_that_never_ends() {
        let mut budget = StepBudget::default();
        for _ in 0..MAX_STEPS {
            budget.spend(&Step::info("x")).expect("within the budget");
        }
        for _ in 0..MAX_WAITS {
            budget.spend(&Step::wait("")).expect("waits count apart");
        }
        assert!(matches!(
            budget.spend(&Step::info("x")),
            Err(ClientError::TooManySteps)
        ));
        assert!(matches!(
            budget.spend(&Step::wait("")),
            Err(ClientError::TooManySteps)
        ));
    }

    #[test]
    fn answer_debug_is_redacted() {
        assert_eq!(
            format!("{:?}", Answer::new("123456".into())),
            "Answer(<redacted>)"
        );
    }
}
