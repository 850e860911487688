//! mfa-probe: one raw call to mfad through the mfa_dbus proxies, printed as a
//! single JSON line: `{"ok": <value>}` (exit 0) or `{"err": {"name",
//! "message"}}` (exit 1).
//!
//! The tests run it as other uids (`setpriv`) to check who may call what; it
//! adds no logic of its own, so what it prints is what mfad (or the bus
//! policy) answered.

use clap::{Parser, Subcommand};
use mfa_dbus::{AdminProxy, EnrolOptions, FactorsProxy, LoginProxy, LoginRequest, MfaError};
use serde_json::{json, Value};
use std::process::ExitCode;
use std::time::Duration;
use zbus::DBusError;

#[derive(Parser)]
#[command(about = "Make one call to mfad and print the result as JSON")]
struct Cli {
    /// D-Bus address, e.g. unix:path=/tmp/x/bus
    #[arg(long)]
    bus: String,
    #[command(subcommand)]
    call: Call,
}

#[derive(Subcommand)]
enum Call {
    /// Factors1.BeginEnrolment
    Begin {
        kind: String,
        label: String,
        #[arg(long, default_value = "")]
        algorithm: String,
        #[arg(long, default_value_t = 0)]
        digits: u32,
        #[arg(long, default_value_t = 0)]
        period: u32,
        #[arg(long, default_value = "")]
        secret: String,
    },
    /// Factors1.ConfirmEnrolment
    Confirm { id: String, code: String },
    /// Factors1.ListFactors
    List,
    /// Factors1.RemoveFactor
    Remove { id: String },
    /// Admin1.ListUsers
    AdminUsers,
    /// Admin1.ListUserFactors
    AdminFactors { user: String },
    /// Admin1.ResetUser
    AdminReset { user: String },
    /// Login1.Start (then Cancel if it returned a handle)
    LoginStart {
        user: String,
        #[arg(long, default_value = "mfa-probe")]
        service: String,
    },
    /// Login1.Answer on a handle this connection does not own
    LoginAnswer { handle: String, answer: String },
    /// RequestName(org.pam_mfa.Mfad1): may this uid own mfad's name?
    OwnName,
    /// `count` calls of one kind on this connection, as fast as mfad
    /// answers: prints how many succeeded and how many failed with each
    /// error name, and the first message of each.
    Flood {
        /// begin | recovery-codes | resync | revoke-devices | level | prefer
        /// | unlock (Login1.Start for `--user`, then Cancel) | step-up
        /// (Factors1.BeginStepUp, then Login1.Cancel)
        what: String,
        count: u32,
        /// The account an unlock is for.
        #[arg(long, default_value = "")]
        user: String,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("mfa-probe: cannot start a runtime: {e}");
            return ExitCode::from(2);
        }
    };
    let result = runtime.block_on(async {
        let conn = mfa_dbus::connect(&cli.bus, Duration::from_secs(10))
            .await
            .map_err(|e| ("org.pam_mfa.Test.Unreachable".to_string(), e.to_string()))?;
        call(&conn, cli.call).await.map_err(|e| error_parts(&e))
    });
    let (line, code) = match result {
        Ok(value) => (json!({ "ok": value }), ExitCode::SUCCESS),
        Err((name, message)) => (
            json!({ "err": { "name": name, "message": message } }),
            ExitCode::FAILURE,
        ),
    };
    println!("{line}");
    code
}

