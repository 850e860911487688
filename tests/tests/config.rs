//! `mfad --check-config`: the shipped example is valid, every kind of bad
//! config is refused with the key and the line named.

use mfa_tests::daemon::DaemonConfig;
use mfa_tests::process::{run, Finished};
use std::path::Path;
use std::process::Command;

fn check(path: &Path) -> Finished {
    let mut cmd = Command::new(mfa_tests::bins::mfad());
    cmd.arg("--check-config").arg("--config").arg(path);
    run("mfad --check-config", &mut cmd, "", mfa_tests::QUICK)
}

/// A valid config with every key, as the other tests use it.
fn valid(dir: &Path) -> String {
    DaemonConfig::default().to_toml(&dir.join("state"))
}

/// `text` with `line` added right after the line `after`; returns the text
/// and the 1-based number of the added line.
fn insert_after(text: &str, after: &str, line: &str) -> (String, usize) {
    let mut lines: Vec<&str> = text.lines().collect();
    let at = lines
        .iter()
        .position(|l| *l == after)
        .unwrap_or_else(|| panic!("no line {after:?}"));
    lines.insert(at + 1, line);
    (lines.join("\n") + "\n", at + 2)
}

/// `text` with the line starting with `prefix` replaced; returns the text
/// and the 1-based number of that line.
fn replace_line(text: &str, prefix: &str, line: &str) -> (String, usize) {
    let mut lines: Vec<&str> = text.lines().collect();
    let at = lines
        .iter()
        .position(|l| l.starts_with(prefix))
        .unwrap_or_else(|| panic!("no line starting {prefix:?}"));
    lines[at] = line;
    (lines.join("\n") + "\n", at + 1)
}

#[track_caller]
fn assert_refused(dir: &Path, name: &str, text: &str, key: &str, line: Option<usize>) {
    let path = dir.join(format!("{name}.toml"));
    std::fs::write(&path, text).expect("write config");
    let out = check(&path);
    let said = format!("{}{}", out.stdout, out.stderr);
    assert!(!out.status.success(), "{name}: accepted:\n{text}");
    assert!(
        said.contains(key),
        "{name}: the message does not name {key:?}: {said}"
    );
    if let Some(line) = line {
        let names_line =
            said.contains(&format!(":{line}:")) || said.contains(&format!("line {line}"));
        assert!(
            names_line,
            "{name}: the message does not name line {line}: {said}"
        );
    }
}

#[test]
fn the_shipped_example_config_is_valid() {
    let example = mfa_tests::workspace_root().join("packaging/mfad.toml");
    assert!(example.exists(), "{} is missing", example.display());
    check(&example).assert_success("mfad --check-config packaging/mfad.toml");
}

#[test]
fn the_test_config_is_valid() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("mfad.toml");
    std::fs::write(&path, valid(dir.path())).expect("write");
    check(&path).assert_success("mfad --check-config on the harness's config");
    // --check-config only reads: no state directory appears.
    assert!(
        !dir.path().join("state").exists(),
        "--check-config created the state directory"
    );
}

/// A rule naming a group NSS does not know would apply to nobody: a typo
/// would silently turn a force rule off (issue 8).
#[test]
fn a_rule_naming_a_group_nss_does_not_know_is_refused_unless_it_may_be_missing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let base = valid(dir.path());
    let rule = "[[policy.group]]\ngroup = \"no-such-group-mfa\"\nrequire = \"force\"\n";
    let text = format!("{base}{rule}");
    let line = text
        .lines()
        .position(|l| l.contains("no-such-group-mfa"))
        .expect("line")
        + 1;
    assert_refused(
        dir.path(),
        "unknown-group",
        &text,
        "policy.group[1].group",
        Some(line),
    );
    let path = dir.path().join("unknown-group.toml");
    let out = check(&path);
    assert!(
        out.stderr
            .contains("NSS knows no group \"no-such-group-mfa\"")
            && out.stderr.contains("allow_missing = true"),
        "{}",
        out.describe()
    );

    let allowed = dir.path().join("allowed.toml");
    std::fs::write(&allowed, format!("{text}allow_missing = true\n")).expect("write");
    let out = check(&allowed);
    out.assert_success("a group allowed to be missing");
    assert!(out.stderr.contains("warning"), "{}", out.describe());

    let (text, line) = insert_after(&base, "[policy.default]", "allow_missing = true");
    assert_refused(
        dir.path(),
        "default-allow-missing",
        &text,
        "policy.default.allow_missing",
        Some(line),
    );
}

