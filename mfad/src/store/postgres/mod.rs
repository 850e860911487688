//! The fleet store: one PostgreSQL database that every host of a fleet
//! shares, so a user enrols once and a used code, a counter and a lockout
//! hold on every host.
//!
//! Once-only holds fleet-wide because every check runs in one transaction
//! that first takes the user's lockout row `FOR UPDATE`: checks of one user
//! take turns across hosts, failures are counted exactly, and the counter a
//! check moves is committed before "allow" goes back. Talk only to the
//! primary (`target_session_attrs=read-write`): an asynchronous replica would
//! let a code be used again while it catches up.
//!
//! The methods are synchronous, like the SQLite store's, and run on the
//! service's blocking threads; the queries run on a small runtime of this
//! store, each call within a hard deadline: a database that is down or
//! frozen is a refusal (`unavailable`) within the deadline, never a hang,
//! and the next call connects again.

mod history;
pub mod schema;
mod snapshot;

use super::history::History;
use super::record::{self, FactorRecord};
use super::seal::{Sealer, KEY_FILE};
use super::Invitation;
use super::{
    counter_to_sql, prepare_state_dir, Advanced, CodeCheck, Confirmation, DeviceRow, FactorLimits,
    FactorStore, Inserted, Lockout, RecoveryUse, SettingStore, StoreError, UserRow,
};
use crate::audit::Severity;
use crate::config::{PgConfig, PgTls};
use crate::mechanism::{Advance, FactorKind, Verdict};
use crate::policy::{FactorState, Level, UserState};
use std::collections::HashMap;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use tokio_postgres::error::SqlState;
use tokio_postgres::types::ToSql;
use tokio_postgres::{Client, GenericClient, Row, Statement};

/// Connections kept open between calls.
const POOL: usize = 4;

/// The longest pause between two tries to open a database that mfad waits
/// for at its start.
pub const OPEN_RETRY_MAX: std::time::Duration = std::time::Duration::from_secs(10);

pub struct PgStore {
    db: Arc<Db>,
    /// Set once the schema is in place and the key checked against the
    /// database's ([`PgStore::finish_opening`]).
    sealer: OnceLock<Sealer>,
    /// `state_dir/secret.key`.
    key_path: PathBuf,
}

/// The database: connections, and calls within the deadline.
struct Db {
    runtime: tokio::runtime::Runtime,
    config: tokio_postgres::Config,
    tls: Option<tokio_postgres_rustls::MakeRustlsConnect>,
    idle: Mutex<Vec<Conn>>,
    deadline: std::time::Duration,
    /// Shown in errors: where the database is.
    describe: String,
    /// Whether the store is open (schema and key checked): until then
    /// every call but the opening ones is refused as unavailable.
    open: AtomicBool,
    /// Why it is not open yet, for those refusals.
    waiting: Mutex<String>,
}

/// A connection and the statements prepared on it.
struct Conn {
    client: Client,
    prepared: HashMap<&'static str, Statement>,
}

/// A failed call, before it is a [`StoreError`].
enum Failure {
    Pg(tokio_postgres::Error),
    Store(StoreError),
}

impl From<tokio_postgres::Error> for Failure {
    fn from(e: tokio_postgres::Error) -> Failure {
        Failure::Pg(e)
    }
}

impl From<StoreError> for Failure {
    fn from(e: StoreError) -> Failure {
        Failure::Store(e)
    }
}

type Pg<T> = Result<T, Failure>;

impl PgStore {
    /// Connect to the database `config` names, create or migrate its schema
    /// (safe when many hosts start at once), and check that it is sealed
    /// with this host's key (`state_dir/secret.key`).
    pub fn open(config: &PgConfig, state_dir: &Path) -> Result<PgStore, StoreError> {
        let store = PgStore::prepare(config, state_dir)?;
        store.finish_opening()?;
        Ok(store)
    }

    /// mfad's start: as [`PgStore::open`], but a database that cannot be
    /// reached yet (down, starting up, too busy) is no failure. mfad serves
    /// at once, every call is refused as unavailable (a login: denied,
    /// `store-unavailable`), and a thread tries again, 1 s after the first
    /// try and then at most [`OPEN_RETRY_MAX`] apart, until the store opens.
    /// `log` is told that mfad waits, any new reason, and when it is open.
    /// What is wrong here rather than there (a key file, a password file)
    /// fails at once, and so does a database sealed with another key.
    pub fn open_or_wait(
        config: &PgConfig,
        state_dir: &Path,
        log: super::OpenLog,
    ) -> Result<Arc<PgStore>, StoreError> {
        let store = Arc::new(PgStore::prepare(config, state_dir)?);
        let first = match store.finish_opening() {
            Ok(()) => return Ok(store),
            Err(e) if e.is_unavailable() => e,
            Err(e) => return Err(e),
        };
        let describe = store.db.describe.clone();
        log(
            Severity::Warning,
            &format!(
                "waiting for the database {describe}: {first}; logins are refused \
                 (store-unavailable) until it answers"
            ),
        );
        let opener = Arc::clone(&store);
        std::thread::Builder::new()
            .name("mfad-pg-open".into())
            .spawn(move || {
                let waited = std::time::Instant::now();
                let mut reason = first.to_string();
                let mut pause = std::time::Duration::from_secs(1);
                loop {
                    std::thread::sleep(pause);
                    pause = (pause * 2).min(OPEN_RETRY_MAX);
                    match opener.finish_opening() {
                        Ok(()) => {
                            log(
                                Severity::Notice,
                                &format!(
                                    "the store {describe} is open, after waiting {} s",
                                    waited.elapsed().as_secs()
                                ),
                            );
                            return;
                        }
                        Err(e) if e.to_string() == reason => {}
                        Err(e) => {
                            reason = e.to_string();
                            let severity = if e.is_unavailable() {
                                Severity::Warning
                            } else {
                                Severity::Error
                            };
                            log(
                                severity,
                                &format!("still waiting for the database {describe}: {reason}"),
                            );
                        }
                    }
                }
            })
            .map_err(|e| StoreError::Unusable {
                path: PathBuf::from(&store.db.describe),
                message: format!("cannot start a thread to wait for the database: {e}"),
            })?;
        Ok(store)
    }

