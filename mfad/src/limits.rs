//! How often one caller may change their own account: a token bucket per
//! uid, `burst` deep, refilled at `per_hour` tokens an hour. Every change
//! writes the store and the audit history; the bucket bounds both for each
//! user (`per_hour` × 24 rows a day at most), whatever a script does.

use std::collections::HashMap;
use std::sync::Mutex;

/// A change refused: when the next one will be allowed, and whether this
/// is the first refusal since the caller was last allowed (log it once).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limited {
    pub retry_after: u64,
    pub first: bool,
}

pub struct RateLimiter {
    burst: u32,
    per_hour: u32,
    buckets: Mutex<HashMap<u32, Bucket>>,
}

/// Tokens are counted in thousandths, so slow refill rates stay exact.
const MILLI: u64 = 1000;
/// Past this many remembered callers, full buckets are forgotten.
const KEEP: usize = 4096;

#[derive(Debug, Clone, Copy)]
struct Bucket {
    milli_tokens: u64,
    updated: u64,
    refused: bool,
}

impl RateLimiter {
    pub fn new(burst: u32, per_hour: u32) -> RateLimiter {
        RateLimiter {
            burst: burst.max(1),
            per_hour: per_hour.max(1),
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// Take one token of `uid`'s bucket at time `now` (seconds).
    pub fn spend(&self, uid: u32, now: u64) -> Result<(), Limited> {
        let full = u64::from(self.burst) * MILLI;
        let mut buckets = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        if buckets.len() >= KEEP {
            buckets.retain(|_, b| self.refilled(b, now) < full);
        }
        let bucket = buckets.entry(uid).or_insert(Bucket {
            milli_tokens: full,
            updated: now,
            refused: false,
        });
        bucket.milli_tokens = self.refilled(bucket, now);
        bucket.updated = now;
        if bucket.milli_tokens >= MILLI {
            bucket.milli_tokens -= MILLI;
            bucket.refused = false;
            return Ok(());
        }
        let missing = MILLI - bucket.milli_tokens;
        let first = !bucket.refused;
        bucket.refused = true;
        Err(Limited {
            retry_after: (missing * 3600).div_ceil(u64::from(self.per_hour) * MILLI),
            first,
        })
    }

    fn refilled(&self, bucket: &Bucket, now: u64) -> u64 {
        let elapsed = now.saturating_sub(bucket.updated);
        let gained = elapsed.saturating_mul(u64::from(self.per_hour) * MILLI) / 3600;
        bucket
            .milli_tokens
            .saturating_add(gained)
            .min(u64::from(self.burst) * MILLI)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_then_the_hourly_rate() {
        let limiter = RateLimiter::new(3, 60);
        for _ in 0..3 {
            assert_eq!(limiter.spend(1000, 100), Ok(()));
        }
        let refused = limiter.spend(1000, 100).expect_err("bucket empty");
        assert_eq!(refused.retry_after, 60);
        assert!(refused.first);
        assert!(!limiter.spend(1000, 130).expect_err("still empty").first);
        assert_eq!(limiter.spend(1000, 160), Ok(()), "one token a minute");
        assert!(limiter.spend(1000, 161).is_err());
        // Another caller has a bucket of its own.
        assert_eq!(limiter.spend(1001, 161), Ok(()));
        // A long pause refills up to the burst, no more.
        for _ in 0..3 {
            assert_eq!(limiter.spend(1000, 100_000), Ok(()));
        }
        assert!(limiter.spend(1000, 100_000).is_err());
    }

    #[test]
    fn many_callers_do_not_grow_it_without_bound() {
        let limiter = RateLimiter::new(2, 3600);
        for uid in 0..5_000 {
            limiter.spend(uid, 10).expect("first change");
        }
        // Ten seconds later every bucket is full again, and forgotten.
        limiter.spend(0, 20).expect("change");
        let kept = limiter.buckets.lock().expect("lock").len();
        assert!(kept <= KEEP, "{kept} buckets kept");
    }
}
