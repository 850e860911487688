//! The SMTP test server itself (tests/src/smtp.rs, tests/smtp/server.py),
//! checked with an independent client — Python's smtplib and ssl, run as
//! `/usr/bin/python3` — before the e-mail tests trust it.

use mfa_tests::process::{run, Finished};
use mfa_tests::smtp::{Listener, Mode, Smtp, Stage, USER};
use std::os::unix::fs::PermissionsExt;
use std::process::Command;
use std::time::Duration;

/// Helpers every client script starts with. `argv[1]` is the test CA,
/// `argv[2]` the credentials file, `argv[3]` the recipient, `argv[4]` the
/// CA that signed nothing.
const PRELUDE: &str = r#"
import smtplib, socket, ssl, sys
from email.message import EmailMessage
CA, CREDENTIALS, TO, OTHER_CA = sys.argv[1:5]
def context(ca=CA):
    return ssl.create_default_context(cafile=ca)
def login(s):
    user, password = open(CREDENTIALS).read().split("\n")[:2]
    s.login(user, password)
def message(subject, body, cte):
    m = EmailMessage()
    m["From"] = "pam_mfa <mfa@example.org>"
    m["To"] = TO
    m["Subject"] = subject
    m.set_content(body, cte=cte)
    return m
"#;

/// Run `script` (after [`PRELUDE`]) with the CAs, the credentials file
/// and `to`.
fn client(smtp: &Smtp, to: &str, script: &str) -> Finished {
    let mut cmd = Command::new("/usr/bin/python3");
    cmd.arg("-I")
        .arg("-c")
        .arg(format!("{PRELUDE}\n{script}"))
        .arg(smtp.ca_file())
        .arg(smtp.credentials_file())
        .arg(to)
        .arg(smtp.other_ca_file());
    run("smtplib client", &mut cmd, "", mfa_tests::QUICK)
}

/// A recipient no other test (or test process) mails.
fn recipient(test: &str) -> String {
    format!("{test}-{}@example.org", std::process::id())
}

#[test]
fn starttls_and_auth_required_then_delivered_and_parsed() {
    let smtp = Smtp::shared();
    let to = recipient("starttls");
    let out = client(
        smtp,
        &to,
        &format!(
            r#"
s = smtplib.SMTP("localhost", {port}, timeout=10)
s.ehlo()
print("before:", sorted(s.esmtp_features))
try:
    s.sendmail("mfa@example.org", [TO], b"Subject: x\r\n\r\nx\r\n")
except smtplib.SMTPSenderRefused as e:
    print("mail before starttls:", e.smtp_code)
s.starttls(context=context())
s.ehlo()
print("after:", sorted(s.esmtp_features))
try:
    s.sendmail("mfa@example.org", [TO], b"Subject: x\r\n\r\nx\r\n")
except smtplib.SMTPSenderRefused as e:
    print("mail before auth:", e.smtp_code)
login(s)
s.send_message(message("Login code f\u00fcr h\u00f6st", "Your code is 123456, J\u00f6rg.\n" + "x" * 90 + "\n", "quoted-printable"))
s.quit()
"#,
            port = smtp.port(Mode::Starttls)
        ),
    );
    out.assert_success("client");
    assert!(
        out.stdout
            .contains("before: ['8bitmime', 'help', 'size', 'starttls']"),
        "no AUTH before STARTTLS:\n{}",
        out.describe()
    );
    assert!(out.stdout.contains("mail before starttls: 530"));
    assert!(out
        .stdout
        .contains("after: ['8bitmime', 'auth', 'help', 'size']"));
    assert!(out.stdout.contains("mail before auth: 530"));

    let mail = smtp.wait_for_mail(&to, mfa_tests::QUICK);
    assert_eq!(mail.port, smtp.port(Mode::Starttls));
    assert_eq!(mail.from, "mfa@example.org");
    assert_eq!(mail.to, vec![to.clone()]);
    assert_eq!(mail.subject, "Login code für höst");
    assert_eq!(
        mail.body,
        format!("Your code is 123456, Jörg.\n{}\n", "x".repeat(90))
    );
    assert_eq!(mail.header("from"), Some("pam_mfa <mfa@example.org>"));
    assert_eq!(
        mail.header("Content-Transfer-Encoding"),
        Some("quoted-printable")
    );
    let raw = String::from_utf8(mail.raw.clone()).expect("7-bit raw message");
    assert!(
        raw.contains("=C3=B6"),
        "the body went quoted-printable:\n{raw}"
    );
    assert_eq!(smtp.mail_count(&to), 1);
    assert!(smtp
        .auth_attempts(Mode::Starttls)
        .contains(&("PLAIN".into(), USER.into(), true)));
}

