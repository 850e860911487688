//! The login socket: Login1 peer to peer for root PAM clients, with no bus
//! daemon in the login path.
//!
//! The kernel vouches for both ends. The socket and its directory are
//! root's and no one else may write them, so only root can connect; each
//! client's uid is read with SO_PEERCRED at accept and anything but root
//! is hung up on before a byte of D-Bus is read. Having that, both ends
//! skip D-Bus's SASL exchange and speak D-Bus messages at once: one round
//! trip less, and no user lookup in the login path. The same `Login1` code as
//! on the bus serves each connection; its logins are bound to it, and
//! dropped when it closes.

use super::login::LoginInterface;
use super::{Caller, Shared};
use crate::audit::Severity;
use mfa_dbus::OBJECT_PATH;
use std::io;
use std::os::fd::{FromRawFd, RawFd};
use std::os::unix::fs::{DirBuilderExt, FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::{UnixListener, UnixStream};

/// Setting up a client's connection may take this long.
const HANDSHAKE: Duration = Duration::from_secs(5);
/// Connections served at once; more wait in the kernel's backlog.
const MAX_PEERS: usize = 1024;
/// The first descriptor systemd passes (`sd_listen_fds`).
const LISTEN_FDS_START: RawFd = 3;

/// Why the login socket cannot be served.
#[derive(Debug, thiserror::Error)]
pub enum SocketError {
    #[error("{path}: {problem}")]
    Unsafe { path: PathBuf, problem: String },
    #[error("{path}: another mfad already serves this socket")]
    InUse { path: PathBuf },
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: io::Error },
    #[error("the socket systemd passed (fd 3) is not a listening Unix stream socket")]
    NotASocket,
}

/// The listening socket, before it is served.
pub struct LoginSocket {
    listener: std::os::unix::net::UnixListener,
    /// Where it is, for the log.
    pub path: PathBuf,
    /// Passed by systemd (`mfad.socket`) rather than made here.
    pub activated: bool,
}

impl LoginSocket {
    /// The socket systemd passed (socket activation), else a new one at
    /// `path`. Before the runtime starts: it reads and clears the
    /// environment.
    pub fn open(path: &Path) -> Result<LoginSocket, SocketError> {
        if let Some(listener) = from_systemd()? {
            // The log names the socket systemd made, whatever mfad.toml says.
            let made = listener
                .local_addr()
                .ok()
                .and_then(|a| a.as_pathname().map(Path::to_path_buf))
                .unwrap_or_else(|| path.to_path_buf());
            return Ok(LoginSocket {
                listener,
                path: made,
                activated: true,
            });
        }
        let io = |source| SocketError::Io {
            path: path.to_path_buf(),
            source,
        };
        let dir = path.parent().ok_or_else(|| SocketError::Unsafe {
            path: path.to_path_buf(),
            problem: "has no directory".into(),
        })?;
        if !dir.exists() {
            // 0755 whatever the umask, as systemd makes it for mfad.socket.
            let dir_io = |source| SocketError::Io {
                path: dir.to_path_buf(),
                source,
            };
            std::fs::DirBuilder::new()
                .mode(0o755)
                .create(dir)
                .map_err(dir_io)?;
            std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755))
                .map_err(dir_io)?;
        }
        check_directory(dir)?;
        remove_stale(path)?;
        // Made 0600 by mfad's umask (077) already; set it anyway, so the
        // mode does not depend on how mfad was started.
        let listener = std::os::unix::net::UnixListener::bind(path).map_err(io)?;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).map_err(io)?;
        Ok(LoginSocket {
            listener,
            path: path.to_path_buf(),
            activated: false,
        })
    }

    /// Accept and serve connections until the runtime ends.
    pub async fn serve(self, shared: Shared) -> Result<(), SocketError> {
        let listener = self
            .listener
            .set_nonblocking(true)
            .and_then(|()| UnixListener::from_std(self.listener))
            .map_err(|source| SocketError::Io {
                path: self.path.clone(),
                source,
            })?;
        let peers = Arc::new(AtomicUsize::new(0));
        let serial = AtomicU64::new(0);
        loop {
            let stream = match listener.accept().await {
                Ok((stream, _)) => stream,
                Err(e) => {
                    shared.service.audit().message(
                        Severity::Warning,
                        &format!("login socket {}: accept: {e}", self.path.display()),
                    );
                    // Out of descriptors or memory: let some go first.
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            };
            let Some(caller) = root_peer(&stream, &serial, &shared, &self.path) else {
                continue;
            };
            if peers.fetch_add(1, Ordering::AcqRel) >= MAX_PEERS {
                peers.fetch_sub(1, Ordering::AcqRel);
                continue;
            }
            let (shared, peers) = (shared.clone(), Arc::clone(&peers));
            tokio::spawn(async move {
                serve_peer(stream, caller, shared).await;
                peers.fetch_sub(1, Ordering::AcqRel);
            });
        }
    }
}

