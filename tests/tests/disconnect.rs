//! A caller that hangs up in the middle of a call changes nothing by doing
//! so: each call is applied fully (its store transaction and its audit line)
//! or not at all, mfad goes on serving everyone else, and a login whose
//! connection is gone leaves no handle anyone else can answer.
//!
//! Calls are sent as raw method calls on a root connection that is closed
//! without reading any reply. Before checking the store, mfad is stopped
//! with SIGTERM: it exits only once every call it had begun is finished, so
//! what the store holds afterwards is final.

use futures_lite::StreamExt;
use mfa_dbus::{
    FactorsProxy, LoginProxy, LoginRequest, StepKind, BUS_NAME, FACTORS_INTERFACE, LOGIN_INTERFACE,
    OBJECT_PATH,
};
use mfa_tests::daemon::DaemonConfig;
use mfa_tests::otp::{self, Totp};
use mfa_tests::pam::{PAM_MAXTRIES, PAM_SUCCESS};
use mfa_tests::probe::{self, Enrolled};
use mfa_tests::store::{self, Snapshot};
use mfa_tests::users::{self, TestUser};
use mfa_tests::World;
use serde_json::Value;
use zbus::zvariant::DynamicType;
use zbus::Connection;

/// A method call to mfad, built by hand so that nothing waits for a reply.
fn method_call<B>(interface: &str, method: &str, body: &B) -> zbus::Message
where
    B: serde::Serialize + DynamicType,
{
    zbus::Message::method_call(OBJECT_PATH, method)
        .and_then(|b| b.destination(BUS_NAME))
        .and_then(|b| b.interface(interface))
        .and_then(|b| b.build(body))
        .unwrap_or_else(|e| panic!("cannot build {interface}.{method}: {e}"))
}

/// Send `calls` on `conn`, then close it without reading any reply, and
/// wait until the bus has seen it go.
fn send_and_hang_up(world: &World, conn: Connection, calls: &[zbus::Message]) {
    let watcher = world.bus.connect();
    mfa_tests::block_on(async {
        let name = conn.unique_name().expect("a unique name").to_string();
        let dbus = zbus::fdo::DBusProxy::new(&watcher).await.expect("proxy");
        let mut changes = dbus
            .receive_name_owner_changed_with_args(&[(0, name.as_str())])
            .await
            .expect("subscribe");
        for call in calls {
            conn.send(call).await.expect("send a call");
        }
        conn.close().await.expect("hang up");
        let gone = async {
            while let Some(change) = changes.next().await {
                if change
                    .args()
                    .map(|a| a.new_owner().is_none())
                    .unwrap_or(false)
                {
                    return;
                }
            }
        };
        tokio::time::timeout(mfa_tests::QUICK, gone)
            .await
            .expect("the bus never saw the connection go");
    });
}

fn count_lines(log: &str, parts: &[&str]) -> usize {
    log.lines()
        .filter(|l| parts.iter().all(|p| l.contains(p)))
        .count()
}

/// Everything the calls of one test touch.
struct Scene {
    root: TestUser,
    /// root's factor that stays, so root can log in with recovery codes.
    keep: Enrolled,
    /// A pending HOTP enrolment of root and the code that confirms it.
    pending: String,
    confirm_code: String,
    /// The counter mfad offered the pending enrolment at.
    start: u64,
    /// root's confirmed factor that RemoveFactor targets.
    doomed: Enrolled,
    /// root's current batch of recovery codes.
    old_codes: Vec<String>,
    /// alice's TOTP factor, the step of the code a login will answer with.
    alice: Enrolled,
    step: u64,
}

fn scene(world: &World) -> Scene {
    let root = users::root();
    let keep = world.enrol_totp(&root, &Totp::default_params());
    let doomed = world.enrol_hotp(&root, 6);
    let secret = otp::random_secret(20);
    let offer = probe::call(
        world.address(),
        &root,
        &["begin", "hotp", "pending", "--secret", &secret],
    )
    .ok();
    let pending = offer["id"].as_str().expect("id").to_string();
    let counter = offer["counter"].as_u64().expect("counter");
    let confirm_code = otp::oath_hotp(&secret, counter, 6);
    let old_codes = world.recovery_codes(&root);
    let alice = world.enrol_totp(&users::named("alice"), &Totp::default_params());
    let step = alice.totp().step_at(otp::now()) + 1;
    Scene {
        root,
        keep,
        pending,
        confirm_code,
        start: counter,
        doomed,
        old_codes,
        alice,
        step,
    }
}

/// Start a login for alice on a new connection; its handle.
fn start_login(conn: &Connection) -> String {
    mfa_tests::block_on(async {
        let login = LoginProxy::new(conn).await.expect("proxy");
        let request = LoginRequest {
            user: "alice".into(),
            service: "disconnect-test".into(),
            ..Default::default()
        };
        let (handle, step) = login.start(&request).await.expect("start");
        assert_eq!(step.kind, StepKind::PromptEchoOff);
        handle
    })
}

