use super::*;
use crate::mechanism::otp::hotp;
use crate::mechanism::{Algorithm, FactorData, Mechanism, OtpParams, Response, Totp, Verdict};
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::sync::Arc;

const KEY: &[u8] = b"12345678901234567890";
const NOW: u64 = 1_700_000_010;
const LIMITS: FactorLimits = FactorLimits {
    max_pending: 3,
    max_factors: 20,
};

fn pending(user: &str, id: &str) -> FactorRecord {
    FactorRecord {
        id: id.into(),
        user: user.into(),
        kind: FactorKind::Totp,
        label: "phone".into(),
        counter: 0,
        data: FactorData::Otp(OtpParams {
            secret: KEY.to_vec(),
            algorithm: Algorithm::Sha1,
            digits: 6,
            period: 30,
            drift: 0,
        }),
        confirmed: false,
        approved: false,
        created: NOW,
        last_used: 0,
        expires: NOW + 600,
    }
}

/// A fresh state directory path (not yet created) inside a temp dir.
fn state() -> (tempfile::TempDir, std::path::PathBuf) {
    let tmp = tempfile::tempdir().expect("tmp");
    let dir = tmp.path().join("state");
    (tmp, dir)
}

fn code(step_offset: i64) -> String {
    hotp(
        KEY,
        ((NOW / 30) as i64 + step_offset) as u64,
        6,
        Algorithm::Sha1,
    )
}

const LOCKOUT: Lockout = Lockout {
    max_failures: 10,
    unlock_after: 900,
};

/// Whether the store accepts alice's-style TOTP code `step_offset` steps
/// from NOW for `user`.
fn accepts(store: &SqliteStore, user: &str, step_offset: i64) -> bool {
    let totp = Totp {
        skew: 1,
        max_drift: 10,
        defaults: Default::default(),
    };
    let code = code(step_offset);
    matches!(
        store
            .check_factor(user, &format!("{user}-f1"), NOW, LOCKOUT, &mut |f| {
                otp(&totp, f, &code, NOW)
            })
            .expect("check"),
        CodeCheck::Accepted(_)
    )
}

fn confirmed_store(dir: &Path, users: &[&str]) -> SqliteStore {
    let store = SqliteStore::open(dir).expect("open");
    let totp = Totp {
        skew: 1,
        max_drift: 10,
        defaults: Default::default(),
    };
    for user in users {
        let id = format!("{user}-f1");
        store
            .insert_pending(&pending(user, &id), LIMITS)
            .expect("insert");
        match store
            .confirm(user, &id, NOW, LIMITS, &mut |f| {
                otp(&totp, f, &code(-1), NOW)
            })
            .expect("confirm")
        {
            Confirmation::Confirmed(_) => {}
            other => panic!("confirm failed: {other:?}"),
        }
    }
    store
}

#[test]
fn creates_private_dir_and_file() {
    let (_tmp, dir) = state();
    let _store = SqliteStore::open(&dir).expect("open");
    assert_eq!(
        std::fs::metadata(&dir).expect("dir").permissions().mode() & 0o777,
        0o700
    );
    let file = std::fs::metadata(dir.join(DB_FILE)).expect("file");
    assert_eq!(file.permissions().mode() & 0o777, 0o600);
}

#[test]
fn refuses_a_dir_others_can_read() {
    let tmp = tempfile::tempdir().expect("tmp");
    std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(0o755)).expect("chmod");
    assert!(matches!(
        SqliteStore::open(tmp.path()),
        Err(StoreError::StateDir { .. })
    ));
}

#[test]
fn corrupt_or_truncated_store_is_refused_and_left_alone() {
    for garbage in [
        &b"this is not a database at all, just some bytes........"[..],
        &b"SQLite format 3\0"[..],
    ] {
        let (_tmp, dir) = state();
        std::fs::DirBuilder::new()
            .mode(0o700)
            .create(&dir)
            .expect("mkdir");
        let file = dir.join(DB_FILE);
        std::fs::write(&file, garbage).expect("write");
        assert!(matches!(
            SqliteStore::open(&dir),
            Err(StoreError::Unusable { .. })
        ));
        assert_eq!(
            std::fs::read(&file).expect("read"),
            garbage,
            "refused store must be untouched"
        );
    }
}

