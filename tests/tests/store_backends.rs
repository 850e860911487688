//! The store's guarantees, checked the same way on both backends (issue
//! 10): the embedded SQLite store and a real PostgreSQL, started by the
//! tests (`mfa_tests::postgres`). Once-only under a race, failures counted
//! exactly, lockouts, recovery codes, pending and factor limits, settings,
//! and for PostgreSQL: every host started at once migrates safely, and a
//! host with another key is refused.

use mfa_tests::postgres::Postgres;
use mfad::config::{PgConfig, PgTls};
use mfad::mechanism::otp::hotp;
use mfad::mechanism::{
    Advance, Algorithm, FactorData, FactorKind, Mechanism, OtpParams, Response, Totp, Verdict,
};
use mfad::store::{
    CodeCheck, Confirmation, FactorLimits, FactorRecord, FactorStore, Inserted, Lockout, PgStore,
    RecoveryUse, SettingStore, SqliteStore, Store,
};
use std::path::Path;
use std::sync::{Arc, Barrier};
use std::time::Duration;

const NOW: u64 = 1_700_000_000;
const LENIENT: Lockout = Lockout {
    max_failures: 100,
    unlock_after: 900,
};

/// A store of each backend, each in a state directory of its own.
fn backends() -> Vec<(&'static str, Arc<dyn Store>, tempfile::TempDir)> {
    let sqlite_dir = tempfile::tempdir().expect("tmp");
    let sqlite: Arc<dyn Store> =
        Arc::new(SqliteStore::open(&sqlite_dir.path().join("state")).expect("sqlite"));
    let pg_dir = tempfile::tempdir().expect("tmp");
    let pg: Arc<dyn Store> = Arc::new(open_pg(&pg_dir.path().join("state"), &fresh_database()));
    vec![("sqlite", sqlite, sqlite_dir), ("postgresql", pg, pg_dir)]
}

fn fresh_database() -> String {
    Postgres::shared().database()
}

fn pg_config(database: &str) -> PgConfig {
    let pg = Postgres::shared();
    PgConfig {
        host: "localhost".into(),
        port: pg.port(),
        dbname: database.into(),
        user: "mfa".into(),
        password_file: None,
        tls: PgTls::VerifyFull {
            ca_file: pg.ca_file(),
        },
        timeout: Duration::from_secs(5),
    }
}

fn open_pg(state: &Path, database: &str) -> PgStore {
    PgStore::open(&pg_config(database), state).unwrap_or_else(|e| panic!("postgresql store: {e}"))
}

fn factor(user: &str, id: &str) -> FactorRecord {
    FactorRecord {
        id: id.into(),
        user: user.into(),
        kind: FactorKind::Hotp,
        label: "token".into(),
        counter: 0,
        data: FactorData::Otp(OtpParams {
            secret: b"12345678901234567890".to_vec(),
            algorithm: Algorithm::Sha1,
            digits: 6,
            period: 0,
            drift: 0,
        }),
        confirmed: true,
        approved: false,
        created: NOW,
        last_used: 0,
        expires: 0,
    }
}

fn accept(counter: u64) -> Verdict {
    Verdict::Accept(Advance {
        counter,
        data: None,
    })
}

#[test]
fn one_code_is_accepted_once_however_many_checks_race() {
    for (name, store, _dir) in backends() {
        store
            .insert_confirmed(&[factor("alice", "f1")])
            .expect("insert");
        let barrier = Arc::new(Barrier::new(20));
        let threads: Vec<_> = (0..20)
            .map(|_| {
                let (store, barrier) = (Arc::clone(&store), Arc::clone(&barrier));
                std::thread::spawn(move || {
                    barrier.wait();
                    // "The code of counter 0": right only while the factor
                    // has not moved past it.
                    store
                        .check_factor("alice", "f1", NOW, LENIENT, &mut |f| {
                            if f.counter == 0 {
                                accept(1)
                            } else {
                                Verdict::Reject
                            }
                        })
                        .expect("check")
                })
            })
            .collect();
        let accepted = threads
            .into_iter()
            .map(|t| t.join().expect("join"))
            .filter(|c| matches!(c, CodeCheck::Accepted(_)))
            .count();
        assert_eq!(accepted, 1, "{name}");
        assert_eq!(
            store
                .factor("alice", "f1")
                .expect("read")
                .expect("factor")
                .counter,
            1,
            "{name}"
        );
    }
}

#[test]
fn parallel_failures_are_each_counted() {
    for (name, store, _dir) in backends() {
        store
            .insert_confirmed(&[factor("bob", "f1")])
            .expect("insert");
        let barrier = Arc::new(Barrier::new(20));
        let threads: Vec<_> = (0..20)
            .map(|_| {
                let (store, barrier) = (Arc::clone(&store), Arc::clone(&barrier));
                std::thread::spawn(move || {
                    barrier.wait();
                    match store
                        .check_factor("bob", "f1", NOW, LENIENT, &mut |_| Verdict::Reject)
                        .expect("check")
                    {
                        CodeCheck::Rejected { failures, .. } => failures,
                        other => panic!("{other:?}"),
                    }
                })
            })
            .collect();
        let mut counts: Vec<u32> = threads
            .into_iter()
            .map(|t| t.join().expect("join"))
            .collect();
        counts.sort();
        assert_eq!(counts, (1..=20).collect::<Vec<_>>(), "{name}");
    }
}

