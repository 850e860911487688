//! `[time] source = "ntp"` (issue 13, SPEC 19) against a real NTP server on
//! loopback, chronyd serving a time shifted from the host's (without
//! touching the system clock): codes are checked at the server's time, not
//! the host's; a server that does not answer refuses logins or falls back
//! to the system clock, as configured, and says so.

use mfa_tests::daemon::DaemonConfig;
use mfa_tests::ntp::{free_udp_port, Chrony};
use mfa_tests::otp::{Algorithm, Totp};
use mfa_tests::pam::{PAM_AUTH_ERR, PAM_SUCCESS};
use mfa_tests::users::{self, TestUser};
use mfa_tests::World;

/// Far enough for a code of the host's time to be out of every window.
const SHIFT: i64 = 300;

fn world(servers: &[String], on_failure: &str) -> World {
    let list: Vec<String> = servers.iter().map(|s| format!("{s:?}")).collect();
    World::with_config(&DaemonConfig {
        policy_tables: format!(
            "[time]\nsource = \"ntp\"\nservers = [{}]\ntimeout_ms = 300\nmax_offset = 600\non_failure = \"{on_failure}\"\n",
            list.join(", ")
        ),
        ..DaemonConfig::default()
    })
}

/// Enrol a TOTP factor confirmed with the code for `unix`.
fn enrol_at(world: &World, user: &TestUser, unix: u64) -> Totp {
    let totp = Totp::new(Algorithm::Sha1, 6, 30);
    world
        .mfactl(
            user,
            &[
                "enrol",
                "totp",
                "--secret",
                &totp.secret,
                "--no-qr",
                "--code",
                &totp.code_for_step(totp.step_at(unix)),
            ],
        )
        .assert_success("enrol at mfad's time");
    totp
}

#[test]
fn codes_are_checked_at_the_servers_time_not_the_hosts() {
    let server = Chrony::start(SHIFT);
    let world = world(&[server.address()], "deny");
    let alice = users::named("alice");
    let totp = enrol_at(&world, &alice, server.server_time());
    let host_step = totp.step_at(mfa_tests::otp::now());
    assert_ne!(
        world
            .login(&alice, &[&totp.code_for_step(host_step + 1)])
            .rc,
        PAM_SUCCESS,
        "the host's time is not mfad's"
    );
    let step = totp.step_at(server.server_time()) + 1;
    world
        .login(&alice, &[&totp.code_for_step(step)])
        .assert_rc(PAM_SUCCESS);
    let log = world.daemon.log();
    assert!(log.contains("time from NTP: +"), "{log}");
}

#[test]
fn a_silent_server_refuses_logins_or_falls_back_as_configured() {
    let frozen = Chrony::start(SHIFT);
    frozen.freeze();
    let strict = world(&[frozen.address()], "deny");
    let bob = users::named("bob");
    let totp = enrol_at(&strict, &bob, mfa_tests::otp::now());
    let refused = strict.login(&bob, &[&totp.code(1)]);
    refused.assert_rc(PAM_AUTH_ERR);
    assert_eq!(
        refused.errors(),
        vec!["The second factor could not be checked: this machine's time cannot be trusted. Try again later."],
        "{refused:#?}"
    );
    let log = strict.daemon.log();
    assert!(
        log.contains("no NTP server answered") && log.contains("no answer within 300 ms"),
        "{log}"
    );
    assert!(log.contains("reason=time-unavailable"), "{log}");

    let nobody_there = format!("127.0.0.1:{}", free_udp_port());
    let lenient = world(&[nobody_there], "system");
    let carol = users::named("carol");
    let totp = enrol_at(&lenient, &carol, mfa_tests::otp::now());
    lenient
        .login(&carol, &[&totp.code(1)])
        .assert_rc(PAM_SUCCESS);
    let log = lenient.daemon.log();
    assert!(
        log.contains("no NTP server answered") && log.contains("the system clock is used"),
        "{log}"
    );
}

#[test]
fn several_servers_give_the_median_and_one_far_off_is_not_used() {
    let servers: Vec<Chrony> = [240, 300, 360, 1200]
        .into_iter()
        .map(Chrony::start)
        .collect();
    let addresses: Vec<String> = servers.iter().map(Chrony::address).collect();
    let world = world(&addresses, "deny");
    let dave = users::named("dave");
    // The median of the three within max_offset: the +300 one.
    let middle = &servers[1];
    let totp = enrol_at(&world, &dave, middle.server_time());
    let beyond = totp.step_at(servers[2].server_time()) + 1;
    assert_ne!(
        world.login(&dave, &[&totp.code_for_step(beyond)]).rc,
        PAM_SUCCESS,
        "not the +360 server's time"
    );
    world
        .login(
            &dave,
            &[&totp.code_for_step(totp.step_at(middle.server_time()) + 1)],
        )
        .assert_rc(PAM_SUCCESS);
    let log = world.daemon.log();
    assert!(
        log.contains("3 of 4 servers answered") && log.contains(&addresses[3]),
        "{log}"
    );
}
