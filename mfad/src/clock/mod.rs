//! Time is a parameter: the daemon reads the system clock or NTP servers
//! (`[time]`), tests pin it.

mod ntp;

pub use ntp::NtpClock;

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

pub trait Clock: Send + Sync {
    /// Seconds since the Unix epoch.
    fn now(&self) -> u64;

    /// Whether codes may be checked against [`Clock::now`]: not while the
    /// time source mfad was told to trust has gone quiet and the config
    /// says to refuse then. The reason, for the log.
    fn trusted(&self) -> Result<(), String> {
        Ok(())
    }
}

/// The system's real-time clock.
pub struct SystemClock;

impl Clock for SystemClock {
    // The clock owner: the system's time is read here and in ntp.rs only.
    #[allow(clippy::disallowed_methods)]
    fn now(&self) -> u64 {
        // A clock before 1970 is a broken host; treat it as the epoch so
        // every code check fails rather than panicking.
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0)
    }
}

/// A clock that only moves when told to, for tests.
pub struct FixedClock(AtomicU64);

impl FixedClock {
    pub fn new(now: u64) -> Self {
        FixedClock(AtomicU64::new(now))
    }
    pub fn set(&self, now: u64) {
        self.0.store(now, Ordering::SeqCst);
    }
}

impl Clock for FixedClock {
    fn now(&self) -> u64 {
        self.0.load(Ordering::SeqCst)
    }
}
