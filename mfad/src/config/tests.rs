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
        "version = 1\n[totp]\nalgorithm = \"SHA512\"\ndigits = 8\nskew = 2\n[login]\nunenrolled = \"allow\"\n[daemon]\nadmin_group = \"wheel\"\n",
    )
    .expect("valid");
    assert_eq!(c.totp.algorithm, Algorithm::Sha512);
    assert_eq!(c.totp.digits, 8);
    assert_eq!(c.totp.skew, 2);
    assert_eq!(c.login.unenrolled, Unenrolled::Allow);
    assert_eq!(c.daemon.admin_group.as_deref(), Some("wheel"));
}
