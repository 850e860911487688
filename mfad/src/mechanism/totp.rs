//! TOTP, RFC 6238.

use super::otp::{codes_equal, hotp};
use super::{
    normalise_code, otpauth, Advance, Challenge, EnrolError, EnrolRequest, FactorData, FactorKind,
    LoginContext, Mechanism, NewFactor, OtpParams, Response, Verdict,
};
use crate::mechanism::ChallengeError;
use crate::store::FactorRecord;
use std::any::Any;

pub struct Totp {
    /// Time steps accepted on either side of the expected one.
    pub skew: u32,
    /// The most steps a token's clock may be learned to be off by; resync
    /// searches this far too.
    pub max_drift: u32,
    /// What a new factor gets unless its enrolment asks otherwise.
    pub defaults: otpauth::Defaults,
}

/// Where a right code puts the factor: the lowest step still acceptable
/// (one past the code's), and the token's clock offset it showed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Moved {
    pub counter: u64,
    pub drift: i64,
}

impl Totp {
    /// The drift of a code accepted at `step` when the time step is `current`,
    /// within the cap.
    fn drift(&self, step: u64, current: u64) -> i64 {
        let cap = i64::from(self.max_drift);
        (step as i64 - current as i64).clamp(-cap, cap)
    }

    /// The first step whose code equals `code`, among `steps`, checking all
    /// of them so the time taken does not tell which one matched.
    fn find(params: &OtpParams, code: &str, steps: impl Iterator<Item = u64>) -> Option<u64> {
        let mut matched = None;
        for step in steps {
            let candidate = hotp(&params.secret, step, params.digits, params.algorithm);
            if codes_equal(&candidate, code) && matched.is_none() {
                matched = Some(step);
            }
        }
        matched
    }

    /// Check `answer` at time `now` against a factor whose lowest acceptable
    /// step is `counter` (one past the last accepted code, so no code works
    /// twice and none older than an accepted one).
    pub(crate) fn check(
        &self,
        params: &OtpParams,
        counter: u64,
        answer: &str,
        now: u64,
    ) -> Option<Moved> {
        let code = normalise_code(answer, params.digits)?;
        if params.period == 0 {
            return None;
        }
        let current = now / u64::from(params.period);
        // The window is centred where the token's clock was last seen.
        let cap = i64::from(self.max_drift);
        let expected = current.saturating_add_signed(params.drift.clamp(-cap, cap));
        let first = expected.saturating_sub(u64::from(self.skew)).max(counter);
        let last = expected.saturating_add(u64::from(self.skew));
        let step = Self::find(params, &code, first..=last)?;
        Some(Moved {
            counter: step + 1,
            drift: self.drift(step, current),
        })
    }

    pub(crate) fn find_pair(
        &self,
        params: &OtpParams,
        counter: u64,
        first: &str,
        second: &str,
        now: u64,
    ) -> Option<Moved> {
        let (first, second) = (
            normalise_code(first, params.digits)?,
            normalise_code(second, params.digits)?,
        );
        if params.period == 0 {
            return None;
        }
        let current = now / u64::from(params.period);
        let low = current
            .saturating_sub(u64::from(self.max_drift))
            .max(counter);
        let high = current.saturating_add(u64::from(self.max_drift));
        let mut found = None;
        for step in low..high {
            let pair = Self::find(params, &first, step..=step)
                .and_then(|_| Self::find(params, &second, step + 1..=step + 1));
            if pair.is_some() && found.is_none() {
                found = Some(step + 1);
            }
        }
        let step = found?;
        Some(Moved {
            counter: step + 1,
            drift: self.drift(step, current),
        })
    }
}

/// The factor's counter and data after `moved`.
fn advance(params: &OtpParams, moved: Moved) -> Advance {
    Advance {
        counter: moved.counter,
        data: (moved.drift != params.drift).then(|| {
            FactorData::Otp(OtpParams {
                drift: moved.drift,
                ..params.clone()
            })
        }),
    }
}

impl Mechanism for Totp {
    fn kind(&self) -> FactorKind {
        FactorKind::Totp
    }

    fn enrol(&self, request: &EnrolRequest<'_>) -> Result<NewFactor, EnrolError> {
        otpauth::enrol(FactorKind::Totp, &self.defaults, request)
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
        now: u64,
    ) -> Verdict {
        let (FactorData::Otp(params), Response::Text(answer)) = (&factor.data, response) else {
            return Verdict::Reject;
        };
        match self.check(params, factor.counter, answer, now) {
            Some(moved) => Verdict::Accept(advance(params, moved)),
            None => Verdict::Reject,
        }
    }

