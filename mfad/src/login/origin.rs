//! Whether a login happens at this machine or for someone elsewhere, as far
//! as mfad can tell: factor kinds that need the user here (a security key
//! plugged into this machine) are offered only to local logins.
//!
//! Remote: sshd's own logins (its user is wherever their SSH client runs),
//! a login with a remote address (`PAM_RHOST` other than `localhost`), and
//! a PAM client that runs under a remote-login server — `sudo` in an SSH
//! session has sshd among its ancestors. The process tree is read from
//! `/proc`. Fail closed: a login whose client process is not known (no
//! pid from the kernel or the bus, or `policy explain`, which describes a
//! login and has no process) or whose ancestry cannot be read is taken as
//! not local, and says so.

use mfa_dbus::LoginRequest;
use std::path::Path;

/// Why a login with no known client process is not local.
pub const NO_PROCESS: &str =
    "the login's client process is not known, so it cannot be told that the login runs at this machine";

/// Why a login that is local counts as local (for `policy explain`).
pub const LOCAL: &str = "the login runs at this machine: no remote host, not sshd, and no remote-login server (sshd, mosh-server, telnetd) among the PAM client's processes";

/// Process names of servers that let users in from elsewhere.
const REMOTE_SERVERS: &[&str] = &[
    "sshd",
    "sshd-session",
    "mosh-server",
    "in.telnetd",
    "telnetd",
];

/// Why `request`, from the PAM client process `pid`, counts as not local;
/// `None` only when it is known to be at this machine (a known pid whose
/// whole ancestry was read and holds no remote-login server).
pub fn remote_reason(request: &LoginRequest, pid: Option<u32>) -> Option<String> {
    if request.service == "sshd" {
        return Some("an SSH login: the user is wherever their SSH client runs".into());
    }
    match request.rhost.as_str() {
        "" | "localhost" => {}
        rhost => return Some(format!("the login comes from {rhost}")),
    }
    let Some(pid) = pid else {
        return Some(NO_PROCESS.into());
    };
    match remote_ancestor(Path::new("/proc"), pid) {
        Ok(None) => None,
        Ok(Some((name, at))) => Some(format!(
            "the login runs under {name} (process {at}): its user may be elsewhere"
        )),
        Err(why) => Some(format!("where the login runs cannot be told ({why})")),
    }
}

/// The first ancestor of `pid` (itself included) that is a remote-login
/// server: its name and pid.
fn remote_ancestor(proc: &Path, pid: u32) -> Result<Option<(String, u32)>, String> {
    let mut at = pid;
    // A process tree is never this deep; a loop in a forged /proc would be.
    for _ in 0..128 {
        if at <= 1 {
            return Ok(None);
        }
        let stat = std::fs::read_to_string(proc.join(at.to_string()).join("stat"))
            .map_err(|e| format!("process {at}: {e}"))?;
        let (name, parent) =
            parse_stat(&stat).ok_or_else(|| format!("process {at}: unreadable stat"))?;
        if REMOTE_SERVERS.contains(&name) {
            return Ok(Some((name.to_string(), at)));
        }
        at = parent;
    }
    Err("the process tree is too deep".into())
}

/// The name and parent pid from `/proc/PID/stat`: `pid (name) state ppid …`
/// (the name may hold spaces and parentheses: it ends at the last `)`).
fn parse_stat(stat: &str) -> Option<(&str, u32)> {
    let open = stat.find('(')?;
    let close = stat.rfind(')')?;
    let name = stat.get(open + 1..close)?;
    let mut rest = stat.get(close + 1..)?.split_whitespace();
    let _state = rest.next()?;
    let parent = rest.next()?.parse().ok()?;
    Some((name, parent))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(service: &str, rhost: &str) -> LoginRequest {
        LoginRequest {
            user: "alice".into(),
            service: service.into(),
            rhost: rhost.into(),
            ..Default::default()
        }
    }

    #[test]
    fn sshd_and_remote_addresses_are_remote() {
        assert!(remote_reason(&request("sshd", ""), None).is_some());
        assert!(remote_reason(&request("login", "192.0.2.1"), None).is_some());
    }

    #[test]
    fn a_login_whose_process_is_unknown_or_unreadable_is_not_local() {
        // No pid: never local, whatever the service and host say.
        assert_eq!(
            remote_reason(&request("login", "localhost"), None).as_deref(),
            Some(NO_PROCESS)
        );
        assert_eq!(
            remote_reason(&request("sudo", ""), None).as_deref(),
            Some(NO_PROCESS)
        );
        // A pid that names no process (none is ever this high: pid_max is
        // at most 2^22).
        let gone = remote_reason(&request("sudo", ""), Some(u32::MAX - 1)).expect("not local");
        assert!(gone.contains("cannot be told"), "{gone}");
        // This test's own process: readable, no sshd above it here... unless
        // the suite runs under sshd, which is then what it says.
        match remote_reason(&request("sudo", ""), Some(std::process::id())) {
            None => {}
            Some(why) => assert!(why.contains("runs under"), "{why}"),
        }
    }

    #[test]
    fn an_unreadable_stat_in_the_tree_is_not_local() {
        let dir = tempfile::tempdir().expect("tmp");
        let d = dir.path().join("300");
        std::fs::create_dir_all(&d).expect("dir");
        std::fs::write(d.join("stat"), "300 (sudo) S 200 0 0").expect("stat");
        // 200 is missing: the chain breaks before reaching init.
        let broken = remote_ancestor(dir.path(), 300).expect_err("not local");
        assert!(broken.contains("process 200"), "{broken}");
        std::fs::create_dir_all(dir.path().join("200")).expect("dir");
        std::fs::write(dir.path().join("200/stat"), "garbage").expect("stat");
        let garbled = remote_ancestor(dir.path(), 300).expect_err("not local");
        assert!(garbled.contains("unreadable stat"), "{garbled}");
    }

    #[test]
    fn stat_lines_with_odd_names_parse() {
        assert_eq!(parse_stat("42 (sshd) S 7 42 42 0"), Some(("sshd", 7)));
        assert_eq!(parse_stat("9 (a (b) c) R 1 9"), Some(("a (b) c", 1)));
        assert_eq!(parse_stat("garbage"), None);
    }

    #[test]
    fn an_ancestor_that_serves_remote_logins_makes_the_login_remote() {
        let dir = tempfile::tempdir().expect("tmp");
        let process = |pid: u32, name: &str, parent: u32| {
            let d = dir.path().join(pid.to_string());
            std::fs::create_dir_all(&d).expect("dir");
            std::fs::write(d.join("stat"), format!("{pid} ({name}) S {parent} 0 0")).expect("stat");
        };
        process(300, "sudo", 200);
        process(200, "bash", 100);
        process(100, "sshd-session", 1);
        process(400, "sudo", 50);
        process(50, "gnome-terminal-", 1);
        assert_eq!(
            remote_ancestor(dir.path(), 300),
            Ok(Some(("sshd-session".to_string(), 100)))
        );
        assert_eq!(remote_ancestor(dir.path(), 400), Ok(None));
        assert!(
            remote_ancestor(dir.path(), 999).is_err(),
            "unreadable: not local"
        );
    }
}
