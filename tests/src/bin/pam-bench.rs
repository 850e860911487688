//! pam-bench: login latency and throughput of pam_mfa next to
//! google-authenticator-libpam and pam_oath, through real libpam, on this
//! machine, in one run. Prints a Markdown report (and writes it to `--out`).
//! `scripts/bench.sh` installs what it needs, builds and runs it.
//!
//! `pam-bench run` is the benchmark; it starts copies of itself as
//! `pam-bench worker` for the login loops (see `src/bench/`). Needs root:
//! the modules' secret files are root's, and mfad's bus policy lets only root
//! drive logins.
//!
//! The fleet part (issue 10) starts a PostgreSQL of its own (see
//! [`mfa_tests::postgres`]) and puts pam_mfa's store there: sequential
//! logins against SQLite, then two hosts on the one database under
//! concurrent load, every code replayed on the other host.
//!
//! mfad and libpam_mfa.so are taken from the directory pam-bench is in, or
//! from `$MFA_TEST_BIN_DIR` (to measure another build of them against the
//! same harness).

#[path = "../bench/mod.rs"]
mod bench;

use bench::codes::Secrets;
use bench::daemon::Options;
use bench::fixtures::{Binaries, Enrolled, Fixture, System};
use bench::sink::{Sink, DEV_LOG};
use bench::stats::{cells, ms, thousands, Percentiles, Table};
use bench::worker::{self, Mode, WorkerArgs, WorkerReport};
use clap::{Parser, Subcommand};
use mfa_tests::postgres::Postgres;
use mfa_tests::process::Running;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::time::Duration;

/// Longest a worker may run before the benchmark gives up on it.
const WORKER_LIMIT: Duration = Duration::from_secs(1800);

#[derive(Parser)]
#[command(about = "PAM login benchmark: pam_mfa vs google-authenticator vs pam_oath")]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run the benchmark and print the report
    Run(RunArgs),
    /// (internal) One worker process's login loop; prints JSON
    Worker(WorkerArgs),
}

#[derive(clap::Args, Clone)]
struct RunArgs {
    /// Measured logins per system in the sequential run
    #[arg(long, default_value_t = 1000)]
    logins: u64,
    /// Rounds the sequential run is split into, systems taking turns, so
    /// that other load on the machine hits every system alike
    #[arg(long, default_value_t = 4)]
    rounds: u64,
    /// Warm-up logins at the start of each round (each a new process)
    #[arg(long, default_value_t = 50)]
    warmup: u64,
    /// Concurrent client processes
    #[arg(long, default_value_t = 16)]
    workers: u64,
    /// Measured logins per concurrent process
    #[arg(long, default_value_t = 200)]
    per_worker: u64,
    /// Warm-up logins per concurrent process, before they start together
    #[arg(long, default_value_t = 5)]
    worker_warmup: u64,
    /// Enrolled users in the large pam_mfa store
    #[arg(long, default_value_t = 100_000)]
    big: u64,
    /// Systems to run (comma-separated: pam_mfa, google-authenticator,
    /// pam_oath); default all
    #[arg(long, value_delimiter = ',')]
    systems: Vec<String>,
    /// Parts to run (comma-separated: latency, breakdown, concurrency,
    /// scale, fleet)
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "latency,breakdown,concurrency,scale,fleet"
    )]
    parts: Vec<String>,
    /// Where the systems keep their state (a disk, not tmpfs, to be fair to
    /// fsync)
    #[arg(long, default_value = "/var/tmp")]
    work_dir: PathBuf,
    /// Also write the report here (default: <workspace>/target/bench/results.md)
    #[arg(long)]
    out: Option<PathBuf>,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Cmd::Worker(args) => match worker::run(&args) {
            Ok(report) => match serde_json::to_string(&report) {
                Ok(json) => {
                    println!("{json}");
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("pam-bench worker: {e}");
                    ExitCode::from(2)
                }
            },
            Err(e) => {
                eprintln!("pam-bench worker: {e}");
                ExitCode::from(2)
            }
        },
        Cmd::Run(args) => match run(&args) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("pam-bench: {e}");
                ExitCode::from(1)
            }
        },
    }
}

/// Everything a part of the benchmark needs.
struct Bench {
    args: RunArgs,
    binaries: Binaries,
    secrets: Secrets,
    root: PathBuf,
    systems: Vec<System>,
    exe: PathBuf,
}

