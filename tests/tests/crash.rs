//! kill -9 of mfad in the middle of a stream of logins: after a restart on
//! the same state directory the store opens, no counter went back and no
//! code that was accepted before the crash is accepted again.

use mfa_tests::daemon::DaemonConfig;
use mfa_tests::otp::Totp;
use mfa_tests::pam::{PamResult, PAM_AUTHINFO_UNAVAIL, PAM_MAXTRIES, PAM_SUCCESS};
use mfa_tests::probe::{self, Enrolled};
use mfa_tests::users::numbered;
use mfa_tests::{TestUser, World};
use std::os::unix::fs::PermissionsExt;
use std::sync::mpsc;

/// Logins that must have succeeded before mfad is killed.
const SUCCESSES_BEFORE_KILL: usize = 12;
const WORKERS: u32 = 3;
const HOTP_PER_WORKER: u32 = 2;

/// One factor in the stream and where its codes stand.
struct Account {
    factor: Enrolled,
    /// HOTP: the next counter to use. TOTP: used once, then done.
    next: u64,
    done: bool,
}

impl Account {
    fn code(&self) -> String {
        match &self.factor.totp {
            Some(totp) => totp.code(1),
            None => self.factor.hotp_code(self.next),
        }
    }
}

/// What happened to one code.
struct Attempt {
    user: TestUser,
    code: String,
    rc: i32,
}

/// Log in with fresh codes, round robin, until mfad is gone. Every attempt
/// is reported as it finishes.
fn stream(world: &World, accounts: &mut [Account], report: &mpsc::Sender<Attempt>) {
    loop {
        let mut any = false;
        for account in accounts.iter_mut().filter(|a| !a.done) {
            any = true;
            let code = account.code();
            let result: PamResult = world.login(&account.factor.user, &[&code]);
            let rc = result.rc;
            let _ = report.send(Attempt {
                user: account.factor.user.clone(),
                code,
                rc,
            });
            match rc {
                PAM_SUCCESS => {}
                // Killed while this login was in flight: the code may or may
                // not have been used. Either way the next one is fresh.
                PAM_AUTHINFO_UNAVAIL => {
                    account.next += 1;
                    return;
                }
                other => panic!("a fresh code got {other}: {result:#?}"),
            }
            account.next += 1;
            if account.factor.totp.is_some() {
                account.done = true;
            }
        }
        if !any {
            return;
        }
    }
}

/// Run the stream on all accounts, kill -9 mfad after enough successes,
/// and return every attempt.
fn stream_and_kill(world: &World, accounts: &mut [Vec<Account>]) -> Vec<Attempt> {
    let (tx, rx) = mpsc::channel();
    let mut attempts = Vec::new();
    std::thread::scope(|scope| {
        for group in accounts.iter_mut() {
            let tx = tx.clone();
            scope.spawn(move || stream(world, group, &tx));
        }
        drop(tx);
        let mut successes = 0;
        while successes < SUCCESSES_BEFORE_KILL {
            let attempt = rx
                .recv_timeout(mfa_tests::QUICK)
                .expect("the stream stalled");
            successes += usize::from(attempt.rc == PAM_SUCCESS);
            attempts.push(attempt);
        }
        kill(world);
        // The workers stop on their first unavailable login.
        attempts.extend(rx.iter());
    });
    attempts
}

fn kill(world: &World) {
    // `Daemon::kill9` needs `&mut` while the workers share the world, so the
    // signal goes out here and `kill9` reaps the process afterwards.
    // SAFETY: kill(2) on mfad's pid, a child of this process not yet reaped.
    let rc = unsafe { libc::kill(world.daemon.pid() as libc::pid_t, libc::SIGKILL) };
    assert_eq!(rc, 0, "kill -9 mfad: {}", std::io::Error::last_os_error());
}

