//! Schema creation and the checks done every time the store is opened.

use rusqlite::Connection;

/// `PRAGMA user_version` of the schema this mfad writes.
pub const SCHEMA_VERSION: i64 = 1;

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
        (0, 0) => conn
            .execute_batch(&format!(
                "BEGIN IMMEDIATE; {SCHEMA_V1} PRAGMA user_version = {SCHEMA_VERSION}; COMMIT;"
            ))
            .map_err(|e| format!("cannot create schema: {e}")),
        (SCHEMA_VERSION, _) => Ok(()),
        (0, _) => Err("database has tables but no pam_mfa schema version".into()),
        (v, _) => Err(format!(
            "schema version {v} is not supported (this mfad reads version {SCHEMA_VERSION})"
        )),
    }
}
