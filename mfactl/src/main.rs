//! mfactl: the pam_mfa command line. Parses the command, checks what can be
//! checked locally, then makes its calls to mfad over the bus. Exit codes
//! are listed in `error.rs` (and in `--help` and mfactl(1)).
//!
//! The modules are layered, each using only those below it (the test
//! `layers` below holds them to it):
//!
//! - `main`: runs a command;
//! - the commands, `enrol`, `import`, `policy`, `store`: take their
//!   arguments as `cli` defines them;
//! - `cli`: the command line's definition;
//! - `output` (what is printed) and `client` (the calls to mfad);
//! - `error`;
//! - plain leaves: `kinds` (values the others share), `dates`, `table`,
//!   `prompt`.

mod cli;
mod client;
mod dates;
mod enrol;
mod error;
mod import;
mod kinds;
mod output;
mod policy;
mod prompt;
mod store;
mod table;

use clap::Parser;
use cli::{Cli, Command};
use client::Client;
use error::Error;
use std::process::ExitCode;

fn main() -> ExitCode {
    // Usage errors exit 2 here, with clap's message.
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => return Error::Refused(format!("cannot start the async runtime: {e}")).report(),
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::from(error::EXIT_OK),
        Err(e) => e.report(),
    }
}

async fn run(cli: Cli) -> Result<(), Error> {
    let address = cli.bus_address.as_str();
    let json = cli.json;
    match cli.command {
        Command::Enrol(args) => {
            args.validate()?;
            // Local input first: a bad secret file changes nothing on mfad.
            let secret = match args.kind {
                kinds::Kind::Fido2 => enrol::pin_to_use(&args)?,
                _ => enrol::secret_to_import(&args)?,
            };
            let client = Client::connect(address).await?;
            let mut out = std::io::stdout();
            let show = enrol::Show::from_args(&args, output::stdout_colour());
            if let Some(user) = &args.user {
                enrol::set_up_for(&client, user, &args, secret, json, show, &mut out).await?;
                return Ok(());
            }
            let mut source = enrol::code_source(args.code.clone());
            enrol::enrol(
                &client,
                &args,
                secret,
                json,
                show,
                source.as_mut(),
                &mut out,
            )
            .await?;
        }
        Command::Confirm { id, code } => {
            if let Some(c) = &code {
                kinds::normalise_code(c).map_err(Error::Usage)?;
            }
            let mut source = enrol::code_source(code);
            let client = Client::connect(address).await?;
            let factor = enrol::confirm_with(&client, &id, None, source.as_mut()).await?;
            output::emit(&enrol::confirmed_text(&factor, json))?;
        }
        Command::List => {
            let factors = Client::connect(address).await?.list_factors().await?;
            output::emit(&if json {
                output::factors_json(&factors)
            } else if factors.is_empty() {
                "You have no factors. Add one with `mfactl enrol totp`.\n".to_string()
            } else {
                output::factors_table(&factors, &dates::local_zone())
            })?;
        }
        Command::RecoveryCodes => {
            let codes = Client::connect(address)
                .await?
                .generate_recovery_codes()
                .await?;
            output::emit(&if json {
                output::json_line(&serde_json::json!({ "recovery_codes": codes }))
            } else {
                let mut text = String::from(
                    "Your recovery codes, each good for one login in place of an \
                     authenticator code.\nThey are shown only now: keep them safe, \
                     away from your device. Earlier codes no longer work.\n\n",
                );
                for code in &codes {
                    text.push_str(&format!("    {}\n", table::printable(code)));
                }
                text
            })?;
        }
        Command::Remove { id, yes } => {
            let client = Client::connect(address).await?;
            if !yes {
                let factors = client.list_factors().await?;
                if is_last_active(&factors, &id) {
                    confirm_or_refuse(
                        &format!(
                            "Factor {id} is your last active factor; without it, logins that \
                             need a second factor will refuse you."
                        ),
                        "Remove it?",
                    )?;
                }
            }
            client.remove_factor(&id).await?;
            output::emit(&if json {
                output::json_line(&serde_json::json!({ "removed": id }))
            } else {
                format!("Removed factor {}.\n", table::printable(&id))
            })?;
        }
        Command::Users { sort } => {
            let mut users = Client::connect(address).await?.list_users().await?;
            output::sort_users(&mut users, sort);
            output::emit(&if json {
                output::users_json(&users)
            } else if users.is_empty() {
                "No user has a factor.\n".to_string()
            } else {
                output::users_table(&users, &dates::local_zone())
            })?;
        }
        Command::User { user } => {
            let factors = Client::connect(address)
                .await?
                .list_user_factors(&user)
                .await?;
            output::emit(&if json {
                output::factors_json(&factors)
            } else if factors.is_empty() {
                format!("{} has no factors.\n", table::printable(&user))
            } else {
                output::factors_table(&factors, &dates::local_zone())
            })?;
        }
        Command::Reset { user, yes } => {
            // Refuse before any call when nobody can be asked.
            if !yes && !prompt::stdin_is_terminal() {
                return Err(needs_yes());
            }
            let client = Client::connect(address).await?;
            if !yes {
                let factors = client.list_user_factors(&user).await?;
                let active = factors.iter().filter(|f| f.confirmed).count();
                confirm_or_refuse(
                    &format!(
                        "{} has {active} active and {} pending factor(s); all will be removed.",
                        table::printable(&user),
                        factors.len() - active,
                    ),
                    "Reset this user?",
                )?;
            }
            let removed = client.reset_user(&user).await?;
            output::emit(&if json {
                output::json_line(&serde_json::json!({ "user": user, "removed": removed }))
            } else {
                format!(
                    "Removed {removed} factor(s) of {}.\n",
                    table::printable(&user)
                )
            })?;
        }
        Command::Unlock { user } => {
            let client = Client::connect(address).await?;
            let was_locked = client.unlock_user(&user).await?;
            output::emit(&if json {
                output::json_line(&serde_json::json!({ "user": user, "was_locked": was_locked }))
            } else if was_locked {
                format!("Unlocked {}.\n", table::printable(&user))
            } else {
                format!(
                    "{} was not locked; failed codes cleared.\n",
                    table::printable(&user)
                )
            })?;
        }
        Command::Prefer { id } => {
            policy::prefer(&Client::connect(address).await?, &id, json).await?
        }
        Command::Level { level } => {
            policy::level(&Client::connect(address).await?, level.as_deref(), json).await?
        }
        Command::Devices { user, action } => {
            let client = Client::connect(address).await?;
            policy::devices(&client, user.as_deref(), action, json).await?
        }
        Command::Resync {
            user,
            id,
            first,
            second,
        } => {
            let client = Client::connect(address).await?;
            client.resync(user.as_deref(), &id, &first, &second).await?;
            output::emit(&if json {
                output::json_line(&serde_json::json!({ "resynced": id }))
            } else {
                format!("Factor {} is in step again.\n", table::printable(&id))
            })?;
        }
        Command::Approve { user, id, revoke } => {
            let client = Client::connect(address).await?;
            policy::approve(&client, &user, &id, revoke, json).await?
        }
        Command::Completions { shell } => {
            let mut script = Vec::new();
            clap_complete::generate(
                shell.generator(),
                &mut <cli::Cli as clap::CommandFactory>::command(),
                "mfactl",
                &mut script,
            );
            output::emit(&String::from_utf8_lossy(&script))?;
        }
        Command::Invitation { code, no_qr } => {
            if let Some(c) = &code {
                kinds::normalise_code(c).map_err(Error::Usage)?;
            }
            let mut source = enrol::code_source(code);
            let client = Client::connect(address).await?;
            let show = enrol::Show {
                qr: (!no_qr).then(|| output::qr_palette(output::stdout_colour())),
                uri: true,
            };
            enrol::accept_invitation(&client, json, show, source.as_mut(), &mut std::io::stdout())
                .await?;
        }
        Command::CheckValue { id, user } => {
            let client = Client::connect(address).await?;
            let value = client.check_value(user.as_deref(), &id).await?;
            output::emit(&match json {
                true => output::json_line(&serde_json::json!({ "id": id, "check_value": value })),
                false => format!("{value}\n"),
            })?;
        }
        Command::SetEmail { user, address: to } => {
            let client = Client::connect(address).await?;
            policy::set_email(&client, &user, &to, json).await?
        }
        Command::Import(args) => {
            let report = match (&args.file, args.format) {
                (None, kinds::ImportFormat::GoogleAuthenticator) => {
                    let client = Client::connect(address).await?;
                    import::every_home(&client, args.dry_run).await?
                }
                (None, _) => return Err(Error::Usage(
                    "FILE is needed: only google-authenticator --all reads the home directories"
                        .into(),
                )),
                (Some(file), _) => {
                    let text = import::read_file(file)?;
                    let client = Client::connect(address).await?;
                    import::run(&client, &args, &text)
                        .await
                        .map_err(|e| import::naming(file, e))?
                }
            };
            output::emit(&import::report_text(&report, json))?;
        }
        Command::Audit { user, since, limit } => {
            let client = Client::connect(address).await?;
            policy::audit(&client, user.as_deref(), since, limit, json).await?
        }
        Command::Policy(command) => {
            policy::policy(&Client::connect(address).await?, command, json).await?
        }
        Command::Store(cli::StoreCommand::Migrate { file, dry_run, yes }) => {
            let text = match &file {
                Some(path) => import::read_file(path)?,
                None => String::new(),
            };
            if !dry_run && !yes {
                confirm_or_refuse(
                    "Every factor of this host is copied to the database; from then on this \
                     mfad refuses logins until it is restarted with the new [store].",
                    "Migrate the store now?",
                )?;
            }
            let client = Client::connect(address).await?;
            let migration = client.migrate_store(&text, dry_run).await?;
            output::emit(&store::migration_text(&migration, dry_run, json))?;
        }
    }
    Ok(())
}

