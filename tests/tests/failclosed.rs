//! When mfad cannot decide, the login fails — within the module's timeout,
//! without leaving threads behind — unless the PAM line explicitly says
//! `failmode=open`, and even then only before mfad has shown a prompt.

use mfa_tests::daemon::Daemon;
use mfa_tests::otp::Totp;
use mfa_tests::pam::{
    self, mfa_line, Login, PamResult, ServiceDir, PAM_AUTHINFO_UNAVAIL, PAM_CRED_INSUFFICIENT,
    PAM_MAXTRIES, PAM_SERVICE_ERR, PAM_SUCCESS, PROMPT,
};
use mfa_tests::users;
use mfa_tests::world;
use mfa_tests::{Bus, World};
use std::time::Duration;

/// The module's `timeout=` in these tests, and what a slow machine may add.
const TIMEOUT: Duration = Duration::from_secs(2);
const MARGIN: Duration = Duration::from_secs(3);

fn unavailable_in_time(result: &PamResult) {
    result.assert_rc(PAM_AUTHINFO_UNAVAIL);
    assert!(
        result.auth_time() < TIMEOUT + MARGIN,
        "took {:?} with timeout={TIMEOUT:?}",
        result.auth_time()
    );
    assert!(result.prompts().is_empty(), "{result:#?}");
    assert_eq!(
        result.threads_before, result.threads_after,
        "module left a thread behind"
    );
}

/// A stack that tells PAM_IGNORE apart from everything else: an ignoring
/// pam_mfa falls through to pam_debug's distinctive PAM_CRED_INSUFFICIENT;
/// success ends the stack; any failure ends it with pam_mfa's own code.
fn ignore_revealing_stack(dir: &ServiceDir, name: &str, address: &str, options: &str) {
    dir.write(
        name,
        &[
            mfa_line("[success=done ignore=ignore default=die]", address, options),
            "auth required pam_debug.so auth=cred_insufficient".into(),
        ],
    );
}

#[test]
fn bus_up_but_no_mfad_fails_closed() {
    let bus = Bus::start();
    let dir = ServiceDir::new();
    dir.mfa("svc", bus.address(), "timeout=2");
    unavailable_in_time(&pam::login(&dir, "svc", "alice", &["123456"]));
}

#[test]
fn no_bus_at_all_fails_closed() {
    let dir = ServiceDir::new();
    let missing = dir.path().join("no-bus-here");
    dir.mfa(
        "svc",
        &format!("unix:path={}", missing.display()),
        "timeout=2",
    );
    unavailable_in_time(&pam::login(&dir, "svc", "alice", &["123456"]));
}

