//! HOTP, RFC 4226: a counter that only moves forward, with a look-ahead
//! window for codes generated but never used.

use super::otp::{codes_equal, hotp};
use super::{normalise_code, Advance, FactorKind, Mechanism, OtpParams};

/// How far past the stored counter a resync looks for two consecutive codes.
pub const RESYNC_LOOKAHEAD: u64 = 1000;

pub struct Hotp {
    /// How many counter values past the expected one are accepted.
    pub window: u32,
}

impl Mechanism for Hotp {
    fn kind(&self) -> FactorKind {
        FactorKind::Hotp
    }

    fn verify(&self, params: &OtpParams, answer: &str, _now: u64) -> Option<Advance> {
        let code = normalise_code(answer, params.digits)?;
        let last = params.counter.checked_add(u64::from(self.window))?;
        let counter = find(params, &code, params.counter..=last)?;
        Some(Advance {
            counter: counter + 1,
            drift: 0,
        })
    }

    fn resync(&self, params: &OtpParams, first: &str, second: &str, _now: u64) -> Option<Advance> {
        let first = normalise_code(first, params.digits)?;
        let second = normalise_code(second, params.digits)?;
        let last = params.counter.checked_add(RESYNC_LOOKAHEAD)?;
        let mut found = None;
        for counter in params.counter..last {
            let pair = find(params, &first, counter..=counter)
                .and_then(|_| find(params, &second, counter + 1..=counter + 1));
            if pair.is_some() && found.is_none() {
                found = Some(counter + 1);
            }
        }
        Some(Advance {
            counter: found? + 1,
            drift: 0,
        })
    }
}

/// The first counter in `range` whose code equals `code`, checking all.
fn find(params: &OtpParams, code: &str, range: impl Iterator<Item = u64>) -> Option<u64> {
    let mut matched = None;
    for counter in range {
        let candidate = hotp(&params.secret, counter, params.digits, params.algorithm);
        if codes_equal(&candidate, code) && matched.is_none() {
            matched = Some(counter);
        }
    }
    matched
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mechanism::Algorithm;

    const KEY: &[u8] = b"12345678901234567890";
    const RFC4226: [&str; 10] = [
        "755224", "287082", "359152", "969429", "338314", "254676", "287922", "162583", "399871",
        "520489",
    ];

    fn params(counter: u64) -> OtpParams {
        OtpParams {
            secret: KEY.to_vec(),
            algorithm: Algorithm::Sha1,
            digits: 6,
            period: 0,
            counter,
            drift: 0,
        }
    }

    #[test]
    fn look_ahead_inside_window_moves_counter() {
        let hotp = Hotp { window: 3 };
        assert_eq!(
            hotp.verify(&params(0), RFC4226[3], 0).map(|a| a.counter),
            Some(4)
        );
        assert_eq!(
            hotp.verify(&params(0), RFC4226[0], 0).map(|a| a.counter),
            Some(1)
        );
    }

    #[test]
    fn behind_counter_or_beyond_window_refused() {
        let hotp = Hotp { window: 3 };
        assert_eq!(
            hotp.verify(&params(5), RFC4226[4], 0).map(|a| a.counter),
            None,
            "behind"
        );
        assert_eq!(
            hotp.verify(&params(0), RFC4226[4], 0).map(|a| a.counter),
            None,
            "beyond window"
        );
        assert_eq!(
            hotp.verify(&params(u64::MAX), RFC4226[0], 0)
                .map(|a| a.counter),
            None,
            "counter exhausted"
        );
    }

    #[test]
    fn resync_finds_two_consecutive_codes_far_ahead() {
        let hotp = Hotp { window: 3 };
        let code = |c: u64| crate::mechanism::otp::hotp(KEY, c, 6, Algorithm::Sha1);
        assert_eq!(
            hotp.verify(&params(0), &code(500), 0),
            None,
            "beyond the window"
        );
        let advance = hotp
            .resync(&params(0), &code(500), &code(501), 0)
            .expect("found");
        assert_eq!(advance.counter, 502);
        assert_eq!(
            hotp.resync(&params(0), &code(500), &code(502), 0),
            None,
            "not consecutive"
        );
        assert_eq!(
            hotp.resync(&params(0), &code(1200), &code(1201), 0),
            None,
            "too far"
        );
        assert_eq!(
            hotp.resync(&params(0), RFC4226[8], RFC4226[9], 0)
                .map(|a| a.counter),
            Some(10)
        );
    }
}