#[test]
fn a_lockout_refuses_without_checking_and_ends() {
    let strict = Lockout {
        max_failures: 2,
        unlock_after: 60,
    };
    for (name, store, _dir) in backends() {
        store
            .insert_confirmed(&[factor("carol", "f1")])
            .expect("insert");
        for _ in 0..2 {
            store
                .check_factor("carol", "f1", NOW, strict, &mut |_| Verdict::Reject)
                .expect("check");
        }
        let mut checked = false;
        let locked = store
            .check_factor("carol", "f1", NOW + 1, strict, &mut |_| {
                checked = true;
                accept(1)
            })
            .expect("check");
        assert!(
            matches!(locked, CodeCheck::Locked { until } if until == NOW + 60),
            "{name}: {locked:?}"
        );
        assert!(!checked, "{name}: checked while locked");
        assert_eq!(
            store.locked_until("carol", NOW + 1).expect("read"),
            NOW + 60
        );
        assert!(store.users(NOW + 1).expect("users")[0].locked, "{name}");
        assert!(matches!(
            store
                .check_factor("carol", "f1", NOW + 60, strict, &mut |_| accept(1))
                .expect("check"),
            CodeCheck::Accepted(_)
        ));
        store
            .check_factor("carol", "f1", NOW + 61, strict, &mut |_| Verdict::Reject)
            .expect("check");
        store
            .check_factor("carol", "f1", NOW + 61, strict, &mut |_| Verdict::Reject)
            .expect("check");
        assert!(
            store.unlock("carol", NOW + 62).expect("unlock"),
            "{name}: was locked"
        );
        assert_eq!(store.locked_until("carol", NOW + 62).expect("read"), 0);
    }
}

#[test]
fn a_recovery_code_is_used_once_under_a_race() {
    for (name, store, _dir) in backends() {
        store
            .replace_recovery_codes("dave", &["h1".to_string(), "h2".to_string()], NOW)
            .expect("codes");
        let codes = store.unused_recovery_codes("dave").expect("codes");
        assert_eq!(codes.len(), 2, "{name}");
        let row = codes[0].0;
        let barrier = Arc::new(Barrier::new(8));
        let threads: Vec<_> = (0..8)
            .map(|_| {
                let (store, barrier) = (Arc::clone(&store), Arc::clone(&barrier));
                std::thread::spawn(move || {
                    barrier.wait();
                    store
                        .use_recovery_code("dave", Some(row), NOW, LENIENT)
                        .expect("use")
                })
            })
            .collect();
        let used: Vec<RecoveryUse> = threads
            .into_iter()
            .map(|t| t.join().expect("join"))
            .collect();
        let wins = used
            .iter()
            .filter(|u| matches!(u, RecoveryUse::Used { left: 1 }))
            .count();
        assert_eq!(wins, 1, "{name}: {used:?}");
        assert_eq!(store.unused_recovery_codes("dave").expect("codes").len(), 1);
    }
}

#[test]
fn pending_enrolments_and_factors_are_capped_and_confirmed_once() {
    let small = FactorLimits {
        max_pending: 2,
        max_factors: 1,
    };
    for (name, store, _dir) in backends() {
        let pending = |id: &str, created: u64| FactorRecord {
            confirmed: false,
            created,
            expires: NOW + 600,
            ..factor("erin", id)
        };
        store
            .insert_pending(&pending("p1", NOW), small)
            .expect("insert");
        store
            .insert_pending(&pending("p2", NOW + 1), small)
            .expect("insert");
        assert_eq!(
            store
                .insert_pending(&pending("p3", NOW + 2), small)
                .expect("insert"),
            Inserted::Added {
                replaced: vec!["p1".into()]
            },
            "{name}"
        );
        let ids: Vec<String> = store
            .factors("erin", NOW)
            .expect("factors")
            .into_iter()
            .map(|f| f.id)
            .collect();
        assert_eq!(ids, ["p2", "p3"], "{name}");
        assert!(matches!(
            store
                .confirm("erin", "p2", NOW, small, &mut |_| Verdict::Reject)
                .expect("confirm"),
            Confirmation::WrongCode
        ));
        assert!(matches!(
            store.confirm("erin", "p2", NOW, small, &mut |_| accept(7)).expect("confirm"),
            Confirmation::Confirmed(f) if f.counter == 7
        ));
        assert!(matches!(
            store
                .confirm("erin", "p3", NOW, small, &mut |_| accept(1))
                .expect("confirm"),
            Confirmation::TooManyFactors
        ));
        assert_eq!(
            store
                .insert_pending(&pending("p4", NOW + 3), small)
                .expect("insert"),
            Inserted::TooManyFactors,
            "{name}"
        );
        assert!(store.has_confirmed_factor("erin").expect("has"), "{name}");
        assert_eq!(store.remove_user("erin").expect("reset"), 2, "{name}");
        assert!(!store.has_confirmed_factor("erin").expect("has"));
    }
}

