//! The queryable audit history behind `mfactl audit`: one row per login
//! decision or change, on its own connection with `synchronous = NORMAL`
//! (WAL: a row survives a crash of mfad, and at worst the last rows a power
//! cut; syslog has them too), so recording a decision adds no disk flush to
//! a login.

use super::{sql, StoreError};
use rusqlite::{params, Connection};
use std::path::Path;
use std::sync::Mutex;

/// Rows kept; older ones are dropped as new ones come.
const KEEP_DAYS: u64 = 400;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistoryRow {
    pub time: u64,
    /// `login` or `change:<action>`.
    pub event: String,
    pub user: String,
    pub service: String,
    pub rhost: String,
    /// allow, deny, retry, start, cancel; for changes, the action.
    pub outcome: String,
    pub reason: String,
    /// The other fields, `key=value` separated by spaces.
    pub detail: String,
}

pub struct History {
    conn: Mutex<Connection>,
}

impl History {
    /// A second connection to the open store at `path` (its schema is ready).
    pub(super) fn open(path: &Path) -> Result<History, StoreError> {
        let conn = Connection::open(path).map_err(sql("open history"))?;
        conn.execute_batch("PRAGMA synchronous = NORMAL;")
            .map_err(sql("open history"))?;
        conn.busy_timeout(std::time::Duration::from_secs(5))
            .map_err(sql("open history"))?;
        Ok(History {
            conn: Mutex::new(conn),
        })
    }

    pub fn append(&self, row: &HistoryRow) -> Result<(), StoreError> {
        let conn = self.conn.lock().unwrap_or_else(|p| p.into_inner());
        conn.prepare_cached(
            "INSERT INTO audit_log (time, event, user, service, rhost, outcome, reason, detail)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        )
        .and_then(|mut stmt| {
            stmt.execute(params![
                row.time as i64,
                row.event,
                row.user,
                row.service,
                row.rhost,
                row.outcome,
                row.reason,
                row.detail
            ])
        })
        .map_err(sql("append history"))?;
        // Now and then, not on every row: drop what is past keeping.
        if row.time.is_multiple_of(64) {
            let cutoff = row.time.saturating_sub(KEEP_DAYS * 86_400) as i64;
            conn.execute("DELETE FROM audit_log WHERE time < ?1", params![cutoff])
                .map_err(sql("prune history"))?;
        }
        Ok(())
    }

    /// Rows from `since` on, of `user` if given, oldest first, at most `limit`
    /// (the most recent ones).
    pub fn query(
        &self,
        user: Option<&str>,
        since: u64,
        limit: u32,
    ) -> Result<Vec<HistoryRow>, StoreError> {
        let conn = self.conn.lock().unwrap_or_else(|p| p.into_inner());
        let mut stmt = conn
            .prepare_cached(
                "SELECT time, event, user, service, rhost, outcome, reason, detail FROM audit_log
                 WHERE time >= ?1 AND (?2 IS NULL OR user = ?2)
                 ORDER BY id DESC LIMIT ?3",
            )
            .map_err(sql("read history"))?;
        let rows = stmt
            .query_map(params![since as i64, user, limit], |r| {
                Ok(HistoryRow {
                    time: r.get::<_, i64>(0)?.max(0) as u64,
                    event: r.get(1)?,
                    user: r.get(2)?,
                    service: r.get(3)?,
                    rhost: r.get(4)?,
                    outcome: r.get(5)?,
                    reason: r.get(6)?,
                    detail: r.get(7)?,
                })
            })
            .map_err(sql("read history"))?;
        let mut out = rows
            .collect::<Result<Vec<_>, _>>()
            .map_err(sql("read history"))?;
        out.reverse();
        Ok(out)
    }
}
