use super::*;
use crate::mechanism::otp::hotp;
use crate::mechanism::{Mechanism, Totp};
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::sync::Arc;

const KEY: &[u8] = b"12345678901234567890";
const NOW: u64 = 1_700_000_010;

fn pending(user: &str, id: &str) -> FactorRecord {
    FactorRecord {
        id: id.into(),
        user: user.into(),
        kind: FactorKind::Totp,
        label: "phone".into(),
        params: OtpParams {
            secret: KEY.to_vec(),
            algorithm: Algorithm::Sha1,
            digits: 6,
            period: 30,
            counter: 0,
        },
        confirmed: false,
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

fn confirmed_store(dir: &Path, users: &[&str]) -> Store {
    let store = Store::open(dir).expect("open");
    let totp = Totp { skew: 1 };
    for user in users {
        let id = format!("{user}-f1");
        store.insert_pending(&pending(user, &id)).expect("insert");
        match store
            .confirm(user, &id, NOW, |f| totp.verify(&f.params, &code(-1), NOW))
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
    let _store = Store::open(&dir).expect("open");
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
        Store::open(tmp.path()),
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
            Store::open(&dir),
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
fn code_used_once_and_counter_survives_reopen() {
    let (_tmp, dir) = state();
    let totp = Totp { skew: 1 };
    {
        let store = confirmed_store(&dir, &["alice"]);
        let used = store
            .use_code("alice", NOW, |f| totp.verify(&f.params, &code(0), NOW))
            .expect("use");
        assert!(used.is_some());
        assert!(store
            .use_code("alice", NOW, |f| totp.verify(&f.params, &code(0), NOW))
            .expect("use")
            .is_none());
    }
    let store = Store::open(&dir).expect("reopen");
    assert!(store
        .use_code("alice", NOW, |f| totp.verify(&f.params, &code(0), NOW))
        .expect("use")
        .is_none());
    assert!(store
        .use_code("alice", NOW, |f| totp.verify(&f.params, &code(1), NOW))
        .expect("use")
        .is_some());
}

#[test]
fn twenty_racing_checks_of_one_code_accept_exactly_one() {
    let (_tmp, dir) = state();
    let store = Arc::new(confirmed_store(&dir, &["alice"]));
    let handles: Vec<_> = (0..20)
        .map(|_| {
            let store = Arc::clone(&store);
            std::thread::spawn(move || {
                let totp = Totp { skew: 1 };
                store
                    .use_code("alice", NOW, |f| totp.verify(&f.params, &code(0), NOW))
                    .expect("use")
                    .is_some()
            })
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
fn pending_factors_are_not_usable_and_expire() {
    let (_tmp, dir) = state();
    let store = Store::open(&dir).expect("open");
    store.insert_pending(&pending("bob", "b1")).expect("insert");
    let totp = Totp { skew: 1 };
    assert!(store
        .use_code("bob", NOW, |f| totp.verify(&f.params, &code(0), NOW))
        .expect("use")
        .is_none());
    assert_eq!(store.factors("bob", NOW).expect("list").len(), 1);
    assert!(store.factors("bob", NOW + 601).expect("list").is_empty());
    let late = store
        .confirm("bob", "b1", NOW + 601, |f| {
            totp.verify(&f.params, &code(0), NOW)
        })
        .expect("confirm");
    assert!(matches!(late, Confirmation::NotFound));
    let wrong = store.confirm("bob", "b1", NOW, |_| None).expect("confirm");
    assert!(matches!(wrong, Confirmation::WrongCode));
    assert!(
        !store.factors("bob", NOW).expect("list")[0].confirmed,
        "still pending after a wrong code"
    );
}

#[test]
fn users_table_and_reset() {
    let (_tmp, dir) = state();
    let store = confirmed_store(&dir, &["alice", "bob"]);
    store
        .insert_pending(&pending("carol", "c1"))
        .expect("insert");
    let users = store.users(NOW).expect("users");
    let names: Vec<_> = users.iter().map(|u| u.user.as_str()).collect();
    assert_eq!(names, ["alice", "bob", "carol"]);
    assert_eq!(users[0].methods, [FactorKind::Totp]);
    assert_eq!((users[2].factors, users[2].pending), (0, 1));
    assert_eq!(store.remove_user("alice").expect("reset"), 1);
    assert!(store.confirmed_factors("alice").expect("list").is_empty());
    assert!(
        !store.remove_factor("bob", "alice-f1").expect("remove"),
        "not bob's factor"
    );
    assert!(store.remove_factor("bob", "bob-f1").expect("remove"));
}

#[test]
fn confirmed_import_is_all_or_nothing() {
    let (_tmp, dir) = state();
    let store = Store::open(&dir).expect("open");
    let mut a = pending("alice", "a1");
    a.confirmed = true;
    let b = FactorRecord {
        id: "a1".into(),
        user: "bob".into(),
        ..a.clone()
    };
    assert!(
        store.insert_confirmed(&[a.clone(), b]).is_err(),
        "duplicate id"
    );
    assert!(
        store.users(NOW).expect("users").is_empty(),
        "nothing imported"
    );
    store.insert_confirmed(&[a]).expect("import");
    assert_eq!(store.confirmed_factors("alice").expect("list").len(), 1);
}
