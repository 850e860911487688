//! What the module logs and what its values show in `Debug` never hold the
//! code the user typed or a login handle, whatever way the login ends, with
//! `debug` on (every step logged).

use mfa_dbus::{
    Answer, ClientError, Conversation, ConversationAborted, DenyReason, LoginRequest, MfaError,
    Outcome,
};
use pam_mfa::daemon::{LoginError, Mfad};
use pam_mfa::options::Options;
use pam_mfa::pam::{Item, PamError, PamHandle, Priority};
use pam_mfa::relay::authenticate_with;
use std::cell::RefCell;
use std::time::Duration;

const CODE: &str = "98765432";
const HANDLE: &str = "feedfacecafebeefdeadc0dedeadbeef";

/// A PAM application whose user types [`CODE`] at every prompt; it keeps
/// every line the module logs.
struct Typist {
    logs: RefCell<Vec<String>>,
}

impl Conversation for Typist {
    fn info(&mut self, _: &str) -> Result<(), ConversationAborted> {
        Ok(())
    }
    fn error(&mut self, _: &str) -> Result<(), ConversationAborted> {
        Ok(())
    }
    fn prompt(&mut self, _: &str, _: bool) -> Result<Answer, ConversationAborted> {
        Ok(Answer::new(CODE.into()))
    }
}

impl PamHandle for Typist {
    fn user(&mut self) -> Result<String, PamError> {
        Ok("alice".into())
    }
    fn item(&self, item: Item) -> Result<Option<String>, PamError> {
        Ok((item == Item::Service).then(|| "sshd".to_string()))
    }
    fn env(&self, _: &str) -> Result<Option<String>, PamError> {
        Ok(None)
    }
    fn syslog(&self, _: Priority, message: &str) {
        self.logs.borrow_mut().push(message.to_string());
    }
    fn fail_delay(&mut self, _: u32) {}
}

/// An mfad that asks for a code, then ends the login as scripted. It
/// checks it got the code, and keeps every value it saw for `Debug`.
struct Script {
    end: fn() -> Result<Outcome, LoginError>,
    seen: RefCell<Vec<String>>,
}

impl Mfad for Script {
    fn describe(&self) -> String {
        "a script".into()
    }

    fn login(
        &self,
        request: &LoginRequest,
        conversation: &mut dyn Conversation,
    ) -> Result<Outcome, LoginError> {
        let answer = conversation
            .prompt("Verification code: ", false)
            .expect("an answer");
        assert_eq!(answer.expose(), CODE);
        let end = (self.end)();
        self.seen.borrow_mut().push(format!(
            "{request:?} {request:#?} {answer:?} {answer:#?} {end:?} {end:#?}"
        ));
        end
    }
}

fn daemon_error(error: MfaError) -> Result<Outcome, LoginError> {
    Err(ClientError::Daemon(error).into())
}

#[test]
fn no_ending_logs_or_shows_the_code_or_the_handle() {
    let endings: [fn() -> Result<Outcome, LoginError>; 7] = [
        || Ok(Outcome::Allowed),
        || Ok(Outcome::Denied(DenyReason::MaxTries)),
        || Err(ClientError::Timeout(Duration::from_secs(1)).into()),
        || Err(ClientError::ConversationAborted.into()),
        || daemon_error(MfaError::UnknownHandle(format!("no login {HANDLE}"))),
        || daemon_error(MfaError::Internal("internal error; see mfad's log".into())),
        || Err(ClientError::Lost("the connection was closed".into()).into()),
    ];
    let options = Options {
        debug: true,
        ..Options::default()
    };
    for end in endings {
        let mut pam = Typist {
            logs: RefCell::new(Vec::new()),
        };
        let mfad = Script {
            end,
            seen: RefCell::new(Vec::new()),
        };
        let ended = authenticate_with(&mut pam, &options, false, &mfad);
        let logs = pam.logs.borrow().join("\n");
        let shown = format!("{} {ended:?} {options:?}", mfad.seen.borrow().join("\n"));
        assert!(!logs.is_empty(), "debug logs nothing");
        assert!(!logs.contains(CODE), "the code logged:\n{logs}");
        assert!(!shown.contains(CODE), "the code shown:\n{shown}");
        // Not even when mfad's message names the handle.
        assert!(!logs.contains(HANDLE), "handle logged:\n{logs}");
    }
}