fn run(args: &RunArgs) -> Result<(), String> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Err("run as root (the modules' secret files and mfad's Login1 are root's)".into());
    }
    if args.rounds == 0 || args.logins < args.rounds || args.workers == 0 {
        return Err("--rounds, --logins and --workers must be positive, logins >= rounds".into());
    }
    const PARTS: [&str; 5] = ["latency", "breakdown", "concurrency", "scale", "fleet"];
    if let Some(bad) = args.parts.iter().find(|p| !PARTS.contains(&p.as_str())) {
        return Err(format!(
            "unknown part {bad:?}; parts are {}",
            PARTS.join(", ")
        ));
    }
    let slugs: Vec<&str> = System::ALL.iter().map(|s| s.slug()).collect();
    if let Some(bad) = args.systems.iter().find(|s| !slugs.contains(&s.as_str())) {
        return Err(format!(
            "unknown system {bad:?}; systems are {}",
            slugs.join(", ")
        ));
    }
    let sink = Sink::ensure(Path::new(DEV_LOG))?;
    let binaries = find_binaries();
    let mut systems = Vec::new();
    let mut skipped = Vec::new();
    for system in System::ALL {
        if !args.systems.is_empty() && !args.systems.iter().any(|s| s == system.slug()) {
            continue;
        }
        match binaries.check(system) {
            Ok(()) => systems.push(system),
            Err(why) => skipped.push(format!("{}: skipped, {why}", system.label())),
        }
    }
    if systems.is_empty() {
        return Err(format!("nothing to run: {}", skipped.join("; ")));
    }
    let root = tempfile::Builder::new()
        .prefix("pam-bench-")
        .tempdir_in(&args.work_dir)
        .map_err(|e| {
            format!(
                "cannot create a directory in {}: {e}",
                args.work_dir.display()
            )
        })?;
    let bench = Bench {
        args: args.clone(),
        binaries,
        secrets: Secrets::random()?,
        root: root.path().to_path_buf(),
        systems,
        exe: std::env::current_exe().map_err(|e| e.to_string())?,
    };
    let load_before = load_average();
    let mut report = String::new();
    let mut findings = Findings::default();
    let parts = |name: &str| args.parts.iter().any(|p| p == name);
    if parts("latency") {
        report.push_str(&latency(&bench, &mut findings)?);
    }
    if parts("breakdown") {
        if bench.systems.contains(&System::PamMfa) {
            report.push_str(&breakdown(&bench)?);
        } else {
            skipped.push("breakdown: skipped, pam_mfa is not part of this run".into());
        }
    }
    if parts("concurrency") {
        report.push_str(&concurrency(&bench, &mut findings)?);
    }
    if parts("scale") {
        if bench.systems.contains(&System::PamMfa) {
            report.push_str(&scale(&bench, &mut findings)?);
        } else {
            skipped.push("store size: skipped, pam_mfa is not part of this run".into());
        }
    }
    if parts("fleet") {
        if !bench.systems.contains(&System::PamMfa) {
            skipped.push("fleet: skipped, pam_mfa is not part of this run".into());
        } else if !postgres_installed() {
            skipped.push(
                "fleet: skipped, PostgreSQL is not installed (apt-get install postgresql \
                 openssl; scripts/bench.sh does)"
                    .into(),
            );
        } else {
            report.push_str(&fleet(&bench, &mut findings)?);
        }
    }
    let full = format!(
        "{}{report}{}{}",
        header(&bench, &sink, &load_before),
        findings.render(),
        footer(&skipped, &sink)
    );
    print!("{full}");
    let out = args
        .out
        .clone()
        .unwrap_or_else(|| mfa_tests::workspace_root().join("target/bench/results.md"));
    if let Some(dir) = out.parent() {
        std::fs::create_dir_all(dir)
            .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    }
    std::fs::write(&out, &full).map_err(|e| format!("cannot write {}: {e}", out.display()))?;
    eprintln!("pam-bench: report written to {}", out.display());
    Ok(())
}

fn find_binaries() -> Binaries {
    let bin_dir = mfa_tests::bins::bin_dir();
    let module = |file: &str| {
        let dirs = [
            "/lib/x86_64-linux-gnu/security",
            "/usr/lib/x86_64-linux-gnu/security",
            "/lib/aarch64-linux-gnu/security",
            "/usr/lib/aarch64-linux-gnu/security",
            "/usr/lib64/security",
            "/lib/security",
            "/usr/lib/security",
        ];
        dirs.iter()
            .map(|d| Path::new(d).join(file))
            .find(|p| p.exists())
            .unwrap_or_else(|| Path::new(dirs[0]).join(file))
    };
    Binaries {
        mfad: bin_dir.join("mfad"),
        pam_mfa: bin_dir.join("libpam_mfa.so"),
        google_authenticator: module("pam_google_authenticator.so"),
        oath: module("pam_oath.so"),
    }
}

// ---- the parts ------------------------------------------------------------

/// What the goals of issues 2 and 10 are checked against.
#[derive(Default)]
struct Findings {
    mfa_auth: Option<Percentiles>,
    google_auth: Option<Percentiles>,
    /// pam_mfa at 16 processes: (failed, attempted).
    mfa_concurrent: Option<(u64, u64)>,
    oath_concurrent_failed: u64,
    /// (workload, p50 with the small store, p50 with the large one).
    flat: Vec<(String, Option<u64>, Option<u64>)>,
    /// Two hosts on one PostgreSQL, concurrent logins.
    fleet: Option<FleetFinding>,
}

/// What the goal of issue 10 is checked against.
struct FleetFinding {
    failed: u64,
    attempted: u64,
    /// Logins that let a user in (each then replayed on the other host).
    accepted: u64,
    replays: u64,
    double_accepts: u64,
}

/// Largest p50 change from the small to the large store still called flat.
const FLAT_PERCENT: f64 = 20.0;
/// Goal: pam_mfa's pam_authenticate p50 at most this many times
/// google-authenticator's.
const GOAL_RATIO: f64 = 1.5;

impl Findings {
    fn render(&self) -> String {
        let verdict = |met: bool| if met { "met" } else { "**not met**" }.to_string();
        let mut table = Table::new(&["goal", "measured", "verdict"]).text();
        if let (Some(mfa), Some(google)) = (self.mfa_auth, self.google_auth) {
            let ratio = mfa.p50 as f64 / google.p50.max(1) as f64;
            table.row(vec![
                format!(
                    "pam_authenticate p50 within {GOAL_RATIO}× of google-authenticator's \
                     (issue 2)"
                ),
                format!("{} vs {}: {ratio:.2}×", ms(mfa.p50), ms(google.p50)),
                verdict(ratio <= GOAL_RATIO),
            ]);
        }
        if let Some((failed, attempted)) = self.mfa_concurrent {
            table.row(vec![
                "no failures with concurrent client processes (issue 2)".into(),
                format!("{failed} of {} logins failed", thousands(attempted)),
                verdict(failed == 0),
            ]);
        }
        let changes: Vec<(String, f64, u64, u64)> = self
            .flat
            .iter()
            .filter_map(|(what, small, big)| {
                let (small, big) = ((*small)?, (*big)?);
                Some((
                    what.clone(),
                    (big as f64 / small.max(1) as f64 - 1.0) * 100.0,
                    small,
                    big,
                ))
            })
            .collect();
        if !changes.is_empty() {
            let measured: Vec<String> = changes
                .iter()
                .map(|(what, pct, small, big)| {
                    format!("{what} {} → {} ({pct:+.1} %)", ms(*small), ms(*big))
                })
                .collect();
            table.row(vec![
                format!(
                    "flat from 1 to many enrolled users (p50 within ±{FLAT_PERCENT} %, issue 2)"
                ),
                measured.join("; "),
                verdict(
                    changes
                        .iter()
                        .all(|(_, pct, _, _)| pct.abs() <= FLAT_PERCENT),
                ),
            ]);
        }
        if let Some(f) = &self.fleet {
            table.row(vec![
                "two hosts on one PostgreSQL, concurrent processes: no failures, no code \
                 accepted twice (issue 10)"
                    .into(),
                format!(
                    "{} of {} logins failed; {} of {} codes replayed on the other host \
                     accepted",
                    f.failed,
                    thousands(f.attempted),
                    f.double_accepts,
                    thousands(f.replays)
                ),
                verdict(f.failed == 0 && f.double_accepts == 0 && f.replays == f.accepted),
            ]);
        }
        let mut out = String::new();
        if !table.is_empty() {
            let _ = write!(out, "## Goals\n\n{}\n", table.render());
        }
        if self.oath_concurrent_failed > 0 {
            out.push_str(
                "pam_oath's failures under concurrency are its own: liboath takes the \
                 usersfile's lock by creating `<usersfile>.lock` with O_EXCL and, when that \
                 file exists because another login holds it, refuses the login \
                 (PAM_AUTH_ERR) instead of waiting.\n\n",
            );
        }
        out
    }
}

