//! The embedded store: one SQLite database in the state directory, WAL
//! journal, `synchronous = FULL`. Every change is one transaction that is on
//! disk before the caller hears about it, so a kill -9 or a power cut never
//! moves a counter back. Lookups go through the `user` index.

mod schema;
mod settings;
mod snapshot;

use super::history::{self, History, SqliteHistory};
use super::record::{self, FactorRecord};
use super::seal::{Sealer, KEY_FILE};
use super::{
    counter_to_sql, prepare_state_dir, Advanced, CodeCheck, Confirmation, FactorLimits,
    FactorStore, Inserted, Lockout, RecoveryUse, StoreError, UserRow,
};
use crate::mechanism::{Advance, FactorData, FactorKind, Verdict};
use rusqlite::{params, Connection, Row, TransactionBehavior};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};

pub const DB_FILE: &str = "mfa.sqlite";
/// Written next to the database once `mfactl store migrate` copied it
/// elsewhere: says where, and keeps this copy from being used again.
pub const MOVED_FILE: &str = "mfa.sqlite.moved";

pub(super) fn sql(context: &'static str) -> impl FnOnce(rusqlite::Error) -> StoreError {
    move |source| StoreError::Backend {
        context,
        message: source.to_string(),
        unavailable: false,
    }
}

fn confirmed_count(tx: &rusqlite::Transaction<'_>, user: &str) -> Result<u32, StoreError> {
    tx.query_row(
        "SELECT COUNT(*) FROM factors WHERE user = ?1 AND confirmed = 1",
        params![user],
        |row| row.get(0),
    )
    .map_err(sql("count factors"))
}

pub struct SqliteStore {
    path: PathBuf,
    sealer: Sealer,
    conn: Mutex<Connection>,
    /// Where the store was moved to while mfad runs: every call fails.
    moved: std::sync::OnceLock<String>,
}

