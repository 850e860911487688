//! The harness itself, checked against stock PAM modules and a bare bus, so a
//! failure elsewhere is about pam_mfa and not about the test machinery.

use mfa_tests::pam::{self, Login, ServiceDir, PAM_AUTH_ERR, PAM_SUCCESS};
use mfa_tests::probe;
use mfa_tests::users;
use mfa_tests::Bus;

#[test]
fn driver_reports_return_codes_and_every_message() {
    let dir = ServiceDir::new();
    dir.write("permit", &["auth required pam_permit.so".into()]);
    dir.write(
        "deny",
        &[
            "auth optional pam_echo.so hello from pam_echo".into(),
            "auth required pam_deny.so".into(),
        ],
    );
    let ok = pam::login(&dir, "permit", "alice", &[]);
    ok.assert_rc(PAM_SUCCESS);
    assert!(ok.messages.is_empty());
    assert_eq!(ok.threads_before, ok.threads_after);

    let denied = pam::login(&dir, "deny", "alice", &[]);
    denied.assert_rc(PAM_AUTH_ERR);
    assert_eq!(denied.infos(), vec!["hello from pam_echo"]);
    // A service that does not exist falls back to `other`, which denies.
    assert_ne!(
        pam::login(&dir, "no-such-service", "alice", &[]).rc,
        PAM_SUCCESS
    );
}

#[test]
fn driver_answers_prompts_in_order() {
    // pam_matrix (from pam_wrapper) asks for a password and checks it
    // against its own file: a real prompt and a real answer.
    let matrix = users::find_lib("pam_wrapper/pam_matrix.so", "libpam-wrapper");
    let dir = ServiceDir::new();
    let passdb = dir.path().join("passdb");
    std::fs::write(&passdb, "alice:s3cret:matrix\n").expect("write passdb");
    dir.write(
        "matrix",
        &[format!(
            "auth required {} passdb={}",
            matrix.display(),
            passdb.display()
        )],
    );
    let ok = pam::login(&dir, "matrix", "alice", &["s3cret"]);
    ok.assert_rc(PAM_SUCCESS);
    assert_eq!(ok.messages.len(), 1, "{ok:?}");
    assert_eq!(ok.messages[0].style, "prompt_echo_off");
    assert_eq!(ok.unused_answers, 0);
    pam::login(&dir, "matrix", "alice", &["wrong"]).assert_rc(PAM_AUTH_ERR);
    // No answer left: the conversation fails, which pam_matrix reports.
    assert_ne!(pam::login(&dir, "matrix", "alice", &[]).rc, PAM_SUCCESS);
}

#[test]
fn sync_mode_holds_the_driver_at_its_prompt() {
    let matrix = users::find_lib("pam_wrapper/pam_matrix.so", "libpam-wrapper");
    let dir = ServiceDir::new();
    let passdb = dir.path().join("passdb");
    std::fs::write(&passdb, "alice:pw:matrix\n").expect("write passdb");
    dir.write(
        "matrix",
        &[format!(
            "auth required {} passdb={}",
            matrix.display(),
            passdb.display()
        )],
    );
    let mut login = Login::new("matrix", "alice", &["pw"]);
    login.sync = true;
    let mut pending = login.spawn(&dir);
    assert!(
        pending.wait_at_prompt(mfa_tests::QUICK),
        "driver never reached the prompt"
    );
    pending.release();
    pending.finish().assert_rc(PAM_SUCCESS);
}

#[test]
fn pamtester_runs_under_pam_wrapper() {
    let dir = ServiceDir::new();
    dir.write("permit", &["auth required pam_permit.so".into()]);
    dir.write("deny", &["auth required pam_deny.so".into()]);
    let ok = pam::pamtester(&dir, "permit", "alice", "");
    ok.assert_success("pamtester permit");
    assert!(
        ok.stdout.contains("successfully authenticated"),
        "{}",
        ok.describe()
    );
    let denied = pam::pamtester(&dir, "deny", "alice", "");
    assert!(
        !denied.status.success(),
        "pam_deny passed:\n{}",
        denied.describe()
    );
}

#[test]
fn bus_without_mfad_reports_service_unknown() {
    let bus = Bus::start();
    let reply = probe::call(bus.address(), &users::root(), &["list"]);
    assert_eq!(
        reply.err_name(),
        "org.freedesktop.DBus.Error.ServiceUnknown"
    );
}

#[test]
fn shipped_policy_lets_only_root_own_the_name() {
    let bus = Bus::start();
    let as_nobody = probe::call(bus.address(), &users::nobody(), &["own-name"]);
    assert_eq!(
        as_nobody.err_name(),
        "org.freedesktop.DBus.Error.AccessDenied",
        "{as_nobody:?}\n{}",
        bus.log()
    );
    let as_alice = probe::call(bus.address(), &users::named("alice"), &["own-name"]);
    assert_eq!(
        as_alice.err_name(),
        "org.freedesktop.DBus.Error.AccessDenied"
    );
    probe::call(bus.address(), &users::root(), &["own-name"]).ok();
}

#[test]
fn otp_codes_come_from_oathtool() {
    let totp = mfa_tests::otp::Totp::default_params();
    let now = totp.code(0);
    assert_eq!(now.len(), 6);
    assert_ne!(totp.wrong_code(2), now);
}
