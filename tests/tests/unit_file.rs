//! The shipped systemd unit: as exposed as systemd-analyze says it is, no
//! more (issue 9: mfad reaches hidraw devices for security keys and nothing
//! else). Checked offline; no systemd needs to run.

use mfa_tests::process::run;
use std::process::Command;

/// `systemd-analyze security`'s overall exposure, ×10 (it prints 1.3).
const MOST: u32 = 15;

#[test]
fn the_unit_is_hardened_and_reaches_only_hidraw_devices() {
    let unit = mfa_tests::workspace_root().join("packaging/systemd/mfad.service");
    let text = std::fs::read_to_string(&unit).expect("unit");
    assert!(text.contains("DevicePolicy=closed"), "{text}");
    let allowed: Vec<&str> = text
        .lines()
        .filter_map(|l| l.strip_prefix("DeviceAllow="))
        .collect();
    assert_eq!(allowed, ["char-hidraw rw"], "devices mfad may open");
    let mut cmd = Command::new("systemd-analyze");
    cmd.args(["security", "--offline=yes", "--no-pager"])
        .arg(format!("--threshold={MOST}"))
        .arg(&unit);
    let out = run("systemd-analyze security", &mut cmd, "", mfa_tests::QUICK);
    let overall = out
        .stdout
        .lines()
        .find(|l| l.contains("Overall exposure level"))
        .unwrap_or_else(|| panic!("no overall exposure: {}", out.describe()));
    assert!(out.status.success(), "exposure above {MOST}/10: {overall}");
}
