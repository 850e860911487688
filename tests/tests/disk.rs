//! A full disk under a running mfad: a right code must be refused when the
//! store cannot record its use (else it could be replayed), mfad must log a
//! store error, and once there is space again the same store works and
//! holds exactly what was committed — nothing half-written, nothing lost.
//!
//! The state directory is a small tmpfs (`mount -t tmpfs -o size=…`),
//! filled with a filler file while mfad runs: the kernel then refuses the
//! writes SQLite makes to grow its WAL (ENOSPC), as on a real full disk. It
//! needs CAP_SYS_ADMIN, which the test suite's root has in its container.

use mfa_tests::daemon::DaemonConfig;
use mfa_tests::otp::{self, Totp};
use mfa_tests::pam::{PAM_AUTH_ERR, PAM_MAXTRIES, PAM_SUCCESS};
use mfa_tests::store;
use mfa_tests::users::{self};
use mfa_tests::World;
use std::ffi::CString;
use std::io::Write;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

/// A tmpfs mounted on a directory for the length of a test; lazily
/// unmounted when dropped (mfad may still hold files open on it).
struct Tmpfs {
    path: PathBuf,
}

impl Tmpfs {
    fn mount(path: &Path, size: &str) -> Tmpfs {
        let target = CString::new(path.as_os_str().as_bytes()).expect("path without NUL");
        let options = CString::new(format!("size={size},mode=0700")).expect("options");
        // SAFETY: valid NUL-terminated strings; mount(2) copies them.
        let rc = unsafe {
            libc::mount(
                c"tmpfs".as_ptr(),
                target.as_ptr(),
                c"tmpfs".as_ptr(),
                libc::MS_NOSUID | libc::MS_NODEV,
                options.as_ptr().cast(),
            )
        };
        assert_eq!(
            rc,
            0,
            "cannot mount a tmpfs on {} ({}): this test needs root with CAP_SYS_ADMIN",
            path.display(),
            std::io::Error::last_os_error()
        );
        Tmpfs {
            path: path.to_path_buf(),
        }
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        if let Ok(target) = CString::new(self.path.as_os_str().as_bytes()) {
            // SAFETY: a valid path; MNT_DETACH unmounts even while busy.
            unsafe { libc::umount2(target.as_ptr(), libc::MNT_DETACH) };
        }
    }
}

/// Move mfad's (stopped) state directory onto a fresh tmpfs of `size`.
fn onto_tmpfs(state: &Path, size: &str) -> Tmpfs {
    let saved: Vec<(PathBuf, Vec<u8>, u32)> = std::fs::read_dir(state)
        .expect("read the state directory")
        .flatten()
        .filter(|e| e.file_type().map(|t| t.is_file()).unwrap_or(false))
        .map(|e| {
            let path = e.path();
            let bytes = std::fs::read(&path).expect("read a state file");
            let mode = e.metadata().expect("metadata").permissions().mode();
            (path, bytes, mode)
        })
        .collect();
    let mount = Tmpfs::mount(state, size);
    for (path, bytes, mode) in saved {
        std::fs::write(&path, bytes).expect("copy a state file onto the tmpfs");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).expect("chmod");
    }
    mount
}

/// Fill the file system holding `dir` until the kernel says it is full.
fn fill(dir: &Path) -> PathBuf {
    let path = dir.join("filler");
    let mut file = std::fs::File::create(&path).expect("create the filler");
    let block = vec![0xa5u8; 4096];
    loop {
        match file.write(&block) {
            Ok(0) => break,
            Ok(_) => {}
            Err(e) if e.raw_os_error() == Some(libc::ENOSPC) => break,
            Err(e) => panic!("filling the tmpfs: {e}"),
        }
    }
    let _ = file.sync_all();
    path
}

fn store_errors(log: &str) -> usize {
    log.lines()
        .filter(|l| l.contains("login deny") && l.contains("reason=store-error"))
        .count()
}

