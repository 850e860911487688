//! A private, system-bus-like `dbus-daemon` per test.
//!
//! Its configuration mirrors Debian's `/usr/share/dbus-1/system.conf` (type
//! system, EXTERNAL auth only, a unix socket, deny by default) and includes
//! the bus policy file the package ships, so the tests exercise the real
//! policy: who may own `org.pam_mfa.Mfad1` and who may call what. It runs
//! under `nss_wrapper` with the test users' passwd/group files.

use crate::process::{signal, wait_timeout};
use crate::users;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use tempfile::TempDir;

/// Which policy the bus enforces.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Policy {
    /// Debian's system bus defaults plus the shipped policy file.
    Shipped,
    /// Everyone may own and call anything. Only for tests that check that
    /// mfad itself refuses callers the shipped policy would have stopped.
    Permissive,
}

pub struct Bus {
    dir: TempDir,
    child: Child,
    address: String,
}

impl Bus {
    /// A bus enforcing the shipped policy.
    pub fn start() -> Bus {
        Bus::start_with(Policy::Shipped)
    }

    pub fn start_with(policy: Policy) -> Bus {
        let dir = crate::shared_tempdir("mfa-bus-");
        let socket = dir.path().join("bus");
        let config = dir.path().join("bus.conf");
        std::fs::write(&config, config_xml(&socket, policy)).expect("cannot write bus config");
        let stderr = std::fs::File::create(dir.path().join("dbus-daemon.log"))
            .expect("cannot create the bus log");
        // dbus-daemon drops connections from uids it cannot resolve (it needs
        // their groups for policy), so it sees the test users too.
        let (passwd, group) = users::write_nss_files(dir.path());
        let mut cmd = Command::new("dbus-daemon");
        users::use_nss_wrapper(&mut cmd, &passwd, &group);
        crate::process::die_with_parent(&mut cmd);
        let mut child = cmd
            .arg(format!("--config-file={}", config.display()))
            .arg("--print-address")
            .arg("--nofork")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start dbus-daemon (apt-get install dbus): {e}"));
        // dbus-daemon prints its address once it listens, or exits.
        let stdout = child.stdout.take().expect("piped stdout");
        let mut line = String::new();
        let read = BufReader::new(stdout).read_line(&mut line);
        if read.is_err() || line.trim().is_empty() {
            let _ = child.kill();
            let _ = child.wait();
            let log =
                std::fs::read_to_string(dir.path().join("dbus-daemon.log")).unwrap_or_default();
            panic!("dbus-daemon did not start:\n{log}");
        }
        let printed = line.trim();
        assert!(
            printed.contains(&socket.display().to_string()),
            "unexpected address {printed}"
        );
        Bus {
            address: format!("unix:path={}", socket.display()),
            dir,
            child,
        }
    }

    /// `unix:path=…`, as a PAM line or `--bus-address` takes it.
    pub fn address(&self) -> &str {
        &self.address
    }

    /// The passwd/group files of the test users (see [`users`]); mfad on
    /// this bus resolves users with them too.
    pub fn nss_files(&self) -> (PathBuf, PathBuf) {
        (
            self.dir.path().join("passwd"),
            self.dir.path().join("group"),
        )
    }

    pub fn socket(&self) -> PathBuf {
        self.dir.path().join("bus")
    }

    /// Where mfad on this bus serves its login socket (see
    /// [`login_socket_for`]).
    pub fn login_socket(&self) -> PathBuf {
        login_socket_for(&self.address)
    }

    /// A connection as the test process (root).
    pub fn connect(&self) -> zbus::Connection {
        let address = self.address.clone();
        crate::block_on(async move {
            zbus::connection::Builder::address(address.as_str())?
                .build()
                .await
        })
        .unwrap_or_else(|e| panic!("cannot connect to {}: {e}", self.address))
    }

    /// What dbus-daemon logged (policy rejections show up here).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("dbus-daemon.log")).unwrap_or_default()
    }
}

/// The login socket of the mfad on the bus at `address`: `mfa/login.sock`
/// beside the bus socket, as `/run/mfa/login.sock` is beside
/// `/run/dbus`. mfad makes the directory; a PAM line for this bus names the
/// socket (see [`crate::pam::mfa_line`]).
pub fn login_socket_for(address: &str) -> PathBuf {
    let bus = Path::new(address.strip_prefix("unix:path=").unwrap_or(address));
    bus.parent()
        .unwrap_or(Path::new("/"))
        .join("mfa")
        .join("login.sock")
}

impl Drop for Bus {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            signal(&self.child, libc::SIGKILL);
            let _ = wait_timeout(&mut self.child, crate::QUICK);
        }
    }
}

fn config_xml(socket: &Path, policy: Policy) -> String {
    let policy_xml = match policy {
        Policy::Shipped => format!(
            r#"  <policy context="default">
    <allow user="*"/>
    <deny own="*"/>
    <deny send_type="method_call"/>
    <allow send_type="signal"/>
    <allow send_requested_reply="true" send_type="method_return"/>
    <allow send_requested_reply="true" send_type="error"/>
    <allow receive_type="method_call"/>
    <allow receive_type="method_return"/>
    <allow receive_type="error"/>
    <allow receive_type="signal"/>
    <allow send_destination="org.freedesktop.DBus"
           send_interface="org.freedesktop.DBus"/>
    <allow send_destination="org.freedesktop.DBus"
           send_interface="org.freedesktop.DBus.Introspectable"/>
    <allow send_destination="org.freedesktop.DBus"
           send_interface="org.freedesktop.DBus.Properties"/>
    <deny send_destination="org.freedesktop.DBus"
          send_interface="org.freedesktop.DBus"
          send_member="UpdateActivationEnvironment"/>
  </policy>
  <!-- As in system.conf: root may monitor the bus. -->
  <policy user="root">
    <allow send_destination="org.freedesktop.DBus"
           send_interface="org.freedesktop.DBus.Monitoring"/>
  </policy>
  <include>{}</include>"#,
            crate::shipped_bus_policy().display()
        ),
        Policy::Permissive => r#"  <policy context="default">
    <allow user="*"/>
    <allow own="*"/>
    <allow send_type="method_call"/>
    <allow send_type="signal"/>
    <allow send_requested_reply="true" send_type="method_return"/>
    <allow send_requested_reply="true" send_type="error"/>
    <allow receive_type="method_call"/>
    <allow receive_type="method_return"/>
    <allow receive_type="error"/>
    <allow receive_type="signal"/>
  </policy>"#
            .to_string(),
    };
    format!(
        r#"<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>system</type>
  <listen>unix:path={}</listen>
  <auth>EXTERNAL</auth>
{policy_xml}
</busconfig>
"#,
        socket.display()
    )
}
