//! A real OpenSSH `sshd` (package openssh-server) per test, on 127.0.0.1 at
//! a free port, with its own host key, config, authorized keys and PAM
//! service in a temporary directory. Nothing on the machine is used but the
//! binary and `/run/sshd` (its privilege separation directory, created if
//! missing).
//!
//! sshd runs under `nss_wrapper` (the test users, plus its privilege
//! separation user `sshd`) and `pam_wrapper`, so its libpam reads the
//! service [`SERVICE`] from a test directory instead of `/etc/pam.d`. The
//! auth stack is the caller's; account and session are `pam_permit`.
//! A successful login runs a forced command whose output, [`login_ok`],
//! the client sees.
//!
//! How PAM messages reach the user (OpenSSH 9.2): info and error text before
//! a prompt is joined to that prompt and shown as is after `(user@host) `;
//! text after the last answer of a successful login is shown before the
//! session's output; the text of a refused login (no prompt follows) is
//! printed by ssh as a log line, with every non-ASCII byte escaped as `\ooo`.
//!
//! ```no_run
//! # use mfa_tests::sshd::{Sshd, SshdConfig, PUBKEY_THEN_KBDINT};
//! # let bus_address = "unix:path=/x";
//! let sshd = Sshd::start(&SshdConfig::mfa(PUBKEY_THEN_KBDINT, bus_address, "timeout=10"));
//! let key = sshd.add_key("alice");
//! let mut ssh = sshd.client("alice").key(&key.private).bind("127.0.0.2").spawn();
//! ssh.expect("Verification code: ", mfa_tests::QUICK);
//! ```

use crate::pam::ServiceDir;
use crate::process::{die_with_parent, wait_timeout};
use crate::ssh::{Output, SshOptions, WaitError};
use crate::users;
use std::net::TcpListener;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;
use tempfile::TempDir;

/// The server binary. sshd re-executes itself for every connection, which
/// needs an absolute path.
pub const SSHD: &str = "/usr/sbin/sshd";

/// The PAM service sshd uses: its program name (OpenSSH's default
/// `SSHD_PAM_SERVICE`; Debian does not change it).
pub const SERVICE: &str = "sshd";

/// `AuthenticationMethods`: the PAM stack alone.
pub const KBDINT: &str = "keyboard-interactive";
/// `AuthenticationMethods`: an authorized key first, then the PAM stack.
pub const PUBKEY_THEN_KBDINT: &str = "publickey,keyboard-interactive";

/// What the forced command prints first.
pub const LOGIN_OK: &str = "MFA-LOGIN-OK";

/// The line the forced command prints when `user` has logged in.
pub fn login_ok(user: &str) -> String {
    format!("{LOGIN_OK} user={user}")
}

/// sshd's privilege separation directory (compiled in; must exist and be
/// owned by root, not writable by others).
const PRIVSEP_DIR: &str = "/run/sshd";

/// How the test sshd is set up.
#[derive(Clone, Debug)]
pub struct SshdConfig {
    /// `AuthenticationMethods`, e.g. [`KBDINT`] or [`PUBKEY_THEN_KBDINT`].
    pub methods: String,
    /// The `auth` lines of the PAM service (whole lines, `auth …`).
    pub auth: Vec<String>,
    /// The `account` lines; `account required pam_permit.so` by default.
    pub account: Vec<String>,
    /// The `session` lines; `session required pam_permit.so` by default.
    pub session: Vec<String>,
    /// sshd_config lines put before the generated ones: sshd keeps the first
    /// value of a keyword, so these override. No `Match` here.
    pub options: Vec<String>,
    /// sshd_config lines put last, for `Match` blocks.
    pub matches: Vec<String>,
    /// `LogLevel`. DEBUG2 shows sshd putting `SSH_AUTH_INFO_0` into the
    /// PAM environment and which key was accepted.
    pub log_level: String,
}

impl SshdConfig {
    pub fn new(methods: &str, auth: Vec<String>) -> SshdConfig {
        SshdConfig {
            methods: methods.into(),
            auth,
            account: vec!["account required pam_permit.so".into()],
            session: vec!["session required pam_permit.so".into()],
            options: Vec::new(),
            matches: Vec::new(),
            log_level: "DEBUG2".into(),
        }
    }

