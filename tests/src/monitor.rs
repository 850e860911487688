//! `dbus-monitor` (package dbus) on a test [`Bus`]: what clients really
//! sent to mfad, seen by a stock tool outside both, for facts mfad does not
//! log (such as `LoginRequest.auth_info`).
//!
//! The test process is root, whom dbus-daemon lets become a monitor.

use crate::bus::Bus;
use crate::process::die_with_parent;
use crate::ssh::Output;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

/// Match rule for the calls that start a login (they carry the
/// `LoginRequest`).
pub const LOGIN_START: &str = "type='method_call',interface='org.pam_mfa.Login1',member='Start'";

pub struct BusMonitor {
    child: Child,
    output: Arc<Output>,
}

impl BusMonitor {
    /// Start monitoring messages matching `rule`; returns once the bus has
    /// made it a monitor, so nothing sent afterwards is missed.
    pub fn start(bus: &Bus, rule: &str) -> BusMonitor {
        let mut cmd = Command::new("dbus-monitor");
        cmd.arg("--address")
            .arg(bus.address())
            .arg(rule)
            .env_clear()
            .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null());
        die_with_parent(&mut cmd);
        let mut child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start dbus-monitor (apt-get install dbus): {e}"));
        let stdout = child.stdout.take().expect("piped stdout");
        let output = Output::collect(stdout);
        // BecomeMonitor releases the connection's unique name: the NameLost
        // signal it gets means the bus is forwarding to it from now on.
        if let Err(why) = output.wait_for(0, &["member=NameLost"], crate::QUICK) {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "dbus-monitor did not become a monitor ({why:?}):\n{}\n--- bus log ---\n{}",
                output.text(),
                bus.log()
            );
        }
        BusMonitor { child, output }
    }

    /// Everything dbus-monitor printed so far.
    pub fn text(&self) -> String {
        self.output.text()
    }

    /// Wait until the output contains `needle`; returns all of it. Panics
    /// after `limit`.
    #[track_caller]
    pub fn wait_for(&self, needle: &str, limit: Duration) -> String {
        if let Err(why) = self.output.wait_for(0, &[needle], limit) {
            panic!(
                "dbus-monitor saw no {needle:?} ({why:?}):\n{}",
                self.output.text()
            );
        }
        self.output.text()
    }
}

impl Drop for BusMonitor {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