    /// Everything that needs no database: the state directory, the
    /// password and CA files, the runtime. Not open yet.
    fn prepare(config: &PgConfig, state_dir: &Path) -> Result<PgStore, StoreError> {
        prepare_state_dir(state_dir)?;
        let describe = config.describe();
        let unusable = |message: String| StoreError::Unusable {
            path: PathBuf::from(&describe),
            message,
        };
        let mut pg = tokio_postgres::Config::new();
        pg.host(&config.host)
            .port(config.port)
            .dbname(&config.dbname)
            .user(&config.user)
            .application_name("mfad")
            .connect_timeout(config.timeout)
            .options(session_options(config.timeout))
            .target_session_attrs(tokio_postgres::config::TargetSessionAttrs::ReadWrite);
        keepalives(&mut pg, config.timeout);
        if let Some(file) = &config.password_file {
            pg.password(read_password(file).map_err(unusable)?);
        }
        let tls = match &config.tls {
            PgTls::LocalSocket => {
                pg.ssl_mode(tokio_postgres::config::SslMode::Disable);
                None
            }
            PgTls::VerifyFull { ca_file } => {
                pg.ssl_mode(tokio_postgres::config::SslMode::Require);
                Some(tls_connector(ca_file).map_err(unusable)?)
            }
        };
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("mfad-pg")
            .enable_all()
            .build()
            .map_err(|e| unusable(format!("no runtime for the database: {e}")))?;
        Ok(PgStore {
            db: Arc::new(Db {
                runtime,
                config: pg,
                tls,
                idle: Mutex::new(Vec::new()),
                deadline: config.timeout,
                describe: describe.clone(),
                open: AtomicBool::new(false),
                waiting: Mutex::new("not connected yet".into()),
            }),
            sealer: OnceLock::new(),
            key_path: state_dir.join(KEY_FILE),
        })
    }

    /// Create or migrate the schema, check the key (the first host records
    /// its own), and from then on serve. A database that cannot be reached
    /// is an unavailable error, as for any call.
    fn finish_opening(&self) -> Result<(), StoreError> {
        if self.db.open.load(Ordering::Acquire) {
            return Ok(());
        }
        let unusable = |message: String| StoreError::Unusable {
            path: PathBuf::from(&self.db.describe),
            message,
        };
        let keep_unavailable = |e: StoreError| {
            if e.is_unavailable() {
                e
            } else {
                unusable(e.to_string())
            }
        };
        let result = (|| {
            let fingerprint = self.db.migrate().map_err(keep_unavailable)?;
            // The key file may be made only for a database no host sealed yet.
            let sealer = Sealer::load(&self.key_path, fingerprint.is_none()).map_err(unusable)?;
            match fingerprint {
                Some(f) if f != sealer.fingerprint() => {
                    return Err(unusable(format!(
                        "the database is sealed with another key than {}: copy secret.key from a host of the fleet (every host needs the same key)",
                        self.key_path.display()
                    )))
                }
                Some(_) => {}
                None => self
                    .db
                    .claim(sealer.fingerprint())
                    .map_err(keep_unavailable)?,
            }
            // Set once: an open store returned above.
            let _ = self.sealer.set(sealer);
            self.db.open.store(true, Ordering::Release);
            Ok(())
        })();
        if let Err(e) = &result {
            *self.db.waiting.lock().unwrap_or_else(|p| p.into_inner()) = e.to_string();
        }
        result
    }

    /// The key, once the store is open.
    fn sealer(&self) -> Result<&Sealer, StoreError> {
        self.sealer
            .get()
            .ok_or_else(|| self.db.not_open("use the key"))
    }

    fn seal(
        &self,
        factor_data: &crate::mechanism::FactorData,
        id: &str,
        user: &str,
    ) -> Result<Vec<u8>, StoreError> {
        self.sealer()?
            .seal(&record::encode(factor_data), id, user)
            .map_err(StoreError::Seal)
    }

    fn to_factor(&self, row: &Row) -> Result<FactorRecord, StoreError> {
        let id: String = row.get("id");
        let user: String = row.get("user_name");
        let kind: String = row.get("kind");
        let kind = FactorKind::from_name(&kind)
            .ok_or_else(|| StoreError::Corrupt(format!("factor {id}: unknown kind {kind:?}")))?;
        let plain = self
            .sealer()?
            .open(row.get::<_, &[u8]>("data"), &id, &user)
            .map_err(StoreError::Corrupt)?;
        let data = record::decode(kind, &plain)
            .map_err(|e| StoreError::Corrupt(format!("factor {id}: {e}")))?;
        let nonneg = |v: i64| v.max(0) as u64;
        Ok(FactorRecord {
            id,
            user,
            kind,
            label: row.get("label"),
            counter: nonneg(row.get("counter")),
            data,
            confirmed: row.get("confirmed"),
            approved: row.get("approved"),
            created: nonneg(row.get("created")),
            last_used: nonneg(row.get("last_used")),
            expires: nonneg(row.get("expires")),
        })
    }

    async fn insert_factor(
        &self,
        db: &impl GenericClient,
        prepared: &mut HashMap<&'static str, Statement>,
        factor: &FactorRecord,
    ) -> Pg<()> {
        let sealed = self.seal(&factor.data, &factor.id, &factor.user)?;
        let insert = statement(
            db,
            prepared,
            "INSERT INTO factors (id, user_name, kind, label, data, counter, confirmed, approved, created, last_used, expires)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
        )
        .await?;
        db.execute(
            &insert,
            &[
                &factor.id,
                &factor.user,
                &factor.kind.name(),
                &factor.label,
                &sealed,
                &counter_to_sql(factor.counter),
                &factor.confirmed,
                &factor.approved,
                &(factor.created as i64),
                &(factor.last_used as i64),
                &(factor.expires as i64),
            ],
        )
        .await?;
        Ok(())
    }

    /// Record that `factor` moved to `advance`, in the caller's transaction.
    async fn apply(
        &self,
        db: &impl GenericClient,
        factor: &mut FactorRecord,
        advance: Advance,
    ) -> Pg<()> {
        if let Some(data) = advance.data {
            let sealed = self.seal(&data, &factor.id, &factor.user)?;
            db.execute(
                "UPDATE factors SET data = $1 WHERE id = $2",
                &[&sealed, &factor.id],
            )
            .await?;
            factor.data = data;
        }
        db.execute(
            "UPDATE factors SET counter = $1 WHERE id = $2",
            &[&counter_to_sql(advance.counter), &factor.id],
        )
        .await?;
        factor.counter = advance.counter;
        Ok(())
    }
}

impl Db {
    /// Bring the schema to [`schema::VERSION`] under the advisory lock;
    /// the key fingerprint the database holds, if any.
    fn migrate(&self) -> Result<Option<String>, StoreError> {
        self.run_within("create the schema", self.deadline, async {
            let mut conn = self.checkout().await?;
            let tx = conn.client.transaction().await?;
            tx.execute("SELECT pg_advisory_xact_lock($1)", &[&schema::LOCK])
                .await?;
            let exists: bool = tx
                .query_one("SELECT to_regclass('mfa_meta') IS NOT NULL", &[])
                .await?
                .get(0);
            let version = if exists {
                tx.query_opt(
                    "SELECT value FROM mfa_meta WHERE key = 'schema_version'",
                    &[],
                )
                .await?
                .and_then(|r| r.get::<_, String>(0).parse::<i64>().ok())
                .unwrap_or(0)
            } else {
                0
            };
            if version > schema::VERSION {
                return Err(StoreError::Corrupt(format!(
                    "the database has schema version {version}; this mfad reads up to {}",
                    schema::VERSION
                ))
                .into());
            }
            for (_, step) in schema::STEPS.iter().filter(|(v, _)| *v > version) {
                tx.batch_execute(step).await?;
            }
            tx.execute(
                "INSERT INTO mfa_meta (key, value) VALUES ('schema_version', $1)
                 ON CONFLICT (key) DO UPDATE SET value = $1",
                &[&schema::VERSION.to_string()],
            )
            .await?;
            let fingerprint = tx
                .query_opt(
                    "SELECT value FROM mfa_meta WHERE key = 'key_fingerprint'",
                    &[],
                )
                .await?
                .map(|r| r.get::<_, String>(0));
            tx.commit().await?;
            self.checkin(conn);
            Ok(fingerprint)
        })
    }