impl SqliteStore {
    /// Open the store in `state_dir`, creating both if missing. An existing
    /// database that fails its integrity check is refused, never replaced.
    pub fn open(state_dir: &Path) -> Result<SqliteStore, StoreError> {
        prepare_state_dir(state_dir)?;
        let path = state_dir.join(DB_FILE);
        let unusable = |message: String| StoreError::Unusable {
            path: path.clone(),
            message,
        };
        // A key without its database is a store that was lost (deleted,
        // emptied, a botched restore), not a new one: starting afresh would
        // silently drop every factor, counter and lockout.
        let key_path = state_dir.join(KEY_FILE);
        let lost = |what: &str| {
            unusable(format!(
                "it is {what} but its key file {} exists: the store was lost. Restore both \
                 from backup; only for a new installation whose first start was cut short, \
                 remove the key file to begin with an empty store",
                key_path.display()
            ))
        };
        if !path.exists() && key_path.exists() {
            return Err(lost("missing"));
        }
        let moved = state_dir.join(MOVED_FILE);
        if let Ok(to) = std::fs::read_to_string(&moved) {
            return Err(unusable(format!(
                "it was moved to {} by `mfactl store migrate`: name that database in [store] \
                 of mfad.toml. Only to go back to this older copy, remove {}",
                to.trim(),
                moved.display()
            )));
        }
        // SQLite gives the -wal and -shm files the mode of the database file.
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o600)
            .open(&path)
            .map_err(|e| unusable(format!("cannot open: {e}")))?;
        let conn = Connection::open(&path).map_err(|e| unusable(e.to_string()))?;
        // The key comes first: a crash between the two leaves an empty
        // database and a key (refused as a lost store, whose message says
        // what to do), never tables without their key.
        let fresh = schema::is_fresh(&conn).map_err(unusable)?;
        if fresh && key_path.exists() {
            return Err(lost("empty"));
        }
        let sealer = Sealer::load(&key_path, fresh).map_err(unusable)?;
        schema::prepare(&conn, &sealer).map_err(unusable)?;
        Ok(SqliteStore {
            sealer,
            path,
            conn: Mutex::new(conn),
            moved: std::sync::OnceLock::new(),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn conn(&self) -> Result<MutexGuard<'_, Connection>, StoreError> {
        // A panic while holding the lock cannot leave a half-done change:
        // the transaction rolls back when dropped. Keep going.
        let conn = self
            .conn
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        match self.moved.get() {
            // Its copy is the store now: a change here would be lost, a
            // used code accepted again.
            Some(to) => Err(StoreError::Moved(to.clone())),
            None => Ok(conn),
        }
    }

    /// Write `factor` as it is (its data sealed), in the caller's transaction.
    fn insert_factor(&self, tx: &Connection, factor: &FactorRecord) -> Result<(), StoreError> {
        let sealed = self.seal(&factor.data, &factor.id, &factor.user)?;
        tx.prepare_cached(
            "INSERT INTO factors (id, user, kind, label, data, counter, confirmed, created, last_used, expires, approved)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
        )
        .and_then(|mut stmt| {
            stmt.execute(params![
                factor.id,
                factor.user,
                factor.kind.name(),
                factor.label,
                sealed,
                counter_to_sql(factor.counter),
                factor.confirmed,
                factor.created as i64,
                factor.last_used as i64,
                factor.expires as i64,
                factor.approved,
            ])
        })
        .map_err(sql("insert factor"))?;
        Ok(())
    }

    fn seal(&self, data: &FactorData, id: &str, user: &str) -> Result<Vec<u8>, StoreError> {
        self.sealer
            .seal(&record::encode(data), id, user)
            .map_err(StoreError::Seal)
    }

    /// Record that `factor` moved to `advance`, in the caller's transaction.
    fn apply(
        &self,
        tx: &Connection,
        factor: &mut FactorRecord,
        advance: Advance,
    ) -> Result<(), StoreError> {
        if let Some(data) = advance.data {
            let sealed = self.seal(&data, &factor.id, &factor.user)?;
            tx.execute(
                "UPDATE factors SET data = ?1 WHERE id = ?2",
                params![sealed, factor.id],
            )
            .map_err(sql("record the factor's data"))?;
            factor.data = data;
        }
        tx.execute(
            "UPDATE factors SET counter = ?1 WHERE id = ?2",
            params![counter_to_sql(advance.counter), factor.id],
        )
        .map_err(sql("move the counter"))?;
        factor.counter = advance.counter;
        Ok(())
    }
}

impl FactorStore for SqliteStore {
    /// The audit history, in a database file of its own next to the store
    /// (so writing it never holds the store's write lock).
    fn history(&self) -> Result<History, StoreError> {
        let dir = self.path.parent().unwrap_or(Path::new("."));
        History::start(std::sync::Arc::new(SqliteHistory::open(
            &dir.join(history::HISTORY_FILE),
        )?))
    }

    /// Whether `user` has a confirmed factor: one indexed lookup, no secret
    /// opened (every login's Start asks this).
    fn has_confirmed_factor(&self, user: &str) -> Result<bool, StoreError> {
        let conn = self.conn()?;
        conn.prepare_cached(
            "SELECT EXISTS (SELECT 1 FROM factors WHERE user = ?1 AND confirmed = 1)",
        )
        .and_then(|mut stmt| stmt.query_row(params![user], |r| r.get(0)))
        .map_err(sql("look up factors"))
    }

    /// `user`'s confirmed factor `id`, its data opened.
    fn factor(&self, user: &str, id: &str) -> Result<Option<FactorRecord>, StoreError> {
        let conn = self.conn()?;
        Ok(query_factors(
            &conn,
            &self.sealer,
            "SELECT * FROM factors WHERE id = ?1 AND user = ?2 AND confirmed = 1",
            params![id, user],
        )?
        .into_iter()
        .next())
    }

