//! kill -9 torture: several threads run real PAM logins without pause —
//! right, replayed and wrong codes, TOTP and HOTP factors, recovery codes —
//! while mfad is killed with SIGKILL again and again and restarted on the
//! same state directory.
//!
//! The kill schedule is random (seeded, so a failure can be replayed) and
//! counted in finished logins, so every kill lands while other logins are
//! in flight. After each kill, before the restart, the store is read
//! directly (a [`Snapshot`]): that is the ground truth the PAM results are
//! checked against.
//!
//! Checked: the store opens after every kill; no counter ever went back; no
//! code (TOTP step, HOTP counter, recovery code) was accepted twice over the
//! whole run; every accepted code was on disk at the next kill; a failure
//! count never went down without a success; afterwards replays fail, the
//! next code in sequence works, and `mfactl users` reads the store.

use mfa_tests::daemon::{Daemon, DaemonConfig};
use mfa_tests::otp::{self, Totp};
use mfa_tests::pam::{self, ServiceDir, PAM_AUTHINFO_UNAVAIL, PAM_MAXTRIES, PAM_SUCCESS};
use mfa_tests::probe::Enrolled;
use mfa_tests::process::run;
use mfa_tests::store::{self, Snapshot};
use mfa_tests::users::{self, command_as, numbered, TestUser};
use mfa_tests::world::SERVICE;
use mfa_tests::World;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Condvar, Mutex};
use std::time::{Duration, Instant};

/// How many times mfad is killed.
const KILLS: u64 = 20;
/// Threads running logins at the same time.
const WORKERS: usize = 4;
/// The seed of every random choice (kill schedule and what each login tries).
const SEED: u64 = 0x6b69_6c6c_2d39;
/// Recovery codes a run may use; the rest are for the checks at the end.
const RECOVERY_CODES_TO_USE: usize = 5;
/// Wrong codes per guessing account (below the lockout threshold).
const GUESSES: u32 = 40;
const HOTP_WINDOW: u64 = 10;

/// SplitMix64: small, seeded, good enough to pick what to do next.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    /// In `low..high`.
    fn range(&mut self, low: u64, high: u64) -> u64 {
        low + self.next() % (high - low)
    }
    fn percent(&mut self) -> u64 {
        self.range(0, 100)
    }
}

/// Which mfad instance serves logins: even = instance `value / 2` is up,
/// odd = being killed and restarted. Workers wait on it instead of sleeping.
struct Epoch {
    value: Mutex<u64>,
    changed: Condvar,
}

impl Epoch {
    fn get(&self) -> u64 {
        *self.value.lock().unwrap_or_else(|p| p.into_inner())
    }
    fn set(&self, value: u64) {
        *self.value.lock().unwrap_or_else(|p| p.into_inner()) = value;
        self.changed.notify_all();
    }
    /// Wait until an instance is up whose epoch is at least `at_least`.
    fn wait_up(&self, at_least: u64) -> u64 {
        let deadline = Instant::now() + mfa_tests::QUICK;
        let mut value = self.value.lock().unwrap_or_else(|p| p.into_inner());
        while *value % 2 == 1 || *value < at_least {
            let left = deadline
                .checked_duration_since(Instant::now())
                .unwrap_or_else(|| panic!("mfad not back (epoch {}) in time", *value));
            value = self
                .changed
                .wait_timeout(value, left)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
        *value
    }
}

/// What kind of factor an account uses, and where its codes stand. Each
/// account belongs to one worker, so this state is never shared.
enum Kind {
    Hotp {
        /// The counter of the next fresh code.
        next: u64,
        /// Counters accepted, in order.
        accepted: Vec<u64>,
        codes: HashMap<u64, String>,
    },
    Totp {
        /// The highest step accepted.
        last: Option<u64>,
    },
    /// A TOTP user logging in with recovery codes only.
    Recovery {
        codes: Vec<String>,
        /// Codes before this one are used.
        next: usize,
        /// The last login with `codes[next]` was cut short by a kill.
        uncertain: bool,
    },
    /// Wrong HOTP codes only: its failure count may never go down.
    Guesser { wrong: String, made: u32 },
}

struct Account {
    factor: Enrolled,
    kind: Kind,
}

impl Account {
    fn user(&self) -> &TestUser {
        &self.factor.user
    }
}

fn hotp_code(factor: &Enrolled, codes: &mut HashMap<u64, String>, counter: u64) -> String {
    codes
        .entry(counter)
        .or_insert_with(|| factor.hotp_code(counter))
        .clone()
}

/// What a login tried.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Try {
    /// The HOTP code for this counter, never accepted before as far as the
    /// worker knows.
    HotpFresh(u64),
    /// A HOTP counter accepted before.
    HotpReplay(u64),
    /// The TOTP code of this step.
    Totp(u64),
    /// Recovery code number `n` of the batch.
    Recovery(usize),
    /// A code valid for no counter or step within reach.
    Wrong,
}

