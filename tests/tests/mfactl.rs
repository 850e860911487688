//! mfactl against a real mfad, run as the test users: enrol with oathtool
//! codes, list, remove, the admin table, reset, exit codes — and the QR code
//! it draws, read back by zbarimg.

use mfa_tests::otp::{self, Algorithm, Totp};
use mfa_tests::pam::PAM_SUCCESS;
use mfa_tests::process::{run, Finished, Running};
use mfa_tests::users::{self, command_as, TestUser};
use mfa_tests::World;
use serde_json::Value;
use std::process::Command;

fn mfactl_cmd(world: &World, user: &TestUser, args: &[&str]) -> Command {
    let mut cmd = command_as(user, &mfa_tests::bins::mfactl());
    cmd.arg("--bus-address").arg(world.address()).args(args);
    cmd
}

fn mfactl(world: &World, user: &TestUser, args: &[&str]) -> Finished {
    run(
        "mfactl",
        &mut mfactl_cmd(world, user, args),
        "",
        mfa_tests::QUICK,
    )
}

fn json(out: &Finished) -> Value {
    serde_json::from_str(&out.stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}):\n{}", out.describe()))
}

/// Every JSON document printed one per line.
fn json_lines(out: &Finished) -> Vec<Value> {
    out.stdout
        .lines()
        .filter(|l| l.starts_with('{'))
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("bad JSON line {l}: {e}")))
        .collect()
}

fn own_factors(world: &World, user: &TestUser) -> Vec<Value> {
    let out = mfactl(world, user, &["list", "--json"]);
    out.assert_success("mfactl list --json");
    match json(&out) {
        Value::Array(items) => items,
        other => panic!("list --json is not an array: {other}"),
    }
}

#[test]
fn enrol_list_login_remove() {
    let world = World::start();
    let alice = users::named("alice");
    let totp = Totp::new(Algorithm::Sha256, 8, 30);
    let code = totp.code(0);
    let out = mfactl(
        &world,
        &alice,
        &[
            "enrol",
            "totp",
            "--label",
            "phone",
            "--algorithm",
            "SHA256",
            "--digits",
            "8",
            "--secret",
            &totp.secret,
            "--code",
            &code,
            "--no-qr",
            "--json",
        ],
    );
    out.assert_success("mfactl enrol");
    let lines = json_lines(&out);
    assert_eq!(lines.len(), 2, "{}", out.describe());
    let offer = &lines[0]["offer"];
    assert_eq!(offer["secret"], Value::from(totp.secret.as_str()));
    assert_eq!(offer["algorithm"], "SHA256");
    assert_eq!(offer["digits"], 8);
    let factor = &lines[1]["factor"];
    assert_eq!(factor["status"], "active");
    let id = factor["id"].as_str().expect("factor id").to_string();

    let listed = own_factors(&world, &alice);
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0]["id"], Value::from(id.as_str()));
    assert_eq!(listed[0]["status"], "active");
    assert_eq!(listed[0]["label"], "phone");
    assert_eq!(listed[0]["kind"], "totp");

    // The factor mfactl enrolled is the one PAM asks for.
    world.login(&alice, &[&totp.code(1)]).assert_rc(PAM_SUCCESS);
    let used = own_factors(&world, &alice);
    assert!(
        !used[0]["last_used"].is_null(),
        "last_used not set after a login: {used:?}"
    );

    // Text listing shows it too.
    let text = mfactl(&world, &alice, &["list"]);
    text.assert_success("mfactl list");
    assert!(text.stdout.contains(&id), "{}", text.describe());

    mfactl(&world, &alice, &["remove", &id, "--yes"]).assert_success("mfactl remove");
    assert!(own_factors(&world, &alice).is_empty());
    // Removing it again: mfad says not found, exit 1.
    assert_eq!(
        mfactl(&world, &alice, &["remove", &id, "--yes"]).code(),
        Some(1)
    );
    world.daemon.assert_log_free_of(&[&totp.secret, &code]);
}

