//! Times, shown and read. The contract carries plain `u64` seconds since
//! the epoch; tables show them in the local time zone (`TZ`, else
//! `/etc/localtime`, else UTC) with the zone's abbreviation, JSON in UTC
//! (RFC 3339). The calendar and the zone rules are jiff's.
//!
//! This module is mfactl's clock: nothing else in mfactl reads the time.

use jiff::civil::DateTime;
use jiff::tz::TimeZone;
use jiff::Timestamp;

/// The zone tables are shown in, and dates without an offset are read in:
/// `TZ`, else `/etc/localtime`, else UTC.
pub fn local_zone() -> TimeZone {
    TimeZone::system()
}

/// The instant, or `None` past what jiff represents (year 9999): the
/// contract's `u64` goes further than any calendar needs.
fn instant(secs: u64) -> Option<Timestamp> {
    i64::try_from(secs)
        .ok()
        .and_then(|s| Timestamp::from_second(s).ok())
}

/// An instant no calendar shows, as `date -d` reads it: `@SECONDS`.
fn beyond(secs: u64) -> String {
    format!("@{secs}")
}

fn local(secs: u64, tz: &TimeZone, format: &str) -> String {
    match instant(secs) {
        Some(t) => t.to_zoned_datetime(tz.clone()).strftime(format).to_string(),
        None => beyond(secs),
    }
}

/// `YYYY-MM-DD HH:MM ZONE` in `tz`, e.g. `2023-11-14 23:13 CET`.
pub fn human(secs: u64, tz: &TimeZone) -> String {
    local(secs, tz, "%Y-%m-%d %H:%M %Z")
}

/// `YYYY-MM-DD HH:MM:SS ZONE` in `tz`, for rows that need the second (audit).
pub fn human_seconds(secs: u64, tz: &TimeZone) -> String {
    local(secs, tz, "%Y-%m-%d %H:%M:%S %Z")
}

/// A last-use time for tables: `never` for 0.
pub fn human_or_never(secs: u64, tz: &TimeZone) -> String {
    if secs == 0 {
        "never".to_string()
    } else {
        human(secs, tz)
    }
}

/// RFC 3339 in UTC, for JSON: `YYYY-MM-DDTHH:MM:SSZ`.
pub fn rfc3339(secs: u64) -> String {
    match instant(secs) {
        Some(t) => t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string(),
        None => beyond(secs),
    }
}

/// Now; the one read of the clock in mfactl.
// The clock owner: an age given on the command line counts back from it.
#[allow(clippy::disallowed_methods)]
fn now() -> Timestamp {
    Timestamp::now()
}

const FORMS: &str = "use YYYY-MM-DD or YYYY-MM-DD HH:MM[:SS] (local time), \
                     YYYY-MM-DDTHH:MM:SSZ or with an offset such as +01:00, \
                     or an age such as 90s, 30m, 12h or 7d";

/// `--since`: a date (its first second, local time), a local date and time,
/// an RFC 3339 time with `Z` or an offset, or an age before now (`90s`,
/// `30m`, `12h`, `7d`); as seconds since the epoch.
pub fn parse_since(text: &str) -> Result<u64, String> {
    since_at(text, now(), &local_zone())
}

fn since_at(text: &str, now: Timestamp, tz: &TimeZone) -> Result<u64, String> {
    let at = if let Some(unit) = text.chars().last().filter(|c| "smhd".contains(*c)) {
        let digits = &text[..text.len() - 1];
        let n: i64 = digits
            .parse()
            .ok()
            .filter(|n| *n >= 0 && digits.bytes().all(|b| b.is_ascii_digit()))
            .ok_or_else(|| format!("{text:?} is not an age: {FORMS}"))?;
        let scale = match unit {
            's' => 1,
            'm' => 60,
            'h' => 3_600,
            _ => 86_400,
        };
        // An age older than the epoch is everything recorded.
        return Ok(
            u64::try_from(now.as_second().saturating_sub(n.saturating_mul(scale))).unwrap_or(0),
        );
    } else if names_an_offset(text) {
        text.parse::<Timestamp>()
            .map_err(|e| format!("{text:?} is not a time ({e}): {FORMS}"))?
    } else {
        text.parse::<DateTime>()
            .and_then(|civil| civil.to_zoned_datetime(tz.clone()))
            .map_err(|e| format!("{text:?} is not a date or time ({e}): {FORMS}"))?
            .timestamp()
    };
    u64::try_from(at.as_second())
        .map_err(|_| format!("{text:?} is before 1970, when nothing was recorded"))
}