    /// Every factor of `user`, with pending ones that have not expired.
    fn factors(&self, user: &str, now: u64) -> Result<Vec<FactorRecord>, StoreError> {
        let conn = self.conn()?;
        query_factors(
            &conn,
            &self.sealer,
            "SELECT * FROM factors WHERE user = ?1 AND (confirmed = 1 OR expires > ?2) ORDER BY created, rowid",
            params![user, now as i64],
        )
    }

    /// Check a response against `user`'s confirmed factor `id` and record
    /// the outcome, as one transaction: two logins racing with the same code
    /// cannot both see the old counter, and parallel wrong answers are each
    /// counted. A locked user's answer is not checked at all; a factor that
    /// is gone is a wrong answer.
    fn check_factor(
        &self,
        user: &str,
        id: &str,
        now: u64,
        lockout: Lockout,
        verify: &mut dyn FnMut(&FactorRecord) -> Verdict,
    ) -> Result<CodeCheck, StoreError> {
        let mut conn = self.conn()?;
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(sql("begin"))?;
        let (failures, locked_until) = lockout_row(&tx, user)?;
        if locked_until > now {
            return Ok(CodeCheck::Locked {
                until: locked_until,
            });
        }
        let factor = query_factors(
            &tx,
            &self.sealer,
            "SELECT * FROM factors WHERE id = ?1 AND user = ?2 AND confirmed = 1",
            params![id, user],
        )?
        .into_iter()
        .next();
        let verdict = factor.as_ref().map(verify).unwrap_or(Verdict::Reject);
        let (mut factor, advance) = match (factor, verdict) {
            (Some(factor), Verdict::Accept(advance)) => (factor, advance),
            (_, verdict) => {
                let (failures, locked_until) = count_failure(&tx, user, failures, now, lockout)?;
                tx.commit().map_err(sql("commit failure"))?;
                return Ok(CodeCheck::Rejected {
                    failures,
                    locked_until,
                    suspicious: match verdict {
                        Verdict::Suspicious(why) => Some(why),
                        _ => None,
                    },
                    wrong: match verdict {
                        Verdict::Wrong(why) => Some(why),
                        _ => None,
                    },
                });
            }
        };
        self.apply(&tx, &mut factor, advance)?;
        tx.execute(
            "UPDATE factors SET last_used = ?1 WHERE id = ?2",
            params![now as i64, factor.id],
        )
        .map_err(sql("record use"))?;
        tx.execute("DELETE FROM lockout WHERE user = ?1", params![user])
            .map_err(sql("reset failures"))?;
        tx.commit().map_err(sql("commit use"))?;
        factor.last_used = now;
        Ok(CodeCheck::Accepted(factor))
    }

    /// Replace all of `user`'s recovery codes with these hashes.
    fn replace_recovery_codes(
        &self,
        user: &str,
        hashes: &[String],
        now: u64,
    ) -> Result<(), StoreError> {
        let mut conn = self.conn()?;
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(sql("begin"))?;
        tx.execute("DELETE FROM recovery_codes WHERE user = ?1", params![user])
            .map_err(sql("drop recovery codes"))?;
        for hash in hashes {
            tx.execute(
                "INSERT INTO recovery_codes (user, hash, used, created) VALUES (?1, ?2, 0, ?3)",
                params![user, hash, now as i64],
            )
            .map_err(sql("store recovery code"))?;
        }
        tx.commit().map_err(sql("commit recovery codes"))
    }

    /// Until when `user` is locked out; 0 if not locked.
    fn locked_until(&self, user: &str, now: u64) -> Result<u64, StoreError> {
        let conn = self.conn()?;
        let (_, until) = lockout_row(&conn, user)?;
        Ok(if until > now { until } else { 0 })
    }

    /// `user`'s unused recovery codes: (row id, hash).
    fn unused_recovery_codes(&self, user: &str) -> Result<Vec<(i64, String)>, StoreError> {
        let conn = self.conn()?;
        let mut stmt = conn
            .prepare_cached("SELECT rowid, hash FROM recovery_codes WHERE user = ?1 AND used = 0")
            .map_err(sql("read recovery codes"))?;
        let rows = stmt
            .query_map(params![user], |r| Ok((r.get(0)?, r.get(1)?)))
            .map_err(sql("read recovery codes"))?;
        rows.collect::<Result<_, _>>()
            .map_err(sql("read recovery codes"))
    }