#[test]
fn bypass_rules_have_a_scope_and_ipv4_mapped_networks_mean_ipv4() {
    let dir = tempfile::tempdir().expect("tempdir");
    let base = valid(dir.path());
    let rule = |extra: &str| {
        format!("{base}[bypass]\nenabled = true\n[[bypass.rule]]\nname = \"office\"\nnetwork = \"::ffff:192.0.2.0/120\"\n{extra}")
    };
    let path = dir.path().join("scoped.toml");
    std::fs::write(&path, rule("scope = \"all\"\n")).expect("write");
    check(&path).assert_success("scope = all, a mapped network");
    let text = rule("scope = \"sometimes\"\n");
    let line = text.lines().count();
    assert_refused(
        dir.path(),
        "bad-scope",
        &text,
        "bypass.rule[1].scope",
        Some(line),
    );
    let text = format!("{base}[[bypass.rule]]\nname = \"mixed\"\nnetwork = \"::ffff:0:0/95\"\n");
    assert_refused(
        dir.path(),
        "mixed-mapped",
        &text,
        "bypass.rule[1].network",
        None,
    );
}

/// A fleet store over the network must be TLS, verified; plaintext only on
/// a local socket (issue 10).
#[test]
fn a_postgresql_store_needs_verified_tls_unless_on_a_local_socket() {
    let dir = tempfile::tempdir().expect("tempdir");
    let base = valid(dir.path());
    let store = |body: &str| format!("{base}[store]\nbackend = \"postgresql\"\n{body}");
    let (plain, line) = {
        let text = store("host = \"db.example.org\"\ntls = \"none\"\n");
        let line = text
            .lines()
            .position(|l| l.starts_with("tls"))
            .expect("line")
            + 1;
        (text, line)
    };
    assert_refused(dir.path(), "plaintext", &plain, "store.tls", Some(line));
    assert_refused(
        dir.path(),
        "no-ca",
        &store("host = \"db.example.org\"\n"),
        "store.ca_file",
        None,
    );
    assert_refused(dir.path(), "no-host", &store(""), "store.host", None);
    assert_refused(
        dir.path(),
        "relative-ca",
        &store("host = \"db.example.org\"\nca_file = \"ca.pem\"\n"),
        "store.ca_file",
        None,
    );
    assert_refused(
        dir.path(),
        "sqlite-with-host",
        &format!("{base}[store]\nhost = \"db.example.org\"\n"),
        "store.host",
        None,
    );
    for (name, body) in [
        ("tls", "host = \"db.example.org\"\nca_file = \"/etc/mfa/db-ca.pem\"\npassword_file = \"/etc/mfa/db-password\"\n"),
        ("socket", "host = \"/run/postgresql\"\ntls = \"none\"\n"),
    ] {
        let path = dir.path().join(format!("{name}.toml"));
        std::fs::write(&path, store(body)).expect("write");
        check(&path).assert_success(name);
    }
}

#[test]
fn unknown_keys_and_sections_are_refused_with_their_line() {
    let dir = tempfile::tempdir().expect("tempdir");
    let base = valid(dir.path());
    let (text, line) = insert_after(&base, "[login]", "colour = \"blue\"");
    assert_refused(dir.path(), "unknown-key", &text, "colour", Some(line));
    let (text, line) = insert_after(&base, "version = 1", "frobnicate = 1");
    assert_refused(
        dir.path(),
        "unknown-top-key",
        &text,
        "frobnicate",
        Some(line),
    );
    let text = format!("{base}\n[frobnicator]\nenabled = true\n");
    assert_refused(dir.path(), "unknown-section", &text, "frobnicator", None);
}

#[test]
fn wrong_types_are_refused_with_key_and_line() {
    let dir = tempfile::tempdir().expect("tempdir");
    let base = valid(dir.path());
    let (text, line) = replace_line(&base, "max_tries", "max_tries = \"three\"");
    assert_refused(dir.path(), "string-for-int", &text, "max_tries", Some(line));
    let (text, line) = replace_line(&base, "admin_group", "admin_group = 0");
    assert_refused(
        dir.path(),
        "int-for-string",
        &text,
        "admin_group",
        Some(line),
    );
    let (text, line) = replace_line(&base, "timeout", "timeout = -5");
    assert_refused(dir.path(), "negative", &text, "timeout", Some(line));
}

