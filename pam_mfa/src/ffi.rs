//! Every `unsafe` line of the module: calls into libpam (`sys.rs`), the
//! entry trampoline and the safe [`PamHandle`] over a live `pam_handle_t`.
//!
//! Memory rules (Linux-PAM): items and PAM environment values belong to
//! libpam and are copied at once; the `pam_response` array and each answer
//! in it are malloc'd by the application, so the module zeroes each answer
//! and releases both with `free(3)` (also when the conversation failed but
//! left a response behind, as libpam's own `pam_prompt` does).

use crate::options::FailMode;
use crate::outcome::End;
use crate::pam::{printable, Item, PamError, PamHandle, Priority};
use crate::sys;
use mfa_dbus::{Answer, Conversation, ConversationAborted};
use std::cell::Cell;
use std::ffi::{c_void, CStr, CString};
use std::os::raw::{c_char, c_int};
use std::panic::{self, AssertUnwindSafe};
use std::ptr;
use std::sync::Once;

/// `pam_handle_t *` exactly as libpam passes it to a `pam_sm_*` function.
/// Rust code cannot make one (the field is private), so [`entry`] may trust
/// it for the duration of the call.
#[repr(transparent)]
pub struct RawPamHandle(*mut sys::pam_handle_t);

/// `const char **argv` exactly as libpam passes it to a `pam_sm_*` function.
#[repr(transparent)]
pub struct RawArgv(*const *const c_char);

/// Which PAM service function is running, for the log prefix.
#[derive(Clone, Copy, Debug)]
pub enum Hook {
    Auth,
    Account,
    Session,
    Password,
}

impl Hook {
    fn name(self) -> &'static str {
        match self {
            Hook::Auth => "auth",
            Hook::Account => "account",
            Hook::Session => "session",
            Hook::Password => "password",
        }
    }
}

/// The body of a `pam_sm_*` function: the handle, the module arguments, and
/// whether `PAM_SILENT` was passed.
pub type Body = fn(&mut Pam, &[&[u8]], bool) -> c_int;

/// Run `body` for one `pam_sm_*` call. A panic never crosses into the
/// application: it is logged and becomes `PAM_SYSTEM_ERR`.
pub fn entry(
    hook: Hook,
    pamh: RawPamHandle,
    flags: c_int,
    argc: c_int,
    argv: RawArgv,
    body: Body,
) -> c_int {
    install_panic_hook();
    IN_MODULE.with(|flag| flag.set(true));
    let code = panic::catch_unwind(AssertUnwindSafe(|| {
        if pamh.0.is_null() {
            return End::SystemError.pam_code(FailMode::Closed);
        }
        let mut pam = Pam { pamh: pamh.0, hook };
        // SAFETY: libpam passes `argc` valid C strings in `argv`, alive for
        // the whole call.
        let args = match unsafe { arguments(argc, argv.0) } {
            Some(args) => args,
            None => {
                pam.syslog(Priority::Error, "malformed module argument vector");
                return End::BadOptions.pam_code(FailMode::Closed);
            }
        };
        body(&mut pam, &args, flags & sys::PAM_SILENT != 0)
    }))
    .unwrap_or_else(|_| End::Panicked.pam_code(FailMode::Closed));
    IN_MODULE.with(|flag| flag.set(false));
    code
}

/// # Safety
/// `argv` must hold `argc` pointers to NUL-terminated strings that outlive
/// the returned slices.
unsafe fn arguments<'a>(argc: c_int, argv: *const *const c_char) -> Option<Vec<&'a [u8]>> {
    let argc = usize::try_from(argc).ok()?;
    if argc == 0 {
        return Some(Vec::new());
    }
    if argv.is_null() {
        return None;
    }
    (0..argc)
        .map(|i| {
            // SAFETY: `i < argc`, per the caller's contract.
            let arg = unsafe { *argv.add(i) };
            // SAFETY: non-null entries are NUL-terminated, per the contract.
            (!arg.is_null()).then(|| unsafe { CStr::from_ptr(arg) }.to_bytes())
        })
        .collect()
}

