//! Copying the whole store out and into an empty database (`mfactl store
//! migrate`). Secrets are sealed again with this store's key.

use super::{counter_to_sql, Conn, PgStore, FACTOR_COLUMNS};
use crate::store::{DeviceRow, InvitationRow, RecoveryRow, Snapshot, StoreError};
use std::time::Duration;

/// A copy is one transaction however big the store is: longer than the
/// deadline of a login's call.
const COPY_DEADLINE: Duration = Duration::from_secs(600);

/// The tables a copy reads and fills; `lockout` too, though rows of it
/// alone (made by a failed login) do not make a database "in use".
const HOLDING: &str = "factors, recovery_codes, user_settings, trusted_devices, invitations";

/// The session's `statement_timeout` is a login's deadline; a copy's
/// statements may take as long as the copy.
fn long_statements() -> String {
    format!(
        "SET LOCAL statement_timeout = {}",
        COPY_DEADLINE.as_millis()
    )
}

pub(super) fn export(store: &PgStore) -> Result<Snapshot, StoreError> {
    store.db.block_within("export", COPY_DEADLINE, async {
        let mut conn = store.db.checkout().await?;
        let tx = conn
            .client
            .build_transaction()
            .isolation_level(tokio_postgres::IsolationLevel::RepeatableRead)
            .read_only(true)
            .start()
            .await?;
        tx.batch_execute(&long_statements()).await?;
        let factors = tx
            .query(
                &format!("SELECT {FACTOR_COLUMNS} FROM factors ORDER BY user_name, created, seq"),
                &[],
            )
            .await?
            .iter()
            .map(|r| store.to_factor(r))
            .collect::<Result<Vec<_>, _>>()?;
        let nonneg = |v: i64| v.max(0) as u64;
        let recovery_codes = tx
            .query(
                "SELECT user_name, hash, used, created FROM recovery_codes ORDER BY user_name, id",
                &[],
            )
            .await?
            .iter()
            .map(|r| RecoveryRow {
                user: r.get(0),
                hash: r.get(1),
                used: r.get(2),
                created: nonneg(r.get(3)),
            })
            .collect();
        let lockouts = tx
            .query(
                "SELECT user_name, failures, locked_until FROM lockout
                 WHERE failures > 0 OR locked_until > 0 ORDER BY user_name",
                &[],
            )
            .await?
            .iter()
            .map(|r| {
                let failures: i32 = r.get(1);
                (r.get(0), failures.max(0) as u32, nonneg(r.get(2)))
            })
            .collect();
        let settings = tx
            .query(
                "SELECT user_name, level, preferred FROM user_settings ORDER BY user_name",
                &[],
            )
            .await?
            .iter()
            .map(|r| (r.get(0), r.get(1), r.get(2)))
            .collect();
        let devices = tx
            .query(
                "SELECT user_name, id, device, created, expires, last_used FROM trusted_devices
                 ORDER BY user_name, created, seq",
                &[],
            )
            .await?
            .iter()
            .map(|r| {
                (
                    r.get(0),
                    DeviceRow {
                        id: r.get(1),
                        device: r.get(2),
                        created: nonneg(r.get(3)),
                        expires: nonneg(r.get(4)),
                        last_used: nonneg(r.get(5)),
                    },
                )
            })
            .collect();
        let invitations = tx
            .query(
                "SELECT user_name, factor, by_uid, created FROM invitations ORDER BY user_name",
                &[],
            )
            .await?
            .iter()
            .map(|r| InvitationRow {
                user: r.get(0),
                factor: r.get(1),
                by_uid: u32::try_from(r.get::<_, i64>(2)).unwrap_or(u32::MAX),
                created: nonneg(r.get(3)),
            })
            .collect();
        tx.commit().await?;
        store.db.checkin(conn);
        Ok(Snapshot {
            factors,
            recovery_codes,
            lockouts,
            settings,
            devices,
            invitations,
        })
    })
}

pub(super) fn import(store: &PgStore, snapshot: &Snapshot) -> Result<(), StoreError> {
    store.db.block_within("import", COPY_DEADLINE, async {
        let mut conn = store.db.checkout().await?;
        let Conn { client, prepared } = &mut conn;
        let tx = client.transaction().await?;
        tx.batch_execute(&long_statements()).await?;
        // No other host writes these tables until the copy is in (or not).
        tx.batch_execute(&format!(
            "LOCK TABLE {HOLDING}, lockout IN SHARE ROW EXCLUSIVE MODE"
        ))
        .await?;
        let held: i64 = tx
            .query_one(
                "SELECT (SELECT count(*) FROM factors) + (SELECT count(*) FROM recovery_codes)
                      + (SELECT count(*) FROM user_settings) + (SELECT count(*) FROM trusted_devices)
                      + (SELECT count(*) FROM invitations)",
                &[],
            )
            .await?
            .get(0);
        if held > 0 {
            return Err(StoreError::NotEmpty.into());
        }
        for factor in &snapshot.factors {
            store.insert_factor(&tx, prepared, factor).await?;
        }
        for code in &snapshot.recovery_codes {
            tx.execute(
                "INSERT INTO recovery_codes (user_name, hash, used, created) VALUES ($1, $2, $3, $4)",
                &[&code.user, &code.hash, &code.used, &counter_to_sql(code.created)],
            )
            .await?;
        }
        for (user, failures, until) in &snapshot.lockouts {
            let failures = i32::try_from(*failures).unwrap_or(i32::MAX);
            tx.execute(
                "INSERT INTO lockout (user_name, failures, locked_until) VALUES ($1, $2, $3)
                 ON CONFLICT (user_name) DO UPDATE SET failures = $2, locked_until = $3",
                &[user, &failures, &counter_to_sql(*until)],
            )
            .await?;
        }
        for (user, level, preferred) in &snapshot.settings {
            tx.execute(
                "INSERT INTO user_settings (user_name, level, preferred) VALUES ($1, $2, $3)",
                &[user, level, preferred],
            )
            .await?;
        }
        for (user, d) in &snapshot.devices {
            tx.execute(
                "INSERT INTO trusted_devices (id, user_name, device, created, expires, last_used)
                 VALUES ($1, $2, $3, $4, $5, $6)",
                &[
                    &d.id,
                    user,
                    &d.device,
                    &counter_to_sql(d.created),
                    &counter_to_sql(d.expires),
                    &counter_to_sql(d.last_used),
                ],
            )
            .await?;
        }
        for i in &snapshot.invitations {
            tx.execute(
                "INSERT INTO invitations (user_name, factor, by_uid, created) VALUES ($1, $2, $3, $4)",
                &[
                    &i.user,
                    &i.factor,
                    &i64::from(i.by_uid),
                    &counter_to_sql(i.created),
                ],
            )
            .await?;
        }
        tx.commit().await?;
        store.db.checkin(conn);
        Ok(())
    })
}