async fn call(conn: &zbus::Connection, call: Call) -> Result<Value, MfaError> {
    let factors = || async { FactorsProxy::new(conn).await.map_err(MfaError::ZBus) };
    let admin = || async { AdminProxy::new(conn).await.map_err(MfaError::ZBus) };
    let value = match call {
        Call::Begin {
            kind,
            label,
            algorithm,
            digits,
            period,
            secret,
        } => {
            let options = EnrolOptions {
                algorithm,
                digits,
                period,
                secret_base32: secret,
                ..EnrolOptions::default()
            };
            to_json(
                factors()
                    .await?
                    .begin_enrolment(&kind, &label, &options)
                    .await?,
            )
        }
        Call::Confirm { id, code } => {
            to_json(factors().await?.confirm_enrolment(&id, &code).await?)
        }
        Call::List => to_json(factors().await?.list_factors().await?),
        Call::Remove { id } => to_json(factors().await?.remove_factor(&id).await?),
        Call::AdminUsers => to_json(admin().await?.list_users().await?),
        Call::AdminFactors { user } => to_json(admin().await?.list_user_factors(&user).await?),
        Call::AdminReset { user } => to_json(admin().await?.reset_user(&user).await?),
        Call::LoginStart { user, service } => {
            let login = LoginProxy::new(conn).await.map_err(MfaError::ZBus)?;
            let request = LoginRequest {
                user,
                service,
                ..Default::default()
            };
            let (handle, step) = login.start(&request).await?;
            let _ = login.cancel(&handle).await;
            json!({ "handle": handle, "kind": step.kind as u32, "reason": step.reason as u32, "text": step.text })
        }
        Call::LoginAnswer { handle, answer } => {
            let login = LoginProxy::new(conn).await.map_err(MfaError::ZBus)?;
            let step = login.answer(&handle, &answer, 0).await?;
            json!({ "kind": step.kind as u32, "reason": step.reason as u32, "text": step.text })
        }
        Call::Flood { what, count, user } => {
            let login = LoginProxy::new(conn).await.map_err(MfaError::ZBus)?;
            flood(&factors().await?, &login, &what, &user, count).await?
        }
        Call::OwnName => {
            conn.request_name(mfa_dbus::BUS_NAME)
                .await
                .map_err(MfaError::ZBus)?;
            json!("owned")
        }
    };
    Ok(value)
}

async fn flood(
    factors: &FactorsProxy<'_>,
    login: &LoginProxy<'_>,
    what: &str,
    user: &str,
    count: u32,
) -> Result<Value, MfaError> {
    let unlock = LoginRequest {
        user: user.to_string(),
        service: "mfa-probe".into(),
        ..Default::default()
    };
    let mut ok = 0u32;
    let mut errors: serde_json::Map<String, Value> = serde_json::Map::new();
    for i in 0..count {
        let result = match what {
            "begin" => factors
                .begin_enrolment("totp", &format!("flood-{i}"), &EnrolOptions::default())
                .await
                .map(drop),
            "recovery-codes" => factors.generate_recovery_codes().await.map(drop),
            "resync" => factors
                .resync_factor("0000000000000000", "123456", "654321")
                .await
                .map(drop),
            "revoke-devices" => factors.revoke_devices("").await.map(drop),
            "level" => factors.set_level("always").await.map(drop),
            "prefer" => factors.set_preferred("0000000000000000").await.map(drop),
            "unlock" => match login.start(&unlock).await {
                Ok((handle, _)) => cancel(login, &handle).await,
                Err(e) => Err(e),
            },
            "step-up" => match factors.begin_step_up().await {
                Ok((handle, _)) => cancel(login, &handle).await,
                Err(e) => Err(e),
            },
            other => {
                return Err(MfaError::InvalidArgument(format!(
                    "mfa-probe: no flood of {other:?}"
                )))
            }
        };
        match result {
            Ok(()) => ok += 1,
            Err(e) => {
                let (name, message) = error_parts(&e);
                let entry = errors
                    .entry(name)
                    .or_insert_with(|| json!({ "count": 0, "message": message }));
                entry["count"] = json!(entry["count"].as_u64().unwrap_or(0) + 1);
            }
        }
    }
    Ok(json!({ "ok": ok, "errors": errors }))
}

/// Cancel a login a flood started (none when mfad decided at once).
async fn cancel(login: &LoginProxy<'_>, handle: &str) -> Result<(), MfaError> {
    match handle.is_empty() {
        true => Ok(()),
        false => login.cancel(handle).await,
    }
}

fn to_json<T: serde::Serialize>(value: T) -> Value {
    serde_json::to_value(value).unwrap_or_else(|e| json!({ "unserialisable": e.to_string() }))
}

/// The D-Bus error name and message, whether mfad or the bus sent it.
fn error_parts(error: &MfaError) -> (String, String) {
    match error {
        MfaError::ZBus(zbus::Error::MethodError(name, message, _)) => {
            (name.to_string(), message.clone().unwrap_or_default())
        }
        MfaError::ZBus(zbus::Error::FDO(fdo)) => (fdo.name().to_string(), fdo.to_string()),
        MfaError::ZBus(other) => ("org.pam_mfa.Test.Transport".to_string(), other.to_string()),
        other => (other.name().to_string(), other.message()),
    }
}
