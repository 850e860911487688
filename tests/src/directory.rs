//! A user directory that can go down, as LDAP or SSSD do: the test NSS
//! module `tests/nss/nss_mfatest.c`, loaded by real glibc NSS in the mfad
//! under test alone. mfad runs in a private mount namespace whose
//! `/etc/nsswitch.conf` is a bind-mounted file naming `mfatest` after (or
//! before) `files`; the module serves the test users and groups plus the
//! groups a test adds, and answers group lookups as [`DirectoryState`] says,
//! switched while mfad runs. Nothing outside that mfad sees any of it.

use crate::users;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use tempfile::TempDir;

/// How the directory answers group lookups.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DirectoryState {
    Ok,
    /// NSS_STATUS_UNAVAIL with errno ENOENT (nss-pam-ldapd without nslcd).
    Unavailable,
    /// NSS_STATUS_UNAVAIL, errno untouched.
    Silent,
    /// NSS_STATUS_TRYAGAIN with EAGAIN.
    TryAgain,
    /// No answer until the state changes.
    Hang,
}

impl DirectoryState {
    fn word(self) -> &'static str {
        match self {
            DirectoryState::Ok => "ok",
            DirectoryState::Unavailable => "unavail",
            DirectoryState::Silent => "silent",
            DirectoryState::TryAgain => "tryagain",
            DirectoryState::Hang => "hang",
        }
    }
}

/// Where `mfatest` stands in the `group:` line of nsswitch.conf.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Order {
    /// `files mfatest`: a failure of the directory is the last word.
    AfterFiles,
    /// `mfatest files` (as authselect's sssd profile writes it): `files`
    /// answers "not found" after the directory failed.
    BeforeFiles,
}

pub struct TestDirectory {
    dir: TempDir,
}

impl TestDirectory {
    /// The test users and groups, plus `extra_groups` (lines in
    /// /etc/group format), answering [`DirectoryState::Ok`].
    pub fn new(extra_groups: &str, order: Order) -> TestDirectory {
        let dir = crate::shared_tempdir("mfa-directory-");
        let (_, group) = users::write_nss_files(dir.path());
        let mut groups = std::fs::read_to_string(&group).expect("cannot read the group file");
        groups.push_str(extra_groups);
        std::fs::write(&group, groups).expect("cannot write the group file");
        let sources = match order {
            Order::AfterFiles => "files mfatest",
            Order::BeforeFiles => "mfatest files",
        };
        std::fs::write(
            dir.path().join("nsswitch.conf"),
            format!("passwd: files mfatest\ngroup: {sources}\nshadow: files\nhosts: files\n"),
        )
        .expect("cannot write nsswitch.conf");
        let directory = TestDirectory { dir };
        directory.set(DirectoryState::Ok);
        directory
    }

    /// Switch how group lookups answer from now on (an atomic rename: a
    /// lookup reads either the old state or the new one).
    pub fn set(&self, state: DirectoryState) {
        let tmp = self.dir.path().join("state.new");
        std::fs::write(&tmp, state.word()).expect("cannot write the state");
        std::fs::rename(&tmp, self.state_path()).expect("cannot switch the state");
    }

    fn state_path(&self) -> PathBuf {
        self.dir.path().join("state")
    }

    /// `program` (mfad) made to run in a mount namespace of its own with
    /// this directory's nsswitch.conf, the module on its library path.
    pub fn command(&self, program: &Path) -> Command {
        let mut cmd = Command::new("unshare");
        cmd.args(["--mount", "--propagation", "private", "--", "/bin/sh", "-c"])
            .arg(r#"mount --bind "$0" /etc/nsswitch.conf && exec "$@""#)
            .arg(self.dir.path().join("nsswitch.conf"))
            .arg(program)
            .env("LD_LIBRARY_PATH", module_dir())
            .env("MFATEST_PASSWD", self.dir.path().join("passwd"))
            .env("MFATEST_GROUP", self.dir.path().join("group"))
            .env("MFATEST_STATE", self.state_path());
        cmd
    }
}

/// The directory holding `libnss_mfatest.so.2`, compiled once per test
/// process from `tests/nss/nss_mfatest.c` with the system's C compiler.
fn module_dir() -> &'static Path {
    static DIR: OnceLock<TempDir> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = crate::shared_tempdir("mfa-nss-module-");
        let source = crate::workspace_root().join("tests/nss/nss_mfatest.c");
        let out = Command::new("cc")
            .args([
                "-shared", "-fPIC", "-O2", "-Wall", "-Wextra", "-Werror", "-o",
            ])
            .arg(dir.path().join("libnss_mfatest.so.2"))
            .arg(&source)
            .output()
            .unwrap_or_else(|e| panic!("cannot run cc (apt-get install gcc): {e}"));
        assert!(
            out.status.success(),
            "cannot compile {}:\n{}",
            source.display(),
            String::from_utf8_lossy(&out.stderr)
        );
        dir
    })
    .path()
}