/// What one set of logins by one system measured, over all its workers.
#[derive(Default)]
struct Tally {
    ok: u64,
    failures: BTreeMap<String, u64>,
    auth_ns: Vec<u64>,
    total_ns: Vec<u64>,
    attempted: u64,
    client_cpu_ns: u64,
    stages: BTreeMap<String, Vec<u64>>,
    replays: u64,
    double_accepts: u64,
    replays_refused: BTreeMap<String, u64>,
    replay_ns: Vec<u64>,
}

impl Tally {
    fn add(&mut self, report: &WorkerReport) {
        self.ok += report.ok;
        for (name, n) in &report.failures {
            *self.failures.entry(name.clone()).or_default() += n;
        }
        self.auth_ns.extend_from_slice(&report.auth_ns);
        self.total_ns.extend_from_slice(&report.total_ns);
        self.attempted += report.attempted;
        self.client_cpu_ns += report.cpu_ns;
        for (stage, samples) in &report.stages {
            self.stages
                .entry(stage.clone())
                .or_default()
                .extend_from_slice(samples);
        }
        self.replays += report.replays;
        self.double_accepts += report.double_accepts;
        for (name, n) in &report.replays_refused {
            *self.replays_refused.entry(name.clone()).or_default() += n;
        }
        self.replay_ns.extend_from_slice(&report.replay_ns);
    }

    /// Logins that let the user in, warm-up included.
    fn accepted(&self) -> u64 {
        self.attempted - self.failed()
    }

    /// CPU per login attempted (warm-up included; process start-up too).
    fn per_login(&self, cpu_ns: u64) -> String {
        if self.attempted == 0 {
            return "–".into();
        }
        ms(cpu_ns / self.attempted)
    }

    fn failed(&self) -> u64 {
        self.failures.values().sum()
    }

    /// "0", or "3 (PAM_AUTH_ERR 3)".
    fn failures_cell(&self) -> String {
        by_code(&self.failures)
    }
}

/// A count by return code: "0", or "3 (PAM_AUTH_ERR 3)".
fn by_code(counts: &BTreeMap<String, u64>) -> String {
    if counts.is_empty() {
        return "0".into();
    }
    let detail: Vec<String> = counts
        .iter()
        .map(|(k, v)| format!("{k} {}", thousands(*v)))
        .collect();
    format!(
        "{} ({})",
        thousands(counts.values().sum()),
        detail.join(", ")
    )
}

/// One process, sequential logins, each by a different user; the systems
/// take turns round by round.
fn latency(bench: &Bench, findings: &mut Findings) -> Result<String, String> {
    let args = &bench.args;
    let per_round = args.logins.div_ceil(args.rounds);
    let enrolled = Enrolled::totp(0..args.rounds * (args.warmup + per_round));
    let fixtures = create_all(bench, &enrolled)?;
    let cases: Vec<(&str, &Fixture)> = fixtures.iter().map(|f| (f.system.label(), f)).collect();
    let server_before = server_cpu(&cases);
    let tallies = sequential(bench, "sequential", &cases, 0)?;
    let server_cpu = server_cpu_since(&cases, &server_before);
    let reference = fixtures
        .iter()
        .position(|f| f.system == System::GoogleAuthenticator)
        .and_then(|i| Percentiles::of(&tallies[i].auth_ns));
    let mut table = Table::new(&[
        "system",
        "logins",
        "failures",
        "pam_authenticate p50",
        "p99",
        "pam_start..pam_end p50",
        "p99",
        "auth p50 vs google-authenticator",
        "CPU/login: client",
        "server",
    ]);
    for ((fixture, tally), server) in fixtures.iter().zip(&tallies).zip(&server_cpu) {
        let auth = Percentiles::of(&tally.auth_ns);
        match fixture.system {
            System::PamMfa => findings.mfa_auth = auth,
            System::GoogleAuthenticator => findings.google_auth = auth,
            System::Oath => {}
        }
        table.row(latency_row(
            fixture.system.label(),
            tally,
            reference,
            *server,
        ));
    }
    Ok(format!(
        "## One client process, sequential logins\n\n\
         Each login is one PAM transaction (`pam_start_confdir` → `pam_authenticate` → \
         `pam_end`) by a different user with a fresh valid TOTP code (SHA1, 6 digits, 30 s), \
         replay protection on in every system; {} users enrolled in each. {} rounds per \
         system, taking turns, each a new process: {} warm-up logins, then {} measured. \
         Failures count every login, warm-up included. CPU/login: CPU time per login \
         attempted, of the client process (libpam and the module, process start included) and \
         of the server side (mfad and its dbus-daemon).\n\n{}\n",
        thousands(enrolled.count() as u64),
        args.rounds,
        args.warmup,
        per_round,
        table.render()
    ))
}

