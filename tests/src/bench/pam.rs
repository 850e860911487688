//! One PAM transaction through the system's libpam, as a login program
//! does it: `pam_start_confdir` (libpam ≥ 1.4: service files from our own
//! directory) → `pam_authenticate` → `pam_end`, with a conversation that
//! answers the first prompt with the code it was given.
//!
//! A refused login waits in libpam for the delay the module asked for
//! (pam_mfa: 2 s) unless the application takes the delay over
//! (`PAM_FAIL_DELAY`); [`Service::without_fail_delay`] does, with a delay
//! function that does nothing, to time refusals themselves.

use std::ffi::{c_char, c_int, c_void, CStr, CString};
use std::time::Instant;

const PAM_SUCCESS: c_int = 0;
const PAM_BUF_ERR: c_int = 5;
const PAM_CONV_ERR: c_int = 19;
const PAM_PROMPT_ECHO_OFF: c_int = 1;
const PAM_PROMPT_ECHO_ON: c_int = 2;
const PAM_ERROR_MSG: c_int = 3;
/// The item naming the application's delay function (`_security/_pam_types.h`).
const PAM_FAIL_DELAY: c_int = 10;

#[repr(C)]
struct PamMessage {
    msg_style: c_int,
    msg: *const c_char,
}

#[repr(C)]
#[allow(dead_code)] // resp_retcode: part of the C layout, unused by Linux-PAM
struct PamResponse {
    resp: *mut c_char,
    resp_retcode: c_int,
}

type ConvFn = unsafe extern "C" fn(
    num_msg: c_int,
    msg: *mut *const PamMessage,
    resp: *mut *mut PamResponse,
    appdata_ptr: *mut c_void,
) -> c_int;

#[repr(C)]
struct PamConv {
    conv: Option<ConvFn>,
    appdata_ptr: *mut c_void,
}

#[repr(C)]
struct PamHandle {
    _private: [u8; 0],
}

#[link(name = "pam")]
extern "C" {
    fn pam_start_confdir(
        service: *const c_char,
        user: *const c_char,
        conv: *const PamConv,
        confdir: *const c_char,
        pamh: *mut *mut PamHandle,
    ) -> c_int;
    fn pam_authenticate(pamh: *mut PamHandle, flags: c_int) -> c_int;
    fn pam_end(pamh: *mut PamHandle, status: c_int) -> c_int;
    fn pam_set_item(pamh: *mut PamHandle, item_type: c_int, item: *const c_void) -> c_int;
}

/// How one login went.
#[derive(Clone, Copy, Debug)]
pub struct Sample {
    /// pam_authenticate's return code (or pam_start's if that failed).
    pub rc: i32,
    /// Nanoseconds in pam_authenticate.
    pub auth_ns: u64,
    /// Nanoseconds from pam_start to the return of pam_end.
    pub total_ns: u64,
    /// Error messages the module showed (a successful login shows none).
    pub errors: u32,
}

impl Sample {
    pub fn ok(&self) -> bool {
        self.rc == PAM_SUCCESS && self.errors == 0
    }

    /// pam_authenticate let the user in (whatever it showed on the way).
    pub fn accepted(&self) -> bool {
        self.rc == PAM_SUCCESS
    }
}

/// What the conversation function answers with.
struct User {
    code: CString,
    prompts: u32,
    errors: u32,
}

/// A PAM service in a directory of service files.
pub struct Service {
    name: CString,
    confdir: CString,
    /// Set `PAM_FAIL_DELAY` to [`no_delay`] in every transaction.
    no_fail_delay: bool,
}

impl Service {
    pub fn new(name: &str, confdir: &str) -> Result<Service, String> {
        Ok(Service {
            name: CString::new(name).map_err(|_| "service name has a NUL byte")?,
            confdir: CString::new(confdir).map_err(|_| "confdir has a NUL byte")?,
            no_fail_delay: false,
        })
    }

    /// The same service, refused logins returning without libpam's failure
    /// delay (the application's own delay function, which does nothing).
    pub fn without_fail_delay(self) -> Service {
        Service {
            no_fail_delay: true,
            ..self
        }
    }

    /// One transaction for `user`, answering the first prompt with `code`.
    pub fn login(&self, user: &str, code: &str) -> Result<Sample, String> {
        let user = CString::new(user).map_err(|_| "user name has a NUL byte")?;
        let code = CString::new(code).map_err(|_| "code has a NUL byte")?;
        let mut answers = Box::new(User {
            code,
            prompts: 0,
            errors: 0,
        });
        let conv = PamConv {
            conv: Some(conversation),
            appdata_ptr: &mut *answers as *mut User as *mut c_void,
        };
        let mut pamh: *mut PamHandle = std::ptr::null_mut();
        let started = Instant::now();
        // SAFETY: all pointers are valid NUL-terminated strings or live
        // structs; `conv` and `answers` outlive the transaction (pam_end
        // below is called before they drop).
        let rc = unsafe {
            pam_start_confdir(
                self.name.as_ptr(),
                user.as_ptr(),
                &conv,
                self.confdir.as_ptr(),
                &mut pamh,
            )
        };
        if rc != PAM_SUCCESS || pamh.is_null() {
            let total_ns = elapsed_ns(started);
            return Ok(Sample {
                rc,
                auth_ns: 0,
                total_ns,
                errors: answers.errors,
            });
        }
        if self.no_fail_delay {
            let delay: DelayFn = no_delay;
            // SAFETY: pamh is the live handle; libpam stores the function
            // pointer (a plain `extern "C"` fn that lives forever).
            let rc = unsafe { pam_set_item(pamh, PAM_FAIL_DELAY, delay as *const c_void) };
            if rc != PAM_SUCCESS {
                // SAFETY: ends the transaction started above.
                unsafe { pam_end(pamh, rc) };
                return Err(format!(
                    "pam_set_item(PAM_FAIL_DELAY) failed: {}",
                    rc_name(rc)
                ));
            }
        }
        let auth_started = Instant::now();
        // SAFETY: pamh is the live handle from pam_start_confdir.
        let rc = unsafe { pam_authenticate(pamh, 0) };
        let auth_ns = elapsed_ns(auth_started);
        // SAFETY: ends the transaction started above; pamh is not used again.
        unsafe { pam_end(pamh, rc) };
        let total_ns = elapsed_ns(started);
        Ok(Sample {
            rc,
            auth_ns,
            total_ns,
            errors: answers.errors,
        })
    }
}

