//! Commands about the policy and a user's place in it: preferred factor,
//! level, trusted devices, approval, `policy explain` and `policy check`.

use crate::cli::{DevicesAction, PolicyCommand};
use crate::client::Client;
use crate::error::Error;
use crate::output::json_line;
use crate::table::{self, Align, Table};
use crate::{dates, output};

/// Print `text`; a closed stdout is an error like any other.
fn emit(text: &str) -> Result<(), Error> {
    output::emit(text).map_err(Error::from)
}
use serde_json::json;

pub async fn prefer(client: &Client, id: &str, json: bool) -> Result<(), Error> {
    client.set_preferred(id).await?;
    emit(&if json {
        json_line(&json!({ "preferred": id }))
    } else {
        format!(
            "Factor {} is asked first from now on.\n",
            table::printable(id)
        )
    })
}

pub async fn level(client: &Client, level: Option<&str>, json: bool) -> Result<(), Error> {
    if let Some(level) = level {
        let chosen = if level == "default" { "" } else { level };
        client.set_level(chosen).await?;
    }
    let s = client.settings().await?;
    emit(&if json {
        json_line(&json!({
            "level": s.level,
            "chosen_level": s.chosen_level,
            "min_level": s.min_level,
            "preferred": s.preferred,
        }))
    } else {
        let chosen = if s.chosen_level.is_empty() {
            "not chosen".to_string()
        } else {
            format!("chosen: {}", s.chosen_level)
        };
        format!(
            "Level: {} ({chosen}; policy minimum: {})\n",
            s.level, s.min_level
        )
    })
}

pub async fn devices(
    client: &Client,
    user: Option<&str>,
    action: Option<DevicesAction>,
    json: bool,
) -> Result<(), Error> {
    match action.unwrap_or(DevicesAction::List) {
        DevicesAction::List => {
            let devices = client.devices(user).await?;
            emit(&if json {
                json_line(&json!(devices
                    .iter()
                    .map(|d| json!({
                        "id": d.id, "device": d.device, "created": d.created,
                        "expires": d.expires, "last_used": d.last_used,
                    }))
                    .collect::<Vec<_>>()))
            } else if devices.is_empty() {
                "No trusted devices.\n".to_string()
            } else {
                let tz = dates::local_zone();
                let mut t = Table::new(&[
                    ("ID", Align::Left),
                    ("DEVICE", Align::Left),
                    ("TRUSTED SINCE", Align::Left),
                    ("UNTIL", Align::Left),
                    ("LAST USED", Align::Left),
                ]);
                for d in &devices {
                    t.push(vec![
                        d.id.clone(),
                        d.device.clone(),
                        dates::human(d.created, &tz),
                        dates::human(d.expires, &tz),
                        dates::human_or_never(d.last_used, &tz),
                    ]);
                }
                t.render()
            })
        }
        DevicesAction::Revoke { id, all: _ } => {
            let id = id.unwrap_or_default();
            let n = client.revoke_devices(user, &id).await?;
            emit(&if json {
                json_line(&json!({ "revoked": n }))
            } else {
                format!("Revoked {n} trusted device(s).\n")
            })
        }
    }
}

pub async fn approve(
    client: &Client,
    user: &str,
    id: &str,
    revoke: bool,
    json: bool,
) -> Result<(), Error> {
    client.approve_factor(user, id, !revoke).await?;
    emit(&if json {
        json_line(&json!({ "user": user, "factor": id, "approved": !revoke }))
    } else if revoke {
        format!(
            "Factor {} of {} is no longer approved for privileged services.\n",
            table::printable(id),
            table::printable(user)
        )
    } else {
        format!(
            "Factor {} of {} is approved for privileged services.\n",
            table::printable(id),
            table::printable(user)
        )
    })
}

pub async fn set_email(client: &Client, user: &str, to: &str, json: bool) -> Result<(), Error> {
    let factor = client.set_user_email(user, to).await?;
    emit(&if json {
        json_line(&json!({ "user": user, "factor": factor.id, "address": to }))
    } else {
        format!(
            "{}'s e-mail codes go to {} now (factor {}).\n",
            table::printable(user),
            table::printable(to),
            table::printable(&factor.id)
        )
    })
}

