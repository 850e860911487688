//! The usual test setup in one value: a bus with the shipped policy, mfad on
//! it, and a PAM service directory whose service [`SERVICE`] runs the built
//! module against that bus.

use crate::bus::Bus;
use crate::daemon::{Daemon, DaemonConfig};
use crate::directory::TestDirectory;
use crate::otp::Totp;
use crate::pam::{Login, PamResult, ServiceDir};
use crate::probe::{self, Enrolled};
use crate::process::{run, Finished};
use crate::users::{command_as, TestUser};
use std::sync::Arc;

/// The PAM service every [`World`] writes.
pub const SERVICE: &str = "mfa-test";
/// The module options of [`SERVICE`] besides `bus=`.
pub const OPTIONS: &str = "timeout=10";

pub struct World {
    // Field order is drop order: mfad goes before its bus.
    pub pam: ServiceDir,
    pub daemon: Daemon,
    pub bus: Bus,
}

impl World {
    /// Default mfad configuration.
    pub fn start() -> World {
        World::with_config(&DaemonConfig::default())
    }

    pub fn with_config(config: &DaemonConfig) -> World {
        World::around(|bus| Daemon::start_with(bus, config))
    }

    /// mfad with users and groups from `directory` (see [`crate::directory`]).
    pub fn with_directory(config: &DaemonConfig, directory: Arc<TestDirectory>) -> World {
        World::around(|bus| Daemon::start_with_directory(bus, config, directory))
    }

    fn around(start: impl FnOnce(&Bus) -> Daemon) -> World {
        let bus = Bus::start();
        let daemon = start(&bus);
        let pam = ServiceDir::new();
        pam.mfa(SERVICE, bus.address(), OPTIONS);
        World { pam, daemon, bus }
    }

    pub fn address(&self) -> &str {
        self.bus.address()
    }

    /// A login to [`SERVICE`] through real libpam.
    pub fn login(&self, user: &TestUser, answers: &[&str]) -> PamResult {
        Login::new(SERVICE, &user.name, answers).run(&self.pam)
    }

    /// A login prepared but not run (set `sync`, items, …).
    pub fn prepare(&self, user: &TestUser, answers: &[&str]) -> Login {
        Login::new(SERVICE, &user.name, answers)
    }

    pub fn enrol_totp(&self, user: &TestUser, totp: &Totp) -> Enrolled {
        probe::enrol_totp(self.address(), user, totp)
    }

    pub fn enrol_hotp(&self, user: &TestUser, digits: u32) -> Enrolled {
        probe::enrol_hotp(self.address(), user, digits)
    }

    /// `mfactl ARGS` run as `user` against this world's bus.
    pub fn mfactl(&self, user: &TestUser, args: &[&str]) -> Finished {
        self.mfactl_with_input(user, args, "")
    }

    /// [`World::mfactl`] with `input` on its stdin (answers to its prompts).
    pub fn mfactl_with_input(&self, user: &TestUser, args: &[&str], input: &str) -> Finished {
        let mut cmd = command_as(user, &crate::bins::mfactl());
        cmd.arg("--bus-address").arg(self.address()).args(args);
        run("mfactl", &mut cmd, input, crate::QUICK)
    }

    /// A fresh batch of `user`'s recovery codes, made with `mfactl`.
    pub fn recovery_codes(&self, user: &TestUser) -> Vec<String> {
        let out = self.mfactl(user, &["--json", "recovery-codes"]);
        out.assert_success("mfactl recovery-codes");
        let doc: serde_json::Value = serde_json::from_str(out.stdout.trim()).expect("JSON");
        doc["recovery_codes"]
            .as_array()
            .expect("codes")
            .iter()
            .map(|c| c.as_str().expect("string").to_string())
            .collect()
    }

    /// `mfactl --json policy explain` as root: what a login of `user` to
    /// `service` from `from` (after `ssh_key`, if any) would meet.
    pub fn explain(
        &self,
        user: &str,
        service: &str,
        from: &str,
        ssh_key: Option<&str>,
    ) -> serde_json::Value {
        let mut args = vec![
            "--json",
            "policy",
            "explain",
            user,
            "--service",
            service,
            "--from",
            from,
        ];
        if let Some(key) = ssh_key {
            args.extend(["--ssh-key", key]);
        }
        let out = self.mfactl(&crate::users::root(), &args);
        assert_eq!(out.code(), Some(0), "{}", out.describe());
        serde_json::from_str(&out.stdout)
            .unwrap_or_else(|e| panic!("explain is not JSON ({e}): {}", out.describe()))
    }
}
