//! Generates the libpam bindings from the installed headers and restricts the
//! module's exported symbols to the `pam_sm_*` entry points.

use std::env;
use std::path::PathBuf;

/// The PAM headers a module includes.
const HEADERS: &str = "\
#include <security/pam_appl.h>
#include <security/pam_modules.h>
#include <security/pam_ext.h>
";

/// libpam functions the module calls. `pam_start_confdir`, `pam_set_item`,
/// `pam_putenv` and `pam_end` are only used by the unit tests of
/// `src/ffi.rs`, which drive the wrappers through a real PAM handle.
const FUNCTIONS: &[&str] = &[
    "pam_get_item",
    "pam_get_user",
    "pam_getenv",
    "pam_fail_delay",
    "pam_start_confdir",
    "pam_set_item",
    "pam_putenv",
    "pam_end",
];

const TYPES: &[&str] = &["pam_handle_t", "pam_conv", "pam_message", "pam_response"];

/// Return codes, item types, message styles and flags the module uses.
const CONSTANTS: &[&str] = &[
    "PAM_SUCCESS",
    "PAM_SERVICE_ERR",
    "PAM_SYSTEM_ERR",
    "PAM_AUTH_ERR",
    "PAM_USER_UNKNOWN",
    "PAM_MAXTRIES",
    "PAM_AUTHINFO_UNAVAIL",
    "PAM_CONV_ERR",
    "PAM_IGNORE",
    "PAM_SERVICE",
    "PAM_USER",
    "PAM_TTY",
    "PAM_RHOST",
    "PAM_CONV",
    "PAM_RUSER",
    "PAM_PROMPT_ECHO_OFF",
    "PAM_PROMPT_ECHO_ON",
    "PAM_ERROR_MSG",
    "PAM_TEXT_INFO",
    "PAM_SILENT",
];

fn main() {
    let manifest_dir = PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").expect("set by cargo"));
    let out_dir = PathBuf::from(env::var_os("OUT_DIR").expect("set by cargo"));

    let mut builder = bindgen::Builder::default()
        .header_contents("pam_mfa_bindings.h", HEADERS)
        // PAM's return codes, items and flags are C `int`s.
        .default_macro_constant_type(bindgen::MacroTypeVariation::Signed)
        .parse_callbacks(Box::new(bindgen::CargoCallbacks::new()));
    for f in FUNCTIONS {
        builder = builder.allowlist_function(f);
    }
    for t in TYPES {
        builder = builder.allowlist_type(t);
    }
    for c in CONSTANTS {
        builder = builder.allowlist_var(c);
    }
    builder
        .generate()
        .expect("generate libpam bindings (needs libpam0g-dev and libclang-dev)")
        .write_to_file(out_dir.join("pam_sys.rs"))
        .expect("write libpam bindings");

    println!("cargo:rustc-link-lib=pam");

    // Export only the pam_sm_* entry points from the .so.
    let version_script = manifest_dir.join("pam_mfa.map");
    println!("cargo:rerun-if-changed={}", version_script.display());
    println!("cargo:rerun-if-changed=build.rs");
    println!(
        "cargo:rustc-cdylib-link-arg=-Wl,--version-script={}",
        version_script.display()
    );
}
