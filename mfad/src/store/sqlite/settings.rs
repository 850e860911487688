//! What the policy engine reads and users change: security level, the
//! factor asked first, admin approval, and trusted devices.

use super::{sql, SqliteStore};
use crate::mechanism::FactorKind;
use crate::policy::{FactorState, Level, UserState};
use crate::store::{DeviceRow, Invitation, SettingStore, StoreError};
use rusqlite::{params, OptionalExtension, TransactionBehavior};

impl SettingStore for SqliteStore {
    fn put_invitation(
        &self,
        user: &str,
        factor: &str,
        by_uid: u32,
        now: u64,
    ) -> Result<(), StoreError> {
        let conn = self.conn()?;
        conn.execute(
            "INSERT INTO invitations (user, factor, by_uid, created) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT (user) DO UPDATE SET factor = ?2, by_uid = ?3, created = ?4",
            params![user, factor, by_uid, now as i64],
        )
        .map_err(sql("store invitation"))?;
        Ok(())
    }

    fn invitation(&self, user: &str, now: u64) -> Result<Option<Invitation>, StoreError> {
        let conn = self.conn()?;
        conn.query_row(
            "SELECT i.factor, i.by_uid FROM invitations i
             JOIN factors f ON f.id = i.factor AND f.user = i.user
             WHERE i.user = ?1 AND f.confirmed = 0 AND f.expires > ?2",
            params![user, now as i64],
            |r| {
                Ok(Invitation {
                    factor: r.get(0)?,
                    by_uid: r.get(1)?,
                })
            },
        )
        .optional()
        .map_err(sql("read invitation"))
    }