/// Sequential logins by the `cases` (label, fixture), one worker process
/// per round and case, the cases taking turns round by round (who goes
/// first rotating, so no case always follows another and other load on the
/// machine hits them alike). Round `r` logs in users
/// `base + r * (warm-up + per round)` onwards, the same users in every case.
fn sequential(
    bench: &Bench,
    what: &str,
    cases: &[(&str, &Fixture)],
    base: u64,
) -> Result<Vec<Tally>, String> {
    let args = &bench.args;
    let per_round = args.logins.div_ceil(args.rounds);
    let users_per_round = args.warmup + per_round;
    let mut tallies: Vec<Tally> = cases.iter().map(|_| Tally::default()).collect();
    for round in 0..args.rounds {
        for offset in 0..cases.len() {
            let i = (offset + round as usize) % cases.len();
            let (label, fixture) = cases[i];
            progress(&format!(
                "{what}, round {}/{}: {label}",
                round + 1,
                args.rounds
            ));
            let plan = Plan {
                mode: Mode::Totp,
                first: base + round * users_per_round,
                stride: 1,
                counter: 0,
                warmup: args.warmup,
                count: per_round,
            };
            let report = run_worker(bench, fixture, &plan)?;
            tallies[i].add(&report);
        }
    }
    Ok(tallies)
}

/// Server CPU time (mfad and its dbus-daemon) each case's fixture used so
/// far.
fn server_cpu(cases: &[(&str, &Fixture)]) -> Vec<Option<u64>> {
    cases.iter().map(|(_, f)| f.server_cpu_ns()).collect()
}

/// Server CPU time each case's fixture used since `before`
/// ([`server_cpu`]) was read.
/// One row of a sequential-latency table: logins, failures, p50/p99 of
/// pam_authenticate and of the whole transaction, the ratio to
/// `reference`'s p50, CPU per login of the client and of the server side.
fn latency_row(
    label: &str,
    tally: &Tally,
    reference: Option<Percentiles>,
    server_ns: Option<u64>,
) -> Vec<String> {
    let auth = Percentiles::of(&tally.auth_ns);
    let [a50, a99] = cells(auth);
    let [t50, t99] = cells(Percentiles::of(&tally.total_ns));
    let ratio = match (auth, reference) {
        (Some(a), Some(r)) if r.p50 > 0 => format!("{:.2}×", a.p50 as f64 / r.p50 as f64),
        _ => "–".into(),
    };
    vec![
        label.to_string(),
        thousands(tally.ok),
        tally.failures_cell(),
        a50,
        a99,
        t50,
        t99,
        ratio,
        tally.per_login(tally.client_cpu_ns),
        server_ns
            .map(|ns| tally.per_login(ns))
            .unwrap_or_else(|| "–".into()),
    ]
}

fn server_cpu_since(cases: &[(&str, &Fixture)], before: &[Option<u64>]) -> Vec<Option<u64>> {
    cases
        .iter()
        .zip(before)
        .map(|((_, f), before)| Some(f.server_cpu_ns()?.saturating_sub((*before)?)))
        .collect()
}

/// pam_mfa's login, stage by stage: PAM logins and direct D-Bus logins
/// taking turns.
fn breakdown(bench: &Bench) -> Result<String, String> {
    let args = &bench.args;
    let per_round = args.logins.div_ceil(args.rounds);
    let users_per_round = args.warmup + per_round;
    let base = 30_000_000;
    let enrolled = Enrolled::totp(base..base + 2 * args.rounds * users_per_round);
    progress("breakdown: setting up pam_mfa");
    let fixture = Fixture::create(
        System::PamMfa,
        &bench.root,
        &bench.binaries,
        &bench.secrets,
        &enrolled,
    )?;
    let address = fixture.bus_address().map(str::to_string);
    let mut pam = Tally::default();
    let mut direct = Tally::default();
    for round in 0..args.rounds {
        for (i, is_direct) in [false, true].into_iter().enumerate() {
            progress(&format!(
                "breakdown, round {}/{}: {}",
                round + 1,
                args.rounds,
                if is_direct {
                    "direct D-Bus calls"
                } else {
                    "through libpam"
                }
            ));
            let plan = Plan {
                mode: Mode::Totp,
                first: base + (2 * round + i as u64) * users_per_round,
                stride: 1,
                counter: 0,
                warmup: args.warmup,
                count: per_round,
            };
            let direct_bus = if is_direct { address.as_deref() } else { None };
            let report = finish_worker(
                spawn(bench, &fixture, &plan, false, direct_bus, None),
                &fixture,
            )?;
            if is_direct {
                direct.add(&report)
            } else {
                pam.add(&report)
            };
        }
    }
    progress("breakdown: mfad's store calls in-process");
    let store_dir = bench.root.join("store-alone");
    let (reads, uses) =
        bench::store::time_store(&store_dir, &bench.secrets, per_round * args.rounds)?;
    let mut table = Table::new(&["stage", "p50", "p99"]);
    let [a50, a99] = cells(Percentiles::of(&pam.auth_ns));
    table.row(vec![
        "pam_authenticate through libpam and pam_mfa.so".into(),
        a50,
        a99,
    ]);
    for (stage, what) in bench::direct::STAGES {
        let samples = direct.stages.get(stage).map(Vec::as_slice).unwrap_or(&[]);
        let [p50, p99] = cells(Percentiles::of(samples));
        let label = if stage == "total" || stage == "ping" {
            what.to_string()
        } else {
            format!("– {what}")
        };
        table.row(vec![label, p50, p99]);
    }
    let [r50, r99] = cells(Percentiles::of(&reads));
    table.row(vec![
        "for scale: Store::has_confirmed_factor in-process (Start's read)".into(),
        r50,
        r99,
    ]);
    let [u50, u99] = cells(Percentiles::of(&uses));
    table.row(vec![
        "for scale: Store::check_code in-process (Answer's transaction)".into(),
        u50,
        u99,
    ]);
    Ok(format!(
        "## pam_mfa: where a login's time goes\n\n\
         The calls pam_mfa.so makes, made directly by the benchmark (mfa_dbus, a new \
         current-thread runtime and connection per login, as the module does) and timed stage \
         by stage, taking turns with PAM logins on the same mfad: {} logins each ({} and {} \
         failures).\n\n{}\n",
        thousands(pam.ok.min(direct.ok)),
        pam.failures_cell(),
        direct.failures_cell(),
        table.render()
    ))
}