#[test]
fn twenty_racing_checks_of_one_code_accept_exactly_one() {
    let (_tmp, dir) = state();
    let store = Arc::new(confirmed_store(&dir, &["alice"]));
    let handles: Vec<_> = (0..20)
        .map(|_| {
            let store = Arc::clone(&store);
            std::thread::spawn(move || accepts(&store, "alice", 0))
        })
        .collect();
    let accepted = handles
        .into_iter()
        .map(|h| h.join().expect("join"))
        .filter(|ok| *ok)
        .count();
    assert_eq!(accepted, 1);
}

#[test]
fn parallel_wrong_codes_are_each_counted() {
    let (_tmp, dir) = state();
    let store = Arc::new(confirmed_store(&dir, &["alice"]));
    let lenient = Lockout {
        max_failures: 100,
        unlock_after: 900,
    };
    let handles: Vec<_> = (0..20)
        .map(|_| {
            let store = Arc::clone(&store);
            std::thread::spawn(move || {
                store
                    .check_factor("alice", "alice-f1", NOW, lenient, &mut |_| Verdict::Reject)
                    .expect("check")
            })
        })
        .collect();
    let mut counts: Vec<u32> = handles
        .into_iter()
        .map(|h| match h.join().expect("join") {
            CodeCheck::Rejected { failures, .. } => failures,
            other => panic!("{other:?}"),
        })
        .collect();
    counts.sort();
    assert_eq!(
        counts,
        (1..=20).collect::<Vec<u32>>(),
        "each failure counted once"
    );
}

#[test]
fn lockout_refuses_without_checking_then_ends() {
    let (_tmp, dir) = state();
    let store = confirmed_store(&dir, &["alice"]);
    let strict = Lockout {
        max_failures: 3,
        unlock_after: 60,
    };
    for n in 1..=3u32 {
        match store
            .check_factor("alice", "alice-f1", NOW, strict, &mut |_| Verdict::Reject)
            .expect("check")
        {
            CodeCheck::Rejected {
                failures,
                locked_until,
                ..
            } => {
                assert_eq!(failures, n);
                assert_eq!(locked_until > 0, n == 3);
            }
            other => panic!("{other:?}"),
        }
    }
    let mut checked = false;
    let locked = store.check_factor("alice", "alice-f1", NOW + 59, strict, &mut |_| {
        checked = true;
        accept(1)
    });
    assert!(matches!(locked.expect("check"), CodeCheck::Locked { until } if until == NOW + 60));
    assert!(!checked, "a locked user's code is not even checked");
    let reopened = SqliteStore::open(&dir).expect("reopen");
    assert!(
        matches!(
            reopened
                .check_factor("alice", "alice-f1", NOW + 59, strict, &mut |_| accept(1))
                .expect("check"),
            CodeCheck::Locked { .. }
        ),
        "a lockout survives a restart"
    );
    assert!(matches!(
        reopened
            .check_factor("alice", "alice-f1", NOW + 60, strict, &mut |_| accept(
                u64::MAX / 4
            ))
            .expect("check"),
        CodeCheck::Accepted(_)
    ));
    assert!(
        matches!(
            reopened
                .check_factor("alice", "alice-f1", NOW + 60, strict, &mut |_| {
                    Verdict::Reject
                })
                .expect("check"),
            CodeCheck::Rejected { failures: 1, .. }
        ),
        "success reset the count"
    );
}

/// Every byte mfad keeps in the state directory, key file aside.
fn stored_bytes(dir: &Path) -> Vec<u8> {
    let mut all = Vec::new();
    for entry in std::fs::read_dir(dir).expect("state dir").flatten() {
        if entry.file_name() != KEY_FILE {
            all.extend(std::fs::read(entry.path()).expect("read"));
        }
    }
    all
}