#[test]
fn a_full_disk_refuses_right_codes_and_loses_nothing() {
    let mut world = World::with_config(&DaemonConfig {
        max_tries: 1,
        ..DaemonConfig::default()
    });
    let alice = users::named("alice");
    let hotp = world.enrol_hotp(&alice, 6);
    let bob = users::named("bob");
    let bob_totp = world.enrol_totp(&bob, &Totp::default_params());
    let bobs_codes = world.recovery_codes(&bob);
    let mut counter = hotp.next_counter();
    world
        .login(&alice, &[&hotp.hotp_code(counter)])
        .assert_rc(PAM_SUCCESS);
    counter += 1;

    // Same store, now on a 1 MiB tmpfs.
    world.daemon.stop();
    let state = world.daemon.state_dir();
    let _tmpfs = onto_tmpfs(&state, "1m");
    world.daemon.restart();
    world
        .login(&alice, &[&hotp.hotp_code(counter)])
        .assert_rc(PAM_SUCCESS);
    counter += 1;
    let before = store::snapshot(&state);
    assert_eq!(before.counter(&hotp.id), counter);

    // Full: nothing can be recorded, so nothing is accepted.
    let filler = fill(&state);
    let errors_before = store_errors(&world.daemon.log());
    let right = hotp.hotp_code(counter);
    let refused = world.login(&alice, &[&right]);
    refused.assert_rc(PAM_AUTH_ERR);
    assert_eq!(
        refused.errors(),
        vec!["The second factor could not be checked."],
        "{refused:#?}"
    );
    // A wrong code cannot be counted either: refused the same way, not as
    // a counted failure.
    let window: Vec<String> = (counter..=counter + 11)
        .map(|c| hotp.hotp_code(c))
        .collect();
    world
        .login(&alice, &[&otp::wrong_code_avoiding(6, &window)])
        .assert_rc(PAM_AUTH_ERR);
    // Neither can a recovery code be marked used.
    world.login(&bob, &[&bobs_codes[0]]).assert_rc(PAM_AUTH_ERR);
    let log = world.daemon.log();
    assert_eq!(
        store_errors(&log) - errors_before,
        3,
        "mfad must log each refusal as a store error:\n{log}"
    );
    assert!(
        log.contains("full"),
        "the store error should say the disk is full:\n{log}"
    );
    // What the store holds: the refused code was not recorded.
    let during = store::snapshot(&state);
    assert_eq!(during, before, "a refused login changed the store");

    // Space again: the same store works and agrees with what it recorded.
    std::fs::remove_file(&filler).expect("remove the filler");
    world.login(&alice, &[&right]).assert_rc(PAM_SUCCESS);
    world.login(&alice, &[&right]).assert_rc(PAM_MAXTRIES);
    let accepted = world.login(&bob, &[&bobs_codes[0]]);
    accepted.assert_rc(PAM_SUCCESS);
    assert!(
        accepted
            .infos()
            .iter()
            .any(|t| t.contains("Recovery code accepted; 9 left")),
        "{accepted:#?}"
    );
    world
        .login(&bob, &[&bob_totp.totp().code(1)])
        .assert_rc(PAM_SUCCESS);

    // A clean restart checks the database again, and it is whole.
    world.daemon.stop();
    let conn = store::open_for_damage(&state);
    let check: String = conn
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .expect("integrity check");
    drop(conn);
    assert_eq!(check, "ok", "the store was damaged by the full disk");
    world.daemon.restart();
    let after = store::snapshot(&state);
    assert_eq!(after.counter(&hotp.id), counter + 1);
    assert_eq!(after.unused_recovery("bob"), 9);
    // Only the replay above counted: the refused wrong code never did.
    assert_eq!(after.failures("alice"), 1);
    world
        .login(&alice, &[&hotp.hotp_code(counter + 1)])
        .assert_rc(PAM_SUCCESS);
    world
        .daemon
        .assert_log_free_of(&[&hotp.secret, &right, &bob_totp.secret]);
}

#[test]
fn a_full_disk_sends_no_email_code_and_says_it_is_the_store() {
    let smtp = mfa_tests::smtp::Smtp::shared();
    let mut world = World::with_config(&DaemonConfig {
        max_tries: 1,
        policy_tables: smtp.email_table(mfa_tests::smtp::Mode::Starttls, ""),
        ..DaemonConfig::default()
    });
    let carol = users::named("carol");
    let to = format!("carol-disk-{}@example.org", std::process::id());
    world
        .mfactl(&users::root(), &["set-email", "carol", &to])
        .assert_success("mfactl set-email");
    world.daemon.stop();
    let state = world.daemon.state_dir();
    let _tmpfs = onto_tmpfs(&state, "1m");
    world.daemon.restart();

    // A code is recorded (as a keyed hash) before it is sent: with no room
    // to record it, none is sent, and the log blames the store.
    let filler = fill(&state);
    let refused = world.login(&carol, &[]);
    refused.assert_rc(PAM_AUTH_ERR);
    assert_eq!(
        refused.errors(),
        vec!["The second factor could not be checked."],
        "{refused:#?}"
    );
    let log = world.daemon.log();
    assert_eq!(store_errors(&log), 1, "{log}");
    assert!(!log.contains("factor-unavailable"), "{log}");
    assert_eq!(smtp.mail_count(&to), 0, "no code went out");

    std::fs::remove_file(&filler).expect("remove the filler");
    let mut login = world.prepare(&carol, &[]);
    login.ask = true;
    let mut pending = login.spawn(&world.pam);
    pending
        .next_prompt(mfa_tests::QUICK)
        .expect("the code prompt, with room again");
    let code = smtp.wait_for_mail(&to, std::time::Duration::from_secs(10));
    let digits: String = code
        .body
        .split(|c: char| !c.is_ascii_digit())
        .find(|run| run.len() == 6)
        .expect("a code in the mail")
        .to_string();
    pending.answer(&digits);
    pending.finish().assert_rc(PAM_SUCCESS);
}
