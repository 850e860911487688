//! The built `mfad`, on a test [`Bus`], with a generated config and its own
//! state directory. Ready when it owns `org.pam_mfa.Mfad1`.

use crate::bus::Bus;
use crate::directory::TestDirectory;
use crate::process::{exited, pidfd, signal, wait_timeout};
use crate::users;
use futures_lite::StreamExt;
use mfa_dbus::BUS_NAME;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;
use tempfile::TempDir;

/// mfad.toml, every key spelled out. Defaults are the documented ones except
/// `state_dir` (a temporary directory) and `log` (stderr, so tests can read
/// it and check that no code or secret ever appears there).
#[derive(Clone, Debug)]
pub struct DaemonConfig {
    pub admin_group: String,
    pub log: String,
    pub timeout: u64,
    pub max_tries: u32,
    /// `[policy] enabled`: on here, so tests of logins are asked.
    pub policy_enabled: bool,
    /// `[policy.default] require`: "force" here, with `enrol_at_login` off,
    /// so a user without a factor is refused.
    pub require: String,
    pub enrol_at_login: bool,
    /// `[policy] step_up`: off here, so tests can give a user a second
    /// factor or recovery codes without proving the first; `step_up.rs`
    /// tests it on, as shipped.
    pub step_up: bool,
    /// `[policy] lookup_timeout`, seconds.
    pub lookup_timeout: u64,
    /// More TOML appended as it is: `[[policy.group]]`, `[bypass]`,
    /// `[[bypass.rule]]`, `[devices]` tables and the like.
    pub policy_tables: String,
    /// 0 by default here, so wrong-code tests run fast; the test of the
    /// delay itself sets it.
    pub failure_delay_ms: u64,
    pub lockout_max_failures: u32,
    pub lockout_unlock_after: u64,
    pub issuer: String,
    pub pending_expiry: u64,
    pub totp_algorithm: String,
    pub totp_digits: u32,
    pub totp_period: u64,
    pub totp_skew: u32,
    pub hotp_digits: u32,
    pub hotp_window: u32,
    /// `[notify].command`; empty for none.
    pub notify_command: String,
    /// A `secret.key` to start with (another host's: a fleet shares one).
    pub seed_key: Option<PathBuf>,
    /// Run mfad under this host name (a UTS namespace of its own), as a
    /// host of a fleet would be.
    pub hostname: Option<String>,
    /// Serve the login socket beside the bus socket
    /// ([`crate::bus::login_socket_for`]), as root's PAM clients expect.
    pub serve_login_socket: bool,
    /// `[daemon] login_socket`: set by [`Daemon`] from the bus; `None`
    /// writes `""` (the bus only).
    pub login_socket: Option<PathBuf>,
}

impl Default for DaemonConfig {
    fn default() -> Self {
        DaemonConfig {
            admin_group: String::new(),
            log: "stderr".into(),
            timeout: 180,
            max_tries: 3,
            policy_enabled: true,
            require: "force".into(),
            enrol_at_login: false,
            step_up: false,
            lookup_timeout: 3,
            policy_tables: String::new(),
            failure_delay_ms: 0,
            lockout_max_failures: 10,
            lockout_unlock_after: 900,
            issuer: "pam_mfa".into(),
            pending_expiry: 600,
            totp_algorithm: "SHA1".into(),
            totp_digits: 6,
            totp_period: 30,
            totp_skew: 1,
            hotp_digits: 6,
            hotp_window: 10,
            notify_command: String::new(),
            seed_key: None,
            hostname: None,
            serve_login_socket: true,
            login_socket: None,
        }
    }
}

