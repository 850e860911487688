//! Schema creation and the checks done every time the store is opened.

use crate::mechanism::{Algorithm, FactorData, OtpParams};
use crate::store::record;
use crate::store::seal::Sealer;
use rusqlite::{params, Connection};

/// `PRAGMA user_version` of the schema this mfad writes.
pub const SCHEMA_VERSION: i64 = 4;

pub(super) const SCHEMA_V1: &str = "
CREATE TABLE factors (
    id        TEXT PRIMARY KEY NOT NULL,
    user      TEXT NOT NULL,
    kind      TEXT NOT NULL,
    label     TEXT NOT NULL,
    secret    BLOB NOT NULL,
    algorithm TEXT NOT NULL,
    digits    INTEGER NOT NULL,
    period    INTEGER NOT NULL,
    counter   INTEGER NOT NULL,
    confirmed INTEGER NOT NULL,
    created   INTEGER NOT NULL,
    last_used INTEGER NOT NULL,
    expires   INTEGER NOT NULL
);
CREATE INDEX factors_by_user ON factors (user);
-- one-time recovery codes, as salted slow hashes
CREATE TABLE recovery_codes (
    user    TEXT NOT NULL,
    hash    TEXT NOT NULL,
    used    INTEGER NOT NULL,
    created INTEGER NOT NULL
);
CREATE INDEX recovery_codes_by_user ON recovery_codes (user);
-- consecutive failed codes per user, and lockouts
CREATE TABLE lockout (
    user         TEXT PRIMARY KEY NOT NULL,
    failures     INTEGER NOT NULL,
    locked_until INTEGER NOT NULL
);
";

/// One step from a version to the next.
enum Migration {
    Sql(&'static str),
    /// Work SQL alone cannot do (re-sealing secrets), then SQL.
    Code(fn(&Connection, &Sealer) -> Result<(), String>, &'static str),
}

/// Each later version as the statements that turn the one before into it.
/// An existing store is migrated in one transaction when mfad opens it.
const MIGRATIONS: &[(i64, Migration)] = &[
    (2, Migration::Sql(V2)),
    (
        3,
        Migration::Code(
            seal_factor_data,
            "
-- a factor's per-kind data lives sealed in `data` now
ALTER TABLE factors DROP COLUMN secret;
ALTER TABLE factors DROP COLUMN algorithm;
ALTER TABLE factors DROP COLUMN digits;
ALTER TABLE factors DROP COLUMN period;
ALTER TABLE factors DROP COLUMN drift;
",
        ),
    ),
    (4, Migration::Sql(V4)),
];

pub(super) const V4: &str = "
-- an admin's invitation to set up the pending factor it names
CREATE TABLE invitations (
    user    TEXT PRIMARY KEY NOT NULL,
    factor  TEXT NOT NULL,
    by_uid  INTEGER NOT NULL,
    created INTEGER NOT NULL
);
";

pub(super) const V2: &str = "
-- policy: factors an admin approved for privileged services
ALTER TABLE factors ADD COLUMN approved INTEGER NOT NULL DEFAULT 0;
-- TOTP: steps the token's clock is off by, learned from accepted codes
ALTER TABLE factors ADD COLUMN drift INTEGER NOT NULL DEFAULT 0;
-- what each user chose: security level, the factor asked first
CREATE TABLE user_settings (
    user      TEXT PRIMARY KEY NOT NULL,
    level     TEXT,
    preferred TEXT
);
-- devices remembered after a successful second factor
CREATE TABLE trusted_devices (
    id        TEXT PRIMARY KEY NOT NULL,
    user      TEXT NOT NULL,
    device    TEXT NOT NULL,
    created   INTEGER NOT NULL,
    expires   INTEGER NOT NULL,
    last_used INTEGER NOT NULL,
    UNIQUE (user, device)
);
";

/// Version 3: every factor's data (an OTP secret and its parameters) goes
/// into one sealed column, so each kind keeps fields of its own.
fn seal_factor_data(conn: &Connection, sealer: &Sealer) -> Result<(), String> {
    conn.execute_batch("ALTER TABLE factors ADD COLUMN data BLOB NOT NULL DEFAULT x'';")
        .map_err(|e| e.to_string())?;
    let mut read = conn
        .prepare("SELECT id, user, secret, algorithm, digits, period, drift FROM factors")
        .map_err(|e| e.to_string())?;
    let rows = read
        .query_map([], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, Vec<u8>>(2)?,
                r.get::<_, String>(3)?,
                r.get::<_, u32>(4)?,
                r.get::<_, u32>(5)?,
                r.get::<_, i64>(6)?,
            ))
        })
        .map_err(|e| e.to_string())?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| e.to_string())?;
    for (id, user, sealed, algorithm, digits, period, drift) in rows {
        let secret = sealer.open(&sealed, &id, &user)?;
        let algorithm = Algorithm::from_name(&algorithm)
            .ok_or_else(|| format!("factor {id}: unknown algorithm {algorithm:?}"))?;
        let data = record::encode(&FactorData::Otp(OtpParams {
            secret,
            algorithm,
            digits,
            period,
            drift,
        }));
        conn.execute(
            "UPDATE factors SET data = ?1 WHERE id = ?2",
            params![sealer.seal(&data, &id, &user)?, id],
        )
        .map_err(|e| e.to_string())?;
    }
    Ok(())
}