    /// Record that this key seals the database (the first host to start).
    fn claim(&self, fingerprint: &str) -> Result<(), StoreError> {
        self.run_within("record the key", self.deadline, async {
            let mut conn = self.checkout().await?;
            let tx = conn.client.transaction().await?;
            tx.execute("SELECT pg_advisory_xact_lock($1)", &[&schema::LOCK])
                .await?;
            let factors: i64 = tx
                .query_one("SELECT count(*) FROM factors", &[])
                .await?
                .get(0);
            let stored = tx
                .query_opt(
                    "SELECT value FROM mfa_meta WHERE key = 'key_fingerprint'",
                    &[],
                )
                .await?
                .map(|r| r.get::<_, String>(0));
            match stored {
                Some(f) if f != fingerprint => {
                    return Err(StoreError::Corrupt(
                        "another host sealed the database with another key first".into(),
                    )
                    .into())
                }
                Some(_) => {}
                None if factors > 0 => {
                    return Err(StoreError::Corrupt(
                        "the database holds factors but names no key".into(),
                    )
                    .into())
                }
                None => {
                    tx.execute(
                        "INSERT INTO mfa_meta (key, value) VALUES ('key_fingerprint', $1)",
                        &[&fingerprint],
                    )
                    .await?;
                }
            }
            tx.commit().await?;
            self.checkin(conn);
            Ok(())
        })
    }

    /// Run `work` on this store's runtime within the deadline.
    fn block<T>(
        &self,
        context: &'static str,
        work: impl Future<Output = Pg<T>>,
    ) -> Result<T, StoreError> {
        self.block_within(context, self.deadline, work)
    }

    /// Run `work` on this store's runtime within `deadline`, once the store
    /// is open.
    fn block_within<T>(
        &self,
        context: &'static str,
        deadline: std::time::Duration,
        work: impl Future<Output = Pg<T>>,
    ) -> Result<T, StoreError> {
        if !self.open.load(Ordering::Acquire) {
            return Err(self.not_open(context));
        }
        self.run_within(context, deadline, work)
    }

    /// The refusal of a call before the store is open.
    fn not_open(&self, context: &'static str) -> StoreError {
        StoreError::Backend {
            context,
            message: format!(
                "{}: not open yet, mfad is waiting for the database ({})",
                self.describe,
                self.waiting.lock().unwrap_or_else(|p| p.into_inner())
            ),
            unavailable: true,
        }
    }

    /// Run `work` on this store's runtime within `deadline`, open or not.
    fn run_within<T>(
        &self,
        context: &'static str,
        deadline: std::time::Duration,
        work: impl Future<Output = Pg<T>>,
    ) -> Result<T, StoreError> {
        // The timer belongs to this store's runtime: made inside it.
        let timed = async { tokio::time::timeout(deadline, work).await };
        match self.runtime.block_on(timed) {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(Failure::Store(e))) => Err(e),
            Ok(Err(Failure::Pg(e))) => Err(StoreError::Backend {
                context,
                unavailable: unreachable(e.code().map(SqlState::code)),
                message: format!("{}: {}", self.describe, crate::error::with_causes(&e)),
            }),
            Err(_) => Err(StoreError::Backend {
                context,
                message: format!(
                    "{}: no answer within {} s{}",
                    self.describe,
                    deadline.as_secs(),
                    if deadline == self.deadline {
                        " ([store] timeout)"
                    } else {
                        ""
                    }
                ),
                unavailable: true,
            }),
        }
    }

    /// An open connection: an idle one, or a new one.
    async fn checkout(&self) -> Pg<Conn> {
        let idle = self.idle.lock().unwrap_or_else(|p| p.into_inner()).pop();
        if let Some(conn) = idle.filter(|c| !c.client.is_closed()) {
            return Ok(conn);
        }
        let client = match &self.tls {
            Some(tls) => {
                let (client, connection) = self.config.connect(tls.clone()).await?;
                self.runtime.spawn(connection);
                client
            }
            None => {
                let (client, connection) = self.config.connect(tokio_postgres::NoTls).await?;
                self.runtime.spawn(connection);
                client
            }
        };
        Ok(Conn {
            client,
            prepared: HashMap::new(),
        })
    }

    /// Give back a connection whose call went well; one that failed (or
    /// timed out: its future was dropped) is closed.
    fn checkin(&self, conn: Conn) {
        let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        if idle.len() < POOL && !conn.client.is_closed() {
            idle.push(conn);
        }
    }

    /// One statement outside a transaction; rows changed.
    fn execute(
        &self,
        context: &'static str,
        sql: &'static str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<u64, StoreError> {
        self.block(context, async {
            let mut conn = self.checkout().await?;
            let s = statement(&conn.client, &mut conn.prepared, sql).await?;
            let n = conn.client.execute(&s, params).await?;
            self.checkin(conn);
            Ok(n)
        })
    }
}

/// Whether a failure with this SQLSTATE (`None`: the server sent none)
/// means the database could not be reached in time — a login refused
/// `store-unavailable`, mfad connecting again at the next call — rather
/// than a database that answered and refused (`store-error`).
fn unreachable(sqlstate: Option<&str>) -> bool {
    match sqlstate {
        // A closed connection, an I/O or TLS error, no answer.
        None => true,
        // connection_exception and the rest of its class.
        Some(code) if code.starts_with("08") => true,
        Some(code) => matches!(
            code,
            // admin_shutdown, crash_shutdown, cannot_connect_now (starting
            // up, shutting down, in recovery), idle_session_timeout
            "57P01" | "57P02" | "57P03" | "57P05"
            // too_many_connections
            | "53300"
            // The session's own limits (`session_options`): a statement
            // or a lock wait that took too long, a transaction left idle.
            | "57014" | "55P03" | "25P03"
        ),
    }
}

/// What the server enforces on each of mfad's sessions, from `[store]
/// timeout` (`t`), so that a host that vanishes mid-transaction with its
/// socket left open (power lost, a partition, mfad stopped) cannot hold a
/// user's row lock — and so refuse that user on every host — until the
/// server notices by itself, hours later:
/// - a transaction left idle for half of `t` ends, its locks released: mfad
///   never waits between the statements of one, and a login waiting behind
///   it on another host still gets in within its own deadline;
/// - no statement runs, and no lock is waited for, longer than `t`: the
///   caller gave up by then;
/// - the server's TCP keepalives and `tcp_user_timeout` find a vanished
///   host within a few times `t` (PostgreSQL 12 or later).
fn session_options(t: std::time::Duration) -> String {
    let ms = t.as_millis().max(1);
    let secs = t.as_secs().max(1);
    [
        format!("idle_in_transaction_session_timeout={}", (ms / 2).max(1)),
        format!("statement_timeout={ms}"),
        format!("lock_timeout={ms}"),
        format!("tcp_keepalives_idle={secs}"),
        format!("tcp_keepalives_interval={}", (secs / 3).max(1)),
        format!("tcp_keepalives_count={KEEPALIVE_PROBES}"),
        format!("tcp_user_timeout={ms}"),
    ]
    .iter()
    .map(|setting| format!("-c {setting}"))
    .collect::<Vec<_>>()
    .join(" ")
}