#[test]
fn a_bus_or_socket_that_never_answers_fails_closed_after_the_timeout() {
    // A socket that accepts connections (the kernel does, from the backlog)
    // and never says a word: only the module's timeout can end the login,
    // whether it is taken for the bus or for mfad's login socket.
    use std::os::unix::fs::PermissionsExt;
    let dir = ServiceDir::new();
    let socket = dir.path().join("silent");
    let _listener = std::os::unix::net::UnixListener::bind(&socket).expect("bind");
    std::fs::set_permissions(&socket, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    let bus = format!("unix:path={}", socket.display());
    for transport in ["transport=bus", "transport=socket"] {
        let options = format!("{transport} timeout=2");
        dir.write(
            "svc",
            &[pam::mfa_line_with("required", &bus, &socket, &options)],
        );
        let result = pam::login(&dir, "svc", "alice", &["123456"]);
        unavailable_in_time(&result);
        assert!(
            result.auth_time() >= TIMEOUT,
            "{transport}: gave up after {:?}, before its timeout",
            result.auth_time()
        );
    }
}

#[test]
fn a_frozen_mfad_fails_closed_after_the_timeout() {
    let world = World::start();
    let user = users::named("alice");
    let totp = Totp::default_params();
    world.enrol_totp(&user, &totp);
    world.pam.mfa("svc", world.address(), "timeout=2");
    world.daemon.freeze();
    let result = pam::login(&world.pam, "svc", "alice", &[&totp.code(1)]);
    world.daemon.thaw();
    unavailable_in_time(&result);
    assert!(
        result.auth_time() >= TIMEOUT,
        "gave up after {:?}",
        result.auth_time()
    );
    // Thawed, it works again.
    pam::login(&world.pam, "svc", "alice", &[&totp.code(1)]).assert_rc(PAM_SUCCESS);
}

#[test]
fn failmode_open_ignores_only_an_unreachable_mfad() {
    let bus = Bus::start();
    let dir = ServiceDir::new();
    ignore_revealing_stack(&dir, "open", bus.address(), "timeout=2 failmode=open");
    ignore_revealing_stack(&dir, "closed", bus.address(), "timeout=2 failmode=closed");
    ignore_revealing_stack(&dir, "default", bus.address(), "timeout=2");
    let open = pam::login(&dir, "open", "alice", &["123456"]);
    open.assert_rc(PAM_CRED_INSUFFICIENT);
    assert!(open.auth_time() < TIMEOUT + MARGIN);
    pam::login(&dir, "closed", "alice", &["123456"]).assert_rc(PAM_AUTHINFO_UNAVAIL);
    pam::login(&dir, "default", "alice", &["123456"]).assert_rc(PAM_AUTHINFO_UNAVAIL);

    // With mfad up, failmode=open changes nothing: refusals stay refusals.
    let daemon = Daemon::start_with(
        &bus,
        &mfa_tests::DaemonConfig {
            max_tries: 1,
            ..Default::default()
        },
    );
    let user = users::named("alice");
    let totp = Totp::default_params();
    mfa_tests::probe::enrol_totp(bus.address(), &user, &totp);
    pam::login(&dir, "open", "alice", &[&totp.wrong_code(2)]).assert_rc(PAM_MAXTRIES);
    pam::login(&dir, "open", "alice", &[&totp.code(1)]).assert_rc(PAM_SUCCESS);
    drop(daemon);
}

#[test]
fn mfad_dying_mid_login_fails_closed_even_with_failmode_open() {
    let mut world = World::start();
    let user = users::named("bob");
    let totp = Totp::default_params();
    world.enrol_totp(&user, &totp);
    ignore_revealing_stack(
        &world.pam,
        "open",
        world.address(),
        "timeout=2 failmode=open",
    );
    let mut login = Login::new("open", "bob", &[&totp.code(1)]);
    login.sync = true;
    let mut pending = login.spawn(&world.pam);
    assert!(pending.wait_at_prompt(mfa_tests::QUICK), "no prompt");
    world.daemon.kill9();
    pending.release();
    let result = pending.finish();
    result.assert_rc(PAM_AUTHINFO_UNAVAIL);
    assert_eq!(result.prompts(), vec![PROMPT]);
    assert!(result.auth_time() < mfa_tests::QUICK);
}

#[test]
fn an_unknown_module_option_refuses_the_login() {
    let world = World::start();
    let user = users::named("carol");
    let totp = Totp::default_params();
    world.enrol_totp(&user, &totp);
    for (name, options) in [
        ("unknown", "timeout=2 nullok"),
        ("typo", "timout=2"),
        ("badvalue", "timeout=0"),
        ("badmode", "failmode=maybe"),
    ] {
        world.pam.mfa(name, world.address(), options);
        let result = pam::login(&world.pam, name, "carol", &[&totp.code(1)]);
        assert_eq!(result.rc, PAM_SERVICE_ERR, "{options}: {result:#?}");
        assert!(
            result.prompts().is_empty(),
            "{options}: asked despite a bad line"
        );
        assert_eq!(result.threads_before, result.threads_after);
    }
    // The same code on a good line: the bad lines never reached mfad.
    pam::login(&world.pam, world::SERVICE, "carol", &[&totp.code(1)]).assert_rc(PAM_SUCCESS);
}

/// The module gave up on an answer (mfad frozen after the prompt, past the
/// module's timeout): when mfad gets to it, the code is checked against
/// nothing — it still works for the next login — and no "allow" is audited.
#[test]
fn an_answer_mfad_reaches_after_the_module_gave_up_spends_nothing() {
    let world = World::start();
    let user = users::named("alice");
    let totp = Totp::default_params();
    world.enrol_totp(&user, &totp);
    world.pam.mfa("svc", world.address(), "timeout=2");
    let code = totp.code(1);
    let mut login = Login::new("svc", "alice", &[]);
    login.ask = true;
    let mut pending = login.spawn(&world.pam);
    pending
        .next_prompt(mfa_tests::QUICK)
        .expect("the code prompt");
    world.daemon.freeze();
    pending.answer(&code);
    let given_up = pending.finish();
    world.daemon.thaw();
    assert_ne!(given_up.rc, PAM_SUCCESS, "{given_up:#?}");
    // mfad learns it either way: the answer's deadline passed, or the
    // module's connection closed.
    let ended = || {
        let log = world.daemon.log();
        log.contains("reason=client-gave-up") || log.contains("reason=connection-closed")
    };
    let deadline = std::time::Instant::now() + mfa_tests::QUICK;
    while !ended() {
        assert!(
            std::time::Instant::now() < deadline,
            "mfad never said the module gave up:\n{}",
            world.daemon.log()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(
        !world.daemon.log().contains("login allow"),
        "{}",
        world.daemon.log()
    );
    pam::login(&world.pam, "svc", "alice", &[&code]).assert_rc(PAM_SUCCESS);
}