pub async fn policy(client: &Client, command: PolicyCommand, json: bool) -> Result<(), Error> {
    match command {
        PolicyCommand::Explain {
            user,
            service,
            from,
            ssh_key,
        } => {
            let auth_info = ssh_key
                .map(|k| format!("publickey {}\n", k.trim()))
                .unwrap_or_default();
            let e = client
                .explain_policy(&user, &service, &from, &auth_info)
                .await?;
            emit(&if json {
                json_line(&json!({
                    "outcome": e.outcome, "reason": e.reason, "rule": e.rule,
                    "class": e.class, "level": e.level, "lines": e.lines,
                }))
            } else {
                let mut text = String::new();
                for line in &e.lines {
                    text.push_str(&format!("  {}\n", table::printable(line)));
                }
                let because = if e.reason.is_empty() {
                    String::new()
                } else {
                    format!(" ({})", e.reason)
                };
                text.push_str(&format!("Outcome: {}{because}\n", e.outcome));
                text
            })
        }
        PolicyCommand::Reload => {
            let notes = client.reload_policy().await?;
            emit(&if json {
                json_line(&json!({ "reloaded": true, "notes": notes }))
            } else {
                let mut text = String::from("Policy reloaded.\n");
                for note in &notes {
                    text.push_str(&format!("note: {}\n", table::printable(note)));
                }
                text
            })
        }
        PolicyCommand::Check { file } => {
            let text = std::fs::read_to_string(&file)
                .map_err(|e| Error::Usage(format!("cannot read {}: {e}", file.display())))?;
            let check = client.check_policy(&text).await?;
            let mut out = String::new();
            for w in &check.warnings {
                out.push_str(&format!("warning: {}\n", table::printable(w)));
            }
            for e in &check.errors {
                out.push_str(&format!("error: {}\n", table::printable(e)));
            }
            if json {
                emit(&json_line(
                    &json!({ "errors": check.errors, "warnings": check.warnings }),
                ))?;
            } else if check.errors.is_empty() {
                out.push_str(&format!("{}: policy is fine.\n", file.display()));
                emit(&out)?;
            } else {
                emit(&out)?;
            }
            if check.errors.is_empty() {
                Ok(())
            } else {
                Err(Error::Refused(format!(
                    "{}: {} error(s); do not use this policy",
                    file.display(),
                    check.errors.len()
                )))
            }
        }
    }
}

pub async fn audit(
    client: &Client,
    user: Option<&str>,
    since: Option<u64>,
    limit: u32,
    json: bool,
) -> Result<(), Error> {
    let entries = client
        .audit(user.unwrap_or(""), since.unwrap_or(0), limit)
        .await?;
    emit(&if json {
        json_line(&json!(entries
            .iter()
            .map(|e| json!({
                "time": dates::rfc3339(e.time), "host": e.host, "event": e.event, "user": e.user,
                "service": e.service, "rhost": e.rhost, "outcome": e.outcome,
                "reason": e.reason, "detail": e.detail,
            }))
            .collect::<Vec<_>>()))
    } else if entries.is_empty() {
        "Nothing recorded.\n".to_string()
    } else {
        let tz = dates::local_zone();
        let mut t = Table::new(&[
            ("TIME", Align::Left),
            ("HOST", Align::Left),
            ("USER", Align::Left),
            ("EVENT", Align::Left),
            ("SERVICE", Align::Left),
            ("FROM", Align::Left),
            ("OUTCOME", Align::Left),
            ("REASON", Align::Left),
            ("DETAIL", Align::Left),
        ]);
        for e in &entries {
            t.push(vec![
                dates::human_seconds(e.time, &tz),
                e.host.clone(),
                e.user.clone(),
                e.event.clone(),
                e.service.clone(),
                e.rhost.clone(),
                e.outcome.clone(),
                e.reason.clone(),
                e.detail.clone(),
            ]);
        }
        t.render()
    })
}