#[test]
fn out_of_range_values_are_refused_with_key_and_line() {
    let dir = tempfile::tempdir().expect("tempdir");
    let base = valid(dir.path());
    let (text, line) = replace_line(&base, "digits = 6", "digits = 9");
    assert_refused(dir.path(), "totp-digits-9", &text, "digits", Some(line));
    let (text, line) = replace_line(&base, "algorithm", "algorithm = \"MD5\"");
    assert_refused(dir.path(), "md5", &text, "algorithm", Some(line));
    let (text, line) = replace_line(&base, "require", "require = \"maybe\"");
    assert_refused(dir.path(), "require", &text, "require", Some(line));
    let (text, line) = replace_line(&base, "log", "log = \"journal\"");
    assert_refused(dir.path(), "log", &text, "log", Some(line));
    let (text, line) = replace_line(&base, "max_tries", "max_tries = 0");
    assert_refused(dir.path(), "max-tries-0", &text, "max_tries", Some(line));
}

#[test]
fn a_missing_or_wrong_version_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let base = valid(dir.path());
    let without: String = base
        .lines()
        .filter(|l| !l.starts_with("version"))
        .map(|l| format!("{l}\n"))
        .collect();
    assert_refused(dir.path(), "no-version", &without, "version", None);
    let (text, line) = replace_line(&base, "version", "version = 2");
    assert_refused(dir.path(), "version-2", &text, "version", Some(line));
}

#[test]
fn broken_toml_names_the_line() {
    let dir = tempfile::tempdir().expect("tempdir");
    let base = valid(dir.path());
    let (text, line) = replace_line(&base, "issuer", "issuer = \"pam_mfa");
    let path = dir.path().join("broken.toml");
    std::fs::write(&path, &text).expect("write");
    let out = check(&path);
    assert!(!out.status.success());
    let said = format!("{}{}", out.stdout, out.stderr);
    assert!(
        said.contains(&format!(":{line}")) || said.contains(&format!("line {line}")),
        "{said}"
    );
}

#[test]
fn a_missing_file_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = check(&dir.path().join("nope.toml"));
    assert!(!out.status.success());
    assert!(format!("{}{}", out.stdout, out.stderr).contains("nope.toml"));
}

#[test]
fn mfad_refuses_to_start_on_a_bad_config() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (text, _) = replace_line(&valid(dir.path()), "digits = 6", "digits = 9");
    let path = dir.path().join("mfad.toml");
    std::fs::write(&path, text).expect("write");
    let mut cmd = Command::new(mfa_tests::bins::mfad());
    cmd.arg("--config")
        .arg(&path)
        .arg("--bus-address")
        .arg(format!("unix:path={}", dir.path().join("no-bus").display()));
    let out = run("mfad", &mut cmd, "", mfa_tests::QUICK);
    assert!(!out.status.success());
    assert!(out.stderr.contains("digits"), "{}", out.describe());
    assert!(
        !dir.path().join("state").exists(),
        "the store was created from a bad config"
    );
}

