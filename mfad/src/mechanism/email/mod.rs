//! One-time codes by e-mail. A factor is an address; at login mfad issues
//! a code in one store transaction (so the resend delay and the hourly cap
//! hold across concurrent logins and, with PostgreSQL, across hosts), sends
//! it through the relay while the user waits, then asks for it. The store
//! keeps only a keyed hash of the code, cleared once the code is used.

mod address;
mod code;
mod relay;

pub use address::{mask, parse_mailbox, valid_address};

use super::{
    normalise_code, Advance, Ask, Challenge, EnrolError, EnrolRequest, FactorData, FactorKind,
    LoginContext, Mechanism, NewFactor, Next, Response, Verdict, Work,
};
use crate::config::EmailConfig;
use crate::mechanism::ChallengeError;
use crate::store::{FactorRecord, Store};
use mfa_dbus::EnrolmentOffer;
use relay::{Mail, Relay};
use std::any::Any;
use std::fmt;
use std::sync::Arc;

const CODE_PROMPT: &str = "E-mail code: ";
/// The hour the cap counts sends in.
const WINDOW: u64 = 3600;

/// An e-mail factor as the store keeps it (sealed).
#[derive(Clone, PartialEq, Eq)]
pub struct EmailFactor {
    pub address: String,
    /// The code sent last, until it is used.
    pub code: Option<SentCode>,
    /// Sends counted for the cap since `window_start`.
    pub window_start: u64,
    pub sent_in_window: u32,
}

impl fmt::Debug for EmailFactor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EmailFactor")
            .field("address", &mask(&self.address))
            .field("code", &self.code.as_ref().map(|c| (c.sent, c.expires)))
            .field("window_start", &self.window_start)
            .field("sent_in_window", &self.sent_in_window)
            .finish()
    }
}

/// A code that was sent: its keyed hash, when, and until when it works.
#[derive(Clone, PartialEq, Eq)]
pub struct SentCode {
    pub hash: [u8; 32],
    pub sent: u64,
    pub expires: u64,
}

impl EmailFactor {
    /// An address no code was sent to yet (one an admin set).
    pub fn address_only(address: &str) -> EmailFactor {
        EmailFactor {
            address: address.to_string(),
            code: None,
            window_start: 0,
            sent_in_window: 0,
        }
    }

    /// A new address whose first code (`hash`) was just sent.
    fn new(address: String, hash: [u8; 32], now: u64, validity: u64) -> EmailFactor {
        EmailFactor {
            address,
            code: None,
            window_start: now,
            sent_in_window: 0,
        }
        .with_code(hash, now, validity)
    }

    /// This factor once the code `hash` is sent at `now`: counted in the
    /// hour, replacing any code sent before.
    fn with_code(&self, hash: [u8; 32], now: u64, validity: u64) -> EmailFactor {
        let (window_start, sent_in_window) = if now.saturating_sub(self.window_start) >= WINDOW {
            (now, 1)
        } else {
            (self.window_start, self.sent_in_window.saturating_add(1))
        };
        EmailFactor {
            address: self.address.clone(),
            code: Some(SentCode {
                hash,
                sent: now,
                expires: now.saturating_add(validity),
            }),
            window_start,
            sent_in_window,
        }
    }

    /// This factor with its code used up.
    fn used(&self) -> EmailFactor {
        EmailFactor {
            code: None,
            ..self.clone()
        }
    }
}

/// Why no code is sent now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Hold {
    /// One was sent at `sent` and still works; another in `wait` seconds.
    Recent { sent: u64, wait: u64 },
    /// The hour's cap is reached; the next in `wait` seconds.
    Capped { wait: u64 },
}

/// E-mail codes as a second factor.
pub struct Email {
    config: EmailConfig,
    relay: Relay,
    /// Also where the key for keyed hashes of codes comes from (read when
    /// needed: a fleet database mfad waits for has none yet).
    store: Arc<dyn Store>,
    host: String,
}

/// What a login remembers between sending and checking.
struct Sending {
    masked: String,
}

/// The files `[email]` names, as a send will read them: what is wrong.
pub fn check_files(config: &EmailConfig) -> Result<(), String> {
    if !config.enabled {
        return Ok(());
    }
    Relay::from_config(config).check_files()
}

impl Email {
    /// The mechanism `config` enables, if it does; codes go through
    /// `store` (issued, checked, used up in its transactions).
    pub fn from_config(config: &EmailConfig, host: &str, store: Arc<dyn Store>) -> Option<Email> {
        config.enabled.then(|| Email {
            relay: Relay::from_config(config),
            config: config.clone(),
            store,
            host: host.to_string(),
        })
    }