#[test]
fn settings_devices_and_approval_round_trip() {
    for (name, store, _dir) in backends() {
        store
            .insert_confirmed(&[factor("frank", "f1"), factor("frank", "f2")])
            .expect("insert");
        assert!(
            store.set_preferred("frank", "f2").expect("prefer"),
            "{name}"
        );
        assert!(!store.set_preferred("frank", "nope").expect("prefer"));
        store
            .set_level("frank", Some(mfad::policy::Level::Always))
            .expect("level");
        assert!(store.set_approved("frank", "f1", true).expect("approve"));
        store
            .trust_device("frank", "address:192.0.2.1", "d1", NOW, NOW + 100)
            .expect("trust");
        let state = store.policy_state("frank", NOW + 1).expect("state");
        assert_eq!(state.factors.len(), 2, "{name}");
        assert!(
            state.factors[0].approved && !state.factors[1].approved,
            "{name}"
        );
        assert_eq!(state.preferred.as_deref(), Some("f2"));
        assert_eq!(state.level, Some(mfad::policy::Level::Always));
        assert_eq!(state.trusted_devices, ["address:192.0.2.1"]);
        assert_eq!(store.devices("frank", NOW + 1).expect("devices").len(), 1);
        assert!(store
            .policy_state("frank", NOW + 100)
            .expect("state")
            .trusted_devices
            .is_empty());
        assert_eq!(
            store.revoke_devices("frank", None).expect("revoke"),
            1,
            "{name}"
        );
        assert!(store
            .advance_factor("frank", "f1", &mut |f| Some(Advance {
                counter: f.counter + 500,
                data: None
            }))
            .is_ok());
        assert_eq!(
            store
                .factor("frank", "f1")
                .expect("read")
                .expect("f1")
                .counter,
            500
        );
        assert!(store.remove_factor("frank", "f1").expect("remove"));
        assert!(!store.remove_factor("frank", "f1").expect("remove"));
    }
}

/// Many hosts started at once on an empty database: each takes its turn
/// to create the schema; all come up, the first one's key is the key.
#[test]
fn hosts_starting_at_once_share_one_schema_and_one_key() {
    let database = fresh_database();
    let first = tempfile::tempdir().expect("tmp");
    let state = first.path().join("state");
    drop(open_pg(&state, &database));
    let key = std::fs::read(state.join(mfad::store::KEY_FILE)).expect("key made");
    let barrier = Arc::new(Barrier::new(6));
    let threads: Vec<_> = (0..6)
        .map(|_| {
            let (database, key, barrier) = (database.clone(), key.clone(), Arc::clone(&barrier));
            std::thread::spawn(move || {
                let dir = tempfile::tempdir().expect("tmp");
                let state = dir.path().join("state");
                std::fs::create_dir(&state).expect("state");
                std::fs::set_permissions(
                    &state,
                    std::os::unix::fs::PermissionsExt::from_mode(0o700),
                )
                .expect("chmod");
                let key_path = state.join(mfad::store::KEY_FILE);
                std::fs::write(&key_path, &key).expect("key");
                std::fs::set_permissions(
                    &key_path,
                    std::os::unix::fs::PermissionsExt::from_mode(0o600),
                )
                .expect("chmod");
                barrier.wait();
                PgStore::open(&pg_config(&database), &state)
                    .map(drop)
                    .map_err(|e| e.to_string())
            })
        })
        .collect();
    for t in threads {
        t.join().expect("join").expect("every host starts");
    }
    // Another key is refused, and said so.
    let other = tempfile::tempdir().expect("tmp");
    let other_state = other.path().join("state");
    std::fs::create_dir(&other_state).expect("state");
    std::fs::set_permissions(
        &other_state,
        std::os::unix::fs::PermissionsExt::from_mode(0o700),
    )
    .expect("chmod");
    let other_key = other_state.join(mfad::store::KEY_FILE);
    std::fs::write(&other_key, [9u8; 32]).expect("key");
    std::fs::set_permissions(
        &other_key,
        std::os::unix::fs::PermissionsExt::from_mode(0o600),
    )
    .expect("chmod");
    let err = PgStore::open(&pg_config(&database), &other_state)
        .err()
        .expect("refused");
    assert!(err.to_string().contains("sealed with another key"), "{err}");
    // And a host without the key never makes one for a sealed database.
    let bare = tempfile::tempdir().expect("tmp");
    let err = PgStore::open(&pg_config(&database), &bare.path().join("state"))
        .err()
        .expect("refused");
    assert!(err.to_string().contains("missing"), "{err}");
}

#[test]
fn tls_to_the_database_is_verified() {
    let database = fresh_database();
    let dir = tempfile::tempdir().expect("tmp");
    let mut config = pg_config(&database);
    config.tls = PgTls::VerifyFull {
        ca_file: Postgres::shared().other_ca_file(),
    };
    let err = PgStore::open(&config, &dir.path().join("state"))
        .err()
        .expect("another CA refused");
    assert!(
        err.to_string().to_lowercase().contains("certificate"),
        "{err}"
    );
}

/// A store with one of everything: factors (one pending), recovery codes
/// (one used), failures counted, settings, a trusted device, an
/// invitation to set up the pending factor.
fn fill(store: &dyn Store) {
    let mut used = factor("gina", "g1");
    used.counter = 7;
    used.approved = true;
    store
        .insert_confirmed(&[used, factor("hal", "h1")])
        .expect("insert");
    let mut pending = factor("gina", "g2");
    (pending.confirmed, pending.expires) = (false, NOW + 600);
    store
        .insert_pending(
            &pending,
            FactorLimits {
                max_pending: 5,
                max_factors: 10,
            },
        )
        .expect("pending");
    store
        .replace_recovery_codes("gina", &["r1".into(), "r2".into()], NOW)
        .expect("codes");
    let first = store.unused_recovery_codes("gina").expect("codes")[0].0;
    store
        .use_recovery_code("gina", Some(first), NOW, LENIENT)
        .expect("use");
    store
        .check_factor("hal", "h1", NOW, LENIENT, &mut |_| Verdict::Reject)
        .expect("check");
    store.set_preferred("gina", "g1").expect("prefer");
    store
        .set_level("hal", Some(mfad::policy::Level::Always))
        .expect("level");
    store
        .trust_device("gina", "address:192.0.2.7", "d1", NOW, NOW + 100)
        .expect("trust");
    store
        .put_invitation("gina", "g2", 2100, NOW)
        .expect("invite");
}