    /// The usual stack: `auth required libpam_mfa.so bus=<address> <options>`
    /// (the freshly built module, by absolute path).
    pub fn mfa(methods: &str, bus_address: &str, options: &str) -> SshdConfig {
        SshdConfig::new(methods, crate::pam::mfa_stack(bus_address, options))
    }

    fn pam_lines(&self) -> Vec<String> {
        let mut lines = self.auth.clone();
        lines.extend(self.account.iter().cloned());
        lines.extend(self.session.iter().cloned());
        lines
    }

    fn sshd_config(&self, dir: &Path, port: u16) -> String {
        let mut lines: Vec<String> = vec!["# Written by mfa_tests::sshd".into()];
        lines.extend(self.options.iter().cloned());
        let d = dir.display();
        lines.extend([
            format!("ListenAddress 127.0.0.1:{port}"),
            "AddressFamily inet".into(),
            format!("HostKey {d}/host_ed25519_key"),
            "PidFile none".into(),
            format!("LogLevel {}", self.log_level),
            "UsePAM yes".into(),
            "KbdInteractiveAuthentication yes".into(),
            "PasswordAuthentication no".into(),
            "PubkeyAuthentication yes".into(),
            "HostbasedAuthentication no".into(),
            format!("AuthorizedKeysFile {d}/keys/%u"),
            "AuthorizedPrincipalsFile none".into(),
            format!("AuthenticationMethods {}", self.methods),
            "ExposeAuthInfo yes".into(),
            "UseDNS no".into(),
            "StrictModes no".into(),
            "PermitUserRC no".into(),
            "PermitUserEnvironment no".into(),
            "PrintMotd no".into(),
            "PrintLastLog no".into(),
            "X11Forwarding no".into(),
            "AllowTcpForwarding no".into(),
            "AllowAgentForwarding no".into(),
            // Longer than any test waits, shorter than a forgotten client.
            "LoginGraceTime 60".into(),
            // Tests may open many connections at once; never drop one early.
            "MaxStartups 100".into(),
            format!("ForceCommand echo {LOGIN_OK} user=$USER"),
        ]);
        if penalties_exist() {
            // OpenSSH 9.8+ would refuse 127.0.0.1 after a few failed logins.
            lines.push("PerSourcePenalties no".into());
        }
        lines.extend(self.matches.iter().cloned());
        let mut text = lines.join("\n");
        text.push('\n');
        text
    }
}

/// A private key made for a test user, with its public half.
#[derive(Clone, Debug)]
pub struct ClientKey {
    /// For `ssh -i`.
    pub private: PathBuf,
    /// The `.pub` line: `ssh-ed25519 AAAA… comment`.
    pub public: String,
    /// `SHA256:…`, as sshd logs it when it accepts the key.
    pub fingerprint: String,
}

impl ClientKey {
    /// What sshd's `ExposeAuthInfo` puts in `SSH_AUTH_INFO_0` when this key
    /// was the only method before PAM: `publickey ssh-ed25519 AAAA…\n`.
    /// sshd ends every method's line with a newline, the last one too.
    pub fn auth_info(&self) -> String {
        let mut fields = self.public.split_whitespace();
        let kind = fields.next().unwrap_or_default();
        let blob = fields.next().unwrap_or_default();
        format!("publickey {kind} {blob}\n")
    }
}

pub struct Sshd {
    // Field order is drop order; `Drop` stops the process first anyway.
    child: Option<Child>,
    port: u16,
    log: Arc<Output>,
    pam: ServiceDir,
    dir: TempDir,
    keys_made: AtomicU32,
}

