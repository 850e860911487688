//! The release-built mfad on its own private bus (the shipped policy, see
//! [`mfa_tests::Bus`]), its store seeded through mfad's library before it
//! starts. Ready when it owns `org.pam_mfa.Mfad1`; nothing sleeps.

use mfa_tests::daemon::wait_for_owner;
use mfa_tests::process::{signal, wait_timeout};
use mfa_tests::{Bus, DaemonConfig};
use mfad::store::{FactorRecord, FactorStore, SqliteStore};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// How long mfad may take to come up or to stop.
const LIMIT: Duration = Duration::from_secs(60);

pub struct Mfad {
    // Field order: mfad stops before its bus goes away.
    child: Option<Child>,
    bus: Bus,
    stderr: PathBuf,
}

impl Mfad {
    /// Seed a store in `dir/state` with `factors`, then start mfad on a new
    /// bus with the default configuration, logging to syslog.
    pub fn start(mfad: &Path, dir: &Path, factors: &[FactorRecord]) -> Result<Mfad, String> {
        let state = dir.join("state");
        let store =
            SqliteStore::open(&state).map_err(|e| format!("cannot create the store: {e}"))?;
        store
            .insert_confirmed(factors)
            .map_err(|e| format!("cannot seed the store: {e}"))?;
        drop(store);
        let config = DaemonConfig {
            log: "syslog".into(),
            ..DaemonConfig::default()
        };
        let config_path = dir.join("mfad.toml");
        std::fs::write(&config_path, config.to_toml(&state))
            .map_err(|e| format!("cannot write {}: {e}", config_path.display()))?;
        let bus = Bus::start();
        let stderr = dir.join("mfad.stderr");
        let log = std::fs::File::create(&stderr).map_err(|e| e.to_string())?;
        let child = Command::new(mfad)
            .arg("--config")
            .arg(&config_path)
            .arg("--bus-address")
            .arg(bus.address())
            .env_clear()
            .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
            .stdin(Stdio::null())
            .stdout(log.try_clone().map_err(|e| e.to_string())?)
            .stderr(log)
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", mfad.display()))?;
        let pid = child.id();
        let daemon = Mfad {
            child: Some(child),
            bus,
            stderr,
        };
        if let Err(why) = wait_for_owner(daemon.bus.address(), pid, None, LIMIT) {
            return Err(format!(
                "mfad did not become ready: {why}\n{}",
                daemon.log()
            ));
        }
        Ok(daemon)
    }

    /// `unix:path=…` for the PAM line's `bus=` option.
    pub fn bus_address(&self) -> &str {
        self.bus.address()
    }

    /// CPU time (user + system, ns) used so far by mfad and its
    /// dbus-daemon together; `None` if either cannot be read.
    pub fn server_cpu_ns(&self) -> Option<u64> {
        let mfad = self.child.as_ref().map(Child::id)?;
        let bus = dbus_daemon_pid(self.bus.address())?;
        Some(process_cpu_ns(mfad)? + process_cpu_ns(bus)?)
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }
}

impl Drop for Mfad {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            if let Ok(None) = child.try_wait() {
                signal(&child, libc::SIGTERM);
                if wait_timeout(&mut child, LIMIT).is_none() {
                    let _ = child.kill();
                    let _ = child.wait();
                }
            }
        }
    }
}

/// The dbus-daemon serving `address` (`unix:path=<dir>/bus`, started with
/// `--config-file=<dir>/bus.conf` by [`Bus`]).
fn dbus_daemon_pid(address: &str) -> Option<u32> {
    let socket = address.strip_prefix("unix:path=")?;
    let wanted = format!("--config-file={socket}.conf");
    std::fs::read_dir("/proc")
        .ok()?
        .flatten()
        .find_map(|entry| {
            let pid: u32 = entry.file_name().to_str()?.parse().ok()?;
            let cmdline = std::fs::read(entry.path().join("cmdline")).ok()?;
            cmdline
                .split(|b| *b == 0)
                .any(|arg| arg == wanted.as_bytes())
                .then_some(pid)
        })
}

/// utime + stime of process `pid` (all its threads, living or not).
fn process_cpu_ns(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name, which is in parentheses and may hold
    // spaces: state is field 3, utime 14, stime 15.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    // SAFETY: sysconf has no preconditions.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    let ticks = u64::try_from(ticks).ok().filter(|t| *t > 0)?;
    Some((utime + stime) * 1_000_000_000 / ticks)
}
