//! pam_mfa.so: a thin PAM module that relays second-factor prompts from
//! mfad over D-Bus. It holds no policy and no secret: mfad drives the
//! conversation and decides; the module shows the steps, returns the
//! answers and maps the ending to a PAM code (see [`outcome`]).
//!
//! This file holds only the PAM entry points. All `unsafe` code is in
//! `ffi.rs`; the flow is in [`relay`]. The other modules are public for the
//! tests and for printing the return-code table into pam_mfa(8).
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

pub mod bus;
#[allow(unsafe_code)]
mod ffi;
pub mod options;
pub mod outcome;
pub mod relay;

use ffi::{entry, Hook, RawArgv, RawPamHandle};
use std::os::raw::c_int;

#[allow(unsafe_code)] // #[no_mangle]: the symbol libpam looks up.
#[no_mangle]
pub extern "C" fn pam_sm_authenticate(
    pamh: RawPamHandle,
    flags: c_int,
    argc: c_int,
    argv: RawArgv,
) -> c_int {
    entry(Hook::Auth, pamh, flags, argc, argv, relay::authenticate)
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
