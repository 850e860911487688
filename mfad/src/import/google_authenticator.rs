//! google-authenticator's `~/.google_authenticator`, as the
//! `google-authenticator` tool writes it (libpam-google-authenticator):
//!
//! ```text
//! IWYKY75YP6ZSVJFKE4T2YN7LAM        the secret, base32
//! " RATE_LIMIT 3 30 [time…]         at most 3 logins per 30 s
//! " WINDOW_SIZE 3                   codes accepted around the current one
//! " DISALLOW_REUSE [step…]          TOTP: a code works once (steps used)
//! " TOTP_AUTH                       time-based, or instead
//! " HOTP_COUNTER 1                  counter-based, the next counter
//! " STEP_SIZE 30                    TOTP period in seconds (default 30)
//! 61141614                          scratch codes: 8 digits, each once
//! ```
//!
//! Codes are always 6 digits of HMAC-SHA1. The file is one user's; it
//! does not name them.

use super::LineError;
use crate::mechanism::otpauth;

/// Digits of every google-authenticator code.
pub const DIGITS: u32 = 6;
/// Digits of a scratch code.
pub const SCRATCH_DIGITS: usize = 8;
/// google-authenticator writes at most 10; a few more edited in are fine.
const MAX_SCRATCH: usize = 32;
/// mfad's TOTP periods.
const PERIODS: std::ops::RangeInclusive<u32> = 10..=300;

/// What the file holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GaFile {
    pub secret: Vec<u8>,
    pub kind: GaKind,
    /// Scratch codes and the line each is on.
    pub scratch: Vec<(usize, String)>,
    /// `WINDOW_SIZE`, if set.
    pub window: Option<u32>,
    /// `RATE_LIMIT` logins per seconds, if set.
    pub rate_limit: Option<(u32, u32)>,
    /// `DISALLOW_REUSE` was set.
    pub disallow_reuse: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GaKind {
    /// The period, and the first step not used yet (steps listed by
    /// `DISALLOW_REUSE` were used).
    Totp { period: u32, next_step: u64 },
    /// The next counter to accept.
    Hotp { counter: u64 },
}

/// Read the whole file; any line that is not what google-authenticator
/// writes fails it, naming the line.
pub fn parse(text: &str) -> Result<GaFile, LineError> {
    let mut lines = text.lines().enumerate().map(|(i, l)| (i + 1, l.trim_end()));
    let bad = |line: usize, message: String| LineError { line, message };
    if text.contains('\0') {
        let at = text.find('\0').unwrap_or(0);
        let line = text[..at].matches('\n').count() + 1;
        return Err(bad(
            line,
            "binary data, not a google-authenticator file".into(),
        ));
    }
    let Some((_, first)) = lines.next().filter(|(_, l)| !l.trim().is_empty()) else {
        return Err(bad(
            1,
            "empty: a google-authenticator file starts with its secret".into(),
        ));
    };
    let secret = otpauth::decode_base32(first.trim()).map_err(|e| {
        bad(
            1,
            format!("{e}: a google-authenticator file starts with its base32 secret"),
        )
    })?;
    let mut file = GaFile {
        secret,
        kind: GaKind::Totp {
            period: 30,
            next_step: 0,
        },
        scratch: Vec::new(),
        window: None,
        rate_limit: None,
        disallow_reuse: false,
    };
    let (mut totp_line, mut hotp_line, mut period_line) = (None, None, None);
    let (mut period, mut counter, mut used_steps) = (30u32, None, Vec::new());
    for (line, raw) in lines {
        let text = raw.trim();
        if text.is_empty() {
            continue;
        }
        let Some(option) = text.strip_prefix('"') else {
            if text.len() == SCRATCH_DIGITS && text.bytes().all(|b| b.is_ascii_digit()) {
                if file.scratch.len() == MAX_SCRATCH {
                    return Err(bad(line, format!("more than {MAX_SCRATCH} scratch codes")));
                }
                file.scratch.push((line, text.to_string()));
                continue;
            }
            return Err(bad(
                line,
                "neither an option (\" NAME …) nor an 8-digit scratch code".into(),
            ));
        };
        let mut words = option.split_whitespace();
        let name = words.next().unwrap_or_default();
        let args: Vec<&str> = words.collect();
        let number = |word: &str| -> Result<u64, LineError> {
            word.parse::<u64>()
                .map_err(|_| bad(line, format!("{name}: {word:?} is not a number")))
        };
        match name {
            "RATE_LIMIT" => {
                let [logins, seconds, ..] = args.as_slice() else {
                    return Err(bad(line, "RATE_LIMIT wants logins and seconds".into()));
                };
                let (logins, seconds) = (number(logins)?, number(seconds)?);
                for time in &args[2..] {
                    number(time)?;
                }
                file.rate_limit = Some((
                    u32::try_from(logins).unwrap_or(u32::MAX),
                    u32::try_from(seconds).unwrap_or(u32::MAX),
                ));
            }
            "WINDOW_SIZE" => {
                let [size] = args.as_slice() else {
                    return Err(bad(line, "WINDOW_SIZE wants one number".into()));
                };
                let size = number(size)?;
                if !(1..=100).contains(&size) {
                    return Err(bad(line, format!("WINDOW_SIZE {size} is not 1 to 100")));
                }
                file.window = Some(size as u32);
            }
            "DISALLOW_REUSE" => {
                file.disallow_reuse = true;
                for step in &args {
                    used_steps.push(number(step)?);
                }
            }
            "TOTP_AUTH" if args.is_empty() => totp_line = Some(line),
            "HOTP_COUNTER" => {
                let [value] = args.as_slice() else {
                    return Err(bad(line, "HOTP_COUNTER wants one number".into()));
                };
                counter = Some(number(value)?);
                hotp_line = Some(line);
            }
            "STEP_SIZE" => {
                let [size] = args.as_slice() else {
                    return Err(bad(line, "STEP_SIZE wants one number".into()));
                };
                let size = number(size)?;
                match u32::try_from(size).ok().filter(|s| PERIODS.contains(s)) {
                    Some(s) => period = s,
                    None => {
                        return Err(bad(
                            line,
                            format!(
                                "STEP_SIZE {size}: mfad's TOTP periods are {} to {} s, so these codes cannot be carried over",
                                PERIODS.start(),
                                PERIODS.end()
                            ),
                        ))
                    }
                }
                period_line = Some(line);
            }
            other => {
                return Err(bad(
                    line,
                    format!("{other:?} is not an option google-authenticator writes"),
                ))
            }
        }
    }
    file.kind = match (counter, hotp_line, totp_line) {
        (Some(_), Some(hotp), Some(totp)) => {
            return Err(bad(
                hotp.max(totp),
                "both TOTP_AUTH and HOTP_COUNTER: time-based or counter-based?".into(),
            ))
        }
        (Some(counter), Some(line), None) => {
            if let Some(step) = period_line {
                return Err(bad(
                    step.max(line),
                    "STEP_SIZE with HOTP_COUNTER: a counter-based factor has no period".into(),
                ));
            }
            GaKind::Hotp { counter }
        }
        _ => GaKind::Totp {
            period,
            next_step: used_steps.iter().max().map_or(0, |s| s.saturating_add(1)),
        },
    };
    Ok(file)
}