    /// Use the recovery code `rowid` (found to match outside any lock,
    /// because the hash is slow), or count a failure when `rowid` is
    /// `None`: one transaction, so of two logins racing with one code only
    /// one gets it.
    fn use_recovery_code(
        &self,
        user: &str,
        rowid: Option<i64>,
        now: u64,
        lockout: Lockout,
    ) -> Result<RecoveryUse, StoreError> {
        let mut conn = self.conn()?;
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(sql("begin"))?;
        let (failures, locked_until) = lockout_row(&tx, user)?;
        if locked_until > now {
            return Ok(RecoveryUse::Locked);
        }
        let used = match rowid {
            Some(rowid) => tx
                .execute(
                    "UPDATE recovery_codes SET used = 1 WHERE rowid = ?1 AND user = ?2 AND used = 0",
                    params![rowid, user],
                )
                .map_err(sql("use recovery code"))?,
            None => 0,
        };
        if used == 0 {
            let (failures, locked_until) = count_failure(&tx, user, failures, now, lockout)?;
            tx.commit().map_err(sql("commit failure"))?;
            return Ok(RecoveryUse::Rejected {
                failures,
                locked_until,
            });
        }
        tx.execute("DELETE FROM lockout WHERE user = ?1", params![user])
            .map_err(sql("reset failures"))?;
        let left: i64 = tx
            .query_row(
                "SELECT count(*) FROM recovery_codes WHERE user = ?1 AND used = 0",
                params![user],
                |r| r.get(0),
            )
            .map_err(sql("count recovery codes"))?;
        tx.commit().map_err(sql("commit recovery use"))?;
        Ok(RecoveryUse::Used {
            left: u32::try_from(left).unwrap_or(0),
        })
    }

    /// Clear a user's failures and lockout; true if they were locked.
    fn unlock(&self, user: &str, now: u64) -> Result<bool, StoreError> {
        let mut conn = self.conn()?;
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(sql("begin"))?;
        let (_, locked_until) = lockout_row(&tx, user)?;
        tx.execute("DELETE FROM lockout WHERE user = ?1", params![user])
            .map_err(sql("unlock"))?;
        tx.commit().map_err(sql("commit unlock"))?;
        Ok(locked_until > now)
    }

    /// Add an unconfirmed factor; it cannot be used until confirmed.
    /// Add a pending enrolment within `limits`, in one transaction: expired
    /// ones go, and the oldest pending ones make room.
    fn insert_pending(
        &self,
        factor: &FactorRecord,
        limits: FactorLimits,
    ) -> Result<Inserted, StoreError> {
        let mut conn = self.conn()?;
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(sql("begin"))?;
        if confirmed_count(&tx, &factor.user)? >= limits.max_factors {
            return Ok(Inserted::TooManyFactors);
        }
        tx.execute(
            "DELETE FROM factors WHERE user = ?1 AND confirmed = 0 AND expires <= ?2",
            params![factor.user, factor.created as i64],
        )
        .map_err(sql("drop expired enrolments"))?;
        let replaced: Vec<String> = {
            let mut oldest = tx
                .prepare(
                    "SELECT id FROM factors WHERE user = ?1 AND confirmed = 0
                     ORDER BY created DESC, rowid DESC LIMIT -1 OFFSET ?2",
                )
                .map_err(sql("pending enrolments"))?;
            let ids = oldest
                .query_map(
                    params![factor.user, i64::from(limits.max_pending.saturating_sub(1))],
                    |row| row.get(0),
                )
                .map_err(sql("pending enrolments"))?
                .collect::<Result<_, _>>()
                .map_err(sql("pending enrolments"))?;
            ids
        };
        for id in &replaced {
            tx.execute("DELETE FROM factors WHERE id = ?1", params![id])
                .map_err(sql("replace a pending enrolment"))?;
        }
        let pending = FactorRecord {
            confirmed: false,
            last_used: 0,
            ..factor.clone()
        };
        self.insert_factor(&tx, &pending)?;
        tx.commit().map_err(sql("commit enrolment"))?;
        Ok(Inserted::Added { replaced })
    }

