//! Whether a login happens at this machine or for someone elsewhere, as far
//! as mfad can tell: factor kinds that need the user here (a security key
//! plugged into this machine) are offered only to local logins.
//!
//! Remote: sshd's own logins (its user is wherever their SSH client runs),
//! a login with a remote address (`PAM_RHOST` other than `localhost`), and
//! a PAM client that runs under a remote-login server — `sudo` in an SSH
//! session has sshd among its ancestors. The process tree is read from
//! `/proc`; a client whose ancestry cannot be read is taken as remote.

use mfa_dbus::LoginRequest;
use std::path::Path;

/// Process names of servers that let users in from elsewhere.
const REMOTE_SERVERS: &[&str] = &[
    "sshd",
    "sshd-session",
    "mosh-server",
    "in.telnetd",
    "telnetd",
];

/// Why `request`, from the PAM client process `pid` (if known), counts as
/// remote; `None` when it is at this machine.
pub fn remote_reason(request: &LoginRequest, pid: Option<u32>) -> Option<String> {
    if request.service == "sshd" {
        return Some("an SSH login: the user is wherever their SSH client runs".into());
    }
    match request.rhost.as_str() {
        "" | "localhost" => {}
        rhost => return Some(format!("the login comes from {rhost}")),
    }
    let pid = pid?;
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
    fn sshd_and_remote_addresses_are_remote_localhost_is_not() {
        assert!(remote_reason(&request("sshd", ""), None).is_some());
        assert!(remote_reason(&request("login", "192.0.2.1"), None).is_some());
        assert_eq!(remote_reason(&request("login", "localhost"), None), None);
        assert_eq!(remote_reason(&request("sudo", ""), None), None);
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
