//! What the module does, as ordinary Rust over two small traits: the PAM
//! handle ([`PamHandle`], `pam.rs`) and mfad ([`Mfad`], `daemon.rs`).
//! `ffi.rs` implements the first over libpam, `transport.rs` the second over
//! D-Bus; the tests use scripted fakes of both.
//!
//! The module decides nothing: it reads the PAM items, lets mfad drive the
//! conversation and maps how it ended through [`crate::outcome`].

use crate::daemon::{LoginError, Mfad};
use crate::options::{FailMode, Options};
use crate::outcome::End;
use crate::pam::{Item, PamError, PamHandle, Priority, FAIL_DELAY_MICROS};
use mfa_dbus::{Answer, ClientError, Conversation, ConversationAborted, LoginRequest};
use std::os::raw::c_int;

/// The login itself, against any [`Mfad`].
pub fn authenticate_with<H: PamHandle>(
    pam: &mut H,
    options: &Options,
    silent: bool,
    mfad: &dyn Mfad,
) -> End {
    if !options.nodelay {
        pam.fail_delay(FAIL_DELAY_MICROS);
    }
    let request = match login_request(pam, options) {
        Ok(request) => request,
        Err(end) => return end,
    };
    if options.debug {
        pam.syslog(
            Priority::Debug,
            &format!(
                "asking mfad on {} for user {:?} (rhost {:?}, tty {:?})",
                mfad.describe(),
                request.user,
                request.rhost,
                request.tty
            ),
        );
    }
    let mut relay = Relay {
        conversation: &mut *pam,
        silent,
        started: false,
    };
    let result = mfad.login(&request, &mut relay);
    let started = relay.started;
    match result {
        Ok(outcome) => {
            if options.debug {
                pam.syslog(Priority::Debug, &format!("mfad decided {outcome:?}"));
            }
            End::from_outcome(outcome, options.skip)
        }
        Err(LoginError(e)) => {
            let end = End::from_client_error(&e, started);
            let priority = match end {
                End::ConversationFailed => Priority::Notice,
                _ => Priority::Error,
            };
            pam.syslog(priority, &describe(&e));
            end
        }
    }
}

/// `pam_sm_setcred`: there are no credentials to set.
pub fn setcred<H: PamHandle>(_pam: &mut H, _args: &[&[u8]], _silent: bool) -> c_int {
    End::SetCred.pam_code(FailMode::Closed)
}

/// `pam_sm_acct_mgmt`, `pam_sm_open_session`, `pam_sm_close_session`,
/// `pam_sm_chauthtok`: the module only authenticates.
pub fn not_auth_stack<H: PamHandle>(pam: &mut H, _args: &[&[u8]], _silent: bool) -> c_int {
    pam.syslog(
        Priority::Error,
        "pam_mfa is an auth module only; remove it from this stack (refusing)",
    );
    End::NotAuthStack.pam_code(FailMode::Closed)
}

/// Build the request from PAM items, failing closed on anything unreadable.
fn login_request<H: PamHandle>(pam: &mut H, options: &Options) -> Result<LoginRequest, End> {
    let user = match pam.user() {
        Ok(user) if !user.is_empty() => user,
        Ok(_) => {
            pam.syslog(Priority::Error, "pam_get_user returned an empty name");
            return Err(End::NoUser);
        }
        Err(e) => {
            pam.syslog(Priority::Error, &format!("cannot get the user name: {e}"));
            return Err(End::NoUser);
        }
    };
    let service = item(pam, Item::Service)?;
    if service.is_empty() {
        // mfad's policy depends on the service; never guess it.
        pam.syslog(Priority::Error, "PAM_SERVICE is not set");
        return Err(End::BadItem);
    }
    Ok(LoginRequest {
        user,
        service,
        rhost: item(pam, Item::Rhost)?,
        ruser: item(pam, Item::Ruser)?,
        tty: item(pam, Item::Tty)?,
        auth_info: logged(pam, SSH_AUTH_INFO, pam.env(SSH_AUTH_INFO))?,
        max_tries: options.max_tries.unwrap_or(0),
    })
}