    /// Add a factor that is confirmed already (a key whose credential was
    /// just made), within `limits`, in one transaction.
    fn insert_confirmed_within(
        &self,
        factor: &FactorRecord,
        limits: FactorLimits,
    ) -> Result<Inserted, StoreError> {
        let mut conn = self.conn()?;
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(sql("begin"))?;
        if confirmed_count(&tx, &factor.user)? >= limits.max_factors {
            return Ok(Inserted::TooManyFactors);
        }
        let confirmed = FactorRecord {
            confirmed: true,
            expires: 0,
            ..factor.clone()
        };
        self.insert_factor(&tx, &confirmed)?;
        tx.commit().map_err(sql("commit factor"))?;
        Ok(Inserted::Added {
            replaced: Vec::new(),
        })
    }

    /// Add already-confirmed factors and recovery codes in one transaction
    /// (imports, and seeding large stores for benchmarks). All or nothing.
    fn insert_imported(
        &self,
        factors: &[FactorRecord],
        recovery_codes: &[(String, String)],
        now: u64,
    ) -> Result<(), StoreError> {
        let mut conn = self.conn()?;
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(sql("begin"))?;
        for factor in factors {
            let confirmed = FactorRecord {
                confirmed: true,
                expires: 0,
                ..factor.clone()
            };
            self.insert_factor(&tx, &confirmed)?;
        }
        for (user, hash) in recovery_codes {
            tx.execute(
                "INSERT INTO recovery_codes (user, hash, used, created) VALUES (?1, ?2, 0, ?3)",
                params![user, hash, now as i64],
            )
            .map_err(sql("store recovery code"))?;
        }
        tx.commit().map_err(sql("commit import"))
    }

    /// Confirm a pending factor of `user` with a code, in one transaction.
    fn confirm(
        &self,
        user: &str,
        id: &str,
        now: u64,
        limits: FactorLimits,
        verify: &mut dyn FnMut(&FactorRecord) -> Verdict,
    ) -> Result<Confirmation, StoreError> {
        let mut conn = self.conn()?;
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(sql("begin"))?;
        if confirmed_count(&tx, user)? >= limits.max_factors {
            return Ok(Confirmation::TooManyFactors);
        }
        let found = query_factors(
            &tx,
            &self.sealer,
            "SELECT * FROM factors WHERE id = ?1 AND user = ?2 AND confirmed = 0 AND expires > ?3",
            params![id, user, now as i64],
        )?;
        let Some(mut factor) = found.into_iter().next() else {
            return Ok(Confirmation::NotFound);
        };
        let Verdict::Accept(advance) = verify(&factor) else {
            return Ok(Confirmation::WrongCode);
        };
        self.apply(&tx, &mut factor, advance)?;
        tx.execute(
            "UPDATE factors SET confirmed = 1, expires = 0 WHERE id = ?1",
            params![id],
        )
        .map_err(sql("confirm"))?;
        tx.commit().map_err(sql("commit confirmation"))?;
        factor.confirmed = true;
        factor.expires = 0;
        Ok(Confirmation::Confirmed(factor))
    }

    fn advance_factor(
        &self,
        user: &str,
        id: &str,
        advance: &mut dyn FnMut(&FactorRecord) -> Option<Advance>,
    ) -> Result<Advanced, StoreError> {
        let mut conn = self.conn()?;
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(sql("begin"))?;
        let found = query_factors(
            &tx,
            &self.sealer,
            "SELECT * FROM factors WHERE id = ?1 AND user = ?2 AND confirmed = 1",
            params![id, user],
        )?;
        let Some(mut factor) = found.into_iter().next() else {
            return Ok(Advanced::NotFound);
        };
        let Some(advance) = advance(&factor) else {
            return Ok(Advanced::Unchanged);
        };
        self.apply(&tx, &mut factor, advance)?;
        tx.commit().map_err(sql("commit"))?;
        Ok(Advanced::Moved(factor))
    }

