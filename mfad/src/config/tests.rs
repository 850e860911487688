use super::*;

fn parse(text: &str) -> Result<Config, ConfigError> {
    Config::parse(text, Path::new("test.toml"))
}

#[test]
fn shipped_example_parses_to_the_defaults() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../packaging/mfad.toml");
    let config = Config::load(&path).expect("the shipped example must parse");
    assert_eq!(config, Config::default());
}

#[test]
fn minimal_file_is_all_defaults() {
    assert_eq!(parse("version = 1\n").expect("valid"), Config::default());
}

#[test]
fn unknown_key_names_line_and_key() {
    let err =
        parse("version = 1\n[totp]\ndigits = 6\ncolour = \"red\"\n").expect_err("unknown key");
    assert_eq!(err.line, Some(4));
    assert!(err.message.contains("colour"), "{err}");
}

#[test]
fn out_of_range_names_line_and_key() {
    let err = parse("version = 1\n\n[totp]\ndigits = 9\n").expect_err("digits 9");
    assert_eq!(err.line, Some(4));
    assert_eq!(err.key.as_deref(), Some("totp.digits"));
    assert!(
        err.to_string()
            .starts_with("test.toml:4: totp.digits: 9 is out of range"),
        "{err}"
    );
}

#[test]
fn wrong_type_is_refused_with_line() {
    let err = parse("version = 1\n[login]\nmax_tries = \"three\"\n").expect_err("type");
    assert_eq!(err.line, Some(3));
    assert_eq!(err.key.as_deref(), Some("login.max_tries"), "{err}");
    let err = parse("version = 1\n[daemon]\nadmin_group = 0\n").expect_err("type");
    assert_eq!(err.key.as_deref(), Some("daemon.admin_group"), "{err}");
}

#[test]
fn missing_or_future_version_is_refused() {
    assert_eq!(
        parse("[totp]\n").expect_err("no version").key.as_deref(),
        Some("version")
    );
    let err = parse("version = 2\n").expect_err("v2");
    assert_eq!(err.key.as_deref(), Some("version"));
}

#[test]
fn choices_are_checked() {
    let err = parse("version = 1\n[totp]\nalgorithm = \"MD5\"\n").expect_err("md5");
    assert_eq!(err.key.as_deref(), Some("totp.algorithm"));
    let err = parse("version = 1\n[daemon]\nstate_dir = \"relative\"\n").expect_err("relative");
    assert_eq!(err.key.as_deref(), Some("daemon.state_dir"));
}

#[test]
fn values_are_taken() {
    let c = parse(
        "version = 1\n[totp]\nalgorithm = \"SHA512\"\ndigits = 8\nskew = 2\n[login]\nmax_tries = 5\n[daemon]\nadmin_group = \"wheel\"\n",
    )
    .expect("valid");
    assert_eq!(c.totp.algorithm, Algorithm::Sha512);
    assert_eq!(c.totp.digits, 8);
    assert_eq!(c.totp.skew, 2);
    assert_eq!(c.login.max_tries, 5);
    assert_eq!(c.daemon.admin_group.as_deref(), Some("wheel"));
}

const POLICY: &str = r#"version = 1
[policy]
enabled = true
methods = ["totp"]
privileged_services = ["sudo", "doas"]

[policy.default]
require = "encourage"
min_level = "privileged"

[[policy.group]]
group = "wheel"
require = "force"
elevation_approval = true
exempt = ["backup"]

[[policy.group]]
group = "staff"
methods = ["totp", "hotp"]

[bypass]
enabled = true

[[bypass.rule]]
name = "office"
network = "10.1.0.0/16"
expires = 2027-01-31

[[bypass.rule]]
name = "vpn"
network = "2001:db8::/32"
expires = 2027-01-31T18:00:00+01:00

[devices]
remember_days = 14
"#;

#[test]
fn the_policy_is_read_with_where_each_rule_stands() {
    use crate::mechanism::FactorKind;
    use crate::policy::{Level, Requirement, RuleOrigin};
    let c = parse(POLICY).expect("valid");
    let p = &c.policy;
    assert!(p.enabled);
    assert_eq!(p.methods, [FactorKind::Totp]);
    assert_eq!(p.privileged_services, ["sudo", "doas"]);
    assert_eq!(p.default_rule.require, Requirement::Encourage);
    assert_eq!(p.default_rule.min_level, Level::Privileged);
    assert_eq!(p.groups.len(), 2);
    assert_eq!(
        p.groups[0].origin,
        RuleOrigin::Group {
            group: "wheel".into(),
            line: 12
        }
    );
    assert_eq!(p.groups[0].require, Requirement::Force);
    assert!(p.groups[0].elevation_approval);
    assert_eq!(p.groups[0].exempt, ["backup"]);
    assert_eq!(p.groups[1].require, Requirement::No);
    assert_eq!(p.groups[1].min_level, Level::Appropriate);
    assert!(p.bypass_enabled);
    assert_eq!(p.bypass[0].name, "office");
    // 2027-01-31T00:00:00Z and 17:00Z, as `date -d ... +%s` gives them.
    assert_eq!(p.bypass[0].expires, Some(1_801_353_600));
    assert_eq!(p.bypass[1].expires, Some(1_801_414_800));
    assert_eq!(p.remember_days, 14);
}

