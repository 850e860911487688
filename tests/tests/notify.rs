//! Admins hear when someone's second factor goes away: mfad runs
//! `[notify].command EVENT USER BY_UID`. The command writes into a FIFO the
//! test reads, so the test waits for exactly that line, not for time.

use mfa_tests::daemon::DaemonConfig;
use mfa_tests::otp::Totp;
use mfa_tests::process::run;
use mfa_tests::users::{self, command_as};
use mfa_tests::World;
use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::mpsc;

/// The next line the command writes into `fifo`.
fn next_notice(fifo: &Path) -> String {
    let (tx, rx) = mpsc::channel();
    let fifo = fifo.to_path_buf();
    std::thread::spawn(move || {
        let mut text = String::new();
        let read = std::fs::File::open(&fifo).and_then(|mut f| f.read_to_string(&mut text));
        let _ = tx.send(read.map(|_| text));
    });
    rx.recv_timeout(mfa_tests::QUICK)
        .expect("the notify command never ran")
        .expect("read the FIFO")
}

#[test]
fn resets_turning_mfa_off_and_set_ups_run_the_notify_command() {
    let dir = mfa_tests::shared_tempdir("notify-");
    let fifo = dir.path().join("notices");
    let c_fifo = std::ffi::CString::new(fifo.to_str().expect("utf8")).expect("path");
    // SAFETY: a valid path in our own temporary directory.
    assert_eq!(unsafe { libc::mkfifo(c_fifo.as_ptr(), 0o600) }, 0);
    let script = dir.path().join("notify.sh");
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\n{{ printf '%s %s %s\\n' \"$1\" \"$2\" \"$3\"; tr '\\0' '\\n' < /proc/$$/environ; }} > {}\n",
            fifo.display()
        ),
    )
    .expect("script");
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let world = World::with_config(&DaemonConfig {
        notify_command: script.display().to_string(),
        ..DaemonConfig::default()
    });

    let alice = users::named("alice");
    world.enrol_totp(&alice, &Totp::default_params());
    let mut reset = command_as(&users::root(), &mfa_tests::bins::mfactl());
    reset.args(["--bus-address", world.address(), "reset", "alice", "--yes"]);
    run("mfactl reset", &mut reset, "", mfa_tests::QUICK).assert_success("mfactl reset");
    // The environment mfad gives it, exactly as mfad.toml(5) documents it.
    assert_eq!(
        next_notice(&fifo),
        "reset alice 0\nPATH=/usr/sbin:/usr/bin:/sbin:/bin\n"
    );

    let bob = users::named("bob");
    let enrolled = world.enrol_totp(&bob, &Totp::default_params());
    let mut remove = command_as(&bob, &mfa_tests::bins::mfactl());
    remove.args([
        "--bus-address",
        world.address(),
        "remove",
        &enrolled.id,
        "--yes",
    ]);
    run("mfactl remove", &mut remove, "", mfa_tests::QUICK).assert_success("mfactl remove");
    assert_eq!(
        next_notice(&fifo),
        format!(
            "mfa-off bob {}\nPATH=/usr/sbin:/usr/bin:/sbin:/bin\n",
            bob.uid
        )
    );
    assert!(
        world.daemon.log().contains("factors notify-mfa-off"),
        "{}",
        world.daemon.log()
    );

    world
        .mfactl(
            &users::root(),
            &["--json", "enrol", "totp", "--user", "carol", "--no-qr"],
        )
        .assert_success("set up for carol");
    assert_eq!(
        next_notice(&fifo),
        "set-up carol 0\nPATH=/usr/sbin:/usr/bin:/sbin:/bin\n"
    );
}
