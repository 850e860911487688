//! google-authenticator files brought over whole (issue 13): files written
//! by the real `google-authenticator` tool (libpam-google-authenticator),
//! imported with `mfactl import google-authenticator`, then used at a real
//! libpam login with codes from oathtool and the file's own scratch codes.
//! A user's own file; an admin's import of every home directory, all or
//! none; damaged and foreign files named with their line; the files never
//! changed.

use mfa_tests::otp::{self, Algorithm, Totp};
use mfa_tests::pam::PAM_SUCCESS;
use mfa_tests::process::{run, Finished};
use mfa_tests::users::{self, command_as, TestUser};
use mfa_tests::World;
use serde_json::Value;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Write a file with the real tool, as `user` would have it: theirs,
/// readable by them alone.
fn google_authenticator(path: &Path, user: &TestUser, args: &[&str]) -> String {
    let out = Command::new("google-authenticator")
        .args(args)
        .args(["--force", "--quiet", "--secret"])
        .arg(path)
        .output()
        .expect("google-authenticator (apt-get install libpam-google-authenticator)");
    assert!(out.status.success(), "google-authenticator: {out:?}");
    give(path, user);
    std::fs::read_to_string(path).expect("the file")
}

fn give(path: &Path, user: &TestUser) {
    std::os::unix::fs::chown(path, Some(user.uid), Some(user.gid)).expect("chown");
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o400)).expect("chmod");
}

fn secret_of(text: &str) -> String {
    text.lines().next().expect("a secret").trim().to_string()
}

fn scratch_codes(text: &str) -> Vec<String> {
    text.lines()
        .filter(|l| l.len() == 8 && l.bytes().all(|b| b.is_ascii_digit()))
        .map(String::from)
        .collect()
}

fn ga_totp(secret: &str) -> Totp {
    Totp {
        secret: secret.into(),
        algorithm: Algorithm::Sha1,
        digits: 6,
        period: 30,
    }
}

fn import(world: &World, user: &TestUser, args: &[&str]) -> Finished {
    let mut all = vec!["--json", "import", "google-authenticator"];
    all.extend_from_slice(args);
    world.mfactl(user, &all)
}

fn report(out: &Finished) -> Value {
    out.assert_success("mfactl import");
    serde_json::from_str(out.stdout.trim()).unwrap_or_else(|e| panic!("{e}: {}", out.describe()))
}