impl Sshd {
    /// Start sshd and wait until it listens (at most [`crate::QUICK`]).
    pub fn start(config: &SshdConfig) -> Sshd {
        assert!(
            Path::new(SSHD).exists(),
            "{SSHD} not found: apt-get install openssh-server (scripts/test.sh does)"
        );
        ensure_privsep_dir();
        let dir = crate::shared_tempdir("mfa-sshd-");
        let pam = ServiceDir::new();
        pam.write(SERVICE, &config.pam_lines());
        // The users' home: the session starts there. It must exist but
        // nobody needs to write to it.
        let home = dir.path().join("home");
        make_dir(&home, 0o755);
        make_dir(&dir.path().join("keys"), 0o755);
        make_dir(&dir.path().join("client-keys"), 0o700);
        keygen(&dir.path().join("host_ed25519_key"), "test sshd host key");
        users::write_nss_files_with_home(dir.path(), Some(&home));

        // The free port is found by binding port 0 and letting go of it, so
        // another process can take it before sshd binds: then try again.
        const ATTEMPTS: u32 = 5;
        for attempt in 1..=ATTEMPTS {
            let port = free_port();
            match launch(dir.path(), &pam, config, port) {
                Ok((child, log)) => {
                    return Sshd {
                        child: Some(child),
                        port,
                        log,
                        pam,
                        dir,
                        keys_made: AtomicU32::new(0),
                    }
                }
                Err(log) if log.contains("Address already in use") && attempt < ATTEMPTS => {}
                Err(log) => panic!("sshd did not start:\n{log}"),
            }
        }
        unreachable!("the last attempt returns or panics")
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The address sshd listens on.
    pub fn host(&self) -> &'static str {
        "127.0.0.1"
    }

    /// Everything sshd (and, through pam_wrapper, PAM modules' syslog) wrote
    /// to stderr so far.
    pub fn log(&self) -> String {
        self.log.text()
    }

    /// Wait until sshd's log contains `needle` anywhere (sshd logs
    /// asynchronously to what the client sees); returns the whole log.
    /// Panics after `limit`.
    #[track_caller]
    pub fn wait_for_log(&self, needle: &str, limit: Duration) -> String {
        self.wait_for_log_since(0, needle, limit)
    }

    /// Where the log ends now, for [`Sshd::wait_for_log_since`]: take it
    /// before a connection to look only at what that connection logged.
    pub fn log_mark(&self) -> usize {
        self.log.len()
    }

    /// Like [`Sshd::wait_for_log`], but only in what was logged after `mark`;
    /// returns that part of the log.
    #[track_caller]
    pub fn wait_for_log_since(&self, mark: usize, needle: &str, limit: Duration) -> String {
        match self.log.wait_for(mark, &[needle], limit) {
            Ok(_) => self.log.slice(mark, usize::MAX),
            Err(why) => panic!(
                "sshd's log has no {needle:?} after offset {mark} ({why:?}):\n{}",
                self.log.text()
            ),
        }
    }

    /// The PAM service directory; rewrite [`SERVICE`] with
    /// [`ServiceDir::write`] to change the stack for the next connections.
    pub fn pam(&self) -> &ServiceDir {
        &self.pam
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// An ssh client for `user` to this server (keyboard-interactive, no key).
    pub fn client(&self, user: &str) -> SshOptions {
        SshOptions::new(user, self.port)
    }

    /// A new ed25519 key pair (no passphrase), not authorized for anyone.
    pub fn generate_key(&self, label: &str) -> ClientKey {
        let n = self.keys_made.fetch_add(1, Ordering::Relaxed);
        let private = self
            .dir
            .path()
            .join("client-keys")
            .join(format!("{label}-{n}"));
        keygen(&private, &format!("{label}-{n}@mfa-tests"));
        let public = std::fs::read_to_string(format!("{}.pub", private.display()))
            .expect("ssh-keygen wrote no public key")
            .trim()
            .to_string();
        let fingerprint = fingerprint(&private);
        ClientKey {
            private,
            public,
            fingerprint,
        }
    }

    /// Add `key` to `user`'s authorized keys.
    pub fn authorize(&self, user: &str, key: &ClientKey) {
        use std::io::Write;
        let path = self.dir.path().join("keys").join(user);
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .expect("cannot open the authorized keys file");
        writeln!(file, "{}", key.public).expect("cannot write the authorized keys file");
        // sshd reads it with the user's uid.
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644))
            .expect("cannot chmod the authorized keys file");
    }

    /// A new key authorized for `user`; call again for a second one.
    pub fn add_key(&self, user: &str) -> ClientKey {
        let key = self.generate_key(user);
        self.authorize(user, &key);
        key
    }
}

