//! A damaged store is refused, never reinitialised and never touched:
//! truncated, or with pages overwritten by garbage, mfad refuses to start
//! with a message naming the file and leaves every byte as it was; damage
//! found while it runs refuses logins and mfactl calls, and mfactl reports
//! it with the exit codes of mfactl(1) rather than crashing.

use mfa_tests::daemon::DaemonConfig;
use mfa_tests::otp::Totp;
use mfa_tests::pam::{PAM_AUTH_ERR, PAM_SUCCESS};
use mfa_tests::process::{run, Finished};
use mfa_tests::store;
use mfa_tests::users::{self, command_as, TestUser};
use mfa_tests::World;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Every file of the state directory, by name, with its bytes.
fn files(state: &Path) -> BTreeMap<String, Vec<u8>> {
    std::fs::read_dir(state)
        .expect("read the state directory")
        .flatten()
        .map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            (name, std::fs::read(e.path()).expect("read a state file"))
        })
        .collect()
}

/// Start mfad on `world`'s config and state; it must refuse within the
/// limit. What it printed.
fn mfad_refuses(world: &World) -> Finished {
    let (passwd, group) = world.bus.nss_files();
    let mut cmd = Command::new(mfa_tests::bins::mfad());
    cmd.env_clear()
        .arg("--config")
        .arg(world.daemon.config_path())
        .arg("--bus-address")
        .arg(world.address());
    users::use_nss_wrapper(&mut cmd, &passwd, &group);
    let out = run("mfad", &mut cmd, "", mfa_tests::QUICK);
    assert_eq!(
        out.code(),
        Some(1),
        "mfad started on a damaged store:\n{}",
        out.describe()
    );
    out
}

fn mfactl(world: &World, user: &TestUser, args: &[&str]) -> Finished {
    let mut cmd = command_as(user, &mfa_tests::bins::mfactl());
    cmd.arg("--bus-address").arg(world.address()).args(args);
    run("mfactl", &mut cmd, "", mfa_tests::QUICK)
}

/// A world with a few factors, stopped, its WAL checkpointed into the
/// database file (and removed), so the file holds everything.
fn stopped_world() -> (World, PathBuf) {
    let mut world = World::with_config(&DaemonConfig::default());
    for name in ["alice", "bob", "carol"] {
        world.enrol_totp(&users::named(name), &Totp::default_params());
    }
    world.enrol_hotp(&users::named("dave"), 6);
    world.daemon.stop();
    let state = world.daemon.state_dir();
    let conn = store::open_for_damage(&state);
    conn.execute_batch("PRAGMA wal_checkpoint(TRUNCATE)")
        .expect("checkpoint");
    drop(conn);
    (world, store::db_path(&state))
}

/// mfad refuses the damaged store without touching it, says which file,
/// and mfactl run by root says mfad is unreachable (exit 3).
fn refused_untouched(world: &World, db: &Path, what: &str) {
    let state = world.daemon.state_dir();
    let before = files(&state);
    let out = mfad_refuses(world);
    let text = format!("{}{}", out.stdout, out.stderr);
    eprintln!("{what}: mfad said:\n{text}");
    assert!(
        text.contains(&db.display().to_string()) && text.contains("not usable"),
        "{what}: mfad's message must name the store file:\n{text}"
    );
    assert!(
        !text.contains("panicked"),
        "{what}: mfad crashed instead of refusing:\n{text}"
    );
    let after = files(&state);
    assert_eq!(
        after.keys().collect::<Vec<_>>(),
        before.keys().collect::<Vec<_>>(),
        "{what}: mfad left files behind or removed some"
    );
    for (name, bytes) in &before {
        assert!(
            after.get(name) == Some(bytes),
            "{what}: mfad changed {name}"
        );
    }
    let root = users::root();
    for args in [&["users"][..], &["list"][..], &["--json", "users"][..]] {
        let out = mfactl(world, &root, args);
        assert_eq!(out.code(), Some(3), "mfactl {args:?}:\n{}", out.describe());
        assert!(
            out.stderr.starts_with("mfactl: cannot reach mfad"),
            "mfactl {args:?}:\n{}",
            out.describe()
        );
    }
}

#[test]
fn a_truncated_store_is_refused_and_left_as_it_is() {
    let (world, db) = stopped_world();
    let len = std::fs::metadata(&db).expect("db").len();
    assert!(len >= 4 * 4096, "the store is only {len} bytes");
    let file = std::fs::OpenOptions::new()
        .write(true)
        .open(&db)
        .expect("open the db");
    file.set_len(len / 2).expect("truncate");
    drop(file);
    refused_untouched(&world, &db, "truncated to half");
}