/// The caller on `stream` if the kernel says it is root; otherwise it is
/// hung up on (and the attempt logged: only root can connect, so someone
/// changed the socket's mode).
fn root_peer(
    stream: &UnixStream,
    serial: &AtomicU64,
    shared: &Shared,
    path: &Path,
) -> Option<Caller> {
    let refuse = |why: String| {
        shared.service.audit().message(
            Severity::Warning,
            &format!("login socket {}: {why}; hung up", path.display()),
        );
        None
    };
    let credentials = match stream.peer_cred() {
        Ok(c) => c,
        Err(e) => return refuse(format!("cannot read the client's credentials: {e}")),
    };
    if credentials.uid() != 0 {
        return refuse(format!(
            "a client running as uid {} connected; only root may",
            credentials.uid()
        ));
    }
    Some(Caller {
        // Never a bus name (those start with ':'), so the two never meet.
        connection: format!("login-socket/{}", serial.fetch_add(1, Ordering::Relaxed)),
        uid: 0,
        pid: credentials.pid().and_then(|p| u32::try_from(p).ok()),
    })
}

async fn serve_peer(stream: UnixStream, caller: Caller, shared: Shared) {
    let name = caller.connection.clone();
    let service = Arc::clone(&shared.service);
    // No SASL: the kernel already said who the client is, and zbus's
    // server handshake would look the uid up in NSS (getpwuid,
    // getgrouplist) on every login, where a hanging directory would hang
    // root's logins too. The client skips it the same way.
    let built = async {
        zbus::connection::Builder::authenticated_socket(stream, zbus::Guid::generate())?
            .p2p()
            .serve_at(OBJECT_PATH, LoginInterface::peer(shared, caller))?
            .build()
            .await
    };
    // A client that hung up or spoke no D-Bus in time started nothing.
    if let Ok(Ok(connection)) = tokio::time::timeout(HANDSHAKE, built).await {
        connection.closed().await;
        service.connection_gone(&name);
    }
}

/// The directory must be root's and writable by no one else, or someone
/// could put their own socket in its place.
fn check_directory(dir: &Path) -> Result<(), SocketError> {
    let unsafe_dir = |problem: String| SocketError::Unsafe {
        path: dir.to_path_buf(),
        problem,
    };
    let meta = std::fs::symlink_metadata(dir).map_err(|source| SocketError::Io {
        path: dir.to_path_buf(),
        source,
    })?;
    if !meta.file_type().is_dir() {
        return Err(unsafe_dir("is not a directory".into()));
    }
    if meta.uid() != 0 {
        return Err(unsafe_dir(format!(
            "is owned by uid {}, not root",
            meta.uid()
        )));
    }
    if meta.mode() & 0o022 != 0 {
        return Err(unsafe_dir(format!(
            "is writable by others (mode {:o}); it must be root's alone",
            meta.mode() & 0o7777
        )));
    }
    Ok(())
}

/// A socket left by an mfad that died is removed; a live one is not taken
/// over; anything that is not a socket is left alone and refused.
fn remove_stale(path: &Path) -> Result<(), SocketError> {
    let meta = match std::fs::symlink_metadata(path) {
        Ok(meta) => meta,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(source) => {
            return Err(SocketError::Io {
                path: path.to_path_buf(),
                source,
            })
        }
    };
    if !meta.file_type().is_socket() {
        return Err(SocketError::Unsafe {
            path: path.to_path_buf(),
            problem: "exists and is not a socket; not replacing it".into(),
        });
    }
    if std::os::unix::net::UnixStream::connect(path).is_ok() {
        return Err(SocketError::InUse {
            path: path.to_path_buf(),
        });
    }
    std::fs::remove_file(path).map_err(|source| SocketError::Io {
        path: path.to_path_buf(),
        source,
    })
}

