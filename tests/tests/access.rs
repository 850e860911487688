//! Who may call what: the shipped bus policy is the first gate, mfad's own
//! check of the caller's uid the second. Clients run as other uids with
//! setpriv; mfad learns their uid from the bus, never from an argument.

use mfa_dbus::{LoginProxy, LoginRequest, StepKind};
use mfa_tests::bus::Policy;
use mfa_tests::daemon::{Daemon, DaemonConfig};
use mfa_tests::otp::Totp;
use mfa_tests::probe::{self, call};
use mfa_tests::users::{self, TestUser, ADMIN_GROUP};
use mfa_tests::{Bus, World};

const MFA_ACCESS_DENIED: &str = "org.pam_mfa.Error.AccessDenied";

#[test]
fn only_root_starts_anyones_login_and_a_user_only_their_own() {
    let world = World::start();
    let alice = users::named("alice");
    world.enrol_totp(&alice, &Totp::default_params());
    for user in [users::nobody(), users::named("bob")] {
        let reply = call(world.address(), &user, &["login-start", "alice"]);
        assert_eq!(
            reply.err_name(),
            MFA_ACCESS_DENIED,
            "{} started a login for alice",
            user.name
        );
    }
    for user in [users::root(), alice.clone()] {
        let step = call(world.address(), &user, &["login-start", "alice"]).ok();
        assert_eq!(
            step["kind"],
            StepKind::PromptEchoOff as u32,
            "{}",
            user.name
        );
    }
    // Hers is an unlock: audited with her uid, the service she gave not believed.
    let log = world.daemon.log();
    assert!(
        log.contains(&format!(
            "login start user=alice service=unlock class=unlock caller_uid={}",
            alice.uid
        )),
        "{log}"
    );
}

#[test]
fn mfad_itself_refuses_other_accounts_logins_when_the_bus_lets_them_through() {
    // A bus without the shipped policy: only mfad's own check is left.
    let bus = Bus::start_with(Policy::Permissive);
    let _daemon = Daemon::start(&bus);
    let alice = users::named("alice");
    probe::enrol_totp(bus.address(), &alice, &Totp::default_params());
    for user in [users::nobody(), users::named("bob")] {
        let start = call(bus.address(), &user, &["login-start", "alice"]);
        assert_eq!(
            start.err_name(),
            MFA_ACCESS_DENIED,
            "{} started a login",
            user.name
        );
        // A handle it does not hold answers nothing.
        let answer = call(
            bus.address(),
            &user,
            &["login-answer", "0123456789abcdef", "123456"],
        );
        assert_eq!(
            answer.err_name(),
            "org.pam_mfa.Error.UnknownHandle",
            "{} answered a login",
            user.name
        );
    }
    for user in [users::nobody(), users::named("bob")] {
        let admin = call(bus.address(), &user, &["admin-users"]);
        assert_eq!(
            admin.err_name(),
            MFA_ACCESS_DENIED,
            "{} listed users",
            user.name
        );
    }
}

#[test]
fn a_login_handle_works_only_on_the_connection_that_started_it() {
    let world = World::start();
    let alice = users::named("alice");
    let totp = Totp::default_params();
    world.enrol_totp(&alice, &totp);
    let conn = world.bus.connect();
    let (handle, step) = mfa_tests::block_on(async {
        let login = LoginProxy::new(&conn).await.expect("proxy");
        let request = LoginRequest {
            user: "alice".into(),
            service: "test".into(),
            ..Default::default()
        };
        login.start(&request).await.expect("start as root")
    });
    assert_eq!(step.kind, StepKind::PromptEchoOff);
    // Another root connection, the right code, the stolen handle: refused.
    let stolen = call(
        world.address(),
        &users::root(),
        &["login-answer", &handle, &totp.code(1)],
    );
    assert_eq!(stolen.err_name(), "org.pam_mfa.Error.UnknownHandle");
    // The owner can still finish it with the same code.
    let step = mfa_tests::block_on(async {
        let login = LoginProxy::new(&conn).await.expect("proxy");
        login
            .answer(&handle, &totp.code(1), 0)
            .await
            .expect("answer as owner")
    });
    assert_eq!(step.kind, StepKind::Allow);
}

/// An answer whose caller has already stopped waiting (its deadline, on
/// the machine's monotonic clock, is past) is checked against nothing: the
/// code spends nothing, the login ends audited `client-gave-up`, and the
/// same code logs in next time.
#[test]
fn an_answer_past_its_callers_deadline_spends_nothing() {
    let world = World::start();
    let alice = users::named("alice");
    let totp = Totp::default_params();
    world.enrol_totp(&alice, &totp);
    let conn = world.bus.connect();
    let code = totp.code(1);
    let step = mfa_tests::block_on(async {
        let login = LoginProxy::new(&conn).await.expect("proxy");
        let request = LoginRequest {
            user: "alice".into(),
            service: "test".into(),
            ..Default::default()
        };
        let (handle, _) = login.start(&request).await.expect("start");
        let gone = mfa_dbus::monotonic_ms() - 1;
        login.answer(&handle, &code, gone).await.expect("answer")
    });
    assert_eq!(step.kind, StepKind::Deny, "{step:?}");
    let log = world.daemon.log();
    assert!(log.contains("reason=client-gave-up"), "{log}");
    assert!(!log.contains("login allow"), "{log}");
    world
        .login(&alice, &[&code])
        .assert_rc(mfa_tests::pam::PAM_SUCCESS);
}

