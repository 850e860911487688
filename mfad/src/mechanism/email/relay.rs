//! Sending one message through the configured relay with lettre: always
//! TLS (STARTTLS required, or TLS from the first byte), the certificate and
//! host name verified, credentials only ever inside that TLS, and the whole
//! send bounded by `send_timeout`.

use crate::config::{EmailConfig, SmtpTls};
use lettre::message::header::ContentType;
use lettre::message::Mailbox;
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, CertificateStore, Tls, TlsParameters};
use lettre::{Message, SmtpTransport, Transport};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The relay and what every message has in common.
#[derive(Debug, Clone)]
pub struct Relay {
    host: String,
    port: u16,
    tls: SmtpTls,
    ca_file: Option<PathBuf>,
    credentials_file: Option<PathBuf>,
    from: String,
    timeout: Duration,
}

/// One message to send.
pub struct Mail<'a> {
    pub to: &'a str,
    pub subject: &'a str,
    pub body: &'a str,
}

impl Relay {
    pub fn from_config(config: &EmailConfig) -> Relay {
        Relay {
            host: config.relay.clone(),
            port: config.port,
            tls: config.tls,
            ca_file: config.ca_file.clone(),
            credentials_file: config.credentials_file.clone(),
            from: config.from.clone(),
            timeout: config.send_timeout,
        }
    }

    /// Send `mail`, within the timeout: what went wrong, in words for an
    /// admin's log (never the message itself: it holds the code).
    pub fn send(&self, mail: &Mail<'_>) -> Result<(), String> {
        let message = self.message(mail)?;
        let transport = self.transport()?;
        let (done, result) = std::sync::mpsc::channel();
        // lettre's timeout bounds each read and write; the deadline bounds
        // the whole exchange. A send past it finishes (or fails) alone.
        std::thread::Builder::new()
            .name("mfad-smtp".into())
            .spawn(move || {
                let _ = done.send(transport.send(&message).map(|_| ()));
            })
            .map_err(|e| format!("cannot start a thread to send: {e}"))?;
        match result.recv_timeout(self.timeout) {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(format!(
                "{}:{}: {}",
                self.host,
                self.port,
                crate::error::with_causes(&e)
            )),
            Err(_) => Err(format!(
                "{}:{}: no answer within {} s ([email] send_timeout)",
                self.host,
                self.port,
                self.timeout.as_secs()
            )),
        }
    }

    fn message(&self, mail: &Mail<'_>) -> Result<Message, String> {
        let from: Mailbox = self
            .from
            .parse()
            .map_err(|e| format!("[email] from {:?}: {e}", self.from))?;
        let to: Mailbox = mail
            .to
            .parse()
            .map_err(|e| format!("address {:?}: {e}", mail.to))?;
        Message::builder()
            .from(from)
            .to(to)
            .subject(mail.subject)
            .header(ContentType::TEXT_PLAIN)
            .body(mail.body.to_string())
            .map_err(|e| format!("cannot make the message: {e}"))
    }

    /// What `mfad --check-config` checks: the files the sends will read.
    pub fn check_files(&self) -> Result<(), String> {
        if let Some(ca) = &self.ca_file {
            read_ca(ca)?;
        }
        if let Some(file) = &self.credentials_file {
            read_credentials(file)?;
        }
        Ok(())
    }

    fn transport(&self) -> Result<SmtpTransport, String> {
        let mut params = TlsParameters::builder(self.host.clone());
        if let Some(ca) = &self.ca_file {
            params = params
                .certificate_store(CertificateStore::None)
                .add_root_certificate(read_ca(ca)?);
        }
        let params = params
            .build_rustls()
            .map_err(|e| format!("TLS to {}: {e}", self.host))?;
        let tls = match self.tls {
            SmtpTls::Starttls => Tls::Required(params),
            SmtpTls::Implicit => Tls::Wrapper(params),
        };
        let mut builder = SmtpTransport::builder_dangerous(&self.host)
            .port(self.port)
            .tls(tls)
            .timeout(Some(self.timeout));
        if let Some(file) = &self.credentials_file {
            let (user, password) = read_credentials(file)?;
            builder = builder.credentials(Credentials::new(user, password));
        }
        Ok(builder.build())
    }
}

/// The CA certificate in `file` (PEM).
fn read_ca(file: &Path) -> Result<Certificate, String> {
    let err = |m: String| format!("[email] ca_file {}: {m}", file.display());
    let pem = std::fs::read(file).map_err(|e| err(e.to_string()))?;
    if !String::from_utf8_lossy(&pem).contains("-----BEGIN CERTIFICATE-----") {
        return Err(err("holds no PEM certificate".into()));
    }
    Certificate::from_pem(&pem).map_err(|e| err(e.to_string()))
}

/// User name and password from the first two lines of `file`, which only
/// root may read.
fn read_credentials(file: &Path) -> Result<(String, String), String> {
    let err = |m: String| format!("[email] credentials_file {}: {m}", file.display());
    let meta = std::fs::metadata(file).map_err(|e| err(e.to_string()))?;
    if meta.permissions().mode() & 0o077 != 0 {
        return Err(err(format!(
            "mode {:04o}: group and others must have no access (chmod 600)",
            meta.permissions().mode() & 0o777
        )));
    }
    let text = std::fs::read_to_string(file).map_err(|e| err(e.to_string()))?;
    let mut lines = text.lines();
    match (lines.next(), lines.next()) {
        (Some(user), Some(password)) if !user.is_empty() && !password.is_empty() => {
            Ok((user.to_string(), password.to_string()))
        }
        _ => Err(err(
            "must hold the user name on its first line and the password on its second".into(),
        )),
    }
}