/// The orphaned calls: confirm the pending enrolment, remove a factor, make
/// new recovery codes, answer alice's login with the right code.
fn orphan_calls(scene: &Scene, handle: &str) -> Vec<(&'static str, zbus::Message)> {
    let code = scene.alice.totp().code_for_step(scene.step);
    vec![
        (
            "confirm",
            method_call(
                FACTORS_INTERFACE,
                "ConfirmEnrolment",
                &(scene.pending.as_str(), scene.confirm_code.as_str()),
            ),
        ),
        (
            "remove",
            method_call(
                FACTORS_INTERFACE,
                "RemoveFactor",
                &(scene.doomed.id.as_str(),),
            ),
        ),
        (
            "recovery",
            method_call(FACTORS_INTERFACE, "GenerateRecoveryCodes", &()),
        ),
        (
            "answer",
            method_call(LOGIN_INTERFACE, "Answer", &(handle, code.as_str())),
        ),
    ]
}

/// Which of the orphaned calls took effect, checked for being all or
/// nothing against the store and mfad's audit trail; then the store is
/// used again to show it is consistent with that.
struct Applied {
    confirm: bool,
    remove: bool,
    recovery: bool,
    answer: bool,
}

fn check_all_or_nothing(world: &World, scene: &Scene, snap: &Snapshot) -> Applied {
    let log = world.daemon.log();
    let root = scene.root.name.as_str();

    // ConfirmEnrolment: confirmed with its counter moved on, or still
    // pending with its counter untouched.
    let confirmed = snap.confirmed.get(&scene.pending).copied();
    let counter = snap.counters.get(&scene.pending).copied();
    let confirm = match (confirmed, counter) {
        (Some(true), Some(c)) if c == scene.start + 1 => true,
        (Some(false), Some(c)) if c == scene.start => false,
        other => panic!("the pending enrolment is half confirmed: {other:?}"),
    };
    let logged = count_lines(&log, &["factors confirm ", &scene.pending]);
    assert_eq!(
        logged,
        usize::from(confirm),
        "store and audit disagree:\n{log}"
    );

    // RemoveFactor: there or gone, and logged only if gone.
    let remove = !snap.counters.contains_key(&scene.doomed.id);
    let logged = count_lines(&log, &["factors remove ", &scene.doomed.id]);
    assert_eq!(
        logged,
        usize::from(remove),
        "store and audit disagree:\n{log}"
    );

    // GenerateRecoveryCodes: one whole batch, old or new, never a mix.
    assert_eq!(snap.recovery_rows.get(root), Some(&10), "{snap:#?}");
    assert_eq!(snap.unused_recovery(root), 10, "{snap:#?}");
    let batches = count_lines(&log, &["factors recovery-codes ", "user=root"]);
    let recovery = match batches {
        1 => false,
        2 => true,
        n => panic!("{n} batches logged:\n{log}"),
    };

    // Answer: the code used (counter past its step, "allow" logged) or not.
    let moved = snap.counter(&scene.alice.id) > scene.step;
    let allowed = count_lines(&log, &["login allow ", "user=alice"]);
    assert_eq!(
        allowed,
        usize::from(moved),
        "store and audit disagree:\n{log}"
    );

    Applied {
        confirm,
        remove,
        recovery,
        answer: moved,
    }
}

/// Use the store after the fact, expecting what `applied` says happened.
fn use_afterwards(world: &World, scene: &Scene, applied: &Applied) {
    let confirm = probe::call(
        world.address(),
        &scene.root,
        &["confirm", &scene.pending, &scene.confirm_code],
    );
    match applied.confirm {
        true => assert_eq!(confirm.err_name(), "org.pam_mfa.Error.NotFound"),
        false => assert_eq!(confirm.ok()["confirmed"], Value::Bool(true)),
    }
    let ids: Vec<String> = probe::list_factors(world.address(), &scene.root)
        .iter()
        .filter_map(|f| f["id"].as_str().map(String::from))
        .collect();
    assert_eq!(ids.contains(&scene.doomed.id), !applied.remove, "{ids:?}");
    assert!(ids.contains(&scene.keep.id), "{ids:?}");
    let old = world.login(&scene.root, &[&scene.old_codes[0]]);
    match applied.recovery {
        true => assert_ne!(old.rc, PAM_SUCCESS, "{old:#?}"),
        false => {
            old.assert_rc(PAM_SUCCESS);
            assert!(
                old.infos().iter().any(|t| t.contains("; 9 left")),
                "{old:#?}"
            );
        }
    }
    let code = scene.alice.totp().code_for_step(scene.step);
    let alice = users::named("alice");
    let login = world.login(&alice, &[&code]);
    match applied.answer {
        true => login.assert_rc(PAM_MAXTRIES),
        false => login.assert_rc(PAM_SUCCESS),
    };
}