thread_local! {
    /// Set while a `pam_sm_*` call runs on this thread.
    static IN_MODULE: Cell<bool> = const { Cell::new(false) };
}

/// The default panic hook writes to stderr, which in sudo or su is the
/// user's terminal. Inside a `pam_sm_*` call, panics go to authpriv instead;
/// elsewhere (a Rust program linking the rlib) the previous hook runs.
fn install_panic_hook() {
    static HOOK: Once = Once::new();
    HOOK.call_once(|| {
        let previous = panic::take_hook();
        panic::set_hook(Box::new(move |info| {
            if IN_MODULE.with(Cell::get) {
                syslog_line(libc::LOG_ERR, &format!("pam_mfa: internal error: {info}"));
            } else {
                previous(info);
            }
        }));
    });
}

/// One line to authpriv. The ident stays the application's (sshd, sudo):
/// `openlog` is process-wide state that a module must not change, so the
/// module names itself in the text, as libpam's `pam_syslog` does.
fn syslog_line(level: c_int, line: &str) {
    let Ok(line) = CString::new(printable(line)) else {
        return;
    };
    // SAFETY: a constant "%s" format with one valid C string argument.
    unsafe { libc::syslog(libc::LOG_AUTHPRIV | level, c"%s".as_ptr(), line.as_ptr()) };
}

/// A live PAM handle, valid for one `pam_sm_*` call.
pub struct Pam {
    pamh: *mut sys::pam_handle_t,
    hook: Hook,
}

impl Pam {
    /// Send one message through the application's conversation function;
    /// return the answer for prompts.
    fn converse(
        &mut self,
        style: c_int,
        text: &str,
    ) -> Result<Option<Answer>, ConversationAborted> {
        let text = CString::new(text).map_err(|_| ConversationAborted)?;
        let conv = self
            .raw_item(sys::PAM_CONV)
            .map_err(|_| ConversationAborted)?;
        if conv.is_null() {
            return Err(ConversationAborted);
        }
        // SAFETY: the PAM_CONV item is a `struct pam_conv` owned by libpam.
        let conv = unsafe { &*conv.cast::<sys::pam_conv>() };
        let Some(function) = conv.conv else {
            return Err(ConversationAborted);
        };
        let message = sys::pam_message {
            msg_style: style,
            msg: text.as_ptr(),
        };
        let mut messages: *const sys::pam_message = &message;
        let mut response: *mut sys::pam_response = ptr::null_mut();
        // SAFETY: one message, as `num_msg` says; the application allocates
        // `response` (one entry) or leaves it null.
        let rc = unsafe { function(1, &mut messages, &mut response, conv.appdata_ptr) };
        let response = Response(response);
        if rc != sys::PAM_SUCCESS {
            return Err(ConversationAborted);
        }
        match style {
            sys::PAM_PROMPT_ECHO_OFF | sys::PAM_PROMPT_ECHO_ON => response.answer().map(Some),
            _ => Ok(None),
        }
    }

    fn raw_item(&self, item: c_int) -> Result<*const c_void, PamError> {
        let mut value: *const c_void = ptr::null();
        // SAFETY: `pamh` is live for this call; libpam writes one pointer.
        let rc = unsafe { sys::pam_get_item(self.pamh, item, &mut value) };
        if rc != sys::PAM_SUCCESS {
            return Err(PamError::Code(rc));
        }
        Ok(value)
    }
}

/// The application's answer array, zeroed and freed when dropped.
struct Response(*mut sys::pam_response);

