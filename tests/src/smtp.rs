//! A real SMTP server for the e-mail tests, started by the tests themselves:
//! Debian's aiosmtpd (`python3-aiosmtpd`) run by `/usr/bin/python3` from
//! `tests/smtp/server.py`, one process with one listener on 127.0.0.1 per
//! [`Listener`] (a [`Mode`] — STARTTLS, implicit TLS, AUTH in plaintext, no
//! STARTTLS — and a [`Behaviour`] — deliver, stall, answer a given code).
//! Its certificate is for `localhost` and 127.0.0.1, signed by a test CA
//! made with `openssl` ([`crate::certs`]); a second CA signed nothing.
//!
//! One server per test process ([`Smtp::shared`], every listener of
//! [`Listener::SHARED`]); a test that needs other listeners starts its own
//! ([`Smtp::start`]). Each delivered message is a file in a directory of the
//! server's, written whole and renamed into place; [`Smtp::messages`] reads
//! them back as [`Mail`].
//!
//! On the shared server, tests tell their messages apart by recipient: every
//! test mails addresses of its own (its own test user's), and
//! [`Smtp::wait_for_mail`] and [`Smtp::mail_count`] only look at messages
//! to the address they are given. The AUTH log ([`Smtp::auth_attempts`]) is
//! per listener only: a test counting on it (say, "no credentials went out
//! in plaintext") should use a server of its own, or a listener no other
//! test of its process uses.
//!
//! The server is a child of the thread that started it and dies with it
//! (`die_with_parent`), with the [`Smtp`] (its drop), and at the exit of the
//! test process for the shared one (an `atexit` handler, which also removes
//! its directory).

use crate::process::Running;
use std::collections::HashMap;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{mpsc, Mutex, OnceLock};
use std::time::{Duration, Instant};
use tempfile::TempDir;

/// The user name the server accepts (with [`Smtp::password`]).
pub const USER: &str = "mfad";

/// How a listener speaks to clients.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Mode {
    /// STARTTLS offered and required before MAIL; AUTH required, offered
    /// and accepted only after STARTTLS.
    Starttls,
    /// Implicit TLS from the first byte; AUTH required.
    Tls,
    /// No TLS at all, AUTH offered (and accepted) in plaintext: a client
    /// must refuse to send credentials here.
    PlainAuth,
    /// Plain SMTP: no STARTTLS, no AUTH; mail accepted.
    NoStarttls,
}

impl Mode {
    fn arg(self) -> &'static str {
        match self {
            Mode::Starttls => "starttls",
            Mode::Tls => "tls",
            Mode::PlainAuth => "plain-auth",
            Mode::NoStarttls => "no-starttls",
        }
    }

    /// mfad's `tls` key for a relay of this mode: `"tls"` for implicit
    /// TLS, `"starttls"` for every other (the plaintext modes are there to
    /// see mfad refuse them when it wants STARTTLS).
    pub fn tls_key(self) -> &'static str {
        match self {
            Mode::Tls => "tls",
            _ => "starttls",
        }
    }
}

/// Which SMTP command a [`Behaviour::Reply`] answers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Stage {
    /// Every `RCPT TO`.
    Rcpt,
    /// The end of `DATA` (the message itself).
    Data,
}

/// What a listener does with a client that got that far.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Behaviour {
    /// Accept and save every message.
    Deliver,
    /// Accept the connection (for [`Mode::Tls`]: complete the handshake)
    /// and never say anything: no greeting, no reply.
    Stall,
    /// Answer everything up to the end of DATA, then never reply to it;
    /// nothing is saved.
    StallData,
    /// Answer `code` (4xx temporary, 5xx permanent) at `Stage`; nothing
    /// is saved.
    Reply(Stage, u16),
}

/// One listener of a server: its mode and behaviour. `From<Mode>` gives
/// the delivering listener of that mode, so `smtp.port(Mode::Tls)` works.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Listener {
    pub mode: Mode,
    pub behaviour: Behaviour,
}

