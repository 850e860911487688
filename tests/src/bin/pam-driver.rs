//! pam-driver: one PAM transaction through the system's real libpam, with a
//! scripted user, reported as one JSON line on stdout:
//!
//! `{"rc", "rc_name", "messages": [{"style", "text"}], "threads_before",
//!   "threads_after", "auth_us", "total_us", "unused_answers",
//!   "fail_delay_us"}`
//!
//! The driver installs a `PAM_FAIL_DELAY` function: libpam calls it instead
//! of sleeping, with the largest delay a module asked for; `fail_delay_us`
//! is that delay when the stack failed, null otherwise.
//!
//! With `--confdir` libpam reads the service from that directory
//! (`pam_start_confdir`, libpam ≥ 1.4); without it, from /etc/pam.d — or from
//! `PAM_WRAPPER_SERVICE_DIR` under pam_wrapper. `--sync` prints `AT-PROMPT`
//! at the first prompt and waits for a line on stdin before answering, so a
//! test can release many logins at the same instant. `--ask` asks the test
//! for the answer to each prompt past the scripted ones: it prints
//! `PROMPT <text as a JSON string>` and reads the answer from a line of
//! stdin (a code the test reads from a mail only once the prompt is there).
//!
//! The transaction itself is [`transaction`], so a loop mode (benchmarks)
//! can call it repeatedly.

use clap::Parser;
use serde_json::json;
use std::collections::VecDeque;
use std::ffi::{c_int, c_void, CStr, CString};
use std::io::{BufRead, Write};
use std::process::ExitCode;
use std::time::Instant;

mod ffi {
    use std::ffi::{c_char, c_int, c_void};

    pub const PAM_PROMPT_ECHO_OFF: c_int = 1;
    pub const PAM_PROMPT_ECHO_ON: c_int = 2;
    pub const PAM_ERROR_MSG: c_int = 3;
    pub const PAM_TEXT_INFO: c_int = 4;

    pub const PAM_SUCCESS: c_int = 0;
    pub const PAM_BUF_ERR: c_int = 5;
    pub const PAM_CONV_ERR: c_int = 19;

    pub const PAM_TTY: c_int = 3;
    pub const PAM_RHOST: c_int = 4;
    pub const PAM_RUSER: c_int = 8;
    pub const PAM_FAIL_DELAY: c_int = 10;

    pub type DelayFn =
        unsafe extern "C" fn(retval: c_int, usec_delay: u32, appdata_ptr: *mut c_void);

    #[repr(C)]
    pub struct PamMessage {
        pub msg_style: c_int,
        pub msg: *const c_char,
    }

    #[repr(C)]
    pub struct PamResponse {
        pub resp: *mut c_char,
        pub resp_retcode: c_int,
    }

    pub type ConvFn = unsafe extern "C" fn(
        num_msg: c_int,
        msg: *mut *const PamMessage,
        resp: *mut *mut PamResponse,
        appdata_ptr: *mut c_void,
    ) -> c_int;

    #[repr(C)]
    pub struct PamConv {
        pub conv: Option<ConvFn>,
        pub appdata_ptr: *mut c_void,
    }

    #[repr(C)]
    pub struct PamHandle {
        _private: [u8; 0],
    }

    #[link(name = "pam")]
    extern "C" {
        pub fn pam_start(
            service: *const c_char,
            user: *const c_char,
            conv: *const PamConv,
            pamh: *mut *mut PamHandle,
        ) -> c_int;
        pub fn pam_start_confdir(
            service: *const c_char,
            user: *const c_char,
            conv: *const PamConv,
            confdir: *const c_char,
            pamh: *mut *mut PamHandle,
        ) -> c_int;
        pub fn pam_authenticate(pamh: *mut PamHandle, flags: c_int) -> c_int;
        pub fn pam_end(pamh: *mut PamHandle, status: c_int) -> c_int;
        pub fn pam_set_item(pamh: *mut PamHandle, item_type: c_int, item: *const c_void) -> c_int;
        pub fn pam_putenv(pamh: *mut PamHandle, name_value: *const c_char) -> c_int;
    }
}

