//! A real NTP server on loopback that serves a shifted time: chronyd
//! (Debian package chrony) with `-x`, so it never touches the system clock,
//! as a local stratum-8 source whose clock is set by `chronyc settime`. The
//! time it serves is read back here with a plain SNTP request, so tests
//! make their codes for the server's time with oathtool, not from what the
//! shift was meant to be.

use crate::process::die_with_parent;
use std::net::UdpSocket;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Seconds from 1900 (NTP) to 1970 (Unix).
const NTP_TO_UNIX: u64 = 2_208_988_800;

pub struct Chrony {
    _dir: tempfile::TempDir,
    socket: PathBuf,
    child: Child,
    pub port: u16,
}

impl Chrony {
    /// chronyd on 127.0.0.1, serving the system time moved by `shift`
    /// seconds; returns once it serves that time.
    pub fn start(shift: i64) -> Chrony {
        let dir = tempfile::tempdir().expect("tmp");
        // chronyd drops to _chrony and wants its directory private.
        // SAFETY: getpwnam with a valid C string; the entry is read at once.
        let (uid, gid) = unsafe {
            let entry = libc::getpwnam(c"_chrony".as_ptr());
            assert!(
                !entry.is_null(),
                "no user _chrony: apt-get install chrony (scripts/test.sh does)"
            );
            ((*entry).pw_uid, (*entry).pw_gid)
        };
        std::os::unix::fs::chown(dir.path(), Some(uid), Some(gid)).expect("chown");
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o700))
                .expect("chmod");
        }
        let port = free_udp_port();
        let socket = dir.path().join("chronyd.sock");
        let conf = dir.path().join("chrony.conf");
        std::fs::write(
            &conf,
            format!(
                "port {port}\nbindaddress 127.0.0.1\nallow 127.0.0.1\nlocal stratum 8\nmanual\n\
                 bindcmdaddress {}\ncmdport 0\npidfile {}\ndriftfile {}\n",
                socket.display(),
                dir.path().join("chronyd.pid").display(),
                dir.path().join("drift").display()
            ),
        )
        .expect("chrony.conf");
        let log = dir.path().join("chronyd.log");
        let mut cmd = Command::new("chronyd");
        cmd.args(["-x", "-d", "-f"])
            .arg(&conf)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).expect("chronyd.log"));
        die_with_parent(&mut cmd);
        let child = cmd.spawn().expect("chronyd (apt-get install chrony)");
        let server = Chrony {
            _dir: dir,
            socket,
            child,
            port,
        };
        let target = unix_now() as i64 + shift;
        let when = format!("@{target}");
        let date = Command::new("date")
            .args(["-u", "-d", &when, "+%F %T"])
            .output()
            .expect("date");
        let date = String::from_utf8_lossy(&date.stdout).trim().to_string();
        let deadline = Instant::now() + crate::QUICK;
        loop {
            let set = Command::new("chronyc")
                .arg("-h")
                .arg(&server.socket)
                .args(["settime", &date])
                .output()
                .expect("chronyc");
            if set.status.success() && String::from_utf8_lossy(&set.stdout).contains("200 OK") {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "chronyd never took settime: {set:?}\n{}",
                std::fs::read_to_string(&log).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        loop {
            if let Some(served) = server.query(Duration::from_millis(200)) {
                if (served as i64 - unix_now() as i64 - shift).abs() <= 5 {
                    return server;
                }
            }
            assert!(
                Instant::now() < deadline,
                "chronyd never served the shifted time"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// `127.0.0.1:PORT`, as mfad.toml names it.
    pub fn address(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// The Unix time the server serves now, by a plain SNTP request.
    pub fn server_time(&self) -> u64 {
        self.query(Duration::from_secs(2))
            .expect("chronyd does not answer")
    }

    fn query(&self, limit: Duration) -> Option<u64> {
        let socket = UdpSocket::bind("127.0.0.1:0").ok()?;
        socket.set_read_timeout(Some(limit)).ok()?;
        let mut request = [0u8; 48];
        request[0] = 0x23; // no leap warning, version 4, client
        socket.send_to(&request, ("127.0.0.1", self.port)).ok()?;
        let mut reply = [0u8; 48];
        let (n, _) = socket.recv_from(&mut reply).ok()?;
        if n < 48 || reply[1] == 0 || reply[1] >= 16 {
            return None;
        }
        let seconds = u32::from_be_bytes([reply[40], reply[41], reply[42], reply[43]]);
        Some(u64::from(seconds).saturating_sub(NTP_TO_UNIX))
    }

    /// Freeze the server (SIGSTOP): requests go unanswered.
    pub fn freeze(&self) {
        crate::process::signal(&self.child, libc::SIGSTOP);
    }
}

impl Drop for Chrony {
    fn drop(&mut self) {
        crate::process::signal(&self.child, libc::SIGCONT);
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A UDP port nothing listens on at the moment.
pub fn free_udp_port() -> u16 {
    UdpSocket::bind("127.0.0.1:0")
        .and_then(|s| s.local_addr())
        .map(|a| a.port())
        .expect("a free UDP port")
}

// The harness compares with mfad's real clock, so it reads the real one.
#[allow(clippy::disallowed_methods)]
fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}