fn outcomes(report: &Value) -> Vec<(String, String, String)> {
    report["entries"]
        .as_array()
        .expect("entries")
        .iter()
        .map(|e| {
            (
                e["user"].as_str().unwrap_or_default().to_string(),
                e["kind"].as_str().unwrap_or_default().to_string(),
                e["outcome"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect()
}

fn notes(report: &Value) -> String {
    report["notes"].to_string()
}

fn factors(world: &World, user: &TestUser) -> Vec<Value> {
    mfa_tests::probe::list_factors(world.address(), user)
}

fn entry(user: &str, kind: &str, outcome: &str) -> (String, String, String) {
    (user.into(), kind.into(), outcome.into())
}

#[test]
fn a_users_own_file_comes_over_whole_with_its_scratch_codes() {
    let world = World::start();
    let alice = users::named("alice");
    let dir = tempfile::tempdir().expect("tmp");
    let path = dir.path().join("google_authenticator");
    let text = google_authenticator(
        &path,
        &alice,
        &["-t", "-d", "-r", "3", "-R", "30", "-w", "3", "-e", "5"],
    );
    let file = path.display().to_string();

    let dry = report(&import(&world, &alice, &["--dry-run", &file]));
    assert!(factors(&world, &alice).is_empty(), "a dry run adds nothing");
    assert_eq!(outcomes(&dry)[0], entry("alice", "totp", "would-add"));

    let done = report(&import(&world, &alice, &[&file]));
    let mut expected = vec![entry("alice", "totp", "added")];
    expected.extend((0..5).map(|_| entry("alice", "recovery-code", "added")));
    assert_eq!(outcomes(&done), expected);
    let said = notes(&done);
    assert!(
        said.contains("RATE_LIMIT 3 logins per 30 s is not carried over")
            && said.contains("WINDOW_SIZE 3 is not carried over")
            && said.contains("5 scratch codes become recovery codes"),
        "{said}"
    );

    let totp = ga_totp(&secret_of(&text));
    world.login(&alice, &[&totp.code(1)]).assert_rc(PAM_SUCCESS);
    let scratch = scratch_codes(&text);
    let used = world.login(&alice, &[&scratch[0]]);
    used.assert_rc(PAM_SUCCESS);
    assert!(
        used.infos().iter().any(|i| i.contains("4 left")),
        "{used:#?}"
    );
    assert_ne!(
        world.login(&alice, &[&scratch[0]]).rc,
        PAM_SUCCESS,
        "a scratch code works once"
    );
    assert_eq!(
        std::fs::read_to_string(&path).expect("still there"),
        text,
        "the user's file is never changed"
    );

    let again = report(&import(&world, &alice, &[&file]));
    assert!(
        outcomes(&again).iter().all(|(_, _, o)| o == "exists"),
        "{again}"
    );
    assert_eq!(factors(&world, &alice).len(), 1, "twice is once");
    assert_ne!(
        world.login(&alice, &[&scratch[0]]).rc,
        PAM_SUCCESS,
        "a second import brings no used code back"
    );
}

#[test]
fn a_counter_and_the_steps_already_used_carry_over() {
    let world = World::start();
    let bob = users::named("bob");
    let dir = tempfile::tempdir().expect("tmp");
    let hotp_path = dir.path().join("hotp");
    let text = google_authenticator(&hotp_path, &bob, &["-c", "-w", "5", "-u", "-e", "1"]);
    assert!(text.contains("\" HOTP_COUNTER 1"), "{text}");
    report(&import(&world, &bob, &[&hotp_path.display().to_string()]));
    let secret = secret_of(&text);
    assert_ne!(
        world.login(&bob, &[&otp::oath_hotp(&secret, 0, 6)]).rc,
        PAM_SUCCESS,
        "counter 0 was used up with google-authenticator"
    );
    world
        .login(&bob, &[&otp::oath_hotp(&secret, 1, 6)])
        .assert_rc(PAM_SUCCESS);

    // A TOTP step google-authenticator saw used stays used.
    let dave = users::named("dave");
    let totp_path = dir.path().join("totp");
    let made = google_authenticator(&totp_path, &dave, &["-t", "-d", "-w", "3", "-u", "-e", "0"]);
    let totp = ga_totp(&secret_of(&made));
    let step = totp.step_at(otp::now());
    let used = made.replace("\" DISALLOW_REUSE", &format!("\" DISALLOW_REUSE {}", step));
    std::fs::set_permissions(&totp_path, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    std::fs::write(&totp_path, &used).expect("write");
    give(&totp_path, &dave);
    report(&import(&world, &dave, &[&totp_path.display().to_string()]));
    assert_ne!(
        world.login(&dave, &[&totp.code_for_step(step)]).rc,
        PAM_SUCCESS,
        "the step used before the move"
    );
    world
        .login(&dave, &[&totp.code_for_step(step + 1)])
        .assert_rc(PAM_SUCCESS);
}

#[test]
fn damaged_and_foreign_files_are_named_with_their_line_and_change_nothing() {
    let world = World::start();
    let carol = users::named("carol");
    let dir = tempfile::tempdir().expect("tmp");
    let good = google_authenticator(
        &dir.path().join("good"),
        &carol,
        &["-t", "-d", "-w", "3", "-u", "-e", "2"],
    );
    let truncated = good[..good.len() - 3].to_string();
    let secret = secret_of(&good);
    for (name, text, line, words) in [
        ("truncated", truncated.as_str(), 6, "scratch code"),
        (
            "foreign",
            "alice:AAAA,BBBB,es256,+presence\n",
            1,
            "base32 secret",
        ),
        (
            "unknown",
            &format!("{secret}\n\" SECRET_LOG on\n") as &str,
            2,
            "not an option",
        ),
        (
            "both",
            &format!("{secret}\n\" TOTP_AUTH\n\" HOTP_COUNTER 4\n") as &str,
            3,
            "time-based or counter-based",
        ),
    ] {
        let path = dir.path().join(name);
        std::fs::write(&path, text).expect("write");
        give(&path, &carol);
        let out = import(&world, &carol, &[&path.display().to_string()]);
        assert_eq!(out.code(), Some(1), "{name}: {}", out.describe());
        let said = format!("{}: line {line}: ", path.display());
        assert!(
            out.stderr.contains(&said) && out.stderr.contains(words),
            "{name}: wants {said:?} and {words:?}: {}",
            out.describe()
        );
        assert!(factors(&world, &carol).is_empty(), "{name}: nothing added");
    }
    let binary = dir.path().join("binary");
    std::fs::write(&binary, b"\x7fELF\x02\x01\x01\0\0\0\xff\xfe").expect("write");
    give(&binary, &carol);
    let out = import(&world, &carol, &[&binary.display().to_string()]);
    assert_eq!(out.code(), Some(2), "{}", out.describe());
    assert!(
        out.stderr
            .contains(&format!("{}: line 1: not text", binary.display())),
        "{}",
        out.describe()
    );
}

/// A passwd file listing root, alice, bob and carol with homes below `dir`.
fn passwd_with_homes(dir: &Path) -> (PathBuf, PathBuf) {
    let mut passwd = String::from("root:x:0:0:root:/root:/bin/sh\n");
    let mut group = String::from("root:x:0:\n");
    for name in ["alice", "bob", "carol"] {
        let user = users::named(name);
        let home = dir.join(name);
        std::fs::create_dir_all(&home).expect("home");
        passwd.push_str(&format!(
            "{name}:x:{}:{}::{}:/bin/sh\n",
            user.uid,
            user.gid,
            home.display()
        ));
        group.push_str(&format!("{name}:x:{}:\n", user.gid));
    }
    let (p, g) = (dir.join("passwd"), dir.join("group"));
    std::fs::write(&p, passwd).expect("passwd");
    std::fs::write(&g, group).expect("group");
    (p, g)
}

fn import_every_home(world: &World, nss: &(PathBuf, PathBuf), extra: &[&str]) -> Finished {
    let mut cmd = command_as(&users::root(), &mfa_tests::bins::mfactl());
    users::use_nss_wrapper(&mut cmd, &nss.0, &nss.1);
    cmd.arg("--bus-address")
        .arg(world.address())
        .args(["--json", "import", "google-authenticator", "--all"])
        .args(extra);
    run("mfactl import --all", &mut cmd, "", mfa_tests::QUICK)
}

#[test]
fn an_admin_imports_every_home_all_or_none() {
    let world = World::start();
    let dir = tempfile::tempdir().expect("tmp");
    let nss = passwd_with_homes(dir.path());
    let (alice, bob) = (users::named("alice"), users::named("bob"));
    let alices_file = dir.path().join("alice/.google_authenticator");
    let alices = google_authenticator(
        &alices_file,
        &alice,
        &["-t", "-d", "-w", "3", "-u", "-e", "3"],
    );
    let bobs_file = dir.path().join("bob/.google_authenticator");
    let bobs = google_authenticator(&bobs_file, &bob, &["-c", "-w", "3", "-u", "-e", "0"]);
    // carol's is a link to alice's: never followed.
    std::os::unix::fs::symlink(&alices_file, dir.path().join("carol/.google_authenticator"))
        .expect("symlink");

    let dry = report(&import_every_home(&world, &nss, &["--dry-run"]));
    assert_eq!(
        outcomes(&dry)
            .into_iter()
            .filter(|(_, kind, _)| kind != "recovery-code")
            .collect::<Vec<_>>(),
        vec![
            entry("alice", "totp", "would-add"),
            entry("bob", "hotp", "would-add")
        ]
    );
    assert!(notes(&dry).contains("carol: ") && notes(&dry).contains("symbolic link"));
    assert!(factors(&world, &alice).is_empty() && factors(&world, &bob).is_empty());

    // One damaged file: nobody's is imported, and the file and line are named.
    std::fs::set_permissions(&bobs_file, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    std::fs::write(&bobs_file, format!("{bobs}\" WINDOW_SIZE many\n")).expect("damage");
    give(&bobs_file, &bob);
    let refused = import_every_home(&world, &nss, &[]);
    assert_eq!(refused.code(), Some(1), "{}", refused.describe());
    assert!(
        refused
            .stderr
            .contains(&format!("{}: line ", bobs_file.display()))
            && refused.stderr.contains("nothing was imported for anyone"),
        "{}",
        refused.describe()
    );
    assert!(factors(&world, &alice).is_empty(), "not even alice's");

    std::fs::set_permissions(&bobs_file, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    std::fs::write(&bobs_file, &bobs).expect("repair");
    give(&bobs_file, &bob);
    report(&import_every_home(&world, &nss, &[]));
    world
        .login(&alice, &[&ga_totp(&secret_of(&alices)).code(1)])
        .assert_rc(PAM_SUCCESS);
    world
        .login(&bob, &[&otp::oath_hotp(&secret_of(&bobs), 1, 6)])
        .assert_rc(PAM_SUCCESS);
    assert_eq!(
        std::fs::read_to_string(&alices_file).expect("alice's file"),
        alices
    );
}