#[derive(Parser, Clone)]
#[command(about = "Run pam_authenticate through libpam with scripted answers; print JSON")]
struct Opts {
    /// PAM service name
    #[arg(long)]
    service: String,
    /// PAM_USER
    #[arg(long)]
    user: String,
    /// Directory of service files (pam_start_confdir); default: libpam's own
    #[arg(long)]
    confdir: Option<String>,
    /// Answer to the next prompt; repeat for several prompts
    #[arg(long = "answer", allow_hyphen_values = true)]
    answers: Vec<String>,
    /// PAM_RHOST
    #[arg(long)]
    rhost: Option<String>,
    /// PAM_TTY
    #[arg(long)]
    tty: Option<String>,
    /// PAM_RUSER
    #[arg(long)]
    ruser: Option<String>,
    /// NAME=VALUE put into the PAM environment (e.g. SSH_AUTH_INFO_0=…)
    #[arg(long = "pam-env")]
    pam_env: Vec<String>,
    /// Print AT-PROMPT at the first prompt and wait for a line on stdin
    #[arg(long)]
    sync: bool,
    /// Past the --answer ones, print each prompt and read its answer from stdin
    #[arg(long)]
    ask: bool,
}

/// The scripted user behind the conversation function.
struct Script {
    answers: VecDeque<String>,
    messages: Vec<(String, String)>,
    sync: bool,
    ask: bool,
}

impl Script {
    fn converse(&mut self, style: c_int, text: String) -> Result<Option<String>, ()> {
        let name = match style {
            ffi::PAM_PROMPT_ECHO_OFF => "prompt_echo_off",
            ffi::PAM_PROMPT_ECHO_ON => "prompt_echo_on",
            ffi::PAM_ERROR_MSG => "error",
            ffi::PAM_TEXT_INFO => "info",
            _ => "other",
        };
        self.messages.push((name.to_string(), text));
        match style {
            ffi::PAM_PROMPT_ECHO_OFF | ffi::PAM_PROMPT_ECHO_ON => {
                if self.sync {
                    self.sync = false;
                    wait_for_go();
                }
                if let Some(answer) = self.answers.pop_front() {
                    return Ok(Some(answer));
                }
                if self.ask {
                    return ask(self.messages.last().map(|m| m.1.as_str()).unwrap_or(""));
                }
                // Out of answers: the user walked away.
                Err(())
            }
            ffi::PAM_ERROR_MSG | ffi::PAM_TEXT_INFO => Ok(None),
            _ => Err(()),
        }
    }
}

/// The answer the test gives to `prompt`; none (stdin closed): the user
/// walked away.
fn ask(prompt: &str) -> Result<Option<String>, ()> {
    let mut stdout = std::io::stdout();
    let _ = writeln!(stdout, "PROMPT {}", serde_json::Value::from(prompt));
    let _ = stdout.flush();
    let mut line = String::new();
    match std::io::stdin().lock().read_line(&mut line) {
        Ok(n) if n > 0 => Ok(Some(line.trim_end_matches(['\r', '\n']).to_string())),
        _ => Err(()),
    }
}

fn wait_for_go() {
    let mut stdout = std::io::stdout();
    let _ = writeln!(stdout, "AT-PROMPT");
    let _ = stdout.flush();
    let mut line = String::new();
    let _ = std::io::stdin().lock().read_line(&mut line);
}

unsafe extern "C" fn conversation(
    num_msg: c_int,
    msg: *mut *const ffi::PamMessage,
    resp: *mut *mut ffi::PamResponse,
    appdata_ptr: *mut c_void,
) -> c_int {
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        // SAFETY: libpam passes the appdata pointer we gave pam_start, which
        // points at a live Script for the whole transaction.
        unsafe { converse_all(num_msg, msg, resp, &mut *(appdata_ptr as *mut Script)) }
    }));
    result.unwrap_or(ffi::PAM_CONV_ERR)
}