#[test]
fn a_store_copies_whole_into_an_empty_one_of_either_backend_and_never_into_a_full_one() {
    for (source_name, source, _dir) in backends() {
        fill(source.as_ref());
        let snapshot = source.export().expect("export");
        assert_eq!(
            snapshot.describe(),
            "3 factors, 2 recovery codes, 1 lockout rows, 2 users' settings, 1 trusted devices, 1 invitations",
            "{source_name}"
        );
        for (target_name, target, _target_dir) in backends() {
            let what = format!("{source_name} to {target_name}");
            target.import(&snapshot).expect("import");
            assert_eq!(target.export().expect("export"), snapshot, "{what}");
            // What it holds works as it did: the counter, the used code.
            let check = target
                .check_factor("gina", "g1", NOW, LENIENT, &mut |f| accept(f.counter + 1))
                .expect("check");
            assert!(
                matches!(check, CodeCheck::Accepted(ref f) if f.counter == 8),
                "{what}: {check:?}"
            );
            assert_eq!(
                target.unused_recovery_codes("gina").expect("codes").len(),
                1
            );
            let invited = target.invitation("gina", NOW).expect("invitation");
            assert!(
                invited
                    .as_ref()
                    .is_some_and(|i| i.factor == "g2" && i.by_uid == 2100),
                "{what}: {invited:?}"
            );
            // A second copy into it is refused and changes nothing.
            let before = target.export().expect("export");
            let again = target.import(&snapshot);
            assert!(
                matches!(again, Err(mfad::store::StoreError::NotEmpty)),
                "{what}: {again:?}"
            );
            assert_eq!(target.export().expect("export"), before, "{what}");
        }
    }
}

#[test]
fn a_moved_sqlite_store_serves_nothing_more_and_is_refused_at_the_next_start() {
    let dir = tempfile::tempdir().expect("tmp");
    let state = dir.path().join("state");
    let source = SqliteStore::open(&state).expect("sqlite");
    fill(&source);
    let target = open_pg(&dir.path().join("target"), &fresh_database());

    // A copy that fails leaves the source as it was, still in use.
    let failed = source.move_to("somewhere", &mut |_| Err(mfad::store::StoreError::NotEmpty));
    assert!(failed.is_err());
    assert!(source.has_confirmed_factor("gina").expect("still served"));
    assert!(!state.join(mfad::store::sqlite::MOVED_FILE).exists());

    let moved = source
        .move_to("postgresql there", &mut |s| target.import(s))
        .expect("move");
    assert_eq!(moved.factors.len(), 3);
    assert_eq!(moved.invitations.len(), 1);
    assert_eq!(target.export().expect("export"), moved);
    let after = source.has_confirmed_factor("gina");
    assert!(
        matches!(after, Err(ref e) if e.is_unavailable() && e.to_string().contains("postgresql there")),
        "{after:?}"
    );
    assert!(source.export().is_err());
    drop(source);
    let reopened = SqliteStore::open(&state).err().map(|e| e.to_string());
    assert!(
        reopened
            .as_deref()
            .is_some_and(|e| e.contains("moved to postgresql there")),
        "{reopened:?}"
    );
    // A PostgreSQL store is moved with pg_dump, not by mfad.
    let refused = target.move_to("elsewhere", &mut |_| Ok(()));
    assert!(
        matches!(refused, Err(ref e) if e.to_string().contains("pg_dump")),
        "{refused:?}"
    );
}

/// An admin's invitation names a pending factor: it holds while that
/// factor is pending and unexpired, a new one replaces it, confirming the
/// factor or resetting the user ends it — on both backends.
#[test]
fn an_invitation_lasts_while_its_factor_is_pending() {
    let limits = FactorLimits {
        max_pending: 3,
        max_factors: 5,
    };
    for (name, store, _dir) in backends() {
        let pending = |id: &str| FactorRecord {
            confirmed: false,
            expires: NOW + 600,
            ..factor("gina", id)
        };
        assert_eq!(store.invitation("gina", NOW).expect("read"), None, "{name}");
        store
            .insert_pending(&pending("i1"), limits)
            .expect("pending");
        store.put_invitation("gina", "i1", 0, NOW).expect("invite");
        let held = store.invitation("gina", NOW).expect("read").expect(name);
        assert_eq!((held.factor.as_str(), held.by_uid), ("i1", 0), "{name}");
        assert_eq!(
            store.invitation("gina", NOW + 600).expect("read"),
            None,
            "{name}: gone with its factor's expiry"
        );
        store
            .insert_pending(&pending("i2"), limits)
            .expect("pending");
        store
            .put_invitation("gina", "i2", 2100, NOW)
            .expect("again");
        let held = store.invitation("gina", NOW).expect("read").expect(name);
        assert_eq!((held.factor.as_str(), held.by_uid), ("i2", 2100), "{name}");
        let confirmed = store
            .confirm("gina", "i2", NOW, limits, &mut |_| accept(1))
            .expect("confirm");
        assert!(
            matches!(confirmed, Confirmation::Confirmed(_)),
            "{name}: {confirmed:?}"
        );
        assert_eq!(
            store.invitation("gina", NOW).expect("read"),
            None,
            "{name}: a confirmed factor invites no more"
        );
        store
            .insert_pending(&pending("i3"), limits)
            .expect("pending");
        store.put_invitation("gina", "i3", 0, NOW).expect("invite");
        store.remove_user("gina").expect("reset");
        assert_eq!(
            store.invitation("gina", NOW).expect("read"),
            None,
            "{name}: a reset ends it"
        );
    }
}

