//! Audit trail: every decision and every change to someone's factors, with
//! its reason, to syslog (authpriv) or stderr. Only names, ids and reasons
//! are ever logged: the types passed in carry no code and no secret.

use crate::clock::Clock;
use crate::config::LogTarget;
use crate::store::{History, HistoryRow};
use mfa_dbus::LoginRequest;
use std::ffi::CString;
use std::fmt::Write;
use std::sync::{Arc, Once};

pub struct Audit {
    target: LogTarget,
    /// Where `mfactl audit` reads from, once the store is open.
    history: Option<(History, Arc<dyn Clock>)>,
}

/// Syslog severities used here.
#[derive(Clone, Copy)]
pub enum Severity {
    Info,
    Notice,
    Warning,
    Error,
}

impl Audit {
    pub fn new(target: LogTarget) -> Audit {
        if target == LogTarget::Syslog {
            static OPEN: Once = Once::new();
            OPEN.call_once(|| {
                // SAFETY: the ident is a 'static C string; openlog keeps the
                // pointer, which stays valid for the whole process.
                unsafe { libc::openlog(c"mfad".as_ptr(), libc::LOG_PID, libc::LOG_AUTHPRIV) };
            });
        }
        Audit {
            target,
            history: None,
        }
    }

    /// Keep every line also in the store's history, stamped by `clock`.
    pub fn with_history(mut self, history: History, clock: Arc<dyn Clock>) -> Audit {
        self.history = Some((history, clock));
        self
    }

    pub fn history(&self) -> Option<&History> {
        self.history.as_ref().map(|(h, _)| h)
    }

    fn record(
        &self,
        event: String,
        user: &str,
        service: &str,
        rhost: &str,
        outcome: &str,
        fields: &[(&str, &str)],
    ) {
        let Some((history, clock)) = &self.history else {
            return;
        };
        let reason = fields
            .iter()
            .find(|(k, _)| *k == "reason")
            .map(|(_, v)| v.to_string())
            .unwrap_or_default();
        let mut detail = String::new();
        for (k, v) in fields
            .iter()
            .filter(|(k, v)| *k != "reason" && !v.is_empty())
        {
            push_field(&mut detail, k, v);
        }
        let row = HistoryRow {
            host: String::new(),
            time: clock.now(),
            event,
            user: user.into(),
            service: service.into(),
            rhost: rhost.into(),
            outcome: outcome.into(),
            reason,
            detail: detail.trim_start().to_string(),
        };
        if let Err(e) = history.append(row) {
            self.emit(
                Severity::Warning,
                &format!("audit history not recorded: {e}"),
            );
        }
    }

    /// A login decision or step: `event` is e.g. `allow`, `deny`, `retry`.
    pub fn login(&self, request: &LoginRequest, event: &str, fields: &[(&str, &str)]) {
        let mut line = format!("login {event}");
        push_field(&mut line, "user", &request.user);
        push_field(&mut line, "service", &request.service);
        if !request.rhost.is_empty() {
            push_field(&mut line, "rhost", &request.rhost);
        }
        if !request.tty.is_empty() {
            push_field(&mut line, "tty", &request.tty);
        }
        for (k, v) in fields {
            push_field(&mut line, k, v);
        }
        let severity = if event == "allow" {
            Severity::Info
        } else {
            Severity::Notice
        };
        self.emit(severity, &line);
        self.record(
            "login".into(),
            &request.user,
            &request.service,
            &request.rhost,
            event,
            fields,
        );
    }

    /// A change to factors: `action` is e.g. `enrol`, `confirm`, `remove`, `reset`.
    pub fn change(&self, action: &str, caller_uid: u32, user: &str, fields: &[(&str, &str)]) {
        let mut line = format!("factors {action}");
        push_field(&mut line, "by_uid", &caller_uid.to_string());
        push_field(&mut line, "user", user);
        for (k, v) in fields {
            push_field(&mut line, k, v);
        }
        self.emit(Severity::Notice, &line);
        let by = caller_uid.to_string();
        let mut all = vec![("by_uid", by.as_str())];
        all.extend_from_slice(fields);
        self.record("change".into(), user, "", "", action, &all);
    }

    /// Anything else worth an admin's attention.
    pub fn message(&self, severity: Severity, text: &str) {
        self.emit(severity, text);
    }

    fn emit(&self, severity: Severity, line: &str) {
        match self.target {
            LogTarget::Stderr => eprintln!("mfad: {line}"),
            LogTarget::Syslog => {
                let priority = libc::LOG_AUTHPRIV
                    | match severity {
                        Severity::Info => libc::LOG_INFO,
                        Severity::Notice => libc::LOG_NOTICE,
                        Severity::Warning => libc::LOG_WARNING,
                        Severity::Error => libc::LOG_ERR,
                    };
                // Fields are escaped, so there is no NUL; drop the line if
                // there were.
                if let Ok(text) = CString::new(line) {
                    // SAFETY: constant "%s" format with one valid C string.
                    unsafe { libc::syslog(priority, c"%s".as_ptr(), text.as_ptr()) };
                }
            }
        }
    }
}

/// ` key=value`, quoting values with spaces and escaping anything that could
/// forge a log line.
fn push_field(line: &mut String, key: &str, value: &str) {
    let plain = !value.is_empty()
        && value
            .chars()
            .all(|c| c.is_ascii_graphic() && c != '"' && c != '\\' && c != '=');
    if plain {
        let _ = write!(line, " {key}={value}");
        return;
    }
    let _ = write!(line, " {key}=\"");
    for c in value.chars() {
        match c {
            '"' => line.push_str("\\\""),
            '\\' => line.push_str("\\\\"),
            c if c.is_control() => {
                let _ = write!(line, "\\x{:02x}", c as u32);
            }
            c => line.push(c),
        }
    }
    line.push('"');
}

#[cfg(test)]
mod tests {
    use super::push_field;

    #[test]
    fn fields_cannot_forge_lines() {
        let mut line = String::new();
        push_field(&mut line, "user", "eve\nmfad: login allow user=root");
        assert_eq!(line, " user=\"eve\\x0amfad: login allow user=root\"");
        let mut line = String::new();
        push_field(&mut line, "user", "alice");
        assert_eq!(line, " user=alice");
    }
}