/// Probes unanswered before a peer counts as gone, on either side.
const KEEPALIVE_PROBES: u32 = 3;

/// The same on mfad's side of each connection: a server that vanished is
/// noticed on an idle pooled connection too, not only by the next call's
/// deadline.
fn keepalives(pg: &mut tokio_postgres::Config, t: std::time::Duration) {
    pg.keepalives(true)
        .keepalives_idle(t)
        .keepalives_interval((t / 3).max(std::time::Duration::from_secs(1)))
        .keepalives_retries(KEEPALIVE_PROBES)
        .tcp_user_timeout(t);
}

/// A statement prepared once per connection.
async fn statement(
    db: &impl GenericClient,
    prepared: &mut HashMap<&'static str, Statement>,
    sql: &'static str,
) -> Result<Statement, tokio_postgres::Error> {
    if let Some(s) = prepared.get(sql) {
        return Ok(s.clone());
    }
    let s = db.prepare(sql).await?;
    prepared.insert(sql, s.clone());
    Ok(s)
}

/// Take `user`'s lockout row for this transaction: every check of one user
/// waits for the one before, on every host. (failures, locked until).
async fn lock_user(
    db: &impl GenericClient,
    user: &str,
) -> Result<(u32, u64), tokio_postgres::Error> {
    db.execute(
        "INSERT INTO lockout (user_name, failures, locked_until) VALUES ($1, 0, 0)
         ON CONFLICT (user_name) DO NOTHING",
        &[&user],
    )
    .await?;
    let row = db
        .query_one(
            "SELECT failures, locked_until FROM lockout WHERE user_name = $1 FOR UPDATE",
            &[&user],
        )
        .await?;
    let failures: i32 = row.get(0);
    let until: i64 = row.get(1);
    Ok((failures.max(0) as u32, until.max(0) as u64))
}

/// One more failure for `user` (who had `failures`), locking them out at the
/// limit; (failures now, locked until or 0).
async fn count_failure(
    db: &impl GenericClient,
    user: &str,
    failures: u32,
    now: u64,
    lockout: Lockout,
) -> Result<(u32, u64), tokio_postgres::Error> {
    let failures = failures.saturating_add(1);
    let locked_until = if failures >= lockout.max_failures {
        match lockout.unlock_after {
            0 => i64::MAX as u64,
            after => now.saturating_add(after),
        }
    } else {
        0
    };
    db.execute(
        "UPDATE lockout SET failures = $2, locked_until = $3 WHERE user_name = $1",
        &[&user, &(failures as i32), &counter_to_sql(locked_until)],
    )
    .await?;
    Ok((failures, locked_until))
}

async fn reset_failures(db: &impl GenericClient, user: &str) -> Result<(), tokio_postgres::Error> {
    db.execute(
        "UPDATE lockout SET failures = 0, locked_until = 0 WHERE user_name = $1",
        &[&user],
    )
    .await?;
    Ok(())
}

async fn confirmed_count(
    db: &impl GenericClient,
    user: &str,
) -> Result<u32, tokio_postgres::Error> {
    let n: i64 = db
        .query_one(
            "SELECT count(*) FROM factors WHERE user_name = $1 AND confirmed",
            &[&user],
        )
        .await?
        .get(0);
    Ok(u32::try_from(n).unwrap_or(u32::MAX))
}

/// What `mfad --check-config` finds in a PostgreSQL `[store]` beyond its
/// syntax, as (warnings, errors): a password file that group or others
/// can read is refused (mfad would refuse to start with it); a `timeout`
/// that is not below pam_mfa's default per-call timeout is warned about,
/// since a login waiting on the database would then be cut off by the
/// module instead of denied by mfad (`store-unavailable`).
pub fn check_config(config: &PgConfig) -> (Vec<String>, Vec<String>) {
    let (mut warnings, mut errors) = (Vec::new(), Vec::new());
    let module = std::time::Duration::from_secs(mfa_dbus::DEFAULT_CALL_TIMEOUT_SECS);
    if config.timeout >= module {
        warnings.push(format!(
            "store.timeout = {} is not below pam_mfa's default per-call timeout ({} s): \
             a login waiting on the database would be cut off by the module before mfad \
             denies it; set it lower, or raise the module's timeout= above it",
            config.timeout.as_secs(),
            module.as_secs()
        ));
    }
    if let Some(file) = &config.password_file {
        match std::fs::metadata(file) {
            Err(e) => warnings.push(format!(
                "store.password_file {}: {e}; mfad cannot connect without it",
                file.display()
            )),
            Ok(_) => {
                if let Err(e) = read_password(file) {
                    errors.push(format!("store.password_file: {e}"));
                }
            }
        }
    }
    (warnings, errors)
}

fn read_password(path: &Path) -> Result<String, String> {
    use std::os::unix::fs::PermissionsExt;
    let meta =
        std::fs::metadata(path).map_err(|e| format!("password file {}: {e}", path.display()))?;
    if meta.permissions().mode() & 0o077 != 0 {
        return Err(format!(
            "password file {} has mode {:04o}; group and others must have no access (chmod 0600)",
            path.display(),
            meta.permissions().mode() & 0o777
        ));
    }
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("password file {}: {e}", path.display()))?;
    Ok(text.lines().next().unwrap_or_default().to_string())
}

