//! Real libpam: PAM service files naming the freshly built module, logins
//! through `pam-driver` (libpam's `pam_start_confdir`), and `pamtester` under
//! `pam_wrapper`.

use crate::process::{run, Finished, Running};
use serde::Deserialize;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;
use tempfile::TempDir;

// Linux-PAM return codes (security/_pam_types.h).
pub const PAM_SUCCESS: i32 = 0;
pub const PAM_SERVICE_ERR: i32 = 3;
pub const PAM_SYSTEM_ERR: i32 = 4;
pub const PAM_PERM_DENIED: i32 = 6;
pub const PAM_AUTH_ERR: i32 = 7;
pub const PAM_CRED_INSUFFICIENT: i32 = 8;
pub const PAM_AUTHINFO_UNAVAIL: i32 = 9;
pub const PAM_USER_UNKNOWN: i32 = 10;
pub const PAM_MAXTRIES: i32 = 11;
pub const PAM_CONV_ERR: i32 = 19;
pub const PAM_IGNORE: i32 = 25;
pub const PAM_ABORT: i32 = 26;

/// The symbolic name of a PAM return code.
pub fn rc_name(rc: i32) -> &'static str {
    const NAMES: [&str; 32] = [
        "PAM_SUCCESS",
        "PAM_OPEN_ERR",
        "PAM_SYMBOL_ERR",
        "PAM_SERVICE_ERR",
        "PAM_SYSTEM_ERR",
        "PAM_BUF_ERR",
        "PAM_PERM_DENIED",
        "PAM_AUTH_ERR",
        "PAM_CRED_INSUFFICIENT",
        "PAM_AUTHINFO_UNAVAIL",
        "PAM_USER_UNKNOWN",
        "PAM_MAXTRIES",
        "PAM_NEW_AUTHTOK_REQD",
        "PAM_ACCT_EXPIRED",
        "PAM_SESSION_ERR",
        "PAM_CRED_UNAVAIL",
        "PAM_CRED_EXPIRED",
        "PAM_CRED_ERR",
        "PAM_NO_MODULE_DATA",
        "PAM_CONV_ERR",
        "PAM_AUTHTOK_ERR",
        "PAM_AUTHTOK_RECOVERY_ERR",
        "PAM_AUTHTOK_LOCK_BUSY",
        "PAM_AUTHTOK_DISABLE_AGING",
        "PAM_TRY_AGAIN",
        "PAM_IGNORE",
        "PAM_ABORT",
        "PAM_AUTHTOK_EXPIRED",
        "PAM_MODULE_UNKNOWN",
        "PAM_BAD_ITEM",
        "PAM_CONV_AGAIN",
        "PAM_INCOMPLETE",
    ];
    usize::try_from(rc)
        .ok()
        .and_then(|i| NAMES.get(i))
        .copied()
        .unwrap_or("PAM_<unknown>")
}

/// Prompt texts, exactly as mfad sends them.
pub const PROMPT: &str = "Verification code: ";
pub const PROMPT_AGAIN: &str = "Wrong code. Verification code: ";
pub const TOO_MANY: &str = "Too many wrong codes.";
pub const NOT_ENROLLED: &str = "No second factor is set up for this account, and logins here need one. Ask an administrator to set one up for you.";
pub const DIRECTORY_DOWN: &str =
    "The second factor could not be checked: the user directory is not answering. Try again later.";
pub const LOCKED: &str =
    "Too many failed codes: the second factor of this account is locked. Ask an administrator.";

/// A directory of PAM service files (`pam_start_confdir`'s confdir, or
/// `PAM_WRAPPER_SERVICE_DIR`). `other` denies everything.
pub struct ServiceDir {
    dir: TempDir,
}

impl Default for ServiceDir {
    fn default() -> Self {
        ServiceDir::new()
    }
}

