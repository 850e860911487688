//! Test certificates made with `openssl`, for the servers the tests start
//! themselves (PostgreSQL, SMTP): a CA, a server certificate it signed for
//! `localhost` and 127.0.0.1, and a second CA that signed nothing (for the
//! "wrong CA" tests).

use crate::process::run;
use std::path::Path;
use std::process::Command;

/// Make, in `dir`: `ca.pem`/`ca.key` (the test CA), `server.pem`/
/// `server.key` (a P-256 certificate for `localhost` and IP 127.0.0.1,
/// for server authentication, signed by the test CA) and
/// `other-ca.pem`/`other-ca.key` (a CA that signed nothing). All valid
/// for two days. Modes and owners are left to the caller.
pub fn make_test_certificates(dir: &Path) {
    let ssl = |args: &[&str]| {
        let mut cmd = Command::new("openssl");
        cmd.current_dir(dir).args(args);
        run("openssl", &mut cmd, "", crate::QUICK).assert_success("openssl");
    };
    for ca in ["ca", "other-ca"] {
        ssl(&[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            &format!("{ca}.key"),
            "-out",
            &format!("{ca}.pem"),
            "-days",
            "2",
            "-subj",
            &format!("/CN=pam_mfa test {ca}"),
        ]);
    }
    make_server_certificate(dir, "DNS:localhost,IP:127.0.0.1");
}

/// (Re)make `server.pem`/`server.key` in `dir`: a P-256 certificate for
/// the names `san` lists (`DNS:…,IP:…`), for server authentication,
/// signed by the test CA there (`ca.pem`/`ca.key`), valid for two days.
pub fn make_server_certificate(dir: &Path, san: &str) {
    let ssl = |args: &[&str]| {
        let mut cmd = Command::new("openssl");
        cmd.current_dir(dir).args(args);
        run("openssl", &mut cmd, "", crate::QUICK).assert_success("openssl");
    };
    std::fs::write(
        dir.join("san.ext"),
        format!("subjectAltName={san}\nbasicConstraints=CA:FALSE\nkeyUsage=digitalSignature\nextendedKeyUsage=serverAuth\n"),
    )
    .expect("san.ext");
    ssl(&[
        "req",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
        "-keyout",
        "server.key",
        "-out",
        "server.csr",
        "-subj",
        "/CN=localhost",
    ]);
    ssl(&[
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "server.pem",
        "-days",
        "2",
        "-extfile",
        "san.ext",
    ]);
}
