//! Seconds since the epoch, shown in UTC. The contract carries plain `u64`
//! timestamps; these few lines are all the calendar mfactl needs.

/// A UTC date and time of day.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Civil {
    year: u64,
    month: u32,
    day: u32,
    hour: u32,
    minute: u32,
    second: u32,
}

/// Proleptic Gregorian calendar from days since 1970-01-01 (the well-known
/// "civil from days" derivation over 400-year eras; no dates before 1970
/// can occur since the input is unsigned).
fn civil(secs: u64) -> Civil {
    let days = secs / 86_400;
    let rem = secs % 86_400;
    // Shift the epoch to 0000-03-01 so leap days fall at the end of a year.
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z - era * 146_097; // day of era, 0..=146096
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365; // 0..=399
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100); // day of (March-based) year
    let mp = (5 * doy + 2) / 153; // March = 0
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + u64::from(month <= 2);
    Civil {
        year,
        month,
        day,
        hour: (rem / 3_600) as u32,
        minute: (rem / 60 % 60) as u32,
        second: (rem % 60) as u32,
    }
}

/// `YYYY-MM-DD HH:MM`, UTC.
pub fn human(secs: u64) -> String {
    let c = civil(secs);
    format!(
        "{:04}-{:02}-{:02} {:02}:{:02}",
        c.year, c.month, c.day, c.hour, c.minute
    )
}

/// A last-use time for tables: `never` for 0.
pub fn human_or_never(secs: u64) -> String {
    if secs == 0 {
        "never".to_string()
    } else {
        human(secs)
    }
}

/// RFC 3339 in UTC, for JSON: `YYYY-MM-DDTHH:MM:SSZ`.
pub fn rfc3339(secs: u64) -> String {
    let c = civil(secs);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
        c.year, c.month, c.day, c.hour, c.minute, c.second
    )
}

/// Days since 1970-01-01 of a date (the inverse of `civil`).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * ((month + 9) % 12) + 2) / 5 + day - 1;
    era * 146_097 + yoe * 365 + yoe / 4 - yoe / 100 + doy - 719_468
}

/// `--since`: `YYYY-MM-DD`, `YYYY-MM-DDTHH:MM:SSZ` (UTC) or an age before
/// now (`90s`, `30m`, `12h`, `7d`), as seconds since the epoch.
pub fn parse_since(text: &str) -> Result<u64, String> {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    since_at(text, now)
}

fn since_at(text: &str, now: u64) -> Result<u64, String> {
    let bad = || {
        format!(
            "{text:?} is not a time: use YYYY-MM-DD, YYYY-MM-DDTHH:MM:SSZ or an age like 12h or 7d"
        )
    };
    if let Some(unit) = text.chars().last().filter(|c| "smhd".contains(*c)) {
        let n: u64 = text[..text.len() - 1].parse().map_err(|_| bad())?;
        let scale = match unit {
            's' => 1,
            'm' => 60,
            'h' => 3_600,
            _ => 86_400,
        };
        return Ok(now.saturating_sub(n.saturating_mul(scale)));
    }
    let (date, time) = match text.split_once('T') {
        Some((d, t)) => (d, Some(t.strip_suffix('Z').ok_or_else(bad)?)),
        None => (text, None),
    };
    let num = |s: &str| s.parse::<i64>().map_err(|_| bad());
    let parts: Vec<&str> = date.split('-').collect();
    let [y, m, d] = parts[..] else {
        return Err(bad());
    };
    let (y, m, d) = (num(y)?, num(m)?, num(d)?);
    if !(1..=12).contains(&m) || !(1..=31).contains(&d) || y < 1970 {
        return Err(bad());
    }
    let mut secs = days_from_civil(y, m, d) * 86_400;
    if let Some(time) = time {
        let parts: Vec<&str> = time.split(':').collect();
        let [h, mi, s] = parts[..] else {
            return Err(bad());
        };
        let (h, mi, s) = (num(h)?, num(mi)?, num(s)?);
        if !(0..24).contains(&h) || !(0..60).contains(&mi) || !(0..61).contains(&s) {
            return Err(bad());
        }
        secs += h * 3_600 + mi * 60 + s;
    }
    u64::try_from(secs).map_err(|_| bad())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn since_takes_dates_times_and_ages() {
        assert_eq!(since_at("2023-11-14", 0), Ok(1_699_920_000));
        assert_eq!(since_at("2023-11-14T22:13:20Z", 0), Ok(1_700_000_000));
        assert_eq!(since_at("2000-03-01", 0), Ok(951_868_800));
        assert_eq!(since_at("12h", 100_000), Ok(100_000 - 43_200));
        assert_eq!(since_at("7d", 10), Ok(0));
        for bad in [
            "yesterday",
            "2023-13-01",
            "2023-11-14T22:13",
            "h",
            "-1d",
            "",
        ] {
            assert!(since_at(bad, 0).is_err(), "{bad}");
        }
    }

    #[test]
    fn known_instants() {
        assert_eq!(human(0), "1970-01-01 00:00");
        assert_eq!(human(1_700_000_000), "2023-11-14 22:13");
        assert_eq!(rfc3339(1_700_000_000), "2023-11-14T22:13:20Z");
        // Leap day in a year divisible by 400, and the day after.
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339(951_868_800), "2000-03-01T00:00:00Z");
        // 2100 is not a leap year: February 28 is followed by March 1.
        assert_eq!(rfc3339(4_107_456_000), "2100-02-28T00:00:00Z");
        assert_eq!(rfc3339(4_107_542_400), "2100-03-01T00:00:00Z");
        assert_eq!(rfc3339(253_402_300_799), "9999-12-31T23:59:59Z");
        assert_eq!(human(1_704_067_199), "2023-12-31 23:59");
        assert_eq!(human(1_704_067_200), "2024-01-01 00:00");
    }

    #[test]
    fn every_day_follows_the_previous_one() {
        // Walk 1970..2400 day by day: dates must strictly increase, months
        // and days stay in range, and the day resets only at a month change.
        let mut prev = civil(0);
        for day in 1..(430 * 366) {
            let c = civil(day * 86_400);
            assert!(
                (1..=12).contains(&c.month) && (1..=31).contains(&c.day),
                "{c:?}"
            );
            let next_day = c.year == prev.year && c.month == prev.month && c.day == prev.day + 1;
            let next_month = c.day == 1
                && ((c.year == prev.year && c.month == prev.month + 1)
                    || (c.year == prev.year + 1 && c.month == 1 && prev.month == 12));
            assert!(next_day || next_month, "{prev:?} -> {c:?}");
            prev = c;
        }
    }

    #[test]
    fn never_for_zero() {
        assert_eq!(human_or_never(0), "never");
        assert_eq!(human_or_never(60), "1970-01-01 00:01");
    }

    #[test]
    fn the_far_future_does_not_overflow() {
        assert!(human(u64::MAX).starts_with("584554051223-"));
    }
}