/// A database with nothing in it yet: mfad may create its key.
pub fn is_fresh(conn: &Connection) -> Result<bool, String> {
    let version: i64 = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .map_err(|e| e.to_string())?;
    let tables: i64 = conn
        .query_row("SELECT count(*) FROM sqlite_master", [], |r| r.get(0))
        .map_err(|e| e.to_string())?;
    Ok(version == 0 && tables == 0)
}

/// Configure the connection, then create the schema in an empty database
/// or check an existing one (migrating it, with `sealer` for its secrets).
/// Any doubt refuses the store.
pub fn prepare(conn: &Connection, sealer: &Sealer) -> Result<(), String> {
    // WAL: readers never block the writer; FULL: a commit is on disk before
    // it returns, so an accepted code is recorded before "allow" goes out.
    let mode: String = conn
        .query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))
        .map_err(|e| e.to_string())?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(format!("cannot switch to WAL journal (got {mode})"));
    }
    conn.execute_batch("PRAGMA synchronous = FULL; PRAGMA foreign_keys = ON;")
        .map_err(|e| e.to_string())?;
    conn.busy_timeout(std::time::Duration::from_secs(5))
        .map_err(|e| e.to_string())?;

    let check: String = conn
        .query_row("PRAGMA quick_check", [], |r| r.get(0))
        .map_err(|e| e.to_string())?;
    if check != "ok" {
        return Err(format!("integrity check failed: {check}"));
    }
    let version: i64 = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .map_err(|e| e.to_string())?;
    let tables: i64 = conn
        .query_row("SELECT count(*) FROM sqlite_master", [], |r| r.get(0))
        .map_err(|e| e.to_string())?;
    match (version, tables) {
        (0, 0) => migrate(conn, sealer, SCHEMA_V1, 1),
        (SCHEMA_VERSION, _) => Ok(()),
        (0, _) => Err("database has tables but no pam_mfa schema version".into()),
        (v, _) if (1..SCHEMA_VERSION).contains(&v) => migrate(conn, sealer, "", v),
        (v, _) => Err(format!(
            "schema version {v} is not supported (this mfad reads version {SCHEMA_VERSION})"
        )),
    }
}

/// Run `first` (the base schema, or nothing) and every migration past
/// version `from`, then record the new version: all in one transaction, so
/// a crash leaves the old schema or the new one, never half of it.
fn migrate(conn: &Connection, sealer: &Sealer, first: &str, from: i64) -> Result<(), String> {
    let steps = || -> Result<(), String> {
        conn.execute_batch(first).map_err(|e| e.to_string())?;
        for (_, migration) in MIGRATIONS.iter().filter(|(version, _)| *version > from) {
            match migration {
                Migration::Sql(sql) => conn.execute_batch(sql).map_err(|e| e.to_string())?,
                Migration::Code(code, sql) => {
                    code(conn, sealer)?;
                    conn.execute_batch(sql).map_err(|e| e.to_string())?;
                }
            }
        }
        conn.execute_batch(&format!("PRAGMA user_version = {SCHEMA_VERSION};"))
            .map_err(|e| e.to_string())
    };
    conn.execute_batch("BEGIN IMMEDIATE")
        .map_err(|e| e.to_string())?;
    match steps().and_then(|()| conn.execute_batch("COMMIT").map_err(|e| e.to_string())) {
        Ok(()) => Ok(()),
        Err(e) => {
            let _ = conn.execute_batch("ROLLBACK");
            Err(format!(
                "cannot bring the schema from version {from} to {SCHEMA_VERSION}: {e}"
            ))
        }
    }
}