/// TLS that rustls verifies: the server's certificate chains to a CA of
/// `ca_file`, and names the host connected to.
fn tls_connector(ca_file: &Path) -> Result<tokio_postgres_rustls::MakeRustlsConnect, String> {
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::CertificateDer;
    let mut roots = rustls::RootCertStore::empty();
    let certs = CertificateDer::pem_file_iter(ca_file)
        .map_err(|e| format!("CA file {}: {e}", ca_file.display()))?;
    for cert in certs {
        let cert = cert.map_err(|e| format!("CA file {}: {e}", ca_file.display()))?;
        roots
            .add(cert)
            .map_err(|e| format!("CA file {}: {e}", ca_file.display()))?;
    }
    if roots.is_empty() {
        return Err(format!(
            "CA file {} holds no certificate",
            ca_file.display()
        ));
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(tokio_postgres_rustls::MakeRustlsConnect::new(config))
}

const FACTOR_COLUMNS: &str =
    "id, user_name, kind, label, data, counter, confirmed, approved, created, last_used, expires";

impl FactorStore for PgStore {
    /// The fleet's history: every host's rows in the database.
    fn history(&self) -> Result<History, StoreError> {
        History::start(Arc::new(history::PgHistory::new(Arc::clone(&self.db))))
    }

    fn has_confirmed_factor(&self, user: &str) -> Result<bool, StoreError> {
        self.db.block("look up factors", async {
            let mut conn = self.db.checkout().await?;
            let s = statement(
                &conn.client,
                &mut conn.prepared,
                "SELECT EXISTS (SELECT 1 FROM factors WHERE user_name = $1 AND confirmed)",
            )
            .await?;
            let found: bool = conn.client.query_one(&s, &[&user]).await?.get(0);
            self.db.checkin(conn);
            Ok(found)
        })
    }

    fn factor(&self, user: &str, id: &str) -> Result<Option<FactorRecord>, StoreError> {
        self.db.block("read a factor", async {
            let conn = self.db.checkout().await?;
            let row = conn
                .client
                .query_opt(
                    &format!("SELECT {FACTOR_COLUMNS} FROM factors WHERE id = $1 AND user_name = $2 AND confirmed"),
                    &[&id, &user],
                )
                .await?;
            self.db.checkin(conn);
            Ok(row.map(|r| self.to_factor(&r)).transpose()?)
        })
    }

    fn factors(&self, user: &str, now: u64) -> Result<Vec<FactorRecord>, StoreError> {
        self.db.block("read factors", async {
            let conn = self.db.checkout().await?;
            let rows = conn
                .client
                .query(
                    &format!("SELECT {FACTOR_COLUMNS} FROM factors WHERE user_name = $1 AND (confirmed OR expires > $2) ORDER BY created, seq"),
                    &[&user, &(now as i64)],
                )
                .await?;
            self.db.checkin(conn);
            Ok(rows
                .iter()
                .map(|r| self.to_factor(r))
                .collect::<Result<Vec<_>, _>>()?)
        })
    }

    fn check_factor(
        &self,
        user: &str,
        id: &str,
        now: u64,
        lockout: Lockout,
        verify: &mut dyn FnMut(&FactorRecord) -> Verdict,
    ) -> Result<CodeCheck, StoreError> {
        self.db.block("check a factor", async {
            let mut conn = self.db.checkout().await?;
            let tx = conn.client.transaction().await?;
            let (failures, locked_until) = lock_user(&tx, user).await?;
            if locked_until > now {
                tx.commit().await?;
                self.db.checkin(conn);
                return Ok(CodeCheck::Locked {
                    until: locked_until,
                });
            }
            let row = tx
                .query_opt(
                    &format!("SELECT {FACTOR_COLUMNS} FROM factors WHERE id = $1 AND user_name = $2 AND confirmed"),
                    &[&id, &user],
                )
                .await?;
            let factor = row.map(|r| self.to_factor(&r)).transpose()?;
            let verdict = factor.as_ref().map(&mut *verify).unwrap_or(Verdict::Reject);
            let (mut factor, advance) = match (factor, verdict) {
                (Some(factor), Verdict::Accept(advance)) => (factor, advance),
                (_, verdict) => {
                    let (failures, locked_until) =
                        count_failure(&tx, user, failures, now, lockout).await?;
                    tx.commit().await?;
                    self.db.checkin(conn);
                    return Ok(CodeCheck::Rejected {
                        failures,
                        locked_until,
                        suspicious: match verdict {
                            Verdict::Suspicious(why) => Some(why),
                            _ => None,
                        },
                        wrong: match verdict {
                            Verdict::Wrong(why) => Some(why),
                            _ => None,
                        },
                    });
                }
            };
            self.apply(&tx, &mut factor, advance).await?;
            tx.execute(
                "UPDATE factors SET last_used = $1 WHERE id = $2",
                &[&(now as i64), &factor.id],
            )
            .await?;
            reset_failures(&tx, user).await?;
            tx.commit().await?;
            self.db.checkin(conn);
            factor.last_used = now;
            Ok(CodeCheck::Accepted(factor))
        })
    }

    fn replace_recovery_codes(
        &self,
        user: &str,
        hashes: &[String],
        now: u64,
    ) -> Result<(), StoreError> {
        self.db.block("store recovery codes", async {
            let mut conn = self.db.checkout().await?;
            let tx = conn.client.transaction().await?;
            tx.execute("DELETE FROM recovery_codes WHERE user_name = $1", &[&user])
                .await?;
            for hash in hashes {
                tx.execute(
                    "INSERT INTO recovery_codes (user_name, hash, used, created) VALUES ($1, $2, false, $3)",
                    &[&user, hash, &(now as i64)],
                )
                .await?;
            }
            tx.commit().await?;
            self.db.checkin(conn);
            Ok(())
        })
    }

    fn locked_until(&self, user: &str, now: u64) -> Result<u64, StoreError> {
        self.db.block("read lockout", async {
            let conn = self.db.checkout().await?;
            let row = conn
                .client
                .query_opt(
                    "SELECT locked_until FROM lockout WHERE user_name = $1",
                    &[&user],
                )
                .await?;
            self.db.checkin(conn);
            let until = row.map(|r| r.get::<_, i64>(0).max(0) as u64).unwrap_or(0);
            Ok(if until > now { until } else { 0 })
        })
    }

    fn unused_recovery_codes(&self, user: &str) -> Result<Vec<(i64, String)>, StoreError> {
        self.db.block("read recovery codes", async {
            let conn = self.db.checkout().await?;
            let rows = conn
                .client
                .query(
                    "SELECT id, hash FROM recovery_codes WHERE user_name = $1 AND NOT used",
                    &[&user],
                )
                .await?;
            self.db.checkin(conn);
            Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
        })
    }

    fn use_recovery_code(
        &self,
        user: &str,
        rowid: Option<i64>,
        now: u64,
        lockout: Lockout,
    ) -> Result<RecoveryUse, StoreError> {
        self.db.block("use a recovery code", async {
            let mut conn = self.db.checkout().await?;
            let tx = conn.client.transaction().await?;
            let (failures, locked_until) = lock_user(&tx, user).await?;
            if locked_until > now {
                tx.commit().await?;
                self.db.checkin(conn);
                return Ok(RecoveryUse::Locked);
            }
            let used = match rowid {
                Some(rowid) => {
                    tx.execute(
                        "UPDATE recovery_codes SET used = true WHERE id = $1 AND user_name = $2 AND NOT used",
                        &[&rowid, &user],
                    )
                    .await?
                }
                None => 0,
            };
            if used == 0 {
                let (failures, locked_until) =
                    count_failure(&tx, user, failures, now, lockout).await?;
                tx.commit().await?;
                self.db.checkin(conn);
                return Ok(RecoveryUse::Rejected {
                    failures,
                    locked_until,
                });
            }
            reset_failures(&tx, user).await?;
            let left: i64 = tx
                .query_one(
                    "SELECT count(*) FROM recovery_codes WHERE user_name = $1 AND NOT used",
                    &[&user],
                )
                .await?
                .get(0);
            tx.commit().await?;
            self.db.checkin(conn);
            Ok(RecoveryUse::Used {
                left: u32::try_from(left).unwrap_or(0),
            })
        })
    }

    fn unlock(&self, user: &str, now: u64) -> Result<bool, StoreError> {
        self.db.block("unlock", async {
            let conn = self.db.checkout().await?;
            let row = conn
                .client
                .query_opt(
                    "DELETE FROM lockout WHERE user_name = $1 RETURNING locked_until",
                    &[&user],
                )
                .await?;
            self.db.checkin(conn);
            Ok(row
                .map(|r| r.get::<_, i64>(0).max(0) as u64 > now)
                .unwrap_or(false))
        })
    }

    fn insert_pending(
        &self,
        factor: &FactorRecord,
        limits: FactorLimits,
    ) -> Result<Inserted, StoreError> {
        self.db.block("add an enrolment", async {
            let mut conn = self.db.checkout().await?;
            let Conn { client, prepared } = &mut conn;
            let tx = client.transaction().await?;
            lock_user(&tx, &factor.user).await?;
            if confirmed_count(&tx, &factor.user).await? >= limits.max_factors {
                tx.commit().await?;
                self.db.checkin(conn);
                return Ok(Inserted::TooManyFactors);
            }
            tx.execute(
                "DELETE FROM factors WHERE user_name = $1 AND NOT confirmed AND expires <= $2",
                &[&factor.user, &(factor.created as i64)],
            )
            .await?;
            let replaced: Vec<String> = tx
                .query(
                    "DELETE FROM factors WHERE id IN (
                         SELECT id FROM factors WHERE user_name = $1 AND NOT confirmed
                         ORDER BY created DESC, seq DESC OFFSET $2)
                     RETURNING id",
                    &[
                        &factor.user,
                        &i64::from(limits.max_pending.saturating_sub(1)),
                    ],
                )
                .await?
                .iter()
                .map(|r| r.get(0))
                .collect();
            let pending = FactorRecord {
                confirmed: false,
                last_used: 0,
                ..factor.clone()
            };
            self.insert_factor(&tx, prepared, &pending).await?;
            tx.commit().await?;
            self.db.checkin(conn);
            Ok(Inserted::Added { replaced })
        })
    }

    fn insert_confirmed_within(
        &self,
        factor: &FactorRecord,
        limits: FactorLimits,
    ) -> Result<Inserted, StoreError> {
        self.db.block("add a factor", async {
            let mut conn = self.db.checkout().await?;
            let Conn { client, prepared } = &mut conn;
            let tx = client.transaction().await?;
            lock_user(&tx, &factor.user).await?;
            if confirmed_count(&tx, &factor.user).await? >= limits.max_factors {
                tx.commit().await?;
                self.db.checkin(conn);
                return Ok(Inserted::TooManyFactors);
            }
            let confirmed = FactorRecord {
                confirmed: true,
                expires: 0,
                ..factor.clone()
            };
            self.insert_factor(&tx, prepared, &confirmed).await?;
            tx.commit().await?;
            self.db.checkin(conn);
            Ok(Inserted::Added {
                replaced: Vec::new(),
            })
        })
    }

    fn insert_imported(
        &self,
        factors: &[FactorRecord],
        recovery_codes: &[(String, String)],
        now: u64,
    ) -> Result<(), StoreError> {
        self.db.block("add factors", async {
            let mut conn = self.db.checkout().await?;
            let Conn { client, prepared } = &mut conn;
            let tx = client.transaction().await?;
            for factor in factors {
                let confirmed = FactorRecord {
                    confirmed: true,
                    expires: 0,
                    ..factor.clone()
                };
                self.insert_factor(&tx, prepared, &confirmed).await?;
            }
            for (user, hash) in recovery_codes {
                tx.execute(
                    "INSERT INTO recovery_codes (user_name, hash, used, created) VALUES ($1, $2, false, $3)",
                    &[user, hash, &(now as i64)],
                )
                .await?;
            }
            tx.commit().await?;
            self.db.checkin(conn);
            Ok(())
        })
    }

    fn confirm(
        &self,
        user: &str,
        id: &str,
        now: u64,
        limits: FactorLimits,
        verify: &mut dyn FnMut(&FactorRecord) -> Verdict,
    ) -> Result<Confirmation, StoreError> {
        self.db.block("confirm a factor", async {
            let mut conn = self.db.checkout().await?;
            let tx = conn.client.transaction().await?;
            lock_user(&tx, user).await?;
            if confirmed_count(&tx, user).await? >= limits.max_factors {
                tx.commit().await?;
                self.db.checkin(conn);
                return Ok(Confirmation::TooManyFactors);
            }
            let row = tx
                .query_opt(
                    &format!("SELECT {FACTOR_COLUMNS} FROM factors WHERE id = $1 AND user_name = $2 AND NOT confirmed AND expires > $3"),
                    &[&id, &user, &(now as i64)],
                )
                .await?;
            let Some(mut factor) = row.map(|r| self.to_factor(&r)).transpose()? else {
                tx.commit().await?;
                self.db.checkin(conn);
                return Ok(Confirmation::NotFound);
            };
            let Verdict::Accept(advance) = verify(&factor) else {
                tx.commit().await?;
                self.db.checkin(conn);
                return Ok(Confirmation::WrongCode);
            };
            self.apply(&tx, &mut factor, advance).await?;
            tx.execute(
                "UPDATE factors SET confirmed = true, expires = 0 WHERE id = $1",
                &[&id],
            )
            .await?;
            tx.commit().await?;
            self.db.checkin(conn);
            factor.confirmed = true;
            factor.expires = 0;
            Ok(Confirmation::Confirmed(factor))
        })
    }

    fn advance_factor(
        &self,
        user: &str,
        id: &str,
        advance: &mut dyn FnMut(&FactorRecord) -> Option<Advance>,
    ) -> Result<Advanced, StoreError> {
        self.db.block("move a factor", async {
            let mut conn = self.db.checkout().await?;
            let tx = conn.client.transaction().await?;
            lock_user(&tx, user).await?;
            let row = tx
                .query_opt(
                    &format!("SELECT {FACTOR_COLUMNS} FROM factors WHERE id = $1 AND user_name = $2 AND confirmed"),
                    &[&id, &user],
                )
                .await?;
            let Some(mut factor) = row.map(|r| self.to_factor(&r)).transpose()? else {
                tx.commit().await?;
                self.db.checkin(conn);
                return Ok(Advanced::NotFound);
            };
            let Some(advance) = advance(&factor) else {
                tx.commit().await?;
                self.db.checkin(conn);
                return Ok(Advanced::Unchanged);
            };
            self.apply(&tx, &mut factor, advance).await?;
            tx.commit().await?;
            self.db.checkin(conn);
            Ok(Advanced::Moved(factor))
        })
    }

    fn remove_factor(&self, user: &str, id: &str) -> Result<bool, StoreError> {
        self.db
            .execute(
                "remove a factor",
                "DELETE FROM factors WHERE id = $1 AND user_name = $2",
                &[&id, &user],
            )
            .map(|n| n > 0)
    }

    fn remove_user(&self, user: &str) -> Result<u32, StoreError> {
        self.db.block("reset a user", async {
            let mut conn = self.db.checkout().await?;
            let tx = conn.client.transaction().await?;
            let n = tx
                .execute("DELETE FROM factors WHERE user_name = $1", &[&user])
                .await?;
            for table in [
                "recovery_codes",
                "user_settings",
                "trusted_devices",
                "invitations",
            ] {
                tx.execute(
                    &format!("DELETE FROM {table} WHERE user_name = $1"),
                    &[&user],
                )
                .await?;
            }
            tx.commit().await?;
            self.db.checkin(conn);
            Ok(u32::try_from(n).unwrap_or(u32::MAX))
        })
    }

    fn users(&self, now: u64) -> Result<Vec<UserRow>, StoreError> {
        self.db.block("list users", async {
            let conn = self.db.checkout().await?;
            let rows = conn
                .client
                .query(
                    "SELECT user_name, kind, confirmed, last_used FROM factors
                     WHERE confirmed OR expires > $1 ORDER BY user_name",
                    &[&(now as i64)],
                )
                .await?;
            let locked: std::collections::HashSet<String> = conn
                .client
                .query(
                    "SELECT user_name FROM lockout WHERE locked_until > $1",
                    &[&(now as i64)],
                )
                .await?
                .iter()
                .map(|r| r.get(0))
                .collect();
            self.db.checkin(conn);
            let mut users: Vec<UserRow> = Vec::new();
            for row in &rows {
                let user: String = row.get(0);
                if users.last().map(|u| u.user != user).unwrap_or(true) {
                    users.push(UserRow {
                        locked: locked.contains(&user),
                        user,
                        methods: Vec::new(),
                        factors: 0,
                        pending: 0,
                        last_used: 0,
                    });
                }
                let Some(entry) = users.last_mut() else {
                    continue;
                };
                if row.get::<_, bool>(2) {
                    entry.factors += 1;
                    if let Some(kind) = FactorKind::from_name(row.get(1)) {
                        if !entry.methods.contains(&kind) {
                            entry.methods.push(kind);
                            entry.methods.sort();
                        }
                    }
                } else {
                    entry.pending += 1;
                }
                entry.last_used = entry.last_used.max(row.get::<_, i64>(3).max(0) as u64);
            }
            Ok(users)
        })
    }

    fn hash_key(&self) -> Result<[u8; 32], StoreError> {
        self.sealer().map(Sealer::hash_key)
    }

    fn export(&self) -> Result<super::Snapshot, StoreError> {
        snapshot::export(self)
    }

    fn import(&self, snapshot: &super::Snapshot) -> Result<(), StoreError> {
        snapshot::import(self, snapshot)
    }
}