#[test]
fn a_wrong_code_exits_4_and_leaves_the_factor_pending() {
    let world = World::start();
    let bob = users::named("bob");
    let totp = Totp::default_params();
    let wrong = totp.wrong_code(2);
    let out = mfactl(
        &world,
        &bob,
        &[
            "enrol",
            "totp",
            "--secret",
            &totp.secret,
            "--code",
            &wrong,
            "--no-qr",
            "--json",
        ],
    );
    assert_eq!(out.code(), Some(4), "{}", out.describe());
    let offer = &json_lines(&out)[0]["offer"];
    let id = offer["id"].as_str().expect("offer id").to_string();
    assert!(
        out.stderr.contains(&format!("mfactl confirm {id}")),
        "{}",
        out.describe()
    );
    let listed = own_factors(&world, &bob);
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0]["status"], "pending");
    // A pending factor is not asked for at login.
    let result = world.login(&bob, &[&totp.code(0)]);
    assert_ne!(result.rc, PAM_SUCCESS);
    assert!(result.prompts().is_empty(), "{result:#?}");

    // Confirmed later, it becomes active.
    mfactl(&world, &bob, &["confirm", &id, &totp.code(0)]).assert_success("mfactl confirm");
    assert_eq!(own_factors(&world, &bob)[0]["status"], "active");
}

#[test]
fn hotp_enrolment_reads_the_code_from_stdin() {
    let world = World::start();
    let dave = users::named("dave");
    let secret = otp::random_secret(20);
    let mut cmd = mfactl_cmd(
        &world,
        &dave,
        &["enrol", "hotp", "--secret", &secret, "--no-qr", "--json"],
    );
    let mut running = Running::spawn("mfactl enrol hotp", &mut cmd);
    let first = running.next_line(mfa_tests::QUICK).expect("no offer line");
    let offer: Value = serde_json::from_str(&first).expect("offer JSON");
    let counter = offer["offer"]["counter"]
        .as_u64()
        .expect("HOTP offer has a counter");
    running.send_line(&otp::oath_hotp(&secret, counter, 6));
    running
        .finish(mfa_tests::QUICK)
        .assert_success("mfactl enrol hotp");
    assert_eq!(own_factors(&world, &dave)[0]["status"], "active");
    world
        .login(&dave, &[&otp::oath_hotp(&secret, counter + 1, 6)])
        .assert_rc(PAM_SUCCESS);
}

#[test]
fn admin_table_json_and_reset() {
    let world = World::start();
    let root = users::root();
    let alice = users::named("alice");
    let bob = users::named("bob");
    let totp = Totp::default_params();
    world.enrol_totp(&alice, &totp);
    world.enrol_hotp(&bob, 6);
    // A pending one for bob as well.
    mfa_tests::probe::begin_totp(world.address(), &bob, &Totp::default_params());
    world.login(&alice, &[&totp.code(1)]).assert_rc(PAM_SUCCESS);

    let out = mfactl(&world, &root, &["users", "--json"]);
    out.assert_success("mfactl users --json");
    let table = json(&out);
    let row = |name: &str| -> Value {
        table
            .as_array()
            .and_then(|rows| rows.iter().find(|r| r["user"] == name))
            .cloned()
            .unwrap_or_else(|| panic!("{name} missing from {table}"))
    };
    assert_eq!(row("alice")["methods"], serde_json::json!(["totp"]));
    assert!(
        !row("alice")["last_used"].is_null(),
        "alice logged in: {table}"
    );
    assert_eq!(row("bob")["methods"], serde_json::json!(["hotp"]));
    assert_eq!(row("bob")["factors"], 1);
    assert_eq!(row("bob")["pending"], 1);

    let text = mfactl(&world, &root, &["users"]);
    text.assert_success("mfactl users");
    assert!(
        text.stdout.contains("alice") && text.stdout.contains("totp"),
        "{}",
        text.describe()
    );

    let bobs = mfactl(&world, &root, &["user", "bob", "--json"]);
    bobs.assert_success("mfactl user bob");
    assert_eq!(json(&bobs).as_array().map(Vec::len), Some(2));

    // A plain user is refused with exit 5 and nothing changes.
    assert_eq!(mfactl(&world, &bob, &["users", "--json"]).code(), Some(5));
    assert_eq!(
        mfactl(&world, &bob, &["reset", "alice", "--yes"]).code(),
        Some(5)
    );

    // Reset without --yes and without a terminal is refused.
    assert_ne!(mfactl(&world, &root, &["reset", "bob"]).code(), Some(0));
    let reset = mfactl(&world, &root, &["reset", "bob", "--yes", "--json"]);
    reset.assert_success("mfactl reset");
    assert_eq!(json_lines(&reset)[0]["removed"], 2);
    assert!(own_factors(&world, &bob).is_empty());
    let after = json(&mfactl(&world, &root, &["users", "--json"]));
    let names: Vec<&str> = after
        .as_array()
        .map(|r| r.iter().filter_map(|u| u["user"].as_str()).collect())
        .unwrap_or_default();
    assert_eq!(names, vec!["alice"]);
}