/// # Safety
/// `msg` holds `num_msg` valid message pointers; `resp` is writable.
unsafe fn converse_all(
    num_msg: c_int,
    msg: *mut *const ffi::PamMessage,
    resp: *mut *mut ffi::PamResponse,
    script: &mut Script,
) -> c_int {
    let Ok(count) = usize::try_from(num_msg) else {
        return ffi::PAM_CONV_ERR;
    };
    if count == 0 || msg.is_null() || resp.is_null() {
        return ffi::PAM_CONV_ERR;
    }
    // SAFETY: calloc of `count` zeroed responses; libpam frees them.
    let replies = unsafe { libc::calloc(count, std::mem::size_of::<ffi::PamResponse>()) }
        as *mut ffi::PamResponse;
    if replies.is_null() {
        return ffi::PAM_BUF_ERR;
    }
    for i in 0..count {
        // SAFETY: Linux-PAM passes an array of `count` message pointers.
        let message = unsafe { &**msg.add(i) };
        let text = if message.msg.is_null() {
            String::new()
        } else {
            // SAFETY: libpam's message texts are NUL-terminated strings.
            unsafe { CStr::from_ptr(message.msg) }
                .to_string_lossy()
                .into_owned()
        };
        match script.converse(message.msg_style, text) {
            Ok(None) => {}
            Ok(Some(answer)) => {
                let Ok(answer) = CString::new(answer) else {
                    // SAFETY: frees what this function allocated so far.
                    unsafe { free_replies(replies, i) };
                    return ffi::PAM_CONV_ERR;
                };
                // SAFETY: strdup copies into malloc'd memory libpam frees.
                let copy = unsafe { libc::strdup(answer.as_ptr()) };
                if copy.is_null() {
                    unsafe { free_replies(replies, i) };
                    return ffi::PAM_BUF_ERR;
                }
                // SAFETY: `i < count`, inside the calloc'd array.
                unsafe { (*replies.add(i)).resp = copy };
            }
            Err(()) => {
                // SAFETY: frees what this function allocated so far.
                unsafe { free_replies(replies, i) };
                return ffi::PAM_CONV_ERR;
            }
        }
    }
    // SAFETY: `resp` is libpam's out-pointer.
    unsafe { *resp = replies };
    ffi::PAM_SUCCESS
}

/// # Safety
/// `replies` is a calloc'd array with at least `filled` initialised entries.
unsafe fn free_replies(replies: *mut ffi::PamResponse, filled: usize) {
    for i in 0..filled {
        // SAFETY: entries are zeroed or hold strdup'd strings.
        unsafe { libc::free((*replies.add(i)).resp as *mut c_void) };
    }
    // SAFETY: allocated by calloc above.
    unsafe { libc::free(replies as *mut c_void) };
}

/// The delay libpam asked the application for, in µs (`u64::MAX`: none yet).
static FAIL_DELAY_US: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(u64::MAX);

/// Record the fail delay instead of sleeping it. libpam calls this after
/// every pam_authenticate with its result; like libpam's own timer, only a
/// failure counts.
unsafe extern "C" fn record_fail_delay(retval: c_int, usec_delay: u32, _appdata: *mut c_void) {
    if retval != ffi::PAM_SUCCESS {
        FAIL_DELAY_US.store(u64::from(usec_delay), std::sync::atomic::Ordering::SeqCst);
    }
}

/// The result of one transaction.
struct Report {
    rc: c_int,
    messages: Vec<(String, String)>,
    threads_before: u32,
    threads_after: u32,
    auth_us: u128,
    total_us: u128,
    unused_answers: usize,
}

fn threads() -> u32 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Threads:"))
                .and_then(|n| n.trim().parse().ok())
        })
        .unwrap_or(0)
}

fn cstring(what: &str, s: &str) -> Result<CString, String> {
    CString::new(s).map_err(|_| format!("{what} contains a NUL byte"))
}