#[cfg(test)]
mod tests {
    use super::*;

    const TOTP_FILE: &str = "IWYKY75YP6ZSVJFKE4T2YN7LAM\n\" RATE_LIMIT 3 30 1796190000\n\" WINDOW_SIZE 17\n\" DISALLOW_REUSE 59873000 59873002\n\" TOTP_AUTH\n61141614\n60349330\n";

    #[test]
    fn a_totp_file_with_everything() {
        let file = parse(TOTP_FILE).expect("parses");
        assert_eq!(file.secret.len(), 16);
        assert_eq!(
            file.kind,
            GaKind::Totp {
                period: 30,
                next_step: 59_873_003
            }
        );
        assert_eq!(
            file.scratch,
            vec![(6, "61141614".to_string()), (7, "60349330".to_string())]
        );
        assert_eq!(file.window, Some(17));
        assert_eq!(file.rate_limit, Some((3, 30)));
        assert!(file.disallow_reuse);
    }

    #[test]
    fn a_hotp_file_and_a_secret_alone() {
        let file = parse("ANL54QR5XAJUASKKS67MLAQICY\n\" WINDOW_SIZE 5\n\" HOTP_COUNTER 7\n")
            .expect("parses");
        assert_eq!(file.kind, GaKind::Hotp { counter: 7 });
        let bare = parse("ANL54QR5XAJUASKKS67MLAQICY\n").expect("parses");
        assert_eq!(
            bare.kind,
            GaKind::Totp {
                period: 30,
                next_step: 0
            }
        );
        assert!(!bare.disallow_reuse);
        let slow = parse("ANL54QR5XAJUASKKS67MLAQICY\n\" STEP_SIZE 60\n").expect("parses");
        assert_eq!(
            slow.kind,
            GaKind::Totp {
                period: 60,
                next_step: 0
            }
        );
    }

    #[test]
    fn damaged_or_foreign_files_name_their_line() {
        for (text, line, words) in [
            ("", 1, "empty"),
            ("not base32!\n", 1, "base32"),
            ("IWYKY75YP6ZSVJFKE4T2YN7LAM\n6114161\n", 2, "scratch code"),
            (
                "IWYKY75YP6ZSVJFKE4T2YN7LAM\n\" TOTP_AUTH\n\" HOTP_COUNTER 1\n",
                3,
                "both",
            ),
            (
                "IWYKY75YP6ZSVJFKE4T2YN7LAM\n\" STEP_SIZE 5\n",
                2,
                "10 to 300",
            ),
            (
                "IWYKY75YP6ZSVJFKE4T2YN7LAM\n\" WINDOW_SIZE x\n",
                2,
                "not a number",
            ),
            (
                "IWYKY75YP6ZSVJFKE4T2YN7LAM\n\" SECRET_KEY 1\n",
                2,
                "not an option",
            ),
            ("alice:abc,def,es256,+presence\n", 1, "base32"),
            ("IWYKY75YP6ZSVJFKE4T2YN7LAM\n\0\x01\n", 2, "binary"),
        ] {
            let e = parse(text).expect_err(text);
            assert_eq!(e.line, line, "{text:?}: {e}");
            assert!(e.message.contains(words), "{text:?}: {e}");
        }
    }
}