#[test]
fn a_store_without_its_key_is_refused_not_rekeyed() {
    let (_tmp, dir) = state();
    drop(confirmed_store(&dir, &["alice"]));
    let key = dir.join(KEY_FILE);
    std::fs::remove_file(&key).expect("remove key");
    assert!(matches!(
        SqliteStore::open(&dir),
        Err(StoreError::Unusable { .. })
    ));
    assert!(!key.exists(), "no new key made for an existing store");
}

#[test]
fn a_store_with_another_key_fails_closed() {
    let (_tmp, dir) = state();
    drop(confirmed_store(&dir, &["alice"]));
    std::fs::write(dir.join(KEY_FILE), [7u8; 32]).expect("other key");
    let store = SqliteStore::open(&dir).expect("opens: the key has the right shape");
    let check = store.check_factor("alice", "alice-f1", NOW, LOCKOUT, &mut |_| accept(1));
    assert!(matches!(check, Err(StoreError::Corrupt(_))), "{check:?}");
}

#[test]
fn a_lost_store_next_to_its_key_is_refused_not_reinitialised() {
    for emptied in [true, false] {
        let (_tmp, dir) = state();
        drop(confirmed_store(&dir, &["alice"]));
        let db = dir.join(DB_FILE);
        // Whatever the WAL held is gone with the database.
        for suffix in ["-wal", "-shm"] {
            let _ = std::fs::remove_file(dir.join(format!("{DB_FILE}{suffix}")));
        }
        if emptied {
            std::fs::write(&db, b"").expect("empty");
        } else {
            std::fs::remove_file(&db).expect("remove");
        }
        match SqliteStore::open(&dir) {
            Err(StoreError::Unusable { message, .. }) => {
                assert!(message.contains(KEY_FILE), "{message}")
            }
            Err(other) => panic!("wrong error: {other}"),
            Ok(_) => panic!("a lost store was replaced by an empty one"),
        }
        assert_eq!(db.exists(), emptied, "the refused store was touched");
        if emptied {
            assert_eq!(std::fs::metadata(&db).expect("db").len(), 0);
        }
    }
}

fn accept(counter: u64) -> Verdict {
    Verdict::Accept(crate::mechanism::Advance {
        counter,
        data: None,
    })
}

/// What `totp` says of `code` for `factor` at `now`.
fn otp(totp: &Totp, factor: &FactorRecord, code: &str, now: u64) -> Verdict {
    totp.verify(factor, &(), &Response::Text(code.to_string()), now)
}

#[test]
fn pending_enrolments_and_factors_per_user_are_capped() {
    let (_tmp, dir) = state();
    let store = SqliteStore::open(&dir).expect("open");
    let limits = FactorLimits {
        max_pending: 2,
        max_factors: 1,
    };
    let at = |id: &str, created: u64| FactorRecord {
        created,
        ..pending("alice", id)
    };
    assert_eq!(
        store
            .insert_pending(&at("p1", NOW), limits)
            .expect("insert"),
        Inserted::Added { replaced: vec![] }
    );
    store
        .insert_pending(&at("p2", NOW + 1), limits)
        .expect("insert");
    assert_eq!(
        store
            .insert_pending(&at("p3", NOW + 2), limits)
            .expect("insert"),
        Inserted::Added {
            replaced: vec!["p1".into()]
        },
        "the oldest makes room"
    );
    // Someone else's enrolments are not touched.
    store
        .insert_pending(&pending("bob", "b1"), limits)
        .expect("insert");
    let ids: Vec<String> = store
        .factors("alice", NOW)
        .expect("factors")
        .into_iter()
        .map(|f| f.id)
        .collect();
    assert_eq!(ids, ["p2", "p3"]);

    let totp = Totp {
        skew: 1,
        max_drift: 0,
        defaults: Default::default(),
    };
    let confirmed = store
        .confirm("alice", "p2", NOW, limits, &mut |f| {
            otp(&totp, f, &code(0), NOW)
        })
        .expect("confirm");
    assert!(
        matches!(confirmed, Confirmation::Confirmed(_)),
        "{confirmed:?}"
    );
    let full = store
        .confirm("alice", "p3", NOW, limits, &mut |f| {
            otp(&totp, f, &code(1), NOW)
        })
        .expect("confirm");
    assert!(matches!(full, Confirmation::TooManyFactors), "{full:?}");
    assert_eq!(
        store
            .insert_pending(&at("p4", NOW + 3), limits)
            .expect("insert"),
        Inserted::TooManyFactors
    );
}

