//! The login socket (issue 12): root's PAM clients reach mfad peer to peer
//! on a root-only Unix socket, with no dbus-daemon in the login path, and
//! trust on both ends from the kernel. Impostors are real processes (a
//! Python listener run as nobody) that record every byte they are sent;
//! socket activation is systemd's own `systemd-socket-activate`. Codes
//! from oathtool.

use mfa_tests::bus::Bus;
use mfa_tests::daemon::DaemonConfig;
use mfa_tests::monitor::{BusMonitor, LOGIN_START};
use mfa_tests::pam::{self, Login, ServiceDir, PAM_AUTH_ERR, PAM_SUCCESS};
use mfa_tests::process::{run, Running};
use mfa_tests::users::{self, TestUser};
use mfa_tests::{World, QUICK};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

/// `service` in the world's PAM directory: bus at `bus`, socket at
/// `socket`, then pam_permit.
fn service(world_pam: &ServiceDir, name: &str, bus: &str, socket: &Path, options: &str) {
    world_pam.write(
        name,
        &[
            pam::mfa_line_with("required", bus, socket, options),
            "auth required pam_permit.so".into(),
        ],
    );
}

#[test]
fn a_root_login_runs_on_the_socket_and_never_crosses_the_bus() {
    let world = World::start();
    let alice = users::named("alice");
    let token = world.enrol_hotp(&alice, 6);
    let first = token.next_counter();
    let monitor = BusMonitor::start(&world.bus, LOGIN_START);

    // The usual line (bus and socket both named): root takes the socket.
    let done = world.login(&alice, &[&token.hotp_code(first)]);
    done.assert_rc(PAM_SUCCESS);
    // With the bus unreachable the login works all the same.
    service(
        &world.pam,
        "nobus",
        "unix:path=/nonexistent/bus",
        &world.bus.login_socket(),
        "timeout=10",
    );
    Login::new("nobus", "alice", &[&token.hotp_code(first + 1)])
        .run(&world.pam)
        .assert_rc(PAM_SUCCESS);
    // The monitor works: a login told to take the bus shows up on it …
    service(
        &world.pam,
        "viabus",
        world.address(),
        &world.bus.login_socket(),
        "transport=bus timeout=10",
    );
    Login::new("viabus", "alice", &[&token.hotp_code(first + 2)])
        .run(&world.pam)
        .assert_rc(PAM_SUCCESS);
    let seen = monitor.wait_for("string \"viabus\"", QUICK);
    // … and it is the only one the bus ever carried.
    assert_eq!(seen.matches("member=Start").count(), 1, "{seen}");
    assert!(!seen.contains("\"nobus\""), "{seen}");
    let log = world.daemon.log();
    assert_eq!(
        log.matches("login allow user=alice").count(),
        3,
        "three logins decided:\n{log}"
    );
    assert!(log.contains("logins on"), "mfad names its socket:\n{log}");
}

/// A listener run as `user` at `path` (its directory must be writable by
/// `user`) that writes one line per connection to `record`: how many
/// bytes it was sent. A connection that sends exactly `END` is recorded
/// as `END`, so a test knows every earlier connection is recorded.
struct Impostor {
    running: Running,
    path: PathBuf,
    record: PathBuf,
}

const IMPOSTOR: &str = r#"
import socket, sys
path, record = sys.argv[1], sys.argv[2]
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.bind(path)
s.listen(16)
print("ready", flush=True)
while True:
    c, _ = s.accept()
    c.settimeout(20)
    data = b""
    try:
        while True:
            chunk = c.recv(4096)
            if not chunk:
                break
            data += chunk
            if data == b"END":
                break
    except OSError:
        pass
    with open(record, "a") as f:
        f.write("END\n" if data == b"END" else "bytes=%d\n" % len(data))
    c.close()
"#;

impl Impostor {
    fn start(user: &TestUser, path: &Path, record: &Path) -> Impostor {
        let mut cmd = users::command_as(user, Path::new("/usr/bin/python3"));
        cmd.arg("-c").arg(IMPOSTOR).arg(path).arg(record);
        let mut running = Running::spawn("impostor", &mut cmd);
        assert_eq!(running.next_line(QUICK).as_deref(), Some("ready"));
        Impostor {
            running,
            path: path.to_path_buf(),
            record: record.to_path_buf(),
        }
    }

