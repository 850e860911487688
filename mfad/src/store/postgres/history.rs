//! The fleet's audit history: every host's rows in one table, each with
//! the host's name, so `mfactl audit` on any host shows them all.

use super::Db;
use crate::store::history::{HistoryLog, HistoryRow, KEEP_DAYS};
use crate::store::StoreError;
use std::sync::Arc;

pub struct PgHistory {
    db: Arc<Db>,
}

impl PgHistory {
    pub fn new(db: Arc<Db>) -> PgHistory {
        PgHistory { db }
    }
}

impl HistoryLog for PgHistory {
    fn write(&self, rows: &[HistoryRow]) -> Result<(), StoreError> {
        self.db.block("append history", async {
            let mut conn = self.db.checkout().await?;
            let tx = conn.client.transaction().await?;
            let insert = tx
                .prepare(
                    "INSERT INTO audit_log (host, time, event, user_name, service, rhost, outcome, reason, detail)
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
                )
                .await?;
            for row in rows {
                tx.execute(
                    &insert,
                    &[
                        &row.host,
                        &(row.time as i64),
                        &row.event,
                        &row.user,
                        &row.service,
                        &row.rhost,
                        &row.outcome,
                        &row.reason,
                        &row.detail,
                    ],
                )
                .await?;
            }
            if let Some(last) = rows.last().filter(|r| r.time.is_multiple_of(64)) {
                let cutoff = last.time.saturating_sub(KEEP_DAYS * 86_400) as i64;
                tx.execute("DELETE FROM audit_log WHERE time < $1", &[&cutoff])
                    .await?;
            }
            tx.commit().await?;
            self.db.checkin(conn);
            Ok(())
        })
    }

    fn latest(
        &self,
        user: Option<&str>,
        since: u64,
        limit: u32,
    ) -> Result<Vec<HistoryRow>, StoreError> {
        self.db.block("read history", async {
            let conn = self.db.checkout().await?;
            let rows = conn
                .client
                .query(
                    "SELECT host, time, event, user_name, service, rhost, outcome, reason, detail
                     FROM audit_log WHERE time >= $1 AND ($2::text IS NULL OR user_name = $2)
                     ORDER BY id DESC LIMIT $3",
                    &[&(since as i64), &user, &i64::from(limit)],
                )
                .await?;
            self.db.checkin(conn);
            Ok(rows
                .iter()
                .map(|r| HistoryRow {
                    host: r.get(0),
                    time: r.get::<_, i64>(1).max(0) as u64,
                    event: r.get(2),
                    user: r.get(3),
                    service: r.get(4),
                    rhost: r.get(5),
                    outcome: r.get(6),
                    reason: r.get(7),
                    detail: r.get(8),
                })
                .collect())
        })
    }
}