impl Drop for Sshd {
    fn drop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        // Each connection is a forked child in a session of its own. Once its
        // client is gone (tests finish or drop their ssh before the server)
        // it ends by itself; letting it lets sshd clean up after itself (the
        // ExposeAuthInfo file in /tmp, pam_wrapper's directory). Then kill
        // what is left, collected before killing reparents it.
        let connections = descendants(child.id());
        wait_all_exited(&connections, Duration::from_secs(5));
        let mut left = descendants(child.id());
        left.extend(&connections);
        for &pid in &left {
            // SAFETY: kill(2) on processes this sshd started; one that has
            // exited meanwhile just fails with ESRCH.
            unsafe { libc::kill(pid as libc::pid_t, libc::SIGKILL) };
        }
        let mut ended = forked_children(&self.log.text());
        ended.extend(left);
        remove_pam_wrapper_dirs(&ended);
        // SIGTERM: the listener exits normally, running its destructors.
        crate::process::signal(&child, libc::SIGTERM);
        if wait_timeout(&mut child, Duration::from_secs(5)).is_none() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// The connection processes sshd's log names ("Forked child N.", at
/// LogLevel DEBUG and above).
fn forked_children(log: &str) -> Vec<u32> {
    log.lines()
        .filter_map(|l| l.strip_prefix("debug1: Forked child "))
        .filter_map(|rest| rest.trim_end_matches('.').parse().ok())
        .collect()
}

/// pam_wrapper makes a directory `/tmp/pam.?` (with a `pid` file) in every
/// process that loads it and removes it only on a normal exit; sshd's
/// connection processes end with `_exit`. Remove those of `pids` once they
/// are gone (pam_wrapper itself would reclaim them only when it happens to
/// pick the same name).
fn remove_pam_wrapper_dirs(pids: &[u32]) {
    let Ok(entries) = std::fs::read_dir("/tmp") else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let is_pam_wrapper = name
            .to_str()
            .and_then(|n| n.strip_prefix("pam."))
            .is_some_and(|rest| rest.len() == 1);
        if !is_pam_wrapper {
            continue;
        }
        let owner: Option<u32> = std::fs::read_to_string(entry.path().join("pid"))
            .ok()
            .and_then(|p| p.trim().parse().ok());
        let Some(owner) = owner else { continue };
        // SAFETY: kill(pid, 0) only checks whether the process exists.
        let alive = unsafe { libc::kill(owner as libc::pid_t, 0) } == 0;
        if pids.contains(&owner) && !alive {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

/// Wait until every process in `pids` has exited, at most `limit`.
fn wait_all_exited(pids: &[u32], limit: Duration) {
    // A pid that is already gone has no pidfd: nothing to wait for.
    let fds: Vec<_> = pids
        .iter()
        .filter_map(|&pid| crate::process::pidfd(pid).ok())
        .collect();
    if fds.is_empty() {
        return;
    }
    crate::block_on(async {
        let all = async {
            for fd in &fds {
                let _ = crate::process::exited(fd).await;
            }
        };
        let _ = tokio::time::timeout(limit, all).await;
    });
}

/// One start of sshd on `port`: the process and its log once it listens,
/// or Err(log) if it exited or never listened.
fn launch(
    dir: &Path,
    pam: &ServiceDir,
    config: &SshdConfig,
    port: u16,
) -> Result<(Child, Arc<Output>), String> {
    let config_path = dir.join("sshd_config");
    std::fs::write(&config_path, config.sshd_config(dir, port)).expect("cannot write sshd_config");
    let mut cmd = Command::new(SSHD);
    cmd.arg("-D")
        .arg("-e")
        .arg("-f")
        .arg(&config_path)
        .env_clear()
        .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
        .env("NSS_WRAPPER_PASSWD", dir.join("passwd"))
        .env("NSS_WRAPPER_GROUP", dir.join("group"))
        .env(
            "LD_PRELOAD",
            format!(
                "{} {}",
                users::nss_wrapper_lib().display(),
                crate::pam::pam_wrapper_lib().display()
            ),
        )
        .env("PAM_WRAPPER", "1")
        .env("PAM_WRAPPER_SERVICE_DIR", pam.path())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        // Its own process group, apart from the test runner's.
        .process_group(0);
    die_with_parent(&mut cmd);
    let mut child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {SSHD}: {e}"));
    let stderr = child.stderr.take().expect("piped stderr");
    let log = Output::collect(stderr);
    let listening = format!("Server listening on 127.0.0.1 port {port}.");
    match log.wait_for(0, &[&listening], crate::QUICK) {
        Ok(_) => Ok((child, log)),
        Err(why) => {
            let _ = child.kill();
            let status = child.wait();
            log.wait_closed(Duration::from_secs(5));
            let why = match why {
                WaitError::Closed => format!("exited ({status:?})"),
                WaitError::TimedOut => format!("not listening after {:?}", crate::QUICK),
            };
            Err(format!("{why}\n--- sshd log ---\n{}", log.text()))
        }
    }
}

/// All processes below `root`, from /proc.
fn descendants(root: u32) -> Vec<u32> {
    let mut parent_of: Vec<(u32, u32)> = Vec::new();
    if let Ok(entries) = std::fs::read_dir("/proc") {
        for entry in entries.flatten() {
            let Some(pid) = entry.file_name().to_str().and_then(|s| s.parse().ok()) else {
                continue;
            };
            let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
                continue;
            };
            // "pid (comm) state ppid …"; comm may contain anything but the
            // last ')' ends it.
            let ppid = stat
                .rsplit_once(')')
                .and_then(|(_, rest)| rest.split_whitespace().nth(1))
                .and_then(|p| p.parse().ok());
            if let Some(ppid) = ppid {
                parent_of.push((pid, ppid));
            }
        }
    }
    let mut found = Vec::new();
    let mut frontier = vec![root];
    while let Some(parent) = frontier.pop() {
        for &(pid, ppid) in &parent_of {
            if ppid == parent && !found.contains(&pid) {
                found.push(pid);
                frontier.push(pid);
            }
        }
    }
    found
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("cannot find a free port")
}

fn make_dir(path: &Path, mode: u32) {
    std::fs::create_dir_all(path)
        .and_then(|_| std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)))
        .unwrap_or_else(|e| panic!("cannot create {}: {e}", path.display()));
}