    /// What the policy needs about `user`: confirmed factors (no secret is
    /// opened), level, preferred factor, devices trusted at `now`.
    fn policy_state(&self, user: &str, now: u64) -> Result<UserState, StoreError> {
        let conn = self.conn()?;
        let mut stmt = conn
            .prepare_cached(
                "SELECT id, kind, label, approved FROM factors
                 WHERE user = ?1 AND confirmed = 1 ORDER BY created, rowid",
            )
            .map_err(sql("read factors"))?;
        let rows = stmt
            .query_map(params![user], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, String>(2)?,
                    r.get::<_, bool>(3)?,
                ))
            })
            .map_err(sql("read factors"))?;
        let mut factors = Vec::new();
        for row in rows {
            let (id, kind, label, approved) = row.map_err(sql("read factors"))?;
            let kind = FactorKind::from_name(&kind)
                .ok_or_else(|| StoreError::Corrupt(format!("unknown factor kind {kind:?}")))?;
            factors.push(FactorState {
                id,
                kind,
                label,
                approved,
            });
        }
        let (level, preferred) = settings_row(&conn, user)?;
        let level = match level {
            None => None,
            Some(name) => Some(
                Level::from_name(&name)
                    .ok_or_else(|| StoreError::Corrupt(format!("unknown level {name:?}")))?,
            ),
        };
        let mut stmt = conn
            .prepare_cached("SELECT device FROM trusted_devices WHERE user = ?1 AND expires > ?2")
            .map_err(sql("read devices"))?;
        let trusted_devices = stmt
            .query_map(params![user, now as i64], |r| r.get::<_, String>(0))
            .map_err(sql("read devices"))?
            .collect::<Result<Vec<_>, _>>()
            .map_err(sql("read devices"))?;
        Ok(UserState {
            factors,
            level,
            preferred,
            trusted_devices,
        })
    }

    /// Set (or with `None` clear) the level `user` chose.
    fn set_level(&self, user: &str, level: Option<Level>) -> Result<(), StoreError> {
        let conn = self.conn()?;
        conn.execute(
            "INSERT INTO user_settings (user, level) VALUES (?1, ?2)
             ON CONFLICT (user) DO UPDATE SET level = ?2",
            params![user, level.map(Level::name)],
        )
        .map_err(sql("set level"))?;
        Ok(())
    }

    /// Ask the confirmed factor `id` first; false if `user` has no such factor.
    fn set_preferred(&self, user: &str, id: &str) -> Result<bool, StoreError> {
        let mut conn = self.conn()?;
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(sql("begin"))?;
        let exists: bool = tx
            .query_row(
                "SELECT EXISTS (SELECT 1 FROM factors WHERE id = ?1 AND user = ?2 AND confirmed = 1)",
                params![id, user],
                |r| r.get(0),
            )
            .map_err(sql("find factor"))?;
        if !exists {
            return Ok(false);
        }
        tx.execute(
            "INSERT INTO user_settings (user, preferred) VALUES (?1, ?2)
             ON CONFLICT (user) DO UPDATE SET preferred = ?2",
            params![user, id],
        )
        .map_err(sql("set preferred"))?;
        tx.commit().map_err(sql("commit preferred"))?;
        Ok(true)
    }

    /// (level, preferred factor id) `user` chose, if any.
    fn settings(&self, user: &str) -> Result<(Option<String>, Option<String>), StoreError> {
        settings_row(&*self.conn()?, user)
    }

    /// Approve (or withdraw approval of) a confirmed factor for privileged
    /// services; false if `user` has no such confirmed factor.
    fn set_approved(&self, user: &str, id: &str, approved: bool) -> Result<bool, StoreError> {
        let n = self
            .conn()?
            .execute(
                "UPDATE factors SET approved = ?3 WHERE id = ?1 AND user = ?2 AND confirmed = 1",
                params![id, user, approved],
            )
            .map_err(sql("approve factor"))?;
        Ok(n > 0)
    }

    /// Trust `device` for `user` until `expires` (renewing it if known).
    fn trust_device(
        &self,
        user: &str,
        device: &str,
        id: &str,
        now: u64,
        expires: u64,
    ) -> Result<(), StoreError> {
        self.conn()?
            .execute(
                "INSERT INTO trusted_devices (id, user, device, created, expires, last_used)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?4)
                 ON CONFLICT (user, device) DO UPDATE SET expires = ?5, last_used = ?4",
                params![id, user, device, now as i64, expires as i64],
            )
            .map_err(sql("trust device"))?;
        Ok(())
    }

    /// Note that a trusted device was used (shown in `mfactl devices`).
    fn touch_device(&self, user: &str, device: &str, now: u64) -> Result<(), StoreError> {
        self.conn()?
            .execute(
                "UPDATE trusted_devices SET last_used = ?3 WHERE user = ?1 AND device = ?2",
                params![user, device, now as i64],
            )
            .map_err(sql("touch device"))?;
        Ok(())
    }

    /// `user`'s devices still trusted at `now`.
    fn devices(&self, user: &str, now: u64) -> Result<Vec<DeviceRow>, StoreError> {
        let conn = self.conn()?;
        let mut stmt = conn
            .prepare_cached(
                "SELECT id, device, created, expires, last_used FROM trusted_devices
                 WHERE user = ?1 AND expires > ?2 ORDER BY created, rowid",
            )
            .map_err(sql("list devices"))?;
        let nonneg = |v: i64| v.max(0) as u64;
        let rows = stmt
            .query_map(params![user, now as i64], |r| {
                Ok(DeviceRow {
                    id: r.get(0)?,
                    device: r.get(1)?,
                    created: nonneg(r.get(2)?),
                    expires: nonneg(r.get(3)?),
                    last_used: nonneg(r.get(4)?),
                })
            })
            .map_err(sql("list devices"))?;
        rows.collect::<Result<_, _>>().map_err(sql("list devices"))
    }

    /// Forget one of `user`'s devices (`Some(id)`) or all of them; returns
    /// how many were forgotten.
    fn revoke_devices(&self, user: &str, id: Option<&str>) -> Result<u32, StoreError> {
        let conn = self.conn()?;
        let n = match id {
            Some(id) => conn.execute(
                "DELETE FROM trusted_devices WHERE user = ?1 AND id = ?2",
                params![user, id],
            ),
            None => conn.execute("DELETE FROM trusted_devices WHERE user = ?1", params![user]),
        }
        .map_err(sql("revoke devices"))?;
        Ok(u32::try_from(n).unwrap_or(u32::MAX))
    }
}

fn settings_row(
    conn: &rusqlite::Connection,
    user: &str,
) -> Result<(Option<String>, Option<String>), StoreError> {
    conn.prepare_cached("SELECT level, preferred FROM user_settings WHERE user = ?1")
        .and_then(|mut stmt| {
            stmt.query_row(params![user], |r| Ok((r.get(0)?, r.get(1)?)))
                .optional()
        })
        .map(Option::unwrap_or_default)
        .map_err(sql("read settings"))
}