impl SettingStore for PgStore {
    fn put_invitation(
        &self,
        user: &str,
        factor: &str,
        by_uid: u32,
        now: u64,
    ) -> Result<(), StoreError> {
        self.db
            .execute(
                "store an invitation",
                "INSERT INTO invitations (user_name, factor, by_uid, created) VALUES ($1, $2, $3, $4)
                 ON CONFLICT (user_name) DO UPDATE SET factor = $2, by_uid = $3, created = $4",
                &[&user, &factor, &i64::from(by_uid), &(now as i64)],
            )
            .map(|_| ())
    }

    fn invitation(&self, user: &str, now: u64) -> Result<Option<Invitation>, StoreError> {
        self.db.block("read an invitation", async {
            let conn = self.db.checkout().await?;
            let row = conn
                .client
                .query_opt(
                    "SELECT i.factor, i.by_uid FROM invitations i
                     JOIN factors f ON f.id = i.factor AND f.user_name = i.user_name
                     WHERE i.user_name = $1 AND NOT f.confirmed AND f.expires > $2",
                    &[&user, &(now as i64)],
                )
                .await?;
            self.db.checkin(conn);
            Ok(row.map(|r| Invitation {
                factor: r.get(0),
                by_uid: u32::try_from(r.get::<_, i64>(1)).unwrap_or(u32::MAX),
            }))
        })
    }

