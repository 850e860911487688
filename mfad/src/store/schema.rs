//! Schema creation and the checks done every time the store is opened.

use rusqlite::Connection;

/// `PRAGMA user_version` of the schema this mfad writes.
pub const SCHEMA_VERSION: i64 = 2;

const SCHEMA_V1: &str = "
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

/// Each later version as the statements that turn the one before into it.
/// An existing store is migrated in one transaction when mfad opens it.
const MIGRATIONS: &[(i64, &str)] = &[(
    2,
    "
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
",
)];

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
/// or check an existing one. Any doubt refuses the store.
pub fn prepare(conn: &Connection) -> Result<(), String> {
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
        (0, 0) => migrate(conn, SCHEMA_V1, 1),
        (SCHEMA_VERSION, _) => Ok(()),
        (0, _) => Err("database has tables but no pam_mfa schema version".into()),
        (v, _) if (1..SCHEMA_VERSION).contains(&v) => migrate(conn, "", v),
        (v, _) => Err(format!(
            "schema version {v} is not supported (this mfad reads version {SCHEMA_VERSION})"
        )),
    }
}

/// Run `first` (the base schema, or nothing) and every migration past
/// version `from`, then record the new version: all in one transaction, so
/// a crash leaves the old schema or the new one, never half of it.
fn migrate(conn: &Connection, first: &str, from: i64) -> Result<(), String> {
    let steps: String = MIGRATIONS
        .iter()
        .filter(|(version, _)| *version > from)
        .map(|(_, sql)| *sql)
        .collect();
    conn.execute_batch(&format!(
        "BEGIN IMMEDIATE; {first} {steps} PRAGMA user_version = {SCHEMA_VERSION}; COMMIT;"
    ))
    .map_err(|e| {
        let _ = conn.execute_batch("ROLLBACK");
        format!("cannot bring the schema from version {from} to {SCHEMA_VERSION}: {e}")
    })
}