#[test]
fn implicit_tls_delivery_arrives_base64() {
    let smtp = Smtp::shared();
    let to = recipient("tls");
    client(
        smtp,
        &to,
        &format!(
            r#"
s = smtplib.SMTP_SSL("localhost", {port}, timeout=10, context=context())
s.ehlo()
assert "starttls" not in s.esmtp_features and "auth" in s.esmtp_features, s.esmtp_features
try:
    s.sendmail("mfa@example.org", [TO], b"Subject: x\r\n\r\nx\r\n")
    raise SystemExit("mail accepted without AUTH")
except smtplib.SMTPSenderRefused as e:
    assert e.smtp_code == 530, e
login(s)
s.send_message(message("code", "Code: 654321 \u2014 ok\n", "base64"))
s.quit()
"#,
            port = smtp.port(Mode::Tls)
        ),
    )
    .assert_success("client");
    let mail = smtp.wait_for_mail(&to, mfa_tests::QUICK);
    assert_eq!(mail.port, smtp.port(Mode::Tls));
    assert_eq!(mail.subject, "code");
    assert_eq!(mail.body, "Code: 654321 — ok\n");
    assert_eq!(mail.header("content-transfer-encoding"), Some("base64"));
}

#[test]
fn wait_for_mail_hands_out_each_message_once_in_order() {
    let smtp = Smtp::shared();
    let to = recipient("order");
    let other = recipient("order-other");
    client(
        smtp,
        &to,
        &format!(
            r#"
s = smtplib.SMTP("localhost", {port}, timeout=10)
s.starttls(context=context())
login(s)
for n in ("one", "two"):
    s.send_message(message(n, n + "\n", "7bit"))
s.sendmail("mfa@example.org", ["{other}"], b"Subject: else\r\n\r\nelse\r\n")
s.quit()
"#,
            port = smtp.port(Mode::Starttls)
        ),
    )
    .assert_success("client");
    assert_eq!(smtp.wait_for_mail(&to, mfa_tests::QUICK).subject, "one");
    assert_eq!(smtp.wait_for_mail(&to, mfa_tests::QUICK).subject, "two");
    assert_eq!(smtp.mail_count(&to), 2);
    assert_eq!(smtp.wait_for_mail(&other, mfa_tests::QUICK).body, "else\n");
    let third = smtp.next_mail(&to, Duration::from_millis(200));
    assert!(third.is_none(), "a third message out of nowhere: {third:?}");
}

#[test]
fn the_other_ca_fails_verification() {
    let smtp = Smtp::shared();
    let to = recipient("wrong-ca");
    let out = client(
        smtp,
        &to,
        &format!(
            r#"
other = context(OTHER_CA)
try:
    smtplib.SMTP_SSL("localhost", {tls}, timeout=10, context=other)
except ssl.SSLCertVerificationError as e:
    print("tls:", e.verify_message)
s = smtplib.SMTP("localhost", {starttls}, timeout=10)
try:
    s.starttls(context=other)
except ssl.SSLCertVerificationError as e:
    print("starttls:", e.verify_message)
"#,
            tls = smtp.port(Mode::Tls),
            starttls = smtp.port(Mode::Starttls)
        ),
    );
    out.assert_success("client");
    assert_eq!(
        out.stdout,
        "tls: unable to get local issuer certificate\nstarttls: unable to get local issuer certificate",
        "{}",
        out.describe()
    );
}

#[test]
fn plain_auth_offers_auth_without_tls_and_no_starttls_offers_neither() {
    let smtp = Smtp::shared();
    let to = recipient("plain");
    let out = client(
        smtp,
        &to,
        &format!(
            r#"
for port in ({plain_auth}, {no_starttls}):
    s = smtplib.SMTP("localhost", port, timeout=10)
    s.ehlo()
    print(sorted(s.esmtp_features), s.esmtp_features.get("auth", "").split())
    s.quit()
"#,
            plain_auth = smtp.port(Mode::PlainAuth),
            no_starttls = smtp.port(Mode::NoStarttls)
        ),
    );
    out.assert_success("client");
    assert_eq!(
        out.stdout,
        "['8bitmime', 'auth', 'help', 'size'] ['LOGIN', 'PLAIN']\n['8bitmime', 'help', 'size'] []",
        "{}",
        out.describe()
    );
    // Nobody sent credentials there.
    assert!(smtp.auth_attempts(Mode::PlainAuth).is_empty());
}

