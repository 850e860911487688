//! The policy engine through real libpam (pam-driver with the services
//! sshd, sudo and su) and `mfactl policy explain`, whose verdict is checked
//! against what the login really did, case by case. Codes from oathtool.

use mfa_tests::daemon::DaemonConfig;
use mfa_tests::otp::Totp;
use mfa_tests::pam::{Login, PamResult, NOT_ENROLLED, PAM_AUTH_ERR, PAM_SUCCESS, PROMPT};
use mfa_tests::process::Finished;
use mfa_tests::users::{self, TestUser};
use mfa_tests::World;
use serde_json::Value;

const SERVICES: [&str; 3] = ["sshd", "sudo", "su"];

fn world_with(config: DaemonConfig) -> World {
    let world = World::with_config(&config);
    for service in SERVICES {
        // One try: a wrong code ends the login at once.
        world
            .pam
            .mfa(service, world.address(), "timeout=10 max_tries=1");
    }
    world
}

/// MFA on; `require` for everyone else; `tables` appended to `[policy.default]`.
fn world(require: &str, tables: &str) -> World {
    world_with(DaemonConfig {
        require: require.into(),
        policy_tables: tables.into(),
        ..DaemonConfig::default()
    })
}

fn login(
    world: &World,
    service: &str,
    user: &TestUser,
    rhost: &str,
    answers: &[&str],
) -> PamResult {
    let mut login = Login::new(service, &user.name, answers);
    if !rhost.is_empty() {
        login.rhost = Some(rhost.into());
    }
    login.run(&world.pam)
}

/// What `mfactl policy explain` says of a login of `user`.
fn explain(world: &World, user: &TestUser, service: &str, rhost: &str) -> Value {
    world.explain(&user.name, service, rhost, None)
}

fn outcome(e: &Value) -> (&str, &str) {
    (
        e["outcome"].as_str().expect("outcome"),
        e["reason"].as_str().expect("reason"),
    )
}

fn says(e: &Value, words: &str) -> bool {
    e["lines"]
        .as_array()
        .expect("lines")
        .iter()
        .any(|l| l.as_str().is_some_and(|l| l.contains(words)))
}

fn not_asked(result: &PamResult) {
    result.assert_rc(PAM_SUCCESS);
    assert!(result.prompts().is_empty(), "asked: {result:#?}");
}

fn ok(out: &Finished) {
    assert_eq!(out.code(), Some(0), "{}", out.describe());
}

#[test]
fn with_mfa_off_nobody_is_asked_even_with_a_factor() {
    let world = world_with(DaemonConfig {
        policy_enabled: false,
        ..DaemonConfig::default()
    });
    let alice = users::named("alice");
    world.enrol_totp(&alice, &Totp::default_params());
    for service in SERVICES {
        not_asked(&login(&world, service, &alice, "", &[]));
        not_asked(&login(&world, service, &users::named("bob"), "", &[]));
    }
    let e = explain(&world, &alice, "sshd", "");
    assert_eq!(outcome(&e), ("skip", "mfa-disabled"));
}

#[test]
fn a_forced_group_member_is_asked_and_a_user_in_no_mfa_group_is_not() {
    let world = world(
        "no",
        &format!(
            "[[policy.group]]\ngroup = \"{}\"\nrequire = \"force\"\n",
            users::POLICY_GROUP
        ),
    );
    let (alice, dave, bob) = (
        users::named("alice"),
        users::named("dave"),
        users::named("bob"),
    );
    let totp = Totp::default_params();
    world.enrol_totp(&alice, &totp);

    let asked = login(&world, "sshd", &alice, "", &[&totp.code(1)]);
    asked.assert_rc(PAM_SUCCESS);
    assert_eq!(asked.prompts(), vec![PROMPT]);
    login(&world, "sshd", &alice, "", &["000000"]).assert_rc(mfa_tests::pam::PAM_MAXTRIES);
    let e = explain(&world, &alice, "sshd", "");
    assert_eq!(outcome(&e), ("ask", ""));
    assert!(
        e["rule"].as_str().is_some_and(|r| r.contains("mfapolicy")),
        "{e}"
    );
    assert!(says(&e, "alice is in the groups: mfapolicy"), "{e}");

    // A member without a factor, enrolment at login off: refused.
    let refused = login(&world, "sshd", &dave, "", &[]);
    refused.assert_rc(PAM_AUTH_ERR);
    assert_eq!(refused.errors(), vec![NOT_ENROLLED]);
    assert_eq!(
        outcome(&explain(&world, &dave, "sshd", "")),
        ("refuse", "not-enrolled")
    );

    // In no MFA group and no factor: not asked.
    not_asked(&login(&world, "sshd", &bob, "", &[]));
    let e = explain(&world, &bob, "sshd", "");
    assert_eq!(outcome(&e), ("skip", "not-required"));
    assert_eq!(e["rule"], "default rule");
}

