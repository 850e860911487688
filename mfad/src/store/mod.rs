//! Where mfad keeps factors, counters, lockouts and settings: one trait the
//! service uses ([`Store`]), whatever is behind it — the embedded SQLite
//! database (`sqlite/`, the default, no server) or PostgreSQL for fleets.
//! Every check and the counter it moves are one transaction, committed
//! before "allow" goes back.

mod history;
pub mod postgres;
mod record;
pub(crate) mod seal;
pub mod sqlite;

pub use history::{hostname, History, HistoryRow};
pub use postgres::PgStore;
pub use record::FactorRecord;
pub use seal::KEY_FILE;
pub use sqlite::{SqliteStore, DB_FILE};

use crate::config::StoreConfig;
use std::sync::Arc;

/// The store `config` names, its state (key, local files) in `state_dir`.
pub fn open(config: &StoreConfig, state_dir: &Path) -> Result<Arc<dyn Store>, StoreError> {
    Ok(match config {
        StoreConfig::Sqlite => Arc::new(SqliteStore::open(state_dir)?),
        StoreConfig::Postgres(pg) => Arc::new(PgStore::open(pg, state_dir)?),
    })
}

/// Told how opening a store goes, where mfad logs.
pub type OpenLog = Box<dyn Fn(crate::audit::Severity, &str) + Send>;

/// mfad's start: as [`open`], but a fleet database that cannot be reached
/// yet is waited for, not a failure ([`PgStore::open_or_wait`]); `log` is
/// told about the wait.
pub fn open_or_wait(
    config: &StoreConfig,
    state_dir: &Path,
    log: OpenLog,
) -> Result<Arc<dyn Store>, StoreError> {
    Ok(match config {
        StoreConfig::Sqlite => Arc::new(SqliteStore::open(state_dir)?),
        StoreConfig::Postgres(pg) => PgStore::open_or_wait(pg, state_dir, log)?,
    })
}

use crate::mechanism::{Advance, FactorKind, Verdict};
use crate::policy::{Level, UserState};
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("state directory {path}: {message}")]
    StateDir { path: PathBuf, message: String },
    #[error("store {path} is not usable: {message}")]
    Unusable { path: PathBuf, message: String },
    #[error("store holds a value this mfad cannot have written: {0}")]
    Corrupt(String),
    #[error("cannot seal a secret: {0}")]
    Seal(String),
    /// The backend failed: `unavailable` when it could not be reached in
    /// time (a database server down or frozen), else it refused.
    #[error("store: {context}: {message}")]
    Backend {
        context: &'static str,
        message: String,
        unavailable: bool,
    },
    /// A migration's target already holds data: copying into it would mix
    /// two stores.
    #[error("the target store is not empty: it already holds factors, recovery codes, settings, trusted devices or invitations")]
    NotEmpty,
    /// `mfactl store migrate` copied this store to another one, which mfad
    /// uses once restarted.
    #[error("the store was moved to {0}: restart mfad to use it")]
    Moved(String),
}

impl StoreError {
    /// The store could not be reached (as opposed to: it answered wrongly).
    pub fn is_unavailable(&self) -> bool {
        matches!(
            self,
            StoreError::Backend {
                unavailable: true,
                ..
            } | StoreError::Moved(_)
        )
    }
}

/// Result of confirming a pending enrolment.
#[derive(Debug)]
pub enum Confirmation {
    Confirmed(FactorRecord),
    WrongCode,
    /// No such pending enrolment for this user (or it expired).
    NotFound,
    /// The user has [`FactorLimits::max_factors`] confirmed factors already.
    TooManyFactors,
}

/// How many factors one user may keep: no user can grow the store without
/// bound.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FactorLimits {
    /// Unconfirmed enrolments; a new one replaces the oldest.
    pub max_pending: u32,
    /// Confirmed factors.
    pub max_factors: u32,
}

/// Result of adding a factor.
#[derive(Debug, PartialEq, Eq)]
pub enum Inserted {
    /// Added; the ids of older pending enrolments it replaced.
    Added { replaced: Vec<String> },
    /// The user has [`FactorLimits::max_factors`] confirmed factors already.
    TooManyFactors,
}

/// When consecutive failed codes lock a user out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lockout {
    /// Consecutive failures that lock the user.
    pub max_failures: u32,
    /// Seconds until a lockout ends by itself; 0 = only an admin unlocks.
    pub unlock_after: u64,
}