    /// Remove one factor of `user`; false if there was none with that id.
    fn remove_factor(&self, user: &str, id: &str) -> Result<bool, StoreError> {
        let conn = self.conn()?;
        let n = conn
            .execute(
                "DELETE FROM factors WHERE id = ?1 AND user = ?2",
                params![id, user],
            )
            .map_err(sql("remove factor"))?;
        Ok(n > 0)
    }

    /// Remove every factor, recovery code, setting and trusted device of
    /// `user`; returns how many factors.
    fn remove_user(&self, user: &str) -> Result<u32, StoreError> {
        let mut conn = self.conn()?;
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(sql("begin"))?;
        let n = tx
            .execute("DELETE FROM factors WHERE user = ?1", params![user])
            .map_err(sql("reset user"))?;
        for table in [
            "recovery_codes",
            "user_settings",
            "trusted_devices",
            "invitations",
        ] {
            tx.execute(
                &format!("DELETE FROM {table} WHERE user = ?1"),
                params![user],
            )
            .map_err(sql("reset user"))?;
        }
        tx.commit().map_err(sql("commit reset"))?;
        Ok(u32::try_from(n).unwrap_or(u32::MAX))
    }

    /// Every user with a factor (pending ones count only until they expire).
    fn users(&self, now: u64) -> Result<Vec<UserRow>, StoreError> {
        let conn = self.conn()?;
        let mut stmt = conn
            .prepare_cached(
                "SELECT user, kind, confirmed, last_used FROM factors
                 WHERE confirmed = 1 OR expires > ?1 ORDER BY user",
            )
            .map_err(sql("list users"))?;
        let rows = stmt
            .query_map(params![now as i64], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, bool>(2)?,
                    r.get::<_, i64>(3)?,
                ))
            })
            .map_err(sql("list users"))?;
        let mut users: Vec<UserRow> = Vec::new();
        for row in rows {
            let (user, kind, confirmed, last_used) = row.map_err(sql("list users"))?;
            if users.last().map(|u| u.user != user).unwrap_or(true) {
                users.push(UserRow {
                    user,
                    methods: Vec::new(),
                    factors: 0,
                    pending: 0,
                    last_used: 0,
                    locked: false,
                });
            }
            let Some(entry) = users.last_mut() else {
                continue;
            };
            if confirmed {
                entry.factors += 1;
                if let Some(kind) = FactorKind::from_name(&kind) {
                    if !entry.methods.contains(&kind) {
                        entry.methods.push(kind);
                        entry.methods.sort();
                    }
                }
            } else {
                entry.pending += 1;
            }
            entry.last_used = entry.last_used.max(last_used.max(0) as u64);
        }
        let mut stmt = conn
            .prepare_cached("SELECT user FROM lockout WHERE locked_until > ?1")
            .map_err(sql("list lockouts"))?;
        let locked = stmt
            .query_map(params![now as i64], |r| r.get::<_, String>(0))
            .map_err(sql("list lockouts"))?
            .collect::<Result<std::collections::HashSet<String>, _>>()
            .map_err(sql("list lockouts"))?;
        for user in users.iter_mut() {
            user.locked = locked.contains(&user.user);
        }
        Ok(users)
    }

    fn hash_key(&self) -> Result<[u8; 32], StoreError> {
        Ok(self.sealer.hash_key())
    }

    fn export(&self) -> Result<super::Snapshot, StoreError> {
        snapshot::export(&mut *self.conn()?, &self.sealer)
    }

    fn move_to(
        &self,
        to: &str,
        copy: &mut dyn FnMut(&super::Snapshot) -> Result<(), StoreError>,
    ) -> Result<super::Snapshot, StoreError> {
        snapshot::move_to(self, to, copy)
    }

    fn import(&self, snapshot: &super::Snapshot) -> Result<(), StoreError> {
        snapshot::import(self, snapshot)
    }
}

