//! The queryable audit history behind `mfactl audit`: one row per login
//! decision or change, in `history.sqlite` beside the store — a file of its
//! own, so its writes never hold the store's write lock, which a login's
//! code check needs. A writer thread takes the rows, in batches, with
//! `synchronous = NORMAL`, so recording a decision costs a login nothing. The price: rows not yet written when
//! mfad is killed, or the last ones before a power cut, are lost here —
//! syslog has every line too. A query first waits for what was sent.

use super::sqlite::sql;
use super::StoreError;
use rusqlite::{params, Connection};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::sync::mpsc::{channel, Receiver, Sender};

pub const HISTORY_FILE: &str = "history.sqlite";

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

/// What the writer thread is sent.
enum Job {
    Row(HistoryRow),
    /// Answer once everything sent before is written.
    Flush(Sender<()>),
}

pub struct History {
    jobs: Mutex<Sender<Job>>,
    conn: Mutex<Connection>,
}

/// Rows written in one transaction at most.
const BATCH: usize = 256;

impl History {
    /// Connections of its own to the open store at `path` (its schema is
    /// ready): one for the writer thread, one for queries.
    pub(super) fn open(path: &Path) -> Result<History, StoreError> {
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
        let conn = connect(path)?;
        let (jobs, queue) = channel();
        std::thread::Builder::new()
            .name("mfad-history".into())
            .spawn(move || write_rows(&writer, &queue))
            .map_err(|e| StoreError::Unusable {
                path: path.to_path_buf(),
                message: format!("cannot start the history writer: {e}"),
            })?;
        Ok(History {
            jobs: Mutex::new(jobs),
            conn: Mutex::new(conn),
        })
    }

    /// Queue `row`; it is written soon, off the caller's thread.
    pub fn append(&self, row: HistoryRow) -> Result<(), StoreError> {
        let jobs = self.jobs.lock().unwrap_or_else(|p| p.into_inner());
        jobs.send(Job::Row(row))
            .map_err(|_| StoreError::Corrupt("the history writer stopped".into()))
    }

    /// Wait until every row queued so far is written.
    fn flush(&self) {
        let (done, wait) = channel();
        let sent = {
            let jobs = self.jobs.lock().unwrap_or_else(|p| p.into_inner());
            jobs.send(Job::Flush(done)).is_ok()
        };
        if sent {
            let _ = wait.recv();
        }
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

/// The writer thread: rows in batches, one transaction each, until mfad
/// drops its [`History`]. A batch that cannot be written is reported on
/// stderr and dropped; syslog has the lines.
fn write_rows(conn: &Connection, queue: &Receiver<Job>) {
    while let Ok(first) = queue.recv() {
        let mut rows = Vec::new();
        let mut flushes = Vec::new();
        for job in std::iter::once(first).chain(queue.try_iter().take(BATCH)) {
            match job {
                Job::Row(row) => rows.push(row),
                Job::Flush(done) => flushes.push(done),
            }
        }
        if !rows.is_empty() {
            if let Err(e) = insert(conn, &rows) {
                eprintln!("mfad: audit history: {} rows not recorded: {e}", rows.len());
            }
        }
        for done in flushes {
            let _ = done.send(());
        }
    }
}

fn insert(conn: &Connection, rows: &[HistoryRow]) -> Result<(), StoreError> {
    let tx = conn.unchecked_transaction().map_err(sql("begin history"))?;
    for row in rows {
        append_row(&tx, row)?;
    }
    tx.commit().map_err(sql("commit history"))
}

fn append_row(conn: &Connection, row: &HistoryRow) -> Result<(), StoreError> {
    {
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
}

impl History {
    /// Rows from `since` on, of `user` if given, oldest first, at most `limit`
    /// (the most recent ones).
    pub fn query(
        &self,
        user: Option<&str>,
        since: u64,
        limit: u32,
    ) -> Result<Vec<HistoryRow>, StoreError> {
        self.flush();
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