impl ServiceDir {
    pub fn new() -> ServiceDir {
        let dir = crate::shared_tempdir("mfa-pam.d-");
        let deny = "auth required pam_deny.so\naccount required pam_deny.so\n\
                    password required pam_deny.so\nsession required pam_deny.so\n";
        std::fs::write(dir.path().join("other"), deny).expect("cannot write pam.d/other");
        ServiceDir { dir }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Write service `name` with the given lines.
    pub fn write(&self, name: &str, lines: &[String]) {
        let mut text = lines.join("\n");
        text.push('\n');
        std::fs::write(self.dir.path().join(name), text).expect("cannot write a PAM service");
    }

    /// The usual service: `auth required libpam_mfa.so bus=<address>
    /// <options>`, then `auth required pam_permit.so`, as a stack that ends
    /// in pam_permit (Debian's common-auth) does: a login that needs no
    /// second factor (`PAM_IGNORE`) gets through it.
    pub fn mfa(&self, name: &str, bus_address: &str, options: &str) {
        self.write(name, &mfa_stack(bus_address, options));
    }
}

/// The lines of [`ServiceDir::mfa`].
pub fn mfa_stack(bus_address: &str, options: &str) -> Vec<String> {
    vec![
        mfa_line("required", bus_address, options),
        "auth required pam_permit.so".into(),
    ]
}

/// One `auth` line for the module under test, by absolute path: root's
/// PAM clients reach mfad on its login socket, others through the bus.
pub fn mfa_line(control: &str, bus_address: &str, options: &str) -> String {
    let socket = crate::bus::login_socket_for(bus_address);
    mfa_line_with(control, bus_address, &socket, options)
}

/// [`mfa_line`] with the login socket at `socket`.
pub fn mfa_line_with(control: &str, bus_address: &str, socket: &Path, options: &str) -> String {
    let module = crate::bins::pam_module();
    format!(
        "auth {control} {} bus={bus_address} socket={} {options}",
        module.display(),
        socket.display()
    )
    .trim_end()
    .to_string()
}

/// One message the conversation function received.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
pub struct PamMessage {
    /// `prompt_echo_off`, `prompt_echo_on`, `error` or `info`.
    pub style: String,
    pub text: String,
}

/// What `pam-driver` reports for one transaction.
#[derive(Clone, Debug, Deserialize)]
pub struct PamResult {
    /// Return code of pam_authenticate (or of pam_start when that failed).
    pub rc: i32,
    pub rc_name: String,
    pub messages: Vec<PamMessage>,
    pub threads_before: u32,
    pub threads_after: u32,
    /// Microseconds spent in pam_authenticate.
    pub auth_us: u64,
    /// Answers the driver was given but never asked for.
    pub unused_answers: usize,
    /// The failure delay libpam asked the application to wait (µs): the
    /// largest a module requested, only when the stack failed.
    pub fail_delay_us: Option<u64>,
}

impl PamResult {
    pub fn prompts(&self) -> Vec<&str> {
        self.with_style(&["prompt_echo_off", "prompt_echo_on"])
    }
    pub fn errors(&self) -> Vec<&str> {
        self.with_style(&["error"])
    }
    pub fn infos(&self) -> Vec<&str> {
        self.with_style(&["info"])
    }
    fn with_style(&self, styles: &[&str]) -> Vec<&str> {
        self.messages
            .iter()
            .filter(|m| styles.contains(&m.style.as_str()))
            .map(|m| m.text.as_str())
            .collect()
    }
    pub fn auth_time(&self) -> Duration {
        Duration::from_micros(self.auth_us)
    }
    /// Panic unless pam_authenticate returned `rc`.
    #[track_caller]
    pub fn assert_rc(&self, rc: i32) -> &Self {
        assert_eq!(
            self.rc,
            rc,
            "expected {}, got {}: {self:#?}",
            rc_name(rc),
            self.rc_name
        );
        self
    }
}

/// A login as `pam-driver` runs it.
#[derive(Clone, Debug)]
pub struct Login {
    pub service: String,
    pub user: String,
    pub answers: Vec<String>,
    pub rhost: Option<String>,
    pub tty: Option<String>,
    /// Stop at the first prompt until [`PendingLogin::release`].
    pub sync: bool,
    /// Past `answers`, each prompt waits for [`PendingLogin::answer`].
    pub ask: bool,
    /// Run the PAM client as this user instead of root (a screen locker).
    pub as_user: Option<crate::users::TestUser>,
}

impl Login {
    pub fn new(service: &str, user: &str, answers: &[&str]) -> Login {
        Login {
            service: service.into(),
            user: user.into(),
            answers: answers.iter().map(|a| a.to_string()).collect(),
            rhost: None,
            tty: None,
            sync: false,
            ask: false,
            as_user: None,
        }
    }

    fn command(&self, dir: &ServiceDir) -> Command {
        let mut cmd = match &self.as_user {
            Some(user) => crate::users::command_as(user, &crate::bins::pam_driver()),
            None => Command::new(crate::bins::pam_driver()),
        };
        cmd.arg("--confdir").arg(dir.path());
        cmd.arg("--service")
            .arg(&self.service)
            .arg("--user")
            .arg(&self.user);
        for answer in &self.answers {
            cmd.arg(format!("--answer={answer}"));
        }
        if let Some(rhost) = &self.rhost {
            cmd.arg("--rhost").arg(rhost);
        }
        if let Some(tty) = &self.tty {
            cmd.arg("--tty").arg(tty);
        }
        if self.sync {
            cmd.arg("--sync");
        }
        if self.ask {
            cmd.arg("--ask");
        }
        if self.as_user.is_none() {
            // command_as cleared it already, keeping a PATH for setpriv.
            cmd.env_clear();
        }
        cmd
    }