#[test]
fn a_store_emptied_or_deleted_under_its_key_is_refused_not_reinitialised() {
    // A zero-length file (a botched restore, `> mfa.sqlite`, a file system
    // that lost it) or no file at all, next to the key of the store that
    // was there: not a new installation.
    for emptied in [true, false] {
        let (world, db) = stopped_world();
        if emptied {
            std::fs::write(&db, b"").expect("empty the db");
        } else {
            std::fs::remove_file(&db).expect("remove the db");
        }
        let what = if emptied { "emptied" } else { "deleted" };
        let out = mfad_refuses(&world);
        assert!(
            out.stderr.contains("secret.key") && out.stderr.contains(&db.display().to_string()),
            "{what}: mfad must say why it refuses:\n{}",
            out.describe()
        );
        eprintln!("{what}: mfad said:\n{}", out.stderr);
        match std::fs::metadata(&db) {
            Ok(meta) => assert_eq!(meta.len(), 0, "{what}: mfad wrote a fresh store"),
            Err(_) => assert!(!emptied),
        }
    }
}

#[test]
fn a_store_with_garbage_pages_is_refused_and_left_as_it_is() {
    let (world, db) = stopped_world();
    let mut bytes = std::fs::read(&db).expect("read the db");
    let pages = bytes.len() / 4096;
    assert!(pages >= 4, "the store has only {pages} pages");
    // Page 1 (the header and the schema) stays; two others become noise.
    let mut noise = 0x2545_f491_4f6c_dd1du64;
    for page in [1, pages - 1] {
        for byte in &mut bytes[page * 4096..(page + 1) * 4096] {
            noise ^= noise << 13;
            noise ^= noise >> 7;
            noise ^= noise << 17;
            *byte = noise as u8;
        }
    }
    std::fs::write(&db, &bytes).expect("write the damaged db");
    refused_untouched(&world, &db, "garbage pages");
}

#[test]
fn damage_found_while_running_refuses_logins_and_mfactl_reports_it() {
    let mut world = World::with_config(&DaemonConfig::default());
    let alice = users::named("alice");
    let totp = Totp::default_params();
    world.enrol_totp(&alice, &totp);
    world.enrol_totp(&users::root(), &Totp::default_params());
    let state = world.daemon.state_dir();
    // Garbage over the factors table, in the file under mfad's feet.
    let damage = store::open_for_damage(&state);
    let root_page: i64 = damage
        .query_row(
            "SELECT rootpage FROM sqlite_master WHERE name = 'factors'",
            [],
            |r| r.get(0),
        )
        .expect("factors' root page");
    damage
        .execute_batch("PRAGMA wal_checkpoint(TRUNCATE)")
        .expect("checkpoint");
    let db = store::db_path(&state);
    let mut bytes = std::fs::read(&db).expect("read the db");
    let page = usize::try_from(root_page).expect("page number") - 1;
    bytes[page * 4096..(page + 1) * 4096].fill(0x5a);
    std::fs::write(&db, &bytes).expect("write the damaged db");
    // Another writer commits: mfad drops its page cache and reads the file.
    damage
        .execute_batch(
            "BEGIN IMMEDIATE;
             INSERT INTO lockout (user, failures, locked_until) VALUES ('nobody-here', 0, 0);
             DELETE FROM lockout WHERE user = 'nobody-here';
             COMMIT;",
        )
        .expect("a write elsewhere in the store");
    drop(damage);

    let login = world.login(&alice, &[&totp.code(1)]);
    login.assert_rc(PAM_AUTH_ERR);
    assert_eq!(
        login.errors(),
        vec!["The second factor could not be checked."],
        "{login:#?}"
    );
    let root = users::root();
    for (user, args) in [
        (&root, &["users"][..]),
        (&root, &["list"][..]),
        (&alice, &["list"][..]),
        (&alice, &["--json", "list"][..]),
    ] {
        let out = mfactl(&world, user, args);
        assert_eq!(
            out.code(),
            Some(1),
            "mfactl {args:?} as {}:\n{}",
            user.name,
            out.describe()
        );
        assert!(
            out.stderr.contains("store could not be read"),
            "mfactl {args:?} as {}:\n{}",
            user.name,
            out.describe()
        );
    }
    assert!(
        world.daemon.log().contains("malformed"),
        "mfad's log should say what is wrong:\n{}",
        world.daemon.log()
    );

    // Restarted, mfad checks the store and refuses it: never a fresh one.
    world.daemon.kill9();
    let out = mfad_refuses(&world);
    assert!(
        out.stderr.contains(&db.display().to_string()),
        "{}",
        out.describe()
    );
    assert!(std::fs::read(&db).expect("db").len() >= bytes.len());
    // Nothing was accepted on the way.
    assert_ne!(login.rc, PAM_SUCCESS);
}
