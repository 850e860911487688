//! What mfad's store holds, read straight from its SQLite file: the counters,
//! failure counts and recovery codes that a PAM login cannot show. The
//! crash, disk and disconnect tests compare them before and after a fault.
//!
//! [`snapshot`] opens the database read-only (it never writes it and never
//! checkpoints the WAL) and closes it before returning. [`open_for_damage`]
//! is for the tests that break a row on purpose, through SQLite, so mfad's
//! own connection sees the change.

use rusqlite::{Connection, OpenFlags};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The database file in mfad's state directory.
pub fn db_path(state_dir: &Path) -> PathBuf {
    state_dir.join(mfad::store::DB_FILE)
}

/// The parts of the store that replay protection and lockout rest on.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Snapshot {
    /// Factor id → counter (HOTP: the next counter expected; TOTP: the
    /// lowest time step still accepted).
    pub counters: BTreeMap<String, u64>,
    /// Factor id → confirmed.
    pub confirmed: BTreeMap<String, bool>,
    /// User → failed codes in a row (absent: none).
    pub failures: BTreeMap<String, u32>,
    /// User → unused recovery codes (absent: none).
    pub unused_recovery: BTreeMap<String, u32>,
    /// User → recovery codes, used or not (absent: none).
    pub recovery_rows: BTreeMap<String, u32>,
}

impl Snapshot {
    pub fn counter(&self, factor: &str) -> u64 {
        *self
            .counters
            .get(factor)
            .unwrap_or_else(|| panic!("factor {factor} is not in the store: {self:#?}"))
    }
    pub fn failures(&self, user: &str) -> u32 {
        self.failures.get(user).copied().unwrap_or(0)
    }
    pub fn unused_recovery(&self, user: &str) -> u32 {
        self.unused_recovery.get(user).copied().unwrap_or(0)
    }
}

/// Read the store in `state_dir` as it is now, read-only.
pub fn snapshot(state_dir: &Path) -> Snapshot {
    let path = db_path(state_dir);
    let conn = Connection::open_with_flags(
        &path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .unwrap_or_else(|e| panic!("cannot open {} read-only: {e}", path.display()));
    conn.busy_timeout(crate::QUICK)
        .expect("cannot set a busy timeout");
    let read = || -> rusqlite::Result<Snapshot> {
        let mut snap = Snapshot::default();
        let mut stmt = conn.prepare("SELECT id, counter, confirmed FROM factors")?;
        let rows = stmt.query_map([], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, i64>(1)?,
                r.get::<_, bool>(2)?,
            ))
        })?;
        for row in rows {
            let (id, counter, confirmed) = row?;
            snap.counters.insert(id.clone(), counter.max(0) as u64);
            snap.confirmed.insert(id, confirmed);
        }
        let mut stmt = conn.prepare("SELECT user, failures FROM lockout")?;
        let rows = stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, u32>(1)?)))?;
        for row in rows {
            let (user, failures) = row?;
            snap.failures.insert(user, failures);
        }
        let mut stmt =
            conn.prepare("SELECT user, count(*), sum(used = 0) FROM recovery_codes GROUP BY user")?;
        let rows = stmt.query_map([], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, u32>(1)?,
                r.get::<_, u32>(2)?,
            ))
        })?;
        for row in rows {
            let (user, all, unused) = row?;
            snap.recovery_rows.insert(user.clone(), all);
            snap.unused_recovery.insert(user, unused);
        }
        Ok(snap)
    };
    let snap = read().unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    drop(conn);
    snap
}

/// A read-write connection to the store, for tests that damage a row on
/// purpose while mfad runs (SQLite takes care of the locking).
pub fn open_for_damage(state_dir: &Path) -> Connection {
    let path = db_path(state_dir);
    let conn = Connection::open_with_flags(
        &path,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .unwrap_or_else(|e| panic!("cannot open {}: {e}", path.display()));
    conn.busy_timeout(Duration::from_secs(10))
        .expect("cannot set a busy timeout");
    conn
}
