//! The release-built mfad on its own private bus (the shipped policy, see
//! [`mfa_tests::Bus`]), its store seeded through mfad's library before it
//! starts. Ready when it owns `org.pam_mfa.Mfad1`; nothing sleeps.
//!
//! By default the store is SQLite in the state directory. [`Options`] give
//! it another `[store]` table (a PostgreSQL shared by a fleet), another
//! host's `secret.key` and a host name, as a host of a fleet has.

use mfa_tests::daemon::wait_for_owner;
use mfa_tests::process::{die_with_parent, signal, wait_timeout, with_hostname};
use mfa_tests::{Bus, DaemonConfig};
use mfad::store::{FactorRecord, KEY_FILE};
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// How long mfad may take to come up or to stop.
const LIMIT: Duration = Duration::from_secs(60);

/// How one benchmark mfad differs from the default one.
#[derive(Clone, Debug, Default)]
pub struct Options {
    /// A `[store]` table appended to mfad.toml (e.g.
    /// [`mfa_tests::postgres::Postgres::store_table`]); `None`: SQLite in
    /// the state directory.
    pub store_table: Option<String>,
    /// A `secret.key` to start with: another host's, as every host of a
    /// fleet has the same one.
    pub seed_key: Option<PathBuf>,
    /// The host name mfad runs under (a UTS namespace of its own), as the
    /// audit rows of a fleet name it.
    pub hostname: Option<String>,
    /// `[login] max_tries`; `None`: the harness's default.
    pub max_tries: Option<u32>,
}

pub struct Mfad {
    // Field order: mfad stops before its bus goes away.
    child: Option<Child>,
    bus: Bus,
    stderr: PathBuf,
    state: PathBuf,
}

impl Mfad {
    /// Seed a store with `factors`, then start mfad on a new bus with the
    /// default configuration (state in `dir/state`, logging to syslog) but
    /// for `options`. The store is seeded through the same mfad.toml mfad
    /// then reads: SQLite in the state directory, or the `[store]` of
    /// `options` (`factors` may then be empty, for a host joining a
    /// database another host seeded).
    pub fn start(
        mfad: &Path,
        dir: &Path,
        factors: &[FactorRecord],
        options: &Options,
    ) -> Result<Mfad, String> {
        let state = dir.join("state");
        let bus = Bus::start();
        let defaults = DaemonConfig::default();
        let config = DaemonConfig {
            login_socket: Some(bus.login_socket()),
            log: "syslog".into(),
            policy_tables: options.store_table.clone().unwrap_or_default(),
            max_tries: options.max_tries.unwrap_or(defaults.max_tries),
            seed_key: options.seed_key.clone(),
            hostname: options.hostname.clone(),
            ..defaults
        };
        let config_path = dir.join("mfad.toml");
        std::fs::write(&config_path, config.to_toml(&state))
            .map_err(|e| format!("cannot write {}: {e}", config_path.display()))?;
        if let Some(key) = &config.seed_key {
            seed_key(key, &state)?;
        }
        seed_store(&config_path, &state, factors)?;
        let stderr = dir.join("mfad.stderr");
        let log = std::fs::File::create(&stderr).map_err(|e| e.to_string())?;
        let mut cmd = Command::new(mfad);
        cmd.arg("--config")
            .arg(&config_path)
            .arg("--bus-address")
            .arg(bus.address())
            .env_clear()
            .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
            .stdin(Stdio::null())
            .stdout(log.try_clone().map_err(|e| e.to_string())?)
            .stderr(log);
        // Gone with the benchmark, however it ends.
        die_with_parent(&mut cmd);
        if let Some(name) = &config.hostname {
            with_hostname(&mut cmd, name);
        }
        let child = cmd
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", mfad.display()))?;
        let pid = child.id();
        let daemon = Mfad {
            child: Some(child),
            bus,
            stderr,
            state,
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

    /// mfad's login socket, for the PAM line's `socket=` option.
    pub fn login_socket(&self) -> PathBuf {
        self.bus.login_socket()
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

    /// The key that seals this mfad's store (for the other hosts of a
    /// fleet: [`Options::seed_key`]).
    pub fn key_file(&self) -> PathBuf {
        self.state.join(KEY_FILE)
    }
}

/// Copy another host's key into the state directory `state` (0700), as
/// the file mfad reads (0600).
fn seed_key(key: &Path, state: &Path) -> Result<(), String> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(state)
        .map_err(|e| format!("cannot create {}: {e}", state.display()))?;
    let copy = state.join(KEY_FILE);
    std::fs::copy(key, &copy)
        .and_then(|_| std::fs::set_permissions(&copy, std::fs::Permissions::from_mode(0o600)))
        .map_err(|e| format!("cannot copy {} to {}: {e}", key.display(), copy.display()))
}

/// Open the store `config_path` names (creating it, and the key if the
/// store has none yet) and add `factors` in one transaction.
fn seed_store(config_path: &Path, state: &Path, factors: &[FactorRecord]) -> Result<(), String> {
    let config = mfad::config::Config::load(config_path).map_err(|e| e.to_string())?;
    let store = mfad::store::open(&config.store, state)
        .map_err(|e| format!("cannot open the store: {e}"))?;
    store
        .insert_confirmed(factors)
        .map_err(|e| format!("cannot seed the store: {e}"))
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
