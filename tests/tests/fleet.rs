//! Two hosts, one PostgreSQL (issue 10): two mfads — two state
//! directories with the same key, two buses — on one real database, logins
//! through real libpam on each. A code works once fleet-wide, also when 50
//! logins race with it across both; a counter never goes back; a lockout
//! earned on one host holds on the other; a TOTP step and a recovery code
//! are used once; a database that is down or frozen refuses within the
//! deadline, and mfad recovers by itself when it is back; a host killed
//! mid-transaction leaves nothing behind; audit shows every host; a host's
//! SQLite store moves in.
//! Codes from oathtool.

use mfa_tests::daemon::DaemonConfig;
use mfa_tests::pam::{
    PamResult, LOCKED, PAM_AUTHINFO_UNAVAIL, PAM_AUTH_ERR, PAM_MAXTRIES, PAM_SUCCESS,
};
use mfa_tests::postgres::Postgres;
use mfa_tests::users;
use mfa_tests::World;
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

struct Fleet {
    a: World,
    b: World,
    database: String,
}

/// Two hosts on `pg` with `base` for their config; one wrong code ends a
/// login (max_tries 1), so every login here is one answer.
fn fleet_on(pg: &Postgres, base: DaemonConfig) -> Fleet {
    fleet_with_timeout(pg, base, 3)
}

/// [`fleet_on`], `[store] timeout` = `timeout` seconds.
fn fleet_with_timeout(pg: &Postgres, base: DaemonConfig, timeout: u64) -> Fleet {
    let database = pg.database();
    let store = pg
        .store_table(&database)
        .replace("timeout = 3\n", &format!("timeout = {timeout}\n"));
    assert!(store.contains(&format!("timeout = {timeout}\n")), "{store}");
    let config = |seed_key, host: &str| DaemonConfig {
        policy_tables: format!("{store}{}", base.policy_tables),
        max_tries: 1,
        seed_key,
        hostname: Some(host.into()),
        ..base.clone()
    };
    let a = World::with_config(&config(None, "host-a"));
    let key = a.daemon.state_dir().join(mfad::store::KEY_FILE);
    let b = World::with_config(&config(Some(key), "host-b"));
    Fleet { a, b, database }
}

fn fleet() -> Fleet {
    fleet_on(Postgres::shared(), DaemonConfig::default())
}

/// The failures in a row the database holds for `user`.
fn failures(pg: &Postgres, database: &str, user: &str) -> u32 {
    pg.psql(
        database,
        &format!("SELECT failures FROM lockout WHERE user_name = '{user}'"),
    )
    .trim()
    .parse()
    .unwrap_or(0)
}

#[test]
fn fifty_logins_racing_with_one_code_across_two_hosts_let_one_in() {
    // 49 of them fail, each counted: room for that before a lockout.
    let fleet = fleet_on(
        Postgres::shared(),
        DaemonConfig {
            lockout_max_failures: 100,
            ..DaemonConfig::default()
        },
    );
    let alice = users::named("alice");
    let token = fleet.a.enrol_hotp(&alice, 6);
    let next = token.next_counter();
    let code = token.hotp_code(next);
    let barrier = Arc::new(Barrier::new(50));
    let results: Vec<PamResult> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..50)
            .map(|i| {
                let world = if i % 2 == 0 { &fleet.a } else { &fleet.b };
                let (barrier, code, alice) = (Arc::clone(&barrier), code.clone(), alice.clone());
                scope.spawn(move || {
                    barrier.wait();
                    world.login(&alice, &[&code])
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("join"))
            .collect()
    });
    let allowed = results.iter().filter(|r| r.rc == PAM_SUCCESS).count();
    assert_eq!(allowed, 1, "exactly one login in, fleet-wide");

    // The counter moved on everywhere: the next code works on B, the old one
    // nowhere, and the one after on A.
    fleet
        .b
        .login(&alice, &[&token.hotp_code(next + 1)])
        .assert_rc(PAM_SUCCESS);
    fleet
        .a
        .login(&alice, &[&token.hotp_code(next + 1)])
        .assert_rc(PAM_MAXTRIES);
    fleet
        .a
        .login(&alice, &[&token.hotp_code(next)])
        .assert_rc(PAM_MAXTRIES);
    fleet
        .a
        .login(&alice, &[&token.hotp_code(next + 2)])
        .assert_rc(PAM_SUCCESS);
    // 20 wrong codes at once over both hosts: 20 failures, none lost.
    let barrier = Arc::new(Barrier::new(20));
    std::thread::scope(|scope| {
        for i in 0..20 {
            let world = if i % 2 == 0 { &fleet.a } else { &fleet.b };
            let (barrier, alice) = (Arc::clone(&barrier), alice.clone());
            scope.spawn(move || {
                barrier.wait();
                world.login(&alice, &["000000"]).assert_rc(PAM_MAXTRIES);
            });
        }
    });
    assert_eq!(failures(Postgres::shared(), &fleet.database, "alice"), 20);
    // What one host enrolled the other lists.
    let listed = fleet.b.mfactl(&alice, &["--json", "list"]);
    listed.assert_success("mfactl list on B");
    assert!(listed.stdout.contains(&token.id), "{}", listed.describe());
}