#[derive(Debug)]
struct Attempt {
    account: usize,
    tried: Try,
    rc: i32,
    texts: Vec<String>,
    /// Epochs when the login started and when it ended.
    start: u64,
    end: u64,
}

/// One worker: logins on its own accounts until told to stop.
fn worker(
    pam: &ServiceDir,
    accounts: &mut [(usize, Account)],
    seed: u64,
    epoch: &Epoch,
    stop: &AtomicBool,
    report: mpsc::Sender<Attempt>,
) {
    let mut rng = Rng(seed);
    while !stop.load(Ordering::Relaxed) {
        let start = epoch.wait_up(0);
        let pick = rng.range(0, accounts.len() as u64) as usize;
        let (index, account) = &mut accounts[pick];
        let (tried, code) = choose(account, &mut rng);
        let Some(code) = code else { continue };
        let result = pam::login(pam, SERVICE, &account.user().name, &[&code]);
        let end = epoch.get();
        settle(account, &tried, result.rc);
        let texts = result.messages.iter().map(|m| m.text.clone()).collect();
        let rc = result.rc;
        if report
            .send(Attempt {
                account: *index,
                tried,
                rc,
                texts,
                start,
                end,
            })
            .is_err()
        {
            return;
        }
        if rc == PAM_AUTHINFO_UNAVAIL {
            // mfad died under this login: go on once the next one is up.
            epoch.wait_up(start + 1);
        }
    }
}

/// The next code to try on `account` (`None`: nothing left to try).
fn choose(account: &mut Account, rng: &mut Rng) -> (Try, Option<String>) {
    let roll = rng.percent();
    let factor = &account.factor;
    match &mut account.kind {
        Kind::Hotp {
            next,
            accepted,
            codes,
        } => {
            if roll < 15 && !accepted.is_empty() {
                let counter = accepted[rng.range(0, accepted.len() as u64) as usize];
                let code = hotp_code(factor, codes, counter);
                (Try::HotpReplay(counter), Some(code))
            } else if roll < 30 {
                // Valid for no counter mfad could accept now or soon.
                let reach: Vec<String> = (next.saturating_sub(1)..=*next + HOTP_WINDOW + 2)
                    .map(|c| hotp_code(factor, codes, c))
                    .collect();
                (Try::Wrong, Some(otp::wrong_code_avoiding(6, &reach)))
            } else {
                let code = hotp_code(factor, codes, *next);
                (Try::HotpFresh(*next), Some(code))
            }
        }
        Kind::Totp { last } => {
            let totp = factor.totp();
            if roll < 20 {
                return (Try::Wrong, Some(totp.wrong_code(2)));
            }
            match *last {
                Some(step) if roll < 35 => (Try::Totp(step), Some(totp.code_for_step(step))),
                _ => {
                    // One step ahead: within mfad's skew, and never the step
                    // the enrolment was confirmed with.
                    let step = totp.step_at(otp::now()) + 1;
                    (Try::Totp(step), Some(totp.code_for_step(step)))
                }
            }
        }
        Kind::Recovery { codes, next, .. } => {
            // Recovery codes cost slow hashes: try them now and then.
            if roll >= 25 {
                return (Try::Wrong, None);
            }
            if *next > 0 && (roll < 8 || *next >= RECOVERY_CODES_TO_USE) {
                if roll >= 10 {
                    return (Try::Wrong, None);
                }
                let n = rng.range(0, *next as u64) as usize;
                (Try::Recovery(n), Some(codes[n].clone()))
            } else {
                (Try::Recovery(*next), Some(codes[*next].clone()))
            }
        }
        Kind::Guesser { wrong, made } => {
            if *made >= GUESSES {
                return (Try::Wrong, None);
            }
            *made += 1;
            (Try::Wrong, Some(wrong.clone()))
        }
    }
}