/// A store written by the mfad before per-kind data (schema 2: the OTP
/// secret sealed alone, its parameters in columns) is migrated when opened:
/// its factor still takes its codes, its counter still holds, and no
/// plaintext secret is left behind.
#[test]
fn a_version_2_store_is_migrated_and_its_factors_still_work() {
    let (_tmp, dir) = state();
    std::fs::DirBuilder::new()
        .mode(0o700)
        .create(&dir)
        .expect("state dir");
    let sealer = crate::store::seal::Sealer::load(&dir.join(KEY_FILE), true).expect("key");
    {
        let conn = rusqlite::Connection::open(dir.join(DB_FILE)).expect("db");
        conn.execute_batch(&format!(
            "{} {} PRAGMA user_version = 2;",
            schema::SCHEMA_V1,
            schema::V2
        ))
        .expect("schema 2");
        let sealed = sealer.seal(KEY, "alice-f1", "alice").expect("seal");
        let used_step = (NOW / 30) as i64;
        conn.execute(
            "INSERT INTO factors (id, user, kind, label, secret, algorithm, digits, period, counter, confirmed, created, last_used, expires, approved, drift)
             VALUES ('alice-f1', 'alice', 'totp', 'phone', ?1, 'SHA1', 6, 30, ?2, 1, 1, 0, 0, 0, 0)",
            params![sealed, used_step + 1],
        )
        .expect("a version 2 factor");
    }
    let store = SqliteStore::open(&dir).expect("migrated");
    let version: i64 = store
        .conn()
        .expect("open")
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .expect("version");
    assert_eq!(version, schema::SCHEMA_VERSION);
    let factor = store
        .factor("alice", "alice-f1")
        .expect("read")
        .expect("kept");
    assert_eq!(factor.counter, NOW / 30 + 1);
    assert_eq!(
        factor.otp().map(|p| (p.secret.clone(), p.digits, p.period)),
        Some((KEY.to_vec(), 6, 30))
    );
    assert!(
        !accepts(&store, "alice", 0),
        "the step used before stays used"
    );
    assert!(accepts(&store, "alice", 1), "the next step works");
    let columns: Vec<String> = store
        .conn()
        .expect("open")
        .prepare("SELECT name FROM pragma_table_info('factors')")
        .and_then(|mut s| s.query_map([], |r| r.get(0))?.collect())
        .expect("columns");
    assert!(!columns.contains(&"secret".to_string()), "{columns:?}");
    drop(store);
    let bytes = stored_bytes(&dir);
    assert!(
        !bytes.windows(KEY.len()).any(|w| w == KEY),
        "plaintext secret"
    );
}

/// A confirmed security key of `user` whose credential id and public key
/// are recognisable bytes.
fn key_factor(user: &str, id: &str, tag: u8) -> FactorRecord {
    use crate::mechanism::fido2::{Credential, PublicKey};
    let mut point = vec![4u8];
    point.extend((0..64u8).map(|i| i.wrapping_mul(7) ^ tag));
    FactorRecord {
        kind: FactorKind::Fido2,
        label: "yubi".into(),
        data: FactorData::Fido2(Credential {
            id: credential_id(tag),
            public_key: PublicKey::from_parts("es256", point).expect("point"),
            rp_id: "pam://testhost".into(),
            presence: true,
            verification: false,
        }),
        confirmed: true,
        expires: 0,
        ..pending(user, id)
    }
}