    fn hold(&self, factor: &EmailFactor, now: u64) -> Option<Hold> {
        if let Some(code) = &factor.code {
            let next = code.sent.saturating_add(self.config.resend_delay);
            if code.expires > now && next > now {
                return Some(Hold::Recent {
                    sent: code.sent,
                    wait: next - now,
                });
            }
        }
        let window_end = factor.window_start.saturating_add(WINDOW);
        (window_end > now && factor.sent_in_window >= self.config.max_per_hour).then(|| {
            Hold::Capped {
                wait: window_end.saturating_sub(now),
            }
        })
    }

    /// The message that carries `code` to `user`.
    fn mail_text(&self, user: &str, code: &str) -> (String, String) {
        let minutes = self.config.validity.div_ceil(60).to_string();
        let values = [
            ("host", self.host.as_str()),
            ("user", user),
            ("minutes", minutes.as_str()),
            ("code", code),
        ];
        (
            fill(&self.config.subject, &values),
            fill(&self.config.template, &values),
        )
    }

    fn hash(&self, user: &str, code: &str) -> Result<[u8; 32], String> {
        let key = self
            .store
            .hash_key()
            .map_err(|e| format!("cannot hash the code: {e}"))?;
        code::keyed_hash(&key, user, code).ok_or_else(|| "cannot hash the code".into())
    }

    /// The prompt for a code that was sent; `note` first.
    fn prompt(&self, note: &str) -> Ask {
        Ask::Prompt {
            text: format!("{note}\n{CODE_PROMPT}"),
            echo: false,
            code: true,
        }
    }
}