type DelayFn = unsafe extern "C" fn(retval: c_int, usec_delay: u32, appdata_ptr: *mut c_void);

/// The application's failure delay: none.
unsafe extern "C" fn no_delay(_retval: c_int, _usec_delay: u32, _appdata_ptr: *mut c_void) {}

fn elapsed_ns(since: Instant) -> u64 {
    u64::try_from(since.elapsed().as_nanos()).unwrap_or(u64::MAX)
}

unsafe extern "C" fn conversation(
    num_msg: c_int,
    msg: *mut *const PamMessage,
    resp: *mut *mut PamResponse,
    appdata_ptr: *mut c_void,
) -> c_int {
    let answered = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        if appdata_ptr.is_null() {
            return PAM_CONV_ERR;
        }
        // SAFETY: libpam hands back the appdata pointer given to pam_start,
        // a live `User` for the whole transaction, used by nobody else.
        let user = unsafe { &mut *(appdata_ptr as *mut User) };
        // SAFETY: libpam's contract for conversation arguments.
        unsafe { converse(num_msg, msg, resp, user) }
    }));
    answered.unwrap_or(PAM_CONV_ERR)
}

/// # Safety
/// `msg` holds `num_msg` valid message pointers; `resp` is writable.
unsafe fn converse(
    num_msg: c_int,
    msg: *mut *const PamMessage,
    resp: *mut *mut PamResponse,
    user: &mut User,
) -> c_int {
    let Ok(count) = usize::try_from(num_msg) else {
        return PAM_CONV_ERR;
    };
    if count == 0 || msg.is_null() || resp.is_null() {
        return PAM_CONV_ERR;
    }
    // SAFETY: zeroed array of `count` responses; libpam frees it (and each
    // `resp` string) with free().
    let replies =
        unsafe { libc::calloc(count, std::mem::size_of::<PamResponse>()) } as *mut PamResponse;
    if replies.is_null() {
        return PAM_BUF_ERR;
    }
    for i in 0..count {
        // SAFETY: Linux-PAM passes an array of `count` message pointers.
        let message = unsafe { &**msg.add(i) };
        match message.msg_style {
            PAM_PROMPT_ECHO_OFF | PAM_PROMPT_ECHO_ON => {
                user.prompts += 1;
                if user.prompts > 1 {
                    // A second prompt means the code was refused; stop here
                    // rather than retry and hide a failure.
                    // SAFETY: frees what this call allocated so far.
                    unsafe { free_replies(replies, i) };
                    return PAM_CONV_ERR;
                }
                // SAFETY: strdup copies into malloc'd memory libpam frees.
                let copy = unsafe { libc::strdup(user.code.as_ptr()) };
                if copy.is_null() {
                    // SAFETY: as above.
                    unsafe { free_replies(replies, i) };
                    return PAM_BUF_ERR;
                }
                // SAFETY: `i < count`, inside the calloc'd array.
                unsafe { (*replies.add(i)).resp = copy };
            }
            PAM_ERROR_MSG => user.errors += 1,
            _ => {}
        }
    }
    // SAFETY: `resp` is libpam's out-pointer.
    unsafe { *resp = replies };
    PAM_SUCCESS
}

/// # Safety
/// `replies` is a calloc'd array whose first `filled` entries are zeroed or
/// hold strdup'd strings.
unsafe fn free_replies(replies: *mut PamResponse, filled: usize) {
    for i in 0..filled {
        // SAFETY: see above.
        unsafe { libc::free((*replies.add(i)).resp as *mut c_void) };
    }
    // SAFETY: allocated by calloc in `converse`.
    unsafe { libc::free(replies as *mut c_void) };
}

/// libpam's text for a return code, e.g. for a failure summary.
pub fn rc_name(rc: i32) -> String {
    let name = mfa_tests::pam::rc_name(rc);
    if name != "PAM_<unknown>" {
        return name.to_string();
    }
    extern "C" {
        fn pam_strerror(pamh: *mut PamHandle, errnum: c_int) -> *const c_char;
    }
    // SAFETY: pam_strerror ignores the handle and returns a static string.
    let text = unsafe { pam_strerror(std::ptr::null_mut(), rc) };
    if text.is_null() {
        return format!("PAM error {rc}");
    }
    // SAFETY: NUL-terminated static string from libpam.
    unsafe { CStr::from_ptr(text) }
        .to_string_lossy()
        .into_owned()
}