/// The outcome of [`Store::check_factor`].
#[derive(Debug)]
pub enum CodeCheck {
    /// The code matched this factor, whose counter has moved on.
    Accepted(FactorRecord),
    /// The factor did not accept the response; `failures` in a row now,
    /// and locked until `locked_until` (0 = not locked) if this failure
    /// locked the user. `suspicious`: why the mechanism wants it audited
    /// (the login ends); `wrong`: the audit reason of a wrong response that
    /// has one ([`Verdict::Wrong`]).
    Rejected {
        failures: u32,
        locked_until: u64,
        suspicious: Option<&'static str>,
        wrong: Option<&'static str>,
    },
    /// The user is locked out until `until`; the code was not checked.
    Locked { until: u64 },
}

/// The outcome of [`FactorStore::advance_factor`].
#[derive(Debug)]
pub enum Advanced {
    /// The factor moved on (as it is now).
    Moved(FactorRecord),
    /// It was left as it was.
    Unchanged,
    /// `user` has no confirmed factor with that id.
    NotFound,
}

/// The outcome of [`Store::use_recovery_code`].
#[derive(Debug)]
pub enum RecoveryUse {
    /// Accepted; this many unused codes are left.
    Used { left: u32 },
    /// Not accepted (no match, or used by a racing login); counted as in
    /// [`CodeCheck::Rejected`].
    Rejected { failures: u32, locked_until: u64 },
    /// The user is locked out; nothing was checked or counted.
    Locked,
}

/// One user's row in the admin table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserRow {
    pub user: String,
    pub methods: Vec<FactorKind>,
    pub factors: u32,
    pub pending: u32,
    pub last_used: u64,
    pub locked: bool,
}

/// A remembered device, as its owner or an admin sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceRow {
    pub id: String,
    /// `ssh-key:SHA256:…` or `address:…`.
    pub device: String,
    pub created: u64,
    pub expires: u64,
    pub last_used: u64,
}

/// Everything a store holds, to copy it to another one
/// (`mfactl store migrate`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Snapshot {
    /// Every factor, pending ones too.
    pub factors: Vec<FactorRecord>,
    pub recovery_codes: Vec<RecoveryRow>,
    /// (user, failures in a row, locked until).
    pub lockouts: Vec<(String, u32, u64)>,
    /// (user, level, preferred factor).
    pub settings: Vec<(String, Option<String>, Option<String>)>,
    /// (user, device).
    pub devices: Vec<(String, DeviceRow)>,
    /// Admins' invitations to set up a pending factor.
    pub invitations: Vec<InvitationRow>,
}

/// One invitation, as kept: `user` is invited to set up their pending
/// factor `factor`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvitationRow {
    pub user: String,
    pub factor: String,
    pub by_uid: u32,
    pub created: u64,
}

/// One recovery code, as kept (a slow hash).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecoveryRow {
    pub user: String,
    pub hash: String,
    pub used: bool,
    pub created: u64,
}

impl Snapshot {
    /// How much it holds, in words.
    pub fn describe(&self) -> String {
        format!(
            "{} factors, {} recovery codes, {} lockout rows, {} users' settings, {} trusted devices, {} invitations",
            self.factors.len(),
            self.recovery_codes.len(),
            self.lockouts.len(),
            self.settings.len(),
            self.devices.len(),
            self.invitations.len()
        )
    }
}

/// Everything mfad keeps, whichever backend keeps it.
pub trait Store: FactorStore + SettingStore {}

impl<T: FactorStore + SettingStore> Store for T {}