#[test]
fn a_lockout_on_one_host_holds_on_the_other() {
    let fleet = fleet_on(
        Postgres::shared(),
        DaemonConfig {
            lockout_max_failures: 3,
            ..DaemonConfig::default()
        },
    );
    let bob = users::named("bob");
    let token = fleet.a.enrol_hotp(&bob, 6);
    let right = token.hotp_code(token.next_counter());
    fleet.a.login(&bob, &["000000"]).assert_rc(PAM_MAXTRIES);
    fleet.b.login(&bob, &["000000"]).assert_rc(PAM_MAXTRIES);
    // The third failure, on A, locks bob out everywhere.
    let third = fleet.a.login(&bob, &["000000"]);
    third.assert_rc(PAM_AUTH_ERR);
    assert_eq!(third.errors(), vec![LOCKED], "{third:#?}");
    let locked = fleet.b.login(&bob, &[&right]);
    locked.assert_rc(PAM_AUTH_ERR);
    assert_eq!(locked.errors(), vec![LOCKED], "{locked:#?}");
    fleet
        .a
        .mfactl(&users::root(), &["unlock", "bob"])
        .assert_success("unlock on A");
    fleet.b.login(&bob, &[&right]).assert_rc(PAM_SUCCESS);
}

#[test]
fn mfactl_audit_on_any_host_shows_every_hosts_decisions_with_its_name() {
    let fleet = fleet();
    let alice = users::named("alice");
    let token = fleet.a.enrol_hotp(&alice, 6);
    let next = token.next_counter();
    fleet
        .a
        .login(&alice, &[&token.hotp_code(next)])
        .assert_rc(PAM_SUCCESS);
    fleet.b.login(&alice, &["000000"]).assert_rc(PAM_MAXTRIES);
    // Each host writes its rows off the login path; `mfactl audit` on a host
    // first waits for that host's own rows, so ask each once before reading
    // the other's.
    for world in [&fleet.a, &fleet.b] {
        world
            .mfactl(&users::root(), &["audit", "--user", "alice"])
            .assert_success("audit");
    }
    for world in [&fleet.a, &fleet.b] {
        let audit = world.mfactl(&users::root(), &["--json", "audit", "--user", "alice"]);
        audit.assert_success("audit");
        let entries: Vec<serde_json::Value> = serde_json::from_str(&audit.stdout).expect("json");
        let decision = |host: &str, outcome: &str| {
            entries
                .iter()
                .any(|e| e["host"] == host && e["event"] == "login" && e["outcome"] == outcome)
        };
        assert!(decision("host-a", "allow"), "{}", audit.describe());
        assert!(decision("host-b", "deny"), "{}", audit.describe());
        assert!(
            entries
                .iter()
                .any(|e| e["host"] == "host-a" && e["outcome"] == "confirm"),
            "the enrolment, a change made on A: {}",
            audit.describe()
        );
    }
    let table = fleet
        .b
        .mfactl(&users::root(), &["audit", "--user", "alice"]);
    assert!(
        table
            .stdout
            .lines()
            .next()
            .is_some_and(|h| h.contains("HOST")),
        "{}",
        table.describe()
    );
}