impl Listener {
    /// Every listener of [`Smtp::shared`].
    pub const SHARED: [Listener; 9] = [
        Listener::new(Mode::Starttls),
        Listener::new(Mode::Tls),
        Listener::new(Mode::PlainAuth),
        Listener::new(Mode::NoStarttls),
        Listener::new(Mode::Starttls).stall(),
        Listener::new(Mode::Tls).stall(),
        Listener::new(Mode::Starttls).reply(Stage::Data, 451),
        Listener::new(Mode::Starttls).reply(Stage::Data, 550),
        Listener::new(Mode::Starttls).reply(Stage::Rcpt, 550),
    ];

    /// A listener of `mode` that delivers.
    pub const fn new(mode: Mode) -> Listener {
        Listener {
            mode,
            behaviour: Behaviour::Deliver,
        }
    }

    /// The same, never saying a word ([`Behaviour::Stall`]).
    pub const fn stall(self) -> Listener {
        Listener {
            behaviour: Behaviour::Stall,
            ..self
        }
    }

    /// The same, never answering the end of DATA ([`Behaviour::StallData`]).
    pub const fn stall_data(self) -> Listener {
        Listener {
            behaviour: Behaviour::StallData,
            ..self
        }
    }

    /// The same, answering `code` at `stage` ([`Behaviour::Reply`]).
    pub const fn reply(self, stage: Stage, code: u16) -> Listener {
        Listener {
            behaviour: Behaviour::Reply(stage, code),
            ..self
        }
    }

    /// `PORT:MODE:BEHAVIOUR` for server.py's `--listen`.
    fn arg(&self, port: u16) -> String {
        let behaviour = match self.behaviour {
            Behaviour::Deliver => "deliver".to_string(),
            Behaviour::Stall => "stall".to_string(),
            Behaviour::StallData => "stall-data".to_string(),
            Behaviour::Reply(Stage::Rcpt, code) => format!("rcpt={code}"),
            Behaviour::Reply(Stage::Data, code) => format!("data={code}"),
        };
        format!("{port}:{}:{behaviour}", self.mode.arg())
    }
}

impl From<Mode> for Listener {
    fn from(mode: Mode) -> Listener {
        Listener::new(mode)
    }
}

/// One delivered message.
#[derive(Clone, Debug)]
pub struct Mail {
    /// The port of the listener that took it.
    pub port: u16,
    /// The envelope sender (`MAIL FROM`).
    pub from: String,
    /// The envelope recipients (`RCPT TO`), in order.
    pub to: Vec<String>,
    /// The `Subject` header, unfolded, RFC 2047 encoded words decoded.
    pub subject: String,
    /// The text of the message (of its first `text/plain` part if it is
    /// multipart), its transfer encoding (quoted-printable, base64)
    /// undone, as UTF-8, line ends as `\n`.
    pub body: String,
    /// Every header in order: name as written, value unfolded and decoded.
    pub headers: Vec<(String, String)>,
    /// The message exactly as the server received it.
    pub raw: Vec<u8>,
}

impl Mail {
    /// The first header called `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Parse a file server.py wrote: envelope lines, a blank line, the
    /// message.
    pub fn parse(file: &[u8]) -> Result<Mail, String> {
        let split = find(file, b"\n\n").ok_or("no end of the envelope")?;
        let envelope = std::str::from_utf8(&file[..split]).map_err(|e| e.to_string())?;
        let raw = file[split + 2..].to_vec();
        let (mut port, mut from, mut to) = (0, String::new(), Vec::new());
        for line in envelope.lines() {
            let (key, value) = line.split_once(": ").ok_or("a bad envelope line")?;
            match key {
                "listener" => port = value.parse().map_err(|_| "a bad listener port")?,
                "envelope-from" => from = value.to_string(),
                "envelope-to" => to.push(value.to_string()),
                _ => return Err(format!("unknown envelope line {line:?}")),
            }
        }
        // Parse with bare \n line ends; `raw` keeps what was sent.
        let text = crlf_to_lf(&raw);
        let entity = Entity::parse(&text)?;
        let subject = entity.header("subject").unwrap_or_default().to_string();
        let body = entity.text()?;
        Ok(Mail {
            port,
            from,
            to,
            subject,
            body,
            headers: entity.headers,
            raw,
        })
    }
}

