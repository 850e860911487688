//! mfad: the pam_mfa daemon. See mfad(8).

use clap::Parser;
use mfad::audit::{Audit, Severity};
use mfad::clock::{Clock, NtpClock, SystemClock};
use mfad::config::TimeSource;
use mfad::config::{Config, LogTarget, DEFAULT_PATH};
use mfad::service::Service;
use mfad::store::Store;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

#[derive(Parser)]
#[command(
    version,
    about = "pam_mfa daemon: holds second-factor secrets and decides logins over D-Bus"
)]
struct Args {
    /// Configuration file.
    #[arg(long, default_value = DEFAULT_PATH)]
    config: PathBuf,
    /// D-Bus address to serve on (default: $DBUS_SYSTEM_BUS_ADDRESS, else the system bus).
    #[arg(long)]
    bus_address: Option<String>,
    /// Validate the configuration, print the result and exit (0 = valid).
    #[arg(long)]
    check_config: bool,
    /// Log to stderr instead of syslog, whatever the configuration says.
    #[arg(long)]
    log_stderr: bool,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let mut config = match Config::load(&args.config) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("mfad: invalid configuration: {e}");
            return ExitCode::from(1);
        }
    };
    if args.check_config {
        // The file is valid; the groups its rules name must exist too.
        let mut check = mfad::policy::check_groups(&config.policy, &mfad::policy::Nss);
        if let Err(e) = mfad::mechanism::email::check_files(&config.email) {
            check.errors.push(e);
        }
        if let mfad::config::StoreConfig::Postgres(pg) = &config.store {
            let (warnings, errors) = mfad::store::postgres::check_config(pg);
            check.warnings.extend(warnings);
            check.errors.extend(errors);
        }
        for warning in &check.warnings {
            eprintln!("mfad: {}: warning: {warning}", args.config.display());
        }
        for peer in network_peers(&config) {
            eprintln!(
                "mfad: {}: note: mfad must reach {peer}; the shipped mfad.service has no network: \
                 install the drop-in mfad-network.conf with that address (see mfad(8))",
                args.config.display()
            );
        }
        if !check.errors.is_empty() {
            for error in &check.errors {
                eprintln!(
                    "mfad: invalid configuration: {}: {error}",
                    args.config.display()
                );
            }
            return ExitCode::from(1);
        }
        println!("{}: ok", args.config.display());
        return ExitCode::SUCCESS;
    }
    if args.log_stderr {
        config.daemon.log = LogTarget::Stderr;
    }
    // Everything mfad creates is private to it.
    // SAFETY: umask only changes this process's file creation mask.
    unsafe { libc::umask(0o077) };
    let audit = Audit::new(config.daemon.log);
    // A fleet database that is not up yet is waited for while mfad serves
    // (and refuses logins, store-unavailable): booting before it, or with
    // it, is no failure.
    let store_log = {
        let log = Audit::new(config.daemon.log);
        Box::new(move |severity: Severity, line: &str| log.message(severity, line))
    };
    let opened = mfad::store::open_or_wait(&config.store, &config.daemon.state_dir, store_log);
    let store: Arc<dyn Store> = match opened {
        Ok(s) => s,
        Err(e) => {
            audit.message(Severity::Error, &format!("cannot open the store: {e}"));
            eprintln!("mfad: cannot open the store: {e}");
            return ExitCode::from(1);
        }
    };
    // Before the runtime's threads exist: it reads and clears LISTEN_FDS.
    let login_socket = match &config.daemon.login_socket {
        None => None,
        Some(path) => match mfad::bus::LoginSocket::open(path) {
            Ok(socket) => Some(socket),
            Err(e) => {
                audit.message(
                    Severity::Error,
                    &format!("cannot open the login socket: {e}"),
                );
                eprintln!("mfad: cannot open the login socket: {e}");
                return ExitCode::from(1);
            }
        },
    };
    let address = args
        .bus_address
        .or_else(|| std::env::var("DBUS_SYSTEM_BUS_ADDRESS").ok())
        .unwrap_or_else(|| mfa_dbus::SYSTEM_BUS_ADDRESS.to_string());
    let clock: Arc<dyn Clock> = match config.time.source {
        TimeSource::System => Arc::new(SystemClock),
        TimeSource::Ntp => {
            let log = Audit::new(config.daemon.log);
            Arc::new(NtpClock::start(config.time.clone(), move |bad, line| {
                let severity = if bad {
                    Severity::Warning
                } else {
                    Severity::Notice
                };
                log.message(severity, line);
            }))
        }
    };
    let service =
        Arc::new(Service::new(config, store, clock, audit).with_config_path(args.config.clone()));
    service.warn_about_policy();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("mfad: cannot start: {e}");
            return ExitCode::from(1);
        }
    };
    runtime.block_on(run(address, service, login_socket))
}