/// The listening socket systemd passed, if it passed one to this process
/// (`LISTEN_PID`, `LISTEN_FDS`; see sd_listen_fds(3)). The variables are
/// removed so that nothing mfad starts inherits them.
fn from_systemd() -> Result<Option<std::os::unix::net::UnixListener>, SocketError> {
    let pid = std::env::var("LISTEN_PID").ok();
    let fds = std::env::var("LISTEN_FDS").ok();
    std::env::remove_var("LISTEN_PID");
    std::env::remove_var("LISTEN_FDS");
    std::env::remove_var("LISTEN_FDNAMES");
    let ours = pid.and_then(|p| p.parse::<u32>().ok()) == Some(std::process::id());
    let count = fds.and_then(|n| n.parse::<u32>().ok()).unwrap_or(0);
    if !ours || count == 0 {
        return Ok(None);
    }
    if !is_listening_unix_stream(LISTEN_FDS_START) {
        return Err(SocketError::NotASocket);
    }
    // SAFETY: systemd passed fd 3 to this process for it to own, and it was
    // just checked to be a listening Unix stream socket; nothing else in
    // mfad takes it.
    Ok(Some(unsafe {
        std::os::unix::net::UnixListener::from_raw_fd(LISTEN_FDS_START)
    }))
}

fn is_listening_unix_stream(fd: RawFd) -> bool {
    let option = |name| {
        let mut value: libc::c_int = 0;
        let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
        // SAFETY: `value` and `len` are valid for writes of the sizes given.
        let rc = unsafe {
            libc::getsockopt(
                fd,
                libc::SOL_SOCKET,
                name,
                (&mut value as *mut libc::c_int).cast(),
                &mut len,
            )
        };
        (rc == 0).then_some(value)
    };
    option(libc::SO_DOMAIN) == Some(libc::AF_UNIX)
        && option(libc::SO_TYPE) == Some(libc::SOCK_STREAM)
        && option(libc::SO_ACCEPTCONN) == Some(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_directory_others_may_write_is_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o777))
            .expect("chmod");
        match check_directory(dir.path()) {
            Err(SocketError::Unsafe { problem, .. }) => {
                assert!(problem.contains("writable by others"), "{problem}")
            }
            other => panic!("a 0777 directory must be refused: {other:?}"),
        }
    }

    #[test]
    fn a_file_in_the_way_is_not_replaced() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("login.sock");
        std::fs::write(&path, "data").expect("write");
        assert!(matches!(
            remove_stale(&path),
            Err(SocketError::Unsafe { .. })
        ));
        assert_eq!(std::fs::read_to_string(&path).ok().as_deref(), Some("data"));
    }

    #[test]
    fn a_live_socket_is_not_taken_over_and_a_dead_one_is_removed() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("login.sock");
        let live = std::os::unix::net::UnixListener::bind(&path).expect("bind");
        assert!(matches!(
            remove_stale(&path),
            Err(SocketError::InUse { .. })
        ));
        drop(live);
        remove_stale(&path).expect("a dead socket is removed");
        assert!(!path.exists());
    }

    #[test]
    fn only_a_listening_unix_stream_socket_is_taken_from_systemd() {
        let dir = tempfile::tempdir().expect("tempdir");
        let listener = std::os::unix::net::UnixListener::bind(dir.path().join("s")).expect("bind");
        let file = std::fs::File::open(dir.path()).expect("open");
        use std::os::fd::AsRawFd;
        assert!(is_listening_unix_stream(listener.as_raw_fd()));
        assert!(!is_listening_unix_stream(file.as_raw_fd()));
        let (a, _b) = std::os::unix::net::UnixStream::pair().expect("pair");
        assert!(!is_listening_unix_stream(a.as_raw_fd()));
    }
}