/// What sshd's `ExposeAuthInfo` puts in the PAM environment.
const SSH_AUTH_INFO: &str = "SSH_AUTH_INFO_0";

fn item<H: PamHandle>(pam: &H, item: Item) -> Result<String, End> {
    logged(pam, item.name(), pam.item(item))
}

/// An unset value is empty; an unreadable one is logged and fails closed.
fn logged<H: PamHandle>(
    pam: &H,
    what: &str,
    value: Result<Option<String>, PamError>,
) -> Result<String, End> {
    value.map(Option::unwrap_or_default).map_err(|e| {
        pam.syslog(Priority::Error, &format!("cannot read {what}: {e}"));
        End::BadItem
    })
}

/// A failed login for the log: never a code, an answer or a login handle.
fn describe(error: &ClientError) -> String {
    match error {
        // mfad's message may name the handle.
        ClientError::Daemon(mfa_dbus::MfaError::UnknownHandle(_)) => {
            "mfad no longer knows this login (expired, or mfad restarted)".to_string()
        }
        other => other.to_string(),
    }
}

/// The application's conversation as mfad's steps see it: messages are
/// dropped under `PAM_SILENT` (prompts are not: the code is needed), and it
/// records whether mfad got as far as showing the user anything.
struct Relay<'a> {
    conversation: &'a mut dyn Conversation,
    silent: bool,
    started: bool,
}