/// Move the account's state on after a login. A login cut short by the
/// kill (`PAM_AUTHINFO_UNAVAIL`) may or may not have used its code: the
/// same code is tried again, and the snapshots tell which it was.
fn settle(account: &mut Account, tried: &Try, rc: i32) {
    match (&mut account.kind, tried) {
        (Kind::Hotp { next, accepted, .. }, Try::HotpFresh(counter)) => match rc {
            PAM_SUCCESS => {
                accepted.push(*counter);
                *next = counter + 1;
            }
            // Used by a login cut short before: the next one is fresh.
            PAM_MAXTRIES => *next = counter + 1,
            _ => {}
        },
        (Kind::Hotp { next, accepted, .. }, Try::HotpReplay(counter)) if rc == PAM_SUCCESS => {
            // A bug; recorded so the checks report it.
            accepted.push(*counter);
            *next = (*next).max(counter + 1);
        }
        (Kind::Totp { last }, Try::Totp(step)) if rc == PAM_SUCCESS => {
            *last = Some(last.map_or(*step, |l| l.max(*step)));
        }
        (
            Kind::Recovery {
                next, uncertain, ..
            },
            Try::Recovery(n),
        ) if *n == *next => match rc {
            PAM_SUCCESS | PAM_MAXTRIES => {
                *next += 1;
                *uncertain = false;
            }
            _ => *uncertain = true,
        },
        _ => {}
    }
}

fn enrol_all(world: &World) -> Vec<Account> {
    let mut accounts = Vec::new();
    let mut next_user = 1;
    let mut user = || {
        next_user += 1;
        numbered(next_user - 1)
    };
    for _ in 0..4 {
        let factor = world.enrol_hotp(&user(), 6);
        accounts.push(Account {
            kind: Kind::Hotp {
                next: factor.next_counter(),
                accepted: Vec::new(),
                codes: HashMap::new(),
            },
            factor,
        });
    }
    for _ in 0..4 {
        let factor = world.enrol_totp(&user(), &Totp::default_params());
        accounts.push(Account {
            kind: Kind::Totp { last: None },
            factor,
        });
    }
    let holder = user();
    let factor = world.enrol_totp(&holder, &Totp::default_params());
    accounts.push(Account {
        kind: Kind::Recovery {
            codes: world.recovery_codes(&holder),
            next: 0,
            uncertain: false,
        },
        factor,
    });
    for _ in 0..2 {
        let factor = world.enrol_hotp(&user(), 6);
        let start = factor.next_counter();
        let reach: Vec<String> = (start.saturating_sub(1)..=start + HOTP_WINDOW + 2)
            .map(|c| factor.hotp_code(c))
            .collect();
        accounts.push(Account {
            kind: Kind::Guesser {
                wrong: otp::wrong_code_avoiding(6, &reach),
                made: 0,
            },
            factor,
        });
    }
    accounts
}

/// "Recovery code accepted; N left." → N.
fn recovery_left(texts: &[String]) -> Option<u32> {
    texts.iter().find_map(|t| {
        let rest = t.strip_prefix("Recovery code accepted; ")?;
        rest.split(' ').next()?.parse().ok()
    })
}

