//! The bottom layer: libpam's C interface, bindgen's output for
//! `<security/pam_{appl,modules,ext}.h>`, restricted to what `build.rs`
//! allowlists. Only `ffi.rs` calls into it; the return codes are shared.

#![allow(
    non_upper_case_globals,
    non_camel_case_types,
    non_snake_case,
    dead_code
)]

include!(concat!(env!("OUT_DIR"), "/pam_sys.rs"));
