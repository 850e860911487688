//! The history of one host: `history.sqlite` beside the store, a file of
//! its own so that its writes never hold the store's write lock (which a
//! login's code check needs), with `synchronous = NORMAL`: the last rows
//! before a power cut may be lost here, never in syslog.

use super::{hostname, HistoryLog, HistoryRow, KEEP_DAYS};
use crate::store::sqlite::sql;
use crate::store::StoreError;
use rusqlite::{params, Connection};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::sync::Mutex;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS audit_log (
    id      INTEGER PRIMARY KEY,
    time    INTEGER NOT NULL,
    event   TEXT NOT NULL,
    user    TEXT NOT NULL,
    service TEXT NOT NULL,
    rhost   TEXT NOT NULL,
    outcome TEXT NOT NULL,
    reason  TEXT NOT NULL,
    detail  TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS audit_log_by_time ON audit_log (time);
CREATE INDEX IF NOT EXISTS audit_log_by_user ON audit_log (user, time);
";

pub struct SqliteHistory {
    /// The writer thread's connection, and the one queries use.
    writer: Mutex<Connection>,
    reader: Mutex<Connection>,
    /// Every row here is this host's.
    host: String,
}

impl SqliteHistory {
    pub fn open(path: &Path) -> Result<SqliteHistory, StoreError> {
        // Private like the store (SQLite gives -wal and -shm the same mode).
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o600)
            .open(path)
            .map_err(|e| StoreError::Unusable {
                path: path.to_path_buf(),
                message: format!("cannot open: {e}"),
            })?;
        let writer = connect(path)?;
        writer
            .execute_batch(&format!("PRAGMA journal_mode = WAL; {SCHEMA}"))
            .map_err(sql("create history"))?;
        Ok(SqliteHistory {
            writer: Mutex::new(writer),
            reader: Mutex::new(connect(path)?),
            host: hostname(),
        })
    }
}

fn connect(path: &Path) -> Result<Connection, StoreError> {
    let conn = Connection::open(path).map_err(sql("open history"))?;
    conn.execute_batch("PRAGMA synchronous = NORMAL;")
        .map_err(sql("open history"))?;
    conn.busy_timeout(std::time::Duration::from_secs(5))
        .map_err(sql("open history"))?;
    Ok(conn)
}

impl HistoryLog for SqliteHistory {
    fn write(&self, rows: &[HistoryRow]) -> Result<(), StoreError> {
        let conn = self.writer.lock().unwrap_or_else(|p| p.into_inner());
        let tx = conn.unchecked_transaction().map_err(sql("begin history"))?;
        for row in rows {
            tx.prepare_cached(
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
        }
        // Now and then, not on every batch: drop what is past keeping.
        if let Some(last) = rows.last().filter(|r| r.time.is_multiple_of(64)) {
            let cutoff = last.time.saturating_sub(KEEP_DAYS * 86_400) as i64;
            tx.execute("DELETE FROM audit_log WHERE time < ?1", params![cutoff])
                .map_err(sql("prune history"))?;
        }
        tx.commit().map_err(sql("commit history"))
    }

    fn latest(
        &self,
        user: Option<&str>,
        since: u64,
        limit: u32,
    ) -> Result<Vec<HistoryRow>, StoreError> {
        let conn = self.reader.lock().unwrap_or_else(|p| p.into_inner());
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
                    host: self.host.clone(),
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
        rows.collect::<Result<Vec<_>, _>>()
            .map_err(sql("read history"))
    }
}