impl Response {
    /// Copy the first answer out. A missing answer is an aborted prompt,
    /// not an empty one.
    fn answer(&self) -> Result<Answer, ConversationAborted> {
        if self.0.is_null() {
            return Err(ConversationAborted);
        }
        // SAFETY: a non-null response holds at least one entry.
        let resp = unsafe { (*self.0).resp };
        if resp.is_null() {
            return Err(ConversationAborted);
        }
        // SAFETY: the application's answer is a NUL-terminated string.
        let bytes = unsafe { CStr::from_ptr(resp) }.to_bytes().to_vec();
        String::from_utf8(bytes).map(Answer::new).map_err(|e| {
            // A D-Bus string must be UTF-8; wipe the copy and refuse.
            wipe(e.into_bytes());
            ConversationAborted
        })
    }
}

/// Zero a buffer with writes the compiler keeps, then drop it.
fn wipe(mut bytes: Vec<u8>) {
    for b in bytes.iter_mut() {
        // SAFETY: `b` is a valid, exclusive reference into `bytes`.
        unsafe { ptr::write_volatile(b, 0) };
    }
}

impl Drop for Response {
    fn drop(&mut self) {
        if self.0.is_null() {
            return;
        }
        // SAFETY: the application malloc'd the array (one entry, as we sent
        // one message) and each answer; nobody else frees them.
        unsafe {
            let resp = (*self.0).resp;
            if !resp.is_null() {
                let len = libc::strlen(resp);
                for i in 0..len {
                    ptr::write_volatile(resp.add(i), 0);
                }
                libc::free(resp.cast());
            }
            libc::free(self.0.cast());
        }
    }
}

/// Copy a string owned by libpam.
///
/// # Safety
/// `value` is null or a NUL-terminated string alive for this call.
unsafe fn owned(value: *const c_char) -> Result<Option<String>, PamError> {
    if value.is_null() {
        return Ok(None);
    }
    // SAFETY: per the function's contract.
    let bytes = unsafe { CStr::from_ptr(value) }.to_bytes();
    std::str::from_utf8(bytes)
        .map(|s| Some(s.to_string()))
        .map_err(|_| PamError::NotUtf8)
}

impl PamHandle for Pam {
    fn user(&mut self) -> Result<String, PamError> {
        let mut user: *const c_char = ptr::null();
        // SAFETY: `pamh` is live; a null prompt means libpam's default.
        let rc = unsafe { sys::pam_get_user(self.pamh, &mut user, ptr::null()) };
        if rc != sys::PAM_SUCCESS {
            return Err(PamError::Code(rc));
        }
        // SAFETY: on success `user` is null or a string owned by libpam.
        unsafe { owned(user) }.map(Option::unwrap_or_default)
    }

    fn item(&self, item: Item) -> Result<Option<String>, PamError> {
        let item = match item {
            Item::Service => sys::PAM_SERVICE,
            Item::Rhost => sys::PAM_RHOST,
            Item::Ruser => sys::PAM_RUSER,
            Item::Tty => sys::PAM_TTY,
        };
        let value = self.raw_item(item)?;
        // SAFETY: these items are strings owned by libpam.
        unsafe { owned(value.cast()) }
    }

    fn env(&self, name: &str) -> Result<Option<String>, PamError> {
        let name = CString::new(name).map_err(|_| PamError::NotUtf8)?;
        // SAFETY: `pamh` is live; the value (or null) is owned by libpam.
        unsafe { owned(sys::pam_getenv(self.pamh, name.as_ptr())) }
    }

    fn syslog(&self, priority: Priority, message: &str) {
        let level = match priority {
            Priority::Error => libc::LOG_ERR,
            Priority::Notice => libc::LOG_NOTICE,
            Priority::Debug => libc::LOG_DEBUG,
        };
        let service = self.item(Item::Service).ok().flatten().unwrap_or_default();
        syslog_line(
            level,
            &format!("pam_mfa({service}:{}): {message}", self.hook.name()),
        );
    }