    /// Every connection so far, once the listener has recorded them all.
    fn connections(&self) -> Vec<String> {
        use std::io::Write;
        let mut end = std::os::unix::net::UnixStream::connect(&self.path).expect("connect");
        end.write_all(b"END").expect("write");
        drop(end);
        let deadline = std::time::Instant::now() + QUICK;
        loop {
            let text = std::fs::read_to_string(&self.record).unwrap_or_default();
            if let Some(before) = text.strip_suffix("END\n") {
                std::fs::write(&self.record, "").expect("reset the record");
                return before.lines().map(str::to_string).collect();
            }
            assert!(
                std::time::Instant::now() < deadline,
                "the impostor recorded no END: {text:?}"
            );
            std::thread::yield_now();
        }
    }
}

impl Drop for Impostor {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .arg(self.running.id().to_string())
            .status();
    }
}

fn chown(path: &Path, user: &TestUser) {
    let c = std::ffi::CString::new(path.to_str().expect("utf8")).expect("path");
    // SAFETY: a valid path; chown changes only our own test file.
    assert_eq!(unsafe { libc::chown(c.as_ptr(), user.uid, user.gid) }, 0);
}

/// A login for alice through `socket`, even with failmode=open: refused
/// before anything is shown.
fn refused_at(pam: &ServiceDir, socket: &Path) {
    for (name, options) in [
        ("closed", "transport=socket timeout=3"),
        ("open", "transport=socket timeout=3 failmode=open"),
    ] {
        service(pam, name, "unix:path=/nonexistent/bus", socket, options);
        let result = Login::new(name, "alice", &["123456"]).run(pam);
        result.assert_rc(PAM_AUTH_ERR);
        assert!(result.messages.is_empty(), "shown to the user: {result:#?}");
    }
}