/// Whether removing `id` leaves no active factor.
fn is_last_active(factors: &[mfa_dbus::FactorInfo], id: &str) -> bool {
    let mut active = factors.iter().filter(|f| f.confirmed);
    active.clone().count() == 1 && active.any(|f| f.id == id)
}

/// Ask on the terminal; without one, refuse (the caller wants `--yes`).
fn confirm_or_refuse(warning: &str, question: &str) -> Result<(), Error> {
    if !prompt::stdin_is_terminal() {
        return Err(needs_yes());
    }
    prompt::say(warning)?;
    if prompt::ask_yes_no(question)? {
        Ok(())
    } else {
        Err(Error::Declined("nothing changed".to_string()))
    }
}

fn needs_yes() -> Error {
    Error::Usage("not a terminal, so nobody can confirm: add --yes to go ahead".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use mfa_dbus::FactorInfo;

    fn factor(id: &str, confirmed: bool) -> FactorInfo {
        FactorInfo {
            id: id.into(),
            kind: "totp".into(),
            label: String::new(),
            confirmed,
            created: 1,
            last_used: 0,
            approved: false,
            preferred: false,
        }
    }

    #[test]
    fn last_active_factor_is_detected() {
        let one = [factor("a", true), factor("p", false)];
        assert!(is_last_active(&one, "a"));
        assert!(
            !is_last_active(&one, "p"),
            "a pending one is not the last active"
        );
        let two = [factor("a", true), factor("b", true)];
        assert!(!is_last_active(&two, "a"));
        assert!(!is_last_active(&[], "a"));
    }
}

#[cfg(test)]
mod layers {
    use std::collections::BTreeSet;

    /// Each module with the mfactl modules it may use, lowest first: a
    /// module may only use modules listed before it, so there is no cycle.
    const LAYERS: &[(&str, &str, &[&str])] = &[
        ("kinds", include_str!("kinds.rs"), &[]),
        ("dates", include_str!("dates.rs"), &[]),
        ("table", include_str!("table.rs"), &[]),
        ("prompt", include_str!("prompt.rs"), &[]),
        ("error", include_str!("error.rs"), &["dates", "table"]),
        ("client", include_str!("client.rs"), &["error", "prompt"]),
        (
            "output",
            include_str!("output.rs"),
            &["dates", "kinds", "table"],
        ),
        ("cli", include_str!("cli.rs"), &["dates", "error", "kinds"]),
        ("store", include_str!("store.rs"), &["output", "table"]),
        (
            "import",
            include_str!("import.rs"),
            &["cli", "client", "error", "output", "table"],
        ),
        (
            "policy",
            include_str!("policy.rs"),
            &["cli", "client", "dates", "error", "output", "table"],
        ),
        (
            "enrol",
            include_str!("enrol.rs"),
            &[
                "cli", "client", "dates", "error", "kinds", "output", "prompt", "table",
            ],
        ),
    ];

    /// The mfactl modules `source` names as `crate::…`, outside comments
    /// and its tests.
    fn uses(source: &str) -> BTreeSet<String> {
        let code = source.split("#[cfg(test)]").next().unwrap_or_default();
        let mut used = BTreeSet::new();
        for line in code.lines().filter(|l| !l.trim_start().starts_with("//")) {
            for (i, _) in line.match_indices("crate::") {
                let rest = &line[i + "crate::".len()..];
                let names: Vec<&str> = match rest.strip_prefix('{') {
                    Some(group) => group
                        .split('}')
                        .next()
                        .unwrap_or_default()
                        .split(',')
                        .collect(),
                    None => vec![rest],
                };
                for name in names {
                    let name: String = name
                        .trim()
                        .chars()
                        .take_while(|c| c.is_alphanumeric() || *c == '_')
                        .collect();
                    if !name.is_empty() {
                        used.insert(name);
                    }
                }
            }
        }
        used
    }

    #[test]
    fn every_module_uses_only_the_layers_below_it() {
        let mut below: BTreeSet<&str> = BTreeSet::new();
        for (name, source, allowed) in LAYERS {
            for dep in *allowed {
                assert!(below.contains(dep), "{name} may use {dep}, not below it");
            }
            let allowed: BTreeSet<String> = allowed.iter().map(|d| d.to_string()).collect();
            let used = uses(source);
            let extra: Vec<&String> = used.difference(&allowed).collect();
            assert!(
                extra.is_empty(),
                "{name} uses {extra:?}, above or beside it"
            );
            below.insert(name);
        }
    }

    #[test]
    fn uses_reads_groups_and_paths() {
        let found = uses(
            "use crate::cli::{X, Y};\nuse crate::{dates, output};\n// crate::client\n\
             let a = crate::table::printable(x);\n#[cfg(test)]\nuse crate::store;",
        );
        let want: BTreeSet<String> = ["cli", "dates", "output", "table"].map(String::from).into();
        assert_eq!(found, want);
    }
}
