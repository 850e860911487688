//! A login leaves the host process (sshd, sudo, su) with the threads and file
//! descriptors it had: the client starts no thread, and its socket is closed
//! when the call returns. One test in this binary, so no other test's
//! threads are counted.

use mfa_dbus::{Answer, ClientError, Conversation, ConversationAborted, LoginRequest};
use pam_mfa::daemon::{LoginError, Mfad};
use pam_mfa::options::{Options, Transport};
use pam_mfa::transport::DaemonLink;
use std::collections::BTreeSet;
use std::os::unix::net::UnixListener;
use std::path::Path;
use std::time::Duration;

struct NoUser;

impl Conversation for NoUser {
    fn info(&mut self, _: &str) -> Result<(), ConversationAborted> {
        panic!("mfad is not there to send a step")
    }
    fn error(&mut self, _: &str) -> Result<(), ConversationAborted> {
        panic!("mfad is not there to send a step")
    }
    fn prompt(&mut self, _: &str, _: bool) -> Result<Answer, ConversationAborted> {
        panic!("mfad is not there to send a step")
    }
}

fn threads() -> usize {
    std::fs::read_dir("/proc/self/task")
        .expect("procfs")
        .count()
}

fn fds() -> BTreeSet<String> {
    std::fs::read_dir("/proc/self/fd")
        .expect("procfs")
        .filter_map(|entry| {
            entry
                .ok()
                .map(|e| e.file_name().to_string_lossy().into_owned())
        })
        .collect()
}

/// Whether descriptor `fd` is closed on exec (never reaches a user's shell).
fn cloexec(fd: &str) -> bool {
    let info = std::fs::read_to_string(format!("/proc/self/fdinfo/{fd}")).unwrap_or_default();
    let flags = info
        .lines()
        .find_map(|l| l.strip_prefix("flags:"))
        .map(str::trim);
    flags
        .and_then(|f| u32::from_str_radix(f, 8).ok())
        .is_some_and(|f| f & 0o2000000 != 0)
}

/// A login through `socket`, taken for a bus or for mfad's login socket.
fn login(socket: &Path, transport: Transport) -> Result<mfa_dbus::Outcome, LoginError> {
    let options = Options {
        bus: format!("unix:path={}", socket.display()),
        socket: socket.display().to_string(),
        transport,
        timeout: Duration::from_secs(1),
        ..Options::default()
    };
    let request = LoginRequest {
        user: "alice".into(),
        service: "sshd".into(),
        ..Default::default()
    };
    DaemonLink::new(&options).login(&request, &mut NoUser)
}

fn timed_out_and_unreachable(silent: &Path, missing: &Path) {
    for transport in [Transport::Bus, Transport::Socket] {
        match login(silent, transport) {
            Err(LoginError(e)) if matches!(*e, ClientError::Timeout(_)) => {}
            other => panic!("{transport:?}: expected a timeout, got {other:?}"),
        }
        match login(missing, transport) {
            Err(LoginError(e)) if matches!(*e, ClientError::Unreachable { .. }) => {}
            other => panic!("{transport:?}: expected an unreachable mfad, got {other:?}"),
        }
    }
}

#[test]
fn no_thread_or_descriptor_left_after_failed_logins() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    // A socket that accepts connections (into its backlog) but never
    // answers: the module connects, sends Start and times out.
    let silent = dir.path().join("silent.sock");
    let _listener = UnixListener::bind(&silent).expect("bind a unix socket");
    // Root's alone, so the module takes it for a login socket too (it
    // refuses one that others may connect to).
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&silent, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    let missing = dir.path().join("missing.sock");

    let threads_before = threads();
    let fds_before = fds();
    timed_out_and_unreachable(&silent, &missing);
    assert_eq!(threads(), threads_before, "threads after the first logins");

    // tokio's signal driver (pulled in by zbus's tokio feature) opens one
    // process-wide socket pair the first time a runtime is built, and keeps
    // it; it is close-on-exec. Nothing else may stay open.
    let fds_after_first = fds();
    let added: Vec<&String> = fds_after_first.difference(&fds_before).collect();
    assert!(
        added.len() <= 2,
        "descriptors left by the first logins: {added:?}"
    );
    assert!(
        added.iter().all(|fd| cloexec(fd)),
        "descriptors not close-on-exec: {added:?}"
    );

    for _ in 0..3 {
        timed_out_and_unreachable(&silent, &missing);
        assert_eq!(threads(), threads_before, "threads after more logins");
        assert_eq!(fds(), fds_after_first, "descriptors after more logins");
    }
}