    fn fail_delay(&mut self, micros: u32) {
        // SAFETY: `pamh` is live for this call. A failure only means no
        // delay, which is not worth refusing the login over.
        unsafe { sys::pam_fail_delay(self.pamh, micros) };
    }
}

impl Conversation for Pam {
    fn info(&mut self, text: &str) -> Result<(), ConversationAborted> {
        self.converse(sys::PAM_TEXT_INFO, text).map(drop)
    }

    fn error(&mut self, text: &str) -> Result<(), ConversationAborted> {
        self.converse(sys::PAM_ERROR_MSG, text).map(drop)
    }

    fn prompt(&mut self, text: &str, echo: bool) -> Result<Answer, ConversationAborted> {
        let style = if echo {
            sys::PAM_PROMPT_ECHO_ON
        } else {
            sys::PAM_PROMPT_ECHO_OFF
        };
        self.converse(style, text)?.ok_or(ConversationAborted)
    }
}

/// The PAM client's effective uid: root for sshd, login, sudo, su and
/// display managers; the user's own for a screen locker.
pub fn effective_uid() -> u32 {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() }
}

#[cfg(test)]
mod tests {
    //! The wrappers against a real libpam handle (`pam_start_confdir` on an
    //! empty service file), with an application conversation written the C
    //! way: answers malloc'd for the module to free.

    use super::*;
    use crate::sys::{PAM_CONV_ERR, PAM_IGNORE, PAM_SERVICE_ERR, PAM_SUCCESS, PAM_SYSTEM_ERR};
    use std::collections::VecDeque;

    /// What the test application's conversation does for one message.
    enum Reply {
        Answer(&'static [u8]),
        NullAnswer,
        NullResponse,
        /// Fail, but leave an allocated response behind.
        FailWithResponse,
    }

    #[derive(Default)]
    struct App {
        replies: VecDeque<Reply>,
        seen: Vec<(c_int, String)>,
    }

    unsafe extern "C" fn app_conv(
        num_msg: c_int,
        msg: *mut *const sys::pam_message,
        resp: *mut *mut sys::pam_response,
        appdata: *mut c_void,
    ) -> c_int {
        // SAFETY: the test passes an `App` as appdata; libpam-style arguments.
        unsafe {
            let app = &mut *appdata.cast::<App>();
            assert_eq!(num_msg, 1);
            let m = &**msg;
            app.seen.push((
                m.msg_style,
                CStr::from_ptr(m.msg).to_string_lossy().into_owned(),
            ));
            let reply = app.replies.pop_front().unwrap_or(Reply::NullResponse);
            let alloc = |answer: *mut c_char| {
                let r = libc::calloc(1, std::mem::size_of::<sys::pam_response>())
                    .cast::<sys::pam_response>();
                (*r).resp = answer;
                r
            };
            let dup = |bytes: &[u8]| {
                let s = CString::new(bytes).expect("no NUL");
                libc::strdup(s.as_ptr())
            };
            match reply {
                Reply::Answer(bytes) => {
                    *resp = alloc(dup(bytes));
                    PAM_SUCCESS
                }
                Reply::NullAnswer => {
                    *resp = alloc(ptr::null_mut());
                    PAM_SUCCESS
                }
                Reply::NullResponse => PAM_SUCCESS,
                Reply::FailWithResponse => {
                    *resp = alloc(dup(b"leftover"));
                    PAM_CONV_ERR
                }
            }
        }
    }

    /// A libpam handle for service `pam_mfa_test`, user `alice`.
    struct Handle {
        pamh: *mut sys::pam_handle_t,
        app: Box<App>,
        _conv: Box<sys::pam_conv>,
        _confdir: tempfile::TempDir,
    }

