//! pam_mfa inside real PAM stacks, for every fault: the whole stack never
//! ends in PAM_SUCCESS because the second factor failed — except where
//! `failmode=open` asks for exactly that, and then only when mfad could not
//! be reached at all and the rest of the stack lets the user in.
//!
//! Three stacks, each with the default failmode and with `failmode=open`:
//!
//! - required:   `auth required pam_permit.so` + `auth required pam_mfa.so`
//! - sufficient: `auth sufficient pam_mfa.so` + `auth required pam_deny.so`
//! - debian:     `auth [success=1 default=ignore] pam_mfa.so` +
//!   `auth requisite pam_deny.so` + `auth required pam_permit.so`
//!   (Debian's common-auth shape)
//!
//! With the right code every stack succeeds, so a stack that can never
//! succeed would not pass this test.

use mfa_tests::daemon::DaemonConfig;
use mfa_tests::otp::{self, Totp};
use mfa_tests::pam::{
    mfa_line, rc_name, Login, PamResult, ServiceDir, LOCKED, NOT_ENROLLED, PAM_AUTHINFO_UNAVAIL,
    PAM_AUTH_ERR, PAM_CONV_ERR, PAM_MAXTRIES, PAM_SERVICE_ERR, PAM_SUCCESS,
};
use mfa_tests::probe::Enrolled;
use mfa_tests::process::run;
use mfa_tests::store;
use mfa_tests::users::{self, numbered};
use mfa_tests::World;
use std::process::Command;

/// The module's `timeout=` here: a hung mfad costs this much per login.
const TIMEOUT: &str = "timeout=2";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Stack {
    Required,
    Sufficient,
    Debian,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    Closed,
    Open,
}

const STACKS: [Stack; 3] = [Stack::Required, Stack::Sufficient, Stack::Debian];
const MODES: [Mode; 2] = [Mode::Closed, Mode::Open];

fn combinations() -> Vec<(Stack, Mode)> {
    STACKS
        .iter()
        .flat_map(|s| MODES.iter().map(move |m| (*s, *m)))
        .collect()
}

fn service(prefix: &str, stack: Stack, mode: Mode) -> String {
    format!("{prefix}-{stack:?}-{mode:?}").to_lowercase()
}

/// Write the six services `<prefix>-<stack>-<mode>`; `extra` goes on the
/// pam_mfa line after the usual options.
fn write_stacks(dir: &ServiceDir, address: &str, prefix: &str, extra: &str) {
    for (stack, mode) in combinations() {
        let failmode = match mode {
            // The default, not written: that is what most lines look like.
            Mode::Closed => "",
            Mode::Open => "failmode=open",
        };
        let options = format!("{TIMEOUT} {failmode} {extra}");
        let options = options.split_whitespace().collect::<Vec<_>>().join(" ");
        let mfa = |control: &str| mfa_line(control, address, &options);
        let lines = match stack {
            Stack::Required => vec!["auth required pam_permit.so".to_string(), mfa("required")],
            Stack::Sufficient => vec![mfa("sufficient"), "auth required pam_deny.so".into()],
            Stack::Debian => vec![
                mfa("[success=1 default=ignore]"),
                "auth requisite pam_deny.so".into(),
                "auth required pam_permit.so".into(),
            ],
        };
        dir.write(&service(prefix, stack, mode), &lines);
    }
}

/// What pam_mfa itself returns for a fault, per failmode.
#[derive(Clone, Copy, Debug)]
struct Expect {
    closed: i32,
    /// `None`: PAM_IGNORE, the rest of the stack decides.
    open: Option<i32>,
}

const UNREACHABLE: Expect = Expect {
    closed: PAM_AUTHINFO_UNAVAIL,
    open: None,
};

fn same(rc: i32) -> Expect {
    Expect {
        closed: rc,
        open: Some(rc),
    }
}

/// One fault's six results.
struct Outcome {
    fault: &'static str,
    expect: Expect,
    /// The error mfad shows, when it decides.
    says: Option<&'static str>,
    results: Vec<((Stack, Mode), PamResult)>,
}

/// Run the six services of `prefix` at once, as `user` answering `answers`.
fn run_stacks(
    world: &World,
    prefix: &str,
    user: &str,
    answers: &[&str],
) -> Vec<((Stack, Mode), PamResult)> {
    std::thread::scope(|scope| {
        let running: Vec<_> = combinations()
            .into_iter()
            .map(|(stack, mode)| {
                let login = Login::new(&service(prefix, stack, mode), user, answers);
                let dir = &world.pam;
                ((stack, mode), scope.spawn(move || login.run(dir)))
            })
            .collect();
        running
            .into_iter()
            .map(|(key, handle)| (key, handle.join().expect("a login thread panicked")))
            .collect()
    })
}