/// A message or one part of a multipart message: headers and the body as
/// sent (still transfer-encoded).
struct Entity<'a> {
    headers: Vec<(String, String)>,
    body: &'a [u8],
}

impl<'a> Entity<'a> {
    /// `text` has `\n` line ends.
    fn parse(text: &'a [u8]) -> Result<Entity<'a>, String> {
        let (head, body) = if text.starts_with(b"\n") {
            (&text[..0], &text[1..])
        } else {
            match find(text, b"\n\n") {
                Some(at) => (&text[..at], &text[at + 2..]),
                None => (text, &text[text.len()..]),
            }
        };
        let head = std::str::from_utf8(head).map_err(|e| e.to_string())?;
        let mut headers: Vec<(String, String)> = Vec::new();
        for line in head.lines() {
            if line.starts_with([' ', '\t']) {
                // A folded line continues the previous header.
                let (_, value) = headers.last_mut().ok_or("a header starts folded")?;
                value.push_str(line);
            } else {
                let (name, value) = line
                    .split_once(':')
                    .ok_or_else(|| format!("not a header: {line:?}"))?;
                headers.push((name.trim().to_string(), value.to_string()));
            }
        }
        for (_, value) in headers.iter_mut() {
            *value = decode_words(value.trim())?;
        }
        Ok(Entity { headers, body })
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The value of `content-type`'s parameter `name`.
    fn content_type_param(&self, name: &str) -> Option<String> {
        let content_type = self.header("content-type")?;
        content_type.split(';').skip(1).find_map(|param| {
            let (key, value) = param.split_once('=')?;
            key.trim()
                .eq_ignore_ascii_case(name)
                .then(|| value.trim().trim_matches('"').to_string())
        })
    }

    fn media_type(&self) -> String {
        self.header("content-type")
            .unwrap_or("text/plain")
            .split(';')
            .next()
            .unwrap_or_default()
            .trim()
            .to_ascii_lowercase()
    }

    /// The decoded text: this entity's, or its first text/plain part's.
    fn text(&self) -> Result<String, String> {
        let media_type = self.media_type();
        if media_type.starts_with("multipart/") {
            let boundary = self
                .content_type_param("boundary")
                .ok_or("a multipart message without a boundary")?;
            let parts = split_multipart(self.body, &boundary)?;
            let parts: Vec<Entity> = parts
                .into_iter()
                .map(Entity::parse)
                .collect::<Result<_, _>>()?;
            let part = parts
                .iter()
                .find(|p| p.media_type() == "text/plain")
                .or_else(|| {
                    parts
                        .iter()
                        .find(|p| p.media_type().starts_with("multipart/"))
                })
                .ok_or("no text/plain part")?;
            return part.text();
        }
        if let Some(charset) = self.content_type_param("charset") {
            if !["utf-8", "us-ascii"].contains(&charset.to_ascii_lowercase().as_str()) {
                return Err(format!("charset {charset} (only UTF-8 is read)"));
            }
        }
        let encoding = self
            .header("content-transfer-encoding")
            .unwrap_or("7bit")
            .to_ascii_lowercase();
        let bytes = match encoding.as_str() {
            "quoted-printable" => quoted_printable(self.body),
            "base64" => base64(self.body)?,
            "7bit" | "8bit" | "binary" => self.body.to_vec(),
            other => return Err(format!("unknown transfer encoding {other}")),
        };
        let text = String::from_utf8(bytes).map_err(|e| format!("the body is not UTF-8: {e}"))?;
        Ok(text.replace("\r\n", "\n"))
    }
}

fn crlf_to_lf(text: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(text.len());
    for (i, b) in text.iter().enumerate() {
        if !(*b == b'\r' && text.get(i + 1) == Some(&b'\n')) {
            out.push(*b);
        }
    }
    out
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// The parts of a multipart body (`\n` line ends): what lies between
/// `--boundary` lines, up to `--boundary--`.
fn split_multipart<'a>(body: &'a [u8], boundary: &str) -> Result<Vec<&'a [u8]>, String> {
    let delimiter = format!("\n--{boundary}");
    let mut parts = Vec::new();
    // The first delimiter may open the body: give it its line end.
    let mut rest: &[u8] = body;
    let mut at = if rest.starts_with(&delimiter.as_bytes()[1..]) {
        0
    } else {
        find(rest, delimiter.as_bytes()).ok_or("no boundary in a multipart body")? + 1
    };
    loop {
        rest = &rest[at + delimiter.len() - 1..];
        if rest.starts_with(b"--") {
            return Ok(parts);
        }
        // The rest of the delimiter line (transport padding) is ignored.
        let line_end = find(rest, b"\n").ok_or("a multipart body ends early")?;
        rest = &rest[line_end + 1..];
        let next = find(rest, delimiter.as_bytes()).ok_or("a multipart body ends early")?;
        parts.push(&rest[..next]);
        at = next + 1;
    }
}

fn hex_digit(b: u8) -> Option<u8> {
    (b as char).to_digit(16).map(|d| d as u8)
}

/// `=XX` escapes decoded; anything else (a lone `=` too) kept as is.
fn unescape(text: &[u8], out: &mut Vec<u8>) {
    let mut i = 0;
    while i < text.len() {
        let escaped = match text[i..] {
            [b'=', hi, lo, ..] => hex_digit(hi).zip(hex_digit(lo)),
            _ => None,
        };
        match escaped {
            Some((hi, lo)) => {
                out.push((hi << 4) | lo);
                i += 3;
            }
            None => {
                out.push(text[i]);
                i += 1;
            }
        }
    }
}

/// Undo quoted-printable (RFC 2045 6.7) on a body with `\n` line ends:
/// `=XX` bytes and `=` soft line breaks; white space at line ends is
/// transport padding.
fn quoted_printable(body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(body.len());
    let mut lines = body.split(|b| *b == b'\n').peekable();
    while let Some(line) = lines.next() {
        let end = line
            .iter()
            .rposition(|b| !matches!(b, b' ' | b'\t' | b'\r'))
            .map_or(0, |p| p + 1);
        let (line, soft) = match line[..end].strip_suffix(b"=") {
            Some(line) => (line, true),
            None => (&line[..end], false),
        };
        unescape(line, &mut out);
        if !soft && lines.peek().is_some() {
            out.push(b'\n');
        }
    }
    out
}

fn base64(text: &[u8]) -> Result<Vec<u8>, String> {
    let compact: Vec<u8> = text
        .iter()
        .copied()
        .filter(|b| !b.is_ascii_whitespace())
        .collect();
    data_encoding::BASE64
        .decode(&compact)
        .map_err(|e| format!("bad base64: {e}"))
}

/// Decode RFC 2047 encoded words (`=?utf-8?b?…?=`, `=?utf-8?q?…?=`) in a
/// header value; white space between two encoded words goes.
fn decode_words(value: &str) -> Result<String, String> {
    let mut out = String::new();
    let mut rest = value;
    let mut after_word = false;
    while let Some(start) = rest.find("=?") {
        let word = &rest[start + 2..];
        let parsed = word.split_once('?').and_then(|(charset, word)| {
            let (encoding, word) = word.split_once('?')?;
            let (text, tail) = word.split_once("?=")?;
            Some((charset, encoding, text, tail))
        });
        let Some((charset, encoding, text, tail)) = parsed else {
            break;
        };
        let between = &rest[..start];
        if !(after_word && between.trim().is_empty()) {
            out.push_str(between);
        }
        // A language tag (RFC 2231) may follow the charset.
        let charset = charset.split('*').next().unwrap_or_default();
        if !["utf-8", "us-ascii"].contains(&charset.to_ascii_lowercase().as_str()) {
            return Err(format!(
                "charset {charset} in a header (only UTF-8 is read)"
            ));
        }
        let bytes = match encoding {
            "b" | "B" => base64(text.as_bytes())?,
            "q" | "Q" => {
                let mut bytes = Vec::new();
                unescape(text.replace('_', " ").as_bytes(), &mut bytes);
                bytes
            }
            other => return Err(format!("unknown encoded-word encoding {other}")),
        };
        out.push_str(&String::from_utf8(bytes).map_err(|e| e.to_string())?);
        rest = tail;
        after_word = true;
    }
    out.push_str(rest);
    Ok(out)
}

pub struct Smtp {
    dir: TempDir,
    password: String,
    ports: HashMap<Listener, u16>,
    server: Mutex<Option<Running>>,
    /// How many messages to each recipient [`Smtp::wait_for_mail`] has
    /// handed out.
    taken: Mutex<HashMap<String, usize>>,
}

/// `n` distinct free ports on 127.0.0.1 (all held open until all are
/// chosen).
fn free_ports(n: usize) -> Vec<u16> {
    let held: Vec<std::net::TcpListener> = (0..n)
        .map(|_| std::net::TcpListener::bind("127.0.0.1:0").expect("a free port"))
        .collect();
    held.iter()
        .map(|l| l.local_addr().expect("a bound address").port())
        .collect()
}

fn random_password() -> String {
    let mut bytes = [0u8; 12];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut bytes))
        .expect("/dev/urandom");
    data_encoding::HEXLOWER.encode(&bytes)
}