    impl Handle {
        fn new(replies: impl IntoIterator<Item = Reply>) -> Handle {
            let confdir = tempfile::tempdir().expect("temporary directory");
            std::fs::write(confdir.path().join("pam_mfa_test"), "").expect("service file");
            let mut app = Box::new(App {
                replies: replies.into_iter().collect(),
                seen: Vec::new(),
            });
            let conv = Box::new(sys::pam_conv {
                conv: Some(app_conv),
                appdata_ptr: (&mut *app as *mut App).cast(),
            });
            let dir = CString::new(confdir.path().to_str().expect("UTF-8 path")).expect("no NUL");
            let mut pamh = ptr::null_mut();
            // SAFETY: valid strings and conv structure, kept alive in `Handle`.
            let rc = unsafe {
                sys::pam_start_confdir(
                    c"pam_mfa_test".as_ptr(),
                    c"alice".as_ptr(),
                    &*conv,
                    dir.as_ptr(),
                    &mut pamh,
                )
            };
            assert_eq!(rc, PAM_SUCCESS);
            Handle {
                pamh,
                app,
                _conv: conv,
                _confdir: confdir,
            }
        }

        fn pam(&self) -> Pam {
            Pam {
                pamh: self.pamh,
                hook: Hook::Auth,
            }
        }

        fn set_item(&self, item: c_int, value: &CStr) {
            // SAFETY: libpam copies string items.
            assert_eq!(
                unsafe { sys::pam_set_item(self.pamh, item, value.as_ptr().cast()) },
                PAM_SUCCESS
            );
        }

        fn putenv(&self, name_value: &CStr) {
            // SAFETY: libpam copies the string.
            assert_eq!(
                unsafe { sys::pam_putenv(self.pamh, name_value.as_ptr()) },
                PAM_SUCCESS
            );
        }
    }

    impl Drop for Handle {
        fn drop(&mut self) {
            // SAFETY: the handle came from pam_start_confdir and is ended once.
            unsafe { sys::pam_end(self.pamh, PAM_SUCCESS) };
        }
    }

    #[test]
    fn reads_user_items_and_pam_environment() {
        let handle = Handle::new([]);
        handle.set_item(sys::PAM_RHOST, c"198.51.100.7");
        handle.set_item(sys::PAM_TTY, c"/dev/pts/3");
        handle.putenv(c"SSH_AUTH_INFO_0=publickey ssh-ed25519 AAAAC3Nz");
        let mut pam = handle.pam();
        assert_eq!(pam.user(), Ok("alice".to_string()));
        assert_eq!(
            pam.item(Item::Service),
            Ok(Some("pam_mfa_test".to_string()))
        );
        assert_eq!(pam.item(Item::Rhost), Ok(Some("198.51.100.7".to_string())));
        assert_eq!(pam.item(Item::Tty), Ok(Some("/dev/pts/3".to_string())));
        assert_eq!(pam.item(Item::Ruser), Ok(None));
        assert_eq!(
            pam.env("SSH_AUTH_INFO_0"),
            Ok(Some("publickey ssh-ed25519 AAAAC3Nz".to_string()))
        );
        assert_eq!(
            pam.env("HOME"),
            Ok(None),
            "only the PAM environment is read"
        );
    }

    #[test]
    fn non_utf8_items_are_errors() {
        let handle = Handle::new([]);
        handle.set_item(sys::PAM_RHOST, c"host\xff");
        assert_eq!(handle.pam().item(Item::Rhost), Err(PamError::NotUtf8));
    }

    #[test]
    fn prompts_messages_and_answers() {
        let handle = Handle::new([
            Reply::Answer(b"123456"),
            Reply::Answer(b"visible"),
            Reply::NullResponse,
            Reply::NullResponse,
        ]);
        let mut pam = handle.pam();
        assert_eq!(
            pam.prompt("Verification code: ", false)
                .map(|a| a.expose().to_string()),
            Ok("123456".into())
        );
        assert_eq!(
            pam.prompt("Name: ", true).map(|a| a.expose().to_string()),
            Ok("visible".into())
        );
        assert_eq!(pam.info("Hello."), Ok(()));
        assert_eq!(pam.error("No."), Ok(()));
        assert_eq!(
            handle.app.seen,
            vec![
                (sys::PAM_PROMPT_ECHO_OFF, "Verification code: ".to_string()),
                (sys::PAM_PROMPT_ECHO_ON, "Name: ".to_string()),
                (sys::PAM_TEXT_INFO, "Hello.".to_string()),
                (sys::PAM_ERROR_MSG, "No.".to_string()),
            ]
        );
    }