/// Every mismatch between what happened and the rules above.
fn judge(outcome: &Outcome) -> Vec<String> {
    let mut wrong = Vec::new();
    for ((stack, mode), result) in &outcome.results {
        let module = match mode {
            Mode::Closed => Some(outcome.expect.closed),
            Mode::Open => outcome.expect.open,
        };
        // Only an ignoring pam_mfa under pam_permit lets the user in.
        let may_pass = module.is_none() && *stack == Stack::Required;
        let expected = match (stack, module) {
            (_, None) if may_pass => PAM_SUCCESS,
            // The module's failure is the stack's answer.
            (Stack::Required, Some(rc)) => rc,
            // pam_deny has the last word.
            _ => PAM_AUTH_ERR,
        };
        if result.rc != expected {
            wrong.push(format!(
                "{}: {stack:?} stack, failmode {mode:?}: {} (expected {}); messages {:?}",
                outcome.fault,
                result.rc_name,
                rc_name(expected),
                result.messages
            ));
        }
        if let Some(text) = outcome.says {
            if !result.errors().contains(&text) {
                wrong.push(format!(
                    "{}: {stack:?} stack, failmode {mode:?}: mfad did not say {text:?}: {:?}",
                    outcome.fault, result.messages
                ));
            }
        }
        if result.rc == PAM_SUCCESS && !may_pass {
            wrong.push(format!(
                "{}: {stack:?} stack, failmode {mode:?} LET THE USER IN",
                outcome.fault
            ));
        }
    }
    wrong
}

fn hotp_next(factor: &Enrolled, counter: &mut u64) -> String {
    let code = factor.hotp_code(*counter);
    *counter += 1;
    code
}