/// On a local socket (no TLS), the same session limits are accepted: the
/// server ignores the TCP ones there, and the store works as over TCP.
#[test]
fn a_store_on_the_local_socket_opens_with_the_session_limits() {
    let pg = Postgres::shared();
    let dir = tempfile::tempdir().expect("tmp");
    let config = PgConfig {
        host: pg.socket_dir().display().to_string(),
        tls: PgTls::LocalSocket,
        ..pg_config(&fresh_database())
    };
    let store = PgStore::open(&config, &dir.path().join("state"))
        .unwrap_or_else(|e| panic!("postgresql store on the socket: {e}"));
    store
        .insert_confirmed(&[factor("ivan", "i1")])
        .expect("insert");
    assert!(store.has_confirmed_factor("ivan").expect("read"));
}

/// A backend that can be opened again on what it holds, as a restarted
/// mfad would: the SQLite store in its state directory, or a PostgreSQL
/// database with the state directory holding the key.
struct Reopenable {
    name: &'static str,
    dir: tempfile::TempDir,
    /// The PostgreSQL database; `None` for SQLite.
    database: Option<String>,
}

impl Reopenable {
    fn state(&self) -> std::path::PathBuf {
        self.dir.path().join("state")
    }

    fn open(&self) -> Arc<dyn Store> {
        match &self.database {
            None => Arc::new(SqliteStore::open(&self.state()).expect("sqlite")),
            Some(database) => Arc::new(open_pg(&self.state(), database)),
        }
    }

    /// Everything the store keeps, as bytes: SQLite's files in the state
    /// directory (the key file aside), or every row of every PostgreSQL
    /// table as psql prints it (bytea in hex).
    fn stored_bytes(&self) -> Vec<u8> {
        match &self.database {
            None => {
                let mut all = Vec::new();
                for entry in std::fs::read_dir(self.state()).expect("state").flatten() {
                    if entry.file_name() != mfad::store::KEY_FILE {
                        all.extend(std::fs::read(entry.path()).expect("read"));
                    }
                }
                all
            }
            Some(database) => {
                let pg = Postgres::shared();
                let tables = pg.psql(
                    database,
                    "SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY 1",
                );
                let mut all = String::new();
                for table in tables.lines().filter(|t| !t.is_empty()) {
                    all.push_str(&pg.psql(database, &format!("SELECT t::text FROM {table} t")));
                }
                all.into_bytes()
            }
        }
    }
}

fn reopenables() -> Vec<Reopenable> {
    vec![
        Reopenable {
            name: "sqlite",
            dir: tempfile::tempdir().expect("tmp"),
            database: None,
        },
        Reopenable {
            name: "postgresql",
            dir: tempfile::tempdir().expect("tmp"),
            database: Some(fresh_database()),
        },
    ]
}

const TOTP_KEY: &[u8] = b"12345678901234567890";
const TOTP_NOW: u64 = 1_700_000_010;
const TOTP_LIMITS: FactorLimits = FactorLimits {
    max_pending: 3,
    max_factors: 20,
};
const TOTP_LOCKOUT: Lockout = Lockout {
    max_failures: 10,
    unlock_after: 900,
};

fn totp() -> Totp {
    Totp {
        skew: 1,
        max_drift: 10,
        defaults: Default::default(),
    }
}

fn pending_totp(user: &str, id: &str) -> FactorRecord {
    FactorRecord {
        id: id.into(),
        user: user.into(),
        kind: FactorKind::Totp,
        label: "phone".into(),
        counter: 0,
        data: FactorData::Otp(OtpParams {
            secret: TOTP_KEY.to_vec(),
            algorithm: Algorithm::Sha1,
            digits: 6,
            period: 30,
            drift: 0,
        }),
        confirmed: false,
        approved: false,
        created: TOTP_NOW,
        last_used: 0,
        expires: TOTP_NOW + 600,
    }
}

/// The TOTP code `step_offset` steps from TOTP_NOW.
fn totp_code(step_offset: i64) -> String {
    hotp(
        TOTP_KEY,
        ((TOTP_NOW / 30) as i64 + step_offset) as u64,
        6,
        Algorithm::Sha1,
    )
}

fn otp(factor: &FactorRecord, code: &str, now: u64) -> Verdict {
    totp().verify(factor, &(), &Response::Text(code.to_string()), now)
}

/// Whether the store accepts the code `step_offset` steps from TOTP_NOW
/// for `user`'s factor `<user>-f1`.
fn accepts(store: &dyn Store, user: &str, step_offset: i64) -> bool {
    let code = totp_code(step_offset);
    matches!(
        store
            .check_factor(
                user,
                &format!("{user}-f1"),
                TOTP_NOW,
                TOTP_LOCKOUT,
                &mut |f| otp(f, &code, TOTP_NOW)
            )
            .expect("check"),
        CodeCheck::Accepted(_)
    )
}