#[test]
fn an_unreachable_mfad_exits_3() {
    let world = World::start();
    let mut cmd = command_as(&users::named("alice"), &mfa_tests::bins::mfactl());
    let missing = format!("unix:path={}/nothing-here", world.pam.path().display());
    cmd.arg("--bus-address").arg(&missing).arg("list");
    let out = run("mfactl", &mut cmd, "", mfa_tests::QUICK);
    assert_eq!(out.code(), Some(3), "{}", out.describe());
}

// ---- QR read-back --------------------------------------------------------

/// Remove ANSI escape sequences (`ESC [ … letter`).
fn strip_ansi(text: &str) -> String {
    let mut out = String::new();
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' && chars.peek() == Some(&'[') {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
            continue;
        }
        out.push(c);
    }
    out
}

const BLOCKS: [char; 4] = [' ', '\u{2580}', '\u{2584}', '\u{2588}'];

/// The half-block drawing as rows of cells: true where the glyph is inked.
fn qr_cells(output: &str) -> Vec<Vec<bool>> {
    let lines: Vec<Vec<char>> = strip_ansi(output)
        .lines()
        .map(|l| l.chars().collect())
        .collect();
    let is_block_line = |l: &Vec<char>| l.len() >= 21 && l.iter().all(|c| BLOCKS.contains(c));
    let start = lines
        .iter()
        .position(|l| is_block_line(l) && l.iter().any(|c| *c != ' '))
        .unwrap_or_else(|| panic!("no QR code in:\n{output}"));
    let width = lines[start].len();
    let mut rows = Vec::new();
    for line in lines[start..]
        .iter()
        .take_while(|l| is_block_line(l) && l.len() == width)
    {
        let upper: Vec<bool> = line
            .iter()
            .map(|c| matches!(c, '\u{2580}' | '\u{2588}'))
            .collect();
        let lower: Vec<bool> = line
            .iter()
            .map(|c| matches!(c, '\u{2584}' | '\u{2588}'))
            .collect();
        rows.push(upper);
        rows.push(lower);
    }
    rows
}