/// Many client processes at once, each with its own users.
fn concurrency(bench: &Bench, findings: &mut Findings) -> Result<String, String> {
    let args = &bench.args;
    let per_process = args.worker_warmup + args.per_worker;
    // Other users than the sequential part's, so the parts never meet.
    let base = 10_000_000;
    let enrolled = Enrolled::totp(base..base + args.workers * per_process);
    let mut table = Table::new(&[
        "system",
        "processes",
        "logins",
        "failures",
        "logins/s",
        "pam_authenticate p50",
        "p99",
    ]);
    for &system in &bench.systems {
        progress(&format!(
            "{} concurrent processes: {}",
            args.workers,
            system.label()
        ));
        let fixture = Fixture::create(
            system,
            &bench.root,
            &bench.binaries,
            &bench.secrets,
            &enrolled,
        )?;
        let mut running = Vec::new();
        for w in 0..args.workers {
            let plan = Plan {
                mode: Mode::Totp,
                first: base + w * per_process,
                stride: 1,
                counter: 0,
                warmup: args.worker_warmup,
                count: args.per_worker,
            };
            running.push(spawn_worker(bench, &fixture, &plan, true));
        }
        release_together(&mut running, system.label())?;
        let mut tally = Tally::default();
        let mut reports = Vec::new();
        for worker in running {
            let report = finish_worker(worker, &fixture)?;
            tally.add(&report);
            reports.push(report);
        }
        match system {
            System::PamMfa => findings.mfa_concurrent = Some((tally.failed(), tally.attempted)),
            System::Oath => findings.oath_concurrent_failed = tally.failed(),
            System::GoogleAuthenticator => {}
        }
        let [a50, a99] = cells(Percentiles::of(&tally.auth_ns));
        table.row(vec![
            system.label().into(),
            args.workers.to_string(),
            thousands(tally.ok),
            tally.failures_cell(),
            rate(&reports.iter().collect::<Vec<_>>()),
            a50,
            a99,
        ]);
    }
    Ok(format!(
        "## {} concurrent client processes\n\n\
         Each process logs in {} of its own users (warm-up), waits until all are ready, then \
         logs in {} more; logins/s = successful measured logins ÷ time from the first start to \
         the last finish. {} users enrolled in each system.\n\n{}\n",
        args.workers,
        args.worker_warmup,
        args.per_worker,
        thousands(enrolled.count() as u64),
        table.render()
    ))
}

/// pam_mfa with a tiny and a large store, taking turns.
fn scale(bench: &Bench, findings: &mut Findings) -> Result<String, String> {
    let args = &bench.args;
    let per_round = args.logins.div_ceil(args.rounds);
    let users_per_round = args.warmup + per_round;
    let login_users = args.rounds * users_per_round;
    if args.big < login_users {
        return Err(format!("--big must be at least {login_users}"));
    }
    // The TOTP users who log in, spread over the large store.
    let stride = args.big / login_users;
    let subset: Vec<u64> = (0..login_users).map(|k| k * stride).collect();
    let hotp_user = 20_000_000;
    let one = Enrolled {
        totp: Vec::new(),
        hotp: Some(hotp_user),
    };
    let small = Enrolled::totp(subset.iter().copied());
    let big = Enrolled {
        totp: (0..args.big).collect(),
        hotp: Some(hotp_user),
    };
    progress(&format!(
        "seeding stores of 1, {} and {} users",
        subset.len(),
        big.count()
    ));
    let make = |enrolled: &Enrolled| {
        Fixture::create(
            System::PamMfa,
            &bench.root,
            &bench.binaries,
            &bench.secrets,
            enrolled,
        )
    };
    let one_fixture = make(&one)?;
    let small_fixture = make(&small)?;
    let big_fixture = make(&big)?;
    struct Case<'a> {
        label: String,
        workload: &'static str,
        fixture: &'a Fixture,
        mode: Mode,
        tally: Tally,
    }
    let mut cases = [
        Case {
            label: "1".into(),
            workload: "HOTP: the one user, counter moving on",
            fixture: &one_fixture,
            mode: Mode::Hotp,
            tally: Tally::default(),
        },
        Case {
            label: thousands(big.count() as u64),
            workload: "HOTP: the same user among them",
            fixture: &big_fixture,
            mode: Mode::Hotp,
            tally: Tally::default(),
        },
        Case {
            label: thousands(small.count() as u64),
            workload: "TOTP: each login a different user",
            fixture: &small_fixture,
            mode: Mode::Totp,
            tally: Tally::default(),
        },
        Case {
            label: thousands(big.count() as u64),
            workload: "TOTP: the same users among them",
            fixture: &big_fixture,
            mode: Mode::Totp,
            tally: Tally::default(),
        },
    ];
    for round in 0..args.rounds {
        let n = cases.len();
        for offset in 0..n {
            let case = &mut cases[(offset + round as usize) % n];
            progress(&format!(
                "store size, round {}/{}: {} users, {}",
                round + 1,
                args.rounds,
                case.label,
                case.workload
            ));
            let plan = match case.mode {
                Mode::Totp => Plan {
                    mode: Mode::Totp,
                    first: round * users_per_round * stride,
                    stride,
                    counter: 0,
                    warmup: args.warmup,
                    count: per_round,
                },
                Mode::Hotp => Plan {
                    mode: Mode::Hotp,
                    first: hotp_user,
                    stride: 1,
                    counter: round * users_per_round,
                    warmup: args.warmup,
                    count: per_round,
                },
            };
            let report = run_worker(bench, case.fixture, &plan)?;
            case.tally.add(&report);
        }
    }
    let p50 = |case: &Case| Percentiles::of(&case.tally.auth_ns).map(|p| p.p50);
    findings.flat = vec![
        ("HOTP".into(), p50(&cases[0]), p50(&cases[1])),
        ("TOTP".into(), p50(&cases[2]), p50(&cases[3])),
    ];
    let mut table = Table::new(&[
        "enrolled users",
        "logins",
        "failures",
        "pam_authenticate p50",
        "p99",
        "pam_start..pam_end p50",
        "p99",
    ]);
    for case in &cases {
        let [a50, a99] = cells(Percentiles::of(&case.tally.auth_ns));
        let [t50, t99] = cells(Percentiles::of(&case.tally.total_ns));
        table.row(vec![
            format!("{} ({})", case.label, case.workload),
            thousands(case.tally.ok),
            case.tally.failures_cell(),
            a50,
            a99,
            t50,
            t99,
        ]);
    }
    Ok(format!(
        "## pam_mfa: 1 vs {} enrolled users\n\n\
         Stores seeded through mfad's library (one transaction) before mfad starts. With one \
         user, only HOTP can give a fresh code for every login; the TOTP rows compare {} users \
         logging in once each, alone in the store or spread over the {} users. Same rounds and \
         warm-up as the sequential part, cases taking turns.\n\n{}\n",
        thousands(args.big),
        thousands(subset.len() as u64),
        thousands(big.count() as u64),
        table.render()
    ))
}