/// Others are served while (and after) callers hang up.
fn still_serves(world: &World) {
    let conn = world.bus.connect();
    let factors = mfa_tests::block_on(async {
        let proxy = FactorsProxy::new(&conn).await.expect("proxy");
        proxy.list_factors().await
    })
    .expect("mfad stopped serving after a caller hung up");
    assert!(!factors.is_empty());
    let bob = users::named("bob");
    let totp = Totp::default_params();
    world.enrol_totp(&bob, &totp);
    world.login(&bob, &[&totp.code(1)]).assert_rc(PAM_SUCCESS);
}

#[test]
fn calls_from_a_caller_gone_before_mfad_could_identify_it_change_nothing() {
    let mut world = World::with_config(&DaemonConfig {
        max_tries: 1,
        ..DaemonConfig::default()
    });
    let scene = scene(&world);
    let login_conn = world.bus.connect();
    let handle = start_login(&login_conn);
    // mfad is frozen while the calls go out and their callers hang up.
    world.daemon.freeze();
    let mut answer = Vec::new();
    let mut factors = Vec::new();
    for (what, call) in orphan_calls(&scene, &handle) {
        match what {
            "answer" => answer.push(call),
            _ => factors.push(call),
        }
    }
    // The factor calls come from a connection mfad never heard from: when
    // it reads them the bus no longer knows their sender, so mfad cannot
    // tell who called and must refuse them all.
    send_and_hang_up(&world, world.bus.connect(), &factors);
    // The answer comes from the login's own connection, whose uid mfad
    // already knows: applied or not, but never in part.
    send_and_hang_up(&world, login_conn, &answer);
    world.daemon.thaw();
    still_serves(&world);
    world.daemon.stop();
    let snap = store::snapshot(&world.daemon.state_dir());
    world.daemon.restart();
    let applied = check_all_or_nothing(&world, &scene, &snap);
    assert!(
        !applied.confirm && !applied.remove && !applied.recovery,
        "a call from a caller mfad could not identify took effect"
    );
    use_afterwards(&world, &scene, &applied);
}

#[test]
fn a_caller_hanging_up_mid_call_gets_all_or_nothing() {
    let mut world = World::with_config(&DaemonConfig {
        max_tries: 1,
        ..DaemonConfig::default()
    });
    let scene = scene(&world);
    // One connection per call, each closed right after its call went out:
    // mfad reads the call before or after the hang-up, and may be anywhere
    // in it (ten slow hashes for the recovery codes) when it notices.
    let login_conn = world.bus.connect();
    let handle = start_login(&login_conn);
    let mut login_conn = Some(login_conn);
    for (what, call) in orphan_calls(&scene, &handle) {
        let conn = match what {
            "answer" => login_conn.take().expect("one answer"),
            _ => world.bus.connect(),
        };
        send_and_hang_up(&world, conn, &[call]);
    }
    still_serves(&world);
    world.daemon.stop();
    let snap = store::snapshot(&world.daemon.state_dir());
    world.daemon.restart();
    let applied = check_all_or_nothing(&world, &scene, &snap);
    use_afterwards(&world, &scene, &applied);
    eprintln!(
        "applied: confirm {} remove {} recovery {} answer {}",
        applied.confirm, applied.remove, applied.recovery, applied.answer
    );
}

#[test]
fn a_login_handle_dies_with_its_connection() {
    let world = World::with_config(&DaemonConfig {
        max_tries: 1,
        ..DaemonConfig::default()
    });
    let alice = users::named("alice");
    let totp = Totp::default_params();
    world.enrol_totp(&alice, &totp);
    let code = totp.code(1);

    // A login whose connection went away: no other connection can answer
    // it or cancel it, and its code was not used.
    let owner = world.bus.connect();
    let handle = start_login(&owner);
    send_and_hang_up(&world, owner, &[]);
    let other = world.bus.connect();
    mfa_tests::block_on(async {
        let login = LoginProxy::new(&other).await.expect("proxy");
        let stolen = login.answer(&handle, &code, 0).await;
        match stolen {
            Err(mfa_dbus::MfaError::UnknownHandle(_)) => {}
            other => panic!("an orphaned handle was answered: {other:?}"),
        }
        login.cancel(&handle).await.expect("cancel is not an error");
        let again = login.answer(&handle, &code, 0).await;
        assert!(
            matches!(again, Err(mfa_dbus::MfaError::UnknownHandle(_))),
            "{again:?}"
        );
    });

    // A real PAM application killed at the prompt: its login is simply
    // gone; the code it would have typed still works, nothing was counted.
    let mut login = world.prepare(&alice, &[&code]);
    login.sync = true;
    let mut pending = login.spawn(&world.pam);
    assert!(pending.wait_at_prompt(mfa_tests::QUICK), "no prompt");
    drop(pending); // SIGKILL, and reaped
    let snap = store::snapshot(&world.daemon.state_dir());
    assert_eq!(snap.failures("alice"), 0, "{snap:#?}");
    world.login(&alice, &[&code]).assert_rc(PAM_SUCCESS);
    world.login(&alice, &[&code]).assert_rc(PAM_MAXTRIES);
    let log = world.daemon.log();
    assert_eq!(
        count_lines(&log, &["login allow ", "user=alice"]),
        1,
        "only the last login was allowed:\n{log}"
    );
}