/// A TOTP time step, once used on one host, is used on every host: the
/// same code and an older one are refused on the other.
#[test]
fn a_totp_code_used_on_one_host_is_refused_on_the_other() {
    let fleet = fleet();
    let dave = users::named("dave");
    let totp = mfa_tests::otp::Totp::default_params();
    let enrolled = fleet.a.enrol_totp(&dave, &totp);
    // One step ahead of the confirmation: inside the skew window even if
    // the step changes while the logins run.
    let code = totp.code(1);
    fleet.a.login(&dave, &[&code]).assert_rc(PAM_SUCCESS);
    fleet.b.login(&dave, &[&code]).assert_rc(PAM_MAXTRIES);
    fleet
        .b
        .login(&dave, &[&enrolled.confirm_code])
        .assert_rc(PAM_MAXTRIES);
}

#[test]
fn a_recovery_code_is_used_once_fleet_wide() {
    let fleet = fleet();
    let carol = users::named("carol");
    fleet.a.enrol_hotp(&carol, 6);
    let codes = fleet.a.recovery_codes(&carol);
    let used = fleet.b.login(&carol, &[&codes[0]]);
    used.assert_rc(PAM_SUCCESS);
    assert!(
        used.infos().iter().any(|i| i.contains("9 left")),
        "{used:#?}"
    );
    fleet.a.login(&carol, &[&codes[0]]).assert_rc(PAM_MAXTRIES);
    fleet.a.login(&carol, &[&codes[1]]).assert_rc(PAM_SUCCESS);
}

#[test]
fn a_database_that_is_down_or_frozen_refuses_in_time_and_mfad_recovers() {
    let pg = Postgres::start();
    let fleet = fleet_on(&pg, DaemonConfig::default());
    let dave = users::named("dave");
    let token = fleet.a.enrol_hotp(&dave, 6);
    let mut counter = token.next_counter();
    fleet
        .a
        .login(&dave, &[&token.hotp_code(counter)])
        .assert_rc(PAM_SUCCESS);
    counter += 1;

    pg.crash();
    for world in [&fleet.a, &fleet.b] {
        let started = Instant::now();
        let down = world.login(&dave, &[&token.hotp_code(counter)]);
        down.assert_rc(PAM_AUTH_ERR);
        assert!(
            started.elapsed() < Duration::from_secs(9),
            "took {:?}",
            started.elapsed()
        );
        assert!(
            world.daemon.log().contains("reason=store-unavailable"),
            "{}",
            world.daemon.log()
        );
    }
    pg.restart();
    fleet
        .b
        .login(&dave, &[&token.hotp_code(counter)])
        .assert_rc(PAM_SUCCESS);
    counter += 1;

    // Frozen: the server takes the connection and never answers.
    let frozen = pg.processes();
    for pid in &frozen {
        // SAFETY: signalling server processes this test started.
        unsafe { libc::kill(*pid, libc::SIGSTOP) };
    }
    let started = Instant::now();
    let hung = fleet.a.login(&dave, &[&token.hotp_code(counter)]);
    let took = started.elapsed();
    for pid in &frozen {
        // SAFETY: as above.
        unsafe { libc::kill(*pid, libc::SIGCONT) };
    }
    hung.assert_rc(PAM_AUTH_ERR);
    assert!(
        took < Duration::from_secs(9),
        "a frozen database held the login {took:?}"
    );
    // The code was not used up: it works once the database answers.
    fleet
        .a
        .login(&dave, &[&token.hotp_code(counter)])
        .assert_rc(PAM_SUCCESS);
    // What was decided while the database was away reaches its history
    // once it is back. Each host writes its rows off the login path, and
    // `mfactl audit` waits only for its own host's: ask A first.
    fleet
        .a
        .mfactl(&users::root(), &["audit", "--user", "dave"])
        .assert_success("audit on A");
    let audit = fleet
        .b
        .mfactl(&users::root(), &["--json", "audit", "--user", "dave"]);
    let entries: Vec<serde_json::Value> = serde_json::from_str(&audit.stdout).expect("json");
    for host in ["host-a", "host-b"] {
        assert!(
            entries
                .iter()
                .any(|e| e["host"] == host && e["reason"] == "store-unavailable"),
            "{host}: {}",
            audit.describe()
        );
    }
}