/// pam_start(_confdir) → items → pam_authenticate → pam_end.
fn transaction(opts: &Opts) -> Result<Report, String> {
    let service = cstring("--service", &opts.service)?;
    let user = cstring("--user", &opts.user)?;
    let confdir = opts
        .confdir
        .as_deref()
        .map(|d| cstring("--confdir", d))
        .transpose()?;
    let items: Vec<(c_int, CString)> = [
        (ffi::PAM_RHOST, &opts.rhost),
        (ffi::PAM_TTY, &opts.tty),
        (ffi::PAM_RUSER, &opts.ruser),
    ]
    .into_iter()
    .filter_map(|(item, value)| value.as_deref().map(|v| (item, v)))
    .map(|(item, v)| cstring("item", v).map(|c| (item, c)))
    .collect::<Result<_, _>>()?;
    let env: Vec<CString> = opts
        .pam_env
        .iter()
        .map(|e| cstring("--pam-env", e))
        .collect::<Result<_, _>>()?;

    let mut script = Box::new(Script {
        answers: opts.answers.iter().cloned().collect(),
        messages: Vec::new(),
        sync: opts.sync,
        ask: opts.ask,
    });
    let conv = ffi::PamConv {
        conv: Some(conversation),
        appdata_ptr: &mut *script as *mut Script as *mut c_void,
    };
    let threads_before = threads();
    let started = Instant::now();
    let mut pamh: *mut ffi::PamHandle = std::ptr::null_mut();
    // SAFETY: every pointer is valid for the call; `conv` and `script` outlive
    // the transaction (pam_end below).
    let rc = unsafe {
        match &confdir {
            Some(dir) => ffi::pam_start_confdir(
                service.as_ptr(),
                user.as_ptr(),
                &conv,
                dir.as_ptr(),
                &mut pamh,
            ),
            None => ffi::pam_start(service.as_ptr(), user.as_ptr(), &conv, &mut pamh),
        }
    };
    if rc != ffi::PAM_SUCCESS || pamh.is_null() {
        return Ok(Report {
            rc,
            messages: std::mem::take(&mut script.messages),
            threads_before,
            threads_after: threads(),
            auth_us: 0,
            total_us: started.elapsed().as_micros(),
            unused_answers: script.answers.len(),
        });
    }
    let delay_fn: ffi::DelayFn = record_fail_delay;
    // SAFETY: pamh is live; PAM_FAIL_DELAY takes a function pointer.
    let set = unsafe { ffi::pam_set_item(pamh, ffi::PAM_FAIL_DELAY, delay_fn as *const c_void) };
    if set != ffi::PAM_SUCCESS {
        // SAFETY: ends the transaction started above.
        unsafe { ffi::pam_end(pamh, set) };
        return Err(format!("pam_set_item(PAM_FAIL_DELAY) failed: {set}"));
    }
    for (item, value) in &items {
        // SAFETY: pamh is live; libpam copies the string.
        let set = unsafe { ffi::pam_set_item(pamh, *item, value.as_ptr() as *const c_void) };
        if set != ffi::PAM_SUCCESS {
            // SAFETY: ends the transaction started above.
            unsafe { ffi::pam_end(pamh, set) };
            return Err(format!("pam_set_item({item}) failed: {set}"));
        }
    }
    for name_value in &env {
        // SAFETY: pamh is live; libpam copies the string.
        let put = unsafe { ffi::pam_putenv(pamh, name_value.as_ptr()) };
        if put != ffi::PAM_SUCCESS {
            // SAFETY: ends the transaction started above.
            unsafe { ffi::pam_end(pamh, put) };
            return Err(format!("pam_putenv failed: {put}"));
        }
    }
    let auth_started = Instant::now();
    // SAFETY: pamh is live.
    let rc = unsafe { ffi::pam_authenticate(pamh, 0) };
    let auth_us = auth_started.elapsed().as_micros();
    // SAFETY: ends the transaction; libpam unloads the modules.
    unsafe { ffi::pam_end(pamh, rc) };
    let total_us = started.elapsed().as_micros();
    Ok(Report {
        rc,
        messages: std::mem::take(&mut script.messages),
        threads_before,
        threads_after: threads(),
        auth_us,
        total_us,
        unused_answers: script.answers.len(),
    })
}

fn main() -> ExitCode {
    let opts = Opts::parse();
    match transaction(&opts) {
        Ok(report) => {
            let messages: Vec<_> = report
                .messages
                .iter()
                .map(|(style, text)| json!({ "style": style, "text": text }))
                .collect();
            let line = json!({
                "rc": report.rc,
                "rc_name": mfa_tests::pam::rc_name(report.rc),
                "messages": messages,
                "threads_before": report.threads_before,
                "threads_after": report.threads_after,
                "auth_us": report.auth_us as u64,
                "total_us": report.total_us as u64,
                "unused_answers": report.unused_answers,
                "fail_delay_us": match FAIL_DELAY_US.load(std::sync::atomic::Ordering::SeqCst) {
                    u64::MAX => serde_json::Value::Null,
                    us => json!(us),
                },
            });
            println!("{line}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("pam-driver: {e}");
            ExitCode::from(2)
        }
    }
}
