//! HOTP, RFC 4226: a counter that only moves forward, with a look-ahead
//! window for codes generated but never used.

use super::otp::{codes_equal, hotp};
use super::{
    normalise_code, otpauth, Advance, Challenge, EnrolError, EnrolRequest, FactorData, FactorKind,
    LoginContext, Mechanism, NewFactor, OtpParams, Response, Verdict,
};
use crate::mechanism::ChallengeError;
use crate::store::FactorRecord;
use std::any::Any;

/// How far past the stored counter a resync looks for two consecutive codes.
pub const RESYNC_LOOKAHEAD: u64 = 1000;

pub struct Hotp {
    /// How many counter values past the expected one are accepted.
    pub window: u32,
    /// What a new factor gets unless its enrolment asks otherwise.
    pub defaults: otpauth::Defaults,
}

impl Hotp {
    /// The counter after `answer`, for a factor expecting `counter` next.
    pub(crate) fn check(&self, params: &OtpParams, counter: u64, answer: &str) -> Option<u64> {
        let code = normalise_code(answer, params.digits)?;
        let last = counter.checked_add(u64::from(self.window))?;
        Some(find(params, &code, counter..=last)? + 1)
    }

    pub(crate) fn find_pair(
        &self,
        params: &OtpParams,
        counter: u64,
        first: &str,
        second: &str,
    ) -> Option<u64> {
        let first = normalise_code(first, params.digits)?;
        let second = normalise_code(second, params.digits)?;
        let last = counter.checked_add(RESYNC_LOOKAHEAD)?;
        let mut found = None;
        for c in counter..last {
            let pair =
                find(params, &first, c..=c).and_then(|_| find(params, &second, c + 1..=c + 1));
            if pair.is_some() && found.is_none() {
                found = Some(c + 1);
            }
        }
        Some(found? + 1)
    }
}

impl Mechanism for Hotp {
    fn kind(&self) -> FactorKind {
        FactorKind::Hotp
    }

    fn enrol(&self, request: &EnrolRequest<'_>) -> Result<NewFactor, EnrolError> {
        otpauth::enrol(FactorKind::Hotp, &self.defaults, request)
    }

    fn enrols_at_login(&self) -> bool {
        true
    }

    fn challenge(
        &self,
        _load: &mut dyn FnMut() -> Result<FactorRecord, ChallengeError>,
        _others: &mut dyn FnMut() -> Result<Vec<FactorRecord>, ChallengeError>,
        _login: &LoginContext,
    ) -> Result<Challenge, ChallengeError> {
        Ok(Challenge::code_prompt(otpauth::PROMPT))
    }

    fn verify(
        &self,
        factor: &FactorRecord,
        _challenge: &(dyn Any + Send),
        response: &Response,
        _now: u64,
    ) -> Verdict {
        let (FactorData::Otp(params), Response::Text(answer)) = (&factor.data, response) else {
            return Verdict::Reject;
        };
        match self.check(params, factor.counter, answer) {
            Some(counter) => Verdict::Accept(Advance {
                counter,
                data: None,
            }),
            None => Verdict::Reject,
        }
    }

    fn resync(
        &self,
        factor: &FactorRecord,
        first: &str,
        second: &str,
        _now: u64,
    ) -> Option<Advance> {
        let FactorData::Otp(params) = &factor.data else {
            return None;
        };
        let counter = self.find_pair(params, factor.counter, first, second)?;
        Some(Advance {
            counter,
            data: None,
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

    fn params() -> OtpParams {
        OtpParams {
            secret: KEY.to_vec(),
            algorithm: Algorithm::Sha1,
            digits: 6,
            period: 0,
            drift: 0,
        }
    }

    fn hotp(window: u32) -> Hotp {
        Hotp {
            window,
            defaults: otpauth::Defaults::default(),
        }
    }

    #[test]
    fn look_ahead_inside_window_moves_counter() {
        let hotp = hotp(3);
        assert_eq!(hotp.check(&params(), 0, RFC4226[3]), Some(4));
        assert_eq!(hotp.check(&params(), 0, RFC4226[0]), Some(1));
    }

    #[test]
    fn behind_counter_or_beyond_window_refused() {
        let hotp = hotp(3);
        assert_eq!(hotp.check(&params(), 5, RFC4226[4]), None, "behind");
        assert_eq!(hotp.check(&params(), 0, RFC4226[4]), None, "beyond window");
        assert_eq!(
            hotp.check(&params(), u64::MAX, RFC4226[0]),
            None,
            "counter exhausted"
        );
    }

    #[test]
    fn resync_finds_two_consecutive_codes_far_ahead() {
        let hotp = hotp(3);
        let code = |c: u64| crate::mechanism::otp::hotp(KEY, c, 6, Algorithm::Sha1);
        assert_eq!(
            hotp.check(&params(), 0, &code(500)),
            None,
            "beyond the window"
        );
        let advance = hotp
            .find_pair(&params(), 0, &code(500), &code(501))
            .expect("found");
        assert_eq!(advance, 502);
        assert_eq!(
            hotp.find_pair(&params(), 0, &code(500), &code(502)),
            None,
            "not consecutive"
        );
        assert_eq!(
            hotp.find_pair(&params(), 0, &code(1200), &code(1201)),
            None,
            "too far"
        );
        assert_eq!(
            hotp.find_pair(&params(), 0, RFC4226[8], RFC4226[9]),
            Some(10)
        );
    }
}