/// Users of the fleet part: indices no other part uses.
const FLEET_BASE: u64 = 40_000_000;

/// pam_mfa with its store on PostgreSQL, as a fleet has it, next to SQLite
/// (sequential logins, taking turns), then two hosts on that one database
/// with concurrent client processes, every code that let a user in on one
/// host replayed at once on the other.
fn fleet(bench: &Bench, findings: &mut Findings) -> Result<String, String> {
    let args = &bench.args;
    let per_round = args.logins.div_ceil(args.rounds);
    let sequential_users = args.rounds * (args.warmup + per_round);
    let per_process = args.worker_warmup + args.per_worker;
    let concurrent_base = FLEET_BASE + sequential_users;
    // Both stores get the same users, those of both halves of the part.
    let enrolled = Enrolled::totp(FLEET_BASE..concurrent_base + args.workers * per_process);
    progress("fleet: starting PostgreSQL");
    let (pg, database) = start_postgres()?;
    let store = pg.store_table(&database);
    // One refused code ends a login (as in the fleet tests): a replay is
    // one answer, refused with PAM_MAXTRIES.
    let options = |store_table: Option<String>, hostname: Option<&str>, seed_key| Options {
        store_table,
        seed_key,
        hostname: hostname.map(str::to_string),
        max_tries: Some(1),
    };
    let create = |enrolled: &Enrolled, options: &Options| {
        Fixture::create_with(
            System::PamMfa,
            &bench.root,
            &bench.binaries,
            &bench.secrets,
            enrolled,
            options,
        )
    };
    progress(&format!(
        "fleet: setting up pam_mfa on SQLite and on PostgreSQL with {} users",
        thousands(enrolled.count() as u64)
    ));
    let sqlite = create(&enrolled, &options(None, None, None))?;
    let host_a = create(
        &enrolled,
        &options(Some(store.clone()), Some("host-a"), None),
    )?;
    let sequential_table = {
        let cases = [
            ("SQLite (the default, in the state directory)", &sqlite),
            ("PostgreSQL over TLS (host A)", &host_a),
        ];
        let before = server_cpu(&cases);
        let tallies = sequential(bench, "fleet, sequential", &cases, FLEET_BASE)?;
        let server_cpu = server_cpu_since(&cases, &before);
        let reference = Percentiles::of(&tallies[0].auth_ns);
        let mut table = Table::new(&[
            "store",
            "logins",
            "failures",
            "pam_authenticate p50",
            "p99",
            "pam_start..pam_end p50",
            "p99",
            "auth p50 vs SQLite",
            "CPU/login: client",
            "mfad + dbus-daemon",
        ]);
        for (((label, _), tally), server) in cases.iter().zip(&tallies).zip(&server_cpu) {
            table.row(latency_row(label, tally, reference, *server));
        }
        table
    };
    // Host A goes on into the fleet; the SQLite one is done.
    drop(sqlite);

    let key = host_a
        .key_file()
        .ok_or("the PostgreSQL fixture has no mfad")?;
    progress("fleet: starting host B on the same database, with host A's key");
    let host_b = create(
        &Enrolled::default(),
        &options(Some(store), Some("host-b"), Some(key)),
    )?;
    let hosts = [("host-a", &host_a), ("host-b", &host_b)];
    progress(&format!(
        "fleet: {} concurrent processes over two hosts, every code replayed on the other",
        args.workers
    ));
    let mut running = Vec::new();
    let mut host_of = Vec::new();
    for w in 0..args.workers {
        let h = (w % 2) as usize;
        let plan = Plan {
            mode: Mode::Totp,
            first: concurrent_base + w * per_process,
            stride: 1,
            counter: 0,
            warmup: args.worker_warmup,
            count: args.per_worker,
        };
        running.push(spawn(
            bench,
            hosts[h].1,
            &plan,
            true,
            None,
            Some(hosts[1 - h].1),
        ));
        host_of.push(h);
    }
    release_together(&mut running, "the fleet")?;
    let mut reports: Vec<(usize, WorkerReport)> = Vec::new();
    for (worker, h) in running.into_iter().zip(host_of) {
        reports.push((h, finish_worker(worker, hosts[h].1)?));
    }
    let mut table = Table::new(&[
        "logging in on",
        "processes",
        "logins",
        "failures",
        "logins/s",
        "pam_authenticate p50",
        "p99",
        "codes replayed on the other host",
        "refused there",
        "replay p50",
        "p99",
        "double accepts",
    ]);
    let mut row = |label: String, wanted: &dyn Fn(usize) -> bool| -> Tally {
        let mine: Vec<&WorkerReport> = reports
            .iter()
            .filter(|(h, _)| wanted(*h))
            .map(|(_, r)| r)
            .collect();
        let mut tally = Tally::default();
        for report in &mine {
            tally.add(report);
        }
        let [a50, a99] = cells(Percentiles::of(&tally.auth_ns));
        let [r50, r99] = cells(Percentiles::of(&tally.replay_ns));
        table.row(vec![
            label,
            mine.len().to_string(),
            thousands(tally.ok),
            tally.failures_cell(),
            rate(&mine),
            a50,
            a99,
            thousands(tally.replays),
            by_code(&tally.replays_refused),
            r50,
            r99,
            thousands(tally.double_accepts),
        ]);
        tally
    };
    for (h, (name, _)) in hosts.iter().enumerate() {
        let other = hosts[1 - h].0;
        row(format!("{name} (replaying on {other})"), &|x| x == h);
    }
    let all = row("both hosts".into(), &|_| true);
    findings.fleet = Some(FleetFinding {
        failed: all.failed(),
        attempted: all.attempted,
        accepted: all.accepted(),
        replays: all.replays,
        double_accepts: all.double_accepts,
    });
    if all.double_accepts > 0 || all.failed() > 0 {
        progress(&format!(
            "fleet: {} failures and {} double accepts (both must be 0)",
            all.failed(),
            all.double_accepts
        ));
    }
    drop(host_b);
    drop(host_a);
    let data = filesystem(&pg.socket_dir());
    drop(pg);
    Ok(format!(
        "## pam_mfa on PostgreSQL: SQLite vs PostgreSQL, and two hosts on one database\n\n\
         A PostgreSQL {} started for the run (initdb into a new directory on {}, `fsync` and \
         `synchronous_commit` on, TLS on), one database for the part. mfad reaches it as a \
         fleet does: `[store] backend = \"postgresql\"` over TCP to `localhost` with TLS, the \
         server's certificate verified against a test CA (`ca_file`), trust authentication \
         (no password file), `timeout = 3`; mfad keeps up to 4 connections open. \
         Every mfad here has `max_tries = 1` (one refused code ends the login) and no \
         failure delay; otherwise the configuration of the other parts.\n\n\
         ### Sequential logins\n\n\
         As the sequential part: one process per round, each login a different user with a \
         fresh TOTP code, {} rounds taking turns, {} warm-up logins then {} measured per \
         round; both stores seeded with the same {} users. CPU/login as there (PostgreSQL's \
         own processes not counted).\n\n{}\n\
         ### Two hosts, {} concurrent client processes\n\n\
         Two mfads, each with its own state directory (the same `secret.key`, copied from \
         host A as a fleet's hosts have it), its own dbus-daemon and its own host name, on \
         the one database; the processes alternate between them. Each process logs in \
         {} of its own users (warm-up), waits until all are ready, then {} more; after \
         every login that lets a user in (warm-up included), it replays the same code for \
         the same user at once through the other host's PAM service, which must refuse it: \
         an accepted replay is a double accept. A replay is one PAM transaction without \
         libpam's failure delay (pam_mfa asks for 2 s; the benchmark, as the application, \
         supplies a `PAM_FAIL_DELAY` function that does not wait), so refusals are timed \
         themselves. Each user logs in once, so every replay is \
         of a code already used. logins/s = successful measured logins (first uses) ÷ time \
         from the first start to the last finish; each process also makes the replays in \
         that time, so the machine serves twice as many PAM transactions.\n\n{}\n",
        package_version("postgresql"),
        data,
        args.rounds,
        args.warmup,
        per_round,
        thousands(enrolled.count() as u64),
        sequential_table.render(),
        args.workers,
        args.worker_warmup,
        args.per_worker,
        table.render()
    ))
}