#[test]
fn privileged_only_users_are_asked_by_sudo_and_su_not_at_login() {
    let world = world("no", "min_level = \"privileged\"\n");
    let alice = users::named("alice");
    let totp = Totp::default_params();
    world.enrol_totp(&alice, &totp);
    ok(&world.mfactl(&alice, &["level", "privileged"]));

    not_asked(&login(&world, "sshd", &alice, "", &[]));
    let e = explain(&world, &alice, "sshd", "");
    assert_eq!(outcome(&e), ("skip", "level-privileged-only"));

    let sudo = login(&world, "sudo", &alice, "", &[&totp.code(1)]);
    sudo.assert_rc(PAM_SUCCESS);
    assert_eq!(sudo.prompts(), vec![PROMPT]);
    login(&world, "su", &alice, "", &["000000"]).assert_rc(mfa_tests::pam::PAM_MAXTRIES);
    let e = explain(&world, &alice, "sudo", "");
    assert_eq!(outcome(&e), ("ask", ""));
    assert_eq!(e["class"], "privileged");

    // Where policy does not allow it, the level cannot be chosen.
    let strict = world_with(DaemonConfig::default());
    strict.enrol_totp(&alice, &totp);
    let refused = strict.mfactl(&alice, &["level", "privileged"]);
    // mfad refused (1), not "you are not an administrator" (5).
    assert_eq!(refused.code(), Some(1), "{}", refused.describe());
    assert!(
        refused.stderr.contains("appropriate"),
        "{}",
        refused.describe()
    );
}

#[test]
fn sudo_accepts_only_factors_an_admin_approved() {
    let world = world(
        "no",
        &format!(
            "[[policy.group]]\ngroup = \"{}\"\nrequire = \"force\"\nelevation_approval = true\n",
            users::POLICY_GROUP
        ),
    );
    let alice = users::named("alice");
    let factor = world.enrol_hotp(&alice, 6);
    let mut next = factor.next_counter()..;
    let mut code = || factor.hotp_code(next.next().expect("counter"));

    let refused = login(&world, "sudo", &alice, "", &[&code()]);
    refused.assert_rc(PAM_AUTH_ERR);
    assert!(refused.prompts().is_empty(), "not even asked: {refused:#?}");
    assert!(refused.errors()[0].contains("approved"), "{refused:#?}");
    assert_eq!(
        outcome(&explain(&world, &alice, "sudo", "")),
        ("refuse", "not-approved")
    );
    // Logins are not privileged services: asked as usual.
    login(&world, "sshd", &alice, "", &[&code()]).assert_rc(PAM_SUCCESS);

    // Only an admin approves.
    let own = world.mfactl(&alice, &["approve", "alice", &factor.id]);
    assert_eq!(own.code(), Some(5), "{}", own.describe());
    ok(&world.mfactl(&users::root(), &["approve", "alice", &factor.id]));
    let listed = world.mfactl(&alice, &["--json", "list"]);
    assert!(
        listed.stdout.contains("\"approved\": true"),
        "{}",
        listed.describe()
    );
    assert_eq!(outcome(&explain(&world, &alice, "sudo", "")), ("ask", ""));
    let sudo = login(&world, "sudo", &alice, "", &[&code()]);
    sudo.assert_rc(PAM_SUCCESS);
    assert_eq!(sudo.prompts(), vec![PROMPT]);

    ok(&world.mfactl(
        &users::root(),
        &["approve", "--revoke", "alice", &factor.id],
    ));
    login(&world, "sudo", &alice, "", &[]).assert_rc(PAM_AUTH_ERR);
}

