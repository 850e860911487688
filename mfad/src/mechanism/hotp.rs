//! HOTP, RFC 4226: a counter that only moves forward, with a look-ahead
//! window for codes generated but never used.

use super::otp::{codes_equal, hotp};
use super::{normalise_code, FactorKind, Mechanism, OtpParams};

pub struct Hotp {
    /// How many counter values past the expected one are accepted.
    pub window: u32,
}

impl Mechanism for Hotp {
    fn kind(&self) -> FactorKind {
        FactorKind::Hotp
    }

    fn verify(&self, params: &OtpParams, answer: &str, _now: u64) -> Option<u64> {
        let code = normalise_code(answer, params.digits)?;
        let last = params.counter.checked_add(u64::from(self.window))?;
        let mut matched = None;
        for counter in params.counter..=last {
            let candidate = hotp(&params.secret, counter, params.digits, params.algorithm);
            if codes_equal(&candidate, &code) && matched.is_none() {
                matched = Some(counter + 1);
            }
        }
        matched
    }
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
        }
    }

    #[test]
    fn look_ahead_inside_window_moves_counter() {
        let hotp = Hotp { window: 3 };
        assert_eq!(hotp.verify(&params(0), RFC4226[3], 0), Some(4));
        assert_eq!(hotp.verify(&params(0), RFC4226[0], 0), Some(1));
    }

    #[test]
    fn behind_counter_or_beyond_window_refused() {
        let hotp = Hotp { window: 3 };
        assert_eq!(hotp.verify(&params(5), RFC4226[4], 0), None, "behind");
        assert_eq!(
            hotp.verify(&params(0), RFC4226[4], 0),
            None,
            "beyond window"
        );
        assert_eq!(
            hotp.verify(&params(u64::MAX), RFC4226[0], 0),
            None,
            "counter exhausted"
        );
    }
}