    /// Run to the end and return the report.
    pub fn run(&self, dir: &ServiceDir) -> PamResult {
        let finished = run("pam-driver", &mut self.command(dir), "", crate::QUICK);
        parse_report(&finished)
    }

    /// Run to the end as the child of a shell whose program is called
    /// `parent` (a copy of /bin/sh): a PAM client under `sshd`, as sudo is
    /// in an SSH session.
    pub fn run_under(&self, dir: &ServiceDir, parent: &str) -> PamResult {
        let bin = crate::shared_tempdir("mfa-parent-");
        let shell = bin.path().join(parent);
        std::fs::copy("/bin/sh", &shell).expect("copy /bin/sh");
        let driver = self.command(dir);
        let mut cmd = Command::new(&shell);
        // `; exit` keeps the shell alive as the driver's parent.
        cmd.arg("-c")
            .arg(r#""$0" "$@"; exit $?"#)
            .arg(driver.get_program())
            .args(driver.get_args())
            .env_clear();
        parse_report(&run("pam-driver", &mut cmd, "", crate::QUICK))
    }

    /// Start it; the caller decides when it may go on (with `sync`).
    pub fn spawn(&self, dir: &ServiceDir) -> PendingLogin {
        PendingLogin {
            running: Running::spawn("pam-driver", &mut self.command(dir)),
        }
    }
}

/// A login through real libpam with the given answers.
pub fn login(dir: &ServiceDir, service: &str, user: &str, answers: &[&str]) -> PamResult {
    Login::new(service, user, answers).run(dir)
}

/// A `pam-driver` process in flight.
pub struct PendingLogin {
    running: Running,
}

impl PendingLogin {
    /// Wait until the driver sits at its first prompt (needs `sync`).
    /// Returns false if it finished without being asked anything.
    pub fn wait_at_prompt(&mut self, limit: Duration) -> bool {
        while let Some(line) = self.running.next_line(limit) {
            if line == "AT-PROMPT" {
                return true;
            }
            if line.starts_with('{') {
                return false;
            }
        }
        false
    }

    /// The next prompt of an `ask` login, once it is there; `None` when the
    /// login ended (or `limit` passed) first.
    pub fn next_prompt(&mut self, limit: Duration) -> Option<String> {
        while let Some(line) = self.running.next_line(limit) {
            if let Some(text) = line.strip_prefix("PROMPT ") {
                return serde_json::from_str(text).ok();
            }
            if line.starts_with('{') {
                return None;
            }
        }
        None
    }

    /// What the driver printed so far (its report, once it ended).
    pub fn transcript(&self) -> String {
        self.running.seen().join("\n")
    }

    /// Answer the prompt [`PendingLogin::next_prompt`] returned.
    pub fn answer(&mut self, text: &str) {
        self.running.send_line(text);
    }

    /// Let a `sync` driver answer its first prompt.
    pub fn release(&mut self) {
        self.running.send_line("go");
    }

    pub fn finish(self) -> PamResult {
        parse_report(&self.running.finish(crate::QUICK))
    }
}

fn parse_report(finished: &Finished) -> PamResult {
    let json = finished
        .stdout
        .lines()
        .rev()
        .find(|l| l.starts_with('{'))
        .unwrap_or_else(|| {
            panic!(
                "pam-driver printed no report ({}):\n{}",
                finished.status,
                finished.describe()
            )
        });
    serde_json::from_str(json)
        .unwrap_or_else(|e| panic!("bad pam-driver report {json}: {e}\n{}", finished.describe()))
}

/// `libpam_wrapper.so` (Debian package libpam-wrapper).
pub fn pam_wrapper_lib() -> PathBuf {
    crate::users::find_lib("libpam_wrapper.so", "libpam-wrapper")
}

/// Run `pamtester <service> <user> authenticate` under pam_wrapper, which
/// makes libpam read services from `dir` instead of /etc/pam.d. `input` is
/// what the user types (one line per prompt).
pub fn pamtester(dir: &ServiceDir, service: &str, user: &str, input: &str) -> Finished {
    let mut cmd = Command::new("pamtester");
    cmd.arg("-v").arg(service).arg(user).arg("authenticate");
    cmd.env_clear()
        .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
        .env("LD_PRELOAD", pam_wrapper_lib())
        .env("PAM_WRAPPER", "1")
        .env("PAM_WRAPPER_SERVICE_DIR", dir.path());
    run("pamtester", &mut cmd, input, crate::QUICK)
}