/// `[email]`: TLS only, a sender and a relay, templates with known
/// placeholders, and files a send can use — each refused by name.
#[test]
fn email_wants_tls_a_sender_known_placeholders_and_private_credentials() {
    let dir = tempfile::tempdir().expect("tmp");
    let with = |lines: &str| {
        format!(
            "{}\n[email]\nenabled = true\nrelay = \"smtp.example.org\"\nfrom = \"pam_mfa <mfa@example.org>\"\n{lines}\n",
            valid(dir.path())
        )
    };
    let path = dir.path().join("email.toml");
    std::fs::write(&path, with("")).expect("write");
    let plain = check(&path);
    plain.assert_success("a plain [email]");
    assert!(
        plain
            .stderr
            .contains("note: mfad must reach the SMTP relay smtp.example.org:587")
            && plain.stderr.contains("mfad-network.conf"),
        "the unit has no network: the check says what to open: {}",
        plain.describe()
    );
    let off = dir.path().join("no-email.toml");
    std::fs::write(&off, valid(dir.path())).expect("write");
    let quiet = check(&off);
    quiet.assert_success("no [email]");
    assert!(!quiet.stderr.contains("must reach"), "{}", quiet.describe());
    for (name, lines, key) in [
        ("plaintext", "tls = \"none\"", "email.tls"),
        ("opportunistic", "tls = \"opportunistic\"", "email.tls"),
        ("no code", "template = \"Hello {user}\"", "email.template"),
        ("typo", "template = \"{code} for {usr}\"", "email.template"),
        ("code in subject", "subject = \"{code}\"", "email.subject"),
        ("short", "code_length = 5", "email.code_length"),
        ("long", "code_length = 21", "email.code_length"),
        ("slow", "send_timeout = 30", "email.send_timeout"),
        (
            "no user",
            "address = \"everyone@example.org\"",
            "email.address",
        ),
        ("relative", "ca_file = \"ca.pem\"", "email.ca_file"),
    ] {
        assert_refused(dir.path(), name, &with(lines), key, None);
    }
    let no_sender = with("").replace("from = \"pam_mfa <mfa@example.org>\"\n", "");
    assert_refused(dir.path(), "no sender", &no_sender, "email.from", None);
    let bad_sender = with("").replace("<mfa@example.org>", "<mfa@localhost>");
    assert_refused(dir.path(), "bad sender", &bad_sender, "email.from", None);

    // Files: the credentials only root reads; a CA that is a certificate.
    use std::os::unix::fs::PermissionsExt;
    let credentials = dir.path().join("smtp-credentials");
    std::fs::write(&credentials, "mfad\nsecret\n").expect("write");
    std::fs::set_permissions(&credentials, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    let line = format!("credentials_file = \"{}\"", credentials.display());
    assert_refused(
        dir.path(),
        "readable credentials",
        &with(&line),
        "chmod 600",
        None,
    );
    std::fs::set_permissions(&credentials, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    std::fs::write(dir.path().join("private.toml"), with(&line)).expect("write");
    check(&dir.path().join("private.toml")).assert_success("private credentials");
    std::fs::write(&credentials, "mfad\n").expect("write");
    assert_refused(dir.path(), "no password", &with(&line), "second", None);
    let ca = dir.path().join("ca.pem");
    std::fs::write(&ca, "not a certificate").expect("write");
    let line = format!("ca_file = \"{}\"", ca.display());
    assert_refused(dir.path(), "not a CA", &with(&line), "email] ca_file", None);
}

#[test]
fn policy_unlock_is_ask_or_never() {
    let dir = tempfile::tempdir().expect("tmp");
    let text = valid(dir.path());
    for ok in ["ask", "never"] {
        let (t, _) = insert_after(&text, "[policy]", &format!("unlock = \"{ok}\""));
        let path = dir.path().join(format!("{ok}.toml"));
        std::fs::write(&path, t).expect("write");
        check(&path).assert_success(ok);
    }
    let (t, line) = insert_after(&text, "[policy]", "unlock = \"sometimes\"");
    assert_refused(dir.path(), "sometimes", &t, "policy.unlock", Some(line));
}

/// The database password file must be private to mfad (0600): a 0644 one
/// is refused by --check-config, which names the file; a `[store] timeout`
/// not below pam_mfa's default per-call timeout is warned about (issue 10).
#[test]
fn check_config_refuses_a_readable_password_file_and_warns_of_a_long_store_timeout() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().expect("tempdir");
    let base = valid(dir.path());
    let password = dir.path().join("db-password");
    std::fs::write(&password, "secret\n").expect("write");
    let store = |timeout: u64| {
        format!(
            "{base}[store]\nbackend = \"postgresql\"\nhost = \"db.example.org\"\n\
             ca_file = \"/etc/mfa/db-ca.pem\"\npassword_file = \"{}\"\ntimeout = {timeout}\n",
            password.display()
        )
    };
    std::fs::set_permissions(&password, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    assert_refused(
        dir.path(),
        "readable-password",
        &store(3),
        &password.display().to_string(),
        None,
    );
    std::fs::set_permissions(&password, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    let path = dir.path().join("private-password.toml");
    std::fs::write(&path, store(3)).expect("write");
    let quiet = check(&path);
    quiet.assert_success("0600 password file");
    assert!(!quiet.stderr.contains("warning"), "{}", quiet.stderr);

    let module = mfa_dbus::DEFAULT_CALL_TIMEOUT_SECS;
    std::fs::write(&path, store(module)).expect("write");
    let long = check(&path);
    long.assert_success("a long timeout is a warning");
    assert!(
        long.stderr.contains("warning: store.timeout") && long.stderr.contains("per-call timeout"),
        "{}",
        long.stderr
    );
}