impl DaemonConfig {
    pub fn to_toml(&self, state_dir: &Path) -> String {
        format!(
            r#"version = 1

[daemon]
state_dir = "{state_dir}"
admin_group = "{admin_group}"
log = "{log}"
login_socket = "{login_socket}"

[login]
timeout = {timeout}
max_tries = {max_tries}
failure_delay_ms = {failure_delay_ms}

[lockout]
max_failures = {lockout_max_failures}
unlock_after = {lockout_unlock_after}

[enrolment]
issuer = "{issuer}"
pending_expiry = {pending_expiry}

[totp]
algorithm = "{totp_algorithm}"
digits = {totp_digits}
period = {totp_period}
skew = {totp_skew}

[hotp]
digits = {hotp_digits}
window = {hotp_window}

[notify]
command = "{notify_command}"

[policy]
enabled = {policy_enabled}
enrol_at_login = {enrol_at_login}
step_up = {step_up}
lookup_timeout = {lookup_timeout}

[policy.default]
require = "{require}"

{policy_tables}
"#,
            state_dir = state_dir.display(),
            admin_group = self.admin_group,
            log = self.log,
            login_socket = self
                .login_socket
                .as_deref()
                .map(|p| p.display().to_string())
                .unwrap_or_default(),
            timeout = self.timeout,
            max_tries = self.max_tries,
            policy_enabled = self.policy_enabled,
            enrol_at_login = self.enrol_at_login,
            step_up = self.step_up,
            lookup_timeout = self.lookup_timeout,
            require = self.require,
            policy_tables = self.policy_tables,
            failure_delay_ms = self.failure_delay_ms,
            lockout_max_failures = self.lockout_max_failures,
            lockout_unlock_after = self.lockout_unlock_after,
            issuer = self.issuer,
            pending_expiry = self.pending_expiry,
            totp_algorithm = self.totp_algorithm,
            totp_digits = self.totp_digits,
            totp_period = self.totp_period,
            totp_skew = self.totp_skew,
            hotp_digits = self.hotp_digits,
            hotp_window = self.hotp_window,
            notify_command = self.notify_command,
        )
    }
}

pub struct Daemon {
    dir: TempDir,
    bus_address: String,
    passwd: PathBuf,
    group: PathBuf,
    child: Option<Child>,
    /// The unique bus name of the running instance.
    owner: Option<String>,
    /// Users and groups from this directory instead of nss_wrapper's files.
    directory: Option<Arc<TestDirectory>>,
    hostname: Option<String>,
}

impl Daemon {
    /// mfad with the default test config.
    pub fn start(bus: &Bus) -> Daemon {
        Daemon::start_with(bus, &DaemonConfig::default())
    }

    pub fn start_with(bus: &Bus, config: &DaemonConfig) -> Daemon {
        Daemon::start_in(bus, config, None)
    }

    /// mfad with its users and groups from `directory` (real glibc NSS),
    /// not from nss_wrapper.
    pub fn start_with_directory(
        bus: &Bus,
        config: &DaemonConfig,
        directory: Arc<TestDirectory>,
    ) -> Daemon {
        Daemon::start_in(bus, config, Some(directory))
    }

    fn start_in(bus: &Bus, config: &DaemonConfig, directory: Option<Arc<TestDirectory>>) -> Daemon {
        let dir = crate::shared_tempdir("mfad-");
        let state_dir = dir.path().join("state");
        let mut config = config.clone();
        if config.serve_login_socket && config.login_socket.is_none() {
            config.login_socket = Some(bus.login_socket());
        }
        std::fs::write(dir.path().join("mfad.toml"), config.to_toml(&state_dir))
            .expect("cannot write mfad.toml");
        if let Some(key) = &config.seed_key {
            use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
            std::fs::DirBuilder::new()
                .mode(0o700)
                .create(&state_dir)
                .expect("cannot make the state directory");
            let copy = state_dir.join(mfad::store::KEY_FILE);
            std::fs::copy(key, &copy).expect("cannot copy the key");
            std::fs::set_permissions(&copy, std::fs::Permissions::from_mode(0o600))
                .expect("cannot chmod the key");
        }
        let (passwd, group) = bus.nss_files();
        let mut daemon = Daemon {
            dir,
            bus_address: bus.address().to_string(),
            passwd,
            group,
            child: None,
            owner: None,
            directory,
            hostname: config.hostname.clone(),
        };
        daemon.launch();
        daemon
    }

    pub fn config_path(&self) -> PathBuf {
        self.dir.path().join("mfad.toml")
    }

    pub fn state_dir(&self) -> PathBuf {
        self.dir.path().join("state")
    }