/// The servers `config` has mfad talk to over the network (not a local
/// socket): the unit must let it reach them.
fn network_peers(config: &Config) -> Vec<String> {
    let mut peers = Vec::new();
    if config.email.enabled {
        peers.push(format!(
            "the SMTP relay {}:{}",
            config.email.relay, config.email.port
        ));
    }
    if config.time.source == TimeSource::Ntp {
        peers.push(format!(
            "the NTP servers {} (UDP)",
            config.time.servers.join(", ")
        ));
    }
    if let mfad::config::StoreConfig::Postgres(pg) = &config.store {
        if !pg.host.starts_with('/') {
            peers.push(format!("the PostgreSQL server {}:{}", pg.host, pg.port));
        }
    }
    peers
}

async fn run(
    address: String,
    service: Arc<Service>,
    login_socket: Option<mfad::bus::LoginSocket>,
) -> ExitCode {
    // Before anyone can reach mfad: a stop asked for while it starts is a
    // clean stop too, not the signal's default.
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut term), Ok(mut int), Ok(mut hup)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
        signal(SignalKind::hangup()),
    ) else {
        eprintln!("mfad: cannot install signal handlers");
        return ExitCode::from(1);
    };
    let socket_note = match &login_socket {
        Some(s) if s.activated => format!(
            ", logins on the socket systemd passed ({})",
            s.path.display()
        ),
        Some(s) => format!(", logins on {}", s.path.display()),
        None => ", logins on the bus only".to_string(),
    };
    let mut served = match mfad::bus::serve(&address, Arc::clone(&service), login_socket).await {
        Ok(c) => c,
        Err(e) => {
            let text = format!("cannot serve {} on {address}: {e}", mfa_dbus::BUS_NAME);
            service.audit().message(Severity::Error, &text);
            eprintln!("mfad: {text}");
            return ExitCode::from(1);
        }
    };
    service.audit().message(
        Severity::Info,
        &format!("serving {} on {address}{socket_note}", mfa_dbus::BUS_NAME),
    );
    let sweeper = {
        let service = Arc::clone(&service);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(30));
            loop {
                tick.tick().await;
                service.sweep();
            }
        })
    };
    // SIGHUP (`systemctl reload mfad`): the policy again from the file.
    let reloader = {
        let service = Arc::clone(&service);
        tokio::spawn(async move {
            while hup.recv().await.is_some() {
                let service = Arc::clone(&service);
                let done = tokio::task::spawn_blocking(move || match service.reload_policy(0) {
                    Ok(notes) => {
                        for note in notes {
                            service.audit().message(Severity::Notice, &note);
                        }
                    }
                    Err(e) => service.audit().message(
                        Severity::Error,
                        &format!("reload refused, the policy in force is unchanged: {e}"),
                    ),
                });
                let _ = done.await;
            }
        })
    };
    let status = tokio::select! {
        _ = term.recv() => ExitCode::SUCCESS,
        _ = int.recv() => ExitCode::SUCCESS,
        why = served.gone() => {
            // Nobody can reach mfad any more: exit so the service manager
            // restarts it, rather than run deaf.
            let text = format!("{why}; exiting");
            service.audit().message(Severity::Error, &text);
            eprintln!("mfad: {text}");
            ExitCode::from(1)
        }
    };
    sweeper.abort();
    reloader.abort();
    service.audit().message(Severity::Info, "stopping");
    drop(served);
    status
}