/// server.py exits with this when a port it was given is taken.
const PORT_TAKEN: i32 = 75;

impl Smtp {
    /// The server of this test process, with every listener of
    /// [`Listener::SHARED`], started on first use by a thread that lives as
    /// long as the process. Killed, and its directory removed, when the
    /// process exits.
    pub fn shared() -> &'static Smtp {
        static SHARED: OnceLock<Smtp> = OnceLock::new();
        extern "C" fn stop_shared() {
            if let Some(smtp) = SHARED.get() {
                smtp.stop();
                let _ = std::fs::remove_dir_all(smtp.dir.path());
            }
        }
        SHARED.get_or_init(|| {
            let (tx, rx) = mpsc::channel();
            std::thread::spawn(move || {
                let smtp = Smtp::start(&Listener::SHARED);
                let _ = tx.send(smtp);
                loop {
                    std::thread::park();
                }
            });
            let smtp = rx.recv().expect("the SMTP server thread died");
            // SAFETY: atexit only records the function; it runs on normal
            // exit, while the thread that started the server still lives.
            unsafe { libc::atexit(stop_shared) };
            smtp
        })
    }

    /// A server of its own with `listeners` (each at most once), ready to
    /// accept connections on all of them. It dies with the calling thread
    /// or when dropped.
    pub fn start(listeners: &[Listener]) -> Smtp {
        assert!(!listeners.is_empty(), "an SMTP server needs a listener");
        assert_eq!(
            std::collections::HashSet::<&Listener>::from_iter(listeners).len(),
            listeners.len(),
            "a listener twice in {listeners:?}"
        );
        let dir = crate::shared_tempdir("mfa-smtp-");
        crate::certs::make_test_certificates(dir.path());
        std::fs::set_permissions(
            dir.path().join("server.key"),
            std::fs::Permissions::from_mode(0o600),
        )
        .expect("chmod server.key");
        std::fs::create_dir(dir.path().join("messages")).expect("messages directory");
        let mut smtp = Smtp {
            dir,
            password: random_password(),
            ports: HashMap::new(),
            server: Mutex::new(None),
            taken: Mutex::new(HashMap::new()),
        };
        smtp.write_credentials();
        // The ports are free when chosen, but another process may take one
        // before the server binds it: then choose again.
        for _attempt in 0..5 {
            let ports = free_ports(listeners.len());
            smtp.ports = listeners.iter().copied().zip(ports).collect();
            match smtp.launch(listeners) {
                Ok(running) => {
                    *smtp.server.lock().unwrap_or_else(|p| p.into_inner()) = Some(running);
                    return smtp;
                }
                Err(finished) if finished.code() == Some(PORT_TAKEN) => continue,
                Err(finished) => panic!(
                    "the SMTP server did not start ({}):\n{}",
                    finished.status,
                    finished.describe()
                ),
            }
        }
        panic!("the SMTP server found its ports taken five times")
    }

    /// Start server.py and wait for its `ready`; what it left if it exited
    /// instead.
    fn launch(&self, listeners: &[Listener]) -> Result<Running, crate::process::Finished> {
        let d = self.dir.path();
        let script = crate::workspace_root().join("tests/smtp/server.py");
        let mut cmd = Command::new("/usr/bin/python3");
        // -I: no user site, no PYTHON* variables, no current directory on
        // the path: Debian's python3 and its aiosmtpd only.
        cmd.arg("-I")
            .arg(script)
            .arg("--cert")
            .arg(d.join("server.pem"))
            .arg("--key")
            .arg(d.join("server.key"))
            .arg("--messages")
            .arg(self.messages_dir())
            .arg("--auth-log")
            .arg(self.auth_log())
            .args(["--user", USER, "--password", &self.password]);
        for listener in listeners {
            cmd.arg("--listen").arg(listener.arg(self.ports[listener]));
        }
        crate::process::die_with_parent(&mut cmd);
        let mut running = Running::spawn("SMTP server (tests/smtp/server.py)", &mut cmd);
        match running.next_line(crate::QUICK) {
            Some(line) if line == "ready" => Ok(running),
            // Exited, or said something else (a traceback goes to stderr).
            _ => Err(running.finish(crate::QUICK)),
        }
    }

    fn write_credentials(&self) {
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(self.credentials_file())
            .expect("the SMTP credentials file");
        std::io::Write::write_all(&mut file, format!("{USER}\n{}\n", self.password).as_bytes())
            .expect("the SMTP credentials file");
    }

    /// Kill the server now (a relay going away). Idempotent.
    pub fn stop(&self) {
        // Dropping the Running kills and reaps the child.
        drop(self.server.lock().unwrap_or_else(|p| p.into_inner()).take());
    }

    /// The port of `listener` (a [`Mode`] for its delivering listener).
    /// Panics if this server has no such listener.
    pub fn port(&self, listener: impl Into<Listener>) -> u16 {
        let listener = listener.into();
        *self
            .ports
            .get(&listener)
            .unwrap_or_else(|| panic!("this SMTP server has no listener {listener:?}"))
    }

    /// The test CA that signed the server's certificate.
    pub fn ca_file(&self) -> PathBuf {
        self.dir.path().join("ca.pem")
    }

    /// A CA the server's certificate does not chain to.
    pub fn other_ca_file(&self) -> PathBuf {
        self.dir.path().join("other-ca.pem")
    }

    /// The password of [`USER`].
    pub fn password(&self) -> &str {
        &self.password
    }

    /// A file of mode 0600: the user name on the first line, the password
    /// on the second (the format of mfad's `credentials_file`).
    pub fn credentials_file(&self) -> PathBuf {
        self.dir.path().join("credentials")
    }

    fn messages_dir(&self) -> PathBuf {
        self.dir.path().join("messages")
    }

    fn auth_log(&self) -> PathBuf {
        self.dir.path().join("auth.log")
    }

    /// mfad's `[email]` table for the relay at `listener`: its port,
    /// `tls` by its mode ([`Mode::tls_key`]), the test CA, the credentials
    /// file, a 3 s send timeout. `extra` (TOML lines: `address = …`,
    /// `resend_delay = …`) goes at the end of the table.
    pub fn email_table(&self, listener: impl Into<Listener>, extra: &str) -> String {
        let listener = listener.into();
        let mut table = format!(
            "[email]\nenabled = true\nrelay = \"localhost\"\nport = {}\ntls = \"{}\"\nca_file = \"{}\"\ncredentials_file = \"{}\"\nfrom = \"pam_mfa <mfa@example.org>\"\nsend_timeout = 3\n",
            self.port(listener),
            listener.mode.tls_key(),
            self.ca_file().display(),
            self.credentials_file().display(),
        );
        table.push_str(extra);
        if !extra.is_empty() && !extra.ends_with('\n') {
            table.push('\n');
        }
        table
    }

    /// Every message delivered so far, in the order they arrived.
    pub fn messages(&self) -> Vec<Mail> {
        let mut names: Vec<(String, PathBuf)> = std::fs::read_dir(self.messages_dir())
            .expect("the messages directory")
            .flatten()
            .map(|e| (e.file_name().to_string_lossy().into_owned(), e.path()))
            // Names starting with "." are still being written.
            .filter(|(name, _)| !name.starts_with('.'))
            .collect();
        // NNNNNNNN.mail, a zero-padded count: by name is by arrival.
        names.sort();
        names
            .into_iter()
            .map(|(_, path)| {
                let bytes = std::fs::read(&path)
                    .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
                Mail::parse(&bytes)
                    .unwrap_or_else(|e| panic!("cannot parse {}: {e}", path.display()))
            })
            .collect()
    }

    /// The messages delivered so far to `to` (an envelope recipient,
    /// compared exactly).
    pub fn mails_to(&self, to: &str) -> Vec<Mail> {
        self.messages()
            .into_iter()
            .filter(|m| m.to.iter().any(|r| r == to))
            .collect()
    }

    /// How many messages `to` has had.
    pub fn mail_count(&self, to: &str) -> usize {
        self.mails_to(to).len()
    }

    /// The next message to `to`: the first one this function (or
    /// [`Smtp::next_mail`]) has not returned before, waiting for it up to
    /// `limit` (woken by inotify, not by sleeping). Panics when the limit
    /// passes.
    pub fn wait_for_mail(&self, to: &str, limit: Duration) -> Mail {
        self.next_mail(to, limit).unwrap_or_else(|| {
            panic!(
                "no new message to {to} within {limit:?} ({} before; the server has {} in all)",
                self.taken_count(to),
                self.messages().len()
            )
        })
    }

    /// [`Smtp::wait_for_mail`], `None` when the limit passes (to show that
    /// no message comes).
    pub fn next_mail(&self, to: &str, limit: Duration) -> Option<Mail> {
        let deadline = Instant::now() + limit;
        // Watch before looking, so nothing arrives unseen in between.
        let watch = Watch::new(&self.messages_dir());
        loop {
            {
                let mut taken = self.taken.lock().unwrap_or_else(|p| p.into_inner());
                let next = taken.entry(to.to_string()).or_insert(0);
                if let Some(mail) = self.mails_to(to).into_iter().nth(*next) {
                    *next += 1;
                    return Some(mail);
                }
            }
            let now = Instant::now();
            if now >= deadline {
                return None;
            }
            watch.wait(deadline - now);
        }
    }

    fn taken_count(&self, to: &str) -> usize {
        let taken = self.taken.lock().unwrap_or_else(|p| p.into_inner());
        taken.get(to).copied().unwrap_or(0)
    }

    /// The AUTH attempts `listener` has seen: (mechanism, login, accepted).
    pub fn auth_attempts(&self, listener: impl Into<Listener>) -> Vec<(String, String, bool)> {
        let port = self.port(listener).to_string();
        let log = std::fs::read_to_string(self.auth_log()).unwrap_or_default();
        log.lines()
            .filter_map(|line| {
                let mut fields = line.split(' ');
                if fields.next() != Some(port.as_str()) {
                    return None;
                }
                let mechanism = fields.next()?.to_string();
                let login = fields.next()?.to_string();
                Some((mechanism, login, fields.next() == Some("ok")))
            })
            .collect()
    }
}