/// Factors, their counters, recovery codes and lockouts. Every method that
/// checks something and records the outcome does both in one transaction.
pub trait FactorStore: Send + Sync {
    /// The audit history of this host.
    fn history(&self) -> Result<History, StoreError>;
    /// Whether `user` has a confirmed factor: one indexed lookup, no secret
    /// opened (every login's Start asks this).
    fn has_confirmed_factor(&self, user: &str) -> Result<bool, StoreError>;
    /// `user`'s confirmed factor `id`, its data opened.
    fn factor(&self, user: &str, id: &str) -> Result<Option<FactorRecord>, StoreError>;
    /// Every factor of `user`, with pending ones that have not expired.
    fn factors(&self, user: &str, now: u64) -> Result<Vec<FactorRecord>, StoreError>;
    /// Check a response against `user`'s confirmed factor `id` with
    /// `verify`, and record the outcome (the factor moved, or one more
    /// failure), in one transaction; nothing is checked while locked.
    fn check_factor(
        &self,
        user: &str,
        id: &str,
        now: u64,
        lockout: Lockout,
        verify: &mut dyn FnMut(&FactorRecord) -> Verdict,
    ) -> Result<CodeCheck, StoreError>;
    /// Replace all of `user`'s recovery codes with these hashes.
    fn replace_recovery_codes(
        &self,
        user: &str,
        hashes: &[String],
        now: u64,
    ) -> Result<(), StoreError>;
    /// Until when `user` is locked out; 0 if not locked.
    fn locked_until(&self, user: &str, now: u64) -> Result<u64, StoreError>;
    /// `user`'s unused recovery codes: (row id, hash).
    fn unused_recovery_codes(&self, user: &str) -> Result<Vec<(i64, String)>, StoreError>;
    /// Use recovery code `rowid` (found to match outside any lock), or count
    /// a failure when it is `None`, in one transaction.
    fn use_recovery_code(
        &self,
        user: &str,
        rowid: Option<i64>,
        now: u64,
        lockout: Lockout,
    ) -> Result<RecoveryUse, StoreError>;
    /// Clear a user's failures and lockout; true if they were locked.
    fn unlock(&self, user: &str, now: u64) -> Result<bool, StoreError>;
    /// Add a pending enrolment within `limits` (expired ones go, the oldest
    /// pending ones make room).
    fn insert_pending(
        &self,
        factor: &FactorRecord,
        limits: FactorLimits,
    ) -> Result<Inserted, StoreError>;
    /// Add a factor that is confirmed already, within `limits`.
    fn insert_confirmed_within(
        &self,
        factor: &FactorRecord,
        limits: FactorLimits,
    ) -> Result<Inserted, StoreError>;
    /// Add confirmed factors (imports, migrations), all or nothing.
    fn insert_confirmed(&self, factors: &[FactorRecord]) -> Result<(), StoreError> {
        self.insert_imported(factors, &[], 0)
    }
    /// Add confirmed factors and recovery codes (`(user, hash)`, beside
    /// the user's others), all or nothing: an import.
    fn insert_imported(
        &self,
        factors: &[FactorRecord],
        recovery_codes: &[(String, String)],
        now: u64,
    ) -> Result<(), StoreError>;
    /// Confirm `user`'s pending factor `id` with `verify`, in one transaction.
    fn confirm(
        &self,
        user: &str,
        id: &str,
        now: u64,
        limits: FactorLimits,
        verify: &mut dyn FnMut(&FactorRecord) -> Verdict,
    ) -> Result<Confirmation, StoreError>;
    /// Move `user`'s confirmed factor `id` where `advance` says (`None`:
    /// leave it), reading and writing it in one transaction under the
    /// user's lock: a resync, an e-mail code issued.
    fn advance_factor(
        &self,
        user: &str,
        id: &str,
        advance: &mut dyn FnMut(&FactorRecord) -> Option<Advance>,
    ) -> Result<Advanced, StoreError>;
    /// Remove one factor of `user`; false if there was none with that id.
    fn remove_factor(&self, user: &str, id: &str) -> Result<bool, StoreError>;
    /// Remove every factor, recovery code, setting and trusted device of
    /// `user`; how many factors.
    fn remove_user(&self, user: &str) -> Result<u32, StoreError>;
    /// Every user with a factor (pending ones only until they expire).
    fn users(&self, now: u64) -> Result<Vec<UserRow>, StoreError>;
    /// A key for keyed hashes of what must not be kept in the clear, not
    /// even sealed (e-mail codes): the same on every host of this store.
    /// Unavailable while a fleet database is not open yet.
    fn hash_key(&self) -> Result<[u8; 32], StoreError>;
    /// Everything it holds, read in one transaction.
    fn export(&self) -> Result<Snapshot, StoreError>;
    /// Put `snapshot` into this store, which must be empty: all in one
    /// transaction, or nothing.
    fn import(&self, snapshot: &Snapshot) -> Result<(), StoreError>;
    /// Hand everything to `copy` (which puts it in the store named `to`)
    /// and, once it has, serve nothing more: no change can happen between
    /// the copy and the end, and this copy is refused from then on, even
    /// after a restart. What was copied.
    fn move_to(
        &self,
        to: &str,
        copy: &mut dyn FnMut(&Snapshot) -> Result<(), StoreError>,
    ) -> Result<Snapshot, StoreError> {
        let _ = (to, copy);
        Err(StoreError::Backend {
            context: "move the store",
            message: "only the embedded SQLite store can be moved; to move a PostgreSQL \
                      database, use pg_dump and pg_restore"
                .into(),
            unavailable: false,
        })
    }
}