/// Enrol and confirm `<user>-f1` (a TOTP factor) for each user.
fn confirm_totp(store: &dyn Store, users: &[&str]) {
    for user in users {
        let id = format!("{user}-f1");
        store
            .insert_pending(&pending_totp(user, &id), TOTP_LIMITS)
            .expect("insert");
        let confirmed = store
            .confirm(user, &id, TOTP_NOW, TOTP_LIMITS, &mut |f| {
                otp(f, &totp_code(-1), TOTP_NOW)
            })
            .expect("confirm");
        assert!(
            matches!(confirmed, Confirmation::Confirmed(_)),
            "{confirmed:?}"
        );
    }
}

#[test]
fn a_code_is_used_once_and_the_counter_survives_a_reopen() {
    for backend in reopenables() {
        let name = backend.name;
        {
            let store = backend.open();
            confirm_totp(store.as_ref(), &["alice"]);
            assert!(accepts(store.as_ref(), "alice", 0), "{name}");
            assert!(!accepts(store.as_ref(), "alice", 0), "{name}: used twice");
        }
        let store = backend.open();
        assert!(
            !accepts(store.as_ref(), "alice", 0),
            "{name}: used again after a reopen"
        );
        assert!(accepts(store.as_ref(), "alice", 1), "{name}: next step");
    }
}

#[test]
fn a_lockout_survives_a_reopen() {
    let strict = Lockout {
        max_failures: 3,
        unlock_after: 60,
    };
    for backend in reopenables() {
        let name = backend.name;
        {
            let store = backend.open();
            confirm_totp(store.as_ref(), &["alice"]);
            for _ in 0..3 {
                store
                    .check_factor("alice", "alice-f1", TOTP_NOW, strict, &mut |_| {
                        Verdict::Reject
                    })
                    .expect("check");
            }
        }
        let store = backend.open();
        let mut checked = false;
        let locked = store
            .check_factor("alice", "alice-f1", TOTP_NOW + 59, strict, &mut |_| {
                checked = true;
                accept(u64::MAX / 4)
            })
            .expect("check");
        assert!(
            matches!(locked, CodeCheck::Locked { until } if until == TOTP_NOW + 60),
            "{name}: {locked:?}"
        );
        assert!(!checked, "{name}: a locked user's code was checked");
        assert!(
            matches!(
                store
                    .check_factor("alice", "alice-f1", TOTP_NOW + 60, strict, &mut |_| {
                        accept(u64::MAX / 4)
                    })
                    .expect("check"),
                CodeCheck::Accepted(_)
            ),
            "{name}: the lockout ends"
        );
        assert!(
            matches!(
                store
                    .check_factor("alice", "alice-f1", TOTP_NOW + 60, strict, &mut |_| {
                        Verdict::Reject
                    })
                    .expect("check"),
                CodeCheck::Rejected { failures: 1, .. }
            ),
            "{name}: success reset the count"
        );
    }
}

#[test]
fn pending_factors_are_not_usable_and_expire() {
    for (name, store, _dir) in backends() {
        store
            .insert_pending(&pending_totp("bob", "bob-f1"), TOTP_LIMITS)
            .expect("insert");
        assert!(!accepts(store.as_ref(), "bob", 0), "{name}: pending used");
        assert_eq!(
            store.factors("bob", TOTP_NOW).expect("list").len(),
            1,
            "{name}"
        );
        assert!(
            store
                .factors("bob", TOTP_NOW + 601)
                .expect("list")
                .is_empty(),
            "{name}: not expired"
        );
        let late = store
            .confirm("bob", "bob-f1", TOTP_NOW + 601, TOTP_LIMITS, &mut |f| {
                otp(f, &totp_code(0), TOTP_NOW)
            })
            .expect("confirm");
        assert!(matches!(late, Confirmation::NotFound), "{name}: {late:?}");
        let wrong = store
            .confirm("bob", "bob-f1", TOTP_NOW, TOTP_LIMITS, &mut |_| {
                Verdict::Reject
            })
            .expect("confirm");
        assert!(
            matches!(wrong, Confirmation::WrongCode),
            "{name}: {wrong:?}"
        );
        assert!(
            !store.factors("bob", TOTP_NOW).expect("list")[0].confirmed,
            "{name}: confirmed by a wrong code"
        );
    }
}

#[test]
fn a_confirmed_import_is_all_or_nothing() {
    for (name, store, _dir) in backends() {
        let mut a = pending_totp("alice", "a1");
        a.confirmed = true;
        let b = FactorRecord {
            id: "a1".into(),
            user: "bob".into(),
            ..a.clone()
        };
        assert!(
            store.insert_confirmed(&[a.clone(), b]).is_err(),
            "{name}: duplicate id accepted"
        );
        assert!(
            store.users(TOTP_NOW).expect("users").is_empty(),
            "{name}: half an import kept"
        );
        store.insert_confirmed(&[a]).expect("import");
        let factors = store.factors("alice", TOTP_NOW).expect("list");
        assert_eq!(factors.len(), 1, "{name}");
        assert!(factors[0].confirmed, "{name}");
    }
}

