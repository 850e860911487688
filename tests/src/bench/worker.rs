//! The login loop of one worker process: a run of logins, each by a
//! different user (TOTP) or by one user with a moving counter (HOTP), a
//! fresh valid code computed right before each login. Prints one JSON
//! [`WorkerReport`] line on stdout.
//!
//! With `--barrier` the worker does its warm-up, prints `READY` and waits
//! for a line on stdin, so that many workers start measuring together.
//!
//! With `--replay-confdir` (two hosts of a fleet) every code that let a user
//! in is at once tried again, same user, through the other host's PAM
//! service: it must be refused there. One that is accepted is a double
//! accept. Each user logs in once and each code is replayed once, so the
//! count is exact however many workers run. Replays skip libpam's failure
//! delay (see [`super::pam`]): a refusal is timed, not the 2 s pam_mfa asks
//! libpam to wait after it.

use super::codes::{hotp_code, totp_now, user_name, Secrets};
use super::direct::Direct;
use super::fixtures::SERVICE;
use super::pam::{rc_name, Sample, Service};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::io::{BufRead, Write};

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// User `first + k*stride` logs in for the k-th login, with the TOTP
    /// code of the current time step.
    Totp,
    /// User `first` logs in every time, with HOTP counter `counter + k`.
    Hotp,
}

#[derive(clap::Args, Clone, Debug)]
pub struct WorkerArgs {
    /// Directory holding the PAM service file
    #[arg(long)]
    pub confdir: String,
    /// PAM service name
    #[arg(long, default_value = SERVICE)]
    pub service: String,
    /// Seed the users' secrets derive from
    #[arg(long)]
    pub seed: u64,
    #[arg(long, value_enum)]
    pub mode: Mode,
    /// First user index
    #[arg(long)]
    pub first: u64,
    /// Distance between the indices of consecutive users (TOTP)
    #[arg(long, default_value_t = 1)]
    pub stride: u64,
    /// First HOTP counter (HOTP)
    #[arg(long, default_value_t = 0)]
    pub counter: u64,
    /// Logins before measuring
    #[arg(long, default_value_t = 0)]
    pub warmup: u64,
    /// Measured logins
    #[arg(long)]
    pub count: u64,
    /// After the warm-up, print READY and wait for a line on stdin
    #[arg(long)]
    pub barrier: bool,
    /// Instead of PAM, make the module's D-Bus calls directly on this bus
    /// and time each stage (pam_mfa only; see [`super::direct`])
    #[arg(long)]
    pub direct_bus: Option<String>,
    /// After each successful login, replay its code (same user) through the
    /// PAM service in this directory: another host of the same fleet
    #[arg(long, conflicts_with = "direct_bus")]
    pub replay_confdir: Option<String>,
}

/// What a worker reports.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct WorkerReport {
    /// Successful measured logins.
    pub ok: u64,
    /// Failed logins, warm-up included, by return code.
    pub failures: BTreeMap<String, u64>,
    /// pam_authenticate durations of the successful measured logins.
    pub auth_ns: Vec<u64>,
    /// pam_start..pam_end durations of the successful measured logins.
    pub total_ns: Vec<u64>,
    /// CLOCK_MONOTONIC (system-wide) at the start and end of measuring.
    pub start_ns: u64,
    pub end_ns: u64,
    /// Logins attempted, warm-up included.
    pub attempted: u64,
    /// CPU time of the whole process (all its threads), user + system.
    pub cpu_ns: u64,
    /// Direct mode: duration of each stage of the successful measured
    /// logins, by stage name.
    #[serde(default)]
    pub stages: BTreeMap<String, Vec<u64>>,
    /// Replay mode: codes replayed on the other host (one per successful
    /// login, warm-up included).
    #[serde(default)]
    pub replays: u64,
    /// Replays the other host accepted: the same code let the user in twice.
    #[serde(default)]
    pub double_accepts: u64,
    /// Replays refused, by return code.
    #[serde(default)]
    pub replays_refused: BTreeMap<String, u64>,
    /// pam_authenticate durations of the replays.
    #[serde(default)]
    pub replay_ns: Vec<u64>,
}

impl WorkerReport {
    pub fn failed(&self) -> u64 {
        self.failures.values().sum()
    }
}