/// sshd refuses to start without its privilege separation directory
/// (systemd creates it on a real system).
fn ensure_privsep_dir() {
    let dir = Path::new(PRIVSEP_DIR);
    if !dir.is_dir() {
        // Parallel tests may race here; create_dir_all tolerates that.
        make_dir(dir, 0o755);
    }
}

/// `ssh-keygen -t ed25519 -N ''` into `path` and `path.pub`.
fn keygen(path: &Path, comment: &str) {
    let mut cmd = Command::new("ssh-keygen");
    cmd.args(["-q", "-t", "ed25519", "-N", "", "-C", comment, "-f"])
        .arg(path);
    crate::process::run("ssh-keygen", &mut cmd, "", crate::QUICK).assert_success("ssh-keygen");
}

/// `SHA256:…` of a key, by ssh-keygen.
fn fingerprint(private: &Path) -> String {
    let mut cmd = Command::new("ssh-keygen");
    cmd.args(["-l", "-E", "sha256", "-f"]).arg(private);
    let finished = crate::process::run("ssh-keygen -l", &mut cmd, "", crate::QUICK);
    finished.assert_success("ssh-keygen -l");
    // "256 SHA256:… comment (ED25519)"
    finished
        .stdout
        .split_whitespace()
        .nth(1)
        .unwrap_or_else(|| panic!("unexpected ssh-keygen -l output: {}", finished.stdout))
        .to_string()
}

/// Whether this sshd knows `PerSourcePenalties` (OpenSSH 9.8 and later),
/// from the version `sshd -V` prints ("OpenSSH_9.2p1 …").
fn penalties_exist() -> bool {
    static EXISTS: OnceLock<bool> = OnceLock::new();
    *EXISTS.get_or_init(|| {
        let out = Command::new(SSHD)
            .arg("-V")
            .output()
            .map(|o| {
                let mut text = String::from_utf8_lossy(&o.stderr).into_owned();
                text.push_str(&String::from_utf8_lossy(&o.stdout));
                text
            })
            .unwrap_or_default();
        let version = out
            .split("OpenSSH_")
            .nth(1)
            .map(|rest| {
                rest.chars()
                    .take_while(|c| c.is_ascii_digit() || *c == '.')
                    .collect::<String>()
            })
            .unwrap_or_default();
        let mut parts = version.split('.').map(|p| p.parse::<u32>().unwrap_or(0));
        let major = parts.next().unwrap_or(0);
        let minor = parts.next().unwrap_or(0);
        (major, minor) >= (9, 8)
    })
}