/// Run the stream with the kill schedule; returns the accounts (as they
/// stand at the end), every attempt, and the snapshot taken after each kill
/// (index 0: before the stream).
fn torture(
    pam: &ServiceDir,
    daemon: &mut Daemon,
    accounts: Vec<Account>,
) -> (Vec<Account>, Vec<Attempt>, Vec<Snapshot>) {
    let state = daemon.state_dir();
    let mut snapshots = vec![store::snapshot(&state)];
    let epoch = Epoch {
        value: Mutex::new(0),
        changed: Condvar::new(),
    };
    let stop = AtomicBool::new(false);
    let (tx, rx) = mpsc::channel();
    let mut attempts = Vec::new();
    let mut schedule = Rng(SEED);
    let mut hands: Vec<Vec<(usize, Account)>> = (0..WORKERS).map(|_| Vec::new()).collect();
    for (i, account) in accounts.into_iter().enumerate() {
        hands[i % WORKERS].push((i, account));
    }
    std::thread::scope(|scope| {
        for (w, hand) in hands.iter_mut().enumerate() {
            let tx = tx.clone();
            let (epoch, stop) = (&epoch, &stop);
            let seed = SEED ^ (w as u64 + 1).wrapping_mul(0x2545_f491_4f6c_dd1d);
            scope.spawn(move || worker(pam, hand, seed, epoch, stop, tx));
        }
        drop(tx);
        // Wait for `n` logins that mfad answered (logins cut short by the
        // last kill are reported too, but do not count).
        let answered = |attempts: &mut Vec<Attempt>, n: u64| {
            let mut seen = 0;
            while seen < n {
                let attempt = rx
                    .recv_timeout(mfa_tests::QUICK)
                    .expect("no login finished in time: the stream stalled");
                seen += u64::from(attempt.rc != PAM_AUTHINFO_UNAVAIL);
                attempts.push(attempt);
            }
        };
        for kill in 1..=KILLS {
            // Kill after a random number of answered logins, then a random
            // moment later: other logins are in flight at that point.
            answered(&mut attempts, schedule.range(3, 12));
            std::thread::sleep(Duration::from_millis(schedule.range(0, 25)));
            epoch.set(2 * kill - 1);
            daemon.kill9();
            snapshots.push(store::snapshot(&state));
            daemon.restart();
            epoch.set(2 * kill);
        }
        answered(&mut attempts, WORKERS as u64);
        stop.store(true, Ordering::Relaxed);
        // Workers finish their current login and stop.
    });
    attempts.extend(rx.try_iter());
    let mut accounts: Vec<(usize, Account)> = hands.into_iter().flatten().collect();
    accounts.sort_by_key(|(i, _)| *i);
    (
        accounts.into_iter().map(|(_, a)| a).collect(),
        attempts,
        snapshots,
    )
}

/// The snapshot certainly taken before a login that started in `epoch`.
fn before(snapshots: &[Snapshot], epoch: u64) -> &Snapshot {
    &snapshots[(epoch / 2) as usize]
}

/// The snapshot certainly taken after a login that ended in `epoch`, if any.
/// (A login that ended while a kill was under way may have been served by
/// the next instance, after that kill's snapshot.)
fn after(snapshots: &[Snapshot], epoch: u64) -> Option<&Snapshot> {
    snapshots.get(epoch.div_ceil(2) as usize + 1)
}

