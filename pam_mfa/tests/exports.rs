//! The built module exports the six PAM service functions and nothing else:
//! no Rust symbol of ours or of a dependency can be bound by the application
//! or by another module loaded into the same process.

use std::path::PathBuf;
use std::process::Command;

const EXPECTED: [&str; 6] = [
    "pam_sm_acct_mgmt",
    "pam_sm_authenticate",
    "pam_sm_chauthtok",
    "pam_sm_close_session",
    "pam_sm_open_session",
    "pam_sm_setcred",
];

/// The `.so` cargo built for this test run: next to the test binary in
/// `target/<profile>/deps`, or uplifted one level above it.
fn built_module() -> PathBuf {
    let exe = std::env::current_exe().expect("path of the test binary");
    let deps = exe.parent().expect("the deps directory");
    [deps, deps.parent().expect("the profile directory")]
        .iter()
        .map(|dir| dir.join("libpam_mfa.so"))
        .find(|path| path.is_file())
        .expect("libpam_mfa.so next to the test binary")
}

#[test]
fn only_pam_sm_symbols_are_exported() {
    let module = built_module();
    let output = Command::new("nm")
        .args(["-D", "--defined-only", "--format=posix"])
        .arg(&module)
        .output()
        .expect("run nm (binutils)");
    assert!(
        output.status.success(),
        "nm failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let mut exported: Vec<String> = String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|line| line.split_whitespace().next().map(str::to_string))
        .collect();
    exported.sort();
    assert_eq!(
        exported,
        EXPECTED,
        "dynamic symbols defined by {}",
        module.display()
    );
}
