//! Keys brought over from pam_u2f (issue 9): files written as pamu2fcfg
//! writes them, from credentials made on the fake key by this test (through
//! ctap-hid-fido2, as pamu2fcfg does through libfido2), imported with
//! `mfactl import pam-u2f` and then used at a real libpam login: mfad drives
//! the key. Every line or none; twice is harmless; a dry run changes
//! nothing; a bad line is named.

use data_encoding::{BASE64, BASE64URL_NOPAD, HEXLOWER};
use mfa_tests::daemon::DaemonConfig;
use mfa_tests::directory::{Order, TestDirectory};
use mfa_tests::fakekey::FakeKey;
use mfa_tests::pam::{PAM_AUTH_ERR, PAM_SUCCESS};
use mfa_tests::process::{run, Finished};
use mfa_tests::users::{self, command_as, TestUser};
use mfa_tests::World;
use serde_json::Value;

const RP: &str = "pam://testhost";

fn world_with_key(key: &FakeKey) -> World {
    World::with_config(&DaemonConfig {
        policy_tables: key.mfad_table(RP),
        ..DaemonConfig::default()
    })
}

fn mfactl(world: &World, user: &TestUser, args: &[&str]) -> Finished {
    let mut cmd = command_as(user, &mfa_tests::bins::mfactl());
    cmd.arg("--bus-address").arg(world.address()).args(args);
    run("mfactl", &mut cmd, "", mfa_tests::QUICK)
}

/// A file others may read (the test users run mfactl), holding `text`.
fn file(dir: &tempfile::TempDir, name: &str, text: &str) -> String {
    let path = dir.path().join(name);
    std::fs::write(&path, text).expect("write the file");
    path.display().to_string()
}

/// A new-format line of `user` for a credential made on `key`.
fn new_format(key: &FakeKey, user: &str) -> String {
    let (id, point) = key.make_credential(RP, false);
    // pamu2fcfg writes x‖y, without the leading 04.
    format!(
        "{user}:{},{},es256,+presence",
        BASE64.encode(&id),
        BASE64.encode(&point[1..])
    )
}

fn report(out: &Finished) -> Value {
    out.assert_success("mfactl import");
    serde_json::from_str(out.stdout.trim()).unwrap_or_else(|e| panic!("{e}: {}", out.describe()))
}