const BYPASS: &str = "[bypass]
enabled = true

[[bypass.rule]]
name = \"office\"
network = \"192.0.2.0/24\"

[[bypass.rule]]
name = \"old-vpn\"
network = \"198.51.100.0/24\"
expires = 2020-01-01
";

#[test]
fn a_bypass_network_skips_the_code_unless_expired_named_or_level_always() {
    let world = world("force", BYPASS);
    let alice = users::named("alice");
    // HOTP: every login below takes the next code.
    let token = world.enrol_hotp(&alice, 6);
    let mut next = token.next_counter()..;
    let mut code = || token.hotp_code(next.next().expect("counter"));

    not_asked(&login(&world, "sshd", &alice, "192.0.2.7", &[]));
    let e = explain(&world, &alice, "sshd", "192.0.2.7");
    assert_eq!(outcome(&e), ("skip", "bypass:office"));

    for (rhost, why) in [
        ("203.0.113.1", "in no bypass rule"),
        ("198.51.100.5", "expired"),
        ("office.example", "not a literal address"),
    ] {
        let result = login(&world, "sshd", &alice, rhost, &["000000"]);
        assert_ne!(result.rc, PAM_SUCCESS, "{rhost}");
        assert_eq!(result.prompts(), vec![PROMPT], "{rhost}");
        let e = explain(&world, &alice, "sshd", rhost);
        assert_eq!(outcome(&e), ("ask", ""), "{rhost}");
        assert!(says(&e, why), "{rhost}: {e}");
    }
    // The failures above counted; a right code resets them.
    login(&world, "sshd", &alice, "", &[&code()]).assert_rc(PAM_SUCCESS);

    ok(&world.mfactl(&alice, &["level", "always"]));
    let asked = login(&world, "sshd", &alice, "192.0.2.7", &[&code()]);
    asked.assert_rc(PAM_SUCCESS);
    assert_eq!(
        asked.prompts(),
        vec![PROMPT],
        "level always is never bypassed"
    );
    let e = explain(&world, &alice, "sshd", "192.0.2.7");
    assert_eq!(outcome(&e), ("ask", ""));
    assert!(says(&e, "level always"), "{e}");
}

/// The office network skips the code for logins, not for sudo: a bypass
/// rule reaches privileged services only with `scope = "all"` (issue 8).
#[test]
fn a_bypass_network_reaches_sudo_and_su_only_when_its_scope_says_so() {
    let world = world("force", BYPASS);
    let alice = users::named("alice");
    let token = world.enrol_hotp(&alice, 6);
    let next = token.next_counter();
    for (i, service) in ["sudo", "su"].into_iter().enumerate() {
        let asked = login(
            &world,
            service,
            &alice,
            "192.0.2.7",
            &[&token.hotp_code(next + i as u64)],
        );
        asked.assert_rc(PAM_SUCCESS);
        assert_eq!(asked.prompts(), vec![PROMPT], "{service} was bypassed");
        let e = explain(&world, &alice, service, "192.0.2.7");
        assert_eq!(outcome(&e), ("ask", ""), "{service}");
        assert!(says(&e, "applies to logins only"), "{service}: {e}");
    }
    let all = world_with(DaemonConfig {
        require: "force".into(),
        policy_tables: BYPASS.replace(
            "network = \"192.0.2.0/24\"",
            "network = \"192.0.2.0/24\"\nscope = \"all\"",
        ),
        ..DaemonConfig::default()
    });
    all.enrol_hotp(&alice, 6);
    not_asked(&login(&all, "sudo", &alice, "192.0.2.7", &[]));
    assert_eq!(
        outcome(&explain(&all, &alice, "sudo", "192.0.2.7")),
        ("skip", "bypass:office")
    );
}