impl Conversation for Relay<'_> {
    fn info(&mut self, text: &str) -> Result<(), ConversationAborted> {
        self.started = true;
        if self.silent {
            return Ok(());
        }
        self.conversation.info(text)
    }

    fn error(&mut self, text: &str) -> Result<(), ConversationAborted> {
        self.started = true;
        if self.silent {
            return Ok(());
        }
        self.conversation.error(text)
    }

    fn prompt(&mut self, text: &str, echo: bool) -> Result<Answer, ConversationAborted> {
        self.started = true;
        self.conversation.prompt(text, echo)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::authenticate;
    use crate::pam::printable;
    use crate::sys::{
        PAM_AUTHINFO_UNAVAIL, PAM_AUTH_ERR, PAM_CONV_ERR, PAM_IGNORE, PAM_MAXTRIES,
        PAM_SERVICE_ERR, PAM_SUCCESS, PAM_USER_UNKNOWN,
    };
    use mfa_dbus::Outcome;
    use mfa_dbus::{DenyReason, Step, StepKind};
    use std::cell::RefCell;
    use std::collections::{HashMap, VecDeque};
    use std::time::Duration;

    /// A PAM item or environment value as the fake handle returns it.
    type Setting = Result<Option<String>, PamError>;

    /// What the scripted conversation expects next, and what it does.
    #[derive(Debug, Clone, PartialEq)]
    enum Expect {
        Info(&'static str),
        Error(&'static str),
        Prompt {
            text: &'static str,
            echo: bool,
            answer: Option<&'static str>,
        },
    }

    /// A PAM handle whose conversation must see exactly the scripted
    /// exchanges, in order; dropping it with any left over fails the test.
    #[derive(Default)]
    struct FakePam {
        user: Option<Result<String, PamError>>,
        items: HashMap<Item, Setting>,
        env: HashMap<&'static str, Setting>,
        expect: VecDeque<Expect>,
        logs: RefCell<Vec<(Priority, String)>>,
        fail_delay: Option<u32>,
    }

    impl FakePam {
        fn with_user(user: &str) -> Self {
            let mut pam = FakePam::default();
            pam.user = Some(Ok(user.to_string()));
            pam
        }

        /// sshd-like handle for `alice`.
        fn sshd() -> Self {
            let mut pam = FakePam::with_user("alice");
            pam.items.insert(Item::Service, Ok(Some("sshd".into())));
            pam.items
                .insert(Item::Rhost, Ok(Some("198.51.100.7".into())));
            pam.items.insert(Item::Tty, Ok(Some("ssh".into())));
            pam.env.insert(
                SSH_AUTH_INFO,
                Ok(Some("publickey ssh-ed25519 AAAAC3Nz".into())),
            );
            pam
        }

        fn expect(mut self, exchanges: impl IntoIterator<Item = Expect>) -> Self {
            self.expect.extend(exchanges);
            self
        }

        fn next(&mut self, got: Expect) -> Expect {
            let want = self.expect.pop_front();
            assert_eq!(
                want.as_ref().map(strip_answer),
                Some(strip_answer(&got)),
                "unexpected exchange"
            );
            want.unwrap_or(got)
        }

        fn log_text(&self) -> String {
            self.logs
                .borrow()
                .iter()
                .map(|(_, l)| l.as_str())
                .collect::<Vec<_>>()
                .join("\n")
        }
    }

    fn strip_answer(e: &Expect) -> Expect {
        match e {
            Expect::Prompt { text, echo, .. } => Expect::Prompt {
                text,
                echo: *echo,
                answer: None,
            },
            other => other.clone(),
        }
    }

    impl Drop for FakePam {
        fn drop(&mut self) {
            if !std::thread::panicking() {
                assert!(
                    self.expect.is_empty(),
                    "expected exchanges never happened: {:?}",
                    self.expect
                );
            }
        }
    }

    impl Conversation for FakePam {
        fn info(&mut self, text: &str) -> Result<(), ConversationAborted> {
            self.next(Expect::Info(leak(text)));
            Ok(())
        }
        fn error(&mut self, text: &str) -> Result<(), ConversationAborted> {
            self.next(Expect::Error(leak(text)));
            Ok(())
        }
        fn prompt(&mut self, text: &str, echo: bool) -> Result<Answer, ConversationAborted> {
            match self.next(Expect::Prompt {
                text: leak(text),
                echo,
                answer: None,
            }) {
                Expect::Prompt {
                    answer: Some(a), ..
                } => Ok(Answer::new(a.to_string())),
                _ => Err(ConversationAborted),
            }
        }
    }

    fn leak(text: &str) -> &'static str {
        Box::leak(text.to_string().into_boxed_str())
    }

    impl PamHandle for FakePam {
        fn user(&mut self) -> Result<String, PamError> {
            self.user
                .clone()
                .unwrap_or(Err(PamError::Code(crate::sys::PAM_SYSTEM_ERR)))
        }
        fn item(&self, item: Item) -> Result<Option<String>, PamError> {
            self.items.get(&item).cloned().unwrap_or(Ok(None))
        }
        fn env(&self, name: &str) -> Result<Option<String>, PamError> {
            self.env.get(name).cloned().unwrap_or(Ok(None))
        }
        fn syslog(&self, priority: Priority, message: &str) {
            self.logs.borrow_mut().push((priority, message.to_string()));
        }
        fn fail_delay(&mut self, micros: u32) {
            self.fail_delay = Some(micros);
        }
    }

    /// A fake mfad playing a fixed list of steps, the way the real client
    /// loop relays them, or failing at a given point.
    struct FakeMfad {
        steps: Vec<Step>,
        /// Fail with this instead of sending the step at this index.
        fail_at: Option<(usize, fn() -> LoginError)>,
        seen: RefCell<Option<LoginRequest>>,
        answers: RefCell<Vec<String>>,
    }

    impl FakeMfad {
        fn new(steps: Vec<Step>) -> Self {
            FakeMfad {
                steps,
                fail_at: None,
                seen: RefCell::default(),
                answers: RefCell::default(),
            }
        }
        fn failing_at(mut self, index: usize, error: fn() -> LoginError) -> Self {
            self.fail_at = Some((index, error));
            self
        }
    }

    impl Mfad for FakeMfad {
        fn describe(&self) -> String {
            "a fake".into()
        }
        fn login(
            &self,
            request: &LoginRequest,
            conversation: &mut dyn Conversation,
        ) -> Result<Outcome, LoginError> {
            *self.seen.borrow_mut() = Some(request.clone());
            for (index, step) in self.steps.iter().enumerate() {
                if let Some((at, error)) = self.fail_at {
                    if at == index {
                        return Err(error());
                    }
                }
                match step.kind {
                    StepKind::Info | StepKind::Wait => conversation
                        .info(&step.text)
                        .map_err(|_| LoginError::from(ClientError::ConversationAborted))?,
                    StepKind::PromptEchoOff | StepKind::PromptEchoOn => {
                        let answer = conversation
                            .prompt(&step.text, step.kind == StepKind::PromptEchoOn)
                            .map_err(|_| LoginError::from(ClientError::ConversationAborted))?;
                        self.answers.borrow_mut().push(answer.expose().to_string());
                    }
                    StepKind::Allow => return Ok(Outcome::Allowed),
                    StepKind::Skip => return Ok(Outcome::Skipped),
                    StepKind::Deny => {
                        let _ = conversation.error(&step.text);
                        return Ok(Outcome::Denied(step.reason));
                    }
                }
            }
            match self.fail_at {
                Some((_, error)) => Err(error()),
                None => panic!("script ended without a decision"),
            }
        }
    }

    const CODE_PROMPT: &str = "Verification code: ";

    fn prompt(answer: Option<&'static str>) -> Expect {
        Expect::Prompt {
            text: CODE_PROMPT,
            echo: false,
            answer,
        }
    }

    fn timeout() -> LoginError {
        LoginError::from(ClientError::Timeout(Duration::from_secs(10)))
    }

    fn run(pam: &mut FakePam, options: &Options, silent: bool, mfad: &FakeMfad) -> c_int {
        authenticate_with(pam, options, silent, mfad).pam_code(options.failmode)
    }

    #[test]
    fn request_is_built_from_pam_items_and_pam_env() {
        let mut pam = FakePam::sshd().expect([prompt(Some("123456"))]);
        let mfad = FakeMfad::new(vec![Step::prompt(CODE_PROMPT, false), Step::allow()]);
        assert_eq!(
            run(&mut pam, &Options::default(), false, &mfad),
            PAM_SUCCESS
        );
        assert_eq!(
            mfad.seen.borrow().clone(),
            Some(LoginRequest {
                user: "alice".into(),
                service: "sshd".into(),
                rhost: "198.51.100.7".into(),
                ruser: String::new(),
                tty: "ssh".into(),
                auth_info: "publickey ssh-ed25519 AAAAC3Nz".into(),
                max_tries: 0,
            })
        );
        assert_eq!(mfad.answers.borrow().as_slice(), ["123456"]);
        assert_eq!(
            pam.fail_delay,
            Some(FAIL_DELAY_MICROS),
            "a failure delay is asked for"
        );
    }

    #[test]
    fn module_options_reach_the_request_and_the_delay() {
        let mut pam = FakePam::sshd().expect([prompt(Some("123456"))]);
        let mfad = FakeMfad::new(vec![Step::prompt(CODE_PROMPT, false), Step::allow()]);
        let options = Options {
            max_tries: Some(1),
            nodelay: true,
            ..Options::default()
        };
        assert_eq!(run(&mut pam, &options, false, &mfad), PAM_SUCCESS);
        assert_eq!(mfad.seen.borrow().as_ref().map(|r| r.max_tries), Some(1));
        assert_eq!(pam.fail_delay, None, "nodelay asks for no delay");
    }

    #[test]
    fn wrong_then_right_code() {
        let mut pam = FakePam::sshd().expect([
            prompt(Some("000000")),
            Expect::Prompt {
                text: "Wrong code. Verification code: ",
                echo: false,
                answer: Some("123456"),
            },
        ]);
        let mfad = FakeMfad::new(vec![
            Step::prompt(CODE_PROMPT, false),
            Step::prompt("Wrong code. Verification code: ", false),
            Step::allow(),
        ]);
        assert_eq!(
            run(&mut pam, &Options::default(), false, &mfad),
            PAM_SUCCESS
        );
    }

    #[test]
    fn too_many_wrong_codes_is_maxtries_and_the_user_sees_why() {
        let mut pam = FakePam::sshd().expect([
            prompt(Some("000000")),
            Expect::Error("Too many wrong codes."),
        ]);
        let mfad = FakeMfad::new(vec![
            Step::prompt(CODE_PROMPT, false),
            Step::deny(DenyReason::MaxTries, "Too many wrong codes."),
        ]);
        assert_eq!(
            run(&mut pam, &Options::default(), false, &mfad),
            PAM_MAXTRIES
        );
    }

    #[test]
    fn not_enrolled_is_auth_err() {
        let mut pam = FakePam::sshd().expect([Expect::Error(
            "No second factor is set up for this account.",
        )]);
        let mfad = FakeMfad::new(vec![Step::deny(
            DenyReason::NotEnrolled,
            "No second factor is set up for this account.",
        )]);
        assert_eq!(
            run(&mut pam, &Options::default(), false, &mfad),
            PAM_AUTH_ERR
        );
    }

    #[test]
    fn silent_drops_messages_but_still_prompts() {
        let mut pam = FakePam::sshd().expect([prompt(Some("000000"))]);
        let mfad = FakeMfad::new(vec![
            Step::info("Touch nothing."),
            Step::prompt(CODE_PROMPT, false),
            Step::deny(DenyReason::WrongCode, "Wrong code."),
        ]);
        assert_eq!(
            run(&mut pam, &Options::default(), true, &mfad),
            PAM_AUTH_ERR
        );
    }

    #[test]
    fn aborted_conversation_is_conv_err() {
        let mut pam = FakePam::sshd().expect([prompt(None)]);
        let mfad = FakeMfad::new(vec![Step::prompt(CODE_PROMPT, false)]);
        let open = Options {
            failmode: FailMode::Open,
            ..Options::default()
        };
        assert_eq!(run(&mut pam, &open, false, &mfad), PAM_CONV_ERR);
    }

    #[test]
    fn unreachable_before_any_step_fails_closed_by_default() {
        let mut pam = FakePam::sshd();
        let mfad = FakeMfad::new(vec![]).failing_at(0, timeout);
        assert_eq!(
            run(&mut pam, &Options::default(), false, &mfad),
            PAM_AUTHINFO_UNAVAIL
        );
        // The user is told nothing about internals; the log says what happened.
        assert!(
            pam.log_text().contains("did not answer"),
            "{}",
            pam.log_text()
        );
    }

    #[test]
    fn unreachable_before_any_step_is_ignored_only_with_failmode_open() {
        let mut pam = FakePam::sshd();
        let mfad = FakeMfad::new(vec![]).failing_at(0, timeout);
        let open = Options {
            failmode: FailMode::Open,
            ..Options::default()
        };
        assert_eq!(run(&mut pam, &open, false, &mfad), PAM_IGNORE);
    }

    #[test]
    fn losing_mfad_after_a_prompt_is_never_ignored() {
        let mut pam = FakePam::sshd().expect([prompt(Some("123456"))]);
        let mfad = FakeMfad::new(vec![Step::prompt(CODE_PROMPT, false)]).failing_at(1, timeout);
        let open = Options {
            failmode: FailMode::Open,
            ..Options::default()
        };
        assert_eq!(run(&mut pam, &open, false, &mfad), PAM_AUTHINFO_UNAVAIL);
    }

    #[test]
    fn losing_mfad_after_an_info_step_is_never_ignored() {
        let mut pam = FakePam::sshd();
        let mfad = FakeMfad::new(vec![Step::info("Hello.")]).failing_at(1, timeout);
        let open = Options {
            failmode: FailMode::Open,
            ..Options::default()
        };
        // Silent: the info is not shown, but mfad had started the login.
        assert_eq!(run(&mut pam, &open, true, &mfad), PAM_AUTHINFO_UNAVAIL);
    }

    #[test]
    fn daemon_refusal_is_auth_err_even_with_failmode_open() {
        let mut pam = FakePam::sshd();
        let mfad = FakeMfad::new(vec![]).failing_at(0, || {
            LoginError::from(ClientError::Daemon(mfa_dbus::MfaError::AccessDenied(
                "Login1 is for root".into(),
            )))
        });
        let open = Options {
            failmode: FailMode::Open,
            ..Options::default()
        };
        assert_eq!(run(&mut pam, &open, false, &mfad), PAM_AUTH_ERR);
        assert!(
            pam.log_text().contains("Login1 is for root"),
            "{}",
            pam.log_text()
        );
    }

    #[test]
    fn unknown_handle_is_logged_without_mfads_message() {
        let mut pam = FakePam::sshd().expect([prompt(Some("123456"))]);
        let mfad = FakeMfad::new(vec![Step::prompt(CODE_PROMPT, false)]).failing_at(1, || {
            LoginError::from(ClientError::Daemon(mfa_dbus::MfaError::UnknownHandle(
                "handle 8f3a1c".into(),
            )))
        });
        assert_eq!(
            run(&mut pam, &Options::default(), false, &mfad),
            PAM_AUTH_ERR
        );
        assert!(!pam.log_text().contains("8f3a1c"), "{}", pam.log_text());
    }

    #[test]
    fn no_user_never_reaches_mfad() {
        for user in [
            Err(PamError::Code(crate::sys::PAM_CONV_ERR)),
            Ok(String::new()),
            Err(PamError::NotUtf8),
        ] {
            let mut pam = FakePam::sshd();
            pam.user = Some(user);
            let mfad = FakeMfad::new(vec![]);
            assert_eq!(
                run(&mut pam, &Options::default(), false, &mfad),
                PAM_USER_UNKNOWN
            );
            assert_eq!(*mfad.seen.borrow(), None);
        }
    }

    #[test]
    fn unreadable_items_never_reach_mfad() {
        let broken: [(Option<Item>, Setting); 4] = [
            (Some(Item::Service), Ok(None)),
            (Some(Item::Rhost), Err(PamError::NotUtf8)),
            (
                Some(Item::Tty),
                Err(PamError::Code(crate::sys::PAM_SYSTEM_ERR)),
            ),
            (None, Err(PamError::NotUtf8)),
        ];
        for (item, value) in broken {
            let mut pam = FakePam::sshd();
            match item {
                Some(item) => pam.items.insert(item, value),
                None => pam.env.insert(SSH_AUTH_INFO, value),
            };
            let mfad = FakeMfad::new(vec![]);
            let open = Options {
                failmode: FailMode::Open,
                ..Options::default()
            };
            assert_eq!(run(&mut pam, &open, false, &mfad), PAM_AUTH_ERR, "{item:?}");
            assert_eq!(*mfad.seen.borrow(), None);
        }
    }

    #[test]
    fn unset_optional_items_are_empty() {
        let mut pam = FakePam::with_user("bob");
        pam.items.insert(Item::Service, Ok(Some("sudo".into())));
        let mfad = FakeMfad::new(vec![Step::allow()]);
        assert_eq!(
            run(&mut pam, &Options::default(), false, &mfad),
            PAM_SUCCESS
        );
        let seen = mfad.seen.borrow().clone().expect("mfad was asked");
        assert_eq!(
            seen,
            LoginRequest {
                user: "bob".into(),
                service: "sudo".into(),
                ..LoginRequest::default()
            }
        );
    }

    #[test]
    fn answers_never_reach_the_log_even_with_debug() {
        let mut pam =
            FakePam::sshd().expect([prompt(Some("918273")), Expect::Error("Wrong code.")]);
        let mfad = FakeMfad::new(vec![
            Step::prompt(CODE_PROMPT, false),
            Step::deny(DenyReason::WrongCode, "Wrong code."),
        ]);
        let debug = Options {
            debug: true,
            ..Options::default()
        };
        assert_eq!(run(&mut pam, &debug, false, &mfad), PAM_AUTH_ERR);
        let logs = pam.log_text();
        assert!(logs.contains("alice"), "debug logging is on: {logs}");
        assert!(!logs.contains("918273"), "{logs}");
    }

    #[test]
    fn debug_lines_only_with_debug() {
        let mut pam = FakePam::sshd();
        let mfad = FakeMfad::new(vec![Step::allow()]);
        assert_eq!(
            run(&mut pam, &Options::default(), false, &mfad),
            PAM_SUCCESS
        );
        assert!(pam.logs.borrow().is_empty(), "{}", pam.log_text());
    }

    #[test]
    fn bad_options_refuse_before_reading_anything() {
        let mut pam = FakePam::default();
        let args: [&[u8]; 2] = [b"debug", b"nullok"];
        assert_eq!(authenticate(&mut pam, &args, false), PAM_SERVICE_ERR);
        let logs = pam.logs.borrow();
        assert_eq!(logs.len(), 1);
        assert_eq!(logs[0].0, Priority::Error);
        assert!(
            logs[0].1.contains("unknown module option \"nullok\""),
            "{}",
            logs[0].1
        );
    }

    #[test]
    fn missing_bus_socket_fails_closed_or_is_ignored_with_failmode_open() {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let bus = format!("bus=unix:path={}/no-such-bus", dir.path().display());
        let socket = format!("socket={}/no-such.sock", dir.path().display());
        for (failmode, code) in [
            ("failmode=closed", PAM_AUTHINFO_UNAVAIL),
            ("failmode=open", PAM_IGNORE),
        ] {
            for transport in [b"transport=bus".as_slice(), b"transport=socket"] {
                let mut pam = FakePam::sshd();
                let args = [
                    bus.as_bytes(),
                    socket.as_bytes(),
                    transport,
                    failmode.as_bytes(),
                    b"timeout=2",
                ];
                assert_eq!(authenticate(&mut pam, &args, false), code, "{failmode}");
                assert!(
                    pam.log_text().contains("cannot reach mfad"),
                    "{}",
                    pam.log_text()
                );
            }
            let mut pam = FakePam::sshd();
            let args = [bus.as_bytes(), failmode.as_bytes(), b"timeout=2"];
            assert_eq!(authenticate(&mut pam, &args, false), code, "{failmode}");
            assert!(
                pam.log_text().contains("cannot reach mfad"),
                "{}",
                pam.log_text()
            );
        }
    }

    #[test]
    fn setcred_succeeds_and_other_stacks_are_refused() {
        let mut pam = FakePam::default();
        assert_eq!(setcred(&mut pam, &[], false), PAM_SUCCESS);
        assert!(pam.logs.borrow().is_empty());
        assert_eq!(
            not_auth_stack(&mut pam, &[b"debug"], false),
            PAM_SERVICE_ERR
        );
        assert!(pam.log_text().contains("auth module only"));
    }

    #[test]
    fn printable_escapes_control_characters() {
        assert_eq!(printable("alice\nfake line\0"), "alice\\nfake line\\u{0}");
        assert_eq!(printable("jos\u{e9}"), "jos\u{e9}");
    }
}