#[test]
fn kill_9_mid_stream_loses_no_replay_protection() {
    let mut world = World::with_config(&DaemonConfig {
        max_tries: 1,
        ..DaemonConfig::default()
    });
    let mut next_user = 1;
    let mut accounts: Vec<Vec<Account>> = (0..WORKERS)
        .map(|_| {
            let mut group = Vec::new();
            for _ in 0..HOTP_PER_WORKER {
                let factor = world.enrol_hotp(&numbered(next_user), 6);
                next_user += 1;
                group.push(Account {
                    next: factor.next_counter(),
                    factor,
                    done: false,
                });
            }
            let factor = world.enrol_totp(&numbered(next_user), &Totp::default_params());
            next_user += 1;
            group.push(Account {
                next: 0,
                factor,
                done: false,
            });
            group
        })
        .collect();

    let mut all_attempts = Vec::new();
    for round in 0..2 {
        let attempts = stream_and_kill(&world, &mut accounts);
        assert!(
            attempts.iter().any(|a| a.rc == PAM_AUTHINFO_UNAVAIL),
            "round {round}: no login saw mfad die"
        );
        world.daemon.kill9();
        world.daemon.restart();
        all_attempts.extend(attempts);
        // After each restart the fresh codes must work again: nothing is
        // left half-written and no counter went back so far that the
        // window would miss.
        for account in accounts
            .iter_mut()
            .flatten()
            .filter(|a| a.factor.hotp.is_some())
        {
            let code = account.code();
            let result = world.login(&account.factor.user, &[&code]);
            assert_eq!(
                result.rc, PAM_SUCCESS,
                "fresh code after restart: {result:#?}"
            );
            all_attempts.push(Attempt {
                user: account.factor.user.clone(),
                code,
                rc: PAM_SUCCESS,
            });
            account.next += 1;
        }
    }

    // Every code ever accepted is refused now.
    let accepted: Vec<&Attempt> = all_attempts
        .iter()
        .filter(|a| a.rc == PAM_SUCCESS)
        .collect();
    assert!(accepted.len() >= 2 * SUCCESSES_BEFORE_KILL);
    for attempt in &accepted {
        let replay = world.login(&attempt.user, &[&attempt.code]);
        assert_eq!(
            replay.rc, PAM_MAXTRIES,
            "{}'s code {} was accepted again after kill -9: {replay:#?}",
            attempt.user.name, attempt.code
        );
    }
    // Codes in flight at the kill were either used or not; the next one is
    // accepted in both cases, so nobody is locked out by a crash.
    for account in accounts
        .iter()
        .flatten()
        .filter(|a| a.factor.hotp.is_some())
    {
        let result = world.login(&account.factor.user, &[&account.code()]);
        result.assert_rc(PAM_SUCCESS);
    }
    let secrets: Vec<&str> = accounts
        .iter()
        .flatten()
        .map(|a| a.factor.secret.as_str())
        .collect();
    world.daemon.assert_log_free_of(&secrets);
}

#[test]
fn the_store_survives_kill_9_and_stays_private() {
    let mut world = World::start();
    let user = numbered(40);
    let enrolled = world.enrol_totp(&user, &Totp::default_params());
    let pending = probe::begin_totp(world.address(), &user, &Totp::default_params());
    world.daemon.kill9();
    world.daemon.restart();
    let factors = probe::list_factors(world.address(), &user);
    let ids: Vec<&str> = factors.iter().filter_map(|f| f["id"].as_str()).collect();
    assert!(
        ids.contains(&enrolled.id.as_str()),
        "confirmed factor lost: {factors:?}"
    );
    assert!(
        ids.contains(&pending["id"].as_str().unwrap_or("?")),
        "pending factor lost: {factors:?}"
    );

    let state = world.daemon.state_dir();
    let mode = |p: &std::path::Path| std::fs::metadata(p).map(|m| m.permissions().mode() & 0o777);
    assert_eq!(mode(&state).ok(), Some(0o700), "state dir mode");
    for entry in std::fs::read_dir(&state).expect("read state dir").flatten() {
        let path = entry.path();
        assert_eq!(
            mode(&path).ok().map(|m| m & 0o077),
            Some(0),
            "{} is readable by others",
            path.display()
        );
    }
    assert!(
        state.join("mfa.sqlite").exists(),
        "store file is not {}/mfa.sqlite",
        state.display()
    );
}

#[test]
fn sigterm_stops_mfad_cleanly_and_it_restarts_with_its_factors() {
    let mut world = World::with_config(&DaemonConfig {
        max_tries: 1,
        ..DaemonConfig::default()
    });
    let user = numbered(41);
    let hotp = world.enrol_hotp(&user, 6);
    world
        .login(&user, &[&hotp.hotp_code(hotp.next_counter())])
        .assert_rc(PAM_SUCCESS);
    // Exit status 0 within the limit, checked by `stop`.
    world.daemon.stop();
    world.daemon.restart();
    let next = hotp.next_counter() + 1;
    world
        .login(&user, &[&hotp.hotp_code(next - 1)])
        .assert_rc(PAM_MAXTRIES);
    world
        .login(&user, &[&hotp.hotp_code(next)])
        .assert_rc(PAM_SUCCESS);
}

#[test]
fn mfad_exits_when_its_bus_goes_away() {
    let bus = mfa_tests::Bus::start();
    let mut daemon = mfa_tests::Daemon::start(&bus);
    drop(bus);
    let status = daemon
        .wait_exit(mfa_tests::QUICK)
        .expect("mfad kept running without a bus");
    assert_eq!(status.code(), Some(1), "{status}\n{}", daemon.log());
    assert!(
        daemon.log().contains("lost its bus connection"),
        "{}",
        daemon.log()
    );
}