/// Count one more failure for `user` (who had `failures` in a row), locking
/// them out when that reaches the limit. Part of the caller's transaction.
/// Returns the failures in a row now, and until when the user is locked
/// (0 = not locked).
fn count_failure(
    tx: &Connection,
    user: &str,
    failures: u32,
    now: u64,
    lockout: Lockout,
) -> Result<(u32, u64), StoreError> {
    let failures = failures.saturating_add(1);
    let locked_until = if failures >= lockout.max_failures {
        match lockout.unlock_after {
            0 => i64::MAX as u64,
            after => now.saturating_add(after),
        }
    } else {
        0
    };
    tx.execute(
        "INSERT INTO lockout (user, failures, locked_until) VALUES (?1, ?2, ?3)
         ON CONFLICT (user) DO UPDATE SET failures = ?2, locked_until = ?3",
        params![user, failures, counter_to_sql(locked_until)],
    )
    .map_err(sql("count failure"))?;
    Ok((failures, locked_until))
}

/// (consecutive failures, locked until) of `user`; (0, 0) if none.
fn lockout_row(conn: &Connection, user: &str) -> Result<(u32, u64), StoreError> {
    let mut stmt = conn
        .prepare_cached("SELECT failures, locked_until FROM lockout WHERE user = ?1")
        .map_err(sql("read lockout"))?;
    let mut rows = stmt.query(params![user]).map_err(sql("read lockout"))?;
    match rows.next().map_err(sql("read lockout"))? {
        Some(row) => {
            let failures: i64 = row.get(0).map_err(sql("read lockout"))?;
            let until: i64 = row.get(1).map_err(sql("read lockout"))?;
            Ok((
                u32::try_from(failures).unwrap_or(u32::MAX),
                until.max(0) as u64,
            ))
        }
        None => Ok((0, 0)),
    }
}

fn query_factors(
    conn: &Connection,
    sealer: &Sealer,
    query: &str,
    params: impl rusqlite::Params,
) -> Result<Vec<FactorRecord>, StoreError> {
    let mut stmt = conn.prepare_cached(query).map_err(sql("prepare"))?;
    let rows = stmt
        .query_map(params, |r| row_to_factor(r, sealer))
        .map_err(sql("read factors"))?;
    let mut out = Vec::new();
    for row in rows {
        out.push(
            row.map_err(sql("read factor"))?
                .map_err(StoreError::Corrupt)?,
        );
    }
    Ok(out)
}

/// A row with its data opened, or what is wrong with it (a value this mfad
/// cannot have written, data that does not open or does not fit its kind).
fn row_to_factor(r: &Row<'_>, sealer: &Sealer) -> rusqlite::Result<Result<FactorRecord, String>> {
    let (id, user, kind): (String, String, String) = (r.get("id")?, r.get("user")?, r.get("kind")?);
    let sealed: Vec<u8> = r.get("data")?;
    let Some(kind) = FactorKind::from_name(&kind) else {
        return Ok(Err(format!("factor {id}: unknown kind {kind:?}")));
    };
    let data = match sealer
        .open(&sealed, &id, &user)
        .and_then(|plain| record::decode(kind, &plain).map_err(|e| format!("factor {id}: {e}")))
    {
        Ok(data) => data,
        Err(e) => return Ok(Err(e)),
    };
    let nonneg = |v: i64| v.max(0) as u64;
    Ok(Ok(FactorRecord {
        id,
        user,
        kind,
        label: r.get("label")?,
        counter: nonneg(r.get("counter")?),
        data,
        confirmed: r.get("confirmed")?,
        approved: r.get("approved")?,
        created: nonneg(r.get("created")?),
        last_used: nonneg(r.get("last_used")?),
        expires: nonneg(r.get("expires")?),
    }))
}

#[cfg(test)]
mod tests;