/// Whether PostgreSQL's server binaries are installed (what
/// [`Postgres::start`] runs).
fn postgres_installed() -> bool {
    std::fs::read_dir("/usr/lib/postgresql")
        .map(|dir| {
            dir.flatten()
                .any(|e| e.path().join("bin").join("postgres").exists())
        })
        .unwrap_or(false)
}

/// A PostgreSQL of the benchmark's own ([`Postgres::start`]: initdb as the
/// postgres user, TLS with a test CA; killed when it is dropped, or by the
/// kernel when this process ends) and a new database in it.
fn start_postgres() -> Result<(Postgres, String), String> {
    // The harness panics, with what went wrong, on a failure.
    std::panic::catch_unwind(|| {
        let pg = Postgres::start();
        let database = pg.database();
        (pg, database)
    })
    .map_err(|_| "cannot start PostgreSQL (see the message above)".to_string())
}

fn create_all(bench: &Bench, enrolled: &Enrolled) -> Result<Vec<Fixture>, String> {
    bench
        .systems
        .iter()
        .map(|&system| {
            progress(&format!(
                "setting up {} with {} users",
                system.label(),
                thousands(enrolled.count() as u64)
            ));
            Fixture::create(
                system,
                &bench.root,
                &bench.binaries,
                &bench.secrets,
                enrolled,
            )
        })
        .collect()
}

// ---- worker processes ---------------------------------------------------

/// Which logins one worker does.
struct Plan {
    mode: Mode,
    first: u64,
    stride: u64,
    counter: u64,
    warmup: u64,
    count: u64,
}

fn spawn_worker(bench: &Bench, fixture: &Fixture, plan: &Plan, barrier: bool) -> Running {
    spawn(bench, fixture, plan, barrier, None, None)
}

/// A worker logging in through `fixture`; with `direct_bus`, making the
/// module's D-Bus calls itself; with `replay_on`, replaying every code that
/// let a user in through that fixture (another host of the same fleet).
fn spawn(
    bench: &Bench,
    fixture: &Fixture,
    plan: &Plan,
    barrier: bool,
    direct_bus: Option<&str>,
    replay_on: Option<&Fixture>,
) -> Running {
    let mut cmd = Command::new(&bench.exe);
    cmd.arg("worker")
        .arg("--confdir")
        .arg(fixture.confdir())
        .arg("--seed")
        .arg(bench.secrets.seed().to_string())
        .arg("--mode")
        .arg(match plan.mode {
            Mode::Totp => "totp",
            Mode::Hotp => "hotp",
        })
        .arg("--first")
        .arg(plan.first.to_string())
        .arg("--stride")
        .arg(plan.stride.to_string())
        .arg("--counter")
        .arg(plan.counter.to_string())
        .arg("--warmup")
        .arg(plan.warmup.to_string())
        .arg("--count")
        .arg(plan.count.to_string());
    if barrier {
        cmd.arg("--barrier");
    }
    if let Some(address) = direct_bus {
        cmd.arg("--direct-bus").arg(address);
    }
    if let Some(other) = replay_on {
        cmd.arg("--replay-confdir").arg(other.confdir());
    }
    // A login program's environment: nothing of ours leaks into the modules.
    cmd.env_clear().env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin");
    Running::spawn(
        format!("pam-bench worker ({})", fixture.system.slug()),
        &mut cmd,
    )
}