    #[test]
    fn empty_answer_is_an_answer() {
        let handle = Handle::new([Reply::Answer(b"")]);
        assert_eq!(
            handle
                .pam()
                .prompt("Code: ", false)
                .map(|a| a.expose().is_empty()),
            Ok(true)
        );
    }

    #[test]
    fn missing_or_bad_answers_abort() {
        let handle = Handle::new([
            Reply::NullResponse,
            Reply::NullAnswer,
            Reply::FailWithResponse,
            Reply::Answer(b"12\xff34"),
        ]);
        let mut pam = handle.pam();
        for _ in 0..4 {
            assert_eq!(
                pam.prompt("Code: ", false).map(drop),
                Err(ConversationAborted)
            );
        }
    }

    #[test]
    fn text_with_nul_is_not_sent() {
        let handle = Handle::new([]);
        assert_eq!(handle.pam().info("a\0b"), Err(ConversationAborted));
        assert!(handle.app.seen.is_empty());
    }

    fn body_panics(_: &mut Pam, _: &[&[u8]], _: bool) -> c_int {
        panic!("a bug")
    }

    fn body_echoes(pam: &mut Pam, args: &[&[u8]], silent: bool) -> c_int {
        assert_eq!(args, [b"debug".as_slice(), b"timeout=5".as_slice()]);
        assert!(silent);
        assert_eq!(
            pam.item(Item::Service),
            Ok(Some("pam_mfa_test".to_string()))
        );
        PAM_IGNORE
    }

    #[test]
    fn entry_passes_arguments_and_flags() {
        let handle = Handle::new([]);
        let argv = [c"debug".as_ptr(), c"timeout=5".as_ptr()];
        let code = entry(
            Hook::Auth,
            RawPamHandle(handle.pamh),
            sys::PAM_SILENT,
            2,
            RawArgv(argv.as_ptr()),
            body_echoes,
        );
        assert_eq!(code, PAM_IGNORE);
    }

    #[test]
    fn entry_turns_a_panic_into_system_err() {
        let handle = Handle::new([]);
        let code = entry(
            Hook::Auth,
            RawPamHandle(handle.pamh),
            0,
            0,
            RawArgv(ptr::null()),
            body_panics,
        );
        assert_eq!(code, PAM_SYSTEM_ERR);
        assert!(!IN_MODULE.with(Cell::get));
    }

    #[test]
    fn entry_refuses_null_handle_and_bad_argv() {
        let handle = Handle::new([]);
        assert_eq!(
            entry(
                Hook::Auth,
                RawPamHandle(ptr::null_mut()),
                0,
                0,
                RawArgv(ptr::null()),
                body_panics
            ),
            PAM_SYSTEM_ERR
        );
        assert_eq!(
            entry(
                Hook::Auth,
                RawPamHandle(handle.pamh),
                0,
                1,
                RawArgv(ptr::null()),
                body_panics
            ),
            PAM_SERVICE_ERR
        );
        let argv = [ptr::null::<c_char>()];
        assert_eq!(
            entry(
                Hook::Auth,
                RawPamHandle(handle.pamh),
                0,
                1,
                RawArgv(argv.as_ptr()),
                body_panics
            ),
            PAM_SERVICE_ERR
        );
        assert_eq!(
            entry(
                Hook::Auth,
                RawPamHandle(handle.pamh),
                0,
                -1,
                RawArgv(ptr::null()),
                body_panics
            ),
            PAM_SERVICE_ERR
        );
    }
}