#[test]
fn kill_9_torture_loses_no_replay_protection_and_no_failure() {
    let started = Instant::now();
    let mut world = World::with_config(&DaemonConfig {
        max_tries: 1,
        lockout_max_failures: 100,
        lockout_unlock_after: 0,
        hotp_window: HOTP_WINDOW as u32,
        ..DaemonConfig::default()
    });
    let accounts = enrol_all(&world);
    let secrets: Vec<String> = accounts.iter().map(|a| a.factor.secret.clone()).collect();
    let (accounts, attempts, mut snapshots) = torture(&world.pam, &mut world.daemon, accounts);

    // Once more at the end, so the final state is the one a crash left.
    world.daemon.kill9();
    snapshots.push(store::snapshot(&world.daemon.state_dir()));
    world.daemon.restart();
    let last = snapshots.last().expect("snapshots");

    let mut problems = Vec::new();
    let unavailable = attempts
        .iter()
        .filter(|a| a.rc == PAM_AUTHINFO_UNAVAIL)
        .count();
    let successes = attempts.iter().filter(|a| a.rc == PAM_SUCCESS).count();
    assert!(
        unavailable >= 1 && successes >= 20,
        "the torture did not torture: {} logins, {successes} accepted, {unavailable} cut by a kill",
        attempts.len()
    );

    // 1. The store's counters never went back, and recovery codes never
    //    came back, from one kill to the next.
    for pair in snapshots.windows(2) {
        for (id, counter) in &pair[0].counters {
            let now = pair[1].counters.get(id).copied();
            if now.is_none_or(|c| c < *counter) {
                problems.push(format!("factor {id}: counter {counter} went to {now:?}"));
            }
        }
        for (user, unused) in &pair[0].unused_recovery {
            if pair[1].unused_recovery(user) > *unused {
                problems.push(format!("{user}: unused recovery codes went up"));
            }
        }
    }

    // 2. Each code accepted at most once, never one the store had already
    //    used before the login began, and on disk by the next kill.
    let mut accepted: BTreeSet<(usize, String)> = BTreeSet::new();
    let mut failures_seen: BTreeMap<usize, (u32, u32)> = BTreeMap::new();
    for attempt in &attempts {
        let account = &accounts[attempt.account];
        let id = &account.factor.id;
        let user = &account.user().name;
        if let Kind::Guesser { .. } = account.kind {
            let seen = failures_seen.entry(attempt.account).or_default();
            seen.1 += 1;
            if attempt.rc == PAM_MAXTRIES {
                seen.0 += 1;
            }
        }
        match attempt.rc {
            PAM_SUCCESS | PAM_MAXTRIES | PAM_AUTHINFO_UNAVAIL => {}
            other => problems.push(format!(
                "{user}: {:?} got {} ({other}): {:?}",
                attempt.tried,
                pam::rc_name(other),
                attempt.texts
            )),
        }
        if attempt.rc != PAM_SUCCESS {
            continue;
        }
        let key = match &attempt.tried {
            Try::HotpFresh(c) | Try::HotpReplay(c) => format!("hotp {c}"),
            Try::Totp(step) => format!("totp {step}"),
            Try::Recovery(n) => format!("recovery {n}"),
            Try::Wrong => {
                problems.push(format!("{user}: a wrong code was accepted"));
                continue;
            }
        };
        if !accepted.insert((attempt.account, key.clone())) {
            problems.push(format!("{user}: {key} accepted twice"));
        }
        match &attempt.tried {
            Try::HotpFresh(c) | Try::HotpReplay(c) | Try::Totp(c) => {
                let was = before(&snapshots, attempt.start).counter(id);
                if was > *c {
                    problems.push(format!(
                        "{user}: {key} accepted although the store had moved on to {was}"
                    ));
                }
                if let Some(later) = after(&snapshots, attempt.end) {
                    if later.counter(id) <= *c {
                        problems.push(format!(
                            "{user}: {key} accepted but not on disk at the next kill"
                        ));
                    }
                }
            }
            Try::Recovery(_) => {
                let left = recovery_left(&attempt.texts);
                if let (Some(left), Some(later)) = (left, after(&snapshots, attempt.end)) {
                    if later.unused_recovery(user) > left {
                        problems.push(format!(
                            "{user}: a recovery code accepted ({left} left) but not on disk"
                        ));
                    }
                }
            }
            Try::Wrong => {}
        }
    }
    // HOTP codes accepted in increasing order per account.
    for account in &accounts {
        if let Kind::Hotp { accepted, .. } = &account.kind {
            if accepted.windows(2).any(|w| w[0] >= w[1]) {
                problems.push(format!(
                    "{}: HOTP counters accepted out of order: {accepted:?}",
                    account.user().name
                ));
            }
        }
    }

    // 3. Guessers never succeed: their failure count only goes up, by at
    //    least the failures mfad answered and at most the logins tried.
    for (index, (answered, tried)) in &failures_seen {
        let user = &accounts[*index].user().name;
        let counts: Vec<u32> = snapshots.iter().map(|s| s.failures(user)).collect();
        if counts.windows(2).any(|w| w[1] < w[0]) {
            problems.push(format!("{user}: failure count went down: {counts:?}"));
        }
        let last_count = last.failures(user);
        if last_count < *answered || last_count > *tried {
            problems.push(format!(
                "{user}: {last_count} failures recorded, {answered} answered, {tried} tried"
            ));
        }
    }
    // 4. Anyone's failure count goes down between two kills only if a
    //    right code of theirs may have been accepted in between.
    for (index, account) in accounts.iter().enumerate() {
        let user = &account.user().name;
        for k in 1..snapshots.len() {
            let (was, now) = (snapshots[k - 1].failures(user), snapshots[k].failures(user));
            if now >= was {
                continue;
            }
            // Snapshot k was taken in epoch 2k - 1.
            let (from, to) = ((2 * k as u64 - 2).saturating_sub(1), 2 * k as u64 - 1);
            let explained = attempts.iter().any(|a| {
                a.account == index
                    && a.tried != Try::Wrong
                    && (a.rc == PAM_SUCCESS || a.rc == PAM_AUTHINFO_UNAVAIL)
                    && a.end >= from
                    && a.start <= to
            });
            if !explained {
                problems.push(format!(
                    "{user}: failure count went from {was} to {now} at kill {k} without a success"
                ));
            }
        }
    }
    assert!(
        problems.is_empty(),
        "{} problem(s) after {} logins and {KILLS} kills:\n{}",
        problems.len(),
        attempts.len(),
        problems.join("\n")
    );

    // 5. After it all: replays fail, the next code in sequence works.
    std::thread::scope(|scope| {
        for account in &accounts {
            let pam = &world.pam;
            scope.spawn(move || final_checks(pam, account, last));
        }
    });

    // 6. The store still serves the admin table.
    let mut cmd = command_as(&users::root(), &mfa_tests::bins::mfactl());
    cmd.args(["--bus-address", world.address(), "--json", "users"]);
    let listed = run("mfactl users", &mut cmd, "", mfa_tests::QUICK);
    listed.assert_success("mfactl users");
    for account in &accounts {
        assert!(
            listed
                .stdout
                .contains(&format!("\"{}\"", account.user().name)),
            "{} missing from mfactl users:\n{}",
            account.user().name,
            listed.describe()
        );
    }
    let secrets: Vec<&str> = secrets.iter().map(String::as_str).collect();
    world.daemon.assert_log_free_of(&secrets);
    eprintln!(
        "torture: {} logins ({successes} accepted, {unavailable} cut by a kill), {KILLS} kills, {:?}",
        attempts.len(),
        started.elapsed()
    );
}