#[test]
fn no_fault_in_any_stack_ends_in_success() {
    let mut world = World::with_config(&DaemonConfig {
        max_tries: 2,
        lockout_max_failures: 20,
        lockout_unlock_after: 0,
        ..DaemonConfig::default()
    });
    let address = world.address().to_string();
    write_stacks(&world.pam, &address, "ok", "");
    write_stacks(&world.pam, &address, "badopt", "nullok");
    let alice = world.enrol_hotp(&users::named("alice"), 6);
    let bob = world.enrol_totp(&users::named("bob"), &Totp::default_params());
    let carol = world.enrol_totp(&users::named("carol"), &Totp::default_params());
    let dave = world.enrol_totp(&users::named("dave"), &Totp::default_params());
    let demo = world.enrol_totp(&users::named("demo"), &Totp::default_params());
    let mut counter = alice.next_counter();
    let mut outcomes = Vec::new();

    // The control: the right code passes every stack, in either failmode.
    let mut control = Vec::new();
    for (stack, mode) in combinations() {
        let code = hotp_next(&alice, &mut counter);
        let result = Login::new(&service("ok", stack, mode), "alice", &[&code]).run(&world.pam);
        control.push(((stack, mode), result));
    }
    for ((stack, mode), result) in &control {
        assert_eq!(
            result.rc, PAM_SUCCESS,
            "right code refused by the {stack:?} stack, failmode {mode:?}: {result:#?}"
        );
    }

    // mfad refuses the code or the user.
    let wrong = otp::wrong_code_avoiding(
        6,
        &[
            bob.totp().code(-1),
            bob.totp().code(0),
            bob.totp().code(1),
            bob.totp().code(2),
        ],
    );
    outcomes.push(Outcome {
        fault: "wrong code, then the user gives up",
        says: None,
        expect: same(PAM_CONV_ERR),
        results: run_stacks(&world, "ok", "bob", &[&wrong]),
    });
    let wrong = carol.totp().wrong_code(2);
    outcomes.push(Outcome {
        fault: "too many wrong codes",
        says: None,
        expect: same(PAM_MAXTRIES),
        results: run_stacks(&world, "ok", "carol", &[&wrong, &wrong]),
    });
    let wrong = dave.totp().wrong_code(2);
    for _ in 0..10 {
        Login::new(
            &service("ok", Stack::Required, Mode::Closed),
            "dave",
            &[&wrong, &wrong],
        )
        .run(&world.pam);
    }
    outcomes.push(Outcome {
        fault: "locked out (right code)",
        says: Some(LOCKED),
        expect: same(PAM_AUTH_ERR),
        results: run_stacks(&world, "ok", "dave", &[&dave.totp().code(1)]),
    });
    let stranger = numbered(1);
    outcomes.push(Outcome {
        fault: "no factor enrolled",
        says: Some(NOT_ENROLLED),
        expect: same(PAM_AUTH_ERR),
        results: run_stacks(&world, "ok", &stranger.name, &["123456"]),
    });

    // A bad option on the PAM line: refused before mfad is asked.
    let next = alice.hotp_code(counter);
    outcomes.push(Outcome {
        fault: "unknown module option",
        says: None,
        expect: same(PAM_SERVICE_ERR),
        results: run_stacks(&world, "badopt", "alice", &[&next]),
    });

    // A store error: demo's sealed secret no longer opens.
    let damage = store::open_for_damage(&world.daemon.state_dir());
    let changed = damage
        .execute("UPDATE factors SET data = x'01' WHERE user = 'demo'", [])
        .expect("damage demo's factor");
    assert_eq!(changed, 1);
    drop(damage);
    outcomes.push(Outcome {
        fault: "store error (right code)",
        says: Some("The second factor could not be checked."),
        expect: same(PAM_AUTH_ERR),
        results: run_stacks(&world, "ok", "demo", &[&demo.totp().code(1)]),
    });
    assert!(
        world.daemon.log().contains("reason=store-error"),
        "{}",
        world.daemon.log()
    );

    // mfad hung: it owns its name but answers nothing.
    world.daemon.freeze();
    let hung = run_stacks(&world, "ok", "alice", &[&next]);
    world.daemon.thaw();
    outcomes.push(Outcome {
        fault: "mfad hung (SIGSTOP)",
        says: None,
        expect: UNREACHABLE,
        results: hung,
    });

    // mfad killed while every login sits at its prompt.
    let mut pending: Vec<_> = combinations()
        .into_iter()
        .map(|(stack, mode)| {
            let mut login = Login::new(&service("ok", stack, mode), "alice", &[&next]);
            login.sync = true;
            ((stack, mode), login.spawn(&world.pam))
        })
        .collect();
    for (_, login) in pending.iter_mut() {
        assert!(login.wait_at_prompt(mfa_tests::QUICK), "no prompt");
    }
    world.daemon.kill9();
    let results = pending
        .into_iter()
        .map(|(key, mut login)| {
            login.release();
            (key, login.finish())
        })
        .collect();
    outcomes.push(Outcome {
        fault: "mfad killed mid-login",
        says: None,
        expect: same(PAM_AUTHINFO_UNAVAIL),
        results,
    });

    // mfad down: not on the bus at all.
    outcomes.push(Outcome {
        fault: "mfad down",
        says: None,
        expect: UNREACHABLE,
        results: run_stacks(&world, "ok", "alice", &[&next]),
    });

    // A bad mfad configuration: mfad refuses to start, so it is down too.
    let bad = tempfile::tempdir().expect("tempdir");
    let bad_config = bad.path().join("mfad.toml");
    let text = std::fs::read_to_string(world.daemon.config_path()).expect("config");
    std::fs::write(
        &bad_config,
        text.replace("max_tries = 2", "max_tries = \"two\""),
    )
    .expect("write the bad config");
    let (passwd, group) = world.bus.nss_files();
    let mut cmd = Command::new(mfa_tests::bins::mfad());
    cmd.env_clear()
        .arg("--config")
        .arg(&bad_config)
        .arg("--bus-address")
        .arg(&address);
    users::use_nss_wrapper(&mut cmd, &passwd, &group);
    let refused = run("mfad", &mut cmd, "", mfa_tests::QUICK);
    assert_eq!(refused.code(), Some(1), "{}", refused.describe());
    assert!(
        refused.stderr.contains(&bad_config.display().to_string())
            && refused.stderr.contains("max_tries"),
        "mfad must name the file and the key:\n{}",
        refused.describe()
    );
    outcomes.push(Outcome {
        fault: "bad mfad.toml (mfad refused to start)",
        says: None,
        expect: UNREACHABLE,
        results: run_stacks(&world, "ok", "alice", &[&next]),
    });

    let problems: Vec<String> = outcomes.iter().flat_map(judge).collect();
    assert!(
        problems.is_empty(),
        "{} problem(s):\n{}",
        problems.len(),
        problems.join("\n")
    );

    // Back up: none of that used alice's next code.
    world.daemon.restart();
    Login::new(
        &service("ok", Stack::Debian, Mode::Closed),
        "alice",
        &[&next],
    )
    .run(&world.pam)
    .assert_rc(PAM_SUCCESS);
}