#[test]
fn the_store_holds_no_plaintext_secret() {
    for backend in reopenables() {
        let name = backend.name;
        let store = backend.open();
        confirm_totp(store.as_ref(), &["alice"]);
        assert!(
            accepts(store.as_ref(), "alice", 0),
            "{name}: sealed secrets still verify"
        );
        drop(store);
        let bytes = backend.stored_bytes();
        assert!(
            bytes.windows(b"alice-f1".len()).any(|w| w == b"alice-f1"),
            "{name}: the dump holds no factor row"
        );
        let base32 = mfad::mechanism::otpauth::encode_base32(TOTP_KEY);
        let hex: String = TOTP_KEY.iter().map(|b| format!("{b:02x}")).collect();
        for needle in [
            TOTP_KEY,
            base32.as_bytes(),
            b"GEZDGNBVGY3TQOJQ",
            hex.as_bytes(),
        ] {
            assert!(
                !bytes.windows(needle.len()).any(|w| w == needle),
                "{name}: found {:?}",
                String::from_utf8_lossy(needle)
            );
        }
    }
}

/// A database left by an older mfad — only the schema steps up to version
/// 1 or 2, holding rows — is brought to the current version when mfad
/// opens it: every row kept and still working, the new tables usable, and
/// a second start changes nothing.
#[test]
fn an_old_postgresql_schema_is_migrated_keeping_its_rows() {
    use mfad::store::postgres::schema;
    let pg = Postgres::shared();
    let scalar = |database: &str, sql: &str| pg.psql(database, sql).trim().to_string();
    for old in [1i64, 2] {
        let dir = tempfile::tempdir().expect("tmp");
        let state = dir.path().join("state");
        // The rows, written by this mfad (with its key) into a scratch
        // database: the tables of versions 1 and 2 are as they were made.
        let scratch = fresh_database();
        let source = open_pg(&state, &scratch);
        fill(&source);
        let mut expected = source.export().expect("export");
        drop(source);
        expected.invitations.clear(); // a version 3 table

        let database = fresh_database();
        let steps: String = schema::STEPS
            .iter()
            .filter(|(v, _)| *v <= old)
            .map(|(_, sql)| *sql)
            .collect();
        pg.psql(&database, &steps);
        for table in [
            "factors",
            "recovery_codes",
            "lockout",
            "user_settings",
            "trusted_devices",
        ] {
            let rows = pg.psql(&scratch, &format!("COPY {table} TO STDOUT"));
            assert!(!rows.trim().is_empty(), "version {old}: no {table} rows");
            pg.psql_input(&database, &format!("COPY {table} FROM STDIN"), &rows);
        }
        let meta = pg.psql(
            &scratch,
            "COPY (SELECT * FROM mfa_meta WHERE key <> 'schema_version') TO STDOUT",
        );
        assert!(meta.contains("key_fingerprint"), "{meta}");
        pg.psql_input(&database, "COPY mfa_meta FROM STDIN", &meta);
        pg.psql(
            &database,
            &format!(
                "INSERT INTO mfa_meta VALUES ('schema_version', '{old}');
                 SELECT setval(pg_get_serial_sequence('factors', 'seq'), max(seq)) FROM factors;
                 SELECT setval(pg_get_serial_sequence('recovery_codes', 'id'), max(id)) FROM recovery_codes;
                 SELECT setval(pg_get_serial_sequence('trusted_devices', 'seq'), max(seq)) FROM trusted_devices;"
            ),
        );
        if old >= 2 {
            pg.psql(
                &database,
                &format!(
                    "INSERT INTO audit_log (host, time, event, user_name, service, rhost, outcome, reason, detail)
                     VALUES ('old-host', {NOW}, 'login', 'gina', 'sshd', '', 'allow', '', '')"
                ),
            );
        }
        // It really is the old schema.
        assert_eq!(
            scalar(&database, "SELECT to_regclass('invitations') IS NULL"),
            "t",
            "version {old}"
        );
        assert_eq!(
            scalar(&database, "SELECT to_regclass('audit_log') IS NULL"),
            if old < 2 { "t" } else { "f" },
            "version {old}"
        );

        let store = open_pg(&state, &database);
        let version_sql = "SELECT value FROM mfa_meta WHERE key = 'schema_version'";
        assert_eq!(
            scalar(&database, version_sql),
            schema::VERSION.to_string(),
            "version {old}: not migrated"
        );
        assert_eq!(
            store.export().expect("export"),
            expected,
            "version {old}: rows changed"
        );
        if old >= 2 {
            assert_eq!(
                scalar(
                    &database,
                    "SELECT count(*) FROM audit_log WHERE host = 'old-host'"
                ),
                "1",
                "version {old}: audit row lost"
            );
        }
        // What it held still works: the counter goes on, the used
        // recovery code stays used, the new table takes an invitation.
        let check = store
            .check_factor("gina", "g1", NOW, LENIENT, &mut |f| accept(f.counter + 1))
            .expect("check");
        assert!(
            matches!(check, CodeCheck::Accepted(ref f) if f.counter == 8),
            "version {old}: {check:?}"
        );
        assert_eq!(
            store.unused_recovery_codes("gina").expect("codes").len(),
            1,
            "version {old}"
        );
        store
            .put_invitation("gina", "g2", 2100, NOW)
            .expect("invite");
        assert!(
            store
                .invitation("gina", NOW)
                .expect("invitation")
                .is_some_and(|i| i.factor == "g2"),
            "version {old}"
        );
        let after = store.export().expect("export");
        drop(store);
        // Another host starting on it: nothing to do, nothing changed.
        let again = open_pg(&state, &database);
        assert_eq!(again.export().expect("export"), after, "version {old}");
        assert_eq!(scalar(&database, version_sql), schema::VERSION.to_string());
    }
}