/// Run the worker; `Err` for a setup problem (not for failed logins).
pub fn run(args: &WorkerArgs) -> Result<WorkerReport, String> {
    let service = Service::new(&args.service, &args.confdir)?;
    let direct = args.direct_bus.as_deref().map(Direct::new).transpose()?;
    let replay = args
        .replay_confdir
        .as_deref()
        .map(|confdir| Service::new(&args.service, confdir).map(Service::without_fail_delay))
        .transpose()?;
    let secrets = Secrets::from_seed(args.seed);
    let mut report = WorkerReport::default();
    let mut shown = 0;
    let mut login = |k: u64, report: &mut WorkerReport, measured: bool| -> Result<(), String> {
        report.attempted += 1;
        let (user, code) = match args.mode {
            Mode::Totp => {
                let index = args.first + k * args.stride;
                (user_name(index), totp_now(&secrets.secret(index)))
            }
            Mode::Hotp => (
                user_name(args.first),
                hotp_code(&secrets.secret(args.first), args.counter + k),
            ),
        };
        if let Some(direct) = &direct {
            return match direct.login(&user, &code) {
                Ok(stages) => {
                    if measured {
                        report.ok += 1;
                        for (name, ns) in stages {
                            report.stages.entry(name.to_string()).or_default().push(ns);
                        }
                    }
                    Ok(())
                }
                Err(why) => {
                    if shown < 5 {
                        shown += 1;
                        eprintln!("pam-bench worker: direct login {k} of {user} failed: {why}");
                    }
                    *report.failures.entry(why).or_default() += 1;
                    Ok(())
                }
            };
        }
        let sample = service.login(&user, &code)?;
        if !sample.ok() {
            let name = failure_name(&sample);
            if shown < 5 {
                shown += 1;
                eprintln!("pam-bench worker: login {k} of {user} failed: {name}");
            }
            *report.failures.entry(name).or_default() += 1;
        } else if measured {
            report.ok += 1;
            report.auth_ns.push(sample.auth_ns);
            report.total_ns.push(sample.total_ns);
        }
        if let (Some(replay), true) = (&replay, sample.accepted()) {
            let again = replay.login(&user, &code)?;
            report.replays += 1;
            report.replay_ns.push(again.auth_ns);
            if again.accepted() {
                report.double_accepts += 1;
                if shown < 5 {
                    shown += 1;
                    eprintln!(
                        "pam-bench worker: DOUBLE ACCEPT: login {k}'s code let {user} in \
                         again on the other host"
                    );
                }
            } else {
                *report
                    .replays_refused
                    .entry(failure_name(&again))
                    .or_default() += 1;
            }
        }
        Ok(())
    };
    for k in 0..args.warmup {
        login(k, &mut report, false)?;
    }
    if args.barrier {
        let mut out = std::io::stdout();
        writeln!(out, "READY")
            .and_then(|_| out.flush())
            .map_err(|e| e.to_string())?;
        let mut line = String::new();
        std::io::stdin()
            .lock()
            .read_line(&mut line)
            .map_err(|e| e.to_string())?;
    }
    report.start_ns = monotonic_ns();
    for k in args.warmup..args.warmup + args.count {
        login(k, &mut report, true)?;
    }
    report.end_ns = monotonic_ns();
    report.cpu_ns = process_cpu_ns();
    Ok(report)
}

/// How a login that did not go through is counted.
fn failure_name(sample: &Sample) -> String {
    if sample.rc == 0 {
        "PAM_SUCCESS with an error message".to_string()
    } else {
        rc_name(sample.rc)
    }
}

/// User + system CPU time of this process, all threads, living or not.
fn process_cpu_ns() -> u64 {
    // SAFETY: getrusage fills the zeroed struct we own.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: as above.
    if unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) } != 0 {
        return 0;
    }
    let ns = |t: libc::timeval| (t.tv_sec as u64) * 1_000_000_000 + (t.tv_usec as u64) * 1_000;
    ns(usage.ru_utime) + ns(usage.ru_stime)
}

/// CLOCK_MONOTONIC in nanoseconds: comparable between processes.
pub fn monotonic_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes one timespec we own.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    (ts.tv_sec as u64)
        .saturating_mul(1_000_000_000)
        .saturating_add(ts.tv_nsec as u64)
}