fn outcomes(report: &Value) -> Vec<(String, String)> {
    report["entries"]
        .as_array()
        .expect("entries")
        .iter()
        .map(|e| {
            (
                e["user"].as_str().unwrap_or_default().to_string(),
                e["outcome"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect()
}

fn pair(user: &str, outcome: &str) -> (String, String) {
    (user.to_string(), outcome.to_string())
}

#[test]
fn a_users_own_u2f_keys_file_is_imported_once_and_its_key_logs_in() {
    let key = FakeKey::start();
    let world = world_with_key(&key);
    let alice = users::named("alice");
    let dir = mfa_tests::shared_tempdir("u2f-");
    let original = format!("# pamu2fcfg\n{}\n", new_format(&key, "alice"));
    let path = file(&dir, "u2f_keys", &original);

    let dry = report(&mfactl(
        &world,
        &alice,
        &["--json", "import", "pam-u2f", "--dry-run", &path],
    ));
    assert_eq!(outcomes(&dry), vec![pair("alice", "would-add")]);
    assert_eq!(dry["entries"][0]["line"], 2);
    login_refused_without_factor(&world, &alice);

    let done = report(&mfactl(
        &world,
        &alice,
        &["--json", "import", "pam-u2f", &path],
    ));
    assert_eq!(outcomes(&done), vec![pair("alice", "added")]);
    let ok = world.login(&alice, &[]);
    ok.assert_rc(PAM_SUCCESS);
    assert!(ok.prompts().is_empty(), "{ok:#?}");

    let again = report(&mfactl(
        &world,
        &alice,
        &["--json", "import", "pam-u2f", &path],
    ));
    assert_eq!(
        outcomes(&again),
        vec![pair("alice", "exists")],
        "twice changes nothing"
    );
    assert_eq!(
        std::fs::read_to_string(&path).expect("read"),
        original,
        "the file is untouched"
    );
}

#[test]
fn an_eddsa_key_from_pam_u2f_logs_in() {
    let key = FakeKey::start();
    let world = world_with_key(&key);
    let dave = users::named("dave");
    let (id, public) = key.make_credential(RP, true);
    assert_eq!(public.len(), 32, "an Ed25519 key");
    let dir = mfa_tests::shared_tempdir("u2f-");
    let line = format!(
        "dave:{},{},eddsa,+presence\n",
        BASE64.encode(&id),
        BASE64.encode(&public)
    );
    let path = file(&dir, "u2f_keys", &line);
    let done = report(&mfactl(
        &world,
        &dave,
        &["--json", "import", "pam-u2f", &path],
    ));
    assert_eq!(outcomes(&done), vec![pair("dave", "added")]);
    world.login(&dave, &[]).assert_rc(PAM_SUCCESS);
    world.login(&dave, &[]).assert_rc(PAM_SUCCESS);
}

fn login_refused_without_factor(world: &World, user: &TestUser) {
    world.login(user, &[]).assert_rc(PAM_AUTH_ERR);
}

#[test]
fn an_admin_imports_a_central_authfile_old_and_new_format() {
    let key = FakeKey::start();
    // Users from real glibc NSS (nss_wrapper says ENOENT for a user it does
    // not know, which glibc reserves for a source that failed).
    let directory = std::sync::Arc::new(TestDirectory::new("", Order::AfterFiles));
    let world = World::with_directory(
        &DaemonConfig {
            admin_group: users::ADMIN_GROUP.into(),
            policy_tables: key.mfad_table(RP),
            ..DaemonConfig::default()
        },
        directory,
    );
    let (alice, bob, carol) = (
        users::named("alice"),
        users::named("bob"),
        users::named("carol"),
    );
    // bob's key was registered by an old pamu2fcfg, for the appid.
    let (old_id, old_point) = key.make_credential("pam://oldhost", false);
    let old_line = format!(
        "bob:{},{}",
        BASE64URL_NOPAD.encode(&old_id),
        HEXLOWER.encode(&old_point)
    );
    let dir = mfa_tests::shared_tempdir("u2f-");
    let central = file(
        &dir,
        "u2f_mappings",
        &format!(
            "{}\n{old_line}\n{}\n",
            new_format(&key, "alice"),
            new_format(&key, "ghost")
        ),
    );
    // Only an admin may import for others.
    let refused = mfactl(&world, &bob, &["import", "pam-u2f", "--all", &central]);
    assert_eq!(refused.code(), Some(5), "{}", refused.describe());
    let imported = report(&mfactl(
        &world,
        &carol,
        &[
            "--json",
            "import",
            "pam-u2f",
            "--all",
            "--appid",
            "pam://oldhost",
            &central,
        ],
    ));
    assert_eq!(
        outcomes(&imported),
        vec![pair("alice", "added"), pair("bob", "added")]
    );
    assert!(
        imported["notes"]
            .to_string()
            .contains("no user \\\"ghost\\\""),
        "{imported}"
    );
    world.login(&alice, &[]).assert_rc(PAM_SUCCESS);
    world.login(&bob, &[]).assert_rc(PAM_SUCCESS);
    // A user's own import may not carry someone else's lines.
    let mine = mfactl(&world, &alice, &["import", "pam-u2f", &central]);
    assert_eq!(mine.code(), Some(1), "{}", mine.describe());
    assert!(mine.stderr.contains("only your own"), "{}", mine.describe());
}

#[test]
fn a_bad_line_is_named_and_nothing_is_imported() {
    let key = FakeKey::start();
    let world = world_with_key(&key);
    let alice = users::named("alice");
    let dir = mfa_tests::shared_tempdir("u2f-");
    for (text, says) in [
        (format!("{}\nalice:!!!,AAAA,es256,+presence\n", new_format(&key, "alice")), "line 2"),
        ("-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAA\n-----END OPENSSH PRIVATE KEY-----\n".to_string(), "sshformat"),
        (format!("{}\n", new_format(&key, "alice").replace("es256", "rs256")), "RS256"),
    ] {
        let path = file(&dir, "bad", &text);
        let out = mfactl(&world, &alice, &["import", "pam-u2f", &path]);
        assert_eq!(out.code(), Some(1), "{}", out.describe());
        assert!(out.stderr.contains(says), "{says}: {}", out.describe());
        let listed = mfactl(&world, &alice, &["--json", "list"]);
        assert_eq!(listed.stdout.trim(), "[]", "nothing imported: {}", listed.describe());
    }
    let binary = dir.path().join("binary");
    std::fs::write(&binary, [0xff, 0xfe, 0x00, 0x41]).expect("write");
    let out = mfactl(
        &world,
        &alice,
        &["import", "pam-u2f", &binary.display().to_string()],
    );
    assert_eq!(out.code(), Some(2), "{}", out.describe());
    assert!(out.stderr.contains("not text"), "{}", out.describe());
}