    pub fn stderr_path(&self) -> PathBuf {
        self.dir.path().join("mfad.stderr")
    }

    /// Everything mfad wrote to stderr, over all its runs.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.stderr_path()).unwrap_or_default()
    }

    pub fn pid(&self) -> u32 {
        self.child
            .as_ref()
            .map(Child::id)
            .expect("mfad is not running")
    }

    /// Assert that none of `secrets` (codes, base32 secrets — checked in
    /// both cases and as hex for secrets) appears in mfad's log.
    pub fn assert_log_free_of(&self, secrets: &[&str]) {
        let log = self.log();
        let lower = log.to_lowercase();
        for secret in secrets.iter().filter(|s| !s.is_empty()) {
            assert!(
                !lower.contains(&secret.to_lowercase()),
                "mfad's log contains the code or secret {secret:?}:\n{log}"
            );
            let looks_base32 = secret.len() >= 16
                && secret
                    .chars()
                    .all(|c| c.is_ascii_uppercase() || ('2'..='7').contains(&c));
            if looks_base32 {
                let hex = crate::otp::base32_to_hex(secret);
                assert!(
                    !lower.contains(&hex),
                    "mfad's log contains a secret in hex:\n{log}"
                );
            }
        }
    }

    fn launch(&mut self) {
        let stderr = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.stderr_path())
            .expect("cannot open mfad's log");
        let mut cmd = match &self.directory {
            Some(directory) => directory.command(&crate::bins::mfad()),
            None => {
                let mut cmd = Command::new(crate::bins::mfad());
                users::use_nss_wrapper(&mut cmd, &self.passwd, &self.group);
                cmd
            }
        };
        cmd.arg("--config")
            .arg(self.config_path())
            .arg("--bus-address")
            .arg(&self.bus_address)
            .env_remove("DBUS_SYSTEM_BUS_ADDRESS")
            .env_remove("DBUS_SESSION_BUS_ADDRESS")
            .stdin(Stdio::null())
            .stdout(stderr.try_clone().expect("cannot dup the log"))
            .stderr(stderr);
        crate::process::die_with_parent(&mut cmd);
        if let Some(name) = &self.hostname {
            crate::process::with_hostname(&mut cmd, name);
        }
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start mfad: {e}"));
        let pid = child.id();
        self.child = Some(child);
        let previous = self.owner.take();
        match wait_for_owner(&self.bus_address, pid, previous.as_deref(), crate::QUICK) {
            Ok(owner) => self.owner = Some(owner),
            Err(why) => {
                let status = self.child.as_mut().and_then(|c| {
                    let _ = c.kill();
                    c.wait().ok()
                });
                self.child = None;
                panic!(
                    "mfad did not become ready: {why} (exit: {status:?})\n--- mfad log ---\n{}",
                    self.log()
                );
            }
        }
    }

    /// kill -9, then wait until the bus has noticed (the name is gone).
    pub fn kill9(&mut self) {
        let mut child = self.child.take().expect("mfad is not running");
        signal(&child, libc::SIGKILL);
        wait_timeout(&mut child, crate::QUICK).expect("mfad survived SIGKILL");
        wait_for_no_owner(&self.bus_address, crate::QUICK)
            .unwrap_or_else(|e| panic!("the bus still lists mfad after kill -9: {e}"));
    }

    /// SIGTERM; mfad must exit 0 within the limit and leave the bus.
    pub fn stop(&mut self) {
        let mut child = self.child.take().expect("mfad is not running");
        signal(&child, libc::SIGTERM);
        let status = wait_timeout(&mut child, crate::QUICK).unwrap_or_else(|| {
            let _ = child.kill();
            panic!("mfad ignored SIGTERM");
        });
        assert!(
            status.success(),
            "mfad exited with {status} on SIGTERM:\n{}",
            self.log()
        );
        wait_for_no_owner(&self.bus_address, crate::QUICK)
            .unwrap_or_else(|e| panic!("the bus still lists mfad after it exited: {e}"));
    }

    /// Start again on the same config and state directory.
    pub fn restart(&mut self) {
        assert!(
            self.child.is_none(),
            "stop or kill mfad before restarting it"
        );
        self.launch();
    }

    /// Wait for mfad to exit on its own; its exit status, or None if it is
    /// still running after `limit`.
    pub fn wait_exit(&mut self, limit: Duration) -> Option<std::process::ExitStatus> {
        let child = self.child.as_mut().expect("mfad is not running");
        let status = wait_timeout(child, limit)?;
        self.child = None;
        Some(status)
    }

    /// SIGSTOP: mfad keeps its name but answers nothing (a hung daemon).
    pub fn freeze(&self) {
        signal(
            self.child.as_ref().expect("mfad is not running"),
            libc::SIGSTOP,
        );
    }

    pub fn thaw(&self) {
        signal(
            self.child.as_ref().expect("mfad is not running"),
            libc::SIGCONT,
        );
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = wait_timeout(&mut child, Duration::from_secs(5));
        }
    }
}

