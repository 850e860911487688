//! mfad's time from NTP servers (`[time] source = "ntp"`): a thread of its
//! own asks every server each `refresh` seconds and keeps the median offset
//! from the system clock; a login never waits for a server. An offset past
//! `max_offset` is refused. While no answer is younger than `max_age`, the
//! system clock is used, or every login refused (`on_failure`). SNTP is
//! unauthenticated: chrony with NTS on the host, and `source = "system"`,
//! is the stronger choice (mfad.toml(5)).

use super::Clock;
use crate::config::{server_address, OnFailure, TimeConfig};
use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

pub struct NtpClock {
    shared: Arc<Shared>,
}

struct Shared {
    config: TimeConfig,
    /// The offset in seconds (server minus system) and when it was learned.
    offset: Mutex<Option<(f64, Instant)>>,
}

impl NtpClock {
    /// Ask the servers once now (so logins have the time from the start),
    /// then every `refresh` seconds on a thread of its own. `log` is told
    /// when the time source starts or stops answering, and why.
    pub fn start(config: TimeConfig, log: impl Fn(bool, &str) + Send + 'static) -> NtpClock {
        let shared = Arc::new(Shared {
            config,
            offset: Mutex::new(None),
        });
        let mut failing = shared.round(None, &log);
        let background = Arc::clone(&shared);
        let spawned = std::thread::Builder::new()
            .name("mfad-ntp".into())
            .spawn(move || loop {
                std::thread::sleep(Duration::from_secs(background.config.refresh));
                failing = background.round(Some(failing), &log);
            });
        if let Err(e) = spawned {
            // The one answer so far is used until it is too old.
            eprintln!("mfad: no thread for the NTP servers: {e}");
        }
        NtpClock { shared }
    }

    fn fresh_offset(&self) -> Option<f64> {
        let held = *self.shared.offset.lock().unwrap_or_else(|p| p.into_inner());
        let max_age = Duration::from_secs(self.shared.config.max_age);
        held.filter(|(_, at)| at.elapsed() <= max_age)
            .map(|(offset, _)| offset)
    }
}

impl Shared {
    /// Ask every server; keep the median offset of those that answered
    /// within bounds. Returns whether the round failed; logs a change
    /// from `was_failing` (the first round always says how it went).
    fn round(&self, was_failing: Option<bool>, log: &dyn Fn(bool, &str)) -> bool {
        let mut offsets = Vec::new();
        let mut problems = Vec::new();
        for server in &self.config.servers {
            match ask(server, self.config.timeout) {
                Ok(offset) if offset.abs() <= self.config.max_offset as f64 => offsets.push(offset),
                Ok(offset) => problems.push(format!(
                    "{server} is {offset:+.1} s off, more than [time] max_offset = {} s: not used",
                    self.config.max_offset
                )),
                Err(why) => problems.push(format!("{server}: {why}")),
            }
        }
        let failing = offsets.is_empty();
        if !failing {
            offsets.sort_by(f64::total_cmp);
            let median = offsets[offsets.len() / 2];
            *self.offset.lock().unwrap_or_else(|p| p.into_inner()) = Some((median, Instant::now()));
            if was_failing != Some(false) {
                let mut line = format!(
                    "time from NTP: {median:+.3} s from the system clock ({} of {} servers answered)",
                    offsets.len(),
                    self.config.servers.len()
                );
                if !problems.is_empty() {
                    line.push_str(&format!("; {}", problems.join("; ")));
                }
                log(!problems.is_empty(), &line);
            }
        } else if was_failing != Some(true) {
            let then = match self.config.on_failure {
                OnFailure::System => {
                    "the system clock is used once the last answer is older than [time] max_age"
                }
                OnFailure::Deny => {
                    "logins are refused once the last answer is older than [time] max_age"
                }
            };
            log(
                true,
                &format!("no NTP server answered ({}); {then}", problems.join("; ")),
            );
        }
        failing
    }
}

/// One SNTP question: the server's offset from the system clock, seconds.
fn ask(server: &str, timeout: Duration) -> Result<f64, String> {
    let (host, port) = server_address(server)?;
    let address = (host.as_str(), port)
        .to_socket_addrs()
        .map_err(|e| format!("cannot resolve it: {e}"))?
        .next()
        .ok_or("its name has no address")?;
    let bind: SocketAddr = match address {
        SocketAddr::V4(_) => SocketAddr::from(([0, 0, 0, 0], 0)),
        SocketAddr::V6(_) => SocketAddr::from(([0u16; 8], 0)),
    };
    let client = rsntp::SntpClient::with_config(
        rsntp::Config::default().bind_address(bind).timeout(timeout),
    );
    let answer = client.synchronize(address).map_err(|e| match e {
        rsntp::SynchronizationError::IOError(e)
            if matches!(
                e.kind(),
                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
            ) =>
        {
            format!("no answer within {} ms", timeout.as_millis())
        }
        other => other.to_string(),
    })?;
    Ok(answer.clock_offset().as_secs_f64())
}

impl Clock for NtpClock {
    // The clock owner: the system's time, corrected by the servers' offset.
    #[allow(clippy::disallowed_methods)]
    fn now(&self) -> u64 {
        let system = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs_f64())
            .unwrap_or(0.0);
        let offset = self.fresh_offset().unwrap_or(0.0);
        (system + offset).max(0.0) as u64
    }

    fn trusted(&self) -> Result<(), String> {
        if self.shared.config.on_failure == OnFailure::System || self.fresh_offset().is_some() {
            return Ok(());
        }
        Err(format!(
            "no NTP server ({}) has answered within [time] max_age = {} s, and [time] on_failure = \"deny\"",
            self.shared.config.servers.join(", "),
            self.shared.config.max_age
        ))
    }
}
