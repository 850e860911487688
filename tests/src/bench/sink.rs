//! A syslog sink for machines without a syslog daemon.
//!
//! Without `/dev/log`, glibc's syslog() tries to connect on every message
//! and the modules that log (mfad, google-authenticator) pay for it. The
//! sink binds a datagram socket at `/dev/log` and discards what arrives, in
//! a thread of the benchmark's main process (the workers and mfad are its
//! children and log through it). It is removed when dropped, and only if it
//! was created here; a stale socket left by a killed run is replaced.

use std::io::ErrorKind;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

pub const DEV_LOG: &str = "/dev/log";

pub struct Sink {
    /// Set when this process created the socket (and must remove it).
    created: Option<(PathBuf, u64)>,
    received: Arc<AtomicU64>,
    /// Who serves `/dev/log`, for the report.
    pub description: String,
}

impl Sink {
    /// Make sure something receives on `path`.
    pub fn ensure(path: &Path) -> Result<Sink, String> {
        let received = Arc::new(AtomicU64::new(0));
        match std::fs::symlink_metadata(path) {
            Ok(meta) => {
                let probe = UnixDatagram::unbound().map_err(|e| e.to_string())?;
                match probe.connect(path) {
                    Ok(()) => {
                        return Ok(Sink {
                            created: None,
                            received,
                            description: format!("the existing {}", path.display()),
                        })
                    }
                    Err(e) if meta.file_type().is_socket() && refused(&e) => {
                        // Left by a run that was killed: nobody listens.
                        std::fs::remove_file(path)
                            .map_err(|e| format!("cannot remove stale {}: {e}", path.display()))?;
                    }
                    Err(e) => {
                        return Err(format!(
                            "{} exists but accepts no log messages ({e}); \
                             start a syslog daemon or remove it",
                            path.display()
                        ))
                    }
                }
            }
            Err(e) if e.kind() == ErrorKind::NotFound => {}
            Err(e) => return Err(format!("cannot inspect {}: {e}", path.display())),
        }
        let socket = UnixDatagram::bind(path)
            .map_err(|e| format!("cannot bind a log sink at {}: {e}", path.display()))?;
        let meta = std::fs::symlink_metadata(path).map_err(|e| e.to_string())?;
        // Every local program may log, as with a real syslog daemon.
        use std::os::unix::fs::PermissionsExt;
        let _ = std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o666));
        let count = Arc::clone(&received);
        std::thread::Builder::new()
            .name("log-sink".into())
            .spawn(move || {
                let mut buf = vec![0u8; 64 * 1024];
                while socket.recv(&mut buf).is_ok() {
                    count.fetch_add(1, Ordering::Relaxed);
                }
            })
            .map_err(|e| format!("cannot start the log sink: {e}"))?;
        Ok(Sink {
            created: Some((path.to_path_buf(), meta.ino())),
            received,
            description: format!(
                "a discarding sink at {} (created by this run)",
                path.display()
            ),
        })
    }

    /// Messages received so far (0 when the socket is not ours).
    pub fn received(&self) -> u64 {
        self.received.load(Ordering::Relaxed)
    }

    pub fn is_ours(&self) -> bool {
        self.created.is_some()
    }
}

fn refused(e: &std::io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::ECONNREFUSED) | Some(libc::ENOENT)
    )
}

impl Drop for Sink {
    fn drop(&mut self) {
        if let Some((path, ino)) = &self.created {
            // Only our socket: something else may have replaced it meanwhile.
            if std::fs::symlink_metadata(path).is_ok_and(|m| m.ino() == *ino) {
                let _ = std::fs::remove_file(path);
            }
        }
    }
}