#[test]
fn stalled_listeners_never_answer() {
    let smtp = Smtp::shared();
    let to = recipient("stall");
    let out = client(
        smtp,
        &to,
        &format!(
            r#"
import time
for name, connect in (
    ("plain", lambda: smtplib.SMTP("localhost", {plain}, timeout=0.3)),
    ("tls", lambda: smtplib.SMTP_SSL("localhost", {tls}, timeout=0.3, context=context())),
):
    start = time.monotonic()
    try:
        connect()
        print(name, "answered")
    except (socket.timeout, smtplib.SMTPServerDisconnected) as e:
        assert "timed out" in str(e), e
        assert time.monotonic() - start >= 0.3
        print(name, "timed out")
"#,
            plain = smtp.port(Listener::new(Mode::Starttls).stall()),
            tls = smtp.port(Listener::new(Mode::Tls).stall())
        ),
    );
    out.assert_success("client");
    assert_eq!(
        out.stdout,
        "plain timed out\ntls timed out",
        "{}",
        out.describe()
    );
}

#[test]
fn reply_listeners_refuse_with_their_code() {
    let smtp = Smtp::shared();
    let to = recipient("reply");
    let out = client(
        smtp,
        &to,
        &format!(
            r#"
for port in ({data451}, {data550}, {rcpt550}):
    s = smtplib.SMTP("localhost", port, timeout=10)
    s.starttls(context=context())
    login(s)
    try:
        s.send_message(message("refused", "refused\n", "7bit"))
        print("accepted")
    except smtplib.SMTPDataError as e:
        print("data", e.smtp_code)
    except smtplib.SMTPRecipientsRefused as e:
        print("rcpt", e.recipients[TO][0])
    s.quit()
"#,
            data451 = smtp.port(Listener::new(Mode::Starttls).reply(Stage::Data, 451)),
            data550 = smtp.port(Listener::new(Mode::Starttls).reply(Stage::Data, 550)),
            rcpt550 = smtp.port(Listener::new(Mode::Starttls).reply(Stage::Rcpt, 550)),
        ),
    );
    out.assert_success("client");
    assert_eq!(
        out.stdout,
        "data 451\ndata 550\nrcpt 550",
        "{}",
        out.describe()
    );
    assert_eq!(smtp.mail_count(&to), 0);
}

#[test]
fn a_server_of_its_own_stalls_at_data_and_stops() {
    let listener = Listener::new(Mode::Starttls).stall_data();
    let smtp = Smtp::start(&[listener, Listener::new(Mode::Tls)]);
    let to = recipient("own");
    let mode = std::fs::metadata(smtp.credentials_file())
        .expect("credentials file")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    let credentials = std::fs::read_to_string(smtp.credentials_file()).expect("credentials");
    assert_eq!(credentials, format!("{USER}\n{}\n", smtp.password()));

    let table = smtp.email_table(Mode::Tls, "address = \"{user}@example.org\"");
    assert_eq!(
        table,
        format!(
            "[email]\nenabled = true\nrelay = \"localhost\"\nport = {}\ntls = \"tls\"\nca_file = \"{}\"\ncredentials_file = \"{}\"\nfrom = \"pam_mfa <mfa@example.org>\"\nsend_timeout = 3\naddress = \"{{user}}@example.org\"\n",
            smtp.port(Mode::Tls),
            smtp.ca_file().display(),
            smtp.credentials_file().display()
        )
    );
    assert!(smtp
        .email_table(listener, "")
        .contains("tls = \"starttls\"\n"));

    let out = client(
        &smtp,
        &to,
        &format!(
            r#"
s = smtplib.SMTP("localhost", {port}, timeout=10)
s.starttls(context=context())
login(s)
s.sock.settimeout(0.3)
try:
    s.send_message(message("stalled", "stalled\n", "7bit"))
    print("accepted")
except (socket.timeout, smtplib.SMTPServerDisconnected) as e:
    print("no reply to DATA")
"#,
            port = smtp.port(listener)
        ),
    );
    out.assert_success("client");
    assert_eq!(out.stdout, "no reply to DATA", "{}", out.describe());
    assert_eq!(smtp.mail_count(&to), 0);

    let port = smtp.port(Mode::Tls);
    smtp.stop();
    let refused = std::net::TcpStream::connect(("127.0.0.1", port));
    assert!(refused.is_err(), "the server still listens after stop()");
}