#[test]
fn a_trusted_address_skips_the_code_until_revoked() {
    let world = world("force", "[devices]\nremember_days = 7\n");
    let alice = users::named("alice");
    // HOTP: every login below takes the next code.
    let token = world.enrol_hotp(&alice, 6);
    let mut next = token.next_counter()..;
    let mut code = || token.hotp_code(next.next().expect("counter"));

    login(&world, "sshd", &alice, "192.0.2.50", &[&code()]).assert_rc(PAM_SUCCESS);
    not_asked(&login(&world, "sshd", &alice, "192.0.2.50", &[]));
    assert_eq!(
        outcome(&explain(&world, &alice, "sshd", "192.0.2.50")),
        ("skip", "trusted-device")
    );
    let other = login(&world, "sshd", &alice, "192.0.2.51", &["000000"]);
    assert_eq!(other.prompts(), vec![PROMPT], "another address is asked");

    let listed = world.mfactl(&alice, &["devices"]);
    assert!(
        listed.stdout.contains("address 192.0.2.50"),
        "{}",
        listed.describe()
    );
    // An admin sees them too; the user revokes all.
    let admin = world.mfactl(&users::root(), &["devices", "--user", "alice"]);
    assert!(
        admin.stdout.contains("address 192.0.2.50"),
        "{}",
        admin.describe()
    );
    ok(&world.mfactl(&alice, &["devices", "revoke", "--all"]));
    let again = login(&world, "sshd", &alice, "192.0.2.50", &[&code()]);
    again.assert_rc(PAM_SUCCESS);
    assert_eq!(again.prompts(), vec![PROMPT], "asked again after revoke");
}

#[test]
fn policy_check_refuses_a_policy_that_locks_out_root() {
    // The test default (force, no enrolment at login) locks root out, and
    // mfad says so when it starts, before it serves.
    let world = World::start();
    let log = world.daemon.log();
    assert!(log.contains("policy: root could not log in"), "{log}");
    let dir = mfa_tests::shared_tempdir("policy-check");
    let path = dir.path().join("mfad.toml");
    let write = |text: &str| std::fs::write(&path, text).expect("write");
    let path_str = path.to_str().expect("utf-8 path");

    write("version = 1\n[policy]\nenabled = true\nenrol_at_login = false\n[policy.default]\nrequire = \"force\"\n");
    let out = world.mfactl(&users::root(), &["policy", "check", path_str]);
    assert_eq!(out.code(), Some(1), "{}", out.describe());
    assert!(
        out.stdout.contains("root could not log in"),
        "{}",
        out.describe()
    );

    write("version = 1\n[policy]\nenabled = true\n[policy.default]\nrequire = \"force\"\n");
    let out = world.mfactl(&users::root(), &["policy", "check", path_str]);
    assert_eq!(
        out.code(),
        Some(0),
        "enrolment at login keeps root able: {}",
        out.describe()
    );

    write("version = 1\n[policy]\nenabled = true\n[[policy.group]]\ngroup = \"wheel\"\nrequire = \"sometimes\"\n");
    let out = world.mfactl(&users::root(), &["policy", "check", path_str]);
    assert_eq!(out.code(), Some(1), "{}", out.describe());
    assert!(
        out.stdout.contains("policy.group[1].require"),
        "{}",
        out.describe()
    );

    // A misspelt group would turn its rule off: refused (issue 8).
    write("version = 1\n[policy]\nenabled = true\n[[policy.group]]\ngroup = \"mfapolicyy\"\nrequire = \"force\"\n");
    let out = world.mfactl(&users::root(), &["policy", "check", path_str]);
    assert_eq!(out.code(), Some(1), "{}", out.describe());
    assert!(
        out.stdout.contains("policy.group[1].group") && out.stdout.contains("mfapolicyy"),
        "{}",
        out.describe()
    );

    let denied = world.mfactl(&users::named("bob"), &["policy", "check", path_str]);
    assert_ne!(denied.code(), Some(0), "{}", denied.describe());
}