    fn policy_state(&self, user: &str, now: u64) -> Result<UserState, StoreError> {
        self.db.block("read the user's state", async {
            let mut conn = self.db.checkout().await?;
            let Conn { client, prepared } = &mut conn;
            let factors_sql = statement(
                client,
                prepared,
                "SELECT id, kind, label, approved FROM factors WHERE user_name = $1 AND confirmed ORDER BY created, seq",
            )
            .await?;
            let settings_sql = statement(
                client,
                prepared,
                "SELECT level, preferred FROM user_settings WHERE user_name = $1",
            )
            .await?;
            let devices_sql = statement(
                client,
                prepared,
                "SELECT device FROM trusted_devices WHERE user_name = $1 AND expires > $2",
            )
            .await?;
            let now = now as i64;
            let (by_user, by_user_now): ([&(dyn ToSql + Sync); 1], [&(dyn ToSql + Sync); 2]) =
                ([&user], [&user, &now]);
            // Three queries, one round trip's wait.
            let (factors, settings, devices) = tokio::try_join!(
                client.query(&factors_sql, &by_user),
                client.query_opt(&settings_sql, &by_user),
                client.query(&devices_sql, &by_user_now),
            )?;
            self.db.checkin(conn);
            let factors = factors
                .iter()
                .map(|r| {
                    let kind: String = r.get(1);
                    let kind = FactorKind::from_name(&kind).ok_or_else(|| {
                        StoreError::Corrupt(format!("unknown factor kind {kind:?}"))
                    })?;
                    Ok(FactorState {
                        id: r.get(0),
                        kind,
                        label: r.get(2),
                        approved: r.get(3),
                    })
                })
                .collect::<Result<Vec<_>, StoreError>>()?;
            let (level, preferred): (Option<String>, Option<String>) = settings
                .map(|r| (r.get(0), r.get(1)))
                .unwrap_or_default();
            let level = match level {
                None => None,
                Some(name) => Some(Level::from_name(&name).ok_or_else(|| {
                    StoreError::Corrupt(format!("unknown level {name:?}"))
                })?),
            };
            Ok(UserState {
                factors,
                level,
                preferred,
                trusted_devices: devices.iter().map(|r| r.get(0)).collect(),
            })
        })
    }

    fn set_level(&self, user: &str, level: Option<Level>) -> Result<(), StoreError> {
        let level = level.map(Level::name);
        self.db
            .execute(
                "set level",
                "INSERT INTO user_settings (user_name, level) VALUES ($1, $2)
             ON CONFLICT (user_name) DO UPDATE SET level = $2",
                &[&user, &level],
            )
            .map(drop)
    }

