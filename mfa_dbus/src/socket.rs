//! The checks the client makes on the login socket: root PAM clients reach mfad peer to
//! peer, with trust from the kernel alone.
//!
//! Before a byte is sent: the socket's directory and the socket itself must
//! be root's and no one else's to write (so no one else can have put them
//! there), and the process listening must run as root (SO_PEERCRED, read
//! by the kernel when it listened). No user name, service or address
//! reaches anything else. The path comes from the PAM line or
//! [`crate::LOGIN_SOCKET`], never from the environment.

use crate::conversation::{ClientError, TRUSTED_UID};
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::Path;

pub(crate) fn untrusted(path: &Path, problem: String) -> ClientError {
    ClientError::UntrustedSocket {
        path: path.display().to_string(),
        problem,
    }
}

/// The directory and the socket: root's, and writable by no one else.
/// (Boxed: the error is large and this is the rare path.)
pub(crate) fn check_path(path: &Path) -> Result<(), Box<ClientError>> {
    let refuse = |problem: String| Box::new(untrusted(path, problem));
    if !path.is_absolute() {
        return Err(refuse("not an absolute path".into()));
    }
    let Some(dir) = path.parent() else {
        return Err(refuse("has no directory".into()));
    };
    let missing = |what: &Path, e: std::io::Error| {
        Box::new(ClientError::Unreachable {
            address: path.display().to_string(),
            source: Box::new(std::io::Error::new(
                e.kind(),
                format!("{}: {e}", what.display()),
            )),
        })
    };
    let dir_meta = std::fs::symlink_metadata(dir).map_err(|e| missing(dir, e))?;
    if !dir_meta.file_type().is_dir() {
        return Err(refuse(format!("{} is not a directory", dir.display())));
    }
    owned_by_root_alone(path, dir, &dir_meta, "write it")?;
    let meta = std::fs::symlink_metadata(path).map_err(|e| missing(path, e))?;
    if !meta.file_type().is_socket() {
        return Err(refuse("not a socket".into()));
    }
    // Write permission is what lets a process connect to a socket.
    owned_by_root_alone(path, path, &meta, "connect to it")
}

fn owned_by_root_alone(
    path: &Path,
    what: &Path,
    meta: &std::fs::Metadata,
    others_may: &str,
) -> Result<(), Box<ClientError>> {
    if meta.uid() != TRUSTED_UID {
        return Err(Box::new(untrusted(
            path,
            format!(
                "{} is owned by uid {}, not root",
                what.display(),
                meta.uid()
            ),
        )));
    }
    let mode = meta.mode() & 0o7777;
    if mode & 0o022 != 0 {
        return Err(Box::new(untrusted(
            path,
            format!(
                "{} has mode {mode:04o}: others may {others_may}; it must be root's alone",
                what.display()
            ),
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn refused(path: &Path) -> String {
        match check_path(path).map_err(|e| *e) {
            Err(ClientError::UntrustedSocket { problem, .. }) => problem,
            other => panic!("{} must be refused: {other:?}", path.display()),
        }
    }

    #[test]
    fn relative_paths_and_non_sockets_are_refused() {
        assert!(refused(Path::new("run/login.sock")).contains("absolute"));
        let dir = std::env::temp_dir().join(format!("mfa-dbus-socket-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("mkdir");
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).expect("chmod");
        let file = dir.join("file");
        std::fs::write(&file, "").expect("write");
        if own_uid() == 0 {
            assert!(refused(&file).contains("not a socket"));
            let sock = dir.join("open.sock");
            let _listener = std::os::unix::net::UnixListener::bind(&sock).expect("bind");
            std::fs::set_permissions(&sock, std::fs::Permissions::from_mode(0o666)).expect("chmod");
            assert!(refused(&sock).contains("mode 0666"), "{}", refused(&sock));
            std::fs::set_permissions(&sock, std::fs::Permissions::from_mode(0o644)).expect("chmod");
            assert!(check_path(&sock).is_ok());
            std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777)).expect("chmod");
            assert!(refused(&sock).contains("others may write it"));
        } else {
            // Not root: the directory is this user's, which is refused first.
            assert!(refused(&file).contains("not root"));
        }
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// This process's uid (the owner of /proc/self).
    fn own_uid() -> u32 {
        std::fs::metadata("/proc/self")
            .map(|m| m.uid())
            .unwrap_or(u32::MAX)
    }
}