#[test]
fn mfa_is_off_by_default() {
    let c = parse("version = 1\n").expect("valid");
    assert!(!c.policy.enabled);
    assert!(!c.policy.bypass_enabled);
    assert_eq!(c.policy.remember_days, 0);
}

#[test]
fn bad_policy_values_name_their_key_and_line() {
    for (from, to, key, says) in [
        (
            "require = \"force\"",
            "require = \"always\"",
            "policy.group[1].require",
            "is not one of",
        ),
        (
            "methods = [\"totp\", \"hotp\"]",
            "methods = [\"sms\"]",
            "policy.group[2].methods",
            "not a method",
        ),
        (
            "network = \"10.1.0.0/16\"",
            "network = \"10.1.0.1/16\"",
            "bypass.rule[1].network",
            "10.1.0.0/16",
        ),
        (
            "network = \"10.1.0.0/16\"",
            "network = \"office.example\"",
            "bypass.rule[1].network",
            "not an IPv4",
        ),
        (
            "expires = 2027-01-31\n",
            "expires = 2027-01-31T10:00:00\n",
            "bypass.rule[1].expires",
            "zone",
        ),
        (
            "remember_days = 14",
            "remember_days = 400",
            "devices.remember_days",
            "0 to 365",
        ),
        (
            "exempt = [\"backup\"]",
            "exempt = [\"back up\"]",
            "policy.group[1].exempt",
            "not a valid name",
        ),
        (
            "min_level = \"privileged\"",
            "min_level = \"never\"",
            "policy.default.min_level",
            "is not one of",
        ),
    ] {
        assert!(POLICY.contains(from), "{from}");
        let text = POLICY.replacen(from, to, 1);
        let err = parse(&text).expect_err(to);
        assert_eq!(err.key.as_deref(), Some(key), "{to}: {err}");
        assert!(err.message.contains(says), "{to}: {err}");
        let line = text
            .lines()
            .position(|l| l.contains(to.trim_end()))
            .map(|i| i + 1);
        assert_eq!(err.line, line, "{to}: {err}");
    }
    let err = parse(&POLICY.replacen("group = \"staff\"\n", "", 1)).expect_err("no group");
    assert_eq!(err.key.as_deref(), Some("policy.group[2].group"));
    let err = parse(&POLICY.replacen("enabled = true", "enabled = \"yes\"", 1)).expect_err("type");
    assert_eq!(err.key.as_deref(), Some("policy.enabled"));
}

#[test]
fn the_worked_example_in_the_readme_parses() {
    use crate::policy::Requirement;
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../README.md"))
        .expect("README.md");
    let after = readme
        .split("Worked example")
        .nth(1)
        .expect("the worked example");
    let block = after
        .split("```toml\n")
        .nth(1)
        .and_then(|b| b.split("```").next())
        .expect("its TOML block");
    let c = parse(&format!("version = 1\n{block}")).expect("the README example is valid");
    assert!(c.policy.enabled && c.policy.bypass_enabled);
    assert_eq!(c.policy.groups[0].require, Requirement::Force);
    assert_eq!(c.policy.remember_days, 7);
}

#[test]
fn limits_of_own_logins_are_read_and_range_checked() {
    let config = parse("version = 1\n[limits]\nown_logins_burst = 4\nown_logins_per_hour = 30\n")
        .expect("valid");
    assert_eq!(
        (
            config.limits.own_logins_burst,
            config.limits.own_logins_per_hour
        ),
        (4, 30)
    );
    assert_eq!(
        config.limits.changes_burst,
        Config::default().limits.changes_burst
    );
    let err = parse("version = 1\n[limits]\nown_logins_burst = 0\n").expect_err("burst 0");
    assert_eq!(err.key.as_deref(), Some("limits.own_logins_burst"));
    assert_eq!(err.line, Some(3));
    let err = parse("version = 1\n[limits]\nown_logins_per_hour = 3601\n").expect_err("too many");
    assert_eq!(err.key.as_deref(), Some("limits.own_logins_per_hour"));
}