impl Drop for Smtp {
    fn drop(&mut self) {
        self.stop();
    }
}

/// An inotify watch for files renamed into (or closed in) a directory.
struct Watch(OwnedFd);

impl Watch {
    fn new(dir: &Path) -> Watch {
        // SAFETY: inotify_init1 takes flags and returns a new fd or -1.
        let fd = unsafe { libc::inotify_init1(libc::IN_NONBLOCK | libc::IN_CLOEXEC) };
        assert!(
            fd >= 0,
            "inotify_init1: {}",
            std::io::Error::last_os_error()
        );
        // SAFETY: the kernel just gave us this fd; nobody else owns it.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        let path = std::ffi::CString::new(dir.as_os_str().as_encoded_bytes()).expect("a path");
        // SAFETY: a valid inotify fd and a NUL-terminated path.
        let wd = unsafe {
            libc::inotify_add_watch(
                fd.as_raw_fd(),
                path.as_ptr(),
                libc::IN_MOVED_TO | libc::IN_CLOSE_WRITE,
            )
        };
        assert!(
            wd >= 0,
            "inotify_add_watch {}: {}",
            dir.display(),
            std::io::Error::last_os_error()
        );
        Watch(fd)
    }

    /// Until something happened in the directory or `limit` passed; the
    /// events themselves are discarded (the caller looks again).
    fn wait(&self, limit: Duration) {
        let mut poll = libc::pollfd {
            fd: self.0.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        let ms = limit.as_millis().clamp(1, i32::MAX as u128) as i32;
        // SAFETY: one valid pollfd.
        unsafe { libc::poll(&mut poll, 1, ms) };
        let mut buf = [0u8; 4096];
        // SAFETY: reading into a buffer of ours from a non-blocking fd.
        while unsafe { libc::read(self.0.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) } > 0 {}
    }
}

#[cfg(test)]
mod parse_tests {
    use super::*;