    fn resync(
        &self,
        factor: &FactorRecord,
        first: &str,
        second: &str,
        now: u64,
    ) -> Option<Advance> {
        let FactorData::Otp(params) = &factor.data else {
            return None;
        };
        self.find_pair(params, factor.counter, first, second, now)
            .map(|moved| Advance {
                counter: moved.counter,
                // A resync replaces the learned drift, even with the same value.
                data: Some(FactorData::Otp(OtpParams {
                    drift: moved.drift,
                    ..params.clone()
                })),
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mechanism::Algorithm;

    fn params(secret: &[u8], algorithm: Algorithm, digits: u32) -> OtpParams {
        OtpParams {
            secret: secret.to_vec(),
            algorithm,
            digits,
            period: 30,
            drift: 0,
        }
    }

    fn totp(skew: u32, max_drift: u32) -> Totp {
        Totp {
            skew,
            max_drift,
            defaults: otpauth::Defaults::default(),
        }
    }

    const SHA1_KEY: &[u8] = b"12345678901234567890";
    const SHA256_KEY: &[u8] = b"12345678901234567890123456789012";
    const SHA512_KEY: &[u8] = b"1234567890123456789012345678901234567890123456789012345678901234";

    /// RFC 6238 Appendix B, all rows, all three hashes, 8 digits.
    #[test]
    fn rfc6238_appendix_b() {
        let rows: [(u64, &str, &str, &str); 6] = [
            (59, "94287082", "46119246", "90693936"),
            (1111111109, "07081804", "68084774", "25091201"),
            (1111111111, "14050471", "67062674", "99943326"),
            (1234567890, "89005924", "91819424", "93441116"),
            (2000000000, "69279037", "90698825", "38618901"),
            (20000000000, "65353130", "77737706", "47863826"),
        ];
        for (t, sha1, sha256, sha512) in rows {
            for (key, algorithm, code) in [
                (SHA1_KEY, Algorithm::Sha1, sha1),
                (SHA256_KEY, Algorithm::Sha256, sha256),
                (SHA512_KEY, Algorithm::Sha512, sha512),
            ] {
                assert_eq!(
                    hotp(key, t / 30, 8, algorithm),
                    code,
                    "{algorithm:?} at t={t}"
                );
                let totp = totp(0, 10);
                assert_eq!(
                    totp.check(&params(key, algorithm, 8), 0, code, t)
                        .map(|a| a.counter),
                    Some(t / 30 + 1),
                    "{algorithm:?} at t={t} must verify"
                );
            }
        }
    }

    #[test]
    fn skew_one_step_accepted_two_refused() {
        let p = params(SHA1_KEY, Algorithm::Sha1, 6);
        let now = 1_700_000_010;
        let step = now / 30;
        let totp = totp(1, 10);
        for (offset, accepted) in [(-2i64, false), (-1, true), (0, true), (1, true), (2, false)] {
            let s = (step as i64 + offset) as u64;
            let code = hotp(SHA1_KEY, s, 6, Algorithm::Sha1);
            assert_eq!(
                totp.check(&p, 0, &code, now).is_some(),
                accepted,
                "offset {offset}"
            );
        }
    }

    #[test]
    fn used_steps_and_older_ones_are_refused() {
        let now = 1_700_000_010;
        let step = now / 30;
        let p = params(SHA1_KEY, Algorithm::Sha1, 6);
        let totp = totp(1, 10);
        let code = hotp(SHA1_KEY, step, 6, Algorithm::Sha1);
        let next = totp.check(&p, 0, &code, now).expect("fresh code");
        let counter = next.counter;
        assert_eq!(totp.check(&p, counter, &code, now), None, "replay");
        let older = hotp(SHA1_KEY, step - 1, 6, Algorithm::Sha1);
        assert_eq!(
            totp.check(&p, counter, &older, now),
            None,
            "older than an accepted code"
        );
    }

    #[test]
    fn malformed_answers_are_refused() {
        let p = params(SHA1_KEY, Algorithm::Sha1, 6);
        let totp = totp(1, 10);
        for answer in [
            "",
            "12345",
            "1234567",
            "12345a",
            "１２３４５６",
            "123\u{0}56",
            "\u{7f}",
        ] {
            assert_eq!(totp.check(&p, 0, answer, 59), None, "{answer:?}");
        }
        let code = hotp(SHA1_KEY, 1, 6, Algorithm::Sha1);
        let spaced = format!("{} {}", &code[..3], &code[3..]);
        assert!(
            totp.check(&p, 0, &spaced, 59).is_some(),
            "spaces are allowed"
        );
    }

    #[test]
    fn drift_is_learned_from_accepted_codes_and_capped() {
        let now = 1_700_000_010;
        let step = now / 30;
        let totp = totp(1, 3);
        let mut p = params(SHA1_KEY, Algorithm::Sha1, 6);
        let mut counter = 0;
        // A token one step fast, then two: each accepted code moves the
        // window, so a clock that wanders slowly is followed.
        for (ahead, drift) in [(1i64, 1i64), (2, 2), (3, 3)] {
            let code = hotp(SHA1_KEY, (step as i64 + ahead) as u64, 6, Algorithm::Sha1);
            let advance = totp
                .check(&p, counter, &code, now)
                .expect("within skew of the drift");
            assert_eq!(advance.drift, drift);
            (counter, p.drift) = (advance.counter, advance.drift);
        }
        // Four ahead is past the cap of three: learned no further.
        let code = hotp(SHA1_KEY, step + 4, 6, Algorithm::Sha1);
        assert_eq!(
            totp.check(&p, counter, &code, now).map(|a| a.drift),
            Some(3)
        );
        // A learned drift without a code never moves by itself.
        let far = hotp(SHA1_KEY, step + 6, 6, Algorithm::Sha1);
        assert_eq!(totp.check(&p, counter, &far, now), None);
    }

    #[test]
    fn resync_finds_two_consecutive_codes_within_the_cap() {
        let now = 1_700_000_010;
        let step = now / 30;
        let totp = totp(1, 10);
        let p = params(SHA1_KEY, Algorithm::Sha1, 6);
        let code = |s: u64| hotp(SHA1_KEY, s, 6, Algorithm::Sha1);
        let advance = totp
            .find_pair(&p, 0, &code(step - 7), &code(step - 6), now)
            .expect("found");
        assert_eq!(
            advance,
            Moved {
                counter: step - 5,
                drift: -6
            }
        );
        assert_eq!(
            totp.find_pair(&p, 0, &code(step - 7), &code(step - 5), now),
            None,
            "not consecutive"
        );
        assert_eq!(
            totp.find_pair(&p, 0, &code(step + 11), &code(step + 12), now),
            None,
            "past the cap"
        );
    }
}
