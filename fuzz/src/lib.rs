//! What the fuzz targets share: an mfad [`Service`] over a throwaway store,
//! with a fixed clock and two enrolled users, put back into the same state
//! before every input so that a crash reproduces from its input alone.

use mfad::audit::Audit;
use mfad::clock::FixedClock;
use mfad::config::{Config, LogTarget};
use mfad::mechanism::{recovery, Algorithm, FactorData, FactorKind, OtpParams};
use mfad::service::Service;
use mfad::store::{FactorRecord, FactorStore, SqliteStore};
use std::sync::Arc;

pub const NOW: u64 = 1_700_000_010;
/// The bus connection every call comes from.
pub const OWNER: &str = ":1.42";
/// Has a TOTP (SHA1, 6 digits) and an HOTP (SHA256, 8 digits) factor.
pub const ALICE: &str = "alice";
/// Has a TOTP (SHA512, 7 digits) factor and one recovery code: every
/// recovery-shaped answer for bob costs an argon2 check (tens of ms), so
/// targets pick him for a few inputs only.
pub const BOB: &str = "bob";
/// Bob's recovery code. One, not mfad's batch of ten: each unused code is
/// one more slow hash per answer.
pub const RECOVERY_CODE: &str = "abcd-efgh-ijkl";
/// The RFC 4226/6238 test key.
pub const KEY: &[u8] = b"12345678901234567890";

pub struct World {
    pub service: Service,
    pub clock: Arc<FixedClock>,
    /// A second connection to the service's store, to put factors back.
    store: SqliteStore,
    recovery_hash: String,
    _dir: tempfile::TempDir,
}

/// A confirmed factor of `user` with the fuzz key.
pub fn factor(
    id: &str,
    user: &str,
    kind: FactorKind,
    algorithm: Algorithm,
    digits: u32,
) -> FactorRecord {
    FactorRecord {
        id: id.into(),
        user: user.into(),
        kind,
        label: kind.name().into(),
        counter: 0,
        data: FactorData::Otp(OtpParams {
            secret: KEY.to_vec(),
            algorithm,
            digits,
            period: if kind == FactorKind::Totp { 30 } else { 0 },
            drift: 0,
        }),
        confirmed: true,
        approved: false,
        created: NOW - 100,
        last_used: 0,
        expires: 0,
    }
}

fn factors() -> Vec<FactorRecord> {
    vec![
        factor(
            "a1a1a1a1a1a1a1a1",
            ALICE,
            FactorKind::Totp,
            Algorithm::Sha1,
            6,
        ),
        factor(
            "a2a2a2a2a2a2a2a2",
            ALICE,
            FactorKind::Hotp,
            Algorithm::Sha256,
            8,
        ),
        factor(
            "b1b1b1b1b1b1b1b1",
            BOB,
            FactorKind::Totp,
            Algorithm::Sha512,
            7,
        ),
    ]
}

impl World {
    /// The store goes under `$TMPDIR` (scripts/fuzz.sh points it at tmpfs:
    /// every change is an fsync'd transaction).
    pub fn new() -> World {
        let dir = tempfile::tempdir().expect("temporary directory");
        let mut config = Config::default();
        config.daemon.state_dir = dir.path().join("state");
        // Audit lines go to stderr, which scripts/fuzz.sh discards for the
        // targets that drive a Service; never to the host's syslog.
        config.daemon.log = LogTarget::Stderr;
        // Small enough that one input can reach every ending: a retry, the
        // try limit, and a lockout across two logins.
        config.login.max_tries = 2;
        config.lockout.max_failures = 3;
        // MFA on and required: every login is asked.
        config.policy.enabled = true;
        config.policy.default_rule.require = mfad::policy::Requirement::Force;
        let store = Arc::new(SqliteStore::open(&config.daemon.state_dir).expect("store"));
        let clock = Arc::new(FixedClock::new(NOW));
        let service = Service::new(
            config.clone(),
            store,
            clock.clone(),
            Audit::new(LogTarget::Stderr),
        );
        let code = recovery::normalise(RECOVERY_CODE).expect("recovery code");
        let world = World {
            service,
            clock,
            store: SqliteStore::open(&config.daemon.state_dir).expect("second store connection"),
            recovery_hash: recovery::hash(&code).expect("hash"),
            _dir: dir,
        };
        world.reset();
        world
    }

    /// Back to the starting state: clock, failure counts, factors and
    /// their counters (an accepted code moves one), bob's recovery code, no
    /// login in progress.
    pub fn reset(&self) {
        // Every login left over is past its time limit ten days on.
        self.clock.set(NOW + 10 * 24 * 3600);
        self.service.sweep();
        self.clock.set(NOW);
        for user in [ALICE, BOB] {
            self.store.unlock(user, NOW).expect("unlock");
        }
        let factors = factors();
        for f in &factors {
            self.store.remove_factor(&f.user, &f.id).expect("remove");
        }
        self.store.insert_confirmed(&factors).expect("factors");
        self.store
            .replace_recovery_codes(BOB, std::slice::from_ref(&self.recovery_hash), NOW)
            .expect("recovery code");
    }
}

impl Default for World {
    fn default() -> Self {
        World::new()
    }
}

/// Whether `answer` has the shape of a code some factor could accept: an
/// OTP (digits, spaces allowed) or a recovery code. Anything else must
/// never log anyone in.
pub fn code_shaped(answer: &str) -> bool {
    let digits: String = answer.chars().filter(|c| *c != ' ').collect();
    let otp = (6..=8).contains(&digits.len()) && digits.bytes().all(|b| b.is_ascii_digit());
    otp || mfad::mechanism::recovery::normalise(answer).is_some()
}
