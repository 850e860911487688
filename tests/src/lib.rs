//! End-to-end harness shared by every test in `tests/tests/` (and, later, the
//! benches): a private `dbus-daemon` running the shipped bus policy, the built
//! `mfad` on it, real libpam through `pam-driver` (or `pamtester` under
//! `pam_wrapper`), clients run as other uids with `setpriv`, and OTP codes
//! made by `oathtool` only — never by our own code.
//!
//! Every test builds its own [`Bus`], [`Daemon`] and PAM service directory in
//! fresh temporary directories, so tests run in parallel. Nothing waits by
//! sleeping: readiness comes from `--print-address`, the bus name appearing,
//! process exit (pidfd) or a line on a pipe, each bounded by a time limit.
//!
//! The binaries under test (`mfad`, `mfactl`, `libpam_mfa.so`) are built by
//! `cargo build --workspace` (`scripts/test.sh` does it once) and found next to
//! the test executable; see [`bins`].

pub mod bins;
pub mod bus;
pub mod certs;
pub mod daemon;
pub mod directory;
pub mod fakekey;
pub mod monitor;
pub mod ntp;
pub mod otp;
pub mod pam;
pub mod postgres;
pub mod probe;
pub mod process;
pub mod smtp;
pub mod ssh;
pub mod sshd;
pub mod store;
pub mod users;
pub mod world;

pub use bus::Bus;
pub use daemon::{Daemon, DaemonConfig};
pub use otp::Algorithm;
pub use pam::{PamResult, ServiceDir};
pub use users::TestUser;
pub use world::World;

use std::future::Future;
use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::Duration;

/// Upper bound for anything that should be quick: a daemon becoming ready, a
/// client call, a login that is not expected to time out. Generous because
/// the machines running the suite are small and busy; a healthy run never
/// gets near it.
pub const QUICK: Duration = Duration::from_secs(30);

/// The one tokio runtime of the test process. Connections made in
/// [`block_on`] keep working between calls because their tasks live here.
pub fn runtime() -> &'static tokio::runtime::Runtime {
    static RUNTIME: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("cannot build the test runtime")
    })
}

/// Run a future to completion on [`runtime`]. Tests are plain `#[test]`
/// functions; this is how they (and the harness) talk D-Bus.
pub fn block_on<F: Future>(future: F) -> F::Output {
    runtime().block_on(future)
}

/// The workspace root (the directory holding `packaging/`).
pub fn workspace_root() -> PathBuf {
    let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    manifest.parent().map(PathBuf::from).unwrap_or(manifest)
}

/// The bus policy file the package installs; every [`Bus`] includes it.
pub fn shipped_bus_policy() -> PathBuf {
    workspace_root().join("packaging/dbus/org.pam_mfa.Mfad1.conf")
}

/// A temporary directory others (uid 65534, test users) may enter: sockets
/// and binaries they use must be reachable. Contents keep their own modes.
pub fn shared_tempdir(prefix: &str) -> tempfile::TempDir {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::Builder::new()
        .prefix(prefix)
        .tempdir()
        .expect("cannot create a temporary directory");
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755))
        .expect("cannot chmod the temporary directory");
    dir
}