    fn set_preferred(&self, user: &str, id: &str) -> Result<bool, StoreError> {
        self.db.block("set preferred", async {
            let mut conn = self.db.checkout().await?;
            let tx = conn.client.transaction().await?;
            let exists: bool = tx
                .query_one(
                    "SELECT EXISTS (SELECT 1 FROM factors WHERE id = $1 AND user_name = $2 AND confirmed)",
                    &[&id, &user],
                )
                .await?
                .get(0);
            if exists {
                tx.execute(
                    "INSERT INTO user_settings (user_name, preferred) VALUES ($1, $2)
                     ON CONFLICT (user_name) DO UPDATE SET preferred = $2",
                    &[&user, &id],
                )
                .await?;
            }
            tx.commit().await?;
            self.db.checkin(conn);
            Ok(exists)
        })
    }

    fn settings(&self, user: &str) -> Result<(Option<String>, Option<String>), StoreError> {
        self.db.block("read settings", async {
            let conn = self.db.checkout().await?;
            let row = conn
                .client
                .query_opt(
                    "SELECT level, preferred FROM user_settings WHERE user_name = $1",
                    &[&user],
                )
                .await?;
            self.db.checkin(conn);
            Ok(row.map(|r| (r.get(0), r.get(1))).unwrap_or_default())
        })
    }

    fn set_approved(&self, user: &str, id: &str, approved: bool) -> Result<bool, StoreError> {
        self.db
            .execute(
                "approve a factor",
                "UPDATE factors SET approved = $3 WHERE id = $1 AND user_name = $2 AND confirmed",
                &[&id, &user, &approved],
            )
            .map(|n| n > 0)
    }

    fn trust_device(
        &self,
        user: &str,
        device: &str,
        id: &str,
        now: u64,
        expires: u64,
    ) -> Result<(), StoreError> {
        self.db
            .execute(
                "trust a device",
                "INSERT INTO trusted_devices (id, user_name, device, created, expires, last_used)
             VALUES ($1, $2, $3, $4, $5, $4)
             ON CONFLICT (user_name, device) DO UPDATE SET expires = $5, last_used = $4",
                &[&id, &user, &device, &(now as i64), &(expires as i64)],
            )
            .map(drop)
    }

    fn touch_device(&self, user: &str, device: &str, now: u64) -> Result<(), StoreError> {
        self.db
            .execute(
                "touch a device",
                "UPDATE trusted_devices SET last_used = $3 WHERE user_name = $1 AND device = $2",
                &[&user, &device, &(now as i64)],
            )
            .map(drop)
    }

    fn devices(&self, user: &str, now: u64) -> Result<Vec<DeviceRow>, StoreError> {
        self.db.block("list devices", async {
            let conn = self.db.checkout().await?;
            let rows = conn
                .client
                .query(
                    "SELECT id, device, created, expires, last_used FROM trusted_devices
                     WHERE user_name = $1 AND expires > $2 ORDER BY created, seq",
                    &[&user, &(now as i64)],
                )
                .await?;
            self.db.checkin(conn);
            let nonneg = |v: i64| v.max(0) as u64;
            Ok(rows
                .iter()
                .map(|r| DeviceRow {
                    id: r.get(0),
                    device: r.get(1),
                    created: nonneg(r.get(2)),
                    expires: nonneg(r.get(3)),
                    last_used: nonneg(r.get(4)),
                })
                .collect())
        })
    }

    fn revoke_devices(&self, user: &str, id: Option<&str>) -> Result<u32, StoreError> {
        let n = match id {
            Some(id) => self.db.execute(
                "revoke a device",
                "DELETE FROM trusted_devices WHERE user_name = $1 AND id = $2",
                &[&user, &id],
            )?,
            None => self.db.execute(
                "revoke devices",
                "DELETE FROM trusted_devices WHERE user_name = $1",
                &[&user],
            )?,
        };
        Ok(u32::try_from(n).unwrap_or(u32::MAX))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unreachable_or_overloaded_server_is_store_unavailable_a_refusal_is_not() {
        for code in [
            None,
            Some("08000"),
            Some("08006"),
            Some("08P01"),
            Some("57P01"),
            Some("57P02"),
            Some("57P03"),
            Some("53300"),
            Some("57014"),
            Some("55P03"),
            Some("25P03"),
        ] {
            assert!(unreachable(code), "{code:?}");
        }
        for code in [
            // unique_violation, undefined_table, insufficient_privilege,
            // invalid_password, disk_full, serialization_failure,
            // read_only_sql_transaction, data_corrupted
            "23505", "42P01", "42501", "28P01", "53100", "40001", "25006", "XX001",
        ] {
            assert!(!unreachable(Some(code)), "{code}");
        }
    }

    fn config(timeout: u64, password_file: Option<PathBuf>) -> PgConfig {
        PgConfig {
            host: "db.example.org".into(),
            port: 5432,
            dbname: "mfa".into(),
            user: "mfa".into(),
            password_file,
            tls: PgTls::VerifyFull {
                ca_file: "/etc/mfa/db-ca.pem".into(),
            },
            timeout: std::time::Duration::from_secs(timeout),
        }
    }

    #[test]
    fn check_config_warns_of_a_timeout_not_below_the_modules() {
        let module = mfa_dbus::DEFAULT_CALL_TIMEOUT_SECS;
        for timeout in [1, 3, module - 1] {
            assert_eq!(
                check_config(&config(timeout, None)),
                (vec![], vec![]),
                "{timeout}"
            );
        }
        for timeout in [module, module + 5] {
            let (warnings, errors) = check_config(&config(timeout, None));
            assert!(errors.is_empty(), "{errors:?}");
            assert_eq!(warnings.len(), 1, "{timeout}: {warnings:?}");
            assert!(
                warnings[0].contains(&format!("store.timeout = {timeout} "))
                    && warnings[0].contains(&format!("({module} s)")),
                "{warnings:?}"
            );
        }
    }

    #[test]
    fn check_config_refuses_a_password_file_others_can_read() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().expect("tmp");
        let file = dir.path().join("db-password");
        std::fs::write(&file, "secret\n").expect("write");
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).expect("chmod");
        let (warnings, errors) = check_config(&config(3, Some(file.clone())));
        assert!(warnings.is_empty(), "{warnings:?}");
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert!(
            errors[0].contains(&file.display().to_string()) && errors[0].contains("0644"),
            "{errors:?}"
        );
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).expect("chmod");
        assert_eq!(check_config(&config(3, Some(file))), (vec![], vec![]));
        let (warnings, errors) = check_config(&config(3, Some(dir.path().join("missing"))));
        assert!(errors.is_empty(), "{errors:?}");
        assert!(
            warnings.len() == 1 && warnings[0].contains("missing"),
            "{warnings:?}"
        );
    }

    #[test]
    fn each_session_ends_an_idle_transaction_within_half_the_deadline() {
        let options = session_options(std::time::Duration::from_secs(3));
        for setting in [
            "-c idle_in_transaction_session_timeout=1500",
            "-c statement_timeout=3000",
            "-c lock_timeout=3000",
            "-c tcp_keepalives_idle=3",
            "-c tcp_keepalives_interval=1",
            "-c tcp_keepalives_count=3",
            "-c tcp_user_timeout=3000",
        ] {
            assert!(
                options.split(" -c ").count() == 7 && options.contains(setting),
                "{setting} in {options}"
            );
        }
    }
}