#[test]
fn audit_shows_each_decision_with_its_reason_and_never_a_code() {
    let world = world("force", BYPASS);
    let (alice, bob) = (users::named("alice"), users::named("bob"));
    let token = world.enrol_hotp(&alice, 6);
    let right = token.hotp_code(token.next_counter());
    not_asked(&login(&world, "sshd", &alice, "192.0.2.7", &[]));
    login(&world, "sshd", &alice, "203.0.113.1", &["000000"])
        .assert_rc(mfa_tests::pam::PAM_MAXTRIES);
    login(&world, "sudo", &alice, "", &[&right]).assert_rc(PAM_SUCCESS);
    login(&world, "sshd", &bob, "", &[]).assert_rc(PAM_AUTH_ERR);

    let out = world.mfactl(
        &users::root(),
        &["--json", "audit", "--user", "alice", "--since", "1d"],
    );
    ok(&out);
    let entries: Vec<Value> = serde_json::from_str(&out.stdout).expect("json");
    let has = |event: &str, outcome: &str, reason: &str| {
        entries.iter().any(|e| {
            e["event"] == event && e["outcome"] == outcome && e["reason"].as_str() == Some(reason)
        })
    };
    assert!(has("change", "confirm", ""), "{entries:#?}");
    assert!(has("login", "allow", "bypass:office"), "{entries:#?}");
    assert!(has("login", "deny", "max-tries"), "{entries:#?}");
    let allowed = entries
        .iter()
        .find(|e| e["outcome"] == "allow" && e["service"] == "sudo")
        .expect("the sudo login");
    assert!(
        allowed["detail"]
            .as_str()
            .is_some_and(|d| d.contains("method=hotp")),
        "{allowed}"
    );
    assert!(entries.iter().all(|e| e["user"] == "alice"), "only alice");
    let here = mfad::store::hostname();
    assert!(
        entries.iter().all(|e| e["host"] == here.as_str()),
        "every row is this host's: {entries:#?}"
    );
    for secret in [
        right.as_str(),
        token.secret.as_str(),
        token.confirm_code.as_str(),
    ] {
        assert!(
            !out.stdout.contains(secret),
            "a code or secret in the audit"
        );
    }
    // Everyone's, as a table; and only for admins.
    let all = world.mfactl(&users::root(), &["audit"]);
    ok(&all);
    assert!(
        all.stdout.contains("not-enrolled") && all.stdout.contains("bob"),
        "{}",
        all.describe()
    );
    assert_eq!(world.mfactl(&bob, &["audit"]).code(), Some(5));
    let bad = world.mfactl(&users::root(), &["audit", "--since", "yesterday"]);
    assert_eq!(bad.code(), Some(2), "{}", bad.describe());
}

#[test]
fn a_reload_puts_a_new_policy_in_force_and_a_broken_file_changes_nothing() {
    let off = DaemonConfig {
        policy_enabled: false,
        ..DaemonConfig::default()
    };
    let world = world_with(off.clone());
    let alice = users::named("alice");
    let token = world.enrol_hotp(&alice, 6);
    not_asked(&login(&world, "sshd", &alice, "", &[]));

    let config = world.daemon.config_path();
    let state = world.daemon.state_dir();
    let on = DaemonConfig {
        policy_enabled: true,
        lockout_max_failures: 7,
        ..off
    };
    std::fs::write(&config, on.to_toml(&state)).expect("write config");
    let out = world.mfactl(&users::root(), &["policy", "reload"]);
    ok(&out);
    assert!(
        out.stdout.contains("[lockout] changed: restart mfad"),
        "{}",
        out.describe()
    );
    let asked = login(
        &world,
        "sshd",
        &alice,
        "",
        &[&token.hotp_code(token.next_counter())],
    );
    asked.assert_rc(PAM_SUCCESS);
    assert_eq!(asked.prompts(), vec![PROMPT], "the new policy is in force");

    let broken = on
        .to_toml(&state)
        .replace("enabled = true", "enabled = maybe");
    std::fs::write(&config, broken).expect("write config");
    let refused = world.mfactl(&users::root(), &["policy", "reload"]);
    assert_eq!(refused.code(), Some(1), "{}", refused.describe());
    assert!(
        refused.stderr.contains("policy.enabled"),
        "{}",
        refused.describe()
    );
    assert_eq!(
        outcome(&explain(&world, &alice, "sshd", "")),
        ("ask", ""),
        "unchanged"
    );
    assert_eq!(
        world
            .mfactl(&users::named("bob"), &["policy", "reload"])
            .code(),
        Some(5)
    );
}