    fn mail(message: &str) -> Mail {
        let file = format!(
            "listener: 25\nenvelope-from: a@example.org\nenvelope-to: b@example.org\n\n{message}"
        );
        Mail::parse(file.as_bytes()).expect("a message")
    }

    #[test]
    fn quoted_printable_and_encoded_subject() {
        let m = mail(
            "From: pam_mfa <mfa@example.org>\r\nSubject: =?utf-8?b?TG9naW4gY29kZSBmw7xy?=\r\n =?utf-8?q?_h=C3=B6st?=\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\nCode: 123456 f=C3=BCr j=C3=B6rg, a long line that was =\r\nbroken\r\n",
        );
        assert_eq!(m.subject, "Login code für höst");
        assert_eq!(
            m.body,
            "Code: 123456 für jörg, a long line that was broken\n"
        );
        assert_eq!(m.header("from"), Some("pam_mfa <mfa@example.org>"));
        assert_eq!(m.to, ["b@example.org"]);
        assert_eq!(m.port, 25);
    }

    #[test]
    fn base64_in_multipart() {
        let m = mail(
            "Subject: x\r\nContent-Type: multipart/alternative;\r\n boundary=\"BB\"\r\n\r\n--BB\r\nContent-Type: text/html\r\n\r\n<p>no</p>\r\n--BB\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: base64\r\n\r\nQ29kZTogw7w=\r\n--BB--\r\n",
        );
        assert_eq!(m.body, "Code: ü");
    }
}