fn factor_ids(world: &World, user: &TestUser) -> Vec<String> {
    probe::list_factors(world.address(), user)
        .iter()
        .filter_map(|f| f["id"].as_str().map(String::from))
        .collect()
}

#[test]
fn users_see_and_remove_only_their_own_factors() {
    let world = World::start();
    let alice = users::named("alice");
    let bob = users::named("bob");
    let enrolled = world.enrol_totp(&alice, &Totp::default_params());
    let ids = |user: &TestUser| factor_ids(&world, user);
    assert_eq!(ids(&alice), vec![enrolled.id.clone()]);
    for intruder in [users::nobody(), bob.clone()] {
        assert!(
            ids(&intruder).is_empty(),
            "{} sees alice's factor",
            intruder.name
        );
        let removed = call(world.address(), &intruder, &["remove", &enrolled.id]);
        assert!(
            matches!(removed, probe::Reply::Err { .. }),
            "{} removed alice's factor",
            intruder.name
        );
    }
    // Root acting through Factors1 acts on root, not on alice.
    assert!(ids(&users::root()).is_empty());
    assert!(matches!(
        call(world.address(), &users::root(), &["remove", &enrolled.id]),
        probe::Reply::Err { .. }
    ));
    assert_eq!(
        ids(&alice),
        vec![enrolled.id.clone()],
        "alice's factor is gone"
    );
}

#[test]
fn admin_calls_need_root_or_the_admin_group() {
    let world = World::with_config(&DaemonConfig {
        admin_group: ADMIN_GROUP.into(),
        ..DaemonConfig::default()
    });
    let alice = users::named("alice");
    world.enrol_totp(&alice, &Totp::default_params());
    for user in [users::nobody(), alice.clone(), users::named("bob")] {
        for args in [
            &["admin-users"][..],
            &["admin-factors", "alice"],
            &["admin-reset", "alice"],
        ] {
            let reply = call(world.address(), &user, args);
            assert_eq!(
                reply.err_name(),
                MFA_ACCESS_DENIED,
                "{} may {args:?}",
                user.name
            );
        }
    }
    assert_eq!(
        probe::list_factors(world.address(), &alice).len(),
        1,
        "a refused reset removed factors"
    );
    // carol is in the admin group; root always may.
    for admin in [users::named("carol"), users::root()] {
        let listed = call(world.address(), &admin, &["admin-users"]).ok();
        let names: Vec<&str> = listed
            .as_array()
            .map(|a| a.iter().filter_map(|u| u["user"].as_str()).collect())
            .unwrap_or_default();
        assert_eq!(names, vec!["alice"], "{} listing", admin.name);
        let factors = call(world.address(), &admin, &["admin-factors", "alice"]).ok();
        assert_eq!(factors.as_array().map(Vec::len), Some(1));
    }
    let removed = call(
        world.address(),
        &users::named("carol"),
        &["admin-reset", "alice"],
    )
    .ok();
    assert_eq!(removed, 1);
    assert!(probe::list_factors(world.address(), &alice).is_empty());
}

#[test]
fn without_an_admin_group_only_root_administers() {
    let world = World::start();
    world.enrol_totp(&users::named("alice"), &Totp::default_params());
    let carol = call(world.address(), &users::named("carol"), &["admin-users"]);
    assert_eq!(carol.err_name(), MFA_ACCESS_DENIED);
    call(world.address(), &users::root(), &["admin-users"]).ok();
}

/// A look-alike: a real mfad, but run by an ordinary user on a bus whose
/// policy (not the shipped one) lets anyone own the name. The module must
/// refuse to believe it, even with `failmode=open`, before the user types
/// anything. (The same on the login socket: tests/login_socket.rs.)
#[test]
fn the_module_refuses_a_daemon_not_running_as_root() {
    use mfa_tests::pam::{Login, ServiceDir, PAM_AUTH_ERR};
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};

    let bus = Bus::start_with(Policy::Permissive);
    let nobody = users::nobody();
    let dir = mfa_tests::shared_tempdir("lookalike-");
    let state = dir.path().join("state");
    std::fs::DirBuilder::new()
        .mode(0o700)
        .create(&state)
        .expect("state dir");
    let c_state = std::ffi::CString::new(state.to_str().expect("utf8")).expect("path");
    // SAFETY: a valid path; chown only changes the owner of our temp dir.
    assert_eq!(
        unsafe { libc::chown(c_state.as_ptr(), nobody.uid, nobody.gid) },
        0
    );
    let config = dir.path().join("mfad.toml");
    std::fs::write(&config, DaemonConfig::default().to_toml(&state)).expect("config");
    std::fs::set_permissions(&config, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    let mut cmd = users::command_as(&nobody, &mfa_tests::bins::mfad());
    cmd.arg("--config")
        .arg(&config)
        .arg("--bus-address")
        .arg(bus.address());
    cmd.stderr(std::process::Stdio::null());
    let mut lookalike = cmd.spawn().expect("start the look-alike");
    mfa_tests::daemon::wait_for_owner(bus.address(), lookalike.id(), None, mfa_tests::QUICK)
        .expect("the look-alike owns the name");

    let pam = ServiceDir::new();
    for (service, options) in [
        ("closed", "transport=bus timeout=5"),
        ("open", "transport=bus timeout=5 failmode=open"),
    ] {
        pam.mfa(service, bus.address(), options);
        let result = Login::new(service, "alice", &["123456"]).run(&pam);
        result.assert_rc(PAM_AUTH_ERR);
        assert!(result.messages.is_empty(), "shown to the user: {result:#?}");
    }
    let _ = lookalike.kill();
    let _ = lookalike.wait();
}