/// Wait until `BUS_NAME` has an owner other than `previous`, failing early
/// if process `pid` exits. Returns the owner's unique name.
pub fn wait_for_owner(
    address: &str,
    pid: u32,
    previous: Option<&str>,
    limit: Duration,
) -> Result<String, String> {
    let exit = pidfd(pid).map_err(|e| format!("pidfd_open: {e}"))?;
    crate::block_on(async {
        let wait = async {
            let conn = zbus::connection::Builder::address(address)
                .map_err(|e| e.to_string())?
                .build()
                .await
                .map_err(|e| format!("cannot connect to the bus: {e}"))?;
            let dbus = zbus::fdo::DBusProxy::new(&conn)
                .await
                .map_err(|e| e.to_string())?;
            // Subscribe first, then look: no change can slip in between.
            let mut changes = dbus
                .receive_name_owner_changed_with_args(&[(0, BUS_NAME)])
                .await
                .map_err(|e| e.to_string())?;
            let name = zbus::names::BusName::try_from(BUS_NAME).map_err(|e| e.to_string())?;
            if let Ok(owner) = dbus.get_name_owner(name).await {
                if Some(owner.as_str()) != previous {
                    return Ok(owner.to_string());
                }
            }
            while let Some(signal) = changes.next().await {
                let args = signal.args().map_err(|e| e.to_string())?;
                if let Some(owner) = args.new_owner().as_ref() {
                    if Some(owner.as_str()) != previous {
                        return Ok(owner.to_string());
                    }
                }
            }
            Err("the bus connection closed".to_string())
        };
        let died = async {
            exited(&exit).await.map_err(|e| e.to_string())?;
            Err::<String, String>("mfad exited".to_string())
        };
        let raced = async {
            tokio::select! {
                r = wait => r,
                r = died => r,
            }
        };
        tokio::time::timeout(limit, raced)
            .await
            .unwrap_or_else(|_| Err(format!("no owner of {BUS_NAME} after {limit:?}")))
    })
}

/// Wait until `BUS_NAME` has no owner.
fn wait_for_no_owner(address: &str, limit: Duration) -> Result<(), String> {
    crate::block_on(async {
        let wait = async {
            let conn = zbus::connection::Builder::address(address)
                .map_err(|e| e.to_string())?
                .build()
                .await
                .map_err(|e| e.to_string())?;
            let dbus = zbus::fdo::DBusProxy::new(&conn)
                .await
                .map_err(|e| e.to_string())?;
            let mut changes = dbus
                .receive_name_owner_changed_with_args(&[(0, BUS_NAME)])
                .await
                .map_err(|e| e.to_string())?;
            let name = zbus::names::BusName::try_from(BUS_NAME).map_err(|e| e.to_string())?;
            if !dbus.name_has_owner(name).await.map_err(|e| e.to_string())? {
                return Ok(());
            }
            while let Some(signal) = changes.next().await {
                let args = signal.args().map_err(|e| e.to_string())?;
                if args.new_owner().is_none() {
                    return Ok(());
                }
            }
            Err("the bus connection closed".to_string())
        };
        tokio::time::timeout(limit, wait)
            .await
            .unwrap_or_else(|_| Err(format!("{BUS_NAME} still owned after {limit:?}")))
    })
}