#[test]
fn the_module_sends_nothing_to_a_socket_that_is_not_roots_alone() {
    let nobody = users::nobody();
    let pam = ServiceDir::new();
    // nobody's own directory, nobody's own socket.
    let theirs = mfa_tests::shared_tempdir("impostor-");
    chown(theirs.path(), &nobody);
    let record = theirs.path().join("record");
    std::fs::write(&record, "").expect("record");
    chown(&record, &nobody);
    let impostor = Impostor::start(&nobody, &theirs.path().join("login.sock"), &record);
    refused_at(&pam, &impostor.path);
    assert_eq!(impostor.connections(), Vec::<String>::new(), "connected to");

    // The same socket moved into root's directory and given to root, mode
    // 0600: the path looks right, but the kernel says who listens.
    let ours = mfa_tests::shared_tempdir("rootdir-");
    let moved = ours.path().join("login.sock");
    std::fs::rename(&impostor.path, &moved).expect("move the socket");
    chown(&moved, &users::root());
    std::fs::set_permissions(&moved, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    refused_at(&pam, &moved);
    let mut impostor = impostor;
    impostor.path = moved.clone();
    let seen = impostor.connections();
    assert_eq!(seen.len(), 2, "the module connects, then looks: {seen:?}");
    assert!(
        seen.iter().all(|line| line == "bytes=0"),
        "sent to an impostor: {seen:?}"
    );

    // Root's socket that anyone may connect to, in root's directory.
    std::fs::set_permissions(&moved, std::fs::Permissions::from_mode(0o666)).expect("chmod");
    refused_at(&pam, &moved);
    assert_eq!(impostor.connections(), Vec::<String>::new());
}

#[test]
fn mfad_hangs_up_on_a_client_that_is_not_root() {
    let world = World::start();
    let socket = world.bus.login_socket();
    let mode = std::fs::metadata(&socket)
        .expect("the socket")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600, "mfad makes it root's alone");
    assert_eq!(
        std::fs::metadata(socket.parent().expect("dir"))
            .expect("its directory")
            .permissions()
            .mode()
            & 0o777,
        0o755
    );
    // Opened to everyone by mistake: mfad still talks to root alone.
    std::fs::set_permissions(&socket, std::fs::Permissions::from_mode(0o666)).expect("chmod");
    let probe = r#"
import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.connect(sys.argv[1])
try:
    s.sendall(b"\0AUTH EXTERNAL 3635353334\r\n")
except OSError:
    pass
s.settimeout(20)
try:
    got = s.recv(4096)
except OSError:
    got = b""
print("got=%d" % len(got))
"#;
    let nobody = users::nobody();
    let mut cmd = users::command_as(&nobody, Path::new("/usr/bin/python3"));
    cmd.arg("-c").arg(probe).arg(&socket);
    let out = run("probe as nobody", &mut cmd, "", QUICK);
    out.assert_success("the probe");
    assert_eq!(out.stdout.trim(), "got=0", "mfad answered nobody");
    let log = world.daemon.log();
    assert!(
        log.contains(&format!(
            "a client running as uid {} connected; only root may",
            nobody.uid
        )),
        "{log}"
    );
    // Root's logins go on.
    std::fs::set_permissions(&socket, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    let alice = users::named("alice");
    let token = world.enrol_hotp(&alice, 6);
    world
        .login(&alice, &[&token.hotp_code(token.next_counter())])
        .assert_rc(PAM_SUCCESS);
}

#[test]
fn systemd_socket_activation_starts_mfad_on_the_first_login() {
    let bus = Bus::start();
    let dir = mfa_tests::shared_tempdir("activated-");
    let socket = dir.path().join("run").join("login.sock");
    std::fs::create_dir(socket.parent().expect("dir")).expect("mkdir");
    let config = DaemonConfig {
        // Not enrolled and not required: mfad answers "no factor needed".
        require: "no".into(),
        login_socket: Some(socket.clone()),
        ..DaemonConfig::default()
    };
    let state = dir.path().join("state");
    let config_path = dir.path().join("mfad.toml");
    std::fs::write(&config_path, config.to_toml(&state)).expect("config");
    // systemd-socket-activate passes no environment but what -E names.
    let (passwd, group) = bus.nss_files();
    let mut wrapped = Command::new("true");
    users::use_nss_wrapper(&mut wrapped, &passwd, &group);
    let mut cmd = Command::new("systemd-socket-activate");
    cmd.arg("-l").arg(&socket);
    for (key, value) in wrapped.get_envs() {
        if let Some(value) = value {
            cmd.arg("-E").arg(format!(
                "{}={}",
                key.to_string_lossy(),
                value.to_string_lossy()
            ));
        }
    }
    cmd.arg(mfa_tests::bins::mfad())
        .arg("--config")
        .arg(&config_path)
        .arg("--bus-address")
        .arg(bus.address())
        .arg("--log-stderr");
    // systemd's SocketMode=0600, as the shipped mfad.socket sets it.
    use std::os::unix::process::CommandExt;
    // SAFETY: umask is async-signal-safe and touches only the child.
    unsafe {
        cmd.pre_exec(|| {
            libc::umask(0o077);
            Ok(())
        });
    }
    let mut activator = Running::spawn("systemd-socket-activate", &mut cmd);
    // It listens first and starts mfad on the first connection.
    let deadline = std::time::Instant::now() + QUICK;
    while !socket.exists() {
        assert!(std::time::Instant::now() < deadline, "no socket");
        std::thread::yield_now();
    }
    let pam = ServiceDir::new();
    service(
        &pam,
        "svc",
        bus.address(),
        &socket,
        "skip=success timeout=10",
    );
    let result = Login::new("svc", "alice", &[]).run(&pam);
    result.assert_rc(PAM_SUCCESS);
    assert!(result.messages.is_empty(), "{result:#?}");
    // systemd-socket-activate became mfad (same pid); let it finish coming
    // up (it takes the bus name last) before it is stopped.
    mfa_tests::daemon::wait_for_owner(bus.address(), activator.id(), None, QUICK)
        .expect("the activated mfad owns its name");
    let _ = Command::new("kill")
        .arg(activator.id().to_string())
        .status();
    let finished = {
        activator.close_stdin();
        activator.finish(QUICK)
    };
    assert!(
        finished.stderr.contains(&format!(
            "logins on the socket systemd passed ({})",
            socket.display()
        )),
        "{}",
        finished.describe()
    );
    assert!(
        finished
            .stderr
            .contains("login allow user=alice service=svc reason=not-required"),
        "{}",
        finished.describe()
    );
}
