//! Copying the whole store out and into an empty one (`mfactl store
//! migrate`). Secrets travel opened in memory and are sealed again with the
//! target's own key.

use super::{counter_to_sql, query_factors, sql, SqliteStore, MOVED_FILE};
use crate::store::seal::Sealer;
use crate::store::{write_durably, DeviceRow, InvitationRow, RecoveryRow, Snapshot, StoreError};
use rusqlite::{params, Connection, TransactionBehavior};
use std::path::Path;

pub(super) fn export(conn: &mut Connection, sealer: &Sealer) -> Result<Snapshot, StoreError> {
    // One read transaction: a login racing the export sees either side of it.
    let tx = conn.transaction().map_err(sql("begin export"))?;
    let factors = query_factors(
        &tx,
        sealer,
        "SELECT * FROM factors ORDER BY user, created, rowid",
        [],
    )?;
    let nonneg = |v: i64| v.max(0) as u64;
    let recovery_codes = tx
        .prepare("SELECT user, hash, used, created FROM recovery_codes ORDER BY user, rowid")
        .and_then(|mut stmt| {
            stmt.query_map([], |r| {
                Ok(RecoveryRow {
                    user: r.get(0)?,
                    hash: r.get(1)?,
                    used: r.get(2)?,
                    created: nonneg(r.get(3)?),
                })
            })?
            .collect::<Result<Vec<_>, _>>()
        })
        .map_err(sql("export recovery codes"))?;
    let lockouts = tx
        .prepare(
            "SELECT user, failures, locked_until FROM lockout
             WHERE failures > 0 OR locked_until > 0 ORDER BY user",
        )
        .and_then(|mut stmt| {
            stmt.query_map([], |r| {
                let failures: i64 = r.get(1)?;
                Ok((
                    r.get(0)?,
                    u32::try_from(failures).unwrap_or(u32::MAX),
                    nonneg(r.get(2)?),
                ))
            })?
            .collect::<Result<Vec<_>, _>>()
        })
        .map_err(sql("export lockouts"))?;
    let settings = tx
        .prepare("SELECT user, level, preferred FROM user_settings ORDER BY user")
        .and_then(|mut stmt| {
            stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
                .collect::<Result<Vec<_>, _>>()
        })
        .map_err(sql("export settings"))?;
    let devices = tx
        .prepare(
            "SELECT user, id, device, created, expires, last_used FROM trusted_devices
             ORDER BY user, created, rowid",
        )
        .and_then(|mut stmt| {
            stmt.query_map([], |r| {
                Ok((
                    r.get(0)?,
                    DeviceRow {
                        id: r.get(1)?,
                        device: r.get(2)?,
                        created: nonneg(r.get(3)?),
                        expires: nonneg(r.get(4)?),
                        last_used: nonneg(r.get(5)?),
                    },
                ))
            })?
            .collect::<Result<Vec<_>, _>>()
        })
        .map_err(sql("export trusted devices"))?;
    let invitations = tx
        .prepare("SELECT user, factor, by_uid, created FROM invitations ORDER BY user")
        .and_then(|mut stmt| {
            stmt.query_map([], |r| {
                let by_uid: i64 = r.get(2)?;
                Ok(InvitationRow {
                    user: r.get(0)?,
                    factor: r.get(1)?,
                    by_uid: u32::try_from(by_uid).unwrap_or(u32::MAX),
                    created: nonneg(r.get(3)?),
                })
            })?
            .collect::<Result<Vec<_>, _>>()
        })
        .map_err(sql("export invitations"))?;
    Ok(Snapshot {
        factors,
        recovery_codes,
        lockouts,
        settings,
        devices,
        invitations,
    })
}

/// Export with the store locked, let `copy` put it elsewhere, then retire
/// this copy (in memory at once, on disk by [`MOVED_FILE`]) before anyone
/// else may use the store.
pub(super) fn move_to(
    store: &SqliteStore,
    to: &str,
    copy: &mut dyn FnMut(&Snapshot) -> Result<(), StoreError>,
) -> Result<Snapshot, StoreError> {
    let mut conn = store.conn()?;
    let snapshot = export(&mut conn, &store.sealer)?;
    copy(&snapshot)?;
    // From here the copy is the store, whatever happens to the marker.
    let _ = store.moved.set(to.to_string());
    let dir = store.path.parent().unwrap_or(Path::new("."));
    write_durably(&dir.join(MOVED_FILE), format!("{to}\n").as_bytes()).map_err(|e| {
        StoreError::Backend {
            context: "mark the store as moved",
            message: format!(
                "{}: {e}; the copy is complete, but this mfad must not be started with the \
                 SQLite store again",
                dir.join(MOVED_FILE).display()
            ),
            unavailable: false,
        }
    })?;
    Ok(snapshot)
}

pub(super) fn import(store: &SqliteStore, snapshot: &Snapshot) -> Result<(), StoreError> {
    let mut conn = store.conn()?;
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(sql("begin import"))?;
    let held: i64 = tx
        .query_row(
            "SELECT (SELECT COUNT(*) FROM factors) + (SELECT COUNT(*) FROM recovery_codes)
                  + (SELECT COUNT(*) FROM user_settings) + (SELECT COUNT(*) FROM trusted_devices)
                  + (SELECT COUNT(*) FROM invitations)",
            [],
            |r| r.get(0),
        )
        .map_err(sql("check the target is empty"))?;
    if held > 0 {
        return Err(StoreError::NotEmpty);
    }
    for factor in &snapshot.factors {
        store.insert_factor(&tx, factor)?;
    }
    for code in &snapshot.recovery_codes {
        tx.execute(
            "INSERT INTO recovery_codes (user, hash, used, created) VALUES (?1, ?2, ?3, ?4)",
            params![
                code.user,
                code.hash,
                code.used,
                counter_to_sql(code.created)
            ],
        )
        .map_err(sql("import recovery codes"))?;
    }
    for (user, failures, until) in &snapshot.lockouts {
        tx.execute(
            "INSERT INTO lockout (user, failures, locked_until) VALUES (?1, ?2, ?3)
             ON CONFLICT (user) DO UPDATE SET failures = ?2, locked_until = ?3",
            params![user, failures, counter_to_sql(*until)],
        )
        .map_err(sql("import lockouts"))?;
    }
    for (user, level, preferred) in &snapshot.settings {
        tx.execute(
            "INSERT INTO user_settings (user, level, preferred) VALUES (?1, ?2, ?3)",
            params![user, level, preferred],
        )
        .map_err(sql("import settings"))?;
    }
    for (user, d) in &snapshot.devices {
        tx.execute(
            "INSERT INTO trusted_devices (id, user, device, created, expires, last_used)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![
                d.id,
                user,
                d.device,
                counter_to_sql(d.created),
                counter_to_sql(d.expires),
                counter_to_sql(d.last_used)
            ],
        )
        .map_err(sql("import trusted devices"))?;
    }
    for i in &snapshot.invitations {
        tx.execute(
            "INSERT INTO invitations (user, factor, by_uid, created) VALUES (?1, ?2, ?3, ?4)",
            params![i.user, i.factor, i.by_uid, counter_to_sql(i.created)],
        )
        .map_err(sql("import invitations"))?;
    }
    tx.commit().map_err(sql("commit import"))
}
