//! mfa-sandbox: a throwaway pam_mfa installation for demos and for trying
//! things by hand — a private dbus-daemon running the shipped bus policy,
//! mfad on it with a temporary state directory, and a PAM service directory
//! (for pam_wrapper) whose service runs the built module against that bus.
//!
//! It prints `KEY=VALUE` lines, then `READY`, and keeps everything running
//! until its stdin reaches end of file (or it gets SIGTERM/SIGINT/SIGHUP); then it
//! stops mfad and the bus and removes the temporary directories.
//! `scripts/demo.sh` drives it.

use clap::Parser;
use mfa_tests::daemon::{Daemon, DaemonConfig};
use mfa_tests::pam::ServiceDir;
use mfa_tests::{users, Bus};
use std::io::{Read, Write};

#[derive(Parser)]
#[command(about = "Run a private bus + mfad + PAM service dir until stdin closes")]
struct Opts {
    /// Name of the PAM service to write
    #[arg(long, default_value = "pam_mfa-demo")]
    service: String,
    /// Module options besides bus= on the PAM line
    #[arg(long, default_value = "timeout=10")]
    options: String,
    /// [login] max_tries for mfad
    #[arg(long, default_value_t = 3)]
    max_tries: u32,
}

fn main() {
    let opts = Opts::parse();
    // Block the stop signals in every thread (threads inherit the mask), so
    // the main thread can take them with sigwait below.
    let stop = stop_signals();
    // SAFETY: changes this thread's signal mask before any thread exists.
    unsafe { libc::pthread_sigmask(libc::SIG_BLOCK, &stop, std::ptr::null_mut()) };
    let bus = Bus::start();
    let daemon = Daemon::start_with(
        &bus,
        &DaemonConfig {
            max_tries: opts.max_tries,
            // Users without a factor set one up at login, root included.
            enrol_at_login: true,
            ..DaemonConfig::default()
        },
    );
    let pam = ServiceDir::new();
    pam.mfa(&opts.service, bus.address(), &opts.options);
    let demo = users::named("demo");
    let (passwd, _) = bus.nss_files();
    let lines = [
        ("BUS_ADDRESS", bus.address().to_string()),
        ("PAM_SERVICE_DIR", pam.path().display().to_string()),
        ("PAM_SERVICE", opts.service.clone()),
        (
            "PAM_WRAPPER_LIB",
            mfa_tests::pam::pam_wrapper_lib().display().to_string(),
        ),
        ("MFACTL", mfa_tests::bins::mfactl().display().to_string()),
        ("MFAD_LOG", daemon.stderr_path().display().to_string()),
        ("STATE_DIR", daemon.state_dir().display().to_string()),
        ("PASSWD", passwd.display().to_string()),
        ("DEMO_USER", demo.name.clone()),
        ("DEMO_UID", demo.uid.to_string()),
    ];
    let mut out = std::io::stdout();
    for (key, value) in lines {
        let _ = writeln!(out, "{key}={value}");
    }
    let _ = writeln!(out, "READY");
    let _ = out.flush();

    // End of input is turned into SIGUSR1, so one sigwait covers all three.
    std::thread::spawn(|| {
        let mut sink = Vec::new();
        let _ = std::io::stdin().read_to_end(&mut sink);
        // SAFETY: a process-directed signal to ourselves.
        unsafe { libc::kill(libc::getpid(), libc::SIGUSR1) };
    });
    let mut got: libc::c_int = 0;
    // SAFETY: `stop` is an initialised set; `got` is writable.
    unsafe { libc::sigwait(&stop, &mut got) };
    // Dropping stops mfad, then the bus, and removes the directories.
    drop(pam);
    drop(daemon);
    drop(bus);
}

fn stop_signals() -> libc::sigset_t {
    // SAFETY: sigemptyset initialises the set; sigaddset adds valid signals.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        for sig in [libc::SIGTERM, libc::SIGINT, libc::SIGHUP, libc::SIGUSR1] {
            libc::sigaddset(&mut set, sig);
        }
        set
    }
}
