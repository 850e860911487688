//! `[time]`: the clock codes are checked against — the system's, or NTP
//! servers mfad asks in the background.

use super::raw::{int_in, invalid, one_of, RawError};
use serde::Deserialize;
use std::time::Duration;
use toml::Spanned;

/// Where mfad's time comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TimeConfig {
    pub source: TimeSource,
    /// `host` or `host:port` (123), asked in turn; the median offset wins.
    pub servers: Vec<String>,
    /// How long one server may take to answer.
    pub timeout: Duration,
    /// Seconds between rounds of questions (never one per login).
    pub refresh: u64,
    /// An offset larger than this (seconds, either way) is refused.
    pub max_offset: u64,
    /// Seconds an offset is used after the last answer.
    pub max_age: u64,
    pub on_failure: OnFailure,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimeSource {
    System,
    Ntp,
}

/// What happens while no server has answered within `max_age`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnFailure {
    /// The system clock, as if `source = "system"`.
    System,
    /// Every login is refused.
    Deny,
}

impl Default for TimeConfig {
    fn default() -> Self {
        TimeConfig {
            source: TimeSource::System,
            servers: Vec::new(),
            timeout: Duration::from_millis(1000),
            refresh: 64,
            max_offset: 300,
            max_age: 900,
            on_failure: OnFailure::System,
        }
    }
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawTime {
    source: Option<Spanned<String>>,
    servers: Option<Spanned<Vec<String>>>,
    timeout_ms: Option<Spanned<i64>>,
    refresh: Option<Spanned<i64>>,
    max_offset: Option<Spanned<i64>>,
    max_age: Option<Spanned<i64>>,
    on_failure: Option<Spanned<String>>,
}

/// At most this many servers.
const MAX_SERVERS: usize = 7;

pub(super) fn time(raw: RawTime) -> Result<TimeConfig, RawError> {
    let d = TimeConfig::default();
    let source = one_of(
        "time.source",
        raw.source,
        &[("system", TimeSource::System), ("ntp", TimeSource::Ntp)],
        d.source,
    )?;
    let servers = match raw.servers {
        None => Vec::new(),
        Some(list) => {
            let span = list.span();
            let servers = list.into_inner();
            if servers.len() > MAX_SERVERS {
                return invalid(
                    "time.servers",
                    span,
                    format!("at most {MAX_SERVERS} servers"),
                );
            }
            for server in &servers {
                if let Err(why) = server_address(server) {
                    return invalid("time.servers", span, format!("{server:?}: {why}"));
                }
            }
            servers
        }
    };
    if source == TimeSource::Ntp && servers.is_empty() {
        return Err(RawError {
            offset: None,
            key: Some("time.servers".into()),
            message: "missing: source = \"ntp\" needs at least one server".into(),
        });
    }
    let timeout_ms: u64 = int_in("time.timeout_ms", raw.timeout_ms, 50..=10_000, 1000)?;
    let refresh = int_in("time.refresh", raw.refresh, 16..=86_400, d.refresh)?;
    let max_age: u64 = int_in("time.max_age", raw.max_age, 16..=604_800, d.max_age)?;
    if max_age < refresh {
        return Err(RawError {
            offset: None,
            key: Some("time.max_age".into()),
            message: format!(
                "{max_age} is shorter than refresh = {refresh}: every offset would be too old before the next one"
            ),
        });
    }
    Ok(TimeConfig {
        source,
        servers,
        timeout: Duration::from_millis(timeout_ms),
        refresh,
        max_offset: int_in("time.max_offset", raw.max_offset, 1..=86_400, d.max_offset)?,
        max_age,
        on_failure: one_of(
            "time.on_failure",
            raw.on_failure,
            &[("system", OnFailure::System), ("deny", OnFailure::Deny)],
            d.on_failure,
        )?,
    })
}

/// `host` or `host:port`, `[v6]:port` for an IPv6 address with a port:
/// the host and the port (123 when none is given).
pub fn server_address(server: &str) -> Result<(String, u16), String> {
    let bad_host = |h: &str| {
        h.is_empty() || h.len() > 253 || h.chars().any(|c| c.is_whitespace() || c.is_control())
    };
    let (host, port) = if let Some(rest) = server.strip_prefix('[') {
        let (host, after) = rest
            .split_once(']')
            .ok_or("an IPv6 address in [ ] needs its ]")?;
        match after.strip_prefix(':') {
            Some(port) => (host, Some(port)),
            None if after.is_empty() => (host, None),
            None => return Err("after [address] comes :port or nothing".into()),
        }
    } else if server.matches(':').count() == 1 {
        let (host, port) = server.split_once(':').unwrap_or((server, ""));
        (host, Some(port))
    } else {
        (server, None)
    };
    if bad_host(host) {
        return Err("not a host name or address".into());
    }
    let port = match port {
        None => 123,
        Some(p) => match p.parse::<u16>() {
            Ok(p) if p > 0 => p,
            _ => return Err(format!("port {p:?} is not 1 to 65535")),
        },
    };
    Ok((host.to_string(), port))
}

#[cfg(test)]
mod tests {
    use super::server_address;

    #[test]
    fn servers_are_hosts_with_an_optional_port() {
        assert_eq!(
            server_address("ntp.example.org"),
            Ok(("ntp.example.org".into(), 123))
        );
        assert_eq!(
            server_address("127.0.0.1:11123"),
            Ok(("127.0.0.1".into(), 11123))
        );
        assert_eq!(server_address("[::1]:124"), Ok(("::1".into(), 124)));
        assert_eq!(
            server_address("2001:db8::1"),
            Ok(("2001:db8::1".into(), 123))
        );
        for bad in ["", "a b", "host:0", "host:x", "[::1", "[::1]x"] {
            assert!(server_address(bad).is_err(), "{bad:?}");
        }
    }
}