/// A server that offers no TLS (it answers PostgreSQL's SSLRequest with
/// "N") is refused when TLS is required, with an error that says so, and
/// mfad sends it nothing in plaintext: no startup message, no user name.
#[test]
fn a_server_that_offers_no_tls_is_refused() {
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let (told, heard) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { continue };
            conn.set_read_timeout(Some(Duration::from_secs(10)))
                .expect("timeout");
            let mut request = [0u8; 8];
            let asked = conn.read_exact(&mut request).is_ok();
            let _ = conn.write_all(b"N");
            // Whatever the client sends next, until it hangs up.
            let mut after = Vec::new();
            let _ = conn.read_to_end(&mut after);
            let _ = told.send((asked.then_some(request), after));
        }
    });
    let dir = tempfile::tempdir().expect("tmp");
    let config = PgConfig {
        host: "127.0.0.1".into(),
        port,
        ..pg_config("mfa")
    };
    let err = PgStore::open(&config, &dir.path().join("state"))
        .err()
        .expect("a server without TLS refused");
    assert!(
        err.to_string().contains("server does not support TLS"),
        "{err}"
    );
    let (request, after) = heard
        .recv_timeout(Duration::from_secs(10))
        .expect("mfad connected");
    // SSLRequest: length 8, code 80877103.
    assert_eq!(
        request,
        Some([0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f]),
        "mfad did not ask for TLS first"
    );
    assert!(
        !after.windows(4).any(|w| w == b"user") && !after.windows(3).any(|w| w == b"mfa"),
        "sent in plaintext: {:?}",
        String::from_utf8_lossy(&after)
    );
}

/// A certificate from the right CA for another host name is refused: the
/// same server is accepted while its certificate names `localhost`, and
/// refused once it names another host.
#[test]
fn a_certificate_for_another_host_name_is_refused() {
    let pg = Postgres::start();
    let config = |database: &str| PgConfig {
        port: pg.port(),
        tls: PgTls::VerifyFull {
            ca_file: pg.ca_file(),
        },
        ..pg_config(database)
    };
    let dir = tempfile::tempdir().expect("tmp");
    PgStore::open(&config(&pg.database()), &dir.path().join("state"))
        .unwrap_or_else(|e| panic!("the certificate for localhost: {e}"));
    pg.reissue_certificate("DNS:db.example.org", "db.example.org");
    let other = tempfile::tempdir().expect("tmp");
    let err = PgStore::open(&config(&pg.database()), &other.path().join("state"))
        .err()
        .expect("a certificate for another name refused");
    let said = err.to_string();
    assert!(
        said.contains("certificate not valid for name \"localhost\""),
        "{said}"
    );
}

#[test]
fn the_users_table_and_a_reset() {
    for (name, store, _dir) in backends() {
        confirm_totp(store.as_ref(), &["alice", "bob"]);
        store
            .insert_pending(&pending_totp("carol", "c1"), TOTP_LIMITS)
            .expect("insert");
        let users = store.users(TOTP_NOW).expect("users");
        let names: Vec<_> = users.iter().map(|u| u.user.as_str()).collect();
        assert_eq!(names, ["alice", "bob", "carol"], "{name}");
        assert_eq!(users[0].methods, [FactorKind::Totp], "{name}");
        assert_eq!((users[2].factors, users[2].pending), (0, 1), "{name}");
        assert!(
            store.has_confirmed_factor("alice").expect("lookup"),
            "{name}"
        );
        assert!(
            !store.has_confirmed_factor("carol").expect("lookup"),
            "{name}: pending only"
        );
        assert_eq!(store.remove_user("alice").expect("reset"), 1, "{name}");
        assert!(
            !store.has_confirmed_factor("alice").expect("lookup"),
            "{name}"
        );
        assert!(
            !store.remove_factor("bob", "alice-f1").expect("remove"),
            "{name}: not bob's factor"
        );
        assert!(
            store.remove_factor("bob", "bob-f1").expect("remove"),
            "{name}"
        );
    }
}

#[test]
fn an_admin_unlock_clears_the_lockout() {
    let forever = Lockout {
        max_failures: 1,
        unlock_after: 0,
    };
    for (name, store, _dir) in backends() {
        confirm_totp(store.as_ref(), &["alice"]);
        store
            .check_factor("alice", "alice-f1", TOTP_NOW, forever, &mut |_| {
                Verdict::Reject
            })
            .expect("check");
        assert!(
            store.users(TOTP_NOW + 1_000_000).expect("users")[0].locked,
            "{name}"
        );
        assert!(
            matches!(
                store
                    .check_factor(
                        "alice",
                        "alice-f1",
                        TOTP_NOW + 1_000_000,
                        forever,
                        &mut |_| { accept(1) }
                    )
                    .expect("check"),
                CodeCheck::Locked { .. }
            ),
            "{name}: unlock_after 0 locks until an admin unlocks"
        );
        assert!(store.unlock("alice", TOTP_NOW).expect("unlock"), "{name}");
        assert!(
            !store.unlock("alice", TOTP_NOW).expect("unlock"),
            "{name}: no longer locked"
        );
        assert!(!store.users(TOTP_NOW).expect("users")[0].locked, "{name}");
    }
}