/// One count from the database.
fn count(pg: &Postgres, database: &str, table: &str) -> u32 {
    pg.psql(database, &format!("SELECT count(*) FROM {table}"))
        .trim()
        .parse()
        .unwrap_or_else(|e| panic!("count of {table}: {e}"))
}

#[test]
fn a_host_migrates_its_store_to_postgresql_and_nothing_is_lost_or_usable_twice() {
    let pg = Postgres::shared();
    let mut host = mfa_tests::World::with_config(&DaemonConfig {
        max_tries: 1,
        ..DaemonConfig::default()
    });
    let (alice, bob, root) = (users::named("alice"), users::named("bob"), users::root());
    let token = host.enrol_hotp(&alice, 6);
    let mut counter = token.next_counter();
    host.login(&alice, &[&token.hotp_code(counter)])
        .assert_rc(PAM_SUCCESS);
    counter += 1;
    host.login(&alice, &["000000"]).assert_rc(PAM_MAXTRIES);
    host.mfactl(&alice, &["prefer", &token.id])
        .assert_success("prefer");
    host.enrol_hotp(&bob, 6);
    let codes = host.recovery_codes(&bob);
    host.login(&bob, &[&codes[0]]).assert_rc(PAM_SUCCESS);
    // An admin invited dave to set up a factor he has not taken yet.
    let dave = users::named("dave");
    host.mfactl(&root, &["enrol", "hotp", "--user", "dave", "--invite"])
        .assert_success("invite dave");

    // The admin names the database in mfad.toml; mfad runs on as it was.
    let database = pg.database();
    let sqlite_config = std::fs::read_to_string(host.daemon.config_path()).expect("config");
    let pg_config = format!("{sqlite_config}\n{}", pg.store_table(&database));
    std::fs::write(host.daemon.config_path(), &pg_config).expect("write config");

    let dry = host.mfactl(&root, &["store", "migrate", "--dry-run"]);
    dry.assert_success("dry run");
    assert!(
        dry.stdout.contains(&format!("Would copy to postgresql localhost:{}/{database}: 3 factors, 10 recovery codes, 1 lockouts, 1 users' settings, 0 trusted devices, 1 invitations.", pg.port())),
        "{}",
        dry.describe()
    );
    assert_eq!(
        count(pg, &database, "factors"),
        0,
        "a dry run copies nothing"
    );
    let unconfirmed = host.mfactl(&root, &["store", "migrate"]);
    assert_eq!(unconfirmed.code(), Some(2), "{}", unconfirmed.describe());
    assert!(
        unconfirmed.stderr.contains("--yes"),
        "{}",
        unconfirmed.describe()
    );
    assert_eq!(count(pg, &database, "factors"), 0);
    // A user may not.
    let by_user = host.mfactl(&alice, &["store", "migrate", "--yes"]);
    assert_eq!(by_user.code(), Some(5), "{}", by_user.describe());

    let moved = host.mfactl(&root, &["store", "migrate", "--yes"]);
    moved.assert_success("migrate");
    assert!(
        moved.stdout.contains("Copied to postgresql") && moved.stdout.contains("restart"),
        "{}",
        moved.describe()
    );
    assert_eq!(count(pg, &database, "factors"), 3);
    assert_eq!(count(pg, &database, "recovery_codes WHERE used"), 1);
    assert_eq!(count(pg, &database, "invitations"), 1);
    assert_eq!(failures(pg, &database, "alice"), 1);
    // The SQLite copy serves nothing more: what it would accept now could
    // not be recorded where the store is.
    host.login(&alice, &[&token.hotp_code(counter)])
        .assert_rc(PAM_AUTH_ERR);
    assert!(host.daemon.log().contains("reason=store-unavailable"));
    let again = host.mfactl(&root, &["store", "migrate", "--yes"]);
    assert_eq!(again.code(), Some(1), "{}", again.describe());
    assert!(again.stderr.contains("moved to"), "{}", again.describe());
    assert!(host.daemon.state_dir().join("mfa.sqlite.moved").exists());

    // Restarted on PostgreSQL: counters, codes, lockout, settings as they were.
    host.daemon.stop();
    host.daemon.restart();
    host.login(&alice, &[&token.hotp_code(counter - 1)])
        .assert_rc(PAM_MAXTRIES);
    assert_eq!(failures(pg, &database, "alice"), 2, "counted on from 1");
    host.login(&alice, &[&token.hotp_code(counter)])
        .assert_rc(PAM_SUCCESS);
    host.login(&bob, &[&codes[0]]).assert_rc(PAM_MAXTRIES);
    host.login(&bob, &[&codes[1]]).assert_rc(PAM_SUCCESS);
    assert_eq!(
        pg.psql(
            &database,
            "SELECT preferred FROM user_settings WHERE user_name = 'alice'"
        )
        .trim(),
        token.id
    );
    // dave's invitation came along: he is shown the factor to set up.
    let invited = host.mfactl(&dave, &["--json", "invitation"]);
    assert_eq!(
        invited.code(),
        Some(4),
        "not confirmed: {}",
        invited.describe()
    );
    let offer: serde_json::Value = invited
        .stdout
        .lines()
        .next()
        .and_then(|l| serde_json::from_str(l).ok())
        .unwrap_or_default();
    assert!(
        offer["offer"]["secret"]
            .as_str()
            .is_some_and(|s| !s.is_empty()),
        "{}",
        invited.describe()
    );

    // A host with a store of its own (its own key) cannot copy into the
    // database the fleet uses now.
    let other = mfa_tests::World::start();
    other.enrol_hotp(&users::named("carol"), 6);
    let config = std::fs::read_to_string(other.daemon.config_path()).expect("config");
    let file = other.daemon.state_dir().with_file_name("fleet.toml");
    std::fs::write(&file, format!("{config}\n{}", pg.store_table(&database)))
        .expect("write config");
    let file = file.display().to_string();
    let refused = other.mfactl(&root, &["store", "migrate", "--yes", &file]);
    assert_eq!(refused.code(), Some(1), "{}", refused.describe());
    assert!(
        refused.stderr.contains("sealed with another key"),
        "{}",
        refused.describe()
    );
    assert_eq!(count(pg, &database, "factors"), 3);
    // Its own store was left as it was, and serves on.
    let carol = other.mfactl(&root, &["--json", "user", "carol"]);
    carol.assert_success("carol's factors on the other host");
    assert!(carol.stdout.contains("hotp"), "{}", carol.describe());
}

