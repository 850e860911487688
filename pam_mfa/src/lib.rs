//! pam_mfa.so: a thin PAM module that relays second-factor prompts from
//! mfad over D-Bus. It holds no policy and no secret: mfad drives the
//! conversation and decides; the module shows the steps, returns the
//! answers and maps the ending to a PAM code (see [`outcome`]).
//!
//! Layers, each using only those below it:
//!
//! | layer | files |
//! |---|---|
//! | entry points | this file: the `pam_sm_*` symbols and [`authenticate`] |
//! | the flow | [`relay`]: one login over the two traits below |
//! | implementations | `ffi.rs` (libpam, every `unsafe` call), [`transport`] (mfad over the login socket or the bus) |
//! | traits and tables | [`pam`] ([`pam::PamHandle`]), [`daemon`] ([`daemon::Mfad`]), [`outcome`], [`options`] |
//! | bindings | `sys.rs` (bindgen, from libpam's headers) |
//!
//! The modules are public for the tests and for printing the return-code
//! table into pam_mfa(8).
//!
//! | function               | returns                                      |
//! |------------------------|----------------------------------------------|
//! | `pam_sm_authenticate`  | per [`outcome::End::pam_code`]               |
//! | `pam_sm_setcred`       | `PAM_SUCCESS` (no credentials to set)        |
//! | `pam_sm_acct_mgmt`     | `PAM_SERVICE_ERR` (auth module only; logged) |
//! | `pam_sm_open_session`  | `PAM_SERVICE_ERR` (auth module only; logged) |
//! | `pam_sm_close_session` | `PAM_SERVICE_ERR` (auth module only; logged) |
//! | `pam_sm_chauthtok`     | `PAM_SERVICE_ERR` (auth module only; logged) |

#![deny(unsafe_code)]

pub mod daemon;
#[allow(unsafe_code)]
mod ffi;
pub mod options;
pub mod outcome;
pub mod pam;
pub mod relay;
#[allow(unsafe_code)] // bindgen's extern declarations
mod sys;
pub mod transport;

use ffi::{entry, Hook, RawArgv, RawPamHandle};
use options::{FailMode, Options};
use outcome::{code_name, End};
use pam::{PamHandle, Priority};
use std::os::raw::c_int;
use transport::DaemonLink;

/// `pam_sm_authenticate`: parse the options, then relay one login to mfad.
pub fn authenticate<H: PamHandle>(pam: &mut H, args: &[&[u8]], silent: bool) -> c_int {
    let options = match Options::parse(args.iter().copied()) {
        Ok(options) => options,
        Err(e) => {
            pam.syslog(
                Priority::Error,
                &format!("{e}; refusing (fix the PAM configuration)"),
            );
            return End::BadOptions.pam_code(FailMode::Closed);
        }
    };
    let mfad = DaemonLink::new(&options);
    let end = relay::authenticate_with(pam, &options, silent, &mfad);
    let code = end.pam_code(options.failmode);
    if options.debug {
        pam.syslog(
            Priority::Debug,
            &format!("returning {} ({end:?})", code_name(code)),
        );
    }
    code
}

#[allow(unsafe_code)] // #[no_mangle]: the symbol libpam looks up.
#[no_mangle]
pub extern "C" fn pam_sm_authenticate(
    pamh: RawPamHandle,
    flags: c_int,
    argc: c_int,
    argv: RawArgv,
) -> c_int {
    entry(Hook::Auth, pamh, flags, argc, argv, authenticate)
}

#[allow(unsafe_code)] // #[no_mangle]: the symbol libpam looks up.
#[no_mangle]
pub extern "C" fn pam_sm_setcred(
    pamh: RawPamHandle,
    flags: c_int,
    argc: c_int,
    argv: RawArgv,
) -> c_int {
    entry(Hook::Auth, pamh, flags, argc, argv, relay::setcred)
}

#[allow(unsafe_code)] // #[no_mangle]: the symbol libpam looks up.
#[no_mangle]
pub extern "C" fn pam_sm_acct_mgmt(
    pamh: RawPamHandle,
    flags: c_int,
    argc: c_int,
    argv: RawArgv,
) -> c_int {
    entry(
        Hook::Account,
        pamh,
        flags,
        argc,
        argv,
        relay::not_auth_stack,
    )
}

#[allow(unsafe_code)] // #[no_mangle]: the symbol libpam looks up.
#[no_mangle]
pub extern "C" fn pam_sm_open_session(
    pamh: RawPamHandle,
    flags: c_int,
    argc: c_int,
    argv: RawArgv,
) -> c_int {
    entry(
        Hook::Session,
        pamh,
        flags,
        argc,
        argv,
        relay::not_auth_stack,
    )
}

#[allow(unsafe_code)] // #[no_mangle]: the symbol libpam looks up.
#[no_mangle]
pub extern "C" fn pam_sm_close_session(
    pamh: RawPamHandle,
    flags: c_int,
    argc: c_int,
    argv: RawArgv,
) -> c_int {
    entry(
        Hook::Session,
        pamh,
        flags,
        argc,
        argv,
        relay::not_auth_stack,
    )
}

#[allow(unsafe_code)] // #[no_mangle]: the symbol libpam looks up.
#[no_mangle]
pub extern "C" fn pam_sm_chauthtok(
    pamh: RawPamHandle,
    flags: c_int,
    argc: c_int,
    argv: RawArgv,
) -> c_int {
    entry(
        Hook::Password,
        pamh,
        flags,
        argc,
        argv,
        relay::not_auth_stack,
    )
}