/// `text` with each `{name}` replaced by its value, in one pass: a value
/// (a login name) that looks like a placeholder stays as it is.
fn fill(text: &str, values: &[(&str, &str)]) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        let after = &rest[open + 1..];
        match after.find('}').and_then(|close| {
            values
                .iter()
                .find(|(n, _)| *n == &after[..close])
                .map(|v| (close, v.1))
        }) {
            Some((close, value)) => {
                out.push_str(value);
                rest = &after[close + 1..];
            }
            None => {
                out.push('{');
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

impl Mechanism for Email {
    fn kind(&self) -> FactorKind {
        FactorKind::Email
    }

    /// With an address template, a login can set up its first factor: the
    /// address is known, the code proves the user reads it.
    fn enrols_at_login(&self) -> bool {
        self.config.address.is_some()
    }

    fn enrol(&self, request: &EnrolRequest<'_>) -> Result<NewFactor, EnrolError> {
        let given = request.options.address.trim();
        let address = match (&self.config.address, given) {
            (Some(template), "") => template.replace("{user}", request.user),
            (Some(_), _) => {
                return Err(EnrolError::Invalid(
                    "addresses come from [email] address on this host; an admin can set \
                     another one (mfactl set-email)"
                        .into(),
                ))
            }
            (None, "") => {
                return Err(EnrolError::Invalid(
                    "give the address the codes go to (--address)".into(),
                ))
            }
            (None, given) => given.to_string(),
        };
        valid_address(&address).map_err(EnrolError::Invalid)?;
        let masked = mask(&address);
        let code = code::new_code(self.config.code_length).map_err(EnrolError::Failed)?;
        let hash = self.hash(request.user, &code).map_err(EnrolError::Failed)?;
        let (subject, body) = self.mail_text(request.user, &code);
        self.relay
            .send(&Mail {
                to: &address,
                subject: &subject,
                body: &body,
            })
            .map_err(|e| EnrolError::Failed(format!("could not send a code to {masked}: {e}")))?;
        let sent = format!("A code was sent to {masked}.");
        Ok(NewFactor {
            data: FactorData::Email(Box::new(EmailFactor::new(
                address,
                hash,
                request.now,
                self.config.validity,
            ))),
            counter: 1,
            offer: EnrolmentOffer {
                kind: FactorKind::Email.name().into(),
                digits: self.config.code_length,
                instructions: format!("{sent} Confirm the address with it."),
                ..EnrolmentOffer::default()
            },
            work: None,
            state: Box::new(()),
            login_text: sent,
            login_prompt: CODE_PROMPT,
        })
    }

    /// Issue a code (unless one was sent a moment ago, or the hour's cap is
    /// reached) and send it while the login waits.
    fn challenge(
        &self,
        load: &mut dyn FnMut() -> Result<FactorRecord, ChallengeError>,
        _others: &mut dyn FnMut() -> Result<Vec<FactorRecord>, ChallengeError>,
        login: &LoginContext,
    ) -> Result<Challenge, ChallengeError> {
        let factor = load()?;
        let FactorData::Email(data) = &factor.data else {
            return Err(format!("factor {} is not an e-mail factor", factor.id).into());
        };
        let masked = mask(&data.address);
        let now = login.now;
        // After a wrong answer the code sent still works: no new mail for a typo.
        if login.retry && data.code.as_ref().is_some_and(|c| c.expires > now) {
            return Ok(Challenge {
                ask: self.prompt(&format!("Type the code sent to {masked}.")),
                state: Box::new(Sending { masked }),
            });
        }
        let code = code::new_code(self.config.code_length)?;
        let hash = self.hash(&factor.user, &code)?;
        // Decided again inside the transaction: two logins at once send one code.
        let mut held = None;
        let mut before = None;
        self.store
            .advance_factor(&factor.user, &factor.id, &mut |f| {
                let FactorData::Email(d) = &f.data else {
                    return None;
                };
                held = self.hold(d, now);
                before = Some(d.clone());
                held.is_none().then(|| Advance {
                    counter: f.counter.saturating_add(1),
                    data: Some(FactorData::Email(Box::new(d.with_code(
                        hash,
                        now,
                        self.config.validity,
                    )))),
                })
            })?;
        let state = Box::new(Sending {
            masked: masked.clone(),
        });
        match (held, before) {
            (Some(Hold::Recent { wait, .. }), _) => Ok(Challenge {
                ask: self.prompt(&format!(
                    "A code was sent to {masked} a moment ago; a new one can be sent in {wait} s."
                )),
                state,
            }),
            (Some(Hold::Capped { wait }), _) => Err(format!(
                "{} codes were sent to {masked} within the hour; the next can be sent in {} min",
                self.config.max_per_hour,
                wait.div_ceil(60)
            )
            .into()),
            (None, Some(before)) => {
                let (subject, body) = self.mail_text(&factor.user, &code);
                let (relay, store) = (self.relay.clone(), Arc::clone(&self.store));
                let (user, id, address) = (
                    factor.user.clone(),
                    factor.id.clone(),
                    before.address.clone(),
                );
                let work = Work::spawn("mfad-email", move |_| {
                    let sent = relay.send(&Mail {
                        to: &address,
                        subject: &subject,
                        body: &body,
                    });
                    match sent {
                        Ok(()) => Ok(Response::Evidence(Box::new(()))),
                        Err(e) => {
                            // Not sent: it must not hold back the next try.
                            let _ = store.advance_factor(&user, &id, &mut |f| match &f.data {
                                FactorData::Email(d)
                                    if d.code.as_ref().is_some_and(|c| c.hash == hash) =>
                                {
                                    Some(Advance {
                                        counter: f.counter,
                                        data: Some(FactorData::Email(before.clone())),
                                    })
                                }
                                _ => None,
                            });
                            Err(format!("could not send a code to {}: {e}", mask(&address)))
                        }
                    }
                })?;
                Ok(Challenge {
                    ask: Ask::Wait {
                        text: format!("Sending a code to {masked}..."),
                        work,
                    },
                    state,
                })
            }
            (None, None) => Err(format!("factor {} is not an e-mail factor", factor.id).into()),
        }
    }

    /// Sent: now the prompt.
    fn worked(&self, state: &mut (dyn Any + Send), _response: Response) -> Next {
        let masked = state
            .downcast_ref::<Sending>()
            .map(|s| s.masked.clone())
            .unwrap_or_default();
        Next::Ask(self.prompt(&format!("A code was sent to {masked}.")))
    }

    /// An empty answer asks for a new code (past the resend delay).
    fn respond(&self, _state: &mut (dyn Any + Send), text: String) -> Result<Next, String> {
        if text.trim().is_empty() {
            return Ok(Next::Again);
        }
        Ok(Next::Check(Response::Text(text)))
    }

    fn verify(
        &self,
        factor: &FactorRecord,
        _challenge: &(dyn Any + Send),
        response: &Response,
        now: u64,
    ) -> Verdict {
        let (FactorData::Email(data), Response::Text(answer)) = (&factor.data, response) else {
            return Verdict::Reject;
        };
        let (Some(sent), Some(code)) =
            (&data.code, normalise_code(answer, self.config.code_length))
        else {
            return Verdict::Reject;
        };
        // Asked inside the store's check: the store is open, its key known.
        let Ok(key) = self.store.hash_key() else {
            return Verdict::Reject;
        };
        if now >= sent.expires || !code::matches(&key, &factor.user, &code, &sent.hash) {
            return Verdict::Reject;
        }
        Verdict::Accept(Advance {
            counter: factor.counter,
            data: Some(FactorData::Email(Box::new(data.used()))),
        })
    }
}

#[cfg(test)]
mod tests;