fn final_checks(pam: &ServiceDir, account: &Account, last: &Snapshot) {
    let user = &account.user().name;
    let login = |code: &str| pam::login(pam, SERVICE, user, &[code]);
    let factor = &account.factor;
    match &account.kind {
        Kind::Hotp { accepted, .. } => {
            if let Some(c) = accepted.last() {
                let replay = login(&factor.hotp_code(*c));
                assert_eq!(
                    replay.rc, PAM_MAXTRIES,
                    "{user}: replay of {c}: {replay:#?}"
                );
            }
            let next = last.counter(&factor.id);
            login(&factor.hotp_code(next)).assert_rc(PAM_SUCCESS);
            login(&factor.hotp_code(next)).assert_rc(PAM_MAXTRIES);
        }
        Kind::Totp { last: Some(step) } => {
            let replay = login(&factor.totp().code_for_step(*step));
            assert_eq!(replay.rc, PAM_MAXTRIES, "{user}: replay of step {step}");
        }
        Kind::Totp { last: None } => {}
        Kind::Recovery {
            codes,
            next,
            uncertain,
        } => {
            // What the store counts as used agrees with the logins: every
            // code accepted, plus the one cut short by the last kill if its
            // use was committed.
            let unused = last.unused_recovery(user);
            let used = codes.len() - unused as usize;
            assert!(
                used == *next || (*uncertain && used == *next + 1),
                "{user}: the store has {used} recovery codes used, the logins {next}"
            );
            for code in &codes[..used] {
                let replay = login(code);
                assert_eq!(replay.rc, PAM_MAXTRIES, "{user}: used recovery code again");
            }
            let fresh = login(&codes[used]);
            fresh.assert_rc(PAM_SUCCESS);
            let texts: Vec<String> = fresh.messages.iter().map(|m| m.text.clone()).collect();
            assert_eq!(recovery_left(&texts), Some(unused - 1), "{fresh:#?}");
        }
        Kind::Guesser { .. } => {}
    }
}