#[test]
fn kill_9_of_one_host_mid_transaction_loses_nothing_on_the_other() {
    let pg = Postgres::shared();
    let mut fleet = fleet();
    let alice = users::named("alice");
    let token = fleet.a.enrol_hotp(&alice, 6);
    let next = token.next_counter();
    // Another session shares alice's factor row: A's check takes her lock,
    // accepts the code, and waits to move the counter.
    let (holder, login) =
        login_waiting_for_its_factor_row(pg, &fleet, &alice, &token, &token.hotp_code(next));
    fleet.a.daemon.kill9();
    holder.end();
    assert_ne!(login.finish().rc, PAM_SUCCESS, "A died before its commit");

    // Nothing of A's half transaction stayed: B takes the same code, and no
    // failure was counted.
    fleet
        .b
        .login(&alice, &[&token.hotp_code(next)])
        .assert_rc(PAM_SUCCESS);
    assert_eq!(failures(pg, &fleet.database, "alice"), 0);
    fleet
        .a
        .login(&alice, &[&token.hotp_code(next)])
        .assert_rc(PAM_AUTHINFO_UNAVAIL);
    fleet.a.daemon.restart();
    fleet
        .a
        .login(&alice, &[&token.hotp_code(next)])
        .assert_rc(PAM_MAXTRIES);
    fleet
        .a
        .login(&alice, &[&token.hotp_code(next + 1)])
        .assert_rc(PAM_SUCCESS);
}