fn credential_id(tag: u8) -> Vec<u8> {
    (0..48u8).map(|i| i.wrapping_mul(13) ^ tag ^ 0x5a).collect()
}

#[test]
fn a_keys_public_key_and_credential_id_are_sealed_and_bound_to_their_row() {
    use data_encoding::{BASE64, BASE64URL_NOPAD, HEXLOWER};
    let (_tmp, dir) = state();
    let store = SqliteStore::open(&dir).expect("open");
    let factors = [
        key_factor("alice", "alice-k1", 1),
        key_factor("alice", "alice-k2", 2),
        key_factor("bob", "bob-k1", 3),
    ];
    store.insert_confirmed(&factors).expect("insert");
    assert_eq!(
        store.factor("alice", "alice-k1").expect("read"),
        Some(factors[0].clone()),
        "sealed data opens in its own row"
    );

    // Nothing of a key in the clear, in any encoding, in any file.
    let bytes = stored_bytes(&dir);
    for f in &factors {
        let FactorData::Fido2(c) = &f.data else {
            unreachable!("keys only")
        };
        let public = c.public_key.bytes();
        for raw in [&c.id[..], public, &public[1..33]] {
            for needle in [
                raw.to_vec(),
                HEXLOWER.encode(raw).into_bytes(),
                BASE64.encode(raw).into_bytes(),
                BASE64URL_NOPAD.encode(raw).into_bytes(),
            ] {
                assert!(
                    !bytes.windows(needle.len()).any(|w| w == needle.as_slice()),
                    "{} of {} in the clear",
                    String::from_utf8_lossy(&needle),
                    f.id
                );
            }
        }
    }
    drop(store);

    // Whoever can write the file swaps sealed blobs: another user's key into
    // alice's row, and alice's two keys with each other.
    let db = rusqlite::Connection::open(dir.join(DB_FILE)).expect("open the file");
    let blob = |id: &str| -> Vec<u8> {
        db.query_row("SELECT data FROM factors WHERE id = ?1", [id], |r| r.get(0))
            .expect("blob")
    };
    let (a1, a2, b1) = (blob("alice-k1"), blob("alice-k2"), blob("bob-k1"));
    let put = |id: &str, data: &[u8]| {
        db.execute(
            "UPDATE factors SET data = ?1 WHERE id = ?2",
            rusqlite::params![data, id],
        )
        .expect("swap");
    };
    put("alice-k1", &b1);
    put("alice-k2", &a1);
    put("bob-k1", &a2);
    drop(db);

    let store = SqliteStore::open(&dir).expect("reopen");
    for (user, id) in [
        ("alice", "alice-k1"),
        ("alice", "alice-k2"),
        ("bob", "bob-k1"),
    ] {
        match store.factor(user, id) {
            Err(StoreError::Corrupt(why)) => assert!(
                why.contains(&format!("factor {id}: secret does not open")),
                "{why}"
            ),
            other => panic!("{id}: a swapped blob opened: {other:?}"),
        }
        // A login with it is refused as the store's failure, never checked.
        let checked = store.check_factor(user, id, NOW, LOCKOUT, &mut |_| {
            panic!("{id}: a swapped key reached verification")
        });
        assert!(
            matches!(checked, Err(StoreError::Corrupt(_))),
            "{id}: {checked:?}"
        );
    }
    // Put back where they were, they open again: only the binding failed.
    let db = rusqlite::Connection::open(dir.join(DB_FILE)).expect("open the file");
    for (id, data) in [("alice-k1", &a1), ("alice-k2", &a2), ("bob-k1", &b1)] {
        db.execute(
            "UPDATE factors SET data = ?1 WHERE id = ?2",
            rusqlite::params![data, id],
        )
        .expect("restore");
    }
    drop(db);
    assert_eq!(
        store.factor("bob", "bob-k1").expect("read"),
        Some(factors[2].clone())
    );
}