/// What the policy reads and users change: level, preferred factor,
/// approvals, trusted devices.
/// An admin's invitation to set up a factor (`mfactl enrol KIND --user U
/// --invite`): the pending factor it names, and who invited.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invitation {
    pub factor: String,
    pub by_uid: u32,
}

pub trait SettingStore: Send + Sync {
    /// Invite `user` to set up their pending factor `factor` (one
    /// invitation per user: a new one replaces the old).
    fn put_invitation(
        &self,
        user: &str,
        factor: &str,
        by_uid: u32,
        now: u64,
    ) -> Result<(), StoreError>;
    /// `user`'s invitation, while the factor it names is still pending.
    fn invitation(&self, user: &str, now: u64) -> Result<Option<Invitation>, StoreError>;
    /// What the policy needs about `user`: confirmed factors (no secret
    /// opened), level, preferred factor, devices trusted at `now`.
    fn policy_state(&self, user: &str, now: u64) -> Result<UserState, StoreError>;
    /// The level `user` chose (`None`: drop the choice).
    fn set_level(&self, user: &str, level: Option<Level>) -> Result<(), StoreError>;
    /// Ask `user`'s confirmed factor `id` first; false if there is none.
    fn set_preferred(&self, user: &str, id: &str) -> Result<bool, StoreError>;
    /// (level chosen, preferred factor) of `user`, as stored.
    fn settings(&self, user: &str) -> Result<(Option<String>, Option<String>), StoreError>;
    /// Approve `user`'s confirmed factor `id` for privileged services, or
    /// withdraw it; false if there is none.
    fn set_approved(&self, user: &str, id: &str, approved: bool) -> Result<bool, StoreError>;
    /// Trust `device` for `user` until `expires` (a new id, or the old
    /// entry renewed).
    fn trust_device(
        &self,
        user: &str,
        device: &str,
        id: &str,
        now: u64,
        expires: u64,
    ) -> Result<(), StoreError>;
    /// Record that `device` skipped a code for `user` at `now`.
    fn touch_device(&self, user: &str, device: &str, now: u64) -> Result<(), StoreError>;
    /// `user`'s devices trusted at `now`.
    fn devices(&self, user: &str, now: u64) -> Result<Vec<DeviceRow>, StoreError>;
    /// Forget `user`'s device `id`, or all of them; how many.
    fn revoke_devices(&self, user: &str, id: Option<&str>) -> Result<u32, StoreError>;
}

/// Create the state directory (0700) if missing; refuse one others can enter.
pub(crate) fn prepare_state_dir(dir: &Path) -> Result<(), StoreError> {
    let err = |message: String| StoreError::StateDir {
        path: dir.to_path_buf(),
        message,
    };
    if !dir.exists() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(|e| err(format!("cannot create: {e}")))?;
    }
    let meta = std::fs::metadata(dir).map_err(|e| err(e.to_string()))?;
    if !meta.is_dir() {
        return Err(err("is not a directory".into()));
    }
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(err(format!(
            "has mode {mode:04o}; group and others must have no access (chmod 0700)"
        )));
    }
    Ok(())
}

/// Counters are u64 on the wire and i64 in SQLite; mfad never stores one
/// above i64::MAX (enrolment refuses such a start counter).
/// Counters are u64 on the wire and i64 in the databases; mfad never stores
/// one above i64::MAX (enrolment refuses such a start counter).
/// Write `bytes` to `path` (mode 0600) so that after a crash the file is
/// either whole or absent: a temporary file, synced, renamed into place.
pub(crate) fn write_durably(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let tmp = path.with_extension("tmp");
    let _ = std::fs::remove_file(&tmp);
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)?;
    file.write_all(bytes)?;
    file.sync_all()?;
    std::fs::rename(&tmp, path)?;
    if let Some(dir) = path.parent() {
        std::fs::File::open(dir)?.sync_all()?;
    }
    Ok(())
}

pub(crate) fn counter_to_sql(counter: u64) -> i64 {
    i64::try_from(counter).unwrap_or(i64::MAX)
}