fn finish_worker(worker: Running, fixture: &Fixture) -> Result<WorkerReport, String> {
    let finished = worker.finish(WORKER_LIMIT);
    let json = finished.stdout.lines().rev().find(|l| l.starts_with('{'));
    let parsed = json.map(serde_json::from_str::<WorkerReport>);
    match (finished.status.success(), parsed) {
        (true, Some(Ok(report))) => {
            if report.failed() > 0 || report.double_accepts > 0 {
                eprintln!("{}", finished.stderr.trim_end());
                let log = fixture.daemon_log();
                if !log.is_empty() {
                    eprintln!("--- mfad's stderr ---\n{log}");
                }
            }
            Ok(report)
        }
        _ => Err(format!(
            "a worker for {} failed ({}):\n{}",
            fixture.system.label(),
            finished.status,
            finished.describe()
        )),
    }
}

fn run_worker(bench: &Bench, fixture: &Fixture, plan: &Plan) -> Result<WorkerReport, String> {
    finish_worker(spawn_worker(bench, fixture, plan, false), fixture)
}

/// Wait until every worker (started with the barrier) has done its warm-up
/// and says READY, then let them all go at once.
fn release_together(workers: &mut [Running], what: &str) -> Result<(), String> {
    for (w, worker) in workers.iter_mut().enumerate() {
        match worker.next_line(WORKER_LIMIT) {
            Some(line) if line == "READY" => {}
            other => {
                return Err(format!(
                    "worker {w} of {what} did not get ready (said {other:?})"
                ))
            }
        }
    }
    for worker in workers.iter_mut() {
        worker.send_line("go");
    }
    Ok(())
}

/// Successful measured logins per second from the first start to the last
/// finish of `reports`.
fn rate(reports: &[&WorkerReport]) -> String {
    let start = reports.iter().map(|r| r.start_ns).min().unwrap_or(0);
    let end = reports.iter().map(|r| r.end_ns).max().unwrap_or(0);
    let ok: u64 = reports.iter().map(|r| r.ok).sum();
    let seconds = end.saturating_sub(start) as f64 / 1e9;
    if seconds > 0.0 {
        format!("{:.0}", ok as f64 / seconds)
    } else {
        "–".into()
    }
}

fn progress(what: &str) {
    eprintln!("pam-bench: {what}");
}

// ---- the report's frame -------------------------------------------------

fn header(bench: &Bench, sink: &Sink, load: &str) -> String {
    let mut out = String::from("# pam_mfa login benchmark\n\n");
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("model name"))
                .map(|l| l.trim_start_matches([' ', '\t', ':']).to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let cpus = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(0);
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let _ = writeln!(
        out,
        "- machine: {cpu}, {cpus} CPUs, Linux {}",
        kernel.trim()
    );
    let _ = writeln!(
        out,
        "- date: {}",
        command_output("date", &["-u", "+%Y-%m-%d %H:%M UTC"])
    );
    let _ = writeln!(out, "- load average before the run: {load}");
    let _ = writeln!(
        out,
        "- state files (mfad's store, the modules' secret files) on {} ({})",
        filesystem(&bench.args.work_dir),
        bench.args.work_dir.display()
    );
    let _ = writeln!(out, "- syslog: {}", sink.description);
    let _ = writeln!(
        out,
        "- libpam {}, libpam-google-authenticator {}, libpam-oath {}, dbus {}, postgresql {}",
        package_version("libpam0g"),
        package_version("libpam-google-authenticator"),
        package_version("libpam-oath"),
        package_version("dbus"),
        package_version("postgresql"),
    );
    let _ = writeln!(
        out,
        "- pam_mfa and mfad: {} and {}, workspace at {}",
        bench.binaries.pam_mfa.display(),
        bench.binaries.mfad.display(),
        git_revision()
    );
    out.push('\n');
    out
}

fn footer(skipped: &[String], sink: &Sink) -> String {
    let mut out = String::new();
    for s in skipped {
        let _ = writeln!(out, "- {s}");
    }
    let _ = writeln!(out, "- load average after the run: {}", load_average());
    if sink.is_ours() {
        let _ = writeln!(
            out,
            "- log messages received by the sink: {}",
            thousands(sink.received())
        );
    }
    out
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "unknown".into())
}

fn command_output(program: &str, args: &[&str]) -> String {
    Command::new(program)
        .args(args)
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_else(|| "unknown".into())
}

fn package_version(package: &str) -> String {
    command_output("dpkg-query", &["-W", "-f", "${Version}", package])
}

/// The commit, marked when mfad, pam_mfa or the contract differ from it.
fn git_revision() -> String {
    let root = mfa_tests::workspace_root();
    let root = root.to_string_lossy();
    let rev = command_output("git", &["-C", &root, "rev-parse", "--short", "HEAD"]);
    let dirty = command_output(
        "git",
        &[
            "-C",
            &root,
            "status",
            "--porcelain",
            "--",
            "mfad",
            "pam_mfa",
            "mfa_dbus",
        ],
    );
    if dirty.is_empty() || dirty == "unknown" {
        rev
    } else {
        format!("{rev} with uncommitted changes")
    }
}

/// The file system type of `path`, by its magic number.
fn filesystem(path: &Path) -> String {
    let Ok(c) = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()) else {
        return "unknown".into();
    };
    // SAFETY: statfs fills the zeroed struct we own from a valid path.
    let mut st: libc::statfs = unsafe { std::mem::zeroed() };
    // SAFETY: as above.
    if unsafe { libc::statfs(c.as_ptr(), &mut st) } != 0 {
        return "unknown".into();
    }
    match st.f_type as u64 {
        0xEF53 => "ext4".into(),
        0x0102_1994 => "tmpfs (fsync is free: not comparable to a disk)".into(),
        0x5846_5342 => "xfs".into(),
        0x9123_683E => "btrfs".into(),
        0x794C_7630 => "overlayfs".into(),
        other => format!("file system 0x{other:x}"),
    }
}
