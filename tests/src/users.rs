//! Test users without touching `/etc/passwd`.
//!
//! mfad names the caller by resolving the uid the bus reports, and
//! dbus-daemon drops connections from uids it cannot resolve. The tests run
//! both under `nss_wrapper` (cwrap, like `pam_wrapper`) with a generated
//! passwd/group file, and run clients as those uids with `setpriv`; nothing on
//! the machine changes. root (0), nobody (65534) and sshd's privilege
//! separation user are in the file too.

use std::path::{Path, PathBuf};
use std::process::Command;

/// A user known to the mfad under test.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TestUser {
    pub name: String,
    pub uid: u32,
    pub gid: u32,
    /// Supplementary groups the user's processes run with.
    pub groups: Vec<u32>,
}

/// The group whose members may administer when a test sets
/// `[daemon].admin_group` to [`ADMIN_GROUP`].
pub const ADMIN_GROUP: &str = "mfaadmin";
pub const ADMIN_GID: u32 = 2100;

/// A group for policy rules (`[[policy.group]]`): alice, dave and demo are
/// in it; bob and carol are not.
pub const POLICY_GROUP: &str = "mfapolicy";
pub const POLICY_GID: u32 = 2200;

/// First uid of the numbered users (`user1` = 30001, …).
const NUMBERED_BASE: u32 = 30000;
/// How many numbered users the passwd file lists.
pub const NUMBERED: u32 = 512;

const NAMED: &[(&str, u32)] = &[
    ("alice", 2001),
    ("bob", 2002),
    ("carol", 2003),
    ("dave", 2004),
    ("demo", 2005),
];

pub fn root() -> TestUser {
    TestUser {
        name: "root".into(),
        uid: 0,
        gid: 0,
        groups: vec![],
    }
}

pub fn nobody() -> TestUser {
    TestUser {
        name: "nobody".into(),
        uid: 65534,
        gid: 65534,
        groups: vec![],
    }
}

/// alice, bob, dave, demo: plain users. carol: member of [`ADMIN_GROUP`].
pub fn named(name: &str) -> TestUser {
    let uid = NAMED
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, uid)| *uid)
        .unwrap_or_else(|| panic!("no test user {name}"));
    let groups = if name == "carol" {
        vec![ADMIN_GID]
    } else {
        vec![]
    };
    TestUser {
        name: name.into(),
        uid,
        gid: uid,
        groups,
    }
}

/// `user<i>` for i in 1..=[`NUMBERED`], for tests needing many users.
pub fn numbered(i: u32) -> TestUser {
    assert!(
        (1..=NUMBERED).contains(&i),
        "numbered users are 1..={NUMBERED}"
    );
    let uid = NUMBERED_BASE + i;
    TestUser {
        name: format!("user{i}"),
        uid,
        gid: uid,
        groups: vec![],
    }
}

fn all_users() -> Vec<TestUser> {
    let mut users = vec![root(), nobody()];
    users.extend(NAMED.iter().map(|(n, _)| named(n)));
    users.extend((1..=NUMBERED).map(numbered));
    users
}

/// sshd's privilege separation user: sshd looks it up by name, so the
/// passwd file of a test sshd must list it. Not a login user.
pub const SSHD_PRIVSEP_USER: &str = "sshd";
pub const SSHD_PRIVSEP_UID: u32 = 2099;

/// Write `passwd` and `group` into `dir`; returns their paths.
pub fn write_nss_files(dir: &Path) -> (PathBuf, PathBuf) {
    write_nss_files_with_home(dir, None)
}

/// [`write_nss_files`], but every user except root gets `home` (which must
/// exist) as home directory: a real sshd changes into it for the session.
/// Names and uids are the same as in every other passwd file.
pub fn write_nss_files_with_home(dir: &Path, home: Option<&Path>) -> (PathBuf, PathBuf) {
    let mut passwd = String::new();
    let mut group = String::new();
    for u in all_users() {
        let home = match home {
            _ if u.uid == 0 => "/root".to_string(),
            Some(home) => home.display().to_string(),
            None => format!("/home/{}", u.name),
        };
        passwd.push_str(&format!(
            "{}:x:{}:{}:{}:{home}:/bin/sh\n",
            u.name, u.uid, u.gid, u.name
        ));
        let group_name = match u.uid {
            0 => "root",
            65534 => "nogroup",
            _ => &u.name,
        };
        group.push_str(&format!("{group_name}:x:{}:\n", u.gid));
    }
    group.push_str(&format!("{ADMIN_GROUP}:x:{ADMIN_GID}:carol\n"));
    group.push_str(&format!("{POLICY_GROUP}:x:{POLICY_GID}:alice,dave,demo\n"));
    passwd.push_str(&format!(
        "{SSHD_PRIVSEP_USER}:x:{SSHD_PRIVSEP_UID}:65534::/run/sshd:/usr/sbin/nologin\n"
    ));
    let passwd_path = dir.join("passwd");
    let group_path = dir.join("group");
    std::fs::write(&passwd_path, passwd).expect("cannot write passwd");
    std::fs::write(&group_path, group).expect("cannot write group");
    (passwd_path, group_path)
}

/// `libnss_wrapper.so` (Debian package libnss-wrapper).
pub fn nss_wrapper_lib() -> PathBuf {
    find_lib("libnss_wrapper.so", "libnss-wrapper")
}

/// A system library by file name below the usual library directories.
pub fn find_lib(file: &str, package: &str) -> PathBuf {
    let dirs = [
        "/usr/lib/x86_64-linux-gnu",
        "/usr/lib/aarch64-linux-gnu",
        "/usr/lib64",
        "/usr/lib",
    ];
    dirs.iter()
        .map(|d| Path::new(d).join(file))
        .find(|p| p.exists())
        .unwrap_or_else(|| {
            panic!("{file} not found: apt-get install {package} (scripts/test.sh does)")
        })
}

/// Put `cmd`'s environment in the world of the test users.
pub fn use_nss_wrapper(cmd: &mut Command, passwd: &Path, group: &Path) {
    cmd.env("LD_PRELOAD", nss_wrapper_lib())
        .env("NSS_WRAPPER_PASSWD", passwd)
        .env("NSS_WRAPPER_GROUP", group);
}

/// A command that runs `program` as `user` (directly for root).
pub fn command_as(user: &TestUser, program: &Path) -> Command {
    if user.uid == 0 {
        let mut cmd = Command::new(program);
        cmd.env_clear()
            .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
            .env("HOME", "/root");
        return cmd;
    }
    let mut cmd = Command::new("setpriv");
    cmd.arg(format!("--reuid={}", user.uid))
        .arg(format!("--regid={}", user.gid));
    if user.groups.is_empty() {
        cmd.arg("--clear-groups");
    } else {
        let groups: Vec<String> = user.groups.iter().map(u32::to_string).collect();
        cmd.arg(format!("--groups={}", groups.join(",")));
    }
    cmd.arg("--").arg(program);
    // Nothing of root's environment leaks into the user's process.
    cmd.env_clear()
        .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
        .env("HOME", "/nonexistent");
    cmd
}