/// One count from `pg_stat_activity`: mfad's sessions in `database` that
/// match `condition`.
/// A login on host A with `code` whose check, holding `user`'s lock, waits
/// for the factor row a psql session (returned with it) holds FOR SHARE.
fn login_waiting_for_its_factor_row(
    pg: &Postgres,
    fleet: &Fleet,
    user: &mfa_tests::TestUser,
    token: &mfa_tests::probe::Enrolled,
    code: &str,
) -> (mfa_tests::postgres::Session, mfa_tests::pam::PendingLogin) {
    let holder = pg.session(
        &fleet.database,
        &format!(
            "BEGIN; SELECT id FROM factors WHERE id = '{}' FOR SHARE;",
            token.id
        ),
    );
    let login = fleet.a.prepare(user, &[code]).spawn(&fleet.a.pam);
    wait_until(
        "A's check waits for the factor row",
        Duration::from_secs(10),
        || mfad_sessions(pg, &fleet.database, "wait_event_type = 'Lock'") == 1,
    );
    (holder, login)
}

fn mfad_sessions(pg: &Postgres, database: &str, condition: &str) -> u32 {
    pg.psql(
        database,
        &format!(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'mfad'
             AND datname = current_database() AND {condition}"
        ),
    )
    .trim()
    .parse()
    .unwrap_or_else(|e| panic!("pg_stat_activity: {e}"))
}