/// Whether the time of day in `text` ends in `Z` or an offset (`+01:00`,
/// `-0500`), so that it names an instant rather than a local time.
fn names_an_offset(text: &str) -> bool {
    let Some(split) = text.find(['T', 't', ' ']) else {
        return false;
    };
    text[split + 1..].contains(['Z', 'z', '+', '-', '['])
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Central European time, by its POSIX rule: no zone database needed.
    fn paris() -> TimeZone {
        TimeZone::posix("CET-1CEST,M3.5.0,M10.5.0/3").expect("POSIX TZ")
    }

    fn at(secs: i64) -> Timestamp {
        Timestamp::from_second(secs).expect("in range")
    }

    fn since(text: &str) -> Result<u64, String> {
        since_at(text, at(100_000), &TimeZone::UTC)
    }

    #[test]
    fn since_takes_dates_times_and_ages() {
        assert_eq!(since("2023-11-14"), Ok(1_699_920_000));
        assert_eq!(since("2023-11-14T22:13:20Z"), Ok(1_700_000_000));
        assert_eq!(since("2023-11-14T23:13:20+01:00"), Ok(1_700_000_000));
        assert_eq!(since("2023-11-14 22:13"), Ok(1_699_999_980));
        assert_eq!(since("2023-11-14T22:13:20"), Ok(1_700_000_000));
        assert_eq!(since("2000-02-29"), Ok(951_782_400), "a leap day");
        assert_eq!(since("2000-03-01"), Ok(951_868_800));
        assert_eq!(since("12h"), Ok(100_000 - 43_200));
        assert_eq!(since("90s"), Ok(100_000 - 90));
        assert_eq!(since("30m"), Ok(100_000 - 1_800));
        assert_eq!(since("7d"), Ok(0), "older than the epoch: everything");
        assert_eq!(since(&format!("{}d", i64::MAX)), Ok(0), "saturates");
        let err = since(&format!("{}d", u64::MAX)).expect_err("no such number");
        assert!(err.contains("not an age"), "{err}");
    }

    #[test]
    fn dates_and_times_without_an_offset_are_local() {
        let tz = paris();
        // Midnight in Paris is 23:00 UTC the day before, in winter.
        assert_eq!(
            since_at("2023-11-14", at(0), &tz),
            Ok(1_699_920_000 - 3_600)
        );
        assert_eq!(
            since_at("2023-11-14 23:13:20", at(0), &tz),
            Ok(1_700_000_000)
        );
        // In summer, two hours.
        assert_eq!(
            since_at("2024-07-01", at(0), &tz),
            Ok(1_719_792_000 - 7_200)
        );
        // An offset given wins over the zone.
        assert_eq!(
            since_at("2023-11-14T22:13:20Z", at(0), &tz),
            Ok(1_700_000_000)
        );
    }

    #[test]
    fn impossible_dates_are_refused_and_named() {
        for bad in [
            "2026-02-31",
            "2026-13-01",
            "2026-04-31",
            "2023-02-29",
            "2026-00-10",
            "2026-01-00",
            "2026-02-31T10:00:00Z",
            "2026-02-03T24:00:00Z",
            "2026-02-03 10:61",
            "garbage",
            "yesterday",
            "2023-11-14x",
            "h",
            "-1d",
            "1.5h",
            "+3d",
            "",
        ] {
            let err = since(bad).expect_err(bad);
            assert!(err.starts_with(&format!("{bad:?} is ")), "{bad}: {err}");
            assert!(err.contains("YYYY-MM-DD"), "{bad}: {err}");
        }
        let err = since("2026-02-31").expect_err("no February 31");
        assert!(err.contains("day"), "says what is wrong: {err}");
        let err = since("2026-13-01").expect_err("no month 13");
        assert!(err.contains("month"), "says what is wrong: {err}");
        let err = since("1969-12-31").expect_err("before the epoch");
        assert!(err.contains("before 1970"), "{err}");
    }

    #[test]
    fn tables_show_local_time_with_the_zone() {
        let tz = paris();
        assert_eq!(human(1_700_000_000, &tz), "2023-11-14 23:13 CET");
        assert_eq!(human_seconds(1_700_000_000, &tz), "2023-11-14 23:13:20 CET");
        assert_eq!(human(1_719_792_000, &tz), "2024-07-01 02:00 CEST");
        assert_eq!(human(1_700_000_000, &TimeZone::UTC), "2023-11-14 22:13 UTC");
        let fixed = TimeZone::fixed(jiff::tz::offset(5));
        assert_eq!(human(1_700_000_000, &fixed), "2023-11-15 03:13 +05");
    }

    #[test]
    fn known_instants() {
        let utc = TimeZone::UTC;
        assert_eq!(human(0, &utc), "1970-01-01 00:00 UTC");
        assert_eq!(human(1_700_000_000, &utc), "2023-11-14 22:13 UTC");
        assert_eq!(rfc3339(1_700_000_000), "2023-11-14T22:13:20Z");
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339(4_107_456_000), "2100-02-28T00:00:00Z");
        assert_eq!(rfc3339(4_107_542_400), "2100-03-01T00:00:00Z");
        assert_eq!(human(1_704_067_199, &utc), "2023-12-31 23:59 UTC");
        assert_eq!(human(1_704_067_200, &utc), "2024-01-01 00:00 UTC");
    }

    #[test]
    fn never_for_zero() {
        assert_eq!(human_or_never(0, &TimeZone::UTC), "never");
        assert_eq!(human_or_never(60, &TimeZone::UTC), "1970-01-01 00:01 UTC");
    }

    #[test]
    fn the_far_future_does_not_overflow() {
        assert_eq!(human(u64::MAX, &paris()), "@18446744073709551615");
        assert_eq!(rfc3339(u64::MAX), "@18446744073709551615");
        assert_eq!(rfc3339(253_402_300_800), "@253402300800");
        assert_eq!(rfc3339(253_402_207_200), "9999-12-30T22:00:00Z");
    }
}
