//! Where the binaries under test are. `CARGO_BIN_EXE_*` only names this
//! crate's own binaries, so everything is found in the target directory the
//! test executable runs from (`target/<profile>/deps/<test>` →
//! `target/<profile>/`), or in `$MFA_TEST_BIN_DIR` when set.
//!
//! A binary older than its sources fails the test with a hint: a stale
//! `mfad` would otherwise make a test pass or fail for the wrong reason. Set
//! `MFA_TESTS_ALLOW_STALE=1` to skip that check.

use std::path::{Path, PathBuf};
use std::time::SystemTime;

/// The directory holding the built binaries.
pub fn bin_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("MFA_TEST_BIN_DIR") {
        return PathBuf::from(dir);
    }
    let exe = std::env::current_exe().expect("cannot find the test executable");
    let mut dir = exe
        .parent()
        .map(Path::to_path_buf)
        .expect("test executable has no directory");
    if dir.file_name().is_some_and(|n| n == "deps") {
        dir.pop();
    }
    dir
}

/// The daemon.
pub fn mfad() -> PathBuf {
    built("mfad", &crate_sources(&["mfad", "mfa_dbus"]))
}

/// The command line tool.
pub fn mfactl() -> PathBuf {
    built("mfactl", &crate_sources(&["mfactl", "mfa_dbus"]))
}

/// The PAM module, as named in PAM service files by absolute path.
pub fn pam_module() -> PathBuf {
    built("libpam_mfa.so", &crate_sources(&["pam_mfa", "mfa_dbus"]))
}

/// This crate's libpam driver (`src/bin/pam-driver.rs`).
pub fn pam_driver() -> PathBuf {
    built("pam-driver", &["tests/src/bin/pam-driver.rs".into()])
}

/// This crate's raw D-Bus client (`src/bin/mfa-probe.rs`).
pub fn mfa_probe() -> PathBuf {
    built("mfa-probe", &crate_sources(&["mfa_dbus"]))
}

/// The software security key (`tests/fakekey`).
pub fn fakekey() -> PathBuf {
    built("mfa-fakekey", &crate_sources(&["tests/fakekey"]))
}

/// What a crate's build reads: `src/`, `Cargo.toml`, `build.rs` (not its
/// tests or benches).
fn crate_sources(crates: &[&str]) -> Vec<String> {
    crates
        .iter()
        .flat_map(|c| {
            [
                format!("{c}/src"),
                format!("{c}/Cargo.toml"),
                format!("{c}/build.rs"),
            ]
        })
        .collect()
}

fn built(name: &str, sources: &[String]) -> PathBuf {
    let path = bin_dir().join(name);
    let built_at = match std::fs::metadata(&path).and_then(|m| m.modified()) {
        Ok(t) => t,
        Err(_) => panic!(
            "{} is missing: run `cargo build --workspace` first (scripts/test.sh does)",
            path.display()
        ),
    };
    if std::env::var_os("MFA_TESTS_ALLOW_STALE").is_none() {
        let root = crate::workspace_root();
        for source in sources {
            if let Some((newest, file)) = newest_source(&root.join(source)) {
                assert!(
                    newest <= built_at,
                    "{} is older than {}: run `cargo build --workspace` again \
                     (or set MFA_TESTS_ALLOW_STALE=1)",
                    path.display(),
                    file.display()
                );
            }
        }
    }
    path
}

/// The most recently modified `.rs` (but `tests.rs`) or `Cargo.toml` at or
/// below `path`.
fn newest_source(path: &Path) -> Option<(SystemTime, PathBuf)> {
    if path.is_file() {
        let modified = std::fs::metadata(path).and_then(|m| m.modified()).ok()?;
        return Some((modified, path.to_path_buf()));
    }
    let mut newest: Option<(SystemTime, PathBuf)> = None;
    let mut stack = vec![path.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            let Ok(meta) = entry.metadata() else { continue };
            if meta.is_dir() {
                stack.push(path);
                continue;
            }
            // `tests.rs` files are unit-test modules: changing one does not
            // change the binary, so cargo does not relink it.
            let relevant = (path.extension().is_some_and(|e| e == "rs")
                && path.file_name().is_some_and(|n| n != "tests.rs"))
                || path.file_name().is_some_and(|n| n == "Cargo.toml");
            if !relevant {
                continue;
            }
            if let Ok(modified) = meta.modified() {
                if newest.as_ref().is_none_or(|(t, _)| modified > *t) {
                    newest = Some((modified, path));
                }
            }
        }
    }
    newest
}