/// Poll until `done`, failing after `limit`.
fn wait_until(what: &str, limit: Duration, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !done() {
        assert!(Instant::now() < deadline, "{what}: not within {limit:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A host that stops mid-transaction with its socket left open (SIGSTOP
/// here; power lost, a partition) holds the user's row lock. The database
/// ends a transaction left idle for half of `[store] timeout`, so the
/// other hosts are not made to refuse that user until the server notices
/// by itself: B takes the code A had accepted but never committed.
#[test]
fn a_host_frozen_mid_transaction_does_not_lock_the_user_out_elsewhere() {
    const TIMEOUT: u64 = 6;
    let pg = Postgres::shared();
    let fleet = fleet_with_timeout(pg, DaemonConfig::default(), TIMEOUT);
    let alice = users::named("alice");
    let token = fleet.a.enrol_hotp(&alice, 6);
    let next = token.next_counter();
    // A's check takes alice's lockout row, accepts the code, and waits for
    // the factor row a psql session shares ...
    let (holder, frozen) =
        login_waiting_for_its_factor_row(pg, &fleet, &alice, &token, &token.hotp_code(next));
    // ... and is stopped there: once the row is free, its database session
    // moves the counter and idles in the transaction, alice's lock held,
    // the commit never sent.
    fleet.a.daemon.freeze();
    holder.end();
    wait_until(
        "A's session idles in its transaction",
        Duration::from_secs(2),
        || mfad_sessions(pg, &fleet.database, "state = 'idle in transaction'") == 1,
    );
    let started = Instant::now();
    let b = fleet.b.login(&alice, &[&token.hotp_code(next)]);
    let took = started.elapsed();
    fleet.a.daemon.thaw();
    b.assert_rc(PAM_SUCCESS);
    // B waited for the server to end A's transaction (half the timeout
    // after A went idle, a moment before B started), and no longer.
    assert!(
        took >= Duration::from_secs(TIMEOUT / 2 - 1) && took < Duration::from_secs(TIMEOUT),
        "B's login took {took:?}"
    );
    assert_eq!(
        mfad_sessions(pg, &fleet.database, "state = 'idle in transaction'"),
        0
    );
    // A's login came to nothing, and the code is used up fleet-wide.
    assert_ne!(frozen.finish().rc, PAM_SUCCESS, "A never committed");
    fleet
        .a
        .login(&alice, &[&token.hotp_code(next)])
        .assert_rc(PAM_MAXTRIES);
    fleet
        .a
        .login(&alice, &[&token.hotp_code(next + 1)])
        .assert_rc(PAM_SUCCESS);
}

/// mfad started while its database is down serves at once and refuses
/// logins (store-unavailable) while it waits; once the database is up it
/// opens the store by itself: logins work, the same mfad process.
#[test]
fn mfad_started_while_the_database_is_down_waits_for_it_and_serves() {
    let pg = Postgres::start();
    let database = pg.database();
    let mut host = World::with_config(&DaemonConfig {
        policy_tables: pg.store_table(&database),
        max_tries: 1,
        ..DaemonConfig::default()
    });
    let alice = users::named("alice");
    let token = host.enrol_hotp(&alice, 6);
    let next = token.next_counter();
    host.daemon.stop();
    pg.crash();

    host.daemon.restart();
    let pid = host.daemon.pid();
    assert!(
        host.daemon.log().contains("waiting for the database"),
        "{}",
        host.daemon.log()
    );
    let down = host.login(&alice, &[&token.hotp_code(next)]);
    down.assert_rc(PAM_AUTH_ERR);
    assert!(
        host.daemon.log().contains("reason=store-unavailable"),
        "{}",
        host.daemon.log()
    );

    pg.restart();
    // Tries are at most OPEN_RETRY_MAX apart, each within [store] timeout.
    let limit = mfad::store::postgres::OPEN_RETRY_MAX + Duration::from_secs(10);
    wait_until("mfad opens the store", limit, || {
        host.daemon.log().contains("is open, after waiting")
    });
    host.login(&alice, &[&token.hotp_code(next)])
        .assert_rc(PAM_SUCCESS);
    assert_eq!(host.daemon.pid(), pid, "the same mfad, never restarted");
}

/// PostgreSQL stopped at once (`pg_ctl stop -m immediate`) while a login
/// is in flight, after its Start and before its Answer: that login is
/// denied (store-unavailable) within the deadline, nothing of it is
/// written (no failure counted, the counter where it was), and once the
/// database is back the same code logs in, on either host.
#[test]
fn the_database_stopped_between_start_and_answer_denies_that_login_and_nothing_is_half_written() {
    let pg = Postgres::start();
    let fleet = fleet_on(&pg, DaemonConfig::default());
    let dave = users::named("dave");
    let token = fleet.a.enrol_hotp(&dave, 6);
    let next = token.next_counter();
    let counter_sql = format!("SELECT counter FROM factors WHERE id = '{}'", token.id);
    let before = pg.psql(&fleet.database, &counter_sql);
    assert!(!before.trim().is_empty(), "no factor row");

    let mut login = fleet.a.prepare(&dave, &[&token.hotp_code(next)]);
    login.sync = true;
    let mut pending = login.spawn(&fleet.a.pam);
    assert!(pending.wait_at_prompt(mfa_tests::QUICK), "no prompt");
    pg.crash();
    let started = Instant::now();
    pending.release();
    let denied = pending.finish();
    let took = started.elapsed();
    denied.assert_rc(PAM_AUTH_ERR);
    assert!(took < Duration::from_secs(9), "took {took:?}");
    assert!(
        fleet.a.daemon.log().contains("reason=store-unavailable"),
        "{}",
        fleet.a.daemon.log()
    );

    pg.restart();
    assert_eq!(
        failures(&pg, &fleet.database, "dave"),
        0,
        "a failure counted"
    );
    assert_eq!(
        pg.psql(&fleet.database, &counter_sql),
        before,
        "the counter moved"
    );
    fleet
        .b
        .login(&dave, &[&token.hotp_code(next)])
        .assert_rc(PAM_SUCCESS);
    fleet
        .a
        .login(&dave, &[&token.hotp_code(next + 1)])
        .assert_rc(PAM_SUCCESS);
}