/// Write the cells as a PBM image (black where `dark`), scaled up and with a
/// white border, and decode it with zbarimg.
fn zbar_decode(cells: &[Vec<bool>], ink_is_dark: bool, dir: &std::path::Path) -> Option<String> {
    const SCALE: usize = 6;
    const BORDER: usize = 8;
    let h = cells.len();
    let w = cells.first().map(Vec::len).unwrap_or(0);
    let (pw, ph) = ((w + 2 * BORDER) * SCALE, (h + 2 * BORDER) * SCALE);
    let mut pbm = format!("P1\n{pw} {ph}\n");
    for py in 0..ph {
        let y = (py / SCALE).checked_sub(BORDER).filter(|y| *y < h);
        let row: Vec<&str> = (0..pw)
            .map(|px| {
                let x = (px / SCALE).checked_sub(BORDER).filter(|x| *x < w);
                let black = match (x, y) {
                    (Some(x), Some(y)) => cells[y][x] == ink_is_dark,
                    _ => false,
                };
                if black {
                    "1"
                } else {
                    "0"
                }
            })
            .collect();
        pbm.push_str(&row.join(" "));
        pbm.push('\n');
    }
    let path = dir.join(if ink_is_dark {
        "qr-dark.pbm"
    } else {
        "qr-light.pbm"
    });
    std::fs::write(&path, pbm).expect("write PBM");
    let out = Command::new("zbarimg")
        .arg("--raw")
        .arg("-q")
        .arg(&path)
        .output()
        .unwrap_or_else(|e| panic!("cannot run zbarimg (apt-get install zbar-tools): {e}"));
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

fn printed_uri(output: &str) -> String {
    strip_ansi(output)
        .lines()
        .map(str::trim)
        .find_map(|l| {
            l.strip_prefix("URI")
                .map(str::trim)
                .filter(|u| u.starts_with("otpauth://"))
        })
        .unwrap_or_else(|| panic!("no URI line in:\n{output}"))
        .to_string()
}

/// Enrol with a QR code, stdout a pipe, with `env` set; `coloured` when
/// the drawing is expected in ANSI colours.
fn enrol_and_read_qr(env: &[(&str, &str)], coloured: bool) {
    let world = World::start();
    let alice = users::named("alice");
    let totp = Totp::default_params();
    let mut cmd = mfactl_cmd(
        &world,
        &alice,
        &[
            "enrol",
            "totp",
            "--label",
            "laptop",
            "--secret",
            &totp.secret,
            "--code",
            &totp.code(0),
        ],
    );
    cmd.envs(env.iter().copied());
    let out = run("mfactl enrol (QR)", &mut cmd, "", mfa_tests::QUICK);
    out.assert_success("mfactl enrol with a QR code");
    assert_eq!(
        out.stdout.contains('\u{1b}'),
        coloured,
        "escape codes only when colour is asked for ({env:?}):\n{}",
        out.stdout
    );
    let uri = printed_uri(&out.stdout);
    let cells = qr_cells(&out.stdout);
    let scratch = tempfile::tempdir().expect("tempdir");
    // With colours the glyphs are the dark modules; without, the terminal's
    // text colour draws the light ones.
    let decoded = zbar_decode(&cells, coloured, scratch.path()).unwrap_or_else(|| {
        panic!(
            "zbarimg could not read the QR code ({env:?}):\n{}",
            out.stdout
        )
    });
    assert_eq!(decoded, uri, "the QR code does not hold the printed URI");
    assert!(uri.starts_with("otpauth://totp/"), "{uri}");
    let query = uri.split_once('?').map(|(_, q)| q).unwrap_or_default();
    let secret = query
        .split('&')
        .find_map(|kv| kv.strip_prefix("secret="))
        .unwrap_or_else(|| panic!("no secret in {uri}"));
    assert_eq!(secret.trim_end_matches('='), totp.secret);
    assert!(query.split('&').any(|kv| kv == "issuer=pam_mfa"), "{uri}");
    // The app shows the account name: the user, and the label given, so
    // factors on several devices can be told apart (issue 8).
    let account = uri
        .trim_start_matches("otpauth://totp/")
        .split('?')
        .next()
        .unwrap_or_default();
    assert!(
        account.starts_with("pam_mfa:alice%40") && account.contains("laptop"),
        "{uri}"
    );
}

/// A secret mfad would refuse is refused by mfactl itself, as bad local
/// input (exit 2), before mfad is asked: nothing is pending afterwards.
#[test]
fn a_secret_of_the_wrong_length_is_a_usage_error() {
    let world = World::start();
    let alice = users::named("alice");
    for secret in ["JBSWY3DP", "JBSWY3DPE", &"A".repeat(240)] {
        let out = mfactl(
            &world,
            &alice,
            &["enrol", "totp", "--secret", secret, "--no-qr"],
        );
        assert_eq!(out.code(), Some(2), "{secret}: {}", out.describe());
        assert!(out.stderr.contains("secret"), "{}", out.describe());
    }
    let listed = mfactl(&world, &alice, &["--json", "list"]);
    listed.assert_success("mfactl list");
    assert_eq!(listed.stdout.trim(), "[]", "nothing was enrolled");
}

/// Coloured as on a terminal: CLICOLOR_FORCE, since stdout is a pipe here.
#[test]
fn the_qr_code_holds_the_printed_uri() {
    enrol_and_read_qr(&[("CLICOLOR_FORCE", "1")], true);
}

#[test]
fn the_qr_code_without_colours_holds_the_printed_uri() {
    enrol_and_read_qr(&[("NO_COLOR", "1"), ("CLICOLOR_FORCE", "1")], false);
}

/// Not a terminal (a pipe, a file, a mail): no escape codes at all, and
/// the plain drawing still reads.
#[test]
fn the_qr_code_to_a_pipe_is_plain_and_holds_the_printed_uri() {
    enrol_and_read_qr(&[], false);
}

/// SPEC 11: the code for counter 0, as oathtool computes it, shown at a
/// TOTP enrolment and on request; it never logs in.
#[test]
fn the_check_value_is_the_code_for_counter_0_and_never_logs_in() {
    let world = World::start();
    let alice = users::named("alice");
    let totp = Totp::new(Algorithm::Sha256, 8, 30);
    let out = mfactl(
        &world,
        &alice,
        &[
            "--json",
            "enrol",
            "totp",
            "--secret",
            &totp.secret,
            "--algorithm",
            "sha256",
            "--digits",
            "8",
            "--no-qr",
            "--code",
            &totp.code(0),
        ],
    );
    out.assert_success("enrol totp");
    let lines = json_lines(&out);
    let at_zero = otp::oath_totp_at(&totp.secret, Algorithm::Sha256, 8, 30, 0);
    assert_eq!(
        lines[0]["offer"]["check_value"],
        at_zero.as_str(),
        "{lines:?}"
    );
    let id = lines[1]["factor"]["id"].as_str().expect("id").to_string();
    let asked = mfactl(&world, &alice, &["check-value", &id]);
    asked.assert_success("check-value");
    assert_eq!(asked.stdout.trim(), at_zero);
    assert_ne!(world.login(&alice, &[&at_zero]).rc, PAM_SUCCESS);

    // A new HOTP factor starts at counter 1, so its enrolment shows the
    // check value too.
    let dave = users::named("dave");
    let secret = otp::random_secret(20);
    let hotp = mfactl(
        &world,
        &dave,
        &[
            "--json",
            "enrol",
            "hotp",
            "--secret",
            &secret,
            "--no-qr",
            "--code",
            &otp::oath_hotp(&secret, 1, 6),
        ],
    );
    hotp.assert_success("enrol hotp");
    let offered = &json_lines(&hotp)[0]["offer"];
    assert_eq!(offered["counter"], 1, "{offered}");
    assert_eq!(
        offered["check_value"],
        otp::oath_hotp(&secret, 0, 6).as_str(),
        "{offered}"
    );

    let bob = users::named("bob");
    let token = world.enrol_hotp(&bob, 6);
    let first = otp::oath_hotp(&token.secret, 0, 6);
    let own = mfactl(&world, &bob, &["--json", "check-value", &token.id]);
    assert_eq!(
        json(&own)["check_value"],
        first.as_str(),
        "{}",
        own.describe()
    );
    let by_root = mfactl(
        &world,
        &users::root(),
        &["check-value", "--user", "bob", &token.id],
    );
    by_root.assert_success("an admin asks");
    assert_eq!(by_root.stdout.trim(), first);
    assert_eq!(
        mfactl(&world, &alice, &["check-value", "--user", "bob", &token.id]).code(),
        Some(5),
        "only an admin asks for another user's"
    );
    assert_eq!(
        mfactl(&world, &alice, &["check-value", &token.id]).code(),
        Some(1),
        "bob's factor is not alice's"
    );
    assert_ne!(
        world.login(&bob, &[&first]).rc,
        PAM_SUCCESS,
        "counter 0 never logs in"
    );

    // A counter that never moved: its check value would be its next code.
    let dir = tempfile::tempdir().expect("tmp");
    let path = dir.path().join("fresh");
    let secret = otp::random_secret(20);
    std::fs::write(&path, format!("{secret}\n\" HOTP_COUNTER 0\n")).expect("write");
    let dave = users::named("carol");
    std::os::unix::fs::chown(&path, Some(dave.uid), Some(dave.gid)).expect("chown");
    mfactl(
        &world,
        &dave,
        &[
            "import",
            "google-authenticator",
            &path.display().to_string(),
        ],
    )
    .assert_success("import");
    let listed = mfactl(&world, &dave, &["--json", "list"]);
    let fresh = json(&listed)[0]["id"].as_str().expect("id").to_string();
    let refused = mfactl(&world, &dave, &["check-value", &fresh]);
    assert_eq!(refused.code(), Some(1), "{}", refused.describe());
    assert!(
        refused.stderr.contains("would be a valid code"),
        "{}",
        refused.describe()
    );
}

/// SPEC 23: an admin sets up a factor for a user who cannot; the secret is
/// shown to the admin once, the factor works at once, and only admins may.
#[test]
fn an_admin_sets_up_a_factor_to_hand_over_and_it_logs_in_at_once() {
    let world = World::start();
    let root = users::root();
    let out = mfactl(
        &world,
        &root,
        &[
            "--json", "enrol", "totp", "--user", "alice", "--label", "new hire", "--no-qr",
        ],
    );
    out.assert_success("set up for alice");
    let offer = &json_lines(&out)[0]["offer"];
    let secret = offer["secret"].as_str().expect("the secret, shown once");
    let totp = Totp {
        secret: secret.to_string(),
        algorithm: Algorithm::Sha1,
        digits: 6,
        period: 30,
    };
    assert_eq!(
        offer["check_value"],
        otp::oath_totp_at(secret, Algorithm::Sha1, 6, 30, 0).as_str()
    );
    world
        .login(&users::named("alice"), &[&totp.code(0)])
        .assert_rc(PAM_SUCCESS);
    let listed = mfactl(&world, &root, &["--json", "user", "alice"]);
    assert!(
        listed.stdout.contains("new hire") && !listed.stdout.contains(secret),
        "listed, secret never again: {}",
        listed.describe()
    );
    let text = mfactl(
        &world,
        &root,
        &["enrol", "hotp", "--user", "bob", "--no-qr"],
    );
    text.assert_success("hotp for bob");
    assert!(
        text.stdout.contains("Set up for bob, active now") && text.stdout.contains("Secret"),
        "{}",
        text.describe()
    );

    let refused = mfactl(
        &world,
        &users::named("dave"),
        &["enrol", "totp", "--user", "bob"],
    );
    assert_eq!(refused.code(), Some(5), "{}", refused.describe());
    let key = mfactl(&world, &root, &["enrol", "fido2", "--user", "bob"]);
    assert_eq!(key.code(), Some(1), "{}", key.describe());
    assert!(
        key.stderr.contains("enrolled by its user"),
        "{}",
        key.describe()
    );
    let audit = mfactl(&world, &root, &["audit", "--user", "alice"]);
    assert!(audit.stdout.contains("set-up"), "{}", audit.describe());
}

/// SPEC 23, the other way: an invitation, whose secret no admin sees; the
/// user sets the factor up at their next login, or with mfactl.
#[test]
fn an_invited_user_sets_the_factor_up_at_the_next_login_or_with_mfactl() {
    let world = World::start();
    let root = users::root();
    let alice = users::named("alice");
    let out = mfactl(
        &world,
        &root,
        &["--json", "enrol", "totp", "--user", "alice", "--invite"],
    );
    out.assert_success("invite alice");
    let offer = &json_lines(&out)[0]["offer"];
    assert_eq!(offer["secret"], "", "no admin sees it: {offer}");
    assert_eq!(offer["uri"], "", "{offer}");
    // Pending, not active: the invitation alone lets nobody in.
    let listed = json(&mfactl(&world, &root, &["--json", "user", "alice"]));
    assert_eq!(listed[0]["status"], "pending", "{listed}");

    // What alice is shown (mfactl leaves it pending without a code) ...
    let seen = mfactl(&world, &alice, &["--json", "invitation"]);
    assert_eq!(seen.code(), Some(4), "not confirmed: {}", seen.describe());
    let secret = json_lines(&seen)[0]["offer"]["secret"]
        .as_str()
        .expect("alice sees it")
        .to_string();
    let totp = Totp {
        secret: secret.clone(),
        algorithm: Algorithm::Sha1,
        digits: 6,
        period: 30,
    };
    // ... and her next login, where the policy alone would refuse her.
    let first = world.login(&alice, &[&totp.code(0)]);
    first.assert_rc(PAM_SUCCESS);
    let infos = first.infos().join("\n");
    assert!(
        infos.contains("An administrator set up a second factor for you.")
            && infos.contains(&format!("Secret: {secret}")),
        "{first:#?}"
    );
    world.login(&alice, &[&totp.code(1)]).assert_rc(PAM_SUCCESS);

    // bob's, with mfactl: the offer, then the code on stdin.
    let bob = users::named("bob");
    mfactl(
        &world,
        &root,
        &["enrol", "hotp", "--user", "bob", "--invite"],
    )
    .assert_success("invite bob");
    let mut accept = Running::spawn(
        "mfactl invitation",
        &mut mfactl_cmd(&world, &bob, &["--json", "invitation"]),
    );
    let first = accept.next_line(mfa_tests::QUICK).expect("the offer");
    let offer: Value = serde_json::from_str(&first).expect("offer JSON");
    let secret = offer["offer"]["secret"].as_str().expect("bob sees it");
    let start = offer["offer"]["counter"].as_u64().expect("counter");
    accept.send_line(&otp::oath_hotp(secret, start, 6));
    accept
        .finish(mfa_tests::QUICK)
        .assert_success("mfactl invitation");
    world
        .login(&bob, &[&otp::oath_hotp(secret, start + 1, 6)])
        .assert_rc(PAM_SUCCESS);
    let none = mfactl(&world, &bob, &["invitation"]);
    assert_eq!(none.code(), Some(1), "{}", none.describe());
    assert!(none.stderr.contains("no invitation"), "{}", none.describe());
    let audit = mfactl(&world, &root, &["audit", "--user", "bob"]);
    assert!(audit.stdout.contains("invite"), "{}", audit.describe());
}

/// Shell completions come from the command line's own definition: every
/// command is in each script, and bash reads its script without error.
#[test]
fn shell_completions_name_every_command_and_bash_reads_them() {
    let world = World::start();
    let nobody = users::nobody();
    for (shell, mark) in [
        ("bash", "complete -F _mfactl"),
        ("zsh", "#compdef mfactl"),
        ("fish", "complete -c mfactl"),
    ] {
        let out = mfactl(&world, &nobody, &["completions", shell]);
        out.assert_success(shell);
        assert!(out.stdout.contains(mark), "{shell}: {}", out.describe());
        for command in [
            "enrol",
            "invitation",
            "check-value",
            "import",
            "recovery-codes",
        ] {
            assert!(
                out.stdout.contains(command),
                "{shell} lacks {command}: {}",
                out.describe()
            );
        }
        if shell == "bash" {
            let script = tempfile::NamedTempFile::new().expect("tmp");
            std::fs::write(script.path(), &out.stdout).expect("write");
            let checked = Command::new("bash")
                .arg("-n")
                .arg(script.path())
                .output()
                .expect("bash");
            assert!(checked.status.success(), "bash -n: {checked:?}");
        }
    }
}
