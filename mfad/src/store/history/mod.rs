//! The queryable audit history behind `mfactl audit`: one row per login
//! decision or change, stamped with the host that made it. Where the rows
//! go is the store's choice ([`HistoryLog`]): `history.sqlite` beside the
//! SQLite store, or the fleet's PostgreSQL, where `mfactl audit` on any
//! host shows every host's decisions. A writer thread takes the rows in
//! batches, so recording a decision costs a login nothing; rows it cannot
//! write yet (the database down) wait and are tried again, up to a bound.
//! Rows not yet written when mfad is killed are lost here — syslog has
//! every line too. A query first waits for what was sent.

mod sqlite;

pub(super) use sqlite::SqliteHistory;

use super::StoreError;
use std::sync::mpsc::{channel, Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub const HISTORY_FILE: &str = "history.sqlite";

/// Rows kept; older ones are dropped as new ones come.
pub(super) const KEEP_DAYS: u64 = 400;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistoryRow {
    /// The host that recorded it ([`History::append`] stamps it).
    pub host: String,
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

/// Where the rows are kept.
pub(super) trait HistoryLog: Send + Sync {
    /// Write `rows` in one transaction.
    fn write(&self, rows: &[HistoryRow]) -> Result<(), StoreError>;
    /// Rows from `since` on, of `user` if given, the latest `limit`, newest
    /// first.
    fn latest(
        &self,
        user: Option<&str>,
        since: u64,
        limit: u32,
    ) -> Result<Vec<HistoryRow>, StoreError>;
}

/// What the writer thread is sent.
enum Job {
    Row(HistoryRow),
    /// Answer once everything sent before is written (or was tried).
    Flush(Sender<()>),
}

pub struct History {
    jobs: Mutex<Sender<Job>>,
    log: Arc<dyn HistoryLog>,
    host: String,
}

/// Rows taken from the queue in one go at most.
const BATCH: usize = 256;
/// Rows kept for a log that cannot be written (the oldest go first).
const MAX_WAITING: usize = 10_000;
/// How soon rows that could not be written are tried again.
const RETRY: Duration = Duration::from_secs(5);

impl History {
    /// Start the writer thread for `log`.
    pub(super) fn start(log: Arc<dyn HistoryLog>) -> Result<History, StoreError> {
        let (jobs, queue) = channel();
        let writer = Arc::clone(&log);
        std::thread::Builder::new()
            .name("mfad-history".into())
            .spawn(move || write_rows(writer.as_ref(), &queue))
            .map_err(|e| StoreError::Backend {
                context: "start the history writer",
                message: e.to_string(),
                unavailable: false,
            })?;
        Ok(History {
            jobs: Mutex::new(jobs),
            log,
            host: hostname(),
        })
    }

    /// Queue `row`, stamped with this host; it is written soon, off the
    /// caller's thread.
    pub fn append(&self, mut row: HistoryRow) -> Result<(), StoreError> {
        row.host.clone_from(&self.host);
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

    /// Rows from `since` on, of `user` if given, oldest first, at most `limit`
    /// (the most recent ones).
    pub fn query(
        &self,
        user: Option<&str>,
        since: u64,
        limit: u32,
    ) -> Result<Vec<HistoryRow>, StoreError> {
        self.flush();
        let mut rows = self.log.latest(user, since, limit)?;
        rows.reverse();
        Ok(rows)
    }
}

/// This host's name, as the history and otpauth account names show it.
pub fn hostname() -> String {
    nix::unistd::gethostname()
        .ok()
        .and_then(|h| h.into_string().ok())
        .unwrap_or_else(|| "localhost".into())
}

/// The writer thread, until mfad drops its [`History`]: rows in batches;
/// a batch that cannot be written waits for the next try (stderr says so
/// once, and again when it is written).
fn write_rows(log: &dyn HistoryLog, queue: &Receiver<Job>) {
    let mut waiting: Vec<HistoryRow> = Vec::new();
    let mut failing = false;
    loop {
        let first = if waiting.is_empty() {
            match queue.recv() {
                Ok(job) => Some(job),
                Err(_) => return,
            }
        } else {
            match queue.recv_timeout(RETRY) {
                Ok(job) => Some(job),
                Err(RecvTimeoutError::Timeout) => None,
                Err(RecvTimeoutError::Disconnected) => return,
            }
        };
        let mut flushes = Vec::new();
        for job in first.into_iter().chain(queue.try_iter().take(BATCH)) {
            match job {
                Job::Row(row) => waiting.push(row),
                Job::Flush(done) => flushes.push(done),
            }
        }
        if !waiting.is_empty() {
            match log.write(&waiting) {
                Ok(()) => {
                    if failing {
                        eprintln!("mfad: audit history: written again");
                    }
                    failing = false;
                    waiting.clear();
                }
                Err(e) => {
                    if !failing {
                        eprintln!("mfad: audit history: cannot write, trying again: {e}");
                    }
                    failing = true;
                    if waiting.len() > MAX_WAITING {
                        let dropped = waiting.len() - MAX_WAITING;
                        waiting.drain(..dropped);
                        eprintln!(
                            "mfad: audit history: {dropped} rows not recorded (syslog has them)"
                        );
                    }
                }
            }
        }
        for done in flushes {
            let _ = done.send(());
        }
    }
}
